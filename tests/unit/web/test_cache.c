/*
 * test_cache.c - the LRU + TTL JSON cache with an injected clock: references
 * (a get is a new reference, a put keeps the caller's), expiry at the exact
 * TTL and per-entry TTLs, LRU order and the capacity bound, invalidation,
 * the ticket that stops a value loaded before an invalidation from being
 * stored (also after the mark was evicted, and after clear), statistics,
 * values never freed while the lock is held (checked with a jansson free
 * hook that asks for the lock from another thread), and many threads mixing
 * gets, puts and invalidations.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <pthread.h>
#include <time.h>

#include <cmocka.h>

#include "core/core.h"
#include "web/cache.h"

#define SEC 1000000000LL
#define MS 1000000LL

static _Atomic int64_t now_ns = 500 * SEC;

static int64_t fake_clock(void *ctx)
{
    (void)ctx;
    return atomic_load(&now_ns);
}

static cache *make(size_t capacity)
{
    struct cache_options o = {.capacity = capacity, .clock = fake_clock};
    cache *c = cache_new(&o);
    assert_non_null(c);
    return c;
}

static json_t *val(int n)
{
    return json_pack("{s:i}", "n", n);
}

static int n_of(json_t *v)
{
    return (int)json_integer_value(json_object_get(v, "n"));
}

static void test_references(void **state)
{
    (void)state;
    cache *c = make(10);
    json_t *v = val(1);
    cache_put(c, "profile:1", v, 0);
    assert_int_equal(v->refcount, 2); /* ours and the cache's */
    json_t *got = cache_get(c, "profile:1");
    assert_ptr_equal(got, v);
    assert_int_equal(v->refcount, 3);
    json_decref(got);
    json_decref(v);
    /* The cache's reference keeps it alive on its own. */
    got = cache_get(c, "profile:1");
    assert_int_equal(n_of(got), 1);
    assert_int_equal(got->refcount, 2);
    json_decref(got);
    /* Replacing releases the old value. */
    json_t *w = val(2);
    json_incref(got); /* hold the old one to watch its count */
    cache_put(c, "profile:1", w, 0);
    assert_int_equal(got->refcount, 1);
    json_decref(got);
    got = cache_get(c, "profile:1");
    assert_int_equal(n_of(got), 2);
    json_decref(got);
    json_decref(w);
    /* NULLs are ignored. */
    cache_put(c, NULL, w, 0);
    cache_put(c, "x", NULL, 0);
    assert_null(cache_get(c, NULL));
    assert_null(cache_get(c, "x"));
    cache_free(c);
    cache_free(NULL);
}

static void test_ttl(void **state)
{
    (void)state;
    cache *c = make(10);
    int64_t t0 = atomic_load(&now_ns);
    json_t *v = val(7);
    cache_put(c, "a", v, 0);        /* the default: 30 s */
    cache_put(c, "short", v, 5000); /* 5 s */
    atomic_store(&now_ns, t0 + 5 * SEC - 1);
    json_t *got = cache_get(c, "short");
    assert_non_null(got);
    json_decref(got);
    atomic_store(&now_ns, t0 + 5 * SEC);
    assert_null(cache_get(c, "short"));
    atomic_store(&now_ns, t0 + 30 * SEC - 1);
    got = cache_get(c, "a");
    assert_non_null(got);
    json_decref(got);
    atomic_store(&now_ns, t0 + 30 * SEC);
    assert_null(cache_get(c, "a"));
    struct cache_stats st;
    cache_get_stats(c, &st);
    assert_int_equal(st.hits, 2);
    assert_int_equal(st.misses, 2);
    assert_int_equal(st.expirations, 2);
    assert_int_equal(st.entries, 0);
    assert_int_equal(v->refcount, 1); /* expired values were released */
    json_decref(v);

    /* A custom default TTL. */
    struct cache_options o = {.capacity = 4, .ttl_ms = 100, .clock = fake_clock};
    cache *d = cache_new(&o);
    v = val(1);
    cache_put(d, "k", v, 0);
    atomic_fetch_add(&now_ns, 100 * MS);
    assert_null(cache_get(d, "k"));
    json_decref(v);
    cache_free(d);
    cache_free(c);
}

static void test_lru(void **state)
{
    (void)state;
    cache *c = make(3);
    json_t *v[5];
    for (int i = 0; i < 5; i++)
        v[i] = val(i);
    cache_put(c, "a", v[0], 0);
    cache_put(c, "b", v[1], 0);
    cache_put(c, "c", v[2], 0);
    json_decref(cache_get(c, "a")); /* a is now the most recently used */
    cache_put(c, "d", v[3], 0);     /* b goes */
    json_t *got;
    assert_null(cache_get(c, "b"));
    assert_non_null(got = cache_get(c, "a"));
    json_decref(got);
    assert_non_null(got = cache_get(c, "c"));
    json_decref(got);
    assert_non_null(got = cache_get(c, "d"));
    json_decref(got);
    cache_put(c, "e", v[4], 0); /* a is the oldest now */
    assert_null(cache_get(c, "a"));
    struct cache_stats st;
    cache_get_stats(c, &st);
    assert_int_equal(st.evictions, 2);
    assert_int_equal(st.entries, 3);
    assert_int_equal(st.capacity, 3);
    assert_int_equal(v[0]->refcount, 1);
    assert_int_equal(v[1]->refcount, 1);
    /* Expired entries go before live ones when room is needed. */
    atomic_fetch_add(&now_ns, 31 * SEC);
    cache_put(c, "f", v[0], 0);
    cache_get_stats(c, &st);
    assert_int_equal(st.evictions, 2);
    assert_true(st.expirations >= 1);
    for (int i = 0; i < 5; i++)
        json_decref(v[i]);
    cache_free(c);
}

static void test_invalidate_and_tickets(void **state)
{
    (void)state;
    cache *c = make(10);
    json_t *old = val(1), *fresh = val(2);
    cache_put(c, "profile:9", old, 0);
    assert_true(cache_invalidate(c, "profile:9"));
    assert_null(cache_get(c, "profile:9"));
    assert_false(cache_invalidate(c, "profile:9"));
    assert_false(cache_invalidate(c, "never-there"));

    /* The race: a reader takes a ticket and loads, the owner changes the
     * data and invalidates, the reader's old copy must not be stored. */
    uint64_t t = cache_ticket(c);
    assert_true(cache_invalidate(c, "profile:9") == false);
    assert_false(cache_put_if_fresh(c, "profile:9", old, 0, t));
    assert_null(cache_get(c, "profile:9"));
    /* A reader that started after the change stores, and is seen. */
    uint64_t t2 = cache_ticket(c);
    assert_true(t2 > t);
    assert_true(cache_put_if_fresh(c, "profile:9", fresh, 0, t2));
    json_t *got = cache_get(c, "profile:9");
    assert_int_equal(n_of(got), 2);
    json_decref(got);
    /* The old reader is still refused even though a value is there now. */
    assert_false(cache_put_if_fresh(c, "profile:9", old, 0, t));
    got = cache_get(c, "profile:9");
    assert_int_equal(n_of(got), 2);
    json_decref(got);
    /* Other keys are not affected by that invalidation. */
    assert_true(cache_put_if_fresh(c, "profile:10", old, 0, t));
    struct cache_stats st;
    cache_get_stats(c, &st);
    assert_int_equal(st.invalidations, 1);

    /* When the mark itself is evicted, old tickets are refused for any
     * missing key (conservative), new ones work. */
    cache *small = make(2);
    uint64_t before = cache_ticket(small);
    cache_invalidate(small, "k");
    cache_put(small, "x", fresh, 0);
    cache_put(small, "y", fresh, 0); /* evicts the mark of k */
    assert_false(cache_put_if_fresh(small, "k", old, 0, before));
    assert_false(cache_put_if_fresh(small, "z", old, 0, before));
    assert_true(cache_put_if_fresh(small, "k", fresh, 0, cache_ticket(small)));
    cache_free(small);

    /* Clear drops everything and outdates every ticket. */
    uint64_t t3 = cache_ticket(c);
    cache_clear(c);
    assert_null(cache_get(c, "profile:10"));
    assert_false(cache_put_if_fresh(c, "profile:11", old, 0, t3));
    assert_true(cache_put_if_fresh(c, "profile:11", old, 0, cache_ticket(c)));
    cache_get_stats(c, &st);
    assert_int_equal(st.entries, 1);
    cache_free(c);
    assert_int_equal(old->refcount, 1);
    assert_int_equal(fresh->refcount, 1);
    json_decref(old);
    json_decref(fresh);
}

/* ---- values are freed outside the lock ---------------------------------- */

static cache *watched_cache;
static void *watched_ptr;
static _Atomic int freed_under_lock, watched_frees;

static void *ticket_thread(void *arg)
{
    (void)arg;
    cache_ticket(watched_cache); /* blocks while the cache's lock is held */
    return NULL;
}

static void watching_free(void *p)
{
    if (p && p == watched_ptr) {
        atomic_fetch_add(&watched_frees, 1);
        pthread_t t;
        if (pthread_create(&t, NULL, ticket_thread, NULL) == 0) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += 2;
            if (pthread_timedjoin_np(t, NULL, &until) == ETIMEDOUT) {
                atomic_store(&freed_under_lock, 1);
                pthread_detach(t);
            }
        }
    }
    free(p);
}

static void expect_free_unlocked(void (*op)(cache *c, const char *key), const char *what)
{
    cache *c = make(2);
    watched_cache = c;
    json_t *v = val(1);
    cache_put(c, "k", v, 0);
    json_decref(v); /* the cache holds the last reference */
    atomic_store(&watched_frees, 0);
    atomic_store(&freed_under_lock, 0);
    watched_ptr = v;
    op(c, "k");
    watched_ptr = NULL;
    if (atomic_load(&watched_frees) != 1) fail_msg("%s: the value was not freed", what);
    if (atomic_load(&freed_under_lock))
        fail_msg("%s: the value was freed while the lock was held", what);
    cache_free(c);
}

static void op_replace(cache *c, const char *key)
{
    json_t *w = val(2);
    cache_put(c, key, w, 0);
    json_decref(w);
}

static void op_invalidate(cache *c, const char *key)
{
    cache_invalidate(c, key);
}

static void op_evict(cache *c, const char *key)
{
    (void)key;
    json_t *w = val(3);
    cache_put(c, "other1", w, 0);
    cache_put(c, "other2", w, 0);
    json_decref(w);
}

static void op_expire(cache *c, const char *key)
{
    atomic_fetch_add(&now_ns, 60 * SEC);
    assert_null(cache_get(c, key));
}

static void op_clear(cache *c, const char *key)
{
    (void)key;
    cache_clear(c);
}

static void test_free_outside_lock(void **state)
{
    (void)state;
    json_set_alloc_funcs(malloc, watching_free);
    expect_free_unlocked(op_replace, "replace");
    expect_free_unlocked(op_invalidate, "invalidate");
    expect_free_unlocked(op_evict, "evict");
    expect_free_unlocked(op_expire, "expire");
    expect_free_unlocked(op_clear, "clear");
    json_set_alloc_funcs(malloc, free);
}

/* ---- threads ------------------------------------------------------------ */

struct worker {
    cache *c;
    unsigned seed;
    long gets, wrong;
};

static void *worker_thread(void *arg)
{
    struct worker *w = arg;
    char key[32];
    for (int i = 0; i < 20000; i++) {
        w->seed = w->seed * 1103515245u + 12345u;
        int k = (int)((w->seed >> 16) % 50), op = (int)((w->seed >> 8) % 10);
        snprintf(key, sizeof(key), "user:%d", k);
        if (op < 6) {
            json_t *v = cache_get(w->c, key);
            w->gets++;
            if (v && n_of(v) != k) w->wrong++;
            json_decref(v);
        } else if (op < 9) {
            uint64_t t = cache_ticket(w->c);
            json_t *v = val(k);
            cache_put_if_fresh(w->c, key, v, (op == 8) ? 1 : 0, t);
            json_decref(v);
        } else {
            cache_invalidate(w->c, key);
        }
        if (i % 1000 == 0) atomic_fetch_add(&now_ns, 10 * MS);
    }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    cache *c = make(20);
    struct worker w[8];
    pthread_t t[8];
    for (int i = 0; i < 8; i++) {
        w[i] = (struct worker){c, (unsigned)(i * 7919 + 1), 0, 0};
        assert_int_equal(pthread_create(&t[i], NULL, worker_thread, &w[i]), 0);
    }
    long gets = 0;
    for (int i = 0; i < 8; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(w[i].wrong, 0); /* never another key's value */
        gets += w[i].gets;
    }
    struct cache_stats st;
    cache_get_stats(c, &st);
    assert_int_equal(st.hits + st.misses, (uint64_t)gets);
    assert_true(st.hits > 0 && st.misses > 0);
    assert_true(st.entries <= 20);
    assert_true(st.evictions > 0);
    cache_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_references),
        cmocka_unit_test(test_ttl),
        cmocka_unit_test(test_lru),
        cmocka_unit_test(test_invalidate_and_tickets),
        cmocka_unit_test(test_free_outside_lock),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
