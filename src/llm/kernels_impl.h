/*
 * kernels_impl.h - private to kernels*.c (and their unit test): the table of
 * operations each code path (scalar, AVX2, AVX-512) provides, the block
 * layouts of the quantized types, and the packed layout of
 * kern_matrix_prepare.
 *
 * kernels.c owns the scalar reference of every operation, the choice of the
 * path, and the parts that do not depend on it (the matmul driver that
 * quantizes activations and splits the work over the pool, packing,
 * conversions). A path fills a struct kern_ops; an entry it cannot speed up
 * points at the scalar (or a narrower SIMD) function.
 */
#ifndef ECHO_LLM_KERNELS_IMPL_H
#define ECHO_LLM_KERNELS_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "llm/kernels.h"

#define QK 32 /* elements per block of Q8_0 and Q4_0 */

/* ggml's blocks, byte for byte: an fp16 scale then the quants. */
struct blk_q8_0 {
    uint16_t d;
    int8_t qs[QK]; /* value = qs[j] * d */
};
struct blk_q4_0 {
    uint16_t d;
    uint8_t qs[QK / 2]; /* element j < 16 in the low nibble of qs[j], j + 16 in the high one;
                           value = (nibble - 8) * d */
};
/* The k-quants of ggml: super-blocks of 256. */
#define QK_K 256
struct blk_q4_K {
    uint16_t d;           /* scale of the sub-block scales */
    uint16_t dmin;        /* scale of the sub-block mins */
    uint8_t scales[12];   /* 8 scales and 8 mins of 6 bits (see kern_q4_K_scale_min) */
    uint8_t qs[QK_K / 2]; /* sub-block j (32 elements): nibbles of qs[32*(j/2) ..], low for
                            even j, high for odd j; value = d*sc_j*q - dmin*m_j */
};
struct blk_q6_K {
    uint8_t ql[QK_K / 2];     /* low 4 bits */
    uint8_t qh[QK_K / 4];     /* high 2 bits */
    int8_t scales[QK_K / 16]; /* one per 16 elements */
    uint16_t d;
};
_Static_assert(sizeof(struct blk_q4_K) == 144, "q4_K block is 144 bytes");
_Static_assert(sizeof(struct blk_q6_K) == 210, "q6_K block is 210 bytes");

/* ggml's get_scale_min_k4: the 6-bit scale and min of sub-block j (< 8) of a Q4_K block. */
static inline void kern_q4_K_scale_min(int j, const uint8_t *q, uint8_t *sc, uint8_t *m)
{
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (uint8_t)((q[j + 4] & 0xf) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

/*
 * Q6_K element e (< 256) of a block: the 128-element half n = e / 128,
 * quarter k = (e % 128) / 32, position l = e % 32 take
 *     low 4 bits: ql[64n + 32(k & 1) + l], low nibble for k < 2, high for k >= 2
 *     high 2 bits: bits 2k..2k+1 of qh[32n + l]
 *     scale: scales[8n + 2k + l / 16]
 * and value = d * scale * (q - 32).
 */
static inline int kern_q6_K_q(const struct blk_q6_K *b, int e)
{
    int n = e / 128, k = (e % 128) / 32, l = e % 32;
    int lo = b->ql[64 * n + 32 * (k & 1) + l];
    lo = k < 2 ? lo & 0xf : lo >> 4;
    int hi = (b->qh[32 * n + l] >> (2 * k)) & 3;
    return (lo | hi << 4) - 32;
}

static inline int kern_q6_K_scale(const struct blk_q6_K *b, int e)
{
    int n = e / 128, k = (e % 128) / 32, l = e % 32;
    return b->scales[8 * n + 2 * k + l / 16];
}

_Static_assert(sizeof(struct blk_q8_0) == 34, "q8_0 block is 34 bytes");
_Static_assert(sizeof(struct blk_q4_0) == 18, "q4_0 block is 18 bytes");

/*
 * The packed layout ("P16") of quantized matrices, for AVX-512 VNNI (AVX2
 * reads each 64-byte step as two halves of 8 rows): rows in
 * groups of 16 (the last group padded with zero rows); groups follow each
 * other, and a group is one sequential stream. Within a block of 32 columns
 * the quants of the 16 rows are interleaved 4 columns at a time: "step" s
 * is 64 bytes, row r's 4 bytes at 4r, so one load feeds VPDPBUSD (unsigned
 * bytes) for all 16 rows. Per type, for each block b of 32 columns:
 *   Q8_0 (544 bytes): 16 fp16 scales (rows 0..15), then 8 steps: step s, row
 *       r = qs[4s .. 4s+3] XOR 0x80 (q + 128, unsigned).
 *   Q4_0 (288 bytes): 16 fp16 scales, then 4 steps: step s, row r = the
 *       file's bytes qs[4s .. 4s+3] (low nibbles elements 4s.., high nibbles
 *       elements 16+4s..; nibbles are q + 8, unsigned already).
 * and for each super-block of 256 columns (8 blocks):
 *   Q4_K (2368 bytes): 16 fp16 d, 16 fp16 dmin, then per block (288 bytes):
 *       16 scale bytes, 16 min bytes (6-bit values), 4 nibble steps arranged
 *       as Q4_0's (byte k of step s = q[4s+k] | q[16+4s+k] << 4).
 *   Q6_K (3360 bytes): 16 fp16 d, then per block (416 bytes): 16 int8 scales
 *       of elements 0-15, 16 of elements 16-31, 4 steps of low nibbles as
 *       Q4_0's (of q in 0..63, that is value + 32), then 2 steps of high
 *       bits: part p, row r, byte k holds bits 4-5 of q[16p + 4s + k] at
 *       bits 2s..2s+1, s < 4.
 * The layout is lossless (kern_p16_unpack_group restores the file's blocks
 * exactly).
 */
#define P16_ROWS 16
#define P16_Q8_0_BLOCK_BYTES (P16_ROWS * 2 + P16_ROWS * QK)                         /* 544 */
#define P16_Q4_0_BLOCK_BYTES (P16_ROWS * 2 + P16_ROWS * QK / 2)                     /* 288 */
#define P16_Q4_K_BLOCK_BYTES (2 * P16_ROWS + P16_ROWS * QK / 2)                     /* 288 */
#define P16_Q4_K_SUPER_BYTES (4 * P16_ROWS + 8 * P16_Q4_K_BLOCK_BYTES)              /* 2368 */
#define P16_Q6_K_BLOCK_BYTES (2 * P16_ROWS + P16_ROWS * QK / 2 + P16_ROWS * QK / 4) /* 416 */
#define P16_Q6_K_SUPER_BYTES (2 * P16_ROWS + 8 * P16_Q6_K_BLOCK_BYTES)              /* 3360 */

/*
 * Activations quantized per block of 32 (one row of cols per token):
 * q[t*cols + c] = round_to_nearest_even(x / d), d[t*nb + b] = max|x| / 127
 * of the block, and sum[t*nb + b] = the sum of the block's 32 q. Every path
 * computes bit-identical q, d and sum.
 *
 * For the VNNI kernels over packed weights, kern_matmul also makes an
 * interleaved copy ("X8") in which the activations a kernel step needs are
 * at constant offsets from one pointer: tokens in tiles of P16_NT, tile k
 * holding tokens [8k, 8k + nt) (nt = 8 except in the last tile) at
 * q8 + 8k*cols and d8, bias8, bias8h, ds8 + 8k*nb, and inside a tile
 *     q8[32*nt*b + 4*nt*s + 4*j + i] = q[token 8k+j][32b + 4s + i]   (s < 8, i < 4)
 *     d8[nt*b + j] = d[token 8k+j][b]
 * and what the weight type needs to start a block accumulator so that it
 * ends at sum w x (the packed weights are unsigned, w + off):
 *     Q8_0, Q4_0: bias8 = -off * sum (off = 128, 8)
 *     Q6_K: bias8 = -32 * (sum of q of elements 0-15), bias8h = the same for 16-31
 *     Q4_K: ds8 = d * sum (float), for the mins
 */
#define P16_NT 8

struct kern_qx {
    int8_t *q;
    float *d;
    int32_t *sum;
    int8_t *q8; /* X8 copy, or NULL */
    float *d8;
    int32_t *bias8;
    int32_t *bias8h;
    float *ds8;
};

/* One matrix product's arguments, as the path kernels see them. */
struct mm_args {
    enum gguf_tensor_type type;
    int cols;
    const uint8_t *w; /* row r at w + r * row_bytes (file layout), or NULL when packed */
    size_t row_bytes;
    const uint8_t *packed;    /* P16 layout, or NULL */
    const float *x;           /* T x cols activations */
    const struct kern_qx *qx; /* quantized activations (Q8_0/Q4_0 only) */
    float *y;                 /* y[t * ldy + r] */
    int ldy;
};

struct kern_ops {
    /* Quantizes n (a multiple of 32) floats as described at struct kern_qx. */
    void (*quantize_act)(const float *x, int n, int8_t *q, float *d, int32_t *sum);
    /* Y for rows [r0, r1) and tokens [t0, t1). Must handle a->w (file layout);
     * handles a->packed only when has_packed (r0 is then a multiple of 16).
     * Each output is computed by the same sequence of operations whatever
     * r0/r1/t0/t1 are, so results do not depend on the split into threads. */
    void (*matmul)(const struct mm_args *a, int r0, int r1, int t0, int t1);
    bool has_packed;
    float (*dot_f32)(const float *a, const float *b, int n);
    float (*dot_f16)(const uint16_t *a, const float *b, int n);
    void (*axpy_f32)(float *y, float a, const float *x, int n);
    void (*axpy_f16)(float *y, float a, const uint16_t *x, int n);
    void (*add)(float *y, const float *x, int n);
    void (*rmsnorm)(float *out, const float *x, const float *weight, int n, float eps);
    void (*softmax)(float *x, int n);
    void (*swiglu)(float *out, const float *gate, const float *up, int n);
    void (*f32_to_fp16_row)(const float *src, uint16_t *dst, int n);
    /* Reads n bytes (a multiple of 256, 64-byte aligned) as fast as the
     * path can and returns a value that depends on all of them. */
    uint64_t (*read_stream)(const void *p, size_t n);
};

extern const struct kern_ops kern_ops_scalar;
#if defined(__x86_64__)
extern const struct kern_ops kern_ops_avx2;
extern const struct kern_ops kern_ops_avx512;
/* The AVX2 matmul on the file layout (the AVX-512 path uses it for unpacked Q8_0/Q4_0). */
void kern_avx2_matmul(const struct mm_args *a, int r0, int r1, int t0, int t1);
#endif

/* The active path's table (chosen on first use). */
const struct kern_ops *kern_ops_get(void);

/* Scalar references the SIMD files fall back on for tails and unusual types. */
void kern_scalar_matmul(const struct mm_args *a, int r0, int r1, int t0, int t1);
void kern_scalar_quantize_act(const float *x, int n, int8_t *q, float *d, int32_t *sum);
float kern_scalar_dot_f32(const float *a, const float *b, int n);
float kern_scalar_dot_f16(const uint16_t *a, const float *b, int n);
void kern_scalar_axpy_f32(float *y, float a, const float *x, int n);
void kern_scalar_axpy_f16(float *y, float a, const uint16_t *x, int n);
void kern_scalar_add(float *y, const float *x, int n);
void kern_scalar_rmsnorm(float *out, const float *x, const float *weight, int n, float eps);
void kern_scalar_softmax(float *x, int n);
void kern_scalar_swiglu(float *out, const float *gate, const float *up, int n);
void kern_scalar_f32_to_fp16_row(const float *src, uint16_t *dst, int n);
uint64_t kern_scalar_read_stream(const void *p, size_t n);
/* Unpacks rows [16g, 16g+16) of a P16 matrix into file-layout rows at dst
 * (16 * row_bytes bytes; padding rows come out as zero blocks). */
void kern_p16_unpack_group(enum gguf_tensor_type type, int cols, const uint8_t *packed, int g,
                           uint8_t *dst);
/* Bytes of one group of 16 rows in the P16 layout. */
size_t kern_p16_group_bytes(enum gguf_tensor_type type, int cols);

static inline uint16_t kern_load_u16(const void *p)
{
    uint16_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

#endif
