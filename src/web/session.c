/*
 * session.c - server-side sessions over src/db/sessions.c: the rules of
 * issue 3. A login gets a fresh random token (no fixation); the cookie
 * carries the token, the row is keyed by its SHA-256; a session lives 24 h,
 * or 30 days with "remember me", counted from the login (use does not extend
 * it); last_seen_at is written at most once a minute so page views stay
 * read-only; logout and password changes delete rows.
 */
#include <stdlib.h>
#include <string.h>

#include "web/security.h"

void sec_session_deinit(struct sec_session *s)
{
    if (!s) return;
    json_decref(s->data);
    memset(s, 0, sizeof(*s));
}

/* Parses stored data; anything but a JSON object becomes {} (a damaged row
 * must not break every page of its session). */
static json_t *parse_data(const char *text)
{
    json_t *j = text ? json_loads(text, JSON_REJECT_DUPLICATES, NULL) : NULL;
    if (!j || !json_is_object(j)) {
        json_decref(j);
        return json_object();
    }
    return j;
}

int sec_session_create(db *d, int64_t user_id, bool remember, int64_t now,
                       char token[SEC_TOKEN_LEN + 1], struct sec_session *out, struct echo_err *err)
{
    memset(out, 0, sizeof(*out));
    /* Purging here bounds the table without a timer thread; the index on
     * expires_at keeps it cheap. A failure only postpones the purge. */
    struct echo_err perr = {0};
    if (db_session_delete_expired(d, now, NULL, &perr) != DB_OK)
        log_warn("sessions: purging expired sessions failed: %s", perr.msg);

    int64_t ttl = user_id <= 0 ? SEC_SESSION_ANON_TTL
                  : remember   ? SEC_SESSION_REMEMBER_TTL
                               : SEC_SESSION_TTL;
    struct db_session row = {
        .user_id = user_id > 0 ? user_id : 0,
        .created_at = now,
        .expires_at = now + ttl,
        .last_seen_at = now,
        .remember = remember && user_id > 0,
        .data = "{}",
    };
    int s = DB_CONFLICT;
    /* A collision of 256-bit random values does not happen; the loop only
     * makes the code correct even if the random source were broken. */
    for (int attempt = 0; attempt < 3 && s == DB_CONFLICT; attempt++) {
        sec_token_new(token, row.id_hash);
        s = db_session_insert(d, &row, err);
    }
    if (s != DB_OK) {
        token[0] = 0;
        return s;
    }
    memcpy(out->id_hash, row.id_hash, SEC_HASH_LEN);
    out->user_id = row.user_id;
    out->created_at = row.created_at;
    out->expires_at = row.expires_at;
    out->last_seen_at = row.last_seen_at;
    out->remember = row.remember;
    out->data = json_object();
    return DB_OK;
}

int sec_session_load(db *d, const char *token, int64_t now, struct sec_session *out,
                     struct echo_err *err)
{
    memset(out, 0, sizeof(*out));
    unsigned char hash[SEC_HASH_LEN];
    if (sec_token_hash(token, hash) != SEC_OK) {
        echo_err_set(err, "malformed session token");
        return DB_NOT_FOUND;
    }
    struct db_session row;
    int s = db_session_get(d, hash, &row, err);
    if (s != DB_OK) return s;
    if (row.expires_at <= now) {
        db_session_delete(d, hash, NULL);
        db_session_deinit(&row);
        echo_err_set(err, "the session has expired");
        return DB_NOT_FOUND;
    }
    if (now - row.last_seen_at >= SEC_SESSION_TOUCH_INTERVAL) {
        struct echo_err terr = {0};
        /* Bookkeeping only: a busy database must not fail the page. */
        if (db_session_touch(d, hash, now, &terr) == DB_OK)
            row.last_seen_at = now;
        else
            log_warn("sessions: updating last_seen_at failed: %s", terr.msg);
    }
    memcpy(out->id_hash, hash, SEC_HASH_LEN);
    out->user_id = row.user_id;
    out->created_at = row.created_at;
    out->expires_at = row.expires_at;
    out->last_seen_at = row.last_seen_at;
    out->remember = row.remember;
    out->data = parse_data(row.data);
    db_session_deinit(&row);
    return DB_OK;
}

int sec_session_revoke(db *d, const struct sec_session *s, struct echo_err *err)
{
    return db_session_delete(d, s->id_hash, err);
}

int sec_session_revoke_user(db *d, int64_t user_id, const unsigned char *keep, int64_t *revoked,
                            struct echo_err *err)
{
    return db_session_delete_user(d, user_id, keep, revoked, err);
}

int64_t sec_session_cookie_max_age(const struct sec_session *s, int64_t now)
{
    if (!s->remember) return 0;
    int64_t left = s->expires_at - now;
    return left > 0 ? left : 0;
}

int sec_session_update(db *d, struct sec_session *s, bool (*fn)(json_t *data, void *arg), void *arg,
                       struct echo_err *err)
{
    int st = db_tx_begin(d, err);
    if (st != DB_OK) return st;
    struct db_session row;
    st = db_session_get(d, s->id_hash, &row, err);
    if (st != DB_OK) {
        db_tx_rollback(d);
        return st;
    }
    json_t *data = parse_data(row.data);
    db_session_deinit(&row);
    if (fn(data, arg)) {
        char *text = json_dumps(data, JSON_COMPACT);
        st = text ? db_session_set_data(d, s->id_hash, text, err) : DB_ERROR;
        free(text);
        if (st != DB_OK) {
            db_tx_rollback(d);
            json_decref(data);
            return st;
        }
    }
    st = db_tx_commit(d, err);
    if (st != DB_OK) {
        json_decref(data);
        return st;
    }
    json_decref(s->data);
    s->data = data;
    return DB_OK;
}
