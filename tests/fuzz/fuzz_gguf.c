/*
 * fuzz_gguf.c - libFuzzer target for the GGUF reader and the tokenizer's
 * GGUF loader. Beyond "no crash, no leak, no out-of-bounds read" (ASan sees
 * the input as an exact-size buffer), whatever opens must be consistent:
 * every string array walks to exactly its recorded size, every tensor's data
 * lies inside the buffer and is found again by name, and a tokenizer built
 * from the metadata encodes and decodes a sample text.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "llm/gguf.h"
#include "llm/tokenizer.h"

static void check_tokenizer(const gguf_file *f)
{
    tokenizer *t = tok_load_gguf(f, NULL);
    if (!t) return;
    static const char sample[] = "Hello, y'all! <|im_start|> 你好 🦙 123\n\n  x";
    struct tok_ids ids;
    tok_ids_init(&ids);
    if (tok_encode(t, sample, sizeof(sample) - 1, TOK_ENCODE_SPECIAL, &ids, NULL) != 0) abort();
    struct strbuf out;
    strbuf_init(&out);
    if (tok_decode(t, ids.ids, ids.len, 0, &out, NULL) != 0) abort();
    strbuf_deinit(&out);
    tok_ids_deinit(&ids);
    tok_free(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    gguf_file *f = gguf_open_memory(data, size, NULL);
    if (!f) return 0;
    for (uint64_t i = 0; i < gguf_kv_count(f); i++) {
        const struct gguf_kv *kv = gguf_kv_at(f, i);
        if (kv->value.type != GGUF_TYPE_ARRAY) continue;
        const struct gguf_value *a = &kv->value;
        if (a->v.array.elem_type == GGUF_TYPE_STRING) {
            uint64_t pos = 0;
            for (uint64_t k = 0; k < a->v.array.count; k++)
                (void)gguf_array_next_str(a, &pos);
            if (pos != a->v.array.size) abort();
        } else {
            int64_t v;
            for (uint64_t k = 0; k < a->v.array.count && k < 4096; k++)
                (void)gguf_array_get_i64(a, k, &v);
        }
    }
    volatile uint8_t sink = 0;
    for (uint64_t i = 0; i < gguf_tensor_count(f); i++) {
        const struct gguf_tensor *t = gguf_tensor_at(f, i);
        const uint8_t *p = t->data;
        if (p < data || p > data + size || t->size > (uint64_t)(data + size - p)) abort();
        if (t->size) sink ^= p[0] ^ p[t->size - 1];
        char *name = strndup(t->name.ptr, t->name.len);
        if (strlen(name) == t->name.len && gguf_find_tensor(f, name) != t) abort();
        free(name);
    }
    (void)sink;
    check_tokenizer(f);
    gguf_close(f);
    return 0;
}
