/*
 * qwen2.c - the Qwen2 forward pass over a KV cache.
 *
 * For a batch of sequences, each with n tokens at positions pos..pos+n-1 of
 * its own KV cache (a prompt chunk, or n = 1 when decoding), the T = sum(n)
 * tokens as the rows of one matrix:
 *
 *   x = embedding rows of the ids
 *   per layer:  h = RMSNorm(x) * attn_norm
 *               q = Wq h + bq, k = Wk h + bk, v = Wv h + bv
 *               q, k rotated by RoPE (NEOX pairs i, i + d/2; theta from the file)
 *               k, v appended to the cache (F16 or F32)
 *               each query head j attends causally over the cached keys of
 *               KV head j / (n_heads / n_kv_heads)  (grouped-query attention),
 *               each token over its own sequence's cache only
 *               x += Wo attn
 *               h = RMSNorm(x) * ffn_norm ;  x += Wdown (silu(Wgate h) * (Wup h))
 *   logits = Wout RMSNorm(x) * out_norm      (Wout = the embedding when tied)
 *
 * Matrix products go through kern_matmul with all T tokens at once, on the
 * engine's pool: decoding several sequences together reads the weights once
 * for all of them (decode is bound by that read), and prompt chunks are
 * blocked matrix-matrix products. Per-token row work (bias, RoPE, cache
 * writes) is split over the same pool; attention is attention.c's tiled
 * kernel over each sequence's cache. No memory is allocated per token:
 * activations live in the engine's scratch, sized at creation (the
 * attention's tiles grow once). Only the logits asked for are computed:
 * usually each sequence's last position, all of them gathered into one
 * product with the output matrix.
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
    s->tok_pos = calloc(T, sizeof(*s->tok_pos));
    s->tok_kv = calloc(T, sizeof(*s->tok_kv));
    if (!s->x || !s->xb || !s->q || !s->k || !s->v || !s->att || !s->hb || !s->hb2 ||
        !s->tok_pos || !s->tok_kv) {
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
    free(s->tok_pos);
    free(s->tok_kv);
    free(s->out_rows);
    att_scratch_deinit(&s->attn);
    memset(s, 0, sizeof(*s));
}

/* ---- parallel steps ----------------------------------------------------------------- */

struct fwd {
    const llm_model *m;
    const struct llm_layer *L;
    struct llm_scratch *sc;
    int layer, n; /* n: rows of the batch */
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
        int p = f->sc->tok_pos[t];
        struct llm_kv *kv = f->sc->tok_kv[t];
        kern_rope_neox(q, in->n_heads, in->head_dim, p, in->rope_theta);
        kern_rope_neox(k, in->n_kv_heads, in->head_dim, p, in->rope_theta);
        size_t off = (size_t)p * kv_dim;
        if (kv->type == LLM_KV_F16) {
            kern_f32_to_fp16_row(k, (uint16_t *)kv->k[f->layer] + off, kv_dim);
            kern_f32_to_fp16_row(v, (uint16_t *)kv->v[f->layer] + off, kv_dim);
        } else {
            memcpy((float *)kv->k[f->layer] + off, k, (size_t)kv_dim * sizeof(float));
            memcpy((float *)kv->v[f->layer] + off, v, (size_t)kv_dim * sizeof(float));
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

int qwen2_forward_batch(const llm_model *m, const struct llm_batch_seq *seqs, int n_seqs,
                        struct llm_scratch *sc, struct kern_pool *pool)
{
    const struct llm_model_info *in = &m->info;
    const int hidden = in->hidden;
    const size_t vocab = (size_t)in->n_vocab;
    struct llm_scratch *s = sc;
    if (n_seqs <= 0 || n_seqs > LLM_MAX_BATCH) return -1;

    /* The batch's rows: each sequence's tokens in turn. */
    int T = 0, n_out = 0, n_askers = 0;
    bool any_all = false;
    for (int i = 0; i < n_seqs; i++) {
        const struct llm_batch_seq *b = &seqs[i];
        if (b->n <= 0 || T + b->n > s->ubatch || b->pos < 0 || b->pos + b->n > b->kv->cap)
            return -1;
        for (int t = 0; t < b->n; t++) {
            kern_matrix_row(&m->embed, b->ids[t], s->x + (size_t)(T + t) * hidden);
            s->tok_pos[T + t] = b->pos + t;
            s->tok_kv[T + t] = b->kv;
        }
        T += b->n;
        if (b->logits) {
            n_out += b->all ? b->n : 1;
            any_all |= b->all;
            n_askers++;
        }
    }
    if (any_all && n_askers > 1) return -1;
    struct att_seq att[LLM_MAX_BATCH];
    struct att_shape ash = {in->n_heads, in->n_kv_heads, in->head_dim, false};

    for (int l = 0; l < in->n_layers; l++) {
        const struct llm_layer *L = &m->layers[l];
        struct fwd f = {m, L, s, l, T};

        run_norm(pool, s->x, s->xb, L->attn_norm, T, hidden, in->rms_eps);
        /* One quantization of the input and one pool run for Q, K and V. */
        const struct kern_matrix *wqkv[3] = {&L->wq, &L->wk, &L->wv};
        float *yqkv[3] = {s->q, s->k, s->v};
        kern_matmul_multi(wqkv, 3, s->xb, T, yqkv, pool);
        if (T == 1)
            qkv_rows(&f, 0, 1);
        else
            kern_pool_run(pool, qkv_rows, &f);
        int row = 0;
        for (int i = 0; i < n_seqs; i++) {
            const struct llm_batch_seq *b = &seqs[i];
            att[i] = (struct att_seq){
                .k = b->kv->k[l],
                .v = b->kv->v[l],
                .pos = b->pos,
                .n = b->n,
                .q = s->q + (size_t)row * hidden,
                .out = s->att + (size_t)row * hidden,
            };
            row += b->n;
        }
        /* One cache type per batch: sessions of one engine share the setting;
         * a mixed batch runs its attention in two calls. */
        bool mixed = false;
        for (int i = 1; i < n_seqs; i++)
            mixed |= seqs[i].kv->type != seqs[0].kv->type;
        if (!mixed) {
            ash.f16 = seqs[0].kv->type == LLM_KV_F16;
            if (att_forward(&ash, att, n_seqs, &s->attn, pool) < 0) return -1;
        } else {
            for (int i = 0; i < n_seqs; i++) {
                ash.f16 = seqs[i].kv->type == LLM_KV_F16;
                if (att_forward(&ash, &att[i], 1, &s->attn, pool) < 0) return -1;
            }
        }
        kern_matmul(&L->wo, s->att, T, s->xb, pool);
        run_ew(pool, s->x, s->xb, (size_t)T * hidden, 0);

        run_norm(pool, s->x, s->xb, L->ffn_norm, T, hidden, in->rms_eps);
        const struct kern_matrix *wgu[2] = {&L->gate, &L->up};
        float *ygu[2] = {s->hb, s->hb2};
        kern_matmul_multi(wgu, 2, s->xb, T, ygu, pool);
        run_ew(pool, s->hb, s->hb2, (size_t)T * in->ffn, 1);
        kern_matmul(&L->down, s->hb, T, s->xb, pool);
        run_ew(pool, s->x, s->xb, (size_t)T * hidden, 0);
    }

    if (n_out == 0) return 0;
    /* Gather the rows that need logits, normalized, into xb (in batch order). */
    int r = 0, row = 0;
    for (int i = 0; i < n_seqs; i++) {
        const struct llm_batch_seq *b = &seqs[i];
        if (b->logits) {
            int first = b->all ? 0 : b->n - 1;
            for (int t = first; t < b->n; t++, r++)
                kern_rmsnorm(s->xb + (size_t)r * hidden, s->x + (size_t)(row + t) * hidden,
                             m->out_norm, hidden, in->rms_eps);
        }
        row += b->n;
    }
    int owner = -1;
    for (int i = 0; i < n_seqs; i++)
        if (seqs[i].logits) owner = owner == -1 ? i : -2;
    if (owner >= 0) { /* one sequence asks: straight into its buffer */
        kern_matmul(m->output, s->xb, n_out, seqs[owner].logits, pool);
        return 0;
    }
    size_t need = (size_t)n_out * vocab * sizeof(float);
    if (need > s->cap_out_rows) {
        free(s->out_rows);
        s->out_rows = aligned_alloc(64, (need + 63) & ~(size_t)63);
        s->cap_out_rows = s->out_rows ? need : 0;
        if (!s->out_rows) return -1;
    }
    kern_matmul(m->output, s->xb, n_out, s->out_rows, pool);
    r = 0;
    for (int i = 0; i < n_seqs; i++)
        if (seqs[i].logits)
            memcpy(seqs[i].logits, s->out_rows + (size_t)r++ * vocab, vocab * sizeof(float));
    return 0;
}

int qwen2_forward(const llm_model *m, struct llm_kv *kv, struct llm_scratch *sc,
                  struct kern_pool *pool, const int32_t *ids, int n, int pos, float *logits,
                  bool all)
{
    struct llm_batch_seq b = {kv, ids, n, pos, logits, all};
    return qwen2_forward_batch(m, &b, 1, sc, pool);
}
