/*
 * core.h - the bottom layer every other layer links: error values, logging,
 * arenas, growable strings, small file and time helpers, and configuration.
 *
 * Nothing here knows about HTTP, the database or the model. Every function is
 * safe to call from any thread unless its comment says otherwise.
 */
#ifndef ECHO_CORE_H
#define ECHO_CORE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#if defined(__GNUC__)
#define ECHO_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define ECHO_PRINTF(a, b)
#endif

/* ---- errors ------------------------------------------------------------ */

/*
 * A human-readable error filled by functions that can fail. Callers pass NULL
 * when they do not care. `file`, `line` and `col` are set by parsers (line and
 * col are 1-based, 0 when unknown).
 */
struct echo_err {
    char msg[512];
    char file[256];
    int line;
    int col;
};

void echo_err_clear(struct echo_err *err);
/* Sets err->msg from a printf format; a NULL err is ignored. */
void echo_err_set(struct echo_err *err, const char *fmt, ...) ECHO_PRINTF(2, 3);
/* Like echo_err_set, and records where in which file the problem is. */
void echo_err_set_at(struct echo_err *err, const char *file, int line, int col, const char *fmt,
                     ...) ECHO_PRINTF(5, 6);
/* Formats "file:line:col: msg" (parts that are unset are left out) into buf. */
const char *echo_err_format(const struct echo_err *err, char *buf, size_t size);

/* ---- logging ----------------------------------------------------------- */

enum log_level { LOG_DEBUG = 0, LOG_INFO = 1, LOG_WARN = 2, LOG_ERROR = 3 };

/* Lines go to stderr, one write(2) per line so threads do not interleave. */
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Parses "debug", "info", "warn"/"warning", "error"; -1 on anything else. */
int log_level_parse(const char *name);
void log_msg(enum log_level level, const char *fmt, ...) ECHO_PRINTF(2, 3);
void log_vmsg(enum log_level level, const char *fmt, va_list ap);
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

/* ---- memory ------------------------------------------------------------ */

/* Allocators that abort on exhaustion: running out of memory is not input. */
void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

/*
 * An arena hands out memory that is freed all at once by arena_free (used for
 * request-scoped data). Not thread-safe: one arena belongs to one owner.
 */
typedef struct arena arena;
arena *arena_new(size_t block_size);
void *arena_alloc(arena *a, size_t n);  /* 16-byte aligned, zeroed */
char *arena_strdup(arena *a, const char *s);
char *arena_strndup(arena *a, const char *s, size_t n);
char *arena_printf(arena *a, const char *fmt, ...) ECHO_PRINTF(2, 3);
void arena_free(arena *a);

/* A growable byte string, always NUL-terminated (data may be NULL when empty). */
struct strbuf {
    char *data;
    size_t len;
    size_t cap;
};
void strbuf_init(struct strbuf *sb);
void strbuf_deinit(struct strbuf *sb);
void strbuf_reserve(struct strbuf *sb, size_t extra);
void strbuf_append(struct strbuf *sb, const void *data, size_t n);
void strbuf_puts(struct strbuf *sb, const char *s);
void strbuf_putc(struct strbuf *sb, char c);
void strbuf_printf(struct strbuf *sb, const char *fmt, ...) ECHO_PRINTF(2, 3);
/* Hands the buffer to the caller (free with free()); sb is left empty. */
char *strbuf_steal(struct strbuf *sb);
/* Returns data, or "" when nothing was appended yet. */
const char *strbuf_cstr(const struct strbuf *sb);

/* ---- files and time ---------------------------------------------------- */

/* Reads a whole file; the result is NUL-terminated (*len excludes the NUL).
 * Returns NULL and fills err when the file cannot be read or exceeds max_size. */
char *file_read_all(const char *path, size_t max_size, size_t *len, struct echo_err *err);
/* Writes atomically: a temporary file in the same folder, fsync, rename. */
int file_write_atomic(const char *path, const void *data, size_t len, int mode,
                      struct echo_err *err);
/* mkdir -p with the given mode for folders it creates. */
int dir_make_all(const char *path, int mode, struct echo_err *err);

/* Monotonic clock in nanoseconds / wall clock in seconds since the epoch. */
uint64_t time_mono_ns(void);
double time_now_s(void);
/* Days since 1970-01-01 of the proleptic Gregorian date y-m-d (m 1-12,
 * d 1-31; not validated), exact for any year: H. Hinnant's days_from_civil. */
int64_t time_days_from_civil(int64_t y, int m, int d);

/* ---- text -------------------------------------------------------------- */

/* True when the n bytes are well-formed UTF-8 (no overlongs, no surrogates). */
bool utf8_valid(const char *s, size_t n);
/* Appends code point cp (at most U+10FFFF, not a surrogate: the caller's
 * promise) to sb as UTF-8. */
void strbuf_put_utf8(struct strbuf *sb, uint32_t cp);
/* Number of code points in a valid UTF-8 string. */
size_t utf8_length(const char *s, size_t n);
/* Constant-time comparison of two byte strings of equal length. */
bool mem_equal_ct(const void *a, const void *b, size_t n);
/* Case-insensitive ASCII comparison. */
int str_casecmp(const char *a, const char *b);
bool str_has_prefix(const char *s, const char *prefix);
/* Parses a whole string as a decimal integer in [min, max]; 0 ok, -1 otherwise. */
int parse_int64(const char *s, int64_t min, int64_t max, int64_t *out);

/* ---- configuration ---------------------------------------------------- */

/*
 * Settings come from, highest first: flags, the environment, a .env file in
 * the working directory, the defaults of settings.def. Every known setting is
 * listed in settings.def; unknown ECHO_* keys in .env are reported as errors
 * (a typo must not be silently ignored).
 *
 * A config is built once at start-up (single thread) and read-only after
 * config_finish; reads are then safe from any thread.
 */
enum config_source { CONFIG_DEFAULT = 0, CONFIG_DOTENV = 1, CONFIG_ENVIRON = 2, CONFIG_FLAG = 3 };

typedef struct config config;

config *config_new(void);
void config_free(config *c);
/* Reads KEY=VALUE lines (# comments, 'single' / "double" quotes with \n \t \\ \" \$
 * escapes in double quotes, an optional `export ` prefix). A missing file is
 * not an error. A malformed line names file:line and the key, and nothing of
 * the file is applied. */
int config_load_dotenv(config *c, const char *path, struct echo_err *err);
/* Takes every known setting present in the process environment. */
int config_load_environ(config *c, struct echo_err *err);
/* Sets one setting from the given source; a lower source never overrides a higher one.
 * An unknown key or a value of the wrong type is an error. */
int config_set(config *c, const char *key, const char *value, enum config_source src,
               struct echo_err *err);
/* Validates cross-setting rules and resolves derived values (the instance
 * folder is created, SECRET_KEY is generated into instance/secret_key in
 * development). */
int config_finish(config *c, struct echo_err *err);

/* The value of a setting (its default when unset); NULL when unset without default.
 * Asking for a key that settings.def does not list is a programmer error. */
const char *config_get(const config *c, const char *key);
int64_t config_get_int(const config *c, const char *key);
bool config_get_bool(const config *c, const char *key);
enum config_source config_source_of(const config *c, const char *key);
bool config_is_production(const config *c);
/* Path of a file inside the instance folder (caller frees). */
char *config_instance_path(const config *c, const char *name);

/* The standard start-up of a command: .env in the working directory, then the
 * environment. The caller applies its flags with config_set(..., CONFIG_FLAG)
 * and calls config_finish. NULL on error (err filled). */
config *config_load_default(struct echo_err *err);
/* Writes the commented .env.example text for every setting. */
void config_write_example(struct strbuf *out);

#endif
