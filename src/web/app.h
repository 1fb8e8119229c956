/*
 * app.h - the web application object: the configuration, the compiled
 * templates, the router with every area's routes, the static files and the
 * error pages; web_app_run serves it until SIGINT/SIGTERM.
 *
 * Each area of the site (pages.c, auth.c, profile.c, chat.c, admin.c...)
 * registers its routes with a web_<area>_register(app, err) function called
 * from web_app_new, and renders pages through web_app_render with a context
 * from web_app_context, so every page gets the same base data (see
 * templates/base.html: site, user, csrf_token, flashes, active).
 *
 * Threads: web_app_new / web_app_add_* / web_app_free run on the main thread
 * before / after web_app_run. Once serving, the app is read-only and
 * web_app_context / web_app_render are called from HTTP worker threads.
 * web_app_stop is async-signal-safe and may be called from any thread.
 */
#ifndef ECHO_WEB_APP_H
#define ECHO_WEB_APP_H

#include <jansson.h>

#include "core/core.h"
#include "http/http.h"
#include "realtime/realtime.h"
#include "tmpl/tmpl.h"

typedef struct web_app web_app;

/*
 * Loads templates/ (a syntax error stops start-up with file:line:column)
 * and static/ from the working directory, builds the router (static files
 * under /static/, the error handler, every area's routes). cfg must be
 * finished (config_finish) and outlive the app. NULL with err set on failure.
 * Blocks SIGINT and SIGTERM in the calling thread (web_app_run receives them),
 * so call it before starting other threads.
 */
web_app *web_app_new(const config *cfg, struct echo_err *err);
void web_app_free(web_app *app);

/* Adds the /_test/ routes (http_add_test_routes); refused in production. */
int web_app_add_test_routes(web_app *app, struct echo_err *err);

/* Serves on ECHO_HOST:ECHO_PORT until SIGINT or SIGTERM (or web_app_stop),
 * then stops gracefully: no new connections, requests in flight finish (up
 * to 10 s), stop hooks run. Returns 0, or -1 with err set if the server could
 * not start. SIGPIPE is ignored from here on. */
int web_app_run(web_app *app, struct echo_err *err);
/* Asks web_app_run to stop (async-signal-safe). */
void web_app_stop(web_app *app);
/* Registered on the HTTP server when web_app_run starts it (e.g. the
 * realtime layer's sio_http_stop_hook). Call before web_app_run. */
void web_app_add_stop_hook(web_app *app, http_stop_fn fn, void *arg);

const config *web_app_config(const web_app *app);
tmpl_env *web_app_templates(web_app *app);
/* The router, to add routes, mounts and hooks before web_app_run. */
http_router *web_app_router(web_app *app);

/*
 * Fills the base context of a page for one request. The app sets site,
 * user (null), csrf_token (""), flashes ([]) and active (when not NULL); then
 * every context hook (added by the accounts layer: the logged-in user, the
 * CSRF token, the flashed messages) may overwrite them. Returns a new
 * reference.
 */
json_t *web_app_context(web_app *app, http_request *req, const char *active);
typedef void (*web_context_fn)(web_app *app, http_request *req, json_t *ctx, void *arg);
void web_app_add_context_hook(web_app *app, web_context_fn fn, void *arg);

/*
 * Renders template `name` with ctx (borrowed) into res as HTML with the
 * given status. A rendering error is logged (template and line) and answered
 * with the 500 error page; the person never sees the details.
 */
void web_app_render(web_app *app, http_request *req, http_response *res, int status,
                    const char *name, json_t *ctx);

/* Who is logged in for a request (user id, 0 for nobody); installed by the
 * accounts area and used by Socket.IO handshakes. Set before web_app_run. */
typedef int64_t (*web_user_fn)(web_app *app, http_request *req, void *arg);
void web_app_set_user_fn(web_app *app, web_user_fn fn, void *arg);
/* The Socket.IO server mounted at /socket.io/ (for the chat area's events). */
sio_server *web_app_realtime(web_app *app);

/* ---- areas (one file each) ---- */

/* pages.c: GET / (landing page) and GET /healthz. */
int web_pages_register(web_app *app, struct echo_err *err);

#endif
