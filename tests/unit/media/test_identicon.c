/*
 * test_identicon.c - default profile pictures: initials (parts,
 * upper-casing of ASCII, Latin, Greek and Cyrillic, non-ASCII and combining marks kept, bad bytes
 * and empty names), the colour (pinned values so it never changes under users' eyes, WCAG AA
 * contrast with white for every hue, spread over hues), and the SVG (XML-escaped, well-formed,
 * rendered by librsvg at the asked size with the asked colour).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#include <cmocka.h>
#include <vips/vips.h>

#include "media/media.h"
#include "xml_check.h"

const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
    return "leak:libfontconfig.so\n"; /* librsvg's fonts, kept until exit by design */
}

static void expect_initials(const char *name, const char *want)
{
    char got[32];
    media_identicon_initials(name, got);
    if (strcmp(got, want) != 0)
        fail_msg("initials of \"%s\": got \"%s\", want \"%s\"", name ? name : "(null)", got, want);
}

static void test_initials(void **state)
{
    (void)state;
    expect_initials("alice", "A");
    expect_initials("john_doe", "JD");
    expect_initials("mary-jane.watson", "MJ");
    expect_initials("__bob__", "B");
    expect_initials("a.b.c.d", "AB");
    expect_initials("42nd_street", "4S");
    expect_initials("Zo\xc3\xab", "Z");                              /* Zoë */
    expect_initials("\xc3\xa9lodie_martin", "\xc3\x89M");            /* élodie -> ÉM */
    expect_initials("\xc3\x9f_x", "\xc3\x9fX");                      /* ß has no capital here */
    expect_initials("\xc5\x82ukasz", "\xc5\x81");                    /* ł -> Ł */
    expect_initials("\xcf\x89mega", "\xce\xa9");                     /* ω -> Ω */
    expect_initials("\xd0\xb8\xd0\xb2\xd0\xb0\xd0\xbd", "\xd0\x98"); /* иван -> И */
    expect_initials("\xd1\x91\xd0\xb6", "\xd0\x81");                 /* ёж -> Ё */
    expect_initials("\xce\xa9mega", "\xce\xa9");                     /* Ωmega */
    expect_initials("\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", "\xe6\x97\xa5"); /* 日本語 */
    expect_initials("\xf0\x9f\x98\x80smile", "\xf0\x9f\x98\x80");            /* an emoji, 4 bytes */
    expect_initials("e\xcc\x81mile", "E\xcc\x81"); /* e + combining acute */
    expect_initials("", "?");
    expect_initials(NULL, "?");
    expect_initials("._-", "?");
    expect_initials("\xff\xfe", "?");
    expect_initials("\xff"
                    "bob",
                    "B");              /* bad bytes are skipped */
    expect_initials("\x01\x02x", "X"); /* so are controls */
    /* Many combining marks stop at 15 bytes per initial. */
    char marks[128] = "a";
    for (int i = 0; i < 30; i++)
        strcat(marks, "\xcc\x81");
    char got[32];
    media_identicon_initials(marks, got);
    assert_true(strlen(got) <= 15 && got[0] == 'A' && utf8_valid(got, strlen(got)));
    char longname[2000];
    memset(longname, 'q', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = 0;
    expect_initials(longname, "Q");
}

/* WCAG 2.x contrast of #rrggbb against white, computed here independently. */
static double contrast_with_white(const char *hex)
{
    unsigned v[3];
    assert_int_equal(sscanf(hex, "#%2x%2x%2x", &v[0], &v[1], &v[2]), 3);
    double lin[3];
    for (int k = 0; k < 3; k++) {
        double c = v[k] / 255.0;
        lin[k] = c <= 0.03928 ? c / 12.92 : pow((c + 0.055) / 1.055, 2.4);
    }
    double l = 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2];
    return 1.05 / (l + 0.05);
}

static void test_colour(void **state)
{
    (void)state;
    char c[8], again[8];
    media_identicon_colour("alice", c);
    media_identicon_colour("alice", again);
    assert_string_equal(c, again);
    assert_int_equal(strlen(c), 7);
    assert_int_equal(c[0], '#');
    /* Pinned (values from an independent Python colorsys computation): a
     * user's colour must not change between releases. */
    struct {
        const char *name, *colour;
    } pinned[] = {{"alice", "#393cc6"}, {"bob", "#a039c6"}, {"", "#757722"}};
    for (size_t i = 0; i < sizeof(pinned) / sizeof(pinned[0]); i++) {
        media_identicon_colour(pinned[i].name, c);
        if (strcmp(c, pinned[i].colour) != 0)
            fail_msg("colour of \"%s\" is %s, was %s", pinned[i].name, c, pinned[i].colour);
    }
    /* Every name, whatever its hue, gives white text AA contrast; and the
     * names spread over many colours. */
    char seen[400][8];
    int distinct = 0;
    for (int i = 0; i < 2000; i++) {
        char name[32];
        snprintf(name, sizeof(name), "user%d", i);
        media_identicon_colour(name, c);
        double ratio = contrast_with_white(c);
        if (ratio < 4.5) fail_msg("%s: %s has contrast %.2f with white", name, c, ratio);
        if (i < 400) {
            int found = 0;
            for (int k = 0; k < distinct && !found; k++)
                found = strcmp(seen[k], c) == 0;
            if (!found) strcpy(seen[distinct++], c);
        }
    }
    assert_true(distinct > 200);
    media_identicon_colour(NULL, c);
    assert_string_equal(c, "#757722");
}

static void test_svg(void **state)
{
    (void)state;
    struct strbuf sb;
    struct echo_err err = {0};
    strbuf_init(&sb);
    const char *evil = "<script>alert(1)</script>&\"'_x";
    assert_int_equal(media_identicon_svg(evil, 64, &sb, &err), MEDIA_OK);
    assert_null(strstr(sb.data, "<script>"));
    assert_non_null(strstr(sb.data, "&lt;script&gt;alert(1)&lt;/script&gt;&amp;&quot;&#39;_x"));
    assert_non_null(strstr(sb.data, ">&lt;X</text>")); /* initials "<" and "X", escaped */
    assert_null(xml_check(sb.data, sb.len));
    strbuf_deinit(&sb);

    /* Bad bytes in a name never make bad XML. */
    strbuf_init(&sb);
    assert_int_equal(media_identicon_svg("b\xff\xc3(ad\x01name", 32, &sb, &err), MEDIA_OK);
    assert_null(xml_check(sb.data, sb.len));
    assert_non_null(strstr(sb.data, ">B</text>"));
    strbuf_deinit(&sb);

    /* Rendered: the asked size, the colour in the corner, white letters. */
    strbuf_init(&sb);
    assert_int_equal(media_identicon_svg("\xce\xa9mega_user", 128, &sb, &err), MEDIA_OK);
    assert_non_null(strstr(sb.data, ">\xce\xa9U</text>"));
    unsigned char *png;
    size_t png_len;
    assert_int_equal(media_svg_to_png(sb.data, sb.len, 1, &png, &png_len, &err), MEDIA_OK);
    VipsImage *img;
    assert_int_equal(vips_pngload_buffer(png, png_len, &img, NULL), 0);
    assert_int_equal(vips_image_get_width(img), 128);
    assert_int_equal(vips_image_get_height(img), 128);
    char colour[8];
    media_identicon_colour("\xce\xa9mega_user", colour);
    unsigned want[3];
    sscanf(colour, "#%2x%2x%2x", &want[0], &want[1], &want[2]);
    double *px;
    int n;
    assert_int_equal(vips_getpoint(img, &px, &n, 2, 2, NULL), 0);
    for (int k = 0; k < 3; k++)
        assert_true(fabs(px[k] - want[k]) <= 1);
    g_free(px);
    /* Some pixel in the middle band is white text. */
    double max = 0;
    VipsImage *band;
    assert_int_equal(vips_extract_area(img, &band, 20, 50, 88, 28, NULL), 0);
    assert_int_equal(vips_max(band, &max, NULL), 0);
    assert_true(max > 240);
    g_object_unref(band);
    g_object_unref(img);
    free(png);
    strbuf_deinit(&sb);

    /* Sizes outside the range are refused and append nothing. */
    strbuf_init(&sb);
    assert_int_equal(media_identicon_svg("a", MEDIA_IDENTICON_MIN - 1, &sb, &err),
                     MEDIA_ERR_INVALID);
    assert_int_equal(media_identicon_svg("a", MEDIA_IDENTICON_MAX + 1, &sb, &err),
                     MEDIA_ERR_INVALID);
    assert_int_equal(sb.len, 0);
    assert_int_equal(media_identicon_svg(NULL, MEDIA_IDENTICON_MIN, &sb, &err), MEDIA_OK);
    assert_non_null(strstr(sb.data, ">?</text>"));
    strbuf_deinit(&sb);
}

int main(void)
{
    if (media_init(NULL) != MEDIA_OK) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_initials),
        cmocka_unit_test(test_colour),
        cmocka_unit_test(test_svg),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    vips_shutdown();
    return rc;
}
