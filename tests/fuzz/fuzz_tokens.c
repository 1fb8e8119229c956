/*
 * fuzz_tokens.c - the parsers of untrusted account input: cookie tokens,
 * CSRF tokens, anti-bot stamps, the password rule and the username / email /
 * role-name validators. Input bytes are split at the first NUL-free line
 * break into (field, rest) so both the token and its context vary. A valid
 * token must round-trip; nothing may crash or read out of bounds.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "db/db.h"
#include "web/security.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct sec_key key;
    static int ready;
    if (!ready) {
        if (sec_key_init(&key, "fuzzing key of sufficient length!", NULL) != SEC_OK) abort();
        ready = 1;
    }
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = 0; /* the decoders hand C strings to these functions */
    char *nl = strchr(text, '\n');
    const char *context = "signup";
    if (nl) {
        *nl = 0;
        context = nl + 1;
    }

    unsigned char hash[SEC_HASH_LEN], binding[SEC_HASH_LEN] = {1, 2, 3};
    if (sec_token_hash(text, hash) == SEC_OK && strlen(text) != SEC_TOKEN_LEN) abort();
    int s = sec_csrf_verify(&key, binding, text, 1700000000, SEC_CSRF_MAX_AGE);
    if (s == SEC_OK) abort(); /* forging a MAC by chance means the check is broken */
    s = sec_antibot_check(&key, context, text, NULL, 1700000000000LL, SEC_ANTIBOT_MIN_MS,
                          SEC_ANTIBOT_MAX_MS);
    if (s == SEC_OK) abort();
    (void)sec_password_check(text, NULL);
    (void)db_username_valid(text);
    (void)db_email_valid(text);
    (void)db_role_name_valid(text);

    /* Round trip: what we sign for this context must verify. */
    char stamp[SEC_ANTIBOT_LEN + 1], csrf[SEC_CSRF_LEN + 1];
    sec_antibot_stamp(&key, context, 1700000000000LL, stamp);
    if (sec_antibot_check(&key, context, stamp, "", 1700000005000LL, SEC_ANTIBOT_MIN_MS,
                          SEC_ANTIBOT_MAX_MS) != SEC_OK)
        abort();
    memcpy(binding, hash, sizeof(binding));
    sec_csrf_token(&key, binding, 1700000000, csrf);
    if (sec_csrf_verify(&key, binding, csrf, 1700000001, SEC_CSRF_MAX_AGE) != SEC_OK) abort();
    free(text);
    return 0;
}
