/*
 * oauth.c - Sign in with Google (issue 10): OpenID Connect's authorization-
 * code flow with PKCE (RFC 7636, S256) and a confidential client
 * (client_secret_post).
 *
 *   GET /login/google           a random state, nonce and PKCE verifier go
 *                               into the visitor's (anonymous) session;
 *                               redirect to the provider.
 *   GET /login/google/callback  the state is taken out of the session (one
 *                               use, 10 minutes), the code exchanged, the ID
 *                               token verified (oauth_jwt.c) against the
 *                               provider's keys (cached for their max-age,
 *                               refetched once for an unknown kid); then the
 *                               identity's user logs in, or an account with
 *                               the same verified email is offered to link,
 *                               or a new account is made (no password).
 *   GET/POST /login/google/link the owner of that existing account confirms
 *                               with its password (5 tries), then the
 *                               identity is linked and they are logged in.
 *   POST /profile/google/unlink removes the link (only with a password set,
 *                               so nobody locks themselves out).
 *
 * Every failure ends on /login with one of a few generic messages (flash)
 * and no logged-in session; what went wrong is logged, without tokens,
 * codes or secrets. Without GOOGLE_CLIENT_ID the sign-in routes answer 404
 * and the button is not shown.
 *
 * Each callback makes up to three blocking calls (token, JWKS when not
 * cached, userinfo when the ID token has no name) on the HTTP worker thread
 * that serves it, all within one GOOGLE_TIMEOUT budget; at most half of the
 * ECHO_THREADS workers (at least one) wait for the provider at once, the
 * callbacks beyond that fail at once, so a slow provider cannot take every
 * worker from the rest of the site.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>
#include <utf8proc.h>

#include "db/oauth.h"
#include "http/url.h"
#include "web/auth.h"
#include "web/form.h"
#include "web/oauth.h"
#include "web/profile.h"

#define PROVIDER "google"
#define STATE_KEY "oauth_pending" /* session data: {state: {n, v, t, next}} */
#define LINK_KEY "oauth_link"     /* session data: {s, e, u, t, next, tries} */
#define STATE_TTL 600             /* seconds a sign-in may take at the provider */
#define LINK_TTL 600              /* seconds to confirm a link with the password */
#define LINK_TRIES 5
#define PENDING_MAX 4 /* sign-ins started in parallel (tabs) per session */
#define JWKS_DEFAULT_TTL 300
#define JWKS_MAX_TTL 86400
#define RANDOM_BYTES 32

static const char msg_failed[] = "Signing in with Google did not work. Please try again, or log "
                                 "in with your username and password.";
static const char msg_denied[] = "Signing in with Google was cancelled.";
static const char msg_state[] = "That sign-in with Google has expired or was already used. "
                                "Please start again.";
static const char msg_unverified[] = "Your Google account's email address is not verified, so it "
                                     "cannot be used to sign in here.";
static const char msg_inactive[] = "This account has been deactivated.";

struct web_oauth {
    web_app *app;
    bool enabled;
    const char *client_id, *client_secret;
    const char *auth_url, *token_url, *userinfo_url, *jwks_url, *issuer;
    char *redirect_uri;
    long timeout_ms; /* for all the provider calls of one callback together */
    int max_calls;   /* callbacks talking to the provider at once */
    int calls;       /* under mu */
    /* The provider's keys: replaced whole under mu, never changed in place. */
    pthread_mutex_t mu;
    oauth_jwks *keys;
    int64_t keys_expire;
};

/* One per process (web_oauth_register); read-only while serving but for
 * the key cache under its mutex. */
static struct web_oauth *the_oauth;

static int64_t now_s(void)
{
    return (int64_t)time_now_s();
}

static void random_token(char out[SEC_TOKEN_LEN + 1])
{
    unsigned char hash[SEC_HASH_LEN];
    /* 32 random bytes as base64url: the same shape as a session token. */
    sec_token_new(out, hash);
}

/* ---- answers ---------------------------------------------------------------- */

/* A redirect to a checked local path; bytes a header should not carry
 * (space, non-ASCII, quotes) are percent-encoded as auth.c does. */
static void redirect(http_response *res, int status, const char *path)
{
    static const char hex[] = "0123456789ABCDEF";
    struct strbuf sb;
    strbuf_init(&sb);
    for (const unsigned char *p = (const unsigned char *)(web_safe_next(path) ? path : "/"); *p;
         p++) {
        if (*p <= 0x20 || *p >= 0x7f || strchr("\"<>`{}|^", *p)) {
            strbuf_putc(&sb, '%');
            strbuf_putc(&sb, hex[*p >> 4]);
            strbuf_putc(&sb, hex[*p & 15]);
        } else {
            strbuf_putc(&sb, (char)*p);
        }
    }
    http_response_redirect(res, status, strbuf_cstr(&sb));
    http_response_set_header(res, "Cache-Control", "no-store");
    strbuf_deinit(&sb);
}

/* What is left of a callback's time budget (at least 1 ms, so a call made
 * after the deadline fails at once instead of waiting). */
static long remaining_ms(uint64_t deadline_ns)
{
    uint64_t now = time_mono_ns();
    return now >= deadline_ns ? 1 : (long)((deadline_ns - now) / 1000000 + 1);
}

/* A slot for one callback's provider calls; false when max_calls are busy,
 * so a slow provider can hold at most that many HTTP workers. */
static bool call_begin(struct web_oauth *o)
{
    pthread_mutex_lock(&o->mu);
    bool ok = o->calls < o->max_calls;
    if (ok) o->calls++;
    pthread_mutex_unlock(&o->mu);
    return ok;
}

static void call_end(struct web_oauth *o)
{
    pthread_mutex_lock(&o->mu);
    o->calls--;
    pthread_mutex_unlock(&o->mu);
}

/* Every failure: the reason in the log, a generic message for the person,
 * back to the login page. */
static void fail(http_request *req, http_response *res, const char *message, const char *why)
{
    log_warn("google sign-in from %s failed: %s", http_request_client_ip(req), why);
    web_flash(req, res, "error", message);
    redirect(res, http_request_method(req) == HTTP_POST ? HTTP_STATUS_SEE_OTHER : HTTP_STATUS_FOUND,
             "/login");
}

static bool disabled(http_response *res, struct web_oauth *o)
{
    if (o->enabled) return false;
    http_response_error(res, HTTP_STATUS_NOT_FOUND, NULL);
    return true;
}

/* ---- session data -------------------------------------------------------------- */

struct pending_add {
    const char *state;
    json_t *entry;
};

/* Adds a pending sign-in; the oldest goes when PENDING_MAX are waiting, and
 * expired ones are dropped on the way. */
static bool pending_add_fn(json_t *data, void *arg)
{
    struct pending_add *a = arg;
    json_t *map = json_object_get(data, STATE_KEY);
    if (!json_is_object(map)) {
        map = json_object();
        json_object_set_new(data, STATE_KEY, map);
    }
    int64_t now = now_s();
    const char *key;
    json_t *v;
    void *tmp;
    json_object_foreach_safe(map, tmp, key, v)
    {
        if (now - json_integer_value(json_object_get(v, "t")) > STATE_TTL)
            json_object_del(map, key);
    }
    while (json_object_size(map) >= PENDING_MAX) {
        const char *oldest = NULL;
        json_int_t t = 0;
        json_object_foreach(map, key, v)
        {
            json_int_t vt = json_integer_value(json_object_get(v, "t"));
            if (!oldest || vt < t) {
                oldest = key;
                t = vt;
            }
        }
        json_object_del(map, oldest);
    }
    json_object_set(map, a->state, a->entry);
    return true;
}

struct take {
    const char *key;   /* STATE_KEY or LINK_KEY */
    const char *state; /* for STATE_KEY: which entry */
    json_t *out;       /* the entry taken (new reference) */
    bool keep;         /* LINK_KEY: leave it (a wrong password may try again) */
    bool count_try;    /* LINK_KEY: tries + 1, dropped after LINK_TRIES */
};

/* Takes an entry out of the session inside sec_session_update's write
 * transaction: two requests with the same state cannot both get it. */
static bool take_fn(json_t *data, void *arg)
{
    struct take *t = arg;
    json_t *v = json_object_get(data, t->key);
    if (t->state) {
        json_t *entry = json_is_object(v) ? json_object_get(v, t->state) : NULL;
        if (!entry) return false;
        t->out = json_incref(entry);
        json_object_del(v, t->state);
        return true;
    }
    if (!json_is_object(v)) return false;
    t->out = json_deep_copy(v);
    if (t->count_try) {
        json_int_t tries = json_integer_value(json_object_get(v, "tries")) + 1;
        json_object_set_new(t->out, "tries", json_integer(tries));
        if (tries >= LINK_TRIES) {
            json_object_del(data, t->key);
        } else {
            json_object_set_new(v, "tries", json_integer(tries));
        }
        return true;
    }
    if (!t->keep) json_object_del(data, t->key);
    return !t->keep;
}

struct put {
    const char *key;
    json_t *value;
};

static bool put_fn(json_t *data, void *arg)
{
    struct put *p = arg;
    json_object_set(data, p->key, p->value);
    return true;
}

/* Runs fn on the request's session data; false on a database error (logged)
 * or without a session. */
static bool session_edit(http_request *req, bool (*fn)(json_t *, void *), void *arg)
{
    struct sec_session *s = web_session(req);
    db *d = web_db(req);
    struct echo_err err = {0};
    if (!s || !d) return false;
    if (sec_session_update(d, s, fn, arg, &err) != DB_OK) {
        log_error("google sign-in: session data: %s", err.msg);
        return false;
    }
    return true;
}

/* The next page a sign-in returns to: a safe local path or NULL. */
static const char *requested_next(http_request *req)
{
    const char *next = http_request_form(req, "next");
    if (!next || !next[0]) next = http_request_query(req, "next");
    return next && next[0] && web_safe_next(next) ? next : NULL;
}

/* ---- GET /login/google ----------------------------------------------------------- */

static void start(http_request *req, http_response *res, void *arg)
{
    struct web_oauth *o = arg;
    if (disabled(res, o)) return;
    const char *next = requested_next(req);
    if (web_user(req)) {
        redirect(res, HTTP_STATUS_FOUND, next ? next : "/");
        return;
    }
    if (!web_session_ensure(req, res)) {
        http_response_error(res, HTTP_STATUS_SERVICE_UNAVAILABLE, NULL);
        return;
    }
    char state[SEC_TOKEN_LEN + 1], nonce[SEC_TOKEN_LEN + 1], verifier[SEC_TOKEN_LEN + 1];
    random_token(state);
    random_token(nonce);
    random_token(verifier);
    unsigned char challenge[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(challenge, (const unsigned char *)verifier, strlen(verifier));

    json_t *entry = json_pack("{s:s,s:s,s:I}", "n", nonce, "v", verifier, "t", (json_int_t)now_s());
    if (next) json_object_set_new(entry, "next", json_string(next));
    struct pending_add a = {state, entry};
    bool ok = session_edit(req, pending_add_fn, &a);
    json_decref(entry);
    sodium_memzero(verifier, sizeof(verifier));
    if (!ok) {
        http_response_error(res, HTTP_STATUS_SERVICE_UNAVAILABLE, NULL);
        return;
    }
    struct strbuf to;
    strbuf_init(&to);
    strbuf_puts(&to, o->auth_url);
    strbuf_putc(&to, strchr(o->auth_url, '?') ? '&' : '?');
    strbuf_puts(&to, "response_type=code&scope=openid%20email%20profile&client_id=");
    http_pct_encode(&to, o->client_id, NULL);
    strbuf_puts(&to, "&redirect_uri=");
    http_pct_encode(&to, o->redirect_uri, NULL);
    strbuf_puts(&to, "&state=");
    strbuf_puts(&to, state);
    strbuf_puts(&to, "&nonce=");
    strbuf_puts(&to, nonce);
    strbuf_puts(&to, "&code_challenge=");
    oauth_b64url_encode(&to, challenge, sizeof(challenge));
    strbuf_puts(&to, "&code_challenge_method=S256");
    http_response_redirect(res, HTTP_STATUS_FOUND, strbuf_cstr(&to));
    http_response_set_header(res, "Cache-Control", "no-store");
    strbuf_deinit(&to);
}

/* ---- the provider's keys ----------------------------------------------------------- */

/* Fetches the JWKS and makes it the cached set. */
static int keys_fetch(struct web_oauth *o, uint64_t deadline, struct echo_err *err)
{
    struct oauth_http_request rq = {
        .url = o->jwks_url, .timeout_ms = remaining_ms(deadline), .max_bytes = OAUTH_DOC_MAX};
    struct oauth_http_result r;
    int s = oauth_http_call(&rq, &r, err);
    if (s == OAUTH_OK && r.status != 200) {
        echo_err_set(err, "the key set answered HTTP %ld", r.status);
        s = OAUTH_ERR_HTTP;
    }
    oauth_jwks *keys = NULL;
    if (s == OAUTH_OK) s = oauth_jwks_parse(r.body.data ? r.body.data : "", r.body.len, &keys, err);
    if (s == OAUTH_OK) {
        int64_t ttl = r.max_age >= 0 ? r.max_age : JWKS_DEFAULT_TTL;
        if (ttl > JWKS_MAX_TTL) ttl = JWKS_MAX_TTL;
        pthread_mutex_lock(&o->mu);
        oauth_jwks_free(o->keys);
        o->keys = keys;
        o->keys_expire = now_s() + ttl;
        pthread_mutex_unlock(&o->mu);
        log_info("google sign-in: %zu signing key(s) fetched, cached for %lld s",
                 oauth_jwks_count(keys), (long long)ttl);
    }
    oauth_http_result_deinit(&r);
    return s;
}

/* Verifies with the cached keys (the RSA check is short and pure, so it
 * runs under the lock instead of sharing the set by reference count).
 * OAUTH_ERR_UNKNOWN_KEY also when nothing is cached or it expired. */
static int verify_cached(struct web_oauth *o, const struct oauth_jwt *t, struct echo_err *err)
{
    pthread_mutex_lock(&o->mu);
    int s;
    if (!o->keys || now_s() >= o->keys_expire) {
        echo_err_set(err, "no current key set");
        s = OAUTH_ERR_UNKNOWN_KEY;
    } else {
        s = oauth_jwt_verify(t, o->keys, err);
    }
    pthread_mutex_unlock(&o->mu);
    return s;
}

static int verify_token(struct web_oauth *o, const struct oauth_jwt *t, uint64_t deadline,
                        struct echo_err *err)
{
    int s = verify_cached(o, t, err);
    if (s != OAUTH_ERR_UNKNOWN_KEY) return s;
    /* Expired, never fetched, or the provider rotated its keys: once more. */
    s = keys_fetch(o, deadline, err);
    if (s != OAUTH_OK) return s;
    return verify_cached(o, t, err);
}

/* ---- GET /login/google/callback --------------------------------------------------- */

/* Exchanges the code; *id_token / *access_token are new. */
static int exchange(struct web_oauth *o, const char *code, const char *verifier, uint64_t deadline,
                    char **id_token, char **access_token, struct echo_err *err)
{
    struct strbuf form;
    strbuf_init(&form);
    strbuf_puts(&form, "grant_type=authorization_code&code=");
    http_pct_encode(&form, code, NULL);
    strbuf_puts(&form, "&redirect_uri=");
    http_pct_encode(&form, o->redirect_uri, NULL);
    strbuf_puts(&form, "&client_id=");
    http_pct_encode(&form, o->client_id, NULL);
    strbuf_puts(&form, "&client_secret=");
    http_pct_encode(&form, o->client_secret, NULL);
    strbuf_puts(&form, "&code_verifier=");
    http_pct_encode(&form, verifier, NULL);
    struct oauth_http_request rq = {.url = o->token_url,
                                    .form = strbuf_cstr(&form),
                                    .timeout_ms = remaining_ms(deadline),
                                    .max_bytes = OAUTH_DOC_MAX};
    struct oauth_http_result r;
    int s = oauth_http_call(&rq, &r, err);
    sodium_memzero(form.data, form.len);
    strbuf_deinit(&form);
    if (s == OAUTH_OK) {
        /* 200 carries tokens, 400/401 an OAuth error object (RFC 6749 5.2). */
        s = oauth_token_response_parse(r.body.data ? r.body.data : "", r.body.len, id_token,
                                       access_token, err);
        if (s == OAUTH_OK && r.status != 200) {
            echo_err_set(err, "the token endpoint answered HTTP %ld", r.status);
            free(*id_token);
            free(*access_token);
            *id_token = *access_token = NULL;
            s = OAUTH_ERR_HTTP;
        } else if (s == OAUTH_ERR_MALFORMED && r.status != 200) {
            echo_err_set(err, "the token endpoint answered HTTP %ld", r.status);
            s = OAUTH_ERR_HTTP;
        }
    }
    oauth_http_result_deinit(&r);
    return s;
}

/* The name from the userinfo endpoint, when the ID token had none; NULL
 * when it cannot be had (not an error: the email's local part will do). */
static char *userinfo_name(struct web_oauth *o, const char *access_token, const char *subject,
                           uint64_t deadline)
{
    if (!access_token || !o->userinfo_url || !o->userinfo_url[0]) return NULL;
    /* Optional: not worth a call that would be cut off at once. */
    if (remaining_ms(deadline) < 500) return NULL;
    struct oauth_http_request rq = {.url = o->userinfo_url,
                                    .bearer = access_token,
                                    .timeout_ms = remaining_ms(deadline),
                                    .max_bytes = OAUTH_DOC_MAX};
    struct oauth_http_result r;
    struct echo_err err = {0};
    char *name = NULL;
    if (oauth_http_call(&rq, &r, &err) == OAUTH_OK && r.status == 200) {
        json_t *j =
            json_loadb(r.body.data ? r.body.data : "", r.body.len, JSON_REJECT_DUPLICATES, NULL);
        const char *sub = json_string_value(json_object_get(j, "sub"));
        const char *n = json_string_value(json_object_get(j, "name"));
        /* OpenID Connect Core 5.3.2: use it only if it is about the same person. */
        if (sub && !strcmp(sub, subject) && n && n[0] && strlen(n) <= 256) name = xstrdup(n);
        json_decref(j);
    } else {
        log_info("google sign-in: userinfo unavailable (%s)", err.msg[0] ? err.msg : "HTTP status");
    }
    oauth_http_result_deinit(&r);
    return name;
}

/* Logs user u in after a successful sign-in. */
static void finish_login(http_request *req, http_response *res, int64_t user_id, const char *flash,
                         const char *next)
{
    struct echo_err err = {0};
    int s = web_login(req, res, user_id, false, &err);
    if (s != DB_OK) {
        log_error("google sign-in: logging in user %lld: %s", (long long)user_id, err.msg);
        http_response_error(
            res, s == DB_BUSY ? HTTP_STATUS_SERVICE_UNAVAILABLE : HTTP_STATUS_INTERNAL_ERROR, NULL);
        return;
    }
    web_flash(req, res, "success", flash);
    redirect(res, http_request_method(req) == HTTP_POST ? HTTP_STATUS_SEE_OTHER : HTTP_STATUS_FOUND,
             next ? next : "/");
}

/* A new account for an identity no user has: a username made unique, no
 * password, and the link, in one transaction. DB status; *id the user. */
#define USERNAME_BUF 48 /* a base of at most 24 characters, "_" and a number */

static int create_account(db *d, const struct oauth_identity *id, char username[USERNAME_BUF],
                          int64_t *user_id, struct echo_err *err)
{
    char base[DB_USERNAME_MAX + 1];
    oauth_username_from(id->name, id->email, base, sizeof(base));
    int s = db_tx_begin(d, err);
    if (s != DB_OK) return s;
    s = DB_CONFLICT;
    for (int attempt = 0; attempt < 12 && s == DB_CONFLICT; attempt++) {
        if (attempt == 0)
            snprintf(username, USERNAME_BUF, "%.24s", base);
        else
            snprintf(username, USERNAME_BUF, "%.24s_%u", base,
                     attempt < 6 ? 2 + randombytes_uniform(98)
                                 : 100 + randombytes_uniform(9900000));
        s = db_user_create(d, username, id->email, NULL, true, now_s(), user_id, err);
        if (s == DB_CONFLICT && strcmp(db_conflict_field(d), "username") != 0) break;
    }
    if (s == DB_OK)
        s = db_oauth_link(d, PROVIDER, id->subject, *user_id, id->email, now_s(), NULL, err);
    if (s != DB_OK) {
        db_tx_rollback(d);
        return s;
    }
    return db_tx_commit(d, err);
}

static void callback(http_request *req, http_response *res, void *arg)
{
    struct web_oauth *o = arg;
    if (disabled(res, o)) return;
    const char *state = http_request_query(req, "state");
    const char *code = http_request_query(req, "code");
    const char *error = http_request_query(req, "error");
    struct take t = {.key = STATE_KEY, .state = state};
    struct oauth_jwt jwt = {0};
    struct oauth_identity id = {0};
    struct db_user u = {0};
    struct db_oauth_identity link = {0};
    char *id_token = NULL, *access_token = NULL;
    struct echo_err err = {0};
    char why[700];

    if (web_user(req)) {
        redirect(res, HTTP_STATUS_FOUND, "/");
        return;
    }
    if (!state || strlen(state) != SEC_TOKEN_LEN || !web_session(req) ||
        !session_edit(req, take_fn, &t) || !t.out) {
        fail(req, res, msg_state, "unknown, used or missing state");
        goto out;
    }
    json_int_t started = json_integer_value(json_object_get(t.out, "t"));
    const char *nonce = json_string_value(json_object_get(t.out, "n"));
    const char *verifier = json_string_value(json_object_get(t.out, "v"));
    const char *next = json_string_value(json_object_get(t.out, "next"));
    if (next && !web_safe_next(next)) next = NULL;
    if (now_s() - started > STATE_TTL || !nonce || !verifier) {
        fail(req, res, msg_state, "the state is older than 10 minutes");
        goto out;
    }
    if (error) {
        snprintf(why, sizeof(why), "the provider returned error=%.64s", error);
        fail(req, res, msg_denied, why);
        goto out;
    }
    if (!code || !code[0] || strlen(code) > 2048) {
        fail(req, res, msg_failed, "no authorization code");
        goto out;
    }
    if (!call_begin(o)) {
        fail(req, res, msg_failed, "too many sign-ins are waiting for the provider");
        goto out;
    }
    /* One budget for every call of this callback: a worker is held for at
     * most GOOGLE_TIMEOUT however the provider misbehaves. */
    uint64_t deadline = time_mono_ns() + (uint64_t)o->timeout_ms * 1000000u;
    int s = exchange(o, code, verifier, deadline, &id_token, &access_token, &err);
    if (s == OAUTH_OK) s = oauth_jwt_parse(id_token, &jwt, &err);
    if (s == OAUTH_OK) s = verify_token(o, &jwt, deadline, &err);
    if (s == OAUTH_OK) {
        struct oauth_expect x = {.issuer = o->issuer,
                                 .client_id = o->client_id,
                                 .nonce = nonce,
                                 .now = now_s(),
                                 .skew = OAUTH_CLOCK_SKEW};
        s = oauth_claims_check(jwt.claims, &x, &id, &err);
    }
    if (s == OAUTH_OK && !id.name) id.name = userinfo_name(o, access_token, id.subject, deadline);
    call_end(o);
    if (s != OAUTH_OK) {
        snprintf(why, sizeof(why), "%s: %s", oauth_status_name(s), err.msg);
        fail(req, res, s == OAUTH_ERR_UNVERIFIED ? msg_unverified : msg_failed, why);
        goto out;
    }

    db *d = web_db(req);
    if (!d) {
        http_response_error(res, HTTP_STATUS_SERVICE_UNAVAILABLE, NULL);
        goto out;
    }
    s = db_oauth_find(d, PROVIDER, id.subject, &link, &err);
    if (s == DB_OK) {
        s = db_user_get(d, link.user_id, &u, &err);
        if (s == DB_OK && !u.is_active) {
            fail(req, res, msg_inactive, "the linked account is deactivated");
            goto out;
        }
        if (s == DB_OK) {
            log_info("google sign-in: user %s (id %lld) from %s", u.username, (long long)u.id,
                     http_request_client_ip(req));
            char text[128];
            snprintf(text, sizeof(text), "Welcome back, %s!", u.username);
            finish_login(req, res, u.id, text, next);
            goto out;
        }
    }
    if (s != DB_NOT_FOUND) goto db_failed;
    if (!db_email_valid(id.email)) {
        snprintf(why, sizeof(why), "the email address of subject is not one Echo can store");
        fail(req, res, msg_failed, why);
        goto out;
    }
    s = db_user_find_by_email(d, id.email, &u, &err);
    if (s == DB_OK) {
        /* Someone already has this address here. Google says the address is
         * theirs now, but Echo never verified it at signup: only the
         * account's password can say the two are the same person. */
        json_t *pending = json_pack("{s:s,s:s,s:I,s:I,s:i}", "s", id.subject, "e", id.email, "u",
                                    (json_int_t)u.id, "t", (json_int_t)now_s(), "tries", 0);
        if (next) json_object_set_new(pending, "next", json_string(next));
        struct put p = {LINK_KEY, pending};
        bool ok = session_edit(req, put_fn, &p);
        json_decref(pending);
        if (!ok) {
            http_response_error(res, HTTP_STATUS_SERVICE_UNAVAILABLE, NULL);
            goto out;
        }
        log_info("google sign-in: email of user %lld; asking for the password to link",
                 (long long)u.id);
        redirect(res, HTTP_STATUS_FOUND, "/login/google/link");
        goto out;
    }
    if (s != DB_NOT_FOUND) goto db_failed;
    char username[USERNAME_BUF];
    int64_t user_id = 0;
    s = create_account(d, &id, username, &user_id, &err);
    if (s != DB_OK) {
        snprintf(why, sizeof(why), "creating the account: %s", err.msg);
        fail(req, res, msg_failed, why);
        goto out;
    }
    log_info("google sign-in: new user %s (id %lld) from %s", username, (long long)user_id,
             http_request_client_ip(req));
    char text[160];
    snprintf(text, sizeof(text), "Welcome to Echo, %s! Your account is ready.", username);
    finish_login(req, res, user_id, text, next);
    goto out;

db_failed:
    log_error("google sign-in: %s", err.msg);
    http_response_error(
        res, s == DB_BUSY ? HTTP_STATUS_SERVICE_UNAVAILABLE : HTTP_STATUS_INTERNAL_ERROR, NULL);
out:
    if (id_token) sodium_memzero(id_token, strlen(id_token));
    if (access_token) sodium_memzero(access_token, strlen(access_token));
    free(id_token);
    free(access_token);
    json_decref(t.out);
    oauth_jwt_deinit(&jwt);
    oauth_identity_deinit(&id);
    db_user_deinit(&u);
    db_oauth_identity_deinit(&link);
}

/* ---- /login/google/link ------------------------------------------------------------ */

/* The pending link of the session, still fresh; a new reference or NULL. */
static json_t *pending_link(http_request *req, bool count_try)
{
    if (!web_session(req)) return NULL;
    struct take t = {.key = LINK_KEY, .keep = true, .count_try = count_try};
    if (!session_edit(req, take_fn, &t) || !t.out) return NULL;
    if (now_s() - json_integer_value(json_object_get(t.out, "t")) > LINK_TTL) {
        json_decref(t.out);
        return NULL;
    }
    return t.out;
}

static void drop_link(http_request *req)
{
    struct take t = {.key = LINK_KEY};
    if (web_session(req)) session_edit(req, take_fn, &t);
    json_decref(t.out);
}

static void render_link(struct web_oauth *o, http_request *req, http_response *res, int status,
                        const json_t *pending, const char *username, json_t *form)
{
    json_t *ctx = web_app_context(o->app, req, "login");
    json_object_set_new(ctx, "link",
                        json_pack("{s:s,s:s}", "email",
                                  json_string_value(json_object_get(pending, "e")), "username",
                                  username));
    json_object_set(ctx, "form", form ? form : json_null());
    web_app_render(o->app, req, res, status, "auth/google_link.html", ctx);
    json_decref(ctx);
    http_response_set_header(res, "Cache-Control", "no-store");
}

static void link_get(http_request *req, http_response *res, void *arg)
{
    struct web_oauth *o = arg;
    if (disabled(res, o)) return;
    if (web_user(req)) {
        redirect(res, HTTP_STATUS_FOUND, "/");
        return;
    }
    json_t *pending = pending_link(req, false);
    db *d = pending ? web_db(req) : NULL;
    struct db_user u = {0};
    if (!pending || !d ||
        db_user_get(d, json_integer_value(json_object_get(pending, "u")), &u, NULL) != DB_OK) {
        fail(req, res, msg_state, "no pending link to confirm");
        goto out;
    }
    render_link(o, req, res, HTTP_STATUS_OK, pending, u.username, NULL);
out:
    db_user_deinit(&u);
    json_decref(pending);
}

static void link_post(http_request *req, http_response *res, void *arg)
{
    struct web_oauth *o = arg;
    if (disabled(res, o)) return;
    if (web_user(req)) {
        redirect(res, HTTP_STATUS_SEE_OTHER, "/");
        return;
    }
    if (!strcmp(web_form_field_raw(req, "action"), "cancel")) {
        drop_link(req);
        web_flash(req, res, "info", "Your Google account was not linked.");
        redirect(res, HTTP_STATUS_SEE_OTHER, "/login");
        return;
    }
    json_t *pending = pending_link(req, true);
    db *d = pending ? web_db(req) : NULL;
    struct db_user u = {0};
    struct echo_err err = {0};
    json_t *form = NULL;
    if (!pending || !d ||
        db_user_get(d, json_integer_value(json_object_get(pending, "u")), &u, &err) != DB_OK) {
        fail(req, res, msg_state, "no pending link to confirm");
        goto out;
    }
    const char *password = web_form_field_raw(req, "password");
    json_int_t tries = json_integer_value(json_object_get(pending, "tries"));
    if (sec_password_verify(u.password_hash, password) != SEC_OK) {
        log_info("google sign-in: wrong password to link user %lld (try %lld)", (long long)u.id,
                 (long long)tries);
        if (tries >= LINK_TRIES) {
            fail(req, res, msg_failed, "too many wrong passwords for the link");
            goto out;
        }
        form = web_form_new();
        web_form_error(form, "password",
                       u.password_hash ? "That password is not correct."
                                       : "This account has no password yet, so it cannot be "
                                         "linked this way. Log in with it and set one first.");
        render_link(o, req, res, HTTP_STATUS_BAD_REQUEST, pending, u.username, form);
        goto out;
    }
    if (!u.is_active) {
        drop_link(req);
        fail(req, res, msg_inactive, "the account to link is deactivated");
        goto out;
    }
    const char *subject = json_string_value(json_object_get(pending, "s"));
    const char *email = json_string_value(json_object_get(pending, "e"));
    const char *next = json_string_value(json_object_get(pending, "next"));
    int s = db_oauth_link(d, PROVIDER, subject, u.id, email, now_s(), NULL, &err);
    drop_link(req);
    if (s != DB_OK) {
        char why[600];
        snprintf(why, sizeof(why), "linking: %s", err.msg);
        fail(req, res, msg_failed, why);
        goto out;
    }
    log_info("google sign-in: linked to user %s (id %lld) after password confirmation", u.username,
             (long long)u.id);
    char text[160];
    snprintf(text, sizeof(text), "Your Google account is now linked. Welcome back, %s!",
             u.username);
    finish_login(req, res, u.id, text, next && web_safe_next(next) ? next : NULL);
out:
    json_decref(form);
    db_user_deinit(&u);
    json_decref(pending);
}

/* ---- POST /profile/google/unlink ----------------------------------------------------- */

static void unlink_post(http_request *req, http_response *res, void *arg)
{
    (void)arg;
    if (!web_login_required(req, res)) return;
    const struct db_user *u = web_user(req);
    if (!u->password_hash) {
        web_flash(req, res, "warning",
                  "Set a password first: without one you could not log in any more.");
        redirect(res, HTTP_STATUS_SEE_OTHER, "/profile");
        return;
    }
    db *d = web_db(req);
    struct echo_err err = {0};
    int s = d ? db_oauth_unlink(d, u->id, PROVIDER, NULL, &err) : DB_BUSY;
    if (s == DB_OK) {
        log_info("google sign-in: user %lld unlinked their Google account", (long long)u->id);
        web_flash(req, res, "success", "Your Google account is no longer linked.");
    } else if (s == DB_NOT_FOUND) {
        web_flash(req, res, "info", "No Google account is linked.");
    } else {
        log_error("google sign-in: unlinking for user %lld: %s", (long long)u->id,
                  d ? err.msg : "no connection");
        http_response_error(
            res, s == DB_BUSY ? HTTP_STATUS_SERVICE_UNAVAILABLE : HTTP_STATUS_INTERNAL_ERROR, NULL);
        return;
    }
    redirect(res, HTTP_STATUS_SEE_OTHER, "/profile");
}

/* ---- the pages' data ----------------------------------------------------------------- */

/* login/signup: the button's URL (with next); profile: the linked accounts. */
static void context(web_app *app, http_request *req, json_t *ctx, void *arg)
{
    (void)app;
    struct web_oauth *o = arg;
    const char *active = json_string_value(json_object_get(ctx, "active"));
    if (!active) return;
    if (o->enabled && (!strcmp(active, "login") || !strcmp(active, "signup"))) {
        struct strbuf url;
        strbuf_init(&url);
        strbuf_puts(&url, "/login/google");
        const char *next = requested_next(req);
        if (next) {
            strbuf_puts(&url, "?next=");
            http_pct_encode(&url, next, NULL);
        }
        json_object_set_new(ctx, "oauth", json_pack("{s:s}", "google_url", strbuf_cstr(&url)));
        strbuf_deinit(&url);
        return;
    }
    const struct db_user *u = web_user(req);
    if (strcmp(active, "profile") != 0 || !u) return;
    db *d = web_db(req);
    json_t *list = NULL;
    struct echo_err err = {0};
    if (!d || db_oauth_user_json(d, u->id, &list, &err) != DB_OK) {
        log_error("profile: linked accounts of user %lld: %s", (long long)u->id,
                  d ? err.msg : "no connection");
        return;
    }
    json_t *o_ctx = json_pack("{s:b,s:o}", "enabled", o->enabled, "identities", list);
    if (!u->password_hash) json_object_set_new(o_ctx, "no_password", json_true());
    json_object_set_new(ctx, "oauth", o_ctx);
}

/* ---- usernames ----------------------------------------------------------------------- */

/* Letters and digits of s (accents stripped by utf8proc), other runs as one
 * "_", into out (cap bytes at most, no leading or trailing "_"). */
static void slug(const char *s, char *out, size_t cap)
{
    size_t n = 0;
    out[0] = 0;
    if (!s) return;
    utf8proc_uint8_t *ascii = NULL;
    utf8proc_ssize_t len =
        utf8proc_map((const utf8proc_uint8_t *)s, 0, &ascii,
                     UTF8PROC_NULLTERM | UTF8PROC_DECOMPOSE | UTF8PROC_STRIPMARK);
    const unsigned char *p = len >= 0 ? ascii : (const unsigned char *)"";
    bool sep = false;
    for (; *p && n < cap; p++) {
        unsigned char c = *p;
        bool keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (keep) {
            if (sep && n > 0 && n + 1 < cap) out[n++] = '_';
            sep = false;
            out[n++] = (char)c;
        } else {
            sep = true;
        }
    }
    out[n] = 0;
    free(ascii);
}

void oauth_username_from(const char *name, const char *email, char *out, size_t size)
{
    /* Room for "_" and a 7-digit suffix within DB_USERNAME_MAX. */
    char buf[DB_USERNAME_MAX - 8 + 1];
    slug(name, buf, sizeof(buf) - 1);
    if (strlen(buf) < DB_USERNAME_MIN && email) {
        char local[DB_EMAIL_MAX + 1];
        snprintf(local, sizeof(local), "%s", email);
        char *at = strchr(local, '@');
        if (at) *at = 0;
        slug(local, buf, sizeof(buf) - 1);
    }
    if (strlen(buf) < DB_USERNAME_MIN) snprintf(buf, sizeof(buf), "user");
    snprintf(out, size, "%s", buf);
}

/* ---- set-up ---------------------------------------------------------------------------- */

static const char *setting(const config *cfg, const char *key)
{
    const char *v = config_get(cfg, key);
    return v && v[0] ? v : NULL;
}

int web_oauth_register(web_app *app, struct echo_err *err)
{
    if (the_oauth) {
        echo_err_set(err, "sign in with Google is already set up in this process");
        return -1;
    }
    const config *cfg = web_app_config(app);
    struct web_oauth *o = xcalloc(1, sizeof(*o));
    o->app = app;
    pthread_mutex_init(&o->mu, NULL);
    o->client_id = setting(cfg, "GOOGLE_CLIENT_ID");
    o->client_secret = setting(cfg, "GOOGLE_CLIENT_SECRET");
    o->auth_url = setting(cfg, "GOOGLE_AUTH_URL");
    o->token_url = setting(cfg, "GOOGLE_TOKEN_URL");
    o->userinfo_url = setting(cfg, "GOOGLE_USERINFO_URL");
    o->jwks_url = setting(cfg, "GOOGLE_JWKS_URL");
    o->issuer = setting(cfg, "GOOGLE_ISSUER");
    o->enabled = o->client_id != NULL;
    int64_t timeout = config_get_int(cfg, "GOOGLE_TIMEOUT");
    if (o->enabled) {
        if (!o->client_secret) {
            echo_err_set(err, "GOOGLE_CLIENT_ID is set but GOOGLE_CLIENT_SECRET is not");
            goto fail;
        }
        const char *urls[][2] = {{"GOOGLE_AUTH_URL", o->auth_url},
                                 {"GOOGLE_TOKEN_URL", o->token_url},
                                 {"GOOGLE_JWKS_URL", o->jwks_url}};
        for (size_t i = 0; i < 3; i++) {
            if (!oauth_url_allowed(urls[i][1])) {
                echo_err_set(err,
                             "%s must be an https URL (http only to 127.0.0.1, [::1] or "
                             "localhost)",
                             urls[i][0]);
                goto fail;
            }
        }
        if (o->userinfo_url && !oauth_url_allowed(o->userinfo_url)) {
            echo_err_set(err, "GOOGLE_USERINFO_URL must be an https URL (or empty)");
            goto fail;
        }
        if (!o->issuer) {
            echo_err_set(err, "GOOGLE_ISSUER must be set");
            goto fail;
        }
        if (timeout < 1 || timeout > 60) {
            echo_err_set(err, "GOOGLE_TIMEOUT=%lld: must be 1 to 60 seconds", (long long)timeout);
            goto fail;
        }
        o->timeout_ms = (long)timeout * 1000;
        /* At most half the HTTP workers wait for the provider at once. */
        int64_t threads = config_get_int(cfg, "ECHO_THREADS");
        o->max_calls = threads >= 2 && threads < 200 ? (int)(threads / 2) : 1;
        const char *origin = setting(cfg, "ECHO_SITE_ORIGIN");
        struct strbuf uri;
        strbuf_init(&uri);
        if (origin) {
            strbuf_puts(&uri, origin);
            while (uri.len && uri.data[uri.len - 1] == '/')
                uri.data[--uri.len] = 0;
        } else {
            const char *host = config_get(cfg, "ECHO_HOST");
            bool v6 = strchr(host, ':') != NULL;
            strbuf_printf(&uri, "http://%s%s%s:%lld", v6 ? "[" : "", host, v6 ? "]" : "",
                          (long long)config_get_int(cfg, "ECHO_PORT"));
        }
        strbuf_puts(&uri, "/login/google/callback");
        o->redirect_uri = strbuf_steal(&uri);
        log_info("sign in with Google is on (redirect URI %s)", o->redirect_uri);
    }
    http_router *r = web_app_router(app);
    if (http_router_add(r, HTTP_GET, "/login/google", start, o, err) != 0 ||
        http_router_add(r, HTTP_GET, "/login/google/callback", callback, o, err) != 0 ||
        http_router_add(r, HTTP_GET, "/login/google/link", link_get, o, err) != 0 ||
        http_router_add(r, HTTP_POST, "/login/google/link", link_post, o, err) != 0 ||
        http_router_add(r, HTTP_POST, "/profile/google/unlink", unlink_post, o, err) != 0)
        goto fail;
    web_app_add_context_hook(app, context, o);
    the_oauth = o;
    return 0;
fail:
    pthread_mutex_destroy(&o->mu);
    free(o->redirect_uri);
    free(o);
    return -1;
}

void web_oauth_unregister(web_app *app)
{
    (void)app;
    if (!the_oauth) return;
    oauth_jwks_free(the_oauth->keys);
    pthread_mutex_destroy(&the_oauth->mu);
    free(the_oauth->redirect_uri);
    free(the_oauth);
    the_oauth = NULL;
}
