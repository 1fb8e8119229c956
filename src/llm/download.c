/*
 * download.c - `echobot model pull`: fetching a model file over HTTP(S).
 *
 * The file is written to OUT.part. An existing .part is resumed with an
 * HTTP Range request; when the server cannot resume (libcurl reports a range
 * error) the file is started over from zero. When the transfer completes, the SHA-256 of
 * the whole .part (libsodium's crypto_hash_sha256) is compared with the
 * expected digest: the one given (ECHO_MODEL_SHA256 / --sha256), else the one
 * the hub publishes with the file (Hugging Face sends the SHA-256 of a file
 * stored in Git LFS as the X-Linked-Etag header of its answer), so the
 * default model is verified without anyone pinning a digest by hand. Only a
 * verified file is renamed to OUT, so OUT never holds
 * a partial or corrupted model. A mismatch deletes the .part (the next pull
 * starts over); a network failure keeps it for the next resume.
 *
 * Offline machines fail fast: a short connect timeout and a clear message.
 * A stalled transfer (under 1 KB/s for 30 s) is abandoned, keeping the .part.
 *
 * Threads: llm_model_pull may run on any thread; libcurl's global init is
 * done once (pthread_once).
 */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "llm/llm.h"

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc = CURLE_OK;

static void curl_init(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

struct pull {
    const struct llm_pull_opts *o;
    FILE *f;
    curl_off_t resume_from;
    long status;
    bool write_failed;
    int write_errno;
    uint64_t last_draw_ns;
    curl_off_t last_now;
    char hub_sha256[65]; /* from X-Linked-Etag, "" when the server sent none */
};

static bool hex_digest_valid(const char *s);

/* `X-Linked-Etag: "<64 hex>"` (quotes and a weak W/ prefix allowed). */
static void parse_linked_etag(struct pull *p, const char *buf, size_t len)
{
    static const char name[] = "x-linked-etag:";
    size_t nl = sizeof(name) - 1;
    if (len <= nl || strncasecmp(buf, name, nl) != 0) return;
    const char *v = buf + nl, *end = buf + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    if (end - v >= 2 && v[0] == 'W' && v[1] == '/') v += 2;
    if (v < end && *v == '"') v++;
    char hex[65];
    size_t n = 0;
    while (v < end && n < 64 && *v != '"' && *v != '\r' && *v != '\n')
        hex[n++] = *v++;
    hex[n] = '\0';
    if (n == 64 && hex_digest_valid(hex)) memcpy(p->hub_sha256, hex, sizeof(hex));
}

/* Called for each header line: on the status line of the final response we
 * learn whether the range was honoured. */
static size_t on_header(char *buf, size_t size, size_t n, void *user)
{
    struct pull *p = user;
    size_t len = size * n;
    if (len > 5 && !memcmp(buf, "HTTP/", 5)) {
        const char *sp = memchr(buf, ' ', len);
        if (sp) p->status = strtol(sp + 1, NULL, 10);
    }
    parse_linked_etag(p, buf, len);
    return len;
}

static size_t on_data(char *buf, size_t size, size_t n, void *user)
{
    struct pull *p = user;
    size_t len = size * n;
    if (p->status >= 300) return len; /* an error body: CURLOPT_FAILONERROR ends the transfer */
    if (fwrite(buf, 1, len, p->f) != len) {
        p->write_failed = true;
        p->write_errno = errno;
        return 0;
    }
    return len;
}

static void human(double bytes, char *out, size_t size)
{
    static const char *units[] = {"B", "KB", "MB", "GB", "TB"};
    int u = 0;
    while (bytes >= 1024 && u < 4) {
        bytes /= 1024;
        u++;
    }
    snprintf(out, size, u ? "%.1f %s" : "%.0f %s", bytes, units[u]);
}

static int on_progress(void *user, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    (void)ultotal;
    (void)ulnow;
    struct pull *p = user;
    if (!p->o->progress) return 0;
    uint64_t now = time_mono_ns();
    if (now - p->last_draw_ns < 200000000ull && dlnow != dltotal) return 0;
    double base = (double)p->resume_from;
    double have = base + (double)dlnow, total = dltotal > 0 ? base + (double)dltotal : 0.0;
    double dt = p->last_draw_ns ? (double)(now - p->last_draw_ns) / 1e9 : 0.0;
    double rate = dt > 0 ? (double)(dlnow - p->last_now) / dt : 0.0;
    p->last_draw_ns = now;
    p->last_now = dlnow;
    char h[32], t[32], r[32];
    human(have, h, sizeof(h));
    human(total, t, sizeof(t));
    human(rate, r, sizeof(r));
    if (total > 0) {
        int width = 30, fill = (int)(have / total * width);
        char bar[64];
        for (int i = 0; i < width; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[width] = '\0';
        fprintf(stderr, "\r[%s] %5.1f%%  %s / %s  %s/s   ", bar, have / total * 100.0, h, t, r);
    } else {
        fprintf(stderr, "\r%s  %s/s   ", h, r);
    }
    return 0;
}

/* SHA-256 of a file as lowercase hex (65 bytes with the NUL). */
static int sha256_file(const char *path, char hex[65], struct echo_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        echo_err_set(err, "%s: %s", path, strerror(errno));
        return LLM_ERR_IO;
    }
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    unsigned char *buf = xmalloc(1 << 20);
    size_t n;
    while ((n = fread(buf, 1, 1 << 20, f)) > 0)
        crypto_hash_sha256_update(&st, buf, n);
    bool bad = ferror(f);
    fclose(f);
    free(buf);
    if (bad) {
        echo_err_set(err, "%s: read error", path);
        return LLM_ERR_IO;
    }
    unsigned char digest[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_final(&st, digest);
    sodium_bin2hex(hex, 65, digest, sizeof(digest));
    return 0;
}

static bool hex_digest_valid(const char *s)
{
    size_t n = strlen(s);
    if (n != 64) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
            return false;
    }
    return true;
}

/* Creates the folder that will hold path. */
static int make_parent(const char *path, struct echo_err *err)
{
    const char *slash = strrchr(path, '/');
    if (!slash || slash == path) return 0;
    char *dir = xstrndup(path, (size_t)(slash - path));
    int rc = dir_make_all(dir, 0755, err);
    free(dir);
    return rc < 0 ? LLM_ERR_IO : 0;
}

/* Verifies the finished .part and moves it into place. */
static int finish(const struct llm_pull_opts *o, const char *part, const char *hub_sha256,
                  struct echo_err *err)
{
    char hex[65];
    int rc = sha256_file(part, hex, err);
    if (rc < 0) return rc;
    const char *want = o->sha256 && o->sha256[0]     ? o->sha256
                       : hub_sha256 && hub_sha256[0] ? hub_sha256
                                                     : NULL;
    if (want) {
        if (str_casecmp(hex, want) != 0) {
            unlink(part);
            echo_err_set(err,
                         "%s: SHA-256 mismatch: got %s, expected %s%s; the download was deleted "
                         "(run the pull again)",
                         o->out, hex, want, want == hub_sha256 ? " (published by the server)" : "");
            return LLM_ERR_CHECKSUM;
        }
        if (want == hub_sha256)
            log_info("%s: SHA-256 %s matches the digest the server published", o->out, hex);
    } else {
        log_info("%s: SHA-256 %s (not checked: no expected digest given)", o->out, hex);
    }
    if (rename(part, o->out) != 0) {
        echo_err_set(err, "cannot rename %s to %s: %s", part, o->out, strerror(errno));
        return LLM_ERR_IO;
    }
    return 0;
}

/*
 * One transfer into part, appending from its current size (a Range request
 * when it is not empty). Returns the libcurl result; *status gets the HTTP
 * status and *write_errno a local write error (0 if none).
 */
static CURLcode transfer(const struct llm_pull_opts *o, const char *part, long *status,
                         int *write_errno, char curl_err[CURL_ERROR_SIZE], char hub_sha256[65],
                         struct echo_err *err, int *rc)
{
    struct pull p = {.o = o};
    CURLcode cc = CURLE_OK;
    *status = 0;
    *write_errno = 0;
    p.f = fopen(part, "ab");
    if (!p.f || fseeko(p.f, 0, SEEK_END) != 0 || (p.resume_from = ftello(p.f)) < 0) {
        echo_err_set(err, "%s: %s", part, strerror(errno));
        *rc = LLM_ERR_IO;
        if (p.f) fclose(p.f);
        return CURLE_WRITE_ERROR;
    }
    if (p.resume_from > 0) log_info("resuming %s at %lld bytes", o->out, (long long)p.resume_from);
    CURL *curl = curl_easy_init();
    if (!curl) {
        fclose(p.f);
        echo_err_set(err, "libcurl could not create a transfer");
        *rc = LLM_ERR_NETWORK;
        return CURLE_FAILED_INIT;
    }
    curl_err[0] = '\0';
    curl_easy_setopt(curl, CURLOPT_URL, o->url);
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(curl, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(curl, CURLOPT_FAILONERROR, 1L);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, curl_err);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT,
                     o->connect_timeout > 0 ? o->connect_timeout : 10L);
    curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1024L);
    curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, 30L);
    curl_easy_setopt(curl, CURLOPT_USERAGENT, "echobot-model-pull/1");
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, &p);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &p);
    curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &p);
    curl_easy_setopt(curl, CURLOPT_NOPROGRESS, o->progress ? 0L : 1L);
    if (p.resume_from > 0) curl_easy_setopt(curl, CURLOPT_RESUME_FROM_LARGE, p.resume_from);
    cc = curl_easy_perform(curl);
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, status);
    curl_easy_cleanup(curl);
    if (o->progress) fprintf(stderr, "\n");
    if (fflush(p.f) != 0 || fsync(fileno(p.f)) != 0) {
        p.write_failed = true;
        p.write_errno = errno;
    }
    fclose(p.f);
    if (p.write_failed) *write_errno = p.write_errno ? p.write_errno : EIO;
    if (p.hub_sha256[0]) memcpy(hub_sha256, p.hub_sha256, 65);
    return cc;
}

int llm_model_pull(const struct llm_pull_opts *o, struct echo_err *err)
{
    if (!o->url || !o->url[0] || !o->out || !o->out[0]) {
        echo_err_set(err, "model pull needs a URL and an output path");
        return LLM_ERR_BAD_INPUT;
    }
    if (o->sha256 && o->sha256[0] && !hex_digest_valid(o->sha256)) {
        echo_err_set(err, "the expected SHA-256 must be 64 hex digits, not '%s'", o->sha256);
        return LLM_ERR_BAD_INPUT;
    }
    struct stat st;
    if (o->if_missing && stat(o->out, &st) == 0) return 0;
    if (make_parent(o->out, err) < 0) return LLM_ERR_IO;
    if (sodium_init() < 0) {
        echo_err_set(err, "libsodium failed to initialize");
        return LLM_ERR_IO;
    }
    pthread_once(&curl_once, curl_init);
    if (curl_init_rc != CURLE_OK) {
        echo_err_set(err, "libcurl failed to initialize: %s", curl_easy_strerror(curl_init_rc));
        return LLM_ERR_NETWORK;
    }

    size_t plen = strlen(o->out);
    char *part = xmalloc(plen + 6);
    memcpy(part, o->out, plen);
    memcpy(part + plen, ".part", 6);
    char curl_err[CURL_ERROR_SIZE];
    long status;
    int werr, rc = 0;
    char hub_sha256[65] = "";
    CURLcode cc = transfer(o, part, &status, &werr, curl_err, hub_sha256, err, &rc);
    if (rc < 0) goto out;
    if (cc == CURLE_RANGE_ERROR) {
        /* The server cannot resume: start the file over, once. */
        log_info("%s does not support resuming; downloading from the start", o->url);
        if (truncate(part, 0) != 0) {
            echo_err_set(err, "%s: %s", part, strerror(errno));
            rc = LLM_ERR_IO;
            goto out;
        }
        cc = transfer(o, part, &status, &werr, curl_err, hub_sha256, err, &rc);
        if (rc < 0) goto out;
    }
    if (werr) {
        echo_err_set(err, "%s: %s", part, strerror(werr));
        rc = LLM_ERR_IO;
        goto out;
    }
    if (cc == CURLE_HTTP_RETURNED_ERROR && status == 416) {
        /* Range not satisfiable: the .part already holds the whole file (or
         * more); the checksum decides. */
        rc = finish(o, part, hub_sha256, err);
        goto out;
    }
    if (cc != CURLE_OK) {
        const char *hint = "";
        if (cc == CURLE_COULDNT_CONNECT || cc == CURLE_COULDNT_RESOLVE_HOST ||
            cc == CURLE_COULDNT_RESOLVE_PROXY || cc == CURLE_OPERATION_TIMEDOUT)
            hint = " (offline? without network, copy the model file to the output path)";
        echo_err_set(err, "downloading %s failed: %s%s%s", o->url,
                     curl_err[0] ? curl_err : curl_easy_strerror(cc), hint,
                     cc == CURLE_HTTP_RETURNED_ERROR ? "" : "; run the pull again to resume");
        rc = LLM_ERR_NETWORK;
        goto out;
    }
    rc = finish(o, part, hub_sha256, err);
out:
    free(part);
    return rc;
}
