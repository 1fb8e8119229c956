/*
 * test_oauth.c - the oauth_identities table (migration 003): linking,
 * finding by (provider, subject), one owner per identity, the rules for
 * provider and subject, the profile's JSON view, unlinking, and the cascade
 * when the user is deleted.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "db/oauth.h"
#include "db_test_util.h"

static void test_rules(void **state)
{
    (void)state;
    assert_true(db_oauth_provider_valid("google"));
    assert_true(db_oauth_provider_valid("my_idp2"));
    const char *bad_p[] = {NULL,      "",    "Google",
                           "go-ogle", "a b", "abcdefghijklmnopqrstuvwxyz0123456"};
    for (size_t i = 0; i < sizeof(bad_p) / sizeof(bad_p[0]); i++)
        assert_false(db_oauth_provider_valid(bad_p[i]));
    char sub[300];
    memset(sub, '7', 255);
    sub[255] = 0;
    assert_true(db_oauth_subject_valid(sub));
    assert_true(db_oauth_subject_valid("110169484474386276334"));
    sub[255] = '7';
    sub[256] = 0;
    assert_false(db_oauth_subject_valid(sub));
    const char *bad_s[] = {NULL, "", "a b", "tab\t", "\xc3\xa9", "x\x7f"};
    for (size_t i = 0; i < sizeof(bad_s) / sizeof(bad_s[0]); i++)
        assert_false(db_oauth_subject_valid(bad_s[i]));
}

static void test_link_find_unlink(void **state)
{
    struct dbt *t = *state;
    struct echo_err err = {0};
    int64_t ada = dbt_user(t->d, "ada"), bob = dbt_user(t->d, "bob");
    int64_t id = 0;
    assert_int_equal(
        db_oauth_link(t->d, "google", "sub-1", ada, "ada@gmail.com", 1700000100, &id, &err), DB_OK);
    assert_true(id > 0);
    struct db_oauth_identity o;
    assert_int_equal(db_oauth_find(t->d, "google", "sub-1", &o, &err), DB_OK);
    assert_int_equal(o.user_id, ada);
    assert_string_equal(o.provider, "google");
    assert_string_equal(o.subject, "sub-1");
    assert_string_equal(o.email, "ada@gmail.com");
    assert_int_equal(o.created_at, 1700000100);
    db_oauth_identity_deinit(&o);
    /* Subjects are compared exactly; another provider is another identity. */
    assert_int_equal(db_oauth_find(t->d, "google", "SUB-1", &o, NULL), DB_NOT_FOUND);
    assert_int_equal(db_oauth_find(t->d, "other", "sub-1", &o, NULL), DB_NOT_FOUND);
    assert_int_equal(db_oauth_find(t->d, NULL, NULL, &o, NULL), DB_NOT_FOUND);
    /* One owner per identity. */
    assert_int_equal(db_oauth_link(t->d, "google", "sub-1", bob, NULL, 0, NULL, &err), DB_CONFLICT);
    assert_string_equal(db_conflict_field(t->d), "subject");
    assert_int_equal(db_oauth_link(t->d, "other", "sub-1", bob, NULL, 0, NULL, &err), DB_OK);
    /* A missing user, bad values. */
    assert_int_equal(db_oauth_link(t->d, "google", "sub-2", 9999, NULL, 0, NULL, &err),
                     DB_NOT_FOUND);
    assert_int_equal(db_oauth_link(t->d, "Google", "sub-2", ada, NULL, 0, NULL, &err), DB_INVALID);
    assert_int_equal(db_oauth_link(t->d, "google", "", ada, NULL, 0, NULL, &err), DB_INVALID);
    assert_int_equal(db_oauth_link(t->d, "google", "s", ada, "\xff@x.com", 0, NULL, &err),
                     DB_INVALID);
    char email[300];
    memset(email, 'a', 299);
    email[299] = 0;
    assert_int_equal(db_oauth_link(t->d, "google", "s", ada, email, 0, NULL, &err), DB_INVALID);

    int64_t n = 0;
    assert_int_equal(db_oauth_count_user(t->d, ada, "google", &n, &err), DB_OK);
    assert_int_equal(n, 1);
    assert_int_equal(db_oauth_count_user(t->d, bob, NULL, &n, &err), DB_OK);
    assert_int_equal(n, 1);
    json_t *list = NULL;
    assert_int_equal(db_oauth_user_json(t->d, ada, &list, &err), DB_OK);
    assert_int_equal(json_array_size(list), 1);
    json_t *first = json_array_get(list, 0);
    assert_string_equal(json_string_value(json_object_get(first, "provider")), "google");
    assert_string_equal(json_string_value(json_object_get(first, "email")), "ada@gmail.com");
    assert_int_equal(json_integer_value(json_object_get(first, "created_at")), 1700000100);
    assert_null(json_object_get(first, "subject"));
    json_decref(list);

    int64_t removed = 0;
    assert_int_equal(db_oauth_unlink(t->d, ada, "google", &removed, &err), DB_OK);
    assert_int_equal(removed, 1);
    assert_int_equal(db_oauth_unlink(t->d, ada, "google", &removed, &err), DB_NOT_FOUND);
    assert_int_equal(removed, 0);
    /* Bob's identity of the other provider is untouched by Ada's unlink, and
     * goes with Bob. */
    assert_int_equal(db_oauth_find(t->d, "other", "sub-1", &o, NULL), DB_OK);
    db_oauth_identity_deinit(&o);
    assert_int_equal(db_user_delete(t->d, bob, &err), DB_OK);
    assert_int_equal(db_oauth_find(t->d, "other", "sub-1", &o, NULL), DB_NOT_FOUND);
    assert_int_equal(db_oauth_user_json(t->d, bob, &list, &err), DB_OK);
    assert_int_equal(json_array_size(list), 0);
    json_decref(list);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, dbt_setup, dbt_teardown)
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_rules), T(test_link_find_unlink)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
