/*
 * cmd_model.c - `echobot model info PATH` (what a model file is) and
 * `echobot model pull` (download the default model, resumable and
 * SHA-256-verified; URL, digest and destination come from the settings
 * ECHO_MODEL_URL, ECHO_MODEL_SHA256 and ECHO_MODEL unless given).
 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "llm/safetensors.h"
#include "llm_cli.h"

const char cmd_model_summary[] = "model files: info PATH, pull (download the default model)";

static void usage(FILE *out)
{
    fprintf(out,
            "usage: echobot model info [PATH]\n"
            "       echobot model pull [--if-missing] [--url URL] [--sha256 HEX] [--out PATH]\n\n"
            "info   architecture, sizes, weight types and tokenizer of a GGUF file or a\n"
            "       Hugging Face folder (default PATH: ECHO_MODEL)\n"
            "pull   downloads ECHO_MODEL_URL to ECHO_MODEL with resume (a .part file), a\n"
            "       progress bar and SHA-256 verification against ECHO_MODEL_SHA256\n"
            "  --if-missing     do nothing when the output file already exists\n"
            "  --url URL        download this instead\n"
            "  --sha256 HEX     expected digest (64 hex digits)\n"
            "  --out PATH       where to put the file\n"
            "  --no-progress    no progress bar (it is drawn only when stderr is a terminal)\n"
            "  --connect-timeout S  seconds to wait for a connection (default 10)\n");
}

static void human(double bytes, char *out, size_t size)
{
    static const char *units[] = {"B", "KB", "MB", "GB", "TB"};
    int u = 0;
    while (bytes >= 1000 && u < 4) {
        bytes /= 1000;
        u++;
    }
    snprintf(out, size, u ? "%.2f %s" : "%.0f %s", bytes, units[u]);
}

static void print_token(const tokenizer *t, int32_t id)
{
    size_t len = 0;
    const char *s = tok_token_text(t, id, &len);
    printf("%d %.*s", (int)id, s ? (int)(len > 40 ? 40 : len) : 1, s ? s : "?");
}

/* Adds one tensor type name to the counts. */
static void count_type(const char *name, const char **names, int *counts, int *n, int cap)
{
    int k = 0;
    while (k < *n && strcmp(names[k], name))
        k++;
    if (k == *n) {
        if (*n == cap) return;
        names[(*n)++] = name;
    }
    counts[k]++;
}

/* Counts of tensor types in the file(s): "q8_0 x 197, f32 x 141". */
static void file_types(const char *path, bool is_dir, char *out, size_t size)
{
    struct echo_err err;
    echo_err_clear(&err);
    int counts[32] = {0};
    const char *names[32] = {0};
    int n = 0;
    snprintf(out, size, "?");
    if (!is_dir) {
        gguf_file *f = gguf_open(path, &err);
        if (!f) return;
        for (uint64_t i = 0; i < gguf_tensor_count(f); i++) {
            const char *tn = gguf_tensor_type_ggml_name(gguf_tensor_at(f, i)->type);
            count_type(tn ? tn : "unknown", names, counts, &n, 32);
        }
        gguf_close(f);
    } else {
        st_model *st = st_model_open(path, &err);
        if (!st) return;
        for (size_t i = 0; i < st_model_tensor_count(st); i++)
            count_type(st_dtype_name(st_model_tensor_at(st, i)->dtype), names, counts, &n, 32);
        st_model_close(st);
    }
    size_t pos = 0;
    out[0] = '\0';
    for (int k = 0; k < n && pos < size; k++)
        pos += (size_t)snprintf(out + pos, size - pos, "%s%s x %d", k ? ", " : "", names[k],
                                counts[k]);
}

static int model_info(int argc, char **argv)
{
    struct llm_cli cli;
    if (llm_cli_init(&cli, "model info") < 0) return 1;
    if (argc > 2) {
        usage(stderr);
        return 2;
    }
    if (argc == 2) cli.model = argv[1];
    cli.no_repack = true; /* only looking: keep the mapping, skip the repacking */
    cli.ctx = 0;
    llm_model *m = llm_cli_load(&cli);
    if (!m) return 1;
    const struct llm_model_info *in = llm_model_get_info(m);
    const tokenizer *t = llm_model_tokenizer(m);
    struct stat st;
    bool is_dir = stat(cli.model, &st) == 0 && S_ISDIR(st.st_mode);
    char fb[32], wb[32], types[512];
    human((double)in->file_bytes, fb, sizeof(fb));
    human((double)in->weights_bytes, wb, sizeof(wb));
    file_types(cli.model, is_dir, types, sizeof(types));
    printf("file:          %s (%s, %s)\n", cli.model, fb, is_dir ? "Hugging Face folder" : "GGUF");
    printf("architecture:  %s%s%s%s\n", in->arch, in->name[0] ? " (" : "", in->name,
           in->name[0] ? ")" : "");
    printf("parameters:    %.3f B\n", (double)in->n_params / 1e9);
    printf("layers:        %d, hidden size %d, FFN %d\n", in->n_layers, in->hidden, in->ffn);
    printf("attention:     %d query heads, %d KV heads, head size %d\n", in->n_heads,
           in->n_kv_heads, in->head_dim);
    printf("context:       %d tokens (the model's own)\n", in->n_ctx_train);
    printf("rope theta:    %g, RMS norm epsilon %g\n", (double)in->rope_theta, (double)in->rms_eps);
    printf("vocabulary:    %d embedding rows, %s\n", in->n_vocab,
           in->tied ? "output tied to the embedding" : "separate output matrix");
    printf("weights:       %s in memory (%s); file tensors: %s\n", in->weight_type, wb, types);
    printf("tokenizer:     byte-level BPE, %d ids, %zu merges, %zu added tokens\n",
           (int)tok_vocab_size(t), tok_merge_count(t), tok_added_count(t));
    printf("special:       eos ");
    if (tok_eos_id(t) >= 0)
        print_token(t, tok_eos_id(t));
    else
        printf("(none)");
    printf(", bos ");
    if (tok_bos_id(t) >= 0)
        print_token(t, tok_bos_id(t));
    else
        printf("(none)");
    printf("\n");
    const struct llm_sampling *s = llm_model_sampling(m);
    printf("sampling:      temperature %g, top-k %d, top-p %g, min-p %g, repetition penalty %g\n",
           (double)s->temperature, s->top_k, (double)s->top_p, (double)s->min_p,
           (double)s->repeat_penalty);
    printf("chat template: %s\n", tok_chat_template(t) ? "yes (ChatML)" : "none in the file");
    llm_model_free(m);
    return 0;
}

enum { OPT_IF_MISSING = 1, OPT_URL, OPT_SHA, OPT_OUT, OPT_NO_PROGRESS, OPT_TIMEOUT };

static int model_pull(int argc, char **argv)
{
    static const struct option opts[] = {
        {"if-missing", no_argument, NULL, OPT_IF_MISSING},
        {"url", required_argument, NULL, OPT_URL},
        {"sha256", required_argument, NULL, OPT_SHA},
        {"out", required_argument, NULL, OPT_OUT},
        {"no-progress", no_argument, NULL, OPT_NO_PROGRESS},
        {"connect-timeout", required_argument, NULL, OPT_TIMEOUT},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct echo_err err;
    echo_err_clear(&err);
    config *cfg = config_load_default(&err);
    if (!cfg) {
        char buf[1024];
        fprintf(stderr, "echobot model pull: %s\n", echo_err_format(&err, buf, sizeof(buf)));
        return 1;
    }
    struct llm_pull_opts o = {
        .url = config_get(cfg, "ECHO_MODEL_URL"),
        .out = config_get(cfg, "ECHO_MODEL"),
        .sha256 = config_get(cfg, "ECHO_MODEL_SHA256"),
        .progress = isatty(2),
    };
    int c, rc = 2;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case OPT_IF_MISSING:
            o.if_missing = true;
            break;
        case OPT_URL:
            o.url = optarg;
            break;
        case OPT_SHA:
            o.sha256 = optarg;
            break;
        case OPT_OUT:
            o.out = optarg;
            break;
        case OPT_NO_PROGRESS:
            o.progress = false;
            break;
        case OPT_TIMEOUT: {
            int64_t v;
            if (parse_int64(optarg, 1, 3600, &v) < 0) {
                fprintf(stderr, "echobot model pull: --connect-timeout needs seconds\n");
                goto out;
            }
            o.connect_timeout = (long)v;
            break;
        }
        case 'h':
            usage(stdout);
            rc = 0;
            goto out;
        default:
            usage(stderr);
            goto out;
        }
    }
    if (optind < argc) {
        usage(stderr);
        goto out;
    }
    struct stat st;
    bool existed = o.out && stat(o.out, &st) == 0;
    if (!(o.if_missing && existed))
        fprintf(stderr, "downloading %s\n     -> %s\n", o.url ? o.url : "(no URL)",
                o.out ? o.out : "(no path)");
    if (llm_model_pull(&o, &err) < 0) {
        char buf[1024];
        fprintf(stderr, "echobot model pull: %s\n", echo_err_format(&err, buf, sizeof(buf)));
        rc = 1;
        goto out;
    }
    if (!(o.if_missing && existed))
        fprintf(stderr, "%s is ready%s\n", o.out,
                o.sha256 && o.sha256[0] ? " (SHA-256 verified)" : "");
    rc = 0;
out:
    config_free(cfg);
    return rc;
}

int cmd_model(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "info")) {
        if (argc > 2 && (!strcmp(argv[2], "--help") || !strcmp(argv[2], "-h"))) {
            usage(stdout);
            return 0;
        }
        return model_info(argc - 1, argv + 1);
    }
    if (!strcmp(argv[1], "pull")) return model_pull(argc - 1, argv + 1);
    fprintf(stderr, "echobot model: unknown action '%s' (info or pull)\n", argv[1]);
    usage(stderr);
    return 2;
}
