/*
 * attention.c - tiled causal attention with an online softmax over F16 or
 * F32 KV caches, for all sequences of a batched forward pass (attention.h).
 *
 * For one work item (a sequence, a KV head g, query tokens t0..t1 and keys
 * k0..k1) every query row r (a token and one of the group's query heads)
 * keeps a running maximum m_r, a running sum l_r and an unnormalized output
 * O_r. Keys are taken a tile of ATT_KT at a time (converted once to f32 for
 * all rows of the item):
 *
 *     s_j   = scale * q_r . K_j          for the keys the row may see (causal)
 *     m'    = max(m_r, max_j s_j)
 *     c     = exp(m_r - m')
 *     l_r   = c l_r + sum_j exp(s_j - m')
 *     O_r   = c O_r + sum_j exp(s_j - m') V_j
 *
 * and at the end out_r = O_r / l_r (Milakov & Gimelshein 2018; Dao et al.,
 * FlashAttention, 2022). Memory is O(tile), not O(context), and each key and
 * value row is read from memory once per item instead of once per query head.
 *
 * When a sequence has few query tokens (decoding: one), the keys of its
 * items are split into spans that run in parallel (two per thread); each
 * span leaves its (O, m, l) and a second pass merges them: M = max_c m_c,
 * l = sum_c l_c e^(m_c - M), out = sum_c O_c e^(m_c - M) / l.
 *
 * Items of a prompt chunk have many rows (16 tokens x the group's heads):
 * their scores come from a transposed key tile, two rows at a time, so the
 * vector lanes run over keys (plain multiply-adds, no horizontal sums), and
 * the weighted sums take two rows per value load. Decoding items (a few rows)
 * take the rows as they are.
 *
 * Two implementations of the tile operations (scores, exponentials,
 * weighted sums, F16 conversion): plain C, read like the formulas above, and
 * AVX-512 (masked tails, so any head_dim works) used when the kernels' path
 * is avx512. test_attention.c compares both with att_reference.
 */
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "llm/attention.h"
#include "llm/kernels.h"

#define ATT_QBLOCK 16    /* query tokens per item */
#define ATT_KT 64        /* keys per tile */
#define ATT_MIN_SPAN 256 /* fewest keys a split span has */

struct att_item {
    int seq, g, t0, t1, k0, k1;
    int slot; /* first partial slot of a split item's spans, -1: not split */
    int n_split;
};

struct att_ops {
    /* s[j] = scale * q . K_j for j < nk, K_j at K + j * stride */
    void (*scores)(const float *q, const float *K, size_t stride, int nk, int hd, float scale,
                   float *s);
    /* s[j] = exp(s[j] - m); returns the sum */
    float (*exp_sub)(float *s, int nk, float m);
    /* O += sum_j p[j] * V_j */
    void (*accum)(float *O, const float *p, const float *V, size_t stride, int nk, int hd);
    /* nk rows of hd halves (row j at src + j * stride) to contiguous floats */
    void (*cvt)(const uint16_t *src, size_t stride, int nk, int hd, float *dst);
    /* Two rows against a transposed tile Kt[d][j] (ATT_KT keys, zero past
     * the tile's end): s1[j] = scale * q1 . K_j, s2 likewise, all ATT_KT j.
     * Vector lanes run over keys, so no horizontal sums (prompt chunks). */
    void (*scores_t2)(const float *q1, const float *q2, const float *Kt, int hd, float scale,
                      float *s1, float *s2);
    /* O1 += sum_j p1[j] V_j and O2 += sum_j p2[j] V_j, sharing each V_j load */
    void (*accum2)(float *O1, float *O2, const float *p1, const float *p2, const float *V,
                   size_t stride, int nk, int hd);
};

/* ---- plain C ---------------------------------------------------------------------- */

static void scores_c(const float *q, const float *K, size_t stride, int nk, int hd, float scale,
                     float *s)
{
    for (int j = 0; j < nk; j++) {
        const float *k = K + (size_t)j * stride;
        float acc = 0;
        for (int d = 0; d < hd; d++)
            acc += q[d] * k[d];
        s[j] = acc * scale;
    }
}

static float exp_sub_c(float *s, int nk, float m)
{
    float sum = 0;
    for (int j = 0; j < nk; j++) {
        s[j] = expf(s[j] - m);
        sum += s[j];
    }
    return sum;
}

static void accum_c(float *O, const float *p, const float *V, size_t stride, int nk, int hd)
{
    for (int j = 0; j < nk; j++) {
        const float *v = V + (size_t)j * stride;
        for (int d = 0; d < hd; d++)
            O[d] += p[j] * v[d];
    }
}

static void cvt_c(const uint16_t *src, size_t stride, int nk, int hd, float *dst)
{
    for (int j = 0; j < nk; j++)
        for (int d = 0; d < hd; d++)
            dst[(size_t)j * hd + d] = kern_fp16_to_f32(src[(size_t)j * stride + d]);
}

static void scores_t2_c(const float *q1, const float *q2, const float *Kt, int hd, float scale,
                        float *s1, float *s2)
{
    for (int j = 0; j < ATT_KT; j++) {
        float a1 = 0, a2 = 0;
        for (int d = 0; d < hd; d++) {
            a1 += q1[d] * Kt[(size_t)d * ATT_KT + j];
            a2 += q2[d] * Kt[(size_t)d * ATT_KT + j];
        }
        s1[j] = a1 * scale;
        s2[j] = a2 * scale;
    }
}

static void accum2_c(float *O1, float *O2, const float *p1, const float *p2, const float *V,
                     size_t stride, int nk, int hd)
{
    accum_c(O1, p1, V, stride, nk, hd);
    accum_c(O2, p2, V, stride, nk, hd);
}

static const struct att_ops ops_c = {scores_c, exp_sub_c, accum_c, cvt_c, scores_t2_c, accum2_c};

/* ---- AVX-512 ---------------------------------------------------------------------- */

#if defined(__x86_64__)
#include <immintrin.h>

#define ATT_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")))
#define ATT_AVX512_INLINE                                                                          \
    static inline __attribute__((always_inline, target("avx512f,avx512bw,avx512vl,avx2,fma,"       \
                                                       "f16c")))

ATT_AVX512_INLINE __mmask16 tail16(int n)
{
    return n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1);
}

/* exp(x) for 16 floats: x = n ln2 + r, Cephes' polynomial for e^r, VSCALEFPS
 * for 2^n (inputs here are <= 0; very negative ones give 0). */
ATT_AVX512_INLINE __m512 exp16(__m512 x)
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
    return _mm512_scalef_ps(p, n);
}

/* The four horizontal sums of a0..a3 at once (13 shuffles and adds instead
 * of four separate reductions): pairs interleaved within 128-bit lanes,
 * then the four 128-bit lanes added. */
ATT_AVX512_INLINE __m128 sum4(__m512 a0, __m512 a1, __m512 a2, __m512 a3)
{
    __m512 x01 = _mm512_add_ps(_mm512_unpacklo_ps(a0, a1), _mm512_unpackhi_ps(a0, a1));
    __m512 x23 = _mm512_add_ps(_mm512_unpacklo_ps(a2, a3), _mm512_unpackhi_ps(a2, a3));
    /* Per 128-bit lane: [a0, a1, a2, a3] partial sums. */
    __m512 y = _mm512_add_ps(_mm512_shuffle_ps(x01, x23, 0x44), _mm512_shuffle_ps(x01, x23, 0xEE));
    y = _mm512_add_ps(y, _mm512_shuffle_f32x4(y, y, 0x4E));
    y = _mm512_add_ps(y, _mm512_shuffle_f32x4(y, y, 0xB1));
    return _mm512_castps512_ps128(y);
}

ATT_AVX512 static void scores_avx512(const float *q, const float *K, size_t stride, int nk, int hd,
                                     float scale, float *s)
{
    int j = 0;
    /* Four keys at a time: four independent accumulators hide the FMA latency. */
    for (; j + 4 <= nk; j += 4) {
        const float *k0 = K + (size_t)j * stride;
        const float *k1 = k0 + stride, *k2 = k1 + stride, *k3 = k2 + stride;
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (int d = 0; d < hd; d += 16) {
            __mmask16 m = tail16(hd - d);
            __m512 qv = _mm512_maskz_loadu_ps(m, q + d);
            a0 = _mm512_fmadd_ps(qv, _mm512_maskz_loadu_ps(m, k0 + d), a0);
            a1 = _mm512_fmadd_ps(qv, _mm512_maskz_loadu_ps(m, k1 + d), a1);
            a2 = _mm512_fmadd_ps(qv, _mm512_maskz_loadu_ps(m, k2 + d), a2);
            a3 = _mm512_fmadd_ps(qv, _mm512_maskz_loadu_ps(m, k3 + d), a3);
        }
        _mm_storeu_ps(s + j, _mm_mul_ps(sum4(a0, a1, a2, a3), _mm_set1_ps(scale)));
    }
    for (; j < nk; j++) {
        const float *k = K + (size_t)j * stride;
        __m512 a = _mm512_setzero_ps();
        for (int d = 0; d < hd; d += 16) {
            __mmask16 m = tail16(hd - d);
            a = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, q + d), _mm512_maskz_loadu_ps(m, k + d),
                                a);
        }
        s[j] = _mm512_reduce_add_ps(a) * scale;
    }
}

ATT_AVX512 static float exp_sub_avx512(float *s, int nk, float m)
{
    __m512 vm = _mm512_set1_ps(m), sum = _mm512_setzero_ps();
    for (int j = 0; j < nk; j += 16) {
        __mmask16 k = tail16(nk - j);
        __m512 e = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, s + j), vm));
        _mm512_mask_storeu_ps(s + j, k, e);
        sum = _mm512_add_ps(sum, _mm512_maskz_mov_ps(k, e));
    }
    return _mm512_reduce_add_ps(sum);
}

ATT_AVX512 static void accum_avx512(float *O, const float *p, const float *V, size_t stride, int nk,
                                    int hd)
{
    int d = 0;
    /* 64 output values in registers while the tile's values stream by. */
    for (; d + 64 <= hd; d += 64) {
        __m512 o0 = _mm512_loadu_ps(O + d), o1 = _mm512_loadu_ps(O + d + 16);
        __m512 o2 = _mm512_loadu_ps(O + d + 32), o3 = _mm512_loadu_ps(O + d + 48);
        for (int j = 0; j < nk; j++) {
            const float *v = V + (size_t)j * stride + d;
            __m512 pj = _mm512_set1_ps(p[j]);
            o0 = _mm512_fmadd_ps(pj, _mm512_loadu_ps(v), o0);
            o1 = _mm512_fmadd_ps(pj, _mm512_loadu_ps(v + 16), o1);
            o2 = _mm512_fmadd_ps(pj, _mm512_loadu_ps(v + 32), o2);
            o3 = _mm512_fmadd_ps(pj, _mm512_loadu_ps(v + 48), o3);
        }
        _mm512_storeu_ps(O + d, o0);
        _mm512_storeu_ps(O + d + 16, o1);
        _mm512_storeu_ps(O + d + 32, o2);
        _mm512_storeu_ps(O + d + 48, o3);
    }
    for (; d < hd; d += 16) {
        __mmask16 m = tail16(hd - d);
        __m512 o = _mm512_maskz_loadu_ps(m, O + d);
        for (int j = 0; j < nk; j++)
            o = _mm512_fmadd_ps(_mm512_set1_ps(p[j]),
                                _mm512_maskz_loadu_ps(m, V + (size_t)j * stride + d), o);
        _mm512_mask_storeu_ps(O + d, m, o);
    }
}

ATT_AVX512 static void cvt_avx512(const uint16_t *src, size_t stride, int nk, int hd, float *dst)
{
    for (int j = 0; j < nk; j++) {
        const uint16_t *r = src + (size_t)j * stride;
        float *o = dst + (size_t)j * hd;
        for (int d = 0; d < hd; d += 16) {
            __mmask16 m = tail16(hd - d);
            _mm512_mask_storeu_ps(o + d, m, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, r + d)));
        }
    }
}

/* ATT_KT = 64 keys = 4 vectors per row, 8 independent accumulators for the pair. */
ATT_AVX512 static void scores_t2_avx512(const float *q1, const float *q2, const float *Kt, int hd,
                                        float scale, float *s1, float *s2)
{
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    __m512 b0 = a0, b1 = a0, b2 = a0, b3 = a0;
    for (int d = 0; d < hd; d++) {
        const float *k = Kt + (size_t)d * ATT_KT;
        __m512 k0 = _mm512_loadu_ps(k), k1 = _mm512_loadu_ps(k + 16);
        __m512 k2 = _mm512_loadu_ps(k + 32), k3 = _mm512_loadu_ps(k + 48);
        __m512 x = _mm512_set1_ps(q1[d]), y = _mm512_set1_ps(q2[d]);
        a0 = _mm512_fmadd_ps(x, k0, a0);
        a1 = _mm512_fmadd_ps(x, k1, a1);
        a2 = _mm512_fmadd_ps(x, k2, a2);
        a3 = _mm512_fmadd_ps(x, k3, a3);
        b0 = _mm512_fmadd_ps(y, k0, b0);
        b1 = _mm512_fmadd_ps(y, k1, b1);
        b2 = _mm512_fmadd_ps(y, k2, b2);
        b3 = _mm512_fmadd_ps(y, k3, b3);
    }
    __m512 sc = _mm512_set1_ps(scale);
    _mm512_storeu_ps(s1, _mm512_mul_ps(a0, sc));
    _mm512_storeu_ps(s1 + 16, _mm512_mul_ps(a1, sc));
    _mm512_storeu_ps(s1 + 32, _mm512_mul_ps(a2, sc));
    _mm512_storeu_ps(s1 + 48, _mm512_mul_ps(a3, sc));
    /* s2 may be s1 (a single row): written last with the same values. */
    _mm512_storeu_ps(s2, _mm512_mul_ps(b0, sc));
    _mm512_storeu_ps(s2 + 16, _mm512_mul_ps(b1, sc));
    _mm512_storeu_ps(s2 + 32, _mm512_mul_ps(b2, sc));
    _mm512_storeu_ps(s2 + 48, _mm512_mul_ps(b3, sc));
}

ATT_AVX512 static void accum2_avx512(float *O1, float *O2, const float *p1, const float *p2,
                                     const float *V, size_t stride, int nk, int hd)
{
    int d = 0;
    for (; d + 32 <= hd; d += 32) {
        __m512 a0 = _mm512_loadu_ps(O1 + d), a1 = _mm512_loadu_ps(O1 + d + 16);
        __m512 b0 = _mm512_loadu_ps(O2 + d), b1 = _mm512_loadu_ps(O2 + d + 16);
        for (int j = 0; j < nk; j++) {
            const float *v = V + (size_t)j * stride + d;
            __m512 v0 = _mm512_loadu_ps(v), v1 = _mm512_loadu_ps(v + 16);
            __m512 x = _mm512_set1_ps(p1[j]), y = _mm512_set1_ps(p2[j]);
            a0 = _mm512_fmadd_ps(x, v0, a0);
            a1 = _mm512_fmadd_ps(x, v1, a1);
            b0 = _mm512_fmadd_ps(y, v0, b0);
            b1 = _mm512_fmadd_ps(y, v1, b1);
        }
        _mm512_storeu_ps(O1 + d, a0);
        _mm512_storeu_ps(O1 + d + 16, a1);
        _mm512_storeu_ps(O2 + d, b0);
        _mm512_storeu_ps(O2 + d + 16, b1);
    }
    for (; d < hd; d += 16) {
        __mmask16 m = tail16(hd - d);
        __m512 a = _mm512_maskz_loadu_ps(m, O1 + d), b = _mm512_maskz_loadu_ps(m, O2 + d);
        for (int j = 0; j < nk; j++) {
            __m512 v = _mm512_maskz_loadu_ps(m, V + (size_t)j * stride + d);
            a = _mm512_fmadd_ps(_mm512_set1_ps(p1[j]), v, a);
            b = _mm512_fmadd_ps(_mm512_set1_ps(p2[j]), v, b);
        }
        _mm512_mask_storeu_ps(O1 + d, m, a);
        _mm512_mask_storeu_ps(O2 + d, m, b);
    }
}

static const struct att_ops ops_avx512 = {scores_avx512, exp_sub_avx512,   accum_avx512,
                                          cvt_avx512,    scores_t2_avx512, accum2_avx512};
#endif

static const struct att_ops *ops_active(void)
{
#if defined(__x86_64__)
    if (kern_get_path() == KERN_PATH_AVX512) return &ops_avx512;
#endif
    return &ops_c;
}

/* ---- work items ------------------------------------------------------------------- */

struct att_job {
    const struct att_shape *sh;
    const struct att_seq *seqs;
    const struct att_ops *ops;
    struct att_item *items;
    int n_items;
    atomic_int next;
    float *partial;
    float *thread_buf;
    size_t thread_floats;
    int rows_max;
    float scale;
};

/* Floats of one partial slot: rows_max rows of O, then m and l per row. */
static size_t slot_floats(int rows_max, int hd)
{
    return (size_t)rows_max * ((size_t)hd + 2);
}

/* Floats of one share's buffer: K, V and transposed K tiles, scores, m, l,
 * O and each row's visible keys (rounded up so that every share's buffer
 * stays 64-byte aligned). */
static size_t thread_floats(int rows_max, int hd)
{
    size_t n = 3 * (size_t)ATT_KT * hd + (size_t)rows_max * ATT_KT + 3 * (size_t)rows_max +
               (size_t)rows_max * hd;
    return (n + 15) & ~(size_t)15;
}

/* Query row r of an item: token t0 + r / group, head g * group + r % group. */
static const float *row_q(const struct att_seq *sq, const struct att_item *it, int r, int group,
                          int hd, size_t qs)
{
    int t = it->t0 + r / group, h = it->g * group + r % group;
    return sq->q + (size_t)t * qs + (size_t)h * hd;
}

/* Rows of an item from which the scores use the transposed tile (prompt
 * chunks); decoding (one token: a group of a few heads) reads rows as they are. */
#define ATT_T_MIN_ROWS 8

static void run_item(const struct att_job *j, const struct att_item *it, float *buf)
{
    const struct att_shape *sh = j->sh;
    const struct att_seq *sq = &j->seqs[it->seq];
    const struct att_ops *ops = j->ops;
    const int hd = sh->head_dim, group = sh->n_heads / sh->n_kv_heads;
    const size_t kv_dim = (size_t)hd * sh->n_kv_heads, qs = (size_t)hd * sh->n_heads;
    const int rows = (it->t1 - it->t0) * group, rmax = j->rows_max;
    const bool transposed = rows >= ATT_T_MIN_ROWS;
    float *kt = buf, *vt = kt + (size_t)ATT_KT * hd, *ktt = vt + (size_t)ATT_KT * hd;
    float *sc = ktt + (size_t)ATT_KT * hd;
    float *m = sc + (size_t)rmax * ATT_KT, *l = m + rmax, *O = l + rmax;
    int *vis = (int *)(O + (size_t)rmax * hd);

    for (int r = 0; r < rows; r++) {
        m[r] = -INFINITY;
        l[r] = 0;
    }
    memset(O, 0, (size_t)rows * hd * sizeof(float));

    for (int k = it->k0; k < it->k1; k += ATT_KT) {
        int nk = it->k1 - k < ATT_KT ? it->k1 - k : ATT_KT;
        const float *kp, *vp;
        size_t stride;
        size_t off = (size_t)k * kv_dim + (size_t)it->g * hd;
        if (sh->f16) {
            ops->cvt((const uint16_t *)sq->k + off, kv_dim, nk, hd, kt);
            ops->cvt((const uint16_t *)sq->v + off, kv_dim, nk, hd, vt);
            kp = kt;
            vp = vt;
            stride = (size_t)hd;
        } else {
            kp = (const float *)sq->k + off;
            vp = (const float *)sq->v + off;
            stride = kv_dim;
        }
        if (transposed) {
            /* Once per tile for all rows; keys past the tile's end are 0. */
            for (int d = 0; d < hd; d++) {
                float *dst = ktt + (size_t)d * ATT_KT;
                for (int i = 0; i < nk; i++)
                    dst[i] = kp[(size_t)i * stride + d];
                for (int i = nk; i < ATT_KT; i++)
                    dst[i] = 0;
            }
        }
        /* Token t sees keys up to pos + t. */
        for (int r = 0; r < rows; r++) {
            int v = sq->pos + it->t0 + r / group + 1 - k;
            vis[r] = v <= 0 ? 0 : v > nk ? nk : v;
        }
        /* Scores, then the online-softmax update of each row. */
        for (int r = 0; r < rows; r += transposed ? 2 : 1) {
            bool a = vis[r] > 0, b = transposed && r + 1 < rows && vis[r + 1] > 0;
            if (!a && !b) continue;
            const float *q = row_q(sq, it, r, group, hd, qs);
            float *s = sc + (size_t)r * ATT_KT;
            if (!transposed)
                ops->scores(q, kp, stride, vis[r], hd, j->scale, s);
            else if (a && b)
                ops->scores_t2(q, row_q(sq, it, r + 1, group, hd, qs), ktt, hd, j->scale, s,
                               s + ATT_KT);
            else if (a)
                ops->scores_t2(q, q, ktt, hd, j->scale, s, s);
            else
                ops->scores_t2(row_q(sq, it, r + 1, group, hd, qs),
                               row_q(sq, it, r + 1, group, hd, qs), ktt, hd, j->scale, s + ATT_KT,
                               s + ATT_KT);
        }
        for (int r = 0; r < rows; r++) {
            if (!vis[r]) continue;
            float *s = sc + (size_t)r * ATT_KT;
            float mx = s[0];
            for (int i = 1; i < vis[r]; i++)
                mx = s[i] > mx ? s[i] : mx;
            float mnew = mx > m[r] ? mx : m[r];
            float c = m[r] == -INFINITY ? 0.0f : expf(m[r] - mnew);
            float sum = ops->exp_sub(s, vis[r], mnew);
            float *o = O + (size_t)r * hd;
            if (c != 1.0f)
                for (int d = 0; d < hd; d++)
                    o[d] *= c;
            l[r] = l[r] * c + sum;
            m[r] = mnew;
        }
        /* Weighted values: two rows at a time when they see the same keys. */
        for (int r = 0; r < rows;) {
            float *o = O + (size_t)r * hd, *s = sc + (size_t)r * ATT_KT;
            if (r + 1 < rows && vis[r] && vis[r + 1] == vis[r]) {
                ops->accum2(o, o + hd, s, s + ATT_KT, vp, stride, vis[r], hd);
                r += 2;
            } else {
                if (vis[r]) ops->accum(o, s, vp, stride, vis[r], hd);
                r++;
            }
        }
    }

    if (it->slot < 0) {
        for (int r = 0; r < rows; r++) {
            int t = it->t0 + r / group, h = it->g * group + r % group;
            float *out = sq->out + (size_t)t * qs + (size_t)h * hd;
            /* l > 0: an unsplit item starts at key 0, which every token sees. */
            float inv = 1.0f / l[r];
            for (int d = 0; d < hd; d++)
                out[d] = O[(size_t)r * hd + d] * inv;
        }
    } else {
        float *p = j->partial + (size_t)it->slot * slot_floats(rmax, hd);
        memcpy(p, O, (size_t)rows * hd * sizeof(float));
        memcpy(p + (size_t)rmax * hd, m, (size_t)rows * sizeof(float));
        memcpy(p + (size_t)rmax * hd + rmax, l, (size_t)rows * sizeof(float));
    }
}

static void att_worker(void *arg, int ith, int nth)
{
    struct att_job *j = arg;
    (void)nth;
    float *buf = j->thread_buf + (size_t)ith * j->thread_floats;
    for (;;) {
        int i = atomic_fetch_add(&j->next, 1);
        if (i >= j->n_items) break;
        run_item(j, &j->items[i], buf);
    }
}

/* Merges the spans of split items; the first span of each (k0 == 0) stands
 * for the group, whose spans have the consecutive slots slot..slot+n_split-1. */
static void merge_worker(void *arg, int ith, int nth)
{
    struct att_job *j = arg;
    const struct att_shape *sh = j->sh;
    const int hd = sh->head_dim, group = sh->n_heads / sh->n_kv_heads, rmax = j->rows_max;
    const size_t qs = (size_t)hd * sh->n_heads, sf = slot_floats(rmax, hd);
    int seen = 0;
    for (int i = 0; i < j->n_items; i++) {
        const struct att_item *it = &j->items[i];
        if (it->slot < 0 || it->k0 != 0) continue;
        if (seen++ % nth != ith) continue;
        const struct att_seq *sq = &j->seqs[it->seq];
        int rows = (it->t1 - it->t0) * group;
        for (int r = 0; r < rows; r++) {
            int t = it->t0 + r / group, h = it->g * group + r % group;
            float *out = sq->out + (size_t)t * qs + (size_t)h * hd;
            float M = -INFINITY;
            for (int c = 0; c < it->n_split; c++) {
                const float *p = j->partial + (size_t)(it->slot + c) * sf;
                float mc = p[(size_t)rmax * hd + r];
                M = mc > M ? mc : M;
            }
            float L = 0;
            memset(out, 0, (size_t)hd * sizeof(float));
            for (int c = 0; c < it->n_split; c++) {
                const float *p = j->partial + (size_t)(it->slot + c) * sf;
                float mc = p[(size_t)rmax * hd + r], lc = p[(size_t)rmax * hd + rmax + r];
                if (mc == -INFINITY) continue;
                float w = expf(mc - M);
                L += lc * w;
                for (int d = 0; d < hd; d++)
                    out[d] += w * p[(size_t)r * hd + d];
            }
            float inv = 1.0f / L;
            for (int d = 0; d < hd; d++)
                out[d] *= inv;
        }
    }
}

void att_scratch_deinit(struct att_scratch *s)
{
    free(s->items);
    free(s->partial);
    free(s->thread_buf);
    memset(s, 0, sizeof(*s));
}

/* Grows *p to hold n bytes (contents not kept); -1 when memory runs out. */
static int grow(void **p, size_t *cap, size_t n)
{
    if (n <= *cap) return 0;
    free(*p);
    *p = aligned_alloc(64, (n + 63) & ~(size_t)63);
    *cap = *p ? n : 0;
    return *p ? 0 : -1;
}

/*
 * How many spans the keys of a query block are split into (*span keys each,
 * the last one shorter). Only a sequence of a single query block is split
 * (decoding, short chunks): prompt chunks have enough items without it. The
 * decision depends on the sequence and the thread count alone, never on the
 * rest of the batch, so a sequence's output does not depend on its batch.
 */
static int split_of(int keys, int n_blocks, int nth, int *span)
{
    *span = keys;
    if (n_blocks > 1 || nth < 2 || keys < 2 * ATT_MIN_SPAN) return 1;
    int s = (keys + 2 * nth - 1) / (2 * nth); /* two spans per thread */
    if (s < ATT_MIN_SPAN) s = ATT_MIN_SPAN;
    s = (s + ATT_KT - 1) / ATT_KT * ATT_KT;
    *span = s;
    return (keys + s - 1) / s;
}

int att_forward(const struct att_shape *sh, const struct att_seq *seqs, int n_seqs,
                struct att_scratch *s, struct kern_pool *pool)
{
    const int hd = sh->head_dim, group = sh->n_heads / sh->n_kv_heads;
    const int nth = kern_pool_size(pool);
    const int rows_max = ATT_QBLOCK * group;

    int any = 0;
    for (int i = 0; i < n_seqs; i++)
        any |= seqs[i].n > 0;
    if (!any) return 0;

    int n_items = 0, n_slots = 0;
    for (int pass = 0; pass < 2; pass++) {
        n_items = n_slots = 0;
        struct att_item *items = s->items;
        for (int i = 0; i < n_seqs; i++) {
            /* Latest (longest) query blocks first, so the dynamic claiming ends balanced. */
            int nb = (seqs[i].n + ATT_QBLOCK - 1) / ATT_QBLOCK;
            for (int b = nb - 1; b >= 0; b--) {
                int t0 = b * ATT_QBLOCK;
                int t1 = t0 + ATT_QBLOCK < seqs[i].n ? t0 + ATT_QBLOCK : seqs[i].n;
                int keys = seqs[i].pos + t1, span = keys;
                int n_split = split_of(keys, nb, nth, &span);
                for (int g = 0; g < sh->n_kv_heads; g++) {
                    for (int c = 0; c < n_split; c++) {
                        if (pass == 1) {
                            struct att_item *it = &items[n_items];
                            it->seq = i;
                            it->g = g;
                            it->t0 = t0;
                            it->t1 = t1;
                            it->k0 = c * span;
                            it->k1 = c + 1 == n_split ? keys : (c + 1) * span;
                            it->slot = n_split > 1 ? n_slots + c : -1;
                            it->n_split = n_split;
                        }
                        n_items++;
                    }
                    if (n_split > 1) n_slots += n_split;
                }
            }
        }
        if (pass == 0) {
            size_t tf = thread_floats(rows_max, hd);
            if (grow(&s->items, &s->cap_items, (size_t)n_items * sizeof(struct att_item)) < 0 ||
                grow((void **)&s->thread_buf, &s->cap_thread, (size_t)nth * tf * sizeof(float)) <
                    0 ||
                grow((void **)&s->partial, &s->cap_partial,
                     ((size_t)n_slots * slot_floats(rows_max, hd) + 1) * sizeof(float)) < 0)
                return -1;
        }
    }
    struct att_job job = {
        .sh = sh,
        .seqs = seqs,
        .ops = ops_active(),
        .items = s->items,
        .n_items = n_items,
        .partial = s->partial,
        .thread_buf = s->thread_buf,
        .thread_floats = thread_floats(rows_max, hd),
        .rows_max = rows_max,
        .scale = 1.0f / sqrtf((float)hd),
    };
    atomic_init(&job.next, 0);
    if (n_items == 1 || nth == 1)
        att_worker(&job, 0, 1);
    else
        kern_pool_run(pool, att_worker, &job);
    if (n_slots > 0) {
        if (nth == 1)
            merge_worker(&job, 0, 1);
        else
            kern_pool_run(pool, merge_worker, &job);
    }
    return 0;
}

/* ---- reference ------------------------------------------------------------------- */

static float kv_at(const struct att_shape *sh, const void *base, size_t idx)
{
    return sh->f16 ? kern_fp16_to_f32(((const uint16_t *)base)[idx]) : ((const float *)base)[idx];
}

void att_reference(const struct att_shape *sh, const struct att_seq *sq)
{
    const int hd = sh->head_dim, group = sh->n_heads / sh->n_kv_heads;
    const size_t kv_dim = (size_t)hd * sh->n_kv_heads, qs = (size_t)hd * sh->n_heads;
    int n_keys = sq->pos + sq->n;
    double *p = xmalloc((size_t)(n_keys > 0 ? n_keys : 1) * sizeof(double));
    double *acc = xmalloc((size_t)hd * sizeof(double));
    for (int t = 0; t < sq->n; t++) {
        for (int h = 0; h < sh->n_heads; h++) {
            const float *q = sq->q + (size_t)t * qs + (size_t)h * hd;
            size_t off = (size_t)(h / group) * hd;
            int nk = sq->pos + t + 1;
            double mx = -INFINITY, sum = 0;
            for (int j = 0; j < nk; j++) {
                double dot = 0;
                for (int d = 0; d < hd; d++)
                    dot += (double)q[d] * kv_at(sh, sq->k, (size_t)j * kv_dim + off + d);
                p[j] = dot / sqrt((double)hd);
                mx = p[j] > mx ? p[j] : mx;
            }
            for (int j = 0; j < nk; j++) {
                p[j] = exp(p[j] - mx);
                sum += p[j];
            }
            for (int d = 0; d < hd; d++)
                acc[d] = 0;
            for (int j = 0; j < nk; j++)
                for (int d = 0; d < hd; d++)
                    acc[d] += p[j] / sum * kv_at(sh, sq->v, (size_t)j * kv_dim + off + d);
            float *out = sq->out + (size_t)t * qs + (size_t)h * hd;
            for (int d = 0; d < hd; d++)
                out[d] = (float)acc[d];
        }
    }
    free(acc);
    free(p);
}
