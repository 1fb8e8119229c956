/*
 * scheduler.c - the request queue between the web layer and the engine.
 *
 * Callers (HTTP/Socket.IO threads) submit requests; one engine thread owns
 * the engine (thread pool + scratch) and every session, and serves up to
 * max_active requests at once with continuous batching: each step is ONE
 * forward pass over all active requests, the next token of every generating
 * request plus a bounded chunk of the prompt of those still reading theirs,
 * as the rows of one matrix. Decoding is bound by reading the weights, and
 * one read now serves every request, so n requests generate nearly n times
 * the tokens per second of one. A new request joins the running batch at
 * the next step; prompt chunks are bounded while others decode so that
 * their tokens keep flowing, and handed out oldest request first, so none
 * starves. Cancellation is checked before every step.
 *
 * Sessions are kept per conversation key, so a chat's next turn reuses its
 * KV cache. Two requests of one conversation never run at once: the second
 * waits in the queue until the first ends. Idle sessions are evicted least
 * recently used first when the sessions' memory exceeds the budget.
 *
 * Locking: `mu` guards the queue, the active list, the session table and
 * the counters. The engine thread never holds it while computing or while
 * calling a sink, so sinks may submit or cancel. Each request has an atomic
 * cancel flag that the engine checks before every step.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "llm/model.h"

#define DEFAULT_BUDGET ((size_t)512 << 20)
#define DEFAULT_MAX_ACTIVE 4
#define DEFAULT_MAX_QUEUE 256
/* Prompt tokens per step while other requests decode: small enough that
 * their tokens keep flowing (a step of 64 prompt tokens of the 1.5B model
 * takes about a third of a second), large enough for efficient matrix
 * products. Alone, a prompt runs ubatch tokens per step. */
#define SHARED_CHUNK 64

struct sched_session {
    char *key;
    llm_session *s;
    uint64_t last_used;
    bool busy;
    bool forgotten; /* dropped by llm_sched_forget while in use: freed when idle */
    struct sched_session *next;
};

struct sched_req {
    uint64_t id;
    char *key; /* NULL: a throwaway session */
    int32_t *ids;
    size_t n_ids;
    struct llm_gen_params params;
    struct llm_sink sink;
    atomic_bool cancel;
    struct sched_session *sess;
    struct llm_gen gen;
    bool begun;
    struct sched_req *next;
};

struct llm_sched {
    const llm_model *m;
    struct llm_sched_opts o;
    llm_engine *eng;
    pthread_t thread;
    bool thread_started;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
    struct sched_req *queue_head, *queue_tail;
    size_t n_queued;
    struct sched_req **active;
    size_t n_active;
    struct sched_session *sessions;
    uint64_t next_id, clock, completed;
};

/* ---- sessions (called with mu held) ------------------------------------------ */

static size_t sessions_bytes(const llm_sched *s, size_t *count)
{
    size_t total = 0, n = 0;
    for (const struct sched_session *x = s->sessions; x; x = x->next, n++)
        total += llm_session_bytes(x->s);
    if (count) *count = n;
    return total;
}

static void session_unlink(llm_sched *s, struct sched_session *victim)
{
    for (struct sched_session **p = &s->sessions; *p; p = &(*p)->next) {
        if (*p == victim) {
            *p = victim->next;
            return;
        }
    }
}

static void session_free(struct sched_session *x)
{
    llm_session_free(x->s);
    free(x->key);
    free(x);
}

/* Evicts idle sessions, least recently used first, until the budget holds
 * (sessions in use are never evicted; they may exceed it alone). Returns
 * the evicted sessions as a list to free outside the lock. */
static struct sched_session *evict_over_budget(llm_sched *s, size_t extra)
{
    struct sched_session *freed = NULL;
    while (sessions_bytes(s, NULL) + extra > s->o.kv_budget_bytes) {
        struct sched_session *lru = NULL;
        for (struct sched_session *x = s->sessions; x; x = x->next)
            if (!x->busy && (!lru || x->last_used < lru->last_used)) lru = x;
        if (!lru) break;
        session_unlink(s, lru);
        lru->next = freed;
        freed = lru;
    }
    return freed;
}

static void free_session_list(struct sched_session *x)
{
    while (x) {
        struct sched_session *next = x->next;
        session_free(x);
        x = next;
    }
}

static struct sched_session *session_find(llm_sched *s, const char *key)
{
    for (struct sched_session *x = s->sessions; x; x = x->next)
        if (!x->forgotten && !strcmp(x->key, key)) return x;
    return NULL;
}

/* ---- requests -------------------------------------------------------------------------- */

static void req_free(struct sched_req *r)
{
    if (!r) return;
    if (r->begun) llm_gen_end(&r->gen);
    free(r->key);
    free(r->ids);
    free(r);
}

static int on_piece(void *user, const char *text, size_t len)
{
    struct sched_req *r = user;
    if (r->sink.on_piece) r->sink.on_piece(r->sink.user, r->id, text, len);
    return atomic_load(&r->cancel) ? 1 : 0;
}

/* Ends a request (no lock held): its session goes back to the table first,
 * so that a next turn submitted from on_end finds it idle; then on_end;
 * then the request is freed. */
static void req_end(llm_sched *s, struct sched_req *r)
{
    struct llm_gen_stats st;
    if (r->begun) {
        st = r->gen.stats;
    } else {
        memset(&st, 0, sizeof(st));
        st.finish = LLM_FINISH_CANCELLED;
        st.prompt_tokens = (int)r->n_ids;
    }
    struct sched_session *throwaway = NULL;
    pthread_mutex_lock(&s->mu);
    s->completed++;
    if (r->sess) {
        if (r->key && !r->sess->forgotten) {
            r->sess->busy = false;
            r->sess->last_used = ++s->clock;
        } else {
            if (r->key) session_unlink(s, r->sess);
            throwaway = r->sess;
        }
        r->sess = NULL;
    }
    struct sched_session *evicted = evict_over_budget(s, 0);
    pthread_mutex_unlock(&s->mu);
    if (throwaway) session_free(throwaway);
    free_session_list(evicted);
    if (r->sink.on_end) r->sink.on_end(r->sink.user, r->id, &st);
    req_free(r);
}

/* Moves queued requests to the active list (mu held). Requests whose
 * conversation is busy stay queued, in order. Cancelled queued requests are
 * returned in *dead to be ended outside the lock. */
static void admit(llm_sched *s, struct sched_req **dead, struct sched_session **evicted)
{
    struct sched_req **p = &s->queue_head, *prev = NULL;
    while (*p) {
        struct sched_req *r = *p;
        bool take = false;
        if (atomic_load(&r->cancel)) {
            take = true;
        } else if (s->n_active < (size_t)s->o.max_active) {
            struct sched_session *x = r->key ? session_find(s, r->key) : NULL;
            take = !(x && x->busy);
        }
        if (!take) {
            prev = r;
            p = &r->next;
            continue;
        }
        *p = r->next;
        if (s->queue_tail == r) s->queue_tail = prev;
        s->n_queued--;
        r->next = NULL;
        if (atomic_load(&r->cancel)) {
            r->next = *dead;
            *dead = r;
            continue;
        }
        struct sched_session *x = r->key ? session_find(s, r->key) : NULL;
        if (!x) {
            struct sched_session *ev = evict_over_budget(s, 0);
            while (ev) {
                struct sched_session *n = ev->next;
                ev->next = *evicted;
                *evicted = ev;
                ev = n;
            }
            x = xcalloc(1, sizeof(*x));
            struct llm_session_opts so = {.n_ctx = s->o.n_ctx, .kv_type = s->o.kv_type};
            x->s = llm_session_new(s->m, &so, NULL);
            x->key = r->key ? xstrdup(r->key) : NULL;
            if (r->key) {
                x->next = s->sessions;
                s->sessions = x;
            }
        }
        x->busy = true;
        x->last_used = ++s->clock;
        r->sess = x;
        s->active[s->n_active++] = r;
    }
}

/* Takes a finished request off the active list and ends it (no lock held). */
static void retire(llm_sched *s, struct sched_req *r)
{
    pthread_mutex_lock(&s->mu);
    for (size_t j = 0; j < s->n_active; j++) {
        if (s->active[j] == r) {
            /* Keep the admission order: prompt chunks go oldest first. */
            memmove(&s->active[j], &s->active[j + 1], (s->n_active - j - 1) * sizeof(*s->active));
            s->n_active--;
            break;
        }
    }
    pthread_mutex_unlock(&s->mu);
    req_end(s, r);
}

/*
 * One step of every active request (run[0..n), oldest first): begin the new
 * ones, honour cancellations, plan each (decoders sample and report their
 * token), run all planned tokens in one forward pass, commit. Requests that
 * end on the way are retired.
 */
static void step(llm_sched *s, struct sched_req **run, size_t n)
{
    struct llm_batch_seq batch[LLM_MAX_BATCH];
    struct sched_req *in_batch[LLM_MAX_BATCH];
    int nb = 0;
    const int ubatch = s->eng->sc.ubatch;

    /* Decoders first: their count bounds the room left for prompt chunks. */
    int decoding = 0;
    for (size_t i = 0; i < n; i++)
        if (run[i]->begun && run[i]->gen.phase == LLM_GEN_DECODE) decoding++;
    int budget = ubatch - decoding;
    if (decoding > 0 && budget > SHARED_CHUNK) budget = SHARED_CHUNK;

    for (size_t i = 0; i < n; i++) {
        struct sched_req *r = run[i];
        struct llm_callbacks cb = {.on_piece = on_piece, .user = r};
        bool more;
        if (!r->begun) {
            struct echo_err err;
            echo_err_clear(&err);
            r->begun = true;
            more = llm_gen_begin(&r->gen, r->sess->s, r->ids, r->n_ids, &r->params, &err) == 0;
        } else {
            more = r->gen.phase != LLM_GEN_DONE;
        }
        if (more && atomic_load(&r->cancel)) {
            llm_gen_finish(&r->gen, LLM_FINISH_CANCELLED, &cb);
            more = false;
        }
        struct llm_batch_seq b;
        if (more) {
            bool prompting = r->gen.phase == LLM_GEN_PROMPT;
            more = llm_gen_plan(&r->gen, prompting ? budget : 0, &cb, &b);
            if (more && prompting) budget -= b.n;
        }
        if (!more) {
            retire(s, r);
            continue;
        }
        if (b.n > 0) {
            batch[nb] = b;
            in_batch[nb++] = r;
        }
    }
    if (nb == 0) return;
    int rc = qwen2_forward_batch(s->m, batch, nb, &s->eng->sc, s->eng->pool);
    for (int i = 0; i < nb; i++) {
        struct sched_req *r = in_batch[i];
        struct llm_callbacks cb = {.on_piece = on_piece, .user = r};
        llm_gen_commit(&r->gen, rc, &cb);
        if (r->gen.phase == LLM_GEN_DONE) retire(s, r);
    }
}

static void *engine_main(void *arg)
{
    llm_sched *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        struct sched_req *dead = NULL;
        struct sched_session *evicted = NULL;
        if (!s->stop) admit(s, &dead, &evicted);
        if (s->stop || (!s->n_active && !dead)) {
            if (s->stop) break;
            pthread_mutex_unlock(&s->mu);
            free_session_list(evicted);
            pthread_mutex_lock(&s->mu);
            if (!s->stop && !s->n_active && !s->queue_head) pthread_cond_wait(&s->cv, &s->mu);
            continue;
        }
        /* Snapshot the active list: only this thread changes it. */
        size_t n = s->n_active;
        struct sched_req *run[64];
        if (n > sizeof(run) / sizeof(run[0])) n = sizeof(run) / sizeof(run[0]);
        memcpy(run, s->active, n * sizeof(*run));
        pthread_mutex_unlock(&s->mu);

        free_session_list(evicted);
        while (dead) {
            struct sched_req *next = dead->next;
            req_end(s, dead);
            dead = next;
        }
        step(s, run, n);
        pthread_mutex_lock(&s->mu);
    }
    /* Stopping: everything not ended ends as cancelled. */
    struct sched_req *rest = s->queue_head;
    s->queue_head = s->queue_tail = NULL;
    s->n_queued = 0;
    size_t n = s->n_active;
    struct sched_req **act = s->active;
    s->active = xcalloc((size_t)s->o.max_active, sizeof(*s->active));
    s->n_active = 0;
    pthread_mutex_unlock(&s->mu);
    for (size_t i = 0; i < n; i++) {
        struct llm_callbacks cb = {.on_piece = on_piece, .user = act[i]};
        if (act[i]->begun) llm_gen_finish(&act[i]->gen, LLM_FINISH_CANCELLED, &cb);
        req_end(s, act[i]);
    }
    free(act);
    while (rest) {
        struct sched_req *next = rest->next;
        req_end(s, rest);
        rest = next;
    }
    return NULL;
}

/* ---- public API ------------------------------------------------------------------------------ */

llm_sched *llm_sched_new(const llm_model *m, const struct llm_sched_opts *opts,
                         struct echo_err *err)
{
    llm_sched *s = xcalloc(1, sizeof(*s));
    s->m = m;
    if (opts) s->o = *opts;
    if (s->o.n_ctx <= 0 || s->o.n_ctx > m->info.n_ctx) s->o.n_ctx = m->info.n_ctx;
    if (s->o.kv_budget_bytes == 0) s->o.kv_budget_bytes = DEFAULT_BUDGET;
    if (s->o.max_active <= 0) s->o.max_active = DEFAULT_MAX_ACTIVE;
    if (s->o.max_active > 64) s->o.max_active = 64;
    if (s->o.max_queue <= 0) s->o.max_queue = DEFAULT_MAX_QUEUE;
    if (s->o.kv_type != LLM_KV_F16 && s->o.kv_type != LLM_KV_F32) {
        echo_err_set(err, "unknown KV cache type %d", (int)s->o.kv_type);
        free(s);
        return NULL;
    }
    s->active = xcalloc((size_t)s->o.max_active, sizeof(*s->active));
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->eng = llm_engine_new(m, s->o.n_threads, 0, err);
    if (!s->eng) goto fail;
    int rc = pthread_create(&s->thread, NULL, engine_main, s);
    if (rc != 0) {
        echo_err_set(err, "cannot start the engine thread: %s", strerror(rc));
        goto fail;
    }
    s->thread_started = true;
    return s;
fail:
    llm_sched_free(s);
    return NULL;
}

void llm_sched_free(llm_sched *s)
{
    if (!s) return;
    if (s->thread_started) {
        pthread_mutex_lock(&s->mu);
        s->stop = true;
        pthread_cond_signal(&s->cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->thread, NULL);
    }
    struct sched_session *x = s->sessions;
    s->sessions = NULL;
    free_session_list(x);
    llm_engine_free(s->eng);
    free(s->active);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

/* The prompt of a request as ids: copied, or rendered from messages and
 * fitted into the context minus the room the answer needs. */
static int prepare_prompt(llm_sched *s, const struct llm_request *req, int32_t **ids, size_t *n,
                          struct echo_err *err)
{
    int n_ctx = s->o.n_ctx;
    int max_tokens = req->params.max_tokens;
    if (max_tokens >= n_ctx) {
        echo_err_set(err, "max_tokens %d leaves no room in the context of %d", max_tokens, n_ctx);
        return LLM_ERR_BAD_INPUT;
    }
    if (req->ids && req->messages) {
        echo_err_set(err, "a request gives either ids or messages, not both");
        return LLM_ERR_BAD_INPUT;
    }
    if (req->ids) {
        if (req->n_ids == 0) {
            echo_err_set(err, "empty prompt");
            return LLM_ERR_BAD_INPUT;
        }
        if (req->n_ids > (size_t)n_ctx) {
            echo_err_set(err, "the prompt has %zu tokens but the context holds %d", req->n_ids,
                         n_ctx);
            return LLM_ERR_TOO_LONG;
        }
        for (size_t i = 0; i < req->n_ids; i++) {
            if (req->ids[i] < 0 || req->ids[i] >= s->m->info.n_vocab) {
                echo_err_set(err, "token id %ld is outside the vocabulary", (long)req->ids[i]);
                return LLM_ERR_BAD_INPUT;
            }
        }
        *ids = xmalloc(req->n_ids * sizeof(**ids));
        memcpy(*ids, req->ids, req->n_ids * sizeof(**ids));
        *n = req->n_ids;
        return 0;
    }
    if (!req->messages || req->n_messages == 0) {
        echo_err_set(err, "a request needs ids or messages");
        return LLM_ERR_BAD_INPUT;
    }
    /* Room for the answer: max_tokens, or a quarter of the context when the
     * answer may run to the end of it. */
    size_t budget = (size_t)n_ctx - (size_t)(max_tokens > 0 ? max_tokens : n_ctx / 4);
    struct tok_ids out;
    struct chat_fit_result res;
    tok_ids_init(&out);
    if (chat_fit(s->m->tok, req->messages, req->n_messages, budget, NULL, &out, &res, err) < 0) {
        tok_ids_deinit(&out);
        return LLM_ERR_TOO_LONG;
    }
    *ids = out.ids;
    *n = out.len;
    return 0;
}

int llm_sched_submit(llm_sched *s, const struct llm_request *req, const struct llm_sink *sink,
                     uint64_t *id, struct echo_err *err)
{
    int32_t *ids = NULL;
    size_t n = 0;
    int rc = prepare_prompt(s, req, &ids, &n, err);
    if (rc < 0) return rc;
    struct sched_req *r = xcalloc(1, sizeof(*r));
    r->key = req->conversation ? xstrdup(req->conversation) : NULL;
    r->ids = ids;
    r->n_ids = n;
    r->params = req->params;
    if (sink) r->sink = *sink;
    atomic_init(&r->cancel, false);

    pthread_mutex_lock(&s->mu);
    if (s->stop) {
        pthread_mutex_unlock(&s->mu);
        req_free(r);
        echo_err_set(err, "the engine is shutting down");
        return LLM_ERR_SHUTDOWN;
    }
    if (s->n_queued >= (size_t)s->o.max_queue) {
        pthread_mutex_unlock(&s->mu);
        req_free(r);
        echo_err_set(err, "the engine has %d requests waiting; try again later", s->o.max_queue);
        return LLM_ERR_BUSY;
    }
    r->id = ++s->next_id;
    if (s->queue_tail)
        s->queue_tail->next = r;
    else
        s->queue_head = r;
    s->queue_tail = r;
    s->n_queued++;
    if (id) *id = r->id;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

int llm_sched_cancel(llm_sched *s, uint64_t id)
{
    int rc = LLM_ERR_NOT_FOUND;
    pthread_mutex_lock(&s->mu);
    for (struct sched_req *r = s->queue_head; r && rc; r = r->next) {
        if (r->id == id) {
            atomic_store(&r->cancel, true);
            rc = 0;
        }
    }
    for (size_t i = 0; i < s->n_active && rc; i++) {
        if (s->active[i]->id == id) {
            atomic_store(&s->active[i]->cancel, true);
            rc = 0;
        }
    }
    if (rc == 0) pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

void llm_sched_forget(llm_sched *s, const char *conversation)
{
    struct sched_session *victim = NULL;
    pthread_mutex_lock(&s->mu);
    struct sched_session *x = session_find(s, conversation);
    if (x && !x->busy) {
        session_unlink(s, x);
        victim = x;
    } else if (x) {
        x->forgotten = true; /* in use: req_end frees it */
    }
    pthread_mutex_unlock(&s->mu);
    if (victim) session_free(victim);
}

void llm_sched_get_stats(llm_sched *s, struct llm_sched_stats *out)
{
    pthread_mutex_lock(&s->mu);
    out->queued = s->n_queued;
    out->active = s->n_active;
    out->kv_bytes = sessions_bytes(s, &out->sessions);
    out->completed = s->completed;
    pthread_mutex_unlock(&s->mu);
}

void llm_opts_from_config(const config *c, struct llm_load_opts *load, struct llm_sched_opts *sched)
{
    int64_t ctx = config_get_int(c, "ECHO_CONTEXT");
    int64_t threads = config_get_int(c, "ECHO_MODEL_THREADS");
    int64_t mb = config_get_int(c, "ECHO_KV_CACHE_MB");
    int n_ctx = ctx > 0 && ctx < (1 << 22) ? (int)ctx : 0;
    if (load) load->max_context = n_ctx;
    if (sched) {
        sched->n_ctx = n_ctx;
        sched->n_threads = threads > 0 && threads <= 256 ? (int)threads : 0;
        sched->kv_budget_bytes = mb > 0 && mb < (1 << 24) ? (size_t)mb << 20 : 0;
    }
}
