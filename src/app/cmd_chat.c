/*
 * cmd_chat.c - `echobot chat`: a terminal chat with the model. Each line of
 * input is a user message; the conversation is rendered in ChatML (fitted to
 * the context, oldest turns dropped first) and the answer streams to stdout.
 * One session is kept for the whole chat, so each turn only computes its new
 * tokens (the KV cache of the history is reused).
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "llm_cli.h"

const char cmd_chat_summary[] = "chat with the model in the terminal";

enum { OPT_SYSTEM = LLM_OPT_FIRST_FREE, OPT_QUIET };

static void usage(FILE *out)
{
    fprintf(out, "usage: echobot chat [options]\n"
                 "Reads one user message per line from stdin and streams the answers. Commands:\n"
                 "/reset forgets the conversation, /quit (or end of input) leaves.\n\n"
                 "      --system TEXT      system prompt (default: Qwen's)\n"
                 "  -n, --max-tokens N     longest answer in tokens (default 512)\n"
                 "  -q, --quiet            no statistics on stderr\n" LLM_CLI_MODEL_HELP
                     LLM_CLI_SAMPLING_HELP);
}

struct history {
    struct chat_message *msgs;
    size_t n, cap;
};

static void history_add(struct history *h, enum chat_role role, const char *text, size_t len)
{
    if (h->n == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 16;
        h->msgs = xrealloc(h->msgs, h->cap * sizeof(*h->msgs));
    }
    h->msgs[h->n++] = (struct chat_message){role, xstrndup(text, len), len};
}

static void history_clear(struct history *h, size_t keep)
{
    for (size_t i = keep; i < h->n; i++)
        free((char *)h->msgs[i].content);
    h->n = keep;
}

static int on_piece(void *user, const char *text, size_t len)
{
    strbuf_append(user, text, len);
    fwrite(text, 1, len, stdout);
    fflush(stdout);
    return 0;
}

int cmd_chat(int argc, char **argv)
{
    static const struct option opts[] = {
        LLM_CLI_MODEL_OPTIONS,
        LLM_CLI_SAMPLING_OPTIONS,
        {"system", required_argument, NULL, OPT_SYSTEM},
        {"max-tokens", required_argument, NULL, 'n'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct llm_cli cli;
    if (llm_cli_init(&cli, "chat") < 0) return 1;
    const char *system = NULL;
    bool quiet = false;
    int max_tokens = 512, rc = 2, c;
    struct history h = {0};
    struct strbuf answer;
    strbuf_init(&answer);
    struct tok_ids ids;
    tok_ids_init(&ids);
    char *line = NULL;
    size_t line_cap = 0;
    llm_model *m = NULL;
    llm_engine *e = NULL;
    llm_session *s = NULL;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:t:n:qh", opts, NULL)) != -1) {
        int r = llm_cli_option(&cli, c, optarg);
        if (r < 0) goto out;
        if (r > 0) continue;
        switch (c) {
        case OPT_SYSTEM:
            system = optarg;
            break;
        case 'n': {
            int64_t v;
            if (parse_int64(optarg, 1, 1 << 24, &v) < 0) {
                fprintf(stderr, "echobot chat: -n needs a token count\n");
                goto out;
            }
            max_tokens = (int)v;
            break;
        }
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
    if (optind < argc) {
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
    int n_ctx = llm_session_n_ctx(s);
    if (max_tokens >= n_ctx) max_tokens = n_ctx / 2;
    size_t keep = 0;
    if (system) {
        history_add(&h, CHAT_ROLE_SYSTEM, system, strlen(system));
        keep = 1;
    }
    struct llm_gen_params gp;
    llm_gen_params_default(&gp, m);
    llm_cli_sampling(&cli, m, &gp.sampling);
    gp.max_tokens = max_tokens;
    bool tty = isatty(0) && isatty(1);
    if (tty)
        printf("Chatting with %s (%s). /reset forgets, /quit leaves.\n",
               llm_model_get_info(m)->name, cli.model);
    for (;;) {
        if (tty) {
            printf("> ");
            fflush(stdout);
        }
        ssize_t len = getline(&line, &line_cap, stdin);
        if (len < 0) break;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        if (len == 0) continue;
        if (!strcmp(line, "/quit") || !strcmp(line, "/exit")) break;
        if (!strcmp(line, "/reset")) {
            history_clear(&h, keep);
            llm_session_reset(s);
            printf("(conversation forgotten)\n");
            continue;
        }
        history_add(&h, CHAT_ROLE_USER, line, (size_t)len);
        ids.len = 0;
        struct chat_fit_result fit;
        if (chat_fit(llm_model_tokenizer(m), h.msgs, h.n, (size_t)(n_ctx - max_tokens), NULL, &ids,
                     &fit, &err) < 0) {
            llm_cli_error(&cli, &err);
            history_clear(&h, h.n - 1);
            continue;
        }
        if (fit.n_dropped && !quiet)
            fprintf(stderr, "(%zu old messages no longer fit and were left out)\n", fit.n_dropped);
        answer.len = 0;
        if (answer.data) answer.data[0] = '\0';
        struct llm_callbacks cb = {.on_piece = on_piece, .user = &answer};
        struct llm_gen_stats st;
        if (llm_generate(s, e, ids.ids, ids.len, &gp, &cb, &st, &err) < 0) {
            llm_cli_error(&cli, &err);
            history_clear(&h, h.n - 1);
            continue;
        }
        printf("\n");
        fflush(stdout);
        history_add(&h, CHAT_ROLE_ASSISTANT, strbuf_cstr(&answer), answer.len);
        if (!quiet)
            fprintf(stderr,
                    "[prompt %d tokens (%d reused) %.1f tokens/s | answer %d tokens %.1f "
                    "tokens/s | %s]\n",
                    st.prompt_tokens, st.reused_tokens, st.prompt_tps, st.completion_tokens,
                    st.gen_tps, llm_finish_name(st.finish));
    }
    rc = 0;
out:
    free(line);
    history_clear(&h, 0);
    free(h.msgs);
    strbuf_deinit(&answer);
    tok_ids_deinit(&ids);
    llm_session_free(s);
    llm_engine_free(e);
    llm_model_free(m);
    return rc;
}
