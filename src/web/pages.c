/*
 * pages.c - the site's plain pages: the landing page (GET /, templates/
 * index.html; the chat page instead for a logged-in user) and the health check (GET /healthz, JSON for load balancers
 * and the tests: {"status": "ok", "uptime_s": N}).
 */
#include "web/app.h"
#include "web/auth.h"
#include "web/chat.h"

static double started_at;

static void home(http_request *req, http_response *res, void *arg)
{
    web_app *app = arg;
    if (web_user(req)) {
        web_chat_home(app, req, res);
        return;
    }
    json_t *ctx = web_app_context(app, req, "home");
    web_app_render(app, req, res, HTTP_STATUS_OK, "index.html", ctx);
    json_decref(ctx);
}

static void healthz(http_request *req, http_response *res, void *arg)
{
    (void)req;
    (void)arg;
    json_t *j =
        json_pack("{s:s,s:I}", "status", "ok", "uptime_s", (json_int_t)(time_now_s() - started_at));
    http_response_json(res, j);
    /* A health check must show the state now, never a cached one. */
    http_response_set_header(res, "Cache-Control", "no-store");
    json_decref(j);
}

int web_pages_register(web_app *app, struct echo_err *err)
{
    started_at = time_now_s();
    http_router *r = web_app_router(app);
    if (http_router_add(r, HTTP_GET, "/", home, app, err) != 0 ||
        http_router_add(r, HTTP_GET, "/healthz", healthz, app, err) != 0)
        return -1;
    return 0;
}
