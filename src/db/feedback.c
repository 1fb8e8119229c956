/*
 * feedback.c - the feedback table: free text a logged-in user sent through
 * the feedback form, listed (escaped) in the admin panel.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/db_internal.h"

static const char sql_insert[] =
    "INSERT INTO feedback (user_id, content, created_at) VALUES (?1, ?2, ?3)";
static const char sql_get[] = "SELECT id, user_id, content, created_at FROM feedback WHERE id = ?1";
static const char sql_delete[] = "DELETE FROM feedback WHERE id = ?1";
static const char sql_count[] = "SELECT count(*) FROM feedback";

#define FEEDBACK_LIST(where)                                                                       \
    "SELECT f.id, f.user_id, f.content, f.created_at, u.username"                                  \
    " FROM feedback f JOIN users u ON u.id = f.user_id " where                                     \
    " ORDER BY f.created_at DESC, f.id DESC LIMIT ?4 OFFSET ?5"

static const struct db_list_sql sql_list = {
    .list = {FEEDBACK_LIST(""), FEEDBACK_LIST("WHERE f.user_id = ?1"),
             FEEDBACK_LIST("WHERE f.created_at >= ?2 AND f.created_at < ?3"),
             FEEDBACK_LIST("WHERE f.user_id = ?1 AND f.created_at >= ?2 AND f.created_at < ?3")},
    .count = {"SELECT count(*) FROM feedback", "SELECT count(*) FROM feedback WHERE user_id = ?1",
              "SELECT count(*) FROM feedback WHERE created_at >= ?2 AND created_at < ?3",
              "SELECT count(*) FROM feedback"
              " WHERE user_id = ?1 AND created_at >= ?2 AND created_at < ?3"},
};

void db_feedback_deinit(struct db_feedback *f)
{
    if (!f) return;
    free(f->content);
    memset(f, 0, sizeof(*f));
}

int db_feedback_add(db *d, int64_t user_id, const char *content, int64_t now, int64_t *id,
                    struct echo_err *err)
{
    size_t n = content ? strlen(content) : 0;
    if (n == 0 || n > DB_FEEDBACK_MAX_BYTES || !utf8_valid(content, n)) {
        echo_err_set(err, "feedback is 1 to %d bytes of UTF-8 text", DB_FEEDBACK_MAX_BYTES);
        return DB_INVALID;
    }
    sqlite3_stmt *st = db_stmt(d, sql_insert, err);
    if (!st) return DB_ERROR;
    sqlite3_bind_int64(st, 1, user_id);
    db_bind_text(st, 2, content);
    sqlite3_bind_int64(st, 3, now ? now : db_now());
    int s = db_step_write(d, st, false, "storing feedback", err);
    if (s == DB_OK && id) *id = sqlite3_last_insert_rowid(d->sq);
    return s;
}

int db_feedback_get(db *d, int64_t id, struct db_feedback *out, struct echo_err *err)
{
    memset(out, 0, sizeof(*out));
    sqlite3_stmt *st = db_stmt(d, sql_get, err);
    if (!st) return DB_ERROR;
    sqlite3_bind_int64(st, 1, id);
    int rc = sqlite3_step(st);
    int s = DB_OK;
    if (rc == SQLITE_ROW) {
        out->id = db_col_int(st, 0);
        out->user_id = db_col_int(st, 1);
        out->content = db_col_strdup(st, 2);
        out->created_at = db_col_int(st, 3);
    } else if (rc == SQLITE_DONE) {
        echo_err_set(err, "reading feedback: no such feedback");
        s = DB_NOT_FOUND;
    } else {
        s = db_fail(d, rc, "reading feedback", err);
    }
    db_stmt_done(st);
    return s;
}

int db_feedback_delete(db *d, int64_t id, struct echo_err *err)
{
    sqlite3_stmt *st = db_stmt(d, sql_delete, err);
    if (!st) return DB_ERROR;
    sqlite3_bind_int64(st, 1, id);
    return db_step_write(d, st, true, "deleting feedback", err);
}

int db_feedback_count(db *d, int64_t *n, struct echo_err *err)
{
    sqlite3_stmt *st = db_stmt(d, sql_count, err);
    if (!st) return DB_ERROR;
    return db_step_count(d, st, n, "counting feedback", err);
}

json_t *db_feedback_to_json(const struct db_feedback *f)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer(f->id));
    json_object_set_new(o, "user_id", json_integer(f->user_id));
    json_object_set_new(o, "content", db_json_text(f->content));
    db_json_set_time(o, "created_at", f->created_at);
    return o;
}

static json_t *feedback_row(sqlite3_stmt *st)
{
    struct db_feedback f = {.id = db_col_int(st, 0), .user_id = db_col_int(st, 1)};
    f.content = db_col_strdup(st, 2);
    f.created_at = db_col_int(st, 3);
    json_t *o = db_feedback_to_json(&f);
    db_feedback_deinit(&f);
    const unsigned char *username = sqlite3_column_text(st, 4);
    json_object_set_new(o, "username", db_json_text((const char *)username));
    return o;
}

int db_feedback_list_json(db *d, const struct db_filter *f, json_t **rows, int64_t *total,
                          struct echo_err *err)
{
    return db_list_run(d, &sql_list, f, feedback_row, rows, total, "listing feedback", err);
}
