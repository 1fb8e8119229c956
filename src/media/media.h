/*
 * media.h - the media layer: pictures and drawings the site serves.
 *
 *   - avatars (avatar.c): an uploaded picture, checked and decoded with
 *     libvips from its bytes alone, becomes two square WebP thumbnails
 *     (256 and 64 px, autorotated, centre-cropped, metadata stripped);
 *   - identicons (identicon.c): the default picture of a user without one,
 *     an SVG of their initials on a colour derived from the username;
 *   - charts (chart.c): the admin dashboard's SVG charts (time series,
 *     histogram, top-N ranking) and their PNG rendering.
 *
 * The layer links only echo_core and libvips. Nothing here knows about HTTP
 * or the database: callers hand in bytes and strings and get bytes back.
 *
 * Thread-safety: every function may be called from any thread at any time.
 * libvips is initialised once (media_init, also called implicitly by the
 * functions that need it) with a small operation cache and one worker per
 * pipeline, so memory use per request is predictable in a server.
 */
#ifndef ECHO_MEDIA_H
#define ECHO_MEDIA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/core.h"

enum media_status {
    MEDIA_OK = 0,
    MEDIA_ERR_NOT_IMAGE = -1,       /* empty, text, random bytes: no image format recognised */
    MEDIA_ERR_UNSUPPORTED = -2,     /* an image, but not JPEG/PNG/WebP/GIF (SVG, TIFF, PDF...) */
    MEDIA_ERR_TOO_BIG = -3,         /* more bytes than allowed */
    MEDIA_ERR_TOO_MANY_PIXELS = -4, /* width x height over the limit (decompression bomb) */
    MEDIA_ERR_BAD_SHAPE = -5,       /* too narrow or too wide to make a square picture of */
    MEDIA_ERR_CORRUPT = -6,         /* truncated or damaged image data */
    MEDIA_ERR_IO = -7,              /* writing the files failed */
    MEDIA_ERR_INVALID = -8,         /* a bad argument (size, id, NaN value...) */
    MEDIA_ERR_INTERNAL = -9,        /* libvips failed on a valid image (e.g. out of memory) */
};
/* "ok", "not an image", "unsupported format", "too big", "too many pixels",
 * "bad shape", "corrupt", "i/o error", "invalid argument", "internal error". */
const char *media_status_name(int status);

/* Starts libvips once per process (idempotent, thread-safe): operation cache
 * off, one worker thread per pipeline, libvips warnings routed to log_debug.
 * MEDIA_ERR_INTERNAL with err set when libvips cannot start. */
int media_init(struct echo_err *err);

/* ---- avatars (avatar.c) ------------------------------------------------- */

#define MEDIA_AVATAR_LARGE 256 /* px, the profile page picture */
#define MEDIA_AVATAR_SMALL 64  /* px, the chat and list picture */
#define MEDIA_AVATAR_MAX_BYTES_DEFAULT (5u * 1024u * 1024u)
#define MEDIA_AVATAR_MAX_PIXELS_DEFAULT 40000000u
/* A picture longer than this many times its width (or the reverse) is refused:
 * a square crop of it would show almost nothing, and upscaling a 1-pixel-wide
 * strip to 256 px would make a huge intermediate image. */
#define MEDIA_AVATAR_MAX_ASPECT 50

struct media_avatar_limits {
    size_t max_bytes;    /* 0: MEDIA_AVATAR_MAX_BYTES_DEFAULT */
    uint64_t max_pixels; /* width x height of the (first frame of the) picture; 0: default */
};

/* The result of media_avatar_process; owns its buffers (media_avatar_deinit). */
struct media_avatar {
    const char *format;   /* "jpeg", "png", "webp" or "gif" (static string) */
    int width, height;    /* of the uploaded picture, upright (after EXIF orientation) */
    unsigned char *large; /* WebP, MEDIA_AVATAR_LARGE square */
    size_t large_len;
    unsigned char *small; /* WebP, MEDIA_AVATAR_SMALL square */
    size_t small_len;
};

/*
 * Turns the bytes of an upload into the two avatar thumbnails. The format is
 * sniffed from the bytes (file names and Content-Type are never consulted);
 * only JPEG, PNG, WebP and GIF (first frame) are accepted. The header is read
 * and the pixel count checked before any pixel is decoded; decoding fails on
 * the first error, so a truncated file is refused rather than half-drawn.
 * The picture is turned upright (EXIF orientation), centre-cropped to a
 * square, and encoded as WebP (quality 82) without EXIF, XMP or ICC data.
 *
 * limits may be NULL (defaults). On success *out is filled (free with
 * media_avatar_deinit); on failure *out is zeroed, a media_status is returned
 * and err says what is wrong in words fit to show the person who uploaded.
 */
int media_avatar_process(const void *data, size_t len, const struct media_avatar_limits *limits,
                         struct media_avatar *out, struct echo_err *err);
void media_avatar_deinit(struct media_avatar *a);

/* True for a file id usable in media_avatar_store: 1 to 64 of [A-Za-z0-9_-]. */
bool media_avatar_id_valid(const char *id);

/*
 * Stores a processed avatar in dir (which must exist) as <id>-256.webp and
 * <id>-64.webp, replacing earlier files of that id. Both files are written in
 * full and synced under temporary names before either is renamed into place,
 * so a failure leaves nothing new behind and a reader never sees a partial
 * file. MEDIA_ERR_INVALID for a bad id, MEDIA_ERR_IO otherwise.
 */
int media_avatar_store(const struct media_avatar *a, const char *dir, const char *id,
                       struct echo_err *err);
/* Deletes both files of id in dir; files that do not exist are not an error. */
int media_avatar_remove(const char *dir, const char *id, struct echo_err *err);

/* ---- default avatars (identicon.c) -------------------------------------- */

#define MEDIA_IDENTICON_MIN 16
#define MEDIA_IDENTICON_MAX 1024

/* The one or two initials shown for username: the first character of the
 * first and of the second part of the name (parts split at '.', '-', '_' and
 * spaces), upper-cased where a simple rule knows the capital (ASCII,
 * Latin-1, Latin Extended-A, Greek, Cyrillic), other characters kept as
 * they are (with their combining marks); "?" for an empty or unreadable
 * name. out is
 * NUL-terminated UTF-8, at most 31 bytes. */
void media_identicon_initials(const char *username, char out[32]);
/* The background colour of username as "#rrggbb": a hue from a hash of the
 * name, at a saturation and lightness where white text meets WCAG AA
 * (contrast ratio at least 4.5:1). Stable across releases. */
void media_identicon_colour(const char *username, char out[8]);
/* Appends a size x size px SVG of the initials on the colour to out. The
 * username (any bytes) is XML-escaped; invalid UTF-8 is replaced. size in
 * [MEDIA_IDENTICON_MIN, MEDIA_IDENTICON_MAX], else MEDIA_ERR_INVALID. */
int media_identicon_svg(const char *username, int size, struct strbuf *out, struct echo_err *err);

/* ---- charts (chart.c) --------------------------------------------------- */

/* One value of a series: an x label (a "YYYY-MM-DD" date, or any UTF-8 text
 * for categories) and a finite value. */
struct media_chart_point {
    const char *label;
    double value;
};

struct media_chart_opts {
    const char *title;   /* heading and accessible name; NULL: none */
    const char *x_label; /* axis titles; NULL: none */
    const char *y_label;
    const char *unit;  /* noun after values in tooltips, e.g. "signups"; NULL: none */
    int width, height; /* px; 0: 720 x 360. Allowed 240..4000 x 160..4000 */
    /* media_chart_series with MEDIA_CHART_CUMULATIVE: the total before the
     * first point (e.g. users who signed up before the range). */
    double cumulative_base;
    const char *cumulative_label; /* legend of the cumulative line; NULL: "cumulative" */
};

enum media_chart_flags {
    MEDIA_CHART_BARS = 0,       /* one bar per point (drawn as an area beyond ~1 bar per 3 px) */
    MEDIA_CHART_LINE = 1,       /* a line with a marker per point */
    MEDIA_CHART_CUMULATIVE = 2, /* add the running total as a line on a right-hand axis */
};

#define MEDIA_CHART_MAX_POINTS 100000

/*
 * The charts below append one standalone SVG document to out (nothing is
 * appended on error). Style: seaborn's "darkgrid" look (light plot area,
 * white grid lines at 1-2-5 ticks, muted palette, DejaVu Sans). Every data
 * point is one element with class="pt" and data-label / data-value
 * attributes and a <title> tooltip; the root has role="img", a <title> and a
 * <desc> summarising the data in words. All text is XML-escaped, labels that
 * do not fit end in an ellipsis. Empty data draws the frame with "No data
 * yet". Errors (MEDIA_ERR_INVALID): a NULL label, a non-finite value, more
 * than MEDIA_CHART_MAX_POINTS points, a size out of range.
 */

/* Values over x labels in order. When every label is a date "YYYY-MM-DD"
 * and they increase, the x axis is a time axis (points placed by date, ticks
 * at days, weeks, months or years, the year shown where it changes). */
int media_chart_series(const struct media_chart_opts *opts, const struct media_chart_point *pts,
                       size_t n, unsigned flags, struct strbuf *out, struct echo_err *err);
/* The distribution of values in bins of a nice width (1, 2 or 5 x 10^k;
 * whole numbers when every value is whole). bins 0 picks about
 * Sturges' count (log2 n + 1, between 5 and 30); at most 200. */
int media_chart_histogram(const struct media_chart_opts *opts, const double *values, size_t n,
                          size_t bins, struct strbuf *out, struct echo_err *err);
/* Horizontal bars of the top_n largest values (ties by label), largest on
 * top; values must be >= 0. top_n in 1..100. A height of 0 fits the bars
 * (26 px each). Labels longer than a third of the width are cut. */
int media_chart_top(const struct media_chart_opts *opts, const struct media_chart_point *pts,
                    size_t n, size_t top_n, struct strbuf *out, struct echo_err *err);

/* Rasterises an SVG (one of ours: it is trusted input) to PNG at scale
 * (1 = the SVG's own size, up to 4). *png is the caller's (free()). */
int media_svg_to_png(const char *svg, size_t len, double scale, unsigned char **png,
                     size_t *png_len, struct echo_err *err);

#endif
