/*
 * request.c - the accessors of http_request (http.h). The server (server.c)
 * fills the struct while reading; here are the read-side functions, the
 * lazily decoded parts (header list, cookies) and the data slots of upper
 * layers. All of it runs on the connection's worker thread.
 */
#include <string.h>
#include <strings.h>

#include "http/cookie.h"
#include "http/internal.h"
#include "http/text.h"

enum http_method http_request_method(const http_request *req)
{
    return req->method;
}

const char *http_request_method_name(const http_request *req)
{
    return req->method_name ? req->method_name : "";
}

const char *http_request_version(const http_request *req)
{
    return req->version ? req->version : "";
}

const char *http_request_path(const http_request *req)
{
    return req->path ? req->path : "";
}

const char *http_request_target(const http_request *req)
{
    return req->target ? req->target : "";
}

const char *http_request_query_string(const http_request *req)
{
    return req->query_string ? req->query_string : "";
}

static const char *find_param(const struct http_param *p, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(p[i].name, name)) return p[i].value;
    return NULL;
}

const char *http_request_query(const http_request *req, const char *name)
{
    return find_param(req->query, req->nquery, name);
}

const struct http_param *http_request_query_list(const http_request *req, size_t *count)
{
    *count = req->nquery;
    return req->query;
}

const char *http_request_header(const http_request *req, const char *name)
{
    if (!req->conn) return NULL;
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

struct header_walk {
    http_request *req;
    struct http_param *items;
    size_t n, cap;
    const char *only; /* collect only this name (NULL: all) */
};

static enum MHD_Result collect_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                      const char *value)
{
    (void)kind;
    struct header_walk *w = cls;
    if (!key || (w->only && strcasecmp(key, w->only))) return MHD_YES;
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 16;
        struct http_param *items = arena_alloc(w->req->arena, cap * sizeof(*items));
        if (w->n) memcpy(items, w->items, w->n * sizeof(*items));
        w->items = items;
        w->cap = cap;
    }
    w->items[w->n].name = key;
    w->items[w->n].value = value ? value : "";
    w->items[w->n].value_len = value ? strlen(value) : 0;
    w->n++;
    return MHD_YES;
}

const struct http_param *http_request_header_list(http_request *req, size_t *count)
{
    if (!req->headers_done && req->conn) {
        struct header_walk w = {.req = req};
        MHD_get_connection_values(req->conn, MHD_HEADER_KIND, collect_header, &w);
        req->headers = w.items;
        req->nheaders = w.n;
        req->headers_done = true;
    }
    *count = req->nheaders;
    return req->headers;
}

static void load_cookies(http_request *req)
{
    if (req->cookies_done) return;
    req->cookies_done = true;
    if (!req->conn) return;
    struct header_walk w = {.req = req, .only = "Cookie"};
    MHD_get_connection_values(req->conn, MHD_HEADER_KIND, collect_header, &w);
    for (size_t i = 0; i < w.n; i++)
        http_cookie_parse(req->arena, w.items[i].value, &req->cookies, &req->ncookies);
}

const char *http_request_cookie(http_request *req, const char *name)
{
    load_cookies(req);
    return find_param(req->cookies, req->ncookies, name);
}

const struct http_param *http_request_cookie_list(http_request *req, size_t *count)
{
    load_cookies(req);
    *count = req->ncookies;
    return req->cookies;
}

const char *http_request_form(const http_request *req, const char *name)
{
    return find_param(req->form, req->nform, name);
}

const struct http_param *http_request_form_list(const http_request *req, size_t *count)
{
    *count = req->nform;
    return req->form;
}

const struct http_file *http_request_file(const http_request *req, const char *field)
{
    for (size_t i = 0; i < req->nfiles; i++)
        if (!strcmp(req->files[i].field, field)) return &req->files[i];
    return NULL;
}

const struct http_file *http_request_file_list(const http_request *req, size_t *count)
{
    *count = req->nfiles;
    return req->files;
}

const char *http_request_body(const http_request *req, size_t *len)
{
    if (len) *len = req->body.len;
    return strbuf_cstr(&req->body);
}

const char *http_request_content_type(const http_request *req)
{
    return req->content_type;
}

const char *http_request_client_ip(const http_request *req)
{
    return req->client_ip;
}

const char *http_request_param(const http_request *req, const char *name)
{
    return find_param(req->params, req->nparams, name);
}

const char *http_request_route(const http_request *req)
{
    return req->route;
}

const char *http_request_mount_path(const http_request *req)
{
    return req->mount_path;
}

bool http_request_prefers_json(const http_request *req)
{
    return http_accept_prefers_json(http_request_header(req, "Accept"));
}

arena *http_request_arena(http_request *req)
{
    return req->arena;
}

uint64_t http_request_start_ns(const http_request *req)
{
    return req->start_ns;
}

void http_request_set_data(http_request *req, const void *key, void *value,
                           void (*free_fn)(void *value))
{
    for (struct data_slot *s = req->slots; s; s = s->next) {
        if (s->key == key) {
            if (s->free_fn && s->value && s->value != value) s->free_fn(s->value);
            s->value = value;
            s->free_fn = free_fn;
            return;
        }
    }
    struct data_slot *s = arena_alloc(req->arena, sizeof(*s));
    s->key = key;
    s->value = value;
    s->free_fn = free_fn;
    s->next = req->slots;
    req->slots = s;
}

void *http_request_get_data(const http_request *req, const void *key)
{
    for (struct data_slot *s = req->slots; s; s = s->next)
        if (s->key == key) return s->value;
    return NULL;
}

void request_set_early_error(http_request *req, int status, const char *message)
{
    if (req->early_status) return; /* the first problem found is the one reported */
    req->early_status = status;
    req->early_message = message;
}

void request_free(http_request *req)
{
    for (struct data_slot *s = req->slots; s; s = s->next)
        if (s->free_fn && s->value) s->free_fn(s->value);
    http_response_free(req->res);
    strbuf_deinit(&req->body);
    arena_free(req->arena);
    free(req);
}
