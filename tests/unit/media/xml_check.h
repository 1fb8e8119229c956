/*
 * xml_check.h - a small XML well-formedness checker for the media tests:
 * elements nest and close, attribute values are quoted and unique per
 * element, '&' starts a known or numeric entity, '<' never appears in text
 * or attribute values, and the text is valid UTF-8. It is stricter than
 * needed for SVG renderers and independent of the code under test; librsvg
 * (through libvips) checks the same documents a second way.
 */
#ifndef ECHO_TEST_XML_CHECK_H
#define ECHO_TEST_XML_CHECK_H

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "core/core.h"

static inline bool xml_check_entity(const char *s, size_t n, size_t *i)
{
    static const char *named[] = {"amp;", "lt;", "gt;", "quot;", "apos;"};
    size_t j = *i + 1;
    for (size_t k = 0; k < 5; k++) {
        size_t l = strlen(named[k]);
        if (j + l <= n && memcmp(s + j, named[k], l) == 0) {
            *i = j + l;
            return true;
        }
    }
    if (j < n && s[j] == '#') {
        j++;
        bool hex = j < n && s[j] == 'x';
        if (hex) j++;
        size_t start = j;
        while (j < n && (hex ? isxdigit((unsigned char)s[j]) : isdigit((unsigned char)s[j])))
            j++;
        if (j > start && j < n && s[j] == ';') {
            *i = j + 1;
            return true;
        }
    }
    return false;
}

static inline bool xml_name_char(char c)
{
    return isalnum((unsigned char)c) || c == '-' || c == '_' || c == ':' || c == '.';
}

/* Returns NULL when s is one well-formed element (after an optional XML
 * declaration), else a static message naming the problem and its offset. */
static inline const char *xml_check(const char *s, size_t n)
{
    static char msg[160];
    const char *stack[256];
    size_t stack_len[256];
    int depth = 0, roots = 0;
    size_t i = 0;
    if (!utf8_valid(s, n)) return "invalid UTF-8";
#define XML_FAIL(what)                                                                             \
    do {                                                                                           \
        snprintf(msg, sizeof(msg), "%s at offset %zu", what, i);                                   \
        return msg;                                                                                \
    } while (0)
    while (i < n) {
        if (s[i] == '&') {
            if (!xml_check_entity(s, n, &i)) XML_FAIL("bad entity");
            continue;
        }
        if (s[i] == '>') XML_FAIL("stray '>'");
        if (s[i] != '<') {
            if (depth == 0 && !isspace((unsigned char)s[i]))
                XML_FAIL("text outside the root element");
            i++;
            continue;
        }
        i++;
        if (i < n && s[i] == '?') { /* declaration */
            const char *e = strstr(s + i, "?>");
            if (!e || roots) XML_FAIL("bad declaration");
            i = (size_t)(e - s) + 2;
            continue;
        }
        bool closing = i < n && s[i] == '/';
        if (closing) i++;
        size_t name = i;
        while (i < n && xml_name_char(s[i]))
            i++;
        size_t name_len = i - name;
        if (name_len == 0) XML_FAIL("missing element name");
        if (closing) {
            if (depth == 0 || stack_len[depth - 1] != name_len ||
                memcmp(stack[depth - 1], s + name, name_len) != 0)
                XML_FAIL("mismatched closing tag");
            depth--;
            if (i >= n || s[i] != '>') XML_FAIL("bad closing tag");
            i++;
            continue;
        }
        if (depth == 0 && roots++) XML_FAIL("a second root element");
        /* Attributes. */
        const char *attrs[64];
        size_t attr_len[64];
        int nattr = 0;
        for (;;) {
            while (i < n && isspace((unsigned char)s[i]))
                i++;
            if (i >= n) XML_FAIL("unterminated tag");
            if (s[i] == '>' || (s[i] == '/' && i + 1 < n && s[i + 1] == '>')) break;
            size_t an = i;
            while (i < n && xml_name_char(s[i]))
                i++;
            if (i == an || i >= n || s[i] != '=') XML_FAIL("bad attribute");
            for (int k = 0; k < nattr; k++)
                if (attr_len[k] == i - an && memcmp(attrs[k], s + an, i - an) == 0)
                    XML_FAIL("duplicate attribute");
            if (nattr < 64) {
                attrs[nattr] = s + an;
                attr_len[nattr++] = i - an;
            }
            i++;
            char q = i < n ? s[i] : 0;
            if (q != '"' && q != '\'') XML_FAIL("unquoted attribute value");
            i++;
            while (i < n && s[i] != q) {
                if (s[i] == '<') XML_FAIL("'<' in an attribute value");
                if (s[i] == '&') {
                    if (!xml_check_entity(s, n, &i)) XML_FAIL("bad entity in an attribute value");
                    continue;
                }
                i++;
            }
            if (i >= n) XML_FAIL("unterminated attribute value");
            i++;
            if (i < n && !isspace((unsigned char)s[i]) && s[i] != '>' && s[i] != '/')
                XML_FAIL("no space between attributes");
        }
        if (s[i] == '/') {
            i += 2;
            continue;
        }
        i++;
        if (depth == 256) XML_FAIL("nesting too deep");
        stack[depth] = s + name;
        stack_len[depth++] = name_len;
    }
    if (depth != 0) XML_FAIL("unclosed element");
    if (roots != 1) XML_FAIL("no root element");
    return NULL;
#undef XML_FAIL
}

/* Number of non-overlapping occurrences of needle in hay. */
static inline size_t count_of(const char *hay, const char *needle)
{
    size_t c = 0, l = strlen(needle);
    for (const char *p = strstr(hay, needle); p; p = strstr(p + l, needle))
        c++;
    return c;
}

#endif
