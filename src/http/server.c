/*
 * server.c - the libmicrohttpd daemon behind http.h: start-up (our own
 * listening socket, epoll workers in a thread pool, suspend/resume and
 * upgrade enabled), the request life cycle, limits, the security headers,
 * the access log, deferred and upgraded connections, and the graceful stop.
 *
 * One request's path through the daemon's callbacks:
 *   on_uri         request line parsed: our http_request is created
 *   on_access #1   headers complete: method, limits (414/431/413), path and
 *                  query decoding (400), client IP
 *   on_access #n   body chunks: kept up to max_body_bytes; beyond that (or
 *                  after an early error) drained, and past twice the limit
 *                  the connection is closed
 *   on_access last the request is complete: dispatch, then queue the
 *                  response (or suspend it for a deferred answer)
 *   on_completed   the response is sent (or the connection died): access log,
 *                  everything freed
 * Responses are queued only from the first or the last call: libmicrohttpd
 * refuses them in between, and a response queued before the body is read
 * closes the connection afterwards, so errors found early wait for the end of
 * a small body to keep the connection alive.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http/internal.h"
#include "http/text.h"
#include "http/url.h"

#define DEFAULT_CSP                                                                                \
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "              \
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"

/* libmicrohttpd's own per-connection memory: it must hold the request line
 * and headers at our limits with room to spare, so that our 414/431 pages
 * (not the daemon's) answer everything up to well past those limits. */
#define MHD_POOL_BYTES (64 * 1024)

/* ---- options ---- */

void http_server_options_init(struct http_server_options *o)
{
    memset(o, 0, sizeof(*o));
    o->host = "127.0.0.1";
    o->port = 5000;
    o->threads = 4;
    o->max_body_bytes = 6 * 1024 * 1024;
    o->max_url_bytes = 8192;
    o->max_header_bytes = 16384;
    o->max_form_parts = 256;
    o->max_form_field_bytes = 1024 * 1024;
    o->idle_timeout_s = 30;
    o->request_max_s = 60;
    o->access_log = true;
}

/* "https://chat.example.com" -> "wss://chat.example.com"; NULL if the origin
 * is not a plain scheme://host[:port]. */
static bool ws_origin(const char *origin, struct strbuf *out)
{
    const char *rest;
    const char *scheme;
    if (!strncasecmp(origin, "https://", 8)) {
        scheme = "wss://";
        rest = origin + 8;
    } else if (!strncasecmp(origin, "http://", 7)) {
        scheme = "ws://";
        rest = origin + 7;
    } else {
        return false;
    }
    size_t n = strlen(rest);
    while (n > 0 && rest[n - 1] == '/')
        n--;
    if (n == 0) return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)rest[i];
        if (!(c == '.' || c == '-' || c == ':' || c == '[' || c == ']' || (c >= '0' && c <= '9') ||
              (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))
            return false;
    }
    strbuf_puts(out, scheme);
    strbuf_append(out, rest, n);
    return true;
}

void http_server_options_from_config(struct http_server_options *o, const config *cfg,
                                     struct strbuf *csp_buf)
{
    http_server_options_init(o);
    o->host = config_get(cfg, "ECHO_HOST");
    o->port = (unsigned)config_get_int(cfg, "ECHO_PORT");
    int64_t threads = config_get_int(cfg, "ECHO_THREADS");
    o->threads = threads < 1 ? 1 : threads > 256 ? 256 : (unsigned)threads;
    o->max_body_bytes = (size_t)config_get_int(cfg, "ECHO_MAX_BODY_BYTES");
    o->idle_timeout_s = (unsigned)config_get_int(cfg, "ECHO_REQUEST_TIMEOUT");
    o->request_max_s = (unsigned)config_get_int(cfg, "ECHO_REQUEST_MAX_SECONDS");
    o->trusted_proxy = config_get_bool(cfg, "ECHO_TRUSTED_PROXY");
    o->access_log = config_get_bool(cfg, "ECHO_ACCESS_LOG");
    const char *origin = config_get(cfg, "ECHO_SITE_ORIGIN");
    if (origin && origin[0] && csp_buf) {
        struct strbuf ws;
        strbuf_init(&ws);
        if (ws_origin(origin, &ws)) {
            strbuf_printf(csp_buf,
                          "default-src 'self'; img-src 'self' data:; style-src 'self'; "
                          "script-src 'self'; connect-src 'self' %s; frame-ancestors 'none'; "
                          "base-uri 'self'; form-action 'self'",
                          strbuf_cstr(&ws));
            o->csp = strbuf_cstr(csp_buf);
        } else {
            log_warn("ECHO_SITE_ORIGIN '%s' is not scheme://host[:port]; the CSP keeps "
                     "connect-src 'self'",
                     origin);
        }
        strbuf_deinit(&ws);
    }
}

/* ---- small helpers ---- */

static enum http_method parse_method(const char *m)
{
    static const struct {
        const char *name;
        enum http_method m;
    } methods[] = {{"GET", HTTP_GET},        {"HEAD", HTTP_HEAD},     {"POST", HTTP_POST},
                   {"PUT", HTTP_PUT},        {"DELETE", HTTP_DELETE}, {"PATCH", HTTP_PATCH},
                   {"OPTIONS", HTTP_OPTIONS}};
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
        if (!strcmp(m, methods[i].name)) return methods[i].m;
    return HTTP_OTHER;
}

static struct http_conn *conn_ctx(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

/* Text form of an address; IPv4-mapped IPv6 addresses print as IPv4. */
static void sockaddr_text(const struct sockaddr *sa, char *out, size_t n)
{
    snprintf(out, n, "unknown");
    if (!sa) return;
    if (sa->sa_family == AF_INET) {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, (socklen_t)n);
    } else if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a6))
            inet_ntop(AF_INET, &a6->s6_addr[12], out, (socklen_t)n);
        else
            inet_ntop(AF_INET6, a6, out, (socklen_t)n);
    }
}

/* Parses one X-Forwarded-For entry; canonical text into out. */
static bool parse_ip(const char *s, size_t len, char *out, size_t n, bool *loopback)
{
    char buf[64];
    if (len == 0 || len >= sizeof(buf)) return false;
    memcpy(buf, s, len);
    buf[len] = 0;
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, buf, &a4) == 1) {
        *loopback = (ntohl(a4.s_addr) >> 24) == 127;
        inet_ntop(AF_INET, &a4, out, (socklen_t)n);
        return true;
    }
    if (inet_pton(AF_INET6, buf, &a6) == 1) {
        if (IN6_IS_ADDR_V4MAPPED(&a6)) {
            *loopback = a6.s6_addr[12] == 127;
            inet_ntop(AF_INET, &a6.s6_addr[12], out, (socklen_t)n);
        } else {
            *loopback = IN6_IS_ADDR_LOOPBACK(&a6);
            inet_ntop(AF_INET6, &a6, out, (socklen_t)n);
        }
        return true;
    }
    return false;
}

struct xff_walk {
    struct strbuf all;
};

static enum MHD_Result collect_xff(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
    (void)kind;
    struct xff_walk *w = cls;
    if (key && value && !strcasecmp(key, "X-Forwarded-For")) {
        if (w->all.len) strbuf_putc(&w->all, ',');
        strbuf_puts(&w->all, value);
    }
    return MHD_YES;
}

/*
 * The client address. Behind a trusted proxy the right-most X-Forwarded-For
 * entry is what our proxy saw; loopback entries are further local proxies
 * and are skipped. Anything malformed stops the walk (entries to its left may
 * be forged by the client) and the last good answer stands.
 */
static void find_client_ip(http_request *req)
{
    /* req->client_ip already holds the peer (on_uri). */
    if (!req->srv->opt.trusted_proxy) return;
    struct xff_walk w;
    strbuf_init(&w.all);
    MHD_get_connection_values(req->conn, MHD_HEADER_KIND, collect_xff, &w);
    const char *s = strbuf_cstr(&w.all);
    size_t end = w.all.len;
    char best[48] = {0};
    while (end > 0) {
        size_t start = end;
        while (start > 0 && s[start - 1] != ',')
            start--;
        size_t b = start, e = end;
        while (b < e && (s[b] == ' ' || s[b] == '\t'))
            b++;
        while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t'))
            e--;
        char ip[48];
        bool loop = false;
        if (!parse_ip(s + b, e - b, ip, sizeof(ip), &loop)) break;
        memcpy(best, ip, sizeof(best));
        if (!loop) break;
        end = start > 0 ? start - 1 : 0;
    }
    if (best[0]) memcpy(req->client_ip, best, sizeof(req->client_ip));
    strbuf_deinit(&w.all);
}

struct header_size {
    size_t bytes;
    size_t count;
};

static enum MHD_Result count_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                    const char *value)
{
    (void)kind;
    struct header_size *hs = cls;
    hs->bytes += (key ? strlen(key) : 0) + (value ? strlen(value) : 0) + 4;
    hs->count++;
    return MHD_YES;
}

static bool token_in_list(const char *list, const char *token)
{
    size_t tl = strlen(token);
    const char *p = list;
    while (p && *p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        size_t n = strcspn(p, ",");
        size_t m = n;
        while (m > 0 && (p[m - 1] == ' ' || p[m - 1] == '\t'))
            m--;
        if (m == tl && !strncasecmp(p, token, tl)) return true;
        p += n;
    }
    return false;
}

/* ---- responses ---- */

struct stream_ctx {
    http_stream_fn fn;
    void *arg;
    void (*free_fn)(void *);
    http_request *req;
};

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct stream_ctx *sc = cls;
    ssize_t n = sc->fn(sc->arg, pos, buf, max);
    if (n == 0) /* would make the daemon spin; the contract says > 0 */
        return MHD_CONTENT_READER_END_WITH_ERROR;
    if (n == HTTP_STREAM_END) return MHD_CONTENT_READER_END_OF_STREAM;
    if (n < 0) return MHD_CONTENT_READER_END_WITH_ERROR;
    return n;
}

static void stream_free(void *cls)
{
    struct stream_ctx *sc = cls;
    if (sc->free_fn) sc->free_fn(sc->arg);
    free(sc);
}

/* Builds the daemon's response from ours; the body moves over. *bytes is
 * the body length (unknown streams: 0). */
static struct MHD_Response *make_mhd_response(http_response *res, uint64_t *bytes)
{
    struct MHD_Response *mr = NULL;
    *bytes = 0;
    switch (res->kind) {
    case BODY_MEM:
        mr = MHD_create_response_from_buffer_with_free_callback(res->body_len, res->body, free);
        if (mr) {
            *bytes = res->body_len;
            res->body = NULL;
            res->body_len = 0;
            res->kind = BODY_NONE;
        }
        break;
    case BODY_FILE:
        mr = MHD_create_response_from_fd_at_offset64(res->file_size, res->fd, res->file_offset);
        if (mr) {
            *bytes = res->file_size;
            res->fd = -1; /* the daemon closes it */
            res->kind = BODY_NONE;
        }
        break;
    case BODY_STREAM: {
        struct stream_ctx *sc = xcalloc(1, sizeof(*sc));
        sc->fn = res->stream_fn;
        sc->arg = res->stream_arg;
        sc->free_fn = res->stream_free;
        uint64_t size = res->stream_size < 0 ? MHD_SIZE_UNKNOWN : (uint64_t)res->stream_size;
        mr = MHD_create_response_from_callback(size, 32 * 1024, stream_reader, sc, stream_free);
        if (mr) {
            *bytes = res->stream_size < 0 ? 0 : (uint64_t)res->stream_size;
            res->stream_free = NULL; /* stream_free runs it */
            res->stream_fn = NULL;
            res->kind = BODY_NONE;
        } else {
            free(sc);
        }
        break;
    }
    case BODY_NONE:
        mr = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
        break;
    }
    return mr;
}

static void add_header(struct MHD_Response *mr, const char *name, const char *value)
{
    if (MHD_add_response_header(mr, name, value) != MHD_YES)
        log_warn("http: libmicrohttpd refused response header '%s'", name);
}

static void add_user_headers(struct MHD_Response *mr, const http_response *res)
{
    for (size_t i = 0; i < res->nheaders; i++)
        add_header(mr, res->headers[i].name, res->headers[i].value);
}

static void add_security_headers(http_server *srv, struct MHD_Response *mr,
                                 const http_response *res)
{
    static const char *const fixed[][2] = {
        {"X-Content-Type-Options", "nosniff"},
        {"X-Frame-Options", "DENY"},
        {"Referrer-Policy", "same-origin"},
        {"Cross-Origin-Opener-Policy", "same-origin"},
    };
    if (!response_has_header(res, "Content-Security-Policy"))
        add_header(mr, "Content-Security-Policy", srv->csp);
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
        if (!response_has_header(res, fixed[i][0])) add_header(mr, fixed[i][0], fixed[i][1]);
}

static void on_upgrade(void *cls, struct MHD_Connection *conn, void *con_cls, const char *extra_in,
                       size_t extra_in_size, MHD_socket sock,
                       struct MHD_UpgradeResponseHandle *urh);

static enum MHD_Result send_upgrade(http_request *req)
{
    http_response *res = req->res;
    if (strcmp(http_request_version(req), "HTTP/1.1")) {
        res->upgrade_fn = NULL;
        http_response_error(res, HTTP_STATUS_BAD_REQUEST, "Switching protocols needs HTTP/1.1.");
        return MHD_NO; /* the caller sends the error instead */
    }
    struct MHD_Response *mr = MHD_create_response_for_upgrade(on_upgrade, req);
    if (!mr) return MHD_NO;
    /* libmicrohttpd checks the first header for the upgrade token. */
    add_header(mr, "Connection", "Upgrade");
    add_user_headers(mr, res);
    enum MHD_Result ret = MHD_queue_response(req->conn, HTTP_STATUS_SWITCHING_PROTOCOLS, mr);
    MHD_destroy_response(mr);
    if (ret == MHD_YES) req->status_sent = HTTP_STATUS_SWITCHING_PROTOCOLS;
    return ret;
}

/* Queues req->res. */
static enum MHD_Result send_response(http_request *req)
{
    http_server *srv = req->srv;
    http_response *res = req->res;
    if (res->upgrade_fn) {
        if (send_upgrade(req) == MHD_YES) return MHD_YES;
        if (res->upgrade_fn) return MHD_NO;
        /* not HTTP/1.1: the 400 set by send_upgrade follows */
    }
    if (res->error_status) router_render_error(srv->router, req, res);
    uint64_t bytes = 0;
    struct MHD_Response *mr = make_mhd_response(res, &bytes);
    if (!mr) {
        log_error("http: could not build a response for %s %s", req->method_name, req->path);
        return MHD_NO;
    }
    int status = res->status;
    if (res->content_type && status != HTTP_STATUS_NOT_MODIFIED && status != HTTP_STATUS_NO_CONTENT)
        add_header(mr, "Content-Type", res->content_type);
    add_user_headers(mr, res);
    add_security_headers(srv, mr, res);
    if (atomic_load(&srv->stopping)) add_header(mr, "Connection", "close");
    enum MHD_Result ret = MHD_queue_response(req->conn, (unsigned)status, mr);
    MHD_destroy_response(mr);
    if (ret == MHD_YES) {
        req->status_sent = status;
        bool bodiless = req->method == HTTP_HEAD || status < 200 ||
                        status == HTTP_STATUS_NO_CONTENT || status == HTTP_STATUS_NOT_MODIFIED;
        req->bytes_sent = bodiless ? 0 : bytes;
    } else {
        log_error("http: libmicrohttpd refused the response to %s %s", req->method_name, req->path);
    }
    return ret;
}

/* Answers an error right away (the first call), which closes the connection
 * once sent since the body is left unread. */
static enum MHD_Result send_early(http_request *req)
{
    req->phase = PHASE_DONE;
    if (req->hc) atomic_store(&req->hc->deadline_ns, 0);
    req->res = http_response_new();
    http_response_error(req->res, req->early_status, req->early_message);
    return send_response(req);
}

/* ---- upgrade ---- */

struct http_upgraded {
    struct MHD_UpgradeResponseHandle *urh;
    http_server *srv;
};

static void access_log(http_request *req, const char *note);

/* The request's memory is no longer needed once the socket is handed over;
 * the shell stays until the daemon's completion callback. */
static void request_release(http_request *req)
{
    for (struct data_slot *s = req->slots; s; s = s->next)
        if (s->free_fn && s->value) s->free_fn(s->value);
    req->slots = NULL;
    http_response_free(req->res);
    req->res = NULL;
    strbuf_deinit(&req->body);
    arena_free(req->arena);
    req->arena = NULL;
}

static void on_upgrade(void *cls, struct MHD_Connection *conn, void *con_cls, const char *extra_in,
                       size_t extra_in_size, MHD_socket sock, struct MHD_UpgradeResponseHandle *urh)
{
    (void)conn;
    (void)con_cls;
    http_request *req = cls;
    http_server *srv = req->srv;
    http_upgraded *u = xcalloc(1, sizeof(*u));
    u->urh = urh;
    u->srv = srv;
    atomic_fetch_add(&srv->upgraded, 1);
    req->upgraded = true;
    if (srv->opt.access_log) access_log(req, " upgraded");
    /* The request stays readable during the hand-off (the receiver may have
     * kept pointers into it in arg) and is released right after. */
    req->res->upgrade_fn(u, sock, extra_in, extra_in_size, req->res->upgrade_arg);
    request_release(req);
    atomic_fetch_sub(&srv->active, 1);
}

void http_upgraded_close(http_upgraded *u)
{
    if (!u) return;
    if (MHD_upgrade_action(u->urh, MHD_UPGRADE_ACTION_CLOSE) != MHD_YES)
        log_warn("http: closing an upgraded connection failed");
    atomic_fetch_sub(&u->srv->upgraded, 1);
    free(u);
}

/* ---- daemon callbacks ---- */

static void access_log(http_request *req, const char *note)
{
    const char *path = req->path && req->path[0] ? req->path : req->target;
    double ms = (double)(time_mono_ns() - req->start_ns) / 1e6;
    if (req->status_sent)
        log_info("%s %s %d %" PRIu64 " %.1fms %s%s", http_request_method_name(req), path,
                 req->status_sent, req->bytes_sent, ms, req->client_ip, note);
    else
        log_info("%s %s - - %.1fms %s%s", req->method_name ? req->method_name : "-", path, ms,
                 req->client_ip[0] ? req->client_ip : "-", note);
}

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    http_server *srv = cls;
    http_request *req = xcalloc(1, sizeof(*req));
    req->srv = srv;
    req->conn = conn;
    req->arena = arena_new(4096);
    req->start_ns = time_mono_ns();
    req->target = arena_strdup(req->arena, uri ? uri : "");
    req->path = "";
    req->hc = conn_ctx(conn);
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    sockaddr_text(ci ? ci->client_addr : NULL, req->client_ip, sizeof(req->client_ip));
    strbuf_init(&req->body);
    atomic_fetch_add(&srv->active, 1);
    return req;
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    http_server *srv = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        struct http_conn *hc = xcalloc(1, sizeof(*hc));
        hc->fd = ci ? ci->connect_fd : -1;
        uint64_t max = (uint64_t)srv->opt.request_max_s * 1000000000ull;
        atomic_init(&hc->deadline_ns, max && hc->fd >= 0 ? time_mono_ns() + max : 0);
        monitor_conn_add(srv->mon, hc);
        *socket_context = hc;
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        struct http_conn *hc = *socket_context;
        if (hc) {
            monitor_conn_remove(srv->mon, hc);
            free(hc);
            *socket_context = NULL;
        }
    }
}

static enum MHD_Result begin_request(http_request *req, const char *method, const char *version)
{
    http_server *srv = req->srv;
    const struct http_server_options *o = &srv->opt;
    req->phase = PHASE_BODY;
    req->method_name = arena_strdup(req->arena, method ? method : "");
    req->method = parse_method(req->method_name);
    req->version = arena_strdup(req->arena, version ? version : "");
    find_client_ip(req);

    if (strlen(req->target) > o->max_url_bytes)
        request_set_early_error(req, HTTP_STATUS_URI_TOO_LONG, NULL);
    struct header_size hs = {0};
    MHD_get_connection_values(req->conn, MHD_HEADER_KIND, count_header, &hs);
    if (hs.bytes > o->max_header_bytes)
        request_set_early_error(req, HTTP_STATUS_HEADER_FIELDS_TOO_LARGE, NULL);

    if (!req->early_status) {
        const char *q = strchr(req->target, '?');
        size_t plen = q ? (size_t)(q - req->target) : strlen(req->target);
        struct echo_err err = {0};
        const char *path = NULL;
        if (http_path_normalize(req->arena, req->target, plen, &path, &err) != 0) {
            log_info("http: bad path from %s: %s", req->client_ip, err.msg);
            request_set_early_error(req, HTTP_STATUS_BAD_REQUEST, "The address is malformed.");
        } else {
            req->path = path;
            req->query_string = q ? q + 1 : "";
            if (q && http_urlencoded_parse(req->arena, q + 1, strlen(q + 1), 256, 0, &req->query,
                                           &req->nquery, &err) != 0) {
                log_info("http: bad query from %s: %s", req->client_ip, err.msg);
                request_set_early_error(req, HTTP_STATUS_BAD_REQUEST,
                                        "The address's query is malformed.");
            }
        }
    }

    req->content_type = http_request_header(req, "Content-Type");
    const char *te = http_request_header(req, "Transfer-Encoding");
    const char *cl = http_request_header(req, "Content-Length");
    if (te && token_in_list(te, "chunked")) {
        req->content_length = UINT64_MAX;
    } else if (cl) {
        int64_t n = 0;
        if (parse_int64(cl, 0, INT64_MAX, &n) != 0)
            request_set_early_error(req, HTTP_STATUS_BAD_REQUEST, NULL);
        req->content_length = (uint64_t)n;
        if ((uint64_t)n > o->max_body_bytes)
            request_set_early_error(req, HTTP_STATUS_PAYLOAD_TOO_LARGE, NULL);
        else if (n > 0)
            strbuf_reserve(&req->body, (size_t)n + 1);
    }
    const char *expect = http_request_header(req, "Expect");
    req->expect_continue = expect && !strcasecmp(expect, "100-continue");

    if (req->early_status) {
        /* Answer at once if the body would be long to drain, or has not been
         * sent yet (100-continue); else read it away to keep the connection. */
        uint64_t drain_cap = (uint64_t)o->max_body_bytes * 2;
        if (req->expect_continue ||
            (req->content_length != UINT64_MAX && req->content_length > drain_cap))
            return send_early(req);
    }
    return MHD_YES;
}

static enum MHD_Result receive_body(http_request *req, const char *data, size_t *size)
{
    const struct http_server_options *o = &req->srv->opt;
    size_t n = *size;
    *size = 0;
    req->received += n;
    uint64_t drain_cap = (uint64_t)o->max_body_bytes * 2;
    if (!req->early_status && req->body.len + n > o->max_body_bytes) {
        request_set_early_error(req, HTTP_STATUS_PAYLOAD_TOO_LARGE, NULL);
        strbuf_deinit(&req->body);
        strbuf_init(&req->body);
    }
    if (req->early_status) {
        if (req->received > drain_cap) {
            log_info("http: %s %s from %s: body far over the limit; connection closed",
                     req->method_name, req->path, req->client_ip);
            return MHD_NO;
        }
        return MHD_YES;
    }
    strbuf_append(&req->body, data, n);
    return MHD_YES;
}

/* After the handler asked for a deferred answer. */
static enum MHD_Result park_deferred(http_request *req)
{
    struct http_deferred *d = req->deferred;
    http_server *srv = req->srv;
    pthread_mutex_lock(&d->mu);
    switch (d->state) {
    case DEF_COMPLETED: {
        http_response *res = d->res;
        d->res = NULL;
        pthread_mutex_unlock(&d->mu);
        http_response_free(req->res);
        req->res = res;
        return send_response(req);
    }
    case DEF_ARMED:
        if (atomic_load(&srv->stopping)) {
            /* Suspending now could leave a suspended connection behind at
             * the daemon's stop, which it does not allow. */
            d->state = DEF_GONE;
            pthread_mutex_unlock(&d->mu);
            if (d->on_close) d->on_close(d, HTTP_CLOSE_SHUTDOWN, d->arg);
            return MHD_NO;
        }
        /* Watched before suspending: a hang-up seen in between waits on
         * d->mu and then finds the handle suspended. An unwatched suspended
         * connection could never be closed at stop, so failing to watch it
         * ends the request instead. */
        if (monitor_watch(srv->mon, d) != 0) {
            d->state = DEF_GONE;
            pthread_mutex_unlock(&d->mu);
            if (d->on_close) d->on_close(d, HTTP_CLOSE_CLIENT_GONE, d->arg);
            return MHD_NO;
        }
        d->state = DEF_SUSPENDED;
        MHD_suspend_connection(req->conn);
        pthread_mutex_unlock(&d->mu);
        return MHD_YES;
    default:
        pthread_mutex_unlock(&d->mu);
        return MHD_NO; /* abandoned by its owner */
    }
}

/* Called again after a deferred connection was resumed. */
static enum MHD_Result resume_deferred(http_request *req)
{
    struct http_deferred *d = req->deferred;
    if (!d) return MHD_NO;
    pthread_mutex_lock(&d->mu);
    enum deferred_state st = d->state;
    http_response *res = d->res;
    d->res = NULL;
    pthread_mutex_unlock(&d->mu);
    if (st != DEF_COMPLETED || !res) {
        http_response_free(res);
        return MHD_NO;
    }
    http_response_free(req->res);
    req->res = res;
    return send_response(req);
}

static enum MHD_Result finish_request(http_request *req)
{
    req->phase = PHASE_DONE;
    if (req->hc) atomic_store(&req->hc->deadline_ns, 0);
    req->res = http_response_new();
    if (req->early_status) {
        http_response_error(req->res, req->early_status, req->early_message);
        return send_response(req);
    }
    router_dispatch(req->srv->router, req);
    if (req->deferred) return park_deferred(req);
    return send_response(req);
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **con_cls)
{
    http_request *req = *con_cls;
    if (!req) /* not seen by on_uri (cannot happen with the daemon's flow) */
        req = *con_cls = on_uri(cls, url, conn);
    switch (req->phase) {
    case PHASE_HEADERS:
        return begin_request(req, method, version);
    case PHASE_BODY:
        if (*upload_data_size) return receive_body(req, upload_data, upload_data_size);
        return finish_request(req);
    case PHASE_DONE:
        return resume_deferred(req);
    }
    return MHD_NO;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)conn;
    http_server *srv = cls;
    http_request *req = *con_cls;
    if (!req) return;
    *con_cls = NULL;
    if (req->upgraded) {
        free(req);
        return;
    }
    if (srv->opt.access_log) {
        const char *note = "";
        if (req->phase == PHASE_HEADERS && toe == MHD_REQUEST_TERMINATED_WITH_ERROR)
            note = " (refused by libmicrohttpd: malformed, or headers over its buffer)";
        else if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
            note = req->status_sent ? " (aborted)" : " (closed before an answer)";
        access_log(req, note);
    }
    if (req->hc && toe == MHD_REQUEST_TERMINATED_COMPLETED_OK) {
        /* The next request on this kept-alive connection gets the idle time
         * plus the usual allowance to arrive. */
        uint64_t max = (uint64_t)srv->opt.request_max_s * 1000000000ull;
        uint64_t idle = (uint64_t)srv->opt.idle_timeout_s * 1000000000ull;
        atomic_store(&req->hc->deadline_ns, max ? time_mono_ns() + idle + max : 0);
    }
    struct http_deferred *d = req->deferred;
    if (d) {
        pthread_mutex_lock(&d->mu);
        monitor_unwatch(srv->mon, d);
        d->state = DEF_FINISHED;
        pthread_mutex_unlock(&d->mu);
        deferred_unref(d);
    }
    atomic_fetch_sub(&srv->active, 1);
    request_free(req);
}

static size_t on_unescape(void *cls, struct MHD_Connection *c, char *s)
{
    (void)cls;
    (void)c;
    /* We decode the path and query ourselves, from the raw target. */
    return strlen(s);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char buf[512];
    vsnprintf(buf, sizeof(buf), fmt, ap);
    size_t n = strlen(buf);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = 0;
    /* Mostly clients going away mid-request: not worth a warning each. */
    log_debug("libmicrohttpd: %s", buf);
}

/* ---- start and stop ---- */

static int open_listener(const char *host, unsigned port, bool *ipv6, struct echo_err *err)
{
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    char portstr[16];
    snprintf(portstr, sizeof(portstr), "%u", port);
    int rc = getaddrinfo(host && host[0] ? host : NULL, portstr, &hints, &res);
    if (rc != 0) {
        echo_err_set(err, "cannot resolve host '%s': %s", host ? host : "", gai_strerror(rc));
        return -1;
    }
    /* Prefer IPv4 for names like "localhost" that resolve to both. */
    struct addrinfo *pick = NULL;
    for (struct addrinfo *ai = res; ai && !pick; ai = ai->ai_next)
        if (ai->ai_family == AF_INET) pick = ai;
    for (struct addrinfo *ai = res; ai && !pick; ai = ai->ai_next)
        if (ai->ai_family == AF_INET6) pick = ai;
    if (!pick) {
        freeaddrinfo(res);
        echo_err_set(err, "host '%s' has no IPv4 or IPv6 address", host);
        return -1;
    }
    int fd = socket(pick->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        echo_err_set(err, "socket: %s", strerror(errno));
        freeaddrinfo(res);
        return -1;
    }
    int on = 1, off = 0;
    /* SO_REUSEADDR lets a restart bind while old connections sit in
     * TIME_WAIT; SO_REUSEPORT is deliberately not set, so a second server on
     * the same port fails loudly instead of silently sharing it. */
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    *ipv6 = pick->ai_family == AF_INET6;
    if (*ipv6) {
        /* "::" also accepts IPv4 clients (dual stack). */
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off));
    }
    if (bind(fd, pick->ai_addr, pick->ai_addrlen) != 0) {
        int e = errno;
        echo_err_set(err, "cannot listen on %s:%u: %s%s", host, port, strerror(e),
                     e == EADDRINUSE ? " (is another server using this port?)" : "");
        close(fd);
        freeaddrinfo(res);
        return -1;
    }
    freeaddrinfo(res);
    if (listen(fd, SOMAXCONN) != 0) {
        echo_err_set(err, "listen: %s", strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

http_server *http_server_new(const struct http_server_options *o, http_router *router,
                             struct echo_err *err)
{
    if (!o || !router || o->threads < 1) {
        echo_err_set(err, "http_server_new: missing options or router");
        return NULL;
    }
    http_server *s = xcalloc(1, sizeof(*s));
    s->router = router;
    s->opt = *o;
    s->host = xstrdup(o->host ? o->host : "127.0.0.1");
    s->opt.host = s->host;
    s->csp = xstrdup(o->csp ? o->csp : DEFAULT_CSP);
    s->opt.csp = s->csp;
    s->quiesced_fd = -1;
    if (!s->opt.max_url_bytes) s->opt.max_url_bytes = 8192;
    if (!s->opt.max_header_bytes) s->opt.max_header_bytes = 16384;
    if (!s->opt.max_form_parts) s->opt.max_form_parts = 256;
    if (!s->opt.max_form_field_bytes) s->opt.max_form_field_bytes = 1024 * 1024;
    if (s->opt.max_url_bytes + s->opt.max_header_bytes > MHD_POOL_BYTES / 2) {
        echo_err_set(err, "URL and header limits must stay under %d bytes together",
                     MHD_POOL_BYTES / 2);
        goto fail;
    }
    s->mon = monitor_new(err);
    if (!s->mon) goto fail;
    bool ipv6 = false;
    int fd = open_listener(s->host, o->port, &ipv6, err);
    if (fd < 0) goto fail;
    struct rlimit rl;
    unsigned limit = 1000;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        limit = rl.rlim_cur > 256 ? (unsigned)(rl.rlim_cur - 128) : (unsigned)rl.rlim_cur / 2;
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_ALLOW_UPGRADE |
                     MHD_USE_ITC | MHD_USE_ERROR_LOG | (ipv6 ? MHD_USE_IPv6 : 0);
    s->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, on_access, s, MHD_OPTION_LISTEN_SOCKET, fd,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)o->threads, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)o->idle_timeout_s, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)MHD_POOL_BYTES,
        MHD_OPTION_CONNECTION_LIMIT, limit, MHD_OPTION_URI_LOG_CALLBACK, on_uri, s,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_NOTIFY_CONNECTION, on_connection,
        s, MHD_OPTION_UNESCAPE_CALLBACK, on_unescape, s, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, s,
        MHD_OPTION_END);
    if (!s->daemon) {
        close(fd);
        echo_err_set(err, "libmicrohttpd could not start (see the debug log)");
        goto fail;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : o->port;
    return s;
fail:
    monitor_free(s->mon);
    free(s->host);
    free(s->csp);
    free(s);
    return NULL;
}

unsigned http_server_port(const http_server *s)
{
    return s->port;
}

void http_server_add_stop_hook(http_server *s, http_stop_fn fn, void *arg)
{
    s->hooks = xrealloc(s->hooks, (s->nhooks + 1) * sizeof(*s->hooks));
    s->hooks[s->nhooks++] = (struct stop_hook){fn, arg};
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

void http_server_stop(http_server *s, unsigned grace_ms)
{
    if (!s || atomic_load(&s->stopped)) return;
    atomic_store(&s->stopping, true);
    /* Stop accepting: the listening socket leaves the workers' epoll sets and
     * is closed, so new clients are refused instead of queueing. */
    int lfd = MHD_quiesce_daemon(s->daemon);
    if (lfd >= 0) close(lfd);
    for (size_t i = 0; i < s->nhooks; i++)
        s->hooks[i].fn(s, s->hooks[i].arg);
    monitor_close_all(s->mon, HTTP_CLOSE_SHUTDOWN);
    uint64_t deadline = time_mono_ns() + (uint64_t)grace_ms * 1000000ull;
    while (time_mono_ns() < deadline) {
        if (monitor_watched(s->mon)) monitor_close_all(s->mon, HTTP_CLOSE_SHUTDOWN);
        if (atomic_load(&s->active) == 0 && atomic_load(&s->upgraded) == 0) break;
        sleep_ms(10);
    }
    long active = atomic_load(&s->active), upgraded = atomic_load(&s->upgraded);
    if (active || upgraded)
        log_warn("http: stopping with %ld request(s) in flight and %ld upgraded connection(s)",
                 active, upgraded);
    /* A handler that deferred just before `stopping` was seen may have
     * suspended after the first sweep; the daemon must not meet it. */
    monitor_close_all(s->mon, HTTP_CLOSE_SHUTDOWN);
    MHD_stop_daemon(s->daemon);
    s->daemon = NULL;
    atomic_store(&s->stopped, true);
}

void http_server_free(http_server *s)
{
    if (!s) return;
    http_server_stop(s, 0);
    monitor_free(s->mon);
    free(s->hooks);
    free(s->host);
    free(s->csp);
    free(s);
}
