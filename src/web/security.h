/*
 * security.h - the account security primitives of the web layer (issue 3):
 * password hashing, session and CSRF tokens, anti-bot form fields, server-
 * side sessions and flash messages. auth.c (pages) and the other web areas
 * build on these; nothing here knows about HTTP.
 *
 * All cryptography is libsodium's: Argon2id (crypto_pwhash_str), SHA-256,
 * HMAC-SHA256, randombytes, constant-time comparison. Tokens are base64url
 * without padding, so they fit cookies and form fields unescaped.
 *
 * Thread-safety: every function is safe to call from any thread; the
 * functions taking a `db *` use that connection, which belongs to the
 * calling thread (db.h), and a struct sec_session belongs to one request.
 * A struct sec_key is read-only after sec_key_init.
 */
#ifndef ECHO_WEB_SECURITY_H
#define ECHO_WEB_SECURITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "core/core.h"
#include "db/db.h"

enum sec_status {
    SEC_OK = 0,
    SEC_ERR_MALFORMED = -1, /* not a token/field of the expected shape */
    SEC_ERR_FORGED = -2,    /* the signature does not match (tampered, other session, other key) */
    SEC_ERR_EXPIRED = -3,   /* genuine but too old (or from the future beyond the clock skew) */
    SEC_ERR_TOO_FAST = -4,  /* anti-bot: sent sooner than a person could */
    SEC_ERR_HONEYPOT = -5,  /* anti-bot: the hidden field was filled */
    SEC_ERR_MISMATCH = -6,  /* wrong password */
    SEC_ERR_INTERNAL = -7,  /* libsodium failed (e.g. no memory for Argon2) */
};
/* "ok", "malformed", "forged", "expired", "too fast", "honeypot", "mismatch", "internal". */
const char *sec_status_name(int status);

/* Initialises libsodium (idempotent). Every function below calls it too. */
int sec_init(struct echo_err *err);

/* ---- passwords (password.c) -------------------------------------------- */

#define SEC_PASSWORD_MIN 8   /* characters (code points) */
#define SEC_PASSWORD_MAX 128 /* characters */
#define SEC_PASSWORD_HASH_MAX                                                                      \
    128 /* buffer size for a hash, NUL included (crypto_pwhash_STRBYTES) */

/* The password rule of every form and of `echobot user`: valid UTF-8,
 * SEC_PASSWORD_MIN to SEC_PASSWORD_MAX characters. SEC_ERR_MALFORMED with a
 * message for the person otherwise. */
int sec_password_check(const char *password, struct echo_err *err);
/* Argon2id with libsodium's interactive limits (64 MiB, 2 passes), as a
 * self-describing "$argon2id$v=19$m=...,t=...,p=1$salt$hash" string in out. */
int sec_password_hash(const char *password, char out[SEC_PASSWORD_HASH_MAX], struct echo_err *err);
/* SEC_OK when password matches hash, else SEC_ERR_MISMATCH. A NULL or
 * malformed hash never matches, and still costs the time of a real check,
 * so timing does not tell "no password" from "wrong password". */
int sec_password_verify(const char *hash, const char *password);
/* True when hash was made with other limits or algorithm than
 * sec_password_hash uses now (then re-hash after a successful login). */
bool sec_password_needs_rehash(const char *hash);
/* Spends the time of one verification without a user: used on a login for
 * an unknown name, so the answer time does not reveal which names exist. */
void sec_password_dummy_verify(const char *password);

/* ---- keys and tokens (tokens.c) ---------------------------------------- */

/* The application key derived from SECRET_KEY (at least 16 bytes). */
struct sec_key {
    unsigned char k[32];
};
int sec_key_init(struct sec_key *key, const char *secret, struct echo_err *err);

#define SEC_TOKEN_BYTES 32
#define SEC_TOKEN_LEN 43 /* base64url of 32 bytes, no padding */
#define SEC_HASH_LEN 32  /* SHA-256 */

/* A new random token for a cookie (session id, pre-session CSRF cookie)
 * and the SHA-256 of its 32 bytes, which is what the server stores. */
void sec_token_new(char token[SEC_TOKEN_LEN + 1], unsigned char hash[SEC_HASH_LEN]);
/* The SHA-256 of a token read from a cookie. SEC_ERR_MALFORMED unless it is
 * exactly SEC_TOKEN_LEN base64url characters encoding 32 bytes. */
int sec_token_hash(const char *token, unsigned char hash[SEC_HASH_LEN]);

/*
 * CSRF tokens: base64url(timestamp || HMAC-SHA256(key, "echo-csrf-v1" ||
 * binding || timestamp)). The binding is the session's id hash, or for a
 * visitor without a session the hash of the pre-session CSRF cookie, so a
 * token is worth nothing with another session or another cookie.
 */
#define SEC_CSRF_LEN 54        /* characters */
#define SEC_CSRF_MAX_AGE 86400 /* seconds a token stays valid */
#define SEC_CLOCK_SKEW 300     /* seconds a timestamp may lie in the future */
void sec_csrf_token(const struct sec_key *key, const unsigned char binding[SEC_HASH_LEN],
                    int64_t now, char out[SEC_CSRF_LEN + 1]);
/* SEC_OK, SEC_ERR_MALFORMED (absent or misshapen), SEC_ERR_FORGED (another
 * binding or key, or tampered) or SEC_ERR_EXPIRED (older than max_age). */
int sec_csrf_verify(const struct sec_key *key, const unsigned char binding[SEC_HASH_LEN],
                    const char *token, int64_t now, int64_t max_age);

/*
 * The signed-timestamp format under both: base64url(ts as 8 bytes big-endian
 * || HMAC-SHA256(key, label || NUL || ctx || ts)), SEC_CSRF_LEN characters.
 * sec_signed_open gives SEC_OK and *ts, SEC_ERR_MALFORMED or SEC_ERR_FORGED;
 * age rules are the caller's.
 */
void sec_signed_make(const struct sec_key *key, const char *label, const void *ctx, size_t ctx_len,
                     int64_t ts, char out[SEC_CSRF_LEN + 1]);
int sec_signed_open(const struct sec_key *key, const char *label, const void *ctx, size_t ctx_len,
                    const char *text, int64_t *ts);

/* ---- anti-bot fields (antibot.c) --------------------------------------- */

/*
 * A form protected against bots carries a honeypot field that people never
 * fill (hidden by CSS, aria-hidden, tabindex -1) and a signed render time:
 * base64url(ms timestamp || HMAC-SHA256(key, "echo-antibot-v1" || form ||
 * timestamp)). The form name ("signup", "login", "feedback") keeps a stamp
 * of one form from being used on another.
 */
#define SEC_ANTIBOT_LEN 54
#define SEC_ANTIBOT_MIN_MS 2000    /* faster than this is a bot */
#define SEC_ANTIBOT_MAX_MS 3600000 /* older than this is stale */
#define SEC_ANTIBOT_HONEYPOT "website"
#define SEC_ANTIBOT_FIELD "form_ts"
void sec_antibot_stamp(const struct sec_key *key, const char *form, int64_t now_ms,
                       char out[SEC_ANTIBOT_LEN + 1]);
/* Checks a submitted form: SEC_OK, SEC_ERR_HONEYPOT (honeypot not empty),
 * SEC_ERR_MALFORMED (no or misshapen stamp), SEC_ERR_FORGED, SEC_ERR_TOO_FAST
 * (younger than min_ms), SEC_ERR_EXPIRED (older than max_ms). The caller
 * answers every refusal with the same generic message and logs the reason. */
int sec_antibot_check(const struct sec_key *key, const char *form, const char *stamp,
                      const char *honeypot, int64_t now_ms, int64_t min_ms, int64_t max_ms);

/* ---- server-side sessions (session.c) ---------------------------------- */

#define SEC_SESSION_TTL 86400            /* 24 h */
#define SEC_SESSION_REMEMBER_TTL 2592000 /* 30 days with "remember me" */
#define SEC_SESSION_ANON_TTL 3600        /* an anonymous session carrying flashes */
#define SEC_SESSION_TOUCH_INTERVAL 60    /* last_seen_at is written at most this often */

struct sec_session {
    unsigned char id_hash[SEC_HASH_LEN];
    int64_t user_id; /* 0: anonymous */
    int64_t created_at;
    int64_t expires_at; /* absolute: a session is not extended by use */
    int64_t last_seen_at;
    bool remember;
    json_t *data; /* a JSON object, owned; never NULL in a loaded session */
};
void sec_session_deinit(struct sec_session *s);

/*
 * Starts a new session with a fresh random token (a login always gets a new
 * id: no fixation). user_id 0 makes an anonymous session (SEC_SESSION_ANON_TTL)
 * that only carries data such as flashes. Expired sessions of everyone are
 * purged on the way. token receives the cookie value. DB status codes.
 */
int sec_session_create(db *d, int64_t user_id, bool remember, int64_t now,
                       char token[SEC_TOKEN_LEN + 1], struct sec_session *out,
                       struct echo_err *err);
/* Loads the session of a cookie token. DB_NOT_FOUND when the token is
 * malformed, unknown or expired (an expired row is deleted). Writes
 * last_seen_at when it is older than SEC_SESSION_TOUCH_INTERVAL. Data that
 * is not a JSON object is treated as empty. */
int sec_session_load(db *d, const char *token, int64_t now, struct sec_session *out,
                     struct echo_err *err);
/* Deletes the session (logout). DB_NOT_FOUND when already gone. */
int sec_session_revoke(db *d, const struct sec_session *s, struct echo_err *err);
/* Deletes every session of a user except `keep` (NULL: all), e.g. after a
 * password change. */
int sec_session_revoke_user(db *d, int64_t user_id, const unsigned char *keep, int64_t *revoked,
                            struct echo_err *err);
/* Seconds the cookie should live: the rest of a remembered session, or 0
 * for a browser-session cookie (gone when the browser closes). */
int64_t sec_session_cookie_max_age(const struct sec_session *s, int64_t now);
/*
 * Read-modify-write of the session's data inside one write transaction, so
 * concurrent requests of the same session do not lose each other's changes:
 * the row is re-read, fn edits the object (returning true when it changed
 * something), and the result is stored and copied into s->data.
 */
int sec_session_update(db *d, struct sec_session *s, bool (*fn)(json_t *data, void *arg), void *arg,
                       struct echo_err *err);

/* ---- flash messages (flash.c) ------------------------------------------ */

#define SEC_FLASH_MAX 16        /* messages kept per session (older dropped) */
#define SEC_FLASH_TEXT_MAX 1000 /* bytes of text kept per message */

/* Queues a message shown once on the next page. category is [a-z]{1,16}
 * ("success", "info", "warning", "danger"); text is UTF-8 (cut at a
 * character boundary after SEC_FLASH_TEXT_MAX bytes). */
int sec_flash_add(db *d, struct sec_session *s, const char *category, const char *text,
                  struct echo_err *err);
/* Takes every queued message: a new JSON array of {category, text} (empty
 * when none, without touching the database), removed from the session in
 * the same transaction as they are read, so each is shown exactly once.
 * NULL only on a database error. */
json_t *sec_flash_pop(db *d, struct sec_session *s, struct echo_err *err);

#endif
