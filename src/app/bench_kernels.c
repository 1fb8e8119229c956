/*
 * bench_kernels.c - `echobot bench kernels`: micro-benchmarks of the matrix
 * products on the shapes of Qwen2.5-1.5B, to see where the time of a
 * forward pass goes (cmd_bench.c dispatches here).
 *
 * It measures the machine's read bandwidth first (the ceiling of decode),
 * then for each weight type and shape the time of one product with T = 1
 * (decode: GB/s of weights read and the share of the bandwidth) and with
 * T = 512 (prefill: GFLOP/s). T = 1 cycles through copies of the matrix
 * totalling 256 MiB so that the weights come from memory, not the 32 MiB L3,
 * as they do in a real forward pass. Finally it adds the products of one
 * token (decode) and of a 512-token prompt (prefill) of the whole model up
 * into matmul-only tokens/s estimates.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/core.h"
#include "llm/kernels.h"
#include "llm/pool.h"

int bench_kernels(int argc, char **argv);

/* Qwen2.5-1.5B: hidden 1536, 28 layers, 12/2 heads of 128, FFN 8960, vocab 151936. */
struct bench_shape {
    const char *name;
    int rows, cols;
    int per_layer; /* how many matrices of this shape a layer has */
};

static const struct bench_shape shapes[] = {
    {"attn_q/o", 1536, 1536, 2},
    {"attn_k/v", 256, 1536, 2},
    {"ffn_gate/up", 8960, 1536, 2},
    {"ffn_down", 1536, 8960, 1},
};
#define N_SHAPES (sizeof(shapes) / sizeof(shapes[0]))
#define MODEL_LAYERS 28
#define MODEL_VOCAB 151936
#define MODEL_HIDDEN 1536

static const struct {
    const char *name;
    enum gguf_tensor_type type;
} types[] = {
    {"f32", GGUF_TENSOR_F32},   {"f16", GGUF_TENSOR_F16},   {"bf16", GGUF_TENSOR_BF16},
    {"q8_0", GGUF_TENSOR_Q8_0}, {"q4_0", GGUF_TENSOR_Q4_0}, {"q4_k", GGUF_TENSOR_Q4_K},
    {"q6_k", GGUF_TENSOR_Q6_K},
};
#define N_TYPES (sizeof(types) / sizeof(types[0]))

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

/* xorshift64*: uniform in [-1, 1) */
static float rnd(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    uint64_t v = rng_state * 0x2545f4914f6cdd1du;
    return (float)((double)(v >> 40) / (double)(1u << 24) * 2.0 - 1.0);
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: echobot bench kernels [-t THREADS] [-r REPS] [--types LIST] [--path PATH]\n"
            "                             [-p TOKENS] [--bw-mib MIB]\n\n"
            "Times the engine's matrix products on Qwen2.5-1.5B shapes.\n\n"
            "  -t THREADS    threads including the caller (default: one per core)\n"
            "  -r REPS       repetitions, the best is reported (default 5)\n"
            "  --types LIST  comma-separated from f32,f16,bf16,q8_0,q4_0,q4_k,q6_k\n"
            "                (default: all)\n"
            "  --path PATH   kernels to use: scalar, avx2 or avx512 (default: the best)\n"
            "  -p TOKENS     tokens of the prefill products (default 512; 0 skips them)\n"
            "  --bw-mib MIB  buffer of the bandwidth measurement (default 1024)\n");
}

struct bench_opts {
    int threads, reps, prefill, bw_mib;
    bool want[N_TYPES];
};

static int parse_opts(int argc, char **argv, struct bench_opts *o)
{
    o->threads = 0;
    o->reps = 5;
    o->prefill = 512;
    o->bw_mib = 1024;
    for (size_t i = 0; i < N_TYPES; i++)
        o->want[i] = true;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int64_t n;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 1;
        }
        if (!v) {
            fprintf(stderr, "bench kernels: %s needs a value\n", a);
            return -1;
        }
        i++;
        if (!strcmp(a, "-t")) {
            if (parse_int64(v, 0, 256, &n) != 0) goto bad;
            o->threads = (int)n;
        } else if (!strcmp(a, "-r")) {
            if (parse_int64(v, 1, 1000, &n) != 0) goto bad;
            o->reps = (int)n;
        } else if (!strcmp(a, "-p")) {
            if (parse_int64(v, 0, 8192, &n) != 0) goto bad;
            o->prefill = (int)n;
        } else if (!strcmp(a, "--bw-mib")) {
            if (parse_int64(v, 0, 65536, &n) != 0) goto bad;
            o->bw_mib = (int)n;
        } else if (!strcmp(a, "--path")) {
            int p = !strcmp(v, "scalar")   ? KERN_PATH_SCALAR
                    : !strcmp(v, "avx2")   ? KERN_PATH_AVX2
                    : !strcmp(v, "avx512") ? KERN_PATH_AVX512
                                           : -1;
            if (p < 0) goto bad;
            if (kern_set_path((enum kern_path)p) != 0) {
                fprintf(stderr, "bench kernels: this CPU cannot run the %s kernels\n", v);
                return -1;
            }
        } else if (!strcmp(a, "--types")) {
            for (size_t t = 0; t < N_TYPES; t++)
                o->want[t] = false;
            char *list = xstrdup(v), *save = NULL;
            for (char *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
                size_t t = 0;
                while (t < N_TYPES && strcmp(tok, types[t].name))
                    t++;
                if (t == N_TYPES) {
                    fprintf(stderr, "bench kernels: unknown type '%s'\n", tok);
                    free(list);
                    return -1;
                }
                o->want[t] = true;
            }
            free(list);
        } else {
            fprintf(stderr, "bench kernels: unknown option '%s'\n", a);
            usage(stderr);
            return -1;
        }
        continue;
    bad:
        fprintf(stderr, "bench kernels: bad value '%s' for %s\n", v, a);
        return -1;
    }
    return 0;
}

/* Results of one shape for the model estimates. */
struct shape_result {
    double decode_s, prefill_s;
};

/*
 * Benchmarks one type on one shape. Returns 0, or -1 when memory runs out.
 */
static int bench_shape(enum gguf_tensor_type type, const char *tname, const struct bench_shape *sh,
                       const struct bench_opts *o, struct kern_pool *pool, double bw,
                       struct shape_result *res)
{
    size_t row_bytes = kern_row_bytes(type, sh->cols);
    size_t mat_bytes = row_bytes * (size_t)sh->rows;
    int copies = (int)((256u << 20) / mat_bytes) + 1;
    uint8_t *data = malloc(mat_bytes * (size_t)copies);
    struct kern_matrix *m = xcalloc((size_t)copies, sizeof(*m));
    int T = o->prefill > 1 ? o->prefill : 1;
    float *x = xmalloc((size_t)T * sh->cols * sizeof(float));
    float *y = xmalloc((size_t)T * sh->rows * sizeof(float));
    float *row = xmalloc((size_t)sh->cols * sizeof(float));
    int rc = -1, made = 0;
    if (!data) goto out;

    for (int r = 0; r < sh->rows; r++) {
        uint8_t *dst = data + (size_t)r * row_bytes;
        if (type == GGUF_TENSOR_Q4_K || type == GGUF_TENSOR_Q6_K) {
            /* no quantizer for k-quants: random blocks with small fp16 scales */
            size_t bs = row_bytes / (size_t)(sh->cols / 256);
            for (size_t i = 0; i < row_bytes; i++)
                dst[i] = (uint8_t)(rnd() * 128.0f + 128.0f);
            for (size_t b = 0; b < (size_t)(sh->cols / 256); b++) {
                uint16_t d = kern_f32_to_fp16(0.001f);
                memcpy(dst + b * bs + (type == GGUF_TENSOR_Q4_K ? 0 : bs - 2), &d, 2);
                if (type == GGUF_TENSOR_Q4_K) memcpy(dst + b * bs + 2, &d, 2);
            }
            continue;
        }
        for (int c = 0; c < sh->cols; c++)
            row[c] = rnd() * 0.05f;
        kern_quantize_row(type, row, dst, sh->cols);
    }
    for (int k = 1; k < copies; k++)
        memcpy(data + (size_t)k * mat_bytes, data, mat_bytes);
    for (made = 0; made < copies; made++) {
        struct echo_err err;
        if (kern_matrix_init(&m[made], type, sh->rows, sh->cols, data + (size_t)made * mat_bytes,
                             &err) != 0 ||
            kern_matrix_prepare(&m[made], &err) != 0) {
            fprintf(stderr, "bench kernels: %s\n", err.msg);
            goto out;
        }
    }
    for (size_t i = 0; i < (size_t)T * sh->cols; i++)
        x[i] = rnd();

    /* decode: one token, weights from memory */
    double best1 = 1e30;
    for (int k = 0; k < copies; k++) /* warm-up: page faults, pool start */
        kern_matmul(&m[k], x, 1, y, pool);
    for (int rep = 0; rep < o->reps; rep++) {
        double t0 = now_s();
        for (int k = 0; k < copies; k++)
            kern_matmul(&m[k], x, 1, y, pool);
        double t = (now_s() - t0) / copies;
        if (t < best1) best1 = t;
    }
    double flop1 = 2.0 * sh->rows * sh->cols;
    double gbs = (double)mat_bytes / best1 * 1e-9;
    printf("%-5s %-12s %5dx%-5d %4d %9.3f %8.1f %5.0f%% %9.1f\n", tname, sh->name, sh->rows,
           sh->cols, 1, best1 * 1e3, gbs, bw > 0 ? 100.0 * gbs / bw : 0.0, flop1 / best1 * 1e-9);
    res->decode_s = best1;

    res->prefill_s = 0;
    if (o->prefill > 1) {
        double bestT = 1e30;
        kern_matmul(&m[0], x, T, y, pool);
        for (int rep = 0; rep < o->reps; rep++) {
            double t0 = now_s();
            kern_matmul(&m[0], x, T, y, pool);
            double t = now_s() - t0;
            if (t < bestT) bestT = t;
        }
        printf("%-5s %-12s %5dx%-5d %4d %9.3f %8s %6s %9.1f\n", tname, sh->name, sh->rows, sh->cols,
               T, bestT * 1e3, "", "", flop1 * T / bestT * 1e-9);
        res->prefill_s = bestT;
    }
    rc = 0;
out:
    for (int k = 0; k < made; k++)
        kern_matrix_release(&m[k]);
    free(row);
    free(y);
    free(x);
    free(m);
    free(data);
    return rc;
}

int bench_kernels(int argc, char **argv)
{
    struct bench_opts o;
    int prc = parse_opts(argc, argv, &o);
    if (prc != 0) return prc > 0 ? 0 : 2;

    struct kern_pool *pool = kern_pool_new(o.threads);
    int nth = kern_pool_size(pool);
    printf("echobot bench kernels: path %s, %d thread%s\n", kern_path_name(), nth,
           nth == 1 ? "" : "s");
    double bw = -1;
    if (o.bw_mib > 0) {
        bw = kern_read_bandwidth(pool, (size_t)o.bw_mib << 20, o.reps);
        if (bw < 0)
            printf("read bandwidth: could not allocate %d MiB\n", o.bw_mib);
        else
            printf("read bandwidth: %.1f GB/s (%d threads, %d MiB, best of %d)\n", bw, nth,
                   o.bw_mib, o.reps);
    }
    printf("\n%-5s %-12s %-11s %4s %9s %8s %6s %9s\n", "type", "matrix", "rows x cols", "T",
           "ms/op", "GB/s", "of bw", "GFLOP/s");

    int rc = 0;
    for (size_t ti = 0; ti < N_TYPES && rc == 0; ti++) {
        if (!o.want[ti]) continue;
        struct shape_result res[N_SHAPES];
        for (size_t s = 0; s < N_SHAPES; s++) {
            if (bench_shape(types[ti].type, types[ti].name, &shapes[s], &o, pool, bw, &res[s]) !=
                0) {
                rc = 1;
                break;
            }
        }
        if (rc != 0) break;
        /* Whole model: 28 layers of these products, plus the output projection
         * (151936 x 1536, timed as ffn_gate/up scaled by its rows) for every
         * generated token and for the last prompt token only. */
        double layer_dec = 0, layer_pre = 0, bytes = 0;
        for (size_t s = 0; s < N_SHAPES; s++) {
            layer_dec += shapes[s].per_layer * res[s].decode_s;
            layer_pre += shapes[s].per_layer * res[s].prefill_s;
            bytes += shapes[s].per_layer * (double)kern_row_bytes(types[ti].type, shapes[s].cols) *
                     shapes[s].rows;
        }
        double out_dec = res[2].decode_s * MODEL_VOCAB / shapes[2].rows;
        double tok_dec = MODEL_LAYERS * layer_dec + out_dec;
        bytes = MODEL_LAYERS * bytes +
                (double)kern_row_bytes(types[ti].type, MODEL_HIDDEN) * MODEL_VOCAB;
        printf("%-5s model decode: %.2f GB of weights per token, %.1f tok/s from the "
               "products alone (%.0f%% of the bandwidth limit %.1f tok/s)\n",
               types[ti].name, bytes * 1e-9, 1.0 / tok_dec,
               bw > 0 ? 100.0 * (bytes / tok_dec * 1e-9) / bw : 0.0, bw > 0 ? bw * 1e9 / bytes : 0);
        if (o.prefill > 1)
            printf("%-5s model prefill: %d tokens in %.2f s, %.1f tok/s from the products alone\n",
                   types[ti].name, o.prefill, MODEL_LAYERS * layer_pre + out_dec,
                   o.prefill / (MODEL_LAYERS * layer_pre + out_dec));
        printf("\n");
    }
    kern_pool_free(pool);
    return rc;
}
