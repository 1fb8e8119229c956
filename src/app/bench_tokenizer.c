/*
 * bench_tokenizer.c - `echobot bench tokenizer`: how fast the tokenizer
 * loads and encodes (cmd_bench.c dispatches here with argv[0] = "tokenizer").
 *
 * It loads the vocabulary several times (GGUF: open + build; the figure the
 * issue's 150 ms target is about), generates a deterministic mixed corpus
 * (English, code, CJK, emoji, numbers, whitespace runs; tok_corpus_generate)
 * and encodes it on one thread a few times, each run starting with an empty
 * per-thread cache, then decodes it once. Medians are printed, never
 * asserted.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/core.h"
#include "llm/tokenizer.h"

int bench_tokenizer(int argc, char **argv);

static void usage(FILE *out)
{
    fprintf(out,
            "usage: echobot bench tokenizer [-m MODEL] [--mb N] [--runs N] [--seed N]\n"
            "\n"
            "Times the vocabulary load and the encoding of N MB of mixed\n"
            "English/code/CJK text on one thread; prints MB/s and tokens/s.\n"
            "\n"
            "  -m, --model PATH  GGUF file (vocabulary-only is fine) or Hugging Face folder\n"
            "                    (default: ECHO_MODEL)\n"
            "      --mb N        megabytes of text to encode (default 10, at most 67)\n"
            "      --runs N      encode runs and load repetitions; medians are shown (default 5)\n"
            "      --seed N      corpus seed (default 1)\n");
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static double cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static bool is_gguf_path(const char *path)
{
    size_t n = strlen(path);
    return n > 5 && !strcmp(path + n - 5, ".gguf");
}

int bench_tokenizer(int argc, char **argv)
{
    static const struct option opts[] = {
        {"model", required_argument, NULL, 'm'}, {"mb", required_argument, NULL, 'b'},
        {"runs", required_argument, NULL, 'r'},  {"seed", required_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},        {NULL, 0, NULL, 0},
    };
    const char *model = NULL;
    int64_t mb = 10, runs = 5, seed = 1;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm':
            model = optarg;
            break;
        case 'b':
        case 'r':
        case 's': {
            int64_t *dst = c == 'b' ? &mb : c == 'r' ? &runs : &seed;
            int64_t max = c == 'b' ? TOK_MAX_TEXT / 1000000 : c == 'r' ? 100 : INT64_MAX;
            if (parse_int64(optarg, c == 's' ? 0 : 1, max, dst) < 0) {
                fprintf(stderr, "echobot bench tokenizer: bad value '%s'\n", optarg);
                return 2;
            }
            break;
        }
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    struct echo_err err = {0};
    char buf[1024];
    config *cfg = NULL;
    if (!model) {
        cfg = config_load_default(&err);
        model = cfg ? config_get(cfg, "ECHO_MODEL") : NULL;
        if (!model) {
            fprintf(stderr, "echobot bench tokenizer: %s\n",
                    cfg ? "no model: pass -m PATH or set ECHO_MODEL"
                        : echo_err_format(&err, buf, sizeof(buf)));
            config_free(cfg);
            return 1;
        }
    }

    /* Load: the whole path from file to a usable tokenizer, repeated. */
    double *load_ms = xcalloc((size_t)runs, sizeof(double));
    double *load_cpu = xcalloc((size_t)runs, sizeof(double));
    tokenizer *t = NULL;
    int64_t i = 0;
    do { /* runs >= 1 */
        tok_free(t);
        double c0 = cpu_seconds();
        uint64_t t0 = time_mono_ns();
        t = tok_load(model, &err);
        load_ms[i] = (double)(time_mono_ns() - t0) / 1e6;
        load_cpu[i] = (cpu_seconds() - c0) * 1e3;
        if (!t) {
            fprintf(stderr, "echobot bench tokenizer: %s\n",
                    echo_err_format(&err, buf, sizeof(buf)));
            free(load_ms);
            free(load_cpu);
            config_free(cfg);
            return 1;
        }
    } while (++i < runs);
    double first_load = load_ms[0];
    printf("tokenizer: %s (%d ids, %zu merges, %zu added tokens)\n", model, tok_vocab_size(t),
           tok_merge_count(t), tok_added_count(t));
    printf("load from %s: median %.1f ms wall (%.1f ms CPU), first %.1f ms (%lld runs)\n",
           is_gguf_path(model) ? "GGUF" : "files", median(load_ms, (int)runs),
           median(load_cpu, (int)runs), first_load, (long long)runs);
    free(load_ms);
    free(load_cpu);

    struct strbuf text;
    strbuf_init(&text);
    tok_corpus_generate(&text, (size_t)mb * 1000 * 1000, (uint64_t)seed);
    double mbytes = (double)text.len / 1e6;

    /* One warm-up encode also builds the process-wide NFC table. */
    struct tok_ids ids;
    tok_ids_init(&ids);
    tok_encode(t, "warm-up", 7, 0, &ids, &err);
    double *wall = xcalloc((size_t)runs, sizeof(double));
    double *cpu = xcalloc((size_t)runs, sizeof(double));
    int rc = 0;
    for (i = 0; i < runs && rc == 0; i++) {
        tok_thread_cleanup(); /* start each run with an empty pre-token cache */
        ids.len = 0;
        double c0 = cpu_seconds();
        uint64_t t0 = time_mono_ns();
        if (tok_encode(t, text.data, text.len, 0, &ids, &err) < 0) {
            fprintf(stderr, "echobot bench tokenizer: %s\n", err.msg);
            rc = 1;
        }
        wall[i] = (double)(time_mono_ns() - t0) / 1e9;
        cpu[i] = cpu_seconds() - c0;
    }
    if (rc == 0) {
        double w = median(wall, (int)runs), cp = median(cpu, (int)runs);
        printf("corpus: %.2f MB of mixed English/code/CJK/emoji text (seed %lld), %zu tokens "
               "(%.2f bytes/token)\n",
               mbytes, (long long)seed, ids.len, (double)text.len / (double)ids.len);
        printf("encode, 1 thread: %.1f MB/s, %.2f M tokens/s (median of %lld: %.3f s wall, "
               "%.3f s CPU)\n",
               mbytes / w, (double)ids.len / w / 1e6, (long long)runs, w, cp);
        struct strbuf back;
        strbuf_init(&back);
        uint64_t t0 = time_mono_ns();
        tok_decode(t, ids.ids, ids.len, 0, &back, &err);
        double d = (double)(time_mono_ns() - t0) / 1e9;
        printf("decode: %.1f MB/s; round trip %s\n", mbytes / d,
               back.len == text.len && !memcmp(back.data, text.data, text.len) ? "exact"
                                                                               : "DIFFERS");
        strbuf_deinit(&back);
    }
    free(wall);
    free(cpu);
    tok_ids_deinit(&ids);
    strbuf_deinit(&text);
    tok_free(t);
    config_free(cfg);
    return rc;
}
