/*
 * test_db_core.c - connections and their settings, the statement cache,
 * nested transactions, DB_BUSY after the busy timeout, the connection pool
 * under concurrent writers (no lost row), integrity checks, and files that
 * are not databases or cannot be opened.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include <cmocka.h>

#include "db/db_internal.h"
#include "db_test_util.h"

static const char *pragma_text(db *d, const char *sql, char *buf, size_t size)
{
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(d->sq, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    snprintf(buf, size, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return buf;
}

static void test_open_settings(void **state)
{
    struct dbt *t = *state;
    char buf[64];
    assert_string_equal(pragma_text(t->d, "PRAGMA journal_mode", buf, sizeof(buf)), "wal");
    assert_string_equal(pragma_text(t->d, "PRAGMA foreign_keys", buf, sizeof(buf)), "1");
    assert_string_equal(pragma_text(t->d, "PRAGMA synchronous", buf, sizeof(buf)), "2");
    assert_int_equal(t->d->busy_timeout_ms, DB_BUSY_TIMEOUT_MS);
    assert_string_equal(db_path(t->d), t->path);
    assert_string_equal(db_status_name(DB_CONFLICT), "conflict");
    assert_string_equal(db_status_name(-99), "error");
}

static void test_open_failures(void **state)
{
    struct dbt *t = *state;
    struct echo_err err = {0};
    char path[300];
    snprintf(path, sizeof(path), "%s/no/such/dir/echo.db", t->dir);
    assert_null(db_open(path, &err));
    assert_non_null(strstr(err.msg, "cannot open database"));

    /* A file that is not SQLite is refused with SQLite's reason. */
    snprintf(path, sizeof(path), "%s/garbage.db", t->dir);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    for (int i = 0; i < 4096; i++)
        fputc((i * 7) & 0xff, f);
    fclose(f);
    echo_err_clear(&err);
    assert_null(db_open(path, &err));
    assert_non_null(strstr(err.msg, "not a database"));
}

static void test_statement_cache(void **state)
{
    struct dbt *t = *state;
    static const char sql[] = "SELECT ?1 + 1";
    struct echo_err err = {0};
    sqlite3_stmt *a = db_stmt(t->d, sql, &err);
    assert_non_null(a);
    sqlite3_bind_int(a, 1, 41);
    assert_int_equal(sqlite3_step(a), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(a, 0), 42);
    /* Not finished on purpose: the next fetch must come back reset and
     * without the old binding. */
    sqlite3_stmt *b = db_stmt(t->d, sql, &err);
    assert_ptr_equal(a, b);
    assert_int_equal(sqlite3_step(b), SQLITE_ROW);
    assert_int_equal(sqlite3_column_type(b, 0), SQLITE_NULL);
    db_stmt_done(b);
    /* Many distinct statements grow the table without losing any. */
    static char sqls[200][32];
    sqlite3_stmt *got[200];
    for (int i = 0; i < 200; i++) {
        snprintf(sqls[i], sizeof(sqls[i]), "SELECT %d", i);
        got[i] = db_stmt(t->d, sqls[i], &err);
        assert_non_null(got[i]);
    }
    for (int i = 0; i < 200; i++) {
        sqlite3_stmt *st = db_stmt(t->d, sqls[i], &err);
        assert_ptr_equal(st, got[i]);
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        assert_int_equal(sqlite3_column_int(st, 0), i);
        db_stmt_done(st);
    }
    static const char bad[] = "SELEKT 1";
    assert_null(db_stmt(t->d, bad, &err));
    assert_non_null(strstr(err.msg, "syntax error"));
}

static int64_t count_users(db *d)
{
    int64_t n = -1;
    assert_int_equal(db_user_count(d, &n, NULL), DB_OK);
    return n;
}

static void test_transactions(void **state)
{
    struct dbt *t = *state;
    struct echo_err err = {0};
    assert_false(db_in_tx(t->d));
    assert_int_equal(db_tx_begin(t->d, &err), DB_OK);
    assert_true(db_in_tx(t->d));
    assert_true(dbt_user(t->d, "alice") > 0);
    /* Nested: the inner level rolls back alone. */
    assert_int_equal(db_tx_begin(t->d, &err), DB_OK);
    assert_true(dbt_user(t->d, "bob") > 0);
    assert_int_equal(count_users(t->d), 2);
    db_tx_rollback(t->d);
    assert_int_equal(count_users(t->d), 1);
    assert_int_equal(db_tx_begin(t->d, &err), DB_OK);
    assert_true(dbt_user(t->d, "carol") > 0);
    assert_int_equal(db_tx_commit(t->d, &err), DB_OK);
    assert_int_equal(db_tx_commit(t->d, &err), DB_OK);
    assert_false(db_in_tx(t->d));
    assert_int_equal(count_users(t->d), 2);

    /* A rolled-back outer level undoes the committed inner one. */
    assert_int_equal(db_tx_begin(t->d, &err), DB_OK);
    assert_int_equal(db_tx_begin(t->d, &err), DB_OK);
    assert_true(dbt_user(t->d, "dave") > 0);
    assert_int_equal(db_tx_commit(t->d, &err), DB_OK);
    db_tx_rollback(t->d);
    assert_int_equal(count_users(t->d), 2);

    assert_int_equal(db_tx_commit(t->d, &err), DB_ERROR);
    db_tx_rollback(t->d); /* no-op outside a transaction */
    assert_false(db_in_tx(t->d));
}

/* A second connection's write waits for the lock, then reports DB_BUSY
 * without writing; after the lock is released it succeeds. */
static void test_busy(void **state)
{
    struct dbt *t = *state;
    struct echo_err err = {0};
    db *other = db_open(t->path, &err);
    assert_non_null(other);
    db_set_busy_timeout(other, 200);
    assert_int_equal(db_tx_begin(t->d, &err), DB_OK);
    assert_true(dbt_user(t->d, "holder") > 0);

    uint64_t t0 = time_mono_ns();
    int64_t id = 0;
    int s = db_user_create(other, "waiter", "waiter@example.com", NULL, true, 0, &id, &err);
    uint64_t waited_ms = (time_mono_ns() - t0) / 1000000;
    assert_int_equal(s, DB_BUSY);
    assert_true(waited_ms >= 150);
    assert_non_null(strstr(err.msg, "locked"));
    /* Readers are not blocked by the writer (WAL) and see the last commit. */
    assert_int_equal(count_users(other), 0);
    assert_int_equal(db_tx_begin(other, &err), DB_BUSY);
    assert_false(db_in_tx(other));

    assert_int_equal(db_tx_commit(t->d, &err), DB_OK);
    assert_int_equal(
        db_user_create(other, "waiter", "waiter@example.com", NULL, true, 0, &id, &err), DB_OK);
    assert_int_equal(count_users(t->d), 2);
    db_close(other);
}

struct hog {
    const char *path;
    atomic_int stop;
    atomic_int commits;
};

/* Commits one row after another with no pause, like a bulk import. */
static void *hog_thread(void *arg)
{
    struct hog *h = arg;
    db *d = db_open(h->path, NULL);
    if (!d) return NULL;
    for (int i = 0; !h->stop && i < 100000; i++) {
        char name[32];
        snprintf(name, sizeof(name), "hog%d", i);
        if (db_tx_begin(d, NULL) != DB_OK) continue;
        if (dbt_user(d, name) && db_tx_commit(d, NULL) == DB_OK)
            h->commits++;
        else
            db_tx_rollback(d);
    }
    db_close(d);
    return NULL;
}

/* Regression: with SQLite's own backoff (sleeps growing to 100 ms) a waiter
 * lost every race against a writer committing in a loop and got DB_BUSY
 * after the whole timeout. The polling handler lets it in. */
static void test_busy_waiter_not_starved(void **state)
{
    struct dbt *t = *state;
    struct hog h = {.path = t->path};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, hog_thread, &h), 0);
    while (h.commits < 5)
        usleep(1000);
    db *other = db_open(t->path, NULL);
    assert_non_null(other);
    db_set_busy_timeout(other, 3000);
    for (int i = 0; i < 5; i++) {
        char name[32];
        snprintf(name, sizeof(name), "waiter%d", i);
        struct echo_err err = {0};
        assert_int_equal(db_tx_begin(other, &err), DB_OK);
        assert_true(dbt_user(other, name) > 0);
        assert_int_equal(db_tx_commit(other, &err), DB_OK);
    }
    h.stop = 1;
    pthread_join(th, NULL);
    db_close(other);
    assert_true(h.commits >= 5);
}

struct writer {
    db_pool *pool;
    int index;
    int rows;
    int failures;
};

/* Each writer stores its rows one transaction at a time through the pool. */
static void *writer_thread(void *arg)
{
    struct writer *w = arg;
    for (int i = 0; i < w->rows; i++) {
        struct echo_err err = {0};
        db *d = db_pool_acquire(w->pool, 10000, &err);
        if (!d) {
            w->failures++;
            continue;
        }
        char name[32];
        snprintf(name, sizeof(name), "w%d_%d", w->index, i);
        if (!dbt_user(d, name)) w->failures++;
        db_pool_release(w->pool, d);
    }
    return NULL;
}

static void test_pool_concurrent_writers(void **state)
{
    struct dbt *t = *state;
    struct echo_err err = {0};
    db_pool *pool = db_pool_new(t->path, 3, &err);
    assert_non_null(pool);
    enum { THREADS = 6, ROWS = 40 };
    struct writer w[THREADS];
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i] = (struct writer){.pool = pool, .index = i, .rows = ROWS};
        assert_int_equal(pthread_create(&th[i], NULL, writer_thread, &w[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(w[i].failures, 0);
    }
    assert_int_equal(count_users(t->d), THREADS * ROWS);
    assert_int_equal(db_integrity_check(t->d, &err), DB_OK);

    /* With every connection taken, acquire times out with a message. */
    db *held[3];
    for (int i = 0; i < 3; i++) {
        held[i] = db_pool_acquire(pool, 1000, &err);
        assert_non_null(held[i]);
    }
    echo_err_clear(&err);
    assert_null(db_pool_acquire(pool, 50, &err));
    assert_non_null(strstr(err.msg, "busy"));
    /* A connection handed back inside a transaction is rolled back. */
    assert_int_equal(db_tx_begin(held[0], &err), DB_OK);
    assert_true(dbt_user(held[0], "abandoned") > 0);
    db_pool_release(pool, held[0]);
    db *again = db_pool_acquire(pool, 50, &err);
    assert_ptr_equal(again, held[0]);
    assert_false(db_in_tx(again));
    struct db_user u;
    assert_int_equal(db_user_find_by_username(again, "abandoned", &u, NULL), DB_NOT_FOUND);
    db_pool_release(pool, again);
    db_pool_release(pool, held[1]);
    db_pool_release(pool, held[2]);
    db_pool_free(pool);

    assert_null(db_pool_new(t->path, 0, &err));
    char bad[300];
    snprintf(bad, sizeof(bad), "%s/missing/x.db", t->dir);
    assert_null(db_pool_new(bad, 2, &err));
}

static void test_integrity_check_finds_fk_damage(void **state)
{
    struct dbt *t = *state;
    struct echo_err err = {0};
    assert_int_equal(db_integrity_check(t->d, &err), DB_OK);
    /* Write a dangling reference behind the layer's back. */
    assert_int_equal(sqlite3_exec(t->d->sq,
                                  "PRAGMA foreign_keys=OFF;"
                                  "INSERT INTO feedback (user_id, content, created_at)"
                                  " VALUES (999, 'x', 1);"
                                  "PRAGMA foreign_keys=ON;",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    assert_int_equal(db_integrity_check(t->d, &err), DB_ERROR);
    assert_non_null(strstr(err.msg, "feedback"));
}

static void test_path_from_config(void **state)
{
    (void)state;
    config *c = config_new();
    char *p = db_path_from_config(c);
    assert_non_null(strstr(p, "echo.db"));
    free(p);
    assert_int_equal(config_set(c, "ECHO_DATABASE", "/tmp/x/y.db", CONFIG_FLAG, NULL), 0);
    p = db_path_from_config(c);
    assert_string_equal(p, "/tmp/x/y.db");
    free(p);
    config_free(c);
}

static void test_time_iso(void **state)
{
    (void)state;
    char buf[32];
    assert_string_equal(db_time_iso(0, buf, sizeof(buf)), "1970-01-01T00:00:00Z");
    assert_string_equal(db_time_iso(1700000000, buf, sizeof(buf)), "2023-11-14T22:13:20Z");
    json_t *j = db_json_text("ok\xff\xfe end \xe2\x82");
    assert_non_null(j);
    assert_string_equal(json_string_value(j), "ok\xEF\xBF\xBD\xEF\xBF\xBD end "
                                              "\xEF\xBF\xBD\xEF\xBF\xBD");
    json_decref(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_open_settings, dbt_setup, dbt_teardown),
        cmocka_unit_test_setup_teardown(test_open_failures, dbt_setup, dbt_teardown),
        cmocka_unit_test_setup_teardown(test_statement_cache, dbt_setup, dbt_teardown),
        cmocka_unit_test_setup_teardown(test_transactions, dbt_setup, dbt_teardown),
        cmocka_unit_test_setup_teardown(test_busy, dbt_setup, dbt_teardown),
        cmocka_unit_test_setup_teardown(test_busy_waiter_not_starved, dbt_setup, dbt_teardown),
        cmocka_unit_test_setup_teardown(test_pool_concurrent_writers, dbt_setup, dbt_teardown),
        cmocka_unit_test_setup_teardown(test_integrity_check_finds_fk_damage, dbt_setup,
                                        dbt_teardown),
        cmocka_unit_test(test_path_from_config),
        cmocka_unit_test(test_time_iso),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
