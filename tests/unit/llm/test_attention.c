/*
 * test_attention.c - the tiled, split, multi-sequence attention (attention.c)
 * against its plain reference on random data: F16 and F32 caches, head sizes
 * that are and are not multiples of the vector width (16, 20, 48, 128),
 * grouped-query ratios 1..6, single tokens at long contexts (the split-span
 * path and its merge), prompt chunks that cross tiles and query blocks at an
 * offset, several sequences in one call, large scores (the online softmax's
 * rescaling), one thread and two, the scalar and the AVX-512 kernels.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "llm/attention.h"
#include "llm/kernels.h"

static uint64_t rng = 88172645463325252ull;

static float frand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((double)(rng >> 11) / (double)(1ull << 53) * 2.0 - 1.0);
}

struct seq_data {
    struct att_seq seq;
    void *k, *v;
    float *q, *out, *ref;
};

static void seq_make(struct seq_data *d, const struct att_shape *sh, int pos, int n, float qscale)
{
    size_t kv_dim = (size_t)sh->head_dim * sh->n_kv_heads, qs = (size_t)sh->head_dim * sh->n_heads;
    size_t rows = (size_t)(pos + n), elem = sh->f16 ? 2 : 4;
    d->k = malloc(rows * kv_dim * elem);
    d->v = malloc(rows * kv_dim * elem);
    for (size_t i = 0; i < rows * kv_dim; i++) {
        float a = frand(), b = frand();
        if (sh->f16) {
            ((uint16_t *)d->k)[i] = kern_f32_to_fp16(a);
            ((uint16_t *)d->v)[i] = kern_f32_to_fp16(b);
        } else {
            ((float *)d->k)[i] = a;
            ((float *)d->v)[i] = b;
        }
    }
    d->q = malloc((size_t)n * qs * sizeof(float));
    d->out = malloc((size_t)n * qs * sizeof(float));
    d->ref = malloc((size_t)n * qs * sizeof(float));
    for (size_t i = 0; i < (size_t)n * qs; i++) {
        d->q[i] = frand() * qscale;
        d->out[i] = NAN;
    }
    d->seq = (struct att_seq){.k = d->k, .v = d->v, .pos = pos, .n = n, .q = d->q, .out = d->out};
}

static void seq_free(struct seq_data *d)
{
    free(d->k);
    free(d->v);
    free(d->q);
    free(d->out);
    free(d->ref);
}

/* Runs seqs[0..n) in one call with `threads` threads and compares every
 * output with the reference. */
static void check(const struct att_shape *sh, const int (*pn)[2], int n, int threads, float qscale)
{
    struct seq_data d[8];
    struct att_seq seqs[8];
    for (int i = 0; i < n; i++) {
        seq_make(&d[i], sh, pn[i][0], pn[i][1], qscale);
        seqs[i] = d[i].seq;
    }
    struct kern_pool *pool = threads > 1 ? kern_pool_new(threads) : NULL;
    struct att_scratch s = {0};
    assert_int_equal(att_forward(sh, seqs, n, &s, pool), 0);
    /* A second call on the same scratch (the engine's steady state). */
    assert_int_equal(att_forward(sh, seqs, n, &s, pool), 0);
    att_scratch_deinit(&s);
    kern_pool_free(pool);
    size_t qs = (size_t)sh->head_dim * sh->n_heads;
    for (int i = 0; i < n; i++) {
        struct att_seq r = d[i].seq;
        r.out = d[i].ref;
        att_reference(sh, &r);
        double worst = 0;
        for (size_t e = 0; e < (size_t)pn[i][1] * qs; e++) {
            double diff = fabs((double)d[i].out[e] - d[i].ref[e]);
            if (!(diff <= worst)) worst = diff; /* NaN counts as the worst */
        }
        if (!(worst < 2e-5 * (qscale > 1 ? 10 : 1))) {
            print_error("heads %d/%d hd %d %s, seq %d (pos %d, n %d), %d threads, path %s: "
                        "max diff %g\n",
                        sh->n_heads, sh->n_kv_heads, sh->head_dim, sh->f16 ? "f16" : "f32", i,
                        pn[i][0], pn[i][1], threads, kern_path_name(), worst);
            fail();
        }
    }
    for (int i = 0; i < n; i++)
        seq_free(&d[i]);
}

static void run_shapes(void)
{
    static const struct att_shape shapes[] = {
        {4, 2, 16, true}, {4, 2, 16, false}, {12, 2, 128, true},
        {3, 1, 20, true}, {6, 3, 48, false},
    };
    /* (pos, n): decode at short and long contexts (split), prompts crossing
     * tiles and query blocks, prompts at an offset. */
    static const int single[][2] = {{0, 1}, {0, 17}, {5, 1}, {63, 2}, {600, 1}, {40, 33}, {700, 3}};
    static const int multi[][2] = {{0, 1}, {700, 1}, {10, 20}, {129, 1}, {0, 70}};
    for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
        for (size_t i = 0; i < sizeof(single) / sizeof(single[0]); i++) {
            /* One thread and two alternately: the reference is the slow part. */
            check(&shapes[s], &single[i], 1, (int)(i + s) % 2 + 1, 1.0f);
        }
        check(&shapes[s], multi, 5, (int)s % 2 + 1, 1.0f);
    }
    /* Peaked softmax: scores in the hundreds, so every tile rescales. */
    check(&shapes[2], multi, 5, 2, 30.0f);
    check(&shapes[3], single + 4, 1, 2, 30.0f);
}

static void test_scalar(void **state)
{
    (void)state;
    assert_int_equal(kern_set_path(KERN_PATH_SCALAR), 0);
    run_shapes();
}

static void test_avx512(void **state)
{
    (void)state;
    if (!kern_path_supported(KERN_PATH_AVX512)) {
        print_message("skipping: no AVX-512 on this CPU\n");
        skip();
    }
    assert_int_equal(kern_set_path(KERN_PATH_AVX512), 0);
    run_shapes();
}

static void test_empty(void **state)
{
    (void)state;
    struct att_shape sh = {4, 2, 16, true};
    struct att_scratch s = {0};
    assert_int_equal(att_forward(&sh, NULL, 0, &s, NULL), 0);
    att_scratch_deinit(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scalar),
        cmocka_unit_test(test_avx512),
        cmocka_unit_test(test_empty),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
