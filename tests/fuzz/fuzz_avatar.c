/*
 * fuzz_avatar.c - libFuzzer target for the untrusted-input paths of the
 * media layer: upload bytes through the avatar pipeline (sniffing, header
 * checks, decoding with fail-on-error, thumbnails, WebP re-encoding and the
 * metadata stripping of the WebP container), and the same bytes as a
 * username through the default-avatar SVG.
 *
 * Limits are low (256 KB, 0.25 megapixels) so each run stays fast; the
 * checks that matter do not depend on size. Invariants: a refusal leaves
 * no output and says why; an acceptance yields two WebP files of RIFF form
 * without EXIF, XMP or ICC chunks; the SVG is valid UTF-8.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "media/media.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    log_set_level(LOG_ERROR); /* refusals are logged at info level */
    return media_init(NULL) == MEDIA_OK ? 0 : 1;
}

/* Walks the RIFF chunks of a WebP file; false if malformed or if a metadata
 * chunk is present. */
static bool webp_clean(const unsigned char *p, size_t n)
{
    if (n < 12 || memcmp(p, "RIFF", 4) != 0 || memcmp(p + 8, "WEBP", 4) != 0) return false;
    size_t i = 12;
    while (i + 8 <= n) {
        if (!memcmp(p + i, "EXIF", 4) || !memcmp(p + i, "XMP ", 4) || !memcmp(p + i, "ICCP", 4))
            return false;
        size_t len = (size_t)p[i + 4] | (size_t)p[i + 5] << 8 | (size_t)p[i + 6] << 16 |
                     (size_t)p[i + 7] << 24;
        i += 8 + len + (len & 1);
    }
    return i == n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct media_avatar_limits lim = {.max_bytes = 256 * 1024, .max_pixels = 250000};
    struct media_avatar a;
    struct echo_err err = {0};
    int rc = media_avatar_process(data, size, &lim, &a, &err);
    if (rc == MEDIA_OK) {
        if (!a.large || !a.small || !a.format || a.width < 1 || a.height < 1 ||
            (uint64_t)a.width * (uint64_t)a.height > lim.max_pixels ||
            !webp_clean(a.large, a.large_len) || !webp_clean(a.small, a.small_len))
            abort();
    } else {
        if (a.large || a.small || !err.msg[0] || rc < MEDIA_ERR_INTERNAL) abort();
    }
    media_avatar_deinit(&a);

    /* The same bytes as a username. */
    if (size <= 256) {
        char name[257];
        memcpy(name, data, size);
        name[size] = 0;
        struct strbuf sb;
        strbuf_init(&sb);
        if (media_identicon_svg(name, 64, &sb, NULL) != MEDIA_OK || !utf8_valid(sb.data, sb.len))
            abort();
        strbuf_deinit(&sb);
    }
    return 0;
}
