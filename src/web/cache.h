/*
 * cache.h - a bounded, thread-safe LRU cache of JSON values with a time to
 * live per entry (issue 7: the profile page's 30-second per-user cache, the
 * original's Flask-Caching on that query).
 *
 * Values are jansson trees shared between threads, so they are read-only
 * once stored: whoever puts a value must not change it afterwards, and
 * whoever gets one must not change it (copy it with json_deep_copy to
 * edit). jansson's reference counts are atomic, which makes sharing safe.
 *
 * Stale data after one's own change: invalidate the key when the data
 * changes. A reader that loaded the data before the change could still
 * store its old copy after the invalidation; to close that race, take a
 * ticket before loading and store with cache_put_if_fresh, which refuses
 * the value if the key was invalidated since the ticket was taken:
 *
 *     json_t *v = cache_get(c, key);
 *     if (!v) {
 *         uint64_t t = cache_ticket(c);
 *         v = load_from_db(...);
 *         cache_put_if_fresh(c, key, v, 0, t);
 *     }
 *     ... use v ...; json_decref(v);
 *
 * Thread-safety: every function may be called from any thread (one mutex
 * per cache). The lock is never held while a value is freed or anything
 * else is called, except the clock, which must be a plain function.
 */
#ifndef ECHO_WEB_CACHE_H
#define ECHO_WEB_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

typedef struct cache cache;

struct cache_options {
    size_t capacity; /* entries (invalidation marks included); 0: 1000 */
    int64_t ttl_ms;  /* default time to live; 0: 30000 */
    /* Monotonic clock in nanoseconds; NULL: time_mono_ns. Tests inject one. */
    int64_t (*clock)(void *ctx);
    void *clock_ctx;
};

/* opts may be NULL (defaults). */
cache *cache_new(const struct cache_options *opts);
/* Frees the cache and drops its references to the values. */
void cache_free(cache *c);

/* A new reference to the value of key (the caller decrefs), or NULL when
 * absent or expired. Counts a hit or a miss; a hit makes key the most
 * recently used. */
json_t *cache_get(cache *c, const char *key);

/* Stores value under key for ttl_ms (<= 0: the default), replacing what was
 * there. The cache takes its own reference; the caller keeps theirs. When
 * the cache is full the least recently used entry goes. A NULL key or value
 * is ignored. */
void cache_put(cache *c, const char *key, json_t *value, int64_t ttl_ms);

/* The current invalidation generation, to take before loading a value. */
uint64_t cache_ticket(cache *c);
/* Like cache_put, unless key was (or may have been) invalidated after
 * ticket was taken: then nothing is stored and false is returned. */
bool cache_put_if_fresh(cache *c, const char *key, json_t *value, int64_t ttl_ms, uint64_t ticket);

/* Drops key's value at once, and marks the key so that a value loaded
 * before now is not stored by cache_put_if_fresh. True if a live value was
 * dropped. */
bool cache_invalidate(cache *c, const char *key);
/* Drops everything (as an invalidation of every key). */
void cache_clear(cache *c);

struct cache_stats {
    uint64_t hits, misses;
    uint64_t evictions;     /* live values dropped because the cache was full */
    uint64_t expirations;   /* values dropped after their time to live */
    uint64_t invalidations; /* cache_invalidate calls that dropped a live value */
    size_t entries;         /* live values and invalidation marks held */
    size_t capacity;
};
void cache_get_stats(cache *c, struct cache_stats *out);

#endif
