/*
 * test_scheduler.c - the request queue the web layer uses, on a tiny random
 * model: every accepted request ends exactly once; the streamed pieces of a
 * request add up to what llm_generate produces for the same prompt and seed;
 * several requests run interleaved and a late one does not wait for the
 * others; continuous batching: requests of different lengths and sampling
 * settings batched together give exactly their solo text, a request joining
 * the running batch with a long prompt does not stall the decoders, and a
 * cancelled member of a batch stops within a step while the others go on; cancellation of queued and running requests; a conversation's
 * second turn reuses its KV session, and forget/the memory budget drop
 * sessions; requests of one conversation run in order; bad requests are
 * refused at submit (too long, bad ids, full queue); messages are rendered
 * with ChatML; freeing the scheduler ends everything as cancelled; and
 * submissions from many threads at once.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "llm/llm.h"

static char dir[256], path[512];
static llm_model *model;

#define MAX_REQ 256

struct rec {
    uint64_t id;
    struct strbuf text;
    int pieces;
    int ends;
    struct llm_gen_stats st;
    uint64_t first_piece_ns, end_ns;
};

struct box {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct rec recs[MAX_REQ];
    int n_ended;
    bool bad_utf8;
};

static struct rec *find(struct box *b, uint64_t id)
{
    for (int i = 0; i < MAX_REQ; i++)
        if (b->recs[i].id == id) return &b->recs[i];
    return NULL;
}

static void on_piece(void *user, uint64_t id, const char *text, size_t len)
{
    struct box *b = user;
    pthread_mutex_lock(&b->mu);
    struct rec *r = find(b, id);
    if (!r) { /* the id is known to the submitter only after submit returns */
        r = find(b, 0);
        r->id = id;
        strbuf_init(&r->text);
    }
    if (!utf8_valid(text, len)) b->bad_utf8 = true;
    if (!r->pieces) r->first_piece_ns = time_mono_ns();
    strbuf_append(&r->text, text, len);
    r->pieces++;
    pthread_mutex_unlock(&b->mu);
}

static void on_end(void *user, uint64_t id, const struct llm_gen_stats *st)
{
    struct box *b = user;
    pthread_mutex_lock(&b->mu);
    struct rec *r = find(b, id);
    if (!r) {
        r = find(b, 0);
        r->id = id;
        strbuf_init(&r->text);
    }
    r->ends++;
    r->st = *st;
    r->end_ns = time_mono_ns();
    b->n_ended++;
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
}

static struct box *box_new(void)
{
    struct box *b = calloc(1, sizeof(*b));
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->cv, NULL);
    return b;
}

static void box_free(struct box *b)
{
    for (int i = 0; i < MAX_REQ; i++)
        strbuf_deinit(&b->recs[i].text);
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->cv);
    free(b);
}

static void wait_ends(struct box *b, int n)
{
    pthread_mutex_lock(&b->mu);
    while (b->n_ended < n)
        pthread_cond_wait(&b->cv, &b->mu);
    pthread_mutex_unlock(&b->mu);
}

/* 1 when the request has ended (without asserting it exists). */
static int rec_of_maybe_ended(struct box *b, uint64_t id)
{
    pthread_mutex_lock(&b->mu);
    struct rec *r = find(b, id);
    int ended = r ? r->ends : 0;
    pthread_mutex_unlock(&b->mu);
    return ended;
}

static struct rec *rec_of(struct box *b, uint64_t id)
{
    pthread_mutex_lock(&b->mu);
    struct rec *r = find(b, id);
    pthread_mutex_unlock(&b->mu);
    assert_non_null(r);
    return r;
}

static int setup(void **state)
{
    (void)state;
    if (access("/usr/bin/python3", X_OK) != 0) {
        print_message("skipping: /usr/bin/python3 is needed to write the test model\n");
        return -1;
    }
    snprintf(dir, sizeof(dir), "/tmp/echo-test-sched-XXXXXX");
    if (!mkdtemp(dir)) return -1;
    snprintf(path, sizeof(path), "%s/q8.gguf", dir);
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "/usr/bin/python3 tools/make_test_model.py gguf %s --type q8_0 --vocab synthetic "
             "2>/dev/null",
             path);
    if (system(cmd) != 0) return -1;
    model = llm_model_load(path, NULL, NULL);
    return model ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    llm_model_free(model);
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) ? -1 : 0;
}

static void ids_for(int32_t *ids, int n, int seed)
{
    int V = llm_model_get_info(model)->n_vocab - 8; /* stay off the special tokens */
    for (int i = 0; i < n; i++)
        ids[i] = (int32_t)((i * 31 + seed * 17 + 3) % V);
}

static struct llm_request request(const char *conv, const int32_t *ids, size_t n, int max_tokens,
                                  uint64_t seed)
{
    struct llm_request r = {.conversation = conv, .ids = ids, .n_ids = n};
    llm_gen_params_default(&r.params, model);
    r.params.max_tokens = max_tokens;
    r.params.ignore_stop = true;
    r.params.sampling.seed = seed;
    return r;
}

static uint64_t submit(llm_sched *s, const struct llm_request *r, struct box *b)
{
    struct llm_sink sink = {on_piece, on_end, b};
    uint64_t id = 0;
    struct echo_err err;
    echo_err_clear(&err);
    int rc = llm_sched_submit(s, r, &sink, &id, &err);
    if (rc) print_error("submit: %s\n", err.msg);
    assert_int_equal(rc, 0);
    assert_true(id > 0);
    return id;
}

static int append(void *user, const char *text, size_t len)
{
    strbuf_append(user, text, len);
    return 0;
}

/* What llm_generate gives for the same prompt and parameters. */
static char *direct(const int32_t *ids, size_t n, const struct llm_gen_params *p)
{
    llm_engine *e = llm_engine_new(model, 1, 0, NULL);
    llm_session *s = llm_session_new(model, NULL, NULL);
    struct strbuf sb;
    strbuf_init(&sb);
    struct llm_callbacks cb = {.on_piece = append, .user = &sb};
    struct llm_gen_stats st;
    assert_int_equal(llm_generate(s, e, ids, n, p, &cb, &st, NULL), 0);
    llm_session_free(s);
    llm_engine_free(e);
    return strbuf_steal(&sb);
}

static void test_basic(void **state)
{
    (void)state;
    struct llm_sched_opts o = {.n_threads = 2};
    llm_sched *s = llm_sched_new(model, &o, NULL);
    assert_non_null(s);
    struct box *b = box_new();
    int32_t ids[3][20];
    uint64_t id[3];
    for (int i = 0; i < 3; i++) {
        ids_for(ids[i], 20, i);
        struct llm_request r = request(NULL, ids[i], 20, 12, 100 + (uint64_t)i);
        id[i] = submit(s, &r, b);
    }
    wait_ends(b, 3);
    for (int i = 0; i < 3; i++) {
        struct rec *r = rec_of(b, id[i]);
        assert_int_equal(r->ends, 1);
        assert_int_equal(r->st.finish, LLM_FINISH_LENGTH);
        assert_int_equal(r->st.completion_tokens, 12);
        assert_int_equal(r->st.prompt_tokens, 20);
        /* Interleaving does not change a request's text. */
        struct llm_request q = request(NULL, ids[i], 20, 12, 100 + (uint64_t)i);
        char *want = direct(ids[i], 20, &q.params);
        assert_string_equal(strbuf_cstr(&r->text), want);
        free(want);
    }
    assert_false(b->bad_utf8);
    struct llm_sched_stats st;
    llm_sched_get_stats(s, &st);
    assert_int_equal(st.completed, 3);
    assert_int_equal(st.queued + st.active, 0);
    assert_int_equal(st.sessions, 0); /* no conversation key: nothing kept */
    llm_sched_free(s);
    box_free(b);
}

static void test_interleaving(void **state)
{
    (void)state;
    struct llm_sched_opts o = {.n_threads = 1, .max_active = 4};
    llm_sched *s = llm_sched_new(model, &o, NULL);
    struct box *b = box_new();
    int32_t ids[20];
    ids_for(ids, 20, 9);
    /* A long request, then a short one: the short one must not wait for the
     * long one to finish. */
    struct llm_request lr = request(NULL, ids, 20, 400, 1);
    uint64_t long_id = submit(s, &lr, b);
    struct llm_request sr = request(NULL, ids, 10, 3, 2);
    uint64_t short_id = submit(s, &sr, b);
    wait_ends(b, 2);
    struct rec *l = rec_of(b, long_id), *sh = rec_of(b, short_id);
    assert_int_equal(l->st.completion_tokens, 400);
    assert_true(sh->end_ns < l->end_ns);
    llm_sched_free(s);
    box_free(b);
}

static int pieces_of(struct box *b, uint64_t id)
{
    pthread_mutex_lock(&b->mu);
    struct rec *x = find(b, id);
    int p = x ? x->pieces : 0;
    pthread_mutex_unlock(&b->mu);
    return p;
}

static void test_batching(void **state)
{
    (void)state;
    struct llm_sched_opts o = {.n_threads = 2, .max_active = 6};
    llm_sched *s = llm_sched_new(model, &o, NULL);
    assert_non_null(s);
    struct box *b = box_new();
    enum { N = 4 };
    static const int len[N] = {7, 20, 33, 64}, max_tok[N] = {30, 5, 60, 400};
    int32_t ids[N][64], big[300];
    uint64_t id[N];
    struct llm_request req[N];
    for (int i = 0; i < N; i++) {
        ids_for(ids[i], len[i], 20 + i);
        req[i] = request(NULL, ids[i], (size_t)len[i], max_tok[i], 500 + (uint64_t)i);
        if (i == 0) req[i].params.sampling.temperature = 0; /* greedy beside sampled ones */
        if (i == 2) req[i].params.sampling.top_k = 3;
        id[i] = submit(s, &req[i], b);
    }
    /* Once the long one decodes, a request with a 300-token prompt joins:
     * its prompt runs in bounded chunks while the others keep decoding. */
    while (pieces_of(b, id[3]) < 3)
        usleep(1000);
    ids_for(big, 300, 99);
    struct llm_request bigr = request(NULL, big, 300, 4, 7);
    int before = pieces_of(b, id[3]);
    uint64_t big_id = submit(s, &bigr, b);
    while (pieces_of(b, big_id) == 0 && rec_of_maybe_ended(b, big_id) == 0)
        usleep(500);
    int during = pieces_of(b, id[3]) - before;
    /* 300 prompt tokens take at least 5 steps of 64 while others decode. */
    assert_true(during >= 3);
    wait_ends(b, N + 1);
    for (int i = 0; i < N; i++) {
        struct rec *r = rec_of(b, id[i]);
        assert_int_equal(r->ends, 1);
        assert_int_equal(r->st.completion_tokens, max_tok[i]);
        char *want = direct(ids[i], (size_t)len[i], &req[i].params);
        assert_string_equal(strbuf_cstr(&r->text), want);
        free(want);
    }
    char *want = direct(big, 300, &bigr.params);
    assert_string_equal(strbuf_cstr(&rec_of(b, big_id)->text), want);
    free(want);

    /* Cancel one member of a running batch: it stops within a step (at most
     * the piece being delivered when the call came), the others finish. */
    uint64_t c[3];
    for (int i = 0; i < 3; i++) {
        struct llm_request r = request(NULL, ids[3], 64, i == 1 ? 0 : 40, 900 + (uint64_t)i);
        c[i] = submit(s, &r, b);
    }
    while (pieces_of(b, c[1]) < 5)
        usleep(500);
    int at_cancel = pieces_of(b, c[1]);
    assert_int_equal(llm_sched_cancel(s, c[1]), 0);
    wait_ends(b, N + 1 + 3);
    assert_int_equal(rec_of(b, c[1])->st.finish, LLM_FINISH_CANCELLED);
    assert_true(rec_of(b, c[1])->pieces - at_cancel <= 2);
    assert_int_equal(rec_of(b, c[0])->st.completion_tokens, 40);
    assert_int_equal(rec_of(b, c[2])->st.completion_tokens, 40);
    assert_int_equal(rec_of(b, c[2])->st.finish, LLM_FINISH_LENGTH);
    llm_sched_free(s);
    box_free(b);
}

static void test_cancel(void **state)
{
    (void)state;
    struct llm_sched_opts o = {.n_threads = 1, .max_active = 1};
    llm_sched *s = llm_sched_new(model, &o, NULL);
    struct box *b = box_new();
    int32_t ids[16];
    ids_for(ids, 16, 5);
    struct llm_request r = request(NULL, ids, 16, 0, 3); /* until the context ends */
    uint64_t running = submit(s, &r, b);
    uint64_t queued = submit(s, &r, b);
    /* Wait until the first has produced something, then cancel both. */
    for (;;) {
        pthread_mutex_lock(&b->mu);
        struct rec *x = find(b, running);
        int p = x ? x->pieces : 0;
        pthread_mutex_unlock(&b->mu);
        if (p > 2) break;
        usleep(1000);
    }
    assert_int_equal(llm_sched_cancel(s, queued), 0);
    assert_int_equal(llm_sched_cancel(s, running), 0);
    wait_ends(b, 2);
    struct rec *x = rec_of(b, running), *y = rec_of(b, queued);
    assert_int_equal(x->st.finish, LLM_FINISH_CANCELLED);
    assert_int_equal(y->st.finish, LLM_FINISH_CANCELLED);
    assert_int_equal(y->pieces, 0);
    assert_true(x->st.completion_tokens < 1000);
    assert_int_equal(x->ends, 1);
    assert_int_equal(y->ends, 1);
    assert_int_equal(llm_sched_cancel(s, running), LLM_ERR_NOT_FOUND);
    assert_int_equal(llm_sched_cancel(s, 123456), LLM_ERR_NOT_FOUND);
    llm_sched_free(s);
    box_free(b);
}

static void test_conversations(void **state)
{
    (void)state;
    struct llm_sched_opts o = {.n_threads = 2};
    llm_sched *s = llm_sched_new(model, &o, NULL);
    struct box *b = box_new();
    int32_t ids[60];
    ids_for(ids, 60, 7);
    struct llm_request r1 = request("user:1", ids, 30, 4, 1);
    uint64_t a = submit(s, &r1, b);
    /* The second turn of the same conversation queued at once: it waits
     * for the first and then reuses its cache. */
    struct llm_request r2 = request("user:1", ids, 60, 4, 1);
    uint64_t c = submit(s, &r2, b);
    wait_ends(b, 2);
    assert_int_equal(rec_of(b, a)->st.reused_tokens, 0);
    assert_int_equal(rec_of(b, c)->st.reused_tokens, 30);
    assert_true(rec_of(b, a)->end_ns <= rec_of(b, c)->end_ns);
    struct llm_sched_stats st;
    llm_sched_get_stats(s, &st);
    assert_int_equal(st.sessions, 1);
    assert_true(st.kv_bytes > 0);
    /* Another conversation has its own session. */
    struct llm_request r3 = request("user:2", ids, 30, 2, 1);
    uint64_t d = submit(s, &r3, b);
    wait_ends(b, 3);
    assert_int_equal(rec_of(b, d)->st.reused_tokens, 0);
    llm_sched_get_stats(s, &st);
    assert_int_equal(st.sessions, 2);
    /* forget drops it: the next turn starts from nothing. */
    llm_sched_forget(s, "user:1");
    llm_sched_forget(s, "nobody");
    llm_sched_get_stats(s, &st);
    assert_int_equal(st.sessions, 1);
    uint64_t e = submit(s, &r2, b);
    wait_ends(b, 4);
    assert_int_equal(rec_of(b, e)->st.reused_tokens, 0);
    llm_sched_free(s);
    box_free(b);
}

/* A chat's second turn rendered from messages (history + the answer as text
 * + a new message) reuses the conversation's cached history: only the new
 * part is computed before the first token. */
static void test_second_turn(void **state)
{
    (void)state;
    struct llm_sched_opts o = {.n_threads = 2, .n_ctx = 1024};
    llm_sched *s = llm_sched_new(model, &o, NULL);
    struct box *b = box_new();
    char history[1200];
    size_t hl = 0;
    for (int i = 0; i < 40; i++)
        hl += (size_t)snprintf(history + hl, sizeof(history) - hl, "line %d of the story. ", i);
    struct chat_message t1[1] = {{CHAT_ROLE_USER, history, 0}};
    struct llm_request r = {.conversation = "chat:7", .messages = t1, .n_messages = 1};
    llm_gen_params_default(&r.params, model);
    r.params.max_tokens = 12;
    r.params.sampling.temperature = 0;
    uint64_t a = submit(s, &r, b);
    wait_ends(b, 1);
    struct rec *x = rec_of(b, a);
    int first_prompt = x->st.prompt_tokens;
    assert_true(first_prompt > 100);
    struct chat_message t2[3] = {
        {CHAT_ROLE_USER, history, 0},
        {CHAT_ROLE_ASSISTANT, strbuf_cstr(&x->text), 0},
        {CHAT_ROLE_USER, "and then what happened next?", 0},
    };
    r.messages = t2;
    r.n_messages = 3;
    uint64_t c = submit(s, &r, b);
    wait_ends(b, 2);
    struct rec *y = rec_of(b, c);
    assert_int_equal(y->ends, 1);
    /* At least the first turn's whole prompt comes from the cache (the
     * answer's tokens too when its text tokenizes back to the same ids). */
    assert_true(y->st.reused_tokens >= first_prompt);
    assert_true(y->st.prompt_tokens > y->st.reused_tokens);
    llm_sched_free(s);
    box_free(b);
}

static void test_budget(void **state)
{
    (void)state;
    /* A budget of one byte keeps no idle session. */
    struct llm_sched_opts o = {.n_threads = 1, .kv_budget_bytes = 1};
    llm_sched *s = llm_sched_new(model, &o, NULL);
    struct box *b = box_new();
    int32_t ids[30];
    ids_for(ids, 30, 2);
    char key[32];
    for (int i = 0; i < 4; i++) {
        snprintf(key, sizeof(key), "c%d", i);
        struct llm_request r = request(key, ids, 30, 2, 1);
        submit(s, &r, b);
    }
    wait_ends(b, 4);
    struct llm_sched_stats st;
    llm_sched_get_stats(s, &st);
    assert_int_equal(st.sessions, 0);
    llm_sched_free(s);
    box_free(b);

    /* A roomy budget keeps them all. */
    o.kv_budget_bytes = (size_t)1 << 30;
    s = llm_sched_new(model, &o, NULL);
    b = box_new();
    for (int i = 0; i < 4; i++) {
        snprintf(key, sizeof(key), "c%d", i);
        struct llm_request r = request(key, ids, 30, 2, 1);
        submit(s, &r, b);
    }
    wait_ends(b, 4);
    llm_sched_get_stats(s, &st);
    assert_int_equal(st.sessions, 4);
    llm_sched_free(s);
    box_free(b);
}

static void test_refused(void **state)
{
    (void)state;
    struct llm_sched_opts o = {.n_threads = 1, .n_ctx = 64, .max_queue = 1, .max_active = 1};
    llm_sched *s = llm_sched_new(model, &o, NULL);
    struct box *b = box_new();
    struct llm_sink sink = {on_piece, on_end, b};
    int32_t ids[100];
    ids_for(ids, 100, 1);
    uint64_t id = 0;
    struct echo_err err;
    struct llm_request r = request(NULL, ids, 65, 4, 1);
    echo_err_clear(&err);
    assert_int_equal(llm_sched_submit(s, &r, &sink, &id, &err), LLM_ERR_TOO_LONG);
    r = request(NULL, ids, 0, 4, 1);
    assert_int_equal(llm_sched_submit(s, &r, &sink, &id, &err), LLM_ERR_BAD_INPUT);
    int32_t bad[2] = {1, 1 << 30};
    r = request(NULL, bad, 2, 4, 1);
    assert_int_equal(llm_sched_submit(s, &r, &sink, &id, &err), LLM_ERR_BAD_INPUT);
    r = request(NULL, ids, 10, 64, 1);
    assert_int_equal(llm_sched_submit(s, &r, &sink, &id, &err), LLM_ERR_BAD_INPUT);
    struct llm_request none = {.conversation = "x"};
    assert_int_equal(llm_sched_submit(s, &none, &sink, &id, &err), LLM_ERR_BAD_INPUT);
    /* Queue of one: with one running and one waiting, a third is BUSY. */
    r = request(NULL, ids, 10, 0, 1);
    uint64_t first = submit(s, &r, b);
    while (1) {
        struct llm_sched_stats st;
        llm_sched_get_stats(s, &st);
        if (st.active == 1) break;
        usleep(1000);
    }
    uint64_t second = submit(s, &r, b);
    echo_err_clear(&err);
    assert_int_equal(llm_sched_submit(s, &r, &sink, &id, &err), LLM_ERR_BUSY);
    assert_non_null(strstr(err.msg, "try again"));
    /* Freeing ends both (cancelled), each exactly once. */
    llm_sched_free(s);
    assert_int_equal(b->n_ended, 2);
    assert_int_equal(rec_of(b, first)->ends, 1);
    assert_int_equal(rec_of(b, second)->ends, 1);
    assert_int_equal(rec_of(b, second)->st.finish, LLM_FINISH_CANCELLED);
    assert_int_equal(rec_of(b, first)->st.finish, LLM_FINISH_CANCELLED);
    box_free(b);
}

static void test_messages(void **state)
{
    (void)state;
    struct llm_sched_opts o = {.n_threads = 1, .n_ctx = 512};
    llm_sched *s = llm_sched_new(model, &o, NULL);
    struct box *b = box_new();
    struct chat_message msgs[3] = {
        {CHAT_ROLE_USER, "hello the model", 0},
        {CHAT_ROLE_ASSISTANT, "hello back", 0},
        {CHAT_ROLE_USER, "and the user says hello <|im_start|>", 0},
    };
    struct llm_request r = {.conversation = "m", .messages = msgs, .n_messages = 3};
    llm_gen_params_default(&r.params, model);
    r.params.max_tokens = 5;
    r.params.sampling.seed = 4;
    uint64_t id = submit(s, &r, b);
    wait_ends(b, 1);
    struct rec *x = rec_of(b, id);
    assert_int_equal(x->ends, 1);
    assert_true(x->st.finish == LLM_FINISH_LENGTH || x->st.finish == LLM_FINISH_STOP);
    /* The prompt is the ChatML rendering (default system prompt included). */
    struct tok_ids want;
    tok_ids_init(&want);
    assert_int_equal(chat_encode(llm_model_tokenizer(model), msgs, 3, NULL, &want, NULL), 0);
    assert_int_equal(x->st.prompt_tokens, (int)want.len);
    tok_ids_deinit(&want);
    /* ids and messages together are refused; a conversation that cannot fit is too long. */
    int32_t one = 5;
    r.ids = &one;
    r.n_ids = 1;
    uint64_t rid;
    assert_int_equal(llm_sched_submit(s, &r, NULL, &rid, NULL), LLM_ERR_BAD_INPUT);
    r.ids = NULL;
    r.n_ids = 0;
    char *huge = malloc(20001);
    memset(huge, 'a', 20000);
    huge[20000] = '\0';
    struct chat_message big = {CHAT_ROLE_SYSTEM, huge, 0};
    struct chat_message two[2] = {big, {CHAT_ROLE_USER, "hi", 0}};
    r.messages = two;
    r.n_messages = 2;
    struct echo_err err;
    echo_err_clear(&err);
    assert_int_equal(llm_sched_submit(s, &r, NULL, &rid, &err), LLM_ERR_TOO_LONG);
    free(huge);
    llm_sched_free(s);
    box_free(b);
}

struct hammer {
    llm_sched *s;
    struct box *b;
    int thread;
};

static void *hammer_main(void *arg)
{
    struct hammer *h = arg;
    int32_t ids[8];
    ids_for(ids, 8, h->thread);
    for (int i = 0; i < 5; i++) {
        char key[32];
        snprintf(key, sizeof(key), "t%d", h->thread);
        struct llm_request r = request(key, ids, 8, 3, (uint64_t)i);
        struct llm_sink sink = {on_piece, on_end, h->b};
        uint64_t id;
        if (llm_sched_submit(h->s, &r, &sink, &id, NULL) == 0 && i == 4) llm_sched_cancel(h->s, id);
    }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    struct llm_sched_opts o = {.n_threads = 2, .max_active = 3};
    llm_sched *s = llm_sched_new(model, &o, NULL);
    struct box *b = box_new();
    pthread_t t[6];
    struct hammer h[6];
    for (int i = 0; i < 6; i++) {
        h[i] = (struct hammer){s, b, i};
        pthread_create(&t[i], NULL, hammer_main, &h[i]);
    }
    for (int i = 0; i < 6; i++)
        pthread_join(t[i], NULL);
    wait_ends(b, 30);
    pthread_mutex_lock(&b->mu);
    for (int i = 0; i < MAX_REQ; i++)
        if (b->recs[i].id) assert_int_equal(b->recs[i].ends, 1);
    pthread_mutex_unlock(&b->mu);
    llm_sched_free(s);
    assert_int_equal(b->n_ended, 30);
    box_free(b);
}

static void test_opts_from_config(void **state)
{
    (void)state;
    config *c = config_new();
    assert_int_equal(config_set(c, "ECHO_CONTEXT", "2048", CONFIG_FLAG, NULL), 0);
    assert_int_equal(config_set(c, "ECHO_MODEL_THREADS", "3", CONFIG_FLAG, NULL), 0);
    assert_int_equal(config_set(c, "ECHO_KV_CACHE_MB", "64", CONFIG_FLAG, NULL), 0);
    struct llm_load_opts lo = {.dtype = LLM_DTYPE_Q4_0};
    struct llm_sched_opts so = {.max_active = 2};
    llm_opts_from_config(c, &lo, &so);
    assert_int_equal(lo.max_context, 2048);
    assert_int_equal(lo.dtype, LLM_DTYPE_Q4_0);
    assert_int_equal(so.n_ctx, 2048);
    assert_int_equal(so.n_threads, 3);
    assert_int_equal(so.kv_budget_bytes, (size_t)64 << 20);
    assert_int_equal(so.max_active, 2);
    llm_opts_from_config(c, NULL, NULL);
    config_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic),
        cmocka_unit_test(test_interleaving),
        cmocka_unit_test(test_batching),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_conversations),
        cmocka_unit_test(test_second_turn),
        cmocka_unit_test(test_budget),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_messages),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_opts_from_config),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
