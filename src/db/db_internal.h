/*
 * db_internal.h - what the entity files of src/db/ share and nobody else
 * sees: the connection struct, the per-connection statement cache and the
 * mapping from SQLite result codes to enum db_status. Tests of the layer may
 * include it to reach the raw handle.
 *
 * Thread-safety: as db.h; everything here works on one connection owned by
 * the calling thread.
 */
#ifndef ECHO_DB_INTERNAL_H
#define ECHO_DB_INTERNAL_H

#include <sqlite3.h>

#include "db/db.h"

struct db_stmt_slot {
    const char *sql; /* the key: the address of a string literal */
    sqlite3_stmt *stmt;
};

struct db {
    sqlite3 *sq;
    char *path;
    struct db_stmt_slot *slots; /* open addressing, power-of-two size */
    size_t nslots;
    size_t nused;
    int tx_depth;
    int busy_timeout_ms;
    uint64_t busy_since_ns; /* when the current wait for a lock began */
    uint64_t busy_rng;      /* jitter of the busy handler's sleeps */
    char conflict_field[64];
};

/*
 * Returns the cached statement for `sql`, preparing it on first use. `sql`
 * must have static storage duration (a literal or a static array): its
 * address is the cache key. The statement comes back reset with no bindings.
 * Every caller finishes with db_stmt_done, on every path, so no read
 * transaction stays open. NULL with err (DB_ERROR) when the SQL does not
 * prepare, which is a bug caught by the tests.
 */
sqlite3_stmt *db_stmt(db *d, const char *sql, struct echo_err *err);
/* Resets the statement and clears its bindings. NULL is ignored. */
void db_stmt_done(sqlite3_stmt *st);

/*
 * Maps a SQLite result code of the last call on d to a status and fills err
 * with "<what>: <sqlite message>". Unique violations become DB_CONFLICT and
 * record the column in d->conflict_field; foreign key violations become
 * DB_NOT_FOUND, CHECK/NOT NULL violations DB_INVALID, SQLITE_BUSY/LOCKED
 * DB_BUSY (after the busy timeout already ran).
 */
int db_fail(db *d, int rc, const char *what, struct echo_err *err);

/* Steps a statement that returns no rows (INSERT/UPDATE/DELETE) and finishes
 * it. DB_NOT_FOUND when `need_change` and no row changed. */
int db_step_write(db *d, sqlite3_stmt *st, bool need_change, const char *what,
                  struct echo_err *err);

/* Binds text (NULL binds SQL NULL); the string must live until the
 * statement is done, which holds for every use inside one function. */
int db_bind_text(sqlite3_stmt *st, int idx, const char *s);
/* Copies a text column (NULL for SQL NULL). Caller frees. */
char *db_col_strdup(sqlite3_stmt *st, int col);
/* An integer column, with 0 for SQL NULL. */
int64_t db_col_int(sqlite3_stmt *st, int col);
/* A JSON string of s ("" for NULL). Bytes that are not UTF-8 (which jansson
 * refuses) are replaced by U+FFFD so a bad row cannot empty a page. */
json_t *db_json_text(const char *s);
/* A JSON integer, or null when v is 0 (an unset timestamp or count). */
json_t *db_json_time(int64_t t);
/* Sets key and key_iso (or nulls for 0) on obj. */
void db_json_set_time(json_t *obj, const char *key, int64_t t);

/* Normalises a filter's limit/offset; DB_INVALID for negative values. */
int db_filter_page(const struct db_filter *f, int64_t *limit, int64_t *offset,
                   struct echo_err *err);

/*
 * A filtered, paged list (struct db_filter). An entity supplies one SQL
 * literal per filter shape - [0] all rows, [1] one user, [2] a date range,
 * [3] both - so SQLite plans each with the right index, where a single
 * statement with optional clauses would scan. Parameters: ?1 user_id,
 * ?2 from, ?3 to (created_at >= ?2 AND created_at < ?3), and in `list` ?4
 * limit, ?5 offset. `row` turns the current row into a new JSON object.
 */
struct db_list_sql {
    const char *list[4];
    const char *count[4];
};
int db_list_run(db *d, const struct db_list_sql *q, const struct db_filter *f,
                json_t *(*row)(sqlite3_stmt *st), json_t **rows, int64_t *total, const char *what,
                struct echo_err *err);

/* The current time in unix seconds. */
int64_t db_now(void);

/* Runs a "SELECT count(*) ..." statement already bound; finishes it. */
int db_step_count(db *d, sqlite3_stmt *st, int64_t *n, const char *what, struct echo_err *err);

/* Collects rows of (day, count) from a bound statement; finishes it. */
int db_step_day_counts(db *d, sqlite3_stmt *st, struct db_day_count **out, size_t *n,
                       const char *what, struct echo_err *err);

#endif
