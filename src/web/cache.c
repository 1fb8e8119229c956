/*
 * cache.c - the bounded LRU + TTL cache of JSON values (cache.h).
 *
 * One hash table (chained, a fixed power-of-two number of buckets, keys
 * hashed with SipHash under a random key) and one LRU list, newest first,
 * under one mutex. Entries are live values or invalidation marks (value
 * NULL): a mark remembers the generation of the key's last invalidation so
 * cache_put_if_fresh can refuse data loaded before it. When a mark (or a
 * value that replaced one) is dropped, its generation is folded into
 * `forgotten`, and a ticket older than that is refused for any key missing
 * from the table: conservative (a rare extra miss), never stale.
 *
 * Values displaced under the lock (replaced, expired, evicted) are
 * collected and released after unlocking, so a large tree's free never
 * blocks other threads.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "core/core.h"
#include "web/cache.h"

#define NS_PER_MS 1000000LL
#define MAX_DROPS 4 /* values one put can displace: replaced, 2 reclaimed, 1 evicted */

struct entry {
    struct entry *hnext;
    struct entry *newer, *older;
    uint64_t hash;
    json_t *value;      /* NULL: an invalidation mark */
    int64_t expires;    /* ns on the cache's clock */
    uint64_t inval_gen; /* generation of the key's last invalidation, 0 if none */
    size_t key_len;
    char key[];
};

struct cache {
    pthread_mutex_t lock;
    unsigned char hash_key[crypto_shorthash_KEYBYTES];
    struct entry **buckets;
    size_t mask;
    struct entry *newest, *oldest;
    size_t count, capacity;
    int64_t ttl_ns;
    int64_t (*clock)(void *ctx);
    void *clock_ctx;
    uint64_t gen;       /* bumped by every invalidation */
    uint64_t forgotten; /* highest generation of a dropped entry */
    uint64_t hits, misses, evictions, expirations, invalidations;
};

/* Values to release once the lock is dropped. */
struct drops {
    json_t *v[MAX_DROPS];
    int n;
};

static void drops_add(struct drops *d, json_t *v)
{
    if (v) d->v[d->n++] = v;
}

static void drops_release(struct drops *d)
{
    for (int i = 0; i < d->n; i++)
        json_decref(d->v[i]);
    d->n = 0;
}

static int64_t default_clock(void *ctx)
{
    (void)ctx;
    return (int64_t)time_mono_ns();
}

static uint64_t key_hash(const cache *c, const char *key, size_t len)
{
    unsigned char h[crypto_shorthash_BYTES];
    crypto_shorthash(h, (const unsigned char *)key, len, c->hash_key);
    uint64_t v;
    memcpy(&v, h, sizeof(v));
    return v;
}

cache *cache_new(const struct cache_options *opts)
{
    if (sodium_init() < 0) return NULL;
    cache *c = xcalloc(1, sizeof(*c));
    pthread_mutex_init(&c->lock, NULL);
    randombytes_buf(c->hash_key, sizeof(c->hash_key));
    c->capacity = opts && opts->capacity ? opts->capacity : 1000;
    c->ttl_ns = (opts && opts->ttl_ms > 0 ? opts->ttl_ms : 30000) * NS_PER_MS;
    c->clock = opts && opts->clock ? opts->clock : default_clock;
    c->clock_ctx = opts && opts->clock ? opts->clock_ctx : NULL;
    size_t buckets = 16;
    while (buckets < c->capacity && buckets < ((size_t)1 << 20)) /* longer chains beyond */
        buckets <<= 1;
    c->mask = buckets - 1;
    c->buckets = xcalloc(buckets, sizeof(*c->buckets));
    c->gen = 1;
    return c;
}

void cache_free(cache *c)
{
    if (!c) return;
    for (struct entry *e = c->oldest, *newer; e; e = newer) {
        newer = e->newer;
        json_decref(e->value);
        free(e);
    }
    free(c->buckets);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

static struct entry *find(cache *c, const char *key, size_t len, uint64_t h)
{
    struct entry *e = c->buckets[h & c->mask];
    while (e && !(e->hash == h && e->key_len == len && memcmp(e->key, key, len) == 0))
        e = e->hnext;
    return e;
}

static void lru_unlink(cache *c, struct entry *e)
{
    if (e->newer)
        e->newer->older = e->older;
    else
        c->newest = e->older;
    if (e->older)
        e->older->newer = e->newer;
    else
        c->oldest = e->newer;
    e->newer = e->older = NULL;
}

static void lru_push_newest(cache *c, struct entry *e)
{
    e->older = c->newest;
    e->newer = NULL;
    if (c->newest) c->newest->newer = e;
    c->newest = e;
    if (!c->oldest) c->oldest = e;
}

/* Unlinks and frees e; its value (if any) goes to d for release later. */
static void drop(cache *c, struct entry *e, struct drops *d)
{
    struct entry **pp = &c->buckets[e->hash & c->mask];
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    lru_unlink(c, e);
    c->count--;
    if (e->inval_gen > c->forgotten) c->forgotten = e->inval_gen;
    drops_add(d, e->value);
    free(e);
}

/* Drops up to max expired entries from the old end. */
static void reclaim(cache *c, int64_t now, int max, struct drops *d)
{
    for (int i = 0; i < max && c->oldest && c->oldest->expires <= now; i++) {
        c->expirations += c->oldest->value != NULL;
        drop(c, c->oldest, d);
    }
}

json_t *cache_get(cache *c, const char *key)
{
    if (!c || !key) return NULL;
    size_t len = strlen(key);
    uint64_t h = key_hash(c, key, len);
    struct drops d = {0};
    json_t *v = NULL;
    pthread_mutex_lock(&c->lock);
    int64_t now = c->clock(c->clock_ctx);
    struct entry *e = find(c, key, len, h);
    if (e && e->value && e->expires > now) {
        v = json_incref(e->value);
        lru_unlink(c, e);
        lru_push_newest(c, e);
        c->hits++;
    } else {
        if (e && e->value) { /* expired: reclaim it now */
            c->expirations++;
            drop(c, e, &d);
        }
        c->misses++;
    }
    pthread_mutex_unlock(&c->lock);
    drops_release(&d);
    return v;
}

/* Stores value (a reference the caller gave us) under key; with check set,
 * only if key was not invalidated after ticket. Returns false if refused. */
static bool put(cache *c, const char *key, json_t *value, int64_t ttl_ms, bool check,
                uint64_t ticket)
{
    size_t len = strlen(key);
    uint64_t h = key_hash(c, key, len);
    struct drops d = {0};
    bool stored = false;
    pthread_mutex_lock(&c->lock);
    int64_t now = c->clock(c->clock_ctx);
    int64_t ttl = ttl_ms > 0 ? ttl_ms * NS_PER_MS : c->ttl_ns;
    reclaim(c, now, 2, &d);
    struct entry *e = find(c, key, len, h);
    if (check && (e ? e->inval_gen > ticket : ticket < c->forgotten)) goto out;
    if (!e) {
        if (c->count >= c->capacity) {
            c->evictions += c->oldest->value && c->oldest->expires > now;
            c->expirations += c->oldest->value && c->oldest->expires <= now;
            drop(c, c->oldest, &d);
        }
        e = xmalloc(sizeof(*e) + len);
        memcpy(e->key, key, len);
        e->key_len = len;
        e->hash = h;
        e->inval_gen = 0;
        e->value = NULL;
        e->hnext = c->buckets[h & c->mask];
        c->buckets[h & c->mask] = e;
        e->newer = e->older = NULL;
        c->count++;
    } else {
        lru_unlink(c, e);
    }
    drops_add(&d, e->value); /* the replaced value */
    e->value = json_incref(value);
    e->expires = now + ttl;
    lru_push_newest(c, e);
    stored = true;
out:
    pthread_mutex_unlock(&c->lock);
    drops_release(&d);
    return stored;
}

void cache_put(cache *c, const char *key, json_t *value, int64_t ttl_ms)
{
    if (c && key && value) put(c, key, value, ttl_ms, false, 0);
}

uint64_t cache_ticket(cache *c)
{
    if (!c) return 0;
    pthread_mutex_lock(&c->lock);
    uint64_t t = c->gen;
    pthread_mutex_unlock(&c->lock);
    return t;
}

bool cache_put_if_fresh(cache *c, const char *key, json_t *value, int64_t ttl_ms, uint64_t ticket)
{
    if (!c || !key || !value) return false;
    return put(c, key, value, ttl_ms, true, ticket);
}

bool cache_invalidate(cache *c, const char *key)
{
    if (!c || !key) return false;
    size_t len = strlen(key);
    uint64_t h = key_hash(c, key, len);
    struct drops d = {0};
    bool had = false;
    pthread_mutex_lock(&c->lock);
    int64_t now = c->clock(c->clock_ctx);
    reclaim(c, now, 2, &d);
    struct entry *e = find(c, key, len, h);
    if (!e) {
        /* A mark even for an absent key: someone may be loading it now. */
        if (c->count >= c->capacity) {
            c->evictions += c->oldest->value && c->oldest->expires > now;
            c->expirations += c->oldest->value && c->oldest->expires <= now;
            drop(c, c->oldest, &d);
        }
        e = xcalloc(1, sizeof(*e) + len);
        memcpy(e->key, key, len);
        e->key_len = len;
        e->hash = h;
        e->hnext = c->buckets[h & c->mask];
        c->buckets[h & c->mask] = e;
        c->count++;
    } else {
        lru_unlink(c, e);
        had = e->value && e->expires > now;
        drops_add(&d, e->value);
        e->value = NULL;
    }
    c->invalidations += had;
    e->inval_gen = ++c->gen;
    /* The mark lives as long as a value would; then `forgotten` covers it. */
    e->expires = now + c->ttl_ns;
    lru_push_newest(c, e);
    pthread_mutex_unlock(&c->lock);
    drops_release(&d);
    return had;
}

void cache_clear(cache *c)
{
    if (!c) return;
    pthread_mutex_lock(&c->lock);
    struct entry *list = c->oldest;
    memset(c->buckets, 0, (c->mask + 1) * sizeof(*c->buckets));
    c->newest = c->oldest = NULL;
    c->count = 0;
    /* Every ticket taken so far is now too old. */
    c->forgotten = ++c->gen;
    pthread_mutex_unlock(&c->lock);
    for (struct entry *e = list, *newer; e; e = newer) {
        newer = e->newer;
        json_decref(e->value);
        free(e);
    }
}

void cache_get_stats(cache *c, struct cache_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (!c) return;
    pthread_mutex_lock(&c->lock);
    out->hits = c->hits;
    out->misses = c->misses;
    out->evictions = c->evictions;
    out->expirations = c->expirations;
    out->invalidations = c->invalidations;
    out->entries = c->count;
    out->capacity = c->capacity;
    pthread_mutex_unlock(&c->lock);
}
