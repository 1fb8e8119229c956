/*
 * main.c - the echobot binary: dispatches to a subcommand (serve, db, user,
 * tokenize, generate, ...). Each subcommand parses its own flags and prints
 * its own --help; this file only knows their names and one-line summaries.
 */
#include <stdio.h>
#include <string.h>

#include "commands.h"

struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
};

static const struct command commands[] = {
#define ECHO_COMMAND(name) {#name, cmd_##name, cmd_##name##_summary},
#include "commands.inc"
#undef ECHO_COMMAND
};

static void usage(FILE *out)
{
    fprintf(out, "usage: echobot <command> [options]\n\n"
                 "Echo: a self-hosted AI chatbot (Qwen2.5 on the CPU, in C).\n\ncommands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(out, "  %-12s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\n'echobot <command> --help' describes a command.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].run(argc - 1, argv + 1);
    }
    fprintf(stderr, "echobot: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
