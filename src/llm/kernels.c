/*
 * kernels.c - the scalar reference of every kernel, the choice of the code
 * path, and the path-independent parts of kern_matmul (activation
 * quantization and the split of the work over the pool), packing and the
 * conversions of rows (see kernels.h for the contract, kernels_impl.h for the
 * layouts).
 *
 * The reference kernels are written to be read like the math (llama2.c
 * style) and accumulate in double, so that they are the yardstick the SIMD
 * paths (kernels_avx2.c, kernels_avx512.c) are tested against.
 */
#include "llm/kernels.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "llm/kernels_impl.h"

#if defined(__x86_64__)
#include <cpuid.h>
#endif

/* ---- conversions -------------------------------------------------------- */

static inline uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof(u));
    return u;
}

static inline float bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof(f));
    return f;
}

float kern_fp16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ff;
    if (exp == 0) {
        /* zero or subnormal: mant * 2^-24, exact in float */
        float v = (float)mant * 0x1p-24f;
        return sign ? -v : v;
    }
    if (exp == 31) /* inf, or NaN made quiet with its payload kept (as F16C does) */
        return bits_f32(sign | 0x7f800000u | (mant << 13) | (mant ? 0x400000u : 0));
    return bits_f32(sign | ((exp + 112) << 23) | (mant << 13));
}

uint16_t kern_f32_to_fp16(float f)
{
    uint32_t x = f32_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    x &= 0x7fffffffu;
    if (x >= 0x7f800000u) /* inf, or NaN made quiet with the top payload bits kept */
        return sign | 0x7c00 | (x > 0x7f800000u ? (0x200 | ((x >> 13) & 0x3ff)) : 0);
    if (x >= 0x477ff000u) /* >= 65520: rounds (ties to even) to inf */
        return sign | 0x7c00;
    if (x < 0x38800000u) {
        /* Below 2^-14: a half subnormal, in units of 2^-24. The float is
         * m * 2^(e-150) = m * 2^(e-126) units, so shift m right by 126 - e
         * (14..24 for e >= 102) rounding to nearest even. */
        if (x <= 0x33000000u) /* <= 2^-25: rounds to zero (2^-25 is a tie, to even) */
            return sign;
        uint32_t e = x >> 23;
        uint32_t m = (x & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126 - e;
        uint32_t r = m >> shift;
        uint32_t rem = m & ((1u << shift) - 1);
        uint32_t half = 1u << (shift - 1);
        if (rem > half || (rem == half && (r & 1))) r++;
        return sign | (uint16_t)r;
    }
    /* Normal: rebias the exponent (127 -> 15) and round the 13 dropped bits;
     * a carry into the exponent is the correct result. */
    uint32_t r = x - 0x38000000u;
    uint32_t h = r >> 13;
    uint32_t rem = r & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++;
    return sign | (uint16_t)h;
}

float kern_bf16_to_f32(uint16_t h)
{
    return bits_f32((uint32_t)h << 16);
}

uint16_t kern_f32_to_bf16(float f)
{
    /* As ggml_compute_fp32_to_bf16: NaN forced quiet, otherwise round to nearest even. */
    uint32_t u = f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 64);
    return (uint16_t)((u + (0x7fffu + ((u >> 16) & 1))) >> 16);
}

/* ---- rows of each type ------------------------------------------------------ */

static int type_block(enum gguf_tensor_type type)
{
    switch (type) {
    case GGUF_TENSOR_F32:
    case GGUF_TENSOR_F16:
    case GGUF_TENSOR_BF16:
        return 1;
    case GGUF_TENSOR_Q8_0:
    case GGUF_TENSOR_Q4_0:
        return QK;
    case GGUF_TENSOR_Q4_K:
    case GGUF_TENSOR_Q6_K:
        return QK_K;
    default:
        return 0;
    }
}

bool kern_type_supported(enum gguf_tensor_type type)
{
    return type_block(type) != 0;
}

size_t kern_row_bytes(enum gguf_tensor_type type, int n)
{
    int blk = type_block(type);
    if (blk == 0 || n < 0 || n % blk != 0) return 0;
    switch (type) {
    case GGUF_TENSOR_F32:
        return (size_t)n * 4;
    case GGUF_TENSOR_F16:
    case GGUF_TENSOR_BF16:
        return (size_t)n * 2;
    case GGUF_TENSOR_Q8_0:
        return (size_t)(n / QK) * sizeof(struct blk_q8_0);
    case GGUF_TENSOR_Q4_0:
        return (size_t)(n / QK) * sizeof(struct blk_q4_0);
    case GGUF_TENSOR_Q4_K:
        return (size_t)(n / QK_K) * sizeof(struct blk_q4_K);
    case GGUF_TENSOR_Q6_K:
        return (size_t)(n / QK_K) * sizeof(struct blk_q6_K);
    default:
        return 0;
    }
}

void kern_dequantize_row(enum gguf_tensor_type type, const void *src, float *dst, int n)
{
    const uint8_t *s = src;
    switch (type) {
    case GGUF_TENSOR_F32:
        memcpy(dst, src, (size_t)n * sizeof(float));
        break;
    case GGUF_TENSOR_F16:
        for (int i = 0; i < n; i++)
            dst[i] = kern_fp16_to_f32(kern_load_u16(s + 2 * i));
        break;
    case GGUF_TENSOR_BF16:
        for (int i = 0; i < n; i++)
            dst[i] = kern_bf16_to_f32(kern_load_u16(s + 2 * i));
        break;
    case GGUF_TENSOR_Q8_0:
        for (int b = 0; b < n / QK; b++) {
            const uint8_t *blk = s + (size_t)b * sizeof(struct blk_q8_0);
            float d = kern_fp16_to_f32(kern_load_u16(blk));
            const int8_t *qs = (const int8_t *)(blk + 2);
            for (int j = 0; j < QK; j++)
                dst[b * QK + j] = qs[j] * d;
        }
        break;
    case GGUF_TENSOR_Q4_0:
        for (int b = 0; b < n / QK; b++) {
            const uint8_t *blk = s + (size_t)b * sizeof(struct blk_q4_0);
            float d = kern_fp16_to_f32(kern_load_u16(blk));
            const uint8_t *qs = blk + 2;
            for (int j = 0; j < QK / 2; j++) {
                dst[b * QK + j] = ((qs[j] & 0x0f) - 8) * d;
                dst[b * QK + j + QK / 2] = ((qs[j] >> 4) - 8) * d;
            }
        }
        break;
    case GGUF_TENSOR_Q4_K:
        for (int b = 0; b < n / QK_K; b++) {
            struct blk_q4_K blk;
            memcpy(&blk, s + (size_t)b * sizeof(blk), sizeof(blk));
            float d = kern_fp16_to_f32(blk.d), dmin = kern_fp16_to_f32(blk.dmin);
            for (int j = 0; j < 8; j++) {
                uint8_t sc, m;
                kern_q4_K_scale_min(j, blk.scales, &sc, &m);
                float d1 = d * sc, m1 = dmin * m;
                const uint8_t *q = blk.qs + 32 * (j / 2);
                for (int l = 0; l < 32; l++)
                    dst[b * QK_K + 32 * j + l] = d1 * (j & 1 ? q[l] >> 4 : q[l] & 0xf) - m1;
            }
        }
        break;
    case GGUF_TENSOR_Q6_K:
        for (int b = 0; b < n / QK_K; b++) {
            struct blk_q6_K blk;
            memcpy(&blk, s + (size_t)b * sizeof(blk), sizeof(blk));
            float d = kern_fp16_to_f32(blk.d);
            for (int e = 0; e < QK_K; e++)
                dst[b * QK_K + e] = d * kern_q6_K_scale(&blk, e) * kern_q6_K_q(&blk, e);
        }
        break;
    default:
        break;
    }
}

/* Float to a small integer the way ggml's reference does (a C cast), except
 * that NaN gives `nan_value` instead of undefined behaviour. */
static inline int trunc_clamped(float v, int lo, int hi, int nan_value)
{
    if (!(v == v)) return nan_value;
    if (v <= (float)lo) return lo;
    if (v >= (float)hi) return hi;
    return (int)v;
}

/* ggml's quantize_row_q8_0_ref. */
static void quantize_row_q8_0(const float *x, uint8_t *y, int n)
{
    for (int b = 0; b < n / QK; b++, x += QK, y += sizeof(struct blk_q8_0)) {
        float amax = 0.0f;
        for (int j = 0; j < QK; j++)
            amax = fmaxf(amax, fabsf(x[j]));
        float d = amax / 127.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        uint16_t dh = kern_f32_to_fp16(d);
        memcpy(y, &dh, 2);
        for (int j = 0; j < QK; j++) {
            float r = roundf(x[j] * id);
            y[2 + j] = (uint8_t)(int8_t)trunc_clamped(r, -128, 127, 0);
        }
    }
}

/* ggml's quantize_row_q4_0_ref: the scale maps the element of largest
 * magnitude to -8 (keeping its sign), so the full 16 levels are used. */
static void quantize_row_q4_0(const float *x, uint8_t *y, int n)
{
    for (int b = 0; b < n / QK; b++, x += QK, y += sizeof(struct blk_q4_0)) {
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < QK; j++) {
            if (amax < fabsf(x[j])) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        }
        float d = max / -8.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        uint16_t dh = kern_f32_to_fp16(d);
        memcpy(y, &dh, 2);
        for (int j = 0; j < QK / 2; j++) {
            int lo = trunc_clamped(x[j] * id + 8.5f, -128, 127, 0);
            int hi = trunc_clamped(x[QK / 2 + j] * id + 8.5f, -128, 127, 0);
            lo = lo < 15 ? lo : 15;
            hi = hi < 15 ? hi : 15;
            y[2 + j] = (uint8_t)((lo & 0x0f) | ((hi & 0x0f) << 4));
        }
    }
}

int kern_quantize_row(enum gguf_tensor_type type, const float *src, void *dst, int n)
{
    if (type == GGUF_TENSOR_Q4_K || type == GGUF_TENSOR_Q6_K)
        return -1; /* read from files only: ggml's k-quant search is not reproduced */
    if (kern_row_bytes(type, n) == 0 && n != 0) return -1;
    uint8_t *d = dst;
    switch (type) {
    case GGUF_TENSOR_F32:
        memcpy(dst, src, (size_t)n * sizeof(float));
        return 0;
    case GGUF_TENSOR_F16:
        for (int i = 0; i < n; i++) {
            uint16_t h = kern_f32_to_fp16(src[i]);
            memcpy(d + 2 * i, &h, 2);
        }
        return 0;
    case GGUF_TENSOR_BF16:
        for (int i = 0; i < n; i++) {
            uint16_t h = kern_f32_to_bf16(src[i]);
            memcpy(d + 2 * i, &h, 2);
        }
        return 0;
    case GGUF_TENSOR_Q8_0:
        quantize_row_q8_0(src, d, n);
        return 0;
    case GGUF_TENSOR_Q4_0:
        quantize_row_q4_0(src, d, n);
        return 0;
    default:
        return -1;
    }
}

void kern_scalar_f32_to_fp16_row(const float *src, uint16_t *dst, int n)
{
    for (int i = 0; i < n; i++)
        dst[i] = kern_f32_to_fp16(src[i]);
}

/* ---- scalar reference: row kernels ---------------------------------------- */

float kern_scalar_dot_f32(const float *a, const float *b, int n)
{
    double sum = 0.0;
    for (int i = 0; i < n; i++)
        sum += (double)a[i] * b[i];
    return (float)sum;
}

float kern_scalar_dot_f16(const uint16_t *a, const float *b, int n)
{
    double sum = 0.0;
    for (int i = 0; i < n; i++)
        sum += (double)kern_fp16_to_f32(a[i]) * b[i];
    return (float)sum;
}

void kern_scalar_axpy_f32(float *y, float a, const float *x, int n)
{
    for (int i = 0; i < n; i++)
        y[i] += a * x[i];
}

void kern_scalar_axpy_f16(float *y, float a, const uint16_t *x, int n)
{
    for (int i = 0; i < n; i++)
        y[i] += a * kern_fp16_to_f32(x[i]);
}

void kern_scalar_add(float *y, const float *x, int n)
{
    for (int i = 0; i < n; i++)
        y[i] += x[i];
}

void kern_scalar_rmsnorm(float *out, const float *x, const float *weight, int n, float eps)
{
    double ss = 0.0;
    for (int i = 0; i < n; i++)
        ss += (double)x[i] * x[i];
    float scale = (float)(1.0 / sqrt(ss / n + eps));
    for (int i = 0; i < n; i++)
        out[i] = weight[i] * (x[i] * scale);
}

void kern_scalar_softmax(float *x, int n)
{
    if (n <= 0) return;
    float max = x[0];
    for (int i = 1; i < n; i++)
        if (x[i] > max) max = x[i];
    if (max == -INFINITY) {
        for (int i = 0; i < n; i++)
            x[i] = 1.0f / n;
        return;
    }
    double sum = 0.0;
    for (int i = 0; i < n; i++) {
        x[i] = expf(x[i] - max);
        sum += x[i];
    }
    float inv = (float)(1.0 / sum);
    for (int i = 0; i < n; i++)
        x[i] *= inv;
}

void kern_scalar_swiglu(float *out, const float *gate, const float *up, int n)
{
    for (int i = 0; i < n; i++) {
        float g = gate[i];
        out[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

/* ---- scalar reference: activations and matrix products ------------------------ */

/*
 * Round to nearest, ties to even, as the SIMD conversions (VCVTPS2DQ) do.
 * |v| <= 127 by construction of the scale except in degenerate cases the
 * SIMD paths handle the same way: NaN and |v| >= 2^31 (VCVTPS2DQ's
 * "indefinite" result) give 0, anything else is clamped to [-127, 127]
 * (never -128, whose negation the AVX2 sign trick cannot represent).
 */
static inline int8_t round_act(float v)
{
    if (!(v == v) || fabsf(v) >= 2147483648.0f) return 0;
    float r = nearbyintf(v);
    return (int8_t)(r > 127.0f ? 127 : r < -127.0f ? -127 : (int)r);
}

void kern_scalar_quantize_act(const float *x, int n, int8_t *q, float *d, int32_t *sum)
{
    for (int b = 0; b < n / QK; b++) {
        float amax = 0.0f;
        for (int j = 0; j < QK; j++)
            amax = fmaxf(amax, fabsf(x[b * QK + j]));
        float db = amax / 127.0f;
        float id = db != 0.0f ? 1.0f / db : 0.0f;
        int32_t s = 0;
        for (int j = 0; j < QK; j++) {
            int8_t v = round_act(x[b * QK + j] * id);
            q[b * QK + j] = v;
            s += v;
        }
        d[b] = db;
        sum[b] = s;
    }
}

/* One output of the scalar matmul: row `row` (file layout) times token t. */
static float dot_row(const struct mm_args *a, const uint8_t *row, int t)
{
    int n = a->cols;
    const float *x = a->x + (size_t)t * n;
    double sum = 0.0;
    switch (a->type) {
    case GGUF_TENSOR_F32:
        for (int c = 0; c < n; c++) {
            float w;
            memcpy(&w, row + 4 * (size_t)c, 4);
            sum += (double)w * x[c];
        }
        break;
    case GGUF_TENSOR_F16:
        for (int c = 0; c < n; c++)
            sum += (double)kern_fp16_to_f32(kern_load_u16(row + 2 * (size_t)c)) * x[c];
        break;
    case GGUF_TENSOR_BF16:
        for (int c = 0; c < n; c++)
            sum += (double)kern_bf16_to_f32(kern_load_u16(row + 2 * (size_t)c)) * x[c];
        break;
    case GGUF_TENSOR_Q4_K: {
        /* sub-block j of super-block i is activation block 8i + j:
         * sum w x = dx * (d sc sum q xq - dmin m sum xq) */
        int nb = n / QK;
        const int8_t *xq = a->qx->q + (size_t)t * n;
        const float *xd = a->qx->d + (size_t)t * nb;
        const int32_t *xs = a->qx->sum + (size_t)t * nb;
        for (int i = 0; i < n / QK_K; i++) {
            struct blk_q4_K blk;
            memcpy(&blk, row + (size_t)i * sizeof(blk), sizeof(blk));
            double d = kern_fp16_to_f32(blk.d), dmin = kern_fp16_to_f32(blk.dmin);
            for (int j = 0; j < 8; j++) {
                uint8_t sc, m;
                kern_q4_K_scale_min(j, blk.scales, &sc, &m);
                const uint8_t *q = blk.qs + 32 * (j / 2);
                int b = 8 * i + j;
                int32_t isum = 0;
                for (int l = 0; l < 32; l++)
                    isum += (j & 1 ? q[l] >> 4 : q[l] & 0xf) * xq[QK * b + l];
                sum += xd[b] * (d * sc * isum - dmin * m * xs[b]);
            }
        }
        break;
    }
    case GGUF_TENSOR_Q6_K: {
        /* an activation block of 32 spans two sub-blocks of 16 (two scales) */
        int nb = n / QK;
        const int8_t *xq = a->qx->q + (size_t)t * n;
        const float *xd = a->qx->d + (size_t)t * nb;
        for (int i = 0; i < n / QK_K; i++) {
            struct blk_q6_K blk;
            memcpy(&blk, row + (size_t)i * sizeof(blk), sizeof(blk));
            double d = kern_fp16_to_f32(blk.d);
            for (int j = 0; j < 8; j++) {
                int b = 8 * i + j;
                int32_t lo = 0, hi = 0;
                for (int l = 0; l < 16; l++) {
                    lo += kern_q6_K_q(&blk, 32 * j + l) * xq[QK * b + l];
                    hi += kern_q6_K_q(&blk, 32 * j + 16 + l) * xq[QK * b + 16 + l];
                }
                sum += xd[b] * d *
                       ((double)kern_q6_K_scale(&blk, 32 * j) * lo +
                        (double)kern_q6_K_scale(&blk, 32 * j + 16) * hi);
            }
        }
        break;
    }
    case GGUF_TENSOR_Q8_0:
    case GGUF_TENSOR_Q4_0: {
        int nb = n / QK;
        const int8_t *xq = a->qx->q + (size_t)t * n;
        const float *xd = a->qx->d + (size_t)t * nb;
        for (int b = 0; b < nb; b++) {
            int32_t isum = 0;
            float dw;
            if (a->type == GGUF_TENSOR_Q8_0) {
                const uint8_t *blk = row + (size_t)b * sizeof(struct blk_q8_0);
                const int8_t *qs = (const int8_t *)(blk + 2);
                dw = kern_fp16_to_f32(kern_load_u16(blk));
                for (int j = 0; j < QK; j++)
                    isum += qs[j] * xq[b * QK + j];
            } else {
                const uint8_t *blk = row + (size_t)b * sizeof(struct blk_q4_0);
                const uint8_t *qs = blk + 2;
                dw = kern_fp16_to_f32(kern_load_u16(blk));
                for (int j = 0; j < QK / 2; j++) {
                    isum += ((qs[j] & 0x0f) - 8) * xq[b * QK + j];
                    isum += ((qs[j] >> 4) - 8) * xq[b * QK + j + QK / 2];
                }
            }
            sum += (double)dw * xd[b] * isum;
        }
        break;
    }
    default:
        break;
    }
    return (float)sum;
}

void kern_scalar_matmul(const struct mm_args *a, int r0, int r1, int t0, int t1)
{
    for (int r = r0; r < r1; r++) {
        const uint8_t *row = a->w + (size_t)r * a->row_bytes;
        for (int t = t0; t < t1; t++)
            a->y[(size_t)t * a->ldy + r] = dot_row(a, row, t);
    }
}

uint64_t kern_scalar_read_stream(const void *p, size_t n)
{
    const uint64_t *w = p;
    uint64_t a = 0, b = 0, c = 0, d = 0;
    for (size_t i = 0; i < n / 8; i += 4) {
        a ^= w[i];
        b ^= w[i + 1];
        c ^= w[i + 2];
        d ^= w[i + 3];
    }
    return a ^ b ^ c ^ d;
}

const struct kern_ops kern_ops_scalar = {
    .quantize_act = kern_scalar_quantize_act,
    .matmul = kern_scalar_matmul,
    .has_packed = false,
    .dot_f32 = kern_scalar_dot_f32,
    .dot_f16 = kern_scalar_dot_f16,
    .axpy_f32 = kern_scalar_axpy_f32,
    .axpy_f16 = kern_scalar_axpy_f16,
    .add = kern_scalar_add,
    .rmsnorm = kern_scalar_rmsnorm,
    .softmax = kern_scalar_softmax,
    .swiglu = kern_scalar_swiglu,
    .f32_to_fp16_row = kern_scalar_f32_to_fp16_row,
    .read_stream = kern_scalar_read_stream,
};

/* ---- choice of the path -------------------------------------------------- */

static _Atomic(const struct kern_ops *) g_ops;
static _Atomic int g_path;
static pthread_once_t g_ops_once = PTHREAD_ONCE_INIT;

static const char *const path_names[] = {"scalar", "avx2", "avx512"};

bool kern_path_supported(enum kern_path path)
{
    switch (path) {
    case KERN_PATH_SCALAR:
        return true;
#if defined(__x86_64__)
    case KERN_PATH_AVX2: {
        __builtin_cpu_init();
        /* F16C has no __builtin_cpu_supports name in clang 14: CPUID.1:ECX bit 29. */
        unsigned eax, ebx, ecx, edx;
        bool f16c = __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & (1u << 29));
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c;
    }
    case KERN_PATH_AVX512:
        return kern_path_supported(KERN_PATH_AVX2) && __builtin_cpu_supports("avx512f") &&
               __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
               __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vnni");
#endif
    default:
        return false;
    }
}

static const struct kern_ops *ops_of(enum kern_path path)
{
#if defined(__x86_64__)
    if (path == KERN_PATH_AVX512) return &kern_ops_avx512;
    if (path == KERN_PATH_AVX2) return &kern_ops_avx2;
#endif
    (void)path;
    return &kern_ops_scalar;
}

static enum kern_path best_path(void)
{
    if (kern_path_supported(KERN_PATH_AVX512)) return KERN_PATH_AVX512;
    if (kern_path_supported(KERN_PATH_AVX2)) return KERN_PATH_AVX2;
    return KERN_PATH_SCALAR;
}

static void choose_path(void)
{
    enum kern_path path = best_path();
    const char *env = getenv("ECHO_KERNELS");
    if (env && *env) {
        int want = -1;
        for (int i = 0; i < 3; i++)
            if (!strcmp(env, path_names[i])) want = i;
        if (want < 0)
            log_warn("ECHO_KERNELS=%s is not scalar, avx2 or avx512; using %s", env,
                     path_names[path]);
        else if (!kern_path_supported((enum kern_path)want))
            log_warn("ECHO_KERNELS=%s is not supported by this CPU; using %s", env,
                     path_names[path]);
        else
            path = (enum kern_path)want;
    }
    atomic_store(&g_path, (int)path);
    atomic_store(&g_ops, ops_of(path));
}

const struct kern_ops *kern_ops_get(void)
{
    const struct kern_ops *ops = atomic_load_explicit(&g_ops, memory_order_acquire);
    if (ops) return ops;
    pthread_once(&g_ops_once, choose_path);
    return atomic_load(&g_ops);
}

enum kern_path kern_get_path(void)
{
    kern_ops_get();
    return (enum kern_path)atomic_load(&g_path);
}

const char *kern_path_name(void)
{
    return path_names[kern_get_path()];
}

int kern_set_path(enum kern_path path)
{
    if (!kern_path_supported(path)) return -1;
    kern_ops_get(); /* so that a later first use does not override the choice */
    atomic_store(&g_path, (int)path);
    atomic_store(&g_ops, ops_of(path));
    return 0;
}

/* ---- public row kernels: dispatch ------------------------------------------- */

float kern_dot_f32(const float *a, const float *b, int n)
{
    return kern_ops_get()->dot_f32(a, b, n);
}

float kern_dot_f16(const uint16_t *a, const float *b, int n)
{
    return kern_ops_get()->dot_f16(a, b, n);
}

void kern_axpy_f32(float *y, float a, const float *x, int n)
{
    kern_ops_get()->axpy_f32(y, a, x, n);
}

void kern_axpy_f16(float *y, float a, const uint16_t *x, int n)
{
    kern_ops_get()->axpy_f16(y, a, x, n);
}

void kern_add(float *y, const float *x, int n)
{
    kern_ops_get()->add(y, x, n);
}

void kern_rmsnorm(float *out, const float *x, const float *weight, int n, float eps)
{
    kern_ops_get()->rmsnorm(out, x, weight, n, eps);
}

void kern_softmax(float *x, int n)
{
    kern_ops_get()->softmax(x, n);
}

void kern_swiglu(float *out, const float *gate, const float *up, int n)
{
    kern_ops_get()->swiglu(out, gate, up, n);
}

void kern_f32_to_fp16_row(const float *src, uint16_t *dst, int n)
{
    kern_ops_get()->f32_to_fp16_row(src, dst, n);
}

/*
 * RoPE needs cos/sin of pos * theta^(-2i/d) for i < d/2. They are the same
 * for every head and layer of a token, so the last table computed is kept
 * per thread (the q and k calls of all layers at one position compute it
 * once), and so are the frequencies theta^(-2i/d), which only change with
 * the model. Everything is computed directly from (pos, i) in double, so a
 * result never depends on which calls came before.
 */
#define ROPE_CACHE_MAX 512 /* head_dim/2 entries cached; larger heads compute directly */

struct rope_cache {
    int half; /* of the frequencies; 0 = none yet */
    float theta;
    int pos; /* of the table; -1 = none yet */
    double freq[ROPE_CACHE_MAX];
    float cos[ROPE_CACHE_MAX], sin[ROPE_CACHE_MAX];
};

static _Thread_local struct rope_cache rope_tls = {.half = 0, .pos = -1};

static inline double rope_freq(int i, int head_dim, float theta)
{
    return pow((double)theta, -2.0 * i / head_dim);
}

void kern_rope_neox(float *vec, int n_heads, int head_dim, int pos, float theta)
{
    int half = head_dim / 2;
    struct rope_cache *rc = &rope_tls;
    bool cached = half <= ROPE_CACHE_MAX;
    if (cached) {
        if (rc->half != half || rc->theta != theta) {
            for (int i = 0; i < half; i++)
                rc->freq[i] = rope_freq(i, head_dim, theta);
            rc->half = half;
            rc->theta = theta;
            rc->pos = -1;
        }
        if (rc->pos != pos) {
            for (int i = 0; i < half; i++) {
                double angle = pos * rc->freq[i];
                rc->cos[i] = (float)cos(angle);
                rc->sin[i] = (float)sin(angle);
            }
            rc->pos = pos;
        }
    }
    for (int h = 0; h < n_heads; h++) {
        float *v = vec + (size_t)h * head_dim;
        for (int i = 0; i < half; i++) {
            float c, s;
            if (cached) {
                c = rc->cos[i];
                s = rc->sin[i];
            } else {
                double angle = pos * rope_freq(i, head_dim, theta);
                c = (float)cos(angle);
                s = (float)sin(angle);
            }
            float x0 = v[i], x1 = v[i + half];
            v[i] = x0 * c - x1 * s;
            v[i + half] = x0 * s + x1 * c;
        }
    }
}

/* ---- the P16 packed layout ---------------------------------------------- */

static bool is_packable(enum gguf_tensor_type type)
{
    return type == GGUF_TENSOR_Q8_0 || type == GGUF_TENSOR_Q4_0 || type == GGUF_TENSOR_Q4_K ||
           type == GGUF_TENSOR_Q6_K;
}

size_t kern_p16_group_bytes(enum gguf_tensor_type type, int cols)
{
    switch (type) {
    case GGUF_TENSOR_Q8_0:
        return (size_t)(cols / QK) * P16_Q8_0_BLOCK_BYTES;
    case GGUF_TENSOR_Q4_0:
        return (size_t)(cols / QK) * P16_Q4_0_BLOCK_BYTES;
    case GGUF_TENSOR_Q4_K:
        return (size_t)(cols / QK_K) * P16_Q4_K_SUPER_BYTES;
    case GGUF_TENSOR_Q6_K:
        return (size_t)(cols / QK_K) * P16_Q6_K_SUPER_BYTES;
    default:
        return 0;
    }
}

/* Q4_0-style nibble steps of 32 values q (< 16) of row r: byte k of step s
 * is q[4s+k] | q[16+4s+k] << 4. */
static void put_nibble_steps(uint8_t *steps, int r, const uint8_t *q)
{
    for (int s = 0; s < 4; s++)
        for (int k = 0; k < 4; k++)
            steps[64 * s + 4 * r + k] = (uint8_t)((q[4 * s + k] & 15) | q[16 + 4 * s + k] << 4);
}

static void get_nibble_steps(const uint8_t *steps, int r, uint8_t *q)
{
    for (int s = 0; s < 4; s++)
        for (int k = 0; k < 4; k++) {
            uint8_t v = steps[64 * s + 4 * r + k];
            q[4 * s + k] = v & 15;
            q[16 + 4 * s + k] = v >> 4;
        }
}

/* Inverse of kern_q4_K_scale_min: stores the 6-bit scale and min of sub-block j. */
static void q4_K_put_scale_min(uint8_t *q, int j, uint8_t sc, uint8_t m)
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

/* Inverse of kern_q6_K_q: stores q (0..63, value + 32) of element e. */
static void q6_K_put_q(struct blk_q6_K *b, int e, int q)
{
    int n = e / 128, k = (e % 128) / 32, l = e % 32;
    uint8_t *lo = &b->ql[64 * n + 32 * (k & 1) + l];
    *lo = (uint8_t)(k < 2 ? (*lo & 0xf0) | (q & 15) : (*lo & 0x0f) | (q & 15) << 4);
    uint8_t *hi = &b->qh[32 * n + l];
    *hi = (uint8_t)((*hi & ~(3 << (2 * k))) | ((q >> 4) & 3) << (2 * k));
}

/* Row r (0..15) of a group: from the file's row `src` into the group at grp. */
static void p16_pack_row(enum gguf_tensor_type type, int cols, const uint8_t *src, uint8_t *grp,
                         int r)
{
    switch (type) {
    case GGUF_TENSOR_Q8_0:
    case GGUF_TENSOR_Q4_0: {
        bool q8 = type == GGUF_TENSOR_Q8_0;
        size_t bsz = q8 ? sizeof(struct blk_q8_0) : sizeof(struct blk_q4_0);
        size_t pbsz = q8 ? P16_Q8_0_BLOCK_BYTES : P16_Q4_0_BLOCK_BYTES;
        for (int b = 0; b < cols / QK; b++) {
            const uint8_t *blk = src + (size_t)b * bsz;
            uint8_t *out = grp + (size_t)b * pbsz;
            memcpy(out + 2 * r, blk, 2);
            for (int s = 0; s < (q8 ? 8 : 4); s++) {
                uint32_t v;
                memcpy(&v, blk + 2 + 4 * s, 4);
                if (q8) v ^= 0x80808080u;
                memcpy(out + 2 * P16_ROWS + 64 * s + 4 * r, &v, 4);
            }
        }
        break;
    }
    case GGUF_TENSOR_Q4_K:
        for (int i = 0; i < cols / QK_K; i++) {
            struct blk_q4_K blk;
            memcpy(&blk, src + (size_t)i * sizeof(blk), sizeof(blk));
            uint8_t *sb = grp + (size_t)i * P16_Q4_K_SUPER_BYTES;
            memcpy(sb + 2 * r, &blk.d, 2);
            memcpy(sb + 2 * P16_ROWS + 2 * r, &blk.dmin, 2);
            for (int j = 0; j < 8; j++) {
                uint8_t *out = sb + 4 * P16_ROWS + (size_t)j * P16_Q4_K_BLOCK_BYTES;
                uint8_t q[32];
                kern_q4_K_scale_min(j, blk.scales, &out[r], &out[P16_ROWS + r]);
                for (int l = 0; l < 32; l++) {
                    uint8_t v = blk.qs[32 * (j / 2) + l];
                    q[l] = j & 1 ? v >> 4 : v & 15;
                }
                put_nibble_steps(out + 2 * P16_ROWS, r, q);
            }
        }
        break;
    case GGUF_TENSOR_Q6_K:
        for (int i = 0; i < cols / QK_K; i++) {
            struct blk_q6_K blk;
            memcpy(&blk, src + (size_t)i * sizeof(blk), sizeof(blk));
            uint8_t *sb = grp + (size_t)i * P16_Q6_K_SUPER_BYTES;
            memcpy(sb + 2 * r, &blk.d, 2);
            uint8_t all[QK_K]; /* q + 32 of every element, as kern_q6_K_q reads them */
            for (int n = 0; n < 2; n++)
                for (int k = 0; k < 4; k++)
                    for (int l = 0; l < 32; l++) {
                        int lo = blk.ql[64 * n + 32 * (k & 1) + l];
                        lo = k < 2 ? lo & 0xf : lo >> 4;
                        int hi = (blk.qh[32 * n + l] >> (2 * k)) & 3;
                        all[128 * n + 32 * k + l] = (uint8_t)(lo | hi << 4);
                    }
            for (int j = 0; j < 8; j++) {
                uint8_t *out = sb + 2 * P16_ROWS + (size_t)j * P16_Q6_K_BLOCK_BYTES;
                const uint8_t *q = all + 32 * j;
                out[r] = (uint8_t)kern_q6_K_scale(&blk, 32 * j);
                out[P16_ROWS + r] = (uint8_t)kern_q6_K_scale(&blk, 32 * j + 16);
                put_nibble_steps(out + 2 * P16_ROWS, r, q);
                uint8_t *high = out + 2 * P16_ROWS + 4 * 64;
                for (int p = 0; p < 2; p++)
                    for (int k = 0; k < 4; k++) {
                        uint8_t v = 0;
                        for (int s = 0; s < 4; s++)
                            v |= (uint8_t)(((q[16 * p + 4 * s + k] >> 4) & 3) << (2 * s));
                        high[64 * p + 4 * r + k] = v;
                    }
            }
        }
        break;
    default:
        break;
    }
}

/* Row r (0..15) of group grp back in the file's layout at dst. */
static void p16_unpack_row(enum gguf_tensor_type type, int cols, const uint8_t *grp, int r,
                           uint8_t *dst)
{
    switch (type) {
    case GGUF_TENSOR_Q8_0:
    case GGUF_TENSOR_Q4_0: {
        bool q8 = type == GGUF_TENSOR_Q8_0;
        size_t bsz = q8 ? sizeof(struct blk_q8_0) : sizeof(struct blk_q4_0);
        size_t pbsz = q8 ? P16_Q8_0_BLOCK_BYTES : P16_Q4_0_BLOCK_BYTES;
        for (int b = 0; b < cols / QK; b++) {
            const uint8_t *in = grp + (size_t)b * pbsz;
            uint8_t *blk = dst + (size_t)b * bsz;
            memcpy(blk, in + 2 * r, 2);
            for (int s = 0; s < (q8 ? 8 : 4); s++) {
                uint32_t v;
                memcpy(&v, in + 2 * P16_ROWS + 64 * s + 4 * r, 4);
                if (q8) v ^= 0x80808080u;
                memcpy(blk + 2 + 4 * s, &v, 4);
            }
        }
        break;
    }
    case GGUF_TENSOR_Q4_K:
        for (int i = 0; i < cols / QK_K; i++) {
            struct blk_q4_K blk;
            memset(&blk, 0, sizeof(blk));
            const uint8_t *sb = grp + (size_t)i * P16_Q4_K_SUPER_BYTES;
            memcpy(&blk.d, sb + 2 * r, 2);
            memcpy(&blk.dmin, sb + 2 * P16_ROWS + 2 * r, 2);
            for (int j = 0; j < 8; j++) {
                const uint8_t *in = sb + 4 * P16_ROWS + (size_t)j * P16_Q4_K_BLOCK_BYTES;
                uint8_t q[32];
                q4_K_put_scale_min(blk.scales, j, in[r], in[P16_ROWS + r]);
                get_nibble_steps(in + 2 * P16_ROWS, r, q);
                for (int l = 0; l < 32; l++) {
                    uint8_t *v = &blk.qs[32 * (j / 2) + l];
                    *v = (uint8_t)(j & 1 ? (*v & 0x0f) | q[l] << 4 : (*v & 0xf0) | q[l]);
                }
            }
            memcpy(dst + (size_t)i * sizeof(blk), &blk, sizeof(blk));
        }
        break;
    case GGUF_TENSOR_Q6_K:
        for (int i = 0; i < cols / QK_K; i++) {
            struct blk_q6_K blk;
            memset(&blk, 0, sizeof(blk));
            const uint8_t *sb = grp + (size_t)i * P16_Q6_K_SUPER_BYTES;
            memcpy(&blk.d, sb + 2 * r, 2);
            for (int j = 0; j < 8; j++) {
                const uint8_t *in = sb + 2 * P16_ROWS + (size_t)j * P16_Q6_K_BLOCK_BYTES;
                const uint8_t *high = in + 2 * P16_ROWS + 4 * 64;
                uint8_t q[32];
                /* the scale of elements 32j.. and 32j+16.. (see kern_q6_K_scale) */
                int e = 32 * j, n = e / 128, k = (e % 128) / 32;
                blk.scales[8 * n + 2 * k] = (int8_t)in[r];
                blk.scales[8 * n + 2 * k + 1] = (int8_t)in[P16_ROWS + r];
                get_nibble_steps(in + 2 * P16_ROWS, r, q);
                for (int p = 0; p < 2; p++)
                    for (int kk = 0; kk < 4; kk++)
                        for (int s = 0; s < 4; s++)
                            q[16 * p + 4 * s + kk] |=
                                (uint8_t)(((high[64 * p + 4 * r + kk] >> (2 * s)) & 3) << 4);
                for (int l = 0; l < 32; l++)
                    q6_K_put_q(&blk, 32 * j + l, q[l]);
            }
            memcpy(dst + (size_t)i * sizeof(blk), &blk, sizeof(blk));
        }
        break;
    default:
        break;
    }
}

/* Packs rows [16g, 16g+16) of m (file layout) into dst; missing rows are zero rows. */
static void p16_pack_group(const struct kern_matrix *m, int g, uint8_t *dst, const uint8_t *zero)
{
    for (int r = 0; r < P16_ROWS; r++) {
        int row = g * P16_ROWS + r;
        const uint8_t *src =
            row < m->rows ? (const uint8_t *)m->data + (size_t)row * m->row_bytes : zero;
        p16_pack_row(m->type, m->cols, src, dst, r);
    }
}

void kern_p16_unpack_group(enum gguf_tensor_type type, int cols, const uint8_t *packed, int g,
                           uint8_t *dst)
{
    size_t row_bytes = kern_row_bytes(type, cols);
    const uint8_t *grp = packed + (size_t)g * kern_p16_group_bytes(type, cols);
    for (int r = 0; r < P16_ROWS; r++)
        p16_unpack_row(type, cols, grp, r, dst + (size_t)r * row_bytes);
}

/* ---- matrices ------------------------------------------------------------ */

int kern_matrix_init(struct kern_matrix *m, enum gguf_tensor_type type, int rows, int cols,
                     const void *data, struct echo_err *err)
{
    memset(m, 0, sizeof(*m));
    if (!kern_type_supported(type)) {
        const char *name = gguf_tensor_type_name(type);
        echo_err_set(err, "matrix type %s (%d) is not supported by the kernels",
                     name ? name : "unknown", (int)type);
        return -1;
    }
    if (rows <= 0 || cols <= 0) {
        echo_err_set(err, "matrix of %d x %d has no elements", rows, cols);
        return -1;
    }
    if (cols % type_block(type) != 0) {
        echo_err_set(err, "matrix row length %d is not a multiple of the block size %d", cols,
                     type_block(type));
        return -1;
    }
    if (!data) {
        echo_err_set(err, "matrix has no data");
        return -1;
    }
    m->type = type;
    m->rows = rows;
    m->cols = cols;
    m->data = data;
    m->row_bytes = kern_row_bytes(type, cols);
    return 0;
}

void *kern_map_huge(size_t n)
{
    void *p = mmap(NULL, n ? n : 1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return NULL;
    /* Only a hint: without THP (or with it off) the pages stay 4 KiB. */
    if (n >= ((size_t)2 << 20)) (void)madvise(p, n, MADV_HUGEPAGE);
    return p;
}

void kern_unmap(void *p, size_t n)
{
    if (p) munmap(p, n ? n : 1);
}

static bool packs_here(const struct kern_matrix *m)
{
    return is_packable(m->type) && kern_ops_get()->has_packed;
}

static bool well_formed(const struct kern_matrix *m)
{
    return m->rows > 0 && m->cols > 0 && type_block(m->type) &&
           m->cols % type_block(m->type) == 0 && m->data &&
           m->row_bytes == kern_row_bytes(m->type, m->cols);
}

int kern_matrix_groups(const struct kern_matrix *m)
{
    return (m->rows + P16_ROWS - 1) / P16_ROWS;
}

size_t kern_matrix_packed_bytes(const struct kern_matrix *m)
{
    if (!packs_here(m) || !well_formed(m)) return 0;
    return (size_t)kern_matrix_groups(m) * kern_p16_group_bytes(m->type, m->cols);
}

void kern_matrix_pack_groups(const struct kern_matrix *m, void *dst, int g0, int g1)
{
    size_t gbytes = kern_p16_group_bytes(m->type, m->cols);
    uint8_t zero[sizeof(struct blk_q6_K) * 64]; /* a row of zero blocks for the padding rows */
    uint8_t *z = m->row_bytes <= sizeof(zero) ? zero : xmalloc(m->row_bytes);
    memset(z, 0, m->row_bytes);
    for (int g = g0; g < g1; g++)
        p16_pack_group(m, g, (uint8_t *)dst + (size_t)g * gbytes, z);
    if (z != zero) free(z);
}

void kern_matrix_use_packed(struct kern_matrix *m, void *dst)
{
    kern_matrix_release(m);
    m->packed = dst;
    m->packed_map = 0;
}

int kern_matrix_prepare(struct kern_matrix *m, struct echo_err *err)
{
    if (m->packed || !packs_here(m)) return 0;
    if (!well_formed(m)) {
        echo_err_set(err, "cannot pack a malformed %d x %d matrix", m->rows, m->cols);
        return -1;
    }
    size_t total = kern_matrix_packed_bytes(m);
    uint8_t *buf = kern_map_huge(total);
    if (!buf) {
        echo_err_set(err, "out of memory packing a %d x %d matrix (%zu bytes)", m->rows, m->cols,
                     total);
        return -1;
    }
    kern_matrix_pack_groups(m, buf, 0, kern_matrix_groups(m));
    m->packed = buf;
    m->packed_map = total;
    return 0;
}

void kern_matrix_release(struct kern_matrix *m)
{
    if (m->packed_map) kern_unmap(m->packed, m->packed_map);
    m->packed = NULL;
    m->packed_map = 0;
}

void kern_matrix_row(const struct kern_matrix *m, int r, float *dst)
{
    if (!m->packed) {
        kern_dequantize_row(m->type, (const uint8_t *)m->data + (size_t)r * m->row_bytes, dst,
                            m->cols);
        return;
    }
    uint8_t stack[4096];
    uint8_t *tmp = m->row_bytes <= sizeof(stack) ? stack : xmalloc(m->row_bytes);
    const uint8_t *grp = (const uint8_t *)m->packed +
                         (size_t)(r / P16_ROWS) * kern_p16_group_bytes(m->type, m->cols);
    p16_unpack_row(m->type, m->cols, grp, r % P16_ROWS, tmp);
    kern_dequantize_row(m->type, tmp, dst, m->cols);
    if (tmp != stack) free(tmp);
}

/* ---- kern_matmul: activations, tiling, threads --------------------------------- */

/* Work is cut into tiles of (rows x tokens), claimed from an atomic counter
 * so that a thread slowed by another process does not hold the others up.
 * 64 rows = 4 P16 groups; 64 tokens of activations (<= 600 KB at 8960
 * columns) and the weights of a tile stay in the 1 MB L2 of a Zen 4 core.
 * kern_matmul_multi puts the tiles of all its matrices behind one counter,
 * so a small matrix (attn_k/v) shares a run with the large ones instead of
 * paying for its own start and end. */
#define MM_TILE_ROWS 64
#define MM_TILE_TOKENS 64
_Static_assert(MM_TILE_TOKENS % P16_NT == 0, "token tiles are whole X8 tiles");

struct mm_job {
    struct mm_args args[KERN_MATMUL_MAX];
    int rows[KERN_MATMUL_MAX];
    int first_tile[KERN_MATMUL_MAX + 1]; /* matrix i owns tiles [first_tile[i], first_tile[i+1]) */
    int n_mat;
    const struct kern_ops *ops;
    int T, n_tok_tiles;
    atomic_int next;
};

/* The X8 extras of each weight type present (bias8 means -128 sum for Q8_0
 * and -8 sum for Q4_0, so two types cannot share one array). */
#define QX_TYPES 4

struct quant_job {
    const struct kern_ops *ops;
    const float *X;
    int cols, T;
    bool x8; /* make the X8 copy */
    int n_types;
    enum gguf_tensor_type types[QX_TYPES];
    struct kern_qx *qx; /* one per type; q, d, sum, q8, d8 shared by all */
};

/* The X8 copy of tile k (kernels_impl.h), from the plain quantized activations. */
static void interleave_tile(const struct quant_job *j, int k)
{
    int cols = j->cols, nb = cols / QK;
    int t0 = k * P16_NT, nt = j->T - t0 < P16_NT ? j->T - t0 : P16_NT;
    const struct kern_qx *qx = &j->qx[0];
    int8_t *q8 = qx->q8 + (size_t)t0 * cols;
    size_t o = (size_t)t0 * nb;
    for (int t = 0; t < nt; t++) {
        const int8_t *q = qx->q + (size_t)(t0 + t) * cols;
        const float *d = qx->d + (size_t)(t0 + t) * nb;
        const int32_t *sum = qx->sum + (size_t)(t0 + t) * nb;
        for (int b = 0; b < nb; b++) {
            size_t i = o + (size_t)nt * b + t;
            for (int s = 0; s < QK / 4; s++)
                memcpy(q8 + 32 * nt * b + 4 * nt * s + 4 * t, q + QK * b + 4 * s, 4);
            qx->d8[i] = d[b];
            for (int ty = 0; ty < j->n_types; ty++) {
                const struct kern_qx *x = &j->qx[ty];
                switch (j->types[ty]) {
                case GGUF_TENSOR_Q8_0:
                    x->bias8[i] = -128 * sum[b];
                    break;
                case GGUF_TENSOR_Q4_0:
                    x->bias8[i] = -8 * sum[b];
                    break;
                case GGUF_TENSOR_Q6_K: {
                    int32_t lo = 0;
                    for (int l = 0; l < QK / 2; l++)
                        lo += q[QK * b + l];
                    x->bias8[i] = -32 * lo;
                    x->bias8h[i] = -32 * (sum[b] - lo);
                    break;
                }
                default: /* Q4_K */
                    x->ds8[i] = d[b] * (float)sum[b];
                    break;
                }
            }
        }
    }
}

static void quant_worker(void *arg, int ith, int nth)
{
    struct quant_job *j = arg;
    int nb = j->cols / QK;
    int tiles = (j->T + P16_NT - 1) / P16_NT;
    int k0 = (int)((long)tiles * ith / nth), k1 = (int)((long)tiles * (ith + 1) / nth);
    for (int k = k0; k < k1; k++) {
        int t1 = (k + 1) * P16_NT < j->T ? (k + 1) * P16_NT : j->T;
        for (int t = k * P16_NT; t < t1; t++)
            j->ops->quantize_act(j->X + (size_t)t * j->cols, j->cols,
                                 j->qx->q + (size_t)t * j->cols, j->qx->d + (size_t)t * nb,
                                 j->qx->sum + (size_t)t * nb);
        if (j->x8) interleave_tile(j, k);
    }
}

/* A tile of a packed matrix on a path without packed kernels: unpack its
 * groups to the file layout and run the path's kernel on them. */
static void mm_tile_unpacked(const struct mm_job *j, const struct mm_args *a, int r0, int r1,
                             int t0, int t1, uint8_t **scratch)
{
    size_t row_bytes = kern_row_bytes(a->type, a->cols);
    if (!*scratch) *scratch = xmalloc(P16_ROWS * kern_row_bytes(GGUF_TENSOR_Q8_0, a->cols) + 64);
    for (int g0 = r0; g0 < r1; g0 += P16_ROWS) {
        kern_p16_unpack_group(a->type, a->cols, a->packed, g0 / P16_ROWS, *scratch);
        struct mm_args sub = *a;
        sub.w = *scratch;
        sub.row_bytes = row_bytes;
        sub.packed = NULL;
        sub.y = a->y + g0;
        int n = r1 - g0 < P16_ROWS ? r1 - g0 : P16_ROWS;
        j->ops->matmul(&sub, 0, n, t0, t1);
    }
}

static void mm_worker(void *arg, int ith, int nth)
{
    (void)ith;
    (void)nth;
    struct mm_job *j = arg;
    int total = j->first_tile[j->n_mat];
    uint8_t *scratch = NULL;
    for (;;) {
        int i = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed);
        if (i >= total) break;
        int m = 0;
        while (i >= j->first_tile[m + 1])
            m++;
        const struct mm_args *a = &j->args[m];
        /* Consecutive tiles share their rows: a thread keeps the weights it
         * just read in its cache while it moves on to the next tokens. */
        int local = i - j->first_tile[m];
        int rt = local / j->n_tok_tiles, tt = local % j->n_tok_tiles;
        int rows = j->rows[m];
        int r0 = rt * MM_TILE_ROWS, r1 = r0 + MM_TILE_ROWS < rows ? r0 + MM_TILE_ROWS : rows;
        int t0 = tt * MM_TILE_TOKENS, t1 = t0 + MM_TILE_TOKENS < j->T ? t0 + MM_TILE_TOKENS : j->T;
        if (a->packed && !j->ops->has_packed)
            mm_tile_unpacked(j, a, r0, r1, t0, t1, &scratch);
        else
            j->ops->matmul(a, r0, r1, t0, t1);
    }
    free(scratch);
}

static bool is_quant(enum gguf_tensor_type t)
{
    return t == GGUF_TENSOR_Q8_0 || t == GGUF_TENSOR_Q4_0 || t == GGUF_TENSOR_Q4_K ||
           t == GGUF_TENSOR_Q6_K;
}

void kern_matmul_multi(const struct kern_matrix *const *W, int n, const float *X, int T,
                       float *const *Y, struct kern_pool *pool)
{
    if (T <= 0 || n <= 0) return;
    bool same_cols = n <= KERN_MATMUL_MAX;
    for (int i = 1; i < n && same_cols; i++)
        same_cols = W[i]->cols == W[0]->cols;
    if (!same_cols) { /* not what the contract allows; still computed, one by one */
        for (int i = 0; i < n; i++)
            kern_matmul_multi(&W[i], 1, X, T, &Y[i], pool);
        return;
    }
    const struct kern_ops *ops = kern_ops_get();
    const int cols = W[0]->cols;
    struct kern_qx qx[QX_TYPES];
    memset(qx, 0, sizeof(qx));
    struct quant_job qj = {.ops = ops, .X = X, .cols = cols, .T = T, .qx = qx};
    bool quant = false;
    int type_of[KERN_MATMUL_MAX] = {0};
    for (int i = 0; i < n; i++) {
        if (!is_quant(W[i]->type)) continue;
        quant = true;
        if (!(W[i]->packed && ops->has_packed)) continue;
        qj.x8 = true;
        int ty = 0;
        while (ty < qj.n_types && qj.types[ty] != W[i]->type)
            ty++;
        if (ty == qj.n_types) qj.types[qj.n_types++] = W[i]->type;
        type_of[i] = ty;
    }
    void *qbuf = NULL;
    if (quant) {
        /* One buffer: the plain layout, then the X8 copy and each type's
         * extras when the path's kernels read packed weights (kernels_impl.h). */
        size_t nb = (size_t)cols / QK;
        size_t qbytes = ((size_t)T * cols + 63) & ~(size_t)63;
        size_t sbytes = ((size_t)T * nb * sizeof(float) + 63) & ~(size_t)63;
        size_t total = qbytes + 2 * sbytes;
        if (qj.x8) total += qbytes + sbytes + (size_t)qj.n_types * 3 * sbytes;
        uint8_t *p = kern_pool_scratch(pool, total);
        if (!p) p = qbuf = xmalloc(total);
        qx[0].q = (int8_t *)p;
        qx[0].d = (float *)(void *)(p + qbytes);
        qx[0].sum = (int32_t *)(p + qbytes + sbytes);
        if (qj.x8) {
            p += qbytes + 2 * sbytes;
            qx[0].q8 = (int8_t *)p;
            qx[0].d8 = (float *)(void *)(p + qbytes);
            p += qbytes + sbytes;
            for (int ty = 0; ty < qj.n_types; ty++, p += 3 * sbytes) {
                qx[ty].q = qx[0].q;
                qx[ty].d = qx[0].d;
                qx[ty].sum = qx[0].sum;
                qx[ty].q8 = qx[0].q8;
                qx[ty].d8 = qx[0].d8;
                qx[ty].bias8 = (int32_t *)p;
                qx[ty].bias8h = (int32_t *)(p + sbytes);
                qx[ty].ds8 = (float *)(void *)(p + 2 * sbytes);
            }
        }
        if (T <= P16_NT || !pool)
            quant_worker(&qj, 0, 1);
        else
            kern_pool_run(pool, quant_worker, &qj);
    }

    struct mm_job j = {
        .n_mat = n, .ops = ops, .T = T, .n_tok_tiles = (T + MM_TILE_TOKENS - 1) / MM_TILE_TOKENS};
    for (int i = 0; i < n; i++) {
        j.args[i] = (struct mm_args){
            .type = W[i]->type,
            .cols = cols,
            .w = W[i]->data,
            .row_bytes = W[i]->row_bytes,
            .packed = W[i]->packed,
            .x = X,
            .qx = is_quant(W[i]->type) ? &qx[type_of[i]] : NULL,
            .y = Y[i],
            .ldy = W[i]->rows,
        };
        j.rows[i] = W[i]->rows;
        j.first_tile[i + 1] =
            j.first_tile[i] + (W[i]->rows + MM_TILE_ROWS - 1) / MM_TILE_ROWS * j.n_tok_tiles;
    }
    atomic_init(&j.next, 0);
    kern_pool_run(pool, mm_worker, &j);
    free(qbuf);
}

void kern_matmul(const struct kern_matrix *W, const float *X, int T, float *Y,
                 struct kern_pool *pool)
{
    if (W->rows <= 0) return;
    kern_matmul_multi(&W, 1, X, T, &Y, pool);
}

/* ---- measurement ------------------------------------------------------------ */

/* The buffer is read in 1 MiB chunks claimed from a counter, as the matrix
 * products claim their tiles: the threads read nearby addresses, and one
 * slowed by another program does not hold the others up. */
#define BW_CHUNK ((size_t)1 << 20)

struct bw_job {
    const struct kern_ops *ops;
    const uint8_t *buf;
    size_t bytes;
    atomic_size_t next;
    atomic_uint_fast64_t sink;
};

static void bw_worker(void *arg, int ith, int nth)
{
    (void)ith;
    (void)nth;
    struct bw_job *j = arg;
    uint64_t v = 0;
    for (;;) {
        size_t off = atomic_fetch_add_explicit(&j->next, BW_CHUNK, memory_order_relaxed);
        if (off >= j->bytes) break;
        size_t n = j->bytes - off < BW_CHUNK ? j->bytes - off : BW_CHUNK;
        v ^= j->ops->read_stream(j->buf + off, n);
    }
    atomic_fetch_xor(&j->sink, v);
}

double kern_read_bandwidth(struct kern_pool *pool, size_t bytes, int reps)
{
    bytes &= ~(size_t)255;
    if (bytes == 0) return -1;
    /* The same pages as the weights (kern_map_huge): with 4 KiB pages the
     * TLB misses, not the memory, would set the figure. */
    uint8_t *buf = kern_map_huge(bytes);
    if (!buf) return -1;
    /* Touch every page with non-zero data so that no pass reads the shared zero page. */
    for (size_t i = 0; i < bytes; i += 64)
        memset(buf + i, (int)(i >> 6) | 1, 64);
    struct bw_job j = {.ops = kern_ops_get(), .buf = buf, .bytes = bytes};
    atomic_init(&j.next, 0);
    atomic_init(&j.sink, 0);
    kern_pool_run(pool, bw_worker, &j); /* warm-up: page tables, frequencies */
    double best = 0;
    for (int r = 0; r < (reps > 0 ? reps : 1); r++) {
        struct timespec t0, t1;
        atomic_store(&j.next, 0);
        clock_gettime(CLOCK_MONOTONIC, &t0);
        kern_pool_run(pool, bw_worker, &j);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
        double gbs = (double)bytes / s * 1e-9;
        if (gbs > best) best = gbs;
    }
    kern_unmap(buf, bytes);
    return best;
}
