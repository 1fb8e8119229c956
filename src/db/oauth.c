/*
 * oauth.c - the oauth_identities table (migration 003): which outside
 * identity (provider, subject) signs in as which user. See oauth.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/db_internal.h"
#include "db/oauth.h"

static const char sql_insert[] =
    "INSERT INTO oauth_identities (provider, subject, user_id, email, created_at)"
    " VALUES (?1, ?2, ?3, ?4, ?5)";
static const char sql_find[] =
    "SELECT id, provider, subject, user_id, email, created_at FROM oauth_identities"
    " WHERE provider = ?1 AND subject = ?2";
static const char sql_user_list[] =
    "SELECT provider, email, created_at FROM oauth_identities WHERE user_id = ?1"
    " ORDER BY created_at, id";
static const char sql_count_any[] = "SELECT count(*) FROM oauth_identities WHERE user_id = ?1";
static const char sql_count_provider[] =
    "SELECT count(*) FROM oauth_identities WHERE user_id = ?1 AND provider = ?2";
static const char sql_unlink[] =
    "DELETE FROM oauth_identities WHERE user_id = ?1 AND provider = ?2";

void db_oauth_identity_deinit(struct db_oauth_identity *o)
{
    if (!o) return;
    free(o->subject);
    free(o->email);
    memset(o, 0, sizeof(*o));
}

bool db_oauth_provider_valid(const char *provider)
{
    if (!provider) return false;
    size_t n = strlen(provider);
    if (n < 1 || n > DB_OAUTH_PROVIDER_MAX) return false;
    for (size_t i = 0; i < n; i++) {
        char c = provider[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
    }
    return true;
}

bool db_oauth_subject_valid(const char *subject)
{
    if (!subject) return false;
    size_t n = strlen(subject);
    if (n < 1 || n > DB_OAUTH_SUBJECT_MAX) return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)subject[i] < 0x21 || (unsigned char)subject[i] > 0x7e) return false;
    return true;
}

int db_oauth_link(db *d, const char *provider, const char *subject, int64_t user_id,
                  const char *email, int64_t now, int64_t *id, struct echo_err *err)
{
    if (!db_oauth_provider_valid(provider) || !db_oauth_subject_valid(subject)) {
        echo_err_set(err, "linking an identity: malformed provider or subject");
        return DB_INVALID;
    }
    if (email && (strlen(email) > DB_EMAIL_MAX || !utf8_valid(email, strlen(email)))) {
        echo_err_set(err, "linking an identity: the email is not up to %d bytes of UTF-8",
                     DB_EMAIL_MAX);
        return DB_INVALID;
    }
    sqlite3_stmt *st = db_stmt(d, sql_insert, err);
    if (!st) return DB_ERROR;
    db_bind_text(st, 1, provider);
    db_bind_text(st, 2, subject);
    sqlite3_bind_int64(st, 3, user_id);
    db_bind_text(st, 4, email);
    sqlite3_bind_int64(st, 5, now ? now : db_now());
    int s = db_step_write(d, st, false, "linking an identity", err);
    if (s == DB_OK && id) *id = sqlite3_last_insert_rowid(d->sq);
    return s;
}

int db_oauth_find(db *d, const char *provider, const char *subject, struct db_oauth_identity *out,
                  struct echo_err *err)
{
    memset(out, 0, sizeof(*out));
    sqlite3_stmt *st = db_stmt(d, sql_find, err);
    if (!st) return DB_ERROR;
    db_bind_text(st, 1, provider ? provider : "");
    db_bind_text(st, 2, subject ? subject : "");
    int rc = sqlite3_step(st);
    int s = DB_OK;
    if (rc == SQLITE_ROW) {
        out->id = db_col_int(st, 0);
        const char *p = (const char *)sqlite3_column_text(st, 1);
        snprintf(out->provider, sizeof(out->provider), "%s", p ? p : "");
        out->subject = db_col_strdup(st, 2);
        out->user_id = db_col_int(st, 3);
        out->email = db_col_strdup(st, 4);
        out->created_at = db_col_int(st, 5);
    } else if (rc == SQLITE_DONE) {
        echo_err_set(err, "finding an identity: no such identity");
        s = DB_NOT_FOUND;
    } else {
        s = db_fail(d, rc, "finding an identity", err);
    }
    db_stmt_done(st);
    return s;
}

int db_oauth_user_json(db *d, int64_t user_id, json_t **out, struct echo_err *err)
{
    *out = NULL;
    sqlite3_stmt *st = db_stmt(d, sql_user_list, err);
    if (!st) return DB_ERROR;
    sqlite3_bind_int64(st, 1, user_id);
    json_t *arr = json_array();
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        json_t *o = json_object();
        json_object_set_new(o, "provider", db_json_text((const char *)sqlite3_column_text(st, 0)));
        json_object_set_new(o, "email", db_json_text((const char *)sqlite3_column_text(st, 1)));
        db_json_set_time(o, "created_at", db_col_int(st, 2));
        json_array_append_new(arr, o);
    }
    int s = DB_OK;
    if (rc != SQLITE_DONE) {
        s = db_fail(d, rc, "listing identities", err);
        json_decref(arr);
        arr = NULL;
    }
    db_stmt_done(st);
    *out = arr;
    return s;
}

int db_oauth_count_user(db *d, int64_t user_id, const char *provider, int64_t *n,
                        struct echo_err *err)
{
    sqlite3_stmt *st = db_stmt(d, provider ? sql_count_provider : sql_count_any, err);
    if (!st) return DB_ERROR;
    sqlite3_bind_int64(st, 1, user_id);
    if (provider) db_bind_text(st, 2, provider);
    return db_step_count(d, st, n, "counting identities", err);
}

int db_oauth_unlink(db *d, int64_t user_id, const char *provider, int64_t *removed,
                    struct echo_err *err)
{
    sqlite3_stmt *st = db_stmt(d, sql_unlink, err);
    if (!st) return DB_ERROR;
    sqlite3_bind_int64(st, 1, user_id);
    db_bind_text(st, 2, provider ? provider : "");
    int s = db_step_write(d, st, true, "unlinking an identity", err);
    if (removed) *removed = s == DB_OK ? sqlite3_changes(d->sq) : 0;
    return s;
}
