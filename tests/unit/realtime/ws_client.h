/*
 * ws_client.h - a hand-written WebSocket client side for the realtime unit
 * tests: builds masked client frames and reads server frames from the other
 * end of a socketpair. When given a loop it drives it (rt_loop_run_once)
 * while waiting; with NULL it assumes the loop runs on its own thread.
 */
#ifndef ECHO_TEST_WS_CLIENT_H
#define ECHO_TEST_WS_CLIENT_H

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "realtime/loop.h"

/* Builds a client frame (masked unless mask is false); out needs len + 14 bytes. */
static inline size_t wsc_build(unsigned char *out, bool fin, int opcode, const void *payload,
                               size_t len, bool mask)
{
    size_t i = 0;
    out[i++] = (unsigned char)((fin ? 0x80 : 0) | opcode);
    unsigned char m = mask ? 0x80 : 0;
    if (len < 126) {
        out[i++] = (unsigned char)(m | len);
    } else if (len < 65536) {
        out[i++] = m | 126;
        out[i++] = (unsigned char)(len >> 8);
        out[i++] = (unsigned char)len;
    } else {
        out[i++] = m | 127;
        for (int k = 7; k >= 0; k--)
            out[i++] = (unsigned char)((uint64_t)len >> (8 * k));
    }
    unsigned char key[4] = {0x37, 0xfa, 0x21, 0x3d};
    if (mask) {
        memcpy(out + i, key, 4);
        i += 4;
    }
    const unsigned char *pl = payload;
    for (size_t k = 0; k < len; k++)
        out[i + k] = mask ? (unsigned char)(pl[k] ^ key[k % 4]) : pl[k];
    return i + len;
}

static inline bool wsc_send(int fd, bool fin, int opcode, const void *payload, size_t len,
                            bool mask)
{
    unsigned char *buf = malloc(len + 14);
    size_t n = wsc_build(buf, fin, opcode, payload, len, mask);
    bool ok = write(fd, buf, n) == (ssize_t)n;
    free(buf);
    return ok;
}

static inline bool wsc_text(int fd, const char *text)
{
    return wsc_send(fd, true, 0x1, text, strlen(text), true);
}

/* Reads n bytes (fewer on EOF or timeout); returns the count. */
static inline ssize_t wsc_read(rt_loop *loop, int fd, void *buf, size_t n, int timeout_ms)
{
    size_t got = 0;
    uint64_t deadline = time_mono_ns() + (uint64_t)timeout_ms * 1000000u;
    while (got < n && time_mono_ns() < deadline) {
        if (loop) rt_loop_run_once(loop, 5);
        struct pollfd pfd = {fd, POLLIN, 0};
        if (poll(&pfd, 1, loop ? 0 : 10) > 0) {
            ssize_t r = read(fd, (char *)buf + got, n - got);
            if (r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN)) return (ssize_t)got;
            if (r > 0) got += (size_t)r;
        }
    }
    return (ssize_t)got;
}

/* Reads one server frame into buf (cap bytes, NUL-terminated); returns the
 * opcode, or -1 on EOF/timeout/garbage. */
static inline int wsc_frame(rt_loop *loop, int fd, char *buf, size_t cap, size_t *len)
{
    unsigned char h[2];
    if (wsc_read(loop, fd, h, 2, 3000) != 2) return -1;
    if ((h[1] & 0x80) || !(h[0] & 0x80))
        return -1; /* masked or fragmented: not what this server sends */
    size_t n = h[1] & 0x7f;
    if (n == 126) {
        unsigned char e[2];
        if (wsc_read(loop, fd, e, 2, 3000) != 2) return -1;
        n = ((size_t)e[0] << 8) | e[1];
    } else if (n == 127) {
        unsigned char e[8];
        if (wsc_read(loop, fd, e, 8, 3000) != 8) return -1;
        n = 0;
        for (int k = 0; k < 8; k++)
            n = (n << 8) | e[k];
    }
    if (n + 1 > cap || wsc_read(loop, fd, buf, n, 3000) != (ssize_t)n) return -1;
    buf[n] = '\0';
    *len = n;
    return h[0] & 0x0f;
}

/* Reads frames until a text frame arrives; its payload is in buf. */
static inline bool wsc_expect_text(rt_loop *loop, int fd, char *buf, size_t cap)
{
    size_t len;
    for (;;) {
        int op = wsc_frame(loop, fd, buf, cap, &len);
        if (op == 0x1) return true;
        if (op != 0x9 && op != 0xA) return false;
    }
}

/* True once the peer closed the socket (EOF) within 3 s. */
static inline bool wsc_eof(rt_loop *loop, int fd)
{
    char b[256];
    uint64_t deadline = time_mono_ns() + 3000000000ull;
    while (time_mono_ns() < deadline) {
        if (loop) rt_loop_run_once(loop, 5);
        struct pollfd pfd = {fd, POLLIN, 0};
        if (poll(&pfd, 1, loop ? 0 : 10) > 0) {
            ssize_t r = read(fd, b, sizeof(b));
            if (r == 0 || (r < 0 && errno == ECONNRESET)) return true;
        }
    }
    return false;
}

#endif
