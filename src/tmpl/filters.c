/*
 * filters.c - the built-in filters and tests, and the Python string methods
 * templates may call (s.upper(), s.split(), ...). Each follows the Jinja2
 * 3.1 implementation (jinja2/filters.py, jinja2/tests.py) including its
 * Markup rules: a filter given markup keeps it markup where Python's Markup
 * methods would (upper, trim, replace, truncate ...) and loses it where
 * Jinja builds a plain str (title, join without markup).
 *
 * Filters of the original application: datetime (a unix timestamp or an ISO
 * 8601 string, formatted with strftime, default "%Y-%m-%d %H:%M"; UTC),
 * underscore_separate ("created_at" -> "created at") and get_att
 * (row|get_att(name): the attribute `name` of a row, undefined if missing).
 *
 * A filter receives the value in *v, replaces it with the result, and gets
 * its arguments bound to its declared parameters (TV_MISSING when absent).
 * All functions are thread-safe (they only touch the render state).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tmpl/tmpl_int.h"

#define MISSING(a) ((a).kind == TV_MISSING)

static int ferr(struct rctx *rc, const struct expr *e, const char *fmt, ...) ECHO_PRINTF(3, 4);
static int ferr(struct rctx *rc, const struct expr *e, const char *fmt, ...)
{
    char msg[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return tmpl_rc_error(rc, e->line, e->col, "%s: %s", e->name ? e->name : "filter", msg);
}

static bool arg_bool(const struct tval *a, bool def)
{
    return MISSING(*a) ? def : tmpl_tv_truthy(a);
}

static int arg_int(struct rctx *rc, const struct expr *e, const struct tval *a, int64_t def,
                   int64_t *out)
{
    if (MISSING(*a) || a->kind == TV_NONE) {
        *out = def;
        return 0;
    }
    if (a->kind == TV_INT || a->kind == TV_BOOL) {
        *out = a->kind == TV_BOOL ? a->u.b : a->u.i;
        return 0;
    }
    return ferr(rc, e, "expected an integer argument, got %s", tmpl_tv_type_name(a));
}

/* str(arg) for a string argument; an absent one gives def. */
static int arg_str(struct rctx *rc, const struct tval *a, const char *def, struct tval *out)
{
    if (MISSING(*a)) {
        *out = tv_str(def, strlen(def), false);
        return 0;
    }
    return tmpl_tv_to_str(rc, a, out);
}

static struct tval list_of(struct rctx *rc, size_t n, bool *ok)
{
    struct tval v = {.kind = TV_LIST};
    struct tlist *l = tmpl_rc_alloc(rc, sizeof(*l));
    *ok = l != NULL;
    if (!l) return v;
    l->n = n;
    l->items = n ? tmpl_rc_alloc(rc, n * sizeof(*l->items)) : NULL;
    if (n && !l->items) *ok = false;
    v.u.list = l;
    return v;
}

/* ---- case mapping ---- */

/* Decodes a string into code points in the pool. */
static uint32_t *decode(struct rctx *rc, const char *s, size_t n, size_t *count)
{
    size_t cap = tmpl_utf8_count(s, n);
    uint32_t *cps = tmpl_rc_alloc(rc, (cap ? cap : 1) * sizeof(*cps));
    if (!cps) return NULL;
    size_t k = 0, i = 0;
    while (i < n && k < cap)
        cps[k++] = tmpl_utf8_next(s, n, &i);
    *count = k;
    return cps;
}

/* Python's lower() of cps[from, to) including the Final_Sigma rule. */
static int lower_range(struct abuf *b, const uint32_t *cps, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++) {
        uint32_t out[3];
        if (cps[i] == 0x3A3) {
            size_t j = i;
            while (j > from && tmpl_uni_iscaseignorable(cps[j - 1]))
                j--;
            bool final = j > from && tmpl_uni_iscased(cps[j - 1]);
            if (final) {
                size_t k = i + 1;
                while (k < to && tmpl_uni_iscaseignorable(cps[k]))
                    k++;
                final = k == to || !tmpl_uni_iscased(cps[k]);
            }
            if (tmpl_abuf_putcp(b, final ? 0x3C2 : 0x3C3)) return -1;
            continue;
        }
        int n = tmpl_uni_lower(cps[i], out);
        for (int k = 0; k < n; k++)
            if (tmpl_abuf_putcp(b, out[k])) return -1;
    }
    return 0;
}

static int put_mapped(struct abuf *b, int (*map)(uint32_t, uint32_t[3]), uint32_t cp)
{
    uint32_t out[3];
    int n = map(cp, out);
    for (int k = 0; k < n; k++)
        if (tmpl_abuf_putcp(b, out[k])) return -1;
    return 0;
}

static bool title_sep(uint32_t cp)
{
    return cp == '-' || cp == '(' || cp == '{' || cp == '[' || cp == '<' || tmpl_uni_isspace(cp);
}

enum { CASE_PYTITLE = 10 };

int tmpl_case_map(struct rctx *rc, const struct tval *v, int how, struct tval *out)
{
    struct tval s;
    if (tmpl_tv_to_str(rc, v, &s)) return -1;
    size_t n;
    uint32_t *cps = decode(rc, s.u.s.p, s.u.s.n, &n);
    if (!cps) return -1;
    struct abuf b;
    tmpl_abuf_init(&b, rc);
    bool safe = s.safe;
    switch (how) {
    case CASE_UPPER:
        for (size_t i = 0; i < n; i++)
            if (put_mapped(&b, tmpl_uni_upper, cps[i])) return -1;
        break;
    case CASE_LOWER:
        if (lower_range(&b, cps, 0, n)) return -1;
        break;
    case CASE_CAPITALIZE:
        if (n && (put_mapped(&b, tmpl_uni_title, cps[0]) || lower_range(&b, cps, 1, n))) return -1;
        break;
    case CASE_TITLE:
        /* Jinja's title filter: split on runs of [-\s({[<], then
         * word[0].upper() + word[1:].lower() for every piece; the result is
         * a plain str even for markup input. */
        safe = false;
        for (size_t i = 0; i < n;) {
            bool sep = title_sep(cps[i]);
            size_t j = i + 1;
            while (j < n && title_sep(cps[j]) == sep)
                j++;
            if (put_mapped(&b, tmpl_uni_upper, cps[i]) || lower_range(&b, cps, i + 1, j)) return -1;
            i = j;
        }
        break;
    default: { /* Python str.title() */
        bool prev_cased = false;
        for (size_t i = 0; i < n; i++) {
            if (put_mapped(&b, prev_cased ? tmpl_uni_lower : tmpl_uni_title, cps[i])) return -1;
            prev_cased = tmpl_uni_iscased(cps[i]);
        }
        break;
    }
    }
    *out = tmpl_abuf_finish(&b, safe);
    return 0;
}

/* ---- string helpers ---- */

static bool in_chars(uint32_t cp, const struct tval *chars)
{
    if (!chars) return tmpl_uni_isspace(cp);
    size_t i = 0;
    while (i < chars->u.s.n)
        if (tmpl_utf8_next(chars->u.s.p, chars->u.s.n, &i) == cp) return true;
    return false;
}

/* Python strip/lstrip/rstrip (chars NULL: whitespace). */
static struct tval strip(const struct tval *s, const struct tval *chars, bool left, bool right)
{
    const char *p = s->u.s.p;
    size_t n = s->u.s.n, a = 0, z = n;
    if (left) {
        while (a < n) {
            size_t j = a;
            if (!in_chars(tmpl_utf8_next(p, n, &j), chars)) break;
            a = j;
        }
    }
    if (right) {
        size_t i = a, last_keep = a;
        while (i < n) {
            uint32_t cp = tmpl_utf8_next(p, n, &i);
            if (!in_chars(cp, chars)) last_keep = i;
        }
        z = last_keep;
    }
    return tv_str(p + a, z - a, s->safe);
}

static const char *find_sub(const char *h, size_t hn, const char *nd, size_t nn)
{
    if (nn == 0) return h;
    return memmem(h, hn, nd, nn);
}

/* Python str.replace(old, new, count); markup s escapes plain old/new first. */
static int replace_str(struct rctx *rc, const struct tval *s, struct tval old, struct tval new_,
                       int64_t count, bool safe, struct tval *out)
{
    struct abuf b;
    if (safe) {
        struct tval eo, en;
        if ((old.safe ? (eo = old, 0) : tmpl_tv_escape(rc, &old, &eo)) ||
            (new_.safe ? (en = new_, 0) : tmpl_tv_escape(rc, &new_, &en)))
            return -1;
        old = eo;
        new_ = en;
    }
    tmpl_abuf_init(&b, rc);
    const char *p = s->u.s.p, *end = p + s->u.s.n;
    int64_t done = 0;
    if (old.u.s.n == 0) {
        /* Python inserts `new` before every character and at the end. */
        size_t i = 0;
        while (count < 0 || done < count) {
            if (tmpl_abuf_put(&b, new_.u.s.p, new_.u.s.n)) return -1;
            done++;
            if (i >= s->u.s.n) break;
            size_t j = i;
            tmpl_utf8_next(p, s->u.s.n, &j);
            if (tmpl_abuf_put(&b, p + i, j - i)) return -1;
            i = j;
        }
        if (i < s->u.s.n && tmpl_abuf_put(&b, p + i, s->u.s.n - i)) return -1;
        *out = tmpl_abuf_finish(&b, safe);
        return 0;
    }
    while (p < end && (count < 0 || done < count)) {
        const char *hit = find_sub(p, (size_t)(end - p), old.u.s.p, old.u.s.n);
        if (!hit) break;
        if (tmpl_abuf_put(&b, p, (size_t)(hit - p)) || tmpl_abuf_put(&b, new_.u.s.p, new_.u.s.n))
            return -1;
        p = hit + old.u.s.n;
        done++;
    }
    if (tmpl_abuf_put(&b, p, (size_t)(end - p))) return -1;
    *out = tmpl_abuf_finish(&b, safe);
    return 0;
}

/* Python str.split(sep=None, maxsplit=-1). */
static int split_str(struct rctx *rc, const struct expr *e, const struct tval *s,
                     const struct tval *sep, int64_t maxsplit, struct tval *out)
{
    struct tval parts[64];
    size_t np = 0, cap = 64;
    struct tval *items = parts;
    const char *p = s->u.s.p;
    size_t n = s->u.s.n;
#define PUSH(ptr, len)                                                                             \
    do {                                                                                           \
        if (np == cap) {                                                                           \
            struct tval *more = tmpl_rc_alloc(rc, 2 * cap * sizeof(*more));                        \
            if (!more) return -1;                                                                  \
            memcpy(more, items, np * sizeof(*more));                                               \
            items = more;                                                                          \
            cap *= 2;                                                                              \
        }                                                                                          \
        items[np++] = tv_str((ptr), (len), s->safe);                                               \
    } while (0)
    if (!sep || sep->kind == TV_NONE) {
        size_t i = 0;
        int64_t splits = 0;
        for (;;) {
            while (i < n) {
                size_t j = i;
                if (!tmpl_uni_isspace(tmpl_utf8_next(p, n, &j))) break;
                i = j;
            }
            if (i >= n) break;
            if (maxsplit >= 0 && splits >= maxsplit) {
                /* The rest, without trailing whitespace. */
                struct tval rest =
                    strip(&(struct tval){.kind = TV_STR, .u.s = {p + i, n - i}}, NULL, false, true);
                PUSH(rest.u.s.p, rest.u.s.n);
                break;
            }
            size_t start = i;
            while (i < n) {
                size_t j = i;
                if (tmpl_uni_isspace(tmpl_utf8_next(p, n, &j))) break;
                i = j;
            }
            PUSH(p + start, i - start);
            splits++;
        }
    } else {
        if (sep->kind != TV_STR)
            return ferr(rc, e, "must be str or None, not %s", tmpl_tv_type_name(sep));
        if (sep->u.s.n == 0) return ferr(rc, e, "empty separator");
        const char *cur = p, *end = p + n;
        int64_t splits = 0;
        for (;;) {
            const char *hit = (maxsplit < 0 || splits < maxsplit)
                                  ? memmem(cur, (size_t)(end - cur), sep->u.s.p, sep->u.s.n)
                                  : NULL;
            if (!hit) {
                PUSH(cur, (size_t)(end - cur));
                break;
            }
            PUSH(cur, (size_t)(hit - cur));
            cur = hit + sep->u.s.n;
            splits++;
        }
    }
#undef PUSH
    bool ok;
    *out = list_of(rc, np, &ok);
    if (!ok) return -1;
    if (np) memcpy(out->u.list->items, items, np * sizeof(*items));
    return 0;
}

/* Markup-aware join as Jinja's join filter / Markup.join. */
static int join_items(struct rctx *rc, const struct tval *sep, const struct tlist *items,
                      struct tval *out)
{
    bool markup = sep->safe;
    if (rc->autoescape)
        for (size_t i = 0; i < items->n && !markup; i++)
            markup = items->items[i].kind == TV_STR && items->items[i].safe;
    if (!rc->autoescape) markup = false;
    struct abuf b;
    tmpl_abuf_init(&b, rc);
    for (size_t i = 0; i < items->n; i++) {
        if (i && (markup && !sep->safe ? tmpl_html_escape_abuf(&b, sep->u.s.p, sep->u.s.n)
                                       : tmpl_abuf_put(&b, sep->u.s.p, sep->u.s.n)))
            return -1;
        struct tval s;
        if (tmpl_tv_to_str(rc, &items->items[i], &s)) return -1;
        if (markup && !s.safe ? tmpl_html_escape_abuf(&b, s.u.s.p, s.u.s.n)
                              : tmpl_abuf_put(&b, s.u.s.p, s.u.s.n))
            return -1;
    }
    *out = tmpl_abuf_finish(&b, markup);
    return 0;
}

/* ---- number parsing as Python's int() and float() ---- */

/* int(str, base): whitespace around, a sign, "_" between digits, and a
 * 0x/0o/0b prefix when base is 16/8/2 or 0. */
static int py_parse_int(const char *s, size_t n, int base, int64_t *out)
{
    size_t i = 0;
    while (i < n && tmpl_uni_isspace((unsigned char)s[i]))
        i++;
    while (n > i && tmpl_uni_isspace((unsigned char)s[n - 1]))
        n--;
    bool neg = false;
    if (i < n && (s[i] == '+' || s[i] == '-')) neg = s[i++] == '-';
    if (i + 1 < n && s[i] == '0') {
        char c = (char)(s[i + 1] | 32);
        int pb = c == 'x' ? 16 : c == 'o' ? 8 : c == 'b' ? 2 : 0;
        if (pb && (base == 0 || base == pb)) {
            base = pb;
            i += 2;
            if (i < n && s[i] == '_') i++;
        }
    }
    if (base == 0) {
        /* Base 0 forbids leading zeros of decimal literals ("010"). */
        base = 10;
        if (i + 1 < n && s[i] == '0') {
            for (size_t k = i; k < n; k++)
                if (s[k] != '0' && s[k] != '_') return -1;
        }
    }
    if (i >= n || base < 2 || base > 36) return -1;
    uint64_t v = 0;
    bool prev_digit = false;
    for (; i < n; i++) {
        if (s[i] == '_') {
            if (!prev_digit || i + 1 >= n) return -1;
            prev_digit = false;
            continue;
        }
        int d;
        char c = s[i];
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if ((c | 32) >= 'a' && (c | 32) <= 'z')
            d = (c | 32) - 'a' + 10;
        else
            return -1;
        if (d >= base) return -1;
        if (v > (UINT64_MAX - (uint64_t)d) / (uint64_t)base) return -2;
        v = v * (uint64_t)base + (uint64_t)d;
        prev_digit = true;
    }
    if (!prev_digit) return -1;
    if (v > (uint64_t)INT64_MAX + (neg ? 1 : 0)) return -2;
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return 0;
}

/* float(str): whitespace around, "_" between digits, inf/nan spellings. */
static int py_parse_float(const char *s, size_t n, double *out)
{
    size_t i = 0;
    while (i < n && tmpl_uni_isspace((unsigned char)s[i]))
        i++;
    while (n > i && tmpl_uni_isspace((unsigned char)s[n - 1]))
        n--;
    char buf[128];
    size_t k = 0;
    if (n - i == 0 || n - i >= sizeof(buf)) return -1;
    for (size_t j = i; j < n; j++) {
        char c = s[j];
        if (c == '_') {
            bool digit_before = j > i && s[j - 1] >= '0' && s[j - 1] <= '9';
            bool digit_after = j + 1 < n && s[j + 1] >= '0' && s[j + 1] <= '9';
            if (!digit_before || !digit_after) return -1;
            continue;
        }
        if (!((c >= '0' && c <= '9') || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-' ||
              ((c | 32) >= 'a' && (c | 32) <= 'z')))
            return -1;
        buf[k++] = c;
    }
    buf[k] = 0;
    const char *p = buf;
    bool neg = false;
    if (*p == '+' || *p == '-') neg = *p++ == '-';
    if (!strcasecmp(p, "inf") || !strcasecmp(p, "infinity")) {
        *out = neg ? -INFINITY : INFINITY;
        return 0;
    }
    if (!strcasecmp(p, "nan")) {
        *out = NAN;
        return 0;
    }
    /* strtod also takes hex and "infinity" forms Python refuses: only
     * plain decimal syntax goes through. */
    for (const char *q = p; *q; q++)
        if (!((*q >= '0' && *q <= '9') || *q == '.' || *q == 'e' || *q == 'E' || *q == '+' ||
              *q == '-'))
            return -1;
    char *end;
    errno = 0;
    double d = strtod(buf, &end);
    if (*end || end == buf) return -1;
    *out = d;
    return 0;
}

/* ---- filters ---- */

static int f_escape(struct rctx *rc, const struct expr *e, struct tval *v, struct tval *a)
{
    (void)e;
    (void)a;
    return tmpl_tv_escape(rc, v, v);
}

static int f_forceescape(struct rctx *rc, const struct expr *e, struct tval *v, struct tval *a)
{
    (void)e;
    (void)a;
    v->safe = false;
    return tmpl_tv_escape(rc, v, v);
}

static int f_safe(struct rctx *rc, const struct expr *e, struct tval *v, struct tval *a)
{
    (void)e;
    (void)a;
    if (tmpl_tv_to_str(rc, v, v)) return -1;
    v->safe = true;
    return 0;
}

static int f_default(struct rctx *rc, const struct expr *e, struct tval *v, struct tval *a)
{
    (void)rc;
    (void)e;
    bool boolean = arg_bool(&a[1], false);
    if (v->kind == TV_UNDEF || (boolean && !tmpl_tv_truthy(v)))
        *v = MISSING(a[0]) ? tv_str("", 0, false) : a[0];
    return 0;
}

static int f_length(struct rctx *rc, const struct expr *e, struct tval *v, struct tval *a)
{
    (void)a;
    if (v->kind != TV_UNDEF && v->kind != TV_STR && !tmpl_tv_is_sequence(v) &&
        !tmpl_tv_is_mapping(v))
        return tmpl_rc_error(rc, e->line, e->col, "object of type '%s' has no len()",
                             tmpl_tv_type_name(v));
    *v = tv_int((int64_t)tmpl_tv_len(v));
    return 0;
}

static int f_upper(struct rctx *rc, const struct expr *e, struct tval *v, struct tval *a)
{
    (void)e;
    (void)a;
    return tmpl_case_map(rc, v, CASE_UPPER, v);
}

static int f_lower(struct rctx *rc, const struct expr *e, struct tval *v, struct tval *a)
{
    (void)e;
    (void)a;
    return tmpl_case_map(rc, v, CASE_LOWER, v);
}

static int f_title(struct rctx *rc, const struct expr *e, struct tval *v, struct tval *a)
{
    (void)e;
    (void)a;
    return tmpl_case_map(rc, v, CASE_TITLE, v);
}

static int f_capitalize(struct rctx *rc, const struct expr *e, struct tval *v, struct tval *a)
{
    (void)e;
    (void)a;
    return tmpl_case_map(rc, v, CASE_CAPITALIZE, v);
}

static int f_trim(struct rctx *rc, const struct expr *e, struct tval *v, struct tval *a)
{
    struct tval chars;
    if (tmpl_tv_to_str(rc, v, v)) return -1;
    if (MISSING(a[0]) || a[0].kind == TV_NONE) {
        *v = strip(v, NULL, true, true);
        return 0;
    }
    if (a[0].kind != TV_STR) return ferr(rc, e, "strip arg must be None or str");
    chars = a[0];
    *v = strip(v, &chars, true, true);
    return 0;
}

static int f_join(struct rctx *rc, const struct expr *e, struct tval *v, struct tval *a)
{
    struct tval sep;
    struct tlist items;
    if (arg_str(rc, &a[0], "", &sep) || tmpl_iterate(rc, e->line, e->col, v, &items)) return -1;
    if (!MISSING(a[1]) && a[1].kind != TV_NONE) {
        struct tval path;
        if (tmpl_tv_to_str(rc, &a[1], &path)) return -1;
        struct tlist mapped = {.n = items.n};
        mapped.items = items.n ? tmpl_rc_alloc(rc, items.n * sizeof(*mapped.items)) : NULL;
        if (items.n && !mapped.items) return -1;
        for (size_t i = 0; i < items.n; i++)
            if (tmpl_get_path(rc, &items.items[i], path.u.s.p, &mapped.items[i])) return -1;
        items = mapped;
    }
    return join_items(rc, &sep, &items, v);
}

static int f_replace(struct rctx *rc, const struct expr *e, struct tval *v, struct tval *a)
{
    if (MISSING(a[0]) || MISSING(a[1])) return ferr(rc, e, "missing the old and new strings");
    int64_t count;
    struct tval old, new_;
    if (arg_int(rc, e, &a[2], -1, &count) || tmpl_tv_to_str(rc, &a[0], &old) ||
        tmpl_tv_to_str(rc, &a[1], &new_))
        return -1;
    bool safe = false;
    if (rc->autoescape) {
        bool s_safe = v->kind == TV_STR && v->safe;
        if (old.safe || (new_.safe && !s_safe)) {
            if (tmpl_tv_escape(rc, v, v)) return -1;
            safe = true;
        } else {
            if (tmpl_tv_to_str(rc, v, v)) return -1;
            safe = v->safe;
        }
    } else if (tmpl_tv_to_str(rc, v, v)) {
        return -1;
    }
    return replace_str(rc, v, old, new_, count, safe, v);
}

static int f_truncate(struct rctx *rc, const struct expr *e, struct tval *v, struct tval *a)
{
    int64_t length, leeway;
    struct tval end;
    if (arg_int(rc, e, &a[0], 255, &length) || arg_str(rc, &a[2], "...", &end) ||
        arg_int(rc, e, &a[3], 5, &leeway))
        return -1;
    bool killwords = arg_bool(&a[1], false);
    size_t endlen = tmpl_utf8_count(end.u.s.p, end.u.s.n);
    if (length < (int64_t)endlen)
        return ferr(rc, e, "expected length >= %zu, got %lld", endlen, (long long)length);
    if (leeway < 0) return ferr(rc, e, "expected leeway >= 0, got %lld", (long long)leeway);
    if (v->kind == TV_UNDEF) return 0;
    if (v->kind != TV_STR) {
        /* Jinja returns any short enough sized value as it is; a longer
         * one fails there when "..." is added to the slice. */
        if (!tmpl_tv_is_sequence(v) && !tmpl_tv_is_mapping(v))
            return ferr(rc, e, "object of type '%s' has no len()", tmpl_tv_type_name(v));
        if ((int64_t)tmpl_tv_len(v) <= length + leeway) return 0;
        return ferr(rc, e, "can only truncate strings, not %s", tmpl_tv_type_name(v));
    }
    size_t len = tmpl_utf8_count(v->u.s.p, v->u.s.n);
    if ((int64_t)len <= length + leeway) return 0;
    size_t keep = tmpl_utf8_offset(v->u.s.p, v->u.s.n, (size_t)(length - (int64_t)endlen));
    struct tval head = tv_str(v->u.s.p, keep, v->safe);
    if (!killwords) {
        /* rsplit(" ", 1)[0]: everything before the last space. */
        const char *sp = NULL;
        for (size_t i = keep; i-- > 0;)
            if (v->u.s.p[i] == ' ') {
                sp = v->u.s.p + i;
                break;
            }
        if (sp) head.u.s.n = (size_t)(sp - v->u.s.p);
    }
    struct abuf b;
    tmpl_abuf_init(&b, rc);
    if (tmpl_abuf_put(&b, head.u.s.p, head.u.s.n) ||
        (v->safe && !end.safe ? tmpl_html_escape_abuf(&b, end.u.s.p, end.u.s.n)
                              : tmpl_abuf_put(&b, end.u.s.p, end.u.s.n)))
        return -1;
    *v = tmpl_abuf_finish(&b, v->safe);
    return 0;
}

static int f_int(struct rctx *rc, const struct expr *e, struct tval *v, struct tval *a)
{
    int64_t base;
    struct tval def = MISSING(a[0]) ? tv_int(0) : a[0];
    if (arg_int(rc, e, &a[1], 10, &base)) return -1;
    int64_t i;
    double d;
    switch (v->kind) {
    case TV_INT:
        return 0;
    case TV_BOOL:
        *v = tv_int(v->u.b);
        return 0;
    case TV_FLOAT:
        d = v->u.f;
        goto from_double;
    case TV_STR: {
        int r = py_parse_int(v->u.s.p, v->u.s.n, (int)base, &i);
        if (r == 0) {
            *v = tv_int(i);
            return 0;
        }
        if (r == -2) return ferr(rc, e, "integer too large");
        /* Jinja's quirk: "42.23"|int is 42. */
        if (py_parse_float(v->u.s.p, v->u.s.n, &d) == 0) goto from_double;
        *v = def;
        return 0;
    }
    default:
        *v = def;
        return 0;
    }
from_double:
    if (isnan(d)) {
        *v = def;
        return 0;
    }
    if (isinf(d)) return ferr(rc, e, "cannot convert float infinity to integer");
    if (d >= 9223372036854775808.0 || d < -9223372036854775808.0)
        return ferr(rc, e, "integer too large");
    *v = tv_int((int64_t)d);
    return 0;
}

static int f_float(struct rctx *rc, const struct expr *e, struct tval *v, struct tval *a)
{
    (void)rc;
    (void)e;
    struct tval def = MISSING(a[0]) ? tv_float(0.0) : a[0];
    double d;
    switch (v->kind) {
    case TV_FLOAT:
        return 0;
    case TV_INT:
        *v = tv_float((double)v->u.i);
        return 0;
    case TV_BOOL:
        *v = tv_float(v->u.b);
        return 0;
    case TV_STR:
        *v = py_parse_float(v->u.s.p, v->u.s.n, &d) == 0 ? tv_float(d) : def;
        return 0;
    default:
        *v = def;
        return 0;
    }
}

static double pow10i(int64_t p)
{
    return pow(10.0, (double)p);
}

/* Python round(x, ndigits) for floats: correctly rounded, ties to even. */
static double py_round(double x, int64_t nd)
{
    if (!isfinite(x)) return x;
    if (nd > 323) return x;
    if (nd < -308) return 0.0 * x;
    if (nd >= 0) {
        char buf[400];
        snprintf(buf, sizeof(buf), "%.*f", (int)nd, x);
        return strtod(buf, NULL);
    }
    double p = pow10i(-nd);
    double r = nearbyint(x / p) * p;
    return r == 0 ? copysign(0.0, x) : r;
}

static int f_round(struct rctx *rc, const struct expr *e, struct tval *v, struct tval *a)
{
    int64_t prec;
    struct tval method;
    if (arg_int(rc, e, &a[0], 0, &prec) || arg_str(rc, &a[1], "common", &method)) return -1;
    bool common = method.u.s.n == 6 && !memcmp(method.u.s.p, "common", 6);
    bool ceil_ = method.u.s.n == 4 && !memcmp(method.u.s.p, "ceil", 4);
    bool floor_ = method.u.s.n == 5 && !memcmp(method.u.s.p, "floor", 5);
    if (!common && !ceil_ && !floor_) return ferr(rc, e, "method must be common, ceil or floor");
    if (!tmpl_tv_is_number(v))
        return ferr(rc, e, "type %s doesn't define __round__ method", tmpl_tv_type_name(v));
    if (common) {
        if (v->kind != TV_FLOAT) {
            int64_t x = v->kind == TV_BOOL ? v->u.b : v->u.i;
            if (prec < 0) {
                /* Integer rounding to 10**-prec, ties to even. */
                if (prec < -18) {
                    *v = tv_int(0);
                    return 0;
                }
                int64_t p = 1;
                for (int64_t k = 0; k < -prec; k++)
                    p *= 10;
                int64_t q = x / p, r = x % p;
                if (r < 0) {
                    q -= 1;
                    r += p;
                }
                if (r > p - r || (r == p - r && (q & 1))) q += 1;
                int64_t res;
                if (__builtin_mul_overflow(q, p, &res)) return ferr(rc, e, "integer overflow");
                x = res;
            }
            *v = tv_int(x);
            return 0;
        }
        *v = tv_float(py_round(v->u.f, prec));
        return 0;
    }
    double x = v->kind == TV_FLOAT ? v->u.f : (double)(v->kind == TV_BOOL ? v->u.b : v->u.i);
    double p = pow10i(prec);
    double m = ceil_ ? ceil(x * p) : floor(x * p);
    if (!isfinite(m)) return ferr(rc, e, "cannot convert float infinity to integer");
    *v = tv_float(m / p);
    return 0;
}

static int f_abs(struct rctx *rc, const struct expr *e, struct tval *v, struct tval *a)
{
    (void)a;
    if (v->kind == TV_FLOAT) {
        *v = tv_float(fabs(v->u.f));
    } else if (v->kind == TV_INT || v->kind == TV_BOOL) {
        int64_t x = v->kind == TV_BOOL ? v->u.b : v->u.i;
        if (x == INT64_MIN) return ferr(rc, e, "integer overflow");
        *v = tv_int(x < 0 ? -x : x);
    } else {
        return ferr(rc, e, "bad operand type for abs(): '%s'", tmpl_tv_type_name(v));
    }
    return 0;
}

static int f_string(struct rctx *rc, const struct expr *e, struct tval *v, struct tval *a)
{
    (void)e;
    (void)a;
    return tmpl_tv_to_str(rc, v, v);
}

static int f_tojson(struct rctx *rc, const struct expr *e, struct tval *v, struct tval *a)
{
    int64_t indent = -1;
    if (!MISSING(a[0]) && a[0].kind != TV_NONE && arg_int(rc, e, &a[0], -1, &indent)) return -1;
    if (indent > 64) indent = 64;
    if (v->kind == TV_UNDEF)
        return ferr(rc, e, "Object of type Undefined is not JSON serializable");
    struct abuf b;
    tmpl_abuf_init(&b, rc);
    if (tmpl_tv_tojson(rc, e->line, e->col, v, (int)indent, &b)) return -1;
    *v = tmpl_abuf_finish(&b, true);
    return 0;
}

static int f_first(struct rctx *rc, const struct expr *e, struct tval *v, struct tval *a)
{
    (void)a;
    struct tlist items;
    if (tmpl_iterate(rc, e->line, e->col, v, &items)) return -1;
    *v = items.n ? items.items[0] : tv_undef(NULL);
    return 0;
}

static int f_last(struct rctx *rc, const struct expr *e, struct tval *v, struct tval *a)
{
    (void)a;
    struct tlist items;
    if (tmpl_iterate(rc, e->line, e->col, v, &items)) return -1;
    *v = items.n ? items.items[items.n - 1] : tv_undef(NULL);
    return 0;
}

static int f_list(struct rctx *rc, const struct expr *e, struct tval *v, struct tval *a)
{
    (void)a;
    struct tlist items;
    if (tmpl_iterate(rc, e->line, e->col, v, &items)) return -1;
    bool ok;
    struct tval l = list_of(rc, items.n, &ok);
    if (!ok) return -1;
    if (items.n) memcpy(l.u.list->items, items.items, items.n * sizeof(*items.items));
    *v = l;
    return 0;
}

static int f_reverse(struct rctx *rc, const struct expr *e, struct tval *v, struct tval *a)
{
    (void)a;
    struct tlist items;
    if (tmpl_iterate(rc, e->line, e->col, v, &items)) return -1;
    if (v->kind == TV_STR) {
        struct abuf b;
        tmpl_abuf_init(&b, rc);
        for (size_t i = items.n; i-- > 0;)
            if (tmpl_abuf_put(&b, items.items[i].u.s.p, items.items[i].u.s.n)) return -1;
        *v = tmpl_abuf_finish(&b, v->safe);
        return 0;
    }
    bool ok;
    struct tval l = list_of(rc, items.n, &ok);
    if (!ok) return -1;
    for (size_t i = 0; i < items.n; i++)
        l.u.list->items[i] = items.items[items.n - 1 - i];
    *v = l;
    return 0;
}

/* Sort keys: the attribute(s) of each item, lowercased unless case-sensitive. */
static int sort_key(struct rctx *rc, const struct tval *item, const struct tval *attr,
                    bool case_sensitive, struct tval *key)
{
    struct tval k = *item;
    if (attr && !MISSING(*attr) && attr->kind != TV_NONE) {
        struct tval path;
        if (tmpl_tv_to_str(rc, attr, &path)) return -1;
        /* "a,b" sorts by a, then b. */
        const char *p = path.u.s.p;
        if (memchr(p, ',', path.u.s.n)) {
            size_t parts = 1;
            for (size_t i = 0; i < path.u.s.n; i++)
                parts += p[i] == ',';
            bool ok;
            struct tval l = list_of(rc, parts, &ok);
            if (!ok) return -1;
            size_t start = 0, k2 = 0;
            for (size_t i = 0; i <= path.u.s.n; i++) {
                if (i == path.u.s.n || p[i] == ',') {
                    char *one = tmpl_rc_strdup(rc, p + start, i - start);
                    if (!one || tmpl_get_path(rc, item, one, &l.u.list->items[k2])) return -1;
                    if (!case_sensitive && l.u.list->items[k2].kind == TV_STR &&
                        tmpl_case_map(rc, &l.u.list->items[k2], CASE_LOWER, &l.u.list->items[k2]))
                        return -1;
                    k2++;
                    start = i + 1;
                }
            }
            *key = l;
            return 0;
        }
        if (tmpl_get_path(rc, item, p, &k)) return -1;
    }
    if (!case_sensitive && k.kind == TV_STR && tmpl_case_map(rc, &k, CASE_LOWER, &k)) return -1;
    *key = k;
    return 0;
}

struct sort_item {
    struct tval key;
    struct tval val;
};

/* A stable merge sort whose comparison can fail (mixed types). */
static int merge_sort(struct rctx *rc, const struct expr *e, struct sort_item *a,
                      struct sort_item *tmp, size_t n, bool reverse)
{
    if (n < 2) return 0;
    size_t h = n / 2;
    if (merge_sort(rc, e, a, tmp, h, reverse) || merge_sort(rc, e, a + h, tmp, n - h, reverse))
        return -1;
    size_t i = 0, j = h, k = 0;
    while (i < h && j < n) {
        int c;
        if (tmpl_tv_compare(reverse ? &a[i].key : &a[j].key, reverse ? &a[j].key : &a[i].key, &c))
            return ferr(rc, e, "'<' not supported between instances of '%s' and '%s'",
                        tmpl_tv_type_name(&a[j].key), tmpl_tv_type_name(&a[i].key));
        /* Take from the right only when strictly smaller: stability. */
        if (c < 0)
            tmp[k++] = a[j++];
        else
            tmp[k++] = a[i++];
    }
    while (i < h)
        tmp[k++] = a[i++];
    while (j < n)
        tmp[k++] = a[j++];
    memcpy(a, tmp, n * sizeof(*a));
    return 0;
}

static int sort_items(struct rctx *rc, const struct expr *e, const struct tlist *items,
                      const struct tval *attr, bool case_sensitive, bool reverse,
                      struct sort_item **out)
{
    size_t n = items->n;
    struct sort_item *a = tmpl_rc_alloc(rc, (n ? n : 1) * sizeof(*a));
    struct sort_item *tmp = tmpl_rc_alloc(rc, (n ? n : 1) * sizeof(*tmp));
    if (!a || !tmp) return -1;
    for (size_t i = 0; i < n; i++) {
        a[i].val = items->items[i];
        if (sort_key(rc, &items->items[i], attr, case_sensitive, &a[i].key)) return -1;
    }
    if (merge_sort(rc, e, a, tmp, n, reverse)) return -1;
    *out = a;
    return 0;
}

static int f_sort(struct rctx *rc, const struct expr *e, struct tval *v, struct tval *a)
{
    struct tlist items;
    if (tmpl_iterate(rc, e->line, e->col, v, &items)) return -1;
    struct sort_item *sorted;
    if (sort_items(rc, e, &items, &a[2], arg_bool(&a[1], false), arg_bool(&a[0], false), &sorted))
        return -1;
    bool ok;
    struct tval l = list_of(rc, items.n, &ok);
    if (!ok) return -1;
    for (size_t i = 0; i < items.n; i++)
        l.u.list->items[i] = sorted[i].val;
    *v = l;
    return 0;
}

static int mapping_pairs(struct rctx *rc, const struct expr *e, const struct tval *v,
                         struct tlist *pairs)
{
    struct tlist keys;
    if (!tmpl_tv_is_mapping(v) || v->kind == TV_NAMESPACE)
        return ferr(rc, e, "can only get item pairs from a mapping");
    if (tmpl_iterate(rc, e->line, e->col, v, &keys)) return -1;
    pairs->n = keys.n;
    pairs->items = keys.n ? tmpl_rc_alloc(rc, keys.n * sizeof(*pairs->items)) : NULL;
    if (keys.n && !pairs->items) return -1;
    for (size_t i = 0; i < keys.n; i++) {
        bool ok;
        struct tval pair = list_of(rc, 2, &ok);
        if (!ok) return -1;
        pair.tuple = true;
        pair.u.list->items[0] = keys.items[i];
        if (tmpl_getitem(rc, e->line, e->col, v, &keys.items[i], &pair.u.list->items[1])) return -1;
        pairs->items[i] = pair;
    }
    return 0;
}

static int f_items(struct rctx *rc, const struct expr *e, struct tval *v, struct tval *a)
{
    (void)a;
    struct tlist pairs = {0};
    if (v->kind != TV_UNDEF && mapping_pairs(rc, e, v, &pairs)) return -1;
    bool ok;
    struct tval l = list_of(rc, 0, &ok);
    if (!ok) return -1;
    *l.u.list = pairs;
    *v = l;
    return 0;
}

static int f_dictsort(struct rctx *rc, const struct expr *e, struct tval *v, struct tval *a)
{
    struct tval by;
    if (arg_str(rc, &a[1], "key", &by)) return -1;
    int pos;
    if (by.u.s.n == 3 && !memcmp(by.u.s.p, "key", 3))
        pos = 0;
    else if (by.u.s.n == 5 && !memcmp(by.u.s.p, "value", 5))
        pos = 1;
    else
        return ferr(rc, e, "You can only sort by either \"key\" or \"value\"");
    struct tlist pairs;
    if (mapping_pairs(rc, e, v, &pairs)) return -1;
    struct tval attr = tv_str(pos ? "1" : "0", 1, false);
    struct sort_item *sorted;
    if (sort_items(rc, e, &pairs, &attr, arg_bool(&a[0], false), arg_bool(&a[2], false), &sorted))
        return -1;
    for (size_t i = 0; i < pairs.n; i++)
        pairs.items[i] = sorted[i].val;
    bool ok;
    struct tval l = list_of(rc, 0, &ok);
    if (!ok) return -1;
    *l.u.list = pairs;
    *v = l;
    return 0;
}

static int f_sum(struct rctx *rc, const struct expr *e, struct tval *v, struct tval *a)
{
    struct tlist items;
    if (tmpl_iterate(rc, e->line, e->col, v, &items)) return -1;
    struct tval acc = MISSING(a[1]) ? tv_int(0) : a[1];
    for (size_t i = 0; i < items.n; i++) {
        struct tval item = items.items[i];
        if (!MISSING(a[0]) && a[0].kind != TV_NONE) {
            struct tval path;
            if (tmpl_tv_to_str(rc, &a[0], &path) ||
                tmpl_get_path(rc, &items.items[i], path.u.s.p, &item))
                return -1;
        }
        if (tmpl_arith(rc, e, OP_ADD, &acc, &item, &acc)) return -1;
    }
    *v = acc;
    return 0;
}

static int min_max(struct rctx *rc, const struct expr *e, struct tval *v, struct tval *a,
                   bool want_max)
{
    struct tlist items;
    if (tmpl_iterate(rc, e->line, e->col, v, &items)) return -1;
    if (items.n == 0) {
        *v = tv_undef(NULL);
        return 0;
    }
    bool cs = arg_bool(&a[0], false);
    size_t best = 0;
    struct tval best_key;
    if (sort_key(rc, &items.items[0], &a[1], cs, &best_key)) return -1;
    for (size_t i = 1; i < items.n; i++) {
        struct tval key;
        int c;
        if (sort_key(rc, &items.items[i], &a[1], cs, &key)) return -1;
        if (tmpl_tv_compare(&key, &best_key, &c))
            return ferr(rc, e, "'<' not supported between instances of '%s' and '%s'",
                        tmpl_tv_type_name(&key), tmpl_tv_type_name(&best_key));
        if (want_max ? c > 0 : c < 0) {
            best = i;
            best_key = key;
        }
    }
    *v = items.items[best];
    return 0;
}

static int f_min(struct rctx *rc, const struct expr *e, struct tval *v, struct tval *a)
{
    return min_max(rc, e, v, a, false);
}

static int f_max(struct rctx *rc, const struct expr *e, struct tval *v, struct tval *a)
{
    return min_max(rc, e, v, a, true);
}

static int f_unique(struct rctx *rc, const struct expr *e, struct tval *v, struct tval *a)
{
    struct tlist items;
    if (tmpl_iterate(rc, e->line, e->col, v, &items)) return -1;
    bool cs = arg_bool(&a[0], false), ok;
    struct tval l = list_of(rc, items.n, &ok);
    struct tval *keys = tmpl_rc_alloc(rc, (items.n ? items.n : 1) * sizeof(*keys));
    if (!ok || !keys) return -1;
    size_t k = 0;
    for (size_t i = 0; i < items.n; i++) {
        struct tval key;
        if (sort_key(rc, &items.items[i], &a[1], cs, &key)) return -1;
        bool seen = false;
        if (tmpl_count_steps(rc, e->line, e->col, k)) return -1;
        for (size_t j = 0; j < k && !seen; j++)
            seen = tmpl_tv_equal(&keys[j], &key);
        if (!seen) {
            keys[k] = key;
            l.u.list->items[k++] = items.items[i];
        }
    }
    l.u.list->n = k;
    *v = l;
    return 0;
}

static int f_batch(struct rctx *rc, const struct expr *e, struct tval *v, struct tval *a)
{
    int64_t size;
    if (MISSING(a[0])) return ferr(rc, e, "missing the batch size");
    if (arg_int(rc, e, &a[0], 1, &size)) return -1;
    if (size <= 0) return ferr(rc, e, "the batch size must be positive");
    struct tlist items;
    if (tmpl_iterate(rc, e->line, e->col, v, &items)) return -1;
    size_t nb = (items.n + (size_t)size - 1) / (size_t)size;
    bool ok;
    struct tval out = list_of(rc, nb, &ok);
    if (!ok) return -1;
    for (size_t b = 0; b < nb; b++) {
        size_t start = b * (size_t)size;
        size_t len = items.n - start < (size_t)size ? items.n - start : (size_t)size;
        size_t full = MISSING(a[1]) || a[1].kind == TV_NONE ? len : (size_t)size;
        struct tval chunk = list_of(rc, full, &ok);
        if (!ok) return -1;
        for (size_t i = 0; i < full; i++)
            chunk.u.list->items[i] = i < len ? items.items[start + i] : a[1];
        out.u.list->items[b] = chunk;
    }
    *v = out;
    return 0;
}

/* map(attribute=...) or map('filter', args...) */
static int f_map(struct rctx *rc, const struct expr *e, struct tval *v, struct tval *a)
{
    struct tlist items = {0};
    /* Jinja maps only a truthy value ("if value:"); none|map is empty. */
    if (tmpl_tv_truthy(v) && tmpl_iterate(rc, e->line, e->col, v, &items)) return -1;
    bool ok;
    struct tval out = list_of(rc, items.n, &ok);
    if (!ok) return -1;
    if (!MISSING(a[3])) {
        struct tval path;
        if (!MISSING(a[0])) return ferr(rc, e, "give either a filter name or attribute=, not both");
        if (tmpl_tv_to_str(rc, &a[3], &path)) return -1;
        for (size_t i = 0; i < items.n; i++) {
            struct tval r;
            if (tmpl_get_path(rc, &items.items[i], path.u.s.p, &r)) return -1;
            if (r.kind == TV_UNDEF && !MISSING(a[4])) r = a[4];
            out.u.list->items[i] = r;
        }
        *v = out;
        return 0;
    }
    if (MISSING(a[0]) || a[0].kind != TV_STR)
        return ferr(rc, e, "map needs a filter name or attribute=");
    char name[64];
    snprintf(name, sizeof(name), "%.*s", (int)(a[0].u.s.n < 63 ? a[0].u.s.n : 63), a[0].u.s.p);
    const struct filter_def *f = tmpl_find_filter(name);
    if (!f) return ferr(rc, e, "no filter named '%s'", name);
    struct tval args[TMPL_MAX_PARAMS];
    for (size_t i = 0; i < TMPL_MAX_PARAMS; i++)
        args[i].kind = TV_MISSING;
    args[0] = a[1];
    args[1] = a[2];
    struct expr fe = *e;
    fe.name = f->name;
    for (size_t i = 0; i < items.n; i++) {
        struct tval r = items.items[i];
        struct tval copy[TMPL_MAX_PARAMS];
        memcpy(copy, args, sizeof(copy));
        if (r.kind == TV_UNDEF && !f->undefined_ok)
            return tmpl_rc_undefined_error(rc, e->line, e->col, &r);
        if (f->fn(rc, &fe, &r, copy)) return -1;
        out.u.list->items[i] = r;
    }
    *v = out;
    return 0;
}

static int run_test(struct rctx *rc, const struct expr *e, const struct tval *testname,
                    const struct tval *arg, const struct tval *item, bool *result)
{
    if (MISSING(*testname) || testname->kind == TV_NONE) {
        *result = tmpl_tv_truthy(item);
        return 0;
    }
    if (testname->kind != TV_STR) return ferr(rc, e, "the test name must be a string");
    char name[64];
    snprintf(name, sizeof(name), "%.*s", (int)(testname->u.s.n < 63 ? testname->u.s.n : 63),
             testname->u.s.p);
    const struct test_def *t = tmpl_find_test(name);
    if (!t) return ferr(rc, e, "no test named '%s'", name);
    struct tval args[TMPL_MAX_PARAMS];
    for (size_t i = 0; i < TMPL_MAX_PARAMS; i++)
        args[i].kind = TV_MISSING;
    args[0] = *arg;
    return t->fn(rc, e, item, args, result);
}

static int select_impl(struct rctx *rc, const struct expr *e, struct tval *v, struct tval *a,
                       bool by_attr, bool keep)
{
    struct tlist items = {0};
    if (tmpl_tv_truthy(v) && tmpl_iterate(rc, e->line, e->col, v, &items)) return -1;
    bool ok;
    struct tval out = list_of(rc, items.n, &ok);
    if (!ok) return -1;
    struct tval path;
    if (by_attr) {
        if (MISSING(a[0])) return ferr(rc, e, "missing the attribute name");
        if (tmpl_tv_to_str(rc, &a[0], &path)) return -1;
    }
    size_t k = 0;
    for (size_t i = 0; i < items.n; i++) {
        struct tval subject = items.items[i];
        if (by_attr && tmpl_get_path(rc, &items.items[i], path.u.s.p, &subject)) return -1;
        bool r;
        if (run_test(rc, e, &a[by_attr ? 1 : 0], &a[by_attr ? 2 : 1], &subject, &r)) return -1;
        if (r == keep) out.u.list->items[k++] = items.items[i];
    }
    out.u.list->n = k;
    *v = out;
    return 0;
}

static int f_select(struct rctx *rc, const struct expr *e, struct tval *v, struct tval *a)
{
    return select_impl(rc, e, v, a, false, true);
}

static int f_reject(struct rctx *rc, const struct expr *e, struct tval *v, struct tval *a)
{
    return select_impl(rc, e, v, a, false, false);
}

static int f_selectattr(struct rctx *rc, const struct expr *e, struct tval *v, struct tval *a)
{
    return select_impl(rc, e, v, a, true, true);
}

static int f_rejectattr(struct rctx *rc, const struct expr *e, struct tval *v, struct tval *a)
{
    return select_impl(rc, e, v, a, true, false);
}

static int url_quote(struct abuf *b, const struct tval *s, bool for_qs)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < s->u.s.n; i++) {
        unsigned char c = (unsigned char)s->u.s.p[i];
        bool keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '.' || c == '-' || c == '~' || (c == '/' && !for_qs);
        if (keep) {
            if (tmpl_abuf_putc(b, (char)c)) return -1;
        } else if (c == ' ' && for_qs) {
            if (tmpl_abuf_putc(b, '+')) return -1;
        } else {
            char esc[3] = {'%', hex[c >> 4], hex[c & 15]};
            if (tmpl_abuf_put(b, esc, 3)) return -1;
        }
    }
    return 0;
}

static int f_urlencode(struct rctx *rc, const struct expr *e, struct tval *v, struct tval *a)
{
    (void)a;
    struct abuf b;
    tmpl_abuf_init(&b, rc);
    if (v->kind == TV_STR || (!tmpl_tv_is_sequence(v) && !tmpl_tv_is_mapping(v))) {
        struct tval s;
        if (tmpl_tv_to_str(rc, v, &s) || url_quote(&b, &s, false)) return -1;
        *v = tmpl_abuf_finish(&b, false);
        return 0;
    }
    struct tlist pairs;
    if (tmpl_tv_is_mapping(v)) {
        if (mapping_pairs(rc, e, v, &pairs)) return -1;
    } else if (tmpl_iterate(rc, e->line, e->col, v, &pairs)) {
        return -1;
    }
    for (size_t i = 0; i < pairs.n; i++) {
        struct tlist kv;
        struct tval k, val;
        if (tmpl_iterate(rc, e->line, e->col, &pairs.items[i], &kv)) return -1;
        if (kv.n != 2) return ferr(rc, e, "expected (key, value) pairs");
        if ((i && tmpl_abuf_putc(&b, '&')) || tmpl_tv_to_str(rc, &kv.items[0], &k) ||
            url_quote(&b, &k, true) || tmpl_abuf_putc(&b, '=') ||
            tmpl_tv_to_str(rc, &kv.items[1], &val) || url_quote(&b, &val, true))
            return -1;
    }
    *v = tmpl_abuf_finish(&b, false);
    return 0;
}

static int f_wordcount(struct rctx *rc, const struct expr *e, struct tval *v, struct tval *a)
{
    (void)e;
    (void)a;
    struct tval s;
    if (tmpl_tv_to_str(rc, v, &s)) return -1;
    int64_t words = 0;
    bool in_word = false;
    for (size_t i = 0; i < s.u.s.n;) {
        uint32_t cp = tmpl_utf8_next(s.u.s.p, s.u.s.n, &i);
        bool w = cp == '_' || tmpl_uni_isalnum(cp);
        if (w && !in_word) words++;
        in_word = w;
    }
    *v = tv_int(words);
    return 0;
}

/* {'class': 'x', 'id': none}|xmlattr -> ' class="x"' (none/undefined dropped). */
static int f_xmlattr(struct rctx *rc, const struct expr *e, struct tval *v, struct tval *a)
{
    struct tlist pairs;
    if (mapping_pairs(rc, e, v, &pairs)) return -1;
    bool autospace = arg_bool(&a[0], true);
    struct abuf b;
    tmpl_abuf_init(&b, rc);
    bool first = true;
    for (size_t i = 0; i < pairs.n; i++) {
        struct tval *kv = pairs.items[i].u.list->items;
        if (kv[1].kind == TV_NONE || kv[1].kind == TV_UNDEF) continue;
        struct tval k, val;
        if (tmpl_tv_to_str(rc, &kv[0], &k) || tmpl_tv_escape(rc, &kv[1], &val)) return -1;
        /* An attribute name that could break out of the tag is refused. */
        for (size_t j = 0; j < k.u.s.n; j++) {
            unsigned char c = (unsigned char)k.u.s.p[j];
            if (c <= ' ' || c == '/' || c == '>' || c == '=' || c == '"' || c == '\'' || c == '<')
                return ferr(rc, e, "invalid character in attribute name");
        }
        if (k.u.s.n == 0) return ferr(rc, e, "empty attribute name");
        if (((autospace || !first) && tmpl_abuf_putc(&b, ' ')) ||
            tmpl_html_escape_abuf(&b, k.u.s.p, k.u.s.n) || tmpl_abuf_put(&b, "=\"", 2) ||
            tmpl_abuf_put(&b, val.u.s.p, val.u.s.n) || tmpl_abuf_putc(&b, '"'))
            return -1;
        first = false;
    }
    *v = tmpl_abuf_finish(&b, true);
    return 0;
}

/* ---- the application's own filters ---- */

/*
 * Civil dates <-> days since 1970-01-01 (proleptic Gregorian), after Howard
 * Hinnant's chrono algorithms. Used instead of gmtime_r/timegm, which take
 * glibc's time zone lock on every call: a lock shared by all render threads.
 */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

/* Fills tm_wday and tm_yday from the date fields. */
static void tm_complete(struct tm *tm)
{
    int64_t y = tm->tm_year + 1900;
    int64_t days = days_from_civil(y, tm->tm_mon + 1, tm->tm_mday);
    tm->tm_wday = (int)(((days % 7) + 11) % 7); /* 1970-01-01 was a Thursday */
    tm->tm_yday = (int)(days - days_from_civil(y, 1, 1));
}

/* gmtime for a timestamp in the supported range (years 1..9999). */
static void tm_from_unix(int64_t t, struct tm *tm)
{
    int64_t days = t / 86400, secs = t % 86400;
    if (secs < 0) {
        secs += 86400;
        days -= 1;
    }
    int64_t y;
    int m, d;
    civil_from_days(days, &y, &m, &d);
    memset(tm, 0, sizeof(*tm));
    tm->tm_year = (int)(y - 1900);
    tm->tm_mon = m - 1;
    tm->tm_mday = d;
    tm->tm_hour = (int)(secs / 3600);
    tm->tm_min = (int)(secs % 3600 / 60);
    tm->tm_sec = (int)(secs % 60);
    tm_complete(tm);
}

static int parse_2(const char *p, int *out)
{
    if (p[0] < '0' || p[0] > '9' || p[1] < '0' || p[1] > '9') return -1;
    *out = (p[0] - '0') * 10 + (p[1] - '0');
    return 0;
}

/*
 * Parses "YYYY-MM-DD[( |T)HH:MM[:SS[.ffffff]]][Z|(+|-)HH[:]MM]" into tm,
 * microseconds and the UTC offset (offset_known false for a naive time).
 */
static int parse_iso(const char *s, size_t n, struct tm *tm, long *usec, long *offset,
                     bool *offset_known)
{
    char buf[64];
    if (n >= sizeof(buf)) return -1;
    memcpy(buf, s, n);
    buf[n] = 0;
    memset(tm, 0, sizeof(*tm));
    *usec = 0;
    *offset = 0;
    *offset_known = false;
    int y = 0, mo, d;
    const char *p = buf;
    for (int i = 0; i < 4; i++, p++) {
        if (*p < '0' || *p > '9') return -1;
        y = y * 10 + (*p - '0');
    }
    if (*p++ != '-' || parse_2(p, &mo) || p[2] != '-' || parse_2(p + 3, &d)) return -1;
    p += 5;
    int h = 0, mi = 0, sec = 0;
    if (*p == 'T' || *p == ' ') {
        p++;
        if (parse_2(p, &h) || p[2] != ':' || parse_2(p + 3, &mi)) return -1;
        p += 5;
        if (*p == ':') {
            if (parse_2(p + 1, &sec)) return -1;
            p += 3;
            if (*p == '.' || *p == ',') {
                p++;
                int digits = 0;
                long frac = 0;
                while (*p >= '0' && *p <= '9') {
                    if (digits < 6) {
                        frac = frac * 10 + (*p - '0');
                        digits++;
                    }
                    p++;
                }
                if (!digits) return -1;
                while (digits++ < 6)
                    frac *= 10;
                *usec = frac;
            }
        }
        if (*p == 'Z' || *p == 'z') {
            *offset_known = true;
            p++;
        } else if (*p == '+' || *p == '-') {
            int oh, om = 0, sign = *p == '-' ? -1 : 1;
            if (parse_2(p + 1, &oh)) return -1;
            p += 3;
            if (*p == ':') p++;
            if (*p) {
                if (parse_2(p, &om)) return -1;
                p += 2;
            }
            if (oh > 23 || om > 59) return -1;
            *offset = sign * (oh * 3600 + om * 60);
            *offset_known = true;
        }
    }
    if (*p) return -1;
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 || mi > 59 || sec > 59)
        return -1;
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (mo == 2 && d == 29 && !leap) return -1;
    tm->tm_year = y - 1900;
    tm->tm_mon = mo - 1;
    tm->tm_mday = d;
    tm->tm_hour = h;
    tm->tm_min = mi;
    tm->tm_sec = sec;
    tm_complete(tm);
    return 0;
}

/*
 * strftime for the numeric conversions pages use (%Y %m %d %H %M %S %y %j
 * %%), which is several times faster than glibc's; (size_t)-1 when the
 * format has anything else (names, %c, ...) and strftime must do it.
 */
static size_t fast_strftime(char *out, size_t size, const char *fmt, const struct tm *tm)
{
    size_t k = 0;
    for (const char *p = fmt; *p; p++) {
        if (k + 8 >= size) return (size_t)-1;
        if (*p != '%') {
            out[k++] = *p;
            continue;
        }
        int v, width;
        switch (*++p) {
        case 'Y':
            v = tm->tm_year + 1900;
            width = 4;
            break;
        case 'm':
            v = tm->tm_mon + 1;
            width = 2;
            break;
        case 'd':
            v = tm->tm_mday;
            width = 2;
            break;
        case 'H':
            v = tm->tm_hour;
            width = 2;
            break;
        case 'M':
            v = tm->tm_min;
            width = 2;
            break;
        case 'S':
            v = tm->tm_sec;
            width = 2;
            break;
        case 'y':
            v = (tm->tm_year + 1900) % 100;
            width = 2;
            break;
        case 'j':
            v = tm->tm_yday + 1;
            width = 3;
            break;
        case '%':
            out[k++] = '%';
            continue;
        default:
            return (size_t)-1;
        }
        if (v < 0 || v > 9999) return (size_t)-1;
        for (int i = width - 1; i >= 0; i--) {
            out[k + (size_t)i] = (char)('0' + v % 10);
            v /= 10;
        }
        k += (size_t)width;
    }
    out[k] = 0;
    return k;
}

static int f_datetime(struct rctx *rc, const struct expr *e, struct tval *v, struct tval *a)
{
    struct tval fmt;
    if (arg_str(rc, &a[0], "%Y-%m-%d %H:%M", &fmt)) return -1;
    if (v->kind == TV_UNDEF || v->kind == TV_NONE) {
        *v = tv_str("", 0, false);
        return 0;
    }
    struct tm tm;
    long usec = 0, offset = 0;
    bool offset_known = false;
    if (v->kind == TV_INT || v->kind == TV_FLOAT) {
        double ts = v->kind == TV_INT ? (double)v->u.i : v->u.f;
        if (!isfinite(ts) || ts > 253402300799.0 || ts < -62135596800.0)
            return ferr(rc, e, "timestamp out of range");
        double whole = floor(ts);
        usec = (long)llround((ts - whole) * 1e6);
        if (usec >= 1000000) {
            usec -= 1000000;
            whole += 1;
        }
        tm_from_unix((int64_t)whole, &tm);
    } else if (v->kind == TV_STR) {
        if (parse_iso(v->u.s.p, v->u.s.n, &tm, &usec, &offset, &offset_known))
            return ferr(rc, e, "'%.*s' is not an ISO 8601 date/time",
                        (int)(v->u.s.n > 60 ? 60 : v->u.s.n), v->u.s.p);
    } else {
        return ferr(rc, e, "expected a timestamp or an ISO 8601 string, got %s",
                    tmpl_tv_type_name(v));
    }
    /* %f, %z and %Z are Python's (microseconds; offset and zone only for an
     * aware time); the rest is C strftime in the "C" locale. */
    char cfmt[512];
    size_t k = 0;
    const char *f = fmt.u.s.p;
    for (size_t i = 0; i < fmt.u.s.n; i++) {
        if (k + 16 >= sizeof(cfmt)) return ferr(rc, e, "format too long");
        if (f[i] == 0) return ferr(rc, e, "format contains a NUL character");
        if (f[i] != '%' || i + 1 >= fmt.u.s.n) {
            cfmt[k++] = f[i];
            continue;
        }
        char c = f[++i];
        if (c == 'f') {
            k += (size_t)snprintf(cfmt + k, sizeof(cfmt) - k, "%06ld", usec);
        } else if (c == 'z') {
            if (offset_known) {
                long o = offset < 0 ? -offset : offset;
                k += (size_t)snprintf(cfmt + k, sizeof(cfmt) - k, "%c%02ld%02ld",
                                      offset < 0 ? '-' : '+', o / 3600, (o % 3600) / 60);
            }
        } else if (c == 'Z') {
            if (offset_known && offset == 0)
                k += (size_t)snprintf(cfmt + k, sizeof(cfmt) - k, "UTC");
        } else {
            cfmt[k++] = '%';
            cfmt[k++] = c;
        }
    }
    cfmt[k] = 0;
    char out[1024];
    size_t n = fast_strftime(out, sizeof(out), cfmt, &tm);
    if (n == (size_t)-1) n = k ? strftime(out, sizeof(out), cfmt, &tm) : 0;
    /* In the "C" locale no conversion is empty, so 0 means no room. */
    if (n == 0 && k > 0) return ferr(rc, e, "formatted date too long");
    char *copy = tmpl_rc_strdup(rc, out, n);
    if (!copy) return -1;
    *v = tv_str(copy, n, false);
    return 0;
}

static int f_underscore_separate(struct rctx *rc, const struct expr *e, struct tval *v,
                                 struct tval *a)
{
    (void)e;
    (void)a;
    struct tval s;
    if (tmpl_tv_to_str(rc, v, &s)) return -1;
    char *copy = tmpl_rc_strdup(rc, s.u.s.p, s.u.s.n);
    if (!copy) return -1;
    for (size_t i = 0; i < s.u.s.n; i++)
        if (copy[i] == '_') copy[i] = ' ';
    *v = tv_str(copy, s.u.s.n, false);
    return 0;
}

static int f_get_att(struct rctx *rc, const struct expr *e, struct tval *v, struct tval *a)
{
    if (MISSING(a[0])) return ferr(rc, e, "missing the attribute name");
    struct tval name;
    if (tmpl_tv_to_str(rc, &a[0], &name)) return -1;
    return tmpl_getattr(rc, v, name.u.s.p, name.u.s.n, v);
}

static const struct filter_def filters[] = {
    {"abs", f_abs, {NULL}, false},
    {"batch", f_batch, {"linecount", "fill_with", NULL}, true},
    {"capitalize", f_capitalize, {NULL}, true},
    {"count", f_length, {NULL}, true},
    {"d", f_default, {"default_value", "boolean", NULL}, true},
    {"datetime", f_datetime, {"format", NULL}, true},
    {"default", f_default, {"default_value", "boolean", NULL}, true},
    {"dictsort", f_dictsort, {"case_sensitive", "by", "reverse", NULL}, false},
    {"e", f_escape, {NULL}, true},
    {"escape", f_escape, {NULL}, true},
    {"first", f_first, {NULL}, true},
    {"float", f_float, {"default", NULL}, false},
    {"forceescape", f_forceescape, {NULL}, true},
    {"get_att", f_get_att, {"name", NULL}, true},
    {"int", f_int, {"default", "base", NULL}, false},
    {"items", f_items, {NULL}, true},
    {"join", f_join, {"d", "attribute", NULL}, true},
    {"last", f_last, {NULL}, true},
    {"length", f_length, {NULL}, true},
    {"list", f_list, {NULL}, true},
    {"lower", f_lower, {NULL}, true},
    {"map", f_map, {"name", "arg1", "arg2", "attribute", "default"}, true},
    {"max", f_max, {"case_sensitive", "attribute", NULL}, true},
    {"min", f_min, {"case_sensitive", "attribute", NULL}, true},
    {"reject", f_reject, {"test", "arg", NULL}, true},
    {"rejectattr", f_rejectattr, {"attribute", "test", "arg", NULL}, true},
    {"replace", f_replace, {"old", "new", "count", NULL}, true},
    {"reverse", f_reverse, {NULL}, true},
    {"round", f_round, {"precision", "method", NULL}, false},
    {"safe", f_safe, {NULL}, true},
    {"select", f_select, {"test", "arg", NULL}, true},
    {"selectattr", f_selectattr, {"attribute", "test", "arg", NULL}, true},
    {"sort", f_sort, {"reverse", "case_sensitive", "attribute", NULL}, true},
    {"string", f_string, {NULL}, true},
    {"sum", f_sum, {"attribute", "start", NULL}, true},
    {"title", f_title, {NULL}, true},
    {"tojson", f_tojson, {"indent", NULL}, true},
    {"trim", f_trim, {"chars", NULL}, true},
    {"truncate", f_truncate, {"length", "killwords", "end", "leeway", NULL}, true},
    {"underscore_separate", f_underscore_separate, {NULL}, true},
    {"unique", f_unique, {"case_sensitive", "attribute", NULL}, true},
    {"upper", f_upper, {NULL}, true},
    {"urlencode", f_urlencode, {NULL}, true},
    {"wordcount", f_wordcount, {NULL}, true},
    {"xmlattr", f_xmlattr, {"autospace", NULL}, false},
};

const struct filter_def *tmpl_find_filter(const char *name)
{
    for (size_t i = 0; i < sizeof(filters) / sizeof(filters[0]); i++)
        if (!strcmp(filters[i].name, name)) return &filters[i];
    return NULL;
}

/* ---- tests ---- */

#define TEST(fname)                                                                                \
    static int fname(struct rctx *rc, const struct expr *e, const struct tval *v, struct tval *a,  \
                     bool *r)

TEST(t_defined)
{
    (void)rc;
    (void)e;
    (void)a;
    *r = v->kind != TV_UNDEF;
    return 0;
}
TEST(t_undefined)
{
    (void)rc;
    (void)e;
    (void)a;
    *r = v->kind == TV_UNDEF;
    return 0;
}
TEST(t_none)
{
    (void)rc;
    (void)e;
    (void)a;
    *r = v->kind == TV_NONE;
    return 0;
}
TEST(t_boolean)
{
    (void)rc;
    (void)e;
    (void)a;
    *r = v->kind == TV_BOOL;
    return 0;
}
TEST(t_true)
{
    (void)rc;
    (void)e;
    (void)a;
    *r = v->kind == TV_BOOL && v->u.b;
    return 0;
}
TEST(t_false)
{
    (void)rc;
    (void)e;
    (void)a;
    *r = v->kind == TV_BOOL && !v->u.b;
    return 0;
}
TEST(t_integer)
{
    (void)rc;
    (void)e;
    (void)a;
    *r = v->kind == TV_INT;
    return 0;
}
TEST(t_float)
{
    (void)rc;
    (void)e;
    (void)a;
    *r = v->kind == TV_FLOAT;
    return 0;
}
TEST(t_number)
{
    (void)rc;
    (void)e;
    (void)a;
    *r = tmpl_tv_is_number(v);
    return 0;
}
TEST(t_string)
{
    (void)rc;
    (void)e;
    (void)a;
    *r = v->kind == TV_STR;
    return 0;
}
TEST(t_mapping)
{
    (void)rc;
    (void)e;
    (void)a;
    *r = tmpl_tv_is_mapping(v) && v->kind != TV_NAMESPACE;
    return 0;
}
TEST(t_sequence)
{
    (void)rc;
    (void)e;
    (void)a;
    /* Jinja checks len() and [] : strings, lists, dicts and Undefined. */
    *r = v->kind == TV_STR || v->kind == TV_UNDEF || tmpl_tv_is_sequence(v) ||
         (tmpl_tv_is_mapping(v) && v->kind != TV_NAMESPACE);
    return 0;
}
TEST(t_iterable)
{
    (void)rc;
    (void)e;
    (void)a;
    *r = v->kind == TV_STR || v->kind == TV_UNDEF || tmpl_tv_is_sequence(v) ||
         (tmpl_tv_is_mapping(v) && v->kind != TV_NAMESPACE);
    return 0;
}
TEST(t_callable)
{
    (void)rc;
    (void)e;
    (void)a;
    *r = v->kind == TV_MACRO || v->kind == TV_FUNC;
    return 0;
}
TEST(t_escaped)
{
    (void)rc;
    (void)e;
    (void)a;
    *r = v->kind == TV_STR && v->safe;
    return 0;
}

TEST(t_sameas)
{
    (void)rc;
    (void)e;
    const struct tval *o = &a[0];
    if (v->kind != o->kind)
        *r = false;
    else if (v->kind == TV_NONE || v->kind == TV_UNDEF)
        *r = v->kind == TV_NONE;
    else if (v->kind == TV_BOOL)
        *r = v->u.b == o->u.b;
    else if (v->kind == TV_INT) /* CPython caches small ints */
        *r = v->u.i == o->u.i && v->u.i >= -5 && v->u.i <= 256;
    else if (v->kind == TV_JSON)
        *r = v->u.j == o->u.j;
    else if (v->kind == TV_LIST)
        *r = v->u.list == o->u.list;
    else if (v->kind == TV_DICT || v->kind == TV_NAMESPACE)
        *r = v->u.dict == o->u.dict;
    else if (v->kind == TV_MACRO)
        *r = v->u.macro == o->u.macro;
    else
        *r = false;
    return 0;
}

static int mod_test(struct rctx *rc, const struct expr *e, const struct tval *v,
                    const struct tval *d, int64_t want, bool *r)
{
    struct tval m;
    if (tmpl_arith(rc, e, OP_MOD, v, d, &m)) return -1;
    struct tval w = tv_int(want);
    *r = tmpl_tv_equal(&m, &w);
    return 0;
}

TEST(t_even)
{
    (void)a;
    struct tval two = tv_int(2);
    return mod_test(rc, e, v, &two, 0, r);
}
TEST(t_odd)
{
    (void)a;
    struct tval two = tv_int(2);
    return mod_test(rc, e, v, &two, 1, r);
}
TEST(t_divisibleby)
{
    if (MISSING(a[0])) return tmpl_rc_error(rc, e->line, e->col, "divisibleby needs a number");
    return mod_test(rc, e, v, &a[0], 0, r);
}

static int case_test(struct rctx *rc, const struct tval *v, bool want_lower, bool *r)
{
    struct tval s;
    if (tmpl_tv_to_str(rc, v, &s)) return -1;
    bool cased = false, ok = true;
    for (size_t i = 0; i < s.u.s.n && ok;) {
        uint32_t cp = tmpl_utf8_next(s.u.s.p, s.u.s.n, &i);
        if (want_lower ? tmpl_uni_isupper(cp) : tmpl_uni_islower(cp))
            ok = false;
        else if (want_lower ? tmpl_uni_islower(cp) : tmpl_uni_isupper(cp))
            cased = true;
    }
    *r = ok && cased;
    return 0;
}

TEST(t_lower)
{
    (void)e;
    (void)a;
    return case_test(rc, v, true, r);
}
TEST(t_upper)
{
    (void)e;
    (void)a;
    return case_test(rc, v, false, r);
}

static int cmp_test(struct rctx *rc, const struct expr *e, const struct tval *v,
                    const struct tval *other, int op, bool *r)
{
    if (MISSING(*other))
        return tmpl_rc_error(rc, e->line, e->col, "the test needs a value to compare with");
    return tmpl_compare_op(rc, e, op, v, other, r);
}

TEST(t_eq)
{
    return cmp_test(rc, e, v, &a[0], OP_EQ, r);
}
TEST(t_ne)
{
    return cmp_test(rc, e, v, &a[0], OP_NE, r);
}
TEST(t_lt)
{
    return cmp_test(rc, e, v, &a[0], OP_LT, r);
}
TEST(t_le)
{
    return cmp_test(rc, e, v, &a[0], OP_LE, r);
}
TEST(t_gt)
{
    return cmp_test(rc, e, v, &a[0], OP_GT, r);
}
TEST(t_ge)
{
    return cmp_test(rc, e, v, &a[0], OP_GE, r);
}
TEST(t_in)
{
    return cmp_test(rc, e, v, &a[0], OP_IN, r);
}

static const struct test_def tests[] = {
    {"boolean", t_boolean, {NULL}},   {"callable", t_callable, {NULL}},
    {"defined", t_defined, {NULL}},   {"divisibleby", t_divisibleby, {"num", NULL}},
    {"eq", t_eq, {"other", NULL}},    {"equalto", t_eq, {"other", NULL}},
    {"escaped", t_escaped, {NULL}},   {"even", t_even, {NULL}},
    {"false", t_false, {NULL}},       {"float", t_float, {NULL}},
    {"ge", t_ge, {"other", NULL}},    {"greaterthan", t_gt, {"other", NULL}},
    {"gt", t_gt, {"other", NULL}},    {"in", t_in, {"seq", NULL}},
    {"integer", t_integer, {NULL}},   {"iterable", t_iterable, {NULL}},
    {"le", t_le, {"other", NULL}},    {"lessthan", t_lt, {"other", NULL}},
    {"lower", t_lower, {NULL}},       {"lt", t_lt, {"other", NULL}},
    {"mapping", t_mapping, {NULL}},   {"ne", t_ne, {"other", NULL}},
    {"none", t_none, {NULL}},         {"number", t_number, {NULL}},
    {"odd", t_odd, {NULL}},           {"sameas", t_sameas, {"other", NULL}},
    {"sequence", t_sequence, {NULL}}, {"string", t_string, {NULL}},
    {"true", t_true, {NULL}},         {"undefined", t_undefined, {NULL}},
    {"upper", t_upper, {NULL}},       {"==", t_eq, {"other", NULL}},
    {"!=", t_ne, {"other", NULL}},    {"<", t_lt, {"other", NULL}},
    {"<=", t_le, {"other", NULL}},    {">", t_gt, {"other", NULL}},
    {">=", t_ge, {"other", NULL}},
};

const struct test_def *tmpl_find_test(const char *name)
{
    for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++)
        if (!strcmp(tests[i].name, name)) return &tests[i];
    return NULL;
}

/* ---- string methods ---- */

static bool is_name(const char *name, const char *want)
{
    return !strcmp(name, want);
}

int tmpl_str_method(struct rctx *rc, const struct expr *call, const struct tval *s,
                    const char *name, struct tval *args, size_t nargs, struct tval *out)
{
    struct expr e = *call;
    e.name = name;
#define NARGS(lo, hi)                                                                              \
    do {                                                                                           \
        if ((long)nargs < (lo) || (long)nargs > (hi))                                              \
            return ferr(rc, &e, "takes %d to %d arguments (%zu given)", lo, hi, nargs);            \
    } while (0)
    if (is_name(name, "upper") || is_name(name, "lower") || is_name(name, "title") ||
        is_name(name, "capitalize")) {
        NARGS(0, 0);
        int how = name[0] == 'u'   ? CASE_UPPER
                  : name[0] == 'l' ? CASE_LOWER
                  : name[0] == 't' ? CASE_PYTITLE
                                   : CASE_CAPITALIZE;
        return tmpl_case_map(rc, s, how, out) ? -1 : 1;
    }
    if (is_name(name, "strip") || is_name(name, "lstrip") || is_name(name, "rstrip")) {
        NARGS(0, 1);
        const struct tval *chars = nargs && args[0].kind != TV_NONE ? &args[0] : NULL;
        if (chars && chars->kind != TV_STR) return ferr(rc, &e, "arg must be None or str");
        *out = strip(s, chars, name[0] != 'r', name[0] != 'l');
        return 1;
    }
    if (is_name(name, "startswith") || is_name(name, "endswith")) {
        NARGS(1, 1);
        struct tlist cands;
        if (args[0].kind == TV_STR) {
            cands.n = 1;
            cands.items = &args[0];
        } else if (args[0].kind == TV_LIST && args[0].tuple) {
            cands = *args[0].u.list;
        } else {
            return ferr(rc, &e, "first arg must be str or a tuple of str, not %s",
                        tmpl_tv_type_name(&args[0]));
        }
        bool starts = name[0] == 's';
        *out = tv_bool(false);
        for (size_t i = 0; i < cands.n; i++) {
            const struct tval *c = &cands.items[i];
            if (c->kind != TV_STR) return ferr(rc, &e, "tuple for %s must only contain str", name);
            if (c->u.s.n <= s->u.s.n &&
                !memcmp(s->u.s.p + (starts ? 0 : s->u.s.n - c->u.s.n), c->u.s.p, c->u.s.n)) {
                *out = tv_bool(true);
                break;
            }
        }
        return 1;
    }
    if (is_name(name, "split")) {
        NARGS(0, 2);
        int64_t maxsplit = -1;
        if (nargs > 1 && arg_int(rc, &e, &args[1], -1, &maxsplit)) return -1;
        return split_str(rc, &e, s, nargs ? &args[0] : NULL, maxsplit, out) ? -1 : 1;
    }
    if (is_name(name, "replace")) {
        NARGS(2, 3);
        int64_t count = -1;
        if (nargs > 2 && arg_int(rc, &e, &args[2], -1, &count)) return -1;
        if (args[0].kind != TV_STR || args[1].kind != TV_STR)
            return ferr(rc, &e, "arguments must be str");
        return replace_str(rc, s, args[0], args[1], count, s->safe, out) ? -1 : 1;
    }
    if (is_name(name, "join")) {
        NARGS(1, 1);
        struct tlist items;
        if (tmpl_iterate(rc, e.line, e.col, &args[0], &items)) return -1;
        for (size_t i = 0; i < items.n; i++)
            if (items.items[i].kind != TV_STR)
                return ferr(rc, &e, "sequence item %zu: expected str instance, %s found", i,
                            tmpl_tv_type_name(&items.items[i]));
        /* str.join is plain; Markup.join escapes the plain items. */
        struct abuf b;
        tmpl_abuf_init(&b, rc);
        for (size_t i = 0; i < items.n; i++) {
            const struct tval *it = &items.items[i];
            if ((i && tmpl_abuf_put(&b, s->u.s.p, s->u.s.n)) ||
                (s->safe && !it->safe ? tmpl_html_escape_abuf(&b, it->u.s.p, it->u.s.n)
                                      : tmpl_abuf_put(&b, it->u.s.p, it->u.s.n)))
                return -1;
        }
        *out = tmpl_abuf_finish(&b, s->safe);
        return 1;
    }
    if (is_name(name, "count") || is_name(name, "find")) {
        NARGS(1, 1);
        if (args[0].kind != TV_STR)
            return ferr(rc, &e, "must be str, not %s", tmpl_tv_type_name(&args[0]));
        const struct tval *sub = &args[0];
        if (name[0] == 'f') {
            const char *hit = find_sub(s->u.s.p, s->u.s.n, sub->u.s.p, sub->u.s.n);
            *out = tv_int(hit ? (int64_t)tmpl_utf8_count(s->u.s.p, (size_t)(hit - s->u.s.p)) : -1);
            return 1;
        }
        if (sub->u.s.n == 0) {
            *out = tv_int((int64_t)tmpl_utf8_count(s->u.s.p, s->u.s.n) + 1);
            return 1;
        }
        int64_t count = 0;
        const char *p = s->u.s.p, *end = p + s->u.s.n;
        while ((p = memmem(p, (size_t)(end - p), sub->u.s.p, sub->u.s.n))) {
            count++;
            p += sub->u.s.n;
        }
        *out = tv_int(count);
        return 1;
    }
#undef NARGS
    return 0;
}
