/*
 * db.h - the data layer: SQLite 3 in WAL mode with foreign keys on, schema
 * migrations compiled into the binary, and one group of plain functions per
 * entity (users, roles, pictures, feedback, messages, sessions).
 *
 * Every query is a string literal prepared once per connection and cached
 * (no SQL is ever built from strings); values are bound as parameters.
 *
 * Timestamps are int64 unix seconds (UTC) everywhere, in and out. A
 * timestamp of 0 means "unset" (e.g. a user who never logged in).
 *
 * Status codes: functions returning int give DB_OK (0) or a negative
 * enum db_status and fill the optional struct echo_err with a message for
 * people (it never contains bound values such as password hashes).
 *   DB_NOT_FOUND  no such row (or a referenced row, e.g. a role for a
 *                 deleted user)
 *   DB_CONFLICT   a unique value is taken; db_conflict_field() says which
 *                 ("username", "email", "name", "id_hash")
 *   DB_INVALID    an argument breaks a rule of the schema (length, charset,
 *                 UTF-8, CHECK constraint)
 *   DB_BUSY       another connection held the write lock for longer than
 *                 the busy timeout (DB_BUSY_TIMEOUT_MS); nothing was written
 *   DB_ERROR      anything else (I/O error, corrupt file, ...)
 *
 * Thread-safety: one `db` connection is used by one thread at a time (it is
 * opened with SQLITE_OPEN_NOMUTEX; its statement cache, transaction depth
 * and last conflict belong to it). Threads share a database through a
 * db_pool: acquire a connection for one request, release it afterwards.
 * Different connections run concurrently: WAL lets any number of readers run
 * beside one writer; writers queue up to the busy timeout. The pool itself
 * and the pure validators (db_username_valid, ...) are safe from any thread.
 */
#ifndef ECHO_DB_H
#define ECHO_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "core/core.h"

enum db_status {
    DB_OK = 0,
    DB_NOT_FOUND = -1,
    DB_CONFLICT = -2,
    DB_INVALID = -3,
    DB_BUSY = -4,
    DB_ERROR = -5,
};

/* "ok", "not found", "conflict", "invalid", "busy", "error". */
const char *db_status_name(int status);

/* How long a connection waits for another one's write lock. */
#define DB_BUSY_TIMEOUT_MS 5000

/* ---- connections ------------------------------------------------------- */

typedef struct db db;

/* Opens (creating when missing) the database file at path and configures
 * the connection: WAL journal, synchronous=FULL (a committed transaction
 * survives a crash of the process or the machine), foreign keys on, busy
 * timeout, defensive mode. The parent folder must exist. NULL on failure. */
db *db_open(const char *path, struct echo_err *err);
/* Closes the connection (rolling back an open transaction). NULL is ignored. */
void db_close(db *d);
/* Changes how long this connection waits for a lock (default
 * DB_BUSY_TIMEOUT_MS); 0 fails at once with DB_BUSY. */
void db_set_busy_timeout(db *d, int ms);
/* The file this connection was opened on. */
const char *db_path(const db *d);

/* The database path of a configuration: ECHO_DATABASE, or
 * INSTANCE_DIR/echo.db when unset. Caller frees. */
char *db_path_from_config(const config *c);

/* After DB_CONFLICT: the column whose unique value is taken; "" otherwise. */
const char *db_conflict_field(const db *d);

/* Transactions. db_tx_begin starts a write transaction at once (BEGIN
 * IMMEDIATE, so it waits for the write lock up front instead of failing
 * half-way); inside a transaction it opens a nested savepoint instead.
 * Every successful begin is paired with one commit or one rollback. A
 * commit that fails rolls the level back and returns the status. */
int db_tx_begin(db *d, struct echo_err *err);
int db_tx_commit(db *d, struct echo_err *err);
void db_tx_rollback(db *d);
/* True inside db_tx_begin .. commit/rollback. */
bool db_in_tx(const db *d);

/* PRAGMA integrity_check and foreign_key_check; DB_OK when both are clean,
 * DB_ERROR with the first problem otherwise. */
int db_integrity_check(db *d, struct echo_err *err);

/* ---- connection pool ---------------------------------------------------- */

/*
 * A fixed number of connections to one file, opened on first use. Safe from
 * any thread. db_pool_acquire waits (up to timeout_ms; < 0 waits forever)
 * for a free connection; NULL with err on timeout or when opening fails. A
 * connection is released in autocommit state (an open transaction is rolled
 * back and logged as a bug). db_pool_free requires every connection back.
 */
typedef struct db_pool db_pool;

db_pool *db_pool_new(const char *path, int size, struct echo_err *err);
void db_pool_free(db_pool *p);
db *db_pool_acquire(db_pool *p, int timeout_ms, struct echo_err *err);
void db_pool_release(db_pool *p, db *d);

/* ---- migrations --------------------------------------------------------- */

/*
 * A migration is one file migrations/NNN_name.sql, embedded in the binary by
 * tools/embed_migrations.py (src/db/migrations_gen.c). Each is applied in
 * version order inside its own transaction (with foreign keys deferred to a
 * PRAGMA foreign_key_check before COMMIT) and recorded in schema_migrations
 * (version, name, applied_at, checksum = SHA-256 hex of the file). A failing
 * file rolls back whole and the error names file:line and SQLite's message.
 * An applied migration whose checksum changed, or an applied version this
 * binary does not know, is an error for every function below.
 */
struct db_migration {
    int version;
    const char *name; /* "001_init.sql" */
    const char *sql;
    size_t len;
};
extern const struct db_migration db_migrations_embedded[];
extern const size_t db_migrations_embedded_count;

enum db_migration_state {
    DB_MIGRATION_PENDING,
    DB_MIGRATION_APPLIED,
    DB_MIGRATION_CHANGED, /* applied, but the file's checksum differs now */
    DB_MIGRATION_UNKNOWN, /* applied, but not part of this binary */
};

struct db_migration_info {
    int version;
    char name[128];
    enum db_migration_state state;
    int64_t applied_at; /* 0 when pending */
};

/* Applies the pending embedded migrations; *applied (optional) gets how many. */
int db_migrate(db *d, int *applied, struct echo_err *err);
/* The number of embedded migrations not yet applied (>= 0), or a negative
 * status (checksum drift, unknown version, unreadable table). `serve` uses
 * this to refuse to start on a database that is behind. */
int db_migrations_pending(db *d, struct echo_err *err);
/* Every known or applied migration in version order; caller frees *out. */
int db_migrations_status(db *d, struct db_migration_info **out, size_t *n, struct echo_err *err);

/* The same over an explicit list sorted by version (tests, tools). */
int db_migrate_with(db *d, const struct db_migration *list, size_t n, int *applied,
                    struct echo_err *err);
int db_migrations_pending_with(db *d, const struct db_migration *list, size_t n,
                               struct echo_err *err);
int db_migrations_status_with(db *d, const struct db_migration *list, size_t n,
                              struct db_migration_info **out, size_t *count, struct echo_err *err);

/*
 * Opens the database of a configuration (db_path_from_config) and makes sure
 * its schema is current: with ECHO_AUTO_MIGRATE on (the default in
 * development) pending migrations are applied and logged; otherwise a
 * database that is behind is an error that says to run `echobot db
 * upgrade`. For `serve` and every command that uses the database.
 */
db *db_open_config(const config *c, struct echo_err *err);

/* ---- lists (shared by the admin views) ---------------------------------- */

/* Rows of a list, newest first (created_at DESC, id DESC). */
struct db_filter {
    int64_t user_id; /* > 0: only this user's rows */
    int64_t from;    /* created_at >= from (0: no lower bound) */
    int64_t to;      /* created_at < to (0: no upper bound) */
    int64_t limit;   /* 1..DB_LIST_MAX; 0 means DB_LIST_DEFAULT */
    int64_t offset;  /* >= 0 */
};
#define DB_LIST_DEFAULT 25
#define DB_LIST_MAX 1000

/* One day of a per-day count: day = unix seconds / 86400 (UTC). */
struct db_day_count {
    int64_t day;
    int64_t count;
};

/* Formats unix seconds as "YYYY-MM-DDTHH:MM:SSZ" into buf (>= 21 bytes). */
const char *db_time_iso(int64_t t, char *buf, size_t size);

/* ---- users -------------------------------------------------------------- */

#define DB_USERNAME_MIN 3
#define DB_USERNAME_MAX 32
#define DB_EMAIL_MAX 254

/* 3-32 characters of [A-Za-z0-9_.-]. ASCII only, so uniqueness without
 * regard to case (COLLATE NOCASE) is exact. */
bool db_username_valid(const char *s);
/* An ASCII address local@domain: local 1-64 of letters, digits and
 * !#$%&'*+/=?^_`{|}~.- (no leading, trailing or double dot); domain of
 * dot-separated labels [A-Za-z0-9-] (1-63, no edge hyphen), at least two;
 * 254 characters at most. */
bool db_email_valid(const char *s);

struct db_user {
    int64_t id;
    char *username;
    char *email;
    char *password_hash; /* NULL: the account cannot log in with a password */
    bool is_active;
    int64_t created_at;
    int64_t last_login_at; /* 0: never */
};
/* Frees the strings of a user filled by a db_user_* function. */
void db_user_deinit(struct db_user *u);

/* Creates a user. DB_INVALID for a bad username/email; DB_CONFLICT with
 * field "username" or "email" when taken (in any letter case). */
int db_user_create(db *d, const char *username, const char *email, const char *password_hash,
                   bool is_active, int64_t now, int64_t *id, struct echo_err *err);
int db_user_get(db *d, int64_t id, struct db_user *out, struct echo_err *err);
/* Case-insensitive lookups. */
int db_user_find_by_username(db *d, const char *username, struct db_user *out,
                             struct echo_err *err);
int db_user_find_by_email(db *d, const char *email, struct db_user *out, struct echo_err *err);
/* A login name: an email when it contains '@', else a username. */
int db_user_find_by_login(db *d, const char *login, struct db_user *out, struct echo_err *err);
/* Changes username and email (validated; conflicts as for create). */
int db_user_update_profile(db *d, int64_t id, const char *username, const char *email,
                           struct echo_err *err);
/* hash may be NULL (disables password login). */
int db_user_set_password_hash(db *d, int64_t id, const char *password_hash, struct echo_err *err);
int db_user_set_active(db *d, int64_t id, bool active, struct echo_err *err);
int db_user_record_login(db *d, int64_t id, int64_t now, struct echo_err *err);
/* Deletes the user and, by cascade, their roles, pictures, feedback,
 * messages and sessions (picture files on disk are the caller's). */
int db_user_delete(db *d, int64_t id, struct echo_err *err);
int db_user_count(db *d, int64_t *n, struct echo_err *err);
/* Users whose last login is at or after `since`. */
int db_user_count_active_since(db *d, int64_t since, int64_t *n, struct echo_err *err);
/* Signups per day with created_at in [from, to), days without signups left
 * out; caller frees *out. */
int db_user_signups_per_day(db *d, int64_t from, int64_t to, struct db_day_count **out, size_t *n,
                            struct echo_err *err);

enum db_user_sort {
    DB_USER_SORT_ID,
    DB_USER_SORT_USERNAME,
    DB_USER_SORT_EMAIL,
    DB_USER_SORT_CREATED_AT,
    DB_USER_SORT_LAST_LOGIN_AT,
};
struct db_user_query {
    const char *search; /* NULL/"": all; else a substring of username or email */
    enum db_user_sort sort;
    bool descending;
    int64_t limit; /* as struct db_filter */
    int64_t offset;
};
/* A page of users as a JSON array of db_user_to_json objects, each with
 * "roles" (array of names) and "message_count" added; *total (optional)
 * gets the number of matching users. Caller owns *rows. */
int db_user_list_json(db *d, const struct db_user_query *q, json_t **rows, int64_t *total,
                      struct echo_err *err);

/* {id, username, email, is_active, has_password, created_at, created_at_iso,
 * last_login_at, last_login_at_iso} (the *_at of an unset time are null).
 * Never contains the password hash. New reference. */
json_t *db_user_to_json(const struct db_user *u);

/* ---- roles -------------------------------------------------------------- */

#define DB_ROLE_NAME_MAX 32
/* 2-32 characters of [a-z_] ("admin", "user", "moderator", ...). */
bool db_role_name_valid(const char *name);

struct db_role {
    int64_t id;
    int64_t user_id;
    char name[DB_ROLE_NAME_MAX + 1];
    int64_t created_at;
};

/* Grants a role. DB_CONFLICT (field "name") when the user holds it already,
 * DB_NOT_FOUND when the user does not exist. */
int db_role_add(db *d, int64_t user_id, const char *name, int64_t now, int64_t *id,
                struct echo_err *err);
/* Revokes a role by name; DB_NOT_FOUND when the user does not hold it. */
int db_role_remove(db *d, int64_t user_id, const char *name, struct echo_err *err);
int db_role_get(db *d, int64_t id, struct db_role *out, struct echo_err *err);
int db_role_update(db *d, int64_t id, int64_t user_id, const char *name, struct echo_err *err);
int db_role_delete(db *d, int64_t id, struct echo_err *err);
int db_user_has_role(db *d, int64_t user_id, const char *name, bool *has, struct echo_err *err);
/* The user's role names, sorted: a new JSON array of strings. */
int db_role_names_json(db *d, int64_t user_id, json_t **names, struct echo_err *err);
/* How many active users hold the role (the last-admin rule). */
int db_role_count_active_holders(db *d, const char *name, int64_t *n, struct echo_err *err);
/* Rows {id, user_id, username, name, created_at, created_at_iso}. */
int db_role_list_json(db *d, const struct db_filter *f, json_t **rows, int64_t *total,
                      struct echo_err *err);
json_t *db_role_to_json(const struct db_role *r);

/* ---- pictures ----------------------------------------------------------- */

struct db_picture {
    int64_t id;
    int64_t user_id;
    char *path; /* relative to the media folder */
    char *mime;
    int64_t width;
    int64_t height;
    int64_t bytes;
    int64_t created_at;
};
void db_picture_deinit(struct db_picture *p);

/* Stores p (its id is ignored; created_at 0 means now). DB_NOT_FOUND when
 * the user does not exist; DB_INVALID for empty path/mime or sizes <= 0. */
int db_picture_add(db *d, const struct db_picture *p, int64_t *id, struct echo_err *err);
int db_picture_get(db *d, int64_t id, struct db_picture *out, struct echo_err *err);
/* The user's profile picture: the newest one; DB_NOT_FOUND when none. */
int db_picture_latest(db *d, int64_t user_id, struct db_picture *out, struct echo_err *err);
int db_picture_delete(db *d, int64_t id, struct echo_err *err);
/* Rows of db_picture_to_json plus "username". */
int db_picture_list_json(db *d, const struct db_filter *f, json_t **rows, int64_t *total,
                         struct echo_err *err);
json_t *db_picture_to_json(const struct db_picture *p);

/* ---- feedback ----------------------------------------------------------- */

/* Largest content stored (bytes); the form's own limit is smaller. */
#define DB_FEEDBACK_MAX_BYTES 65536

struct db_feedback {
    int64_t id;
    int64_t user_id;
    char *content;
    int64_t created_at;
};
void db_feedback_deinit(struct db_feedback *f);

/* DB_INVALID for empty, oversized or non-UTF-8 content; DB_NOT_FOUND for a
 * missing user. */
int db_feedback_add(db *d, int64_t user_id, const char *content, int64_t now, int64_t *id,
                    struct echo_err *err);
int db_feedback_get(db *d, int64_t id, struct db_feedback *out, struct echo_err *err);
int db_feedback_delete(db *d, int64_t id, struct echo_err *err);
int db_feedback_count(db *d, int64_t *n, struct echo_err *err);
/* Rows of db_feedback_to_json plus "username". */
int db_feedback_list_json(db *d, const struct db_filter *f, json_t **rows, int64_t *total,
                          struct echo_err *err);
json_t *db_feedback_to_json(const struct db_feedback *f);

/* ---- messages ----------------------------------------------------------- */

#define DB_MESSAGE_MAX_BYTES (1 << 20)

struct db_message {
    int64_t id;
    int64_t user_id;
    char role[16]; /* "user" or "assistant" */
    char *content;
    int64_t created_at;
    /* Set on assistant answers; -1 / NULL / < 0 when unknown. */
    int64_t prompt_tokens;
    int64_t completion_tokens;
    char *finish_reason;
    double tokens_per_second;
};
/* Sets the "unknown" values (-1, NULL) and zeroes the rest. */
void db_message_init(struct db_message *m);
void db_message_deinit(struct db_message *m);
void db_message_array_free(struct db_message *a, size_t n);

/* Stores m (id ignored; created_at 0 means now). DB_INVALID for another
 * role, non-UTF-8 or oversized content; DB_NOT_FOUND for a missing user. */
int db_message_add(db *d, const struct db_message *m, int64_t *id, struct echo_err *err);
int db_message_get(db *d, int64_t id, struct db_message *out, struct echo_err *err);
int db_message_delete(db *d, int64_t id, struct echo_err *err);
/* The user's last `limit` messages, oldest first (the chat history). */
int db_message_history(db *d, int64_t user_id, int64_t limit, struct db_message **out, size_t *n,
                       struct echo_err *err);
/* Deletes all of the user's messages; *deleted (optional) gets how many. */
int db_message_clear_user(db *d, int64_t user_id, int64_t *deleted, struct echo_err *err);
int db_message_count_user(db *d, int64_t user_id, int64_t *n, struct echo_err *err);
int db_message_count(db *d, int64_t *n, struct echo_err *err);
/* Mean tokens_per_second of the answers that have one (0 when none). */
int db_message_avg_speed(db *d, double *tokens_per_second, struct echo_err *err);
int db_message_per_day(db *d, int64_t from, int64_t to, struct db_day_count **out, size_t *n,
                       struct echo_err *err);
/* The distribution of answer lengths: rows (day = bucket index k, count) for
 * completion_tokens in [k * width, (k + 1) * width), empty buckets left out,
 * over the answers that have a count. width >= 1. */
int db_message_length_histogram(db *d, int64_t width, struct db_day_count **out, size_t *n,
                                struct echo_err *err);
/* Rows of db_message_to_json plus "username". */
int db_message_list_json(db *d, const struct db_filter *f, json_t **rows, int64_t *total,
                         struct echo_err *err);
json_t *db_message_to_json(const struct db_message *m);

/* ---- sessions ----------------------------------------------------------- */

#define DB_SESSION_HASH_LEN 32
/* Largest session data (JSON text) stored. */
#define DB_SESSION_DATA_MAX 16384

struct db_session {
    unsigned char id_hash[DB_SESSION_HASH_LEN]; /* SHA-256 of the cookie token */
    int64_t user_id;                            /* 0: anonymous */
    int64_t created_at;
    int64_t expires_at;
    int64_t last_seen_at;
    bool remember;
    char *data; /* a JSON object; NULL on insert means "{}" */
};
void db_session_deinit(struct db_session *s);

/* DB_CONFLICT (field "id_hash") for a duplicate, DB_NOT_FOUND for a missing
 * user, DB_INVALID for data that is not a JSON object or is too large. */
int db_session_insert(db *d, const struct db_session *s, struct echo_err *err);
/* The row whatever its expiry (expiry is the caller's rule). */
int db_session_get(db *d, const unsigned char *id_hash, struct db_session *out,
                   struct echo_err *err);
int db_session_touch(db *d, const unsigned char *id_hash, int64_t now, struct echo_err *err);
int db_session_set_data(db *d, const unsigned char *id_hash, const char *data,
                        struct echo_err *err);
int db_session_delete(db *d, const unsigned char *id_hash, struct echo_err *err);
/* Deletes every session of the user except `keep` (NULL: all). */
int db_session_delete_user(db *d, int64_t user_id, const unsigned char *keep, int64_t *deleted,
                           struct echo_err *err);
int db_session_delete_expired(db *d, int64_t now, int64_t *deleted, struct echo_err *err);
int db_session_count_user(db *d, int64_t user_id, int64_t *n, struct echo_err *err);

#endif
