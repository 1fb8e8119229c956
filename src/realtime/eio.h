/*
 * eio.h - the Engine.IO v4 server: sessions, the long-polling transport, the
 * WebSocket transport, the upgrade between them and the heartbeat.
 *
 * Sessions live on the realtime loop thread (loop.h). HTTP worker threads
 * enter through the eio_server_http_* functions below, which only classify
 * the request and post work to the loop; the loop answers through an
 * eio_reply, the abstraction of a suspended HTTP response (mount.c implements
 * it over http's deferred responses, the unit tests with a recorder).
 *
 * The layer above (Socket.IO, sio_server.c) sees sessions through struct
 * eio_events and eio_session_*; those run on the loop thread only.
 *
 * Threads: eio_server_new/free from the owner; eio_server_route and
 * eio_server_http_* from any thread; eio_session_* on the loop thread.
 */
#ifndef ECHO_REALTIME_EIO_H
#define ECHO_REALTIME_EIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/core.h"
#include "realtime/loop.h"
#include "realtime/ws.h"

typedef struct eio_server eio_server;
typedef struct eio_session eio_session;

/* Length of a session id: 15 random bytes in unpadded base64url. */
#define EIO_SID_LEN 20

/*
 * A held HTTP response. respond() sends it and releases the reply; the server
 * calls it exactly once for every reply it was given, from any thread (the
 * loop's, usually). ctx is the implementation's handle.
 */
struct eio_reply {
    void (*respond)(void *ctx, int status, const char *content_type, const char *body, size_t len);
    void *ctx;
};

struct eio_options {
    unsigned ping_interval_ms;  /* 25000 */
    unsigned ping_timeout_ms;   /* 20000 */
    size_t max_payload;         /* 1000000: largest POST body / WebSocket message */
    size_t max_backlog;         /* largest outbound backlog of one session before it is closed */
    const char *site_origin;    /* ECHO_SITE_ORIGIN, or NULL */
    const char *default_origin; /* http://HOST:PORT, used when site_origin is NULL */
};

/* What the layer above is told, on the loop thread. */
struct eio_events {
    void (*on_open)(eio_session *s, void *ud);
    /* One message packet; text is valid UTF-8. data is valid during the call. */
    void (*on_message)(eio_session *s, bool binary, const char *data, size_t len, void *ud);
    /* The session ended for a reason other than the upper layer's own
     * eio_session_close (client close, transport error, ping timeout,
     * shutdown). s is freed after this iteration of the loop. */
    void (*on_close)(eio_session *s, const char *reason, void *ud);
};

/* Creates the server on a loop (not owned; the caller starts and stops it).
 * The strings in opt are copied. */
eio_server *eio_server_new(rt_loop *loop, const struct eio_options *opt,
                           const struct eio_events *ev, void *ud);
/*
 * Closes every session (held polls are answered with a close packet, sockets
 * closed; on_close is called with "server shutdown"). Call with the loop
 * thread stopped (rt_loop_stop), or on the loop thread.
 */
void eio_server_close_all(eio_server *srv);
/* WebSockets still open (closing ones included), and ending them at once;
 * for the shutdown sequence, like eio_server_close_all. */
size_t eio_server_ws_count(eio_server *srv);
void eio_server_abort_ws(eio_server *srv);
/* Frees the server; its sessions must already be closed (eio_server_close_all). */
void eio_server_free(eio_server *srv);

/* ---- the HTTP side (any thread) ---- */

/* The parts of a /socket.io/ request the Engine.IO server looks at. */
struct eio_http_request {
    const char *method;    /* "GET", "POST", ... */
    const char *eio;       /* query EIO */
    const char *transport; /* query transport */
    const char *sid;       /* query sid, NULL for a handshake */
    const char *origin;    /* Origin header or NULL */
    const char *host;      /* Host header or NULL */
    bool ws_upgrade;       /* Upgrade: websocket and Connection: upgrade present */
};

enum eio_route {
    EIO_ROUTE_ERROR,      /* answer status/body now */
    EIO_ROUTE_POLL_OPEN,  /* polling handshake: eio_server_http_open */
    EIO_ROUTE_POLL_GET,   /* eio_server_http_poll */
    EIO_ROUTE_POLL_POST,  /* eio_server_http_post */
    EIO_ROUTE_WS_OPEN,    /* WebSocket-only handshake: answer 101, then eio_server_ws_attach */
    EIO_ROUTE_WS_UPGRADE, /* upgrade of a polling session: 101, then eio_server_ws_attach */
};

/*
 * Classifies a request and checks it: protocol version, transport, method,
 * Origin and (for requests naming a session) that the session exists. On
 * EIO_ROUTE_ERROR, *status and *body (a static Engine.IO error JSON such as
 * {"code":1,"message":"Session ID unknown"}) say what to answer.
 */
enum eio_route eio_server_route(eio_server *srv, const struct eio_http_request *rq, int *status,
                                const char **body);

/* True when an Origin header value is acceptable (see eio_options). */
bool eio_origin_allowed(const char *site_origin, const char *default_origin, const char *origin,
                        const char *host);

/* Starts a polling session for `user_id` (0: not authenticated) and answers the
 * handshake through reply. */
void eio_server_http_open(eio_server *srv, int64_t user_id, struct eio_reply reply);
/* A long-poll GET: answered when packets are ready, at the next ping, or at close. */
void eio_server_http_poll(eio_server *srv, const char *sid, struct eio_reply reply);
/* The client gave up on a held GET (reply ctx as given): if it is still the
 * session's held GET it is answered with a noop at once (freeing the slot for
 * the client's next GET). done(reply_ctx) runs afterwards, on the loop thread
 * (or at once when the loop has stopped), so reply_ctx can be compared safely. */
void eio_server_http_poll_gone(eio_server *srv, const char *sid, void *reply_ctx,
                               void (*done)(void *reply_ctx));
/* A POST of packets: answered "ok", or 400 (malformed: the session closes), or
 * 413 beyond max_payload (the session closes). body is copied. */
void eio_server_http_post(eio_server *srv, const char *sid, const char *body, size_t len,
                          struct eio_reply reply);
/*
 * Hands over an upgraded socket (after the 101 answer): for a WebSocket-only
 * handshake (sid NULL; user_id from authentication) or for the upgrade of a
 * polling session. release(rel_ud) gives the socket back to HTTP when done.
 */
void eio_server_ws_attach(eio_server *srv, const char *sid, int64_t user_id, int fd,
                          const void *pre, size_t pre_len, void (*release)(void *rel_ud),
                          void *rel_ud);

/* ---- sessions (loop thread) ---- */

const char *eio_session_sid(const eio_session *s);
int64_t eio_session_user(const eio_session *s);
void eio_session_set_data(eio_session *s, void *data);
void *eio_session_data(const eio_session *s);
/* Sends a text message packet. -1 when the session is closing or its backlog
 * is over the limit (the caller should close it). */
int eio_session_send(eio_session *s, const char *data, size_t len);
/* Closes the session; no on_close follows. */
void eio_session_close(eio_session *s, const char *reason);
/* "polling" or "websocket". */
const char *eio_session_transport(const eio_session *s);
size_t eio_server_session_count(eio_server *srv);

#endif
