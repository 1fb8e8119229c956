/*
 * ws.h - WebSocket connections (RFC 6455) on the realtime loop, framed by
 * wslay: the server side of an upgraded HTTP connection.
 *
 * The HTTP layer answers the handshake (101 with the Sec-WebSocket-Accept of
 * ws_accept_key) and hands over the socket plus any bytes it already read; a
 * ws_conn then owns the socket on the loop thread: non-blocking reads and
 * writes, reassembly of fragmented messages, automatic pong, the close
 * handshake (with a timeout), UTF-8 checking of text messages and a maximum
 * message size (close 1009 beyond it).
 *
 * Threads: ws_accept_key is pure and callable from any thread; everything
 * else runs on the loop thread only. Callbacks never run inside a ws_* call
 * made by the owner: they come from the loop's own dispatch.
 */
#ifndef ECHO_REALTIME_WS_H
#define ECHO_REALTIME_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/core.h"
#include "realtime/loop.h"

typedef struct ws_conn ws_conn;

/* Close codes used here (RFC 6455 section 7.4.1). */
enum {
    WS_CLOSE_NORMAL = 1000,
    WS_CLOSE_GOING_AWAY = 1001,
    WS_CLOSE_PROTOCOL_ERROR = 1002,
    WS_CLOSE_ABNORMAL = 1006, /* never sent: the connection ended without a close frame */
    WS_CLOSE_INVALID_DATA = 1007,
    WS_CLOSE_POLICY = 1008,
    WS_CLOSE_TOO_BIG = 1009,
};

struct ws_handler {
    /* One complete message; text messages are valid UTF-8. data is only
     * valid during the call. */
    void (*on_message)(ws_conn *c, bool binary, const char *data, size_t len, void *ud);
    /* The connection ended (peer closed, error, too big, timeout). `code` is
     * the close code received or sent, WS_CLOSE_ABNORMAL without one. c is
     * freed after this returns. Not called after the owner's ws_conn_close. */
    void (*on_close)(ws_conn *c, int code, void *ud);
};

/* The live connections of one owner, so that shutdown can end them all. */
struct ws_set {
    ws_conn *head;
    size_t count;
};

struct ws_options {
    size_t max_message;        /* largest message received (bytes) */
    size_t max_queued;         /* largest outbound backlog before ws_conn_send refuses */
    unsigned close_timeout_ms; /* how long a closing connection may linger */
    struct ws_set *set;        /* optional: where the connection registers itself */
};

/* Length of a Sec-WebSocket-Accept value (base64 of a SHA-1 digest). */
#define WS_ACCEPT_LEN 28

/*
 * Computes Sec-WebSocket-Accept = base64(SHA-1(key + GUID)) (RFC 6455 4.2.2)
 * into out (NUL-terminated). The key must be the base64 of 16 bytes, as the
 * RFC requires; anything else returns -1 (answer 400).
 */
int ws_accept_key(const char *key, char out[WS_ACCEPT_LEN + 1]);

/*
 * Takes over fd, an upgraded connection, with `pre_len` bytes the HTTP layer
 * already read past the request. When the connection ends, release(rel_ud)
 * gives the socket back to the HTTP layer (which closes it); with a NULL
 * release the fd is closed here. On failure the fd is released too and NULL
 * is returned.
 */
ws_conn *ws_conn_new(rt_loop *loop, int fd, const void *pre, size_t pre_len,
                     const struct ws_options *opt, void (*release)(void *rel_ud), void *rel_ud,
                     const struct ws_handler *h, void *ud, struct echo_err *err);

/* Points the connection's callbacks at a new owner. */
void ws_conn_set_handler(ws_conn *c, const struct ws_handler *h, void *ud);

/* Queues one text or binary message. Returns -1 when the connection is
 * closing or its backlog exceeds max_queued: the owner should close it. */
int ws_conn_send(ws_conn *c, bool binary, const void *data, size_t len);

/* Starts the close handshake (code, optional reason) and detaches the owner:
 * no callback follows, the connection frees itself when done. */
void ws_conn_close(ws_conn *c, uint16_t code, const char *reason);

/* Bytes queued for sending. */
size_t ws_conn_backlog(const ws_conn *c);

/* Ends every connection of the set at once (shutdown): sockets released, no
 * callbacks. */
void ws_set_abort_all(struct ws_set *set);

#endif
