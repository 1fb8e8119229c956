/*
 * cookie.h - the Cookie request header (RFC 6265 section 5.4 as browsers
 * send it) and Set-Cookie formatting (http_cookie_format in http.h). Pure,
 * safe from any thread.
 */
#ifndef ECHO_HTTP_COOKIE_H
#define ECHO_HTTP_COOKIE_H

#include "http/http.h"

/*
 * Parses "a=1; b=2" into pairs allocated from arena a, appended after the
 * *count pairs already in *list (the array is reallocated in the arena).
 * Pairs with no "=", an empty or non-token name, or a value that is not
 * RFC 6265 cookie-octets (controls, spaces, non-ASCII, " , ; \) are skipped
 * (a stray cookie from another application on the same host must not break
 * our requests). One pair of surrounding double quotes is removed from a
 * value.
 */
void http_cookie_parse(arena *a, const char *header, struct http_param **list, size_t *count);

#endif
