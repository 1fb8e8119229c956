/*
 * ratelimit.c - GCRA rate limiting over a pluggable store; the in-memory
 * store lives here too. ratelimit.h explains the algorithm and why.
 *
 * In-memory store layout: shards (a power of two), chosen by the high bits
 * of the key's SipHash; each shard is a fixed array of buckets (chained),
 * an LRU list (newest first) and a mutex. A shard holds at most
 * max_entries / shards keys, so the whole table never exceeds max_entries.
 * Every call looks at the two oldest entries of its shard and drops them if
 * expired, so reclaiming costs O(1) per request and needs no thread.
 */
#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "web/ratelimit.h"

#define NS_PER_S 1000000000LL
#define KEY_PART_MAX 128

/* ---- rules -------------------------------------------------------------- */

static const struct {
    const char *name;
    uint32_t seconds;
} units[] = {{"second", 1}, {"minute", 60}, {"hour", 3600}, {"day", 86400}};

/* GCRA with integer nanoseconds lets N + 1 requests through when N * (P / N)
 * rounds down too far below P; refuse such rules rather than be wrong. */
static bool rule_exact(uint32_t count, uint32_t period_s)
{
    int64_t p = (int64_t)period_s * NS_PER_S, t = p / count;
    return t > 0 && (int64_t)(count + 1) * t > p;
}

static bool rule_valid(const struct rl_rule *r)
{
    return r && r->count >= 1 && r->count <= RL_MAX_COUNT && r->period_s >= 1 &&
           r->period_s <= 86400 && rule_exact(r->count, r->period_s);
}

int rl_rule_parse(const char *text, struct rl_rule *out, struct echo_err *err)
{
    const char *p = text ? text : "";
    while (*p == ' ' || *p == '\t')
        p++;
    if (!*p) {
        echo_err_set(err, "empty rate limit; expected e.g. 5/second, 1/minute or 100/hour");
        return RL_ERR_INVALID;
    }
    if (*p < '0' || *p > '9') {
        echo_err_set(
            err, "rate limit \"%.64s\" does not start with a count; expected e.g. 5/second", text);
        return RL_ERR_INVALID;
    }
    uint64_t count = 0;
    while (*p >= '0' && *p <= '9') {
        count = count * 10 + (uint64_t)(*p++ - '0');
        if (count > RL_MAX_COUNT) {
            echo_err_set(err, "rate limit \"%.64s\": the count is over %u", text, RL_MAX_COUNT);
            return RL_ERR_INVALID;
        }
    }
    if (count == 0) {
        echo_err_set(err, "rate limit \"%.64s\": the count must be at least 1", text);
        return RL_ERR_INVALID;
    }
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p == '/') {
        p++;
    } else if ((p[0] | 32) == 'p' && (p[1] | 32) == 'e' && (p[2] | 32) == 'r' &&
               (p[3] == ' ' || p[3] == '\t')) {
        p += 3;
    } else {
        echo_err_set(err, "rate limit \"%.64s\": expected \"/\" or \"per\" after the count", text);
        return RL_ERR_INVALID;
    }
    while (*p == ' ' || *p == '\t')
        p++;
    const char *unit = p;
    while ((*p | 32) >= 'a' && (*p | 32) <= 'z')
        p++;
    size_t ulen = (size_t)(p - unit);
    const char *rest = p;
    while (*rest == ' ' || *rest == '\t' || *rest == '\n' || *rest == '\r')
        rest++;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]) && !*rest; i++) {
        size_t n = strlen(units[i].name);
        bool plural = ulen == n + 1 && (unit[n] | 32) == 's';
        if ((ulen == n || plural) && strncasecmp(unit, units[i].name, n) == 0) {
            if (!rule_exact((uint32_t)count, units[i].seconds)) {
                echo_err_set(err, "rate limit \"%.64s\": too many requests per %s to time exactly",
                             text, units[i].name);
                return RL_ERR_INVALID;
            }
            out->count = (uint32_t)count;
            out->period_s = units[i].seconds;
            return RL_OK;
        }
    }
    echo_err_set(err, "rate limit \"%.64s\": the period must be second, minute, hour or day", text);
    return RL_ERR_INVALID;
}

void rl_rule_format(const struct rl_rule *rule, char *buf, size_t size)
{
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
        if (rule->period_s == units[i].seconds) {
            snprintf(buf, size, "%u/%s", rule->count, units[i].name);
            return;
        }
    snprintf(buf, size, "%u/%u seconds", rule->count, rule->period_s);
}

/* ---- the in-memory store ------------------------------------------------ */

struct entry {
    struct entry *hnext;         /* bucket chain */
    struct entry *newer, *older; /* LRU list */
    uint64_t hash;
    int64_t tat;
    size_t key_len;
    char key[];
};

struct shard {
    pthread_mutex_t lock;
    struct entry **buckets;
    size_t mask;
    struct entry *newest, *oldest;
    size_t count, cap;
    uint64_t evicted, expired;
};

struct mem_store {
    unsigned char hash_key[crypto_shorthash_KEYBYTES];
    struct shard *shards;
    unsigned nshards;
    size_t capacity;
};

static uint64_t key_hash(const struct mem_store *m, const char *key, size_t len)
{
    unsigned char h[crypto_shorthash_BYTES];
    crypto_shorthash(h, (const unsigned char *)key, len, m->hash_key);
    uint64_t v;
    memcpy(&v, h, sizeof(v));
    return v;
}

static void lru_unlink(struct shard *s, struct entry *e)
{
    if (e->newer)
        e->newer->older = e->older;
    else
        s->newest = e->older;
    if (e->older)
        e->older->newer = e->newer;
    else
        s->oldest = e->newer;
    e->newer = e->older = NULL;
}

static void lru_push_newest(struct shard *s, struct entry *e)
{
    e->older = s->newest;
    e->newer = NULL;
    if (s->newest) s->newest->newer = e;
    s->newest = e;
    if (!s->oldest) s->oldest = e;
}

static void shard_remove(struct shard *s, struct entry *e)
{
    struct entry **pp = &s->buckets[e->hash & s->mask];
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    lru_unlink(s, e);
    s->count--;
    free(e);
}

/* Reclaims up to max expired entries from the old end of the LRU list. */
static size_t shard_reclaim(struct shard *s, int64_t now, size_t max)
{
    size_t n = 0;
    while (n < max && s->oldest && s->oldest->tat <= now) {
        shard_remove(s, s->oldest);
        s->expired++;
        n++;
    }
    return n;
}

static int mem_gcra(void *store, const char *key, size_t key_len, int64_t now, int64_t emission,
                    int64_t period, bool *allowed, int64_t *tat_out)
{
    struct mem_store *m = store;
    uint64_t h = key_hash(m, key, key_len);
    struct shard *s = &m->shards[(h >> 40) & (m->nshards - 1)];
    pthread_mutex_lock(&s->lock);
    shard_reclaim(s, now, 2);
    struct entry *e = s->buckets[h & s->mask];
    while (e && !(e->hash == h && e->key_len == key_len && memcmp(e->key, key, key_len) == 0))
        e = e->hnext;
    int64_t tat = e && e->tat > now ? e->tat : now;
    int64_t next = tat + emission;
    if (next - now > period) {
        *allowed = false;
        *tat_out = tat;
        if (e) { /* an active client stays among the recently used */
            lru_unlink(s, e);
            lru_push_newest(s, e);
        }
        pthread_mutex_unlock(&s->lock);
        return RL_OK;
    }
    if (!e) {
        if (s->count >= s->cap) {
            /* Full: the least recently used key goes. It restarts with a
             * full allowance, the price of bounded memory. */
            s->evicted += s->oldest->tat > now;
            s->expired += s->oldest->tat <= now;
            shard_remove(s, s->oldest);
        }
        e = xmalloc(sizeof(*e) + key_len);
        memcpy(e->key, key, key_len);
        e->key_len = key_len;
        e->hash = h;
        e->hnext = s->buckets[h & s->mask];
        s->buckets[h & s->mask] = e;
        e->newer = e->older = NULL;
        s->count++;
    } else {
        lru_unlink(s, e);
    }
    lru_push_newest(s, e);
    e->tat = next;
    *allowed = true;
    *tat_out = next;
    pthread_mutex_unlock(&s->lock);
    return RL_OK;
}

static size_t mem_sweep(void *store, int64_t now)
{
    struct mem_store *m = store;
    size_t n = 0;
    for (unsigned i = 0; i < m->nshards; i++) {
        struct shard *s = &m->shards[i];
        pthread_mutex_lock(&s->lock);
        /* Periods differ per rule, so expired entries are not all at the
         * old end: look at every entry. */
        for (struct entry *e = s->oldest, *newer; e; e = newer) {
            newer = e->newer;
            if (e->tat <= now) {
                shard_remove(s, e);
                s->expired++;
                n++;
            }
        }
        pthread_mutex_unlock(&s->lock);
    }
    return n;
}

static void mem_free(void *store)
{
    struct mem_store *m = store;
    if (!m) return;
    for (unsigned i = 0; i < m->nshards; i++) {
        struct shard *s = &m->shards[i];
        for (struct entry *e = s->oldest, *newer; e; e = newer) {
            newer = e->newer;
            free(e);
        }
        free(s->buckets);
        pthread_mutex_destroy(&s->lock);
    }
    free(m->shards);
    free(m);
}

static const struct rl_store_ops mem_ops = {"memory", mem_gcra, mem_sweep, mem_free};

static struct mem_store *mem_new(size_t max_entries, unsigned shards)
{
    if (sodium_init() < 0) return NULL;
    unsigned n = 1;
    while (n < shards && n < 1024)
        n <<= 1;
    if (max_entries < n) n = 1;
    struct mem_store *m = xcalloc(1, sizeof(*m));
    randombytes_buf(m->hash_key, sizeof(m->hash_key));
    m->nshards = n;
    m->shards = xcalloc(n, sizeof(*m->shards));
    size_t per = max_entries / n;
    m->capacity = per * n;
    size_t buckets = 16;
    while (buckets < per && buckets < ((size_t)1 << 20)) /* longer chains beyond */
        buckets <<= 1;
    for (unsigned i = 0; i < n; i++) {
        pthread_mutex_init(&m->shards[i].lock, NULL);
        m->shards[i].cap = per;
        m->shards[i].mask = buckets - 1;
        m->shards[i].buckets = xcalloc(buckets, sizeof(struct entry *));
    }
    return m;
}

/* ---- the limiter -------------------------------------------------------- */

struct ratelimit {
    const struct rl_store_ops *ops;
    void *store;
    struct mem_store *mem; /* == store for the in-memory store, for stats */
    int64_t (*clock)(void *ctx);
    void *clock_ctx;
};

static int64_t default_clock(void *ctx)
{
    (void)ctx;
    return (int64_t)time_mono_ns();
}

ratelimit *rl_new_with_store(const struct rl_store_ops *ops, void *store,
                             const struct rl_options *opts)
{
    if (!ops || !ops->gcra) return NULL;
    ratelimit *rl = xcalloc(1, sizeof(*rl));
    rl->ops = ops;
    rl->store = store;
    rl->clock = opts && opts->clock ? opts->clock : default_clock;
    rl->clock_ctx = opts && opts->clock ? opts->clock_ctx : NULL;
    return rl;
}

ratelimit *rl_new(const struct rl_options *opts)
{
    size_t max = opts && opts->max_entries ? opts->max_entries : 100000;
    unsigned shards = opts && opts->shards ? opts->shards : 16;
    struct mem_store *m = mem_new(max, shards);
    if (!m) return NULL;
    ratelimit *rl = rl_new_with_store(&mem_ops, m, opts);
    rl->mem = m;
    return rl;
}

void rl_free(ratelimit *rl)
{
    if (!rl) return;
    if (rl->ops->free) rl->ops->free(rl->store);
    free(rl);
}

/* The part of the key naming the client: an IPv6 address by its /64, an
 * IPv4-mapped address as IPv4, anything else as given. */
static void client_key(const char *client, char *buf, size_t size)
{
    unsigned char a[16];
    if (strchr(client, ':') && inet_pton(AF_INET6, client, a) == 1) {
        static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(a, mapped, 12) == 0) {
            inet_ntop(AF_INET, a + 12, buf, (socklen_t)size);
            return;
        }
        memset(a + 8, 0, 8);
        char net[INET6_ADDRSTRLEN];
        inet_ntop(AF_INET6, a, net, sizeof(net));
        snprintf(buf, size, "%s/64", net);
        return;
    }
    snprintf(buf, size, "%s", client);
}

static uint32_t ceil_s(int64_t ns)
{
    if (ns <= 0) return 0;
    int64_t s = (ns + NS_PER_S - 1) / NS_PER_S;
    return s > UINT32_MAX ? UINT32_MAX : (uint32_t)s;
}

int rl_check(ratelimit *rl, const char *endpoint, const char *client, const struct rl_rule *rule,
             struct rl_result *out)
{
    memset(out, 0, sizeof(*out));
    out->allowed = true;
    if (!rl || !endpoint || !client || !rule_valid(rule) || strlen(endpoint) > KEY_PART_MAX ||
        strlen(client) > KEY_PART_MAX)
        return RL_ERR_INVALID;
    out->limit = rule->count;
    char who[KEY_PART_MAX + 8], key[2 * KEY_PART_MAX + 16];
    client_key(client, who, sizeof(who));
    int key_len = snprintf(key, sizeof(key), "%s\n%s", endpoint, who);

    int64_t period = (int64_t)rule->period_s * NS_PER_S;
    int64_t emission = period / rule->count;
    int64_t now = rl->clock(rl->clock_ctx), tat = 0;
    bool allowed = true;
    int rc = rl->ops->gcra(rl->store, key, (size_t)key_len, now, emission, period, &allowed, &tat);
    if (rc != RL_OK) return RL_ERR_STORE;
    out->allowed = allowed;
    out->reset_s = ceil_s(tat - now);
    if (allowed) {
        /* Room left in the burst: how many more emissions fit before the
         * TAT would run more than one period ahead. */
        int64_t left = (period - (tat - now)) / emission;
        out->remaining = left < 0 ? 0 : (uint32_t)left;
    } else {
        out->retry_after_ns = tat + emission - period - now;
        out->retry_after_s = ceil_s(out->retry_after_ns);
        if (out->retry_after_s == 0) out->retry_after_s = 1;
    }
    return RL_OK;
}

size_t rl_sweep(ratelimit *rl)
{
    if (!rl || !rl->ops->sweep) return 0;
    return rl->ops->sweep(rl->store, rl->clock(rl->clock_ctx));
}

void rl_get_stats(ratelimit *rl, struct rl_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (!rl || !rl->mem) return;
    out->capacity = rl->mem->capacity;
    for (unsigned i = 0; i < rl->mem->nshards; i++) {
        struct shard *s = &rl->mem->shards[i];
        pthread_mutex_lock(&s->lock);
        out->entries += s->count;
        out->evicted += s->evicted;
        out->expired += s->expired;
        pthread_mutex_unlock(&s->lock);
    }
}
