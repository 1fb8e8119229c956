/*
 * err.c - struct echo_err: the human-readable half of "errors are values".
 * Functions return a status; when a caller passes an echo_err they also get a
 * message, and parsers add the file:line:column of the problem.
 */
#include <stdio.h>
#include <string.h>

#include "core/core.h"

void echo_err_clear(struct echo_err *err)
{
    if (err)
        memset(err, 0, sizeof(*err));
}

void echo_err_set(struct echo_err *err, const char *fmt, ...)
{
    if (!err)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
}

void echo_err_set_at(struct echo_err *err, const char *file, int line, int col, const char *fmt,
                     ...)
{
    if (!err)
        return;
    snprintf(err->file, sizeof(err->file), "%s", file ? file : "");
    err->line = line;
    err->col = col;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
}

const char *echo_err_format(const struct echo_err *err, char *buf, size_t size)
{
    if (!buf || size == 0)
        return "";
    if (!err) {
        snprintf(buf, size, "unknown error");
        return buf;
    }
    const char *msg = err->msg[0] ? err->msg : "unknown error";
    if (err->file[0] && err->line > 0 && err->col > 0)
        snprintf(buf, size, "%s:%d:%d: %s", err->file, err->line, err->col, msg);
    else if (err->file[0] && err->line > 0)
        snprintf(buf, size, "%s:%d: %s", err->file, err->line, msg);
    else if (err->file[0])
        snprintf(buf, size, "%s: %s", err->file, msg);
    else
        snprintf(buf, size, "%s", msg);
    return buf;
}
