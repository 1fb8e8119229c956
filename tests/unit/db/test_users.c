/*
 * test_users.c - users: the username and email rules, creation, lookups
 * without regard to case, conflicts naming the field, updates, cascading
 * delete, SQL metacharacters and long values stored verbatim, the admin
 * list (search, sort, paging, roles, message counts), signups per day and
 * the JSON view (which never shows the password hash).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "db/db_internal.h"
#include "db_test_util.h"

static void test_username_rule(void **state)
{
    (void)state;
    const char *good[] = {"bob", "Alice_01", "a.b-c", "x_y", "abcdefghijklmnopqrstuvwxyz012345"};
    const char *bad[] = {NULL,  "",         "ab",     "abcdefghijklmnopqrstuvwxyz0123456",
                         "a b", "al'ice",   "bob;--", "émile",
                         "a@b", "<script>", "tab\tx", "ab\x7f"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        if (!db_username_valid(good[i])) fail_msg("'%s' should be a valid username", good[i]);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (db_username_valid(bad[i]))
            fail_msg("'%s' should not be a valid username", bad[i] ? bad[i] : "(null)");
}

static void test_email_rule(void **state)
{
    (void)state;
    const char *good[] = {"a@b.co", "first.last+tag@mail.example.org", "x_y-z@sub-1.example.io",
                          "o'neil@example.com", "UPPER@EXAMPLE.COM"};
    const char *bad[] = {NULL,         "",          "plain",         "@example.com",
                         "a@",         "a@b",       "a@@b.com",      "a@b@c.com",
                         ".a@b.com",   "a.@b.com",  "a..b@c.com",    "a@-b.com",
                         "a@b-.com",   "a@b..com",  "a@.b.com",      "a@b.com.",
                         "a b@c.com",  "a@b c.com", "ü@example.com", "a@exämple.com",
                         "a\"b@c.com", "a@b.com\n", "<script>@x.com"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        if (!db_email_valid(good[i])) fail_msg("'%s' should be a valid email", good[i]);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (db_email_valid(bad[i]))
            fail_msg("'%s' should not be a valid email", bad[i] ? bad[i] : "(null)");
    /* Length limits: 64 for the local part, 254 in all, 63 per label. */
    char buf[400];
    memset(buf, 'a', 64);
    strcpy(buf + 64, "@example.com");
    assert_true(db_email_valid(buf));
    memset(buf, 'a', 65);
    strcpy(buf + 65, "@example.com");
    assert_false(db_email_valid(buf));
    strcpy(buf, "a@");
    size_t n = 2;
    while (n < 250) {
        memcpy(buf + n, "abcdefghi.", 10);
        n += 10;
    }
    strcpy(buf + n, "com");
    assert_false(db_email_valid(buf)); /* 255 characters */
    buf[n - 1] = 0;                    /* drop ".com": 251 characters ending in a label */
    assert_true(db_email_valid(buf));
    strcpy(buf, "a@");
    memset(buf + 2, 'b', 64);
    strcpy(buf + 66, ".com");
    assert_false(db_email_valid(buf));
}

static void test_create_and_find(void **state)
{
    struct dbt *t = *state;
    struct echo_err err = {0};
    int64_t id = 0;
    assert_int_equal(db_user_create(t->d, "Alice", "Alice@Example.com", "$argon2id$h", true,
                                    1700000000, &id, &err),
                     DB_OK);
    assert_true(id > 0);
    struct db_user u;
    assert_int_equal(db_user_get(t->d, id, &u, &err), DB_OK);
    assert_string_equal(u.username, "Alice");
    assert_string_equal(u.email, "Alice@Example.com");
    assert_string_equal(u.password_hash, "$argon2id$h");
    assert_true(u.is_active);
    assert_int_equal(u.created_at, 1700000000);
    assert_int_equal(u.last_login_at, 0);
    db_user_deinit(&u);

    const char *logins[] = {"alice", "ALICE", "alice@example.com", "ALICE@EXAMPLE.COM"};
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(db_user_find_by_login(t->d, logins[i], &u, &err), DB_OK);
        assert_int_equal(u.id, id);
        db_user_deinit(&u);
    }
    assert_int_equal(db_user_find_by_username(t->d, "alicia", &u, &err), DB_NOT_FOUND);
    assert_int_equal(db_user_find_by_email(t->d, "nobody@example.com", &u, &err), DB_NOT_FOUND);
    assert_int_equal(db_user_find_by_login(t->d, NULL, &u, &err), DB_NOT_FOUND);
    assert_int_equal(db_user_get(t->d, 12345, &u, &err), DB_NOT_FOUND);
    /* An email looked up as a username does not match. */
    assert_int_equal(db_user_find_by_username(t->d, "Alice@Example.com", &u, &err), DB_NOT_FOUND);

    /* created_at 0 means now; a NULL hash is an account without a password. */
    int64_t id2 = 0;
    assert_int_equal(
        db_user_create(t->d, "oauth_only", "o@example.com", NULL, false, 0, &id2, &err), DB_OK);
    assert_int_equal(db_user_get(t->d, id2, &u, &err), DB_OK);
    assert_null(u.password_hash);
    assert_false(u.is_active);
    assert_true(u.created_at >= db_now() - 5 && u.created_at <= db_now());
    db_user_deinit(&u);
}

static void test_conflicts(void **state)
{
    struct dbt *t = *state;
    struct echo_err err = {0};
    int64_t id = 0;
    assert_int_equal(db_user_create(t->d, "Bob", "bob@example.com", "h", true, 0, &id, &err),
                     DB_OK);
    assert_int_equal(db_user_create(t->d, "BOB", "other@example.com", "h", true, 0, NULL, &err),
                     DB_CONFLICT);
    assert_string_equal(db_conflict_field(t->d), "username");
    assert_non_null(strstr(err.msg, "username"));
    assert_int_equal(db_user_create(t->d, "robert", "Bob@EXAMPLE.com", "h", true, 0, NULL, &err),
                     DB_CONFLICT);
    assert_string_equal(db_conflict_field(t->d), "email");
    int64_t n = 0;
    assert_int_equal(db_user_count(t->d, &n, &err), DB_OK);
    assert_int_equal(n, 1);

    /* Updates obey the same rules. */
    int64_t id2 = dbt_user(t->d, "carol");
    assert_int_equal(db_user_update_profile(t->d, id2, "bOb", "carol@example.com", &err),
                     DB_CONFLICT);
    assert_string_equal(db_conflict_field(t->d), "username");
    assert_int_equal(db_user_update_profile(t->d, id2, "carol", "BOB@example.com", &err),
                     DB_CONFLICT);
    assert_string_equal(db_conflict_field(t->d), "email");
    /* Changing only the case of one's own name is not a conflict. */
    assert_int_equal(db_user_update_profile(t->d, id2, "Carol", "Carol@example.com", &err), DB_OK);
    struct db_user u;
    assert_int_equal(db_user_get(t->d, id2, &u, &err), DB_OK);
    assert_string_equal(u.username, "Carol");
    db_user_deinit(&u);
    assert_int_equal(db_user_update_profile(t->d, 999, "zed", "zed@example.com", &err),
                     DB_NOT_FOUND);
}

static void test_invalid_values(void **state)
{
    struct dbt *t = *state;
    struct echo_err err = {0};
    char big[10241];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    assert_int_equal(db_user_create(t->d, big, "a@example.com", "h", true, 0, NULL, &err),
                     DB_INVALID);
    assert_int_equal(db_user_create(t->d, "robert'); DROP TABLE users;--", "a@example.com", "h",
                                    true, 0, NULL, &err),
                     DB_INVALID);
    assert_int_equal(db_user_create(t->d, "ok_name", big, "h", true, 0, NULL, &err), DB_INVALID);
    assert_int_equal(db_user_create(t->d, "ok_name", "a@example.com", "", true, 0, NULL, &err),
                     DB_INVALID);
    assert_int_equal(db_user_create(t->d, "ok_name", "a@example.com", big, true, 0, NULL, &err),
                     DB_INVALID);
    assert_int_equal(db_user_create(t->d, NULL, NULL, NULL, true, 0, NULL, &err), DB_INVALID);
    int64_t n = -1;
    assert_int_equal(db_user_count(t->d, &n, &err), DB_OK);
    assert_int_equal(n, 0);
    int64_t id = dbt_user(t->d, "valid");
    assert_int_equal(db_user_update_profile(t->d, id, "no spaces", "a@example.com", &err),
                     DB_INVALID);
    assert_int_equal(db_user_set_password_hash(t->d, id, big, &err), DB_INVALID);
}

/* SQL metacharacters are data: stored and read back byte for byte. */
static void test_metacharacters_verbatim(void **state)
{
    struct dbt *t = *state;
    struct echo_err err = {0};
    const char *email = "o'brien\"--;%_*@x-y.example.com";
    assert_false(db_email_valid(email)); /* '"' is not allowed... */
    email = "o'brien--%_*{}|@x-y.example.com";
    assert_true(db_email_valid(email));
    int64_t id = 0;
    assert_int_equal(
        db_user_create(t->d, "o.brien--_", email, "h'; DROP TABLE users; --", true, 0, &id, &err),
        DB_OK);
    struct db_user u;
    assert_int_equal(db_user_find_by_email(t->d, email, &u, &err), DB_OK);
    assert_string_equal(u.email, email);
    assert_string_equal(u.password_hash, "h'; DROP TABLE users; --");
    db_user_deinit(&u);
    /* '%' and '_' in a LIKE search match themselves only. */
    dbt_user(t->d, "plainuser");
    struct db_user_query q = {.search = "%_"};
    json_t *rows = NULL;
    int64_t total = 0;
    assert_int_equal(db_user_list_json(t->d, &q, &rows, &total, &err), DB_OK);
    assert_int_equal(total, 1);
    assert_int_equal(json_array_size(rows), 1);
    json_decref(rows);
}

static void test_updates(void **state)
{
    struct dbt *t = *state;
    struct echo_err err = {0};
    int64_t id = dbt_user(t->d, "dave");
    assert_int_equal(db_user_set_password_hash(t->d, id, "$new", &err), DB_OK);
    assert_int_equal(db_user_set_active(t->d, id, false, &err), DB_OK);
    assert_int_equal(db_user_record_login(t->d, id, 1700000500, &err), DB_OK);
    struct db_user u;
    assert_int_equal(db_user_get(t->d, id, &u, &err), DB_OK);
    assert_string_equal(u.password_hash, "$new");
    assert_false(u.is_active);
    assert_int_equal(u.last_login_at, 1700000500);
    db_user_deinit(&u);
    assert_int_equal(db_user_set_password_hash(t->d, id, NULL, &err), DB_OK);
    assert_int_equal(db_user_get(t->d, id, &u, &err), DB_OK);
    assert_null(u.password_hash);
    db_user_deinit(&u);
    assert_int_equal(db_user_set_active(t->d, 777, true, &err), DB_NOT_FOUND);
    assert_int_equal(db_user_record_login(t->d, 777, 1, &err), DB_NOT_FOUND);
    assert_int_equal(db_user_set_password_hash(t->d, 777, "x", &err), DB_NOT_FOUND);
    int64_t n = 0;
    assert_int_equal(db_user_count_active_since(t->d, 1700000400, &n, &err), DB_OK);
    assert_int_equal(n, 1);
    assert_int_equal(db_user_count_active_since(t->d, 1700000501, &n, &err), DB_OK);
    assert_int_equal(n, 0);
}

static int64_t table_count(db *d, const char *sql)
{
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(d->sq, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static void test_delete_cascades(void **state)
{
    struct dbt *t = *state;
    struct echo_err err = {0};
    int64_t id = dbt_user(t->d, "erin");
    int64_t keep = dbt_user(t->d, "frank");
    for (int64_t who = id; who; who = who == id ? keep : 0) {
        assert_int_equal(db_role_add(t->d, who, "admin", 0, NULL, &err), DB_OK);
        struct db_picture p = {.user_id = who,
                               .path = "avatars/1.webp",
                               .mime = "image/webp",
                               .width = 256,
                               .height = 256,
                               .bytes = 1000};
        assert_int_equal(db_picture_add(t->d, &p, NULL, &err), DB_OK);
        assert_int_equal(db_feedback_add(t->d, who, "nice", 0, NULL, &err), DB_OK);
        struct db_message m;
        db_message_init(&m);
        m.user_id = who;
        strcpy(m.role, "user");
        m.content = "hi";
        assert_int_equal(db_message_add(t->d, &m, NULL, &err), DB_OK);
        struct db_session s = {.user_id = who, .created_at = 1, .expires_at = 2};
        s.id_hash[0] = (unsigned char)who;
        assert_int_equal(db_session_insert(t->d, &s, &err), DB_OK);
    }
    assert_int_equal(db_user_delete(t->d, id, &err), DB_OK);
    const char *tables[] = {"SELECT count(*) FROM roles", "SELECT count(*) FROM pictures",
                            "SELECT count(*) FROM feedback", "SELECT count(*) FROM messages",
                            "SELECT count(*) FROM sessions"};
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(table_count(t->d, tables[i]), 1);
    assert_int_equal(db_user_delete(t->d, id, &err), DB_NOT_FOUND);
    assert_int_equal(db_integrity_check(t->d, &err), DB_OK);
}

static void test_list(void **state)
{
    struct dbt *t = *state;
    struct echo_err err = {0};
    const char *names[] = {"charlie", "alpha", "echo", "bravo", "delta"};
    int64_t ids[5];
    for (int i = 0; i < 5; i++) {
        char email[64];
        snprintf(email, sizeof(email), "%s@%s.org", names[i], i % 2 ? "odd" : "even");
        assert_int_equal(
            db_user_create(t->d, names[i], email, "h", true, 1700000000 + i * 86400, &ids[i], &err),
            DB_OK);
    }
    assert_int_equal(db_role_add(t->d, ids[1], "user", 0, NULL, &err), DB_OK);
    assert_int_equal(db_role_add(t->d, ids[1], "admin", 0, NULL, &err), DB_OK);
    for (int i = 0; i < 3; i++) {
        struct db_message m;
        db_message_init(&m);
        m.user_id = ids[1];
        strcpy(m.role, "user");
        m.content = "q";
        assert_int_equal(db_message_add(t->d, &m, NULL, &err), DB_OK);
    }
    db_user_record_login(t->d, ids[3], 1800000000, &err);

    struct db_user_query q = {.sort = DB_USER_SORT_USERNAME};
    json_t *rows = NULL;
    int64_t total = 0;
    assert_int_equal(db_user_list_json(t->d, &q, &rows, &total, &err), DB_OK);
    assert_int_equal(total, 5);
    const char *sorted[] = {"alpha", "bravo", "charlie", "delta", "echo"};
    for (int i = 0; i < 5; i++)
        assert_string_equal(
            json_string_value(json_object_get(json_array_get(rows, (size_t)i), "username")),
            sorted[i]);
    json_t *alpha = json_array_get(rows, 0);
    json_t *roles = json_object_get(alpha, "roles");
    assert_int_equal(json_array_size(roles), 2);
    assert_string_equal(json_string_value(json_array_get(roles, 0)), "admin");
    assert_int_equal(json_integer_value(json_object_get(alpha, "message_count")), 3);
    assert_null(json_object_get(alpha, "password_hash"));
    assert_true(json_is_true(json_object_get(alpha, "has_password")));
    assert_int_equal(json_array_size(json_object_get(json_array_get(rows, 1), "roles")), 0);
    json_decref(rows);

    /* Descending by creation, a page of 2 starting at the 2nd. */
    q = (struct db_user_query){
        .sort = DB_USER_SORT_CREATED_AT, .descending = true, .limit = 2, .offset = 1};
    assert_int_equal(db_user_list_json(t->d, &q, &rows, &total, &err), DB_OK);
    assert_int_equal(total, 5);
    assert_int_equal(json_array_size(rows), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(rows, 0), "username")),
                        "bravo");
    assert_string_equal(json_string_value(json_object_get(json_array_get(rows, 1), "username")),
                        "echo");
    json_decref(rows);

    /* Search matches username or email, without regard to case. */
    q = (struct db_user_query){.search = "ODD", .sort = DB_USER_SORT_ID};
    assert_int_equal(db_user_list_json(t->d, &q, &rows, &total, &err), DB_OK);
    assert_int_equal(total, 2);
    json_decref(rows);
    q = (struct db_user_query){.search = "elt", .sort = DB_USER_SORT_EMAIL, .descending = true};
    assert_int_equal(db_user_list_json(t->d, &q, &rows, NULL, &err), DB_OK);
    assert_int_equal(json_array_size(rows), 1);
    json_decref(rows);

    q = (struct db_user_query){.sort = DB_USER_SORT_LAST_LOGIN_AT, .descending = true};
    assert_int_equal(db_user_list_json(t->d, &q, &rows, NULL, &err), DB_OK);
    json_t *first = json_array_get(rows, 0);
    assert_string_equal(json_string_value(json_object_get(first, "username")), "bravo");
    assert_string_equal(json_string_value(json_object_get(first, "last_login_at_iso")),
                        "2027-01-15T08:00:00Z");
    assert_true(json_is_null(json_object_get(json_array_get(rows, 1), "last_login_at")));
    json_decref(rows);

    q = (struct db_user_query){.sort = (enum db_user_sort)99};
    assert_int_equal(db_user_list_json(t->d, &q, &rows, NULL, &err), DB_INVALID);
    q = (struct db_user_query){.limit = -1};
    assert_int_equal(db_user_list_json(t->d, &q, &rows, NULL, &err), DB_INVALID);

    /* Signups per day: one a day for five days from 2023-11-14 22:13 UTC. */
    struct db_day_count *days = NULL;
    size_t n = 0;
    assert_int_equal(
        db_user_signups_per_day(t->d, 1700000000, 1700000000 + 3 * 86400, &days, &n, &err), DB_OK);
    assert_int_equal(n, 3);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(days[i].day, 1700000000 / 86400 + (int64_t)i);
        assert_int_equal(days[i].count, 1);
    }
    free(days);
}

static void test_to_json(void **state)
{
    (void)state;
    struct db_user u = {.id = 7,
                        .username = "zoe",
                        .email = "z@example.com",
                        .password_hash = "$argon2id$secret",
                        .is_active = true,
                        .created_at = 1700000000};
    json_t *j = db_user_to_json(&u);
    char *text = json_dumps(j, JSON_SORT_KEYS);
    assert_null(strstr(text, "argon2"));
    assert_non_null(strstr(text, "\"created_at_iso\": \"2023-11-14T22:13:20Z\""));
    assert_non_null(strstr(text, "\"last_login_at\": null"));
    free(text);
    json_decref(j);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, dbt_setup, dbt_teardown)
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_username_rule),
        cmocka_unit_test(test_email_rule),
        T(test_create_and_find),
        T(test_conflicts),
        T(test_invalid_values),
        T(test_metacharacters_verbatim),
        T(test_updates),
        T(test_delete_cascades),
        T(test_list),
        cmocka_unit_test(test_to_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
