/*
 * safetensors.h - read-only safetensors files through mmap, and the sharded
 * folders Hugging Face writes (model.safetensors.index.json).
 *
 * A safetensors file is an 8-byte little-endian header length N, N bytes of
 * JSON ({"name": {"dtype", "shape", "data_offsets": [begin, end]}, ...,
 * "__metadata__": {...}}), then the tensor bytes. The header is parsed with
 * jansson and validated like the reference implementation does before any
 * pointer is handed out: a known dtype, a shape whose element count times the
 * dtype size equals the byte range, ranges that tile the data area exactly
 * (sorted, no overlap, no hole, ending at the end of the file). Anything else
 * is an error naming the file, the tensor and the problem.
 *
 * st_file and st_model are immutable after they are opened; any number of
 * threads may read them at once. Names and tensor data stay valid until the
 * handle is closed.
 */
#ifndef ECHO_LLM_SAFETENSORS_H
#define ECHO_LLM_SAFETENSORS_H

#include "core/core.h"

enum st_dtype {
    ST_BOOL,
    ST_U8,
    ST_I8,
    ST_I16,
    ST_U16,
    ST_F16,
    ST_BF16,
    ST_I32,
    ST_U32,
    ST_F32,
    ST_F64,
    ST_I64,
    ST_U64,
};

#define ST_MAX_DIMS 8

struct st_tensor {
    const char *name; /* NUL-terminated, owned by the file handle */
    enum st_dtype dtype;
    uint32_t n_dims;
    uint64_t shape[ST_MAX_DIMS]; /* row-major: shape[n_dims-1] varies fastest */
    uint64_t n_elements;
    uint64_t size;    /* bytes */
    const void *data; /* inside the mapping; alignment is whatever the file gives */
};

typedef struct st_file st_file;
typedef struct st_model st_model;

/* Maps and validates one file. NULL on error with err filled. */
st_file *st_open(const char *path, struct echo_err *err);
/* The same over a caller-owned buffer that must outlive the handle (fuzzer, tests). */
st_file *st_open_memory(const void *data, size_t size, struct echo_err *err);
void st_close(st_file *f);

size_t st_tensor_count(const st_file *f);
const struct st_tensor *st_tensor_at(const st_file *f, size_t i);
/* NULL when the file has no tensor of that name. */
const struct st_tensor *st_find(const st_file *f, const char *name);

/* Name ("BF16") and element size in bytes of a dtype. */
const char *st_dtype_name(enum st_dtype t);
size_t st_dtype_size(enum st_dtype t);

/*
 * A model folder: model.safetensors.index.json when present (every shard it
 * names is opened once; each tensor must be in the shard the index says, and
 * no tensor may appear twice), otherwise model.safetensors alone.
 */
st_model *st_model_open(const char *dir, struct echo_err *err);
void st_model_close(st_model *m);
const struct st_tensor *st_model_find(const st_model *m, const char *name);
size_t st_model_tensor_count(const st_model *m);
/* Tensors of all shards, sorted by name; NULL past the end. */
const struct st_tensor *st_model_tensor_at(const st_model *m, size_t i);
/* Number of files the model spans (1 when unsharded) and their total size. */
size_t st_model_shard_count(const st_model *m);
uint64_t st_model_file_bytes(const st_model *m);
/* Tells the kernel that the pages of a tensor are no longer needed (after
 * conversion), so a big BF16 model does not stay resident while it is converted. */
void st_model_release(const st_model *m, const struct st_tensor *t);

#endif
