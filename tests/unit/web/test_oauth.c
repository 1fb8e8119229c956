/*
 * test_oauth.c - the ID-token side of Sign in with Google (oauth_jwt.c) and
 * the pure helpers of oauth_http.c / oauth.c.
 *
 * Two kinds of test vectors: the RS256 example of RFC 7515 Appendix A.2 (a
 * key, a token and a signature made by someone else, so the verification is
 * checked against an independent implementation), and tokens this test
 * signs itself with a fresh 2048-bit key from nettle (rsa_generate_keypair,
 * rsa_sha256_sign_digest_tr) to cover kids, claims and every way a token or
 * key set can be wrong.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <gmp.h>
#include <nettle/bignum.h>
#include <nettle/rsa.h>
#include <nettle/sha2.h>
#include <sodium.h>

#include "db/db.h"
#include "http/url.h"
#include "web/oauth.h"

/* ---- RFC 7515 A.2 -------------------------------------------------------- */

static const char rfc_n[] =
    "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d"
    "4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMd"
    "bBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-"
    "DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ";
static const char rfc_jws[] =
    "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNv"
    "bS9pc19yb290Ijp0cnVlfQ.cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm"
    "4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_"
    "nZLgrnbyTyWzO75vRK5h6xB"
    "ArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-"
    "eOkHWEsqtFZESc6BfI7noOPqvhJ1p"
    "hCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw";

static oauth_jwks *rfc_keys(void)
{
    char json[1024];
    snprintf(json, sizeof(json), "{\"keys\":[{\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"AQAB\"}]}",
             rfc_n);
    oauth_jwks *k = NULL;
    struct echo_err err = {0};
    if (oauth_jwks_parse(json, strlen(json), &k, &err) != OAUTH_OK) fail_msg("%s", err.msg);
    return k;
}

static int verify_text(const char *token, const oauth_jwks *k)
{
    struct oauth_jwt t;
    int s = oauth_jwt_parse(token, &t, NULL);
    if (s == OAUTH_OK) s = oauth_jwt_verify(&t, k, NULL);
    oauth_jwt_deinit(&t);
    return s;
}

static void test_rfc7515_vector(void **state)
{
    (void)state;
    oauth_jwks *k = rfc_keys();
    assert_int_equal(oauth_jwks_count(k), 1);
    struct oauth_jwt t;
    assert_int_equal(oauth_jwt_parse(rfc_jws, &t, NULL), OAUTH_OK);
    assert_null(t.kid);
    assert_string_equal(json_string_value(json_object_get(t.claims, "iss")), "joe");
    assert_int_equal(json_integer_value(json_object_get(t.claims, "exp")), 1300819380);
    assert_int_equal(t.sig_len, 256);
    assert_int_equal(oauth_jwt_verify(&t, k, NULL), OAUTH_OK);
    oauth_jwt_deinit(&t);

    /* One changed character anywhere breaks it. */
    char *bad = strdup(rfc_jws);
    const char *dot2 = strrchr(rfc_jws, '.');
    size_t where[] = {30, 60, (size_t)(dot2 - rfc_jws) + 20, strlen(rfc_jws) - 10};
    for (size_t i = 0; i < sizeof(where) / sizeof(where[0]); i++) {
        strcpy(bad, rfc_jws);
        bad[where[i]] = bad[where[i]] == 'A' ? 'B' : 'A';
        int s = verify_text(bad, k);
        if (s == OAUTH_OK) fail_msg("a token changed at %zu verified", where[i]);
    }
    /* A signature cut short or made longer. */
    strcpy(bad, rfc_jws);
    bad[strlen(bad) - 4] = 0; /* 253 bytes, or a non-canonical last character */
    assert_int_not_equal(verify_text(bad, k), OAUTH_OK);
    strcpy(bad, rfc_jws);
    bad[strlen(bad) - 8] = 0;
    assert_int_not_equal(verify_text(bad, k), OAUTH_OK);
    free(bad);
    char *longer = malloc(strlen(rfc_jws) + 8);
    sprintf(longer, "%sAAAA", rfc_jws);
    assert_int_equal(verify_text(longer, k), OAUTH_ERR_SIGNATURE);
    free(longer);
    oauth_jwks_free(k);
}

/* ---- tokens made by the test -------------------------------------------- */

struct signer {
    struct rsa_public_key pub;
    struct rsa_private_key priv;
    char kid[16];
    char *jwk; /* the JWK JSON object of pub */
};

static struct signer keys[2];

static void rnd(void *ctx, size_t n, uint8_t *dst)
{
    (void)ctx;
    randombytes_buf(dst, n);
}

static char *b64(const void *data, size_t n)
{
    struct strbuf sb;
    strbuf_init(&sb);
    oauth_b64url_encode(&sb, data, n);
    return strbuf_steal(&sb);
}

static char *mpz_b64(const mpz_t x)
{
    size_t n = nettle_mpz_sizeinbase_256_u(x);
    uint8_t *buf = malloc(n);
    nettle_mpz_get_str_256(n, buf, x);
    char *s = b64(buf, n);
    free(buf);
    return s;
}

static void signer_init(struct signer *s, const char *kid)
{
    rsa_public_key_init(&s->pub);
    rsa_private_key_init(&s->priv);
    if (!rsa_generate_keypair(&s->pub, &s->priv, NULL, rnd, NULL, NULL, 2048, 17))
        fail_msg("nettle could not make a key");
    snprintf(s->kid, sizeof(s->kid), "%s", kid);
    char *n = mpz_b64(s->pub.n), *e = mpz_b64(s->pub.e);
    s->jwk = malloc(strlen(n) + strlen(e) + 128);
    sprintf(s->jwk,
            "{\"kty\":\"RSA\",\"alg\":\"RS256\",\"use\":\"sig\",\"kid\":\"%s\",\"n\":\"%s\","
            "\"e\":\"%s\"}",
            kid, n, e);
    free(n);
    free(e);
}

static int group_setup(void **state)
{
    (void)state;
    if (sodium_init() < 0) return -1;
    signer_init(&keys[0], "key-one");
    signer_init(&keys[1], "key-two");
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    for (int i = 0; i < 2; i++) {
        rsa_public_key_clear(&keys[i].pub);
        rsa_private_key_clear(&keys[i].priv);
        free(keys[i].jwk);
    }
    return 0;
}

/* header and claims are JSON texts; a new compact token signed by s. */
static char *sign_jwt(const struct signer *s, const char *header, const char *claims)
{
    char *h = b64(header, strlen(header)), *c = b64(claims, strlen(claims));
    struct strbuf sb;
    strbuf_init(&sb);
    strbuf_printf(&sb, "%s.%s", h, c);
    uint8_t digest[SHA256_DIGEST_SIZE];
    struct sha256_ctx ctx;
    sha256_init(&ctx);
    sha256_update(&ctx, sb.len, (const uint8_t *)sb.data);
    sha256_digest(&ctx, sizeof(digest), digest);
    mpz_t sig;
    mpz_init(sig);
    if (!rsa_sha256_sign_digest_tr(&s->pub, &s->priv, NULL, rnd, digest, sig))
        fail_msg("signing failed");
    uint8_t raw[1024];
    nettle_mpz_get_str_256(s->pub.size, raw, sig);
    char *sg = b64(raw, s->pub.size);
    strbuf_printf(&sb, ".%s", sg);
    mpz_clear(sig);
    free(h);
    free(c);
    free(sg);
    return strbuf_steal(&sb);
}

static oauth_jwks *parse_jwks(const char *json, int expect)
{
    oauth_jwks *k = NULL;
    struct echo_err err = {0};
    int s = oauth_jwks_parse(json, strlen(json), &k, &err);
    if (s != expect) fail_msg("jwks %s: got %s (%s)", json, oauth_status_name(s), err.msg);
    return k;
}

static oauth_jwks *both_keys(void)
{
    char *json = malloc(strlen(keys[0].jwk) + strlen(keys[1].jwk) + 64);
    sprintf(json, "{\"keys\":[{\"kty\":\"EC\",\"kid\":\"ec\"},%s,%s]}", keys[0].jwk, keys[1].jwk);
    oauth_jwks *k = parse_jwks(json, OAUTH_OK);
    free(json);
    return k;
}

static void test_kid_lookup(void **state)
{
    (void)state;
    oauth_jwks *k = both_keys();
    assert_int_equal(oauth_jwks_count(k), 2);
    assert_true(oauth_jwks_has(k, "key-two"));
    assert_false(oauth_jwks_has(k, "ec"));
    /* Without a kid and with two keys: which one is unknown. */
    assert_false(oauth_jwks_has(k, NULL));
    const char *claims = "{\"sub\":\"1\"}";
    char *t1 = sign_jwt(&keys[0], "{\"alg\":\"RS256\",\"kid\":\"key-one\"}", claims);
    char *t2 = sign_jwt(&keys[1], "{\"alg\":\"RS256\",\"kid\":\"key-two\"}", claims);
    char *wrong = sign_jwt(&keys[0], "{\"alg\":\"RS256\",\"kid\":\"key-two\"}", claims);
    char *unknown = sign_jwt(&keys[0], "{\"alg\":\"RS256\",\"kid\":\"key-three\"}", claims);
    char *nokid = sign_jwt(&keys[0], "{\"alg\":\"RS256\"}", claims);
    assert_int_equal(verify_text(t1, k), OAUTH_OK);
    assert_int_equal(verify_text(t2, k), OAUTH_OK);
    assert_int_equal(verify_text(wrong, k), OAUTH_ERR_SIGNATURE);
    assert_int_equal(verify_text(unknown, k), OAUTH_ERR_UNKNOWN_KEY);
    assert_int_equal(verify_text(nokid, k), OAUTH_ERR_UNKNOWN_KEY);
    free(t1);
    free(t2);
    free(wrong);
    free(unknown);
    free(nokid);
    oauth_jwks_free(k);
}

static void test_algorithms_refused(void **state)
{
    (void)state;
    oauth_jwks *k = both_keys();
    const char *claims = "{\"sub\":\"1\"}";
    const char *headers[] = {"{\"alg\":\"none\"}",
                             "{\"alg\":\"HS256\",\"kid\":\"key-one\"}",
                             "{\"alg\":\"RS512\",\"kid\":\"key-one\"}",
                             "{\"alg\":\"rs256\"}",
                             "{\"kid\":\"key-one\"}",
                             "{\"alg\":null}",
                             "{\"alg\":[\"RS256\"]}"};
    for (size_t i = 0; i < sizeof(headers) / sizeof(headers[0]); i++) {
        char *t = sign_jwt(&keys[0], headers[i], claims);
        int s = verify_text(t, k);
        if (s != OAUTH_ERR_ALG) fail_msg("%s: %s", headers[i], oauth_status_name(s));
        free(t);
    }
    /* An unsigned token: alg none with an empty signature. */
    char *h = b64("{\"alg\":\"none\"}", 14), *c = b64(claims, strlen(claims));
    char tok[256];
    snprintf(tok, sizeof(tok), "%s.%s.", h, c);
    assert_int_equal(verify_text(tok, k), OAUTH_ERR_ALG);
    /* RS256 with an empty signature. */
    free(h);
    h = b64("{\"alg\":\"RS256\"}", 15);
    snprintf(tok, sizeof(tok), "%s.%s.", h, c);
    assert_int_equal(verify_text(tok, k), OAUTH_ERR_MALFORMED);
    free(h);
    free(c);
    /* crit extensions and a duplicated alg are not understood. */
    char *t = sign_jwt(&keys[0], "{\"alg\":\"RS256\",\"kid\":\"key-one\",\"crit\":[\"x\"],\"x\":1}",
                       claims);
    assert_int_equal(verify_text(t, k), OAUTH_ERR_MALFORMED);
    free(t);
    t = sign_jwt(&keys[0], "{\"alg\":\"none\",\"alg\":\"RS256\",\"kid\":\"key-one\"}", claims);
    assert_int_not_equal(verify_text(t, k), OAUTH_OK);
    free(t);
    oauth_jwks_free(k);
}

static void test_malformed_tokens(void **state)
{
    (void)state;
    oauth_jwks *k = both_keys();
    char *good = sign_jwt(&keys[0], "{\"alg\":\"RS256\",\"kid\":\"key-one\"}", "{\"a\":1}");
    const char *dot = strchr(good, '.');
    char buf[4096];
    const char *bad[] = {"",
                         ".",
                         "..",
                         "...",
                         "a.b",
                         "a.b.c.d",
                         "eyJhbGciOiJSUzI1NiJ9..x",
                         "e30.e30.AAAA",
                         "!!!.e30.AAAA"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int s = verify_text(bad[i], k);
        if (s == OAUTH_OK) fail_msg("'%s' verified", bad[i]);
    }
    assert_int_equal(verify_text(NULL, k), OAUTH_ERR_MALFORMED);
    /* Payloads that are not objects. */
    const char *payloads[] = {"[1]", "\"x\"", "null", "{", "{\"a\":1}x"};
    for (size_t i = 0; i < sizeof(payloads) / sizeof(payloads[0]); i++) {
        char *p = b64(payloads[i], strlen(payloads[i]));
        snprintf(buf, sizeof(buf), "%.*s.%s.%s", (int)(dot - good), good, p,
                 strrchr(good, '.') + 1);
        assert_int_equal(verify_text(buf, k), OAUTH_ERR_MALFORMED);
        free(p);
    }
    /* Padding or standard-alphabet characters are not base64url. */
    snprintf(buf, sizeof(buf), "%s=", good);
    assert_int_equal(verify_text(buf, k), OAUTH_ERR_MALFORMED);
    /* Too long. */
    char *huge = malloc(OAUTH_JWT_MAX + 100);
    memset(huge, 'A', OAUTH_JWT_MAX + 99);
    huge[OAUTH_JWT_MAX + 99] = 0;
    huge[10] = '.';
    huge[20] = '.';
    assert_int_equal(verify_text(huge, k), OAUTH_ERR_MALFORMED);
    free(huge);
    free(good);
    oauth_jwks_free(k);
}

static void test_jwks_shapes(void **state)
{
    (void)state;
    const char *bad[] = {"",
                         "null",
                         "[]",
                         "{}",
                         "{\"keys\":{}}",
                         "{\"keys\":[]}",
                         "{\"keys\":[1,\"x\",null]}",
                         "{\"keys\":[{\"kty\":\"oct\",\"k\":\"AAAA\"}]}",
                         "{\"keys\":[{\"kty\":\"RSA\",\"n\":\"AQAB\",\"e\":\"AQAB\"}]}",
                         "{\"keys\":[{\"kty\":\"RSA\"}]}",
                         "{\"keys\":[{\"kty\":\"RSA\",\"n\":1,\"e\":2}]}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        oauth_jwks_free(parse_jwks(bad[i], OAUTH_ERR_MALFORMED));

    /* The same good key with one property changed. */
    const char *n = strstr(keys[0].jwk, "\"n\":\"") + 5;
    size_t nlen = strcspn(n, "\"");
    char json[2048];
#define KEY(fmt, ...) snprintf(json, sizeof(json), "{\"keys\":[{" fmt "}]}", __VA_ARGS__)
    KEY("\"kty\":\"RSA\",\"kid\":\"a\",\"n\":\"%.*s\",\"e\":\"AQAB\"", (int)nlen, n);
    oauth_jwks_free(parse_jwks(json, OAUTH_OK));
    KEY("\"kty\":\"RSA\",\"use\":\"enc\",\"n\":\"%.*s\",\"e\":\"AQAB\"", (int)nlen, n);
    oauth_jwks_free(parse_jwks(json, OAUTH_ERR_MALFORMED));
    KEY("\"kty\":\"RSA\",\"alg\":\"RS384\",\"n\":\"%.*s\",\"e\":\"AQAB\"", (int)nlen, n);
    oauth_jwks_free(parse_jwks(json, OAUTH_ERR_MALFORMED));
    KEY("\"kty\":\"RSA\",\"kid\":7,\"n\":\"%.*s\",\"e\":\"AQAB\"", (int)nlen, n);
    oauth_jwks_free(parse_jwks(json, OAUTH_ERR_MALFORMED));
    /* e = 1, even e, e with padding, a too-long e. */
    const char *es[] = {"AQ", "AAAC", "AQAB=", "AQABAQABAQABAQAB", "", "AQ+B"};
    for (size_t i = 0; i < sizeof(es) / sizeof(es[0]); i++) {
        KEY("\"kty\":\"RSA\",\"n\":\"%.*s\",\"e\":\"%s\"", (int)nlen, n, es[i]);
        oauth_jwks_free(parse_jwks(json, OAUTH_ERR_MALFORMED));
    }
    /* A 1024-bit modulus (the first 128 bytes of n): too small. */
    KEY("\"kty\":\"RSA\",\"n\":\"%.*s\",\"e\":\"AQAB\"", 171, n);
    oauth_jwks_free(parse_jwks(json, OAUTH_ERR_MALFORMED));
    /* Duplicate keys in an object are refused. */
    KEY("\"kty\":\"RSA\",\"kty\":\"RSA\",\"n\":\"%.*s\",\"e\":\"AQAB\"", (int)nlen, n);
    oauth_jwks_free(parse_jwks(json, OAUTH_ERR_MALFORMED));
#undef KEY
    /* Many keys: only the first OAUTH_JWKS_MAX_KEYS are kept. */
    struct strbuf sb;
    strbuf_init(&sb);
    strbuf_puts(&sb, "{\"keys\":[");
    for (int i = 0; i < OAUTH_JWKS_MAX_KEYS + 5; i++)
        strbuf_printf(&sb, "%s%s", i ? "," : "", keys[0].jwk);
    strbuf_puts(&sb, "]}");
    oauth_jwks *k = parse_jwks(sb.data, OAUTH_OK);
    assert_int_equal(oauth_jwks_count(k), OAUTH_JWKS_MAX_KEYS);
    oauth_jwks_free(k);
    strbuf_deinit(&sb);
}

/* ---- claims ----------------------------------------------------------------- */

#define NOW 1760000000

static int check(const char *claims_json, struct oauth_identity *id)
{
    json_t *claims = json_loads(claims_json, 0, NULL);
    if (!claims) fail_msg("test JSON broken: %s", claims_json);
    struct oauth_expect x = {.issuer = "https://accounts.example",
                             .client_id = "client-1",
                             .nonce = "n-123",
                             .now = NOW,
                             .skew = OAUTH_CLOCK_SKEW};
    struct oauth_identity tmp;
    int s = oauth_claims_check(claims, &x, id ? id : &tmp, NULL);
    if (!id) oauth_identity_deinit(&tmp);
    json_decref(claims);
    return s;
}

/* A claims object of a good token, with `extra` replacing or adding members
 * (a JSON object text; null values remove the member). */
static int check_with(const char *extra)
{
    json_t *base = json_pack(
        "{s:s,s:s,s:s,s:i,s:i,s:s,s:s,s:s,s:b,s:s}", "iss", "https://accounts.example", "aud",
        "client-1", "azp", "client-1", "iat", NOW - 10, "exp", NOW + 3600, "nonce", "n-123", "sub",
        "110169484474386276334", "email", "ada@example.com", "email_verified", 1, "name", "Ada");
    json_t *e = json_loads(extra, 0, NULL);
    if (!e) fail_msg("test JSON broken: %s", extra);
    const char *key;
    json_t *v;
    json_object_foreach(e, key, v)
    {
        if (json_is_null(v))
            json_object_del(base, key);
        else
            json_object_set(base, key, v);
    }
    char *text = json_dumps(base, 0);
    int s = check(text, NULL);
    free(text);
    json_decref(base);
    json_decref(e);
    return s;
}

static void test_claims(void **state)
{
    (void)state;
    struct oauth_identity id;
    assert_int_equal(check("{\"iss\":\"https://accounts.example\",\"aud\":\"client-1\","
                           "\"iat\":1760000000,\"exp\":1760003600,\"nonce\":\"n-123\","
                           "\"sub\":\"42\",\"email\":\"a@b.co\",\"email_verified\":true,"
                           "\"given_name\":\"Ada\"}",
                           &id),
                     OAUTH_OK);
    assert_string_equal(id.subject, "42");
    assert_string_equal(id.email, "a@b.co");
    assert_string_equal(id.name, "Ada");
    oauth_identity_deinit(&id);

    struct {
        const char *extra;
        int expect;
    } cases[] = {
        {"{}", OAUTH_OK},
        {"{\"iss\":\"accounts.example\"}", OAUTH_OK}, /* Google's bare host form */
        {"{\"iss\":\"https://accounts.example/\"}", OAUTH_ERR_CLAIMS},
        {"{\"iss\":\"https://evil.example\"}", OAUTH_ERR_CLAIMS},
        {"{\"iss\":null}", OAUTH_ERR_CLAIMS},
        {"{\"iss\":5}", OAUTH_ERR_CLAIMS},
        {"{\"aud\":\"client-2\"}", OAUTH_ERR_CLAIMS},
        {"{\"aud\":[\"client-1\"]}", OAUTH_OK},
        {"{\"aud\":[\"client-1\",\"other\"]}", OAUTH_OK}, /* azp says it is ours */
        {"{\"aud\":[\"client-1\",\"other\"],\"azp\":null}", OAUTH_ERR_CLAIMS},
        {"{\"aud\":[\"other\"],\"azp\":\"client-1\"}", OAUTH_ERR_CLAIMS},
        {"{\"aud\":[]}", OAUTH_ERR_CLAIMS},
        {"{\"aud\":[\"client-1\",3]}", OAUTH_ERR_CLAIMS},
        {"{\"aud\":null}", OAUTH_ERR_CLAIMS},
        {"{\"azp\":\"other\"}", OAUTH_ERR_CLAIMS},
        {"{\"azp\":1}", OAUTH_ERR_CLAIMS},
        {"{\"exp\":1759999000}", OAUTH_ERR_EXPIRED},
        {"{\"exp\":1760000000}", OAUTH_OK}, /* within the skew */
        {"{\"exp\":1759999880}", OAUTH_ERR_EXPIRED},
        {"{\"exp\":\"1760003600\"}", OAUTH_ERR_CLAIMS},
        {"{\"exp\":null}", OAUTH_ERR_CLAIMS},
        {"{\"exp\":1e300}", OAUTH_ERR_CLAIMS},
        {"{\"exp\":-5}", OAUTH_ERR_CLAIMS},
        {"{\"exp\":1760003600.5}", OAUTH_OK},
        {"{\"iat\":1760000500}", OAUTH_ERR_EXPIRED},
        {"{\"iat\":1760000100}", OAUTH_OK},
        {"{\"iat\":null}", OAUTH_ERR_CLAIMS},
        {"{\"nonce\":\"n-124\"}", OAUTH_ERR_CLAIMS},
        {"{\"nonce\":\"n-12\"}", OAUTH_ERR_CLAIMS},
        {"{\"nonce\":null}", OAUTH_ERR_CLAIMS},
        {"{\"nonce\":1}", OAUTH_ERR_CLAIMS},
        {"{\"sub\":null}", OAUTH_ERR_CLAIMS},
        {"{\"sub\":\"\"}", OAUTH_ERR_CLAIMS},
        {"{\"sub\":\"a b\"}", OAUTH_ERR_CLAIMS},
        {"{\"sub\":\"\\u00e9\"}", OAUTH_ERR_CLAIMS},
        {"{\"sub\":42}", OAUTH_ERR_CLAIMS},
        {"{\"email\":null}", OAUTH_ERR_UNVERIFIED},
        {"{\"email\":\"\"}", OAUTH_ERR_UNVERIFIED},
        {"{\"email_verified\":false}", OAUTH_ERR_UNVERIFIED},
        {"{\"email_verified\":null}", OAUTH_ERR_UNVERIFIED},
        {"{\"email_verified\":\"false\"}", OAUTH_ERR_UNVERIFIED},
        {"{\"email_verified\":1}", OAUTH_ERR_UNVERIFIED},
        {"{\"email_verified\":\"true\"}", OAUTH_OK},
        {"{\"name\":null}", OAUTH_OK},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int s = check_with(cases[i].extra);
        if (s != cases[i].expect)
            fail_msg("%s: got %s, want %s", cases[i].extra, oauth_status_name(s),
                     oauth_status_name(cases[i].expect));
    }
    /* A 256-character sub is too long, 255 is fine. */
    char extra[400];
    snprintf(extra, sizeof(extra), "{\"sub\":\"%0256d\"}", 0);
    assert_int_equal(check_with(extra), OAUTH_ERR_CLAIMS);
    snprintf(extra, sizeof(extra), "{\"sub\":\"%0255d\"}", 0);
    assert_int_equal(check_with(extra), OAUTH_OK);
    json_t *arr = json_array();
    struct oauth_expect x = {.issuer = "i", .client_id = "c", .nonce = "n", .now = NOW};
    assert_int_equal(oauth_claims_check(arr, &x, &id, NULL), OAUTH_ERR_MALFORMED);
    json_decref(arr);
}

/* ---- the token endpoint's answer ------------------------------------------ */

static void test_token_response(void **state)
{
    (void)state;
    char *id = NULL, *access = NULL;
    struct echo_err err = {0};
    const char *ok = "{\"access_token\":\"ya29\",\"token_type\":\"Bearer\",\"id_token\":\"a.b.c\"}";
    assert_int_equal(oauth_token_response_parse(ok, strlen(ok), &id, &access, NULL), OAUTH_OK);
    assert_string_equal(id, "a.b.c");
    assert_string_equal(access, "ya29");
    free(id);
    free(access);
    const char *denied = "{\"error\":\"invalid_grant\",\"error_description\":\"Bad Request\"}";
    assert_int_equal(oauth_token_response_parse(denied, strlen(denied), &id, &access, &err),
                     OAUTH_ERR_DENIED);
    assert_non_null(strstr(err.msg, "invalid_grant"));
    assert_null(id);
    const char *bad[] = {"",
                         "{",
                         "[]",
                         "\"x\"",
                         "{\"access_token\":\"x\"}",
                         "{\"id_token\":\"\"}",
                         "{\"id_token\":5}",
                         "{\"id_token\":\"a\",\"token_type\":\"mac\"}",
                         "{\"id_token\":\"a\",\"access_token\":7}",
                         "{\"id_token\":\"a\",\"id_token\":\"b\"}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int s = oauth_token_response_parse(bad[i], strlen(bad[i]), &id, &access, NULL);
        if (s != OAUTH_ERR_MALFORMED) fail_msg("'%s': %s", bad[i], oauth_status_name(s));
        assert_null(id);
        assert_null(access);
    }
    /* A NUL inside the JSON text is refused by jansson. */
    const char nul[] = "{\"id_token\":\"a\\u0000b\"}";
    assert_int_equal(oauth_token_response_parse(nul, sizeof(nul) - 1, &id, &access, NULL),
                     OAUTH_ERR_MALFORMED);
}

/* ---- base64url, URLs, usernames ---------------------------------------------- */

static void test_b64url(void **state)
{
    (void)state;
    unsigned char *out;
    size_t n;
    assert_int_equal(oauth_b64url_decode("QQ", 2, &out, &n), OAUTH_OK);
    assert_int_equal(n, 1);
    assert_int_equal(out[0], 'A');
    free(out);
    assert_int_equal(oauth_b64url_decode("", 0, &out, &n), OAUTH_OK);
    assert_int_equal(n, 0);
    free(out);
    assert_int_equal(oauth_b64url_decode("-_8", 3, &out, &n), OAUTH_OK);
    assert_int_equal(n, 2);
    assert_int_equal(out[0], 0xfb);
    assert_int_equal(out[1], 0xff);
    free(out);
    const char *bad[] = {
        "QQ==",  "Q",    "QR",       "+/8",        "Q Q", "QQ\n",
        "QUJD=", "Q===", "\xc3\xa9", "\xd1UJDRxom" /* libsodium alone takes this (fuzz_jwt) */};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (oauth_b64url_decode(bad[i], strlen(bad[i]), &out, &n) != OAUTH_ERR_MALFORMED)
            fail_msg("'%s' decoded", bad[i]);
        assert_null(out);
    }
    /* Round trip of every length up to 40. */
    unsigned char data[40];
    for (size_t len = 0; len <= sizeof(data); len++) {
        randombytes_buf(data, len);
        struct strbuf sb;
        strbuf_init(&sb);
        oauth_b64url_encode(&sb, data, len);
        assert_null(strchr(strbuf_cstr(&sb), '='));
        assert_int_equal(oauth_b64url_decode(strbuf_cstr(&sb), sb.len, &out, &n), OAUTH_OK);
        assert_int_equal(n, len);
        assert_memory_equal(out, data, len);
        free(out);
        strbuf_deinit(&sb);
    }
}

static void test_url_rules(void **state)
{
    (void)state;
    const char *good[] = {"https://oauth2.googleapis.com/token",
                          "https://a",
                          "http://127.0.0.1:8080/token",
                          "http://127.0.0.1/x",
                          "http://localhost:1/",
                          "http://LOCALHOST/x",
                          "http://[::1]:5000/jwks",
                          "http://127.0.0.1"};
    const char *bad[] = {NULL,
                         "",
                         "https://",
                         "https:///x",
                         "http://example.com/token",
                         "http://127.0.0.1.evil.example/",
                         "http://localhost.evil/",
                         "http://127.0.0.2/",
                         "http://[::2]/",
                         "ftp://127.0.0.1/",
                         "file:///etc/passwd",
                         "https://a b",
                         "https://a\nb",
                         "HTTPS://example.com",
                         "//127.0.0.1/",
                         "http://user@127.0.0.1.evil/",
                         "https://\xc3\xa9.example"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        if (!oauth_url_allowed(good[i])) fail_msg("'%s' should be allowed", good[i]);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (oauth_url_allowed(bad[i])) fail_msg("'%s' should be refused", bad[i] ? bad[i] : "NULL");

    struct strbuf sb;
    strbuf_init(&sb);
    http_pct_encode(&sb, "a b&c=d/é~_.-", NULL);
    assert_string_equal(strbuf_cstr(&sb), "a%20b%26c%3Dd%2F%C3%A9~_.-");
    strbuf_deinit(&sb);
    strbuf_init(&sb);
    http_pct_encode(&sb, "/chat?x=1", "/");
    assert_string_equal(strbuf_cstr(&sb), "/chat%3Fx%3D1");
    strbuf_deinit(&sb);

    struct oauth_http_request rq = {.url = "http://example.com/", .timeout_ms = 100};
    struct oauth_http_result r;
    struct echo_err err = {0};
    assert_int_equal(oauth_http_call(&rq, &r, &err), OAUTH_ERR_HTTP);
    assert_non_null(strstr(err.msg, "only https"));
    oauth_http_result_deinit(&r);
}

static void test_usernames(void **state)
{
    (void)state;
    struct {
        const char *name, *email, *want;
    } cases[] = {
        {"Ada Lovelace", "ada@example.com", "Ada_Lovelace"},
        {"Émile Zola-Müller", NULL, "Emile_Zola_Muller"},
        {"  --Grace--  ", NULL, "Grace"},
        {"☃", "snow.man+x@example.com", "snow_man_x"},
        {NULL, "jo@example.com", "user"},
        {"李", "li@example.com", "user"},
        {"", NULL, "user"},
        {"Ab", "ab@example.com", "user"},
        {"A very long name that goes on and on forever", NULL, "A_very_long_name_that_go"},
        {"x\xff\xfe y", "bad@example.com", "bad"}, /* not UTF-8: utf8proc refuses it */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char out[DB_USERNAME_MAX + 1];
        oauth_username_from(cases[i].name, cases[i].email, out, sizeof(out));
        if (strcmp(out, cases[i].want) != 0)
            fail_msg("'%s': got '%s', want '%s'", cases[i].name ? cases[i].name : "NULL", out,
                     cases[i].want);
        if (!db_username_valid(out)) fail_msg("'%s' is not a valid username", out);
        assert_true(strlen(out) + 8 <= DB_USERNAME_MAX);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc7515_vector),     cmocka_unit_test(test_kid_lookup),
        cmocka_unit_test(test_algorithms_refused), cmocka_unit_test(test_malformed_tokens),
        cmocka_unit_test(test_jwks_shapes),        cmocka_unit_test(test_claims),
        cmocka_unit_test(test_token_response),     cmocka_unit_test(test_b64url),
        cmocka_unit_test(test_url_rules),          cmocka_unit_test(test_usernames),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
