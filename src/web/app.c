/*
 * app.c - the web application object (see app.h): templates, router, static
 * files, the error pages, and the serving loop with its graceful stop.
 *
 * Signals: web_app_new blocks SIGINT and SIGTERM before any thread of the
 * application starts (threads inherit the mask) and web_app_run waits for
 * them on a signalfd, so no handler runs in a random thread and the stop
 * happens on the main thread in an orderly way. SIGPIPE is ignored: a client that hangs up must
 * never kill the server.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "web/admin.h"
#include "web/app.h"
#include "web/auth.h"
#include "web/chat.h"
#include "web/oauth.h"
#include "web/profile.h"

#define STOP_GRACE_MS 10000

struct context_hook {
    web_context_fn fn;
    void *arg;
};

struct web_app {
    const config *cfg;
    tmpl_env *tmpl;
    http_router *router;
    http_static *statics;
    struct context_hook *ctx_hooks;
    size_t nctx_hooks;
    struct {
        http_stop_fn fn;
        void *arg;
    } * stop_hooks;
    size_t nstop_hooks;
    int stopfd; /* eventfd written by web_app_stop */
    sio_server *rt; /* Socket.IO at /socket.io/ */
    web_user_fn user_fn; /* who is logged in (the accounts area), NULL: nobody */
    void *user_arg;
};

/* The realtime layer asks who a Socket.IO handshake belongs to; the answer
 * comes from the accounts area's session lookup. */
static int64_t realtime_auth(http_request *req, void *arg)
{
    web_app *app = arg;
    return app->user_fn ? app->user_fn(app, req, app->user_arg) : 0;
}

/* A Socket.IO handshake carries the session cookie like any request. */
static int64_t session_user(web_app *app, http_request *req, void *arg)
{
    (void)app;
    (void)arg;
    const char *token = http_request_cookie(req, WEB_SESSION_COOKIE);
    struct db_user u;
    if (!token || web_session_user(token, &u, NULL) != DB_OK) return 0;
    int64_t id = u.is_active ? u.id : 0;
    db_user_deinit(&u);
    return id;
}

void web_app_set_user_fn(web_app *app, web_user_fn fn, void *arg)
{
    app->user_fn = fn;
    app->user_arg = arg;
}

sio_server *web_app_realtime(web_app *app)
{
    return app->rt;
}

/* ---- rendering ---- */

json_t *web_app_context(web_app *app, http_request *req, const char *active)
{
    json_t *ctx = json_pack("{s:{s:s},s:n,s:s,s:[]}", "site", "name", "Echo", "user", "csrf_token",
                            "", "flashes");
    if (active) json_object_set_new(ctx, "active", json_string(active));
    for (size_t i = 0; i < app->nctx_hooks; i++)
        app->ctx_hooks[i].fn(app, req, ctx, app->ctx_hooks[i].arg);
    return ctx;
}

void web_app_add_context_hook(web_app *app, web_context_fn fn, void *arg)
{
    app->ctx_hooks = xrealloc(app->ctx_hooks, (app->nctx_hooks + 1) * sizeof(*app->ctx_hooks));
    app->ctx_hooks[app->nctx_hooks++] = (struct context_hook){fn, arg};
}

void web_app_render(web_app *app, http_request *req, http_response *res, int status,
                    const char *name, json_t *ctx)
{
    struct strbuf sb;
    struct echo_err err = {0};
    char where[1024];
    strbuf_init(&sb);
    if (tmpl_render(app->tmpl, name, ctx, &sb, &err) != 0) {
        log_error("%s %s: template %s: %s", http_request_method_name(req), http_request_path(req),
                  name, echo_err_format(&err, where, sizeof(where)));
        strbuf_deinit(&sb);
        http_response_error(res, HTTP_STATUS_INTERNAL_ERROR, NULL);
        return;
    }
    http_response_set_status(res, status);
    http_response_html_strbuf(res, &sb);
}

/*
 * The one error renderer (http_router_set_error_handler): error.html for a
 * person, {"error": {"code", "message"}} for a client that prefers JSON.
 * If error.html itself fails, the body stays empty and the http layer's
 * plain page answers, so an error never turns into a worse one.
 */
static void render_error(http_request *req, http_response *res, int status, const char *message,
                         void *arg)
{
    web_app *app = arg;
    if (http_request_prefers_json(req)) {
        json_t *j = json_pack("{s:{s:i,s:s}}", "error", "code", status, "message", message);
        http_response_json(res, j);
        json_decref(j);
        return;
    }
    json_t *ctx = web_app_context(app, req, NULL);
    json_object_set_new(ctx, "error",
                        json_pack("{s:i,s:s,s:s}", "code", status, "title",
                                  http_status_title(status), "message", message));
    struct strbuf sb;
    struct echo_err err = {0};
    char where[1024];
    strbuf_init(&sb);
    if (tmpl_render(app->tmpl, "error.html", ctx, &sb, &err) == 0) {
        http_response_html_strbuf(res, &sb);
    } else {
        log_error("error page for %d: %s", status, echo_err_format(&err, where, sizeof(where)));
        strbuf_deinit(&sb);
    }
    json_decref(ctx);
}

/* ---- life cycle ---- */

/* SIGINT and SIGTERM are received through a signalfd in web_app_run; they
 * must be blocked in every thread, so before any thread exists. */
static void block_stop_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, set, NULL);
}

web_app *web_app_new(const config *cfg, struct echo_err *err)
{
    sigset_t stop_set;
    block_stop_signals(&stop_set);
    web_app *app = xcalloc(1, sizeof(*app));
    app->cfg = cfg;
    app->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (app->stopfd < 0) {
        echo_err_set(err, "eventfd: %s", strerror(errno));
        goto fail;
    }
    app->tmpl = tmpl_env_new();
    if (tmpl_env_load_dir(app->tmpl, "templates", err) != 0) goto fail;
    static const char *const required[] = {"error.html", "index.html"};
    for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++) {
        if (!tmpl_env_has(app->tmpl, required[i])) {
            echo_err_set(err, "templates/%s is missing", required[i]);
            goto fail;
        }
    }
    struct http_static_options so = {
        .max_age = 3600, .long_cache_prefix = "vendor/", .long_max_age = 86400};
    app->statics = http_static_new("static", &so, err);
    if (!app->statics) goto fail;
    app->router = http_router_new();
    http_router_set_error_handler(app->router, render_error, app);
    if (http_router_mount_static(app->router, "/static/", app->statics, err) != 0) goto fail;
    app->rt = sio_server_mount(cfg, app->router, realtime_auth, app, err);
    if (!app->rt) goto fail;
    web_app_add_stop_hook(app, sio_http_stop_hook, app->rt);
    if (web_pages_register(app, err) != 0) goto fail;
    /* Limits before auth: a refused request costs no database work. */
    if (web_limits_register(app, err) != 0) goto fail;
    if (web_auth_register(app, err) != 0) goto fail;
    /* After auth: the profile's context hook needs the user. */
    if (web_profile_register(app, err) != 0) goto fail;
    if (web_feedback_register(app, err) != 0) goto fail;
    if (web_admin_register(app, err) != 0) goto fail;
    if (web_oauth_register(app, err) != 0) goto fail;
    web_app_set_user_fn(app, session_user, NULL);
    if (web_chat_register(app, err) != 0) goto fail;
    return app;
fail:
    web_app_free(app);
    return NULL;
}

void web_app_free(web_app *app)
{
    if (!app) return;
    /* After the HTTP server stopped (web_app_run): the chat ends its answers
     * (stored as cancelled) before Socket.IO goes, then the accounts area. */
    web_chat_unregister(app);
    sio_server_free(app->rt);
    web_admin_unregister(app);
    web_oauth_unregister(app);
    web_profile_unregister(app);
    web_auth_unregister(app);
    web_limits_unregister(app);
    http_router_free(app->router);
    http_static_free(app->statics);
    tmpl_env_free(app->tmpl);
    if (app->stopfd >= 0) close(app->stopfd);
    free(app->ctx_hooks);
    free(app->stop_hooks);
    free(app);
}

int web_app_add_test_routes(web_app *app, struct echo_err *err)
{
    if (config_is_production(app->cfg)) {
        echo_err_set(err, "test routes are refused when ECHO_ENV=production");
        return -1;
    }
    log_warn("serving the /_test/ routes (for the test suite only)");
    return http_add_test_routes(app->router, err);
}

void web_app_add_stop_hook(web_app *app, http_stop_fn fn, void *arg)
{
    app->stop_hooks = xrealloc(app->stop_hooks, (app->nstop_hooks + 1) * sizeof(*app->stop_hooks));
    app->stop_hooks[app->nstop_hooks].fn = fn;
    app->stop_hooks[app->nstop_hooks].arg = arg;
    app->nstop_hooks++;
}

void web_app_stop(web_app *app)
{
    uint64_t one = 1;
    ssize_t w = write(app->stopfd, &one, sizeof(one));
    (void)w;
}

const config *web_app_config(const web_app *app)
{
    return app->cfg;
}

tmpl_env *web_app_templates(web_app *app)
{
    return app->tmpl;
}

http_router *web_app_router(web_app *app)
{
    return app->router;
}

int web_app_run(web_app *app, struct echo_err *err)
{
    sigset_t stop_set;
    block_stop_signals(&stop_set);
    signal(SIGPIPE, SIG_IGN);
    int sfd = signalfd(-1, &stop_set, SFD_CLOEXEC);
    if (sfd < 0) {
        echo_err_set(err, "signalfd: %s", strerror(errno));
        return -1;
    }
    struct http_server_options o;
    struct strbuf csp;
    strbuf_init(&csp);
    http_server_options_from_config(&o, app->cfg, &csp);
    http_server *srv = http_server_new(&o, app->router, err);
    if (!srv) {
        strbuf_deinit(&csp);
        close(sfd);
        return -1;
    }
    for (size_t i = 0; i < app->nstop_hooks; i++)
        http_server_add_stop_hook(srv, app->stop_hooks[i].fn, app->stop_hooks[i].arg);
    log_info("Echo is serving on http://%s%s%s:%u/ (%u threads; Ctrl-C stops)",
             strchr(o.host, ':') ? "[" : "", o.host, strchr(o.host, ':') ? "]" : "",
             http_server_port(srv), o.threads);

    struct pollfd pfd[2] = {{sfd, POLLIN, 0}, {app->stopfd, POLLIN, 0}};
    const char *why = "stop requested";
    for (;;) {
        int n = poll(pfd, 2, -1);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            log_error("poll: %s", strerror(errno));
            break;
        }
        if (pfd[0].revents & POLLIN) {
            struct signalfd_siginfo si;
            if (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
                why = si.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM";
            break;
        }
        if (pfd[1].revents & POLLIN) break;
    }
    log_info("%s: finishing requests in flight, then stopping", why);
    http_server_stop(srv, STOP_GRACE_MS);
    http_server_free(srv);
    log_info("stopped");
    strbuf_deinit(&csp);
    close(sfd);
    return 0;
}
