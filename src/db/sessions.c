/*
 * sessions.c - the sessions table: server-side login sessions keyed by the
 * SHA-256 of the random cookie token (the token itself is never stored).
 * Rules such as expiry, token handling and flash messages live in
 * src/web/session.c and flash.c; this file only stores rows.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/db_internal.h"

#define SESSION_COLS "id_hash, user_id, created_at, expires_at, last_seen_at, remember, data"

static const char sql_insert[] =
    "INSERT INTO sessions (id_hash, user_id, created_at, expires_at, last_seen_at, remember, data)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
static const char sql_get[] = "SELECT " SESSION_COLS " FROM sessions WHERE id_hash = ?1";
static const char sql_touch[] = "UPDATE sessions SET last_seen_at = ?2 WHERE id_hash = ?1";
static const char sql_set_data[] = "UPDATE sessions SET data = ?2 WHERE id_hash = ?1";
static const char sql_delete[] = "DELETE FROM sessions WHERE id_hash = ?1";
static const char sql_delete_user[] = "DELETE FROM sessions WHERE user_id = ?1";
static const char sql_delete_user_keep[] =
    "DELETE FROM sessions WHERE user_id = ?1 AND id_hash IS NOT ?2";
static const char sql_delete_expired[] = "DELETE FROM sessions WHERE expires_at <= ?1";
static const char sql_count_user[] = "SELECT count(*) FROM sessions WHERE user_id = ?1";

void db_session_deinit(struct db_session *s)
{
    if (!s) return;
    free(s->data);
    memset(s, 0, sizeof(*s));
}

/* Session data must be a JSON object of bounded size: it is parsed on every
 * request of the session. */
static int check_data(const char *data, struct echo_err *err)
{
    size_t n = strlen(data);
    if (n > DB_SESSION_DATA_MAX) {
        echo_err_set(err, "session data is limited to %d bytes", DB_SESSION_DATA_MAX);
        return DB_INVALID;
    }
    json_error_t jerr;
    json_t *j = json_loadb(data, n, JSON_REJECT_DUPLICATES, &jerr);
    bool ok = j && json_is_object(j);
    json_decref(j);
    if (!ok) {
        echo_err_set(err, "session data must be a JSON object");
        return DB_INVALID;
    }
    return DB_OK;
}

int db_session_insert(db *d, const struct db_session *s, struct echo_err *err)
{
    const char *data = s->data ? s->data : "{}";
    int rc = check_data(data, err);
    if (rc != DB_OK) return rc;
    sqlite3_stmt *st = db_stmt(d, sql_insert, err);
    if (!st) return DB_ERROR;
    sqlite3_bind_blob(st, 1, s->id_hash, DB_SESSION_HASH_LEN, SQLITE_STATIC);
    if (s->user_id > 0) sqlite3_bind_int64(st, 2, s->user_id);
    sqlite3_bind_int64(st, 3, s->created_at);
    sqlite3_bind_int64(st, 4, s->expires_at);
    sqlite3_bind_int64(st, 5, s->last_seen_at ? s->last_seen_at : s->created_at);
    sqlite3_bind_int(st, 6, s->remember ? 1 : 0);
    db_bind_text(st, 7, data);
    return db_step_write(d, st, false, "creating the session", err);
}

int db_session_get(db *d, const unsigned char *id_hash, struct db_session *out,
                   struct echo_err *err)
{
    memset(out, 0, sizeof(*out));
    sqlite3_stmt *st = db_stmt(d, sql_get, err);
    if (!st) return DB_ERROR;
    sqlite3_bind_blob(st, 1, id_hash, DB_SESSION_HASH_LEN, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    int s = DB_OK;
    if (rc == SQLITE_ROW && sqlite3_column_bytes(st, 0) == DB_SESSION_HASH_LEN) {
        memcpy(out->id_hash, sqlite3_column_blob(st, 0), DB_SESSION_HASH_LEN);
        out->user_id = db_col_int(st, 1);
        out->created_at = db_col_int(st, 2);
        out->expires_at = db_col_int(st, 3);
        out->last_seen_at = db_col_int(st, 4);
        out->remember = db_col_int(st, 5) != 0;
        out->data = db_col_strdup(st, 6);
        if (!out->data) out->data = xstrdup("{}");
    } else if (rc == SQLITE_DONE || rc == SQLITE_ROW) {
        echo_err_set(err, "no such session");
        s = DB_NOT_FOUND;
    } else {
        s = db_fail(d, rc, "reading the session", err);
    }
    db_stmt_done(st);
    return s;
}

static int by_hash(db *d, const char *sql, const unsigned char *id_hash, const char *what,
                   struct echo_err *err)
{
    sqlite3_stmt *st = db_stmt(d, sql, err);
    if (!st) return DB_ERROR;
    sqlite3_bind_blob(st, 1, id_hash, DB_SESSION_HASH_LEN, SQLITE_STATIC);
    return db_step_write(d, st, true, what, err);
}

int db_session_touch(db *d, const unsigned char *id_hash, int64_t now, struct echo_err *err)
{
    sqlite3_stmt *st = db_stmt(d, sql_touch, err);
    if (!st) return DB_ERROR;
    sqlite3_bind_blob(st, 1, id_hash, DB_SESSION_HASH_LEN, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, now);
    return db_step_write(d, st, true, "touching the session", err);
}

int db_session_set_data(db *d, const unsigned char *id_hash, const char *data, struct echo_err *err)
{
    if (!data) data = "{}";
    int rc = check_data(data, err);
    if (rc != DB_OK) return rc;
    sqlite3_stmt *st = db_stmt(d, sql_set_data, err);
    if (!st) return DB_ERROR;
    sqlite3_bind_blob(st, 1, id_hash, DB_SESSION_HASH_LEN, SQLITE_STATIC);
    db_bind_text(st, 2, data);
    return db_step_write(d, st, true, "storing session data", err);
}

int db_session_delete(db *d, const unsigned char *id_hash, struct echo_err *err)
{
    return by_hash(d, sql_delete, id_hash, "deleting the session", err);
}

int db_session_delete_user(db *d, int64_t user_id, const unsigned char *keep, int64_t *deleted,
                           struct echo_err *err)
{
    sqlite3_stmt *st = db_stmt(d, keep ? sql_delete_user_keep : sql_delete_user, err);
    if (!st) return DB_ERROR;
    sqlite3_bind_int64(st, 1, user_id);
    if (keep) sqlite3_bind_blob(st, 2, keep, DB_SESSION_HASH_LEN, SQLITE_STATIC);
    int s = db_step_write(d, st, false, "revoking sessions", err);
    if (s == DB_OK && deleted) *deleted = sqlite3_changes(d->sq);
    return s;
}

int db_session_delete_expired(db *d, int64_t now, int64_t *deleted, struct echo_err *err)
{
    sqlite3_stmt *st = db_stmt(d, sql_delete_expired, err);
    if (!st) return DB_ERROR;
    sqlite3_bind_int64(st, 1, now);
    int s = db_step_write(d, st, false, "deleting expired sessions", err);
    if (s == DB_OK && deleted) *deleted = sqlite3_changes(d->sq);
    return s;
}

int db_session_count_user(db *d, int64_t user_id, int64_t *n, struct echo_err *err)
{
    sqlite3_stmt *st = db_stmt(d, sql_count_user, err);
    if (!st) return DB_ERROR;
    sqlite3_bind_int64(st, 1, user_id);
    return db_step_count(d, st, n, "counting sessions", err);
}
