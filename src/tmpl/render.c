/*
 * render.c - runs a compiled template: a tree-walking evaluator with Jinja2's
 * runtime semantics.
 *
 * Scopes. A chain of scopes maps interned names to values; names are looked
 * up from the innermost scope outwards, then in the render context (a JSON
 * object at the root of the chain), then in the environment's globals, then
 * among the built-in functions. As in Jinja: {% for %}, macros, {% with %},
 * blocks and includes open a scope, {% if %} does not; a {% for %} body
 * starts each iteration afresh (a {% set %} inside does not leak out, nor
 * into the next iteration); a template's top-level {% set %} is visible to
 * its blocks and, through the shared root scope, to the templates it
 * extends; an imported template is rendered in its own root scope (without
 * the context unless "with context") and exports its top-level names.
 *
 * Inheritance. Rendering a template runs its root body; {% extends %}
 * records the parent, appends the parent's blocks to the block chain and
 * stops further output of the root body; when the body ends, the parent's
 * root body runs with the same root scope. A {% block %} renders the most
 * derived definition; super() renders the next one up the chain.
 *
 * Memory. Everything a render creates (lists, strings, scopes) comes from a
 * bump allocator (struct pool) whose first 8 KiB live inside the render
 * state on the stack, so a typical page does no malloc besides the growth of
 * the output buffer. Captured output (macro results, {% set %} blocks) is
 * rendered into the output buffer, copied into the pool and cut off again.
 *
 * Safety. Runtime errors carry the template name and line:col of the
 * expression; the evaluator's recursion, the call depth, loop iterations,
 * memory and output size are bounded, so no input crashes the process.
 * Threads: one render touches only its own state; the environment, the
 * compiled templates and the JSON inputs are only read.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tmpl/tmpl_int.h"

/* Keeps a helper's locals out of the recursive evaluator's frame. */
#define NOINLINE __attribute__((noinline))

struct var {
    const char *name;
    struct tval val;
};

struct scope {
    struct scope *parent;
    json_t *ctx; /* the render context, at the root of the main chain */
    struct var *vars;
    uint32_t n, cap;
    struct var inl[4];
};

struct macro_val {
    const struct macro_def *def;
    struct scope *closure;
    const struct template *tmpl;
    bool autoescape;
};

struct loop_state {
    struct tlist items;
    size_t index0;
};

struct module {
    struct scope *root;
    const struct template *tmpl;
};

struct chain_level {
    const struct node *node;
    const struct template *tmpl;
};

struct chain_entry {
    const char *name;
    struct chain_level *levels;
    size_t n, cap;
};

struct blockchain {
    struct chain_entry *e;
    size_t n, cap;
};

static int eval(struct rctx *rc, struct scope *sc, const struct expr *e, struct tval *out);
static int exec_body(struct rctx *rc, struct scope *sc, const struct body *b);

const char *tmpl_macro_name(const struct macro_val *m)
{
    return m->def->name;
}

/* ---- the pool ---- */

static void pool_init(struct rctx *rc)
{
    rc->pool.cur = rc->inline_buf;
    rc->pool.left = sizeof(rc->inline_buf);
    rc->pool.total = 0;
    rc->pool.limit = rc->env->max_bytes;
    rc->pool.heap = NULL;
}

static void pool_free(struct rctx *rc)
{
    struct pool_block *b = rc->pool.heap;
    while (b) {
        struct pool_block *next = b->next;
        free(b);
        b = next;
    }
    rc->pool.heap = NULL;
}

static int rc_error_v(struct rctx *rc, int line, int col, const char *fmt, va_list ap)
{
    if (line == 0) {
        /* No position of its own (memory limit, extends cycle): the
         * statement being run. */
        line = rc->cur_line;
        col = rc->cur_col;
    }
    if (!rc->failed) {
        rc->failed = true;
        if (rc->err) {
            char msg[400];
            vsnprintf(msg, sizeof(msg), fmt, ap);
            echo_err_set_at(rc->err, rc->tmpl ? rc->tmpl->name : "", line, col, "%s", msg);
        }
    }
    return -1;
}

int tmpl_rc_error(struct rctx *rc, int line, int col, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    rc_error_v(rc, line, col, fmt, ap);
    va_end(ap);
    return -1;
}

int tmpl_rc_undefined_error(struct rctx *rc, int line, int col, const struct tval *v)
{
    if (v->kind == TV_UNDEF && v->u.s.p)
        return tmpl_rc_error(rc, line, col, "'%s' is undefined", v->u.s.p);
    return tmpl_rc_error(rc, line, col, "an undefined value was used");
}

void *tmpl_rc_alloc(struct rctx *rc, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (n <= rc->pool.left) {
        void *p = rc->pool.cur;
        rc->pool.cur += n;
        rc->pool.left -= n;
        return p;
    }
    size_t size = n > 32768 ? n : 32768;
    if (rc->pool.total + size > rc->pool.limit) {
        tmpl_rc_error(rc, 0, 0, "the render needs more than %zu bytes of memory", rc->pool.limit);
        return NULL;
    }
    struct pool_block *b = xmalloc(sizeof(*b) + size);
    b->next = rc->pool.heap;
    b->size = size;
    rc->pool.heap = b;
    rc->pool.total += size;
    rc->pool.cur = b->data + n;
    rc->pool.left = size - n;
    return b->data;
}

char *tmpl_rc_strdup(struct rctx *rc, const char *s, size_t n)
{
    char *p = tmpl_rc_alloc(rc, n + 1);
    if (!p) return NULL;
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

void tmpl_keep(struct rctx *rc, json_t *j)
{
    if (rc->nkeep == rc->capkeep) {
        rc->capkeep = rc->capkeep ? rc->capkeep * 2 : 8;
        rc->keep = xrealloc(rc->keep, rc->capkeep * sizeof(*rc->keep));
    }
    rc->keep[rc->nkeep++] = j;
}

/* ---- string builder in the pool ---- */

void tmpl_abuf_init(struct abuf *b, struct rctx *rc)
{
    b->rc = rc;
    b->p = NULL;
    b->n = b->cap = 0;
}

static int abuf_reserve(struct abuf *b, size_t extra)
{
    if (b->n + extra + 1 <= b->cap) return 0;
    struct pool *pl = &b->rc->pool;
    size_t need = b->n + extra + 1;
    /* Grow in place when the buffer is the pool's most recent allocation. */
    if (b->p && b->p + b->cap == pl->cur && need - b->cap <= pl->left) {
        size_t grow = ((need - b->cap) + 15) & ~(size_t)15;
        if (grow > pl->left) grow = need - b->cap;
        pl->cur += grow;
        pl->left -= grow;
        b->cap += grow;
        return 0;
    }
    size_t cap = b->cap ? b->cap * 2 : 64;
    while (cap < need)
        cap *= 2;
    char *p = tmpl_rc_alloc(b->rc, cap);
    if (!p) return -1;
    if (b->n) memcpy(p, b->p, b->n);
    b->p = p;
    b->cap = cap;
    return 0;
}

int tmpl_abuf_put(struct abuf *b, const char *s, size_t n)
{
    if (abuf_reserve(b, n)) return -1;
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    return 0;
}

int tmpl_abuf_putc(struct abuf *b, char c)
{
    if (abuf_reserve(b, 1)) return -1;
    b->p[b->n++] = c;
    return 0;
}

int tmpl_abuf_putcp(struct abuf *b, uint32_t cp)
{
    char tmp[4];
    return tmpl_abuf_put(b, tmp, tmpl_utf8_put(tmp, cp));
}

struct tval tmpl_abuf_finish(struct abuf *b, bool safe)
{
    if (!b->p) return tv_str("", 0, safe);
    b->p[b->n] = 0;
    return tv_str(b->p, b->n, safe);
}

/* ---- scopes ---- */

static struct scope *scope_new(struct rctx *rc, struct scope *parent)
{
    struct scope *s = tmpl_rc_alloc(rc, sizeof(*s));
    if (!s) return NULL;
    s->parent = parent;
    s->ctx = NULL;
    s->vars = s->inl;
    s->n = 0;
    s->cap = sizeof(s->inl) / sizeof(s->inl[0]);
    return s;
}

static struct var *scope_find_local(struct scope *s, const char *name)
{
    for (uint32_t i = s->n; i-- > 0;)
        if (s->vars[i].name == name) return &s->vars[i];
    return NULL;
}

static int scope_set(struct rctx *rc, struct scope *s, const char *name, const struct tval *v)
{
    struct var *var = scope_find_local(s, name);
    if (var) {
        var->val = *v;
        return 0;
    }
    if (s->n == s->cap) {
        struct var *vars = tmpl_rc_alloc(rc, 2 * s->cap * sizeof(*vars));
        if (!vars) return -1;
        memcpy(vars, s->vars, s->n * sizeof(*vars));
        s->vars = vars;
        s->cap *= 2;
    }
    s->vars[s->n].name = name;
    s->vars[s->n].val = *v;
    s->n++;
    return 0;
}

static const struct {
    const char *name;
    int fn;
} builtin_fns[] = {
    {"range", FN_RANGE}, {"dict", FN_DICT}, {"namespace", FN_NAMESPACE},
    {"super", FN_SUPER}, {"self", FN_SELF},
};

static struct tval lookup(const struct rctx *rc, const struct scope *sc, const char *name)
{
    for (const struct scope *s = sc; s; s = s->parent) {
        for (uint32_t i = s->n; i-- > 0;)
            if (s->vars[i].name == name) return s->vars[i].val;
        if (s->ctx) {
            json_t *j = json_object_get(s->ctx, name);
            if (j) return tmpl_tv_from_json(j);
        }
    }
    const tmpl_env *env = rc->env;
    for (size_t i = 0; i < env->nglobals; i++)
        if (env->globals[i].name == name) return env->globals[i].tv;
    for (size_t i = 0; i < sizeof(builtin_fns) / sizeof(builtin_fns[0]); i++) {
        if (!strcmp(builtin_fns[i].name, name)) {
            struct tval v = {.kind = TV_FUNC};
            v.u.fn = builtin_fns[i].fn;
            return v;
        }
    }
    return tv_undef(name);
}

/* ---- helpers for values ---- */

static struct tlist *list_new(struct rctx *rc, size_t n)
{
    struct tlist *l = tmpl_rc_alloc(rc, sizeof(*l));
    if (!l) return NULL;
    l->n = n;
    l->items = n ? tmpl_rc_alloc(rc, n * sizeof(*l->items)) : NULL;
    if (n && !l->items) return NULL;
    return l;
}

static struct tval list_val(struct tlist *l, bool tuple)
{
    struct tval v = {.kind = TV_LIST, .tuple = tuple};
    v.u.list = l;
    return v;
}

static struct tdict *dict_new(struct rctx *rc, size_t cap)
{
    struct tdict *d = tmpl_rc_alloc(rc, sizeof(*d));
    if (!d) return NULL;
    d->n = 0;
    d->cap = cap ? cap : 4;
    d->keys = tmpl_rc_alloc(rc, d->cap * sizeof(*d->keys));
    d->vals = tmpl_rc_alloc(rc, d->cap * sizeof(*d->vals));
    if (!d->keys || !d->vals) return NULL;
    return d;
}

/*
 * Charges n units of work to the render: loop iterations, and the steps of
 * the few quadratic operations (dict building, unique), so that no template
 * can keep a thread busy without bound.
 */
int tmpl_count_steps(struct rctx *rc, int line, int col, uint64_t n)
{
    rc->steps += n;
    if (rc->steps > rc->env->max_steps)
        return tmpl_rc_error(rc, line, col, "the render ran more than %llu loop iterations",
                             (unsigned long long)rc->env->max_steps);
    return 0;
}

static int dict_set(struct rctx *rc, struct tdict *d, const struct tval *k, const struct tval *v)
{
    /* A linear search: render dicts are small, and big ones pay in steps. */
    if (d->n > 16 && tmpl_count_steps(rc, 0, 0, d->n)) return -1;
    for (size_t i = 0; i < d->n; i++) {
        if (tmpl_tv_equal(&d->keys[i], k)) {
            d->vals[i] = *v;
            return 0;
        }
    }
    if (d->n == d->cap) {
        struct tval *keys = tmpl_rc_alloc(rc, 2 * d->cap * sizeof(*keys));
        struct tval *vals = tmpl_rc_alloc(rc, 2 * d->cap * sizeof(*vals));
        if (!keys || !vals) return -1;
        memcpy(keys, d->keys, d->n * sizeof(*keys));
        memcpy(vals, d->vals, d->n * sizeof(*vals));
        d->keys = keys;
        d->vals = vals;
        d->cap *= 2;
    }
    d->keys[d->n] = *k;
    d->vals[d->n] = *v;
    d->n++;
    return 0;
}

int tmpl_iterate(struct rctx *rc, int line, int col, const struct tval *v, struct tlist *out)
{
    switch (v->kind) {
    case TV_UNDEF:
        out->n = 0;
        out->items = NULL;
        return 0;
    case TV_LIST:
        *out = *v->u.list;
        return 0;
    case TV_JSON: {
        json_t *j = v->u.j;
        size_t n = json_is_array(j) ? json_array_size(j) : json_object_size(j);
        out->n = n;
        out->items = n ? tmpl_rc_alloc(rc, n * sizeof(*out->items)) : NULL;
        if (n && !out->items) return -1;
        if (json_is_array(j)) {
            for (size_t i = 0; i < n; i++)
                out->items[i] = tmpl_tv_from_json(json_array_get(j, i));
        } else {
            size_t i = 0;
            for (void *it = json_object_iter(j); it && i < n; it = json_object_iter_next(j, it))
                out->items[i++] =
                    tv_str(json_object_iter_key(it), json_object_iter_key_len(it), false);
        }
        return 0;
    }
    case TV_DICT: {
        struct tdict *d = v->u.dict;
        out->n = d->n;
        out->items = d->keys;
        return 0;
    }
    case TV_STR: {
        size_t n = tmpl_utf8_count(v->u.s.p, v->u.s.n);
        out->n = n;
        out->items = n ? tmpl_rc_alloc(rc, n * sizeof(*out->items)) : NULL;
        if (n && !out->items) return -1;
        size_t i = 0, k = 0;
        while (i < v->u.s.n && k < n) {
            size_t start = i;
            tmpl_utf8_next(v->u.s.p, v->u.s.n, &i);
            out->items[k++] = tv_str(v->u.s.p + start, i - start, false);
        }
        out->n = k;
        return 0;
    }
    default:
        return tmpl_rc_error(rc, line, col, "'%s' object is not iterable", tmpl_tv_type_name(v));
    }
}

static bool loop_attr(const struct loop_state *ls, const char *name, size_t n, struct tval *out)
{
    size_t len = ls->items.n, i = ls->index0;
#define IS(s) (n == sizeof(s) - 1 && !memcmp(name, s, n))
    if (IS("index"))
        *out = tv_int((int64_t)i + 1);
    else if (IS("index0"))
        *out = tv_int((int64_t)i);
    else if (IS("revindex"))
        *out = tv_int((int64_t)(len - i));
    else if (IS("revindex0"))
        *out = tv_int((int64_t)(len - i - 1));
    else if (IS("first"))
        *out = tv_bool(i == 0);
    else if (IS("last"))
        *out = tv_bool(i + 1 == len);
    else if (IS("length"))
        *out = tv_int((int64_t)len);
    else if (IS("depth"))
        *out = tv_int(1);
    else if (IS("depth0"))
        *out = tv_int(0);
    else if (IS("previtem"))
        *out = i > 0 ? ls->items.items[i - 1] : tv_undef("previtem");
    else if (IS("nextitem"))
        *out = i + 1 < len ? ls->items.items[i + 1] : tv_undef("nextitem");
    else
        return false;
#undef IS
    return true;
}

int tmpl_getattr(struct rctx *rc, const struct tval *obj, const char *name, size_t n,
                 struct tval *out)
{
    switch (obj->kind) {
    case TV_UNDEF:
        *out = *obj; /* chainable: x.y.z stays undefined */
        return 0;
    case TV_JSON:
    case TV_DICT:
    case TV_NAMESPACE:
        if (tmpl_tv_mapping_get(obj, name, n, out)) return 0;
        break;
    case TV_LOOP:
        if (loop_attr(obj->u.loop, name, n, out)) return 0;
        break;
    case TV_FUNC:
        /* self.title: a block of the running template, by name. */
        if (obj->u.fn == FN_SELF && rc->chain) {
            for (size_t k = 0; k < rc->chain->n; k++) {
                const char *b = rc->chain->e[k].name;
                if (strlen(b) == n && !memcmp(b, name, n)) {
                    out->kind = TV_BLOCKREF;
                    out->safe = out->tuple = 0;
                    out->u.s.p = b;
                    out->u.s.n = n;
                    return 0;
                }
            }
        }
        break;
    case TV_MODULE: {
        if (n && name[0] == '_') break;
        struct scope *root = obj->u.mod->root;
        for (uint32_t i = root->n; i-- > 0;) {
            const char *k = root->vars[i].name;
            if (strlen(k) == n && !memcmp(k, name, n)) {
                *out = root->vars[i].val;
                return 0;
            }
        }
        break;
    }
    default:
        break;
    }
    /* An interned name keeps the undefined value's name printable. */
    *out = tv_undef(name[n] == 0 ? name : NULL);
    return 0;
}

static bool as_index(const struct tval *k, int64_t *i)
{
    if (k->kind == TV_INT) {
        *i = k->u.i;
        return true;
    }
    if (k->kind == TV_BOOL) {
        *i = k->u.b;
        return true;
    }
    return false;
}

int tmpl_getitem(struct rctx *rc, int line, int col, const struct tval *obj, const struct tval *key,
                 struct tval *out)
{
    (void)line;
    (void)col;
    int64_t i;
    if (obj->kind == TV_UNDEF) {
        *out = *obj;
        return 0;
    }
    if (tmpl_tv_is_sequence(obj) && as_index(key, &i)) {
        size_t n = tmpl_tv_len(obj);
        if (i < 0) i += (int64_t)n;
        if (i >= 0 && (uint64_t)i < n) {
            *out = obj->kind == TV_LIST ? obj->u.list->items[i]
                                        : tmpl_tv_from_json(json_array_get(obj->u.j, (size_t)i));
            return 0;
        }
    } else if (obj->kind == TV_STR && as_index(key, &i)) {
        size_t n = tmpl_utf8_count(obj->u.s.p, obj->u.s.n);
        if (i < 0) i += (int64_t)n;
        if (i >= 0 && (uint64_t)i < n) {
            size_t a = tmpl_utf8_offset(obj->u.s.p, obj->u.s.n, (size_t)i), b = a;
            tmpl_utf8_next(obj->u.s.p, obj->u.s.n, &b);
            *out = tv_str(obj->u.s.p + a, b - a, obj->safe);
            return 0;
        }
    } else if (obj->kind == TV_DICT) {
        for (size_t k = 0; k < obj->u.dict->n; k++) {
            if (tmpl_tv_equal(&obj->u.dict->keys[k], key)) {
                *out = obj->u.dict->vals[k];
                return 0;
            }
        }
    } else if (key->kind == TV_STR) {
        /* Mappings by key, and the attributes of loop/module/namespace. */
        return tmpl_getattr(rc, obj, key->u.s.p, key->u.s.n, out);
    }
    *out = tv_undef(NULL);
    return 0;
}

int tmpl_get_path(struct rctx *rc, const struct tval *obj, const char *path, struct tval *out)
{
    /* Jinja's make_attrgetter: "a.b.0" (digits index). */
    struct tval cur = *obj;
    const char *p = path;
    for (;;) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        bool digits = n > 0;
        int64_t idx = 0;
        for (size_t i = 0; i < n; i++) {
            if (p[i] < '0' || p[i] > '9' || idx > (INT64_MAX - 9) / 10) {
                digits = false;
                break;
            }
            idx = idx * 10 + (p[i] - '0');
        }
        struct tval next;
        if (digits) {
            struct tval k = tv_int(idx);
            if (tmpl_getitem(rc, 0, 0, &cur, &k, &next)) return -1;
        } else {
            struct tval k = tv_str(p, n, false);
            if (tmpl_getitem(rc, 0, 0, &cur, &k, &next)) return -1;
        }
        cur = next;
        if (!dot) break;
        p = dot + 1;
    }
    *out = cur;
    return 0;
}

/* Python slicing (PySlice_AdjustIndices). */
static void slice_indices(int64_t len, const struct tval *a, const struct tval *b, int64_t step,
                          int64_t *start, int64_t *stop)
{
    int64_t lo = step < 0 ? -1 : 0, hi = step < 0 ? len - 1 : len;
    if (a->kind == TV_NONE || a->kind == TV_UNDEF) {
        *start = step < 0 ? hi : lo;
    } else {
        *start = a->u.i;
        if (*start < 0) {
            *start += len;
            if (*start < lo) *start = lo;
        } else if (*start > hi) {
            *start = hi;
        }
    }
    if (b->kind == TV_NONE || b->kind == TV_UNDEF) {
        *stop = step < 0 ? lo : hi;
    } else {
        *stop = b->u.i;
        if (*stop < 0) {
            *stop += len;
            if (*stop < lo) *stop = lo;
        } else if (*stop > hi) {
            *stop = hi;
        }
    }
}

static NOINLINE int eval_slice(struct rctx *rc, struct scope *sc, const struct expr *e,
                               struct tval *out)
{
    struct tval obj, parts[3];
    if (eval(rc, sc, e->a, &obj)) return -1;
    for (int i = 0; i < 3; i++) {
        if (!e->args[i]) {
            parts[i] = tv_none();
            continue;
        }
        if (eval(rc, sc, e->args[i], &parts[i])) return -1;
        if (parts[i].kind == TV_BOOL) parts[i] = tv_int(parts[i].u.b);
        if (parts[i].kind != TV_INT && parts[i].kind != TV_NONE) {
            /* Jinja turns the TypeError of a bad slice into undefined. */
            *out = tv_undef(NULL);
            return 0;
        }
    }
    int64_t step = parts[2].kind == TV_INT ? parts[2].u.i : 1;
    if (step == 0) return tmpl_rc_error(rc, e->line, e->col, "slice step cannot be zero");
    if (step == INT64_MIN) step = -INT64_MAX;
    if (obj.kind == TV_UNDEF) {
        *out = obj;
        return 0;
    }
    struct tlist items;
    if (obj.kind == TV_STR) {
        if (tmpl_iterate(rc, e->line, e->col, &obj, &items)) return -1;
    } else if (tmpl_tv_is_sequence(&obj)) {
        if (tmpl_iterate(rc, e->line, e->col, &obj, &items)) return -1;
    } else {
        *out = tv_undef(NULL);
        return 0;
    }
    int64_t start, stop, len = (int64_t)items.n;
    slice_indices(len, &parts[0], &parts[1], step, &start, &stop);
    size_t count = 0;
    if (step > 0 && start < stop)
        count = (size_t)((stop - start - 1) / step + 1);
    else if (step < 0 && stop < start)
        count = (size_t)((start - stop - 1) / (-step) + 1);
    if (obj.kind == TV_STR) {
        struct abuf b;
        tmpl_abuf_init(&b, rc);
        for (size_t k = 0; k < count; k++) {
            const struct tval *ch = &items.items[start + (int64_t)k * step];
            if (tmpl_abuf_put(&b, ch->u.s.p, ch->u.s.n)) return -1;
        }
        *out = tmpl_abuf_finish(&b, obj.safe);
        return 0;
    }
    struct tlist *l = list_new(rc, count);
    if (!l) return -1;
    for (size_t k = 0; k < count; k++)
        l->items[k] = items.items[start + (int64_t)k * step];
    *out = list_val(l, obj.kind == TV_LIST && obj.tuple);
    return 0;
}

/* ---- arithmetic ---- */

static double as_double(const struct tval *v)
{
    return v->kind == TV_FLOAT ? v->u.f : v->kind == TV_BOOL ? (double)v->u.b : (double)v->u.i;
}

static int64_t as_int(const struct tval *v)
{
    return v->kind == TV_BOOL ? (int64_t)v->u.b : v->u.i;
}

static const char *op_text(int op)
{
    switch (op) {
    case OP_ADD:
        return "+";
    case OP_SUB:
        return "-";
    case OP_MUL:
        return "*";
    case OP_DIV:
        return "/";
    case OP_FLOORDIV:
        return "//";
    case OP_MOD:
        return "%";
    case OP_POW:
        return "**";
    case OP_LT:
        return "<";
    case OP_LE:
        return "<=";
    case OP_GT:
        return ">";
    case OP_GE:
        return ">=";
    default:
        return "?";
    }
}

static int type_error(struct rctx *rc, const struct expr *e, int op, const struct tval *a,
                      const struct tval *b)
{
    return tmpl_rc_error(rc, e->line, e->col, "unsupported operand type(s) for %s: '%s' and '%s'",
                         op_text(op), tmpl_tv_type_name(a), tmpl_tv_type_name(b));
}

/* Python's float floor division and modulo (float_divmod in CPython). */
static void float_divmod(double vx, double wx, double *floordiv, double *mod)
{
    double m = fmod(vx, wx);
    double div = (vx - m) / wx;
    if (m != 0) {
        if ((wx < 0) != (m < 0)) {
            m += wx;
            div -= 1.0;
        }
    } else {
        m = copysign(0.0, wx);
    }
    double fd;
    if (div != 0) {
        fd = floor(div);
        if (div - fd > 0.5) fd += 1.0;
    } else {
        fd = copysign(0.0, vx / wx);
    }
    *floordiv = fd;
    *mod = m;
}

static bool tv_len_is_zero(const struct tval *seq)
{
    return seq->kind == TV_STR ? seq->u.s.n == 0 : tmpl_tv_len(seq) == 0;
}

static int repeat_seq(struct rctx *rc, const struct expr *e, const struct tval *seq, int64_t times,
                      struct tval *out)
{
    if (times < 0) times = 0;
    if (tv_len_is_zero(seq)) times = 0; /* "" * 10**12 is "" at once, not after 10**12 steps */
    if (seq->kind == TV_STR) {
        if (seq->u.s.n && (uint64_t)times > rc->env->max_bytes / seq->u.s.n)
            return tmpl_rc_error(rc, e->line, e->col, "string repetition result is too large");
        struct abuf b;
        tmpl_abuf_init(&b, rc);
        for (int64_t i = 0; i < times; i++)
            if (tmpl_abuf_put(&b, seq->u.s.p, seq->u.s.n)) return -1;
        *out = tmpl_abuf_finish(&b, seq->safe);
        return 0;
    }
    struct tlist items;
    if (tmpl_iterate(rc, e->line, e->col, seq, &items)) return -1;
    if (items.n && (uint64_t)times > rc->env->max_bytes / (items.n * sizeof(struct tval)))
        return tmpl_rc_error(rc, e->line, e->col, "list repetition result is too large");
    struct tlist *l = list_new(rc, items.n * (size_t)times);
    if (!l) return -1;
    for (int64_t i = 0; i < times; i++)
        if (items.n)
            memcpy(l->items + (size_t)i * items.n, items.items, items.n * sizeof(*l->items));
    *out = list_val(l, seq->kind == TV_LIST && seq->tuple);
    return 0;
}

static int concat_markup(struct rctx *rc, const struct tval *a, const struct tval *b, bool escape_a,
                         bool escape_b, bool safe, struct tval *out)
{
    struct abuf buf;
    tmpl_abuf_init(&buf, rc);
    if ((escape_a ? tmpl_html_escape_abuf(&buf, a->u.s.p, a->u.s.n)
                  : tmpl_abuf_put(&buf, a->u.s.p, a->u.s.n)) ||
        (escape_b ? tmpl_html_escape_abuf(&buf, b->u.s.p, b->u.s.n)
                  : tmpl_abuf_put(&buf, b->u.s.p, b->u.s.n)))
        return -1;
    *out = tmpl_abuf_finish(&buf, safe);
    return 0;
}

NOINLINE int tmpl_arith(struct rctx *rc, const struct expr *e, int op, const struct tval *a,
                        const struct tval *b, struct tval *out)
{
    if (a->kind == TV_UNDEF) return tmpl_rc_undefined_error(rc, e->line, e->col, a);
    if (b->kind == TV_UNDEF) return tmpl_rc_undefined_error(rc, e->line, e->col, b);
    bool nums = tmpl_tv_is_number(a) && tmpl_tv_is_number(b);
    bool floats = nums && (a->kind == TV_FLOAT || b->kind == TV_FLOAT);
    int64_t x = nums ? as_int(a) : 0, y = nums ? as_int(b) : 0, r;
    double fx = nums ? as_double(a) : 0, fy = nums ? as_double(b) : 0;
    switch (op) {
    case OP_ADD:
        if (nums) {
            if (floats) {
                *out = tv_float(fx + fy);
            } else {
                if (__builtin_add_overflow(x, y, &r))
                    return tmpl_rc_error(rc, e->line, e->col, "integer overflow");
                *out = tv_int(r);
            }
            return 0;
        }
        if (a->kind == TV_STR && b->kind == TV_STR) {
            /* Markup + str escapes the str; str + Markup too (__radd__). */
            bool safe = a->safe || b->safe;
            return concat_markup(rc, a, b, safe && !a->safe, safe && !b->safe, safe, out);
        }
        if (tmpl_tv_is_sequence(a) && tmpl_tv_is_sequence(b)) {
            bool ta = a->kind == TV_LIST && a->tuple, tb = b->kind == TV_LIST && b->tuple;
            if (ta != tb)
                return tmpl_rc_error(
                    rc, e->line, e->col, "can only concatenate %s (not \"%s\") to %s",
                    tmpl_tv_type_name(a), tmpl_tv_type_name(b), tmpl_tv_type_name(a));
            struct tlist la, lb;
            if (tmpl_iterate(rc, e->line, e->col, a, &la) ||
                tmpl_iterate(rc, e->line, e->col, b, &lb))
                return -1;
            struct tlist *l = list_new(rc, la.n + lb.n);
            if (!l) return -1;
            if (la.n) memcpy(l->items, la.items, la.n * sizeof(*l->items));
            if (lb.n) memcpy(l->items + la.n, lb.items, lb.n * sizeof(*l->items));
            *out = list_val(l, ta);
            return 0;
        }
        return type_error(rc, e, op, a, b);
    case OP_SUB:
        if (!nums) return type_error(rc, e, op, a, b);
        if (floats) {
            *out = tv_float(fx - fy);
        } else {
            if (__builtin_sub_overflow(x, y, &r))
                return tmpl_rc_error(rc, e->line, e->col, "integer overflow");
            *out = tv_int(r);
        }
        return 0;
    case OP_MUL:
        if (nums) {
            if (floats) {
                *out = tv_float(fx * fy);
            } else {
                if (__builtin_mul_overflow(x, y, &r))
                    return tmpl_rc_error(rc, e->line, e->col, "integer overflow");
                *out = tv_int(r);
            }
            return 0;
        }
        if ((a->kind == TV_STR || tmpl_tv_is_sequence(a)) &&
            (b->kind == TV_INT || b->kind == TV_BOOL))
            return repeat_seq(rc, e, a, as_int(b), out);
        if ((b->kind == TV_STR || tmpl_tv_is_sequence(b)) &&
            (a->kind == TV_INT || a->kind == TV_BOOL))
            return repeat_seq(rc, e, b, as_int(a), out);
        return type_error(rc, e, op, a, b);
    case OP_DIV:
        if (!nums) return type_error(rc, e, op, a, b);
        if (fy == 0) return tmpl_rc_error(rc, e->line, e->col, "division by zero");
        *out = tv_float(fx / fy);
        return 0;
    case OP_FLOORDIV:
    case OP_MOD:
        if (!nums) {
            if (op == OP_MOD && a->kind == TV_STR)
                return tmpl_rc_error(rc, e->line, e->col,
                                     "printf-style string formatting with %% is not supported");
            return type_error(rc, e, op, a, b);
        }
        if (floats) {
            if (fy == 0) return tmpl_rc_error(rc, e->line, e->col, "float division by zero");
            double fd, m;
            float_divmod(fx, fy, &fd, &m);
            *out = tv_float(op == OP_FLOORDIV ? fd : m);
            return 0;
        }
        if (y == 0) return tmpl_rc_error(rc, e->line, e->col, "integer division or modulo by zero");
        if (x == INT64_MIN && y == -1) {
            if (op == OP_MOD) {
                *out = tv_int(0);
                return 0;
            }
            return tmpl_rc_error(rc, e->line, e->col, "integer overflow");
        }
        {
            int64_t q = x / y, m = x % y;
            if (m != 0 && ((m < 0) != (y < 0))) {
                q -= 1;
                m += y;
            }
            *out = tv_int(op == OP_FLOORDIV ? q : m);
        }
        return 0;
    case OP_POW:
        if (!nums) return type_error(rc, e, op, a, b);
        if (!floats && y >= 0) {
            int64_t result = 1, base = x;
            int64_t ex = y;
            while (ex > 0) {
                if ((ex & 1) && __builtin_mul_overflow(result, base, &result))
                    return tmpl_rc_error(rc, e->line, e->col, "integer overflow");
                ex >>= 1;
                if (ex && __builtin_mul_overflow(base, base, &base))
                    return tmpl_rc_error(rc, e->line, e->col, "integer overflow");
            }
            *out = tv_int(result);
            return 0;
        }
        if (fx == 0 && fy < 0)
            return tmpl_rc_error(rc, e->line, e->col, "0.0 cannot be raised to a negative power");
        if (fx < 0 && fy != floor(fy))
            return tmpl_rc_error(rc, e->line, e->col,
                                 "a negative number raised to a fractional power is complex");
        *out = tv_float(pow(fx, fy));
        if (isinf(out->u.f) && !isinf(fx))
            return tmpl_rc_error(rc, e->line, e->col, "numerical result out of range");
        return 0;
    default:
        return tmpl_rc_error(rc, e->line, e->col, "unknown operator");
    }
}

/* a ~ b: str() of both; under autoescape a Markup side escapes the other. */
static int concat(struct rctx *rc, const struct tval *a, const struct tval *b, struct tval *out)
{
    struct tval sa, sb;
    if (tmpl_tv_to_str(rc, a, &sa) || tmpl_tv_to_str(rc, b, &sb)) return -1;
    bool safe = rc->autoescape && (sa.safe || sb.safe);
    return concat_markup(rc, &sa, &sb, safe && !sa.safe, safe && !sb.safe, safe, out);
}

static int contains(struct rctx *rc, const struct expr *e, const struct tval *needle,
                    const struct tval *hay, bool *result)
{
    switch (hay->kind) {
    case TV_UNDEF:
        *result = false;
        return 0;
    case TV_STR:
        if (needle->kind != TV_STR)
            return tmpl_rc_error(rc, e->line, e->col,
                                 "'in <string>' requires string as left operand, not %s",
                                 tmpl_tv_type_name(needle));
        *result = needle->u.s.n == 0 ||
                  memmem(hay->u.s.p, hay->u.s.n, needle->u.s.p, needle->u.s.n) != NULL;
        return 0;
    case TV_JSON:
        if (json_is_object(hay->u.j)) {
            struct tval ignored;
            *result = needle->kind == TV_STR &&
                      tmpl_tv_mapping_get(hay, needle->u.s.p, needle->u.s.n, &ignored);
            return 0;
        }
        /* fall through - a JSON array */
    case TV_LIST: {
        size_t n = tmpl_tv_len(hay);
        *result = false;
        for (size_t i = 0; i < n && !*result; i++) {
            struct tval item = hay->kind == TV_LIST
                                   ? hay->u.list->items[i]
                                   : tmpl_tv_from_json(json_array_get(hay->u.j, i));
            *result = tmpl_tv_equal(needle, &item);
        }
        return 0;
    }
    case TV_DICT:
        *result = false;
        for (size_t i = 0; i < hay->u.dict->n && !*result; i++)
            *result = tmpl_tv_equal(needle, &hay->u.dict->keys[i]);
        return 0;
    default:
        return tmpl_rc_error(rc, e->line, e->col, "argument of type '%s' is not iterable",
                             tmpl_tv_type_name(hay));
    }
}

int tmpl_compare_op(struct rctx *rc, const struct expr *e, int op, const struct tval *left,
                    const struct tval *right, bool *ok)
{
    switch (op) {
    case OP_EQ:
        *ok = tmpl_tv_equal(left, right);
        return 0;
    case OP_NE:
        *ok = !tmpl_tv_equal(left, right);
        return 0;
    case OP_IN:
    case OP_NOTIN:
        if (contains(rc, e, left, right, ok)) return -1;
        if (op == OP_NOTIN) *ok = !*ok;
        return 0;
    default: {
        int c;
        if (left->kind == TV_UNDEF) return tmpl_rc_undefined_error(rc, e->line, e->col, left);
        if (right->kind == TV_UNDEF) return tmpl_rc_undefined_error(rc, e->line, e->col, right);
        if (tmpl_tv_compare(left, right, &c))
            return tmpl_rc_error(rc, e->line, e->col,
                                 "'%s' not supported between instances of '%s' and '%s'",
                                 op_text(op), tmpl_tv_type_name(left), tmpl_tv_type_name(right));
        /* NaN compares false with everything, as in Python. */
        bool nan = (left->kind == TV_FLOAT && isnan(left->u.f)) ||
                   (right->kind == TV_FLOAT && isnan(right->u.f));
        *ok = !nan && (op == OP_LT ? c < 0 : op == OP_LE ? c <= 0 : op == OP_GT ? c > 0 : c >= 0);
        return 0;
    }
    }
}

static NOINLINE int eval_compare(struct rctx *rc, struct scope *sc, const struct expr *e,
                                 struct tval *out)
{
    struct tval left;
    if (eval(rc, sc, e->a, &left)) return -1;
    for (size_t i = 0; i < e->nargs; i++) {
        struct tval right;
        if (eval(rc, sc, e->args[i], &right)) return -1;
        bool ok;
        if (tmpl_compare_op(rc, e, e->cmp_ops[i], &left, &right, &ok)) return -1;
        if (!ok) {
            *out = tv_bool(false);
            return 0;
        }
        left = right;
    }
    *out = tv_bool(true);
    return 0;
}

/* ---- calls ---- */

struct call_args {
    struct tval *pos;
    size_t npos;
    const char **kwn;
    struct tval *kwv;
    size_t nkw;
};

static int eval_args(struct rctx *rc, struct scope *sc, const struct expr *e, struct call_args *ca)
{
    ca->npos = e->nargs;
    ca->nkw = e->nkw;
    ca->kwn = e->kwnames;
    ca->pos = e->nargs ? tmpl_rc_alloc(rc, e->nargs * sizeof(*ca->pos)) : NULL;
    ca->kwv = e->nkw ? tmpl_rc_alloc(rc, e->nkw * sizeof(*ca->kwv)) : NULL;
    if ((e->nargs && !ca->pos) || (e->nkw && !ca->kwv)) return -1;
    for (size_t i = 0; i < e->nargs; i++)
        if (eval(rc, sc, e->args[i], &ca->pos[i])) return -1;
    for (size_t i = 0; i < e->nkw; i++)
        if (eval(rc, sc, e->kwvals[i], &ca->kwv[i])) return -1;
    return 0;
}

/* Runs a body with its output captured into a pool string. */
static int capture(struct rctx *rc, struct scope *sc, const struct body *b, bool safe,
                   struct tval *out)
{
    struct strbuf *o = rc->out;
    size_t start = o->len;
    bool suppress = rc->suppress;
    rc->suppress = false;
    int r = exec_body(rc, sc, b);
    rc->suppress = suppress;
    if (r == 0) {
        char *copy = tmpl_rc_strdup(rc, o->data ? o->data + start : "", o->len - start);
        if (!copy)
            r = -1;
        else
            *out = tv_str(copy, o->len - start, safe);
    }
    o->len = start;
    if (o->data) o->data[start] = 0;
    return r;
}

static int enter_call(struct rctx *rc, int line, int col, const char *what, const char *name)
{
    if (++rc->calls > TMPL_MAX_CALLS) {
        rc->calls--;
        return tmpl_rc_error(rc, line, col, "maximum recursion depth (%d) exceeded in %s '%s'",
                             TMPL_MAX_CALLS, what, name);
    }
    return 0;
}

/*
 * Calls a macro (or a {% call %} block's caller) with Jinja's binding rules:
 * positional arguments first, then keyword arguments for the remaining
 * parameters, then defaults (evaluated in the macro's scope, so they can use
 * earlier parameters); missing parameters are undefined; extra arguments go
 * to varargs/kwargs when the body uses them, else they are an error.
 * With `direct`, the output goes straight to the output buffer.
 */
static int call_macro(struct rctx *rc, const struct expr *at, const struct macro_val *m,
                      const struct call_args *ca, const struct tval *caller, bool direct,
                      struct tval *out)
{
    const struct macro_def *d = m->def;
    if (enter_call(rc, at->line, at->col, "macro", d->name)) return -1;
    int r = -1;
    const struct template *saved_tmpl = rc->tmpl;
    bool saved_suppress = rc->suppress, saved_ae = rc->autoescape;
    struct scope *s = scope_new(rc, m->closure);
    if (!s) goto out;
    if (ca->npos > d->nparams && !d->catch_varargs) {
        tmpl_rc_error(rc, at->line, at->col, "macro '%s' takes not more than %zu argument(s)",
                      d->name, d->nparams);
        goto out;
    }
    bool *used = ca->nkw ? tmpl_rc_alloc(rc, ca->nkw * sizeof(bool)) : NULL;
    if (ca->nkw && !used) goto out;
    for (size_t k = 0; k < ca->nkw; k++)
        used[k] = false;
    rc->tmpl = m->tmpl;
    for (size_t i = 0; i < d->nparams; i++) {
        struct tval v;
        bool have = false;
        if (i < ca->npos) {
            v = ca->pos[i];
            have = true;
        } else {
            for (size_t k = 0; k < ca->nkw; k++) {
                if (ca->kwn[k] == d->params[i]) {
                    v = ca->kwv[k];
                    used[k] = true;
                    have = true;
                    break;
                }
            }
        }
        if (!have) {
            if (d->defaults[i]) {
                if (eval(rc, s, d->defaults[i], &v)) goto out;
            } else {
                v = tv_undef(d->params[i]);
            }
        }
        if (scope_set(rc, s, d->params[i], &v)) goto out;
    }
    rc->tmpl = saved_tmpl;
    struct tdict *kw = NULL;
    for (size_t k = 0; k < ca->nkw; k++) {
        if (used[k]) continue;
        if (!d->catch_kwargs) {
            tmpl_rc_error(rc, at->line, at->col, "macro '%s' takes no keyword argument '%s'",
                          d->name, ca->kwn[k]);
            goto out;
        }
        if (!kw && !(kw = dict_new(rc, ca->nkw))) goto out;
        struct tval key = tv_str(ca->kwn[k], strlen(ca->kwn[k]), false);
        if (dict_set(rc, kw, &key, &ca->kwv[k])) goto out;
    }
    if (d->catch_kwargs) {
        if (!kw && !(kw = dict_new(rc, 1))) goto out;
        struct tval v = {.kind = TV_DICT};
        v.u.dict = kw;
        if (scope_set(rc, s, rc->env->sym_kwargs, &v)) goto out;
    }
    if (d->catch_varargs) {
        size_t extra = ca->npos > d->nparams ? ca->npos - d->nparams : 0;
        struct tlist *l = list_new(rc, extra);
        if (!l) goto out;
        for (size_t i = 0; i < extra; i++)
            l->items[i] = ca->pos[d->nparams + i];
        struct tval v = list_val(l, true);
        if (scope_set(rc, s, rc->env->sym_varargs, &v)) goto out;
    }
    if (caller || d->uses_caller) {
        struct tval v = caller ? *caller : tv_undef("caller");
        if (scope_set(rc, s, rc->env->sym_caller, &v)) goto out;
    }
    rc->tmpl = m->tmpl;
    rc->suppress = false;
    rc->autoescape = m->autoescape;
    if (direct)
        r = exec_body(rc, s, &d->body);
    else
        r = capture(rc, s, &d->body, m->autoescape, out);
out:
    rc->tmpl = saved_tmpl;
    rc->suppress = saved_suppress;
    rc->autoescape = saved_ae;
    rc->calls--;
    return r;
}

static struct chain_entry *chain_find(struct blockchain *ch, const char *name)
{
    for (size_t i = 0; ch && i < ch->n; i++)
        if (ch->e[i].name == name) return &ch->e[i];
    return NULL;
}

/* Renders level `level` of block `ce` (0 = the most derived). */
static int render_block(struct rctx *rc, struct scope *sc, struct chain_entry *ce, size_t level,
                        bool direct, struct tval *out)
{
    const struct chain_level *lv = &ce->levels[level];
    if (enter_call(rc, lv->node->line, lv->node->col, "block", ce->name)) return -1;
    const struct template *saved_tmpl = rc->tmpl;
    const char *saved_block = rc->cur_block;
    size_t saved_level = rc->cur_block_level;
    bool saved_suppress = rc->suppress;
    int r = -1;
    struct scope *s = scope_new(rc, lv->node->u.block.scoped ? sc : rc->root);
    if (s) {
        rc->tmpl = lv->tmpl;
        rc->cur_block = ce->name;
        rc->cur_block_level = level;
        rc->suppress = false;
        if (direct)
            r = exec_body(rc, s, &lv->node->u.block.body);
        else
            r = capture(rc, s, &lv->node->u.block.body, rc->autoescape, out);
    }
    rc->tmpl = saved_tmpl;
    rc->cur_block = saved_block;
    rc->cur_block_level = saved_level;
    rc->suppress = saved_suppress;
    rc->calls--;
    return r;
}

static int call_builtin(struct rctx *rc, struct scope *sc, const struct expr *e, int fn,
                        const struct call_args *ca, bool direct, bool *streamed, struct tval *out)
{
    switch (fn) {
    case FN_RANGE: {
        if (ca->nkw || ca->npos < 1 || ca->npos > 3)
            return tmpl_rc_error(rc, e->line, e->col, "range expected 1 to 3 integer arguments");
        int64_t v[3];
        for (size_t i = 0; i < ca->npos; i++) {
            if (ca->pos[i].kind == TV_UNDEF)
                return tmpl_rc_undefined_error(rc, e->line, e->col, &ca->pos[i]);
            if (ca->pos[i].kind != TV_INT && ca->pos[i].kind != TV_BOOL)
                return tmpl_rc_error(rc, e->line, e->col,
                                     "'%s' object cannot be interpreted as an integer",
                                     tmpl_tv_type_name(&ca->pos[i]));
            v[i] = as_int(&ca->pos[i]);
        }
        int64_t start = ca->npos > 1 ? v[0] : 0, stop = ca->npos > 1 ? v[1] : v[0];
        int64_t step = ca->npos > 2 ? v[2] : 1;
        if (step == 0) return tmpl_rc_error(rc, e->line, e->col, "range() arg 3 must not be zero");
        /* The distance fits in uint64_t even for the extremes of int64_t. */
        uint64_t count = 0;
        if (step > 0 && start < stop)
            count = ((uint64_t)stop - (uint64_t)start - 1) / (uint64_t)step + 1;
        else if (step < 0 && stop < start)
            count = ((uint64_t)start - (uint64_t)stop - 1) / ((uint64_t)0 - (uint64_t)step) + 1;
        if (count > 1000000)
            return tmpl_rc_error(rc, e->line, e->col, "range() of more than 1000000 items");
        struct tlist *l = list_new(rc, (size_t)count);
        if (!l) return -1;
        /* Unsigned arithmetic: the intermediate i * step may exceed
         * int64_t although every value is between start and stop. */
        for (size_t i = 0; i < (size_t)count; i++)
            l->items[i] = tv_int((int64_t)((uint64_t)start + (uint64_t)i * (uint64_t)step));
        *out = list_val(l, false);
        return 0;
    }
    case FN_DICT:
    case FN_NAMESPACE: {
        struct tdict *d = dict_new(rc, ca->nkw + 1);
        if (!d) return -1;
        if (ca->npos > 1)
            return tmpl_rc_error(rc, e->line, e->col, "%s expected at most 1 argument",
                                 fn == FN_DICT ? "dict" : "namespace");
        if (ca->npos == 1) {
            const struct tval *src = &ca->pos[0];
            if (!tmpl_tv_is_mapping(src))
                return tmpl_rc_error(rc, e->line, e->col, "%s() needs a mapping argument",
                                     fn == FN_DICT ? "dict" : "namespace");
            struct tlist keys;
            if (src->kind == TV_NAMESPACE) {
                keys.n = src->u.dict->n;
                keys.items = src->u.dict->keys;
            } else if (tmpl_iterate(rc, e->line, e->col, src, &keys)) {
                return -1;
            }
            for (size_t i = 0; i < keys.n; i++) {
                struct tval v;
                if (tmpl_getitem(rc, e->line, e->col, src, &keys.items[i], &v) ||
                    dict_set(rc, d, &keys.items[i], &v))
                    return -1;
            }
        }
        for (size_t i = 0; i < ca->nkw; i++) {
            struct tval k = tv_str(ca->kwn[i], strlen(ca->kwn[i]), false);
            if (dict_set(rc, d, &k, &ca->kwv[i])) return -1;
        }
        out->kind = fn == FN_DICT ? TV_DICT : TV_NAMESPACE;
        out->safe = out->tuple = 0;
        out->u.dict = d;
        return 0;
    }
    case FN_SUPER: {
        struct chain_entry *ce = chain_find(rc->chain, rc->cur_block);
        if (!rc->cur_block || !ce)
            return tmpl_rc_error(rc, e->line, e->col, "super() is only available inside a block");
        if (rc->cur_block_level + 1 >= ce->n)
            return tmpl_rc_error(rc, e->line, e->col, "there is no parent block called '%s'",
                                 rc->cur_block);
        *streamed = direct;
        return render_block(rc, sc, ce, rc->cur_block_level + 1, direct, out);
    }
    default:
        return tmpl_rc_error(rc, e->line, e->col, "unknown function");
    }
}

static int dict_method(struct rctx *rc, const struct expr *e, const struct tval *obj,
                       const char *name, const struct call_args *ca, struct tval *out, bool *done)
{
    bool items = !strcmp(name, "items"), keys = !strcmp(name, "keys"),
         values = !strcmp(name, "values"), get = !strcmp(name, "get");
    if (!items && !keys && !values && !get) return 0;
    *done = true;
    if (get) {
        if (ca->npos < 1 || ca->npos > 2 || ca->nkw)
            return tmpl_rc_error(rc, e->line, e->col, "get expected 1 or 2 arguments");
        struct tval v;
        bool found = false;
        if (obj->kind == TV_DICT) {
            for (size_t i = 0; i < obj->u.dict->n && !found; i++)
                if (tmpl_tv_equal(&obj->u.dict->keys[i], &ca->pos[0])) {
                    v = obj->u.dict->vals[i];
                    found = true;
                }
        } else if (ca->pos[0].kind == TV_STR) {
            found = tmpl_tv_mapping_get(obj, ca->pos[0].u.s.p, ca->pos[0].u.s.n, &v);
        }
        *out = found ? v : ca->npos > 1 ? ca->pos[1] : tv_none();
        return 0;
    }
    if (ca->npos || ca->nkw)
        return tmpl_rc_error(rc, e->line, e->col, "%s() takes no arguments", name);
    struct tlist ks;
    if (obj->kind == TV_NAMESPACE) {
        ks.n = obj->u.dict->n;
        ks.items = obj->u.dict->keys;
    } else if (tmpl_iterate(rc, e->line, e->col, obj, &ks)) {
        return -1;
    }
    struct tlist *l = list_new(rc, ks.n);
    if (!l) return -1;
    for (size_t i = 0; i < ks.n; i++) {
        struct tval v;
        if (!keys && tmpl_getitem(rc, e->line, e->col, obj, &ks.items[i], &v)) return -1;
        if (keys) {
            l->items[i] = ks.items[i];
        } else if (values) {
            l->items[i] = v;
        } else {
            struct tlist *pair = list_new(rc, 2);
            if (!pair) return -1;
            pair->items[0] = ks.items[i];
            pair->items[1] = v;
            l->items[i] = list_val(pair, true);
        }
    }
    *out = list_val(l, false);
    return 0;
}

/*
 * Evaluates a call. With `direct`, macro, caller and super() output is
 * written straight to the output buffer and *streamed is set (there is then
 * no value to print); `caller` is the {% call %} block, if any.
 */
static NOINLINE int eval_call(struct rctx *rc, struct scope *sc, const struct expr *e,
                              const struct tval *caller, bool direct, bool *streamed,
                              struct tval *out)
{
    struct tval callee;
    struct call_args ca;
    bool have_args = false;
    *streamed = false;
    if (e->a->kind == E_GETATTR) {
        struct tval obj;
        const char *name = e->a->name;
        if (eval(rc, sc, e->a->a, &obj)) return -1;
        if (tmpl_tv_is_mapping(&obj) || obj.kind == TV_STR ||
            (obj.kind == TV_LOOP && !strcmp(name, "cycle"))) {
            if (eval_args(rc, sc, e, &ca)) return -1;
            have_args = true;
            bool done = false;
            if (obj.kind == TV_LOOP) {
                if (ca.npos == 0)
                    return tmpl_rc_error(rc, e->line, e->col, "no items for cycling given");
                *out = ca.pos[obj.u.loop->index0 % ca.npos];
                return 0;
            }
            if (obj.kind == TV_STR) {
                int r = tmpl_str_method(rc, e, &obj, name, ca.pos, ca.npos, out);
                if (r != 0) return r < 0 ? -1 : 0;
            } else if (obj.kind != TV_NAMESPACE ||
                       !tmpl_tv_mapping_get(&obj, name, strlen(name), &callee)) {
                if (dict_method(rc, e, &obj, name, &ca, out, &done)) return -1;
                if (done) return 0;
            }
        }
        if (tmpl_getattr(rc, &obj, name, strlen(name), &callee)) return -1;
        if (callee.kind == TV_UNDEF && obj.kind != TV_UNDEF)
            return tmpl_rc_error(rc, e->line, e->col, "'%s' object has no attribute '%s'",
                                 tmpl_tv_type_name(&obj), name);
    } else if (eval(rc, sc, e->a, &callee)) {
        return -1;
    }
    if (callee.kind == TV_UNDEF) return tmpl_rc_undefined_error(rc, e->line, e->col, &callee);
    if (callee.kind != TV_MACRO && callee.kind != TV_FUNC && callee.kind != TV_BLOCKREF)
        return tmpl_rc_error(rc, e->line, e->col, "'%s' object is not callable",
                             tmpl_tv_type_name(&callee));
    if (!have_args && eval_args(rc, sc, e, &ca)) return -1;
    if (callee.kind == TV_BLOCKREF) {
        /* self.name(): the most derived version of the block, once more. */
        struct chain_entry *ce = chain_find(rc->chain, callee.u.s.p);
        if (!ce) return tmpl_rc_error(rc, e->line, e->col, "no block named '%s'", callee.u.s.p);
        *streamed = direct;
        return render_block(rc, rc->root, ce, 0, direct, out);
    }
    switch (callee.kind) {
    case TV_MACRO: {
        bool can_stream = direct && (callee.u.macro->autoescape || !rc->autoescape);
        *streamed = can_stream;
        return call_macro(rc, e, callee.u.macro, &ca, caller, can_stream, out);
    }
    default:
        return call_builtin(rc, sc, e, callee.u.fn, &ca, direct, streamed, out);
    }
}

/* ---- filters and tests ---- */

/* A filter written in C by the application: values cross as JSON. */
static NOINLINE int apply_custom_filter(struct rctx *rc, struct scope *sc, const struct expr *e,
                                        struct tval *v)
{
    json_t *value = tmpl_tv_to_json(rc, v);
    json_t **args = e->nargs ? tmpl_rc_alloc(rc, e->nargs * sizeof(*args)) : NULL;
    if (!value || (e->nargs && !args)) {
        json_decref(value);
        return -1;
    }
    tmpl_keep(rc, value);
    for (size_t i = 0; i < e->nargs; i++) {
        struct tval a;
        if (eval(rc, sc, e->args[i], &a)) return -1;
        args[i] = tmpl_tv_to_json(rc, &a);
        if (!args[i]) return -1;
        tmpl_keep(rc, args[i]);
    }
    struct echo_err ferr;
    echo_err_clear(&ferr);
    json_t *res = e->custom(value, args, e->nargs, &ferr);
    if (!res)
        return tmpl_rc_error(rc, e->line, e->col, "filter '%s': %s", e->name,
                             ferr.msg[0] ? ferr.msg : "failed");
    tmpl_keep(rc, res);
    *v = tmpl_tv_from_json(res);
    return 0;
}

static int apply_filter(struct rctx *rc, struct scope *sc, const struct expr *e, struct tval *v)
{
    if (e->custom) return apply_custom_filter(rc, sc, e, v);
    struct tval args[TMPL_MAX_PARAMS];
    for (size_t i = 0; i < TMPL_MAX_PARAMS; i++)
        args[i].kind = TV_MISSING;
    for (size_t i = 0; i < TMPL_MAX_PARAMS && e->filter->params[i]; i++)
        if (e->bound[i] && eval(rc, sc, e->bound[i], &args[i])) return -1;
    if (v->kind == TV_UNDEF && !e->filter->undefined_ok)
        return tmpl_rc_undefined_error(rc, e->line, e->col, v);
    return e->filter->fn(rc, e, v, args);
}

static NOINLINE int eval_filter(struct rctx *rc, struct scope *sc, const struct expr *e,
                                struct tval *out)
{
    if (e->a) {
        if (eval(rc, sc, e->a, out)) return -1;
    } else {
        *out = rc->placeholder;
    }
    return apply_filter(rc, sc, e, out);
}

static NOINLINE int eval_test(struct rctx *rc, struct scope *sc, const struct expr *e,
                              struct tval *out)
{
    struct tval v, args[TMPL_MAX_PARAMS];
    if (eval(rc, sc, e->a, &v)) return -1;
    for (size_t i = 0; i < TMPL_MAX_PARAMS; i++)
        args[i].kind = TV_MISSING;
    for (size_t i = 0; i < TMPL_MAX_PARAMS && e->test->params[i]; i++)
        if (e->bound[i] && eval(rc, sc, e->bound[i], &args[i])) return -1;
    bool result;
    if (e->test->fn(rc, e, &v, args, &result)) return -1;
    *out = tv_bool(e->op ? !result : result);
    return 0;
}

/* ---- the evaluator ---- */

/*
 * The evaluator recurses once per level of the expression tree, so its own
 * frame is kept small: every case that needs more locals lives in a helper
 * that is not inlined (NOINLINE), and only the path actually taken pays for
 * its frame. TMPL_MAX_EVAL_DEPTH x the largest chain of frames stays far
 * below a thread's stack.
 */

static NOINLINE int eval_list(struct rctx *rc, struct scope *sc, const struct expr *e,
                              struct tval *out)
{
    struct tlist *l = list_new(rc, e->nargs);
    if (!l) return -1;
    for (size_t i = 0; i < e->nargs; i++)
        if (eval(rc, sc, e->args[i], &l->items[i])) return -1;
    *out = list_val(l, e->kind == E_TUPLE);
    return 0;
}

static NOINLINE int eval_dict(struct rctx *rc, struct scope *sc, const struct expr *e,
                              struct tval *out)
{
    struct tdict *d = dict_new(rc, e->nargs / 2);
    if (!d) return -1;
    for (size_t i = 0; i + 1 < e->nargs; i += 2) {
        struct tval k, v;
        if (eval(rc, sc, e->args[i], &k) || eval(rc, sc, e->args[i + 1], &v)) return -1;
        if (k.kind == TV_LIST && !k.tuple)
            return tmpl_rc_error(rc, e->line, e->col, "unhashable type: 'list'");
        if (k.kind == TV_DICT || k.kind == TV_JSON || k.kind == TV_NAMESPACE)
            return tmpl_rc_error(rc, e->line, e->col, "unhashable type: '%s'",
                                 tmpl_tv_type_name(&k));
        if (dict_set(rc, d, &k, &v)) return -1;
    }
    out->kind = TV_DICT;
    out->safe = out->tuple = 0;
    out->u.dict = d;
    return 0;
}

static NOINLINE int eval_access(struct rctx *rc, struct scope *sc, const struct expr *e,
                                struct tval *out)
{
    struct tval obj, key;
    if (eval(rc, sc, e->a, &obj)) return -1;
    if (e->kind == E_GETATTR) return tmpl_getattr(rc, &obj, e->name, strlen(e->name), out);
    if (eval(rc, sc, e->b, &key)) return -1;
    return tmpl_getitem(rc, e->line, e->col, &obj, &key, out);
}

static NOINLINE int eval_unary(struct rctx *rc, struct scope *sc, const struct expr *e,
                               struct tval *out)
{
    struct tval v;
    if (eval(rc, sc, e->a, &v)) return -1;
    if (e->op == OP_NOT) {
        *out = tv_bool(!tmpl_tv_truthy(&v));
        return 0;
    }
    if (v.kind == TV_UNDEF) return tmpl_rc_undefined_error(rc, e->line, e->col, &v);
    if (!tmpl_tv_is_number(&v))
        return tmpl_rc_error(rc, e->line, e->col, "bad operand type for unary %s: '%s'",
                             e->op == OP_SUB ? "-" : "+", tmpl_tv_type_name(&v));
    if (e->op == OP_ADD) {
        *out = v.kind == TV_BOOL ? tv_int(v.u.b) : v;
    } else if (v.kind == TV_FLOAT) {
        *out = tv_float(-v.u.f);
    } else {
        int64_t i = as_int(&v);
        if (i == INT64_MIN) return tmpl_rc_error(rc, e->line, e->col, "integer overflow");
        *out = tv_int(-i);
    }
    return 0;
}

static NOINLINE int eval_binary(struct rctx *rc, struct scope *sc, const struct expr *e,
                                struct tval *out)
{
    struct tval a, b;
    if (eval(rc, sc, e->a, &a)) return -1;
    if (e->op == OP_AND || e->op == OP_OR) {
        /* Python returns the deciding operand, not a bool. */
        if (tmpl_tv_truthy(&a) == (e->op == OP_OR)) {
            *out = a;
            return 0;
        }
        return eval(rc, sc, e->b, out);
    }
    if (eval(rc, sc, e->b, &b)) return -1;
    if (e->op == OP_TILDE) return concat(rc, &a, &b, out);
    return tmpl_arith(rc, e, e->op, &a, &b, out);
}

static NOINLINE int eval_cond(struct rctx *rc, struct scope *sc, const struct expr *e,
                              struct tval *out)
{
    struct tval c;
    if (eval(rc, sc, e->a, &c)) return -1;
    if (tmpl_tv_truthy(&c)) return eval(rc, sc, e->b, out);
    if (e->c) return eval(rc, sc, e->c, out);
    *out = tv_undef(NULL);
    return 0;
}

static NOINLINE int eval_call_value(struct rctx *rc, struct scope *sc, const struct expr *e,
                                    struct tval *out)
{
    bool streamed;
    return eval_call(rc, sc, e, NULL, false, &streamed, out);
}

static int eval_inner(struct rctx *rc, struct scope *sc, const struct expr *e, struct tval *out)
{
    switch (e->kind) {
    case E_CONST:
        *out = e->cval;
        return 0;
    case E_NAME:
        *out = lookup(rc, sc, e->name);
        return 0;
    case E_LIST:
    case E_TUPLE:
        return eval_list(rc, sc, e, out);
    case E_DICT:
        return eval_dict(rc, sc, e, out);
    case E_GETATTR:
    case E_GETITEM:
        return eval_access(rc, sc, e, out);
    case E_SLICE:
        return eval_slice(rc, sc, e, out);
    case E_CALL:
        return eval_call_value(rc, sc, e, out);
    case E_FILTER:
        return eval_filter(rc, sc, e, out);
    case E_TEST:
        return eval_test(rc, sc, e, out);
    case E_UNARY:
        return eval_unary(rc, sc, e, out);
    case E_BINARY:
        return eval_binary(rc, sc, e, out);
    case E_COMPARE:
        return eval_compare(rc, sc, e, out);
    case E_COND:
        return eval_cond(rc, sc, e, out);
    default:
        return tmpl_rc_error(rc, e->line, e->col, "unknown expression");
    }
}

static int eval(struct rctx *rc, struct scope *sc, const struct expr *e, struct tval *out)
{
    if (++rc->depth > TMPL_MAX_EVAL_DEPTH) {
        rc->depth--;
        return tmpl_rc_error(rc, e->line, e->col, "templates nested too deeply");
    }
    int r = eval_inner(rc, sc, e, out);
    rc->depth--;
    return r;
}

/* ---- statements ---- */

static int assign(struct rctx *rc, struct scope *sc, const struct target *t, const struct tval *v,
                  int line, int col)
{
    if (t->attr) {
        struct tval ns = lookup(rc, sc, t->names[0]);
        if (ns.kind != TV_NAMESPACE)
            return tmpl_rc_error(
                rc, line, col, "cannot assign attribute on non-namespace object '%s'", t->names[0]);
        struct tval k = tv_str(t->attr, strlen(t->attr), false);
        return dict_set(rc, ns.u.dict, &k, v);
    }
    if (!t->tuple) return scope_set(rc, sc, t->names[0], v);
    if (!tmpl_tv_is_sequence(v) && v->kind != TV_STR && !tmpl_tv_is_mapping(v))
        return tmpl_rc_error(rc, line, col, "cannot unpack non-iterable %s object",
                             tmpl_tv_type_name(v));
    struct tlist items;
    if (tmpl_iterate(rc, line, col, v, &items)) return -1;
    if (items.n > t->n)
        return tmpl_rc_error(rc, line, col, "too many values to unpack (expected %zu)", t->n);
    if (items.n < t->n)
        return tmpl_rc_error(rc, line, col, "not enough values to unpack (expected %zu, got %zu)",
                             t->n, items.n);
    for (size_t i = 0; i < t->n; i++)
        if (scope_set(rc, sc, t->names[i], &items.items[i])) return -1;
    return 0;
}

static int count_step(struct rctx *rc, int line, int col)
{
    return tmpl_count_steps(rc, line, col, 1);
}

static int exec_for(struct rctx *rc, struct scope *sc, const struct node *nd)
{
    struct tval it;
    struct tlist items;
    if (eval(rc, sc, nd->u.for_.iter, &it) ||
        tmpl_iterate(rc, nd->u.for_.iter->line, nd->u.for_.iter->col, &it, &items))
        return -1;
    struct scope *ls = scope_new(rc, sc);
    if (!ls) return -1;
    const struct target *tgt = &nd->u.for_.tgt;
    if (nd->u.for_.cond) {
        /* {% for x in xs if cond %}: filter first, so loop.length counts
         * the kept items (the condition cannot see `loop`). */
        struct tlist *kept = list_new(rc, items.n);
        if (!kept) return -1;
        size_t k = 0;
        for (size_t i = 0; i < items.n; i++) {
            struct tval c;
            ls->n = 0;
            if (count_step(rc, nd->line, nd->col) ||
                assign(rc, ls, tgt, &items.items[i], nd->line, nd->col) ||
                eval(rc, ls, nd->u.for_.cond, &c))
                return -1;
            if (tmpl_tv_truthy(&c)) kept->items[k++] = items.items[i];
        }
        items.items = kept->items;
        items.n = k;
        ls->n = 0;
    }
    if (items.n == 0) {
        ls->n = 0;
        return exec_body(rc, ls, &nd->u.for_.els);
    }
    struct loop_state state = {.items = items, .index0 = 0};
    struct loop_state *st = tmpl_rc_alloc(rc, sizeof(*st));
    if (!st) return -1;
    *st = state;
    struct tval loopv = {.kind = TV_LOOP};
    loopv.u.loop = st;
    if (scope_set(rc, ls, rc->env->sym_loop, &loopv) ||
        assign(rc, ls, tgt, &items.items[0], nd->line, nd->col))
        return -1;
    uint32_t base = ls->n;
    for (size_t i = 0; i < items.n; i++) {
        if (count_step(rc, nd->line, nd->col)) return -1;
        st->index0 = i;
        ls->n = base; /* forget what the previous iteration set */
        if (i > 0 && assign(rc, ls, tgt, &items.items[i], nd->line, nd->col)) return -1;
        if (exec_body(rc, ls, &nd->u.for_.body)) return -1;
    }
    return 0;
}

static const struct template *find_template(struct rctx *rc, const struct node *nd,
                                            const struct tval *name, bool ignore_missing,
                                            int *missing)
{
    *missing = 0;
    if (name->kind == TV_STR) {
        const struct template *t = tmpl_env_find(rc->env, name->u.s.p, name->u.s.n);
        if (t) return t;
        if (!ignore_missing)
            tmpl_rc_error(rc, nd->line, nd->col, "template '%.*s' not found",
                          (int)(name->u.s.n > 200 ? 200 : name->u.s.n), name->u.s.p);
        *missing = 1;
        return NULL;
    }
    if (tmpl_tv_is_sequence(name)) {
        /* The first existing template of a list. */
        struct tlist l;
        if (tmpl_iterate(rc, nd->line, nd->col, name, &l)) return NULL;
        for (size_t i = 0; i < l.n; i++) {
            if (l.items[i].kind != TV_STR) continue;
            const struct template *t = tmpl_env_find(rc->env, l.items[i].u.s.p, l.items[i].u.s.n);
            if (t) return t;
        }
        if (!ignore_missing)
            tmpl_rc_error(rc, nd->line, nd->col, "none of the templates given were found");
        *missing = 1;
        return NULL;
    }
    tmpl_rc_error(rc, nd->line, nd->col, "a template name must be a string, not %s",
                  tmpl_tv_type_name(name));
    return NULL;
}

static struct blockchain *chain_new(struct rctx *rc)
{
    struct blockchain *ch = tmpl_rc_alloc(rc, sizeof(*ch));
    if (!ch) return NULL;
    ch->e = NULL;
    ch->n = ch->cap = 0;
    return ch;
}

static int chain_add(struct rctx *rc, struct blockchain *ch, const struct template *t)
{
    for (size_t i = 0; i < t->nblocks; i++) {
        struct chain_entry *ce = chain_find(ch, t->blocks[i].name);
        if (!ce) {
            if (ch->n == ch->cap) {
                size_t cap = ch->cap ? ch->cap * 2 : 8;
                struct chain_entry *e = tmpl_rc_alloc(rc, cap * sizeof(*e));
                if (!e) return -1;
                if (ch->n) memcpy(e, ch->e, ch->n * sizeof(*e));
                ch->e = e;
                ch->cap = cap;
            }
            ce = &ch->e[ch->n++];
            ce->name = t->blocks[i].name;
            ce->levels = NULL;
            ce->n = ce->cap = 0;
        }
        if (ce->n == ce->cap) {
            size_t cap = ce->cap ? ce->cap * 2 : 4;
            struct chain_level *lv = tmpl_rc_alloc(rc, cap * sizeof(*lv));
            if (!lv) return -1;
            if (ce->n) memcpy(lv, ce->levels, ce->n * sizeof(*lv));
            ce->levels = lv;
            ce->cap = cap;
        }
        ce->levels[ce->n].node = t->blocks[i].node;
        ce->levels[ce->n].tmpl = t;
        ce->n++;
    }
    return 0;
}

/*
 * Renders a template's root body in `root` (and, after {% extends %}, the
 * root bodies of its parents), with its own block chain.
 */
static int render_root(struct rctx *rc, const struct template *t, struct scope *root, int line,
                       int col)
{
    if (enter_call(rc, line, col, "template", t->name)) return -1;
    const struct template *saved_tmpl = rc->tmpl, *saved_parent = rc->parent;
    struct scope *saved_root = rc->root;
    struct blockchain *saved_chain = rc->chain;
    const char *saved_block = rc->cur_block;
    size_t saved_level = rc->cur_block_level;
    bool saved_suppress = rc->suppress, saved_ae = rc->autoescape;
    int r = -1, levels = 0;
    struct blockchain *ch = chain_new(rc);
    if (!ch || chain_add(rc, ch, t)) goto out;
    rc->root = root;
    rc->chain = ch;
    rc->cur_block = NULL;
    for (;;) {
        rc->tmpl = t;
        rc->parent = NULL;
        rc->suppress = false;
        rc->autoescape = true;
        if (exec_body(rc, root, &t->root)) goto out;
        if (!rc->parent) break;
        t = rc->parent;
        if (++levels > TMPL_MAX_CALLS) {
            tmpl_rc_error(rc, line, col,
                          "templates extend each other in a cycle (or more than %d "
                          "levels deep) at '%s'",
                          TMPL_MAX_CALLS, t->name);
            goto out;
        }
    }
    r = 0;
out:
    rc->tmpl = saved_tmpl;
    rc->parent = saved_parent;
    rc->root = saved_root;
    rc->chain = saved_chain;
    rc->cur_block = saved_block;
    rc->cur_block_level = saved_level;
    rc->suppress = saved_suppress;
    rc->autoescape = saved_ae;
    rc->calls--;
    return r;
}

static int import_module(struct rctx *rc, struct scope *sc, const struct node *nd,
                         const struct expr *name_expr, bool with_context, struct module **out)
{
    struct tval name;
    int missing;
    if (eval(rc, sc, name_expr, &name)) return -1;
    const struct template *t = find_template(rc, nd, &name, false, &missing);
    if (!t) return -1;
    struct scope *root = scope_new(rc, with_context ? sc : NULL);
    struct module *m = tmpl_rc_alloc(rc, sizeof(*m));
    if (!root || !m) return -1;
    /* The module's output is discarded; only its names matter. */
    struct strbuf *o = rc->out;
    size_t start = o->len;
    int r = render_root(rc, t, root, nd->line, nd->col);
    o->len = start;
    if (o->data) o->data[start] = 0;
    if (r) return -1;
    m->root = root;
    m->tmpl = t;
    *out = m;
    return 0;
}

static int check_output(struct rctx *rc, const struct node *nd)
{
    if (rc->out->len - rc->out_start > rc->env->max_bytes)
        return tmpl_rc_error(rc, nd->line, nd->col, "the output is larger than %zu bytes",
                             rc->env->max_bytes);
    return 0;
}

static int exec_node(struct rctx *rc, struct scope *sc, const struct node *nd)
{
    rc->cur_line = nd->line;
    rc->cur_col = nd->col;
    switch (nd->kind) {
    case N_TEXT:
        if (!rc->suppress) {
            strbuf_append(rc->out, nd->u.text.p, nd->u.text.n);
            return check_output(rc, nd);
        }
        return 0;
    case N_OUTPUT: {
        if (rc->suppress) return 0;
        struct tval v;
        const struct expr *e = nd->u.expr;
        if (e->kind == E_CALL) {
            bool streamed;
            if (eval_call(rc, sc, e, NULL, true, &streamed, &v)) return -1;
            if (streamed) return check_output(rc, nd);
        } else if (eval(rc, sc, e, &v)) {
            return -1;
        }
        if (tmpl_tv_output(rc, &v)) return -1;
        return check_output(rc, nd);
    }
    case N_IF:
        for (size_t i = 0; i < nd->u.if_.n; i++) {
            struct tval c;
            if (eval(rc, sc, nd->u.if_.conds[i], &c)) return -1;
            if (tmpl_tv_truthy(&c)) return exec_body(rc, sc, &nd->u.if_.bodies[i]);
        }
        return exec_body(rc, sc, &nd->u.if_.els);
    case N_FOR:
        return exec_for(rc, sc, nd);
    case N_SET: {
        struct tval v;
        if (eval(rc, sc, nd->u.set.value, &v)) return -1;
        return assign(rc, sc, &nd->u.set.tgt, &v, nd->line, nd->col);
    }
    case N_SETBLOCK: {
        struct tval v;
        struct scope *inner = scope_new(rc, sc);
        if (!inner || capture(rc, inner, &nd->u.setblock.body, rc->autoescape, &v)) return -1;
        if (nd->u.setblock.filter) {
            struct tval saved = rc->placeholder;
            rc->placeholder = v;
            int r = eval(rc, sc, nd->u.setblock.filter, &v);
            rc->placeholder = saved;
            if (r) return -1;
        }
        return assign(rc, sc, &nd->u.setblock.tgt, &v, nd->line, nd->col);
    }
    case N_BLOCK: {
        if (rc->suppress) return 0;
        struct chain_entry *ce = chain_find(rc->chain, nd->u.block.name);
        if (!ce)
            return tmpl_rc_error(rc, nd->line, nd->col, "block '%s' is not defined",
                                 nd->u.block.name);
        struct tval ignored;
        return render_block(rc, sc, ce, 0, true, &ignored);
    }
    case N_EXTENDS: {
        struct tval name;
        int missing;
        if (rc->parent) return tmpl_rc_error(rc, nd->line, nd->col, "extended multiple times");
        if (eval(rc, sc, nd->u.expr, &name)) return -1;
        const struct template *t = find_template(rc, nd, &name, false, &missing);
        if (!t || chain_add(rc, rc->chain, t)) return -1;
        rc->parent = t;
        rc->suppress = true;
        return 0;
    }
    case N_INCLUDE: {
        if (rc->suppress) return 0;
        struct tval name;
        int missing;
        if (eval(rc, sc, nd->u.include.name, &name)) return -1;
        const struct template *t =
            find_template(rc, nd, &name, nd->u.include.ignore_missing, &missing);
        if (!t) return missing && nd->u.include.ignore_missing ? 0 : -1;
        struct scope *root = scope_new(rc, nd->u.include.with_context ? sc : NULL);
        if (!root) return -1;
        if (render_root(rc, t, root, nd->line, nd->col)) return -1;
        return check_output(rc, nd);
    }
    case N_IMPORT: {
        struct module *m;
        if (import_module(rc, sc, nd, nd->u.import.name, nd->u.import.with_context, &m)) return -1;
        struct tval v = {.kind = TV_MODULE};
        v.u.mod = m;
        return scope_set(rc, sc, nd->u.import.alias, &v);
    }
    case N_FROMIMPORT: {
        struct module *m;
        if (import_module(rc, sc, nd, nd->u.from.name, nd->u.from.with_context, &m)) return -1;
        struct tval mv = {.kind = TV_MODULE};
        mv.u.mod = m;
        for (size_t i = 0; i < nd->u.from.n; i++) {
            struct tval v;
            const char *nm = nd->u.from.names[i];
            if (tmpl_getattr(rc, &mv, nm, strlen(nm), &v) ||
                scope_set(rc, sc, nd->u.from.aliases[i], &v))
                return -1;
        }
        return 0;
    }
    case N_MACRO: {
        struct macro_val *m = tmpl_rc_alloc(rc, sizeof(*m));
        if (!m) return -1;
        m->def = nd->u.macro;
        m->closure = sc;
        m->tmpl = rc->tmpl;
        m->autoescape = rc->autoescape;
        struct tval v = {.kind = TV_MACRO};
        v.u.macro = m;
        return scope_set(rc, sc, nd->u.macro->name, &v);
    }
    case N_CALLBLOCK: {
        if (rc->suppress) return 0;
        struct macro_val *m = tmpl_rc_alloc(rc, sizeof(*m));
        if (!m) return -1;
        m->def = nd->u.callblock.caller;
        m->closure = sc;
        m->tmpl = rc->tmpl;
        m->autoescape = rc->autoescape;
        struct tval caller = {.kind = TV_MACRO}, v;
        caller.u.macro = m;
        bool streamed;
        if (eval_call(rc, sc, nd->u.callblock.call, &caller, true, &streamed, &v)) return -1;
        if (!streamed && tmpl_tv_output(rc, &v)) return -1;
        return check_output(rc, nd);
    }
    case N_WITH: {
        struct scope *inner = scope_new(rc, sc);
        if (!inner) return -1;
        /* Values are evaluated in the outer scope, then bound together. */
        struct tval *vals = nd->u.with.n ? tmpl_rc_alloc(rc, nd->u.with.n * sizeof(*vals)) : NULL;
        if (nd->u.with.n && !vals) return -1;
        for (size_t i = 0; i < nd->u.with.n; i++)
            if (eval(rc, sc, nd->u.with.vals[i], &vals[i])) return -1;
        for (size_t i = 0; i < nd->u.with.n; i++)
            if (scope_set(rc, inner, nd->u.with.names[i], &vals[i])) return -1;
        return exec_body(rc, inner, &nd->u.with.body);
    }
    case N_FILTERBLOCK: {
        if (rc->suppress) return 0;
        struct tval v;
        struct scope *inner = scope_new(rc, sc);
        if (!inner || capture(rc, inner, &nd->u.filterblock.body, rc->autoescape, &v)) return -1;
        struct tval saved = rc->placeholder;
        rc->placeholder = v;
        int r = eval(rc, sc, nd->u.filterblock.filter, &v);
        rc->placeholder = saved;
        if (r || tmpl_tv_output(rc, &v)) return -1;
        return check_output(rc, nd);
    }
    case N_AUTOESCAPE: {
        struct tval v;
        if (eval(rc, sc, nd->u.autoescape.value, &v)) return -1;
        bool saved = rc->autoescape;
        rc->autoescape = tmpl_tv_truthy(&v);
        int r = exec_body(rc, sc, &nd->u.autoescape.body);
        rc->autoescape = saved;
        return r;
    }
    default:
        return tmpl_rc_error(rc, nd->line, nd->col, "unknown statement");
    }
}

static int exec_body(struct rctx *rc, struct scope *sc, const struct body *b)
{
    if (++rc->depth > TMPL_MAX_EVAL_DEPTH) {
        rc->depth--;
        return tmpl_rc_error(rc, b->n ? b->items[0]->line : 0, b->n ? b->items[0]->col : 0,
                             "templates nested too deeply");
    }
    int r = 0;
    for (size_t i = 0; i < b->n && r == 0; i++)
        r = exec_node(rc, sc, b->items[i]);
    rc->depth--;
    return r;
}

int tmpl_render(const tmpl_env *env, const char *name, json_t *ctx, struct strbuf *out,
                struct echo_err *err)
{
    if (!env || !name || !out) {
        echo_err_set(err, "tmpl_render: invalid arguments");
        return TMPL_ERR_RENDER;
    }
    const struct template *t = tmpl_env_find(env, name, strlen(name));
    if (!t) {
        echo_err_set(err, "template '%s' not found", name);
        return TMPL_ERR_NOT_FOUND;
    }
    if (ctx && !json_is_object(ctx)) {
        echo_err_set_at(err, name, 0, 0, "the render context must be a JSON object");
        return TMPL_ERR_RENDER;
    }
    /* Large (8 KiB pool start) but on the stack: no allocation per render. */
    struct rctx rc;
    rc.env = env;
    rc.out = out;
    rc.err = err;
    rc.tmpl = t;
    rc.depth = rc.calls = 0;
    rc.steps = 0;
    rc.out_start = out->len;
    rc.autoescape = true;
    rc.suppress = rc.failed = false;
    rc.parent = NULL;
    rc.chain = NULL;
    rc.root = NULL;
    rc.cur_block = NULL;
    rc.cur_block_level = 0;
    rc.cur_line = rc.cur_col = 0;
    rc.placeholder = tv_undef(NULL);
    rc.keep = NULL;
    rc.nkeep = rc.capkeep = 0;
    pool_init(&rc);

    int r = -1;
    struct scope *root = scope_new(&rc, NULL);
    if (root) {
        root->ctx = ctx;
        r = render_root(&rc, t, root, 0, 0);
    }
    pool_free(&rc);
    for (size_t i = 0; i < rc.nkeep; i++)
        json_decref(rc.keep[i]);
    free(rc.keep);
    if (r) {
        out->len = rc.out_start;
        if (out->data) out->data[out->len] = 0;
        return TMPL_ERR_RENDER;
    }
    return 0;
}
