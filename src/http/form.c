/*
 * form.c - urlencoded and multipart/form-data bodies (see form.h).
 *
 * Multipart framing (RFC 2046 5.1.1): an optional preamble, then
 * "--boundary" CRLF, part headers, CRLF CRLF, the part's bytes, and
 * CRLF "--boundary" before the next part; "--boundary--" ends the body. We
 * are strict where a lenient reading could be exploited (a delimiter must be
 * followed by "--" or CRLF, every part needs a form-data disposition with a
 * name, a body without its closing delimiter is truncated) and lenient where
 * browsers differ (transport padding after a delimiter, a missing final CRLF
 * after "--boundary--", folders in filenames).
 */
#include <string.h>
#include <strings.h>

#include "http/form.h"
#include "http/url.h"

/* Growable arrays in the arena: doubling, old copies are simply left. */
struct grow {
    void *items;
    size_t n, cap, size;
};

static void *grow_push(arena *a, struct grow *g)
{
    if (g->n == g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 8;
        void *items = arena_alloc(a, cap * g->size);
        if (g->n) memcpy(items, g->items, g->n * g->size);
        g->items = items;
        g->cap = cap;
    }
    return (char *)g->items + g->n++ * g->size;
}

static bool is_ws(char c)
{
    return c == ' ' || c == '\t';
}

/* Compares the media type part of a Content-Type (before ";") with type. */
static bool media_type_is(const char *ct, const char *type)
{
    if (!ct) return false;
    while (is_ws(*ct))
        ct++;
    size_t n = strcspn(ct, ";");
    while (n > 0 && is_ws(ct[n - 1]))
        n--;
    return n == strlen(type) && !strncasecmp(ct, type, n);
}

bool http_form_is_form_type(const char *content_type)
{
    return media_type_is(content_type, "application/x-www-form-urlencoded") ||
           media_type_is(content_type, "multipart/form-data");
}

static bool is_tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

/*
 * Walks the parameters after the first ";" of a header value. Values are
 * tokens or quoted strings; a quoted string ends at the first unescaped quote
 * (a backslash escapes the next byte). Returns NULL when absent or malformed.
 */
const char *http_header_param(arena *a, const char *v, size_t len, const char *name)
{
    size_t nlen = strlen(name);
    size_t i = 0;
    /* Skip the leading value (the media type or disposition type). */
    while (i < len && v[i] != ';') {
        if (v[i] == '"') return NULL;
        i++;
    }
    while (i < len) {
        i++; /* the ";" */
        while (i < len && is_ws(v[i]))
            i++;
        size_t ns = i;
        while (i < len && is_tchar((unsigned char)v[i]))
            i++;
        size_t ne = i;
        while (i < len && is_ws(v[i]))
            i++;
        if (i >= len || v[i] != '=') return NULL; /* a parameter without "=" or a trailing ";" */
        i++;
        while (i < len && is_ws(v[i]))
            i++;
        char *val;
        size_t vlen = 0;
        if (i < len && v[i] == '"') {
            i++;
            val = arena_alloc(a, len - i + 1);
            bool closed = false;
            while (i < len) {
                char c = v[i++];
                if (c == '\\' && i < len) {
                    val[vlen++] = v[i++];
                } else if (c == '"') {
                    closed = true;
                    break;
                } else {
                    val[vlen++] = c;
                }
            }
            if (!closed) return NULL;
        } else {
            size_t vs = i;
            while (i < len && v[i] != ';' && !is_ws(v[i]))
                i++;
            val = arena_strndup(a, v + vs, i - vs);
            vlen = i - vs;
        }
        val[vlen] = 0;
        while (i < len && is_ws(v[i]))
            i++;
        if (i < len && v[i] != ';') return NULL;
        if (ne - ns == nlen && !strncasecmp(v + ns, name, nlen)) return val;
    }
    return NULL;
}

/* RFC 5987 ext-value "UTF-8''percent%20encoded" (filename*=). NULL if not
 * UTF-8 or malformed. */
static const char *decode_ext_value(arena *a, const char *s)
{
    if (strncasecmp(s, "UTF-8'", 6)) return NULL;
    const char *q = strchr(s + 6, '\'');
    if (!q) return NULL;
    size_t n = strlen(q + 1);
    char *out = arena_alloc(a, n + 1);
    size_t olen = 0;
    if (http_pct_decode(q + 1, n, false, out, &olen) != 0) return NULL;
    out[olen] = 0;
    return out;
}

/* Keeps the last path component: old browsers send "C:\dir\file.png". */
static const char *base_name(const char *s)
{
    const char *b = s;
    for (const char *p = s; *p; p++)
        if (*p == '/' || *p == '\\') b = p + 1;
    return b;
}

static bool has_ctl(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f) return true;
    return false;
}

struct part_headers {
    const char *name;
    const char *filename; /* NULL: a field */
    const char *content_type;
};

/* Parses the header block [h, h+len) of one part (lines without the final
 * empty line). */
static int parse_part_headers(arena *a, const char *h, size_t len, struct part_headers *ph,
                              struct echo_err *err)
{
    bool have_disposition = false;
    if (memchr(h, 0, len)) {
        echo_err_set(err, "a NUL byte in a part's headers");
        return HTTP_ERR_BAD_REQUEST;
    }
    size_t i = 0;
    while (i < len) {
        const char *line = h + i;
        const char *crlf = len - i >= 2 ? memmem(line, len - i, "\r\n", 2) : NULL;
        size_t llen = crlf ? (size_t)(crlf - line) : len - i;
        i += llen + (crlf ? 2 : 0);
        if (llen == 0) continue;
        if (is_ws(line[0])) {
            echo_err_set(err, "a folded header line in a multipart part");
            return HTTP_ERR_BAD_REQUEST;
        }
        const char *colon = memchr(line, ':', llen);
        if (!colon || colon == line) {
            echo_err_set(err, "a malformed header line in a multipart part");
            return HTTP_ERR_BAD_REQUEST;
        }
        size_t hn = (size_t)(colon - line);
        for (size_t k = 0; k < hn; k++) {
            if (!is_tchar((unsigned char)line[k])) {
                echo_err_set(err, "a malformed header name in a multipart part");
                return HTTP_ERR_BAD_REQUEST;
            }
        }
        const char *vb = colon + 1, *ve = line + llen;
        while (vb < ve && is_ws(*vb))
            vb++;
        while (ve > vb && is_ws(ve[-1]))
            ve--;
        size_t vlen = (size_t)(ve - vb);
        if (hn == 19 && !strncasecmp(line, "Content-Disposition", 19)) {
            if (have_disposition) {
                echo_err_set(err, "two Content-Disposition headers in one part");
                return HTTP_ERR_BAD_REQUEST;
            }
            have_disposition = true;
            size_t tl = 0;
            while (tl < vlen && vb[tl] != ';' && !is_ws(vb[tl]))
                tl++;
            if (tl != 9 || strncasecmp(vb, "form-data", 9)) {
                echo_err_set(err, "a multipart part that is not form-data");
                return HTTP_ERR_BAD_REQUEST;
            }
            ph->name = http_header_param(a, vb, vlen, "name");
            const char *fn_ext = http_header_param(a, vb, vlen, "filename*");
            ph->filename = fn_ext ? decode_ext_value(a, fn_ext) : NULL;
            if (!ph->filename) ph->filename = http_header_param(a, vb, vlen, "filename");
            if (fn_ext && !ph->filename) {
                echo_err_set(err, "a malformed filename* parameter");
                return HTTP_ERR_BAD_REQUEST;
            }
        } else if (hn == 12 && !strncasecmp(line, "Content-Type", 12)) {
            ph->content_type = arena_strndup(a, vb, vlen);
        }
    }
    if (!have_disposition || !ph->name) {
        echo_err_set(err, "a multipart part without a form-data name");
        return HTTP_ERR_BAD_REQUEST;
    }
    if (!utf8_valid(ph->name, strlen(ph->name)) || has_ctl(ph->name)) {
        echo_err_set(err, "a field name that is not valid UTF-8 text");
        return HTTP_ERR_BAD_REQUEST;
    }
    if (ph->filename) {
        ph->filename = base_name(ph->filename);
        if (!utf8_valid(ph->filename, strlen(ph->filename)) || has_ctl(ph->filename)) {
            echo_err_set(err, "a file name that is not valid UTF-8 text");
            return HTTP_ERR_BAD_REQUEST;
        }
    }
    if (ph->content_type && (has_ctl(ph->content_type) || !ph->content_type[0]))
        ph->content_type = NULL;
    return 0;
}

static int parse_multipart(arena *a, const char *ct, const char *body, size_t len,
                           const struct http_form_limits *lim, struct http_form *out,
                           struct echo_err *err)
{
    const char *boundary = http_header_param(a, ct, strlen(ct), "boundary");
    size_t blen = boundary ? strlen(boundary) : 0;
    if (blen == 0 || blen > 70) {
        echo_err_set(err, "multipart/form-data needs a boundary of 1 to 70 characters");
        return HTTP_ERR_BAD_REQUEST;
    }
    for (size_t k = 0; k < blen; k++) {
        unsigned char c = (unsigned char)boundary[k];
        if (c < 0x20 || c > 0x7e) {
            echo_err_set(err, "a multipart boundary with bad characters");
            return HTTP_ERR_BAD_REQUEST;
        }
    }
    /* delim = CRLF "--" boundary; the first one may come without its CRLF. */
    char *delim = arena_alloc(a, blen + 5);
    memcpy(delim, "\r\n--", 4);
    memcpy(delim + 4, boundary, blen);
    size_t dlen = blen + 4;

    size_t pos;
    if (len >= dlen - 2 && !memcmp(body, delim + 2, dlen - 2)) {
        pos = dlen - 2;
    } else {
        const char *first = memmem(body, len, delim, dlen);
        if (!first) {
            echo_err_set(err, "the multipart body does not contain its boundary");
            return HTTP_ERR_BAD_REQUEST;
        }
        pos = (size_t)(first - body) + dlen;
    }

    struct grow fields = {.size = sizeof(struct http_param)};
    struct grow files = {.size = sizeof(struct http_file)};
    size_t parts = 0;
    for (;;) {
        /* Just after a delimiter: "--" ends the body, else padding and CRLF. */
        if (len - pos >= 2 && body[pos] == '-' && body[pos + 1] == '-')
            break; /* the epilogue after it is ignored */
        while (pos < len && is_ws(body[pos]))
            pos++;
        if (len - pos < 2 || body[pos] != '\r' || body[pos + 1] != '\n') {
            echo_err_set(err, "a multipart boundary not followed by CRLF");
            return HTTP_ERR_BAD_REQUEST;
        }
        pos += 2;
        if (++parts > lim->max_parts) {
            echo_err_set(err, "more than %zu form parts", lim->max_parts);
            return HTTP_ERR_TOO_LARGE;
        }
        /* The header block ends with an empty line. */
        size_t hstart = pos, hlen, dstart;
        if (len - pos >= 2 && body[pos] == '\r' && body[pos + 1] == '\n') {
            hlen = 0;
            dstart = pos + 2;
        } else {
            size_t window = len - pos;
            if (window > lim->max_header_bytes + 4) window = lim->max_header_bytes + 4;
            const char *end = memmem(body + pos, window, "\r\n\r\n", 4);
            if (!end) {
                if (window < len - pos) {
                    echo_err_set(err, "a multipart part's headers are longer than %zu bytes",
                                 lim->max_header_bytes);
                    return HTTP_ERR_TOO_LARGE;
                }
                echo_err_set(err, "a multipart part's headers are truncated");
                return HTTP_ERR_BAD_REQUEST;
            }
            hlen = (size_t)(end - (body + pos));
            dstart = hstart + hlen + 4;
        }
        struct part_headers ph = {0};
        int rc = parse_part_headers(a, body + hstart, hlen, &ph, err);
        if (rc != 0) return rc;
        const char *next = memmem(body + dstart, len - dstart, delim, dlen);
        if (!next) {
            echo_err_set(err, "a multipart part is truncated (no closing boundary)");
            return HTTP_ERR_BAD_REQUEST;
        }
        size_t size = (size_t)(next - (body + dstart));
        if (ph.filename) {
            if (size > lim->max_file_bytes) {
                echo_err_set(err, "a file is larger than %zu bytes", lim->max_file_bytes);
                return HTTP_ERR_TOO_LARGE;
            }
            struct http_file *f = grow_push(a, &files);
            f->field = ph.name;
            f->filename = ph.filename;
            f->content_type = ph.content_type ? ph.content_type : "application/octet-stream";
            f->data = (const unsigned char *)body + dstart;
            f->size = size;
        } else {
            if (size > lim->max_field_bytes) {
                echo_err_set(err, "a form field is longer than %zu bytes", lim->max_field_bytes);
                return HTTP_ERR_TOO_LARGE;
            }
            if (memchr(body + dstart, 0, size) || !utf8_valid(body + dstart, size)) {
                echo_err_set(err, "a form field is not valid UTF-8 text");
                return HTTP_ERR_BAD_REQUEST;
            }
            struct http_param *p = grow_push(a, &fields);
            p->name = ph.name;
            p->value = arena_strndup(a, body + dstart, size);
            p->value_len = size;
        }
        pos = (size_t)(next - body) + dlen;
    }
    out->fields = fields.items;
    out->nfields = fields.n;
    out->files = files.items;
    out->nfiles = files.n;
    return 0;
}

int http_form_parse(arena *a, const char *content_type, const void *body, size_t len,
                    const struct http_form_limits *limits, struct http_form *out,
                    struct echo_err *err)
{
    memset(out, 0, sizeof(*out));
    if (!body) body = "";
    if (media_type_is(content_type, "application/x-www-form-urlencoded")) {
        return http_urlencoded_parse(a, body, len, limits->max_parts, limits->max_field_bytes,
                                     &out->fields, &out->nfields, err);
    }
    if (media_type_is(content_type, "multipart/form-data"))
        return parse_multipart(a, content_type, body, len, limits, out, err);
    echo_err_set(err, "not a form content type");
    return HTTP_ERR_UNSUPPORTED;
}
