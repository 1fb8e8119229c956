/*
 * test_entities.c - roles, pictures, feedback, messages and sessions: each
 * function's success, not-found, conflict and invalid paths, the filtered
 * and paged admin lists, per-day counts and the JSON views.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "db/db_internal.h"
#include "db_test_util.h"

static void test_roles(void **state)
{
    struct dbt *t = *state;
    struct echo_err err = {0};
    int64_t u1 = dbt_user(t->d, "ann"), u2 = dbt_user(t->d, "ben");
    assert_true(db_role_name_valid("admin"));
    assert_true(db_role_name_valid("content_mod"));
    assert_false(db_role_name_valid("a"));
    assert_false(db_role_name_valid("Admin"));
    assert_false(db_role_name_valid("ad min"));
    assert_false(db_role_name_valid("abcdefghijklmnopqrstuvwxyzabcdefg"));
    assert_false(db_role_name_valid(NULL));

    int64_t rid = 0;
    assert_int_equal(db_role_add(t->d, u1, "admin", 1700000000, &rid, &err), DB_OK);
    assert_int_equal(db_role_add(t->d, u1, "admin", 0, NULL, &err), DB_CONFLICT);
    assert_string_equal(db_conflict_field(t->d), "name");
    assert_int_equal(db_role_add(t->d, 9999, "admin", 0, NULL, &err), DB_NOT_FOUND);
    assert_int_equal(db_role_add(t->d, u1, "Bad Name", 0, NULL, &err), DB_INVALID);
    assert_int_equal(db_role_add(t->d, u1, "moderator", 1700000100, NULL, &err), DB_OK);
    assert_int_equal(db_role_add(t->d, u2, "admin", 1700100000, NULL, &err), DB_OK);

    bool has = false;
    assert_int_equal(db_user_has_role(t->d, u1, "admin", &has, &err), DB_OK);
    assert_true(has);
    assert_int_equal(db_user_has_role(t->d, u1, "user", &has, &err), DB_OK);
    assert_false(has);
    json_t *names = NULL;
    assert_int_equal(db_role_names_json(t->d, u1, &names, &err), DB_OK);
    assert_int_equal(json_array_size(names), 2);
    assert_string_equal(json_string_value(json_array_get(names, 1)), "moderator");
    json_decref(names);

    int64_t n = 0;
    assert_int_equal(db_role_count_active_holders(t->d, "admin", &n, &err), DB_OK);
    assert_int_equal(n, 2);
    assert_int_equal(db_user_set_active(t->d, u2, false, &err), DB_OK);
    assert_int_equal(db_role_count_active_holders(t->d, "admin", &n, &err), DB_OK);
    assert_int_equal(n, 1);

    struct db_role r;
    assert_int_equal(db_role_get(t->d, rid, &r, &err), DB_OK);
    assert_int_equal(r.user_id, u1);
    assert_string_equal(r.name, "admin");
    assert_int_equal(r.created_at, 1700000000);
    assert_int_equal(db_role_get(t->d, 4242, &r, &err), DB_NOT_FOUND);
    /* Editing into a pair that exists is a conflict; to a new one works. */
    assert_int_equal(db_role_update(t->d, rid, u1, "moderator", &err), DB_CONFLICT);
    assert_int_equal(db_role_update(t->d, rid, u2, "user", &err), DB_OK);
    assert_int_equal(db_role_update(t->d, rid, 777, "user", &err), DB_NOT_FOUND);
    assert_int_equal(db_role_update(t->d, 4242, u1, "user", &err), DB_NOT_FOUND);

    json_t *rows = NULL;
    int64_t total = 0;
    struct db_filter f = {.user_id = u2};
    assert_int_equal(db_role_list_json(t->d, &f, &rows, &total, &err), DB_OK);
    assert_int_equal(total, 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(rows, 0), "username")),
                        "ben");
    json_decref(rows);
    f = (struct db_filter){.from = 1700000050, .to = 1700000200};
    assert_int_equal(db_role_list_json(t->d, &f, &rows, &total, &err), DB_OK);
    assert_int_equal(total, 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(rows, 0), "name")),
                        "moderator");
    json_decref(rows);
    f = (struct db_filter){.user_id = u1, .from = 1700000050};
    assert_int_equal(db_role_list_json(t->d, &f, &rows, &total, &err), DB_OK);
    assert_int_equal(total, 1);
    json_decref(rows);
    assert_int_equal(db_role_list_json(t->d, NULL, &rows, &total, &err), DB_OK);
    assert_int_equal(total, 3);
    json_decref(rows);

    assert_int_equal(db_role_remove(t->d, u1, "moderator", &err), DB_OK);
    assert_int_equal(db_role_remove(t->d, u1, "moderator", &err), DB_NOT_FOUND);
    assert_int_equal(db_role_delete(t->d, rid, &err), DB_OK);
    assert_int_equal(db_role_delete(t->d, rid, &err), DB_NOT_FOUND);
}

static void test_pictures(void **state)
{
    struct dbt *t = *state;
    struct echo_err err = {0};
    int64_t u = dbt_user(t->d, "pat");
    struct db_picture p = {.user_id = u,
                           .path = "avatars/a.webp",
                           .mime = "image/webp",
                           .width = 256,
                           .height = 256,
                           .bytes = 1234,
                           .created_at = 1700000000};
    int64_t id1 = 0, id2 = 0;
    assert_int_equal(db_picture_add(t->d, &p, &id1, &err), DB_OK);
    struct db_picture out;
    assert_int_equal(db_picture_latest(t->d, u, &out, &err), DB_OK);
    assert_int_equal(out.id, id1);
    db_picture_deinit(&out);
    /* Same second: the higher id is the newer picture. */
    p.path = "avatars/b.webp";
    assert_int_equal(db_picture_add(t->d, &p, &id2, &err), DB_OK);
    assert_int_equal(db_picture_latest(t->d, u, &out, &err), DB_OK);
    assert_int_equal(out.id, id2);
    assert_string_equal(out.path, "avatars/b.webp");
    assert_string_equal(out.mime, "image/webp");
    assert_int_equal(out.bytes, 1234);
    db_picture_deinit(&out);
    assert_int_equal(db_picture_get(t->d, id1, &out, &err), DB_OK);
    json_t *j = db_picture_to_json(&out);
    assert_int_equal(json_integer_value(json_object_get(j, "width")), 256);
    json_decref(j);
    db_picture_deinit(&out);

    struct db_picture bad = p;
    bad.width = 0;
    assert_int_equal(db_picture_add(t->d, &bad, NULL, &err), DB_INVALID);
    bad = p;
    bad.path = "";
    assert_int_equal(db_picture_add(t->d, &bad, NULL, &err), DB_INVALID);
    bad = p;
    bad.mime = NULL;
    assert_int_equal(db_picture_add(t->d, &bad, NULL, &err), DB_INVALID);
    bad = p;
    bad.user_id = 555;
    assert_int_equal(db_picture_add(t->d, &bad, NULL, &err), DB_NOT_FOUND);

    json_t *rows = NULL;
    int64_t total = 0;
    struct db_filter f = {.user_id = u, .limit = 1};
    assert_int_equal(db_picture_list_json(t->d, &f, &rows, &total, &err), DB_OK);
    assert_int_equal(total, 2);
    assert_int_equal(json_array_size(rows), 1);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(rows, 0), "id")), id2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(rows, 0), "username")),
                        "pat");
    json_decref(rows);

    assert_int_equal(db_picture_delete(t->d, id2, &err), DB_OK);
    assert_int_equal(db_picture_delete(t->d, id2, &err), DB_NOT_FOUND);
    assert_int_equal(db_picture_latest(t->d, u, &out, &err), DB_OK);
    assert_int_equal(out.id, id1);
    db_picture_deinit(&out);
    assert_int_equal(db_picture_delete(t->d, id1, &err), DB_OK);
    assert_int_equal(db_picture_latest(t->d, u, &out, &err), DB_NOT_FOUND);
}

static void test_feedback(void **state)
{
    struct dbt *t = *state;
    struct echo_err err = {0};
    int64_t u = dbt_user(t->d, "fay");
    int64_t id = 0;
    const char *text = "<script>alert('x')</script> ' OR 1=1; -- ✓";
    assert_int_equal(db_feedback_add(t->d, u, text, 1700000000, &id, &err), DB_OK);
    struct db_feedback f;
    assert_int_equal(db_feedback_get(t->d, id, &f, &err), DB_OK);
    assert_string_equal(f.content, text);
    assert_int_equal(f.user_id, u);
    json_t *j = db_feedback_to_json(&f);
    assert_string_equal(json_string_value(json_object_get(j, "content")), text);
    json_decref(j);
    db_feedback_deinit(&f);

    assert_int_equal(db_feedback_add(t->d, u, "", 0, NULL, &err), DB_INVALID);
    assert_int_equal(db_feedback_add(t->d, u, NULL, 0, NULL, &err), DB_INVALID);
    assert_int_equal(db_feedback_add(t->d, u, "bad \xc3\x28 utf8", 0, NULL, &err), DB_INVALID);
    char *big = malloc(DB_FEEDBACK_MAX_BYTES + 2);
    memset(big, 'x', DB_FEEDBACK_MAX_BYTES + 1);
    big[DB_FEEDBACK_MAX_BYTES + 1] = 0;
    assert_int_equal(db_feedback_add(t->d, u, big, 0, NULL, &err), DB_INVALID);
    big[DB_FEEDBACK_MAX_BYTES] = 0;
    assert_int_equal(db_feedback_add(t->d, u, big, 1700090000, NULL, &err), DB_OK);
    free(big);
    assert_int_equal(db_feedback_add(t->d, 999, "x", 0, NULL, &err), DB_NOT_FOUND);

    int64_t n = 0;
    assert_int_equal(db_feedback_count(t->d, &n, &err), DB_OK);
    assert_int_equal(n, 2);
    json_t *rows = NULL;
    struct db_filter flt = {.to = 1700050000};
    assert_int_equal(db_feedback_list_json(t->d, &flt, &rows, &n, &err), DB_OK);
    assert_int_equal(n, 1);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(rows, 0), "id")), id);
    json_decref(rows);
    assert_int_equal(db_feedback_delete(t->d, id, &err), DB_OK);
    assert_int_equal(db_feedback_get(t->d, id, &f, &err), DB_NOT_FOUND);
}

static int64_t add_message(db *d, int64_t user, const char *role, const char *content, int64_t at)
{
    struct db_message m;
    db_message_init(&m);
    m.user_id = user;
    snprintf(m.role, sizeof(m.role), "%s", role);
    m.content = (char *)content;
    m.created_at = at;
    int64_t id = 0;
    struct echo_err err = {0};
    assert_int_equal(db_message_add(d, &m, &id, &err), DB_OK);
    return id;
}

static void test_messages(void **state)
{
    struct dbt *t = *state;
    struct echo_err err = {0};
    int64_t u = dbt_user(t->d, "max"), v = dbt_user(t->d, "val");
    for (int i = 0; i < 10; i++) {
        char text[32];
        snprintf(text, sizeof(text), "q%d", i);
        add_message(t->d, u, i % 2 ? "assistant" : "user", text, 1700000000 + i * 43200);
    }
    add_message(t->d, v, "user", "other", 1700000000);

    struct db_message m;
    db_message_init(&m);
    m.user_id = u;
    strcpy(m.role, "assistant");
    m.content = "an answer";
    m.prompt_tokens = 12;
    m.completion_tokens = 30;
    m.finish_reason = "stop";
    m.tokens_per_second = 15.5;
    m.created_at = 1700500000;
    int64_t aid = 0;
    assert_int_equal(db_message_add(t->d, &m, &aid, &err), DB_OK);
    struct db_message got;
    assert_int_equal(db_message_get(t->d, aid, &got, &err), DB_OK);
    assert_string_equal(got.role, "assistant");
    assert_int_equal(got.prompt_tokens, 12);
    assert_int_equal(got.completion_tokens, 30);
    assert_string_equal(got.finish_reason, "stop");
    assert_true(got.tokens_per_second > 15.4 && got.tokens_per_second < 15.6);
    json_t *j = db_message_to_json(&got);
    assert_int_equal(json_integer_value(json_object_get(j, "completion_tokens")), 30);
    json_decref(j);
    db_message_deinit(&got);
    /* Unknown values stay unknown. */
    int64_t plain = add_message(t->d, u, "user", "", 1700500001);
    assert_int_equal(db_message_get(t->d, plain, &got, &err), DB_OK);
    assert_int_equal(got.prompt_tokens, -1);
    assert_null(got.finish_reason);
    assert_true(got.tokens_per_second < 0);
    j = db_message_to_json(&got);
    assert_true(json_is_null(json_object_get(j, "tokens_per_second")));
    json_decref(j);
    db_message_deinit(&got);

    strcpy(m.role, "system");
    assert_int_equal(db_message_add(t->d, &m, NULL, &err), DB_INVALID);
    strcpy(m.role, "user");
    m.content = "\xff";
    assert_int_equal(db_message_add(t->d, &m, NULL, &err), DB_INVALID);
    m.content = NULL;
    assert_int_equal(db_message_add(t->d, &m, NULL, &err), DB_INVALID);
    m.content = "x";
    m.user_id = 4040;
    assert_int_equal(db_message_add(t->d, &m, NULL, &err), DB_NOT_FOUND);

    /* History: the last 4, oldest first. */
    struct db_message *hist = NULL;
    size_t n = 0;
    assert_int_equal(db_message_history(t->d, u, 4, &hist, &n, &err), DB_OK);
    assert_int_equal(n, 4);
    assert_string_equal(hist[0].content, "q8");
    assert_string_equal(hist[1].content, "q9");
    assert_string_equal(hist[2].content, "an answer");
    assert_string_equal(hist[3].content, "");
    db_message_array_free(hist, n);
    assert_int_equal(db_message_history(t->d, u, 0, &hist, &n, &err), DB_OK);
    assert_int_equal(n, 0);

    int64_t cnt = 0;
    assert_int_equal(db_message_count_user(t->d, u, &cnt, &err), DB_OK);
    assert_int_equal(cnt, 12);
    assert_int_equal(db_message_count(t->d, &cnt, &err), DB_OK);
    assert_int_equal(cnt, 13);
    double speed = 0;
    assert_int_equal(db_message_avg_speed(t->d, &speed, &err), DB_OK);
    assert_true(speed > 15.4 && speed < 15.6);

    struct db_day_count *days = NULL;
    size_t nd = 0;
    int64_t day0 = 1700000000 / 86400 * 86400;
    assert_int_equal(db_message_per_day(t->d, day0, day0 + 3 * 86400, &days, &nd, &err), DB_OK);
    int64_t sum = 0;
    for (size_t i = 0; i < nd; i++) {
        assert_true(i == 0 || days[i].day > days[i - 1].day);
        sum += days[i].count;
    }
    free(days);
    /* Messages created at 1700000000 + k*43200 for k < 6 (< day0 + 3 days), plus v's. */
    int64_t expect = 1;
    for (int k = 0; k < 10; k++)
        if (1700000000 + k * 43200 < day0 + 3 * 86400) expect++;
    assert_int_equal(sum, expect);

    /* One answer has a token count (30): bucket 30/16 = 1. */
    struct db_day_count *lengths = NULL;
    size_t nl = 0;
    assert_int_equal(db_message_length_histogram(t->d, 16, &lengths, &nl, &err), DB_OK);
    assert_int_equal(nl, 1);
    assert_int_equal(lengths[0].day, 1);
    assert_int_equal(lengths[0].count, 1);
    free(lengths);
    assert_int_equal(db_message_length_histogram(t->d, 0, &lengths, &nl, &err), DB_INVALID);

    json_t *rows = NULL;
    int64_t total = 0;
    struct db_filter f = {
        .user_id = u, .from = 1700000000 + 43200, .to = 1700000000 + 5 * 43200, .limit = 2};
    assert_int_equal(db_message_list_json(t->d, &f, &rows, &total, &err), DB_OK);
    assert_int_equal(total, 4);
    assert_int_equal(json_array_size(rows), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(rows, 0), "content")),
                        "q4");
    assert_string_equal(json_string_value(json_object_get(json_array_get(rows, 0), "username")),
                        "max");
    json_decref(rows);
    f = (struct db_filter){.limit = 5000};
    assert_int_equal(db_message_list_json(t->d, &f, &rows, &total, &err), DB_OK);
    assert_int_equal(json_array_size(rows), 13);
    json_decref(rows);
    f = (struct db_filter){.offset = -1};
    assert_int_equal(db_message_list_json(t->d, &f, &rows, &total, &err), DB_INVALID);

    int64_t deleted = 0;
    assert_int_equal(db_message_delete(t->d, aid, &err), DB_OK);
    assert_int_equal(db_message_delete(t->d, aid, &err), DB_NOT_FOUND);
    assert_int_equal(db_message_clear_user(t->d, u, &deleted, &err), DB_OK);
    assert_int_equal(deleted, 11);
    assert_int_equal(db_message_count(t->d, &cnt, &err), DB_OK);
    assert_int_equal(cnt, 1);
    assert_int_equal(db_message_avg_speed(t->d, &speed, &err), DB_OK);
    assert_true(speed == 0);
}

static void test_sessions(void **state)
{
    struct dbt *t = *state;
    struct echo_err err = {0};
    int64_t u = dbt_user(t->d, "sam");
    struct db_session s = {.user_id = u, .created_at = 1000, .expires_at = 2000, .remember = true};
    memset(s.id_hash, 0xAB, sizeof(s.id_hash));
    assert_int_equal(db_session_insert(t->d, &s, &err), DB_OK);
    assert_int_equal(db_session_insert(t->d, &s, &err), DB_CONFLICT);
    assert_string_equal(db_conflict_field(t->d), "id_hash");

    struct db_session got;
    assert_int_equal(db_session_get(t->d, s.id_hash, &got, &err), DB_OK);
    assert_int_equal(got.user_id, u);
    assert_int_equal(got.last_seen_at, 1000);
    assert_true(got.remember);
    assert_string_equal(got.data, "{}");
    db_session_deinit(&got);

    assert_int_equal(db_session_touch(t->d, s.id_hash, 1500, &err), DB_OK);
    assert_int_equal(db_session_set_data(t->d, s.id_hash, "{\"_flashes\":[]}", &err), DB_OK);
    assert_int_equal(db_session_get(t->d, s.id_hash, &got, &err), DB_OK);
    assert_int_equal(got.last_seen_at, 1500);
    assert_string_equal(got.data, "{\"_flashes\":[]}");
    db_session_deinit(&got);
    assert_int_equal(db_session_set_data(t->d, s.id_hash, "[1]", &err), DB_INVALID);
    assert_int_equal(db_session_set_data(t->d, s.id_hash, "{bad", &err), DB_INVALID);
    char *big = malloc(DB_SESSION_DATA_MAX + 16);
    snprintf(big, DB_SESSION_DATA_MAX + 16, "{\"k\":\"%0*d\"}", DB_SESSION_DATA_MAX, 0);
    assert_int_equal(db_session_set_data(t->d, s.id_hash, big, &err), DB_INVALID);
    free(big);

    /* Anonymous sessions have no user. */
    struct db_session anon = {.created_at = 1000, .expires_at = 1100};
    memset(anon.id_hash, 0x01, sizeof(anon.id_hash));
    anon.data = "{\"_flashes\":[{\"category\":\"info\",\"text\":\"bye\"}]}";
    assert_int_equal(db_session_insert(t->d, &anon, &err), DB_OK);
    assert_int_equal(db_session_get(t->d, anon.id_hash, &got, &err), DB_OK);
    assert_int_equal(got.user_id, 0);
    db_session_deinit(&got);
    struct db_session orphan = {.user_id = 31337, .created_at = 1, .expires_at = 2};
    assert_int_equal(db_session_insert(t->d, &orphan, &err), DB_NOT_FOUND);

    /* Revocation: all but one, then all. */
    for (int i = 0; i < 3; i++) {
        struct db_session more = {.user_id = u, .created_at = 1000, .expires_at = 5000};
        memset(more.id_hash, 0x10 + i, sizeof(more.id_hash));
        assert_int_equal(db_session_insert(t->d, &more, &err), DB_OK);
    }
    int64_t n = 0;
    assert_int_equal(db_session_count_user(t->d, u, &n, &err), DB_OK);
    assert_int_equal(n, 4);
    int64_t deleted = 0;
    assert_int_equal(db_session_delete_user(t->d, u, s.id_hash, &deleted, &err), DB_OK);
    assert_int_equal(deleted, 3);
    assert_int_equal(db_session_get(t->d, s.id_hash, &got, &err), DB_OK);
    db_session_deinit(&got);
    assert_int_equal(db_session_delete_expired(t->d, 1100, &deleted, &err), DB_OK);
    assert_int_equal(deleted, 1); /* the anonymous one */
    assert_int_equal(db_session_delete_user(t->d, u, NULL, &deleted, &err), DB_OK);
    assert_int_equal(deleted, 1);
    assert_int_equal(db_session_get(t->d, s.id_hash, &got, &err), DB_NOT_FOUND);
    assert_int_equal(db_session_delete(t->d, s.id_hash, &err), DB_NOT_FOUND);
    assert_int_equal(db_session_touch(t->d, s.id_hash, 1, &err), DB_NOT_FOUND);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, dbt_setup, dbt_teardown)
    const struct CMUnitTest tests[] = {
        T(test_roles), T(test_pictures), T(test_feedback), T(test_messages), T(test_sessions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
