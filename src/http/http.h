/*
 * http.h - Echo's HTTP layer: a libmicrohttpd daemon (epoll, thread pool,
 * suspend/resume, upgrade) behind a small request/response API, a router,
 * static files, deferred responses for long-polling and the hand-off of
 * upgraded sockets for WebSocket.
 *
 * How a request flows: the server reads the request (limits: URL 414, header
 * block 431, body 413, slow clients cut off), decodes and normalizes the path
 * (400 on bad input), looks the path up in the router (404, or 405 with Allow),
 * decodes form bodies (400/413), runs the router's before-hooks, the handler and
 * the after-hooks, renders errors through the one error handler, adds the
 * security headers and queues the response; one access-log line follows when
 * the response is done.
 *
 * Ownership: a handler gets the request and a response to fill; both belong to
 * the server and live until the response has been sent. Everything returned by
 * http_request_* points into request-owned memory valid for the handler call.
 * Request-scoped allocations come from http_request_arena().
 *
 * Threads: handlers, hooks and the error handler run on the server's worker
 * threads, several at once, so they must be thread-safe against each other.
 * An http_request and the http_response handed to a handler may be used only
 * by that handler call (same thread). http_response_new/_free and the builder
 * functions may be used on any thread for a response that thread owns.
 * http_deferred_complete and http_upgraded_close may be called from any
 * thread. A router is built on one thread before http_server_new and is then
 * read-only.
 */
#ifndef ECHO_HTTP_H
#define ECHO_HTTP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/core.h"

typedef struct http_server http_server;
typedef struct http_router http_router;
typedef struct http_request http_request;
typedef struct http_response http_response;
typedef struct http_deferred http_deferred;
typedef struct http_upgraded http_upgraded;
typedef struct http_static http_static;

/* Error codes returned by the functions below (0 is success). Decoders return
 * the negated HTTP status the request deserves. */
enum http_error {
    HTTP_OK = 0,
    HTTP_ERR_INVALID = -1,       /* a bad argument from the caller (logged) */
    HTTP_ERR_SYSTEM = -2,        /* a system or library call failed */
    HTTP_ERR_BAD_REQUEST = -400, /* malformed input: answer 400 */
    HTTP_ERR_GONE = -410,        /* the client went away / the handle is finished */
    HTTP_ERR_TOO_LARGE = -413,   /* input over a limit: answer 413 */
    HTTP_ERR_UNSUPPORTED = -415, /* not a content type this decoder reads */
};

/* Methods, as bits so that one route can accept several. */
enum http_method {
    HTTP_GET = 1u << 0,
    HTTP_HEAD = 1u << 1,
    HTTP_POST = 1u << 2,
    HTTP_PUT = 1u << 3,
    HTTP_DELETE = 1u << 4,
    HTTP_PATCH = 1u << 5,
    HTTP_OPTIONS = 1u << 6,
    HTTP_OTHER = 1u << 7, /* any other token (only ever answered 405 by routes) */
};

enum http_status {
    HTTP_STATUS_SWITCHING_PROTOCOLS = 101,
    HTTP_STATUS_OK = 200,
    HTTP_STATUS_CREATED = 201,
    HTTP_STATUS_NO_CONTENT = 204,
    HTTP_STATUS_MOVED_PERMANENTLY = 301,
    HTTP_STATUS_FOUND = 302,
    HTTP_STATUS_SEE_OTHER = 303,
    HTTP_STATUS_NOT_MODIFIED = 304,
    HTTP_STATUS_TEMPORARY_REDIRECT = 307,
    HTTP_STATUS_PERMANENT_REDIRECT = 308,
    HTTP_STATUS_BAD_REQUEST = 400,
    HTTP_STATUS_UNAUTHORIZED = 401,
    HTTP_STATUS_FORBIDDEN = 403,
    HTTP_STATUS_NOT_FOUND = 404,
    HTTP_STATUS_METHOD_NOT_ALLOWED = 405,
    HTTP_STATUS_REQUEST_TIMEOUT = 408,
    HTTP_STATUS_CONFLICT = 409,
    HTTP_STATUS_GONE = 410,
    HTTP_STATUS_PAYLOAD_TOO_LARGE = 413,
    HTTP_STATUS_URI_TOO_LONG = 414,
    HTTP_STATUS_UNSUPPORTED_MEDIA_TYPE = 415,
    HTTP_STATUS_UNPROCESSABLE = 422,
    HTTP_STATUS_TOO_MANY_REQUESTS = 429,
    HTTP_STATUS_HEADER_FIELDS_TOO_LARGE = 431,
    HTTP_STATUS_INTERNAL_ERROR = 500,
    HTTP_STATUS_NOT_IMPLEMENTED = 501,
    HTTP_STATUS_SERVICE_UNAVAILABLE = 503,
};

/* "Not Found" (the protocol's reason phrase); "Unknown" for other codes. */
const char *http_status_reason(int status);
/* "Not found": a title for error pages (sentence case). */
const char *http_status_title(int status);
/* A sentence for a person explaining the status, e.g. for 404 "The page you
 * asked for does not exist." Never contains request data. */
const char *http_status_message(int status);
/* "GET", "POST", ... for one method bit; "OTHER" for HTTP_OTHER. */
const char *http_method_name(enum http_method m);

/* ---- decoded data ------------------------------------------------------ */

/* One name/value pair: a query argument, a form field, a cookie, a route
 * parameter. Names and values are NUL-terminated, valid UTF-8 without NUL
 * (cookies: printable ASCII). */
struct http_param {
    const char *name;
    const char *value;
    size_t value_len;
};

/* One uploaded file of a multipart/form-data body. */
struct http_file {
    const char *field;        /* the form field's name */
    const char *filename;     /* as sent without any folder part; may be "" (no file chosen) */
    const char *content_type; /* the part's Content-Type; "application/octet-stream" if absent */
    const unsigned char *data;
    size_t size;
};

/* ---- the request ------------------------------------------------------- */

/* The method as a bit, and its name as sent ("GET"). */
enum http_method http_request_method(const http_request *req);
const char *http_request_method_name(const http_request *req);
/* "HTTP/1.1" or "HTTP/1.0". */
const char *http_request_version(const http_request *req);
/* The percent-decoded, normalized path: starts with "/", no "." or ".."
 * segments, no empty segments ("//" collapsed), valid UTF-8 without control
 * characters. A trailing "/" is kept. "" only while rendering a 400 for a path
 * that could not be decoded. */
const char *http_request_path(const http_request *req);
/* The request target exactly as sent (path and query), for logging or
 * signatures. */
const char *http_request_target(const http_request *req);
/* The raw query string without "?" ("" if none). */
const char *http_request_query_string(const http_request *req);
/* Decoded query arguments ("+" is a space), in order, duplicates kept. The
 * first value of `name`, or NULL. */
const char *http_request_query(const http_request *req, const char *name);
const struct http_param *http_request_query_list(const http_request *req, size_t *count);

/* A request header (name matched case-insensitively); the first one if it was
 * sent several times; NULL if absent. */
const char *http_request_header(const http_request *req, const char *name);
/* Every header in order. The array is allocated from the request's arena. */
const struct http_param *http_request_header_list(http_request *req, size_t *count);

/* Cookies from the Cookie header(s). Malformed pairs are skipped, not errors
 * (other sites on the same host may set odd cookies). First match or NULL. */
const char *http_request_cookie(http_request *req, const char *name);
const struct http_param *http_request_cookie_list(http_request *req, size_t *count);

/* Form fields of an application/x-www-form-urlencoded or multipart/form-data
 * body (decoded before the handler runs; malformed bodies never reach it).
 * Duplicates are kept in order; http_request_form returns the first. */
const char *http_request_form(const http_request *req, const char *name);
const struct http_param *http_request_form_list(const http_request *req, size_t *count);
/* Uploaded files; the first file of the field, or NULL. */
const struct http_file *http_request_file(const http_request *req, const char *field);
const struct http_file *http_request_file_list(const http_request *req, size_t *count);

/* The raw body (any content type), NUL-terminated for convenience (*len
 * excludes the NUL). An empty body gives "" and 0. */
const char *http_request_body(const http_request *req, size_t *len);
/* Content-Type of the body, or NULL. */
const char *http_request_content_type(const http_request *req);

/* The client's IP address as text. With trusted_proxy on, the right-most
 * X-Forwarded-For entry that is not a loopback address (the hop our own proxy
 * saw); otherwise, or when that header is absent or malformed, the peer. */
const char *http_request_client_ip(const http_request *req);

/* A `<name>` parameter of the matched route, or NULL. */
const char *http_request_param(const http_request *req, const char *name);
/* The pattern of the matched route ("/media/avatars/<name>") or mount prefix
 * ("/static/"), or NULL when nothing matched: a stable key per endpoint (rate
 * limits, metrics). */
const char *http_request_route(const http_request *req);
/* For a prefix mount: the part of the path after the prefix ("css/echo.css"). */
const char *http_request_mount_path(const http_request *req);

/* True when the Accept header ranks application/json above text/html. */
bool http_request_prefers_json(const http_request *req);

/* Memory freed when the request is done (no free needed, not thread-safe). */
arena *http_request_arena(http_request *req);
/* Monotonic start time of the request (ns, see time_mono_ns). */
uint64_t http_request_start_ns(const http_request *req);

/*
 * Slots for upper layers (session, user, flash...). `key` is the address of
 * a static object of the caller's module, so different modules never clash.
 * Setting a key again frees the old value with its free function. Every
 * value's free function runs when the request is done.
 */
void http_request_set_data(http_request *req, const void *key, void *value,
                           void (*free_fn)(void *value));
void *http_request_get_data(const http_request *req, const void *key);

/* ---- the response ------------------------------------------------------ */

/*
 * A response starts as "200, empty body". The last body call wins. Header
 * names must be tokens and values must not contain CR, LF or NUL;
 * Content-Length, Transfer-Encoding, Connection and Date are managed by the
 * server and refused here. Functions returning int give 0 or HTTP_ERR_INVALID
 * (the response is left unchanged).
 */
http_response *http_response_new(void);
void http_response_free(http_response *res);

/* 100..599; anything else is logged and becomes 500. */
void http_response_set_status(http_response *res, int status);
int http_response_status(const http_response *res);
/* Adds a header (several of the same name are allowed). */
int http_response_add_header(http_response *res, const char *name, const char *value);
/* Replaces every header of that name. */
int http_response_set_header(http_response *res, const char *name, const char *value);
/* The first value of a header set so far, or NULL. */
const char *http_response_header(const http_response *res, const char *name);
void http_response_remove_header(http_response *res, const char *name);

enum http_same_site {
    HTTP_SAME_SITE_UNSET = 0, /* attribute left out */
    HTTP_SAME_SITE_LAX,
    HTTP_SAME_SITE_STRICT,
    HTTP_SAME_SITE_NONE, /* needs secure */
};

struct http_cookie {
    const char *name;   /* a token */
    const char *value;  /* cookie-octets: printable ASCII without space " , ; \ */
    const char *path;   /* NULL: attribute left out */
    const char *domain; /* NULL: host-only cookie */
    int64_t max_age;    /* seconds; 0: attribute left out (session cookie) */
    int64_t expires;    /* unix seconds; 0: attribute left out */
    bool http_only;
    bool secure;
    enum http_same_site same_site;
};

/* Adds a Set-Cookie header. HTTP_ERR_INVALID (and nothing added) for a bad
 * name/value/path/domain or SameSite=None without secure. */
int http_response_set_cookie(http_response *res, const struct http_cookie *cookie);
/* Adds a Set-Cookie that removes the cookie (empty value, Max-Age=0, Expires
 * in 1970) for the given path (NULL: no Path attribute). */
int http_response_delete_cookie(http_response *res, const char *name, const char *path);
/* Formats a Set-Cookie value (what http_response_set_cookie sends). */
int http_cookie_format(const struct http_cookie *cookie, struct strbuf *out, struct echo_err *err);

/* Body from bytes (copied). content_type NULL means application/octet-stream. */
void http_response_body(http_response *res, const char *content_type, const void *data, size_t len);
/* Body from a malloc'd buffer the response takes over (freed with free()). */
void http_response_body_take(http_response *res, const char *content_type, char *data, size_t len);
/* text/html; charset=utf-8 (copied). */
void http_response_html(http_response *res, const char *html, size_t len);
/* text/html; charset=utf-8 from a strbuf whose buffer the response takes
 * (the strbuf is left empty), e.g. the output of tmpl_render. */
void http_response_html_strbuf(http_response *res, struct strbuf *sb);
/* text/plain; charset=utf-8 (copied). */
void http_response_text(http_response *res, const char *text);
/* application/json, compact, from a jansson value (not stolen). */
int http_response_json(http_response *res, const json_t *value);
/* A redirect: 301, 302, 303, 307 or 308 (anything else becomes 303) with a
 * Location header and an empty body. Use 303 after a POST. */
int http_response_redirect(http_response *res, int status, const char *location);
/*
 * A body read from a file descriptor the response takes over (closed when the
 * response is freed, also on error). Sent with sendfile (zero copy).
 */
int http_response_file(http_response *res, int fd, uint64_t offset, uint64_t size,
                       const char *content_type);

/*
 * A streamed body. fn is called on a worker thread to fill up to `max` bytes
 * of `buf` for position `pos`; it returns the number written (> 0),
 * HTTP_STREAM_END at the end, or HTTP_STREAM_ERROR to abort the connection.
 * It may block (it holds one worker thread while it does). size is the total
 * length or -1 when unknown (sent chunked). free_fn(arg) runs once when the
 * response is done, whatever happened.
 */
#define HTTP_STREAM_END ((ssize_t)-1)
#define HTTP_STREAM_ERROR ((ssize_t)-2)
typedef ssize_t (*http_stream_fn)(void *arg, uint64_t pos, char *buf, size_t max);
void http_response_stream(http_response *res, const char *content_type, int64_t size,
                          http_stream_fn fn, void *arg, void (*free_fn)(void *arg));

/*
 * Marks the response as an error: the server discards any body, keeps the
 * headers (e.g. Allow, Retry-After) and calls the router's error handler
 * with this status (400..599; anything else becomes 500) and message (NULL:
 * http_status_message(status)). The message is shown to the person: never
 * put internal details in it.
 */
void http_response_error(http_response *res, int status, const char *message);

/* ---- deferred responses (long-polling) --------------------------------- */

enum http_close_reason {
    HTTP_CLOSE_CLIENT_GONE = 1, /* the client closed or reset the connection */
    HTTP_CLOSE_SHUTDOWN = 2,    /* the server is stopping */
};

/* Told that a deferred request can no longer be answered. Runs on a server
 * thread (the hang-up watcher, the one running http_server_stop, or the
 * worker right after the handler returned if the server is already
 * stopping; never inside the handler call), with no http lock held. */
typedef void (*http_deferred_close_fn)(http_deferred *d, enum http_close_reason why, void *arg);

/*
 * Called inside a handler: the request will be answered later, from any
 * thread, with http_deferred_complete; the handler's own response is
 * discarded and the connection is suspended (it holds no worker thread).
 *
 * The contract (so that nobody uses freed memory):
 *  - The owner must call http_deferred_complete(d, ...) exactly once, in every
 *    case, also after on_close (it then returns HTTP_ERR_GONE), also from
 *    inside on_close. Until that call, d stays valid.
 *  - on_close(d, why, arg) is called at most once, only if the client went away
 *    (or the server stops) before http_deferred_complete was called. When
 *    http_deferred_complete returns 0, on_close has not been called and never
 *    will be; when it returns HTTP_ERR_GONE, on_close has run, is running or is
 *    about to run on another thread, so `arg` must stay valid until on_close
 *    has returned.
 *  - A client going away is noticed while the request waits (the socket is
 *    watched for hang-up: a close, a reset, or a half-close (FIN) of the
 *    client's side), not only when the answer is written. The daemon's idle
 *    timeout does not apply while a request waits: the owner decides how
 *    long (Engine.IO's ping interval, for example).
 *  - At http_server_stop, requests still waiting get on_close with
 *    HTTP_CLOSE_SHUTDOWN and their connections are closed.
 * Returns NULL (and changes nothing) when called twice for one request or
 * after http_response_upgrade.
 */
http_deferred *http_defer(http_request *req, http_deferred_close_fn on_close, void *arg);

/*
 * Answers a deferred request with `res` (taken over, whatever the outcome) and
 * lets go of d. res NULL closes the connection without an answer. Returns 0,
 * or HTTP_ERR_GONE if the client had already gone (res is freed). Any thread.
 */
int http_deferred_complete(http_deferred *d, http_response *res);

/* ---- upgrade (WebSocket) ---------------------------------------------- */

/*
 * Called on a worker thread once the 101 response has been sent: `fd` is the
 * client's socket (non-blocking; do not close it), `extra` the bytes the
 * client sent after the request (already read by the server; part of the new
 * protocol), valid only during the call. From here on the receiver owns the
 * connection until it calls http_upgraded_close(u), which closes the socket.
 */
typedef void (*http_upgrade_fn)(http_upgraded *u, int fd, const void *extra, size_t extra_len,
                                void *arg);

/*
 * Called inside a handler: answers "101 Switching Protocols" with the headers
 * set on res (the handler adds Upgrade, Sec-WebSocket-Accept...; the server
 * adds "Connection: Upgrade"; no security headers) and hands the socket to
 * fn(..., arg). Returns HTTP_ERR_INVALID only for a NULL fn. If the client
 * did not speak HTTP/1.1 the server answers 400 instead, and if the hand-off
 * fails (client gone) fn is not called; in both cases nothing needs closing.
 * The request's memory (http_request_*) is freed once fn returns, so copy
 * what the new protocol needs (cookies, query) before.
 */
int http_response_upgrade(http_response *res, http_upgrade_fn fn, void *arg);

/* Closes an upgraded connection and frees u. Any thread, once per u. Every
 * upgraded connection must be closed before http_server_stop returns (use a
 * stop hook). */
void http_upgraded_close(http_upgraded *u);

/* ---- router ------------------------------------------------------------ */

typedef void (*http_handler_fn)(http_request *req, http_response *res, void *arg);

/* A before-hook returns true to go on, or false when it has answered (e.g.
 * 403, 429, a redirect to /login); the handler is then skipped. */
typedef bool (*http_before_fn)(http_request *req, http_response *res, void *arg);
typedef void (*http_after_fn)(http_request *req, http_response *res, void *arg);

/* Renders an error into res (status already set): an HTML page, or JSON when
 * http_request_prefers_json(req). message is for a person. If it leaves the
 * body empty, a built-in page is used. */
typedef void (*http_error_fn)(http_request *req, http_response *res, int status,
                              const char *message, void *arg);

http_router *http_router_new(void);
void http_router_free(http_router *r);

/*
 * Adds a route. methods is a set of enum http_method bits; a route with GET
 * also answers HEAD (same headers, no body) unless HEAD has its own route.
 * pattern: "/", "/login", "/media/avatars/<name>": segments are literal or a
 * whole-segment <param> (letters, digits, "_"), which matches one non-empty
 * segment. Literal segments win over params. The same pattern and method
 * twice, or a malformed pattern, is an error (HTTP_ERR_INVALID, err says why).
 */
int http_router_add(http_router *r, unsigned methods, const char *pattern, http_handler_fn fn,
                    void *arg, struct echo_err *err);
/* Every path starting with prefix (which must start and end with "/") goes to
 * fn, any method; the rest of the path is http_request_mount_path. Routes are
 * tried first; among mounts the longest prefix wins. Hooks do not run for
 * mounts, and their bodies are not decoded as forms. */
int http_router_mount(http_router *r, const char *prefix, http_handler_fn fn, void *arg,
                      struct echo_err *err);
/* Mounts a static folder (the router does not take st; free it after the
 * server). */
int http_router_mount_static(http_router *r, const char *prefix, http_static *st,
                             struct echo_err *err);
/* Hooks run for routes (not mounts, not 404/405): before-hooks in the order
 * added, then the handler, then after-hooks in reverse order; only the
 * after-hooks whose before-hook ran (and returned true) run. After-hooks do not
 * run for deferred or upgraded requests. */
void http_router_add_hook(http_router *r, http_before_fn before, http_after_fn after, void *arg);
void http_router_set_error_handler(http_router *r, http_error_fn fn, void *arg);

/* ---- static files ------------------------------------------------------ */

struct http_static_options {
    unsigned max_age;              /* Cache-Control max-age, seconds (default 3600) */
    const char *long_cache_prefix; /* e.g. "vendor/": files below get long_max_age */
    unsigned long_max_age;         /* default 86400 */
};

/*
 * Serves files below dir: GET and HEAD only (405 otherwise), Content-Type by
 * extension, ETag ("size-mtime" in hex) and Last-Modified with 304 answers to
 * If-None-Match / If-Modified-Since, Cache-Control public with max-age, files
 * sent zero-copy. Refused with 404: "..", ".", hidden names (".x"), empty
 * segments, backslashes, control characters, anything not a regular file, and
 * any symlink that leads out of dir (the folder is opened once; each file is
 * opened beneath it with openat2(RESOLVE_BENEATH), or component by component
 * with O_NOFOLLOW where openat2 is missing). o may be NULL. dir must exist.
 */
http_static *http_static_new(const char *dir, const struct http_static_options *o,
                             struct echo_err *err);
void http_static_free(http_static *st);
/* Answers req with the file at relpath (relative to the folder) into res;
 * usable from any handler (e.g. /media/avatars/<name>). */
void http_static_serve(http_static *st, http_request *req, http_response *res, const char *relpath);
/* The Content-Type for a file name, by extension (application/octet-stream if
 * unknown). */
const char *http_mime_type(const char *name);

/* ---- server ------------------------------------------------------------ */

struct http_server_options {
    const char *host;            /* IPv4 or IPv6 literal or a name; "0.0.0.0" / "::" for all */
    unsigned port;               /* 0 picks a free port (see http_server_port) */
    unsigned threads;            /* worker threads (>= 1) */
    size_t max_body_bytes;       /* 413 beyond */
    size_t max_url_bytes;        /* 414 beyond (default 8192) */
    size_t max_header_bytes;     /* 431 beyond, all header lines together (default 16384) */
    size_t max_form_parts;       /* 413 beyond (default 256) */
    size_t max_form_field_bytes; /* 413 beyond for one non-file field (default 1 MiB) */
    unsigned idle_timeout_s;     /* a connection silent this long is closed */
    unsigned request_max_s;      /* a request must arrive whole within this (0: no limit) */
    bool trusted_proxy;          /* believe X-Forwarded-For (see http_request_client_ip) */
    bool access_log;             /* one log_info line per request */
    const char *csp;             /* Content-Security-Policy; NULL: the default below */
};

/*
 * Limits, and who answers them: a URL over max_url_bytes (414) or a header
 * block over max_header_bytes (431) gets the site's error page; the
 * connection stays open. A request line or header block that does not even
 * fit libmicrohttpd's 64 KiB connection buffer is answered by libmicrohttpd
 * itself (414/431 with its own short page, no security headers) and the
 * connection is closed: our limits sit far below that, so only abusive
 * clients see it. A body over max_body_bytes gets 413: answered at once when
 * Content-Length says so and it exceeds twice the limit or the client waits
 * for "100 Continue"; otherwise it is read and discarded first, so the client
 * can read the answer, and a body still going at twice the limit is cut off
 * by closing the connection.
 */

/* Fills defaults: 127.0.0.1:5000, 4 threads, 6 MiB bodies, 30 s idle, 60 s
 * per request, access log on. The default CSP is
 * "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src
 * 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'self';
 * form-action 'self'". */
void http_server_options_init(struct http_server_options *o);
/* Reads ECHO_HOST, ECHO_PORT, ECHO_THREADS, ECHO_MAX_BODY_BYTES,
 * ECHO_REQUEST_TIMEOUT, ECHO_REQUEST_MAX_SECONDS, ECHO_TRUSTED_PROXY,
 * ECHO_ACCESS_LOG, and ECHO_SITE_ORIGIN (adds its ws:// or wss:// origin to
 * connect-src for browsers whose 'self' does not cover WebSocket). The strings
 * point into cfg and into `csp_buf` (which must outlive o). */
void http_server_options_from_config(struct http_server_options *o, const config *cfg,
                                     struct strbuf *csp_buf);

/* Binds, starts the worker threads and serves `router` (not taken; it must
 * outlive the server). NULL with err set on failure (e.g. the port is taken). */
http_server *http_server_new(const struct http_server_options *o, http_router *router,
                             struct echo_err *err);
/* The port actually bound. */
unsigned http_server_port(const http_server *s);

/* A function run by http_server_stop after the server stopped accepting and
 * before it waits for requests to finish: close upgraded connections and
 * complete deferred requests there. Add before stopping. */
typedef void (*http_stop_fn)(http_server *s, void *arg);
void http_server_add_stop_hook(http_server *s, http_stop_fn fn, void *arg);

/*
 * Graceful stop: stops accepting connections, runs the stop hooks, closes
 * deferred requests still waiting (their on_close gets HTTP_CLOSE_SHUTDOWN),
 * waits up to grace_ms for requests in flight to finish (their responses carry
 * "Connection: close"), then closes every connection and joins the threads.
 * Call once, from one thread; not from a handler.
 */
void http_server_stop(http_server *s, unsigned grace_ms);
/* Frees a server (stopping it first, with no grace, if needed). */
void http_server_free(http_server *s);

/*
 * Test-only routes under /_test/ (mounted by `echobot serve --test-routes`,
 * refused in production), so the end-to-end tests can drive the hard paths
 * through the real binary: slow?ms=N answers after N ms; defer?ms=N answers
 * from another thread after N ms (deferred) and stats counts those
 * completions, refusals and on_close calls; echo and param/<name> return the
 * decoded request (query, form, files with a checksum, cookies, client IP)
 * as JSON; error?code=N answers through the error handler; stream?n=N sends
 * N chunks; set-cookie sets a cookie and redirects (303); upgrade (with
 * "Upgrade: echo") echoes bytes over the upgraded socket.
 */
int http_add_test_routes(http_router *r, struct echo_err *err);

#endif
