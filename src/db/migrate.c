/*
 * migrate.c - schema migrations: the numbered SQL files of migrations/,
 * embedded in the binary (migrations_gen.c), applied in order and recorded
 * in schema_migrations with the SHA-256 of their text.
 *
 * Each migration runs in its own IMMEDIATE transaction, so two processes
 * upgrading at once serialise and the second finds the work done. Foreign
 * keys are switched off for the run (the only way SQLite lets a migration
 * rebuild a table, see "Making Other Kinds Of Table Schema Changes" in
 * sqlite.org/lang_altertable.html) and checked with PRAGMA foreign_key_check
 * before each COMMIT instead. Statements are run one at a time so a failure
 * can name the line of the file it starts on.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "db/db_internal.h"

struct applied_row {
    int version;
    char name[128];
    int64_t applied_at;
    char checksum[65];
};

static const char sql_table_exists[] =
    "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'schema_migrations'";
static const char sql_create_table[] = "CREATE TABLE IF NOT EXISTS schema_migrations ("
                                       " version INTEGER PRIMARY KEY,"
                                       " name TEXT NOT NULL,"
                                       " applied_at INTEGER NOT NULL,"
                                       " checksum TEXT NOT NULL)";
static const char sql_select_applied[] =
    "SELECT version, name, applied_at, checksum FROM schema_migrations ORDER BY version";
static const char sql_insert_applied[] =
    "INSERT INTO schema_migrations (version, name, applied_at, checksum) VALUES (?1, ?2, ?3, ?4)";
static const char sql_fk_off[] = "PRAGMA foreign_keys=OFF";
static const char sql_fk_on[] = "PRAGMA foreign_keys=ON";
static const char sql_fk_check[] = "PRAGMA foreign_key_check";

static void checksum_hex(const struct db_migration *m, char out[65])
{
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(h, (const unsigned char *)m->sql, m->len);
    sodium_bin2hex(out, 65, h, sizeof(h));
}

static int check_list(const struct db_migration *list, size_t n, struct echo_err *err)
{
    for (size_t i = 0; i < n; i++) {
        if (list[i].version <= 0 || !list[i].name || !list[i].sql) {
            echo_err_set(err, "migration %zu of the list is malformed", i);
            return DB_ERROR;
        }
        if (i > 0 && list[i].version <= list[i - 1].version) {
            echo_err_set(err, "migrations %s and %s are not in increasing version order",
                         list[i - 1].name, list[i].name);
            return DB_ERROR;
        }
    }
    return DB_OK;
}

/* Reads schema_migrations (an absent table means nothing is applied). */
static int load_applied(db *d, struct applied_row **out, size_t *n, struct echo_err *err)
{
    *out = NULL;
    *n = 0;
    sqlite3_stmt *st = db_stmt(d, sql_table_exists, err);
    if (!st) return DB_ERROR;
    int rc = sqlite3_step(st);
    db_stmt_done(st);
    if (rc == SQLITE_DONE) return DB_OK;
    if (rc != SQLITE_ROW) return db_fail(d, rc, "reading schema_migrations", err);

    st = db_stmt(d, sql_select_applied, err);
    if (!st) return DB_ERROR;
    struct applied_row *rows = NULL;
    size_t len = 0, cap = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (len == cap) {
            cap = cap ? cap * 2 : 16;
            rows = xrealloc(rows, cap * sizeof(*rows));
        }
        struct applied_row *r = &rows[len++];
        int64_t v = sqlite3_column_int64(st, 0);
        r->version = v > 0 && v < 1000000000 ? (int)v : -1;
        const unsigned char *name = sqlite3_column_text(st, 1);
        const unsigned char *sum = sqlite3_column_text(st, 3);
        snprintf(r->name, sizeof(r->name), "%s", name ? (const char *)name : "");
        r->applied_at = sqlite3_column_int64(st, 2);
        snprintf(r->checksum, sizeof(r->checksum), "%s", sum ? (const char *)sum : "");
    }
    if (rc != SQLITE_DONE) {
        int s = db_fail(d, rc, "reading schema_migrations", err);
        db_stmt_done(st);
        free(rows);
        return s;
    }
    db_stmt_done(st);
    *out = rows;
    *n = len;
    return DB_OK;
}

static const struct db_migration *find_version(const struct db_migration *list, size_t n,
                                               int version)
{
    for (size_t i = 0; i < n; i++)
        if (list[i].version == version) return &list[i];
    return NULL;
}

static enum db_migration_state applied_state(const struct applied_row *r,
                                             const struct db_migration *list, size_t n)
{
    const struct db_migration *m = find_version(list, n, r->version);
    if (!m) return DB_MIGRATION_UNKNOWN;
    char sum[65];
    checksum_hex(m, sum);
    return strcmp(sum, r->checksum) == 0 ? DB_MIGRATION_APPLIED : DB_MIGRATION_CHANGED;
}

/* Every applied migration must be known and unchanged. */
static int verify_applied(const struct applied_row *rows, size_t nrows,
                          const struct db_migration *list, size_t n, struct echo_err *err)
{
    for (size_t i = 0; i < nrows; i++) {
        switch (applied_state(&rows[i], list, n)) {
        case DB_MIGRATION_UNKNOWN:
            echo_err_set(err,
                         "the database has migration %d (%s), which this echobot does not "
                         "know: it was upgraded by a newer version",
                         rows[i].version, rows[i].name);
            return DB_ERROR;
        case DB_MIGRATION_CHANGED:
            echo_err_set(err,
                         "migrations/%s was changed after it was applied (checksum differs); "
                         "restore the file and put the change in a new migration",
                         find_version(list, n, rows[i].version)->name);
            return DB_ERROR;
        default:
            break;
        }
    }
    return DB_OK;
}

static bool is_applied(const struct applied_row *rows, size_t nrows, int version)
{
    for (size_t i = 0; i < nrows; i++)
        if (rows[i].version == version) return true;
    return false;
}

/* Skips blanks and SQL comments; returns the start of the next token. */
static const char *skip_blank(const char *p, const char *end)
{
    while (p < end) {
        if (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == '\f') {
            p++;
        } else if (end - p >= 2 && p[0] == '-' && p[1] == '-') {
            while (p < end && *p != '\n')
                p++;
        } else if (end - p >= 2 && p[0] == '/' && p[1] == '*') {
            p += 2;
            while (end - p >= 2 && !(p[0] == '*' && p[1] == '/'))
                p++;
            p = end - p >= 2 ? p + 2 : end;
        } else {
            break;
        }
    }
    return p;
}

static int line_of(const char *text, const char *at)
{
    int line = 1;
    for (const char *p = text; p < at; p++)
        if (*p == '\n') line++;
    return line;
}

/* A migration that ended or nested the runner's transaction would break the
 * all-or-nothing promise, so such statements are refused before they run. */
static bool is_transaction_control(const char *p, const char *end)
{
    static const char *const words[] = {"BEGIN",    "COMMIT",    "END",
                                        "ROLLBACK", "SAVEPOINT", "RELEASE"};
    size_t n = 0;
    while (p + n < end && ((p[n] >= 'A' && p[n] <= 'Z') || (p[n] >= 'a' && p[n] <= 'z')))
        n++;
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
        if (strlen(words[i]) != n) continue;
        size_t k = 0;
        while (k < n && (p[k] & ~0x20) == words[i][k])
            k++;
        if (k == n) return true;
    }
    return false;
}

/* Runs the statements of one migration; on failure err names file:line. */
static int run_script(db *d, const struct db_migration *m, struct echo_err *err)
{
    char file[160];
    snprintf(file, sizeof(file), "migrations/%s", m->name);
    const char *p = m->sql, *end = m->sql + m->len;
    for (;;) {
        p = skip_blank(p, end);
        if (p >= end) return DB_OK;
        int line = line_of(m->sql, p);
        if (is_transaction_control(p, end)) {
            echo_err_set_at(err, file, line, 0,
                            "a migration must not control transactions (the runner wraps "
                            "each file in one)");
            return DB_ERROR;
        }
        sqlite3_stmt *st = NULL;
        const char *tail = NULL;
        int rc = sqlite3_prepare_v2(d->sq, p, (int)(end - p), &st, &tail);
        if (rc != SQLITE_OK) {
            echo_err_set_at(err, file, line, 0, "%s", sqlite3_errmsg(d->sq));
            sqlite3_finalize(st);
            return DB_ERROR;
        }
        if (st) {
            while ((rc = sqlite3_step(st)) == SQLITE_ROW)
                ;
            if (rc != SQLITE_DONE) {
                echo_err_set_at(err, file, line, 0, "%s", sqlite3_errmsg(d->sq));
                sqlite3_finalize(st);
                return (rc & 0xff) == SQLITE_BUSY ? DB_BUSY : DB_ERROR;
            }
            sqlite3_finalize(st);
        }
        if (!tail || tail <= p) return DB_OK;
        p = tail;
    }
}

static int foreign_keys_clean(db *d, const struct db_migration *m, struct echo_err *err)
{
    sqlite3_stmt *st = db_stmt(d, sql_fk_check, err);
    if (!st) return DB_ERROR;
    int rc = sqlite3_step(st);
    int status = DB_OK;
    if (rc == SQLITE_ROW) {
        char file[160];
        snprintf(file, sizeof(file), "migrations/%s", m->name);
        echo_err_set_at(err, file, 0, 0,
                        "after the migration, row %lld of table %s points to a missing row of %s",
                        (long long)sqlite3_column_int64(st, 1), sqlite3_column_text(st, 0),
                        sqlite3_column_text(st, 2));
        status = DB_ERROR;
    } else if (rc != SQLITE_DONE) {
        status = db_fail(d, rc, "foreign key check", err);
    }
    db_stmt_done(st);
    return status;
}

static int apply_one(db *d, const struct db_migration *list, size_t n, size_t idx, bool *done,
                     struct echo_err *err)
{
    const struct db_migration *m = &list[idx];
    struct applied_row *rows = NULL;
    size_t nrows = 0;
    *done = false;
    int s = db_tx_begin(d, err);
    if (s != DB_OK) return s;
    /* Read again under the write lock: another process may have applied it. */
    s = load_applied(d, &rows, &nrows, err);
    if (s == DB_OK) s = verify_applied(rows, nrows, list, n, err);
    if (s != DB_OK || is_applied(rows, nrows, m->version)) goto out;
    s = run_script(d, m, err);
    if (s == DB_OK) s = foreign_keys_clean(d, m, err);
    if (s == DB_OK) {
        char sum[65];
        checksum_hex(m, sum);
        sqlite3_stmt *st = db_stmt(d, sql_insert_applied, err);
        if (!st) {
            s = DB_ERROR;
            goto out;
        }
        sqlite3_bind_int(st, 1, m->version);
        db_bind_text(st, 2, m->name);
        sqlite3_bind_int64(st, 3, db_now());
        db_bind_text(st, 4, sum);
        s = db_step_write(d, st, true, "recording the migration", err);
    }
    if (s == DB_OK) {
        s = db_tx_commit(d, err);
        if (s == DB_OK) *done = true;
        free(rows);
        return s;
    }
out:
    db_tx_rollback(d);
    free(rows);
    return s;
}

int db_migrate_with(db *d, const struct db_migration *list, size_t n, int *applied,
                    struct echo_err *err)
{
    if (applied) *applied = 0;
    if (d->tx_depth > 0) {
        echo_err_set(err, "migrations cannot run inside a transaction");
        return DB_ERROR;
    }
    int s = check_list(list, n, err);
    if (s != DB_OK) return s;
    sqlite3_stmt *st = db_stmt(d, sql_create_table, err);
    if (!st) return DB_ERROR;
    s = db_step_write(d, st, false, "creating schema_migrations", err);
    if (s != DB_OK) return s;
    st = db_stmt(d, sql_fk_off, err);
    if (!st) return DB_ERROR;
    s = db_step_write(d, st, false, "switching foreign keys off", err);
    if (s != DB_OK) return s;
    for (size_t i = 0; i < n && s == DB_OK; i++) {
        bool done = false;
        s = apply_one(d, list, n, i, &done, err);
        if (s == DB_OK && done) {
            log_info("db: applied migration %s", list[i].name);
            if (applied) (*applied)++;
        }
    }
    st = db_stmt(d, sql_fk_on, NULL);
    int s2 = st ? db_step_write(d, st, false, "switching foreign keys on", NULL) : DB_ERROR;
    if (s == DB_OK && s2 != DB_OK) {
        echo_err_set(err, "could not switch foreign keys back on");
        s = DB_ERROR;
    }
    return s;
}

int db_migrations_pending_with(db *d, const struct db_migration *list, size_t n,
                               struct echo_err *err)
{
    struct applied_row *rows = NULL;
    size_t nrows = 0;
    int s = check_list(list, n, err);
    if (s == DB_OK) s = load_applied(d, &rows, &nrows, err);
    if (s == DB_OK) s = verify_applied(rows, nrows, list, n, err);
    int pending = 0;
    for (size_t i = 0; s == DB_OK && i < n; i++)
        if (!is_applied(rows, nrows, list[i].version)) pending++;
    free(rows);
    return s == DB_OK ? pending : s;
}

int db_migrations_status_with(db *d, const struct db_migration *list, size_t n,
                              struct db_migration_info **out, size_t *count, struct echo_err *err)
{
    struct applied_row *rows = NULL;
    size_t nrows = 0;
    *out = NULL;
    *count = 0;
    int s = check_list(list, n, err);
    if (s == DB_OK) s = load_applied(d, &rows, &nrows, err);
    if (s != DB_OK) return s;
    /* Merge two version-sorted sequences: the list and the applied rows. */
    struct db_migration_info *info = xcalloc(n + nrows + 1, sizeof(*info));
    size_t k = 0, i = 0, j = 0;
    while (i < n || j < nrows) {
        struct db_migration_info *e = &info[k++];
        if (j >= nrows || (i < n && list[i].version < rows[j].version)) {
            e->version = list[i].version;
            snprintf(e->name, sizeof(e->name), "%s", list[i].name);
            e->state = DB_MIGRATION_PENDING;
            i++;
        } else {
            e->version = rows[j].version;
            snprintf(e->name, sizeof(e->name), "%s", rows[j].name);
            e->state = applied_state(&rows[j], list, n);
            e->applied_at = rows[j].applied_at;
            if (i < n && list[i].version == rows[j].version) i++;
            j++;
        }
    }
    free(rows);
    *out = info;
    *count = k;
    return DB_OK;
}

int db_migrate(db *d, int *applied, struct echo_err *err)
{
    return db_migrate_with(d, db_migrations_embedded, db_migrations_embedded_count, applied, err);
}

int db_migrations_pending(db *d, struct echo_err *err)
{
    return db_migrations_pending_with(d, db_migrations_embedded, db_migrations_embedded_count, err);
}

int db_migrations_status(db *d, struct db_migration_info **out, size_t *n, struct echo_err *err)
{
    return db_migrations_status_with(d, db_migrations_embedded, db_migrations_embedded_count, out,
                                     n, err);
}

db *db_open_config(const config *c, struct echo_err *err)
{
    char *path = db_path_from_config(c);
    db *d = db_open(path, err);
    if (!d) goto fail;
    int pending = db_migrations_pending(d, err);
    if (pending < 0) goto fail;
    if (pending > 0) {
        if (!config_get_bool(c, "ECHO_AUTO_MIGRATE")) {
            echo_err_set(err,
                         "the database %s is %d migration%s behind this echobot; run `echobot db "
                         "upgrade` (or set ECHO_AUTO_MIGRATE=1)",
                         path, pending, pending == 1 ? "" : "s");
            goto fail;
        }
        int applied = 0;
        if (db_migrate(d, &applied, err) != DB_OK) goto fail;
        log_info("db: %s upgraded (%d migration%s applied)", path, applied,
                 applied == 1 ? "" : "s");
    }
    free(path);
    return d;
fail:
    db_close(d);
    free(path);
    return NULL;
}
