/*
 * tok_internal.h - what the tokenizer's files share (tokenizer.c: the
 * in-memory form, building, decoding; tok_encode.c: pre-tokenizer and BPE;
 * tok_load.c: the GGUF and tokenizer.json readers). Not a public header:
 * everything outside src/llm/tok*.c uses tokenizer.h.
 */
#ifndef ECHO_TOK_INTERNAL_H
#define ECHO_TOK_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "llm/tokenizer.h"

/* The pre-tokenizer regexes Echo knows by name (GGUF's tokenizer.ggml.pre).
 * Qwen2's is the Split pattern of Qwen2's tokenizer.json; GPT-2's is the one
 * HF's ByteLevel pre-tokenizer applies when use_regex is true. */
#define TOK_REGEX_QWEN2                                                                            \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "                          \
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define TOK_REGEX_GPT2                                                                             \
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"

/* One added token as the loaders describe it. */
struct tok_added_spec {
    int32_t id;
    const char *content;
    size_t len;
    bool special;     /* control (true) or user-defined */
    bool lstrip;      /* swallows whitespace on its left */
    bool rstrip;      /* swallows whitespace on its right */
    bool single_word; /* only matches when not inside a word */
};

/*
 * What a loader hands to tok_build. All strings are borrowed: they must stay
 * valid until tok_build returns (GGUF mapping, jansson tree). texts[i] is the
 * vocabulary spelling of id i (NULL for a hole); merges are (left, right)
 * pairs of vocabulary spellings in rank order.
 */
struct tok_spec {
    int32_t n_vocab;
    const char **texts;
    size_t *text_lens;
    uint8_t *types; /* enum tok_type per id */
    size_t n_merges;
    const char **merge_a, **merge_b;
    size_t *merge_a_len, *merge_b_len;
    struct tok_added_spec *added;
    size_t n_added;
    int32_t bos, eos, pad;
    const char *pattern; /* pre-tokenizer regex (PCRE2 syntax, HF/Oniguruma meaning) */
    bool nfc;
    const char *chat_template; /* may be NULL */
    size_t chat_template_len;
    const char *source; /* for messages: file name or "tokenizer.json" */
};

struct tok_added {
    int32_t id;
    uint32_t len;
    const char *content; /* inside the tokenizer's added pool */
    bool lstrip, rstrip, single_word;
};

struct tok_merge_slot {
    uint64_t key; /* (left id << 32) | right id; UINT64_MAX = empty */
    uint32_t rank;
    int32_t id; /* the merged token */
};

struct tokenizer {
    uint64_t uid; /* unique per tokenizer ever loaded: tags cache entries */
    int32_t n_vocab;
    uint8_t *types;
    /* Vocabulary spellings and decoded bytes: pools with n_vocab + 1 offsets. */
    char *text_pool;
    uint32_t *text_off;
    char *bytes_pool;
    uint32_t *bytes_off;
    /* Spelling -> id, open addressing (hash tag << 32 | id + 1; 0 = empty). */
    uint64_t *text_index;
    uint64_t text_index_mask;
    /* BPE */
    int32_t byte_id[256];
    struct tok_merge_slot *merges;
    uint64_t merges_mask;
    size_t n_merges;
    /* Added tokens, sorted by first byte then longest first; first_added[b]
     * .. first_added[b + 1] are those starting with byte b. */
    struct tok_added *added;
    size_t n_added;
    char *added_pool;
    uint32_t first_added[257];
    /* Pre-tokenizer */
    pcre2_code *re;
    bool jit;
    bool nfc;
    char *pattern;
    int32_t bos, eos, pad;
    char *chat_template;
};

/* tokenizer.c */
tokenizer *tok_build(const struct tok_spec *spec, struct echo_err *err);
int32_t tok_lookup_text(const tokenizer *t, const char *s, size_t len);
/* The GPT-2 byte <-> unicode mapping: code point of byte b, and the byte of a
 * code point (-1 when the code point is not in the mapping). */
uint32_t tok_byte_to_cp(uint8_t b);
int tok_cp_to_byte(uint32_t cp);
/* Classifies the UTF-8 sequence at s (n bytes left): returns 1 and its length
 * when valid, 0 when it is a valid but truncated prefix, -1 and the length of
 * the maximal invalid subpart otherwise. */
int tok_utf8_next(const uint8_t *s, size_t n, size_t *len);

/* tok_encode.c */
/* Merge look-up: rank and merged id of (a, b); false when they do not merge. */
static inline bool tok_merge_find(const tokenizer *t, int32_t a, int32_t b, uint32_t *rank,
                                  int32_t *id)
{
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    uint64_t h = (key * 0x9E3779B97F4A7C15ull) >> 20;
    for (;;) {
        const struct tok_merge_slot *s = &t->merges[h & t->merges_mask];
        if (s->key == key) {
            *rank = s->rank;
            *id = s->id;
            return true;
        }
        if (s->key == UINT64_MAX) return false;
        h++;
    }
}

/* Builds the process-wide table of NFC-unstable code points (once, ~10 ms),
 * so that the first encode does not pay for it. */
void tok_nfc_prepare(void);

/* BPE of one piece of raw bytes without cache or pre-tokenizer; `large`
 * forces the heap algorithm (tests check both give the same ids). */
void tok_bpe_raw(const tokenizer *t, const uint8_t *s, size_t n, bool large, struct tok_ids *out);

/* Rewrites a tokenizer.json / GGUF regex for PCRE2 (\s as Unicode
 * White_Space, like Oniguruma). Caller frees. */
char *tok_regex_translate(const char *pattern);

#endif
