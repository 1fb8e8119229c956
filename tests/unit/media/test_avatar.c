/*
 * test_avatar.c - the profile picture pipeline on real pictures the test
 * makes with libvips (JPEG, PNG, WebP, GIF, a JPEG with EXIF orientation 6,
 * RGBA and 16-bit PNGs, an animated GIF) and on bad files: zero bytes, text,
 * random bytes, a truncated JPEG and PNG, SVG, TIFF and PDF (which libvips
 * could open but we refuse), 5 MB + 1 byte, a 20000 x 20000 PNG and GIF
 * (decompression bombs of a few KB), a 2000 x 10 strip. Outputs are decoded
 * back: WebP, 256 and 64 px squares, no EXIF/XMP/ICC. Storing writes both
 * files or none. Also: several threads at once, and the time one upload takes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <vips/vips.h>

#include "media/media.h"

/* fontconfig (pulled in by libvips' SVG loader) keeps its data until exit. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
    return "leak:libfontconfig.so\n";
}

struct blob {
    void *data;
    size_t len;
};

static void blob_free(struct blob *b)
{
    g_free(b->data);
    b->data = NULL;
    b->len = 0;
}

/* An RGB picture: red grows left to right, green top to bottom. */
static VipsImage *gradient(int w, int h)
{
    VipsImage *xy, *x, *y, *r, *g, *b, *rgb, *out;
    assert_int_equal(vips_xyz(&xy, w, h, NULL), 0);
    assert_int_equal(vips_extract_band(xy, &x, 0, NULL), 0);
    assert_int_equal(vips_extract_band(xy, &y, 1, NULL), 0);
    assert_int_equal(vips_linear1(x, &r, 255.0 / w, 0, "uchar", TRUE, NULL), 0);
    assert_int_equal(vips_linear1(y, &g, 255.0 / h, 0, "uchar", TRUE, NULL), 0);
    assert_int_equal(vips_linear1(x, &b, 0, 128, "uchar", TRUE, NULL), 0);
    VipsImage *bands[3] = {r, g, b};
    assert_int_equal(vips_bandjoin(bands, &rgb, 3, NULL), 0);
    assert_int_equal(vips_copy(rgb, &out, "interpretation", VIPS_INTERPRETATION_sRGB, NULL), 0);
    g_object_unref(xy);
    g_object_unref(x);
    g_object_unref(y);
    g_object_unref(r);
    g_object_unref(g);
    g_object_unref(b);
    g_object_unref(rgb);
    return out;
}

/* Left half white, right half black (to see rotations). */
static VipsImage *halves(int w, int h)
{
    VipsImage *black, *rgb, *mem;
    assert_int_equal(vips_black(&black, w, h, "bands", 3, NULL), 0);
    assert_int_equal(vips_copy(black, &rgb, "interpretation", VIPS_INTERPRETATION_sRGB, NULL), 0);
    VipsImage *u;
    assert_int_equal(vips_cast_uchar(rgb, &u, NULL), 0);
    mem = vips_image_copy_memory(u);
    assert_non_null(mem);
    double white[3] = {255, 255, 255};
    assert_int_equal(vips_draw_rect(mem, white, 3, 0, 0, w / 2, h, "fill", TRUE, NULL), 0);
    g_object_unref(black);
    g_object_unref(rgb);
    g_object_unref(u);
    return mem;
}

static struct blob save(VipsImage *img, const char *format)
{
    struct blob b = {0};
    int rc = -1;
    if (strcmp(format, "jpeg") == 0)
        rc = vips_jpegsave_buffer(img, &b.data, &b.len, "Q", 90, NULL);
    else if (strcmp(format, "png") == 0)
        rc = vips_pngsave_buffer(img, &b.data, &b.len, NULL);
    else if (strcmp(format, "webp") == 0)
        rc = vips_webpsave_buffer(img, &b.data, &b.len, NULL);
    else if (strcmp(format, "gif") == 0)
        rc = vips_gifsave_buffer(img, &b.data, &b.len, NULL);
    else if (strcmp(format, "tiff") == 0)
        rc = vips_tiffsave_buffer(img, &b.data, &b.len, NULL);
    if (rc != 0) fail_msg("cannot save a %s test picture: %s", format, vips_error_buffer());
    return b;
}

static double pixel(VipsImage *img, int x, int y, int band)
{
    double *v = NULL;
    int n = 0;
    assert_int_equal(vips_getpoint(img, &v, &n, x, y, NULL), 0);
    assert_true(band < n);
    double r = v[band];
    g_free(v);
    return r;
}

/* Decodes one output and checks it is a size x size WebP without metadata. */
static VipsImage *check_webp(const unsigned char *data, size_t len, int size)
{
    assert_true(len > 12);
    assert_memory_equal(data, "RIFF", 4);
    assert_memory_equal(data + 8, "WEBP", 4);
    VipsImage *img = NULL;
    assert_int_equal(vips_webpload_buffer((void *)data, len, &img, NULL), 0);
    assert_int_equal(vips_image_get_width(img), size);
    assert_int_equal(vips_image_get_height(img), size);
    assert_int_equal(vips_image_get_typeof(img, VIPS_META_EXIF_NAME), 0);
    assert_int_equal(vips_image_get_typeof(img, VIPS_META_XMP_NAME), 0);
    assert_int_equal(vips_image_get_typeof(img, VIPS_META_ICC_NAME), 0);
    return img;
}

static int process(const struct blob *b, struct media_avatar *a, struct echo_err *err)
{
    return media_avatar_process(b->data, b->len, NULL, a, err);
}

static void expect_refusal(const void *data, size_t len, int status, const char *words)
{
    struct media_avatar a;
    struct echo_err err = {0};
    int rc = media_avatar_process(data, len, NULL, &a, &err);
    if (rc != status)
        fail_msg("expected %s, got %s (%s)", media_status_name(status), media_status_name(rc),
                 err.msg);
    assert_null(a.large);
    assert_null(a.small);
    if (words && !strstr(err.msg, words))
        fail_msg("message \"%s\" does not say \"%s\"", err.msg, words);
}

static void test_accepted_formats(void **state)
{
    (void)state;
    const char *formats[] = {"jpeg", "png", "webp", "gif"};
    VipsImage *src = gradient(400, 300);
    for (size_t i = 0; i < 4; i++) {
        struct blob b = save(src, formats[i]);
        struct media_avatar a;
        struct echo_err err = {0};
        int rc = process(&b, &a, &err);
        if (rc != MEDIA_OK) fail_msg("%s refused: %s", formats[i], err.msg);
        assert_string_equal(a.format, formats[i]);
        assert_int_equal(a.width, 400);
        assert_int_equal(a.height, 300);
        VipsImage *large = check_webp(a.large, a.large_len, MEDIA_AVATAR_LARGE);
        VipsImage *small = check_webp(a.small, a.small_len, MEDIA_AVATAR_SMALL);
        /* A centre crop of the gradient: red rises left to right, green top
         * to bottom, and the crop's middle is the picture's middle. */
        assert_true(pixel(large, 240, 128, 0) > pixel(large, 15, 128, 0) + 60);
        assert_true(pixel(large, 128, 240, 1) > pixel(large, 128, 15, 1) + 100);
        assert_true(fabs(pixel(large, 128, 128, 0) - 127) < 20);
        assert_true(fabs(pixel(small, 32, 32, 1) - 127) < 20);
        g_object_unref(large);
        g_object_unref(small);
        media_avatar_deinit(&a);
        blob_free(&b);
    }
    g_object_unref(src);
}

static void test_exif_orientation(void **state)
{
    (void)state;
    /* Stored 200 x 100, left half white; orientation 6 means "turn 90
     * degrees clockwise to view", so upright it is 100 x 200, white on top. */
    VipsImage *src = halves(200, 100), *tagged;
    assert_int_equal(vips_copy(src, &tagged, NULL), 0);
    vips_image_set_int(tagged, VIPS_META_ORIENTATION, 6);
    struct blob b = save(tagged, "jpeg");
    VipsImage *check = NULL;
    assert_int_equal(vips_jpegload_buffer(b.data, b.len, &check, NULL), 0);
    assert_int_equal(vips_image_get_orientation(check), 6); /* the test file is what we think */
    g_object_unref(check);

    struct media_avatar a;
    struct echo_err err = {0};
    assert_int_equal(process(&b, &a, &err), MEDIA_OK);
    assert_int_equal(a.width, 100);
    assert_int_equal(a.height, 200);
    VipsImage *large = check_webp(a.large, a.large_len, MEDIA_AVATAR_LARGE);
    assert_true(pixel(large, 128, 20, 0) > 200);                                /* top: white */
    assert_true(pixel(large, 128, 235, 0) < 50);                                /* bottom: black */
    assert_true(fabs(pixel(large, 20, 60, 0) - pixel(large, 235, 60, 0)) < 30); /* not sideways */
    /* The orientation tag is gone with the EXIF block: a viewer will not turn it again. */
    assert_int_equal(vips_image_get_orientation(large), 1);
    g_object_unref(large);
    media_avatar_deinit(&a);
    blob_free(&b);
    g_object_unref(tagged);
    g_object_unref(src);
}

static void test_alpha_and_16_bit(void **state)
{
    (void)state;
    VipsImage *src = gradient(120, 80), *alpha, *rgba, *grey16, *g16;
    assert_int_equal(vips_bandjoin_const1(src, &rgba, 128, NULL), 0);
    struct blob b = save(rgba, "png");
    struct media_avatar a;
    assert_int_equal(process(&b, &a, NULL), MEDIA_OK);
    VipsImage *large = check_webp(a.large, a.large_len, MEDIA_AVATAR_LARGE);
    assert_int_equal(vips_image_get_bands(large), 4);
    assert_true(fabs(pixel(large, 128, 128, 3) - 128) < 3);
    g_object_unref(large);
    media_avatar_deinit(&a);
    blob_free(&b);

    /* 16-bit grey at half scale must come out mid grey, not clipped white. */
    assert_int_equal(vips_black(&alpha, 100, 100, NULL), 0);
    assert_int_equal(vips_linear1(alpha, &grey16, 1, 32768, NULL), 0);
    assert_int_equal(vips_cast_ushort(grey16, &g16, NULL), 0);
    VipsImage *tagged;
    assert_int_equal(vips_copy(g16, &tagged, "interpretation", VIPS_INTERPRETATION_GREY16, NULL),
                     0);
    b = save(tagged, "png");
    assert_int_equal(process(&b, &a, NULL), MEDIA_OK);
    large = check_webp(a.large, a.large_len, MEDIA_AVATAR_LARGE);
    assert_true(fabs(pixel(large, 128, 128, 0) - 128) < 8);
    g_object_unref(large);
    media_avatar_deinit(&a);
    blob_free(&b);
    g_object_unref(tagged);
    g_object_unref(g16);
    g_object_unref(grey16);
    g_object_unref(alpha);
    g_object_unref(rgba);
    g_object_unref(src);
}

static void test_gif_first_frame(void **state)
{
    (void)state;
    /* Three 60 x 60 frames stacked: red, then blue, blue. */
    VipsImage *frames[3], *strip, *tagged;
    double red[3] = {255, 0, 0}, blue[3] = {0, 0, 255};
    for (int i = 0; i < 3; i++) {
        VipsImage *black, *rgb;
        assert_int_equal(vips_black(&black, 60, 60, "bands", 3, NULL), 0);
        assert_int_equal(vips_linear(black, &rgb, (double[]){1, 1, 1}, i == 0 ? red : blue, 3,
                                     "uchar", TRUE, NULL),
                         0);
        assert_int_equal(
            vips_copy(rgb, &frames[i], "interpretation", VIPS_INTERPRETATION_sRGB, NULL), 0);
        g_object_unref(black);
        g_object_unref(rgb);
    }
    assert_int_equal(vips_arrayjoin(frames, &strip, 3, "across", 1, NULL), 0);
    assert_int_equal(vips_copy(strip, &tagged, NULL), 0);
    vips_image_set_int(tagged, VIPS_META_PAGE_HEIGHT, 60);
    vips_image_set_int(tagged, VIPS_META_N_PAGES, 3);
    struct blob b = save(tagged, "gif");
    struct media_avatar a;
    struct echo_err err = {0};
    assert_int_equal(process(&b, &a, &err), MEDIA_OK);
    assert_string_equal(a.format, "gif");
    assert_int_equal(a.width, 60);
    assert_int_equal(a.height, 60);
    VipsImage *large = check_webp(a.large, a.large_len, MEDIA_AVATAR_LARGE);
    assert_true(pixel(large, 128, 128, 0) > 200);
    assert_true(pixel(large, 128, 128, 2) < 60);
    g_object_unref(large);
    media_avatar_deinit(&a);
    blob_free(&b);
    g_object_unref(tagged);
    g_object_unref(strip);
    for (int i = 0; i < 3; i++)
        g_object_unref(frames[i]);
}

static void test_not_images(void **state)
{
    (void)state;
    expect_refusal("", 0, MEDIA_ERR_NOT_IMAGE, "empty");
    expect_refusal(NULL, 0, MEDIA_ERR_NOT_IMAGE, "empty");
    const char text[] = "hello, I am a text file renamed to picture.png\n";
    expect_refusal(text, sizeof(text) - 1, MEDIA_ERR_NOT_IMAGE, "not a picture");
    unsigned char noise[4096];
    unsigned seed = 99;
    for (size_t i = 0; i < sizeof(noise); i++) {
        seed = seed * 1103515245u + 12345u;
        noise[i] = (unsigned char)(seed >> 16);
    }
    expect_refusal(noise, sizeof(noise), MEDIA_ERR_NOT_IMAGE, "not a picture");
    /* Magic numbers alone are not pictures. */
    expect_refusal("\x89PNG\r\n\x1a\n", 8, MEDIA_ERR_CORRUPT, "damaged");
    expect_refusal("\xff\xd8\xff", 3, MEDIA_ERR_CORRUPT, NULL);
}

static void test_unsupported_formats(void **state)
{
    (void)state;
    const char svg[] = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"300\" height=\"300\">"
                       "<rect width=\"300\" height=\"300\" fill=\"red\"/></svg>";
    expect_refusal(svg, sizeof(svg) - 1, MEDIA_ERR_UNSUPPORTED, "SVG pictures are not accepted");
    VipsImage *src = gradient(50, 50);
    struct blob tiff = save(src, "tiff");
    expect_refusal(tiff.data, tiff.len, MEDIA_ERR_UNSUPPORTED, "TIFF");
    blob_free(&tiff);
    g_object_unref(src);
    const char pdf[] = "%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
                       "2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\ntrailer << /Root 1 "
                       "0 R >>\n%%EOF\n";
    expect_refusal(pdf, sizeof(pdf) - 1, MEDIA_ERR_UNSUPPORTED, "PDF");
}

static void test_truncated(void **state)
{
    (void)state;
    VipsImage *src = gradient(400, 300);
    struct blob jpeg = save(src, "jpeg"), png = save(src, "png");
    /* Cut in the middle of the entropy-coded data / of the IDAT stream. */
    expect_refusal(jpeg.data, jpeg.len / 2, MEDIA_ERR_CORRUPT, "damaged or incomplete");
    expect_refusal(png.data, png.len / 2, MEDIA_ERR_CORRUPT, "damaged or incomplete");
    expect_refusal(png.data, 40, MEDIA_ERR_CORRUPT, NULL);
    /* A damaged frame header (SOF0 with a bogus length): refused as damaged. */
    unsigned char *bad = malloc(jpeg.len);
    memcpy(bad, jpeg.data, jpeg.len);
    unsigned char *sof = memmem(bad, jpeg.len, "\xff\xc0", 2);
    assert_non_null(sof);
    sof[2] = 0, sof[3] = 1;
    expect_refusal(bad, jpeg.len, MEDIA_ERR_CORRUPT, "damaged");
    free(bad);
    blob_free(&jpeg);
    blob_free(&png);
    g_object_unref(src);
}

static void test_too_big(void **state)
{
    (void)state;
    size_t n = MEDIA_AVATAR_MAX_BYTES_DEFAULT + 1;
    unsigned char *big = calloc(1, n);
    memcpy(big, "\xff\xd8\xff\xe0", 4);
    expect_refusal(big, n, MEDIA_ERR_TOO_BIG, "the limit is 5.0 MB");
    free(big);

    /* A configured limit: exactly the limit passes, one byte less does not. */
    VipsImage *src = gradient(64, 64);
    struct blob png = save(src, "png");
    struct media_avatar a;
    struct media_avatar_limits lim = {.max_bytes = png.len};
    assert_int_equal(media_avatar_process(png.data, png.len, &lim, &a, NULL), MEDIA_OK);
    media_avatar_deinit(&a);
    lim.max_bytes = png.len - 1;
    assert_int_equal(media_avatar_process(png.data, png.len, &lim, &a, NULL), MEDIA_ERR_TOO_BIG);
    blob_free(&png);
    g_object_unref(src);
}

static void test_pixel_bombs(void **state)
{
    (void)state;
    /* 20000 x 20000 black at 1 bit per pixel: about 50 KB of PNG that would
     * be 1.2 GB of RGB once decoded. libvips streams the writing. */
    VipsImage *black, *u;
    assert_int_equal(vips_black(&black, 20000, 20000, NULL), 0);
    assert_int_equal(vips_cast_uchar(black, &u, NULL), 0);
    struct blob bomb = {0};
    assert_int_equal(
        vips_pngsave_buffer(u, &bomb.data, &bomb.len, "bitdepth", 1, "compression", 9, NULL), 0);
    assert_true(bomb.len < 100000);
    uint64_t t0 = time_mono_ns();
    expect_refusal(bomb.data, bomb.len, MEDIA_ERR_TOO_MANY_PIXELS, "20000 x 20000");
    printf("# refusing a %zu-byte 20000x20000 PNG took %.2f ms\n", bomb.len,
           (time_mono_ns() - t0) / 1e6);
    blob_free(&bomb);
    g_object_unref(u);
    g_object_unref(black);

    /* A GIF whose one frame claims 20000 x 20000, in 32 bytes. */
    static const unsigned char gif[] = {'G',  'I',  'F',  '8',  '9',  'a',  0x20, 0x4e, 0x20,
                                        0x4e, 0x80, 0,    0,    0,    0,    0,    0xff, 0xff,
                                        0xff, 0x2c, 0,    0,    0,    0,    0x20, 0x4e, 0x20,
                                        0x4e, 0,    0x02, 0x02, 0x44, 0x01, 0,    0x3b};
    expect_refusal(gif, sizeof(gif), MEDIA_ERR_TOO_MANY_PIXELS, "megapixels");

    /* The limit is configurable and exact. */
    VipsImage *src = gradient(1000, 1000);
    struct blob png = save(src, "png");
    struct media_avatar a;
    struct media_avatar_limits lim = {.max_pixels = 999999};
    assert_int_equal(media_avatar_process(png.data, png.len, &lim, &a, NULL),
                     MEDIA_ERR_TOO_MANY_PIXELS);
    lim.max_pixels = 1000000;
    assert_int_equal(media_avatar_process(png.data, png.len, &lim, &a, NULL), MEDIA_OK);
    media_avatar_deinit(&a);
    blob_free(&png);
    g_object_unref(src);
}

static void test_bad_shape(void **state)
{
    (void)state;
    VipsImage *src = gradient(2000, 10);
    struct blob png = save(src, "png");
    expect_refusal(png.data, png.len, MEDIA_ERR_BAD_SHAPE, "too narrow or too wide");
    blob_free(&png);
    g_object_unref(src);
    /* 1 x 1 is square: it is upscaled. */
    src = gradient(1, 1);
    png = save(src, "png");
    struct media_avatar a;
    assert_int_equal(process(&png, &a, NULL), MEDIA_OK);
    VipsImage *large = check_webp(a.large, a.large_len, MEDIA_AVATAR_LARGE);
    g_object_unref(large);
    media_avatar_deinit(&a);
    blob_free(&png);
    g_object_unref(src);
}

static size_t count_files(const char *dir)
{
    DIR *d = opendir(dir);
    size_t n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (e->d_name[0] != '.' || strstr(e->d_name, ".new-"))
            n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    if (d) closedir(d);
    return n;
}

static void test_store_and_remove(void **state)
{
    (void)state;
    char dir[] = "/tmp/echo-avatar-XXXXXX";
    assert_non_null(mkdtemp(dir));
    VipsImage *src = gradient(300, 300);
    struct blob png = save(src, "png");
    struct media_avatar a;
    struct echo_err err = {0};
    assert_int_equal(process(&png, &a, &err), MEDIA_OK);

    assert_int_equal(media_avatar_store(&a, dir, "42", &err), MEDIA_OK);
    char path[512];
    size_t len;
    snprintf(path, sizeof(path), "%s/42-256.webp", dir);
    char *got = file_read_all(path, 1 << 20, &len, NULL);
    assert_non_null(got);
    assert_int_equal(len, a.large_len);
    assert_memory_equal(got, a.large, len);
    free(got);
    snprintf(path, sizeof(path), "%s/42-64.webp", dir);
    got = file_read_all(path, 1 << 20, &len, NULL);
    assert_non_null(got);
    assert_memory_equal(got, a.small, a.small_len);
    free(got);
    assert_int_equal(count_files(dir), 2);
    /* Storing again replaces, leaving no temporary files. */
    assert_int_equal(media_avatar_store(&a, dir, "42", &err), MEDIA_OK);
    assert_int_equal(count_files(dir), 2);

    /* Ids that could leave the folder or collide are refused. */
    const char *bad_ids[] = {"", "../x", "a/b", "a.b", "x y", NULL};
    for (int i = 0; bad_ids[i]; i++)
        assert_int_equal(media_avatar_store(&a, dir, bad_ids[i], &err), MEDIA_ERR_INVALID);
    assert_int_equal(media_avatar_store(&a, dir, NULL, &err), MEDIA_ERR_INVALID);
    char long_id[70];
    memset(long_id, 'a', 65);
    long_id[65] = 0;
    assert_int_equal(media_avatar_store(&a, dir, long_id, &err), MEDIA_ERR_INVALID);
    long_id[64] = 0;
    assert_true(media_avatar_id_valid(long_id));

    /* A folder that does not exist: an error, nothing written anywhere. */
    char missing[600];
    snprintf(missing, sizeof(missing), "%s/nope", dir);
    assert_int_equal(media_avatar_store(&a, missing, "7", &err), MEDIA_ERR_IO);
    assert_int_equal(count_files(dir), 2);

    /* The second file cannot be put in place (a folder has its name): the
     * first is taken back, so no half avatar remains. */
    snprintf(path, sizeof(path), "%s/9-64.webp", dir);
    assert_int_equal(mkdir(path, 0755), 0);
    snprintf(path, sizeof(path), "%s/9-64.webp/x", dir);
    assert_int_equal(file_write_atomic(path, "x", 1, 0644, NULL), 0);
    assert_int_equal(media_avatar_store(&a, dir, "9", &err), MEDIA_ERR_IO);
    snprintf(path, sizeof(path), "%s/9-256.webp", dir);
    assert_int_equal(access(path, F_OK), -1);
    assert_int_equal(count_files(dir), 3); /* 42's two files and the folder */
    snprintf(path, sizeof(path), "%s/9-64.webp/x", dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/9-64.webp", dir);
    rmdir(path);

    /* An unprocessed avatar is not stored. */
    struct media_avatar empty = {0};
    assert_int_equal(media_avatar_store(&empty, dir, "5", &err), MEDIA_ERR_INVALID);

    assert_int_equal(media_avatar_remove(dir, "42", &err), MEDIA_OK);
    assert_int_equal(count_files(dir), 0);
    assert_int_equal(media_avatar_remove(dir, "42", &err), MEDIA_OK); /* already gone */
    assert_int_equal(media_avatar_remove(dir, "../42", &err), MEDIA_ERR_INVALID);
    assert_int_equal(rmdir(dir), 0);
    media_avatar_deinit(&a);
    blob_free(&png);
    g_object_unref(src);
}

struct job {
    const struct blob *in;
    int rc;
    struct media_avatar out;
};

static void *run_job(void *arg)
{
    struct job *j = arg;
    for (int i = 0; i < 5; i++) {
        media_avatar_deinit(&j->out);
        j->rc = media_avatar_process(j->in->data, j->in->len, NULL, &j->out, NULL);
        if (j->rc != MEDIA_OK) break;
    }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    VipsImage *src = gradient(800, 600);
    struct blob jpeg = save(src, "jpeg"), png = save(src, "png");
    struct blob cut = {jpeg.data, jpeg.len / 2};
    struct job jobs[6] = {{&jpeg, 0, {0}}, {&png, 0, {0}}, {&cut, 0, {0}},
                          {&jpeg, 0, {0}}, {&png, 0, {0}}, {&cut, 0, {0}}};
    pthread_t t[6];
    for (int i = 0; i < 6; i++)
        assert_int_equal(pthread_create(&t[i], NULL, run_job, &jobs[i]), 0);
    for (int i = 0; i < 6; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < 6; i++)
        assert_int_equal(jobs[i].rc, i % 3 == 2 ? MEDIA_ERR_CORRUPT : MEDIA_OK);
    /* Same input, same output, whichever thread made it. */
    assert_int_equal(jobs[0].out.large_len, jobs[3].out.large_len);
    assert_memory_equal(jobs[0].out.large, jobs[3].out.large, jobs[0].out.large_len);
    assert_memory_equal(jobs[1].out.small, jobs[4].out.small, jobs[1].out.small_len);
    for (int i = 0; i < 6; i++)
        media_avatar_deinit(&jobs[i].out);
    blob_free(&jpeg);
    blob_free(&png);
    g_object_unref(src);
}

/* Not a check: prints how long typical uploads take (docs/PERF.md). */
static void test_timing(void **state)
{
    (void)state;
    static const struct {
        int w, h;
        const char *format;
    } cases[] = {{1200, 900, "jpeg"}, {4000, 3000, "jpeg"}, {7300, 5400, "jpeg"},
                 {1200, 900, "png"},  {4000, 3000, "png"},  {2000, 1500, "webp"}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        VipsImage *src = gradient(cases[i].w, cases[i].h);
        struct blob b = save(src, cases[i].format);
        struct media_avatar a;
        uint64_t t0 = time_mono_ns();
        int rc = media_avatar_process(b.data, b.len, NULL, &a, NULL);
        uint64_t t1 = time_mono_ns();
        assert_int_equal(rc, MEDIA_OK);
        printf("# avatar %s %dx%d (%.1f MP, %zu KB): %.1f ms\n", cases[i].format, cases[i].w,
               cases[i].h, cases[i].w * (double)cases[i].h / 1e6, b.len / 1024, (t1 - t0) / 1e6);
        media_avatar_deinit(&a);
        blob_free(&b);
        g_object_unref(src);
    }
}

static void test_status_names(void **state)
{
    (void)state;
    assert_string_equal(media_status_name(MEDIA_OK), "ok");
    assert_string_equal(media_status_name(MEDIA_ERR_TOO_MANY_PIXELS), "too many pixels");
    assert_string_equal(media_status_name(12345), "unknown status");
}

int main(void)
{
    if (media_init(NULL) != MEDIA_OK) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepted_formats), cmocka_unit_test(test_exif_orientation),
        cmocka_unit_test(test_alpha_and_16_bit), cmocka_unit_test(test_gif_first_frame),
        cmocka_unit_test(test_not_images),       cmocka_unit_test(test_unsupported_formats),
        cmocka_unit_test(test_truncated),        cmocka_unit_test(test_too_big),
        cmocka_unit_test(test_pixel_bombs),      cmocka_unit_test(test_bad_shape),
        cmocka_unit_test(test_store_and_remove), cmocka_unit_test(test_threads),
        cmocka_unit_test(test_timing),           cmocka_unit_test(test_status_names),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    vips_shutdown();
    return rc;
}
