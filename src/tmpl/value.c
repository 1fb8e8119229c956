/*
 * value.c - the semantics of template values, which follow Python because
 * Jinja templates are evaluated as Python: str() and repr() (so {{ none }}
 * prints "None" and {{ [1, 'a'] }} prints "[1, 'a']"), the float repr
 * (shortest round-trip digits), truth, ==, ordering, len(), HTML escaping
 * with markupsafe's entities, and tojson as Jinja's htmlsafe_json_dumps.
 *
 * JSON values from the context are viewed in place (TV_JSON, or scalars
 * converted by value) and never copied or reference-counted. Pure functions,
 * safe from any thread.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tmpl/tmpl_int.h"

struct tval tmpl_tv_from_json(json_t *j)
{
    if (!j) return tv_undef(NULL);
    switch (json_typeof(j)) {
    case JSON_STRING:
        return tv_str(json_string_value(j), json_string_length(j), false);
    case JSON_INTEGER:
        return tv_int((int64_t)json_integer_value(j));
    case JSON_REAL:
        return tv_float(json_real_value(j));
    case JSON_TRUE:
        return tv_bool(true);
    case JSON_FALSE:
        return tv_bool(false);
    case JSON_NULL:
        return tv_none();
    default: {
        struct tval v = {.kind = TV_JSON};
        v.u.j = j;
        return v;
    }
    }
}

bool tmpl_tv_is_str(const struct tval *v)
{
    return v->kind == TV_STR;
}

bool tmpl_tv_is_mapping(const struct tval *v)
{
    return v->kind == TV_DICT || v->kind == TV_NAMESPACE ||
           (v->kind == TV_JSON && json_is_object(v->u.j));
}

bool tmpl_tv_is_sequence(const struct tval *v)
{
    return v->kind == TV_LIST || (v->kind == TV_JSON && json_is_array(v->u.j));
}

bool tmpl_tv_is_number(const struct tval *v)
{
    return v->kind == TV_INT || v->kind == TV_FLOAT || v->kind == TV_BOOL;
}

const char *tmpl_tv_type_name(const struct tval *v)
{
    switch (v->kind) {
    case TV_UNDEF:
        return "Undefined";
    case TV_NONE:
        return "NoneType";
    case TV_BOOL:
        return "bool";
    case TV_INT:
        return "int";
    case TV_FLOAT:
        return "float";
    case TV_STR:
        return v->safe ? "Markup" : "str";
    case TV_LIST:
        return v->tuple ? "tuple" : "list";
    case TV_DICT:
        return "dict";
    case TV_JSON:
        return json_is_array(v->u.j) ? "list" : "dict";
    case TV_MACRO:
        return "Macro";
    case TV_LOOP:
        return "LoopContext";
    case TV_MODULE:
        return "TemplateModule";
    case TV_NAMESPACE:
        return "Namespace";
    case TV_FUNC:
        return "builtin_function_or_method";
    case TV_BLOCKREF:
        return "BlockReference";
    default:
        return "object";
    }
}

bool tmpl_tv_truthy(const struct tval *v)
{
    switch (v->kind) {
    case TV_UNDEF:
    case TV_NONE:
    case TV_MISSING:
        return false;
    case TV_BOOL:
        return v->u.b;
    case TV_INT:
        return v->u.i != 0;
    case TV_FLOAT:
        return v->u.f != 0.0;
    case TV_STR:
        return v->u.s.n > 0;
    case TV_LIST:
        return v->u.list->n > 0;
    case TV_DICT:
        return v->u.dict->n > 0;
    case TV_JSON:
        return json_is_array(v->u.j) ? json_array_size(v->u.j) > 0 : json_object_size(v->u.j) > 0;
    default:
        return true;
    }
}

size_t tmpl_tv_len(const struct tval *v)
{
    switch (v->kind) {
    case TV_STR:
        return tmpl_utf8_count(v->u.s.p, v->u.s.n);
    case TV_LIST:
        return v->u.list->n;
    case TV_DICT:
    case TV_NAMESPACE:
        return v->u.dict->n;
    case TV_JSON:
        return json_is_array(v->u.j) ? json_array_size(v->u.j) : json_object_size(v->u.j);
    default:
        return 0;
    }
}

bool tmpl_tv_mapping_get(const struct tval *m, const char *k, size_t n, struct tval *out)
{
    if (m->kind == TV_JSON) {
        if (!json_is_object(m->u.j)) return false;
        json_t *j = json_object_getn(m->u.j, k, n);
        if (!j) return false;
        *out = tmpl_tv_from_json(j);
        return true;
    }
    if (m->kind == TV_DICT || m->kind == TV_NAMESPACE) {
        const struct tdict *d = m->u.dict;
        for (size_t i = 0; i < d->n; i++) {
            const struct tval *key = &d->keys[i];
            if (key->kind == TV_STR && key->u.s.n == n && !memcmp(key->u.s.p, k, n)) {
                *out = d->vals[i];
                return true;
            }
        }
    }
    return false;
}

/* ---- numbers ---- */

size_t tmpl_fmt_int(int64_t i, char buf[24])
{
    char tmp[24];
    size_t n = 0;
    uint64_t u = i < 0 ? (uint64_t)0 - (uint64_t)i : (uint64_t)i;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    size_t k = 0;
    if (i < 0) buf[k++] = '-';
    while (n)
        buf[k++] = tmp[--n];
    buf[k] = 0;
    return k;
}

/*
 * Python's float repr: the shortest decimal that reads back as the same
 * double (the correctly rounded %.{p}e for the smallest p that round-trips
 * is that string), written in fixed notation when the decimal exponent is in
 * [-4, 16), else as d.ddde+XX, and with ".0" when it looks like an integer.
 */
void tmpl_fmt_float(double f, char buf[32])
{
    if (isnan(f)) {
        strcpy(buf, "nan");
        return;
    }
    if (isinf(f)) {
        strcpy(buf, f < 0 ? "-inf" : "inf");
        return;
    }
    if (f == 0) {
        strcpy(buf, signbit(f) ? "-0.0" : "0.0");
        return;
    }
    char tmp[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof(tmp), "%.*e", prec - 1, f);
        if (strtod(tmp, NULL) == f) break;
    }
    char digits[24];
    size_t nd = 0;
    const char *p = tmp;
    bool neg = false;
    if (*p == '-') {
        neg = true;
        p++;
    }
    while (*p && *p != 'e') {
        if (*p != '.') digits[nd++] = *p;
        p++;
    }
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    int exp10 = *p == 'e' ? atoi(p + 1) : 0;
    int decpt = exp10 + 1;
    size_t k = 0;
    if (neg) buf[k++] = '-';
    if (decpt <= -4 || decpt > 16) {
        buf[k++] = digits[0];
        if (nd > 1) {
            buf[k++] = '.';
            for (size_t i = 1; i < nd; i++)
                buf[k++] = digits[i];
        }
        k += (size_t)snprintf(buf + k, 32 - k, "e%c%02d", exp10 < 0 ? '-' : '+', abs(exp10));
        return;
    }
    if (decpt <= 0) {
        buf[k++] = '0';
        buf[k++] = '.';
        for (int i = 0; i < -decpt; i++)
            buf[k++] = '0';
        for (size_t i = 0; i < nd; i++)
            buf[k++] = digits[i];
    } else if ((size_t)decpt >= nd) {
        for (size_t i = 0; i < nd; i++)
            buf[k++] = digits[i];
        for (size_t i = nd; i < (size_t)decpt; i++)
            buf[k++] = '0';
        buf[k++] = '.';
        buf[k++] = '0';
    } else {
        for (size_t i = 0; i < nd; i++) {
            if (i == (size_t)decpt) buf[k++] = '.';
            buf[k++] = digits[i];
        }
    }
    buf[k] = 0;
}

/* ---- escaping ---- */

static const char *const html_entity[256] = {
    ['&'] = "&amp;", ['<'] = "&lt;", ['>'] = "&gt;", ['"'] = "&#34;", ['\''] = "&#39;",
};
static const unsigned char html_entity_len[256] = {
    ['&'] = 5, ['<'] = 4, ['>'] = 4, ['"'] = 5, ['\''] = 5,
};

/*
 * The hot path of every page: one pass counts the room the entities need,
 * the second writes straight into the reserved buffer (no call per piece).
 */
/* Offset of the first byte of s that needs an entity, or n. Eight bytes at a
 * time: a lane of x ^ c is zero where x has byte c. */
static size_t first_special(const unsigned char *s, size_t n)
{
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t x, hit = 0;
        memcpy(&x, s + i, 8);
        static const unsigned char specials[] = {'&', '<', '>', '"', '\''};
        for (size_t k = 0; k < sizeof(specials); k++) {
            uint64_t t = x ^ (ones * specials[k]);
            hit |= (t - ones) & ~t & highs;
        }
        if (hit) break;
    }
    for (; i < n; i++)
        if (html_entity_len[s[i]]) return i;
    return n;
}

void tmpl_html_escape_append(struct strbuf *sb, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t start = first_special(p, n);
    if (start == n) {
        strbuf_append(sb, s, n);
        return;
    }
    size_t extra = 0;
    for (size_t i = start; i < n; i++)
        extra += html_entity_len[p[i]];
    strbuf_reserve(sb, n + extra);
    char *d = sb->data + sb->len;
    memcpy(d, s, start);
    d += start;
    for (size_t i = start; i < n; i++) {
        unsigned char len = html_entity_len[p[i]];
        if (len) {
            memcpy(d, html_entity[p[i]], len);
            d += len;
        } else {
            *d++ = (char)p[i];
        }
    }
    sb->len = (size_t)(d - sb->data);
    sb->data[sb->len] = 0;
}

int tmpl_html_escape_abuf(struct abuf *b, const char *s, size_t n)
{
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        const char *ent = html_entity[(unsigned char)s[i]];
        if (!ent) continue;
        if ((i > run && tmpl_abuf_put(b, s + run, i - run)) || tmpl_abuf_put(b, ent, strlen(ent)))
            return -1;
        run = i + 1;
    }
    return n > run ? tmpl_abuf_put(b, s + run, n - run) : 0;
}

/* ---- str() and repr() ---- */

static int repr_str(struct abuf *b, const char *s, size_t n)
{
    bool has_single = memchr(s, '\'', n) != NULL, has_double = memchr(s, '"', n) != NULL;
    char quote = has_single && !has_double ? '"' : '\'';
    if (tmpl_abuf_putc(b, quote)) return -1;
    for (size_t i = 0; i < n;) {
        uint32_t cp = tmpl_utf8_next(s, n, &i);
        char esc[16];
        const char *e = NULL;
        if (cp == (uint32_t)quote || cp == '\\') {
            esc[0] = '\\';
            esc[1] = (char)cp;
            esc[2] = 0;
            e = esc;
        } else if (cp == '\n') {
            e = "\\n";
        } else if (cp == '\r') {
            e = "\\r";
        } else if (cp == '\t') {
            e = "\\t";
        } else if (cp < 0x20 || cp == 0x7F) {
            snprintf(esc, sizeof(esc), "\\x%02x", cp);
            e = esc;
        } else if (cp >= 0x80 && !tmpl_uni_isprintable(cp)) {
            if (cp < 0x100)
                snprintf(esc, sizeof(esc), "\\x%02x", cp);
            else if (cp < 0x10000)
                snprintf(esc, sizeof(esc), "\\u%04x", cp);
            else
                snprintf(esc, sizeof(esc), "\\U%08x", cp);
            e = esc;
        }
        if (e ? tmpl_abuf_put(b, e, strlen(e)) : tmpl_abuf_putcp(b, cp)) return -1;
    }
    return tmpl_abuf_putc(b, quote);
}

static int repr_or_str(struct abuf *b, const struct tval *v, bool repr, int depth);

static int repr_seq_json(struct abuf *b, json_t *arr, int depth)
{
    if (tmpl_abuf_putc(b, '[')) return -1;
    for (size_t i = 0; i < json_array_size(arr); i++) {
        struct tval item = tmpl_tv_from_json(json_array_get(arr, i));
        if ((i && tmpl_abuf_put(b, ", ", 2)) || repr_or_str(b, &item, true, depth + 1)) return -1;
    }
    return tmpl_abuf_putc(b, ']');
}

static int repr_dict_json(struct abuf *b, json_t *obj, int depth)
{
    if (tmpl_abuf_putc(b, '{')) return -1;
    const char *key;
    json_t *val;
    bool first = true;
    json_object_foreach(obj, key, val)
    {
        struct tval v = tmpl_tv_from_json(val);
        if ((!first && tmpl_abuf_put(b, ", ", 2)) || repr_str(b, key, strlen(key)) ||
            tmpl_abuf_put(b, ": ", 2) || repr_or_str(b, &v, true, depth + 1))
            return -1;
        first = false;
    }
    return tmpl_abuf_putc(b, '}');
}

static int repr_dict(struct abuf *b, const struct tdict *d, int depth)
{
    if (tmpl_abuf_putc(b, '{')) return -1;
    for (size_t i = 0; i < d->n; i++) {
        if ((i && tmpl_abuf_put(b, ", ", 2)) || repr_or_str(b, &d->keys[i], true, depth + 1) ||
            tmpl_abuf_put(b, ": ", 2) || repr_or_str(b, &d->vals[i], true, depth + 1))
            return -1;
    }
    return tmpl_abuf_putc(b, '}');
}

static int repr_or_str(struct abuf *b, const struct tval *v, bool repr, int depth)
{
    char num[32];
    /* Namespaces are mutable, so values can contain themselves; Python
     * prints such a cycle as "...", and so do we past a fixed depth. */
    if (depth > TMPL_MAX_NEST) return tmpl_abuf_put(b, "...", 3);
    switch (v->kind) {
    case TV_UNDEF:
    case TV_MISSING:
        return repr ? tmpl_abuf_put(b, "Undefined", 9) : 0;
    case TV_NONE:
        return tmpl_abuf_put(b, "None", 4);
    case TV_BOOL:
        return v->u.b ? tmpl_abuf_put(b, "True", 4) : tmpl_abuf_put(b, "False", 5);
    case TV_INT:
        return tmpl_abuf_put(b, num, tmpl_fmt_int(v->u.i, num));
    case TV_FLOAT:
        tmpl_fmt_float(v->u.f, num);
        return tmpl_abuf_put(b, num, strlen(num));
    case TV_STR:
        if (!repr) return tmpl_abuf_put(b, v->u.s.p, v->u.s.n);
        if (v->safe)
            return tmpl_abuf_put(b, "Markup(", 7) || repr_str(b, v->u.s.p, v->u.s.n) ||
                   tmpl_abuf_putc(b, ')');
        return repr_str(b, v->u.s.p, v->u.s.n);
    case TV_LIST: {
        const struct tlist *l = v->u.list;
        if (tmpl_abuf_putc(b, v->tuple ? '(' : '[')) return -1;
        for (size_t i = 0; i < l->n; i++)
            if ((i && tmpl_abuf_put(b, ", ", 2)) || repr_or_str(b, &l->items[i], true, depth + 1))
                return -1;
        if (v->tuple && l->n == 1 && tmpl_abuf_putc(b, ',')) return -1;
        return tmpl_abuf_putc(b, v->tuple ? ')' : ']');
    }
    case TV_DICT:
        return repr_dict(b, v->u.dict, depth);
    case TV_NAMESPACE:
        return tmpl_abuf_put(b, "<Namespace ", 11) || repr_dict(b, v->u.dict, depth) ||
               tmpl_abuf_putc(b, '>');
    case TV_JSON:
        return json_is_array(v->u.j) ? repr_seq_json(b, v->u.j, depth)
                                     : repr_dict_json(b, v->u.j, depth);
    case TV_MACRO: {
        const char *name = tmpl_macro_name(v->u.macro);
        return tmpl_abuf_put(b, "<Macro ", 7) || repr_str(b, name, strlen(name)) ||
               tmpl_abuf_putc(b, '>');
    }
    case TV_LOOP:
        return tmpl_abuf_put(b, "<LoopContext>", 13);
    case TV_MODULE:
        return tmpl_abuf_put(b, "<TemplateModule>", 16);
    case TV_FUNC:
        if (v->u.fn == FN_SELF) return tmpl_abuf_put(b, "<TemplateReference>", 19);
        return tmpl_abuf_put(b, "<built-in function>", 19);
    case TV_BLOCKREF:
        return tmpl_abuf_put(b, "<BlockReference ", 16) || repr_str(b, v->u.s.p, v->u.s.n) ||
               tmpl_abuf_putc(b, '>');
    default:
        return 0;
    }
}

int tmpl_tv_str_append(struct abuf *b, const struct tval *v)
{
    return repr_or_str(b, v, false, 0);
}

int tmpl_tv_repr_append(struct abuf *b, const struct tval *v)
{
    return repr_or_str(b, v, true, 0);
}

int tmpl_tv_to_str(struct rctx *rc, const struct tval *v, struct tval *out)
{
    if (v->kind == TV_STR) {
        *out = *v;
        return 0;
    }
    if (v->kind == TV_UNDEF || v->kind == TV_MISSING) {
        *out = tv_str("", 0, false);
        return 0;
    }
    struct abuf b;
    tmpl_abuf_init(&b, rc);
    if (tmpl_tv_str_append(&b, v)) return -1;
    *out = tmpl_abuf_finish(&b, false);
    return 0;
}

int tmpl_tv_escape(struct rctx *rc, const struct tval *v, struct tval *out)
{
    if (v->kind == TV_STR && v->safe) {
        *out = *v;
        return 0;
    }
    struct tval s;
    if (tmpl_tv_to_str(rc, v, &s)) return -1;
    struct abuf b;
    tmpl_abuf_init(&b, rc);
    if (tmpl_html_escape_abuf(&b, s.u.s.p, s.u.s.n)) return -1;
    *out = tmpl_abuf_finish(&b, true);
    return 0;
}

int tmpl_tv_output(struct rctx *rc, const struct tval *v)
{
    struct strbuf *out = rc->out;
    char num[32];
    switch (v->kind) {
    case TV_UNDEF:
        return 0;
    case TV_STR:
        if (v->safe || !rc->autoescape)
            strbuf_append(out, v->u.s.p, v->u.s.n);
        else
            tmpl_html_escape_append(out, v->u.s.p, v->u.s.n);
        return 0;
    case TV_INT:
        strbuf_append(out, num, tmpl_fmt_int(v->u.i, num));
        return 0;
    case TV_NONE:
        strbuf_append(out, "None", 4);
        return 0;
    case TV_BOOL:
        strbuf_puts(out, v->u.b ? "True" : "False");
        return 0;
    case TV_FLOAT:
        tmpl_fmt_float(v->u.f, num);
        strbuf_puts(out, num);
        return 0;
    default: {
        struct tval s;
        if (tmpl_tv_to_str(rc, v, &s)) return -1;
        if (rc->autoescape)
            tmpl_html_escape_append(out, s.u.s.p, s.u.s.n);
        else
            strbuf_append(out, s.u.s.p, s.u.s.n);
        return 0;
    }
    }
}

/* ---- comparisons ---- */

static double num_of(const struct tval *v)
{
    return v->kind == TV_FLOAT ? v->u.f : v->kind == TV_BOOL ? (double)v->u.b : (double)v->u.i;
}

static int64_t int_of(const struct tval *v)
{
    return v->kind == TV_BOOL ? (int64_t)v->u.b : v->u.i;
}

static int num_cmp(const struct tval *a, const struct tval *b)
{
    if (a->kind != TV_FLOAT && b->kind != TV_FLOAT) {
        int64_t x = int_of(a), y = int_of(b);
        return x < y ? -1 : x > y;
    }
    double x = num_of(a), y = num_of(b);
    return x < y ? -1 : x > y ? 1 : 0;
}

/* Random access to list-like values (render lists and JSON arrays). */
static size_t seq_len(const struct tval *v)
{
    return v->kind == TV_LIST ? v->u.list->n : json_array_size(v->u.j);
}

static struct tval seq_get(const struct tval *v, size_t i)
{
    return v->kind == TV_LIST ? v->u.list->items[i] : tmpl_tv_from_json(json_array_get(v->u.j, i));
}

static bool str_eq(const struct tval *a, const char *s, size_t n)
{
    return a->kind == TV_STR && a->u.s.n == n && !memcmp(a->u.s.p, s, n);
}

static bool equal_d(const struct tval *a, const struct tval *b, int depth);

static bool mapping_equal(const struct tval *a, const struct tval *b, int depth)
{
    if (tmpl_tv_len(a) != tmpl_tv_len(b)) return false;
    if (a->kind == TV_JSON) {
        const char *key;
        json_t *val;
        json_object_foreach(a->u.j, key, val)
        {
            struct tval bv, av = tmpl_tv_from_json(val);
            if (!tmpl_tv_mapping_get(b, key, strlen(key), &bv) || !equal_d(&av, &bv, depth + 1))
                return false;
        }
        return true;
    }
    const struct tdict *d = a->u.dict;
    for (size_t i = 0; i < d->n; i++) {
        struct tval bv;
        const struct tval *k = &d->keys[i];
        if (k->kind != TV_STR) {
            /* Non-string keys only exist in render dicts. */
            if (b->kind == TV_JSON) return false;
            bool found = false;
            for (size_t j = 0; j < b->u.dict->n && !found; j++)
                if (equal_d(k, &b->u.dict->keys[j], depth + 1))
                    found = equal_d(&d->vals[i], &b->u.dict->vals[j], depth + 1);
            if (!found) return false;
            continue;
        }
        if (!tmpl_tv_mapping_get(b, k->u.s.p, k->u.s.n, &bv) ||
            !equal_d(&d->vals[i], &bv, depth + 1))
            return false;
    }
    return true;
}

bool tmpl_tv_equal(const struct tval *a, const struct tval *b)
{
    return equal_d(a, b, 0);
}

static bool equal_d(const struct tval *a, const struct tval *b, int depth)
{
    if (depth > TMPL_MAX_NEST) return false; /* a cycle through a namespace */
    if (tmpl_tv_is_number(a) && tmpl_tv_is_number(b))
        return num_cmp(a, b) == 0 && !(a->kind == TV_FLOAT && isnan(a->u.f)) &&
               !(b->kind == TV_FLOAT && isnan(b->u.f));
    if (a->kind == TV_STR) return str_eq(b, a->u.s.p, a->u.s.n);
    if (a->kind == TV_NONE || a->kind == TV_UNDEF) return b->kind == a->kind;
    if (tmpl_tv_is_sequence(a) && tmpl_tv_is_sequence(b)) {
        bool at = a->kind == TV_LIST && a->tuple, bt = b->kind == TV_LIST && b->tuple;
        if (at != bt) return false;
        size_t n = seq_len(a);
        if (n != seq_len(b)) return false;
        for (size_t i = 0; i < n; i++) {
            struct tval x = seq_get(a, i), y = seq_get(b, i);
            if (!equal_d(&x, &y, depth + 1)) return false;
        }
        return true;
    }
    if ((a->kind == TV_DICT || (a->kind == TV_JSON && json_is_object(a->u.j))) &&
        (b->kind == TV_DICT || (b->kind == TV_JSON && json_is_object(b->u.j))))
        return mapping_equal(a, b, depth);
    switch (a->kind) {
    case TV_MACRO:
        return b->kind == TV_MACRO && a->u.macro == b->u.macro;
    case TV_NAMESPACE:
        return b->kind == TV_NAMESPACE && a->u.dict == b->u.dict;
    case TV_LOOP:
        return b->kind == TV_LOOP && a->u.loop == b->u.loop;
    case TV_MODULE:
        return b->kind == TV_MODULE && a->u.mod == b->u.mod;
    case TV_FUNC:
        return b->kind == TV_FUNC && a->u.fn == b->u.fn;
    default:
        return false;
    }
}

static int compare_d(const struct tval *a, const struct tval *b, int *cmp, int depth);

int tmpl_tv_compare(const struct tval *a, const struct tval *b, int *cmp)
{
    return compare_d(a, b, cmp, 0);
}

static int compare_d(const struct tval *a, const struct tval *b, int *cmp, int depth)
{
    if (depth > TMPL_MAX_NEST) return -1;
    if (tmpl_tv_is_number(a) && tmpl_tv_is_number(b)) {
        *cmp = num_cmp(a, b);
        return 0;
    }
    if (a->kind == TV_STR && b->kind == TV_STR) {
        /* UTF-8 byte order is code point order, which is Python's. */
        size_t n = a->u.s.n < b->u.s.n ? a->u.s.n : b->u.s.n;
        int c = memcmp(a->u.s.p, b->u.s.p, n);
        *cmp = c ? (c < 0 ? -1 : 1) : (a->u.s.n < b->u.s.n ? -1 : a->u.s.n > b->u.s.n);
        return 0;
    }
    if (tmpl_tv_is_sequence(a) && tmpl_tv_is_sequence(b)) {
        bool at = a->kind == TV_LIST && a->tuple, bt = b->kind == TV_LIST && b->tuple;
        if (at != bt) return -1;
        size_t na = seq_len(a), nb = seq_len(b);
        for (size_t i = 0; i < na && i < nb; i++) {
            struct tval x = seq_get(a, i), y = seq_get(b, i);
            if (equal_d(&x, &y, depth + 1)) continue;
            return compare_d(&x, &y, cmp, depth + 1);
        }
        *cmp = na < nb ? -1 : na > nb;
        return 0;
    }
    return -1;
}

/* ---- JSON ---- */

static int json_str(struct abuf *b, const char *s, size_t n)
{
    if (tmpl_abuf_putc(b, '"')) return -1;
    for (size_t i = 0; i < n;) {
        size_t start = i;
        uint32_t cp = tmpl_utf8_next(s, n, &i);
        char esc[16];
        const char *e = NULL;
        switch (cp) {
        case '"':
            e = "\\\"";
            break;
        case '\\':
            e = "\\\\";
            break;
        case '\n':
            e = "\\n";
            break;
        case '\r':
            e = "\\r";
            break;
        case '\t':
            e = "\\t";
            break;
        case '\b':
            e = "\\b";
            break;
        case '\f':
            e = "\\f";
            break;
        /* The HTML-safe part: these never appear literally, so the output
         * can sit in a <script> element or a single-quoted attribute. */
        case '<':
            e = "\\u003c";
            break;
        case '>':
            e = "\\u003e";
            break;
        case '&':
            e = "\\u0026";
            break;
        case '\'':
            e = "\\u0027";
            break;
        default:
            if (cp < 0x20 || cp >= 0x7F) {
                if (cp >= 0x10000) {
                    uint32_t v = cp - 0x10000;
                    snprintf(esc, sizeof(esc), "\\u%04x\\u%04x", 0xD800 + (v >> 10),
                             0xDC00 + (v & 0x3FF));
                } else {
                    snprintf(esc, sizeof(esc), "\\u%04x", cp);
                }
                e = esc;
            }
        }
        if (e ? tmpl_abuf_put(b, e, strlen(e)) : tmpl_abuf_put(b, s + start, i - start)) return -1;
    }
    return tmpl_abuf_putc(b, '"');
}

struct json_member {
    const char *k;
    size_t n;
    struct tval v;
};

static int member_cmp(const void *x, const void *y)
{
    const struct json_member *a = x, *b = y;
    size_t n = a->n < b->n ? a->n : b->n;
    int c = memcmp(a->k, b->k, n);
    return c ? c : (a->n < b->n ? -1 : a->n > b->n);
}

static int json_newline(struct abuf *b, int indent, int level)
{
    if (indent < 0) return 0;
    if (tmpl_abuf_putc(b, '\n')) return -1;
    for (int i = 0; i < indent * level; i++)
        if (tmpl_abuf_putc(b, ' ')) return -1;
    return 0;
}

static int json_value(struct rctx *rc, int line, int col, const struct tval *v, int indent,
                      int level, struct abuf *b)
{
    char num[32];
    if (level > TMPL_MAX_NEST)
        return tmpl_rc_error(rc, line, col, "tojson: value nested too deeply");
    const char *sep = indent < 0 ? ", " : ",";
    switch (v->kind) {
    case TV_NONE:
        return tmpl_abuf_put(b, "null", 4);
    case TV_BOOL:
        return v->u.b ? tmpl_abuf_put(b, "true", 4) : tmpl_abuf_put(b, "false", 5);
    case TV_INT:
        return tmpl_abuf_put(b, num, tmpl_fmt_int(v->u.i, num));
    case TV_FLOAT:
        if (isnan(v->u.f)) return tmpl_abuf_put(b, "NaN", 3);
        if (isinf(v->u.f))
            return v->u.f < 0 ? tmpl_abuf_put(b, "-Infinity", 9) : tmpl_abuf_put(b, "Infinity", 8);
        tmpl_fmt_float(v->u.f, num);
        return tmpl_abuf_put(b, num, strlen(num));
    case TV_STR:
        return json_str(b, v->u.s.p, v->u.s.n);
    case TV_LIST:
    case TV_JSON:
        if (tmpl_tv_is_sequence(v)) {
            size_t n = seq_len(v);
            if (n == 0) return tmpl_abuf_put(b, "[]", 2);
            if (tmpl_abuf_putc(b, '[')) return -1;
            for (size_t i = 0; i < n; i++) {
                struct tval item = seq_get(v, i);
                if ((i && tmpl_abuf_put(b, sep, strlen(sep))) ||
                    json_newline(b, indent, level + 1) ||
                    json_value(rc, line, col, &item, indent, level + 1, b))
                    return -1;
            }
            return json_newline(b, indent, level) || tmpl_abuf_putc(b, ']');
        }
        /* fall through - a JSON object */
    case TV_DICT:
    case TV_NAMESPACE: {
        size_t n = tmpl_tv_len(v);
        if (n == 0) return tmpl_abuf_put(b, "{}", 2);
        struct json_member *m = tmpl_rc_alloc(rc, n * sizeof(*m));
        if (!m) return -1;
        size_t k = 0;
        if (v->kind == TV_JSON) {
            const char *key;
            json_t *val;
            json_object_foreach(v->u.j, key, val)
            {
                m[k].k = key;
                m[k].n = strlen(key);
                m[k].v = tmpl_tv_from_json(val);
                k++;
            }
        } else {
            for (; k < n; k++) {
                struct tval ks;
                const struct tval *key = &v->u.dict->keys[k];
                if (key->kind == TV_NONE)
                    ks = tv_str("null", 4, false);
                else if (key->kind == TV_BOOL)
                    ks = key->u.b ? tv_str("true", 4, false) : tv_str("false", 5, false);
                else if (key->kind == TV_STR || key->kind == TV_INT || key->kind == TV_FLOAT) {
                    if (tmpl_tv_to_str(rc, key, &ks)) return -1;
                } else
                    return tmpl_rc_error(rc, line, col,
                                         "tojson: keys must be str, int, float, "
                                         "bool or None, not %s",
                                         tmpl_tv_type_name(key));
                m[k].k = ks.u.s.p;
                m[k].n = ks.u.s.n;
                m[k].v = v->u.dict->vals[k];
            }
        }
        qsort(m, k, sizeof(*m), member_cmp);
        if (tmpl_abuf_putc(b, '{')) return -1;
        for (size_t i = 0; i < k; i++) {
            if ((i && tmpl_abuf_put(b, sep, strlen(sep))) || json_newline(b, indent, level + 1) ||
                json_str(b, m[i].k, m[i].n) || tmpl_abuf_put(b, ": ", 2) ||
                json_value(rc, line, col, &m[i].v, indent, level + 1, b))
                return -1;
        }
        return json_newline(b, indent, level) || tmpl_abuf_putc(b, '}');
    }
    default:
        return tmpl_rc_error(rc, line, col, "Object of type %s is not JSON serializable",
                             tmpl_tv_type_name(v));
    }
}

int tmpl_tv_tojson(struct rctx *rc, int line, int col, const struct tval *v, int indent,
                   struct abuf *b)
{
    return json_value(rc, line, col, v, indent, 0, b);
}

static json_t *to_json_d(struct rctx *rc, const struct tval *v, int depth)
{
    if (depth > TMPL_MAX_NEST) return json_null();
    switch (v->kind) {
    case TV_BOOL:
        return json_boolean(v->u.b);
    case TV_INT:
        return json_integer((json_int_t)v->u.i);
    case TV_FLOAT:
        return isfinite(v->u.f) ? json_real(v->u.f) : json_null();
    case TV_STR: {
        json_t *s = json_stringn(v->u.s.p, v->u.s.n);
        return s ? s : json_null();
    }
    case TV_JSON:
        return json_incref(v->u.j);
    case TV_LIST: {
        json_t *a = json_array();
        for (size_t i = 0; i < v->u.list->n; i++)
            json_array_append_new(a, to_json_d(rc, &v->u.list->items[i], depth + 1));
        return a;
    }
    case TV_DICT:
    case TV_NAMESPACE: {
        json_t *o = json_object();
        for (size_t i = 0; i < v->u.dict->n; i++) {
            struct tval ks;
            if (tmpl_tv_to_str(rc, &v->u.dict->keys[i], &ks)) {
                json_decref(o);
                return NULL;
            }
            json_object_setn_new(o, ks.u.s.p, ks.u.s.n,
                                 to_json_d(rc, &v->u.dict->vals[i], depth + 1));
        }
        return o;
    }
    default:
        return json_null();
    }
}

json_t *tmpl_tv_to_json(struct rctx *rc, const struct tval *v)
{
    return to_json_d(rc, v, 0);
}
