/*
 * test_static.c - static path safety (names, traversal, symlinks leaving the
 * folder, FIFOs), validators (ETag matching, HTTP dates), MIME types and the
 * Accept ranking used for JSON errors (src/http/static.c, text.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "http/static.h"
#include "http/text.h"

static void test_path_ok(void **state)
{
    (void)state;
    static const char *const good[] = {"a",
                                       "css/echo.css",
                                       "vendor/socket.io.min.js",
                                       "img/a b.png",
                                       "x/y/z/w.txt",
                                       "caf\xc3\xa9.txt",
                                       "a..b",
                                       "a."};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        if (!http_static_path_ok(good[i])) fail_msg("'%s' should be allowed", good[i]);
    static const char *const bad[] = {"",      "/etc/passwd", "..",          "../x",     "a/../b",
                                      "a/./b", ".",           "./a",         "a/",       "a//b",
                                      ".env",  "css/.hidden", ".git/config", "a\\..\\b", "a\\b",
                                      "a\nb",  "a\x01",       "a\x7f"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (http_static_path_ok(bad[i])) fail_msg("'%s' should be refused", bad[i]);
    assert_false(http_static_path_ok(NULL));
}

struct tree {
    char root[128];   /* tmp/xxx */
    char served[160]; /* tmp/xxx/static */
    int dirfd;
};

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* static/ with: ok.txt, sub/inner.txt, link_in -> sub/inner.txt,
 * link_out -> ../secret.txt, sub/up -> .., abs -> /etc/hostname, fifo;
 * secret.txt next to static/. */
static int setup_tree(void **state)
{
    struct tree *t = calloc(1, sizeof(*t));
    snprintf(t->root, sizeof(t->root), "/tmp/echo-static-XXXXXX");
    assert_non_null(mkdtemp(t->root));
    snprintf(t->served, sizeof(t->served), "%s/static", t->root);
    assert_int_equal(mkdir(t->served, 0700), 0);
    char p[512];
    snprintf(p, sizeof(p), "%s/secret.txt", t->root);
    write_file(p, "secret");
    snprintf(p, sizeof(p), "%s/ok.txt", t->served);
    write_file(p, "ok");
    snprintf(p, sizeof(p), "%s/sub", t->served);
    assert_int_equal(mkdir(p, 0700), 0);
    snprintf(p, sizeof(p), "%s/sub/inner.txt", t->served);
    write_file(p, "inner");
    snprintf(p, sizeof(p), "%s/link_in", t->served);
    assert_int_equal(symlink("sub/inner.txt", p), 0);
    snprintf(p, sizeof(p), "%s/link_out", t->served);
    assert_int_equal(symlink("../secret.txt", p), 0);
    snprintf(p, sizeof(p), "%s/sub/up", t->served);
    assert_int_equal(symlink("..", p), 0);
    snprintf(p, sizeof(p), "%s/abs", t->served);
    assert_int_equal(symlink("/etc/hostname", p), 0);
    snprintf(p, sizeof(p), "%s/fifo", t->served);
    assert_int_equal(mkfifo(p, 0600), 0);
    t->dirfd = open(t->served, O_PATH | O_DIRECTORY | O_CLOEXEC);
    assert_true(t->dirfd >= 0);
    *state = t;
    return 0;
}

static int teardown_tree(void **state)
{
    struct tree *t = *state;
    close(t->dirfd);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", t->root);
    assert_int_equal(system(cmd), 0);
    http_static_force_fallback(false);
    free(t);
    return 0;
}

static char *read_fd(int fd)
{
    static char buf[64];
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    buf[n > 0 ? n : 0] = 0;
    return buf;
}

static void check_confinement(struct tree *t, bool follows_inner_links)
{
    int fd = http_static_open(t->dirfd, "ok.txt");
    assert_true(fd >= 0);
    assert_string_equal(read_fd(fd), "ok");
    fd = http_static_open(t->dirfd, "sub/inner.txt");
    assert_true(fd >= 0);
    assert_string_equal(read_fd(fd), "inner");
    /* Symlinks leaving the folder never open. */
    assert_int_equal(http_static_open(t->dirfd, "link_out"), -1);
    assert_int_equal(http_static_open(t->dirfd, "sub/up/secret.txt"), -1);
    assert_int_equal(http_static_open(t->dirfd, "abs"), -1);
    assert_int_equal(http_static_open(t->dirfd, "../secret.txt"), -1);
    assert_int_equal(http_static_open(t->dirfd, "missing.txt"), -1);
    assert_int_equal(errno, ENOENT);
    /* A symlink staying inside: followed with openat2, refused by the walk. */
    fd = http_static_open(t->dirfd, "link_in");
    if (follows_inner_links) {
        assert_true(fd >= 0);
        assert_string_equal(read_fd(fd), "inner");
    } else {
        assert_int_equal(fd, -1);
    }
    /* A FIFO opens without blocking (O_NONBLOCK); the server then refuses it
     * as not a regular file. */
    fd = http_static_open(t->dirfd, "fifo");
    if (fd >= 0) {
        struct stat sb;
        assert_int_equal(fstat(fd, &sb), 0);
        assert_false(S_ISREG(sb.st_mode));
        close(fd);
    }
}

static void test_open_confined(void **state)
{
    struct tree *t = *state;
    http_static_force_fallback(false);
    /* Whether openat2 exists decides if inner links work; both are safe. */
    long probe = http_static_open(t->dirfd, "link_in");
    bool has_openat2 = probe >= 0;
    if (probe >= 0) close((int)probe);
    check_confinement(t, has_openat2);
}

static void test_open_fallback(void **state)
{
    struct tree *t = *state;
    http_static_force_fallback(true);
    check_confinement(t, false);
    http_static_force_fallback(false);
}

static void test_etag(void **state)
{
    (void)state;
    char etag[64];
    http_static_etag(5123, 0x17a2b3c4d5e6f708ull, etag, sizeof(etag));
    assert_string_equal(etag, "\"1403-17a2b3c4d5e6f708\"");
    assert_true(http_etag_matches("\"1403-17a2b3c4d5e6f708\"", etag));
    assert_true(http_etag_matches("W/\"1403-17a2b3c4d5e6f708\"", etag));
    assert_true(http_etag_matches("\"x\", \"1403-17a2b3c4d5e6f708\"", etag));
    assert_true(http_etag_matches("*", etag));
    assert_false(http_etag_matches("\"1403-17a2b3c4d5e6f709\"", etag));
    assert_false(http_etag_matches("\"1403\"", etag));
    assert_false(http_etag_matches("", etag));
    assert_false(http_etag_matches(NULL, etag));
    assert_false(http_etag_matches("\"unterminated", etag));
}

static void test_dates(void **state)
{
    (void)state;
    char buf[40];
    http_date_format(784111777, buf, sizeof(buf));
    assert_string_equal(buf, "Sun, 06 Nov 1994 08:49:37 GMT");
    http_date_format(0, buf, sizeof(buf));
    assert_string_equal(buf, "Thu, 01 Jan 1970 00:00:00 GMT");
    time_t t;
    assert_int_equal(http_date_parse("Sun, 06 Nov 1994 08:49:37 GMT", &t), 0);
    assert_int_equal(t, 784111777);
    assert_int_equal(http_date_parse("Sunday, 06-Nov-94 08:49:37 GMT", &t), 0);
    assert_int_equal(t, 784111777);
    assert_int_equal(http_date_parse("Sun Nov  6 08:49:37 1994", &t), 0);
    assert_int_equal(t, 784111777);
    assert_int_equal(http_date_parse("Tue, 29 Feb 2028 23:59:59 GMT", &t), 0);
    http_date_format(t, buf, sizeof(buf));
    assert_string_equal(buf, "Tue, 29 Feb 2028 23:59:59 GMT");
    static const char *const bad[] = {"",
                                      "yesterday",
                                      "Sun, 06 Nov 1994 08:49:37",
                                      "Sun, 06 Nov 1994 08:49:37 UTC",
                                      "Sun, 06 Foo 1994 08:49:37 GMT",
                                      "Sun, 6 Nov 1994 08:49:37 GMT",
                                      "Sun, 06 Nov 1994 25:49:37 GMT",
                                      "Sun, 06 Nov 94 08:49:37 GMT",
                                      "Sun, 06 No",
                                      "Sun,",
                                      "Sunday, 06-Nov-1994 08:49:37 GMT",
                                      "Sun Nov  6 08:49:37 1994 extra",
                                      "Sun Nov"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (http_date_parse(bad[i], &t) == 0) fail_msg("'%s' should not parse", bad[i]);
    assert_int_equal(http_date_parse(NULL, &t), -1);
}

static void test_mime(void **state)
{
    (void)state;
    assert_string_equal(http_mime_type("css/echo.css"), "text/css; charset=utf-8");
    assert_string_equal(http_mime_type("a.JS"), "text/javascript; charset=utf-8");
    assert_string_equal(http_mime_type("logo.svg"), "image/svg+xml");
    assert_string_equal(http_mime_type("x.webp"), "image/webp");
    assert_string_equal(http_mime_type("f.woff2"), "font/woff2");
    assert_string_equal(http_mime_type("noext"), "application/octet-stream");
    assert_string_equal(http_mime_type("dir.css/file"), "application/octet-stream");
    assert_string_equal(http_mime_type("trailing."), "application/octet-stream");
    assert_string_equal(http_mime_type("a.exe"), "application/octet-stream");
}

static void test_accept(void **state)
{
    (void)state;
    assert_true(http_accept_prefers_json("application/json"));
    assert_true(http_accept_prefers_json("application/json, text/plain, */*"));
    assert_true(http_accept_prefers_json("text/html;q=0.5, application/json"));
    assert_true(http_accept_prefers_json("application/*"));
    assert_false(http_accept_prefers_json(NULL));
    assert_false(http_accept_prefers_json(""));
    assert_false(http_accept_prefers_json("*/*"));
    assert_false(http_accept_prefers_json(
        "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"));
    assert_false(http_accept_prefers_json("application/json;q=0, */*"));
    assert_false(http_accept_prefers_json("text/html, application/json"));
    assert_false(http_accept_prefers_json("application/json;q=0.5, text/html"));
    assert_false(http_accept_prefers_json("garbage;;;,,,/"));
    int spec;
    assert_true(http_accept_quality("text/*;q=0.3, text/html;q=0.7", "text/html", &spec) == 0.7);
    assert_int_equal(spec, 2);
    assert_true(http_accept_quality("text/*;q=0.3", "text/plain", &spec) == 0.3);
    assert_int_equal(spec, 1);
    assert_true(http_accept_quality("image/png", "text/html", &spec) < 0);
}

static void test_tokens(void **state)
{
    (void)state;
    assert_true(http_is_token("Content-Type"));
    assert_true(http_is_token("x!#$%&'*+-.^_`|~1"));
    assert_false(http_is_token(""));
    assert_false(http_is_token("a b"));
    assert_false(http_is_token("a:b"));
    assert_false(http_is_token("caf\xc3\xa9"));
    assert_true(http_is_header_value("text/html; q=1\tx"));
    assert_false(http_is_header_value("a\rb"));
    assert_false(http_is_header_value("a\nb"));
    assert_false(http_is_header_value("a\x7f"));
    assert_false(http_is_header_value(NULL));
    struct strbuf sb;
    strbuf_init(&sb);
    http_html_escape(&sb, "<a href=\"x\">'&'</a>");
    assert_string_equal(strbuf_cstr(&sb), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
    strbuf_deinit(&sb);
    assert_string_equal(http_status_reason(404), "Not Found");
    assert_string_equal(http_status_title(431), "Headers too large");
    assert_string_equal(http_status_reason(299), "Unknown");
    assert_true(strlen(http_status_message(599)) > 10);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_path_ok),
        cmocka_unit_test_setup_teardown(test_open_confined, setup_tree, teardown_tree),
        cmocka_unit_test_setup_teardown(test_open_fallback, setup_tree, teardown_tree),
        cmocka_unit_test(test_etag),
        cmocka_unit_test(test_dates),
        cmocka_unit_test(test_mime),
        cmocka_unit_test(test_accept),
        cmocka_unit_test(test_tokens),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
