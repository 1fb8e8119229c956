/*
 * test_ws.c - the realtime loop (tasks from other threads, timers, deferred
 * frees) and WebSocket connections over a socketpair, with a hand-written
 * client side that frames, masks and checks bytes as RFC 6455 says: the
 * accept key, text/binary messages, fragmentation, ping/pong, the close
 * handshake from either side, invalid UTF-8 (1007), too big (1009), unmasked
 * client frames (1002), bytes already read by HTTP, EOF, close timeout and the
 * outbound backlog limit.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "realtime/loop.h"
#include "realtime/ws.h"
#include "ws_client.h"

/* ---- loop ---- */

struct count_task {
    int *counter;
    int *cancelled;
    int *order; /* last value seen per producer */
    int producer, seq;
    bool bad_order;
};

static pthread_mutex_t order_mu = PTHREAD_MUTEX_INITIALIZER;
static int order_errors;

static void count_fn(void *arg, bool cancelled)
{
    struct count_task *t = arg;
    if (cancelled) {
        (*t->cancelled)++;
    } else {
        (*t->counter)++;
        if (t->order) {
            pthread_mutex_lock(&order_mu);
            if (t->order[t->producer] + 1 != t->seq) order_errors++;
            t->order[t->producer] = t->seq;
            pthread_mutex_unlock(&order_mu);
        }
    }
    free(t);
}

struct producer {
    rt_loop *loop;
    int id;
    int n;
    int *counter, *cancelled, *order;
};

static void *produce(void *arg)
{
    struct producer *p = arg;
    for (int i = 1; i <= p->n; i++) {
        struct count_task *t = calloc(1, sizeof(*t));
        t->counter = p->counter;
        t->cancelled = p->cancelled;
        t->order = p->order;
        t->producer = p->id;
        t->seq = i;
        rt_loop_post(p->loop, count_fn, t);
    }
    return NULL;
}

static void test_loop_tasks_from_threads(void **state)
{
    (void)state;
    rt_loop *loop = rt_loop_new(NULL);
    assert_non_null(loop);
    assert_int_equal(rt_loop_start(loop, NULL), 0);
    int counter = 0, cancelled = 0, order[4] = {0};
    order_errors = 0;
    struct producer p[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        p[i] = (struct producer){loop, i, 5000, &counter, &cancelled, order};
        pthread_create(&th[i], NULL, produce, &p[i]);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    /* Stopping runs everything posted before the stop (FIFO). */
    rt_loop_stop(loop);
    rt_loop_close(loop);
    assert_int_equal(counter + cancelled, 20000);
    assert_int_equal(order_errors, 0);
    /* After close, a post runs at once, cancelled. */
    int before = cancelled;
    struct count_task *t = calloc(1, sizeof(*t));
    t->counter = &counter;
    t->cancelled = &cancelled;
    rt_loop_post(loop, count_fn, t);
    assert_int_equal(cancelled, before + 1);
    rt_loop_free(loop);
}

struct timer_rec {
    struct rt_timer t;
    int id;
    int *log;
    int *n;
};

static void timer_fn(struct rt_timer *t)
{
    struct timer_rec *r = (struct timer_rec *)t;
    r->log[(*r->n)++] = r->id;
}

static void test_loop_timers(void **state)
{
    (void)state;
    rt_loop *loop = rt_loop_new(NULL);
    int log[16], n = 0;
    struct timer_rec r[6];
    uint64_t now = time_mono_ns();
    /* Armed out of order; one cancelled, one re-armed later. */
    int delays_ms[6] = {30, 10, 50, 20, 40, 5};
    for (int i = 0; i < 6; i++) {
        r[i].id = i;
        r[i].log = log;
        r[i].n = &n;
        rt_timer_init(&r[i].t, timer_fn);
        rt_loop_timer_set(loop, &r[i].t, now + (uint64_t)delays_ms[i] * 1000000u);
    }
    rt_loop_timer_cancel(loop, &r[3].t);
    assert_false(rt_timer_armed(&r[3].t));
    rt_loop_timer_set(loop, &r[5].t, now + 60 * 1000000u);
    uint64_t deadline = now + 2000000000ull;
    while (n < 5 && time_mono_ns() < deadline)
        rt_loop_run_once(loop, -1);
    assert_int_equal(n, 5);
    int expect[5] = {1, 0, 4, 2, 5};
    assert_memory_equal(log, expect, sizeof(expect));
    /* Nothing fired early. */
    assert_true(time_mono_ns() >= now + 60 * 1000000u);
    rt_loop_free(loop);
}

/* Stress the heap: many timers with pseudo-random deadlines fire in order. */
static int heap_last_when_bad;
static uint64_t heap_last_when;
static int heap_fired;

static void heap_fn(struct rt_timer *t)
{
    if (t->when_ns < heap_last_when) heap_last_when_bad++;
    heap_last_when = t->when_ns;
    heap_fired++;
}

static void test_loop_timer_heap(void **state)
{
    (void)state;
    rt_loop *loop = rt_loop_new(NULL);
    enum { N = 500 };
    struct rt_timer *t = calloc(N, sizeof(*t));
    uint64_t base = time_mono_ns();
    unsigned x = 12345;
    for (int i = 0; i < N; i++) {
        x = x * 1103515245u + 12345u;
        rt_timer_init(&t[i], heap_fn);
        rt_loop_timer_set(loop, &t[i], base + (x % 20000u) * 1000u); /* within 20 ms */
    }
    for (int i = 0; i < N; i += 3)
        rt_loop_timer_cancel(loop, &t[i]);
    heap_last_when = 0;
    heap_last_when_bad = 0;
    heap_fired = 0;
    uint64_t deadline = base + 2000000000ull;
    while (heap_fired < N - (N + 2) / 3 && time_mono_ns() < deadline)
        rt_loop_run_once(loop, -1);
    assert_int_equal(heap_fired, N - (N + 2) / 3);
    assert_int_equal(heap_last_when_bad, 0);
    rt_loop_free(loop);
    free(t);
}

/* ---- WebSocket ---- */

static void test_accept_key(void **state)
{
    (void)state;
    char out[WS_ACCEPT_LEN + 1];
    /* RFC 6455 section 1.3's example. */
    assert_int_equal(ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", out), 0);
    assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    assert_int_equal(ws_accept_key(NULL, out), -1);
    assert_int_equal(ws_accept_key("", out), -1);
    assert_int_equal(ws_accept_key("dGhlIHNhbXBsZSBub25jZQ=", out), -1);   /* 23 chars */
    assert_int_equal(ws_accept_key("dGhlIHNhbXBsZSBub25jZQ===", out), -1); /* 25 chars */
    assert_int_equal(ws_accept_key("dGhlIHNhbXBsZSBub25j!Q==", out), -1);  /* not base64 */
    assert_int_equal(ws_accept_key("dGhlIHNhbXBsZSBub25jZWE=", out), -1);  /* 17 bytes */
}

struct server_side {
    rt_loop *loop;
    ws_conn *c;
    int messages;
    char last[4096];
    size_t last_len;
    bool last_binary;
    int closes;
    int close_code;
    int releases;
    bool echo;
};

static void srv_message(ws_conn *c, bool binary, const char *data, size_t len, void *ud)
{
    struct server_side *s = ud;
    s->messages++;
    s->last_binary = binary;
    s->last_len = len < sizeof(s->last) ? len : sizeof(s->last);
    memcpy(s->last, data, s->last_len);
    if (s->echo) ws_conn_send(c, binary, data, len);
}

static void srv_close(ws_conn *c, int code, void *ud)
{
    (void)c;
    struct server_side *s = ud;
    s->closes++;
    s->close_code = code;
    s->c = NULL;
}

static const struct ws_handler srv_handler = {srv_message, srv_close};

struct pair {
    int fds[2]; /* [0] server, [1] client */
    struct server_side s;
};

static void release_cb(void *ud)
{
    struct pair *p = ud;
    p->s.releases++;
    close(p->fds[0]);
}

static void pair_open(struct pair *p, rt_loop *loop, const void *pre, size_t pre_len,
                      size_t max_message, size_t max_queued, unsigned close_ms)
{
    memset(p, 0, sizeof(*p));
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, p->fds), 0);
    p->s.loop = loop;
    struct ws_options opt = {max_message, max_queued, close_ms, NULL};
    p->s.c =
        ws_conn_new(loop, p->fds[0], pre, pre_len, &opt, release_cb, p, &srv_handler, &p->s, NULL);
    assert_non_null(p->s.c);
}

static void client_send(struct pair *p, bool fin, int opcode, const void *payload, size_t len,
                        bool mask)
{
    assert_true(wsc_send(p->fds[1], fin, opcode, payload, len, mask));
}

/* Reads one server frame; returns its opcode, payload in buf. */
static int client_frame(struct pair *p, rt_loop *loop, char *buf, size_t *len)
{
    return wsc_frame(loop, p->fds[1], buf, 70001, len);
}

static void pump_until(rt_loop *loop, bool *cond, int timeout_ms)
{
    uint64_t deadline = time_mono_ns() + (uint64_t)timeout_ms * 1000000u;
    while (!*cond && time_mono_ns() < deadline)
        rt_loop_run_once(loop, 5);
}

static bool client_eof(struct pair *p, rt_loop *loop)
{
    return wsc_eof(loop, p->fds[1]);
}

static void test_ws_messages(void **state)
{
    (void)state;
    rt_loop *loop = rt_loop_new(NULL);
    struct pair p;
    pair_open(&p, loop, NULL, 0, 1 << 20, 1 << 20, 1000);
    p.s.echo = true;

    char buf[70001];
    size_t len;
    client_send(&p, true, 0x1, "hello", 5, true);
    assert_int_equal(client_frame(&p, loop, buf, &len), 0x1);
    assert_int_equal(len, 5);
    assert_memory_equal(buf, "hello", 5);
    assert_false(p.s.last_binary);

    /* Binary, with a NUL. */
    client_send(&p, true, 0x2, "\x00\x01\x02", 3, true);
    assert_int_equal(client_frame(&p, loop, buf, &len), 0x2);
    assert_int_equal(len, 3);
    assert_true(p.s.last_binary);

    /* Fragmented text with a ping in the middle (control frames may interleave). */
    client_send(&p, false, 0x1, "hel", 3, true);
    client_send(&p, true, 0x9, "pp", 2, true);
    client_send(&p, true, 0x0, "lo \xe2\x82\xac", 6, true);
    assert_int_equal(client_frame(&p, loop, buf, &len), 0xA); /* pong first */
    assert_int_equal(len, 2);
    assert_memory_equal(buf, "pp", 2);
    assert_int_equal(client_frame(&p, loop, buf, &len), 0x1);
    assert_int_equal(len, 9);
    assert_memory_equal(buf, "hello \xe2\x82\xac", 9);
    assert_int_equal(p.s.messages, 3);

    /* 16-bit and 64-bit lengths. */
    char *big = malloc(70000);
    memset(big, 'x', 70000);
    client_send(&p, true, 0x1, big, 300, true);
    assert_int_equal(client_frame(&p, loop, buf, &len), 0x1);
    assert_int_equal(len, 300);
    client_send(&p, true, 0x1, big, 70000, true);
    assert_int_equal(client_frame(&p, loop, buf, &len), 0x1);
    assert_int_equal(len, 70000);
    free(big);

    /* The client closes: the server answers with the same code and lets go. */
    client_send(&p, true, 0x8,
                "\x03\xe8"
                "bye",
                5, true);
    assert_int_equal(client_frame(&p, loop, buf, &len), 0x8);
    assert_true(len >= 2);
    assert_int_equal(((unsigned char)buf[0] << 8) | (unsigned char)buf[1], 1000);
    assert_true(client_eof(&p, loop));
    assert_int_equal(p.s.closes, 1);
    assert_int_equal(p.s.close_code, 1000);
    assert_int_equal(p.s.releases, 1);
    close(p.fds[1]);
    rt_loop_free(loop);
}

static int close_code_of(const char *buf, size_t len)
{
    return len >= 2 ? (((unsigned char)buf[0] << 8) | (unsigned char)buf[1]) : 0;
}

static void test_ws_invalid_utf8(void **state)
{
    (void)state;
    rt_loop *loop = rt_loop_new(NULL);
    struct pair p;
    pair_open(&p, loop, NULL, 0, 1 << 20, 1 << 20, 200);
    char buf[70001];
    size_t len;
    client_send(&p, true, 0x1, "ab\xc0\xaf", 4, true);
    assert_int_equal(client_frame(&p, loop, buf, &len), 0x8);
    assert_int_equal(close_code_of(buf, len), 1007);
    assert_true(client_eof(&p, loop));
    assert_int_equal(p.s.messages, 0);
    assert_int_equal(p.s.closes, 1);
    assert_int_equal(p.s.releases, 1);
    close(p.fds[1]);
    rt_loop_free(loop);
}

static void test_ws_too_big(void **state)
{
    (void)state;
    rt_loop *loop = rt_loop_new(NULL);
    struct pair p;
    pair_open(&p, loop, NULL, 0, 100, 1 << 20, 200);
    char buf[70001], payload[101];
    memset(payload, 'a', sizeof(payload));
    size_t len;
    /* Exactly the limit passes, one more byte does not (fragments count together). */
    client_send(&p, true, 0x1, payload, 100, true);
    client_send(&p, false, 0x1, payload, 60, true);
    client_send(&p, true, 0x0, payload, 41, true);
    assert_int_equal(client_frame(&p, loop, buf, &len), 0x8);
    assert_int_equal(close_code_of(buf, len), 1009);
    assert_int_equal(p.s.messages, 1);
    assert_true(client_eof(&p, loop));
    assert_int_equal(p.s.close_code, 1009);
    close(p.fds[1]);
    rt_loop_free(loop);
}

static void test_ws_unmasked(void **state)
{
    (void)state;
    rt_loop *loop = rt_loop_new(NULL);
    struct pair p;
    pair_open(&p, loop, NULL, 0, 1 << 20, 1 << 20, 200);
    char buf[70001];
    size_t len;
    client_send(&p, true, 0x1, "hi", 2, false);
    assert_int_equal(client_frame(&p, loop, buf, &len), 0x8);
    assert_int_equal(close_code_of(buf, len), 1002);
    assert_true(client_eof(&p, loop));
    assert_int_equal(p.s.messages, 0);
    close(p.fds[1]);
    rt_loop_free(loop);
}

static void test_ws_preread_and_eof(void **state)
{
    (void)state;
    rt_loop *loop = rt_loop_new(NULL);
    unsigned char pre[64];
    size_t n = wsc_build(pre, true, 0x1, "early", 5, true);
    /* Half of a second frame too: the rest comes from the socket. */
    unsigned char second[64];
    size_t n2 = wsc_build(second, true, 0x1, "later", 5, true);
    memcpy(pre + n, second, 3);
    struct pair p;
    pair_open(&p, loop, pre, n + 3, 1 << 20, 1 << 20, 200);
    bool got_one = false;
    uint64_t deadline = time_mono_ns() + 1000000000ull;
    while (p.s.messages < 1 && time_mono_ns() < deadline)
        rt_loop_run_once(loop, 5);
    got_one = p.s.messages == 1;
    assert_true(got_one);
    assert_memory_equal(p.s.last, "early", 5);
    assert_int_equal(write(p.fds[1], second + 3, n2 - 3), (ssize_t)(n2 - 3));
    deadline = time_mono_ns() + 1000000000ull;
    while (p.s.messages < 2 && time_mono_ns() < deadline)
        rt_loop_run_once(loop, 5);
    assert_int_equal(p.s.messages, 2);
    assert_memory_equal(p.s.last, "later", 5);

    /* The client vanishes without a close frame: 1006, socket released. */
    shutdown(p.fds[1], SHUT_WR);
    bool closed = false;
    deadline = time_mono_ns() + 1000000000ull;
    while (!closed && time_mono_ns() < deadline) {
        rt_loop_run_once(loop, 5);
        closed = p.s.closes == 1;
    }
    assert_true(closed);
    assert_int_equal(p.s.close_code, 1006);
    assert_int_equal(p.s.releases, 1);
    close(p.fds[1]);
    rt_loop_free(loop);
}

static void test_ws_server_close(void **state)
{
    (void)state;
    rt_loop *loop = rt_loop_new(NULL);
    struct pair p;
    pair_open(&p, loop, NULL, 0, 1 << 20, 1 << 20, 5000);
    assert_int_equal(ws_conn_send(p.s.c, false, "last words", 10), 0);
    ws_conn_close(p.s.c, 1000, "bye");
    /* Sending after close is refused (the owner gave the connection up). */
    assert_int_equal(ws_conn_send(p.s.c, false, "x", 1), -1);
    char buf[70001];
    size_t len;
    assert_int_equal(client_frame(&p, loop, buf, &len), 0x1);
    assert_memory_equal(buf, "last words", 10);
    assert_int_equal(client_frame(&p, loop, buf, &len), 0x8);
    assert_int_equal(close_code_of(buf, len), 1000);
    assert_memory_equal(buf + 2, "bye", 3);
    /* The client answers: the server lets go of the socket, without callback. */
    client_send(&p, true, 0x8, "\x03\xe8", 2, true);
    assert_true(client_eof(&p, loop));
    assert_int_equal(p.s.closes, 0);
    assert_int_equal(p.s.releases, 1);
    close(p.fds[1]);
    rt_loop_free(loop);
}

static void test_ws_close_timeout(void **state)
{
    (void)state;
    rt_loop *loop = rt_loop_new(NULL);
    struct pair p;
    pair_open(&p, loop, NULL, 0, 1 << 20, 1 << 20, 100);
    ws_conn_close(p.s.c, 1001, NULL);
    char buf[70001];
    size_t len;
    assert_int_equal(client_frame(&p, loop, buf, &len), 0x8);
    assert_int_equal(close_code_of(buf, len), 1001);
    /* The client never answers: after the timeout the socket is released. */
    uint64_t t0 = time_mono_ns();
    assert_true(client_eof(&p, loop));
    assert_true(time_mono_ns() - t0 >= 50000000ull);
    assert_int_equal(p.s.releases, 1);
    close(p.fds[1]);
    rt_loop_free(loop);
}

static void test_ws_backlog_limit(void **state)
{
    (void)state;
    rt_loop *loop = rt_loop_new(NULL);
    struct pair p;
    pair_open(&p, loop, NULL, 0, 1 << 20, 1000, 100);
    char chunk[600];
    memset(chunk, 'z', sizeof(chunk));
    assert_int_equal(ws_conn_send(p.s.c, false, chunk, 600), 0);
    assert_int_equal(ws_conn_backlog(p.s.c), 600);
    assert_int_equal(ws_conn_send(p.s.c, false, chunk, 600), -1);
    /* Once written out, there is room again. */
    char buf[70001];
    size_t len;
    assert_int_equal(client_frame(&p, loop, buf, &len), 0x1);
    assert_int_equal(ws_conn_backlog(p.s.c), 0);
    assert_int_equal(ws_conn_send(p.s.c, false, chunk, 600), 0);
    bool done = false;
    pump_until(loop, &done, 20);
    ws_conn_close(p.s.c, 1000, NULL);
    close(p.fds[1]);
    uint64_t deadline = time_mono_ns() + 1000000000ull;
    while (p.s.releases == 0 && time_mono_ns() < deadline)
        rt_loop_run_once(loop, 5);
    assert_int_equal(p.s.releases, 1);
    rt_loop_free(loop);
}

static void test_ws_set_abort(void **state)
{
    (void)state;
    rt_loop *loop = rt_loop_new(NULL);
    struct ws_set set = {0};
    struct pair p[3];
    for (int i = 0; i < 3; i++) {
        memset(&p[i], 0, sizeof(p[i]));
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, p[i].fds), 0);
        struct ws_options opt = {1000, 1000, 1000, &set};
        p[i].s.c = ws_conn_new(loop, p[i].fds[0], NULL, 0, &opt, release_cb, &p[i], &srv_handler,
                               &p[i].s, NULL);
        assert_non_null(p[i].s.c);
    }
    assert_int_equal(set.count, 3);
    ws_conn_close(p[1].s.c, 1000, NULL);
    ws_set_abort_all(&set);
    assert_int_equal(set.count, 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(p[i].s.releases, 1);
        assert_int_equal(p[i].s.closes, 0);
        close(p[i].fds[1]);
    }
    rt_loop_free(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loop_tasks_from_threads),
        cmocka_unit_test(test_loop_timers),
        cmocka_unit_test(test_loop_timer_heap),
        cmocka_unit_test(test_accept_key),
        cmocka_unit_test(test_ws_messages),
        cmocka_unit_test(test_ws_invalid_utf8),
        cmocka_unit_test(test_ws_too_big),
        cmocka_unit_test(test_ws_unmasked),
        cmocka_unit_test(test_ws_preread_and_eof),
        cmocka_unit_test(test_ws_server_close),
        cmocka_unit_test(test_ws_close_timeout),
        cmocka_unit_test(test_ws_backlog_limit),
        cmocka_unit_test(test_ws_set_abort),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
