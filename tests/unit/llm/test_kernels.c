/*
 * test_kernels.c - the numeric kernels against references computed here in
 * double precision, on every code path this CPU supports (scalar, AVX2,
 * AVX-512), for every weight type (file layout and packed), odd sizes, and
 * pools of 1, 2 and 3 threads.
 *
 * Tolerances (eps = 2^-24, the float unit roundoff; each bound is a
 * standard worst-case bound of the summation a kernel performs, so a
 * failure is a real error, not noise):
 *   - F32/F16/BF16 products and dot products: the weights convert exactly,
 *     the sum of n products in float with 8 or 16 lanes has error at most
 *     (n/8 + 8) * 2 eps * sum|w x|.
 *   - Q8_0/Q4_0 products: the activations are quantized per block by the
 *     kernels' own rule (checked bit-identical on every path); the integer
 *     block dot products are exact, and the f32 scaling and sum over nb
 *     blocks has error at most (nb + 8) * 2 eps * sum_b |dw dx| sum |qw qx|
 *     against the exact value (the AVX2 path, like ggml's, converts the
 *     block's partial sums of 8 lanes separately, hence the sum of |qw qx|).
 *     Against the unquantized product the difference is bounded by
 *     sum_c |w_c| |x_c - dx q_c|, and |x - dx q| <= dx / 2 is checked too.
 *   - Q4_K/Q6_K products: as Q8_0, with (nb + 8) * 4 eps relative to the sum
 *     of the magnitudes of the scale part and the min part of each weight
 *     (w = d sc q - dmin m; the kernels sum the two parts apart).
 *   - Row kernels: as documented at each test.
 * Results must also be bitwise identical whatever the number of threads,
 * and whether a token is computed alone (T = 1) or in a batch.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "llm/kernels.h"
#include "llm/kernels_impl.h"
#include "llm/pool.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#define EPS 5.9604645e-8 /* 2^-24 */

/* ---- helpers ----------------------------------------------------------------- */

static uint64_t rng = 0x853c49e6748fea9bu;

static uint32_t rnd_u32(void)
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return (uint32_t)((rng * 0x2545f4914f6cdd1du) >> 32);
}

/* uniform in [-1, 1) */
static float rnd(void)
{
    return (float)((double)rnd_u32() / 2147483648.0 - 1.0);
}

static enum kern_path paths[3];
static int n_paths;
static enum kern_path best;

static void find_paths(void)
{
    n_paths = 0;
    for (int p = KERN_PATH_SCALAR; p <= KERN_PATH_AVX512; p++)
        if (kern_path_supported((enum kern_path)p)) paths[n_paths++] = (enum kern_path)p;
    best = paths[n_paths - 1];
}

static const struct kern_ops *ops_of(enum kern_path p)
{
#if defined(__x86_64__)
    if (p == KERN_PATH_AVX512) return &kern_ops_avx512;
    if (p == KERN_PATH_AVX2) return &kern_ops_avx2;
#endif
    (void)p;
    return &kern_ops_scalar;
}

static const char *path_name(enum kern_path p)
{
    return p == KERN_PATH_AVX512 ? "avx512" : p == KERN_PATH_AVX2 ? "avx2" : "scalar";
}

static float bits_f(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static uint32_t f_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static int teardown_path(void **state)
{
    (void)state;
    kern_set_path(best);
    return 0;
}

/* ---- conversions -------------------------------------------------------------- */

static void test_fp16_special_values(void **state)
{
    (void)state;
    struct {
        uint32_t f;
        uint16_t h;
    } cases[] = {
        {0x00000000, 0x0000}, /* +0 */
        {0x80000000, 0x8000}, /* -0 */
        {0x3f800000, 0x3c00}, /* 1 */
        {0xc0000000, 0xc000}, /* -2 */
        {0x477fe000, 0x7bff}, /* 65504, the largest half */
        {0x477fefff, 0x7bff}, /* just below the tie: stays 65504 */
        {0x477ff000, 0x7c00}, /* 65520: tie, to even = inf */
        {0x7f800000, 0x7c00}, /* inf */
        {0xff800000, 0xfc00}, /* -inf */
        {0x7fc00000, 0x7e00}, /* quiet NaN */
        {0x7f800001, 0x7e00}, /* signalling NaN becomes quiet */
        {0x7f802000, 0x7e01}, /* NaN payload's top bits kept */
        {0x38800000, 0x0400}, /* 2^-14, the smallest normal */
        {0x33800000, 0x0001}, /* 2^-24, the smallest subnormal */
        {0x33000000, 0x0000}, /* 2^-25: tie, to even = 0 */
        {0x33000001, 0x0001}, /* just above the tie */
        {0x33c00000, 0x0002}, /* 1.5 * 2^-24: tie, to even = 2 */
        {0x34200000, 0x0002}, /* 2.5 * 2^-24: tie, to even = 2 */
        {0x387fe000, 0x0400}, /* 1023.5 * 2^-24: tie, rounds up into the normals */
        {0x387fc000, 0x03ff}, /* 1023 * 2^-24, the largest subnormal */
        {0x3f801000, 0x3c00}, /* 1 + 2^-11: tie, to even = 1 */
        {0x3f803000, 0x3c02}, /* 1 + 3*2^-11: tie, to even = 1 + 2^-9 */
        {0x3f801001, 0x3c01}, /* just above a tie */
        {0x2f800000, 0x0000}, /* tiny: 0 */
        {0x7f7fffff, 0x7c00}, /* FLT_MAX: inf */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint16_t h = kern_f32_to_fp16(bits_f(cases[i].f));
        if (h != cases[i].h)
            fail_msg("f32 0x%08x -> fp16 0x%04x, want 0x%04x", cases[i].f, h, cases[i].h);
    }
    assert_true(kern_fp16_to_f32(0x0001) == 0x1p-24f);
    assert_true(kern_fp16_to_f32(0x03ff) == 1023 * 0x1p-24f);
    assert_true(kern_fp16_to_f32(0x7bff) == 65504.0f);
    assert_true(kern_fp16_to_f32(0x7c00) == INFINITY);
    assert_true(kern_fp16_to_f32(0xfc00) == -INFINITY);
    assert_true(isnan(kern_fp16_to_f32(0x7e00)));
    assert_int_equal(f_bits(kern_fp16_to_f32(0x7c01)), 0x7fc02000); /* made quiet, as F16C */
    assert_true(signbit(kern_fp16_to_f32(0x8000)) && kern_fp16_to_f32(0x8000) == 0.0f);

    /* Every half converts to float and back unchanged (NaNs stay NaN). */
    for (uint32_t h = 0; h < 65536; h++) {
        float f = kern_fp16_to_f32((uint16_t)h);
        uint16_t back = kern_f32_to_fp16(f);
        if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) {
            assert_true(isnan(f));
            assert_int_equal(back & 0x7e00, 0x7e00);
        } else if (back != h) {
            fail_msg("fp16 0x%04x -> %g -> 0x%04x", h, f, back);
        }
    }
}

#if defined(__x86_64__)
__attribute__((target("f16c"))) static uint16_t hw_f32_to_fp16(float f)
{
    return (uint16_t)_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT);
}
__attribute__((target("f16c"))) static float hw_fp16_to_f32(uint16_t h)
{
    return _cvtsh_ss(h);
}
#endif

/* The software conversions agree bit for bit with the F16C instructions. */
static void test_fp16_matches_hardware(void **state)
{
    (void)state;
#if defined(__x86_64__)
    if (!kern_path_supported(KERN_PATH_AVX2)) skip();
    for (uint32_t h = 0; h < 65536; h++) {
        uint32_t a = f_bits(kern_fp16_to_f32((uint16_t)h)), b = f_bits(hw_fp16_to_f32((uint16_t)h));
        if (a != b) fail_msg("fp16 0x%04x: software 0x%08x, F16C 0x%08x", h, a, b);
    }
    for (uint64_t u = 0; u < 0x100000000u; u += 4093) {
        uint16_t a = kern_f32_to_fp16(bits_f((uint32_t)u)), b = hw_f32_to_fp16(bits_f((uint32_t)u));
        if (a != b) fail_msg("f32 0x%08x: software 0x%04x, F16C 0x%04x", (uint32_t)u, a, b);
    }
    /* around every rounding boundary of the normal range */
    for (uint32_t e = 0x33000000u; e < 0x47800000u; e += 0x1000u)
        for (int d = -2; d <= 2; d++) {
            uint32_t u = e + (uint32_t)d;
            assert_int_equal(kern_f32_to_fp16(bits_f(u)), hw_f32_to_fp16(bits_f(u)));
        }
#else
    skip();
#endif
}

static void test_bf16_conversion(void **state)
{
    (void)state;
    struct {
        uint32_t f;
        uint16_t h;
    } cases[] = {
        {0x3f800000, 0x3f80}, /* 1 */
        {0x3f808000, 0x3f80}, /* tie, to even (down) */
        {0x3f818000, 0x3f82}, /* tie, to even (up) */
        {0x3f808001, 0x3f81}, /* above the tie */
        {0x7f800000, 0x7f80}, /* inf */
        {0xff800000, 0xff80}, /* -inf */
        {0x7f7fffff, 0x7f80}, /* FLT_MAX rounds to inf */
        {0x7f800001, 0x7fc0}, /* signalling NaN made quiet */
        {0xffc00000, 0xffc0}, /* negative quiet NaN */
        {0x00008000, 0x0000}, /* subnormal tie, to even */
        {0x00018000, 0x0002}, /* subnormal tie, to even (up) */
        {0x80000000, 0x8000}, /* -0 */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint16_t h = kern_f32_to_bf16(bits_f(cases[i].f));
        if (h != cases[i].h)
            fail_msg("f32 0x%08x -> bf16 0x%04x, want 0x%04x", cases[i].f, h, cases[i].h);
    }
    for (uint32_t h = 0; h < 65536; h++) {
        float f = kern_bf16_to_f32((uint16_t)h);
        assert_int_equal(f_bits(f), h << 16);
        if (!isnan(f)) assert_int_equal(kern_f32_to_bf16(f), h);
    }
}

/* ---- quantization ----------------------------------------------------------------- */

static void test_quantize_q8_0_known_block(void **state)
{
    (void)state;
    /* x = (j - 12) / 4: amax 4.75, d = 4.75/127 = 0.0374016 (fp16 0x28ca),
     * q = roundf(x / d) half away from zero, e.g. -3 -> -80.2 -> -80, 0.25 -> 6.68 -> 7. */
    static const int8_t want[32] = {-80, -74, -67, -60, -53, -47, -40, -33, -27, -20, -13,
                                    -7,  0,   7,   13,  20,  27,  33,  40,  47,  53,  60,
                                    67,  74,  80,  87,  94,  100, 107, 114, 120, 127};
    float x[32], back[32];
    for (int j = 0; j < 32; j++)
        x[j] = (float)(j - 12) * 0.25f;
    uint8_t blk[34];
    assert_int_equal(kern_quantize_row(GGUF_TENSOR_Q8_0, x, blk, 32), 0);
    assert_int_equal(blk[0] | blk[1] << 8, 0x28ca);
    assert_memory_equal(blk + 2, want, 32);
    kern_dequantize_row(GGUF_TENSOR_Q8_0, blk, back, 32);
    float d = kern_fp16_to_f32(0x28ca);
    for (int j = 0; j < 32; j++)
        assert_true(back[j] == want[j] * d);

    /* the halfway case roundf rounds away from zero: 0.5 units -> 1, -0.5 -> -1 */
    float y[32] = {0};
    y[0] = 127.0f;
    y[1] = 0.5f;
    y[2] = -0.5f;
    y[3] = 2.5f;
    assert_int_equal(kern_quantize_row(GGUF_TENSOR_Q8_0, y, blk, 32), 0);
    assert_int_equal(blk[0] | blk[1] << 8, 0x3c00); /* d = 1 */
    assert_int_equal((int8_t)blk[3], 1);
    assert_int_equal((int8_t)blk[4], -1);
    assert_int_equal((int8_t)blk[5], 3);

    /* all zeros: d = 0, q = 0 */
    memset(y, 0, sizeof(y));
    assert_int_equal(kern_quantize_row(GGUF_TENSOR_Q8_0, y, blk, 32), 0);
    for (int j = 0; j < 34; j++)
        assert_int_equal(blk[j], 0);
}

static void test_quantize_q4_0_known_block(void **state)
{
    (void)state;
    /* The element of largest magnitude is -6 (x[5]): d = -6 / -8 = 0.75
     * (fp16 0x3a00); q = min(15, trunc(x / d + 8.5)); element j < 16 in the
     * low nibble of byte j, j + 16 in the high one. E.g. byte 4: x[4] = 0.5
     * -> 9 (low), x[20] = 5.9 -> 16.37 -> clamped 15 (high) = 0xf9; byte 5:
     * x[5] = -6 -> 0 (low), x[21] = -1.5 -> 6 (high) = 0x60. */
    static const uint8_t want[16] = {0x76, 0x87, 0x97, 0x98, 0xf9, 0x60, 0x7a, 0x76,
                                     0x87, 0x97, 0x98, 0xa9, 0x69, 0x7a, 0x76, 0x87};
    float x[32], back[32];
    for (int j = 0; j < 32; j++)
        x[j] = (float)(j % 7 - 3) * 0.5f;
    x[5] = -6.0f;
    x[20] = 5.9f;
    uint8_t blk[18];
    assert_int_equal(kern_quantize_row(GGUF_TENSOR_Q4_0, x, blk, 32), 0);
    assert_int_equal(blk[0] | blk[1] << 8, 0x3a00);
    assert_memory_equal(blk + 2, want, 16);
    kern_dequantize_row(GGUF_TENSOR_Q4_0, blk, back, 32);
    for (int j = 0; j < 16; j++) {
        assert_true(back[j] == ((want[j] & 15) - 8) * 0.75f);
        assert_true(back[j + 16] == ((want[j] >> 4) - 8) * 0.75f);
    }
}

/* Inverse of ggml's get_scale_min_k4, written from the layout: scales and
 * mins of sub-blocks 0-3 in the low 6 bits of bytes 0-3 and 4-7; for
 * sub-blocks 4-7 the low 4 bits in bytes 8-11 (scale low nibble, min high
 * nibble) and the high 2 bits in the top bits of bytes 0-3 (scale) and 4-7
 * (min). */
static void put_scale_min_k4(uint8_t *q, int j, int sc, int m)
{
    if (j < 4) {
        q[j] = (uint8_t)((q[j] & 0xc0) | sc);
        q[j + 4] = (uint8_t)((q[j + 4] & 0xc0) | m);
    } else {
        q[j + 4] = (uint8_t)((sc & 15) | (m & 15) << 4);
        q[j - 4] = (uint8_t)((q[j - 4] & 0x3f) | (sc >> 4) << 6);
        q[j] = (uint8_t)((q[j] & 0x3f) | (m >> 4) << 6);
    }
}

static void test_k_quant_known_blocks(void **state)
{
    (void)state;
    /* Q4_K: d = 1, dmin = 0.5; sub-block j has scale 7j + 5 and min 63 - 8j,
     * and element l of sub-block j the nibble (l + j) % 16, stored in qs[32*(j/2) + l]
     * (low nibble for even j, high for odd j): value = sc*q - 0.5*m. */
    uint8_t b4[144] = {0};
    b4[0] = 0x00;
    b4[1] = 0x3c;
    b4[2] = 0x00;
    b4[3] = 0x38;
    for (int j = 0; j < 8; j++)
        put_scale_min_k4(b4 + 4, j, 7 * j + 5, 63 - 8 * j);
    for (int j = 0; j < 8; j++)
        for (int l = 0; l < 32; l++) {
            uint8_t *q = b4 + 16 + 32 * (j / 2) + l;
            int v = (l + j) % 16;
            *q = (uint8_t)(j & 1 ? (*q & 0x0f) | v << 4 : (*q & 0xf0) | v);
        }
    /* spot checks of the encoding: sub-block 5 has scale 40 = 0b101000: low
     * nibble 8 in byte 4+9, high bits 0b10 on top of byte 4+1 */
    assert_int_equal(b4[4 + 9] & 15, 8);
    assert_int_equal(b4[4 + 1] >> 6, 2);
    float y[256];
    kern_dequantize_row(GGUF_TENSOR_Q4_K, b4, y, 256);
    for (int j = 0; j < 8; j++)
        for (int l = 0; l < 32; l++) {
            float want = (float)(7 * j + 5) * (float)((l + j) % 16) - 0.5f * (float)(63 - 8 * j);
            if (y[32 * j + l] != want)
                fail_msg("q4_K element %d: %g, want %g", 32 * j + l, y[32 * j + l], want);
        }

    /* Q6_K: d = 0.25; scale k = k - 8; element e = 128n + 32k + l has
     * q = (7e) % 64: low 4 bits in ql[64n + 32(k&1) + l] (low nibble for k < 2),
     * high 2 bits at bit 2k of qh[32n + l]: value = 0.25 * scale * (q - 32). */
    uint8_t b6[210] = {0};
    for (int e = 0; e < 256; e++) {
        int n = e / 128, k = (e % 128) / 32, l = e % 32, q = (7 * e) % 64;
        uint8_t *lo = b6 + 64 * n + 32 * (k & 1) + l;
        *lo = (uint8_t)(k < 2 ? (*lo & 0xf0) | (q & 15) : (*lo & 0x0f) | (q & 15) << 4);
        b6[128 + 32 * n + l] |= (uint8_t)((q >> 4) << (2 * k));
    }
    for (int k = 0; k < 16; k++)
        b6[192 + k] = (uint8_t)(int8_t)(k - 8);
    b6[208] = 0x00;
    b6[209] = 0x34;
    kern_dequantize_row(GGUF_TENSOR_Q6_K, b6, y, 256);
    for (int e = 0; e < 256; e++) {
        int n = e / 128, k = (e % 128) / 32, l = e % 32;
        float want = 0.25f * (float)(8 * n + 2 * k + l / 16 - 8) * (float)((7 * e) % 64 - 32);
        if (y[e] != want) fail_msg("q6_K element %d: %g, want %g", e, y[e], want);
    }
    assert_int_equal(kern_row_bytes(GGUF_TENSOR_Q4_K, 512), 288);
    assert_int_equal(kern_row_bytes(GGUF_TENSOR_Q6_K, 512), 420);
    assert_int_equal(kern_row_bytes(GGUF_TENSOR_Q4_K, 32), 0);
    float x[256] = {0};
    assert_int_equal(kern_quantize_row(GGUF_TENSOR_Q4_K, x, b4, 256), -1);
}

static void test_quantize_round_trip(void **state)
{
    (void)state;
    enum gguf_tensor_type types[] = {GGUF_TENSOR_F32, GGUF_TENSOR_F16, GGUF_TENSOR_BF16,
                                     GGUF_TENSOR_Q8_0, GGUF_TENSOR_Q4_0};
    int n = 4096;
    float *x = malloc(n * sizeof(float)), *back = malloc(n * sizeof(float));
    uint8_t *q = malloc(n * 4);
    for (int i = 0; i < n; i++)
        x[i] = rnd() * (i % 97 == 0 ? 30.0f : 1.0f);
    for (size_t ti = 0; ti < sizeof(types) / sizeof(types[0]); ti++) {
        enum gguf_tensor_type t = types[ti];
        assert_int_equal(kern_quantize_row(t, x, q, n), 0);
        kern_dequantize_row(t, q, back, n);
        for (int b = 0; b < n / 32; b++) {
            float amax = 0;
            for (int j = 0; j < 32; j++)
                amax = fmaxf(amax, fabsf(x[b * 32 + j]));
            for (int j = 0; j < 32; j++) {
                int i = b * 32 + j;
                double err = fabs((double)back[i] - x[i]), tol;
                switch (t) {
                case GGUF_TENSOR_F32:
                    tol = 0;
                    break;
                case GGUF_TENSOR_F16:
                    tol = fabs(x[i]) * 0x1p-11;
                    break;
                case GGUF_TENSOR_BF16:
                    tol = fabs(x[i]) * 0x1p-8;
                    break;
                case GGUF_TENSOR_Q8_0: /* half a step, plus the fp16 rounding of d */
                    tol = amax / 127 * 0.5 + amax * 0x1p-11 * 1.01;
                    break;
                default: /* Q4_0: one full step at the clamped end, plus d's rounding */
                    tol = amax / 8 + amax * 0x1p-11 * 1.01;
                    break;
                }
                if (err > tol) fail_msg("type %d element %d: %g -> %g", t, i, x[i], back[i]);
            }
        }
    }
    /* bad arguments */
    assert_int_equal(kern_quantize_row(GGUF_TENSOR_Q8_0, x, q, 33), -1);
    assert_int_equal(kern_quantize_row(GGUF_TENSOR_Q4_K, x, q, 256), -1);
    assert_int_equal(kern_quantize_row((enum gguf_tensor_type)3, x, q, 256), -1);
    assert_int_equal(kern_row_bytes(GGUF_TENSOR_Q8_0, 64), 68);
    assert_int_equal(kern_row_bytes(GGUF_TENSOR_Q4_0, 64), 36);
    assert_int_equal(kern_row_bytes(GGUF_TENSOR_BF16, 3), 6);
    assert_int_equal(kern_row_bytes(GGUF_TENSOR_F32, 3), 12);
    assert_int_equal(kern_row_bytes(GGUF_TENSOR_Q8_0, 40), 0);
    assert_int_equal(kern_row_bytes(GGUF_TENSOR_Q6_K, 256), 210);
    assert_true(kern_type_supported(GGUF_TENSOR_Q4_K));
    assert_true(kern_type_supported(GGUF_TENSOR_BF16));
    assert_false(kern_type_supported((enum gguf_tensor_type)3));
    /* NaN and inf do not crash the reference (no undefined float-to-int casts) */
    x[0] = NAN;
    x[40] = INFINITY;
    assert_int_equal(kern_quantize_row(GGUF_TENSOR_Q8_0, x, q, 64), 0);
    assert_int_equal(kern_quantize_row(GGUF_TENSOR_Q4_0, x, q, 64), 0);
    free(q);
    free(back);
    free(x);
}

/* Activation quantization is bit-identical on every path, including ties,
 * zero blocks, tiny and non-finite values. */
static void test_quantize_act_paths(void **state)
{
    (void)state;
    int n = 32 * 40;
    float *x = malloc(n * sizeof(float));
    for (int i = 0; i < n; i++)
        x[i] = rnd() * 3;
    for (int j = 0; j < 32; j++) /* block 1: d = 1, so x*id = x; ties at .5 go to even */
        x[32 + j] = (j == 0) ? 127.0f : (float)(j - 16) + 0.5f;
    memset(x + 64, 0, 32 * sizeof(float)); /* block 2: zeros */
    for (int j = 0; j < 32; j++)           /* block 3: subnormals */
        x[96 + j] = bits_f((uint32_t)(j + 1)) * (j & 1 ? -1.0f : 1.0f);
    x[130] = NAN;      /* block 4 */
    x[170] = INFINITY; /* block 5 */
    x[200] = -INFINITY;
    x[240] = 1e38f; /* block 7 */
    int8_t q0[32 * 40], q1[32 * 40];
    float d0[40], d1[40];
    int32_t s0[40], s1[40];
    kern_scalar_quantize_act(x, n, q0, d0, s0);
    assert_int_equal(q0[32 + 1], -14); /* -14.5 -> -14 (even) */
    assert_int_equal(q0[32 + 2], -14); /* -13.5 -> -14 (even) */
    assert_int_equal(q0[32 + 19], 4);  /* 3.5 -> 4 */
    for (int b = 0; b < 40; b++) {
        int32_t s = 0;
        for (int j = 0; j < 32; j++) {
            s += q0[b * 32 + j];
            assert_true(q0[b * 32 + j] >= -127 && q0[b * 32 + j] <= 127);
        }
        assert_int_equal(s, s0[b]);
    }
    for (int p = 0; p < n_paths; p++) {
        ops_of(paths[p])->quantize_act(x, n, q1, d1, s1);
        assert_memory_equal(q0, q1, sizeof(q0));
        assert_memory_equal(d0, d1, sizeof(d0));
        assert_memory_equal(s0, s1, sizeof(s0));
    }
    free(x);
}

/* ---- matrix products ----------------------------------------------------------------- */

struct mm_case {
    int rows, cols, T;
};

static const struct mm_case mm_cases[] = {
    {1, 32, 1},    {5, 96, 2},   {17, 160, 3},   {33, 4064, 7}, {100, 1536, 1}, {64, 4096, 2},
    {35, 320, 64}, {16, 32, 64}, {130, 2080, 5}, {3, 8960, 3},  {48, 544, 9},
};
/* float types also take row lengths that are not multiples of 32 */
static const struct mm_case mm_float_cases[] = {{7, 37, 3}, {18, 100, 5}, {4, 1, 2}, {9, 17, 1}};

static double weight_at(enum gguf_tensor_type type, const uint8_t *row, int c)
{
    float v[256];
    switch (type) {
    case GGUF_TENSOR_Q4_K:
    case GGUF_TENSOR_Q6_K: {
        size_t bs = type == GGUF_TENSOR_Q4_K ? 144 : 210;
        kern_dequantize_row(type, row + (size_t)(c / 256) * bs, v, 256);
        return v[c % 256];
    }
    case GGUF_TENSOR_Q8_0:
    case GGUF_TENSOR_Q4_0: {
        size_t bs = type == GGUF_TENSOR_Q8_0 ? 34 : 18;
        kern_dequantize_row(type, row + (size_t)(c / 32) * bs, v, 32);
        return v[c % 32];
    }
    default:
        kern_dequantize_row(type, row + kern_row_bytes(type, 1) * (size_t)c, v, 1);
        return v[0];
    }
}

/* integer quant of weight (r, c) and its block scale */
static int weight_q(enum gguf_tensor_type type, const uint8_t *row, int c, double *d)
{
    if (type == GGUF_TENSOR_Q8_0) {
        const uint8_t *blk = row + (size_t)(c / 32) * 34;
        *d = kern_fp16_to_f32((uint16_t)(blk[0] | blk[1] << 8));
        return (int8_t)blk[2 + c % 32];
    }
    const uint8_t *blk = row + (size_t)(c / 32) * 18;
    *d = kern_fp16_to_f32((uint16_t)(blk[0] | blk[1] << 8));
    int j = c % 32;
    return (j < 16 ? (blk[2 + j] & 15) : (blk[2 + j - 16] >> 4)) - 8;
}

struct mm_ref {
    double *y;   /* the exact product the kernels compute (quantized activations for Q types) */
    double *tol; /* its error bound */
};

static void compute_ref(enum gguf_tensor_type type, const struct mm_case *c, const uint8_t *w,
                        size_t row_bytes, const float *x, struct mm_ref *ref)
{
    bool quant = type == GGUF_TENSOR_Q8_0 || type == GGUF_TENSOR_Q4_0 || type == GGUF_TENSOR_Q4_K ||
                 type == GGUF_TENSOR_Q6_K;
    int nb = c->cols / 32;
    int8_t *xq = NULL;
    float *xd = NULL;
    int32_t *xs = NULL;
    if (quant) {
        xq = malloc((size_t)c->T * c->cols);
        xd = malloc((size_t)c->T * nb * sizeof(float));
        xs = malloc((size_t)c->T * nb * sizeof(int32_t));
        for (int t = 0; t < c->T; t++) {
            kern_scalar_quantize_act(x + (size_t)t * c->cols, c->cols, xq + (size_t)t * c->cols,
                                     xd + (size_t)t * nb, xs + (size_t)t * nb);
            /* the activation quantization error is within half a step */
            for (int i = 0; i < c->cols; i++) {
                double dx = xd[t * nb + i / 32];
                double e = fabs(x[t * c->cols + i] - dx * xq[t * c->cols + i]);
                if (e > dx * 0.5 * (1 + 1e-5))
                    fail_msg("activation %d quantized with error %g > half step %g", i, e, dx / 2);
            }
        }
    }
    for (int t = 0; t < c->T; t++) {
        const float *xt = x + (size_t)t * c->cols;
        for (int r = 0; r < c->rows; r++) {
            const uint8_t *row = w + (size_t)r * row_bytes;
            double y = 0, mag = 0, yf = 0, qerr = 0;
            if (type == GGUF_TENSOR_Q4_K || type == GGUF_TENSOR_Q6_K) {
                /* exact: the scale part and the min part of every element
                 * (w = d sc q - dmin m), times the quantized activation; the
                 * kernels sum the parts separately, so both bound the error */
                for (int i = 0; i < c->cols; i++) {
                    int b = i / 32;
                    double ax = (double)xd[t * nb + b] * xq[t * c->cols + i], part, minpart = 0;
                    if (type == GGUF_TENSOR_Q4_K) {
                        struct blk_q4_K blk;
                        memcpy(&blk, row + (size_t)(i / 256) * 144, 144);
                        uint8_t sc, m;
                        kern_q4_K_scale_min((i % 256) / 32, blk.scales, &sc, &m);
                        int e = i % 256, j = e / 32, l = e % 32;
                        int q = blk.qs[32 * (j / 2) + l];
                        q = j & 1 ? q >> 4 : q & 15;
                        part = (double)kern_fp16_to_f32(blk.d) * sc * q;
                        minpart = (double)kern_fp16_to_f32(blk.dmin) * m;
                    } else {
                        struct blk_q6_K blk;
                        memcpy(&blk, row + (size_t)(i / 256) * 210, 210);
                        part = (double)kern_fp16_to_f32(blk.d) * kern_q6_K_scale(&blk, i % 256) *
                               kern_q6_K_q(&blk, i % 256);
                    }
                    y += (part - minpart) * ax;
                    mag += (fabs(part) + fabs(minpart)) * fabs(ax);
                    double wf = weight_at(type, row, i);
                    if (fabs(wf - (part - minpart)) > 4 * EPS * (fabs(part) + fabs(minpart)))
                        fail_msg("dequantized weight %d: %g, want %g", i, wf, part - minpart);
                    yf += wf * xt[i];
                    qerr += fabs(wf) * fabs(xt[i] - ax);
                }
                ref->tol[t * c->rows + r] = (nb + 8) * 4 * EPS * mag + 1e-35;
                if (fabs(y - yf) > qerr * (1 + 1e-6) + 8 * EPS * mag + 1e-30)
                    fail_msg("quantized reference off the float product: %g vs %g (bound %g)", y,
                             yf, qerr);
            } else if (!quant) {
                for (int i = 0; i < c->cols; i++) {
                    double p = weight_at(type, row, i) * xt[i];
                    y += p;
                    mag += fabs(p);
                }
                ref->tol[t * c->rows + r] = (c->cols / 8.0 + 8) * 2 * EPS * mag + 1e-35;
            } else {
                for (int b = 0; b < nb; b++) {
                    double dw = 0, dx = xd[t * nb + b];
                    long isum = 0, iabs = 0;
                    for (int j = 0; j < 32; j++) {
                        int i = b * 32 + j;
                        int qw = weight_q(type, row, i, &dw);
                        isum += (long)qw * xq[t * c->cols + i];
                        iabs += labs((long)qw * xq[t * c->cols + i]);
                        double wf = weight_at(type, row, i);
                        yf += wf * xt[i];
                        qerr += fabs(wf) * fabs(xt[i] - dx * xq[t * c->cols + i]);
                    }
                    y += dw * dx * (double)isum;
                    mag += fabs(dw * dx) * (double)iabs;
                }
                ref->tol[t * c->rows + r] = (nb + 8) * 2 * EPS * mag + 1e-35;
                /* the quantized product is as close to the float one as the
                 * activation rounding allows */
                if (fabs(y - yf) > qerr * (1 + 1e-6) + 1e-30)
                    fail_msg("quantized reference off the float product: %g vs %g (bound %g)", y,
                             yf, qerr);
            }
            ref->y[t * c->rows + r] = y;
        }
    }
    free(xs);
    free(xd);
    free(xq);
}

static void check_against_ref(const float *y, const struct mm_ref *ref, const struct mm_case *c,
                              const char *what)
{
    for (int i = 0; i < c->rows * c->T; i++) {
        double e = fabs(y[i] - ref->y[i]);
        if (!(e <= ref->tol[i]))
            fail_msg("%s %dx%d T=%d: output %d (row %d, token %d) = %.9g, want %.9g (tol %.3g)",
                     what, c->rows, c->cols, c->T, i, i % c->rows, i / c->rows, y[i], ref->y[i],
                     ref->tol[i]);
    }
}

static void run_case(enum gguf_tensor_type type, const struct mm_case *c, struct kern_pool **pools)
{
    size_t row_bytes = kern_row_bytes(type, c->cols);
    uint8_t *w = malloc(row_bytes * c->rows);
    float *x = malloc((size_t)c->T * c->cols * sizeof(float));
    float *row = malloc((size_t)c->cols * sizeof(float));
    size_t ny = (size_t)c->rows * c->T;
    float *y = malloc(ny * sizeof(float)), *y0 = malloc(ny * sizeof(float));
    float *y1 = malloc((size_t)c->rows * sizeof(float));
    struct mm_ref ref = {malloc(ny * sizeof(double)), malloc(ny * sizeof(double))};

    for (int r = 0; r < c->rows; r++) {
        float scale = r % 7 == 3 ? 8.0f : 1.0f; /* rows of different magnitudes */
        if (type == GGUF_TENSOR_Q4_K || type == GGUF_TENSOR_Q6_K) {
            /* any bytes are a valid k-quant block once its fp16 scales are sane */
            for (size_t i = 0; i < row_bytes; i++)
                w[r * row_bytes + i] = (uint8_t)rnd_u32();
            for (int i = 0; i < c->cols / 256; i++) {
                uint8_t *blk =
                    w + r * row_bytes + (size_t)i * (type == GGUF_TENSOR_Q4_K ? 144 : 210);
                uint16_t d = kern_f32_to_fp16(rnd() * 0.02f * scale);
                uint16_t dmin = kern_f32_to_fp16(rnd() * 0.02f);
                memcpy(type == GGUF_TENSOR_Q4_K ? blk : blk + 208, &d, 2);
                if (type == GGUF_TENSOR_Q4_K) memcpy(blk + 2, &dmin, 2);
            }
            continue;
        }
        for (int i = 0; i < c->cols; i++)
            row[i] = rnd() * scale;
        assert_int_equal(kern_quantize_row(type, row, w + r * row_bytes, c->cols), 0);
    }
    for (int i = 0; i < c->T * c->cols; i++)
        x[i] = rnd() * (i % 61 == 5 ? 20.0f : 1.0f); /* a few outliers, as real activations */
    compute_ref(type, c, w, row_bytes, x, &ref);

    /* the packed copy is made by the AVX-512 path and then read by every path */
    struct kern_matrix plain, packed;
    struct echo_err err;
    assert_int_equal(kern_matrix_init(&plain, type, c->rows, c->cols, w, &err), 0);
    packed = plain;
    if (kern_path_supported(KERN_PATH_AVX512)) {
        kern_set_path(KERN_PATH_AVX512);
        assert_int_equal(kern_matrix_prepare(&packed, &err), 0);
        bool packable =
            type != GGUF_TENSOR_F32 && type != GGUF_TENSOR_F16 && type != GGUF_TENSOR_BF16;
        assert_true((packed.packed != NULL) == packable);
    }

    for (int p = 0; p < n_paths; p++) {
        assert_int_equal(kern_set_path(paths[p]), 0);
        for (int v = 0; v < 2; v++) {
            const struct kern_matrix *m = v ? &packed : &plain;
            char what[64];
            snprintf(what, sizeof(what), "type %d %s%s", type, path_name(paths[p]),
                     v && m->packed ? " packed" : "");
            for (int k = 0; k < 3; k++) {
                memset(y, 0xff, ny * sizeof(float));
                kern_matmul(m, x, c->T, y, pools[k]);
                check_against_ref(y, &ref, c, what);
                if (k == 0)
                    memcpy(y0, y, ny * sizeof(float));
                else if (memcmp(y0, y, ny * sizeof(float)) != 0)
                    fail_msg("%s: %d threads differ from 1 thread", what, kern_pool_size(pools[k]));
            }
            /* each token alone gives the same bits as in the batch */
            for (int t = 0; t < c->T && c->T > 1; t++) {
                kern_matmul(m, x + (size_t)t * c->cols, 1, y1, pools[t % 3]);
                if (memcmp(y1, y0 + (size_t)t * c->rows, c->rows * sizeof(float)) != 0)
                    fail_msg("%s %dx%d: token %d alone differs from the batch of %d", what, c->rows,
                             c->cols, t, c->T);
            }
            if (v == 0 && !packed.packed) break;
        }
    }
    kern_matrix_release(&packed);
    free(ref.tol);
    free(ref.y);
    free(y1);
    free(y0);
    free(y);
    free(row);
    free(x);
    free(w);
}

/* k-quants: rows of whole super-blocks of 256 */
static const struct mm_case mm_k_cases[] = {
    {1, 256, 1},  {5, 512, 2},   {17, 1536, 3}, {33, 2304, 7},
    {3, 8960, 3}, {20, 256, 64}, {70, 768, 9},
};

static void matmul_type(enum gguf_tensor_type type)
{
    struct kern_pool *pools[3] = {kern_pool_new(1), kern_pool_new(2), kern_pool_new(3)};
    if (type == GGUF_TENSOR_Q4_K || type == GGUF_TENSOR_Q6_K) {
        for (size_t i = 0; i < sizeof(mm_k_cases) / sizeof(mm_k_cases[0]); i++)
            run_case(type, &mm_k_cases[i], pools);
        for (int k = 0; k < 3; k++)
            kern_pool_free(pools[k]);
        return;
    }
    for (size_t i = 0; i < sizeof(mm_cases) / sizeof(mm_cases[0]); i++)
        run_case(type, &mm_cases[i], pools);
    if (type == GGUF_TENSOR_F32 || type == GGUF_TENSOR_F16 || type == GGUF_TENSOR_BF16)
        for (size_t i = 0; i < sizeof(mm_float_cases) / sizeof(mm_float_cases[0]); i++)
            run_case(type, &mm_float_cases[i], pools);
    /* a NULL pool runs on the caller */
    run_case(type, &mm_cases[2], (struct kern_pool *[3]){NULL, pools[1], NULL});
    for (int k = 0; k < 3; k++)
        kern_pool_free(pools[k]);
}

static void test_matmul_f32(void **state)
{
    (void)state;
    matmul_type(GGUF_TENSOR_F32);
}

static void test_matmul_f16(void **state)
{
    (void)state;
    matmul_type(GGUF_TENSOR_F16);
}

static void test_matmul_bf16(void **state)
{
    (void)state;
    matmul_type(GGUF_TENSOR_BF16);
}

static void test_matmul_q8_0(void **state)
{
    (void)state;
    matmul_type(GGUF_TENSOR_Q8_0);
}

static void test_matmul_q4_0(void **state)
{
    (void)state;
    matmul_type(GGUF_TENSOR_Q4_0);
}

static void test_matmul_q4_K(void **state)
{
    (void)state;
    matmul_type(GGUF_TENSOR_Q4_K);
}

static void test_matmul_q6_K(void **state)
{
    (void)state;
    matmul_type(GGUF_TENSOR_Q6_K);
}

/* Extreme quants: Q8_0 weights of -128 (not produced by ggml's quantizer, but
 * legal in a file) and activations at +-127 reach the corners of the integer
 * arithmetic (the VNNI offset, the AVX2 sign trick). */
static void test_matmul_extreme_quants(void **state)
{
    (void)state;
    int rows = 19, cols = 64;
    size_t rb = kern_row_bytes(GGUF_TENSOR_Q8_0, cols);
    uint8_t *w = calloc(rows, rb);
    for (int r = 0; r < rows; r++)
        for (int b = 0; b < 2; b++) {
            uint8_t *blk = w + r * rb + b * 34;
            blk[0] = 0x00;
            blk[1] = 0x3c; /* d = 1 */
            for (int j = 0; j < 32; j++)
                blk[2 + j] = (uint8_t)((r + j) % 3 == 0 ? -128 : (r + j) % 3 == 1 ? 127 : -127);
        }
    float x[64];
    for (int i = 0; i < 64; i++)
        x[i] = i % 2 ? 1.0f : -1.0f; /* quantizes to exactly +-127 with d = 1/127 */
    double want[19];
    for (int r = 0; r < rows; r++) {
        long s = 0;
        for (int i = 0; i < 64; i++)
            s += (long)(int8_t)w[r * rb + (i / 32) * 34 + 2 + i % 32] * (i % 2 ? 127 : -127);
        want[r] = s * (double)(1.0f / 127.0f); /* d_w = 1, d_x = 1/127 */
    }
    struct kern_matrix m, mp;
    assert_int_equal(kern_matrix_init(&m, GGUF_TENSOR_Q8_0, rows, cols, w, NULL), 0);
    mp = m;
    if (kern_path_supported(KERN_PATH_AVX512)) {
        kern_set_path(KERN_PATH_AVX512);
        assert_int_equal(kern_matrix_prepare(&mp, NULL), 0);
    }
    for (int p = 0; p < n_paths; p++) {
        kern_set_path(paths[p]);
        float y[19], yp[19];
        kern_matmul(&m, x, 1, y, NULL);
        kern_matmul(&mp, x, 1, yp, NULL);
        for (int r = 0; r < rows; r++) {
            assert_true(fabs(y[r] - want[r]) <= 1e-5 * fabs(want[r]) + 1e-6);
            assert_true(fabs(yp[r] - want[r]) <= 1e-5 * fabs(want[r]) + 1e-6);
        }
    }
    kern_matrix_release(&mp);
    free(w);
}

/* The packed layout is lossless and as documented. */
static void test_packed_layout(void **state)
{
    (void)state;
    if (!kern_path_supported(KERN_PATH_AVX512)) skip();
    kern_set_path(KERN_PATH_AVX512);
    enum gguf_tensor_type types[4] = {GGUF_TENSOR_Q8_0, GGUF_TENSOR_Q4_0, GGUF_TENSOR_Q4_K,
                                      GGUF_TENSOR_Q6_K};
    for (int ti = 0; ti < 4; ti++) {
        enum gguf_tensor_type type = types[ti];
        bool kq = type == GGUF_TENSOR_Q4_K || type == GGUF_TENSOR_Q6_K;
        int rows = 21, cols = kq ? 512 : 96; /* two groups, the second padded */
        size_t rb = kern_row_bytes(type, cols);
        uint8_t *w = malloc(rows * rb);
        for (size_t i = 0; i < rows * rb; i++)
            w[i] = (uint8_t)rnd_u32();
        struct kern_matrix m;
        assert_int_equal(kern_matrix_init(&m, type, rows, cols, w, NULL), 0);
        assert_int_equal(kern_matrix_prepare(&m, NULL), 0);
        assert_non_null(m.packed);
        const uint8_t *p = m.packed;
        if (!kq) {
            size_t bs = type == GGUF_TENSOR_Q8_0 ? 34 : 18;
            size_t pbs = type == GGUF_TENSOR_Q8_0 ? 544 : 288;
            /* row 5, block 2: scale at [2*5], step s row 5 = bytes 4s..4s+3 */
            const uint8_t *src = w + 5 * rb + 2 * bs;
            const uint8_t *blk = p + 2 * pbs;
            assert_memory_equal(blk + 10, src, 2);
            for (int s = 0; s < (type == GGUF_TENSOR_Q8_0 ? 8 : 4); s++)
                for (int k = 0; k < 4; k++)
                    assert_int_equal(blk[32 + 64 * s + 4 * 5 + k], type == GGUF_TENSOR_Q8_0
                                                                       ? src[2 + 4 * s + k] ^ 0x80
                                                                       : src[2 + 4 * s + k]);
        } else if (type == GGUF_TENSOR_Q4_K) {
            /* row 5, super-block 1: d at [2*5], dmin at [32 + 2*5]; block 3's
             * scale and min bytes at [64 + 3*288 + 5] and [+16] */
            struct blk_q4_K src;
            memcpy(&src, w + 5 * rb + 144, 144);
            const uint8_t *sb = p + 2368;
            assert_memory_equal(sb + 10, &src.d, 2);
            assert_memory_equal(sb + 42, &src.dmin, 2);
            uint8_t sc, mn;
            kern_q4_K_scale_min(3, src.scales, &sc, &mn);
            assert_int_equal(sb[64 + 3 * 288 + 5], sc);
            assert_int_equal(sb[64 + 3 * 288 + 16 + 5], mn);
        } else {
            /* row 5, super-block 1: d at [2*5]; block 6's scales at [32 + 6*416 + 5], [+16] */
            struct blk_q6_K src;
            memcpy(&src, w + 5 * rb + 210, 210);
            const uint8_t *sb = p + 3360;
            assert_memory_equal(sb + 10, &src.d, 2);
            assert_int_equal((int8_t)sb[32 + 6 * 416 + 5], kern_q6_K_scale(&src, 6 * 32));
            assert_int_equal((int8_t)sb[32 + 6 * 416 + 16 + 5], kern_q6_K_scale(&src, 6 * 32 + 16));
        }
        /* lossless: unpacking restores the file's rows; padding rows are zero */
        uint8_t *un = malloc(16 * rb);
        for (int g = 0; g < 2; g++) {
            kern_p16_unpack_group(type, cols, m.packed, g, un);
            for (int r = 0; r < 16; r++) {
                int row = g * 16 + r;
                if (row < rows) {
                    assert_memory_equal(un + r * rb, w + row * rb, rb);
                } else {
                    float f[512];
                    kern_dequantize_row(type, un + r * rb, f, cols);
                    for (int i = 0; i < cols; i++)
                        assert_true(f[i] == 0.0f);
                }
            }
        }
        /* kern_matrix_row reads either layout */
        float a[512], b[512], c[512];
        for (int r = 0; r < rows; r++) {
            struct kern_matrix plain = m;
            plain.packed = NULL;
            kern_matrix_row(&plain, r, a);
            kern_matrix_row(&m, r, b);
            kern_dequantize_row(type, w + r * rb, c, cols);
            assert_memory_equal(a, c, cols * sizeof(float));
            assert_memory_equal(b, c, cols * sizeof(float));
        }
        kern_matrix_release(&m);
        assert_null(m.packed);
        kern_matrix_release(&m); /* twice is harmless */
        free(un);
        free(w);
    }
    /* float types are not packed */
    float fw[64] = {0};
    struct kern_matrix fm;
    assert_int_equal(kern_matrix_init(&fm, GGUF_TENSOR_F32, 2, 32, fw, NULL), 0);
    assert_int_equal(kern_matrix_prepare(&fm, NULL), 0);
    assert_null(fm.packed);
}

static void test_matrix_init_errors(void **state)
{
    (void)state;
    struct kern_matrix m;
    struct echo_err err;
    uint8_t buf[1024] = {0};
    assert_int_equal(kern_matrix_init(&m, (enum gguf_tensor_type)3, 4, 256, buf, &err), -1);
    assert_non_null(strstr(err.msg, "not supported"));
    assert_int_equal(kern_matrix_init(&m, GGUF_TENSOR_Q6_K, 4, 288, buf, &err), -1);
    assert_non_null(strstr(err.msg, "multiple"));
    assert_int_equal(kern_matrix_init(&m, GGUF_TENSOR_Q8_0, 4, 48, buf, &err), -1);
    assert_non_null(strstr(err.msg, "multiple"));
    assert_int_equal(kern_matrix_init(&m, GGUF_TENSOR_F32, 0, 4, buf, &err), -1);
    assert_int_equal(kern_matrix_init(&m, GGUF_TENSOR_F32, 4, -1, buf, &err), -1);
    assert_int_equal(kern_matrix_init(&m, GGUF_TENSOR_F32, 4, 4, NULL, &err), -1);
    assert_int_equal(kern_matrix_init(&m, GGUF_TENSOR_Q4_0, 4, 64, buf, &err), 0);
    assert_int_equal(m.row_bytes, 36);
    assert_null(m.packed);
    /* a hand-made matrix whose row_bytes lies is refused by prepare */
    m.row_bytes = 35;
    if (kern_path_supported(KERN_PATH_AVX512)) {
        kern_set_path(KERN_PATH_AVX512);
        assert_int_equal(kern_matrix_prepare(&m, &err), -1);
    }
}

/* ---- row kernels ------------------------------------------------------------------- */

static const int row_sizes[] = {1, 7, 15, 16, 17, 31, 33, 100, 128, 1536, 4099};
#define N_ROW_SIZES (int)(sizeof(row_sizes) / sizeof(row_sizes[0]))

static void test_dot_axpy_add(void **state)
{
    (void)state;
    int nmax = 4099;
    float *a = malloc(nmax * 4), *b = malloc(nmax * 4), *y = malloc(nmax * 4),
          *y0 = malloc(nmax * 4);
    uint16_t *h = malloc(nmax * 2);
    for (int i = 0; i < nmax; i++) {
        a[i] = rnd() * 4;
        b[i] = rnd();
        h[i] = kern_f32_to_fp16(rnd() * 3);
        y0[i] = rnd();
    }
    for (int p = 0; p < n_paths; p++) {
        kern_set_path(paths[p]);
        for (int si = 0; si < N_ROW_SIZES; si++) {
            int n = row_sizes[si];
            double ref = 0, mag = 0, ref16 = 0, mag16 = 0;
            for (int i = 0; i < n; i++) {
                ref += (double)a[i] * b[i];
                mag += fabs((double)a[i] * b[i]);
                ref16 += (double)kern_fp16_to_f32(h[i]) * b[i];
                mag16 += fabs((double)kern_fp16_to_f32(h[i]) * b[i]);
            }
            double tol = (n / 8.0 + 8) * 2 * EPS;
            assert_true(fabs(kern_dot_f32(a, b, n) - ref) <= tol * mag);
            assert_true(fabs(kern_dot_f16(h, b, n) - ref16) <= tol * mag16);

            /* axpy: one product and one sum per element (two roundings, or one with FMA) */
            float alpha = 0.37f;
            memcpy(y, y0, n * 4);
            kern_axpy_f32(y, alpha, a, n);
            for (int i = 0; i < n; i++) {
                double r = y0[i] + (double)alpha * a[i];
                assert_true(fabs(y[i] - r) <= 2 * EPS * (fabs(y0[i]) + fabs(alpha * a[i])));
            }
            memcpy(y, y0, n * 4);
            kern_axpy_f16(y, alpha, h, n);
            for (int i = 0; i < n; i++) {
                double xi = kern_fp16_to_f32(h[i]);
                double r = y0[i] + alpha * xi;
                assert_true(fabs(y[i] - r) <= 2 * EPS * (fabs(y0[i]) + fabs(alpha * xi)));
            }
            /* add is exact IEEE addition on every path */
            memcpy(y, y0, n * 4);
            kern_add(y, a, n);
            for (int i = 0; i < n; i++)
                assert_true(y[i] == y0[i] + a[i]);
            /* y beyond n is untouched */
            if (n < nmax) {
                memcpy(y, y0, nmax * 4);
                kern_add(y, a, n);
                kern_axpy_f32(y, 2.0f, a, n);
                kern_axpy_f16(y, 2.0f, h, n);
                assert_memory_equal(y + n, y0 + n, (nmax - n) * 4);
            }
        }
    }
    free(h);
    free(y0);
    free(y);
    free(b);
    free(a);
}

static void test_f32_to_fp16_row(void **state)
{
    (void)state;
    int n = 1000;
    float *x = malloc(n * 4);
    uint16_t *h = malloc(n * 2 + 2);
    uint32_t specials[] = {0x7f800000, 0xff800000, 0x7fc00000, 0x7f800001, 0x7f802000, 0x33000000,
                           0x33c00000, 0x477ff000, 0x3f801000, 0x80000000, 0x00000001, 0x387fc000};
    for (int i = 0; i < n; i++)
        x[i] = i < 12 ? bits_f(specials[i]) : rnd() * (float)(1 << (i % 20)) * 1e-3f;
    for (int p = 0; p < n_paths; p++) {
        kern_set_path(paths[p]);
        for (int len = 1; len <= n; len = len * 3 + 1) {
            h[len] = 0xabcd;
            kern_f32_to_fp16_row(x, h, len);
            for (int i = 0; i < len; i++)
                if (h[i] != kern_f32_to_fp16(x[i]))
                    fail_msg("%s: element %d (0x%08x): 0x%04x want 0x%04x", path_name(paths[p]), i,
                             f_bits(x[i]), h[i], kern_f32_to_fp16(x[i]));
            assert_int_equal(h[len], 0xabcd);
        }
    }
    free(h);
    free(x);
}

static void test_rmsnorm(void **state)
{
    (void)state;
    int nmax = 4099;
    float *x = malloc(nmax * 4), *w = malloc(nmax * 4), *out = malloc(nmax * 4);
    for (int i = 0; i < nmax; i++) {
        x[i] = rnd() * (i % 50 == 0 ? 100.0f : 1.0f);
        w[i] = 1.0f + rnd() * 0.5f;
    }
    for (int p = 0; p < n_paths; p++) {
        kern_set_path(paths[p]);
        for (int si = 0; si < N_ROW_SIZES; si++) {
            int n = row_sizes[si];
            double ss = 0;
            for (int i = 0; i < n; i++)
                ss += (double)x[i] * x[i];
            double scale = 1.0 / sqrt(ss / n + 1e-6);
            kern_rmsnorm(out, x, w, n, 1e-6f);
            /* the sum of squares carries the dot-product bound, halved by the
             * square root; then three roundings */
            double rel = (n / 8.0 + 8) * EPS + 4 * EPS;
            for (int i = 0; i < n; i++) {
                double r = w[i] * x[i] * scale;
                if (fabs(out[i] - r) > rel * fabs(r) + 1e-30)
                    fail_msg("%s n=%d: out[%d] = %.9g want %.9g", path_name(paths[p]), n, i, out[i],
                             r);
            }
            /* in place */
            float *xc = malloc(n * 4);
            memcpy(xc, x, n * 4);
            kern_rmsnorm(xc, xc, w, n, 1e-6f);
            assert_memory_equal(xc, out, n * 4);
            free(xc);
        }
        /* all zeros: eps keeps it finite */
        float z[20] = {0}, zo[20];
        kern_rmsnorm(zo, z, w, 20, 1e-6f);
        for (int i = 0; i < 20; i++)
            assert_true(zo[i] == 0.0f);
    }
    free(out);
    free(w);
    free(x);
}

static void check_softmax(const float *in, int n, const char *what)
{
    float *x = malloc(n * 4 + 4);
    memcpy(x, in, n * 4);
    x[n] = 12345.0f;
    kern_softmax(x, n);
    assert_true(x[n] == 12345.0f);
    double max = -INFINITY;
    for (int i = 0; i < n; i++)
        if (in[i] > max) max = in[i];
    double sum = 0;
    for (int i = 0; i < n; i++)
        sum += exp((double)in[i] - max);
    /* exp to a few ulp, the sum of n terms in float, a division */
    double rel = 8 * EPS + (n / 8.0 + 8) * 2 * EPS;
    double total = 0;
    for (int i = 0; i < n; i++) {
        double r = exp((double)in[i] - max) / sum;
        if (in[i] == -INFINITY) assert_true(x[i] == 0.0f);
        /* results below FLT_MIN may lose relative precision (subnormals) */
        if (fabs(x[i] - r) > rel * r + 1e-37)
            fail_msg("%s n=%d: p[%d] = %.9g want %.9g", what, n, i, x[i], r);
        total += x[i];
    }
    assert_true(fabs(total - 1.0) <= rel * 2);
    free(x);
}

static void test_softmax(void **state)
{
    (void)state;
    int nmax = 4099;
    float *x = malloc(nmax * 4);
    for (int p = 0; p < n_paths; p++) {
        kern_set_path(paths[p]);
        const char *what = path_name(paths[p]);
        for (int si = 0; si < N_ROW_SIZES; si++) {
            int n = row_sizes[si];
            for (int i = 0; i < n; i++)
                x[i] = rnd() * 10;
            check_softmax(x, n, what);
            /* large values: the max is subtracted first */
            for (int i = 0; i < n; i++)
                x[i] = 1e4f + rnd() * 30;
            check_softmax(x, n, what);
            for (int i = 0; i < n; i++)
                x[i] = -1e30f + (float)i;
            check_softmax(x, n, what);
            /* masked entries */
            for (int i = 0; i < n; i++)
                x[i] = i % 3 == 1 ? -INFINITY : rnd() * 5;
            if (n > 1) x[0] = -INFINITY;
            check_softmax(x, n, what);
            /* every entry -inf: uniform */
            for (int i = 0; i < n; i++)
                x[i] = -INFINITY;
            kern_softmax(x, n);
            for (int i = 0; i < n; i++)
                assert_true(x[i] == 1.0f / n);
            /* far below the max: underflows to 0 */
            for (int i = 0; i < n; i++)
                x[i] = i == n / 2 ? 0.0f : -200.0f;
            kern_softmax(x, n);
            for (int i = 0; i < n; i++)
                assert_true(x[i] == (i == n / 2 ? 1.0f : 0.0f));
        }
    }
    free(x);
}

static void test_swiglu(void **state)
{
    (void)state;
    int nmax = 4099;
    float *g = malloc(nmax * 4), *u = malloc(nmax * 4), *out = malloc(nmax * 4);
    const float edge[] = {0.0f, -0.0f, 88.5f, -88.5f, 100.0f, -100.0f, 1e-30f, -20.0f, 20.0f};
    for (int i = 0; i < nmax; i++) {
        g[i] = i < 9 ? edge[i] : rnd() * 12;
        u[i] = rnd() * 3;
    }
    for (int p = 0; p < n_paths; p++) {
        kern_set_path(paths[p]);
        for (int si = 0; si < N_ROW_SIZES; si++) {
            int n = row_sizes[si];
            kern_swiglu(out, g, u, n);
            for (int i = 0; i < n; i++) {
                double r = g[i] / (1.0 + exp(-(double)g[i])) * u[i];
                /* exp to a few ulp, an addition, a division, a product */
                if (fabs(out[i] - r) > 12 * EPS * fabs(r) + 1e-37)
                    fail_msg("%s: swiglu(%g, %g) = %.9g want %.9g", path_name(paths[p]), g[i], u[i],
                             out[i], r);
            }
            /* out may alias gate */
            float *gc = malloc(n * 4);
            memcpy(gc, g, n * 4);
            kern_swiglu(gc, gc, u, n);
            assert_memory_equal(gc, out, n * 4);
            free(gc);
        }
    }
    free(out);
    free(u);
    free(g);
}

static void check_rope(int n_heads, int head_dim, int pos, float theta)
{
    int n = n_heads * head_dim, half = head_dim / 2;
    float *v = malloc(n * 4), *orig = malloc(n * 4);
    for (int i = 0; i < n; i++)
        orig[i] = v[i] = rnd() * 2;
    kern_rope_neox(v, n_heads, head_dim, pos, theta);
    for (int h = 0; h < n_heads; h++)
        for (int i = 0; i < half; i++) {
            double ang = pos * pow(theta, -2.0 * i / head_dim);
            double x0 = orig[h * head_dim + i], x1 = orig[h * head_dim + i + half];
            double r0 = x0 * cos(ang) - x1 * sin(ang);
            double r1 = x0 * sin(ang) + x1 * cos(ang);
            double tol = 4 * EPS * (fabs(x0) + fabs(x1));
            if (fabs(v[h * head_dim + i] - r0) > tol || fabs(v[h * head_dim + i + half] - r1) > tol)
                fail_msg("rope heads %d dim %d pos %d theta %g: pair %d of head %d off", n_heads,
                         head_dim, pos, theta, i, h);
        }
    free(orig);
    free(v);
}

static void test_rope(void **state)
{
    (void)state;
    const int pos[] = {0, 1, 7, 100, 4095, 32767, 7, 0};
    for (size_t k = 0; k < sizeof(pos) / sizeof(pos[0]); k++) {
        check_rope(12, 128, pos[k], 1e6f);
        check_rope(2, 128, pos[k], 1e6f);  /* the cached table of the same position */
        check_rope(1, 64, pos[k], 1e4f);   /* another head size and theta: recomputed */
        check_rope(3, 1200, pos[k], 1e4f); /* beyond the cache */
    }
    /* position 0 is the identity */
    float v[8] = {1, 2, 3, 4, 5, 6, 7, 8}, w[8];
    memcpy(w, v, sizeof(v));
    kern_rope_neox(v, 2, 4, 0, 10000.0f);
    assert_memory_equal(v, w, sizeof(v));
}

/* ---- paths and measurement ------------------------------------------------------ */

static void test_path_choice(void **state)
{
    (void)state;
    for (int p = 0; p < n_paths; p++) {
        assert_int_equal(kern_set_path(paths[p]), 0);
        assert_int_equal(kern_get_path(), paths[p]);
        assert_string_equal(kern_path_name(), path_name(paths[p]));
    }
    for (int p = KERN_PATH_SCALAR; p <= KERN_PATH_AVX512; p++)
        if (!kern_path_supported((enum kern_path)p))
            assert_int_equal(kern_set_path((enum kern_path)p), -1);
    assert_int_equal(kern_set_path((enum kern_path)7), -1);

    /* ECHO_KERNELS is read at the first use, so ask a fresh process (this
     * test program, see main) which path it took. */
    const char *envs[] = {"scalar", "avx2", "avx512", "bogus"};
    for (size_t i = 0; i < sizeof(envs) / sizeof(envs[0]); i++) {
        char cmd[256], got[64] = "";
        snprintf(cmd, sizeof(cmd), "ECHO_KERNELS=%s /proc/%d/exe --print-path 2>/dev/null", envs[i],
                 (int)getpid());
        FILE *f = popen(cmd, "r");
        assert_non_null(f);
        assert_non_null(fgets(got, sizeof(got), f));
        assert_int_equal(pclose(f), 0);
        got[strcspn(got, "\n")] = 0;
        enum kern_path want = best;
        for (int p = 0; p < n_paths; p++)
            if (!strcmp(envs[i], path_name(paths[p]))) want = paths[p];
        assert_string_equal(got, path_name(want));
    }
}

static void test_read_bandwidth(void **state)
{
    (void)state;
    struct kern_pool *pool = kern_pool_new(2);
    for (int p = 0; p < n_paths; p++) {
        kern_set_path(paths[p]);
        double bw = kern_read_bandwidth(pool, 8u << 20, 1);
        assert_true(bw > 0);
    }
    assert_true(kern_read_bandwidth(pool, 100, 1) < 0); /* less than one unit */
    kern_pool_free(pool);
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "--print-path")) {
        puts(kern_path_name());
        return 0;
    }
    find_paths();
    printf("kernel paths on this CPU:");
    for (int p = 0; p < n_paths; p++)
        printf(" %s", path_name(paths[p]));
    printf("\n");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_fp16_special_values, teardown_path),
        cmocka_unit_test_teardown(test_fp16_matches_hardware, teardown_path),
        cmocka_unit_test_teardown(test_bf16_conversion, teardown_path),
        cmocka_unit_test_teardown(test_quantize_q8_0_known_block, teardown_path),
        cmocka_unit_test_teardown(test_quantize_q4_0_known_block, teardown_path),
        cmocka_unit_test_teardown(test_k_quant_known_blocks, teardown_path),
        cmocka_unit_test_teardown(test_quantize_round_trip, teardown_path),
        cmocka_unit_test_teardown(test_quantize_act_paths, teardown_path),
        cmocka_unit_test_teardown(test_matmul_f32, teardown_path),
        cmocka_unit_test_teardown(test_matmul_f16, teardown_path),
        cmocka_unit_test_teardown(test_matmul_bf16, teardown_path),
        cmocka_unit_test_teardown(test_matmul_q8_0, teardown_path),
        cmocka_unit_test_teardown(test_matmul_q4_0, teardown_path),
        cmocka_unit_test_teardown(test_matmul_q4_K, teardown_path),
        cmocka_unit_test_teardown(test_matmul_q6_K, teardown_path),
        cmocka_unit_test_teardown(test_matmul_extreme_quants, teardown_path),
        cmocka_unit_test_teardown(test_packed_layout, teardown_path),
        cmocka_unit_test_teardown(test_matrix_init_errors, teardown_path),
        cmocka_unit_test_teardown(test_dot_axpy_add, teardown_path),
        cmocka_unit_test_teardown(test_f32_to_fp16_row, teardown_path),
        cmocka_unit_test_teardown(test_rmsnorm, teardown_path),
        cmocka_unit_test_teardown(test_softmax, teardown_path),
        cmocka_unit_test_teardown(test_swiglu, teardown_path),
        cmocka_unit_test_teardown(test_rope, teardown_path),
        cmocka_unit_test_teardown(test_path_choice, teardown_path),
        cmocka_unit_test_teardown(test_read_bandwidth, teardown_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
