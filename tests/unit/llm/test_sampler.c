/*
 * test_sampler.c - the sampler on hand-made logits: greedy (and its tie
 * rule), the seed fixing the sequence, draws following the softmax
 * distribution, each filter (temperature, top-k, top-p, min-p) keeping
 * exactly the tokens it should, the repetition penalty (both signs, the
 * look-back window), NaN logits, and the Qwen2.5 defaults.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "llm/llm.h"

static struct llm_sampling plain(float temp, uint64_t seed)
{
    struct llm_sampling p = {.temperature = temp,
                             .top_k = 0,
                             .top_p = 1.0f,
                             .min_p = 0.0f,
                             .repeat_penalty = 1.0f,
                             .repeat_last_n = 64,
                             .seed = seed};
    return p;
}

/* Draws n tokens from fixed logits; counts[i] gets the frequency of id i. */
static void draw(const struct llm_sampling *p, const float *logits, int vocab, int n, int *counts)
{
    llm_sampler *s = llm_sampler_new(p, vocab);
    assert_non_null(s);
    float *tmp = malloc((size_t)vocab * sizeof(float));
    memset(counts, 0, (size_t)vocab * sizeof(int));
    for (int i = 0; i < n; i++) {
        memcpy(tmp, logits, (size_t)vocab * sizeof(float));
        int32_t id = llm_sampler_sample(s, tmp, NULL, 0);
        assert_true(id >= 0 && id < vocab);
        counts[id]++;
    }
    free(tmp);
    llm_sampler_free(s);
}

static void test_defaults(void **state)
{
    (void)state;
    struct llm_sampling d;
    llm_sampling_default(&d);
    assert_true(fabsf(d.temperature - 0.7f) < 1e-6f);
    assert_int_equal(d.top_k, 20);
    assert_true(fabsf(d.top_p - 0.8f) < 1e-6f);
    assert_true(fabsf(d.repeat_penalty - 1.1f) < 1e-6f);
    assert_true(d.min_p == 0.0f);
    assert_true(d.seed == LLM_SEED_RANDOM);
    assert_null(llm_sampler_new(&d, 0));
}

static void test_greedy(void **state)
{
    (void)state;
    float logits[6] = {0.5f, 3.0f, -1.0f, 3.0f, 2.9f, -INFINITY};
    struct llm_sampling p = plain(0.0f, 1);
    llm_sampler *s = llm_sampler_new(&p, 6);
    float tmp[6];
    memcpy(tmp, logits, sizeof(tmp));
    /* Ties go to the lower id. */
    assert_int_equal(llm_sampler_sample(s, tmp, NULL, 0), 1);
    llm_sampler_free(s);
    /* top_k = 1 is greedy at any temperature. */
    p = plain(5.0f, 7);
    p.top_k = 1;
    int counts[6];
    draw(&p, logits, 6, 200, counts);
    assert_int_equal(counts[1], 200);
}

static void test_seed_determinism(void **state)
{
    (void)state;
    enum { V = 50, N = 300 };
    float logits[V];
    for (int i = 0; i < V; i++)
        logits[i] = sinf((float)i * 1.7f);
    struct llm_sampling p = plain(1.0f, 42);
    int32_t a[N], b[N], c[N];
    llm_sampler *s1 = llm_sampler_new(&p, V), *s2 = llm_sampler_new(&p, V);
    p.seed = 43;
    llm_sampler *s3 = llm_sampler_new(&p, V);
    float tmp[V];
    for (int i = 0; i < N; i++) {
        memcpy(tmp, logits, sizeof(tmp));
        a[i] = llm_sampler_sample(s1, tmp, NULL, 0);
        memcpy(tmp, logits, sizeof(tmp));
        b[i] = llm_sampler_sample(s2, tmp, NULL, 0);
        memcpy(tmp, logits, sizeof(tmp));
        c[i] = llm_sampler_sample(s3, tmp, NULL, 0);
    }
    assert_memory_equal(a, b, sizeof(a));
    assert_true(memcmp(a, c, sizeof(a)) != 0);
    llm_sampler_free(s1);
    llm_sampler_free(s2);
    llm_sampler_free(s3);
}

/* p = (0.5, 0.3, 0.15, 0.05) */
static const float probs[4] = {0.5f, 0.3f, 0.15f, 0.05f};

static void log_probs(float *logits)
{
    for (int i = 0; i < 4; i++)
        logits[i] = logf(probs[i]) + 3.0f; /* a shift changes nothing */
}

static void test_distribution(void **state)
{
    (void)state;
    enum { N = 40000 };
    float logits[4];
    log_probs(logits);
    struct llm_sampling p = plain(1.0f, 5);
    int counts[4];
    draw(&p, logits, 4, N, counts);
    for (int i = 0; i < 4; i++) {
        double f = (double)counts[i] / N;
        /* 5 standard deviations of a binomial proportion. */
        double sd = sqrt(probs[i] * (1 - probs[i]) / N);
        assert_true(fabs(f - probs[i]) < 5 * sd);
    }
}

static void test_temperature(void **state)
{
    (void)state;
    enum { N = 20000 };
    float logits[4];
    log_probs(logits);
    int counts[4];
    /* T = 0.5 squares the probabilities: 0.25/0.09/0.0225/0.0025 normalized. */
    struct llm_sampling p = plain(0.5f, 9);
    draw(&p, logits, 4, N, counts);
    double z = 0.25 + 0.09 + 0.0225 + 0.0025;
    double want0 = 0.25 / z;
    assert_true(fabs((double)counts[0] / N - want0) < 5 * sqrt(want0 * (1 - want0) / N));
    /* A very low temperature is nearly greedy. */
    p = plain(0.01f, 9);
    draw(&p, logits, 4, 1000, counts);
    assert_int_equal(counts[0], 1000);
}

static void test_top_k(void **state)
{
    (void)state;
    enum { V = 1000, N = 5000 };
    float *logits = malloc(V * sizeof(float));
    for (int i = 0; i < V; i++)
        logits[i] = (float)((i * 7919) % V) / 100.0f; /* a permutation of 0..9.99 */
    struct llm_sampling p = plain(3.0f, 11);
    p.top_k = 5;
    int *counts = malloc(V * sizeof(int));
    draw(&p, logits, V, N, counts);
    int kept = 0;
    for (int i = 0; i < V; i++) {
        if (counts[i]) {
            kept++;
            assert_true(logits[i] >= 9.95f); /* only the 5 highest: 9.95 .. 9.99 */
        }
    }
    assert_int_equal(kept, 5);
    free(counts);
    free(logits);
}

static void test_top_p(void **state)
{
    (void)state;
    float logits[4];
    log_probs(logits);
    int counts[4];
    /* 0.5 < 0.6 <= 0.8: ids 0 and 1 form the nucleus. */
    struct llm_sampling p = plain(1.0f, 13);
    p.top_p = 0.6f;
    draw(&p, logits, 4, 5000, counts);
    assert_true(counts[0] > 0 && counts[1] > 0);
    assert_int_equal(counts[2] + counts[3], 0);
    /* Renormalized within the nucleus: 0.5/0.8 = 0.625. */
    assert_true(fabs(counts[0] / 5000.0 - 0.625) < 0.035);
    /* A tiny top_p keeps the best token only. */
    p.top_p = 0.01f;
    draw(&p, logits, 4, 500, counts);
    assert_int_equal(counts[0], 500);
    /* top_p reached by the first two (0.79 <= 0.8) keeps exactly two. */
    p.top_p = 0.79f;
    draw(&p, logits, 4, 5000, counts);
    assert_int_equal(counts[2] + counts[3], 0);
    assert_true(counts[1] > 0);
}

static void test_min_p(void **state)
{
    (void)state;
    float logits[4];
    log_probs(logits);
    int counts[4];
    /* min_p 0.5: keep p >= 0.25 -> ids 0 (0.5) and 1 (0.3). */
    struct llm_sampling p = plain(1.0f, 17);
    p.min_p = 0.5f;
    draw(&p, logits, 4, 5000, counts);
    assert_true(counts[0] > 0 && counts[1] > 0);
    assert_int_equal(counts[2] + counts[3], 0);
    /* min_p 0.2: keep p >= 0.1 -> ids 0, 1, 2. */
    p.min_p = 0.2f;
    draw(&p, logits, 4, 5000, counts);
    assert_true(counts[2] > 0);
    assert_int_equal(counts[3], 0);
}

static void test_repetition_penalty(void **state)
{
    (void)state;
    struct llm_sampling p = plain(0.0f, 1);
    p.repeat_penalty = 2.0f;
    llm_sampler *s = llm_sampler_new(&p, 4);
    /* Positive logit: divided; 3.0/2 = 1.5 < 2.0, so id 1 wins. */
    float a[4] = {3.0f, 2.0f, 0.0f, -1.0f};
    int32_t hist[] = {0, 0, 0};
    assert_int_equal(llm_sampler_sample(s, a, hist, 3), 1);
    assert_true(a[0] == 1.5f); /* each distinct token penalized once */
    /* Negative logit: multiplied. */
    float b[4] = {-1.0f, -1.5f, -3.0f, -4.0f};
    int32_t hist2[] = {0};
    assert_int_equal(llm_sampler_sample(s, b, hist2, 1), 1);
    assert_true(b[0] == -2.0f);
    /* Ids outside the vocabulary in the history are ignored. */
    float c[4] = {3.0f, 2.0f, 0.0f, -1.0f};
    int32_t hist3[] = {-5, 99, 2};
    assert_int_equal(llm_sampler_sample(s, c, hist3, 3), 0);
    llm_sampler_free(s);

    /* Only the last repeat_last_n tokens count. */
    p.repeat_last_n = 2;
    s = llm_sampler_new(&p, 4);
    float d[4] = {3.0f, 2.0f, 0.0f, -1.0f};
    int32_t hist4[] = {0, 2, 3};
    assert_int_equal(llm_sampler_sample(s, d, hist4, 3), 0);
    assert_true(d[0] == 3.0f);
    llm_sampler_free(s);

    /* repeat_last_n = 0 disables it; -1 looks at everything. */
    p.repeat_last_n = 0;
    s = llm_sampler_new(&p, 4);
    float e[4] = {3.0f, 2.0f, 0.0f, -1.0f};
    assert_int_equal(llm_sampler_sample(s, e, hist, 3), 0);
    llm_sampler_free(s);
    p.repeat_last_n = -1;
    s = llm_sampler_new(&p, 4);
    int32_t longhist[200];
    for (int i = 0; i < 200; i++)
        longhist[i] = i == 0 ? 0 : 3;
    float f[4] = {3.0f, 2.0f, 0.0f, -1.0f};
    assert_int_equal(llm_sampler_sample(s, f, longhist, 200), 1);
    llm_sampler_free(s);
}

static void test_nan(void **state)
{
    (void)state;
    float logits[4] = {NAN, 1.0f, NAN, 0.5f};
    struct llm_sampling p = plain(0.0f, 1);
    llm_sampler *s = llm_sampler_new(&p, 4);
    assert_int_equal(llm_sampler_sample(s, logits, NULL, 0), 1);
    llm_sampler_free(s);
    float l2[4] = {NAN, 1.0f, NAN, 0.5f};
    p = plain(1.0f, 3);
    int counts[4];
    draw(&p, l2, 4, 2000, counts);
    assert_int_equal(counts[0] + counts[2], 0);
    /* Everything -inf: still a valid id. */
    float l3[3] = {-INFINITY, -INFINITY, -INFINITY};
    draw(&p, l3, 3, 10, counts);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_greedy),
        cmocka_unit_test(test_seed_determinism),
        cmocka_unit_test(test_distribution),
        cmocka_unit_test(test_temperature),
        cmocka_unit_test(test_top_k),
        cmocka_unit_test(test_top_p),
        cmocka_unit_test(test_min_p),
        cmocka_unit_test(test_repetition_penalty),
        cmocka_unit_test(test_nan),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
