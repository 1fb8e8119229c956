/*
 * chat.c - the chat: Socket.IO events in, streamed answers out, the
 * discussion in the database. See chat.h for the flow and the threads.
 *
 * Each user has at most one generation ("gen") at a time. A gen is created
 * by send_message on the realtime thread (so a second message is refused at
 * once, through its ack), filled in by the worker thread (stored message id,
 * scheduler request id), fed by the engine thread (text pieces), and ended
 * by the worker thread (stored answer, response_end). `lock` guards the list
 * of gens and their control fields (req_id, stop/discard flags); the text
 * buffers belong to the engine thread until on_end.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "web/app.h"
#include "web/auth.h"
#include "web/chat.h"
#include "web/profile.h"

#define CHAT_MAX_CHARS 8000
#define CHAT_FLUSH_NS (150ull * 1000 * 1000)
#define CHAT_DB_TIMEOUT_MS 5000

struct gen {
    struct web_chat *chat;
    int64_t user_id;
    uint64_t socket_id;   /* the tab that asked; its disconnect cancels */
    int64_t exchange_id;  /* id of the stored user message; names the answer's events */
    uint64_t req_id;      /* scheduler request, 0 until submitted */
    bool stop_requested;  /* Stop pressed (or the tab left) before req_id was known */
    bool discard;         /* the discussion was cleared: store nothing of this answer */
    char *message;        /* the user's text, until stored */
    struct sio_ack ack;
    bool has_ack;
    /* engine thread only, until on_end */
    struct strbuf text;    /* the whole answer so far */
    size_t flushed;        /* bytes of text already emitted */
    uint64_t last_flush_ns;
    struct llm_gen_stats stats;
    struct gen *next;
};

enum job_kind { JOB_SEND, JOB_END };

struct job {
    enum job_kind kind;
    struct gen *gen;
    struct job *next;
};

struct web_chat {
    const config *cfg;
    db_pool *pool;
    sio_server *sio;
    const llm_model *model;
    llm_sched *sched;
    int max_tokens;
    int history;
    const char *system_prompt;

    pthread_mutex_t lock;
    struct gen *gens;

    pthread_mutex_t jobs_lock;
    pthread_cond_t jobs_cond;
    struct job *jobs_head, *jobs_tail;
    bool stopping;
    pthread_t worker;
    bool worker_started;
};

/* ---- helpers ---- */

static void ack_error(web_chat *c, const struct sio_ack *ack, const char *message)
{
    if (!ack)
        return;
    json_t *j = json_pack("{s:b, s:s}", "ok", 0, "error", message);
    sio_ack_reply(c->sio, ack, j);
    json_decref(j);
}

static void push_job(web_chat *c, enum job_kind kind, struct gen *g)
{
    struct job *j = xcalloc(1, sizeof(*j));
    j->kind = kind;
    j->gen = g;
    pthread_mutex_lock(&c->jobs_lock);
    if (c->jobs_tail)
        c->jobs_tail->next = j;
    else
        c->jobs_head = j;
    c->jobs_tail = j;
    pthread_cond_signal(&c->jobs_cond);
    pthread_mutex_unlock(&c->jobs_lock);
}

/* Caller holds c->lock. */
static struct gen *find_gen(web_chat *c, int64_t user_id)
{
    for (struct gen *g = c->gens; g; g = g->next)
        if (g->user_id == user_id)
            return g;
    return NULL;
}

/* Takes g off the list: the user's slot is free from here on. Caller holds
 * c->lock. */
static void unlink_gen_locked(web_chat *c, struct gen *g)
{
    for (struct gen **p = &c->gens; *p; p = &(*p)->next) {
        if (*p == g) {
            *p = g->next;
            break;
        }
    }
}

static void free_gen(struct gen *g)
{
    strbuf_deinit(&g->text);
    free(g->message);
    free(g);
}

/* Cancels g: through the scheduler once submitted, else by flag for the
 * worker to see. Caller holds c->lock. */
static void cancel_locked(web_chat *c, struct gen *g)
{
    g->stop_requested = true;
    if (g->req_id && c->sched)
        llm_sched_cancel(c->sched, g->req_id);
}

/* ---- engine thread: pieces and the end ---- */

static void emit_chunk(struct gen *g, size_t upto)
{
    if (upto <= g->flushed)
        return;
    json_t *j = json_object();
    json_object_set_new(j, "id", json_integer(g->exchange_id));
    json_object_set_new(j, "text", json_stringn(g->text.data + g->flushed, upto - g->flushed));
    sio_emit_user(g->chat->sio, g->user_id, "response_chunk", j);
    json_decref(j);
    g->flushed = upto;
    g->last_flush_ns = time_mono_ns();
}

/*
 * Text goes out at word boundaries so the page grows word by word: up to the
 * last whitespace held, or everything once 150 ms passed since the last
 * flush (a long word, code). Pieces are whole UTF-8 characters and so is any
 * cut made here (whitespace is ASCII).
 */
static void on_piece(void *user, uint64_t id, const char *text, size_t len)
{
    (void)id;
    struct gen *g = user;
    /* A model may generate the byte token 0x00. It means nothing in a chat
     * and the stored answer is a C string, so it is dropped here, before
     * both the stream and the store see it: they must stay equal. */
    for (const char *p = text, *end = text + len; p < end;) {
        const char *nul = memchr(p, 0, (size_t)(end - p));
        const char *stop = nul ? nul : end;
        strbuf_append(&g->text, p, (size_t)(stop - p));
        p = stop + (nul ? 1 : 0);
    }
    size_t cut = 0;
    for (size_t i = g->text.len; i > g->flushed; i--) {
        char ch = g->text.data[i - 1];
        if (ch == ' ' || ch == '\n' || ch == '\t' || ch == '\r') {
            cut = i;
            break;
        }
    }
    if (time_mono_ns() - g->last_flush_ns >= CHAT_FLUSH_NS)
        cut = g->text.len;
    if (cut)
        emit_chunk(g, cut);
}

static void on_end(void *user, uint64_t id, const struct llm_gen_stats *stats)
{
    (void)id;
    struct gen *g = user;
    g->stats = *stats;
    emit_chunk(g, g->text.len);
    push_job(g->chat, JOB_END, g);
}

/* ---- worker thread ---- */

/* The slot is freed before the ack goes out: a client that sends again as
 * soon as it reads the refusal must not be told the slot is still taken. */
static void send_failed(web_chat *c, struct gen *g, db *d, const char *message)
{
    if (g->exchange_id && d)
        db_message_delete(d, g->exchange_id, NULL);
    pthread_mutex_lock(&c->lock);
    unlink_gen_locked(c, g);
    pthread_mutex_unlock(&c->lock);
    if (g->has_ack)
        ack_error(c, &g->ack, message);
    free_gen(g);
}

static void do_send(web_chat *c, struct gen *g, bool stopping)
{
    struct echo_err err = {0};
    if (stopping) {
        /* The server is stopping: the message is not taken (nor stored). */
        send_failed(c, g, NULL, "Echo is restarting; please send your message again.");
        return;
    }
    db *d = db_pool_acquire(c->pool, CHAT_DB_TIMEOUT_MS, &err);
    if (!d) {
        log_error("chat: no database connection: %s", err.msg);
        send_failed(c, g, NULL, "The server is busy; please try again.");
        return;
    }
    struct db_message m;
    db_message_init(&m);
    m.user_id = g->user_id;
    snprintf(m.role, sizeof(m.role), "user");
    m.content = g->message;
    int rc = db_message_add(d, &m, &g->exchange_id, &err);
    m.content = NULL;
    db_message_deinit(&m);
    if (rc != DB_OK) {
        log_error("chat: storing a message of user %lld: %s", (long long)g->user_id, err.msg);
        g->exchange_id = 0;
        send_failed(c, g, d, rc == DB_INVALID ? "This message cannot be stored."
                                              : "The message could not be saved; please try again.");
        db_pool_release(c->pool, d);
        return;
    }
    /* The profile page counts the person's messages: no stale count after
     * their own message. */
    web_profile_invalidate(g->user_id);

    struct db_message *hist = NULL;
    size_t n_hist = 0;
    rc = db_message_history(d, g->user_id, c->history, &hist, &n_hist, &err);
    if (rc != DB_OK) {
        log_error("chat: loading the history of user %lld: %s", (long long)g->user_id, err.msg);
        send_failed(c, g, d, "The discussion could not be loaded; please try again.");
        db_pool_release(c->pool, d);
        return;
    }
    struct chat_message *msgs = xcalloc(n_hist + 1, sizeof(*msgs));
    size_t n = 0;
    if (c->system_prompt)
        msgs[n++] = (struct chat_message){CHAT_ROLE_SYSTEM, c->system_prompt, 0};
    for (size_t i = 0; i < n_hist && n < n_hist + 1; i++) {
        /* A failed or empty answer is not part of what the model should see. */
        if (!hist[i].content || !hist[i].content[0])
            continue;
        enum chat_role role;
        if (chat_role_parse(hist[i].role, &role) != 0)
            continue;
        msgs[n++] = (struct chat_message){role, hist[i].content, 0};
    }

    char conv[48];
    snprintf(conv, sizeof(conv), "user:%lld", (long long)g->user_id);
    struct llm_request req = {0};
    req.conversation = conv;
    req.messages = msgs;
    req.n_messages = n;
    llm_gen_params_default(&req.params, c->model);
    req.params.max_tokens = c->max_tokens;
    struct llm_sink sink = {on_piece, on_end, g};
    g->last_flush_ns = time_mono_ns();

    /* The slot is published before submit: on_end may run before submit returns. */
    pthread_mutex_lock(&c->lock);
    bool stop = g->stop_requested || g->discard;
    pthread_mutex_unlock(&c->lock);
    uint64_t req_id = 0;
    rc = stop ? LLM_ERR_BAD_INPUT : llm_sched_submit(c->sched, &req, &sink, &req_id, &err);
    free(msgs);
    db_message_array_free(hist, n_hist);
    if (rc != 0) {
        const char *why = stop                     ? "Stopped."
                          : rc == LLM_ERR_TOO_LONG ? "This message is too long for the model."
                          : rc == LLM_ERR_BUSY     ? "Echo is busy right now; please try again."
                                                   : "The model could not take this message.";
        if (!stop)
            log_warn("chat: submit for user %lld refused: %s", (long long)g->user_id, err.msg);
        send_failed(c, g, d, why);
        db_pool_release(c->pool, d);
        return;
    }
    db_pool_release(c->pool, d);

    pthread_mutex_lock(&c->lock);
    g->req_id = req_id;
    if (g->stop_requested)
        llm_sched_cancel(c->sched, req_id);
    pthread_mutex_unlock(&c->lock);

    if (g->has_ack) {
        json_t *j = json_pack("{s:b, s:I}", "ok", 1, "id", (json_int_t)g->exchange_id);
        sio_ack_reply(c->sio, &g->ack, j);
        json_decref(j);
    }
    /* The user's other tabs show the message too (the sender ignores its own). */
    json_t *um = json_pack("{s:I, s:s}", "id", (json_int_t)g->exchange_id, "content", g->message);
    sio_emit_user(c->sio, g->user_id, "user_message", um);
    json_decref(um);
}

/*
 * Stores the answer, frees the user's slot, then announces the end (in that
 * order: a client may send its next message the moment response_end
 * arrives). A discussion cleared meanwhile (web_chat_clear: discard set,
 * then every message deleted) must not get this answer back: discard is
 * read after the insert, in the same critical section that takes g off the
 * list, so either the clear's delete comes after the insert or the insert
 * is undone here.
 */
static void do_end(web_chat *c, struct gen *g)
{
    const struct llm_gen_stats *st = &g->stats;
    int64_t answer_id = 0;
    struct echo_err err = {0};
    db *d = NULL;
    pthread_mutex_lock(&c->lock);
    bool discard = g->discard;
    pthread_mutex_unlock(&c->lock);
    if (!discard && g->text.len > 0) {
        d = db_pool_acquire(c->pool, CHAT_DB_TIMEOUT_MS, &err);
        if (d) {
            struct db_message m;
            db_message_init(&m);
            m.user_id = g->user_id;
            snprintf(m.role, sizeof(m.role), "assistant");
            m.content = g->text.data;
            m.prompt_tokens = st->prompt_tokens;
            m.completion_tokens = st->completion_tokens;
            m.finish_reason = (char *)llm_finish_name(st->finish);
            m.tokens_per_second = st->gen_tps;
            if (db_message_add(d, &m, &answer_id, &err) != DB_OK) {
                log_error("chat: storing the answer for user %lld: %s", (long long)g->user_id,
                          err.msg);
                answer_id = 0;
            } else {
                web_profile_invalidate(g->user_id);
            }
        } else {
            log_error("chat: no database connection to store an answer: %s", err.msg);
        }
    }
    pthread_mutex_lock(&c->lock);
    discard = g->discard;
    unlink_gen_locked(c, g);
    pthread_mutex_unlock(&c->lock);
    if (discard && answer_id) {
        if (db_message_delete(d, answer_id, &err) != DB_OK)
            log_error("chat: removing an answer of a cleared discussion: %s", err.msg);
        answer_id = 0;
    }
    if (d)
        db_pool_release(c->pool, d);
    if (st->finish == LLM_FINISH_ERROR)
        log_error("chat: generation for user %lld failed: %s", (long long)g->user_id, st->error);
    json_t *j = json_object();
    json_object_set_new(j, "id", json_integer(g->exchange_id));
    json_object_set_new(j, "finish_reason", json_string(llm_finish_name(st->finish)));
    json_object_set_new(j, "prompt_tokens", json_integer(st->prompt_tokens));
    json_object_set_new(j, "completion_tokens", json_integer(st->completion_tokens));
    json_object_set_new(j, "tokens_per_second",
                        json_real((double)(int)(st->gen_tps * 10 + 0.5) / 10.0));
    if (answer_id)
        json_object_set_new(j, "message_id", json_integer(answer_id));
    sio_emit_user(c->sio, g->user_id, "response_end", j);
    json_decref(j);
    free_gen(g);
}

/*
 * The worker also ends the scheduler when the chat stops: it is the only
 * thread submitting, so the scheduler is never freed under a submit. Ending
 * it ends every request (on_end: cancelled), whose JOB_ENDs are then drained
 * like any other.
 */
static void *worker_main(void *arg)
{
    web_chat *c = arg;
    for (;;) {
        pthread_mutex_lock(&c->jobs_lock);
        while (!c->jobs_head && !c->stopping)
            pthread_cond_wait(&c->jobs_cond, &c->jobs_lock);
        struct job *j = c->jobs_head;
        if (j) {
            c->jobs_head = j->next;
            if (!c->jobs_head)
                c->jobs_tail = NULL;
        }
        bool stopping = c->stopping;
        pthread_mutex_unlock(&c->jobs_lock);
        if (j) {
            if (j->kind == JOB_SEND)
                do_send(c, j->gen, stopping);
            else
                do_end(c, j->gen);
            free(j);
            continue;
        }
        /* Stopping, and nothing queued. */
        pthread_mutex_lock(&c->lock);
        llm_sched *sched = c->sched;
        c->sched = NULL;
        pthread_mutex_unlock(&c->lock);
        if (!sched)
            return NULL; /* drained */
        llm_sched_free(sched);
    }
}

/* ---- realtime thread: events ---- */

static void on_send_message(sio_server *srv, sio_socket *sock, json_t *args,
                            const struct sio_ack *ack, void *ud)
{
    (void)srv;
    web_chat *c = ud;
    int64_t user_id = sio_socket_user(sock);
    json_t *arg = json_array_get(args, 0);
    json_t *msg = json_is_object(arg) ? json_object_get(arg, "message") : NULL;
    if (!json_is_string(msg)) {
        ack_error(c, ack, "Expected {\"message\": \"...\"}.");
        return;
    }
    const char *text = json_string_value(msg);
    size_t len = json_string_length(msg);
    size_t chars = utf8_length(text, len);
    bool blank = true;
    for (size_t i = 0; i < len && blank; i++)
        blank = text[i] == ' ' || text[i] == '\n' || text[i] == '\t' || text[i] == '\r';
    if (len == 0 || blank) {
        ack_error(c, ack, "The message is empty.");
        return;
    }
    if (chars > CHAT_MAX_CHARS) {
        ack_error(c, ack, "The message is too long (at most 8000 characters).");
        return;
    }
    if (memchr(text, 0, len)) {
        ack_error(c, ack, "The message contains a NUL character.");
        return;
    }
    if (!c->sched) {
        ack_error(c, ack, "No model is installed yet: run `make model` (or `echobot model pull`).");
        return;
    }
    pthread_mutex_lock(&c->lock);
    if (find_gen(c, user_id)) {
        pthread_mutex_unlock(&c->lock);
        ack_error(c, ack, "Echo is still answering your previous message; wait or press Stop.");
        return;
    }
    struct gen *g = xcalloc(1, sizeof(*g));
    g->chat = c;
    g->user_id = user_id;
    g->socket_id = sio_socket_id(sock);
    g->message = xstrndup(text, len);
    if (ack) {
        g->ack = *ack;
        g->has_ack = true;
    }
    strbuf_init(&g->text);
    g->next = c->gens;
    c->gens = g;
    pthread_mutex_unlock(&c->lock);
    push_job(c, JOB_SEND, g);
}

static void on_stop_generation(sio_server *srv, sio_socket *sock, json_t *args,
                               const struct sio_ack *ack, void *ud)
{
    (void)srv;
    (void)args;
    web_chat *c = ud;
    pthread_mutex_lock(&c->lock);
    struct gen *g = find_gen(c, sio_socket_user(sock));
    if (g)
        cancel_locked(c, g);
    pthread_mutex_unlock(&c->lock);
    if (ack) {
        json_t *j = json_pack("{s:b}", "ok", g != NULL);
        sio_ack_reply(c->sio, ack, j);
        json_decref(j);
    }
}

/* The answer a tab asked for stops when that tab goes (its reader is gone);
 * answers asked for by another tab of the same user go on. */
static void on_disconnect(sio_server *srv, sio_socket *sock, const char *reason, void *ud)
{
    (void)srv;
    web_chat *c = ud;
    pthread_mutex_lock(&c->lock);
    struct gen *g = find_gen(c, sio_socket_user(sock));
    if (g && g->socket_id == sio_socket_id(sock)) {
        log_info("chat: tab of user %lld left (%s); its answer is cancelled",
                 (long long)g->user_id, reason);
        cancel_locked(c, g);
    }
    pthread_mutex_unlock(&c->lock);
}

/* ---- public ---- */

web_chat *web_chat_new(const struct web_chat_deps *deps, struct echo_err *err)
{
    web_chat *c = xcalloc(1, sizeof(*c));
    c->cfg = deps->cfg;
    c->pool = deps->pool;
    c->sio = deps->sio;
    c->model = deps->model;
    c->sched = deps->sched;
    c->max_tokens = (int)config_get_int(deps->cfg, "ECHO_MAX_TOKENS");
    c->history = (int)config_get_int(deps->cfg, "ECHO_HISTORY_MESSAGES");
    c->system_prompt = config_get(deps->cfg, "ECHO_SYSTEM_PROMPT");
    if (c->max_tokens <= 0)
        c->max_tokens = 1024;
    if (c->history <= 0)
        c->history = 40;
    if (c->model) {
        /* The answer shares the context with the discussion: keep at least
         * half of a small context for the discussion. */
        int n_ctx = llm_model_get_info(c->model)->n_ctx;
        if (c->max_tokens > n_ctx / 2) {
            log_info("chat: answers limited to %d tokens (half of the model's context of %d)",
                     n_ctx / 2, n_ctx);
            c->max_tokens = n_ctx / 2;
        }
    }
    pthread_mutex_init(&c->lock, NULL);
    pthread_mutex_init(&c->jobs_lock, NULL);
    pthread_cond_init(&c->jobs_cond, NULL);
    if (sio_on(c->sio, "send_message", on_send_message, c) != 0 ||
        sio_on(c->sio, "stop_generation", on_stop_generation, c) != 0) {
        echo_err_set(err, "chat: the Socket.IO events are already registered");
        goto fail;
    }
    sio_on_disconnect(c->sio, on_disconnect, c);
    if (pthread_create(&c->worker, NULL, worker_main, c) != 0) {
        echo_err_set(err, "chat: cannot start the worker thread");
        goto fail;
    }
    c->worker_started = true;
    return c;
fail:
    c->sched = NULL; /* still the caller's on failure */
    web_chat_free(c);
    return NULL;
}

void web_chat_free(web_chat *c)
{
    if (!c)
        return;
    /* The worker ends the scheduler (see worker_main), stores the answers
     * this cancels, and drains. */
    if (c->worker_started) {
        pthread_mutex_lock(&c->jobs_lock);
        c->stopping = true;
        pthread_cond_signal(&c->jobs_cond);
        pthread_mutex_unlock(&c->jobs_lock);
        pthread_join(c->worker, NULL);
    }
    /* Without a worker (it failed to start) nothing else ends these. */
    if (c->sched)
        llm_sched_free(c->sched);
    c->sched = NULL;
    while (c->gens) {
        struct gen *g = c->gens;
        c->gens = g->next;
        free_gen(g);
    }
    pthread_cond_destroy(&c->jobs_cond);
    pthread_mutex_destroy(&c->jobs_lock);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

bool web_chat_model_ready(const web_chat *c)
{
    return c && c->sched != NULL;
}

int web_chat_page_context(web_chat *c, db *d, int64_t user_id, json_t *ctx, struct echo_err *err)
{
    struct db_message *hist = NULL;
    size_t n = 0;
    /* The page shows more of the discussion than the model sees. */
    if (db_message_history(d, user_id, 500, &hist, &n, err) != DB_OK)
        return -1;
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        const struct db_message *m = &hist[i];
        json_t *o = json_object();
        json_object_set_new(o, "id", json_integer(m->id));
        json_object_set_new(o, "role", json_string(m->role));
        json_object_set_new(o, "content", json_string(m->content ? m->content : ""));
        json_object_set_new(o, "created_at", json_integer(m->created_at));
        if (m->finish_reason)
            json_object_set_new(o, "finish_reason", json_string(m->finish_reason));
        if (m->completion_tokens >= 0)
            json_object_set_new(o, "completion_tokens", json_integer(m->completion_tokens));
        if (m->tokens_per_second >= 0)
            json_object_set_new(o, "tokens_per_second",
                                json_real((double)(int)(m->tokens_per_second * 10 + 0.5) / 10.0));
        json_array_append_new(arr, o);
    }
    db_message_array_free(hist, n);
    json_object_set_new(ctx, "messages", arr);

    json_t *model = json_object();
    json_object_set_new(model, "ready", json_boolean(c->sched != NULL));
    json_object_set_new(model, "name",
                        json_string(c->model ? llm_model_get_info(c->model)->name : ""));
    json_object_set_new(model, "install_command", json_string("make model"));
    json_object_set_new(ctx, "model", model);
    json_object_set_new(ctx, "max_message_chars", json_integer(CHAT_MAX_CHARS));
    return 0;
}

int web_chat_clear(web_chat *c, db *d, int64_t user_id, int64_t *deleted, struct echo_err *err)
{
    /* A running answer belongs to the discussion being cleared: stop it and
     * store nothing of it. */
    pthread_mutex_lock(&c->lock);
    struct gen *g = find_gen(c, user_id);
    if (g) {
        g->discard = true;
        cancel_locked(c, g);
    }
    pthread_mutex_unlock(&c->lock);
    if (db_message_clear_user(d, user_id, deleted, err) != DB_OK)
        return -1;
    if (c->sched) {
        char conv[48];
        snprintf(conv, sizeof(conv), "user:%lld", (long long)user_id);
        llm_sched_forget(c->sched, conv);
    }
    return 0;
}

/* ---- the web area ---- */

/* One chat per process, like the accounts area's pool: the areas of the
 * site are registered once by web_app_new and torn down by web_app_free. */
static web_chat *the_chat;
static llm_model *the_model;

void web_chat_home(web_app *app, http_request *req, http_response *res)
{
    json_t *ctx = web_app_context(app, req, "home");
    struct echo_err err = {0};
    db *d = web_db(req);
    if (!d || web_chat_page_context(the_chat, d, web_user(req)->id, ctx, &err) != 0) {
        log_error("chat page: %s", d ? err.msg : "no database connection");
        json_decref(ctx);
        http_response_error(res, HTTP_STATUS_INTERNAL_ERROR, NULL);
        return;
    }
    web_app_render(app, req, res, HTTP_STATUS_OK, "chat.html", ctx);
    json_decref(ctx);
}

void web_chat_forget_user(int64_t user_id)
{
    web_chat *c = the_chat;
    if (!c) return;
    pthread_mutex_lock(&c->lock);
    struct gen *g = find_gen(c, user_id);
    if (g) {
        g->discard = true;
        cancel_locked(c, g);
    }
    pthread_mutex_unlock(&c->lock);
    if (c->sched) {
        char conv[48];
        snprintf(conv, sizeof(conv), "user:%lld", (long long)user_id);
        llm_sched_forget(c->sched, conv);
    }
}

static void clear_discussion(http_request *req, http_response *res, void *arg)
{
    (void)arg;
    if (!web_login_required(req, res))
        return;
    struct echo_err err = {0};
    int64_t deleted = 0;
    db *d = web_db(req);
    if (!d || web_chat_clear(the_chat, d, web_user(req)->id, &deleted, &err) != 0) {
        log_error("clear discussion: %s", d ? err.msg : "no database connection");
        web_flash(req, res, "error", "The discussion could not be cleared; please try again.");
    } else {
        web_flash(req, res, "success",
                  deleted ? "Discussion cleared." : "There was nothing to clear.");
    }
    http_response_redirect(res, HTTP_STATUS_SEE_OTHER, "/");
}

int web_chat_register(web_app *app, struct echo_err *err)
{
    const config *cfg = web_app_config(app);
    const char *path = config_get(cfg, "ECHO_MODEL");
    struct web_chat_deps deps = {0};
    deps.cfg = cfg;
    deps.pool = web_db_pool();
    deps.sio = web_app_realtime(app);
    if (!deps.pool || !deps.sio) {
        echo_err_set(err, "chat: the accounts area and Socket.IO must be set up first");
        return -1;
    }
    struct echo_err merr = {0};
    struct llm_load_opts lo = {0};
    lo.max_context = (int)config_get_int(cfg, "ECHO_CONTEXT");
    if (access(path, R_OK) != 0) {
        log_warn("no model at %s: the chat page will say how to install one (make model)", path);
    } else if (!(the_model = llm_model_load(path, &lo, &merr))) {
        log_error("the model %s cannot be loaded: %s", path, merr.msg);
    } else {
        struct llm_sched_opts so = {0};
        so.n_threads = (int)config_get_int(cfg, "ECHO_MODEL_THREADS");
        so.n_ctx = lo.max_context;
        deps.sched = llm_sched_new(the_model, &so, &merr);
        if (!deps.sched) {
            log_error("the engine cannot start: %s", merr.msg);
        } else {
            const struct llm_model_info *mi = llm_model_get_info(the_model);
            deps.model = the_model;
            log_info("model %s loaded: %s, %d layers, %s weights, context %d", path, mi->name,
                     mi->n_layers, mi->weight_type, mi->n_ctx);
        }
    }
    the_chat = web_chat_new(&deps, err);
    if (!the_chat) {
        if (deps.sched)
            llm_sched_free(deps.sched);
        goto fail;
    }
    if (http_router_add(web_app_router(app), HTTP_POST, "/clear_discussion", clear_discussion,
                        app, err) != 0)
        goto fail;
    return 0;
fail:
    web_chat_unregister(app);
    return -1;
}

void web_chat_unregister(web_app *app)
{
    (void)app;
    web_chat_free(the_chat);
    the_chat = NULL;
    llm_model_free(the_model);
    the_model = NULL;
}
