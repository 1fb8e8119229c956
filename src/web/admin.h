/*
 * admin.h - the admin panel (issue 8): /admin and everything below it.
 *
 *   admin.c            registration, the access rule (a before-hook: only
 *                      active users holding the "admin" role; visitors go
 *                      to /login, others get 403), the generic entity view
 *                      (list with filter/search/sort/pagination, CSV export,
 *                      create, edit, deactivate, delete with confirmation)
 *                      driven by one description per entity, and the audit
 *                      log writing shared by every change;
 *   admin_entities.c   the descriptions: users, roles, pictures, feedback,
 *                      messages, audit log, and their changes;
 *   admin_dashboard.c  /admin: totals, the DateRange form, and the charts
 *                      as SVG, PNG and CSV under /admin/charts/.
 *
 * Every change runs in one transaction with its audit_log row. Every POST
 * is CSRF-checked by the accounts area's before-hook (auth.c). SQL is never
 * built from request strings: the request picks among fixed statements
 * (src/db/admin.c) and supplies bound values.
 *
 * Threads: web_admin_register / _unregister on the main thread before /
 * after serving; handlers on HTTP worker threads. The descriptions are
 * constant; the CSV and validation helpers are pure (any thread).
 */
#ifndef ECHO_WEB_ADMIN_H
#define ECHO_WEB_ADMIN_H

#include <jansson.h>

#include "db/admin.h"
#include "db/db.h"
#include "media/media.h"
#include "web/app.h"

/* Routes every /admin URL. Needs the accounts and profile areas. */
int web_admin_register(web_app *app, struct echo_err *err);
void web_admin_unregister(web_app *app);

/* ---- the generic view's descriptions ------------------------------------ */

/* The request's filter of a list, parsed from the URL. */
struct web_admin_query {
    const char *search; /* "" for none */
    int64_t user_id;    /* 0 for none */
    int64_t from, to;   /* created_at in [from, to); 0 for none */
    int sort;           /* index into the entity's sort columns; -1: default order */
    bool descending;
    int64_t limit, offset;
};

/* How a cell is shown (templates/admin/_cell.html). */
enum web_admin_cell {
    WEB_ADMIN_CELL_TEXT,  /* text or a number, long text cut in lists */
    WEB_ADMIN_CELL_TIME,  /* unix seconds, shown as a UTC date and time */
    WEB_ADMIN_CELL_BOOL,  /* yes / no */
    WEB_ADMIN_CELL_LIST,  /* an array of strings, joined */
    WEB_ADMIN_CELL_IMAGE, /* a picture URL, shown as a thumbnail */
    WEB_ADMIN_CELL_LINES, /* an array of strings, one per line, never cut */
    WEB_ADMIN_CELL_JSON,  /* JSON text, whole, folded in a <details> */
};

/* One shown column: the key of a row object (also its header, through the
 * underscore_separate filter). sort >= 0: the column can be sorted, with
 * that value passed to the entity's list function. */
struct web_admin_column {
    const char *name;
    int sort; /* -1: not sortable */
    enum web_admin_cell cell;
};

/* One field of the create/edit form. */
enum web_admin_field_type {
    WEB_ADMIN_TEXT,
    WEB_ADMIN_EMAIL,
    WEB_ADMIN_PASSWORD, /* required on create, optional on edit */
    WEB_ADMIN_NUMBER,
    WEB_ADMIN_CHECKBOX,
    WEB_ADMIN_ROLES, /* checkboxes of the known roles */
    WEB_ADMIN_FILE,
    WEB_ADMIN_USER,      /* a user: an id or a username (offered from a list) */
    WEB_ADMIN_ROLE_NAME, /* a role: the known ones offered, another name typed */
};
struct web_admin_field {
    const char *name;
    const char *label;
    enum web_admin_field_type type;
    const char *hint; /* NULL: none */
};

/* What one change did: filled by the entity's save/remove, written to the
 * audit log by the generic view. save/remove validate first (no database
 * write), then begin the transaction (db_tx_begin) and change rows; on
 * DB_OK the generic view writes the audit row and commits, on anything
 * else it rolls back whatever is open. */
struct web_admin_change {
    int64_t id;           /* the entity's row (set by save on create) */
    const char *action;   /* "create", "update", "delete", "activate", "deactivate" */
    json_t *before;       /* owned; NULL for a create */
    json_t *after;        /* owned; NULL for a delete */
    json_t *form;         /* the form object errors go to (borrowed) */
    json_t *files;        /* owned array of picture paths to remove after the commit, or NULL */
    int64_t user_gone;    /* a deleted user: sessions, caches and engine context to drop */
    int64_t user_changed; /* a changed user: their cached profile is dropped */
};

/* A save/remove result besides the db_status values: the form has errors. */
#define WEB_ADMIN_FORM_INVALID 1

struct web_admin_entity {
    const char *name;     /* URL segment and audit entity: [a-z]{2,32} */
    const char *title;    /* "Users" */
    const char *singular; /* "user" */
    const char *plural;   /* "users" (row counts: "1 user", "2 users") */
    const struct web_admin_column *columns;
    size_t ncolumns;
    const struct web_admin_field *fields; /* the create/edit form */
    size_t nfields;
    bool searchable; /* the q= search box */
    bool dated;      /* rows have created_at: the date range filter */
    bool creatable, editable, deletable, deactivatable;
    /* A page of rows (JSON objects holding every column) and the total. */
    int (*list)(db *d, const struct web_admin_query *q, json_t **rows, int64_t *total,
                struct echo_err *err);
    /* One row (for the confirmation page, the edit form, the audit's
     * "before"); DB_NOT_FOUND when missing. */
    int (*get)(db *d, int64_t id, json_t **row, struct echo_err *err);
    /* Validates the posted form (errors into ch->form: return
     * WEB_ADMIN_FORM_INVALID) and applies it on d inside the open
     * transaction; ch->id is 0 for a create. Fills ch->before/after. */
    int (*save)(http_request *req, db *d, struct web_admin_change *ch, struct echo_err *err);
    /* Deletes ch->id inside the open transaction; fills ch->before. */
    int (*remove)(http_request *req, db *d, struct web_admin_change *ch, struct echo_err *err);
    /* Turns is_active of ch->id to `active` (deactivatable entities). */
    int (*set_active)(http_request *req, db *d, struct web_admin_change *ch, bool active,
                      struct echo_err *err);
};

/* The panel's entities, in menu order (admin_entities.c). */
extern const struct web_admin_entity *const web_admin_entities[];
extern const size_t web_admin_entity_count;

/* Checks descriptions for mistakes a start-up must catch (names unique and
 * well-formed, columns present and unique, every capability with its
 * function, forms with fields): 0, or -1 with err naming the entity. */
int web_admin_entities_validate(const struct web_admin_entity *const *list, size_t n,
                                struct echo_err *err);

/* The last-admin rule, inside the change's transaction: DB_OK while at
 * least one active user holds "admin"; WEB_ADMIN_FORM_INVALID (with the
 * message in form) otherwise. */
int web_admin_check_last_admin(db *d, json_t *form, struct echo_err *err);

/* ---- CSV -------------------------------------------------------------------- */

/*
 * Appends one CSV cell (RFC 4180: quoted when it holds a comma, quote, CR
 * or LF, quotes doubled). A cell starting with = + - @ (or a tab or CR,
 * which spreadsheets also treat as formula starts) gets a leading ' and is
 * quoted, so a spreadsheet shows text instead of running a formula.
 */
void web_admin_csv_cell(struct strbuf *out, const char *cell);
/* Appends a row of the given keys of obj (strings as they are, numbers,
 * booleans as true/false, arrays joined with "; ", null as empty),
 * comma-separated and ended by CRLF. */
void web_admin_csv_row(struct strbuf *out, const json_t *obj, const char *const *keys,
                       size_t nkeys);

/*
 * What an audit row changed, one line per key whose value differs between
 * the before and after JSON texts (either may be NULL: a create lists the
 * new values, a delete the old ones): "key: old -> new", a key only after
 * as "key: new", only before as "key: old -> (none)"; keys and values
 * (compact JSON) cut to 80 bytes and an ellipsis. Text that is not a JSON object gives one line
 * saying so. New reference (an array of strings).
 */
json_t *web_admin_audit_changes(const char *before, const char *after);

/* ---- dates ------------------------------------------------------------------ */

/* "YYYY-MM-DD" (a real calendar date, years 1970-9999) -> unix seconds of
 * its midnight UTC; false when malformed. */
bool web_admin_parse_date(const char *s, int64_t *out);
/* Unix seconds -> "YYYY-MM-DD" (UTC). */
void web_admin_format_date(int64_t t, char out[11]);

/* The base context of an admin page (frame data plus admin_menu). New
 * reference. */
json_t *web_admin_page_context(http_request *req);

/* ---- the dashboard (admin_dashboard.c) ---------------------------------- */

/* The charts' drawing size: the width of the dashboard's cards (the page
 * scales the SVG to the card's width, the PNG download has this size). */
#define WEB_ADMIN_CHART_WIDTH 1100
#define WEB_ADMIN_CHART_HEIGHT 400

/* GET /admin and /admin/charts/<name>; called by web_admin_register /
 * web_admin_unregister. */
int web_admin_dashboard_register(web_app *app, struct echo_err *err);
void web_admin_dashboard_unregister(void);
/* A change through the panel: the cached chart images are dropped. */
void web_admin_charts_changed(void);
/* What GET /admin computes: the totals, the three charts' entries
 * [{name, title, points, summary, svg_url, png_url, csv_url}] and their
 * SVGs appended to svgs[WEB_ADMIN_CHART_*] (initialised by the caller),
 * with one pass over the answers for the mean speed and the lengths. New
 * references in *totals and *charts. */
int web_admin_dashboard_build(db *d, int64_t now, int64_t from, int64_t to, json_t **totals,
                              json_t **charts, struct strbuf svgs[3], struct echo_err *err);

/* The DateRange form: from/to ("YYYY-MM-DD", to inclusive), default the
 * last 30 days ending today. */
#define WEB_ADMIN_RANGE_DEFAULT_DAYS 30
#define WEB_ADMIN_RANGE_MAX_DAYS (5 * 365 + 2)
/* Parses from/to into [*from, *to) (seconds, whole days); errors go into
 * form (fields "from", "to"). `today` is a day's midnight (seconds). */
bool web_admin_range_parse(const char *from_s, const char *to_s, int64_t today, int64_t *from,
                           int64_t *to, json_t *form);

enum web_admin_chart {
    WEB_ADMIN_CHART_SIGNUPS,
    WEB_ADMIN_CHART_MESSAGES,
    WEB_ADMIN_CHART_LENGTHS,
};
/* The dashboard's totals {users, active_7d, messages, feedback,
 * avg_tokens_per_second}. New reference in *out. */
int web_admin_totals(db *d, int64_t now, json_t **out, struct echo_err *err);
/* The data of a chart as points (labels "YYYY-MM-DD" for the per-day charts,
 * one per day of [from, to) with 0 for days without rows; "a-b" token
 * buckets for the lengths), and for the signups the users before `from`
 * (*base). The labels live in *labels (free with free()). */
int web_admin_chart_data(db *d, enum web_admin_chart which, int64_t from, int64_t to,
                         struct media_chart_point **pts, size_t *n, char **labels, double *base,
                         struct echo_err *err);
/* The chart's SVG appended to out. */
int web_admin_chart_svg(db *d, enum web_admin_chart which, int64_t from, int64_t to,
                        struct strbuf *out, struct echo_err *err);

#endif
