/*
 * cmd_detokenize.c - `echobot detokenize`: token ids -> text with the model's
 * tokenizer (the reverse of `echobot tokenize --ids`).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "llm/tokenizer.h"

const char cmd_detokenize_summary[] = "turn token ids back into text (the model's tokenizer)";

static void usage(FILE *out)
{
    fprintf(out, "usage: echobot detokenize [-m MODEL] [--skip-special] [-n] ID...\n"
                 "\n"
                 "Prints the text of the token ids (raw bytes, as the model would emit them)\n"
                 "followed by a newline. IDs may be separate arguments or lists such as\n"
                 "\"9707,1879\" or \"9707 1879\".\n"
                 "\n"
                 "  -m, --model PATH    GGUF file (vocabulary-only is fine), Hugging Face\n"
                 "                      folder or tokenizer.json (default: ECHO_MODEL)\n"
                 "      --skip-special  leave control tokens (<|im_end|> ...) out\n"
                 "  -n                  no newline at the end\n"
                 "  -h, --help          this help\n");
}

/* Appends the ids of one argument ("1,2 3"); -1 with a message on bad input. */
static int parse_ids(const char *arg, struct tok_ids *out)
{
    const char *p = arg;
    while (*p) {
        if (*p == ',' || *p == ' ' || *p == '\t' || *p == '\n') {
            p++;
            continue;
        }
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < INT32_MIN || v > INT32_MAX ||
            (*end && *end != ',' && *end != ' ' && *end != '\t' && *end != '\n')) {
            fprintf(stderr, "echobot detokenize: '%s' is not a list of token ids\n", arg);
            return -1;
        }
        tok_ids_push(out, (int32_t)v);
        p = end;
    }
    return 0;
}

int cmd_detokenize(int argc, char **argv)
{
    static const struct option opts[] = {
        {"model", required_argument, NULL, 'm'},
        {"skip-special", no_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *model = NULL;
    unsigned flags = 0;
    bool newline = true;
    int c;
    optind = 1;
    /* "+" stops at the first non-option, so negative ids are not options. */
    while ((c = getopt_long(argc, argv, "+m:nh", opts, NULL)) != -1) {
        switch (c) {
        case 'm':
            model = optarg;
            break;
        case 's':
            flags |= TOK_DECODE_SKIP_SPECIAL;
            break;
        case 'n':
            newline = false;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return 2;
    }
    struct tok_ids ids;
    tok_ids_init(&ids);
    for (int i = optind; i < argc; i++) {
        if (parse_ids(argv[i], &ids) < 0) {
            tok_ids_deinit(&ids);
            return 2;
        }
    }
    struct echo_err err = {0};
    char buf[1024];
    char *path = NULL;
    if (model) {
        path = xstrdup(model);
    } else {
        config *cfg = config_load_default(&err);
        const char *m = cfg ? config_get(cfg, "ECHO_MODEL") : NULL;
        path = m ? xstrdup(m) : NULL;
        config_free(cfg);
        if (!path) {
            fprintf(stderr, "echobot detokenize: %s\n",
                    cfg ? "no model: pass -m PATH or set ECHO_MODEL"
                        : echo_err_format(&err, buf, sizeof(buf)));
            tok_ids_deinit(&ids);
            return 1;
        }
    }
    tokenizer *t = tok_load(path, &err);
    free(path);
    if (!t) {
        fprintf(stderr, "echobot detokenize: %s\n", echo_err_format(&err, buf, sizeof(buf)));
        tok_ids_deinit(&ids);
        return 1;
    }
    struct strbuf text;
    strbuf_init(&text);
    int rc = 0;
    if (tok_decode(t, ids.ids, ids.len, flags, &text, &err) < 0) {
        fprintf(stderr, "echobot detokenize: %s\n", err.msg);
        rc = 1;
    } else {
        fwrite(strbuf_cstr(&text), 1, text.len, stdout);
        if (newline) putchar('\n');
        if (fflush(stdout) != 0) rc = 1;
    }
    strbuf_deinit(&text);
    tok_ids_deinit(&ids);
    tok_free(t);
    return rc;
}
