/*
 * test_session.c - server-side sessions and flash messages over a real
 * database: new id per login, lookup by cookie token, expiry (24 h / 30
 * days), last_seen_at written at most once a minute, revocation of one and
 * of all sessions of a user, anonymous sessions, damaged data, and flash
 * messages shown exactly once even with two tabs and concurrent writers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>

#include <cmocka.h>

#include "web/security.h"
#include "../db/db_test_util.h"

static const int64_t NOW = 1700000000;

static void test_create_and_load(void **state)
{
    struct dbt *t = *state;
    struct echo_err err = {0};
    int64_t uid = dbt_user(t->d, "sue");
    char tok[SEC_TOKEN_LEN + 1], tok2[SEC_TOKEN_LEN + 1];
    struct sec_session s, s2, got;
    assert_int_equal(sec_session_create(t->d, uid, false, NOW, tok, &s, &err), DB_OK);
    assert_int_equal(strlen(tok), SEC_TOKEN_LEN);
    assert_int_equal(s.user_id, uid);
    assert_int_equal(s.expires_at, NOW + SEC_SESSION_TTL);
    assert_false(s.remember);
    assert_int_equal(sec_session_cookie_max_age(&s, NOW), 0);
    /* Every login is a new session with a new id. */
    assert_int_equal(sec_session_create(t->d, uid, true, NOW, tok2, &s2, &err), DB_OK);
    assert_string_not_equal(tok, tok2);
    assert_memory_not_equal(s.id_hash, s2.id_hash, SEC_HASH_LEN);
    assert_int_equal(s2.expires_at, NOW + SEC_SESSION_REMEMBER_TTL);
    assert_int_equal(sec_session_cookie_max_age(&s2, NOW + 100), SEC_SESSION_REMEMBER_TTL - 100);

    assert_int_equal(sec_session_load(t->d, tok, NOW + 10, &got, &err), DB_OK);
    assert_int_equal(got.user_id, uid);
    assert_memory_equal(got.id_hash, s.id_hash, SEC_HASH_LEN);
    assert_true(json_is_object(got.data));
    sec_session_deinit(&got);

    /* Only the hash is stored: the raw token bytes are not a key. */
    struct db_session row;
    assert_int_equal(db_session_get(t->d, s.id_hash, &row, &err), DB_OK);
    db_session_deinit(&row);
    unsigned char raw[64];
    memcpy(raw, tok, 32);
    assert_int_equal(db_session_get(t->d, raw, &row, &err), DB_NOT_FOUND);

    /* Malformed and unknown tokens find nothing. */
    assert_int_equal(sec_session_load(t->d, "", NOW, &got, &err), DB_NOT_FOUND);
    assert_int_equal(sec_session_load(t->d, NULL, NOW, &got, &err), DB_NOT_FOUND);
    assert_int_equal(sec_session_load(t->d, "'; DROP TABLE sessions; --", NOW, &got, &err),
                     DB_NOT_FOUND);
    char unknown[SEC_TOKEN_LEN + 1];
    unsigned char h[SEC_HASH_LEN];
    sec_token_new(unknown, h);
    assert_int_equal(sec_session_load(t->d, unknown, NOW, &got, &err), DB_NOT_FOUND);
    sec_session_deinit(&s);
    sec_session_deinit(&s2);
}

static void test_expiry(void **state)
{
    struct dbt *t = *state;
    struct echo_err err = {0};
    int64_t uid = dbt_user(t->d, "tim");
    char short_tok[SEC_TOKEN_LEN + 1], long_tok[SEC_TOKEN_LEN + 1];
    struct sec_session a, b, got;
    assert_int_equal(sec_session_create(t->d, uid, false, NOW, short_tok, &a, &err), DB_OK);
    assert_int_equal(sec_session_create(t->d, uid, true, NOW, long_tok, &b, &err), DB_OK);
    assert_int_equal(sec_session_load(t->d, short_tok, NOW + SEC_SESSION_TTL - 1, &got, &err),
                     DB_OK);
    sec_session_deinit(&got);
    assert_int_equal(sec_session_load(t->d, short_tok, NOW + SEC_SESSION_TTL, &got, &err),
                     DB_NOT_FOUND);
    /* The expired row is gone, not only refused. */
    struct db_session row;
    assert_int_equal(db_session_get(t->d, a.id_hash, &row, &err), DB_NOT_FOUND);
    /* Use does not extend a session: 29 days in it still ends at 30. */
    assert_int_equal(sec_session_load(t->d, long_tok, NOW + 29 * 86400, &got, &err), DB_OK);
    assert_int_equal(got.expires_at, NOW + SEC_SESSION_REMEMBER_TTL);
    sec_session_deinit(&got);
    assert_int_equal(sec_session_load(t->d, long_tok, NOW + 30 * 86400, &got, &err), DB_NOT_FOUND);
    sec_session_deinit(&a);
    sec_session_deinit(&b);

    /* Creating a session purges everyone's expired sessions. */
    struct sec_session c, d2;
    char t1[SEC_TOKEN_LEN + 1], t2[SEC_TOKEN_LEN + 1];
    assert_int_equal(sec_session_create(t->d, uid, false, NOW, t1, &c, &err), DB_OK);
    int64_t n = 0;
    assert_int_equal(db_session_count_user(t->d, uid, &n, &err), DB_OK);
    assert_int_equal(n, 1);
    assert_int_equal(sec_session_create(t->d, uid, false, NOW + SEC_SESSION_TTL, t2, &d2, &err),
                     DB_OK);
    assert_int_equal(db_session_count_user(t->d, uid, &n, &err), DB_OK);
    assert_int_equal(n, 1);
    sec_session_deinit(&c);
    sec_session_deinit(&d2);
}

static void test_touch_once_a_minute(void **state)
{
    struct dbt *t = *state;
    struct echo_err err = {0};
    int64_t uid = dbt_user(t->d, "una");
    char tok[SEC_TOKEN_LEN + 1];
    struct sec_session s, got;
    assert_int_equal(sec_session_create(t->d, uid, false, NOW, tok, &s, &err), DB_OK);
    assert_int_equal(sec_session_load(t->d, tok, NOW + 59, &got, &err), DB_OK);
    assert_int_equal(got.last_seen_at, NOW);
    sec_session_deinit(&got);
    struct db_session row;
    assert_int_equal(db_session_get(t->d, s.id_hash, &row, &err), DB_OK);
    assert_int_equal(row.last_seen_at, NOW);
    db_session_deinit(&row);
    assert_int_equal(sec_session_load(t->d, tok, NOW + 60, &got, &err), DB_OK);
    assert_int_equal(got.last_seen_at, NOW + 60);
    sec_session_deinit(&got);
    assert_int_equal(db_session_get(t->d, s.id_hash, &row, &err), DB_OK);
    assert_int_equal(row.last_seen_at, NOW + 60);
    db_session_deinit(&row);
    sec_session_deinit(&s);
}

static void test_revoke(void **state)
{
    struct dbt *t = *state;
    struct echo_err err = {0};
    int64_t uid = dbt_user(t->d, "vic"), other = dbt_user(t->d, "wes");
    char tok[4][SEC_TOKEN_LEN + 1], otok[SEC_TOKEN_LEN + 1];
    struct sec_session s[4], os, got;
    for (int i = 0; i < 4; i++)
        assert_int_equal(sec_session_create(t->d, uid, i % 2, NOW, tok[i], &s[i], &err), DB_OK);
    assert_int_equal(sec_session_create(t->d, other, false, NOW, otok, &os, &err), DB_OK);

    /* Logout: that session only. */
    assert_int_equal(sec_session_revoke(t->d, &s[0], &err), DB_OK);
    assert_int_equal(sec_session_load(t->d, tok[0], NOW, &got, &err), DB_NOT_FOUND);
    assert_int_equal(sec_session_revoke(t->d, &s[0], &err), DB_NOT_FOUND);
    assert_int_equal(sec_session_load(t->d, tok[1], NOW, &got, &err), DB_OK);
    sec_session_deinit(&got);

    /* Password change: every other session of the user. */
    int64_t revoked = 0;
    assert_int_equal(sec_session_revoke_user(t->d, uid, s[3].id_hash, &revoked, &err), DB_OK);
    assert_int_equal(revoked, 2);
    assert_int_equal(sec_session_load(t->d, tok[1], NOW, &got, &err), DB_NOT_FOUND);
    assert_int_equal(sec_session_load(t->d, tok[2], NOW, &got, &err), DB_NOT_FOUND);
    assert_int_equal(sec_session_load(t->d, tok[3], NOW, &got, &err), DB_OK);
    sec_session_deinit(&got);
    assert_int_equal(sec_session_load(t->d, otok, NOW, &got, &err), DB_OK);
    sec_session_deinit(&got);
    assert_int_equal(sec_session_revoke_user(t->d, uid, NULL, &revoked, &err), DB_OK);
    assert_int_equal(revoked, 1);
    assert_int_equal(sec_session_load(t->d, tok[3], NOW, &got, &err), DB_NOT_FOUND);

    /* Deleting the user ends their sessions too. */
    assert_int_equal(db_user_delete(t->d, other, &err), DB_OK);
    assert_int_equal(sec_session_load(t->d, otok, NOW, &got, &err), DB_NOT_FOUND);
    for (int i = 0; i < 4; i++)
        sec_session_deinit(&s[i]);
    sec_session_deinit(&os);
}

static void test_anonymous_and_damaged(void **state)
{
    struct dbt *t = *state;
    struct echo_err err = {0};
    char tok[SEC_TOKEN_LEN + 1];
    struct sec_session s, got;
    assert_int_equal(sec_session_create(t->d, 0, true, NOW, tok, &s, &err), DB_OK);
    assert_int_equal(s.user_id, 0);
    assert_false(s.remember); /* "remember me" means nothing without a login */
    assert_int_equal(s.expires_at, NOW + SEC_SESSION_ANON_TTL);
    assert_int_equal(sec_session_load(t->d, tok, NOW, &got, &err), DB_OK);
    assert_int_equal(got.user_id, 0);
    sec_session_deinit(&got);
    /* Data that is an array (written by hand) loads as {}. */
    assert_int_equal(db_session_set_data(t->d, s.id_hash, "[1,2]", &err), DB_INVALID);
    assert_int_equal(db_session_set_data(t->d, s.id_hash, "{\"_flashes\": 5}", &err), DB_OK);
    assert_int_equal(sec_session_load(t->d, tok, NOW, &got, &err), DB_OK);
    json_t *f = sec_flash_pop(t->d, &got, &err);
    assert_non_null(f);
    assert_int_equal(json_array_size(f), 0);
    json_decref(f);
    assert_null(json_object_get(got.data, "_flashes"));
    sec_session_deinit(&got);
    sec_session_deinit(&s);
}

static void test_flash(void **state)
{
    struct dbt *t = *state;
    struct echo_err err = {0};
    int64_t uid = dbt_user(t->d, "xena");
    char tok[SEC_TOKEN_LEN + 1];
    struct sec_session s, tab2;
    assert_int_equal(sec_session_create(t->d, uid, false, NOW, tok, &s, &err), DB_OK);

    json_t *none = sec_flash_pop(t->d, &s, &err);
    assert_int_equal(json_array_size(none), 0);
    json_decref(none);

    assert_int_equal(sec_flash_add(t->d, &s, "success", "Welcome, xena!", &err), DB_OK);
    assert_int_equal(sec_flash_add(t->d, &s, "info", "<b>escaped later</b>", &err), DB_OK);
    assert_int_equal(sec_flash_add(t->d, &s, "Bad", "x", &err), DB_INVALID);
    assert_int_equal(sec_flash_add(t->d, &s, "", "x", &err), DB_INVALID);
    assert_int_equal(sec_flash_add(t->d, &s, "info", "\xff", &err), DB_INVALID);
    assert_int_equal(sec_flash_add(t->d, &s, "info", NULL, &err), DB_INVALID);

    /* The next request of the session sees them once. */
    assert_int_equal(sec_session_load(t->d, tok, NOW, &tab2, &err), DB_OK);
    json_t *got = sec_flash_pop(t->d, &tab2, &err);
    assert_int_equal(json_array_size(got), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(got, 0), "category")),
                        "success");
    assert_string_equal(json_string_value(json_object_get(json_array_get(got, 0), "text")),
                        "Welcome, xena!");
    assert_string_equal(json_string_value(json_object_get(json_array_get(got, 1), "text")),
                        "<b>escaped later</b>");
    json_decref(got);
    /* The first tab still has them in memory, but they are gone. */
    assert_non_null(json_object_get(s.data, "_flashes"));
    got = sec_flash_pop(t->d, &s, &err);
    assert_int_equal(json_array_size(got), 0);
    json_decref(got);
    got = sec_flash_pop(t->d, &tab2, &err);
    assert_int_equal(json_array_size(got), 0);
    json_decref(got);

    /* Bounded: the newest SEC_FLASH_MAX are kept. */
    for (int i = 0; i < SEC_FLASH_MAX + 5; i++) {
        char text[32];
        snprintf(text, sizeof(text), "m%d", i);
        assert_int_equal(sec_flash_add(t->d, &s, "info", text, &err), DB_OK);
    }
    got = sec_flash_pop(t->d, &s, &err);
    assert_int_equal(json_array_size(got), SEC_FLASH_MAX);
    assert_string_equal(json_string_value(json_object_get(json_array_get(got, 0), "text")), "m5");
    json_decref(got);

    /* Long text is cut at a character boundary. */
    char *big = malloc(3 * 2000 + 1);
    big[0] = 0;
    for (int i = 0; i < 2000; i++)
        strcat(big, "\xe2\x82\xac");
    assert_int_equal(sec_flash_add(t->d, &s, "warning", big, &err), DB_OK);
    free(big);
    got = sec_flash_pop(t->d, &s, &err);
    const char *text = json_string_value(json_object_get(json_array_get(got, 0), "text"));
    assert_int_equal(strlen(text), SEC_FLASH_TEXT_MAX / 3 * 3);
    assert_true(utf8_valid(text, strlen(text)));
    json_decref(got);

    /* A revoked session cannot take flashes. */
    assert_int_equal(sec_session_revoke(t->d, &s, &err), DB_OK);
    assert_int_equal(sec_flash_add(t->d, &s, "info", "late", &err), DB_NOT_FOUND);
    sec_session_deinit(&s);
    sec_session_deinit(&tab2);
}

struct flasher {
    db_pool *pool;
    const char *token;
    int index;
    int failures;
};

static void *flasher_thread(void *arg)
{
    struct flasher *f = arg;
    for (int i = 0; i < 4; i++) {
        struct echo_err err = {0};
        db *d = db_pool_acquire(f->pool, 10000, &err);
        struct sec_session s;
        if (!d || sec_session_load(d, f->token, NOW, &s, &err) != DB_OK) {
            f->failures++;
            db_pool_release(f->pool, d);
            continue;
        }
        char text[32];
        snprintf(text, sizeof(text), "t%d-%d", f->index, i);
        if (sec_flash_add(d, &s, "info", text, &err) != DB_OK) f->failures++;
        sec_session_deinit(&s);
        db_pool_release(f->pool, d);
    }
    return NULL;
}

/* Four threads add to one session at once: no message is lost. */
static void test_flash_concurrent(void **state)
{
    struct dbt *t = *state;
    struct echo_err err = {0};
    int64_t uid = dbt_user(t->d, "yan");
    char tok[SEC_TOKEN_LEN + 1];
    struct sec_session s;
    assert_int_equal(sec_session_create(t->d, uid, false, NOW, tok, &s, &err), DB_OK);
    db_pool *pool = db_pool_new(t->path, 4, &err);
    assert_non_null(pool);
    struct flasher f[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        f[i] = (struct flasher){.pool = pool, .token = tok, .index = i};
        assert_int_equal(pthread_create(&th[i], NULL, flasher_thread, &f[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(f[i].failures, 0);
    }
    db_pool_free(pool);
    struct sec_session fresh;
    assert_int_equal(sec_session_load(t->d, tok, NOW, &fresh, &err), DB_OK);
    json_t *got = sec_flash_pop(t->d, &fresh, &err);
    assert_int_equal(json_array_size(got), 16);
    json_decref(got);
    sec_session_deinit(&fresh);
    sec_session_deinit(&s);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, dbt_setup, dbt_teardown)
    const struct CMUnitTest tests[] = {
        T(test_create_and_load),       T(test_expiry), T(test_touch_once_a_minute), T(test_revoke),
        T(test_anonymous_and_damaged), T(test_flash),  T(test_flash_concurrent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
