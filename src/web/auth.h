/*
 * auth.h - accounts on the web (issue 3): the database pool every area
 * uses, the session middleware (a before-hook on every route: loads the
 * session and its user, checks the CSRF token of every POST), the page
 * context (user, csrf_token, flashes), the signup / login / logout pages,
 * and the helpers the other areas build on (login_required,
 * admin_required, flash, the anti-bot fields, the current user).
 *
 * Cookies: "echo_session" carries the session token (HttpOnly,
 * SameSite=Lax, Secure when ECHO_COOKIE_SECURE=1, Max-Age only with
 * "remember me"); "echo_csrf" is the pre-session token of a visitor without
 * a session, to which the CSRF tokens of anonymous forms are bound.
 *
 * Threads: web_auth_register / web_auth_unregister / web_auth_csrf_exempt
 * run on the main thread before / after serving (one accounts set-up per
 * process). Everything taking an http_request runs on that request's
 * worker thread; its results live until the request is done.
 */
#ifndef ECHO_WEB_AUTH_H
#define ECHO_WEB_AUTH_H

#include "db/db.h"
#include "web/app.h"
#include "web/security.h"

#define WEB_SESSION_COOKIE "echo_session"
#define WEB_CSRF_COOKIE "echo_csrf"
#define WEB_CSRF_FIELD "csrf_token"
#define WEB_CSRF_HEADER "X-CSRF-Token"

/*
 * Sets accounts up for app: the database pool (db_open_config: migrated
 * when ECHO_AUTO_MIGRATE is on, refused when behind otherwise), the key
 * from SECRET_KEY, the hooks and the routes GET/POST /signup, GET/POST
 * /login and POST /logout. Call from web_app_new after the other areas;
 * call web_auth_unregister from web_app_free.
 */
int web_auth_register(web_app *app, struct echo_err *err);
void web_auth_unregister(web_app *app);

/* A route (its pattern as registered) whose POSTs are not forms of this
 * site, e.g. a JSON API with its own token: no CSRF check. Routes under
 * /_test/ are always exempt. Before web_app_run. */
void web_auth_csrf_exempt(const char *pattern);

/* The pool, for threads that serve no HTTP request (chat answers stored
 * from the scheduler, Socket.IO events). NULL before web_auth_register. */
db_pool *web_db_pool(void);

/* The user of a session cookie value (Socket.IO handshakes): DB_OK and
 * *out filled (db_user_deinit it), DB_NOT_FOUND for no, an expired or a
 * deactivated account's session. */
int web_session_user(const char *token, struct db_user *out, struct echo_err *err);

/* ---- per request ---------------------------------------------------------- */

/* The request's database connection, taken from the pool on first use and
 * given back when the request is done. NULL when none became free within
 * 5 s (answer 503). */
db *web_db(http_request *req);
/* The logged-in user, or NULL for a visitor. */
const struct db_user *web_user(http_request *req);
bool web_user_is_admin(http_request *req);
/* The session, or NULL when the request has none. */
struct sec_session *web_session(http_request *req);

/* true: go on. false: answered - a visitor is sent to /login?next=<this
 * page> with a flashed "Please log in"; a non-admin gets 403. */
bool web_login_required(http_request *req, http_response *res);
bool web_admin_required(http_request *req, http_response *res);

/* The request's session; a visitor without one gets a short anonymous one
 * (cookie set on res) that carries data before login (flashes, the state of
 * a sign-in with Google). NULL on a database error (logged). */
struct sec_session *web_session_ensure(http_request *req, http_response *res);

/* Queues a message for the next page. A visitor without a session gets a
 * short anonymous one (cookie set on res). DB status. */
int web_flash(http_request *req, http_response *res, const char *category, const char *text);

/* Logs user_id in: a new session with a new id (the old one is revoked),
 * the session cookie, last_login_at. DB status. */
int web_login(http_request *req, http_response *res, int64_t user_id, bool remember,
              struct echo_err *err);
/* Ends the request's session and deletes its cookie. */
void web_logout(http_request *req, http_response *res);
/* After a password change: every other session of the current user ends. */
int web_revoke_other_sessions(http_request *req, int64_t *revoked, struct echo_err *err);

/* The CSRF token forms of this request carry (also in every page context). */
const char *web_csrf_token(http_request *req);
/* The anti-bot context of a form: {honeypot_name, ts_field_name,
 * ts_field_value} (templates/_forms.html antibot_fields). New reference. */
json_t *web_antibot_fields(http_request *req, const char *form);
/* Checks the anti-bot fields of a submitted form; a refusal is logged with
 * its reason (the person only gets a generic message). */
bool web_antibot_ok(http_request *req, const char *form);

/* True for a path that is safe to redirect to after login: it starts with
 * one "/" (not "//" or "/\"), and has no backslash or control character and
 * at most 2048 bytes - so never another site. */
bool web_safe_next(const char *next);

#endif
