/*
 * gguf.h - read-only GGUF v2/v3 files through mmap, zero copy.
 *
 * Parses the header, the metadata key/value table and the tensor table, and
 * validates everything against the file size before any pointer is handed
 * out: a tensor whose data would fall outside the file, an absurd count or
 * dimension, an unknown value or tensor type, or a truncated string is an
 * error that names the problem (never a crash or an out-of-bounds read).
 *
 * A gguf_file is immutable after gguf_open returns; any number of threads may
 * read it at once. Strings returned point into the mapping (not NUL-terminated
 * in the file, so they come as pointer + length).
 */
#ifndef ECHO_GGUF_H
#define ECHO_GGUF_H

#include "core/core.h"

/* Value types of the GGUF specification. */
enum gguf_type {
    GGUF_TYPE_UINT8 = 0,
    GGUF_TYPE_INT8 = 1,
    GGUF_TYPE_UINT16 = 2,
    GGUF_TYPE_INT16 = 3,
    GGUF_TYPE_UINT32 = 4,
    GGUF_TYPE_INT32 = 5,
    GGUF_TYPE_FLOAT32 = 6,
    GGUF_TYPE_BOOL = 7,
    GGUF_TYPE_STRING = 8,
    GGUF_TYPE_ARRAY = 9,
    GGUF_TYPE_UINT64 = 10,
    GGUF_TYPE_INT64 = 11,
    GGUF_TYPE_FLOAT64 = 12,
};

/* Tensor types (ggml numbering) that Echo knows. */
enum gguf_tensor_type {
    GGUF_TENSOR_F32 = 0,
    GGUF_TENSOR_F16 = 1,
    GGUF_TENSOR_Q4_0 = 2,
    GGUF_TENSOR_Q8_0 = 8,
    GGUF_TENSOR_Q4_K = 12,
    GGUF_TENSOR_Q6_K = 14,
    GGUF_TENSOR_BF16 = 30,
};

struct gguf_str {
    const char *ptr;
    uint64_t len;
};

/* One metadata value. For arrays, `array` describes the elements. */
struct gguf_value {
    enum gguf_type type;
    union {
        uint64_t u64; /* every unsigned integer type and bool */
        int64_t i64;  /* every signed integer type */
        double f64;   /* float32 and float64 */
        struct gguf_str str;
        struct {
            enum gguf_type elem_type;
            uint64_t count;
            const uint8_t *data; /* raw elements in the file (strings: len-prefixed) */
            uint64_t size;       /* bytes spanned by the elements */
        } array;
    } v;
};

struct gguf_kv {
    struct gguf_str key;
    struct gguf_value value;
};

#define GGUF_MAX_DIMS 4

struct gguf_tensor {
    struct gguf_str name;
    enum gguf_tensor_type type;
    uint32_t n_dims;
    uint64_t dims[GGUF_MAX_DIMS]; /* dims[0] is the fastest-varying (row length) */
    uint64_t n_elements;
    uint64_t size;    /* bytes */
    const void *data; /* inside the mapping, aligned as the file says */
};

typedef struct gguf_file gguf_file;

/* Maps and validates a file. NULL on error with err filled (err->file is the
 * path; the message names the key or tensor and the byte offset). Refused:
 * version 1 (and anything but 2 and 3), big-endian files, counts that cannot
 * fit in the file, duplicate keys or tensor names, nested arrays, more than 4
 * dimensions or an element count >= 2^63, a row length that is not a whole
 * number of blocks, tensor data that is misaligned, outside the data section
 * or overlapping another tensor. */
gguf_file *gguf_open(const char *path, struct echo_err *err);
/* Same, over a caller-owned buffer (used by the fuzzer and tests). The buffer
 * must outlive the returned handle. */
gguf_file *gguf_open_memory(const void *data, size_t size, struct echo_err *err);
void gguf_close(gguf_file *f);

uint32_t gguf_version(const gguf_file *f);
uint64_t gguf_kv_count(const gguf_file *f);
const struct gguf_kv *gguf_kv_at(const gguf_file *f, uint64_t i);
/* NULL when the key is absent. */
const struct gguf_kv *gguf_find(const gguf_file *f, const char *key);

/* Layout facts: the alignment in force (general.alignment or 32), the file
 * offset where tensor data starts, and the file size. */
uint64_t gguf_alignment(const gguf_file *f);
uint64_t gguf_data_offset(const gguf_file *f);
uint64_t gguf_size(const gguf_file *f);

/* Typed look-ups: 0 on success; -1 when absent or of another type (err says
 * which). Integer getters accept any integer type whose value fits. */
int gguf_get_u64(const gguf_file *f, const char *key, uint64_t *out, struct echo_err *err);
int gguf_get_i64(const gguf_file *f, const char *key, int64_t *out, struct echo_err *err);
int gguf_get_bool(const gguf_file *f, const char *key, bool *out, struct echo_err *err);
int gguf_get_f64(const gguf_file *f, const char *key, double *out, struct echo_err *err);
int gguf_get_str(const gguf_file *f, const char *key, struct gguf_str *out, struct echo_err *err);
/* An array value of the given element type. */
int gguf_get_array(const gguf_file *f, const char *key, enum gguf_type elem_type,
                   const struct gguf_value **out, struct echo_err *err);

/*
 * Walks a string array: *pos starts at 0; each call returns the next element
 * and advances (*pos is a byte offset into the elements). Bounds were
 * validated at open, so this cannot fail for an array obtained from this
 * file; past the last element it returns an empty string and stays put.
 */
struct gguf_str gguf_array_next_str(const struct gguf_value *array, uint64_t *pos);
/* Element i of an integer (or bool) array as int64; -1 when i is out of range,
 * the array is not of an integer type, or a uint64 element exceeds INT64_MAX. */
int gguf_array_get_i64(const struct gguf_value *array, uint64_t i, int64_t *out);
/* "uint32", "string", ... ("unknown" for a number outside the spec). */
const char *gguf_type_name(enum gguf_type t);

uint64_t gguf_tensor_count(const gguf_file *f);
const struct gguf_tensor *gguf_tensor_at(const gguf_file *f, uint64_t i);
const struct gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name);

/* Name of a tensor type ("q8_0"), or NULL for one Echo does not know (not in
 * enum gguf_tensor_type). */
const char *gguf_tensor_type_name(enum gguf_tensor_type t);
/* ggml's name of any type whose block layout is known ("q5_K"), NULL for a
 * number ggml never had or removed; for messages such as "unsupported type". */
const char *gguf_tensor_type_ggml_name(uint32_t t);
/* Elements per block and bytes per block of every ggml type whose layout is
 * known (tensors of those types are accepted by gguf_open even when Echo
 * cannot compute with them); 0 for an unknown type. A tensor of an unknown
 * type is refused at open unless it is empty. */
uint64_t gguf_tensor_block_elems(enum gguf_tensor_type t);
uint64_t gguf_tensor_block_bytes(enum gguf_tensor_type t);

#endif
