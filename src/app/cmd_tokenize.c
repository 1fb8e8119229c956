/*
 * cmd_tokenize.c - `echobot tokenize`: text -> token ids with the model's
 * tokenizer, to inspect what the model sees and to compare with other
 * implementations (tests/e2e/test_tokenizer_reference.mjs batches texts
 * through --jsonl).
 *
 * The model may be a GGUF file (a vocabulary-only one is enough), a Hugging
 * Face folder or its tokenizer.json; only the tokenizer is loaded.
 */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/core.h"
#include "llm/tokenizer.h"

const char cmd_tokenize_summary[] = "show the token ids of a text (the model's tokenizer)";

static void usage(FILE *out)
{
    fprintf(out,
            "usage: echobot tokenize [-m MODEL] [--ids] [--special] [TEXT...]\n"
            "       echobot tokenize [-m MODEL] [--special] --jsonl FILE\n"
            "\n"
            "Encodes TEXT (several arguments are joined by spaces; none or '-' reads\n"
            "standard input) and prints one line per token: the id, a tab and the\n"
            "token's bytes as a quoted string (\\n, \\t, \\\", \\\\, \\xNN for bytes that are\n"
            "not complete UTF-8 within the token). Put -- before a TEXT that starts\n"
            "with '-'.\n"
            "\n"
            "  -m, --model PATH  GGUF file (vocabulary-only is fine), Hugging Face folder\n"
            "                    or tokenizer.json (default: ECHO_MODEL)\n"
            "      --ids         print only the ids, separated by spaces, on one line\n"
            "      --special     match special tokens such as <|im_start|> in the text;\n"
            "                    without it they are encoded as plain text\n"
            "      --jsonl FILE  batch mode: each line of FILE ('-' = stdin) is a JSON\n"
            "                    string; prints the ids of each on its own line\n"
            "  -h, --help        this help\n");
}

/* Prints the bytes of a token as a C-like quoted string. */
static void print_escaped(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    putchar('"');
    size_t i = 0;
    while (i < n) {
        unsigned char c = u[i];
        if (c >= 0x80) {
            /* Whole characters inside the token print as themselves. */
            size_t l = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
            if (l > 1 && i + l <= n && utf8_valid(s + i, l)) {
                fwrite(s + i, 1, l, stdout);
                i += l;
                continue;
            }
            printf("\\x%02x", c);
        } else if (c == '\n') {
            fputs("\\n", stdout);
        } else if (c == '\t') {
            fputs("\\t", stdout);
        } else if (c == '\r') {
            fputs("\\r", stdout);
        } else if (c == '"' || c == '\\') {
            printf("\\%c", c);
        } else if (c < 0x20 || c == 0x7f) {
            printf("\\x%02x", c);
        } else {
            putchar(c);
        }
        i++;
    }
    putchar('"');
}

static void print_ids(const struct tok_ids *ids)
{
    for (size_t i = 0; i < ids->len; i++)
        printf(i ? " %d" : "%d", ids->ids[i]);
    putchar('\n');
}

/* Reads a whole stream (stdin) into sb. */
static int read_stream(FILE *f, struct strbuf *sb)
{
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
        strbuf_append(sb, buf, n);
    return ferror(f) ? -1 : 0;
}

static int run_jsonl(const tokenizer *t, const char *path, unsigned flags)
{
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!f) {
        perror(path);
        return 1;
    }
    struct strbuf all;
    strbuf_init(&all);
    int rc = 0;
    if (read_stream(f, &all) < 0) {
        fprintf(stderr, "echobot tokenize: cannot read %s\n", path);
        rc = 1;
    }
    if (f != stdin) fclose(f);
    struct tok_ids ids;
    tok_ids_init(&ids);
    size_t pos = 0, line = 0;
    while (rc == 0 && pos < all.len) {
        const char *start = all.data + pos;
        const char *nl = memchr(start, '\n', all.len - pos);
        size_t len = nl ? (size_t)(nl - start) : all.len - pos;
        pos += len + 1;
        line++;
        if (len == 0 || (len == 1 && start[0] == '\r')) continue;
        json_error_t je;
        json_t *v = json_loadb(start, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
        if (!v || !json_is_string(v)) {
            fprintf(stderr, "echobot tokenize: %s:%zu: expected a JSON string%s%s\n", path, line,
                    v ? "" : ": ", v ? "" : je.text);
            json_decref(v);
            rc = 2;
            break;
        }
        struct echo_err err = {0};
        ids.len = 0;
        if (tok_encode(t, json_string_value(v), json_string_length(v), flags, &ids, &err) < 0) {
            fprintf(stderr, "echobot tokenize: %s:%zu: %s\n", path, line, err.msg);
            rc = 1;
        } else {
            print_ids(&ids);
        }
        json_decref(v);
    }
    tok_ids_deinit(&ids);
    strbuf_deinit(&all);
    return rc;
}

/* The model path: -m, else the ECHO_MODEL setting. Caller frees. */
static char *model_path(const char *flag)
{
    if (flag) return xstrdup(flag);
    struct echo_err err = {0};
    config *c = config_load_default(&err);
    if (!c) {
        char buf[1024];
        fprintf(stderr, "echobot: %s\n", echo_err_format(&err, buf, sizeof(buf)));
        return NULL;
    }
    const char *m = config_get(c, "ECHO_MODEL");
    char *r = m ? xstrdup(m) : NULL;
    config_free(c);
    if (!r) fprintf(stderr, "echobot: no model: pass -m PATH or set ECHO_MODEL\n");
    return r;
}

int cmd_tokenize(int argc, char **argv)
{
    static const struct option opts[] = {
        {"model", required_argument, NULL, 'm'}, {"ids", no_argument, NULL, 'i'},
        {"special", no_argument, NULL, 's'},     {"jsonl", required_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},        {NULL, 0, NULL, 0},
    };
    const char *model = NULL, *jsonl = NULL;
    bool ids_only = false;
    unsigned flags = 0;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm':
            model = optarg;
            break;
        case 'i':
            ids_only = true;
            break;
        case 's':
            flags |= TOK_ENCODE_SPECIAL;
            break;
        case 'j':
            jsonl = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (jsonl && optind < argc) {
        fprintf(stderr, "echobot tokenize: --jsonl takes no TEXT arguments\n");
        return 2;
    }
    char *path = model_path(model);
    if (!path) return 1;
    struct echo_err err = {0};
    tokenizer *t = tok_load(path, &err);
    if (!t) {
        char buf[1024];
        fprintf(stderr, "echobot tokenize: %s\n", echo_err_format(&err, buf, sizeof(buf)));
        free(path);
        return 1;
    }
    free(path);
    int rc = 0;
    if (jsonl) {
        rc = run_jsonl(t, jsonl, flags);
        tok_free(t);
        return rc;
    }

    struct strbuf text;
    strbuf_init(&text);
    if (optind >= argc || (optind == argc - 1 && !strcmp(argv[optind], "-"))) {
        if (read_stream(stdin, &text) < 0) {
            fprintf(stderr, "echobot tokenize: cannot read standard input\n");
            rc = 1;
        }
    } else {
        for (int i = optind; i < argc; i++) {
            if (i > optind) strbuf_putc(&text, ' ');
            strbuf_puts(&text, argv[i]);
        }
    }
    struct tok_ids ids;
    tok_ids_init(&ids);
    if (rc == 0 && tok_encode(t, strbuf_cstr(&text), text.len, flags, &ids, &err) < 0) {
        fprintf(stderr, "echobot tokenize: %s\n", err.msg);
        rc = 1;
    }
    if (rc == 0 && ids_only) {
        print_ids(&ids);
    } else if (rc == 0) {
        for (size_t i = 0; i < ids.len; i++) {
            size_t len = 0;
            const char *b = tok_token_bytes(t, ids.ids[i], &len);
            printf("%d\t", ids.ids[i]);
            print_escaped(b, len);
            putchar('\n');
        }
    }
    tok_ids_deinit(&ids);
    strbuf_deinit(&text);
    tok_free(t);
    if (fflush(stdout) != 0) rc = 1;
    return rc;
}
