/*
 * test_gguf.c - the GGUF reader on files this test writes byte by byte: a
 * valid file with every value type and three tensors (read back exactly),
 * version 2 and a custom alignment, then every way a file can be wrong:
 * truncated at every prefix, wrong magic, versions 1 and 99 and big-endian,
 * absurd counts and dimensions, overlapping / misaligned / out-of-bounds
 * tensor data, unknown value and tensor types, nested arrays, strings that
 * run past the end, duplicate keys and tensor names. Each error must be
 * refused with a message naming the problem, never a crash (the suite runs
 * under ASan/UBSan). Also the real vocabulary-only GGUF from ../shared when
 * present.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "llm/gguf.h"

/* ---- a tiny GGUF writer ------------------------------------------------- */

static void put_u32(struct strbuf *b, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        strbuf_putc(b, (char)(v >> (8 * i)));
}

static void put_u64(struct strbuf *b, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        strbuf_putc(b, (char)(v >> (8 * i)));
}

static void put_str(struct strbuf *b, const char *s)
{
    put_u64(b, strlen(s));
    strbuf_puts(b, s);
}

static void header(struct strbuf *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv)
{
    strbuf_append(b, "GGUF", 4);
    put_u32(b, version);
    put_u64(b, n_tensors);
    put_u64(b, n_kv);
}

static void kv_u32(struct strbuf *b, const char *key, uint32_t v)
{
    put_str(b, key);
    put_u32(b, GGUF_TYPE_UINT32);
    put_u32(b, v);
}

static void kv_str(struct strbuf *b, const char *key, const char *v)
{
    put_str(b, key);
    put_u32(b, GGUF_TYPE_STRING);
    put_str(b, v);
}

static void tensor_info(struct strbuf *b, const char *name, uint32_t n_dims, const uint64_t *dims,
                        uint32_t type, uint64_t offset)
{
    put_str(b, name);
    put_u32(b, n_dims);
    for (uint32_t i = 0; i < n_dims; i++)
        put_u64(b, dims[i]);
    put_u32(b, type);
    put_u64(b, offset);
}

static void pad_to(struct strbuf *b, size_t align)
{
    while (b->len % align)
        strbuf_putc(b, 0);
}

/* Fills n bytes with a recognizable pattern starting at seed. */
static void put_data(struct strbuf *b, size_t n, uint8_t seed)
{
    for (size_t i = 0; i < n; i++)
        strbuf_putc(b, (char)(seed + i));
}

/*
 * The reference valid file: every value type, three tensors
 *   a: f32 [4, 2]  (32 bytes) at 0
 *   b: q8_0 [32, 2] (68 bytes) at 32
 *   c: f16 [8]      (16 bytes) at 128
 * so the last tensor ends exactly at the end of the file.
 */
static void build_valid(struct strbuf *b, uint32_t version, uint32_t alignment)
{
    int n_kv = 17 + (alignment != 32);
    header(b, version, 3, (uint64_t)n_kv);
    if (alignment != 32) kv_u32(b, "general.alignment", alignment);
    kv_str(b, "general.architecture", "qwen2");
    put_str(b, "k.u8");
    put_u32(b, GGUF_TYPE_UINT8);
    strbuf_putc(b, (char)200);
    put_str(b, "k.i8");
    put_u32(b, GGUF_TYPE_INT8);
    strbuf_putc(b, (char)-5);
    put_str(b, "k.u16");
    put_u32(b, GGUF_TYPE_UINT16);
    strbuf_append(b, "\x34\x12", 2);
    put_str(b, "k.i16");
    put_u32(b, GGUF_TYPE_INT16);
    strbuf_append(b, "\xfe\xff", 2);
    kv_u32(b, "k.u32", 4000000000u);
    put_str(b, "k.i32");
    put_u32(b, GGUF_TYPE_INT32);
    put_u32(b, (uint32_t)-70000);
    put_str(b, "k.f32");
    put_u32(b, GGUF_TYPE_FLOAT32);
    float f = 1.5f;
    uint32_t fb;
    memcpy(&fb, &f, 4);
    put_u32(b, fb);
    put_str(b, "k.bool");
    put_u32(b, GGUF_TYPE_BOOL);
    strbuf_putc(b, 1);
    put_str(b, "k.u64");
    put_u32(b, GGUF_TYPE_UINT64);
    put_u64(b, 1ull << 40);
    put_str(b, "k.i64");
    put_u32(b, GGUF_TYPE_INT64);
    put_u64(b, (uint64_t)-3);
    put_str(b, "k.f64");
    put_u32(b, GGUF_TYPE_FLOAT64);
    double d = -0.25;
    uint64_t db;
    memcpy(&db, &d, 8);
    put_u64(b, db);
    put_str(b, "k.arr_i32");
    put_u32(b, GGUF_TYPE_ARRAY);
    put_u32(b, GGUF_TYPE_INT32);
    put_u64(b, 3);
    put_u32(b, 1);
    put_u32(b, (uint32_t)-2);
    put_u32(b, 3);
    put_str(b, "k.arr_str");
    put_u32(b, GGUF_TYPE_ARRAY);
    put_u32(b, GGUF_TYPE_STRING);
    put_u64(b, 3);
    put_str(b, "alpha");
    put_str(b, "");
    put_str(b, "gamma");
    put_str(b, "k.arr_u64");
    put_u32(b, GGUF_TYPE_ARRAY);
    put_u32(b, GGUF_TYPE_UINT64);
    put_u64(b, 2);
    put_u64(b, 7);
    put_u64(b, UINT64_MAX);
    put_str(b, "k.arr_empty");
    put_u32(b, GGUF_TYPE_ARRAY);
    put_u32(b, GGUF_TYPE_FLOAT32);
    put_u64(b, 0);
    kv_str(b, "k.str", "hello");
    uint64_t da[2] = {4, 2}, db2[2] = {32, 2}, dc[1] = {8};
    uint64_t ob = (32 + alignment - 1) / alignment * alignment;
    uint64_t oc = (ob + 68 + alignment - 1) / alignment * alignment;
    tensor_info(b, "a", 2, da, GGUF_TENSOR_F32, 0);
    tensor_info(b, "b", 2, db2, GGUF_TENSOR_Q8_0, ob);
    tensor_info(b, "c", 1, dc, GGUF_TENSOR_F16, oc);
    pad_to(b, alignment);
    size_t data = b->len;
    put_data(b, 32, 1);
    while (b->len < data + ob)
        strbuf_putc(b, 0);
    put_data(b, 68, 50);
    while (b->len < data + oc)
        strbuf_putc(b, 0);
    put_data(b, 16, 150);
}

static gguf_file *open_buf(const struct strbuf *b, struct echo_err *err)
{
    memset(err, 0, sizeof(*err));
    return gguf_open_memory(b->data, b->len, err);
}

/* Asserts that the buffer is refused with a message containing `needle`. */
static void expect_error(const struct strbuf *b, const char *needle)
{
    struct echo_err err;
    gguf_file *f = open_buf(b, &err);
    if (f) {
        gguf_close(f);
        fail_msg("accepted a bad file (expected '%s')", needle);
    }
    if (!strstr(err.msg, needle)) fail_msg("error '%s' does not mention '%s'", err.msg, needle);
}

/* ---- valid files ----------------------------------------------------------- */

static void check_valid(gguf_file *f, uint32_t version, uint32_t alignment)
{
    struct echo_err err = {0};
    assert_int_equal(gguf_version(f), version);
    assert_int_equal(gguf_alignment(f), alignment);
    assert_int_equal(gguf_data_offset(f) % alignment, 0);
    assert_int_equal(gguf_kv_count(f), 17 + (alignment != 32));
    uint64_t u;
    int64_t i;
    double d;
    bool bo;
    struct gguf_str s;
    assert_int_equal(gguf_get_u64(f, "k.u8", &u, &err), 0);
    assert_int_equal(u, 200);
    assert_int_equal(gguf_get_i64(f, "k.i8", &i, &err), 0);
    assert_int_equal(i, -5);
    assert_int_equal(gguf_get_u64(f, "k.u16", &u, &err), 0);
    assert_int_equal(u, 0x1234);
    assert_int_equal(gguf_get_i64(f, "k.i16", &i, &err), 0);
    assert_int_equal(i, -2);
    assert_int_equal(gguf_get_u64(f, "k.u32", &u, &err), 0);
    assert_int_equal(u, 4000000000u);
    assert_int_equal(gguf_get_i64(f, "k.i32", &i, &err), 0);
    assert_int_equal(i, -70000);
    assert_int_equal(gguf_get_f64(f, "k.f32", &d, &err), 0);
    assert_true(d == 1.5);
    assert_int_equal(gguf_get_bool(f, "k.bool", &bo, &err), 0);
    assert_true(bo);
    assert_int_equal(gguf_get_u64(f, "k.u64", &u, &err), 0);
    assert_int_equal(u, 1ull << 40);
    assert_int_equal(gguf_get_i64(f, "k.i64", &i, &err), 0);
    assert_int_equal(i, -3);
    assert_int_equal(gguf_get_f64(f, "k.f64", &d, &err), 0);
    assert_true(d == -0.25);
    assert_int_equal(gguf_get_str(f, "k.str", &s, &err), 0);
    assert_int_equal(s.len, 5);
    assert_memory_equal(s.ptr, "hello", 5);
    /* Integer getters accept any integer type that fits, and refuse the rest. */
    assert_int_equal(gguf_get_i64(f, "k.u32", &i, &err), 0);
    assert_int_equal(i, 4000000000ll);
    assert_int_equal(gguf_get_u64(f, "k.i8", &u, &err), -1);
    assert_non_null(strstr(err.msg, "negative"));
    assert_int_equal(gguf_get_u64(f, "k.str", &u, &err), -1);
    assert_non_null(strstr(err.msg, "k.str"));
    assert_int_equal(gguf_get_str(f, "k.u8", &s, &err), -1);
    assert_int_equal(gguf_get_f64(f, "k.u8", &d, &err), -1);
    assert_int_equal(gguf_get_bool(f, "k.u8", &bo, &err), -1);
    assert_int_equal(gguf_get_u64(f, "no.such.key", &u, &err), -1);
    assert_non_null(strstr(err.msg, "missing"));
    assert_null(gguf_find(f, "no.such.key"));
    assert_non_null(gguf_find(f, "general.architecture"));

    const struct gguf_value *arr;
    assert_int_equal(gguf_get_array(f, "k.arr_i32", GGUF_TYPE_INT32, &arr, &err), 0);
    assert_int_equal(arr->v.array.count, 3);
    assert_int_equal(gguf_array_get_i64(arr, 1, &i), 0);
    assert_int_equal(i, -2);
    assert_int_equal(gguf_array_get_i64(arr, 3, &i), -1);
    assert_int_equal(gguf_get_array(f, "k.arr_i32", GGUF_TYPE_UINT32, &arr, &err), -1);
    assert_non_null(strstr(err.msg, "array of int32"));
    assert_int_equal(gguf_get_array(f, "k.u8", GGUF_TYPE_UINT8, &arr, &err), -1);
    assert_int_equal(gguf_get_array(f, "k.arr_u64", GGUF_TYPE_UINT64, &arr, &err), 0);
    assert_int_equal(gguf_array_get_i64(arr, 0, &i), 0);
    assert_int_equal(i, 7);
    assert_int_equal(gguf_array_get_i64(arr, 1, &i), -1); /* does not fit int64 */
    assert_int_equal(gguf_get_array(f, "k.arr_empty", GGUF_TYPE_FLOAT32, &arr, &err), 0);
    assert_int_equal(arr->v.array.count, 0);
    assert_int_equal(gguf_get_array(f, "k.arr_str", GGUF_TYPE_STRING, &arr, &err), 0);
    uint64_t pos = 0;
    const char *want[3] = {"alpha", "", "gamma"};
    for (int k = 0; k < 3; k++) {
        struct gguf_str e = gguf_array_next_str(arr, &pos);
        assert_int_equal(e.len, strlen(want[k]));
        assert_memory_equal(e.ptr, want[k], e.len);
    }
    assert_int_equal(pos, arr->v.array.size);
    struct gguf_str past = gguf_array_next_str(arr, &pos); /* walking past the end is harmless */
    assert_int_equal(past.len, 0);

    assert_int_equal(gguf_tensor_count(f), 3);
    const struct gguf_tensor *a = gguf_find_tensor(f, "a"), *b = gguf_find_tensor(f, "b"),
                             *c = gguf_find_tensor(f, "c");
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(c);
    assert_null(gguf_find_tensor(f, "d"));
    assert_ptr_equal(gguf_tensor_at(f, 1), b);
    assert_null(gguf_tensor_at(f, 3));
    assert_int_equal(a->type, GGUF_TENSOR_F32);
    assert_int_equal(a->n_dims, 2);
    assert_int_equal(a->dims[0], 4);
    assert_int_equal(a->dims[1], 2);
    assert_int_equal(a->dims[2], 1);
    assert_int_equal(a->n_elements, 8);
    assert_int_equal(a->size, 32);
    assert_int_equal(b->size, 68);
    assert_int_equal(c->size, 16);
    assert_int_equal(((const uint8_t *)a->data)[0], 1);
    assert_int_equal(((const uint8_t *)a->data)[31], 32);
    assert_int_equal(((const uint8_t *)b->data)[0], 50);
    assert_int_equal(((const uint8_t *)c->data)[15], 165);
    assert_int_equal((uintptr_t)((const uint8_t *)b->data - (const uint8_t *)a->data) % alignment,
                     0);
    assert_string_equal(gguf_tensor_type_name(b->type), "q8_0");
}

static void test_valid_v3(void **state)
{
    (void)state;
    struct strbuf b;
    strbuf_init(&b);
    build_valid(&b, 3, 32);
    struct echo_err err;
    gguf_file *f = open_buf(&b, &err);
    if (!f) fail_msg("%s", err.msg);
    check_valid(f, 3, 32);
    gguf_close(f);
    strbuf_deinit(&b);
}

static void test_valid_v2_and_alignment(void **state)
{
    (void)state;
    for (uint32_t al = 32; al <= 256; al *= 2) {
        struct strbuf b;
        strbuf_init(&b);
        build_valid(&b, 2, al);
        struct echo_err err;
        gguf_file *f = open_buf(&b, &err);
        if (!f) fail_msg("alignment %u: %s", al, err.msg);
        check_valid(f, 2, al);
        gguf_close(f);
        strbuf_deinit(&b);
    }
}

static void test_open_file(void **state)
{
    (void)state;
    struct strbuf b;
    strbuf_init(&b);
    build_valid(&b, 3, 32);
    char path[] = "/tmp/echo-test-gguf-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, b.data, b.len), (ssize_t)b.len);
    close(fd);
    struct echo_err err = {0};
    gguf_file *f = gguf_open(path, &err);
    if (!f) fail_msg("%s", err.msg);
    check_valid(f, 3, 32);
    assert_int_equal(gguf_size(f), b.len);
    gguf_close(f);

    /* Errors carry the path. */
    truncate(path, 10);
    assert_null(gguf_open(path, &err));
    assert_string_equal(err.file, path);
    assert_non_null(strstr(err.msg, "truncated"));
    truncate(path, 0);
    assert_null(gguf_open(path, &err));
    assert_non_null(strstr(err.msg, "empty"));
    unlink(path);
    assert_null(gguf_open(path, &err));
    assert_non_null(strstr(err.msg, "cannot open"));
    assert_null(gguf_open("/tmp", &err));
    assert_non_null(strstr(err.msg, "regular file"));
    strbuf_deinit(&b);
}

/* No prefix of the valid file is accepted (the last tensor ends at EOF). */
static void test_every_prefix(void **state)
{
    (void)state;
    struct strbuf b;
    strbuf_init(&b);
    build_valid(&b, 3, 32);
    for (size_t n = 0; n < b.len; n++) {
        /* A copy of exactly n bytes, so ASan catches any read past it. */
        char *copy = xmalloc(n ? n : 1);
        memcpy(copy, b.data, n);
        struct echo_err err = {0};
        gguf_file *f = gguf_open_memory(copy, n, &err);
        if (f) fail_msg("prefix of %zu bytes accepted", n);
        assert_true(err.msg[0] != 0);
        free(copy);
    }
    strbuf_deinit(&b);
}

/* ---- header errors ------------------------------------------------------------ */

static void test_bad_magic_and_versions(void **state)
{
    (void)state;
    struct strbuf b;
    strbuf_init(&b);
    build_valid(&b, 3, 32);
    b.data[0] = 'X';
    expect_error(&b, "not a GGUF file");
    b.data[0] = 'G';
    const struct {
        uint32_t version;
        const char *msg;
    } cases[] = {{1, "version 1"},
                 {99, "unsupported version 99"},
                 {0, "unsupported version 0"},
                 {0x03000000, "big-endian"}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        for (int k = 0; k < 4; k++)
            b.data[4 + k] = (char)(cases[i].version >> (8 * k));
        expect_error(&b, cases[i].msg);
    }
    strbuf_deinit(&b);
}

static void test_absurd_counts(void **state)
{
    (void)state;
    struct strbuf b;
    strbuf_init(&b);
    header(&b, 3, 1ull << 60, 0);
    expect_error(&b, "absurd tensor count");
    b.len = 0;
    header(&b, 3, 0, 1ull << 60);
    expect_error(&b, "absurd metadata count");
    b.len = 0;
    header(&b, 3, 0, UINT64_MAX);
    expect_error(&b, "absurd metadata count");
    /* A count that is small in absolute terms but cannot fit in the file. */
    b.len = 0;
    header(&b, 3, 1000, 0);
    expect_error(&b, "absurd tensor count");

    /* Array counts. */
    b.len = 0;
    header(&b, 3, 0, 1);
    put_str(&b, "arr");
    put_u32(&b, GGUF_TYPE_ARRAY);
    put_u32(&b, GGUF_TYPE_UINT32);
    put_u64(&b, 1ull << 60);
    put_u32(&b, 1);
    expect_error(&b, "runs past the end");
    b.len = 0;
    header(&b, 3, 0, 1);
    put_str(&b, "arr");
    put_u32(&b, GGUF_TYPE_ARRAY);
    put_u32(&b, GGUF_TYPE_STRING);
    put_u64(&b, 1ull << 62);
    expect_error(&b, "cannot fit");
    strbuf_deinit(&b);
}

/* A file with one kv `k.x` whose value the caller writes. */
static void one_kv(struct strbuf *b, uint32_t type)
{
    b->len = 0;
    header(b, 3, 0, 1);
    put_str(b, "k.x");
    put_u32(b, type);
}

static void test_bad_values(void **state)
{
    (void)state;
    struct strbuf b;
    strbuf_init(&b);
    one_kv(&b, 13);
    put_u32(&b, 0);
    expect_error(&b, "unknown value type 13");
    one_kv(&b, GGUF_TYPE_ARRAY);
    put_u32(&b, 99);
    put_u64(&b, 1);
    put_u64(&b, 0);
    expect_error(&b, "unknown array element type 99");
    one_kv(&b, GGUF_TYPE_ARRAY);
    put_u32(&b, GGUF_TYPE_ARRAY);
    put_u64(&b, 1);
    put_u32(&b, GGUF_TYPE_UINT8);
    put_u64(&b, 0);
    expect_error(&b, "nested arrays");
    /* Strings that run past the end: a value, a key, an array element. */
    one_kv(&b, GGUF_TYPE_STRING);
    put_u64(&b, 1000);
    strbuf_puts(&b, "short");
    expect_error(&b, "runs past the end");
    b.len = 0;
    header(&b, 3, 0, 1);
    put_u64(&b, UINT64_MAX);
    strbuf_puts(&b, "a key and some more bytes");
    expect_error(&b, "runs past the end");
    one_kv(&b, GGUF_TYPE_ARRAY);
    put_u32(&b, GGUF_TYPE_STRING);
    put_u64(&b, 2);
    put_str(&b, "ok");
    put_u64(&b, 50);
    strbuf_puts(&b, "not fifty bytes");
    expect_error(&b, "string 1 of 2");
    /* Duplicate keys. */
    b.len = 0;
    header(&b, 3, 0, 2);
    kv_u32(&b, "same", 1);
    kv_u32(&b, "same", 2);
    expect_error(&b, "duplicate metadata key 'same'");
    /* general.alignment of the wrong type / not a power of two. */
    b.len = 0;
    header(&b, 3, 0, 1);
    kv_str(&b, "general.alignment", "32");
    expect_error(&b, "general.alignment must be a uint32");
    b.len = 0;
    header(&b, 3, 0, 1);
    kv_u32(&b, "general.alignment", 48);
    expect_error(&b, "not a power of two");
    b.len = 0;
    header(&b, 3, 0, 1);
    kv_u32(&b, "general.alignment", 0);
    expect_error(&b, "not a power of two");
    strbuf_deinit(&b);
}

/* ---- tensor errors ----------------------------------------------------------------- */

/* A file of tensors described by the caller, with `data_bytes` of data. */
struct tdesc {
    const char *name;
    uint32_t n_dims;
    uint64_t dims[5];
    uint32_t type;
    uint64_t offset;
};

static void tensors_file(struct strbuf *b, const struct tdesc *t, size_t n, size_t data_bytes)
{
    b->len = 0;
    header(b, 3, n, 0);
    for (size_t i = 0; i < n; i++)
        tensor_info(b, t[i].name, t[i].n_dims, t[i].dims, t[i].type, t[i].offset);
    pad_to(b, 32);
    put_data(b, data_bytes, 0);
}

static void test_bad_tensors(void **state)
{
    (void)state;
    struct strbuf b;
    strbuf_init(&b);
    /* Sanity: the helper's good case is accepted. */
    struct tdesc ok[2] = {{"x", 1, {8}, GGUF_TENSOR_F32, 0}, {"y", 1, {8}, GGUF_TENSOR_F32, 32}};
    tensors_file(&b, ok, 2, 64);
    struct echo_err err;
    gguf_file *f = open_buf(&b, &err);
    if (!f) fail_msg("%s", err.msg);
    gguf_close(f);

    struct tdesc overlap[2] = {{"x", 1, {16}, GGUF_TENSOR_F32, 0},
                               {"y", 1, {8}, GGUF_TENSOR_F32, 32}};
    tensors_file(&b, overlap, 2, 96);
    expect_error(&b, "overlap");
    struct tdesc same[2] = {{"x", 1, {8}, GGUF_TENSOR_F32, 0}, {"y", 1, {8}, GGUF_TENSOR_F32, 0}};
    tensors_file(&b, same, 2, 64);
    expect_error(&b, "overlap");
    struct tdesc oob[1] = {{"x", 1, {8}, GGUF_TENSOR_F32, 64}};
    tensors_file(&b, oob, 1, 64);
    expect_error(&b, "outside the data section");
    struct tdesc huge_off[1] = {{"x", 1, {8}, GGUF_TENSOR_F32, UINT64_MAX - 31}};
    tensors_file(&b, huge_off, 1, 64);
    expect_error(&b, "'x'");
    struct tdesc misaligned[1] = {{"x", 1, {8}, GGUF_TENSOR_F32, 4}};
    tensors_file(&b, misaligned, 1, 64);
    expect_error(&b, "not a multiple of the alignment");
    struct tdesc too_big[1] = {{"x", 1, {1000}, GGUF_TENSOR_F32, 0}};
    tensors_file(&b, too_big, 1, 64);
    expect_error(&b, "outside the data section");
    struct tdesc dims5[1] = {{"x", 5, {1, 1, 1, 1, 1}, GGUF_TENSOR_F32, 0}};
    tensors_file(&b, dims5, 1, 64);
    expect_error(&b, "5 dimensions");
    struct tdesc absurd[1] = {{"x", 2, {1ull << 40, 1ull << 40}, GGUF_TENSOR_F32, 0}};
    tensors_file(&b, absurd, 1, 64);
    expect_error(&b, "absurd dimensions");
    struct tdesc neg[1] = {{"x", 1, {UINT64_MAX}, GGUF_TENSOR_F32, 0}};
    tensors_file(&b, neg, 1, 64);
    expect_error(&b, "absurd dimensions");
    /* Large but not overflowing: the byte size is what fails. */
    struct tdesc big[1] = {{"x", 2, {1ull << 31, 1ull << 31}, GGUF_TENSOR_F32, 0}};
    tensors_file(&b, big, 1, 64);
    expect_error(&b, "'x'");
    struct tdesc badtype[1] = {{"x", 1, {8}, 99, 0}};
    tensors_file(&b, badtype, 1, 64);
    expect_error(&b, "unknown type 99");
    struct tdesc removed[1] = {{"x", 1, {32}, 4, 0}}; /* Q4_2, removed from ggml */
    tensors_file(&b, removed, 1, 64);
    expect_error(&b, "unknown type 4");
    struct tdesc rows[1] = {{"x", 1, {31}, GGUF_TENSOR_Q8_0, 0}};
    tensors_file(&b, rows, 1, 64);
    expect_error(&b, "not a multiple of the q8_0 block size");
    struct tdesc dupname[2] = {{"w", 1, {8}, GGUF_TENSOR_F32, 0},
                               {"w", 1, {8}, GGUF_TENSOR_F32, 32}};
    tensors_file(&b, dupname, 2, 64);
    expect_error(&b, "duplicate tensor name 'w'");
    struct tdesc noname[1] = {{"", 1, {8}, GGUF_TENSOR_F32, 0}};
    tensors_file(&b, noname, 1, 64);
    expect_error(&b, "empty name");
    /* Data section that starts beyond the end of the file. */
    b.len = 0;
    header(&b, 3, 1, 0);
    tensor_info(&b, "x", 1, (uint64_t[]){0}, GGUF_TENSOR_F32, 0);
    expect_error(&b, "data section");
    strbuf_deinit(&b);
}

/* Types: unknown-but-empty and known-size-but-unsupported tensors are kept. */
static void test_tensor_types(void **state)
{
    (void)state;
    struct strbuf b;
    strbuf_init(&b);
    struct tdesc t[3] = {{"empty", 2, {0, 4}, 77, 0},
                         {"q5", 1, {32}, 6 /* q5_0 */, 0},
                         {"bf", 1, {4}, GGUF_TENSOR_BF16, 32}};
    tensors_file(&b, t, 3, 64);
    struct echo_err err;
    gguf_file *f = open_buf(&b, &err);
    if (!f) fail_msg("%s", err.msg);
    const struct gguf_tensor *e = gguf_find_tensor(f, "empty"), *q = gguf_find_tensor(f, "q5"),
                             *bf = gguf_find_tensor(f, "bf");
    assert_int_equal(e->size, 0);
    assert_int_equal((uint32_t)e->type, 77);
    assert_null(gguf_tensor_type_name(e->type));
    assert_null(gguf_tensor_type_ggml_name(77));
    assert_int_equal(q->size, 22);
    assert_null(gguf_tensor_type_name(q->type));
    assert_string_equal(gguf_tensor_type_ggml_name(6), "q5_0");
    assert_string_equal(gguf_tensor_type_name(bf->type), "bf16");
    assert_int_equal(bf->size, 8);
    gguf_close(f);

    const struct {
        enum gguf_tensor_type t;
        const char *name;
        uint64_t elems, bytes;
    } known[] = {{GGUF_TENSOR_F32, "f32", 1, 4},       {GGUF_TENSOR_F16, "f16", 1, 2},
                 {GGUF_TENSOR_Q4_0, "q4_0", 32, 18},   {GGUF_TENSOR_Q8_0, "q8_0", 32, 34},
                 {GGUF_TENSOR_Q4_K, "q4_K", 256, 144}, {GGUF_TENSOR_Q6_K, "q6_K", 256, 210},
                 {GGUF_TENSOR_BF16, "bf16", 1, 2}};
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        assert_string_equal(gguf_tensor_type_name(known[i].t), known[i].name);
        assert_int_equal(gguf_tensor_block_elems(known[i].t), known[i].elems);
        assert_int_equal(gguf_tensor_block_bytes(known[i].t), known[i].bytes);
    }
    assert_int_equal(gguf_tensor_block_elems((enum gguf_tensor_type)1000), 0);
    assert_string_equal(gguf_type_name(GGUF_TYPE_STRING), "string");
    assert_string_equal(gguf_type_name((enum gguf_type)55), "unknown");
    strbuf_deinit(&b);
}

/* A vocabulary-only file ends right after its metadata (no padding). */
static void test_no_tensors_no_padding(void **state)
{
    (void)state;
    struct strbuf b;
    strbuf_init(&b);
    header(&b, 3, 0, 1);
    kv_str(&b, "general.name", "x"); /* 24 + 20 + 4 + 9 = 57 bytes: unaligned end */
    struct echo_err err;
    gguf_file *f = open_buf(&b, &err);
    if (!f) fail_msg("%s", err.msg);
    assert_int_equal(gguf_tensor_count(f), 0);
    assert_null(gguf_find_tensor(f, "x"));
    gguf_close(f);
    strbuf_deinit(&b);
}

static void test_shared_vocab(void **state)
{
    (void)state;
    const char *dir = getenv("ECHO_SHARED_DIR");
    char path[1024];
    snprintf(path, sizeof(path), "%s/testdata/qwen2-vocab/ggml-vocab-qwen2.gguf",
             dir ? dir : "../shared");
    if (access(path, R_OK) != 0) {
        fprintf(stderr, "SKIP: %s is absent\n", path);
        skip();
    }
    struct echo_err err = {0};
    gguf_file *f = gguf_open(path, &err);
    if (!f) fail_msg("%s", err.msg);
    assert_int_equal(gguf_version(f), 3);
    assert_int_equal(gguf_tensor_count(f), 0);
    assert_int_equal(gguf_kv_count(f), 20);
    const struct gguf_value *tokens;
    assert_int_equal(gguf_get_array(f, "tokenizer.ggml.tokens", GGUF_TYPE_STRING, &tokens, &err),
                     0);
    assert_int_equal(tokens->v.array.count, 151936);
    uint64_t pos = 0, n = 0;
    struct gguf_str s = {0};
    for (; n < tokens->v.array.count; n++)
        s = gguf_array_next_str(tokens, &pos);
    assert_int_equal(pos, tokens->v.array.size);
    assert_int_equal(s.len, strlen("[PAD151935]"));
    assert_memory_equal(s.ptr, "[PAD151935]", s.len);
    struct gguf_str model;
    assert_int_equal(gguf_get_str(f, "tokenizer.ggml.model", &model, &err), 0);
    assert_memory_equal(model.ptr, "gpt2", 4);
    gguf_close(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_v3),
        cmocka_unit_test(test_valid_v2_and_alignment),
        cmocka_unit_test(test_open_file),
        cmocka_unit_test(test_every_prefix),
        cmocka_unit_test(test_bad_magic_and_versions),
        cmocka_unit_test(test_absurd_counts),
        cmocka_unit_test(test_bad_values),
        cmocka_unit_test(test_bad_tensors),
        cmocka_unit_test(test_tensor_types),
        cmocka_unit_test(test_no_tensors_no_padding),
        cmocka_unit_test(test_shared_vocab),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
