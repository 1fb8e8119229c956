/*
 * media_internal.h - helpers shared by the files of the media layer and not
 * part of its public interface: UTF-8 reading, XML escaping, the width of a
 * text in the chart font, and number formatting.
 *
 * Thread-safety: pure functions, callable from any thread.
 */
#ifndef ECHO_MEDIA_INTERNAL_H
#define ECHO_MEDIA_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/core.h"

#define MEDIA_REPLACEMENT_CHAR 0xFFFDu

/* Decodes the code point at s[*i] (n bytes in all) and advances *i. Invalid
 * UTF-8 (bad lead or continuation byte, overlong, surrogate, beyond U+10FFFF,
 * cut short) yields U+FFFD and consumes one byte, so a caller never loops. */
uint32_t media_utf8_next(const char *s, size_t n, size_t *i);

/* Appends s (n bytes) as XML 1.0 character data or attribute text: & < > " '
 * become entities, invalid UTF-8 and characters XML forbids (controls other
 * than tab, newline and return, U+FFFE, U+FFFF) become U+FFFD. */
void media_xml_escape(struct strbuf *sb, const char *s, size_t n);
void media_xml_puts(struct strbuf *sb, const char *s); /* NUL-terminated s; NULL appends nothing */

/* Estimated width in px of s (NUL-terminated UTF-8) in DejaVu Sans at size
 * px: good enough to lay out labels, not a text shaper. */
double media_text_width(const char *s, double px);
/* Appends s XML-escaped, cut to fit max_px (ending in U+2026 when cut).
 * Returns true when s was cut. */
bool media_xml_fit(struct strbuf *sb, const char *s, double px, double max_px);

/* Formats v for people: whole numbers with thousands separators
 * ("1,234,567"), others with up to decimals places, trailing zeros removed. */
void media_format_number(char *buf, size_t size, double v, int decimals);

/* The value axis of the charts (chart.c), visible for its unit tests: nice
 * ticks lo, lo + step, ..., hi over [min, max] with 0 included and about
 * target intervals (step 1, 2 or 5 x 10^k; at least 1 when integral).
 * Returns the number of ticks. */
int media_axis_ticks(double min, double max, int target, bool integral, double *lo, double *hi,
                     double *step);

/* Copies libvips' pending error text into buf (trailing newlines removed,
 * "unknown error" when empty) and clears it. libvips keeps one error buffer
 * per process, so under concurrency the text may mention another request's
 * failure: use it for logs, not to decide anything. */
void media_vips_error(char *buf, size_t size);

#endif
