/*
 * model.h - the llm layer's internal view of a loaded model, a session's KV
 * cache and the engine's scratch memory, shared by model.c (loading),
 * qwen2.c (the forward pass), session.c (generation) and scheduler.c.
 * Code outside src/llm/ uses llm.h only.
 *
 * Threads: a llm_model is immutable once llm_model_load returns. A session
 * and an engine are each used by one thread at a time.
 */
#ifndef ECHO_LLM_MODEL_H
#define ECHO_LLM_MODEL_H

#include "llm/attention.h"
#include "llm/gguf.h"
#include "llm/kernels.h"
#include "llm/llm.h"
#include "llm/pool.h"

/* Distinct stop token ids a model may have (eos, <|im_end|>, <|endoftext|>, ...). */
#define LLM_MAX_STOP_IDS 8

struct llm_layer {
    struct kern_matrix wq, wk, wv, wo; /* attention projections */
    struct kern_matrix gate, up, down; /* SwiGLU FFN */
    const float *attn_norm, *ffn_norm; /* [hidden] */
    const float *bq, *bk, *bv;         /* [hidden], [kv_dim], [kv_dim] */
};

struct llm_model {
    struct llm_model_info info;
    struct llm_layer *layers;
    struct kern_matrix embed;         /* [vocab x hidden] */
    struct kern_matrix output_own;    /* used when the file has its own output matrix */
    const struct kern_matrix *output; /* &embed when tied, else &output_own */
    const float *out_norm;            /* [hidden] */
    tokenizer *tok;
    struct llm_sampling defaults;
    int32_t stop_ids[LLM_MAX_STOP_IDS];
    int n_stop_ids;

    gguf_file *gguf; /* GGUF models: the mapping the weights point into */
    void **owned;    /* heap buffers the model allocated (F32 copies of vectors) */
    size_t n_owned, cap_owned;
    struct {
        void *p;
        size_t n;
    } * maps; /* anonymous mappings holding converted (unpacked) matrices */
    size_t n_maps, cap_maps;
};

/* The KV cache of one session: per layer, K and V rows of kv_dim entries for
 * positions [0, cap), F16 (uint16) or F32. */
struct llm_kv {
    enum llm_kv_type type;
    int n_layers, kv_dim;
    int cap;   /* positions allocated */
    int limit; /* positions the session may ever hold (its context) */
    void **k, **v;
};

int llm_kv_init(struct llm_kv *kv, const llm_model *m, int limit, enum llm_kv_type type);
void llm_kv_deinit(struct llm_kv *kv);
/* Makes room for n positions (grows geometrically up to limit); -1 past the limit. */
int llm_kv_reserve(struct llm_kv *kv, int n);
size_t llm_kv_bytes(const struct llm_kv *kv);

/* Most sequences one batched forward pass takes. */
#define LLM_MAX_BATCH 64

/* Scratch memory of the forward pass, sized for ubatch tokens at once (of
 * one or several sequences); owned by an engine. The attention's working
 * memory and the batch's logits rows grow on first use and are then kept. */
struct llm_scratch {
    int ubatch, n_ctx, n_threads;
    float *x, *xb, *q, *k, *v, *att, *hb, *hb2; /* activations, ubatch rows each */
    int *tok_pos;                               /* ubatch: position of each row */
    struct llm_kv **tok_kv;                     /* ubatch: cache of each row */
    struct att_scratch attn; /* attention.c's tiles */
    float *out_rows; /* logits of several sequences' last tokens */
    size_t cap_out_rows;
};

int llm_scratch_init(struct llm_scratch *s, const llm_model *m, int ubatch, int n_ctx,
                     int n_threads);
void llm_scratch_deinit(struct llm_scratch *s);

/* One sequence of a batched forward pass: n tokens at positions
 * pos..pos+n-1 of its own cache. */
struct llm_batch_seq {
    struct llm_kv *kv; /* must have room for pos + n (llm_kv_reserve) */
    const int32_t *ids;
    int n, pos;
    float *logits; /* NULL: none; else the last token's vocab logits (all: n x vocab) */
    bool all;
};

/*
 * Runs every sequence's tokens through the model together: the weight
 * matrices see one matrix of all sum(n) <= ubatch rows (one pass over the
 * weights serves every sequence), attention runs per sequence over its own
 * cache. Writes the K/V rows into each cache and the requested logits.
 * `all` is allowed only when a single sequence asks for logits. Ids must be
 * valid (the caller checks them). Returns 0, or -1 on a batch that breaks
 * these rules or when the attention's memory cannot grow.
 */
int qwen2_forward_batch(const llm_model *m, const struct llm_batch_seq *seqs, int n_seqs,
                        struct llm_scratch *sc, struct kern_pool *pool);

/*
 * One sequence: n tokens (n <= ubatch) at positions pos..pos+n-1, writing
 * their K/V rows into kv (which must have room, see llm_kv_reserve) and, when
 * logits is not NULL, the logits of the last position (all == false) or of
 * every position (all == true, logits holds n x vocab). Ids must be valid
 * (the caller checks them). Returns what qwen2_forward_batch returns.
 */
int qwen2_forward(const llm_model *m, struct llm_kv *kv, struct llm_scratch *sc,
                  struct kern_pool *pool, const int32_t *ids, int n, int pos, float *logits,
                  bool all);

struct llm_engine {
    const llm_model *m;
    struct kern_pool *pool;
    struct llm_scratch sc;
};

struct llm_session {
    const llm_model *m;
    struct llm_kv kv;
    int n_ctx;
    int32_t *tokens; /* the n_tokens ids whose K/V rows are cached */
    size_t n_tokens, cap_tokens;
    float *logits; /* n_vocab: of the last evaluated position when has_logits */
    bool has_logits;
};

/*
 * One generation as a sequence of steps, so that the scheduler can run many
 * at once in one batched forward pass: llm_gen_begin checks the prompt; each
 * step is llm_gen_plan (take a prompt chunk, or sample one token, report it
 * and decide whether to go on), the forward pass of the planned tokens (alone:
 * llm_gen_step; with other generations: the scheduler's batch), then
 * llm_gen_commit. llm_gen_end frees. llm_generate is the loop.
 */
enum llm_gen_phase { LLM_GEN_PROMPT, LLM_GEN_DECODE, LLM_GEN_DONE };

struct llm_gen {
    llm_session *s;
    struct llm_gen_params params;
    llm_sampler *sampler;
    struct tok_stream stream;
    struct strbuf piece;
    int32_t *prompt;
    size_t n_prompt, prompt_pos;
    enum llm_gen_phase phase;
    int n_decoded;   /* forward passes of generated tokens */
    int32_t next_id; /* the sampled token a decode step feeds */
    int planned;     /* tokens of the planned step (0: none) */
    uint64_t t_start, t_prompt, t_decode;
    struct llm_gen_stats stats;
};

/* 0, or a negative LLM_ERR_* (g is then ended and stats->finish = error). */
int llm_gen_begin(struct llm_gen *g, llm_session *s, const int32_t *prompt, size_t n,
                  const struct llm_gen_params *p, struct echo_err *err);
/*
 * Plans the next step: a prompt chunk of at most max_prompt tokens, or (once
 * the prompt is in) samples a token from the last logits, reports it through
 * cb and, unless that ended the generation (stop token, limit, full context,
 * a callback's cancel), plans it to be run. Fills *out (kv, ids, n, pos,
 * logits) and returns true when there is something to run; false when the
 * generation is done. With max_prompt == 0 a prompting generation plans
 * nothing this step but is not done (returns true, out->n == 0).
 */
bool llm_gen_plan(struct llm_gen *g, int max_prompt, const struct llm_callbacks *cb,
                  struct llm_batch_seq *out);
/* Records the planned step as run; rc < 0 (the forward pass failed) ends the
 * generation with an error. */
void llm_gen_commit(struct llm_gen *g, int rc, const struct llm_callbacks *cb);
/* Plans, runs alone on e, commits; returns true while more steps remain. */
bool llm_gen_step(struct llm_gen *g, llm_engine *e, const struct llm_callbacks *cb);
/* Stops now with the given finish reason (cancelled, error) unless already done. */
void llm_gen_finish(struct llm_gen *g, enum llm_finish why, const struct llm_callbacks *cb);
void llm_gen_end(struct llm_gen *g);

/* Bytes of weights one decoded token reads (all matrices, the output matrix,
 * norms and biases, one embedding row). */
uint64_t llm_model_bytes_per_token(const llm_model *m);

#endif
