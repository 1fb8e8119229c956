/*
 * test_kernels_packed.c - the packed layout as the model loader builds it
 * (one buffer, packed in pieces by several threads, borrowed by the matrix)
 * and the blocked kernels that read it on each path:
 *   - packing in pieces gives the bytes of kern_matrix_prepare, and a
 *     borrowed copy is forgotten, not freed, by kern_matrix_release;
 *   - the AVX2 and AVX-512 kernels over the same packed matrix give the same
 *     bits (exact integer block sums, then the same float steps), for every
 *     quantized type, row counts that are not multiples of the 16-row group
 *     or the 8-row half, and token counts that are not multiples of the
 *     8-token tile or the 4-token pass;
 *   - each packed path agrees with the scalar reference on the file layout
 *     within the bound of test_kernels.c's products;
 *   - kern_matmul_multi gives each matrix the bits of kern_matmul, with
 *     mixed types sharing one quantization of the input;
 *   - kern_map_huge gives writable memory of any size.
 * (test_kernels.c checks every kernel against double-precision references.)
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "llm/kernels.h"
#include "llm/kernels_impl.h"
#include "llm/pool.h"

static uint64_t rng = 0x9e3779b97f4a7c15u;

static uint32_t rnd_u32(void)
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return (uint32_t)((rng * 0x2545f4914f6cdd1du) >> 32);
}

static float rnd(void)
{
    return (float)((double)rnd_u32() / 2147483648.0 - 1.0);
}

static const enum gguf_tensor_type qtypes[4] = {GGUF_TENSOR_Q8_0, GGUF_TENSOR_Q4_0,
                                                GGUF_TENSOR_Q4_K, GGUF_TENSOR_Q6_K};

static bool is_k(enum gguf_tensor_type t)
{
    return t == GGUF_TENSOR_Q4_K || t == GGUF_TENSOR_Q6_K;
}

/* rows x cols of random weights in the file layout (malloc'ed). */
static uint8_t *random_matrix(enum gguf_tensor_type type, int rows, int cols)
{
    size_t rb = kern_row_bytes(type, cols);
    uint8_t *w = malloc(rb * (size_t)rows);
    float *row = malloc((size_t)cols * sizeof(float));
    for (int r = 0; r < rows; r++) {
        uint8_t *dst = w + (size_t)r * rb;
        if (is_k(type)) {
            for (size_t i = 0; i < rb; i++)
                dst[i] = (uint8_t)rnd_u32();
            for (int i = 0; i < cols / QK_K; i++) {
                uint8_t *blk = dst + (size_t)i * (type == GGUF_TENSOR_Q4_K ? 144 : 210);
                uint16_t d = kern_f32_to_fp16(rnd() * 0.02f);
                uint16_t dmin = kern_f32_to_fp16(rnd() * 0.02f);
                memcpy(type == GGUF_TENSOR_Q4_K ? blk : blk + 208, &d, 2);
                if (type == GGUF_TENSOR_Q4_K) memcpy(blk + 2, &dmin, 2);
            }
        } else {
            for (int c = 0; c < cols; c++)
                row[c] = rnd();
            assert_int_equal(kern_quantize_row(type, row, dst, cols), 0);
        }
    }
    free(row);
    return w;
}

static int teardown_path(void **state)
{
    (void)state;
    int best = KERN_PATH_SCALAR;
    for (int p = KERN_PATH_SCALAR; p <= KERN_PATH_AVX512; p++)
        if (kern_path_supported((enum kern_path)p)) best = p;
    kern_set_path((enum kern_path)best);
    return 0;
}

/* Packing in pieces (in any order) = kern_matrix_prepare; borrowed copies are not freed. */
static void test_pack_in_pieces(void **state)
{
    (void)state;
    if (!kern_path_supported(KERN_PATH_AVX2)) skip();
    assert_int_equal(kern_set_path(KERN_PATH_AVX2), 0);
    for (int ti = 0; ti < 4; ti++) {
        enum gguf_tensor_type type = qtypes[ti];
        int rows = 53, cols = is_k(type) ? 512 : 96; /* 4 groups, the last padded */
        uint8_t *w = random_matrix(type, rows, cols);
        struct kern_matrix a, b;
        assert_int_equal(kern_matrix_init(&a, type, rows, cols, w, NULL), 0);
        b = a;
        assert_int_equal(kern_matrix_groups(&a), 4);
        size_t bytes = kern_matrix_packed_bytes(&a);
        assert_int_equal(bytes, 4 * kern_p16_group_bytes(type, cols));
        assert_int_equal(kern_matrix_prepare(&a, NULL), 0);
        assert_non_null(a.packed);
        assert_int_equal(a.packed_map, bytes);
        /* a prepared matrix has nothing more to pack, but the size stays known */
        assert_int_equal(kern_matrix_packed_bytes(&b), bytes);
        uint8_t *buf = kern_map_huge(bytes);
        assert_non_null(buf);
        memset(buf, 0xa5, bytes);
        kern_matrix_pack_groups(&b, buf, 2, 4);
        kern_matrix_pack_groups(&b, buf, 0, 1);
        kern_matrix_pack_groups(&b, buf, 1, 2);
        assert_memory_equal(buf, a.packed, bytes);
        kern_matrix_use_packed(&b, buf);
        assert_ptr_equal(b.packed, buf);
        assert_int_equal(b.packed_map, 0);
        float x[512 * 3], ya[53 * 3], yb[53 * 3];
        for (int i = 0; i < 3 * cols; i++)
            x[i] = rnd();
        kern_matmul(&a, x, 3, ya, NULL);
        kern_matmul(&b, x, 3, yb, NULL);
        assert_memory_equal(ya, yb, sizeof(float) * 3 * rows);
        kern_matrix_release(&b); /* borrowed: forgotten, the buffer stays ours */
        assert_null(b.packed);
        assert_int_equal(buf[0], ((uint8_t *)a.packed)[0]);
        kern_unmap(buf, bytes);
        kern_matrix_release(&a);
        assert_null(a.packed);
        free(w);
    }
    /* float types and the scalar path pack nothing */
    float fw[64] = {0};
    struct kern_matrix fm;
    assert_int_equal(kern_matrix_init(&fm, GGUF_TENSOR_F32, 2, 32, fw, NULL), 0);
    assert_int_equal(kern_matrix_packed_bytes(&fm), 0);
    assert_int_equal(kern_set_path(KERN_PATH_SCALAR), 0);
    uint8_t *w = random_matrix(GGUF_TENSOR_Q8_0, 5, 64);
    struct kern_matrix qm;
    assert_int_equal(kern_matrix_init(&qm, GGUF_TENSOR_Q8_0, 5, 64, w, NULL), 0);
    assert_int_equal(kern_matrix_packed_bytes(&qm), 0);
    assert_int_equal(kern_matrix_prepare(&qm, NULL), 0);
    assert_null(qm.packed);
    free(w);
}

/* max |y - ref| over sum |ref| scale: a loose sanity bound (test_kernels.c has the tight ones) */
static void check_close(const float *y, const float *ref, int n, const char *what)
{
    double scale = 0;
    for (int i = 0; i < n; i++)
        scale = fmax(scale, fabs(ref[i]));
    for (int i = 0; i < n; i++)
        if (!(fabs(y[i] - ref[i]) <= 1e-4 * (scale + 1e-3)))
            fail_msg("%s: y[%d] = %.9g, reference %.9g", what, i, y[i], ref[i]);
}

/* AVX2 and AVX-512 over one packed matrix: the same bits, for awkward shapes. */
static void test_packed_paths_agree(void **state)
{
    (void)state;
    if (!kern_path_supported(KERN_PATH_AVX2)) skip();
    bool have512 = kern_path_supported(KERN_PATH_AVX512);
    static const int row_counts[] = {1, 7, 8, 9, 16, 23, 70};
    static const int token_counts[] = {1, 2, 3, 5, 8, 13, 20};
    struct kern_pool *pool = kern_pool_new(2);
    for (int ti = 0; ti < 4; ti++) {
        enum gguf_tensor_type type = qtypes[ti];
        int cols = is_k(type) ? 768 : 160;
        for (size_t ri = 0; ri < sizeof(row_counts) / sizeof(row_counts[0]); ri++) {
            int rows = row_counts[ri];
            uint8_t *w = random_matrix(type, rows, cols);
            struct kern_matrix plain, packed;
            assert_int_equal(kern_matrix_init(&plain, type, rows, cols, w, NULL), 0);
            packed = plain;
            kern_set_path(KERN_PATH_AVX2);
            assert_int_equal(kern_matrix_prepare(&packed, NULL), 0);
            assert_non_null(packed.packed);
            int T = token_counts[ri % (sizeof(token_counts) / sizeof(token_counts[0]))];
            float *x = malloc(sizeof(float) * (size_t)T * cols);
            float *y2 = malloc(sizeof(float) * (size_t)T * rows);
            float *y5 = malloc(sizeof(float) * (size_t)T * rows);
            float *yr = malloc(sizeof(float) * (size_t)T * rows);
            for (int i = 0; i < T * cols; i++)
                x[i] = rnd() * (i % 37 == 3 ? 10.0f : 1.0f);
            kern_set_path(KERN_PATH_SCALAR);
            kern_matmul(&plain, x, T, yr, NULL);
            kern_set_path(KERN_PATH_AVX2);
            kern_matmul(&packed, x, T, y2, pool);
            char what[96];
            snprintf(what, sizeof(what), "type %d, %d x %d, T %d, avx2 packed", type, rows, cols,
                     T);
            check_close(y2, yr, T * rows, what);
            if (have512) {
                kern_set_path(KERN_PATH_AVX512);
                kern_matmul(&packed, x, T, y5, pool);
                if (memcmp(y2, y5, sizeof(float) * (size_t)T * rows) != 0)
                    fail_msg("%s: AVX-512 gives other bits", what);
            }
            /* a token alone gives the bits it has in the batch */
            kern_set_path(KERN_PATH_AVX2);
            kern_matmul(&packed, x + (size_t)(T - 1) * cols, 1, y5, NULL);
            assert_memory_equal(y5, y2 + (size_t)(T - 1) * rows, sizeof(float) * rows);
            kern_matrix_release(&packed);
            free(yr);
            free(y5);
            free(y2);
            free(x);
            free(w);
        }
    }
    kern_pool_free(pool);
}

/* kern_matmul_multi = kern_matmul per matrix, bit for bit, with mixed types. */
static void test_matmul_multi(void **state)
{
    (void)state;
    const int cols = 512;
    enum gguf_tensor_type types[4] = {GGUF_TENSOR_Q4_K, GGUF_TENSOR_Q6_K, GGUF_TENSOR_Q8_0,
                                      GGUF_TENSOR_F32};
    int rows[4] = {37, 16, 5, 9};
    struct kern_pool *pool = kern_pool_new(2);
    for (int p = KERN_PATH_SCALAR; p <= KERN_PATH_AVX512; p++) {
        if (!kern_path_supported((enum kern_path)p)) continue;
        kern_set_path((enum kern_path)p);
        for (int packed = 0; packed < 2; packed++) {
            uint8_t *w[4];
            struct kern_matrix m[4];
            const struct kern_matrix *mp[4];
            for (int i = 0; i < 4; i++) {
                if (types[i] == GGUF_TENSOR_F32) {
                    float *f = malloc(sizeof(float) * (size_t)rows[i] * cols);
                    for (int k = 0; k < rows[i] * cols; k++)
                        f[k] = rnd();
                    w[i] = (uint8_t *)f;
                } else {
                    w[i] = random_matrix(types[i], rows[i], cols);
                }
                assert_int_equal(kern_matrix_init(&m[i], types[i], rows[i], cols, w[i], NULL), 0);
                if (packed) assert_int_equal(kern_matrix_prepare(&m[i], NULL), 0);
                mp[i] = &m[i];
            }
            for (int T = 1; T <= 13; T += 12) {
                float *x = malloc(sizeof(float) * (size_t)T * cols);
                for (int k = 0; k < T * cols; k++)
                    x[k] = rnd();
                float *ya[4], *yb[4];
                for (int i = 0; i < 4; i++) {
                    ya[i] = malloc(sizeof(float) * (size_t)T * rows[i]);
                    yb[i] = malloc(sizeof(float) * (size_t)T * rows[i]);
                    kern_matmul(&m[i], x, T, ya[i], pool);
                }
                kern_matmul_multi(mp, 4, x, T, yb, pool);
                for (int i = 0; i < 4; i++) {
                    if (memcmp(ya[i], yb[i], sizeof(float) * (size_t)T * rows[i]) != 0)
                        fail_msg("path %d%s, T %d: matrix %d differs from kern_matmul", p,
                                 packed ? " packed" : "", T, i);
                    free(ya[i]);
                    free(yb[i]);
                }
                free(x);
            }
            for (int i = 0; i < 4; i++) {
                kern_matrix_release(&m[i]);
                free(w[i]);
            }
        }
    }
    kern_pool_free(pool);
}

static void test_map_huge(void **state)
{
    (void)state;
    size_t sizes[] = {1, 4096, 3 << 20, (5 << 20) + 123};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        uint8_t *p = kern_map_huge(sizes[i]);
        assert_non_null(p);
        memset(p, 0x5a, sizes[i]);
        assert_int_equal(p[sizes[i] - 1], 0x5a);
        kern_unmap(p, sizes[i]);
    }
    kern_unmap(NULL, 10); /* harmless */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_pack_in_pieces, teardown_path),
        cmocka_unit_test_teardown(test_packed_paths_agree, teardown_path),
        cmocka_unit_test_teardown(test_matmul_multi, teardown_path),
        cmocka_unit_test_teardown(test_map_huge, teardown_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
