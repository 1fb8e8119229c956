/*
 * test_safetensors.c - the safetensors reader on buffers and folders this
 * test writes: a valid file read back exactly, then every way a header can
 * lie (truncation, oversized length, bad JSON, unknown dtype, shape and byte
 * range disagreeing, ranges out of bounds, overlapping, with holes or
 * trailing bytes, duplicate names, negative or overflowing shapes), and the
 * sharded layout (index + shards; a tensor missing from its shard, a shard
 * name escaping the folder, a tensor in two shards, a missing shard).
 * Every error must be refused with a message, never a crash (ASan/UBSan).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "llm/safetensors.h"

/* Builds a file: 8-byte length, header JSON, then data_len bytes of data
 * (byte i = i & 0xff). */
static char *make_file(const char *json, size_t data_len, size_t *size)
{
    size_t hlen = strlen(json);
    *size = 8 + hlen + data_len;
    char *buf = malloc(*size);
    for (int i = 0; i < 8; i++)
        buf[i] = (char)((uint64_t)hlen >> (8 * i));
    memcpy(buf + 8, json, hlen);
    for (size_t i = 0; i < data_len; i++)
        buf[8 + hlen + i] = (char)(i & 0xff);
    return buf;
}

/* Expects st_open_memory to refuse the file with a message containing `what`. */
static void expect_bad(const char *json, size_t data_len, const char *what)
{
    size_t size;
    char *buf = make_file(json, data_len, &size);
    struct echo_err err;
    echo_err_clear(&err);
    st_file *f = st_open_memory(buf, size, &err);
    if (f || !strstr(err.msg, what))
        print_error("header %s: got %s '%s', wanted '%s'\n", json, f ? "success" : "error", err.msg,
                    what);
    assert_null(f);
    assert_non_null(strstr(err.msg, what));
    free(buf);
}

static void test_valid(void **state)
{
    (void)state;
    const char *json = "{\"__metadata__\":{\"format\":\"pt\"},"
                       "\"b\":{\"dtype\":\"BF16\",\"shape\":[2,3],\"data_offsets\":[8,20]},"
                       "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                       "\"e\":{\"dtype\":\"F16\",\"shape\":[0,4],\"data_offsets\":[20,20]}}";
    size_t size;
    char *buf = make_file(json, 20, &size);
    struct echo_err err;
    echo_err_clear(&err);
    st_file *f = st_open_memory(buf, size, &err);
    assert_non_null(f);
    assert_int_equal(st_tensor_count(f), 3);
    const struct st_tensor *a = st_find(f, "a"), *b = st_find(f, "b"), *e = st_find(f, "e");
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(e);
    assert_null(st_find(f, "__metadata__"));
    assert_null(st_find(f, "c"));
    assert_int_equal(a->dtype, ST_F32);
    assert_int_equal(a->n_dims, 1);
    assert_int_equal(a->shape[0], 2);
    assert_int_equal(a->size, 8);
    assert_ptr_equal(a->data, buf + 8 + strlen(json));
    assert_int_equal(b->dtype, ST_BF16);
    assert_int_equal(b->n_dims, 2);
    assert_int_equal(b->shape[0], 2);
    assert_int_equal(b->shape[1], 3);
    assert_int_equal(b->n_elements, 6);
    assert_int_equal(((const uint8_t *)b->data)[0], 8);
    assert_int_equal(e->n_elements, 0);
    assert_int_equal(e->size, 0);
    /* Sorted by name. */
    assert_string_equal(st_tensor_at(f, 0)->name, "a");
    assert_string_equal(st_tensor_at(f, 2)->name, "e");
    assert_null(st_tensor_at(f, 3));
    assert_string_equal(st_dtype_name(ST_BF16), "BF16");
    assert_int_equal(st_dtype_size(ST_F64), 8);
    st_close(f);
    free(buf);
}

static void test_empty_header(void **state)
{
    (void)state;
    size_t size;
    char *buf = make_file("{}", 0, &size);
    st_file *f = st_open_memory(buf, size, NULL);
    assert_non_null(f);
    assert_int_equal(st_tensor_count(f), 0);
    st_close(f);
    free(buf);
}

static void test_truncated(void **state)
{
    (void)state;
    const char *json = "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}";
    size_t size;
    char *buf = make_file(json, 16, &size);
    /* Every proper prefix must be refused without reading past it. */
    for (size_t n = 0; n < size; n++) {
        char *copy = malloc(n ? n : 1);
        memcpy(copy, buf, n);
        struct echo_err err;
        echo_err_clear(&err);
        st_file *f = st_open_memory(copy, n, &err);
        assert_null(f);
        assert_true(err.msg[0] != '\0');
        free(copy);
    }
    free(buf);
}

static void test_header_length(void **state)
{
    (void)state;
    char buf[16] = {0};
    /* A length far beyond the file, and one beyond the 100 MB cap. */
    uint64_t lens[] = {9, UINT64_MAX, (uint64_t)200 << 20};
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        for (int b = 0; b < 8; b++)
            buf[b] = (char)(lens[i] >> (8 * b));
        struct echo_err err;
        echo_err_clear(&err);
        assert_null(st_open_memory(buf, sizeof(buf), &err));
        assert_non_null(strstr(err.msg, "header length"));
    }
}

static void test_bad_headers(void **state)
{
    (void)state;
    expect_bad("[1,2]", 0, "not a JSON object");
    expect_bad("{\"a\":", 0, "bad safetensors header JSON");
    expect_bad("{\"a\":1}", 0, "not an object");
    expect_bad("{\"a\":{\"dtype\":\"F8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1,
               "unknown dtype");
    expect_bad("{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "dtype");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":3,\"data_offsets\":[0,12]}}", 12, "shape");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, "shape[0]");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4, "shape[0]");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}",
               4, "at most");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],"
               "\"data_offsets\":[0,4]}}",
               4, "overflows");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904],"
               "\"data_offsets\":[0,4]}}",
               4, "do not fill");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4,
               "do not fill");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4, "data_offsets");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}", 4, "outside");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 4, "outside");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],"
               "\"data_offsets\":[0,18446744073709551615]}}",
               4, "JSON");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],"
               "\"data_offsets\":[0,9223372036854775807]}}",
               4, "outside");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
               "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
               8, "overlaps");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "hole");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 8,
               "not described");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
               "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
               8, "JSON");
    expect_bad("{\"__metadata__\":[],\"a\":{\"dtype\":\"F32\",\"shape\":[1],"
               "\"data_offsets\":[0,4]}}",
               4, "__metadata__");
    /* Invalid UTF-8 inside the JSON. */
    expect_bad("{\"\xff\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "JSON");
}

static void test_file_errors(void **state)
{
    (void)state;
    struct echo_err err;
    echo_err_clear(&err);
    assert_null(st_open("/nonexistent/x.safetensors", &err));
    assert_non_null(strstr(err.msg, "No such file"));
    echo_err_clear(&err);
    assert_null(st_open("/tmp", &err));
    assert_non_null(strstr(err.msg, "not a regular file"));
}

/* ---- folders ----------------------------------------------------------------- */

static char tmpdir[256];

static void write_file(const char *name, const void *data, size_t len)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

static void write_st(const char *name, const char *json, size_t data_len)
{
    size_t size;
    char *buf = make_file(json, data_len, &size);
    write_file(name, buf, size);
    free(buf);
}

static void clean_dir(void)
{
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    assert_int_equal(system(cmd), 0);
}

static void new_dir(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/echo-test-st-XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
}

static const char *SHARD1 = "{\"x\":{\"dtype\":\"BF16\",\"shape\":[2,2],\"data_offsets\":[0,8]}}";
static const char *SHARD2 = "{\"y\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]},"
                            "\"z\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[12,16]}}";

static void test_single_folder(void **state)
{
    (void)state;
    new_dir();
    write_st("model.safetensors", SHARD2, 16);
    struct echo_err err;
    echo_err_clear(&err);
    st_model *m = st_model_open(tmpdir, &err);
    assert_non_null(m);
    assert_int_equal(st_model_shard_count(m), 1);
    assert_int_equal(st_model_tensor_count(m), 2);
    assert_non_null(st_model_find(m, "y"));
    assert_null(st_model_find(m, "x"));
    assert_string_equal(st_model_tensor_at(m, 1)->name, "z");
    assert_true(st_model_file_bytes(m) > 16);
    st_model_release(m, st_model_find(m, "y"));
    st_model_close(m);
    clean_dir();
    /* No model file at all. */
    new_dir();
    echo_err_clear(&err);
    assert_null(st_model_open(tmpdir, &err));
    assert_non_null(strstr(err.msg, "model.safetensors"));
    clean_dir();
}

static void test_sharded_folder(void **state)
{
    (void)state;
    new_dir();
    write_st("model-00001-of-00002.safetensors", SHARD1, 8);
    write_st("model-00002-of-00002.safetensors", SHARD2, 16);
    const char *index = "{\"metadata\":{\"total_size\":24},\"weight_map\":{"
                        "\"x\":\"model-00001-of-00002.safetensors\","
                        "\"y\":\"model-00002-of-00002.safetensors\","
                        "\"z\":\"model-00002-of-00002.safetensors\"}}";
    write_file("model.safetensors.index.json", index, strlen(index));
    struct echo_err err;
    echo_err_clear(&err);
    st_model *m = st_model_open(tmpdir, &err);
    assert_non_null(m);
    assert_int_equal(st_model_shard_count(m), 2);
    assert_int_equal(st_model_tensor_count(m), 3);
    const struct st_tensor *x = st_model_find(m, "x");
    assert_non_null(x);
    assert_int_equal(x->dtype, ST_BF16);
    assert_int_equal(x->shape[1], 2);
    assert_non_null(st_model_find(m, "z"));
    st_model_close(m);

    /* The index names a tensor its shard lacks. */
    const char *bad = "{\"weight_map\":{\"x\":\"model-00002-of-00002.safetensors\"}}";
    write_file("model.safetensors.index.json", bad, strlen(bad));
    echo_err_clear(&err);
    assert_null(st_model_open(tmpdir, &err));
    assert_non_null(strstr(err.msg, "lacks it"));

    /* A shard name that leaves the folder. */
    const char *escape = "{\"weight_map\":{\"x\":\"../model-00001-of-00002.safetensors\"}}";
    write_file("model.safetensors.index.json", escape, strlen(escape));
    echo_err_clear(&err);
    assert_null(st_model_open(tmpdir, &err));
    assert_non_null(strstr(err.msg, "invalid shard name"));

    /* A missing shard. */
    const char *missing = "{\"weight_map\":{\"x\":\"model-00009-of-00009.safetensors\"}}";
    write_file("model.safetensors.index.json", missing, strlen(missing));
    echo_err_clear(&err);
    assert_null(st_model_open(tmpdir, &err));
    assert_non_null(strstr(err.msg, "No such file"));

    /* One tensor in two shards. */
    write_st("model-00002-of-00002.safetensors",
             "{\"x\":{\"dtype\":\"BF16\",\"shape\":[2,2],\"data_offsets\":[0,8]}}", 8);
    write_file("model.safetensors.index.json", index, strlen(index));
    const char *both = "{\"weight_map\":{\"x\":\"model-00001-of-00002.safetensors\","
                       "\"w\":\"model-00002-of-00002.safetensors\"}}";
    write_file("model.safetensors.index.json", both, strlen(both));
    echo_err_clear(&err);
    assert_null(st_model_open(tmpdir, &err));
    assert_true(err.msg[0] != '\0');

    /* Index JSON that is not an index. */
    write_file("model.safetensors.index.json", "{\"weight_map\":[]}", 17);
    echo_err_clear(&err);
    assert_null(st_model_open(tmpdir, &err));
    assert_non_null(strstr(err.msg, "weight_map"));
    write_file("model.safetensors.index.json", "{oops", 5);
    echo_err_clear(&err);
    assert_null(st_model_open(tmpdir, &err));
    assert_non_null(strstr(err.msg, "bad index JSON"));
    clean_dir();
}

static void test_two_shards_same_tensor(void **state)
{
    (void)state;
    new_dir();
    write_st("a.safetensors", SHARD1, 8);
    write_st("b.safetensors", SHARD1, 8);
    /* The index maps x to a; b also holds x and is opened for another name. */
    write_st("b.safetensors",
             "{\"x\":{\"dtype\":\"BF16\",\"shape\":[2,2],\"data_offsets\":[0,8]},"
             "\"q\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[8,12]}}",
             12);
    const char *index = "{\"weight_map\":{\"x\":\"a.safetensors\",\"q\":\"b.safetensors\"}}";
    write_file("model.safetensors.index.json", index, strlen(index));
    struct echo_err err;
    echo_err_clear(&err);
    assert_null(st_model_open(tmpdir, &err));
    assert_non_null(strstr(err.msg, "appears in two shards"));
    clean_dir();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_empty_header),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_header_length),
        cmocka_unit_test(test_bad_headers),
        cmocka_unit_test(test_file_errors),
        cmocka_unit_test(test_single_folder),
        cmocka_unit_test(test_sharded_folder),
        cmocka_unit_test(test_two_shards_same_tensor),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
