/*
 * tok_load.c - the two tokenizer readers: GGUF metadata (tokenizer.ggml.*)
 * and Hugging Face's tokenizer.json (+ tokenizer_config.json, via jansson).
 *
 * Each reader only checks and collects what the file says into a tok_spec
 * (borrowing strings from the GGUF mapping or the JSON tree); tok_build
 * (tokenizer.c) turns that into the tokenizer, so both paths give the same
 * in-memory form. Anything Echo cannot reproduce exactly (another model type,
 * normalizer or pre-tokenizer, byte fallback, ignore_merges) is refused with
 * a message naming it, rather than tokenizing differently from the model's
 * own tokenizer.
 */
#include "llm/tok_internal.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void spec_free(struct tok_spec *sp)
{
    free(sp->texts);
    free(sp->text_lens);
    free(sp->types);
    free(sp->merge_a);
    free(sp->merge_b);
    free(sp->merge_a_len);
    free(sp->merge_b_len);
    free(sp->added);
}

static void spec_alloc_vocab(struct tok_spec *sp, int32_t n)
{
    sp->n_vocab = n;
    sp->texts = xcalloc((size_t)n, sizeof(*sp->texts));
    sp->text_lens = xcalloc((size_t)n, sizeof(*sp->text_lens));
    sp->types = xcalloc((size_t)n, 1);
}

static void spec_alloc_merges(struct tok_spec *sp, size_t n)
{
    sp->n_merges = n;
    sp->merge_a = xcalloc(n ? n : 1, sizeof(*sp->merge_a));
    sp->merge_b = xcalloc(n ? n : 1, sizeof(*sp->merge_b));
    sp->merge_a_len = xcalloc(n ? n : 1, sizeof(*sp->merge_a_len));
    sp->merge_b_len = xcalloc(n ? n : 1, sizeof(*sp->merge_b_len));
}

/* "a b" -> a, b. Like llama.cpp, the space is searched from the second byte
 * on, so a merge whose left part is itself a space still splits. */
static bool split_merge(const char *s, size_t n, struct tok_spec *sp, size_t i)
{
    const char *sep = n > 1 ? memchr(s + 1, ' ', n - 1) : NULL;
    if (!sep) return false;
    sp->merge_a[i] = s;
    sp->merge_a_len[i] = (size_t)(sep - s);
    sp->merge_b[i] = sep + 1;
    sp->merge_b_len[i] = n - (size_t)(sep - s) - 1;
    return true;
}

/* ---- GGUF ----------------------------------------------------------------- */

static int gguf_opt_id(const gguf_file *f, const char *key, int32_t *out, struct echo_err *err)
{
    *out = -1;
    if (!gguf_find(f, key)) return 0;
    uint64_t v;
    if (gguf_get_u64(f, key, &v, err) < 0) return -1;
    if (v >= TOK_MAX_VOCAB) {
        echo_err_set(err, "gguf: %s = %llu is not a token id", key, (unsigned long long)v);
        return -1;
    }
    *out = (int32_t)v;
    return 0;
}

tokenizer *tok_load_gguf(const gguf_file *f, struct echo_err *err)
{
    struct tok_spec sp = {0};
    tokenizer *t = NULL;
    sp.source = "gguf";
    struct gguf_str model, pre = {NULL, 0}, tmpl = {NULL, 0};
    if (!gguf_find(f, "tokenizer.ggml.model")) {
        echo_err_set(err, "gguf: the file has no tokenizer (tokenizer.ggml.model is missing)");
        return NULL;
    }
    if (gguf_get_str(f, "tokenizer.ggml.model", &model, err) < 0) return NULL;
    if (model.len != 4 || memcmp(model.ptr, "gpt2", 4) != 0) {
        echo_err_set(err,
                     "gguf: tokenizer model '%.*s' is not supported (Echo reads byte-level BPE, "
                     "\"gpt2\")",
                     (int)(model.len > 64 ? 64 : model.len), model.ptr);
        return NULL;
    }
    const struct gguf_value *tokens, *merges, *types = NULL;
    if (gguf_get_array(f, "tokenizer.ggml.tokens", GGUF_TYPE_STRING, &tokens, err) < 0 ||
        gguf_get_array(f, "tokenizer.ggml.merges", GGUF_TYPE_STRING, &merges, err) < 0)
        return NULL;
    uint64_t n = tokens->v.array.count;
    if (n < 256 || n > TOK_MAX_VOCAB) {
        echo_err_set(err, "gguf: tokenizer.ggml.tokens has %llu entries (expected 256..%d)",
                     (unsigned long long)n, TOK_MAX_VOCAB);
        return NULL;
    }
    const struct gguf_kv *tt = gguf_find(f, "tokenizer.ggml.token_type");
    if (tt) {
        if (tt->value.type != GGUF_TYPE_ARRAY || tt->value.v.array.count != n) {
            echo_err_set(err,
                         "gguf: tokenizer.ggml.token_type must be an integer array of %llu "
                         "entries, one per token",
                         (unsigned long long)n);
            return NULL;
        }
        types = &tt->value;
    }
    if (gguf_find(f, "tokenizer.ggml.pre") && gguf_get_str(f, "tokenizer.ggml.pre", &pre, err) < 0)
        return NULL;
    if (gguf_find(f, "tokenizer.chat_template") &&
        gguf_get_str(f, "tokenizer.chat_template", &tmpl, err) < 0)
        return NULL;
    if (gguf_opt_id(f, "tokenizer.ggml.bos_token_id", &sp.bos, err) < 0 ||
        gguf_opt_id(f, "tokenizer.ggml.eos_token_id", &sp.eos, err) < 0 ||
        gguf_opt_id(f, "tokenizer.ggml.padding_token_id", &sp.pad, err) < 0)
        return NULL;

    /* Qwen2 files name their pre-tokenizer "qwen2"; older GPT-2 style files
     * name none ("default" in llama.cpp). Hugging Face's Qwen2 tokenizer.json
     * declares NFC, GPT-2's no normalizer. */
    if (pre.ptr && pre.len == 5 && !memcmp(pre.ptr, "qwen2", 5)) {
        sp.pattern = TOK_REGEX_QWEN2;
        sp.nfc = true;
    } else if (!pre.ptr || (pre.len == 7 && !memcmp(pre.ptr, "default", 7)) ||
               (pre.len == 4 && !memcmp(pre.ptr, "gpt2", 4)) ||
               (pre.len == 5 && !memcmp(pre.ptr, "gpt-2", 5))) {
        sp.pattern = TOK_REGEX_GPT2;
        sp.nfc = false;
    } else {
        echo_err_set(err,
                     "gguf: pre-tokenizer '%.*s' is not supported (Echo knows \"qwen2\" and "
                     "\"gpt2\"/\"default\")",
                     (int)(pre.len > 64 ? 64 : pre.len), pre.ptr);
        return NULL;
    }
    sp.chat_template = tmpl.ptr;
    sp.chat_template_len = (size_t)tmpl.len;

    spec_alloc_vocab(&sp, (int32_t)n);
    size_t n_added = 0;
    uint64_t pos = 0;
    for (uint64_t i = 0; i < n; i++) {
        struct gguf_str s = gguf_array_next_str(tokens, &pos);
        sp.texts[i] = s.ptr;
        sp.text_lens[i] = (size_t)s.len;
        int64_t type = TOK_TYPE_NORMAL;
        if (types && gguf_array_get_i64(types, i, &type) < 0) {
            echo_err_set(err, "gguf: tokenizer.ggml.token_type is not an integer array");
            goto fail;
        }
        if (type < TOK_TYPE_NORMAL || type > TOK_TYPE_BYTE) {
            echo_err_set(err, "gguf: token %llu has unknown type %lld", (unsigned long long)i,
                         (long long)type);
            goto fail;
        }
        sp.types[i] = (uint8_t)type;
        n_added += type == TOK_TYPE_CONTROL || type == TOK_TYPE_USER_DEFINED;
    }
    sp.added = xcalloc(n_added ? n_added : 1, sizeof(*sp.added));
    for (uint64_t i = 0; i < n; i++) {
        if (sp.types[i] != TOK_TYPE_CONTROL && sp.types[i] != TOK_TYPE_USER_DEFINED) continue;
        if (sp.text_lens[i] == 0) continue; /* an empty added token can never match */
        sp.added[sp.n_added++] = (struct tok_added_spec){
            (int32_t)i, sp.texts[i], sp.text_lens[i], sp.types[i] == TOK_TYPE_CONTROL, false,
            false,      false};
    }

    uint64_t nm = merges->v.array.count;
    if (nm > TOK_MAX_VOCAB) {
        echo_err_set(err, "gguf: tokenizer.ggml.merges has %llu entries", (unsigned long long)nm);
        goto fail;
    }
    spec_alloc_merges(&sp, (size_t)nm);
    pos = 0;
    for (uint64_t i = 0; i < nm; i++) {
        struct gguf_str s = gguf_array_next_str(merges, &pos);
        if (!split_merge(s.ptr, (size_t)s.len, &sp, (size_t)i)) {
            echo_err_set(err, "gguf: merge %llu ('%.*s') is not two tokens separated by a space",
                         (unsigned long long)i, (int)(s.len > 40 ? 40 : s.len), s.ptr);
            goto fail;
        }
    }
    t = tok_build(&sp, err);
fail:
    spec_free(&sp);
    return t;
}

/* ---- tokenizer.json ------------------------------------------------------------- */

struct hf_ctx {
    const char *source;
    struct echo_err *err;
};

#define HF_FAIL(ctx, ...)                                                                          \
    do {                                                                                           \
        char msg_[400];                                                                            \
        snprintf(msg_, sizeof(msg_), __VA_ARGS__);                                                 \
        echo_err_set((ctx)->err, "%s: %s", (ctx)->source, msg_);                                   \
        return -1;                                                                                 \
    } while (0)

static const char *type_of(const json_t *obj)
{
    const char *s = json_string_value(json_object_get(obj, "type"));
    return s ? s : "";
}

/* A boolean member; absent or null gives def. */
static int get_bool(struct hf_ctx *c, const json_t *obj, const char *key, bool def, bool *out,
                    const char *where)
{
    const json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        *out = def;
        return 0;
    }
    if (!json_is_boolean(v)) HF_FAIL(c, "%s: \"%s\" must be true or false", where, key);
    *out = json_is_true(v);
    return 0;
}

static int check_normalizer(struct hf_ctx *c, const json_t *n, bool *nfc)
{
    if (!n || json_is_null(n)) return 0;
    if (!json_is_object(n)) HF_FAIL(c, "\"normalizer\" must be an object or null");
    const char *type = type_of(n);
    if (!strcmp(type, "NFC")) {
        *nfc = true;
        return 0;
    }
    if (!strcmp(type, "Sequence")) {
        const json_t *list = json_object_get(n, "normalizers");
        if (!json_is_array(list)) HF_FAIL(c, "normalizer Sequence without a \"normalizers\" array");
        size_t i;
        const json_t *e;
        json_array_foreach(list, i, e)
        {
            if (check_normalizer(c, e, nfc) < 0) return -1;
        }
        return 0;
    }
    HF_FAIL(c, "normalizer \"%s\" is not supported (Echo supports NFC or none)", type);
}

static int check_byte_level(struct hf_ctx *c, const json_t *bl, bool *use_regex)
{
    bool aps;
    if (get_bool(c, bl, "add_prefix_space", false, &aps, "ByteLevel pre-tokenizer") < 0 ||
        get_bool(c, bl, "use_regex", true, use_regex, "ByteLevel pre-tokenizer") < 0)
        return -1;
    if (aps) HF_FAIL(c, "ByteLevel with add_prefix_space is not supported");
    return 0;
}

/* Accepts ByteLevel(use_regex) alone, or Sequence[Split(Regex, Isolated),
 * ByteLevel(use_regex=false)]: what Qwen2 and GPT-2 style files use. */
static int parse_pre_tokenizer(struct hf_ctx *c, const json_t *pt, const char **pattern)
{
    if (!json_is_object(pt))
        HF_FAIL(c, "\"pre_tokenizer\" is missing (a byte-level BPE needs one)");
    const char *type = type_of(pt);
    bool use_regex;
    if (!strcmp(type, "ByteLevel")) {
        if (check_byte_level(c, pt, &use_regex) < 0) return -1;
        if (!use_regex) HF_FAIL(c, "a ByteLevel pre-tokenizer without a regex is not supported");
        *pattern = TOK_REGEX_GPT2;
        return 0;
    }
    if (strcmp(type, "Sequence") != 0) HF_FAIL(c, "pre-tokenizer \"%s\" is not supported", type);
    const json_t *list = json_object_get(pt, "pretokenizers");
    if (!json_is_array(list) || json_array_size(list) != 2)
        HF_FAIL(c, "pre-tokenizer Sequence: expected [Split, ByteLevel]");
    const json_t *split = json_array_get(list, 0), *bl = json_array_get(list, 1);
    if (!json_is_object(split) || strcmp(type_of(split), "Split") != 0 || !json_is_object(bl) ||
        strcmp(type_of(bl), "ByteLevel") != 0)
        HF_FAIL(c, "pre-tokenizer Sequence: expected [Split, ByteLevel]");
    if (check_byte_level(c, bl, &use_regex) < 0) return -1;
    if (use_regex)
        HF_FAIL(c, "pre-tokenizer Sequence: the ByteLevel step must not split again "
                   "(use_regex true)");
    const char *behavior = json_string_value(json_object_get(split, "behavior"));
    bool invert;
    if (get_bool(c, split, "invert", false, &invert, "Split pre-tokenizer") < 0) return -1;
    if (!behavior || strcmp(behavior, "Isolated") != 0 || invert)
        HF_FAIL(c, "Split pre-tokenizer: only behavior \"Isolated\" without invert is supported");
    const json_t *pat = json_object_get(split, "pattern");
    const char *re = json_string_value(json_object_get(pat, "Regex"));
    if (!re) HF_FAIL(c, "Split pre-tokenizer: \"pattern\" must be {\"Regex\": \"...\"}");
    *pattern = re;
    return 0;
}

static int check_decoder(struct hf_ctx *c, const json_t *d)
{
    if (!d || json_is_null(d)) return 0;
    if (!json_is_object(d) || strcmp(type_of(d), "ByteLevel") != 0)
        HF_FAIL(c, "decoder \"%s\" is not supported (expected ByteLevel)",
                json_is_object(d) ? type_of(d) : "?");
    return 0;
}

/* Reads one added token description (tokenizer.json added_tokens entry, or
 * a tokenizer_config.json added_tokens_decoder value with the id given). */
static int parse_added(struct hf_ctx *c, const json_t *o, int64_t id, struct tok_added_spec *a,
                       const char *where)
{
    if (!json_is_object(o)) HF_FAIL(c, "%s: expected an object", where);
    const json_t *content = json_object_get(o, "content");
    if (!json_is_string(content) || json_string_length(content) == 0)
        HF_FAIL(c, "%s: \"content\" must be a non-empty string", where);
    if (id < 0 || id >= TOK_MAX_VOCAB)
        HF_FAIL(c, "%s: id %lld is not a valid token id", where, (long long)id);
    a->id = (int32_t)id;
    a->content = json_string_value(content);
    a->len = json_string_length(content);
    if (get_bool(c, o, "special", false, &a->special, where) < 0 ||
        get_bool(c, o, "lstrip", false, &a->lstrip, where) < 0 ||
        get_bool(c, o, "rstrip", false, &a->rstrip, where) < 0 ||
        get_bool(c, o, "single_word", false, &a->single_word, where) < 0)
        return -1;
    return 0;
}

/* "eos_token": "<|im_end|>" or {"content": "..."} or null. */
static const char *token_name(const json_t *v)
{
    if (json_is_string(v)) return json_string_value(v);
    if (json_is_object(v)) return json_string_value(json_object_get(v, "content"));
    return NULL;
}

static int parse_model(struct hf_ctx *c, const json_t *model, struct tok_spec *sp,
                       const json_t *added, const json_t *cfg_added)
{
    if (!json_is_object(model)) HF_FAIL(c, "\"model\" is missing or not an object");
    const char *type = json_string_value(json_object_get(model, "type"));
    if (type && strcmp(type, "BPE") != 0)
        HF_FAIL(c, "model type \"%s\" is not supported (Echo reads BPE)", type);
    bool flag;
    if (get_bool(c, model, "ignore_merges", false, &flag, "model") < 0) return -1;
    if (flag) HF_FAIL(c, "model.ignore_merges is not supported");
    if (get_bool(c, model, "byte_fallback", false, &flag, "model") < 0) return -1;
    if (flag)
        HF_FAIL(c, "model.byte_fallback is not supported (a byte-level BPE does not need it)");
    const char *affix[2] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int i = 0; i < 2; i++) {
        const json_t *v = json_object_get(model, affix[i]);
        if (v && !json_is_null(v) && (!json_is_string(v) || json_string_length(v) != 0))
            HF_FAIL(c, "model.%s is not supported", affix[i]);
    }
    const json_t *dropout = json_object_get(model, "dropout");
    if (dropout && !json_is_null(dropout) &&
        (!json_is_number(dropout) || json_number_value(dropout) != 0))
        HF_FAIL(c, "model.dropout is not supported");

    const json_t *vocab = json_object_get(model, "vocab");
    const json_t *merges = json_object_get(model, "merges");
    if (!json_is_object(vocab)) HF_FAIL(c, "model.vocab is missing or not an object");
    if (!json_is_array(merges)) HF_FAIL(c, "model.merges is missing or not an array");

    /* Size: the largest id of the vocabulary and the added tokens. */
    int64_t max_id = -1;
    const char *key;
    const json_t *val;
    json_object_foreach((json_t *)vocab, key, val)
    {
        if (!json_is_integer(val) || json_integer_value(val) < 0 ||
            json_integer_value(val) >= TOK_MAX_VOCAB)
            HF_FAIL(c, "model.vocab: the id of \"%.40s\" is not an integer in 0..%d", key,
                    TOK_MAX_VOCAB - 1);
        if (json_integer_value(val) > max_id) max_id = json_integer_value(val);
    }
    size_t n_added =
        (added ? json_array_size(added) : 0) + (cfg_added ? json_object_size(cfg_added) : 0);
    sp->added = xcalloc(n_added ? n_added : 1, sizeof(*sp->added));
    if (added) {
        size_t i;
        const json_t *e;
        json_array_foreach(added, i, e)
        {
            char where[64];
            snprintf(where, sizeof(where), "added_tokens[%zu]", i);
            const json_t *id = json_object_get(e, "id");
            if (!json_is_integer(id)) HF_FAIL(c, "%s: \"id\" must be an integer", where);
            if (parse_added(c, e, json_integer_value(id), &sp->added[sp->n_added], where) < 0)
                return -1;
            sp->n_added++;
        }
    }
    if (cfg_added) {
        json_object_foreach((json_t *)cfg_added, key, val)
        {
            char where[96];
            snprintf(where, sizeof(where), "tokenizer_config.json added_tokens_decoder[\"%.20s\"]",
                     key);
            int64_t id;
            if (parse_int64(key, 0, TOK_MAX_VOCAB - 1, &id) < 0)
                HF_FAIL(c, "%s: the key is not a token id", where);
            struct tok_added_spec a;
            if (parse_added(c, val, id, &a, where) < 0) return -1;
            bool known = false;
            for (size_t j = 0; j < sp->n_added && !known; j++) {
                if (sp->added[j].id != a.id) continue;
                known = true;
                if (sp->added[j].len != a.len || memcmp(sp->added[j].content, a.content, a.len))
                    HF_FAIL(c, "%s: content differs from tokenizer.json's token %d", where, a.id);
            }
            if (!known) sp->added[sp->n_added++] = a;
        }
    }
    for (size_t i = 0; i < sp->n_added; i++)
        if (sp->added[i].id > max_id) max_id = sp->added[i].id;
    if (max_id < 0) HF_FAIL(c, "model.vocab is empty");

    spec_alloc_vocab(sp, (int32_t)(max_id + 1));
    json_object_foreach((json_t *)vocab, key, val)
    {
        int32_t id = (int32_t)json_integer_value(val);
        if (sp->texts[id]) {
            HF_FAIL(c, "model.vocab: id %d is given to both \"%.40s\" and \"%.40s\"", id,
                    sp->texts[id], key);
        }
        sp->texts[id] = key;
        sp->text_lens[id] = strlen(key);
        sp->types[id] = TOK_TYPE_NORMAL;
    }
    for (size_t i = 0; i < sp->n_added; i++) {
        struct tok_added_spec *a = &sp->added[i];
        sp->texts[a->id] = a->content;
        sp->text_lens[a->id] = a->len;
        sp->types[a->id] = a->special ? TOK_TYPE_CONTROL : TOK_TYPE_USER_DEFINED;
    }

    spec_alloc_merges(sp, json_array_size(merges));
    size_t i;
    const json_t *m;
    json_array_foreach(merges, i, m)
    {
        if (json_is_string(m)) {
            /* Legacy form "a b": exactly one space, as HF requires. */
            const char *s = json_string_value(m);
            size_t len = json_string_length(m);
            if (!split_merge(s, len, sp, i) || memchr(sp->merge_b[i], ' ', sp->merge_b_len[i]))
                HF_FAIL(c, "model.merges[%zu] (\"%.40s\") is not two tokens separated by one space",
                        i, s);
        } else if (json_is_array(m) && json_array_size(m) == 2 &&
                   json_is_string(json_array_get(m, 0)) && json_is_string(json_array_get(m, 1))) {
            sp->merge_a[i] = json_string_value(json_array_get(m, 0));
            sp->merge_a_len[i] = json_string_length(json_array_get(m, 0));
            sp->merge_b[i] = json_string_value(json_array_get(m, 1));
            sp->merge_b_len[i] = json_string_length(json_array_get(m, 1));
        } else {
            HF_FAIL(c, "model.merges[%zu] must be \"a b\" or [\"a\", \"b\"]", i);
        }
    }
    return 0;
}

static int32_t resolve_token(const struct tok_spec *sp, const char *name)
{
    if (!name) return -1;
    size_t len = strlen(name);
    for (size_t i = 0; i < sp->n_added; i++)
        if (sp->added[i].len == len && !memcmp(sp->added[i].content, name, len))
            return sp->added[i].id;
    for (int32_t i = 0; i < sp->n_vocab; i++)
        if (sp->texts[i] && sp->text_lens[i] == len && !memcmp(sp->texts[i], name, len)) return i;
    return -1;
}

static json_t *parse_json(const char *data, size_t len, const char *name, struct echo_err *err)
{
    json_error_t je;
    json_t *root = json_loadb(data, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
    if (!root) {
        echo_err_set_at(err, name, je.line, je.column, "invalid JSON: %s", je.text);
        return NULL;
    }
    if (!json_is_object(root)) {
        echo_err_set(err, "%s: the top level must be an object", name);
        json_decref(root);
        return NULL;
    }
    return root;
}

static tokenizer *load_hf(const char *json, size_t len, const char *config, size_t config_len,
                          const char *name, const char *config_name, struct echo_err *err)
{
    struct tok_spec sp = {0};
    tokenizer *t = NULL;
    json_t *cfg = NULL;
    struct hf_ctx c = {name, err};
    json_t *root = parse_json(json, len, name, err);
    if (!root) return NULL;
    if (config && !(cfg = parse_json(config, config_len, config_name, err))) goto out;
    sp.source = name;
    sp.bos = sp.eos = sp.pad = -1;
    const json_t *added = json_object_get(root, "added_tokens");
    if (added && !json_is_null(added) && !json_is_array(added)) {
        echo_err_set(err, "%s: \"added_tokens\" must be an array", name);
        goto out;
    }
    const json_t *cfg_added = cfg ? json_object_get(cfg, "added_tokens_decoder") : NULL;
    if (cfg_added && !json_is_null(cfg_added) && !json_is_object(cfg_added)) {
        echo_err_set(err, "%s: \"added_tokens_decoder\" must be an object", config_name);
        goto out;
    }
    if (parse_model(&c, json_object_get(root, "model"), &sp, json_is_array(added) ? added : NULL,
                    json_is_object(cfg_added) ? cfg_added : NULL) < 0 ||
        check_normalizer(&c, json_object_get(root, "normalizer"), &sp.nfc) < 0 ||
        parse_pre_tokenizer(&c, json_object_get(root, "pre_tokenizer"), &sp.pattern) < 0 ||
        check_decoder(&c, json_object_get(root, "decoder")) < 0)
        goto out;
    if (cfg) {
        const char *names[3] = {"bos_token", "eos_token", "pad_token"};
        int32_t *ids[3] = {&sp.bos, &sp.eos, &sp.pad};
        for (int i = 0; i < 3; i++) {
            const json_t *v = json_object_get(cfg, names[i]);
            if (!v || json_is_null(v)) continue;
            const char *tn = token_name(v);
            if (!tn || (*ids[i] = resolve_token(&sp, tn)) < 0) {
                echo_err_set(err, "%s: %s \"%.40s\" is not a token of the vocabulary", config_name,
                             names[i], tn ? tn : "?");
                goto out;
            }
        }
        const json_t *tmpl = json_object_get(cfg, "chat_template");
        if (json_is_array(tmpl)) {
            /* The list form: [{"name": "default", "template": "..."}, ...] */
            size_t i;
            const json_t *e;
            json_array_foreach(tmpl, i, e)
            {
                const char *nm = json_string_value(json_object_get(e, "name"));
                if (nm && !strcmp(nm, "default")) tmpl = json_object_get(e, "template");
            }
        }
        if (json_is_string(tmpl)) {
            sp.chat_template = json_string_value(tmpl);
            sp.chat_template_len = json_string_length(tmpl);
        }
    }
    t = tok_build(&sp, err);
out:
    spec_free(&sp);
    json_decref(cfg);
    json_decref(root);
    return t;
}

tokenizer *tok_load_hf_memory(const char *json, size_t len, const char *config, size_t config_len,
                              struct echo_err *err)
{
    return load_hf(json, len, config, config_len, "tokenizer.json", "tokenizer_config.json", err);
}

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

#define HF_MAX_FILE (512u * 1024 * 1024)

tokenizer *tok_load_hf(const char *path, struct echo_err *err)
{
    struct strbuf json_path, cfg_path;
    strbuf_init(&json_path);
    strbuf_init(&cfg_path);
    if (is_dir(path)) {
        strbuf_printf(&json_path, "%s/tokenizer.json", path);
        strbuf_printf(&cfg_path, "%s/tokenizer_config.json", path);
    } else {
        strbuf_puts(&json_path, path);
        const char *slash = strrchr(path, '/');
        if (slash)
            strbuf_printf(&cfg_path, "%.*s/tokenizer_config.json", (int)(slash - path), path);
        else
            strbuf_puts(&cfg_path, "tokenizer_config.json");
    }
    tokenizer *t = NULL;
    size_t len = 0, cfg_len = 0;
    char *cfg = NULL;
    char *json = file_read_all(json_path.data, HF_MAX_FILE, &len, err);
    if (!json) goto out;
    if (is_file(cfg_path.data) && !(cfg = file_read_all(cfg_path.data, HF_MAX_FILE, &cfg_len, err)))
        goto out;
    t = load_hf(json, len, cfg, cfg_len, json_path.data, cfg_path.data, err);
out:
    free(json);
    free(cfg);
    strbuf_deinit(&json_path);
    strbuf_deinit(&cfg_path);
    return t;
}

tokenizer *tok_load(const char *path, struct echo_err *err)
{
    size_t n = strlen(path);
    if (is_dir(path) || (n >= 5 && !strcmp(path + n - 5, ".json"))) return tok_load_hf(path, err);
    gguf_file *f = gguf_open(path, err);
    if (!f) return NULL;
    tokenizer *t = tok_load_gguf(f, err);
    if (!t && err && !err->file[0]) snprintf(err->file, sizeof(err->file), "%s", path);
    gguf_close(f);
    return t;
}
