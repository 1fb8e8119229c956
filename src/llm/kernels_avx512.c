/*
 * kernels_avx512.c - the AVX-512 path (F, BW, VL, DQ, VNNI): 16-wide row
 * kernels with masked tails, float-type
 * matrix products, and the int8 VNNI kernels over the P16 packed layout of
 * Q8_0/Q4_0/Q4_K/Q6_K matrices (kernels_impl.h) that make decode run at
 * memory speed and prefill compute-efficient.
 *
 * The VNNI kernel, for one group of 16 rows and NT tokens:
 *
 *   y[r][t] = sum_b dw[r][b] * dx[t][b] * sum_{k<32} w[r][32b+k] * xq[t][32b+k]
 *
 * VPDPBUSD multiplies unsigned by signed bytes, 4 at a time, into 16 int32
 * lanes. The packed weights are unsigned (Q8_0: w + 128; Q4_0: the nibble,
 * which is w + 8), so a lane accumulates sum (w + off) * x = sum w x + off *
 * sum x; starting the accumulator at -off * sum x (kern_qx.bias8, made with
 * the quantized activations) leaves exactly sum w x. One 64-byte load holds 4
 * columns of all 16 rows; the 4 activation bytes of a token are broadcast.
 * Per block and token: 8 VPDPBUSD, one conversion, one multiply by dx, one
 * FMA with the 16 row scales. Each (row, token) output sees the same
 * operations whatever the tiling, so results do not depend on T's split.
 */
#include "llm/kernels_impl.h"

#if defined(__x86_64__)

#include <immintrin.h>
#include <math.h>

#define AVX512_TARGET "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c"
#define AVX512 __attribute__((target(AVX512_TARGET)))
#define AVX512_INLINE static inline __attribute__((always_inline, target(AVX512_TARGET)))

/* ---- helpers --------------------------------------------------------------- */

AVX512_INLINE __mmask16 tail_mask(int n)
{
    return (__mmask16)((1u << n) - 1);
}

AVX512_INLINE __m512 load_f16x16(const uint16_t *p)
{
    return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
}

AVX512_INLINE __m512 maskz_load_f16x16(__mmask16 m, const uint16_t *p)
{
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p));
}

AVX512_INLINE __m512 load_bf16x16(const uint16_t *p)
{
    __m512i v = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p));
    return _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
}

AVX512_INLINE __m512 maskz_load_bf16x16(__mmask16 m, const uint16_t *p)
{
    __m512i v = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p));
    return _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
}

/*
 * exp(x) for 16 floats: x = n ln2 + r, |r| <= ln2/2, Cephes' polynomial for
 * e^r (~1 ulp), and VSCALEFPS for the exact 2^n scaling with overflow to
 * inf and gradual underflow. x is clamped to [-104, 89] (beyond, the
 * result is 0 or inf either way); NaN stays NaN.
 */
AVX512_INLINE __m512 exp16(__m512 x)
{
    __m512 xc = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-104.0f)), _mm512_set1_ps(89.0f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(xc, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), xc);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    __m512 res = _mm512_scalef_ps(p, n);
    return _mm512_mask_mov_ps(res, _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), x);
}

/* ---- row kernels ------------------------------------------------------------ */

AVX512 static float dot_f32(const float *a, const float *b, int n)
{
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc0);
        acc1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), acc1);
    }
    for (; i + 16 <= n; i += 16)
        acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc0);
    if (i < n) {
        __mmask16 m = tail_mask(n - i);
        acc1 =
            _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), acc1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
}

AVX512 static float dot_f16(const uint16_t *a, const float *b, int n)
{
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        acc0 = _mm512_fmadd_ps(load_f16x16(a + i), _mm512_loadu_ps(b + i), acc0);
        acc1 = _mm512_fmadd_ps(load_f16x16(a + i + 16), _mm512_loadu_ps(b + i + 16), acc1);
    }
    for (; i + 16 <= n; i += 16)
        acc0 = _mm512_fmadd_ps(load_f16x16(a + i), _mm512_loadu_ps(b + i), acc0);
    if (i < n) {
        __mmask16 m = tail_mask(n - i);
        acc1 = _mm512_fmadd_ps(maskz_load_f16x16(m, a + i), _mm512_maskz_loadu_ps(m, b + i), acc1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
}

AVX512 static void axpy_f32(float *y, float a, const float *x, int n)
{
    __m512 va = _mm512_set1_ps(a);
    int i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(y + i,
                         _mm512_fmadd_ps(va, _mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i)));
    if (i < n) {
        __mmask16 m = tail_mask(n - i);
        _mm512_mask_storeu_ps(
            y + i, m,
            _mm512_fmadd_ps(va, _mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, y + i)));
    }
}

AVX512 static void axpy_f16(float *y, float a, const uint16_t *x, int n)
{
    __m512 va = _mm512_set1_ps(a);
    int i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(y + i, _mm512_fmadd_ps(va, load_f16x16(x + i), _mm512_loadu_ps(y + i)));
    if (i < n) {
        __mmask16 m = tail_mask(n - i);
        _mm512_mask_storeu_ps(
            y + i, m,
            _mm512_fmadd_ps(va, maskz_load_f16x16(m, x + i), _mm512_maskz_loadu_ps(m, y + i)));
    }
}

AVX512 static void add(float *y, const float *x, int n)
{
    int i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(y + i, _mm512_add_ps(_mm512_loadu_ps(y + i), _mm512_loadu_ps(x + i)));
    if (i < n) {
        __mmask16 m = tail_mask(n - i);
        _mm512_mask_storeu_ps(
            y + i, m,
            _mm512_add_ps(_mm512_maskz_loadu_ps(m, y + i), _mm512_maskz_loadu_ps(m, x + i)));
    }
}

AVX512 static void rmsnorm(float *out, const float *x, const float *weight, int n, float eps)
{
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512 a = _mm512_loadu_ps(x + i), b = _mm512_loadu_ps(x + i + 16);
        acc0 = _mm512_fmadd_ps(a, a, acc0);
        acc1 = _mm512_fmadd_ps(b, b, acc1);
    }
    for (; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : tail_mask(n - i);
        __m512 a = _mm512_maskz_loadu_ps(m, x + i);
        acc0 = _mm512_fmadd_ps(a, a, acc0);
    }
    float ss = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
    float scale = (float)(1.0 / sqrt((double)ss / n + eps));
    __m512 vs = _mm512_set1_ps(scale);
    for (i = 0; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : tail_mask(n - i);
        __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, weight + i),
                                 _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), vs));
        _mm512_mask_storeu_ps(out + i, m, v);
    }
}

AVX512 static void softmax(float *x, int n)
{
    if (n <= 0) return;
    __m512 vmax = _mm512_set1_ps(-INFINITY);
    for (int i = 0; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : tail_mask(n - i);
        vmax = _mm512_mask_max_ps(vmax, m, vmax, _mm512_maskz_loadu_ps(m, x + i));
    }
    float max = _mm512_reduce_max_ps(vmax);
    if (max == -INFINITY) {
        for (int i = 0; i < n; i++)
            x[i] = 1.0f / n;
        return;
    }
    __m512 vm = _mm512_set1_ps(max), vsum = _mm512_setzero_ps();
    for (int i = 0; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : tail_mask(n - i);
        __m512 e = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), vm));
        _mm512_mask_storeu_ps(x + i, m, e);
        vsum = _mm512_mask_add_ps(vsum, m, vsum, e);
    }
    __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(vsum));
    for (int i = 0; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : tail_mask(n - i);
        _mm512_mask_storeu_ps(x + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), inv));
    }
}

AVX512 static void swiglu(float *out, const float *gate, const float *up, int n)
{
    const __m512 one = _mm512_set1_ps(1.0f);
    for (int i = 0; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : tail_mask(n - i);
        __m512 g = _mm512_maskz_loadu_ps(m, gate + i);
        __m512 e = exp16(_mm512_sub_ps(_mm512_setzero_ps(), g));
        __m512 s = _mm512_div_ps(g, _mm512_add_ps(one, e));
        _mm512_mask_storeu_ps(out + i, m, _mm512_mul_ps(s, _mm512_maskz_loadu_ps(m, up + i)));
    }
}

AVX512 static void f32_to_fp16_row(const float *src, uint16_t *dst, int n)
{
    for (int i = 0; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : tail_mask(n - i);
        __m256i h = _mm512_cvtps_ph(_mm512_maskz_loadu_ps(m, src + i),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        _mm256_mask_storeu_epi16(dst + i, m, h);
    }
}

/* ---- activations --------------------------------------------------------------- */

AVX512_INLINE __m512i clamp_act(__m512i v)
{
    /* as the scalar round_act: VCVTPS2DQ's "indefinite" (NaN, huge) to 0, clamp to +-127 */
    __mmask16 bad = _mm512_cmpeq_epi32_mask(v, _mm512_set1_epi32(INT32_MIN));
    v = _mm512_mask_mov_epi32(v, bad, _mm512_setzero_si512());
    return _mm512_max_epi32(_mm512_min_epi32(v, _mm512_set1_epi32(127)), _mm512_set1_epi32(-127));
}

/* Bit-identical to kern_scalar_quantize_act (same float operations, RNE conversion). */
AVX512 static void quantize_act(const float *x, int n, int8_t *q, float *d, int32_t *sum)
{
    for (int b = 0; b < n / QK; b++) {
        __m512 v0 = _mm512_loadu_ps(x + b * QK), v1 = _mm512_loadu_ps(x + b * QK + 16);
        /* max(|v|, acc) keeps acc when |v| is NaN, as fmaxf does */
        __m512 amax = _mm512_max_ps(_mm512_abs_ps(v0), _mm512_setzero_ps());
        amax = _mm512_max_ps(_mm512_abs_ps(v1), amax);
        float am = _mm512_reduce_max_ps(amax);
        float db = am / 127.0f;
        float id = db != 0.0f ? 1.0f / db : 0.0f;
        __m512 vid = _mm512_set1_ps(id);
        __m512i i0 = clamp_act(_mm512_cvtps_epi32(_mm512_mul_ps(v0, vid)));
        __m512i i1 = clamp_act(_mm512_cvtps_epi32(_mm512_mul_ps(v1, vid)));
        _mm_storeu_si128((__m128i *)(q + b * QK), _mm512_cvtepi32_epi8(i0));
        _mm_storeu_si128((__m128i *)(q + b * QK + 16), _mm512_cvtepi32_epi8(i1));
        d[b] = db;
        sum[b] = _mm512_reduce_add_epi32(_mm512_add_epi32(i0, i1));
    }
}

/* ---- float-type matrix products ------------------------------------------------------ */

AVX512_INLINE __m512 load_w16(enum gguf_tensor_type type, const uint8_t *row, int c)
{
    switch (type) {
    case GGUF_TENSOR_F16:
        return load_f16x16((const uint16_t *)(row + 2 * (size_t)c));
    case GGUF_TENSOR_BF16:
        return load_bf16x16((const uint16_t *)(row + 2 * (size_t)c));
    default:
        return _mm512_loadu_ps((const float *)(const void *)(row + 4 * (size_t)c));
    }
}

AVX512_INLINE __m512 maskz_load_w16(enum gguf_tensor_type type, __mmask16 m, const uint8_t *row,
                                    int c)
{
    switch (type) {
    case GGUF_TENSOR_F16:
        return maskz_load_f16x16(m, (const uint16_t *)(row + 2 * (size_t)c));
    case GGUF_TENSOR_BF16:
        return maskz_load_bf16x16(m, (const uint16_t *)(row + 2 * (size_t)c));
    default:
        return _mm512_maskz_loadu_ps(m, (const float *)(const void *)(row + 4 * (size_t)c));
    }
}

/*
 * NR rows x NT tokens: one 16-lane accumulator per output over the full
 * vectors and a masked tail, then a horizontal sum (a fixed tree), so every
 * output sees the same operations whatever NR and NT are.
 */
AVX512_INLINE void float_tile(const struct mm_args *a, enum gguf_tensor_type type, int r, int t,
                              const int NR, const int NT)
{
    int n = a->cols, nv = n & ~15;
    const uint8_t *rows[4];
    const float *xs[4];
    __m512 acc[4][4];
#pragma GCC unroll 4
    for (int i = 0; i < NR; i++)
        rows[i] = a->w + (size_t)(r + i) * a->row_bytes;
#pragma GCC unroll 4
    for (int j = 0; j < NT; j++)
        xs[j] = a->x + (size_t)(t + j) * n;
#pragma GCC unroll 4
    for (int i = 0; i < NR; i++)
#pragma GCC unroll 4
        for (int j = 0; j < NT; j++)
            acc[i][j] = _mm512_setzero_ps();
    for (int c = 0; c < nv; c += 16) {
        __m512 w[4], x[4];
#pragma GCC unroll 4
        for (int i = 0; i < NR; i++)
            w[i] = load_w16(type, rows[i], c);
#pragma GCC unroll 4
        for (int j = 0; j < NT; j++)
            x[j] = _mm512_loadu_ps(xs[j] + c);
#pragma GCC unroll 4
        for (int i = 0; i < NR; i++)
#pragma GCC unroll 4
            for (int j = 0; j < NT; j++)
                acc[i][j] = _mm512_fmadd_ps(w[i], x[j], acc[i][j]);
    }
    if (nv < n) {
        __mmask16 m = tail_mask(n - nv);
        __m512 w[4], x[4];
#pragma GCC unroll 4
        for (int i = 0; i < NR; i++)
            w[i] = maskz_load_w16(type, m, rows[i], nv);
#pragma GCC unroll 4
        for (int j = 0; j < NT; j++)
            x[j] = _mm512_maskz_loadu_ps(m, xs[j] + nv);
#pragma GCC unroll 4
        for (int i = 0; i < NR; i++)
#pragma GCC unroll 4
            for (int j = 0; j < NT; j++)
                acc[i][j] = _mm512_fmadd_ps(w[i], x[j], acc[i][j]);
    }
#pragma GCC unroll 4
    for (int i = 0; i < NR; i++)
#pragma GCC unroll 4
        for (int j = 0; j < NT; j++)
            a->y[(size_t)(t + j) * a->ldy + r + i] = _mm512_reduce_add_ps(acc[i][j]);
}

/* One instance per weight type, so that the conversion is resolved at compile time. */
AVX512_INLINE void float_rows_t(const struct mm_args *a, enum gguf_tensor_type type, int r0, int r1,
                                int t0, int t1)
{
    int r = r0;
    for (; r + 4 <= r1; r += 4) {
        int t = t0;
        for (; t + 4 <= t1; t += 4)
            float_tile(a, type, r, t, 4, 4);
        switch (t1 - t) {
        case 3:
            float_tile(a, type, r, t, 4, 3);
            break;
        case 2:
            float_tile(a, type, r, t, 4, 2);
            break;
        case 1:
            float_tile(a, type, r, t, 4, 1);
            break;
        default:
            break;
        }
    }
    for (; r < r1; r++)
        for (int t = t0; t < t1; t++)
            float_tile(a, type, r, t, 1, 1);
}

AVX512 static void float_rows_f32(const struct mm_args *a, int r0, int r1, int t0, int t1)
{
    float_rows_t(a, GGUF_TENSOR_F32, r0, r1, t0, t1);
}

AVX512 static void float_rows_f16(const struct mm_args *a, int r0, int r1, int t0, int t1)
{
    float_rows_t(a, GGUF_TENSOR_F16, r0, r1, t0, t1);
}

AVX512 static void float_rows_bf16(const struct mm_args *a, int r0, int r1, int t0, int t1)
{
    float_rows_t(a, GGUF_TENSOR_BF16, r0, r1, t0, t1);
}

/* ---- VNNI kernels over the P16 layout ------------------------------------------------ */

AVX512_INLINE __m512i bcast4(const int8_t *p)
{
    int32_t v;
    memcpy(&v, p, sizeof(v));
    return _mm512_set1_epi32(v);
}

/*
 * One group of 16 rows (grp: its packed blocks) times the NT tokens of the
 * X8 tile starting at token t; results for the rows set in rmask go to
 * y[(t+j)*ldy + 0..15]. With few tokens the integer chain of a block is
 * split in two (exact: integer sums) so that VPDPBUSD's latency does not
 * bound a memory-bound decode.
 */
AVX512_INLINE void p16_tile(const uint8_t *grp, bool q4, const struct mm_args *a, int t,
                            const int NT, float *y, __mmask16 rmask)
{
    const int cols = a->cols, nb = cols / QK;
    const size_t bbytes = q4 ? P16_Q4_0_BLOCK_BYTES : P16_Q8_0_BLOCK_BYTES;
    const bool split = NT <= 2;
    const int8_t *xq = a->qx->q8 + (size_t)t * cols;
    const float *xd = a->qx->d8 + (size_t)t * nb;
    const int32_t *xbias = a->qx->bias8 + (size_t)t * nb;
    __m512 acc[P16_NT];
#pragma GCC unroll 8
    for (int j = 0; j < NT; j++)
        acc[j] = _mm512_setzero_ps();
    for (int b = 0; b < nb; b++, xq += QK * NT, xd += NT, xbias += NT) {
        const uint8_t *blk = grp + (size_t)b * bbytes;
        const uint8_t *qs = blk + 2 * P16_ROWS;
        __m512i ia[P16_NT], ib[P16_NT];
#pragma GCC unroll 8
        for (int j = 0; j < NT; j++) {
            ia[j] = _mm512_set1_epi32(xbias[j]);
            ib[j] = _mm512_setzero_si512();
        }
        if (!q4) {
#pragma GCC unroll 8
            for (int s = 0; s < 8; s++) {
                __m512i w = _mm512_loadu_si512(qs + 64 * s);
#pragma GCC unroll 8
                for (int j = 0; j < NT; j++) {
                    __m512i x = bcast4(xq + 4 * NT * s + 4 * j);
                    if (split && (s & 1))
                        ib[j] = _mm512_dpbusd_epi32(ib[j], w, x);
                    else
                        ia[j] = _mm512_dpbusd_epi32(ia[j], w, x);
                }
            }
        } else {
            const __m512i m4 = _mm512_set1_epi8(0x0f);
#pragma GCC unroll 4
            for (int s = 0; s < 4; s++) {
                __m512i raw = _mm512_loadu_si512(qs + 64 * s);
                __m512i lo = _mm512_and_si512(raw, m4);
                __m512i hi = _mm512_and_si512(_mm512_srli_epi16(raw, 4), m4);
#pragma GCC unroll 8
                for (int j = 0; j < NT; j++) {
                    /* low nibbles are elements 4s.., high nibbles 16+4s.. (step s+4) */
                    ia[j] = _mm512_dpbusd_epi32(ia[j], lo, bcast4(xq + 4 * NT * s + 4 * j));
                    __m512i xh = bcast4(xq + 4 * NT * (s + 4) + 4 * j);
                    if (split)
                        ib[j] = _mm512_dpbusd_epi32(ib[j], hi, xh);
                    else
                        ia[j] = _mm512_dpbusd_epi32(ia[j], hi, xh);
                }
            }
        }
        __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)blk));
#pragma GCC unroll 8
        for (int j = 0; j < NT; j++) {
            __m512i isum = split ? _mm512_add_epi32(ia[j], ib[j]) : ia[j];
            __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(isum), _mm512_set1_ps(xd[j]));
            acc[j] = _mm512_fmadd_ps(dw, v, acc[j]);
        }
    }
#pragma GCC unroll 8
    for (int j = 0; j < NT; j++)
        _mm512_mask_storeu_ps(y + (size_t)(t + j) * a->ldy, rmask, acc[j]);
}

/*
 * Q4_K over its packed layout: per block, the 16 rows' scales d * sc and
 * mins dmin * m are made from the 6-bit bytes once for all NT tokens; the
 * nibbles go through VPDPBUSD as Q4_0's do (no offset: the min carries it):
 *   y += dx * (d sc) * sum q xq - (dmin m) * (dx * sum xq)
 */
AVX512_INLINE void p16k4_tile(const uint8_t *grp, const struct mm_args *a, int t, const int NT,
                              float *y, __mmask16 rmask)
{
    const int cols = a->cols, nb = cols / QK;
    const bool split = NT <= 2;
    const int8_t *xq = a->qx->q8 + (size_t)t * cols;
    const float *xd = a->qx->d8 + (size_t)t * nb;
    const float *xds = a->qx->ds8 + (size_t)t * nb;
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    __m512 acc[P16_NT];
#pragma GCC unroll 8
    for (int j = 0; j < NT; j++)
        acc[j] = _mm512_setzero_ps();
    for (int i = 0; i < cols / QK_K; i++) {
        const uint8_t *sb = grp + (size_t)i * P16_Q4_K_SUPER_BYTES;
        __m512 dv = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)sb));
        __m512 dminv = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(sb + 2 * P16_ROWS)));
        for (int jb = 0; jb < 8; jb++, xq += QK * NT, xd += NT, xds += NT) {
            const uint8_t *blk = sb + 4 * P16_ROWS + (size_t)jb * P16_Q4_K_BLOCK_BYTES;
            const uint8_t *qs = blk + 2 * P16_ROWS;
            __m512 sc = _mm512_mul_ps(dv, _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(
                                              _mm_loadu_si128((const __m128i *)blk))));
            __m512 mn =
                _mm512_mul_ps(dminv, _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(
                                         _mm_loadu_si128((const __m128i *)(blk + P16_ROWS)))));
            __m512i ia[P16_NT], ib[P16_NT];
#pragma GCC unroll 8
            for (int j = 0; j < NT; j++)
                ia[j] = ib[j] = _mm512_setzero_si512();
#pragma GCC unroll 4
            for (int s = 0; s < 4; s++) {
                __m512i raw = _mm512_loadu_si512(qs + 64 * s);
                __m512i lo = _mm512_and_si512(raw, m4);
                __m512i hi = _mm512_and_si512(_mm512_srli_epi16(raw, 4), m4);
#pragma GCC unroll 8
                for (int j = 0; j < NT; j++) {
                    ia[j] = _mm512_dpbusd_epi32(ia[j], lo, bcast4(xq + 4 * NT * s + 4 * j));
                    __m512i xh = bcast4(xq + 4 * NT * (s + 4) + 4 * j);
                    if (split)
                        ib[j] = _mm512_dpbusd_epi32(ib[j], hi, xh);
                    else
                        ia[j] = _mm512_dpbusd_epi32(ia[j], hi, xh);
                }
            }
#pragma GCC unroll 8
            for (int j = 0; j < NT; j++) {
                __m512i isum = split ? _mm512_add_epi32(ia[j], ib[j]) : ia[j];
                __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(isum), _mm512_set1_ps(xd[j]));
                acc[j] = _mm512_fmadd_ps(sc, v, acc[j]);
                acc[j] = _mm512_fnmadd_ps(mn, _mm512_set1_ps(xds[j]), acc[j]);
            }
        }
    }
#pragma GCC unroll 8
    for (int j = 0; j < NT; j++)
        _mm512_mask_storeu_ps(y + (size_t)(t + j) * a->ldy, rmask, acc[j]);
}

/* The 2 high bits of q for nibble step s (< 4), moved to bits 4-5 of each byte. */
AVX512_INLINE __m512i q6_high(__m512i h, int s)
{
    const __m512i m = _mm512_set1_epi8(0x30);
    switch (s) {
    case 0:
        return _mm512_and_si512(_mm512_slli_epi16(h, 4), m);
    case 1:
        return _mm512_and_si512(_mm512_slli_epi16(h, 2), m);
    case 2:
        return _mm512_and_si512(h, m);
    default:
        return _mm512_and_si512(_mm512_srli_epi16(h, 2), m);
    }
}

/*
 * Q6_K over its packed layout: q (0..63) = low nibble | high bits << 4,
 * unsigned, so each half-block accumulator starts at -32 * sum xq of its 16
 * elements (bias8, bias8h); the two halves have their own scales:
 *   y += dx * (d sc_lo * sum_lo + d sc_hi * sum_hi)
 */
AVX512_INLINE void p16k6_tile(const uint8_t *grp, const struct mm_args *a, int t, const int NT,
                              float *y, __mmask16 rmask)
{
    const int cols = a->cols, nb = cols / QK;
    const int8_t *xq = a->qx->q8 + (size_t)t * cols;
    const float *xd = a->qx->d8 + (size_t)t * nb;
    const int32_t *xlo = a->qx->bias8 + (size_t)t * nb;
    const int32_t *xhi = a->qx->bias8h + (size_t)t * nb;
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    __m512 acc[P16_NT];
#pragma GCC unroll 8
    for (int j = 0; j < NT; j++)
        acc[j] = _mm512_setzero_ps();
    for (int i = 0; i < cols / QK_K; i++) {
        const uint8_t *sb = grp + (size_t)i * P16_Q6_K_SUPER_BYTES;
        __m512 dv = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)sb));
        for (int jb = 0; jb < 8; jb++, xq += QK * NT, xd += NT, xlo += NT, xhi += NT) {
            const uint8_t *blk = sb + 2 * P16_ROWS + (size_t)jb * P16_Q6_K_BLOCK_BYTES;
            const uint8_t *qs = blk + 2 * P16_ROWS;
            __m512 slo = _mm512_mul_ps(dv, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(
                                               _mm_loadu_si128((const __m128i *)blk))));
            __m512 shi = _mm512_mul_ps(dv, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(
                                               (const __m128i *)(blk + P16_ROWS)))));
            __m512i h0 = _mm512_loadu_si512(qs + 4 * 64), h1 = _mm512_loadu_si512(qs + 5 * 64);
            __m512i ia[P16_NT], ib[P16_NT];
#pragma GCC unroll 8
            for (int j = 0; j < NT; j++) {
                ia[j] = _mm512_set1_epi32(xlo[j]);
                ib[j] = _mm512_set1_epi32(xhi[j]);
            }
#pragma GCC unroll 4
            for (int s = 0; s < 4; s++) {
                __m512i raw = _mm512_loadu_si512(qs + 64 * s);
                __m512i lo = _mm512_or_si512(_mm512_and_si512(raw, m4), q6_high(h0, s));
                __m512i hi = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(raw, 4), m4),
                                             q6_high(h1, s));
#pragma GCC unroll 8
                for (int j = 0; j < NT; j++) {
                    ia[j] = _mm512_dpbusd_epi32(ia[j], lo, bcast4(xq + 4 * NT * s + 4 * j));
                    ib[j] = _mm512_dpbusd_epi32(ib[j], hi, bcast4(xq + 4 * NT * (s + 4) + 4 * j));
                }
            }
#pragma GCC unroll 8
            for (int j = 0; j < NT; j++) {
                __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(ia[j]), slo);
                v = _mm512_fmadd_ps(_mm512_cvtepi32_ps(ib[j]), shi, v);
                acc[j] = _mm512_fmadd_ps(v, _mm512_set1_ps(xd[j]), acc[j]);
            }
        }
    }
#pragma GCC unroll 8
    for (int j = 0; j < NT; j++)
        _mm512_mask_storeu_ps(y + (size_t)(t + j) * a->ldy, rmask, acc[j]);
}

enum p16_kind { P16_KIND_Q8_0, P16_KIND_Q4_0, P16_KIND_Q4_K, P16_KIND_Q6_K };

AVX512_INLINE void p16_tile_any(const uint8_t *grp, const enum p16_kind kind,
                                const struct mm_args *a, int t, const int NT, float *y,
                                __mmask16 rmask)
{
    switch (kind) {
    case P16_KIND_Q8_0:
        p16_tile(grp, false, a, t, NT, y, rmask);
        break;
    case P16_KIND_Q4_0:
        p16_tile(grp, true, a, t, NT, y, rmask);
        break;
    case P16_KIND_Q4_K:
        p16k4_tile(grp, a, t, NT, y, rmask);
        break;
    case P16_KIND_Q6_K:
        p16k6_tile(grp, a, t, NT, y, rmask);
        break;
    }
}

AVX512_INLINE void p16_rows(const struct mm_args *a, const enum p16_kind kind, int r0, int r1,
                            int t0, int t1)
{
    size_t gbytes = kern_p16_group_bytes(a->type, a->cols);
    for (int g0 = r0; g0 < r1; g0 += P16_ROWS) {
        const uint8_t *grp = a->packed + (size_t)(g0 / P16_ROWS) * gbytes;
        __mmask16 rmask = r1 - g0 >= P16_ROWS ? (__mmask16)0xffff : tail_mask(r1 - g0);
        float *y = a->y + g0;
        int t = t0;
        for (; t + P16_NT <= t1; t += P16_NT)
            p16_tile_any(grp, kind, a, t, P16_NT, y, rmask);
        switch (t1 - t) {
        case 7:
            p16_tile_any(grp, kind, a, t, 7, y, rmask);
            break;
        case 6:
            p16_tile_any(grp, kind, a, t, 6, y, rmask);
            break;
        case 5:
            p16_tile_any(grp, kind, a, t, 5, y, rmask);
            break;
        case 4:
            p16_tile_any(grp, kind, a, t, 4, y, rmask);
            break;
        case 3:
            p16_tile_any(grp, kind, a, t, 3, y, rmask);
            break;
        case 2:
            p16_tile_any(grp, kind, a, t, 2, y, rmask);
            break;
        case 1:
            p16_tile_any(grp, kind, a, t, 1, y, rmask);
            break;
        default:
            break;
        }
    }
}

AVX512 static void p16_rows_q8_0(const struct mm_args *a, int r0, int r1, int t0, int t1)
{
    p16_rows(a, P16_KIND_Q8_0, r0, r1, t0, t1);
}

AVX512 static void p16_rows_q4_0(const struct mm_args *a, int r0, int r1, int t0, int t1)
{
    p16_rows(a, P16_KIND_Q4_0, r0, r1, t0, t1);
}

AVX512 static void p16_rows_q4_K(const struct mm_args *a, int r0, int r1, int t0, int t1)
{
    p16_rows(a, P16_KIND_Q4_K, r0, r1, t0, t1);
}

AVX512 static void p16_rows_q6_K(const struct mm_args *a, int r0, int r1, int t0, int t1)
{
    p16_rows(a, P16_KIND_Q6_K, r0, r1, t0, t1);
}

AVX512 static void matmul(const struct mm_args *a, int r0, int r1, int t0, int t1)
{
    switch (a->type) {
    case GGUF_TENSOR_F32:
        float_rows_f32(a, r0, r1, t0, t1);
        break;
    case GGUF_TENSOR_F16:
        float_rows_f16(a, r0, r1, t0, t1);
        break;
    case GGUF_TENSOR_BF16:
        float_rows_bf16(a, r0, r1, t0, t1);
        break;
    case GGUF_TENSOR_Q8_0:
        if (a->packed)
            p16_rows_q8_0(a, r0, r1, t0, t1);
        else
            kern_avx2_matmul(a, r0, r1, t0, t1);
        break;
    case GGUF_TENSOR_Q4_0:
        if (a->packed)
            p16_rows_q4_0(a, r0, r1, t0, t1);
        else
            kern_avx2_matmul(a, r0, r1, t0, t1);
        break;
    case GGUF_TENSOR_Q4_K:
        if (a->packed)
            p16_rows_q4_K(a, r0, r1, t0, t1);
        else
            kern_avx2_matmul(a, r0, r1, t0, t1);
        break;
    case GGUF_TENSOR_Q6_K:
        if (a->packed)
            p16_rows_q6_K(a, r0, r1, t0, t1);
        else
            kern_avx2_matmul(a, r0, r1, t0, t1);
        break;
    default:
        kern_scalar_matmul(a, r0, r1, t0, t1);
        break;
    }
}

AVX512 static uint64_t read_stream(const void *p, size_t n)
{
    const uint8_t *b = p;
    __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0; i < n; i += 256) {
        a0 = _mm512_xor_si512(a0, _mm512_load_si512(b + i));
        a1 = _mm512_xor_si512(a1, _mm512_load_si512(b + i + 64));
        a2 = _mm512_xor_si512(a2, _mm512_load_si512(b + i + 128));
        a3 = _mm512_xor_si512(a3, _mm512_load_si512(b + i + 192));
    }
    __m512i x = _mm512_xor_si512(_mm512_xor_si512(a0, a1), _mm512_xor_si512(a2, a3));
    return (uint64_t)_mm512_reduce_or_epi64(x);
}

const struct kern_ops kern_ops_avx512 = {
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
