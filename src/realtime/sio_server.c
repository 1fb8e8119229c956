/*
 * sio_server.c - the Socket.IO v5 server on top of Engine.IO (eio.h), on the
 * default namespace "/" only (https://github.com/socketio/socket.io-protocol).
 *
 * Each Engine.IO session carries one socket. The client must CONNECT within
 * connect_timeout_ms; the CONNECT is accepted when the handshake request was
 * authenticated (sio_auth_fn), else answered CONNECT_ERROR "unauthorized".
 * Other namespaces get CONNECT_ERROR "Invalid namespace". EVENT packets are
 * dispatched to the handler registered for their name, with an ack handle
 * when the client asked for one. A malformed or binary packet closes that one
 * connection.
 *
 * Emits from other threads are serialised into finished Socket.IO packets in
 * the caller's thread and posted to the loop, which looks the socket (or the
 * user's sockets) up and sends; a socket that went away meanwhile is skipped.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "realtime/packet.h"
#include "realtime/sio_internal.h"

struct sio_socket {
    sio_server *srv;
    eio_session *eio; /* NULL once the Engine.IO session is gone */
    uint64_t handle;
    char sid[EIO_SID_LEN + 1];
    int64_t user_id;
    bool connected;
    bool gone;
    sio_socket *user_prev, *user_next; /* the user's connected sockets */
    struct rt_timer connect_timer;
};

/* ---- u64 map ---- */

static size_t u64_slot(const struct u64_map *m, uint64_t key)
{
    key ^= key >> 33;
    key *= 0xff51afd7ed558ccdULL;
    key ^= key >> 33;
    return (size_t)key & (m->nbuckets - 1);
}

static void u64_init(struct u64_map *m)
{
    m->nbuckets = 64;
    m->count = 0;
    m->buckets = xcalloc(m->nbuckets, sizeof(*m->buckets));
}

static void u64_deinit(struct u64_map *m)
{
    for (size_t i = 0; i < m->nbuckets; i++) {
        struct u64_node *n = m->buckets[i];
        while (n) {
            struct u64_node *next = n->next;
            free(n);
            n = next;
        }
    }
    free(m->buckets);
    memset(m, 0, sizeof(*m));
}

static struct u64_node **u64_find(struct u64_map *m, uint64_t key)
{
    struct u64_node **pp = &m->buckets[u64_slot(m, key)];
    while (*pp && (*pp)->key != key)
        pp = &(*pp)->next;
    return pp;
}

static void *u64_get(struct u64_map *m, uint64_t key)
{
    struct u64_node *n = *u64_find(m, key);
    return n ? n->value : NULL;
}

static void u64_put(struct u64_map *m, uint64_t key, void *value)
{
    struct u64_node **pp = u64_find(m, key);
    if (*pp) {
        (*pp)->value = value;
        return;
    }
    if (m->count + 1 > m->nbuckets) {
        size_t old_n = m->nbuckets;
        struct u64_node **old = m->buckets;
        m->nbuckets *= 2;
        m->buckets = xcalloc(m->nbuckets, sizeof(*m->buckets));
        for (size_t i = 0; i < old_n; i++) {
            struct u64_node *n = old[i];
            while (n) {
                struct u64_node *next = n->next;
                size_t k = u64_slot(m, n->key);
                n->next = m->buckets[k];
                m->buckets[k] = n;
                n = next;
            }
        }
        free(old);
        pp = u64_find(m, key);
    }
    struct u64_node *n = xmalloc(sizeof(*n));
    n->next = NULL;
    n->key = key;
    n->value = value;
    *pp = n;
    m->count++;
}

static void u64_del(struct u64_map *m, uint64_t key)
{
    struct u64_node **pp = u64_find(m, key);
    if (!*pp) return;
    struct u64_node *n = *pp;
    *pp = n->next;
    free(n);
    m->count--;
}

/* ---- sending ---- */

static void socket_end(sio_socket *s, const char *reason, bool close_engine);

/* Sends an encoded Socket.IO packet; a full backlog ends the socket. */
static void socket_send(sio_socket *s, const char *pkt, size_t len)
{
    if (s->gone || !s->eio) return;
    if (eio_session_send(s->eio, pkt, len) != 0) socket_end(s, "transport error", true);
}

static void socket_send_packet(sio_socket *s, enum sio_type type, const char *nsp, json_t *data)
{
    struct sio_packet p = {.type = type, .nsp = (char *)nsp, .id = -1, .data = data};
    struct strbuf sb;
    strbuf_init(&sb);
    if (sio_packet_encode(&sb, &p) == 0) socket_send(s, sb.data, sb.len);
    strbuf_deinit(&sb);
}

static void send_connect_error(sio_socket *s, const char *nsp, const char *message)
{
    json_t *d = json_pack("{s:s}", "message", message);
    socket_send_packet(s, SIO_CONNECT_ERROR, nsp, d);
    json_decref(d);
}

/* ---- socket lifecycle ---- */

static void user_link(sio_socket *s)
{
    sio_server *srv = s->srv;
    sio_socket *head = u64_get(&srv->by_user, (uint64_t)s->user_id);
    s->user_prev = NULL;
    s->user_next = head;
    if (head) head->user_prev = s;
    u64_put(&srv->by_user, (uint64_t)s->user_id, s);
}

static void user_unlink(sio_socket *s)
{
    sio_server *srv = s->srv;
    if (s->user_prev)
        s->user_prev->user_next = s->user_next;
    else if (s->user_next)
        u64_put(&srv->by_user, (uint64_t)s->user_id, s->user_next);
    else
        u64_del(&srv->by_user, (uint64_t)s->user_id);
    if (s->user_next) s->user_next->user_prev = s->user_prev;
    s->user_prev = s->user_next = NULL;
}

static void socket_free(void *p)
{
    free(p);
}

/* Leaves the connected state: unregisters and runs the disconnect hook. */
static void socket_disconnected(sio_socket *s, const char *reason)
{
    if (!s->connected) return;
    s->connected = false;
    user_unlink(s);
    atomic_fetch_sub(&s->srv->socket_count, 1);
    if (s->srv->on_disconnect) s->srv->on_disconnect(s->srv, s, reason, s->srv->disconnect_ud);
}

/* Ends the socket for good; close_engine also closes its Engine.IO session
 * (false when the session is the one that ended). Freed after this loop
 * iteration, so callers up the stack may still read s->gone. */
static void socket_end(sio_socket *s, const char *reason, bool close_engine)
{
    if (s->gone) return;
    s->gone = true;
    sio_server *srv = s->srv;
    rt_loop_timer_cancel(srv->loop, &s->connect_timer);
    socket_disconnected(s, reason);
    u64_del(&srv->by_handle, s->handle);
    if (s->eio) {
        eio_session_set_data(s->eio, NULL);
        if (close_engine) eio_session_close(s->eio, reason);
        s->eio = NULL;
    }
    rt_loop_defer_free(srv->loop, socket_free, s);
}

static void on_connect_timeout(struct rt_timer *t)
{
    sio_socket *s = (sio_socket *)((char *)t - offsetof(sio_socket, connect_timer));
    if (!s->connected) socket_end(s, "connect timeout", true);
}

static void eio_opened(eio_session *es, void *ud)
{
    sio_server *srv = ud;
    sio_socket *s = xcalloc(1, sizeof(*s));
    s->srv = srv;
    s->eio = es;
    s->handle = ++srv->next_handle;
    s->user_id = eio_session_user(es);
    unsigned char raw[15];
    randombytes_buf(raw, sizeof(raw));
    sodium_bin2base64(s->sid, sizeof(s->sid), raw, sizeof(raw),
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    rt_timer_init(&s->connect_timer, on_connect_timeout);
    rt_loop_timer_set(srv->loop, &s->connect_timer,
                      time_mono_ns() + (uint64_t)srv->opt.connect_timeout_ms * 1000000u);
    u64_put(&srv->by_handle, s->handle, s);
    eio_session_set_data(es, s);
}

static void eio_closed(eio_session *es, const char *reason, void *ud)
{
    (void)ud;
    sio_socket *s = eio_session_data(es);
    if (s) socket_end(s, reason, false);
}

/* ---- incoming packets ---- */

static void handle_connect(sio_socket *s, const struct sio_packet *p)
{
    sio_server *srv = s->srv;
    if (strcmp(p->nsp, "/") != 0) {
        send_connect_error(s, p->nsp, "Invalid namespace");
        return;
    }
    if (s->connected) return; /* a repeated CONNECT changes nothing */
    int64_t user = s->user_id;
    if (user <= 0 && srv->opt.test_events && p->data) {
        json_t *tu = json_object_get(p->data, "test_user");
        if (json_is_integer(tu) && json_integer_value(tu) > 0) user = json_integer_value(tu);
    }
    if (user <= 0) {
        send_connect_error(s, "/", "unauthorized");
        return;
    }
    s->user_id = user;
    s->connected = true;
    rt_loop_timer_cancel(srv->loop, &s->connect_timer);
    user_link(s);
    atomic_fetch_add(&srv->socket_count, 1);
    json_t *d = json_pack("{s:s}", "sid", s->sid);
    socket_send_packet(s, SIO_CONNECT, "/", d);
    json_decref(d);
    if (!s->gone && srv->on_connect) srv->on_connect(srv, s, srv->connect_ud);
}

static const struct sio_handler *find_handler(sio_server *srv, const char *name)
{
    for (size_t i = 0; i < srv->nhandlers; i++)
        if (!strcmp(srv->handlers[i].name, name)) return &srv->handlers[i];
    return NULL;
}

static void handle_event(sio_socket *s, const struct sio_packet *p)
{
    /* Packets for a namespace that is not connected are dropped, as the
     * reference server does (a client may race its CONNECT). */
    if (!s->connected || strcmp(p->nsp, "/") != 0) return;
    const char *name = json_string_value(json_array_get(p->data, 0));
    const struct sio_handler *h = find_handler(s->srv, name);
    if (!h) return;
    json_t *args = json_array();
    for (size_t i = 1; i < json_array_size(p->data); i++)
        json_array_append(args, json_array_get(p->data, i));
    struct sio_ack ack = {.socket = s->handle, .id = p->id};
    h->fn(s->srv, s, args, p->id >= 0 ? &ack : NULL, h->ud);
    json_decref(args);
}

static void eio_message(eio_session *es, bool binary, const char *data, size_t len, void *ud)
{
    (void)ud;
    sio_socket *s = eio_session_data(es);
    if (!s || s->gone) return;
    if (binary) {
        log_info("socket.io %s: binary message refused", s->sid);
        socket_end(s, "binary not supported", true);
        return;
    }
    struct sio_packet p;
    struct echo_err err;
    echo_err_clear(&err);
    int rc = sio_packet_decode(data, len, &p, &err);
    if (rc != 0) {
        log_info("socket.io %s: %s", s->sid, err.msg);
        socket_end(s, rc == RT_ERR_UNSUPPORTED ? "binary not supported" : "parse error", true);
        return;
    }
    switch (p.type) {
    case SIO_CONNECT:
        handle_connect(s, &p);
        break;
    case SIO_DISCONNECT:
        if (!strcmp(p.nsp, "/")) socket_end(s, "client namespace disconnect", true);
        break;
    case SIO_EVENT:
        handle_event(s, &p);
        break;
    case SIO_ACK:
        /* The server never asks clients for acknowledgements. */
        break;
    default:
        /* CONNECT_ERROR travels server -> client only. */
        log_info("socket.io %s: unexpected packet type %d", s->sid, (int)p.type);
        socket_end(s, "parse error", true);
        break;
    }
    sio_packet_deinit(&p);
}

static const struct eio_events sio_eio_events = {
    .on_open = eio_opened,
    .on_message = eio_message,
    .on_close = eio_closed,
};

/* ---- sockets (loop thread) ---- */

uint64_t sio_socket_id(const sio_socket *s)
{
    return s->handle;
}

const char *sio_socket_sid(const sio_socket *s)
{
    return s->sid;
}

int64_t sio_socket_user(const sio_socket *s)
{
    return s->user_id;
}

const char *sio_socket_transport(const sio_socket *s)
{
    return s->eio ? eio_session_transport(s->eio) : "closed";
}

void sio_socket_disconnect(sio_socket *s)
{
    if (s->gone) return;
    if (s->connected) socket_send_packet(s, SIO_DISCONNECT, "/", NULL);
    socket_end(s, "server disconnect", true);
}

struct disconnect_task {
    sio_server *srv;
    int64_t user;
};

static void disconnect_user_run(void *arg, bool cancelled)
{
    struct disconnect_task *t = arg;
    if (!cancelled) {
        sio_socket *s;
        /* Each disconnect unlinks the head: take the new head every time. */
        while ((s = u64_get(&t->srv->by_user, (uint64_t)t->user)) != NULL)
            sio_socket_disconnect(s);
    }
    free(t);
}

void sio_disconnect_user(sio_server *srv, int64_t user_id)
{
    struct disconnect_task *t = xmalloc(sizeof(*t));
    t->srv = srv;
    t->user = user_id;
    rt_loop_post(srv->loop, disconnect_user_run, t);
}

size_t sio_server_socket_count(sio_server *srv)
{
    return atomic_load(&srv->socket_count);
}

/* ---- emitting (any thread) ---- */

enum emit_target { TO_SOCKET, TO_USER };

struct emit_task {
    sio_server *srv;
    enum emit_target target;
    uint64_t key;
    size_t len;
    char pkt[];
};

static void emit_run(void *arg, bool cancelled)
{
    struct emit_task *t = arg;
    if (!cancelled) {
        sio_server *srv = t->srv;
        if (t->target == TO_SOCKET) {
            sio_socket *s = u64_get(&srv->by_handle, t->key);
            if (s && s->connected) socket_send(s, t->pkt, t->len);
        } else {
            sio_socket *s = u64_get(&srv->by_user, t->key);
            while (s) {
                /* socket_send may end s (and unlink it): step first. */
                sio_socket *next = s->user_next;
                socket_send(s, t->pkt, t->len);
                s = next;
            }
        }
    }
    free(t);
}

/* Serialises [<name>, <arg>] or [<arg>] (ack) after a prefix, in this thread. */
static int post_packet(sio_server *srv, enum emit_target target, uint64_t key, const char *prefix,
                       const char *event, const json_t *arg)
{
    struct strbuf sb;
    strbuf_init(&sb);
    strbuf_puts(&sb, prefix);
    strbuf_putc(&sb, '[');
    if (event) {
        json_t *name = json_string(event);
        char *enc = name ? json_dumps(name, JSON_ENCODE_ANY) : NULL;
        json_decref(name);
        if (!enc) goto fail;
        strbuf_puts(&sb, enc);
        free(enc);
    }
    if (arg) {
        char *enc = json_dumps(arg, JSON_COMPACT | JSON_ENCODE_ANY);
        if (!enc) goto fail;
        if (event) strbuf_putc(&sb, ',');
        strbuf_puts(&sb, enc);
        free(enc);
    }
    strbuf_putc(&sb, ']');
    struct emit_task *t = xmalloc(sizeof(*t) + sb.len + 1);
    t->srv = srv;
    t->target = target;
    t->key = key;
    t->len = sb.len;
    memcpy(t->pkt, sb.data, sb.len + 1);
    strbuf_deinit(&sb);
    rt_loop_post(srv->loop, emit_run, t);
    return 0;
fail:
    strbuf_deinit(&sb);
    return -1;
}

int sio_emit_socket(sio_server *srv, uint64_t socket, const char *event, const json_t *arg)
{
    return post_packet(srv, TO_SOCKET, socket, "2", event, arg);
}

int sio_emit_user(sio_server *srv, int64_t user_id, const char *event, const json_t *arg)
{
    return post_packet(srv, TO_USER, (uint64_t)user_id, "2", event, arg);
}

int sio_ack_reply(sio_server *srv, const struct sio_ack *ack, const json_t *arg)
{
    char prefix[32];
    snprintf(prefix, sizeof(prefix), "3%lld", (long long)ack->id);
    return post_packet(srv, TO_SOCKET, ack->socket, prefix, NULL, arg);
}

/* ---- test-only events (ECHO_TEST_EVENTS) ---- */

static void test_echo(sio_server *srv, sio_socket *s, json_t *args, const struct sio_ack *ack,
                      void *ud)
{
    (void)ud;
    json_t *arg = json_array_get(args, 0);
    if (ack) sio_ack_reply(srv, ack, arg);
    sio_emit_socket(srv, sio_socket_id(s), "echo", arg);
}

static void test_echo_user(sio_server *srv, sio_socket *s, json_t *args, const struct sio_ack *ack,
                           void *ud)
{
    (void)ud;
    (void)ack;
    sio_emit_user(srv, sio_socket_user(s), "echo", json_array_get(args, 0));
}

static void test_disconnect_me(sio_server *srv, sio_socket *s, json_t *args,
                               const struct sio_ack *ack, void *ud)
{
    (void)srv;
    (void)args;
    (void)ack;
    (void)ud;
    sio_socket_disconnect(s);
}

/* ---- server ---- */

void sio_options_init(struct sio_options *o)
{
    memset(o, 0, sizeof(*o));
    o->ping_interval_ms = 25000;
    o->ping_timeout_ms = 20000;
    o->max_payload = 1000000;
    o->connect_timeout_ms = 45000;
}

void sio_options_from_config(struct sio_options *o, const config *cfg, struct strbuf *buf)
{
    sio_options_init(o);
    const char *site = config_get(cfg, "ECHO_SITE_ORIGIN");
    o->site_origin = site && *site ? site : NULL;
    const char *host = config_get(cfg, "ECHO_HOST");
    int64_t port = config_get_int(cfg, "ECHO_PORT");
    strbuf_printf(buf, "http://%s:%lld", host ? host : "127.0.0.1", (long long)port);
    o->default_origin = strbuf_cstr(buf);
    o->test_events = config_get_bool(cfg, "ECHO_TEST_EVENTS");
    if (o->test_events && config_is_production(cfg)) {
        log_warn("ECHO_TEST_EVENTS is ignored in production");
        o->test_events = false;
    }
}

sio_server *sio_server_new(const struct sio_options *o, struct echo_err *err)
{
    sio_server *srv = xcalloc(1, sizeof(*srv));
    srv->opt = *o;
    srv->site_origin = o->site_origin ? xstrdup(o->site_origin) : NULL;
    srv->default_origin = o->default_origin ? xstrdup(o->default_origin) : NULL;
    srv->opt.site_origin = srv->site_origin;
    srv->opt.default_origin = srv->default_origin;
    u64_init(&srv->by_handle);
    u64_init(&srv->by_user);
    pthread_mutex_init(&srv->upgrades_lock, NULL);
    atomic_init(&srv->socket_count, 0);

    srv->loop = rt_loop_new(err);
    if (!srv->loop) goto fail;
    struct eio_options eo = {
        .ping_interval_ms = o->ping_interval_ms,
        .ping_timeout_ms = o->ping_timeout_ms,
        .max_payload = o->max_payload,
        /* Room for a burst of streamed chunks to a slow client; beyond this
         * the client is not keeping up and is dropped. */
        .max_backlog = 8 * o->max_payload,
        .site_origin = srv->site_origin,
        .default_origin = srv->default_origin,
    };
    srv->eio = eio_server_new(srv->loop, &eo, &sio_eio_events, srv);
    if (!srv->eio) {
        echo_err_set(err, "realtime: libsodium initialisation failed");
        goto fail;
    }
    if (o->test_events) {
        sio_on(srv, "echo", test_echo, NULL);
        sio_on(srv, "echo_user", test_echo_user, NULL);
        sio_on(srv, "disconnect_me", test_disconnect_me, NULL);
    }
    if (rt_loop_start(srv->loop, err) != 0) goto fail;
    return srv;
fail:
    sio_server_free(srv);
    return NULL;
}

sio_server *sio_server_mount(const config *cfg, http_router *r, sio_auth_fn auth, void *auth_ud,
                             struct echo_err *err)
{
    struct strbuf buf;
    strbuf_init(&buf);
    struct sio_options o;
    sio_options_from_config(&o, cfg, &buf);
    sio_server *srv = sio_server_new(&o, err);
    strbuf_deinit(&buf);
    if (!srv) return NULL;
    sio_set_auth(srv, auth, auth_ud);
    if (sio_mount(srv, r, err) != 0) {
        sio_server_free(srv);
        return NULL;
    }
    return srv;
}

void sio_set_auth(sio_server *srv, sio_auth_fn fn, void *ud)
{
    srv->auth = fn;
    srv->auth_ud = ud;
}

int sio_on(sio_server *srv, const char *event, sio_event_fn fn, void *ud)
{
    if (!event || !*event || !fn || sio_event_reserved(event) || find_handler(srv, event))
        return -1;
    srv->handlers = xrealloc(srv->handlers, (srv->nhandlers + 1) * sizeof(*srv->handlers));
    srv->handlers[srv->nhandlers].name = xstrdup(event);
    srv->handlers[srv->nhandlers].fn = fn;
    srv->handlers[srv->nhandlers].ud = ud;
    srv->nhandlers++;
    return 0;
}

void sio_on_connect(sio_server *srv, sio_connect_fn fn, void *ud)
{
    srv->on_connect = fn;
    srv->connect_ud = ud;
}

void sio_on_disconnect(sio_server *srv, sio_disconnect_fn fn, void *ud)
{
    srv->on_disconnect = fn;
    srv->disconnect_ud = ud;
}

/*
 * The shutdown sequence: stop the thread (we become the loop's owner), end
 * every session (disconnect hooks run here, held polls are answered), give
 * the WebSockets a moment to send their close frames, abort the rest, and
 * from then on run posted work as cancelled.
 */
static void server_stop(sio_server *srv)
{
    if (srv->stopped || !srv->loop) return;
    srv->stopped = true;
    rt_loop_stop(srv->loop);
    if (srv->eio) {
        eio_server_close_all(srv->eio);
        uint64_t deadline = time_mono_ns() + 500000000ull;
        while (eio_server_ws_count(srv->eio) > 0 && time_mono_ns() < deadline)
            rt_loop_run_once(srv->loop, 20);
        eio_server_abort_ws(srv->eio);
        rt_loop_run_once(srv->loop, 0);
    }
    rt_loop_close(srv->loop);
}

void sio_http_stop_hook(http_server *hs, void *arg)
{
    (void)hs;
    server_stop(arg);
}

void sio_server_free(sio_server *srv)
{
    if (!srv) return;
    server_stop(srv);
    if (srv->eio) eio_server_free(srv->eio);
    rt_loop_free(srv->loop);
    /* Sockets were all ended (and freed by the loop's deferred frees). */
    u64_deinit(&srv->by_handle);
    u64_deinit(&srv->by_user);
    for (size_t i = 0; i < srv->nhandlers; i++)
        free(srv->handlers[i].name);
    free(srv->handlers);
    struct sio_upgrade *u = srv->upgrades;
    while (u) {
        struct sio_upgrade *next = u->next;
        free(u);
        u = next;
    }
    pthread_mutex_destroy(&srv->upgrades_lock);
    free(srv->site_origin);
    free(srv->default_origin);
    free(srv);
}
