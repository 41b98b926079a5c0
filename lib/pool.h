/* pool.h - a small pthread pool for the forward pass.
 *
 * bn_pool_run(p, fn, ctx) calls fn(ctx, ith, nth) once on each of the nth
 * threads (the caller is thread 0) and returns when all have finished: one
 * barrier per parallel region. Work is split by the callee from (ith, nth)
 * with bn_pool_split() or bn_pool_split_cost(), pure functions of their
 * arguments, or dealt in chunks from a counter the callee keeps (a batch's
 * matmul rows); the forward pass computes every row and item the same way
 * on any thread, so its results do not depend on who took what. */
#ifndef BN_POOL_H
#define BN_POOL_H

#include <stdint.h>
#include "util.h"

typedef struct bn_pool bn_pool; /* opaque */

typedef void (*bn_pool_fn)(void *ctx, int ith, int nth);

/* Start n_threads - 1 workers (n_threads >= 1). */
int bn_pool_new(bn_pool **out, int n_threads, bn_err *e);
void bn_pool_free(bn_pool *p);
int bn_pool_threads(const bn_pool *p);

/* Run fn on every thread and wait for all of them. Not reentrant. */
void bn_pool_run(bn_pool *p, bn_pool_fn fn, void *ctx);

/* Region timers, off by default: where a step's time goes, per region
 * function, to tell the work of the regions from the hand-offs between
 * them (docs/PERFORMANCE.md "How to measure"). bn_pool_profile clears the
 * figures and turns them on or off; bn_pool_stats copies up to max of them,
 * regions in the order first seen, and returns how many there are. */
typedef struct bn_pool_stat {
    bn_pool_fn fn;
    uint64_t calls;
    double own_ms;    /* thread 0 running its share */
    double wait_ms;   /* thread 0, from the end of its share to the last worker's */
    double work_ms;   /* the workers running their shares, summed over them */
    double start_ms;  /* the workers, from the region's start to theirs, summed */
    double before_ms; /* the caller, from the previous region's end to this one's start */
} bn_pool_stat;
#define BN_POOL_STATS_MAX 32
void bn_pool_profile(bn_pool *p, int on);
int bn_pool_stats(const bn_pool *p, bn_pool_stat *out, int max);
/* The share [*lo, *hi) of [0, n) for thread ith of nth, with boundaries
 * rounded to multiples of align (the last share takes the rest). */
void bn_pool_split(int64_t n, int ith, int nth, int64_t align, int64_t *lo, int64_t *hi);
/* The same by cost: unit u costs cost(ctx, u) >= 0, and each share's
 * boundaries fall where the running cost passes ith/nth and (ith+1)/nth of
 * the total, on multiples of align; the shares cover [0, n) in order. */
typedef int64_t (*bn_pool_cost_fn)(const void *ctx, int64_t u);
void bn_pool_split_cost(int64_t n, int ith, int nth, int64_t align, bn_pool_cost_fn cost, const void *ctx, int64_t *lo,
                        int64_t *hi);

#endif
