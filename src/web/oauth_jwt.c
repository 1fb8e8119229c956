/*
 * oauth_jwt.c - the ID token of OpenID Connect, checked the way the spec
 * asks (Core 3.1.3.7): a compact JWS whose algorithm is fixed by us to
 * RS256 (never taken from the token: "none" and HS256 are refused before any
 * key is looked at), a signature checked by nettle/hogweed's RSA with the
 * provider's key of the token's kid, then the claims.
 *
 * Keys come as JWKs: base64url big-endian "n" and "e", turned into GMP
 * integers by nettle's own helper; no big-number arithmetic is written here.
 * base64url is libsodium's strict decoder (no padding, canonical trailing
 * bits). JSON is jansson's, with duplicate keys refused so that the parser
 * and a reader cannot disagree about which "alg" or "aud" counts.
 *
 * Every function is pure (input bytes in, values out) and thread-safe.
 */
#include <stdlib.h>
#include <string.h>

#include <gmp.h>
#include <nettle/bignum.h>
#include <nettle/rsa.h>
#include <nettle/sha2.h>
#include <sodium.h>

#include "web/oauth.h"

const char *oauth_status_name(int status)
{
    switch (status) {
    case OAUTH_OK:
        return "ok";
    case OAUTH_ERR_MALFORMED:
        return "malformed";
    case OAUTH_ERR_ALG:
        return "algorithm";
    case OAUTH_ERR_UNKNOWN_KEY:
        return "unknown key";
    case OAUTH_ERR_SIGNATURE:
        return "signature";
    case OAUTH_ERR_CLAIMS:
        return "claims";
    case OAUTH_ERR_EXPIRED:
        return "expired";
    case OAUTH_ERR_UNVERIFIED:
        return "unverified email";
    case OAUTH_ERR_HTTP:
        return "http";
    case OAUTH_ERR_TOO_LARGE:
        return "too large";
    case OAUTH_ERR_DENIED:
        return "denied";
    default:
        return "unknown";
    }
}

/* ---- base64url ------------------------------------------------------------ */

int oauth_b64url_decode(const char *s, size_t len, unsigned char **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    /* A remainder of one character cannot encode a byte. */
    if (len % 4 == 1) return OAUTH_ERR_MALFORMED;
    /* The alphabet is checked here first: libsodium's constant-time decoder
     * maps some bytes >= 0x80 to digits instead of refusing them (found by
     * fuzz_jwt.c), and a token must have exactly one spelling. */
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return OAUTH_ERR_MALFORMED;
    }
    size_t max = len / 4 * 3 + 3;
    unsigned char *buf = xmalloc(max + 1);
    size_t n = 0;
    const char *end = NULL;
    if (sodium_base642bin(buf, max, s, len, NULL, &n, &end,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
        end != s + len) {
        free(buf);
        return OAUTH_ERR_MALFORMED;
    }
    buf[n] = 0;
    *out = buf;
    *out_len = n;
    return OAUTH_OK;
}

void oauth_b64url_encode(struct strbuf *sb, const void *data, size_t n)
{
    size_t cap = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    char *tmp = xmalloc(cap);
    sodium_bin2base64(tmp, cap, data, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    strbuf_puts(sb, tmp);
    free(tmp);
}

/* ---- JWK sets ------------------------------------------------------------- */

struct jwk {
    char *kid;
    struct rsa_public_key key;
};

struct oauth_jwks {
    struct jwk *keys;
    size_t n;
};

void oauth_jwks_free(oauth_jwks *k)
{
    if (!k) return;
    for (size_t i = 0; i < k->n; i++) {
        free(k->keys[i].kid);
        rsa_public_key_clear(&k->keys[i].key);
    }
    free(k->keys);
    free(k);
}

size_t oauth_jwks_count(const oauth_jwks *k)
{
    return k ? k->n : 0;
}

static const struct jwk *jwks_find(const oauth_jwks *k, const char *kid)
{
    if (!k) return NULL;
    if (!kid) return k->n == 1 ? &k->keys[0] : NULL;
    for (size_t i = 0; i < k->n; i++)
        if (k->keys[i].kid && !strcmp(k->keys[i].kid, kid)) return &k->keys[i];
    return NULL;
}

bool oauth_jwks_has(const oauth_jwks *k, const char *kid)
{
    return jwks_find(k, kid) != NULL;
}

static const char *str_member(const json_t *o, const char *name)
{
    return json_string_value(json_object_get(o, name));
}

/* Builds an RSA public key from a JWK's n and e; false (key cleared) for
 * anything outside the accepted sizes. */
static bool rsa_from_jwk(const json_t *jwk, struct rsa_public_key *key, const char **why)
{
    const char *n64 = str_member(jwk, "n"), *e64 = str_member(jwk, "e");
    unsigned char *n = NULL, *e = NULL;
    size_t nlen = 0, elen = 0;
    bool ok = false;
    rsa_public_key_init(key);
    if (!n64 || !e64 || oauth_b64url_decode(n64, strlen(n64), &n, &nlen) != OAUTH_OK ||
        oauth_b64url_decode(e64, strlen(e64), &e, &elen) != OAUTH_OK) {
        *why = "n or e is missing or not base64url";
        goto out;
    }
    if (nlen == 0 || nlen > OAUTH_RSA_MAX_BITS / 8 + 1 || elen == 0 || elen > 8) {
        *why = "n or e has an unsupported size";
        goto out;
    }
    nettle_mpz_set_str_256_u(key->n, nlen, n);
    nettle_mpz_set_str_256_u(key->e, elen, e);
    size_t bits = mpz_sizeinbase(key->n, 2);
    if (bits < OAUTH_RSA_MIN_BITS || bits > OAUTH_RSA_MAX_BITS) {
        *why = "the modulus size is outside 2048..8192 bits";
        goto out;
    }
    /* A public exponent is odd and at least 3 (e = 1 would make every
     * "signature" its own message). */
    if (mpz_cmp_ui(key->e, 3) < 0 || mpz_even_p(key->e) || mpz_even_p(key->n)) {
        *why = "the exponent or modulus is not a valid RSA value";
        goto out;
    }
    if (!rsa_public_key_prepare(key)) {
        *why = "nettle refused the key";
        goto out;
    }
    ok = true;
out:
    free(n);
    free(e);
    if (!ok) {
        rsa_public_key_clear(key);
        rsa_public_key_init(key);
    }
    return ok;
}

int oauth_jwks_parse(const char *json, size_t len, oauth_jwks **out, struct echo_err *err)
{
    *out = NULL;
    json_error_t jerr;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        echo_err_set(err, "the key set is not JSON: %s (line %d)", jerr.text, jerr.line);
        return OAUTH_ERR_MALFORMED;
    }
    json_t *keys = json_object_get(root, "keys");
    if (!json_is_array(keys)) {
        echo_err_set(err, "the key set has no \"keys\" array");
        json_decref(root);
        return OAUTH_ERR_MALFORMED;
    }
    oauth_jwks *k = xcalloc(1, sizeof(*k));
    size_t cap = json_array_size(keys);
    if (cap > OAUTH_JWKS_MAX_KEYS) cap = OAUTH_JWKS_MAX_KEYS;
    k->keys = xcalloc(cap ? cap : 1, sizeof(*k->keys));
    size_t i, skipped = 0;
    json_t *jwk;
    const char *why = "no RSA signing key";
    json_array_foreach(keys, i, jwk)
    {
        if (k->n == cap) break;
        const char *kty = str_member(jwk, "kty"), *use = str_member(jwk, "use");
        const char *alg = str_member(jwk, "alg"), *kid = str_member(jwk, "kid");
        if (!json_is_object(jwk) || !kty || strcmp(kty, "RSA") != 0 ||
            (use && strcmp(use, "sig") != 0) || (alg && strcmp(alg, "RS256") != 0) ||
            (json_object_get(jwk, "kid") && !kid)) {
            skipped++;
            continue;
        }
        struct jwk *slot = &k->keys[k->n];
        if (!rsa_from_jwk(jwk, &slot->key, &why)) {
            rsa_public_key_clear(&slot->key);
            skipped++;
            continue;
        }
        slot->kid = kid ? xstrdup(kid) : NULL;
        k->n++;
    }
    json_decref(root);
    if (k->n == 0) {
        echo_err_set(err, "the key set has no usable RS256 key (%zu skipped; last reason: %s)",
                     skipped, why);
        oauth_jwks_free(k);
        return OAUTH_ERR_MALFORMED;
    }
    *out = k;
    return OAUTH_OK;
}

/* ---- JWTs ------------------------------------------------------------------ */

void oauth_jwt_deinit(struct oauth_jwt *t)
{
    if (!t) return;
    json_decref(t->header);
    json_decref(t->claims);
    free(t->kid);
    free(t->signing_input);
    free(t->sig);
    memset(t, 0, sizeof(*t));
}

/* Decodes one base64url part into a JSON object. */
static json_t *decode_json_part(const char *s, size_t len)
{
    unsigned char *raw = NULL;
    size_t n = 0;
    if (oauth_b64url_decode(s, len, &raw, &n) != OAUTH_OK) return NULL;
    json_t *j = json_loadb((const char *)raw, n, JSON_REJECT_DUPLICATES, NULL);
    free(raw);
    if (j && !json_is_object(j)) {
        json_decref(j);
        return NULL;
    }
    return j;
}

int oauth_jwt_parse(const char *token, struct oauth_jwt *out, struct echo_err *err)
{
    memset(out, 0, sizeof(*out));
    size_t len = token ? strnlen(token, OAUTH_JWT_MAX + 1) : 0;
    if (len == 0 || len > OAUTH_JWT_MAX) {
        echo_err_set(err, "the ID token is empty or longer than %d characters", OAUTH_JWT_MAX);
        return OAUTH_ERR_MALFORMED;
    }
    const char *dot1 = memchr(token, '.', len);
    const char *dot2 = dot1 ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token)) : NULL;
    if (!dot1 || !dot2 || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token))) {
        echo_err_set(err, "the ID token is not three dot-separated parts (JWE is not supported)");
        return OAUTH_ERR_MALFORMED;
    }
    out->header = decode_json_part(token, (size_t)(dot1 - token));
    if (!out->header) {
        echo_err_set(err, "the ID token's header is not a base64url JSON object");
        goto malformed;
    }
    const char *alg = str_member(out->header, "alg");
    if (!alg || strcmp(alg, "RS256") != 0) {
        echo_err_set(err, "the ID token's algorithm is not RS256");
        oauth_jwt_deinit(out);
        return OAUTH_ERR_ALG;
    }
    if (json_object_get(out->header, "crit")) {
        echo_err_set(err, "the ID token has critical header extensions");
        goto malformed;
    }
    json_t *kid = json_object_get(out->header, "kid");
    if (kid && !json_is_string(kid)) {
        echo_err_set(err, "the ID token's kid is not a string");
        goto malformed;
    }
    if (kid) out->kid = xstrdup(json_string_value(kid));
    out->claims = decode_json_part(dot1 + 1, (size_t)(dot2 - dot1 - 1));
    if (!out->claims) {
        echo_err_set(err, "the ID token's payload is not a base64url JSON object");
        goto malformed;
    }
    if (oauth_b64url_decode(dot2 + 1, len - (size_t)(dot2 + 1 - token), &out->sig, &out->sig_len) !=
            OAUTH_OK ||
        out->sig_len == 0) {
        echo_err_set(err, "the ID token's signature is not base64url");
        goto malformed;
    }
    out->signing_input = xstrndup(token, (size_t)(dot2 - token));
    return OAUTH_OK;
malformed:
    oauth_jwt_deinit(out);
    return OAUTH_ERR_MALFORMED;
}

int oauth_jwt_verify(const struct oauth_jwt *t, const oauth_jwks *keys, struct echo_err *err)
{
    const struct jwk *k = jwks_find(keys, t->kid);
    if (!k) {
        echo_err_set(err, "no provider key has the ID token's kid");
        return OAUTH_ERR_UNKNOWN_KEY;
    }
    /* RFC 8017 8.2.2: the signature is exactly as long as the modulus. */
    if (t->sig_len != k->key.size) {
        echo_err_set(err, "the signature is %zu bytes for a %zu-byte key", t->sig_len, k->key.size);
        return OAUTH_ERR_SIGNATURE;
    }
    uint8_t digest[SHA256_DIGEST_SIZE];
    struct sha256_ctx ctx;
    sha256_init(&ctx);
    sha256_update(&ctx, strlen(t->signing_input), (const uint8_t *)t->signing_input);
    sha256_digest(&ctx, sizeof(digest), digest);
    mpz_t s;
    mpz_init(s);
    nettle_mpz_set_str_256_u(s, t->sig_len, t->sig);
    int ok = rsa_sha256_verify_digest(&k->key, digest, s);
    mpz_clear(s);
    if (!ok) {
        echo_err_set(err, "the ID token's signature does not verify");
        return OAUTH_ERR_SIGNATURE;
    }
    return OAUTH_OK;
}

/* ---- claims ----------------------------------------------------------------- */

void oauth_identity_deinit(struct oauth_identity *id)
{
    if (!id) return;
    free(id->subject);
    free(id->email);
    free(id->name);
    memset(id, 0, sizeof(*id));
}

static bool issuer_ok(const char *iss, const char *expected)
{
    if (!iss || !expected) return false;
    if (!strcmp(iss, expected)) return true;
    /* Google documents both "https://accounts.google.com" and the bare host. */
    return str_has_prefix(expected, "https://") && !strcmp(iss, expected + strlen("https://"));
}

static bool audience_ok(const json_t *claims, const char *client_id)
{
    const json_t *aud = json_object_get(claims, "aud");
    const char *azp = str_member(claims, "azp");
    if (json_object_get(claims, "azp") && !azp) return false;
    if (azp && strcmp(azp, client_id) != 0) return false;
    if (json_is_string(aud)) return !strcmp(json_string_value(aud), client_id);
    if (!json_is_array(aud) || json_array_size(aud) == 0) return false;
    bool found = false;
    size_t i;
    json_t *v;
    json_array_foreach(aud, i, v)
    {
        if (!json_is_string(v)) return false;
        if (!strcmp(json_string_value(v), client_id)) found = true;
    }
    /* Several audiences: the token must say it was issued for us (azp). */
    if (json_array_size(aud) > 1 && !azp) return false;
    return found;
}

/* A NumericDate (RFC 7519 2): a JSON number of seconds. */
static bool numeric_date(const json_t *claims, const char *name, int64_t *out)
{
    const json_t *v = json_object_get(claims, name);
    if (!json_is_number(v)) return false;
    double d = json_number_value(v);
    if (!(d >= 0 && d < 1e13)) return false;
    *out = (int64_t)d;
    return true;
}

static bool email_verified(const json_t *claims)
{
    const json_t *v = json_object_get(claims, "email_verified");
    if (json_is_true(v)) return true;
    /* Some providers send the boolean as a string. */
    return json_is_string(v) && !strcmp(json_string_value(v), "true");
}

static char *display_name(const json_t *claims)
{
    static const char *const keys[] = {"name", "given_name"};
    for (size_t i = 0; i < 2; i++) {
        const char *s = str_member(claims, keys[i]);
        if (s && s[0] && strlen(s) <= 256) return xstrdup(s);
    }
    return NULL;
}

int oauth_claims_check(const json_t *claims, const struct oauth_expect *x,
                       struct oauth_identity *out, struct echo_err *err)
{
    memset(out, 0, sizeof(*out));
    if (!json_is_object(claims)) {
        echo_err_set(err, "the claims are not an object");
        return OAUTH_ERR_MALFORMED;
    }
    if (!issuer_ok(str_member(claims, "iss"), x->issuer)) {
        echo_err_set(err, "the ID token's issuer is not %s", x->issuer);
        return OAUTH_ERR_CLAIMS;
    }
    if (!audience_ok(claims, x->client_id)) {
        echo_err_set(err, "the ID token was not issued for this client (aud/azp)");
        return OAUTH_ERR_CLAIMS;
    }
    int64_t exp = 0, iat = 0;
    if (!numeric_date(claims, "exp", &exp) || !numeric_date(claims, "iat", &iat)) {
        echo_err_set(err, "the ID token has no valid exp or iat");
        return OAUTH_ERR_CLAIMS;
    }
    if (x->now >= exp + x->skew) {
        echo_err_set(err, "the ID token expired %lld s ago", (long long)(x->now - exp));
        return OAUTH_ERR_EXPIRED;
    }
    if (iat > x->now + x->skew) {
        echo_err_set(err, "the ID token was issued %lld s in the future",
                     (long long)(iat - x->now));
        return OAUTH_ERR_EXPIRED;
    }
    const char *nonce = str_member(claims, "nonce");
    size_t nlen = nonce ? strlen(nonce) : 0;
    if (!x->nonce || !nonce || nlen != strlen(x->nonce) || !mem_equal_ct(nonce, x->nonce, nlen)) {
        echo_err_set(err, "the ID token's nonce is not the one of this sign-in");
        return OAUTH_ERR_CLAIMS;
    }
    const char *sub = str_member(claims, "sub");
    size_t slen = sub ? strlen(sub) : 0;
    if (slen == 0 || slen > 255) {
        echo_err_set(err, "the ID token has no valid sub");
        return OAUTH_ERR_CLAIMS;
    }
    for (size_t i = 0; i < slen; i++) {
        if ((unsigned char)sub[i] < 0x21 || (unsigned char)sub[i] > 0x7e) {
            echo_err_set(err, "the ID token's sub is not printable ASCII");
            return OAUTH_ERR_CLAIMS;
        }
    }
    const char *email = str_member(claims, "email");
    if (!email || !email[0] || strlen(email) > 254) {
        echo_err_set(err, "the ID token has no email (was the email scope granted?)");
        return OAUTH_ERR_UNVERIFIED;
    }
    if (!email_verified(claims)) {
        echo_err_set(err, "the provider has not verified the email address");
        return OAUTH_ERR_UNVERIFIED;
    }
    out->subject = xstrdup(sub);
    out->email = xstrdup(email);
    out->name = display_name(claims);
    return OAUTH_OK;
}

/* ---- the token endpoint's answer --------------------------------------------- */

int oauth_token_response_parse(const char *json, size_t len, char **id_token, char **access_token,
                               struct echo_err *err)
{
    *id_token = NULL;
    *access_token = NULL;
    json_error_t jerr;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root || !json_is_object(root)) {
        echo_err_set(err, "the token answer is not a JSON object%s%s", root ? "" : ": ",
                     root ? "" : jerr.text);
        json_decref(root);
        return OAUTH_ERR_MALFORMED;
    }
    int s = OAUTH_OK;
    const char *error = str_member(root, "error");
    const char *id = str_member(root, "id_token");
    const char *access = str_member(root, "access_token");
    const char *type = str_member(root, "token_type");
    if (error) {
        /* The code is the provider's fixed vocabulary; cut it short anyway. */
        echo_err_set(err, "the provider refused the code: %.64s", error);
        s = OAUTH_ERR_DENIED;
    } else if (!id || !id[0]) {
        echo_err_set(err, "the token answer has no id_token");
        s = OAUTH_ERR_MALFORMED;
    } else if ((json_object_get(root, "access_token") && !access) ||
               (type && str_casecmp(type, "Bearer") != 0)) {
        echo_err_set(err, "the token answer's access token is not a Bearer string");
        s = OAUTH_ERR_MALFORMED;
    } else {
        *id_token = xstrdup(id);
        *access_token = access ? xstrdup(access) : NULL;
    }
    json_decref(root);
    return s;
}
