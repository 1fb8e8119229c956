/*
 * test_core.c - the small core helpers: UTF-8 validation against the RFC 3629
 * edge cases, strict integer parsing, strbuf growth, arenas, atomic writes and
 * error formatting.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/core.h"

static void test_utf8(void **state)
{
    (void)state;
    struct {
        const char *s;
        bool ok;
    } cases[] = {
        {"", true},
        {"plain ascii", true},
        {"caf\xc3\xa9", true},
        {"\xe2\x82\xac", true},         /* euro sign */
        {"\xf0\x9f\x98\x80", true},     /* emoji */
        {"\xf4\x8f\xbf\xbf", true},     /* U+10FFFF */
        {"\xc3", false},                /* truncated */
        {"\xc0\xaf", false},            /* overlong '/' */
        {"\xe0\x80\xaf", false},        /* overlong */
        {"\xed\xa0\x80", false},        /* surrogate */
        {"\xf4\x90\x80\x80", false},    /* > U+10FFFF */
        {"\xf8\x88\x80\x80\x80", false}, /* 5-byte form */
        {"\x80", false},                /* lone continuation */
        {"ok\xe2\x82", false},          /* truncated at the end */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (utf8_valid(cases[i].s, strlen(cases[i].s)) != cases[i].ok)
            fail_msg("case %zu", i);
    }
    assert_int_equal(utf8_length("caf\xc3\xa9", 5), 4);
}

static void test_parse_int(void **state)
{
    (void)state;
    int64_t v;
    assert_int_equal(parse_int64("42", 0, 100, &v), 0);
    assert_int_equal(v, 42);
    assert_int_equal(parse_int64("-5", -10, 10, &v), 0);
    assert_int_equal(v, -5);
    assert_int_equal(parse_int64("101", 0, 100, &v), -1);
    assert_int_equal(parse_int64("", 0, 100, &v), -1);
    assert_int_equal(parse_int64("4x", 0, 100, &v), -1);
    assert_int_equal(parse_int64(" 4", 0, 100, &v), -1);
    assert_int_equal(parse_int64("99999999999999999999999", INT64_MIN, INT64_MAX, &v), -1);
}

static void test_strbuf(void **state)
{
    (void)state;
    struct strbuf sb;
    strbuf_init(&sb);
    assert_string_equal(strbuf_cstr(&sb), "");
    for (int i = 0; i < 1000; i++)
        strbuf_printf(&sb, "%d,", i);
    assert_true(sb.len > 3000);
    assert_int_equal(strlen(sb.data), sb.len);
    char big[600];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    strbuf_printf(&sb, "[%s]", big); /* longer than the fast-path buffer */
    assert_int_equal(sb.data[sb.len - 1], ']');
    char *s = strbuf_steal(&sb);
    assert_null(sb.data);
    free(s);

    /* One code point of each UTF-8 length, at both ends of each range. */
    uint32_t cps[] = {0x41, 0x7F, 0x80, 0xE9, 0x7FF, 0x800, 0x20AC, 0xFFFD, 0x10000, 0x1F600, 0x10FFFF};
    strbuf_init(&sb);
    for (size_t i = 0; i < sizeof(cps) / sizeof(cps[0]); i++)
        strbuf_put_utf8(&sb, cps[i]);
    assert_true(utf8_valid(sb.data, sb.len));
    assert_int_equal(utf8_length(sb.data, sb.len), sizeof(cps) / sizeof(cps[0]));
    assert_memory_equal(sb.data + 4, "\xc3\xa9", 2);           /* U+00E9 */
    assert_memory_equal(sb.data + 11, "\xe2\x82\xac", 3);     /* U+20AC */
    assert_memory_equal(sb.data + sb.len - 4, "\xf4\x8f\xbf\xbf", 4); /* U+10FFFF */
    strbuf_deinit(&sb);
}

static void test_arena(void **state)
{
    (void)state;
    arena *a = arena_new(64);
    char *p = arena_strdup(a, "hello");
    void *big = arena_alloc(a, 10000); /* larger than a block */
    assert_int_equal(((uintptr_t)big) % 16, 0);
    char *q = arena_printf(a, "%s-%d", p, 7);
    assert_string_equal(q, "hello-7");
    assert_string_equal(p, "hello");
    arena_free(a);
}

static void test_atomic_write(void **state)
{
    (void)state;
    char dir[] = "/tmp/echo-test-core-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256], nested[256];
    snprintf(path, sizeof(path), "%s/a/b/file", dir);
    snprintf(nested, sizeof(nested), "%s/a/b", dir);
    assert_int_equal(dir_make_all(nested, 0700, NULL), 0);
    assert_int_equal(file_write_atomic(path, "data", 4, 0600, NULL), 0);
    size_t len;
    char *back = file_read_all(path, 100, &len, NULL);
    assert_string_equal(back, "data");
    free(back);
    struct echo_err err = {0};
    assert_null(file_read_all(path, 2, &len, &err)); /* over the limit */
    assert_non_null(strstr(err.msg, "too large"));
    assert_int_equal(file_write_atomic("/nonexistent-dir/x", "d", 1, 0600, &err), -1);
    assert_int_equal(dir_make_all(path, 0700, &err), -1); /* a file is in the way */
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static void test_err_format(void **state)
{
    (void)state;
    struct echo_err err = {0};
    char buf[256];
    echo_err_set_at(&err, "t.html", 3, 7, "unexpected '%s'", "}}");
    assert_string_equal(echo_err_format(&err, buf, sizeof(buf)), "t.html:3:7: unexpected '}}'");
    echo_err_clear(&err);
    echo_err_set(&err, "plain");
    assert_string_equal(echo_err_format(&err, buf, sizeof(buf)), "plain");
    assert_true(mem_equal_ct("abc", "abc", 3));
    assert_false(mem_equal_ct("abc", "abd", 3));
    assert_int_equal(str_casecmp("HeLLo", "hello"), 0);
    assert_int_equal(log_level_parse("WARNING"), LOG_WARN);
    assert_int_equal(log_level_parse("loud"), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_utf8),         cmocka_unit_test(test_parse_int),
        cmocka_unit_test(test_strbuf),       cmocka_unit_test(test_arena),
        cmocka_unit_test(test_atomic_write), cmocka_unit_test(test_err_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
