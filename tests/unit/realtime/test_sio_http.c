/*
 * test_sio_http.c - /socket.io/ on the real HTTP server (http/, in-process on
 * a free loopback port): raw HTTP requests for the polling transport and the
 * error answers, a raw WebSocket handshake (Sec-WebSocket-Accept, version and
 * key checks) and upgrade, malformed and oversize payloads closing only their
 * own session, 200 concurrent connections, the graceful stop with connections
 * open, and Debian's python3-socketio client on both transports.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "http/http.h"
#include "realtime/realtime.h"
#include "ws_client.h"

static http_router *router;
static http_server *hs;
static sio_server *rt;
static unsigned port;

/* The test's authentication: the cookie uid=<n> names user n. */
static int64_t auth_uid(http_request *req, void *ud)
{
    (void)ud;
    const char *v = http_request_cookie(req, "uid");
    int64_t id;
    return v && parse_int64(v, 1, INT64_MAX, &id) == 0 ? id : 0;
}

static int start(void **state)
{
    (void)state;
    struct sio_options o;
    sio_options_init(&o);
    o.test_events = true;
    o.default_origin = "http://127.0.0.1:1";
    rt = sio_server_new(&o, NULL);
    if (!rt) return -1;
    sio_set_auth(rt, auth_uid, NULL);
    router = http_router_new();
    struct echo_err err;
    if (sio_mount(rt, router, &err) != 0) return -1;
    struct http_server_options ho;
    http_server_options_init(&ho);
    ho.host = "127.0.0.1";
    ho.port = 0;
    ho.threads = 4;
    ho.access_log = false;
    hs = http_server_new(&ho, router, &err);
    if (!hs) {
        fprintf(stderr, "http_server_new: %s\n", err.msg);
        return -1;
    }
    http_server_add_stop_hook(hs, sio_http_stop_hook, rt);
    port = http_server_port(hs);
    return 0;
}

static int stop(void **state)
{
    (void)state;
    if (hs) {
        http_server_stop(hs, 1000);
        http_server_free(hs);
    }
    sio_server_free(rt);
    http_router_free(router);
    return 0;
}

/* ---- a raw HTTP client ---- */

static int tcp_connect(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return fd;
}

struct resp {
    int status;
    char head[4096];
    char *body;
    size_t len;
};

static void resp_free(struct resp *r)
{
    free(r->body);
    memset(r, 0, sizeof(*r));
}

/* Reads the header block byte by byte (so nothing after it is consumed). */
static bool read_head(int fd, struct resp *r, int timeout_ms)
{
    size_t n = 0;
    while (n + 1 < sizeof(r->head)) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, timeout_ms) <= 0) return false;
        if (read(fd, r->head + n, 1) != 1) return false;
        n++;
        r->head[n] = '\0';
        if (n >= 4 && !memcmp(r->head + n - 4, "\r\n\r\n", 4)) break;
    }
    return sscanf(r->head, "HTTP/1.1 %d", &r->status) == 1;
}

static const char *header(const struct resp *r, const char *name)
{
    static char value[512];
    const char *p = r->head;
    size_t nl = strlen(name);
    while ((p = strstr(p, "\r\n")) != NULL) {
        p += 2;
        if (!strncasecmp(p, name, nl) && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (*v == ' ')
                v++;
            size_t k = strcspn(v, "\r");
            snprintf(value, sizeof(value), "%.*s", (int)k, v);
            return value;
        }
    }
    return NULL;
}

static bool read_response(int fd, struct resp *r, int timeout_ms)
{
    memset(r, 0, sizeof(*r));
    if (!read_head(fd, r, timeout_ms)) return false;
    const char *cl = header(r, "Content-Length");
    size_t want = cl ? (size_t)atol(cl) : 0;
    r->body = calloc(1, want + 1);
    while (r->len < want) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, timeout_ms) <= 0) return false;
        ssize_t k = read(fd, r->body + r->len, want - r->len);
        if (k <= 0) return false;
        r->len += (size_t)k;
    }
    return true;
}

static int send_request(const char *method, const char *target, const char *extra_headers,
                        const char *body, size_t body_len)
{
    int fd = tcp_connect();
    char head[2048];
    int n = snprintf(head, sizeof(head),
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n%sContent-Length: %zu\r\n\r\n",
                     method, target, port, extra_headers ? extra_headers : "", body_len);
    assert_int_equal(write(fd, head, (size_t)n), n);
    size_t off = 0;
    while (off < body_len) {
        ssize_t k = write(fd, body + off, body_len - off);
        assert_true(k > 0);
        off += (size_t)k;
    }
    return fd;
}

static void request(const char *method, const char *target, const char *extra_headers,
                    const char *body, size_t body_len, struct resp *r)
{
    int fd = send_request(method, target, extra_headers, body, body_len);
    assert_true(read_response(fd, r, 5000));
    close(fd);
}

/* Polling handshake with an optional cookie; returns the sid. */
static void handshake(const char *cookie, char sid[32])
{
    char h[128] = "";
    if (cookie) snprintf(h, sizeof(h), "Cookie: %s\r\n", cookie);
    struct resp r;
    request("GET", "/socket.io/?EIO=4&transport=polling&t=x", h, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body[0], '0');
    json_t *j = json_loads(r.body + 1, 0, NULL);
    assert_non_null(j);
    snprintf(sid, 32, "%s", json_string_value(json_object_get(j, "sid")));
    assert_int_equal(strlen(sid), 20);
    json_t *up = json_object_get(j, "upgrades");
    assert_string_equal(json_string_value(json_array_get(up, 0)), "websocket");
    assert_int_equal(json_integer_value(json_object_get(j, "maxPayload")), 1000000);
    json_decref(j);
    resp_free(&r);
}

static void poll_get(const char *sid, struct resp *r)
{
    char t[128];
    snprintf(t, sizeof(t), "/socket.io/?EIO=4&transport=polling&sid=%s", sid);
    request("GET", t, NULL, NULL, 0, r);
}

static void poll_post(const char *sid, const char *body, size_t len, struct resp *r)
{
    char t[128];
    snprintf(t, sizeof(t), "/socket.io/?EIO=4&transport=polling&sid=%s", sid);
    request("POST", t, "Content-Type: text/plain;charset=UTF-8\r\n", body, len, r);
}

/* ---- tests ---- */

static void test_polling(void **state)
{
    (void)state;
    char sid[32];
    struct resp r;
    handshake("uid=5", sid);
    poll_post(sid, "40", 2, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "ok");
    resp_free(&r);
    poll_get(sid, &r);
    assert_int_equal(r.status, 200);
    assert_true(!strncmp(r.body, "40{\"sid\":\"", 10));
    assert_string_equal(header(&r, "Content-Type"), "text/plain; charset=UTF-8");
    assert_string_equal(header(&r, "Cache-Control"), "no-store");
    resp_free(&r);

    /* Two packets in one POST; the answers come back batched. */
    const char two[] = "421[\"echo\",\"a\"]\x1e"
                       "422[\"echo\",\"b\"]";
    poll_post(sid, two, sizeof(two) - 1, &r);
    assert_string_equal(r.body, "ok");
    resp_free(&r);
    poll_get(sid, &r);
    assert_string_equal(r.body, "431[\"a\"]\x1e"
                                "42[\"echo\",\"a\"]\x1e"
                                "432[\"b\"]\x1e"
                                "42[\"echo\",\"b\"]");
    resp_free(&r);

    /* A held GET is answered when an event arrives from a POST on another
     * connection. */
    char t[128];
    snprintf(t, sizeof(t), "/socket.io/?EIO=4&transport=polling&sid=%s", sid);
    int held = send_request("GET", t, NULL, NULL, 0);
    usleep(50000);
    poll_post(sid, "42[\"echo\",3]", 12, &r);
    resp_free(&r);
    assert_true(read_response(held, &r, 5000));
    assert_string_equal(r.body, "42[\"echo\",3]");
    resp_free(&r);
    close(held);

    /* The client closes the session: the sid is unknown afterwards. */
    poll_post(sid, "1", 1, &r);
    resp_free(&r);
    poll_get(sid, &r);
    assert_int_equal(r.status, 400);
    assert_string_equal(r.body, "{\"code\":1,\"message\":\"Session ID unknown\"}");
    assert_string_equal(header(&r, "Content-Type"), "application/json");
    resp_free(&r);
}

static void test_http_errors(void **state)
{
    (void)state;
    struct resp r;
    request("GET", "/socket.io/?EIO=4&transport=polling&sid=nope", NULL, NULL, 0, &r);
    assert_int_equal(r.status, 400);
    assert_string_equal(r.body, "{\"code\":1,\"message\":\"Session ID unknown\"}");
    resp_free(&r);
    request("GET", "/socket.io/?EIO=4&transport=carrier-pigeon", NULL, NULL, 0, &r);
    assert_int_equal(r.status, 400);
    assert_string_equal(r.body, "{\"code\":0,\"message\":\"Transport unknown\"}");
    resp_free(&r);
    request("GET", "/socket.io/?EIO=3&transport=polling", NULL, NULL, 0, &r);
    assert_int_equal(r.status, 400);
    assert_string_equal(r.body, "{\"code\":5,\"message\":\"Unsupported protocol version\"}");
    resp_free(&r);
    request("GET", "/socket.io/?EIO=4&transport=polling", "Origin: http://evil.example\r\n", NULL,
            0, &r);
    assert_int_equal(r.status, 403);
    resp_free(&r);
    /* The page's own origin (the Host it talks to) is fine. */
    char h[128];
    snprintf(h, sizeof(h), "Origin: http://127.0.0.1:%u\r\n", port);
    request("GET", "/socket.io/?EIO=4&transport=polling", h, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    request("GET", "/socket.io/other?EIO=4&transport=polling", NULL, NULL, 0, &r);
    assert_int_equal(r.status, 404);
    resp_free(&r);
    /* No CORS: nothing invites other origins in. */
    request("GET", "/socket.io/?EIO=4&transport=polling", NULL, NULL, 0, &r);
    assert_null(header(&r, "Access-Control-Allow-Origin"));
    resp_free(&r);
}

static void test_bad_payloads(void **state)
{
    (void)state;
    char keep[32], bad[32];
    struct resp r;
    handshake("uid=8", keep);
    poll_post(keep, "40", 2, &r);
    resp_free(&r);
    poll_get(keep, &r);
    resp_free(&r);

    /* Malformed Engine.IO, malformed Socket.IO, invalid UTF-8: that session
     * closes (400 or a close on its next GET), the server and the other
     * session go on. */
    static const struct {
        const char *body;
        size_t len;
        int status;
    } cases[] = {
        {"9x", 2, 400},
        {"4\xff\xfe", 3, 400},
        {"42[\"echo\"", 9, 200},
        {"451-[\"x\",{\"_placeholder\":true,\"num\":0}]", 39, 200},
    };
    for (size_t i = 0; i < 4; i++) {
        handshake("uid=9", bad);
        poll_post(bad, "40", 2, &r);
        resp_free(&r);
        poll_get(bad, &r);
        resp_free(&r);
        poll_post(bad, cases[i].body, cases[i].len, &r);
        assert_int_equal(r.status, cases[i].status);
        resp_free(&r);
        poll_get(bad, &r);
        /* Closed: either unknown already or the final close packet. */
        assert_true(r.status == 400 || (r.status == 200 && strchr(r.body, '1')));
        resp_free(&r);
        poll_get(bad, &r);
        assert_int_equal(r.status, 400);
        resp_free(&r);
    }

    /* Over maxPayload: 413 and the session is gone. */
    handshake("uid=9", bad);
    size_t n = 1000001;
    char *big = malloc(n);
    memset(big, 'a', n);
    big[0] = '4';
    poll_post(bad, big, n, &r);
    assert_int_equal(r.status, 413);
    resp_free(&r);
    free(big);
    poll_get(bad, &r);
    assert_int_equal(r.status, 400);
    resp_free(&r);

    /* The first session still works. */
    poll_post(keep, "42[\"echo\",\"alive\"]", 18, &r);
    resp_free(&r);
    poll_get(keep, &r);
    assert_string_equal(r.body, "42[\"echo\",\"alive\"]");
    resp_free(&r);
}

/* Sends a WebSocket handshake; returns the fd after a 101 (or -1, r filled). */
static int ws_handshake(const char *query, const char *extra, struct resp *r)
{
    int fd = tcp_connect();
    char req[1024];
    int n = snprintf(req, sizeof(req),
                     "GET /socket.io/?%s HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nUpgrade: websocket\r\n"
                     "Connection: keep-alive, Upgrade\r\n%s\r\n",
                     query, port, extra);
    assert_int_equal(write(fd, req, (size_t)n), n);
    memset(r, 0, sizeof(*r));
    assert_true(read_head(fd, r, 5000));
    if (r->status == 101) return fd;
    const char *cl = header(r, "Content-Length");
    size_t want = cl ? (size_t)atol(cl) : 0;
    r->body = calloc(1, want + 1);
    while (r->len < want) {
        ssize_t k = read(fd, r->body + r->len, want - r->len);
        if (k <= 0) break;
        r->len += (size_t)k;
    }
    close(fd);
    return -1;
}

#define WS_HEADERS                                                                                 \
    "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nCookie: "         \
    "uid=6\r\n"

/* Waits until the server counts `n` connected sockets (closes are noticed
 * asynchronously). */
static bool wait_socket_count(size_t n)
{
    uint64_t end = time_mono_ns() + 5000000000ull;
    while (sio_server_socket_count(rt) != n && time_mono_ns() < end)
        usleep(5000);
    return sio_server_socket_count(rt) == n;
}

static void test_websocket(void **state)
{
    (void)state;
    struct resp r;
    char buf[4096];
    size_t sockets_before = sio_server_socket_count(rt);
    /* Handshake checks. */
    assert_int_equal(ws_handshake("EIO=4&transport=websocket",
                                  "Sec-WebSocket-Version: 8\r\n"
                                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
                                  &r),
                     -1);
    assert_int_equal(r.status, 400);
    assert_string_equal(header(&r, "Sec-WebSocket-Version"), "13");
    resp_free(&r);
    assert_int_equal(ws_handshake("EIO=4&transport=websocket",
                                  "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: short\r\n", &r),
                     -1);
    assert_int_equal(r.status, 400);
    resp_free(&r);
    assert_int_equal(
        ws_handshake("EIO=4&transport=websocket", WS_HEADERS "Origin: http://evil.example\r\n", &r),
        -1);
    assert_int_equal(r.status, 403);
    resp_free(&r);
    assert_int_equal(
        ws_handshake("EIO=4&transport=websocket&sid=AAAAAAAAAAAAAAAAAAAA", WS_HEADERS, &r), -1);
    assert_int_equal(r.status, 400);
    assert_string_equal(r.body, "{\"code\":1,\"message\":\"Session ID unknown\"}");
    resp_free(&r);

    /* WebSocket only. */
    int fd = ws_handshake("EIO=4&transport=websocket", WS_HEADERS, &r);
    assert_true(fd >= 0);
    assert_string_equal(header(&r, "Sec-WebSocket-Accept"), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    assert_true(wsc_expect_text(NULL, fd, buf, sizeof(buf)));
    assert_int_equal(buf[0], '0');
    assert_non_null(strstr(buf, "\"upgrades\":[]"));
    assert_true(wsc_text(fd, "40"));
    assert_true(wsc_expect_text(NULL, fd, buf, sizeof(buf)));
    assert_true(!strncmp(buf, "40{\"sid\":", 9));
    assert_true(wsc_text(fd, "427[\"echo\",{\"w\":\"\xe2\x82\xac\"}]"));
    assert_true(wsc_expect_text(NULL, fd, buf, sizeof(buf)));
    assert_string_equal(buf, "437[{\"w\":\"\xe2\x82\xac\"}]");
    assert_true(wsc_expect_text(NULL, fd, buf, sizeof(buf)));
    assert_string_equal(buf, "42[\"echo\",{\"w\":\"\xe2\x82\xac\"}]");
    resp_free(&r);
    /* A text frame that is not UTF-8: close 1007, only this connection. */
    assert_true(wsc_send(fd, true, 0x1, "42[\"\xff\"]", 7, true));
    size_t len;
    int op;
    do
        op = wsc_frame(NULL, fd, buf, sizeof(buf), &len);
    while (op == 0x1);
    assert_int_equal(op, 0x8);
    assert_int_equal(((unsigned char)buf[0] << 8) | (unsigned char)buf[1], 1007);
    close(fd);

    /* Upgrade of a polling session, with a GET held on another connection. */
    char sid[32];
    handshake("uid=6", sid);
    char t[128];
    snprintf(t, sizeof(t), "/socket.io/?EIO=4&transport=polling&sid=%s", sid);
    poll_post(sid, "40", 2, &r);
    resp_free(&r);
    poll_get(sid, &r);
    resp_free(&r);
    int held = send_request("GET", t, NULL, NULL, 0);
    char q[128];
    snprintf(q, sizeof(q), "EIO=4&transport=websocket&sid=%s", sid);
    fd = ws_handshake(q, WS_HEADERS, &r);
    assert_true(fd >= 0);
    resp_free(&r);
    assert_true(wsc_text(fd, "2probe"));
    assert_true(wsc_expect_text(NULL, fd, buf, sizeof(buf)));
    assert_string_equal(buf, "3probe");
    assert_true(read_response(held, &r, 5000));
    assert_string_equal(r.body, "6");
    resp_free(&r);
    close(held);
    assert_true(wsc_text(fd, "5"));
    assert_true(wsc_text(fd, "42[\"echo\",\"upgraded\"]"));
    assert_true(wsc_expect_text(NULL, fd, buf, sizeof(buf)));
    assert_string_equal(buf, "42[\"echo\",\"upgraded\"]");
    /* Polling is over for this session. */
    poll_get(sid, &r);
    assert_int_equal(r.status, 400);
    resp_free(&r);
    close(fd);
    assert_true(wait_socket_count(sockets_before));
}

/* 200 WebSocket clients connected at once stay up and all get a broadcast. */
static void test_many_connections(void **state)
{
    (void)state;
    enum { N = 200 };
    int *fds = calloc(N, sizeof(int));
    char buf[4096];
    struct resp r;
    size_t base = sio_server_socket_count(rt);
    uint64_t t0 = time_mono_ns();
    for (int i = 0; i < N; i++) {
        fds[i] = ws_handshake("EIO=4&transport=websocket",
                              "Sec-WebSocket-Version: 13\r\n"
                              "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nCookie: uid=77\r\n",
                              &r);
        assert_true(fds[i] >= 0);
        resp_free(&r);
        assert_true(wsc_expect_text(NULL, fds[i], buf, sizeof(buf)));
        assert_true(wsc_text(fds[i], "40"));
    }
    for (int i = 0; i < N; i++) {
        assert_true(wsc_expect_text(NULL, fds[i], buf, sizeof(buf)));
        assert_true(!strncmp(buf, "40{", 3));
    }
    assert_int_equal(sio_server_socket_count(rt), base + N);
    printf("realtime: %d WebSocket clients handshaked and connected in %.1f ms\n", N,
           (double)(time_mono_ns() - t0) / 1e6);
    /* Idle for a moment, then one emit reaches all 200 tabs of user 77. */
    usleep(300000);
    json_t *d = json_pack("{s:s}", "text", "to all");
    assert_int_equal(sio_emit_user(rt, 77, "response_chunk", d), 0);
    json_decref(d);
    for (int i = 0; i < N; i++) {
        assert_true(wsc_expect_text(NULL, fds[i], buf, sizeof(buf)));
        assert_string_equal(buf, "42[\"response_chunk\",{\"text\":\"to all\"}]");
    }
    for (int i = 0; i < N; i++)
        close(fds[i]);
    free(fds);
    assert_true(wait_socket_count(base));
}

/* Figures (printed, never asserted): emits per second from another thread to
 * one WebSocket client, through the queue, the loop and the socket. */
static void test_throughput(void **state)
{
    (void)state;
    size_t sockets_before = sio_server_socket_count(rt);
    struct resp r;
    char buf[4096];
    int fd = ws_handshake("EIO=4&transport=websocket", WS_HEADERS, &r);
    assert_true(fd >= 0);
    resp_free(&r);
    assert_true(wsc_expect_text(NULL, fd, buf, sizeof(buf)));
    assert_true(wsc_text(fd, "40"));
    assert_true(wsc_expect_text(NULL, fd, buf, sizeof(buf)));
    enum { N = 20000 };
    json_t *d = json_pack("{s:i,s:s}", "id", 1, "text", "a word ");
    uint64_t t0 = time_mono_ns();
    for (int i = 0; i < N; i++)
        assert_int_equal(sio_emit_user(rt, 6, "response_chunk", d), 0);
    uint64_t t1 = time_mono_ns();
    for (int i = 0; i < N; i++)
        assert_true(wsc_expect_text(NULL, fd, buf, sizeof(buf)));
    uint64_t t2 = time_mono_ns();
    json_decref(d);
    assert_string_equal(buf, "42[\"response_chunk\",{\"id\":1,\"text\":\"a word \"}]");
    printf("realtime throughput: %d emits queued in %.1f ms, all received after %.1f ms "
           "(%.0f messages/s end to end)\n",
           N, (double)(t1 - t0) / 1e6, (double)(t2 - t0) / 1e6, N / ((double)(t2 - t0) / 1e9));
    close(fd);
    assert_true(wait_socket_count(sockets_before));
}

static void run_python(const char *mode)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd),
             "/usr/bin/python3 tests/unit/realtime/sio_client.py %u %s > /tmp/sio_client_%d.log "
             "2>&1",
             port, mode, (int)getpid());
    int rc = system(cmd);
    if (rc != 0) {
        snprintf(cmd, sizeof(cmd), "cat /tmp/sio_client_%d.log >&2", (int)getpid());
        if (system(cmd) != 0) fprintf(stderr, "(no client log)\n");
        fail_msg("python3-socketio client, mode %s: exit status %d", mode, rc);
    }
    snprintf(cmd, sizeof(cmd), "/tmp/sio_client_%d.log", (int)getpid());
    unlink(cmd);
}

static void test_python_polling(void **state)
{
    (void)state;
    run_python("polling");
    run_python("pollonly");
}

static void test_python_websocket(void **state)
{
    (void)state;
    run_python("websocket");
}

static void test_python_refused_and_tabs(void **state)
{
    (void)state;
    run_python("refused");
    run_python("two_tabs");
}

/* Stopping the HTTP server with a held GET and open WebSockets completes. */
static void test_stop_with_connections(void **state)
{
    (void)state;
    char sid[32];
    struct resp r;
    handshake("uid=3", sid);
    char t[128];
    snprintf(t, sizeof(t), "/socket.io/?EIO=4&transport=polling&sid=%s", sid);
    int held = send_request("GET", t, NULL, NULL, 0);
    int ws = ws_handshake("EIO=4&transport=websocket", WS_HEADERS, &r);
    assert_true(ws >= 0);
    resp_free(&r);
    char buf[1024];
    assert_true(wsc_expect_text(NULL, ws, buf, sizeof(buf)));
    usleep(50000);
    uint64_t t0 = time_mono_ns();
    http_server_stop(hs, 1000);
    http_server_free(hs);
    hs = NULL;
    assert_true(time_mono_ns() - t0 < 3000000000ull);
    /* The held GET got its close packet (or at least its connection ended). */
    if (read_response(held, &r, 1000)) assert_string_equal(r.body, "1");
    resp_free(&r);
    close(held);
    assert_true(wsc_eof(NULL, ws));
    close(ws);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_polling),
        cmocka_unit_test(test_http_errors),
        cmocka_unit_test(test_bad_payloads),
        cmocka_unit_test(test_websocket),
        cmocka_unit_test(test_many_connections),
        cmocka_unit_test(test_throughput),
        cmocka_unit_test(test_python_polling),
        cmocka_unit_test(test_python_websocket),
        cmocka_unit_test(test_python_refused_and_tabs),
        cmocka_unit_test(test_stop_with_connections),
    };
    return cmocka_run_group_tests(tests, start, stop);
}
