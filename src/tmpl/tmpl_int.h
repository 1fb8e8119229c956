/*
 * tmpl_int.h - what the modules of the template engine share: the compiled
 * form (expressions and statement nodes), values, the environment, the
 * per-render state and the helpers each module offers the others.
 *
 * Pipeline: lexer.c turns a normalized source into tokens, parser.c builds
 * the tree below (names interned, filters and tests resolved), render.c walks
 * it, filters.c holds the built-in filters and tests, value.c the Python-like
 * value semantics (str(), repr(), ==, <, truth), text.c the Unicode helpers,
 * env.c the environment and template lookup.
 *
 * Not a public header: only the .c files of src/tmpl include it.
 * Threads: the compiled form and the environment are read-only once built;
 * everything that changes during a render hangs off its struct rctx.
 */
#ifndef ECHO_TMPL_INT_H
#define ECHO_TMPL_INT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/core.h"
#include "tmpl/tmpl.h"

/* Limits that turn runaway input into errors instead of stack overflows. */
#define TMPL_MAX_NEST 100        /* parser: nesting of expressions and statements */
#define TMPL_MAX_CALLS 100       /* render: macro/include/import/extends/block depth */
#define TMPL_MAX_EVAL_DEPTH 1000 /* render: total recursion of the evaluator */
#define TMPL_MAX_SOURCE (16u << 20)
#define TMPL_DEFAULT_MAX_BYTES ((size_t)64 << 20)   /* output and scratch, per render */
#define TMPL_DEFAULT_MAX_STEPS ((uint64_t)10000000) /* loop iterations per render */

/* ---- values ------------------------------------------------------------ */

enum tv_kind {
    TV_UNDEF = 0, /* Jinja's (chainable) Undefined; u.s.p holds the name or NULL */
    TV_NONE,
    TV_BOOL,
    TV_INT,
    TV_FLOAT,
    TV_STR,  /* UTF-8 text, u.s (not NUL-terminated in general) */
    TV_LIST, /* a list or tuple built during the render */
    TV_DICT, /* a dict built during the render */
    TV_JSON, /* a borrowed JSON object or array from the context/globals */
    TV_MACRO,
    TV_LOOP,      /* the `loop` variable of a for loop */
    TV_MODULE,    /* the result of {% import %} */
    TV_NAMESPACE, /* namespace(): a dict whose attributes can be assigned */
    TV_FUNC,      /* a built-in global (range, dict, namespace, super, self) */
    TV_BLOCKREF,  /* self.name: a block to render again; u.s.p = its interned name */
    TV_MISSING,   /* an argument slot that the call did not fill (never visible) */
};

struct tlist;
struct tdict;
struct macro_val;
struct loop_state;
struct module;

struct tval {
    uint8_t kind;
    uint8_t safe;  /* TV_STR: markup that is never escaped again */
    uint8_t tuple; /* TV_LIST: a tuple (only changes repr) */
    union {
        bool b;
        int64_t i;
        double f;
        struct {
            const char *p;
            size_t n;
        } s;
        json_t *j;
        struct tlist *list;
        struct tdict *dict;
        struct macro_val *macro;
        struct loop_state *loop;
        struct module *mod;
        int fn;
    } u;
};

struct tlist {
    size_t n;
    struct tval *items;
};

struct tdict {
    size_t n, cap;
    struct tval *keys;
    struct tval *vals;
};

enum tmpl_fn { FN_RANGE = 1, FN_DICT, FN_NAMESPACE, FN_SUPER, FN_SELF };

static inline struct tval tv_undef(const char *name)
{
    struct tval v = {.kind = TV_UNDEF};
    v.u.s.p = name;
    return v;
}
static inline struct tval tv_none(void)
{
    return (struct tval){.kind = TV_NONE};
}
static inline struct tval tv_bool(bool b)
{
    struct tval v = {.kind = TV_BOOL};
    v.u.b = b;
    return v;
}
static inline struct tval tv_int(int64_t i)
{
    struct tval v = {.kind = TV_INT};
    v.u.i = i;
    return v;
}
static inline struct tval tv_float(double f)
{
    struct tval v = {.kind = TV_FLOAT};
    v.u.f = f;
    return v;
}
static inline struct tval tv_str(const char *p, size_t n, bool safe)
{
    struct tval v = {.kind = TV_STR, .safe = safe};
    v.u.s.p = p;
    v.u.s.n = n;
    return v;
}

/* ---- compiled form ----------------------------------------------------- */

enum expr_kind {
    E_CONST,
    E_NAME,
    E_LIST,
    E_TUPLE,
    E_DICT,    /* args: key0, val0, key1, val1, ... */
    E_GETATTR, /* a.name */
    E_GETITEM, /* a[b] */
    E_SLICE,   /* a[b:c:d], any of b, c, d may be NULL */
    E_CALL,    /* a(args, kw=...) */
    E_FILTER,  /* a|name(args): a is NULL for {% filter %} and {% set x | f %} bodies */
    E_TEST,    /* a is [not] name(args) */
    E_UNARY,   /* op: OP_NOT, OP_SUB, OP_ADD */
    E_BINARY,  /* op: arithmetic, OP_TILDE, OP_AND, OP_OR */
    E_COMPARE, /* a op0 args[0] op1 args[1] ... (chained) */
    E_COND,    /* b if a else c (c may be NULL: undefined) */
};

enum tmpl_op {
    OP_NONE = 0,
    OP_ADD,
    OP_SUB,
    OP_MUL,
    OP_DIV,
    OP_FLOORDIV,
    OP_MOD,
    OP_POW,
    OP_TILDE,
    OP_LBRACKET,
    OP_RBRACKET,
    OP_LPAREN,
    OP_RPAREN,
    OP_LBRACE,
    OP_RBRACE,
    OP_EQ,
    OP_NE,
    OP_GT,
    OP_GE,
    OP_LT,
    OP_LE,
    OP_IN,
    OP_NOTIN,
    OP_ASSIGN,
    OP_DOT,
    OP_COLON,
    OP_PIPE,
    OP_COMMA,
    OP_SEMICOLON,
    OP_AND,
    OP_OR,
    OP_NOT,
};

struct filter_def;
struct test_def;

struct expr {
    uint8_t kind;
    uint8_t op; /* E_UNARY/E_BINARY operator; E_TEST: negated */
    int line, col;
    struct expr *a, *b, *c;
    const char *name;   /* E_NAME, E_GETATTR, E_FILTER, E_TEST (interned) */
    struct expr **args; /* items / positional arguments / compare operands */
    size_t nargs;
    const char **kwnames; /* keyword arguments of E_CALL */
    struct expr **kwvals;
    size_t nkw;
    uint8_t *cmp_ops; /* E_COMPARE: one operator per args[i] */
    struct tval cval; /* E_CONST */
    /* E_FILTER / E_TEST: resolved at compile time; `bound` has one slot per
     * declared parameter of a built-in (NULL when not given); custom C
     * filters use args. */
    const struct filter_def *filter;
    const struct test_def *test;
    tmpl_filter_fn custom;
    struct expr **bound;
};

enum node_kind {
    N_TEXT,
    N_OUTPUT,
    N_IF,
    N_FOR,
    N_SET,
    N_SETBLOCK,
    N_BLOCK,
    N_EXTENDS,
    N_INCLUDE,
    N_IMPORT,
    N_FROMIMPORT,
    N_MACRO,
    N_CALLBLOCK,
    N_WITH,
    N_FILTERBLOCK,
    N_AUTOESCAPE,
};

struct node;
struct body {
    struct node **items;
    size_t n;
};

/* An assignment target: `name`, `a, b` or `ns.attr`. */
struct target {
    const char **names;
    size_t n;         /* 1 for a plain name */
    bool tuple;       /* written as a tuple (unpacks even with one name) */
    const char *attr; /* namespace attribute assignment names[0].attr */
};

struct macro_def {
    const char *name;
    const char **params;
    struct expr **defaults; /* NULL where a parameter has no default */
    size_t nparams;
    struct body body;
    bool catch_varargs, catch_kwargs, uses_caller;
    int line, col;
};

struct node {
    uint8_t kind;
    int line, col;
    union {
        struct {
            const char *p;
            size_t n;
        } text;
        struct expr *expr; /* N_OUTPUT, N_EXTENDS */
        struct {
            size_t n;
            struct expr **conds;
            struct body *bodies;
            struct body els;
        } if_;
        struct {
            struct target tgt;
            struct expr *iter, *cond;
            struct body body, els;
        } for_;
        struct {
            struct target tgt;
            struct expr *value;
        } set;
        struct {
            struct target tgt;
            struct expr *filter; /* may be NULL */
            struct body body;
        } setblock;
        struct {
            const char *name;
            struct body body;
            bool scoped;
        } block;
        struct {
            struct expr *name;
            bool ignore_missing, with_context;
        } include;
        struct {
            struct expr *name;
            const char *alias;
            bool with_context;
        } import;
        struct {
            struct expr *name;
            const char **names, **aliases;
            size_t n;
            bool with_context;
        } from;
        struct macro_def *macro;
        struct {
            struct expr *call;
            struct macro_def *caller;
        } callblock;
        struct {
            const char **names;
            struct expr **vals;
            size_t n;
            struct body body;
        } with;
        struct {
            struct expr *filter;
            struct body body;
        } filterblock;
        struct {
            struct expr *value;
            struct body body;
        } autoescape;
    } u;
};

struct block_def {
    const char *name; /* interned */
    const struct node *node;
};

struct template
{
    char *name;
    char *src; /* normalized source (\n newlines, no final newline) */
    size_t len;
    struct body root;
    struct block_def *blocks;
    size_t nblocks;
    arena *arena; /* everything above lives here */
};

/* ---- environment --------------------------------------------------------- */

struct global {
    const char *name; /* interned */
    json_t *value;    /* own reference */
    struct tval tv;
};

struct custom_filter {
    char *name;
    tmpl_filter_fn fn;
};

struct tmpl_env {
    struct template **tmpls; /* open-addressing table by name */
    size_t tmpl_cap, ntmpls;
    const char **syms; /* interned names, open addressing */
    size_t sym_cap, nsyms;
    struct global *globals;
    size_t nglobals;
    struct custom_filter *filters;
    size_t nfilters;
    arena *arena; /* interned names */
    /* Names the renderer binds itself, interned up front (rendering must
     * not intern: the environment is read-only then). */
    const char *sym_loop, *sym_caller, *sym_varargs, *sym_kwargs;
    size_t max_bytes;
    uint64_t max_steps;
};

/* env.c */
const char *tmpl_intern(tmpl_env *env, const char *s, size_t n);
const struct template *tmpl_env_find(const tmpl_env *env, const char *name, size_t n);
tmpl_filter_fn tmpl_env_custom_filter(const tmpl_env *env, const char *name);
/* Reports a syntax error at line:col of t with the source line and a caret. */
void tmpl_syntax_error(const struct template *t, int line, int col, struct echo_err *err,
                       const char *fmt, ...) ECHO_PRINTF(5, 6);

/* lexer.c */
enum tok_type {
    T_EOF,
    T_DATA,
    T_VAR_BEGIN,
    T_VAR_END,
    T_BLOCK_BEGIN,
    T_BLOCK_END,
    T_NAME,
    T_STRING,
    T_INT,
    T_FLOAT,
    T_OP,
};

struct token {
    uint8_t type;
    uint8_t op;
    int line, col;
    const char *p; /* T_DATA, T_NAME: into the source; T_STRING: decoded (arena) */
    size_t n;
    int64_t ival;
    double fval;
};

int tmpl_lex(const struct template *t, struct token **toks, size_t *ntoks, struct echo_err *err);
/* Computes the 1-based line and column (in code points) of a byte offset. */
void tmpl_pos(const struct template *t, size_t off, int *line, int *col);

/* parser.c */
int tmpl_parse(tmpl_env *env, struct template *t, struct echo_err *err);

/* ---- text.c: Unicode helpers (Python str semantics) -------------------- */

/* Decodes one code point at s[*i] (advancing *i); an invalid byte decodes
 * as U+FFFD and advances by one, so every loop makes progress. */
uint32_t tmpl_utf8_next(const char *s, size_t n, size_t *i);
/* Encodes cp into buf (4 bytes), returns the length. */
size_t tmpl_utf8_put(char *buf, uint32_t cp);
size_t tmpl_utf8_count(const char *s, size_t n);
/* Byte offset of code point index k (clamped to n). */
size_t tmpl_utf8_offset(const char *s, size_t n, size_t k);
bool tmpl_uni_isspace(uint32_t cp); /* Python str.isspace */
bool tmpl_uni_isprintable(uint32_t cp);
/* Full case mappings as Python's str.upper()/lower()/title(); write up to 3
 * code points into out, return their number. */
int tmpl_uni_upper(uint32_t cp, uint32_t out[3]);
int tmpl_uni_lower(uint32_t cp, uint32_t out[3]);
int tmpl_uni_title(uint32_t cp, uint32_t out[3]);
bool tmpl_uni_isupper(uint32_t cp);
bool tmpl_uni_islower(uint32_t cp);
bool tmpl_uni_iscased(uint32_t cp);
bool tmpl_uni_iscaseignorable(uint32_t cp);
bool tmpl_uni_isalnum(uint32_t cp);

/* ---- per-render state (render.c) ----------------------------------------- */

struct pool_block {
    struct pool_block *next;
    size_t size, used;
    _Alignas(16) char data[];
};

/* A bump allocator that starts in a buffer inside the render state (no
 * malloc for a typical page) and chains heap blocks after that. */
struct pool {
    char *cur;
    size_t left;
    size_t total, limit;
    struct pool_block *heap;
};

/* A string being built in the pool. */
struct abuf {
    struct rctx *rc;
    char *p;
    size_t n, cap;
};

struct scope;
struct blockchain;

struct rctx {
    const tmpl_env *env;
    struct strbuf *out;
    struct echo_err *err;
    const struct template *tmpl; /* whose code is running (for error messages) */
    struct pool pool;
    int depth, calls;
    int cur_line, cur_col; /* the statement being run, for errors without a position */
    uint64_t steps;
    size_t out_start;
    bool autoescape;
    bool suppress; /* output of a root body after {% extends %} is dropped */
    bool failed;
    const struct template *parent; /* set by {% extends %} in the running root body */
    struct scope *root;            /* root scope of the running template render */
    struct blockchain *chain;      /* block overrides of the running inheritance chain */
    const char *cur_block;         /* for super(): the block being rendered ... */
    size_t cur_block_level;        /* ... and its index in the chain */
    struct tval placeholder;       /* the value fed to {% filter %} / {% set | f %} */
    json_t **keep;                 /* results of custom filters, released at the end */
    size_t nkeep, capkeep;
    _Alignas(16) char inline_buf[8192];
};

void *tmpl_rc_alloc(struct rctx *rc, size_t n); /* NULL (with error set) when over the limit */
char *tmpl_rc_strdup(struct rctx *rc, const char *s, size_t n);
/* Records a runtime error at line:col of the running template; returns -1. */
int tmpl_rc_error(struct rctx *rc, int line, int col, const char *fmt, ...) ECHO_PRINTF(4, 5);
int tmpl_rc_undefined_error(struct rctx *rc, int line, int col, const struct tval *v);

void tmpl_abuf_init(struct abuf *b, struct rctx *rc);
int tmpl_abuf_put(struct abuf *b, const char *s, size_t n);
int tmpl_abuf_putc(struct abuf *b, char c);
int tmpl_abuf_putcp(struct abuf *b, uint32_t cp);
struct tval tmpl_abuf_finish(struct abuf *b, bool safe);

const char *tmpl_macro_name(const struct macro_val *m);
/* Follows an attribute path "a.b.0" as used by sort/map/... (Jinja's
 * make_attrgetter). */
int tmpl_get_path(struct rctx *rc, const struct tval *obj, const char *path, struct tval *out);
int tmpl_getattr(struct rctx *rc, const struct tval *obj, const char *name, size_t n,
                 struct tval *out);
int tmpl_getitem(struct rctx *rc, int line, int col, const struct tval *obj, const struct tval *key,
                 struct tval *out);
/* A list-like snapshot of any iterable value (strings yield code points,
 * mappings their keys). Undefined yields nothing; other types are an error. */
int tmpl_iterate(struct rctx *rc, int line, int col, const struct tval *v, struct tlist *out);
/* Python's binary arithmetic (op: OP_ADD ... OP_POW) and comparisons (OP_EQ ...
 * OP_NOTIN), errors reported at e. */
int tmpl_arith(struct rctx *rc, const struct expr *e, int op, const struct tval *a,
               const struct tval *b, struct tval *out);
int tmpl_compare_op(struct rctx *rc, const struct expr *e, int op, const struct tval *a,
                    const struct tval *b, bool *result);
/* Charges n steps of work against the render's limit (loop iterations). */
int tmpl_count_steps(struct rctx *rc, int line, int col, uint64_t n);
/* Registers a JSON value produced during the render to be released at its end. */
void tmpl_keep(struct rctx *rc, json_t *j);

/* ---- value.c ------------------------------------------------------------ */

struct tval tmpl_tv_from_json(json_t *j);
bool tmpl_tv_truthy(const struct tval *v);
bool tmpl_tv_is_str(const struct tval *v);
bool tmpl_tv_is_mapping(const struct tval *v);
bool tmpl_tv_is_sequence(const struct tval *v); /* list, tuple, JSON array */
bool tmpl_tv_is_number(const struct tval *v);   /* int, float, bool */
const char *tmpl_tv_type_name(const struct tval *v);
/* Python str(): appends the text of v (no escaping). */
int tmpl_tv_str_append(struct abuf *b, const struct tval *v);
/* Python repr(). */
int tmpl_tv_repr_append(struct abuf *b, const struct tval *v);
/* str(v) as a value: strings are returned as they are (keeping safe). */
int tmpl_tv_to_str(struct rctx *rc, const struct tval *v, struct tval *out);
/* Writes v as it appears in output: escaped unless safe or !autoescape. */
int tmpl_tv_output(struct rctx *rc, const struct tval *v);
/* Appends HTML-escaped text (markupsafe's entities). */
void tmpl_html_escape_append(struct strbuf *sb, const char *s, size_t n);
int tmpl_html_escape_abuf(struct abuf *b, const char *s, size_t n);
/* The markup (escaped unless already safe) form of v, as Jinja's escape(). */
int tmpl_tv_escape(struct rctx *rc, const struct tval *v, struct tval *out);
bool tmpl_tv_equal(const struct tval *a, const struct tval *b);
/* Python ordering: 0 ok with *cmp set, -1 when the types do not order. */
int tmpl_tv_compare(const struct tval *a, const struct tval *b, int *cmp);
size_t tmpl_tv_len(const struct tval *v); /* only for strings, lists, mappings */
/* Python float repr. */
void tmpl_fmt_float(double f, char buf[32]);
size_t tmpl_fmt_int(int64_t i, char buf[24]);
/* JSON serialization as Jinja's tojson (sorted keys, HTML-safe escapes). */
int tmpl_tv_tojson(struct rctx *rc, int line, int col, const struct tval *v, int indent,
                   struct abuf *b);
/* A new JSON value for v (for custom filters); NULL when it has no JSON form. */
json_t *tmpl_tv_to_json(struct rctx *rc, const struct tval *v);
/* Looks a key up in a mapping value (TV_DICT, TV_NAMESPACE, JSON object). */
bool tmpl_tv_mapping_get(const struct tval *m, const char *k, size_t n, struct tval *out);

/* ---- filters.c ---------------------------------------------------------- */

#define TMPL_MAX_PARAMS 5

typedef int (*filter_fn)(struct rctx *rc, const struct expr *e, struct tval *v, struct tval *args);
typedef int (*test_fn)(struct rctx *rc, const struct expr *e, const struct tval *v,
                       struct tval *args, bool *result);

struct filter_def {
    const char *name;
    filter_fn fn;
    const char *params[TMPL_MAX_PARAMS]; /* after the value; NULL-terminated */
    bool undefined_ok;                   /* called for undefined values (else: error) */
};

struct test_def {
    const char *name;
    test_fn fn;
    const char *params[TMPL_MAX_PARAMS];
};

const struct filter_def *tmpl_find_filter(const char *name);
const struct test_def *tmpl_find_test(const char *name);

/* Python-like string methods on str values (s.upper(), s.split(), ...);
 * 1 when `name` is one, 0 when not (out untouched), -1 on error. */
int tmpl_str_method(struct rctx *rc, const struct expr *call, const struct tval *s,
                    const char *name, struct tval *args, size_t nargs, struct tval *out);
/* Shared by filters and string methods. */
int tmpl_case_map(struct rctx *rc, const struct tval *v, int how, struct tval *out);
enum { CASE_UPPER, CASE_LOWER, CASE_TITLE, CASE_CAPITALIZE };

#endif
