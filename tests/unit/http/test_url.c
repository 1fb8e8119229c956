/*
 * test_url.c - percent-decoding, path normalization and urlencoded pairs
 * (src/http/url.c), including every malformed input the server answers 400.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "http/url.h"

static const char *norm(arena *a, const char *raw, int *rc)
{
    const char *out = NULL;
    struct echo_err err = {0};
    *rc = http_path_normalize(a, raw, strlen(raw), &out, &err);
    return out;
}

static void expect_path(const char *raw, const char *want)
{
    arena *a = arena_new(0);
    int rc;
    const char *got = norm(a, raw, &rc);
    if (rc != 0 || strcmp(got, want))
        fail_msg("normalize(%s): rc %d, got '%s', want '%s'", raw, rc, rc ? "" : got, want);
    arena_free(a);
}

static void expect_bad_path(const char *raw)
{
    arena *a = arena_new(0);
    int rc;
    norm(a, raw, &rc);
    if (rc != HTTP_ERR_BAD_REQUEST) fail_msg("normalize(%s) should be refused, rc %d", raw, rc);
    arena_free(a);
}

static void test_pct_decode(void **state)
{
    (void)state;
    char out[64];
    size_t n;
    assert_int_equal(http_pct_decode("a%20b%2Fc", 9, false, out, &n), 0);
    assert_int_equal(n, 5);
    assert_memory_equal(out, "a b/c", 5);
    assert_int_equal(http_pct_decode("a+b", 3, true, out, &n), 0);
    assert_memory_equal(out, "a b", 3);
    assert_int_equal(http_pct_decode("a+b", 3, false, out, &n), 0);
    assert_memory_equal(out, "a+b", 3);
    assert_int_equal(http_pct_decode("%e2%82%AC", 9, false, out, &n), 0);
    assert_int_equal(n, 3);
    assert_memory_equal(out, "\xe2\x82\xac", 3);
    /* Truncated or non-hex escapes. */
    assert_int_equal(http_pct_decode("%", 1, false, out, &n), -1);
    assert_int_equal(http_pct_decode("%4", 2, false, out, &n), -1);
    assert_int_equal(http_pct_decode("%zz", 3, false, out, &n), -1);
    assert_int_equal(http_pct_decode("ab%g0", 5, false, out, &n), -1);
    assert_int_equal(http_pct_decode("", 0, false, out, &n), 0);
    assert_int_equal(n, 0);
}

static void test_path_normal(void **state)
{
    (void)state;
    expect_path("/", "/");
    expect_path("/a", "/a");
    expect_path("/a/", "/a/");
    expect_path("/a/b/c", "/a/b/c");
    expect_path("//a///b", "/a/b");
    expect_path("/a/./b", "/a/b");
    expect_path("/a/b/..", "/a/");
    expect_path("/a/b/../c", "/a/c");
    expect_path("/a/.", "/a/");
    expect_path("/./", "/");
    expect_path("/a/..", "/");
    expect_path("/%41%62", "/Ab");
    expect_path("/caf%C3%A9", "/caf\xc3\xa9");
    expect_path("/a%20b", "/a b");
    expect_path("/static/%2e%2e/etc", "/etc"); /* decoded first, then removed */
    expect_path("/a/b/%2E%2E/%2e%2e/x", "/x");
    expect_path("/s/.%2e/x", "/x");
    expect_path("http://example.com/a/b", "/a/b");
    expect_path("HTTPS://example.com", "/");
    expect_path("/a\\b", "/a\\b"); /* a backslash is an ordinary byte in a path */
}

static void test_path_bad(void **state)
{
    (void)state;
    expect_bad_path("");
    expect_bad_path("a/b");
    expect_bad_path("*");
    expect_bad_path("/..");
    expect_bad_path("/a/../..");
    expect_bad_path("/%2e%2e/etc/passwd");
    expect_bad_path("/a/%2e%2e/%2E%2e/b");
    expect_bad_path("/static/%2E%2E/%2e%2e/x");
    expect_bad_path("/a%2Fb"); /* encoded slash */
    expect_bad_path("/a%2fb");
    expect_bad_path("/a%00b");               /* encoded NUL */
    expect_bad_path("/a%0d%0aSet-Cookie:x"); /* header injection */
    expect_bad_path("/a\tb");                /* raw control character */
    expect_bad_path("/a%7f");
    expect_bad_path("/%");
    expect_bad_path("/%4");
    expect_bad_path("/%G1");
    expect_bad_path("/%C3");       /* truncated UTF-8 */
    expect_bad_path("/%C0%AF");    /* overlong "/" */
    expect_bad_path("/%ED%A0%80"); /* surrogate */
    expect_bad_path("/\xff");
}

static void test_path_long(void **state)
{
    (void)state;
    /* Many segments and dot-segments stay linear and correct. */
    struct strbuf sb;
    strbuf_init(&sb);
    for (int i = 0; i < 2000; i++)
        strbuf_puts(&sb, "/seg");
    for (int i = 0; i < 1999; i++)
        strbuf_puts(&sb, "/..");
    arena *a = arena_new(0);
    int rc;
    const char *out = norm(a, strbuf_cstr(&sb), &rc);
    assert_int_equal(rc, 0);
    assert_string_equal(out, "/seg/");
    arena_free(a);
    strbuf_deinit(&sb);
}

static void test_urlencoded(void **state)
{
    (void)state;
    arena *a = arena_new(0);
    struct http_param *p;
    size_t n;
    struct echo_err err = {0};
    const char *s = "a=1&b=hello+world&a=2&empty=&flag&&c=%E2%82%AC&=x";
    assert_int_equal(http_urlencoded_parse(a, s, strlen(s), 100, 0, &p, &n, &err), 0);
    assert_int_equal(n, 7);
    assert_string_equal(p[0].name, "a");
    assert_string_equal(p[0].value, "1");
    assert_string_equal(p[1].value, "hello world");
    assert_string_equal(p[2].name, "a");
    assert_string_equal(p[2].value, "2");
    assert_string_equal(p[3].name, "empty");
    assert_string_equal(p[3].value, "");
    assert_string_equal(p[4].name, "flag");
    assert_string_equal(p[4].value, "");
    assert_string_equal(p[5].value, "\xe2\x82\xac");
    assert_int_equal(p[5].value_len, 3);
    assert_string_equal(p[6].name, "");
    assert_string_equal(p[6].value, "x");
    /* Values may hold "=". */
    s = "k=a=b";
    assert_int_equal(http_urlencoded_parse(a, s, strlen(s), 100, 0, &p, &n, &err), 0);
    assert_string_equal(p[0].value, "a=b");
    /* Empty input. */
    assert_int_equal(http_urlencoded_parse(a, "", 0, 100, 0, &p, &n, &err), 0);
    assert_int_equal(n, 0);
    assert_int_equal(http_urlencoded_parse(a, "&&&", 3, 100, 0, &p, &n, &err), 0);
    assert_int_equal(n, 0);
    arena_free(a);
}

static void test_urlencoded_bad(void **state)
{
    (void)state;
    arena *a = arena_new(0);
    struct http_param *p;
    size_t n;
    struct echo_err err = {0};
    static const char *const bad[] = {"a=%",    "a=%2",  "a=%zz",    "%=1",   "a=%00",
                                      "a%00=1", "a=%FF", "a=%C3%28", "a=\xc3"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = http_urlencoded_parse(a, bad[i], strlen(bad[i]), 100, 0, &p, &n, &err);
        if (rc != HTTP_ERR_BAD_REQUEST) fail_msg("'%s' should be refused (rc %d)", bad[i], rc);
        assert_true(err.msg[0] != 0);
    }
    /* Limits: pairs and value length. */
    const char *s = "a=1&b=2&c=3";
    assert_int_equal(http_urlencoded_parse(a, s, strlen(s), 2, 0, &p, &n, &err),
                     HTTP_ERR_TOO_LARGE);
    assert_int_equal(http_urlencoded_parse(a, s, strlen(s), 3, 0, &p, &n, &err), 0);
    s = "a=12345";
    assert_int_equal(http_urlencoded_parse(a, s, strlen(s), 3, 4, &p, &n, &err),
                     HTTP_ERR_TOO_LARGE);
    assert_int_equal(http_urlencoded_parse(a, s, strlen(s), 3, 5, &p, &n, &err), 0);
    /* Separators only: no pairs, and no allocation in proportion. */
    char *amps = malloc(200001);
    memset(amps, '&', 200000);
    amps[200000] = 0;
    assert_int_equal(http_urlencoded_parse(a, amps, 200000, 10, 0, &p, &n, &err), 0);
    assert_int_equal(n, 0);
    amps[100] = 'x';
    amps[5000] = 'y';
    assert_int_equal(http_urlencoded_parse(a, amps, 200000, 10, 0, &p, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(p[1].name, "y");
    free(amps);
    arena_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pct_decode), cmocka_unit_test(test_path_normal),
        cmocka_unit_test(test_path_bad),   cmocka_unit_test(test_path_long),
        cmocka_unit_test(test_urlencoded), cmocka_unit_test(test_urlencoded_bad),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
