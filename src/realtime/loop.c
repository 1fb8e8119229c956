/*
 * loop.c - the realtime event loop (see loop.h): epoll, an eventfd-woken task
 * queue, a binary min-heap of one-shot timers and an end-of-iteration free
 * list.
 *
 * The task queue is the only state shared with other threads; its mutex is
 * held just long enough to link or unlink nodes, never while a task runs.
 * A poster writes the eventfd only when it makes the queue non-empty: the loop
 * reads the eventfd before taking the whole list, so an item can never sit in
 * the queue without a wake-up pending (the first item after a take always
 * writes, and that write comes after the loop's read).
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "realtime/loop.h"

struct task {
    struct task *next;
    rt_task_fn fn;
    void *arg;
};

struct deferred_free {
    void (*fn)(void *p);
    void *p;
};

struct rt_loop {
    int epfd;
    int evfd;
    struct rt_watch wake_watch;

    pthread_mutex_t lock; /* guards head, tail, stopped */
    struct task *head, *tail;
    bool stopped;

    pthread_t thread;
    bool started;
    bool quit; /* loop thread only: leave the run loop */
    pthread_t owner;
    bool owner_set;

    struct rt_timer **heap;
    size_t heap_len, heap_cap;

    struct deferred_free *frees;
    size_t frees_len, frees_cap;
};

/* ---- timers: binary min-heap on when_ns ---- */

static void heap_place(rt_loop *l, size_t i, struct rt_timer *t)
{
    l->heap[i] = t;
    t->heap_index = i;
}

static void heap_up(rt_loop *l, size_t i)
{
    struct rt_timer *t = l->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (l->heap[parent]->when_ns <= t->when_ns) break;
        heap_place(l, i, l->heap[parent]);
        i = parent;
    }
    heap_place(l, i, t);
}

static void heap_down(rt_loop *l, size_t i)
{
    struct rt_timer *t = l->heap[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= l->heap_len) break;
        if (c + 1 < l->heap_len && l->heap[c + 1]->when_ns < l->heap[c]->when_ns) c++;
        if (t->when_ns <= l->heap[c]->when_ns) break;
        heap_place(l, i, l->heap[c]);
        i = c;
    }
    heap_place(l, i, t);
}

void rt_timer_init(struct rt_timer *t, void (*fn)(struct rt_timer *t))
{
    t->fn = fn;
    t->when_ns = 0;
    t->heap_index = SIZE_MAX;
}

bool rt_timer_armed(const struct rt_timer *t)
{
    return t->heap_index != SIZE_MAX;
}

void rt_loop_timer_cancel(rt_loop *l, struct rt_timer *t)
{
    if (!rt_timer_armed(t)) return;
    size_t i = t->heap_index;
    t->heap_index = SIZE_MAX;
    l->heap_len--;
    if (i == l->heap_len) return;
    heap_place(l, i, l->heap[l->heap_len]);
    /* The moved timer may belong above or below its new slot. */
    if (i > 0 && l->heap[(i - 1) / 2]->when_ns > l->heap[i]->when_ns)
        heap_up(l, i);
    else
        heap_down(l, i);
}

void rt_loop_timer_set(rt_loop *l, struct rt_timer *t, uint64_t when_ns)
{
    rt_loop_timer_cancel(l, t);
    if (l->heap_len == l->heap_cap) {
        l->heap_cap = l->heap_cap ? l->heap_cap * 2 : 64;
        l->heap = xrealloc(l->heap, l->heap_cap * sizeof(*l->heap));
    }
    t->when_ns = when_ns;
    heap_place(l, l->heap_len++, t);
    heap_up(l, l->heap_len - 1);
}

static void run_timers(rt_loop *l)
{
    uint64_t now = time_mono_ns();
    while (l->heap_len > 0 && l->heap[0]->when_ns <= now) {
        struct rt_timer *t = l->heap[0];
        rt_loop_timer_cancel(l, t);
        t->fn(t);
    }
}

/* ---- tasks ---- */

static void wake(rt_loop *l)
{
    uint64_t one = 1;
    /* EAGAIN means the counter is already non-zero: a wake-up is pending. */
    while (write(l->evfd, &one, sizeof(one)) < 0 && errno == EINTR) {
    }
}

void rt_loop_post(rt_loop *l, rt_task_fn fn, void *arg)
{
    struct task *t = xmalloc(sizeof(*t));
    t->next = NULL;
    t->fn = fn;
    t->arg = arg;
    pthread_mutex_lock(&l->lock);
    if (l->stopped) {
        pthread_mutex_unlock(&l->lock);
        free(t);
        fn(arg, true);
        return;
    }
    bool was_empty = l->head == NULL;
    if (l->tail)
        l->tail->next = t;
    else
        l->head = t;
    l->tail = t;
    pthread_mutex_unlock(&l->lock);
    if (was_empty) wake(l);
}

static void run_tasks(rt_loop *l)
{
    uint64_t count;
    while (read(l->evfd, &count, sizeof(count)) < 0 && errno == EINTR) {
    }
    pthread_mutex_lock(&l->lock);
    struct task *t = l->head;
    l->head = l->tail = NULL;
    pthread_mutex_unlock(&l->lock);
    while (t) {
        struct task *next = t->next;
        t->fn(t->arg, false);
        free(t);
        t = next;
    }
}

static void on_wake(struct rt_watch *w, uint32_t events)
{
    (void)w;
    (void)events;
    /* The tasks themselves run after the I/O batch (run_once). */
}

/* ---- deferred frees ---- */

void rt_loop_defer_free(rt_loop *l, void (*free_fn)(void *p), void *p)
{
    if (l->frees_len == l->frees_cap) {
        l->frees_cap = l->frees_cap ? l->frees_cap * 2 : 16;
        l->frees = xrealloc(l->frees, l->frees_cap * sizeof(*l->frees));
    }
    l->frees[l->frees_len].fn = free_fn;
    l->frees[l->frees_len].p = p;
    l->frees_len++;
}

static void run_frees(rt_loop *l)
{
    /* A free function may defer more frees; run until the list is empty. */
    while (l->frees_len > 0) {
        struct deferred_free f = l->frees[--l->frees_len];
        f.fn(f.p);
    }
}

/* ---- watches ---- */

int rt_loop_watch(rt_loop *l, struct rt_watch *w, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = w};
    return epoll_ctl(l->epfd, EPOLL_CTL_ADD, w->fd, &ev);
}

int rt_loop_rewatch(rt_loop *l, struct rt_watch *w, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = w};
    return epoll_ctl(l->epfd, EPOLL_CTL_MOD, w->fd, &ev);
}

void rt_loop_unwatch(rt_loop *l, struct rt_watch *w)
{
    if (w->fd >= 0) epoll_ctl(l->epfd, EPOLL_CTL_DEL, w->fd, NULL);
    /* A NULL handler marks the watch dead for the rest of this batch. */
    w->on_io = NULL;
}

/* ---- running ---- */

bool rt_loop_in_loop(const rt_loop *l)
{
    if (!l->owner_set) return true;
    return pthread_equal(l->owner, pthread_self()) != 0;
}

void rt_loop_run_once(rt_loop *l, int timeout_ms)
{
    if (!l->owner_set) {
        l->owner = pthread_self();
        l->owner_set = true;
    }
    if (l->heap_len > 0) {
        uint64_t now = time_mono_ns(), when = l->heap[0]->when_ns;
        /* Round up so the timer is due when we wake. */
        uint64_t ms = when > now ? (when - now + 999999) / 1000000 : 0;
        if (ms > INT32_MAX) ms = INT32_MAX;
        if (timeout_ms < 0 || (uint64_t)timeout_ms > ms) timeout_ms = (int)ms;
    }
    struct epoll_event events[64];
    int n = epoll_wait(l->epfd, events, 64, timeout_ms);
    bool woken = false;
    for (int i = 0; i < n; i++) {
        struct rt_watch *w = events[i].data.ptr;
        if (w == &l->wake_watch) {
            woken = true;
            continue;
        }
        if (w->on_io) w->on_io(w, events[i].events);
    }
    run_frees(l);
    if (woken) run_tasks(l);
    run_frees(l);
    run_timers(l);
    run_frees(l);
}

static void *loop_main(void *arg)
{
    rt_loop *l = arg;
    l->owner = pthread_self();
    l->owner_set = true;
    while (!l->quit)
        rt_loop_run_once(l, -1);
    return NULL;
}

rt_loop *rt_loop_new(struct echo_err *err)
{
    rt_loop *l = xcalloc(1, sizeof(*l));
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (l->epfd < 0) {
        echo_err_set(err, "epoll_create1: %s", strerror(errno));
        free(l);
        return NULL;
    }
    l->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (l->evfd < 0) {
        echo_err_set(err, "eventfd: %s", strerror(errno));
        close(l->epfd);
        free(l);
        return NULL;
    }
    pthread_mutex_init(&l->lock, NULL);
    l->wake_watch.fd = l->evfd;
    l->wake_watch.on_io = on_wake;
    if (rt_loop_watch(l, &l->wake_watch, EPOLLIN) != 0) {
        echo_err_set(err, "epoll_ctl: %s", strerror(errno));
        rt_loop_free(l);
        return NULL;
    }
    return l;
}

static void quit_task(void *arg, bool cancelled)
{
    rt_loop *l = arg;
    if (!cancelled) l->quit = true;
}

int rt_loop_start(rt_loop *l, struct echo_err *err)
{
    l->quit = false;
    int rc = pthread_create(&l->thread, NULL, loop_main, l);
    if (rc != 0) {
        echo_err_set(err, "pthread_create: %s", strerror(rc));
        return -1;
    }
    l->started = true;
    return 0;
}

void rt_loop_stop(rt_loop *l)
{
    if (!l->started) return;
    rt_loop_post(l, quit_task, l);
    pthread_join(l->thread, NULL);
    l->started = false;
    /* The caller is the owner from now on. */
    l->owner = pthread_self();
    l->owner_set = true;
}

void rt_loop_close(rt_loop *l)
{
    pthread_mutex_lock(&l->lock);
    l->stopped = true;
    struct task *t = l->head;
    l->head = l->tail = NULL;
    pthread_mutex_unlock(&l->lock);
    while (t) {
        struct task *next = t->next;
        t->fn(t->arg, true);
        free(t);
        t = next;
    }
    run_frees(l);
}

void rt_loop_free(rt_loop *l)
{
    if (!l) return;
    rt_loop_stop(l);
    rt_loop_close(l);
    free(l->frees);
    free(l->heap);
    pthread_mutex_destroy(&l->lock);
    close(l->evfd);
    close(l->epfd);
    free(l);
}
