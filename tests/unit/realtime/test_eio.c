/*
 * test_eio.c - the Engine.IO v4 server without HTTP: requests are routed and
 * answered through recording eio_replies, the loop is driven by the test, and
 * WebSockets are socketpairs with a hand-written client. Covers the error
 * answers (version, transport, method, Origin, unknown sid), the handshake,
 * long-polling (held GET, batching, POST), overlapping GETs, malformed and
 * oversize POSTs, the heartbeat and its timeout, a vanished poller, the
 * polling -> WebSocket upgrade (2probe/3probe/noop/5), WebSocket-only
 * sessions, bad WebSocket packets and the shutdown of every session.
 */
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

#include "realtime/eio.h"
#include "ws_client.h"

/* ---- a recording reply ---- */

struct rec {
    int calls;
    int status;
    char ct[64];
    char body[4096];
    size_t len;
};

static void rec_respond(void *ctx, int status, const char *ct, const char *body, size_t len)
{
    struct rec *r = ctx;
    r->calls++;
    r->status = status;
    snprintf(r->ct, sizeof(r->ct), "%s", ct);
    r->len = len < sizeof(r->body) - 1 ? len : sizeof(r->body) - 1;
    memcpy(r->body, body, r->len);
    r->body[r->len] = '\0';
}

static struct eio_reply reply_to(struct rec *r)
{
    memset(r, 0, sizeof(*r));
    return (struct eio_reply){rec_respond, r};
}

/* ---- a recording upper layer ---- */

struct upper {
    int opens, closes, messages;
    eio_session *last;
    char last_msg[1024];
    bool last_binary;
    char close_reason[64];
    bool echo; /* send every message back */
};

static void up_open(eio_session *s, void *ud)
{
    struct upper *u = ud;
    u->opens++;
    u->last = s;
}

static void up_message(eio_session *s, bool binary, const char *data, size_t len, void *ud)
{
    struct upper *u = ud;
    u->messages++;
    u->last_binary = binary;
    snprintf(u->last_msg, sizeof(u->last_msg), "%.*s", (int)len, data);
    if (u->echo) eio_session_send(s, data, len);
}

static void up_close(eio_session *s, const char *reason, void *ud)
{
    (void)s;
    struct upper *u = ud;
    u->closes++;
    snprintf(u->close_reason, sizeof(u->close_reason), "%s", reason);
}

static const struct eio_events up_events = {up_open, up_message, up_close};

struct fixture {
    rt_loop *loop;
    eio_server *srv;
    struct upper up;
};

static struct fixture *fixture_new(unsigned ping_interval, unsigned ping_timeout)
{
    struct fixture *f = calloc(1, sizeof(*f));
    f->loop = rt_loop_new(NULL);
    struct eio_options o = {
        .ping_interval_ms = ping_interval,
        .ping_timeout_ms = ping_timeout,
        .max_payload = 1000,
        .max_backlog = 100000,
        .site_origin = NULL,
        .default_origin = "http://127.0.0.1:5000",
    };
    f->srv = eio_server_new(f->loop, &o, &up_events, &f->up);
    assert_non_null(f->srv);
    return f;
}

static void fixture_free(struct fixture *f)
{
    eio_server_close_all(f->srv);
    for (int i = 0; i < 20 && eio_server_ws_count(f->srv) > 0; i++)
        rt_loop_run_once(f->loop, 5);
    eio_server_abort_ws(f->srv);
    rt_loop_run_once(f->loop, 0);
    eio_server_free(f->srv);
    rt_loop_free(f->loop);
    free(f);
}

static void pump(struct fixture *f, int ms)
{
    uint64_t end = time_mono_ns() + (uint64_t)ms * 1000000u;
    do
        rt_loop_run_once(f->loop, 1);
    while (time_mono_ns() < end);
}

static void pump_until_calls(struct fixture *f, struct rec *r, int calls, int timeout_ms)
{
    uint64_t end = time_mono_ns() + (uint64_t)timeout_ms * 1000000u;
    while (r->calls < calls && time_mono_ns() < end)
        rt_loop_run_once(f->loop, 5);
}

/* Opens a polling session; returns its sid (static buffer per call site). */
static void open_session(struct fixture *f, char sid[EIO_SID_LEN + 1])
{
    struct rec r;
    eio_server_http_open(f->srv, 42, reply_to(&r));
    pump_until_calls(f, &r, 1, 3000);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.ct, "text/plain; charset=UTF-8");
    assert_int_equal(r.body[0], '0');
    json_t *j = json_loads(r.body + 1, 0, NULL);
    assert_non_null(j);
    const char *s = json_string_value(json_object_get(j, "sid"));
    assert_non_null(s);
    assert_int_equal(strlen(s), EIO_SID_LEN);
    for (const char *p = s; *p; p++)
        assert_non_null(
            strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", *p));
    strcpy(sid, s);
    json_decref(j);
}

/* ---- routing ---- */

static enum eio_route route(struct fixture *f, const char *method, const char *eio,
                            const char *transport, const char *sid, const char *origin,
                            bool upgrade, int *status, const char **body)
{
    struct eio_http_request rq = {method, eio, transport, sid, origin, "127.0.0.1:5000", upgrade};
    return eio_server_route(f->srv, &rq, status, body);
}

static void test_route_errors(void **state)
{
    (void)state;
    struct fixture *f = fixture_new(25000, 20000);
    int st;
    const char *body;
    assert_int_equal(route(f, "GET", NULL, "polling", NULL, NULL, false, &st, &body),
                     EIO_ROUTE_ERROR);
    assert_int_equal(st, 400);
    assert_string_equal(body, "{\"code\":5,\"message\":\"Unsupported protocol version\"}");
    assert_int_equal(route(f, "GET", "3", "polling", NULL, NULL, false, &st, &body),
                     EIO_ROUTE_ERROR);
    assert_int_equal(route(f, "GET", "4", "flashsocket", NULL, NULL, false, &st, &body),
                     EIO_ROUTE_ERROR);
    assert_string_equal(body, "{\"code\":0,\"message\":\"Transport unknown\"}");
    assert_int_equal(route(f, "GET", "4", NULL, NULL, NULL, false, &st, &body), EIO_ROUTE_ERROR);
    assert_string_equal(body, "{\"code\":0,\"message\":\"Transport unknown\"}");
    /* Cross-site: a page on another origin may not open a session. */
    assert_int_equal(
        route(f, "GET", "4", "websocket", NULL, "http://evil.example", true, &st, &body),
        EIO_ROUTE_ERROR);
    assert_int_equal(st, 403);
    assert_string_equal(body, "{\"code\":4,\"message\":\"Forbidden\"}");
    assert_int_equal(route(f, "POST", "4", "polling", NULL, "null", false, &st, &body),
                     EIO_ROUTE_ERROR);
    assert_int_equal(st, 403);
    /* websocket transport without the upgrade headers, or not a GET. */
    assert_int_equal(route(f, "GET", "4", "websocket", NULL, NULL, false, &st, &body),
                     EIO_ROUTE_ERROR);
    assert_int_equal(st, 400);
    assert_int_equal(route(f, "POST", "4", "websocket", NULL, NULL, true, &st, &body),
                     EIO_ROUTE_ERROR);
    assert_string_equal(body, "{\"code\":2,\"message\":\"Bad handshake method\"}");
    /* A handshake must be a GET. */
    assert_int_equal(route(f, "POST", "4", "polling", NULL, NULL, false, &st, &body),
                     EIO_ROUTE_ERROR);
    assert_string_equal(body, "{\"code\":2,\"message\":\"Bad handshake method\"}");
    /* Unknown sids, also odd-sized ones. */
    const char *sids[] = {"AAAAAAAAAAAAAAAAAAAA", "x", "", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"};
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(route(f, "GET", "4", "polling", sids[i], NULL, false, &st, &body),
                         EIO_ROUTE_ERROR);
        assert_int_equal(st, 400);
        assert_string_equal(body, "{\"code\":1,\"message\":\"Session ID unknown\"}");
        assert_int_equal(route(f, "GET", "4", "websocket", sids[i], NULL, true, &st, &body),
                         EIO_ROUTE_ERROR);
        assert_string_equal(body, "{\"code\":1,\"message\":\"Session ID unknown\"}");
    }
    assert_int_equal(
        route(f, "PUT", "4", "polling", "AAAAAAAAAAAAAAAAAAAA", NULL, false, &st, &body),
        EIO_ROUTE_ERROR);
    /* The good cases. */
    assert_int_equal(route(f, "GET", "4", "polling", NULL, NULL, false, &st, &body),
                     EIO_ROUTE_POLL_OPEN);
    assert_int_equal(
        route(f, "GET", "4", "polling", NULL, "http://127.0.0.1:5000", false, &st, &body),
        EIO_ROUTE_POLL_OPEN);
    assert_int_equal(route(f, "GET", "4", "websocket", NULL, NULL, true, &st, &body),
                     EIO_ROUTE_WS_OPEN);
    char sid[EIO_SID_LEN + 1];
    open_session(f, sid);
    assert_int_equal(route(f, "GET", "4", "polling", sid, NULL, false, &st, &body),
                     EIO_ROUTE_POLL_GET);
    assert_int_equal(route(f, "POST", "4", "polling", sid, NULL, false, &st, &body),
                     EIO_ROUTE_POLL_POST);
    assert_int_equal(route(f, "GET", "4", "websocket", sid, NULL, true, &st, &body),
                     EIO_ROUTE_WS_UPGRADE);
    fixture_free(f);
}

static void test_origin(void **state)
{
    (void)state;
    const char *def = "http://127.0.0.1:5000";
    /* No Origin: non-browser clients. */
    assert_true(eio_origin_allowed(NULL, def, NULL, "127.0.0.1:5000"));
    /* Same origin as the Host the browser talked to. */
    assert_true(eio_origin_allowed(NULL, def, "http://localhost:5000", "localhost:5000"));
    assert_true(eio_origin_allowed(NULL, def, "https://chat.example", "chat.example"));
    assert_true(eio_origin_allowed(NULL, def, "HTTP://127.0.0.1:5000", "other:1"));
    assert_false(eio_origin_allowed(NULL, def, "http://evil.example", "localhost:5000"));
    assert_false(eio_origin_allowed(NULL, def, "http://localhost:5001", "localhost:5000"));
    assert_false(eio_origin_allowed(NULL, def, "null", "localhost:5000"));
    assert_false(eio_origin_allowed(NULL, def, "http://localhost:5000.evil", "localhost:5000"));
    /* With a configured site origin, only it. */
    const char *site = "https://chat.example.com/";
    assert_true(eio_origin_allowed(site, def, "https://chat.example.com", "internal:8080"));
    assert_false(eio_origin_allowed(site, def, "http://chat.example.com", "chat.example.com"));
    assert_false(eio_origin_allowed(site, def, "http://127.0.0.1:5000", "127.0.0.1:5000"));
}

/* ---- polling ---- */

static void test_polling_roundtrip(void **state)
{
    (void)state;
    struct fixture *f = fixture_new(25000, 20000);
    f->up.echo = true;
    char sid[EIO_SID_LEN + 1];
    open_session(f, sid);
    assert_int_equal(f->up.opens, 1);
    assert_int_equal(eio_session_user(f->up.last), 42);
    assert_string_equal(eio_session_sid(f->up.last), sid);
    assert_string_equal(eio_session_transport(f->up.last), "polling");
    assert_int_equal(eio_server_session_count(f->srv), 1);

    /* The GET is held while there is nothing to say. */
    struct rec get, post;
    eio_server_http_poll(f->srv, sid, reply_to(&get));
    pump(f, 30);
    assert_int_equal(get.calls, 0);

    /* A POST of two messages: "ok", both delivered, both echoed in ONE response. */
    const char payload[] = "4hello\x1e"
                           "4w\xc3\xb6rld";
    eio_server_http_post(f->srv, sid, payload, sizeof(payload) - 1, reply_to(&post));
    pump_until_calls(f, &get, 1, 3000);
    assert_int_equal(post.calls, 1);
    assert_int_equal(post.status, 200);
    assert_string_equal(post.body, "ok");
    assert_int_equal(f->up.messages, 2);
    assert_string_equal(f->up.last_msg, "w\xc3\xb6rld");
    assert_int_equal(get.calls, 1);
    assert_int_equal(get.status, 200);
    assert_string_equal(get.body, "4hello\x1e"
                                  "4w\xc3\xb6rld");

    /* Packets queued while no GET waits go out with the next GET at once. */
    eio_server_http_post(f->srv, sid, "4again", 6, reply_to(&post));
    pump_until_calls(f, &post, 1, 3000);
    eio_server_http_poll(f->srv, sid, reply_to(&get));
    pump_until_calls(f, &get, 1, 3000);
    assert_string_equal(get.body, "4again");

    /* A noop and a ping from the client are fine; a pong is answered nothing. */
    eio_server_http_post(f->srv, sid,
                         "6\x1e"
                         "2x",
                         4, reply_to(&post));
    pump_until_calls(f, &post, 1, 3000);
    assert_string_equal(post.body, "ok");
    eio_server_http_poll(f->srv, sid, reply_to(&get));
    pump_until_calls(f, &get, 1, 3000);
    assert_string_equal(get.body, "3x");

    /* The client closes: the session ends with "client close". */
    eio_server_http_post(f->srv, sid, "1", 1, reply_to(&post));
    pump_until_calls(f, &post, 1, 3000);
    assert_int_equal(f->up.closes, 1);
    assert_string_equal(f->up.close_reason, "client close");
    assert_int_equal(eio_server_session_count(f->srv), 0);
    /* The sid is unknown from now on. */
    eio_server_http_poll(f->srv, sid, reply_to(&get));
    pump_until_calls(f, &get, 1, 3000);
    assert_int_equal(get.status, 400);
    assert_string_equal(get.body, "{\"code\":1,\"message\":\"Session ID unknown\"}");
    assert_string_equal(get.ct, "application/json");
    fixture_free(f);
}

static void test_polling_errors(void **state)
{
    (void)state;
    struct fixture *f = fixture_new(25000, 20000);
    char sid[EIO_SID_LEN + 1];
    struct rec get, get2, post;

    /* Two GETs at once: the second is refused, the session closes, the first
     * is answered with a close packet. */
    open_session(f, sid);
    eio_server_http_poll(f->srv, sid, reply_to(&get));
    eio_server_http_poll(f->srv, sid, reply_to(&get2));
    pump_until_calls(f, &get2, 1, 3000);
    assert_int_equal(get2.status, 400);
    assert_int_equal(get.calls, 1);
    assert_string_equal(get.body, "1");
    assert_string_equal(f->up.close_reason, "overlapping poll");

    /* A malformed payload: 400 and the session closes (only this one). */
    char other[EIO_SID_LEN + 1];
    open_session(f, other);
    open_session(f, sid);
    eio_server_http_poll(f->srv, sid, reply_to(&get));
    eio_server_http_post(f->srv, sid,
                         "4ok\x1e"
                         "9bad",
                         8, reply_to(&post));
    pump_until_calls(f, &post, 1, 3000);
    assert_int_equal(post.status, 400);
    assert_string_equal(post.body, "{\"code\":3,\"message\":\"Bad request\"}");
    assert_int_equal(get.calls, 1);
    assert_string_equal(get.body, "1");
    assert_string_equal(f->up.close_reason, "parse error");
    assert_int_equal(f->up.messages, 0); /* nothing of a bad payload is delivered */
    assert_int_equal(eio_server_session_count(f->srv), 1);

    /* Invalid UTF-8 and an empty body are malformed too. */
    open_session(f, sid);
    eio_server_http_post(f->srv, sid, "4\xff", 2, reply_to(&post));
    pump_until_calls(f, &post, 1, 3000);
    assert_int_equal(post.status, 400);
    open_session(f, sid);
    eio_server_http_post(f->srv, sid, "", 0, reply_to(&post));
    pump_until_calls(f, &post, 1, 3000);
    assert_int_equal(post.status, 400);

    /* Over maxPayload (1000 here): 413 and the session closes. */
    open_session(f, sid);
    char big[1001];
    memset(big, 'a', sizeof(big));
    big[0] = '4';
    eio_server_http_post(f->srv, sid, big, sizeof(big), reply_to(&post));
    pump_until_calls(f, &post, 1, 3000);
    assert_int_equal(post.status, 413);
    assert_string_equal(f->up.close_reason, "payload too large");
    /* Exactly maxPayload is fine. */
    open_session(f, sid);
    eio_server_http_post(f->srv, sid, big, 1000, reply_to(&post));
    pump_until_calls(f, &post, 1, 3000);
    assert_int_equal(post.status, 200);
    assert_int_equal(strlen(f->up.last_msg), 999);

    /* A client may not send OPEN or UPGRADE over polling. */
    open_session(f, sid);
    eio_server_http_post(f->srv, sid, "0", 1, reply_to(&post));
    pump_until_calls(f, &post, 1, 3000);
    assert_string_equal(f->up.close_reason, "protocol error");

    /* The other session never noticed any of this. */
    assert_int_equal(eio_server_session_count(f->srv), 2);
    fixture_free(f);
}

static int gone_done_calls;
static void gone_done(void *ctx)
{
    (void)ctx;
    gone_done_calls++;
}

static void test_poll_gone(void **state)
{
    (void)state;
    struct fixture *f = fixture_new(25000, 20000);
    char sid[EIO_SID_LEN + 1];
    open_session(f, sid);
    struct rec get, get2;
    eio_server_http_poll(f->srv, sid, reply_to(&get));
    pump(f, 10);
    /* A stale notice (another reply) changes nothing. */
    gone_done_calls = 0;
    eio_server_http_poll_gone(f->srv, sid, &get2, gone_done);
    pump(f, 10);
    assert_int_equal(get.calls, 0);
    assert_int_equal(gone_done_calls, 1);
    /* The held GET's client went away: answered at once, the slot is free. */
    eio_server_http_poll_gone(f->srv, sid, &get, gone_done);
    pump_until_calls(f, &get, 1, 3000);
    assert_string_equal(get.body, "6");
    assert_int_equal(gone_done_calls, 2);
    eio_server_http_poll(f->srv, sid, reply_to(&get2));
    pump(f, 10);
    assert_int_equal(get2.calls, 0); /* held: not an overlap */
    assert_int_equal(f->up.closes, 0);
    fixture_free(f);
    assert_int_equal(get2.calls, 1); /* answered by the shutdown */
    assert_string_equal(get2.body, "1");
}

static void test_heartbeat(void **state)
{
    (void)state;
    struct fixture *f = fixture_new(60, 500);
    char sid[EIO_SID_LEN + 1];
    open_session(f, sid);
    struct rec get, post;
    for (int round = 0; round < 3; round++) {
        uint64_t t0 = time_mono_ns();
        eio_server_http_poll(f->srv, sid, reply_to(&get));
        pump_until_calls(f, &get, 1, 2000);
        assert_int_equal(get.calls, 1);
        assert_string_equal(get.body, "2");
        if (round > 0) assert_true(time_mono_ns() - t0 >= 40 * 1000000ull);
        eio_server_http_post(f->srv, sid, "3", 1, reply_to(&post));
        pump_until_calls(f, &post, 1, 3000);
        assert_string_equal(post.body, "ok");
    }
    /* Now the client stops answering: ping, then the timeout closes it. */
    eio_server_http_poll(f->srv, sid, reply_to(&get));
    pump_until_calls(f, &get, 1, 2000);
    assert_string_equal(get.body, "2");
    uint64_t end = time_mono_ns() + 2000000000ull;
    while (f->up.closes == 0 && time_mono_ns() < end)
        rt_loop_run_once(f->loop, 5);
    assert_int_equal(f->up.closes, 1);
    assert_string_equal(f->up.close_reason, "ping timeout");
    assert_int_equal(eio_server_session_count(f->srv), 0);
    fixture_free(f);
}

/* ---- WebSocket ---- */

static int releases;
static void release_fd(void *ud)
{
    releases++;
    close((int)(intptr_t)ud);
}

static void test_upgrade(void **state)
{
    (void)state;
    struct fixture *f = fixture_new(25000, 20000);
    f->up.echo = true;
    char sid[EIO_SID_LEN + 1];
    open_session(f, sid);
    eio_session *es = f->up.last;
    struct rec get, get2;
    eio_server_http_poll(f->srv, sid, reply_to(&get));
    pump(f, 5);

    int fds[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    releases = 0;
    eio_server_ws_attach(f->srv, sid, 0, fds[0], NULL, 0, release_fd, (void *)(intptr_t)fds[0]);
    char buf[2048];
    assert_true(wsc_text(fds[1], "2probe"));
    assert_true(wsc_expect_text(f->loop, fds[1], buf, sizeof(buf)));
    assert_string_equal(buf, "3probe");
    /* The held GET is released with a noop so the client pauses polling. */
    pump_until_calls(f, &get, 1, 3000);
    assert_string_equal(get.body, "6");
    /* A GET during the upgrade gets a noop at once, too. */
    eio_server_http_poll(f->srv, sid, reply_to(&get2));
    pump_until_calls(f, &get2, 1, 3000);
    assert_string_equal(get2.body, "6");
    /* Something the server sends meanwhile waits for the switch. */
    assert_int_equal(eio_session_send(es, "queued", 6), 0);
    pump(f, 10);
    assert_true(wsc_text(fds[1], "5"));
    assert_true(wsc_expect_text(f->loop, fds[1], buf, sizeof(buf)));
    assert_string_equal(buf, "4queued");
    assert_string_equal(eio_session_transport(es), "websocket");

    /* Messages now flow over the WebSocket, in both directions. */
    assert_true(wsc_text(fds[1], "4over ws"));
    assert_true(wsc_expect_text(f->loop, fds[1], buf, sizeof(buf)));
    assert_string_equal(buf, "4over ws");
    assert_string_equal(f->up.last_msg, "over ws");

    /* Polling on the upgraded session is refused, the session stays. */
    int st;
    const char *body;
    assert_int_equal(route(f, "GET", "4", "websocket", sid, NULL, true, &st, &body),
                     EIO_ROUTE_ERROR);
    eio_server_http_poll(f->srv, sid, reply_to(&get));
    pump_until_calls(f, &get, 1, 3000);
    assert_int_equal(get.status, 400);
    assert_int_equal(f->up.closes, 0);

    /* The client's WebSocket goes away: the session ends. */
    assert_true(wsc_send(fds[1], true, 0x8, "\x03\xe8", 2, true));
    assert_true(wsc_eof(f->loop, fds[1]));
    assert_int_equal(f->up.closes, 1);
    assert_string_equal(f->up.close_reason, "transport close");
    assert_int_equal(releases, 1);
    close(fds[1]);
    fixture_free(f);
}

static void test_upgrade_refused(void **state)
{
    (void)state;
    struct fixture *f = fixture_new(25000, 20000);
    char sid[EIO_SID_LEN + 1];
    open_session(f, sid);
    char buf[2048];
    size_t len;

    /* A probe that says something else is closed; polling goes on. */
    int fds[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    releases = 0;
    eio_server_ws_attach(f->srv, sid, 0, fds[0], NULL, 0, release_fd, (void *)(intptr_t)fds[0]);
    assert_true(wsc_text(fds[1], "4hello"));
    assert_int_equal(wsc_frame(f->loop, fds[1], buf, sizeof(buf), &len), 0x8);
    assert_true(wsc_send(fds[1], true, 0x8, "\x03\xe8", 2, true));
    assert_true(wsc_eof(f->loop, fds[1]));
    close(fds[1]);
    assert_int_equal(releases, 1);
    assert_int_equal(f->up.closes, 0);
    assert_int_equal(f->up.messages, 0);
    struct rec post;
    eio_server_http_post(f->srv, sid, "4still polling", 14, reply_to(&post));
    pump_until_calls(f, &post, 1, 3000);
    assert_string_equal(f->up.last_msg, "still polling");

    /* An upgrade for a sid that does not exist is closed right after the 101. */
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    eio_server_ws_attach(f->srv, "AAAAAAAAAAAAAAAAAAAA", 0, fds[0], NULL, 0, release_fd,
                         (void *)(intptr_t)fds[0]);
    assert_int_equal(wsc_frame(f->loop, fds[1], buf, sizeof(buf), &len), 0x8);
    assert_int_equal(((unsigned char)buf[0] << 8) | (unsigned char)buf[1], 1008);
    close(fds[1]);
    fixture_free(f);
}

static void test_websocket_only(void **state)
{
    (void)state;
    struct fixture *f = fixture_new(25000, 20000);
    f->up.echo = true;
    int fds[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    /* The client's first frame may already be in the bytes HTTP read. */
    unsigned char pre[64];
    size_t n = wsc_build(pre, true, 0x1, "4early", 6, true);
    eio_server_ws_attach(f->srv, NULL, 7, fds[0], pre, n, release_fd, (void *)(intptr_t)fds[0]);
    char buf[2048];
    assert_true(wsc_expect_text(f->loop, fds[1], buf, sizeof(buf)));
    assert_int_equal(buf[0], '0');
    json_t *j = json_loads(buf + 1, 0, NULL);
    assert_non_null(j);
    assert_int_equal(json_array_size(json_object_get(j, "upgrades")), 0);
    assert_int_equal(json_integer_value(json_object_get(j, "pingInterval")), 25000);
    assert_int_equal(json_integer_value(json_object_get(j, "pingTimeout")), 20000);
    assert_int_equal(json_integer_value(json_object_get(j, "maxPayload")), 1000);
    json_decref(j);
    assert_true(wsc_expect_text(f->loop, fds[1], buf, sizeof(buf)));
    assert_string_equal(buf, "4early");
    assert_int_equal(eio_session_user(f->up.last), 7);
    assert_string_equal(eio_session_transport(f->up.last), "websocket");

    /* A binary frame is a binary message for the layer above. */
    assert_true(wsc_send(fds[1], true, 0x2, "\x01\x02", 2, true));
    size_t len;
    assert_int_equal(wsc_frame(f->loop, fds[1], buf, sizeof(buf), &len), 0x1);
    assert_true(f->up.last_binary);

    /* A malformed Engine.IO packet closes this session (and only it). */
    assert_true(wsc_text(fds[1], "9nope"));
    assert_int_equal(wsc_frame(f->loop, fds[1], buf, sizeof(buf), &len), 0x8);
    assert_true(wsc_send(fds[1], true, 0x8, "\x03\xe8", 2, true));
    assert_true(wsc_eof(f->loop, fds[1]));
    assert_string_equal(f->up.close_reason, "parse error");
    close(fds[1]);
    fixture_free(f);
}

static void test_websocket_heartbeat_and_too_big(void **state)
{
    (void)state;
    struct fixture *f = fixture_new(50, 500);
    int fds[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    eio_server_ws_attach(f->srv, NULL, 7, fds[0], NULL, 0, release_fd, (void *)(intptr_t)fds[0]);
    char buf[4096];
    assert_true(wsc_expect_text(f->loop, fds[1], buf, sizeof(buf))); /* open */
    for (int i = 0; i < 3; i++) {
        assert_true(wsc_expect_text(f->loop, fds[1], buf, sizeof(buf)));
        assert_string_equal(buf, "2");
        assert_true(wsc_text(fds[1], "3"));
    }
    assert_int_equal(f->up.closes, 0);
    /* Over maxPayload: close 1009, the session ends. */
    char big[1100];
    memset(big, 'x', sizeof(big));
    big[0] = '4';
    assert_true(wsc_send(fds[1], true, 0x1, big, sizeof(big), true));
    size_t len;
    int op;
    do
        op = wsc_frame(f->loop, fds[1], buf, sizeof(buf), &len);
    while (op == 0x1);
    assert_int_equal(op, 0x8);
    assert_int_equal(((unsigned char)buf[0] << 8) | (unsigned char)buf[1], 1009);
    assert_true(wsc_eof(f->loop, fds[1]));
    assert_int_equal(f->up.closes, 1);
    close(fds[1]);

    /* A WebSocket client that stops answering pings is closed. */
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    eio_server_ws_attach(f->srv, NULL, 7, fds[0], NULL, 0, release_fd, (void *)(intptr_t)fds[0]);
    uint64_t end = time_mono_ns() + 2000000000ull;
    while (f->up.closes < 2 && time_mono_ns() < end)
        rt_loop_run_once(f->loop, 5);
    assert_string_equal(f->up.close_reason, "ping timeout");
    close(fds[1]);
    fixture_free(f);
}

static void test_close_all(void **state)
{
    (void)state;
    struct fixture *f = fixture_new(25000, 20000);
    char sid[EIO_SID_LEN + 1];
    struct rec gets[5];
    for (int i = 0; i < 5; i++) {
        open_session(f, sid);
        eio_server_http_poll(f->srv, sid, reply_to(&gets[i]));
    }
    int fds[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    eio_server_ws_attach(f->srv, NULL, 7, fds[0], NULL, 0, release_fd, (void *)(intptr_t)fds[0]);
    pump(f, 20);
    assert_int_equal(eio_server_session_count(f->srv), 6);
    eio_server_close_all(f->srv);
    assert_int_equal(eio_server_session_count(f->srv), 0);
    assert_int_equal(f->up.closes, 6);
    assert_string_equal(f->up.close_reason, "server shutdown");
    for (int i = 0; i < 5; i++) {
        assert_int_equal(gets[i].calls, 1);
        assert_string_equal(gets[i].body, "1");
    }
    close(fds[1]);
    fixture_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_route_errors),
        cmocka_unit_test(test_origin),
        cmocka_unit_test(test_polling_roundtrip),
        cmocka_unit_test(test_polling_errors),
        cmocka_unit_test(test_poll_gone),
        cmocka_unit_test(test_heartbeat),
        cmocka_unit_test(test_upgrade),
        cmocka_unit_test(test_upgrade_refused),
        cmocka_unit_test(test_websocket_only),
        cmocka_unit_test(test_websocket_heartbeat_and_too_big),
        cmocka_unit_test(test_close_all),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
