/*
 * fuzz_http_form.c - libFuzzer target for the HTTP layer's decoders of
 * untrusted bytes: the form body decoder (urlencoded and multipart/form-data,
 * src/http/form.c) first of all, and beside it the path normalizer, the
 * Cookie parser, header parameters, HTTP dates and Accept ranking.
 *
 * Input: byte 0 picks the decoder; for multipart the text up to the first
 * "\n" is the Content-Type's parameters (e.g. "boundary=XyZ") and the rest
 * is the body. Besides "no crash, no leak", every successful decode is
 * checked: values are valid UTF-8 of the stated length, file bytes lie
 * inside the body, paths are normalized.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/cookie.h"
#include "http/form.h"
#include "http/text.h"
#include "http/url.h"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) __builtin_trap();                                                                \
    } while (0)

static const struct http_form_limits limits = {
    .max_parts = 64, .max_field_bytes = 4096, .max_file_bytes = 65536, .max_header_bytes = 1024};

static void check_form(const struct http_form *f, const char *body, size_t len)
{
    for (size_t i = 0; i < f->nfields; i++) {
        CHECK(strlen(f->fields[i].value) == f->fields[i].value_len);
        CHECK(utf8_valid(f->fields[i].value, f->fields[i].value_len));
        CHECK(utf8_valid(f->fields[i].name, strlen(f->fields[i].name)));
        CHECK(f->fields[i].value_len <= limits.max_field_bytes);
    }
    for (size_t i = 0; i < f->nfiles; i++) {
        const char *d = (const char *)f->files[i].data;
        CHECK(d >= body && d + f->files[i].size <= body + len);
        CHECK(f->files[i].size <= limits.max_file_bytes);
        CHECK(!strchr(f->files[i].filename, '/') && !strchr(f->files[i].filename, '\\'));
        CHECK(utf8_valid(f->files[i].filename, strlen(f->files[i].filename)));
    }
    CHECK(f->nfields + f->nfiles <= limits.max_parts);
}

static void check_path(const char *p)
{
    CHECK(p[0] == '/');
    CHECK(!strstr(p, "//") && !strstr(p, "/./") && !strstr(p, "/../"));
    size_t n = strlen(p);
    CHECK(!(n >= 3 && !strcmp(p + n - 3, "/..")) && !(n >= 2 && !strcmp(p + n - 2, "/.")));
    for (size_t i = 0; i < n; i++)
        CHECK((unsigned char)p[i] >= 0x20 && p[i] != 0x7f);
    CHECK(utf8_valid(p, n));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    unsigned mode = data[0] % 6;
    /* A private copy: the decoders must not read past `len`, and ASan only
     * sees that on an exact-size heap block. */
    size_t len = size - 1;
    char *buf = malloc(len + 1);
    memcpy(buf, data + 1, len);
    arena *a = arena_new(0);
    struct echo_err err = {0};
    struct http_form form;
    switch (mode) {
    case 0:
        if (http_form_parse(a, "application/x-www-form-urlencoded", buf, len, &limits, &form,
                            &err) == 0)
            check_form(&form, buf, len);
        break;
    case 1:
    case 2: {
        /* Mode 1 lets the input choose the boundary; mode 2 keeps "XyZ" so
         * the fuzzer spends its time inside the parts. */
        const char *nl = mode == 1 ? memchr(buf, '\n', len) : NULL;
        size_t plen = nl ? (size_t)(nl - buf) : 0;
        char ct[256];
        if (mode == 1 && nl && plen < 200) {
            memcpy(ct, "multipart/form-data; ", 21);
            memcpy(ct + 21, buf, plen);
            ct[21 + plen] = 0;
            if (memchr(ct, 0, 21 + plen) != ct + 21 + plen) break;
        } else {
            strcpy(ct, "multipart/form-data; boundary=XyZ");
            plen = 0;
            nl = NULL;
        }
        const char *body = nl ? nl + 1 : buf;
        size_t blen = len - (size_t)(body - buf);
        if (http_form_parse(a, ct, body, blen, &limits, &form, &err) == 0)
            check_form(&form, body, blen);
        break;
    }
    case 3: {
        const char *out = NULL;
        if (http_path_normalize(a, buf, len, &out, &err) == 0) check_path(out);
        break;
    }
    case 4: {
        buf[len] = 0;
        if (strlen(buf) != len) break;
        struct http_param *p = NULL;
        size_t n = 0;
        http_cookie_parse(a, buf, &p, &n);
        for (size_t i = 0; i < n; i++)
            CHECK(strlen(p[i].value) == p[i].value_len && !strchr(p[i].value, ';'));
        break;
    }
    case 5: {
        buf[len] = 0;
        if (strlen(buf) != len) break;
        time_t t;
        if (http_date_parse(buf, &t) == 0) {
            char again[40];
            time_t t2;
            http_date_format(t, again, sizeof(again));
            CHECK(http_date_parse(again, &t2) == 0 && t2 == t);
        }
        http_accept_prefers_json(buf);
        const char *v = http_header_param(a, buf, len, "name");
        CHECK(!v || strlen(v) <= len);
        break;
    }
    }
    arena_free(a);
    free(buf);
    return 0;
}
