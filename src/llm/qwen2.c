/*
 * qwen2.c - the Qwen2 forward pass over a KV cache.
 *
 * For n tokens at positions pos..pos+n-1 (a prompt chunk, or n = 1 when
 * decoding):
 *
 *   x = embedding rows of the ids
 *   per layer:  h = RMSNorm(x) * attn_norm
 *               q = Wq h + bq, k = Wk h + bk, v = Wv h + bv
 *               q, k rotated by RoPE (NEOX pairs i, i + d/2; theta from the file)
 *               k, v appended to the cache (F16 or F32)
 *               each query head j attends causally over the cached keys of
 *               KV head j / (n_heads / n_kv_heads)  (grouped-query attention)
 *               x += Wo attn
 *               h = RMSNorm(x) * ffn_norm ;  x += Wdown (silu(Wgate h) * (Wup h))
 *   logits = Wout RMSNorm(x) * out_norm      (Wout = the embedding when tied)
 *
 * Matrix products go through kern_matmul with all n tokens at once (batched
 * prefill), on the engine's pool. Per-token row work (bias, RoPE, cache
 * writes) and attention (one work item per query head and token) are split
 * over the same pool. No memory is allocated per token: activations live in
 * the engine's scratch, sized at creation. During prefill only the last
 * position's logits are computed unless the caller asks for all.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "llm/model.h"

/* ---- KV cache -------------------------------------------------------------- */

static size_t kv_elem(enum llm_kv_type t)
{
    return t == LLM_KV_F32 ? sizeof(float) : sizeof(uint16_t);
}

int llm_kv_init(struct llm_kv *kv, const llm_model *m, int limit, enum llm_kv_type type)
{
    memset(kv, 0, sizeof(*kv));
    kv->type = type;
    kv->n_layers = m->info.n_layers;
    kv->kv_dim = m->info.head_dim * m->info.n_kv_heads;
    kv->limit = limit;
    kv->k = xcalloc((size_t)kv->n_layers, sizeof(*kv->k));
    kv->v = xcalloc((size_t)kv->n_layers, sizeof(*kv->v));
    return 0;
}

void llm_kv_deinit(struct llm_kv *kv)
{
    for (int l = 0; l < kv->n_layers && kv->k; l++) {
        free(kv->k[l]);
        free(kv->v[l]);
    }
    free(kv->k);
    free(kv->v);
    memset(kv, 0, sizeof(*kv));
}

int llm_kv_reserve(struct llm_kv *kv, int n)
{
    if (n > kv->limit) return -1;
    if (n <= kv->cap) return 0;
    /* Grow geometrically in steps of at least 256 positions, so a chat's
     * cache costs what it uses, and reallocation is rare. */
    int cap = kv->cap < 256 ? 256 : kv->cap;
    while (cap < n)
        cap = cap > kv->limit / 2 ? kv->limit : cap * 2;
    if (cap > kv->limit) cap = kv->limit;
    size_t row = (size_t)kv->kv_dim * kv_elem(kv->type);
    for (int l = 0; l < kv->n_layers; l++) {
        kv->k[l] = xrealloc(kv->k[l], row * (size_t)cap);
        kv->v[l] = xrealloc(kv->v[l], row * (size_t)cap);
    }
    kv->cap = cap;
    return 0;
}

size_t llm_kv_bytes(const struct llm_kv *kv)
{
    return 2 * (size_t)kv->n_layers * (size_t)kv->cap * (size_t)kv->kv_dim * kv_elem(kv->type);
}

/* ---- scratch ------------------------------------------------------------------ */

static float *alloc_f32(size_t n)
{
    void *p = aligned_alloc(64, (n * sizeof(float) + 63) & ~(size_t)63);
    if (!p) return NULL;
    memset(p, 0, n * sizeof(float));
    return p;
}

int llm_scratch_init(struct llm_scratch *s, const llm_model *m, int ubatch, int n_ctx,
                     int n_threads)
{
    const struct llm_model_info *in = &m->info;
    memset(s, 0, sizeof(*s));
    s->ubatch = ubatch;
    s->n_ctx = n_ctx;
    s->n_threads = n_threads;
    size_t T = (size_t)ubatch;
    size_t kv_dim = (size_t)in->head_dim * (size_t)in->n_kv_heads;
    s->x = alloc_f32(T * (size_t)in->hidden);
    s->xb = alloc_f32(T * (size_t)in->hidden);
    s->q = alloc_f32(T * (size_t)in->hidden);
    s->k = alloc_f32(T * kv_dim);
    s->v = alloc_f32(T * kv_dim);
    s->att = alloc_f32(T * (size_t)in->hidden);
    s->hb = alloc_f32(T * (size_t)in->ffn);
    s->hb2 = alloc_f32(T * (size_t)in->ffn);
    s->scores = alloc_f32((size_t)n_threads * ATT_BLOCK * (size_t)n_ctx);
    if (!s->x || !s->xb || !s->q || !s->k || !s->v || !s->att || !s->hb || !s->hb2 || !s->scores) {
        llm_scratch_deinit(s);
        return -1;
    }
    return 0;
}

void llm_scratch_deinit(struct llm_scratch *s)
{
    free(s->x);
    free(s->xb);
    free(s->q);
    free(s->k);
    free(s->v);
    free(s->att);
    free(s->hb);
    free(s->hb2);
    free(s->scores);
    memset(s, 0, sizeof(*s));
}

/* ---- parallel steps ----------------------------------------------------------------- */

struct fwd {
    const llm_model *m;
    const struct llm_layer *L;
    struct llm_kv *kv;
    struct llm_scratch *sc;
    int layer, n, pos;
};

/* Rows [r0, r1) of n split evenly over nth threads. */
static void split(int n, int ith, int nth, int *r0, int *r1)
{
    *r0 = (int)((int64_t)n * ith / nth);
    *r1 = (int)((int64_t)n * (ith + 1) / nth);
}

/* RMSNorm of each token's row of x into xb, with the given weight. */
struct norm_job {
    const float *x;
    float *out;
    const float *w;
    int n, dim;
    float eps;
};

static void norm_rows(void *arg, int ith, int nth)
{
    const struct norm_job *j = arg;
    int r0, r1;
    split(j->n, ith, nth, &r0, &r1);
    for (int t = r0; t < r1; t++)
        kern_rmsnorm(j->out + (size_t)t * j->dim, j->x + (size_t)t * j->dim, j->w, j->dim, j->eps);
}

/* Bias, RoPE and the cache write for each token's q, k, v. */
static void qkv_rows(void *arg, int ith, int nth)
{
    const struct fwd *f = arg;
    const struct llm_model_info *in = &f->m->info;
    int kv_dim = in->head_dim * in->n_kv_heads;
    int r0, r1;
    split(f->n, ith, nth, &r0, &r1);
    for (int t = r0; t < r1; t++) {
        float *q = f->sc->q + (size_t)t * in->hidden;
        float *k = f->sc->k + (size_t)t * kv_dim;
        float *v = f->sc->v + (size_t)t * kv_dim;
        kern_add(q, f->L->bq, in->hidden);
        kern_add(k, f->L->bk, kv_dim);
        kern_add(v, f->L->bv, kv_dim);
        int p = f->pos + t;
        kern_rope_neox(q, in->n_heads, in->head_dim, p, in->rope_theta);
        kern_rope_neox(k, in->n_kv_heads, in->head_dim, p, in->rope_theta);
        size_t off = (size_t)p * kv_dim;
        if (f->kv->type == LLM_KV_F16) {
            kern_f32_to_fp16_row(k, (uint16_t *)f->kv->k[f->layer] + off, kv_dim);
            kern_f32_to_fp16_row(v, (uint16_t *)f->kv->v[f->layer] + off, kv_dim);
        } else {
            memcpy((float *)f->kv->k[f->layer] + off, k, (size_t)kv_dim * sizeof(float));
            memcpy((float *)f->kv->v[f->layer] + off, v, (size_t)kv_dim * sizeof(float));
        }
    }
}

/*
 * Attention. A work item is one query head and a block of up to ATT_BLOCK
 * consecutive tokens: each key and value row is loaded once per block and
 * used by every token of it while it sits in L1 (the F16 conversion happens
 * inside kern_dot_f16 / kern_axpy_f16), which is what makes prompt
 * processing cheap; decoding has one token per block. Items are dealt
 * round-robin so that the long rows of the causal triangle (late tokens)
 * spread over all threads. Each thread has its own rows of scores.
 */
static void attention(void *arg, int ith, int nth)
{
    const struct fwd *f = arg;
    const struct llm_model_info *in = &f->m->info;
    const int hd = in->head_dim, kv_dim = hd * in->n_kv_heads;
    const int group = in->n_heads / in->n_kv_heads;
    const float scale = 1.0f / sqrtf((float)hd);
    const bool f16 = f->kv->type == LLM_KV_F16;
    const size_t n_ctx = (size_t)f->sc->n_ctx;
    float *scores = f->sc->scores + (size_t)ith * ATT_BLOCK * n_ctx;
    int blocks = (f->n + ATT_BLOCK - 1) / ATT_BLOCK;
    int items = blocks * in->n_heads;
    for (int i = ith; i < items; i += nth) {
        int h = i % in->n_heads, hk = h / group;
        int t0 = (i / in->n_heads) * ATT_BLOCK;
        int t1 = t0 + ATT_BLOCK < f->n ? t0 + ATT_BLOCK : f->n;
        int n_keys = f->pos + t1; /* keys the last token of the block sees */
        size_t off = (size_t)hk * hd;
        const float *q0 = f->sc->q + (size_t)h * hd;
        float *out0 = f->sc->att + (size_t)h * hd;

        for (int j = 0; j < n_keys; j++) {
            /* Token t sees keys 0 .. pos + t: key j from token j - pos on. */
            int first = j - f->pos > t0 ? j - f->pos : t0;
            float *sc = scores + (size_t)(first - t0) * n_ctx + j;
            const float *q = q0 + (size_t)first * in->hidden;
            if (f16) {
                const uint16_t *k = (const uint16_t *)f->kv->k[f->layer] + (size_t)j * kv_dim + off;
                for (int t = first; t < t1; t++, sc += n_ctx, q += in->hidden)
                    *sc = kern_dot_f16(k, q, hd) * scale;
            } else {
                const float *k = (const float *)f->kv->k[f->layer] + (size_t)j * kv_dim + off;
                for (int t = first; t < t1; t++, sc += n_ctx, q += in->hidden)
                    *sc = kern_dot_f32(k, q, hd) * scale;
            }
        }
        for (int t = t0; t < t1; t++) {
            kern_softmax(scores + (size_t)(t - t0) * n_ctx, f->pos + t + 1);
            memset(out0 + (size_t)t * in->hidden, 0, (size_t)hd * sizeof(float));
        }
        for (int j = 0; j < n_keys; j++) {
            int first = j - f->pos > t0 ? j - f->pos : t0;
            const float *sc = scores + (size_t)(first - t0) * n_ctx + j;
            float *out = out0 + (size_t)first * in->hidden;
            if (f16) {
                const uint16_t *v = (const uint16_t *)f->kv->v[f->layer] + (size_t)j * kv_dim + off;
                for (int t = first; t < t1; t++, sc += n_ctx, out += in->hidden)
                    kern_axpy_f16(out, *sc, v, hd);
            } else {
                const float *v = (const float *)f->kv->v[f->layer] + (size_t)j * kv_dim + off;
                for (int t = first; t < t1; t++, sc += n_ctx, out += in->hidden)
                    kern_axpy_f32(out, *sc, v, hd);
            }
        }
    }
}

/* Element-wise steps split over threads: the residual add and the SwiGLU gate. */
struct ew_job {
    float *a;
    const float *b;
    size_t n;
    int op; /* 0: a += b ; 1: a = silu(a) * b */
};

static void elementwise(void *arg, int ith, int nth)
{
    const struct ew_job *j = arg;
    size_t r0 = j->n * (size_t)ith / (size_t)nth, r1 = j->n * (size_t)(ith + 1) / (size_t)nth;
    if (r1 <= r0) return;
    if (j->op == 0)
        kern_add(j->a + r0, j->b + r0, (int)(r1 - r0));
    else
        kern_swiglu(j->a + r0, j->a + r0, j->b + r0, (int)(r1 - r0));
}

static void run_norm(struct kern_pool *pool, const float *x, float *out, const float *w, int n,
                     int dim, float eps)
{
    struct norm_job j = {x, out, w, n, dim, eps};
    if (n == 1)
        norm_rows(&j, 0, 1);
    else
        kern_pool_run(pool, norm_rows, &j);
}

static void run_ew(struct kern_pool *pool, float *a, const float *b, size_t n, int op)
{
    struct ew_job j = {a, b, n, op};
    /* Below a few thousand values a pool round trip costs more than the work. */
    if (n < 8192)
        elementwise(&j, 0, 1);
    else
        kern_pool_run(pool, elementwise, &j);
}

void qwen2_forward(const llm_model *m, struct llm_kv *kv, struct llm_scratch *sc,
                   struct kern_pool *pool, const int32_t *ids, int n, int pos, float *logits,
                   bool all)
{
    const struct llm_model_info *in = &m->info;
    const int hidden = in->hidden;
    struct llm_scratch *s = sc;

    for (int t = 0; t < n; t++)
        kern_matrix_row(&m->embed, ids[t], s->x + (size_t)t * hidden);

    for (int l = 0; l < in->n_layers; l++) {
        const struct llm_layer *L = &m->layers[l];
        struct fwd f = {m, L, kv, s, l, n, pos};

        run_norm(pool, s->x, s->xb, L->attn_norm, n, hidden, in->rms_eps);
        kern_matmul(&L->wq, s->xb, n, s->q, pool);
        kern_matmul(&L->wk, s->xb, n, s->k, pool);
        kern_matmul(&L->wv, s->xb, n, s->v, pool);
        if (n == 1)
            qkv_rows(&f, 0, 1);
        else
            kern_pool_run(pool, qkv_rows, &f);
        kern_pool_run(pool, attention, &f);
        kern_matmul(&L->wo, s->att, n, s->xb, pool);
        run_ew(pool, s->x, s->xb, (size_t)n * hidden, 0);

        run_norm(pool, s->x, s->xb, L->ffn_norm, n, hidden, in->rms_eps);
        kern_matmul(&L->gate, s->xb, n, s->hb, pool);
        kern_matmul(&L->up, s->xb, n, s->hb2, pool);
        run_ew(pool, s->hb, s->hb2, (size_t)n * in->ffn, 1);
        kern_matmul(&L->down, s->hb, n, s->xb, pool);
        run_ew(pool, s->x, s->xb, (size_t)n * hidden, 0);
    }

    if (!logits) return;
    if (all) {
        run_norm(pool, s->x, s->xb, m->out_norm, n, hidden, in->rms_eps);
        kern_matmul(m->output, s->xb, n, logits, pool);
    } else {
        const float *last = s->x + (size_t)(n - 1) * hidden;
        kern_rmsnorm(s->xb, last, m->out_norm, hidden, in->rms_eps);
        kern_matmul(m->output, s->xb, 1, logits, pool);
    }
}
