/*
 * fuzz_tok_json.c - libFuzzer target for the tokenizer.json loader (with an
 * optional tokenizer_config.json: the input up to its first NUL byte is
 * tokenizer.json, the rest the config). Whatever loads must encode and
 * decode a sample text, with and without special tokens, and decoding a
 * plain encoding must give back the text (NFC-stable ASCII).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "llm/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *json = (const char *)data;
    const char *nul = memchr(data, 0, size);
    size_t len = nul ? (size_t)(nul - json) : size;
    const char *config = nul ? nul + 1 : NULL;
    size_t config_len = nul ? size - len - 1 : 0;
    struct echo_err err = {0};
    tokenizer *t = tok_load_hf_memory(json, len, config, config_len, &err);
    if (!t) {
        if (!err.msg[0]) abort(); /* every refusal says why */
        return 0;
    }
    static const char sample[] = "Hello, world! <|im_start|>x  y\n\tz 123";
    for (unsigned flags = 0; flags < 2; flags++) {
        struct tok_ids ids;
        tok_ids_init(&ids);
        /* A pattern from the input may exhaust PCRE2's match limit: an error
         * then, not a crash. */
        if (tok_encode(t, sample, sizeof(sample) - 1, flags, &ids, NULL) != 0) {
            tok_ids_deinit(&ids);
            continue;
        }
        struct strbuf out;
        strbuf_init(&out);
        if (tok_decode(t, ids.ids, ids.len, 0, &out, NULL) != 0) abort();
        if (!flags && (out.len != sizeof(sample) - 1 || memcmp(out.data, sample, out.len))) abort();
        strbuf_deinit(&out);
        tok_ids_deinit(&ids);
    }
    tok_free(t);
    return 0;
}
