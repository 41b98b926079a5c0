/* bwprobe.c - streaming-read memory bandwidth, the ceiling for decode.
 *
 * Decode of a ternary model reads every weight byte once per token, so the
 * best possible tok/s is bandwidth / bytes-per-token. This probe reads a
 * buffer much larger than the caches with T threads (each its own slice, as
 * bn-forward splits rows) and reports the best of several passes in GB/s,
 * each pass read every way of readways.h (plain wide loads, and prefetched
 * into L1 or L2 at several distances: on the 2-core EPYC VM the prefetched
 * kernels streamed faster than a plain read, which made the "roofline" a
 * floor, and on the Sapphire Rapids VM the 4 KB prefetch alone under-read
 * by 12-17%). The buffer is in 2 MB pages where the kernel allows (madvise),
 * as bn-forward's weights are. gb_per_s is the best way's; by_way has all.
 * A pass is ~20 ms and the best of many catches the VM's fastest moments:
 * on the Zen 5 EPYC VM the median pass of the same way read 5-20% below
 * the best, within a second. A decode run averages over those moments, so
 * median_gb_per_s (the best way by its median pass, by_way_median for all)
 * is the sustained read beside the peak one. Reps are capped at 101.
 * usage: bwprobe [-t THREADS] [-m MiB] [-r REPEATS]   -> one JSON line */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>
#include <unistd.h>
#include "readways.h"

#define REPS_MAX 101
typedef struct { const uint8_t *p; size_t n; uint64_t sink; pthread_barrier_t *bar; int reps; double (*all)[READ_WAYS]; int id; } job;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void *worker(void *arg) {
    job *j = arg;
    for (int r = 0; r < j->reps; r++)
        for (int w = 0; w < READ_WAYS; w++) { /* every way in each pass */
            pthread_barrier_wait(j->bar);
            double t0 = now();
            j->sink ^= read_way(j->p, j->n, w);
            pthread_barrier_wait(j->bar);
            if (j->id == 0) j->all[r][w] = now() - t0;
        }
    return NULL;
}

int main(int argc, char **argv) {
    int threads = 1, reps = 7;
    size_t mib = 1024;
    int c;
    while ((c = getopt(argc, argv, "t:m:r:")) != -1) {
        if (c == 't') threads = atoi(optarg);
        else if (c == 'm') mib = (size_t)atol(optarg);
        else if (c == 'r') reps = atoi(optarg);
        else { fprintf(stderr, "usage: bwprobe [-t THREADS] [-m MiB] [-r REPEATS]\n"); return 2; }
    }
    if (threads < 1 || threads > 256 || mib < 64 || reps < 1 || reps > REPS_MAX) { fprintf(stderr, "bwprobe: bad arguments\n"); return 2; }
    size_t n = mib << 20;
    uint8_t *buf = aligned_alloc(2u << 20, n);
    if (!buf) { fprintf(stderr, "bwprobe: out of memory\n"); return 1; }
#ifdef MADV_HUGEPAGE
    madvise(buf, n, MADV_HUGEPAGE); /* advice only: without THP the pages stay 4 KB */
#endif
    for (size_t i = 0; i < n; i += 64) buf[i] = (uint8_t)i; /* fault every page in */
    memset(buf, 1, n);
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, (unsigned)threads);
    pthread_t tid[256];
    job jobs[256];
    double all[REPS_MAX][READ_WAYS], best[READ_WAYS], med[READ_WAYS];
    size_t slice = (n / (size_t)threads) & ~(size_t)127;
    for (int t = 0; t < threads; t++) {
        jobs[t] = (job){ buf + (size_t)t * slice, slice, 0, &bar, reps, all, t };
        pthread_create(&tid[t], NULL, worker, &jobs[t]);
    }
    uint64_t sink = 0;
    for (int t = 0; t < threads; t++) { pthread_join(tid[t], NULL); sink ^= jobs[t].sink; }
    int bw = 0, mw = 0;
    for (int w = 0; w < READ_WAYS; w++) {
        double v[REPS_MAX];
        for (int r = 0; r < reps; r++) v[r] = all[r][w];
        qsort(v, (size_t)reps, sizeof v[0], cmp_double);
        best[w] = v[0];
        med[w] = reps % 2 ? v[reps / 2] : (v[reps / 2 - 1] + v[reps / 2]) / 2;
        if (best[w] < best[bw]) bw = w;
        if (med[w] < med[mw]) mw = w;
    }
    printf("{\"probe\":\"stream-read\",\"threads\":%d,\"bytes\":%zu,\"best_s\":%.6f,\"gb_per_s\":%.3f,\"best_way\":\"%s\",\"by_way\":{",
           threads, slice * threads, best[bw], (double)slice * threads / best[bw] / 1e9, read_way_name[bw]);
    for (int w = 0; w < READ_WAYS; w++)
        printf("%s\"%s\":%.3f", w ? "," : "", read_way_name[w], (double)slice * threads / best[w] / 1e9);
    printf("},\"median_gb_per_s\":%.3f,\"median_way\":\"%s\",\"by_way_median\":{", (double)slice * threads / med[mw] / 1e9,
           read_way_name[mw]);
    for (int w = 0; w < READ_WAYS; w++)
        printf("%s\"%s\":%.3f", w ? "," : "", read_way_name[w], (double)slice * threads / med[w] / 1e9);
    printf("},\"sink\":%llu}\n", (unsigned long long)(sink & 1));
    free(buf);
    return 0;
}
