/*
 * admin.c - the admin panel's frame (see admin.h): the access rule, the
 * generic entity view and the audit log writing.
 *
 * One set of handlers serves every entity: each route is registered per
 * entity with the entity's description as its argument, so
 * /admin/users/new and /admin/roles/new run the same code with different
 * tables. URLs:
 *   GET  /admin/<entity>                    list (q, user_id, from, to, sort,
 *                                           dir, page, per_page in the URL)
 *   GET  /admin/<entity>/export             the same rows as CSV
 *   GET  /admin/<entity>/new, POST          create
 *   GET  /admin/<entity>/<id>/edit, POST    edit
 *   POST /admin/<entity>/<id>/deactivate    and /activate
 *   GET  /admin/<entity>/<id>/delete, POST  confirmation page, delete
 * A change redirects (303) back to the list with a flashed message; a form
 * with errors is shown again with 400 and nothing written.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/url.h"
#include "web/admin.h"
#include "web/auth.h"
#include "web/chat.h"
#include "web/form.h"
#include "web/profile.h"

#define EXPORT_MAX_ROWS 100000
#define SEARCH_MAX 200

static const char msg_busy[] = "The service is busy right now. Please try again in a moment.";

struct web_admin {
    web_app *app;
};
static struct web_admin *the_admin;

/* ---- small helpers ---------------------------------------------------------- */

static bool valid_name(const char *s, size_t min, size_t max, bool underscore)
{
    size_t n = s ? strlen(s) : 0;
    if (n < min || n > max) return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (underscore && s[i] == '_'))) return false;
    return true;
}

/* A positive decimal id of at most 18 digits without a leading zero; 0 when
 * malformed. */
static int64_t parse_id(const char *s)
{
    int64_t v = 0;
    size_t i = 0;
    if (!s || s[0] == '0') return 0;
    for (; s[i]; i++) {
        if (s[i] < '0' || s[i] > '9' || i >= 18) return 0;
        v = v * 10 + (s[i] - '0');
    }
    return i ? v : 0;
}

static void answer_db_error(http_response *res, int status)
{
    if (status == DB_BUSY)
        http_response_error(res, HTTP_STATUS_SERVICE_UNAVAILABLE, msg_busy);
    else if (status == DB_NOT_FOUND)
        http_response_error(res, HTTP_STATUS_NOT_FOUND, NULL);
    else
        http_response_error(res, HTTP_STATUS_INTERNAL_ERROR, NULL);
}

static void qs_add(struct strbuf *sb, const char *name, const char *value)
{
    if (!value || !value[0]) return;
    strbuf_putc(sb, sb->len ? '&' : '?');
    strbuf_puts(sb, name);
    strbuf_putc(sb, '=');
    http_pct_encode(sb, value, NULL);
}

/* ---- dates ------------------------------------------------------------------ */

bool web_admin_parse_date(const char *s, int64_t *out)
{
    if (!s || strlen(s) != 10 || s[4] != '-' || s[7] != '-') return false;
    for (int i = 0; i < 10; i++)
        if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9')) return false;
    int y = atoi(s), m = (s[5] - '0') * 10 + (s[6] - '0'), d = (s[8] - '0') * 10 + (s[9] - '0');
    static const int md[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (y < 1970 || m < 1 || m > 12 || d < 1 || d > md[m - 1] + (m == 2 && leap)) return false;
    *out = time_days_from_civil(y, m, d) * 86400;
    return true;
}

void web_admin_format_date(int64_t t, char out[11])
{
    int64_t z = (t >= 0 ? t : t - 86399) / 86400 + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int d = (int)(doy - (153 * mp + 2) / 5 + 1);
    int m = (int)(mp < 10 ? mp + 3 : mp - 9);
    int64_t y = yoe + era * 400 + (m <= 2);
    /* Written digit by digit: years stay within 0..9999 here. */
    int yy = (int)(y % 10000);
    const int parts[3][2] = {{yy, 4}, {m, 2}, {d, 2}};
    char *w = out;
    for (int p = 0; p < 3; p++) {
        for (int k = parts[p][1] - 1, v = parts[p][0]; k >= 0; k--, v /= 10)
            w[k] = (char)('0' + v % 10);
        w += parts[p][1];
        *w++ = p < 2 ? '-' : '\0';
    }
}

/* ---- the audit log's diff ----------------------------------------------------- */

#define DIFF_VALUE_MAX 80

/* Text cut to DIFF_VALUE_MAX bytes on a UTF-8 boundary, with an ellipsis. */
static void diff_cut(struct strbuf *sb, const char *s)
{
    size_t n = strlen(s);
    if (n > DIFF_VALUE_MAX) {
        n = DIFF_VALUE_MAX;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--;
        strbuf_append(sb, s, n);
        strbuf_puts(sb, "\xe2\x80\xa6");
    } else {
        strbuf_append(sb, s, n);
    }
}

/* One value of a diff line: compact JSON, cut. */
static void diff_value(struct strbuf *sb, const json_t *v)
{
    char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    diff_cut(sb, s ? s : "?");
    free(s);
}

static void diff_line(json_t *out, const char *key, const json_t *old, const json_t *now,
                      bool arrow)
{
    struct strbuf sb;
    strbuf_init(&sb);
    /* Keys are the panel's own column names, but an old row may hold any. */
    diff_cut(&sb, key);
    strbuf_puts(&sb, ": ");
    if (old) diff_value(&sb, old);
    if (arrow) {
        strbuf_puts(&sb, " -> ");
        if (now)
            diff_value(&sb, now);
        else
            strbuf_puts(&sb, "(none)");
    } else if (now) {
        diff_value(&sb, now);
    }
    json_array_append_new(out, json_string(strbuf_cstr(&sb)));
    strbuf_deinit(&sb);
}

json_t *web_admin_audit_changes(const char *before, const char *after)
{
    json_t *out = json_array();
    json_t *b = before ? json_loads(before, 0, NULL) : NULL;
    json_t *a = after ? json_loads(after, 0, NULL) : NULL;
    if ((before && !json_is_object(b)) || (after && !json_is_object(a))) {
        json_array_append_new(out, json_string("(the record is not a JSON object)"));
        goto done;
    }
    const char *key;
    json_t *v;
    if (!b || !a) {
        /* A create or a delete: the whole row, as it became or as it was. */
        json_object_foreach(a ? a : b, key, v) diff_line(out, key, NULL, v, false);
        goto done;
    }
    json_object_foreach(b, key, v)
    {
        json_t *now = json_object_get(a, key);
        if (!now)
            diff_line(out, key, v, NULL, true);
        else if (!json_equal(v, now))
            diff_line(out, key, v, now, true);
    }
    json_object_foreach(a, key, v)
    {
        if (!json_object_get(b, key)) diff_line(out, key, NULL, v, false);
    }
done:
    json_decref(a);
    json_decref(b);
    return out;
}

/* ---- CSV -------------------------------------------------------------------- */

void web_admin_csv_cell(struct strbuf *out, const char *cell)
{
    if (!cell) cell = "";
    bool formula = cell[0] == '=' || cell[0] == '+' || cell[0] == '-' || cell[0] == '@' ||
                   cell[0] == '\t' || cell[0] == '\r';
    bool quote = formula || strpbrk(cell, ",\"\r\n") != NULL;
    if (!quote) {
        strbuf_puts(out, cell);
        return;
    }
    strbuf_putc(out, '"');
    if (formula) strbuf_putc(out, '\'');
    for (const char *p = cell; *p; p++) {
        if (*p == '"') strbuf_putc(out, '"');
        strbuf_putc(out, *p);
    }
    strbuf_putc(out, '"');
}

static void csv_value(struct strbuf *out, const json_t *v)
{
    char buf[64];
    if (json_is_string(v)) {
        web_admin_csv_cell(out, json_string_value(v));
    } else if (json_is_integer(v)) {
        snprintf(buf, sizeof(buf), "%lld", (long long)json_integer_value(v));
        web_admin_csv_cell(out, buf);
    } else if (json_is_real(v)) {
        snprintf(buf, sizeof(buf), "%.6g", json_real_value(v));
        web_admin_csv_cell(out, buf);
    } else if (json_is_boolean(v)) {
        web_admin_csv_cell(out, json_is_true(v) ? "true" : "false");
    } else if (json_is_array(v)) {
        struct strbuf joined;
        strbuf_init(&joined);
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x)
        {
            if (i) strbuf_puts(&joined, "; ");
            if (json_is_string(x)) strbuf_puts(&joined, json_string_value(x));
        }
        web_admin_csv_cell(out, strbuf_cstr(&joined));
        strbuf_deinit(&joined);
    }
}

void web_admin_csv_row(struct strbuf *out, const json_t *obj, const char *const *keys, size_t nkeys)
{
    for (size_t i = 0; i < nkeys; i++) {
        if (i) strbuf_putc(out, ',');
        csv_value(out, json_object_get(obj, keys[i]));
    }
    strbuf_puts(out, "\r\n");
}

/* ---- descriptions ----------------------------------------------------------- */

int web_admin_entities_validate(const struct web_admin_entity *const *list, size_t n,
                                struct echo_err *err)
{
    if (!list || n == 0) {
        echo_err_set(err, "the admin panel has no entities");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        const struct web_admin_entity *e = list[i];
        const char *name = e && e->name ? e->name : "?";
        if (!e || !valid_name(e->name, 2, 32, false)) {
            echo_err_set(err, "admin entity %zu: the name '%s' is not 2-32 of a-z", i, name);
            return -1;
        }
        for (size_t j = 0; j < i; j++)
            if (!strcmp(list[j]->name, e->name)) {
                echo_err_set(err, "admin entity '%s' is described twice", name);
                return -1;
            }
        if (!e->title || !e->title[0] || !e->singular || !e->singular[0] || !e->plural ||
            !e->plural[0]) {
            echo_err_set(err, "admin entity '%s' has no title", name);
            return -1;
        }
        if (!e->columns || e->ncolumns == 0) {
            echo_err_set(err, "admin entity '%s' has no columns", name);
            return -1;
        }
        for (size_t c = 0; c < e->ncolumns; c++) {
            const char *cn = e->columns[c].name;
            if (!valid_name(cn, 1, 64, true)) {
                echo_err_set(err, "admin entity '%s': column %zu has a bad name", name, c);
                return -1;
            }
            if ((int)e->columns[c].cell < 0 || e->columns[c].cell > WEB_ADMIN_CELL_JSON) {
                echo_err_set(err, "admin entity '%s': column '%s' has no cell kind", name, cn);
                return -1;
            }
            for (size_t k = 0; k < c; k++)
                if (!strcmp(e->columns[k].name, cn)) {
                    echo_err_set(err, "admin entity '%s': column '%s' twice", name, cn);
                    return -1;
                }
        }
        if (!e->list || !e->get) {
            echo_err_set(err, "admin entity '%s' cannot be listed (list/get missing)", name);
            return -1;
        }
        if ((e->creatable || e->editable) && (!e->save || !e->fields || e->nfields == 0)) {
            echo_err_set(err, "admin entity '%s' has a form without fields or save", name);
            return -1;
        }
        for (size_t f = 0; f < e->nfields; f++) {
            if (!valid_name(e->fields[f].name, 1, 64, true) || !e->fields[f].label) {
                echo_err_set(err, "admin entity '%s': form field %zu is malformed", name, f);
                return -1;
            }
            for (size_t k = 0; k < f; k++)
                if (!strcmp(e->fields[k].name, e->fields[f].name)) {
                    echo_err_set(err, "admin entity '%s': field '%s' twice", name,
                                 e->fields[f].name);
                    return -1;
                }
        }
        if (e->deletable && !e->remove) {
            echo_err_set(err, "admin entity '%s' is deletable without remove", name);
            return -1;
        }
        if (e->deactivatable && !e->set_active) {
            echo_err_set(err, "admin entity '%s' is deactivatable without set_active", name);
            return -1;
        }
    }
    return 0;
}

/* ---- the last-admin rule ---------------------------------------------------- */

int web_admin_check_last_admin(db *d, json_t *form, struct echo_err *err)
{
    int64_t n = 0;
    int s = db_role_count_active_holders(d, "admin", &n, err);
    if (s != DB_OK) return s;
    if (n > 0) return DB_OK;
    web_form_fail(form, "This would leave no active admin: the last admin cannot be deleted, "
                        "deactivated or demoted.");
    return WEB_ADMIN_FORM_INVALID;
}

/* ---- the list's query ------------------------------------------------------- */

struct list_params {
    struct web_admin_query q;
    json_t *filter;        /* form object: data {q, user_id, from, to}, errors */
    const char *sort_name; /* the sorted column, or "" */
    int64_t page, per_page;
};

/* Reads the list's URL arguments; bad ones become errors on the filter form
 * and are ignored (the list shows unfiltered by them). */
static void list_params_parse(http_request *req, const struct web_admin_entity *e,
                              struct list_params *p)
{
    memset(p, 0, sizeof(*p));
    p->filter = web_form_new();
    p->q.sort = -1;
    p->q.descending = true;
    p->sort_name = "";
    const char *q = http_request_query(req, "q");
    if (e->searchable && q && q[0]) {
        if (strlen(q) > SEARCH_MAX) {
            web_form_error(p->filter, "q", "A search is at most 200 characters.");
        } else {
            p->q.search = q;
            web_form_data(p->filter, "q", q);
        }
    }
    const char *uid = http_request_query(req, "user_id");
    if (uid && uid[0]) {
        web_form_data(p->filter, "user_id", uid);
        p->q.user_id = parse_id(uid);
        if (!p->q.user_id) web_form_error(p->filter, "user_id", "A user id is a positive number.");
    }
    if (e->dated) {
        const char *from = http_request_query(req, "from"), *to = http_request_query(req, "to");
        if (from && from[0]) {
            web_form_data(p->filter, "from", from);
            if (!web_admin_parse_date(from, &p->q.from))
                web_form_error(p->filter, "from", "Enter a date as YYYY-MM-DD.");
        }
        if (to && to[0]) {
            web_form_data(p->filter, "to", to);
            if (!web_admin_parse_date(to, &p->q.to))
                web_form_error(p->filter, "to", "Enter a date as YYYY-MM-DD.");
            else
                p->q.to += 86400; /* the "to" day is included */
        }
        if (p->q.from && p->q.to && p->q.from >= p->q.to) {
            web_form_error(p->filter, "from", "The start date is after the end date.");
            p->q.from = p->q.to = 0;
        }
    }
    const char *sort = http_request_query(req, "sort");
    for (size_t c = 0; sort && c < e->ncolumns; c++)
        if (e->columns[c].sort >= 0 && !strcmp(sort, e->columns[c].name)) {
            p->q.sort = e->columns[c].sort;
            p->sort_name = e->columns[c].name;
        }
    const char *dir = http_request_query(req, "dir");
    if (dir && !strcmp(dir, "asc")) p->q.descending = false;
    p->per_page = 25;
    const char *pp = http_request_query(req, "per_page");
    if (pp && (!strcmp(pp, "50") || !strcmp(pp, "100"))) p->per_page = atoi(pp);
    p->page = 1;
    const char *pg = http_request_query(req, "page");
    int64_t page = pg ? parse_id(pg) : 1;
    if (page > 0 && page <= 1000000) p->page = page;
    p->q.limit = p->per_page;
    p->q.offset = (p->page - 1) * p->per_page;
}

/* The filter part of the list's URL ("?q=..&user_id=.."), kept by the
 * sort, page and export links so a filtered view can be bookmarked. */
static void filter_query(const struct list_params *p, struct strbuf *sb)
{
    json_t *data = json_object_get(p->filter, "data");
    json_t *errors = json_object_get(p->filter, "errors");
    static const char *const keys[] = {"q", "user_id", "from", "to"};
    for (size_t i = 0; i < 4; i++)
        if (!json_object_get(errors, keys[i]))
            qs_add(sb, keys[i], json_string_value(json_object_get(data, keys[i])));
}

static json_t *column_json(const struct web_admin_column *col)
{
    static const char *const kinds[] = {
        [WEB_ADMIN_CELL_TEXT] = "text",   [WEB_ADMIN_CELL_TIME] = "time",
        [WEB_ADMIN_CELL_BOOL] = "bool",   [WEB_ADMIN_CELL_LIST] = "list",
        [WEB_ADMIN_CELL_IMAGE] = "image", [WEB_ADMIN_CELL_LINES] = "lines",
        [WEB_ADMIN_CELL_JSON] = "json"};
    return json_pack("{s:s,s:b,s:s}", "name", col->name, "sortable", col->sort >= 0, "cell",
                     kinds[col->cell]);
}

static json_t *entity_json(const struct web_admin_entity *e)
{
    json_t *o = json_pack("{s:s,s:s,s:s,s:b,s:b,s:b,s:b,s:b,s:b}", "name", e->name, "title",
                          e->title, "singular", e->singular, "searchable", e->searchable, "dated",
                          e->dated, "creatable", e->creatable, "editable", e->editable, "deletable",
                          e->deletable, "deactivatable", e->deactivatable);
    return o;
}

static json_t *menu_json(void)
{
    json_t *a = json_array();
    for (size_t i = 0; i < web_admin_entity_count; i++)
        json_array_append_new(a, json_pack("{s:s,s:s}", "name", web_admin_entities[i]->name,
                                           "title", web_admin_entities[i]->title));
    return a;
}

/* The base context of an admin page. */
static json_t *admin_context(http_request *req, const struct web_admin_entity *e)
{
    json_t *ctx = web_app_context(the_admin->app, req, "admin");
    json_object_set_new(ctx, "admin_menu", menu_json());
    if (e) json_object_set_new(ctx, "entity", entity_json(e));
    return ctx;
}

static void render(http_request *req, http_response *res, int status, const char *name, json_t *ctx)
{
    web_app_render(the_admin->app, req, res, status, name, ctx);
    http_response_set_header(res, "Cache-Control", "no-store");
}

/* ---- GET /admin/<entity> ---------------------------------------------------- */

static void list_page(http_request *req, http_response *res, void *arg)
{
    const struct web_admin_entity *e = arg;
    struct list_params p;
    list_params_parse(req, e, &p);
    db *d = web_db(req);
    json_t *rows = NULL;
    int64_t total = 0;
    struct echo_err err = {0};
    int s = d ? e->list(d, &p.q, &rows, &total, &err) : DB_BUSY;
    if (s != DB_OK) {
        log_error("admin: listing %s: %s", e->name, d ? err.msg : "no connection");
        json_decref(p.filter);
        answer_db_error(res, s == DB_NOT_FOUND ? DB_ERROR : s);
        return;
    }
    struct strbuf fq;
    strbuf_init(&fq);
    filter_query(&p, &fq);
    const char *base = strbuf_cstr(&fq);
    arena *a = http_request_arena(req);

    json_t *columns = json_array();
    for (size_t c = 0; c < e->ncolumns; c++) {
        const struct web_admin_column *col = &e->columns[c];
        json_t *o = column_json(col);
        if (col->sort >= 0) {
            bool sorted = !strcmp(p.sort_name, col->name);
            /* A new column sorts ascending first; a second click reverses it. */
            const char *next = sorted && !p.q.descending ? "desc" : "asc";
            json_object_set_new(o, "sorted",
                                json_string(sorted ? (p.q.descending ? "desc" : "asc") : ""));
            json_object_set_new(o, "sort_url",
                                json_string(arena_printf(
                                    a, "/admin/%s%s%ssort=%s&dir=%s&per_page=%lld", e->name, base,
                                    base[0] ? "&" : "?", col->name, next, (long long)p.per_page)));
        }
        json_array_append_new(columns, o);
    }
    int64_t pages = total > 0 ? (total + p.per_page - 1) / p.per_page : 1;
    const char *sort_qs = p.sort_name[0] ? arena_printf(a, "sort=%s&dir=%s&", p.sort_name,
                                                        p.q.descending ? "desc" : "asc")
                                         : "";
    const char *list_base = arena_printf(a, "/admin/%s%s%s%sper_page=%lld", e->name, base,
                                         base[0] ? "&" : "?", sort_qs, (long long)p.per_page);
    if (p.page > pages) {
        /* A page past the end (an old bookmark, rows deleted since): the
         * last page, at its own URL. */
        http_response_redirect(
            res, HTTP_STATUS_FOUND,
            pages > 1 ? arena_printf(a, "%s&page=%lld", list_base, (long long)pages) : list_base);
        json_decref(rows);
        json_decref(p.filter);
        json_decref(columns);
        strbuf_deinit(&fq);
        return;
    }
    json_t *pager =
        json_pack("{s:I,s:I,s:I,s:I}", "page", (json_int_t)p.page, "pages", (json_int_t)pages,
                  "per_page", (json_int_t)p.per_page, "total", (json_int_t)total);
    if (p.page > 1)
        json_object_set_new(
            pager, "prev_url",
            json_string(arena_printf(a, "%s&page=%lld", list_base, (long long)(p.page - 1))));
    if (p.page < pages)
        json_object_set_new(
            pager, "next_url",
            json_string(arena_printf(a, "%s&page=%lld", list_base, (long long)(p.page + 1))));
    json_t *sizes = json_array();
    static const int per_pages[] = {25, 50, 100};
    for (size_t i = 0; i < 3; i++)
        json_array_append_new(sizes,
                              json_pack("{s:i,s:s,s:b}", "size", per_pages[i], "url",
                                        arena_printf(a, "/admin/%s%s%s%sper_page=%d", e->name, base,
                                                     base[0] ? "&" : "?", sort_qs, per_pages[i]),
                                        "current", per_pages[i] == p.per_page));
    json_object_set_new(pager, "sizes", sizes);

    json_t *ctx = admin_context(req, e);
    json_object_set_new(ctx, "columns", columns);
    json_object_set_new(ctx, "rows", rows);
    json_object_set_new(ctx, "pager", pager);
    json_object_set_new(ctx, "filter", p.filter);
    /* The export is the list as shown: its filter and its order. */
    json_object_set_new(
        ctx, "export_url",
        json_string(arena_printf(a, "/admin/%s/export%s%s%.*s", e->name, base,
                                 sort_qs[0] ? (base[0] ? "&" : "?") : "",
                                 sort_qs[0] ? (int)strlen(sort_qs) - 1 : 0, sort_qs)));
    json_object_set_new(ctx, "count_text",
                        json_string(arena_printf(a, "%lld %s", (long long)total,
                                                 total == 1 ? e->singular : e->plural)));
    render(req, res, web_form_ok(p.filter) ? HTTP_STATUS_OK : HTTP_STATUS_BAD_REQUEST,
           "admin/list.html", ctx);
    json_decref(ctx);
    strbuf_deinit(&fq);
}

/* ---- GET /admin/<entity>/export --------------------------------------------- */

static void export_csv(http_request *req, http_response *res, void *arg)
{
    const struct web_admin_entity *e = arg;
    struct list_params p;
    list_params_parse(req, e, &p);
    bool ok = web_form_ok(p.filter);
    json_decref(p.filter);
    if (!ok) {
        http_response_error(res, HTTP_STATUS_BAD_REQUEST,
                            "The filter of this export is not valid.");
        return;
    }
    db *d = web_db(req);
    if (!d) {
        answer_db_error(res, DB_BUSY);
        return;
    }
    const char **keys = arena_alloc(http_request_arena(req), e->ncolumns * sizeof(*keys));
    struct strbuf csv;
    strbuf_init(&csv);
    for (size_t c = 0; c < e->ncolumns; c++) {
        keys[c] = e->columns[c].name;
        if (c) strbuf_putc(&csv, ',');
        web_admin_csv_cell(&csv, keys[c]);
    }
    strbuf_puts(&csv, "\r\n");
    p.q.limit = DB_LIST_MAX;
    p.q.offset = 0;
    for (;;) {
        json_t *rows = NULL;
        struct echo_err err = {0};
        int s = e->list(d, &p.q, &rows, NULL, &err);
        if (s != DB_OK) {
            log_error("admin: exporting %s: %s", e->name, err.msg);
            strbuf_deinit(&csv);
            answer_db_error(res, s == DB_NOT_FOUND ? DB_ERROR : s);
            return;
        }
        size_t i, got = json_array_size(rows);
        json_t *row;
        json_array_foreach(rows, i, row)
        {
            /* Times as ISO 8601 UTC, like the charts' CSVs: a spreadsheet
             * reads them, a person too. */
            for (size_t c = 0; c < e->ncolumns; c++) {
                json_t *t = json_object_get(row, keys[c]);
                if (e->columns[c].cell != WEB_ADMIN_CELL_TIME || !json_is_integer(t)) continue;
                char iso[32];
                json_object_set_new(
                    row, keys[c],
                    json_string(db_time_iso(json_integer_value(t), iso, sizeof(iso))));
            }
            web_admin_csv_row(&csv, row, keys, e->ncolumns);
        }
        json_decref(rows);
        p.q.offset += (int64_t)got;
        if ((int64_t)got < p.q.limit) break;
        if (p.q.offset >= EXPORT_MAX_ROWS) {
            /* A bigger export would hold a worker and the memory too long;
             * the header tells the client (and a person: filter first). */
            log_warn("admin: the export of %s stopped at %d rows", e->name, EXPORT_MAX_ROWS);
            http_response_set_header(res, "X-Echo-Export-Truncated", "100000");
            break;
        }
    }
    char disp[96];
    snprintf(disp, sizeof(disp), "attachment; filename=\"%s.csv\"", e->name);
    http_response_set_header(res, "Content-Disposition", disp);
    http_response_set_header(res, "Cache-Control", "no-store");
    size_t len = csv.len;
    http_response_body_take(res, "text/csv; charset=utf-8", strbuf_steal(&csv), len);
}

/* ---- changes ------------------------------------------------------------------ */

/* Files of deleted pictures ("avatars/<id>"). */
static void remove_files(const json_t *files)
{
    const char *dir = web_profile_avatar_dir();
    size_t i;
    json_t *v;
    json_array_foreach(files, i, v)
    {
        const char *path = json_string_value(v);
        if (!dir || !path || !str_has_prefix(path, "avatars/")) continue;
        struct echo_err err = {0};
        if (media_avatar_remove(dir, path + strlen("avatars/"), &err) != MEDIA_OK)
            log_error("admin: removing the picture files %s: %s", path, err.msg);
    }
}

/*
 * Runs one change: the entity's operation (which validates, then begins the
 * transaction and writes), the audit row, the commit; then what lives
 * outside the database (picture files, caches, the engine's context).
 * Returns DB_OK, WEB_ADMIN_FORM_INVALID or a db_status (logged).
 */
static int run_change(http_request *req, const struct web_admin_entity *e,
                      struct web_admin_change *ch,
                      int (*op)(http_request *, db *, struct web_admin_change *, void *),
                      void *op_arg)
{
    db *d = web_db(req);
    if (!d) return DB_BUSY;
    struct echo_err err = {0};
    int s = op(req, d, ch, op_arg);
    if (s == DB_OK && !db_in_tx(d)) {
        echo_err_set(&err, "the change of %s ran outside a transaction", e->name);
        s = DB_ERROR;
    }
    if (s == DB_OK) {
        const struct db_user *actor = web_user(req);
        struct db_audit a = {.actor_id = actor->id,
                             .actor_name = actor->username,
                             .action = ch->action,
                             .entity = e->name,
                             .entity_id = ch->id,
                             .before = ch->before,
                             .after = ch->after};
        s = db_audit_add(d, &a, NULL, &err);
        if (s == DB_OK) s = db_tx_commit(d, &err);
    }
    while (db_in_tx(d))
        db_tx_rollback(d);
    if (s != DB_OK) {
        if (s != WEB_ADMIN_FORM_INVALID)
            log_error("admin: %s of %s %lld: %s", ch->action, e->singular, (long long)ch->id,
                      err.msg[0] ? err.msg : db_status_name(s));
        return s;
    }
    log_info("admin: %s %s %s %lld", web_user(req)->username, ch->action, e->singular,
             (long long)ch->id);
    web_admin_charts_changed();
    if (ch->files) remove_files(ch->files);
    if (ch->user_changed) web_profile_invalidate(ch->user_changed);
    if (ch->user_gone) {
        web_profile_invalidate(ch->user_gone);
        web_chat_forget_user(ch->user_gone);
    }
    return DB_OK;
}

static void change_deinit(struct web_admin_change *ch)
{
    json_decref(ch->before);
    json_decref(ch->after);
    json_decref(ch->files);
    json_decref(ch->form);
}

struct op_args {
    const struct web_admin_entity *e;
    bool active;
    struct echo_err *err;
};

static int op_save(http_request *req, db *d, struct web_admin_change *ch, void *arg)
{
    struct op_args *o = arg;
    return o->e->save(req, d, ch, o->err);
}

static int op_remove(http_request *req, db *d, struct web_admin_change *ch, void *arg)
{
    struct op_args *o = arg;
    return o->e->remove(req, d, ch, o->err);
}

static int op_active(http_request *req, db *d, struct web_admin_change *ch, void *arg)
{
    struct op_args *o = arg;
    return o->e->set_active(req, d, ch, o->active, o->err);
}

static void done(http_request *req, http_response *res, const struct web_admin_entity *e,
                 const char *what, int64_t id)
{
    char text[160];
    snprintf(text, sizeof(text), "%s %lld %s.", e->singular, (long long)id, what);
    if (text[0] >= 'a' && text[0] <= 'z') text[0] = (char)(text[0] - 'a' + 'A');
    web_flash(req, res, "success", text);
    char url[64];
    snprintf(url, sizeof(url), "/admin/%s", e->name);
    http_response_redirect(res, HTTP_STATUS_SEE_OTHER, url);
}

/* ---- forms -------------------------------------------------------------------- */

static json_t *fields_json(const struct web_admin_entity *e, bool create)
{
    static const char *const types[] = {
        [WEB_ADMIN_TEXT] = "text",         [WEB_ADMIN_EMAIL] = "email",
        [WEB_ADMIN_PASSWORD] = "password", [WEB_ADMIN_NUMBER] = "number",
        [WEB_ADMIN_CHECKBOX] = "checkbox", [WEB_ADMIN_ROLES] = "roles",
        [WEB_ADMIN_FILE] = "file",         [WEB_ADMIN_USER] = "user",
        [WEB_ADMIN_ROLE_NAME] = "role"};
    json_t *a = json_array();
    for (size_t i = 0; i < e->nfields; i++) {
        const struct web_admin_field *f = &e->fields[i];
        bool required = f->type != WEB_ADMIN_CHECKBOX && f->type != WEB_ADMIN_ROLES &&
                        !(f->type == WEB_ADMIN_PASSWORD && !create);
        char hint[256];
        /* An edit may keep the password: the field says so only there. */
        snprintf(hint, sizeof(hint), "%s%s", f->hint ? f->hint : "",
                 f->type == WEB_ADMIN_PASSWORD && !create ? " Leave empty to keep it." : "");
        json_array_append_new(a, json_pack("{s:s,s:s,s:s,s:s,s:b}", "name", f->name, "label",
                                           f->label, "type", types[f->type], "hint", hint,
                                           "required", required));
    }
    return a;
}

#define USER_CHOICES_MAX 200

/* The users a user field offers ([{id, username}] by username): the first
 * USER_CHOICES_MAX; others are typed (the field takes any username or id).
 * An empty list when the database fails (the field still works). */
static json_t *user_choices(http_request *req)
{
    db *d = web_db(req);
    json_t *rows = NULL, *out = json_array();
    struct echo_err err = {0};
    struct db_admin_user_query q = {
        .sort = DB_USER_SORT_USERNAME, .descending = false, .limit = USER_CHOICES_MAX};
    if (!d || db_admin_user_list_json(d, &q, &rows, NULL, &err) != DB_OK) {
        log_warn("admin: listing the users of a user field: %s", d ? err.msg : "no connection");
        return out;
    }
    size_t i;
    json_t *r;
    json_array_foreach(rows, i, r)
        json_array_append_new(out, json_pack("{s:O,s:O}", "id", json_object_get(r, "id"),
                                             "username", json_object_get(r, "username")));
    json_decref(rows);
    return out;
}

static void render_form(http_request *req, http_response *res, const struct web_admin_entity *e,
                        int status, int64_t id, json_t *form)
{
    json_t *ctx = admin_context(req, e);
    char action[96];
    if (id)
        snprintf(action, sizeof(action), "/admin/%s/%lld/edit", e->name, (long long)id);
    else
        snprintf(action, sizeof(action), "/admin/%s/new", e->name);
    bool multipart = false;
    for (size_t i = 0; i < e->nfields; i++)
        multipart = multipart || e->fields[i].type == WEB_ADMIN_FILE;
    json_object_set_new(ctx, "fields", fields_json(e, id == 0));
    json_object_set(ctx, "form", form ? form : json_null());
    json_object_set_new(ctx, "action", json_string(action));
    json_object_set_new(ctx, "multipart", json_boolean(multipart));
    json_object_set_new(ctx, "item_id", id ? json_integer(id) : json_null());
    json_object_set_new(ctx, "known_roles", json_pack("[s,s,s]", "admin", "user", "moderator"));
    bool picks_user = false;
    for (size_t i = 0; i < e->nfields; i++)
        picks_user = picks_user || e->fields[i].type == WEB_ADMIN_USER;
    if (picks_user) json_object_set_new(ctx, "user_choices", user_choices(req));
    render(req, res, status, "admin/form.html", ctx);
    json_decref(ctx);
}

/* The edit form starts from the row: text fields as strings, the active
 * flag as "1", roles as the array. */
static json_t *form_from_row(const struct web_admin_entity *e, const json_t *row)
{
    json_t *form = web_form_new();
    json_t *data = json_object_get(form, "data");
    for (size_t i = 0; i < e->nfields; i++) {
        const struct web_admin_field *f = &e->fields[i];
        json_t *v = json_object_get(row, f->name);
        char buf[32];
        if (f->type == WEB_ADMIN_PASSWORD || f->type == WEB_ADMIN_FILE || !v) continue;
        if (f->type == WEB_ADMIN_ROLES && json_is_array(v)) {
            json_object_set(data, f->name, v);
        } else if (json_is_string(v)) {
            json_object_set(data, f->name, v);
        } else if (json_is_integer(v)) {
            snprintf(buf, sizeof(buf), "%lld", (long long)json_integer_value(v));
            json_object_set_new(data, f->name, json_string(buf));
        } else if (json_is_true(v)) {
            json_object_set_new(data, f->name, json_string("1"));
        }
    }
    return form;
}

static int64_t route_id(http_request *req)
{
    return parse_id(http_request_param(req, "id"));
}

static void new_page(http_request *req, http_response *res, void *arg)
{
    const struct web_admin_entity *e = arg;
    json_t *form = web_form_new();
    /* A new user is active by default. */
    json_object_set_new(json_object_get(form, "data"), "is_active", json_string("1"));
    render_form(req, res, e, HTTP_STATUS_OK, 0, form);
    json_decref(form);
}

static void save_post(http_request *req, http_response *res, const struct web_admin_entity *e,
                      int64_t id)
{
    struct echo_err err = {0};
    struct web_admin_change ch = {
        .id = id, .action = id ? "update" : "create", .form = web_form_new()};
    struct op_args o = {.e = e, .err = &err};
    int s = run_change(req, e, &ch, op_save, &o);
    if (s == DB_OK) {
        done(req, res, e, id ? "saved" : "created", ch.id);
    } else if (s == WEB_ADMIN_FORM_INVALID) {
        render_form(req, res, e, HTTP_STATUS_BAD_REQUEST, id, ch.form);
    } else {
        answer_db_error(res, s);
    }
    change_deinit(&ch);
}

static void new_post(http_request *req, http_response *res, void *arg)
{
    save_post(req, res, arg, 0);
}

static void edit_page(http_request *req, http_response *res, void *arg)
{
    const struct web_admin_entity *e = arg;
    int64_t id = route_id(req);
    db *d = web_db(req);
    json_t *row = NULL;
    struct echo_err err = {0};
    int s = !id ? DB_NOT_FOUND : d ? e->get(d, id, &row, &err) : DB_BUSY;
    if (s != DB_OK) {
        answer_db_error(res, s);
        return;
    }
    json_t *form = form_from_row(e, row);
    render_form(req, res, e, HTTP_STATUS_OK, id, form);
    json_decref(form);
    json_decref(row);
}

static void edit_post(http_request *req, http_response *res, void *arg)
{
    int64_t id = route_id(req);
    if (!id) {
        http_response_error(res, HTTP_STATUS_NOT_FOUND, NULL);
        return;
    }
    save_post(req, res, arg, id);
}

/* Shows the row and the question; errors of a refused delete go here too. */
static void render_confirm(http_request *req, http_response *res, const struct web_admin_entity *e,
                           int status, int64_t id, json_t *form)
{
    db *d = web_db(req);
    json_t *row = NULL;
    struct echo_err err = {0};
    int s = d ? e->get(d, id, &row, &err) : DB_BUSY;
    if (s != DB_OK) {
        answer_db_error(res, s);
        return;
    }
    json_t *ctx = admin_context(req, e);
    json_t *columns = json_array();
    for (size_t c = 0; c < e->ncolumns; c++)
        json_array_append_new(columns, column_json(&e->columns[c]));
    json_object_set_new(ctx, "columns", columns);
    json_object_set_new(ctx, "row", row);
    json_object_set_new(ctx, "item_id", json_integer(id));
    json_object_set(ctx, "form", form ? form : json_null());
    render(req, res, status, "admin/confirm.html", ctx);
    json_decref(ctx);
}

static void delete_page(http_request *req, http_response *res, void *arg)
{
    int64_t id = route_id(req);
    if (!id) {
        http_response_error(res, HTTP_STATUS_NOT_FOUND, NULL);
        return;
    }
    render_confirm(req, res, arg, HTTP_STATUS_OK, id, NULL);
}

static void delete_post(http_request *req, http_response *res, void *arg)
{
    const struct web_admin_entity *e = arg;
    int64_t id = route_id(req);
    if (!id) {
        http_response_error(res, HTTP_STATUS_NOT_FOUND, NULL);
        return;
    }
    struct echo_err err = {0};
    struct web_admin_change ch = {.id = id, .action = "delete", .form = web_form_new()};
    struct op_args o = {.e = e, .err = &err};
    int s = run_change(req, e, &ch, op_remove, &o);
    if (s == DB_OK)
        done(req, res, e, "deleted", id);
    else if (s == WEB_ADMIN_FORM_INVALID)
        render_confirm(req, res, e, HTTP_STATUS_BAD_REQUEST, id, ch.form);
    else
        answer_db_error(res, s);
    change_deinit(&ch);
}

static void set_active_post(http_request *req, http_response *res, const struct web_admin_entity *e,
                            bool active)
{
    int64_t id = route_id(req);
    if (!id) {
        http_response_error(res, HTTP_STATUS_NOT_FOUND, NULL);
        return;
    }
    struct echo_err err = {0};
    struct web_admin_change ch = {
        .id = id, .action = active ? "activate" : "deactivate", .form = web_form_new()};
    struct op_args o = {.e = e, .active = active, .err = &err};
    int s = run_change(req, e, &ch, op_active, &o);
    if (s == DB_OK) {
        done(req, res, e, active ? "activated" : "deactivated", id);
    } else if (s == WEB_ADMIN_FORM_INVALID) {
        json_t *msgs = json_object_get(ch.form, "form_errors");
        const char *text = json_string_value(json_array_get(msgs, 0));
        web_flash(req, res, "error", text ? text : "That change is not possible.");
        char url[64];
        snprintf(url, sizeof(url), "/admin/%s", e->name);
        http_response_redirect(res, HTTP_STATUS_SEE_OTHER, url);
    } else {
        answer_db_error(res, s);
    }
    change_deinit(&ch);
}

static void deactivate_post(http_request *req, http_response *res, void *arg)
{
    set_active_post(req, res, arg, false);
}

static void activate_post(http_request *req, http_response *res, void *arg)
{
    set_active_post(req, res, arg, true);
}

/* ---- access and registration ------------------------------------------------- */

/* Every /admin URL, whatever handler serves it: only admins. Runs after the
 * accounts area's hook (which loaded the user and checked the CSRF token). */
static bool guard(http_request *req, http_response *res, void *arg)
{
    (void)arg;
    const char *path = http_request_path(req);
    if (strcmp(path, "/admin") != 0 && !str_has_prefix(path, "/admin/")) return true;
    return web_admin_required(req, res);
}

/* GET /admin/ is the dashboard's URL typed with a slash: sent there, with
 * its date range kept. */
static void slash_redirect(http_request *req, http_response *res, void *arg)
{
    (void)arg;
    struct strbuf sb;
    strbuf_init(&sb);
    qs_add(&sb, "from", http_request_query(req, "from"));
    qs_add(&sb, "to", http_request_query(req, "to"));
    http_response_redirect(res, HTTP_STATUS_MOVED_PERMANENTLY,
                           arena_printf(http_request_arena(req), "/admin%s", strbuf_cstr(&sb)));
    strbuf_deinit(&sb);
}

static int add(http_router *r, unsigned methods, const char *fmt, const char *name,
               http_handler_fn fn, const void *e, struct echo_err *err)
{
    char pattern[128];
    snprintf(pattern, sizeof(pattern), fmt, name);
    return http_router_add(r, methods, pattern, fn, (void *)e, err);
}

int web_admin_register(web_app *app, struct echo_err *err)
{
    if (the_admin) {
        echo_err_set(err, "the admin area is already set up in this process");
        return -1;
    }
    if (web_admin_entities_validate(web_admin_entities, web_admin_entity_count, err) != 0)
        return -1;
    the_admin = xcalloc(1, sizeof(*the_admin));
    the_admin->app = app;
    http_router *r = web_app_router(app);
    http_router_add_hook(r, guard, NULL, NULL);
    if (http_router_add(r, HTTP_GET, "/admin/", slash_redirect, NULL, err) != 0) goto fail;
    for (size_t i = 0; i < web_admin_entity_count; i++) {
        const struct web_admin_entity *e = web_admin_entities[i];
        const char *n = e->name;
        if (add(r, HTTP_GET, "/admin/%s", n, list_page, e, err) != 0 ||
            add(r, HTTP_GET, "/admin/%s/export", n, export_csv, e, err) != 0)
            goto fail;
        if (e->creatable && (add(r, HTTP_GET, "/admin/%s/new", n, new_page, e, err) != 0 ||
                             add(r, HTTP_POST, "/admin/%s/new", n, new_post, e, err) != 0))
            goto fail;
        if (e->editable && (add(r, HTTP_GET, "/admin/%s/<id>/edit", n, edit_page, e, err) != 0 ||
                            add(r, HTTP_POST, "/admin/%s/<id>/edit", n, edit_post, e, err) != 0))
            goto fail;
        if (e->deletable &&
            (add(r, HTTP_GET, "/admin/%s/<id>/delete", n, delete_page, e, err) != 0 ||
             add(r, HTTP_POST, "/admin/%s/<id>/delete", n, delete_post, e, err) != 0))
            goto fail;
        if (e->deactivatable &&
            (add(r, HTTP_POST, "/admin/%s/<id>/deactivate", n, deactivate_post, e, err) != 0 ||
             add(r, HTTP_POST, "/admin/%s/<id>/activate", n, activate_post, e, err) != 0))
            goto fail;
    }
    if (web_admin_dashboard_register(app, err) != 0) goto fail;
    return 0;
fail:
    free(the_admin);
    the_admin = NULL;
    return -1;
}

void web_admin_unregister(web_app *app)
{
    (void)app;
    web_admin_dashboard_unregister();
    free(the_admin);
    the_admin = NULL;
}

json_t *web_admin_page_context(http_request *req)
{
    return admin_context(req, NULL);
}
