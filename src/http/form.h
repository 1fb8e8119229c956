/*
 * form.h - the decoder of form bodies: application/x-www-form-urlencoded and
 * multipart/form-data (RFC 7578 on RFC 2046's framing). A pure function over
 * a complete body in memory (the server reads bodies whole, within
 * max_body_bytes), so that the unit tests and the fuzz target call exactly
 * what the server runs. Safe from any thread.
 */
#ifndef ECHO_HTTP_FORM_H
#define ECHO_HTTP_FORM_H

#include "http/http.h"

struct http_form_limits {
    size_t max_parts;        /* fields + files (urlencoded: pairs) */
    size_t max_field_bytes;  /* one non-file value */
    size_t max_file_bytes;   /* one file */
    size_t max_header_bytes; /* the header block of one multipart part */
};

struct http_form {
    struct http_param *fields;
    size_t nfields;
    struct http_file *files;
    size_t nfiles;
};

/* True for the two content types http_form_parse reads (parameters such as
 * charset or boundary are allowed). */
bool http_form_is_form_type(const char *content_type);

/*
 * Decodes body according to content_type. Field names and values are copied
 * into arena a (NUL-terminated, valid UTF-8, no NUL); file bytes point into
 * body, which must outlive the result. Returns 0, HTTP_ERR_BAD_REQUEST
 * (malformed: bad boundary, missing CRLF, truncated part, missing name,
 * invalid UTF-8...), HTTP_ERR_TOO_LARGE (a limit) or HTTP_ERR_UNSUPPORTED
 * (not a form type); err says why.
 */
int http_form_parse(arena *a, const char *content_type, const void *body, size_t len,
                    const struct http_form_limits *limits, struct http_form *out,
                    struct echo_err *err);

/* Reads parameter `name` of a header value like `form-data; name="x"` or
 * `multipart/form-data; boundary=abc` (quoted strings with \-escapes, or
 * tokens; name matched case-insensitively). Returns the value in arena a,
 * or NULL if absent or malformed. */
const char *http_header_param(arena *a, const char *value, size_t len, const char *name);

#endif
