/*
 * url.c - percent-decoding, path normalization and urlencoded pairs (see
 * url.h). Everything here reads untrusted bytes, so every branch either
 * accepts well-formed input or returns a reason; nothing can read past len.
 */
#include <string.h>
#include <strings.h>

#include "http/url.h"

void http_pct_encode(struct strbuf *sb, const char *s, const char *keep)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '.' || *p == '_' || *p == '~' || (keep && strchr(keep, *p))) {
            strbuf_putc(sb, (char)*p);
        } else {
            strbuf_putc(sb, '%');
            strbuf_putc(sb, hex[*p >> 4]);
            strbuf_putc(sb, hex[*p & 15]);
        }
    }
}

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int http_pct_decode(const char *in, size_t len, bool plus_is_space, char *out, size_t *out_len)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c == '%') {
            if (len - i < 3) return -1;
            int hi = hex_value((unsigned char)in[i + 1]);
            int lo = hex_value((unsigned char)in[i + 2]);
            if (hi < 0 || lo < 0) return -1;
            out[o++] = (char)(hi * 16 + lo);
            i += 2;
        } else if (c == '+' && plus_is_space) {
            out[o++] = ' ';
        } else {
            out[o++] = (char)c;
        }
    }
    *out_len = o;
    return 0;
}

static bool is_ctl(unsigned char c)
{
    return c < 0x20 || c == 0x7f;
}

/* Skips "scheme://authority" of an absolute-form target (RFC 7230 5.3.2),
 * which a server must accept even though browsers never send it. */
static size_t skip_absolute_form(const char *raw, size_t len)
{
    static const char *schemes[] = {"http://", "https://"};
    for (size_t s = 0; s < 2; s++) {
        size_t n = strlen(schemes[s]);
        if (len >= n && !strncasecmp(raw, schemes[s], n)) {
            const char *slash = memchr(raw + n, '/', len - n);
            return slash ? (size_t)(slash - raw) : len;
        }
    }
    return 0;
}

int http_path_normalize(arena *a, const char *raw, size_t len, const char **out,
                        struct echo_err *err)
{
    size_t start = skip_absolute_form(raw, len);
    if (start > 0 && start == len) {
        *out = "/";
        return 0;
    }
    raw += start;
    len -= start;
    if (len == 0 || raw[0] != '/') {
        echo_err_set(err, "the path does not start with /");
        return HTTP_ERR_BAD_REQUEST;
    }
    /* The decoded path is never longer than the raw one (+ "/" and NUL). */
    char *o = arena_alloc(a, len + 2);
    char *seg = arena_alloc(a, len + 1);
    size_t olen = 0;
    bool trailing = false;
    size_t i = 1;
    while (i <= len) {
        const char *end = memchr(raw + i, '/', len - i);
        size_t seglen = end ? (size_t)(end - (raw + i)) : len - i;
        size_t dlen = 0;
        if (http_pct_decode(raw + i, seglen, false, seg, &dlen) != 0) {
            echo_err_set(err, "bad percent-encoding in the path");
            return HTTP_ERR_BAD_REQUEST;
        }
        for (size_t k = 0; k < dlen; k++) {
            unsigned char c = (unsigned char)seg[k];
            if (c == '/') {
                echo_err_set(err, "an encoded / (%%2F) in the path");
                return HTTP_ERR_BAD_REQUEST;
            }
            if (is_ctl(c)) {
                echo_err_set(err, "a control character or NUL in the path");
                return HTTP_ERR_BAD_REQUEST;
            }
        }
        /* A final "", "." or ".." means the path names a folder: keep a "/". */
        bool last = end == NULL;
        if (dlen == 0 || (dlen == 1 && seg[0] == '.')) {
            trailing = last;
        } else if (dlen == 2 && seg[0] == '.' && seg[1] == '.') {
            if (olen == 0) {
                echo_err_set(err, "the path climbs above the root");
                return HTTP_ERR_BAD_REQUEST;
            }
            while (o[olen - 1] != '/')
                olen--;
            olen--; /* the "/" before the removed segment */
            trailing = last;
        } else {
            o[olen++] = '/';
            memcpy(o + olen, seg, dlen);
            olen += dlen;
            trailing = false;
        }
        if (!end) break;
        i += seglen + 1;
        if (i > len) /* the path ended with "/" */
            break;
    }
    if (olen == 0 || trailing) o[olen++] = '/';
    o[olen] = 0;
    if (!utf8_valid(o, olen)) {
        echo_err_set(err, "the path is not valid UTF-8");
        return HTTP_ERR_BAD_REQUEST;
    }
    *out = o;
    return 0;
}

/* Decodes one name or value into the arena, checking UTF-8 and NUL. */
static int decode_part(arena *a, const char *s, size_t n, const char **out, size_t *out_len,
                       struct echo_err *err)
{
    char *d = arena_alloc(a, n + 1);
    size_t dlen = 0;
    if (http_pct_decode(s, n, true, d, &dlen) != 0) {
        echo_err_set(err, "bad percent-encoding in a form or query value");
        return HTTP_ERR_BAD_REQUEST;
    }
    if (memchr(d, 0, dlen) || !utf8_valid(d, dlen)) {
        echo_err_set(err, "a form or query value is not valid UTF-8 text");
        return HTTP_ERR_BAD_REQUEST;
    }
    d[dlen] = 0;
    *out = d;
    if (out_len) *out_len = dlen;
    return 0;
}

int http_urlencoded_parse(arena *a, const char *s, size_t len, size_t max_pairs, size_t max_value,
                          struct http_param **out, size_t *count, struct echo_err *err)
{
    size_t pieces = 1;
    for (size_t i = 0; i < len; i++)
        if (s[i] == '&') pieces++;
    /* Never more than max_pairs slots: a body of "&&&&..." must not turn
     * into an allocation 24 times its size. */
    if (pieces > max_pairs) pieces = max_pairs;
    struct http_param *p = arena_alloc(a, (pieces ? pieces : 1) * sizeof(*p));
    size_t n = 0;
    size_t i = 0;
    while (i < len) {
        const char *amp = memchr(s + i, '&', len - i);
        size_t plen = amp ? (size_t)(amp - (s + i)) : len - i;
        if (plen > 0) {
            if (n >= max_pairs) {
                echo_err_set(err, "more than %zu fields", max_pairs);
                return HTTP_ERR_TOO_LARGE;
            }
            const char *eq = memchr(s + i, '=', plen);
            size_t nlen = eq ? (size_t)(eq - (s + i)) : plen;
            int rc = decode_part(a, s + i, nlen, &p[n].name, NULL, err);
            if (rc != 0) return rc;
            if (eq) {
                rc = decode_part(a, eq + 1, plen - nlen - 1, &p[n].value, &p[n].value_len, err);
                if (rc != 0) return rc;
            } else {
                p[n].value = "";
                p[n].value_len = 0;
            }
            if (max_value && p[n].value_len > max_value) {
                echo_err_set(err, "a field is longer than %zu bytes", max_value);
                return HTTP_ERR_TOO_LARGE;
            }
            n++;
        }
        if (!amp) break;
        i += plen + 1;
    }
    *out = p;
    *count = n;
    return 0;
}
