/*
 * env.c - the template environment: the table of compiled templates, the
 * interned names the compiled form points to, globals, custom filters, and
 * loading a folder of templates at start-up.
 *
 * Names of variables, attributes and blocks are interned once per
 * environment so that the renderer compares pointers instead of strings.
 * Everything here runs during the single-threaded set-up phase except the
 * lookups (tmpl_env_find, tmpl_env_has), which only read.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tmpl/tmpl_int.h"

#define LOAD_MAX_DEPTH 32

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* ---- interning ---- */

static void sym_grow(tmpl_env *env)
{
    size_t cap = env->sym_cap ? env->sym_cap * 2 : 256;
    const char **syms = xcalloc(cap, sizeof(*syms));
    for (size_t i = 0; i < env->sym_cap; i++) {
        const char *s = env->syms[i];
        if (!s) continue;
        size_t j = hash_bytes(s, strlen(s)) & (cap - 1);
        while (syms[j])
            j = (j + 1) & (cap - 1);
        syms[j] = s;
    }
    free(env->syms);
    env->syms = syms;
    env->sym_cap = cap;
}

const char *tmpl_intern(tmpl_env *env, const char *s, size_t n)
{
    if ((env->nsyms + 1) * 2 > env->sym_cap) sym_grow(env);
    size_t j = hash_bytes(s, n) & (env->sym_cap - 1);
    while (env->syms[j]) {
        const char *t = env->syms[j];
        if (strlen(t) == n && memcmp(t, s, n) == 0) return t;
        j = (j + 1) & (env->sym_cap - 1);
    }
    const char *t = arena_strndup(env->arena, s, n);
    env->syms[j] = t;
    env->nsyms++;
    return t;
}

/* ---- template table ---- */

static void template_free(struct template *t)
{
    if (!t) return;
    arena_free(t->arena);
    free(t);
}

static void table_insert(tmpl_env *env, struct template *t)
{
    if ((env->ntmpls + 1) * 2 > env->tmpl_cap) {
        size_t cap = env->tmpl_cap ? env->tmpl_cap * 2 : 64;
        struct template **tab = xcalloc(cap, sizeof(*tab));
        for (size_t i = 0; i < env->tmpl_cap; i++) {
            struct template *u = env->tmpls[i];
            if (!u) continue;
            size_t j = hash_bytes(u->name, strlen(u->name)) & (cap - 1);
            while (tab[j])
                j = (j + 1) & (cap - 1);
            tab[j] = u;
        }
        free(env->tmpls);
        env->tmpls = tab;
        env->tmpl_cap = cap;
    }
    size_t j = hash_bytes(t->name, strlen(t->name)) & (env->tmpl_cap - 1);
    while (env->tmpls[j]) {
        if (!strcmp(env->tmpls[j]->name, t->name)) {
            template_free(env->tmpls[j]);
            env->tmpls[j] = t;
            return;
        }
        j = (j + 1) & (env->tmpl_cap - 1);
    }
    env->tmpls[j] = t;
    env->ntmpls++;
}

static const struct template *table_find(const tmpl_env *env, const char *name, size_t n)
{
    if (!env->tmpl_cap) return NULL;
    size_t j = hash_bytes(name, n) & (env->tmpl_cap - 1);
    while (env->tmpls[j]) {
        const char *t = env->tmpls[j]->name;
        if (strlen(t) == n && memcmp(t, name, n) == 0) return env->tmpls[j];
        j = (j + 1) & (env->tmpl_cap - 1);
    }
    return NULL;
}

/*
 * Normalizes a template name as Jinja's loaders do: "/" separated, empty and
 * "." segments dropped; ".." is refused (a template name never leaves the
 * template folder). Returns the length written to buf, or -1.
 */
static long normalize_name(const char *name, size_t n, char *buf, size_t size)
{
    size_t out = 0, i = 0;
    while (i < n) {
        size_t j = i;
        while (j < n && name[j] != '/')
            j++;
        size_t seg = j - i;
        if (seg == 2 && name[i] == '.' && name[i + 1] == '.') return -1;
        if (seg > 0 && !(seg == 1 && name[i] == '.')) {
            if (out + seg + 1 >= size) return -1;
            if (out) buf[out++] = '/';
            memcpy(buf + out, name + i, seg);
            out += seg;
        }
        i = j + 1;
    }
    buf[out] = 0;
    return (long)out;
}

const struct template *tmpl_env_find(const tmpl_env *env, const char *name, size_t n)
{
    const struct template *t = table_find(env, name, n);
    if (t) return t;
    char buf[1024];
    long m = normalize_name(name, n, buf, sizeof(buf));
    if (m <= 0) return NULL;
    return table_find(env, buf, (size_t)m);
}

bool tmpl_env_has(const tmpl_env *env, const char *name)
{
    return env && name && tmpl_env_find(env, name, strlen(name)) != NULL;
}

size_t tmpl_env_count(const tmpl_env *env)
{
    return env ? env->ntmpls : 0;
}

/* ---- errors ---- */

void tmpl_syntax_error(const struct template *t, int line, int col, struct echo_err *err,
                       const char *fmt, ...)
{
    if (!err) return;
    char what[240];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);

    /* Find the source line and show at most ~120 bytes around the column,
     * cut at code point boundaries, with a caret under the column. */
    const char *s = t->src ? t->src : "";
    size_t n = t->src ? t->len : 0, i = 0;
    for (int l = 1; l < line && i < n; i++)
        if (s[i] == '\n') l++;
    size_t start = i, end = i;
    while (end < n && s[end] != '\n')
        end++;
    size_t colb = start;
    for (int c = 1; c < col && colb < end; c++)
        tmpl_utf8_next(s, end, &colb);
    size_t from = start;
    while (colb - from > 80) {
        tmpl_utf8_next(s, end, &from);
    }
    size_t to = colb;
    while (to < end && to - from < 120)
        tmpl_utf8_next(s, end, &to);

    char shown[200], caret[200];
    size_t k = 0, m = 0;
    if (from > start) {
        memcpy(shown, "...", 3);
        memcpy(caret, "   ", 3);
        k = m = 3;
    }
    for (size_t p = from; p < to && k < sizeof(shown) - 5;) {
        size_t q = p;
        tmpl_utf8_next(s, to, &q);
        if (p < colb && m < sizeof(caret) - 2) caret[m++] = s[p] == '\t' ? '\t' : ' ';
        while (p < q)
            shown[k++] = s[p++];
    }
    shown[k] = 0;
    caret[m++] = '^';
    caret[m] = 0;
    echo_err_set_at(err, t->name, line, col, "%s\n    %s\n    %s", what, shown, caret);
}

/* ---- environment ---- */

tmpl_env *tmpl_env_new(void)
{
    /* Seeds jansson's hash function now, in the single-threaded set-up, and
     * not lazily from the first render thread. */
    json_object_seed(0);
    tmpl_env *env = xcalloc(1, sizeof(*env));
    env->arena = arena_new(16384);
    env->max_bytes = TMPL_DEFAULT_MAX_BYTES;
    env->max_steps = TMPL_DEFAULT_MAX_STEPS;
    env->sym_loop = tmpl_intern(env, "loop", 4);
    env->sym_caller = tmpl_intern(env, "caller", 6);
    env->sym_varargs = tmpl_intern(env, "varargs", 7);
    env->sym_kwargs = tmpl_intern(env, "kwargs", 6);
    return env;
}

void tmpl_env_free(tmpl_env *env)
{
    if (!env) return;
    for (size_t i = 0; i < env->tmpl_cap; i++)
        template_free(env->tmpls[i]);
    free(env->tmpls);
    free(env->syms);
    for (size_t i = 0; i < env->nglobals; i++)
        json_decref(env->globals[i].value);
    free(env->globals);
    for (size_t i = 0; i < env->nfilters; i++)
        free(env->filters[i].name);
    free(env->filters);
    arena_free(env->arena);
    free(env);
}

void tmpl_env_set_limits(tmpl_env *env, size_t max_bytes, uint64_t max_loop_iterations)
{
    if (!env) return;
    if (max_bytes) env->max_bytes = max_bytes;
    if (max_loop_iterations) env->max_steps = max_loop_iterations;
}

void tmpl_env_set_global(tmpl_env *env, const char *name, json_t *value)
{
    if (!env || !name || !value) return;
    const char *sym = tmpl_intern(env, name, strlen(name));
    json_incref(value);
    for (size_t i = 0; i < env->nglobals; i++) {
        if (env->globals[i].name == sym) {
            json_decref(env->globals[i].value);
            env->globals[i].value = value;
            env->globals[i].tv = tmpl_tv_from_json(value);
            return;
        }
    }
    env->globals = xrealloc(env->globals, (env->nglobals + 1) * sizeof(*env->globals));
    env->globals[env->nglobals].name = sym;
    env->globals[env->nglobals].value = value;
    env->globals[env->nglobals].tv = tmpl_tv_from_json(value);
    env->nglobals++;
}

void tmpl_env_add_filter(tmpl_env *env, const char *name, tmpl_filter_fn fn)
{
    if (!env || !name || !fn) return;
    for (size_t i = 0; i < env->nfilters; i++) {
        if (!strcmp(env->filters[i].name, name)) {
            env->filters[i].fn = fn;
            return;
        }
    }
    env->filters = xrealloc(env->filters, (env->nfilters + 1) * sizeof(*env->filters));
    env->filters[env->nfilters].name = xstrdup(name);
    env->filters[env->nfilters].fn = fn;
    env->nfilters++;
}

tmpl_filter_fn tmpl_env_custom_filter(const tmpl_env *env, const char *name)
{
    for (size_t i = 0; i < env->nfilters; i++)
        if (!strcmp(env->filters[i].name, name)) return env->filters[i].fn;
    return NULL;
}

/*
 * Copies the source with Jinja's lexer normalization: "\r\n" and "\r" become
 * "\n", and a single trailing newline is dropped (keep_trailing_newline is
 * off by default in Jinja).
 */
static void normalize_source(struct template *t, const char *src, size_t len)
{
    char *d = arena_alloc(t->arena, len + 1);
    size_t k = 0;
    for (size_t i = 0; i < len; i++) {
        if (src[i] == '\r') {
            d[k++] = '\n';
            if (i + 1 < len && src[i + 1] == '\n') i++;
        } else {
            d[k++] = src[i];
        }
    }
    if (k > 0 && d[k - 1] == '\n') k--;
    d[k] = 0;
    t->src = d;
    t->len = k;
}

int tmpl_env_add(tmpl_env *env, const char *name, const char *source, size_t len,
                 struct echo_err *err)
{
    if (!env || !name || (!source && len)) {
        echo_err_set(err, "tmpl_env_add: invalid arguments");
        return TMPL_ERR_SYNTAX;
    }
    char norm[1024];
    long m = normalize_name(name, strlen(name), norm, sizeof(norm));
    if (m <= 0) {
        echo_err_set_at(err, name, 0, 0, "invalid template name (empty, \"..\" or too long)");
        return TMPL_ERR_SYNTAX;
    }
    struct template *t = xcalloc(1, sizeof(*t));
    t->arena = arena_new(32768);
    t->name = arena_strdup(t->arena, norm);
    if (len > TMPL_MAX_SOURCE) {
        echo_err_set_at(err, name, 0, 0, "template is larger than %u bytes", TMPL_MAX_SOURCE);
        goto fail;
    }
    /* Find the exact position of bad bytes so the author can fix them. */
    if (memchr(source ? source : "", 0, len) || !utf8_valid(source ? source : "", len)) {
        int line = 1, col = 1;
        size_t i = 0;
        while (i < len) {
            size_t j = i;
            uint32_t cp = tmpl_utf8_next(source, len, &j);
            if (source[i] == 0 || (cp == 0xFFFD && j == i + 1)) break;
            if (source[i] == '\n') {
                line++;
                col = 1;
            } else {
                col++;
            }
            i = j;
        }
        echo_err_set_at(err, name, line, col, "%s",
                        i < len && source[i] == 0 ? "template contains a NUL byte"
                                                  : "template is not valid UTF-8");
        goto fail;
    }
    normalize_source(t, source ? source : "", len);
    if (tmpl_parse(env, t, err) != 0) goto fail;
    table_insert(env, t);
    return 0;
fail:
    template_free(t);
    return TMPL_ERR_SYNTAX;
}

/* ---- loading a folder ---- */

/* err->file = dir[/name], cut to the field's size. */
static void set_err_file(struct echo_err *err, const char *dir, const char *name)
{
    size_t k = 0, cap = sizeof(err->file) - 1;
    for (const char *p = dir; *p && k < cap; p++)
        err->file[k++] = *p;
    if (name && k < cap) err->file[k++] = '/';
    for (const char *p = name; p && *p && k < cap; p++)
        err->file[k++] = *p;
    err->file[k] = 0;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

static int load_tree(tmpl_env *env, const char *root, const char *rel, int depth,
                     struct echo_err *err)
{
    if (depth > LOAD_MAX_DEPTH) {
        echo_err_set(err, "%s/%s: folders nested too deep (symlink loop?)", root, rel);
        return TMPL_ERR_IO;
    }
    char path[4096];
    if ((size_t)snprintf(path, sizeof(path), "%s%s%s", root, *rel ? "/" : "", rel) >=
        sizeof(path)) {
        echo_err_set(err, "%s: path too long", root);
        return TMPL_ERR_IO;
    }
    DIR *d = opendir(path);
    if (!d) {
        echo_err_set(err, "cannot open template folder %s: %s", path, strerror(errno));
        return TMPL_ERR_IO;
    }
    char **names = NULL;
    size_t n = 0;
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        names = xrealloc(names, (n + 1) * sizeof(*names));
        names[n++] = xstrdup(de->d_name);
    }
    closedir(d);
    /* Sorted so that loading (and the first error reported) is deterministic. */
    qsort(names, n, sizeof(*names), name_cmp);
    for (size_t i = 0; i < n && rc == 0; i++) {
        char sub[4096], full[4096];
        if ((size_t)snprintf(sub, sizeof(sub), "%s%s%s", rel, *rel ? "/" : "", names[i]) >=
                sizeof(sub) ||
            (size_t)snprintf(full, sizeof(full), "%s/%s", root, sub) >= sizeof(full)) {
            echo_err_set(err, "%s: path too long", root);
            rc = TMPL_ERR_IO;
            break;
        }
        struct stat st;
        if (stat(full, &st) != 0) {
            echo_err_set(err, "cannot stat %s: %s", full, strerror(errno));
            rc = TMPL_ERR_IO;
        } else if (S_ISDIR(st.st_mode)) {
            rc = load_tree(env, root, sub, depth + 1, err);
        } else if (S_ISREG(st.st_mode) && ends_with(names[i], ".html")) {
            size_t len = 0;
            char *text = file_read_all(full, TMPL_MAX_SOURCE, &len, err);
            if (!text) {
                rc = TMPL_ERR_IO;
            } else {
                rc = tmpl_env_add(env, sub, text, len, err);
                free(text);
                /* Name the file as the author would open it. */
                if (rc && err) set_err_file(err, full, NULL);
            }
        }
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return rc;
}

/* The names of templates a node refers to with a constant string. */
static int check_name(const tmpl_env *env, const struct template *t, const struct expr *e, int line,
                      int col, struct echo_err *err)
{
    if (!e) return 0;
    if (e->kind == E_CONST && e->cval.kind == TV_STR) {
        if (!tmpl_env_find(env, e->cval.u.s.p, e->cval.u.s.n)) {
            tmpl_syntax_error(t, line, col, err, "template '%.*s' not found",
                              (int)(e->cval.u.s.n > 200 ? 200 : e->cval.u.s.n), e->cval.u.s.p);
            return TMPL_ERR_NOT_FOUND;
        }
    }
    return 0;
}

static int check_body(const tmpl_env *env, const struct template *t, const struct body *b,
                      struct echo_err *err);

static int check_node(const tmpl_env *env, const struct template *t, const struct node *nd,
                      struct echo_err *err)
{
    switch (nd->kind) {
    case N_IF:
        for (size_t i = 0; i < nd->u.if_.n; i++)
            if (check_body(env, t, &nd->u.if_.bodies[i], err)) return -1;
        return check_body(env, t, &nd->u.if_.els, err);
    case N_FOR:
        if (check_body(env, t, &nd->u.for_.body, err)) return -1;
        return check_body(env, t, &nd->u.for_.els, err);
    case N_SETBLOCK:
        return check_body(env, t, &nd->u.setblock.body, err);
    case N_BLOCK:
        return check_body(env, t, &nd->u.block.body, err);
    case N_EXTENDS:
        return check_name(env, t, nd->u.expr, nd->line, nd->col, err);
    case N_INCLUDE:
        if (nd->u.include.ignore_missing) return 0;
        return check_name(env, t, nd->u.include.name, nd->line, nd->col, err);
    case N_IMPORT:
        return check_name(env, t, nd->u.import.name, nd->line, nd->col, err);
    case N_FROMIMPORT:
        return check_name(env, t, nd->u.from.name, nd->line, nd->col, err);
    case N_MACRO:
        return check_body(env, t, &nd->u.macro->body, err);
    case N_CALLBLOCK:
        return check_body(env, t, &nd->u.callblock.caller->body, err);
    case N_WITH:
        return check_body(env, t, &nd->u.with.body, err);
    case N_FILTERBLOCK:
        return check_body(env, t, &nd->u.filterblock.body, err);
    case N_AUTOESCAPE:
        return check_body(env, t, &nd->u.autoescape.body, err);
    default:
        return 0;
    }
}

static int check_body(const tmpl_env *env, const struct template *t, const struct body *b,
                      struct echo_err *err)
{
    for (size_t i = 0; i < b->n; i++)
        if (check_node(env, t, b->items[i], err)) return -1;
    return 0;
}

int tmpl_env_load_dir(tmpl_env *env, const char *dir, struct echo_err *err)
{
    if (!env || !dir) {
        echo_err_set(err, "tmpl_env_load_dir: invalid arguments");
        return TMPL_ERR_IO;
    }
    int rc = load_tree(env, dir, "", 0, err);
    if (rc) return rc;
    for (size_t i = 0; i < env->tmpl_cap; i++) {
        const struct template *t = env->tmpls[i];
        if (t && check_body(env, t, &t->root, err)) {
            if (err) set_err_file(err, dir, t->name);
            return TMPL_ERR_NOT_FOUND;
        }
    }
    return 0;
}
