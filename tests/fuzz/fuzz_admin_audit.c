/*
 * fuzz_admin_audit.c - libFuzzer target for the audit log's diff
 * (web_admin_audit_changes): the before/after texts come from the database,
 * but they hold whatever a person typed into a username, an email or a role
 * name, and a row written by an older version may not be what this one
 * expects.
 *
 * Input: the before text, a NUL byte, the after text (no NUL: the whole
 * input is "before" and after is NULL; an empty part is NULL too).
 * Invariants: the result is an array of valid UTF-8 strings, each "key: "
 * and at most two values, key and values at most 80 bytes plus an ellipsis; a
 * text diffed with itself gives no line when it is a JSON object.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "web/admin.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const char *before, const char *after)
{
    json_t *c = web_admin_audit_changes(before, after);
    if (!json_is_array(c)) abort();
    size_t i;
    json_t *line;
    json_array_foreach(c, i, line)
    {
        const char *s = json_string_value(line);
        if (!s || !utf8_valid(s, strlen(s))) abort();
        if (s[0] != '(' && !strstr(s, ": ")) abort();
        /* A cut key, ": ", two cut values and the arrow. */
        if (strlen(s) > 3 * (80 + 3) + 2 + 4) abort();
    }
    json_decref(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 8192) return 0;
    char *buf = malloc(size + 2);
    memcpy(buf, data, size);
    buf[size] = buf[size + 1] = 0;
    size_t n = strlen(buf);
    const char *before = buf[0] ? buf : NULL;
    const char *after = n < size && buf[n + 1] ? buf + n + 1 : NULL;
    check(before, after);
    check(after, before);
    if (before) {
        json_t *self = web_admin_audit_changes(before, before);
        json_t *o = json_loads(before, 0, NULL);
        if (json_is_object(o) && json_array_size(self) != 0) abort();
        json_decref(o);
        json_decref(self);
    }
    free(buf);
    return 0;
}
