/*
 * config.c - settings from flags, the environment, a .env file and defaults.
 *
 * Every setting is declared once in settings.def; this file turns that list
 * into a table, validates each value by its type (and a few by their meaning),
 * and answers look-ups. A .env file is parsed whole before anything of it is
 * applied, so a bad line never leaves a half-loaded configuration.
 */
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "core/core.h"

enum setting_type { ST_STR, ST_INT, ST_BOOL, ST_SECRET };

struct setting_def {
    const char *name;
    enum setting_type type;
    const char *def;
    const char *help;
};

static const struct setting_def defs[] = {
#define STR ST_STR
#define INT ST_INT
#define BOOL ST_BOOL
#define SECRET ST_SECRET
#define SETTING(name, type, def, help) {#name, type, def, help},
#include "core/settings.def"
#undef SETTING
#undef STR
#undef INT
#undef BOOL
#undef SECRET
};
enum { N_SETTINGS = sizeof(defs) / sizeof(defs[0]) };

struct config {
    char *values[N_SETTINGS];
    enum config_source sources[N_SETTINGS];
    char *instance_dir; /* resolved at config_finish */
};

static int find_setting(const char *key)
{
    for (int i = 0; i < N_SETTINGS; i++)
        if (!strcmp(defs[i].name, key))
            return i;
    return -1;
}

static int parse_bool(const char *v, bool *out)
{
    static const char *yes[] = {"1", "true", "yes", "on"};
    static const char *no[] = {"0", "false", "no", "off"};
    for (size_t i = 0; i < 4; i++) {
        if (!strcasecmp(v, yes[i])) {
            *out = true;
            return 0;
        }
        if (!strcasecmp(v, no[i])) {
            *out = false;
            return 0;
        }
    }
    return -1;
}

/* Checks one value against its type and, for a few settings, its meaning.
 * An empty value means "unset" for every type. */
static int validate(int idx, const char *value, struct echo_err *err)
{
    const struct setting_def *d = &defs[idx];
    if (!value[0])
        return 0;
    int64_t n;
    bool b;
    switch (d->type) {
    case ST_INT:
        if (parse_int64(value, INT64_MIN, INT64_MAX, &n) != 0) {
            echo_err_set(err, "%s must be a whole number, got '%s'", d->name, value);
            return -1;
        }
        if (!strcmp(d->name, "ECHO_PORT") && (n < 1 || n > 65535)) {
            echo_err_set(err, "ECHO_PORT must be between 1 and 65535, got %s", value);
            return -1;
        }
        if (n < 0) {
            echo_err_set(err, "%s must not be negative, got %s", d->name, value);
            return -1;
        }
        break;
    case ST_BOOL:
        if (parse_bool(value, &b) != 0) {
            echo_err_set(err, "%s must be 1/0, true/false, yes/no or on/off, got '%s'", d->name,
                         value);
            return -1;
        }
        break;
    case ST_STR:
        if (!strcmp(d->name, "ECHO_ENV") && strcmp(value, "development") &&
            strcmp(value, "production")) {
            echo_err_set(err, "ECHO_ENV must be development or production, got '%s'", value);
            return -1;
        }
        if (!strcmp(d->name, "ECHO_LOG_LEVEL") && log_level_parse(value) < 0) {
            echo_err_set(err, "ECHO_LOG_LEVEL must be debug, info, warn or error, got '%s'",
                         value);
            return -1;
        }
        break;
    case ST_SECRET:
        /* Only Echo's own signing key has a length rule; other secrets are
         * credentials issued by someone else (Google's older client secrets
         * have 24 characters). */
        if (!strcmp(d->name, "SECRET_KEY") && strlen(value) < 32) {
            echo_err_set(err, "%s must be at least 32 characters long", d->name);
            return -1;
        }
        break;
    }
    return 0;
}

config *config_new(void)
{
    return xcalloc(1, sizeof(config));
}

void config_free(config *c)
{
    if (!c)
        return;
    for (int i = 0; i < N_SETTINGS; i++)
        free(c->values[i]);
    free(c->instance_dir);
    free(c);
}

int config_set(config *c, const char *key, const char *value, enum config_source src,
               struct echo_err *err)
{
    int idx = find_setting(key);
    if (idx < 0) {
        echo_err_set(err, "unknown setting %s", key);
        return -1;
    }
    if (validate(idx, value, err) != 0)
        return -1;
    if (c->values[idx] && c->sources[idx] > src)
        return 0;
    free(c->values[idx]);
    c->values[idx] = xstrdup(value);
    c->sources[idx] = src;
    return 0;
}

/* ---- .env parsing ---- */

struct dotenv_entry {
    char *key;
    char *value;
    int line;
};

static bool is_key_char(char ch, bool first)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || ch == '_' ||
           (!first && ch >= '0' && ch <= '9');
}

/* Parses one line. Returns 1 with key/value set, 0 for a blank or comment
 * line, -1 on a malformed line (err says why). */
static int dotenv_parse_line(const char *line, char **key, char **value, struct echo_err *err)
{
    const char *p = line;
    while (*p == ' ' || *p == '\t')
        p++;
    if (!*p || *p == '#')
        return 0;
    if (!strncmp(p, "export", 6) && (p[6] == ' ' || p[6] == '\t')) {
        p += 6;
        while (*p == ' ' || *p == '\t')
            p++;
    }
    const char *k = p;
    if (!is_key_char(*p, true)) {
        echo_err_set(err, "expected KEY=VALUE");
        return -1;
    }
    while (is_key_char(*p, false))
        p++;
    size_t klen = (size_t)(p - k);
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p != '=') {
        echo_err_set(err, "expected KEY=VALUE: no '=' after %.*s", (int)klen, k);
        return -1;
    }
    p++;
    while (*p == ' ' || *p == '\t')
        p++;
    struct strbuf v;
    strbuf_init(&v);
    if (*p == '\'' || *p == '"') {
        char q = *p++;
        for (;;) {
            if (!*p) {
                echo_err_set(err, "%.*s: unterminated %s quote", (int)klen, k,
                             q == '"' ? "double" : "single");
                goto fail;
            }
            if (*p == q) {
                p++;
                break;
            }
            if (q == '"' && *p == '\\') {
                char e = p[1];
                char r = e == 'n' ? '\n' : e == 't' ? '\t' : e == 'r' ? '\r' : e;
                if (!strchr("ntr\\\"$", e) || !e) {
                    echo_err_set(err, "%.*s: unknown escape '\\%c' in double quotes", (int)klen, k,
                                 e ? e : ' ');
                    goto fail;
                }
                strbuf_putc(&v, r);
                p += 2;
                continue;
            }
            strbuf_putc(&v, *p++);
        }
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p && *p != '#') {
            echo_err_set(err, "%.*s: unexpected text after the closing quote", (int)klen, k);
            goto fail;
        }
    } else {
        /* Unquoted: up to an inline " #" comment, trailing blanks trimmed. */
        const char *start = p, *end = p;
        while (*p) {
            if (*p == '#' && p > start && (p[-1] == ' ' || p[-1] == '\t'))
                break;
            if (*p == '"' || *p == '\'') {
                echo_err_set(err, "%.*s: a quote inside an unquoted value", (int)klen, k);
                goto fail;
            }
            p++;
            if (p[-1] != ' ' && p[-1] != '\t')
                end = p;
        }
        strbuf_append(&v, start, (size_t)(end - start));
    }
    *key = xstrndup(k, klen);
    *value = strbuf_steal(&v);
    return 1;
fail:
    strbuf_deinit(&v);
    return -1;
}

int config_load_dotenv(config *c, const char *path, struct echo_err *err)
{
    struct stat st;
    if (stat(path, &st) != 0 && errno == ENOENT)
        return 0;
    size_t len;
    char *text = file_read_all(path, 1 << 20, &len, err);
    if (!text)
        return -1;
    if (memchr(text, 0, len) || !utf8_valid(text, len)) {
        echo_err_set_at(err, path, 0, 0, "not a UTF-8 text file");
        free(text);
        return -1;
    }
    struct dotenv_entry *entries = NULL;
    size_t n = 0;
    int rc = -1, lineno = 0;
    char *save = NULL;
    char *line = text;
    /* strtok_r would skip empty lines and so miscount; split by hand. */
    while (line) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = 0;
        lineno++;
        size_t ll = strlen(line);
        if (ll && line[ll - 1] == '\r')
            line[ll - 1] = 0;
        char *key = NULL, *value = NULL;
        struct echo_err lerr = {0};
        int r = dotenv_parse_line(line, &key, &value, &lerr);
        if (r < 0) {
            echo_err_set_at(err, path, lineno, 0, "%s", lerr.msg);
            goto out;
        }
        if (r == 1) {
            int idx = find_setting(key);
            if (idx < 0 && str_has_prefix(key, "ECHO_")) {
                echo_err_set_at(err, path, lineno, 0, "%s: unknown setting (see .env.example)",
                                key);
                free(key);
                free(value);
                goto out;
            }
            if (idx >= 0 && validate(idx, value, &lerr) != 0) {
                echo_err_set_at(err, path, lineno, 0, "%s", lerr.msg);
                free(key);
                free(value);
                goto out;
            }
            if (idx < 0) {
                log_warn("%s:%d: %s is not an Echo setting; ignored", path, lineno, key);
                free(key);
                free(value);
            } else {
                entries = xrealloc(entries, (n + 1) * sizeof(*entries));
                entries[n++] = (struct dotenv_entry){key, value, lineno};
            }
        }
        line = nl ? nl + 1 : NULL;
    }
    for (size_t i = 0; i < n; i++)
        config_set(c, entries[i].key, entries[i].value, CONFIG_DOTENV, NULL);
    rc = 0;
out:
    (void)save;
    for (size_t i = 0; i < n; i++) {
        free(entries[i].key);
        free(entries[i].value);
    }
    free(entries);
    free(text);
    return rc;
}

int config_load_environ(config *c, struct echo_err *err)
{
    for (int i = 0; i < N_SETTINGS; i++) {
        const char *v = getenv(defs[i].name);
        if (!v)
            continue;
        struct echo_err lerr = {0};
        if (config_set(c, defs[i].name, v, CONFIG_ENVIRON, &lerr) != 0) {
            echo_err_set(err, "environment: %s", lerr.msg);
            return -1;
        }
    }
    return 0;
}

/* ---- look-ups ---- */

const char *config_get(const config *c, const char *key)
{
    int idx = find_setting(key);
    if (idx < 0) {
        log_error("config_get: %s is not declared in settings.def", key);
        return NULL;
    }
    if (c && c->values[idx] && c->values[idx][0])
        return c->values[idx];
    return defs[idx].def;
}

int64_t config_get_int(const config *c, const char *key)
{
    int64_t n = 0;
    const char *v = config_get(c, key);
    if (v && parse_int64(v, INT64_MIN, INT64_MAX, &n) == 0)
        return n;
    return 0;
}

bool config_get_bool(const config *c, const char *key)
{
    bool b = false;
    const char *v = config_get(c, key);
    if (v && parse_bool(v, &b) == 0)
        return b;
    if (!v && !strcmp(key, "ECHO_AUTO_MIGRATE"))
        return !config_is_production(c);
    return false;
}

enum config_source config_source_of(const config *c, const char *key)
{
    int idx = find_setting(key);
    if (idx < 0 || !c->values[idx] || !c->values[idx][0])
        return CONFIG_DEFAULT;
    return c->sources[idx];
}

bool config_is_production(const config *c)
{
    const char *env = config_get(c, "ECHO_ENV");
    return env && !strcmp(env, "production");
}

char *config_instance_path(const config *c, const char *name)
{
    const char *dir = c->instance_dir ? c->instance_dir : config_get(c, "ECHO_INSTANCE_DIR");
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = xmalloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* ---- start-up ---- */

/* In development a key is generated once and kept in instance/secret_key, so
 * sessions and CSRF tokens survive restarts without anyone configuring one. */
static int load_or_create_secret(config *c, struct echo_err *err)
{
    char *path = config_instance_path(c, "secret_key");
    int rc = -1;
    size_t len = 0;
    struct echo_err rerr = {0};
    char *key = NULL;
    struct stat st;
    if (stat(path, &st) == 0) {
        key = file_read_all(path, 4096, &len, &rerr);
        if (!key) {
            echo_err_set(err, "%s", rerr.msg);
            goto out;
        }
        while (len && (key[len - 1] == '\n' || key[len - 1] == '\r'))
            key[--len] = 0;
        if (len < 32) {
            echo_err_set(err, "%s holds a key shorter than 32 characters; delete it to make a new one",
                         path);
            goto out;
        }
    } else {
        unsigned char raw[32];
        randombytes_buf(raw, sizeof(raw));
        key = xmalloc(65);
        sodium_bin2hex(key, 65, raw, sizeof(raw));
        sodium_memzero(raw, sizeof(raw));
        if (file_write_atomic(path, key, 64, 0600, err) != 0)
            goto out;
        log_info("generated a new secret key in %s", path);
    }
    free(c->values[find_setting("SECRET_KEY")]);
    c->values[find_setting("SECRET_KEY")] = key;
    c->sources[find_setting("SECRET_KEY")] = CONFIG_DEFAULT;
    key = NULL;
    rc = 0;
out:
    free(key);
    free(path);
    return rc;
}

int config_finish(config *c, struct echo_err *err)
{
    if (sodium_init() < 0) {
        echo_err_set(err, "libsodium failed to initialise");
        return -1;
    }
    log_set_level((enum log_level)log_level_parse(config_get(c, "ECHO_LOG_LEVEL")));
    free(c->instance_dir);
    c->instance_dir = xstrdup(config_get(c, "ECHO_INSTANCE_DIR"));
    if (dir_make_all(c->instance_dir, 0700, err) != 0)
        return -1;
    if (!config_get(c, "SECRET_KEY")) {
        if (config_is_production(c)) {
            echo_err_set(err, "SECRET_KEY must be set when ECHO_ENV=production (at least 32 "
                              "random characters, e.g. from `openssl rand -hex 32`)");
            return -1;
        }
        if (load_or_create_secret(c, err) != 0)
            return -1;
    }
    return 0;
}

config *config_load_default(struct echo_err *err)
{
    config *c = config_new();
    if (config_load_dotenv(c, ".env", err) != 0 || config_load_environ(c, err) != 0) {
        config_free(c);
        return NULL;
    }
    return c;
}

void config_write_example(struct strbuf *out)
{
    strbuf_puts(out, "# Echo settings. Copy to .env and edit; the environment and command-line\n"
                     "# flags override this file. Generated by `echobot config example` from\n"
                     "# src/core/settings.def.\n");
    for (int i = 0; i < N_SETTINGS; i++) {
        strbuf_printf(out, "\n# %s\n", defs[i].help);
        if (defs[i].def)
            strbuf_printf(out, "# %s=%s\n", defs[i].name, defs[i].def);
        else
            strbuf_printf(out, "# %s=\n", defs[i].name);
    }
}
