/*
 * internal.h - the structures the http layer's files share (request,
 * response, deferred handle, server, monitor). Nothing outside src/http/ and
 * its unit tests includes this.
 *
 * Threads: a request and its response belong to the worker thread running
 * the connection; a deferred handle is shared and guarded by its own mutex;
 * the monitor owns its lock (see monitor.c for the lock order).
 */
#ifndef ECHO_HTTP_INTERNAL_H
#define ECHO_HTTP_INTERNAL_H

#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>

#include "http/http.h"

/* ---- response ---- */

enum body_kind { BODY_NONE, BODY_MEM, BODY_FILE, BODY_STREAM };

struct resp_header {
    char *name; /* one allocation: name, NUL, value, NUL */
    char *value;
};

struct http_response {
    int status;
    enum body_kind kind;
    char *content_type; /* malloc'd, or NULL */
    char *body;         /* BODY_MEM: malloc'd */
    size_t body_len;
    int fd; /* BODY_FILE: owned */
    uint64_t file_offset, file_size;
    http_stream_fn stream_fn; /* BODY_STREAM */
    void *stream_arg;
    void (*stream_free)(void *);
    int64_t stream_size;
    struct resp_header *headers;
    size_t nheaders, cap_headers;
    int error_status; /* != 0: render through the error handler */
    char *error_message;
    http_upgrade_fn upgrade_fn; /* set by http_response_upgrade */
    void *upgrade_arg;
};

/* Drops the body (closing a file, freeing a stream's argument). */
void response_clear_body(http_response *res);
/* True if a header of that name (case-insensitive) is set. */
bool response_has_header(const http_response *res, const char *name);

/* ---- request ---- */

struct data_slot {
    struct data_slot *next;
    const void *key;
    void *value;
    void (*free_fn)(void *);
};

enum req_phase {
    PHASE_HEADERS, /* created, headers not yet seen by the handler */
    PHASE_BODY,    /* receiving the body */
    PHASE_DONE,    /* dispatched */
};

struct http_conn; /* monitor.c */

struct http_request {
    struct http_server *srv;
    struct MHD_Connection *conn;
    struct http_conn *hc;
    arena *arena;
    uint64_t start_ns;
    enum req_phase phase;

    enum http_method method;
    const char *method_name;
    const char *version;
    char *target;     /* raw, as sent */
    const char *path; /* normalized ("" until decoded) */
    const char *query_string;
    struct http_param *query;
    size_t nquery;
    struct http_param *headers; /* lazily collected */
    size_t nheaders;
    bool headers_done;
    struct http_param *cookies;
    size_t ncookies;
    bool cookies_done;
    struct http_param *form;
    size_t nform;
    struct http_file *files;
    size_t nfiles;
    struct http_param *params; /* route parameters */
    size_t nparams;
    const char *route;
    const char *mount_path;

    const char *content_type;
    uint64_t content_length; /* UINT64_MAX: unknown (chunked) */
    struct strbuf body;
    uint64_t received; /* body bytes seen, kept or drained */
    bool expect_continue;

    int early_status; /* an error found before dispatch (413, 414, 431, 400) */
    const char *early_message;

    char client_ip[48];
    struct data_slot *slots;

    http_response *res; /* what the handler fills */
    struct http_deferred *deferred;
    bool upgraded;
    int status_sent; /* 0 until a response was queued */
    uint64_t bytes_sent;
};

/* Records an error to answer once the request is read (or at once). */
void request_set_early_error(http_request *req, int status, const char *message);
/* Frees everything the request owns (slots, response, body, arena). */
void request_free(http_request *req);

/* ---- deferred ---- */

enum deferred_state {
    DEF_ARMED,     /* the handler is still running */
    DEF_SUSPENDED, /* the connection is suspended and watched */
    DEF_COMPLETED, /* an answer is waiting to be queued */
    DEF_ABANDONED, /* the owner completed with NULL: close */
    DEF_GONE,      /* the client went away / shutdown: close */
    DEF_FINISHED,  /* the request is over */
};

struct http_deferred {
    pthread_mutex_t mu;
    enum deferred_state state;
    atomic_int refs; /* the owner's + the request's (+ a monitor's while it handles an event) */
    struct http_server *srv;
    struct MHD_Connection *conn;
    int fd;
    uint64_t watch_id; /* monitor slot, 0 when not watched */
    http_deferred_close_fn on_close;
    void *arg;
    http_response *res; /* the answer, between complete and the resumed queueing */
};

void deferred_unref(struct http_deferred *d);
/* The client went away or the server stops: on_close, then resume to close. */
void deferred_close(struct http_deferred *d, enum http_close_reason why);

/* ---- monitor: deadlines and hang-up watching (monitor.c) ---- */

struct http_conn {
    struct http_conn *prev, *next;
    int fd;
    _Atomic uint64_t deadline_ns; /* 0: none */
    bool cut;                     /* shut down by the monitor */
};

struct http_monitor;
struct http_monitor *monitor_new(struct echo_err *err);
void monitor_free(struct http_monitor *m);
void monitor_conn_add(struct http_monitor *m, struct http_conn *c);
void monitor_conn_remove(struct http_monitor *m, struct http_conn *c);
/* Watches d->fd for hang-up; call with d->mu held. */
int monitor_watch(struct http_monitor *m, struct http_deferred *d);
/* Stops watching; call with d->mu held. */
void monitor_unwatch(struct http_monitor *m, struct http_deferred *d);
/* Calls deferred_close(d, why) for every watched handle. */
void monitor_close_all(struct http_monitor *m, enum http_close_reason why);
/* Number of watched (suspended, waiting) deferred requests. */
size_t monitor_watched(struct http_monitor *m);

/* ---- server ---- */

struct stop_hook {
    http_stop_fn fn;
    void *arg;
};

struct http_server {
    struct MHD_Daemon *daemon;
    http_router *router;
    struct http_server_options opt;
    char *host;
    char *csp;
    unsigned port;
    struct http_monitor *mon;
    atomic_bool stopping;
    atomic_bool stopped;
    atomic_long active;   /* requests between their first byte and their end */
    atomic_long upgraded; /* upgraded connections not yet closed */
    struct stop_hook *hooks;
    size_t nhooks;
    int quiesced_fd;
};

/* The dispatch step of server.c (router.c): fills req->res. */
void router_dispatch(http_router *r, http_request *req);
/* Calls the error handler (or the built-in page) for res->error_status. */
void router_render_error(http_router *r, http_request *req, http_response *res);

#endif
