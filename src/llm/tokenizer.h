/*
 * tokenizer.h - Qwen2's byte-level BPE tokenizer: text <-> token ids.
 *
 * Encoding follows Hugging Face's tokenizers for Qwen2/Qwen2.5 exactly:
 *   1. invalid UTF-8 is replaced by U+FFFD (one per maximal invalid subpart);
 *   2. added tokens (<|im_start|>, ...) are cut out first, but only when the
 *      caller passes TOK_ENCODE_SPECIAL; otherwise they are plain text, so user
 *      text can never inject a control token;
 *   3. every other stretch is NFC-normalized (as tokenizer.json declares),
 *      split by the pre-tokenizer regex (PCRE2, UTF + UCP, JIT), and each piece
 *      is mapped to bytes and merged by BPE rank (lowest rank first, leftmost
 *      among equals).
 * Decoding maps ids back to bytes; tok_stream emits only complete UTF-8.
 *
 * A tokenizer comes from a GGUF file's tokenizer.ggml.* metadata or from a
 * Hugging Face tokenizer.json (+ tokenizer_config.json); both give the same
 * in-memory form.
 *
 * Threads: a loaded tokenizer is immutable; any number of threads may encode
 * and decode with it at once. Each thread keeps a small private cache and
 * PCRE2 match data (freed when the thread exits, or by tok_thread_cleanup).
 * A tok_stream belongs to one caller at a time.
 */
#ifndef ECHO_TOKENIZER_H
#define ECHO_TOKENIZER_H

#include "core/core.h"
#include "llm/gguf.h"

typedef struct tokenizer tokenizer;

/* Token types, numbered as GGUF's tokenizer.ggml.token_type. */
enum tok_type {
    TOK_TYPE_NORMAL = 1,
    TOK_TYPE_UNKNOWN = 2,
    TOK_TYPE_CONTROL = 3,      /* special added token: <|im_start|>, <|endoftext|> */
    TOK_TYPE_USER_DEFINED = 4, /* non-special added token: <tool_call> */
    TOK_TYPE_UNUSED = 5,       /* an id with no token (a hole in the vocabulary) */
    TOK_TYPE_BYTE = 6,
};

/* Largest vocabulary accepted (a sanity bound against absurd files). */
#define TOK_MAX_VOCAB (1 << 24)
/* Largest text tok_encode accepts (64 MiB): one pre-token of n bytes needs
 * about 40 n bytes of BPE work space, so this bounds what input can ask. */
#define TOK_MAX_TEXT (1 << 26)

/* ---- loading ------------------------------------------------------------ */

/* From a GGUF's metadata: tokenizer.ggml.model must be "gpt2"; tokens and
 * merges are required; token_type, pre, bos/eos/padding ids and
 * tokenizer.chat_template are optional. Tokens of type 3 (control) and 4
 * (user-defined) are the added tokens. The tokenizer copies what it needs: the
 * gguf_file may be closed afterwards. NULL on error (err filled). */
tokenizer *tok_load_gguf(const gguf_file *f, struct echo_err *err);

/* From a Hugging Face tokenizer.json, given as a file or as the folder that
 * holds it; tokenizer_config.json beside it is read when present (added tokens
 * of added_tokens_decoder, chat_template, bos/eos/pad tokens). */
tokenizer *tok_load_hf(const char *path, struct echo_err *err);
/* Same from memory (config may be NULL). Used by tests and the fuzzer. */
tokenizer *tok_load_hf_memory(const char *json, size_t len, const char *config, size_t config_len,
                              struct echo_err *err);

/* Any model path: a folder or a .json file -> tok_load_hf, else a GGUF file
 * (a vocabulary-only GGUF is fine). */
tokenizer *tok_load(const char *path, struct echo_err *err);

void tok_free(tokenizer *t);

/* ---- vocabulary ----------------------------------------------------------- */

/* Number of ids (the largest id + 1, holes included). */
int32_t tok_vocab_size(const tokenizer *t);
/* Type of an id; TOK_TYPE_UNUSED for an id outside the vocabulary. */
enum tok_type tok_token_type(const tokenizer *t, int32_t id);
/* The token as the vocabulary spells it (byte-level form for BPE tokens:
 * "ĠHello"; added tokens as written). NULL for an unknown id. Not
 * NUL-terminated: the length goes to *len. */
const char *tok_token_text(const tokenizer *t, int32_t id, size_t *len);
/* The bytes the token stands for (" Hello"); may be a partial UTF-8
 * character. NULL for an unknown id. */
const char *tok_token_bytes(const tokenizer *t, int32_t id, size_t *len);
/* The id of an added token with this content, else of a vocabulary entry
 * spelled this way; -1 when none. */
int32_t tok_find(const tokenizer *t, const char *text);
/* True for added tokens (control and user-defined). */
bool tok_is_added(const tokenizer *t, int32_t id);
/* Special ids from the model files; -1 when the files name none. */
int32_t tok_bos_id(const tokenizer *t);
int32_t tok_eos_id(const tokenizer *t);
int32_t tok_pad_id(const tokenizer *t);
/* The chat template (Jinja source) from the files, or NULL. */
const char *tok_chat_template(const tokenizer *t);
/* Number of merges and of added tokens (for `model info`). */
size_t tok_merge_count(const tokenizer *t);
size_t tok_added_count(const tokenizer *t);

/* ---- encoding ------------------------------------------------------------- */

/* A growable array of ids. */
struct tok_ids {
    int32_t *ids;
    size_t len;
    size_t cap;
};
void tok_ids_init(struct tok_ids *v);
void tok_ids_deinit(struct tok_ids *v);
void tok_ids_push(struct tok_ids *v, int32_t id);

enum {
    /* Match added tokens (<|im_start|> ...) in the text. Without it they are
     * encoded as plain text. */
    TOK_ENCODE_SPECIAL = 1u << 0,
};

/*
 * Encodes len bytes of text (any bytes; invalid UTF-8 becomes U+FFFD) and
 * appends the ids to out. No BOS/EOS is added. Returns 0, or -1 with err
 * filled when the regex engine fails (a resource limit); out then holds the
 * ids of the text before the failure, or for a text over TOK_MAX_TEXT bytes.
 * Cost is linear in the text, except that one pre-token (a "word") of n
 * bytes costs O(n log n): about 1 s for a single 1 MB word.
 */
int tok_encode(const tokenizer *t, const char *text, size_t len, unsigned flags,
               struct tok_ids *out, struct echo_err *err);

/* Number of tokens of a text (encodes into a scratch array); -1 on error. */
int64_t tok_count(const tokenizer *t, const char *text, size_t len, unsigned flags,
                  struct echo_err *err);

/* ---- decoding ------------------------------------------------------------- */

enum {
    /* Leave control tokens out of the text. */
    TOK_DECODE_SKIP_SPECIAL = 1u << 0,
};

/* Appends the bytes of the ids to out (raw: a cut multi-byte character stays
 * cut). -1 with err filled for an id outside the vocabulary (nothing of the
 * call is appended then). */
int tok_decode(const tokenizer *t, const int32_t *ids, size_t n, unsigned flags, struct strbuf *out,
               struct echo_err *err);

/*
 * Streaming decoder for generation: tok_stream_push appends only complete
 * UTF-8 to out. A multi-byte character cut across tokens is held until its
 * last byte arrives; bytes that can never form a valid character are
 * emitted as U+FFFD. tok_stream_flush ends the stream (a held incomplete
 * character becomes U+FFFD). Embedded: init, then push/flush; no free needed.
 */
struct tok_stream {
    const tokenizer *tok;
    unsigned flags; /* TOK_DECODE_* */
    uint8_t pending[4];
    uint8_t n_pending;
};
void tok_stream_init(struct tok_stream *s, const tokenizer *t, unsigned flags);
/* Returns the number of bytes appended, or -1 for an unknown id (err filled). */
int tok_stream_push(struct tok_stream *s, int32_t id, struct strbuf *out, struct echo_err *err);
size_t tok_stream_flush(struct tok_stream *s, struct strbuf *out);

/* ---- text helpers ------------------------------------------------------- */

/* Appends text to out with every maximal invalid UTF-8 subpart replaced by
 * U+FFFD (Unicode 15, section 3.9, "substitution of maximal subparts").
 * Returns the number of replacements. */
size_t tok_utf8_sanitize(const char *text, size_t len, struct strbuf *out);

/* Frees the calling thread's cache and match data now (they are also freed
 * when the thread exits). Safe to call any time; the next encode recreates
 * them. */
void tok_thread_cleanup(void);

/*
 * Deterministic mixed text for tests and the benchmark: English prose, code,
 * CJK, emoji, numbers, accented and other scripts, whitespace runs. Appends
 * about `bytes` bytes (whole UTF-8 characters) to out; the same seed gives
 * the same text.
 */
void tok_corpus_generate(struct strbuf *out, size_t bytes, uint64_t seed);

#endif
