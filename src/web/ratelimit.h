/*
 * ratelimit.h - per-client, per-endpoint request limits (issue 7: the
 * original's Flask-Limiter table, "5 per second" on /, "1 per second" on
 * /login, ...), answered by the caller with 429, Retry-After and the
 * X-RateLimit-* headers.
 *
 * Algorithm: GCRA (the Generic Cell Rate Algorithm of ATM networks, ITU-T
 * I.371), which is a token bucket kept as a single number per key: the
 * "theoretical arrival time" (TAT) at which the client's allowance is full
 * again. A rule N per P lets N requests through at once, then one every P/N;
 * after a quiet period P the full N are available again. Chosen over
 *   - fixed windows: they let 2N through around a window edge;
 *   - sliding logs: exact but N timestamps per key (unbounded memory);
 *   - sliding window counters: an approximation and two numbers per key.
 * GCRA is exact, needs one integer per key, and a key whose TAT has passed
 * is indistinguishable from an absent one, so expired entries can be
 * dropped at any time without changing any decision.
 *
 * Keys are (endpoint, client). An IPv6 client is limited per /64 network
 * (one subscriber usually holds a whole /64 and could rotate through it);
 * an IPv4-mapped IPv6 address counts as its IPv4 address.
 *
 * Storage goes through struct rl_store_ops so a shared store (Redis: a Lua
 * script doing the same compare-and-set on one key) can replace the
 * in-memory one for several app instances. The in-memory store is a hash
 * table in shards, each with its own mutex and LRU list; keys are hashed
 * with SipHash under a random key (hash flooding), entries are bounded by
 * max_entries (the least recently used is evicted; an evicted client just
 * starts with a full allowance) and expired ones are reclaimed as the table
 * is used.
 *
 * Thread-safety: rl_new/rl_free on one thread; rl_check, rl_sweep and
 * rl_get_stats from any thread at once. No lock is held while calling out,
 * except the clock, which must be a plain function.
 */
#ifndef ECHO_WEB_RATELIMIT_H
#define ECHO_WEB_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/core.h"

enum rl_status {
    RL_OK = 0,
    RL_ERR_INVALID = -1, /* bad rule, key or options */
    RL_ERR_STORE = -2,   /* the store failed (a remote store: connection lost...) */
};

/* N requests per period_s seconds. */
struct rl_rule {
    uint32_t count;
    uint32_t period_s;
};

#define RL_MAX_COUNT 1000000u

/* Parses "N/second", "N/minute", "N/hour", "N/day" (also "N per minute",
 * plural units, any case, spaces around the parts). N is 1..RL_MAX_COUNT.
 * RL_ERR_INVALID with a message naming the problem otherwise. */
int rl_rule_parse(const char *text, struct rl_rule *out, struct echo_err *err);
/* Writes a rule back as "N/unit" (or "N/S seconds" for other periods). */
void rl_rule_format(const struct rl_rule *rule, char *buf, size_t size);

/* What to answer; the numbers are for the response headers. */
struct rl_result {
    bool allowed;
    uint32_t limit;         /* X-RateLimit-Limit: the rule's N */
    uint32_t remaining;     /* X-RateLimit-Remaining: requests allowed right now after this one */
    uint32_t reset_s;       /* X-RateLimit-Reset: seconds until the full N is back (rounded up) */
    uint32_t retry_after_s; /* Retry-After when refused: seconds, at least 1; 0 when allowed */
    int64_t retry_after_ns; /* the same, exactly (0 when allowed) */
};

/* ---- stores ------------------------------------------------------------- */

/*
 * A store keeps one TAT (int64 nanoseconds on the limiter's clock) per key.
 * gcra() does, atomically for key:
 *     tat  = stored TAT if present and later than now, else now
 *     next = tat + emission_ns
 *     if next - now > period_ns: refuse, keep the TAT, report tat
 *     else: store next (dropping the entry after next is harmless), report next
 * and sets *allowed and *tat_out. Returns RL_OK or RL_ERR_STORE.
 */
struct rl_store_ops {
    const char *name;
    int (*gcra)(void *store, const char *key, size_t key_len, int64_t now_ns, int64_t emission_ns,
                int64_t period_ns, bool *allowed, int64_t *tat_out);
    /* Drops entries whose TAT is not after now; returns how many (optional). */
    size_t (*sweep)(void *store, int64_t now_ns);
    void (*free)(void *store);
};

/* ---- the limiter -------------------------------------------------------- */

typedef struct ratelimit ratelimit;

struct rl_options {
    size_t max_entries; /* in-memory store: hard cap on keys; 0: 100000 */
    unsigned shards;    /* in-memory store: lock shards, rounded up to a power of 2; 0: 16 */
    /* Monotonic clock in nanoseconds; NULL: time_mono_ns. Tests inject one. */
    int64_t (*clock)(void *ctx);
    void *clock_ctx;
};

/* A limiter over the in-memory store. opts may be NULL. */
ratelimit *rl_new(const struct rl_options *opts);
/* A limiter over another store, which it then owns (ops->free at rl_free). */
ratelimit *rl_new_with_store(const struct rl_store_ops *ops, void *store,
                             const struct rl_options *opts);
void rl_free(ratelimit *rl);

/*
 * Counts one request of client (an IP address as text) to endpoint (any
 * short name, e.g. "login") under rule, and fills *out. Each (endpoint,
 * client) pair has its own allowance; use the same rule for a pair every
 * time. RL_ERR_INVALID for a bad rule or an endpoint/client over 128 bytes;
 * RL_ERR_STORE if the store failed. On any error *out says allowed (the
 * caller decides whether to fail open; the in-memory store never fails).
 */
int rl_check(ratelimit *rl, const char *endpoint, const char *client, const struct rl_rule *rule,
             struct rl_result *out);

/* Drops every expired entry now (the table also does it gradually);
 * returns how many went. */
size_t rl_sweep(ratelimit *rl);

struct rl_stats {
    size_t entries;   /* keys held */
    size_t capacity;  /* the hard cap */
    uint64_t evicted; /* live entries dropped because the table was full */
    uint64_t expired; /* entries reclaimed after their allowance was full again */
};
/* Counters of the in-memory store (zeros for another store). */
void rl_get_stats(ratelimit *rl, struct rl_stats *out);

#endif
