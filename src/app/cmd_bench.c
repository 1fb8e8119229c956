/*
 * cmd_bench.c - `echobot bench`: the engine's speed on a model, as the
 * field's usual tool reports it (prompt processing "pp" and generation "tg"
 * in tokens/s over repetitions), plus what explains it: the machine's memory
 * read bandwidth measured just before with the same threads, the bytes of
 * weights one generated token reads, the bandwidth limit they imply and the
 * fraction of it reached, and the peak resident memory.
 *
 * Beyond one sequence (issue 9): --batch N,... runs N generations at once
 * through the scheduler (continuous batching, as the chat serves them) and
 * reports their aggregate tokens/s, like llama-batched-bench; --depth D,...
 * measures generation with D tokens already in the context; --ttft H
 * measures the time to the first token of a chat's second turn (H tokens of
 * history in the conversation's KV cache, a new message of --ttft-new
 * tokens) through the scheduler's session reuse.
 *
 * `echobot bench tokenizer ...` and `echobot bench kernels ...` run the
 * tokenizer's and the kernels' own benchmarks.
 */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "llm_cli.h"

const char cmd_bench_summary[] =
    "measure engine speed: bench [model] -m PATH | tokenizer | kernels";

/* The other benchmarks live beside their modules (bench_tokenizer.c,
 * bench_kernels.c). */
int bench_tokenizer(int argc, char **argv);
int bench_kernels(int argc, char **argv);

enum {
    OPT_JSON = LLM_OPT_FIRST_FREE,
    OPT_BW_MIB,
    OPT_BATCH,
    OPT_BATCH_PROMPT,
    OPT_DEPTH,
    OPT_TTFT,
    OPT_TTFT_NEW
};

/* Most entries of --batch / --depth. */
#define MAX_LIST 16
/* Most generations of one --batch entry. */
#define LLM_MAX_BATCH_BENCH 64

static void usage(FILE *out)
{
    fprintf(
        out,
        "usage: echobot bench [model] [-m PATH] [-p 512] [-n 128] [-r 3] [-t THREADS] [--json]\n"
        "                     [--batch 1,2,4] [--depth 0,2048,8192] [--ttft 2000]\n"
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
        "      --batch N,...      N generations of -n tokens at once through the scheduler\n"
        "                         (continuous batching): aggregate tokens/s (test tgNxB)\n"
        "      --batch-prompt N   prompt tokens of each batched generation (default 128)\n"
        "      --depth D,...      generation of -n tokens after D tokens of context (tgN@dD)\n"
        "      --ttft H           time to first token of a chat's second turn: H tokens of\n"
        "                         history cached by the scheduler, then a new message\n"
        "      --ttft-new N       tokens of that new message (default 20)\n"
        "      --json             one JSON object per test on stdout\n"
        "Give --ctx large enough for the longest test (the default is ECHO_CONTEXT).\n" LLM_CLI_MODEL_HELP);
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

/* Parses "1,2,4" into up to MAX_LIST values in [lo, hi]; -1 with a message. */
static int parse_list(const char *text, int lo, int hi, int *out, int *n)
{
    *n = 0;
    const char *p = text;
    while (*p) {
        char item[32];
        size_t len = strcspn(p, ",");
        int64_t v;
        if (len == 0 || len >= sizeof(item) || *n == MAX_LIST) goto bad;
        memcpy(item, p, len);
        item[len] = '\0';
        if (parse_int64(item, lo, hi, &v) < 0) goto bad;
        out[(*n)++] = (int)v;
        p += len;
        if (*p == ',') p++;
    }
    if (*n > 0) return 0;
bad:
    fprintf(stderr, "echobot bench: bad list '%s' (up to %d numbers %d..%d, comma separated)\n",
            text, MAX_LIST, lo, hi);
    return -1;
}

/* The ends of scheduler requests, waited for by the benchmark's thread. */
struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int ended;
    struct llm_gen_stats st[LLM_MAX_BATCH_BENCH];
    uint64_t end_ns[LLM_MAX_BATCH_BENCH];
    uint64_t ids[LLM_MAX_BATCH_BENCH];
};

static void waiter_end(void *user, uint64_t id, const struct llm_gen_stats *st)
{
    struct waiter *w = user;
    pthread_mutex_lock(&w->mu);
    for (int i = 0; i < LLM_MAX_BATCH_BENCH; i++) {
        if (w->ids[i] == id) {
            w->st[i] = *st;
            w->end_ns[i] = time_mono_ns();
        }
    }
    w->ended++;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static void waiter_wait(struct waiter *w, int n)
{
    pthread_mutex_lock(&w->mu);
    while (w->ended < n)
        pthread_cond_wait(&w->cv, &w->mu);
    pthread_mutex_unlock(&w->mu);
}

static void bench_gen_params(struct llm_gen_params *gp, const llm_model *m, int max_tokens)
{
    llm_gen_params_default(gp, m);
    gp->sampling.temperature = 0;
    gp->sampling.repeat_penalty = 1;
    gp->max_tokens = max_tokens;
    gp->ignore_stop = true;
}

/*
 * N generations at once through the scheduler: N prompts of n_prompt random
 * ids submitted together (they run as one batch), each then generating
 * n_gen + 1 tokens, i.e. n_gen forward passes. The aggregate rate is the
 * N * n_gen computed tokens over the time from the end of the prompts (the
 * latest one) to the last end. -1 on a refused submit (message printed).
 */
static int batch_run(llm_sched *sc, const llm_model *m, int N, int n_prompt, int n_gen,
                     int32_t id_limit, uint64_t seed, double *tps, double *ttft_s)
{
    struct waiter *w = xcalloc(1, sizeof(*w));
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    int32_t *ids = xmalloc((size_t)n_prompt * sizeof(*ids));
    int rc = -1, submitted = 0;
    uint64_t t0 = time_mono_ns();
    /* Submitting under w->mu: an end cannot be recorded before its id is. */
    pthread_mutex_lock(&w->mu);
    for (int i = 0; i < N; i++) {
        random_ids(ids, n_prompt, id_limit, seed + (uint64_t)i * 7919);
        struct llm_request req = {.ids = ids, .n_ids = (size_t)n_prompt};
        bench_gen_params(&req.params, m, n_gen + 1);
        struct llm_sink sink = {.on_end = waiter_end, .user = w};
        struct echo_err err;
        echo_err_clear(&err);
        if (llm_sched_submit(sc, &req, &sink, &w->ids[i], &err) < 0) {
            fprintf(stderr, "echobot bench: %s\n", err.msg);
            break;
        }
        submitted++;
    }
    pthread_mutex_unlock(&w->mu);
    waiter_wait(w, submitted);
    if (submitted == N) {
        double prompt_end = 0, last_end = 0;
        long tokens = 0;
        for (int i = 0; i < N; i++) {
            double pe = (double)(w->end_ns[i] - t0) / 1e9 - w->st[i].gen_seconds;
            double e = (double)(w->end_ns[i] - t0) / 1e9;
            prompt_end = pe > prompt_end ? pe : prompt_end;
            last_end = e > last_end ? e : last_end;
            tokens += w->st[i].completion_tokens - 1;
        }
        *tps = last_end > prompt_end ? (double)tokens / (last_end - prompt_end) : 0;
        *ttft_s = prompt_end;
        rc = 0;
    }
    free(ids);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w);
    return rc;
}

/* One request through the scheduler and its wall time to the end. */
static int sched_one(llm_sched *sc, const llm_model *m, const char *conv, const int32_t *ids,
                     int n, double *seconds, struct llm_gen_stats *st)
{
    struct waiter *w = xcalloc(1, sizeof(*w));
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    struct llm_request req = {.conversation = conv, .ids = ids, .n_ids = (size_t)n};
    bench_gen_params(&req.params, m, 1);
    struct llm_sink sink = {.on_end = waiter_end, .user = w};
    struct echo_err err;
    echo_err_clear(&err);
    int rc = 0;
    uint64_t t0 = time_mono_ns();
    pthread_mutex_lock(&w->mu);
    if (llm_sched_submit(sc, &req, &sink, &w->ids[0], &err) < 0) {
        fprintf(stderr, "echobot bench: %s\n", err.msg);
        rc = -1;
    }
    pthread_mutex_unlock(&w->mu);
    if (rc == 0) {
        waiter_wait(w, 1);
        *seconds = (double)(w->end_ns[0] - t0) / 1e9;
        *st = w->st[0];
    }
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w);
    return rc;
}

static void print_row(bool json, const char *test, const struct series *sr, const char *extra)
{
    double mean, sd, best;
    series_stats(sr, &mean, &sd, &best);
    if (json)
        printf("{\"test\": \"%s\", \"tokens_per_second\": %.3f, \"stddev\": %.3f, "
               "\"best\": %.3f%s}\n",
               test, mean, sd, best, extra);
    else
        printf("| %-14s | %12.2f | %8.2f | %10.2f |\n", test, mean, sd, best);
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
        {"batch", required_argument, NULL, OPT_BATCH},
        {"batch-prompt", required_argument, NULL, OPT_BATCH_PROMPT},
        {"depth", required_argument, NULL, OPT_DEPTH},
        {"ttft", required_argument, NULL, OPT_TTFT},
        {"ttft-new", required_argument, NULL, OPT_TTFT_NEW},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct llm_cli cli;
    if (llm_cli_init(&cli, "bench") < 0) return 1;
    int n_prompt = 512, n_gen = 128, reps = 3, bw_mib = 512, c, rc = 2;
    int batch[MAX_LIST], n_batch = 0, depth[MAX_LIST], n_depth = 0;
    int batch_prompt = 128, ttft_hist = 0, ttft_new = 20;
    bool json = false;
    llm_model *m = NULL;
    llm_engine *e = NULL;
    llm_session *s = NULL;
    llm_sched *sched = NULL;
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
        case OPT_BATCH_PROMPT:
        case OPT_TTFT:
        case OPT_TTFT_NEW:
            if (parse_int64(optarg, c == 'r' || c == OPT_BATCH_PROMPT || c == OPT_TTFT_NEW ? 1 : 0,
                            c == 'r' ? 64 : 1 << 20, &v) < 0) {
                fprintf(stderr, "echobot bench: bad number '%s'\n", optarg);
                return 2;
            }
            if (c == 'p')
                n_prompt = (int)v;
            else if (c == 'n')
                n_gen = (int)v;
            else if (c == 'r')
                reps = (int)v;
            else if (c == OPT_BATCH_PROMPT)
                batch_prompt = (int)v;
            else if (c == OPT_TTFT)
                ttft_hist = (int)v;
            else if (c == OPT_TTFT_NEW)
                ttft_new = (int)v;
            else
                bw_mib = (int)v;
            break;
        case OPT_BATCH:
            if (parse_list(optarg, 1, LLM_MAX_BATCH_BENCH, batch, &n_batch) < 0) return 2;
            break;
        case OPT_DEPTH:
            if (parse_list(optarg, 0, 1 << 20, depth, &n_depth) < 0) return 2;
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
    int max_depth = 0, max_batch = 0;
    for (int i = 0; i < n_depth; i++)
        max_depth = depth[i] > max_depth ? depth[i] : max_depth;
    for (int i = 0; i < n_batch; i++)
        max_batch = batch[i] > max_batch ? batch[i] : max_batch;
    if (n_prompt > n_ctx || n_gen + 1 > n_ctx || (n_depth && max_depth + n_gen + 1 > n_ctx) ||
        (n_batch && batch_prompt + n_gen + 1 > n_ctx) ||
        (ttft_hist && ttft_hist + ttft_new + 1 > n_ctx)) {
        fprintf(stderr,
                "echobot bench: the tests do not fit in the context of %d (-p %d, -n %d, depth "
                "%d, batch prompt %d, ttft %d+%d); raise --ctx\n",
                n_ctx, n_prompt, n_gen, max_depth, batch_prompt, ttft_hist, ttft_new);
        goto out;
    }
    int threads = llm_engine_threads(e);
    double bw = bw_mib > 0 ? llm_engine_read_bandwidth(e, (size_t)bw_mib << 20, 10) : -1;
    reset_peak_rss();
    uint64_t per_token = llm_model_bytes_per_token(m);
    int32_t id_limit = tok_vocab_size(llm_model_tokenizer(m));
    if (id_limit <= 0 || id_limit > in->n_vocab) id_limit = in->n_vocab;
    int n_ids = n_prompt;
    n_ids = max_depth + 1 > n_ids ? max_depth + 1 : n_ids;
    n_ids = ttft_hist + ttft_new > n_ids ? ttft_hist + ttft_new : n_ids;
    ids = xmalloc((size_t)(n_ids > 0 ? n_ids : 1) * sizeof(*ids));

    if (!json) {
        printf("model:      %s (%s, %.2f GB of weights, %.2f B parameters, loaded in %.1f s)\n",
               cli.model, in->weight_type, (double)in->weights_bytes / 1e9,
               (double)in->n_params / 1e9, load_s);
        printf("engine:     %d threads, KV cache %s, context %d\n", threads,
               cli.kv == LLM_KV_F32 ? "f32" : "f16", n_ctx);
        if (bw > 0)
            printf("bandwidth:  %.1f GB/s memory read with %d threads (%d MiB, best of 10)\n", bw,
                   threads, bw_mib);
        printf("\n| %-14s | %12s | %8s | %10s |\n"
               "|----------------|--------------|----------|------------|\n",
               "test", "tokens/s", "stddev", "best");
    }
    char name[64], extra[512];
    const char *model_json = cli.model; /* a path; printed as given */
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
        bench_gen_params(&gp, m, n_gen + 1); /* n_gen forward passes after the first sample */
        struct llm_gen_stats st;
        if (llm_generate(s, e, &first, 1, &gp, NULL, &st, &err) < 0) {
            llm_cli_error(&cli, &err);
            goto out;
        }
        tg.v[tg.n++] = st.gen_tps;
    }
    double mean, sd, best;
    double tg_mean = 0, tg_best = 0;
    if (pp.n) {
        snprintf(name, sizeof(name), "pp%d", n_prompt);
        snprintf(extra, sizeof(extra), ", \"threads\": %d, \"model\": \"%s\", \"weights\": \"%s\"",
                 threads, model_json, in->weight_type);
        print_row(json, name, &pp, extra);
    }
    if (tg.n) {
        series_stats(&tg, &mean, &sd, &best);
        tg_mean = mean;
        tg_best = best;
        double limit = bw > 0 ? bw * 1e9 / (double)per_token : 0;
        snprintf(name, sizeof(name), "tg%d", n_gen);
        snprintf(extra, sizeof(extra),
                 ", \"threads\": %d, \"model\": \"%s\", \"weights\": \"%s\", "
                 "\"bytes_per_token\": %llu, \"bandwidth_gbs\": %.2f, "
                 "\"bandwidth_limit_tps\": %.3f, \"bandwidth_ratio\": %.4f",
                 threads, model_json, in->weight_type, (unsigned long long)per_token, bw, limit,
                 limit > 0 ? mean / limit : 0);
        print_row(json, name, &tg, extra);
    }

    /* Generation after `depth` tokens of context: the context is filled once
     * per depth (a longer depth reuses the shorter one's cache), then each
     * repetition generates from it. */
    for (int d = 0; d < n_depth && n_gen > 0; d++) {
        struct series sr = {0};
        random_ids(ids, depth[d] + 1, id_limit, 4242);
        for (int r = 0; r < reps; r++) {
            struct llm_gen_params gp;
            bench_gen_params(&gp, m, n_gen + 1);
            struct llm_gen_stats st;
            /* The depth ids plus one more: the cached prefix is reused and
             * only the last id (and the generation) is computed. */
            if (llm_generate(s, e, ids, (size_t)depth[d] + 1, &gp, NULL, &st, &err) < 0) {
                llm_cli_error(&cli, &err);
                goto out;
            }
            sr.v[sr.n++] = st.gen_tps;
        }
        snprintf(name, sizeof(name), "tg%d@d%d", n_gen, depth[d]);
        snprintf(extra, sizeof(extra), ", \"depth\": %d, \"threads\": %d, \"weights\": \"%s\"",
                 depth[d], threads, in->weight_type);
        print_row(json, name, &sr, extra);
    }
    /* The single-sequence engine is done: free it before the scheduler
     * starts its own, so the peak memory is the one the server would have. */
    llm_session_free(s);
    s = NULL;
    llm_engine_free(e);
    e = NULL;

    if (n_batch || ttft_hist) {
        struct llm_sched_opts o = {
            .n_threads = cli.threads,
            .n_ctx = n_ctx,
            .kv_type = cli.kv,
            .max_active = max_batch > 1 ? max_batch : 1,
        };
        sched = llm_sched_new(m, &o, &err);
        if (!sched) {
            llm_cli_error(&cli, &err);
            goto out;
        }
    }
    double one_seq = 0;
    for (int b = 0; b < n_batch && n_gen > 0; b++) {
        struct series sr = {0};
        double ttft_sum = 0;
        for (int r = 0; r < reps; r++) {
            double tps, first;
            if (batch_run(sched, m, batch[b], batch_prompt, n_gen, id_limit,
                          777 + (uint64_t)r * 131, &tps, &first) < 0)
                goto out;
            sr.v[sr.n++] = tps;
            ttft_sum += first;
        }
        series_stats(&sr, &mean, &sd, &best);
        if (batch[b] == 1) one_seq = mean;
        snprintf(name, sizeof(name), "tg%dx%d", n_gen, batch[b]);
        snprintf(extra, sizeof(extra),
                 ", \"batch\": %d, \"prompt_tokens\": %d, \"gen_tokens\": %d, "
                 "\"prompts_seconds\": %.3f, \"per_sequence_tps\": %.3f, \"speedup\": %.3f, "
                 "\"threads\": %d, \"weights\": \"%s\"",
                 batch[b], batch_prompt, n_gen, ttft_sum / reps, mean / batch[b],
                 one_seq > 0 ? mean / one_seq : 0, threads, in->weight_type);
        print_row(json, name, &sr, extra);
    }

    /* A chat's second turn: the history is the conversation's cached prefix,
     * so only the new message is computed before the first token. */
    struct series tt = {0};
    int reused = -1;
    for (int r = 0; r < reps && ttft_hist > 0; r++) {
        double secs;
        struct llm_gen_stats st;
        if (r == 0) {
            random_ids(ids, ttft_hist, id_limit, 5150);
            if (sched_one(sched, m, "bench-ttft", ids, ttft_hist, &secs, &st) < 0) goto out;
        }
        random_ids(ids + ttft_hist, ttft_new, id_limit, 6000 + (uint64_t)r);
        if (sched_one(sched, m, "bench-ttft", ids, ttft_hist + ttft_new, &secs, &st) < 0)
            goto out;
        tt.v[tt.n++] = secs;
        reused = st.reused_tokens;
    }
    if (tt.n) {
        series_stats(&tt, &mean, &sd, &best);
        double lo = tt.v[0];
        for (int i = 1; i < tt.n; i++)
            lo = tt.v[i] < lo ? tt.v[i] : lo;
        if (json)
            printf("{\"test\": \"ttft\", \"history_tokens\": %d, \"new_tokens\": %d, "
                   "\"reused_tokens\": %d, \"seconds\": %.4f, \"stddev\": %.4f, \"best\": %.4f}\n",
                   ttft_hist, ttft_new, reused, mean, sd, lo);
        else
            printf("\nttft (second turn): %.3f s +- %.3f (best %.3f) to the first token after %d "
                   "tokens of history (%d reused from the cache) and %d new\n",
                   mean, sd, lo, ttft_hist, reused, ttft_new);
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
                   limit, bw, n_gen, 100.0 * tg_mean / limit, 100.0 * tg_best / limit);
        }
        printf("peak resident memory: %.3f GB (after the bandwidth buffer was freed)\n",
               (double)peak / 1e9);
    }
    rc = 0;
out:
    llm_sched_free(sched);
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
