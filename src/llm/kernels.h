/*
 * kernels.h - the numeric kernels of the inference engine: matrix products
 * over the weight types of GGUF files (F32, F16, BF16, Q8_0, Q4_0, Q4_K,
 * Q6_K), the row kernels of a transformer layer (RMSNorm, RoPE, softmax,
 * SwiGLU, dot/axpy; attention itself is llm/attention.c) and the
 * conversions and (de)quantization of rows.
 *
 * Every kernel has a plain scalar reference (kernels.c, read it like the
 * math) and, beside it, AVX2 (kernels_avx2.c) and AVX-512 VNNI
 * (kernels_avx512.c) versions. The path is chosen once at run time from the
 * CPU (__builtin_cpu_supports), or forced with the environment variable
 * ECHO_KERNELS=scalar|avx2|avx512 (an unsupported choice falls back to the
 * best supported path with a warning), or by kern_set_path (tests, bench).
 *
 * Numerics. F32/F16/BF16 weights multiply f32 activations exactly converted
 * (f32 accumulation). Quantized weights (Q8_0, Q4_0, Q4_K, Q6_K) multiply
 * activations quantized per block of 32 to int8 (scale = max|x|/127, round
 * to nearest even, the same on every path), integer dot products per block,
 * then scale by the weight's and the activation's block scales in f32: the
 * scheme of ggml's q8_0 x q8_0 and q4_0 x q8_0 (ggml quantizes activations
 * for k-quants per 256; per 32 here is at least as accurate).
 *
 * Speed: the quantized types have blocked int8 kernels over a packed copy of
 * the weights (kern_matrix_prepare): VPDPBUSD (VNNI) on the AVX-512 path,
 * VPMADDUBSW on the AVX2 path, with the same results; unpacked, they run
 * row kernels on the file layout. Packed weights live on huge pages
 * (kern_map_huge). docs/PERF.md has the figures.
 *
 * Threads: every function here is thread-safe (pure functions of their
 * arguments) except kern_set_path (call it while no kernel runs) and
 * kern_matrix_prepare/kern_matrix_release (call before/after any concurrent
 * use of that matrix). kern_matmul uses the given pool; a pool serves one
 * caller at a time (pool.h).
 */
#ifndef ECHO_LLM_KERNELS_H
#define ECHO_LLM_KERNELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/core.h"
#include "llm/gguf.h"
#include "llm/pool.h"

/* ---- matrices ------------------------------------------------------------ */

/* A weight matrix: rows x cols, row-major (GGUF: dims[0] = cols, dims[1] = rows). */
struct kern_matrix {
    enum gguf_tensor_type type; /* F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K */
    int rows, cols;    /* cols is a multiple of the block: 32 (Q8_0, Q4_0), 256 (Q4_K, Q6_K) */
    const void *data;  /* rows in the file's layout */
    size_t row_bytes;  /* kern_row_bytes(type, cols) */
    void *packed;      /* optional repacked copy (kern_matrix_prepare, or kern_matrix_use_packed) */
    size_t packed_map; /* bytes of packed's own mapping when owned here; 0 when borrowed */
};

/*
 * Fills m for `rows` rows of `cols` elements of `type` at data (packed =
 * NULL). Fails (-1, err filled) on a type the kernels do not support, a
 * non-positive size, or cols not a multiple of the type's block.
 */
int kern_matrix_init(struct kern_matrix *m, enum gguf_tensor_type type, int rows, int cols,
                     const void *data, struct echo_err *err);

/*
 * Optional one-time repacking into the layout the fastest kernel wants
 * (quantized types: 16 rows interleaved 4 bytes at a time with their scales
 * ahead, for AVX-512 VNNI and AVX2; the same size as the file's within 3%),
 * in its own mapping of huge pages. Does nothing (returns 0, packed stays
 * NULL) for types or paths without a packed kernel (float types; the scalar
 * path). The packed copy is lossless: every
 * path and kern_matrix_row read it correctly, so once prepared, m->data is
 * only read again by callers that read it themselves. Must be called before
 * concurrent use; kern_matrix_release frees the copy (safe on an unprepared
 * or zeroed matrix). -1 with err filled on failure (allocation, bad matrix).
 */
int kern_matrix_prepare(struct kern_matrix *m, struct echo_err *err);
void kern_matrix_release(struct kern_matrix *m);

/*
 * Repacking in pieces, for a loader that places every matrix of a model in
 * one buffer of huge pages and spreads the work of all matrices over its
 * threads. kern_matrix_packed_bytes is what kern_matrix_prepare would
 * allocate (0: nothing to pack for this type on this path);
 * kern_matrix_pack_groups packs the 16-row groups [g0, g1) of m (g1 <=
 * kern_matrix_groups(m)) into dst, a buffer of packed_bytes bytes aligned to
 * 64; threads may pack disjoint group ranges of one matrix at once.
 * kern_matrix_use_packed then makes dst (every group packed) m's packed copy,
 * owned by the caller: kern_matrix_release forgets it without freeing.
 */
size_t kern_matrix_packed_bytes(const struct kern_matrix *m);
int kern_matrix_groups(const struct kern_matrix *m);
void kern_matrix_pack_groups(const struct kern_matrix *m, void *dst, int g0, int g1);
void kern_matrix_use_packed(struct kern_matrix *m, void *dst);

/*
 * Anonymous memory for weights that are streamed: an mmap advised to use
 * transparent huge pages (2 MiB), which cuts the TLB misses of a pass over
 * gigabytes of weights (decode reads them all for every token; under a
 * hypervisor each miss is a two-level walk). NULL when the system refuses.
 * Free with kern_unmap(p, n) with the same n.
 */
void *kern_map_huge(size_t n);
void kern_unmap(void *p, size_t n);

/* Row r (0 <= r < rows) as cols floats, from the packed copy when there is one. */
void kern_matrix_row(const struct kern_matrix *m, int r, float *dst);

/*
 * Y[t*rows + r] = sum_c W[r][c] * X[t*cols + c], for t < T.  T == 1 is the
 * decode (matrix-vector) case, T > 1 prefill/batched decode (blocked
 * matrix-matrix). Work is split over the pool's threads; pool may be NULL
 * (run on the caller). Quantized types quantize the activations per block
 * first (see the top of this file). Each output is computed the same way
 * whatever T and the number of threads are: a token's results do not depend
 * on the batch it came in. X and Y must not overlap.
 */
void kern_matmul(const struct kern_matrix *W, const float *X, int T, float *Y,
                 struct kern_pool *pool);

/*
 * Several products of one input, Y[i] = W[i] X for i < n (n <= KERN_MATMUL_MAX,
 * all W[i] with the same cols; W[i] may differ in type and rows): the
 * activations are quantized once for all of them, and their tiles share one
 * run of the pool (the q/k/v projections of a layer, or gate and up). Each
 * Y[i] gets exactly the bits kern_matmul(W[i], X, T, Y[i]) gives. No Y[i] may
 * overlap X or another Y.
 */
#define KERN_MATMUL_MAX 4
void kern_matmul_multi(const struct kern_matrix *const *W, int n, const float *X, int T,
                       float *const *Y, struct kern_pool *pool);

/* ---- row kernels (single-threaded, called by the model per row/head) ------ */

/* out = x / sqrt(mean(x^2) + eps) * weight; out may alias x. */
void kern_rmsnorm(float *out, const float *x, const float *weight, int n, float eps);
/*
 * Rotary embedding, NEOX layout: in each of n_heads heads of head_dim
 * (even) values, the pair (i, i + head_dim/2), i < head_dim/2, is rotated by
 * the angle pos * theta^(-2i/head_dim) (computed in double).
 */
void kern_rope_neox(float *vec, int n_heads, int head_dim, int pos, float theta);
/* In place, numerically stable (subtracts the max); -inf entries become 0;
 * when every entry is -inf the result is uniform. */
void kern_softmax(float *x, int n);
/* out = silu(gate) * up = gate / (1 + exp(-gate)) * up; out may alias gate or up. */
void kern_swiglu(float *out, const float *gate, const float *up, int n);
/* y += x */
void kern_add(float *y, const float *x, int n);
float kern_dot_f32(const float *a, const float *b, int n);
/* For an F16 KV cache: sum a[i] * b[i] with a in IEEE half precision. */
float kern_dot_f16(const uint16_t *a, const float *b, int n);
/* y += a * x */
void kern_axpy_f16(float *y, float a, const uint16_t *x, int n);
void kern_axpy_f32(float *y, float a, const float *x, int n);

/* ---- conversions and (de)quantization of rows ----------------------------- */

/* IEEE half <-> float, round to nearest even; inf and subnormals kept, NaN
 * made quiet with its payload's top bits kept (bit-identical to F16C). */
float kern_fp16_to_f32(uint16_t h);
uint16_t kern_f32_to_fp16(float f);
/* bfloat16 <-> float; round to nearest even, NaN stays a (quiet) NaN. */
float kern_bf16_to_f32(uint16_t h);
uint16_t kern_f32_to_bf16(float f);
/* Converts n floats to F16 (for writing an F16 KV cache row). */
void kern_f32_to_fp16_row(const float *src, uint16_t *dst, int n);

/* n elements of type at src to floats. n is a multiple of the block size. */
void kern_dequantize_row(enum gguf_tensor_type type, const void *src, float *dst, int n);
/*
 * n floats to type at dst (kern_row_bytes(type, n) bytes): F32, F16, BF16,
 * Q8_0, Q4_0 with ggml's reference rounding (bit-identical to ggml's
 * quantize_row_*_ref). Returns 0, or -1 for another type (Q4_K and Q6_K
 * come from files only) or n not a multiple of the block.
 */
int kern_quantize_row(enum gguf_tensor_type type, const float *src, void *dst, int n);
/* Bytes of a row of n elements; 0 for an unsupported type or n not a multiple of the block. */
size_t kern_row_bytes(enum gguf_tensor_type type, int n);
/* True for the types kern_matmul and kern_dequantize_row handle (all seven;
 * kern_quantize_row does not produce Q4_K/Q6_K). */
bool kern_type_supported(enum gguf_tensor_type type);

/* ---- measurement ------------------------------------------------------------ */

/*
 * The machine's memory read bandwidth in GB/s (1e9 bytes/s): the threads of
 * pool read a buffer of `bytes` (use >= 256 MiB, far beyond the caches) in
 * 1 MiB chunks claimed in turn, as the matrix products read their weights;
 * best of `reps` passes after a warm-up pass. Returns -1 when the buffer
 * cannot be allocated. Takes the pool for its duration.
 */
double kern_read_bandwidth(struct kern_pool *pool, size_t bytes, int reps);

/* ---- code paths ------------------------------------------------------------- */

enum kern_path { KERN_PATH_SCALAR = 0, KERN_PATH_AVX2 = 1, KERN_PATH_AVX512 = 2 };

/* "avx512", "avx2" or "scalar": the active path. */
const char *kern_path_name(void);
enum kern_path kern_get_path(void);
/* True when this CPU (and this build) can run the path. */
bool kern_path_supported(enum kern_path path);
/* Forces a path (tests, benchmarks). -1 when unsupported. Not thread-safe:
 * call while no kernel runs. */
int kern_set_path(enum kern_path path);

#endif
