/*
 * attention.h - causal grouped-query attention of several sequences at once
 * over their own KV caches, tiled with an online softmax (flash-attention
 * style) and split over the engine's pool; plus the plain reference it is
 * tested against.
 *
 * One call handles every sequence of a batched forward pass: sequence i has
 * n query tokens at positions pos..pos+n-1 whose keys and values are already
 * in its cache, and token t sees cache rows 0..pos+t. Work items are (sequence,
 * KV head, block of query tokens, span of keys): a KV head's group of query
 * heads and a block of tokens share each key/value tile while it is hot in
 * the cache, and long contexts with few query tokens (decoding) are split
 * into key spans whose partial results are merged (log-sum-exp), so both
 * threads work even on one sequence. Memory per thread is a few tiles,
 * whatever the context length.
 *
 * Threads: att_forward uses the given pool (one caller at a time, pool.h)
 * and the scratch (one caller at a time). att_reference is pure.
 */
#ifndef ECHO_LLM_ATTENTION_H
#define ECHO_LLM_ATTENTION_H

#include <stdbool.h>
#include <stddef.h>

#include "llm/pool.h"

struct att_shape {
    int n_heads, n_kv_heads, head_dim;
    bool f16; /* cache entries are IEEE half (else f32) */
};

/* One sequence of a call. Query/output rows hold n_heads * head_dim floats;
 * cache row j of KV head g starts at k + j * kv_dim + g * head_dim elements
 * (kv_dim = n_kv_heads * head_dim). */
struct att_seq {
    const void *k, *v;
    int pos, n;
    const float *q;
    float *out;
};

/* Grow-only working memory, kept by the engine so that no token allocates
 * once the largest batch has been seen. Zero-initialize; att_scratch_deinit frees. */
struct att_scratch {
    void *items;
    size_t cap_items;
    float *partial; /* split items' (O, m, l) rows */
    size_t cap_partial;
    float *thread_buf; /* per pool share: tiles, scores, accumulators */
    size_t cap_thread;
};
void att_scratch_deinit(struct att_scratch *s);

/*
 * Writes out for every query token of every sequence (out must not overlap
 * q or the caches). Uses the AVX-512 tile kernel when the kernels' active
 * path is avx512 (kern_get_path), else the plain C one; both compute the
 * same math. Returns 0, or -1 when memory runs out (out is then undefined).
 */
int att_forward(const struct att_shape *sh, const struct att_seq *seqs, int n_seqs,
                struct att_scratch *s, struct kern_pool *pool);

/* The definition, one query at a time: full scores, max-subtracted softmax
 * in double, weighted sum of the values. For tests. */
void att_reference(const struct att_shape *sh, const struct att_seq *seq);

#endif
