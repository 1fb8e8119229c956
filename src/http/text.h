/*
 * text.h - small HTTP text rules shared by the http layer's files: tokens and
 * header values (RFC 7230), HTTP dates (RFC 7231 7.1.1.1), Accept ranking,
 * HTML escaping, status texts. Pure functions, safe from any thread.
 */
#ifndef ECHO_HTTP_TEXT_H
#define ECHO_HTTP_TEXT_H

#include <time.h>

#include "http/http.h"

/* A non-empty RFC 7230 token (header names, cookie names). */
bool http_is_token(const char *s);
/* A header value we are willing to send: no CR, LF, NUL or other controls
 * except tab. */
bool http_is_header_value(const char *s);

/* Formats "Sun, 06 Nov 1994 08:49:37 GMT" into buf (at least 30 bytes). */
void http_date_format(time_t t, char *buf, size_t size);
/* Parses the three HTTP date forms (IMF-fixdate, RFC 850, asctime).
 * Returns 0 or -1. Locale-independent. */
int http_date_parse(const char *s, time_t *out);

/*
 * Quality of media type "type/subtype" in an Accept header, using the most
 * specific matching range (exact > type/x > x/x); *specificity is 2, 1 or
 * 0 for the range used. Returns -1 when nothing matches (or accept is NULL).
 */
double http_accept_quality(const char *accept, const char *type, int *specificity);
/* True when application/json ranks above text/html (higher q, or the same q
 * from a more specific range). */
bool http_accept_prefers_json(const char *accept);

/* Appends s with & < > " ' escaped. */
void http_html_escape(struct strbuf *out, const char *s);

#endif
