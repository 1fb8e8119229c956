/*
 * text.c - the Unicode pieces of Python's str that templates observe:
 * decoding and counting code points (length, truncate and slicing count code
 * points, not bytes), whitespace as str.isspace, printability for repr(), and
 * full case mapping as str.upper()/lower()/title().
 *
 * Simple (one-to-one) case mappings and categories come from utf8proc. The
 * few mappings that expand to several code points (SpecialCasing.txt, e.g.
 * "ß".upper() == "SS") are not in utf8proc; the tables below list them. They
 * were generated from Python's unicodedata (Unicode 14.0) with:
 *   for c in range(0x110000): if len(chr(c).upper()) > 1: ...   (same for lower, title)
 *
 * Everything here is pure and thread-safe.
 */
#include <string.h>
#include <utf8proc.h>

#include "tmpl/tmpl_int.h"

struct special_case {
    uint32_t cp;
    int n;
    uint32_t map[3];
};

static const struct special_case special_upper[] = {
    {0x00DF, 2, {0x0053, 0x0053}},         {0x0149, 2, {0x02BC, 0x004E}},
    {0x01F0, 2, {0x004A, 0x030C}},         {0x0390, 3, {0x0399, 0x0308, 0x0301}},
    {0x03B0, 3, {0x03A5, 0x0308, 0x0301}}, {0x0587, 2, {0x0535, 0x0552}},
    {0x1E96, 2, {0x0048, 0x0331}},         {0x1E97, 2, {0x0054, 0x0308}},
    {0x1E98, 2, {0x0057, 0x030A}},         {0x1E99, 2, {0x0059, 0x030A}},
    {0x1E9A, 2, {0x0041, 0x02BE}},         {0x1F50, 2, {0x03A5, 0x0313}},
    {0x1F52, 3, {0x03A5, 0x0313, 0x0300}}, {0x1F54, 3, {0x03A5, 0x0313, 0x0301}},
    {0x1F56, 3, {0x03A5, 0x0313, 0x0342}}, {0x1F80, 2, {0x1F08, 0x0399}},
    {0x1F81, 2, {0x1F09, 0x0399}},         {0x1F82, 2, {0x1F0A, 0x0399}},
    {0x1F83, 2, {0x1F0B, 0x0399}},         {0x1F84, 2, {0x1F0C, 0x0399}},
    {0x1F85, 2, {0x1F0D, 0x0399}},         {0x1F86, 2, {0x1F0E, 0x0399}},
    {0x1F87, 2, {0x1F0F, 0x0399}},         {0x1F88, 2, {0x1F08, 0x0399}},
    {0x1F89, 2, {0x1F09, 0x0399}},         {0x1F8A, 2, {0x1F0A, 0x0399}},
    {0x1F8B, 2, {0x1F0B, 0x0399}},         {0x1F8C, 2, {0x1F0C, 0x0399}},
    {0x1F8D, 2, {0x1F0D, 0x0399}},         {0x1F8E, 2, {0x1F0E, 0x0399}},
    {0x1F8F, 2, {0x1F0F, 0x0399}},         {0x1F90, 2, {0x1F28, 0x0399}},
    {0x1F91, 2, {0x1F29, 0x0399}},         {0x1F92, 2, {0x1F2A, 0x0399}},
    {0x1F93, 2, {0x1F2B, 0x0399}},         {0x1F94, 2, {0x1F2C, 0x0399}},
    {0x1F95, 2, {0x1F2D, 0x0399}},         {0x1F96, 2, {0x1F2E, 0x0399}},
    {0x1F97, 2, {0x1F2F, 0x0399}},         {0x1F98, 2, {0x1F28, 0x0399}},
    {0x1F99, 2, {0x1F29, 0x0399}},         {0x1F9A, 2, {0x1F2A, 0x0399}},
    {0x1F9B, 2, {0x1F2B, 0x0399}},         {0x1F9C, 2, {0x1F2C, 0x0399}},
    {0x1F9D, 2, {0x1F2D, 0x0399}},         {0x1F9E, 2, {0x1F2E, 0x0399}},
    {0x1F9F, 2, {0x1F2F, 0x0399}},         {0x1FA0, 2, {0x1F68, 0x0399}},
    {0x1FA1, 2, {0x1F69, 0x0399}},         {0x1FA2, 2, {0x1F6A, 0x0399}},
    {0x1FA3, 2, {0x1F6B, 0x0399}},         {0x1FA4, 2, {0x1F6C, 0x0399}},
    {0x1FA5, 2, {0x1F6D, 0x0399}},         {0x1FA6, 2, {0x1F6E, 0x0399}},
    {0x1FA7, 2, {0x1F6F, 0x0399}},         {0x1FA8, 2, {0x1F68, 0x0399}},
    {0x1FA9, 2, {0x1F69, 0x0399}},         {0x1FAA, 2, {0x1F6A, 0x0399}},
    {0x1FAB, 2, {0x1F6B, 0x0399}},         {0x1FAC, 2, {0x1F6C, 0x0399}},
    {0x1FAD, 2, {0x1F6D, 0x0399}},         {0x1FAE, 2, {0x1F6E, 0x0399}},
    {0x1FAF, 2, {0x1F6F, 0x0399}},         {0x1FB2, 2, {0x1FBA, 0x0399}},
    {0x1FB3, 2, {0x0391, 0x0399}},         {0x1FB4, 2, {0x0386, 0x0399}},
    {0x1FB6, 2, {0x0391, 0x0342}},         {0x1FB7, 3, {0x0391, 0x0342, 0x0399}},
    {0x1FBC, 2, {0x0391, 0x0399}},         {0x1FC2, 2, {0x1FCA, 0x0399}},
    {0x1FC3, 2, {0x0397, 0x0399}},         {0x1FC4, 2, {0x0389, 0x0399}},
    {0x1FC6, 2, {0x0397, 0x0342}},         {0x1FC7, 3, {0x0397, 0x0342, 0x0399}},
    {0x1FCC, 2, {0x0397, 0x0399}},         {0x1FD2, 3, {0x0399, 0x0308, 0x0300}},
    {0x1FD3, 3, {0x0399, 0x0308, 0x0301}}, {0x1FD6, 2, {0x0399, 0x0342}},
    {0x1FD7, 3, {0x0399, 0x0308, 0x0342}}, {0x1FE2, 3, {0x03A5, 0x0308, 0x0300}},
    {0x1FE3, 3, {0x03A5, 0x0308, 0x0301}}, {0x1FE4, 2, {0x03A1, 0x0313}},
    {0x1FE6, 2, {0x03A5, 0x0342}},         {0x1FE7, 3, {0x03A5, 0x0308, 0x0342}},
    {0x1FF2, 2, {0x1FFA, 0x0399}},         {0x1FF3, 2, {0x03A9, 0x0399}},
    {0x1FF4, 2, {0x038F, 0x0399}},         {0x1FF6, 2, {0x03A9, 0x0342}},
    {0x1FF7, 3, {0x03A9, 0x0342, 0x0399}}, {0x1FFC, 2, {0x03A9, 0x0399}},
    {0xFB00, 2, {0x0046, 0x0046}},         {0xFB01, 2, {0x0046, 0x0049}},
    {0xFB02, 2, {0x0046, 0x004C}},         {0xFB03, 3, {0x0046, 0x0046, 0x0049}},
    {0xFB04, 3, {0x0046, 0x0046, 0x004C}}, {0xFB05, 2, {0x0053, 0x0054}},
    {0xFB06, 2, {0x0053, 0x0054}},         {0xFB13, 2, {0x0544, 0x0546}},
    {0xFB14, 2, {0x0544, 0x0535}},         {0xFB15, 2, {0x0544, 0x053B}},
    {0xFB16, 2, {0x054E, 0x0546}},         {0xFB17, 2, {0x0544, 0x053D}},
};
static const struct special_case special_lower[] = {
    {0x0130, 2, {0x0069, 0x0307}},
};
static const struct special_case special_title[] = {
    {0x00DF, 2, {0x0053, 0x0073}},         {0x0149, 2, {0x02BC, 0x004E}},
    {0x01F0, 2, {0x004A, 0x030C}},         {0x0390, 3, {0x0399, 0x0308, 0x0301}},
    {0x03B0, 3, {0x03A5, 0x0308, 0x0301}}, {0x0587, 2, {0x0535, 0x0582}},
    {0x1E96, 2, {0x0048, 0x0331}},         {0x1E97, 2, {0x0054, 0x0308}},
    {0x1E98, 2, {0x0057, 0x030A}},         {0x1E99, 2, {0x0059, 0x030A}},
    {0x1E9A, 2, {0x0041, 0x02BE}},         {0x1F50, 2, {0x03A5, 0x0313}},
    {0x1F52, 3, {0x03A5, 0x0313, 0x0300}}, {0x1F54, 3, {0x03A5, 0x0313, 0x0301}},
    {0x1F56, 3, {0x03A5, 0x0313, 0x0342}}, {0x1FB2, 2, {0x1FBA, 0x0345}},
    {0x1FB4, 2, {0x0386, 0x0345}},         {0x1FB6, 2, {0x0391, 0x0342}},
    {0x1FB7, 3, {0x0391, 0x0342, 0x0345}}, {0x1FC2, 2, {0x1FCA, 0x0345}},
    {0x1FC4, 2, {0x0389, 0x0345}},         {0x1FC6, 2, {0x0397, 0x0342}},
    {0x1FC7, 3, {0x0397, 0x0342, 0x0345}}, {0x1FD2, 3, {0x0399, 0x0308, 0x0300}},
    {0x1FD3, 3, {0x0399, 0x0308, 0x0301}}, {0x1FD6, 2, {0x0399, 0x0342}},
    {0x1FD7, 3, {0x0399, 0x0308, 0x0342}}, {0x1FE2, 3, {0x03A5, 0x0308, 0x0300}},
    {0x1FE3, 3, {0x03A5, 0x0308, 0x0301}}, {0x1FE4, 2, {0x03A1, 0x0313}},
    {0x1FE6, 2, {0x03A5, 0x0342}},         {0x1FE7, 3, {0x03A5, 0x0308, 0x0342}},
    {0x1FF2, 2, {0x1FFA, 0x0345}},         {0x1FF4, 2, {0x038F, 0x0345}},
    {0x1FF6, 2, {0x03A9, 0x0342}},         {0x1FF7, 3, {0x03A9, 0x0342, 0x0345}},
    {0xFB00, 2, {0x0046, 0x0066}},         {0xFB01, 2, {0x0046, 0x0069}},
    {0xFB02, 2, {0x0046, 0x006C}},         {0xFB03, 3, {0x0046, 0x0066, 0x0069}},
    {0xFB04, 3, {0x0046, 0x0066, 0x006C}}, {0xFB05, 2, {0x0053, 0x0074}},
    {0xFB06, 2, {0x0053, 0x0074}},         {0xFB13, 2, {0x0544, 0x0576}},
    {0xFB14, 2, {0x0544, 0x0565}},         {0xFB15, 2, {0x0544, 0x056B}},
    {0xFB16, 2, {0x054E, 0x0576}},         {0xFB17, 2, {0x0544, 0x056D}},
};

static int special_find(const struct special_case *tab, size_t n, uint32_t cp, uint32_t out[3])
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (tab[mid].cp == cp) {
            for (int i = 0; i < tab[mid].n; i++)
                out[i] = tab[mid].map[i];
            return tab[mid].n;
        }
        if (tab[mid].cp < cp)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

uint32_t tmpl_utf8_next(const char *s, size_t n, size_t *i)
{
    const unsigned char *p = (const unsigned char *)s + *i;
    size_t left = n - *i;
    unsigned char c = p[0];
    if (c < 0x80) {
        (*i)++;
        return c;
    }
    size_t len;
    uint32_t cp, min;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        cp = c & 0x1F;
        min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        cp = c & 0x0F;
        min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        cp = c & 0x07;
        min = 0x10000;
    } else {
        goto bad;
    }
    if (left < len) goto bad;
    for (size_t k = 1; k < len; k++) {
        if ((p[k] & 0xC0) != 0x80) goto bad;
        cp = (cp << 6) | (p[k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp < 0xE000)) goto bad;
    *i += len;
    return cp;
bad:
    /* Strings reaching the renderer are validated UTF-8; should a custom
     * filter hand over something else, one replacement character per bad
     * byte keeps every loop advancing. */
    (*i)++;
    return 0xFFFD;
}

size_t tmpl_utf8_put(char *buf, uint32_t cp)
{
    if (cp < 0x80) {
        buf[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        buf[0] = (char)(0xC0 | (cp >> 6));
        buf[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        buf[0] = (char)(0xE0 | (cp >> 12));
        buf[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        buf[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    buf[0] = (char)(0xF0 | (cp >> 18));
    buf[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    buf[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    buf[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

size_t tmpl_utf8_count(const char *s, size_t n)
{
    /* Code points = bytes - continuation bytes (10xxxxxx), counted eight
     * bytes at a time: a continuation byte has bit 7 set and bit 6 clear. */
    size_t cont = 0, i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t x;
        memcpy(&x, s + i, 8);
        uint64_t c = (x & ~(x << 1) & 0x8080808080808080ull) >> 7;
        cont += (size_t)((c * 0x0101010101010101ull) >> 56); /* sum of the 8 lanes */
    }
    for (; i < n; i++)
        cont += ((unsigned char)s[i] & 0xC0) == 0x80;
    return n - cont;
}

size_t tmpl_utf8_offset(const char *s, size_t n, size_t k)
{
    size_t i = 0;
    while (k > 0 && i < n) {
        tmpl_utf8_next(s, n, &i);
        k--;
    }
    return i;
}

bool tmpl_uni_isspace(uint32_t cp)
{
    if (cp < 0x80) return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20);
    switch (cp) {
    case 0x85:
    case 0xA0:
    case 0x1680:
    case 0x2028:
    case 0x2029:
    case 0x202F:
    case 0x205F:
    case 0x3000:
        return true;
    default:
        return cp >= 0x2000 && cp <= 0x200A;
    }
}

bool tmpl_uni_isprintable(uint32_t cp)
{
    if (cp == ' ') return true;
    switch (utf8proc_category((utf8proc_int32_t)cp)) {
    case UTF8PROC_CATEGORY_CN:
    case UTF8PROC_CATEGORY_CC:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_CS:
    case UTF8PROC_CATEGORY_CO:
    case UTF8PROC_CATEGORY_ZS:
    case UTF8PROC_CATEGORY_ZL:
    case UTF8PROC_CATEGORY_ZP:
        return false;
    default:
        return true;
    }
}

int tmpl_uni_upper(uint32_t cp, uint32_t out[3])
{
    if (cp < 0x80) {
        out[0] = (cp >= 'a' && cp <= 'z') ? cp - 32 : cp;
        return 1;
    }
    int n = special_find(special_upper, COUNT(special_upper), cp, out);
    if (n) return n;
    out[0] = (uint32_t)utf8proc_toupper((utf8proc_int32_t)cp);
    return 1;
}

int tmpl_uni_lower(uint32_t cp, uint32_t out[3])
{
    if (cp < 0x80) {
        out[0] = (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
        return 1;
    }
    int n = special_find(special_lower, COUNT(special_lower), cp, out);
    if (n) return n;
    out[0] = (uint32_t)utf8proc_tolower((utf8proc_int32_t)cp);
    return 1;
}

int tmpl_uni_title(uint32_t cp, uint32_t out[3])
{
    if (cp < 0x80) return tmpl_uni_upper(cp, out);
    int n = special_find(special_title, COUNT(special_title), cp, out);
    if (n) return n;
    out[0] = (uint32_t)utf8proc_totitle((utf8proc_int32_t)cp);
    return 1;
}

bool tmpl_uni_isupper(uint32_t cp)
{
    utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
    return c == UTF8PROC_CATEGORY_LU || c == UTF8PROC_CATEGORY_LT;
}

bool tmpl_uni_islower(uint32_t cp)
{
    return utf8proc_category((utf8proc_int32_t)cp) == UTF8PROC_CATEGORY_LL;
}

/* Unicode "Cased": letters with case (Lu, Ll, Lt) and the few others that
 * have a case mapping. */
bool tmpl_uni_iscased(uint32_t cp)
{
    utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
    if (c == UTF8PROC_CATEGORY_LU || c == UTF8PROC_CATEGORY_LL || c == UTF8PROC_CATEGORY_LT)
        return true;
    return utf8proc_toupper((utf8proc_int32_t)cp) != (utf8proc_int32_t)cp ||
           utf8proc_tolower((utf8proc_int32_t)cp) != (utf8proc_int32_t)cp;
}

/* Unicode "Case_Ignorable": marks, format characters, modifiers and the
 * word-internal punctuation of Word_Break MidLetter/MidNumLet/Single_Quote. */
bool tmpl_uni_iscaseignorable(uint32_t cp)
{
    switch (cp) {
    case 0x27:
    case 0x2E:
    case 0x3A:
    case 0x5E:
    case 0x60:
    case 0xA8:
    case 0xAD:
    case 0xAF:
    case 0xB4:
    case 0xB7:
    case 0xB8:
    case 0x387:
    case 0x5F4:
    case 0x2018:
    case 0x2019:
    case 0x2024:
    case 0x2027:
    case 0xFE13:
    case 0xFE52:
    case 0xFE55:
    case 0xFF07:
    case 0xFF0E:
    case 0xFF1A:
        return true;
    default:
        break;
    }
    switch (utf8proc_category((utf8proc_int32_t)cp)) {
    case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_ME:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_SK:
        return true;
    default:
        return false;
    }
}

bool tmpl_uni_isalnum(uint32_t cp)
{
    if (cp < 0x80) return (cp >= '0' && cp <= '9') || ((cp | 32) >= 'a' && (cp | 32) <= 'z');
    switch (utf8proc_category((utf8proc_int32_t)cp)) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO:
        return true;
    default:
        return false;
    }
}
