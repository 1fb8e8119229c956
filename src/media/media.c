/*
 * media.c - the layer's libvips set-up and shared status names, and the SVG
 * to PNG rasteriser used for chart downloads.
 *
 * libvips is started once per process. Its operation cache is turned off:
 * a server decodes each upload once, and caching operations keyed on
 * buffers of untrusted bytes buys nothing but memory. One worker thread per
 * pipeline keeps the memory and CPU of one upload predictable while the
 * HTTP threads give the parallelism.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <vips/vips.h>

#include "media/media.h"
#include "media/media_internal.h"

static pthread_once_t vips_once = PTHREAD_ONCE_INIT;
static char vips_init_error[256];

/* libvips reports recoverable oddities ("error in tile", fallbacks) through
 * GLib warnings on stderr; in a server they belong in the debug log, since
 * the failure that matters comes back as an error value anyway. */
static void vips_log_handler(const gchar *domain, GLogLevelFlags level, const gchar *message,
                             gpointer data)
{
    (void)level;
    (void)data;
    log_debug("%s: %s", domain ? domain : "vips", message ? message : "");
}

static void vips_start(void)
{
    if (VIPS_INIT("echo") != 0) {
        char *e = vips_error_buffer_copy();
        snprintf(vips_init_error, sizeof(vips_init_error), "cannot start libvips: %s",
                 e && e[0] ? e : "unknown error");
        g_free(e);
        return;
    }
    vips_cache_set_max(0);
    vips_cache_set_max_mem(0);
    vips_cache_set_max_files(0);
    vips_concurrency_set(1);
    g_log_set_handler("VIPS", G_LOG_LEVEL_WARNING | G_LOG_LEVEL_MESSAGE | G_LOG_LEVEL_INFO,
                      vips_log_handler, NULL);
}

int media_init(struct echo_err *err)
{
    pthread_once(&vips_once, vips_start);
    if (vips_init_error[0]) {
        echo_err_set(err, "%s", vips_init_error);
        return MEDIA_ERR_INTERNAL;
    }
    return MEDIA_OK;
}

void media_vips_error(char *buf, size_t size)
{
    char *e = vips_error_buffer_copy();
    size_t n = e ? strlen(e) : 0;
    while (n > 0 && (e[n - 1] == '\n' || e[n - 1] == ' '))
        e[--n] = 0;
    snprintf(buf, size, "%s", n > 0 ? e : "unknown error");
    g_free(e);
}

const char *media_status_name(int status)
{
    switch (status) {
    case MEDIA_OK:
        return "ok";
    case MEDIA_ERR_NOT_IMAGE:
        return "not an image";
    case MEDIA_ERR_UNSUPPORTED:
        return "unsupported format";
    case MEDIA_ERR_TOO_BIG:
        return "too big";
    case MEDIA_ERR_TOO_MANY_PIXELS:
        return "too many pixels";
    case MEDIA_ERR_BAD_SHAPE:
        return "bad shape";
    case MEDIA_ERR_CORRUPT:
        return "corrupt";
    case MEDIA_ERR_IO:
        return "i/o error";
    case MEDIA_ERR_INVALID:
        return "invalid argument";
    case MEDIA_ERR_INTERNAL:
        return "internal error";
    default:
        return "unknown status";
    }
}

int media_svg_to_png(const char *svg, size_t len, double scale, unsigned char **png,
                     size_t *png_len, struct echo_err *err)
{
    *png = NULL;
    *png_len = 0;
    if (!svg || len == 0 || !(scale > 0 && scale <= 4)) {
        echo_err_set(err, "an SVG and a scale between 0 and 4 are needed");
        return MEDIA_ERR_INVALID;
    }
    int rc = media_init(err);
    if (rc != MEDIA_OK) return rc;
    VipsImage *img = NULL;
    void *buf = NULL;
    size_t n = 0;
    if (vips_svgload_buffer((void *)svg, len, &img, "scale", scale, "unlimited", FALSE, NULL) !=
            0 ||
        vips_pngsave_buffer(img, &buf, &n, "compression", 6, "strip", TRUE, NULL) != 0) {
        char e[400];
        media_vips_error(e, sizeof(e));
        echo_err_set(err, "cannot render the SVG: %s", e);
        if (img) g_object_unref(img);
        return MEDIA_ERR_INVALID;
    }
    g_object_unref(img);
    /* Hand over a malloc'd copy so the caller frees with free(), not g_free. */
    *png = xmalloc(n);
    memcpy(*png, buf, n);
    *png_len = n;
    g_free(buf);
    return MEDIA_OK;
}
