/*
 * loop.h - the realtime event loop: one thread, one epoll set, a task queue
 * that other threads fill (woken through an eventfd) and one-shot timers.
 *
 * Everything realtime/ keeps per connection (WebSocket contexts, Engine.IO
 * sessions, Socket.IO sockets) belongs to this thread, so that state needs no
 * lock: other threads only ever rt_loop_post() a task that the loop runs.
 *
 * Threads: rt_loop_post may be called from any thread. Every other function
 * is for the loop thread only (or for the single owner before the thread is
 * started / after it has been joined).
 */
#ifndef ECHO_REALTIME_LOOP_H
#define ECHO_REALTIME_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/core.h"

typedef struct rt_loop rt_loop;

/* A task run on the loop thread. `cancelled` is true when the loop stopped
 * before running it: the task must then only release what it owns. */
typedef void (*rt_task_fn)(void *arg, bool cancelled);

/* A watched file descriptor; embed it in the owner's struct. on_io receives the
 * epoll events (EPOLLIN, EPOLLOUT, EPOLLERR, EPOLLHUP, ...). */
struct rt_watch {
    int fd;
    void (*on_io)(struct rt_watch *w, uint32_t events);
};

/* A one-shot timer; embed it in the owner's struct and set `fn` before arming. */
struct rt_timer {
    void (*fn)(struct rt_timer *t);
    uint64_t when_ns;  /* time_mono_ns() deadline while armed */
    size_t heap_index; /* position in the loop's heap; SIZE_MAX when not armed */
};

rt_loop *rt_loop_new(struct echo_err *err);
/* Starts the loop thread. */
int rt_loop_start(rt_loop *loop, struct echo_err *err);
/* Asks the thread to stop and joins it (a no-op when it was never started).
 * Afterwards the caller is the loop's owner: it may tear down watches and
 * timers, and run rt_loop_run_once itself. */
void rt_loop_stop(rt_loop *loop);
/* After rt_loop_stop: from now on rt_loop_post runs tasks at once as
 * cancelled, and the tasks still queued are cancelled (fn(arg, true)). */
void rt_loop_close(rt_loop *loop);
/* Stops and closes the loop if needed, then frees it. */
void rt_loop_free(rt_loop *loop);

/*
 * Queues fn(arg, false) to run on the loop thread, in posting order. Any
 * thread. Once the loop has stopped, fn(arg, true) runs at once in the
 * caller's thread instead, so fn is always called exactly once.
 */
void rt_loop_post(rt_loop *loop, rt_task_fn fn, void *arg);

/* True on the loop thread (or for the owner when no thread runs). */
bool rt_loop_in_loop(const rt_loop *loop);

/* Runs one iteration: waits up to timeout_ms (-1: until something happens,
 * bounded by the next timer), dispatches I/O, queued tasks, due timers and
 * deferred frees. For tests that drive the loop without its thread. */
void rt_loop_run_once(rt_loop *loop, int timeout_ms);

int rt_loop_watch(rt_loop *loop, struct rt_watch *w, uint32_t events);
int rt_loop_rewatch(rt_loop *loop, struct rt_watch *w, uint32_t events);
/* Stops watching; any event of w still pending in this iteration is dropped. */
void rt_loop_unwatch(rt_loop *loop, struct rt_watch *w);

/* Arms (or re-arms) t to fire at when_ns; cancel is a no-op when not armed. */
void rt_timer_init(struct rt_timer *t, void (*fn)(struct rt_timer *t));
void rt_loop_timer_set(rt_loop *loop, struct rt_timer *t, uint64_t when_ns);
void rt_loop_timer_cancel(rt_loop *loop, struct rt_timer *t);
bool rt_timer_armed(const struct rt_timer *t);

/*
 * Calls free_fn(p) at the end of the current iteration, after every event of
 * it was dispatched, so an object whose watch fired earlier in the same batch
 * is never used after being freed.
 */
void rt_loop_defer_free(rt_loop *loop, void (*free_fn)(void *p), void *p);

#endif
