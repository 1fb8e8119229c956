/*
 * response.c - the response builder (http.h). A response is a plain heap
 * object, so that a deferred answer can be built on any thread; server.c
 * turns it into a libmicrohttpd response when it is queued.
 */
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "http/internal.h"
#include "http/text.h"

http_response *http_response_new(void)
{
    http_response *res = xcalloc(1, sizeof(*res));
    res->status = HTTP_STATUS_OK;
    res->fd = -1;
    return res;
}

void response_clear_body(http_response *res)
{
    free(res->body);
    res->body = NULL;
    res->body_len = 0;
    if (res->fd >= 0) close(res->fd);
    res->fd = -1;
    if (res->kind == BODY_STREAM && res->stream_free) res->stream_free(res->stream_arg);
    res->stream_fn = NULL;
    res->stream_arg = NULL;
    res->stream_free = NULL;
    free(res->content_type);
    res->content_type = NULL;
    res->kind = BODY_NONE;
}

void http_response_free(http_response *res)
{
    if (!res) return;
    response_clear_body(res);
    for (size_t i = 0; i < res->nheaders; i++)
        free(res->headers[i].name);
    free(res->headers);
    free(res->error_message);
    free(res);
}

void http_response_set_status(http_response *res, int status)
{
    if (status < 100 || status > 599) {
        log_error("http: handler set invalid status %d; answering 500", status);
        status = HTTP_STATUS_INTERNAL_ERROR;
    }
    res->status = status;
}

int http_response_status(const http_response *res)
{
    return res->error_status ? res->error_status : res->status;
}

/* Headers the server computes itself; a handler setting them would produce
 * a malformed or contradictory message. */
static bool is_managed(const char *name)
{
    static const char *const managed[] = {"Content-Length", "Transfer-Encoding", "Connection",
                                          "Date"};
    for (size_t i = 0; i < sizeof(managed) / sizeof(managed[0]); i++)
        if (!strcasecmp(name, managed[i])) return true;
    return false;
}

static int check_header(const char *name, const char *value)
{
    if (!http_is_token(name) || !http_is_header_value(value) || is_managed(name)) {
        log_error("http: refused response header '%s'", name ? name : "(null)");
        return HTTP_ERR_INVALID;
    }
    return 0;
}

static void set_content_type(http_response *res, const char *ct)
{
    free(res->content_type);
    res->content_type = ct ? xstrdup(ct) : NULL;
}

int http_response_add_header(http_response *res, const char *name, const char *value)
{
    if (check_header(name, value) != 0) return HTTP_ERR_INVALID;
    if (!strcasecmp(name, "Content-Type")) {
        set_content_type(res, value);
        return 0;
    }
    if (res->nheaders == res->cap_headers) {
        res->cap_headers = res->cap_headers ? res->cap_headers * 2 : 8;
        res->headers = xrealloc(res->headers, res->cap_headers * sizeof(*res->headers));
    }
    size_t nl = strlen(name), vl = strlen(value);
    char *mem = xmalloc(nl + vl + 2);
    memcpy(mem, name, nl + 1);
    memcpy(mem + nl + 1, value, vl + 1);
    res->headers[res->nheaders].name = mem;
    res->headers[res->nheaders].value = mem + nl + 1;
    res->nheaders++;
    return 0;
}

void http_response_remove_header(http_response *res, const char *name)
{
    if (!strcasecmp(name, "Content-Type")) {
        set_content_type(res, NULL);
        return;
    }
    size_t o = 0;
    for (size_t i = 0; i < res->nheaders; i++) {
        if (!strcasecmp(res->headers[i].name, name))
            free(res->headers[i].name);
        else
            res->headers[o++] = res->headers[i];
    }
    res->nheaders = o;
}

int http_response_set_header(http_response *res, const char *name, const char *value)
{
    if (check_header(name, value) != 0) return HTTP_ERR_INVALID;
    http_response_remove_header(res, name);
    return http_response_add_header(res, name, value);
}

const char *http_response_header(const http_response *res, const char *name)
{
    if (!strcasecmp(name, "Content-Type")) return res->content_type;
    for (size_t i = 0; i < res->nheaders; i++)
        if (!strcasecmp(res->headers[i].name, name)) return res->headers[i].value;
    return NULL;
}

bool response_has_header(const http_response *res, const char *name)
{
    return http_response_header(res, name) != NULL;
}

int http_response_set_cookie(http_response *res, const struct http_cookie *cookie)
{
    struct strbuf sb;
    struct echo_err err = {0};
    strbuf_init(&sb);
    int rc = http_cookie_format(cookie, &sb, &err);
    if (rc == 0)
        rc = http_response_add_header(res, "Set-Cookie", strbuf_cstr(&sb));
    else
        log_error("http: refused cookie: %s", err.msg);
    strbuf_deinit(&sb);
    return rc;
}

int http_response_delete_cookie(http_response *res, const char *name, const char *path)
{
    struct http_cookie c = {.name = name, .value = "", .path = path};
    struct strbuf sb;
    struct echo_err err = {0};
    strbuf_init(&sb);
    int rc = http_cookie_format(&c, &sb, &err);
    if (rc == 0) {
        strbuf_puts(&sb, "; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT");
        rc = http_response_add_header(res, "Set-Cookie", strbuf_cstr(&sb));
    } else {
        log_error("http: refused cookie deletion: %s", err.msg);
    }
    strbuf_deinit(&sb);
    return rc;
}

/* A new body replaces the old one and any pending error. */
static void begin_body(http_response *res, const char *content_type)
{
    response_clear_body(res);
    res->error_status = 0;
    set_content_type(res, content_type ? content_type : "application/octet-stream");
}

void http_response_body_take(http_response *res, const char *content_type, char *data, size_t len)
{
    begin_body(res, content_type);
    res->kind = BODY_MEM;
    res->body = data;
    res->body_len = len;
}

void http_response_body(http_response *res, const char *content_type, const void *data, size_t len)
{
    char *copy = xmalloc(len + 1);
    if (len) memcpy(copy, data, len);
    copy[len] = 0;
    http_response_body_take(res, content_type, copy, len);
}

void http_response_html(http_response *res, const char *html, size_t len)
{
    http_response_body(res, "text/html; charset=utf-8", html, len);
}

void http_response_html_strbuf(http_response *res, struct strbuf *sb)
{
    size_t len = sb->len;
    char *data = strbuf_steal(sb);
    if (!data) data = xstrdup("");
    http_response_body_take(res, "text/html; charset=utf-8", data, len);
}

void http_response_text(http_response *res, const char *text)
{
    http_response_body(res, "text/plain; charset=utf-8", text, strlen(text));
}

int http_response_json(http_response *res, const json_t *value)
{
    char *s = value ? json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    if (!s) {
        log_error("http: could not encode a JSON response");
        return HTTP_ERR_INVALID;
    }
    /* jansson allocates with malloc unless told otherwise (core does not). */
    http_response_body_take(res, "application/json", s, strlen(s));
    return 0;
}

int http_response_redirect(http_response *res, int status, const char *location)
{
    if (!location || !location[0] || !http_is_header_value(location)) {
        log_error("http: refused redirect location");
        return HTTP_ERR_INVALID;
    }
    if (status != 301 && status != 302 && status != 303 && status != 307 && status != 308)
        status = HTTP_STATUS_SEE_OTHER;
    response_clear_body(res);
    res->error_status = 0;
    res->status = status;
    return http_response_set_header(res, "Location", location);
}

int http_response_file(http_response *res, int fd, uint64_t offset, uint64_t size,
                       const char *content_type)
{
    if (fd < 0) {
        log_error("http: file response without a file");
        return HTTP_ERR_INVALID;
    }
    begin_body(res, content_type);
    res->kind = BODY_FILE;
    res->fd = fd;
    res->file_offset = offset;
    res->file_size = size;
    return 0;
}

void http_response_stream(http_response *res, const char *content_type, int64_t size,
                          http_stream_fn fn, void *arg, void (*free_fn)(void *arg))
{
    begin_body(res, content_type);
    res->kind = BODY_STREAM;
    res->stream_fn = fn;
    res->stream_arg = arg;
    res->stream_free = free_fn;
    res->stream_size = size;
}

void http_response_error(http_response *res, int status, const char *message)
{
    if (status < 400 || status > 599) {
        log_error("http: error response with status %d; answering 500", status);
        status = HTTP_STATUS_INTERNAL_ERROR;
    }
    response_clear_body(res);
    res->error_status = status;
    res->status = status;
    free(res->error_message);
    res->error_message = xstrdup(message ? message : http_status_message(status));
}

int http_response_upgrade(http_response *res, http_upgrade_fn fn, void *arg)
{
    if (!fn) return HTTP_ERR_INVALID;
    response_clear_body(res);
    res->error_status = 0;
    res->status = HTTP_STATUS_SWITCHING_PROTOCOLS;
    res->upgrade_fn = fn;
    res->upgrade_arg = arg;
    return 0;
}
