/*
 * cmd_config.c - `echobot config example|check`: prints the .env.example text
 * generated from settings.def, or loads the configuration the way `serve`
 * does and shows where each value came from (secrets masked).
 */
#include <stdio.h>
#include <string.h>

#include "core/core.h"

const char cmd_config_summary[] = "show the settings (.env.example text, or the effective values)";

static const char *source_name(enum config_source s)
{
    static const char *names[] = {"default", ".env", "environment", "flag"};
    return names[s];
}

int cmd_config(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        printf("usage: echobot config example   print .env.example (every setting, documented)\n"
               "       echobot config check     load .env and the environment, validate, and\n"
               "                                print each setting with its source\n");
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "example")) {
        struct strbuf sb;
        strbuf_init(&sb);
        config_write_example(&sb);
        fputs(strbuf_cstr(&sb), stdout);
        strbuf_deinit(&sb);
        return 0;
    }
    if (!strcmp(argv[1], "check")) {
        struct echo_err err = {0};
        char buf[1024];
        config *c = config_load_default(&err);
        if (!c || config_finish(c, &err) != 0) {
            fprintf(stderr, "echobot: %s\n", echo_err_format(&err, buf, sizeof(buf)));
            config_free(c);
            return 1;
        }
        static const char *keys[] = {
#define SETTING(name, type, def, help) #name,
#include "core/settings.def"
#undef SETTING
        };
        for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
            const char *v = config_get(c, keys[i]);
            bool secret = strstr(keys[i], "SECRET") != NULL && strcmp(keys[i], "ECHO_MODEL_SHA256");
            printf("%-24s %-12s %s\n", keys[i], source_name(config_source_of(c, keys[i])),
                   !v ? "(unset)" : secret ? "********" : v);
        }
        config_free(c);
        return 0;
    }
    fprintf(stderr, "echobot config: unknown action '%s' (example or check)\n", argv[1]);
    return 2;
}
