/*
 * parser.c - builds the compiled form of a template from its tokens, after
 * Jinja2's parser (jinja2/parser.py): the same statements, the same operator
 * precedence (lowest first: inline if/else, or, and, not, comparisons, + -,
 * ~, * / // %, **, unary - +, then primaries with .attr [index] (call) and
 * filters/tests), the same tuple rules.
 *
 * Work done here so that rendering does not have to: names are interned,
 * filters and tests are looked up and their arguments bound to parameter
 * slots, adjacent string literals are joined, and macros learn whether they
 * use varargs/kwargs. Errors carry line:col of the offending token. Nesting
 * is limited (TMPL_MAX_NEST) so hostile input cannot exhaust the stack.
 *
 * Everything is allocated in the template's arena; nothing needs freeing on
 * the error paths.
 */
#include <stdio.h>
#include <string.h>

#include "tmpl/tmpl_int.h"

struct vec {
    void **items;
    size_t n, cap;
};

struct parser {
    tmpl_env *env;
    struct template *t;
    struct token *toks;
    size_t ntoks, pos;
    struct echo_err *err;
    int depth;
    struct vec blocks; /* struct block_def * */
    /* Macros (and call blocks) being parsed, innermost last: a body that
     * names varargs/kwargs/caller makes them special, as in Jinja, which
     * also counts names inside nested macros. */
    struct macro_def *macros[TMPL_MAX_NEST];
    int nmacros;
};

#define FAIL_IF(cond)                                                                              \
    do {                                                                                           \
        if (cond) return NULL;                                                                     \
    } while (0)

static void *palloc(struct parser *p, size_t n)
{
    return arena_alloc(p->t->arena, n);
}

static void vec_push(struct parser *p, struct vec *v, void *item)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 4;
        void **a = palloc(p, cap * sizeof(*a));
        if (v->n) memcpy(a, v->items, v->n * sizeof(*a));
        v->items = a;
        v->cap = cap;
    }
    v->items[v->n++] = item;
}

static struct token *cur(struct parser *p)
{
    return &p->toks[p->pos];
}

static struct token *peek(struct parser *p, size_t k)
{
    size_t i = p->pos + k;
    return &p->toks[i < p->ntoks ? i : p->ntoks - 1];
}

static struct token *advance(struct parser *p)
{
    struct token *tk = cur(p);
    if (p->pos + 1 < p->ntoks) p->pos++;
    return tk;
}

static bool tok_is_name(const struct token *tk, const char *name)
{
    return tk->type == T_NAME && strlen(name) == tk->n && !memcmp(tk->p, name, tk->n);
}

static bool tok_is_op(const struct token *tk, int op)
{
    return tk->type == T_OP && tk->op == op;
}

/* How a token reads in an error message. */
static void describe(const struct token *tk, char *buf, size_t size)
{
    switch (tk->type) {
    case T_EOF:
        snprintf(buf, size, "end of template");
        break;
    case T_DATA:
        snprintf(buf, size, "template data");
        break;
    case T_VAR_BEGIN:
        snprintf(buf, size, "'{{'");
        break;
    case T_VAR_END:
        snprintf(buf, size, "end of print statement '}}'");
        break;
    case T_BLOCK_BEGIN:
        snprintf(buf, size, "'{%%'");
        break;
    case T_BLOCK_END:
        snprintf(buf, size, "end of statement block '%%}'");
        break;
    case T_STRING:
        snprintf(buf, size, "string");
        break;
    case T_INT:
        snprintf(buf, size, "integer");
        break;
    case T_FLOAT:
        snprintf(buf, size, "number");
        break;
    default:
        snprintf(buf, size, "'%.*s'", (int)(tk->n > 40 ? 40 : tk->n), tk->p);
        break;
    }
}

static void *fail_at(struct parser *p, const struct token *tk, const char *fmt, ...)
    ECHO_PRINTF(3, 4);
static void *fail_at(struct parser *p, const struct token *tk, const char *fmt, ...)
{
    char msg[240];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    tmpl_syntax_error(p->t, tk->line, tk->col, p->err, "%s", msg);
    return NULL;
}

static void *unexpected(struct parser *p, const char *expected)
{
    char got[64];
    describe(cur(p), got, sizeof(got));
    if (expected) return fail_at(p, cur(p), "expected %s, got %s", expected, got);
    return fail_at(p, cur(p), "unexpected %s", got);
}

static bool expect_op(struct parser *p, int op, const char *spelling)
{
    if (tok_is_op(cur(p), op)) {
        advance(p);
        return true;
    }
    char want[32];
    snprintf(want, sizeof(want), "'%s'", spelling);
    unexpected(p, want);
    return false;
}

static bool expect_type(struct parser *p, int type)
{
    if (cur(p)->type == type) {
        advance(p);
        return true;
    }
    unexpected(p, type == T_BLOCK_END ? "end of statement block '%}'"
                  : type == T_VAR_END ? "end of print statement '}}'"
                                      : "a name");
    return false;
}

static bool enter(struct parser *p)
{
    if (++p->depth > TMPL_MAX_NEST) {
        fail_at(p, cur(p),
                "template nested too deeply (more than %d levels of statements, "
                "brackets or chained operators)",
                TMPL_MAX_NEST);
        return false;
    }
    return true;
}

static const char *intern_tok(struct parser *p, const struct token *tk)
{
    return tmpl_intern(p->env, tk->p, tk->n);
}

static struct expr *new_expr(struct parser *p, int kind, const struct token *at)
{
    struct expr *e = palloc(p, sizeof(*e));
    e->kind = (uint8_t)kind;
    e->line = at->line;
    e->col = at->col;
    return e;
}

/* ---- expressions ---- */

static struct expr *parse_expression(struct parser *p, bool with_condexpr);
static struct expr *parse_unary(struct parser *p, bool with_filter);
static struct expr *parse_filter(struct parser *p, struct expr *node, bool start_inline);
static struct expr *parse_tuple(struct parser *p, bool simplified, bool with_condexpr,
                                const char *extra_end, bool explicit_parens);

/* Arguments of a call, filter or test: (a, b, name=c). */
static bool parse_call_args(struct parser *p, struct expr *e)
{
    struct vec args = {0}, kwn = {0}, kwv = {0};
    if (!expect_op(p, OP_LPAREN, "(")) return false;
    while (!tok_is_op(cur(p), OP_RPAREN)) {
        if (args.n + kwn.n > 0 && !expect_op(p, OP_COMMA, ",")) return false;
        if (tok_is_op(cur(p), OP_RPAREN)) break;
        if (tok_is_op(cur(p), OP_MUL) || tok_is_op(cur(p), OP_POW)) {
            fail_at(p, cur(p), "*args and **kwargs in calls are not supported");
            return false;
        }
        if (cur(p)->type == T_NAME && tok_is_op(peek(p, 1), OP_ASSIGN)) {
            struct token *name = advance(p);
            advance(p);
            const char *k = intern_tok(p, name);
            for (size_t i = 0; i < kwn.n; i++) {
                if (kwn.items[i] == k) {
                    fail_at(p, name, "keyword argument '%s' repeated", k);
                    return false;
                }
            }
            struct expr *v = parse_expression(p, true);
            if (!v) return false;
            vec_push(p, &kwn, (void *)k);
            vec_push(p, &kwv, v);
        } else {
            if (kwn.n) {
                fail_at(p, cur(p), "positional argument follows keyword argument");
                return false;
            }
            struct expr *v = parse_expression(p, true);
            if (!v) return false;
            vec_push(p, &args, v);
        }
    }
    advance(p); /* ) */
    e->args = (struct expr **)args.items;
    e->nargs = args.n;
    e->kwnames = (const char **)kwn.items;
    e->kwvals = (struct expr **)kwv.items;
    e->nkw = kwn.n;
    return true;
}

/* Binds the arguments of a built-in filter/test to its declared parameters. */
static bool bind_params(struct parser *p, struct expr *e, const char *const *params,
                        const char *what, const struct token *at)
{
    size_t np = 0;
    while (np < TMPL_MAX_PARAMS && params[np])
        np++;
    e->bound = palloc(p, (np ? np : 1) * sizeof(*e->bound));
    if (e->nargs > np) {
        fail_at(p, at, "%s '%s' takes at most %zu argument%s (%zu given)", what, e->name, np,
                np == 1 ? "" : "s", e->nargs);
        return false;
    }
    for (size_t i = 0; i < e->nargs; i++)
        e->bound[i] = e->args[i];
    for (size_t k = 0; k < e->nkw; k++) {
        size_t i = 0;
        while (i < np && strcmp(params[i], e->kwnames[k]))
            i++;
        if (i == np) {
            fail_at(p, at, "%s '%s' has no argument named '%s'", what, e->name, e->kwnames[k]);
            return false;
        }
        if (e->bound[i]) {
            fail_at(p, at, "%s '%s' got argument '%s' twice", what, e->name, e->kwnames[k]);
            return false;
        }
        e->bound[i] = e->kwvals[k];
    }
    return true;
}

static const char *parse_dotted_name(struct parser *p)
{
    struct token *tk = cur(p);
    if (tk->type != T_NAME) {
        unexpected(p, "a name");
        return NULL;
    }
    advance(p);
    const char *start = tk->p;
    const char *end = tk->p + tk->n;
    while (tok_is_op(cur(p), OP_DOT) && peek(p, 1)->type == T_NAME) {
        advance(p);
        struct token *part = advance(p);
        end = part->p + part->n;
    }
    return tmpl_intern(p->env, start, (size_t)(end - start));
}

static struct expr *parse_filter(struct parser *p, struct expr *node, bool start_inline)
{
    int extra = 0;
    while (tok_is_op(cur(p), OP_PIPE) || start_inline) {
        if (!enter(p)) return NULL;
        extra++;
        if (!start_inline) advance(p);
        start_inline = false;
        struct token *at = cur(p);
        const char *name = parse_dotted_name(p);
        FAIL_IF(!name);
        struct expr *e = new_expr(p, E_FILTER, at);
        e->a = node;
        e->name = name;
        if (tok_is_op(cur(p), OP_LPAREN) && !parse_call_args(p, e)) return NULL;
        e->custom = tmpl_env_custom_filter(p->env, name);
        if (e->custom) {
            if (e->nkw) return fail_at(p, at, "filter '%s' takes no keyword arguments", name);
        } else {
            e->filter = tmpl_find_filter(name);
            if (!e->filter) return fail_at(p, at, "no filter named '%s'", name);
            if (!bind_params(p, e, e->filter->params, "filter", at)) return NULL;
        }
        node = e;
    }
    p->depth -= extra;
    return node;
}

static struct expr *parse_primary(struct parser *p);
static struct expr *parse_postfix(struct parser *p, struct expr *node);

static struct expr *parse_test(struct parser *p, struct expr *node)
{
    struct token *is = advance(p);
    bool negated = false;
    if (tok_is_name(cur(p), "not")) {
        advance(p);
        negated = true;
    }
    struct token *at = cur(p);
    const char *name = parse_dotted_name(p);
    FAIL_IF(!name);
    struct expr *e = new_expr(p, E_TEST, is);
    e->a = node;
    e->name = name;
    e->op = negated;
    struct token *c = cur(p);
    if (tok_is_op(c, OP_LPAREN)) {
        if (!parse_call_args(p, e)) return NULL;
    } else if ((c->type == T_NAME || c->type == T_STRING || c->type == T_INT ||
                c->type == T_FLOAT || tok_is_op(c, OP_LBRACKET) || tok_is_op(c, OP_LBRACE)) &&
               !tok_is_name(c, "else") && !tok_is_name(c, "or") && !tok_is_name(c, "and")) {
        /* "x is divisibleby 3": one argument without parentheses. */
        if (tok_is_name(c, "is")) return fail_at(p, c, "you cannot chain multiple tests with is");
        struct expr *arg = parse_primary(p);
        FAIL_IF(!arg);
        arg = parse_postfix(p, arg);
        FAIL_IF(!arg);
        e->args = palloc(p, sizeof(*e->args));
        e->args[0] = arg;
        e->nargs = 1;
    }
    e->test = tmpl_find_test(name);
    if (!e->test) return fail_at(p, at, "no test named '%s'", name);
    if (!bind_params(p, e, e->test->params, "test", at)) return NULL;
    return e;
}

static struct expr *parse_filter_expr(struct parser *p, struct expr *node)
{
    int extra = 0;
    for (;;) {
        FAIL_IF(!node);
        if (tok_is_op(cur(p), OP_PIPE) || tok_is_name(cur(p), "is") ||
            tok_is_op(cur(p), OP_LPAREN)) {
            if (!enter(p)) return NULL;
            extra++;
        }
        if (tok_is_op(cur(p), OP_PIPE)) {
            node = parse_filter(p, node, false);
        } else if (tok_is_name(cur(p), "is")) {
            node = parse_test(p, node);
        } else if (tok_is_op(cur(p), OP_LPAREN)) {
            struct expr *e = new_expr(p, E_CALL, cur(p));
            e->a = node;
            if (!parse_call_args(p, e)) return NULL;
            node = e;
        } else {
            p->depth -= extra;
            return node;
        }
    }
}

/* One item inside [ ]: an expression or a slice a:b:c. */
static struct expr *parse_subscribed(struct parser *p, struct expr *node, const struct token *at)
{
    struct expr *args[3] = {NULL, NULL, NULL};
    if (!tok_is_op(cur(p), OP_COLON)) {
        args[0] = parse_expression(p, true);
        FAIL_IF(!args[0]);
        if (!tok_is_op(cur(p), OP_COLON)) {
            struct expr *e = new_expr(p, E_GETITEM, at);
            e->a = node;
            e->b = args[0];
            return e;
        }
    }
    advance(p); /* : */
    if (!tok_is_op(cur(p), OP_RBRACKET) && !tok_is_op(cur(p), OP_COLON)) {
        args[1] = parse_expression(p, true);
        FAIL_IF(!args[1]);
    }
    if (tok_is_op(cur(p), OP_COLON)) {
        advance(p);
        if (!tok_is_op(cur(p), OP_RBRACKET)) {
            args[2] = parse_expression(p, true);
            FAIL_IF(!args[2]);
        }
    }
    struct expr *e = new_expr(p, E_SLICE, at);
    e->a = node;
    e->args = palloc(p, 3 * sizeof(*e->args));
    memcpy(e->args, args, sizeof(args));
    e->nargs = 3;
    return e;
}

static struct expr *parse_postfix(struct parser *p, struct expr *node)
{
    int extra = 0;
    for (;;) {
        FAIL_IF(!node);
        struct token *tk = cur(p);
        if (tok_is_op(tk, OP_DOT) || tok_is_op(tk, OP_LBRACKET) || tok_is_op(tk, OP_LPAREN)) {
            if (!enter(p)) return NULL;
            extra++;
        }
        if (tok_is_op(tk, OP_DOT)) {
            advance(p);
            struct token *attr = cur(p);
            if (attr->type == T_NAME) {
                advance(p);
                struct expr *e = new_expr(p, E_GETATTR, attr);
                e->a = node;
                e->name = intern_tok(p, attr);
                node = e;
            } else if (attr->type == T_INT) {
                advance(p);
                struct expr *e = new_expr(p, E_GETITEM, attr);
                e->a = node;
                e->b = new_expr(p, E_CONST, attr);
                e->b->cval = tv_int(attr->ival);
                node = e;
            } else {
                return unexpected(p, "a name or number after '.'");
            }
        } else if (tok_is_op(tk, OP_LBRACKET)) {
            advance(p);
            node = parse_subscribed(p, node, tk);
            FAIL_IF(!node);
            if (!expect_op(p, OP_RBRACKET, "]")) return NULL;
        } else if (tok_is_op(tk, OP_LPAREN)) {
            struct expr *e = new_expr(p, E_CALL, tk);
            e->a = node;
            if (!parse_call_args(p, e)) return NULL;
            node = e;
        } else {
            p->depth -= extra;
            return node;
        }
    }
}

static void note_name(struct parser *p, const char *name)
{
    for (int i = 0; i < p->nmacros; i++) {
        struct macro_def *m = p->macros[i];
        if (name == p->env->sym_varargs)
            m->catch_varargs = true;
        else if (name == p->env->sym_kwargs)
            m->catch_kwargs = true;
        else if (name == p->env->sym_caller)
            m->uses_caller = true;
    }
}

static struct expr *parse_primary(struct parser *p)
{
    struct token *tk = cur(p);
    struct expr *e;
    switch (tk->type) {
    case T_NAME:
        advance(p);
        e = new_expr(p, E_CONST, tk);
        if (tok_is_name(tk, "true") || tok_is_name(tk, "True")) {
            e->cval = tv_bool(true);
        } else if (tok_is_name(tk, "false") || tok_is_name(tk, "False")) {
            e->cval = tv_bool(false);
        } else if (tok_is_name(tk, "none") || tok_is_name(tk, "None")) {
            e->cval = tv_none();
        } else {
            e->kind = E_NAME;
            e->name = intern_tok(p, tk);
            note_name(p, e->name);
        }
        return e;
    case T_STRING: {
        advance(p);
        e = new_expr(p, E_CONST, tk);
        const char *s = tk->p;
        size_t n = tk->n;
        /* 'a' "b" is one string, as in Python. */
        while (cur(p)->type == T_STRING) {
            struct token *more = advance(p);
            char *joined = palloc(p, n + more->n + 1);
            memcpy(joined, s, n);
            memcpy(joined + n, more->p, more->n);
            s = joined;
            n += more->n;
        }
        e->cval = tv_str(s, n, false);
        return e;
    }
    case T_INT:
        advance(p);
        e = new_expr(p, E_CONST, tk);
        e->cval = tv_int(tk->ival);
        return e;
    case T_FLOAT:
        advance(p);
        e = new_expr(p, E_CONST, tk);
        e->cval = tv_float(tk->fval);
        return e;
    case T_OP:
        if (tk->op == OP_LPAREN) {
            advance(p);
            e = parse_tuple(p, false, true, NULL, true);
            FAIL_IF(!e);
            if (!expect_op(p, OP_RPAREN, ")")) return NULL;
            return e;
        }
        if (tk->op == OP_LBRACKET || tk->op == OP_LBRACE) {
            bool dict = tk->op == OP_LBRACE;
            int close = dict ? OP_RBRACE : OP_RBRACKET;
            advance(p);
            struct vec items = {0};
            e = new_expr(p, dict ? E_DICT : E_LIST, tk);
            while (!tok_is_op(cur(p), close)) {
                if (items.n && !expect_op(p, OP_COMMA, ",")) return NULL;
                if (tok_is_op(cur(p), close)) break;
                struct expr *item = parse_expression(p, true);
                FAIL_IF(!item);
                vec_push(p, &items, item);
                if (dict) {
                    if (!expect_op(p, OP_COLON, ":")) return NULL;
                    item = parse_expression(p, true);
                    FAIL_IF(!item);
                    vec_push(p, &items, item);
                }
            }
            advance(p);
            e->args = (struct expr **)items.items;
            e->nargs = items.n;
            return e;
        }
        break;
    default:
        break;
    }
    return unexpected(p, NULL);
}

static struct expr *parse_unary(struct parser *p, bool with_filter)
{
    struct token *tk = cur(p);
    struct expr *node;
    if (!enter(p)) return NULL;
    if (tok_is_op(tk, OP_SUB) || tok_is_op(tk, OP_ADD)) {
        advance(p);
        struct expr *operand = parse_unary(p, false);
        if (!operand) return NULL;
        node = new_expr(p, E_UNARY, tk);
        node->op = tk->op;
        node->a = operand;
    } else {
        node = parse_primary(p);
    }
    node = parse_postfix(p, node);
    if (with_filter) node = parse_filter_expr(p, node);
    p->depth--;
    return node;
}

static struct expr *binary(struct parser *p, int op, struct expr *l, struct expr *r,
                           const struct token *at)
{
    struct expr *e = new_expr(p, E_BINARY, at);
    e->op = (uint8_t)op;
    e->a = l;
    e->b = r;
    return e;
}

static struct expr *parse_pow(struct parser *p)
{
    struct expr *left = parse_unary(p, true);
    int extra = 0; /* each operator deepens the tree by one level */
    while (left && tok_is_op(cur(p), OP_POW)) {
        if (!enter(p)) return NULL;
        extra++;
        struct token *op = advance(p);
        struct expr *right = parse_unary(p, true);
        FAIL_IF(!right);
        left = binary(p, OP_POW, left, right, op);
    }
    p->depth -= extra;
    return left;
}

static struct expr *parse_math2(struct parser *p)
{
    struct expr *left = parse_pow(p);
    int extra = 0; /* each operator deepens the tree by one level */
    while (left && cur(p)->type == T_OP &&
           (cur(p)->op == OP_MUL || cur(p)->op == OP_DIV || cur(p)->op == OP_FLOORDIV ||
            cur(p)->op == OP_MOD)) {
        if (!enter(p)) return NULL;
        extra++;
        struct token *op = advance(p);
        struct expr *right = parse_pow(p);
        FAIL_IF(!right);
        left = binary(p, op->op, left, right, op);
    }
    p->depth -= extra;
    return left;
}

static struct expr *parse_concat(struct parser *p)
{
    struct expr *left = parse_math2(p);
    int extra = 0; /* each operator deepens the tree by one level */
    while (left && tok_is_op(cur(p), OP_TILDE)) {
        if (!enter(p)) return NULL;
        extra++;
        struct token *op = advance(p);
        struct expr *right = parse_math2(p);
        FAIL_IF(!right);
        left = binary(p, OP_TILDE, left, right, op);
    }
    p->depth -= extra;
    return left;
}

static struct expr *parse_math1(struct parser *p)
{
    struct expr *left = parse_concat(p);
    int extra = 0; /* each operator deepens the tree by one level */
    while (left && cur(p)->type == T_OP && (cur(p)->op == OP_ADD || cur(p)->op == OP_SUB)) {
        if (!enter(p)) return NULL;
        extra++;
        struct token *op = advance(p);
        struct expr *right = parse_concat(p);
        FAIL_IF(!right);
        left = binary(p, op->op, left, right, op);
    }
    p->depth -= extra;
    return left;
}

static struct expr *parse_compare(struct parser *p)
{
    struct token *start = cur(p);
    struct expr *first = parse_math1(p);
    FAIL_IF(!first);
    struct vec rhs = {0};
    uint8_t ops[64];
    size_t nops = 0;
    const struct token *at = NULL;
    for (;;) {
        struct token *tk = cur(p);
        int op = OP_NONE;
        if (tk->type == T_OP && (tk->op == OP_EQ || tk->op == OP_NE || tk->op == OP_LT ||
                                 tk->op == OP_LE || tk->op == OP_GT || tk->op == OP_GE)) {
            op = tk->op;
            advance(p);
        } else if (tok_is_name(tk, "in")) {
            op = OP_IN;
            advance(p);
        } else if (tok_is_name(tk, "not") && tok_is_name(peek(p, 1), "in")) {
            op = OP_NOTIN;
            advance(p);
            advance(p);
        } else {
            break;
        }
        if (!at) at = tk;
        if (nops == sizeof(ops)) return fail_at(p, tk, "too many chained comparisons");
        struct expr *r = parse_math1(p);
        FAIL_IF(!r);
        ops[nops++] = (uint8_t)op;
        vec_push(p, &rhs, r);
    }
    if (!nops) return first;
    struct expr *e = new_expr(p, E_COMPARE, at ? at : start);
    e->a = first;
    e->args = (struct expr **)rhs.items;
    e->nargs = rhs.n;
    e->cmp_ops = palloc(p, nops);
    memcpy(e->cmp_ops, ops, nops);
    return e;
}

static struct expr *parse_not(struct parser *p)
{
    if (tok_is_name(cur(p), "not")) {
        struct token *tk = advance(p);
        if (!enter(p)) return NULL;
        struct expr *operand = parse_not(p);
        p->depth--;
        FAIL_IF(!operand);
        struct expr *e = new_expr(p, E_UNARY, tk);
        e->op = OP_NOT;
        e->a = operand;
        return e;
    }
    return parse_compare(p);
}

static struct expr *parse_and(struct parser *p)
{
    struct expr *left = parse_not(p);
    int extra = 0; /* each operator deepens the tree by one level */
    while (left && tok_is_name(cur(p), "and")) {
        if (!enter(p)) return NULL;
        extra++;
        struct token *op = advance(p);
        struct expr *right = parse_not(p);
        FAIL_IF(!right);
        left = binary(p, OP_AND, left, right, op);
    }
    p->depth -= extra;
    return left;
}

static struct expr *parse_or(struct parser *p)
{
    struct expr *left = parse_and(p);
    int extra = 0; /* each operator deepens the tree by one level */
    while (left && tok_is_name(cur(p), "or")) {
        if (!enter(p)) return NULL;
        extra++;
        struct token *op = advance(p);
        struct expr *right = parse_and(p);
        FAIL_IF(!right);
        left = binary(p, OP_OR, left, right, op);
    }
    p->depth -= extra;
    return left;
}

static struct expr *parse_condexpr(struct parser *p)
{
    struct token *start = cur(p);
    struct expr *expr1 = parse_or(p);
    int extra = 0;
    while (expr1 && tok_is_name(cur(p), "if")) {
        if (!enter(p)) return NULL;
        extra++;
        advance(p);
        struct expr *cond = parse_or(p);
        FAIL_IF(!cond);
        struct expr *other = NULL;
        if (tok_is_name(cur(p), "else")) {
            advance(p);
            if (!enter(p)) return NULL;
            other = parse_condexpr(p);
            p->depth--;
            FAIL_IF(!other);
        }
        struct expr *e = new_expr(p, E_COND, start);
        e->a = cond;
        e->b = expr1;
        e->c = other;
        expr1 = e;
    }
    p->depth -= extra;
    return expr1;
}

static struct expr *parse_expression(struct parser *p, bool with_condexpr)
{
    if (!enter(p)) return NULL;
    struct expr *e = with_condexpr ? parse_condexpr(p) : parse_or(p);
    p->depth--;
    return e;
}

static bool is_tuple_end(struct parser *p, const char *extra_end)
{
    struct token *tk = cur(p);
    if (tk->type == T_VAR_END || tk->type == T_BLOCK_END || tk->type == T_EOF ||
        tok_is_op(tk, OP_RPAREN))
        return true;
    return extra_end && tok_is_name(tk, extra_end);
}

/* Comma-separated expressions; a tuple when there is a comma. */
static struct expr *parse_tuple(struct parser *p, bool simplified, bool with_condexpr,
                                const char *extra_end, bool explicit_parens)
{
    struct token *start = cur(p);
    struct vec items = {0};
    bool is_tuple = false;
    for (;;) {
        if (items.n && !expect_op(p, OP_COMMA, ",")) return NULL;
        if (is_tuple_end(p, extra_end)) break;
        struct expr *e = simplified ? parse_primary(p) : parse_expression(p, with_condexpr);
        FAIL_IF(!e);
        vec_push(p, &items, e);
        if (tok_is_op(cur(p), OP_COMMA))
            is_tuple = true;
        else
            break;
    }
    if (!is_tuple) {
        if (items.n) return items.items[0];
        if (!explicit_parens) return unexpected(p, "an expression");
    }
    struct expr *e = new_expr(p, E_TUPLE, start);
    e->args = (struct expr **)items.items;
    e->nargs = items.n;
    return e;
}

/* ---- statements ---- */

static bool parse_body(struct parser *p, struct body *out, const char *const *end_names,
                       const struct token *opener, const char *opener_name);

static bool expect_block_end(struct parser *p)
{
    return expect_type(p, T_BLOCK_END);
}

static bool parse_target(struct parser *p, struct target *tgt, const char *extra_end,
                         bool with_namespace)
{
    memset(tgt, 0, sizeof(*tgt));
    if (with_namespace && cur(p)->type == T_NAME && tok_is_op(peek(p, 1), OP_DOT)) {
        struct token *ns = advance(p);
        advance(p);
        if (cur(p)->type != T_NAME) {
            unexpected(p, "an attribute name");
            return false;
        }
        tgt->names = palloc(p, sizeof(*tgt->names));
        tgt->names[0] = intern_tok(p, ns);
        tgt->n = 1;
        tgt->attr = intern_tok(p, advance(p));
        return true;
    }
    struct expr *e = parse_tuple(p, true, false, extra_end, false);
    if (!e) return false;
    if (e->kind == E_NAME) {
        tgt->names = palloc(p, sizeof(*tgt->names));
        tgt->names[0] = e->name;
        tgt->n = 1;
        return true;
    }
    if (e->kind == E_TUPLE) {
        tgt->names = palloc(p, (e->nargs ? e->nargs : 1) * sizeof(*tgt->names));
        for (size_t i = 0; i < e->nargs; i++) {
            if (e->args[i]->kind != E_NAME) {
                fail_at(p, &(struct token){.line = e->args[i]->line, .col = e->args[i]->col},
                        "can only assign to names");
                return false;
            }
            tgt->names[i] = e->args[i]->name;
        }
        tgt->n = e->nargs;
        tgt->tuple = true;
        if (tgt->n == 0) {
            fail_at(p, cur(p), "can't assign to an empty tuple");
            return false;
        }
        return true;
    }
    fail_at(p, &(struct token){.line = e->line, .col = e->col}, "can only assign to names");
    return false;
}

static struct node *new_node(struct parser *p, int kind, const struct token *at)
{
    struct node *nd = palloc(p, sizeof(*nd));
    nd->kind = (uint8_t)kind;
    nd->line = at->line;
    nd->col = at->col;
    return nd;
}

static const char *const END_IF[] = {"elif", "else", "endif", NULL};
static const char *const END_FOR[] = {"else", "endfor", NULL};
static const char *const END_FOR2[] = {"endfor", NULL};

static struct node *parse_if(struct parser *p, const struct token *kw)
{
    struct node *nd = new_node(p, N_IF, kw);
    struct vec conds = {0};
    struct body *bodies = NULL;
    size_t nb = 0;
    for (;;) {
        struct expr *cond = parse_tuple(p, false, true, NULL, false);
        FAIL_IF(!cond || !expect_block_end(p));
        struct body b;
        if (!parse_body(p, &b, END_IF, kw, "if")) return NULL;
        vec_push(p, &conds, cond);
        struct body *nbodies = palloc(p, (nb + 1) * sizeof(*nbodies));
        if (nb) memcpy(nbodies, bodies, nb * sizeof(*nbodies));
        nbodies[nb++] = b;
        bodies = nbodies;
        struct token *end = advance(p);
        if (tok_is_name(end, "elif")) continue;
        if (tok_is_name(end, "else")) {
            FAIL_IF(!expect_block_end(p));
            static const char *const end_else[] = {"endif", NULL};
            if (!parse_body(p, &nd->u.if_.els, end_else, kw, "if")) return NULL;
            advance(p);
        }
        break;
    }
    nd->u.if_.n = nb;
    nd->u.if_.conds = (struct expr **)conds.items;
    nd->u.if_.bodies = bodies;
    FAIL_IF(!expect_block_end(p));
    return nd;
}

static struct node *parse_for(struct parser *p, const struct token *kw)
{
    struct node *nd = new_node(p, N_FOR, kw);
    if (!parse_target(p, &nd->u.for_.tgt, "in", false)) return NULL;
    if (!tok_is_name(cur(p), "in")) return unexpected(p, "'in'");
    advance(p);
    nd->u.for_.iter = parse_tuple(p, false, false, "recursive", false);
    FAIL_IF(!nd->u.for_.iter);
    if (tok_is_name(cur(p), "if")) {
        advance(p);
        nd->u.for_.cond = parse_expression(p, true);
        FAIL_IF(!nd->u.for_.cond);
    }
    if (tok_is_name(cur(p), "recursive"))
        return fail_at(p, cur(p), "recursive for loops are not supported");
    FAIL_IF(!expect_block_end(p));
    if (!parse_body(p, &nd->u.for_.body, END_FOR, kw, "for")) return NULL;
    if (tok_is_name(advance(p), "else")) {
        FAIL_IF(!expect_block_end(p));
        if (!parse_body(p, &nd->u.for_.els, END_FOR2, kw, "for")) return NULL;
        advance(p);
    }
    FAIL_IF(!expect_block_end(p));
    return nd;
}

static struct node *parse_set(struct parser *p, const struct token *kw)
{
    struct target tgt;
    if (!parse_target(p, &tgt, NULL, true)) return NULL;
    if (tok_is_op(cur(p), OP_ASSIGN)) {
        advance(p);
        struct node *nd = new_node(p, N_SET, kw);
        nd->u.set.tgt = tgt;
        nd->u.set.value = parse_tuple(p, false, true, NULL, false);
        FAIL_IF(!nd->u.set.value || !expect_block_end(p));
        return nd;
    }
    struct node *nd = new_node(p, N_SETBLOCK, kw);
    nd->u.setblock.tgt = tgt;
    if (tgt.tuple || tgt.n != 1)
        return fail_at(p, kw, "a {%% set %%} block assigns to a single name");
    if (tok_is_op(cur(p), OP_PIPE)) {
        advance(p);
        nd->u.setblock.filter = parse_filter(p, NULL, true);
        FAIL_IF(!nd->u.setblock.filter);
    }
    FAIL_IF(!expect_block_end(p));
    static const char *const end_set[] = {"endset", NULL};
    if (!parse_body(p, &nd->u.setblock.body, end_set, kw, "set")) return NULL;
    advance(p);
    FAIL_IF(!expect_block_end(p));
    return nd;
}

static struct node *parse_block(struct parser *p, const struct token *kw)
{
    struct node *nd = new_node(p, N_BLOCK, kw);
    if (cur(p)->type != T_NAME) return unexpected(p, "a block name");
    struct token *name_tok = advance(p);
    const char *name = intern_tok(p, name_tok);
    nd->u.block.name = name;
    for (size_t i = 0; i < p->blocks.n; i++) {
        struct block_def *bd = p->blocks.items[i];
        if (bd->name == name) return fail_at(p, name_tok, "block '%s' defined twice", name);
    }
    for (;;) {
        if (tok_is_name(cur(p), "scoped")) {
            nd->u.block.scoped = true;
            advance(p);
        } else if (tok_is_name(cur(p), "required")) {
            advance(p); /* accepted; an empty required block renders empty */
        } else {
            break;
        }
    }
    FAIL_IF(!expect_block_end(p));
    struct block_def *bd = palloc(p, sizeof(*bd));
    bd->name = name;
    bd->node = nd;
    vec_push(p, &p->blocks, bd);
    static const char *const end_block[] = {"endblock", NULL};
    if (!parse_body(p, &nd->u.block.body, end_block, kw, "block")) return NULL;
    advance(p);
    if (cur(p)->type == T_NAME) {
        if (intern_tok(p, cur(p)) != name)
            return fail_at(p, cur(p), "'%s' does not match the block name '%s'",
                           intern_tok(p, cur(p)), name);
        advance(p);
    }
    FAIL_IF(!expect_block_end(p));
    return nd;
}

/* "with context" / "without context" at the end of include/import. */
static bool parse_context(struct parser *p, bool *with_context)
{
    if ((tok_is_name(cur(p), "with") || tok_is_name(cur(p), "without")) &&
        tok_is_name(peek(p, 1), "context")) {
        *with_context = tok_is_name(cur(p), "with");
        advance(p);
        advance(p);
    }
    return true;
}

static bool parse_signature(struct parser *p, struct macro_def *m)
{
    struct vec params = {0}, defaults = {0};
    if (!expect_op(p, OP_LPAREN, "(")) return false;
    while (!tok_is_op(cur(p), OP_RPAREN)) {
        if (params.n && !expect_op(p, OP_COMMA, ",")) return false;
        if (tok_is_op(cur(p), OP_RPAREN)) break;
        if (cur(p)->type != T_NAME) {
            unexpected(p, "a parameter name");
            return false;
        }
        struct token *name = advance(p);
        const char *nm = intern_tok(p, name);
        for (size_t i = 0; i < params.n; i++) {
            if (params.items[i] == nm) {
                fail_at(p, name, "duplicate parameter '%s'", nm);
                return false;
            }
        }
        struct expr *def = NULL;
        if (tok_is_op(cur(p), OP_ASSIGN)) {
            advance(p);
            def = parse_expression(p, true);
            if (!def) return false;
        } else if (defaults.n && defaults.items[defaults.n - 1]) {
            fail_at(p, name, "non-default argument follows default argument");
            return false;
        }
        vec_push(p, &params, (void *)nm);
        vec_push(p, &defaults, def);
    }
    advance(p);
    m->params = (const char **)params.items;
    m->defaults = (struct expr **)defaults.items;
    m->nparams = params.n;
    return true;
}

static bool parse_macro_body(struct parser *p, struct macro_def *m, const char *endname,
                             const struct token *kw, const char *opener)
{
    if (p->nmacros >= TMPL_MAX_NEST) {
        fail_at(p, kw, "macros nested too deeply");
        return false;
    }
    p->macros[p->nmacros++] = m;
    const char *const end_names[] = {endname, NULL};
    bool ok = parse_body(p, &m->body, end_names, kw, opener);
    p->nmacros--;
    return ok;
}

static struct node *parse_macro(struct parser *p, const struct token *kw)
{
    struct node *nd = new_node(p, N_MACRO, kw);
    struct macro_def *m = palloc(p, sizeof(*m));
    m->line = kw->line;
    m->col = kw->col;
    if (cur(p)->type != T_NAME) return unexpected(p, "a macro name");
    struct token *name_tok = advance(p);
    m->name = intern_tok(p, name_tok);
    if (!parse_signature(p, m) || !expect_block_end(p)) return NULL;
    if (!parse_macro_body(p, m, "endmacro", kw, "macro")) return NULL;
    advance(p);
    if (cur(p)->type == T_NAME) {
        if (intern_tok(p, cur(p)) != m->name)
            return fail_at(p, cur(p), "'%s' does not match the macro name '%s'",
                           intern_tok(p, cur(p)), m->name);
        advance(p);
    }
    FAIL_IF(!expect_block_end(p));
    nd->u.macro = m;
    return nd;
}

static struct node *parse_call_block(struct parser *p, const struct token *kw)
{
    struct node *nd = new_node(p, N_CALLBLOCK, kw);
    struct macro_def *m = palloc(p, sizeof(*m));
    m->name = tmpl_intern(p->env, "caller", 6);
    m->line = kw->line;
    m->col = kw->col;
    if (tok_is_op(cur(p), OP_LPAREN)) {
        if (!parse_signature(p, m)) return NULL;
    }
    struct token *at = cur(p);
    struct expr *call = parse_expression(p, true);
    FAIL_IF(!call);
    if (call->kind != E_CALL) return fail_at(p, at, "expected a call after {%% call %%}");
    FAIL_IF(!expect_block_end(p));
    if (!parse_macro_body(p, m, "endcall", kw, "call")) return NULL;
    advance(p);
    FAIL_IF(!expect_block_end(p));
    nd->u.callblock.call = call;
    nd->u.callblock.caller = m;
    return nd;
}

static struct node *parse_import(struct parser *p, const struct token *kw)
{
    struct node *nd = new_node(p, N_IMPORT, kw);
    nd->u.import.name = parse_expression(p, true);
    FAIL_IF(!nd->u.import.name);
    if (!tok_is_name(cur(p), "as")) return unexpected(p, "'as'");
    advance(p);
    if (cur(p)->type != T_NAME) return unexpected(p, "a name");
    nd->u.import.alias = intern_tok(p, advance(p));
    parse_context(p, &nd->u.import.with_context);
    FAIL_IF(!expect_block_end(p));
    return nd;
}

static struct node *parse_from(struct parser *p, const struct token *kw)
{
    struct node *nd = new_node(p, N_FROMIMPORT, kw);
    nd->u.from.name = parse_expression(p, true);
    FAIL_IF(!nd->u.from.name);
    if (!tok_is_name(cur(p), "import")) return unexpected(p, "'import'");
    advance(p);
    struct vec names = {0}, aliases = {0};
    for (;;) {
        if (names.n) {
            if (!tok_is_op(cur(p), OP_COMMA)) break;
            advance(p);
        }
        if ((tok_is_name(cur(p), "with") || tok_is_name(cur(p), "without")) &&
            tok_is_name(peek(p, 1), "context"))
            break;
        if (cur(p)->type != T_NAME) return unexpected(p, "a name to import");
        struct token *name = advance(p);
        if (name->n && name->p[0] == '_')
            return fail_at(p, name, "names starting with an underscore cannot be imported");
        const char *nm = intern_tok(p, name), *alias = nm;
        if (tok_is_name(cur(p), "as")) {
            advance(p);
            if (cur(p)->type != T_NAME) return unexpected(p, "a name");
            alias = intern_tok(p, advance(p));
        }
        vec_push(p, &names, (void *)nm);
        vec_push(p, &aliases, (void *)alias);
    }
    if (!names.n) return unexpected(p, "a name to import");
    parse_context(p, &nd->u.from.with_context);
    FAIL_IF(!expect_block_end(p));
    nd->u.from.names = (const char **)names.items;
    nd->u.from.aliases = (const char **)aliases.items;
    nd->u.from.n = names.n;
    return nd;
}

static struct node *parse_include(struct parser *p, const struct token *kw)
{
    struct node *nd = new_node(p, N_INCLUDE, kw);
    nd->u.include.name = parse_expression(p, true);
    FAIL_IF(!nd->u.include.name);
    nd->u.include.with_context = true;
    if (tok_is_name(cur(p), "ignore") && tok_is_name(peek(p, 1), "missing")) {
        nd->u.include.ignore_missing = true;
        advance(p);
        advance(p);
    }
    parse_context(p, &nd->u.include.with_context);
    FAIL_IF(!expect_block_end(p));
    return nd;
}

static struct node *parse_with(struct parser *p, const struct token *kw)
{
    struct node *nd = new_node(p, N_WITH, kw);
    struct vec names = {0}, vals = {0};
    while (cur(p)->type != T_BLOCK_END) {
        if (names.n && !expect_op(p, OP_COMMA, ",")) return NULL;
        if (cur(p)->type != T_NAME) return unexpected(p, "a name");
        const char *nm = intern_tok(p, advance(p));
        if (!expect_op(p, OP_ASSIGN, "=")) return NULL;
        struct expr *v = parse_expression(p, true);
        FAIL_IF(!v);
        vec_push(p, &names, (void *)nm);
        vec_push(p, &vals, v);
    }
    advance(p);
    nd->u.with.names = (const char **)names.items;
    nd->u.with.vals = (struct expr **)vals.items;
    nd->u.with.n = names.n;
    static const char *const end_with[] = {"endwith", NULL};
    if (!parse_body(p, &nd->u.with.body, end_with, kw, "with")) return NULL;
    advance(p);
    FAIL_IF(!expect_block_end(p));
    return nd;
}

static struct node *parse_filter_block(struct parser *p, const struct token *kw)
{
    struct node *nd = new_node(p, N_FILTERBLOCK, kw);
    nd->u.filterblock.filter = parse_filter(p, NULL, true);
    FAIL_IF(!nd->u.filterblock.filter || !expect_block_end(p));
    static const char *const end_filter[] = {"endfilter", NULL};
    if (!parse_body(p, &nd->u.filterblock.body, end_filter, kw, "filter")) return NULL;
    advance(p);
    FAIL_IF(!expect_block_end(p));
    return nd;
}

static struct node *parse_autoescape(struct parser *p, const struct token *kw)
{
    struct node *nd = new_node(p, N_AUTOESCAPE, kw);
    nd->u.autoescape.value = parse_expression(p, true);
    FAIL_IF(!nd->u.autoescape.value || !expect_block_end(p));
    static const char *const end_ae[] = {"endautoescape", NULL};
    if (!parse_body(p, &nd->u.autoescape.body, end_ae, kw, "autoescape")) return NULL;
    advance(p);
    FAIL_IF(!expect_block_end(p));
    return nd;
}

static struct node *parse_statement(struct parser *p)
{
    struct token *kw = cur(p);
    if (kw->type != T_NAME) return unexpected(p, "a statement name");
    advance(p);
    if (tok_is_name(kw, "if")) return parse_if(p, kw);
    if (tok_is_name(kw, "for")) return parse_for(p, kw);
    if (tok_is_name(kw, "set")) return parse_set(p, kw);
    if (tok_is_name(kw, "block")) return parse_block(p, kw);
    if (tok_is_name(kw, "extends")) {
        struct node *nd = new_node(p, N_EXTENDS, kw);
        nd->u.expr = parse_expression(p, true);
        FAIL_IF(!nd->u.expr || !expect_block_end(p));
        return nd;
    }
    if (tok_is_name(kw, "include")) return parse_include(p, kw);
    if (tok_is_name(kw, "import")) return parse_import(p, kw);
    if (tok_is_name(kw, "from")) return parse_from(p, kw);
    if (tok_is_name(kw, "macro")) return parse_macro(p, kw);
    if (tok_is_name(kw, "call")) return parse_call_block(p, kw);
    if (tok_is_name(kw, "with")) return parse_with(p, kw);
    if (tok_is_name(kw, "filter")) return parse_filter_block(p, kw);
    if (tok_is_name(kw, "autoescape")) return parse_autoescape(p, kw);
    return fail_at(p, kw, "unknown tag '%.*s'", (int)(kw->n > 40 ? 40 : kw->n), kw->p);
}

/*
 * Parses statements until a {% name %} with name in end_names (NULL: until
 * the end of the template). On success the parser stands on that name token.
 */
static bool parse_body(struct parser *p, struct body *out, const char *const *end_names,
                       const struct token *opener, const char *opener_name)
{
    struct vec items = {0};
    if (!enter(p)) return false;
    for (;;) {
        struct token *tk = cur(p);
        if (tk->type == T_EOF) {
            if (!end_names) break;
            const char *closer = end_names[0];
            for (const char *const *e = end_names; *e; e++)
                if (!strncmp(*e, "end", 3)) closer = *e;
            fail_at(p, tk,
                    "unexpected end of template: {%% %s %%} at line %d is not closed "
                    "(expected {%% %s %%})",
                    opener_name, opener->line, closer);
            return false;
        }
        if (tk->type == T_DATA) {
            advance(p);
            struct node *nd = new_node(p, N_TEXT, tk);
            nd->u.text.p = tk->p;
            nd->u.text.n = tk->n;
            vec_push(p, &items, nd);
        } else if (tk->type == T_VAR_BEGIN) {
            advance(p);
            struct node *nd = new_node(p, N_OUTPUT, tk);
            nd->u.expr = parse_tuple(p, false, true, NULL, false);
            if (!nd->u.expr || !expect_type(p, T_VAR_END)) return false;
            vec_push(p, &items, nd);
        } else if (tk->type == T_BLOCK_BEGIN) {
            advance(p);
            struct token *name = cur(p);
            if (end_names && name->type == T_NAME) {
                for (const char *const *e = end_names; *e; e++)
                    if (tok_is_name(name, *e)) goto done;
            }
            if (name->type == T_NAME && name->n > 3 && !memcmp(name->p, "end", 3) &&
                !tok_is_name(name, "endraw")) {
                if (end_names)
                    fail_at(p, name,
                            "unexpected {%% %.*s %%}: the innermost open tag is "
                            "{%% %s %%} at line %d",
                            (int)(name->n > 40 ? 40 : name->n), name->p, opener_name, opener->line);
                else
                    fail_at(p, name, "unexpected {%% %.*s %%}: no tag is open",
                            (int)(name->n > 40 ? 40 : name->n), name->p);
                return false;
            }
            if ((tok_is_name(name, "else") || tok_is_name(name, "elif")) && end_names) {
                fail_at(p, name, "unexpected {%% %.*s %%} inside {%% %s %%} (line %d)",
                        (int)name->n, name->p, opener_name, opener->line);
                return false;
            }
            struct node *nd = parse_statement(p);
            if (!nd) return false;
            vec_push(p, &items, nd);
        } else {
            unexpected(p, NULL);
            return false;
        }
    }
done:
    p->depth--;
    out->items = (struct node **)items.items;
    out->n = items.n;
    return true;
}

int tmpl_parse(tmpl_env *env, struct template *t, struct echo_err *err)
{
    struct parser p = {.env = env, .t = t, .err = err};
    if (tmpl_lex(t, &p.toks, &p.ntoks, err) != 0) return -1;
    bool ok = parse_body(&p, &t->root, NULL, NULL, NULL);
    free(p.toks);
    if (!ok) return -1;
    t->nblocks = p.blocks.n;
    t->blocks = palloc(&p, (p.blocks.n ? p.blocks.n : 1) * sizeof(*t->blocks));
    for (size_t i = 0; i < p.blocks.n; i++)
        t->blocks[i] = *(struct block_def *)p.blocks.items[i];
    return 0;
}
