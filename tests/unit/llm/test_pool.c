/*
 * test_pool.c - the persistent thread pool: every run reaches every thread
 * exactly once with distinct ith, no work is lost across many runs, runs
 * separated by pauses long enough for the workers (and the caller) to fall
 * asleep still complete, writes of the workers are visible to the caller
 * after a run, and a pool can be freed busy-idle or asleep.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "llm/pool.h"

#define MAX_T 16

struct run_state {
    atomic_int calls[MAX_T]; /* runs each ith took part in */
    atomic_int total;
    atomic_int bad_nth;
    int nth_expected;
    long slot[MAX_T]; /* plain writes, read by the caller after the run */
    int run;
    int sleep_ith; /* a thread that sleeps in each run, or -1 */
    long sleep_ns;
};

static void nap(long ns)
{
    struct timespec ts = {ns / 1000000000L, ns % 1000000000L};
    nanosleep(&ts, NULL);
}

static void count_fn(void *arg, int ith, int nth)
{
    struct run_state *s = arg;
    if (nth != s->nth_expected || ith < 0 || ith >= nth)
        atomic_fetch_add(&s->bad_nth, 1);
    else
        atomic_fetch_add(&s->calls[ith], 1);
    atomic_fetch_add(&s->total, 1);
    if (ith == s->sleep_ith) nap(s->sleep_ns);
    if (ith >= 0 && ith < MAX_T) s->slot[ith] = (long)s->run * 1000 + ith;
}

/* Runs the pool `runs` times, pausing `pause_ns` between runs, and checks
 * that every thread saw every run once with the right nth. */
static void exercise(struct kern_pool *p, int runs, long pause_ns, int sleep_ith, long sleep_ns)
{
    int nth = kern_pool_size(p);
    assert_true(nth >= 1 && nth <= MAX_T);
    struct run_state *s = calloc(1, sizeof(*s));
    s->nth_expected = nth;
    s->sleep_ith = sleep_ith;
    s->sleep_ns = sleep_ns;
    for (int r = 0; r < runs; r++) {
        s->run = r;
        int before = atomic_load(&s->total);
        kern_pool_run(p, count_fn, s);
        /* the run is complete when kern_pool_run returns */
        assert_int_equal(atomic_load(&s->total) - before, nth);
        for (int i = 0; i < nth; i++)
            assert_int_equal(s->slot[i], (long)r * 1000 + i);
        if (pause_ns) nap(pause_ns);
    }
    for (int i = 0; i < nth; i++)
        assert_int_equal(atomic_load(&s->calls[i]), runs);
    assert_int_equal(atomic_load(&s->bad_nth), 0);
    assert_int_equal(atomic_load(&s->total), runs * nth);
    free(s);
}

static void test_sizes(void **state)
{
    (void)state;
    for (int n = 1; n <= 4; n++) {
        struct kern_pool *p = kern_pool_new(n);
        assert_non_null(p);
        assert_int_equal(kern_pool_size(p), n);
        kern_pool_free(p);
    }
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    struct kern_pool *p = kern_pool_new(0);
    assert_true(kern_pool_size(p) >= 1 && kern_pool_size(p) <= (cores > 0 ? cores : 1));
    kern_pool_free(p);
    p = kern_pool_new(-3); /* anything not positive means one per core */
    assert_true(kern_pool_size(p) >= 1);
    kern_pool_free(p);
    assert_int_equal(kern_pool_size(NULL), 1);
    kern_pool_free(NULL);
}

static void test_many_runs(void **state)
{
    (void)state;
    for (int n = 1; n <= 4; n++) {
        struct kern_pool *p = kern_pool_new(n);
        exercise(p, 5000, 0, -1, 0);
        kern_pool_free(p);
    }
}

/* More threads than cores: workers are preempted mid-run. */
static void test_oversubscribed(void **state)
{
    (void)state;
    struct kern_pool *p = kern_pool_new(9);
    assert_int_equal(kern_pool_size(p), 9);
    exercise(p, 500, 0, -1, 0);
    kern_pool_free(p);
}

/* Pauses longer than the spin budget: workers go to sleep between runs. */
static void test_runs_after_sleep(void **state)
{
    (void)state;
    struct kern_pool *p = kern_pool_new(3);
    exercise(p, 40, 2000000, -1, 0);
    /* mixed: some runs back to back, some after a sleep */
    for (int i = 0; i < 20; i++)
        exercise(p, 50, i % 2 ? 0 : 1000000, -1, 0);
    kern_pool_free(p);
}

/* A slow worker: the caller outlasts its spin and sleeps until woken. */
static void test_caller_sleeps(void **state)
{
    (void)state;
    struct kern_pool *p = kern_pool_new(3);
    exercise(p, 30, 0, 2, 3000000);
    /* and a slow caller: workers finish first */
    exercise(p, 30, 0, 0, 1000000);
    kern_pool_free(p);
}

/* Freeing right after a run (workers spinning) and after they fell asleep. */
static void test_free_states(void **state)
{
    (void)state;
    for (int i = 0; i < 50; i++) {
        struct kern_pool *p = kern_pool_new(2 + i % 3);
        exercise(p, 3, 0, -1, 0);
        kern_pool_free(p);
    }
    for (int i = 0; i < 3; i++) {
        struct kern_pool *p = kern_pool_new(3);
        exercise(p, 2, 0, -1, 0);
        nap(5000000); /* 5 ms: every worker is asleep */
        kern_pool_free(p);
    }
    /* a pool that never ran */
    kern_pool_free(kern_pool_new(4));
}

static void null_fn(void *arg, int ith, int nth)
{
    int *seen = arg;
    seen[0] = ith;
    seen[1] = nth;
}

static void test_null_pool(void **state)
{
    (void)state;
    int seen[2] = {-1, -1};
    kern_pool_run(NULL, null_fn, seen);
    assert_int_equal(seen[0], 0);
    assert_int_equal(seen[1], 1);
}

/* Two pools used from two threads at once do not interfere. (cmocka's
 * asserts belong to the main thread, so the other thread only counts.) */
struct two_arg {
    struct kern_pool *p;
    int errors;
};

static void *drive(void *a_)
{
    struct two_arg *a = a_;
    struct run_state *s = calloc(1, sizeof(*s));
    s->nth_expected = kern_pool_size(a->p);
    s->sleep_ith = -1;
    for (int r = 0; r < 1000; r++) {
        int before = atomic_load(&s->total);
        kern_pool_run(a->p, count_fn, s);
        if (atomic_load(&s->total) - before != s->nth_expected) a->errors++;
    }
    for (int i = 0; i < s->nth_expected; i++)
        if (atomic_load(&s->calls[i]) != 1000) a->errors++;
    a->errors += atomic_load(&s->bad_nth);
    free(s);
    return NULL;
}

static void test_two_pools(void **state)
{
    (void)state;
    struct two_arg a = {kern_pool_new(2), 0}, b = {kern_pool_new(2), 0};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, drive, &a), 0);
    drive(&b);
    pthread_join(t, NULL);
    assert_int_equal(a.errors, 0);
    assert_int_equal(b.errors, 0);
    kern_pool_free(a.p);
    kern_pool_free(b.p);
}

static void test_scratch(void **state)
{
    (void)state;
    assert_null(kern_pool_scratch(NULL, 10));
    struct kern_pool *p = kern_pool_new(2);
    unsigned char *a = kern_pool_scratch(p, 100);
    assert_non_null(a);
    assert_int_equal((uintptr_t)a % 64, 0);
    memset(a, 1, 100);
    /* a smaller request reuses the buffer */
    assert_ptr_equal(kern_pool_scratch(p, 50), a);
    /* a larger one gets a new, usable buffer */
    unsigned char *b = kern_pool_scratch(p, 1 << 20);
    assert_non_null(b);
    assert_int_equal((uintptr_t)b % 64, 0);
    memset(b, 2, 1 << 20);
    kern_pool_free(p);
}

int main(void)
{
    /* clang-format off */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_many_runs),
        cmocka_unit_test(test_oversubscribed),
        cmocka_unit_test(test_runs_after_sleep),
        cmocka_unit_test(test_caller_sleeps),
        cmocka_unit_test(test_free_states),
        cmocka_unit_test(test_null_pool),
        cmocka_unit_test(test_two_pools),
        cmocka_unit_test(test_scratch),
    };
    /* clang-format on */
    return cmocka_run_group_tests(tests, NULL, NULL);
}
