/*
 * realtime.h - Echo's realtime layer: Socket.IO v5 over Engine.IO v4 (HTTP
 * long-polling and WebSocket, RFC 6455 via wslay), served at /socket.io/.
 *
 * How it fits: the web layer creates one sio_server, tells it how to
 * authenticate a request (its session cookie), registers its event handlers
 * (send_message, stop_generation, ...) and its connect/disconnect hooks, then
 * mounts it on the HTTP router and adds its stop hook to the HTTP server. The
 * realtime layer knows nothing of sessions, the database or the model.
 *
 *     sio_server *rt = sio_server_mount(cfg, router, web_auth_user, app, &err);
 *     sio_on(rt, "send_message", chat_send, app);
 *     sio_on_disconnect(rt, chat_disconnected, app);
 *     http_server *hs = http_server_new(&ho, router, &err);
 *     http_server_add_stop_hook(hs, sio_http_stop_hook, rt);
 *     ...
 *     http_server_stop(hs, 2000); http_server_free(hs); sio_server_free(rt);
 *
 * Threads: all connections live on one realtime thread. Event handlers and
 * the connect/disconnect hooks run on that thread, one at a time: they must
 * not block for long (hand slow work to another thread and answer later with
 * sio_emit_* / sio_ack_reply, which any thread may call). At shutdown the
 * last disconnect hooks run on the thread calling http_server_stop (the
 * realtime thread has stopped by then: still never two at once). sio_socket
 * pointers are valid only inside a callback; keep sio_socket_id() to reach
 * the socket later. The authentication callback runs on HTTP worker threads.
 * Registration (sio_set_auth, sio_on, sio_on_*) happens on one thread before
 * the HTTP server starts serving.
 */
#ifndef ECHO_REALTIME_H
#define ECHO_REALTIME_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/core.h"
#include "http/http.h"

typedef struct sio_server sio_server;
typedef struct sio_socket sio_socket;

struct sio_options {
    unsigned ping_interval_ms;   /* Engine.IO pingInterval (25000) */
    unsigned ping_timeout_ms;    /* Engine.IO pingTimeout (20000) */
    size_t max_payload;          /* Engine.IO maxPayload (1000000 bytes) */
    unsigned connect_timeout_ms; /* a session must send CONNECT within this (45000) */
    const char *site_origin;     /* the only Origin accepted when set (ECHO_SITE_ORIGIN) */
    const char *default_origin;  /* else http://HOST:PORT, or the request's own Host, is accepted */
    bool test_events;            /* ECHO_TEST_EVENTS: the test-only events (see below) */
};

/*
 * Defaults, then ECHO_SITE_ORIGIN, ECHO_HOST/ECHO_PORT (default_origin) and
 * ECHO_TEST_EVENTS (ignored, with a warning, in production). Strings point
 * into cfg and `buf` (which must outlive o; sio_server_new copies them).
 */
void sio_options_init(struct sio_options *o);
void sio_options_from_config(struct sio_options *o, const config *cfg, struct strbuf *buf);

/* Creates the server and starts its thread. NULL with err set on failure. */
sio_server *sio_server_new(const struct sio_options *o, struct echo_err *err);
/* Stops the thread (if sio_http_stop_hook has not) and frees everything. Call
 * after http_server_stop, and after the last thread that may call sio_emit_*
 * has stopped. */
void sio_server_free(sio_server *srv);

/* ---- registration (before the HTTP server serves) ---- */

/*
 * Authentication: called on an HTTP worker thread for each Engine.IO
 * handshake (the first polling GET, or a WebSocket-only upgrade) with the
 * request (cookies, headers). Returns the user id (> 0), or 0 for "not logged
 * in": the connection then opens at the Engine.IO level but its Socket.IO
 * CONNECT is answered CONNECT_ERROR {"message":"unauthorized"}. Without a
 * callback every CONNECT is refused.
 */
typedef int64_t (*sio_auth_fn)(http_request *req, void *ud);
void sio_set_auth(sio_server *srv, sio_auth_fn fn, void *ud);

/*
 * The usual set-up in one call: sio_options_from_config, sio_server_new,
 * sio_set_auth(auth, auth_ud) and sio_mount(r). NULL with err set on failure.
 */
sio_server *sio_server_mount(const config *cfg, http_router *r, sio_auth_fn auth, void *auth_ud,
                             struct echo_err *err);

/* The acknowledgement a client asked for with an event: a small value that
 * may be copied and answered later from any thread with sio_ack_reply. */
struct sio_ack {
    uint64_t socket;
    int64_t id;
};

/*
 * An event handler. `args` is the JSON array of the event's arguments (the
 * event name removed; borrowed: json_incref to keep it). `ack` is NULL unless
 * the client asked for an acknowledgement.
 */
typedef void (*sio_event_fn)(sio_server *srv, sio_socket *sock, json_t *args,
                             const struct sio_ack *ack, void *ud);
/* Registers the handler of an event name (one per name; -1 if the name is
 * taken or reserved). Events without a handler are ignored. */
int sio_on(sio_server *srv, const char *event, sio_event_fn fn, void *ud);

/* Called once a socket is connected (CONNECT accepted). */
typedef void (*sio_connect_fn)(sio_server *srv, sio_socket *sock, void *ud);
void sio_on_connect(sio_server *srv, sio_connect_fn fn, void *ud);
/* Called once when a connected socket goes: client disconnect, transport
 * closed, ping timeout, malformed packet, server shutdown (reason says
 * which). Cancel the user's work here. */
typedef void (*sio_disconnect_fn)(sio_server *srv, sio_socket *sock, const char *reason, void *ud);
void sio_on_disconnect(sio_server *srv, sio_disconnect_fn fn, void *ud);

/* ---- HTTP ---- */

/* Mounts /socket.io/ (polling GET/POST and the WebSocket upgrade) on r. */
int sio_mount(sio_server *srv, http_router *r, struct echo_err *err);
/* For http_server_add_stop_hook(hs, sio_http_stop_hook, srv): ends every
 * connection (disconnect hooks run, held polls are answered, WebSockets are
 * closed) and stops the realtime thread, as http_server_stop requires. */
void sio_http_stop_hook(http_server *hs, void *srv);

/* ---- sockets (realtime thread, inside callbacks) ---- */

/* A number naming the socket for other threads (never reused). */
uint64_t sio_socket_id(const sio_socket *s);
/* The Socket.IO id sent to the client (20 characters). */
const char *sio_socket_sid(const sio_socket *s);
/* The authenticated user. */
int64_t sio_socket_user(const sio_socket *s);
/* "polling" or "websocket". */
const char *sio_socket_transport(const sio_socket *s);
/* Disconnects the socket from the server side (DISCONNECT packet, then the
 * connection closes); the disconnect hook runs with "server disconnect". */
void sio_socket_disconnect(sio_socket *s);

/* ---- emitting (any thread) ---- */

/*
 * Emits `event` with one argument (NULL: none) to one socket / to every
 * connected socket of a user (all their tabs). The JSON is serialised in the
 * calling thread (not stolen) and sent in order by the realtime thread.
 * Returns 0 when queued, -1 if arg cannot be serialised. A socket that is gone
 * by then is skipped silently.
 */
int sio_emit_socket(sio_server *srv, uint64_t socket, const char *event, const json_t *arg);
int sio_emit_user(sio_server *srv, int64_t user_id, const char *event, const json_t *arg);
/* Answers an acknowledgement with one argument (NULL: none). Call at most
 * once per ack. 0 when queued, -1 if arg cannot be serialised. */
int sio_ack_reply(sio_server *srv, const struct sio_ack *ack, const json_t *arg);

/* Disconnects every socket of a user (e.g. at logout), as
 * sio_socket_disconnect does. Any thread; takes effect on the realtime thread. */
void sio_disconnect_user(sio_server *srv, int64_t user_id);

/* Sockets connected right now (for tests and the admin page). */
size_t sio_server_socket_count(sio_server *srv);

/*
 * Test-only events (options.test_events, from ECHO_TEST_EVENTS=1, never in
 * production), so the end-to-end tests can drive the protocol without the
 * chat layer:
 *   "echo"       acks its first argument back and emits "echo" with it;
 *   "echo_user"  emits "echo" with its first argument to all the user's sockets;
 *   "disconnect_me"  disconnects the socket from the server side.
 * And a CONNECT whose auth object is {"test_user": N} (N > 0) is accepted as
 * user N when the authentication callback said "not logged in".
 */

#endif
