/*
 * kernels_avx2.c - the AVX2 (+FMA, F16C) path: 8-wide versions of the
 * scalar references in kernels.c, for x86-64 CPUs without AVX-512 (Haswell
 * and later, Zen 1-3). Functions carry target attributes, so the file builds
 * with the default flags and runs only when kernels.c chose this path (or
 * the AVX-512 path borrowed one of its kernels).
 *
 * Quantized matrices that were packed (kern_matrix_prepare) go through
 * blocked int8 kernels, 8 rows by up to 4 tokens per pass over the P16
 * layout, bit-identical to the AVX-512 ones. On the file layout, the
 * quantized types run one output (row, token) at a time (ggml's approach:
 * VPMADDUBSW on |w| and sign-adjusted activations) and the float types four
 * rows by up to four tokens at a time (one 8-lane accumulator per output,
 * so every output sees the same sequence of operations however the work is
 * tiled).
 */
#include "llm/kernels_impl.h"

#if defined(__x86_64__)

#include <stdbool.h>

#include <immintrin.h>
#include <math.h>

#define AVX2 __attribute__((target("avx2,fma,f16c")))
#define AVX2_INLINE static inline __attribute__((always_inline, target("avx2,fma,f16c")))

/* ---- helpers --------------------------------------------------------------- */

AVX2_INLINE float hsum8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

AVX2_INLINE float hmax8(__m256 v)
{
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

AVX2_INLINE int32_t hsum8_epi32(__m256i v)
{
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

AVX2_INLINE __m256 load_f16x8(const uint16_t *p)
{
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}

AVX2_INLINE __m256 load_bf16x8(const uint16_t *p)
{
    __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
}

/*
 * exp(x) for 8 floats, Cephes expf: x = n ln2 + r with |r| <= ln2/2, e^r by
 * a degree-7 polynomial (~1 ulp), times 2^n applied in two halves so that
 * n = 128 (x near ln FLT_MAX) and subnormal results come out right. x is
 * clamped to [-104, 89]: below, the result is 0 (e^-104 < the smallest
 * subnormal), above, the two scalings overflow to inf as they should.
 */
AVX2_INLINE __m256 exp8(__m256 x)
{
    const __m256 log2e = _mm256_set1_ps(1.44269504088896341f);
    const __m256 ln2_hi = _mm256_set1_ps(0.693359375f);
    const __m256 ln2_lo = _mm256_set1_ps(-2.12194440e-4f);
    __m256 xc = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-104.0f)), _mm256_set1_ps(89.0f));
    __m256 n =
        _mm256_round_ps(_mm256_mul_ps(xc, log2e), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, ln2_hi, xc);
    r = _mm256_fnmadd_ps(n, ln2_lo, r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i ni = _mm256_cvtps_epi32(n);
    __m256i a = _mm256_srai_epi32(ni, 1);
    __m256i b = _mm256_sub_epi32(ni, a);
    __m256 sa =
        _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(a, _mm256_set1_epi32(127)), 23));
    __m256 sb =
        _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(b, _mm256_set1_epi32(127)), 23));
    __m256 res = _mm256_mul_ps(_mm256_mul_ps(p, sa), sb);
    /* NaN in, NaN out */
    return _mm256_blendv_ps(res, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
}

/* ---- row kernels ------------------------------------------------------------ */

AVX2 static float dot_f32(const float *a, const float *b, int n)
{
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
    }
    for (; i + 8 <= n; i += 8)
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
    float sum = hsum8(_mm256_add_ps(acc0, acc1));
    for (; i < n; i++)
        sum += a[i] * b[i];
    return sum;
}

AVX2 static float dot_f16(const uint16_t *a, const float *b, int n)
{
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        acc0 = _mm256_fmadd_ps(load_f16x8(a + i), _mm256_loadu_ps(b + i), acc0);
        acc1 = _mm256_fmadd_ps(load_f16x8(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
    }
    for (; i + 8 <= n; i += 8)
        acc0 = _mm256_fmadd_ps(load_f16x8(a + i), _mm256_loadu_ps(b + i), acc0);
    float sum = hsum8(_mm256_add_ps(acc0, acc1));
    for (; i < n; i++)
        sum += _cvtsh_ss(a[i]) * b[i];
    return sum;
}

AVX2 static void axpy_f32(float *y, float a, const float *x, int n)
{
    __m256 va = _mm256_set1_ps(a);
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i,
                         _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++)
        y[i] += a * x[i];
}

AVX2 static void axpy_f16(float *y, float a, const uint16_t *x, int n)
{
    __m256 va = _mm256_set1_ps(a);
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, load_f16x8(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++)
        y[i] += a * _cvtsh_ss(x[i]);
}

AVX2 static void add(float *y, const float *x, int n)
{
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_add_ps(_mm256_loadu_ps(y + i), _mm256_loadu_ps(x + i)));
    for (; i < n; i++)
        y[i] += x[i];
}

AVX2 static void rmsnorm(float *out, const float *x, const float *weight, int n, float eps)
{
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 a = _mm256_loadu_ps(x + i), b = _mm256_loadu_ps(x + i + 8);
        acc0 = _mm256_fmadd_ps(a, a, acc0);
        acc1 = _mm256_fmadd_ps(b, b, acc1);
    }
    float ss = hsum8(_mm256_add_ps(acc0, acc1));
    for (; i < n; i++)
        ss += x[i] * x[i];
    float scale = (float)(1.0 / sqrt((double)ss / n + eps));
    __m256 vs = _mm256_set1_ps(scale);
    for (i = 0; i + 8 <= n; i += 8)
        _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_loadu_ps(weight + i),
                                                _mm256_mul_ps(_mm256_loadu_ps(x + i), vs)));
    for (; i < n; i++)
        out[i] = weight[i] * (x[i] * scale);
}

AVX2 static void softmax(float *x, int n)
{
    if (n <= 0) return;
    int i = 0;
    __m256 vmax = _mm256_set1_ps(-INFINITY);
    for (; i + 8 <= n; i += 8)
        vmax = _mm256_max_ps(vmax, _mm256_loadu_ps(x + i));
    float max = hmax8(vmax);
    for (; i < n; i++)
        if (x[i] > max) max = x[i];
    if (max == -INFINITY) {
        for (i = 0; i < n; i++)
            x[i] = 1.0f / n;
        return;
    }
    __m256 vm = _mm256_set1_ps(max), vsum = _mm256_setzero_ps();
    for (i = 0; i + 8 <= n; i += 8) {
        __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm));
        _mm256_storeu_ps(x + i, e);
        vsum = _mm256_add_ps(vsum, e);
    }
    float sum = hsum8(vsum);
    for (; i < n; i++) {
        x[i] = expf(x[i] - max);
        sum += x[i];
    }
    __m256 inv = _mm256_set1_ps(1.0f / sum);
    for (i = 0; i + 8 <= n; i += 8)
        _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), inv));
    for (; i < n; i++)
        x[i] *= 1.0f / sum;
}

AVX2 static void swiglu(float *out, const float *gate, const float *up, int n)
{
    const __m256 one = _mm256_set1_ps(1.0f);
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 g = _mm256_loadu_ps(gate + i);
        __m256 e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), g));
        __m256 s = _mm256_div_ps(g, _mm256_add_ps(one, e));
        _mm256_storeu_ps(out + i, _mm256_mul_ps(s, _mm256_loadu_ps(up + i)));
    }
    for (; i < n; i++)
        out[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

AVX2 static void f32_to_fp16_row(const float *src, uint16_t *dst, int n)
{
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(dst + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++)
        dst[i] = kern_f32_to_fp16(src[i]);
}

/* ---- activations --------------------------------------------------------------- */

AVX2_INLINE __m256i clamp_act(__m256i v)
{
    v = _mm256_andnot_si256(_mm256_cmpeq_epi32(v, _mm256_set1_epi32(INT32_MIN)), v);
    return _mm256_max_epi32(_mm256_min_epi32(v, _mm256_set1_epi32(127)), _mm256_set1_epi32(-127));
}

/* Bit-identical to kern_scalar_quantize_act: the same float operations, and
 * VCVTPS2DQ rounds to nearest even like nearbyintf. */
AVX2 static void quantize_act(const float *x, int n, int8_t *q, float *d, int32_t *sum)
{
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (int b = 0; b < n / QK; b++) {
        const float *xb = x + b * QK;
        __m256 v[4];
        __m256 amax = _mm256_setzero_ps();
        for (int k = 0; k < 4; k++) {
            v[k] = _mm256_loadu_ps(xb + 8 * k);
            /* max(|v|, amax): a NaN |v| yields amax, as fmaxf ignores NaN */
            amax = _mm256_max_ps(_mm256_andnot_ps(sign, v[k]), amax);
        }
        float am = hmax8(amax);
        float db = am / 127.0f;
        float id = db != 0.0f ? 1.0f / db : 0.0f;
        __m256 vid = _mm256_set1_ps(id);
        __m256i i0 = _mm256_cvtps_epi32(_mm256_mul_ps(v[0], vid));
        __m256i i1 = _mm256_cvtps_epi32(_mm256_mul_ps(v[1], vid));
        __m256i i2 = _mm256_cvtps_epi32(_mm256_mul_ps(v[2], vid));
        __m256i i3 = _mm256_cvtps_epi32(_mm256_mul_ps(v[3], vid));
        /* Degenerate lanes as in the scalar round_act: "indefinite" to 0, clamp. */
        i0 = clamp_act(i0);
        i1 = clamp_act(i1);
        i2 = clamp_act(i2);
        i3 = clamp_act(i3);
        int32_t s =
            hsum8_epi32(_mm256_add_epi32(_mm256_add_epi32(i0, i1), _mm256_add_epi32(i2, i3)));
        /* packs interleave 128-bit lanes; the permute restores element order */
        __m256i p01 = _mm256_packs_epi32(i0, i1);
        __m256i p23 = _mm256_packs_epi32(i2, i3);
        __m256i p = _mm256_packs_epi16(p01, p23);
        p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256((__m256i *)(q + b * QK), p);
        d[b] = db;
        sum[b] = s;
    }
}

/* ---- matrix products ------------------------------------------------------------ */

/* sum over the 32 pairs of an int8 weight block and int8 activations, as 8 int32 lanes */
AVX2_INLINE __m256i dot_i8x32(__m256i w, __m256i x)
{
    /* VPMADDUBSW wants an unsigned operand: |w| times x with w's sign moved over. */
    __m256i aw = _mm256_sign_epi8(w, w);
    __m256i sx = _mm256_sign_epi8(x, w);
    __m256i p16 = _mm256_maddubs_epi16(aw, sx);
    return _mm256_madd_epi16(p16, _mm256_set1_epi16(1));
}

AVX2 static float dot_q8_0(const uint8_t *row, const int8_t *xq, const float *xd, int nb)
{
    __m256 acc = _mm256_setzero_ps();
    for (int b = 0; b < nb; b++) {
        const uint8_t *blk = row + (size_t)b * sizeof(struct blk_q8_0);
        __m256i w = _mm256_loadu_si256((const __m256i *)(blk + 2));
        __m256i x = _mm256_loadu_si256((const __m256i *)(xq + b * QK));
        float scale = _cvtsh_ss(kern_load_u16(blk)) * xd[b];
        acc = _mm256_fmadd_ps(_mm256_set1_ps(scale), _mm256_cvtepi32_ps(dot_i8x32(w, x)), acc);
    }
    return hsum8(acc);
}

AVX2 static float dot_q4_0(const uint8_t *row, const int8_t *xq, const float *xd, const int32_t *xs,
                           int nb)
{
    const __m256i lo_mask = _mm256_set1_epi8(0x0f);
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc = _mm256_setzero_ps();
    for (int b = 0; b < nb; b++) {
        const uint8_t *blk = row + (size_t)b * sizeof(struct blk_q4_0);
        __m128i raw = _mm_loadu_si128((const __m128i *)(blk + 2));
        /* elements 0..15 are the low nibbles, 16..31 the high ones */
        __m256i w = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(raw, 4), raw), lo_mask);
        __m256i x = _mm256_loadu_si256((const __m256i *)(xq + b * QK));
        /* sum (nibble - 8) * x = sum nibble * x - 8 * sum x; nibble is unsigned already */
        __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(w, x), ones);
        p = _mm256_sub_epi32(p, _mm256_setr_epi32(8 * xs[b], 0, 0, 0, 0, 0, 0, 0));
        float scale = _cvtsh_ss(kern_load_u16(blk)) * xd[b];
        acc = _mm256_fmadd_ps(_mm256_set1_ps(scale), _mm256_cvtepi32_ps(p), acc);
    }
    return hsum8(acc);
}

/*
 * Q4_K row times quantized activations: for sub-block j of super-block i
 * (activation block b = 8i + j), dx_b * (d sc_j sum q xq - dmin m_j sum xq).
 * The nibbles are unsigned, so VPMADDUBSW takes them as they are; the min
 * part needs only the activation block sums, accumulated apart.
 */
AVX2 static float dot_q4_K(const uint8_t *row, const int8_t *xq, const float *xd, const int32_t *xs,
                           int nsb)
{
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc = _mm256_setzero_ps();
    float mins = 0.0f;
    for (int i = 0; i < nsb; i++) {
        const uint8_t *blk = row + (size_t)i * sizeof(struct blk_q4_K);
        const uint8_t *scales = blk + offsetof(struct blk_q4_K, scales);
        const uint8_t *qs = blk + offsetof(struct blk_q4_K, qs);
        float d = _cvtsh_ss(kern_load_u16(blk));
        float dmin = _cvtsh_ss(kern_load_u16(blk + 2));
        for (int jj = 0; jj < 4; jj++) {
            int b = 8 * i + 2 * jj;
            uint8_t sc0, m0, sc1, m1;
            kern_q4_K_scale_min(2 * jj, scales, &sc0, &m0);
            kern_q4_K_scale_min(2 * jj + 1, scales, &sc1, &m1);
            __m256i raw = _mm256_loadu_si256((const __m256i *)(qs + 32 * jj));
            __m256i lo = _mm256_and_si256(raw, m4);
            __m256i hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4);
            __m256i x0 = _mm256_loadu_si256((const __m256i *)(xq + QK * b));
            __m256i x1 = _mm256_loadu_si256((const __m256i *)(xq + QK * (b + 1)));
            __m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, x0), ones);
            __m256i p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, x1), ones);
            acc = _mm256_fmadd_ps(_mm256_set1_ps(d * sc0 * xd[b]), _mm256_cvtepi32_ps(p0), acc);
            acc = _mm256_fmadd_ps(_mm256_set1_ps(d * sc1 * xd[b + 1]), _mm256_cvtepi32_ps(p1), acc);
            mins += dmin * m0 * xd[b] * (float)xs[b] + dmin * m1 * xd[b + 1] * (float)xs[b + 1];
        }
    }
    return hsum8(acc) - mins;
}

/*
 * Q6_K row times quantized activations. Per 128-element half, the four
 * quarters are rebuilt from ql (low 4 bits) and qh (high 2 bits) as signed
 * q - 32; lanes 0-3 of a block's products cover elements 0-15 (one scale),
 * lanes 4-7 elements 16-31 (the next), so the scale vector has two halves.
 */
AVX2 static float dot_q6_K(const uint8_t *row, const int8_t *xq, const float *xd, int nsb)
{
    const __m256i m4 = _mm256_set1_epi8(0x0f), m2 = _mm256_set1_epi8(3);
    const __m256i off = _mm256_set1_epi8(32);
    __m256 acc = _mm256_setzero_ps();
    for (int i = 0; i < nsb; i++) {
        const uint8_t *blk = row + (size_t)i * sizeof(struct blk_q6_K);
        const uint8_t *ql = blk + offsetof(struct blk_q6_K, ql);
        const uint8_t *qhp = blk + offsetof(struct blk_q6_K, qh);
        const int8_t *scales = (const int8_t *)(blk + offsetof(struct blk_q6_K, scales));
        float d = _cvtsh_ss(kern_load_u16(blk + offsetof(struct blk_q6_K, d)));
        for (int n = 0; n < 2; n++) {
            __m256i ql0 = _mm256_loadu_si256((const __m256i *)(ql + 64 * n));
            __m256i ql1 = _mm256_loadu_si256((const __m256i *)(ql + 64 * n + 32));
            __m256i qh = _mm256_loadu_si256((const __m256i *)(qhp + 32 * n));
            __m256i q[4];
            q[0] = _mm256_or_si256(_mm256_and_si256(ql0, m4),
                                   _mm256_slli_epi16(_mm256_and_si256(qh, m2), 4));
            q[1] = _mm256_or_si256(
                _mm256_and_si256(ql1, m4),
                _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), m2), 4));
            q[2] = _mm256_or_si256(
                _mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4),
                _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), m2), 4));
            q[3] = _mm256_or_si256(
                _mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), m2), 4));
            for (int k = 0; k < 4; k++) {
                int b = 8 * i + 4 * n + k;
                const int8_t *sc = scales + 8 * n + 2 * k;
                __m256i x = _mm256_loadu_si256((const __m256i *)(xq + QK * b));
                __m256i p = dot_i8x32(_mm256_sub_epi8(q[k], off), x);
                float f = d * xd[b];
                float s0 = f * sc[0], s1 = f * sc[1];
                __m256 scale = _mm256_setr_ps(s0, s0, s0, s0, s1, s1, s1, s1);
                acc = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(p), acc);
            }
        }
    }
    return hsum8(acc);
}

/* 8 weights of row `row` at column c as floats */
AVX2_INLINE __m256 load_w8(enum gguf_tensor_type type, const uint8_t *row, int c)
{
    switch (type) {
    case GGUF_TENSOR_F16:
        return load_f16x8((const uint16_t *)(row + 2 * (size_t)c));
    case GGUF_TENSOR_BF16:
        return load_bf16x8((const uint16_t *)(row + 2 * (size_t)c));
    default:
        return _mm256_loadu_ps((const float *)(const void *)(row + 4 * (size_t)c));
    }
}

AVX2_INLINE float load_w1(enum gguf_tensor_type type, const uint8_t *row, int c)
{
    switch (type) {
    case GGUF_TENSOR_F16:
        return _cvtsh_ss(kern_load_u16(row + 2 * (size_t)c));
    case GGUF_TENSOR_BF16:
        return kern_bf16_to_f32(kern_load_u16(row + 2 * (size_t)c));
    default: {
        float w;
        memcpy(&w, row + 4 * (size_t)c, 4);
        return w;
    }
    }
}

/*
 * NR rows x NT tokens of a float-type matrix. Each output has its own 8-lane
 * accumulator over the full vectors, then a horizontal sum, then the scalar
 * tail: the same sequence whatever NR and NT are.
 */
AVX2_INLINE void float_tile(const struct mm_args *a, int r, int t, const int NR, const int NT)
{
    int n = a->cols, nv = n & ~7;
    const uint8_t *rows[4];
    const float *xs[4];
    __m256 acc[4][4];
    for (int i = 0; i < NR; i++)
        rows[i] = a->w + (size_t)(r + i) * a->row_bytes;
    for (int j = 0; j < NT; j++)
        xs[j] = a->x + (size_t)(t + j) * n;
#pragma GCC unroll 4
    for (int i = 0; i < NR; i++)
#pragma GCC unroll 4
        for (int j = 0; j < NT; j++)
            acc[i][j] = _mm256_setzero_ps();
    for (int c = 0; c < nv; c += 8) {
        __m256 w[4], x[4];
#pragma GCC unroll 4
        for (int i = 0; i < NR; i++)
            w[i] = load_w8(a->type, rows[i], c);
#pragma GCC unroll 4
        for (int j = 0; j < NT; j++)
            x[j] = _mm256_loadu_ps(xs[j] + c);
#pragma GCC unroll 4
        for (int i = 0; i < NR; i++)
#pragma GCC unroll 4
            for (int j = 0; j < NT; j++)
                acc[i][j] = _mm256_fmadd_ps(w[i], x[j], acc[i][j]);
    }
    for (int i = 0; i < NR; i++) {
        for (int j = 0; j < NT; j++) {
            float s = hsum8(acc[i][j]);
            for (int c = nv; c < n; c++)
                s += load_w1(a->type, rows[i], c) * xs[j][c];
            a->y[(size_t)(t + j) * a->ldy + r + i] = s;
        }
    }
}

AVX2 static void float_rows(const struct mm_args *a, int r0, int r1, int t0, int t1)
{
    int r = r0;
    for (; r + 4 <= r1; r += 4) {
        int t = t0;
        for (; t + 4 <= t1; t += 4)
            float_tile(a, r, t, 4, 4);
        for (; t < t1; t++)
            float_tile(a, r, t, 4, 1);
    }
    for (; r < r1; r++)
        for (int t = t0; t < t1; t++)
            float_tile(a, r, t, 1, 1);
}

/* ---- blocked int8 kernels over the P16 layout ------------------------------------------ */

/*
 * The packed layout of kernels_impl.h, read as two halves of 8 rows: a
 * 64-byte step holds 4 bytes of each of 16 rows, bytes 0-31 rows 0-7 and
 * bytes 32-63 rows 8-15, so one 32-byte load gives 4 columns of 8 rows and
 * VPMADDUBSW + VPMADDWD against a token's 4 broadcast activation bytes give
 * the 8 rows' partial dot products. One pass computes 8 rows times NJ (<= 4)
 * tokens of an X8 tile of nt tokens: the weights of a block are loaded and
 * unpacked once for all NJ tokens (the decode case is NJ = 1, where the
 * weights are read once per token as they must be).
 *
 * VPMADDUBSW multiplies unsigned by signed bytes and saturates the sum of
 * each pair to int16, so each type keeps its pair sums in range:
 *   Q8_0: |w| * (x with w's sign) <= 2 * 128 * 127 < 2^15 (the packed bytes
 *         are w + 128; XOR 0x80 gives w back); no offset, so the activation
 *         bias of the X8 copy is not used;
 *   Q4_0, Q4_K: nibble (0..15) * x: 8 products of a block add up in int16
 *         (8 * 2 * 15 * 127 < 2^15) before one VPMADDWD;
 *   Q6_K: q (0..63) * x <= 16002 per pair: one VPMADDWD per step.
 * Integer sums are exact, and the float steps after them are those of the
 * AVX-512 kernels in the same order, so both paths give the same bits.
 */
enum p8_kind { P8_Q8_0, P8_Q4_0, P8_Q4_K, P8_Q6_K };

AVX2_INLINE __m256i bcast4(const int8_t *p)
{
    int32_t v;
    memcpy(&v, p, sizeof(v));
    return _mm256_set1_epi32(v);
}

AVX2_INLINE __m256 load_f16x8_u8(const uint8_t *p)
{
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}

AVX2_INLINE __m256 u8x8_to_f32(const uint8_t *p, bool is_signed)
{
    __m128i v = _mm_loadl_epi64((const __m128i *)p);
    return _mm256_cvtepi32_ps(is_signed ? _mm256_cvtepi8_epi32(v) : _mm256_cvtepu8_epi32(v));
}

/* Block b of rows [8h, 8h+8) of the group at grp times tokens j0..j0+NJ-1
 * of the X8 tile at token t (nt tokens), added to acc[0..NJ). */
AVX2_INLINE void p8_block(const uint8_t *grp, const enum p8_kind kind, const struct mm_args *a,
                          int h, int t, int nt, int j0, const int NJ, int b, __m256 *acc)
{
    const int cols = a->cols, nb = cols / QK;
    const __m256i ones = _mm256_set1_epi16(1), m4 = _mm256_set1_epi8(0x0f);
    const int8_t *xq = a->qx->q8 + (size_t)t * cols;
    const float *xd = a->qx->d8 + (size_t)t * nb;
    const int8_t *xb = xq + (size_t)QK * nt * b + 4 * j0;
    size_t xi = (size_t)nt * b + j0; /* index of (block b, token j0) in d8/bias8/... */
    __m256i isum[4], isum_h[4];
    const uint8_t *qs;
    if (kind == P8_Q8_0) {
        qs = grp + (size_t)b * P16_Q8_0_BLOCK_BYTES + 2 * P16_ROWS + 32 * h;
#pragma GCC unroll 4
        for (int j = 0; j < NJ; j++)
            isum[j] = _mm256_setzero_si256();
#pragma GCC unroll 8
        for (int s = 0; s < 8; s++) {
            __m256i w = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(qs + 64 * s)),
                                         _mm256_set1_epi8((char)0x80));
            __m256i aw = _mm256_sign_epi8(w, w);
#pragma GCC unroll 4
            for (int j = 0; j < NJ; j++) {
                __m256i sx = _mm256_sign_epi8(bcast4(xb + 4 * nt * s + 4 * j), w);
                isum[j] = _mm256_add_epi32(isum[j],
                                           _mm256_madd_epi16(_mm256_maddubs_epi16(aw, sx), ones));
            }
        }
        __m256 dw = load_f16x8_u8(grp + (size_t)b * P16_Q8_0_BLOCK_BYTES + 16 * h);
#pragma GCC unroll 4
        for (int j = 0; j < NJ; j++) {
            __m256 v = _mm256_mul_ps(_mm256_cvtepi32_ps(isum[j]), _mm256_set1_ps(xd[xi + j]));
            acc[j] = _mm256_fmadd_ps(dw, v, acc[j]);
        }
    } else if (kind == P8_Q4_0 || kind == P8_Q4_K) {
        const uint8_t *blk;
        if (kind == P8_Q4_0) {
            blk = grp + (size_t)b * P16_Q4_0_BLOCK_BYTES;
        } else {
            blk = grp + (size_t)(b / 8) * P16_Q4_K_SUPER_BYTES + 4 * P16_ROWS +
                  (size_t)(b % 8) * P16_Q4_K_BLOCK_BYTES;
        }
        qs = blk + 2 * P16_ROWS + 32 * h;
        __m256i p16[4];
#pragma GCC unroll 4
        for (int j = 0; j < NJ; j++)
            p16[j] = _mm256_setzero_si256();
#pragma GCC unroll 4
        for (int s = 0; s < 4; s++) {
            __m256i raw = _mm256_loadu_si256((const __m256i *)(qs + 64 * s));
            __m256i lo = _mm256_and_si256(raw, m4);
            __m256i hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4);
#pragma GCC unroll 4
            for (int j = 0; j < NJ; j++) {
                /* low nibbles are elements 4s.., high nibbles 16+4s.. (step s+4) */
                p16[j] = _mm256_add_epi16(
                    p16[j], _mm256_maddubs_epi16(lo, bcast4(xb + 4 * nt * s + 4 * j)));
                p16[j] = _mm256_add_epi16(
                    p16[j], _mm256_maddubs_epi16(hi, bcast4(xb + 4 * nt * (s + 4) + 4 * j)));
            }
        }
        if (kind == P8_Q4_0) {
            __m256 dw = load_f16x8_u8(blk + 16 * h);
#pragma GCC unroll 4
            for (int j = 0; j < NJ; j++) {
                __m256i is =
                    _mm256_add_epi32(_mm256_madd_epi16(p16[j], ones),
                                     _mm256_set1_epi32(a->qx->bias8[(size_t)t * nb + xi + j]));
                __m256 v = _mm256_mul_ps(_mm256_cvtepi32_ps(is), _mm256_set1_ps(xd[xi + j]));
                acc[j] = _mm256_fmadd_ps(dw, v, acc[j]);
            }
        } else {
            const uint8_t *sb = grp + (size_t)(b / 8) * P16_Q4_K_SUPER_BYTES;
            __m256 sc = _mm256_mul_ps(load_f16x8_u8(sb + 16 * h), u8x8_to_f32(blk + 8 * h, false));
            __m256 mn = _mm256_mul_ps(load_f16x8_u8(sb + 2 * P16_ROWS + 16 * h),
                                      u8x8_to_f32(blk + P16_ROWS + 8 * h, false));
            const float *xds = a->qx->ds8 + (size_t)t * nb + xi;
#pragma GCC unroll 4
            for (int j = 0; j < NJ; j++) {
                __m256i is = _mm256_madd_epi16(p16[j], ones);
                __m256 v = _mm256_mul_ps(_mm256_cvtepi32_ps(is), _mm256_set1_ps(xd[xi + j]));
                acc[j] = _mm256_fmadd_ps(sc, v, acc[j]);
                acc[j] = _mm256_fnmadd_ps(mn, _mm256_set1_ps(xds[j]), acc[j]);
            }
        }
    } else { /* Q6_K */
        const uint8_t *sb = grp + (size_t)(b / 8) * P16_Q6_K_SUPER_BYTES;
        const uint8_t *blk = sb + 2 * P16_ROWS + (size_t)(b % 8) * P16_Q6_K_BLOCK_BYTES;
        qs = blk + 2 * P16_ROWS + 32 * h;
        const int32_t *blo = a->qx->bias8 + (size_t)t * nb + xi;
        const int32_t *bhi = a->qx->bias8h + (size_t)t * nb + xi;
#pragma GCC unroll 4
        for (int j = 0; j < NJ; j++) {
            isum[j] = _mm256_set1_epi32(blo[j]);
            isum_h[j] = _mm256_set1_epi32(bhi[j]);
        }
        __m256i h0 = _mm256_loadu_si256((const __m256i *)(qs + 4 * 64));
        __m256i h1 = _mm256_loadu_si256((const __m256i *)(qs + 5 * 64));
        const __m256i m30 = _mm256_set1_epi8(0x30);
#pragma GCC unroll 4
        for (int s = 0; s < 4; s++) {
            __m256i raw = _mm256_loadu_si256((const __m256i *)(qs + 64 * s));
            /* the 2 high bits for step s, moved to bits 4-5 of each byte */
            __m256i hb0, hb1;
            switch (s) {
            case 0:
                hb0 = _mm256_slli_epi16(h0, 4);
                hb1 = _mm256_slli_epi16(h1, 4);
                break;
            case 1:
                hb0 = _mm256_slli_epi16(h0, 2);
                hb1 = _mm256_slli_epi16(h1, 2);
                break;
            case 2:
                hb0 = h0;
                hb1 = h1;
                break;
            default:
                hb0 = _mm256_srli_epi16(h0, 2);
                hb1 = _mm256_srli_epi16(h1, 2);
                break;
            }
            __m256i lo = _mm256_or_si256(_mm256_and_si256(raw, m4), _mm256_and_si256(hb0, m30));
            __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(raw, 4), m4),
                                         _mm256_and_si256(hb1, m30));
#pragma GCC unroll 4
            for (int j = 0; j < NJ; j++) {
                isum[j] = _mm256_add_epi32(
                    isum[j], _mm256_madd_epi16(
                                 _mm256_maddubs_epi16(lo, bcast4(xb + 4 * nt * s + 4 * j)), ones));
                isum_h[j] = _mm256_add_epi32(
                    isum_h[j],
                    _mm256_madd_epi16(
                        _mm256_maddubs_epi16(hi, bcast4(xb + 4 * nt * (s + 4) + 4 * j)), ones));
            }
        }
        __m256 dv = load_f16x8_u8(sb + 16 * h);
        __m256 slo = _mm256_mul_ps(dv, u8x8_to_f32(blk + 8 * h, true));
        __m256 shi = _mm256_mul_ps(dv, u8x8_to_f32(blk + P16_ROWS + 8 * h, true));
#pragma GCC unroll 4
        for (int j = 0; j < NJ; j++) {
            __m256 v = _mm256_mul_ps(_mm256_cvtepi32_ps(isum[j]), slo);
            v = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum_h[j]), shi, v);
            acc[j] = _mm256_fmadd_ps(v, _mm256_set1_ps(xd[xi + j]), acc[j]);
        }
    }
}

/*
 * Rows [8h0, 8h0 + 8 NH) (NH = 1 or 2 halves) of a group times tokens
 * j0..j0+NJ-1 of the X8 tile at token t; y[(t + j) * ldy + r] for the first
 * nr rows of the group. Both halves in one pass read each 64-byte step once
 * (decode); with 4 tokens one half at a time keeps the accumulators in
 * registers.
 */
AVX2_INLINE void p8_pass(const uint8_t *grp, const enum p8_kind kind, const struct mm_args *a,
                         int h0, const int NH, int t, int nt, int j0, const int NJ, float *y,
                         int nr)
{
    const int nb = a->cols / QK;
    __m256 acc[2][4];
#pragma GCC unroll 2
    for (int hh = 0; hh < NH; hh++)
#pragma GCC unroll 4
        for (int j = 0; j < NJ; j++)
            acc[hh][j] = _mm256_setzero_ps();
    for (int b = 0; b < nb; b++)
#pragma GCC unroll 2
        for (int hh = 0; hh < NH; hh++)
            p8_block(grp, kind, a, h0 + hh, t, nt, j0, NJ, b, acc[hh]);
#pragma GCC unroll 2
    for (int hh = 0; hh < NH; hh++) {
        int h = h0 + hh, n = nr - 8 * h;
        if (n <= 0) break;
#pragma GCC unroll 4
        for (int j = 0; j < NJ; j++) {
            float *out = y + (size_t)(t + j0 + j) * a->ldy + 8 * h;
            if (n >= 8) {
                _mm256_storeu_ps(out, acc[hh][j]);
            } else {
                float tmp[8];
                _mm256_storeu_ps(tmp, acc[hh][j]);
                memcpy(out, tmp, (size_t)n * sizeof(float));
            }
        }
    }
}

AVX2_INLINE void p8_rows(const struct mm_args *a, const enum p8_kind kind, int r0, int r1, int t0,
                         int t1)
{
    size_t gbytes = kern_p16_group_bytes(a->type, a->cols);
    for (int g0 = r0; g0 < r1; g0 += P16_ROWS) {
        const uint8_t *grp = a->packed + (size_t)(g0 / P16_ROWS) * gbytes;
        float *y = a->y + g0;
        int nr = r1 - g0 < P16_ROWS ? r1 - g0 : P16_ROWS;
        /* X8 tiles start at multiples of P16_NT; t0 is one (kern_matmul's tiles) */
        for (int t = t0; t < t1; t += P16_NT) {
            int nt = t1 - t < P16_NT ? t1 - t : P16_NT;
            int j = 0;
            for (int h = 0; h < 2 && 8 * h < nr; h++)
                for (j = 0; j + 4 <= nt; j += 4)
                    p8_pass(grp, kind, a, h, 1, t, nt, j, 4, y, nr);
            switch (nt - j) {
            case 3:
                p8_pass(grp, kind, a, 0, 1, t, nt, j, 3, y, nr);
                if (nr > 8) p8_pass(grp, kind, a, 1, 1, t, nt, j, 3, y, nr);
                break;
            case 2:
                p8_pass(grp, kind, a, 0, 2, t, nt, j, 2, y, nr);
                break;
            case 1:
                p8_pass(grp, kind, a, 0, 2, t, nt, j, 1, y, nr);
                break;
            default:
                break;
            }
        }
    }
}

AVX2 static void p8_rows_q8_0(const struct mm_args *a, int r0, int r1, int t0, int t1)
{
    p8_rows(a, P8_Q8_0, r0, r1, t0, t1);
}

AVX2 static void p8_rows_q4_0(const struct mm_args *a, int r0, int r1, int t0, int t1)
{
    p8_rows(a, P8_Q4_0, r0, r1, t0, t1);
}

AVX2 static void p8_rows_q4_K(const struct mm_args *a, int r0, int r1, int t0, int t1)
{
    p8_rows(a, P8_Q4_K, r0, r1, t0, t1);
}

AVX2 static void p8_rows_q6_K(const struct mm_args *a, int r0, int r1, int t0, int t1)
{
    p8_rows(a, P8_Q6_K, r0, r1, t0, t1);
}

/* The AVX2 path's matmul: packed quantized matrices through the blocked
 * kernels above, everything else on the file layout. */
AVX2 static void matmul(const struct mm_args *a, int r0, int r1, int t0, int t1)
{
    if (a->packed) {
        switch (a->type) {
        case GGUF_TENSOR_Q8_0:
            p8_rows_q8_0(a, r0, r1, t0, t1);
            return;
        case GGUF_TENSOR_Q4_0:
            p8_rows_q4_0(a, r0, r1, t0, t1);
            return;
        case GGUF_TENSOR_Q4_K:
            p8_rows_q4_K(a, r0, r1, t0, t1);
            return;
        case GGUF_TENSOR_Q6_K:
            p8_rows_q6_K(a, r0, r1, t0, t1);
            return;
        default:
            break;
        }
    }
    kern_avx2_matmul(a, r0, r1, t0, t1);
}

AVX2 void kern_avx2_matmul(const struct mm_args *a, int r0, int r1, int t0, int t1)
{
    int nb = a->cols / QK;
    switch (a->type) {
    case GGUF_TENSOR_F32:
    case GGUF_TENSOR_F16:
    case GGUF_TENSOR_BF16:
        float_rows(a, r0, r1, t0, t1);
        break;
    case GGUF_TENSOR_Q8_0:
        for (int r = r0; r < r1; r++) {
            const uint8_t *row = a->w + (size_t)r * a->row_bytes;
            for (int t = t0; t < t1; t++)
                a->y[(size_t)t * a->ldy + r] =
                    dot_q8_0(row, a->qx->q + (size_t)t * a->cols, a->qx->d + (size_t)t * nb, nb);
        }
        break;
    case GGUF_TENSOR_Q4_0:
        for (int r = r0; r < r1; r++) {
            const uint8_t *row = a->w + (size_t)r * a->row_bytes;
            for (int t = t0; t < t1; t++)
                a->y[(size_t)t * a->ldy + r] =
                    dot_q4_0(row, a->qx->q + (size_t)t * a->cols, a->qx->d + (size_t)t * nb,
                             a->qx->sum + (size_t)t * nb, nb);
        }
        break;
    case GGUF_TENSOR_Q4_K:
        for (int r = r0; r < r1; r++) {
            const uint8_t *row = a->w + (size_t)r * a->row_bytes;
            for (int t = t0; t < t1; t++)
                a->y[(size_t)t * a->ldy + r] =
                    dot_q4_K(row, a->qx->q + (size_t)t * a->cols, a->qx->d + (size_t)t * nb,
                             a->qx->sum + (size_t)t * nb, a->cols / QK_K);
        }
        break;
    case GGUF_TENSOR_Q6_K:
        for (int r = r0; r < r1; r++) {
            const uint8_t *row = a->w + (size_t)r * a->row_bytes;
            for (int t = t0; t < t1; t++)
                a->y[(size_t)t * a->ldy + r] = dot_q6_K(row, a->qx->q + (size_t)t * a->cols,
                                                        a->qx->d + (size_t)t * nb, a->cols / QK_K);
        }
        break;
    default:
        kern_scalar_matmul(a, r0, r1, t0, t1);
        break;
    }
}

AVX2 static uint64_t read_stream(const void *p, size_t n)
{
    const uint8_t *b = p;
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0; i < n; i += 128) {
        a0 = _mm256_xor_si256(a0, _mm256_load_si256((const __m256i *)(b + i)));
        a1 = _mm256_xor_si256(a1, _mm256_load_si256((const __m256i *)(b + i + 32)));
        a2 = _mm256_xor_si256(a2, _mm256_load_si256((const __m256i *)(b + i + 64)));
        a3 = _mm256_xor_si256(a3, _mm256_load_si256((const __m256i *)(b + i + 96)));
    }
    __m256i x = _mm256_xor_si256(_mm256_xor_si256(a0, a1), _mm256_xor_si256(a2, a3));
    __m128i y = _mm_xor_si128(_mm256_castsi256_si128(x), _mm256_extracti128_si256(x, 1));
    return (uint64_t)_mm_cvtsi128_si64(y) ^ (uint64_t)_mm_extract_epi64(y, 1);
}

const struct kern_ops kern_ops_avx2 = {
    .quantize_act = quantize_act,
    .matmul = matmul,
    .has_packed = true,
    .dot_f32 = dot_f32,
    .dot_f16 = dot_f16,
    .axpy_f32 = axpy_f32,
    .axpy_f16 = axpy_f16,
    .add = add,
    .rmsnorm = rmsnorm,
    .softmax = softmax,
    .swiglu = swiglu,
    .f32_to_fp16_row = f32_to_fp16_row,
    .read_stream = read_stream,
};

#endif /* __x86_64__ */
