/*
 * eio_server.c - the Engine.IO v4 server (see eio.h and
 * https://github.com/socketio/engine.io-protocol).
 *
 * A session starts with a polling handshake (GET without sid, answered with
 * the open packet) or directly on a WebSocket. Polling: the client keeps one
 * GET open, held here until packets are ready or the next ping; it sends with
 * POSTs of packets joined by 0x1E. Upgrade: the client opens a WebSocket with
 * the sid and probes it ("2probe" -> "3probe"); the held GET is released with a
 * noop so the client stops polling; "5" on the WebSocket switches the session
 * over and the polling backlog follows on the WebSocket. Heartbeat: the server
 * pings every ping interval and closes a session whose pong does not come
 * within the ping timeout (which also reaps polling clients that vanished).
 *
 * Every session belongs to the loop thread. The sid table is also read by
 * HTTP worker threads (eio_server_route checks that a sid exists before
 * answering 101), so inserts and removals take table_lock; the loop thread
 * itself reads without it, being the only writer.
 */
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "realtime/eio.h"
#include "realtime/packet.h"

#define CT_TEXT "text/plain; charset=UTF-8"
#define CT_JSON "application/json"
#define CT_HTML "text/html"

/* Engine.IO error bodies (engine.io server.ts, Server.errorMessages). */
#define ERR_TRANSPORT "{\"code\":0,\"message\":\"Transport unknown\"}"
#define ERR_SID "{\"code\":1,\"message\":\"Session ID unknown\"}"
#define ERR_METHOD "{\"code\":2,\"message\":\"Bad handshake method\"}"
#define ERR_REQUEST "{\"code\":3,\"message\":\"Bad request\"}"
#define ERR_FORBIDDEN "{\"code\":4,\"message\":\"Forbidden\"}"
#define ERR_VERSION "{\"code\":5,\"message\":\"Unsupported protocol version\"}"
#define ERR_TOO_LARGE "{\"code\":3,\"message\":\"Payload too large\"}"

enum transport { T_POLLING, T_WEBSOCKET };

/* One outbound packet waiting for a GET (text form, without separator). */
struct outq {
    char **items;
    size_t *lens;
    size_t count, cap, bytes;
};

struct eio_session {
    eio_server *srv;
    char sid[EIO_SID_LEN + 1];
    int64_t user_id;
    enum transport transport;
    bool closed;
    bool opened; /* on_open was delivered */
    eio_session *hash_next;

    /* polling */
    bool get_held;
    struct eio_reply get;
    struct outq outq;
    struct rt_timer flush_timer; /* answers the held GET after this iteration */

    /* websocket */
    ws_conn *ws;
    ws_conn *probe;
    bool upgrading; /* the probe was answered; waiting for "5" */

    /* heartbeat */
    struct rt_timer ping_timer;
    bool awaiting_pong;

    void *data; /* the upper layer's */
};

struct eio_server {
    rt_loop *loop;
    struct eio_options opt;
    char *site_origin, *default_origin;
    struct eio_events ev;
    void *ud;
    struct ws_options ws_opt;
    struct ws_set ws_set;

    pthread_mutex_t table_lock;
    eio_session **buckets;
    size_t nbuckets, count;
};

/* ---- outbound queue ---- */

static void outq_push(struct outq *q, const char *data, size_t len)
{
    if (q->count == q->cap) {
        q->cap = q->cap ? q->cap * 2 : 8;
        q->items = xrealloc(q->items, q->cap * sizeof(*q->items));
        q->lens = xrealloc(q->lens, q->cap * sizeof(*q->lens));
    }
    q->items[q->count] = xstrndup(data, len);
    q->lens[q->count] = len;
    q->count++;
    q->bytes += len + 1;
}

static void outq_clear(struct outq *q)
{
    for (size_t i = 0; i < q->count; i++)
        free(q->items[i]);
    q->count = 0;
    q->bytes = 0;
}

static void outq_deinit(struct outq *q)
{
    outq_clear(q);
    free(q->items);
    free(q->lens);
    memset(q, 0, sizeof(*q));
}

/* ---- sid table ---- */

static size_t sid_hash(const char *sid)
{
    /* FNV-1a; sids are random, so any mixing will do. */
    size_t h = 1469598103934665603ULL;
    for (; *sid; sid++)
        h = (h ^ (unsigned char)*sid) * 1099511628211ULL;
    return h;
}

static eio_session *table_find(eio_server *srv, const char *sid)
{
    if (!sid || strlen(sid) != EIO_SID_LEN) return NULL;
    eio_session *s = srv->buckets[sid_hash(sid) & (srv->nbuckets - 1)];
    while (s && strcmp(s->sid, sid) != 0)
        s = s->hash_next;
    return s;
}

static void table_insert(eio_server *srv, eio_session *s)
{
    pthread_mutex_lock(&srv->table_lock);
    if (srv->count + 1 > srv->nbuckets) {
        size_t n = srv->nbuckets * 2;
        eio_session **b = xcalloc(n, sizeof(*b));
        for (size_t i = 0; i < srv->nbuckets; i++) {
            eio_session *e = srv->buckets[i];
            while (e) {
                eio_session *next = e->hash_next;
                size_t k = sid_hash(e->sid) & (n - 1);
                e->hash_next = b[k];
                b[k] = e;
                e = next;
            }
        }
        free(srv->buckets);
        srv->buckets = b;
        srv->nbuckets = n;
    }
    size_t k = sid_hash(s->sid) & (srv->nbuckets - 1);
    s->hash_next = srv->buckets[k];
    srv->buckets[k] = s;
    srv->count++;
    pthread_mutex_unlock(&srv->table_lock);
}

static void table_remove(eio_server *srv, eio_session *s)
{
    pthread_mutex_lock(&srv->table_lock);
    eio_session **pp = &srv->buckets[sid_hash(s->sid) & (srv->nbuckets - 1)];
    while (*pp && *pp != s)
        pp = &(*pp)->hash_next;
    if (*pp) {
        *pp = s->hash_next;
        srv->count--;
    }
    pthread_mutex_unlock(&srv->table_lock);
}

/* Any thread: does a session with this sid exist, and on which transport? */
static bool table_lookup(eio_server *srv, const char *sid, enum transport *t)
{
    pthread_mutex_lock(&srv->table_lock);
    eio_session *s = table_find(srv, sid);
    if (s && t) *t = s->transport;
    pthread_mutex_unlock(&srv->table_lock);
    return s != NULL;
}

size_t eio_server_session_count(eio_server *srv)
{
    pthread_mutex_lock(&srv->table_lock);
    size_t n = srv->count;
    pthread_mutex_unlock(&srv->table_lock);
    return n;
}

/* ---- session basics ---- */

const char *eio_session_sid(const eio_session *s)
{
    return s->sid;
}

int64_t eio_session_user(const eio_session *s)
{
    return s->user_id;
}

void eio_session_set_data(eio_session *s, void *data)
{
    s->data = data;
}

void *eio_session_data(const eio_session *s)
{
    return s->data;
}

const char *eio_session_transport(const eio_session *s)
{
    return s->transport == T_WEBSOCKET ? "websocket" : "polling";
}

static void respond(struct eio_reply r, int status, const char *ct, const char *body, size_t len)
{
    r.respond(r.ctx, status, ct, body, len);
}

static void respond_str(struct eio_reply r, int status, const char *ct, const char *body)
{
    r.respond(r.ctx, status, ct, body, strlen(body));
}

static void session_free(void *p)
{
    eio_session *s = p;
    outq_deinit(&s->outq);
    free(s);
}

static void session_teardown(eio_session *s, const char *reason, bool notify);

/* Answers the held GET with everything queued (or a noop while upgrading). */
static void flush_get(eio_session *s)
{
    if (!s->get_held) return;
    if (s->upgrading) {
        s->get_held = false;
        respond_str(s->get, 200, CT_TEXT, "6");
        return;
    }
    if (s->outq.count == 0) return;
    struct strbuf body;
    strbuf_init(&body);
    strbuf_reserve(&body, s->outq.bytes);
    for (size_t i = 0; i < s->outq.count; i++) {
        if (i > 0) strbuf_putc(&body, EIO_SEPARATOR);
        strbuf_append(&body, s->outq.items[i], s->outq.lens[i]);
    }
    outq_clear(&s->outq);
    s->get_held = false;
    respond(s->get, 200, CT_TEXT, body.data, body.len);
    strbuf_deinit(&body);
}

static void on_flush_timer(struct rt_timer *t)
{
    eio_session *s = (eio_session *)((char *)t - offsetof(eio_session, flush_timer));
    flush_get(s);
}

/* Sends one encoded packet on the session's current transport. Polling packets
 * wait for the next GET; a held GET is answered once this loop iteration has
 * queued everything it will (one response carries the whole batch). */
static int send_raw(eio_session *s, const char *pkt, size_t len)
{
    if (s->closed) return -1;
    if (s->transport == T_WEBSOCKET) return ws_conn_send(s->ws, false, pkt, len);
    if (s->outq.bytes + len > s->srv->opt.max_backlog) return -1;
    outq_push(&s->outq, pkt, len);
    if (s->get_held && !rt_timer_armed(&s->flush_timer))
        rt_loop_timer_set(s->srv->loop, &s->flush_timer, 0);
    return 0;
}

static int send_packet(eio_session *s, enum eio_type type, const char *data, size_t len)
{
    struct strbuf sb;
    strbuf_init(&sb);
    eio_packet_encode_text(&sb, type, data, len);
    int rc = send_raw(s, sb.data, sb.len);
    strbuf_deinit(&sb);
    return rc;
}

int eio_session_send(eio_session *s, const char *data, size_t len)
{
    return send_packet(s, EIO_MESSAGE, data, len);
}

/* Closing from inside our own processing (a bad packet, a send that failed):
 * the upper layer is told. */
static void session_fail(eio_session *s, const char *reason)
{
    session_teardown(s, reason, true);
}

/* ---- heartbeat ---- */

static void schedule_ping(eio_session *s)
{
    s->awaiting_pong = false;
    rt_loop_timer_set(s->srv->loop, &s->ping_timer,
                      time_mono_ns() + (uint64_t)s->srv->opt.ping_interval_ms * 1000000u);
}

static void on_ping_timer(struct rt_timer *t)
{
    eio_session *s = (eio_session *)((char *)t - offsetof(eio_session, ping_timer));
    if (s->awaiting_pong) {
        session_fail(s, "ping timeout");
        return;
    }
    if (send_packet(s, EIO_PING, NULL, 0) != 0) {
        session_fail(s, "transport error");
        return;
    }
    s->awaiting_pong = true;
    rt_loop_timer_set(s->srv->loop, &s->ping_timer,
                      time_mono_ns() + (uint64_t)s->srv->opt.ping_timeout_ms * 1000000u);
}

/* ---- incoming packets (both transports) ---- */

/* Handles one decoded packet from the client; false when the session ended. */
static bool handle_packet(eio_session *s, const struct eio_packet *p)
{
    switch (p->type) {
    case EIO_PONG:
        if (s->awaiting_pong) schedule_ping(s);
        return true;
    case EIO_PING:
        /* v4 clients do not ping outside the probe; answering is harmless. */
        if (send_packet(s, EIO_PONG, p->data, p->len) != 0) {
            session_fail(s, "transport error");
            return false;
        }
        return true;
    case EIO_MESSAGE:
        if (s->srv->ev.on_message)
            s->srv->ev.on_message(s, p->binary, p->data ? p->data : "", p->len, s->srv->ud);
        return !s->closed;
    case EIO_CLOSE:
        session_fail(s, "client close");
        return false;
    case EIO_NOOP:
        return true;
    default:
        /* OPEN, or UPGRADE outside a probe: a confused or hostile client. */
        session_fail(s, "protocol error");
        return false;
    }
}

/* ---- WebSocket transport ---- */

static void session_ws_message(ws_conn *c, bool binary, const char *data, size_t len, void *ud)
{
    (void)c;
    eio_session *s = ud;
    if (s->closed) return;
    struct eio_packet p;
    if (binary) {
        /* v4 sends binary message data as a bare binary frame. */
        memset(&p, 0, sizeof(p));
        p.type = EIO_MESSAGE;
        p.binary = true;
        p.data = (char *)data;
        p.len = len;
        handle_packet(s, &p);
        return;
    }
    struct echo_err err;
    echo_err_clear(&err);
    if (eio_packet_decode(data, len, &p, &err) != 0) {
        log_info("engine.io %s: %s", s->sid, err.msg);
        session_fail(s, "parse error");
        return;
    }
    handle_packet(s, &p);
    eio_packet_deinit(&p);
}

static void session_ws_close(ws_conn *c, int code, void *ud)
{
    (void)c;
    (void)code;
    eio_session *s = ud;
    s->ws = NULL; /* already gone */
    session_fail(s, "transport close");
}

static const struct ws_handler session_ws_handler = {
    .on_message = session_ws_message,
    .on_close = session_ws_close,
};

/* The probe WebSocket of an upgrade: only "2probe" then "5" are expected. */
static void probe_message(ws_conn *c, bool binary, const char *data, size_t len, void *ud)
{
    eio_session *s = ud;
    if (s->closed || s->probe != c) return;
    if (!binary && len == 6 && !memcmp(data, "2probe", 6) && !s->upgrading) {
        if (ws_conn_send(c, false, "3probe", 6) != 0) goto drop;
        s->upgrading = true;
        flush_get(s); /* a noop: the client stops polling */
        return;
    }
    if (!binary && len == 1 && data[0] == '5' && s->upgrading) {
        s->probe = NULL;
        s->upgrading = false;
        /* Worker threads read the transport (eio_server_route) under the lock. */
        pthread_mutex_lock(&s->srv->table_lock);
        s->transport = T_WEBSOCKET;
        pthread_mutex_unlock(&s->srv->table_lock);
        s->ws = c;
        ws_conn_set_handler(c, &session_ws_handler, s);
        if (s->get_held) {
            s->get_held = false;
            respond_str(s->get, 200, CT_TEXT, "6");
        }
        /* What was waiting for the next poll now goes over the WebSocket. */
        for (size_t i = 0; i < s->outq.count; i++) {
            if (ws_conn_send(c, false, s->outq.items[i], s->outq.lens[i]) != 0) {
                outq_clear(&s->outq);
                session_fail(s, "transport error");
                return;
            }
        }
        outq_clear(&s->outq);
        return;
    }
drop:
    /* Anything else: this WebSocket is not a usable upgrade; polling goes on. */
    s->probe = NULL;
    s->upgrading = false;
    ws_conn_close(c, WS_CLOSE_POLICY, "bad upgrade");
    flush_get(s);
}

static void probe_close(ws_conn *c, int code, void *ud)
{
    (void)code;
    eio_session *s = ud;
    if (s->probe == c) {
        s->probe = NULL;
        s->upgrading = false;
    }
}

static const struct ws_handler probe_handler = {
    .on_message = probe_message,
    .on_close = probe_close,
};

/* ---- session lifecycle ---- */

static eio_session *session_new(eio_server *srv, enum transport t, int64_t user_id)
{
    eio_session *s = xcalloc(1, sizeof(*s));
    s->srv = srv;
    s->transport = t;
    s->user_id = user_id;
    rt_timer_init(&s->ping_timer, on_ping_timer);
    rt_timer_init(&s->flush_timer, on_flush_timer);
    /* A sid is 15 random bytes (120 bits) in base64url: 20 characters. */
    do {
        unsigned char raw[15];
        randombytes_buf(raw, sizeof(raw));
        sodium_bin2base64(s->sid, sizeof(s->sid), raw, sizeof(raw),
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    } while (table_find(srv, s->sid));
    return s;
}

static void open_packet(eio_server *srv, enum transport t, const char *sid, struct strbuf *out)
{
    strbuf_printf(out,
                  "0{\"sid\":\"%s\",\"upgrades\":[%s],\"pingInterval\":%u,\"pingTimeout\":%u,"
                  "\"maxPayload\":%zu}",
                  sid, t == T_POLLING ? "\"websocket\"" : "", srv->opt.ping_interval_ms,
                  srv->opt.ping_timeout_ms, srv->opt.max_payload);
}

static void session_start(eio_session *s)
{
    table_insert(s->srv, s);
    schedule_ping(s);
    s->opened = true;
    if (s->srv->ev.on_open) s->srv->ev.on_open(s, s->srv->ud);
}

/*
 * Ends a session: answers a held GET with a close packet, closes its sockets,
 * tells the upper layer when `notify`, removes it from the table and frees it
 * after this loop iteration (callers up the stack may still look at s->closed).
 */
static void session_teardown(eio_session *s, const char *reason, bool notify)
{
    if (s->closed) return;
    s->closed = true;
    log_debug("engine.io %s closed: %s", s->sid, reason);
    rt_loop_timer_cancel(s->srv->loop, &s->ping_timer);
    rt_loop_timer_cancel(s->srv->loop, &s->flush_timer);
    if (s->get_held) {
        /* What was queued (e.g. a DISCONNECT) goes out before the close packet. */
        outq_push(&s->outq, "1", 1);
        s->upgrading = false;
        flush_get(s);
    }
    if (s->ws) {
        ws_conn_close(s->ws, WS_CLOSE_NORMAL, NULL);
        s->ws = NULL;
    }
    if (s->probe) {
        ws_conn_close(s->probe, WS_CLOSE_NORMAL, NULL);
        s->probe = NULL;
    }
    table_remove(s->srv, s);
    if (notify && s->opened && s->srv->ev.on_close) s->srv->ev.on_close(s, reason, s->srv->ud);
    rt_loop_defer_free(s->srv->loop, session_free, s);
}

void eio_session_close(eio_session *s, const char *reason)
{
    session_teardown(s, reason, false);
}

/* ---- tasks posted by HTTP threads ---- */

struct http_task {
    eio_server *srv;
    char sid[EIO_SID_LEN + 1];
    int64_t user_id;
    struct eio_reply reply;
    void *gone_ctx;
    void (*gone_done)(void *ctx);
    char *body;
    size_t len;
    /* WebSocket hand-over */
    int fd;
    char *pre;
    size_t pre_len;
    void (*release)(void *rel_ud);
    void *rel_ud;
};

static struct http_task *task_new(eio_server *srv, const char *sid)
{
    struct http_task *t = xcalloc(1, sizeof(*t));
    t->srv = srv;
    t->fd = -1;
    if (sid) {
        size_t n = strlen(sid);
        if (n > EIO_SID_LEN) n = EIO_SID_LEN; /* an over-long sid matches nothing either way */
        memcpy(t->sid, sid, n);
    }
    return t;
}

static void task_free(struct http_task *t)
{
    free(t->body);
    free(t->pre);
    free(t);
}

static void task_open(void *arg, bool cancelled)
{
    struct http_task *t = arg;
    if (cancelled) {
        respond_str(t->reply, 503, CT_JSON, ERR_REQUEST);
        task_free(t);
        return;
    }
    eio_session *s = session_new(t->srv, T_POLLING, t->user_id);
    struct strbuf sb;
    strbuf_init(&sb);
    open_packet(t->srv, T_POLLING, s->sid, &sb);
    session_start(s);
    respond(t->reply, 200, CT_TEXT, sb.data, sb.len);
    strbuf_deinit(&sb);
    task_free(t);
}

void eio_server_http_open(eio_server *srv, int64_t user_id, struct eio_reply reply)
{
    struct http_task *t = task_new(srv, NULL);
    t->user_id = user_id;
    t->reply = reply;
    rt_loop_post(srv->loop, task_open, t);
}

static void task_poll(void *arg, bool cancelled)
{
    struct http_task *t = arg;
    eio_session *s = cancelled ? NULL : table_find(t->srv, t->sid);
    if (!s || s->closed) {
        respond_str(t->reply, 400, CT_JSON, ERR_SID);
    } else if (s->transport != T_POLLING) {
        /* The session moved to its WebSocket: this GET is stale. */
        respond_str(t->reply, 400, CT_JSON, ERR_REQUEST);
    } else if (s->get_held) {
        /* Two GETs at once break the protocol's ordering: close the session. */
        respond_str(t->reply, 400, CT_JSON, ERR_REQUEST);
        session_fail(s, "overlapping poll");
    } else {
        s->get = t->reply;
        s->get_held = true;
        if (s->upgrading || s->outq.count > 0) flush_get(s);
    }
    task_free(t);
}

void eio_server_http_poll(eio_server *srv, const char *sid, struct eio_reply reply)
{
    struct http_task *t = task_new(srv, sid);
    t->reply = reply;
    rt_loop_post(srv->loop, task_poll, t);
}

static void task_poll_gone(void *arg, bool cancelled)
{
    struct http_task *t = arg;
    eio_session *s = cancelled ? NULL : table_find(t->srv, t->sid);
    if (s && s->get_held && s->get.ctx == t->gone_ctx) {
        s->get_held = false;
        respond_str(s->get, 200, CT_TEXT, "6");
    }
    if (t->gone_done) t->gone_done(t->gone_ctx);
    task_free(t);
}

void eio_server_http_poll_gone(eio_server *srv, const char *sid, void *reply_ctx,
                               void (*done)(void *reply_ctx))
{
    struct http_task *t = task_new(srv, sid);
    t->gone_ctx = reply_ctx;
    t->gone_done = done;
    rt_loop_post(srv->loop, task_poll_gone, t);
}

static void task_post(void *arg, bool cancelled)
{
    struct http_task *t = arg;
    eio_session *s = cancelled ? NULL : table_find(t->srv, t->sid);
    if (!s || s->closed) {
        respond_str(t->reply, 400, CT_JSON, ERR_SID);
        goto out;
    }
    if (t->len > t->srv->opt.max_payload) {
        respond_str(t->reply, 413, CT_JSON, ERR_TOO_LARGE);
        session_fail(s, "payload too large");
        goto out;
    }
    if (s->transport != T_POLLING) {
        respond_str(t->reply, 400, CT_JSON, ERR_REQUEST);
        goto out;
    }
    struct eio_packet *packets;
    size_t count;
    struct echo_err err;
    echo_err_clear(&err);
    if (eio_payload_decode(t->body, t->len, &packets, &count, &err) != 0) {
        log_info("engine.io %s: %s", s->sid, err.msg);
        respond_str(t->reply, 400, CT_JSON, ERR_REQUEST);
        session_fail(s, "parse error");
        goto out;
    }
    /* Answer first: handlers may take a moment and the client waits on this. */
    respond_str(t->reply, 200, CT_HTML, "ok");
    for (size_t i = 0; i < count; i++)
        if (!handle_packet(s, &packets[i])) break;
    eio_packets_free(packets, count);
out:
    task_free(t);
}

void eio_server_http_post(eio_server *srv, const char *sid, const char *body, size_t len,
                          struct eio_reply reply)
{
    struct http_task *t = task_new(srv, sid);
    t->reply = reply;
    t->len = len;
    /* Over the limit the body is not needed: the session closes with 413. */
    if (len <= srv->opt.max_payload) {
        t->body = xmalloc(len + 1);
        if (len) memcpy(t->body, body, len);
        t->body[len] = '\0';
    }
    rt_loop_post(srv->loop, task_post, t);
}

static void task_ws(void *arg, bool cancelled)
{
    struct http_task *t = arg;
    eio_server *srv = t->srv;
    struct echo_err err;
    echo_err_clear(&err);
    if (cancelled) {
        if (t->release) t->release(t->rel_ud);
        task_free(t);
        return;
    }
    if (t->sid[0] == '\0') {
        /* A WebSocket-only client: the open packet is the first message. */
        eio_session *s = session_new(srv, T_WEBSOCKET, t->user_id);
        s->ws = ws_conn_new(srv->loop, t->fd, t->pre, t->pre_len, &srv->ws_opt, t->release,
                            t->rel_ud, &session_ws_handler, s, &err);
        if (!s->ws) {
            log_warn("engine.io: %s", err.msg);
            session_free(s);
            task_free(t);
            return;
        }
        struct strbuf sb;
        strbuf_init(&sb);
        open_packet(srv, T_WEBSOCKET, s->sid, &sb);
        ws_conn_send(s->ws, false, sb.data, sb.len);
        strbuf_deinit(&sb);
        session_start(s);
        task_free(t);
        return;
    }
    eio_session *s = table_find(srv, t->sid);
    ws_conn *c = ws_conn_new(srv->loop, t->fd, t->pre, t->pre_len, &srv->ws_opt, t->release,
                             t->rel_ud, &probe_handler, NULL, &err);
    if (!c) {
        log_warn("engine.io: %s", err.msg);
        task_free(t);
        return;
    }
    if (!s || s->closed || s->transport != T_POLLING || s->probe) {
        /* The session went away (or is upgrading already) since the 101. */
        ws_conn_close(c, WS_CLOSE_POLICY, "Session ID unknown");
    } else {
        s->probe = c;
        ws_conn_set_handler(c, &probe_handler, s);
    }
    task_free(t);
}

void eio_server_ws_attach(eio_server *srv, const char *sid, int64_t user_id, int fd,
                          const void *pre, size_t pre_len, void (*release)(void *rel_ud),
                          void *rel_ud)
{
    struct http_task *t = task_new(srv, sid);
    t->user_id = user_id;
    t->fd = fd;
    if (pre_len) {
        t->pre = xmalloc(pre_len);
        memcpy(t->pre, pre, pre_len);
        t->pre_len = pre_len;
    }
    t->release = release;
    t->rel_ud = rel_ud;
    rt_loop_post(srv->loop, task_ws, t);
}

/* ---- routing (HTTP worker threads) ---- */

static bool origin_equal(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    /* A configured origin may carry a trailing slash; an Origin header never does. */
    if (lb > 0 && b[lb - 1] == '/') lb--;
    if (la != lb) return false;
    for (size_t i = 0; i < la; i++) {
        char x = a[i], y = b[i];
        if (x >= 'A' && x <= 'Z') x += 32;
        if (y >= 'A' && y <= 'Z') y += 32;
        if (x != y) return false;
    }
    return true;
}

bool eio_origin_allowed(const char *site_origin, const char *default_origin, const char *origin,
                        const char *host)
{
    /* Browsers always send Origin on WebSocket handshakes and cross-origin
     * requests; non-browser clients (python-socketio) may not, and they are
     * not the cross-site hijacking threat. */
    if (!origin) return true;
    if (site_origin && *site_origin) return origin_equal(origin, site_origin);
    if (default_origin && origin_equal(origin, default_origin)) return true;
    /* Same origin as the page: the Origin names the host the request went to. */
    if (host && *host) {
        char buf[512];
        snprintf(buf, sizeof(buf), "http://%s", host);
        if (origin_equal(origin, buf)) return true;
        snprintf(buf, sizeof(buf), "https://%s", host);
        if (origin_equal(origin, buf)) return true;
    }
    return false;
}

enum eio_route eio_server_route(eio_server *srv, const struct eio_http_request *rq, int *status,
                                const char **body)
{
    *status = 400;
    if (!rq->eio || strcmp(rq->eio, "4") != 0) {
        *body = ERR_VERSION;
        return EIO_ROUTE_ERROR;
    }
    bool polling = rq->transport && !strcmp(rq->transport, "polling");
    bool websocket = rq->transport && !strcmp(rq->transport, "websocket");
    if (!polling && !websocket) {
        *body = ERR_TRANSPORT;
        return EIO_ROUTE_ERROR;
    }
    bool get = rq->method && !strcmp(rq->method, "GET");
    bool post = rq->method && !strcmp(rq->method, "POST");
    if (!eio_origin_allowed(srv->site_origin, srv->default_origin, rq->origin, rq->host)) {
        *status = 403;
        *body = ERR_FORBIDDEN;
        return EIO_ROUTE_ERROR;
    }
    if (websocket) {
        if (!get || !rq->ws_upgrade) {
            *body = websocket && !get ? ERR_METHOD : ERR_TRANSPORT;
            return EIO_ROUTE_ERROR;
        }
        if (!rq->sid) return EIO_ROUTE_WS_OPEN;
        enum transport t;
        if (!table_lookup(srv, rq->sid, &t)) {
            *body = ERR_SID;
            return EIO_ROUTE_ERROR;
        }
        if (t != T_POLLING) {
            *body = ERR_REQUEST;
            return EIO_ROUTE_ERROR;
        }
        return EIO_ROUTE_WS_UPGRADE;
    }
    if (!rq->sid) {
        if (!get) {
            *body = ERR_METHOD;
            return EIO_ROUTE_ERROR;
        }
        return EIO_ROUTE_POLL_OPEN;
    }
    if (!get && !post) {
        *body = ERR_REQUEST;
        return EIO_ROUTE_ERROR;
    }
    if (!table_lookup(srv, rq->sid, NULL)) {
        *body = ERR_SID;
        return EIO_ROUTE_ERROR;
    }
    return get ? EIO_ROUTE_POLL_GET : EIO_ROUTE_POLL_POST;
}

/* ---- server ---- */

eio_server *eio_server_new(rt_loop *loop, const struct eio_options *opt,
                           const struct eio_events *ev, void *ud)
{
    /* randombytes_buf is usable without it, but sodium_init picks the best
     * source once; it is idempotent and thread-safe. */
    if (sodium_init() < 0) return NULL;
    eio_server *srv = xcalloc(1, sizeof(*srv));
    srv->loop = loop;
    srv->opt = *opt;
    srv->site_origin = opt->site_origin ? xstrdup(opt->site_origin) : NULL;
    srv->default_origin = opt->default_origin ? xstrdup(opt->default_origin) : NULL;
    srv->opt.site_origin = srv->site_origin;
    srv->opt.default_origin = srv->default_origin;
    srv->ev = *ev;
    srv->ud = ud;
    srv->ws_opt.max_message = opt->max_payload;
    srv->ws_opt.max_queued = opt->max_backlog;
    srv->ws_opt.close_timeout_ms = 5000;
    srv->ws_opt.set = &srv->ws_set;
    pthread_mutex_init(&srv->table_lock, NULL);
    srv->nbuckets = 64;
    srv->buckets = xcalloc(srv->nbuckets, sizeof(*srv->buckets));
    return srv;
}

void eio_server_close_all(eio_server *srv)
{
    for (;;) {
        eio_session *s = NULL;
        for (size_t i = 0; i < srv->nbuckets && !s; i++)
            s = srv->buckets[i];
        if (!s) break;
        session_teardown(s, "server shutdown", true);
    }
}

size_t eio_server_ws_count(eio_server *srv)
{
    return srv->ws_set.count;
}

void eio_server_abort_ws(eio_server *srv)
{
    ws_set_abort_all(&srv->ws_set);
}

void eio_server_free(eio_server *srv)
{
    if (!srv) return;
    free(srv->buckets);
    pthread_mutex_destroy(&srv->table_lock);
    free(srv->site_origin);
    free(srv->default_origin);
    free(srv);
}
