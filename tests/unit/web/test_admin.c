/*
 * test_admin.c - the admin panel's pure parts and its data layer (issue 8):
 * formula-safe CSV cells and rows, the validation of the entity
 * descriptions (the real table passes; each kind of mistake is caught),
 * dates and the DateRange rules, the audit log and the filtered users list
 * on a real database, the chart data (one point per day, zeros for quiet
 * days, across a year end; length buckets), and that the dashboard's
 * aggregations read indexes (EXPLAIN QUERY PLAN, no full-scan steps).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../db/db_test_util.h"
#include "db/admin.h"
#include "web/admin.h"
#include "web/form.h"

/* fontconfig (under librsvg, reached through the media layer) keeps its
 * configuration until exit by design. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
    return "leak:libfontconfig.so\n";
}

static char *cell(const char *s)
{
    struct strbuf sb;
    strbuf_init(&sb);
    web_admin_csv_cell(&sb, s);
    strbuf_puts(&sb, "");
    return strbuf_steal(&sb);
}

static void check_cell(const char *in, const char *want)
{
    char *got = cell(in);
    assert_string_equal(got, want);
    free(got);
}

static void test_csv_cells(void **state)
{
    (void)state;
    check_cell("plain", "plain");
    check_cell("", "");
    check_cell(NULL, "");
    check_cell("a,b", "\"a,b\"");
    check_cell("say \"hi\"", "\"say \"\"hi\"\"\"");
    check_cell("two\nlines", "\"two\nlines\"");
    check_cell("cr\r", "\"cr\r\"");
    /* Formula starts get a quote mark and quotes around the cell. */
    check_cell("=1+1", "\"'=1+1\"");
    check_cell("+1", "\"'+1\"");
    check_cell("-1", "\"'-1\"");
    check_cell("@SUM(A1)", "\"'@SUM(A1)\"");
    check_cell("\tx", "\"'\tx\"");
    check_cell("=HYPERLINK(\"x\",\"y\")", "\"'=HYPERLINK(\"\"x\"\",\"\"y\"\")\"");
    /* Only the first character matters. */
    check_cell("a=1", "a=1");
    check_cell("ünïcödé", "ünïcödé");
}

static void test_csv_rows(void **state)
{
    (void)state;
    json_t *row = json_pack("{s:i,s:s,s:b,s:n,s:[s,s],s:f}", "id", 7, "name", "=cmd", "on", 1,
                            "none", "roles", "admin", "user", "speed", 12.5);
    static const char *const keys[] = {"id", "name", "on", "none", "roles", "speed", "missing"};
    struct strbuf sb;
    strbuf_init(&sb);
    web_admin_csv_row(&sb, row, keys, 7);
    assert_string_equal(strbuf_cstr(&sb), "7,\"'=cmd\",true,,admin; user,12.5,\r\n");
    strbuf_deinit(&sb);
    json_decref(row);
}

/* ---- descriptions ---- */

static int list_stub(db *d, const struct web_admin_query *q, json_t **rows, int64_t *total,
                     struct echo_err *err)
{
    (void)d, (void)q, (void)err;
    *rows = json_array();
    *total = 0;
    return DB_OK;
}

static int get_stub(db *d, int64_t id, json_t **row, struct echo_err *err)
{
    (void)d, (void)id, (void)err;
    *row = json_object();
    return DB_OK;
}

static int save_stub(http_request *req, db *d, struct web_admin_change *ch, struct echo_err *err)
{
    (void)req, (void)d, (void)ch, (void)err;
    return DB_OK;
}

static const struct web_admin_column cols[] = {{"id", -1, WEB_ADMIN_CELL_TEXT},
                                               {"created_at", 0, WEB_ADMIN_CELL_TIME}};
static const struct web_admin_field fields[] = {{"name", "Name", WEB_ADMIN_TEXT, NULL}};

static struct web_admin_entity good(void)
{
    struct web_admin_entity e = {.name = "things",
                                 .title = "Things",
                                 .singular = "thing",
                                 .plural = "things",
                                 .columns = cols,
                                 .ncolumns = 2,
                                 .fields = fields,
                                 .nfields = 1,
                                 .creatable = true,
                                 .list = list_stub,
                                 .get = get_stub,
                                 .save = save_stub};
    return e;
}

static void expect_invalid(const struct web_admin_entity *e, const char *needle)
{
    const struct web_admin_entity *list[] = {e};
    struct echo_err err = {0};
    assert_int_equal(web_admin_entities_validate(list, 1, &err), -1);
    if (!strstr(err.msg, needle)) fail_msg("'%s' does not mention '%s'", err.msg, needle);
}

static void test_descriptions(void **state)
{
    (void)state;
    struct echo_err err = {0};
    /* The real table. */
    assert_int_equal(web_admin_entities_validate(web_admin_entities, web_admin_entity_count, &err),
                     0);
    assert_true(web_admin_entity_count >= 5);
    struct web_admin_entity e = good();
    const struct web_admin_entity *one[] = {&e};
    assert_int_equal(web_admin_entities_validate(one, 1, &err), 0);
    assert_int_equal(web_admin_entities_validate(NULL, 0, &err), -1);

    e = good(), e.name = "Bad-Name";
    expect_invalid(&e, "Bad-Name");
    e = good(), e.name = "x";
    expect_invalid(&e, "name");
    e = good(), e.title = "";
    expect_invalid(&e, "title");
    e = good(), e.plural = NULL;
    expect_invalid(&e, "title");
    e = good(), e.ncolumns = 0;
    expect_invalid(&e, "no columns");
    struct web_admin_column dup[] = {{"id", -1, WEB_ADMIN_CELL_TEXT},
                                     {"id", -1, WEB_ADMIN_CELL_TEXT}};
    e = good(), e.columns = dup;
    expect_invalid(&e, "'id' twice");
    struct web_admin_column bad_col[] = {{"Drop Table", -1, WEB_ADMIN_CELL_TEXT}};
    e = good(), e.columns = bad_col, e.ncolumns = 1;
    expect_invalid(&e, "bad name");
    struct web_admin_column bad_kind[] = {{"id", -1, (enum web_admin_cell)42}};
    e = good(), e.columns = bad_kind, e.ncolumns = 1;
    expect_invalid(&e, "cell kind");
    e = good(), e.list = NULL;
    expect_invalid(&e, "list");
    e = good(), e.save = NULL;
    expect_invalid(&e, "save");
    e = good(), e.nfields = 0;
    expect_invalid(&e, "without fields");
    e = good(), e.deletable = true;
    expect_invalid(&e, "remove");
    e = good(), e.deactivatable = true;
    expect_invalid(&e, "set_active");
    struct web_admin_field dupf[] = {{"a", "A", WEB_ADMIN_TEXT, NULL},
                                     {"a", "A", WEB_ADMIN_TEXT, NULL}};
    e = good(), e.fields = dupf, e.nfields = 2;
    expect_invalid(&e, "'a' twice");
    /* The same name twice in one table. */
    struct web_admin_entity a = good(), b = good();
    const struct web_admin_entity *two[] = {&a, &b};
    assert_int_equal(web_admin_entities_validate(two, 2, &err), -1);
    assert_non_null(strstr(err.msg, "twice"));
}

/* ---- dates ---- */

static void test_dates(void **state)
{
    (void)state;
    int64_t t;
    assert_true(web_admin_parse_date("1970-01-01", &t));
    assert_int_equal(t, 0);
    assert_true(web_admin_parse_date("2024-02-29", &t));
    assert_int_equal(t, 1709164800);
    assert_true(web_admin_parse_date("2000-02-29", &t));
    char buf[11];
    web_admin_format_date(t, buf);
    assert_string_equal(buf, "2000-02-29");
    web_admin_format_date(t + 86399, buf);
    assert_string_equal(buf, "2000-02-29");
    web_admin_format_date(1767225600 - 1, buf); /* the last second of 2025 */
    assert_string_equal(buf, "2025-12-31");
    static const char *const bad[] = {"",          "2023-02-29", "1900-02-29", "2024-13-01",
                                      "2024-00-10", "2024-01-32", "2024-1-01",  "2024/01/01",
                                      "20240101",   "1969-12-31", "2024-01-01x", " 2024-01-01",
                                      "+024-01-01", "2024-04-31", "abcd-ef-gh"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (web_admin_parse_date(bad[i], &t)) fail_msg("'%s' was taken for a date", bad[i]);
    assert_false(web_admin_parse_date(NULL, &t));
    /* Every day of 1970..2100 round-trips. */
    for (int64_t d = 0; d < 47847; d++) {
        web_admin_format_date(d * 86400, buf);
        assert_true(web_admin_parse_date(buf, &t));
        assert_int_equal(t, d * 86400);
    }
}

static bool range(const char *from, const char *to, int64_t *f, int64_t *t, json_t **form)
{
    int64_t today;
    assert_true(web_admin_parse_date("2024-03-01", &today));
    *form = web_form_new();
    return web_admin_range_parse(from, to, today, f, t, *form);
}

static bool has_error(json_t *form, const char *field, const char *needle)
{
    json_t *list = json_object_get(json_object_get(form, "errors"), field);
    size_t i;
    json_t *m;
    json_array_foreach(list, i, m) if (strstr(json_string_value(m), needle)) return true;
    return false;
}

static void test_range(void **state)
{
    (void)state;
    int64_t f, t, want;
    json_t *form;
    /* Default: the last 30 days, today included. */
    assert_true(range(NULL, "", &f, &t, &form));
    assert_int_equal((t - f) / 86400, 30);
    assert_true(web_admin_parse_date("2024-02-01", &want));
    assert_int_equal(f, want);
    assert_string_equal(json_string_value(json_object_get(json_object_get(form, "data"), "to")),
                        "2024-03-01");
    json_decref(form);
    /* One day. */
    assert_true(range("2023-12-31", "2023-12-31", &f, &t, &form));
    assert_int_equal(t - f, 86400);
    json_decref(form);
    /* Exactly five years is allowed; a day more is not. */
    assert_true(range("2019-01-01", "2023-12-31", &f, &t, &form));
    json_decref(form);
    assert_false(range("2018-12-01", "2023-12-31", &f, &t, &form));
    assert_true(has_error(form, "to", "5 years"));
    json_decref(form);
    assert_false(range("2024-01-02", "2024-01-01", &f, &t, &form));
    assert_true(has_error(form, "from", "after"));
    json_decref(form);
    assert_false(range("2024-02-30", "nope", &f, &t, &form));
    assert_true(has_error(form, "from", "YYYY-MM-DD"));
    assert_true(has_error(form, "to", "YYYY-MM-DD"));
    json_decref(form);
}

/* ---- the data layer ---- */

static struct dbt *t_db;

static int setup_db(void **state)
{
    (void)state;
    t_db = dbt_new();
    return t_db ? 0 : -1;
}

static int teardown_db(void **state)
{
    (void)state;
    dbt_free(t_db);
    t_db = NULL;
    return 0;
}

static int64_t add_user(db *d, const char *name, int64_t created)
{
    char email[96];
    snprintf(email, sizeof(email), "%s@example.com", name);
    int64_t id = 0;
    struct echo_err err = {0};
    assert_int_equal(db_user_create(d, name, email, NULL, true, created, &id, &err), DB_OK);
    return id;
}

static void test_audit_log(void **state)
{
    (void)state;
    db *d = t_db->d;
    struct echo_err err = {0};
    json_t *after = json_pack("{s:s}", "name", "moderator");
    struct db_audit a = {.actor_id = 3, .actor_name = "grace", .action = "create",
                         .entity = "roles", .entity_id = 9, .after = after, .created_at = 1000};
    int64_t id = 0;
    assert_int_equal(db_audit_add(d, &a, &id, &err), DB_OK);
    a.action = "delete", a.before = after, a.after = NULL, a.created_at = 2000, a.actor_id = 4;
    assert_int_equal(db_audit_add(d, &a, NULL, &err), DB_OK);
    /* Unknown actions and missing entities are refused. */
    a.action = "drop";
    assert_int_equal(db_audit_add(d, &a, NULL, &err), DB_INVALID);
    a.action = "update", a.entity = "";
    assert_int_equal(db_audit_add(d, &a, NULL, &err), DB_INVALID);
    json_decref(after);

    json_t *rows = NULL;
    int64_t total = 0;
    struct db_filter f = {0};
    assert_int_equal(db_audit_list_json(d, &f, &rows, &total, &err), DB_OK);
    assert_int_equal(total, 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(rows, 0), "action")),
                        "delete"); /* newest first */
    assert_true(json_is_null(json_object_get(json_array_get(rows, 0), "after")));
    assert_string_equal(json_string_value(json_object_get(json_array_get(rows, 1), "after")),
                        "{\"name\":\"moderator\"}");
    json_decref(rows);
    f.user_id = 3; /* by actor */
    assert_int_equal(db_audit_list_json(d, &f, &rows, &total, &err), DB_OK);
    assert_int_equal(total, 1);
    json_decref(rows);
    f = (struct db_filter){.from = 1500, .to = 2500};
    assert_int_equal(db_audit_list_json(d, &f, &rows, &total, &err), DB_OK);
    assert_int_equal(total, 1);
    json_decref(rows);
}

static void test_user_list_filters(void **state)
{
    (void)state;
    db *d = t_db->d;
    struct echo_err err = {0};
    int64_t base = 1700000000;
    int64_t ids[12];
    for (int i = 0; i < 12; i++) {
        char name[32];
        snprintf(name, sizeof(name), "%s%02d", i % 2 ? "odd_" : "even_", i);
        ids[i] = add_user(d, name, base + i * 86400);
    }
    assert_int_equal(db_role_add(d, ids[0], "admin", 0, NULL, &err), DB_OK);
    json_t *rows = NULL;
    int64_t total = 0;
    struct db_admin_user_query q = {.search = "odd", .sort = DB_USER_SORT_USERNAME, .limit = 4};
    assert_int_equal(db_admin_user_list_json(d, &q, &rows, &total, &err), DB_OK);
    assert_int_equal(total, 6);
    assert_int_equal(json_array_size(rows), 4);
    assert_string_equal(json_string_value(json_object_get(json_array_get(rows, 0), "username")),
                        "odd_01");
    json_decref(rows);
    q = (struct db_admin_user_query){.sort = DB_USER_SORT_CREATED_AT, .descending = true,
                                     .from = base + 2 * 86400, .to = base + 5 * 86400};
    assert_int_equal(db_admin_user_list_json(d, &q, &rows, &total, &err), DB_OK);
    assert_int_equal(total, 3);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(rows, 0), "id")), ids[4]);
    json_decref(rows);
    q = (struct db_admin_user_query){.user_id = ids[0]};
    assert_int_equal(db_admin_user_list_json(d, &q, &rows, &total, &err), DB_OK);
    assert_int_equal(total, 1);
    json_t *u = json_array_get(rows, 0);
    assert_string_equal(json_string_value(json_array_get(json_object_get(u, "roles"), 0)), "admin");
    assert_null(json_object_get(u, "password_hash"));
    json_decref(rows);
    /* LIKE wildcards in a search are literal. */
    q = (struct db_admin_user_query){.search = "%"};
    assert_int_equal(db_admin_user_list_json(d, &q, &rows, &total, &err), DB_OK);
    assert_int_equal(total, 0);
    json_decref(rows);
    q = (struct db_admin_user_query){.search = "_0"};
    assert_int_equal(db_admin_user_list_json(d, &q, &rows, &total, &err), DB_OK);
    assert_int_equal(total, 10); /* even_00..odd_09 contain "_0" */
    json_decref(rows);
    /* Bad pages and sorts are refused, not run. */
    q = (struct db_admin_user_query){.sort = (enum db_user_sort)99};
    assert_int_equal(db_admin_user_list_json(d, &q, &rows, &total, &err), DB_INVALID);
    assert_null(rows);
    q = (struct db_admin_user_query){.limit = -1};
    assert_int_equal(db_admin_user_list_json(d, &q, &rows, &total, &err), DB_INVALID);
}

static void test_chart_data(void **state)
{
    (void)state;
    db *d = t_db->d;
    struct echo_err err = {0};
    int64_t from, to;
    assert_true(web_admin_parse_date("2023-12-30", &from));
    assert_true(web_admin_parse_date("2024-01-03", &to));
    to += 86400;
    add_user(d, "before_range", from - 86400);
    add_user(d, "first_day", from + 100);
    add_user(d, "new_year_a", to - 2 * 86400);
    add_user(d, "new_year_b", to - 2 * 86400 + 5);
    add_user(d, "after_range", to);
    struct media_chart_point *pts = NULL;
    size_t n = 0;
    char *labels = NULL;
    double base = 0;
    assert_int_equal(web_admin_chart_data(d, WEB_ADMIN_CHART_SIGNUPS, from, to, &pts, &n, &labels,
                                          &base, &err),
                     DB_OK);
    assert_int_equal(n, 5);
    static const char *const days[] = {"2023-12-30", "2023-12-31", "2024-01-01", "2024-01-02",
                                       "2024-01-03"};
    static const double want[] = {1, 0, 0, 2, 0};
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(pts[i].label, days[i]);
        assert_true(pts[i].value == want[i]);
    }
    assert_true(base == 13); /* the 12 users of test_user_list_filters and before_range */
    free(pts);
    free(labels);
    struct strbuf svg;
    strbuf_init(&svg);
    assert_int_equal(web_admin_chart_svg(d, WEB_ADMIN_CHART_SIGNUPS, from, to, &svg, &err), DB_OK);
    size_t points = 0;
    for (const char *p = svg.data; (p = strstr(p, "class=\"pt\"")); p++)
        points++;
    assert_int_equal(points, 5);
    strbuf_deinit(&svg);
    /* Not whole days: refused. */
    assert_int_equal(web_admin_chart_data(d, WEB_ADMIN_CHART_MESSAGES, from + 1, to, &pts, &n,
                                          &labels, &base, &err),
                     DB_INVALID);

    /* Answer lengths: buckets of a nice width, empty ones kept. */
    int64_t uid = add_user(d, "talker", from);
    for (int i = 0; i < 40; i++) {
        struct db_message m;
        db_message_init(&m);
        m.user_id = uid;
        snprintf(m.role, sizeof(m.role), "assistant");
        m.content = "answer";
        m.created_at = from;
        m.completion_tokens = i < 30 ? 5 : 290 + i;
        assert_int_equal(db_message_add(d, &m, NULL, &err), DB_OK);
    }
    assert_int_equal(web_admin_chart_data(d, WEB_ADMIN_CHART_LENGTHS, 0, 0, &pts, &n, &labels,
                                          &base, &err),
                     DB_OK);
    assert_int_equal(n, 17); /* lengths up to 329 in buckets of 20 */
    assert_string_equal(pts[0].label, "0-19");
    assert_true(pts[0].value == 30);
    assert_true(pts[1].value == 0);
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += pts[i].value;
    assert_true(sum == 40);
    free(pts);
    free(labels);
}

static void test_dashboard_reads_indexes(void **state)
{
    (void)state;
    struct echo_err err = {0};
    /* A connection of its own: its statement cache then holds exactly the
     * dashboard's statements. */
    db *d = db_open(t_db->path, &err);
    assert_non_null(d);
    json_t *totals = NULL;
    assert_int_equal(web_admin_totals(d, 1704067200, &totals, &err), DB_OK);
    assert_true(json_integer_value(json_object_get(totals, "users")) > 0);
    json_decref(totals);
    struct strbuf svg;
    strbuf_init(&svg);
    for (int c = 0; c < 3; c++)
        assert_int_equal(web_admin_chart_svg(d, (enum web_admin_chart)c, 1703894400, 1704326400,
                                             &svg, &err),
                         DB_OK);
    strbuf_deinit(&svg);
    json_t *plans = NULL;
    assert_int_equal(db_admin_query_plans(d, &plans, &err), DB_OK);
    size_t i, per_day = 0;
    json_t *q;
    json_array_foreach(plans, i, q)
    {
        const char *sql = json_string_value(json_object_get(q, "sql"));
        json_t *plan = json_object_get(q, "plan");
        char joined[2048] = "";
        size_t j;
        json_t *line;
        json_array_foreach(plan, j, line)
        {
            strncat(joined, json_string_value(line), sizeof(joined) - strlen(joined) - 2);
            strcat(joined, ";");
        }
        /* No aggregation reads a table without an index. */
        if (strstr(joined, "SCAN") && !strstr(joined, "INDEX"))
            fail_msg("a full table scan: %s -> %s", sql, joined);
        if (strstr(sql, "GROUP BY created_at / 86400")) {
            per_day++;
            assert_non_null(strstr(joined, "_day"));
            /* Grouped by the index itself, not sorted afterwards. */
            assert_null(strstr(joined, "TEMP B-TREE"));
        }
        if (strstr(sql, "completion_tokens")) assert_non_null(strstr(joined, "messages_answers"));
    }
    assert_int_equal(per_day, 2);
    assert_true(json_array_size(plans) >= 7);
    json_decref(plans);
    db_close(d);
}

/* ---- the audit log's diff ---- */

static const char *line(const json_t *a, size_t i)
{
    return json_string_value(json_array_get(a, i));
}

static void test_audit_changes(void **state)
{
    (void)state;
    /* An update: only the differing keys, in the before's order, then new keys. */
    json_t *c = web_admin_audit_changes(
        "{\"email\":\"a@x.org\",\"is_active\":true,\"roles\":[\"admin\",\"user\"],"
        "\"username\":\"ann\",\"gone\":1}",
        "{\"email\":\"a@x.org\",\"is_active\":false,\"roles\":[\"user\"],"
        "\"username\":\"anne\",\"password_changed\":true}");
    assert_int_equal(json_array_size(c), 5);
    assert_string_equal(line(c, 0), "is_active: true -> false");
    assert_string_equal(line(c, 1), "roles: [\"admin\",\"user\"] -> [\"user\"]");
    assert_string_equal(line(c, 2), "username: \"ann\" -> \"anne\"");
    assert_string_equal(line(c, 3), "gone: 1 -> (none)");
    assert_string_equal(line(c, 4), "password_changed: true");
    json_decref(c);
    /* Nothing changed: no line. */
    c = web_admin_audit_changes("{\"a\":1}", "{\"a\":1}");
    assert_int_equal(json_array_size(c), 0);
    json_decref(c);
    /* A create lists the new row, a delete the old one. */
    c = web_admin_audit_changes(NULL, "{\"name\":\"tester\",\"user_id\":4}");
    assert_int_equal(json_array_size(c), 2);
    assert_string_equal(line(c, 0), "name: \"tester\"");
    json_decref(c);
    c = web_admin_audit_changes("{\"name\":\"tester\"}", NULL);
    assert_string_equal(line(c, 0), "name: \"tester\"");
    json_decref(c);
    /* A long value is cut on a character boundary (é is 2 bytes). */
    char big[400] = "{\"t\":\"";
    for (int i = 0; i < 100; i++)
        strcat(big, "\xc3\xa9");
    strcat(big, "\"}");
    c = web_admin_audit_changes(NULL, big);
    const char *l = line(c, 0);
    assert_non_null(l);
    assert_true(utf8_valid(l, strlen(l)));
    assert_true(strlen(l) < 100);
    assert_non_null(strstr(l, "\xe2\x80\xa6"));
    json_decref(c);
    /* Bad records: one line saying so, no crash. */
    static const char *const bad[] = {"", "[1,2]", "{\"a\":", "\"str\"", "null"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        c = web_admin_audit_changes(bad[i], "{\"a\":1}");
        assert_int_equal(json_array_size(c), 1);
        assert_string_equal(line(c, 0), "(the record is not a JSON object)");
        json_decref(c);
        c = web_admin_audit_changes("{\"a\":1}", bad[i]);
        assert_int_equal(json_array_size(c), 1);
        json_decref(c);
    }
    c = web_admin_audit_changes(NULL, NULL);
    assert_int_equal(json_array_size(c), 0);
    json_decref(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_csv_cells),
        cmocka_unit_test(test_csv_rows),
        cmocka_unit_test(test_descriptions),
        cmocka_unit_test(test_dates),
        cmocka_unit_test(test_range),
        cmocka_unit_test(test_audit_log),
        cmocka_unit_test(test_user_list_filters),
        cmocka_unit_test(test_chart_data),
        cmocka_unit_test(test_dashboard_reads_indexes),
        cmocka_unit_test(test_audit_changes),
    };
    return cmocka_run_group_tests(tests, setup_db, teardown_db);
}
