/*
 * fuzz_jwt.c - the parsers of what an identity provider sends (oauth_jwt.c):
 * compact JWTs (then their RS256 check and their claims), JWK sets, the
 * token endpoint's JSON answer, base64url; plus the URL rule and username
 * maker of oauth_http.c / oauth.c. The first byte picks the parser, the rest
 * is its input.
 *
 * Invariants besides "no crash, no leak, no out-of-bounds": only the RFC
 * 7515 A.2 token itself may verify against the RFC's key (a fuzzer forging
 * RS256 would mean the check is broken); decoded base64url re-encodes to the
 * same text; a username made from anything is a valid username.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "db/db.h"
#include "web/oauth.h"

static const char rfc_jwks[] = "{\"keys\":[{\"kty\":\"RSA\",\"e\":\"AQAB\",\"n\":"
                               "\"ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9"
                               "k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-"
                               "pCgNMsD1W_YpRPEwOWvG6b32690r2jZ"
                               "47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-"
                               "UTo7WTBEMa2R2CapHg665xsmtdVMTBQ"
                               "Y4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_"
                               "h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54"
                               "h4FRWyuXpoQ\"}]}";
static const char rfc_signing_input[] =
    "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNv"
    "bS9pc19yb290Ijp0cnVlfQ";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static oauth_jwks *keys;
    if (!keys && oauth_jwks_parse(rfc_jwks, strlen(rfc_jwks), &keys, NULL) != OAUTH_OK) abort();
    if (size < 1) return 0;
    int which = data[0] & 3;
    const char *in = (const char *)data + 1;
    size_t len = size - 1;
    char *text = malloc(len + 1);
    memcpy(text, in, len);
    text[len] = 0;

    if (which == 0) {
        struct oauth_jwt t;
        if (oauth_jwt_parse(text, &t, NULL) == OAUTH_OK) {
            if (oauth_jwt_verify(&t, keys, NULL) == OAUTH_OK &&
                strcmp(t.signing_input, rfc_signing_input) != 0)
                abort();
            struct oauth_expect x = {.issuer = "joe",
                                     .client_id = "c",
                                     .nonce = "n",
                                     .now = 1300000000,
                                     .skew = OAUTH_CLOCK_SKEW};
            struct oauth_identity id;
            if (oauth_claims_check(t.claims, &x, &id, NULL) == OAUTH_OK) {
                if (!id.subject || !id.email) abort();
                oauth_identity_deinit(&id);
            }
            oauth_jwt_deinit(&t);
        }
    } else if (which == 1) {
        oauth_jwks *k = NULL;
        if (oauth_jwks_parse(in, len, &k, NULL) == OAUTH_OK) {
            if (oauth_jwks_count(k) == 0 || oauth_jwks_count(k) > OAUTH_JWKS_MAX_KEYS) abort();
            (void)oauth_jwks_has(k, "kid");
            oauth_jwks_free(k);
        }
    } else if (which == 2) {
        char *id = NULL, *access = NULL;
        int s = oauth_token_response_parse(in, len, &id, &access, NULL);
        if (s == OAUTH_OK && !id) abort();
        if (s != OAUTH_OK && (id || access)) abort();
        free(id);
        free(access);
    } else {
        unsigned char *out = NULL;
        size_t n = 0;
        if (oauth_b64url_decode(in, len, &out, &n) == OAUTH_OK) {
            struct strbuf sb;
            strbuf_init(&sb);
            oauth_b64url_encode(&sb, out, n);
            if (sb.len != len || memcmp(strbuf_cstr(&sb), in, len) != 0) abort();
            strbuf_deinit(&sb);
            free(out);
        } else if (out) {
            abort();
        }
        (void)oauth_url_allowed(text);
        char name[DB_USERNAME_MAX + 1];
        char *at = strchr(text, '\n');
        if (at) *at = 0;
        oauth_username_from(text, at ? at + 1 : NULL, name, sizeof(name));
        if (!db_username_valid(name)) abort();
    }
    free(text);
    return 0;
}
