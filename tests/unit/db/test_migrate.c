/*
 * test_migrate.c - schema migrations: the embedded copy matches migrations/
 * (stale generated file), fresh database, re-run is a no-op, a failing
 * migration rolls back whole and names file:line, checksum drift, unknown
 * applied versions, refused transaction control, foreign key violations,
 * two processes' worth of connections migrating at once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <dirent.h>

#include <cmocka.h>

#include "db/db_internal.h"
#include "db_test_util.h"

static struct dbt *fresh(void)
{
    struct dbt *t = calloc(1, sizeof(*t));
    snprintf(t->dir, sizeof(t->dir), "/tmp/echo-test-mig-XXXXXX");
    assert_non_null(mkdtemp(t->dir));
    snprintf(t->path, sizeof(t->path), "%s/echo.db", t->dir);
    struct echo_err err = {0};
    t->d = db_open(t->path, &err);
    assert_non_null(t->d);
    return t;
}

static bool table_exists(db *d, const char *name)
{
    sqlite3_stmt *st = NULL;
    assert_int_equal(
        sqlite3_prepare_v2(d->sq, "SELECT 1 FROM sqlite_schema WHERE type='table' AND name=?1", -1,
                           &st, NULL),
        SQLITE_OK);
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    bool found = sqlite3_step(st) == SQLITE_ROW;
    sqlite3_finalize(st);
    return found;
}

static int64_t scalar(db *d, const char *sql)
{
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(d->sq, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

#define MIG(v, name, text)                                                                         \
    {                                                                                              \
        v, name, text, sizeof(text) - 1                                                            \
    }

/* The generated file must hold exactly the files of migrations/, byte for
 * byte; otherwise someone forgot tools/embed_migrations.py. */
static void test_embedded_matches_files(void **state)
{
    (void)state;
    DIR *dir = opendir("migrations");
    assert_non_null(dir);
    size_t files = 0;
    struct dirent *e;
    while ((e = readdir(dir))) {
        size_t n = strlen(e->d_name);
        if (n < 5 || strcmp(e->d_name + n - 4, ".sql") != 0) continue;
        files++;
        const struct db_migration *m = NULL;
        for (size_t i = 0; i < db_migrations_embedded_count; i++)
            if (!strcmp(db_migrations_embedded[i].name, e->d_name)) m = &db_migrations_embedded[i];
        if (!m)
            fail_msg("migrations/%s is not embedded: run /usr/bin/python3 "
                     "tools/embed_migrations.py",
                     e->d_name);
        char path[512];
        snprintf(path, sizeof(path), "migrations/%s", e->d_name);
        size_t len = 0;
        struct echo_err err = {0};
        char *text = file_read_all(path, 1 << 24, &len, &err);
        assert_non_null(text);
        if (len != m->len || memcmp(text, m->sql, len) != 0)
            fail_msg("%s differs from its embedded copy: run /usr/bin/python3 "
                     "tools/embed_migrations.py",
                     path);
        free(text);
    }
    closedir(dir);
    if (files != db_migrations_embedded_count)
        fail_msg("src/db/migrations_gen.c embeds %zu files, migrations/ has %zu: run "
                 "/usr/bin/python3 tools/embed_migrations.py",
                 db_migrations_embedded_count, files);
    assert_true(files >= 1);
    for (size_t i = 1; i < db_migrations_embedded_count; i++)
        assert_true(db_migrations_embedded[i].version > db_migrations_embedded[i - 1].version);
}

static void test_fresh_then_rerun(void **state)
{
    (void)state;
    struct dbt *t = fresh();
    struct echo_err err = {0};
    assert_int_equal(db_migrations_pending(t->d, &err), (int)db_migrations_embedded_count);
    /* Reading the status of an empty file must not create anything. */
    assert_false(table_exists(t->d, "schema_migrations"));
    int applied = -1;
    assert_int_equal(db_migrate(t->d, &applied, &err), DB_OK);
    assert_int_equal(applied, (int)db_migrations_embedded_count);
    const char *tables[] = {"users",    "roles",    "pictures",         "feedback",
                            "messages", "sessions", "schema_migrations"};
    for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); i++)
        assert_true(table_exists(t->d, tables[i]));
    assert_int_equal(db_migrations_pending(t->d, &err), 0);
    assert_int_equal(db_migrate(t->d, &applied, &err), DB_OK);
    assert_int_equal(applied, 0);
    assert_int_equal(scalar(t->d, "SELECT count(*) FROM schema_migrations"),
                     (int64_t)db_migrations_embedded_count);
    assert_int_equal(scalar(t->d, "PRAGMA foreign_keys"), 1);
    /* The checksum is the SHA-256 hex of the file. */
    assert_int_equal(scalar(t->d, "SELECT length(checksum) FROM schema_migrations LIMIT 1"), 64);

    struct db_migration_info *info = NULL;
    size_t n = 0;
    assert_int_equal(db_migrations_status(t->d, &info, &n, &err), DB_OK);
    assert_int_equal(n, db_migrations_embedded_count);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(info[i].state, DB_MIGRATION_APPLIED);
        assert_true(info[i].applied_at > 1600000000);
        assert_string_equal(info[i].name, db_migrations_embedded[i].name);
    }
    free(info);
    assert_int_equal(db_integrity_check(t->d, &err), DB_OK);
    dbt_free(t);
}

/* Every foreign key and created_at column has an index (issue 3). */
static void test_indexes(void **state)
{
    (void)state;
    struct dbt *t = dbt_new();
    assert_non_null(t);
    struct {
        const char *table, *column;
    } want[] = {{"roles", "user_id"},       {"pictures", "user_id"},    {"feedback", "user_id"},
                {"messages", "user_id"},    {"sessions", "user_id"},    {"users", "created_at"},
                {"roles", "created_at"},    {"pictures", "created_at"}, {"feedback", "created_at"},
                {"messages", "created_at"}, {"sessions", "expires_at"}, {"users", "last_login_at"}};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        sqlite3_stmt *st = NULL;
        /* An index whose first column is the wanted one. */
        assert_int_equal(sqlite3_prepare_v2(t->d->sq,
                                            "SELECT count(*) FROM pragma_index_list(?1) l"
                                            " WHERE (SELECT name FROM pragma_index_info(l.name)"
                                            "        WHERE seqno = 0) = ?2",
                                            -1, &st, NULL),
                         SQLITE_OK);
        sqlite3_bind_text(st, 1, want[i].table, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, want[i].column, -1, SQLITE_STATIC);
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        if (sqlite3_column_int(st, 0) < 1)
            fail_msg("no index on %s.%s", want[i].table, want[i].column);
        sqlite3_finalize(st);
    }
    dbt_free(t);
}

static void test_failure_rolls_back(void **state)
{
    (void)state;
    struct dbt *t = fresh();
    static const struct db_migration list[] = {
        MIG(1, "001_a.sql", "CREATE TABLE a (x);\n"),
        MIG(2, "002_bad.sql",
            "CREATE TABLE b (y);\n"
            "INSERT INTO b VALUES (1);\n"
            "-- the next line fails\n"
            "INSERT INTO nope VALUES (2);\n"
            "CREATE TABLE c (z);\n"),
    };
    struct echo_err err = {0};
    int applied = -1;
    assert_int_equal(db_migrate_with(t->d, list, 2, &applied, &err), DB_ERROR);
    assert_int_equal(applied, 1);
    assert_string_equal(err.file, "migrations/002_bad.sql");
    assert_int_equal(err.line, 4);
    assert_non_null(strstr(err.msg, "no such table: nope"));
    assert_true(table_exists(t->d, "a"));
    assert_false(table_exists(t->d, "b"));
    assert_false(table_exists(t->d, "c"));
    assert_int_equal(scalar(t->d, "SELECT max(version) FROM schema_migrations"), 1);
    assert_int_equal(db_migrations_pending_with(t->d, list, 2, &err), 1);
    assert_int_equal(scalar(t->d, "PRAGMA foreign_keys"), 1);
    assert_false(db_in_tx(t->d));

    /* A syntax error names its line too. */
    static const struct db_migration syntax[] = {
        MIG(1, "001_a.sql", "CREATE TABLE a (x);\n"),
        MIG(2, "002_typo.sql", "CREATE TABLE d (x);\n\n  CREAT TABLE oops (y);\n"),
    };
    echo_err_clear(&err);
    assert_int_equal(db_migrate_with(t->d, syntax, 2, &applied, &err), DB_ERROR);
    assert_int_equal(applied, 0);
    assert_string_equal(err.file, "migrations/002_typo.sql");
    assert_int_equal(err.line, 3);
    assert_non_null(strstr(err.msg, "syntax error"));
    assert_false(table_exists(t->d, "d"));
    dbt_free(t);
}

static void test_checksum_drift(void **state)
{
    (void)state;
    struct dbt *t = fresh();
    static const struct db_migration v1[] = {MIG(1, "001_a.sql", "CREATE TABLE a (x);\n")};
    static const struct db_migration v1b[] = {MIG(1, "001_a.sql", "CREATE TABLE a (x, y);\n")};
    struct echo_err err = {0};
    assert_int_equal(db_migrate_with(t->d, v1, 1, NULL, &err), DB_OK);
    assert_int_equal(db_migrate_with(t->d, v1b, 1, NULL, &err), DB_ERROR);
    assert_non_null(strstr(err.msg, "001_a.sql was changed"));
    echo_err_clear(&err);
    assert_true(db_migrations_pending_with(t->d, v1b, 1, &err) < 0);
    assert_non_null(strstr(err.msg, "changed"));
    struct db_migration_info *info = NULL;
    size_t n = 0;
    assert_int_equal(db_migrations_status_with(t->d, v1b, 1, &info, &n, &err), DB_OK);
    assert_int_equal(n, 1);
    assert_int_equal(info[0].state, DB_MIGRATION_CHANGED);
    free(info);
    /* The original text is still accepted. */
    assert_int_equal(db_migrations_pending_with(t->d, v1, 1, &err), 0);
    dbt_free(t);
}

static void test_unknown_applied(void **state)
{
    (void)state;
    struct dbt *t = fresh();
    static const struct db_migration two[] = {
        MIG(1, "001_a.sql", "CREATE TABLE a (x);\n"),
        MIG(5, "005_b.sql", "CREATE TABLE b (x);\n"),
    };
    struct echo_err err = {0};
    int applied = 0;
    assert_int_equal(db_migrate_with(t->d, two, 2, &applied, &err), DB_OK);
    assert_int_equal(applied, 2);
    assert_int_equal(db_migrations_pending_with(t->d, two, 1, &err), DB_ERROR);
    assert_non_null(strstr(err.msg, "005_b.sql"));
    assert_non_null(strstr(err.msg, "newer"));
    struct db_migration_info *info = NULL;
    size_t n = 0;
    assert_int_equal(db_migrations_status_with(t->d, two, 1, &info, &n, &err), DB_OK);
    assert_int_equal(n, 2);
    assert_int_equal(info[0].state, DB_MIGRATION_APPLIED);
    assert_int_equal(info[1].state, DB_MIGRATION_UNKNOWN);
    assert_int_equal(info[1].version, 5);
    free(info);

    /* Pending ones in between are listed in version order. */
    static const struct db_migration three[] = {
        MIG(1, "001_a.sql", "CREATE TABLE a (x);\n"),
        MIG(3, "003_c.sql", "CREATE TABLE c (x);\n"),
        MIG(5, "005_b.sql", "CREATE TABLE b (x);\n"),
        MIG(7, "007_d.sql", "CREATE TABLE d (x);\n"),
    };
    assert_int_equal(db_migrations_status_with(t->d, three, 4, &info, &n, &err), DB_OK);
    assert_int_equal(n, 4);
    int versions[] = {1, 3, 5, 7};
    enum db_migration_state states[] = {DB_MIGRATION_APPLIED, DB_MIGRATION_PENDING,
                                        DB_MIGRATION_APPLIED, DB_MIGRATION_PENDING};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(info[i].version, versions[i]);
        assert_int_equal(info[i].state, states[i]);
    }
    free(info);
    assert_int_equal(db_migrations_pending_with(t->d, three, 4, &err), 2);
    assert_int_equal(db_migrate_with(t->d, three, 4, &applied, &err), DB_OK);
    assert_int_equal(applied, 2);
    dbt_free(t);
}

static void test_refuses_transaction_control(void **state)
{
    (void)state;
    struct dbt *t = fresh();
    static const struct db_migration list[] = {
        MIG(1, "001_tx.sql", "CREATE TABLE a (x);\n  commit;\nCREATE TABLE c (z);\n"),
    };
    struct echo_err err = {0};
    assert_int_equal(db_migrate_with(t->d, list, 1, NULL, &err), DB_ERROR);
    assert_int_equal(err.line, 2);
    assert_non_null(strstr(err.msg, "transactions"));
    assert_false(table_exists(t->d, "a"));
    /* A trigger body's BEGIN ... END is one statement and fine. */
    static const struct db_migration trig[] = {
        MIG(1, "001_trig.sql",
            "CREATE TABLE a (x);\nCREATE TABLE log (y);\n"
            "CREATE TRIGGER t AFTER INSERT ON a BEGIN\n"
            "  INSERT INTO log VALUES (new.x);\nEND;\n"),
    };
    assert_int_equal(db_migrate_with(t->d, trig, 1, NULL, &err), DB_OK);
    dbt_free(t);
}

static void test_foreign_key_violation(void **state)
{
    (void)state;
    struct dbt *t = fresh();
    static const struct db_migration list[] = {
        MIG(1, "001_fk.sql",
            "CREATE TABLE p (id INTEGER PRIMARY KEY);\n"
            "CREATE TABLE c (pid INTEGER REFERENCES p (id));\n"
            "INSERT INTO c VALUES (5);\n"),
    };
    struct echo_err err = {0};
    assert_int_equal(db_migrate_with(t->d, list, 1, NULL, &err), DB_ERROR);
    assert_non_null(strstr(err.msg, "missing row"));
    assert_false(table_exists(t->d, "c"));
    assert_int_equal(scalar(t->d, "SELECT count(*) FROM schema_migrations"), 0);
    dbt_free(t);
}

static void test_bad_lists(void **state)
{
    (void)state;
    struct dbt *t = fresh();
    static const struct db_migration unsorted[] = {
        MIG(2, "002_b.sql", "CREATE TABLE b (x);\n"),
        MIG(1, "001_a.sql", "CREATE TABLE a (x);\n"),
    };
    struct echo_err err = {0};
    assert_int_equal(db_migrate_with(t->d, unsorted, 2, NULL, &err), DB_ERROR);
    assert_false(table_exists(t->d, "a"));
    /* An empty migration file is allowed and recorded. */
    static const struct db_migration empty[] = {MIG(1, "001_empty.sql", "-- nothing yet\n")};
    int applied = 0;
    assert_int_equal(db_migrate_with(t->d, empty, 1, &applied, &err), DB_OK);
    assert_int_equal(applied, 1);
    /* Not inside a caller's transaction. */
    assert_int_equal(db_tx_begin(t->d, &err), DB_OK);
    assert_int_equal(db_migrate_with(t->d, empty, 1, NULL, &err), DB_ERROR);
    db_tx_rollback(t->d);
    dbt_free(t);
}

struct mig_thread {
    const char *path;
    int applied;
    int status;
};

static void *migrate_thread(void *arg)
{
    struct mig_thread *m = arg;
    struct echo_err err = {0};
    db *d = db_open(m->path, &err);
    m->status = d ? db_migrate(d, &m->applied, &err) : DB_ERROR;
    if (m->status != DB_OK) fprintf(stderr, "migrate_thread: %s\n", err.msg);
    db_close(d);
    return NULL;
}

static void test_concurrent_migrate(void **state)
{
    (void)state;
    struct dbt *t = fresh();
    struct mig_thread m[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        m[i] = (struct mig_thread){.path = t->path};
        assert_int_equal(pthread_create(&th[i], NULL, migrate_thread, &m[i]), 0);
    }
    int total = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(m[i].status, DB_OK);
        total += m[i].applied;
    }
    assert_int_equal(total, (int)db_migrations_embedded_count);
    struct echo_err err = {0};
    assert_int_equal(db_migrations_pending(t->d, &err), 0);
    dbt_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_embedded_matches_files),
        cmocka_unit_test(test_fresh_then_rerun),
        cmocka_unit_test(test_indexes),
        cmocka_unit_test(test_failure_rolls_back),
        cmocka_unit_test(test_checksum_drift),
        cmocka_unit_test(test_unknown_applied),
        cmocka_unit_test(test_refuses_transaction_control),
        cmocka_unit_test(test_foreign_key_violation),
        cmocka_unit_test(test_bad_lists),
        cmocka_unit_test(test_concurrent_migrate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
