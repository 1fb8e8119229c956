/*
 * sampler.c - choosing the next token from the logits.
 *
 * The order is that of Hugging Face's generate() (and vLLM), for which
 * Qwen2.5's recommended settings were tuned:
 *   1. repetition penalty over the last repeat_last_n tokens (each distinct
 *      token once: a positive logit is divided by the penalty, a negative one
 *      multiplied, as in the CTRL paper and transformers);
 *   2. temperature <= 0: greedy, the highest logit (lowest id on ties);
 *   3. logits / temperature;
 *   4. top-k: the k highest;
 *   5. top-p: the smallest set of most probable tokens whose probability
 *      reaches top_p (softmax over what top-k kept);
 *   6. min-p: drop tokens below min_p times the most probable one;
 *   7. a draw from what is left, renormalized, with xoshiro256** seeded by
 *      splitmix64 from the seed (so a seed fixes the text).
 * A sampler owns its candidate buffer: no allocation per token.
 *
 * Threads: a sampler belongs to one caller at a time.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "llm/model.h"

struct cand {
    float logit;
    int32_t id;
};

struct llm_sampler {
    struct llm_sampling p;
    int n_vocab;
    uint64_t rng[4];
    struct cand *cands; /* n_vocab */
    uint8_t *seen;      /* n_vocab flags for the penalty's distinct tokens */
};

void llm_sampling_default(struct llm_sampling *s)
{
    s->temperature = 0.7f;
    s->top_k = 20;
    s->top_p = 0.8f;
    s->min_p = 0.0f;
    s->repeat_penalty = 1.1f;
    s->repeat_last_n = 64;
    s->seed = LLM_SEED_RANDOM;
}

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

/* xoshiro256** (Blackman & Vigna). */
static uint64_t next_u64(uint64_t s[4])
{
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* Uniform in [0, 1) with 53 random bits. */
static double next_double(uint64_t s[4])
{
    return (double)(next_u64(s) >> 11) * (1.0 / 9007199254740992.0);
}

llm_sampler *llm_sampler_new(const struct llm_sampling *p, int n_vocab)
{
    if (n_vocab <= 0) return NULL;
    llm_sampler *s = xcalloc(1, sizeof(*s));
    s->p = *p;
    s->n_vocab = n_vocab;
    s->cands = xmalloc((size_t)n_vocab * sizeof(*s->cands));
    s->seen = xcalloc((size_t)n_vocab, 1);
    uint64_t seed = p->seed;
    if (seed == LLM_SEED_RANDOM) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        seed = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ ((uint64_t)getpid() << 40) ^
               (uint64_t)(uintptr_t)s;
    }
    for (int i = 0; i < 4; i++)
        s->rng[i] = splitmix64(&seed);
    return s;
}

void llm_sampler_free(llm_sampler *s)
{
    if (!s) return;
    free(s->cands);
    free(s->seen);
    free(s);
}

static void apply_penalty(llm_sampler *s, float *logits, const int32_t *hist, size_t n)
{
    float pen = s->p.repeat_penalty;
    if (pen == 1.0f || !(pen > 0.0f) || s->p.repeat_last_n == 0 || n == 0) return;
    size_t from = 0;
    if (s->p.repeat_last_n > 0 && n > (size_t)s->p.repeat_last_n)
        from = n - (size_t)s->p.repeat_last_n;
    for (size_t i = from; i < n; i++) {
        int32_t id = hist[i];
        if (id < 0 || id >= s->n_vocab || s->seen[id]) continue;
        s->seen[id] = 1;
        logits[id] = logits[id] > 0.0f ? logits[id] / pen : logits[id] * pen;
    }
    for (size_t i = from; i < n; i++)
        if (hist[i] >= 0 && hist[i] < s->n_vocab) s->seen[hist[i]] = 0;
}

/* Higher logit first; equal logits by lower id, so results never depend on
 * the sort's stability. */
static int cand_cmp(const void *a, const void *b)
{
    const struct cand *x = a, *y = b;
    if (x->logit != y->logit) return x->logit > y->logit ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

static bool cand_less(const struct cand *x, const struct cand *y)
{
    return cand_cmp(x, y) > 0;
}

/* Min-heap (by cand_cmp order: the "worst" kept candidate on top) of size k. */
static void heap_sift_down(struct cand *h, int k, int i)
{
    for (;;) {
        int l = 2 * i + 1, r = l + 1, w = i;
        if (l < k && cand_less(&h[l], &h[w])) w = l;
        if (r < k && cand_less(&h[r], &h[w])) w = r;
        if (w == i) return;
        struct cand t = h[i];
        h[i] = h[w];
        h[w] = t;
        i = w;
    }
}

/* The k best candidates of logits, sorted best first, into s->cands. */
static int select_top(llm_sampler *s, const float *logits, int k)
{
    int n = s->n_vocab;
    struct cand *c = s->cands;
    if (k <= 0 || k >= n) {
        for (int i = 0; i < n; i++)
            c[i] = (struct cand){logits[i], i};
        qsort(c, (size_t)n, sizeof(*c), cand_cmp);
        return n;
    }
    for (int i = 0; i < k; i++)
        c[i] = (struct cand){logits[i], i};
    for (int i = k / 2 - 1; i >= 0; i--)
        heap_sift_down(c, k, i);
    for (int i = k; i < n; i++) {
        struct cand x = {logits[i], i};
        if (cand_less(&c[0], &x)) {
            c[0] = x;
            heap_sift_down(c, k, 0);
        }
    }
    qsort(c, (size_t)k, sizeof(*c), cand_cmp);
    return k;
}

int32_t llm_sampler_sample(llm_sampler *s, float *logits, const int32_t *history, size_t n_history)
{
    apply_penalty(s, logits, history, n_history);
    /* NaN logits (a broken model) must not win or poison the sums. */
    for (int i = 0; i < s->n_vocab; i++)
        if (isnan(logits[i])) logits[i] = -INFINITY;

    if (!(s->p.temperature > 0.0f)) {
        int best = 0;
        for (int i = 1; i < s->n_vocab; i++)
            if (logits[i] > logits[best]) best = i;
        return best;
    }
    float inv_t = 1.0f / s->p.temperature;
    int n = select_top(s, logits, s->p.top_k);
    struct cand *c = s->cands;

    /* Softmax over the kept candidates (c[0] is the largest logit). */
    double sum = 0.0;
    float max = c[0].logit * inv_t;
    for (int i = 0; i < n; i++) {
        c[i].logit = expf(c[i].logit * inv_t - max);
        sum += c[i].logit;
    }
    if (!(sum > 0.0)) return c[0].id;
    if (s->p.top_p > 0.0f && s->p.top_p < 1.0f) {
        double cum = 0.0;
        int keep = n;
        for (int i = 0; i < n; i++) {
            cum += c[i].logit / sum;
            if (cum >= s->p.top_p) {
                keep = i + 1;
                break;
            }
        }
        n = keep;
    }
    if (s->p.min_p > 0.0f) {
        float floor = s->p.min_p * c[0].logit;
        int keep = 1;
        while (keep < n && c[keep].logit >= floor)
            keep++;
        n = keep;
    }
    double total = 0.0;
    for (int i = 0; i < n; i++)
        total += c[i].logit;
    double r = next_double(s->rng) * total;
    for (int i = 0; i < n; i++) {
        r -= c[i].logit;
        if (r < 0.0) return c[i].id;
    }
    return c[n - 1].id;
}
