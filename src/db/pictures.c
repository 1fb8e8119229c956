/*
 * pictures.c - the pictures table: profile pictures a user uploaded (the
 * files themselves are written by media/ under the instance folder; a row
 * records the path relative to it, the type and the size). The newest row of
 * a user is their current picture.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/db_internal.h"

#define PICTURE_COLS "id, user_id, path, mime, width, height, bytes, created_at"

static const char sql_insert[] =
    "INSERT INTO pictures (user_id, path, mime, width, height, bytes, created_at)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
static const char sql_get[] = "SELECT " PICTURE_COLS " FROM pictures WHERE id = ?1";
/* The user_id index ends in the rowid, so this reads one index entry. */
static const char sql_latest[] =
    "SELECT " PICTURE_COLS " FROM pictures WHERE user_id = ?1 ORDER BY id DESC LIMIT 1";
static const char sql_delete[] = "DELETE FROM pictures WHERE id = ?1";

#define PICTURE_LIST(where)                                                                        \
    "SELECT p.id, p.user_id, p.path, p.mime, p.width, p.height, p.bytes, p.created_at,"            \
    " u.username FROM pictures p JOIN users u ON u.id = p.user_id " where                          \
    " ORDER BY p.created_at DESC, p.id DESC LIMIT ?4 OFFSET ?5"

static const struct db_list_sql sql_list = {
    .list = {PICTURE_LIST(""), PICTURE_LIST("WHERE p.user_id = ?1"),
             PICTURE_LIST("WHERE p.created_at >= ?2 AND p.created_at < ?3"),
             PICTURE_LIST("WHERE p.user_id = ?1 AND p.created_at >= ?2 AND p.created_at < ?3")},
    .count = {"SELECT count(*) FROM pictures", "SELECT count(*) FROM pictures WHERE user_id = ?1",
              "SELECT count(*) FROM pictures WHERE created_at >= ?2 AND created_at < ?3",
              "SELECT count(*) FROM pictures"
              " WHERE user_id = ?1 AND created_at >= ?2 AND created_at < ?3"},
};

void db_picture_deinit(struct db_picture *p)
{
    if (!p) return;
    free(p->path);
    free(p->mime);
    memset(p, 0, sizeof(*p));
}

static void read_picture(sqlite3_stmt *st, struct db_picture *p)
{
    p->id = db_col_int(st, 0);
    p->user_id = db_col_int(st, 1);
    p->path = db_col_strdup(st, 2);
    p->mime = db_col_strdup(st, 3);
    p->width = db_col_int(st, 4);
    p->height = db_col_int(st, 5);
    p->bytes = db_col_int(st, 6);
    p->created_at = db_col_int(st, 7);
}

static int fetch_picture(db *d, sqlite3_stmt *st, struct db_picture *out, struct echo_err *err)
{
    memset(out, 0, sizeof(*out));
    int rc = sqlite3_step(st);
    int s = DB_OK;
    if (rc == SQLITE_ROW) {
        read_picture(st, out);
    } else if (rc == SQLITE_DONE) {
        echo_err_set(err, "reading a picture: no such picture");
        s = DB_NOT_FOUND;
    } else {
        s = db_fail(d, rc, "reading a picture", err);
    }
    db_stmt_done(st);
    return s;
}

int db_picture_add(db *d, const struct db_picture *p, int64_t *id, struct echo_err *err)
{
    if (!p->path || !p->path[0] || strlen(p->path) > 1024 || !p->mime || !p->mime[0] ||
        strlen(p->mime) > 128) {
        echo_err_set(err, "a picture needs a path (up to 1024 bytes) and a type");
        return DB_INVALID;
    }
    if (p->width <= 0 || p->height <= 0 || p->bytes < 0) {
        echo_err_set(err, "a picture needs a positive width and height");
        return DB_INVALID;
    }
    sqlite3_stmt *st = db_stmt(d, sql_insert, err);
    if (!st) return DB_ERROR;
    sqlite3_bind_int64(st, 1, p->user_id);
    db_bind_text(st, 2, p->path);
    db_bind_text(st, 3, p->mime);
    sqlite3_bind_int64(st, 4, p->width);
    sqlite3_bind_int64(st, 5, p->height);
    sqlite3_bind_int64(st, 6, p->bytes);
    sqlite3_bind_int64(st, 7, p->created_at ? p->created_at : db_now());
    int s = db_step_write(d, st, false, "storing the picture", err);
    if (s == DB_OK && id) *id = sqlite3_last_insert_rowid(d->sq);
    return s;
}

int db_picture_get(db *d, int64_t id, struct db_picture *out, struct echo_err *err)
{
    sqlite3_stmt *st = db_stmt(d, sql_get, err);
    if (!st) return DB_ERROR;
    sqlite3_bind_int64(st, 1, id);
    return fetch_picture(d, st, out, err);
}

int db_picture_latest(db *d, int64_t user_id, struct db_picture *out, struct echo_err *err)
{
    sqlite3_stmt *st = db_stmt(d, sql_latest, err);
    if (!st) return DB_ERROR;
    sqlite3_bind_int64(st, 1, user_id);
    return fetch_picture(d, st, out, err);
}

int db_picture_delete(db *d, int64_t id, struct echo_err *err)
{
    sqlite3_stmt *st = db_stmt(d, sql_delete, err);
    if (!st) return DB_ERROR;
    sqlite3_bind_int64(st, 1, id);
    return db_step_write(d, st, true, "deleting the picture", err);
}

json_t *db_picture_to_json(const struct db_picture *p)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer(p->id));
    json_object_set_new(o, "user_id", json_integer(p->user_id));
    json_object_set_new(o, "path", db_json_text(p->path));
    json_object_set_new(o, "mime", db_json_text(p->mime));
    json_object_set_new(o, "width", json_integer(p->width));
    json_object_set_new(o, "height", json_integer(p->height));
    json_object_set_new(o, "bytes", json_integer(p->bytes));
    db_json_set_time(o, "created_at", p->created_at);
    return o;
}

static json_t *picture_row(sqlite3_stmt *st)
{
    struct db_picture p;
    read_picture(st, &p);
    json_t *o = db_picture_to_json(&p);
    db_picture_deinit(&p);
    const unsigned char *username = sqlite3_column_text(st, 8);
    json_object_set_new(o, "username", db_json_text((const char *)username));
    return o;
}

int db_picture_list_json(db *d, const struct db_filter *f, json_t **rows, int64_t *total,
                         struct echo_err *err)
{
    return db_list_run(d, &sql_list, f, picture_row, rows, total, "listing pictures", err);
}
