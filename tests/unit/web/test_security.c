/*
 * test_security.c - the security primitives without a database: the
 * password rule, Argon2id hashing/verification/rehash, cookie tokens, the
 * application key, CSRF tokens (valid, expired, other session, other key,
 * tampered, malformed) and anti-bot fields (honeypot, too fast, too old,
 * forged, other form).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "web/security.h"

static struct sec_key key, other_key;

static int group_setup(void **state)
{
    (void)state;
    if (sec_key_init(&key, "0123456789abcdef0123456789abcdef", NULL) != SEC_OK ||
        sec_key_init(&other_key, "another secret key of enough length", NULL) != SEC_OK)
        return -1;
    return 0;
}

static void test_password_rule(void **state)
{
    (void)state;
    struct echo_err err = {0};
    assert_int_equal(sec_password_check("1234567", &err), SEC_ERR_MALFORMED);
    assert_non_null(strstr(err.msg, "8 to 128"));
    assert_int_equal(sec_password_check("12345678", &err), SEC_OK);
    assert_int_equal(sec_password_check(NULL, &err), SEC_ERR_MALFORMED);
    assert_int_equal(sec_password_check("bad\xff utf8 text", &err), SEC_ERR_MALFORMED);
    char pw[1024];
    memset(pw, 'x', 128);
    pw[128] = 0;
    assert_int_equal(sec_password_check(pw, &err), SEC_OK);
    pw[128] = 'x';
    pw[129] = 0;
    assert_int_equal(sec_password_check(pw, &err), SEC_ERR_MALFORMED);
    /* Characters, not bytes: 8 two-byte letters pass, 128 of them too. */
    pw[0] = 0;
    for (int i = 0; i < 8; i++)
        strcat(pw, "\xc3\xa9");
    assert_int_equal(sec_password_check(pw, &err), SEC_OK);
    pw[0] = 0;
    for (int i = 0; i < 7; i++)
        strcat(pw, "\xe2\x82\xac");
    assert_int_equal(sec_password_check(pw, &err), SEC_ERR_MALFORMED);
    pw[0] = 0;
    for (int i = 0; i < 128; i++)
        strcat(pw, "\xe2\x82\xac");
    assert_int_equal(sec_password_check(pw, &err), SEC_OK);
}

static void test_password_hash_verify(void **state)
{
    (void)state;
    struct echo_err err = {0};
    char h1[SEC_PASSWORD_HASH_MAX], h2[SEC_PASSWORD_HASH_MAX];
    assert_int_equal(sec_password_hash("correct horse battery", h1, &err), SEC_OK);
    assert_int_equal(sec_password_hash("correct horse battery", h2, &err), SEC_OK);
    assert_true(strncmp(h1, "$argon2id$", 10) == 0);
    assert_string_not_equal(h1, h2); /* a fresh salt each time */
    assert_int_equal(sec_password_verify(h1, "correct horse battery"), SEC_OK);
    assert_int_equal(sec_password_verify(h2, "correct horse battery"), SEC_OK);
    assert_int_equal(sec_password_verify(h1, "correct horse batterY"), SEC_ERR_MISMATCH);
    assert_int_equal(sec_password_verify(h1, ""), SEC_ERR_MISMATCH);
    assert_int_equal(sec_password_verify(h1, NULL), SEC_ERR_MISMATCH);
    assert_false(sec_password_needs_rehash(h1));

    /* No hash, garbage, a truncated or an overlong hash never match. */
    assert_int_equal(sec_password_verify(NULL, "correct horse battery"), SEC_ERR_MISMATCH);
    assert_int_equal(sec_password_verify("plain-text-password", "plain-text-password"),
                     SEC_ERR_MISMATCH);
    char cut[SEC_PASSWORD_HASH_MAX];
    snprintf(cut, sizeof(cut), "%.*s", (int)strlen(h1) - 5, h1);
    assert_int_equal(sec_password_verify(cut, "correct horse battery"), SEC_ERR_MISMATCH);
    char longer[400];
    snprintf(longer, sizeof(longer), "%s%0200d", h1, 0);
    assert_int_equal(sec_password_verify(longer, "correct horse battery"), SEC_ERR_MISMATCH);
    assert_true(sec_password_needs_rehash(longer));
    assert_true(sec_password_needs_rehash("garbage"));
    assert_true(sec_password_needs_rehash(NULL));
    sec_password_dummy_verify("anything");

    /* A hash made with other limits verifies, and asks for a rehash. */
    char weak[crypto_pwhash_STRBYTES];
    assert_int_equal(crypto_pwhash_str_alg(weak, "old password", 12, 3, 8 * 1024 * 1024,
                                           crypto_pwhash_ALG_ARGON2ID13),
                     0);
    assert_int_equal(sec_password_verify(weak, "old password"), SEC_OK);
    assert_true(sec_password_needs_rehash(weak));
    /* Argon2i (another algorithm) too. */
    assert_int_equal(crypto_pwhash_str_alg(weak, "old password", 12, 3, 8 * 1024 * 1024,
                                           crypto_pwhash_ALG_ARGON2I13),
                     0);
    assert_int_equal(sec_password_verify(weak, "old password"), SEC_OK);
    assert_true(sec_password_needs_rehash(weak));
}

static bool is_b64url(const char *s)
{
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '-' || *s == '_'))
            return false;
    return true;
}

static void test_tokens(void **state)
{
    (void)state;
    char t1[SEC_TOKEN_LEN + 1], t2[SEC_TOKEN_LEN + 1];
    unsigned char h1[SEC_HASH_LEN], h2[SEC_HASH_LEN], back[SEC_HASH_LEN];
    sec_token_new(t1, h1);
    sec_token_new(t2, h2);
    assert_int_equal(strlen(t1), SEC_TOKEN_LEN);
    assert_true(is_b64url(t1));
    assert_string_not_equal(t1, t2);
    assert_memory_not_equal(h1, h2, SEC_HASH_LEN);
    assert_int_equal(sec_token_hash(t1, back), SEC_OK);
    assert_memory_equal(back, h1, SEC_HASH_LEN);
    /* The stored hash is SHA-256 of the 32 decoded bytes. */
    unsigned char raw[32], want[32];
    size_t got = 0;
    assert_int_equal(sodium_base642bin(raw, sizeof(raw), t1, SEC_TOKEN_LEN, NULL, &got, NULL,
                                       sodium_base64_VARIANT_URLSAFE_NO_PADDING),
                     0);
    crypto_hash_sha256(want, raw, sizeof(raw));
    assert_memory_equal(want, h1, SEC_HASH_LEN);

    char bad[128];
    assert_int_equal(sec_token_hash(NULL, back), SEC_ERR_MALFORMED);
    assert_int_equal(sec_token_hash("", back), SEC_ERR_MALFORMED);
    snprintf(bad, sizeof(bad), "%.*s", SEC_TOKEN_LEN - 1, t1);
    assert_int_equal(sec_token_hash(bad, back), SEC_ERR_MALFORMED);
    snprintf(bad, sizeof(bad), "%sA", t1);
    assert_int_equal(sec_token_hash(bad, back), SEC_ERR_MALFORMED);
    snprintf(bad, sizeof(bad), "%s", t1);
    bad[5] = '+';
    assert_int_equal(sec_token_hash(bad, back), SEC_ERR_MALFORMED);
    bad[5] = '=';
    assert_int_equal(sec_token_hash(bad, back), SEC_ERR_MALFORMED);
    /* 43 characters carry 258 bits: the last one has 2 unused bits. A
     * spelling with them set decodes to the same bytes and is refused. */
    snprintf(bad, sizeof(bad), "%s", t1);
    const char *alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    int v = (int)(strchr(alphabet, bad[SEC_TOKEN_LEN - 1]) - alphabet);
    bad[SEC_TOKEN_LEN - 1] = alphabet[v ^ 1];
    assert_int_equal(sec_token_hash(bad, back), SEC_ERR_MALFORMED);
    memset(bad, 'A', SEC_TOKEN_LEN);
    bad[SEC_TOKEN_LEN] = 0;
    assert_int_equal(sec_token_hash(bad, back), SEC_OK); /* all-zero bytes, well-formed */
}

static void test_key(void **state)
{
    (void)state;
    struct sec_key k;
    struct echo_err err = {0};
    assert_int_equal(sec_key_init(&k, "short", &err), SEC_ERR_MALFORMED);
    assert_non_null(strstr(err.msg, "SECRET_KEY"));
    assert_int_equal(sec_key_init(&k, NULL, &err), SEC_ERR_MALFORMED);
    assert_int_equal(sec_key_init(&k, "0123456789abcdef0123456789abcdef", &err), SEC_OK);
    assert_memory_equal(k.k, key.k, sizeof(k.k));
    assert_memory_not_equal(k.k, other_key.k, sizeof(k.k));
}

static void test_csrf(void **state)
{
    (void)state;
    unsigned char bind[SEC_HASH_LEN], other[SEC_HASH_LEN];
    char tok[SEC_TOKEN_LEN + 1];
    sec_token_new(tok, bind);
    sec_token_new(tok, other);
    const int64_t now = 1700000000;
    char csrf[SEC_CSRF_LEN + 1];
    sec_csrf_token(&key, bind, now, csrf);
    assert_int_equal(strlen(csrf), SEC_CSRF_LEN);
    assert_true(is_b64url(csrf));

    assert_int_equal(sec_csrf_verify(&key, bind, csrf, now, SEC_CSRF_MAX_AGE), SEC_OK);
    assert_int_equal(sec_csrf_verify(&key, bind, csrf, now + SEC_CSRF_MAX_AGE, SEC_CSRF_MAX_AGE),
                     SEC_OK);
    assert_int_equal(
        sec_csrf_verify(&key, bind, csrf, now + SEC_CSRF_MAX_AGE + 1, SEC_CSRF_MAX_AGE),
        SEC_ERR_EXPIRED);
    assert_int_equal(sec_csrf_verify(&key, bind, csrf, now - SEC_CLOCK_SKEW, SEC_CSRF_MAX_AGE),
                     SEC_OK);
    assert_int_equal(sec_csrf_verify(&key, bind, csrf, now - SEC_CLOCK_SKEW - 1, SEC_CSRF_MAX_AGE),
                     SEC_ERR_EXPIRED);
    /* Another session, another key. */
    assert_int_equal(sec_csrf_verify(&key, other, csrf, now, SEC_CSRF_MAX_AGE), SEC_ERR_FORGED);
    assert_int_equal(sec_csrf_verify(&other_key, bind, csrf, now, SEC_CSRF_MAX_AGE),
                     SEC_ERR_FORGED);
    /* Changing any one character breaks it (the last one may only flip
     * unused bits, which is malformed rather than forged). */
    for (int i = 0; i < SEC_CSRF_LEN; i++) {
        char t[SEC_CSRF_LEN + 1];
        memcpy(t, csrf, sizeof(t));
        t[i] = t[i] == 'A' ? 'B' : 'A';
        int s = sec_csrf_verify(&key, bind, t, now, SEC_CSRF_MAX_AGE);
        if (s == SEC_OK) fail_msg("a token with character %d changed was accepted", i);
    }
    /* A re-signed timestamp without the key is a forgery. */
    unsigned char raw[40];
    size_t got = 0;
    assert_int_equal(sodium_base642bin(raw, sizeof(raw), csrf, SEC_CSRF_LEN, NULL, &got, NULL,
                                       sodium_base64_VARIANT_URLSAFE_NO_PADDING),
                     0);
    raw[7] ^= 1;
    char moved[SEC_CSRF_LEN + 1];
    sodium_bin2base64(moved, sizeof(moved), raw, sizeof(raw),
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    assert_int_equal(sec_csrf_verify(&key, bind, moved, now, SEC_CSRF_MAX_AGE), SEC_ERR_FORGED);

    assert_int_equal(sec_csrf_verify(&key, bind, NULL, now, SEC_CSRF_MAX_AGE), SEC_ERR_MALFORMED);
    assert_int_equal(sec_csrf_verify(&key, bind, "", now, SEC_CSRF_MAX_AGE), SEC_ERR_MALFORMED);
    char cut[SEC_CSRF_LEN + 8];
    snprintf(cut, sizeof(cut), "%.*s", SEC_CSRF_LEN - 1, csrf);
    assert_int_equal(sec_csrf_verify(&key, bind, cut, now, SEC_CSRF_MAX_AGE), SEC_ERR_MALFORMED);
    snprintf(cut, sizeof(cut), "%s==", csrf);
    assert_int_equal(sec_csrf_verify(&key, bind, cut, now, SEC_CSRF_MAX_AGE), SEC_ERR_MALFORMED);

    /* An anti-bot stamp is not a CSRF token, even over the same bytes. */
    char stamp[SEC_ANTIBOT_LEN + 1];
    sec_signed_make(&key, "echo-antibot-v1", bind, SEC_HASH_LEN, now, stamp);
    assert_int_equal(sec_csrf_verify(&key, bind, stamp, now, SEC_CSRF_MAX_AGE), SEC_ERR_FORGED);
    assert_string_equal(sec_status_name(SEC_ERR_FORGED), "forged");
}

static void test_antibot(void **state)
{
    (void)state;
    const int64_t t0 = 1700000000000LL;
    char stamp[SEC_ANTIBOT_LEN + 1];
    sec_antibot_stamp(&key, "signup", t0, stamp);
    assert_int_equal(strlen(stamp), SEC_ANTIBOT_LEN);
#define CHECK(form, st, hp, now)                                                                   \
    sec_antibot_check(&key, form, st, hp, now, SEC_ANTIBOT_MIN_MS, SEC_ANTIBOT_MAX_MS)
    assert_int_equal(CHECK("signup", stamp, "", t0 + 2000), SEC_OK);
    assert_int_equal(CHECK("signup", stamp, NULL, t0 + 3600000), SEC_OK);
    assert_int_equal(CHECK("signup", stamp, "", t0 + 1999), SEC_ERR_TOO_FAST);
    assert_int_equal(CHECK("signup", stamp, "", t0), SEC_ERR_TOO_FAST);
    assert_int_equal(CHECK("signup", stamp, "", t0 + 3600001), SEC_ERR_EXPIRED);
    assert_int_equal(CHECK("signup", stamp, "", t0 - 400000), SEC_ERR_EXPIRED);
    assert_int_equal(CHECK("signup", stamp, "http://spam.example", t0 + 5000), SEC_ERR_HONEYPOT);
    assert_int_equal(CHECK("signup", stamp, " ", t0 + 5000), SEC_ERR_HONEYPOT);
    assert_int_equal(CHECK("login", stamp, "", t0 + 5000), SEC_ERR_FORGED);
    assert_int_equal(CHECK("signupx", stamp, "", t0 + 5000), SEC_ERR_FORGED);
    assert_int_equal(CHECK("signup", NULL, "", t0 + 5000), SEC_ERR_MALFORMED);
    assert_int_equal(CHECK("signup", "", "", t0 + 5000), SEC_ERR_MALFORMED);
    assert_int_equal(CHECK("signup", "1700000000000", "", t0 + 5000), SEC_ERR_MALFORMED);
    assert_int_equal(sec_antibot_check(&other_key, "signup", stamp, "", t0 + 5000, 2000, 3600000),
                     SEC_ERR_FORGED);
    /* A CSRF token is not a stamp. */
    unsigned char bind[SEC_HASH_LEN] = {0};
    char csrf[SEC_CSRF_LEN + 1];
    sec_csrf_token(&key, bind, t0, csrf);
    assert_int_equal(CHECK("signup", csrf, "", t0 + 5000), SEC_ERR_FORGED);
    /* Custom limits (e.g. tests that do not want to wait). */
    assert_int_equal(sec_antibot_check(&key, "signup", stamp, "", t0, 0, 1000), SEC_OK);
#undef CHECK
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_password_rule), cmocka_unit_test(test_password_hash_verify),
        cmocka_unit_test(test_tokens),        cmocka_unit_test(test_key),
        cmocka_unit_test(test_csrf),          cmocka_unit_test(test_antibot),
    };
    return cmocka_run_group_tests(tests, group_setup, NULL);
}
