/*
 * cmd_logits.c - `echobot logits`: runs token ids through the model and
 * prints the top-K logits of the last position (or of every position), for
 * checking the engine against other implementations and the numpy
 * reference (tests/reference/qwen2_ref.py prints the same format).
 */
#include <stdlib.h>
#include <string.h>

#include "llm_cli.h"

const char cmd_logits_summary[] = "print the top logits of token ids (checks against references)";

enum { OPT_TOP = LLM_OPT_FIRST_FREE, OPT_ALL, OPT_PIECES, OPT_OUT };

static void usage(FILE *out)
{
    fprintf(out,
            "usage: echobot logits [options] ID...\n"
            "Runs the ids (\"1 2 3\" or \"1,2,3\") as one prompt and prints the last position's\n"
            "top-K token ids and logits as id:logit pairs.\n\n"
            "  -k, --top K            pairs to print per position (default 10; 0 = none)\n"
            "      --all              every position, one line each\n"
            "      --pieces N,M,...   first evaluate the prompt's first N, then M, ... tokens in\n"
            "                         one session, so the final run reuses the KV cache\n"
            "      --out FILE         also write the logits as raw little-endian float32\n"
            "                         (vocab values, or positions x vocab with "
            "--all)\n" LLM_CLI_MODEL_HELP);
}

struct pair {
    float v;
    int32_t id;
};

static int pair_cmp(const void *a, const void *b)
{
    const struct pair *x = a, *y = b;
    if (x->v != y->v) return x->v > y->v ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

static void print_top(const float *row, int n_vocab, int k, struct pair *tmp)
{
    for (int i = 0; i < n_vocab; i++)
        tmp[i] = (struct pair){row[i], i};
    qsort(tmp, (size_t)n_vocab, sizeof(*tmp), pair_cmp);
    for (int i = 0; i < k && i < n_vocab; i++)
        printf("%s%d:%.6f", i ? " " : "", tmp[i].id, tmp[i].v);
    printf("\n");
}

int cmd_logits(int argc, char **argv)
{
    static const struct option opts[] = {
        LLM_CLI_MODEL_OPTIONS,
        {"top", required_argument, NULL, 'k'},
        {"all", no_argument, NULL, OPT_ALL},
        {"pieces", required_argument, NULL, OPT_PIECES},
        {"out", required_argument, NULL, OPT_OUT},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct llm_cli cli;
    if (llm_cli_init(&cli, "logits") < 0) return 1;
    int top = 10;
    bool all = false;
    const char *out_path = NULL;
    struct tok_ids ids, pieces;
    tok_ids_init(&ids);
    tok_ids_init(&pieces);
    llm_model *m = NULL;
    llm_engine *e = NULL;
    llm_session *s = NULL;
    float *logits = NULL;
    struct pair *tmp = NULL;
    int rc = 2, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:t:k:h", opts, NULL)) != -1) {
        int r = llm_cli_option(&cli, c, optarg);
        if (r < 0) goto out;
        if (r > 0) continue;
        switch (c) {
        case 'k': {
            int64_t v;
            if (parse_int64(optarg, 0, 1 << 24, &v) < 0) {
                fprintf(stderr, "echobot logits: --top needs a count\n");
                goto out;
            }
            top = (int)v;
            break;
        }
        case OPT_ALL:
            all = true;
            break;
        case OPT_PIECES:
            if (llm_cli_parse_ids("logits", optarg, &pieces) < 0) goto out;
            break;
        case OPT_OUT:
            out_path = optarg;
            break;
        case 'h':
            usage(stdout);
            rc = 0;
            goto out;
        default:
            usage(stderr);
            goto out;
        }
    }
    for (int i = optind; i < argc; i++)
        if (llm_cli_parse_ids("logits", argv[i], &ids) < 0) goto out;
    if (ids.len == 0) {
        fprintf(stderr, "echobot logits: give at least one token id\n");
        usage(stderr);
        goto out;
    }
    rc = 1;
    m = llm_cli_load(&cli);
    if (!m) goto out;
    struct echo_err err;
    echo_err_clear(&err);
    e = llm_engine_new(m, cli.threads, cli.ubatch, &err);
    struct llm_session_opts so = {.n_ctx = cli.ctx, .kv_type = cli.kv};
    if (!e || !(s = llm_session_new(m, &so, &err))) {
        llm_cli_error(&cli, &err);
        goto out;
    }
    int n_vocab = llm_model_get_info(m)->n_vocab;
    size_t rows = 1;
    if (all) {
        rows = ids.len;
        logits = malloc(rows * (size_t)n_vocab * sizeof(float));
        if (!logits) {
            fprintf(stderr, "echobot logits: out of memory for %zu x %d logits\n", rows, n_vocab);
            goto out;
        }
        if (llm_session_eval_all(s, e, ids.ids, ids.len, logits, &err) < 0) {
            llm_cli_error(&cli, &err);
            goto out;
        }
    } else {
        for (size_t i = 0; i < pieces.len; i++) {
            size_t cut = (size_t)pieces.ids[i];
            if (cut == 0 || cut > ids.len) {
                fprintf(stderr, "echobot logits: piece %zu is outside 1..%zu\n", cut, ids.len);
                goto out;
            }
            size_t reused = 0;
            if (llm_session_eval(s, e, ids.ids, cut, &reused, &err) < 0) {
                llm_cli_error(&cli, &err);
                goto out;
            }
        }
        size_t reused = 0;
        if (llm_session_eval(s, e, ids.ids, ids.len, &reused, &err) < 0) {
            llm_cli_error(&cli, &err);
            goto out;
        }
        if (pieces.len)
            fprintf(stderr, "reused %zu of %zu tokens from the KV cache\n", reused, ids.len);
        logits = malloc((size_t)n_vocab * sizeof(float));
        if (!logits) goto out;
        memcpy(logits, llm_session_logits(s), (size_t)n_vocab * sizeof(float));
    }
    if (out_path) {
        FILE *f = fopen(out_path, "wb");
        if (!f ||
            fwrite(logits, sizeof(float), rows * (size_t)n_vocab, f) != rows * (size_t)n_vocab) {
            fprintf(stderr, "echobot logits: cannot write %s\n", out_path);
            if (f) fclose(f);
            goto out;
        }
        if (fclose(f) != 0) {
            fprintf(stderr, "echobot logits: cannot write %s\n", out_path);
            goto out;
        }
    }
    if (top > 0) {
        tmp = malloc((size_t)n_vocab * sizeof(*tmp));
        if (!tmp) goto out;
        for (size_t r = 0; r < rows; r++)
            print_top(logits + r * (size_t)n_vocab, n_vocab, top, tmp);
    }
    rc = 0;
out:
    free(tmp);
    free(logits);
    llm_session_free(s);
    llm_engine_free(e);
    llm_model_free(m);
    tok_ids_deinit(&ids);
    tok_ids_deinit(&pieces);
    return rc;
}
