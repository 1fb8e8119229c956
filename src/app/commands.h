/*
 * commands.h - the echobot subcommands. Each lives in src/app/cmd_<name>.c and
 * defines cmd_<name> (the entry point, given argv with argv[0] = "<name>") and
 * cmd_<name>_summary (one line for `echobot --help`). The table is generated
 * by CMake from the file names (src/app/CMakeLists.txt).
 */
#ifndef ECHO_APP_COMMANDS_H
#define ECHO_APP_COMMANDS_H

#define ECHO_COMMAND(name)                                                                         \
    int cmd_##name(int argc, char **argv);                                                         \
    extern const char cmd_##name##_summary[];
#include "commands.inc"
#undef ECHO_COMMAND

#endif
