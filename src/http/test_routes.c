/*
 * test_routes.c - routes under /_test/ that let the end-to-end tests drive
 * the server's hard paths through the real binary: a slow request (graceful
 * shutdown), a deferred answer from another thread and its on_close counter
 * (client hang-up), an upgraded socket that echoes bytes, a streamed body,
 * and an echo of the decoded request. Mounted only by
 * `echobot serve --test-routes`, which production refuses.
 */
#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "http/http.h"

static atomic_long deferred_completed, deferred_gone, deferred_closed;

static long query_long(http_request *req, const char *name, long def, long max)
{
    const char *v = http_request_query(req, name);
    int64_t n;
    if (!v || parse_int64(v, 0, max, &n) != 0) return def;
    return (long)n;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static void slow(http_request *req, http_response *res, void *arg)
{
    (void)arg;
    long ms = query_long(req, "ms", 1000, 20000);
    sleep_ms(ms);
    char buf[64];
    snprintf(buf, sizeof(buf), "slept %ld ms\n", ms);
    http_response_text(res, buf);
}

struct defer_job {
    http_deferred *d;
    long ms;
};

static void *defer_thread(void *arg)
{
    struct defer_job *job = arg;
    sleep_ms(job->ms);
    http_response *res = http_response_new();
    char buf[64];
    snprintf(buf, sizeof(buf), "deferred %ld ms\n", job->ms);
    http_response_text(res, buf);
    if (http_deferred_complete(job->d, res) == 0)
        atomic_fetch_add(&deferred_completed, 1);
    else
        atomic_fetch_add(&deferred_gone, 1);
    free(job);
    return NULL;
}

static void on_deferred_close(http_deferred *d, enum http_close_reason why, void *arg)
{
    (void)d;
    (void)why;
    (void)arg;
    atomic_fetch_add(&deferred_closed, 1);
}

static void defer(http_request *req, http_response *res, void *arg)
{
    (void)arg;
    struct defer_job *job = xcalloc(1, sizeof(*job));
    job->ms = query_long(req, "ms", 1000, 60000);
    job->d = http_defer(req, on_deferred_close, NULL);
    if (!job->d) {
        free(job);
        http_response_error(res, HTTP_STATUS_INTERNAL_ERROR, NULL);
        return;
    }
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &attr, defer_thread, job) != 0) {
        /* Keep the contract: complete exactly once. */
        http_deferred_complete(job->d, NULL);
        free(job);
    }
    pthread_attr_destroy(&attr);
}

static void stats(http_request *req, http_response *res, void *arg)
{
    (void)req;
    (void)arg;
    json_t *j = json_pack("{s:I,s:I,s:I}", "deferred_completed",
                          (json_int_t)atomic_load(&deferred_completed), "deferred_gone",
                          (json_int_t)atomic_load(&deferred_gone), "deferred_closed",
                          (json_int_t)atomic_load(&deferred_closed));
    http_response_json(res, j);
    json_decref(j);
}

static json_t *params_json(const struct http_param *p, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_pack("[s,s%]", p[i].name, p[i].value, p[i].value_len));
    return a;
}

static void echo(http_request *req, http_response *res, void *arg)
{
    (void)arg;
    size_t nq, nf, nfiles, nc, blen;
    const struct http_param *q = http_request_query_list(req, &nq);
    const struct http_param *f = http_request_form_list(req, &nf);
    const struct http_param *c = http_request_cookie_list(req, &nc);
    const struct http_file *files = http_request_file_list(req, &nfiles);
    http_request_body(req, &blen);
    json_t *jf = json_array();
    for (size_t i = 0; i < nfiles; i++) {
        /* A checksum lets the test compare binary uploads byte for byte. */
        uint32_t sum = 2166136261u;
        for (size_t k = 0; k < files[i].size; k++)
            sum = (sum ^ files[i].data[k]) * 16777619u;
        json_array_append_new(jf, json_pack("{s:s,s:s,s:s,s:I,s:I}", "field", files[i].field,
                                            "filename", files[i].filename, "content_type",
                                            files[i].content_type, "size",
                                            (json_int_t)files[i].size, "fnv1a", (json_int_t)sum));
    }
    const char *name = http_request_param(req, "name");
    json_t *j = json_pack("{s:s,s:s,s:s,s:o,s:o,s:o,s:o,s:I,s:s,s:s?,s:b}", "method",
                          http_request_method_name(req), "path", http_request_path(req), "target",
                          http_request_target(req), "query", params_json(q, nq), "form",
                          params_json(f, nf), "cookies", params_json(c, nc), "files", jf,
                          "body_len", (json_int_t)blen, "client_ip", http_request_client_ip(req),
                          "param", name, "prefers_json", http_request_prefers_json(req));
    http_response_json(res, j);
    json_decref(j);
}

static void set_cookie(http_request *req, http_response *res, void *arg)
{
    (void)req;
    (void)arg;
    struct http_cookie c = {.name = "echo_test",
                            .value = "v1",
                            .path = "/",
                            .max_age = 60,
                            .http_only = true,
                            .same_site = HTTP_SAME_SITE_LAX};
    http_response_set_cookie(res, &c);
    http_response_redirect(res, HTTP_STATUS_SEE_OTHER, "/_test/echo");
}

static void error_route(http_request *req, http_response *res, void *arg)
{
    (void)arg;
    long code = query_long(req, "code", 500, 599);
    if (code == 429) http_response_set_header(res, "Retry-After", "1");
    http_response_error(res, (int)code, NULL);
}

struct stream_state {
    long chunks;
    long sent;
};

static ssize_t stream_fill(void *arg, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    struct stream_state *st = arg;
    if (st->sent >= st->chunks) return HTTP_STREAM_END;
    int n = snprintf(buf, max, "chunk %ld\n", st->sent++);
    return n > 0 && (size_t)n < max ? n : HTTP_STREAM_ERROR;
}

static void stream(http_request *req, http_response *res, void *arg)
{
    (void)arg;
    struct stream_state *st = xcalloc(1, sizeof(*st));
    st->chunks = query_long(req, "n", 5, 100000);
    http_response_stream(res, "text/plain; charset=utf-8", -1, stream_fill, st, free);
}

struct echo_conn {
    http_upgraded *u;
    int fd;
    char *pending;
    size_t npending;
};

static bool write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
            struct pollfd pf = {fd, POLLOUT, 0};
            if (poll(&pf, 1, 10000) <= 0) return false;
            continue;
        }
        if (w <= 0) return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

static void *echo_thread(void *arg)
{
    struct echo_conn *ec = arg;
    bool ok = write_all(ec->fd, ec->pending, ec->npending);
    char buf[4096];
    while (ok) {
        struct pollfd pf = {ec->fd, POLLIN, 0};
        int pr = poll(&pf, 1, 30000);
        if (pr <= 0) break;
        ssize_t r = recv(ec->fd, buf, sizeof(buf), 0);
        if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
        if (r <= 0) break;
        ok = write_all(ec->fd, buf, (size_t)r);
    }
    http_upgraded_close(ec->u);
    free(ec->pending);
    free(ec);
    return NULL;
}

static void on_upgraded(http_upgraded *u, int fd, const void *extra, size_t extra_len, void *arg)
{
    (void)arg;
    struct echo_conn *ec = xcalloc(1, sizeof(*ec));
    ec->u = u;
    ec->fd = fd;
    ec->pending = xmalloc(extra_len + 1);
    memcpy(ec->pending, extra, extra_len);
    ec->npending = extra_len;
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &attr, echo_thread, ec) != 0) {
        http_upgraded_close(u);
        free(ec->pending);
        free(ec);
    }
    pthread_attr_destroy(&attr);
}

static void upgrade(http_request *req, http_response *res, void *arg)
{
    (void)arg;
    const char *up = http_request_header(req, "Upgrade");
    if (!up || strcasecmp(up, "echo")) {
        http_response_error(res, HTTP_STATUS_BAD_REQUEST, "This address expects Upgrade: echo.");
        return;
    }
    http_response_set_header(res, "Upgrade", "echo");
    http_response_upgrade(res, on_upgraded, NULL);
}

int http_add_test_routes(http_router *r, struct echo_err *err)
{
    const struct {
        unsigned methods;
        const char *pattern;
        http_handler_fn fn;
    } routes[] = {
        {HTTP_GET, "/_test/slow", slow},
        {HTTP_GET, "/_test/defer", defer},
        {HTTP_GET, "/_test/stats", stats},
        {HTTP_GET | HTTP_POST | HTTP_PUT, "/_test/echo", echo},
        {HTTP_GET | HTTP_POST, "/_test/param/<name>", echo},
        {HTTP_POST, "/_test/set-cookie", set_cookie},
        {HTTP_GET, "/_test/error", error_route},
        {HTTP_GET, "/_test/stream", stream},
        {HTTP_GET, "/_test/upgrade", upgrade},
    };
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        int rc = http_router_add(r, routes[i].methods, routes[i].pattern, routes[i].fn, NULL, err);
        if (rc != 0) return rc;
    }
    return 0;
}
