/*
 * pool.c - the engine's persistent thread pool (see pool.h).
 *
 * One run: the caller publishes fn/arg, resets the index counter `next_ith`
 * and `pending` (indices not yet finished) and bumps the generation counter
 * `gen`. Every thread that takes part claims indices from `next_ith` and
 * runs fn for each: the caller takes 0, then, like any worker that sees the
 * new generation, whatever is left. So each index runs exactly once, and a
 * worker that the OS has not scheduled (the machine is shared) does not
 * hold the run up: the caller runs its index instead. The caller returns
 * when `pending` reaches 0.
 *
 * Waiting is first a short spin (a forward pass issues runs microseconds
 * apart, and a futex round trip costs tens of microseconds), then a sleep on
 * a condition variable. Sleepers announce themselves (`sleeping`,
 * `caller_sleeping`) before re-checking the condition under the mutex, and
 * the other side bumps its counter before reading the announcement; with
 * sequentially consistent atomics one of the two always sees the other (the
 * Dekker pattern), so a wake-up is never lost and the fast path takes no
 * lock. A worker claims an index only when its claim reads the value the
 * caller stored for this run, which orders its reads of fn/arg after the
 * caller's writes; the caller rewrites them only after every claimed index
 * has finished.
 */
#include "llm/pool.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/core.h"

/* How long a waiting thread spins before it sleeps. Workers spin longer
 * than the caller: between two runs of a forward pass the caller does a
 * little single-threaded work (norms, attention), while the caller's wait
 * for the workers is either short or a sign that a worker was preempted by
 * another process, whose core spinning would only take away. */
#define POOL_WORKER_SPIN_NS 200000u
#define POOL_CALLER_SPIN_NS 50000u
#define POOL_MAX_THREADS 256

struct kern_pool {
    int n; /* threads including the caller */
    pthread_t *threads;

    /* The current job, written by the caller before it bumps gen. */
    void (*fn)(void *arg, int ith, int nth);
    void *arg;

    atomic_uint gen;     /* bumped once per run (and by kern_pool_free) */
    atomic_int next_ith; /* next index of the current run to claim */
    atomic_int pending;  /* indices 1..n-1 of the current run not finished */
    atomic_int sleeping; /* workers asleep on `wake` */
    atomic_bool caller_sleeping;
    atomic_bool quit;

    pthread_mutex_t mu;
    pthread_cond_t wake; /* workers wait here for a new generation */
    pthread_cond_t done; /* the caller waits here for pending == 0 */

    void *scratch; /* kern_pool_scratch's buffer */
    size_t scratch_bytes;
};

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Spins until *gen differs from seen or the budget is spent; returns the last value read. */
static unsigned spin_on_gen(atomic_uint *gen, unsigned seen, uint64_t budget_ns)
{
    uint64_t start = now_ns();
    for (;;) {
        for (int i = 0; i < 64; i++) {
            unsigned g = atomic_load_explicit(gen, memory_order_acquire);
            if (g != seen) return g;
            cpu_relax();
        }
        if (now_ns() - start > budget_ns) return atomic_load_explicit(gen, memory_order_acquire);
    }
}

/* Claims and runs indices of the current run until none is left. */
static void run_claimed(struct kern_pool *p, bool is_caller)
{
    for (;;) {
        int i = atomic_fetch_add_explicit(&p->next_ith, 1, memory_order_acq_rel);
        if (i >= p->n) return;
        p->fn(p->arg, i, p->n);
        if (atomic_fetch_sub(&p->pending, 1) == 1 && !is_caller &&
            atomic_load(&p->caller_sleeping)) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_broadcast(&p->done);
            pthread_mutex_unlock(&p->mu);
        }
    }
}

static void *worker_main(void *p_)
{
    struct kern_pool *p = p_;
    unsigned seen = 0;

    for (;;) {
        unsigned g = spin_on_gen(&p->gen, seen, POOL_WORKER_SPIN_NS);
        if (g == seen) {
            pthread_mutex_lock(&p->mu);
            atomic_fetch_add(&p->sleeping, 1);
            while ((g = atomic_load(&p->gen)) == seen)
                pthread_cond_wait(&p->wake, &p->mu);
            atomic_fetch_sub(&p->sleeping, 1);
            pthread_mutex_unlock(&p->mu);
        }
        seen = g;
        if (atomic_load(&p->quit)) break;
        run_claimed(p, false);
    }
    return NULL;
}

static int online_cores(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0) return n;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

struct kern_pool *kern_pool_new(int n_threads)
{
    if (n_threads <= 0) n_threads = online_cores();
    if (n_threads > POOL_MAX_THREADS) n_threads = POOL_MAX_THREADS;

    struct kern_pool *p = xcalloc(1, sizeof(*p));
    p->n = 1;
    atomic_init(&p->gen, 0);
    atomic_init(&p->next_ith, 0);
    atomic_init(&p->pending, 0);
    atomic_init(&p->sleeping, 0);
    atomic_init(&p->caller_sleeping, false);
    atomic_init(&p->quit, false);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
    if (n_threads == 1) return p;

    p->threads = xcalloc((size_t)n_threads - 1, sizeof(*p->threads));

    /* Workers block every signal: signals are the main program's business. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (int i = 0; i < n_threads - 1; i++) {
        int rc = pthread_create(&p->threads[i], NULL, worker_main, p);
        if (rc != 0) {
            log_error("kern_pool: cannot start worker thread %d of %d: %s", i + 1, n_threads - 1,
                      strerror(rc));
            break;
        }
        pthread_setname_np(p->threads[i], "echo-kern");
        p->n++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return p;
}

void kern_pool_free(struct kern_pool *p)
{
    if (!p) return;
    atomic_store(&p->quit, true);
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add(&p->gen, 1);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n - 1; i++)
        pthread_join(p->threads[i], NULL);
    pthread_cond_destroy(&p->done);
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->mu);
    free(p->scratch);
    free(p->threads);
    free(p);
}

void *kern_pool_scratch(struct kern_pool *p, size_t bytes)
{
    if (!p) return NULL;
    if (bytes > p->scratch_bytes) {
        /* grow by half again, so that a slowly growing demand does not reallocate every time */
        size_t want = bytes + bytes / 2;
        want = (want + 63) & ~(size_t)63;
        void *buf = aligned_alloc(64, want);
        if (!buf) return NULL;
        free(p->scratch);
        p->scratch = buf;
        p->scratch_bytes = want;
    }
    return p->scratch;
}

int kern_pool_size(const struct kern_pool *p)
{
    return p ? p->n : 1;
}

void kern_pool_run(struct kern_pool *p, void (*fn)(void *arg, int ith, int nth), void *arg)
{
    if (!p || p->n == 1) {
        fn(arg, 0, 1);
        return;
    }
    p->fn = fn;
    p->arg = arg;
    atomic_store_explicit(&p->pending, p->n - 1, memory_order_relaxed);
    /* release: a claim that reads 1 sees fn, arg and pending */
    atomic_store_explicit(&p->next_ith, 1, memory_order_release);
    /* seq_cst: wakes spinners, and orders against the `sleeping` read. */
    atomic_fetch_add(&p->gen, 1);
    if (atomic_load(&p->sleeping) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->mu);
    }

    fn(arg, 0, p->n);
    run_claimed(p, true);

    uint64_t start = now_ns();
    while (atomic_load_explicit(&p->pending, memory_order_acquire) != 0) {
        for (int i = 0; i < 64; i++)
            cpu_relax();
        if (now_ns() - start > POOL_CALLER_SPIN_NS) {
            pthread_mutex_lock(&p->mu);
            atomic_store(&p->caller_sleeping, true);
            while (atomic_load(&p->pending) != 0)
                pthread_cond_wait(&p->done, &p->mu);
            atomic_store(&p->caller_sleeping, false);
            pthread_mutex_unlock(&p->mu);
            break;
        }
    }
}
