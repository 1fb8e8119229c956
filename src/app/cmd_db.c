/*
 * cmd_db.c - `echobot db upgrade|status|check|seed`: the database's schema
 * migrations, an integrity check, and demo data for benchmarks.
 *
 * upgrade  applies the pending migrations (each in its own transaction).
 * status   lists every migration as applied, pending, changed or unknown;
 *          exits 1 when one was changed after it was applied or is unknown.
 * check    PRAGMA integrity_check and foreign_key_check.
 * bench    times the read queries of the pages and the admin dashboard on
 *          the database as it is (e.g. after seed), printing the median.
 * seed     inserts generated users (without passwords: they cannot log in)
 *          and messages, spread over past days, committing every --batch
 *          rows and printing a line after each commit (the crash test and
 *          the admin dashboard benchmark use it). Refused in production.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/core.h"
#include "db/db.h"
#include "web/security.h"

const char cmd_db_summary[] =
    "database migrations (upgrade, status), integrity check, demo data, query timings";

static void usage(FILE *out)
{
    fprintf(
        out,
        "usage: echobot db upgrade [--database PATH]\n"
        "       echobot db status  [--database PATH]\n"
        "       echobot db check   [--database PATH]\n"
        "       echobot db seed --users N [--messages M] [--days D] [--batch B]\n"
        "                       [--prefix P] [--database PATH]\n"
        "       echobot db bench   [--runs R] [--database PATH]\n"
        "\n"
        "  upgrade   apply the pending migrations (the schema is built into echobot)\n"
        "  status    list applied and pending migrations\n"
        "  check     run SQLite's integrity and foreign key checks\n"
        "  seed      add N demo users (no password, cannot log in) and M messages\n"
        "            spread over the last D days (default 365), committing every B\n"
        "            rows (default 1000); usernames are P<number> (default seed<time>_).\n"
        "            Refused when ECHO_ENV=production.\n"
        "  bench     time (read-only) the queries the pages and the admin dashboard\n"
        "            run, R times each (default 5), and print the median in ms\n"
        "\n"
        "The database is ECHO_DATABASE, or INSTANCE_DIR/echo.db (see `echobot config check`).\n");
}

struct db_opts {
    const char *database;
    int64_t users, messages, days, batch, runs;
    const char *prefix;
};

static int parse_args(int argc, char **argv, struct db_opts *o)
{
    *o = (struct db_opts){.days = 365, .batch = 1000, .runs = 5};
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int64_t *num = NULL;
        int64_t lo = 0, hi = 0;
        if (!strcmp(a, "--database") && v) {
            o->database = v;
            i++;
            continue;
        }
        if (!strcmp(a, "--prefix") && v) {
            o->prefix = v;
            i++;
            continue;
        }
        if (!strcmp(a, "--users")) {
            num = &o->users, lo = 0, hi = 100000000;
        } else if (!strcmp(a, "--messages")) {
            num = &o->messages, lo = 0, hi = 1000000000;
        } else if (!strcmp(a, "--days")) {
            num = &o->days, lo = 1, hi = 36500;
        } else if (!strcmp(a, "--batch")) {
            num = &o->batch, lo = 1, hi = 1000000;
        } else if (!strcmp(a, "--runs")) {
            num = &o->runs, lo = 1, hi = 1000;
        }
        if (num && v) {
            if (parse_int64(v, lo, hi, num) != 0) {
                fprintf(stderr, "echobot db: %s takes a number from %lld to %lld\n", a,
                        (long long)lo, (long long)hi);
                return -1;
            }
            i++;
            continue;
        }
        fprintf(stderr, "echobot db: unknown or incomplete option '%s'\n", a);
        return -1;
    }
    return 0;
}

static config *load_config(const struct db_opts *o)
{
    struct echo_err err = {0};
    char buf[1024];
    config *c = config_load_default(&err);
    if (c && o->database && config_set(c, "ECHO_DATABASE", o->database, CONFIG_FLAG, &err) != 0) {
        config_free(c);
        c = NULL;
    }
    if (c && config_finish(c, &err) != 0) {
        config_free(c);
        c = NULL;
    }
    if (!c) fprintf(stderr, "echobot db: %s\n", echo_err_format(&err, buf, sizeof(buf)));
    return c;
}

static int fail(const char *what, const struct echo_err *err)
{
    char buf[1024];
    fprintf(stderr, "echobot db %s: %s\n", what, echo_err_format(err, buf, sizeof(buf)));
    return 1;
}

static int missing_database(const config *c, const char *action)
{
    char *path = db_path_from_config(c);
    fprintf(stderr, "echobot db %s: %s does not exist (create it with `echobot db upgrade`)\n",
            action, path);
    free(path);
    return 1;
}

static int status_of_missing(const config *c)
{
    char *path = db_path_from_config(c);
    printf("database: %s (does not exist yet)\n", path);
    for (size_t i = 0; i < db_migrations_embedded_count; i++)
        printf("  %-32s pending\n", db_migrations_embedded[i].name);
    printf("0 applied, %zu pending (run `echobot db upgrade`)\n", db_migrations_embedded_count);
    free(path);
    return 0;
}

static int do_upgrade(db *d)
{
    struct echo_err err = {0};
    int applied = 0;
    int s = db_migrate(d, &applied, &err);
    if (applied > 0)
        printf("applied %d migration%s to %s\n", applied, applied == 1 ? "" : "s", db_path(d));
    if (s != DB_OK) return fail("upgrade", &err);
    if (applied == 0) printf("%s is up to date\n", db_path(d));
    return 0;
}

static int do_status(db *d)
{
    struct echo_err err = {0};
    struct db_migration_info *info = NULL;
    size_t n = 0;
    if (db_migrations_status(d, &info, &n, &err) != DB_OK) return fail("status", &err);
    printf("database: %s\n", db_path(d));
    int applied = 0, pending = 0, bad = 0;
    for (size_t i = 0; i < n; i++) {
        char when[32];
        switch (info[i].state) {
        case DB_MIGRATION_APPLIED:
            printf("  %-32s applied %s\n", info[i].name,
                   db_time_iso(info[i].applied_at, when, sizeof(when)));
            applied++;
            break;
        case DB_MIGRATION_PENDING:
            printf("  %-32s pending\n", info[i].name);
            pending++;
            break;
        case DB_MIGRATION_CHANGED:
            printf("  %-32s CHANGED since it was applied %s (checksum differs)\n", info[i].name,
                   db_time_iso(info[i].applied_at, when, sizeof(when)));
            bad++;
            break;
        case DB_MIGRATION_UNKNOWN:
            printf("  %-32s UNKNOWN to this echobot (applied %s by a newer version?)\n",
                   info[i].name, db_time_iso(info[i].applied_at, when, sizeof(when)));
            bad++;
            break;
        }
    }
    free(info);
    printf("%d applied, %d pending%s\n", applied, pending,
           pending ? " (run `echobot db upgrade`)" : "");
    if (bad) {
        fprintf(stderr, "echobot db status: %d migration%s do not match this echobot\n", bad,
                bad == 1 ? "" : "s");
        return 1;
    }
    return 0;
}

static int do_check(db *d)
{
    struct echo_err err = {0};
    if (db_integrity_check(d, &err) != DB_OK) return fail("check", &err);
    printf("%s: integrity ok, foreign keys ok\n", db_path(d));
    return 0;
}

/* xorshift64*: reproducible demo data without libc's global rand state. */
static uint64_t next_rand(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ULL;
}

static const char *const demo_words[] = {
    "hello",  "model", "answer",  "question", "weather", "recipe",  "python", "code", "poem",
    "travel", "music", "history", "science",  "explain", "summary", "list",   "idea", "plan"};

static void demo_text(uint64_t *rng, int words, struct strbuf *sb)
{
    sb->len = 0;
    strbuf_puts(sb, "");
    for (int i = 0; i < words; i++) {
        if (i) strbuf_putc(sb, ' ');
        strbuf_puts(sb, demo_words[next_rand(rng) % (sizeof(demo_words) / sizeof(demo_words[0]))]);
    }
}

static int do_seed(db *d, const config *c, const struct db_opts *o)
{
    struct echo_err err = {0};
    if (config_is_production(c)) {
        fprintf(stderr, "echobot db seed: refused with ECHO_ENV=production (it adds fake users)\n");
        return 1;
    }
    if (o->users <= 0 && o->messages <= 0) {
        fprintf(stderr, "echobot db seed: give --users N (and optionally --messages M)\n");
        return 2;
    }
    int64_t now = (int64_t)time_now_s();
    char prefix[24];
    if (o->prefix)
        snprintf(prefix, sizeof(prefix), "%s", o->prefix);
    else
        snprintf(prefix, sizeof(prefix), "seed%lld_", (long long)now);
    int64_t first_id = 0, last_id = 0, users = 0, messages = 0, in_batch = 0;
    uint64_t rng = 0x9E3779B97F4A7C15ULL ^ (uint64_t)now;
    struct strbuf text;
    strbuf_init(&text);
    int status = db_tx_begin(d, &err);
    /* Users first, oldest first so ids grow with created_at like real signups. */
    for (int64_t i = 0; status == DB_OK && i < o->users; i++) {
        char name[64], email[96];
        snprintf(name, sizeof(name), "%s%lld", prefix, (long long)i);
        snprintf(email, sizeof(email), "%s@seed.example", name);
        int64_t age = (o->users - i) * (o->days * 86400) / (o->users + 1);
        int64_t id = 0;
        status = db_user_create(d, name, email, NULL, true, now - age, &id, &err);
        if (status != DB_OK) {
            char why[sizeof(err.msg)];
            snprintf(why, sizeof(why), "%s", err.msg);
            echo_err_set(&err, "user '%s': %s", name, why);
            break;
        }
        if (!first_id) first_id = id;
        last_id = id;
        users++;
        if (++in_batch >= o->batch) {
            status = db_tx_commit(d, &err);
            if (status == DB_OK) {
                printf("committed users=%lld messages=%lld last_user_id=%lld\n", (long long)users,
                       (long long)messages, (long long)last_id);
                fflush(stdout);
                in_batch = 0;
                status = db_tx_begin(d, &err);
            }
        }
    }
    if (status == DB_OK && o->messages > 0 && !first_id) {
        /* Messages only: attach them to the existing users. */
        int64_t count = 0;
        status = db_user_count(d, &count, &err);
        if (status == DB_OK && count == 0) {
            echo_err_set(&err, "there are no users to attach messages to");
            status = DB_INVALID;
        }
        if (status == DB_OK) {
            json_t *rows = NULL;
            struct db_user_query q = {.sort = DB_USER_SORT_ID, .limit = 1};
            status = db_user_list_json(d, &q, &rows, NULL, &err);
            if (status == DB_OK) {
                first_id = json_integer_value(json_object_get(json_array_get(rows, 0), "id"));
                last_id = first_id + count - 1;
            }
            json_decref(rows);
        }
    }
    for (int64_t i = 0; status == DB_OK && i < o->messages; i++) {
        struct db_message m;
        db_message_init(&m);
        /* Pairs of a question and its answer, at growing times. */
        m.user_id = first_id + (int64_t)(next_rand(&rng) % (uint64_t)(last_id - first_id + 1));
        bool answer = i % 2 == 1;
        snprintf(m.role, sizeof(m.role), "%s", answer ? "assistant" : "user");
        demo_text(&rng,
                  answer ? 20 + (int)(next_rand(&rng) % 120) : 3 + (int)(next_rand(&rng) % 12),
                  &text);
        m.content = text.data;
        m.created_at = now - (o->messages - i) * (o->days * 86400) / (o->messages + 1);
        if (answer) {
            m.prompt_tokens = 20 + (int64_t)(next_rand(&rng) % 400);
            m.completion_tokens = 20 + (int64_t)(next_rand(&rng) % 300);
            m.finish_reason = "stop";
            m.tokens_per_second = 8.0 + (double)(next_rand(&rng) % 1600) / 100.0;
        }
        status = db_message_add(d, &m, NULL, &err);
        if (status == DB_NOT_FOUND) {
            /* A gap in the ids (a deleted user): skip this message. */
            status = DB_OK;
            continue;
        }
        if (status != DB_OK) break;
        messages++;
        if (++in_batch >= o->batch) {
            status = db_tx_commit(d, &err);
            if (status == DB_OK) {
                printf("committed users=%lld messages=%lld last_user_id=%lld\n", (long long)users,
                       (long long)messages, (long long)last_id);
                fflush(stdout);
                in_batch = 0;
                status = db_tx_begin(d, &err);
            }
        }
    }
    strbuf_deinit(&text);
    if (status == DB_OK)
        status = db_tx_commit(d, &err);
    else if (db_in_tx(d))
        db_tx_rollback(d);
    if (status != DB_OK) return fail("seed", &err);
    if (in_batch > 0)
        printf("committed users=%lld messages=%lld last_user_id=%lld\n", (long long)users,
               (long long)messages, (long long)last_id);
    printf("seeded %lld users and %lld messages into %s\n", (long long)users, (long long)messages,
           db_path(d));
    return 0;
}

/* ---- bench --------------------------------------------------------------- */

enum bench_query {
    B_USER_COUNT,
    B_ACTIVE_7D,
    B_MESSAGE_COUNT,
    B_AVG_SPEED,
    B_SIGNUPS_30D,
    B_SIGNUPS_5Y,
    B_MESSAGES_30D,
    B_LENGTHS,
    B_USER_PAGE,
    B_USER_SEARCH,
    B_MESSAGE_PAGE,
    B_MESSAGE_PAGE_USER,
    B_MESSAGE_PAGE_DATES,
    B_HISTORY,
    B_USER_BY_NAME,
    B_COUNT
};

static const char *const bench_names[B_COUNT] = {
    "users: count",
    "users: active in the last 7 days",
    "messages: count",
    "messages: average answer speed",
    "signups per day, 30 days",
    "signups per day, 5 years",
    "messages per day, 30 days",
    "answer length histogram (50-token buckets)",
    "users: page 1 by created_at desc (+total)",
    "users: search 'ab' (+total)",
    "messages: page 1 (+total)",
    "messages: page 1 of one user (+total)",
    "messages: page 1 of 7 days (+total)",
    "messages: history of one user (last 50)",
    "users: find by username",
};

static int bench_run(db *d, enum bench_query q, int64_t now, int64_t some_user,
                     const char *some_name, struct echo_err *err)
{
    int64_t n = 0;
    double speed = 0;
    struct db_day_count *days = NULL;
    size_t nd = 0;
    json_t *rows = NULL;
    int s = DB_OK;
    switch (q) {
    case B_USER_COUNT:
        return db_user_count(d, &n, err);
    case B_ACTIVE_7D:
        return db_user_count_active_since(d, now - 7 * 86400, &n, err);
    case B_MESSAGE_COUNT:
        return db_message_count(d, &n, err);
    case B_AVG_SPEED:
        return db_message_avg_speed(d, &speed, err);
    case B_SIGNUPS_30D:
        s = db_user_signups_per_day(d, now - 30 * 86400, now, &days, &nd, err);
        break;
    case B_SIGNUPS_5Y:
        s = db_user_signups_per_day(d, now - 5 * 365 * 86400, now, &days, &nd, err);
        break;
    case B_MESSAGES_30D:
        s = db_message_per_day(d, now - 30 * 86400, now, &days, &nd, err);
        break;
    case B_LENGTHS:
        s = db_message_length_histogram(d, 50, &days, &nd, err);
        break;
    case B_USER_PAGE: {
        struct db_user_query uq = {.sort = DB_USER_SORT_CREATED_AT, .descending = true};
        s = db_user_list_json(d, &uq, &rows, &n, err);
        break;
    }
    case B_USER_SEARCH: {
        struct db_user_query uq = {.search = "ab", .sort = DB_USER_SORT_ID};
        s = db_user_list_json(d, &uq, &rows, &n, err);
        break;
    }
    case B_MESSAGE_PAGE:
        s = db_message_list_json(d, &(struct db_filter){0}, &rows, &n, err);
        break;
    case B_MESSAGE_PAGE_USER:
        s = db_message_list_json(d, &(struct db_filter){.user_id = some_user}, &rows, &n, err);
        break;
    case B_MESSAGE_PAGE_DATES:
        s = db_message_list_json(d, &(struct db_filter){.from = now - 7 * 86400}, &rows, &n, err);
        break;
    case B_HISTORY: {
        struct db_message *h = NULL;
        s = db_message_history(d, some_user, 50, &h, &nd, err);
        db_message_array_free(h, nd);
        break;
    }
    case B_USER_BY_NAME: {
        struct db_user u;
        s = db_user_find_by_username(d, some_name, &u, err);
        if (s == DB_OK) db_user_deinit(&u);
        if (s == DB_NOT_FOUND) s = DB_OK;
        break;
    }
    default:
        break;
    }
    free(days);
    json_decref(rows);
    return s;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int do_bench(db *d, const struct db_opts *o)
{
    struct echo_err err = {0};
    int64_t users = 0, messages = 0;
    if (db_user_count(d, &users, &err) != DB_OK || db_message_count(d, &messages, &err) != DB_OK)
        return fail("bench", &err);
    /* A user in the middle of the table with messages, for the per-user rows. */
    int64_t some_user = 0;
    char some_name[64] = "nobody";
    json_t *rows = NULL;
    if (db_message_list_json(d, &(struct db_filter){.limit = 1, .offset = messages / 2}, &rows,
                             NULL, &err) == DB_OK &&
        json_array_size(rows) == 1) {
        json_t *r = json_array_get(rows, 0);
        some_user = json_integer_value(json_object_get(r, "user_id"));
        snprintf(some_name, sizeof(some_name), "%s",
                 json_string_value(json_object_get(r, "username")));
    }
    json_decref(rows);
    int64_t now = (int64_t)time_now_s();
    printf("database: %s (%lld users, %lld messages), median of %lld runs\n", db_path(d),
           (long long)users, (long long)messages, (long long)o->runs);
    double *t = xcalloc((size_t)o->runs, sizeof(*t));
    for (int q = 0; q < B_COUNT; q++) {
        for (int64_t r = 0; r < o->runs; r++) {
            uint64_t t0 = time_mono_ns();
            if (bench_run(d, (enum bench_query)q, now, some_user, some_name, &err) != DB_OK) {
                free(t);
                return fail("bench", &err);
            }
            t[r] = (double)(time_mono_ns() - t0) / 1e6;
        }
        qsort(t, (size_t)o->runs, sizeof(*t), cmp_double);
        printf("  %-44s %9.3f ms\n", bench_names[q], t[o->runs / 2]);
    }
    /* The cost of one login or signup, for comparison. */
    char hash[SEC_PASSWORD_HASH_MAX];
    for (int64_t r = 0; r < o->runs; r++) {
        uint64_t t0 = time_mono_ns();
        if (sec_password_hash("benchmark password", hash, &err) != SEC_OK) {
            free(t);
            return fail("bench", &err);
        }
        t[r] = (double)(time_mono_ns() - t0) / 1e6;
    }
    qsort(t, (size_t)o->runs, sizeof(*t), cmp_double);
    printf("  %-44s %9.3f ms\n", "argon2id hash (interactive limits)", t[o->runs / 2]);
    free(t);
    return 0;
}

int cmd_db(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *action = argv[1];
    if (!strcmp(action, "--help") || !strcmp(action, "-h")) {
        usage(stdout);
        return 0;
    }
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        }
    }
    if (strcmp(action, "upgrade") && strcmp(action, "status") && strcmp(action, "check") &&
        strcmp(action, "seed") && strcmp(action, "bench")) {
        fprintf(stderr, "echobot db: unknown action '%s'\n\n", action);
        usage(stderr);
        return 2;
    }
    struct db_opts o;
    if (parse_args(argc, argv, &o) != 0) return 2;
    config *c = load_config(&o);
    if (!c) return 1;
    struct echo_err err = {0};
    int rc;
    db *d = NULL;
    if (!strcmp(action, "seed")) {
        /* Seeding needs the current schema (auto-migrated in development). */
        d = db_open_config(c, &err);
    } else {
        char *path = db_path_from_config(c);
        if (strcmp(action, "upgrade") && access(path, F_OK) != 0 && errno == ENOENT) {
            /* Looking must not create the file: report what upgrade would do. */
            free(path);
            rc = strcmp(action, "status") ? missing_database(c, action) : status_of_missing(c);
            config_free(c);
            return rc;
        }
        d = db_open(path, &err);
        free(path);
    }
    if (!d) {
        rc = fail(action, &err);
    } else if (!strcmp(action, "upgrade")) {
        rc = do_upgrade(d);
    } else if (!strcmp(action, "status")) {
        rc = do_status(d);
    } else if (!strcmp(action, "check")) {
        rc = do_check(d);
    } else if (!strcmp(action, "bench")) {
        rc = do_bench(d, &o);
    } else {
        rc = do_seed(d, c, &o);
    }
    db_close(d);
    config_free(c);
    return rc;
}
