/*
 * form.c - form objects for the templates and posted fields (see form.h).
 */
#include <string.h>

#include "web/form.h"

json_t *web_form_new(void)
{
    return json_pack("{s:{},s:{},s:[]}", "data", "errors", "form_errors");
}

void web_form_data(json_t *form, const char *name, const char *value)
{
    json_object_set_new(json_object_get(form, "data"), name, json_string(value ? value : ""));
}

void web_form_error(json_t *form, const char *field, const char *message)
{
    json_t *errors = json_object_get(form, "errors");
    json_t *list = json_object_get(errors, field);
    if (!list) {
        list = json_array();
        json_object_set_new(errors, field, list);
    }
    json_array_append_new(list, json_string(message));
}

void web_form_fail(json_t *form, const char *message)
{
    json_array_append_new(json_object_get(form, "form_errors"), json_string(message));
}

bool web_form_ok(const json_t *form)
{
    return json_object_size(json_object_get(form, "errors")) == 0 &&
           json_array_size(json_object_get(form, "form_errors")) == 0;
}

const char *web_form_field_trimmed(http_request *req, const char *name)
{
    const char *v = http_request_form(req, name);
    if (!v) return "";
    while (*v == ' ' || *v == '\t' || *v == '\r' || *v == '\n')
        v++;
    size_t n = strlen(v);
    while (n && (v[n - 1] == ' ' || v[n - 1] == '\t' || v[n - 1] == '\r' || v[n - 1] == '\n'))
        n--;
    return arena_strndup(http_request_arena(req), v, n);
}

const char *web_form_field_raw(http_request *req, const char *name)
{
    const char *v = http_request_form(req, name);
    return v ? v : "";
}
