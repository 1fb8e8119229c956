/*
 * cmd_serve.c - `echobot serve`: loads the settings (flags > environment >
 * .env > defaults), builds the web application and serves it until SIGINT
 * or SIGTERM, then stops gracefully and exits 0.
 */
#include <stdio.h>
#include <string.h>

#include "core/core.h"
#include "web/app.h"

const char cmd_serve_summary[] = "run the web server (http://localhost:5000 by default)";

static void usage(FILE *out)
{
    fprintf(out, "usage: echobot serve [--host H] [--port P] [--instance DIR]\n"
                 "\n"
                 "Serves Echo until Ctrl-C (SIGINT) or SIGTERM, then finishes the requests in\n"
                 "flight and exits. Templates and static files are read from templates/ and\n"
                 "static/ in the working directory.\n"
                 "\n"
                 "  --host H        address to listen on (ECHO_HOST, default 127.0.0.1;\n"
                 "                  0.0.0.0 or :: accepts other machines)\n"
                 "  --port P        TCP port (ECHO_PORT, default 5000)\n"
                 "  --instance DIR  folder for the database, secret key and uploads\n"
                 "                  (ECHO_INSTANCE_DIR, default instance)\n"
                 "  --test-routes   also serve /_test/ routes used by the test suite\n"
                 "                  (refused when ECHO_ENV=production)\n"
                 "  -h, --help      this text\n"
                 "\n"
                 "Every other setting comes from the environment or .env; see\n"
                 "`echobot config example`.\n");
}

/* Accepts "--name value" and "--name=value". */
static const char *flag_value(int argc, char **argv, int *i, const char *name)
{
    size_t n = strlen(name);
    if (!strncmp(argv[*i], name, n) && argv[*i][n] == '=') return argv[*i] + n + 1;
    if (!strcmp(argv[*i], name)) {
        if (*i + 1 >= argc) return NULL;
        return argv[++*i];
    }
    return NULL;
}

int cmd_serve(int argc, char **argv)
{
    static const struct {
        const char *flag;
        const char *key;
    } flags[] = {
        {"--host", "ECHO_HOST"}, {"--port", "ECHO_PORT"}, {"--instance", "ECHO_INSTANCE_DIR"}};
    const char *values[3] = {NULL, NULL, NULL};
    bool test_routes = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(argv[i], "--test-routes")) {
            test_routes = true;
            continue;
        }
        bool known = false;
        for (size_t f = 0; f < 3 && !known; f++) {
            size_t n = strlen(flags[f].flag);
            if (strncmp(argv[i], flags[f].flag, n) || (argv[i][n] && argv[i][n] != '=')) continue;
            known = true;
            values[f] = flag_value(argc, argv, &i, flags[f].flag);
            if (!values[f]) {
                fprintf(stderr, "echobot serve: %s needs a value\n", flags[f].flag);
                return 2;
            }
        }
        if (!known) {
            fprintf(stderr, "echobot serve: unknown option '%s'\n\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }

    struct echo_err err = {0};
    char msg[1024];
    int rc = 1;
    web_app *app = NULL;
    config *cfg = config_load_default(&err);
    if (!cfg) goto fail;
    for (size_t f = 0; f < 3; f++)
        if (values[f] && config_set(cfg, flags[f].key, values[f], CONFIG_FLAG, &err) != 0)
            goto fail;
    if (config_finish(cfg, &err) != 0) goto fail;
    app = web_app_new(cfg, &err);
    if (!app) goto fail;
    if (test_routes && web_app_add_test_routes(app, &err) != 0) goto fail;
    if (web_app_run(app, &err) != 0) goto fail;
    rc = 0;
    goto out;
fail:
    fprintf(stderr, "echobot serve: %s\n", echo_err_format(&err, msg, sizeof(msg)));
out:
    web_app_free(app);
    config_free(cfg);
    return rc;
}
