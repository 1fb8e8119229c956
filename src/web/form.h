/*
 * form.h - the form object the templates receive (docs/TEMPLATES.md):
 * {data: {field: value}, errors: {field: [message]}, form_errors: [message]},
 * and the reading of posted fields. Shared by every area with a form
 * (accounts, profile, feedback).
 *
 * Threads: any; a form object belongs to one request.
 */
#ifndef ECHO_WEB_FORM_H
#define ECHO_WEB_FORM_H

#include <jansson.h>
#include <stdbool.h>

#include "http/http.h"

/* A new, empty form object (new reference). */
json_t *web_form_new(void);
/* Keeps a typed value to show again (never a password). */
void web_form_data(json_t *form, const char *name, const char *value);
/* A message under one field. */
void web_form_error(json_t *form, const char *field, const char *message);
/* A message about the whole form. */
void web_form_fail(json_t *form, const char *message);
/* No message of either kind. */
bool web_form_ok(const json_t *form);

/* A posted text field with surrounding blanks removed, in the request's
 * arena; "" when absent. */
const char *web_form_field_trimmed(http_request *req, const char *name);
/* A posted field as sent (passwords); "" when absent. */
const char *web_form_field_raw(http_request *req, const char *name);

#endif
