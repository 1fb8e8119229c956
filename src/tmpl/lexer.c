/*
 * lexer.c - splits a template source into tokens the way Jinja2's lexer does
 * (jinja2/lexer.py, default delimiters, trim_blocks and lstrip_blocks off):
 *
 *   - text outside tags is DATA; "{{ }}", "{% %}" and "{# #}" are tags;
 *   - a "-" just inside a tag strips all whitespace (Python str.isspace,
 *     newlines included) on that side of the tag; "+" is accepted and, with
 *     lstrip_blocks off, changes nothing;
 *   - {% raw %}...{% endraw %} is DATA taken literally;
 *   - inside a tag: names, strings (Python escapes), integers (with "_",
 *     0b/0o/0x), floats, operators; an end delimiter only counts when no
 *     bracket is open, so "{{ {'a': {'b': 1}} }}" works.
 *
 * The source was normalized before (see env.c): "\n" newlines only. Tokens
 * point into the source; decoded strings are copied into the template arena.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tmpl/tmpl_int.h"

struct lexer {
    const struct template *t;
    const char *s;
    size_t n;
    struct token *toks;
    size_t ntoks, cap;
    /* A cursor that turns byte offsets into line:col in one forward pass. */
    size_t cur_off;
    int cur_line, cur_col;
    struct echo_err *err;
};

void tmpl_pos(const struct template *t, size_t off, int *line, int *col)
{
    int l = 1, c = 1;
    for (size_t i = 0; i < off && i < t->len;) {
        if (t->src[i] == '\n') {
            l++;
            c = 1;
            i++;
        } else {
            tmpl_utf8_next(t->src, t->len, &i);
            c++;
        }
    }
    *line = l;
    *col = c;
}

static void lx_pos(struct lexer *lx, size_t off, int *line, int *col)
{
    if (off < lx->cur_off) {
        tmpl_pos(lx->t, off, line, col);
        return;
    }
    while (lx->cur_off < off && lx->cur_off < lx->n) {
        if (lx->s[lx->cur_off] == '\n') {
            lx->cur_line++;
            lx->cur_col = 1;
            lx->cur_off++;
        } else {
            tmpl_utf8_next(lx->s, lx->n, &lx->cur_off);
            lx->cur_col++;
        }
    }
    *line = lx->cur_line;
    *col = lx->cur_col;
}

static int lx_error(struct lexer *lx, size_t off, const char *fmt, const char *arg)
{
    int line, col;
    lx_pos(lx, off, &line, &col);
    tmpl_syntax_error(lx->t, line, col, lx->err, fmt, arg);
    return -1;
}

static struct token *lx_push(struct lexer *lx, int type, size_t off)
{
    if (lx->ntoks == lx->cap) {
        lx->cap = lx->cap ? lx->cap * 2 : 256;
        lx->toks = xrealloc(lx->toks, lx->cap * sizeof(*lx->toks));
    }
    struct token *tk = &lx->toks[lx->ntoks++];
    memset(tk, 0, sizeof(*tk));
    tk->type = (uint8_t)type;
    lx_pos(lx, off, &tk->line, &tk->col);
    return tk;
}

static bool is_space_at(const char *s, size_t n, size_t i, size_t *len)
{
    unsigned char c = (unsigned char)s[i];
    if (c < 0x80) {
        *len = 1;
        return tmpl_uni_isspace(c);
    }
    size_t j = i;
    uint32_t cp = tmpl_utf8_next(s, n, &j);
    *len = j - i;
    return tmpl_uni_isspace(cp);
}

static size_t skip_space(const char *s, size_t n, size_t i)
{
    size_t len;
    while (i < n && is_space_at(s, n, i, &len))
        i += len;
    return i;
}

/* Length of data[0..n) without trailing whitespace (Python str.rstrip()). */
static size_t rstrip_len(const char *s, size_t n)
{
    size_t end = 0, i = 0;
    while (i < n) {
        size_t len;
        bool sp = is_space_at(s, n, i, &len);
        i += len;
        if (!sp) end = i;
    }
    return end;
}

static void emit_data(struct lexer *lx, size_t from, size_t to, bool rstrip)
{
    if (rstrip && to > from) to = from + rstrip_len(lx->s + from, to - from);
    if (to <= from) return;
    struct token *tk = lx_push(lx, T_DATA, from);
    tk->p = lx->s + from;
    tk->n = to - from;
}

/* Matches "{%[-+]? \s* word \s* (-%}\s* | +%} | %})" at i; returns the end
 * offset (after trailing whitespace for "-%}") or 0. *lmod gets the sign. */
static size_t match_word_tag(const char *s, size_t n, size_t i, const char *word, char *lmod,
                             bool allow_plus_end)
{
    if (i + 2 > n || s[i] != '{' || s[i + 1] != '%') return 0;
    size_t j = i + 2;
    *lmod = 0;
    if (j < n && (s[j] == '-' || s[j] == '+')) *lmod = s[j++];
    j = skip_space(s, n, j);
    size_t wl = strlen(word);
    if (j + wl > n || memcmp(s + j, word, wl) != 0) return 0;
    j = skip_space(s, n, j + wl);
    if (j + 3 <= n && s[j] == '-' && s[j + 1] == '%' && s[j + 2] == '}')
        return skip_space(s, n, j + 3);
    if (allow_plus_end && j + 3 <= n && s[j] == '+' && s[j + 1] == '%' && s[j + 2] == '}')
        return j + 3;
    if (j + 2 <= n && s[j] == '%' && s[j + 1] == '}') return j + 2;
    return 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Decodes a string literal body as Python's "unicode-escape" codec does. */
static int decode_string(struct lexer *lx, size_t off, const char *s, size_t n, struct token *tk)
{
    char *d = arena_alloc(lx->t->arena, n + 1);
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        if (s[i] != '\\' || i + 1 >= n) {
            d[k++] = s[i++];
            continue;
        }
        char c = s[i + 1];
        i += 2;
        uint32_t cp;
        int digits = 0;
        switch (c) {
        case '\n':
            continue;
        case '\\':
            d[k++] = '\\';
            continue;
        case '\'':
            d[k++] = '\'';
            continue;
        case '"':
            d[k++] = '"';
            continue;
        case 'a':
            d[k++] = '\a';
            continue;
        case 'b':
            d[k++] = '\b';
            continue;
        case 'f':
            d[k++] = '\f';
            continue;
        case 'n':
            d[k++] = '\n';
            continue;
        case 'r':
            d[k++] = '\r';
            continue;
        case 't':
            d[k++] = '\t';
            continue;
        case 'v':
            d[k++] = '\v';
            continue;
        case 'x':
            digits = 2;
            break;
        case 'u':
            digits = 4;
            break;
        case 'U':
            digits = 8;
            break;
        case '0':
        case '1':
        case '2':
        case '3':
        case '4':
        case '5':
        case '6':
        case '7':
            cp = (uint32_t)(c - '0');
            for (int m = 0; m < 2 && i < n && s[i] >= '0' && s[i] <= '7'; m++)
                cp = cp * 8 + (uint32_t)(s[i++] - '0');
            k += tmpl_utf8_put(d + k, cp);
            continue;
        case 'N':
            return lx_error(lx, off, "%s", "\\N{...} escapes are not supported");
        default:
            /* Unknown escapes stay as they are, backslash included. */
            d[k++] = '\\';
            i--;
            continue;
        }
        cp = 0;
        for (int m = 0; m < digits; m++) {
            int h = i < n ? hexval(s[i]) : -1;
            if (h < 0)
                return lx_error(lx, off, "truncated \\%s escape in string",
                                c == 'x'   ? "xXX"
                                : c == 'u' ? "uXXXX"
                                           : "UXXXXXXXX");
            cp = cp * 16 + (uint32_t)h;
            i++;
        }
        if (cp > 0x10FFFF || (cp >= 0xD800 && cp < 0xE000))
            return lx_error(lx, off, "%s", "escape is not a valid Unicode character");
        /* \xNN with NN >= 0x80 is a code point, as in Python (not a byte). */
        k += tmpl_utf8_put(d + k, cp);
    }
    d[k] = 0;
    tk->p = d;
    tk->n = k;
    return 0;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* (\d+_)*\d+ : digits with single underscores between them. */
static size_t match_digits(const char *s, size_t n, size_t i)
{
    if (i >= n || !is_digit(s[i])) return 0;
    size_t j = i;
    for (;;) {
        while (j < n && is_digit(s[j]))
            j++;
        if (j + 1 < n && s[j] == '_' && is_digit(s[j + 1]))
            j++;
        else
            break;
    }
    return j - i;
}

/* Copies a numeric literal without "_" into buf (NUL-terminated). */
static bool strip_underscores(const char *s, size_t n, char *buf, size_t size)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '_') continue;
        if (k + 1 >= size) return false;
        buf[k++] = s[i];
    }
    buf[k] = 0;
    return true;
}

static size_t match_float(const char *s, size_t n, size_t i)
{
    if (i > 0 && s[i - 1] == '.') return 0;
    size_t a = match_digits(s, n, i);
    if (!a) return 0;
    size_t j = i + a, frac = 0;
    if (j < n && s[j] == '.') {
        frac = match_digits(s, n, j + 1);
        if (frac) frac += 1;
    }
    size_t e = j + frac;
    if (e < n && (s[e] == 'e' || s[e] == 'E')) {
        size_t k = e + 1;
        if (k < n && (s[k] == '+' || s[k] == '-')) k++;
        size_t x = match_digits(s, n, k);
        if (x) return k + x - i;
    }
    return frac ? j + frac - i : 0;
}

static size_t match_int(const char *s, size_t n, size_t i, int *base)
{
    if (i >= n || !is_digit(s[i])) return 0;
    if (s[i] == '0' && i + 1 < n) {
        char p = (char)(s[i + 1] | 32);
        int b = p == 'b' ? 2 : p == 'o' ? 8 : p == 'x' ? 16 : 0;
        if (b) {
            size_t j = i + 2;
            size_t count = 0;
            for (;;) {
                size_t k = j;
                if (k < n && s[k] == '_') k++;
                int h = k < n ? hexval(s[k]) : -1;
                if (h < 0 || h >= b) break;
                j = k + 1;
                count++;
            }
            if (count) {
                *base = b;
                return j - i;
            }
        }
    }
    *base = 10;
    size_t j = i + 1;
    if (s[i] == '0') {
        while (j + 1 < n && s[j] == '_' && s[j + 1] == '0')
            j += 2;
        while (j < n && s[j] == '0')
            j++;
        return j - i;
    }
    for (;;) {
        if (j < n && is_digit(s[j]))
            j++;
        else if (j + 1 < n && s[j] == '_' && is_digit(s[j + 1]))
            j += 2;
        else
            break;
    }
    return j - i;
}

static bool name_start(const char *s, size_t n, size_t i, size_t *len)
{
    unsigned char c = (unsigned char)s[i];
    if (c < 0x80) {
        *len = 1;
        return c == '_' || ((c | 32) >= 'a' && (c | 32) <= 'z');
    }
    size_t j = i;
    uint32_t cp = tmpl_utf8_next(s, n, &j);
    *len = j - i;
    return tmpl_uni_isalnum(cp) && !(cp >= '0' && cp <= '9');
}

static bool name_char(const char *s, size_t n, size_t i, size_t *len)
{
    unsigned char c = (unsigned char)s[i];
    if (c < 0x80) {
        *len = 1;
        return c == '_' || is_digit((char)c) || ((c | 32) >= 'a' && (c | 32) <= 'z');
    }
    size_t j = i;
    uint32_t cp = tmpl_utf8_next(s, n, &j);
    *len = j - i;
    return tmpl_uni_isalnum(cp);
}

struct op_spelling {
    const char *text;
    uint8_t op;
};

static const struct op_spelling ops[] = {
    {"//", OP_FLOORDIV}, {"**", OP_POW},   {"==", OP_EQ},      {"!=", OP_NE},      {">=", OP_GE},
    {"<=", OP_LE},       {"+", OP_ADD},    {"-", OP_SUB},      {"/", OP_DIV},      {"*", OP_MUL},
    {"%", OP_MOD},       {"~", OP_TILDE},  {"[", OP_LBRACKET}, {"]", OP_RBRACKET}, {"(", OP_LPAREN},
    {")", OP_RPAREN},    {"{", OP_LBRACE}, {"}", OP_RBRACE},   {">", OP_GT},       {"<", OP_LT},
    {"=", OP_ASSIGN},    {".", OP_DOT},    {":", OP_COLON},    {"|", OP_PIPE},     {",", OP_COMMA},
    {";", OP_SEMICOLON},
};

/*
 * Lexes the inside of a {{ }} or {% %} tag starting at i (after the opening
 * delimiter and its modifier). Returns the offset after the closing delimiter
 * (and after the whitespace a "-" strips), or 0 on error. *strip_after tells
 * whether the closing delimiter had a "-".
 */
static size_t lex_tag(struct lexer *lx, size_t i, bool is_block, bool *strip_after)
{
    const char *s = lx->s;
    size_t n = lx->n;
    char close = is_block ? '%' : '}';
    char stack[TMPL_MAX_NEST];
    int depth = 0;
    for (;;) {
        size_t len;
        while (i < n && is_space_at(s, n, i, &len))
            i += len;
        if (i >= n) {
            lx_push(lx, T_EOF, n);
            return n + 1; /* the parser reports the unexpected end */
        }
        if (depth == 0) {
            if (s[i] == '-' && i + 2 < n && s[i + 1] == close && s[i + 2] == '}') {
                *strip_after = true;
                lx_push(lx, is_block ? T_BLOCK_END : T_VAR_END, i);
                return skip_space(s, n, i + 3);
            }
            if (is_block && s[i] == '+' && i + 2 < n && s[i + 1] == '%' && s[i + 2] == '}') {
                lx_push(lx, T_BLOCK_END, i);
                return i + 3;
            }
            if (s[i] == close && i + 1 < n && s[i + 1] == '}') {
                lx_push(lx, is_block ? T_BLOCK_END : T_VAR_END, i);
                return i + 2;
            }
        }
        size_t m;
        int base;
        char c = s[i];
        if ((m = match_float(s, n, i))) {
            char buf[128];
            if (!strip_underscores(s + i, m, buf, sizeof(buf))) {
                lx_error(lx, i, "%s", "number literal too long");
                return 0;
            }
            struct token *tk = lx_push(lx, T_FLOAT, i);
            tk->fval = strtod(buf, NULL);
            i += m;
        } else if ((m = match_int(s, n, i, &base))) {
            char buf[128];
            const char *digits = s + i + (base == 10 ? 0 : 2);
            size_t dn = m - (base == 10 ? 0 : 2);
            if (!strip_underscores(digits, dn, buf, sizeof(buf))) {
                lx_error(lx, i, "%s", "number literal too long");
                return 0;
            }
            errno = 0;
            unsigned long long v = strtoull(buf, NULL, base);
            if (errno == ERANGE || v > (unsigned long long)INT64_MAX) {
                lx_error(lx, i, "%s", "integer literal too large");
                return 0;
            }
            struct token *tk = lx_push(lx, T_INT, i);
            tk->ival = (int64_t)v;
            i += m;
        } else if (name_start(s, n, i, &len)) {
            size_t j = i + len;
            while (j < n && name_char(s, n, j, &len))
                j += len;
            struct token *tk = lx_push(lx, T_NAME, i);
            tk->p = s + i;
            tk->n = j - i;
            i = j;
        } else if (c == '\'' || c == '"') {
            size_t j = i + 1;
            while (j < n && s[j] != c) {
                if (s[j] == '\\' && j + 1 < n) j++;
                j++;
            }
            if (j >= n) {
                lx_error(lx, i, "%s", "unterminated string literal");
                return 0;
            }
            struct token *tk = lx_push(lx, T_STRING, i);
            if (decode_string(lx, i, s + i + 1, j - i - 1, tk)) return 0;
            i = j + 1;
        } else {
            const struct op_spelling *op = NULL;
            for (size_t k = 0; k < sizeof(ops) / sizeof(ops[0]); k++) {
                size_t l = strlen(ops[k].text);
                if (i + l <= n && !memcmp(s + i, ops[k].text, l)) {
                    op = &ops[k];
                    break;
                }
            }
            if (!op) {
                char what[8] = {0};
                size_t j = i;
                tmpl_utf8_next(s, n, &j);
                memcpy(what, s + i, j - i);
                lx_error(lx, i, "unexpected character '%s'", what);
                return 0;
            }
            if (op->op == OP_LPAREN || op->op == OP_LBRACKET || op->op == OP_LBRACE) {
                if (depth >= TMPL_MAX_NEST) {
                    lx_error(lx, i, "%s", "brackets nested too deeply");
                    return 0;
                }
                stack[depth++] = op->text[0];
            } else if (op->op == OP_RPAREN || op->op == OP_RBRACKET || op->op == OP_RBRACE) {
                char want = op->op == OP_RPAREN ? '(' : op->op == OP_RBRACKET ? '[' : '{';
                if (depth == 0) {
                    lx_error(lx, i, "unexpected '%s'", op->text);
                    return 0;
                }
                if (stack[depth - 1] != want) {
                    char msg[64];
                    char expect = stack[depth - 1] == '('   ? ')'
                                  : stack[depth - 1] == '[' ? ']'
                                                            : '}';
                    snprintf(msg, sizeof(msg), "unexpected '%s', expected '%c'", op->text, expect);
                    lx_error(lx, i, "%s", msg);
                    return 0;
                }
                depth--;
            }
            struct token *tk = lx_push(lx, T_OP, i);
            tk->op = op->op;
            tk->p = s + i;
            tk->n = strlen(op->text);
            i += tk->n;
        }
    }
}

int tmpl_lex(const struct template *t, struct token **toks, size_t *ntoks, struct echo_err *err)
{
    struct lexer lx = {.t = t, .s = t->src, .n = t->len, .cur_line = 1, .cur_col = 1, .err = err};
    const char *s = t->src;
    size_t n = t->len, i = 0;
    while (i < n) {
        /* Find the next tag opener. */
        size_t j = i;
        const char *hit = NULL;
        while (j + 1 < n) {
            hit = memchr(s + j, '{', n - j - 1);
            if (!hit) break;
            j = (size_t)(hit - s);
            char c = s[j + 1];
            if (c == '{' || c == '%' || c == '#') break;
            j++;
            hit = NULL;
        }
        if (!hit) {
            emit_data(&lx, i, n, false);
            break;
        }
        char kind = s[j + 1];
        char mod = j + 2 < n ? s[j + 2] : 0;
        char lmod;
        size_t raw_end = kind == '%' ? match_word_tag(s, n, j, "raw", &lmod, false) : 0;
        if (raw_end) {
            emit_data(&lx, i, j, lmod == '-');
            /* Find {% endraw %}: the first "{%" that forms one. */
            size_t k = raw_end, end = 0, body_end = 0;
            while (k + 1 < n) {
                const char *q = memchr(s + k, '{', n - k - 1);
                if (!q) break;
                k = (size_t)(q - s);
                char emod;
                end = match_word_tag(s, n, k, "endraw", &emod, true);
                if (end) {
                    body_end = k;
                    emit_data(&lx, raw_end, body_end, emod == '-');
                    break;
                }
                k++;
            }
            if (!end) {
                lx_error(&lx, j, "%s", "missing end of raw directive ({% endraw %})");
                free(lx.toks);
                return -1;
            }
            i = end;
            continue;
        }
        bool strip_before = mod == '-';
        emit_data(&lx, i, j, strip_before);
        size_t body = j + 2 + ((mod == '-' || mod == '+') ? 1 : 0);
        if (kind == '#') {
            size_t k = body;
            const char *q = NULL;
            while (k + 1 < n) {
                q = memchr(s + k, '#', n - k - 1);
                if (!q) break;
                k = (size_t)(q - s);
                if (s[k + 1] == '}') break;
                k++;
                q = NULL;
            }
            if (!q) {
                lx_error(&lx, j, "%s", "missing end of comment tag");
                free(lx.toks);
                return -1;
            }
            if (k > body && s[k - 1] == '-') {
                i = skip_space(s, n, k + 2);
            } else {
                i = k + 2;
            }
            continue;
        }
        bool is_block = kind == '%';
        lx_push(&lx, is_block ? T_BLOCK_BEGIN : T_VAR_BEGIN, j);
        bool strip_after = false;
        size_t next = lex_tag(&lx, body, is_block, &strip_after);
        if (!next) {
            free(lx.toks);
            return -1;
        }
        if (next > n) break; /* hit the end inside a tag; T_EOF pushed */
        i = next;            /* after a "-" end, the following whitespace is already skipped */
    }
    if (lx.ntoks == 0 || lx.toks[lx.ntoks - 1].type != T_EOF) lx_push(&lx, T_EOF, n);
    *toks = lx.toks;
    *ntoks = lx.ntoks;
    return 0;
}
