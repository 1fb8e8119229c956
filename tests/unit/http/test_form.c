/*
 * test_form.c - the form body decoder (src/http/form.c): urlencoded and
 * multipart/form-data, well-formed bodies from real clients and every kind
 * of malformed one (bad boundaries, missing CRLFs, truncated parts, huge
 * headers, zero-length and binary files, duplicate fields, limits).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "http/form.h"

static const struct http_form_limits limits = {
    .max_parts = 16, .max_field_bytes = 1024, .max_file_bytes = 4096, .max_header_bytes = 512};

static int parse(arena *a, const char *ct, const void *body, size_t len, struct http_form *f)
{
    struct echo_err err = {0};
    int rc = http_form_parse(a, ct, body, len, &limits, f, &err);
    if (rc != 0) assert_true(err.msg[0] != 0); /* every refusal says why */
    return rc;
}

#define MP "multipart/form-data; boundary=XyZ"

static void test_types(void **state)
{
    (void)state;
    assert_true(http_form_is_form_type("application/x-www-form-urlencoded"));
    assert_true(http_form_is_form_type("application/x-www-form-urlencoded; charset=UTF-8"));
    assert_true(http_form_is_form_type(" Multipart/Form-Data ; boundary=a"));
    assert_false(http_form_is_form_type("application/json"));
    assert_false(http_form_is_form_type("multipart/mixed; boundary=a"));
    assert_false(http_form_is_form_type(NULL));
    assert_false(http_form_is_form_type("application/x-www-form-urlencodedX"));
    arena *a = arena_new(0);
    struct http_form f;
    assert_int_equal(parse(a, "text/plain", "a=b", 3, &f), HTTP_ERR_UNSUPPORTED);
    arena_free(a);
}

static void test_urlencoded_body(void **state)
{
    (void)state;
    arena *a = arena_new(0);
    struct http_form f;
    const char *b = "username=ann&password=p%40ss+word&remember=1&username=dup";
    assert_int_equal(parse(a, "application/x-www-form-urlencoded", b, strlen(b), &f), 0);
    assert_int_equal(f.nfields, 4);
    assert_int_equal(f.nfiles, 0);
    assert_string_equal(f.fields[1].value, "p@ss word");
    assert_string_equal(f.fields[3].name, "username");
    assert_string_equal(f.fields[3].value, "dup");
    /* Empty body: no fields, no error. */
    assert_int_equal(parse(a, "application/x-www-form-urlencoded", "", 0, &f), 0);
    assert_int_equal(f.nfields, 0);
    assert_int_equal(parse(a, "application/x-www-form-urlencoded", NULL, 0, &f), 0);
    arena_free(a);
}

static void test_multipart_basic(void **state)
{
    (void)state;
    arena *a = arena_new(0);
    struct http_form f;
    static const char body[] =
        "--XyZ\r\n"
        "Content-Disposition: form-data; name=\"title\"\r\n"
        "\r\n"
        "Hello, world\r\n"
        "--XyZ\r\n"
        "Content-Disposition: form-data; name=\"avatar\"; filename=\"me.png\"\r\n"
        "Content-Type: image/png\r\n"
        "\r\n"
        "\x89PNG\r\n\x1a\n\0\0bin\r\n"
        "--XyZ\r\n"
        "content-disposition: FORM-DATA; name=empty\r\n"
        "\r\n"
        "\r\n"
        "--XyZ\r\n"
        "Content-Disposition: form-data; name=\"title\"\r\n"
        "\r\n"
        "second\r\n"
        "--XyZ--\r\n";
    assert_int_equal(parse(a, MP, body, sizeof(body) - 1, &f), 0);
    assert_int_equal(f.nfields, 3);
    assert_string_equal(f.fields[0].name, "title");
    assert_string_equal(f.fields[0].value, "Hello, world");
    assert_string_equal(f.fields[1].name, "empty");
    assert_string_equal(f.fields[1].value, "");
    assert_string_equal(f.fields[2].value, "second"); /* duplicates kept in order */
    assert_int_equal(f.nfiles, 1);
    assert_string_equal(f.files[0].field, "avatar");
    assert_string_equal(f.files[0].filename, "me.png");
    assert_string_equal(f.files[0].content_type, "image/png");
    assert_int_equal(f.files[0].size, 13);
    assert_memory_equal(f.files[0].data, "\x89PNG\r\n\x1a\n\0\0bin", 13);
    arena_free(a);
}

static void test_multipart_variants(void **state)
{
    (void)state;
    arena *a = arena_new(0);
    struct http_form f;
    /* Preamble and epilogue, quoted boundary, padding after a delimiter,
     * no CRLF after the close delimiter. */
    static const char b1[] = "This is a preamble\r\n"
                             "--b:1 2\r\n"
                             "Content-Disposition: form-data; name=\"x\"\r\n\r\n"
                             "1\r\n"
                             "--b:1 2  \t\r\n"
                             "Content-Disposition: form-data; name=\"f\"; filename=\"\"\r\n\r\n"
                             "\r\n"
                             "--b:1 2--";
    assert_int_equal(parse(a, "multipart/form-data; boundary=\"b:1 2\"", b1, sizeof(b1) - 1, &f),
                     0);
    assert_int_equal(f.nfields, 1);
    assert_int_equal(f.nfiles, 1);
    assert_string_equal(f.files[0].filename, ""); /* "no file chosen" */
    assert_int_equal(f.files[0].size, 0);
    assert_string_equal(f.files[0].content_type, "application/octet-stream");
    /* Windows paths, escaped quotes, RFC 5987 filename*. */
    static const char b2[] =
        "--XyZ\r\n"
        "Content-Disposition: form-data; name=\"a\"; "
        "filename=\"C:\\\\Users\\\\me\\\\pic.jpg\"\r\n\r\n"
        "x\r\n"
        "--XyZ\r\n"
        "Content-Disposition: form-data; name=\"q\\\"uote\"; filename=\"../../etc/passwd\"\r\n\r\n"
        "y\r\n"
        "--XyZ\r\n"
        "Content-Disposition: form-data; name=\"u\"; filename=\"fallback.txt\"; "
        "filename*=UTF-8''%E2%82%AC.txt\r\n\r\n"
        "z\r\n"
        "--XyZ--\r\n";
    assert_int_equal(parse(a, MP, b2, sizeof(b2) - 1, &f), 0);
    assert_int_equal(f.nfiles, 3);
    assert_string_equal(f.files[0].filename, "pic.jpg");
    assert_string_equal(f.files[1].field, "q\"uote");
    assert_string_equal(f.files[1].filename, "passwd");
    assert_string_equal(f.files[2].filename, "\xe2\x82\xac.txt");
    /* No parts at all. */
    assert_int_equal(parse(a, MP, "--XyZ--\r\n", 9, &f), 0);
    assert_int_equal(f.nfields + f.nfiles, 0);
    arena_free(a);
}

static void test_multipart_binary(void **state)
{
    (void)state;
    /* A file holding every byte value, CRs, LFs and "--" but not the
     * delimiter, round-trips exactly. */
    struct strbuf sb;
    strbuf_init(&sb);
    strbuf_puts(&sb, "--XyZ\r\nContent-Disposition: form-data; name=\"bin\"; "
                     "filename=\"b.bin\"\r\n\r\n");
    unsigned char data[600];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (unsigned char)(i * 7 + 3);
    memcpy(data + 100, "\r\n--XyX\r\n--", 11);
    strbuf_append(&sb, data, sizeof(data));
    strbuf_puts(&sb, "\r\n--XyZ--\r\n");
    arena *a = arena_new(0);
    struct http_form f;
    assert_int_equal(parse(a, MP, sb.data, sb.len, &f), 0);
    assert_int_equal(f.nfiles, 1);
    assert_int_equal(f.files[0].size, sizeof(data));
    assert_memory_equal(f.files[0].data, data, sizeof(data));
    arena_free(a);
    strbuf_deinit(&sb);
}

static void expect_refused(const char *ct, const char *body, size_t len, int want)
{
    arena *a = arena_new(0);
    struct http_form f;
    int rc = parse(a, ct, body, len, &f);
    if (rc != want) fail_msg("body '%.60s' gave %d, expected %d", body, rc, want);
    arena_free(a);
}

#define BAD(body) expect_refused(MP, body, sizeof(body) - 1, HTTP_ERR_BAD_REQUEST)

static void test_multipart_malformed(void **state)
{
    (void)state;
    /* Boundaries. */
    expect_refused("multipart/form-data", "--\r\n", 4, HTTP_ERR_BAD_REQUEST);
    expect_refused("multipart/form-data; boundary=", "--\r\n", 4, HTTP_ERR_BAD_REQUEST);
    expect_refused("multipart/form-data; boundary=\"\"", "--\r\n", 4, HTTP_ERR_BAD_REQUEST);
    expect_refused("multipart/form-data; boundary=\"unterminated", "x", 1, HTTP_ERR_BAD_REQUEST);
    char ct[200];
    snprintf(ct, sizeof(ct), "multipart/form-data; boundary=%071d", 0);
    expect_refused(ct, "x", 1, HTTP_ERR_BAD_REQUEST); /* 71 characters */
    expect_refused("multipart/form-data; boundary=a\x01b", "x", 1, HTTP_ERR_BAD_REQUEST);
    /* Empty body, boundary never present, wrong boundary. */
    BAD("");
    BAD("no boundary here");
    BAD("--Other\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx\r\n--Other--");
    /* Missing CRLF after the delimiter / garbage after it. */
    BAD("--XyZContent-Disposition: form-data; name=\"a\"\r\n\r\nx\r\n--XyZ--");
    BAD("--XyZ\nContent-Disposition: form-data; name=\"a\"\n\nx\n--XyZ--");
    BAD("--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx\r\n--XyZjunk\r\n");
    /* Headers truncated, no blank line, no data end (truncated part). */
    BAD("--XyZ\r\nContent-Disposition: form-data; name=\"a\"");
    BAD("--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n");
    BAD("--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nvalue without end");
    BAD("--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx\r\n--XyZ");
    BAD("--XyZ\r\n");
    BAD("--XyZ");
    /* Dispositions. */
    BAD("--XyZ\r\n\r\nx\r\n--XyZ--");
    BAD("--XyZ\r\nContent-Type: text/plain\r\n\r\nx\r\n--XyZ--");
    BAD("--XyZ\r\nContent-Disposition: attachment; name=\"a\"\r\n\r\nx\r\n--XyZ--");
    BAD("--XyZ\r\nContent-Disposition: form-data\r\n\r\nx\r\n--XyZ--");
    BAD("--XyZ\r\nContent-Disposition: form-data; filename=\"f\"\r\n\r\nx\r\n--XyZ--");
    BAD("--XyZ\r\nContent-Disposition: form-data; name=\"a\r\n\r\nx\r\n--XyZ--");
    BAD("--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n"
        "Content-Disposition: form-data; name=\"b\"\r\n\r\nx\r\n--XyZ--");
    BAD("--XyZ\r\nContent-Disposition: form-data; name=\"a\"; filename*=latin1''x\r\n\r\n"
        "x\r\n--XyZ--");
    /* Header lines: folded, without colon, bad name, NUL. */
    BAD("--XyZ\r\nContent-Disposition: form-data;\r\n name=\"a\"\r\n\r\nx\r\n--XyZ--");
    BAD("--XyZ\r\nContent-Disposition form-data; name=\"a\"\r\n\r\nx\r\n--XyZ--");
    BAD("--XyZ\r\nBad Name: v\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx\r\n--XyZ--");
    static const char with_nul[] =
        "--XyZ\r\nContent-Disposition: form-data; name=\"a\0b\"\r\n\r\nx\r\n--XyZ--";
    BAD(with_nul);
    /* Text fields must be UTF-8 without NUL; names and filenames too. */
    BAD("--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n\xff\xfe\r\n--XyZ--");
    static const char nul_value[] =
        "--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\na\0b\r\n--XyZ--";
    BAD(nul_value);
    BAD("--XyZ\r\nContent-Disposition: form-data; name=\"\xc3\"\r\n\r\nx\r\n--XyZ--");
    BAD("--XyZ\r\nContent-Disposition: form-data; name=\"a\"; filename=\"\xe2\x82\"\r\n\r\n"
        "x\r\n--XyZ--");
    BAD("--XyZ\r\nContent-Disposition: form-data; name=\"a\"; filename=\"a\tb\"\r\n\r\n"
        "x\r\n--XyZ--");
}

static void test_multipart_limits(void **state)
{
    (void)state;
    /* Too many parts. */
    struct strbuf sb;
    strbuf_init(&sb);
    for (int i = 0; i < 17; i++)
        strbuf_printf(&sb, "--XyZ\r\nContent-Disposition: form-data; name=\"f%d\"\r\n\r\nv\r\n", i);
    strbuf_puts(&sb, "--XyZ--\r\n");
    expect_refused(MP, sb.data, sb.len, HTTP_ERR_TOO_LARGE);
    strbuf_deinit(&sb);
    /* A field over max_field_bytes, a file over max_file_bytes. */
    strbuf_init(&sb);
    strbuf_puts(&sb, "--XyZ\r\nContent-Disposition: form-data; name=\"big\"\r\n\r\n");
    for (int i = 0; i < 1025; i++)
        strbuf_putc(&sb, 'a');
    strbuf_puts(&sb, "\r\n--XyZ--\r\n");
    expect_refused(MP, sb.data, sb.len, HTTP_ERR_TOO_LARGE);
    strbuf_deinit(&sb);
    strbuf_init(&sb);
    strbuf_puts(&sb, "--XyZ\r\nContent-Disposition: form-data; name=\"f\"; filename=\"x\"\r\n\r\n");
    for (int i = 0; i < 4097; i++)
        strbuf_putc(&sb, 'b');
    strbuf_puts(&sb, "\r\n--XyZ--\r\n");
    expect_refused(MP, sb.data, sb.len, HTTP_ERR_TOO_LARGE);
    strbuf_deinit(&sb);
    /* Huge part headers: over max_header_bytes is 413, not a scan of the body. */
    strbuf_init(&sb);
    strbuf_puts(&sb, "--XyZ\r\nX-Junk: ");
    for (int i = 0; i < 2000; i++)
        strbuf_putc(&sb, 'h');
    strbuf_puts(&sb, "\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx\r\n--XyZ--\r\n");
    expect_refused(MP, sb.data, sb.len, HTTP_ERR_TOO_LARGE);
    strbuf_deinit(&sb);
    /* Exactly at the limits passes. */
    strbuf_init(&sb);
    strbuf_puts(&sb, "--XyZ\r\nContent-Disposition: form-data; name=\"f\"; filename=\"x\"\r\n\r\n");
    for (int i = 0; i < 4096; i++)
        strbuf_putc(&sb, 'b');
    strbuf_puts(&sb, "\r\n--XyZ--\r\n");
    expect_refused(MP, sb.data, sb.len, 0);
    strbuf_deinit(&sb);
}

static void test_header_param(void **state)
{
    (void)state;
    arena *a = arena_new(0);
    const char *v = "form-data; name=\"a;b\"; filename=plain.txt ; X=\"q\\\\\"";
    size_t n = strlen(v);
    assert_string_equal(http_header_param(a, v, n, "name"), "a;b");
    assert_string_equal(http_header_param(a, v, n, "FILENAME"), "plain.txt");
    assert_string_equal(http_header_param(a, v, n, "x"), "q\\");
    assert_null(http_header_param(a, v, n, "missing"));
    assert_null(http_header_param(a, "form-data; name", 15, "name"));
    assert_null(http_header_param(a, "form-data; name=\"open", 21, "name"));
    assert_null(http_header_param(a, "\"form-data\"; name=a", 19, "name"));
    arena_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_types),
        cmocka_unit_test(test_urlencoded_body),
        cmocka_unit_test(test_multipart_basic),
        cmocka_unit_test(test_multipart_variants),
        cmocka_unit_test(test_multipart_binary),
        cmocka_unit_test(test_multipart_malformed),
        cmocka_unit_test(test_multipart_limits),
        cmocka_unit_test(test_header_param),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
