/*
 * deferred.c - the handle of a request answered later (http.h: http_defer,
 * http_deferred_complete). The states and who moves between them:
 *
 *   ARMED      --complete-->  COMPLETED / ABANDONED  (handler still running;
 *                                                     server.c queues at once)
 *   ARMED      --server.c-->  SUSPENDED             (handler returned; socket
 *                                                     suspended and watched)
 *   SUSPENDED  --complete-->  COMPLETED / ABANDONED  + resume
 *   SUSPENDED  --monitor-->   GONE (on_close)        + resume (to close)
 *   any        --request end-> FINISHED
 *
 * Every transition happens under d->mu, so complete and a hang-up cannot both
 * win: exactly one of "complete returns 0" and "on_close is called" happens.
 * on_close itself runs without the lock (it may call complete). The
 * connection is resumed only by the side that moved the handle out of
 * SUSPENDED, under d->mu in the same step: while it is suspended
 * libmicrohttpd keeps the connection alive, so d->conn is valid when we
 * resume it, and no handle is ever "out of SUSPENDED but not resumed" (the
 * daemon aborts if it is stopped with a suspended connection).
 *
 * References: one for the owner (dropped by complete), one for the request
 * (dropped when the request ends), and a temporary one whenever the monitor
 * works on the handle.
 */
#include <string.h>

#include "http/internal.h"

http_deferred *http_defer(http_request *req, http_deferred_close_fn on_close, void *arg)
{
    if (req->deferred || req->res->upgrade_fn || !req->conn) {
        log_error("http: http_defer called twice or after an upgrade");
        return NULL;
    }
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci) {
        log_error("http: cannot defer: no socket for the connection");
        return NULL;
    }
    struct http_deferred *d = xcalloc(1, sizeof(*d));
    pthread_mutex_init(&d->mu, NULL);
    d->state = DEF_ARMED;
    atomic_init(&d->refs, 2);
    d->srv = req->srv;
    d->conn = req->conn;
    d->fd = ci->connect_fd;
    d->on_close = on_close;
    d->arg = arg;
    req->deferred = d;
    return d;
}

void deferred_unref(struct http_deferred *d)
{
    if (atomic_fetch_sub(&d->refs, 1) != 1) return;
    http_response_free(d->res);
    pthread_mutex_destroy(&d->mu);
    free(d);
}

int http_deferred_complete(http_deferred *d, http_response *res)
{
    if (!d) {
        http_response_free(res);
        return HTTP_ERR_INVALID;
    }
    int rc = 0;
    pthread_mutex_lock(&d->mu);
    switch (d->state) {
    case DEF_ARMED:
        d->res = res;
        d->state = res ? DEF_COMPLETED : DEF_ABANDONED;
        break;
    case DEF_SUSPENDED:
        monitor_unwatch(d->srv->mon, d);
        d->res = res;
        d->state = res ? DEF_COMPLETED : DEF_ABANDONED;
        /* Resumed under the lock: the server's stop sequence relies on no
         * handle being half-way between SUSPENDED and resumed. */
        MHD_resume_connection(d->conn);
        break;
    default:
        http_response_free(res);
        rc = HTTP_ERR_GONE;
        break;
    }
    pthread_mutex_unlock(&d->mu);
    deferred_unref(d);
    return rc;
}

void deferred_close(struct http_deferred *d, enum http_close_reason why)
{
    pthread_mutex_lock(&d->mu);
    if (d->state != DEF_SUSPENDED) {
        pthread_mutex_unlock(&d->mu);
        return;
    }
    monitor_unwatch(d->srv->mon, d);
    d->state = DEF_GONE;
    /* Resuming lets the daemon close the connection; the request may be gone
     * by the time on_close runs, which is why on_close gets only d and arg
     * (d itself is kept alive by the caller's reference). */
    MHD_resume_connection(d->conn);
    pthread_mutex_unlock(&d->mu);
    if (d->on_close) d->on_close(d, why, d->arg);
}
