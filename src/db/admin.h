/*
 * admin.h - what the admin panel (issue 8) needs from the data layer beyond
 * the entity functions of db.h: the audit log, the users list with every
 * filter of the panel (search, user id, signup date range, sort), and the
 * picture paths of a user (whose files go when the user is deleted).
 *
 * As everywhere in src/db/, the SQL is a fixed set of string literals
 * (one per sort order); the request only picks among them and supplies
 * bound values.
 *
 * Thread-safety: as db.h (one connection per thread at a time).
 */
#ifndef ECHO_DB_ADMIN_H
#define ECHO_DB_ADMIN_H

#include "db/db.h"

/* ---- the audit log -------------------------------------------------------- */

/* One change made through the panel. before/after are JSON objects or NULL
 * (borrowed); action is one of "create", "update", "delete", "deactivate",
 * "activate"; entity is the panel's entity name ("users", "roles", ...). */
struct db_audit {
    int64_t actor_id;
    const char *actor_name;
    const char *action;
    const char *entity;
    int64_t entity_id;
    const json_t *before;
    const json_t *after;
    int64_t created_at; /* 0: now */
};

/* Writes one row; call inside the transaction of the change it records.
 * DB_INVALID for an unknown action or an empty entity. */
int db_audit_add(db *d, const struct db_audit *a, int64_t *id, struct echo_err *err);
/* Rows {id, actor_id, actor_name, action, entity, entity_id, before, after
 * (JSON text or null), created_at, created_at_iso}, newest first;
 * f->user_id filters by actor. */
int db_audit_list_json(db *d, const struct db_filter *f, json_t **rows, int64_t *total,
                       struct echo_err *err);

/* ---- users ---------------------------------------------------------------- */

struct db_admin_user_query {
    const char *search; /* NULL/"": all; else a substring of username or email */
    int64_t user_id;    /* > 0: only this user */
    int64_t from, to;   /* created_at in [from, to); 0: no bound */
    enum db_user_sort sort;
    bool descending;
    int64_t limit, offset; /* as struct db_filter */
};

/* A page of users as db_user_list_json gives it (with "roles" and
 * "message_count"), under every filter of the panel. */
int db_admin_user_list_json(db *d, const struct db_admin_user_query *q, json_t **rows,
                            int64_t *total, struct echo_err *err);

/* What a per-day chart counts. */
enum db_admin_series {
    DB_ADMIN_SIGNUPS,  /* users by created_at */
    DB_ADMIN_MESSAGES, /* messages by created_at */
};
/* Rows per day for days [from_day, to_day) (day = unix seconds / 86400),
 * days without rows left out, increasing; through the day indexes of
 * migrations/004_admin.sql. Caller frees *out. */
int db_admin_per_day(db *d, enum db_admin_series which, int64_t from_day, int64_t to_day,
                     struct db_day_count **out, size_t *n, struct echo_err *err);

/* Users who signed up before t (the cumulative line's start). */
int db_admin_count_users_before(db *d, int64_t t, int64_t *n, struct echo_err *err);

/*
 * The answer statistics of the dashboard in one pass over the covering
 * index messages_answers: the mean tokens_per_second of the answers that
 * have one (0 when none), and the answers per completion_tokens value
 * (rows (day = length, count), increasing, answers without a count left
 * out). Caller frees *lengths.
 */
int db_admin_answer_stats(db *d, double *avg_speed, struct db_day_count **lengths, size_t *n,
                          struct echo_err *err);

/* The paths of every picture row of user_id: a new JSON array of strings. */
int db_admin_picture_paths(db *d, int64_t user_id, json_t **paths, struct echo_err *err);

/* ---- query plans ---------------------------------------------------------- */

/*
 * The plans of the aggregate statements this connection has prepared (its
 * statement cache: every statement with "count(" or "GROUP BY" or
 * "avg(" in it), for the benchmark and the tests that check the dashboard
 * reads indexes: a new array of {sql, plan: [detail...], fullscan_steps}.
 * fullscan_steps is SQLite's count of full-table-scan steps of that
 * statement so far (SQLITE_STMTSTATUS_FULLSCAN_STEP).
 */
int db_admin_query_plans(db *d, json_t **out, struct echo_err *err);

#endif
