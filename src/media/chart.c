/*
 * chart.c - the admin dashboard's charts (issue 8) as standalone SVG, drawn
 * on the server so the page needs no chart script and the same drawing can
 * be rasterised to PNG for download.
 *
 * The look follows seaborn's default "darkgrid" theme, which the original
 * app's matplotlib charts used: a light blue-grey plot area without spines,
 * white grid lines, dark grey DejaVu Sans text, the "muted" palette. Only
 * presentation attributes are used (no <style>), so several charts can be
 * inlined in one page without their styles leaking into each other.
 *
 * Axis ticks are "nice numbers" (Heckbert, Graphics Gems 1990): a step of
 * 1, 2 or 5 times a power of ten chosen so that about one tick falls every
 * 50-80 px. A time axis chooses among day, week, month and year steps the
 * same way, and writes the year under the first tick and where it changes,
 * like matplotlib's ConciseDateFormatter.
 *
 * Every function builds its document in a local buffer and appends it to
 * the caller's only when complete, so an error leaves out untouched.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "media/media.h"
#include "media/media_internal.h"

#define FONT "DejaVu Sans, Verdana, Arial, sans-serif"
#define C_TEXT "#262626"
#define C_SUBTLE "#6a6a6a"
#define C_PLOT "#eaeaf2"
#define C_GRID "#ffffff"
#define C_PRIMARY "#4878d0" /* seaborn muted, first colour */
#define C_SECOND "#ee854a"  /* seaborn muted, second colour */
#define FS_TICK 12.0
#define FS_LABEL 13.0
#define FS_TITLE 15.0
#define MAX_ABS_VALUE 1e15 /* beyond, a double no longer holds whole counts exactly */

/* ---- numbers and axes -------------------------------------------------- */

struct axis {
    double lo, hi, step;
    int ticks;          /* ticks at lo, lo + step, ..., hi */
    double unit;        /* labels show value / unit followed by suffix */
    const char *suffix; /* "", "k", "M", "B", "T" */
    int decimals;
};

/* The smallest number of decimals that writes x exactly (up to 6). */
static int decimals_of(double x)
{
    x = fabs(x);
    for (int d = 0; d < 6; d++) {
        double s = x * pow(10, d);
        if (fabs(s - round(s)) < 1e-6 * (s > 1 ? s : 1)) return d;
    }
    return 6;
}

/* A step of 1, 2 or 5 x 10^k, at least raw. */
static double nice_step(double raw)
{
    if (!(raw > 0) || !isfinite(raw)) return 1;
    double e = pow(10, floor(log10(raw)));
    double f = raw / e;
    double m = f <= 1 + 1e-9 ? 1 : f <= 2 + 1e-9 ? 2 : f <= 5 + 1e-9 ? 5 : 10;
    return m * e;
}

/* The 1, 2 or 5 x 10^k nearest to raw (Heckbert's rounded "nice number"). */
static double nice_round(double raw)
{
    if (!(raw > 0) || !isfinite(raw)) return 1;
    double e = pow(10, floor(log10(raw)));
    double f = raw / e;
    double m = f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10;
    return m * e;
}

static void axis_labels(struct axis *ax)
{
    double big = fmax(fabs(ax->lo), fabs(ax->hi));
    ax->unit = 1;
    ax->suffix = "";
    /* Up to 9,999 the full number reads best; beyond, 12.5k beats 12,500. */
    if (big >= 1e12)
        ax->unit = 1e12, ax->suffix = "T";
    else if (big >= 1e9)
        ax->unit = 1e9, ax->suffix = "B";
    else if (big >= 1e6)
        ax->unit = 1e6, ax->suffix = "M";
    else if (big >= 1e4)
        ax->unit = 1e3, ax->suffix = "k";
    ax->decimals = decimals_of(ax->step / ax->unit);
}

/* An axis over [min, max] (0 always included: bars and counts start at zero)
 * with about target intervals. */
static void axis_make(double min, double max, int target, bool integral, struct axis *ax)
{
    if (min > 0) min = 0;
    if (max < 0) max = 0;
    if (max == min) max = min + 1;
    if (target < 1) target = 1;
    double step = nice_step((max - min) / target);
    if (integral && step < 1) step = 1;
    ax->step = step;
    ax->lo = floor(min / step + 1e-9) * step;
    ax->hi = ceil(max / step - 1e-9) * step;
    if (ax->hi <= ax->lo) ax->hi = ax->lo + step;
    ax->ticks = (int)llround((ax->hi - ax->lo) / step) + 1;
    axis_labels(ax);
}

int media_axis_ticks(double min, double max, int target, bool integral, double *lo, double *hi,
                     double *step)
{
    struct axis ax;
    axis_make(min, max, target, integral, &ax);
    *lo = ax.lo;
    *hi = ax.hi;
    *step = ax.step;
    return ax.ticks;
}

static void axis_tick_label(const struct axis *ax, double v, char *buf, size_t size)
{
    char num[64];
    if (fabs(v) < ax->step * 1e-9) {
        snprintf(buf, size, "0");
        return;
    }
    media_format_number(num, sizeof(num), v / ax->unit, ax->decimals);
    snprintf(buf, size, "%s%s", num, ax->suffix);
}

static double axis_label_width(const struct axis *ax)
{
    double w = 0;
    char buf[80];
    for (int i = 0; i < ax->ticks; i++) {
        axis_tick_label(ax, ax->lo + i * ax->step, buf, sizeof(buf));
        w = fmax(w, media_text_width(buf, FS_TICK));
    }
    return w;
}

/* Values in tooltips and summaries: exact, with separators. */
static void format_value(char *buf, size_t size, double v, bool integral)
{
    media_format_number(buf, size, v, integral ? 0 : 2);
}

/* ---- dates ------------------------------------------------------------- */

static void civil_from_days(int64_t z, int *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)(yoe + era * 400 + (*m <= 2));
}

static bool leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Exactly "YYYY-MM-DD", a real calendar day of years 1..9999. */
static bool parse_date(const char *s, int64_t *days)
{
    static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (strlen(s) != 10 || s[4] != '-' || s[7] != '-') return false;
    for (int i = 0; i < 10; i++)
        if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9')) return false;
    int y = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
    int m = (s[5] - '0') * 10 + (s[6] - '0');
    int d = (s[8] - '0') * 10 + (s[9] - '0');
    if (y < 1 || m < 1 || m > 12 || d < 1) return false;
    if (d > mdays[m - 1] + (m == 2 && leap(y))) return false;
    *days = time_days_from_civil(y, m, d);
    return true;
}

static const char *const month_names[12] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

struct date_tick {
    int64_t day;
    char line1[16];
    char line2[8]; /* the year, where it is shown; "" otherwise */
};

enum date_unit { DU_DAY, DU_MONTH, DU_YEAR };

/* Chooses day/week/month/year ticks for [d0, d1] with at most max_ticks;
 * fills ticks (capacity cap) and returns how many. */
static int date_ticks(int64_t d0, int64_t d1, int max_ticks, struct date_tick *ticks, int cap)
{
    static const struct {
        enum date_unit unit;
        int step;
    } steps[] = {{DU_DAY, 1},    {DU_DAY, 2},    {DU_DAY, 7},     {DU_DAY, 14},   {DU_MONTH, 1},
                 {DU_MONTH, 2},  {DU_MONTH, 3},  {DU_MONTH, 6},   {DU_YEAR, 1},   {DU_YEAR, 2},
                 {DU_YEAR, 5},   {DU_YEAR, 10},  {DU_YEAR, 20},   {DU_YEAR, 50},  {DU_YEAR, 100},
                 {DU_YEAR, 200}, {DU_YEAR, 500}, {DU_YEAR, 1000}, {DU_YEAR, 2000}};
    double span = (double)(d1 - d0);
    size_t pick = sizeof(steps) / sizeof(steps[0]) - 1;
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        double days = steps[i].unit == DU_DAY     ? steps[i].step
                      : steps[i].unit == DU_MONTH ? steps[i].step * 30.44
                                                  : steps[i].step * 365.25;
        if (span / days + 1 <= max_ticks) {
            pick = i;
            break;
        }
    }
    enum date_unit unit = steps[pick].unit;
    int step = steps[pick].step;
    int n = 0, y0, m0, dd0;
    civil_from_days(d0, &y0, &m0, &dd0);
    if (unit == DU_DAY) {
        int64_t first = d0;
        if (step >= 7) /* weeks start on Mondays; 1970-01-01 was a Thursday */
            first = d0 + ((7 - ((d0 + 3) % 7 + 7) % 7) % 7);
        for (int64_t d = first; d <= d1 && n < cap; d += step)
            ticks[n++].day = d;
    } else if (unit == DU_MONTH) {
        int y = y0, m = m0;
        if (dd0 != 1 && ++m > 12) m = 1, y++;
        for (;;) {
            if ((m - 1) % step == 0) {
                int64_t d = time_days_from_civil(y, m, 1);
                if (d > d1 || n >= cap) break;
                ticks[n++].day = d;
            }
            if (++m > 12) m = 1, y++;
            if (y > 10000) break;
        }
    } else {
        int y = y0 + (m0 != 1 || dd0 != 1);
        y = ((y + step - 1) / step) * step;
        for (; y <= 9999 && n < cap; y += step) {
            int64_t d = time_days_from_civil(y, 1, 1);
            if (d > d1) break;
            ticks[n++].day = d;
        }
    }
    if (n == 0) /* a range shorter than the step: label where it starts */
        ticks[n++].day = d0;
    int prev_year = -1;
    for (int i = 0; i < n; i++) {
        int y, m, d;
        civil_from_days(ticks[i].day, &y, &m, &d);
        ticks[i].line2[0] = 0;
        if (unit == DU_YEAR) {
            snprintf(ticks[i].line1, sizeof(ticks[i].line1), "%d", y);
        } else {
            if (unit == DU_DAY)
                snprintf(ticks[i].line1, sizeof(ticks[i].line1), "%s %d", month_names[m - 1], d);
            else
                snprintf(ticks[i].line1, sizeof(ticks[i].line1), "%s", month_names[m - 1]);
            if (y != prev_year) snprintf(ticks[i].line2, sizeof(ticks[i].line2), "%d", y);
        }
        prev_year = y;
    }
    return n;
}

/* ---- SVG pieces -------------------------------------------------------- */

struct frame {
    int w, h;
    double x0, y0, x1, y1; /* the plot area */
};

static int check_opts(const struct media_chart_opts *o, int *w, int *h, int default_h,
                      struct echo_err *err)
{
    *w = o && o->width ? o->width : 720;
    *h = o && o->height ? o->height : default_h;
    if (*w < 240 || *w > 4000 || *h < 160 || *h > 4000) {
        echo_err_set(err, "chart size %d x %d is outside 240..4000 x 160..4000", *w, *h);
        return MEDIA_ERR_INVALID;
    }
    return MEDIA_OK;
}

static int check_points(const struct media_chart_point *pts, size_t n, bool non_negative,
                        struct echo_err *err)
{
    if (n > MEDIA_CHART_MAX_POINTS) {
        echo_err_set(err, "too many points for a chart (%zu; at most %d)", n,
                     MEDIA_CHART_MAX_POINTS);
        return MEDIA_ERR_INVALID;
    }
    if (n > 0 && !pts) {
        echo_err_set(err, "no points given");
        return MEDIA_ERR_INVALID;
    }
    for (size_t i = 0; i < n; i++) {
        if (!pts[i].label) {
            echo_err_set(err, "point %zu has no label", i);
            return MEDIA_ERR_INVALID;
        }
        if (!isfinite(pts[i].value) || fabs(pts[i].value) > MAX_ABS_VALUE) {
            echo_err_set(err, "point %zu has a value that is not a finite number up to 1e15", i);
            return MEDIA_ERR_INVALID;
        }
        if (non_negative && pts[i].value < 0) {
            echo_err_set(err, "point %zu has a negative value", i);
            return MEDIA_ERR_INVALID;
        }
    }
    return MEDIA_OK;
}

static void svg_begin(struct strbuf *sb, const struct frame *f, const struct media_chart_opts *o,
                      const char *summary)
{
    const char *title = o && o->title && o->title[0] ? o->title : "Chart";
    strbuf_printf(sb,
                  "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
                  "viewBox=\"0 0 %d %d\" role=\"img\" class=\"echo-chart\" font-family=\"" FONT
                  "\" aria-label=\"",
                  f->w, f->h, f->w, f->h);
    media_xml_puts(sb, title);
    strbuf_puts(sb, "\">\n<title>");
    media_xml_puts(sb, title);
    strbuf_puts(sb, "</title>\n<desc>");
    media_xml_puts(sb, summary);
    strbuf_printf(sb,
                  "</desc>\n<rect width=\"%d\" height=\"%d\" fill=\"#ffffff\"/>\n"
                  "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"" C_PLOT
                  "\"/>\n",
                  f->w, f->h, f->x0, f->y0, f->x1 - f->x0, f->y1 - f->y0);
}

/* A text element; content cut to max_px (0: no limit) with the full text
 * as a tooltip when cut. */
static void svg_text(struct strbuf *sb, double x, double y, const char *anchor, double size,
                     const char *fill, const char *extra, const char *content, double max_px)
{
    strbuf_printf(sb, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"%g\" fill=\"%s\"", x, y, size, fill);
    if (anchor) strbuf_printf(sb, " text-anchor=\"%s\"", anchor);
    if (extra) strbuf_printf(sb, " %s", extra);
    strbuf_putc(sb, '>');
    if (max_px > 0 && media_text_width(content, size) > max_px) {
        strbuf_puts(sb, "<title>");
        media_xml_puts(sb, content);
        strbuf_puts(sb, "</title>");
        media_xml_fit(sb, content, size, max_px);
    } else {
        media_xml_puts(sb, content);
    }
    strbuf_puts(sb, "</text>\n");
}

/* Title, axis titles; the y title is turned to read bottom to top. */
static void svg_titles(struct strbuf *sb, const struct frame *f, const struct media_chart_opts *o)
{
    if (!o) return;
    if (o->title && o->title[0])
        svg_text(sb, f->x0, 22, "start", FS_TITLE, C_TEXT, "font-weight=\"bold\"", o->title,
                 f->w - f->x0 - 10);
    if (o->x_label && o->x_label[0])
        svg_text(sb, (f->x0 + f->x1) / 2, f->h - 8, "middle", FS_LABEL, C_TEXT, NULL, o->x_label,
                 f->x1 - f->x0);
    if (o->y_label && o->y_label[0]) {
        char rot[96];
        double cy = (f->y0 + f->y1) / 2;
        snprintf(rot, sizeof(rot), "transform=\"rotate(-90 %.1f %.1f)\"", 16.0, cy);
        svg_text(sb, 16, cy, "middle", FS_LABEL, C_TEXT, rot, o->y_label, f->y1 - f->y0);
    }
}

static void svg_empty(struct strbuf *sb, const struct frame *f)
{
    svg_text(sb, (f->x0 + f->x1) / 2, (f->y0 + f->y1) / 2 + 5, "middle", 14, C_SUBTLE,
             "class=\"empty\"", "No data yet", 0);
}

/* The centre of day d's slot on an axis of slots sw px wide from day d0. */
static double slot_x(const struct frame *f, int64_t d, int64_t d0, double sw)
{
    return f->x0 + ((double)(d - d0) + 0.5) * sw;
}

/* v on a linear x axis from lo to hi. */
static double lin_x(const struct frame *f, double v, double lo, double hi)
{
    return f->x0 + (v - lo) / (hi - lo) * (f->x1 - f->x0);
}

static double y_of(const struct frame *f, const struct axis *ax, double v)
{
    return f->y1 - (v - ax->lo) / (ax->hi - ax->lo) * (f->y1 - f->y0);
}

/* Horizontal grid lines and tick labels of a value axis at the left
 * (labels right-aligned before the plot) or the right (colour given). */
static void svg_y_axis(struct strbuf *sb, const struct frame *f, const struct axis *ax, bool right,
                       const char *colour)
{
    char buf[80];
    for (int i = 0; i < ax->ticks; i++) {
        double v = ax->lo + i * ax->step;
        double y = y_of(f, ax, v);
        if (!right)
            strbuf_printf(sb,
                          "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"" C_GRID
                          "\" stroke-width=\"1\"/>\n",
                          f->x0, f->x1, y, y);
        axis_tick_label(ax, v, buf, sizeof(buf));
        svg_text(sb, right ? f->x1 + 6 : f->x0 - 6, y + 4, right ? "start" : "end", FS_TICK, colour,
                 NULL, buf, 0);
    }
}

/* Summaries for <desc>: the text alternative of the chart. */
static void describe_extremes(struct strbuf *d, const struct media_chart_point *pts, size_t n,
                              bool integral, const char *unit)
{
    size_t hi = 0, lo = 0;
    double total = 0;
    for (size_t i = 0; i < n; i++) {
        total += pts[i].value;
        if (pts[i].value > pts[hi].value) hi = i;
        if (pts[i].value < pts[lo].value) lo = i;
    }
    char a[64], b[64], c[64];
    format_value(a, sizeof(a), total, integral);
    format_value(b, sizeof(b), pts[hi].value, integral);
    format_value(c, sizeof(c), pts[lo].value, integral);
    const char *u = unit ? unit : "";
    const char *sp = unit ? " " : "";
    strbuf_printf(d, " Total %s%s%s; highest %s on %s; lowest %s on %s.", a, sp, u, b,
                  pts[hi].label, c, pts[lo].label);
}

/* ---- time series ------------------------------------------------------- */

int media_chart_series(const struct media_chart_opts *opts, const struct media_chart_point *pts,
                       size_t n, unsigned flags, struct strbuf *out, struct echo_err *err)
{
    int w, h, rc;
    if ((rc = check_opts(opts, &w, &h, 360, err)) != MEDIA_OK ||
        (rc = check_points(pts, n, false, err)) != MEDIA_OK)
        return rc;
    bool line = flags & MEDIA_CHART_LINE;
    bool cumulative = (flags & MEDIA_CHART_CUMULATIVE) && n > 0;
    double base = opts ? opts->cumulative_base : 0;
    if (cumulative && (!isfinite(base) || fabs(base) > MAX_ABS_VALUE)) {
        echo_err_set(err, "cumulative_base is not a finite number up to 1e15");
        return MEDIA_ERR_INVALID;
    }
    const char *unit = opts ? opts->unit : NULL;

    /* A time axis when every label is a date and they increase. */
    int64_t *day = n ? xmalloc(n * sizeof(*day)) : NULL;
    bool dates = n > 0;
    for (size_t i = 0; i < n && dates; i++)
        dates = parse_date(pts[i].label, &day[i]) && (i == 0 || day[i] > day[i - 1]);
    if (!dates)
        for (size_t i = 0; i < n; i++)
            day[i] = (int64_t)i;
    int64_t d0 = n ? day[0] : 0, d1 = n ? day[n - 1] : 0;

    bool integral = true;
    double vmin = 0, vmax = 0, run = base, cmin = base, cmax = base;
    for (size_t i = 0; i < n; i++) {
        double v = pts[i].value;
        integral = integral && v == floor(v);
        vmin = fmin(vmin, v);
        vmax = fmax(vmax, v);
        run += v;
        cmin = fmin(cmin, run);
        cmax = fmax(cmax, run);
    }
    if (cumulative &&
        (!isfinite(run) || fabs(cmax) > MAX_ABS_VALUE || fabs(cmin) > MAX_ABS_VALUE)) {
        free(day);
        echo_err_set(err, "the running total exceeds 1e15");
        return MEDIA_ERR_INVALID;
    }
    integral = integral && (!cumulative || base == floor(base));

    /* Layout: the value axes' labels decide the side margins. */
    bool has_title = opts && opts->title && opts->title[0];
    double top = has_title || cumulative ? 38 : 12;
    double bottom = 10 + (dates ? 30 : 18) + (opts && opts->x_label && opts->x_label[0] ? 20 : 0);
    struct axis ay, ac = {0};
    int target = (int)((h - top - bottom) / 50);
    axis_make(vmin, vmax, target < 2 ? 2 : target, integral, &ay);
    if (cumulative) {
        /* Share the left axis' grid: as many intervals, a step in a finer
         * nice sequence so the line uses the height. */
        static const double fine[] = {1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10};
        int k = ay.ticks - 1;
        double lo = cmin < 0 ? cmin : 0;
        double raw = (cmax - lo) / k, e = pow(10, floor(log10(raw > 0 ? raw : 1))), step = e;
        for (size_t i = 0; i < sizeof(fine) / sizeof(fine[0]); i++)
            if (fine[i] * e >= raw * (1 - 1e-9)) {
                step = fine[i] * e;
                break;
            }
        if (integral && step < 1) step = 1;
        ac.step = step;
        ac.lo = lo < 0 ? floor(lo / step) * step : 0;
        ac.hi = ac.lo + k * step;
        while (ac.hi < cmax) /* a negative start can leave the top short */
            ac.hi += step, k++;
        ac.ticks = k + 1;
        axis_labels(&ac);
    }
    struct frame f = {w, h, 0, 0, 0, 0};
    f.x0 = 10 + (opts && opts->y_label && opts->y_label[0] ? 22 : 0) + axis_label_width(&ay) + 8;
    f.x1 = w - (cumulative ? axis_label_width(&ac) + 16 : 16);
    f.y0 = top;
    f.y1 = h - bottom;
    if (f.x1 - f.x0 < 40 || f.y1 - f.y0 < 40) {
        free(day);
        echo_err_set(err, "chart size %d x %d leaves no room to plot", w, h);
        return MEDIA_ERR_INVALID;
    }

    /* The summary doubles as the text alternative. */
    struct strbuf desc, sb;
    strbuf_init(&desc);
    strbuf_init(&sb);
    if (n == 0) {
        strbuf_puts(&desc, "No data yet.");
    } else {
        strbuf_printf(&desc, "%s chart of %zu %s from %s to %s.", line ? "Line" : "Bar", n,
                      dates ? (n == 1 ? "day" : "days") : (n == 1 ? "value" : "values"),
                      pts[0].label, pts[n - 1].label);
        describe_extremes(&desc, pts, n, integral, unit);
        if (cumulative) {
            char t[64];
            format_value(t, sizeof(t), run, integral);
            strbuf_printf(&desc, " Running total at the end: %s.", t);
        }
    }
    svg_begin(&sb, &f, opts, strbuf_cstr(&desc));
    strbuf_deinit(&desc);
    svg_titles(&sb, &f, opts);
    svg_y_axis(&sb, &f, &ay, false, C_TEXT);
    if (n == 0) {
        svg_empty(&sb, &f);
        goto done;
    }

    /* x: one slot per day (time axis) or per point. */
    double slots = (double)(d1 - d0 + 1), sw = (f.x1 - f.x0) / slots;
    if (dates) {
        struct date_tick ticks[64];
        int max_ticks = (int)((f.x1 - f.x0) / 75);
        int nt = date_ticks(d0, d1, max_ticks < 2 ? 2 : max_ticks, ticks, 64);
        for (int i = 0; i < nt; i++) {
            double x = slot_x(&f, ticks[i].day, d0, sw);
            strbuf_printf(&sb,
                          "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"" C_GRID
                          "\" stroke-width=\"1\"/>\n",
                          x, x, f.y0, f.y1);
            svg_text(&sb, x, f.y1 + 16, "middle", FS_TICK, C_TEXT, NULL, ticks[i].line1, 0);
            if (ticks[i].line2[0])
                svg_text(&sb, x, f.y1 + 30, "middle", FS_TICK, C_SUBTLE, NULL, ticks[i].line2, 0);
        }
    } else {
        /* Categories: every k-th label, so that each has about 60 px. */
        size_t every = (size_t)ceil(60.0 / sw);
        if (every < 1) every = 1;
        for (size_t i = 0; i < n; i += every) {
            /* Centred under its bar, within its share and the picture. */
            double x = slot_x(&f, day[i], d0, sw);
            double room = fmin(sw * (double)every - 6, 2 * fmin(x - 2, w - x - 2));
            svg_text(&sb, x, f.y1 + 16, "middle", FS_TICK, C_TEXT, NULL, pts[i].label, room);
        }
    }

    /* The data. Dense series are drawn as one shape, with a transparent
     * column per point to carry its tooltip. */
    bool dense = line ? sw < 8 : sw < 3;
    double yzero = y_of(&f, &ay, 0);
    /* A few bars stay bar-shaped rather than filling the plot. */
    double bar_w = fmin(sw * 0.8, 120);
    if (line || dense) {
        strbuf_puts(&sb, "<path d=\"");
        if (!line) strbuf_printf(&sb, "M%.2f %.2f", slot_x(&f, day[0], d0, sw) - sw / 2, yzero);
        for (size_t i = 0; i < n; i++)
            strbuf_printf(&sb, "%s%.2f %.2f", i == 0 && line ? "M" : "L",
                          slot_x(&f, day[i], d0, sw), y_of(&f, &ay, pts[i].value));
        if (line)
            strbuf_puts(&sb, "\" fill=\"none\" stroke=\"" C_PRIMARY
                             "\" stroke-width=\"2\" stroke-linejoin=\"round\"/>\n");
        else
            strbuf_printf(&sb, "L%.2f %.2fZ\" fill=\"" C_PRIMARY "\"/>\n",
                          slot_x(&f, day[n - 1], d0, sw) + sw / 2, yzero);
    }
    run = base;
    for (size_t i = 0; i < n; i++) {
        double v = pts[i].value, x = slot_x(&f, day[i], d0, sw), y = y_of(&f, &ay, v);
        char val[64], tot[64];
        format_value(val, sizeof(val), v, integral);
        run += v;
        if (dense)
            strbuf_printf(&sb,
                          "<rect class=\"pt\" x=\"%.2f\" y=\"%.1f\" width=\"%.2f\" height=\"%.1f\" "
                          "fill=\"#000000\" fill-opacity=\"0\"",
                          x - sw / 2, f.y0, sw, f.y1 - f.y0);
        else if (line)
            strbuf_printf(&sb,
                          "<circle class=\"pt\" cx=\"%.2f\" cy=\"%.2f\" r=\"3.5\" fill=\"" C_PRIMARY
                          "\" stroke=\"#ffffff\" stroke-width=\"1\"",
                          x, y);
        else
            strbuf_printf(&sb,
                          "<rect class=\"pt\" x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" "
                          "height=\"%.2f\" fill=\"" C_PRIMARY "\"",
                          x - bar_w / 2, fmin(y, yzero), bar_w, fabs(yzero - y));
        strbuf_puts(&sb, " data-label=\"");
        media_xml_puts(&sb, pts[i].label);
        strbuf_printf(&sb, "\" data-value=\"%.17g\"><title>", v);
        media_xml_puts(&sb, pts[i].label);
        strbuf_printf(&sb, ": %s", val);
        if (unit) {
            strbuf_putc(&sb, ' ');
            media_xml_puts(&sb, unit);
        }
        if (cumulative) {
            format_value(tot, sizeof(tot), run, integral);
            strbuf_printf(&sb, " (total %s)", tot);
        }
        strbuf_puts(&sb, line && !dense ? "</title></circle>\n" : "</title></rect>\n");
    }

    if (cumulative) {
        svg_y_axis(&sb, &f, &ac, true, C_SECOND);
        strbuf_puts(&sb, "<path class=\"cumulative\" d=\"");
        run = base;
        for (size_t i = 0; i < n; i++) {
            run += pts[i].value;
            strbuf_printf(&sb, "%s%.2f %.2f", i ? "L" : "M", slot_x(&f, day[i], d0, sw),
                          y_of(&f, &ac, run));
        }
        strbuf_puts(&sb, "\" fill=\"none\" stroke=\"" C_SECOND
                         "\" stroke-width=\"2.5\" stroke-linejoin=\"round\"/>\n");
        if (n == 1) /* a one-point line draws nothing: mark the point */
            strbuf_printf(&sb, "<circle cx=\"%.2f\" cy=\"%.2f\" r=\"4\" fill=\"" C_SECOND "\"/>\n",
                          slot_x(&f, day[0], d0, sw), y_of(&f, &ac, run));
        /* Legend, top right, above the plot. */
        const char *l1 = opts && opts->y_label && opts->y_label[0] ? opts->y_label
                         : unit                                    ? unit
                                                                   : "value";
        const char *l2 = opts && opts->cumulative_label ? opts->cumulative_label : "cumulative";
        double w2 = fmin(media_text_width(l2, FS_TICK), 200),
               w1 = fmin(media_text_width(l1, FS_TICK), 200);
        double lx = f.x1 - w2 - 26 - w1 - 40;
        double ly = f.y0 - 12;
        strbuf_printf(&sb,
                      "<rect x=\"%.1f\" y=\"%.1f\" width=\"12\" height=\"10\" fill=\"" C_PRIMARY
                      "\"/>\n",
                      lx, ly - 9);
        svg_text(&sb, lx + 16, ly, "start", FS_TICK, C_TEXT, NULL, l1, 200);
        lx += 16 + w1 + 24;
        strbuf_printf(&sb,
                      "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"" C_SECOND
                      "\" stroke-width=\"2.5\"/>\n",
                      lx, lx + 16, ly - 4, ly - 4);
        svg_text(&sb, lx + 22, ly, "start", FS_TICK, C_TEXT, NULL, l2, 200);
    }
done:
    strbuf_puts(&sb, "</svg>\n");
    free(day);
    strbuf_append(out, sb.data, sb.len);
    strbuf_deinit(&sb);
    return MEDIA_OK;
}

/* ---- histogram --------------------------------------------------------- */

int media_chart_histogram(const struct media_chart_opts *opts, const double *values, size_t n,
                          size_t bins, struct strbuf *out, struct echo_err *err)
{
    int w, h, rc;
    if ((rc = check_opts(opts, &w, &h, 360, err)) != MEDIA_OK) return rc;
    if (bins > 200) {
        echo_err_set(err, "at most 200 bins (asked %zu)", bins);
        return MEDIA_ERR_INVALID;
    }
    if (n > 0 && !values) {
        echo_err_set(err, "no values given");
        return MEDIA_ERR_INVALID;
    }
    double vmin = 0, vmax = 0;
    bool integral = true;
    for (size_t i = 0; i < n; i++) {
        double v = values[i];
        if (!isfinite(v) || fabs(v) > MAX_ABS_VALUE) {
            echo_err_set(err, "value %zu is not a finite number up to 1e15", i);
            return MEDIA_ERR_INVALID;
        }
        vmin = i ? fmin(vmin, v) : v;
        vmax = i ? fmax(vmax, v) : v;
        integral = integral && v == floor(v);
    }
    const char *unit = opts ? opts->unit : NULL;

    /* Bins: half-open [edge, edge + step), edges at multiples of a nice step. */
    size_t k = bins ? bins : (size_t)ceil(log2(n > 1 ? (double)n : 1) + 1);
    if (!bins) k = k < 5 ? 5 : k > 30 ? 30 : k;
    /* All values equal: one bin, of width 1 for whole numbers. */
    double step = vmax > vmin ? nice_round((vmax - vmin) / (double)k)
                              : nice_step(fabs(vmin) > 0 ? fabs(vmin) / 10 : 1);
    if (integral && vmax == vmin) step = 1;
    if (integral && step < 1) step = 1;
    double lo = floor(vmin / step) * step;
    size_t nb = (size_t)floor((vmax - lo) / step) + 1;
    while (nb > 200) { /* a nice step rounds down by at most 2.5x; keep the cap */
        step = nice_step(step * 1.01);
        lo = floor(vmin / step) * step;
        nb = (size_t)floor((vmax - lo) / step) + 1;
    }
    size_t *count = xcalloc(nb, sizeof(*count));
    for (size_t i = 0; i < n; i++) {
        double idx = floor((values[i] - lo) / step);
        size_t b = idx < 0 ? 0 : (size_t)idx >= nb ? nb - 1 : (size_t)idx;
        count[b]++;
    }
    size_t cmax = 0, mode = 0;
    for (size_t b = 0; b < nb; b++)
        if (count[b] > cmax) cmax = count[b], mode = b;
    double hi = lo + (double)nb * step;
    int dec = decimals_of(step);
    /* Whole-number bins of width 1 are single values: label them so. */
    bool single = integral && step == 1;

    bool has_title = opts && opts->title && opts->title[0];
    double top = has_title ? 38 : 12;
    double bottom = 10 + 18 + (opts && opts->x_label && opts->x_label[0] ? 20 : 0);
    struct axis ay, ax;
    int target = (int)((h - top - bottom) / 50);
    axis_make(0, (double)cmax, target < 2 ? 2 : target, true, &ay);
    struct frame f = {w, h, 0, 0, 0, 0};
    f.x0 = 10 + (opts && opts->y_label && opts->y_label[0] ? 22 : 0) + axis_label_width(&ay) + 8;
    f.x1 = w - 20;
    f.y0 = top;
    f.y1 = h - bottom;
    if (f.x1 - f.x0 < 40 || f.y1 - f.y0 < 40) {
        free(count);
        echo_err_set(err, "chart size %d x %d leaves no room to plot", w, h);
        return MEDIA_ERR_INVALID;
    }

    struct strbuf desc, sb;
    strbuf_init(&desc);
    strbuf_init(&sb);
    char a[64], b[64], c[64], d[64];
    if (n == 0) {
        strbuf_puts(&desc, "No data yet.");
    } else {
        format_value(a, sizeof(a), (double)n, true);
        media_format_number(b, sizeof(b), vmin, integral ? 0 : 2);
        media_format_number(c, sizeof(c), vmax, integral ? 0 : 2);
        media_format_number(d, sizeof(d), step, dec);
        strbuf_printf(&desc, "Histogram of %s %s from %s to %s in %zu bins of width %s.", a,
                      unit ? unit : "values", b, c, nb, d);
        media_format_number(a, sizeof(a), lo + (double)mode * step, dec);
        media_format_number(b, sizeof(b), lo + (double)(mode + 1) * step, dec);
        format_value(c, sizeof(c), (double)cmax, true);
        if (single)
            strbuf_printf(&desc, " Most common: %s (%s).", a, c);
        else
            strbuf_printf(&desc, " Most common: %s to %s (%s).", a, b, c);
    }
    svg_begin(&sb, &f, opts, strbuf_cstr(&desc));
    strbuf_deinit(&desc);
    svg_titles(&sb, &f, opts);
    svg_y_axis(&sb, &f, &ay, false, C_TEXT);
    if (n == 0) {
        svg_empty(&sb, &f);
        goto done;
    }
    double bw = (f.x1 - f.x0) / (double)nb;
    /* x ticks: nice values inside [lo, hi], at bin edges or, for single
     * values, at bin centres; at least 70 px apart. */
    int xt = (int)((f.x1 - f.x0) / 70);
    double tstep = nice_step((hi - lo) / (xt < 2 ? 2 : xt));
    if (tstep < step) tstep = step;
    ax.lo = lo;
    ax.hi = hi;
    ax.step = tstep;
    ax.ticks = 0;
    axis_labels(&ax);
    double t0 = ceil(lo / tstep - 1e-9) * tstep;
    for (int i = 0; i < 64; i++) {
        double t = t0 + i * tstep;
        if (t > hi + tstep * 1e-9 || (single && t >= hi - 1e-9)) break;
        double x = lin_x(&f, single ? t + 0.5 : t, lo, hi);
        char buf[80];
        axis_tick_label(&ax, t, buf, sizeof(buf));
        strbuf_printf(&sb,
                      "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"" C_GRID
                      "\" stroke-width=\"1\"/>\n",
                      x, x, f.y0, f.y1);
        svg_text(&sb, x, f.y1 + 16, "middle", FS_TICK, C_TEXT, NULL, buf, 0);
    }
    double yzero = y_of(&f, &ay, 0);
    for (size_t i = 0; i < nb; i++) {
        double e0 = lo + (double)i * step, y = y_of(&f, &ay, (double)count[i]);
        char lab[160];
        media_format_number(a, sizeof(a), e0, dec);
        media_format_number(b, sizeof(b), e0 + step, dec);
        if (single)
            snprintf(lab, sizeof(lab), "%s", a);
        else
            snprintf(lab, sizeof(lab), "%s\xe2\x80\x93%s", a, b); /* en dash */
        format_value(c, sizeof(c), (double)count[i], true);
        /* White edges between bars, as seaborn's histplot draws them. */
        strbuf_printf(&sb,
                      "<rect class=\"pt\" x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" "
                      "fill=\"" C_PRIMARY "\" stroke=\"#ffffff\" stroke-width=\"%s\" "
                      "data-label=\"%s\" data-value=\"%zu\"><title>%s: %s",
                      lin_x(&f, e0, lo, hi), y, bw, yzero - y, bw > 4 ? "1" : "0", lab, count[i],
                      lab, c);
        if (unit) {
            strbuf_putc(&sb, ' ');
            media_xml_puts(&sb, unit);
        }
        strbuf_puts(&sb, "</title></rect>\n");
    }
done:
    strbuf_puts(&sb, "</svg>\n");
    free(count);
    strbuf_append(out, sb.data, sb.len);
    strbuf_deinit(&sb);
    return MEDIA_OK;
}

/* ---- top N ------------------------------------------------------------- */

static int by_value_desc(const void *pa, const void *pb)
{
    const struct media_chart_point *a = *(const struct media_chart_point *const *)pa;
    const struct media_chart_point *b = *(const struct media_chart_point *const *)pb;
    if (a->value != b->value) return a->value > b->value ? -1 : 1;
    return strcmp(a->label, b->label);
}

int media_chart_top(const struct media_chart_opts *opts, const struct media_chart_point *pts,
                    size_t n, size_t top_n, struct strbuf *out, struct echo_err *err)
{
    int rc;
    if (top_n < 1 || top_n > 100) {
        echo_err_set(err, "top_n must be 1 to 100 (got %zu)", top_n);
        return MEDIA_ERR_INVALID;
    }
    if ((rc = check_points(pts, n, true, err)) != MEDIA_OK) return rc;
    size_t m = n < top_n ? n : top_n;
    bool has_title = opts && opts->title && opts->title[0];
    double top = has_title ? 38 : 12;
    double bottom = 10 + 18 + (opts && opts->x_label && opts->x_label[0] ? 20 : 0);
    /* The height follows the number of bars unless the caller fixes it. */
    int w, h;
    int fit_h = (int)(top + bottom + (double)(m ? m : 4) * 26);
    if ((rc = check_opts(opts, &w, &h,
                         fit_h < 160    ? 160
                         : fit_h > 4000 ? 4000
                                        : fit_h,
                         err)) != MEDIA_OK)
        return rc;
    const char *unit = opts ? opts->unit : NULL;

    const struct media_chart_point **rank = n ? xmalloc(n * sizeof(*rank)) : NULL;
    for (size_t i = 0; i < n; i++)
        rank[i] = &pts[i];
    if (n) qsort(rank, n, sizeof(*rank), by_value_desc);
    bool integral = true;
    double vmax = 0, label_w = 0;
    for (size_t i = 0; i < m; i++) {
        integral = integral && rank[i]->value == floor(rank[i]->value);
        vmax = fmax(vmax, rank[i]->value);
        label_w = fmax(label_w, media_text_width(rank[i]->label, FS_TICK));
    }
    label_w = fmin(label_w, 0.35 * w);

    struct frame f = {w, h, 0, 0, 0, 0};
    f.x0 = 10 + (opts && opts->y_label && opts->y_label[0] ? 22 : 0) + label_w + 8;
    f.x1 = w - 20;
    f.y0 = top;
    f.y1 = h - bottom;
    if (f.x1 - f.x0 < 40 || f.y1 - f.y0 < 20) {
        free(rank);
        echo_err_set(err, "chart size %d x %d leaves no room to plot", w, h);
        return MEDIA_ERR_INVALID;
    }
    /* Room at the right for the value written after the longest bar. */
    char vbuf[64];
    format_value(vbuf, sizeof(vbuf), vmax, integral);
    double vw = media_text_width(vbuf, FS_TICK) + 8;
    double room = (f.x1 - f.x0) > 2 * vw ? (f.x1 - f.x0) / ((f.x1 - f.x0) - vw) : 1;
    struct axis ax;
    int target = (int)((f.x1 - f.x0) / 90);
    axis_make(0, vmax * room, target < 2 ? 2 : target, integral, &ax);

    struct strbuf desc, sb;
    strbuf_init(&desc);
    strbuf_init(&sb);
    if (m == 0) {
        strbuf_puts(&desc, "No data yet.");
    } else {
        strbuf_printf(&desc, "Top %zu of %zu%s%s:", m, n, unit ? " by " : "", unit ? unit : "");
        for (size_t i = 0; i < m && i < 5; i++) {
            format_value(vbuf, sizeof(vbuf), rank[i]->value, integral);
            strbuf_printf(&desc, "%s %s %s", i ? "," : "", rank[i]->label, vbuf);
        }
        strbuf_puts(&desc, m > 5 ? ", ..." : ".");
    }
    svg_begin(&sb, &f, opts, strbuf_cstr(&desc));
    strbuf_deinit(&desc);
    svg_titles(&sb, &f, opts);
    if (m == 0) {
        svg_empty(&sb, &f);
        goto done;
    }
    for (int i = 0; i < ax.ticks; i++) {
        double v = ax.lo + i * ax.step;
        double x = f.x0 + (v - ax.lo) / (ax.hi - ax.lo) * (f.x1 - f.x0);
        char buf[80];
        axis_tick_label(&ax, v, buf, sizeof(buf));
        strbuf_printf(&sb,
                      "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"" C_GRID
                      "\" stroke-width=\"1\"/>\n",
                      x, x, f.y0, f.y1);
        svg_text(&sb, x, f.y1 + 16, "middle", FS_TICK, C_TEXT, NULL, buf, 0);
    }
    double slot = (f.y1 - f.y0) / (double)m;
    double fs = fmin(FS_TICK, fmax(7, slot * 0.6));
    for (size_t i = 0; i < m; i++) {
        const struct media_chart_point *p = rank[i];
        double y = f.y0 + (double)i * slot, bh = slot * 0.7;
        double xv = f.x0 + (p->value - ax.lo) / (ax.hi - ax.lo) * (f.x1 - f.x0);
        format_value(vbuf, sizeof(vbuf), p->value, integral);
        strbuf_printf(&sb,
                      "<rect class=\"pt\" x=\"%.1f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" "
                      "fill=\"" C_PRIMARY "\" data-label=\"",
                      f.x0, y + slot * 0.15, xv - f.x0, bh);
        media_xml_puts(&sb, p->label);
        strbuf_printf(&sb, "\" data-value=\"%.17g\"><title>", p->value);
        media_xml_puts(&sb, p->label);
        strbuf_printf(&sb, ": %s", vbuf);
        if (unit) {
            strbuf_putc(&sb, ' ');
            media_xml_puts(&sb, unit);
        }
        strbuf_puts(&sb, "</title></rect>\n");
        double ty = y + slot / 2 + fs * 0.35;
        svg_text(&sb, f.x0 - 8, ty, "end", fs, C_TEXT, NULL, p->label, label_w);
        svg_text(&sb, xv + 4, ty, "start", fs, C_TEXT, NULL, vbuf, 0);
    }
done:
    strbuf_puts(&sb, "</svg>\n");
    free(rank);
    strbuf_append(out, sb.data, sb.len);
    strbuf_deinit(&sb);
    return MEDIA_OK;
}
