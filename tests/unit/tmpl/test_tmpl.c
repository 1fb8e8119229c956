/*
 * test_tmpl.c - unit tests of the template engine (src/tmpl/): every
 * construct, autoescaping, inheritance, includes, macros and imports,
 * whitespace control as Jinja2 (trim_blocks/lstrip_blocks off), filters and
 * tests including Unicode edge cases, syntax and runtime errors with their
 * positions, undefined values, limits, loading a folder, and concurrent
 * rendering. Expected outputs are Jinja2 3.1's (checked with python3-jinja2,
 * autoescape on, ChainableUndefined); tests/e2e/test_tmpl_jinja_parity.py
 * compares a further set byte for byte against Jinja2 itself.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/core.h"
#include "tmpl/tmpl.h"

/* ---- helpers ---- */

static json_t *ctx_of(const char *json)
{
    if (!json) return NULL;
    json_error_t jerr;
    json_t *ctx = json_loads(json, 0, &jerr);
    if (!ctx) fail_msg("bad test context %s: %s", json, jerr.text);
    return ctx;
}

/* Renders `name` of env with a JSON context; returns the output (caller
 * frees) or NULL with err filled. */
static char *render_env(const tmpl_env *env, const char *name, const char *json,
                        struct echo_err *err)
{
    json_t *ctx = ctx_of(json);
    struct strbuf out;
    strbuf_init(&out);
    echo_err_clear(err);
    int rc = tmpl_render(env, name, ctx, &out, err);
    json_decref(ctx);
    if (rc != 0) {
        strbuf_deinit(&out);
        return NULL;
    }
    return strbuf_steal(&out);
}

/* Compiles src as "t.html" and renders it; fails the test on any error. */
static void check_render(const char *src, const char *json, const char *want)
{
    tmpl_env *env = tmpl_env_new();
    struct echo_err err;
    echo_err_clear(&err);
    if (tmpl_env_add(env, "t.html", src, strlen(src), &err) != 0)
        fail_msg("compile error for %s: %s:%d:%d: %s", src, err.file, err.line, err.col, err.msg);
    char *got = render_env(env, "t.html", json, &err);
    if (!got)
        fail_msg("render error for %s: %s:%d:%d: %s", src, err.file, err.line, err.col, err.msg);
    if (strcmp(got, want) != 0)
        fail_msg("template: %s\n  want: [%s]\n  got:  [%s]", src, want, got);
    free(got);
    tmpl_env_free(env);
}

/* An environment from name/source pairs, NULL-terminated. */
static tmpl_env *env_of(const char *name, ...)
{
    tmpl_env *env = tmpl_env_new();
    va_list ap;
    va_start(ap, name);
    for (const char *n = name; n; n = va_arg(ap, const char *)) {
        const char *src = va_arg(ap, const char *);
        struct echo_err err;
        echo_err_clear(&err);
        if (tmpl_env_add(env, n, src, strlen(src), &err) != 0)
            fail_msg("compile error in %s: %d:%d: %s", n, err.line, err.col, err.msg);
    }
    va_end(ap);
    return env;
}

static void check_env(const tmpl_env *env, const char *name, const char *json, const char *want)
{
    struct echo_err err;
    char *got = render_env(env, name, json, &err);
    if (!got) fail_msg("render error: %s:%d:%d: %s", err.file, err.line, err.col, err.msg);
    if (strcmp(got, want) != 0) fail_msg("want: [%s]\n  got:  [%s]", want, got);
    free(got);
}

/* Expects a syntax error at line:col whose message contains `part`. */
static void check_syntax_error(const char *src, int line, int col, const char *part)
{
    tmpl_env *env = tmpl_env_new();
    struct echo_err err;
    echo_err_clear(&err);
    int rc = tmpl_env_add(env, "bad.html", src, strlen(src), &err);
    if (rc != TMPL_ERR_SYNTAX) fail_msg("expected a syntax error for %s", src);
    if (err.line != line || err.col != col || !strstr(err.msg, part) ||
        strcmp(err.file, "bad.html") != 0)
        fail_msg("for %s want %d:%d '%s', got %s:%d:%d: %s", src, line, col, part, err.file,
                 err.line, err.col, err.msg);
    /* The message shows the source line and a caret. */
    assert_non_null(strchr(err.msg, '\n'));
    assert_non_null(strchr(err.msg, '^'));
    tmpl_env_free(env);
}

/* Expects a runtime error at `line` whose message contains `part`. */
static void check_render_error(const char *src, const char *json, int line, const char *part)
{
    tmpl_env *env = tmpl_env_new();
    struct echo_err err;
    echo_err_clear(&err);
    if (tmpl_env_add(env, "t.html", src, strlen(src), &err) != 0)
        fail_msg("compile error for %s: %d:%d: %s", src, err.line, err.col, err.msg);
    json_t *ctx = ctx_of(json);
    struct strbuf out;
    strbuf_init(&out);
    strbuf_puts(&out, "keep");
    int rc = tmpl_render(env, "t.html", ctx, &out, &err);
    json_decref(ctx);
    if (rc != TMPL_ERR_RENDER)
        fail_msg("expected a render error for %s, got output [%s]", src, strbuf_cstr(&out));
    if ((line && err.line != line) || !strstr(err.msg, part) || strcmp(err.file, "t.html") != 0)
        fail_msg("for %s want line %d '%s', got %s:%d:%d: %s", src, line, part, err.file, err.line,
                 err.col, err.msg);
    /* Nothing of the failed render is left in the buffer. */
    assert_string_equal(strbuf_cstr(&out), "keep");
    strbuf_deinit(&out);
    tmpl_env_free(env);
}

/* ---- output and escaping ---- */

static void test_plain_text(void **state)
{
    (void)state;
    check_render("Hello, world!", NULL, "Hello, world!");
    check_render("", NULL, "");
    check_render("{ not a tag } {x} %} }}", NULL, "{ not a tag } {x} %} }}");
}

static void test_variable_output(void **state)
{
    (void)state;
    check_render("Hello {{ name }}!", "{\"name\": \"Ann\"}", "Hello Ann!");
    check_render("{{name}}{{   name   }}", "{\"name\": \"x\"}", "xx");
}

static void test_autoescape(void **state)
{
    (void)state;
    check_render("{{ s }}", "{\"s\": \"<a href='x'>&\\\"</a>\"}",
                 "&lt;a href=&#39;x&#39;&gt;&amp;&#34;&lt;/a&gt;");
}

static void test_autoescape_attributes(void **state)
{
    (void)state;
    /* Quotes of both kinds are escaped, so a value cannot leave an attribute. */
    check_render("<a title=\"{{ v }}\" data-x='{{ v }}'>", "{\"v\": \"\\\" onclick='x' \"}",
                 "<a title=\"&#34; onclick=&#39;x&#39; \" data-x='&#34; onclick=&#39;x&#39; '>");
}

static void test_safe_not_escaped(void **state)
{
    (void)state;
    check_render("{{ s|safe }}|{{ s|e }}|{{ s|e|e }}", "{\"s\": \"<b>\"}",
                 "<b>|&lt;b&gt;|&lt;b&gt;");
}

static void test_markup_from_macro_not_escaped(void **state)
{
    (void)state;
    check_render(
        "{% macro m(x) %}<i>{{ x }}</i>{% endmacro %}{{ m('<') }}{% set v = m('&') %}{{ v }}", NULL,
        "<i>&lt;</i><i>&amp;</i>");
}

static void test_python_values_output(void **state)
{
    (void)state;
    check_render("{{ none }} {{ true }} {{ false }} {{ n }}", "{\"n\": null}",
                 "None True False None");
    check_render("{{ [1, 'a', none, true] }}", NULL, "[1, &#39;a&#39;, None, True]");
    check_render("{{ d }}", "{\"d\": {\"a\": 1, \"b\": [2]}}",
                 "{&#39;a&#39;: 1, &#39;b&#39;: [2]}");
    check_render("{{ ('a',) }} {{ () }} {{ (1, 2) }}", NULL, "(&#39;a&#39;,) () (1, 2)");
}

static void test_float_repr(void **state)
{
    (void)state;
    check_render(
        "{{ 0.1 + 0.2 }} {{ 1e16 }} {{ 1e15 }} {{ 1e-5 }} {{ 0.0001 }} {{ 3.0 }} {{ -0.0 }}", NULL,
        "0.30000000000000004 1e+16 1000000000000000.0 1e-05 0.0001 3.0 -0.0");
    check_render("{{ x }} {{ y }}", "{\"x\": 1e100, \"y\": 2.5}", "1e+100 2.5");
}

static void test_undefined_is_empty(void **state)
{
    (void)state;
    check_render("[{{ nothing }}]", NULL, "[]");
    check_render("[{{ nothing.x.y }}{{ nothing['a'][0] }}{{ d.missing.deeper }}]", "{\"d\": {}}",
                 "[]");
    check_render("{{ nothing|upper }}{{ nothing|length }}{% for x in nothing %}x{% endfor %}", NULL,
                 "0");
}

static void test_is_defined(void **state)
{
    (void)state;
    check_render("{{ a is defined }} {{ b is defined }} {{ b is not defined }} {{ b is undefined }}"
                 " {{ a.x is defined }}",
                 "{\"a\": 1}", "True False True True False");
    check_render("{% if user is defined and user.name %}{{ user.name }}{% else %}anon{% endif %}",
                 NULL, "anon");
}

static void test_undefined_arithmetic_error(void **state)
{
    (void)state;
    check_render_error("ok\n{{ missing + 1 }}", NULL, 2, "'missing' is undefined");
    check_render_error("{{ missing < 3 }}", NULL, 1, "'missing' is undefined");
    check_render_error("{{ missing() }}", NULL, 1, "'missing' is undefined");
}

/* ---- expressions ---- */

static void test_string_literals(void **state)
{
    (void)state;
    check_render(
        "{{ 'it\\'s' }}|{{ \"say \\\"hi\\\"\" }}|{{ 'a' 'b' }}|{{ '\\u00e9\\x41' }}|{{ '\\d' }}",
        NULL, "it&#39;s|say &#34;hi&#34;|ab|éA|\\d");
    check_render("{{ 'a\\nb'|length }} {{ '\\t'|length }}", NULL, "3 1");
}

static void test_number_literals(void **state)
{
    (void)state;
    check_render("{{ 1_000 }} {{ 0x1f }} {{ 0b101 }} {{ 0o17 }} {{ 1.5e3 }} {{ 2.5 }} {{ 1E2 }}",
                 NULL, "1000 31 5 15 1500.0 2.5 100.0");
    check_syntax_error("{{ 99999999999999999999 }}", 1, 4, "too large");
}

static void test_list_dict_literals(void **state)
{
    (void)state;
    check_render(
        "{{ [1, [2, 3]][1][0] }} {{ {'a': {'b': 7}}.a.b }} {{ {'k': 1}['k'] }} {{ [] }} {{ {} }}",
        NULL, "2 7 1 [] {}");
    check_render("{{ [1, 2,] }} {{ {'a': 1,} }}", NULL, "[1, 2] {&#39;a&#39;: 1}");
}

static void test_attribute_and_index(void **state)
{
    (void)state;
    const char *ctx =
        "{\"u\": {\"name\": \"Ann\", \"tags\": [\"x\", \"y\"]}, \"xs\": [10, 20, 30]}";
    check_render("{{ u.name }} {{ u['name'] }} {{ u.tags[1] }} {{ xs[0] }} {{ xs[-1] }} {{ xs.1 }}",
                 ctx, "Ann Ann y 10 30 20");
    check_render("[{{ xs[3] }}{{ xs[-4] }}{{ u.none }}{{ xs['a'] }}]", ctx, "[]");
    check_render("{{ 'héllo'[1] }}{{ 'abc'[-1] }}", NULL, "éc");
}

static void test_slices(void **state)
{
    (void)state;
    check_render(
        "{{ xs[1:] }} {{ xs[:2] }} {{ xs[::-1] }} {{ xs[::2] }} {{ xs[-2:] }} {{ xs[5:] }}",
        "{\"xs\": [1, 2, 3]}", "[2, 3] [1, 2] [3, 2, 1] [1, 3] [2, 3] []");
    check_render("{{ 'héllo'[1:3] }} {{ 'abc'[::-1] }} {{ 'abc'[-10:2] }}", NULL, "él cba ab");
    check_render_error("{{ 'abc'[::0] }}", NULL, 1, "slice step cannot be zero");
}

static void test_arithmetic(void **state)
{
    (void)state;
    check_render(
        "{{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ 7 / 2 }} {{ 7 // 2 }} {{ 7 % 3 }} {{ 2 ** 10 }}",
        NULL, "7 9 3.5 3 1 1024");
    check_render("{{ 2 ** 3 ** 2 }} {{ -2 ** 2 }} {{ 1 + 2.0 }} {{ true + 1 }} {{ 2 ** -1 }}", NULL,
                 "64 4 3.0 2 0.5");
}

static void test_python_division(void **state)
{
    (void)state;
    check_render(
        "{{ -7 // 2 }} {{ -7 % 3 }} {{ 7 % -3 }} {{ -7.5 % 2 }} {{ 7.0 // 2 }} {{ -1 // 3 }}", NULL,
        "-4 2 -2 0.5 3.0 -1");
}

static void test_division_by_zero(void **state)
{
    (void)state;
    check_render_error("a\nb\n{{ 1 / 0 }}", NULL, 3, "division by zero");
    check_render_error("{{ 1 // 0 }}", NULL, 1, "by zero");
    check_render_error("{{ 1.5 % 0 }}", NULL, 1, "by zero");
}

static void test_integer_overflow(void **state)
{
    (void)state;
    check_render("{{ 9223372036854775807 }}", NULL, "9223372036854775807");
    check_render_error("{{ 9223372036854775807 + 1 }}", NULL, 1, "integer overflow");
    check_render_error("{{ 10 ** 30 }}", NULL, 1, "integer overflow");
}

static void test_concat_tilde(void **state)
{
    (void)state;
    check_render("{{ 'a' ~ 1 ~ none ~ true ~ 1.0 }}", NULL, "a1NoneTrue1.0");
    check_render("{{ s ~ '!' }}|{{ m ~ '<' }}", "{\"s\": \"<\"}", "&lt;!|&lt;");
    check_render("{% set m = '<i>'|safe %}{{ m ~ x }}", "{\"x\": \"<\"}", "<i>&lt;");
}

static void test_string_plus_repeat(void **state)
{
    (void)state;
    check_render("{{ 'ab' + 'cd' }} {{ 'ab' * 3 }} {{ 2 * 'x' }} {{ [1] * 3 }} {{ [1] + [2] }}",
                 NULL, "abcd ababab xx [1, 1, 1] [1, 2]");
    check_render_error("{{ 'a' + 1 }}", NULL, 1,
                       "unsupported operand type(s) for +: 'str' and 'int'");
}

static void test_comparisons(void **state)
{
    (void)state;
    check_render(
        "{{ 1 < 2 < 3 }} {{ 1 < 3 < 2 }} {{ 1 == 1.0 }} {{ 'a' != 'b' }} {{ 'abc' < 'abd' }}"
        " {{ [1, 2] < [1, 3] }} {{ 2 >= 2 }} {{ none == none }}",
        NULL, "True False True True True True True True");
    check_render_error("{{ 1 < 'a' }}", NULL, 1,
                       "'<' not supported between instances of 'int' and 'str'");
}

static void test_and_or_not(void **state)
{
    (void)state;
    check_render("{{ 0 or 'x' }} {{ 'a' and 'b' }} {{ '' and 'b' }} {{ not 0 }} {{ not 'a' }}"
                 " {{ none or none }} {{ not x and 1 }}",
                 NULL, "x b  True False None 1");
    /* Short-circuit: the right side is not evaluated. */
    check_render("{{ true or (1 / 0) }} {{ false and (1 / 0) }}", NULL, "True False");
}

static void test_in_operator(void **state)
{
    (void)state;
    check_render(
        "{{ 2 in xs }} {{ 5 not in xs }} {{ 'a' in d }} {{ 'z' in d }} {{ 'ell' in 'hello' }}"
        " {{ '' in 'x' }} {{ 'a' in nothing }}",
        "{\"xs\": [1, 2], \"d\": {\"a\": 1}}", "True True True False True True False");
    check_render_error("{{ 1 in 'abc' }}", NULL, 1, "requires string as left operand");
    check_render_error("{{ 'a' in none }}", NULL, 1, "is not iterable");
}

static void test_conditional_expression(void **state)
{
    (void)state;
    check_render("{{ 'y' if t else 'n' }} {{ 'y' if f else 'n' }} [{{ 'y' if f }}] {{ 1 if f else "
                 "2 if t else 3 }}",
                 "{\"t\": true, \"f\": false}", "y n [] 2");
}

/* ---- statements ---- */

static void test_if_elif_else(void **state)
{
    (void)state;
    const char *src =
        "{% if n > 10 %}big{% elif n > 5 %}mid{% elif n %}small{% else %}zero{% endif %}";
    check_render(src, "{\"n\": 20}", "big");
    check_render(src, "{\"n\": 7}", "mid");
    check_render(src, "{\"n\": 1}", "small");
    check_render(src, "{\"n\": 0}", "zero");
    check_render("{% if [] %}a{% endif %}{% if {} %}b{% endif %}{% if '' %}c{% endif %}{% if 0.0 "
                 "%}d{% endif %}",
                 NULL, "");
}

static void test_for_basic(void **state)
{
    (void)state;
    check_render("{% for x in xs %}[{{ x }}]{% endfor %}", "{\"xs\": [\"a\", \"b\"]}", "[a][b]");
    check_render("{% for x in range(3) %}{{ x }}{% endfor %}{% for x in range(1, 8, 3) %}{{ x }}{% "
                 "endfor %}",
                 NULL, "012147");
}

static void test_for_loop_variables(void **state)
{
    (void)state;
    check_render("{% for x in 'abc' %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ "
                 "loop.revindex0 }}"
                 "{{ loop.first|int }}{{ loop.last|int }}{{ loop.length }};{% endfor %}",
                 NULL, "1032103;2121003;3210013;");
}

static void test_for_else(void **state)
{
    (void)state;
    check_render("{% for x in xs %}{{ x }}{% else %}empty{% endfor %}", "{\"xs\": []}", "empty");
    check_render("{% for x in missing %}{{ x }}{% else %}none{% endfor %}", NULL, "none");
    check_render("{% for x in [1] %}{{ x }}{% else %}empty{% endfor %}", NULL, "1");
}

static void test_for_dict_items(void **state)
{
    (void)state;
    check_render("{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}|{% for k in d %}{{ k "
                 "}}{% endfor %}"
                 "|{{ d.keys()|list }}|{{ d.values()|list }}|{{ d.get('z', 'dflt') }}",
                 "{\"d\": {\"b\": 1, \"a\": 2}}",
                 "b=1;a=2;|ba|[&#39;b&#39;, &#39;a&#39;]|[1, 2]|dflt");
}

static void test_for_pairs(void **state)
{
    (void)state;
    check_render("{% for cat, msg in flashes %}<p class=\"{{ cat }}\">{{ msg }}</p>{% endfor %}",
                 "{\"flashes\": [[\"error\", \"Bad <input>\"], [\"info\", \"ok\"]]}",
                 "<p class=\"error\">Bad &lt;input&gt;</p><p class=\"info\">ok</p>");
    check_render_error("{% for a, b in [[1, 2], [3]] %}{% endfor %}", NULL, 1,
                       "not enough values to unpack (expected 2, got 1)");
    check_render_error("{% for a, b in [[1, 2, 3]] %}{% endfor %}", NULL, 1,
                       "too many values to unpack");
}

static void test_for_filter_clause(void **state)
{
    (void)state;
    check_render("{% for u in users if u.active %}{{ u.name }}{{ loop.index }}/{{ loop.length }} "
                 "{% endfor %}",
                 "{\"users\": [{\"name\": \"a\", \"active\": true}, {\"name\": \"b\"}, {\"name\": "
                 "\"c\", \"active\": 1}]}",
                 "a1/2 c2/2 ");
}

static void test_for_strings_and_nested(void **state)
{
    (void)state;
    check_render("{% for c in 'hé' %}{{ c }}.{% endfor %}", NULL, "h.é.");
    check_render(
        "{% for row in m %}{% for x in row %}{{ loop.index }}{{ x }}{% endfor %};{% endfor %}",
        "{\"m\": [[1, 2], [3]]}", "1122;13;");
}

static void test_loop_cycle_prev_next(void **state)
{
    (void)state;
    check_render("{% for x in [1, 2, 3] %}{{ loop.cycle('odd', 'even') }}:{{ loop.previtem }}-{{ "
                 "loop.nextitem }} {% endfor %}",
                 NULL, "odd:-2 even:1-3 odd:2- ");
}

static void test_set_does_not_leak_from_for(void **state)
{
    (void)state;
    check_render(
        "{% set x = 0 %}{% for i in [1, 2] %}{{ x }}{% set x = x + i %}{{ x }}{% endfor %}|{{ x }}",
        NULL, "0102|0");
    check_render("{% for i in [1, 2] %}[{{ y }}]{% set y = i %}{% endfor %}[{{ y }}]", NULL,
                 "[][][]");
    check_render("{% for i in [1] %}{% endfor %}[{{ i }}][{{ loop }}]", NULL, "[][]");
}

static void test_set_in_if_leaks(void **state)
{
    (void)state;
    check_render("{% if true %}{% set x = 'in' %}{% endif %}{{ x }}", NULL, "in");
    check_render("{% set x = 1 %}{% set x = x + 1 %}{{ x }}", NULL, "2");
}

static void test_set_tuple_and_block(void **state)
{
    (void)state;
    check_render("{% set a, b = 1, 2 %}{{ a }}{{ b }}{% set c, d = 'xy' %}{{ c }}{{ d }}", NULL,
                 "12xy");
    check_render("{% set v %}<b>{{ n }}</b>{% endset %}{{ v }}|{{ v|length }}", "{\"n\": \"<\"}",
                 "<b>&lt;</b>|11");
    check_render("{% set v | upper %}abc{% endset %}{{ v }}", NULL, "ABC");
    check_render_error("{% set a, b = 1 %}", NULL, 1, "cannot unpack non-iterable int object");
}

static void test_namespace(void **state)
{
    (void)state;
    check_render(
        "{% set ns = namespace(total=0, found=false) %}{% for x in [1, 2, 3] %}"
        "{% set ns.total = ns.total + x %}{% if x == 2 %}{% set ns.found = true %}{% endif %}"
        "{% endfor %}{{ ns.total }} {{ ns.found }}",
        NULL, "6 True");
    check_render_error("{% set d = {} %}{% set d.x = 1 %}", NULL, 1, "non-namespace");
}

static void test_with(void **state)
{
    (void)state;
    check_render("{% set a = 5 %}{% with a = 1, b = a %}{{ a }}{{ b }}{% set c = 3 %}{% endwith "
                 "%}{{ a }}[{{ c }}]",
                 NULL, "155[]");
}

static void test_filter_block(void **state)
{
    (void)state;
    check_render("{% filter upper %}hi {{ n }}{% endfilter %}", "{\"n\": \"<x>\"}", "HI &LT;X&GT;");
    check_render("{% filter replace('a', 'b')|upper %}aaa{% endfilter %}", NULL, "BBB");
}

static void test_autoescape_block(void **state)
{
    (void)state;
    check_render("{% autoescape false %}{{ s }}{% endautoescape %}{{ s }}{% autoescape true %}{{ s "
                 "}}{% endautoescape %}",
                 "{\"s\": \"<b>\"}", "<b>&lt;b&gt;&lt;b&gt;");
}

static void test_raw(void **state)
{
    (void)state;
    check_render("{% raw %}{{ x }}{% if %}{% endraw %}", NULL, "{{ x }}{% if %}");
    check_render("a {%- raw -%}  {{ b }}  {%- endraw -%} c", NULL, "a{{ b }}c");
    check_syntax_error("{% raw %}never closed", 1, 1, "missing end of raw");
}

static void test_comments(void **state)
{
    (void)state;
    check_render("a{# a comment {{ x }} {% if %} #}b{#\nmulti\nline\n#}c", NULL, "abc");
    check_syntax_error("x {# not closed", 1, 3, "missing end of comment");
}

/* ---- whitespace control (Jinja defaults: trim_blocks and lstrip_blocks off) ---- */

static void test_ws_block_dash(void **state)
{
    (void)state;
    check_render("  {%- if true -%}  x  {%- endif -%}  y", NULL, "xy");
    check_render("<ul>\n  {%- for x in [1, 2] %}\n  <li>{{ x }}</li>\n  {%- endfor %}\n</ul>", NULL,
                 "<ul>\n  <li>1</li>\n  <li>2</li>\n</ul>");
}

static void test_ws_var_dash(void **state)
{
    (void)state;
    check_render("a\n  {{- 1 -}}\n  b", NULL, "a1b");
    check_render("{{ 1 }} {{- 2 }} {{ 3 -}} {{ 4 }}", NULL, "12 34");
    check_render("{{- 1 }}", NULL, "1");
}

static void test_ws_comment_dash(void **state)
{
    (void)state;
    check_render("a  {#- c -#}  b", NULL, "ab");
    check_render("a  {# c #}  b", NULL, "a    b");
}

static void test_ws_defaults_keep_newlines(void **state)
{
    (void)state;
    /* Without "-" every newline around tags stays (trim_blocks off). */
    check_render("line1\n{% if true %}\nline2\n{% endif %}\nline3", NULL,
                 "line1\n\nline2\n\nline3");
    check_render("  {% if true %}x{% endif %}", NULL, "  x");
    check_render("{%+ if true %}x{% endif +%}", NULL, "x");
}

static void test_ws_trailing_newline_and_crlf(void **state)
{
    (void)state;
    /* keep_trailing_newline is off: one final newline is dropped. */
    check_render("abc\n", NULL, "abc");
    check_render("abc\n\n", NULL, "abc\n");
    check_render("a\r\nb\rc\r\n", NULL, "a\nb\nc");
    /* Unicode whitespace is whitespace for "-" too. */
    check_render("a\xc2\xa0\xe3\x80\x80{{- 1 }}", NULL, "a1");
}

/* ---- inheritance and include ---- */

static const char *BASE = "<title>{% block title %}Site{% endblock %}</title>\n"
                          "<nav>{% block nav %}{{ user }}{% endblock %}</nav>\n"
                          "<main>{% block content %}{% endblock %}</main>\n"
                          "<footer>{% block footer %}(c){% endblock %}</footer>";

static void test_extends_basic(void **state)
{
    (void)state;
    tmpl_env *env = env_of(
        "base.html", BASE, "page.html",
        "{% extends \"base.html\" %}{% block content %}Hello {{ user }}{% endblock %}", NULL);
    check_env(env, "page.html", "{\"user\": \"<u>\"}",
              "<title>Site</title>\n<nav>&lt;u&gt;</nav>\n<main>Hello &lt;u&gt;</main>\n"
              "<footer>(c)</footer>");
    tmpl_env_free(env);
}

static void test_extends_three_levels_super(void **state)
{
    (void)state;
    tmpl_env *env =
        env_of("base.html", BASE, "layout/mid.html",
               "{% extends 'base.html' %}{% block title %}Mid - {{ super() }}{% endblock %}"
               "{% block content %}<div>{% block main %}mid{% endblock %}</div>{% endblock %}",
               "leaf.html",
               "{% extends 'layout/mid.html' %}{% block title %}Leaf | {{ super() }}{% endblock %}"
               "{% block main %}{{ super() }}+leaf{% endblock %}{% block footer %}{{ super() }}{{ "
               "super() }}{% endblock %}",
               NULL);
    check_env(env, "leaf.html", "{\"user\": \"u\"}",
              "<title>Leaf | Mid - Site</title>\n<nav>u</nav>\n<main><div>mid+leaf</div></main>\n"
              "<footer>(c)(c)</footer>");
    tmpl_env_free(env);
}

static void test_extends_nested_blocks(void **state)
{
    (void)state;
    tmpl_env *env =
        env_of("b.html", "[{% block a %}A{% block inner %}i{% endblock %}{% endblock %}]", "c.html",
               "{% extends 'b.html' %}{% block inner %}I{% endblock %}", "d.html",
               "{% extends 'b.html' %}{% block a %}<{{ super() }}>{% endblock %}", NULL);
    check_env(env, "c.html", NULL, "[AI]");
    check_env(env, "d.html", NULL, "[<Ai>]");
    tmpl_env_free(env);
}

static void test_extends_ignores_output_outside_blocks(void **state)
{
    (void)state;
    tmpl_env *env =
        env_of("b.html", "B[{% block a %}ba{% endblock %}]{{ v }}{% set w = 2 %}", "c.html",
               "pre{% extends 'b.html' %}X{% if true %}Y{% endif %}{% for i in [1] %}Z{% endfor %}"
               "{% set v = 5 %}{% block a %}ca{{ w }}{{ super() }}{% endblock %}",
               NULL);
    /* Text before extends is kept; after it only blocks and sets matter;
     * a child's top-level set is seen by the parent. */
    check_env(env, "c.html", NULL, "preB[caba]5");
    tmpl_env_free(env);
}

static void test_extends_dynamic_and_errors(void **state)
{
    (void)state;
    tmpl_env *env = env_of(
        "b.html", "{% block a %}ba{% endblock %}", "c.html",
        "{% if x %}{% extends 'b.html' %}{% endif %}X{% block a %}ca{% endblock %}", "loop1.html",
        "{% extends 'loop2.html' %}", "loop2.html", "{% extends 'loop1.html' %}", "twice.html",
        "{% extends 'b.html' %}{% extends 'b.html' %}", "var.html",
        "{% extends layout %}{% block a %}v{% endblock %}", NULL);
    check_env(env, "c.html", "{\"x\": 1}", "ca");
    check_env(env, "c.html", "{\"x\": 0}", "Xca");
    check_env(env, "var.html", "{\"layout\": \"b.html\"}", "v");
    struct echo_err err;
    char *out = render_env(env, "loop1.html", NULL, &err);
    assert_null(out);
    assert_non_null(strstr(err.msg, "cycle"));
    out = render_env(env, "twice.html", NULL, &err);
    assert_null(out);
    assert_non_null(strstr(err.msg, "extended multiple times"));
    out = render_env(env, "var.html", "{\"layout\": \"nope.html\"}", &err);
    assert_null(out);
    assert_non_null(strstr(err.msg, "template 'nope.html' not found"));
    assert_string_equal(err.file, "var.html");
    assert_int_equal(err.line, 1);
    tmpl_env_free(env);
}

static void test_self_block_reference(void **state)
{
    (void)state;
    tmpl_env *env = env_of(
        "b.html",
        "<title>{% block title %}{% endblock %}</title><h1>{{ self.title() }}</h1>"
        "[{{ self.nope }}]",
        "c.html", "{% extends 'b.html' %}{% block title %}Home & {{ n }}{% endblock %}", NULL);
    check_env(env, "c.html", "{\"n\": \"<x>\"}",
              "<title>Home & &lt;x&gt;</title><h1>Home & &lt;x&gt;</h1>[]");
    tmpl_env_free(env);
}

static void test_block_scoped(void **state)
{
    (void)state;
    check_render("{% for i in [1, 2] %}{% block a %}[{{ i }}]{% endblock %}{% endfor %}", NULL,
                 "[][]");
    check_render("{% for i in [1, 2] %}{% block a scoped %}[{{ i }}]{% endblock %}{% endfor %}",
                 NULL, "[1][2]");
    check_syntax_error("{% block a %}{% endblock %}\n{% block a %}{% endblock %}", 2, 10,
                       "block 'a' defined twice");
    check_syntax_error("{% block a %}{% endblock b %}", 1, 26, "does not match");
}

static void test_include(void **state)
{
    (void)state;
    tmpl_env *env = env_of(
        "part.html", "<p>{{ i }}{{ t }}{% set z = 1 %}</p>", "main.html",
        "{% set t = 'T' %}{% for i in [1, 2] %}{% include 'part.html' %}{% endfor %}[{{ z }}]",
        "nocontext.html", "{% set t = 'T' %}{% include 'part.html' without context %}", NULL);
    check_env(env, "main.html", NULL, "<p>1T</p><p>2T</p>[]");
    check_env(env, "nocontext.html", NULL, "<p></p>");
    tmpl_env_free(env);
}

static void test_include_missing(void **state)
{
    (void)state;
    tmpl_env *env =
        env_of("p.html", "P", "a.html",
               "{% include 'x.html' ignore missing %}|{% include ['x.html', 'p.html'] %}", "b.html",
               "line\n{% include name %}", NULL);
    check_env(env, "a.html", NULL, "|P");
    struct echo_err err;
    char *out = render_env(env, "b.html", "{\"name\": \"gone.html\"}", &err);
    assert_null(out);
    assert_string_equal(err.file, "b.html");
    assert_int_equal(err.line, 2);
    assert_non_null(strstr(err.msg, "'gone.html' not found"));
    out = render_env(env, "b.html", "{\"name\": 5}", &err);
    assert_null(out);
    assert_non_null(strstr(err.msg, "must be a string"));
    tmpl_env_free(env);
}

static void test_include_recursion_limit(void **state)
{
    (void)state;
    tmpl_env *env = env_of(
        "r.html", "x{% include 'r.html' %}", "ok.html",
        "{% if n > 0 %}{{ n }}{% with n = n - 1 %}{% include 'ok.html' %}{% endwith %}{% endif %}",
        NULL);
    struct echo_err err;
    char *out = render_env(env, "r.html", NULL, &err);
    assert_null(out);
    assert_non_null(strstr(err.msg, "maximum recursion depth"));
    /* Bounded recursion through include works. */
    check_env(env, "ok.html", "{\"n\": 5}", "54321");
    tmpl_env_free(env);
}

/* ---- macros ---- */

static void test_macro_defaults_and_kwargs(void **state)
{
    (void)state;
    check_render("{% macro f(a, b='B', c=none) %}[{{ a }}|{{ b }}|{{ c }}]{% endmacro %}"
                 "{{ f(1) }}{{ f(1, 2) }}{{ f(1, c=3) }}{{ f(b=5) }}{{ f() }}",
                 NULL, "[1|B|None][1|2|None][1|B|3][|5|None][|B|None]");
    check_render("{% macro f(a, b=a ~ '!') %}{{ b }}{% endmacro %}{{ f('x') }}", NULL, "x!");
}

static void test_macro_varargs_kwargs(void **state)
{
    (void)state;
    check_render(
        "{% macro f(a) %}{{ a }}{{ varargs }}{{ kwargs }}{% endmacro %}{{ f(1, 2, 3, x=4) }}", NULL,
        "1(2, 3){&#39;x&#39;: 4}");
    check_render_error("{% macro f(a) %}{% endmacro %}{{ f(1, 2) }}", NULL, 1,
                       "macro 'f' takes not more than 1 argument(s)");
    check_render_error("{% macro f(a) %}{% endmacro %}\n{{ f(b=2) }}", NULL, 2,
                       "macro 'f' takes no keyword argument 'b'");
    check_syntax_error("{% macro f(a=1, b) %}{% endmacro %}", 1, 17,
                       "non-default argument follows default argument");
}

static void test_macro_recursion(void **state)
{
    (void)state;
    check_render("{% macro fact(n) %}{% if n <= 1 %}1{% else %}{{ n * fact(n - 1)|int }}{% endif "
                 "%}{% endmacro %}{{ fact(5) }}",
                 NULL, "120");
    check_render_error("{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}", NULL, 1,
                       "maximum recursion depth");
}

static void test_call_block(void **state)
{
    (void)state;
    check_render("{% macro box(title) %}<div><h2>{{ title }}</h2>{{ caller() }}</div>{% endmacro %}"
                 "{% call box('T') %}body {{ x }}{% endcall %}",
                 "{\"x\": \"<\"}", "<div><h2>T</h2>body &lt;</div>");
    check_render(
        "{% macro each(xs) %}{% for x in xs %}{{ caller(x, loop.index) }}{% endfor %}{% endmacro %}"
        "{% call(item, i) each(['a', 'b']) %}{{ i }}={{ item }};{% endcall %}",
        NULL, "1=a;2=b;");
}

static void test_import_as(void **state)
{
    (void)state;
    tmpl_env *env = env_of("forms.html",
                           "{% macro field(name, label='', type='text', value='') -%}\n"
                           "<label>{{ label or name|title }}</label><input type=\"{{ type }}\" "
                           "name=\"{{ name }}\" value=\"{{ value }}\""
                           "{% for k, v in kwargs.items() %} {{ k }}=\"{{ v }}\"{% endfor %}>\n"
                           "{%- endmacro %}{% set version = 3 %}{% set _private = 1 %}",
                           "page.html",
                           "{% import 'forms.html' as forms %}{{ forms.field('user_name', "
                           "value=user, required='required') }}"
                           "|{{ forms.version }}|{{ forms._private }}",
                           NULL);
    check_env(
        env, "page.html", "{\"user\": \"<ann>\"}",
        "<label>User_name</label><input type=\"text\" name=\"user_name\" value=\"&lt;ann&gt;\""
        " required=\"required\">|3|");
    tmpl_env_free(env);
}

static void test_from_import(void **state)
{
    (void)state;
    tmpl_env *env =
        env_of("m.html", "{% macro a() %}A{% endmacro %}{% macro b(x) %}B{{ x }}{% endmacro %}",
               "p.html", "{% from 'm.html' import a, b as bee %}{{ a() }}{{ bee(1) }}[{{ b }}]",
               "q.html", "{% from 'm.html' import missing %}[{{ missing }}]", NULL);
    check_env(env, "p.html", NULL, "AB1[]");
    check_env(env, "q.html", NULL, "[]");
    tmpl_env_free(env);
    check_syntax_error("{% from 'm.html' import _x %}", 1, 25, "underscore");
}

static void test_import_context(void **state)
{
    (void)state;
    tmpl_env *env = env_of("m.html", "{% macro f() %}[{{ g }}]{% endmacro %}", "a.html",
                           "{% import 'm.html' as m %}{{ m.f() }}", "b.html",
                           "{% import 'm.html' as m with context %}{{ m.f() }}", NULL);
    /* Imports do not see the render context unless asked to. */
    check_env(env, "a.html", "{\"g\": 7}", "[]");
    check_env(env, "b.html", "{\"g\": 7}", "[7]");
    tmpl_env_free(env);
}

/* ---- filters ---- */

static void test_filter_default(void **state)
{
    (void)state;
    check_render("{{ x|default('d') }}|{{ ''|default('e') }}|{{ ''|default('e', true) }}|{{ "
                 "none|d('n', true) }}"
                 "|{{ 0|d(5, boolean=true) }}|{{ x|default }}|{{ x.y|default('deep') }}",
                 NULL, "d||e|n|5||deep");
}

static void test_filter_length_unicode(void **state)
{
    (void)state;
    check_render("{{ s|length }} {{ s|count }} {{ xs|length }} {{ d|length }} {{ ''|length }}",
                 "{\"s\": \"héllo wörld 😀\", \"xs\": [1, 2], \"d\": {\"a\": 1}}", "13 13 2 1 0");
    check_render_error("{{ 5|length }}", NULL, 1, "object of type 'int' has no len()");
}

static void test_filter_case_unicode(void **state)
{
    (void)state;
    check_render("{{ 'straße'|upper }} {{ 'ÀÉÎ'|lower }} {{ 'ΟΔΟΣ'|lower }} {{ 'İ'|lower|length }}",
                 NULL, "STRASSE àéî οδος 2");
    check_render("{{ 'hello wörld-foo (bar) [baz]x'|title }} {{ 'hELLO wORLD'|capitalize }} {{ "
                 "'ǆx'|capitalize }}"
                 " {{ 'ßa'|capitalize }}",
                 NULL, "Hello Wörld-Foo (Bar) [Baz]x Hello world ǅx Ssa");
    /* Markup stays markup through upper, but title returns a plain string. */
    check_render("{{ '<b>'|safe|upper }} {{ '<b>'|safe|title }}", NULL, "<B> &lt;B&gt;");
}

static void test_filter_trim(void **state)
{
    (void)state;
    check_render("[{{ '  x  '|trim }}][{{ s|trim }}][{{ 'xxhixx'|trim('x') }}]",
                 "{\"s\": \"\\u00a0\\t y \\n\\u3000\"}", "[x][y][hi]");
}

static void test_filter_join(void **state)
{
    (void)state;
    const char *ctx = "{\"xs\": [\"<a>\", \"b\"], \"users\": [{\"n\": \"x\"}, {\"n\": \"y\"}]}";
    check_render("{{ xs|join(', ') }}|{{ [1, 2]|join }}|{{ users|join('-', attribute='n') }}", ctx,
                 "&lt;a&gt;, b|12|x-y");
    /* A markup item or separator makes the rest escaped and the result markup. */
    check_render("{{ [x, m]|join('&') }}", "{\"x\": \"<\", \"m\": \"<i>\"}", "&lt;&amp;&lt;i&gt;");
}

static void test_filter_join_markup(void **state)
{
    (void)state;
    check_render("{% set m = '<i>'|safe %}{{ [x, m]|join('&') }}|{{ [x, 'y']|join('<br>'|safe) }}",
                 "{\"x\": \"<\"}", "&lt;&amp;<i>|&lt;<br>y");
}

static void test_filter_replace(void **state)
{
    (void)state;
    check_render("{{ 'a-b-c'|replace('-', '+') }}|{{ 'aaa'|replace('a', 'b', 2) }}|{{ "
                 "'ab'|replace('', '.') }}"
                 "|{{ s|replace('&', 'and') }}",
                 "{\"s\": \"<x & y>\"}", "a+b+c|bba|.a.b.|&lt;x and y&gt;");
    check_render("{{ s|replace('x', '<b>'|safe) }}", "{\"s\": \"<x>\"}", "&lt;<b>&gt;");
}

static void test_filter_truncate(void **state)
{
    (void)state;
    check_render("{{ 'hello world foo bar'|truncate(9) }}|{{ 'hello'|truncate(9) }}|{{ "
                 "s|truncate(7, true) }}"
                 "|{{ s|truncate(12, false, '…') }}|{{ s|truncate(10, leeway=0) }}",
                 "{\"s\": \"Grüße aus Köln am Rhein\"}",
                 "hello...|hello|Grüß...|Grüße aus…|Grüße...");
    check_render_error("{{ 'abcdef'|truncate(2) }}", NULL, 1, "expected length >= 3");
}

static void test_filter_int_float(void **state)
{
    (void)state;
    check_render(
        "{{ '42'|int + 1 }} {{ 'x'|int }} {{ 'x'|int(7) }} {{ '4.9'|int }} {{ 3.9|int }} {{ "
        "-3.9|int }}"
        " {{ ' 12 '|int }} {{ '0x1A'|int(0, 16) }} {{ '1_000'|int }} {{ true|int }} {{ none|int }}",
        NULL, "43 0 7 4 3 -3 12 26 1000 1 0");
    check_render("{{ '1.5'|float }} {{ 'x'|float }} {{ 3|float }} {{ '1e3'|float }} {{ 'nan'|float "
                 "}} {{ 'x'|float(1.5) }}",
                 NULL, "1.5 0.0 3.0 1000.0 nan 1.5");
    check_render_error("{{ missing|int }}", NULL, 1, "'missing' is undefined");
}

static void test_filter_round(void **state)
{
    (void)state;
    check_render(
        "{{ 2.5|round }} {{ 3.5|round }} {{ 3.14159|round(2) }} {{ 2.675|round(2) }} {{ 3|round }}"
        " {{ 2.1|round(0, 'ceil') }} {{ 2.9|round(0, 'floor') }} {{ 1250|round(-2) }} {{ "
        "-2.5|round }}",
        NULL, "2.0 4.0 3.14 2.67 3 3.0 2.0 1200 -2.0");
    check_render_error("{{ 'x'|round }}", NULL, 1, "round");
    check_render_error("{{ 1.5|round(0, 'up') }}", NULL, 1, "method must be common, ceil or floor");
}

static void test_filter_tojson(void **state)
{
    (void)state;
    check_render("{{ v|tojson }}",
                 "{\"v\": {\"b\": [1, 2.5, \"é😀\", null, true], \"a\": \"</script><!-- '&\"}}",
                 "{\"a\": \"\\u003c/script\\u003e\\u003c!-- \\u0027\\u0026\", \"b\": [1, 2.5, "
                 "\"\\u00e9\\ud83d\\ude00\", null, true]}");
    check_render("<script>var x = {{ s|tojson }};</script>", "{\"s\": \"</script>\"}",
                 "<script>var x = \"\\u003c/script\\u003e\";</script>");
    check_render("{{ {'b': [], 'a': {'c': 1}}|tojson(indent=2) }}", NULL,
                 "{\n  \"a\": {\n    \"c\": 1\n  },\n  \"b\": []\n}");
    check_render_error("{{ missing|tojson }}", NULL, 1, "not JSON serializable");
}

static void test_filter_first_last_list(void **state)
{
    (void)state;
    check_render(
        "{{ xs|first }}{{ xs|last }}{{ 'abc'|first }}{{ 'abc'|last }}[{{ []|first }}]{{ d|first }}"
        "{{ 'ab'|list }}{{ d|list }}",
        "{\"xs\": [1, 2, 3], \"d\": {\"k\": 1}}", "13ac[]k[&#39;a&#39;, &#39;b&#39;][&#39;k&#39;]");
}

static void test_filter_sort_dictsort(void **state)
{
    (void)state;
    const char *ctx = "{\"items\": [{\"t\": \"b\", \"n\": 2}, {\"t\": \"A\", \"n\": 1}, {\"t\": "
                      "\"c\", \"n\": 2}]}";
    check_render(
        "{{ [3, 1, 2]|sort }}{{ ['b', 'A', 'c']|sort }}{{ ['b', 'A', "
        "'c']|sort(case_sensitive=true) }}"
        "{{ ['b', 'A', 'c']|sort(reverse=true) }}",
        NULL,
        "[1, 2, 3][&#39;A&#39;, &#39;b&#39;, &#39;c&#39;][&#39;A&#39;, &#39;b&#39;, &#39;c&#39;]"
        "[&#39;c&#39;, &#39;b&#39;, &#39;A&#39;]");
    /* Stable, also when reversed. */
    check_render("{{ items|sort(attribute='n')|map(attribute='t')|join }} {{ "
                 "items|sort(attribute='n', reverse=true)|map(attribute='t')|join }}"
                 " {{ items|sort(attribute='n,t')|map(attribute='t')|join }}",
                 ctx, "Abc bcA Abc");
    check_render("{% for k, v in d|dictsort %}{{ k }}{{ v }}{% endfor %} {% for k, v in "
                 "d|dictsort(by='value') %}{{ k }}{% endfor %}",
                 "{\"d\": {\"b\": 1, \"A\": 3, \"c\": 2}}", "A3b1c2 bcA");
    check_render_error("{{ [1, 'a']|sort }}", NULL, 1, "'<' not supported");
}

static void test_filter_datetime(void **state)
{
    (void)state;
    check_render(
        "{{ ts|datetime }}|{{ ts|datetime('%d/%m/%Y') }}|{{ iso|datetime }}|{{ "
        "iso2|datetime('%H:%M:%S.%f %z') }}"
        "|{{ d|datetime('%b %d, %Y') }}|{{ none|datetime }}|{{ missing|datetime }}",
        "{\"ts\": 1700000000, \"iso\": \"2024-02-29T13:45:10\", \"iso2\": \"2024-01-02 "
        "03:04:05.5+02:00\","
        " \"d\": \"2023-12-25\"}",
        "2023-11-14 22:13|14/11/2023|2024-02-29 13:45|03:04:05.500000 +0200|Dec 25, 2023||");
    check_render("{{ 1700000000.75|datetime('%S.%f') }}", NULL, "20.750000");
    check_render_error("{{ 'yesterday'|datetime }}", NULL, 1, "not an ISO 8601");
    check_render_error("{{ '2023-02-29'|datetime }}", NULL, 1, "not an ISO 8601");
    check_render_error("{{ [1]|datetime }}", NULL, 1, "expected a timestamp");
}

static void test_filter_app_custom(void **state)
{
    (void)state;
    check_render("{{ 'created_at'|underscore_separate }}|{{ 'a_b_c'|underscore_separate|title "
                 "}}|{{ 5|underscore_separate }}",
                 NULL, "created at|A B C|5");
    check_render("{% for c in cols %}{{ row|get_att(c) }};{% endfor %}[{{ row|get_att('nope') }}]",
                 "{\"cols\": [\"id\", \"email\"], \"row\": {\"id\": 7, \"email\": \"a@b\"}}",
                 "7;a@b;[]");
}

static void test_filter_chaining_and_args(void **state)
{
    (void)state;
    check_render("{{ ' Hello World '|trim|lower|replace('world', 'there')|title|truncate(8, true, "
                 "'!', 0) }}",
                 NULL, "Hello T!");
    check_render("{{ xs|map(attribute='n')|select('odd')|list }} {{ xs|selectattr('n', 'gt', "
                 "1)|map(attribute='n')|list }}"
                 " {{ xs|rejectattr('n', 'odd')|map(attribute='n')|join }} {{ ['a', "
                 "'b']|map('upper')|join }}",
                 "{\"xs\": [{\"n\": 1}, {\"n\": 2}, {\"n\": 3}]}", "[1, 3] [2, 3] 2 AB");
    check_syntax_error("{{ x|truncate(5, nope=1) }}", 1, 6, "has no argument named 'nope'");
    check_syntax_error("{{ x|upper(1) }}", 1, 6, "takes at most 0 arguments");
}

static void test_filter_misc(void **state)
{
    (void)state;
    check_render("{{ [1, 2.5]|sum }} {{ [1, 2]|sum(start=10) }} {{ [3, 1]|min }} {{ ['b', 'A']|max "
                 "}} {{ [1, 1, 2]|unique|list }}"
                 " {{ [1, 2]|reverse|list }} {{ 'ab'|reverse }} {{ [1, 2, 3]|batch(2)|list }} {{ "
                 "-3|abs }} {{ 1|string ~ 2 }}",
                 NULL, "3.5 13 1 b [1, 2] [2, 1] ba [[1, 2], [3]] 3 12");
    check_render("{{ 'a b&c/d'|urlencode }} {{ {'q': 'x y', 'n': 1}|urlencode }} {{ 'one two  "
                 "three'|wordcount }}",
                 NULL, "a%20b%26c/d q=x+y&amp;n=1 3");
    check_render("<input{{ {'type': 'text', 'value': v, 'id': none}|xmlattr }}>",
                 "{\"v\": \"\\\"x\\\"\"}", "<input type=\"text\" value=\"&#34;x&#34;\">");
    check_render("{{ d|items|list }}", "{\"d\": {\"a\": 1}}", "[(&#39;a&#39;, 1)]");
}

static void test_filter_type_errors(void **state)
{
    (void)state;
    check_render_error("{{ none|length }}", NULL, 1, "no len()");
    check_render_error("{{ 'a'|abs }}", NULL, 1, "bad operand type for abs()");
    check_render_error("{{ 5|join }}", NULL, 1, "'int' object is not iterable");
    check_render_error("{{ 5|dictsort }}", NULL, 1, "mapping");
    check_render_error("{{ 'abc'|batch(0) }}", NULL, 1, "positive");
}

static json_t *shout_filter(json_t *value, json_t *const *args, size_t nargs, struct echo_err *err)
{
    if (!json_is_string(value)) {
        echo_err_set(err, "shout needs a string");
        return NULL;
    }
    const char *suffix = nargs > 0 && json_is_string(args[0]) ? json_string_value(args[0]) : "!";
    char buf[256];
    snprintf(buf, sizeof(buf), "%s%s", json_string_value(value), suffix);
    return json_string(buf);
}

static void test_custom_filter(void **state)
{
    (void)state;
    tmpl_env *env = tmpl_env_new();
    tmpl_env_add_filter(env, "shout", shout_filter);
    struct echo_err err;
    const char *src = "{{ name|shout }} {{ name|shout('?')|upper }}";
    assert_int_equal(tmpl_env_add(env, "t.html", src, strlen(src), &err), 0);
    check_env(env, "t.html", "{\"name\": \"<hi>\"}", "&lt;hi&gt;! &lt;HI&gt;?");
    char *out = render_env(env, "t.html", "{\"name\": 5}", &err);
    assert_null(out);
    assert_non_null(strstr(err.msg, "shout needs a string"));
    const char *bad = "{{ x|shout(a=1) }}";
    assert_int_equal(tmpl_env_add(env, "b.html", bad, strlen(bad), &err), TMPL_ERR_SYNTAX);
    tmpl_env_free(env);
}

static void test_unknown_filter_and_test(void **state)
{
    (void)state;
    check_syntax_error("line\n  {{ x|nosuch }}", 2, 8, "no filter named 'nosuch'");
    check_syntax_error("{% if x is nosuch %}{% endif %}", 1, 12, "no test named 'nosuch'");
}

static void test_is_tests(void **state)
{
    (void)state;
    check_render(
        "{{ 42 is divisibleby 3 }}{{ 9 is divisibleby(3) }}{{ 3 is odd }}{{ 4 is even }}{{ none is "
        "none }}"
        "{{ 'x' is string }}{{ 1 is number }}{{ 1.5 is float }}{{ 1 is integer }}{{ xs is sequence "
        "}}"
        "{{ d is mapping }}{{ 'abc' is lower }}{{ 'AB' is upper }}{{ 2 is eq 2 }}{{ 3 is gt 1 }}"
        "{{ 'a' is in 'abc' }}{{ none is sameas none }}{{ true is boolean }}{{ m is escaped }}{{ f "
        "is callable }}",
        "{\"xs\": [1], \"d\": {}}",
        "TrueTrueTrueTrueTrueTrueTrueTrueTrueTrueTrueTrueTrueTrueTrueTrueTrueTrueFalseFalse");
    check_render("{% set m = 'x'|safe %}{% macro f() %}{% endmacro %}{{ m is escaped }}{{ f is "
                 "callable }}{{ xs is iterable }}",
                 NULL, "TrueTrueTrue");
}

static void test_string_methods(void **state)
{
    (void)state;
    check_render("{{ 'a,b,,c'.split(',') }} {{ ' a  b '.split() }} {{ 'a b c'.split(' ', 1) }} {{ "
                 "'-'.join(['x', 'y']) }}"
                 " [{{ '  x  '.strip() }}][{{ 'xxay'.lstrip('x') }}][{{ 'ayy'.rstrip('y') }}]",
                 NULL,
                 "[&#39;a&#39;, &#39;b&#39;, &#39;&#39;, &#39;c&#39;] [&#39;a&#39;, &#39;b&#39;] "
                 "[&#39;a&#39;, &#39;b c&#39;]"
                 " x-y [x][ay][a]");
    check_render(
        "{{ 'abc'.upper() }}{{ 'ABC'.lower() }}{{ \"they're\".title() }}{{ 'abc'.startswith('a') }}"
        "{{ 'abc'.endswith(('x', 'c')) }}{{ 'a-b'.replace('-', '+') }}{{ 'héllo'.find('l') }}{{ "
        "'aaa'.count('a') }}",
        NULL, "ABCabcThey&#39;ReTrueTruea+b23");
    check_render_error("{{ 'abc'.nosuch() }}", NULL, 1, "'str' object has no attribute 'nosuch'");
}

/* ---- syntax errors ---- */

static void test_syntax_error_positions(void **state)
{
    (void)state;
    check_syntax_error("line one\n  {% if x %}\n   {{ a + }}\n{% endif %}", 3, 11,
                       "unexpected end of print statement");
    check_syntax_error("x\n{% if %}", 2, 7, "expected an expression");
    check_syntax_error("héllo {{ \"unterminated }}", 1, 10, "unterminated string");
    check_syntax_error("{{ x ) }}", 1, 6, "unexpected ')'");
    check_syntax_error("\t{{ 1 @ 2 }}", 1, 7, "unexpected character '@'");
    check_syntax_error("{{ x }", 1, 6, "unexpected '}'");
    check_syntax_error("{{ }}", 1, 4, "expected an expression");
    check_syntax_error("{{ a b }}", 1, 6, "expected end of print statement");
    check_syntax_error("{{ x|f( }}", 1, 9, "unexpected '}'");
}

static void test_syntax_error_unclosed(void **state)
{
    (void)state;
    check_syntax_error("x\n{% for a in b %}\nabc", 3, 4,
                       "{% for %} at line 2 is not closed (expected {% endfor %})");
    check_syntax_error("{% if a %}{% else %}", 1, 21, "expected {% endif %}");
    check_syntax_error("{% macro m() %}", 1, 16, "expected {% endmacro %}");
    check_syntax_error("{{ x", 1, 5, "expected end of print statement");
}

static void test_syntax_error_tags(void **state)
{
    (void)state;
    check_syntax_error("a {% endif %}", 1, 6, "unexpected {% endif %}: no tag is open");
    check_syntax_error("{% if a %}{% endfor %}", 1, 14, "innermost open tag is {% if %}");
    check_syntax_error("\n\n  {% frobnicate %}", 3, 6, "unknown tag 'frobnicate'");
    check_syntax_error("{% for x in y recursive %}{% endfor %}", 1, 15, "recursive");
    check_syntax_error("{% set 1 = 2 %}", 1, 8, "can only assign to names");
    check_syntax_error("{{ f(a=1, 2) }}", 1, 11, "positional argument follows keyword argument");
    check_syntax_error("{% call x %}{% endcall %}", 1, 9, "expected a call");
}

static void test_source_encoding_errors(void **state)
{
    (void)state;
    tmpl_env *env = tmpl_env_new();
    struct echo_err err;
    const char bad_utf8[] = "ok\nab\xff\xfe";
    assert_int_equal(tmpl_env_add(env, "u.html", bad_utf8, sizeof(bad_utf8) - 1, &err),
                     TMPL_ERR_SYNTAX);
    assert_int_equal(err.line, 2);
    assert_int_equal(err.col, 3);
    assert_non_null(strstr(err.msg, "UTF-8"));
    const char nul[] = "a\0b";
    assert_int_equal(tmpl_env_add(env, "n.html", nul, 3, &err), TMPL_ERR_SYNTAX);
    assert_non_null(strstr(err.msg, "NUL"));
    const char overlong[] = "\xc0\xaf";
    assert_int_equal(tmpl_env_add(env, "o.html", overlong, 2, &err), TMPL_ERR_SYNTAX);
    assert_false(tmpl_env_has(env, "u.html"));
    tmpl_env_free(env);
}

static void test_string_escape_errors(void **state)
{
    (void)state;
    check_syntax_error("{{ '\\x4' }}", 1, 4, "truncated");
    check_syntax_error("{{ '\\ud800' }}", 1, 4, "not a valid Unicode character");
    check_syntax_error("{{ '\\N{DASH}' }}", 1, 4, "not supported");
}

/* ---- runtime errors and limits ---- */

static void test_render_error_names_template_and_line(void **state)
{
    (void)state;
    tmpl_env *env =
        env_of("base.html", "a\n{% block b %}{% endblock %}", "child.html",
               "{% extends 'base.html' %}\n{% block b %}\n\n{{ 1 // zero }}{% endblock %}", NULL);
    struct echo_err err;
    char *out = render_env(env, "child.html", "{\"zero\": 0}", &err);
    assert_null(out);
    assert_string_equal(err.file, "child.html");
    assert_int_equal(err.line, 4);
    assert_int_equal(err.col, 6);
    tmpl_env_free(env);
    check_render_error("{{ 5() }}", NULL, 1, "'int' object is not callable");
    check_render_error("{% set x = {} %}{{ x.nope() }}", NULL, 1, "has no attribute 'nope'");
}

static void test_not_found_and_bad_args(void **state)
{
    (void)state;
    tmpl_env *env = tmpl_env_new();
    struct strbuf out;
    strbuf_init(&out);
    struct echo_err err;
    assert_int_equal(tmpl_render(env, "none.html", NULL, &out, &err), TMPL_ERR_NOT_FOUND);
    assert_non_null(strstr(err.msg, "none.html"));
    const char *src = "x";
    assert_int_equal(tmpl_env_add(env, "x.html", src, 1, &err), 0);
    json_t *arr = json_array();
    assert_int_equal(tmpl_render(env, "x.html", arr, &out, &err), TMPL_ERR_RENDER);
    json_decref(arr);
    assert_int_equal(out.len, 0);
    strbuf_deinit(&out);
    tmpl_env_free(env);
}

static void test_nesting_limits(void **state)
{
    (void)state;
    /* Deep parentheses, unary operators and statements are syntax errors,
     * not stack overflows. */
    size_t n = 5000;
    char *src = malloc(3 * n + 16);
    size_t k = 0;
    k += (size_t)sprintf(src + k, "{{ ");
    for (size_t i = 0; i < n; i++)
        src[k++] = '(';
    src[k++] = '1';
    for (size_t i = 0; i < n; i++)
        src[k++] = ')';
    k += (size_t)sprintf(src + k, " }}");
    src[k] = 0;
    tmpl_env *env = tmpl_env_new();
    struct echo_err err;
    assert_int_equal(tmpl_env_add(env, "p.html", src, k, &err), TMPL_ERR_SYNTAX);
    assert_non_null(strstr(err.msg, "nested too deeply"));
    k = (size_t)sprintf(src, "{{ ");
    for (size_t i = 0; i < n; i++)
        k += (size_t)sprintf(src + k, "- ");
    k += (size_t)sprintf(src + k, "1 }}");
    assert_int_equal(tmpl_env_add(env, "u.html", src, k, &err), TMPL_ERR_SYNTAX);
    k = 0;
    for (size_t i = 0; i < 300; i++)
        k += (size_t)sprintf(src + k, "{%% if 1 %%}");
    assert_int_equal(tmpl_env_add(env, "s.html", src, k, &err), TMPL_ERR_SYNTAX);
    assert_non_null(strstr(err.msg, "nested too deeply"));
    /* A long chain of operators is as deep as nesting: refused too. */
    k = (size_t)sprintf(src, "{{ 1");
    for (size_t i = 0; i < 150; i++)
        k += (size_t)sprintf(src + k, " ~ 1");
    k += (size_t)sprintf(src + k, " }}");
    assert_int_equal(tmpl_env_add(env, "c.html", src, k, &err), TMPL_ERR_SYNTAX);
    assert_non_null(strstr(err.msg, "nested too deeply"));
    /* 50 levels is fine. */
    k = 0;
    for (size_t i = 0; i < 50; i++)
        k += (size_t)sprintf(src + k, "{%% if 1 %%}");
    k += (size_t)sprintf(src + k, "deep");
    for (size_t i = 0; i < 50; i++)
        k += (size_t)sprintf(src + k, "{%% endif %%}");
    assert_int_equal(tmpl_env_add(env, "ok.html", src, k, &err), 0);
    check_env(env, "ok.html", NULL, "deep");
    free(src);
    tmpl_env_free(env);
}

static void test_render_limits(void **state)
{
    (void)state;
    tmpl_env *env = tmpl_env_new();
    tmpl_env_set_limits(env, 1 << 20, 1000);
    struct echo_err err;
    const char *loops =
        "{% for i in range(100) %}{% for j in range(100) %}{% endfor %}{% endfor %}";
    const char *big = "{% set ns = namespace(s='xx') %}{% for i in range(40) %}{% set ns.s = ns.s "
                      "~ ns.s %}{% endfor %}";
    /* 900 x 2000 bytes of template text: over the 1 MiB output limit. */
    char *out_big = malloc(3000);
    memset(out_big, 'x', 2999);
    memcpy(out_big, "{% for i in range(900) %}", 25);
    memcpy(out_big + 2999 - 12, "{% endfor %}", 12);
    out_big[2999] = 0;
    assert_int_equal(tmpl_env_add(env, "loops.html", loops, strlen(loops), &err), 0);
    assert_int_equal(tmpl_env_add(env, "big.html", big, strlen(big), &err), 0);
    assert_int_equal(tmpl_env_add(env, "out.html", out_big, strlen(out_big), &err), 0);
    char *r = render_env(env, "loops.html", NULL, &err);
    assert_null(r);
    assert_non_null(strstr(err.msg, "loop iterations"));
    r = render_env(env, "big.html", NULL, &err);
    assert_null(r);
    assert_non_null(strstr(err.msg, "memory"));
    assert_int_equal(err.line, 1);
    r = render_env(env, "out.html", NULL, &err);
    assert_null(r);
    assert_non_null(strstr(err.msg, "larger than"));
    /* Quadratic work counts as steps; empty repetitions are instant. */
    const char *uniq = "{{ range(5000)|unique|list|length }}";
    const char *empty = "{{ ([] * 1000000000000)|length }}{{ ('' * 1000000000000)|length }}";
    assert_int_equal(tmpl_env_add(env, "uniq.html", uniq, strlen(uniq), &err), 0);
    assert_int_equal(tmpl_env_add(env, "empty.html", empty, strlen(empty), &err), 0);
    r = render_env(env, "uniq.html", NULL, &err);
    assert_null(r);
    assert_non_null(strstr(err.msg, "loop iterations"));
    check_env(env, "empty.html", NULL, "00");
    free(out_big);
    tmpl_env_free(env);
    check_render_error("{{ range(2000000) }}", NULL, 1, "range() of more than");
    check_render_error("{{ 'x' * 100000000000 }}", NULL, 1, "too large");
}

static void test_self_referencing_namespace(void **state)
{
    (void)state;
    /* Mutable namespaces can contain themselves; printing, comparing and
     * serializing such a value terminates. */
    tmpl_env *env = env_of(
        "t.html",
        "{% set ns = namespace() %}{% set ns.me = ns %}{{ (ns|string)[:25] }}|{{ ns == ns }}",
        "j.html", "{% set ns = namespace() %}{% set ns.me = ns %}{{ ns|tojson }}", NULL);
    check_env(env, "t.html", NULL, "&lt;Namespace {&#39;me&#39;: &lt;Namesp|True");
    struct echo_err err;
    char *r = render_env(env, "j.html", NULL, &err);
    assert_null(r);
    assert_non_null(strstr(err.msg, "nested too deeply"));
    tmpl_env_free(env);
}

/* ---- environment ---- */

static char tmpdir[256];

static void write_file(const char *rel, const char *text)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", tmpdir, rel);
    struct echo_err err;
    char *slash = strrchr(path, '/');
    *slash = 0;
    assert_int_equal(dir_make_all(path, 0755, &err), 0);
    *slash = '/';
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void remove_tree(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static void make_tmpdir(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/echo-tmpl-test-XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
}

static void test_load_dir(void **state)
{
    (void)state;
    make_tmpdir();
    write_file("base.html", "<b>{% block c %}{% endblock %}</b>\n");
    write_file(
        "auth/login.html",
        "{% extends 'base.html' %}{% block c %}{% include 'auth/_form.html' %}{% endblock %}\n");
    write_file("auth/_form.html", "form {{ site }}");
    write_file("notes.txt", "{{ not a template");
    write_file(".hidden/x.html", "{% broken");
    tmpl_env *env = tmpl_env_new();
    struct echo_err err;
    echo_err_clear(&err);
    json_t *site = json_string("Echo");
    tmpl_env_set_global(env, "site", site);
    json_decref(site);
    int rc = tmpl_env_load_dir(env, tmpdir, &err);
    if (rc) fail_msg("%s:%d: %s", err.file, err.line, err.msg);
    assert_int_equal(tmpl_env_count(env), 3);
    assert_true(tmpl_env_has(env, "auth/login.html"));
    assert_true(tmpl_env_has(env, "./auth//login.html"));
    assert_false(tmpl_env_has(env, "../auth/login.html"));
    assert_false(tmpl_env_has(env, "notes.txt"));
    check_env(env, "auth/login.html", NULL, "<b>form Echo</b>");
    tmpl_env_free(env);
    remove_tree(tmpdir);
}

static void test_load_dir_errors(void **state)
{
    (void)state;
    make_tmpdir();
    write_file("ok.html", "fine");
    write_file("sub/bad.html", "line 1\n{% for x in xs %}\n{{ x }");
    tmpl_env *env = tmpl_env_new();
    struct echo_err err;
    echo_err_clear(&err);
    assert_int_equal(tmpl_env_load_dir(env, tmpdir, &err), TMPL_ERR_SYNTAX);
    char want[512];
    snprintf(want, sizeof(want), "%s/sub/bad.html", tmpdir);
    assert_string_equal(err.file, want);
    assert_int_equal(err.line, 3);
    assert_int_equal(err.col, 6);
    char buf[1024];
    const char *formatted = echo_err_format(&err, buf, sizeof(buf));
    assert_non_null(strstr(formatted, "sub/bad.html:3:6"));
    tmpl_env_free(env);
    remove_tree(tmpdir);

    make_tmpdir();
    write_file("a.html", "x\n  {% include 'missing.html' %}");
    env = tmpl_env_new();
    assert_int_equal(tmpl_env_load_dir(env, tmpdir, &err), TMPL_ERR_NOT_FOUND);
    assert_int_equal(err.line, 2);
    assert_int_equal(err.col, 6);
    assert_non_null(strstr(err.msg, "'missing.html' not found"));
    tmpl_env_free(env);
    remove_tree(tmpdir);

    env = tmpl_env_new();
    assert_int_equal(tmpl_env_load_dir(env, "/nonexistent/echo/templates", &err), TMPL_ERR_IO);
    tmpl_env_free(env);
}

static void test_globals(void **state)
{
    (void)state;
    tmpl_env *env = tmpl_env_new();
    json_t *g = json_pack("{s:s, s:[i,i]}", "name", "Echo", "xs", 1, 2);
    tmpl_env_set_global(env, "site", g);
    json_decref(g); /* the environment holds its own reference */
    json_t *v = json_integer(1);
    tmpl_env_set_global(env, "ver", v);
    json_decref(v);
    v = json_integer(2);
    tmpl_env_set_global(env, "ver", v); /* replaces */
    json_decref(v);
    const char *src = "{{ site.name }} {{ site.xs|sum }} {{ ver }}";
    struct echo_err err;
    assert_int_equal(tmpl_env_add(env, "g.html", src, strlen(src), &err), 0);
    check_env(env, "g.html", NULL, "Echo 3 2");
    /* The render context shadows globals. */
    check_env(env, "g.html", "{\"ver\": 9}", "Echo 3 9");
    tmpl_env_free(env);
}

static void test_replace_template(void **state)
{
    (void)state;
    tmpl_env *env = env_of("a.html", "one", "a.html", "two", NULL);
    assert_int_equal(tmpl_env_count(env), 1);
    check_env(env, "a.html", NULL, "two");
    /* A failed replacement keeps the old template. */
    struct echo_err err;
    assert_int_equal(tmpl_env_add(env, "a.html", "{{", 2, &err), TMPL_ERR_SYNTAX);
    check_env(env, "a.html", NULL, "two");
    tmpl_env_free(env);
}

static void test_template_names(void **state)
{
    (void)state;
    tmpl_env *env = env_of("./dir//a.html", "A", NULL);
    assert_true(tmpl_env_has(env, "dir/a.html"));
    check_env(env, "dir/./a.html", NULL, "A");
    struct echo_err err;
    assert_int_equal(tmpl_env_add(env, "../up.html", "x", 1, &err), TMPL_ERR_SYNTAX);
    assert_int_equal(tmpl_env_add(env, "", "x", 1, &err), TMPL_ERR_SYNTAX);
    assert_int_equal(tmpl_env_count(env), 1);
    tmpl_env_free(env);
}

static void test_range_extremes(void **state)
{
    (void)state;
    check_render(
        "{{ range(-9223372036854775807 - 1, 9223372036854775807, 9223372036854775807)|list }}"
        " {{ range(5, 0, -2)|list }} {{ range(0)|list }}",
        NULL, "[-9223372036854775808, -1, 9223372036854775806] [5, 3, 1] []");
    check_render_error("{{ range(1, 2, 0) }}", NULL, 1, "must not be zero");
}

/* ---- a realistic page ---- */

static void test_realistic_page(void **state)
{
    (void)state;
    tmpl_env *env =
        env_of("base.html",
               "<!doctype html>\n<title>{% block title %}{{ site_name }}{% endblock %}</title>\n"
               "{% for category, message in flashes %}\n  <div class=\"alert alert-{{ category "
               "}}\">{{ message }}</div>\n"
               "{% endfor %}\n<main>{% block content %}{% endblock %}</main>\n",
               "index.html",
               "{% extends \"base.html\" %}\n{% from \"forms.html\" import field %}\n"
               "{% block title %}Home - {{ super() }}{% endblock %}\n"
               "{% block content %}\n<ul>\n{% for c in conversations -%}\n"
               "  <li class=\"{{ loop.cycle('odd', 'even') }}\">{{ "
               "c.title|default('Untitled')|truncate(12) }}"
               " {{ c.created_at|datetime('%Y-%m-%d') }}</li>\n"
               "{% else %}<li>none</li>{% endfor %}\n</ul>\n{{ field('q', placeholder='Search') "
               "}}\n{% endblock %}",
               "forms.html",
               "{% macro field(name, type='text') %}<input type=\"{{ type }}\" name=\"{{ name }}\""
               "{{ kwargs|xmlattr }}>{% endmacro %}",
               NULL);
    check_env(
        env, "index.html",
        "{\"site_name\": \"Echo\", \"flashes\": [[\"info\", \"Hi & bye\"]], \"conversations\": "
        "[{\"title\": \"A very long conversation title\", \"created_at\": 0}, {\"created_at\": "
        "\"2024-05-01T10:00:00Z\"}]}",
        "<!doctype html>\n<title>Home - Echo</title>\n\n  <div class=\"alert alert-info\">Hi &amp; "
        "bye</div>\n\n"
        "<main>\n<ul>\n<li class=\"odd\">A very... 1970-01-01</li>\n<li class=\"even\">Untitled "
        "2024-05-01</li>\n"
        "\n</ul>\n<input type=\"text\" name=\"q\" placeholder=\"Search\">\n</main>");
    tmpl_env_free(env);
}

/* ---- concurrency ---- */

struct worker {
    const tmpl_env *env;
    json_t *ctx;
    const char *want;
    int mismatches;
};

static void *render_many(void *arg)
{
    struct worker *w = arg;
    struct strbuf out;
    strbuf_init(&out);
    for (int i = 0; i < 300; i++) {
        out.len = 0;
        struct echo_err err;
        if (tmpl_render(w->env, "page.html", w->ctx, &out, &err) != 0 ||
            strcmp(strbuf_cstr(&out), w->want) != 0)
            w->mismatches++;
    }
    strbuf_deinit(&out);
    return NULL;
}

static void test_concurrent_renders(void **state)
{
    (void)state;
    tmpl_env *env = env_of(
        "base.html", "[{% block b %}{% endblock %}]", "m.html",
        "{% macro item(x) %}<i>{{ x|upper }}</i>{% endmacro %}", "page.html",
        "{% extends 'base.html' %}{% import 'm.html' as m %}{% block b %}{% for x in xs|sort %}"
        "{{ m.item(x) }}{{ loop.index }}{% set t = x ~ '!' %}{{ t }}{% endfor %}{{ g }}{% endblock "
        "%}",
        NULL);
    json_t *g = json_string("G");
    tmpl_env_set_global(env, "g", g);
    json_decref(g);
    json_t *ctx = json_pack("{s:[s,s,s]}", "xs", "c", "a", "b");
    struct echo_err err;
    char *want = render_env(env, "page.html", "{\"xs\": [\"c\", \"a\", \"b\"]}", &err);
    assert_non_null(want);
    assert_string_equal(want, "[<i>A</i>1a!<i>B</i>2b!<i>C</i>3c!G]");
    struct worker w[4];
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (struct worker){.env = env, .ctx = ctx, .want = want};
        assert_int_equal(pthread_create(&t[i], NULL, render_many, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(w[i].mismatches, 0);
    }
    free(want);
    json_decref(ctx);
    tmpl_env_free(env);
}

/* ---- hostile input ---- */

static void test_garbage_never_crashes(void **state)
{
    (void)state;
    static const char *inputs[] = {
        "{{",
        "{%",
        "{#",
        "}}",
        "{{}}",
        "{%%}",
        "{% %}",
        "{{ ( }}",
        "{{ [ }}",
        "{{ { }}",
        "{{ a.}}",
        "{{ a[ }}",
        "{{ a|}}",
        "{{ a is }}",
        "{{ 'x }}",
        "{% if %}",
        "{% for %}",
        "{% for x %}",
        "{% for x in %}",
        "{% set %}",
        "{% set x %}",
        "{% macro %}",
        "{% macro m( %}",
        "{% block %}",
        "{% extends %}",
        "{% include %}",
        "{% import 'x' %}",
        "{% from 'x' %}",
        "{% from 'x' import %}",
        "{% call %}",
        "{% with x %}",
        "{% filter %}",
        "{% endraw %}",
        "{{ 1 if }}",
        "{{ 1 if 2 else }}",
        "{{ not }}",
        "{{ - }}",
        "{{ a.0.1.2 }}",
        "{{ 0x }}",
        "{{ 1e }}",
        "{{ 1_ }}",
        "{{ '\\x' }}",
        "{% raw %}",
        "{%- raw -%}{%- endraw",
        "{{ a b c }}",
        "{{ f(**x) }}",
        "{{ f(*x) }}",
        "{% set a.b.c = 1 %}",
        "{{ ((((((( }}",
        "\xe2\x82",
        "{{ x|e(",
    };
    for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
        tmpl_env *env = tmpl_env_new();
        struct echo_err err;
        echo_err_clear(&err);
        int rc = tmpl_env_add(env, "g.html", inputs[i], strlen(inputs[i]), &err);
        if (rc != 0 && err.msg[0] == 0) fail_msg("no message for error in %s", inputs[i]);
        if (rc == 0) {
            char *out = render_env(env, "g.html", "{\"x\": [1, {\"y\": null}]}", &err);
            free(out);
        }
        tmpl_env_free(env);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_text),
        cmocka_unit_test(test_variable_output),
        cmocka_unit_test(test_autoescape),
        cmocka_unit_test(test_autoescape_attributes),
        cmocka_unit_test(test_safe_not_escaped),
        cmocka_unit_test(test_markup_from_macro_not_escaped),
        cmocka_unit_test(test_python_values_output),
        cmocka_unit_test(test_float_repr),
        cmocka_unit_test(test_undefined_is_empty),
        cmocka_unit_test(test_is_defined),
        cmocka_unit_test(test_undefined_arithmetic_error),
        cmocka_unit_test(test_string_literals),
        cmocka_unit_test(test_number_literals),
        cmocka_unit_test(test_list_dict_literals),
        cmocka_unit_test(test_attribute_and_index),
        cmocka_unit_test(test_slices),
        cmocka_unit_test(test_arithmetic),
        cmocka_unit_test(test_python_division),
        cmocka_unit_test(test_division_by_zero),
        cmocka_unit_test(test_integer_overflow),
        cmocka_unit_test(test_concat_tilde),
        cmocka_unit_test(test_string_plus_repeat),
        cmocka_unit_test(test_comparisons),
        cmocka_unit_test(test_and_or_not),
        cmocka_unit_test(test_in_operator),
        cmocka_unit_test(test_conditional_expression),
        cmocka_unit_test(test_if_elif_else),
        cmocka_unit_test(test_for_basic),
        cmocka_unit_test(test_for_loop_variables),
        cmocka_unit_test(test_for_else),
        cmocka_unit_test(test_for_dict_items),
        cmocka_unit_test(test_for_pairs),
        cmocka_unit_test(test_for_filter_clause),
        cmocka_unit_test(test_for_strings_and_nested),
        cmocka_unit_test(test_loop_cycle_prev_next),
        cmocka_unit_test(test_set_does_not_leak_from_for),
        cmocka_unit_test(test_set_in_if_leaks),
        cmocka_unit_test(test_set_tuple_and_block),
        cmocka_unit_test(test_namespace),
        cmocka_unit_test(test_with),
        cmocka_unit_test(test_filter_block),
        cmocka_unit_test(test_autoescape_block),
        cmocka_unit_test(test_raw),
        cmocka_unit_test(test_comments),
        cmocka_unit_test(test_ws_block_dash),
        cmocka_unit_test(test_ws_var_dash),
        cmocka_unit_test(test_ws_comment_dash),
        cmocka_unit_test(test_ws_defaults_keep_newlines),
        cmocka_unit_test(test_ws_trailing_newline_and_crlf),
        cmocka_unit_test(test_extends_basic),
        cmocka_unit_test(test_extends_three_levels_super),
        cmocka_unit_test(test_extends_nested_blocks),
        cmocka_unit_test(test_extends_ignores_output_outside_blocks),
        cmocka_unit_test(test_extends_dynamic_and_errors),
        cmocka_unit_test(test_self_block_reference),
        cmocka_unit_test(test_block_scoped),
        cmocka_unit_test(test_include),
        cmocka_unit_test(test_include_missing),
        cmocka_unit_test(test_include_recursion_limit),
        cmocka_unit_test(test_macro_defaults_and_kwargs),
        cmocka_unit_test(test_macro_varargs_kwargs),
        cmocka_unit_test(test_macro_recursion),
        cmocka_unit_test(test_call_block),
        cmocka_unit_test(test_import_as),
        cmocka_unit_test(test_from_import),
        cmocka_unit_test(test_import_context),
        cmocka_unit_test(test_filter_default),
        cmocka_unit_test(test_filter_length_unicode),
        cmocka_unit_test(test_filter_case_unicode),
        cmocka_unit_test(test_filter_trim),
        cmocka_unit_test(test_filter_join),
        cmocka_unit_test(test_filter_join_markup),
        cmocka_unit_test(test_filter_replace),
        cmocka_unit_test(test_filter_truncate),
        cmocka_unit_test(test_filter_int_float),
        cmocka_unit_test(test_filter_round),
        cmocka_unit_test(test_filter_tojson),
        cmocka_unit_test(test_filter_first_last_list),
        cmocka_unit_test(test_filter_sort_dictsort),
        cmocka_unit_test(test_filter_datetime),
        cmocka_unit_test(test_filter_app_custom),
        cmocka_unit_test(test_filter_chaining_and_args),
        cmocka_unit_test(test_filter_misc),
        cmocka_unit_test(test_filter_type_errors),
        cmocka_unit_test(test_custom_filter),
        cmocka_unit_test(test_unknown_filter_and_test),
        cmocka_unit_test(test_is_tests),
        cmocka_unit_test(test_string_methods),
        cmocka_unit_test(test_syntax_error_positions),
        cmocka_unit_test(test_syntax_error_unclosed),
        cmocka_unit_test(test_syntax_error_tags),
        cmocka_unit_test(test_source_encoding_errors),
        cmocka_unit_test(test_string_escape_errors),
        cmocka_unit_test(test_render_error_names_template_and_line),
        cmocka_unit_test(test_not_found_and_bad_args),
        cmocka_unit_test(test_nesting_limits),
        cmocka_unit_test(test_render_limits),
        cmocka_unit_test(test_self_referencing_namespace),
        cmocka_unit_test(test_load_dir),
        cmocka_unit_test(test_load_dir_errors),
        cmocka_unit_test(test_globals),
        cmocka_unit_test(test_replace_template),
        cmocka_unit_test(test_template_names),
        cmocka_unit_test(test_range_extremes),
        cmocka_unit_test(test_realistic_page),
        cmocka_unit_test(test_concurrent_renders),
        cmocka_unit_test(test_garbage_never_crashes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
