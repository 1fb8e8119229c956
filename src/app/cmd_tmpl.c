/*
 * cmd_tmpl.c - `echobot tmpl`: tools for template authors, on top of
 * src/tmpl/. `check` compiles a template folder and reports the first error
 * with its position, `render` prints one template rendered with a JSON
 * context (the end-to-end parity test compares it with Jinja2), `bench`
 * measures renders per second of one page.
 */
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "tmpl/tmpl.h"

const char cmd_tmpl_summary[] = "check, render or benchmark Jinja-style templates";

static void usage(FILE *out)
{
    fprintf(out, "usage: echobot tmpl check DIR\n"
                 "       echobot tmpl render DIR NAME [CONTEXT.json]\n"
                 "       echobot tmpl bench DIR NAME [CONTEXT.json] [N] [--threads T]\n"
                 "\n"
                 "  check   compile every *.html under DIR; print the first error\n"
                 "  render  render template NAME (a path relative to DIR) with the JSON object\n"
                 "          in CONTEXT.json (\"-\" reads standard input) and print it\n"
                 "  bench   render NAME N times (default 20000) on T threads (default 1)\n"
                 "          and print renders per second\n");
}

static tmpl_env *load(const char *dir)
{
    struct echo_err err;
    echo_err_clear(&err);
    tmpl_env *env = tmpl_env_new();
    if (tmpl_env_load_dir(env, dir, &err) != 0) {
        char buf[1024];
        fprintf(stderr, "echobot tmpl: %s\n", echo_err_format(&err, buf, sizeof(buf)));
        tmpl_env_free(env);
        return NULL;
    }
    return env;
}

static json_t *load_context(const char *path)
{
    if (!path) return json_object();
    json_error_t jerr;
    json_t *ctx = !strcmp(path, "-") ? json_loadf(stdin, JSON_DECODE_ANY, &jerr)
                                     : json_load_file(path, JSON_DECODE_ANY, &jerr);
    if (!ctx) {
        fprintf(stderr, "echobot tmpl: %s:%d:%d: %s\n", path, jerr.line, jerr.column, jerr.text);
        return NULL;
    }
    if (!json_is_object(ctx)) {
        fprintf(stderr, "echobot tmpl: %s: the context must be a JSON object\n", path);
        json_decref(ctx);
        return NULL;
    }
    return ctx;
}

struct bench_job {
    const tmpl_env *env;
    const char *name;
    json_t *ctx;
    long n;
    int failed;
    size_t bytes;
};

static void *bench_thread(void *arg)
{
    struct bench_job *job = arg;
    struct strbuf out;
    strbuf_init(&out);
    for (long i = 0; i < job->n; i++) {
        out.len = 0;
        struct echo_err err;
        if (tmpl_render(job->env, job->name, job->ctx, &out, &err) != 0) {
            char buf[1024];
            fprintf(stderr, "echobot tmpl: %s\n", echo_err_format(&err, buf, sizeof(buf)));
            job->failed = 1;
            break;
        }
        job->bytes = out.len;
    }
    strbuf_deinit(&out);
    return NULL;
}

static int run_bench(const tmpl_env *env, const char *name, json_t *ctx, long n, int threads)
{
    struct bench_job jobs[64];
    pthread_t tids[64];
    /* Warm-up: first touches of the code and the allocator are not measured. */
    struct bench_job warm = {.env = env, .name = name, .ctx = ctx, .n = n / 10 + 1};
    bench_thread(&warm);
    if (warm.failed) return 1;
    uint64_t t0 = time_mono_ns();
    int started = 0;
    for (int i = 0; i < threads; i++) {
        jobs[i] = (struct bench_job){.env = env, .name = name, .ctx = ctx, .n = n / threads};
        if (pthread_create(&tids[i], NULL, bench_thread, &jobs[i]) != 0) {
            fprintf(stderr, "echobot tmpl: cannot start a thread\n");
            break;
        }
        started++;
    }
    int failed = started < threads;
    long total = 0;
    for (int i = 0; i < started; i++) {
        pthread_join(tids[i], NULL);
        failed |= jobs[i].failed;
        total += jobs[i].n;
    }
    if (failed) return 1;
    double secs = (double)(time_mono_ns() - t0) / 1e9;
    printf("%s: %ld renders on %d thread%s in %.3f s: %.0f renders/s, %.2f us/render "
           "(per thread), %zu bytes/page\n",
           name, total, threads, threads == 1 ? "" : "s", secs, (double)total / secs,
           secs * 1e6 * threads / (double)total, warm.bytes);
    return 0;
}

int cmd_tmpl(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *sub = argv[1];
    if (!strcmp(sub, "check")) {
        if (argc != 3) {
            usage(stderr);
            return 2;
        }
        tmpl_env *env = load(argv[2]);
        if (!env) return 1;
        printf("%zu templates compiled\n", tmpl_env_count(env));
        tmpl_env_free(env);
        return 0;
    }
    if (!strcmp(sub, "render")) {
        if (argc < 4 || argc > 5) {
            usage(stderr);
            return 2;
        }
        tmpl_env *env = load(argv[2]);
        if (!env) return 1;
        json_t *ctx = load_context(argc > 4 ? argv[4] : NULL);
        int rc = 1;
        if (ctx) {
            struct strbuf out;
            struct echo_err err;
            strbuf_init(&out);
            echo_err_clear(&err);
            if (tmpl_render(env, argv[3], ctx, &out, &err) == 0) {
                fwrite(out.data ? out.data : "", 1, out.len, stdout);
                rc = fflush(stdout) == 0 ? 0 : 1;
            } else {
                char buf[1024];
                fprintf(stderr, "echobot tmpl: %s\n", echo_err_format(&err, buf, sizeof(buf)));
            }
            strbuf_deinit(&out);
            json_decref(ctx);
        }
        tmpl_env_free(env);
        return rc;
    }
    if (!strcmp(sub, "bench")) {
        long n = 20000;
        int threads = 1;
        const char *pos[4] = {NULL, NULL, NULL, NULL};
        int npos = 0;
        for (int i = 2; i < argc; i++) {
            if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
                int64_t t;
                if (parse_int64(argv[++i], 1, 64, &t) != 0) {
                    fprintf(stderr, "echobot tmpl: --threads takes 1..64\n");
                    return 2;
                }
                threads = (int)t;
            } else if (npos < 4) {
                pos[npos++] = argv[i];
            } else {
                usage(stderr);
                return 2;
            }
        }
        if (npos < 2) {
            usage(stderr);
            return 2;
        }
        if (npos > 3) {
            int64_t v;
            if (parse_int64(pos[3], 1, 1000000000, &v) != 0) {
                fprintf(stderr, "echobot tmpl: N must be a positive number\n");
                return 2;
            }
            n = (long)v;
        }
        tmpl_env *env = load(pos[0]);
        if (!env) return 1;
        json_t *ctx = load_context(pos[2]);
        int rc = ctx ? run_bench(env, pos[1], ctx, n, threads) : 1;
        json_decref(ctx);
        tmpl_env_free(env);
        return rc;
    }
    fprintf(stderr, "echobot tmpl: unknown subcommand '%s'\n", sub);
    usage(stderr);
    return 2;
}
