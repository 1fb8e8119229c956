/*
 * llm_cli.h - what the engine commands (generate, chat, logits, bench,
 * model) share: the common flags (-m, -t, --ctx, --dtype, --kv, sampling),
 * their defaults from the settings (ECHO_MODEL, ECHO_CONTEXT,
 * ECHO_MODEL_THREADS), loading the model with a clear message, and parsing
 * id lists. Used from the main thread of a command only.
 */
#ifndef ECHO_APP_LLM_CLI_H
#define ECHO_APP_LLM_CLI_H

#include <getopt.h>
#include <stdio.h>

#include "llm/llm.h"

/* getopt_long codes of the shared long options (beyond any char). */
enum {
    LLM_OPT_CTX = 1000,
    LLM_OPT_DTYPE,
    LLM_OPT_KV,
    LLM_OPT_NO_REPACK,
    LLM_OPT_TEMP,
    LLM_OPT_TOP_K,
    LLM_OPT_TOP_P,
    LLM_OPT_MIN_P,
    LLM_OPT_REPEAT_PENALTY,
    LLM_OPT_REPEAT_LAST_N,
    LLM_OPT_SEED,
    LLM_OPT_UBATCH,
    LLM_OPT_FIRST_FREE, /* commands number their own options from here */
};

/* The shared options, to splice into a command's getopt_long table. */
#define LLM_CLI_MODEL_OPTIONS                                                                      \
    {"model", required_argument, NULL, 'm'}, {"threads", required_argument, NULL, 't'},            \
        {"ctx", required_argument, NULL, LLM_OPT_CTX},                                             \
        {"dtype", required_argument, NULL, LLM_OPT_DTYPE},                                         \
        {"kv", required_argument, NULL, LLM_OPT_KV},                                               \
        {"no-repack", no_argument, NULL, LLM_OPT_NO_REPACK},                                       \
    {                                                                                              \
        "ubatch", required_argument, NULL, LLM_OPT_UBATCH                                          \
    }
#define LLM_CLI_SAMPLING_OPTIONS                                                                   \
    {"temp", required_argument, NULL, LLM_OPT_TEMP},                                               \
        {"top-k", required_argument, NULL, LLM_OPT_TOP_K},                                         \
        {"top-p", required_argument, NULL, LLM_OPT_TOP_P},                                         \
        {"min-p", required_argument, NULL, LLM_OPT_MIN_P},                                         \
        {"repeat-penalty", required_argument, NULL, LLM_OPT_REPEAT_PENALTY},                       \
        {"repeat-last-n", required_argument, NULL, LLM_OPT_REPEAT_LAST_N},                         \
    {                                                                                              \
        "seed", required_argument, NULL, LLM_OPT_SEED                                              \
    }

#define LLM_CLI_MODEL_HELP                                                                         \
    "  -m, --model PATH       GGUF file or Hugging Face folder (default: ECHO_MODEL)\n"            \
    "  -t, --threads N        engine threads (default: ECHO_MODEL_THREADS, 0 = one per core)\n"    \
    "      --ctx N            context length cap (default: ECHO_CONTEXT)\n"                        \
    "      --dtype T          weight type for Hugging Face folders: q8_0 (default), q4_0, bf16,\n" \
    "                         f16, f32\n"                                                          \
    "      --kv T             KV cache entries: f16 (default) or f32\n"                            \
    "      --ubatch N         prompt tokens per forward pass (default 512)\n"                      \
    "      --no-repack        keep weights in the file layout (no kernel repacking)\n"

#define LLM_CLI_SAMPLING_HELP                                                                      \
    "      --temp T           temperature; 0 = greedy (no repetition penalty unless given)\n"      \
    "      --top-k K          keep the K most likely tokens (0 = off)\n"                           \
    "      --top-p P          nucleus sampling (1 = off)\n"                                        \
    "      --min-p P          drop tokens below P x the most likely (0 = off)\n"                   \
    "      --repeat-penalty R repetition penalty (1 = off)\n"                                      \
    "      --repeat-last-n N  tokens the penalty looks back over (-1 = all)\n"                     \
    "      --seed N           random seed (same seed, same text)\n"                                \
    "  Sampling defaults come from the model (generation_config.json / GGUF), else\n"              \
    "  Qwen2.5-Instruct's: temperature 0.7, top-p 0.8, top-k 20, repetition penalty 1.1.\n"

struct llm_cli {
    const char *cmd; /* for messages: "generate" */
    const char *model;
    int threads;
    int ctx;
    int ubatch;
    enum llm_dtype dtype;
    enum llm_kv_type kv;
    bool no_repack;
    /* Sampling flags given on the command line (applied over the model's). */
    struct llm_sampling sampling;
    bool set_temp, set_top_k, set_top_p, set_min_p, set_penalty, set_last_n, set_seed;
};

/* Fills defaults from the settings (.env and the environment). -1 on a bad setting. */
int llm_cli_init(struct llm_cli *c, const char *cmd);
/*
 * Handles one option of the shared sets. Returns 1 when opt was one of them
 * (and its argument was valid), 0 when it is not a shared option, -1 on a
 * bad argument (message printed).
 */
int llm_cli_option(struct llm_cli *c, int opt, const char *arg);
/* Loads the model named by -m / ECHO_MODEL; prints the error and returns NULL on failure. */
llm_model *llm_cli_load(const struct llm_cli *c);
/* The model's sampling defaults with the command-line flags applied. */
void llm_cli_sampling(const struct llm_cli *c, const llm_model *m, struct llm_sampling *out);
/* Parses "1,2,3" or "1 2 3" into ids (appended); -1 with a message on bad input. */
int llm_cli_parse_ids(const char *cmd, const char *text, struct tok_ids *out);
/* Prints "echobot CMD: msg" to stderr. */
void llm_cli_error(const struct llm_cli *c, const struct echo_err *err);

#endif
