/*
 * ws.c - WebSocket connections on the realtime loop (see ws.h).
 *
 * wslay's event API does the framing: we give it non-blocking recv/send
 * callbacks and ask after every step what it wants (read, write, or nothing
 * more, which means the close handshake is over). wslay already answers pings,
 * reassembles fragments, enforces the maximum message length (close 1009) and
 * checks the UTF-8 of text messages (close 1007); the message callback checks
 * UTF-8 once more with core's utf8_valid so that the promise "text is valid
 * UTF-8" made to the layers above does not rest on a library detail.
 *
 * A connection never calls its owner back from inside a call the owner made:
 * sends only queue and ask the loop for EPOLLOUT, and the first read of bytes
 * the HTTP layer had already consumed is started by a zero-delay timer.
 */
#include <errno.h>
#include <fcntl.h>
#include <nettle/sha1.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <wslay/wslay.h>

#include "realtime/ws.h"

/* RFC 6455 section 1.3. */
static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

struct ws_conn {
    rt_loop *loop;
    struct rt_watch watch;
    wslay_event_context_ptr ctx;
    uint32_t interest;

    char *pre; /* bytes read by the HTTP layer past the request */
    size_t pre_len, pre_off;

    void (*release)(void *rel_ud);
    void *rel_ud;

    const struct ws_handler *h;
    void *ud;

    size_t max_queued;
    unsigned close_timeout_ms;
    struct rt_timer kick;        /* processes pre-read bytes once the owner has c */
    struct rt_timer close_timer; /* bounds the close handshake */
    bool closing;                /* a close frame is queued or was sent */
    bool finished;
    bool close_pending; /* the owner's close waits for queued messages */
    uint16_t close_code_pending;
    char close_reason[124];
    struct ws_set *set;
    ws_conn *set_prev, *set_next;
};

int ws_accept_key(const char *key, char out[WS_ACCEPT_LEN + 1])
{
    /* The key is base64 of 16 random bytes: 24 characters with "==" padding. */
    unsigned char raw[18];
    size_t raw_len = 0;
    if (!key || strlen(key) != 24) return -1;
    if (sodium_base642bin(raw, sizeof(raw), key, 24, NULL, &raw_len, NULL,
                          sodium_base64_VARIANT_ORIGINAL) != 0 ||
        raw_len != 16)
        return -1;
    struct sha1_ctx sha;
    uint8_t digest[SHA1_DIGEST_SIZE];
    sha1_init(&sha);
    sha1_update(&sha, 24, (const uint8_t *)key);
    sha1_update(&sha, sizeof(ws_guid) - 1, (const uint8_t *)ws_guid);
    sha1_digest(&sha, sizeof(digest), digest);
    sodium_bin2base64(out, WS_ACCEPT_LEN + 1, digest, sizeof(digest),
                      sodium_base64_VARIANT_ORIGINAL);
    return 0;
}

/* ---- wslay callbacks ---- */

static ssize_t recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags, void *user)
{
    (void)flags;
    ws_conn *c = user;
    if (c->pre_off < c->pre_len) {
        size_t n = c->pre_len - c->pre_off;
        if (n > len) n = len;
        memcpy(buf, c->pre + c->pre_off, n);
        c->pre_off += n;
        if (c->pre_off == c->pre_len) {
            free(c->pre);
            c->pre = NULL;
            c->pre_len = c->pre_off = 0;
        }
        return (ssize_t)n;
    }
    ssize_t r;
    do {
        r = recv(c->watch.fd, buf, len, 0);
    } while (r < 0 && errno == EINTR);
    if (r < 0) {
        wslay_event_set_error(ctx, (errno == EAGAIN || errno == EWOULDBLOCK)
                                       ? WSLAY_ERR_WOULDBLOCK
                                       : WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    if (r == 0) {
        /* The peer went away without finishing the close handshake. */
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    return r;
}

static ssize_t send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                       void *user)
{
    ws_conn *c = user;
    int sflags = MSG_NOSIGNAL;
    if (flags & WSLAY_MSG_MORE) sflags |= MSG_MORE;
    ssize_t r;
    do {
        r = send(c->watch.fd, data, len, sflags);
    } while (r < 0 && errno == EINTR);
    if (r < 0) {
        wslay_event_set_error(ctx, (errno == EAGAIN || errno == EWOULDBLOCK)
                                       ? WSLAY_ERR_WOULDBLOCK
                                       : WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    return r;
}

static void on_msg_cb(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
                      void *user)
{
    ws_conn *c = user;
    if (arg->opcode != WSLAY_TEXT_FRAME && arg->opcode != WSLAY_BINARY_FRAME)
        return; /* control frames: wslay answers pings and closes itself */
    bool binary = arg->opcode == WSLAY_BINARY_FRAME;
    if (!binary && !utf8_valid((const char *)arg->msg, arg->msg_length)) {
        wslay_event_queue_close(ctx, WS_CLOSE_INVALID_DATA, NULL, 0);
        wslay_event_shutdown_read(ctx);
        return;
    }
    if (c->h && !c->closing && c->h->on_message)
        c->h->on_message(c, binary, (const char *)arg->msg, arg->msg_length, c->ud);
}

static const struct wslay_event_callbacks wslay_cbs = {
    .recv_callback = recv_cb,
    .send_callback = send_cb,
    .on_msg_recv_callback = on_msg_cb,
};

/* ---- lifecycle ---- */

static void conn_free(void *p)
{
    ws_conn *c = p;
    free(c->pre);
    free(c);
}

static void release_fd(ws_conn *c)
{
    if (c->watch.fd < 0) return;
    if (c->release)
        c->release(c->rel_ud);
    else
        close(c->watch.fd);
    c->watch.fd = -1;
}

/* Ends the connection: tells the owner (unless it closed first), gives the
 * socket back and frees c after this loop iteration. */
static void finish(ws_conn *c, int code)
{
    if (c->finished) return;
    c->finished = true;
    rt_loop_unwatch(c->loop, &c->watch);
    rt_loop_timer_cancel(c->loop, &c->kick);
    rt_loop_timer_cancel(c->loop, &c->close_timer);
    const struct ws_handler *h = c->h;
    c->h = NULL;
    if (c->set) {
        if (c->set_prev)
            c->set_prev->set_next = c->set_next;
        else
            c->set->head = c->set_next;
        if (c->set_next) c->set_next->set_prev = c->set_prev;
        c->set->count--;
        c->set = NULL;
    }
    if (h && h->on_close) h->on_close(c, code, c->ud);
    wslay_event_context_free(c->ctx);
    c->ctx = NULL;
    release_fd(c);
    rt_loop_defer_free(c->loop, conn_free, c);
}

/* wslay reports 1006 (abnormal) or 1005 (no status) for "none". */
static bool real_code(uint16_t code)
{
    return code != 0 && code != WSLAY_CODE_NO_STATUS_RCVD && code != WSLAY_CODE_ABNORMAL_CLOSURE;
}

static int close_code(ws_conn *c)
{
    uint16_t code = wslay_event_get_status_code_received(c->ctx);
    if (!real_code(code)) code = wslay_event_get_status_code_sent(c->ctx);
    return real_code(code) ? code : WS_CLOSE_ABNORMAL;
}

/* wslay sends control frames ahead of queued messages, so the owner's close
 * is queued only once everything sent before it has gone out. */
static void queue_pending_close(ws_conn *c)
{
    if (!c->close_pending || wslay_event_get_queued_msg_count(c->ctx) > 0) return;
    c->close_pending = false;
    /* Fails only when a close frame is already queued or sent: nothing to add. */
    wslay_event_queue_close(c->ctx, c->close_code_pending, (const uint8_t *)c->close_reason,
                            strlen(c->close_reason));
}

static void begin_closing(ws_conn *c)
{
    if (c->closing) return;
    c->closing = true;
    rt_loop_timer_set(c->loop, &c->close_timer,
                      time_mono_ns() + (uint64_t)c->close_timeout_ms * 1000000u);
}

/* Brings the epoll interest in line with what wslay wants, or finishes. */
static void update(ws_conn *c)
{
    if (c->finished) return;
    int want_read = wslay_event_want_read(c->ctx);
    int want_write = wslay_event_want_write(c->ctx);
    if (wslay_event_get_close_sent(c->ctx) || wslay_event_get_close_received(c->ctx) || !want_read)
        begin_closing(c);
    if (!want_read && !want_write) {
        finish(c, close_code(c));
        return;
    }
    uint32_t interest = (want_read ? EPOLLIN : 0) | (want_write ? EPOLLOUT : 0);
    if (interest != c->interest) {
        if (rt_loop_rewatch(c->loop, &c->watch, interest) != 0) {
            finish(c, WS_CLOSE_ABNORMAL);
            return;
        }
        c->interest = interest;
    }
}

static void process(ws_conn *c, bool readable, bool writable)
{
    if (readable && wslay_event_want_read(c->ctx)) {
        if (wslay_event_recv(c->ctx) != 0) {
            finish(c, WS_CLOSE_ABNORMAL);
            return;
        }
    }
    /* Answers (pong, close) and owner messages queued while reading go out at
     * once when the socket takes them; otherwise EPOLLOUT brings us back. */
    (void)writable;
    for (int round = 0; round < 2; round++) {
        if (wslay_event_want_write(c->ctx)) {
            if (wslay_event_send(c->ctx) != 0) {
                finish(c, WS_CLOSE_ABNORMAL);
                return;
            }
        }
        if (!c->close_pending) break;
        queue_pending_close(c); /* the data went out: the close frame follows */
    }
    update(c);
}

static void on_io(struct rt_watch *w, uint32_t events)
{
    ws_conn *c = (ws_conn *)((char *)w - offsetof(ws_conn, watch));
    bool readable = (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) != 0;
    bool writable = (events & EPOLLOUT) != 0;
    if ((events & (EPOLLHUP | EPOLLERR)) && !wslay_event_want_read(c->ctx)) {
        finish(c, close_code(c));
        return;
    }
    process(c, readable, writable);
}

static void on_kick(struct rt_timer *t)
{
    ws_conn *c = (ws_conn *)((char *)t - offsetof(ws_conn, kick));
    process(c, true, false);
}

static void on_close_timeout(struct rt_timer *t)
{
    ws_conn *c = (ws_conn *)((char *)t - offsetof(ws_conn, close_timer));
    finish(c, close_code(c));
}

ws_conn *ws_conn_new(rt_loop *loop, int fd, const void *pre, size_t pre_len,
                     const struct ws_options *opt, void (*release)(void *rel_ud), void *rel_ud,
                     const struct ws_handler *h, void *ud, struct echo_err *err)
{
    ws_conn *c = xcalloc(1, sizeof(*c));
    c->loop = loop;
    c->watch.fd = fd;
    c->watch.on_io = on_io;
    c->release = release;
    c->rel_ud = rel_ud;
    c->h = h;
    c->ud = ud;
    c->max_queued = opt->max_queued;
    c->close_timeout_ms = opt->close_timeout_ms;
    rt_timer_init(&c->kick, on_kick);
    rt_timer_init(&c->close_timer, on_close_timeout);

    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
        echo_err_set(err, "websocket: fcntl: %s", strerror(errno));
        goto fail;
    }
    if (wslay_event_context_server_init(&c->ctx, &wslay_cbs, c) != 0) {
        echo_err_set(err, "websocket: out of memory");
        goto fail;
    }
    wslay_event_config_set_max_recv_msg_length(c->ctx, opt->max_message);
    c->interest = EPOLLIN;
    if (rt_loop_watch(loop, &c->watch, c->interest) != 0) {
        echo_err_set(err, "websocket: epoll_ctl: %s", strerror(errno));
        goto fail;
    }
    if (pre_len > 0) {
        c->pre = xmalloc(pre_len);
        memcpy(c->pre, pre, pre_len);
        c->pre_len = pre_len;
        rt_loop_timer_set(loop, &c->kick, 0);
    }
    if (opt->set) {
        c->set = opt->set;
        c->set_next = c->set->head;
        if (c->set_next) c->set_next->set_prev = c;
        c->set->head = c;
        c->set->count++;
    }
    return c;

fail:
    if (c->ctx) wslay_event_context_free(c->ctx);
    release_fd(c);
    free(c);
    return NULL;
}

void ws_conn_set_handler(ws_conn *c, const struct ws_handler *h, void *ud)
{
    c->h = h;
    c->ud = ud;
}

static void want_write(ws_conn *c)
{
    if (c->finished || (c->interest & EPOLLOUT)) return;
    uint32_t interest = c->interest | EPOLLOUT;
    if (rt_loop_rewatch(c->loop, &c->watch, interest) == 0) c->interest = interest;
}

int ws_conn_send(ws_conn *c, bool binary, const void *data, size_t len)
{
    if (c->finished || c->closing || !wslay_event_get_write_enabled(c->ctx)) return -1;
    if (wslay_event_get_queued_msg_length(c->ctx) + len > c->max_queued) return -1;
    struct wslay_event_msg msg = {
        .opcode = binary ? WSLAY_BINARY_FRAME : WSLAY_TEXT_FRAME,
        .msg = data,
        .msg_length = len,
    };
    if (wslay_event_queue_msg(c->ctx, &msg) != 0) return -1;
    want_write(c);
    return 0;
}

void ws_conn_close(ws_conn *c, uint16_t code, const char *reason)
{
    c->h = NULL;
    c->ud = NULL;
    if (c->finished) return;
    if (c->closing) return; /* a close frame is already on its way (or came from the peer) */
    size_t rlen = reason ? strlen(reason) : 0;
    if (rlen > sizeof(c->close_reason) - 1) rlen = sizeof(c->close_reason) - 1;
    memcpy(c->close_reason, reason ? reason : "", rlen);
    c->close_reason[rlen] = '\0';
    c->close_code_pending = code;
    c->close_pending = true;
    queue_pending_close(c);
    begin_closing(c);
    want_write(c);
}

size_t ws_conn_backlog(const ws_conn *c)
{
    return c->ctx ? wslay_event_get_queued_msg_length(c->ctx) : 0;
}

void ws_set_abort_all(struct ws_set *set)
{
    while (set->head) {
        ws_conn *c = set->head;
        c->h = NULL;
        finish(c, WS_CLOSE_GOING_AWAY);
    }
}
