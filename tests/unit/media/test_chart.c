/*
 * test_chart.c - the SVG charts of the admin dashboard: nice axis ticks,
 * time axes across month and year ends (and leap days), empty data, one
 * point, 10,000 points, huge values with k/M/B suffixes, long and hostile
 * labels (escaped, cut with an ellipsis, full text in <title>), the
 * histogram's binning, the top-N ordering, bad arguments, and that every
 * document is well-formed XML (checked by xml_check.h and by librsvg when
 * rasterised to PNG). The PNGs and SVGs are kept in tests/artifacts/charts/
 * for people to look at.
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
#include "media/media_internal.h"
#include "xml_check.h"

#define ARTIFACTS "tests/artifacts/charts"

/* fontconfig (under librsvg) keeps its configuration until exit by design. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
    return "leak:libfontconfig.so\n";
}

/* Checks the document, renders it through librsvg, saves both for people,
 * and returns the PNG's size. */
static void check_svg(const struct strbuf *sb, const char *name, int *png_w, int *png_h)
{
    const char *problem = xml_check(sb->data, sb->len);
    if (problem) fail_msg("%s: not well-formed: %s", name, problem);
    assert_true(str_has_prefix(sb->data, "<svg xmlns=\"http://www.w3.org/2000/svg\""));
    assert_non_null(strstr(sb->data, "role=\"img\""));
    assert_non_null(strstr(sb->data, "<desc>"));

    unsigned char *png = NULL;
    size_t png_len = 0;
    struct echo_err err = {0};
    uint64_t t0 = time_mono_ns();
    int rc = media_svg_to_png(sb->data, sb->len, 1.0, &png, &png_len, &err);
    printf("# %s: %zu bytes of SVG, rasterised in %.1f ms\n", name, sb->len,
           (time_mono_ns() - t0) / 1e6);
    if (rc != MEDIA_OK) fail_msg("%s: librsvg refused it: %s", name, err.msg);
    assert_memory_equal(png, "\x89PNG\r\n\x1a\n", 8);
    VipsImage *img = NULL;
    assert_int_equal(vips_pngload_buffer(png, png_len, &img, NULL), 0);
    if (png_w) *png_w = vips_image_get_width(img);
    if (png_h) *png_h = vips_image_get_height(img);
    g_object_unref(img);

    char path[256];
    if (dir_make_all(ARTIFACTS, 0755, NULL) == 0) {
        snprintf(path, sizeof(path), ARTIFACTS "/%s.png", name);
        file_write_atomic(path, png, png_len, 0644, NULL);
        snprintf(path, sizeof(path), ARTIFACTS "/%s.svg", name);
        file_write_atomic(path, sb->data, sb->len, 0644, NULL);
    }
    free(png);
}

static void add_days(char *out, int y, int m, int d, int plus)
{
    static const int md[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    while (plus-- > 0) {
        int len = md[m - 1] + (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0));
        if (++d > len) {
            d = 1;
            if (++m > 12) m = 1, y++;
        }
    }
    sprintf(out, "%04d-%02d-%02d", y, m, d);
}

/* n consecutive days from y-m-d; labels live in one block freed by the caller. */
static struct media_chart_point *days_from(int y, int m, int d, size_t n, char **block)
{
    struct media_chart_point *p = calloc(n ? n : 1, sizeof(*p));
    *block = calloc(n ? n : 1, 11);
    for (size_t i = 0; i < n; i++) {
        add_days(*block + i * 11, y, m, d, (int)i);
        p[i].label = *block + i * 11;
        p[i].value = (double)((i * 7919) % 13);
    }
    return p;
}

static void test_axis_ticks(void **state)
{
    (void)state;
    double lo, hi, step;
    assert_int_equal(media_axis_ticks(0, 7, 5, true, &lo, &hi, &step), 5);
    assert_true(lo == 0 && hi == 8 && step == 2);
    /* All zero: still an axis, from 0. */
    media_axis_ticks(0, 0, 5, true, &lo, &hi, &step);
    assert_true(lo == 0 && hi == 1 && step == 1);
    /* Counts never get half ticks. */
    media_axis_ticks(0, 3, 10, true, &lo, &hi, &step);
    assert_true(step == 1 && hi == 3);
    media_axis_ticks(0, 0.37, 4, false, &lo, &hi, &step);
    assert_true(fabs(step - 0.1) < 1e-12 && fabs(hi - 0.4) < 1e-12);
    media_axis_ticks(-3, 7, 5, true, &lo, &hi, &step);
    assert_true(lo == -4 && hi == 8 && step == 2);
    media_axis_ticks(0, 1234567, 5, true, &lo, &hi, &step);
    assert_true(step == 500000 && hi == 1500000);
    /* Positive data still starts at zero. */
    media_axis_ticks(50, 60, 5, true, &lo, &hi, &step);
    assert_true(lo == 0 && hi >= 60);

    /* Properties over many ranges: covers the data, 1-2-5 steps, bounded count. */
    unsigned seed = 12345;
    for (int t = 0; t < 20000; t++) {
        seed = seed * 1103515245u + 12345u;
        double scale = pow(10, (int)(seed >> 16) % 16 - 3);
        seed = seed * 1103515245u + 12345u;
        double a = ((double)(seed >> 8) / 16777216.0 - 0.3) * scale;
        seed = seed * 1103515245u + 12345u;
        double b = a + (double)(seed >> 8) / 16777216.0 * scale;
        int target = 2 + (int)(seed % 9);
        int ticks = media_axis_ticks(a, b, target, false, &lo, &hi, &step);
        assert_true(lo <= fmin(a, 0) + step * 1e-9);
        assert_true(hi >= fmax(b, 0) - step * 1e-9);
        double m = step / pow(10, floor(log10(step) + 1e-12));
        assert_true(fabs(m - 1) < 1e-9 || fabs(m - 2) < 1e-9 || fabs(m - 5) < 1e-9);
        assert_true(ticks >= 2 && ticks <= 3 * target + 2);
    }
}

static void test_number_format(void **state)
{
    (void)state;
    char b[64];
    media_format_number(b, sizeof(b), 1234567, 0);
    assert_string_equal(b, "1,234,567");
    media_format_number(b, sizeof(b), -1234.5, 2);
    assert_string_equal(b, "-1,234.5");
    media_format_number(b, sizeof(b), 999, 0);
    assert_string_equal(b, "999");
    media_format_number(b, sizeof(b), -0.0001, 2);
    assert_string_equal(b, "0");
    media_format_number(b, sizeof(b), 0.26, 1);
    assert_string_equal(b, "0.3"); /* rounds to the decimals asked */
    media_format_number(b, sizeof(b), 123456789012345.0, 0);
    assert_string_equal(b, "123,456,789,012,345");
}

static void test_empty(void **state)
{
    (void)state;
    struct strbuf sb;
    struct echo_err err = {0};
    struct media_chart_opts o = {.title = "Signups per day", .unit = "signups"};
    strbuf_init(&sb);
    assert_int_equal(media_chart_series(&o, NULL, 0, MEDIA_CHART_CUMULATIVE, &sb, &err), MEDIA_OK);
    assert_non_null(strstr(sb.data, "No data yet"));
    assert_int_equal(count_of(sb.data, "class=\"pt\""), 0);
    check_svg(&sb, "empty-series", NULL, NULL);
    strbuf_deinit(&sb);

    strbuf_init(&sb);
    assert_int_equal(media_chart_histogram(&o, NULL, 0, 0, &sb, &err), MEDIA_OK);
    assert_non_null(strstr(sb.data, "No data yet"));
    check_svg(&sb, "empty-histogram", NULL, NULL);
    strbuf_deinit(&sb);

    strbuf_init(&sb);
    assert_int_equal(media_chart_top(&o, NULL, 0, 10, &sb, &err), MEDIA_OK);
    assert_non_null(strstr(sb.data, "No data yet"));
    check_svg(&sb, "empty-top", NULL, NULL);
    strbuf_deinit(&sb);
}

static void test_single_point(void **state)
{
    (void)state;
    struct media_chart_point p = {"2024-03-05", 4};
    struct media_chart_opts o = {.title = "One day", .unit = "signups"};
    struct strbuf sb;
    strbuf_init(&sb);
    assert_int_equal(media_chart_series(&o, &p, 1, MEDIA_CHART_CUMULATIVE, &sb, NULL), MEDIA_OK);
    assert_int_equal(count_of(sb.data, "class=\"pt\""), 1);
    assert_non_null(strstr(sb.data, ">Mar 5<"));
    assert_non_null(strstr(sb.data, ">2024<"));
    assert_non_null(strstr(sb.data, "2024-03-05: 4 signups (total 4)"));
    check_svg(&sb, "single-point", NULL, NULL);
    strbuf_deinit(&sb);

    /* A single value in a histogram is one bin; as a line, one marker. */
    strbuf_init(&sb);
    double v = 42;
    assert_int_equal(media_chart_histogram(&o, &v, 1, 0, &sb, NULL), MEDIA_OK);
    assert_int_equal(count_of(sb.data, "class=\"pt\""), 1);
    assert_non_null(strstr(sb.data, "data-label=\"42\" data-value=\"1\""));
    check_svg(&sb, "single-histogram", NULL, NULL);
    strbuf_deinit(&sb);
    strbuf_init(&sb);
    assert_int_equal(media_chart_series(&o, &p, 1, MEDIA_CHART_LINE, &sb, NULL), MEDIA_OK);
    assert_int_equal(count_of(sb.data, "<circle class=\"pt\""), 1);
    check_svg(&sb, "single-line", NULL, NULL);
    strbuf_deinit(&sb);
}

static void test_dates_across_year_end(void **state)
{
    (void)state;
    char *block;
    struct media_chart_point *p = days_from(2023, 12, 15, 37, &block);
    struct media_chart_opts o = {.title = "Signups per day",
                                 .x_label = "day",
                                 .y_label = "signups",
                                 .unit = "signups",
                                 .cumulative_base = 1200,
                                 .cumulative_label = "total users"};
    struct strbuf sb;
    strbuf_init(&sb);
    assert_int_equal(media_chart_series(&o, p, 37, MEDIA_CHART_CUMULATIVE, &sb, NULL), MEDIA_OK);
    /* One point per day; weekly ticks on Mondays; the year where it changes. */
    assert_int_equal(count_of(sb.data, "class=\"pt\""), 37);
    assert_non_null(strstr(sb.data, ">Dec 18<"));
    assert_non_null(strstr(sb.data, ">Jan 1<"));
    assert_non_null(strstr(sb.data, ">2023<"));
    assert_non_null(strstr(sb.data, ">2024<"));
    assert_int_equal(count_of(sb.data, ">2024<"), 1);
    assert_non_null(strstr(sb.data, "data-label=\"2024-01-01\""));
    assert_non_null(strstr(sb.data, "Bar chart of 37 days from 2023-12-15 to 2024-01-20."));
    assert_non_null(strstr(sb.data, "class=\"cumulative\""));
    double total = 1200;
    for (int i = 0; i < 37; i++)
        total += p[i].value;
    char want[64];
    snprintf(want, sizeof(want), "2024-01-20: %.0f signups (total %d,%03d)", p[36].value,
             (int)total / 1000, (int)total % 1000);
    assert_non_null(strstr(sb.data, want));
    check_svg(&sb, "signups-37-days", NULL, NULL);
    strbuf_deinit(&sb);
    free(p);
    free(block);

    /* Leap day and month end: 2024-02-28, -29, 03-01 are dates ... */
    struct media_chart_point leap[3] = {{"2024-02-28", 1}, {"2024-02-29", 2}, {"2024-03-01", 3}};
    strbuf_init(&sb);
    assert_int_equal(media_chart_series(NULL, leap, 3, 0, &sb, NULL), MEDIA_OK);
    assert_non_null(strstr(sb.data, ">Feb 29<"));
    assert_non_null(strstr(sb.data, "3 days from"));
    strbuf_deinit(&sb);
    /* ... but 2023-02-29 is not, so the axis becomes categories. */
    leap[0].label = "2023-02-28", leap[1].label = "2023-02-29", leap[2].label = "2023-03-01";
    strbuf_init(&sb);
    assert_int_equal(media_chart_series(NULL, leap, 3, 0, &sb, NULL), MEDIA_OK);
    assert_non_null(strstr(sb.data, "3 values from"));
    assert_non_null(strstr(sb.data, ">2023-02-29<"));
    strbuf_deinit(&sb);

    /* Two months: month or half-month ticks, the year once. */
    p = days_from(2024, 11, 20, 70, &block);
    strbuf_init(&sb);
    o.width = 480;
    assert_int_equal(media_chart_series(&o, p, 70, MEDIA_CHART_LINE, &sb, NULL), MEDIA_OK);
    assert_int_equal(count_of(sb.data, "class=\"pt\""), 70);
    assert_non_null(strstr(sb.data, ">2025<"));
    check_svg(&sb, "line-70-days-narrow", NULL, NULL);
    strbuf_deinit(&sb);
    free(p);
    free(block);

    /* Five years: year ticks or month ticks with years. */
    p = days_from(2020, 1, 1, 1827, &block);
    strbuf_init(&sb);
    o.width = 0;
    assert_int_equal(media_chart_series(&o, p, 1827, MEDIA_CHART_CUMULATIVE, &sb, NULL), MEDIA_OK);
    assert_int_equal(count_of(sb.data, "class=\"pt\""), 1827);
    assert_non_null(strstr(sb.data, ">2022<"));
    check_svg(&sb, "signups-5-years", NULL, NULL);
    strbuf_deinit(&sb);
    free(p);
    free(block);
}

/* x of the n-th line marker (class="pt" circle). */
static double marker_x(const char *svg, int n)
{
    const char *p = svg;
    for (int i = 0; i <= n; i++) {
        p = strstr(p, "<circle class=\"pt\" cx=\"");
        if (!p) return -1;
        p += strlen("<circle class=\"pt\" cx=\"");
    }
    return atof(p);
}

/* A time axis places points by date: days without a point (the admin
 * dashboard fills them with 0, other callers may not) keep their width,
 * across a month end. */
static void test_dates_with_gaps(void **state)
{
    (void)state;
    struct media_chart_point p[4] = {
        {"2024-01-30", 1}, {"2024-01-31", 2}, {"2024-02-03", 3}, {"2024-02-04", 4}};
    struct strbuf sb;
    strbuf_init(&sb);
    assert_int_equal(media_chart_series(NULL, p, 4, MEDIA_CHART_LINE, &sb, NULL), MEDIA_OK);
    double x0 = marker_x(sb.data, 0), x1 = marker_x(sb.data, 1), x2 = marker_x(sb.data, 2),
           x3 = marker_x(sb.data, 3);
    assert_true(x0 > 0 && x1 > x0 && x2 > x1 && x3 > x2);
    /* Three days between the 2nd and 3rd point, one between the others. */
    assert_true(fabs((x2 - x1) - 3 * (x1 - x0)) < 0.05);
    assert_true(fabs((x3 - x2) - (x1 - x0)) < 0.05);
    assert_non_null(strstr(sb.data, "<title>2024-02-03: 3</title>"));
    check_svg(&sb, "line-with-gaps", NULL, NULL);
    strbuf_deinit(&sb);
}

static void test_ten_thousand_points(void **state)
{
    (void)state;
    char *block;
    struct media_chart_point *p = days_from(1990, 1, 1, 10000, &block);
    for (int i = 0; i < 10000; i++)
        p[i].value = 500 + 400 * sin(i / 300.0) + (i % 17);
    struct media_chart_opts o = {.title = "Messages per day", .unit = "messages"};
    struct strbuf sb;
    strbuf_init(&sb);
    uint64_t t0 = time_mono_ns();
    assert_int_equal(media_chart_series(&o, p, 10000, 0, &sb, NULL), MEDIA_OK);
    uint64_t t1 = time_mono_ns();
    assert_int_equal(count_of(sb.data, "class=\"pt\""), 10000);
    printf("# 10,000-point series: %zu bytes of SVG in %.1f ms\n", sb.len, (t1 - t0) / 1e6);
    check_svg(&sb, "messages-10000-days", NULL, NULL);
    strbuf_deinit(&sb);
    free(p);
    free(block);
}

static void test_huge_values(void **state)
{
    (void)state;
    struct media_chart_point p[4] = {{"a", 1234567890}, {"b", 987654321}, {"c", 0}, {"d", 3.5e9}};
    struct strbuf sb;
    strbuf_init(&sb);
    assert_int_equal(media_chart_series(NULL, p, 4, 0, &sb, NULL), MEDIA_OK);
    assert_non_null(strstr(sb.data, "B</text>")); /* axis in billions */
    assert_non_null(strstr(sb.data, ">a: 1,234,567,890<"));
    assert_null(strstr(sb.data, "e+"));
    check_svg(&sb, "huge-values", NULL, NULL);
    strbuf_deinit(&sb);

    p[3].value = 25000;
    p[0].value = 1, p[1].value = 2;
    strbuf_init(&sb);
    assert_int_equal(media_chart_series(NULL, p, 4, 0, &sb, NULL), MEDIA_OK);
    assert_non_null(strstr(sb.data, ">25k<"));
    strbuf_deinit(&sb);
    p[3].value = 7900;
    strbuf_init(&sb);
    assert_int_equal(media_chart_series(NULL, p, 4, 0, &sb, NULL), MEDIA_OK);
    assert_non_null(strstr(sb.data, ">8,000<"));
    strbuf_deinit(&sb);
    /* Negative values reach below a zero line. */
    struct media_chart_point neg[3] = {{"x", -5}, {"y", 3}, {"z", 7}};
    strbuf_init(&sb);
    assert_int_equal(media_chart_series(NULL, neg, 3, 0, &sb, NULL), MEDIA_OK);
    assert_non_null(strstr(sb.data, ">-6<"));
    check_svg(&sb, "negative", NULL, NULL);
    strbuf_deinit(&sb);
}

static void test_hostile_labels(void **state)
{
    (void)state;
    char longname[300];
    memset(longname, 'w', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = 0;
    memcpy(longname, "<script>&\"'", 11);
    struct media_chart_point p[5] = {{longname, 9},
                                     {"bob \"the\" <b>builder</b> & co", 7},
                                     {"z\xc3\xa9ro \xe2\x80\x94 \xe6\x97\xa5\xe6\x9c\xac", 5},
                                     {"bad \xff\xfe utf8 \x01 ctl", 3},
                                     {"", 1}};
    struct media_chart_opts o = {
        .title = "Top <users> & \"friends\"", .x_label = "messages", .unit = "messages & more"};
    struct strbuf sb;
    strbuf_init(&sb);
    assert_int_equal(media_chart_top(&o, p, 5, 10, &sb, NULL), MEDIA_OK);
    assert_null(strstr(sb.data, "<script>"));
    assert_null(strstr(sb.data, "<b>"));
    assert_non_null(strstr(sb.data, "&lt;script&gt;&amp;&quot;&#39;"));
    assert_non_null(strstr(sb.data, "Top &lt;users&gt; &amp; &quot;friends&quot;"));
    /* The long name is cut, with the whole of it in a tooltip. */
    assert_non_null(strstr(sb.data, "\xe2\x80\xa6</text>"));
    struct strbuf want;
    strbuf_init(&want);
    strbuf_puts(&want, "<title>&lt;script&gt;&amp;&quot;&#39;");
    for (int i = 0; i < 288; i++)
        strbuf_putc(&want, 'w');
    strbuf_puts(&want, "</title>");
    assert_non_null(strstr(sb.data, want.data));
    strbuf_deinit(&want);
    assert_non_null(strstr(sb.data, "\xef\xbf\xbd")); /* bad bytes replaced */
    assert_null(strstr(sb.data, "\x01"));
    check_svg(&sb, "top-hostile-labels", NULL, NULL);
    strbuf_deinit(&sb);

    /* Category labels on a series are cut to their slot. */
    struct media_chart_point q[40];
    char names[40][64];
    for (int i = 0; i < 40; i++) {
        snprintf(names[i], sizeof(names[i]), "category number %d with a long name", i);
        q[i].label = names[i];
        q[i].value = i;
    }
    strbuf_init(&sb);
    assert_int_equal(media_chart_series(NULL, q, 40, 0, &sb, NULL), MEDIA_OK);
    assert_int_equal(count_of(sb.data, "class=\"pt\""), 40);
    assert_true(count_of(sb.data, "\xe2\x80\xa6</text>") > 0);
    check_svg(&sb, "categories-long", NULL, NULL);
    strbuf_deinit(&sb);
}

static void test_histogram(void **state)
{
    (void)state;
    enum { N = 5000 };
    double *v = malloc(N * sizeof(*v));
    unsigned seed = 7;
    for (int i = 0; i < N; i++) {
        /* Answer lengths: a skewed distribution of whole token counts. */
        seed = seed * 1103515245u + 12345u;
        double u = ((seed >> 8) + 1) / 16777218.0;
        v[i] = floor(-180 * log(u)) + 5;
    }
    struct media_chart_opts o = {.title = "Answer lengths",
                                 .x_label = "tokens per answer",
                                 .y_label = "answers",
                                 .unit = "answers"};
    struct strbuf sb;
    strbuf_init(&sb);
    assert_int_equal(media_chart_histogram(&o, v, N, 0, &sb, NULL), MEDIA_OK);
    /* Bin counts add up to the number of values. */
    size_t total = 0, bins = 0;
    for (const char *p = strstr(sb.data, "data-value=\""); p; p = strstr(p + 1, "data-value=\"")) {
        total += strtoul(p + 12, NULL, 10);
        bins++;
    }
    assert_int_equal(total, N);
    assert_int_equal(bins, count_of(sb.data, "class=\"pt\""));
    assert_true(bins >= 5 && bins <= 80);
    assert_non_null(strstr(sb.data, "Histogram of 5,000 answers"));
    check_svg(&sb, "histogram-answers", NULL, NULL);
    strbuf_deinit(&sb);

    /* Fixed bins over small whole numbers: one bin per value. */
    double small[] = {1, 1, 2, 3, 3, 3, 4};
    strbuf_init(&sb);
    assert_int_equal(media_chart_histogram(NULL, small, 7, 10, &sb, NULL), MEDIA_OK);
    assert_non_null(strstr(sb.data, "data-label=\"3\" data-value=\"3\""));
    assert_non_null(strstr(sb.data, "data-label=\"4\" data-value=\"1\""));
    assert_int_equal(count_of(sb.data, "class=\"pt\""), 4);
    strbuf_deinit(&sb);
    /* Fractions get fractional bins. */
    double frac[] = {0.1, 0.15, 0.2, 0.22, 0.9};
    strbuf_init(&sb);
    assert_int_equal(media_chart_histogram(NULL, frac, 5, 4, &sb, NULL), MEDIA_OK);
    assert_non_null(strstr(sb.data, "data-label=\"0\xe2\x80\x93"
                                    "0.2\" data-value=\"2\""));
    check_svg(&sb, "histogram-fractions", NULL, NULL);
    strbuf_deinit(&sb);
    free(v);

    /* A million answer lengths (the dashboard's scale): time it. */
    enum { BIG = 1000000 };
    v = malloc(BIG * sizeof(*v));
    for (int i = 0; i < BIG; i++) {
        seed = seed * 1103515245u + 12345u;
        v[i] = (double)((seed >> 8) % 2000);
    }
    strbuf_init(&sb);
    uint64_t t0 = time_mono_ns();
    assert_int_equal(media_chart_histogram(&o, v, BIG, 0, &sb, NULL), MEDIA_OK);
    printf("# histogram of 1,000,000 values: %.1f ms\n", (time_mono_ns() - t0) / 1e6);
    total = 0;
    for (const char *p = strstr(sb.data, "data-value=\""); p; p = strstr(p + 1, "data-value=\""))
        total += strtoul(p + 12, NULL, 10);
    assert_int_equal(total, BIG);
    strbuf_deinit(&sb);
    free(v);
}

static void test_top(void **state)
{
    (void)state;
    struct media_chart_point p[] = {{"carol", 50}, {"alice", 120}, {"dave", 50},
                                    {"bob", 300},  {"erin", 0},    {"frank", 7}};
    struct media_chart_opts o = {.title = "Messages per user (top 4)", .unit = "messages"};
    struct strbuf sb;
    strbuf_init(&sb);
    assert_int_equal(media_chart_top(&o, p, 6, 4, &sb, NULL), MEDIA_OK);
    assert_int_equal(count_of(sb.data, "class=\"pt\""), 4);
    const char *b = strstr(sb.data, "data-label=\"bob\"");
    const char *a = strstr(sb.data, "data-label=\"alice\"");
    const char *c = strstr(sb.data, "data-label=\"carol\"");
    const char *d = strstr(sb.data, "data-label=\"dave\"");
    assert_true(b && a && c && d && b < a && a < c && c < d); /* ties by name */
    assert_null(strstr(sb.data, "data-label=\"frank\""));
    assert_non_null(
        strstr(sb.data, "Top 4 of 6 by messages: bob 300, alice 120, carol 50, dave 50."));
    int pw, ph;
    check_svg(&sb, "top-users", &pw, &ph);
    assert_int_equal(pw, 720);
    strbuf_deinit(&sb);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    struct strbuf sb;
    strbuf_init(&sb);
    struct echo_err err = {0};
    struct media_chart_point p[2] = {{"a", 1}, {"b", NAN}};
    assert_int_equal(media_chart_series(NULL, p, 2, 0, &sb, &err), MEDIA_ERR_INVALID);
    assert_non_null(strstr(err.msg, "point 1"));
    p[1].value = INFINITY;
    assert_int_equal(media_chart_series(NULL, p, 2, 0, &sb, &err), MEDIA_ERR_INVALID);
    p[1].value = 1e16;
    assert_int_equal(media_chart_top(NULL, p, 2, 5, &sb, &err), MEDIA_ERR_INVALID);
    p[1].value = -1;
    assert_int_equal(media_chart_top(NULL, p, 2, 5, &sb, &err), MEDIA_ERR_INVALID);
    assert_non_null(strstr(err.msg, "negative"));
    p[1].value = 1;
    p[1].label = NULL;
    assert_int_equal(media_chart_series(NULL, p, 2, 0, &sb, &err), MEDIA_ERR_INVALID);
    p[1].label = "b";
    assert_int_equal(media_chart_top(NULL, p, 2, 0, &sb, &err), MEDIA_ERR_INVALID);
    assert_int_equal(media_chart_top(NULL, p, 2, 101, &sb, &err), MEDIA_ERR_INVALID);
    struct media_chart_opts o = {.width = 100};
    assert_int_equal(media_chart_series(&o, p, 2, 0, &sb, &err), MEDIA_ERR_INVALID);
    assert_non_null(strstr(err.msg, "size"));
    o.width = 720, o.height = 5000;
    assert_int_equal(media_chart_histogram(&o, NULL, 0, 0, &sb, &err), MEDIA_ERR_INVALID);
    double nan_value = NAN;
    assert_int_equal(media_chart_histogram(NULL, &nan_value, 1, 0, &sb, &err), MEDIA_ERR_INVALID);
    double one = 1;
    assert_int_equal(media_chart_histogram(NULL, &one, 1, 201, &sb, &err), MEDIA_ERR_INVALID);
    assert_int_equal(media_chart_series(NULL, p, MEDIA_CHART_MAX_POINTS + 1, 0, &sb, &err),
                     MEDIA_ERR_INVALID);
    /* A running total beyond the range is refused too. */
    struct media_chart_point big[2] = {{"a", 9e14}, {"b", 9e14}};
    assert_int_equal(media_chart_series(NULL, big, 2, MEDIA_CHART_CUMULATIVE, &sb, &err),
                     MEDIA_ERR_INVALID);
    /* Nothing was appended by any failed call. */
    assert_int_equal(sb.len, 0);
    unsigned char *png;
    size_t png_len;
    assert_int_equal(media_svg_to_png("<svg", 4, 1, &png, &png_len, &err), MEDIA_ERR_INVALID);
    assert_null(png);
    assert_int_equal(media_svg_to_png("<svg/>", 6, 0, &png, &png_len, &err), MEDIA_ERR_INVALID);
    strbuf_deinit(&sb);
}

static void test_xml_checker_catches_errors(void **state)
{
    (void)state;
    /* The checker must itself be able to fail, or the tests above prove nothing. */
    const char *good = "<?xml version=\"1.0\"?>\n<a b=\"1\"><c/>t &amp; &#39;</a>\n";
    assert_null(xml_check(good, strlen(good)));
    const char *bad[] = {
        "<a><b></a></b>", "<a b=1/>", "<a>&bogus;</a>", "<a>x<y</a>",  "<a b=\"1\" b=\"2\"/>",
        "<a/><b/>",       "<a>",      "text<a/>",       "<a b=\"<\"/>"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_non_null(xml_check(bad[i], strlen(bad[i])));
}

int main(void)
{
    if (media_init(NULL) != MEDIA_OK) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_axis_ticks),
        cmocka_unit_test(test_number_format),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_single_point),
        cmocka_unit_test(test_dates_across_year_end),
        cmocka_unit_test(test_dates_with_gaps),
        cmocka_unit_test(test_ten_thousand_points),
        cmocka_unit_test(test_huge_values),
        cmocka_unit_test(test_hostile_labels),
        cmocka_unit_test(test_histogram),
        cmocka_unit_test(test_top),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_xml_checker_catches_errors),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    vips_shutdown();
    return rc;
}
