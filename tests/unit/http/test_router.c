/*
 * test_router.c - route patterns, matching, precedence, 405/OPTIONS, HEAD
 * for GET routes, mounts, and the Allow header (src/http/router.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "http/router.h"

static void h1(http_request *req, http_response *res, void *arg)
{
    (void)req, (void)res, (void)arg;
}
static void h2(http_request *req, http_response *res, void *arg)
{
    (void)req, (void)res, (void)arg;
}

static int tags[8];

static http_router *build(void)
{
    http_router *r = http_router_new();
    struct echo_err err = {0};
    assert_int_equal(http_router_add(r, HTTP_GET, "/", h1, &tags[0], &err), 0);
    assert_int_equal(http_router_add(r, HTTP_GET | HTTP_POST, "/login", h1, &tags[1], &err), 0);
    assert_int_equal(http_router_add(r, HTTP_GET, "/users/<id>", h1, &tags[2], &err), 0);
    assert_int_equal(http_router_add(r, HTTP_GET, "/users/new", h2, &tags[3], &err), 0);
    assert_int_equal(http_router_add(r, HTTP_DELETE, "/users/<id>", h2, &tags[4], &err), 0);
    assert_int_equal(http_router_add(r, HTTP_GET, "/media/avatars/<name>", h1, &tags[5], &err), 0);
    assert_int_equal(http_router_add(r, HTTP_GET, "/a/<x>/b/<y>", h1, &tags[6], &err), 0);
    assert_int_equal(http_router_add(r, HTTP_GET, "/admin/", h1, &tags[7], &err), 0);
    assert_int_equal(http_router_mount(r, "/static/", h2, &tags[0], &err), 0);
    assert_int_equal(http_router_mount(r, "/static/vendor/", h2, &tags[1], &err), 0);
    return r;
}

static enum router_result match(http_router *r, enum http_method m, const char *path,
                                struct router_match *out, arena *a)
{
    return router_match(r, m, path, a, out);
}

static void test_exact_and_params(void **state)
{
    (void)state;
    http_router *r = build();
    arena *a = arena_new(0);
    struct router_match m;
    assert_int_equal(match(r, HTTP_GET, "/", &m, a), ROUTER_ROUTE);
    assert_ptr_equal(m.arg, &tags[0]);
    assert_string_equal(m.route, "/");
    assert_int_equal(match(r, HTTP_POST, "/login", &m, a), ROUTER_ROUTE);
    assert_ptr_equal(m.arg, &tags[1]);
    assert_int_equal(match(r, HTTP_GET, "/users/42", &m, a), ROUTER_ROUTE);
    assert_ptr_equal(m.arg, &tags[2]);
    assert_int_equal(m.nparams, 1);
    assert_string_equal(m.params[0].name, "id");
    assert_string_equal(m.params[0].value, "42");
    assert_string_equal(m.route, "/users/<id>");
    /* A literal segment beats a parameter, whatever the order of adding. */
    assert_int_equal(match(r, HTTP_GET, "/users/new", &m, a), ROUTER_ROUTE);
    assert_ptr_equal(m.arg, &tags[3]);
    assert_int_equal(m.nparams, 0);
    assert_int_equal(match(r, HTTP_DELETE, "/users/7", &m, a), ROUTER_ROUTE);
    assert_ptr_equal(m.arg, &tags[4]);
    assert_int_equal(match(r, HTTP_GET, "/media/avatars/3-256.webp", &m, a), ROUTER_ROUTE);
    assert_string_equal(m.params[0].value, "3-256.webp");
    assert_int_equal(match(r, HTTP_GET, "/a/1/b/2", &m, a), ROUTER_ROUTE);
    assert_int_equal(m.nparams, 2);
    assert_string_equal(m.params[0].name, "x");
    assert_string_equal(m.params[1].value, "2");
    /* Parameters never match an empty or an extra segment. */
    assert_int_equal(match(r, HTTP_GET, "/users/", &m, a), ROUTER_NOT_FOUND);
    assert_int_equal(match(r, HTTP_GET, "/users/1/2", &m, a), ROUTER_NOT_FOUND);
    assert_int_equal(match(r, HTTP_GET, "/users", &m, a), ROUTER_NOT_FOUND);
    assert_int_equal(match(r, HTTP_GET, "/a/1/b", &m, a), ROUTER_NOT_FOUND);
    /* Trailing slashes are significant. */
    assert_int_equal(match(r, HTTP_GET, "/login/", &m, a), ROUTER_NOT_FOUND);
    assert_int_equal(match(r, HTTP_GET, "/admin/", &m, a), ROUTER_ROUTE);
    assert_int_equal(match(r, HTTP_GET, "/admin", &m, a), ROUTER_NOT_FOUND);
    /* Case matters; unknown paths are 404. */
    assert_int_equal(match(r, HTTP_GET, "/LOGIN", &m, a), ROUTER_NOT_FOUND);
    assert_int_equal(match(r, HTTP_GET, "/nope", &m, a), ROUTER_NOT_FOUND);
    arena_free(a);
    http_router_free(r);
}

static void test_methods(void **state)
{
    (void)state;
    http_router *r = build();
    arena *a = arena_new(0);
    struct router_match m;
    /* HEAD is served by GET routes. */
    assert_int_equal(match(r, HTTP_HEAD, "/users/9", &m, a), ROUTER_ROUTE);
    assert_ptr_equal(m.arg, &tags[2]);
    /* 405 with the methods the path accepts. */
    assert_int_equal(match(r, HTTP_POST, "/users/9", &m, a), ROUTER_NOT_ALLOWED);
    assert_int_equal(m.allowed, HTTP_GET | HTTP_HEAD | HTTP_DELETE);
    assert_int_equal(match(r, HTTP_PUT, "/login", &m, a), ROUTER_NOT_ALLOWED);
    assert_int_equal(match(r, HTTP_OTHER, "/", &m, a), ROUTER_NOT_ALLOWED);
    assert_int_equal(match(r, HTTP_OPTIONS, "/login", &m, a), ROUTER_OPTIONS);
    assert_int_equal(m.allowed, HTTP_GET | HTTP_HEAD | HTTP_POST);
    struct strbuf sb;
    strbuf_init(&sb);
    router_allow_header(m.allowed | HTTP_OPTIONS, &sb);
    assert_string_equal(strbuf_cstr(&sb), "GET, HEAD, POST, OPTIONS");
    strbuf_deinit(&sb);
    /* An explicit HEAD route wins over GET for HEAD. */
    struct echo_err err = {0};
    assert_int_equal(http_router_add(r, HTTP_HEAD, "/login", h2, &tags[7], &err), 0);
    assert_int_equal(match(r, HTTP_HEAD, "/login", &m, a), ROUTER_ROUTE);
    assert_ptr_equal(m.arg, &tags[7]);
    arena_free(a);
    http_router_free(r);
}

static void test_mounts(void **state)
{
    (void)state;
    http_router *r = build();
    arena *a = arena_new(0);
    struct router_match m;
    assert_int_equal(match(r, HTTP_GET, "/static/css/echo.css", &m, a), ROUTER_MOUNT);
    assert_ptr_equal(m.arg, &tags[0]);
    assert_string_equal(m.mount_path, "css/echo.css");
    assert_string_equal(m.route, "/static/");
    /* The longest prefix wins. */
    assert_int_equal(match(r, HTTP_GET, "/static/vendor/x.js", &m, a), ROUTER_MOUNT);
    assert_ptr_equal(m.arg, &tags[1]);
    assert_string_equal(m.mount_path, "x.js");
    /* Any method reaches a mount (the handler decides). */
    assert_int_equal(match(r, HTTP_POST, "/static/a", &m, a), ROUTER_MOUNT);
    assert_int_equal(match(r, HTTP_GET, "/static/", &m, a), ROUTER_MOUNT);
    assert_string_equal(m.mount_path, "");
    assert_int_equal(match(r, HTTP_GET, "/static", &m, a), ROUTER_NOT_FOUND);
    assert_int_equal(match(r, HTTP_GET, "/staticx/a", &m, a), ROUTER_NOT_FOUND);
    arena_free(a);
    http_router_free(r);
}

static void test_bad_patterns(void **state)
{
    (void)state;
    http_router *r = http_router_new();
    struct echo_err err = {0};
    static const char *const bad[] = {"",       "login",  "/a//b",    "/<>",    "/<a-b>",
                                      "/x<id>", "/<id>x", "/<a>/<a>", "/<a b>", "/a/</b"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err.msg[0] = 0;
        if (http_router_add(r, HTTP_GET, bad[i], h1, NULL, &err) != HTTP_ERR_INVALID)
            fail_msg("pattern '%s' should be refused", bad[i]);
        assert_true(err.msg[0] != 0);
    }
    assert_int_equal(http_router_add(r, HTTP_GET, NULL, h1, NULL, &err), HTTP_ERR_INVALID);
    assert_int_equal(http_router_add(r, HTTP_GET, "/x", NULL, NULL, &err), HTTP_ERR_INVALID);
    assert_int_equal(http_router_add(r, 0, "/x", h1, NULL, &err), HTTP_ERR_INVALID);
    /* Duplicates: same pattern and an overlapping method. */
    assert_int_equal(http_router_add(r, HTTP_GET, "/d", h1, NULL, &err), 0);
    assert_int_equal(http_router_add(r, HTTP_POST, "/d", h1, NULL, &err), 0);
    assert_int_equal(http_router_add(r, HTTP_GET | HTTP_PUT, "/d", h1, NULL, &err),
                     HTTP_ERR_INVALID);
    /* Mount prefixes. */
    assert_int_equal(http_router_mount(r, "static", h1, NULL, &err), HTTP_ERR_INVALID);
    assert_int_equal(http_router_mount(r, "/static", h1, NULL, &err), HTTP_ERR_INVALID);
    assert_int_equal(http_router_mount(r, "/s/", h1, NULL, &err), 0);
    assert_int_equal(http_router_mount(r, "/s/", h1, NULL, &err), HTTP_ERR_INVALID);
    assert_int_equal(http_router_mount_static(r, "/t/", NULL, &err), HTTP_ERR_INVALID);
    http_router_free(r);
}

static void test_many_routes(void **state)
{
    (void)state;
    /* Each of 200 routes is found, with its own parameter. */
    http_router *r = http_router_new();
    struct echo_err err = {0};
    char pat[64], path[64];
    static int marks[200];
    for (int i = 0; i < 200; i++) {
        snprintf(pat, sizeof(pat), "/area%d/<item>", i);
        assert_int_equal(http_router_add(r, HTTP_GET, pat, h1, &marks[i], &err), 0);
    }
    arena *a = arena_new(0);
    struct router_match m;
    for (int i = 0; i < 200; i++) {
        snprintf(path, sizeof(path), "/area%d/thing%d", i, i);
        assert_int_equal(router_match(r, HTTP_GET, path, a, &m), ROUTER_ROUTE);
        assert_ptr_equal(m.arg, &marks[i]);
        snprintf(path, sizeof(path), "thing%d", i);
        assert_string_equal(m.params[0].value, path);
    }
    arena_free(a);
    http_router_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_and_params), cmocka_unit_test(test_methods),
        cmocka_unit_test(test_mounts),           cmocka_unit_test(test_bad_patterns),
        cmocka_unit_test(test_many_routes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
