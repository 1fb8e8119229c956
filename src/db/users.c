/*
 * users.c - the users table: accounts with a case-insensitively unique
 * username and email, an optional Argon2id password hash (NULL for an
 * account that cannot log in with a password), and login bookkeeping.
 *
 * The username and email rules live here, next to the COLLATE NOCASE columns
 * that depend on them being ASCII; the web forms call the same validators.
 */
#include <stdlib.h>
#include <string.h>

#include "db/db_internal.h"

/* ---- validation -------------------------------------------------------- */

static bool is_alnum(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

bool db_username_valid(const char *s)
{
    if (!s) return false;
    size_t n = strlen(s);
    if (n < DB_USERNAME_MIN || n > DB_USERNAME_MAX) return false;
    for (size_t i = 0; i < n; i++)
        if (!is_alnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '.' && s[i] != '-')
            return false;
    return true;
}

/* RFC 5322 "atext" plus the dot (placement checked by the caller). */
static bool local_char_ok(int c)
{
    return is_alnum(c) || (c && strchr("!#$%&'*+/=?^_`{|}~.-", c) != NULL);
}

bool db_email_valid(const char *s)
{
    if (!s) return false;
    size_t n = strlen(s);
    if (n < 3 || n > DB_EMAIL_MAX) return false;
    const char *at = strchr(s, '@');
    if (!at || strchr(at + 1, '@')) return false;
    size_t local = (size_t)(at - s);
    if (local < 1 || local > 64 || s[0] == '.' || at[-1] == '.') return false;
    for (size_t i = 0; i < local; i++) {
        if (!local_char_ok((unsigned char)s[i])) return false;
        if (s[i] == '.' && s[i + 1] == '.') return false;
    }
    /* Domain: labels of [A-Za-z0-9-], 1-63 long, no hyphen at an edge. */
    const char *p = at + 1;
    int labels = 0;
    for (;;) {
        size_t len = 0;
        while (is_alnum((unsigned char)p[len]) || p[len] == '-')
            len++;
        if (len < 1 || len > 63 || p[0] == '-' || p[len - 1] == '-') return false;
        labels++;
        p += len;
        if (*p == 0) break;
        if (*p != '.') return false;
        p++;
    }
    return labels >= 2;
}

static int check_user_fields(const char *username, const char *email, const char *hash,
                             struct echo_err *err)
{
    if (!db_username_valid(username)) {
        echo_err_set(err, "a username is %d to %d letters, digits, '_', '.' or '-'",
                     DB_USERNAME_MIN, DB_USERNAME_MAX);
        return DB_INVALID;
    }
    if (!db_email_valid(email)) {
        echo_err_set(err, "that is not a valid email address");
        return DB_INVALID;
    }
    if (hash && (strlen(hash) == 0 || strlen(hash) > 512)) {
        echo_err_set(err, "a password hash is 1 to 512 characters");
        return DB_INVALID;
    }
    return DB_OK;
}

/* ---- rows -------------------------------------------------------------- */

#define USER_COLS "id, username, email, password_hash, is_active, created_at, last_login_at"

static const char sql_insert[] =
    "INSERT INTO users (username, email, password_hash, is_active, created_at)"
    " VALUES (?1, ?2, ?3, ?4, ?5)";
static const char sql_by_id[] = "SELECT " USER_COLS " FROM users WHERE id = ?1";
static const char sql_by_username[] = "SELECT " USER_COLS " FROM users WHERE username = ?1";
static const char sql_by_email[] = "SELECT " USER_COLS " FROM users WHERE email = ?1";
static const char sql_update_profile[] = "UPDATE users SET username = ?2, email = ?3 WHERE id = ?1";
static const char sql_set_hash[] = "UPDATE users SET password_hash = ?2 WHERE id = ?1";
static const char sql_set_active[] = "UPDATE users SET is_active = ?2 WHERE id = ?1";
static const char sql_record_login[] = "UPDATE users SET last_login_at = ?2 WHERE id = ?1";
static const char sql_delete[] = "DELETE FROM users WHERE id = ?1";
static const char sql_count[] = "SELECT count(*) FROM users";
static const char sql_count_active[] = "SELECT count(*) FROM users WHERE last_login_at >= ?1";
static const char sql_per_day[] =
    "SELECT created_at / 86400 AS day, count(*) FROM users"
    " WHERE created_at >= ?1 AND created_at < ?2 GROUP BY day ORDER BY day";

void db_user_deinit(struct db_user *u)
{
    if (!u) return;
    free(u->username);
    free(u->email);
    free(u->password_hash);
    memset(u, 0, sizeof(*u));
}

static void read_user(sqlite3_stmt *st, struct db_user *u)
{
    u->id = db_col_int(st, 0);
    u->username = db_col_strdup(st, 1);
    u->email = db_col_strdup(st, 2);
    u->password_hash = db_col_strdup(st, 3);
    u->is_active = db_col_int(st, 4) != 0;
    u->created_at = db_col_int(st, 5);
    u->last_login_at = db_col_int(st, 6);
}

/* Steps a bound one-row SELECT of USER_COLS. */
static int fetch_user(db *d, sqlite3_stmt *st, struct db_user *out, const char *what,
                      struct echo_err *err)
{
    memset(out, 0, sizeof(*out));
    int rc = sqlite3_step(st);
    int status = DB_OK;
    if (rc == SQLITE_ROW) {
        read_user(st, out);
    } else if (rc == SQLITE_DONE) {
        echo_err_set(err, "%s: no such user", what);
        status = DB_NOT_FOUND;
    } else {
        status = db_fail(d, rc, what, err);
    }
    db_stmt_done(st);
    return status;
}

int db_user_create(db *d, const char *username, const char *email, const char *password_hash,
                   bool is_active, int64_t now, int64_t *id, struct echo_err *err)
{
    int s = check_user_fields(username, email, password_hash, err);
    if (s != DB_OK) return s;
    sqlite3_stmt *st = db_stmt(d, sql_insert, err);
    if (!st) return DB_ERROR;
    db_bind_text(st, 1, username);
    db_bind_text(st, 2, email);
    db_bind_text(st, 3, password_hash);
    sqlite3_bind_int(st, 4, is_active ? 1 : 0);
    sqlite3_bind_int64(st, 5, now ? now : db_now());
    s = db_step_write(d, st, false, "creating the user", err);
    if (s == DB_OK && id) *id = sqlite3_last_insert_rowid(d->sq);
    return s;
}

int db_user_get(db *d, int64_t id, struct db_user *out, struct echo_err *err)
{
    sqlite3_stmt *st = db_stmt(d, sql_by_id, err);
    if (!st) return DB_ERROR;
    sqlite3_bind_int64(st, 1, id);
    return fetch_user(d, st, out, "reading a user", err);
}

int db_user_find_by_username(db *d, const char *username, struct db_user *out, struct echo_err *err)
{
    sqlite3_stmt *st = db_stmt(d, sql_by_username, err);
    if (!st) return DB_ERROR;
    db_bind_text(st, 1, username ? username : "");
    return fetch_user(d, st, out, "finding a user", err);
}

int db_user_find_by_email(db *d, const char *email, struct db_user *out, struct echo_err *err)
{
    sqlite3_stmt *st = db_stmt(d, sql_by_email, err);
    if (!st) return DB_ERROR;
    db_bind_text(st, 1, email ? email : "");
    return fetch_user(d, st, out, "finding a user", err);
}

int db_user_find_by_login(db *d, const char *login, struct db_user *out, struct echo_err *err)
{
    if (login && strchr(login, '@')) return db_user_find_by_email(d, login, out, err);
    return db_user_find_by_username(d, login, out, err);
}

int db_user_update_profile(db *d, int64_t id, const char *username, const char *email,
                           struct echo_err *err)
{
    int s = check_user_fields(username, email, NULL, err);
    if (s != DB_OK) return s;
    sqlite3_stmt *st = db_stmt(d, sql_update_profile, err);
    if (!st) return DB_ERROR;
    sqlite3_bind_int64(st, 1, id);
    db_bind_text(st, 2, username);
    db_bind_text(st, 3, email);
    return db_step_write(d, st, true, "updating the profile", err);
}

int db_user_set_password_hash(db *d, int64_t id, const char *password_hash, struct echo_err *err)
{
    if (password_hash && (strlen(password_hash) == 0 || strlen(password_hash) > 512)) {
        echo_err_set(err, "a password hash is 1 to 512 characters");
        return DB_INVALID;
    }
    sqlite3_stmt *st = db_stmt(d, sql_set_hash, err);
    if (!st) return DB_ERROR;
    sqlite3_bind_int64(st, 1, id);
    db_bind_text(st, 2, password_hash);
    return db_step_write(d, st, true, "setting the password", err);
}

int db_user_set_active(db *d, int64_t id, bool active, struct echo_err *err)
{
    sqlite3_stmt *st = db_stmt(d, sql_set_active, err);
    if (!st) return DB_ERROR;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int(st, 2, active ? 1 : 0);
    return db_step_write(d, st, true, "changing the user's state", err);
}

int db_user_record_login(db *d, int64_t id, int64_t now, struct echo_err *err)
{
    sqlite3_stmt *st = db_stmt(d, sql_record_login, err);
    if (!st) return DB_ERROR;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, now ? now : db_now());
    return db_step_write(d, st, true, "recording the login", err);
}

int db_user_delete(db *d, int64_t id, struct echo_err *err)
{
    sqlite3_stmt *st = db_stmt(d, sql_delete, err);
    if (!st) return DB_ERROR;
    sqlite3_bind_int64(st, 1, id);
    return db_step_write(d, st, true, "deleting the user", err);
}

int db_user_count(db *d, int64_t *n, struct echo_err *err)
{
    sqlite3_stmt *st = db_stmt(d, sql_count, err);
    if (!st) return DB_ERROR;
    return db_step_count(d, st, n, "counting users", err);
}

int db_user_count_active_since(db *d, int64_t since, int64_t *n, struct echo_err *err)
{
    sqlite3_stmt *st = db_stmt(d, sql_count_active, err);
    if (!st) return DB_ERROR;
    sqlite3_bind_int64(st, 1, since);
    return db_step_count(d, st, n, "counting active users", err);
}

int db_user_signups_per_day(db *d, int64_t from, int64_t to, struct db_day_count **out, size_t *n,
                            struct echo_err *err)
{
    *out = NULL;
    *n = 0;
    sqlite3_stmt *st = db_stmt(d, sql_per_day, err);
    if (!st) return DB_ERROR;
    sqlite3_bind_int64(st, 1, from);
    sqlite3_bind_int64(st, 2, to);
    return db_step_day_counts(d, st, out, n, "counting signups per day", err);
}

json_t *db_user_to_json(const struct db_user *u)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer(u->id));
    json_object_set_new(o, "username", db_json_text(u->username));
    json_object_set_new(o, "email", db_json_text(u->email));
    json_object_set_new(o, "is_active", json_boolean(u->is_active));
    json_object_set_new(o, "has_password", json_boolean(u->password_hash != NULL));
    db_json_set_time(o, "created_at", u->created_at);
    db_json_set_time(o, "last_login_at", u->last_login_at);
    return o;
}

/* ---- the admin list ---------------------------------------------------- */

/*
 * One literal per sort order (an ORDER BY column cannot be a bound
 * parameter, and building SQL from strings is what this layer never does).
 * ?1 is a LIKE pattern or NULL, ?2 the page size, ?3 the offset. Roles come
 * as a JSON array built by SQLite, the message count through the
 * messages_user_id index.
 */
#define USER_LIST(order)                                                                           \
    "SELECT u.id, u.username, u.email, u.password_hash, u.is_active, u.created_at,"                \
    " u.last_login_at,"                                                                            \
    " (SELECT json_group_array(name) FROM"                                                         \
    "   (SELECT name FROM roles r WHERE r.user_id = u.id ORDER BY name)),"                         \
    " (SELECT count(*) FROM messages m WHERE m.user_id = u.id)"                                    \
    " FROM users u"                                                                                \
    " WHERE ?1 IS NULL OR u.username LIKE ?1 ESCAPE '\\' OR u.email LIKE ?1 ESCAPE '\\'"           \
    " ORDER BY " order " LIMIT ?2 OFFSET ?3"

static const char *const sql_list[][2] = {
    [DB_USER_SORT_ID] = {USER_LIST("u.id ASC"), USER_LIST("u.id DESC")},
    [DB_USER_SORT_USERNAME] = {USER_LIST("u.username ASC, u.id ASC"),
                               USER_LIST("u.username DESC, u.id DESC")},
    [DB_USER_SORT_EMAIL] = {USER_LIST("u.email ASC, u.id ASC"),
                            USER_LIST("u.email DESC, u.id DESC")},
    [DB_USER_SORT_CREATED_AT] = {USER_LIST("u.created_at ASC, u.id ASC"),
                                 USER_LIST("u.created_at DESC, u.id DESC")},
    [DB_USER_SORT_LAST_LOGIN_AT] = {USER_LIST("u.last_login_at ASC, u.id ASC"),
                                    USER_LIST("u.last_login_at DESC, u.id DESC")},
};
static const char sql_list_count[] =
    "SELECT count(*) FROM users u"
    " WHERE ?1 IS NULL OR u.username LIKE ?1 ESCAPE '\\' OR u.email LIKE ?1 ESCAPE '\\'";

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

int db_user_list_json(db *d, const struct db_user_query *q, json_t **rows, int64_t *total,
                      struct echo_err *err)
{
    *rows = NULL;
    struct db_filter page = {.limit = q->limit, .offset = q->offset};
    int64_t limit, offset;
    int s = db_filter_page(&page, &limit, &offset, err);
    if (s != DB_OK) return s;
    if ((int)q->sort < 0 || (size_t)q->sort >= sizeof(sql_list) / sizeof(sql_list[0])) {
        echo_err_set(err, "unknown sort column");
        return DB_INVALID;
    }
    char *pattern = like_pattern(q->search);
    sqlite3_stmt *st = db_stmt(d, sql_list[q->sort][q->descending ? 1 : 0], err);
    if (!st) {
        free(pattern);
        return DB_ERROR;
    }
    db_bind_text(st, 1, pattern);
    sqlite3_bind_int64(st, 2, limit);
    sqlite3_bind_int64(st, 3, offset);
    json_t *arr = json_array();
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct db_user u;
        read_user(st, &u);
        json_t *o = db_user_to_json(&u);
        db_user_deinit(&u);
        const char *roles = (const char *)sqlite3_column_text(st, 7);
        json_t *r = roles ? json_loads(roles, 0, NULL) : NULL;
        json_object_set_new(o, "roles", r && json_is_array(r) ? r : json_array());
        if (r && !json_is_array(r)) json_decref(r);
        json_object_set_new(o, "message_count", json_integer(sqlite3_column_int64(st, 8)));
        json_array_append_new(arr, o);
    }
    if (rc != SQLITE_DONE) {
        s = db_fail(d, rc, "listing users", err);
        db_stmt_done(st);
        json_decref(arr);
        free(pattern);
        return s;
    }
    db_stmt_done(st);
    if (total) {
        st = db_stmt(d, sql_list_count, err);
        if (!st) {
            json_decref(arr);
            free(pattern);
            return DB_ERROR;
        }
        db_bind_text(st, 1, pattern);
        s = db_step_count(d, st, total, "counting users", err);
        if (s != DB_OK) {
            json_decref(arr);
            free(pattern);
            return s;
        }
    }
    free(pattern);
    *rows = arr;
    return DB_OK;
}
