/*
 * text.c - the small text tools every SVG writer of the layer needs: UTF-8
 * decoding that never fails (bad bytes become U+FFFD), XML escaping, a width
 * estimate for labels in the chart font, and number formatting for people.
 *
 * Label widths come from a coarse table of DejaVu Sans advance widths (the
 * font matplotlib and seaborn use) by character class. Exact metrics would
 * need a font engine; the estimate only decides where to cut a long label,
 * and the charts keep a margin for its error.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "media/media_internal.h"

uint32_t media_utf8_next(const char *s, size_t n, size_t *i)
{
    const unsigned char *p = (const unsigned char *)s + *i;
    size_t left = n - *i;
    unsigned char c = p[0];
    if (c < 0x80) {
        *i += 1;
        return c;
    }
    size_t len;
    uint32_t cp, min;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2, cp = c & 0x1Fu, min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3, cp = c & 0x0Fu, min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4, cp = c & 0x07u, min = 0x10000;
    } else {
        goto bad;
    }
    if (left < len) goto bad;
    for (size_t k = 1; k < len; k++) {
        if ((p[k] & 0xC0) != 0x80) goto bad;
        cp = (cp << 6) | (p[k] & 0x3Fu);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) goto bad;
    *i += len;
    return cp;
bad:
    *i += 1;
    return MEDIA_REPLACEMENT_CHAR;
}

/* XML 1.0 section 2.2: Char ::= #x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] | ... */
static bool xml_char_ok(uint32_t cp)
{
    if (cp < 0x20) return cp == 0x9 || cp == 0xA || cp == 0xD;
    return cp != 0xFFFE && cp != 0xFFFF;
}

static void escape_cp(struct strbuf *sb, uint32_t cp)
{
    switch (cp) {
    case '&':
        strbuf_puts(sb, "&amp;");
        return;
    case '<':
        strbuf_puts(sb, "&lt;");
        return;
    case '>':
        strbuf_puts(sb, "&gt;");
        return;
    case '"':
        strbuf_puts(sb, "&quot;");
        return;
    case '\'':
        strbuf_puts(sb, "&#39;");
        return;
    default:
        break;
    }
    strbuf_put_utf8(sb, xml_char_ok(cp) ? cp : MEDIA_REPLACEMENT_CHAR);
}

void media_xml_escape(struct strbuf *sb, const char *s, size_t n)
{
    size_t i = 0;
    while (i < n)
        escape_cp(sb, media_utf8_next(s, n, &i));
}

void media_xml_puts(struct strbuf *sb, const char *s)
{
    if (s) media_xml_escape(sb, s, strlen(s));
}

static bool is_combining(uint32_t cp)
{
    return (cp >= 0x0300 && cp <= 0x036F) || (cp >= 0x1AB0 && cp <= 0x1AFF) ||
           (cp >= 0x1DC0 && cp <= 0x1DFF) || (cp >= 0x20D0 && cp <= 0x20FF) ||
           (cp >= 0xFE20 && cp <= 0xFE2F) || cp == 0x200D || (cp >= 0xFE00 && cp <= 0xFE0F);
}

static bool is_wide(uint32_t cp)
{
    return (cp >= 0x1100 && cp <= 0x115F) || (cp >= 0x2E80 && cp <= 0xA4CF) ||
           (cp >= 0xAC00 && cp <= 0xD7A3) || (cp >= 0xF900 && cp <= 0xFAFF) ||
           (cp >= 0xFE30 && cp <= 0xFE4F) || (cp >= 0xFF00 && cp <= 0xFF60) ||
           (cp >= 0xFFE0 && cp <= 0xFFE6) || (cp >= 0x1F300 && cp <= 0x1FAFF) ||
           (cp >= 0x20000 && cp <= 0x3FFFD);
}

/* Advance width in em of one code point in DejaVu Sans, by class. */
static double cp_width(uint32_t cp)
{
    if (is_combining(cp)) return 0;
    if (is_wide(cp)) return 1.0;
    if (cp >= 0x80) return 0.65;
    if (strchr("il.,:;'|!`", (int)cp)) return 0.30;
    if (strchr("fjrt()[]{} -\"", (int)cp)) return 0.40;
    if (strchr("mwMW@%", (int)cp)) return 0.95;
    if (cp >= 'A' && cp <= 'Z') return 0.72;
    return 0.62; /* lower-case letters, digits, most punctuation */
}

double media_text_width(const char *s, double px)
{
    if (!s) return 0;
    size_t n = strlen(s), i = 0;
    double em = 0;
    while (i < n)
        em += cp_width(media_utf8_next(s, n, &i));
    return em * px;
}

bool media_xml_fit(struct strbuf *sb, const char *s, double px, double max_px)
{
    if (!s) return false;
    if (media_text_width(s, px) <= max_px) {
        media_xml_puts(sb, s);
        return false;
    }
    /* Keep whole code points (with their combining marks) while they and
     * the ellipsis fit. */
    double budget = max_px - cp_width(0x2026) * px, used = 0;
    size_t n = strlen(s), i = 0;
    while (i < n) {
        size_t at = i;
        uint32_t cp = media_utf8_next(s, n, &i);
        used += cp_width(cp) * px;
        if (used > budget) {
            i = at;
            break;
        }
        escape_cp(sb, cp);
    }
    /* Marks that belong to the last kept letter stay with it. */
    while (i < n) {
        size_t at = i;
        uint32_t cp = media_utf8_next(s, n, &i);
        if (!is_combining(cp)) {
            i = at;
            break;
        }
        escape_cp(sb, cp);
    }
    strbuf_put_utf8(sb, 0x2026);
    return true;
}

void media_format_number(char *buf, size_t size, double v, int decimals)
{
    if (!isfinite(v)) {
        snprintf(buf, size, "%s", isnan(v) ? "NaN" : (v > 0 ? "∞" : "-∞"));
        return;
    }
    if (fabs(v) >= 1e15) {
        snprintf(buf, size, "%.4g", v);
        return;
    }
    if (decimals < 0) decimals = 0;
    if (decimals > 6) decimals = 6;
    char tmp[64];
    snprintf(tmp, sizeof(tmp), "%.*f", decimals, v);
    const char *p = tmp;
    bool neg = false;
    if (*p == '-') {
        neg = true;
        p++;
    }
    const char *dot = strchr(p, '.');
    size_t int_len = dot ? (size_t)(dot - p) : strlen(p);
    /* Trailing zeros of the fraction say nothing. */
    size_t frac_len = 0;
    if (dot) {
        frac_len = strlen(dot + 1);
        while (frac_len > 0 && dot[frac_len] == '0')
            frac_len--;
    }
    bool zero = true;
    for (const char *q = p; *q; q++)
        if (*q >= '1' && *q <= '9') zero = false;
    char out[96];
    size_t o = 0;
    if (neg && !zero) out[o++] = '-';
    for (size_t k = 0; k < int_len; k++) {
        if (k > 0 && (int_len - k) % 3 == 0) out[o++] = ',';
        out[o++] = p[k];
    }
    if (frac_len > 0) {
        out[o++] = '.';
        memcpy(out + o, dot + 1, frac_len);
        o += frac_len;
    }
    out[o] = 0;
    snprintf(buf, size, "%s", out);
}
