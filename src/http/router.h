/*
 * router.h - route matching, separate from dispatch so that the unit tests
 * can check it without a server. Matching only reads the router, so it is
 * safe from any number of threads once the router is built.
 */
#ifndef ECHO_HTTP_ROUTER_H
#define ECHO_HTTP_ROUTER_H

#include "http/http.h"

enum router_result {
    ROUTER_NOT_FOUND = 0, /* 404 */
    ROUTER_ROUTE,         /* a route answers this method */
    ROUTER_MOUNT,         /* a prefix mount answers (any method) */
    ROUTER_NOT_ALLOWED,   /* the path exists, not for this method: 405 */
    ROUTER_OPTIONS,       /* OPTIONS on an existing path without its own route */
};

struct router_match {
    http_handler_fn fn;
    void *arg;
    const char *route;         /* the pattern or mount prefix */
    struct http_param *params; /* route parameters (arena) */
    size_t nparams;
    const char *mount_path; /* ROUTER_MOUNT: the path after the prefix */
    unsigned allowed;       /* methods the path accepts (HEAD added for GET) */
};

/* Matches a normalized path (see http_path_normalize). Allocates parameter
 * values from a. */
enum router_result router_match(const http_router *r, enum http_method method, const char *path,
                                arena *a, struct router_match *m);

/* "GET, HEAD, POST" for a set of methods (OPTIONS included when asked). */
void router_allow_header(unsigned methods, struct strbuf *out);

#endif
