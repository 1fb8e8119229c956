/*
 * test_server.c - the HTTP server in-process, driven over raw sockets:
 * keep-alive, HEAD, security headers, 404/405/400/413/414/431 and their
 * pages, forms through the daemon, hooks and the error handler, client IPs
 * behind a trusted proxy, slow clients cut off, streamed bodies, deferred
 * answers (completed from another thread, in the handler, raced against a
 * disconnecting client), the upgrade hand-off with bytes read ahead, and the
 * graceful stop with a request in flight.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "http/http.h"

/* ---- a tiny HTTP client ---- */

struct conn {
    int fd;
    char buf[1 << 17];
    size_t len;
};

struct resp {
    int status;
    char head[16384];
    char body[1 << 16];
    size_t body_len;
};

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static struct conn *conn_open(unsigned port)
{
    struct conn *c = calloc(1, sizeof(*c));
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(c->fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {10, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
        fail_msg("connect: %s", strerror(errno));
    return c;
}

static void conn_close(struct conn *c)
{
    if (c->fd >= 0) close(c->fd);
    free(c);
}

static void conn_send(struct conn *c, const char *data, size_t n)
{
    while (n > 0) {
        ssize_t w = send(c->fd, data, n, MSG_NOSIGNAL);
        if (w <= 0) return; /* the server may close early (413); the test checks what came back */
        data += w;
        n -= (size_t)w;
    }
}

static void conn_puts(struct conn *c, const char *s)
{
    conn_send(c, s, strlen(s));
}

/* Reads more bytes; false on EOF, error or timeout. */
static bool conn_fill(struct conn *c)
{
    if (c->len == sizeof(c->buf)) return false;
    ssize_t r = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
    if (r <= 0) return false;
    c->len += (size_t)r;
    return true;
}

static void conn_consume(struct conn *c, size_t n)
{
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
}

/* True when the server has closed the connection (within timeout_ms). */
static bool conn_closed_by_peer(struct conn *c, int timeout_ms)
{
    struct pollfd pf = {c->fd, POLLIN, 0};
    if (poll(&pf, 1, timeout_ms) <= 0) return false;
    char b;
    ssize_t r = recv(c->fd, &b, 1, MSG_PEEK);
    return r == 0 || (r < 0 && errno == ECONNRESET);
}

static const char *header(const struct resp *r, const char *name)
{
    static char value[4096];
    size_t n = strlen(name);
    const char *p = strstr(r->head, "\r\n");
    while (p && p[2]) {
        p += 2;
        if (!strncasecmp(p, name, n) && p[n] == ':') {
            const char *v = p + n + 1;
            while (*v == ' ')
                v++;
            const char *e = strstr(v, "\r\n");
            size_t len = e ? (size_t)(e - v) : strlen(v);
            if (len >= sizeof(value)) len = sizeof(value) - 1;
            memcpy(value, v, len);
            value[len] = 0;
            return value;
        }
        p = strstr(p, "\r\n");
    }
    return NULL;
}

/* Reads one response; head_only for HEAD requests. Returns false if the
 * connection ended first. */
static bool read_response(struct conn *c, struct resp *r, bool head_only)
{
    memset(r, 0, sizeof(*r));
    char *end;
    while (!(end = memmem(c->buf, c->len, "\r\n\r\n", 4)))
        if (!conn_fill(c)) return false;
    size_t hl = (size_t)(end - c->buf) + 4;
    assert_true(hl < sizeof(r->head));
    memcpy(r->head, c->buf, hl);
    r->head[hl] = 0;
    conn_consume(c, hl);
    assert_int_equal(sscanf(r->head, "HTTP/1.%*d %d", &r->status), 1);
    if (head_only || r->status == 304 || r->status == 204 || r->status == 101) return true;
    const char *te = header(r, "Transfer-Encoding");
    if (te && strstr(te, "chunked")) {
        for (;;) {
            char *crlf;
            while (!(crlf = memmem(c->buf, c->len, "\r\n", 2)))
                if (!conn_fill(c)) return false;
            size_t size = strtoul(c->buf, NULL, 16);
            size_t line = (size_t)(crlf - c->buf) + 2;
            while (c->len < line + size + 2)
                if (!conn_fill(c)) return false;
            assert_true(r->body_len + size < sizeof(r->body));
            memcpy(r->body + r->body_len, c->buf + line, size);
            r->body_len += size;
            conn_consume(c, line + size + 2);
            if (size == 0) return true;
        }
    }
    const char *cl = header(r, "Content-Length");
    size_t want = cl ? strtoul(cl, NULL, 10) : 0;
    assert_true(want < sizeof(r->body));
    while (c->len < want)
        if (!conn_fill(c)) return false;
    memcpy(r->body, c->buf, want);
    r->body_len = want;
    conn_consume(c, want);
    return true;
}

static void request(struct conn *c, struct resp *r, const char *raw)
{
    conn_puts(c, raw);
    bool head = !strncmp(raw, "HEAD ", 5);
    if (!read_response(c, r, head)) fail_msg("no response to: %.80s", raw);
}

/* ---- the application under test ---- */

/* cmocka's assertions must not run on server threads (they longjmp into the
 * test's stack); handlers and callbacks count failures here instead. */
static atomic_int thread_failures;
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
            atomic_fetch_add(&thread_failures, 1);                                                 \
        }                                                                                          \
    } while (0)

static atomic_int handler_calls;
static atomic_int closes_gone, closes_shutdown;
static atomic_int after_order;
static pthread_mutex_t parked_mu = PTHREAD_MUTEX_INITIALIZER;
static http_deferred *parked;

static void hello(http_request *req, http_response *res, void *arg)
{
    (void)arg;
    atomic_fetch_add(&handler_calls, 1);
    const char *who = http_request_query(req, "who");
    char buf[128];
    snprintf(buf, sizeof(buf), "hello %s", who ? who : "world");
    http_response_text(res, buf);
}

static void form_echo(http_request *req, http_response *res, void *arg)
{
    (void)arg;
    atomic_fetch_add(&handler_calls, 1);
    size_t nf, nfiles;
    const struct http_param *f = http_request_form_list(req, &nf);
    const struct http_file *files = http_request_file_list(req, &nfiles);
    struct strbuf sb;
    strbuf_init(&sb);
    for (size_t i = 0; i < nf; i++)
        strbuf_printf(&sb, "%s=%s;", f[i].name, f[i].value);
    for (size_t i = 0; i < nfiles; i++)
        strbuf_printf(&sb, "file:%s:%s:%zu;", files[i].field, files[i].filename, files[i].size);
    http_response_body(res, "text/plain", sb.data ? sb.data : "", sb.len);
    strbuf_deinit(&sb);
}

static void ip(http_request *req, http_response *res, void *arg)
{
    (void)arg;
    http_response_text(res, http_request_client_ip(req));
}

static void on_close(http_deferred *d, enum http_close_reason why, void *arg)
{
    (void)arg;
    /* The contract: still call complete exactly once; here it must fail. */
    pthread_mutex_lock(&parked_mu);
    bool mine = parked == d;
    if (mine) parked = NULL;
    pthread_mutex_unlock(&parked_mu);
    if (mine) CHECK(http_deferred_complete(d, http_response_new()) == HTTP_ERR_GONE);
    atomic_fetch_add(why == HTTP_CLOSE_SHUTDOWN ? &closes_shutdown : &closes_gone, 1);
}

static void defer(http_request *req, http_response *res, void *arg)
{
    (void)arg;
    atomic_fetch_add(&handler_calls, 1);
    http_deferred *d = http_defer(req, on_close, NULL);
    CHECK(d != NULL);
    CHECK(http_defer(req, on_close, NULL) == NULL); /* once per request */
    http_response_text(res, "this body is discarded");
    if (http_request_query(req, "now")) {
        /* Completed before the handler even returns. */
        http_response *r = http_response_new();
        http_response_text(r, "answered at once");
        CHECK(http_deferred_complete(d, r) == 0);
        return;
    }
    pthread_mutex_lock(&parked_mu);
    parked = d;
    pthread_mutex_unlock(&parked_mu);
}

/* Takes the parked handle (waiting up to 5 s for the handler). */
static http_deferred *take_parked(void)
{
    for (int i = 0; i < 500; i++) {
        pthread_mutex_lock(&parked_mu);
        http_deferred *d = parked;
        parked = NULL;
        pthread_mutex_unlock(&parked_mu);
        if (d) return d;
        sleep_ms(10);
    }
    return NULL;
}

static bool parked_present(void)
{
    pthread_mutex_lock(&parked_mu);
    bool p = parked != NULL;
    pthread_mutex_unlock(&parked_mu);
    return p;
}

static void slow(http_request *req, http_response *res, void *arg)
{
    (void)req;
    (void)arg;
    atomic_fetch_add(&handler_calls, 1);
    sleep_ms(600);
    http_response_text(res, "slow done");
}

struct echo_job {
    http_upgraded *u;
    int fd;
    char extra[256];
    size_t nextra;
};

static void *echo_thread(void *arg)
{
    struct echo_job *j = arg;
    send(j->fd, j->extra, j->nextra, MSG_NOSIGNAL);
    char buf[1024];
    for (;;) {
        struct pollfd pf = {j->fd, POLLIN, 0};
        if (poll(&pf, 1, 5000) <= 0) break;
        ssize_t r = recv(j->fd, buf, sizeof(buf), 0);
        if (r < 0 && errno == EAGAIN) continue;
        if (r <= 0) break;
        for (ssize_t i = 0; i < r; i++)
            buf[i] = (char)toupper((unsigned char)buf[i]);
        send(j->fd, buf, (size_t)r, MSG_NOSIGNAL);
    }
    http_upgraded_close(j->u);
    free(j);
    return NULL;
}

static void on_upgraded(http_upgraded *u, int fd, const void *extra, size_t n, void *arg)
{
    (void)arg;
    struct echo_job *j = calloc(1, sizeof(*j));
    j->u = u;
    j->fd = fd;
    CHECK(n < sizeof(j->extra));
    j->nextra = n < sizeof(j->extra) ? n : sizeof(j->extra);
    memcpy(j->extra, extra, j->nextra);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, echo_thread, j) == 0);
    pthread_detach(t);
}

static void upgrade(http_request *req, http_response *res, void *arg)
{
    (void)req;
    (void)arg;
    http_response_set_header(res, "Upgrade", "shout");
    CHECK(http_response_upgrade(res, on_upgraded, NULL) == 0);
    CHECK(http_defer(req, on_close, NULL) == NULL); /* no defer after upgrade */
}

static ssize_t count_fill(void *arg, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    int *left = arg;
    if (*left == 0) return HTTP_STREAM_END;
    (*left)--;
    int n = snprintf(buf, max, "line %d\n", *left);
    return n;
}

static void stream(http_request *req, http_response *res, void *arg)
{
    (void)req;
    (void)arg;
    int *left = malloc(sizeof(int));
    *left = 3;
    http_response_stream(res, "text/plain", -1, count_fill, left, free);
}

static bool deny_hook(http_request *req, http_response *res, void *arg)
{
    (void)arg;
    if (http_request_query(req, "deny")) {
        http_response_error(res, HTTP_STATUS_FORBIDDEN, "No entry.");
        return false;
    }
    return true;
}

static bool tag_before(http_request *req, http_response *res, void *arg)
{
    (void)req;
    (void)res;
    (void)arg;
    return true;
}

static void tag_after(http_request *req, http_response *res, void *arg)
{
    (void)req;
    /* After-hooks run in reverse order: hook 2 then hook 1. */
    intptr_t n = (intptr_t)arg;
    int expect = n == 2 ? 0 : 1;
    if (atomic_load(&after_order) == expect) atomic_store(&after_order, expect + 1);
    http_response_add_header(res, n == 2 ? "X-After-2" : "X-After-1", "yes");
}

static void custom_errors(http_request *req, http_response *res, int status, const char *message,
                          void *arg)
{
    (void)arg;
    if (!strcmp(http_request_path(req), "/fail-render"))
        return; /* leaves the body empty: the built-in page answers */
    char buf[512];
    snprintf(buf, sizeof(buf), "<p>custom %d: %s</p>", status, message);
    http_response_html(res, buf, strlen(buf));
}

static http_router *router;
static http_server *server;

static http_router *make_router(void)
{
    http_router *r = http_router_new();
    struct echo_err err = {0};
    assert_int_equal(http_router_add(r, HTTP_GET, "/hello", hello, NULL, &err), 0);
    assert_int_equal(http_router_add(r, HTTP_POST, "/form", form_echo, NULL, &err), 0);
    assert_int_equal(http_router_add(r, HTTP_GET, "/ip", ip, NULL, &err), 0);
    assert_int_equal(http_router_add(r, HTTP_GET, "/defer", defer, NULL, &err), 0);
    assert_int_equal(http_router_add(r, HTTP_GET, "/slow", slow, NULL, &err), 0);
    assert_int_equal(http_router_add(r, HTTP_GET, "/upgrade", upgrade, NULL, &err), 0);
    assert_int_equal(http_router_add(r, HTTP_GET, "/stream", stream, NULL, &err), 0);
    http_router_add_hook(r, deny_hook, NULL, NULL);
    http_router_add_hook(r, tag_before, tag_after, (void *)(intptr_t)1);
    http_router_add_hook(r, tag_before, tag_after, (void *)(intptr_t)2);
    http_router_set_error_handler(r, custom_errors, NULL);
    return r;
}

static http_server *start(http_router *r, bool trusted_proxy, unsigned request_max_s)
{
    struct http_server_options o;
    http_server_options_init(&o);
    o.port = 0;
    o.threads = 2;
    o.max_body_bytes = 4096;
    o.idle_timeout_s = 10;
    o.request_max_s = request_max_s;
    o.trusted_proxy = trusted_proxy;
    o.access_log = false;
    struct echo_err err = {0};
    http_server *s = http_server_new(&o, r, &err);
    if (!s) fail_msg("server: %s", err.msg);
    assert_true(http_server_port(s) > 0);
    return s;
}

static int setup(void **state)
{
    (void)state;
    router = make_router();
    server = start(router, false, 30);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    assert_int_equal(atomic_load(&thread_failures), 0);
    http_server_free(server);
    http_router_free(router);
    return 0;
}

/* ---- tests ---- */

static void test_keepalive_and_headers(void **state)
{
    (void)state;
    struct conn *c = conn_open(http_server_port(server));
    struct resp r;
    for (int i = 0; i < 3; i++) {
        request(c, &r, "GET /hello?who=bob HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_int_equal(r.status, 200);
        assert_int_equal(r.body_len, 9);
        assert_memory_equal(r.body, "hello bob", 9);
    }
    assert_string_equal(header(&r, "Content-Type"), "text/plain; charset=utf-8");
    assert_string_equal(header(&r, "X-Content-Type-Options"), "nosniff");
    assert_string_equal(header(&r, "X-Frame-Options"), "DENY");
    assert_string_equal(header(&r, "Referrer-Policy"), "same-origin");
    assert_string_equal(header(&r, "Cross-Origin-Opener-Policy"), "same-origin");
    assert_non_null(strstr(header(&r, "Content-Security-Policy"), "frame-ancestors 'none'"));
    assert_string_equal(header(&r, "X-After-1"), "yes");
    assert_string_equal(header(&r, "X-After-2"), "yes");
    assert_int_equal(atomic_load(&after_order), 2);
    /* HEAD: same headers, no body. */
    request(c, &r, "HEAD /hello?who=bob HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(r.status, 200);
    assert_string_equal(header(&r, "Content-Length"), "9");
    assert_string_equal(header(&r, "Content-Type"), "text/plain; charset=utf-8");
    /* Pipelined: two requests in one write, two answers in order. */
    conn_puts(c, "GET /hello?who=a HTTP/1.1\r\nHost: t\r\n\r\n"
                 "GET /hello?who=b HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_true(read_response(c, &r, false));
    assert_memory_equal(r.body, "hello a", 7);
    assert_true(read_response(c, &r, false));
    assert_memory_equal(r.body, "hello b", 7);
    conn_close(c);
}

static void test_errors(void **state)
{
    (void)state;
    struct conn *c = conn_open(http_server_port(server));
    struct resp r;
    request(c, &r, "GET /nowhere HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(r.status, 404);
    assert_non_null(strstr(r.body, "custom 404: The page you asked for does not exist."));
    assert_string_equal(header(&r, "X-Frame-Options"), "DENY");
    request(c, &r, "DELETE /hello HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(r.status, 405);
    assert_string_equal(header(&r, "Allow"), "GET, HEAD, OPTIONS");
    request(c, &r, "OPTIONS /form HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(r.status, 204);
    assert_string_equal(header(&r, "Allow"), "POST, OPTIONS");
    request(c, &r, "BREW /hello HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(r.status, 405);
    /* Before-hook refusal: handler skipped, hook's status and message. */
    int calls = atomic_load(&handler_calls);
    request(c, &r, "GET /hello?deny=1 HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(r.status, 403);
    assert_non_null(strstr(r.body, "custom 403: No entry."));
    assert_int_equal(atomic_load(&handler_calls), calls);
    /* An error handler that renders nothing: the built-in page, as JSON
     * when the client prefers it. */
    request(c, &r, "GET /fail-render HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(r.status, 404);
    assert_non_null(strstr(r.body, "<h1>404 Not found</h1>"));
    request(c, &r, "GET /fail-render HTTP/1.1\r\nHost: t\r\nAccept: application/json\r\n\r\n");
    assert_int_equal(r.status, 404);
    assert_string_equal(header(&r, "Content-Type"), "application/json");
    assert_non_null(strstr(r.body, "\"code\":404"));
    /* Malformed paths and queries are 400 and the connection stays. */
    static const char *const bad[] = {"/a%00b", "/%2e%2e/etc/passwd", "/a%2Fb",      "/%zz",
                                      "/x%C3",  "/hello?a=%zz",       "/hello?a=%00"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char raw[256];
        snprintf(raw, sizeof(raw), "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", bad[i]);
        request(c, &r, raw);
        if (r.status != 400) fail_msg("%s gave %d", bad[i], r.status);
    }
    request(c, &r, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(r.status, 200);
    conn_close(c);
}

static void test_limits(void **state)
{
    (void)state;
    struct resp r;
    struct strbuf sb;
    /* URL over 8192 bytes: our 414 page, connection kept. */
    struct conn *c = conn_open(http_server_port(server));
    strbuf_init(&sb);
    strbuf_puts(&sb, "GET /hello?x=");
    for (int i = 0; i < 9000; i++)
        strbuf_putc(&sb, 'a');
    strbuf_puts(&sb, " HTTP/1.1\r\nHost: t\r\n\r\n");
    request(c, &r, sb.data);
    strbuf_deinit(&sb);
    assert_int_equal(r.status, 414);
    assert_non_null(strstr(r.body, "custom 414"));
    request(c, &r, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(r.status, 200);
    /* Headers over 16 KiB: our 431 page. */
    strbuf_init(&sb);
    strbuf_puts(&sb, "GET /hello HTTP/1.1\r\nHost: t\r\n");
    for (int i = 0; i < 20; i++) {
        strbuf_printf(&sb, "X-Pad-%d: ", i);
        for (int k = 0; k < 1000; k++)
            strbuf_putc(&sb, 'p');
        strbuf_puts(&sb, "\r\n");
    }
    strbuf_puts(&sb, "\r\n");
    request(c, &r, sb.data);
    strbuf_deinit(&sb);
    assert_int_equal(r.status, 431);
    assert_non_null(strstr(r.body, "custom 431"));
    /* A body over max_body_bytes (4096) but under twice that: read away,
     * 413, and the connection still serves. */
    strbuf_init(&sb);
    strbuf_puts(&sb, "POST /form HTTP/1.1\r\nHost: t\r\n"
                     "Content-Type: application/x-www-form-urlencoded\r\n"
                     "Content-Length: 5000\r\n\r\n");
    for (int i = 0; i < 5000; i++)
        strbuf_putc(&sb, 'z');
    int calls = atomic_load(&handler_calls);
    request(c, &r, sb.data);
    strbuf_deinit(&sb);
    assert_int_equal(r.status, 413);
    assert_int_equal(atomic_load(&handler_calls), calls);
    request(c, &r, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(r.status, 200);
    /* Same with chunked encoding. */
    strbuf_init(&sb);
    strbuf_puts(&sb, "POST /form HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
    for (int i = 0; i < 5; i++) {
        strbuf_puts(&sb, "3e8\r\n");
        for (int k = 0; k < 1000; k++)
            strbuf_putc(&sb, 'c');
        strbuf_puts(&sb, "\r\n");
    }
    strbuf_puts(&sb, "0\r\n\r\n");
    request(c, &r, sb.data);
    strbuf_deinit(&sb);
    assert_int_equal(r.status, 413);
    request(c, &r, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(r.status, 200);
    conn_close(c);
    /* A declared body far over the limit is refused at once (before it is
     * sent), and the connection is closed afterwards. */
    c = conn_open(http_server_port(server));
    request(c, &r, "POST /form HTTP/1.1\r\nHost: t\r\nContent-Length: 100000000\r\n\r\n");
    assert_int_equal(r.status, 413);
    assert_true(conn_closed_by_peer(c, 3000));
    conn_close(c);
    /* Expect: 100-continue with a too large body: 413 instead of 100. */
    c = conn_open(http_server_port(server));
    request(c, &r,
            "POST /form HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n"
            "Expect: 100-continue\r\n\r\n");
    assert_int_equal(r.status, 413);
    conn_close(c);
}

static void test_forms(void **state)
{
    (void)state;
    struct conn *c = conn_open(http_server_port(server));
    struct resp r;
    const char *body = "a=1&b=two+words&a=3";
    char raw[1024];
    snprintf(raw, sizeof(raw),
             "POST /form HTTP/1.1\r\nHost: t\r\nContent-Type: application/x-www-form-urlencoded\r\n"
             "Content-Length: %zu\r\n\r\n%s",
             strlen(body), body);
    request(c, &r, raw);
    assert_int_equal(r.status, 200);
    r.body[r.body_len] = 0;
    assert_string_equal(r.body, "a=1;b=two words;a=3;");
    static const char mp[] = "--B\r\nContent-Disposition: form-data; name=\"t\"\r\n\r\nhi\r\n"
                             "--B\r\nContent-Disposition: form-data; name=\"f\"; "
                             "filename=\"x.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n"
                             "\x00\x01\x02\r\n--B--\r\n";
    snprintf(raw, sizeof(raw),
             "POST /form HTTP/1.1\r\nHost: t\r\nContent-Type: multipart/form-data; boundary=B\r\n"
             "Content-Length: %zu\r\n\r\n",
             sizeof(mp) - 1);
    conn_puts(c, raw);
    conn_send(c, mp, sizeof(mp) - 1);
    assert_true(read_response(c, &r, false));
    assert_int_equal(r.status, 200);
    r.body[r.body_len] = 0;
    assert_string_equal(r.body, "t=hi;file:f:x.bin:3;");
    /* A malformed form never reaches the handler. */
    int calls = atomic_load(&handler_calls);
    static const char broken[] = "--B\r\nContent-Disposition: form-data; name=\"t\"\r\n\r\nno end";
    snprintf(raw, sizeof(raw),
             "POST /form HTTP/1.1\r\nHost: t\r\nContent-Type: multipart/form-data; boundary=B\r\n"
             "Content-Length: %zu\r\n\r\n%s",
             sizeof(broken) - 1, broken);
    request(c, &r, raw);
    assert_int_equal(r.status, 400);
    assert_int_equal(atomic_load(&handler_calls), calls);
    conn_close(c);
}

static void test_stream(void **state)
{
    (void)state;
    struct conn *c = conn_open(http_server_port(server));
    struct resp r;
    request(c, &r, "GET /stream HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(r.status, 200);
    r.body[r.body_len] = 0;
    assert_string_equal(r.body, "line 2\nline 1\nline 0\n");
    request(c, &r, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(r.status, 200);
    conn_close(c);
}

struct completer {
    http_deferred *d;
    int rc;
};

static void *complete_later(void *arg)
{
    struct completer *cp = arg;
    sleep_ms(100);
    http_response *res = http_response_new();
    http_response_set_status(res, 202);
    http_response_set_header(res, "X-Deferred", "1");
    http_response_text(res, "late answer");
    cp->rc = http_deferred_complete(cp->d, res);
    return NULL;
}

static void test_deferred_complete(void **state)
{
    (void)state;
    struct conn *c = conn_open(http_server_port(server));
    struct resp r;
    for (int round = 0; round < 3; round++) {
        conn_puts(c, "GET /defer HTTP/1.1\r\nHost: t\r\n\r\n");
        struct completer cp = {.d = take_parked()};
        assert_non_null(cp.d);
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, complete_later, &cp), 0);
        assert_true(read_response(c, &r, false));
        pthread_join(t, NULL);
        assert_int_equal(cp.rc, 0);
        assert_int_equal(r.status, 202);
        assert_string_equal(header(&r, "X-Deferred"), "1");
        assert_string_equal(header(&r, "X-Frame-Options"), "DENY");
        assert_memory_equal(r.body, "late answer", 11);
    }
    /* Completed inside the handler. */
    request(c, &r, "GET /defer?now=1 HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(r.status, 200);
    assert_memory_equal(r.body, "answered at once", 16);
    /* The connection still works after deferred answers. */
    request(c, &r, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(r.status, 200);
    conn_close(c);
}

static void test_deferred_disconnect(void **state)
{
    (void)state;
    int before = atomic_load(&closes_gone);
    struct conn *c = conn_open(http_server_port(server));
    conn_puts(c, "GET /defer HTTP/1.1\r\nHost: t\r\n\r\n");
    for (int i = 0; i < 500 && !parked_present(); i++)
        sleep_ms(10);
    assert_true(parked_present());
    sleep_ms(50); /* let the handler return and the connection suspend */
    conn_close(c);
    /* The hang-up is noticed while the request waits: on_close runs (and
     * its complete returns HTTP_ERR_GONE, checked inside). */
    for (int i = 0; i < 500 && atomic_load(&closes_gone) == before; i++)
        sleep_ms(10);
    assert_int_equal(atomic_load(&closes_gone), before + 1);
    assert_false(parked_present());
    /* The server is fine afterwards. */
    c = conn_open(http_server_port(server));
    struct resp r;
    request(c, &r, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(r.status, 200);
    conn_close(c);
}

/* Completion and hang-up racing: for each request exactly one of
 * "complete returned 0" and "on_close ran" must happen. */
static void test_deferred_race(void **state)
{
    (void)state;
    int gone_before = atomic_load(&closes_gone);
    int completed = 0, refused = 0;
    for (int i = 0; i < 40; i++) {
        struct conn *c = conn_open(http_server_port(server));
        conn_puts(c, "GET /defer HTTP/1.1\r\nHost: t\r\n\r\n");
        http_deferred *d = take_parked();
        assert_non_null(d);
        if (i % 2) sleep_ms(i % 7);
        conn_close(c);
        if (i % 3) sleep_ms(i % 5);
        http_response *res = http_response_new();
        http_response_text(res, "maybe");
        int rc = http_deferred_complete(d, res);
        if (rc == 0)
            completed++;
        else if (rc == HTTP_ERR_GONE)
            refused++;
        else
            fail_msg("complete returned %d", rc);
    }
    /* Wait for the on_close calls of the refused ones. */
    for (int i = 0; i < 300 && atomic_load(&closes_gone) - gone_before < refused; i++)
        sleep_ms(10);
    assert_int_equal(completed + refused, 40);
    assert_int_equal(atomic_load(&closes_gone) - gone_before, refused);
}

static void test_upgrade(void **state)
{
    (void)state;
    struct conn *c = conn_open(http_server_port(server));
    struct resp r;
    /* "early" arrives with the request: it must reach the new protocol. */
    conn_puts(c, "GET /upgrade HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\n"
                 "Upgrade: shout\r\n\r\nearly");
    assert_true(read_response(c, &r, false));
    assert_int_equal(r.status, 101);
    assert_non_null(strcasestr(header(&r, "Connection"), "upgrade"));
    assert_string_equal(header(&r, "Upgrade"), "shout");
    while (c->len < 5)
        assert_true(conn_fill(c));
    assert_memory_equal(c->buf, "early", 5);
    conn_consume(c, 5);
    conn_puts(c, "ping");
    while (c->len < 4)
        assert_true(conn_fill(c));
    assert_memory_equal(c->buf, "PING", 4);
    conn_close(c);
    /* HTTP/1.0 cannot upgrade: 400. */
    c = conn_open(http_server_port(server));
    request(c, &r, "GET /upgrade HTTP/1.0\r\nHost: t\r\n\r\n");
    assert_int_equal(r.status, 400);
    conn_close(c);
}

static void test_client_ip(void **state)
{
    (void)state;
    struct resp r;
    struct conn *c = conn_open(http_server_port(server));
    request(c, &r, "GET /ip HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n");
    r.body[r.body_len] = 0;
    assert_string_equal(r.body, "127.0.0.1"); /* not trusted: ignored */
    conn_close(c);

    http_server *proxied = start(router, true, 30);
    static const char *const cases[][2] = {
        {"", "127.0.0.1"},
        {"X-Forwarded-For: 203.0.113.7\r\n", "203.0.113.7"},
        {"X-Forwarded-For: 1.1.1.1, 203.0.113.7\r\n", "203.0.113.7"},
        {"X-Forwarded-For: 203.0.113.7, 127.0.0.1\r\n", "203.0.113.7"},
        {"X-Forwarded-For: 1.1.1.1\r\nX-Forwarded-For: 2001:db8::1\r\n", "2001:db8::1"},
        {"X-Forwarded-For: forged, 198.51.100.2\r\n", "198.51.100.2"},
        {"X-Forwarded-For: 198.51.100.2, garbage\r\n", "127.0.0.1"},
        {"X-Forwarded-For: 127.0.0.1, ::1\r\n", "127.0.0.1"},
        {"X-Forwarded-For: ::ffff:192.0.2.9\r\n", "192.0.2.9"},
    };
    c = conn_open(http_server_port(proxied));
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char raw[512];
        snprintf(raw, sizeof(raw), "GET /ip HTTP/1.1\r\nHost: t\r\n%s\r\n", cases[i][0]);
        request(c, &r, raw);
        r.body[r.body_len] = 0;
        if (strcmp(r.body, cases[i][1]))
            fail_msg("case %zu: got %s, want %s", i, r.body, cases[i][1]);
    }
    conn_close(c);
    http_server_free(proxied);
}

static void test_slow_client_cut(void **state)
{
    (void)state;
    http_server *strict = start(router, false, 1);
    struct conn *c = conn_open(http_server_port(strict));
    conn_puts(c, "GET /hello HTTP/1.1\r\nHost: t\r\n");
    /* Trickle: the idle timeout (10 s) never fires, the 1 s total does. */
    bool closed = false;
    for (int i = 0; i < 30 && !closed; i++) {
        conn_puts(c, "X-Slow: 1\r\n");
        closed = conn_closed_by_peer(c, 200);
    }
    assert_true(closed);
    conn_close(c);
    /* A normal client on the same server is unaffected. */
    c = conn_open(http_server_port(strict));
    struct resp r;
    request(c, &r, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(r.status, 200);
    conn_close(c);
    http_server_free(strict);
}

struct stopper {
    http_server *s;
};

static void *stop_later(void *arg)
{
    struct stopper *st = arg;
    sleep_ms(200);
    http_server_stop(st->s, 5000);
    return NULL;
}

static void stop_hook(http_server *s, void *arg)
{
    (void)s;
    atomic_fetch_add((atomic_int *)arg, 1);
}

static void test_graceful_stop(void **state)
{
    (void)state;
    http_server *s = start(router, false, 30);
    atomic_int hooks = 0;
    http_server_add_stop_hook(s, stop_hook, &hooks);
    unsigned port = http_server_port(s);
    int shut_before = atomic_load(&closes_shutdown);
    /* A deferred request waiting, and a slow request in flight. */
    struct conn *waiting = conn_open(port);
    conn_puts(waiting, "GET /defer HTTP/1.1\r\nHost: t\r\n\r\n");
    for (int i = 0; i < 500 && !parked_present(); i++)
        sleep_ms(10);
    assert_true(parked_present());
    sleep_ms(50);
    struct conn *c = conn_open(port);
    conn_puts(c, "GET /slow HTTP/1.1\r\nHost: t\r\n\r\n");
    sleep_ms(100);
    struct stopper st = {s};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, stop_later, &st), 0);
    struct resp r;
    assert_true(read_response(c, &r, false));
    assert_int_equal(r.status, 200);
    assert_memory_equal(r.body, "slow done", 9);
    assert_string_equal(header(&r, "Connection"), "close");
    pthread_join(t, NULL);
    assert_int_equal(hooks, 1);
    /* The waiting request was closed with HTTP_CLOSE_SHUTDOWN. */
    assert_int_equal(atomic_load(&closes_shutdown), shut_before + 1);
    assert_true(conn_closed_by_peer(waiting, 3000));
    conn_close(waiting);
    conn_close(c);
    /* Nothing listens any more. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_not_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    close(fd);
    http_server_free(s);
}

static void test_bind_errors(void **state)
{
    (void)state;
    struct http_server_options o;
    http_server_options_init(&o);
    o.port = http_server_port(server); /* taken */
    o.access_log = false;
    struct echo_err err = {0};
    assert_null(http_server_new(&o, router, &err));
    assert_non_null(strstr(err.msg, "already in use"));
    o.port = 0;
    o.host = "::1";
    http_server *v6 = http_server_new(&o, router, &err);
    if (v6) /* IPv6 may be missing in a container */
        http_server_free(v6);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keepalive_and_headers),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_forms),
        cmocka_unit_test(test_stream),
        cmocka_unit_test(test_deferred_complete),
        cmocka_unit_test(test_deferred_disconnect),
        cmocka_unit_test(test_deferred_race),
        cmocka_unit_test(test_upgrade),
        cmocka_unit_test(test_client_ip),
        cmocka_unit_test(test_slow_client_cut),
        cmocka_unit_test(test_graceful_stop),
        cmocka_unit_test(test_bind_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
