/*
 * pool.h - the engine's persistent thread pool: n-1 worker threads plus the
 * calling thread run one function in parallel, fn(arg, ith, nth) for ith in
 * [0, nth), and the call returns when all are done. Used by the kernels
 * (matrix products) and by the model for other parallel loops.
 *
 * Workers spin briefly after a run (the next run of a forward pass usually
 * follows within microseconds) and then sleep on a condition variable, so an
 * idle pool costs no CPU.
 *
 * Threads: kern_pool_run is not re-entrant (fn must not call kern_pool_run on
 * the same pool) and one caller at a time per pool: callers that share a pool
 * serialize themselves. kern_pool_size is safe from any thread. kern_pool_free
 * must not race with a run.
 */
#ifndef ECHO_LLM_POOL_H
#define ECHO_LLM_POOL_H

#include <stddef.h>

struct kern_pool;

/* n_threads total including the caller; 0 = one per online core (at most
 * 256). Never NULL: when the system refuses a worker thread the error is
 * logged and the pool is smaller (down to the caller alone). */
struct kern_pool *kern_pool_new(int n_threads);
/* Stops and joins the workers. NULL is ignored. */
void kern_pool_free(struct kern_pool *p);
/* Number of threads including the caller (1 for a NULL pool). */
int kern_pool_size(const struct kern_pool *p);
/*
 * Runs fn(arg, ith, nth) once for each ith in [0, nth), nth = kern_pool_size,
 * in parallel, and returns when all are done. The caller runs ith 0, each
 * worker one index, and an index no worker has started when the caller is
 * free runs on the caller too (so a worker the OS has not scheduled does not
 * hold the run up): ith is a share of the work, each running on one thread
 * at a time, not the identity of a thread. A NULL pool runs fn(arg, 0, 1) on
 * the caller.
 */
void kern_pool_run(struct kern_pool *p, void (*fn)(void *arg, int ith, int nth), void *arg);
/* A buffer of at least `bytes` (64-byte aligned) owned by the pool, for the
 * pool's caller to hand its threads (kern_matmul keeps its quantized
 * activations there instead of allocating them per call). Valid until the
 * next kern_pool_scratch call or kern_pool_free; the same caller rule as
 * kern_pool_run applies. NULL for a NULL pool or when memory runs out. */
void *kern_pool_scratch(struct kern_pool *p, size_t bytes);

#endif
