/*
 * cookie.c - Cookie parsing and Set-Cookie formatting (see cookie.h and
 * http.h). Formatting validates every part, because a value with ";" in it
 * would let data inject cookie attributes.
 */
#include <inttypes.h>
#include <string.h>

#include "http/cookie.h"
#include "http/text.h"

/* RFC 6265 cookie-octet: printable ASCII except space " , ; \ */
static bool is_cookie_octet(unsigned char c)
{
    return c == 0x21 || (c >= 0x23 && c <= 0x2b) || (c >= 0x2d && c <= 0x3a) ||
           (c >= 0x3c && c <= 0x5b) || (c >= 0x5d && c <= 0x7e);
}

static bool valid_value(const char *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!is_cookie_octet((unsigned char)v[i])) return false;
    return true;
}

static bool valid_name(const char *s, size_t n)
{
    static const char specials[] = "!#$%&'*+-.^_`|~";
    if (n == 0) return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                  (c && strchr(specials, c));
        if (!ok) return false;
    }
    return true;
}

void http_cookie_parse(arena *a, const char *header, struct http_param **list, size_t *count)
{
    if (!header) return;
    size_t pieces = 1;
    for (const char *p = header; *p; p++)
        if (*p == ';') pieces++;
    struct http_param *out = arena_alloc(a, (*count + pieces) * sizeof(*out));
    if (*count) memcpy(out, *list, *count * sizeof(*out));
    size_t n = *count;
    const char *p = header;
    while (*p) {
        const char *end = strchr(p, ';');
        if (!end) end = p + strlen(p);
        const char *b = p, *e = end;
        while (b < e && (*b == ' ' || *b == '\t'))
            b++;
        while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        const char *eq = memchr(b, '=', (size_t)(e - b));
        if (eq) {
            const char *ne = eq;
            while (ne > b && (ne[-1] == ' ' || ne[-1] == '\t'))
                ne--;
            const char *vb = eq + 1;
            while (vb < e && (*vb == ' ' || *vb == '\t'))
                vb++;
            const char *ve = e;
            if (ve - vb >= 2 && vb[0] == '"' && ve[-1] == '"') {
                vb++;
                ve--;
            }
            if (valid_name(b, (size_t)(ne - b)) && valid_value(vb, (size_t)(ve - vb))) {
                out[n].name = arena_strndup(a, b, (size_t)(ne - b));
                out[n].value = arena_strndup(a, vb, (size_t)(ve - vb));
                out[n].value_len = (size_t)(ve - vb);
                n++;
            }
        }
        p = *end ? end + 1 : end;
    }
    *list = out;
    *count = n;
}

/* Path and Domain: printable ASCII without ";" (RFC 6265 4.1.1 av-octet). */
static bool valid_attr(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p > 0x7e || *p == ';') return false;
    return true;
}

int http_cookie_format(const struct http_cookie *c, struct strbuf *out, struct echo_err *err)
{
    if (!c || !c->name || !valid_name(c->name, strlen(c->name))) {
        echo_err_set(err, "a cookie name must be a token");
        return HTTP_ERR_INVALID;
    }
    const char *value = c->value ? c->value : "";
    if (!valid_value(value, strlen(value))) {
        echo_err_set(err, "cookie %s: the value has characters a cookie cannot hold", c->name);
        return HTTP_ERR_INVALID;
    }
    if ((c->path && !valid_attr(c->path)) || (c->domain && !valid_attr(c->domain))) {
        echo_err_set(err, "cookie %s: bad Path or Domain", c->name);
        return HTTP_ERR_INVALID;
    }
    if (c->same_site == HTTP_SAME_SITE_NONE && !c->secure) {
        echo_err_set(err, "cookie %s: SameSite=None needs Secure", c->name);
        return HTTP_ERR_INVALID;
    }
    if (c->max_age < 0 || c->expires < 0) {
        echo_err_set(err, "cookie %s: negative Max-Age or Expires", c->name);
        return HTTP_ERR_INVALID;
    }
    strbuf_printf(out, "%s=%s", c->name, value);
    if (c->path) strbuf_printf(out, "; Path=%s", c->path);
    if (c->domain) strbuf_printf(out, "; Domain=%s", c->domain);
    if (c->max_age > 0) strbuf_printf(out, "; Max-Age=%" PRId64, c->max_age);
    if (c->expires > 0) {
        char date[40];
        http_date_format((time_t)c->expires, date, sizeof(date));
        strbuf_printf(out, "; Expires=%s", date);
    }
    if (c->secure) strbuf_puts(out, "; Secure");
    if (c->http_only) strbuf_puts(out, "; HttpOnly");
    static const char *const same_site[] = {"", "Lax", "Strict", "None"};
    if (c->same_site > HTTP_SAME_SITE_UNSET && c->same_site <= HTTP_SAME_SITE_NONE)
        strbuf_printf(out, "; SameSite=%s", same_site[c->same_site]);
    return 0;
}
