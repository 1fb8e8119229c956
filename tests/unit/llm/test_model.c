/*
 * test_model.c - loading, the forward pass through the KV cache, and
 * generation, on tiny random Qwen2 models written by tools/make_test_model.py
 * (synthetic vocabulary, so they are small and quick):
 *   - hyperparameters and the context cap;
 *   - the same logits whatever the path: one prompt, every position at once,
 *     a prompt in pieces (prefix reuse), a divergent prompt, tiny ubatches,
 *     F16 vs F32 KV cache;
 *   - a batched forward pass of several sequences (decode tokens and prompt
 *     chunks at different positions, F16 and F32 caches) gives each the
 *     logits it gets alone; batches that break the rules are refused;
 *   - bad input: empty prompts, ids out of range, prompts longer than the
 *     context, bad options;
 *   - generation: greedy and seeded determinism, max_tokens, a full context,
 *     cancellation from either callback, extra stop ids, the text pieces
 *     being whole UTF-8 and adding up to the decoded ids;
 *   - Hugging Face folders (sharded, untied) converted to f32/bf16/q8_0;
 *   - corrupted files refused with a message naming the problem.
 * The numeric match against the independent numpy reference is in
 * tests/e2e/test_engine_logits.py.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "llm/llm.h"
#include "llm/model.h"

static char dir[256];
static char path_f32[512], path_q8[512], path_hf[512], path_hf_sharded[512];
static llm_model *m32;
static llm_engine *eng;

static int run(const char *cmd)
{
    int rc = system(cmd);
    if (rc != 0) print_error("command failed (%d): %s\n", rc, cmd);
    return rc;
}

static int setup(void **state)
{
    (void)state;
    if (access("/usr/bin/python3", X_OK) != 0) {
        print_message("skipping: /usr/bin/python3 is needed to write the test models\n");
        return -1;
    }
    snprintf(dir, sizeof(dir), "/tmp/echo-test-model-XXXXXX");
    if (!mkdtemp(dir)) return -1;
    snprintf(path_f32, sizeof(path_f32), "%s/f32.gguf", dir);
    snprintf(path_q8, sizeof(path_q8), "%s/q8.gguf", dir);
    snprintf(path_hf, sizeof(path_hf), "%s/hf", dir);
    snprintf(path_hf_sharded, sizeof(path_hf_sharded), "%s/hf-sharded", dir);
    char cmd[4096];
    snprintf(cmd, sizeof(cmd),
             "/usr/bin/python3 tools/make_test_model.py gguf %s --type f32 --vocab synthetic "
             "2>/dev/null && "
             "/usr/bin/python3 tools/make_test_model.py gguf %s --type q8_0 --vocab synthetic "
             "2>/dev/null && "
             "/usr/bin/python3 tools/make_test_model.py hf %s --vocab synthetic 2>/dev/null && "
             "/usr/bin/python3 tools/make_test_model.py hf %s --vocab synthetic --shards 3 "
             "--untied 2>/dev/null",
             path_f32, path_q8, path_hf, path_hf_sharded);
    if (run(cmd) != 0) return -1;
    struct echo_err err;
    echo_err_clear(&err);
    m32 = llm_model_load(path_f32, NULL, &err);
    if (!m32) {
        print_error("load: %s\n", err.msg);
        return -1;
    }
    eng = llm_engine_new(m32, 2, 0, &err);
    return eng ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    llm_engine_free(eng);
    llm_model_free(m32);
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return run(cmd) ? -1 : 0;
}

static float max_diff(const float *a, const float *b, int n)
{
    float d = 0;
    for (int i = 0; i < n; i++)
        d = fmaxf(d, fabsf(a[i] - b[i]));
    return d;
}

static void prompt_ids(int32_t *ids, int n, int vocab, int seed)
{
    for (int i = 0; i < n; i++)
        ids[i] = (int32_t)((i * 37 + seed * 101 + 5) % vocab);
}

static llm_session *session(const llm_model *m, int n_ctx, enum llm_kv_type kv)
{
    struct llm_session_opts o = {.n_ctx = n_ctx, .kv_type = kv};
    struct echo_err err;
    echo_err_clear(&err);
    llm_session *s = llm_session_new(m, &o, &err);
    assert_non_null(s);
    return s;
}

/* ---- loading ---------------------------------------------------------------------- */

static void test_info(void **state)
{
    (void)state;
    const struct llm_model_info *in = llm_model_get_info(m32);
    assert_string_equal(in->arch, "qwen2");
    assert_string_equal(in->format, "gguf");
    assert_string_equal(in->weight_type, "f32");
    assert_int_equal(in->hidden, 64);
    assert_int_equal(in->n_layers, 2);
    assert_int_equal(in->n_heads, 4);
    assert_int_equal(in->n_kv_heads, 2);
    assert_int_equal(in->head_dim, 16);
    assert_int_equal(in->ffn, 160);
    assert_int_equal(in->n_ctx, 1024);
    assert_int_equal(in->n_ctx_train, 1024);
    assert_true(in->tied);
    assert_true(in->rope_theta == 1e6f);
    assert_int_equal(in->n_vocab, tok_vocab_size(llm_model_tokenizer(m32)));
    assert_true(in->weights_bytes > 0 && in->file_bytes > in->weights_bytes / 2);
    assert_true(llm_model_bytes_per_token(m32) >= in->weights_bytes);
    const tokenizer *t = llm_model_tokenizer(m32);
    assert_true(llm_model_is_stop(m32, tok_find(t, "<|im_end|>")));
    assert_true(llm_model_is_stop(m32, tok_find(t, "<|endoftext|>")));
    assert_false(llm_model_is_stop(m32, 5));
    /* Sampling defaults from the GGUF's general.sampling.* keys. */
    const struct llm_sampling *d = llm_model_sampling(m32);
    assert_true(fabsf(d->temperature - 0.7f) < 1e-6f);
    assert_int_equal(d->top_k, 20);

    struct llm_load_opts o = {.max_context = 100};
    struct echo_err err;
    echo_err_clear(&err);
    llm_model *capped = llm_model_load(path_q8, &o, &err);
    assert_non_null(capped);
    assert_int_equal(llm_model_get_info(capped)->n_ctx, 100);
    assert_string_equal(llm_model_get_info(capped)->weight_type, "q8_0");
    llm_model_free(capped);

    enum llm_dtype dt;
    assert_int_equal(llm_dtype_parse("Q4_0", &dt), 0);
    assert_int_equal(dt, LLM_DTYPE_Q4_0);
    assert_int_equal(llm_dtype_parse("q5_k", &dt), -1);
}

/* ---- the forward pass ------------------------------------------------------------------ */

static void test_eval_paths(void **state)
{
    (void)state;
    enum { N = 40 };
    int V = llm_model_get_info(m32)->n_vocab;
    int32_t ids[N];
    prompt_ids(ids, N, V, 1);
    struct echo_err err;
    echo_err_clear(&err);

    llm_session *a = session(m32, 0, LLM_KV_F32);
    size_t reused = 99;
    assert_null(llm_session_logits(a));
    assert_int_equal(llm_session_eval(a, eng, ids, N, &reused, &err), 0);
    assert_int_equal(reused, 0);
    assert_int_equal(llm_session_n_cached(a), N);
    assert_memory_equal(llm_session_tokens(a), ids, sizeof(ids));
    float *ref = malloc((size_t)V * sizeof(float));
    memcpy(ref, llm_session_logits(a), (size_t)V * sizeof(float));
    for (int i = 0; i < V; i++)
        assert_true(isfinite(ref[i]));

    /* The same prompt again: nothing to compute, same logits. */
    assert_int_equal(llm_session_eval(a, eng, ids, N, &reused, &err), 0);
    assert_int_equal(reused, N);
    assert_true(max_diff(ref, llm_session_logits(a), V) == 0.0f);

    /* Every position at once; row i must equal a fresh run of ids[0..i]. */
    llm_session *b = session(m32, 0, LLM_KV_F32);
    float *all = malloc((size_t)N * V * sizeof(float));
    assert_int_equal(llm_session_eval_all(b, eng, ids, N, all, &err), 0);
    assert_true(max_diff(ref, all + (size_t)(N - 1) * V, V) < 1e-4f);
    for (int cut = 1; cut < N; cut += 13) {
        llm_session *c = session(m32, 0, LLM_KV_F32);
        assert_int_equal(llm_session_eval(c, eng, ids, (size_t)cut, NULL, &err), 0);
        assert_true(max_diff(llm_session_logits(c), all + (size_t)(cut - 1) * V, V) < 1e-4f);
        llm_session_free(c);
    }

    /* Pieces: the second eval only computes the new tokens and agrees. */
    llm_session *p = session(m32, 0, LLM_KV_F32);
    assert_int_equal(llm_session_eval(p, eng, ids, 17, &reused, &err), 0);
    assert_int_equal(llm_session_eval(p, eng, ids, 29, &reused, &err), 0);
    assert_int_equal(reused, 17);
    assert_int_equal(llm_session_eval(p, eng, ids, N, &reused, &err), 0);
    assert_int_equal(reused, 29);
    assert_true(max_diff(ref, llm_session_logits(p), V) < 1e-4f);

    /* A prompt that diverges after 10 tokens: the cache is cut back. */
    int32_t other[N];
    memcpy(other, ids, sizeof(ids));
    for (int i = 10; i < N; i++)
        other[i] = (other[i] + 3) % V;
    assert_int_equal(llm_session_eval(p, eng, other, N, &reused, &err), 0);
    assert_int_equal(reused, 10);
    llm_session *q = session(m32, 0, LLM_KV_F32);
    assert_int_equal(llm_session_eval(q, eng, other, N, NULL, &err), 0);
    assert_true(max_diff(llm_session_logits(q), llm_session_logits(p), V) < 1e-4f);
    /* A shorter prefix of what is cached: recomputes only the last position. */
    assert_int_equal(llm_session_eval(p, eng, other, 25, &reused, &err), 0);
    assert_int_equal(reused, 24);
    assert_int_equal(llm_session_n_cached(p), 25);

    /* Tiny prompt chunks give the same result. */
    llm_engine *small = llm_engine_new(m32, 1, 7, &err);
    assert_non_null(small);
    llm_session *r = session(m32, 0, LLM_KV_F32);
    assert_int_equal(llm_session_eval(r, small, ids, N, NULL, &err), 0);
    assert_true(max_diff(ref, llm_session_logits(r), V) < 1e-4f);
    llm_engine_free(small);

    /* An F16 cache is close. */
    llm_session *h = session(m32, 0, LLM_KV_F16);
    assert_int_equal(llm_session_eval(h, eng, ids, N, NULL, &err), 0);
    float d16 = max_diff(ref, llm_session_logits(h), V);
    assert_true(d16 < 0.05f);
    assert_true(llm_session_bytes(h) < llm_session_bytes(a));

    /* reset forgets everything. */
    llm_session_reset(a);
    assert_int_equal(llm_session_n_cached(a), 0);
    assert_null(llm_session_logits(a));

    llm_session_free(a);
    llm_session_free(b);
    llm_session_free(p);
    llm_session_free(q);
    llm_session_free(r);
    llm_session_free(h);
    free(all);
    free(ref);
}

/* ---- batched forward pass ------------------------------------------------------ */

/* Runs `n` sequences (prefilled with pre[i] tokens, then given new[i] more)
 * in one batched pass on model m and compares each one's logits with the
 * same tokens run alone on a twin session. */
static void batch_case(const llm_model *m, llm_engine *e, int n, const int *pre, const int *fresh,
                       const enum llm_kv_type *kv, float tol)
{
    int V = llm_model_get_info(m)->n_vocab;
    llm_session *bs[8], *solo[8];
    int32_t ids[8][96];
    float *got[8];
    struct llm_batch_seq b[8];
    struct echo_err err;
    echo_err_clear(&err);
    for (int i = 0; i < n; i++) {
        prompt_ids(ids[i], pre[i] + fresh[i], V, 10 + i);
        bs[i] = session(m, 0, kv[i]);
        solo[i] = session(m, 0, kv[i]);
        if (pre[i] > 0) {
            assert_int_equal(llm_session_eval(bs[i], e, ids[i], (size_t)pre[i], NULL, &err), 0);
            assert_int_equal(llm_session_eval(solo[i], e, ids[i], (size_t)pre[i], NULL, &err), 0);
        }
        assert_int_equal(llm_kv_reserve(&bs[i]->kv, pre[i] + fresh[i]), 0);
        got[i] = malloc((size_t)V * sizeof(float));
        b[i] = (struct llm_batch_seq){&bs[i]->kv, ids[i] + pre[i], fresh[i], pre[i], got[i], false};
    }
    assert_int_equal(qwen2_forward_batch(m, b, n, &e->sc, e->pool), 0);
    for (int i = 0; i < n; i++) {
        /* Alone: the prefix is reused, only the new tokens run. */
        size_t reused = 0;
        assert_int_equal(llm_session_eval(solo[i], e, ids[i], (size_t)(pre[i] + fresh[i]),
                                          &reused, &err),
                         0);
        assert_int_equal(reused, (size_t)pre[i]);
        float d = max_diff(got[i], llm_session_logits(solo[i]), V);
        if (!(d < tol)) {
            print_error("sequence %d (pre %d, new %d): max diff %g\n", i, pre[i], fresh[i], d);
            fail();
        }
        llm_session_free(bs[i]);
        llm_session_free(solo[i]);
        free(got[i]);
    }
}

static void test_batch(void **state)
{
    (void)state;
    struct echo_err err;
    echo_err_clear(&err);
    const enum llm_kv_type f32[4] = {LLM_KV_F32, LLM_KV_F32, LLM_KV_F32, LLM_KV_F32};
    const enum llm_kv_type f16[4] = {LLM_KV_F16, LLM_KV_F16, LLM_KV_F16, LLM_KV_F16};
    const enum llm_kv_type mixed[4] = {LLM_KV_F16, LLM_KV_F32, LLM_KV_F16, LLM_KV_F32};
    /* Three decoders at different depths and a prompt chunk joining them. */
    const int pre[4] = {5, 40, 0, 1}, fresh[4] = {1, 1, 17, 1};
    batch_case(m32, eng, 4, pre, fresh, f32, 1e-4f);
    batch_case(m32, eng, 4, pre, fresh, f16, 1e-4f);
    batch_case(m32, eng, 4, pre, fresh, mixed, 1e-4f);
    /* Two prompt chunks only; one long decoder past a tile. */
    const int pre2[2] = {0, 70}, fresh2[2] = {30, 2};
    batch_case(m32, eng, 2, pre2, fresh2, f32, 1e-4f);

    /* A quantized model: each row's activations are quantized on their own,
     * so a token's logits do not depend on its batch either. */
    llm_model *q8 = llm_model_load(path_q8, NULL, &err);
    assert_non_null(q8);
    llm_engine *e8 = llm_engine_new(q8, 2, 0, &err);
    assert_non_null(e8);
    batch_case(q8, e8, 4, pre, fresh, f16, 1e-4f);

    /* Batches that break the rules are refused, not run. */
    int V = llm_model_get_info(m32)->n_vocab;
    llm_session *a = session(m32, 0, LLM_KV_F32), *c = session(m32, 0, LLM_KV_F32);
    assert_int_equal(llm_kv_reserve(&a->kv, 8), 0);
    assert_int_equal(llm_kv_reserve(&c->kv, 8), 0);
    int32_t ids[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    float *la = malloc((size_t)8 * V * sizeof(float)), *lc = malloc((size_t)8 * V * sizeof(float));
    struct llm_batch_seq two[2] = {{&a->kv, ids, 4, 0, la, true}, {&c->kv, ids, 4, 0, lc, false}};
    assert_int_equal(qwen2_forward_batch(m32, two, 2, &eng->sc, eng->pool), -1); /* all + another */
    two[0].all = false;
    two[1].n = 0;
    assert_int_equal(qwen2_forward_batch(m32, two, 2, &eng->sc, eng->pool), -1); /* empty sequence */
    two[1].n = 4;
    two[1].pos = a->kv.cap; /* past the reserved cache */
    assert_int_equal(qwen2_forward_batch(m32, two, 2, &eng->sc, eng->pool), -1);
    assert_int_equal(qwen2_forward_batch(m32, two, 0, &eng->sc, eng->pool), -1);
    llm_engine *tiny = llm_engine_new(m32, 1, 6, &err); /* ubatch 6 < 4 + 4 rows */
    two[1].pos = 0;
    assert_int_equal(qwen2_forward_batch(m32, two, 2, &tiny->sc, tiny->pool), -1);
    assert_int_equal(qwen2_forward_batch(m32, two, 1, &tiny->sc, tiny->pool), 0);
    llm_engine_free(tiny);
    free(la);
    free(lc);
    llm_session_free(a);
    llm_session_free(c);
    llm_engine_free(e8);
    llm_model_free(q8);
}

static void test_bad_input(void **state)
{
    (void)state;
    int V = llm_model_get_info(m32)->n_vocab;
    struct echo_err err;
    llm_session *s = session(m32, 32, LLM_KV_F16);
    assert_int_equal(llm_session_n_ctx(s), 32);
    int32_t ids[40];
    prompt_ids(ids, 40, V, 2);

    echo_err_clear(&err);
    assert_int_equal(llm_session_eval(s, eng, ids, 0, NULL, &err), LLM_ERR_BAD_INPUT);
    assert_non_null(strstr(err.msg, "empty"));
    echo_err_clear(&err);
    assert_int_equal(llm_session_eval(s, eng, ids, 33, NULL, &err), LLM_ERR_TOO_LONG);
    assert_non_null(strstr(err.msg, "context"));
    int32_t bad[3] = {1, V, 2};
    echo_err_clear(&err);
    assert_int_equal(llm_session_eval(s, eng, bad, 3, NULL, &err), LLM_ERR_BAD_INPUT);
    assert_non_null(strstr(err.msg, "outside the vocabulary"));
    bad[1] = -1;
    assert_int_equal(llm_session_eval(s, eng, bad, 3, NULL, &err), LLM_ERR_BAD_INPUT);
    /* After errors the session still works and has cached nothing. */
    assert_int_equal(llm_session_n_cached(s), 0);
    assert_int_equal(llm_session_eval(s, eng, ids, 32, NULL, &err), 0);
    /* eval_all appends: past the context is refused. */
    float *logits = malloc((size_t)V * sizeof(float));
    assert_int_equal(llm_session_eval_all(s, eng, ids, 1, logits, &err), LLM_ERR_TOO_LONG);
    free(logits);

    struct llm_gen_params gp;
    llm_gen_params_default(&gp, m32);
    struct llm_gen_stats st;
    echo_err_clear(&err);
    assert_int_equal(llm_generate(s, eng, ids, 40, &gp, NULL, &st, &err), LLM_ERR_TOO_LONG);
    assert_int_equal(st.finish, LLM_FINISH_ERROR);
    assert_true(st.error[0] != '\0');
    assert_int_equal(llm_generate(s, eng, bad, 3, &gp, NULL, &st, &err), LLM_ERR_BAD_INPUT);
    llm_session_free(s);

    struct llm_session_opts o = {.kv_type = (enum llm_kv_type)7};
    echo_err_clear(&err);
    assert_null(llm_session_new(m32, &o, &err));
    o = (struct llm_session_opts){.n_ctx = -1};
    assert_null(llm_session_new(m32, &o, &err));
    /* A context above the model's is capped to it. */
    o = (struct llm_session_opts){.n_ctx = 1 << 20};
    s = llm_session_new(m32, &o, &err);
    assert_int_equal(llm_session_n_ctx(s), 1024);
    llm_session_free(s);
}

/* ---- generation --------------------------------------------------------------------- */

struct collect {
    struct strbuf text;
    int32_t ids[4096];
    int n_ids;
    int pieces;
    int cancel_after_pieces; /* 0: never */
    int cancel_after_tokens; /* 0: never */
    bool bad_utf8;
};

static int collect_piece(void *user, const char *text, size_t len)
{
    struct collect *c = user;
    if (!utf8_valid(text, len) || len == 0) c->bad_utf8 = true;
    strbuf_append(&c->text, text, len);
    c->pieces++;
    return c->cancel_after_pieces && c->pieces >= c->cancel_after_pieces;
}

static int collect_token(void *user, int32_t id)
{
    struct collect *c = user;
    if (c->n_ids < 4096) c->ids[c->n_ids++] = id;
    return c->cancel_after_tokens && c->n_ids >= c->cancel_after_tokens;
}

static int gen(llm_session *s, const int32_t *ids, size_t n, const struct llm_gen_params *gp,
               struct collect *c, struct llm_gen_stats *st)
{
    memset(c->ids, 0, sizeof(c->ids));
    c->n_ids = 0;
    c->pieces = 0;
    c->bad_utf8 = false;
    strbuf_init(&c->text);
    struct llm_callbacks cb = {collect_piece, collect_token, c};
    struct echo_err err;
    echo_err_clear(&err);
    int rc = llm_generate(s, eng, ids, n, gp, &cb, st, &err);
    if (rc) print_error("generate: %s\n", err.msg);
    return rc;
}

static void test_generate(void **state)
{
    (void)state;
    int V = llm_model_get_info(m32)->n_vocab;
    const tokenizer *t = llm_model_tokenizer(m32);
    int32_t ids[12];
    prompt_ids(ids, 12, V, 3);
    struct llm_gen_params gp;
    llm_gen_params_default(&gp, m32);
    gp.sampling.temperature = 0;
    gp.sampling.repeat_penalty = 1;
    gp.max_tokens = 20;
    gp.ignore_stop = true;
    struct collect a = {0}, b = {0};
    struct llm_gen_stats st;

    /* Greedy is deterministic, and the text is the decoded ids. */
    llm_session *s1 = session(m32, 0, LLM_KV_F16), *s2 = session(m32, 0, LLM_KV_F16);
    assert_int_equal(gen(s1, ids, 12, &gp, &a, &st), 0);
    assert_int_equal(st.finish, LLM_FINISH_LENGTH);
    assert_int_equal(st.completion_tokens, 20);
    assert_int_equal(st.prompt_tokens, 12);
    assert_int_equal(st.reused_tokens, 0);
    assert_true(st.gen_tps > 0);
    assert_int_equal(a.n_ids, 20);
    assert_false(a.bad_utf8);
    /* The session holds the prompt and all generated tokens but the last. */
    assert_int_equal(llm_session_n_cached(s1), 12 + 19);
    assert_int_equal(gen(s2, ids, 12, &gp, &b, &st), 0);
    assert_memory_equal(a.ids, b.ids, sizeof(a.ids));
    assert_string_equal(strbuf_cstr(&a.text), strbuf_cstr(&b.text));
    struct strbuf dec;
    strbuf_init(&dec);
    assert_int_equal(tok_decode(t, a.ids, (size_t)a.n_ids, TOK_DECODE_SKIP_SPECIAL, &dec, NULL), 0);
    /* The stream replaces an incomplete character with U+FFFD where raw
     * decoding keeps the bytes; compare when the raw text is valid. */
    if (utf8_valid(dec.data ? dec.data : "", dec.len))
        assert_string_equal(strbuf_cstr(&dec), strbuf_cstr(&a.text));
    strbuf_deinit(&dec);
    strbuf_deinit(&a.text);
    strbuf_deinit(&b.text);

    /* Continuing the conversation reuses the cache. */
    int32_t next[64];
    memcpy(next, llm_session_tokens(s1), llm_session_n_cached(s1) * sizeof(int32_t));
    size_t n_next = llm_session_n_cached(s1);
    next[n_next++] = a.ids[19];
    next[n_next++] = 7;
    gp.max_tokens = 2;
    assert_int_equal(gen(s1, next, n_next, &gp, &a, &st), 0);
    assert_int_equal(st.reused_tokens, 31);
    strbuf_deinit(&a.text);

    /* Seeded sampling: same seed, same tokens; another seed differs. */
    gp.sampling.temperature = 1.5f;
    gp.sampling.top_k = 0;
    gp.sampling.top_p = 1;
    gp.sampling.seed = 77;
    gp.max_tokens = 30;
    llm_session_reset(s1);
    llm_session_reset(s2);
    assert_int_equal(gen(s1, ids, 12, &gp, &a, &st), 0);
    assert_int_equal(gen(s2, ids, 12, &gp, &b, &st), 0);
    assert_memory_equal(a.ids, b.ids, sizeof(a.ids));
    strbuf_deinit(&b.text);
    gp.sampling.seed = 78;
    llm_session_reset(s2);
    assert_int_equal(gen(s2, ids, 12, &gp, &b, &st), 0);
    assert_true(memcmp(a.ids, b.ids, sizeof(a.ids)) != 0);
    strbuf_deinit(&a.text);
    strbuf_deinit(&b.text);

    /* Cancel from the piece callback, and from the token callback. */
    gp.sampling.temperature = 0;
    gp.max_tokens = 50;
    a.cancel_after_pieces = 3;
    assert_int_equal(gen(s1, ids, 12, &gp, &a, &st), 0);
    assert_int_equal(st.finish, LLM_FINISH_CANCELLED);
    assert_int_equal(a.pieces, 3);
    strbuf_deinit(&a.text);
    a.cancel_after_pieces = 0;
    a.cancel_after_tokens = 4;
    assert_int_equal(gen(s1, ids, 12, &gp, &a, &st), 0);
    assert_int_equal(st.finish, LLM_FINISH_CANCELLED);
    assert_int_equal(a.n_ids, 4);
    assert_int_equal(st.completion_tokens, 3);
    strbuf_deinit(&a.text);
    a.cancel_after_tokens = 0;

    /* An extra stop id: generation ends before it, reason "stop". */
    llm_session_reset(s2);
    gp.max_tokens = 10;
    assert_int_equal(gen(s2, ids, 12, &gp, &b, &st), 0);
    strbuf_deinit(&b.text);
    int32_t stop = b.ids[5];
    int first = 0;
    while (b.ids[first] != stop)
        first++;
    gp.stop_ids = &stop;
    gp.n_stop_ids = 1;
    gp.ignore_stop = false;
    llm_session_reset(s2);
    assert_int_equal(gen(s2, ids, 12, &gp, &b, &st), 0);
    assert_int_equal(st.finish, LLM_FINISH_STOP);
    assert_int_equal(st.completion_tokens, first);
    strbuf_deinit(&b.text);
    gp.stop_ids = NULL;
    gp.n_stop_ids = 0;

    /* The context fills up: "length" without overflowing the cache. */
    llm_session *tiny = session(m32, 14, LLM_KV_F16);
    gp.max_tokens = 0;
    gp.ignore_stop = true;
    assert_int_equal(gen(tiny, ids, 12, &gp, &a, &st), 0);
    assert_int_equal(st.finish, LLM_FINISH_LENGTH);
    assert_int_equal(st.completion_tokens, 3);
    assert_true(llm_session_n_cached(tiny) <= 14);
    strbuf_deinit(&a.text);
    llm_session_free(tiny);

    assert_string_equal(llm_finish_name(LLM_FINISH_STOP), "stop");
    assert_string_equal(llm_finish_name(LLM_FINISH_LENGTH), "length");
    assert_string_equal(llm_finish_name(LLM_FINISH_CANCELLED), "cancelled");
    assert_string_equal(llm_finish_name(LLM_FINISH_ERROR), "error");
    llm_session_free(s1);
    llm_session_free(s2);
}

/* ---- Hugging Face folders ------------------------------------------------------------------ */

static float *hf_logits(const char *path, enum llm_dtype dt, const int32_t *ids, size_t n)
{
    struct llm_load_opts o = {.dtype = dt};
    struct echo_err err;
    echo_err_clear(&err);
    llm_model *m = llm_model_load(path, &o, &err);
    if (!m) print_error("%s: %s\n", path, err.msg);
    assert_non_null(m);
    assert_string_equal(llm_model_get_info(m)->format, "hf");
    llm_engine *e = llm_engine_new(m, 2, 0, &err);
    llm_session *s = session(m, 0, LLM_KV_F32);
    assert_int_equal(llm_session_eval(s, e, ids, n, NULL, &err), 0);
    int V = llm_model_get_info(m)->n_vocab;
    float *out = malloc((size_t)V * sizeof(float));
    memcpy(out, llm_session_logits(s), (size_t)V * sizeof(float));
    llm_session_free(s);
    llm_engine_free(e);
    llm_model_free(m);
    return out;
}

static int argmax(const float *x, int n)
{
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return b;
}

static void test_hf(void **state)
{
    (void)state;
    int V = llm_model_get_info(m32)->n_vocab;
    int32_t ids[20];
    prompt_ids(ids, 20, V, 4);
    const char *paths[] = {path_hf, path_hf_sharded};
    for (int p = 0; p < 2; p++) {
        float *f32 = hf_logits(paths[p], LLM_DTYPE_F32, ids, 20);
        float *bf16 = hf_logits(paths[p], LLM_DTYPE_BF16, ids, 20);
        float *q8 = hf_logits(paths[p], LLM_DTYPE_DEFAULT, ids, 20);
        /* BF16 weights converted to f32 or kept as bf16 compute the same. */
        assert_true(max_diff(f32, bf16, V) < 1e-3f);
        assert_true(max_diff(f32, q8, V) < 0.5f);
        assert_int_equal(argmax(f32, V), argmax(q8, V));
        free(f32);
        free(bf16);
        free(q8);
    }
    struct echo_err err;
    echo_err_clear(&err);
    llm_model *m = llm_model_load(path_hf_sharded, NULL, &err);
    assert_non_null(m);
    assert_false(llm_model_get_info(m)->tied);
    assert_string_equal(llm_model_get_info(m)->weight_type, "q8_0");
    /* generation_config.json: eos ids [im_end, endoftext]. */
    assert_true(llm_model_is_stop(m, tok_find(llm_model_tokenizer(m), "<|endoftext|>")));
    assert_true(fabsf(llm_model_sampling(m)->repeat_penalty - 1.1f) < 1e-6f);
    llm_model_free(m);
}

/* ---- bad files ----------------------------------------------------------------------------------
 */

static char *slurp(const char *path, size_t *len)
{
    return file_read_all(path, 1 << 30, len, NULL);
}

static void spit(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

/* Writes a patched copy of the F32 model and expects loading to fail with `want`. */
static void expect_load_error_n(const char *find, size_t find_len, const char *replace, size_t cut,
                                const char *want)
{
    size_t len;
    char *buf = slurp(path_f32, &len);
    assert_non_null(buf);
    if (find) {
        char *at = memmem(buf, len, find, find_len);
        assert_non_null(at);
        memcpy(at, replace, find_len);
    }
    if (cut) len = cut;
    char path[600];
    snprintf(path, sizeof(path), "%s/bad.gguf", dir);
    spit(path, buf, len);
    struct echo_err err;
    echo_err_clear(&err);
    llm_model *m = llm_model_load(path, NULL, &err);
    if (m || !strstr(err.msg, want))
        print_error("wanted '%s', got '%s'\n", want, m ? "success" : err.msg);
    assert_null(m);
    assert_non_null(strstr(err.msg, want));
    free(buf);
}

/* find and replace are string literals of the same length (NULs allowed). */
#define expect_load_error(find, replace, cut, want)                                                \
    expect_load_error_n(find, sizeof(find) - 1, replace, cut, want)

static void test_bad_files(void **state)
{
    (void)state;
    expect_load_error("GGUF", "GGUG", 0, "");
    expect_load_error_n(NULL, 0, NULL, 1000, "");
    expect_load_error("qwen2", "llama", 0, "architecture");
    expect_load_error("blk.1.ffn_up.weight", "blk.1.ffn_uq.weight", 0,
                      "missing tensor blk.1.ffn_up.weight");
    expect_load_error("output_norm.weight", "output_norm.weighx", 0,
                      "missing tensor output_norm.weight");
    /* feed_forward_length 160 -> 192: every FFN tensor has the wrong shape. */
    expect_load_error("qwen2.feed_forward_length\x04\x00\x00\x00\xa0",
                      "qwen2.feed_forward_length\x04\x00\x00\x00\xc0", 0, "shape");
    /* 4 heads -> 3: does not divide the hidden size. */
    expect_load_error("qwen2.attention.head_count\x04\x00\x00\x00\x04",
                      "qwen2.attention.head_count\x04\x00\x00\x00\x03", 0, "heads");
    /* A block count far beyond the tensors. */
    expect_load_error("qwen2.block_count\x04\x00\x00\x00\x02",
                      "qwen2.block_count\x04\x00\x00\x00\x09", 0, "missing tensor blk.2");

    struct echo_err err;
    echo_err_clear(&err);
    assert_null(llm_model_load("/nonexistent/model.gguf", NULL, &err));
    assert_non_null(strstr(err.msg, "No such file"));
    assert_null(llm_model_load(NULL, NULL, &err));

    /* Hugging Face folders. */
    char cmd[1400], p[600];
    snprintf(cmd, sizeof(cmd), "cp -r '%s' '%s/hfbad'", path_hf, dir);
    assert_int_equal(run(cmd), 0);
    snprintf(p, sizeof(p), "%s/hfbad/config.json", dir);
    size_t len;
    char *cfg = slurp(p, &len);
    char *at = strstr(cfg, "\"qwen2\"");
    assert_non_null(at);
    memcpy(at, "\"gemma\"", 7);
    spit(p, cfg, len);
    snprintf(p, sizeof(p), "%s/hfbad", dir);
    echo_err_clear(&err);
    assert_null(llm_model_load(p, NULL, &err));
    assert_non_null(strstr(err.msg, "model_type"));
    snprintf(p, sizeof(p), "%s/hfbad/config.json", dir);
    spit(p, "{\"model_type\": \"qwen2\"", 22);
    snprintf(p, sizeof(p), "%s/hfbad", dir);
    echo_err_clear(&err);
    assert_null(llm_model_load(p, NULL, &err));
    char fmt[1024];
    assert_non_null(strstr(echo_err_format(&err, fmt, sizeof(fmt)), "config.json"));
    /* Restore the config, corrupt the weights header. */
    snprintf(p, sizeof(p), "%s/hfbad/config.json", dir);
    memcpy(at, "\"qwen2\"", 7);
    spit(p, cfg, len);
    free(cfg);
    snprintf(p, sizeof(p), "%s/hfbad/model.safetensors", dir);
    char *w = slurp(p, &len);
    at = memmem(w, len, "\"BF16\"", 6);
    assert_non_null(at);
    memcpy(at, "\"BX16\"", 6);
    spit(p, w, len);
    free(w);
    snprintf(p, sizeof(p), "%s/hfbad", dir);
    echo_err_clear(&err);
    assert_null(llm_model_load(p, NULL, &err));
    assert_non_null(strstr(err.msg, "dtype"));
    snprintf(cmd, sizeof(cmd), "rm -rf '%s/hfbad'", dir);
    assert_int_equal(run(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_info),      cmocka_unit_test(test_eval_paths),
        cmocka_unit_test(test_batch),
        cmocka_unit_test(test_bad_input), cmocka_unit_test(test_generate),
        cmocka_unit_test(test_hf),        cmocka_unit_test(test_bad_files),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
