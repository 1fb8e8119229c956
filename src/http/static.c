/*
 * static.c - static files (http.h: http_static_*): confined opening, MIME
 * types, validators (ETag, Last-Modified), conditional 304s and caching
 * headers. The folder is opened once; every request opens its file relative
 * to that descriptor, so a path can never name something outside it, and
 * the body is sent by sendfile from the open descriptor.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/openat2.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "http/internal.h"
#include "http/static.h"
#include "http/text.h"

struct http_static {
    int dirfd;
    unsigned max_age;
    unsigned long_max_age;
    char *long_prefix;
};

static atomic_int openat2_state; /* 0 unknown, 1 works, -1 missing or forced off */

void http_static_force_fallback(bool on)
{
    atomic_store(&openat2_state, on ? -1 : 0);
}

bool http_static_path_ok(const char *p)
{
    if (!p || !*p || *p == '/') return false;
    const char *seg = p;
    for (const char *c = p;; c++) {
        unsigned char ch = (unsigned char)*c;
        if (ch == '/' || ch == 0) {
            size_t len = (size_t)(c - seg);
            if (len == 0 || seg[0] == '.') return false; /* empty, ".", ".." and hidden names */
            if (ch == 0) return true;
            seg = c + 1;
            continue;
        }
        if (ch < 0x20 || ch == 0x7f || ch == '\\') return false;
    }
}

static int open_walk(int dirfd, const char *relpath)
{
    int cur = dirfd;
    const char *p = relpath;
    char name[256];
    for (;;) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (len == 0 || len >= sizeof(name)) {
            if (cur != dirfd) close(cur);
            errno = len ? ENAMETOOLONG : ENOENT;
            return -1;
        }
        memcpy(name, p, len);
        name[len] = 0;
        if (!strcmp(name, ".") || !strcmp(name, "..")) {
            /* ".." is a real directory entry: O_NOFOLLOW does not stop it. */
            if (cur != dirfd) close(cur);
            errno = EXDEV;
            return -1;
        }
        /* Not O_PATH: with O_PATH, O_NOFOLLOW hands back the link itself
         * instead of refusing it, and the walk would continue through it. */
        int flags = slash ? (O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                          : (O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
        int fd = openat(cur, name, flags);
        int saved = errno;
        if (cur != dirfd) close(cur);
        if (fd < 0) {
            errno = saved;
            return -1;
        }
        if (!slash) return fd;
        cur = fd;
        p = slash + 1;
    }
}

int http_static_open(int dirfd, const char *relpath)
{
    if (atomic_load(&openat2_state) >= 0) {
        struct open_how how = {
            .flags = O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC,
            .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
        };
        long fd = syscall(SYS_openat2, dirfd, relpath, &how, sizeof(how));
        if (fd >= 0) {
            atomic_store(&openat2_state, 1);
            return (int)fd;
        }
        /* ENOSYS: an old kernel; EPERM: a seccomp filter refusing it. */
        if (errno != ENOSYS && !(errno == EPERM && atomic_load(&openat2_state) == 0)) return -1;
        atomic_store(&openat2_state, -1);
    }
    return open_walk(dirfd, relpath);
}

void http_static_etag(uint64_t size, uint64_t mtime_ns, char *buf, size_t bufsize)
{
    snprintf(buf, bufsize, "\"%" PRIx64 "-%" PRIx64 "\"", size, mtime_ns);
}

bool http_etag_matches(const char *inm, const char *etag)
{
    if (!inm) return false;
    const char *want = etag;
    if (!strncmp(want, "W/", 2)) want += 2;
    size_t wlen = strlen(want);
    const char *p = inm;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (!*p) break;
        if (*p == '*') return true;
        if (!strncmp(p, "W/", 2)) p += 2;
        const char *end = p;
        if (*p == '"') {
            end = strchr(p + 1, '"');
            if (!end) return false;
            end++;
        } else {
            while (*end && *end != ',')
                end++;
        }
        if ((size_t)(end - p) == wlen && !memcmp(p, want, wlen)) return true;
        p = end;
    }
    return false;
}

struct mime {
    const char *ext;
    const char *type;
};

static const struct mime mimes[] = {
    {"html", "text/html; charset=utf-8"},
    {"htm", "text/html; charset=utf-8"},
    {"css", "text/css; charset=utf-8"},
    {"js", "text/javascript; charset=utf-8"},
    {"mjs", "text/javascript; charset=utf-8"},
    {"json", "application/json"},
    {"map", "application/json"},
    {"webmanifest", "application/manifest+json"},
    {"txt", "text/plain; charset=utf-8"},
    {"md", "text/markdown; charset=utf-8"},
    {"xml", "application/xml"},
    {"svg", "image/svg+xml"},
    {"png", "image/png"},
    {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"},
    {"gif", "image/gif"},
    {"webp", "image/webp"},
    {"avif", "image/avif"},
    {"ico", "image/x-icon"},
    {"woff", "font/woff"},
    {"woff2", "font/woff2"},
    {"ttf", "font/ttf"},
    {"otf", "font/otf"},
    {"wasm", "application/wasm"},
    {"pdf", "application/pdf"},
};

const char *http_mime_type(const char *name)
{
    const char *slash = strrchr(name, '/');
    const char *dot = strrchr(slash ? slash : name, '.');
    if (dot && dot[1]) {
        for (size_t i = 0; i < sizeof(mimes) / sizeof(mimes[0]); i++)
            if (!strcasecmp(dot + 1, mimes[i].ext)) return mimes[i].type;
    }
    return "application/octet-stream";
}

http_static *http_static_new(const char *dir, const struct http_static_options *o,
                             struct echo_err *err)
{
    int fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        echo_err_set(err, "static folder %s: %s", dir, strerror(errno));
        return NULL;
    }
    http_static *st = xcalloc(1, sizeof(*st));
    st->dirfd = fd;
    st->max_age = o && o->max_age ? o->max_age : 3600;
    st->long_max_age = o && o->long_max_age ? o->long_max_age : 86400;
    st->long_prefix = o && o->long_cache_prefix ? xstrdup(o->long_cache_prefix) : NULL;
    return st;
}

void http_static_free(http_static *st)
{
    if (!st) return;
    close(st->dirfd);
    free(st->long_prefix);
    free(st);
}

void http_static_serve(http_static *st, http_request *req, http_response *res, const char *relpath)
{
    enum http_method m = http_request_method(req);
    if (m != HTTP_GET && m != HTTP_HEAD) {
        http_response_set_header(res, "Allow", "GET, HEAD");
        http_response_error(res, HTTP_STATUS_METHOD_NOT_ALLOWED, NULL);
        return;
    }
    if (!relpath || !http_static_path_ok(relpath)) {
        http_response_error(res, HTTP_STATUS_NOT_FOUND, NULL);
        return;
    }
    int fd = http_static_open(st->dirfd, relpath);
    if (fd < 0) {
        if (errno != ENOENT && errno != ENOTDIR && errno != ELOOP && errno != EXDEV)
            log_warn("static: %s: %s", relpath, strerror(errno));
        http_response_error(res, HTTP_STATUS_NOT_FOUND, NULL);
        return;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        http_response_error(res, HTTP_STATUS_NOT_FOUND, NULL);
        return;
    }
    char etag[64], date[40], cache[64];
    uint64_t mtime_ns = (uint64_t)sb.st_mtim.tv_sec * 1000000000u + (uint64_t)sb.st_mtim.tv_nsec;
    http_static_etag((uint64_t)sb.st_size, mtime_ns, etag, sizeof(etag));
    http_date_format(sb.st_mtim.tv_sec, date, sizeof(date));
    unsigned age = st->long_prefix && str_has_prefix(relpath, st->long_prefix) ? st->long_max_age
                                                                               : st->max_age;
    snprintf(cache, sizeof(cache), "public, max-age=%u", age);
    http_response_set_header(res, "ETag", etag);
    http_response_set_header(res, "Last-Modified", date);
    http_response_set_header(res, "Cache-Control", cache);

    /* RFC 7232 6: If-None-Match decides when present; If-Modified-Since
     * only without it. */
    const char *inm = http_request_header(req, "If-None-Match");
    const char *ims = http_request_header(req, "If-Modified-Since");
    bool not_modified = false;
    if (inm) {
        not_modified = http_etag_matches(inm, etag);
    } else if (ims) {
        time_t t;
        not_modified = http_date_parse(ims, &t) == 0 && sb.st_mtim.tv_sec <= t;
    }
    if (not_modified) {
        close(fd);
        http_response_set_status(res, HTTP_STATUS_NOT_MODIFIED);
        return;
    }
    http_response_file(res, fd, 0, (uint64_t)sb.st_size, http_mime_type(relpath));
}
