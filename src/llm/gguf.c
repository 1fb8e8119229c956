/*
 * gguf.c - GGUF v2/v3 reader (see gguf.h).
 *
 * The file is mapped read-only and parsed once, front to back, by a cursor
 * that checks every read against the end of the file. Nothing is copied:
 * keys, strings, arrays and tensor data are pointers into the mapping. The
 * only allocations are the kv and tensor tables (whose counts are first
 * checked against the bytes left in the file, so an absurd count is refused
 * before any allocation) and a hash index for look-ups by name.
 *
 * Format (github.com/ggml-org/ggml, docs/gguf.md), all little-endian:
 *   "GGUF" u32 version, u64 n_tensors, u64 n_kv,
 *   n_kv x (string key, u32 type, value),
 *   n_tensors x (string name, u32 n_dims, u64 dims[n_dims], u32 type, u64 offset),
 *   padding to `general.alignment` (default 32), then the tensor data; each
 *   tensor offset is relative to the start of the data and aligned.
 * A string is u64 length + bytes (v1 used u32 lengths and counts; refused).
 */
#include "llm/gguf.h"

#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define GGUF_MAGIC "GGUF"
#define GGUF_DEFAULT_ALIGNMENT 32
/* Hard caps far above any real model (Qwen2.5-1.5B has 338 tensors and ~30
 * keys), so that even a huge crafted file cannot make us allocate tables of
 * hundreds of millions of entries. */
#define GGUF_MAX_TENSORS (1u << 20)
#define GGUF_MAX_KV (1u << 20)
/* Smallest possible encodings, used to bound counts by the bytes left. */
#define GGUF_MIN_KV_BYTES (8 + 4 + 1)
#define GGUF_MIN_TENSOR_BYTES (8 + 1 + 4 + 4 + 8)

/* Open-addressing hash of names: a slot holds index + 1, 0 = empty. */
struct name_index {
    uint64_t *slots;
    uint64_t mask;
};

struct gguf_file {
    const uint8_t *base;
    size_t size;
    void *map; /* non-NULL when we own an mmap */
    uint32_t version;
    uint64_t alignment;
    uint64_t data_offset;
    uint64_t n_kv;
    struct gguf_kv *kv;
    uint64_t n_tensors;
    struct gguf_tensor *tensors;
    struct name_index kv_index;
    struct name_index tensor_index;
};

/* ---- type tables ------------------------------------------------------ */

struct tensor_type_info {
    const char *name;     /* ggml's name */
    uint32_t block_elems; /* 0: unknown type */
    uint32_t block_bytes;
    bool echo_known; /* listed in enum gguf_tensor_type */
};

/* ggml's type numbering and block layouts (ggml.c type_traits). Types ggml
 * removed (4, 5, 31-33, 36-38) are left unknown: their size cannot be computed. */
static const struct tensor_type_info tensor_types[] = {
    [0] = {"f32", 1, 4, true},          [1] = {"f16", 1, 2, true},
    [2] = {"q4_0", 32, 18, true},       [3] = {"q4_1", 32, 20, false},
    [6] = {"q5_0", 32, 22, false},      [7] = {"q5_1", 32, 24, false},
    [8] = {"q8_0", 32, 34, true},       [9] = {"q8_1", 32, 36, false},
    [10] = {"q2_K", 256, 84, false},    [11] = {"q3_K", 256, 110, false},
    [12] = {"q4_K", 256, 144, true},    [13] = {"q5_K", 256, 176, false},
    [14] = {"q6_K", 256, 210, true},    [15] = {"q8_K", 256, 292, false},
    [16] = {"iq2_xxs", 256, 66, false}, [17] = {"iq2_xs", 256, 74, false},
    [18] = {"iq3_xxs", 256, 98, false}, [19] = {"iq1_s", 256, 50, false},
    [20] = {"iq4_nl", 32, 18, false},   [21] = {"iq3_s", 256, 110, false},
    [22] = {"iq2_s", 256, 82, false},   [23] = {"iq4_xs", 256, 136, false},
    [24] = {"i8", 1, 1, false},         [25] = {"i16", 1, 2, false},
    [26] = {"i32", 1, 4, false},        [27] = {"i64", 1, 8, false},
    [28] = {"f64", 1, 8, false},        [29] = {"iq1_m", 256, 56, false},
    [30] = {"bf16", 1, 2, true},        [34] = {"tq1_0", 256, 54, false},
    [35] = {"tq2_0", 256, 66, false},   [39] = {"mxfp4", 32, 17, false},
};
#define N_TENSOR_TYPES (sizeof(tensor_types) / sizeof(tensor_types[0]))

static const struct tensor_type_info *tensor_type_info(uint32_t t)
{
    if (t >= N_TENSOR_TYPES || tensor_types[t].block_elems == 0) return NULL;
    return &tensor_types[t];
}

const char *gguf_tensor_type_name(enum gguf_tensor_type t)
{
    const struct tensor_type_info *info = tensor_type_info((uint32_t)t);
    return info && info->echo_known ? info->name : NULL;
}

const char *gguf_tensor_type_ggml_name(uint32_t t)
{
    const struct tensor_type_info *info = tensor_type_info(t);
    return info ? info->name : NULL;
}

uint64_t gguf_tensor_block_elems(enum gguf_tensor_type t)
{
    const struct tensor_type_info *info = tensor_type_info((uint32_t)t);
    return info ? info->block_elems : 0;
}

uint64_t gguf_tensor_block_bytes(enum gguf_tensor_type t)
{
    const struct tensor_type_info *info = tensor_type_info((uint32_t)t);
    return info ? info->block_bytes : 0;
}

static const char *const value_type_names[] = {
    "uint8", "int8",   "uint16", "int16",  "uint32", "int32",   "float32",
    "bool",  "string", "array",  "uint64", "int64",  "float64",
};

const char *gguf_type_name(enum gguf_type t)
{
    if ((unsigned)t < sizeof(value_type_names) / sizeof(value_type_names[0]))
        return value_type_names[t];
    return "unknown";
}

/* Byte size of a scalar value type; 0 for string/array/unknown. */
static uint64_t scalar_size(uint32_t t)
{
    switch (t) {
    case GGUF_TYPE_UINT8:
    case GGUF_TYPE_INT8:
    case GGUF_TYPE_BOOL:
        return 1;
    case GGUF_TYPE_UINT16:
    case GGUF_TYPE_INT16:
        return 2;
    case GGUF_TYPE_UINT32:
    case GGUF_TYPE_INT32:
    case GGUF_TYPE_FLOAT32:
        return 4;
    case GGUF_TYPE_UINT64:
    case GGUF_TYPE_INT64:
    case GGUF_TYPE_FLOAT64:
        return 8;
    default:
        return 0;
    }
}

/* ---- bounded cursor ---------------------------------------------------- */

struct cursor {
    const uint8_t *base;
    uint64_t size;
    uint64_t pos;
    const char *path; /* for error messages; may be NULL */
    struct echo_err *err;
};

static uint64_t left(const struct cursor *c)
{
    return c->size - c->pos;
}

static int need(struct cursor *c, uint64_t n, const char *what)
{
    if (n > left(c)) {
        echo_err_set_at(c->err, c->path ? c->path : "", 0, 0,
                        "gguf: truncated file: %s needs %llu bytes at offset %llu, but the file "
                        "ends at %llu",
                        what, (unsigned long long)n, (unsigned long long)c->pos,
                        (unsigned long long)c->size);
        return -1;
    }
    return 0;
}

static uint64_t load_le(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static int read_u32(struct cursor *c, uint32_t *out, const char *what)
{
    if (need(c, 4, what) < 0) return -1;
    *out = (uint32_t)load_le(c->base + c->pos, 4);
    c->pos += 4;
    return 0;
}

static int read_u64(struct cursor *c, uint64_t *out, const char *what)
{
    if (need(c, 8, what) < 0) return -1;
    *out = load_le(c->base + c->pos, 8);
    c->pos += 8;
    return 0;
}

static int read_str(struct cursor *c, struct gguf_str *out, const char *what)
{
    uint64_t len;
    if (read_u64(c, &len, what) < 0) return -1;
    if (len > left(c)) {
        echo_err_set_at(c->err, c->path ? c->path : "", 0, 0,
                        "gguf: %s of %llu bytes at offset %llu runs past the end of the file "
                        "(%llu bytes)",
                        what, (unsigned long long)len, (unsigned long long)(c->pos - 8),
                        (unsigned long long)c->size);
        return -1;
    }
    out->ptr = (const char *)(c->base + c->pos);
    out->len = len;
    c->pos += len;
    return 0;
}

#define FAIL_AT(c, ...)                                                                            \
    do {                                                                                           \
        echo_err_set_at((c)->err, (c)->path ? (c)->path : "", 0, 0, __VA_ARGS__);                  \
        return -1;                                                                                 \
    } while (0)

/* ---- name hashing ------------------------------------------------------ */

static uint64_t hash_bytes(const void *p, uint64_t n)
{
    /* FNV-1a: names are short and this runs once per tensor. */
    const uint8_t *s = p;
    uint64_t h = 1469598103934665603ull;
    for (uint64_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 1099511628211ull;
    }
    return h;
}

static bool str_eq(struct gguf_str a, const char *b, size_t blen)
{
    return a.len == blen && (blen == 0 || memcmp(a.ptr, b, blen) == 0);
}

static bool gstr_eq(struct gguf_str a, struct gguf_str b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

/* Prints a name for an error message: at most 64 bytes, non-printables as '?'. */
static const char *name_for_msg(struct gguf_str s, char *buf, size_t size)
{
    size_t n = s.len < size - 4 ? (size_t)s.len : size - 4;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s.ptr[i];
        buf[i] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
    }
    if (n < s.len) {
        memcpy(buf + n, "...", 3);
        n += 3;
    }
    buf[n] = 0;
    return buf;
}

static void index_init(struct name_index *ix, uint64_t n)
{
    uint64_t slots = 16;
    while (slots < 2 * n)
        slots <<= 1;
    ix->slots = xcalloc((size_t)slots, sizeof(*ix->slots));
    ix->mask = slots - 1;
}

/* Adds entry i (named `name`) unless the name is already present; returns
 * the index of the existing entry + 1 in that case, 0 when added. name_of
 * gives the name of entry j. */
static uint64_t index_add(struct name_index *ix, uint64_t i, struct gguf_str name,
                          const void *table, struct gguf_str (*name_of)(const void *, uint64_t))
{
    uint64_t h = hash_bytes(name.ptr, name.len) & ix->mask;
    while (ix->slots[h]) {
        if (gstr_eq(name_of(table, ix->slots[h] - 1), name)) return ix->slots[h];
        h = (h + 1) & ix->mask;
    }
    ix->slots[h] = i + 1;
    return 0;
}

/* Index of the entry named (name, len) + 1, or 0. */
static uint64_t index_find(const struct name_index *ix, const char *name, size_t len,
                           const void *table, struct gguf_str (*name_of)(const void *, uint64_t))
{
    if (!ix->slots) return 0;
    uint64_t h = hash_bytes(name, len) & ix->mask;
    while (ix->slots[h]) {
        if (str_eq(name_of(table, ix->slots[h] - 1), name, len)) return ix->slots[h];
        h = (h + 1) & ix->mask;
    }
    return 0;
}

static struct gguf_str kv_name(const void *table, uint64_t i)
{
    return ((const struct gguf_kv *)table)[i].key;
}

static struct gguf_str tensor_name(const void *table, uint64_t i)
{
    return ((const struct gguf_tensor *)table)[i].name;
}

/* ---- metadata ---------------------------------------------------------- */

/* Reads one value of type `type` (not an array element of an array) into v. */
static int read_value(struct cursor *c, uint32_t type, struct gguf_value *v, const char *key)
{
    memset(v, 0, sizeof(*v));
    v->type = (enum gguf_type)type;
    uint64_t sz = scalar_size(type);
    if (sz) {
        if (need(c, sz, "metadata value") < 0) return -1;
        const uint8_t *p = c->base + c->pos;
        uint64_t raw = load_le(p, (unsigned)sz);
        switch (type) {
        case GGUF_TYPE_INT8:
            v->v.i64 = (int8_t)raw;
            break;
        case GGUF_TYPE_INT16:
            v->v.i64 = (int16_t)raw;
            break;
        case GGUF_TYPE_INT32:
            v->v.i64 = (int32_t)raw;
            break;
        case GGUF_TYPE_INT64:
            v->v.i64 = (int64_t)raw;
            break;
        case GGUF_TYPE_FLOAT32: {
            float f;
            uint32_t r32 = (uint32_t)raw;
            memcpy(&f, &r32, 4);
            v->v.f64 = f;
            break;
        }
        case GGUF_TYPE_FLOAT64:
            memcpy(&v->v.f64, &raw, 8);
            break;
        default:
            v->v.u64 = raw;
        }
        c->pos += sz;
        return 0;
    }
    if (type == GGUF_TYPE_STRING) return read_str(c, &v->v.str, "string value");
    if (type == GGUF_TYPE_ARRAY) {
        uint32_t et;
        uint64_t count;
        if (read_u32(c, &et, "array element type") < 0 || read_u64(c, &count, "array count") < 0)
            return -1;
        v->v.array.elem_type = (enum gguf_type)et;
        v->v.array.count = count;
        v->v.array.data = c->base + c->pos;
        uint64_t esz = scalar_size(et);
        if (et == GGUF_TYPE_ARRAY)
            FAIL_AT(c, "gguf: key '%s': nested arrays are not supported (offset %llu)", key,
                    (unsigned long long)c->pos);
        if (esz) {
            if (count > left(c) / esz)
                FAIL_AT(c,
                        "gguf: key '%s': array of %llu %s elements at offset %llu runs past the "
                        "end of the file",
                        key, (unsigned long long)count, gguf_type_name((enum gguf_type)et),
                        (unsigned long long)c->pos);
            v->v.array.size = count * esz;
            c->pos += count * esz;
            return 0;
        }
        if (et != GGUF_TYPE_STRING)
            FAIL_AT(c, "gguf: key '%s': unknown array element type %u at offset %llu", key, et,
                    (unsigned long long)(c->pos - 12));
        /* Each string needs at least its 8-byte length. */
        if (count > left(c) / 8)
            FAIL_AT(c,
                    "gguf: key '%s': array of %llu strings at offset %llu cannot fit in the "
                    "file",
                    key, (unsigned long long)count, (unsigned long long)c->pos);
        uint64_t start = c->pos;
        for (uint64_t i = 0; i < count; i++) {
            uint64_t at = c->pos, len;
            if (left(c) < 8 || (len = load_le(c->base + c->pos, 8)) > left(c) - 8)
                FAIL_AT(c,
                        "gguf: key '%s': string %llu of %llu at offset %llu runs past the end of "
                        "the file (%llu bytes)",
                        key, (unsigned long long)i, (unsigned long long)count,
                        (unsigned long long)at, (unsigned long long)c->size);
            c->pos += 8 + len;
        }
        v->v.array.size = c->pos - start;
        return 0;
    }
    FAIL_AT(c, "gguf: key '%s': unknown value type %u at offset %llu", key, type,
            (unsigned long long)(c->pos - 4));
}

static int parse_kvs(gguf_file *f, struct cursor *c)
{
    if (f->n_kv > GGUF_MAX_KV || f->n_kv > left(c) / GGUF_MIN_KV_BYTES)
        FAIL_AT(c, "gguf: absurd metadata count %llu for a file of %llu bytes",
                (unsigned long long)f->n_kv, (unsigned long long)c->size);
    f->kv = f->n_kv ? xcalloc((size_t)f->n_kv, sizeof(*f->kv)) : NULL;
    index_init(&f->kv_index, f->n_kv);
    char name[80];
    for (uint64_t i = 0; i < f->n_kv; i++) {
        struct gguf_kv *kv = &f->kv[i];
        uint64_t at = c->pos;
        if (read_str(c, &kv->key, "metadata key") < 0) return -1;
        name_for_msg(kv->key, name, sizeof(name));
        if (index_add(&f->kv_index, i, kv->key, f->kv, kv_name))
            FAIL_AT(c, "gguf: duplicate metadata key '%s' at offset %llu", name,
                    (unsigned long long)at);
        uint32_t type;
        if (read_u32(c, &type, "metadata value type") < 0) return -1;
        if (read_value(c, type, &kv->value, name) < 0) return -1;
    }
    return 0;
}

/* ---- tensors ----------------------------------------------------------- */

static int cmp_by_offset(const void *a, const void *b)
{
    const struct gguf_tensor *x = *(const struct gguf_tensor *const *)a;
    const struct gguf_tensor *y = *(const struct gguf_tensor *const *)b;
    uintptr_t px = (uintptr_t)x->data, py = (uintptr_t)y->data;
    return px < py ? -1 : px > py;
}

static int parse_tensor_infos(gguf_file *f, struct cursor *c, uint64_t *offsets)
{
    char name[80];
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        struct gguf_tensor *t = &f->tensors[i];
        uint64_t at = c->pos;
        if (read_str(c, &t->name, "tensor name") < 0) return -1;
        name_for_msg(t->name, name, sizeof(name));
        if (t->name.len == 0)
            FAIL_AT(c, "gguf: tensor %llu at offset %llu has an empty name", (unsigned long long)i,
                    (unsigned long long)at);
        if (read_u32(c, &t->n_dims, "tensor dimension count") < 0) return -1;
        if (t->n_dims > GGUF_MAX_DIMS)
            FAIL_AT(c, "gguf: tensor '%s' has %u dimensions (at most %d)", name, t->n_dims,
                    GGUF_MAX_DIMS);
        uint64_t n = 1;
        for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++)
            t->dims[d] = 1;
        for (uint32_t d = 0; d < t->n_dims; d++) {
            if (read_u64(c, &t->dims[d], "tensor dimension") < 0) return -1;
            /* ggml stores dimensions as int64: the product must stay below 2^63. */
            if (t->dims[d] > (uint64_t)INT64_MAX ||
                (t->dims[d] && n > (uint64_t)INT64_MAX / t->dims[d]))
                FAIL_AT(c, "gguf: tensor '%s' has absurd dimensions (element count overflows)",
                        name);
            n *= t->dims[d];
        }
        t->n_elements = n;
        uint32_t type;
        if (read_u32(c, &type, "tensor type") < 0) return -1;
        t->type = (enum gguf_tensor_type)type;
        if (read_u64(c, &offsets[i], "tensor offset") < 0) return -1;
        const struct tensor_type_info *info = tensor_type_info(type);
        if (info) {
            if (t->dims[0] % info->block_elems)
                FAIL_AT(c,
                        "gguf: tensor '%s': row length %llu is not a multiple of the %s block "
                        "size %u",
                        name, (unsigned long long)t->dims[0], info->name, info->block_elems);
            uint64_t blocks = n / info->block_elems;
            if (blocks > UINT64_MAX / info->block_bytes)
                FAIL_AT(c, "gguf: tensor '%s': byte size overflows", name);
            t->size = blocks * info->block_bytes;
        } else if (n == 0) {
            t->size = 0; /* empty: the size is known whatever the type */
        } else {
            FAIL_AT(c, "gguf: tensor '%s' has unknown type %u, so its size cannot be computed",
                    name, type);
        }
        uint64_t dup = index_add(&f->tensor_index, i, t->name, f->tensors, tensor_name);
        if (dup)
            FAIL_AT(c, "gguf: duplicate tensor name '%s' (tensors %llu and %llu)", name,
                    (unsigned long long)(dup - 1), (unsigned long long)i);
    }
    return 0;
}

static int place_tensors(gguf_file *f, struct cursor *c, const uint64_t *offsets)
{
    uint64_t data_size = c->size - f->data_offset;
    char name[80];
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        struct gguf_tensor *t = &f->tensors[i];
        name_for_msg(t->name, name, sizeof(name));
        if (offsets[i] % f->alignment)
            FAIL_AT(c,
                    "gguf: tensor '%s': data offset %llu is not a multiple of the alignment %llu",
                    name, (unsigned long long)offsets[i], (unsigned long long)f->alignment);
        if (offsets[i] > data_size || t->size > data_size - offsets[i])
            FAIL_AT(c,
                    "gguf: tensor '%s': data [%llu, +%llu) lies outside the data section (%llu "
                    "bytes at file offset %llu)",
                    name, (unsigned long long)offsets[i], (unsigned long long)t->size,
                    (unsigned long long)data_size, (unsigned long long)f->data_offset);
        t->data = f->base + f->data_offset + offsets[i];
    }
    if (f->n_tensors < 2) return 0;
    /* Overlap check: sort by address and compare neighbours (empty tensors
     * overlap nothing). */
    const struct gguf_tensor **order = xmalloc((size_t)f->n_tensors * sizeof(*order));
    for (uint64_t i = 0; i < f->n_tensors; i++)
        order[i] = &f->tensors[i];
    qsort(order, (size_t)f->n_tensors, sizeof(*order), cmp_by_offset);
    const struct gguf_tensor *prev = NULL;
    int rc = 0;
    for (uint64_t i = 0; i < f->n_tensors && rc == 0; i++) {
        const struct gguf_tensor *t = order[i];
        if (t->size == 0) continue;
        if (prev && (const uint8_t *)prev->data + prev->size > (const uint8_t *)t->data) {
            char other[80];
            echo_err_set_at(
                c->err, c->path ? c->path : "", 0, 0,
                "gguf: tensors '%s' and '%s' overlap (data offsets %llu and %llu)",
                name_for_msg(prev->name, other, sizeof(other)),
                name_for_msg(t->name, name, sizeof(name)),
                (unsigned long long)((const uint8_t *)prev->data - f->base - f->data_offset),
                (unsigned long long)((const uint8_t *)t->data - f->base - f->data_offset));
            rc = -1;
        }
        prev = t;
    }
    free(order);
    return rc;
}

/* ---- open / close ------------------------------------------------------ */

static int parse(gguf_file *f, const char *path, struct echo_err *err)
{
    struct cursor c = {f->base, f->size, 0, path, err};
    if (f->size < 4 || memcmp(f->base, GGUF_MAGIC, 4) != 0)
        FAIL_AT(&c, "gguf: not a GGUF file (the first 4 bytes are not \"GGUF\")");
    c.pos = 4;
    if (read_u32(&c, &f->version, "version") < 0) return -1;
    if (f->version == 1)
        FAIL_AT(&c, "gguf: version 1 files are not supported (32-bit lengths); convert the model "
                    "again with a current llama.cpp");
    if (f->version != 2 && f->version != 3) {
        if ((f->version & 0xffff) == 0 && (f->version >> 16) != 0)
            FAIL_AT(&c, "gguf: big-endian GGUF files are not supported");
        FAIL_AT(&c, "gguf: unsupported version %u (Echo reads versions 2 and 3)", f->version);
    }
    if (read_u64(&c, &f->n_tensors, "tensor count") < 0 ||
        read_u64(&c, &f->n_kv, "metadata count") < 0)
        return -1;
    if (f->n_tensors > GGUF_MAX_TENSORS || f->n_tensors > left(&c) / GGUF_MIN_TENSOR_BYTES)
        FAIL_AT(&c, "gguf: absurd tensor count %llu for a file of %llu bytes",
                (unsigned long long)f->n_tensors, (unsigned long long)f->size);
    if (parse_kvs(f, &c) < 0) return -1;

    f->alignment = GGUF_DEFAULT_ALIGNMENT;
    const struct gguf_kv *al = gguf_find(f, "general.alignment");
    if (al) {
        if (al->value.type != GGUF_TYPE_UINT32)
            FAIL_AT(&c, "gguf: general.alignment must be a uint32, not %s",
                    gguf_type_name(al->value.type));
        uint64_t a = al->value.v.u64;
        if (a == 0 || (a & (a - 1)))
            FAIL_AT(&c, "gguf: general.alignment %llu is not a power of two",
                    (unsigned long long)a);
        f->alignment = a;
    }

    if (f->n_tensors > left(&c) / GGUF_MIN_TENSOR_BYTES)
        FAIL_AT(&c, "gguf: %llu tensors cannot fit in the %llu bytes after the metadata",
                (unsigned long long)f->n_tensors, (unsigned long long)left(&c));
    uint64_t *offsets = NULL;
    if (f->n_tensors) {
        f->tensors = xcalloc((size_t)f->n_tensors, sizeof(*f->tensors));
        index_init(&f->tensor_index, f->n_tensors);
        offsets = xmalloc((size_t)f->n_tensors * sizeof(*offsets));
    }
    int rc = parse_tensor_infos(f, &c, offsets);
    if (rc == 0) {
        /* The data section starts at the next multiple of the alignment. A
         * file without tensors (a vocabulary-only GGUF) may end right after
         * the metadata, without padding. */
        uint64_t pad = (f->alignment - c.pos % f->alignment) % f->alignment;
        if (f->n_tensors == 0) {
            f->data_offset = pad <= left(&c) ? c.pos + pad : c.size;
        } else if (pad > left(&c)) {
            echo_err_set_at(err, path ? path : "", 0, 0,
                            "gguf: truncated file: the tensor data section (offset %llu) starts "
                            "past the end of the file (%llu bytes)",
                            (unsigned long long)(c.pos + pad), (unsigned long long)c.size);
            rc = -1;
        } else {
            f->data_offset = c.pos + pad;
            rc = place_tensors(f, &c, offsets);
        }
    }
    free(offsets);
    return rc;
}

static gguf_file *open_common(gguf_file *f, const char *path, struct echo_err *err)
{
    if (parse(f, path, err) < 0) {
        gguf_close(f);
        return NULL;
    }
    return f;
}

gguf_file *gguf_open_memory(const void *data, size_t size, struct echo_err *err)
{
    gguf_file *f = xcalloc(1, sizeof(*f));
    f->base = data;
    f->size = size;
    if (!data && size) {
        echo_err_set(err, "gguf: NULL buffer");
        free(f);
        return NULL;
    }
    if (!data) f->base = (const uint8_t *)"";
    return open_common(f, NULL, err);
}

gguf_file *gguf_open(const char *path, struct echo_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        echo_err_set_at(err, path, 0, 0, "cannot open: %s", strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        echo_err_set_at(err, path, 0, 0, "cannot stat: %s", strerror(errno));
        close(fd);
        return NULL;
    }
    if (!S_ISREG(st.st_mode)) {
        echo_err_set_at(err, path, 0, 0, "gguf: not a regular file");
        close(fd);
        return NULL;
    }
    if (st.st_size == 0) {
        echo_err_set_at(err, path, 0, 0, "gguf: empty file");
        close(fd);
        return NULL;
    }
    void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int saved = errno;
    close(fd);
    if (map == MAP_FAILED) {
        echo_err_set_at(err, path, 0, 0, "cannot map: %s", strerror(saved));
        return NULL;
    }
    gguf_file *f = xcalloc(1, sizeof(*f));
    f->base = map;
    f->size = (size_t)st.st_size;
    f->map = map;
    return open_common(f, path, err);
}

void gguf_close(gguf_file *f)
{
    if (!f) return;
    if (f->map) munmap(f->map, f->size);
    free(f->kv);
    free(f->tensors);
    free(f->kv_index.slots);
    free(f->tensor_index.slots);
    free(f);
}

/* ---- accessors --------------------------------------------------------- */

uint32_t gguf_version(const gguf_file *f)
{
    return f->version;
}

uint64_t gguf_alignment(const gguf_file *f)
{
    return f->alignment;
}

uint64_t gguf_data_offset(const gguf_file *f)
{
    return f->data_offset;
}

uint64_t gguf_size(const gguf_file *f)
{
    return f->size;
}

uint64_t gguf_kv_count(const gguf_file *f)
{
    return f->n_kv;
}

const struct gguf_kv *gguf_kv_at(const gguf_file *f, uint64_t i)
{
    return i < f->n_kv ? &f->kv[i] : NULL;
}

const struct gguf_kv *gguf_find(const gguf_file *f, const char *key)
{
    uint64_t i = index_find(&f->kv_index, key, strlen(key), f->kv, kv_name);
    return i ? &f->kv[i - 1] : NULL;
}

static const struct gguf_kv *find_or_fail(const gguf_file *f, const char *key, struct echo_err *err)
{
    const struct gguf_kv *kv = gguf_find(f, key);
    if (!kv) echo_err_set(err, "gguf: key '%s' is missing", key);
    return kv;
}

static bool is_unsigned(enum gguf_type t)
{
    return t == GGUF_TYPE_UINT8 || t == GGUF_TYPE_UINT16 || t == GGUF_TYPE_UINT32 ||
           t == GGUF_TYPE_UINT64;
}

static bool is_signed(enum gguf_type t)
{
    return t == GGUF_TYPE_INT8 || t == GGUF_TYPE_INT16 || t == GGUF_TYPE_INT32 ||
           t == GGUF_TYPE_INT64;
}

int gguf_get_u64(const gguf_file *f, const char *key, uint64_t *out, struct echo_err *err)
{
    const struct gguf_kv *kv = find_or_fail(f, key, err);
    if (!kv) return -1;
    if (is_unsigned(kv->value.type)) {
        *out = kv->value.v.u64;
        return 0;
    }
    if (is_signed(kv->value.type) && kv->value.v.i64 >= 0) {
        *out = (uint64_t)kv->value.v.i64;
        return 0;
    }
    if (is_signed(kv->value.type))
        echo_err_set(err, "gguf: key '%s' is negative (%lld), expected an unsigned value", key,
                     (long long)kv->value.v.i64);
    else
        echo_err_set(err, "gguf: key '%s' is a %s, expected an integer", key,
                     gguf_type_name(kv->value.type));
    return -1;
}

int gguf_get_i64(const gguf_file *f, const char *key, int64_t *out, struct echo_err *err)
{
    const struct gguf_kv *kv = find_or_fail(f, key, err);
    if (!kv) return -1;
    if (is_signed(kv->value.type)) {
        *out = kv->value.v.i64;
        return 0;
    }
    if (is_unsigned(kv->value.type) && kv->value.v.u64 <= (uint64_t)INT64_MAX) {
        *out = (int64_t)kv->value.v.u64;
        return 0;
    }
    if (is_unsigned(kv->value.type))
        echo_err_set(err, "gguf: key '%s' is too large (%llu) for a signed value", key,
                     (unsigned long long)kv->value.v.u64);
    else
        echo_err_set(err, "gguf: key '%s' is a %s, expected an integer", key,
                     gguf_type_name(kv->value.type));
    return -1;
}

int gguf_get_bool(const gguf_file *f, const char *key, bool *out, struct echo_err *err)
{
    const struct gguf_kv *kv = find_or_fail(f, key, err);
    if (!kv) return -1;
    if (kv->value.type != GGUF_TYPE_BOOL) {
        echo_err_set(err, "gguf: key '%s' is a %s, expected a bool", key,
                     gguf_type_name(kv->value.type));
        return -1;
    }
    *out = kv->value.v.u64 != 0;
    return 0;
}

int gguf_get_f64(const gguf_file *f, const char *key, double *out, struct echo_err *err)
{
    const struct gguf_kv *kv = find_or_fail(f, key, err);
    if (!kv) return -1;
    if (kv->value.type != GGUF_TYPE_FLOAT32 && kv->value.type != GGUF_TYPE_FLOAT64) {
        echo_err_set(err, "gguf: key '%s' is a %s, expected a float", key,
                     gguf_type_name(kv->value.type));
        return -1;
    }
    *out = kv->value.v.f64;
    return 0;
}

int gguf_get_str(const gguf_file *f, const char *key, struct gguf_str *out, struct echo_err *err)
{
    const struct gguf_kv *kv = find_or_fail(f, key, err);
    if (!kv) return -1;
    if (kv->value.type != GGUF_TYPE_STRING) {
        echo_err_set(err, "gguf: key '%s' is a %s, expected a string", key,
                     gguf_type_name(kv->value.type));
        return -1;
    }
    *out = kv->value.v.str;
    return 0;
}

int gguf_get_array(const gguf_file *f, const char *key, enum gguf_type elem_type,
                   const struct gguf_value **out, struct echo_err *err)
{
    const struct gguf_kv *kv = find_or_fail(f, key, err);
    if (!kv) return -1;
    if (kv->value.type != GGUF_TYPE_ARRAY) {
        echo_err_set(err, "gguf: key '%s' is a %s, expected an array of %s", key,
                     gguf_type_name(kv->value.type), gguf_type_name(elem_type));
        return -1;
    }
    if (kv->value.v.array.elem_type != elem_type) {
        echo_err_set(err, "gguf: key '%s' is an array of %s, expected an array of %s", key,
                     gguf_type_name(kv->value.v.array.elem_type), gguf_type_name(elem_type));
        return -1;
    }
    *out = &kv->value;
    return 0;
}

struct gguf_str gguf_array_next_str(const struct gguf_value *array, uint64_t *pos)
{
    struct gguf_str s = {"", 0};
    /* *pos is a byte offset into the array's elements. The checks only fire
     * when a caller walks past the last element. */
    uint64_t size = array->v.array.size;
    if (array->type != GGUF_TYPE_ARRAY || array->v.array.elem_type != GGUF_TYPE_STRING ||
        *pos > size || size - *pos < 8)
        return s;
    uint64_t len = load_le(array->v.array.data + *pos, 8);
    if (len > size - *pos - 8) return s;
    s.ptr = (const char *)array->v.array.data + *pos + 8;
    s.len = len;
    *pos += 8 + len;
    return s;
}

int gguf_array_get_i64(const struct gguf_value *array, uint64_t i, int64_t *out)
{
    if (array->type != GGUF_TYPE_ARRAY || i >= array->v.array.count) return -1;
    enum gguf_type t = array->v.array.elem_type;
    uint64_t sz = scalar_size(t);
    if (!sz || t == GGUF_TYPE_FLOAT32 || t == GGUF_TYPE_FLOAT64) return -1;
    uint64_t raw = load_le(array->v.array.data + i * sz, (unsigned)sz);
    switch (t) {
    case GGUF_TYPE_INT8:
        *out = (int8_t)raw;
        return 0;
    case GGUF_TYPE_INT16:
        *out = (int16_t)raw;
        return 0;
    case GGUF_TYPE_INT32:
        *out = (int32_t)raw;
        return 0;
    case GGUF_TYPE_INT64:
        *out = (int64_t)raw;
        return 0;
    default:
        if (raw > (uint64_t)INT64_MAX) return -1;
        *out = (int64_t)raw;
        return 0;
    }
}

uint64_t gguf_tensor_count(const gguf_file *f)
{
    return f->n_tensors;
}

const struct gguf_tensor *gguf_tensor_at(const gguf_file *f, uint64_t i)
{
    return i < f->n_tensors ? &f->tensors[i] : NULL;
}

const struct gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name)
{
    uint64_t i = index_find(&f->tensor_index, name, strlen(name), f->tensors, tensor_name);
    return i ? &f->tensors[i - 1] : NULL;
}
