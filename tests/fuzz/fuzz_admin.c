/*
 * fuzz_admin.c - libFuzzer target for what the admin panel reads from a URL
 * or writes into a CSV file: dates ("YYYY-MM-DD"), the DateRange rules, and
 * formula-safe CSV cells.
 *
 * Input: up to three lines - from, to, a cell's text. Invariants: a date
 * that parses formats back to the same text at a midnight; a range that is
 * accepted is whole days, from before to, at most the maximum length, and
 * leaves no error on its form (a refused one leaves at least one); a CSV
 * cell read back by RFC 4180's rules is the text itself, or the text with a
 * leading ' when it starts like a formula, and an unquoted cell never holds
 * a separator, a quote or a line break.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "web/admin.h"
#include "web/form.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_date(const char *s)
{
    int64_t t;
    if (!web_admin_parse_date(s, &t)) return;
    char back[11];
    web_admin_format_date(t, back);
    if (t % 86400 != 0 || strcmp(back, s) != 0) abort();
}

static void check_cell(const char *s)
{
    struct strbuf sb;
    strbuf_init(&sb);
    web_admin_csv_cell(&sb, s);
    strbuf_puts(&sb, "");
    const char *c = sb.data;
    bool formula = s[0] == '=' || s[0] == '+' || s[0] == '-' || s[0] == '@' || s[0] == '\t' ||
                   s[0] == '\r';
    size_t n = strlen(s);
    char *want = malloc(n + 2), *got = malloc(sb.len + 1);
    want[0] = '\'';
    memcpy(want + 1, s, n + 1);
    const char *expect = formula ? want : s;
    if (c[0] == '"') {
        /* Quoted: "" is one quote, a lone quote may only end the cell. */
        size_t w = 0, i = 1;
        for (; c[i]; i++) {
            if (c[i] == '"') {
                if (c[i + 1] == '"') {
                    got[w++] = '"';
                    i++;
                } else {
                    break;
                }
            } else {
                got[w++] = c[i];
            }
        }
        got[w] = 0;
        if (c[i] != '"' || c[i + 1] != 0) abort();
        if (strcmp(got, expect) != 0) abort();
    } else {
        if (formula || strpbrk(c, ",\"\r\n") || strcmp(c, s) != 0) abort();
    }
    free(want);
    free(got);
    strbuf_deinit(&sb);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096) return 0;
    char *buf = malloc(size + 1);
    memcpy(buf, data, size);
    buf[size] = 0;
    /* NUL ends the text, as it would a URL argument. */
    char *parts[3] = {buf, "", ""};
    for (int k = 1; k < 3; k++) {
        char *nl = strchr(parts[k - 1], '\n');
        if (!nl) break;
        *nl = 0;
        parts[k] = nl + 1;
    }
    check_date(parts[0]);
    check_date(parts[1]);
    json_t *form = web_form_new();
    int64_t today = 1704067200, from = 0, to = 0;
    bool ok = web_admin_range_parse(parts[0], parts[1], today, &from, &to, form);
    if (ok) {
        if (from >= to || (to - from) % 86400 || (to - from) / 86400 > WEB_ADMIN_RANGE_MAX_DAYS ||
            !web_form_ok(form))
            abort();
    } else if (web_form_ok(form)) {
        abort();
    }
    json_decref(form);
    check_cell(parts[2]);
    check_cell(parts[0]);
    free(buf);
    return 0;
}
