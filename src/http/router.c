/*
 * router.c - routes, mounts, hooks and the error handler, and the dispatch
 * of one request: match, decode the form body, hooks, handler, errors.
 *
 * Routes are few (tens), so matching is a scan: the request path is split
 * once, and every route with the same shape is compared segment by segment.
 * The most specific match (most literal segments) wins, so "/users/new"
 * beats "/users/<id>" whatever the order they were added in.
 */
#include <ctype.h>
#include <string.h>

#include "http/form.h"
#include "http/internal.h"
#include "http/router.h"
#include "http/text.h"

struct seg {
    char *text; /* literal text, or the parameter's name */
    size_t len;
    bool param;
};

struct route {
    char *pattern;
    struct seg *segs;
    size_t nsegs;
    bool trailing; /* the pattern ends with "/" (and is not "/") */
    unsigned literals;
    unsigned methods;
    http_handler_fn fn;
    void *arg;
};

struct mount {
    char *prefix;
    size_t len;
    http_handler_fn fn;
    void *arg;
};

struct hook {
    http_before_fn before;
    http_after_fn after;
    void *arg;
};

struct http_router {
    struct route *routes;
    size_t nroutes;
    struct mount *mounts;
    size_t nmounts;
    struct hook *hooks;
    size_t nhooks;
    http_error_fn error_fn;
    void *error_arg;
};

http_router *http_router_new(void)
{
    return xcalloc(1, sizeof(http_router));
}

void http_router_free(http_router *r)
{
    if (!r) return;
    for (size_t i = 0; i < r->nroutes; i++) {
        for (size_t k = 0; k < r->routes[i].nsegs; k++)
            free(r->routes[i].segs[k].text);
        free(r->routes[i].segs);
        free(r->routes[i].pattern);
    }
    free(r->routes);
    for (size_t i = 0; i < r->nmounts; i++)
        free(r->mounts[i].prefix);
    free(r->mounts);
    free(r->hooks);
    free(r);
}

static bool valid_param_name(const char *s, size_t n)
{
    if (n == 0) return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '_') return false;
    return true;
}

/* Splits a pattern into segments; checks the syntax. */
static int parse_pattern(const char *pattern, struct route *rt, struct echo_err *err)
{
    if (!pattern || pattern[0] != '/') {
        echo_err_set(err, "route '%s' must start with /", pattern ? pattern : "(null)");
        return HTTP_ERR_INVALID;
    }
    const char *p = pattern + 1;
    while (*p) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (len == 0) {
            echo_err_set(err, "route '%s' has an empty segment", pattern);
            return HTTP_ERR_INVALID;
        }
        struct seg s = {0};
        if (p[0] == '<') {
            if (p[len - 1] != '>' || !valid_param_name(p + 1, len - 2)) {
                echo_err_set(err,
                             "route '%s': a parameter must be a whole segment <name> of "
                             "letters, digits and _",
                             pattern);
                return HTTP_ERR_INVALID;
            }
            s.param = true;
            s.text = xstrndup(p + 1, len - 2);
            s.len = len - 2;
            for (size_t k = 0; k < rt->nsegs; k++) {
                if (rt->segs[k].param && !strcmp(rt->segs[k].text, s.text)) {
                    echo_err_set(err, "route '%s' uses <%s> twice", pattern, s.text);
                    free(s.text);
                    return HTTP_ERR_INVALID;
                }
            }
        } else {
            if (memchr(p, '<', len) || memchr(p, '>', len)) {
                echo_err_set(err, "route '%s': a parameter must be a whole segment", pattern);
                return HTTP_ERR_INVALID;
            }
            s.text = xstrndup(p, len);
            s.len = len;
            rt->literals++;
        }
        rt->segs = xrealloc(rt->segs, (rt->nsegs + 1) * sizeof(*rt->segs));
        rt->segs[rt->nsegs++] = s;
        if (!slash) break;
        p = slash + 1;
        if (!*p) rt->trailing = true;
    }
    return 0;
}

static void free_route_parts(struct route *rt)
{
    for (size_t k = 0; k < rt->nsegs; k++)
        free(rt->segs[k].text);
    free(rt->segs);
}

int http_router_add(http_router *r, unsigned methods, const char *pattern, http_handler_fn fn,
                    void *arg, struct echo_err *err)
{
    struct route rt = {0};
    if (!fn || !methods || (methods & ~0xffu)) {
        echo_err_set(err, "route '%s': no handler or no methods", pattern ? pattern : "(null)");
        return HTTP_ERR_INVALID;
    }
    if (parse_pattern(pattern, &rt, err) != 0) {
        free_route_parts(&rt);
        return HTTP_ERR_INVALID;
    }
    for (size_t i = 0; i < r->nroutes; i++) {
        if (!strcmp(r->routes[i].pattern, pattern) && (r->routes[i].methods & methods)) {
            echo_err_set(err, "route '%s' is added twice for the same method", pattern);
            free_route_parts(&rt);
            return HTTP_ERR_INVALID;
        }
    }
    rt.pattern = xstrdup(pattern);
    rt.methods = methods;
    rt.fn = fn;
    rt.arg = arg;
    r->routes = xrealloc(r->routes, (r->nroutes + 1) * sizeof(*r->routes));
    r->routes[r->nroutes++] = rt;
    return 0;
}

int http_router_mount(http_router *r, const char *prefix, http_handler_fn fn, void *arg,
                      struct echo_err *err)
{
    size_t len = prefix ? strlen(prefix) : 0;
    if (!fn || len < 1 || prefix[0] != '/' || prefix[len - 1] != '/') {
        echo_err_set(err, "mount '%s' must start and end with /", prefix ? prefix : "(null)");
        return HTTP_ERR_INVALID;
    }
    for (size_t i = 0; i < r->nmounts; i++) {
        if (!strcmp(r->mounts[i].prefix, prefix)) {
            echo_err_set(err, "mount '%s' is added twice", prefix);
            return HTTP_ERR_INVALID;
        }
    }
    r->mounts = xrealloc(r->mounts, (r->nmounts + 1) * sizeof(*r->mounts));
    r->mounts[r->nmounts++] = (struct mount){xstrdup(prefix), len, fn, arg};
    return 0;
}

static void static_handler(http_request *req, http_response *res, void *arg)
{
    http_static_serve(arg, req, res, http_request_mount_path(req));
}

int http_router_mount_static(http_router *r, const char *prefix, http_static *st,
                             struct echo_err *err)
{
    if (!st) {
        echo_err_set(err, "mount '%s' without a static folder", prefix ? prefix : "(null)");
        return HTTP_ERR_INVALID;
    }
    return http_router_mount(r, prefix, static_handler, st, err);
}

void http_router_add_hook(http_router *r, http_before_fn before, http_after_fn after, void *arg)
{
    r->hooks = xrealloc(r->hooks, (r->nhooks + 1) * sizeof(*r->hooks));
    r->hooks[r->nhooks++] = (struct hook){before, after, arg};
}

void http_router_set_error_handler(http_router *r, http_error_fn fn, void *arg)
{
    r->error_fn = fn;
    r->error_arg = arg;
}

/* ---- matching ---- */

struct path_seg {
    const char *p;
    size_t len;
};

static bool route_matches(const struct route *rt, const struct path_seg *ps, size_t n,
                          bool trailing)
{
    if (rt->nsegs != n || rt->trailing != trailing) return false;
    for (size_t i = 0; i < n; i++) {
        if (rt->segs[i].param) continue; /* path segments are never empty */
        if (rt->segs[i].len != ps[i].len || memcmp(rt->segs[i].text, ps[i].p, ps[i].len))
            return false;
    }
    return true;
}

static unsigned with_head(unsigned methods)
{
    return (methods & HTTP_GET) ? (methods | HTTP_HEAD) : methods;
}

enum router_result router_match(const http_router *r, enum http_method method, const char *path,
                                arena *a, struct router_match *m)
{
    memset(m, 0, sizeof(*m));
    /* Split "/a/b/" into a, b (+ trailing). The path is normalized: it starts
     * with "/" and has no empty segments. */
    size_t n = 0;
    for (const char *p = path; *p; p++)
        if (*p == '/') n++;
    struct path_seg *ps = arena_alloc(a, (n + 1) * sizeof(*ps));
    size_t nseg = 0;
    bool trailing = false;
    const char *p = path[0] == '/' ? path + 1 : path;
    while (*p) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (len > 0) ps[nseg++] = (struct path_seg){p, len};
        if (!slash) break;
        p = slash + 1;
        if (!*p) trailing = true;
    }

    const struct route *best = NULL;
    unsigned allowed = 0;
    for (size_t i = 0; i < r->nroutes; i++) {
        const struct route *rt = &r->routes[i];
        if (!route_matches(rt, ps, nseg, trailing)) continue;
        allowed |= rt->methods;
        bool ok = (rt->methods & method) != 0;
        if (!ok && method == HTTP_HEAD) ok = (rt->methods & HTTP_GET) != 0;
        if (ok && (!best || rt->literals > best->literals ||
                   /* an explicit HEAD route beats GET serving HEAD */
                   (rt->literals == best->literals && method == HTTP_HEAD &&
                    (rt->methods & HTTP_HEAD) && !(best->methods & HTTP_HEAD))))
            best = rt;
    }
    if (best) {
        m->fn = best->fn;
        m->arg = best->arg;
        m->route = best->pattern;
        m->allowed = with_head(allowed);
        size_t np = 0;
        for (size_t k = 0; k < best->nsegs; k++)
            np += best->segs[k].param;
        if (np) {
            m->params = arena_alloc(a, np * sizeof(*m->params));
            for (size_t k = 0; k < best->nsegs; k++) {
                if (!best->segs[k].param) continue;
                struct http_param *pp = &m->params[m->nparams++];
                pp->name = best->segs[k].text;
                pp->value = arena_strndup(a, ps[k].p, ps[k].len);
                pp->value_len = ps[k].len;
            }
        }
        return ROUTER_ROUTE;
    }
    if (allowed) {
        m->allowed = with_head(allowed);
        return method == HTTP_OPTIONS ? ROUTER_OPTIONS : ROUTER_NOT_ALLOWED;
    }
    const struct mount *mb = NULL;
    for (size_t i = 0; i < r->nmounts; i++) {
        const struct mount *mt = &r->mounts[i];
        if (!strncmp(path, mt->prefix, mt->len) && (!mb || mt->len > mb->len)) mb = mt;
    }
    if (mb) {
        m->fn = mb->fn;
        m->arg = mb->arg;
        m->route = mb->prefix;
        m->mount_path = path + mb->len;
        return ROUTER_MOUNT;
    }
    return ROUTER_NOT_FOUND;
}

void router_allow_header(unsigned methods, struct strbuf *out)
{
    static const enum http_method order[] = {HTTP_GET,    HTTP_HEAD,  HTTP_POST,   HTTP_PUT,
                                             HTTP_DELETE, HTTP_PATCH, HTTP_OPTIONS};
    bool first = true;
    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
        if (!(methods & order[i])) continue;
        if (!first) strbuf_puts(out, ", ");
        strbuf_puts(out, http_method_name(order[i]));
        first = false;
    }
}

/* ---- dispatch ---- */

/* The built-in error page, used when no error handler is set or it failed. */
static void builtin_error(http_request *req, http_response *res, int status, const char *msg)
{
    struct strbuf sb;
    strbuf_init(&sb);
    if (http_request_prefers_json(req)) {
        json_t *j = json_pack("{s:{s:i,s:s}}", "error", "code", status, "message", msg);
        if (j && http_response_json(res, j) == 0) {
            json_decref(j);
            return;
        }
        json_decref(j);
    }
    const char *title = http_status_title(status);
    strbuf_printf(&sb,
                  "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                  "<title>%d ",
                  status);
    http_html_escape(&sb, title);
    strbuf_printf(&sb, "</title></head>\n<body><h1>%d ", status);
    http_html_escape(&sb, title);
    strbuf_puts(&sb, "</h1>\n<p>");
    http_html_escape(&sb, msg);
    strbuf_puts(&sb, "</p>\n<p><a href=\"/\">Back to home</a></p></body></html>\n");
    http_response_html_strbuf(res, &sb);
}

void router_render_error(http_router *r, http_request *req, http_response *res)
{
    int status = res->error_status;
    char *msg = res->error_message;
    res->error_message = NULL;
    res->error_status = 0;
    res->status = status;
    if (!msg) msg = xstrdup(http_status_message(status));
    if (r && r->error_fn) r->error_fn(req, res, status, msg, r->error_arg);
    /* The handler must not leave another error or no body. */
    if (res->error_status || res->kind == BODY_NONE) {
        res->error_status = 0;
        builtin_error(req, res, status, msg);
    }
    res->status = status;
    free(msg);
}

/* Decodes a form body before the handler; answers 400/413 itself. */
static bool decode_form(http_request *req, http_response *res)
{
    if (!http_form_is_form_type(req->content_type)) return true;
    const struct http_server_options *o = &req->srv->opt;
    struct http_form_limits lim = {
        .max_parts = o->max_form_parts,
        .max_field_bytes = o->max_form_field_bytes,
        .max_file_bytes = o->max_body_bytes,
        .max_header_bytes = 8192,
    };
    struct http_form form;
    struct echo_err err = {0};
    int rc = http_form_parse(req->arena, req->content_type, req->body.data, req->body.len, &lim,
                             &form, &err);
    if (rc == 0) {
        req->form = form.fields;
        req->nform = form.nfields;
        req->files = form.files;
        req->nfiles = form.nfiles;
        return true;
    }
    log_info("http: %s %s: form body refused: %s", req->method_name, req->path, err.msg);
    if (rc == HTTP_ERR_TOO_LARGE)
        http_response_error(res, HTTP_STATUS_PAYLOAD_TOO_LARGE, NULL);
    else
        http_response_error(res, HTTP_STATUS_BAD_REQUEST, "The form could not be read.");
    return false;
}

void router_dispatch(http_router *r, http_request *req)
{
    http_response *res = req->res;
    struct router_match m;
    enum router_result kind = router_match(r, req->method, req->path, req->arena, &m);
    struct strbuf allow;
    switch (kind) {
    case ROUTER_NOT_FOUND:
        http_response_error(res, HTTP_STATUS_NOT_FOUND, NULL);
        return;
    case ROUTER_NOT_ALLOWED:
    case ROUTER_OPTIONS:
        strbuf_init(&allow);
        router_allow_header(m.allowed | HTTP_OPTIONS, &allow);
        http_response_set_header(res, "Allow", strbuf_cstr(&allow));
        strbuf_deinit(&allow);
        if (kind == ROUTER_OPTIONS)
            http_response_set_status(res, HTTP_STATUS_NO_CONTENT);
        else
            http_response_error(res, HTTP_STATUS_METHOD_NOT_ALLOWED, NULL);
        return;
    case ROUTER_MOUNT:
        req->route = m.route;
        req->mount_path = m.mount_path;
        m.fn(req, res, m.arg);
        return;
    case ROUTER_ROUTE:
        break;
    }
    req->route = m.route;
    req->params = m.params;
    req->nparams = m.nparams;
    if (!decode_form(req, res)) return;
    /* ran counts the hooks whose before-hook let the request through. */
    size_t ran = 0;
    bool go = true;
    while (ran < r->nhooks) {
        if (r->hooks[ran].before && !r->hooks[ran].before(req, res, r->hooks[ran].arg)) {
            go = false;
            break;
        }
        ran++;
    }
    if (go) m.fn(req, res, m.arg);
    if (req->deferred || res->upgrade_fn) return;
    while (ran-- > 0)
        if (r->hooks[ran].after) r->hooks[ran].after(req, res, r->hooks[ran].arg);
}
