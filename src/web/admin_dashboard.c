/*
 * admin_dashboard.c - GET /admin: the totals, the DateRange form and the
 * three charts (signups per day with the running total, messages per day,
 * the distribution of answer lengths); GET /admin/charts/<chart>.<svg|png|csv>
 * serves each chart as SVG (src/media/chart.c), as PNG (that SVG rasterised
 * by libvips) or its data as CSV.
 *
 * Every aggregation is SQL over an index: counts per day GROUP BY
 * created_at / 86400 over the index on that expression (users_day,
 * messages_day), the answer statistics over the covering index
 * messages_answers. The per-day charts get one
 * point per day of the range, 0 for a day without rows, so the x axis is
 * honest about quiet days.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "web/admin.h"
#include "web/auth.h"
#include "web/cache.h"
#include "web/form.h"

#define DAY 86400
#define LENGTH_BUCKETS_MAX 30

struct chart_desc {
    const char *name;
    const char *title;
    const char *unit;
    const char *x_label;
    const char *y_label;
    bool dated;
};

static const struct chart_desc charts[] = {
    [WEB_ADMIN_CHART_SIGNUPS] = {"signups", "Signups per day", "signups", NULL, "signups", true},
    [WEB_ADMIN_CHART_MESSAGES] = {"messages", "Messages per day", "messages", NULL, "messages",
                                  true},
    [WEB_ADMIN_CHART_LENGTHS] = {"lengths", "Answer lengths", "answers", "answer length (tokens)",
                                 "answers", false},
};
#define NCHARTS (sizeof(charts) / sizeof(charts[0]))

static web_app *dash_app;

/* ---- the date range ------------------------------------------------------------ */

bool web_admin_range_parse(const char *from_s, const char *to_s, int64_t today, int64_t *from,
                           int64_t *to, json_t *form)
{
    int64_t f = today - (WEB_ADMIN_RANGE_DEFAULT_DAYS - 1) * (int64_t)DAY, t = today;
    bool ok = true;
    if (from_s && from_s[0]) {
        web_form_data(form, "from", from_s);
        if (!web_admin_parse_date(from_s, &f)) {
            web_form_error(form, "from", "Enter the start date as YYYY-MM-DD.");
            ok = false;
        }
    }
    if (to_s && to_s[0]) {
        web_form_data(form, "to", to_s);
        if (!web_admin_parse_date(to_s, &t)) {
            web_form_error(form, "to", "Enter the end date as YYYY-MM-DD.");
            ok = false;
        }
    }
    if (ok && f > t) {
        web_form_error(form, "from", "The start date is after the end date.");
        ok = false;
    }
    if (ok && (t - f) / DAY + 1 > WEB_ADMIN_RANGE_MAX_DAYS) {
        web_form_error(form, "to", "A range is at most 5 years.");
        ok = false;
    }
    char buf[11];
    web_admin_format_date(f, buf);
    if (!from_s || !from_s[0]) web_form_data(form, "from", buf);
    web_admin_format_date(t, buf);
    if (!to_s || !to_s[0]) web_form_data(form, "to", buf);
    *from = f;
    *to = t + DAY; /* the end day is included */
    return ok;
}

/* ---- data ---------------------------------------------------------------------- */

/* The totals with the mean answer speed already known. */
static int totals_with(db *d, int64_t now, double speed, json_t **out, struct echo_err *err)
{
    int64_t users = 0, active = 0, messages = 0, feedback = 0;
    *out = NULL;
    int s = db_user_count(d, &users, err);
    if (s == DB_OK) s = db_user_count_active_since(d, now - 7 * DAY, &active, err);
    if (s == DB_OK) s = db_message_count(d, &messages, err);
    if (s == DB_OK) s = db_feedback_count(d, &feedback, err);
    if (s != DB_OK) return s;
    *out = json_pack("{s:I,s:I,s:I,s:I,s:f}", "users", (json_int_t)users, "active_7d",
                     (json_int_t)active, "messages", (json_int_t)messages, "feedback",
                     (json_int_t)feedback, "avg_tokens_per_second", round(speed * 10) / 10);
    return DB_OK;
}

int web_admin_totals(db *d, int64_t now, json_t **out, struct echo_err *err)
{
    double speed = 0;
    struct db_day_count *lengths = NULL;
    size_t n = 0;
    *out = NULL;
    int s = db_admin_answer_stats(d, &speed, &lengths, &n, err);
    free(lengths);
    return s == DB_OK ? totals_with(d, now, speed, out, err) : s;
}

/* A nice bucket width (1, 2 or 5 x 10^k) giving at most LENGTH_BUCKETS_MAX
 * buckets for lengths 0..max. */
static int64_t bucket_width(int64_t max)
{
    for (int64_t e = 1;; e *= 10) {
        static const int m[] = {1, 2, 5};
        for (int i = 0; i < 3; i++)
            if ((max / (m[i] * e)) + 1 <= LENGTH_BUCKETS_MAX) return m[i] * e;
    }
}

/* Buckets of answer lengths (rows of (length, answers), increasing) as
 * chart points, empty buckets kept. */
static void lengths_points(const struct db_day_count *rows, size_t nrows,
                           struct media_chart_point **pts, size_t *n, char **labels)
{
    int64_t max = 0;
    for (size_t i = 0; i < nrows; i++)
        if (rows[i].day > max) max = rows[i].day;
    int64_t w = bucket_width(max);
    size_t nb = nrows ? (size_t)(max / w) + 1 : 0;
    *pts = nb ? xcalloc(nb, sizeof(**pts)) : NULL;
    *labels = nb ? xcalloc(nb, 48) : NULL;
    for (size_t b = 0; b < nb; b++) {
        char *l = *labels + b * 48;
        if (w == 1)
            snprintf(l, 48, "%lld", (long long)b);
        else
            snprintf(l, 48, "%lld-%lld", (long long)(b * (size_t)w),
                     (long long)((b + 1) * (size_t)w - 1));
        (*pts)[b].label = l;
    }
    /* Negative lengths (a corrupt row) have no bucket. */
    for (size_t i = 0; i < nrows; i++)
        if (rows[i].day >= 0) (*pts)[rows[i].day / w].value += (double)rows[i].count;
    *n = nb;
}

int web_admin_chart_data(db *d, enum web_admin_chart which, int64_t from, int64_t to,
                         struct media_chart_point **pts, size_t *n, char **labels, double *base,
                         struct echo_err *err)
{
    struct db_day_count *rows = NULL;
    size_t nrows = 0;
    int s;
    *pts = NULL;
    *n = 0;
    *labels = NULL;
    *base = 0;
    if (which == WEB_ADMIN_CHART_LENGTHS) {
        double speed;
        s = db_admin_answer_stats(d, &speed, &rows, &nrows, err);
        if (s != DB_OK) return s;
        lengths_points(rows, nrows, pts, n, labels);
        free(rows);
        return DB_OK;
    }
    if (to <= from || (to - from) % DAY || from % DAY) {
        echo_err_set(err, "a chart range is whole days");
        return DB_INVALID;
    }
    size_t days = (size_t)((to - from) / DAY);
    if (which == WEB_ADMIN_CHART_SIGNUPS) {
        int64_t before = 0;
        s = db_admin_count_users_before(d, from, &before, err);
        if (s != DB_OK) return s;
        *base = (double)before;
        s = db_admin_per_day(d, DB_ADMIN_SIGNUPS, from / DAY, to / DAY, &rows, &nrows, err);
    } else {
        s = db_admin_per_day(d, DB_ADMIN_MESSAGES, from / DAY, to / DAY, &rows, &nrows, err);
    }
    if (s != DB_OK) return s;
    *pts = xcalloc(days, sizeof(**pts));
    *labels = xcalloc(days, 11);
    for (size_t i = 0; i < days; i++) {
        char *l = *labels + i * 11;
        web_admin_format_date(from + (int64_t)i * DAY, l);
        (*pts)[i].label = l;
    }
    int64_t day0 = from / DAY;
    for (size_t i = 0; i < nrows; i++) {
        int64_t k = rows[i].day - day0;
        if (k >= 0 && (size_t)k < days) (*pts)[k].value = (double)rows[i].count;
    }
    *n = days;
    free(rows);
    return DB_OK;
}

static int chart_svg_from(enum web_admin_chart which, const struct media_chart_point *pts, size_t n,
                          double base, struct strbuf *out, struct echo_err *err)
{
    const struct chart_desc *c = &charts[which];
    struct media_chart_opts o = {.title = c->title,
                                 .x_label = c->x_label,
                                 .y_label = c->y_label,
                                 .unit = c->unit,
                                 .width = WEB_ADMIN_CHART_WIDTH,
                                 .height = WEB_ADMIN_CHART_HEIGHT,
                                 .cumulative_base = base,
                                 .cumulative_label = "total users"};
    unsigned flags = which == WEB_ADMIN_CHART_SIGNUPS    ? MEDIA_CHART_BARS | MEDIA_CHART_CUMULATIVE
                     : which == WEB_ADMIN_CHART_MESSAGES ? MEDIA_CHART_LINE
                                                         : MEDIA_CHART_BARS;
    return media_chart_series(&o, pts, n, flags, out, err);
}

int web_admin_chart_svg(db *d, enum web_admin_chart which, int64_t from, int64_t to,
                        struct strbuf *out, struct echo_err *err)
{
    struct media_chart_point *pts = NULL;
    size_t n = 0;
    char *labels = NULL;
    double base = 0;
    int s = web_admin_chart_data(d, which, from, to, &pts, &n, &labels, &base, err);
    if (s != DB_OK) return s;
    s = chart_svg_from(which, pts, n, base, out, err) == MEDIA_OK ? DB_OK : DB_ERROR;
    free(pts);
    free(labels);
    return s;
}

/* "1 signup", "2 signups": the units are plural nouns ending in s. */
static void count_noun(char *out, size_t size, double v, const char *plural)
{
    size_t n = strlen(plural);
    if (v == 1 && n > 1 && plural[n - 1] == 's')
        snprintf(out, size, "1 %.*s", (int)(n - 1), plural);
    else
        snprintf(out, size, "%.0f %s", v, plural);
}

/* A sentence for the text alternative below each chart. */
static json_t *summary(enum web_admin_chart which, const struct media_chart_point *pts, size_t n,
                       double base)
{
    char buf[512], count[96], most[96];
    double total = 0;
    size_t hi = 0;
    for (size_t i = 0; i < n; i++) {
        total += pts[i].value;
        if (pts[i].value > pts[hi].value) hi = i;
    }
    /* A range of days without any is no data either: no "busiest day with 0". */
    if (n == 0 || total == 0) {
        if (n == 0 || which == WEB_ADMIN_CHART_LENGTHS) return json_string("No data yet.");
        snprintf(buf, sizeof(buf), "No %s from %s to %s.", charts[which].unit, pts[0].label,
                 pts[n - 1].label);
    } else if (which == WEB_ADMIN_CHART_LENGTHS) {
        count_noun(count, sizeof(count), total, "answers");
        count_noun(most, sizeof(most), pts[hi].value, "answers");
        snprintf(buf, sizeof(buf),
                 "%s with a known length; the most common length is %s tokens (%s).", count,
                 pts[hi].label, most);
    } else {
        count_noun(count, sizeof(count), total, charts[which].unit);
        snprintf(buf, sizeof(buf), "%s from %s to %s; the busiest day was %s with %.0f.", count,
                 pts[0].label, pts[n - 1].label, pts[hi].label, pts[hi].value);
    }
    if (which == WEB_ADMIN_CHART_SIGNUPS) {
        size_t len = strlen(buf);
        count_noun(count, sizeof(count), base + total, "users");
        snprintf(buf + len, sizeof(buf) - len, " %s in total at the end of the range.", count);
    }
    return json_string(buf);
}

/* ---- the whole dashboard ------------------------------------------------------------ */

int web_admin_dashboard_build(db *d, int64_t now, int64_t from, int64_t to, json_t **totals,
                              json_t **list, struct strbuf svgs[3], struct echo_err *err)
{
    double speed = 0;
    struct db_day_count *lengths = NULL;
    size_t nlengths = 0;
    *totals = NULL;
    *list = NULL;
    /* One pass over the answers serves the mean speed and the lengths. */
    int s = db_admin_answer_stats(d, &speed, &lengths, &nlengths, err);
    if (s == DB_OK) s = totals_with(d, now, speed, totals, err);
    json_t *arr = json_array();
    char qs[64], a[11], b[11];
    web_admin_format_date(from, a);
    web_admin_format_date(to - DAY, b);
    snprintf(qs, sizeof(qs), "?from=%s&to=%s", a, b);
    for (size_t i = 0; s == DB_OK && i < NCHARTS; i++) {
        struct media_chart_point *pts = NULL;
        size_t n = 0;
        char *labels = NULL;
        double base = 0;
        if (i == WEB_ADMIN_CHART_LENGTHS)
            lengths_points(lengths, nlengths, &pts, &n, &labels);
        else
            s = web_admin_chart_data(d, (enum web_admin_chart)i, from, to, &pts, &n, &labels, &base,
                                     err);
        if (s == DB_OK &&
            chart_svg_from((enum web_admin_chart)i, pts, n, base, &svgs[i], err) != MEDIA_OK)
            s = DB_ERROR;
        if (s == DB_OK) {
            char url[128];
            json_t *c = json_pack("{s:s,s:s,s:I}", "name", charts[i].name, "title", charts[i].title,
                                  "points", (json_int_t)n);
            json_object_set_new(c, "summary", summary((enum web_admin_chart)i, pts, n, base));
            snprintf(url, sizeof(url), "/admin/charts/%s.svg%s", charts[i].name, qs);
            json_object_set_new(c, "svg_url", json_string(url));
            snprintf(url, sizeof(url), "/admin/charts/%s.png%s", charts[i].name, qs);
            json_object_set_new(c, "png_url", json_string(url));
            snprintf(url, sizeof(url), "/admin/charts/%s.csv%s", charts[i].name, qs);
            json_object_set_new(c, "csv_url", json_string(url));
            json_array_append_new(arr, c);
        }
        free(pts);
        free(labels);
    }
    free(lengths);
    if (s != DB_OK) {
        json_decref(arr);
        json_decref(*totals);
        *totals = NULL;
        return s;
    }
    *list = arr;
    return DB_OK;
}

/* ---- the chart cache ------------------------------------------------------------------ */

/*
 * The page draws its three charts while it has their data (the summaries
 * need it anyway) and keeps the SVGs for CHART_CACHE_MS, so the images the
 * browser asks for right after the page are served without running the
 * aggregations a second time. Any change made through the panel clears the
 * cache (web_admin_charts_changed); other changes (signups, chat messages)
 * show within CHART_CACHE_MS.
 */
#define CHART_CACHE_MS 20000
static cache *chart_cache;

static void chart_key(size_t which, int64_t from, int64_t to, char out[64])
{
    snprintf(out, 64, "%s:%lld:%lld", charts[which].name, (long long)from, (long long)to);
}

void web_admin_charts_changed(void)
{
    if (chart_cache) cache_clear(chart_cache);
}

/* ---- GET /admin -------------------------------------------------------------------- */

static int64_t today_midnight(void)
{
    int64_t now = (int64_t)time_now_s();
    return now - now % DAY;
}

static void dashboard(http_request *req, http_response *res, void *arg)
{
    (void)arg;
    json_t *form = web_form_new();
    int64_t from, to;
    const char *from_s = http_request_query(req, "from"), *to_s = http_request_query(req, "to");
    bool ok = web_admin_range_parse(from_s, to_s, today_midnight(), &from, &to, form);
    db *d = web_db(req);
    json_t *totals = NULL, *list = NULL;
    struct echo_err err = {0};
    struct strbuf svgs[NCHARTS];
    for (size_t i = 0; i < NCHARTS; i++)
        strbuf_init(&svgs[i]);
    uint64_t ticket = cache_ticket(chart_cache);
    int s;
    if (!d)
        s = DB_BUSY;
    else if (ok)
        s = web_admin_dashboard_build(d, (int64_t)time_now_s(), from, to, &totals, &list, svgs,
                                      &err);
    else
        s = web_admin_totals(d, (int64_t)time_now_s(), &totals, &err);
    if (s == DB_OK && ok) {
        for (size_t i = 0; i < NCHARTS; i++) {
            char key[64];
            chart_key(i, from, to, key);
            json_t *v = json_stringn(svgs[i].data, svgs[i].len);
            cache_put_if_fresh(chart_cache, key, v, CHART_CACHE_MS, ticket);
            json_decref(v);
        }
    }
    for (size_t i = 0; i < NCHARTS; i++)
        strbuf_deinit(&svgs[i]);
    if (s != DB_OK) {
        log_error("admin dashboard: %s", d ? err.msg : "no connection");
        json_decref(form);
        http_response_error(
            res, s == DB_BUSY ? HTTP_STATUS_SERVICE_UNAVAILABLE : HTTP_STATUS_INTERNAL_ERROR, NULL);
        return;
    }
    json_t *ctx = web_admin_page_context(req);
    json_object_set_new(ctx, "totals", totals);
    json_object_set_new(ctx, "range_form", form);
    json_object_set_new(ctx, "charts", list ? list : json_array());
    json_object_set_new(ctx, "chart_width", json_integer(WEB_ADMIN_CHART_WIDTH));
    json_object_set_new(ctx, "chart_height", json_integer(WEB_ADMIN_CHART_HEIGHT));
    web_app_render(dash_app, req, res, ok ? HTTP_STATUS_OK : HTTP_STATUS_BAD_REQUEST,
                   "admin/dashboard.html", ctx);
    http_response_set_header(res, "Cache-Control", "no-store");
    json_decref(ctx);
}

/* ---- GET /admin/charts/<name> -------------------------------------------------------- */

static void chart_file(http_request *req, http_response *res, void *arg)
{
    (void)arg;
    const char *name = http_request_param(req, "name");
    const char *dot = name ? strrchr(name, '.') : NULL;
    size_t which = NCHARTS;
    for (size_t i = 0; dot && i < NCHARTS; i++)
        if (strlen(charts[i].name) == (size_t)(dot - name) &&
            !strncmp(name, charts[i].name, (size_t)(dot - name)))
            which = i;
    if (which == NCHARTS || (strcmp(dot, ".svg") && strcmp(dot, ".png") && strcmp(dot, ".csv"))) {
        http_response_error(res, HTTP_STATUS_NOT_FOUND, NULL);
        return;
    }
    json_t *form = web_form_new();
    int64_t from, to;
    bool ok = web_admin_range_parse(http_request_query(req, "from"), http_request_query(req, "to"),
                                    today_midnight(), &from, &to, form);
    json_decref(form);
    if (!ok) {
        http_response_error(res, HTTP_STATUS_BAD_REQUEST,
                            "The date range is not valid: dates as YYYY-MM-DD, the start not "
                            "after the end, at most 5 years.");
        return;
    }
    struct strbuf out;
    strbuf_init(&out);
    struct echo_err err = {0};
    struct media_chart_point *pts = NULL;
    size_t n = 0;
    char *labels = NULL;
    http_response_set_header(res, "Cache-Control", "no-store");
    if (strcmp(dot, ".csv") != 0) {
        char key[64];
        chart_key(which, from, to, key);
        json_t *cached = cache_get(chart_cache, key);
        if (cached) {
            strbuf_append(&out, json_string_value(cached), json_string_length(cached));
            json_decref(cached);
            goto draw;
        }
    }
    db *d = web_db(req);
    double base = 0;
    int s = d ? web_admin_chart_data(d, (enum web_admin_chart)which, from, to, &pts, &n, &labels,
                                     &base, &err)
              : DB_BUSY;
    if (s != DB_OK) {
        log_error("admin chart %s: %s", name, d ? err.msg : "no connection");
        http_response_error(
            res, s == DB_BUSY ? HTTP_STATUS_SERVICE_UNAVAILABLE : HTTP_STATUS_INTERNAL_ERROR, NULL);
        return;
    }
    if (!strcmp(dot, ".csv")) {
        bool dated = charts[which].dated;
        strbuf_puts(&out, dated ? "date,count" : "tokens,count");
        strbuf_puts(&out, which == WEB_ADMIN_CHART_SIGNUPS ? ",cumulative\r\n" : "\r\n");
        double run = base;
        for (size_t i = 0; i < n; i++) {
            run += pts[i].value;
            web_admin_csv_cell(&out, pts[i].label);
            strbuf_printf(&out, ",%.0f", pts[i].value);
            if (which == WEB_ADMIN_CHART_SIGNUPS) strbuf_printf(&out, ",%.0f", run);
            strbuf_puts(&out, "\r\n");
        }
        char disp[96];
        snprintf(disp, sizeof(disp), "attachment; filename=\"%s.csv\"", charts[which].name);
        http_response_set_header(res, "Content-Disposition", disp);
        size_t len = out.len;
        http_response_body_take(res, "text/csv; charset=utf-8", strbuf_steal(&out), len);
        goto done;
    }
    if (chart_svg_from((enum web_admin_chart)which, pts, n, base, &out, &err) != MEDIA_OK) {
        log_error("admin chart %s: %s", name, err.msg);
        http_response_error(res, HTTP_STATUS_INTERNAL_ERROR, NULL);
        goto done;
    }
draw:
    if (!strcmp(dot, ".svg")) {
        size_t len = out.len;
        http_response_body_take(res, "image/svg+xml; charset=utf-8", strbuf_steal(&out), len);
        goto done;
    }
    unsigned char *png = NULL;
    size_t png_len = 0;
    if (media_svg_to_png(out.data, out.len, 2.0, &png, &png_len, &err) != MEDIA_OK) {
        log_error("admin chart %s as PNG: %s", name, err.msg);
        http_response_error(res, HTTP_STATUS_INTERNAL_ERROR, NULL);
        goto done;
    }
    http_response_body_take(res, "image/png", (char *)png, png_len);
done:
    strbuf_deinit(&out);
    free(pts);
    free(labels);
}

void web_admin_dashboard_unregister(void)
{
    cache_free(chart_cache);
    chart_cache = NULL;
}

int web_admin_dashboard_register(web_app *app, struct echo_err *err)
{
    dash_app = app;
    struct cache_options co = {.capacity = 64, .ttl_ms = CHART_CACHE_MS};
    if (!chart_cache) chart_cache = cache_new(&co);
    http_router *r = web_app_router(app);
    if (http_router_add(r, HTTP_GET, "/admin", dashboard, NULL, err) != 0 ||
        http_router_add(r, HTTP_GET, "/admin/charts/<name>", chart_file, NULL, err) != 0)
        return -1;
    return 0;
}
