/*
 * cmd_bench.c - `echobot bench`: the engine's speed on a model, as the
 * field's usual tool reports it (prompt processing "pp" and generation "tg"
 * in tokens/s over repetitions), plus what explains it: the machine's memory
 * read bandwidth measured just before with the same threads, the bytes of
 * weights one generated token reads, the bandwidth limit they imply and the
 * fraction of it reached, and the peak resident memory.
 *
 * `echobot bench tokenizer ...` and `echobot bench kernels ...` run the
 * tokenizer's and the kernels' own benchmarks.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "llm_cli.h"

const char cmd_bench_summary[] =
    "measure engine speed: bench [model] -m PATH | tokenizer | kernels";

/* The other benchmarks live beside their modules (bench_tokenizer.c,
 * bench_kernels.c). */
int bench_tokenizer(int argc, char **argv);
int bench_kernels(int argc, char **argv);

enum { OPT_JSON = LLM_OPT_FIRST_FREE, OPT_BW_MIB };

static void usage(FILE *out)
{
    fprintf(
        out,
        "usage: echobot bench [model] [-m PATH] [-p 512] [-n 128] [-r 3] [-t THREADS] [--json]\n"
        "       echobot bench tokenizer [options]    (see echobot bench tokenizer --help)\n"
        "       echobot bench kernels [options]      (see echobot bench kernels --help)\n\n"
        "Measures prompt processing (pp: -p tokens in one prompt) and generation (tg: -n\n"
        "tokens one at a time) in tokens/s, mean and spread over -r repetitions, the\n"
        "memory read bandwidth just before, the weights read per generated token and the\n"
        "share of the bandwidth limit reached, and the peak resident memory.\n\n"
        "  -p, --prompt N         prompt length (default 512; 0 skips pp)\n"
        "  -n, --gen N            tokens generated (default 128; 0 skips tg)\n"
        "  -r, --reps N           repetitions (default 3)\n"
        "      --bw-mib N         buffer for the bandwidth measurement (default 512)\n"
        "      --json             one JSON object per test on stdout\n" LLM_CLI_MODEL_HELP);
}

/* Peak resident memory since the last reset (VmHWM), in bytes; 0 if unknown. */
static uint64_t peak_rss(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return 0;
    char line[256];
    uint64_t kb = 0;
    while (fgets(line, sizeof(line), f))
        if (!strncmp(line, "VmHWM:", 6)) kb = strtoull(line + 6, NULL, 10);
    fclose(f);
    return kb * 1024;
}

/* Resets the peak so that the bandwidth buffer does not count (Linux >= 4.0). */
static void reset_peak_rss(void)
{
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (f) {
        fputs("5", f);
        fclose(f);
    }
}

struct series {
    double v[64];
    int n;
};

static void series_stats(const struct series *s, double *mean, double *sd, double *best)
{
    double sum = 0, sq = 0;
    *best = 0;
    for (int i = 0; i < s->n; i++) {
        sum += s->v[i];
        if (s->v[i] > *best) *best = s->v[i];
    }
    *mean = s->n ? sum / s->n : 0;
    for (int i = 0; i < s->n; i++)
        sq += (s->v[i] - *mean) * (s->v[i] - *mean);
    *sd = s->n > 1 ? sqrt(sq / (s->n - 1)) : 0;
}

/* Random ids that every tokenizer of the model knows (deterministic). */
static void random_ids(int32_t *ids, int n, int32_t limit, uint64_t seed)
{
    for (int i = 0; i < n; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        ids[i] = (int32_t)((seed >> 33) % (uint64_t)limit);
    }
}

static int bench_model(int argc, char **argv)
{
    static const struct option opts[] = {
        LLM_CLI_MODEL_OPTIONS,
        {"prompt", required_argument, NULL, 'p'},
        {"gen", required_argument, NULL, 'n'},
        {"reps", required_argument, NULL, 'r'},
        {"json", no_argument, NULL, OPT_JSON},
        {"bw-mib", required_argument, NULL, OPT_BW_MIB},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct llm_cli cli;
    if (llm_cli_init(&cli, "bench") < 0) return 1;
    int n_prompt = 512, n_gen = 128, reps = 3, bw_mib = 512, c, rc = 2;
    bool json = false;
    llm_model *m = NULL;
    llm_engine *e = NULL;
    llm_session *s = NULL;
    int32_t *ids = NULL;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:t:p:n:r:h", opts, NULL)) != -1) {
        int r = llm_cli_option(&cli, c, optarg);
        if (r < 0) return 2;
        if (r > 0) continue;
        int64_t v;
        switch (c) {
        case 'p':
        case 'n':
        case 'r':
        case OPT_BW_MIB:
            if (parse_int64(optarg, c == 'r' ? 1 : 0, c == 'r' ? 64 : 1 << 20, &v) < 0) {
                fprintf(stderr, "echobot bench: bad number '%s'\n", optarg);
                return 2;
            }
            if (c == 'p')
                n_prompt = (int)v;
            else if (c == 'n')
                n_gen = (int)v;
            else if (c == 'r')
                reps = (int)v;
            else
                bw_mib = (int)v;
            break;
        case OPT_JSON:
            json = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        usage(stderr);
        return 2;
    }
    rc = 1;
    uint64_t t0 = time_mono_ns();
    m = llm_cli_load(&cli);
    if (!m) goto out;
    double load_s = (double)(time_mono_ns() - t0) / 1e9;
    const struct llm_model_info *in = llm_model_get_info(m);
    struct echo_err err;
    echo_err_clear(&err);
    e = llm_engine_new(m, cli.threads, cli.ubatch, &err);
    struct llm_session_opts so = {.n_ctx = cli.ctx, .kv_type = cli.kv};
    if (!e || !(s = llm_session_new(m, &so, &err))) {
        llm_cli_error(&cli, &err);
        goto out;
    }
    int n_ctx = llm_session_n_ctx(s);
    if (n_prompt > n_ctx || n_gen + 1 > n_ctx) {
        fprintf(stderr, "echobot bench: -p %d / -n %d do not fit in the context of %d\n", n_prompt,
                n_gen, n_ctx);
        goto out;
    }
    int threads = llm_engine_threads(e);
    double bw = bw_mib > 0 ? llm_engine_read_bandwidth(e, (size_t)bw_mib << 20, 10) : -1;
    reset_peak_rss();
    uint64_t per_token = llm_model_bytes_per_token(m);
    int32_t id_limit = tok_vocab_size(llm_model_tokenizer(m));
    if (id_limit <= 0 || id_limit > in->n_vocab) id_limit = in->n_vocab;
    ids = xmalloc((size_t)(n_prompt > 0 ? n_prompt : 1) * sizeof(*ids));

    if (!json) {
        printf("model:      %s (%s, %.2f GB of weights, %.2f B parameters, loaded in %.1f s)\n",
               cli.model, in->weight_type, (double)in->weights_bytes / 1e9,
               (double)in->n_params / 1e9, load_s);
        printf("engine:     %d threads, KV cache %s, context %d\n", threads,
               cli.kv == LLM_KV_F32 ? "f32" : "f16", n_ctx);
        if (bw > 0)
            printf("bandwidth:  %.1f GB/s memory read with %d threads (%d MiB, best of 10)\n", bw,
                   threads, bw_mib);
        printf(
            "\n| %-8s | %12s | %8s | %10s |\n|----------|--------------|----------|------------|\n",
            "test", "tokens/s", "stddev", "best");
    }
    struct series pp = {0}, tg = {0};
    for (int r = 0; r < reps && n_prompt > 0; r++) {
        random_ids(ids, n_prompt, id_limit, 1234 + (uint64_t)r);
        llm_session_reset(s);
        uint64_t a = time_mono_ns();
        if (llm_session_eval(s, e, ids, (size_t)n_prompt, NULL, &err) < 0) {
            llm_cli_error(&cli, &err);
            goto out;
        }
        pp.v[pp.n++] = n_prompt / ((double)(time_mono_ns() - a) / 1e9);
    }
    for (int r = 0; r < reps && n_gen > 0; r++) {
        /* Like llama-bench's tg: from an empty context, one token at a time. */
        int32_t first;
        random_ids(&first, 1, id_limit, 99 + (uint64_t)r);
        llm_session_reset(s);
        struct llm_gen_params gp;
        llm_gen_params_default(&gp, m);
        gp.sampling.temperature = 0;
        gp.sampling.repeat_penalty = 1;
        gp.max_tokens = n_gen + 1; /* n_gen forward passes after the first sample */
        gp.ignore_stop = true;
        struct llm_gen_stats st;
        if (llm_generate(s, e, &first, 1, &gp, NULL, &st, &err) < 0) {
            llm_cli_error(&cli, &err);
            goto out;
        }
        tg.v[tg.n++] = st.gen_tps;
    }
    double mean, sd, best;
    double tg_mean = 0;
    if (pp.n) {
        series_stats(&pp, &mean, &sd, &best);
        if (json)
            printf("{\"test\": \"pp%d\", \"tokens_per_second\": %.3f, \"stddev\": %.3f, "
                   "\"best\": %.3f, \"threads\": %d, \"model\": \"%s\", \"weights\": \"%s\"}\n",
                   n_prompt, mean, sd, best, threads, cli.model, in->weight_type);
        else
            printf("| pp%-6d | %12.2f | %8.2f | %10.2f |\n", n_prompt, mean, sd, best);
    }
    if (tg.n) {
        series_stats(&tg, &mean, &sd, &best);
        tg_mean = mean;
        double limit = bw > 0 ? bw * 1e9 / (double)per_token : 0;
        if (json)
            printf("{\"test\": \"tg%d\", \"tokens_per_second\": %.3f, \"stddev\": %.3f, "
                   "\"best\": %.3f, \"threads\": %d, \"model\": \"%s\", \"weights\": \"%s\", "
                   "\"bytes_per_token\": %llu, \"bandwidth_gbs\": %.2f, "
                   "\"bandwidth_limit_tps\": %.3f, \"bandwidth_ratio\": %.4f}\n",
                   n_gen, mean, sd, best, threads, cli.model, in->weight_type,
                   (unsigned long long)per_token, bw, limit, limit > 0 ? mean / limit : 0);
        else
            printf("| tg%-6d | %12.2f | %8.2f | %10.2f |\n", n_gen, mean, sd, best);
    }
    uint64_t peak = peak_rss();
    if (json) {
        printf("{\"test\": \"memory\", \"peak_rss_bytes\": %llu, \"weights_bytes\": %llu}\n",
               (unsigned long long)peak, (unsigned long long)in->weights_bytes);
    } else {
        printf("\nweights read per generated token: %.3f GB\n", (double)per_token / 1e9);
        if (bw > 0 && tg.n) {
            double limit = bw * 1e9 / (double)per_token;
            printf("bandwidth limit: %.1f tokens/s at %.1f GB/s; tg%d reaches %.0f%% of it "
                   "(mean), %.0f%% (best)\n",
                   limit, bw, n_gen, 100.0 * tg_mean / limit, 100.0 * best / limit);
        }
        printf("peak resident memory: %.3f GB (after the bandwidth buffer was freed)\n",
               (double)peak / 1e9);
    }
    rc = 0;
out:
    free(ids);
    llm_session_free(s);
    llm_engine_free(e);
    llm_model_free(m);
    return rc;
}

int cmd_bench(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "tokenizer")) return bench_tokenizer(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "kernels")) return bench_kernels(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "model")) return bench_model(argc - 1, argv + 1);
    return bench_model(argc, argv);
}
