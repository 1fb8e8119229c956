/*
 * monitor.c - one background thread that watches what libmicrohttpd does
 * not: (1) deferred requests, whose connections are suspended and so not
 * polled by the daemon; their sockets sit in our own epoll set waiting for a
 * hang-up (EPOLLRDHUP/EPOLLHUP/EPOLLERR, never EPOLLIN, so pipelined bytes stay
 * untouched), and (2) the total time one request may take to arrive: a
 * client that trickles its headers or body slower than ECHO_REQUEST_MAX_SECONDS
 * is cut off with shutdown(), which the daemon then notices as a closed
 * connection (the idle timeout alone cannot catch a client that sends one
 * byte every few seconds).
 *
 * Safety of the two lists:
 *  - Connections are added at MHD_CONNECTION_NOTIFY_STARTED and removed at
 *    _CLOSED, which libmicrohttpd calls before it closes the socket; we only
 *    shutdown() a socket while it is in our list, under our lock, so never a
 *    descriptor number that was closed and reused.
 *  - epoll events carry a slot id (index + generation), not a pointer: an
 *    event that races with http_deferred_complete finds its slot freed or
 *    reused and is ignored, so a freed handle is never touched.
 * Lock order: a deferred handle's mutex, then the monitor's mutex. The
 * monitor never calls out while holding its own mutex.
 */
#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http/internal.h"

#define WAKE_ID UINT64_MAX
#define SCAN_INTERVAL_NS 500000000ull

struct slot {
    uint32_t gen;
    struct http_deferred *d; /* NULL: free */
};

struct http_monitor {
    pthread_mutex_t mu;
    pthread_t thread;
    int epfd;
    int wakefd;
    atomic_bool quit;
    struct http_conn *conns;
    struct slot *slots;
    size_t nslots;
    size_t watched;
};

static uint64_t make_id(uint32_t index, uint32_t gen)
{
    return ((uint64_t)gen << 32) | index;
}

/* Takes a reference on the handle of a live slot, or returns NULL. */
static struct http_deferred *lookup_ref(struct http_monitor *m, uint64_t id)
{
    uint32_t index = (uint32_t)id, gen = (uint32_t)(id >> 32);
    struct http_deferred *d = NULL;
    pthread_mutex_lock(&m->mu);
    if (index < m->nslots && m->slots[index].gen == gen && m->slots[index].d) {
        d = m->slots[index].d;
        atomic_fetch_add(&d->refs, 1);
    }
    pthread_mutex_unlock(&m->mu);
    return d;
}

static void scan_deadlines(struct http_monitor *m)
{
    uint64_t now = time_mono_ns();
    size_t cut = 0;
    pthread_mutex_lock(&m->mu);
    for (struct http_conn *c = m->conns; c; c = c->next) {
        uint64_t dl = atomic_load(&c->deadline_ns);
        if (dl && now > dl && !c->cut) {
            /* The daemon sees end-of-file / an error and closes it. */
            shutdown(c->fd, SHUT_RDWR);
            c->cut = true;
            cut++;
        }
    }
    pthread_mutex_unlock(&m->mu);
    if (cut) log_info("http: cut off %zu connection(s) too slow to send their request", cut);
}

static void *monitor_main(void *arg)
{
    struct http_monitor *m = arg;
    struct epoll_event evs[64];
    uint64_t next_scan = time_mono_ns() + SCAN_INTERVAL_NS;
    while (!atomic_load(&m->quit)) {
        int n = epoll_wait(m->epfd, evs, 64, (int)(SCAN_INTERVAL_NS / 1000000));
        if (n < 0 && errno != EINTR) {
            log_error("http monitor: epoll_wait: %s", strerror(errno));
            break;
        }
        for (int i = 0; i < n; i++) {
            if (evs[i].data.u64 == WAKE_ID) {
                uint64_t v;
                ssize_t r = read(m->wakefd, &v, sizeof(v));
                (void)r;
                continue;
            }
            struct http_deferred *d = lookup_ref(m, evs[i].data.u64);
            if (d) {
                deferred_close(d, HTTP_CLOSE_CLIENT_GONE);
                deferred_unref(d);
            }
        }
        uint64_t now = time_mono_ns();
        if (now >= next_scan) {
            scan_deadlines(m);
            next_scan = now + SCAN_INTERVAL_NS;
        }
    }
    return NULL;
}

struct http_monitor *monitor_new(struct echo_err *err)
{
    struct http_monitor *m = xcalloc(1, sizeof(*m));
    pthread_mutex_init(&m->mu, NULL);
    m->epfd = epoll_create1(EPOLL_CLOEXEC);
    m->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (m->epfd < 0 || m->wakefd < 0) {
        echo_err_set(err, "http monitor: %s", strerror(errno));
        goto fail;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = WAKE_ID};
    if (epoll_ctl(m->epfd, EPOLL_CTL_ADD, m->wakefd, &ev) != 0) {
        echo_err_set(err, "http monitor: %s", strerror(errno));
        goto fail;
    }
    int rc = pthread_create(&m->thread, NULL, monitor_main, m);
    if (rc != 0) {
        echo_err_set(err, "http monitor: cannot start a thread: %s", strerror(rc));
        goto fail;
    }
    return m;
fail:
    if (m->epfd >= 0) close(m->epfd);
    if (m->wakefd >= 0) close(m->wakefd);
    pthread_mutex_destroy(&m->mu);
    free(m);
    return NULL;
}

void monitor_free(struct http_monitor *m)
{
    if (!m) return;
    atomic_store(&m->quit, true);
    uint64_t one = 1;
    ssize_t w = write(m->wakefd, &one, sizeof(one));
    (void)w;
    pthread_join(m->thread, NULL);
    close(m->epfd);
    close(m->wakefd);
    free(m->slots);
    pthread_mutex_destroy(&m->mu);
    free(m);
}

void monitor_conn_add(struct http_monitor *m, struct http_conn *c)
{
    pthread_mutex_lock(&m->mu);
    c->prev = NULL;
    c->next = m->conns;
    if (m->conns) m->conns->prev = c;
    m->conns = c;
    pthread_mutex_unlock(&m->mu);
}

void monitor_conn_remove(struct http_monitor *m, struct http_conn *c)
{
    pthread_mutex_lock(&m->mu);
    if (c->prev)
        c->prev->next = c->next;
    else
        m->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    c->prev = c->next = NULL;
    pthread_mutex_unlock(&m->mu);
}

int monitor_watch(struct http_monitor *m, struct http_deferred *d)
{
    pthread_mutex_lock(&m->mu);
    size_t index = m->nslots;
    for (size_t i = 0; i < m->nslots; i++) {
        if (!m->slots[i].d) {
            index = i;
            break;
        }
    }
    if (index == m->nslots) {
        size_t n = m->nslots ? m->nslots * 2 : 64;
        m->slots = xrealloc(m->slots, n * sizeof(*m->slots));
        memset(m->slots + m->nslots, 0, (n - m->nslots) * sizeof(*m->slots));
        m->nslots = n;
    }
    struct slot *s = &m->slots[index];
    s->gen++;
    if (s->gen == 0 || make_id((uint32_t)index, s->gen) == WAKE_ID) s->gen = 1;
    uint64_t id = make_id((uint32_t)index, s->gen);
    struct epoll_event ev = {.events = EPOLLRDHUP, .data.u64 = id};
    int rc = 0;
    if (epoll_ctl(m->epfd, EPOLL_CTL_ADD, d->fd, &ev) != 0) {
        log_error("http monitor: cannot watch a deferred request: %s", strerror(errno));
        rc = HTTP_ERR_SYSTEM;
    } else {
        s->d = d;
        d->watch_id = id;
        m->watched++;
    }
    pthread_mutex_unlock(&m->mu);
    return rc;
}

void monitor_unwatch(struct http_monitor *m, struct http_deferred *d)
{
    if (!d->watch_id) return;
    pthread_mutex_lock(&m->mu);
    uint32_t index = (uint32_t)d->watch_id;
    if (index < m->nslots && m->slots[index].d == d) {
        epoll_ctl(m->epfd, EPOLL_CTL_DEL, d->fd, NULL);
        m->slots[index].d = NULL;
        m->watched--;
    }
    d->watch_id = 0;
    pthread_mutex_unlock(&m->mu);
}

void monitor_close_all(struct http_monitor *m, enum http_close_reason why)
{
    pthread_mutex_lock(&m->mu);
    size_t n = 0;
    struct http_deferred **list = xmalloc((m->watched + 1) * sizeof(*list));
    for (size_t i = 0; i < m->nslots; i++) {
        if (m->slots[i].d) {
            list[n++] = m->slots[i].d;
            atomic_fetch_add(&m->slots[i].d->refs, 1);
        }
    }
    pthread_mutex_unlock(&m->mu);
    for (size_t i = 0; i < n; i++) {
        deferred_close(list[i], why);
        deferred_unref(list[i]);
    }
    free(list);
}

size_t monitor_watched(struct http_monitor *m)
{
    pthread_mutex_lock(&m->mu);
    size_t n = m->watched;
    pthread_mutex_unlock(&m->mu);
    return n;
}
