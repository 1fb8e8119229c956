/*
 * admin.c - the data layer of the admin panel (see admin.h): the audit log
 * table of migrations/004_admin.sql, the filtered users list, and the
 * picture paths of a user.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/admin.h"
#include "db/db_internal.h"

/* ---- the audit log -------------------------------------------------------- */

static const char sql_audit_insert[] =
    "INSERT INTO audit_log (actor_id, actor_name, action, entity, entity_id, before_json,"
    " after_json, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";

#define AUDIT_LIST(where)                                                                          \
    "SELECT id, actor_id, actor_name, action, entity, entity_id, before_json, after_json,"         \
    " created_at FROM audit_log " where " ORDER BY created_at DESC, id DESC LIMIT ?4 OFFSET ?5"

static const struct db_list_sql sql_audit_list = {
    .list = {AUDIT_LIST(""), AUDIT_LIST("WHERE actor_id = ?1"),
             AUDIT_LIST("WHERE created_at >= ?2 AND created_at < ?3"),
             AUDIT_LIST("WHERE actor_id = ?1 AND created_at >= ?2 AND created_at < ?3")},
    .count = {"SELECT count(*) FROM audit_log",
              "SELECT count(*) FROM audit_log WHERE actor_id = ?1",
              "SELECT count(*) FROM audit_log WHERE created_at >= ?2 AND created_at < ?3",
              "SELECT count(*) FROM audit_log"
              " WHERE actor_id = ?1 AND created_at >= ?2 AND created_at < ?3"},
};

static bool audit_action_valid(const char *a)
{
    static const char *const known[] = {"create", "update", "delete", "deactivate", "activate"};
    for (size_t i = 0; a && i < sizeof(known) / sizeof(known[0]); i++)
        if (!strcmp(a, known[i])) return true;
    return false;
}

/* Compact JSON text of an object, or NULL. Caller frees. */
static char *json_text(const json_t *v)
{
    return v ? json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
}

int db_audit_add(db *d, const struct db_audit *a, int64_t *id, struct echo_err *err)
{
    if (!audit_action_valid(a->action) || !a->entity || !a->entity[0] || strlen(a->entity) > 32 ||
        !a->actor_name) {
        echo_err_set(err, "an audit row needs a known action, an entity and an actor");
        return DB_INVALID;
    }
    sqlite3_stmt *st = db_stmt(d, sql_audit_insert, err);
    if (!st) return DB_ERROR;
    char *before = json_text(a->before), *after = json_text(a->after);
    sqlite3_bind_int64(st, 1, a->actor_id);
    db_bind_text(st, 2, a->actor_name);
    db_bind_text(st, 3, a->action);
    db_bind_text(st, 4, a->entity);
    sqlite3_bind_int64(st, 5, a->entity_id);
    db_bind_text(st, 6, before);
    db_bind_text(st, 7, after);
    sqlite3_bind_int64(st, 8, a->created_at ? a->created_at : db_now());
    int s = db_step_write(d, st, false, "writing the audit log", err);
    if (s == DB_OK && id) *id = sqlite3_last_insert_rowid(d->sq);
    free(before);
    free(after);
    return s;
}

static json_t *audit_row(sqlite3_stmt *st)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer(db_col_int(st, 0)));
    json_object_set_new(o, "actor_id", json_integer(db_col_int(st, 1)));
    json_object_set_new(o, "actor_name", db_json_text((const char *)sqlite3_column_text(st, 2)));
    json_object_set_new(o, "action", db_json_text((const char *)sqlite3_column_text(st, 3)));
    json_object_set_new(o, "entity", db_json_text((const char *)sqlite3_column_text(st, 4)));
    json_object_set_new(o, "entity_id", json_integer(db_col_int(st, 5)));
    const char *before = (const char *)sqlite3_column_text(st, 6);
    const char *after = (const char *)sqlite3_column_text(st, 7);
    json_object_set_new(o, "before", before ? db_json_text(before) : json_null());
    json_object_set_new(o, "after", after ? db_json_text(after) : json_null());
    db_json_set_time(o, "created_at", db_col_int(st, 8));
    return o;
}

int db_audit_list_json(db *d, const struct db_filter *f, json_t **rows, int64_t *total,
                       struct echo_err *err)
{
    return db_list_run(d, &sql_audit_list, f, audit_row, rows, total, "listing the audit log", err);
}

/* ---- users ---------------------------------------------------------------- */

/*
 * One literal per sort order (an ORDER BY column cannot be bound). The
 * optional filters are bound values that switch themselves off (NULL / 0),
 * which is fine here: the users list is read page by page along the index
 * of its ORDER BY and stops at the page size; the count is one pass over
 * the table (100,000 users: a few milliseconds).
 * ?1 LIKE pattern or NULL, ?2 user id or 0, ?3 from or 0, ?4 to or 0,
 * ?5 page size, ?6 offset.
 */
#define ADMIN_USER_WHERE                                                                           \
    " WHERE (?1 IS NULL OR u.username LIKE ?1 ESCAPE '\\' OR u.email LIKE ?1 ESCAPE '\\')"         \
    " AND (?2 = 0 OR u.id = ?2) AND (?3 = 0 OR u.created_at >= ?3)"                                \
    " AND (?4 = 0 OR u.created_at < ?4)"
#define ADMIN_USER_LIST(order)                                                                     \
    "SELECT u.id, u.username, u.email, u.password_hash IS NOT NULL, u.is_active, u.created_at,"    \
    " u.last_login_at,"                                                                            \
    " (SELECT json_group_array(name) FROM"                                                         \
    "   (SELECT name FROM roles r WHERE r.user_id = u.id ORDER BY name)),"                         \
    " (SELECT count(*) FROM messages m WHERE m.user_id = u.id)"                                    \
    " FROM users u" ADMIN_USER_WHERE " ORDER BY " order " LIMIT ?5 OFFSET ?6"

static const char *const sql_user_list[][2] = {
    [DB_USER_SORT_ID] = {ADMIN_USER_LIST("u.id ASC"), ADMIN_USER_LIST("u.id DESC")},
    [DB_USER_SORT_USERNAME] = {ADMIN_USER_LIST("u.username ASC, u.id ASC"),
                               ADMIN_USER_LIST("u.username DESC, u.id DESC")},
    [DB_USER_SORT_EMAIL] = {ADMIN_USER_LIST("u.email ASC, u.id ASC"),
                            ADMIN_USER_LIST("u.email DESC, u.id DESC")},
    [DB_USER_SORT_CREATED_AT] = {ADMIN_USER_LIST("u.created_at ASC, u.id ASC"),
                                 ADMIN_USER_LIST("u.created_at DESC, u.id DESC")},
    [DB_USER_SORT_LAST_LOGIN_AT] = {ADMIN_USER_LIST("u.last_login_at ASC, u.id ASC"),
                                    ADMIN_USER_LIST("u.last_login_at DESC, u.id DESC")},
};
static const char sql_user_count[] = "SELECT count(*) FROM users u" ADMIN_USER_WHERE;

/* "%<search with % _ \ escaped>%", or NULL for no search. Caller frees. */
static char *like_pattern(const char *search)
{
    if (!search || !search[0]) return NULL;
    size_t n = strlen(search);
    char *p = xmalloc(2 * n + 3), *w = p;
    *w++ = '%';
    for (size_t i = 0; i < n; i++) {
        if (search[i] == '%' || search[i] == '_' || search[i] == '\\') *w++ = '\\';
        *w++ = search[i];
    }
    *w++ = '%';
    *w = 0;
    return p;
}

static void bind_user_filters(sqlite3_stmt *st, const struct db_admin_user_query *q,
                              const char *pattern)
{
    db_bind_text(st, 1, pattern);
    sqlite3_bind_int64(st, 2, q->user_id > 0 ? q->user_id : 0);
    sqlite3_bind_int64(st, 3, q->from);
    sqlite3_bind_int64(st, 4, q->to);
}

static json_t *user_row(sqlite3_stmt *st)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer(db_col_int(st, 0)));
    json_object_set_new(o, "username", db_json_text((const char *)sqlite3_column_text(st, 1)));
    json_object_set_new(o, "email", db_json_text((const char *)sqlite3_column_text(st, 2)));
    json_object_set_new(o, "has_password", json_boolean(db_col_int(st, 3) != 0));
    json_object_set_new(o, "is_active", json_boolean(db_col_int(st, 4) != 0));
    db_json_set_time(o, "created_at", db_col_int(st, 5));
    db_json_set_time(o, "last_login_at", db_col_int(st, 6));
    const char *roles = (const char *)sqlite3_column_text(st, 7);
    json_t *r = roles ? json_loads(roles, 0, NULL) : NULL;
    if (!json_is_array(r)) {
        json_decref(r);
        r = json_array();
    }
    json_object_set_new(o, "roles", r);
    json_object_set_new(o, "message_count", json_integer(db_col_int(st, 8)));
    return o;
}

int db_admin_user_list_json(db *d, const struct db_admin_user_query *q, json_t **rows,
                            int64_t *total, struct echo_err *err)
{
    *rows = NULL;
    struct db_filter page = {.limit = q->limit, .offset = q->offset};
    int64_t limit, offset;
    int s = db_filter_page(&page, &limit, &offset, err);
    if (s != DB_OK) return s;
    if ((int)q->sort < 0 || (size_t)q->sort >= sizeof(sql_user_list) / sizeof(sql_user_list[0])) {
        echo_err_set(err, "unknown sort column");
        return DB_INVALID;
    }
    char *pattern = like_pattern(q->search);
    json_t *arr = NULL;
    sqlite3_stmt *st = db_stmt(d, sql_user_list[q->sort][q->descending ? 1 : 0], err);
    if (!st) {
        s = DB_ERROR;
        goto out;
    }
    bind_user_filters(st, q, pattern);
    sqlite3_bind_int64(st, 5, limit);
    sqlite3_bind_int64(st, 6, offset);
    arr = json_array();
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        json_array_append_new(arr, user_row(st));
    if (rc != SQLITE_DONE) {
        s = db_fail(d, rc, "listing users", err);
        db_stmt_done(st);
        goto out;
    }
    db_stmt_done(st);
    if (total) {
        st = db_stmt(d, sql_user_count, err);
        if (!st) {
            s = DB_ERROR;
            goto out;
        }
        bind_user_filters(st, q, pattern);
        s = db_step_count(d, st, total, "counting users", err);
    }
out:
    free(pattern);
    if (s == DB_OK)
        *rows = arr;
    else
        json_decref(arr);
    return s;
}

/* The expression must be written as in the index for SQLite to use it. */
static const char *const sql_per_day[] = {
    [DB_ADMIN_SIGNUPS] = "SELECT created_at / 86400, count(*) FROM users"
                         " WHERE created_at / 86400 >= ?1 AND created_at / 86400 < ?2"
                         " GROUP BY created_at / 86400 ORDER BY created_at / 86400",
    [DB_ADMIN_MESSAGES] = "SELECT created_at / 86400, count(*) FROM messages"
                          " WHERE created_at / 86400 >= ?1 AND created_at / 86400 < ?2"
                          " GROUP BY created_at / 86400 ORDER BY created_at / 86400",
};

int db_admin_per_day(db *d, enum db_admin_series which, int64_t from_day, int64_t to_day,
                     struct db_day_count **out, size_t *n, struct echo_err *err)
{
    *out = NULL;
    *n = 0;
    if ((int)which < 0 || which > DB_ADMIN_MESSAGES) {
        echo_err_set(err, "unknown series");
        return DB_INVALID;
    }
    sqlite3_stmt *st = db_stmt(d, sql_per_day[which], err);
    if (!st) return DB_ERROR;
    sqlite3_bind_int64(st, 1, from_day);
    sqlite3_bind_int64(st, 2, to_day);
    return db_step_day_counts(d, st, out, n, "counting rows per day", err);
}

static const char sql_users_before[] = "SELECT count(*) FROM users WHERE created_at < ?1";

int db_admin_count_users_before(db *d, int64_t t, int64_t *n, struct echo_err *err)
{
    sqlite3_stmt *st = db_stmt(d, sql_users_before, err);
    if (!st) return DB_ERROR;
    sqlite3_bind_int64(st, 1, t);
    return db_step_count(d, st, n, "counting earlier users", err);
}

/* ---- answer statistics ------------------------------------------------------ */

/* The index is (role, completion_tokens, tokens_per_second): the rows come
 * grouped in index order, without a temporary B-tree, and the speed is read
 * from the same entries. */
static const char sql_answer_stats[] =
    "SELECT completion_tokens, count(*), total(tokens_per_second), count(tokens_per_second)"
    " FROM messages WHERE role = 'assistant' GROUP BY completion_tokens";

int db_admin_answer_stats(db *d, double *avg_speed, struct db_day_count **lengths, size_t *n,
                          struct echo_err *err)
{
    *avg_speed = 0;
    *lengths = NULL;
    *n = 0;
    sqlite3_stmt *st = db_stmt(d, sql_answer_stats, err);
    if (!st) return DB_ERROR;
    double sum = 0;
    int64_t timed = 0;
    struct db_day_count *out = NULL;
    size_t count = 0, cap = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        sum += sqlite3_column_double(st, 2);
        timed += sqlite3_column_int64(st, 3);
        if (sqlite3_column_type(st, 0) == SQLITE_NULL) continue;
        if (count == cap) {
            cap = cap ? cap * 2 : 256;
            out = xrealloc(out, cap * sizeof(*out));
        }
        out[count++] = (struct db_day_count){.day = sqlite3_column_int64(st, 0),
                                             .count = sqlite3_column_int64(st, 1)};
    }
    if (rc != SQLITE_DONE) {
        int s = db_fail(d, rc, "reading the answer statistics", err);
        db_stmt_done(st);
        free(out);
        return s;
    }
    db_stmt_done(st);
    *avg_speed = timed > 0 ? sum / (double)timed : 0;
    *lengths = out;
    *n = count;
    return DB_OK;
}

/* ---- pictures ------------------------------------------------------------- */

static const char sql_picture_paths[] = "SELECT path FROM pictures WHERE user_id = ?1 ORDER BY id";

int db_admin_picture_paths(db *d, int64_t user_id, json_t **paths, struct echo_err *err)
{
    *paths = NULL;
    sqlite3_stmt *st = db_stmt(d, sql_picture_paths, err);
    if (!st) return DB_ERROR;
    sqlite3_bind_int64(st, 1, user_id);
    json_t *arr = json_array();
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        json_array_append_new(arr, db_json_text((const char *)sqlite3_column_text(st, 0)));
    if (rc != SQLITE_DONE) {
        int s = db_fail(d, rc, "listing a user's pictures", err);
        db_stmt_done(st);
        json_decref(arr);
        return s;
    }
    db_stmt_done(st);
    *paths = arr;
    return DB_OK;
}

/* ---- query plans ---------------------------------------------------------- */

static bool aggregate_sql(const char *sql)
{
    return strstr(sql, "count(") || strstr(sql, "GROUP BY") || strstr(sql, "avg(");
}

int db_admin_query_plans(db *d, json_t **out, struct echo_err *err)
{
    *out = NULL;
    json_t *arr = json_array();
    for (size_t i = 0; i < d->nslots; i++) {
        sqlite3_stmt *cached = d->slots[i].stmt;
        if (!cached || !d->slots[i].sql || !aggregate_sql(d->slots[i].sql)) continue;
        /* EXPLAIN QUERY PLAN of the same text: a statement of its own, not
         * cached (the text is built here, but from a statement's own SQL). */
        char *q = sqlite3_mprintf("EXPLAIN QUERY PLAN %s", d->slots[i].sql);
        sqlite3_stmt *st = NULL;
        int rc = q ? sqlite3_prepare_v2(d->sq, q, -1, &st, NULL) : SQLITE_NOMEM;
        sqlite3_free(q);
        if (rc != SQLITE_OK) {
            int s = db_fail(d, rc, "explaining a query", err);
            sqlite3_finalize(st);
            json_decref(arr);
            return s;
        }
        json_t *plan = json_array();
        while ((rc = sqlite3_step(st)) == SQLITE_ROW)
            json_array_append_new(plan, db_json_text((const char *)sqlite3_column_text(st, 3)));
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE) {
            json_decref(plan);
            json_decref(arr);
            return db_fail(d, rc, "explaining a query", err);
        }
        json_array_append_new(
            arr, json_pack("{s:s,s:o,s:i}", "sql", d->slots[i].sql, "plan", plan, "fullscan_steps",
                           sqlite3_stmt_status(cached, SQLITE_STMTSTATUS_FULLSCAN_STEP, 0)));
    }
    *out = arr;
    return DB_OK;
}
