/*
 * mount.c - the HTTP side of /socket.io/: turns http requests into Engine.IO
 * calls (eio.h) on worker threads.
 *
 * Polling requests are deferred (http_defer): the loop thread answers them
 * through an eio_reply whose context, struct poll_reply, is shared with the
 * http layer's on_close callback and therefore reference-counted (http's
 * contract: after a completion that returns HTTP_ERR_GONE, on_close may still
 * be running). WebSocket handshakes are checked here (RFC 6455 4.2.1), the
 * Engine.IO route decides whether the sid is valid, and the upgraded socket is
 * handed to the loop.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "realtime/packet.h"
#include "realtime/sio_internal.h"
#include "realtime/ws.h"

struct poll_reply {
    atomic_int refs; /* the completion's and on_close's */
    http_deferred *d;
    eio_server *eio;
    char sid[EIO_SID_LEN + 1];
    bool is_get;
};

/* Drops n references; the last one frees. */
static void reply_unref(struct poll_reply *r, int n)
{
    if (atomic_fetch_sub(&r->refs, n) == n) free(r);
}

static void reply_respond(void *ctx, int status, const char *content_type, const char *body,
                          size_t len)
{
    struct poll_reply *r = ctx;
    http_response *res = http_response_new();
    http_response_set_status(res, status);
    http_response_set_header(res, "Cache-Control", "no-store");
    http_response_body(res, content_type, body, len);
    /* Completed in time: on_close never runs, so its reference goes too.
     * Otherwise on_close has run or will, and drops its own. */
    reply_unref(r, http_deferred_complete(r->d, res) == 0 ? 2 : 1);
}

static void gone_done(void *ctx)
{
    reply_unref(ctx, 1);
}

static void reply_closed(http_deferred *d, enum http_close_reason why, void *arg)
{
    (void)d;
    (void)why;
    struct poll_reply *r = arg;
    if (r->is_get) {
        /* Free the session's GET slot now; the task drops on_close's reference. */
        eio_server_http_poll_gone(r->eio, r->sid, r, gone_done);
        return;
    }
    /* A POST is answered by the loop shortly anyway. */
    reply_unref(r, 1);
}

/* Suspends the request; the eio_reply answers it later from any thread. */
static bool defer_reply(sio_server *srv, http_request *req, const char *sid, bool is_get,
                        struct eio_reply *out)
{
    struct poll_reply *r = xcalloc(1, sizeof(*r));
    atomic_init(&r->refs, 2);
    r->eio = srv->eio;
    r->is_get = is_get;
    if (sid) snprintf(r->sid, sizeof(r->sid), "%s", sid);
    r->d = http_defer(req, reply_closed, r);
    if (!r->d) {
        free(r);
        return false;
    }
    out->respond = reply_respond;
    out->ctx = r;
    return true;
}

static void answer_json(http_response *res, int status, const char *body)
{
    http_response_set_status(res, status);
    http_response_set_header(res, "Cache-Control", "no-store");
    http_response_body(res, "application/json", body, strlen(body));
}

/* True when a comma-separated header value contains `token` (case-insensitive). */
static bool header_has_token(const char *value, const char *token)
{
    if (!value) return false;
    size_t tl = strlen(token);
    const char *p = value;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *start = p;
        while (*p && *p != ',')
            p++;
        const char *end = p;
        while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
            end--;
        if ((size_t)(end - start) == tl && !strncasecmp(start, token, tl)) return true;
    }
    return false;
}

/* ---- WebSocket hand-over ---- */

static void upgraded_release(void *arg)
{
    http_upgraded_close(arg);
}

static void on_upgraded(http_upgraded *u, int fd, const void *extra, size_t extra_len, void *arg)
{
    struct sio_upgrade *up = arg;
    sio_server *srv = up->srv;
    pthread_mutex_lock(&srv->upgrades_lock);
    if (up->prev)
        up->prev->next = up->next;
    else
        srv->upgrades = up->next;
    if (up->next) up->next->prev = up->prev;
    pthread_mutex_unlock(&srv->upgrades_lock);
    eio_server_ws_attach(srv->eio, up->sid[0] ? up->sid : NULL, up->user_id, fd, extra, extra_len,
                         upgraded_release, u);
    free(up);
}

static void handle_websocket(sio_server *srv, http_request *req, http_response *res,
                             const char *sid)
{
    const char *version = http_request_header(req, "Sec-WebSocket-Version");
    if (!version || strcmp(version, "13") != 0) {
        /* RFC 6455 4.4: say which version we speak. */
        http_response_set_header(res, "Sec-WebSocket-Version", "13");
        answer_json(res, 400, "{\"code\":3,\"message\":\"Bad request\"}");
        return;
    }
    char accept[WS_ACCEPT_LEN + 1];
    if (ws_accept_key(http_request_header(req, "Sec-WebSocket-Key"), accept) != 0) {
        answer_json(res, 400, "{\"code\":3,\"message\":\"Bad request\"}");
        return;
    }
    struct sio_upgrade *up = xcalloc(1, sizeof(*up));
    up->srv = srv;
    if (sid)
        snprintf(up->sid, sizeof(up->sid), "%s", sid);
    else
        up->user_id = srv->auth ? srv->auth(req, srv->auth_ud) : 0;
    http_response_set_header(res, "Upgrade", "websocket");
    http_response_set_header(res, "Sec-WebSocket-Accept", accept);
    pthread_mutex_lock(&srv->upgrades_lock);
    up->next = srv->upgrades;
    if (up->next) up->next->prev = up;
    srv->upgrades = up;
    pthread_mutex_unlock(&srv->upgrades_lock);
    if (http_response_upgrade(res, on_upgraded, up) != 0) {
        pthread_mutex_lock(&srv->upgrades_lock);
        if (up->prev)
            up->prev->next = up->next;
        else
            srv->upgrades = up->next;
        if (up->next) up->next->prev = up->prev;
        pthread_mutex_unlock(&srv->upgrades_lock);
        free(up);
        http_response_remove_header(res, "Upgrade");
        http_response_remove_header(res, "Sec-WebSocket-Accept");
        answer_json(res, 400, "{\"code\":3,\"message\":\"Bad request\"}");
    }
}

/* ---- the /socket.io/ handler ---- */

static void handle(http_request *req, http_response *res, void *arg)
{
    sio_server *srv = arg;
    const char *rest = http_request_mount_path(req);
    if (rest && *rest) {
        http_response_error(res, 404, NULL);
        return;
    }
    struct eio_http_request rq = {
        .method = http_request_method_name(req),
        .eio = http_request_query(req, "EIO"),
        .transport = http_request_query(req, "transport"),
        .sid = http_request_query(req, "sid"),
        .origin = http_request_header(req, "Origin"),
        .host = http_request_header(req, "Host"),
        .ws_upgrade = header_has_token(http_request_header(req, "Upgrade"), "websocket") &&
                      header_has_token(http_request_header(req, "Connection"), "upgrade"),
    };
    int status;
    const char *body = NULL;
    struct eio_reply reply;
    switch (eio_server_route(srv->eio, &rq, &status, &body)) {
    case EIO_ROUTE_ERROR:
        answer_json(res, status, body);
        return;
    case EIO_ROUTE_POLL_OPEN: {
        int64_t user = srv->auth ? srv->auth(req, srv->auth_ud) : 0;
        if (!defer_reply(srv, req, NULL, false, &reply)) break;
        eio_server_http_open(srv->eio, user, reply);
        return;
    }
    case EIO_ROUTE_POLL_GET:
        if (!defer_reply(srv, req, rq.sid, true, &reply)) break;
        eio_server_http_poll(srv->eio, rq.sid, reply);
        return;
    case EIO_ROUTE_POLL_POST: {
        size_t len = 0;
        const char *data = http_request_body(req, &len);
        if (!defer_reply(srv, req, rq.sid, false, &reply)) break;
        eio_server_http_post(srv->eio, rq.sid, data, len, reply);
        return;
    }
    case EIO_ROUTE_WS_OPEN:
        handle_websocket(srv, req, res, NULL);
        return;
    case EIO_ROUTE_WS_UPGRADE:
        handle_websocket(srv, req, res, rq.sid);
        return;
    }
    http_response_error(res, 500, NULL);
}

int sio_mount(sio_server *srv, http_router *r, struct echo_err *err)
{
    return http_router_mount(r, "/socket.io/", handle, srv, err);
}
