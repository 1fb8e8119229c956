/*
 * model.c - loading a Qwen2 model into the engine's one in-memory form.
 *
 * Two sources give the same struct llm_model (model.h):
 *   - a GGUF file, mapped and used in place (zero copy): the tensor names and
 *     qwen2.* metadata are the ones llama.cpp writes;
 *   - a Hugging Face folder (config.json, BF16/F16/F32 safetensors, single or
 *     sharded, tokenizer.json, generation_config.json), whose matrices are
 *     converted at load to the runtime type the user picks (default Q8_0).
 * Norm weights and biases are always F32 (copied when the file stores
 * another type). Every missing tensor, wrong shape or unsupported type is an
 * error naming the tensor.
 *
 * Quantized matrices are repacked into the layout the fastest kernel reads:
 * for GGUF, after loading, all of them into one mapping of huge pages, in
 * pieces of about 1 MiB spread over every core (pack_model); for HF one by
 * one as they are converted (kern_matrix_prepare). The file pages or
 * converted buffers they came from are then given back (madvise / munmap),
 * so the process holds one copy of the weights: the Q8_0 model peaks at
 * 1.75 GB either way. GGUF files may mix types per tensor (a q4_k_m file:
 * Q4_K, Q6_K, Q8_0, F32); every matrix keeps its own.
 */
#include <errno.h>
#include <jansson.h>
#include <stdatomic.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "llm/model.h"
#include "llm/safetensors.h"

/* Sanity bounds: far above any real Qwen2 size, low enough that sizes
 * computed from them cannot overflow. */
#define MAX_HIDDEN 65536
#define MAX_LAYERS 1024
#define MAX_FFN (1 << 20)
#define MAX_HEADS 1024
#define MAX_VOCAB (1 << 24)
#define MAX_CONTEXT (1 << 22)
#define MAX_JSON_BYTES (16u << 20)

static void *model_alloc(llm_model *m, size_t n)
{
    void *p = aligned_alloc(64, (n + 63) & ~(size_t)63);
    if (!p) return NULL;
    if (m->n_owned == m->cap_owned) {
        m->cap_owned = m->cap_owned ? m->cap_owned * 2 : 64;
        m->owned = xrealloc(m->owned, m->cap_owned * sizeof(*m->owned));
    }
    m->owned[m->n_owned++] = p;
    return p;
}

/*
 * Converted matrices get their own anonymous mappings rather than heap
 * memory: most are freed again as soon as they are repacked, and a mapping
 * goes straight back to the system, where freed heap blocks of this size
 * would stay resident (glibc raises its mmap threshold after the first big
 * free). The mappings still held are unmapped by llm_model_free.
 */
static void *model_map(llm_model *m, size_t n)
{
    void *p = mmap(NULL, n ? n : 1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return NULL;
    if (m->n_maps == m->cap_maps) {
        m->cap_maps = m->cap_maps ? m->cap_maps * 2 : 64;
        m->maps = xrealloc(m->maps, m->cap_maps * sizeof(*m->maps));
    }
    m->maps[m->n_maps].p = p;
    m->maps[m->n_maps].n = n ? n : 1;
    m->n_maps++;
    return p;
}

static void model_unmap(llm_model *m, void *p)
{
    for (size_t i = 0; i < m->n_maps; i++) {
        if (m->maps[i].p == p) {
            munmap(p, m->maps[i].n);
            m->maps[i] = m->maps[--m->n_maps];
            return;
        }
    }
}

int llm_dtype_parse(const char *name, enum llm_dtype *out)
{
    static const struct {
        const char *name;
        enum llm_dtype t;
    } names[] = {{"f32", LLM_DTYPE_F32},
                 {"f16", LLM_DTYPE_F16},
                 {"bf16", LLM_DTYPE_BF16},
                 {"q8_0", LLM_DTYPE_Q8_0},
                 {"q4_0", LLM_DTYPE_Q4_0}};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (!str_casecmp(name, names[i].name)) {
            *out = names[i].t;
            return 0;
        }
    }
    return -1;
}

static enum gguf_tensor_type dtype_tensor_type(enum llm_dtype d)
{
    switch (d) {
    case LLM_DTYPE_F32:
        return GGUF_TENSOR_F32;
    case LLM_DTYPE_F16:
        return GGUF_TENSOR_F16;
    case LLM_DTYPE_BF16:
        return GGUF_TENSOR_BF16;
    case LLM_DTYPE_Q4_0:
        return GGUF_TENSOR_Q4_0;
    case LLM_DTYPE_DEFAULT:
    case LLM_DTYPE_Q8_0:
        break;
    }
    return GGUF_TENSOR_Q8_0;
}

static void set_str(char *dst, size_t size, const char *src, size_t len)
{
    if (len >= size) len = size - 1;
    memcpy(dst, src, len);
    dst[len] = '\0';
}

/* Checks the hyperparameters shared by both loaders. */
static int check_hparams(const struct llm_model_info *in, const char *path, struct echo_err *err)
{
    if (in->hidden <= 0 || in->hidden > MAX_HIDDEN || in->n_layers <= 0 ||
        in->n_layers > MAX_LAYERS || in->ffn <= 0 || in->ffn > MAX_FFN || in->n_heads <= 0 ||
        in->n_heads > MAX_HEADS || in->n_kv_heads <= 0 || in->n_kv_heads > in->n_heads ||
        in->n_ctx_train <= 0) {
        echo_err_set(err,
                     "%s: hyperparameters out of range (hidden %d, layers %d, ffn %d, heads %d/%d, "
                     "context %d)",
                     path, in->hidden, in->n_layers, in->ffn, in->n_heads, in->n_kv_heads,
                     in->n_ctx_train);
        return LLM_ERR_BAD_FILE;
    }
    if (in->hidden % in->n_heads || in->n_heads % in->n_kv_heads ||
        (in->hidden / in->n_heads) % 2) {
        echo_err_set(err,
                     "%s: %d query heads do not divide hidden size %d into even head sizes, or "
                     "are not a multiple of the %d KV heads",
                     path, in->n_heads, in->hidden, in->n_kv_heads);
        return LLM_ERR_BAD_FILE;
    }
    if (!(in->rms_eps > 0.0f && in->rms_eps < 1.0f) ||
        !(in->rope_theta > 0.0f && isfinite(in->rope_theta))) {
        echo_err_set(err, "%s: bad rms epsilon %g or rope theta %g", path, in->rms_eps,
                     in->rope_theta);
        return LLM_ERR_BAD_FILE;
    }
    return 0;
}

static void fill_stop_ids(llm_model *m, const int32_t *extra, int n_extra)
{
    int32_t cand[LLM_MAX_STOP_IDS + 8];
    int n = 0;
    cand[n++] = tok_eos_id(m->tok);
    cand[n++] = tok_find(m->tok, "<|im_end|>");
    cand[n++] = tok_find(m->tok, "<|endoftext|>");
    for (int i = 0; i < n_extra && n < (int)(sizeof(cand) / sizeof(cand[0])); i++)
        cand[n++] = extra[i];
    m->n_stop_ids = 0;
    for (int i = 0; i < n; i++) {
        if (cand[i] < 0 || cand[i] >= m->info.n_vocab) continue;
        bool dup = false;
        for (int j = 0; j < m->n_stop_ids; j++)
            dup |= m->stop_ids[j] == cand[i];
        if (!dup && m->n_stop_ids < LLM_MAX_STOP_IDS) m->stop_ids[m->n_stop_ids++] = cand[i];
    }
}

/* ---- GGUF ------------------------------------------------------------------ */

static int gguf_u32(const gguf_file *f, const char *key, int *out, bool required, int def,
                    struct echo_err *err)
{
    uint64_t v;
    if (!gguf_find(f, key)) {
        if (required) {
            echo_err_set(err, "missing metadata key %s", key);
            return LLM_ERR_BAD_FILE;
        }
        *out = def;
        return 0;
    }
    if (gguf_get_u64(f, key, &v, err) < 0) return LLM_ERR_BAD_FILE;
    if (v > INT_MAX) {
        echo_err_set(err, "metadata %s = %llu is out of range", key, (unsigned long long)v);
        return LLM_ERR_BAD_FILE;
    }
    *out = (int)v;
    return 0;
}

static int gguf_float(const gguf_file *f, const char *key, float *out, float def,
                      struct echo_err *err)
{
    double v;
    if (!gguf_find(f, key)) {
        *out = def;
        return 0;
    }
    if (gguf_get_f64(f, key, &v, err) < 0) return LLM_ERR_BAD_FILE;
    *out = (float)v;
    return 0;
}

/* Finds a tensor and checks its shape (dims[0] = cols, dims[1] = rows). */
static const struct gguf_tensor *gguf_tensor(const gguf_file *f, const char *name, uint64_t cols,
                                             uint64_t rows, bool required, struct echo_err *err,
                                             int *rc)
{
    const struct gguf_tensor *t = gguf_find_tensor(f, name);
    if (!t) {
        if (required) {
            echo_err_set(err, "missing tensor %s", name);
            *rc = LLM_ERR_BAD_FILE;
        }
        return NULL;
    }
    bool ok = rows ? (t->n_dims == 2 && t->dims[0] == cols && t->dims[1] == rows)
                   : (t->n_dims == 1 && t->dims[0] == cols);
    if (!ok) {
        char got[96];
        int pos = 0;
        for (uint32_t i = 0; i < t->n_dims && i < GGUF_MAX_DIMS; i++)
            pos += snprintf(got + pos, sizeof(got) - (size_t)pos, "%s%llu", i ? " x " : "",
                            (unsigned long long)t->dims[i]);
        if (rows)
            echo_err_set(err, "tensor %s has shape [%s], expected [%llu x %llu]", name, got,
                         (unsigned long long)cols, (unsigned long long)rows);
        else
            echo_err_set(err, "tensor %s has shape [%s], expected [%llu]", name, got,
                         (unsigned long long)cols);
        *rc = LLM_ERR_BAD_FILE;
        return NULL;
    }
    return t;
}

/* A vector tensor as F32: in place when it already is (and aligned), else converted. */
static const float *gguf_vector(llm_model *m, const char *name, int n, struct echo_err *err,
                                int *rc)
{
    const struct gguf_tensor *t = gguf_tensor(m->gguf, name, (uint64_t)n, 0, true, err, rc);
    if (!t) return NULL;
    if (t->type == GGUF_TENSOR_F32 && (uintptr_t)t->data % sizeof(float) == 0) return t->data;
    if (t->type != GGUF_TENSOR_F32 && t->type != GGUF_TENSOR_F16 && t->type != GGUF_TENSOR_BF16) {
        echo_err_set(err, "tensor %s has type %s; norms and biases must be f32, f16 or bf16", name,
                     gguf_tensor_type_name(t->type) ? gguf_tensor_type_name(t->type) : "unknown");
        *rc = LLM_ERR_UNSUPPORTED;
        return NULL;
    }
    float *out = model_alloc(m, (size_t)n * sizeof(float));
    if (!out) {
        echo_err_set(err, "out of memory");
        *rc = LLM_ERR_IO;
        return NULL;
    }
    if (t->type == GGUF_TENSOR_F32) {
        memcpy(out, t->data, (size_t)n * sizeof(float));
    } else {
        /* F16/BF16 may sit at any even address; read through a copy. */
        for (int i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, (const uint8_t *)t->data + 2 * (size_t)i, 2);
            out[i] = t->type == GGUF_TENSOR_F16 ? kern_fp16_to_f32(h) : kern_bf16_to_f32(h);
        }
    }
    return out;
}

static int gguf_matrix(llm_model *m, struct kern_matrix *mat, const char *name, int cols, int rows,
                       bool required, bool *present, struct echo_err *err)
{
    int rc = 0;
    const struct gguf_tensor *t =
        gguf_tensor(m->gguf, name, (uint64_t)cols, (uint64_t)rows, required, err, &rc);
    if (present) *present = t != NULL;
    if (!t) return rc;
    if (!kern_type_supported(t->type)) {
        const char *tn = gguf_tensor_type_ggml_name(t->type);
        echo_err_set(err, "tensor %s has type %s, which Echo does not support yet", name,
                     tn ? tn : "unknown");
        return LLM_ERR_UNSUPPORTED;
    }
    struct echo_err kerr;
    echo_err_clear(&kerr);
    if (kern_matrix_init(mat, t->type, rows, cols, t->data, &kerr) < 0) {
        echo_err_set(err, "tensor %s: %s", name, kerr.msg);
        return LLM_ERR_BAD_FILE;
    }
    return 0;
}

static int load_gguf(llm_model *m, const char *path, struct echo_err *err)
{
    int rc;
    struct llm_model_info *in = &m->info;
    m->gguf = gguf_open(path, err);
    if (!m->gguf) return LLM_ERR_BAD_FILE;
    const gguf_file *f = m->gguf;
    struct gguf_str arch;
    if (gguf_get_str(f, "general.architecture", &arch, err) < 0) return LLM_ERR_BAD_FILE;
    if (arch.len != 5 || memcmp(arch.ptr, "qwen2", 5)) {
        echo_err_set(err, "%s: architecture '%.*s' is not supported (Echo runs qwen2)", path,
                     (int)(arch.len > 64 ? 64 : arch.len), arch.ptr);
        return LLM_ERR_UNSUPPORTED;
    }
    set_str(in->arch, sizeof(in->arch), "qwen2", 5);
    set_str(in->format, sizeof(in->format), "gguf", 4);
    struct gguf_str name;
    if (gguf_find(f, "general.name") && gguf_get_str(f, "general.name", &name, NULL) == 0)
        set_str(in->name, sizeof(in->name), name.ptr, name.len);

    if ((rc = gguf_u32(f, "qwen2.embedding_length", &in->hidden, true, 0, err)) < 0 ||
        (rc = gguf_u32(f, "qwen2.block_count", &in->n_layers, true, 0, err)) < 0 ||
        (rc = gguf_u32(f, "qwen2.feed_forward_length", &in->ffn, true, 0, err)) < 0 ||
        (rc = gguf_u32(f, "qwen2.attention.head_count", &in->n_heads, true, 0, err)) < 0 ||
        (rc = gguf_u32(f, "qwen2.attention.head_count_kv", &in->n_kv_heads, false, in->n_heads,
                       err)) < 0 ||
        (rc = gguf_u32(f, "qwen2.context_length", &in->n_ctx_train, false, 32768, err)) < 0 ||
        (rc = gguf_float(f, "qwen2.rope.freq_base", &in->rope_theta, 10000.0f, err)) < 0 ||
        (rc = gguf_float(f, "qwen2.attention.layer_norm_rms_epsilon", &in->rms_eps, 1e-6f, err)) <
            0) {
        if (err && !err->file[0]) set_str(err->file, sizeof(err->file), path, strlen(path));
        return rc;
    }
    if ((rc = check_hparams(in, path, err)) < 0) return rc;
    in->head_dim = in->hidden / in->n_heads;
    int kv_dim = in->head_dim * in->n_kv_heads;

    const struct gguf_tensor *emb = gguf_find_tensor(f, "token_embd.weight");
    if (!emb || emb->n_dims != 2 || emb->dims[0] != (uint64_t)in->hidden || emb->dims[1] == 0 ||
        emb->dims[1] > MAX_VOCAB) {
        echo_err_set(err, "%s: %s", path,
                     emb ? "tensor token_embd.weight does not have shape [hidden x vocab]"
                         : "missing tensor token_embd.weight");
        return LLM_ERR_BAD_FILE;
    }
    in->n_vocab = (int)emb->dims[1];

    struct echo_err terr;
    echo_err_clear(&terr);
    rc = gguf_matrix(m, &m->embed, "token_embd.weight", in->hidden, in->n_vocab, true, NULL, &terr);
    bool has_output = false;
    if (rc == 0)
        rc = gguf_matrix(m, &m->output_own, "output.weight", in->hidden, in->n_vocab, false,
                         &has_output, &terr);
    m->layers = xcalloc((size_t)in->n_layers, sizeof(*m->layers));
    for (int i = 0; i < in->n_layers && rc == 0; i++) {
        struct llm_layer *L = &m->layers[i];
        char n[96];
#define MAT(field, suffix, cols, rows)                                                             \
    if (rc == 0) {                                                                                 \
        snprintf(n, sizeof(n), "blk.%d.%s", i, suffix);                                            \
        rc = gguf_matrix(m, &L->field, n, cols, rows, true, NULL, &terr);                          \
    }
#define VEC(field, suffix, len)                                                                    \
    if (rc == 0) {                                                                                 \
        snprintf(n, sizeof(n), "blk.%d.%s", i, suffix);                                            \
        L->field = gguf_vector(m, n, len, &terr, &rc);                                             \
    }
        VEC(attn_norm, "attn_norm.weight", in->hidden)
        MAT(wq, "attn_q.weight", in->hidden, in->hidden)
        VEC(bq, "attn_q.bias", in->hidden)
        MAT(wk, "attn_k.weight", in->hidden, kv_dim)
        VEC(bk, "attn_k.bias", kv_dim)
        MAT(wv, "attn_v.weight", in->hidden, kv_dim)
        VEC(bv, "attn_v.bias", kv_dim)
        MAT(wo, "attn_output.weight", in->hidden, in->hidden)
        VEC(ffn_norm, "ffn_norm.weight", in->hidden)
        MAT(gate, "ffn_gate.weight", in->hidden, in->ffn)
        MAT(up, "ffn_up.weight", in->hidden, in->ffn)
        MAT(down, "ffn_down.weight", in->ffn, in->hidden)
#undef MAT
#undef VEC
    }
    if (rc == 0) m->out_norm = gguf_vector(m, "output_norm.weight", in->hidden, &terr, &rc);
    if (rc < 0) {
        echo_err_set_at(err, path, 0, 0, "%s", terr.msg);
        return rc;
    }
    in->tied = !has_output;
    m->output = has_output ? &m->output_own : &m->embed;
    in->n_ctx_train = in->n_ctx_train > MAX_CONTEXT ? MAX_CONTEXT : in->n_ctx_train;
    in->file_bytes = gguf_size(f);

    m->tok = tok_load_gguf(f, err);
    if (!m->tok) return LLM_ERR_BAD_FILE;

    /* Sampling defaults a GGUF may carry (llama.cpp's general.sampling.*). */
    struct llm_sampling *d = &m->defaults;
    llm_sampling_default(d);
    double v;
    uint64_t u;
    if (gguf_find(f, "general.sampling.temp") &&
        gguf_get_f64(f, "general.sampling.temp", &v, NULL) == 0)
        d->temperature = (float)v;
    if (gguf_find(f, "general.sampling.top_p") &&
        gguf_get_f64(f, "general.sampling.top_p", &v, NULL) == 0)
        d->top_p = (float)v;
    if (gguf_find(f, "general.sampling.min_p") &&
        gguf_get_f64(f, "general.sampling.min_p", &v, NULL) == 0)
        d->min_p = (float)v;
    if (gguf_find(f, "general.sampling.penalty_repeat") &&
        gguf_get_f64(f, "general.sampling.penalty_repeat", &v, NULL) == 0)
        d->repeat_penalty = (float)v;
    if (gguf_find(f, "general.sampling.top_k") &&
        gguf_get_u64(f, "general.sampling.top_k", &u, NULL) == 0 && u <= INT_MAX)
        d->top_k = (int)u;
    if (gguf_find(f, "general.sampling.penalty_last_n") &&
        gguf_get_u64(f, "general.sampling.penalty_last_n", &u, NULL) == 0 && u <= INT_MAX)
        d->repeat_last_n = (int)u;
    fill_stop_ids(m, NULL, 0);
    return 0;
}

/* ---- Hugging Face folders ------------------------------------------------------ */

static char *join(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    char *p = xmalloc(a + b + 2);
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
    return p;
}

static json_t *load_json(const char *dir, const char *name, bool required, struct echo_err *err,
                         int *rc)
{
    char *path = join(dir, name);
    json_t *root = NULL;
    struct stat st;
    if (stat(path, &st) < 0) {
        if (required) {
            echo_err_set(err, "%s: %s", path, strerror(errno));
            *rc = LLM_ERR_IO;
        }
        goto out;
    }
    size_t len;
    char *text = file_read_all(path, MAX_JSON_BYTES, &len, err);
    if (!text) {
        *rc = LLM_ERR_IO;
        goto out;
    }
    json_error_t jerr;
    root = json_loadb(text, len, 0, &jerr);
    free(text);
    if (!root || !json_is_object(root)) {
        if (root)
            echo_err_set_at(err, path, 0, 0, "not a JSON object");
        else
            echo_err_set_at(err, path, jerr.line, jerr.column, "%s", jerr.text);
        json_decref(root);
        root = NULL;
        *rc = LLM_ERR_BAD_FILE;
    }
out:
    free(path);
    return root;
}

static int json_int(const json_t *o, const char *key, int *out, bool required, int def,
                    struct echo_err *err)
{
    const json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) {
        if (required) {
            echo_err_set(err, "config.json: missing \"%s\"", key);
            return LLM_ERR_BAD_FILE;
        }
        *out = def;
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > INT_MAX) {
        echo_err_set(err, "config.json: \"%s\" must be a non-negative integer", key);
        return LLM_ERR_BAD_FILE;
    }
    *out = (int)json_integer_value(v);
    return 0;
}

static float json_float(const json_t *o, const char *key, float def)
{
    const json_t *v = json_object_get(o, key);
    return json_is_number(v) ? (float)json_number_value(v) : def;
}

struct convert_job {
    const struct st_tensor *t;
    enum gguf_tensor_type type;
    int rows, cols;
    uint8_t *dst;
    size_t row_bytes;
};

/* One thread's share of rows: source row -> f32 -> the runtime type. */
static void convert_rows(void *arg, int ith, int nth)
{
    const struct convert_job *j = arg;
    float *tmp = xmalloc((size_t)j->cols * sizeof(float));
    int r0 = (int)((int64_t)j->rows * ith / nth), r1 = (int)((int64_t)j->rows * (ith + 1) / nth);
    size_t esize = st_dtype_size(j->t->dtype);
    for (int r = r0; r < r1; r++) {
        const uint8_t *src = (const uint8_t *)j->t->data + (size_t)r * (size_t)j->cols * esize;
        for (int c = 0; c < j->cols; c++) {
            if (j->t->dtype == ST_F32) {
                memcpy(&tmp[c], src + 4 * (size_t)c, 4);
            } else {
                uint16_t h;
                memcpy(&h, src + 2 * (size_t)c, 2);
                tmp[c] = j->t->dtype == ST_BF16 ? kern_bf16_to_f32(h) : kern_fp16_to_f32(h);
            }
        }
        kern_quantize_row(j->type, tmp, j->dst + (size_t)r * j->row_bytes, j->cols);
    }
    free(tmp);
}

static const struct st_tensor *st_tensor_checked(const st_model *st, const char *name, int rows,
                                                 int cols, struct echo_err *err, int *rc)
{
    const struct st_tensor *t = st_model_find(st, name);
    if (!t) {
        echo_err_set(err, "missing tensor %s", name);
        *rc = LLM_ERR_BAD_FILE;
        return NULL;
    }
    bool ok =
        rows ? (t->n_dims == 2 && t->shape[0] == (uint64_t)rows && t->shape[1] == (uint64_t)cols)
             : (t->n_dims == 1 && t->shape[0] == (uint64_t)cols);
    if (!ok) {
        if (rows)
            echo_err_set(err, "tensor %s has %u dims [%llu, %llu], expected [%d, %d]", name,
                         t->n_dims, (unsigned long long)(t->n_dims > 0 ? t->shape[0] : 0),
                         (unsigned long long)(t->n_dims > 1 ? t->shape[1] : 0), rows, cols);
        else
            echo_err_set(err, "tensor %s has %u dims [%llu], expected [%d]", name, t->n_dims,
                         (unsigned long long)(t->n_dims > 0 ? t->shape[0] : 0), cols);
        *rc = LLM_ERR_BAD_FILE;
        return NULL;
    }
    if (t->dtype != ST_BF16 && t->dtype != ST_F16 && t->dtype != ST_F32) {
        echo_err_set(err, "tensor %s has dtype %s (expected BF16, F16 or F32)", name,
                     st_dtype_name(t->dtype));
        *rc = LLM_ERR_UNSUPPORTED;
        return NULL;
    }
    return t;
}

static int hf_matrix(llm_model *m, const st_model *st, struct kern_pool *pool,
                     struct kern_matrix *mat, const char *name, int rows, int cols,
                     enum gguf_tensor_type type, bool repack, struct echo_err *err)
{
    int rc = 0;
    const struct st_tensor *t = st_tensor_checked(st, name, rows, cols, err, &rc);
    if (!t) return rc;
    size_t row_bytes = kern_row_bytes(type, cols);
    if (!row_bytes) {
        echo_err_set(err, "tensor %s: rows of %d cannot be stored as %s (use --dtype f32)", name,
                     cols, gguf_tensor_type_name(type));
        return LLM_ERR_UNSUPPORTED;
    }
    uint8_t *dst = model_map(m, row_bytes * (size_t)rows);
    if (!dst) {
        echo_err_set(err, "out of memory converting %s", name);
        return LLM_ERR_IO;
    }
    struct convert_job job = {t, type, rows, cols, dst, row_bytes};
    kern_pool_run(pool, convert_rows, &job);
    st_model_release(st, t);
    struct echo_err kerr;
    echo_err_clear(&kerr);
    if (kern_matrix_init(mat, type, rows, cols, dst, &kerr) < 0) {
        echo_err_set(err, "tensor %s: %s", name, kerr.msg);
        return LLM_ERR_BAD_FILE;
    }
    /* Repack now and drop the converted copy, so that converting a large
     * model never holds two copies of all its weights. */
    if (repack) {
        if (kern_matrix_prepare(mat, &kerr) < 0) {
            echo_err_set(err, "tensor %s: %s", name, kerr.msg);
            return LLM_ERR_IO;
        }
        if (mat->packed) {
            model_unmap(m, dst);
            mat->data = NULL;
        }
    }
    return 0;
}

static const float *hf_vector(llm_model *m, const st_model *st, const char *name, int n,
                              struct echo_err *err, int *rc)
{
    const struct st_tensor *t = st_tensor_checked(st, name, 0, n, err, rc);
    if (!t) return NULL;
    float *out = model_alloc(m, (size_t)n * sizeof(float));
    if (!out) {
        echo_err_set(err, "out of memory");
        *rc = LLM_ERR_IO;
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        if (t->dtype == ST_F32) {
            memcpy(&out[i], (const uint8_t *)t->data + 4 * (size_t)i, 4);
        } else {
            uint16_t h;
            memcpy(&h, (const uint8_t *)t->data + 2 * (size_t)i, 2);
            out[i] = t->dtype == ST_BF16 ? kern_bf16_to_f32(h) : kern_fp16_to_f32(h);
        }
    }
    return out;
}

static void hf_generation_config(llm_model *m, const json_t *gen)
{
    struct llm_sampling *d = &m->defaults;
    int32_t extra[8];
    int n_extra = 0;
    d->temperature = json_float(gen, "temperature", d->temperature);
    d->top_p = json_float(gen, "top_p", d->top_p);
    d->min_p = json_float(gen, "min_p", d->min_p);
    d->repeat_penalty = json_float(gen, "repetition_penalty", d->repeat_penalty);
    const json_t *k = json_object_get(gen, "top_k");
    if (json_is_integer(k) && json_integer_value(k) >= 0 && json_integer_value(k) <= INT_MAX)
        d->top_k = (int)json_integer_value(k);
    /* do_sample false means greedy in transformers. */
    const json_t *ds = json_object_get(gen, "do_sample");
    if (json_is_false(ds)) d->temperature = 0.0f;
    const json_t *eos = json_object_get(gen, "eos_token_id");
    if (json_is_integer(eos)) {
        extra[n_extra++] = (int32_t)json_integer_value(eos);
    } else if (json_is_array(eos)) {
        size_t i;
        const json_t *e;
        json_array_foreach(eos, i, e)
        {
            if (json_is_integer(e) && n_extra < 8 && json_integer_value(e) >= 0 &&
                json_integer_value(e) <= INT32_MAX)
                extra[n_extra++] = (int32_t)json_integer_value(e);
        }
    }
    fill_stop_ids(m, extra, n_extra);
}

static int load_hf(llm_model *m, const char *dir, enum gguf_tensor_type type, bool repack,
                   struct echo_err *err)
{
    int rc = 0;
    struct llm_model_info *in = &m->info;
    json_t *cfg = NULL, *gen = NULL;
    st_model *st = NULL;
    struct kern_pool *pool = NULL;
    struct echo_err terr;
    echo_err_clear(&terr);

    cfg = load_json(dir, "config.json", true, err, &rc);
    if (!cfg) goto out;
    const json_t *mt = json_object_get(cfg, "model_type");
    if (!json_is_string(mt) || strcmp(json_string_value(mt), "qwen2")) {
        echo_err_set(err, "%s/config.json: model_type '%s' is not supported (Echo runs qwen2)", dir,
                     json_is_string(mt) ? json_string_value(mt) : "(missing)");
        rc = LLM_ERR_UNSUPPORTED;
        goto out;
    }
    set_str(in->arch, sizeof(in->arch), "qwen2", 5);
    set_str(in->format, sizeof(in->format), "hf", 2);
    const char *base = strrchr(dir, '/');
    base = base && base[1] ? base + 1 : dir;
    set_str(in->name, sizeof(in->name), base, strlen(base));
    int vocab_cfg;
    if ((rc = json_int(cfg, "hidden_size", &in->hidden, true, 0, &terr)) < 0 ||
        (rc = json_int(cfg, "num_hidden_layers", &in->n_layers, true, 0, &terr)) < 0 ||
        (rc = json_int(cfg, "intermediate_size", &in->ffn, true, 0, &terr)) < 0 ||
        (rc = json_int(cfg, "num_attention_heads", &in->n_heads, true, 0, &terr)) < 0 ||
        (rc = json_int(cfg, "num_key_value_heads", &in->n_kv_heads, false, in->n_heads, &terr)) <
            0 ||
        (rc = json_int(cfg, "max_position_embeddings", &in->n_ctx_train, false, 32768, &terr)) <
            0 ||
        (rc = json_int(cfg, "vocab_size", &vocab_cfg, true, 0, &terr)) < 0) {
        echo_err_set(err, "%s/%s", dir, terr.msg);
        goto out;
    }
    in->rope_theta = json_float(cfg, "rope_theta", 10000.0f);
    in->rms_eps = json_float(cfg, "rms_norm_eps", 1e-6f);
    /* transformers' Qwen2Config defaults tie_word_embeddings to false. */
    in->tied = json_is_true(json_object_get(cfg, "tie_word_embeddings"));
    if ((rc = check_hparams(in, dir, err)) < 0) goto out;
    if (vocab_cfg <= 0 || vocab_cfg > MAX_VOCAB) {
        echo_err_set(err, "%s/config.json: vocab_size %d out of range", dir, vocab_cfg);
        rc = LLM_ERR_BAD_FILE;
        goto out;
    }
    in->n_vocab = vocab_cfg;
    in->head_dim = in->hidden / in->n_heads;
    int kv_dim = in->head_dim * in->n_kv_heads;

    m->tok = tok_load_hf(dir, err);
    if (!m->tok) {
        rc = LLM_ERR_BAD_FILE;
        goto out;
    }
    st = st_model_open(dir, err);
    if (!st) {
        rc = LLM_ERR_BAD_FILE;
        goto out;
    }
    in->file_bytes = st_model_file_bytes(st);
    pool = kern_pool_new(0);

    rc = hf_matrix(m, st, pool, &m->embed, "model.embed_tokens.weight", in->n_vocab, in->hidden,
                   type, repack, &terr);
    if (rc == 0 && !in->tied)
        rc = hf_matrix(m, st, pool, &m->output_own, "lm_head.weight", in->n_vocab, in->hidden, type,
                       repack, &terr);
    m->layers = xcalloc((size_t)in->n_layers, sizeof(*m->layers));
    for (int i = 0; i < in->n_layers && rc == 0; i++) {
        struct llm_layer *L = &m->layers[i];
        char n[128];
#define MAT(field, suffix, rows, cols)                                                             \
    if (rc == 0) {                                                                                 \
        snprintf(n, sizeof(n), "model.layers.%d.%s", i, suffix);                                   \
        rc = hf_matrix(m, st, pool, &L->field, n, rows, cols, type, repack, &terr);                \
    }
#define VEC(field, suffix, len)                                                                    \
    if (rc == 0) {                                                                                 \
        snprintf(n, sizeof(n), "model.layers.%d.%s", i, suffix);                                   \
        L->field = hf_vector(m, st, n, len, &terr, &rc);                                           \
    }
        VEC(attn_norm, "input_layernorm.weight", in->hidden)
        MAT(wq, "self_attn.q_proj.weight", in->hidden, in->hidden)
        VEC(bq, "self_attn.q_proj.bias", in->hidden)
        MAT(wk, "self_attn.k_proj.weight", kv_dim, in->hidden)
        VEC(bk, "self_attn.k_proj.bias", kv_dim)
        MAT(wv, "self_attn.v_proj.weight", kv_dim, in->hidden)
        VEC(bv, "self_attn.v_proj.bias", kv_dim)
        MAT(wo, "self_attn.o_proj.weight", in->hidden, in->hidden)
        VEC(ffn_norm, "post_attention_layernorm.weight", in->hidden)
        MAT(gate, "mlp.gate_proj.weight", in->ffn, in->hidden)
        MAT(up, "mlp.up_proj.weight", in->ffn, in->hidden)
        MAT(down, "mlp.down_proj.weight", in->hidden, in->ffn)
#undef MAT
#undef VEC
    }
    if (rc == 0) m->out_norm = hf_vector(m, st, "model.norm.weight", in->hidden, &terr, &rc);
    if (rc < 0) {
        echo_err_set_at(err, dir, 0, 0, "%s", terr.msg);
        goto out;
    }
    m->output = in->tied ? &m->embed : &m->output_own;
    in->n_ctx_train = in->n_ctx_train > MAX_CONTEXT ? MAX_CONTEXT : in->n_ctx_train;

    llm_sampling_default(&m->defaults);
    gen = load_json(dir, "generation_config.json", false, err, &rc);
    if (rc < 0) goto out;
    if (gen)
        hf_generation_config(m, gen);
    else
        fill_stop_ids(m, NULL, 0);
out:
    kern_pool_free(pool);
    st_model_close(st);
    json_decref(cfg);
    json_decref(gen);
    return rc;
}

/* ---- after loading -------------------------------------------------------------- */

static uint64_t matrix_bytes(const struct kern_matrix *w)
{
    return (uint64_t)w->row_bytes * (uint64_t)w->rows;
}

/* Every distinct matrix of the model, for repacking and accounting. */
static size_t model_matrices(llm_model *m, struct kern_matrix **out, size_t cap)
{
    size_t n = 0;
    if (n < cap) out[n++] = &m->embed;
    if (m->output == &m->output_own && n < cap) out[n++] = &m->output_own;
    for (int i = 0; i < m->info.n_layers; i++) {
        struct llm_layer *L = &m->layers[i];
        struct kern_matrix *ms[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->gate, &L->up, &L->down};
        for (size_t j = 0; j < sizeof(ms) / sizeof(ms[0]) && n < cap; j++)
            out[n++] = ms[j];
    }
    return n;
}

/* Gives pages of [p, p+n) back to the kernel (mapped file pages are re-read on demand). */
static void release_range(const void *p, size_t n)
{
    long page = sysconf(_SC_PAGESIZE);
    if (page <= 0) return;
    uintptr_t a = ((uintptr_t)p + (uintptr_t)page - 1) & ~((uintptr_t)page - 1);
    uintptr_t b = ((uintptr_t)p + n) & ~((uintptr_t)page - 1);
    if (b > a) (void)madvise((void *)a, b - a, MADV_DONTNEED);
}

/*
 * Repacking at load, on every core. The packed copies of all matrices go to
 * one mapping of huge pages (kern_map_huge: decode streams them every token,
 * and 2 MiB pages spare it a TLB miss every 4 KiB), laid out one after the
 * other. The work is cut into pieces of about PACK_PIECE_BYTES of output that
 * the threads claim in turn, so that the largest matrix (the embedding, a
 * sixth of the model) is shared like the rest; whoever packs the last piece
 * of a matrix gives that matrix's file pages back.
 */
#define PACK_PIECE_BYTES ((size_t)1 << 20)

struct pack_piece {
    size_t mat;
    int g0, g1;
};

struct pack_job {
    llm_model *m;
    struct kern_matrix **mats;
    uint8_t **dst;    /* per matrix: its place in the arena, NULL when not packed here */
    atomic_int *left; /* per matrix: pieces not yet packed */
    struct pack_piece *pieces;
    size_t n_pieces;
    atomic_size_t next;
};

static void pack_pieces(void *arg, int ith, int nth)
{
    (void)ith;
    (void)nth;
    struct pack_job *j = arg;
    for (;;) {
        size_t i = atomic_fetch_add(&j->next, 1);
        if (i >= j->n_pieces) return;
        const struct pack_piece *p = &j->pieces[i];
        struct kern_matrix *w = j->mats[p->mat];
        kern_matrix_pack_groups(w, j->dst[p->mat], p->g0, p->g1);
        /* The packed copy replaces the original: give back the file pages
         * (GGUF; re-read on demand should anything read them) so the process
         * holds one copy of the weights. */
        if (atomic_fetch_sub(&j->left[p->mat], 1) == 1 && j->m->gguf)
            release_range(w->data, matrix_bytes(w));
    }
}

/* Packs every matrix that is not packed yet (HF matrices were packed as they
 * were converted). 0, or LLM_ERR_IO when the arena cannot be mapped. */
static int pack_model(llm_model *m, struct kern_matrix **mats, size_t n, struct echo_err *err)
{
    int rc = 0;
    uint8_t **dst = xcalloc(n, sizeof(*dst));
    atomic_int *left = xcalloc(n, sizeof(*left));
    size_t total = 0, n_pieces = 0;
    for (size_t i = 0; i < n; i++) {
        size_t bytes = mats[i]->packed ? 0 : kern_matrix_packed_bytes(mats[i]);
        if (!bytes) continue;
        int groups = kern_matrix_groups(mats[i]);
        size_t per = PACK_PIECE_BYTES / (bytes / (size_t)groups) + 1;
        n_pieces += ((size_t)groups + per - 1) / per;
        total += (bytes + 63) & ~(size_t)63;
    }
    if (!total) goto out;
    uint8_t *arena = kern_map_huge(total);
    if (!arena) {
        echo_err_set(err, "out of memory repacking %zu bytes of weights", total);
        rc = LLM_ERR_IO;
        goto out;
    }
    if (m->n_maps == m->cap_maps) {
        m->cap_maps = m->cap_maps ? m->cap_maps * 2 : 64;
        m->maps = xrealloc(m->maps, m->cap_maps * sizeof(*m->maps));
    }
    m->maps[m->n_maps].p = arena;
    m->maps[m->n_maps].n = total;
    m->n_maps++;

    struct pack_piece *pieces = xcalloc(n_pieces, sizeof(*pieces));
    size_t off = 0, k = 0;
    for (size_t i = 0; i < n; i++) {
        size_t bytes = mats[i]->packed ? 0 : kern_matrix_packed_bytes(mats[i]);
        atomic_init(&left[i], 0);
        if (!bytes) continue;
        dst[i] = arena + off;
        off += (bytes + 63) & ~(size_t)63;
        int groups = kern_matrix_groups(mats[i]);
        int per = (int)(PACK_PIECE_BYTES / (bytes / (size_t)groups) + 1);
        for (int g = 0; g < groups; g += per) {
            pieces[k].mat = i;
            pieces[k].g0 = g;
            pieces[k].g1 = g + per < groups ? g + per : groups;
            k++;
            atomic_fetch_add(&left[i], 1);
        }
    }
    struct pack_job job = {
        .m = m, .mats = mats, .dst = dst, .left = left, .pieces = pieces, .n_pieces = k};
    atomic_init(&job.next, 0);
    struct kern_pool *pool = kern_pool_new(0);
    kern_pool_run(pool, pack_pieces, &job);
    kern_pool_free(pool);
    for (size_t i = 0; i < n; i++)
        if (dst[i]) kern_matrix_use_packed(mats[i], dst[i]);
    free(pieces);
out:
    free(left);
    free(dst);
    return rc;
}

static int finish_model(llm_model *m, const struct llm_load_opts *o, struct echo_err *err)
{
    struct llm_model_info *in = &m->info;
    size_t cap = 2 + 7 * (size_t)in->n_layers;
    struct kern_matrix **mats = xcalloc(cap, sizeof(*mats));
    size_t n = model_matrices(m, mats, cap);
    int rc = 0;

    if (tok_vocab_size(m->tok) > in->n_vocab) {
        echo_err_set(err, "the tokenizer has %d ids but the model only %d embedding rows",
                     (int)tok_vocab_size(m->tok), in->n_vocab);
        rc = LLM_ERR_BAD_FILE;
        goto out;
    }
    const char *tn = gguf_tensor_type_name(m->layers[0].wq.type);
    set_str(in->weight_type, sizeof(in->weight_type), tn ? tn : "?", strlen(tn ? tn : "?"));
    in->n_ctx = in->n_ctx_train;
    if (o->max_context > 0 && o->max_context < in->n_ctx) in->n_ctx = o->max_context;
    uint64_t params = 0;
    for (size_t i = 0; i < n; i++)
        params += (uint64_t)mats[i]->rows * (uint64_t)mats[i]->cols;
    int kv_dim = in->head_dim * in->n_kv_heads;
    params += (uint64_t)in->n_layers * (uint64_t)(2 * in->hidden + in->hidden + 2 * kv_dim);
    params += (uint64_t)in->hidden;
    in->n_params = params;

    if (!o->no_repack && (rc = pack_model(m, mats, n, err)) < 0) goto out;
    in->weights_bytes = 0;
    for (size_t i = 0; i < n; i++)
        in->weights_bytes += matrix_bytes(mats[i]);
out:
    free(mats);
    return rc;
}

uint64_t llm_model_bytes_per_token(const llm_model *m)
{
    const struct llm_model_info *in = &m->info;
    uint64_t b = 0;
    for (int i = 0; i < in->n_layers; i++) {
        const struct llm_layer *L = &m->layers[i];
        b += matrix_bytes(&L->wq) + matrix_bytes(&L->wk) + matrix_bytes(&L->wv) +
             matrix_bytes(&L->wo) + matrix_bytes(&L->gate) + matrix_bytes(&L->up) +
             matrix_bytes(&L->down);
    }
    b += matrix_bytes(m->output);
    b += m->embed.row_bytes; /* the one embedding row looked up */
    int kv_dim = in->head_dim * in->n_kv_heads;
    b += (uint64_t)in->n_layers * (uint64_t)(3 * in->hidden + 2 * kv_dim) * sizeof(float);
    b += (uint64_t)in->hidden * sizeof(float);
    return b;
}

llm_model *llm_model_load(const char *path, const struct llm_load_opts *opts, struct echo_err *err)
{
    struct llm_load_opts o = {0};
    if (opts) o = *opts;
    llm_model *m = xcalloc(1, sizeof(*m));
    struct stat st;
    int rc;
    if (!path || stat(path, &st) < 0) {
        echo_err_set(err, "%s: %s", path ? path : "(no model path)",
                     path ? strerror(errno) : "give a model path");
        goto fail;
    }
    if (S_ISDIR(st.st_mode)) {
        rc = load_hf(m, path, dtype_tensor_type(o.dtype), !o.no_repack, err);
    } else {
        rc = load_gguf(m, path, err);
    }
    if (rc < 0 || finish_model(m, &o, err) < 0) goto fail;
    return m;
fail:
    llm_model_free(m);
    return NULL;
}

void llm_model_free(llm_model *m)
{
    if (!m) return;
    if (m->layers) {
        for (int i = 0; i < m->info.n_layers; i++) {
            struct llm_layer *L = &m->layers[i];
            struct kern_matrix *ms[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->gate, &L->up, &L->down};
            for (size_t j = 0; j < sizeof(ms) / sizeof(ms[0]); j++)
                kern_matrix_release(ms[j]);
        }
    }
    kern_matrix_release(&m->embed);
    kern_matrix_release(&m->output_own);
    free(m->layers);
    for (size_t i = 0; i < m->n_owned; i++)
        free(m->owned[i]);
    free(m->owned);
    for (size_t i = 0; i < m->n_maps; i++)
        munmap(m->maps[i].p, m->maps[i].n);
    free(m->maps);
    tok_free(m->tok);
    gguf_close(m->gguf);
    free(m);
}

const struct llm_model_info *llm_model_get_info(const llm_model *m)
{
    return &m->info;
}

const tokenizer *llm_model_tokenizer(const llm_model *m)
{
    return m->tok;
}

const struct llm_sampling *llm_model_sampling(const llm_model *m)
{
    return &m->defaults;
}
