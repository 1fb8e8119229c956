/*
 * session.c - engines, sessions and generation.
 *
 * A session is one conversation's KV cache plus the ids it holds. Evaluating
 * a prompt first keeps the longest common prefix of the cached ids and the
 * prompt (so a chat's next turn, whose rendered prompt starts with the
 * previous one, only computes its new tokens), then runs the rest through
 * the model in chunks of the engine's ubatch, computing logits only at the
 * very end.
 *
 * Generation is a small state machine (struct llm_gen, model.h): prompt
 * chunks, then per token: sample, report the id and the text it completes
 * (whole UTF-8 characters only, through tok_stream), stop on a stop token,
 * the token limit or a full context, else run the token through the model.
 * A step is planned, run and committed separately, so that the scheduler can
 * run the steps of many generations in one batched forward pass.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm/model.h"

#define DEFAULT_UBATCH 512

/* ---- engines ------------------------------------------------------------------ */

llm_engine *llm_engine_new(const llm_model *m, int n_threads, int ubatch, struct echo_err *err)
{
    llm_engine *e = xcalloc(1, sizeof(*e));
    e->m = m;
    e->pool = kern_pool_new(n_threads > 0 ? n_threads : 0);
    if (ubatch <= 0) ubatch = DEFAULT_UBATCH;
    if (ubatch > m->info.n_ctx) ubatch = m->info.n_ctx;
    if (llm_scratch_init(&e->sc, m, ubatch, m->info.n_ctx, kern_pool_size(e->pool)) < 0) {
        echo_err_set(err, "out of memory for the engine's scratch (ubatch %d, context %d)", ubatch,
                     m->info.n_ctx);
        llm_engine_free(e);
        return NULL;
    }
    return e;
}

void llm_engine_free(llm_engine *e)
{
    if (!e) return;
    llm_scratch_deinit(&e->sc);
    kern_pool_free(e->pool);
    free(e);
}

int llm_engine_threads(const llm_engine *e)
{
    return kern_pool_size(e->pool);
}

double llm_engine_read_bandwidth(llm_engine *e, size_t bytes, int reps)
{
    return kern_read_bandwidth(e->pool, bytes, reps);
}

/* ---- sessions ------------------------------------------------------------------- */

llm_session *llm_session_new(const llm_model *m, const struct llm_session_opts *opts,
                             struct echo_err *err)
{
    struct llm_session_opts o = {0};
    if (opts) o = *opts;
    if (o.kv_type != LLM_KV_F16 && o.kv_type != LLM_KV_F32) {
        echo_err_set(err, "unknown KV cache type %d", (int)o.kv_type);
        return NULL;
    }
    if (o.n_ctx < 0) {
        echo_err_set(err, "negative context size %d", o.n_ctx);
        return NULL;
    }
    llm_session *s = xcalloc(1, sizeof(*s));
    s->m = m;
    s->n_ctx = o.n_ctx > 0 && o.n_ctx < m->info.n_ctx ? o.n_ctx : m->info.n_ctx;
    llm_kv_init(&s->kv, m, s->n_ctx, o.kv_type);
    s->logits = xmalloc((size_t)m->info.n_vocab * sizeof(float));
    return s;
}

void llm_session_free(llm_session *s)
{
    if (!s) return;
    llm_kv_deinit(&s->kv);
    free(s->tokens);
    free(s->logits);
    free(s);
}

void llm_session_reset(llm_session *s)
{
    s->n_tokens = 0;
    s->has_logits = false;
}

int llm_session_n_ctx(const llm_session *s)
{
    return s->n_ctx;
}

size_t llm_session_n_cached(const llm_session *s)
{
    return s->n_tokens;
}

const int32_t *llm_session_tokens(const llm_session *s)
{
    return s->tokens;
}

size_t llm_session_bytes(const llm_session *s)
{
    return llm_kv_bytes(&s->kv) + s->cap_tokens * sizeof(int32_t) +
           (size_t)s->m->info.n_vocab * sizeof(float) + sizeof(*s);
}

const float *llm_session_logits(const llm_session *s)
{
    return s->has_logits ? s->logits : NULL;
}

static void push_tokens(llm_session *s, const int32_t *ids, size_t n)
{
    if (s->n_tokens + n > s->cap_tokens) {
        size_t cap = s->cap_tokens ? s->cap_tokens : 256;
        while (cap < s->n_tokens + n)
            cap *= 2;
        s->tokens = xrealloc(s->tokens, cap * sizeof(*s->tokens));
        s->cap_tokens = cap;
    }
    memcpy(s->tokens + s->n_tokens, ids, n * sizeof(*ids));
    s->n_tokens += n;
}

static int check_ids(const llm_session *s, const int32_t *ids, size_t n, size_t total,
                     struct echo_err *err)
{
    if (n == 0 && total == 0) {
        echo_err_set(err, "empty prompt");
        return LLM_ERR_BAD_INPUT;
    }
    if (total > (size_t)s->n_ctx) {
        echo_err_set(err, "the prompt needs %zu positions but the context holds %d", total,
                     s->n_ctx);
        return LLM_ERR_TOO_LONG;
    }
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= s->m->info.n_vocab) {
            echo_err_set(err, "token id %ld at position %zu is outside the vocabulary (0..%d)",
                         (long)ids[i], i, s->m->info.n_vocab - 1);
            return LLM_ERR_BAD_INPUT;
        }
    }
    return 0;
}

/* Runs ids (already appended nowhere) at the end of the cache, chunk by
 * chunk; logits of the last one when want_logits. -1 when the forward pass
 * fails (out of memory); the tokens run before stay cached. */
static int run_tokens(llm_session *s, llm_engine *e, const int32_t *ids, size_t n,
                      bool want_logits)
{
    size_t done = 0;
    s->has_logits = false;
    while (done < n) {
        size_t chunk = n - done;
        if (chunk > (size_t)e->sc.ubatch) chunk = (size_t)e->sc.ubatch;
        bool last = done + chunk == n;
        if (qwen2_forward(s->m, &s->kv, &e->sc, e->pool, ids + done, (int)chunk, (int)s->n_tokens,
                          last && want_logits ? s->logits : NULL, false) < 0)
            return -1;
        push_tokens(s, ids + done, chunk);
        done += chunk;
    }
    s->has_logits = want_logits && n > 0;
    return 0;
}

/* The number of leading ids the cache can keep for this prompt. */
static size_t reusable_prefix(const llm_session *s, const int32_t *ids, size_t n)
{
    size_t common = 0;
    while (common < n && common < s->n_tokens && s->tokens[common] == ids[common])
        common++;
    return common;
}

int llm_session_eval(llm_session *s, llm_engine *e, const int32_t *ids, size_t n, size_t *reused,
                     struct echo_err *err)
{
    int rc = check_ids(s, ids, n, n, err);
    if (rc < 0) return rc;
    if (e->m != s->m) {
        echo_err_set(err, "the engine and the session belong to different models");
        return LLM_ERR_BAD_INPUT;
    }
    size_t common = reusable_prefix(s, ids, n);
    if (common == n && s->n_tokens == n && s->has_logits) {
        if (reused) *reused = n;
        return 0;
    }
    /* The last prompt position must run to give its logits. */
    if (common == n) common = n - 1;
    s->n_tokens = common;
    s->has_logits = false;
    if (llm_kv_reserve(&s->kv, (int)n) < 0) { /* n <= n_ctx was checked: cannot happen */
        echo_err_set(err, "the KV cache cannot hold %zu positions", n);
        return LLM_ERR_TOO_LONG;
    }
    if (run_tokens(s, e, ids + common, n - common, true) < 0) {
        echo_err_set(err, "out of memory for the attention's working memory");
        return LLM_ERR_IO;
    }
    if (reused) *reused = common;
    return 0;
}

int llm_session_eval_all(llm_session *s, llm_engine *e, const int32_t *ids, size_t n, float *logits,
                         struct echo_err *err)
{
    int rc = check_ids(s, ids, n, s->n_tokens + n, err);
    if (rc < 0) return rc;
    if (n == 0) return 0;
    if (llm_kv_reserve(&s->kv, (int)(s->n_tokens + n)) < 0) {
        echo_err_set(err, "the KV cache cannot hold %zu positions", s->n_tokens + n);
        return LLM_ERR_TOO_LONG;
    }
    size_t vocab = (size_t)s->m->info.n_vocab, done = 0;
    while (done < n) {
        size_t chunk = n - done;
        if (chunk > (size_t)e->sc.ubatch) chunk = (size_t)e->sc.ubatch;
        if (qwen2_forward(s->m, &s->kv, &e->sc, e->pool, ids + done, (int)chunk, (int)s->n_tokens,
                          logits + done * vocab, true) < 0) {
            echo_err_set(err, "out of memory for the attention's working memory");
            return LLM_ERR_IO;
        }
        push_tokens(s, ids + done, chunk);
        done += chunk;
    }
    memcpy(s->logits, logits + (n - 1) * vocab, vocab * sizeof(float));
    s->has_logits = true;
    return 0;
}

/* ---- generation ------------------------------------------------------------------ */

const char *llm_finish_name(enum llm_finish f)
{
    switch (f) {
    case LLM_FINISH_STOP:
        return "stop";
    case LLM_FINISH_LENGTH:
        return "length";
    case LLM_FINISH_CANCELLED:
        return "cancelled";
    case LLM_FINISH_ERROR:
        return "error";
    case LLM_FINISH_NONE:
        break;
    }
    return "none";
}

void llm_gen_params_default(struct llm_gen_params *p, const llm_model *m)
{
    memset(p, 0, sizeof(*p));
    p->sampling = *llm_model_sampling(m);
}

static double seconds(uint64_t a, uint64_t b)
{
    return b > a ? (double)(b - a) / 1e9 : 0.0;
}

bool llm_model_is_stop(const llm_model *m, int32_t id)
{
    for (int i = 0; i < m->n_stop_ids; i++)
        if (m->stop_ids[i] == id) return true;
    return false;
}

static bool is_stop(const struct llm_gen *g, int32_t id)
{
    if (llm_model_is_stop(g->s->m, id)) return true;
    for (size_t i = 0; i < g->params.n_stop_ids; i++)
        if (g->params.stop_ids[i] == id) return true;
    return false;
}

static int emit(struct llm_gen *g, const struct llm_callbacks *cb)
{
    int stop = 0;
    if (g->piece.len && cb && cb->on_piece)
        stop = cb->on_piece(cb->user, g->piece.data, g->piece.len);
    g->piece.len = 0;
    if (g->piece.data) g->piece.data[0] = '\0';
    return stop;
}

int llm_gen_begin(struct llm_gen *g, llm_session *s, const int32_t *prompt, size_t n,
                  const struct llm_gen_params *p, struct echo_err *err)
{
    memset(g, 0, sizeof(*g));
    g->s = s;
    g->params = *p;
    if (p->n_stop_ids && p->stop_ids) {
        /* Own a copy: the caller's array may not outlive the generation. */
        int32_t *copy = xmalloc(p->n_stop_ids * sizeof(*copy));
        memcpy(copy, p->stop_ids, p->n_stop_ids * sizeof(*copy));
        g->params.stop_ids = copy;
    } else {
        g->params.stop_ids = NULL;
        g->params.n_stop_ids = 0;
    }
    g->t_start = time_mono_ns();
    g->stats.prompt_tokens = (int)n;
    strbuf_init(&g->piece);
    int rc = check_ids(s, prompt, n, n, err);
    if (rc < 0) {
        g->phase = LLM_GEN_DONE;
        g->stats.finish = LLM_FINISH_ERROR;
        snprintf(g->stats.error, sizeof(g->stats.error), "%.*s", (int)sizeof(g->stats.error) - 1,
                 err ? err->msg : "bad prompt");
        return rc;
    }
    g->prompt = xmalloc(n * sizeof(*prompt));
    memcpy(g->prompt, prompt, n * sizeof(*prompt));
    g->n_prompt = n;
    g->sampler = llm_sampler_new(&p->sampling, s->m->info.n_vocab);
    tok_stream_init(&g->stream, s->m->tok, TOK_DECODE_SKIP_SPECIAL);

    size_t common = reusable_prefix(s, prompt, n);
    if (common == n) common = n - 1;
    s->n_tokens = common;
    s->has_logits = false;
    /* Room for the whole prompt (n <= n_ctx was checked, so this holds). */
    (void)llm_kv_reserve(&s->kv, (int)n);
    g->prompt_pos = common;
    g->stats.reused_tokens = (int)common;
    g->phase = LLM_GEN_PROMPT;
    return 0;
}

void llm_gen_finish(struct llm_gen *g, enum llm_finish why, const struct llm_callbacks *cb)
{
    if (g->phase == LLM_GEN_DONE) return;
    uint64_t now = time_mono_ns();
    if (g->phase == LLM_GEN_PROMPT) {
        g->t_prompt = now;
        g->t_decode = now;
    }
    g->phase = LLM_GEN_DONE;
    g->stats.finish = why;
    if (g->sampler) {
        tok_stream_flush(&g->stream, &g->piece);
        if (why != LLM_FINISH_ERROR) (void)emit(g, cb);
    }
    size_t computed = g->n_prompt - (size_t)g->stats.reused_tokens;
    g->stats.prompt_seconds = seconds(g->t_start, g->t_prompt);
    g->stats.gen_seconds = seconds(g->t_prompt, now);
    g->stats.prompt_tps =
        g->stats.prompt_seconds > 0 ? (double)computed / g->stats.prompt_seconds : 0.0;
    double dec = seconds(g->t_decode, now);
    if (g->n_decoded > 0 && dec > 0)
        g->stats.gen_tps = g->n_decoded / dec;
    else if (g->stats.gen_seconds > 0)
        g->stats.gen_tps = g->stats.completion_tokens / g->stats.gen_seconds;
}

bool llm_gen_plan(struct llm_gen *g, int max_prompt, const struct llm_callbacks *cb,
                  struct llm_batch_seq *out)
{
    llm_session *s = g->s;
    memset(out, 0, sizeof(*out));
    g->planned = 0;
    if (g->phase == LLM_GEN_DONE) return false;
    out->kv = &s->kv;
    out->pos = (int)s->n_tokens;

    if (g->phase == LLM_GEN_PROMPT) {
        size_t chunk = g->n_prompt - g->prompt_pos;
        if (max_prompt < 0) max_prompt = 0;
        if (chunk > (size_t)max_prompt) chunk = (size_t)max_prompt;
        out->ids = g->prompt + g->prompt_pos;
        out->n = (int)chunk;
        out->logits = g->prompt_pos + chunk == g->n_prompt ? s->logits : NULL;
        g->planned = (int)chunk;
        return true;
    }

    /* Decode: sample from the last logits, report, then plan the token. */
    int32_t id = llm_sampler_sample(g->sampler, s->logits, s->tokens, s->n_tokens);
    s->has_logits = false; /* the sampler modified them */
    if (cb && cb->on_token && cb->on_token(cb->user, id)) {
        llm_gen_finish(g, LLM_FINISH_CANCELLED, cb);
        return false;
    }
    if (!g->params.ignore_stop && is_stop(g, id)) {
        llm_gen_finish(g, LLM_FINISH_STOP, cb);
        return false;
    }
    g->stats.completion_tokens++;
    if (tok_stream_push(&g->stream, id, &g->piece, NULL) < 0) {
        /* An id the tokenizer lacks (rows past its vocabulary): no text. */
        g->piece.len = 0;
    }
    if (emit(g, cb)) {
        llm_gen_finish(g, LLM_FINISH_CANCELLED, cb);
        return false;
    }
    if ((g->params.max_tokens > 0 && g->stats.completion_tokens >= g->params.max_tokens) ||
        s->n_tokens + 1 > (size_t)s->n_ctx) {
        llm_gen_finish(g, LLM_FINISH_LENGTH, cb);
        return false;
    }
    /* n_tokens < n_ctx was checked just above, so the reservation holds. */
    (void)llm_kv_reserve(&s->kv, (int)s->n_tokens + 1);
    g->next_id = id;
    out->ids = &g->next_id;
    out->n = 1;
    out->logits = s->logits;
    g->planned = 1;
    return true;
}

void llm_gen_commit(struct llm_gen *g, int rc, const struct llm_callbacks *cb)
{
    llm_session *s = g->s;
    int n = g->planned;
    g->planned = 0;
    if (g->phase == LLM_GEN_DONE || n == 0) return;
    if (rc < 0) {
        snprintf(g->stats.error, sizeof(g->stats.error),
                 "out of memory for the attention's working memory");
        llm_gen_finish(g, LLM_FINISH_ERROR, cb);
        return;
    }
    if (g->phase == LLM_GEN_PROMPT) {
        push_tokens(s, g->prompt + g->prompt_pos, (size_t)n);
        g->prompt_pos += (size_t)n;
        if (g->prompt_pos == g->n_prompt) {
            s->has_logits = true;
            g->phase = LLM_GEN_DECODE;
            g->t_prompt = time_mono_ns();
            g->t_decode = g->t_prompt;
        }
        return;
    }
    push_tokens(s, &g->next_id, 1);
    s->has_logits = true;
    g->n_decoded++;
}

bool llm_gen_step(struct llm_gen *g, llm_engine *e, const struct llm_callbacks *cb)
{
    struct llm_batch_seq b;
    if (!llm_gen_plan(g, e->sc.ubatch, cb, &b)) return false;
    int rc = qwen2_forward_batch(g->s->m, &b, 1, &e->sc, e->pool);
    llm_gen_commit(g, rc, cb);
    return g->phase != LLM_GEN_DONE;
}

void llm_gen_end(struct llm_gen *g)
{
    free((int32_t *)g->params.stop_ids);
    g->params.stop_ids = NULL;
    llm_sampler_free(g->sampler);
    strbuf_deinit(&g->piece);
    free(g->prompt);
    g->sampler = NULL;
    g->prompt = NULL;
}

int llm_generate(llm_session *s, llm_engine *e, const int32_t *prompt, size_t n_prompt,
                 const struct llm_gen_params *params, const struct llm_callbacks *cb,
                 struct llm_gen_stats *stats, struct echo_err *err)
{
    struct llm_gen g;
    if (e->m != s->m) {
        echo_err_set(err, "the engine and the session belong to different models");
        if (stats) {
            memset(stats, 0, sizeof(*stats));
            stats->finish = LLM_FINISH_ERROR;
        }
        return LLM_ERR_BAD_INPUT;
    }
    int rc = llm_gen_begin(&g, s, prompt, n_prompt, params, err);
    if (rc == 0)
        while (llm_gen_step(&g, e, cb))
            ;
    if (stats) *stats = g.stats;
    llm_gen_end(&g);
    return rc;
}
