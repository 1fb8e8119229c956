/*
 * fuzz_tok_encode.c - libFuzzer target for encoding: the first input byte
 * chooses the flags, the rest is the text (any bytes). The tokenizer is the
 * real Qwen2 vocabulary from $ECHO_SHARED_DIR (or ../shared) when present,
 * else a byte-level one built here. Checked on every input:
 *   - without special tokens, decode(encode(text)) is exactly the NFC of the
 *     text with invalid UTF-8 replaced (utf8proc on the whole text is the
 *     reference for Echo's piecewise NFC);
 *   - the streaming decoder emits only valid UTF-8 and, flushed, the same
 *     text as decode;
 *   - the linear and heap BPE agree on the input taken as one piece.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "llm/tok_internal.h"
#include "llm/tokenizer.h"

static tokenizer *tok;

static tokenizer *fallback_tokenizer(void)
{
    struct strbuf js;
    strbuf_init(&js);
    strbuf_puts(&js, "{\"normalizer\": {\"type\": \"NFC\"}, \"pre_tokenizer\": {\"type\": "
                     "\"ByteLevel\"}, \"added_tokens\": [{\"id\": 258, \"content\": "
                     "\"<|im_start|>\", \"special\": true}], \"model\": {\"type\": \"BPE\", "
                     "\"merges\": [\"a a\", \"aa a\"], \"vocab\": {\"aa\": 256, \"aaa\": 257");
    for (unsigned b = 0; b < 256; b++) {
        uint32_t cp = tok_byte_to_cp((uint8_t)b);
        utf8proc_uint8_t u[5] = {0};
        utf8proc_encode_char((utf8proc_int32_t)cp, u);
        strbuf_printf(&js, ", \"%s%s\": %u", (cp == '"' || cp == '\\') ? "\\" : "", (char *)u, b);
    }
    strbuf_puts(&js, "}}}");
    tokenizer *t = tok_load_hf_memory(js.data, js.len, NULL, 0, NULL);
    strbuf_deinit(&js);
    return t;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *dir = getenv("ECHO_SHARED_DIR");
    char path[1024];
    snprintf(path, sizeof(path), "%s/testdata/qwen2-vocab/ggml-vocab-qwen2.gguf",
             dir ? dir : "../shared");
    tok = tok_load(path, NULL);
    if (!tok) tok = fallback_tokenizer();
    if (!tok) abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) return 0;
    unsigned flags = data[0] & 1 ? TOK_ENCODE_SPECIAL : 0;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;

    struct tok_ids ids;
    tok_ids_init(&ids);
    if (tok_encode(tok, text, len, flags, &ids, NULL) != 0) abort();
    struct strbuf back, clean, piece, streamed;
    strbuf_init(&back);
    strbuf_init(&clean);
    strbuf_init(&piece);
    strbuf_init(&streamed);
    if (tok_decode(tok, ids.ids, ids.len, 0, &back, NULL) != 0) abort();
    if (!utf8_valid(strbuf_cstr(&back), back.len)) abort();
    if (!flags) {
        tok_utf8_sanitize(text, len, &clean);
        utf8proc_uint8_t *norm = NULL;
        utf8proc_ssize_t n =
            utf8proc_map((const utf8proc_uint8_t *)strbuf_cstr(&clean), (utf8proc_ssize_t)clean.len,
                         &norm, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
        if (n < 0 || (size_t)n != back.len || memcmp(norm, strbuf_cstr(&back), back.len) != 0)
            abort();
        free(norm);
    }
    struct tok_stream st;
    tok_stream_init(&st, tok, 0);
    for (size_t i = 0; i < ids.len; i++) {
        piece.len = 0;
        if (tok_stream_push(&st, ids.ids[i], &piece, NULL) < 0) abort();
        if (!utf8_valid(strbuf_cstr(&piece), piece.len)) abort();
        strbuf_append(&streamed, strbuf_cstr(&piece), piece.len);
    }
    tok_stream_flush(&st, &streamed);
    if (streamed.len != back.len || memcmp(strbuf_cstr(&streamed), strbuf_cstr(&back), back.len))
        abort();

    if (len && len <= 64) {
        struct tok_ids a, b;
        tok_ids_init(&a);
        tok_ids_init(&b);
        tok_bpe_raw(tok, (const uint8_t *)text, len, false, &a);
        tok_bpe_raw(tok, (const uint8_t *)text, len, true, &b);
        if (a.len != b.len || memcmp(a.ids, b.ids, a.len * sizeof(int32_t)) != 0) abort();
        tok_ids_deinit(&a);
        tok_ids_deinit(&b);
    }
    strbuf_deinit(&back);
    strbuf_deinit(&clean);
    strbuf_deinit(&piece);
    strbuf_deinit(&streamed);
    tok_ids_deinit(&ids);
    return 0;
}
