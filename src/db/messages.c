/*
 * messages.c - the messages table: the chat history, one row per turn of a
 * user or of the assistant. Answers also carry their token counts, why the
 * generation stopped and its speed (the admin dashboard averages it).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/db_internal.h"

#define MESSAGE_COLS                                                                               \
    "id, user_id, role, content, created_at, prompt_tokens, completion_tokens, finish_reason,"     \
    " tokens_per_second"

static const char sql_insert[] =
    "INSERT INTO messages (user_id, role, content, created_at, prompt_tokens,"
    " completion_tokens, finish_reason, tokens_per_second)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";
static const char sql_get[] = "SELECT " MESSAGE_COLS " FROM messages WHERE id = ?1";
static const char sql_delete[] = "DELETE FROM messages WHERE id = ?1";
/* The newest `limit` rows through the user_id index (which ends in the rowid),
 * then back to chronological order. */
static const char sql_history[] =
    "SELECT * FROM (SELECT " MESSAGE_COLS " FROM messages WHERE user_id = ?1"
    " ORDER BY id DESC LIMIT ?2) ORDER BY id ASC";
static const char sql_clear_user[] = "DELETE FROM messages WHERE user_id = ?1";
static const char sql_count_user[] = "SELECT count(*) FROM messages WHERE user_id = ?1";
static const char sql_count[] = "SELECT count(*) FROM messages";
static const char sql_avg_speed[] = "SELECT avg(tokens_per_second) FROM messages"
                                    " WHERE role = 'assistant' AND tokens_per_second IS NOT NULL";
/* Both read the covering partial index messages_answers. */
static const char sql_histogram[] =
    "SELECT completion_tokens, count(*) FROM messages"
    " WHERE role = 'assistant' AND completion_tokens IS NOT NULL GROUP BY completion_tokens";
static const char sql_per_day[] =
    "SELECT created_at / 86400 AS day, count(*) FROM messages"
    " WHERE created_at >= ?1 AND created_at < ?2 GROUP BY day ORDER BY day";

#define MESSAGE_LIST(where)                                                                        \
    "SELECT m.id, m.user_id, m.role, m.content, m.created_at, m.prompt_tokens,"                    \
    " m.completion_tokens, m.finish_reason, m.tokens_per_second, u.username"                       \
    " FROM messages m JOIN users u ON u.id = m.user_id " where                                     \
    " ORDER BY m.created_at DESC, m.id DESC LIMIT ?4 OFFSET ?5"

static const struct db_list_sql sql_list = {
    .list = {MESSAGE_LIST(""), MESSAGE_LIST("WHERE m.user_id = ?1"),
             MESSAGE_LIST("WHERE m.created_at >= ?2 AND m.created_at < ?3"),
             MESSAGE_LIST("WHERE m.user_id = ?1 AND m.created_at >= ?2 AND m.created_at < ?3")},
    .count = {"SELECT count(*) FROM messages", "SELECT count(*) FROM messages WHERE user_id = ?1",
              "SELECT count(*) FROM messages WHERE created_at >= ?2 AND created_at < ?3",
              "SELECT count(*) FROM messages"
              " WHERE user_id = ?1 AND created_at >= ?2 AND created_at < ?3"},
};

void db_message_init(struct db_message *m)
{
    memset(m, 0, sizeof(*m));
    m->prompt_tokens = -1;
    m->completion_tokens = -1;
    m->tokens_per_second = -1;
}

void db_message_deinit(struct db_message *m)
{
    if (!m) return;
    free(m->content);
    free(m->finish_reason);
    db_message_init(m);
}

void db_message_array_free(struct db_message *a, size_t n)
{
    if (!a) return;
    for (size_t i = 0; i < n; i++)
        db_message_deinit(&a[i]);
    free(a);
}

static void read_message(sqlite3_stmt *st, struct db_message *m)
{
    db_message_init(m);
    m->id = db_col_int(st, 0);
    m->user_id = db_col_int(st, 1);
    const unsigned char *role = sqlite3_column_text(st, 2);
    snprintf(m->role, sizeof(m->role), "%s", role ? (const char *)role : "");
    m->content = db_col_strdup(st, 3);
    if (!m->content) m->content = xstrdup("");
    m->created_at = db_col_int(st, 4);
    if (sqlite3_column_type(st, 5) != SQLITE_NULL) m->prompt_tokens = db_col_int(st, 5);
    if (sqlite3_column_type(st, 6) != SQLITE_NULL) m->completion_tokens = db_col_int(st, 6);
    m->finish_reason = db_col_strdup(st, 7);
    if (sqlite3_column_type(st, 8) != SQLITE_NULL)
        m->tokens_per_second = sqlite3_column_double(st, 8);
}

int db_message_add(db *d, const struct db_message *m, int64_t *id, struct echo_err *err)
{
    if (strcmp(m->role, "user") != 0 && strcmp(m->role, "assistant") != 0) {
        echo_err_set(err, "a message's role is 'user' or 'assistant'");
        return DB_INVALID;
    }
    size_t n = m->content ? strlen(m->content) : 0;
    if (!m->content || n > DB_MESSAGE_MAX_BYTES || !utf8_valid(m->content, n)) {
        echo_err_set(err, "a message is up to %d bytes of UTF-8 text", DB_MESSAGE_MAX_BYTES);
        return DB_INVALID;
    }
    if (m->finish_reason && strlen(m->finish_reason) > 32) {
        echo_err_set(err, "a finish reason is at most 32 characters");
        return DB_INVALID;
    }
    sqlite3_stmt *st = db_stmt(d, sql_insert, err);
    if (!st) return DB_ERROR;
    sqlite3_bind_int64(st, 1, m->user_id);
    db_bind_text(st, 2, m->role);
    sqlite3_bind_text(st, 3, m->content, (int)n, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, m->created_at ? m->created_at : db_now());
    if (m->prompt_tokens >= 0) sqlite3_bind_int64(st, 5, m->prompt_tokens);
    if (m->completion_tokens >= 0) sqlite3_bind_int64(st, 6, m->completion_tokens);
    db_bind_text(st, 7, m->finish_reason);
    if (m->tokens_per_second >= 0) sqlite3_bind_double(st, 8, m->tokens_per_second);
    int s = db_step_write(d, st, false, "storing the message", err);
    if (s == DB_OK && id) *id = sqlite3_last_insert_rowid(d->sq);
    return s;
}

int db_message_get(db *d, int64_t id, struct db_message *out, struct echo_err *err)
{
    db_message_init(out);
    sqlite3_stmt *st = db_stmt(d, sql_get, err);
    if (!st) return DB_ERROR;
    sqlite3_bind_int64(st, 1, id);
    int rc = sqlite3_step(st);
    int s = DB_OK;
    if (rc == SQLITE_ROW) {
        read_message(st, out);
    } else if (rc == SQLITE_DONE) {
        echo_err_set(err, "reading a message: no such message");
        s = DB_NOT_FOUND;
    } else {
        s = db_fail(d, rc, "reading a message", err);
    }
    db_stmt_done(st);
    return s;
}

int db_message_delete(db *d, int64_t id, struct echo_err *err)
{
    sqlite3_stmt *st = db_stmt(d, sql_delete, err);
    if (!st) return DB_ERROR;
    sqlite3_bind_int64(st, 1, id);
    return db_step_write(d, st, true, "deleting the message", err);
}

int db_message_history(db *d, int64_t user_id, int64_t limit, struct db_message **out, size_t *n,
                       struct echo_err *err)
{
    *out = NULL;
    *n = 0;
    if (limit <= 0) return DB_OK;
    sqlite3_stmt *st = db_stmt(d, sql_history, err);
    if (!st) return DB_ERROR;
    sqlite3_bind_int64(st, 1, user_id);
    sqlite3_bind_int64(st, 2, limit);
    struct db_message *a = NULL;
    size_t len = 0, cap = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (len == cap) {
            cap = cap ? cap * 2 : 16;
            a = xrealloc(a, cap * sizeof(*a));
        }
        read_message(st, &a[len++]);
    }
    if (rc != SQLITE_DONE) {
        int s = db_fail(d, rc, "reading the history", err);
        db_stmt_done(st);
        db_message_array_free(a, len);
        return s;
    }
    db_stmt_done(st);
    *out = a;
    *n = len;
    return DB_OK;
}

int db_message_clear_user(db *d, int64_t user_id, int64_t *deleted, struct echo_err *err)
{
    sqlite3_stmt *st = db_stmt(d, sql_clear_user, err);
    if (!st) return DB_ERROR;
    sqlite3_bind_int64(st, 1, user_id);
    int s = db_step_write(d, st, false, "clearing the discussion", err);
    if (s == DB_OK && deleted) *deleted = sqlite3_changes(d->sq);
    return s;
}

int db_message_count_user(db *d, int64_t user_id, int64_t *n, struct echo_err *err)
{
    sqlite3_stmt *st = db_stmt(d, sql_count_user, err);
    if (!st) return DB_ERROR;
    sqlite3_bind_int64(st, 1, user_id);
    return db_step_count(d, st, n, "counting messages", err);
}

int db_message_count(db *d, int64_t *n, struct echo_err *err)
{
    sqlite3_stmt *st = db_stmt(d, sql_count, err);
    if (!st) return DB_ERROR;
    return db_step_count(d, st, n, "counting messages", err);
}

int db_message_avg_speed(db *d, double *tokens_per_second, struct echo_err *err)
{
    *tokens_per_second = 0;
    sqlite3_stmt *st = db_stmt(d, sql_avg_speed, err);
    if (!st) return DB_ERROR;
    int rc = sqlite3_step(st);
    int s = DB_OK;
    if (rc == SQLITE_ROW)
        *tokens_per_second = sqlite3_column_double(st, 0);
    else
        s = db_fail(d, rc, "averaging the answer speed", err);
    db_stmt_done(st);
    return s;
}

int db_message_per_day(db *d, int64_t from, int64_t to, struct db_day_count **out, size_t *n,
                       struct echo_err *err)
{
    *out = NULL;
    *n = 0;
    sqlite3_stmt *st = db_stmt(d, sql_per_day, err);
    if (!st) return DB_ERROR;
    sqlite3_bind_int64(st, 1, from);
    sqlite3_bind_int64(st, 2, to);
    return db_step_day_counts(d, st, out, n, "counting messages per day", err);
}

/* Grouping by the bare column walks the index in order (no temporary
 * B-tree); the few thousand distinct lengths are bucketed here. */
int db_message_length_histogram(db *d, int64_t width, struct db_day_count **out, size_t *n,
                                struct echo_err *err)
{
    *out = NULL;
    *n = 0;
    if (width < 1) {
        echo_err_set(err, "a histogram bucket is at least 1 token wide");
        return DB_INVALID;
    }
    sqlite3_stmt *st = db_stmt(d, sql_histogram, err);
    if (!st) return DB_ERROR;
    struct db_day_count *lengths = NULL;
    size_t nl = 0;
    int s = db_step_day_counts(d, st, &lengths, &nl, "counting answer lengths", err);
    if (s != DB_OK) return s;
    struct db_day_count *b = NULL;
    size_t nb = 0;
    for (size_t i = 0; i < nl; i++) {
        /* Rows come in increasing length; floor division keeps negative
         * (corrupt) lengths in their own buckets. */
        int64_t v = lengths[i].day;
        int64_t k = v >= 0 ? v / width : -((-v + width - 1) / width);
        if (nb == 0 || b[nb - 1].day != k) {
            b = xrealloc(b, (nb + 1) * sizeof(*b));
            b[nb++] = (struct db_day_count){.day = k, .count = 0};
        }
        b[nb - 1].count += lengths[i].count;
    }
    free(lengths);
    *out = b;
    *n = nb;
    return DB_OK;
}

json_t *db_message_to_json(const struct db_message *m)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer(m->id));
    json_object_set_new(o, "user_id", json_integer(m->user_id));
    json_object_set_new(o, "role", db_json_text(m->role));
    json_object_set_new(o, "content", db_json_text(m->content));
    db_json_set_time(o, "created_at", m->created_at);
    json_object_set_new(o, "prompt_tokens",
                        m->prompt_tokens >= 0 ? json_integer(m->prompt_tokens) : json_null());
    json_object_set_new(o, "completion_tokens",
                        m->completion_tokens >= 0 ? json_integer(m->completion_tokens)
                                                  : json_null());
    json_object_set_new(o, "finish_reason",
                        m->finish_reason ? db_json_text(m->finish_reason) : json_null());
    json_object_set_new(o, "tokens_per_second",
                        m->tokens_per_second >= 0 ? json_real(m->tokens_per_second) : json_null());
    return o;
}

static json_t *message_row(sqlite3_stmt *st)
{
    struct db_message m;
    read_message(st, &m);
    json_t *o = db_message_to_json(&m);
    db_message_deinit(&m);
    json_object_set_new(o, "username", db_json_text((const char *)sqlite3_column_text(st, 9)));
    return o;
}

int db_message_list_json(db *d, const struct db_filter *f, json_t **rows, int64_t *total,
                         struct echo_err *err)
{
    return db_list_run(d, &sql_list, f, message_row, rows, total, "listing messages", err);
}
