/* pool.c - persistent worker threads released by a generation counter.
 * Workers spin briefly on the counter (regions in a decode step follow each
 * other within microseconds), then sleep on a condition variable. */
#include "pool.h"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BN_POOL_SPIN 20000

/* One step of a spin wait: a pause (the sibling hyperthread and the
 * memory system get the slot), a sched_yield every 1024 steps. */
static inline void pool_relax(int i) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
    if ((i & 1023) == 1023) sched_yield();
}

struct bn_pool {
    int n;                    /* threads including the caller */
    pthread_t *tid;
    pthread_mutex_t mu;
    pthread_cond_t wake;      /* workers wait here for a new generation */
    pthread_cond_t done_cv;   /* the caller waits here for pending == 0 */
    atomic_uint gen;          /* bumped once per region */
    atomic_int pending;       /* workers still running the current region */
    atomic_int quit;
    bn_pool_fn fn;
    void *ctx;
    struct bn_pool_arg { struct bn_pool *p; int ith; } *args;
    /* region timers (bn_pool_profile): stat[] is the caller's, wstat[] one
     * row of BN_POOL_STATS_MAX per worker, so no two threads add to one
     * field; slot and t_start are published with the generation */
    int prof, n_stat, slot;
    double t_start, t_end;
    bn_pool_stat stat[BN_POOL_STATS_MAX];
    bn_pool_stat *wstat;
};

static double pool_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

/* Wait until the generation moves past seen; 0 if a quit was requested. */
static unsigned pool_wait_gen(bn_pool *p, unsigned seen) {
    for (int i = 0; i < BN_POOL_SPIN; i++) {
        unsigned g = atomic_load_explicit(&p->gen, memory_order_acquire);
        if (g != seen) return g;
        pool_relax(i);
    }
    pthread_mutex_lock(&p->mu);
    unsigned g;
    while ((g = atomic_load_explicit(&p->gen, memory_order_acquire)) == seen)
        pthread_cond_wait(&p->wake, &p->mu);
    pthread_mutex_unlock(&p->mu);
    return g;
}

/* Worker loop: run each region's fn, then signal completion. */
static void *pool_worker(void *arg) {
    struct bn_pool_arg *a = arg;
    bn_pool *p = a->p;
    unsigned seen = 0;
    for (;;) {
        seen = pool_wait_gen(p, seen);
        if (atomic_load(&p->quit)) return NULL;
        if (p->prof) {
            const double t0 = pool_ms();
            p->fn(p->ctx, a->ith, p->n);
            bn_pool_stat *w = &p->wstat[(size_t)a->ith * BN_POOL_STATS_MAX + p->slot];
            w->work_ms += pool_ms() - t0;
            w->start_ms += t0 - p->t_start;
        } else {
            p->fn(p->ctx, a->ith, p->n);
        }
        if (atomic_fetch_sub_explicit(&p->pending, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->done_cv);
            pthread_mutex_unlock(&p->mu);
        }
    }
}

/* Create the pool; threads live until bn_pool_free. */
int bn_pool_new(bn_pool **out, int n_threads, bn_err *e) {
    *out = NULL;
    if (n_threads < 1 || n_threads > 1024) return bn_errf(e, "pool: threads: %d out of range 1..1024", n_threads);
    bn_pool *p = bn_calloc(1, sizeof *p, e);
    if (!p) return -1;
    p->n = n_threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done_cv, NULL);
    atomic_init(&p->gen, 0);
    atomic_init(&p->pending, 0);
    atomic_init(&p->quit, 0);
    p->tid = bn_calloc((size_t)n_threads, sizeof *p->tid, e);
    p->args = bn_calloc((size_t)n_threads, sizeof *p->args, e);
    if (!p->tid || !p->args) { free(p->tid); free(p->args); free(p); return -1; }
    /* workers start with every signal blocked, so asynchronous signals go to
     * the caller's thread: a tool's SIGINT handler that removes its temp
     * file then cannot run in a worker while the main thread is creating
     * that file (bn-quantize.bats once found big.gguf.tmp.PID left behind) */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int made = 1;
    for (; made < n_threads; made++) {
        p->args[made].p = p;
        p->args[made].ith = made;
        if (pthread_create(&p->tid[made], NULL, pool_worker, &p->args[made]) != 0) break;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (made < n_threads) {
        p->n = made; /* only made-1 workers exist */
        bn_pool_free(p);
        return bn_errf(e, "pool: pthread_create: failed for thread %d", made);
    }
    *out = p;
    return 0;
}

/* Stop and join the workers. */
void bn_pool_free(bn_pool *p) {
    if (!p) return;
    atomic_store(&p->quit, 1);
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add_explicit(&p->gen, 1, memory_order_release);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n; i++) pthread_join(p->tid[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done_cv);
    free(p->wstat);
    free(p->tid);
    free(p->args);
    free(p);
}

int bn_pool_threads(const bn_pool *p) { return p->n; }

/* One parallel region: publish fn, bump the generation, run share 0 here,
 * then wait for every worker (the region's single barrier). */
static void pool_join(bn_pool *p) {
    for (int i = 0; i < BN_POOL_SPIN; i++) {
        if (atomic_load_explicit(&p->pending, memory_order_acquire) == 0) return;
        pool_relax(i);
    }
    pthread_mutex_lock(&p->mu);
    while (atomic_load_explicit(&p->pending, memory_order_acquire) != 0)
        pthread_cond_wait(&p->done_cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

/* The slot of fn in stat[] (the last one collects any past the table). */
static int pool_slot(bn_pool *p, bn_pool_fn fn) {
    for (int i = 0; i < p->n_stat; i++)
        if (p->stat[i].fn == fn) return i;
    if (p->n_stat == BN_POOL_STATS_MAX) return BN_POOL_STATS_MAX - 1;
    p->stat[p->n_stat].fn = fn;
    return p->n_stat++;
}

void bn_pool_run(bn_pool *p, bn_pool_fn fn, void *ctx) {
    double t0 = 0, t1 = 0;
    if (p->prof) {
        t0 = pool_ms();
        p->slot = pool_slot(p, fn);
        p->t_start = t0;
    }
    if (p->n == 1) {
        fn(ctx, 0, 1);
    } else {
        p->fn = fn;
        p->ctx = ctx;
        atomic_store_explicit(&p->pending, p->n - 1, memory_order_relaxed);
        pthread_mutex_lock(&p->mu);
        atomic_fetch_add_explicit(&p->gen, 1, memory_order_release);
        pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->mu);
        fn(ctx, 0, p->n);
        if (p->prof) t1 = pool_ms();
        pool_join(p);
    }
    if (p->prof) {
        const double t2 = pool_ms();
        if (p->n == 1) t1 = t2;
        bn_pool_stat *s = &p->stat[p->slot];
        s->calls++;
        s->own_ms += t1 - t0;
        s->wait_ms += t2 - t1;
        if (p->t_end > 0) s->before_ms += t0 - p->t_end;
        p->t_end = t2;
    }
}

/* Clear the timers and turn them on (on != 0) or off. Not while a region
 * runs; the per-worker rows are allocated on the first call (without
 * memory, profiling stays off). */
void bn_pool_profile(bn_pool *p, int on) {
    if (on && !p->wstat) p->wstat = calloc((size_t)p->n * BN_POOL_STATS_MAX, sizeof *p->wstat);
    memset(p->stat, 0, sizeof p->stat);
    if (p->wstat) memset(p->wstat, 0, (size_t)p->n * BN_POOL_STATS_MAX * sizeof *p->wstat);
    p->n_stat = 0;
    p->t_end = 0;
    p->prof = on && p->wstat;
}

int bn_pool_stats(const bn_pool *p, bn_pool_stat *out, int max) {
    for (int i = 0; i < p->n_stat && i < max; i++) {
        out[i] = p->stat[i];
        for (int t = 1; t < p->n; t++) {
            const bn_pool_stat *w = &p->wstat[(size_t)t * BN_POOL_STATS_MAX + i];
            out[i].work_ms += w->work_ms;
            out[i].start_ms += w->start_ms;
        }
    }
    return p->n_stat;
}

/* Even split of [0, n) in units of align; deterministic in (n, ith, nth). */
void bn_pool_split(int64_t n, int ith, int nth, int64_t align, int64_t *lo, int64_t *hi) {
    if (align < 1) align = 1;
    int64_t units = (n + align - 1) / align;
    int64_t u0 = units * ith / nth, u1 = units * (ith + 1) / nth;
    int64_t a = u0 * align, b = u1 * align;
    if (a > n) a = n;
    if (b > n) b = n;
    *lo = a;
    *hi = b;
}

/* Split of [0, n) by cost rather than count: causal attention's items cost
 * in proportion to their token's keys, and an even count split of a
 * 512-token batch left one of two threads ~20% more of the work. Boundary k
 * is the first multiple of align at which the running cost reaches k/nth of
 * the total (the last share ends at n). At most 2n cost calls; deterministic. */
void bn_pool_split_cost(int64_t n, int ith, int nth, int64_t align, bn_pool_cost_fn cost, const void *ctx, int64_t *lo,
                        int64_t *hi) {
    if (align < 1) align = 1;
    int64_t total = 0;
    for (int64_t u = 0; u < n; u++) total += cost(ctx, u);
    /* one walk for both boundaries: the second target is past the first */
    int64_t bound[2] = {0, n}, run = 0, b = 0;
    for (int k = 0; k < 2; k++) {
        const int part = ith + k;
        if (part == 0 || part == nth) continue;
        for (; b < n && run * nth < total * part; b += align) {
            const int64_t e = b + align < n ? b + align : n;
            for (int64_t u = b; u < e; u++) run += cost(ctx, u);
        }
        bound[k] = b < n ? b : n;
    }
    *lo = bound[0];
    *hi = bound[1];
}
