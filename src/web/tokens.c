/*
 * tokens.c - the application key, random cookie tokens and CSRF tokens.
 *
 * A cookie token is 32 bytes from the system CSPRNG; the server keeps only
 * its SHA-256, so reading the sessions table does not let anyone log in.
 * A CSRF token is a timestamp and an HMAC-SHA256 over the session binding,
 * so the server needs no storage to check it and a token taken from one
 * session is useless in another.
 */
#include <string.h>

#include <sodium.h>

#include "web/security.h"

#define TS_BYTES 8
#define MAC_BYTES crypto_auth_hmacsha256_BYTES
#define SIGNED_BYTES (TS_BYTES + MAC_BYTES)
#define B64 sodium_base64_VARIANT_URLSAFE_NO_PADDING

_Static_assert(SEC_TOKEN_LEN + 1 == sodium_base64_ENCODED_LEN(SEC_TOKEN_BYTES, B64), "token");
_Static_assert(SEC_CSRF_LEN + 1 == sodium_base64_ENCODED_LEN(SIGNED_BYTES, B64), "csrf");
_Static_assert(SEC_ANTIBOT_LEN == SEC_CSRF_LEN, "antibot stamps share the signed format");

int sec_key_init(struct sec_key *key, const char *secret, struct echo_err *err)
{
    if (sec_init(err) != SEC_OK) return SEC_ERR_INTERNAL;
    if (!secret || strlen(secret) < 16) {
        echo_err_set(err, "SECRET_KEY must be at least 16 characters (32 random ones are best)");
        return SEC_ERR_MALFORMED;
    }
    /* Hashing gives a fixed-size key whatever the length of SECRET_KEY. */
    crypto_hash_sha256(key->k, (const unsigned char *)secret, strlen(secret));
    return SEC_OK;
}

void sec_token_new(char token[SEC_TOKEN_LEN + 1], unsigned char hash[SEC_HASH_LEN])
{
    unsigned char raw[SEC_TOKEN_BYTES];
    (void)sec_init(NULL);
    randombytes_buf(raw, sizeof(raw));
    sodium_bin2base64(token, SEC_TOKEN_LEN + 1, raw, sizeof(raw), B64);
    crypto_hash_sha256(hash, raw, sizeof(raw));
    sodium_memzero(raw, sizeof(raw));
}

/* Decodes exactly `len` bytes of base64url text into out; false otherwise.
 * Non-canonical encodings (stray bits in the last character) are refused so
 * each token has exactly one spelling. */
static bool decode_exact(const char *text, size_t text_len, unsigned char *out, size_t len)
{
    size_t got = 0;
    const char *end = NULL;
    if (!text || text_len > SEC_CSRF_LEN || strnlen(text, text_len + 1) != text_len) return false;
    if (sodium_base642bin(out, len, text, text_len, NULL, &got, &end, B64) != 0 || got != len ||
        end != text + text_len)
        return false;
    char again[SEC_CSRF_LEN + 1];
    sodium_bin2base64(again, sizeof(again), out, len, B64);
    return memcmp(again, text, text_len) == 0;
}

int sec_token_hash(const char *token, unsigned char hash[SEC_HASH_LEN])
{
    unsigned char raw[SEC_TOKEN_BYTES];
    (void)sec_init(NULL);
    if (!decode_exact(token, SEC_TOKEN_LEN, raw, sizeof(raw))) return SEC_ERR_MALFORMED;
    crypto_hash_sha256(hash, raw, sizeof(raw));
    sodium_memzero(raw, sizeof(raw));
    return SEC_OK;
}

static void put_be64(unsigned char *p, int64_t v)
{
    uint64_t u = (uint64_t)v;
    for (int i = 7; i >= 0; i--) {
        p[i] = (unsigned char)(u & 0xff);
        u >>= 8;
    }
}

static int64_t get_be64(const unsigned char *p)
{
    uint64_t u = 0;
    for (int i = 0; i < 8; i++)
        u = (u << 8) | p[i];
    return (int64_t)u;
}

/* HMAC-SHA256(key, label || 0 || context || ts). The label separates the
 * uses of the one key (CSRF, anti-bot) so a value minted for one is never
 * accepted by the other. */
static void mac(const struct sec_key *key, const char *label, const void *ctx, size_t ctx_len,
                const unsigned char ts[TS_BYTES], unsigned char out[MAC_BYTES])
{
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, key->k, sizeof(key->k));
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)label, strlen(label) + 1);
    crypto_auth_hmacsha256_update(&st, ctx, ctx_len);
    crypto_auth_hmacsha256_update(&st, ts, TS_BYTES);
    crypto_auth_hmacsha256_final(&st, out);
    sodium_memzero(&st, sizeof(st));
}

void sec_signed_make(const struct sec_key *key, const char *label, const void *ctx, size_t ctx_len,
                     int64_t ts, char out[SEC_CSRF_LEN + 1])
{
    unsigned char buf[SIGNED_BYTES];
    (void)sec_init(NULL);
    put_be64(buf, ts);
    mac(key, label, ctx, ctx_len, buf, buf + TS_BYTES);
    sodium_bin2base64(out, SEC_CSRF_LEN + 1, buf, sizeof(buf), B64);
}

int sec_signed_open(const struct sec_key *key, const char *label, const void *ctx, size_t ctx_len,
                    const char *text, int64_t *ts)
{
    unsigned char buf[SIGNED_BYTES], want[MAC_BYTES];
    (void)sec_init(NULL);
    if (!decode_exact(text, SEC_CSRF_LEN, buf, sizeof(buf))) return SEC_ERR_MALFORMED;
    mac(key, label, ctx, ctx_len, buf, want);
    if (sodium_memcmp(want, buf + TS_BYTES, MAC_BYTES) != 0) return SEC_ERR_FORGED;
    *ts = get_be64(buf);
    return SEC_OK;
}

void sec_csrf_token(const struct sec_key *key, const unsigned char binding[SEC_HASH_LEN],
                    int64_t now, char out[SEC_CSRF_LEN + 1])
{
    sec_signed_make(key, "echo-csrf-v1", binding, SEC_HASH_LEN, now, out);
}

int sec_csrf_verify(const struct sec_key *key, const unsigned char binding[SEC_HASH_LEN],
                    const char *token, int64_t now, int64_t max_age)
{
    int64_t ts = 0;
    int s = sec_signed_open(key, "echo-csrf-v1", binding, SEC_HASH_LEN, token, &ts);
    if (s != SEC_OK) return s;
    if (ts > now + SEC_CLOCK_SKEW || now - ts > max_age) return SEC_ERR_EXPIRED;
    return SEC_OK;
}
