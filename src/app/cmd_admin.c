/*
 * cmd_admin.c - `echobot admin bench`: how long the admin dashboard (issue 8)
 * takes to build on a database as it is, e.g. after
 * `echobot db seed --users 100000 --messages 1000000` (bench/admin.sh does
 * both, then times the pages over HTTP).
 *
 * One run is what GET /admin computes (web_admin_dashboard_build: the
 * totals and the three charts' aggregations and SVGs), then each chart
 * alone as its image URL computes it when the page's cache does not have
 * it, and the totals alone. The median, best and worst of R runs are
 * printed, followed by the query plan of every aggregate statement run.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "db/admin.h"
#include "db/db.h"
#include "web/admin.h"
#include "web/form.h"

const char cmd_admin_summary[] = "admin panel tools: time the dashboard on a database (bench)";

#define PARTS 4

static void usage(FILE *out)
{
    fprintf(out, "usage: echobot admin bench [--runs R] [--from YYYY-MM-DD] [--to YYYY-MM-DD]\n"
                 "                           [--database PATH]\n"
                 "\n"
                 "  bench   build the admin dashboard R times (default 10) as GET /admin\n"
                 "          does: the totals and the three charts (aggregation + SVG) over\n"
                 "          the range (default: the last 30 days); then each chart alone (a\n"
                 "          chart image not in the page's cache) and the totals alone. Prints\n"
                 "          the median, best and worst in ms and the aggregations' query plans.\n"
                 "\n"
                 "The database is ECHO_DATABASE, or INSTANCE_DIR/echo.db; it is only read.\n");
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void print_stats(const char *name, double *ms, int64_t runs)
{
    qsort(ms, (size_t)runs, sizeof(*ms), cmp_double);
    printf("  %-22s median %8.2f ms   best %8.2f ms   worst %8.2f ms\n", name, ms[runs / 2], ms[0],
           ms[runs - 1]);
}

static int bench(db *d, int64_t runs, int64_t from, int64_t to)
{
    static const char *const names[PARTS] = {"signups chart alone", "messages chart alone",
                                             "lengths chart alone", "totals alone"};
    double *ms[PARTS + 1];
    for (int p = 0; p <= PARTS; p++)
        ms[p] = xcalloc((size_t)runs, sizeof(double));
    struct echo_err err = {0};
    int rc = 1;
    size_t svg_bytes = 0;
    for (int64_t r = 0; r < runs; r++) {
        /* What GET /admin computes: totals, three charts' data and SVGs. */
        struct strbuf svgs[3];
        for (int c = 0; c < 3; c++)
            strbuf_init(&svgs[c]);
        json_t *totals = NULL, *charts = NULL;
        uint64_t t = time_mono_ns();
        int s = web_admin_dashboard_build(d, (int64_t)time_now_s(), from, to, &totals, &charts,
                                          svgs, &err);
        ms[PARTS][r] = (time_mono_ns() - t) / 1e6;
        svg_bytes = svgs[0].len + svgs[1].len + svgs[2].len;
        for (int c = 0; c < 3; c++)
            strbuf_deinit(&svgs[c]);
        json_decref(totals);
        json_decref(charts);
        if (s != DB_OK) goto out;
        /* What a chart image costs when it is not in the page's cache. */
        for (int c = 0; c < 3; c++) {
            struct strbuf svg;
            strbuf_init(&svg);
            t = time_mono_ns();
            s = web_admin_chart_svg(d, (enum web_admin_chart)c, from, to, &svg, &err);
            ms[c][r] = (time_mono_ns() - t) / 1e6;
            strbuf_deinit(&svg);
            if (s != DB_OK) goto out;
        }
        t = time_mono_ns();
        s = web_admin_totals(d, (int64_t)time_now_s(), &totals, &err);
        ms[3][r] = (time_mono_ns() - t) / 1e6;
        json_decref(totals);
        if (s != DB_OK) goto out;
    }
    int64_t users = 0, messages = 0;
    if (db_user_count(d, &users, &err) != DB_OK || db_message_count(d, &messages, &err) != DB_OK)
        goto out;
    char a[11], b[11];
    web_admin_format_date(from, a);
    web_admin_format_date(to - 86400, b);
    printf("admin dashboard on %s: %lld users, %lld messages, range %s..%s (%lld days), %lld "
           "runs, %zu bytes of SVG per run\n",
           db_path(d), (long long)users, (long long)messages, a, b,
           (long long)((to - from) / 86400), (long long)runs, svg_bytes);
    print_stats("dashboard (GET /admin)", ms[PARTS], runs);
    for (int p = 0; p < PARTS; p++)
        print_stats(names[p], ms[p], runs);

    json_t *plans = NULL;
    if (db_admin_query_plans(d, &plans, &err) != DB_OK) goto out;
    printf("query plans of the aggregations:\n");
    size_t i;
    json_t *q;
    json_array_foreach(plans, i, q)
    {
        printf("  %s\n", json_string_value(json_object_get(q, "sql")));
        size_t j;
        json_t *line;
        json_array_foreach(json_object_get(q, "plan"), j, line)
            printf("      %s\n", json_string_value(line));
    }
    json_decref(plans);
    rc = 0;
out:
    if (rc != 0) fprintf(stderr, "echobot admin bench: %s\n", err.msg);
    for (int p = 0; p <= PARTS; p++)
        free(ms[p]);
    return rc;
}

int cmd_admin(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "bench") != 0) {
        fprintf(stderr, "echobot admin: unknown action '%s'\n", argv[1]);
        usage(stderr);
        return 2;
    }
    int64_t runs = 10;
    const char *database = NULL, *from_s = NULL, *to_s = NULL;
    for (int i = 2; i < argc; i += 2) {
        /* Every option takes one value. */
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--runs") && v) {
            char *end = NULL;
            runs = strtoll(v, &end, 10);
            if (!*v || *end || runs < 1 || runs > 1000) {
                fprintf(stderr, "echobot admin: --runs takes a number from 1 to 1000\n");
                return 2;
            }
        } else if (!strcmp(argv[i], "--database") && v) {
            database = v;
        } else if (!strcmp(argv[i], "--from") && v) {
            from_s = v;
        } else if (!strcmp(argv[i], "--to") && v) {
            to_s = v;
        } else {
            fprintf(stderr, "echobot admin: unknown or incomplete option '%s'\n", argv[i]);
            return 2;
        }
    }
    int64_t now = (int64_t)time_now_s(), from, to;
    json_t *form = web_form_new();
    bool ok = web_admin_range_parse(from_s, to_s, now - now % 86400, &from, &to, form);
    if (!ok) {
        const char *key;
        json_t *msgs;
        json_object_foreach(json_object_get(form, "errors"), key, msgs) fprintf(
            stderr, "echobot admin: --%s: %s\n", key, json_string_value(json_array_get(msgs, 0)));
    }
    json_decref(form);
    if (!ok) return 2;

    struct echo_err err = {0};
    char buf[1024];
    config *c = config_load_default(&err);
    if (c && database && config_set(c, "ECHO_DATABASE", database, CONFIG_FLAG, &err) != 0) {
        config_free(c);
        c = NULL;
    }
    if (c && config_finish(c, &err) != 0) {
        config_free(c);
        c = NULL;
    }
    db *d = c ? db_open_config(c, &err) : NULL;
    if (!d) {
        fprintf(stderr, "echobot admin: %s\n", echo_err_format(&err, buf, sizeof(buf)));
        config_free(c);
        return 1;
    }
    int rc = bench(d, runs, from, to);
    db_close(d);
    config_free(c);
    return rc;
}
