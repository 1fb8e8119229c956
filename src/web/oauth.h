/*
 * oauth.h - Sign in with Google (issue 10): OpenID Connect's authorization-
 * code flow with PKCE, in three modules.
 *
 *   oauth_jwt.c   ID tokens: base64url, the JWT's three parts, JWK sets
 *                 (RSA keys built with GMP from "n" and "e"), RS256
 *                 signatures checked by nettle/hogweed, the claims of an ID
 *                 token (iss, aud, azp, exp, iat, nonce, sub, email), and the
 *                 token endpoint's JSON answer. Pure functions over bytes:
 *                 these are the parsers of untrusted input (fuzz_jwt.c).
 *   oauth_http.c  a small libcurl client for the provider: https only (plain
 *                 http only to the loopback address, for tests), TLS
 *                 verified, no redirects, connect and total timeouts, a cap
 *                 on the answer's size, Cache-Control max-age read.
 *   oauth.c       the routes: GET /login/google, GET /login/google/callback,
 *                 GET/POST /login/google/link (an existing account confirms
 *                 with its password), POST /profile/google/unlink; the JWKS
 *                 cache; the "Continue with Google" button and the profile's
 *                 linked accounts (a context hook).
 *
 * Threads: the parsers and the HTTP client may be called from any thread
 * (libcurl's global init runs once under pthread_once). web_oauth_register /
 * web_oauth_unregister run on the main thread before / after serving; the
 * handlers run on HTTP worker threads, and a callback holds its worker for
 * up to GOOGLE_TIMEOUT seconds in all while libcurl waits for the provider.
 */
#ifndef ECHO_WEB_OAUTH_H
#define ECHO_WEB_OAUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "core/core.h"
#include "web/app.h"

enum oauth_status {
    OAUTH_OK = 0,
    OAUTH_ERR_MALFORMED = -1,   /* not the JSON / JWT / base64url shape expected */
    OAUTH_ERR_ALG = -2,         /* a JWT algorithm other than RS256 ("none", HS256, ...) */
    OAUTH_ERR_UNKNOWN_KEY = -3, /* no key of the JWKS has the token's kid */
    OAUTH_ERR_SIGNATURE = -4,   /* the RS256 signature does not verify */
    OAUTH_ERR_CLAIMS = -5,      /* wrong iss, aud, azp, nonce or sub */
    OAUTH_ERR_EXPIRED = -6,     /* exp passed, or iat in the future (beyond the skew) */
    OAUTH_ERR_UNVERIFIED = -7,  /* no email, or email_verified is not true */
    OAUTH_ERR_HTTP = -8,        /* transport: refused, timed out, TLS, HTTP status */
    OAUTH_ERR_TOO_LARGE = -9,   /* the provider's answer is over the size cap */
    OAUTH_ERR_DENIED = -10,     /* the provider answered with an OAuth error */
};
/* "ok", "malformed", "algorithm", "unknown key", "signature", "claims",
 * "expired", "unverified email", "http", "too large", "denied". */
const char *oauth_status_name(int status);

/* ---- base64url (RFC 4648 section 5, without padding, as JWTs use) ------- */

/* Decodes len characters into a new buffer (*out, NUL-terminated, *out_len
 * bytes without the NUL; free() it). Refuses padding, other characters and
 * non-zero trailing bits. OAUTH_ERR_MALFORMED otherwise. */
int oauth_b64url_decode(const char *s, size_t len, unsigned char **out, size_t *out_len);
/* Appends base64url without padding of n bytes. */
void oauth_b64url_encode(struct strbuf *sb, const void *data, size_t n);

/* ---- JSON Web Key sets (RFC 7517) ---------------------------------------- */

/* Largest JWKS, token answer or userinfo document read from the provider. */
#define OAUTH_DOC_MAX (64 * 1024)
/* RSA moduli accepted, in bits: small keys are forgeable, huge ones are work. */
#define OAUTH_RSA_MIN_BITS 2048
#define OAUTH_RSA_MAX_BITS 8192
#define OAUTH_JWKS_MAX_KEYS 32

typedef struct oauth_jwks oauth_jwks;
/* Parses a JWK set {"keys": [...]}: the RSA keys ("kty": "RSA", with a kid,
 * "use" absent or "sig", "alg" absent or "RS256", n and e base64url,
 * OAUTH_RSA_MIN_BITS..OAUTH_RSA_MAX_BITS). Other keys are skipped; a set
 * without one usable key, or not of that shape, is OAUTH_ERR_MALFORMED.
 * *out is new (oauth_jwks_free). */
int oauth_jwks_parse(const char *json, size_t len, oauth_jwks **out, struct echo_err *err);
void oauth_jwks_free(oauth_jwks *k);
size_t oauth_jwks_count(const oauth_jwks *k);
bool oauth_jwks_has(const oauth_jwks *k, const char *kid);

/* ---- JWTs (RFC 7519, JWS compact form RFC 7515) -------------------------- */

#define OAUTH_JWT_MAX 16384 /* characters of a compact token */

struct oauth_jwt {
    json_t *header;      /* the decoded JOSE header object */
    json_t *claims;      /* the decoded payload object */
    char *kid;           /* header "kid", or NULL */
    char *signing_input; /* "header.payload" as sent */
    unsigned char *sig;
    size_t sig_len;
};
void oauth_jwt_deinit(struct oauth_jwt *t);
/* Splits and decodes a compact JWS. "alg" must be "RS256" (OAUTH_ERR_ALG for
 * "none", HS256 or anything else, so a token can never choose a weaker
 * check); "crit" is refused; header and payload must be JSON objects.
 * Nothing is verified yet. */
int oauth_jwt_parse(const char *token, struct oauth_jwt *out, struct echo_err *err);
/* Checks the RS256 signature (RSASSA-PKCS1-v1_5 with SHA-256, RFC 7518
 * 3.3) with the key of the token's kid (without a kid: the only key of a
 * one-key set). OAUTH_ERR_UNKNOWN_KEY, OAUTH_ERR_SIGNATURE or OAUTH_OK. */
int oauth_jwt_verify(const struct oauth_jwt *t, const oauth_jwks *keys, struct echo_err *err);

/* What an ID token must say (OpenID Connect Core 3.1.3.7). */
struct oauth_expect {
    const char *issuer;    /* iss equals it (for "https://host", "host" too, as Google's may) */
    const char *client_id; /* in aud; azp equals it when present */
    const char *nonce;     /* nonce equals it */
    int64_t now;           /* unix seconds */
    int64_t skew;          /* seconds of clock difference allowed */
};
#define OAUTH_CLOCK_SKEW 120

/* The person an ID token names. Strings are new (oauth_identity_deinit). */
struct oauth_identity {
    char *subject; /* sub */
    char *email;   /* verified, never NULL after OAUTH_OK */
    char *name;    /* name, else given_name, or NULL */
};
void oauth_identity_deinit(struct oauth_identity *id);
/* Checks the claims of a (verified) token: OAUTH_ERR_CLAIMS, OAUTH_ERR_EXPIRED,
 * OAUTH_ERR_UNVERIFIED (no email, or email_verified not true) or OAUTH_OK
 * with *out filled. */
int oauth_claims_check(const json_t *claims, const struct oauth_expect *x,
                       struct oauth_identity *out, struct echo_err *err);

/* The token endpoint's answer (RFC 6749 5.1 / 5.2, OpenID Connect 3.1.3.3).
 * OAUTH_OK with new strings in *id_token and *access_token (NULL if absent;
 * free() both), OAUTH_ERR_DENIED for {"error": ...} (its code in err),
 * OAUTH_ERR_MALFORMED for anything else or a missing id_token. */
int oauth_token_response_parse(const char *json, size_t len, char **id_token, char **access_token,
                               struct echo_err *err);

/* ---- the HTTP client (oauth_http.c) ------------------------------------ */

/* https://..., or http:// to 127.0.0.1, [::1] or localhost (tests). */
bool oauth_url_allowed(const char *url);

struct oauth_http_result {
    long status;        /* HTTP status, 0 when none arrived */
    struct strbuf body; /* the answer's body (at most max_bytes) */
    int64_t max_age;    /* Cache-Control max-age in seconds, -1 when absent */
};
void oauth_http_result_deinit(struct oauth_http_result *r);

struct oauth_http_request {
    const char *url;
    const char *form;   /* non-NULL: POST this application/x-www-form-urlencoded body */
    const char *bearer; /* non-NULL: Authorization: Bearer <it> */
    long timeout_ms;    /* the whole call */
    size_t max_bytes;   /* larger answers fail with OAUTH_ERR_TOO_LARGE */
};
/* Performs one call. OAUTH_OK for any complete answer (look at status),
 * OAUTH_ERR_TOO_LARGE, or OAUTH_ERR_HTTP (a refused URL, a connection or
 * TLS failure, a timeout) with the reason in err. Never logs the form or
 * the bearer token. */
int oauth_http_call(const struct oauth_http_request *rq, struct oauth_http_result *out,
                    struct echo_err *err);


/* ---- the area (oauth.c) ------------------------------------------------- */

/* Routes and hooks of Sign in with Google; without GOOGLE_CLIENT_ID the
 * routes answer 404 and no button shows. A bad provider URL or a client id
 * without a secret stops start-up. Call after web_auth_register. */
int web_oauth_register(web_app *app, struct echo_err *err);
void web_oauth_unregister(web_app *app);

/* A username made from a display name (or an email's local part): letters
 * and digits kept (accents removed), other runs become one "_", cut to fit
 * DB_USERNAME_MAX with room for a suffix; "user" when too little is left.
 * Writes at most size - 1 bytes. */
void oauth_username_from(const char *name, const char *email, char *out, size_t size);

#endif
