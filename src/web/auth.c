/*
 * auth.c - accounts on the web (issue 3; the original's Flask-Login,
 * Flask-WTF CSRF and flash): the session middleware, the page context, the
 * signup / login / logout pages and the helpers of auth.h.
 *
 * Every route passes through `before`: it loads the session named by the
 * cookie (and its user, who must still be active), works out what CSRF
 * tokens are bound to - the session, or for a visitor the pre-session
 * cookie (made when a visitor's first form is rendered) - and refuses a
 * POST without a valid token with 400 before the handler runs, so nothing
 * changes. The request's
 * state (connection, session, user) hangs on the request and is released
 * when the request is done.
 *
 * Form failures re-render the page with status 400, the typed values (never
 * the password) and a message per field. Unknown user and wrong password
 * get the same message and the same Argon2 work, so neither the text nor
 * the time tells which names exist.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "http/url.h"
#include "web/auth.h"
#include "web/form.h"

#define POOL_WAIT_MS 5000
#define MAX_EXEMPT 32
#define NEXT_MAX 2048

static const char msg_busy[] = "The service is busy right now. Please try again in a moment.";
static const char msg_csrf[] = "This form has expired or did not come from this site. "
                               "Go back, reload the page and try again.";
static const char msg_antibot[] = "Your form could not be accepted. Please wait a moment and "
                                  "send it again.";
static const char msg_bad_login[] = "Invalid username or password.";

struct web_auth {
    web_app *app;
    const config *cfg;
    db_pool *pool;
    struct sec_key key;
    bool cookie_secure;
    int64_t antibot_min_ms;
};

/* One accounts set-up per process (web_auth_register); read-only while
 * serving. */
static struct web_auth *the_auth;
static char *exempt[MAX_EXEMPT];
static size_t nexempt;

struct req_state {
    struct web_auth *auth;
    db *conn;
    bool has_session;
    struct sec_session sess;
    bool has_user;
    struct db_user user;
    bool is_admin;
    bool has_binding;
    unsigned char binding[SEC_HASH_LEN];
    char csrf[SEC_CSRF_LEN + 1];            /* "" until first asked for */
    char pending_cookie[SEC_TOKEN_LEN + 1]; /* a new pre-session token to send */
};

/* Its address is the key of the request data slot (http.h). */
static const char req_key;

static void state_free(void *p)
{
    struct req_state *st = p;
    if (st->conn) db_pool_release(st->auth->pool, st->conn);
    sec_session_deinit(&st->sess);
    db_user_deinit(&st->user);
    free(st);
}

static struct req_state *state_of(const http_request *req)
{
    return http_request_get_data(req, &req_key);
}

static int64_t now_s(void)
{
    return (int64_t)time_now_s();
}

/* ---- helpers for every area -------------------------------------------- */

db_pool *web_db_pool(void)
{
    return the_auth ? the_auth->pool : NULL;
}

db *web_db(http_request *req)
{
    struct req_state *st = state_of(req);
    if (!st) return NULL;
    if (!st->conn) {
        struct echo_err err = {0};
        st->conn = db_pool_acquire(st->auth->pool, POOL_WAIT_MS, &err);
        if (!st->conn)
            log_error("%s %s: %s", http_request_method_name(req), http_request_path(req), err.msg);
    }
    return st->conn;
}

const struct db_user *web_user(http_request *req)
{
    struct req_state *st = state_of(req);
    return st && st->has_user ? &st->user : NULL;
}

bool web_user_is_admin(http_request *req)
{
    struct req_state *st = state_of(req);
    return st && st->has_user && st->is_admin;
}

struct sec_session *web_session(http_request *req)
{
    struct req_state *st = state_of(req);
    return st && st->has_session ? &st->sess : NULL;
}

bool web_safe_next(const char *next)
{
    if (!next || next[0] != '/' || next[1] == '/' || next[1] == '\\') return false;
    size_t n = strnlen(next, NEXT_MAX + 1);
    if (n > NEXT_MAX) return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)next[i];
        if (c < 0x20 || c == 0x7f || c == '\\') return false;
    }
    return true;
}

/* A Location for a checked local path: bytes a header should not carry
 * (non-ASCII, space, quote) are percent-encoded, the rest kept as typed. */
static void append_location(struct strbuf *sb, const char *path)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)path; *p; p++) {
        if (*p <= 0x20 || *p >= 0x7f || *p == '"' || *p == '<' || *p == '>' || *p == '`' ||
            *p == '{' || *p == '}' || *p == '|' || *p == '^') {
            strbuf_putc(sb, '%');
            strbuf_putc(sb, hex[*p >> 4]);
            strbuf_putc(sb, hex[*p & 15]);
        } else {
            strbuf_putc(sb, (char)*p);
        }
    }
}

static void redirect_local(http_response *res, int status, const char *path)
{
    struct strbuf sb;
    strbuf_init(&sb);
    append_location(&sb, web_safe_next(path) ? path : "/");
    http_response_redirect(res, status, strbuf_cstr(&sb));
    strbuf_deinit(&sb);
}

static void set_cookie(struct web_auth *a, http_response *res, const char *name, const char *value,
                       int64_t max_age)
{
    struct http_cookie c = {
        .name = name,
        .value = value,
        .path = "/",
        .max_age = max_age,
        .http_only = true,
        .secure = a->cookie_secure,
        .same_site = HTTP_SAME_SITE_LAX,
    };
    if (http_response_set_cookie(res, &c) != 0) log_error("could not set the %s cookie", name);
}

static void bind_to(struct req_state *st, const unsigned char *hash)
{
    memcpy(st->binding, hash, SEC_HASH_LEN);
    st->has_binding = true;
    st->csrf[0] = 0;
}

const char *web_csrf_token(http_request *req)
{
    struct req_state *st = state_of(req);
    if (!st) return "";
    if (!st->has_binding) {
        /* A visitor's first form: make the pre-session cookie that anonymous
         * forms (signup, login) are bound to; `after` sends it. Pages
         * without forms (and JSON) never set it. */
        unsigned char hash[SEC_HASH_LEN];
        sec_token_new(st->pending_cookie, hash);
        bind_to(st, hash);
    }
    if (!st->csrf[0]) sec_csrf_token(&st->auth->key, st->binding, now_s(), st->csrf);
    return st->csrf;
}

json_t *web_antibot_fields(http_request *req, const char *form)
{
    struct req_state *st = state_of(req);
    char stamp[SEC_ANTIBOT_LEN + 1] = "";
    if (st) sec_antibot_stamp(&st->auth->key, form, (int64_t)(time_now_s() * 1000.0), stamp);
    return json_pack("{s:s,s:s,s:s}", "honeypot_name", SEC_ANTIBOT_HONEYPOT, "ts_field_name",
                     SEC_ANTIBOT_FIELD, "ts_field_value", stamp);
}

bool web_antibot_ok(http_request *req, const char *form)
{
    struct req_state *st = state_of(req);
    if (!st) return false;
    int s = sec_antibot_check(&st->auth->key, form, http_request_form(req, SEC_ANTIBOT_FIELD),
                              http_request_form(req, SEC_ANTIBOT_HONEYPOT),
                              (int64_t)(time_now_s() * 1000.0), st->auth->antibot_min_ms,
                              SEC_ANTIBOT_MAX_MS);
    if (s != SEC_OK)
        log_warn("anti-bot: %s form from %s refused (%s)", form, http_request_client_ip(req),
                 sec_status_name(s));
    return s == SEC_OK;
}

/* Loads the user of the session; a deleted or deactivated account ends
 * the session (its cookie is dropped by the caller). */
static int load_user(struct req_state *st, db *d, struct echo_err *err)
{
    int s = db_user_get(d, st->sess.user_id, &st->user, err);
    if (s == DB_OK && !st->user.is_active) s = DB_NOT_FOUND;
    if (s == DB_OK) s = db_user_has_role(d, st->user.id, "admin", &st->is_admin, err);
    if (s != DB_OK) {
        db_user_deinit(&st->user);
        return s;
    }
    st->has_user = true;
    return DB_OK;
}

struct sec_session *web_session_ensure(http_request *req, http_response *res)
{
    struct req_state *st = state_of(req);
    db *d = web_db(req);
    struct echo_err err = {0};
    if (!st || !d) return NULL;
    if (!st->has_session) {
        char token[SEC_TOKEN_LEN + 1];
        int s = sec_session_create(d, 0, false, now_s(), token, &st->sess, &err);
        if (s != DB_OK) {
            log_error("starting an anonymous session: %s", err.msg);
            return NULL;
        }
        st->has_session = true;
        bind_to(st, st->sess.id_hash);
        set_cookie(st->auth, res, WEB_SESSION_COOKIE, token, 0);
    }
    return &st->sess;
}

int web_flash(http_request *req, http_response *res, const char *category, const char *text)
{
    struct req_state *st = state_of(req);
    db *d = web_db(req);
    struct echo_err err = {0};
    if (!st || !d) return DB_BUSY;
    if (!web_session_ensure(req, res)) return DB_ERROR;
    int s = sec_flash_add(d, &st->sess, category, text, &err);
    if (s != DB_OK) log_error("flash: %s", err.msg);
    return s;
}

int web_login(http_request *req, http_response *res, int64_t user_id, bool remember,
              struct echo_err *err)
{
    struct req_state *st = state_of(req);
    db *d = web_db(req);
    if (!st || !d) {
        echo_err_set(err, "no database connection");
        return DB_BUSY;
    }
    int64_t now = now_s();
    char token[SEC_TOKEN_LEN + 1];
    struct sec_session fresh;
    int s = sec_session_create(d, user_id, remember, now, token, &fresh, err);
    if (s != DB_OK) return s;
    /* A new id on every login: whatever id the browser had before (maybe
     * planted by someone else) is worth nothing now. */
    if (st->has_session) {
        sec_session_revoke(d, &st->sess, NULL);
        sec_session_deinit(&st->sess);
    }
    st->sess = fresh;
    st->has_session = true;
    bind_to(st, fresh.id_hash);
    set_cookie(st->auth, res, WEB_SESSION_COOKIE, token, sec_session_cookie_max_age(&fresh, now));
    struct echo_err lerr = {0};
    if (db_user_record_login(d, user_id, now, &lerr) != DB_OK)
        log_warn("login: recording the time failed: %s", lerr.msg);
    db_user_deinit(&st->user);
    st->has_user = false;
    st->is_admin = false;
    if (load_user(st, d, &lerr) != DB_OK)
        log_warn("login: reloading the user failed: %s", lerr.msg);
    return DB_OK;
}

void web_logout(http_request *req, http_response *res)
{
    struct req_state *st = state_of(req);
    if (!st) return;
    if (st->has_session) {
        db *d = web_db(req);
        struct echo_err err = {0};
        if (d && sec_session_revoke(d, &st->sess, &err) != DB_OK && err.msg[0])
            log_warn("logout: %s", err.msg);
        sec_session_deinit(&st->sess);
        st->has_session = false;
        st->has_binding = false;
    }
    db_user_deinit(&st->user);
    st->has_user = false;
    st->is_admin = false;
    http_response_delete_cookie(res, WEB_SESSION_COOKIE, "/");
}

int web_revoke_other_sessions(http_request *req, int64_t *revoked, struct echo_err *err)
{
    struct req_state *st = state_of(req);
    db *d = web_db(req);
    if (!st || !st->has_user || !d) {
        echo_err_set(err, "no logged-in user");
        return DB_NOT_FOUND;
    }
    return sec_session_revoke_user(d, st->user.id, st->has_session ? st->sess.id_hash : NULL,
                                   revoked, err);
}

bool web_login_required(http_request *req, http_response *res)
{
    if (web_user(req)) return true;
    web_flash(req, res, "info", "Please log in to access this page.");
    struct strbuf to;
    strbuf_init(&to);
    strbuf_puts(&to, "/login?next=");
    struct strbuf here;
    strbuf_init(&here);
    strbuf_puts(&here, http_request_path(req));
    const char *q = http_request_query_string(req);
    if (q && q[0]) {
        strbuf_putc(&here, '?');
        strbuf_puts(&here, q);
    }
    http_pct_encode(&to, strbuf_cstr(&here), "/");
    enum http_method m = http_request_method(req);
    http_response_redirect(
        res, m == HTTP_GET || m == HTTP_HEAD ? HTTP_STATUS_FOUND : HTTP_STATUS_SEE_OTHER,
        strbuf_cstr(&to));
    strbuf_deinit(&here);
    strbuf_deinit(&to);
    return false;
}

bool web_admin_required(http_request *req, http_response *res)
{
    if (!web_login_required(req, res)) return false;
    if (!web_user_is_admin(req)) {
        http_response_error(res, HTTP_STATUS_FORBIDDEN, NULL);
        return false;
    }
    return true;
}

int web_session_user(const char *token, struct db_user *out, struct echo_err *err)
{
    memset(out, 0, sizeof(*out));
    if (!the_auth) {
        echo_err_set(err, "accounts are not set up");
        return DB_ERROR;
    }
    db *d = db_pool_acquire(the_auth->pool, POOL_WAIT_MS, err);
    if (!d) return DB_BUSY;
    struct sec_session s;
    int rc = sec_session_load(d, token, now_s(), &s, err);
    if (rc == DB_OK && s.user_id <= 0) {
        echo_err_set(err, "an anonymous session");
        rc = DB_NOT_FOUND;
    }
    if (rc == DB_OK) rc = db_user_get(d, s.user_id, out, err);
    if (rc == DB_OK && !out->is_active) {
        db_user_deinit(out);
        echo_err_set(err, "the account is deactivated");
        rc = DB_NOT_FOUND;
    }
    sec_session_deinit(&s);
    db_pool_release(the_auth->pool, d);
    return rc;
}

/* ---- the middleware ---------------------------------------------------- */

static bool csrf_exempt(http_request *req)
{
    const char *route = http_request_route(req);
    if (!route) return false;
    if (str_has_prefix(route, "/_test/")) return true;
    for (size_t i = 0; i < nexempt; i++)
        if (!strcmp(route, exempt[i])) return true;
    return false;
}

void web_auth_csrf_exempt(const char *pattern)
{
    if (nexempt < MAX_EXEMPT)
        exempt[nexempt++] = xstrdup(pattern);
    else
        log_error("too many CSRF exemptions; '%s' is not exempt", pattern);
}

static bool before(http_request *req, http_response *res, void *arg)
{
    struct web_auth *a = arg;
    struct req_state *st = xcalloc(1, sizeof(*st));
    st->auth = a;
    http_request_set_data(req, &req_key, st, state_free);
    int64_t now = now_s();
    struct echo_err err = {0};

    const char *token = http_request_cookie(req, WEB_SESSION_COOKIE);
    if (token) {
        db *d = web_db(req);
        if (!d) {
            http_response_error(res, HTTP_STATUS_SERVICE_UNAVAILABLE, msg_busy);
            return false;
        }
        int s = sec_session_load(d, token, now, &st->sess, &err);
        if (s == DB_OK) {
            st->has_session = true;
            if (st->sess.user_id > 0) {
                s = load_user(st, d, &err);
                if (s == DB_NOT_FOUND) {
                    /* Deactivated (or deleted) since the login. */
                    sec_session_revoke(d, &st->sess, NULL);
                    sec_session_deinit(&st->sess);
                    st->has_session = false;
                    http_response_delete_cookie(res, WEB_SESSION_COOKIE, "/");
                    s = DB_OK;
                }
            }
        } else if (s == DB_NOT_FOUND) {
            /* Expired, revoked or made up: the cookie has no use any more. */
            http_response_delete_cookie(res, WEB_SESSION_COOKIE, "/");
            s = DB_OK;
        }
        if (s != DB_OK) {
            log_error("%s %s: loading the session: %s", http_request_method_name(req),
                      http_request_path(req), err.msg);
            http_response_error(res, HTTP_STATUS_SERVICE_UNAVAILABLE, msg_busy);
            return false;
        }
    }

    enum http_method m = http_request_method(req);
    if (st->has_session) {
        bind_to(st, st->sess.id_hash);
    } else {
        unsigned char hash[SEC_HASH_LEN];
        const char *pre = http_request_cookie(req, WEB_CSRF_COOKIE);
        if (pre && sec_token_hash(pre, hash) == SEC_OK) bind_to(st, hash);
    }

    if (m != HTTP_GET && m != HTTP_HEAD && m != HTTP_OPTIONS && !csrf_exempt(req)) {
        const char *sent = http_request_form(req, WEB_CSRF_FIELD);
        if (!sent) sent = http_request_header(req, WEB_CSRF_HEADER);
        int v = st->has_binding ? sec_csrf_verify(&a->key, st->binding, sent, now, SEC_CSRF_MAX_AGE)
                                : SEC_ERR_MALFORMED;
        if (v != SEC_OK) {
            log_warn("csrf: %s %s from %s refused (%s token%s)", http_request_method_name(req),
                     http_request_path(req), http_request_client_ip(req), sec_status_name(v),
                     st->has_binding ? "" : ", no session or pre-session cookie");
            http_response_error(res, HTTP_STATUS_BAD_REQUEST, msg_csrf);
            return false;
        }
    }
    return true;
}

/* Sends a pre-session cookie made while rendering, and gives the connection
 * back as soon as the handler is done (an error page rendered afterwards
 * takes one again if it needs it). */
static void after(http_request *req, http_response *res, void *arg)
{
    struct web_auth *a = arg;
    struct req_state *st = state_of(req);
    if (!st) return;
    if (st->pending_cookie[0] && !st->has_session) {
        set_cookie(a, res, WEB_CSRF_COOKIE, st->pending_cookie, 0);
        st->pending_cookie[0] = 0;
    }
    if (st->conn) {
        db_pool_release(a->pool, st->conn);
        st->conn = NULL;
    }
}

/* The base page context: the user, the CSRF token and the flashed messages
 * (taken from the session now, so each is shown exactly once). */
static void context(web_app *app, http_request *req, json_t *ctx, void *arg)
{
    (void)app;
    (void)arg;
    struct req_state *st = state_of(req);
    if (!st) return;
    if (st->has_user) {
        json_t *u = json_object();
        json_object_set_new(u, "id", json_integer(st->user.id));
        json_object_set_new(u, "username", json_string(st->user.username));
        json_object_set_new(u, "email", json_string(st->user.email));
        json_object_set_new(u, "is_admin", json_boolean(st->is_admin));
        json_object_set_new(u, "avatar_url", json_string(""));
        json_object_set_new(u, "created_at", json_integer(st->user.created_at));
        json_object_set_new(ctx, "user", u);
    }
    json_object_set_new(ctx, "csrf_token", json_string(web_csrf_token(req)));
    /* A HEAD answer has no body: its flashes would be taken and never seen. */
    if (st->has_session && http_request_method(req) != HTTP_HEAD) {
        db *d = web_db(req);
        struct echo_err err = {0};
        json_t *flashes = d ? sec_flash_pop(d, &st->sess, &err) : NULL;
        if (flashes)
            json_object_set_new(ctx, "flashes", flashes);
        else
            log_error("reading flashed messages: %s", d ? err.msg : "no connection");
    }
}

/* ---- forms --------------------------------------------------------------- */

/* A form object for the templates: {data, errors, form_errors}. */
static void render_form(http_request *req, http_response *res, int status, const char *tmpl,
                        const char *active, const char *antibot_form, json_t *form,
                        const char *next)
{
    web_app *app = the_auth->app;
    json_t *ctx = web_app_context(app, req, active);
    json_object_set(ctx, "form", form ? form : json_null());
    json_object_set_new(ctx, "antibot", web_antibot_fields(req, antibot_form));
    if (next && web_safe_next(next)) json_object_set_new(ctx, "next", json_string(next));
    web_app_render(app, req, res, status, tmpl, ctx);
    json_decref(ctx);
    /* Pages with per-visitor tokens must not be stored by shared caches. */
    http_response_set_header(res, "Cache-Control", "no-store");
}

static void answer_db_error(http_response *res, int status)
{
    if (status == DB_BUSY)
        http_response_error(res, HTTP_STATUS_SERVICE_UNAVAILABLE, msg_busy);
    else
        http_response_error(res, HTTP_STATUS_INTERNAL_ERROR, NULL);
}

/* ---- /signup ------------------------------------------------------------- */

static void signup_get(http_request *req, http_response *res, void *arg)
{
    (void)arg;
    if (web_user(req)) {
        redirect_local(res, HTTP_STATUS_FOUND, "/");
        return;
    }
    render_form(req, res, HTTP_STATUS_OK, "auth/signup.html", "signup", "signup", NULL, NULL);
}

static void signup_post(http_request *req, http_response *res, void *arg)
{
    (void)arg;
    if (web_user(req)) {
        redirect_local(res, HTTP_STATUS_SEE_OTHER, "/");
        return;
    }
    const char *username = web_form_field_trimmed(req, "username");
    const char *email = web_form_field_trimmed(req, "email");
    const char *password = web_form_field_raw(req, "password");
    const char *confirm = web_form_field_raw(req, "confirm_password");
    json_t *form = web_form_new();
    web_form_data(form, "username", username);
    web_form_data(form, "email", email);

    if (!web_antibot_ok(req, "signup")) {
        web_form_fail(form, msg_antibot);
        goto invalid;
    }
    if (!username[0])
        web_form_error(form, "username", "Choose a username.");
    else if (!db_username_valid(username))
        web_form_error(form, "username",
                   "A username is 3 to 32 letters, digits, dots, dashes or underscores.");
    if (!email[0])
        web_form_error(form, "email", "Enter your email address.");
    else if (!db_email_valid(email))
        web_form_error(form, "email", "Enter a valid email address.");
    struct echo_err perr = {0};
    if (sec_password_check(password, &perr) != SEC_OK) web_form_error(form, "password", perr.msg);
    if (strcmp(password, confirm) != 0)
        web_form_error(form, "confirm_password", "The two passwords do not match.");
    if (!web_form_ok(form)) goto invalid;

    char hash[SEC_PASSWORD_HASH_MAX];
    struct echo_err err = {0};
    if (sec_password_hash(password, hash, &err) != SEC_OK) {
        log_error("signup: %s", err.msg);
        json_decref(form);
        http_response_error(res, HTTP_STATUS_INTERNAL_ERROR, NULL);
        return;
    }
    db *d = web_db(req);
    if (!d) {
        json_decref(form);
        answer_db_error(res, DB_BUSY);
        return;
    }
    int64_t id = 0;
    int s = db_user_create(d, username, email, hash, true, now_s(), &id, &err);
    if (s == DB_CONFLICT) {
        if (!strcmp(db_conflict_field(d), "email"))
            web_form_error(form, "email", "An account with this email address already exists.");
        else
            web_form_error(form, "username", "This username is already taken.");
        goto invalid;
    }
    if (s == DB_INVALID) {
        web_form_fail(form, "Those details cannot be stored; check every field.");
        goto invalid;
    }
    if (s != DB_OK) {
        log_error("signup: %s", err.msg);
        json_decref(form);
        answer_db_error(res, s);
        return;
    }
    log_info("signup: new user %s (id %lld) from %s", username, (long long)id,
             http_request_client_ip(req));
    s = web_login(req, res, id, false, &err);
    if (s != DB_OK) {
        log_error("signup: logging in: %s", err.msg);
        json_decref(form);
        answer_db_error(res, s);
        return;
    }
    char text[128];
    snprintf(text, sizeof(text), "Welcome to Echo, %s! Your account is ready.", username);
    web_flash(req, res, "success", text);
    json_decref(form);
    redirect_local(res, HTTP_STATUS_SEE_OTHER, "/");
    return;

invalid:
    render_form(req, res, HTTP_STATUS_BAD_REQUEST, "auth/signup.html", "signup", "signup", form,
                NULL);
    json_decref(form);
}

/* ---- /login -------------------------------------------------------------- */

static const char *requested_next(http_request *req)
{
    const char *next = http_request_form(req, "next");
    if (!next || !next[0]) next = http_request_query(req, "next");
    return next && web_safe_next(next) ? next : NULL;
}

static void login_get(http_request *req, http_response *res, void *arg)
{
    (void)arg;
    const char *next = requested_next(req);
    if (web_user(req)) {
        redirect_local(res, HTTP_STATUS_FOUND, next ? next : "/");
        return;
    }
    render_form(req, res, HTTP_STATUS_OK, "auth/login.html", "login", "login", NULL, next);
}

static bool checkbox_on(const char *v)
{
    return v && (!strcmp(v, "1") || !strcmp(v, "on") || !strcmp(v, "true") || !strcmp(v, "yes"));
}

static void login_post(http_request *req, http_response *res, void *arg)
{
    (void)arg;
    const char *next = requested_next(req);
    if (web_user(req)) {
        redirect_local(res, HTTP_STATUS_SEE_OTHER, next ? next : "/");
        return;
    }
    const char *login = web_form_field_trimmed(req, "username");
    const char *password = web_form_field_raw(req, "password");
    bool remember = checkbox_on(http_request_form(req, "remember"));
    json_t *form = web_form_new();
    web_form_data(form, "username", login);
    if (remember) web_form_data(form, "remember", "1");
    struct db_user u = {0};
    struct echo_err err = {0};

    if (!web_antibot_ok(req, "login")) {
        web_form_fail(form, msg_antibot);
        goto invalid;
    }
    if (!login[0]) web_form_error(form, "username", "Enter your username or email.");
    if (!password[0]) web_form_error(form, "password", "Enter your password.");
    if (!web_form_ok(form)) goto invalid;

    db *d = web_db(req);
    if (!d) {
        json_decref(form);
        answer_db_error(res, DB_BUSY);
        return;
    }
    /* Names longer than any stored one cannot match; skip the lookup but
     * not the Argon2 work. */
    int s =
        strlen(login) <= DB_EMAIL_MAX ? db_user_find_by_login(d, login, &u, &err) : DB_NOT_FOUND;
    if (s == DB_NOT_FOUND) {
        sec_password_dummy_verify(password);
        web_form_fail(form, msg_bad_login);
        goto invalid;
    }
    if (s != DB_OK) {
        log_error("login: %s", err.msg);
        json_decref(form);
        answer_db_error(res, s);
        return;
    }
    if (sec_password_verify(u.password_hash, password) != SEC_OK) {
        log_info("login: wrong password for %s from %s", u.username, http_request_client_ip(req));
        web_form_fail(form, msg_bad_login);
        goto invalid;
    }
    if (!u.is_active) {
        web_form_fail(form, "This account has been deactivated.");
        goto invalid;
    }
    if (sec_password_needs_rehash(u.password_hash)) {
        char hash[SEC_PASSWORD_HASH_MAX];
        if (sec_password_hash(password, hash, &err) == SEC_OK &&
            db_user_set_password_hash(d, u.id, hash, &err) == DB_OK)
            log_info("login: re-hashed the password of %s with the current limits", u.username);
        else
            log_warn("login: re-hashing the password of %s failed: %s", u.username, err.msg);
    }
    s = web_login(req, res, u.id, remember, &err);
    if (s != DB_OK) {
        log_error("login: %s", err.msg);
        json_decref(form);
        db_user_deinit(&u);
        answer_db_error(res, s);
        return;
    }
    char text[128];
    snprintf(text, sizeof(text), "Welcome back, %s!", u.username);
    web_flash(req, res, "success", text);
    db_user_deinit(&u);
    json_decref(form);
    redirect_local(res, HTTP_STATUS_SEE_OTHER, next ? next : "/");
    return;

invalid:
    db_user_deinit(&u);
    render_form(req, res, HTTP_STATUS_BAD_REQUEST, "auth/login.html", "login", "login", form, next);
    json_decref(form);
}

/* ---- /logout ------------------------------------------------------------- */

static void logout_post(http_request *req, http_response *res, void *arg)
{
    (void)arg;
    if (web_user(req)) {
        web_logout(req, res);
        web_flash(req, res, "info", "You have been logged out.");
    }
    redirect_local(res, HTTP_STATUS_SEE_OTHER, "/");
}

/* ---- set-up ---------------------------------------------------------------- */

int web_auth_register(web_app *app, struct echo_err *err)
{
    if (the_auth) {
        echo_err_set(err, "accounts are already set up in this process");
        return -1;
    }
    const config *cfg = web_app_config(app);
    struct web_auth *a = xcalloc(1, sizeof(*a));
    a->app = app;
    a->cfg = cfg;
    a->cookie_secure = config_get_bool(cfg, "ECHO_COOKIE_SECURE");
    a->antibot_min_ms = config_get_int(cfg, "ECHO_ANTIBOT_MIN_MS");
    if (a->antibot_min_ms < 0) a->antibot_min_ms = 0;
    if (a->antibot_min_ms == 0)
        log_warn("ECHO_ANTIBOT_MIN_MS=0: forms are not checked for bot-like speed");
    if (sec_key_init(&a->key, config_get(cfg, "SECRET_KEY"), err) != SEC_OK) goto fail;
    /* Migrate (or refuse) once, then share the file through a pool. */
    db *d = db_open_config(cfg, err);
    if (!d) goto fail;
    char *path = xstrdup(db_path(d));
    db_close(d);
    int64_t threads = config_get_int(cfg, "ECHO_THREADS");
    int size = (int)(threads > 0 && threads < 200 ? threads : 4) + 4;
    a->pool = db_pool_new(path, size, err);
    free(path);
    if (!a->pool) goto fail;
    http_router *r = web_app_router(app);
    if (http_router_add(r, HTTP_GET, "/signup", signup_get, a, err) != 0 ||
        http_router_add(r, HTTP_POST, "/signup", signup_post, a, err) != 0 ||
        http_router_add(r, HTTP_GET, "/login", login_get, a, err) != 0 ||
        http_router_add(r, HTTP_POST, "/login", login_post, a, err) != 0 ||
        http_router_add(r, HTTP_POST, "/logout", logout_post, a, err) != 0)
        goto fail;
    http_router_add_hook(r, before, after, a);
    web_app_add_context_hook(app, context, a);
    the_auth = a;
    return 0;
fail:
    db_pool_free(a->pool);
    free(a);
    return -1;
}

void web_auth_unregister(web_app *app)
{
    (void)app;
    if (!the_auth) return;
    db_pool_free(the_auth->pool);
    sodium_memzero(&the_auth->key, sizeof(the_auth->key));
    free(the_auth);
    the_auth = NULL;
    for (size_t i = 0; i < nexempt; i++)
        free(exempt[i]);
    nexempt = 0;
}
