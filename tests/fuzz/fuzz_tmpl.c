/*
 * fuzz_tmpl.c - libFuzzer target for the template engine: compiles the input
 * as a template and, when it compiles, renders it with a small fixed context
 * in an environment that also holds a layout (for extends/super) and a macro
 * library (for import/from), with tight render limits so that loops cannot
 * make a run slow. Any crash, sanitizer report or leak is a bug.
 */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/core.h"
#include "tmpl/tmpl.h"

static const char *BASE =
    "<h1>{% block title %}T{% endblock %}</h1>{% block body %}{{ x }}{% endblock %}";
static const char *MACROS = "{% macro f(a, b='<b>', c=none) %}[{{ a }}|{{ b }}|{{ c }}{{ varargs "
                            "}}{{ kwargs }}]{% endmacro %}"
                            "{% macro w() %}<{{ caller() }}>{% endmacro %}{% set v = 1 %}";
static const char *CTX =
    "{\"s\": \"<a href='x'>&\\\"</a>\", \"u\": \"h\\u00e9llo w\\u00f6rld \\ud83d\\ude00\", \"n\": "
    "42,"
    " \"f\": 2.5, \"t\": true, \"z\": null, \"xs\": [3, 1, 2], \"ws\": [\"b\", \"A\", \"c\"],"
    " \"d\": {\"b\": 1, \"a\": [1, {\"c\": \"d\"}]},"
    " \"rows\": [{\"id\": 1, \"created_at\": \"2024-01-02T03:04:05\"}, {\"id\": 2, \"created_at\": "
    "1700000000}],"
    " \"pairs\": [[\"error\", \"bad\"], [\"info\", \"ok\"]]}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static json_t *ctx;
    if (!ctx) {
        json_error_t jerr;
        ctx = json_loads(CTX, 0, &jerr);
    }
    tmpl_env *env = tmpl_env_new();
    tmpl_env_set_limits(env, 1 << 20, 20000);
    struct echo_err err;
    tmpl_env_add(env, "base.html", BASE, strlen(BASE), &err);
    tmpl_env_add(env, "m.html", MACROS, strlen(MACROS), &err);
    if (tmpl_env_add(env, "t.html", (const char *)data, size, &err) == 0) {
        struct strbuf out;
        strbuf_init(&out);
        tmpl_render(env, "t.html", ctx, &out, &err);
        strbuf_deinit(&out);
    }
    tmpl_env_free(env);
    return 0;
}
