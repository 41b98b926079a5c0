/* bwprobe.c - streaming-read memory bandwidth, the ceiling for decode.
 *
 * Decode of a ternary model reads every weight byte once per token, so the
 * best possible tok/s is bandwidth / bytes-per-token. This probe reads a
 * buffer much larger than the caches with T threads (each its own slice, as
 * bn-forward splits rows) and reports the best of several passes in GB/s,
 * each pass read two ways: plain wide loads, and the same with a software
 * prefetch 4 KB ahead as bn-forward's GEMVs do (on the 2-core EPYC VM the
 * prefetched kernels streamed faster than the plain probe, which made the
 * "roofline" a floor).
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
#include <unistd.h>
#if defined(__AVX2__)
#include <immintrin.h>
#endif

typedef struct { const uint8_t *p; size_t n; uint64_t sink; pthread_barrier_t *bar; int reps; double *best; int id; } job;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Sum the slice with wide loads; the sum is kept so the reads are not elided. */
static uint64_t read_slice(const uint8_t *p, size_t n, int pf) {
#if defined(__AVX2__)
    __m256i acc0 = _mm256_setzero_si256(), acc1 = acc0, acc2 = acc0, acc3 = acc0;
    size_t i = 0;
    for (; i + 128 <= n; i += 128) {
        if (pf) {
            _mm_prefetch((const char *)p + i + 4096, _MM_HINT_T0);
            _mm_prefetch((const char *)p + i + 4096 + 64, _MM_HINT_T0);
        }
        acc0 = _mm256_xor_si256(acc0, _mm256_load_si256((const __m256i *)(p + i)));
        acc1 = _mm256_xor_si256(acc1, _mm256_load_si256((const __m256i *)(p + i + 32)));
        acc2 = _mm256_xor_si256(acc2, _mm256_load_si256((const __m256i *)(p + i + 64)));
        acc3 = _mm256_xor_si256(acc3, _mm256_load_si256((const __m256i *)(p + i + 96)));
    }
    acc0 = _mm256_xor_si256(_mm256_xor_si256(acc0, acc1), _mm256_xor_si256(acc2, acc3));
    uint64_t out[4];
    _mm256_storeu_si256((__m256i *)out, acc0);
    return out[0] ^ out[1] ^ out[2] ^ out[3];
#else
    (void)pf;
    uint64_t s = 0;
    const uint64_t *q = (const uint64_t *)p;
    for (size_t i = 0; i < n / 8; i++) s ^= q[i];
    return s;
#endif
}

static void *worker(void *arg) {
    job *j = arg;
    for (int r = 0; r < 2 * j->reps; r++) { /* odd passes prefetch */
        pthread_barrier_wait(j->bar);
        double t0 = now();
        j->sink ^= read_slice(j->p, j->n, r & 1);
        pthread_barrier_wait(j->bar);
        if (j->id == 0) {
            double dt = now() - t0;
            if (dt < *j->best) *j->best = dt;
        }
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
    if (threads < 1 || threads > 256 || mib < 64 || reps < 1) { fprintf(stderr, "bwprobe: bad arguments\n"); return 2; }
    size_t n = mib << 20;
    uint8_t *buf = aligned_alloc(4096, n);
    if (!buf) { fprintf(stderr, "bwprobe: out of memory\n"); return 1; }
    for (size_t i = 0; i < n; i += 64) buf[i] = (uint8_t)i; /* fault every page in */
    memset(buf, 1, n);
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, (unsigned)threads);
    pthread_t tid[256];
    job jobs[256];
    double best = 1e30;
    size_t slice = (n / (size_t)threads) & ~(size_t)127;
    for (int t = 0; t < threads; t++) {
        jobs[t] = (job){ buf + (size_t)t * slice, slice, 0, &bar, reps, &best, t };
        pthread_create(&tid[t], NULL, worker, &jobs[t]);
    }
    uint64_t sink = 0;
    for (int t = 0; t < threads; t++) { pthread_join(tid[t], NULL); sink ^= jobs[t].sink; }
    double gbs = (double)slice * threads / best / 1e9;
    printf("{\"probe\":\"stream-read\",\"threads\":%d,\"bytes\":%zu,\"best_s\":%.6f,\"gb_per_s\":%.3f,\"sink\":%llu}\n",
           threads, slice * threads, best, gbs, (unsigned long long)(sink & 1));
    free(buf);
    return 0;
}
