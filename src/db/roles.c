/*
 * roles.c - the roles table: named roles a user holds ("admin", "user",
 * "moderator" or another [a-z_]{2,32} name), each at most once per user.
 * admin_required checks db_user_has_role; the admin panel's last-admin rule
 * counts holders with db_role_count_active_holders.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/db_internal.h"

bool db_role_name_valid(const char *name)
{
    if (!name) return false;
    size_t n = strlen(name);
    if (n < 2 || n > DB_ROLE_NAME_MAX) return false;
    for (size_t i = 0; i < n; i++)
        if (!((name[i] >= 'a' && name[i] <= 'z') || name[i] == '_')) return false;
    return true;
}

static int check_name(const char *name, struct echo_err *err)
{
    if (db_role_name_valid(name)) return DB_OK;
    echo_err_set(err, "a role name is 2 to %d characters of a-z and '_'", DB_ROLE_NAME_MAX);
    return DB_INVALID;
}

static const char sql_insert[] =
    "INSERT INTO roles (user_id, name, created_at) VALUES (?1, ?2, ?3)";
static const char sql_remove[] = "DELETE FROM roles WHERE user_id = ?1 AND name = ?2";
static const char sql_get[] = "SELECT id, user_id, name, created_at FROM roles WHERE id = ?1";
static const char sql_update[] = "UPDATE roles SET user_id = ?2, name = ?3 WHERE id = ?1";
static const char sql_delete[] = "DELETE FROM roles WHERE id = ?1";
static const char sql_has[] = "SELECT 1 FROM roles WHERE user_id = ?1 AND name = ?2";
static const char sql_names[] = "SELECT name FROM roles WHERE user_id = ?1 ORDER BY name";
static const char sql_count_active[] =
    "SELECT count(*) FROM roles r JOIN users u ON u.id = r.user_id"
    " WHERE r.name = ?1 AND u.is_active = 1";

/* The four filter shapes of a list (db_internal.h struct db_list_sql). */
#define ROLE_LIST(where)                                                                           \
    "SELECT r.id, r.user_id, u.username, r.name, r.created_at"                                     \
    " FROM roles r JOIN users u ON u.id = r.user_id " where                                        \
    " ORDER BY r.created_at DESC, r.id DESC LIMIT ?4 OFFSET ?5"

static const struct db_list_sql sql_list = {
    .list = {ROLE_LIST(""), ROLE_LIST("WHERE r.user_id = ?1"),
             ROLE_LIST("WHERE r.created_at >= ?2 AND r.created_at < ?3"),
             ROLE_LIST("WHERE r.user_id = ?1 AND r.created_at >= ?2 AND r.created_at < ?3")},
    .count = {"SELECT count(*) FROM roles", "SELECT count(*) FROM roles WHERE user_id = ?1",
              "SELECT count(*) FROM roles WHERE created_at >= ?2 AND created_at < ?3",
              "SELECT count(*) FROM roles"
              " WHERE user_id = ?1 AND created_at >= ?2 AND created_at < ?3"},
};

int db_role_add(db *d, int64_t user_id, const char *name, int64_t now, int64_t *id,
                struct echo_err *err)
{
    int s = check_name(name, err);
    if (s != DB_OK) return s;
    sqlite3_stmt *st = db_stmt(d, sql_insert, err);
    if (!st) return DB_ERROR;
    sqlite3_bind_int64(st, 1, user_id);
    db_bind_text(st, 2, name);
    sqlite3_bind_int64(st, 3, now ? now : db_now());
    s = db_step_write(d, st, false, "granting the role", err);
    if (s == DB_OK && id) *id = sqlite3_last_insert_rowid(d->sq);
    return s;
}

int db_role_remove(db *d, int64_t user_id, const char *name, struct echo_err *err)
{
    sqlite3_stmt *st = db_stmt(d, sql_remove, err);
    if (!st) return DB_ERROR;
    sqlite3_bind_int64(st, 1, user_id);
    db_bind_text(st, 2, name ? name : "");
    return db_step_write(d, st, true, "revoking the role", err);
}

int db_role_get(db *d, int64_t id, struct db_role *out, struct echo_err *err)
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
        const unsigned char *name = sqlite3_column_text(st, 2);
        snprintf(out->name, sizeof(out->name), "%s", name ? (const char *)name : "");
        out->created_at = db_col_int(st, 3);
    } else if (rc == SQLITE_DONE) {
        echo_err_set(err, "reading a role: no such role");
        s = DB_NOT_FOUND;
    } else {
        s = db_fail(d, rc, "reading a role", err);
    }
    db_stmt_done(st);
    return s;
}

int db_role_update(db *d, int64_t id, int64_t user_id, const char *name, struct echo_err *err)
{
    int s = check_name(name, err);
    if (s != DB_OK) return s;
    sqlite3_stmt *st = db_stmt(d, sql_update, err);
    if (!st) return DB_ERROR;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, user_id);
    db_bind_text(st, 3, name);
    return db_step_write(d, st, true, "changing the role", err);
}

int db_role_delete(db *d, int64_t id, struct echo_err *err)
{
    sqlite3_stmt *st = db_stmt(d, sql_delete, err);
    if (!st) return DB_ERROR;
    sqlite3_bind_int64(st, 1, id);
    return db_step_write(d, st, true, "deleting the role", err);
}

int db_user_has_role(db *d, int64_t user_id, const char *name, bool *has, struct echo_err *err)
{
    *has = false;
    sqlite3_stmt *st = db_stmt(d, sql_has, err);
    if (!st) return DB_ERROR;
    sqlite3_bind_int64(st, 1, user_id);
    db_bind_text(st, 2, name ? name : "");
    int rc = sqlite3_step(st);
    int s = DB_OK;
    if (rc == SQLITE_ROW)
        *has = true;
    else if (rc != SQLITE_DONE)
        s = db_fail(d, rc, "checking a role", err);
    db_stmt_done(st);
    return s;
}

int db_role_names_json(db *d, int64_t user_id, json_t **names, struct echo_err *err)
{
    *names = NULL;
    sqlite3_stmt *st = db_stmt(d, sql_names, err);
    if (!st) return DB_ERROR;
    sqlite3_bind_int64(st, 1, user_id);
    json_t *arr = json_array();
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        json_array_append_new(arr, db_json_text((const char *)sqlite3_column_text(st, 0)));
    if (rc != SQLITE_DONE) {
        int s = db_fail(d, rc, "listing roles", err);
        db_stmt_done(st);
        json_decref(arr);
        return s;
    }
    db_stmt_done(st);
    *names = arr;
    return DB_OK;
}

int db_role_count_active_holders(db *d, const char *name, int64_t *n, struct echo_err *err)
{
    sqlite3_stmt *st = db_stmt(d, sql_count_active, err);
    if (!st) return DB_ERROR;
    db_bind_text(st, 1, name ? name : "");
    return db_step_count(d, st, n, "counting role holders", err);
}

json_t *db_role_to_json(const struct db_role *r)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer(r->id));
    json_object_set_new(o, "user_id", json_integer(r->user_id));
    json_object_set_new(o, "name", db_json_text(r->name));
    db_json_set_time(o, "created_at", r->created_at);
    return o;
}

static json_t *role_row(sqlite3_stmt *st)
{
    struct db_role r = {.id = db_col_int(st, 0), .user_id = db_col_int(st, 1)};
    const unsigned char *name = sqlite3_column_text(st, 3);
    snprintf(r.name, sizeof(r.name), "%s", name ? (const char *)name : "");
    r.created_at = db_col_int(st, 4);
    json_t *o = db_role_to_json(&r);
    const unsigned char *username = sqlite3_column_text(st, 2);
    json_object_set_new(o, "username", db_json_text((const char *)username));
    return o;
}

int db_role_list_json(db *d, const struct db_filter *f, json_t **rows, int64_t *total,
                      struct echo_err *err)
{
    return db_list_run(d, &sql_list, f, role_row, rows, total, "listing roles", err);
}
