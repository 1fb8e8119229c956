/*
 * llm.h - the public face of Echo's inference engine: load a Qwen2 model
 * (GGUF or a Hugging Face folder), keep conversations in sessions with their
 * own KV cache, generate text with streaming callbacks, and serve many
 * requests through a scheduler thread. The tokenizer (tokenizer.h) and the
 * ChatML helpers (chat.h) are re-exported from here, so a layer above llm/
 * includes this header only.
 *
 * The pieces:
 *   llm_model    weights + tokenizer + hyperparameters; immutable once loaded.
 *   llm_engine   the compute context of one thread: a thread pool and the
 *                forward pass's scratch memory.
 *   llm_session  one conversation's KV cache and the tokens it holds. A new
 *                prompt that extends those tokens only computes the new ones.
 *   llm_generate prompt -> streamed text pieces (complete UTF-8 only), with
 *                sampling, stop tokens, a token limit and cancellation.
 *   llm_sched    a request queue served by one engine thread, for the web
 *                layer, with continuous batching (the active requests' next
 *                tokens share one forward pass per step): submit returns at
 *                once, pieces and the end arrive through callbacks; one
 *                session is kept per conversation key under a memory budget
 *                (least recently used evicted first).
 *
 * Threads:
 *   - A loaded llm_model is immutable: any number of threads may use it (and
 *     its tokenizer) at once, e.g. one session per thread.
 *   - An llm_engine (and the kern_pool inside it) belongs to one thread at a
 *     time; an llm_session is used by one thread at a time. Different
 *     sessions with different engines on different threads are safe.
 *   - llm_sched_* functions are thread-safe. The scheduler's engine thread
 *     owns its engine and sessions. Sink callbacks run on that thread, with
 *     no scheduler lock held, so they may call llm_sched_submit/cancel; they
 *     must return quickly (hand the text to a queue) and must not call
 *     llm_sched_free.
 *
 * Errors are values: functions return 0 or a negative LLM_ERR_* code (or
 * NULL) and fill an optional struct echo_err. Bad model files, token ids out
 * of range and prompts longer than the context are errors, never crashes.
 */
#ifndef ECHO_LLM_H
#define ECHO_LLM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/core.h"
#include "llm/chat.h"
#include "llm/gguf.h"
#include "llm/tokenizer.h"

/* ---- errors -------------------------------------------------------------- */

enum {
    LLM_ERR_IO = -1,          /* a file could not be read / written */
    LLM_ERR_BAD_FILE = -2,    /* a model file is malformed or inconsistent */
    LLM_ERR_UNSUPPORTED = -3, /* a valid file Echo cannot run (architecture, type) */
    LLM_ERR_BAD_INPUT = -4,   /* an argument is invalid (id out of range, empty prompt) */
    LLM_ERR_TOO_LONG = -5,    /* the prompt does not fit in the context */
    LLM_ERR_SHUTDOWN = -6,    /* the scheduler is stopping */
    LLM_ERR_BUSY = -7,        /* the scheduler's queue is full */
    LLM_ERR_NOT_FOUND = -8,   /* no such request */
    LLM_ERR_NETWORK = -9,     /* a download failed */
    LLM_ERR_CHECKSUM = -10,   /* a download does not match its SHA-256 */
};

/* ---- models ---------------------------------------------------------------- */

typedef struct llm_model llm_model;

/* Runtime weight types a Hugging Face folder can be converted to at load. */
enum llm_dtype {
    LLM_DTYPE_DEFAULT = 0, /* Q8_0 */
    LLM_DTYPE_F32,
    LLM_DTYPE_F16,
    LLM_DTYPE_BF16,
    LLM_DTYPE_Q8_0,
    LLM_DTYPE_Q4_0,
};
/* "f32", "f16", "bf16", "q8_0", "q4_0" -> 0, else -1. */
int llm_dtype_parse(const char *name, enum llm_dtype *out);

/* Options of llm_model_load; zero-initialized means the defaults. */
struct llm_load_opts {
    enum llm_dtype dtype; /* HF folders only: type of the converted matrices */
    int max_context;      /* cap on the context length (0: the model's own) */
    bool no_repack;       /* keep matrices in the file layout (no kernel repacking) */
};

/* What a model is; filled at load. */
struct llm_model_info {
    char arch[32];       /* "qwen2" */
    char name[128];      /* general.name, or the folder name */
    char format[8];      /* "gguf" or "hf" */
    char weight_type[8]; /* type of the layer matrices: "q8_0", "f32", ... */
    int n_vocab;         /* rows of the embedding */
    int n_ctx;           /* usable context (after the cap) */
    int n_ctx_train;     /* the model's own context length */
    int hidden, n_layers, n_heads, n_kv_heads, head_dim, ffn;
    float rope_theta, rms_eps;
    bool tied; /* logits through the token embedding */
    uint64_t n_params;
    uint64_t weights_bytes; /* bytes of the weights as the engine reads them */
    uint64_t file_bytes;    /* size of the model file(s) */
};

/*
 * Loads a model: a GGUF file (mapped, zero copy) or a Hugging Face folder
 * (config.json, model.safetensors or shards + index, tokenizer.json,
 * optional tokenizer_config.json and generation_config.json), converted to
 * opts->dtype. opts may be NULL. NULL on error with err naming the file and
 * the problem (missing tensor, shape mismatch, unsupported type, ...).
 */
llm_model *llm_model_load(const char *path, const struct llm_load_opts *opts, struct echo_err *err);
void llm_model_free(llm_model *m);
const struct llm_model_info *llm_model_get_info(const llm_model *m);
const tokenizer *llm_model_tokenizer(const llm_model *m);
/* True for the ids that end a generation: the model's eos, <|im_end|>,
 * <|endoftext|> and generation_config.json's eos_token_id. */
bool llm_model_is_stop(const llm_model *m, int32_t id);
/* Bytes of weights one generated token reads (for bandwidth figures). */
uint64_t llm_model_bytes_per_token(const llm_model *m);

/* ---- sampling ------------------------------------------------------------------ */

/*
 * Applied in the order of Hugging Face's generate (and vLLM): repetition
 * penalty, temperature, top-k, top-p, min-p, then a draw. temperature <= 0
 * is greedy (argmax after the penalty).
 */
struct llm_sampling {
    float temperature;    /* <= 0: greedy */
    int top_k;            /* <= 0: off */
    float top_p;          /* >= 1: off */
    float min_p;          /* <= 0: off; keeps p >= min_p * p_max */
    float repeat_penalty; /* 1: off; >1 lowers tokens seen recently */
    int repeat_last_n;    /* tokens the penalty looks back over (-1: all, 0: none) */
    uint64_t seed;        /* same seed, same prompt -> same text; LLM_SEED_RANDOM: a fresh one */
};
#define LLM_SEED_RANDOM UINT64_MAX

/* Qwen2.5-Instruct's published defaults: temperature 0.7, top_p 0.8, top_k
 * 20, repetition_penalty 1.1 (min_p 0, last 64 tokens, a random seed). */
void llm_sampling_default(struct llm_sampling *s);
/* The model's own defaults: generation_config.json or the GGUF's
 * general.sampling.* keys, else llm_sampling_default. */
const struct llm_sampling *llm_model_sampling(const llm_model *m);

typedef struct llm_sampler llm_sampler;
llm_sampler *llm_sampler_new(const struct llm_sampling *p, int n_vocab);
void llm_sampler_free(llm_sampler *s);
/* Picks the next token from logits (n_vocab values, modified in place).
 * history: the tokens so far (for the repetition penalty). */
int32_t llm_sampler_sample(llm_sampler *s, float *logits, const int32_t *history, size_t n_history);

/* ---- engines and sessions -------------------------------------------------------- */

typedef struct llm_engine llm_engine;
typedef struct llm_session llm_session;

/* A compute context: n_threads (0: one per core) and scratch memory for
 * prompts processed ubatch tokens at a time (0: 512). */
llm_engine *llm_engine_new(const llm_model *m, int n_threads, int ubatch, struct echo_err *err);
void llm_engine_free(llm_engine *e);
int llm_engine_threads(const llm_engine *e);
/* The machine's memory read bandwidth in GB/s measured with the engine's
 * threads over a buffer of `bytes` (best of reps); -1 when it cannot
 * allocate. For `echobot bench`. */
double llm_engine_read_bandwidth(llm_engine *e, size_t bytes, int reps);

enum llm_kv_type { LLM_KV_F16 = 0, LLM_KV_F32 = 1 };

struct llm_session_opts {
    int n_ctx;                /* 0: the model's context */
    enum llm_kv_type kv_type; /* default F16 */
};

/* A session with an empty KV cache (memory grows with use up to n_ctx). opts may be NULL. */
llm_session *llm_session_new(const llm_model *m, const struct llm_session_opts *opts,
                             struct echo_err *err);
void llm_session_free(llm_session *s);
/* Forgets every cached token (keeps the memory). */
void llm_session_reset(llm_session *s);
int llm_session_n_ctx(const llm_session *s);
/* The tokens whose keys and values are cached, in order. */
size_t llm_session_n_cached(const llm_session *s);
const int32_t *llm_session_tokens(const llm_session *s);
/* Memory the session holds (KV cache and token list). */
size_t llm_session_bytes(const llm_session *s);

/*
 * Makes the session hold exactly ids[0..n) and computes the logits of the
 * last position. Tokens already cached as a prefix are reused (*reused, may be
 * NULL, says how many), so a chat's next turn only computes its new tokens.
 * Errors: LLM_ERR_BAD_INPUT for n == 0 or an id outside the vocabulary,
 * LLM_ERR_TOO_LONG when n exceeds the context.
 */
int llm_session_eval(llm_session *s, llm_engine *e, const int32_t *ids, size_t n, size_t *reused,
                     struct echo_err *err);
/* Logits (n_vocab floats) of the last evaluated position, NULL if none. */
const float *llm_session_logits(const llm_session *s);
/* Appends ids to what is cached (no prefix matching) and writes the logits of
 * every one of them to logits (n x n_vocab floats). For tests and tools. */
int llm_session_eval_all(llm_session *s, llm_engine *e, const int32_t *ids, size_t n, float *logits,
                         struct echo_err *err);

/* ---- generation ------------------------------------------------------------------------ */

enum llm_finish {
    LLM_FINISH_NONE = 0,
    LLM_FINISH_STOP,      /* a stop token (<|im_end|>, <|endoftext|>) */
    LLM_FINISH_LENGTH,    /* max_tokens, or the context is full */
    LLM_FINISH_CANCELLED, /* a callback or llm_sched_cancel asked to stop */
    LLM_FINISH_ERROR,
};
/* "stop", "length", "cancelled", "error" ("none"). */
const char *llm_finish_name(enum llm_finish f);

struct llm_gen_params {
    struct llm_sampling sampling;
    int max_tokens;   /* <= 0: until a stop token or the end of the context */
    bool ignore_stop; /* keep going past stop tokens (benchmarks) */
    /* More token ids that end the generation like <|im_end|> (copied by the
     * scheduler; may be NULL). */
    const int32_t *stop_ids;
    size_t n_stop_ids;
};
/* The model's sampling defaults and max_tokens = 0. */
void llm_gen_params_default(struct llm_gen_params *p, const llm_model *m);

struct llm_gen_stats {
    enum llm_finish finish;
    int prompt_tokens;     /* length of the prompt */
    int reused_tokens;     /* of which were already in the KV cache */
    int completion_tokens; /* tokens generated (the stop token not counted) */
    double prompt_seconds, gen_seconds;
    double prompt_tps; /* computed prompt tokens per second */
    double gen_tps;    /* generated tokens per second */
    char error[256];   /* the message when finish == LLM_FINISH_ERROR */
};

struct llm_callbacks {
    /* A piece of generated text, complete UTF-8 (never a cut character).
     * Return non-zero to stop (finish = cancelled). May be NULL. */
    int (*on_piece)(void *user, const char *text, size_t len);
    /* Each generated token id before its text (stop tokens included).
     * Return non-zero to stop. May be NULL. */
    int (*on_token)(void *user, int32_t id);
    void *user;
};

/*
 * Evaluates the prompt (reusing the session's cached prefix) and generates
 * until a stop token, max_tokens, the end of the context, or a callback
 * cancels. Returns 0 when it finished with stop/length/cancelled (stats say
 * which), a negative LLM_ERR_* on error (stats->finish = error). stats may be
 * NULL. After the call the session holds the prompt and the generated tokens
 * (except the last one sampled), ready for the next turn.
 */
int llm_generate(llm_session *s, llm_engine *e, const int32_t *prompt, size_t n_prompt,
                 const struct llm_gen_params *params, const struct llm_callbacks *cb,
                 struct llm_gen_stats *stats, struct echo_err *err);

/* ---- the scheduler ------------------------------------------------------------------------- */

typedef struct llm_sched llm_sched;

struct llm_sched_opts {
    int n_threads; /* engine threads (0: one per core) */
    int n_ctx;     /* context per conversation (0: the model's) */
    enum llm_kv_type kv_type;
    size_t kv_budget_bytes; /* memory for idle sessions' KV caches (0: 512 MB) */
    int max_active;         /* requests served at once, batched (0: 4, at most 64) */
    int max_queue;          /* waiting requests before submit says BUSY (0: 256) */
};

/* How the engine thread reports on one request. Both run on the engine thread. */
struct llm_sink {
    /* A piece of the answer (complete UTF-8). May be NULL. */
    void (*on_piece)(void *user, uint64_t id, const char *text, size_t len);
    /* Called exactly once per accepted request, last; user may be freed after. */
    void (*on_end)(void *user, uint64_t id, const struct llm_gen_stats *stats);
    void *user;
};

/* One chat request. Either ids (a ready prompt) or messages (rendered with
 * ChatML, the default system prompt added when none is given, the oldest
 * turns dropped to fit the context minus max_tokens). */
struct llm_request {
    const char *conversation; /* key of the KV session to reuse (NULL: none kept) */
    const int32_t *ids;
    size_t n_ids;
    const struct chat_message *messages;
    size_t n_messages;
    struct llm_gen_params params;
};

llm_sched *llm_sched_new(const llm_model *m, const struct llm_sched_opts *opts,
                         struct echo_err *err);
/* Stops the engine thread: every request not yet ended gets on_end with
 * finish = cancelled before this returns. */
void llm_sched_free(llm_sched *s);
/*
 * Queues a request and returns at once with its id (> 0). The prompt is
 * prepared (tokenized, fitted) on the calling thread, so a prompt that
 * cannot fit is refused here (LLM_ERR_TOO_LONG), as are a full queue
 * (LLM_ERR_BUSY) and a stopping scheduler; sink->on_end is then NOT called.
 */
int llm_sched_submit(llm_sched *s, const struct llm_request *req, const struct llm_sink *sink,
                     uint64_t *id, struct echo_err *err);
/* Asks a queued or running request to stop (on_end says cancelled, with the
 * text produced so far already delivered). LLM_ERR_NOT_FOUND when it has
 * already ended. Takes effect within one decode step. */
int llm_sched_cancel(llm_sched *s, uint64_t id);
/* Drops the cached session of a conversation (e.g. its history was cleared);
 * a running request keeps its session until it ends. */
void llm_sched_forget(llm_sched *s, const char *conversation);

struct llm_sched_stats {
    size_t queued, active;
    size_t sessions;    /* sessions kept (idle and active) */
    size_t kv_bytes;    /* their memory */
    uint64_t completed; /* requests ended since start */
};
void llm_sched_get_stats(llm_sched *s, struct llm_sched_stats *out);

/*
 * The engine's settings (core/settings.def) as options: ECHO_CONTEXT caps the
 * context (load->max_context, sched->n_ctx), ECHO_MODEL_THREADS sets the
 * threads and ECHO_KV_CACHE_MB the sessions' memory budget. Fields not tied
 * to a setting are left as they are. Either pointer may be NULL.
 */
void llm_opts_from_config(const config *c, struct llm_load_opts *load,
                          struct llm_sched_opts *sched);

/* ---- model files ------------------------------------------------------------------------------
 */

struct llm_pull_opts {
    const char *url;      /* required */
    const char *out;      /* destination path (its folder is created) */
    const char *sha256;   /* expected hex digest; NULL or "" skips the check */
    bool if_missing;      /* succeed at once when out exists */
    bool progress;        /* draw a progress bar on stderr */
    long connect_timeout; /* seconds (0: 10) */
};

/*
 * Downloads url to out: into out.part (resumed with an HTTP Range request
 * when it exists), then the SHA-256 of the whole file is checked and only a
 * verified file is renamed to out. A mismatch deletes the .part file
 * (LLM_ERR_CHECKSUM). Network failures leave the .part for the next resume
 * (LLM_ERR_NETWORK).
 */
int llm_model_pull(const struct llm_pull_opts *opts, struct echo_err *err);

#endif
