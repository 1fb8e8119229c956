/*
 * test_ratelimit.c - the GCRA limiter with an injected clock: rule parsing
 * and its errors, the burst and the exact window edges of 5/second,
 * 1/minute and 100/hour, the header numbers (remaining, reset, Retry-After),
 * separation per client, per endpoint and per IPv6 /64, bad arguments,
 * many threads on one key (exactly N pass), the memory bound under 100,000
 * distinct clients, gradual reclaiming of expired keys, and the store
 * interface (a failing store fails open with an error).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>

#include <cmocka.h>

#include "web/ratelimit.h"

#define MS 1000000LL
#define SEC 1000000000LL

static _Atomic int64_t now_ns = 1000 * SEC;

static int64_t fake_clock(void *ctx)
{
    (void)ctx;
    return atomic_load(&now_ns);
}

static ratelimit *limiter(size_t max_entries, unsigned shards)
{
    struct rl_options o = {.max_entries = max_entries, .shards = shards, .clock = fake_clock};
    ratelimit *rl = rl_new(&o);
    assert_non_null(rl);
    return rl;
}

static struct rl_rule rule(const char *text)
{
    struct rl_rule r;
    struct echo_err err = {0};
    if (rl_rule_parse(text, &r, &err) != RL_OK) fail_msg("%s: %s", text, err.msg);
    return r;
}

static void test_parse(void **state)
{
    (void)state;
    struct rl_rule r;
    struct echo_err err = {0};
    char buf[64];
    r = rule("5/second");
    assert_true(r.count == 5 && r.period_s == 1);
    r = rule(" 1 / Minute ");
    assert_true(r.count == 1 && r.period_s == 60);
    r = rule("100 per hours");
    assert_true(r.count == 100 && r.period_s == 3600);
    r = rule("1000/DAY");
    assert_true(r.count == 1000 && r.period_s == 86400);
    rl_rule_format(&r, buf, sizeof(buf));
    assert_string_equal(buf, "1000/day");
    r.count = 3, r.period_s = 10;
    rl_rule_format(&r, buf, sizeof(buf));
    assert_string_equal(buf, "3/10 seconds");

    struct {
        const char *text, *says;
    } bad[] = {{"", "empty"},
               {NULL, "empty"},
               {"five/second", "count"},
               {"0/second", "at least 1"},
               {"5/fortnight", "second, minute, hour or day"},
               {"5/seconds2", "second, minute, hour or day"},
               {"5/second extra", "second, minute, hour or day"},
               {"5 second", "\"/\" or \"per\""},
               {"5/", "period"},
               {"99999999999/second", "over"},
               {"-1/second", "count"},
               {"999999/second", "exactly"}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err.msg[0] = 0;
        if (rl_rule_parse(bad[i].text, &r, &err) != RL_ERR_INVALID)
            fail_msg("\"%s\" was accepted", bad[i].text ? bad[i].text : "(null)");
        if (!strstr(err.msg, bad[i].says))
            fail_msg("\"%s\": message \"%s\" lacks \"%s\"", bad[i].text ? bad[i].text : "(null)",
                     err.msg, bad[i].says);
    }
    /* The largest exact count per second is accepted. */
    r = rule("30000/second");
    assert_int_equal(r.count, 30000);
}

static void test_five_per_second_edges(void **state)
{
    (void)state;
    ratelimit *rl = limiter(0, 0);
    struct rl_rule r = rule("5/second");
    struct rl_result res;
    int64_t t0 = atomic_load(&now_ns);
    for (uint32_t i = 0; i < 5; i++) {
        assert_int_equal(rl_check(rl, "index", "10.0.0.1", &r, &res), RL_OK);
        assert_true(res.allowed);
        assert_int_equal(res.limit, 5);
        assert_int_equal(res.remaining, 4 - i);
        assert_int_equal(res.retry_after_s, 0);
    }
    assert_int_equal(res.reset_s, 1);
    /* The sixth in the same instant is refused; one more fits 200 ms later. */
    assert_int_equal(rl_check(rl, "index", "10.0.0.1", &r, &res), RL_OK);
    assert_false(res.allowed);
    assert_int_equal(res.remaining, 0);
    assert_int_equal(res.retry_after_ns, 200 * MS);
    assert_int_equal(res.retry_after_s, 1);
    atomic_store(&now_ns, t0 + 200 * MS - 1);
    rl_check(rl, "index", "10.0.0.1", &r, &res);
    assert_false(res.allowed);
    assert_int_equal(res.retry_after_ns, 1);
    assert_int_equal(res.retry_after_s, 1); /* never 0: "retry now" would be a lie */
    atomic_store(&now_ns, t0 + 200 * MS);
    rl_check(rl, "index", "10.0.0.1", &r, &res);
    assert_true(res.allowed);
    assert_int_equal(res.remaining, 0);
    rl_check(rl, "index", "10.0.0.1", &r, &res);
    assert_false(res.allowed);
    /* After a quiet full period the whole burst is back (no fixed-window
     * edge letting 2N through). */
    atomic_store(&now_ns, t0 + 1200 * MS);
    for (int i = 0; i < 5; i++) {
        rl_check(rl, "index", "10.0.0.1", &r, &res);
        assert_true(res.allowed);
    }
    rl_check(rl, "index", "10.0.0.1", &r, &res);
    assert_false(res.allowed);
    rl_free(rl);
}

static void test_minute_and_hour(void **state)
{
    (void)state;
    ratelimit *rl = limiter(0, 0);
    struct rl_rule minute = rule("1/minute"), hour = rule("100/hour");
    struct rl_result res;
    int64_t t0 = atomic_load(&now_ns);
    rl_check(rl, "login", "192.0.2.7", &minute, &res);
    assert_true(res.allowed);
    assert_int_equal(res.reset_s, 60);
    rl_check(rl, "login", "192.0.2.7", &minute, &res);
    assert_false(res.allowed);
    assert_int_equal(res.retry_after_s, 60);
    atomic_store(&now_ns, t0 + 60 * SEC - 1 * MS);
    rl_check(rl, "login", "192.0.2.7", &minute, &res);
    assert_false(res.allowed);
    assert_int_equal(res.retry_after_s, 1);
    atomic_store(&now_ns, t0 + 60 * SEC);
    rl_check(rl, "login", "192.0.2.7", &minute, &res);
    assert_true(res.allowed);

    for (int i = 0; i < 100; i++) {
        rl_check(rl, "feedback", "192.0.2.7", &hour, &res);
        assert_true(res.allowed);
    }
    assert_int_equal(res.reset_s, 3600);
    rl_check(rl, "feedback", "192.0.2.7", &hour, &res);
    assert_false(res.allowed);
    assert_int_equal(res.retry_after_s, 36);
    rl_free(rl);
}

static void test_separation(void **state)
{
    (void)state;
    ratelimit *rl = limiter(0, 0);
    struct rl_rule r = rule("1/second");
    struct rl_result res;
    rl_check(rl, "login", "198.51.100.1", &r, &res);
    assert_true(res.allowed);
    rl_check(rl, "login", "198.51.100.1", &r, &res);
    assert_false(res.allowed);
    /* Another client, another endpoint: their own allowance. */
    rl_check(rl, "login", "198.51.100.2", &r, &res);
    assert_true(res.allowed);
    rl_check(rl, "signup", "198.51.100.1", &r, &res);
    assert_true(res.allowed);

    /* IPv6: one /64 is one client; the next /64 is another. */
    rl_check(rl, "login", "2001:db8:1:2::1", &r, &res);
    assert_true(res.allowed);
    rl_check(rl, "login", "2001:db8:1:2:ffff:eeee:dddd:9", &r, &res);
    assert_false(res.allowed);
    rl_check(rl, "login", "2001:DB8:1:2::77", &r, &res);
    assert_false(res.allowed);
    rl_check(rl, "login", "2001:db8:1:3::1", &r, &res);
    assert_true(res.allowed);
    /* An IPv4-mapped address is its IPv4 address. */
    rl_check(rl, "login", "::ffff:198.51.100.2", &r, &res);
    assert_false(res.allowed);
    /* Not an address: used as it is, still limited. */
    rl_check(rl, "login", "unknown", &r, &res);
    assert_true(res.allowed);
    rl_check(rl, "login", "unknown", &r, &res);
    assert_false(res.allowed);
    rl_free(rl);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    ratelimit *rl = limiter(0, 0);
    struct rl_rule r = rule("5/second"), zero = {0, 1}, inexact = {999999, 1},
                   long_period = {1, 90000};
    struct rl_result res;
    char huge[300];
    memset(huge, 'a', sizeof(huge) - 1);
    huge[sizeof(huge) - 1] = 0;
    assert_int_equal(rl_check(rl, "x", "1.2.3.4", NULL, &res), RL_ERR_INVALID);
    assert_true(res.allowed);
    assert_int_equal(rl_check(rl, "x", "1.2.3.4", &zero, &res), RL_ERR_INVALID);
    assert_int_equal(rl_check(rl, "x", "1.2.3.4", &inexact, &res), RL_ERR_INVALID);
    assert_int_equal(rl_check(rl, "x", "1.2.3.4", &long_period, &res), RL_ERR_INVALID);
    assert_int_equal(rl_check(rl, NULL, "1.2.3.4", &r, &res), RL_ERR_INVALID);
    assert_int_equal(rl_check(rl, "x", NULL, &r, &res), RL_ERR_INVALID);
    assert_int_equal(rl_check(rl, "x", huge, &r, &res), RL_ERR_INVALID);
    assert_int_equal(rl_check(rl, huge, "1.2.3.4", &r, &res), RL_ERR_INVALID);
    assert_int_equal(rl_check(NULL, "x", "1.2.3.4", &r, &res), RL_ERR_INVALID);
    struct rl_stats st;
    rl_get_stats(rl, &st);
    assert_int_equal(st.entries, 0);
    rl_free(rl);
    rl_free(NULL);
}

struct hammer {
    ratelimit *rl;
    struct rl_rule rule;
    int tries;
    _Atomic int allowed;
};

static void *hammer_thread(void *arg)
{
    struct hammer *h = arg;
    struct rl_result res;
    for (int i = 0; i < h->tries; i++) {
        if (rl_check(h->rl, "index", "203.0.113.9", &h->rule, &res) == RL_OK && res.allowed)
            atomic_fetch_add(&h->allowed, 1);
        /* Other keys in the same table at the same time. */
        char other[32];
        snprintf(other, sizeof(other), "203.0.113.%d", i % 200);
        rl_check(h->rl, "profile", other, &h->rule, &res);
    }
    return NULL;
}

static void test_threads_one_key(void **state)
{
    (void)state;
    ratelimit *rl = limiter(0, 4);
    struct hammer h = {rl, rule("1000/hour"), 5000, 0};
    pthread_t t[8];
    for (int i = 0; i < 8; i++)
        assert_int_equal(pthread_create(&t[i], NULL, hammer_thread, &h), 0);
    for (int i = 0; i < 8; i++)
        pthread_join(t[i], NULL);
    /* 40,000 attempts in one instant: exactly the allowance passes. */
    assert_int_equal(atomic_load(&h.allowed), 1000);

    /* With time moving: after 3.6 s of a 1000/hour rule, one more. */
    atomic_fetch_add(&now_ns, 3600 * MS);
    atomic_store(&h.allowed, 0);
    h.tries = 100;
    for (int i = 0; i < 8; i++)
        assert_int_equal(pthread_create(&t[i], NULL, hammer_thread, &h), 0);
    for (int i = 0; i < 8; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(atomic_load(&h.allowed), 1);
    rl_free(rl);
}

static void test_memory_bound(void **state)
{
    (void)state;
    ratelimit *rl = limiter(10000, 16);
    struct rl_rule r = rule("5/second");
    struct rl_result res;
    struct rl_stats st;
    rl_get_stats(rl, &st);
    assert_int_equal(st.capacity, 10000);
    char ip[64];
    for (int i = 0; i < 100000; i++) {
        snprintf(ip, sizeof(ip), "10.%d.%d.%d", i >> 16, (i >> 8) & 255, i & 255);
        assert_int_equal(rl_check(rl, "index", ip, &r, &res), RL_OK);
        assert_true(res.allowed);
        if (i % 997 == 0) {
            rl_get_stats(rl, &st);
            assert_true(st.entries <= 10000);
        }
    }
    rl_get_stats(rl, &st);
    assert_int_equal(st.entries, 10000);
    assert_int_equal(st.evicted, 90000);
    /* Once every allowance is full again, everything can go. */
    atomic_fetch_add(&now_ns, 2 * SEC);
    assert_int_equal(rl_sweep(rl), 10000);
    rl_get_stats(rl, &st);
    assert_int_equal(st.entries, 0);
    assert_int_equal(st.expired, 10000);
    rl_free(rl);

    /* Without a sweep, use reclaims expired keys before evicting live ones. */
    rl = limiter(1000, 1);
    for (int i = 0; i < 1000; i++) {
        snprintf(ip, sizeof(ip), "172.16.%d.%d", i >> 8, i & 255);
        rl_check(rl, "index", ip, &r, &res);
    }
    atomic_fetch_add(&now_ns, 2 * SEC);
    for (int i = 0; i < 600; i++) {
        snprintf(ip, sizeof(ip), "172.17.%d.%d", i >> 8, i & 255);
        rl_check(rl, "index", ip, &r, &res);
    }
    rl_get_stats(rl, &st);
    assert_int_equal(st.evicted, 0);
    assert_true(st.expired >= 600);
    assert_true(st.entries >= 600 && st.entries <= 1000);
    rl_free(rl);
}

/* A store that records what it was asked, or fails. */
struct fake_store {
    int calls;
    char key[128];
    int64_t emission, period;
    bool fail;
    bool freed;
};

static int fake_gcra(void *store, const char *key, size_t key_len, int64_t now, int64_t emission,
                     int64_t period, bool *allowed, int64_t *tat)
{
    struct fake_store *f = store;
    f->calls++;
    snprintf(f->key, sizeof(f->key), "%.*s", (int)key_len, key);
    f->emission = emission;
    f->period = period;
    if (f->fail) return RL_ERR_STORE;
    *allowed = true;
    *tat = now + emission;
    return RL_OK;
}

static void fake_free(void *store)
{
    ((struct fake_store *)store)->freed = true;
}

static void test_store_interface(void **state)
{
    (void)state;
    static const struct rl_store_ops ops = {"fake", fake_gcra, NULL, fake_free};
    struct fake_store f = {0};
    struct rl_options o = {.clock = fake_clock};
    ratelimit *rl = rl_new_with_store(&ops, &f, &o);
    struct rl_rule r = rule("4/minute");
    struct rl_result res;
    assert_int_equal(rl_check(rl, "login", "2001:db8::5", &r, &res), RL_OK);
    assert_int_equal(f.calls, 1);
    assert_string_equal(f.key, "login\n2001:db8::/64");
    assert_int_equal(f.emission, 15 * SEC);
    assert_int_equal(f.period, 60 * SEC);
    assert_true(res.allowed);
    assert_int_equal(res.remaining, 3);
    f.fail = true;
    assert_int_equal(rl_check(rl, "login", "2001:db8::5", &r, &res), RL_ERR_STORE);
    assert_true(res.allowed); /* the caller decides; the result does not block */
    assert_int_equal(rl_sweep(rl), 0);
    struct rl_stats st;
    rl_get_stats(rl, &st);
    assert_int_equal(st.capacity, 0);
    rl_free(rl);
    assert_true(f.freed);
    assert_null(rl_new_with_store(NULL, NULL, NULL));
}

static void test_real_clock(void **state)
{
    (void)state;
    /* The default clock: a burst passes and the next is refused. */
    ratelimit *rl = rl_new(NULL);
    struct rl_rule r = rule("3/hour");
    struct rl_result res;
    for (int i = 0; i < 3; i++) {
        rl_check(rl, "x", "127.0.0.1", &r, &res);
        assert_true(res.allowed);
    }
    rl_check(rl, "x", "127.0.0.1", &r, &res);
    assert_false(res.allowed);
    assert_true(res.retry_after_s > 1190 && res.retry_after_s <= 1200);
    rl_free(rl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),           cmocka_unit_test(test_five_per_second_edges),
        cmocka_unit_test(test_minute_and_hour), cmocka_unit_test(test_separation),
        cmocka_unit_test(test_bad_arguments),   cmocka_unit_test(test_threads_one_key),
        cmocka_unit_test(test_memory_bound),    cmocka_unit_test(test_store_interface),
        cmocka_unit_test(test_real_clock),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
