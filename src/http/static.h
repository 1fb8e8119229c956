/*
 * static.h - the pieces of static file serving the unit tests check on their
 * own: the path rule and the confined open. http_static_* in http.h is the
 * public side. Safe from any thread.
 */
#ifndef ECHO_HTTP_STATIC_H
#define ECHO_HTTP_STATIC_H

#include "http/http.h"

/* True when relpath may name a file: non-empty; no leading "/", no empty,
 * "." or ".." segment, no segment starting with "."; no backslash, control
 * character or NUL; not ending with "/". */
bool http_static_path_ok(const char *relpath);

/*
 * Opens relpath below the folder dirfd for reading, never leaving it: with
 * openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS) (symlinks that stay inside
 * are followed), or where the kernel lacks it, component by component with
 * O_NOFOLLOW (no symlink followed, "." and ".." refused). Returns the fd (O_NONBLOCK, so a FIFO
 * cannot block) or -1 with errno set. Does not check http_static_path_ok.
 */
int http_static_open(int dirfd, const char *relpath);

/* Forces the O_NOFOLLOW walk (tests of the fallback). */
void http_static_force_fallback(bool on);

/* Builds the ETag for a size and modification time: "size-mtimens" in hex. */
void http_static_etag(uint64_t size, uint64_t mtime_ns, char *buf, size_t bufsize);

/* True when an If-None-Match header value matches etag (weak comparison,
 * lists and "*" understood). */
bool http_etag_matches(const char *if_none_match, const char *etag);

#endif
