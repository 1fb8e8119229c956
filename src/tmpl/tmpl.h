/*
 * tmpl.h - Echo's template engine: the subset of Jinja2 a web application
 * uses, so that the pages can be written (and previewed) as Jinja templates.
 *
 * Supported: {{ expr }} with HTML autoescaping (on by default), {% if %},
 * {% for %} (loop.*, {% else %}, "if" filter clause, tuple unpacking),
 * {% set %} (also {% set x %}...{% endset %} and namespace attributes),
 * {% extends %} / {% block %} / super(), {% include %}, {% macro %},
 * {% call %}, {% import %} / {% from ... import %}, {% with %},
 * {% filter %}, {% autoescape %}, {% raw %}, {# comments #}, whitespace
 * control with "-", the Jinja expression language (literals, lists, dicts,
 * attribute/index/slice access, arithmetic, comparisons, and/or/not, in,
 * ~, "is" tests, inline if/else, filters with arguments) and the usual
 * filters (see filters.c for the list). Undefined values behave like Jinja's
 * ChainableUndefined: they print as nothing, x.y on them is undefined too,
 * and arithmetic on them is an error.
 *
 * Templates are compiled once, when they are added; a syntax error is
 * reported with the file, line and column and the offending source line with
 * a caret. Rendering walks the compiled form and allocates only from a
 * per-render scratch pool (plus the growth of the output buffer).
 *
 * Data: contexts, globals and filter arguments are jansson json_t trees;
 * objects are dicts, arrays are lists.
 *
 * Threads: building an environment (tmpl_env_new, _add, _load_dir,
 * _set_global, _add_filter) is single-threaded and must finish before the
 * first render. After that the environment is read-only and tmpl_render may
 * run from any number of threads at once without locks. The json_t values
 * given to tmpl_render are only read, never changed (values passed to a
 * custom filter may have their reference count raised and lowered again,
 * which jansson does atomically).
 *
 * Differences from Jinja2 worth knowing: integers are 64-bit (overflow is a
 * render error, not a big integer); printf-style "%" on strings, the format
 * filter, recursive for loops, {% do %}/loop controls and Python-only
 * objects are not supported; filters print generators as lists.
 */
#ifndef ECHO_TMPL_H
#define ECHO_TMPL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/core.h"

/* Return values of the functions below (0 or one of the negative codes). */
enum tmpl_error {
    TMPL_OK = 0,
    TMPL_ERR_SYNTAX = -1,    /* a template does not compile (err has file:line:col) */
    TMPL_ERR_NOT_FOUND = -2, /* no template of that name */
    TMPL_ERR_RENDER = -3,    /* a runtime error (type error, limit, undefined in arithmetic) */
    TMPL_ERR_IO = -4,        /* a template file or folder could not be read */
};

typedef struct tmpl_env tmpl_env;

/* Creates an empty environment (autoescaping on). Free with tmpl_env_free. */
tmpl_env *tmpl_env_new(void);
void tmpl_env_free(tmpl_env *env);

/*
 * Compiles every *.html file under dir, recursively; a template's name is its
 * path relative to dir with "/" separators ("auth/login.html"). Hidden files
 * and folders (".name") are skipped. After loading, the constant names used by
 * extends/include/import are checked, so that a missing template is reported
 * at start-up. Stops at the first error (TMPL_ERR_SYNTAX or TMPL_ERR_IO).
 */
int tmpl_env_load_dir(tmpl_env *env, const char *dir, struct echo_err *err);

/*
 * Compiles one template from memory under `name` (replacing a template of
 * the same name). The source must be UTF-8. Returns 0 or TMPL_ERR_SYNTAX.
 */
int tmpl_env_add(tmpl_env *env, const char *name, const char *source, size_t len,
                 struct echo_err *err);

/* True when a template of that name was added. */
bool tmpl_env_has(const tmpl_env *env, const char *name);
/* Number of templates in the environment. */
size_t tmpl_env_count(const tmpl_env *env);

/*
 * Makes `value` visible as `name` in every render (below the render
 * context, which shadows it). The environment takes its own reference;
 * the value must not be modified afterwards. A NULL value removes nothing
 * and is ignored.
 */
void tmpl_env_set_global(tmpl_env *env, const char *name, json_t *value);

/*
 * A filter written in C. `value` and `args` are borrowed and must not be
 * modified (they may be shared with other threads); return a new reference,
 * or NULL with err->msg set for a runtime error (the render fails). Called
 * concurrently from every rendering thread. Only positional arguments are
 * passed; an undefined argument arrives as JSON null. A string result is
 * plain text (escaped when printed), never markup.
 */
typedef json_t *(*tmpl_filter_fn)(json_t *value, json_t *const *args, size_t nargs,
                                  struct echo_err *err);

/* Registers (or replaces) a filter. Filters are resolved when templates are
 * compiled, so add them before tmpl_env_add / tmpl_env_load_dir. */
void tmpl_env_add_filter(tmpl_env *env, const char *name, tmpl_filter_fn fn);

/*
 * Bounds every render (0 keeps a default): max_bytes for the output and,
 * separately, for the render's scratch memory (default 64 MiB each), and
 * max_loop_iterations over all loops of one render (default 10 million).
 * A render that exceeds a bound fails with TMPL_ERR_RENDER.
 */
void tmpl_env_set_limits(tmpl_env *env, size_t max_bytes, uint64_t max_loop_iterations);

/*
 * Renders template `name` with context `ctx` (a JSON object, or NULL) and
 * appends the result to `out`. Returns 0, TMPL_ERR_NOT_FOUND, or
 * TMPL_ERR_RENDER with err naming the template and line (and the message).
 * On error nothing is appended (out is restored to its previous length).
 */
int tmpl_render(const tmpl_env *env, const char *name, json_t *ctx, struct strbuf *out,
                struct echo_err *err);

#endif
