/*
 * llm_cli.c - the flags and helpers the engine commands share (llm_cli.h).
 */
#include "llm_cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int parse_int(const char *cmd, const char *flag, const char *arg, int64_t min, int64_t max,
                     int64_t *out)
{
    if (parse_int64(arg, min, max, out) < 0) {
        fprintf(stderr, "echobot %s: %s needs an integer in [%lld, %lld], not '%s'\n", cmd, flag,
                (long long)min, (long long)max, arg);
        return -1;
    }
    return 0;
}

static int parse_float(const char *cmd, const char *flag, const char *arg, double min, double max,
                       float *out)
{
    char *end;
    errno = 0;
    double v = strtod(arg, &end);
    if (errno || end == arg || *end || !(v >= min && v <= max)) {
        fprintf(stderr, "echobot %s: %s needs a number in [%g, %g], not '%s'\n", cmd, flag, min,
                max, arg);
        return -1;
    }
    *out = (float)v;
    return 0;
}

int llm_cli_init(struct llm_cli *c, const char *cmd)
{
    memset(c, 0, sizeof(*c));
    c->cmd = cmd;
    llm_sampling_default(&c->sampling);
    struct echo_err err;
    echo_err_clear(&err);
    config *cfg = config_load_default(&err);
    if (!cfg) {
        char buf[1024];
        fprintf(stderr, "echobot %s: %s\n", cmd, echo_err_format(&err, buf, sizeof(buf)));
        return -1;
    }
    const char *model = config_get(cfg, "ECHO_MODEL");
    static char model_buf[4096];
    snprintf(model_buf, sizeof(model_buf), "%s", model ? model : "");
    c->model = model_buf[0] ? model_buf : NULL;
    int64_t v = config_get_int(cfg, "ECHO_CONTEXT");
    c->ctx = v > 0 && v < (1 << 22) ? (int)v : 0;
    v = config_get_int(cfg, "ECHO_MODEL_THREADS");
    c->threads = v > 0 && v <= 256 ? (int)v : 0;
    config_free(cfg);
    return 0;
}

int llm_cli_option(struct llm_cli *c, int opt, const char *arg)
{
    int64_t v;
    switch (opt) {
    case 'm':
        c->model = arg;
        return 1;
    case 't':
        if (parse_int(c->cmd, "--threads", arg, 0, 256, &v) < 0) return -1;
        c->threads = (int)v;
        return 1;
    case LLM_OPT_CTX:
        if (parse_int(c->cmd, "--ctx", arg, 1, 1 << 22, &v) < 0) return -1;
        c->ctx = (int)v;
        return 1;
    case LLM_OPT_UBATCH:
        if (parse_int(c->cmd, "--ubatch", arg, 1, 65536, &v) < 0) return -1;
        c->ubatch = (int)v;
        return 1;
    case LLM_OPT_DTYPE:
        if (llm_dtype_parse(arg, &c->dtype) < 0) {
            fprintf(stderr, "echobot %s: --dtype must be q8_0, q4_0, bf16, f16 or f32\n", c->cmd);
            return -1;
        }
        return 1;
    case LLM_OPT_KV:
        if (!strcmp(arg, "f16")) {
            c->kv = LLM_KV_F16;
        } else if (!strcmp(arg, "f32")) {
            c->kv = LLM_KV_F32;
        } else {
            fprintf(stderr, "echobot %s: --kv must be f16 or f32\n", c->cmd);
            return -1;
        }
        return 1;
    case LLM_OPT_NO_REPACK:
        c->no_repack = true;
        return 1;
    case LLM_OPT_TEMP:
        c->set_temp = true;
        return parse_float(c->cmd, "--temp", arg, 0, 100, &c->sampling.temperature) < 0 ? -1 : 1;
    case LLM_OPT_TOP_K:
        if (parse_int(c->cmd, "--top-k", arg, 0, 1 << 24, &v) < 0) return -1;
        c->sampling.top_k = (int)v;
        c->set_top_k = true;
        return 1;
    case LLM_OPT_TOP_P:
        c->set_top_p = true;
        return parse_float(c->cmd, "--top-p", arg, 0, 1, &c->sampling.top_p) < 0 ? -1 : 1;
    case LLM_OPT_MIN_P:
        c->set_min_p = true;
        return parse_float(c->cmd, "--min-p", arg, 0, 1, &c->sampling.min_p) < 0 ? -1 : 1;
    case LLM_OPT_REPEAT_PENALTY:
        c->set_penalty = true;
        return parse_float(c->cmd, "--repeat-penalty", arg, 0.01, 100,
                           &c->sampling.repeat_penalty) < 0
                   ? -1
                   : 1;
    case LLM_OPT_REPEAT_LAST_N:
        if (parse_int(c->cmd, "--repeat-last-n", arg, -1, 1 << 24, &v) < 0) return -1;
        c->sampling.repeat_last_n = (int)v;
        c->set_last_n = true;
        return 1;
    case LLM_OPT_SEED:
        if (parse_int(c->cmd, "--seed", arg, 0, INT64_MAX, &v) < 0) return -1;
        c->sampling.seed = (uint64_t)v;
        c->set_seed = true;
        return 1;
    default:
        return 0;
    }
}

void llm_cli_error(const struct llm_cli *c, const struct echo_err *err)
{
    char buf[1024];
    fprintf(stderr, "echobot %s: %s\n", c->cmd, echo_err_format(err, buf, sizeof(buf)));
}

llm_model *llm_cli_load(const struct llm_cli *c)
{
    if (!c->model) {
        fprintf(stderr, "echobot %s: no model: give -m PATH or set ECHO_MODEL\n", c->cmd);
        return NULL;
    }
    struct llm_load_opts o = {.dtype = c->dtype, .max_context = c->ctx, .no_repack = c->no_repack};
    struct echo_err err;
    echo_err_clear(&err);
    llm_model *m = llm_model_load(c->model, &o, &err);
    if (!m) {
        llm_cli_error(c, &err);
        if (access(c->model, F_OK) != 0)
            fprintf(stderr, "(download the default model with: echobot model pull)\n");
    }
    return m;
}

void llm_cli_sampling(const struct llm_cli *c, const llm_model *m, struct llm_sampling *out)
{
    *out = *llm_model_sampling(m);
    if (c->set_temp) out->temperature = c->sampling.temperature;
    if (c->set_top_k) out->top_k = c->sampling.top_k;
    if (c->set_top_p) out->top_p = c->sampling.top_p;
    if (c->set_min_p) out->min_p = c->sampling.min_p;
    if (c->set_penalty)
        out->repeat_penalty = c->sampling.repeat_penalty;
    else if (c->set_temp && c->sampling.temperature <= 0.0f)
        out->repeat_penalty = 1.0f; /* --temp 0 is plain greedy decoding */
    if (c->set_last_n) out->repeat_last_n = c->sampling.repeat_last_n;
    if (c->set_seed) out->seed = c->sampling.seed;
}

int llm_cli_parse_ids(const char *cmd, const char *text, struct tok_ids *out)
{
    const char *p = text;
    while (*p) {
        while (*p == ',' || *p == ' ' || *p == '\t' || *p == '\n')
            p++;
        if (!*p) break;
        char *end;
        errno = 0;
        long long v = strtoll(p, &end, 10);
        if (end == p || errno || v < 0 || v > INT32_MAX ||
            (*end && *end != ',' && *end != ' ' && *end != '\t' && *end != '\n')) {
            fprintf(stderr, "echobot %s: bad token id near '%.20s'\n", cmd, p);
            return -1;
        }
        tok_ids_push(out, (int32_t)v);
        p = end;
    }
    return 0;
}
