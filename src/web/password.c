/*
 * password.c - password rule, hashing and verification with Argon2id
 * (libsodium crypto_pwhash_str, interactive limits: 64 MiB, 2 passes).
 * The hash string records its own algorithm and limits, so a change of
 * limits shows up in sec_password_needs_rehash and old hashes keep working.
 */
#include <pthread.h>
#include <string.h>

#include <sodium.h>

#include "web/security.h"

_Static_assert(SEC_PASSWORD_HASH_MAX == crypto_pwhash_STRBYTES, "hash buffer size");

#define OPSLIMIT crypto_pwhash_OPSLIMIT_INTERACTIVE
#define MEMLIMIT crypto_pwhash_MEMLIMIT_INTERACTIVE

const char *sec_status_name(int status)
{
    switch (status) {
    case SEC_OK:
        return "ok";
    case SEC_ERR_MALFORMED:
        return "malformed";
    case SEC_ERR_FORGED:
        return "forged";
    case SEC_ERR_EXPIRED:
        return "expired";
    case SEC_ERR_TOO_FAST:
        return "too fast";
    case SEC_ERR_HONEYPOT:
        return "honeypot";
    case SEC_ERR_MISMATCH:
        return "mismatch";
    default:
        return "internal";
    }
}

int sec_init(struct echo_err *err)
{
    if (sodium_init() < 0) {
        echo_err_set(err, "libsodium failed to initialise");
        return SEC_ERR_INTERNAL;
    }
    return SEC_OK;
}

int sec_password_check(const char *password, struct echo_err *err)
{
    size_t n = password ? strlen(password) : 0;
    if (!password || !utf8_valid(password, n)) {
        echo_err_set(err, "The password must be text (UTF-8).");
        return SEC_ERR_MALFORMED;
    }
    size_t chars = utf8_length(password, n);
    if (chars < SEC_PASSWORD_MIN || chars > SEC_PASSWORD_MAX) {
        echo_err_set(err, "The password must be %d to %d characters long.", SEC_PASSWORD_MIN,
                     SEC_PASSWORD_MAX);
        return SEC_ERR_MALFORMED;
    }
    return SEC_OK;
}

int sec_password_hash(const char *password, char out[SEC_PASSWORD_HASH_MAX], struct echo_err *err)
{
    if (sec_init(err) != SEC_OK) return SEC_ERR_INTERNAL;
    if (!password) {
        echo_err_set(err, "no password given");
        return SEC_ERR_MALFORMED;
    }
    if (crypto_pwhash_str_alg(out, password, strlen(password), OPSLIMIT, MEMLIMIT,
                              crypto_pwhash_ALG_ARGON2ID13) != 0) {
        echo_err_set(err, "hashing the password failed (out of memory?)");
        return SEC_ERR_INTERNAL;
    }
    return SEC_OK;
}

/* A hash of a random password, made once: the stand-in for a missing hash. */
static pthread_once_t dummy_once = PTHREAD_ONCE_INIT;
static char dummy_hash[crypto_pwhash_STRBYTES];

static void make_dummy(void)
{
    unsigned char pw[16];
    char hex[33];
    randombytes_buf(pw, sizeof(pw));
    sodium_bin2hex(hex, sizeof(hex), pw, sizeof(pw));
    if (crypto_pwhash_str_alg(dummy_hash, hex, strlen(hex), OPSLIMIT, MEMLIMIT,
                              crypto_pwhash_ALG_ARGON2ID13) != 0)
        dummy_hash[0] = 0;
}

void sec_password_dummy_verify(const char *password)
{
    if (sec_init(NULL) != SEC_OK) return;
    pthread_once(&dummy_once, make_dummy);
    if (dummy_hash[0] && password) {
        /* The answer is meaningless (a random password); only the work counts. */
        volatile int ignored = crypto_pwhash_str_verify(dummy_hash, password, strlen(password));
        (void)ignored;
    }
}

int sec_password_verify(const char *hash, const char *password)
{
    if (sec_init(NULL) != SEC_OK) return SEC_ERR_INTERNAL;
    if (!password) return SEC_ERR_MISMATCH;
    /* libsodium reads the hash as a C string of at most STRBYTES - 1. */
    if (!hash || strnlen(hash, crypto_pwhash_STRBYTES) >= crypto_pwhash_STRBYTES ||
        strncmp(hash, "$argon2", 7) != 0) {
        sec_password_dummy_verify(password);
        return SEC_ERR_MISMATCH;
    }
    if (crypto_pwhash_str_verify(hash, password, strlen(password)) != 0) return SEC_ERR_MISMATCH;
    return SEC_OK;
}

bool sec_password_needs_rehash(const char *hash)
{
    if (sec_init(NULL) != SEC_OK || !hash ||
        strnlen(hash, crypto_pwhash_STRBYTES) >= crypto_pwhash_STRBYTES)
        return true;
    /* 0: same limits; 1: other limits; -1: not an Argon2id string. */
    return crypto_pwhash_str_needs_rehash(hash, OPSLIMIT, MEMLIMIT) != 0;
}
