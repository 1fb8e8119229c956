/*
 * db.c - connections, the per-connection statement cache, transactions,
 * the connection pool, and the helpers the entity files share.
 *
 * Why these settings (db_open):
 *   WAL             readers never block the writer and vice versa, so page
 *                   views keep going while a message is stored.
 *   synchronous     FULL: each COMMIT syncs the WAL, so a committed row
 *                   survives a power loss, not only a killed process.
 *   foreign_keys    SQLite leaves them off by default; the cascades of the
 *                   schema (delete a user -> their rows) depend on them.
 *   busy_timeout    a writer waits for another writer instead of failing at
 *                   once; after DB_BUSY_TIMEOUT_MS the caller gets DB_BUSY.
 *   defensive       refuses writable_schema and similar foot-guns.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db/db_internal.h"

const char *db_status_name(int status)
{
    switch (status) {
    case DB_OK:
        return "ok";
    case DB_NOT_FOUND:
        return "not found";
    case DB_CONFLICT:
        return "conflict";
    case DB_INVALID:
        return "invalid";
    case DB_BUSY:
        return "busy";
    default:
        return "error";
    }
}

int64_t db_now(void)
{
    return (int64_t)time(NULL);
}

const char *db_time_iso(int64_t t, char *buf, size_t size)
{
    struct tm tm;
    time_t tt = (time_t)t;
    if (!buf || size == 0) return "";
    if (!gmtime_r(&tt, &tm) || strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) buf[0] = 0;
    return buf;
}

/* ---- errors ------------------------------------------------------------ */

/* "UNIQUE constraint failed: users.username" -> "username"; for a composite
 * key ("roles.user_id, roles.name") the last column is the one a person can
 * change, so that is the one reported. */
static void record_conflict(db *d, const char *msg)
{
    const char *dot = strrchr(msg, '.');
    const char *field = dot ? dot + 1 : "";
    snprintf(d->conflict_field, sizeof(d->conflict_field), "%s", field);
}

int db_fail(db *d, int rc, const char *what, struct echo_err *err)
{
    const char *msg = sqlite3_errmsg(d->sq);
    int primary = rc & 0xff;
    switch (primary) {
    case SQLITE_CONSTRAINT:
        if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY) {
            record_conflict(d, msg);
            echo_err_set(err, "%s: %s is already taken", what, d->conflict_field);
            return DB_CONFLICT;
        }
        if (rc == SQLITE_CONSTRAINT_FOREIGNKEY) {
            echo_err_set(err, "%s: the referenced row does not exist", what);
            return DB_NOT_FOUND;
        }
        echo_err_set(err, "%s: %s", what, msg);
        return DB_INVALID;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        echo_err_set(err, "%s: the database stayed locked for more than %d ms (%s)", what,
                     d->busy_timeout_ms, msg);
        return DB_BUSY;
    case SQLITE_TOOBIG:
        echo_err_set(err, "%s: %s", what, msg);
        return DB_INVALID;
    default:
        echo_err_set(err, "%s: %s", what, msg);
        return DB_ERROR;
    }
}

const char *db_conflict_field(const db *d)
{
    return d ? d->conflict_field : "";
}

/* ---- statement cache --------------------------------------------------- */

static size_t slot_hash(const char *sql, size_t mask)
{
    uint64_t h = (uint64_t)(uintptr_t)sql;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return (size_t)h & mask;
}

static void cache_insert(struct db_stmt_slot *slots, size_t nslots, const char *sql,
                         sqlite3_stmt *st)
{
    size_t i = slot_hash(sql, nslots - 1);
    while (slots[i].sql)
        i = (i + 1) & (nslots - 1);
    slots[i].sql = sql;
    slots[i].stmt = st;
}

static void cache_grow(db *d)
{
    size_t n = d->nslots ? d->nslots * 2 : 64;
    struct db_stmt_slot *slots = xcalloc(n, sizeof(*slots));
    for (size_t i = 0; i < d->nslots; i++)
        if (d->slots[i].sql) cache_insert(slots, n, d->slots[i].sql, d->slots[i].stmt);
    free(d->slots);
    d->slots = slots;
    d->nslots = n;
}

sqlite3_stmt *db_stmt(db *d, const char *sql, struct echo_err *err)
{
    if (d->nslots) {
        size_t i = slot_hash(sql, d->nslots - 1);
        while (d->slots[i].sql) {
            if (d->slots[i].sql == sql) {
                sqlite3_stmt *st = d->slots[i].stmt;
                sqlite3_reset(st);
                sqlite3_clear_bindings(st);
                return st;
            }
            i = (i + 1) & (d->nslots - 1);
        }
    }
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v3(d->sq, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL);
    if (rc != SQLITE_OK || !st) {
        echo_err_set(err, "preparing a statement: %s", sqlite3_errmsg(d->sq));
        log_error("db: cannot prepare [%.80s...]: %s", sql, sqlite3_errmsg(d->sq));
        sqlite3_finalize(st);
        return NULL;
    }
    if ((d->nused + 1) * 2 > d->nslots) cache_grow(d);
    cache_insert(d->slots, d->nslots, sql, st);
    d->nused++;
    return st;
}

void db_stmt_done(sqlite3_stmt *st)
{
    if (st) {
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
    }
}

/* ---- small helpers shared by the entity files -------------------------- */

int db_bind_text(sqlite3_stmt *st, int idx, const char *s)
{
    if (!s) return sqlite3_bind_null(st, idx);
    return sqlite3_bind_text(st, idx, s, -1, SQLITE_STATIC);
}

char *db_col_strdup(sqlite3_stmt *st, int col)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    if (!t) return NULL;
    return xstrndup((const char *)t, (size_t)sqlite3_column_bytes(st, col));
}

int64_t db_col_int(sqlite3_stmt *st, int col)
{
    return sqlite3_column_int64(st, col);
}

json_t *db_json_text(const char *s)
{
    if (!s) return json_string("");
    size_t n = strlen(s);
    if (utf8_valid(s, n)) return json_stringn(s, n);
    struct strbuf sb;
    strbuf_init(&sb);
    for (size_t i = 0; i < n;) {
        size_t k = 1;
        while (k <= 4 && i + k <= n && !utf8_valid(s + i, k))
            k++;
        if (k <= 4 && i + k <= n) {
            strbuf_append(&sb, s + i, k);
            i += k;
        } else {
            strbuf_puts(&sb, "\xEF\xBF\xBD");
            i++;
        }
    }
    json_t *j = json_stringn(strbuf_cstr(&sb), sb.len);
    strbuf_deinit(&sb);
    return j;
}

json_t *db_json_time(int64_t t)
{
    return t ? json_integer(t) : json_null();
}

void db_json_set_time(json_t *obj, const char *key, int64_t t)
{
    char iso_key[64];
    char buf[32];
    snprintf(iso_key, sizeof(iso_key), "%s_iso", key);
    json_object_set_new(obj, key, db_json_time(t));
    json_object_set_new(obj, iso_key,
                        t ? json_string(db_time_iso(t, buf, sizeof(buf))) : json_null());
}

int db_step_write(db *d, sqlite3_stmt *st, bool need_change, const char *what, struct echo_err *err)
{
    int rc = sqlite3_step(st);
    int status = DB_OK;
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        status = db_fail(d, rc, what, err);
    else if (need_change && sqlite3_changes(d->sq) == 0) {
        echo_err_set(err, "%s: no such row", what);
        status = DB_NOT_FOUND;
    }
    db_stmt_done(st);
    return status;
}

int db_step_count(db *d, sqlite3_stmt *st, int64_t *n, const char *what, struct echo_err *err)
{
    int rc = sqlite3_step(st);
    int status = DB_OK;
    if (rc == SQLITE_ROW) {
        if (n) *n = sqlite3_column_int64(st, 0);
    } else {
        status = db_fail(d, rc, what, err);
    }
    db_stmt_done(st);
    return status;
}

int db_step_day_counts(db *d, sqlite3_stmt *st, struct db_day_count **out, size_t *n,
                       const char *what, struct echo_err *err)
{
    struct db_day_count *a = NULL;
    size_t len = 0, cap = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (len == cap) {
            cap = cap ? cap * 2 : 64;
            a = xrealloc(a, cap * sizeof(*a));
        }
        a[len].day = sqlite3_column_int64(st, 0);
        a[len].count = sqlite3_column_int64(st, 1);
        len++;
    }
    if (rc != SQLITE_DONE) {
        int status = db_fail(d, rc, what, err);
        db_stmt_done(st);
        free(a);
        return status;
    }
    db_stmt_done(st);
    *out = a;
    *n = len;
    return DB_OK;
}

int db_filter_page(const struct db_filter *f, int64_t *limit, int64_t *offset, struct echo_err *err)
{
    int64_t l = f ? f->limit : 0, o = f ? f->offset : 0;
    if (l < 0 || o < 0) {
        echo_err_set(err, "a page needs a positive size and offset");
        return DB_INVALID;
    }
    if (l == 0) l = DB_LIST_DEFAULT;
    if (l > DB_LIST_MAX) l = DB_LIST_MAX;
    *limit = l;
    *offset = o;
    return DB_OK;
}

/* Binds only the parameters a statement has: the shapes of a list use
 * different subsets of ?1..?5. */
static void bind_if_present(sqlite3_stmt *st, int idx, int64_t v)
{
    if (sqlite3_bind_parameter_count(st) >= idx) sqlite3_bind_int64(st, idx, v);
}

int db_list_run(db *d, const struct db_list_sql *q, const struct db_filter *f,
                json_t *(*row)(sqlite3_stmt *st), json_t **rows, int64_t *total, const char *what,
                struct echo_err *err)
{
    *rows = NULL;
    int64_t limit, offset;
    int s = db_filter_page(f, &limit, &offset, err);
    if (s != DB_OK) return s;
    int64_t user = f ? f->user_id : 0;
    bool dated = f && (f->from || f->to);
    int shape = (user > 0 ? 1 : 0) | (dated ? 2 : 0);
    int64_t from = dated && f->from ? f->from : INT64_MIN;
    int64_t to = dated && f->to ? f->to : INT64_MAX;

    sqlite3_stmt *st = db_stmt(d, q->list[shape], err);
    if (!st) return DB_ERROR;
    bind_if_present(st, 1, user);
    bind_if_present(st, 2, from);
    bind_if_present(st, 3, to);
    bind_if_present(st, 4, limit);
    bind_if_present(st, 5, offset);
    json_t *arr = json_array();
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        json_array_append_new(arr, row(st));
    if (rc != SQLITE_DONE) {
        s = db_fail(d, rc, what, err);
        db_stmt_done(st);
        json_decref(arr);
        return s;
    }
    db_stmt_done(st);
    if (total) {
        st = db_stmt(d, q->count[shape], err);
        if (!st) {
            json_decref(arr);
            return DB_ERROR;
        }
        bind_if_present(st, 1, user);
        bind_if_present(st, 2, from);
        bind_if_present(st, 3, to);
        s = db_step_count(d, st, total, what, err);
        if (s != DB_OK) {
            json_decref(arr);
            return s;
        }
    }
    *rows = arr;
    return DB_OK;
}

/* ---- open / close ------------------------------------------------------ */

/* Runs a PRAGMA that answers one row and checks the answer. */
static int pragma_expect(db *d, const char *sql, const char *want, struct echo_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(d->sq, sql, -1, &st, NULL);
    if (rc != SQLITE_OK) {
        int s = db_fail(d, rc, sql, err);
        sqlite3_finalize(st);
        return s;
    }
    rc = sqlite3_step(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        int s = db_fail(d, rc, sql, err);
        sqlite3_finalize(st);
        return s;
    }
    if (want) {
        const char *got = rc == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
        if (!got || str_casecmp(got, want) != 0) {
            echo_err_set(err, "%s answered '%s' instead of '%s'", sql, got ? got : "(nothing)",
                         want);
            sqlite3_finalize(st);
            return DB_ERROR;
        }
    }
    sqlite3_finalize(st);
    return DB_OK;
}

db *db_open(const char *path, struct echo_err *err)
{
    db *d = xcalloc(1, sizeof(*d));
    d->path = xstrdup(path);
    d->busy_rng = (uint64_t)(uintptr_t)d ^ time_mono_ns();
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    int rc = sqlite3_open_v2(path, &d->sq, flags, NULL);
    if (rc != SQLITE_OK) {
        echo_err_set(err, "cannot open database %s: %s", path,
                     d->sq ? sqlite3_errmsg(d->sq) : sqlite3_errstr(rc));
        goto fail;
    }
    sqlite3_extended_result_codes(d->sq, 1);
    db_set_busy_timeout(d, DB_BUSY_TIMEOUT_MS);
    sqlite3_db_config(d->sq, SQLITE_DBCONFIG_DEFENSIVE, 1, (int *)NULL);
    /* An in-memory database (tests) has no WAL; it answers "memory". */
    bool memory = !strcmp(path, ":memory:") || !path[0];
    struct echo_err perr = {0};
    if (pragma_expect(d, "PRAGMA journal_mode=WAL", memory ? "memory" : "wal", &perr) != DB_OK ||
        pragma_expect(d, "PRAGMA synchronous=FULL", NULL, &perr) != DB_OK ||
        pragma_expect(d, "PRAGMA foreign_keys=ON", NULL, &perr) != DB_OK ||
        pragma_expect(d, "PRAGMA foreign_keys", "1", &perr) != DB_OK) {
        echo_err_set(err, "cannot set up database %s: %s", path, perr.msg);
        goto fail;
    }
    return d;
fail:
    db_close(d);
    return NULL;
}

void db_close(db *d)
{
    if (!d) return;
    if (d->sq && !sqlite3_get_autocommit(d->sq)) sqlite3_exec(d->sq, "ROLLBACK", NULL, NULL, NULL);
    for (size_t i = 0; i < d->nslots; i++)
        if (d->slots[i].sql) sqlite3_finalize(d->slots[i].stmt);
    free(d->slots);
    if (d->sq) sqlite3_close_v2(d->sq);
    free(d->path);
    free(d);
}

/*
 * The busy handler: SQLite's own (sqlite3_busy_timeout) backs off to 100 ms
 * sleeps, so a connection that waits loses every race against one that
 * commits in a loop and can starve for the whole timeout. Polling every 1-2
 * ms (with jitter, so waiters do not move in step) until the deadline keeps
 * the wait close to the time the lock is really held.
 */
static int busy_handler(void *arg, int attempt)
{
    db *d = arg;
    uint64_t now = time_mono_ns();
    if (attempt == 0) d->busy_since_ns = now;
    if (now - d->busy_since_ns >= (uint64_t)d->busy_timeout_ms * 1000000ULL) return 0;
    d->busy_rng = d->busy_rng * 6364136223846793005ULL + 1442695040888963407ULL;
    struct timespec ts = {0, 1000000L + (long)((d->busy_rng >> 33) % 1000000UL)};
    nanosleep(&ts, NULL);
    return 1;
}

void db_set_busy_timeout(db *d, int ms)
{
    d->busy_timeout_ms = ms < 0 ? 0 : ms;
    if (d->busy_timeout_ms == 0)
        sqlite3_busy_handler(d->sq, NULL, NULL);
    else
        sqlite3_busy_handler(d->sq, busy_handler, d);
}

const char *db_path(const db *d)
{
    return d->path;
}

char *db_path_from_config(const config *c)
{
    const char *p = config_get(c, "ECHO_DATABASE");
    if (p && p[0]) return xstrdup(p);
    return config_instance_path(c, "echo.db");
}

/* ---- transactions ------------------------------------------------------ */

/* One savepoint name serves every nesting level: SQLite resolves a
 * ROLLBACK TO / RELEASE to the innermost savepoint of that name. */
static const char sql_begin[] = "BEGIN IMMEDIATE";
static const char sql_commit[] = "COMMIT";
static const char sql_rollback[] = "ROLLBACK";
static const char sql_savepoint[] = "SAVEPOINT echo_tx";
static const char sql_release[] = "RELEASE echo_tx";
static const char sql_rollback_to[] = "ROLLBACK TO echo_tx";

static int run_simple(db *d, const char *sql, const char *what, struct echo_err *err)
{
    sqlite3_stmt *st = db_stmt(d, sql, err);
    if (!st) return DB_ERROR;
    return db_step_write(d, st, false, what, err);
}

int db_tx_begin(db *d, struct echo_err *err)
{
    int s = run_simple(d, d->tx_depth ? sql_savepoint : sql_begin, "starting a transaction", err);
    if (s == DB_OK) d->tx_depth++;
    return s;
}

int db_tx_commit(db *d, struct echo_err *err)
{
    if (d->tx_depth <= 0) {
        echo_err_set(err, "commit without a transaction");
        return DB_ERROR;
    }
    int s = run_simple(d, d->tx_depth > 1 ? sql_release : sql_commit, "committing", err);
    if (s != DB_OK) {
        db_tx_rollback(d);
        return s;
    }
    d->tx_depth--;
    return DB_OK;
}

void db_tx_rollback(db *d)
{
    if (d->tx_depth <= 0) return;
    if (d->tx_depth > 1) {
        run_simple(d, sql_rollback_to, "rolling back", NULL);
        run_simple(d, sql_release, "rolling back", NULL);
    } else if (!sqlite3_get_autocommit(d->sq)) {
        /* SQLite may already have rolled back by itself (e.g. after an
         * I/O error); ROLLBACK then would be an error of its own. */
        run_simple(d, sql_rollback, "rolling back", NULL);
    }
    d->tx_depth--;
}

bool db_in_tx(const db *d)
{
    return d->tx_depth > 0;
}

int db_integrity_check(db *d, struct echo_err *err)
{
    static const char sql_integrity[] = "PRAGMA integrity_check";
    static const char sql_fk[] = "PRAGMA foreign_key_check";
    sqlite3_stmt *st = db_stmt(d, sql_integrity, err);
    if (!st) return DB_ERROR;
    int rc = sqlite3_step(st);
    int status = DB_OK;
    if (rc != SQLITE_ROW) {
        status = db_fail(d, rc, "integrity check", err);
    } else {
        const char *res = (const char *)sqlite3_column_text(st, 0);
        if (!res || strcmp(res, "ok") != 0) {
            echo_err_set(err, "integrity check: %s", res ? res : "(no answer)");
            status = DB_ERROR;
        }
    }
    db_stmt_done(st);
    if (status != DB_OK) return status;
    st = db_stmt(d, sql_fk, err);
    if (!st) return DB_ERROR;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        echo_err_set(err, "foreign key check: row %lld of %s points to a missing row of %s",
                     (long long)sqlite3_column_int64(st, 1), sqlite3_column_text(st, 0),
                     sqlite3_column_text(st, 2));
        status = DB_ERROR;
    } else if (rc != SQLITE_DONE) {
        status = db_fail(d, rc, "foreign key check", err);
    }
    db_stmt_done(st);
    return status;
}

/* ---- pool -------------------------------------------------------------- */

struct db_pool {
    pthread_mutex_t lock;
    pthread_cond_t freed;
    char *path;
    int size;
    db **conns;  /* size slots; NULL: not opened yet */
    bool *inuse; /* per slot */
};

db_pool *db_pool_new(const char *path, int size, struct echo_err *err)
{
    if (size < 1 || size > 256) {
        echo_err_set(err, "a database pool holds 1 to 256 connections, not %d", size);
        return NULL;
    }
    if (!sqlite3_threadsafe()) {
        echo_err_set(err, "this SQLite library was built without thread support");
        return NULL;
    }
    /* Open the first connection now so a wrong path fails at start-up. */
    db *first = db_open(path, err);
    if (!first) return NULL;
    db_pool *p = xcalloc(1, sizeof(*p));
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->freed, NULL);
    p->path = xstrdup(path);
    p->size = size;
    p->conns = xcalloc((size_t)size, sizeof(*p->conns));
    p->inuse = xcalloc((size_t)size, sizeof(*p->inuse));
    p->conns[0] = first;
    return p;
}

void db_pool_free(db_pool *p)
{
    if (!p) return;
    for (int i = 0; i < p->size; i++) {
        if (p->inuse[i]) log_error("db: pool freed while connection %d is still in use", i);
        db_close(p->conns[i]);
    }
    pthread_cond_destroy(&p->freed);
    pthread_mutex_destroy(&p->lock);
    free(p->conns);
    free(p->inuse);
    free(p->path);
    free(p);
}

static void deadline_after(struct timespec *ts, int ms)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

db *db_pool_acquire(db_pool *p, int timeout_ms, struct echo_err *err)
{
    struct timespec deadline;
    if (timeout_ms >= 0) deadline_after(&deadline, timeout_ms);
    pthread_mutex_lock(&p->lock);
    for (;;) {
        int slot = -1;
        /* Prefer an open idle connection (warm statement cache). */
        for (int i = 0; i < p->size && slot < 0; i++)
            if (!p->inuse[i] && p->conns[i]) slot = i;
        for (int i = 0; i < p->size && slot < 0; i++)
            if (!p->inuse[i]) slot = i;
        if (slot >= 0) {
            p->inuse[slot] = true;
            db *d = p->conns[slot];
            pthread_mutex_unlock(&p->lock);
            if (d) return d;
            /* Opening takes a few system calls; do it outside the lock. */
            d = db_open(p->path, err);
            pthread_mutex_lock(&p->lock);
            if (d)
                p->conns[slot] = d;
            else
                p->inuse[slot] = false;
            pthread_cond_signal(&p->freed);
            pthread_mutex_unlock(&p->lock);
            return d;
        }
        int rc = timeout_ms >= 0 ? pthread_cond_timedwait(&p->freed, &p->lock, &deadline)
                                 : pthread_cond_wait(&p->freed, &p->lock);
        if (rc != 0 && timeout_ms >= 0) {
            pthread_mutex_unlock(&p->lock);
            echo_err_set(err, "all %d database connections stayed busy for %d ms", p->size,
                         timeout_ms);
            return NULL;
        }
    }
}

void db_pool_release(db_pool *p, db *d)
{
    if (!d) return;
    if (d->tx_depth > 0 || !sqlite3_get_autocommit(d->sq)) {
        log_error("db: connection released inside a transaction; rolling back");
        while (d->tx_depth > 0)
            db_tx_rollback(d);
        if (!sqlite3_get_autocommit(d->sq)) sqlite3_exec(d->sq, "ROLLBACK", NULL, NULL, NULL);
    }
    pthread_mutex_lock(&p->lock);
    for (int i = 0; i < p->size; i++) {
        if (p->conns[i] == d) {
            p->inuse[i] = false;
            break;
        }
    }
    pthread_cond_signal(&p->freed);
    pthread_mutex_unlock(&p->lock);
}
