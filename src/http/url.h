/*
 * url.h - pure decoders for what arrives in a request line and in
 * urlencoded bodies: percent-decoding, path normalization (RFC 3986 section
 * 5.2.4 dot-segment removal, done after decoding so that %2e%2e cannot hide
 * a ".."), and name=value&... pairs.
 *
 * No I/O and no global state: safe from any thread; the fuzz target and the
 * unit tests call these directly.
 */
#ifndef ECHO_HTTP_URL_H
#define ECHO_HTTP_URL_H

#include "http/http.h"

/*
 * Percent-decodes in[0..len) into out (at least len bytes; not terminated).
 * plus_is_space turns "+" into " " (form encoding). Returns 0, or -1 for a
 * "%" not followed by two hex digits.
 */
int http_pct_decode(const char *in, size_t len, bool plus_is_space, char *out, size_t *out_len);

/*
 * Appends s percent-encoded to sb: every byte except the RFC 3986
 * unreserved characters (A-Z a-z 0-9 - . _ ~) and those listed in keep
 * (NULL: none; e.g. "/" for a path kept readable in a query value) becomes
 * %XX. Safe for query values and form bodies.
 */
void http_pct_encode(struct strbuf *sb, const char *s, const char *keep);

/*
 * Decodes and normalizes a request path (the part before "?"; an absolute
 * "http://host/path" target is reduced to its path). Result in arena a.
 * Returns 0, or HTTP_ERR_BAD_REQUEST with err saying why: not starting with
 * "/", bad percent-encoding, an encoded "/" (%2F) or NUL, control characters,
 * invalid UTF-8, or ".." climbing above the root.
 */
int http_path_normalize(arena *a, const char *raw, size_t len, const char **out,
                        struct echo_err *err);

/*
 * Parses "a=1&b=2&a=3" ("+" is a space; pairs without "=" get ""; empty
 * pairs are skipped). Names and values must decode to valid UTF-8 without
 * NUL. At most max_pairs pairs and max_value bytes per decoded value
 * (0: no value limit). Returns 0, HTTP_ERR_BAD_REQUEST or HTTP_ERR_TOO_LARGE
 * (err says which), the pairs in arena a.
 */
int http_urlencoded_parse(arena *a, const char *s, size_t len, size_t max_pairs, size_t max_value,
                          struct http_param **out, size_t *count, struct echo_err *err);

#endif
