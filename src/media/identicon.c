/*
 * identicon.c - the default profile picture: a user's initials in white on
 * a colour of their own (issue 7, "users without a picture get a generated
 * default").
 *
 * The colour is a function of the username alone (FNV-1a hash -> hue), so it
 * is the same on every page and every server, and stable across releases
 * (tests pin a few values). Saturation is fixed; the lightness starts at a
 * pleasant mid value and is lowered per hue until white text has a WCAG 2.x
 * contrast ratio of at least 4.6:1 (AA asks 4.5:1; the margin covers the
 * rounding to 8-bit channels). Yellows and greens, which are bright at the
 * same HSL lightness, thus come out darker than blues.
 *
 * Initials are taken per code point without a Unicode database (the layer
 * links only libvips and core): the lower-case letters of the scripts whose
 * case pairs sit at a fixed distance (ASCII, Latin-1, Latin Extended-A,
 * basic Greek and Cyrillic) are upper-cased; any other character is shown
 * as written, with its combining marks.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "media/media.h"
#include "media/media_internal.h"

#define ID_SATURATION 0.55
#define ID_LIGHTNESS_START 0.50
#define ID_MIN_CONTRAST 4.6

static bool is_separator(uint32_t cp)
{
    return cp == '.' || cp == '-' || cp == '_' || cp == ' ' || cp == '\t' || cp == 0x3000;
}

/* Usable as an initial: a character XML allows that is not a separator,
 * not a control, not a mark on its own and not the result of bad bytes. */
static bool is_initial(uint32_t cp)
{
    if (cp < 0x20 || (cp >= 0x7F && cp < 0xA0) || cp == MEDIA_REPLACEMENT_CHAR || cp == 0xFFFE ||
        cp == 0xFFFF || is_separator(cp))
        return false;
    return !((cp >= 0x0300 && cp <= 0x036F) || (cp >= 0x1AB0 && cp <= 0x1AFF) ||
             (cp >= 0x1DC0 && cp <= 0x1DFF) || (cp >= 0x20D0 && cp <= 0x20FF) ||
             (cp >= 0xFE20 && cp <= 0xFE2F));
}

static bool is_mark(uint32_t cp)
{
    return (cp >= 0x0300 && cp <= 0x036F) || (cp >= 0x1AB0 && cp <= 0x1AFF) ||
           (cp >= 0x1DC0 && cp <= 0x1DFF) || (cp >= 0x20D0 && cp <= 0x20FF) ||
           (cp >= 0xFE20 && cp <= 0xFE2F);
}

/* The capital of cp where a fixed offset gives it (see the file comment). */
static uint32_t upper(uint32_t cp)
{
    if (cp >= 'a' && cp <= 'z') return cp - 32;
    if (cp >= 0xE0 && cp <= 0xFE && cp != 0xF7) /* à..þ, not ÷ */
        return cp - 32;
    if (cp >= 0x100 && cp <= 0x137 && (cp & 1)) /* Ā ā .. Ķ ķ */
        return cp - 1;
    if (cp >= 0x139 && cp <= 0x148 && !(cp & 1)) /* Ĺ ĺ .. Ň ň */
        return cp - 1;
    if (cp >= 0x14A && cp <= 0x177 && (cp & 1)) /* Ŋ ŋ .. Ŷ ŷ */
        return cp - 1;
    if (cp == 0x3C2) /* final sigma */
        return 0x3A3;
    if (cp >= 0x3B1 && cp <= 0x3C9) /* α..ω */
        return cp - 32;
    if (cp >= 0x430 && cp <= 0x44F) /* а..я */
        return cp - 32;
    if (cp >= 0x450 && cp <= 0x45F) /* ѐ..џ */
        return cp - 80;
    return cp;
}

/* Appends one initial (a letter and its marks, at most 15 bytes) found at or
 * after s[*i] within the current part of the name; advances *i past it.
 * Returns false when the part has no usable character. */
static bool take_initial(const char *s, size_t n, size_t *i, struct strbuf *sb)
{
    while (*i < n) {
        size_t at = *i;
        uint32_t cp = media_utf8_next(s, n, i);
        if (is_separator(cp)) {
            *i = at;
            return false;
        }
        if (!is_initial(cp)) continue;
        size_t start = sb->len;
        strbuf_put_utf8(sb, upper(cp));
        while (*i < n) {
            size_t mark_at = *i;
            uint32_t m = media_utf8_next(s, n, i);
            if (!is_mark(m) || sb->len - start + 4 > 15) {
                *i = mark_at;
                break;
            }
            strbuf_put_utf8(sb, m);
        }
        return true;
    }
    return false;
}

void media_identicon_initials(const char *username, char out[32])
{
    struct strbuf sb;
    strbuf_init(&sb);
    size_t n = username ? strlen(username) : 0, i = 0;
    int found = 0;
    while (i < n && found < 2) {
        /* Skip separators to the start of the next part. */
        size_t at = i;
        if (is_separator(media_utf8_next(username, n, &i))) continue;
        i = at;
        if (take_initial(username, n, &i, &sb)) found++;
        /* Skip the rest of this part. */
        while (i < n) {
            at = i;
            if (is_separator(media_utf8_next(username, n, &i))) {
                i = at;
                break;
            }
        }
    }
    snprintf(out, 32, "%s", found ? strbuf_cstr(&sb) : "?");
    strbuf_deinit(&sb);
}

static double hue_to_rgb(double p, double q, double t)
{
    if (t < 0) t += 1;
    if (t > 1) t -= 1;
    if (t < 1.0 / 6) return p + (q - p) * 6 * t;
    if (t < 0.5) return q;
    if (t < 2.0 / 3) return p + (q - p) * (2.0 / 3 - t) * 6;
    return p;
}

/* HSL (h in [0, 1)) to 8-bit sRGB. */
static void hsl_to_rgb(double h, double s, double l, int rgb[3])
{
    double q = l < 0.5 ? l * (1 + s) : l + s - l * s;
    double p = 2 * l - q;
    double c[3] = {hue_to_rgb(p, q, h + 1.0 / 3), hue_to_rgb(p, q, h),
                   hue_to_rgb(p, q, h - 1.0 / 3)};
    for (int k = 0; k < 3; k++)
        rgb[k] = (int)lround(c[k] * 255.0);
}

/* WCAG 2.x relative luminance of an 8-bit sRGB colour. */
static double luminance(const int rgb[3])
{
    double lin[3];
    for (int k = 0; k < 3; k++) {
        double c = rgb[k] / 255.0;
        lin[k] = c <= 0.04045 ? c / 12.92 : pow((c + 0.055) / 1.055, 2.4);
    }
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2];
}

void media_identicon_colour(const char *username, char out[8])
{
    /* FNV-1a, 32 bits: tiny, well mixed for short names, and fixed forever. */
    uint32_t hash = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)(username ? username : ""); *p; p++) {
        hash ^= *p;
        hash *= 16777619u;
    }
    double hue = (double)(hash % 360u) / 360.0;
    int rgb[3];
    for (int step = 0;; step++) {
        double l = ID_LIGHTNESS_START - 0.01 * step;
        hsl_to_rgb(hue, ID_SATURATION, l, rgb);
        /* White's luminance is 1: ratio (1 + 0.05) / (L + 0.05). */
        if (1.05 / (luminance(rgb) + 0.05) >= ID_MIN_CONTRAST || l <= 0.1) break;
    }
    snprintf(out, 8, "#%02x%02x%02x", rgb[0], rgb[1], rgb[2]);
}

int media_identicon_svg(const char *username, int size, struct strbuf *out, struct echo_err *err)
{
    if (size < MEDIA_IDENTICON_MIN || size > MEDIA_IDENTICON_MAX) {
        echo_err_set(err, "identicon size %d is outside %d..%d", size, MEDIA_IDENTICON_MIN,
                     MEDIA_IDENTICON_MAX);
        return MEDIA_ERR_INVALID;
    }
    const char *name = username ? username : "";
    char initials[32], colour[8];
    media_identicon_initials(name, initials);
    media_identicon_colour(name, colour);
    /* Two letters need a smaller size than one to leave the same margin. */
    size_t letters = 0, n = strlen(initials), i = 0;
    while (i < n)
        letters += is_mark(media_utf8_next(initials, n, &i)) ? 0 : 1;
    int font = letters > 1 ? 40 : 46;

    /* A 100-unit viewBox scaled to size px keeps every size identical. */
    strbuf_printf(out,
                  "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
                  "viewBox=\"0 0 100 100\" role=\"img\" aria-label=\"",
                  size, size);
    media_xml_puts(out, name);
    strbuf_puts(out, "\"><title>");
    media_xml_puts(out, name);
    strbuf_printf(out,
                  "</title><rect width=\"100\" height=\"100\" fill=\"%s\"/>"
                  "<text x=\"50\" y=\"50\" dy=\"0.35em\" fill=\"#ffffff\" "
                  "font-family=\"DejaVu Sans, Verdana, Arial, sans-serif\" font-size=\"%d\" "
                  "font-weight=\"bold\" text-anchor=\"middle\">",
                  colour, font);
    media_xml_puts(out, initials);
    strbuf_puts(out, "</text></svg>");
    return MEDIA_OK;
}
