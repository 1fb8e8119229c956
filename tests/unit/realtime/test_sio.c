/*
 * test_sio.c - the Socket.IO v5 server with its own realtime thread, driven
 * through WebSocket-only Engine.IO sessions on socketpairs: CONNECT with and
 * without authentication, other namespaces, events with and without acks,
 * emits from another thread to a socket and to every socket of a user,
 * connect/disconnect hooks with their reasons, malformed and binary packets,
 * the connect timeout, the test-only events and the shutdown.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "realtime/realtime.h"
#include "realtime/sio_internal.h"
#include "ws_client.h"

/* ---- what the hooks saw (written on the realtime thread) ---- */

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
    int connects, disconnects, events;
    char reason[64];
    char args[512];
    bool had_ack;
    uint64_t last_socket;
    int64_t last_user;
    char last_sid[32];
} seen;

static void reset_seen(void)
{
    pthread_mutex_lock(&mu);
    memset(&seen, 0, sizeof(seen));
    pthread_mutex_unlock(&mu);
}

static int seen_int(int *field)
{
    pthread_mutex_lock(&mu);
    int v = *field;
    pthread_mutex_unlock(&mu);
    return v;
}

static bool wait_for(int *field, int value)
{
    uint64_t end = time_mono_ns() + 3000000000ull;
    while (time_mono_ns() < end) {
        if (seen_int(field) >= value) return true;
        usleep(2000);
    }
    return false;
}

static void on_connect(sio_server *srv, sio_socket *s, void *ud)
{
    (void)srv;
    (void)ud;
    pthread_mutex_lock(&mu);
    seen.connects++;
    seen.last_socket = sio_socket_id(s);
    seen.last_user = sio_socket_user(s);
    snprintf(seen.last_sid, sizeof(seen.last_sid), "%s", sio_socket_sid(s));
    pthread_mutex_unlock(&mu);
}

static void on_disconnect(sio_server *srv, sio_socket *s, const char *reason, void *ud)
{
    (void)srv;
    (void)s;
    (void)ud;
    pthread_mutex_lock(&mu);
    seen.disconnects++;
    snprintf(seen.reason, sizeof(seen.reason), "%s", reason);
    pthread_mutex_unlock(&mu);
}

/* "send_message": records its arguments and acks {"ok":true,"n":<count>}. */
static void on_send_message(sio_server *srv, sio_socket *s, json_t *args, const struct sio_ack *ack,
                            void *ud)
{
    (void)s;
    (void)ud;
    char *enc = json_dumps(args, JSON_COMPACT);
    pthread_mutex_lock(&mu);
    seen.events++;
    snprintf(seen.args, sizeof(seen.args), "%s", enc);
    seen.had_ack = ack != NULL;
    int n = seen.events;
    pthread_mutex_unlock(&mu);
    free(enc);
    if (ack) {
        json_t *reply = json_pack("{s:b,s:i}", "ok", 1, "n", n);
        sio_ack_reply(srv, ack, reply);
        json_decref(reply);
    }
}

static sio_server *server_new(bool test_events, unsigned connect_timeout_ms)
{
    struct sio_options o;
    sio_options_init(&o);
    o.default_origin = "http://127.0.0.1:5000";
    o.test_events = test_events;
    if (connect_timeout_ms) o.connect_timeout_ms = connect_timeout_ms;
    sio_server *srv = sio_server_new(&o, NULL);
    assert_non_null(srv);
    sio_on_connect(srv, on_connect, NULL);
    sio_on_disconnect(srv, on_disconnect, NULL);
    assert_int_equal(sio_on(srv, "send_message", on_send_message, NULL), 0);
    reset_seen();
    return srv;
}

/* ---- a WebSocket-only client ---- */

struct client {
    int fd; /* our end */
    int server_fd;
    char buf[8192];
};

static void release_fd(void *ud)
{
    close((int)(intptr_t)ud);
}

/* Opens an Engine.IO session as `user` (0: not logged in) and reads the open packet. */
static void client_open(struct client *c, sio_server *srv, int64_t user)
{
    int fds[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    c->fd = fds[1];
    c->server_fd = fds[0];
    eio_server_ws_attach(srv->eio, NULL, user, fds[0], NULL, 0, release_fd,
                         (void *)(intptr_t)fds[0]);
    assert_true(wsc_expect_text(NULL, c->fd, c->buf, sizeof(c->buf)));
    assert_int_equal(c->buf[0], '0');
}

/* Reads the next Engine.IO message, answering pings; returns its text. */
static const char *client_next(struct client *c)
{
    for (;;) {
        if (!wsc_expect_text(NULL, c->fd, c->buf, sizeof(c->buf))) return NULL;
        if (!strcmp(c->buf, "2")) {
            wsc_text(c->fd, "3");
            continue;
        }
        return c->buf;
    }
}

static void client_connect(struct client *c, sio_server *srv, int64_t user)
{
    client_open(c, srv, user);
    assert_true(wsc_text(c->fd, "40"));
    const char *m = client_next(c);
    assert_non_null(m);
    assert_true(!strncmp(m, "40{\"sid\":\"", 10));
}

/* True once the server closed our connection (close frame or EOF). */
static bool client_closed(struct client *c)
{
    for (;;) {
        size_t len;
        int op = wsc_frame(NULL, c->fd, c->buf, sizeof(c->buf), &len);
        if (op == 0x8) {
            wsc_send(c->fd, true, 0x8, "\x03\xe8", 2, true);
            return wsc_eof(NULL, c->fd);
        }
        if (op < 0) return false;
    }
}

static void client_close(struct client *c)
{
    close(c->fd);
}

/* ---- tests ---- */

static void test_connect_auth(void **state)
{
    (void)state;
    sio_server *srv = server_new(false, 0);
    struct client c;

    /* Not logged in: CONNECT_ERROR unauthorized, and no test backdoor here. */
    client_open(&c, srv, 0);
    assert_true(wsc_text(c.fd, "40{\"test_user\":5}"));
    assert_string_equal(client_next(&c), "44{\"message\":\"unauthorized\"}");
    assert_int_equal(seen_int(&seen.connects), 0);
    client_close(&c);

    /* Logged in: CONNECT answered with the socket id; the connect hook runs. */
    client_open(&c, srv, 9);
    assert_true(wsc_text(c.fd, "40"));
    const char *m = client_next(&c);
    assert_non_null(m);
    json_t *j = json_loads(m + 2, 0, NULL);
    assert_non_null(j);
    const char *sid = json_string_value(json_object_get(j, "sid"));
    assert_int_equal(strlen(sid), 20);
    assert_true(wait_for(&seen.connects, 1));
    pthread_mutex_lock(&mu);
    assert_string_equal(seen.last_sid, sid);
    assert_int_equal(seen.last_user, 9);
    pthread_mutex_unlock(&mu);
    json_decref(j);
    assert_int_equal(sio_server_socket_count(srv), 1);

    /* Another namespace is refused without closing the connection. */
    assert_true(wsc_text(c.fd, "40/admin,"));
    assert_string_equal(client_next(&c), "44/admin,{\"message\":\"Invalid namespace\"}");
    assert_true(wsc_text(c.fd, "42[\"send_message\",{\"message\":\"still here\"}]"));
    assert_true(wait_for(&seen.events, 1));

    /* DISCONNECT: the hook runs with the client's reason. */
    assert_true(wsc_text(c.fd, "41"));
    assert_true(wait_for(&seen.disconnects, 1));
    pthread_mutex_lock(&mu);
    assert_string_equal(seen.reason, "client namespace disconnect");
    pthread_mutex_unlock(&mu);
    assert_int_equal(sio_server_socket_count(srv), 0);
    assert_true(client_closed(&c));
    client_close(&c);
    sio_server_free(srv);
}

static void test_test_user(void **state)
{
    (void)state;
    sio_server *srv = server_new(true, 0);
    struct client c;
    client_open(&c, srv, 0);
    assert_true(wsc_text(c.fd, "40{\"test_user\":0}"));
    assert_string_equal(client_next(&c), "44{\"message\":\"unauthorized\"}");
    assert_true(wsc_text(c.fd, "40{\"test_user\":\"5\"}"));
    assert_string_equal(client_next(&c), "44{\"message\":\"unauthorized\"}");
    assert_true(wsc_text(c.fd, "40{\"test_user\":5}"));
    assert_true(!strncmp(client_next(&c), "40{\"sid\":", 9));
    assert_true(wait_for(&seen.connects, 1));
    assert_int_equal(seen_int((int *)&seen.last_user), 5);

    /* echo: ack with the argument, and an "echo" event back. */
    assert_true(wsc_text(c.fd, "421[\"echo\",{\"x\":[1,\"\xc3\xa9\"]}]"));
    assert_string_equal(client_next(&c), "431[{\"x\":[1,\"\xc3\xa9\"]}]");
    assert_string_equal(client_next(&c), "42[\"echo\",{\"x\":[1,\"\xc3\xa9\"]}]");
    /* disconnect_me: DISCONNECT, then the connection closes. */
    assert_true(wsc_text(c.fd, "42[\"disconnect_me\"]"));
    assert_string_equal(client_next(&c), "41");
    assert_true(client_closed(&c));
    assert_true(wait_for(&seen.disconnects, 1));
    pthread_mutex_lock(&mu);
    assert_string_equal(seen.reason, "server disconnect");
    pthread_mutex_unlock(&mu);
    client_close(&c);
    sio_server_free(srv);
}

static void test_events_and_acks(void **state)
{
    (void)state;
    sio_server *srv = server_new(false, 0);
    struct client c;
    client_connect(&c, srv, 3);

    /* Without ack id: the handler gets the arguments (name removed), no ack. */
    assert_true(wsc_text(c.fd, "42[\"send_message\",{\"message\":\"hi\"},2]"));
    assert_true(wait_for(&seen.events, 1));
    pthread_mutex_lock(&mu);
    assert_string_equal(seen.args, "[{\"message\":\"hi\"},2]");
    assert_false(seen.had_ack);
    pthread_mutex_unlock(&mu);

    /* With an ack id: answered as ACK with that id. */
    assert_true(wsc_text(c.fd, "4217[\"send_message\",{\"message\":\"again\"}]"));
    assert_string_equal(client_next(&c), "4317[{\"ok\":true,\"n\":2}]");

    /* Events nobody handles are ignored, and so are client ACKs. */
    assert_true(wsc_text(c.fd, "42[\"unknown_event\",1]"));
    assert_true(wsc_text(c.fd, "435[]"));
    assert_true(wsc_text(c.fd, "428[\"send_message\"]"));
    assert_string_equal(client_next(&c), "438[{\"ok\":true,\"n\":3}]");
    assert_int_equal(seen_int(&seen.disconnects), 0);
    client_close(&c);
    assert_true(wait_for(&seen.disconnects, 1));
    pthread_mutex_lock(&mu);
    assert_string_equal(seen.reason, "transport close");
    pthread_mutex_unlock(&mu);
    sio_server_free(srv);
}

struct emitter {
    sio_server *srv;
    uint64_t socket;
    int64_t user;
    int n;
};

static void *emit_thread(void *arg)
{
    struct emitter *e = arg;
    for (int i = 0; i < e->n; i++) {
        json_t *d = json_pack("{s:i,s:s}", "id", i, "text", "w\xc3\xb6rd ");
        if (e->socket)
            sio_emit_socket(e->srv, e->socket, "response_chunk", d);
        else
            sio_emit_user(e->srv, e->user, "response_chunk", d);
        json_decref(d);
    }
    return NULL;
}

static void test_emit_from_threads(void **state)
{
    (void)state;
    sio_server *srv = server_new(false, 0);
    struct client a, b, other;
    client_connect(&a, srv, 11);
    assert_true(wait_for(&seen.connects, 1));
    uint64_t a_id = seen.last_socket;
    client_connect(&b, srv, 11); /* the same user's second tab */
    client_connect(&other, srv, 12);
    assert_true(wait_for(&seen.connects, 3));

    /* To one socket, from another thread, in order. */
    struct emitter e = {srv, a_id, 0, 50};
    pthread_t th;
    pthread_create(&th, NULL, emit_thread, &e);
    pthread_join(th, NULL);
    for (int i = 0; i < 50; i++) {
        char want[128];
        snprintf(want, sizeof(want), "42[\"response_chunk\",{\"id\":%d,\"text\":\"w\xc3\xb6rd \"}]",
                 i);
        assert_string_equal(client_next(&a), want);
    }
    /* To a user: both tabs get it, the other user does not. */
    e = (struct emitter){srv, 0, 11, 1};
    pthread_create(&th, NULL, emit_thread, &e);
    pthread_join(th, NULL);
    json_t *end = json_pack("{s:s}", "finish_reason", "stop");
    assert_int_equal(sio_emit_user(srv, 11, "response_end", end), 0);
    assert_int_equal(sio_emit_user(srv, 12, "response_end", NULL), 0);
    json_decref(end);
    assert_string_equal(client_next(&a),
                        "42[\"response_chunk\",{\"id\":0,\"text\":\"w\xc3\xb6rd \"}]");
    assert_string_equal(client_next(&a), "42[\"response_end\",{\"finish_reason\":\"stop\"}]");
    assert_string_equal(client_next(&b),
                        "42[\"response_chunk\",{\"id\":0,\"text\":\"w\xc3\xb6rd \"}]");
    assert_string_equal(client_next(&b), "42[\"response_end\",{\"finish_reason\":\"stop\"}]");
    assert_string_equal(client_next(&other), "42[\"response_end\"]");
    /* A socket that is gone is skipped silently; an unknown user too. */
    client_close(&a);
    assert_true(wait_for(&seen.disconnects, 1));
    assert_int_equal(sio_emit_socket(srv, a_id, "x", NULL), 0);
    assert_int_equal(sio_emit_user(srv, 999, "x", NULL), 0);
    assert_int_equal(sio_emit_user(srv, 11, "after", NULL), 0);
    assert_string_equal(client_next(&b), "42[\"after\"]");
    client_close(&b);
    client_close(&other);
    sio_server_free(srv);
}

static void test_bad_packets(void **state)
{
    (void)state;
    sio_server *srv = server_new(false, 0);
    static const char *bad[] = {
        "42[",                                           /* truncated JSON */
        "42[\"connect\"]",                               /* reserved name */
        "42{\"a\":1}",                                   /* not an array */
        "44{\"message\":\"x\"}",                         /* CONNECT_ERROR from a client */
        "4x",                                            /* unknown type */
        "4",                                             /* empty Socket.IO packet */
        "451-[\"x\",{\"_placeholder\":true,\"num\":0}]", /* binary event */
    };
    struct client keep;
    client_connect(&keep, srv, 1);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct client c;
        client_connect(&c, srv, 2);
        assert_true(wsc_text(c.fd, bad[i]));
        if (!client_closed(&c)) fail_msg("'%s' did not close the connection", bad[i]);
        client_close(&c);
        assert_true(wait_for(&seen.disconnects, (int)i + 1));
        pthread_mutex_lock(&mu);
        const char *want = i == 6 ? "binary not supported" : "parse error";
        if (strcmp(seen.reason, want) != 0) fail_msg("'%s': reason '%s'", bad[i], seen.reason);
        pthread_mutex_unlock(&mu);
    }
    /* A binary WebSocket frame is refused the same way. */
    struct client c;
    client_connect(&c, srv, 2);
    assert_true(wsc_send(c.fd, true, 0x2, "\x01\x02", 2, true));
    assert_true(client_closed(&c));
    client_close(&c);
    /* The first client never noticed. */
    assert_true(wsc_text(keep.fd, "429[\"send_message\"]"));
    assert_string_equal(client_next(&keep), "439[{\"ok\":true,\"n\":1}]");
    client_close(&keep);
    sio_server_free(srv);
}

static void test_connect_timeout(void **state)
{
    (void)state;
    sio_server *srv = server_new(false, 100);
    struct client c;
    client_open(&c, srv, 4);
    /* Events before CONNECT are dropped. */
    assert_true(wsc_text(c.fd, "42[\"send_message\"]"));
    assert_true(client_closed(&c));
    assert_int_equal(seen_int(&seen.events), 0);
    assert_int_equal(seen_int(&seen.disconnects), 0); /* never connected */
    client_close(&c);
    sio_server_free(srv);
}

static void test_disconnect_user(void **state)
{
    (void)state;
    sio_server *srv = server_new(false, 0);
    struct client a, b, other;
    client_connect(&a, srv, 31);
    client_connect(&b, srv, 31);
    client_connect(&other, srv, 32);
    assert_true(wait_for(&seen.connects, 3));
    sio_disconnect_user(srv, 31);
    assert_string_equal(client_next(&a), "41");
    assert_true(client_closed(&a));
    assert_string_equal(client_next(&b), "41");
    assert_true(client_closed(&b));
    assert_true(wait_for(&seen.disconnects, 2));
    assert_int_equal(sio_server_socket_count(srv), 1);
    /* The other user is untouched. */
    assert_true(wsc_text(other.fd, "423[\"send_message\"]"));
    assert_string_equal(client_next(&other), "433[{\"ok\":true,\"n\":1}]");
    client_close(&a);
    client_close(&b);
    client_close(&other);
    sio_server_free(srv);
}

static void test_options_from_config(void **state)
{
    (void)state;
    config *cfg = config_new();
    struct strbuf buf;
    strbuf_init(&buf);
    struct sio_options o;
    sio_options_from_config(&o, cfg, &buf);
    assert_null(o.site_origin);
    assert_string_equal(o.default_origin, "http://127.0.0.1:5000");
    assert_false(o.test_events);
    assert_int_equal(o.ping_interval_ms, 25000);
    assert_int_equal(o.ping_timeout_ms, 20000);
    assert_int_equal(o.max_payload, 1000000);
    strbuf_deinit(&buf);

    assert_int_equal(config_set(cfg, "ECHO_PORT", "8080", CONFIG_FLAG, NULL), 0);
    assert_int_equal(config_set(cfg, "ECHO_SITE_ORIGIN", "https://chat.example", CONFIG_FLAG, NULL),
                     0);
    assert_int_equal(config_set(cfg, "ECHO_TEST_EVENTS", "1", CONFIG_FLAG, NULL), 0);
    sio_options_from_config(&o, cfg, &buf);
    assert_string_equal(o.site_origin, "https://chat.example");
    assert_string_equal(o.default_origin, "http://127.0.0.1:8080");
    assert_true(o.test_events);
    strbuf_deinit(&buf);

    /* Never in production. */
    assert_int_equal(config_set(cfg, "ECHO_ENV", "production", CONFIG_FLAG, NULL), 0);
    sio_options_from_config(&o, cfg, &buf);
    assert_false(o.test_events);
    strbuf_deinit(&buf);
    config_free(cfg);
}

static void test_registration(void **state)
{
    (void)state;
    sio_server *srv = server_new(false, 0);
    assert_int_equal(sio_on(srv, "send_message", on_send_message, NULL), -1); /* taken */
    assert_int_equal(sio_on(srv, "connect", on_send_message, NULL), -1);      /* reserved */
    assert_int_equal(sio_on(srv, "", on_send_message, NULL), -1);
    assert_int_equal(sio_on(srv, "stop_generation", on_send_message, NULL), 0);
    /* Arguments that cannot be serialised are refused in the caller. */
    json_t *bad = json_stringn_nocheck("\xff", 1);
    assert_int_equal(sio_emit_user(srv, 1, "x", bad), -1);
    json_decref(bad);
    sio_server_free(srv);
}

static void test_shutdown(void **state)
{
    (void)state;
    sio_server *srv = server_new(false, 0);
    struct client c[3];
    for (int i = 0; i < 3; i++)
        client_connect(&c[i], srv, 20 + i);
    assert_true(wait_for(&seen.connects, 3));
    sio_server_free(srv);
    assert_int_equal(seen_int(&seen.disconnects), 3);
    pthread_mutex_lock(&mu);
    assert_string_equal(seen.reason, "server shutdown");
    pthread_mutex_unlock(&mu);
    for (int i = 0; i < 3; i++) {
        assert_true(wsc_eof(NULL, c[i].fd));
        client_close(&c[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_connect_auth),    cmocka_unit_test(test_test_user),
        cmocka_unit_test(test_events_and_acks), cmocka_unit_test(test_emit_from_threads),
        cmocka_unit_test(test_bad_packets),     cmocka_unit_test(test_connect_timeout),
        cmocka_unit_test(test_disconnect_user), cmocka_unit_test(test_options_from_config),
        cmocka_unit_test(test_registration),    cmocka_unit_test(test_shutdown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
