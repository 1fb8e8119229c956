/*
 * avatar.c - the profile picture pipeline (issue 7): untrusted upload bytes
 * in, two square WebP thumbnails out, or a refusal the uploader can read.
 *
 * The order of the checks is the defence:
 *   1. the byte count, before libvips sees anything;
 *   2. the format, sniffed from the bytes by libvips' loaders
 *      (vips_foreign_find_load_buffer); only the JPEG, PNG, WebP and GIF
 *      loaders are allowed, even though libvips could open SVG, TIFF, PDF,
 *      HEIF and more (each is parser surface we do not need);
 *   3. the header alone (libvips loads lazily: no pixel is decoded yet), to
 *      refuse decompression bombs by pixel count and absurd shapes;
 *   4. the decode itself, with fail_on=error so a truncated or damaged file
 *      is an error rather than a picture with a grey bottom half.
 * vips_thumbnail_buffer then does the work in one streaming pass: JPEG and
 * WebP shrink-on-load, EXIF autorotation, centre crop, conversion to sRGB.
 * The 64 px picture is made from the 256 px one held in memory, so the
 * upload is decoded only once.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <vips/vips.h>

#include "media/media.h"
#include "media/media_internal.h"

#define WEBP_QUALITY 82

struct allowed_format {
    const char *loader; /* libvips nickname */
    const char *name;
};

static const struct allowed_format allowed[] = {
    {"jpegload_buffer", "jpeg"},
    {"pngload_buffer", "png"},
    {"webpload_buffer", "webp"},
    {"gifload_buffer", "gif"},
};

/* Names of formats libvips can open and we refuse, for the error message. */
static const struct allowed_format refused_names[] = {
    {"svgload_buffer", "SVG"},        {"tiffload_buffer", "TIFF"},
    {"pdfload_buffer", "PDF"},        {"heifload_buffer", "HEIF/AVIF"},
    {"jp2kload_buffer", "JPEG 2000"}, {"jxlload_buffer", "JPEG XL"},
    {"radload_buffer", "Radiance"},   {"matrixload_source", "matrix"},
    {"csvload_source", "CSV"},        {"ppmload_buffer", "PPM"},
};

static void format_bytes(char *buf, size_t size, double n)
{
    if (n >= 1024.0 * 1024.0)
        snprintf(buf, size, "%.1f MB", n / (1024.0 * 1024.0));
    else if (n >= 1024.0)
        snprintf(buf, size, "%.1f KB", n / 1024.0);
    else
        snprintf(buf, size, "%.0f bytes", n);
}

/* Maps the loader libvips picked to one of ours; NULL when refused. */
static const char *accepted_format(const char *loader_type, struct echo_err *err)
{
    GType type = g_type_from_name(loader_type);
    const char *nick = type ? vips_nickname_find(type) : NULL;
    if (!nick) nick = loader_type;
    for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++)
        if (strcmp(nick, allowed[i].loader) == 0) return allowed[i].name;
    const char *what = NULL;
    for (size_t i = 0; i < sizeof(refused_names) / sizeof(refused_names[0]); i++)
        if (strcmp(nick, refused_names[i].loader) == 0) what = refused_names[i].name;
    if (what)
        echo_err_set(err, "%s pictures are not accepted; please upload a JPEG, PNG, WebP or GIF.",
                     what);
    else
        echo_err_set(err, "This kind of picture is not accepted; please upload a JPEG, PNG, "
                          "WebP or GIF.");
    log_debug("avatar: refused format (libvips loader %s)", nick);
    return NULL;
}

/* Opens the picture lazily with the loader of its format: only the header
 * is parsed here, pixels are decoded when something reads them. */
static int open_header(const char *format, const void *data, size_t len, VipsImage **img)
{
    void *buf = (void *)data; /* libvips' loaders take a non-const pointer; they only read */
    if (strcmp(format, "jpeg") == 0)
        return vips_jpegload_buffer(buf, len, img, "access", VIPS_ACCESS_SEQUENTIAL, "fail_on",
                                    VIPS_FAIL_ON_ERROR, NULL);
    if (strcmp(format, "png") == 0)
        return vips_pngload_buffer(buf, len, img, "access", VIPS_ACCESS_SEQUENTIAL, "fail_on",
                                   VIPS_FAIL_ON_ERROR, NULL);
    if (strcmp(format, "webp") == 0)
        return vips_webpload_buffer(buf, len, img, "access", VIPS_ACCESS_SEQUENTIAL, "fail_on",
                                    VIPS_FAIL_ON_ERROR, NULL);
    return vips_gifload_buffer(buf, len, img, "access", VIPS_ACCESS_SEQUENTIAL, "fail_on",
                               VIPS_FAIL_ON_ERROR, "n", 1, "page", 0, NULL);
}

static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_le32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

/*
 * Removes the EXIF, XMP and ICCP chunks from a WebP file in place and
 * clears their flags in the VP8X header; returns the new length, 0 if the
 * container is not as the WebP spec says (RIFF "WEBP", then chunks of
 * FourCC, little-endian size, payload padded to even). libvips 8.14's
 * webpsave writes an EXIF chunk even with strip set, so the promise "no
 * metadata" is kept here, on the bytes that leave.
 */
static size_t webp_strip_metadata(unsigned char *buf, size_t len)
{
    if (len < 12 || memcmp(buf, "RIFF", 4) != 0 || memcmp(buf + 8, "WEBP", 4) != 0 ||
        le32(buf + 4) != len - 8)
        return 0;
    size_t in = 12, out = 12;
    while (in < len) {
        if (len - in < 8) return 0;
        uint32_t size = le32(buf + in + 4);
        size_t whole = 8 + (size_t)size + (size & 1);
        if (whole > len - in) return 0;
        bool drop = memcmp(buf + in, "EXIF", 4) == 0 || memcmp(buf + in, "XMP ", 4) == 0 ||
                    memcmp(buf + in, "ICCP", 4) == 0;
        if (memcmp(buf + in, "VP8X", 4) == 0 && size >= 1)
            buf[in + 8] &= (unsigned char)~(0x20 | 0x08 | 0x04); /* ICC, EXIF, XMP flags */
        if (!drop) {
            memmove(buf + out, buf + in, whole);
            out += whole;
        }
        in += whole;
    }
    put_le32(buf + 4, (uint32_t)(out - 8));
    return out;
}

/* Encodes img as WebP, without metadata, into a malloc'd buffer. */
static int save_webp(VipsImage *img, unsigned char **out, size_t *out_len)
{
    void *buf = NULL;
    size_t n = 0;
    if (vips_webpsave_buffer(img, &buf, &n, "Q", WEBP_QUALITY, "strip", TRUE, NULL) != 0) return -1;
    size_t kept = webp_strip_metadata(buf, n);
    if (kept == 0) {
        g_free(buf);
        vips_error("avatar", "libvips wrote a WebP file we cannot read back");
        return -1;
    }
    *out = xmalloc(kept);
    memcpy(*out, buf, kept);
    *out_len = kept;
    g_free(buf);
    return 0;
}

/*
 * A copy of in that carries its pixels and nothing else: 8-bit sRGB (or
 * grey), no EXIF, XMP, IPTC, ICC or any other field. webpsave's "strip"
 * alone is not enough: libvips 8.14 still writes the EXIF block it
 * rebuilds from the image's fields. Rebuilding the image from raw memory is
 * certain, and at 256 x 256 costs nothing.
 */
static int pixels_only(VipsImage *in, VipsImage **out)
{
    VipsImage *conv = NULL, *bare = NULL;
    int rc = -1;
    VipsInterpretation interp = vips_image_get_interpretation(in);
    if (interp == VIPS_INTERPRETATION_GREY16 || interp == VIPS_INTERPRETATION_B_W) {
        if (vips_colourspace(in, &conv, VIPS_INTERPRETATION_B_W, NULL) != 0) goto out;
        interp = VIPS_INTERPRETATION_B_W;
    } else {
        if (vips_colourspace(in, &conv, VIPS_INTERPRETATION_sRGB, NULL) != 0) goto out;
        interp = VIPS_INTERPRETATION_sRGB;
    }
    if (vips_image_get_format(conv) != VIPS_FORMAT_UCHAR) {
        VipsImage *u;
        if (vips_cast_uchar(conv, &u, NULL) != 0) goto out;
        g_object_unref(conv);
        conv = u;
    }
    size_t size = 0;
    void *mem = vips_image_write_to_memory(conv, &size);
    if (!mem) goto out;
    bare = vips_image_new_from_memory_copy(mem, size, vips_image_get_width(conv),
                                           vips_image_get_height(conv), vips_image_get_bands(conv),
                                           VIPS_FORMAT_UCHAR);
    g_free(mem);
    if (!bare || vips_copy(bare, out, "interpretation", interp, NULL) != 0) goto out;
    rc = 0;
out:
    if (bare) g_object_unref(bare);
    if (conv) g_object_unref(conv);
    return rc;
}

static int square_thumbnail(VipsImage *in, int size, VipsImage **out)
{
    /* no_rotate: the input is already upright (made by the first pass). */
    return vips_thumbnail_image(in, out, size, "height", size, "crop", VIPS_INTERESTING_CENTRE,
                                "size", VIPS_SIZE_BOTH, "no_rotate", TRUE, NULL);
}

int media_avatar_process(const void *data, size_t len, const struct media_avatar_limits *limits,
                         struct media_avatar *out, struct echo_err *err)
{
    memset(out, 0, sizeof(*out));
    size_t max_bytes =
        limits && limits->max_bytes ? limits->max_bytes : MEDIA_AVATAR_MAX_BYTES_DEFAULT;
    uint64_t max_pixels =
        limits && limits->max_pixels ? limits->max_pixels : MEDIA_AVATAR_MAX_PIXELS_DEFAULT;
    VipsImage *hdr = NULL, *thumb = NULL, *large = NULL, *small = NULL, *bare = NULL;
    char verr[400];
    int rc;

    if (!data || len == 0) {
        echo_err_set(err, "The file is empty; please upload a JPEG, PNG, WebP or GIF picture.");
        return MEDIA_ERR_NOT_IMAGE;
    }
    if (len > max_bytes) {
        char got[32], lim[32];
        format_bytes(got, sizeof(got), (double)len);
        format_bytes(lim, sizeof(lim), (double)max_bytes);
        echo_err_set(err, "The picture is too big (%s); the limit is %s.", got, lim);
        return MEDIA_ERR_TOO_BIG;
    }
    if ((rc = media_init(err)) != MEDIA_OK) return rc;

    const char *loader = vips_foreign_find_load_buffer(data, len);
    if (!loader) {
        vips_error_clear();
        echo_err_set(err, "This file is not a picture; please upload a JPEG, PNG, WebP or GIF.");
        return MEDIA_ERR_NOT_IMAGE;
    }
    const char *format = accepted_format(loader, err);
    if (!format) return MEDIA_ERR_UNSUPPORTED;

    if (open_header(format, data, len, &hdr) != 0) {
        media_vips_error(verr, sizeof(verr));
        log_info("avatar: unreadable %s header: %s", format, verr);
        echo_err_set(err, "The picture is damaged or incomplete; please upload it again.");
        return MEDIA_ERR_CORRUPT;
    }
    /* A multi-frame GIF reports the height of all frames; we keep the first. */
    uint64_t w = (uint64_t)vips_image_get_width(hdr);
    uint64_t h = (uint64_t)vips_image_get_page_height(hdr);
    bool swap = vips_image_get_orientation_swap(hdr);
    g_object_unref(hdr);
    hdr = NULL;
    if (w == 0 || h == 0) {
        echo_err_set(err, "The picture is damaged or incomplete; please upload it again.");
        return MEDIA_ERR_CORRUPT;
    }
    if (w * h > max_pixels) {
        echo_err_set(err,
                     "The picture has too many pixels (%llu x %llu, %.1f megapixels); the limit is "
                     "%.1f megapixels.",
                     (unsigned long long)w, (unsigned long long)h, (double)(w * h) / 1e6,
                     (double)max_pixels / 1e6);
        return MEDIA_ERR_TOO_MANY_PIXELS;
    }
    if (w > h * MEDIA_AVATAR_MAX_ASPECT || h > w * MEDIA_AVATAR_MAX_ASPECT) {
        echo_err_set(err,
                     "The picture is too narrow or too wide (%llu x %llu pixels) to make a square "
                     "profile picture of.",
                     (unsigned long long)w, (unsigned long long)h);
        return MEDIA_ERR_BAD_SHAPE;
    }

    /* The loader options ride along so the decode fails on damage; the same
     * sniffing picks the same (allowed) loader as above. */
    if (vips_thumbnail_buffer((void *)data, len, &thumb, MEDIA_AVATAR_LARGE, "height",
                              MEDIA_AVATAR_LARGE, "crop", VIPS_INTERESTING_CENTRE, "size",
                              VIPS_SIZE_BOTH, "option_string", "fail_on=error", NULL) != 0 ||
        !(bare = vips_image_copy_memory(thumb)) || pixels_only(bare, &large) != 0) {
        media_vips_error(verr, sizeof(verr));
        log_info("avatar: cannot decode %s (%llux%llu): %s", format, (unsigned long long)w,
                 (unsigned long long)h, verr);
        echo_err_set(err, "The picture is damaged or incomplete; please upload it again.");
        rc = MEDIA_ERR_CORRUPT;
        goto fail;
    }
    if (vips_image_get_width(large) != MEDIA_AVATAR_LARGE ||
        vips_image_get_height(large) != MEDIA_AVATAR_LARGE) {
        echo_err_set(err, "The picture could not be resized (got %d x %d).",
                     vips_image_get_width(large), vips_image_get_height(large));
        rc = MEDIA_ERR_INTERNAL;
        goto fail;
    }
    if (save_webp(large, &out->large, &out->large_len) != 0 ||
        square_thumbnail(large, MEDIA_AVATAR_SMALL, &small) != 0 ||
        save_webp(small, &out->small, &out->small_len) != 0) {
        media_vips_error(verr, sizeof(verr));
        log_error("avatar: cannot encode the thumbnails: %s", verr);
        echo_err_set(err, "The picture could not be converted; please try another one.");
        rc = MEDIA_ERR_INTERNAL;
        goto fail;
    }
    g_object_unref(small);
    g_object_unref(large);
    g_object_unref(bare);
    g_object_unref(thumb);
    out->format = format;
    out->width = (int)(swap ? h : w);
    out->height = (int)(swap ? w : h);
    return MEDIA_OK;

fail:
    if (small) g_object_unref(small);
    if (large) g_object_unref(large);
    if (bare) g_object_unref(bare);
    if (thumb) g_object_unref(thumb);
    media_avatar_deinit(out);
    return rc;
}

void media_avatar_deinit(struct media_avatar *a)
{
    if (!a) return;
    free(a->large);
    free(a->small);
    memset(a, 0, sizeof(*a));
}

bool media_avatar_id_valid(const char *id)
{
    if (!id) return false;
    size_t n = strlen(id);
    if (n == 0 || n > 64) return false;
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return false;
    }
    return true;
}

static char *avatar_path(const char *dir, const char *id, int size, const char *suffix)
{
    size_t n = strlen(dir) + strlen(id) + strlen(suffix) + 32;
    char *p = xmalloc(n);
    snprintf(p, n, "%s/%s-%d.webp%s", dir, id, size, suffix);
    return p;
}

/* Makes the durable record of the renames: without it a crash can forget them. */
static void sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) != 0)
        log_warn("avatar: cannot sync folder %s: %s", dir, strerror(errno));
    if (fd >= 0) close(fd);
}

int media_avatar_store(const struct media_avatar *a, const char *dir, const char *id,
                       struct echo_err *err)
{
    if (!a || !a->large || !a->small || !dir || !dir[0]) {
        echo_err_set(err, "no processed picture or folder to store it in");
        return MEDIA_ERR_INVALID;
    }
    if (!media_avatar_id_valid(id)) {
        echo_err_set(err, "invalid picture id (1 to 64 letters, digits, '-' or '_')");
        return MEDIA_ERR_INVALID;
    }
    /* Temporary names unique to this call, so two uploads for the same id
     * at once cannot write into each other's files. */
    static atomic_ulong seq;
    char suffix[64];
    snprintf(suffix, sizeof(suffix), ".new-%ld-%lu", (long)getpid(),
             (unsigned long)atomic_fetch_add(&seq, 1));
    char *tmp_l = avatar_path(dir, id, MEDIA_AVATAR_LARGE, suffix);
    char *tmp_s = avatar_path(dir, id, MEDIA_AVATAR_SMALL, suffix);
    char *fin_l = avatar_path(dir, id, MEDIA_AVATAR_LARGE, "");
    char *fin_s = avatar_path(dir, id, MEDIA_AVATAR_SMALL, "");
    int rc = MEDIA_ERR_IO;
    bool large_placed = false;

    if (file_write_atomic(tmp_l, a->large, a->large_len, 0644, err) != 0 ||
        file_write_atomic(tmp_s, a->small, a->small_len, 0644, err) != 0)
        goto out;
    if (rename(tmp_l, fin_l) != 0) {
        echo_err_set(err, "cannot rename %s to %s: %s", tmp_l, fin_l, strerror(errno));
        goto out;
    }
    large_placed = true;
    if (rename(tmp_s, fin_s) != 0) {
        echo_err_set(err, "cannot rename %s to %s: %s", tmp_s, fin_s, strerror(errno));
        /* Leave no half-stored avatar: the new large file goes too. */
        unlink(fin_l);
        goto out;
    }
    sync_dir(dir);
    rc = MEDIA_OK;
out:
    if (rc != MEDIA_OK) {
        unlink(tmp_l);
        unlink(tmp_s);
        if (large_placed) sync_dir(dir);
    }
    free(tmp_l);
    free(tmp_s);
    free(fin_l);
    free(fin_s);
    return rc;
}

int media_avatar_remove(const char *dir, const char *id, struct echo_err *err)
{
    if (!dir || !media_avatar_id_valid(id)) {
        echo_err_set(err, "invalid picture id (1 to 64 letters, digits, '-' or '_')");
        return MEDIA_ERR_INVALID;
    }
    int rc = MEDIA_OK;
    const int sizes[2] = {MEDIA_AVATAR_LARGE, MEDIA_AVATAR_SMALL};
    for (int i = 0; i < 2; i++) {
        char *p = avatar_path(dir, id, sizes[i], "");
        if (unlink(p) != 0 && errno != ENOENT) {
            echo_err_set(err, "cannot delete %s: %s", p, strerror(errno));
            rc = MEDIA_ERR_IO;
        }
        free(p);
    }
    return rc;
}
