/*
 * text.c - HTTP text rules (see text.h) and the status texts of http.h.
 * Dates are formatted and parsed by hand because strftime/strptime follow
 * the process locale and HTTP dates are always English and GMT.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http/text.h"

static const char *const day_names[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char *const month_names[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                          "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

bool http_is_token(const char *s)
{
    static const char specials[] = "!#$%&'*+-.^_`|~";
    if (!s || !*s) return false;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z'))
            continue;
        if (!strchr(specials, *p)) return false;
    }
    return true;
}

bool http_is_header_value(const char *s)
{
    if (!s) return false;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if ((*p < 0x20 && *p != '\t') || *p == 0x7f) return false;
    return true;
}

void http_date_format(time_t t, char *buf, size_t size)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(buf, size, "%s, %02d %s %04d %02d:%02d:%02d GMT", day_names[tm.tm_wday % 7],
             tm.tm_mday, month_names[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
             tm.tm_sec);
}

/* Reads a three-letter month name; never reads past the string's end. */
static int month_index(const char *s)
{
    if (!s[0] || !s[1] || !s[2]) return -1;
    for (int i = 0; i < 12; i++)
        if (!strncmp(s, month_names[i], 3)) return i;
    return -1;
}

/* Reads exactly n digits. */
static int read_digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9') return -1;
        v = v * 10 + (c - '0');
    }
    *p += n;
    *out = v;
    return 0;
}

static int expect(const char **p, char c)
{
    if (**p != c) return -1;
    (*p)++;
    return 0;
}

static int read_time(const char **p, int *h, int *m, int *s)
{
    if (read_digits(p, 2, h) || expect(p, ':') || read_digits(p, 2, m) || expect(p, ':') ||
        read_digits(p, 2, s))
        return -1;
    return 0;
}

int http_date_parse(const char *s, time_t *out)
{
    if (!s) return -1;
    const char *p = s;
    int day, mon, year, h, mi, se;
    const char *comma = strchr(p, ',');
    if (comma && comma - p == 3) {
        /* IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT */
        p = comma + 1;
        if (expect(&p, ' ') || read_digits(&p, 2, &day) || expect(&p, ' ')) return -1;
        if ((mon = month_index(p)) < 0) return -1;
        p += 3;
        if (expect(&p, ' ') || read_digits(&p, 4, &year) || expect(&p, ' ') ||
            read_time(&p, &h, &mi, &se) || strcmp(p, " GMT"))
            return -1;
    } else if (comma) {
        /* RFC 850: Sunday, 06-Nov-94 08:49:37 GMT (two-digit year: RFC 7231
         * says to read it as the nearest past century's year). */
        p = comma + 1;
        if (expect(&p, ' ') || read_digits(&p, 2, &day) || expect(&p, '-')) return -1;
        if ((mon = month_index(p)) < 0) return -1;
        p += 3;
        if (expect(&p, '-') || read_digits(&p, 2, &year) || expect(&p, ' ') ||
            read_time(&p, &h, &mi, &se) || strcmp(p, " GMT"))
            return -1;
        year += year < 70 ? 2000 : 1900;
    } else {
        /* asctime: Sun Nov  6 08:49:37 1994 */
        if (strlen(p) < 24 || p[3] != ' ') return -1;
        p += 4;
        if ((mon = month_index(p)) < 0) return -1;
        p += 3;
        if (expect(&p, ' ')) return -1;
        if (*p == ' ') p++;
        if (*p >= '0' && *p <= '9' && p[1] >= '0' && p[1] <= '9') {
            if (read_digits(&p, 2, &day)) return -1;
        } else if (read_digits(&p, 1, &day)) {
            return -1;
        }
        if (expect(&p, ' ') || read_time(&p, &h, &mi, &se) || expect(&p, ' ') ||
            read_digits(&p, 4, &year) || *p)
            return -1;
    }
    if (day < 1 || day > 31 || h > 23 || mi > 59 || se > 60) return -1;
    int64_t days = time_days_from_civil(year, mon + 1, day);
    *out = (time_t)(days * 86400 + h * 3600 + mi * 60 + se);
    return 0;
}

/* Trims spaces and tabs around [*b, *e). */
static void trim(const char **b, const char **e)
{
    while (*b < *e && (**b == ' ' || **b == '\t'))
        (*b)++;
    while (*e > *b && ((*e)[-1] == ' ' || (*e)[-1] == '\t'))
        (*e)--;
}

double http_accept_quality(const char *accept, const char *type, int *specificity)
{
    double best_q = -1;
    int best_spec = -1;
    if (!accept) return -1;
    const char *slash = strchr(type, '/');
    size_t tlen = slash ? (size_t)(slash - type) : strlen(type);
    const char *sub = slash ? slash + 1 : "";
    const char *p = accept;
    while (*p) {
        const char *end = strchr(p, ',');
        if (!end) end = p + strlen(p);
        const char *semi = memchr(p, ';', (size_t)(end - p));
        const char *rb = p, *re = semi ? semi : end;
        trim(&rb, &re);
        double q = 1.0;
        if (semi) {
            /* Parameters: only q matters here. */
            const char *qp = semi;
            while (qp && qp < end) {
                qp++;
                while (qp < end && (*qp == ' ' || *qp == '\t'))
                    qp++;
                if (end - qp >= 2 && (qp[0] == 'q' || qp[0] == 'Q') && qp[1] == '=') {
                    char num[16] = {0};
                    size_t n = 0;
                    const char *v = qp + 2;
                    while (v < end && n < sizeof(num) - 1 && *v != ';' && *v != ' ')
                        num[n++] = *v++;
                    char *stop = NULL;
                    q = strtod(num, &stop);
                    if (stop == num || q < 0 || q > 1) q = 0;
                }
                qp = memchr(qp, ';', (size_t)(end - qp));
            }
        }
        const char *rs = memchr(rb, '/', (size_t)(re - rb));
        if (rs) {
            size_t rtlen = (size_t)(rs - rb);
            size_t rslen = (size_t)(re - rs - 1);
            int spec = -1;
            if (rtlen == 1 && rb[0] == '*' && rslen == 1 && rs[1] == '*')
                spec = 0;
            else if (rtlen == tlen && !strncasecmp(rb, type, tlen)) {
                if (rslen == 1 && rs[1] == '*')
                    spec = 1;
                else if (rslen == strlen(sub) && !strncasecmp(rs + 1, sub, rslen))
                    spec = 2;
            }
            if (spec > best_spec) {
                best_spec = spec;
                best_q = q;
            }
        }
        p = *end ? end + 1 : end;
    }
    if (specificity) *specificity = best_spec;
    return best_spec < 0 ? -1 : best_q;
}

bool http_accept_prefers_json(const char *accept)
{
    int sj = -1, sh = -1;
    double qj = http_accept_quality(accept, "application/json", &sj);
    double qh = http_accept_quality(accept, "text/html", &sh);
    if (qj <= 0) return false;
    return qj > qh || (qj == qh && sj > sh);
}

void http_html_escape(struct strbuf *out, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&':
            strbuf_puts(out, "&amp;");
            break;
        case '<':
            strbuf_puts(out, "&lt;");
            break;
        case '>':
            strbuf_puts(out, "&gt;");
            break;
        case '"':
            strbuf_puts(out, "&quot;");
            break;
        case '\'':
            strbuf_puts(out, "&#39;");
            break;
        default:
            strbuf_putc(out, *s);
        }
    }
}

/* ---- status texts ---- */

struct status_text {
    int code;
    const char *reason;
    const char *title;
    const char *message;
};

static const struct status_text statuses[] = {
    {101, "Switching Protocols", "Switching protocols", ""},
    {200, "OK", "OK", ""},
    {201, "Created", "Created", ""},
    {204, "No Content", "No content", ""},
    {301, "Moved Permanently", "Moved", "This page has moved."},
    {302, "Found", "Found", "This page is elsewhere."},
    {303, "See Other", "See other", "This page is elsewhere."},
    {304, "Not Modified", "Not modified", ""},
    {307, "Temporary Redirect", "Moved", "This page is elsewhere for now."},
    {308, "Permanent Redirect", "Moved", "This page has moved."},
    {400, "Bad Request", "Bad request",
     "The request could not be understood. Please check the "
     "address or the form and try again."},
    {401, "Unauthorized", "Unauthorized", "Please log in to see this page."},
    {403, "Forbidden", "Forbidden", "You do not have permission to see this page."},
    {404, "Not Found", "Not found", "The page you asked for does not exist."},
    {405, "Method Not Allowed", "Method not allowed", "This page cannot be used that way."},
    {408, "Request Timeout", "Request timeout", "The request took too long to arrive."},
    {409, "Conflict", "Conflict", "The request conflicts with the current state."},
    {410, "Gone", "Gone", "This page is gone."},
    {413, "Payload Too Large", "Too large", "What you sent is larger than this server accepts."},
    {414, "URI Too Long", "Address too long", "The address you asked for is too long."},
    {415, "Unsupported Media Type", "Unsupported type",
     "The server cannot read data of this type."},
    {422, "Unprocessable Content", "Invalid data", "The data sent could not be processed."},
    {429, "Too Many Requests", "Too many requests",
     "You are sending requests too quickly. Please wait a moment and try again."},
    {431, "Request Header Fields Too Large", "Headers too large",
     "The request's headers are larger than this server accepts."},
    {500, "Internal Server Error", "Something went wrong",
     "Something went wrong on our side. Please try again later."},
    {501, "Not Implemented", "Not implemented", "The server does not support this request."},
    {503, "Service Unavailable", "Unavailable",
     "The service is not available right now. Please try again later."},
};

static const struct status_text *find_status(int code)
{
    for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++)
        if (statuses[i].code == code) return &statuses[i];
    return NULL;
}

const char *http_status_reason(int status)
{
    const struct status_text *s = find_status(status);
    return s ? s->reason : "Unknown";
}

const char *http_status_title(int status)
{
    const struct status_text *s = find_status(status);
    if (s) return s->title;
    return status >= 500 ? "Something went wrong" : "Error";
}

const char *http_status_message(int status)
{
    const struct status_text *s = find_status(status);
    if (s && s->message[0]) return s->message;
    return status >= 500 ? "Something went wrong on our side. Please try again later."
                         : "The request could not be completed.";
}

const char *http_method_name(enum http_method m)
{
    switch (m) {
    case HTTP_GET:
        return "GET";
    case HTTP_HEAD:
        return "HEAD";
    case HTTP_POST:
        return "POST";
    case HTTP_PUT:
        return "PUT";
    case HTTP_DELETE:
        return "DELETE";
    case HTTP_PATCH:
        return "PATCH";
    case HTTP_OPTIONS:
        return "OPTIONS";
    default:
        return "OTHER";
    }
}
