/*
 * cmd_generate.c - `echobot generate`: one prompt in, the continuation
 * streamed to stdout as it is generated, timings on stderr. With --chat the
 * prompt is a user message in ChatML (as the web chat sends it); with
 * --prompt-ids / --print-ids it works on token ids, for checks against other
 * implementations.
 */
#include <stdlib.h>
#include <string.h>

#include "llm_cli.h"

const char cmd_generate_summary[] = "generate text from a prompt (streams to stdout)";

enum {
    OPT_PROMPT_IDS = LLM_OPT_FIRST_FREE,
    OPT_PRINT_IDS,
    OPT_CHAT,
    OPT_SYSTEM,
    OPT_SPECIAL,
    OPT_IGNORE_EOS,
    OPT_QUIET
};

static void usage(FILE *out)
{
    fprintf(
        out,
        "usage: echobot generate [options] -p TEXT\n"
        "       echobot generate [options] --prompt-ids ID,ID,... [--print-ids]\n"
        "Streams the model's continuation of the prompt to stdout; prints prompt and\n"
        "generation speed (tokens/s) to stderr.\n\n"
        "  -p, --prompt TEXT      the prompt (plain text; see --special and --chat)\n"
        "      --prompt-ids IDS   the prompt as token ids\n"
        "      --print-ids        print the generated ids instead of the text\n"
        "  -n, --max-tokens N     stop after N tokens (default 128; 0 = until the context "
        "ends)\n"
        "      --chat             wrap the prompt as a user message in the chat format\n"
        "      --system TEXT      system prompt for --chat (default: Qwen's)\n"
        "      --special          let <|im_start|> and other special tokens in -p count\n"
        "      --ignore-eos       keep generating past stop tokens\n"
        "  -q, --quiet            no timings on stderr\n" LLM_CLI_MODEL_HELP LLM_CLI_SAMPLING_HELP);
}

struct out_state {
    bool print_ids;
    int n;
};

static int on_piece(void *user, const char *text, size_t len)
{
    struct out_state *o = user;
    if (!o->print_ids) {
        fwrite(text, 1, len, stdout);
        fflush(stdout);
    }
    return 0;
}

static int on_token(void *user, int32_t id)
{
    struct out_state *o = user;
    if (o->print_ids) {
        printf("%s%d", o->n++ ? "," : "", (int)id);
        fflush(stdout);
    }
    return 0;
}

int cmd_generate(int argc, char **argv)
{
    static const struct option opts[] = {
        LLM_CLI_MODEL_OPTIONS,
        LLM_CLI_SAMPLING_OPTIONS,
        {"prompt", required_argument, NULL, 'p'},
        {"max-tokens", required_argument, NULL, 'n'},
        {"prompt-ids", required_argument, NULL, OPT_PROMPT_IDS},
        {"print-ids", no_argument, NULL, OPT_PRINT_IDS},
        {"chat", no_argument, NULL, OPT_CHAT},
        {"system", required_argument, NULL, OPT_SYSTEM},
        {"special", no_argument, NULL, OPT_SPECIAL},
        {"ignore-eos", no_argument, NULL, OPT_IGNORE_EOS},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct llm_cli cli;
    if (llm_cli_init(&cli, "generate") < 0) return 1;
    const char *prompt = NULL, *system = NULL, *prompt_ids = NULL;
    bool chat = false, special = false, ignore_eos = false, quiet = false;
    struct out_state out = {0};
    int max_tokens = 128, rc = 2, c;
    struct tok_ids ids;
    tok_ids_init(&ids);
    llm_model *m = NULL;
    llm_engine *e = NULL;
    llm_session *s = NULL;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:t:p:n:qh", opts, NULL)) != -1) {
        int r = llm_cli_option(&cli, c, optarg);
        if (r < 0) goto out;
        if (r > 0) continue;
        switch (c) {
        case 'p':
            prompt = optarg;
            break;
        case 'n': {
            int64_t v;
            if (parse_int64(optarg, 0, 1 << 24, &v) < 0) {
                fprintf(stderr, "echobot generate: -n needs a token count\n");
                goto out;
            }
            max_tokens = (int)v;
            break;
        }
        case OPT_PROMPT_IDS:
            prompt_ids = optarg;
            break;
        case OPT_PRINT_IDS:
            out.print_ids = true;
            break;
        case OPT_CHAT:
            chat = true;
            break;
        case OPT_SYSTEM:
            system = optarg;
            break;
        case OPT_SPECIAL:
            special = true;
            break;
        case OPT_IGNORE_EOS:
            ignore_eos = true;
            break;
        case 'q':
            quiet = true;
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
    if (optind < argc || (!prompt && !prompt_ids) || (prompt && prompt_ids)) {
        fprintf(stderr, "echobot generate: give exactly one of -p TEXT or --prompt-ids IDS\n");
        usage(stderr);
        goto out;
    }
    if (prompt_ids && llm_cli_parse_ids("generate", prompt_ids, &ids) < 0) goto out;
    rc = 1;
    m = llm_cli_load(&cli);
    if (!m) goto out;
    struct echo_err err;
    echo_err_clear(&err);
    const tokenizer *tok = llm_model_tokenizer(m);
    if (prompt && chat) {
        struct chat_message msgs[2];
        size_t n = 0;
        if (system) msgs[n++] = (struct chat_message){CHAT_ROLE_SYSTEM, system, 0};
        msgs[n++] = (struct chat_message){CHAT_ROLE_USER, prompt, 0};
        if (chat_encode(tok, msgs, n, NULL, &ids, &err) < 0) {
            llm_cli_error(&cli, &err);
            goto out;
        }
    } else if (prompt) {
        if (tok_encode(tok, prompt, strlen(prompt), special ? TOK_ENCODE_SPECIAL : 0, &ids, &err) <
            0) {
            llm_cli_error(&cli, &err);
            goto out;
        }
    }
    if (ids.len == 0) {
        fprintf(stderr, "echobot generate: the prompt is empty\n");
        goto out;
    }
    e = llm_engine_new(m, cli.threads, cli.ubatch, &err);
    struct llm_session_opts so = {.n_ctx = cli.ctx, .kv_type = cli.kv};
    if (!e || !(s = llm_session_new(m, &so, &err))) {
        llm_cli_error(&cli, &err);
        goto out;
    }
    struct llm_gen_params gp;
    llm_gen_params_default(&gp, m);
    llm_cli_sampling(&cli, m, &gp.sampling);
    gp.max_tokens = max_tokens;
    gp.ignore_stop = ignore_eos;
    struct llm_callbacks cb = {.on_piece = on_piece, .on_token = on_token, .user = &out};
    struct llm_gen_stats st;
    if (llm_generate(s, e, ids.ids, ids.len, &gp, &cb, &st, &err) < 0) {
        llm_cli_error(&cli, &err);
        goto out;
    }
    printf("\n");
    fflush(stdout);
    if (!quiet)
        fprintf(stderr,
                "prompt: %d tokens in %.3f s (%.1f tokens/s) | generation: %d tokens in %.3f s "
                "(%.1f tokens/s) | finish: %s | threads %d\n",
                st.prompt_tokens, st.prompt_seconds, st.prompt_tps, st.completion_tokens,
                st.gen_seconds, st.gen_tps, llm_finish_name(st.finish), llm_engine_threads(e));
    rc = 0;
out:
    llm_session_free(s);
    llm_engine_free(e);
    llm_model_free(m);
    tok_ids_deinit(&ids);
    return rc;
}
