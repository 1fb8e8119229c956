/*
 * antibot.c - the anti-bot fields of the signup, login and feedback forms:
 * a honeypot input that people never see and a server-signed render time.
 * A form whose honeypot is filled, that comes back within two seconds of
 * being rendered, after an hour, or with a stamp the server did not sign is
 * refused (the caller gives one generic message and logs the reason).
 */
#include <string.h>

#include "web/security.h"

static const char label[] = "echo-antibot-v1";

void sec_antibot_stamp(const struct sec_key *key, const char *form, int64_t now_ms,
                       char out[SEC_ANTIBOT_LEN + 1])
{
    const char *f = form ? form : "";
    /* The form name's NUL is part of the context so "a"+ts never equals "a\0..". */
    sec_signed_make(key, label, f, strlen(f) + 1, now_ms, out);
}

int sec_antibot_check(const struct sec_key *key, const char *form, const char *stamp,
                      const char *honeypot, int64_t now_ms, int64_t min_ms, int64_t max_ms)
{
    /* The honeypot first: a bot that fills every field is the common case
     * and the cheapest to tell. */
    if (honeypot && honeypot[0]) return SEC_ERR_HONEYPOT;
    if (!stamp || !stamp[0]) return SEC_ERR_MALFORMED;
    const char *f = form ? form : "";
    int64_t ts = 0;
    int s = sec_signed_open(key, label, f, strlen(f) + 1, stamp, &ts);
    if (s != SEC_OK) return s;
    /* A genuine stamp from the future means the clock went back; it gets
     * the same small allowance as CSRF tokens. */
    if (ts > now_ms + (int64_t)SEC_CLOCK_SKEW * 1000) return SEC_ERR_EXPIRED;
    int64_t age = now_ms - ts;
    if (age < min_ms) return SEC_ERR_TOO_FAST;
    if (age > max_ms) return SEC_ERR_EXPIRED;
    return SEC_OK;
}
