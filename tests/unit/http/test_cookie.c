/*
 * test_cookie.c - Cookie header parsing, Set-Cookie formatting, and the
 * response builder's header rules (src/http/cookie.c, response.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "http/cookie.h"
#include "http/internal.h"

static void test_parse(void **state)
{
    (void)state;
    arena *a = arena_new(0);
    struct http_param *p = NULL;
    size_t n = 0;
    http_cookie_parse(a, "session=abc123; theme=dark;lang=en ;  q=\"quoted\"; empty=", &p, &n);
    assert_int_equal(n, 5);
    assert_string_equal(p[0].name, "session");
    assert_string_equal(p[0].value, "abc123");
    assert_string_equal(p[1].name, "theme");
    assert_string_equal(p[2].name, "lang");
    assert_string_equal(p[2].value, "en");
    assert_string_equal(p[3].value, "quoted");
    assert_string_equal(p[4].name, "empty");
    assert_string_equal(p[4].value, "");
    /* A second Cookie header appends; duplicates are kept in order. */
    http_cookie_parse(a, "session=second", &p, &n);
    assert_int_equal(n, 6);
    assert_string_equal(p[0].value, "abc123");
    assert_string_equal(p[5].value, "second");
    arena_free(a);
}

static void test_parse_malformed(void **state)
{
    (void)state;
    arena *a = arena_new(0);
    struct http_param *p = NULL;
    size_t n = 0;
    /* Bad pairs are skipped, good ones around them kept. */
    http_cookie_parse(a,
                      "novalue; =anon; bad name=x; ok=1; v=a b; ctl=a\x01; "
                      "utf=caf\xc3\xa9; comma=a,b; bs=a\\b; ok2=2;;;",
                      &p, &n);
    assert_int_equal(n, 2);
    assert_string_equal(p[0].name, "ok");
    assert_string_equal(p[1].name, "ok2");
    n = 0;
    http_cookie_parse(a, "", &p, &n);
    assert_int_equal(n, 0);
    http_cookie_parse(a, NULL, &p, &n);
    assert_int_equal(n, 0);
    http_cookie_parse(a, ";;  ;", &p, &n);
    assert_int_equal(n, 0);
    arena_free(a);
}

static void test_format(void **state)
{
    (void)state;
    struct strbuf sb;
    struct echo_err err = {0};
    strbuf_init(&sb);
    struct http_cookie c = {.name = "sid",
                            .value = "tok-EN_123",
                            .path = "/",
                            .max_age = 86400,
                            .http_only = true,
                            .secure = true,
                            .same_site = HTTP_SAME_SITE_LAX};
    assert_int_equal(http_cookie_format(&c, &sb, &err), 0);
    assert_string_equal(strbuf_cstr(&sb),
                        "sid=tok-EN_123; Path=/; Max-Age=86400; Secure; HttpOnly; SameSite=Lax");
    strbuf_deinit(&sb);

    strbuf_init(&sb);
    struct http_cookie e = {.name = "x",
                            .value = "1",
                            .expires = 784111777,
                            .domain = "example.com",
                            .same_site = HTTP_SAME_SITE_STRICT};
    assert_int_equal(http_cookie_format(&e, &sb, &err), 0);
    assert_string_equal(strbuf_cstr(&sb), "x=1; Domain=example.com; "
                                          "Expires=Sun, 06 Nov 1994 08:49:37 GMT; "
                                          "SameSite=Strict");
    strbuf_deinit(&sb);

    /* Session cookie: no Max-Age, no Expires. */
    strbuf_init(&sb);
    struct http_cookie s = {.name = "a", .value = ""};
    assert_int_equal(http_cookie_format(&s, &sb, &err), 0);
    assert_string_equal(strbuf_cstr(&sb), "a=");
    strbuf_deinit(&sb);
}

static void test_format_refused(void **state)
{
    (void)state;
    struct strbuf sb;
    struct echo_err err = {0};
    strbuf_init(&sb);
    const struct http_cookie bad[] = {
        {.name = NULL, .value = "v"},
        {.name = "", .value = "v"},
        {.name = "a b", .value = "v"},
        {.name = "a;b", .value = "v"},
        {.name = "a", .value = "v; Domain=evil.com"},
        {.name = "a", .value = "v\r\nSet-Cookie: x=y"},
        {.name = "a", .value = "with space"},
        {.name = "a", .value = "quote\""},
        {.name = "a", .value = "v", .path = "/;Secure"},
        {.name = "a", .value = "v", .domain = "x\n"},
        {.name = "a", .value = "v", .same_site = HTTP_SAME_SITE_NONE},
        {.name = "a", .value = "v", .max_age = -5},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err.msg[0] = 0;
        if (http_cookie_format(&bad[i], &sb, &err) != HTTP_ERR_INVALID)
            fail_msg("cookie %zu should be refused", i);
        assert_true(err.msg[0] != 0);
    }
    assert_int_equal(sb.len, 0); /* nothing written for refused cookies */
    strbuf_deinit(&sb);
    struct http_cookie ok = {
        .name = "a", .value = "v", .secure = true, .same_site = HTTP_SAME_SITE_NONE};
    strbuf_init(&sb);
    assert_int_equal(http_cookie_format(&ok, &sb, &err), 0);
    strbuf_deinit(&sb);
}

static void test_response_headers(void **state)
{
    (void)state;
    http_response *res = http_response_new();
    assert_int_equal(http_response_status(res), 200);
    assert_int_equal(http_response_add_header(res, "X-A", "1"), 0);
    assert_int_equal(http_response_add_header(res, "x-a", "2"), 0);
    assert_string_equal(http_response_header(res, "X-a"), "1");
    assert_int_equal(http_response_set_header(res, "X-A", "3"), 0);
    assert_string_equal(http_response_header(res, "x-A"), "3");
    assert_int_equal(res->nheaders, 1);
    /* Refused: injection, bad names, headers the server manages. */
    assert_int_equal(http_response_add_header(res, "X-B", "a\r\nSet-Cookie: x"), HTTP_ERR_INVALID);
    assert_int_equal(http_response_add_header(res, "X-B", "a\nb"), HTTP_ERR_INVALID);
    assert_int_equal(http_response_add_header(res, "Bad Name", "v"), HTTP_ERR_INVALID);
    assert_int_equal(http_response_add_header(res, "", "v"), HTTP_ERR_INVALID);
    assert_int_equal(http_response_add_header(res, "Content-Length", "5"), HTTP_ERR_INVALID);
    assert_int_equal(http_response_add_header(res, "connection", "close"), HTTP_ERR_INVALID);
    assert_int_equal(http_response_add_header(res, "Transfer-Encoding", "x"), HTTP_ERR_INVALID);
    assert_int_equal(http_response_add_header(res, "X-Tab", "a\tb"), 0);
    assert_null(http_response_header(res, "X-B"));
    /* Content-Type is the body's. */
    http_response_set_header(res, "Content-Type", "text/csv");
    assert_string_equal(http_response_header(res, "content-type"), "text/csv");
    http_response_html(res, "<p>x</p>", 8);
    assert_string_equal(http_response_header(res, "Content-Type"), "text/html; charset=utf-8");
    assert_int_equal(res->kind, BODY_MEM);
    assert_int_equal(res->body_len, 8);
    /* Cookies and deletion. */
    struct http_cookie c = {.name = "s", .value = "v", .path = "/", .http_only = true};
    assert_int_equal(http_response_set_cookie(res, &c), 0);
    struct http_cookie bad = {.name = "s", .value = "a;b"};
    assert_int_equal(http_response_set_cookie(res, &bad), HTTP_ERR_INVALID);
    assert_int_equal(http_response_delete_cookie(res, "old", "/"), 0);
    size_t cookies = 0;
    for (size_t i = 0; i < res->nheaders; i++) {
        if (!strcmp(res->headers[i].name, "Set-Cookie")) {
            cookies++;
            if (cookies == 2)
                assert_string_equal(res->headers[i].value,
                                    "old=; Path=/; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 "
                                    "GMT");
        }
    }
    assert_int_equal(cookies, 2);
    http_response_remove_header(res, "set-cookie");
    assert_null(http_response_header(res, "Set-Cookie"));
    http_response_free(res);
}

static void test_response_bodies(void **state)
{
    (void)state;
    http_response *res = http_response_new();
    /* An error discards the body, keeps headers; a later body wins. */
    http_response_text(res, "hello");
    http_response_set_header(res, "Retry-After", "3");
    http_response_error(res, 429, NULL);
    assert_int_equal(http_response_status(res), 429);
    assert_int_equal(res->kind, BODY_NONE);
    assert_string_equal(http_response_header(res, "Retry-After"), "3");
    assert_non_null(res->error_message);
    http_response_error(res, 200, "not an error status");
    assert_int_equal(http_response_status(res), 500);
    json_t *j = json_pack("{s:i}", "a", 1);
    assert_int_equal(http_response_json(res, j), 0);
    json_decref(j);
    assert_int_equal(res->error_status, 0);
    assert_string_equal(res->content_type, "application/json");
    assert_memory_equal(res->body, "{\"a\":1}", 7);
    /* Redirects. */
    assert_int_equal(http_response_redirect(res, 303, "/login?next=%2F"), 0);
    assert_int_equal(http_response_status(res), 303);
    assert_string_equal(http_response_header(res, "Location"), "/login?next=%2F");
    assert_int_equal(http_response_redirect(res, 200, "/x"), 0);
    assert_int_equal(http_response_status(res), 303);
    assert_int_equal(http_response_redirect(res, 302, "/x\r\nSet-Cookie: a=b"), HTTP_ERR_INVALID);
    assert_int_equal(http_response_redirect(res, 302, ""), HTTP_ERR_INVALID);
    /* Strbuf bodies move without a copy. */
    struct strbuf sb;
    strbuf_init(&sb);
    strbuf_puts(&sb, "<h1>page</h1>");
    char *data = sb.data;
    http_response_html_strbuf(res, &sb);
    assert_ptr_equal(res->body, data);
    assert_int_equal(sb.len, 0);
    /* Invalid statuses become 500 (and are logged). */
    http_response_set_status(res, 42);
    assert_int_equal(http_response_status(res), 500);
    http_response_set_status(res, 201);
    assert_int_equal(http_response_status(res), 201);
    assert_int_equal(http_response_file(res, -1, 0, 0, NULL), HTTP_ERR_INVALID);
    http_response_free(res);
    http_response_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_parse_malformed),
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_format_refused),
        cmocka_unit_test(test_response_headers),
        cmocka_unit_test(test_response_bodies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
