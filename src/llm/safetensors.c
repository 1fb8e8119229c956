/*
 * safetensors.c - the safetensors reader (see safetensors.h).
 *
 * The header is JSON parsed by jansson; everything it claims is checked
 * against the bytes actually present before a tensor is exposed, following
 * the checks of the reference Rust implementation (safetensors::tensor::
 * SafeTensors::deserialize): header length within the file and the 100 MB
 * cap, known dtypes, shape x dtype size == byte range with overflow checks,
 * ranges sorted and contiguous from 0 to the end of the data area.
 */
#include "llm/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* The reference implementation refuses headers above 100 MB. */
#define ST_MAX_HEADER (100u * 1024u * 1024u)
/* More tensors than this in one file is not a model, it is an attack. */
#define ST_MAX_TENSORS 1000000u
/* The index of a sharded model is small JSON. */
#define ST_MAX_INDEX (64u * 1024u * 1024u)
#define ST_MAX_SHARDS 4096u

struct st_file {
    const uint8_t *base; /* whole file (or caller buffer) */
    size_t size;
    bool mapped;
    char *path;
    struct st_tensor *tensors; /* sorted by name for st_find */
    size_t n_tensors;
    char *names; /* all names, NUL-separated */
};

struct st_model_entry {
    const struct st_tensor *tensor;
    const st_file *file;
};

struct st_model {
    st_file **files;
    size_t n_files;
    struct st_model_entry *entries; /* sorted by name */
    size_t n_entries;
};

static const struct {
    const char *name;
    enum st_dtype dtype;
    size_t size;
} dtypes[] = {
    {"BOOL", ST_BOOL, 1}, {"U8", ST_U8, 1},   {"I8", ST_I8, 1},     {"I16", ST_I16, 2},
    {"U16", ST_U16, 2},   {"F16", ST_F16, 2}, {"BF16", ST_BF16, 2}, {"I32", ST_I32, 4},
    {"U32", ST_U32, 4},   {"F32", ST_F32, 4}, {"F64", ST_F64, 8},   {"I64", ST_I64, 8},
    {"U64", ST_U64, 8},
};

const char *st_dtype_name(enum st_dtype t)
{
    for (size_t i = 0; i < sizeof(dtypes) / sizeof(dtypes[0]); i++)
        if (dtypes[i].dtype == t) return dtypes[i].name;
    return "?";
}

size_t st_dtype_size(enum st_dtype t)
{
    for (size_t i = 0; i < sizeof(dtypes) / sizeof(dtypes[0]); i++)
        if (dtypes[i].dtype == t) return dtypes[i].size;
    return 0;
}

static int dtype_parse(const char *s, enum st_dtype *out)
{
    for (size_t i = 0; i < sizeof(dtypes) / sizeof(dtypes[0]); i++) {
        if (!strcmp(dtypes[i].name, s)) {
            *out = dtypes[i].dtype;
            return 0;
        }
    }
    return -1;
}

static int cmp_tensor_name(const void *a, const void *b)
{
    return strcmp(((const struct st_tensor *)a)->name, ((const struct st_tensor *)b)->name);
}

static int cmp_tensor_offset(const void *a, const void *b)
{
    const struct st_tensor *x = *(const struct st_tensor *const *)a;
    const struct st_tensor *y = *(const struct st_tensor *const *)b;
    if (x->data != y->data) return (uintptr_t)x->data < (uintptr_t)y->data ? -1 : 1;
    /* Empty tensors share an offset with their neighbour; order them first. */
    return x->size < y->size ? -1 : x->size > y->size;
}

/* Reads a JSON integer that must be a non-negative value. */
static int json_u64(const json_t *v, uint64_t *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0) return -1;
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

/* Fills one tensor from its header entry; data_base is the first data byte. */
static int parse_entry(st_file *f, const char *name, const json_t *info, const uint8_t *data_base,
                       uint64_t data_size, struct st_tensor *t, struct echo_err *err)
{
    if (!json_is_object(info)) {
        echo_err_set(err, "%s: tensor '%s': header entry is not an object", f->path, name);
        return -1;
    }
    const json_t *dt = json_object_get(info, "dtype");
    const json_t *shape = json_object_get(info, "shape");
    const json_t *offs = json_object_get(info, "data_offsets");
    if (!json_is_string(dt) || dtype_parse(json_string_value(dt), &t->dtype) < 0) {
        echo_err_set(err, "%s: tensor '%s': missing or unknown dtype%s%s", f->path, name,
                     json_is_string(dt) ? " " : "",
                     json_is_string(dt) ? json_string_value(dt) : "");
        return -1;
    }
    if (!json_is_array(shape) || json_array_size(shape) > ST_MAX_DIMS) {
        echo_err_set(err, "%s: tensor '%s': shape must be an array of at most %d sizes", f->path,
                     name, ST_MAX_DIMS);
        return -1;
    }
    t->n_dims = (uint32_t)json_array_size(shape);
    uint64_t n = 1;
    for (uint32_t i = 0; i < t->n_dims; i++) {
        if (json_u64(json_array_get(shape, i), &t->shape[i]) < 0) {
            echo_err_set(err, "%s: tensor '%s': shape[%u] is not a non-negative integer", f->path,
                         name, i);
            return -1;
        }
        if (t->shape[i] && n > UINT64_MAX / t->shape[i]) {
            echo_err_set(err, "%s: tensor '%s': shape overflows", f->path, name);
            return -1;
        }
        n *= t->shape[i];
    }
    t->n_elements = n;
    uint64_t begin, end;
    if (!json_is_array(offs) || json_array_size(offs) != 2 ||
        json_u64(json_array_get(offs, 0), &begin) < 0 ||
        json_u64(json_array_get(offs, 1), &end) < 0) {
        echo_err_set(err, "%s: tensor '%s': data_offsets must be [begin, end]", f->path, name);
        return -1;
    }
    if (begin > end || end > data_size) {
        echo_err_set(err, "%s: tensor '%s': data_offsets [%llu, %llu] outside the %llu data bytes",
                     f->path, name, (unsigned long long)begin, (unsigned long long)end,
                     (unsigned long long)data_size);
        return -1;
    }
    size_t esize = st_dtype_size(t->dtype);
    if (n > UINT64_MAX / esize || n * esize != end - begin) {
        echo_err_set(err, "%s: tensor '%s': %llu elements of %s do not fill %llu bytes", f->path,
                     name, (unsigned long long)n, st_dtype_name(t->dtype),
                     (unsigned long long)(end - begin));
        return -1;
    }
    t->size = end - begin;
    t->data = data_base + begin;
    return 0;
}

/* Parses and validates the header of f->base[0..f->size). */
static int parse_file(st_file *f, struct echo_err *err)
{
    json_t *root = NULL;
    struct st_tensor **by_offset = NULL;
    int rc = -1;

    if (f->size < 8) {
        echo_err_set(err, "%s: truncated safetensors file (%zu bytes)", f->path, f->size);
        return -1;
    }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | f->base[i];
    if (hlen > ST_MAX_HEADER || hlen > f->size - 8) {
        echo_err_set(err, "%s: header length %llu exceeds the file (%zu bytes) or the 100 MB cap",
                     f->path, (unsigned long long)hlen, f->size);
        return -1;
    }
    if (hlen < 2 || f->base[8] != '{') {
        echo_err_set(err, "%s: header is not a JSON object", f->path);
        return -1;
    }
    json_error_t jerr;
    root = json_loadb((const char *)f->base + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        echo_err_set_at(err, f->path, jerr.line, jerr.column, "bad safetensors header JSON: %s",
                        jerr.text);
        return -1;
    }
    if (!json_is_object(root)) {
        echo_err_set(err, "%s: header is not a JSON object", f->path);
        goto out;
    }
    const json_t *meta = json_object_get(root, "__metadata__");
    if (meta && !json_is_object(meta)) {
        echo_err_set(err, "%s: __metadata__ is not an object", f->path);
        goto out;
    }
    size_t count = json_object_size(root) - (meta ? 1 : 0);
    if (count > ST_MAX_TENSORS) {
        echo_err_set(err, "%s: %zu tensors is more than the %u allowed", f->path, count,
                     ST_MAX_TENSORS);
        goto out;
    }
    size_t names_len = 0;
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) names_len += strlen(key) + 1;

    f->tensors = xcalloc(count ? count : 1, sizeof(*f->tensors));
    f->names = xmalloc(names_len ? names_len : 1);
    by_offset = xcalloc(count ? count : 1, sizeof(*by_offset));
    const uint8_t *data_base = f->base + 8 + hlen;
    uint64_t data_size = f->size - 8 - hlen;
    size_t n = 0, name_off = 0;
    json_object_foreach(root, key, val)
    {
        if (!strcmp(key, "__metadata__")) continue;
        size_t klen = strlen(key);
        memcpy(f->names + name_off, key, klen + 1);
        struct st_tensor *t = &f->tensors[n];
        t->name = f->names + name_off;
        name_off += klen + 1;
        if (parse_entry(f, key, val, data_base, data_size, t, err) < 0) goto out;
        by_offset[n] = t;
        n++;
    }
    f->n_tensors = n;

    /* The data area must be tiled exactly: sorted by offset, each tensor starts
     * where the previous ended and the last ends at the end of the file. */
    qsort(by_offset, n, sizeof(*by_offset), cmp_tensor_offset);
    const uint8_t *expect = data_base;
    for (size_t i = 0; i < n; i++) {
        if ((const uint8_t *)by_offset[i]->data != expect) {
            echo_err_set(err,
                         "%s: tensor '%s' %s the previous tensor (data offsets must be "
                         "contiguous)",
                         f->path, by_offset[i]->name,
                         (const uint8_t *)by_offset[i]->data < expect ? "overlaps"
                                                                      : "leaves a hole after");
            goto out;
        }
        expect += by_offset[i]->size;
    }
    if (expect != data_base + data_size) {
        echo_err_set(err, "%s: %llu bytes after the last tensor are not described by the header",
                     f->path, (unsigned long long)(data_base + data_size - expect));
        goto out;
    }
    qsort(f->tensors, n, sizeof(*f->tensors), cmp_tensor_name);
    rc = 0;
out:
    free(by_offset);
    json_decref(root);
    return rc;
}

static st_file *file_new(const char *path)
{
    st_file *f = xcalloc(1, sizeof(*f));
    f->path = xstrdup(path ? path : "<memory>");
    return f;
}

st_file *st_open_memory(const void *data, size_t size, struct echo_err *err)
{
    st_file *f = file_new(NULL);
    f->base = data;
    f->size = size;
    if (parse_file(f, err) < 0) {
        st_close(f);
        return NULL;
    }
    return f;
}

st_file *st_open(const char *path, struct echo_err *err)
{
    st_file *f = file_new(path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        echo_err_set(err, "%s: %s", path, strerror(errno));
        goto fail;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        echo_err_set(err, "%s: not a regular file", path);
        close(fd);
        goto fail;
    }
    f->size = (size_t)st.st_size;
    if (f->size > 0) {
        void *p = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            echo_err_set(err, "%s: mmap: %s", path, strerror(errno));
            close(fd);
            goto fail;
        }
        f->base = p;
        f->mapped = true;
    }
    close(fd);
    if (parse_file(f, err) < 0) goto fail;
    return f;
fail:
    st_close(f);
    return NULL;
}

void st_close(st_file *f)
{
    if (!f) return;
    if (f->mapped) munmap((void *)f->base, f->size);
    free(f->tensors);
    free(f->names);
    free(f->path);
    free(f);
}

size_t st_tensor_count(const st_file *f)
{
    return f->n_tensors;
}

const struct st_tensor *st_tensor_at(const st_file *f, size_t i)
{
    return i < f->n_tensors ? &f->tensors[i] : NULL;
}

const struct st_tensor *st_find(const st_file *f, const char *name)
{
    struct st_tensor key = {.name = name};
    return bsearch(&key, f->tensors, f->n_tensors, sizeof(*f->tensors), cmp_tensor_name);
}

/* ---- sharded folders ---------------------------------------------------- */

static int cmp_entry(const void *a, const void *b)
{
    return strcmp(((const struct st_model_entry *)a)->tensor->name,
                  ((const struct st_model_entry *)b)->tensor->name);
}

static char *path_join(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    char *p = xmalloc(a + b + 2);
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
    return p;
}

/* A shard name from the index must stay inside the model folder. */
static bool shard_name_ok(const char *s)
{
    return s[0] && !strchr(s, '/') && strcmp(s, ".") && strcmp(s, "..");
}

static int model_add_file(st_model *m, const char *dir, const char *name, struct echo_err *err)
{
    char *path = path_join(dir, name);
    st_file *f = st_open(path, err);
    free(path);
    if (!f) return -1;
    m->files = xrealloc(m->files, (m->n_files + 1) * sizeof(*m->files));
    m->files[m->n_files++] = f;
    return 0;
}

static int model_open_index(st_model *m, const char *dir, const char *index_path,
                            struct echo_err *err)
{
    size_t len;
    json_t *root = NULL;
    int rc = -1;
    char *text = file_read_all(index_path, ST_MAX_INDEX, &len, err);
    if (!text) return -1;
    json_error_t jerr;
    root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        echo_err_set_at(err, index_path, jerr.line, jerr.column, "bad index JSON: %s", jerr.text);
        goto out;
    }
    json_t *map = json_object_get(root, "weight_map");
    if (!json_is_object(map) || json_object_size(map) == 0) {
        echo_err_set(err, "%s: no \"weight_map\" object", index_path);
        goto out;
    }
    const char *name;
    json_t *val;
    /* Open every distinct shard once, in the order the index first names them. */
    json_object_foreach(map, name, val)
    {
        if (!json_is_string(val) || !shard_name_ok(json_string_value(val))) {
            echo_err_set(err, "%s: tensor '%s' maps to an invalid shard name", index_path, name);
            goto out;
        }
        const char *shard = json_string_value(val);
        bool seen = false;
        for (size_t i = 0; i < m->n_files && !seen; i++) {
            const char *p = strrchr(m->files[i]->path, '/');
            seen = !strcmp(p ? p + 1 : m->files[i]->path, shard);
        }
        if (seen) continue;
        if (m->n_files >= ST_MAX_SHARDS) {
            echo_err_set(err, "%s: more than %u shards", index_path, ST_MAX_SHARDS);
            goto out;
        }
        if (model_add_file(m, dir, shard, err) < 0) goto out;
    }
    /* Every tensor the index names must be in the shard it names. */
    json_object_foreach(map, name, val)
    {
        const char *shard = json_string_value(val);
        for (size_t i = 0; i < m->n_files; i++) {
            const char *p = strrchr(m->files[i]->path, '/');
            if (strcmp(p ? p + 1 : m->files[i]->path, shard)) continue;
            if (!st_find(m->files[i], name)) {
                echo_err_set(err, "%s: the index places tensor '%s' in %s, which lacks it",
                             index_path, name, shard);
                goto out;
            }
        }
    }
    rc = 0;
out:
    json_decref(root);
    free(text);
    return rc;
}

st_model *st_model_open(const char *dir, struct echo_err *err)
{
    st_model *m = xcalloc(1, sizeof(*m));
    char *index = path_join(dir, "model.safetensors.index.json");
    struct stat st;
    int rc;
    if (stat(index, &st) == 0)
        rc = model_open_index(m, dir, index, err);
    else
        rc = model_add_file(m, dir, "model.safetensors", err);
    free(index);
    if (rc < 0) goto fail;

    size_t total = 0;
    for (size_t i = 0; i < m->n_files; i++)
        total += m->files[i]->n_tensors;
    m->entries = xcalloc(total ? total : 1, sizeof(*m->entries));
    for (size_t i = 0; i < m->n_files; i++)
        for (size_t j = 0; j < m->files[i]->n_tensors; j++)
            m->entries[m->n_entries++] =
                (struct st_model_entry){&m->files[i]->tensors[j], m->files[i]};
    qsort(m->entries, m->n_entries, sizeof(*m->entries), cmp_entry);
    for (size_t i = 1; i < m->n_entries; i++) {
        if (!strcmp(m->entries[i].tensor->name, m->entries[i - 1].tensor->name)) {
            echo_err_set(err, "%s: tensor '%s' appears in two shards (%s and %s)", dir,
                         m->entries[i].tensor->name, m->entries[i - 1].file->path,
                         m->entries[i].file->path);
            goto fail;
        }
    }
    return m;
fail:
    st_model_close(m);
    return NULL;
}

void st_model_close(st_model *m)
{
    if (!m) return;
    for (size_t i = 0; i < m->n_files; i++)
        st_close(m->files[i]);
    free(m->files);
    free(m->entries);
    free(m);
}

const struct st_tensor *st_model_find(const st_model *m, const char *name)
{
    struct st_tensor key = {.name = name};
    struct st_model_entry k = {.tensor = &key};
    const struct st_model_entry *e =
        bsearch(&k, m->entries, m->n_entries, sizeof(*m->entries), cmp_entry);
    return e ? e->tensor : NULL;
}

size_t st_model_tensor_count(const st_model *m)
{
    return m->n_entries;
}

const struct st_tensor *st_model_tensor_at(const st_model *m, size_t i)
{
    return i < m->n_entries ? m->entries[i].tensor : NULL;
}

size_t st_model_shard_count(const st_model *m)
{
    return m->n_files;
}

uint64_t st_model_file_bytes(const st_model *m)
{
    uint64_t total = 0;
    for (size_t i = 0; i < m->n_files; i++)
        total += m->files[i]->size;
    return total;
}

void st_model_release(const st_model *m, const struct st_tensor *t)
{
    (void)m;
    long page = sysconf(_SC_PAGESIZE);
    if (page <= 0 || t->size == 0) return;
    uintptr_t a = ((uintptr_t)t->data + (uintptr_t)page - 1) & ~((uintptr_t)page - 1);
    uintptr_t b = ((uintptr_t)t->data + t->size) & ~((uintptr_t)page - 1);
    /* Only whole pages inside the tensor; a failure just leaves pages resident. */
    if (b > a) (void)madvise((void *)a, b - a, MADV_DONTNEED);
}
