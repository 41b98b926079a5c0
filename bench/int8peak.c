/* int8peak.c - the int8 multiply-add peak of this CPU, the ceiling for prefill.
 *
 * Prefill of a ternary model is int8 x 2-bit multiply-adds (about 2 ops per
 * weight per token). This probe runs independent chains of the widest int8
 * dot instruction the build targets (AVX-512 VNNI vpdpbusd, else AVX2
 * vpmaddubsw + vpmaddwd) on T threads and reports GOP/s (1 multiply-add = 2 ops).
 * usage: int8peak [-t THREADS]  -> one JSON line */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <immintrin.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define ITERS 20000000L

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct { double ops; int64_t sink; } result;

static void *run(void *arg) {
    result *r = arg;
#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
    __m512i a = _mm512_set1_epi8(3), b = _mm512_set1_epi8(-2);
    __m512i c0 = _mm512_setzero_si512(), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0, c6 = c0, c7 = c0;
    for (long i = 0; i < ITERS; i++) {
        c0 = _mm512_dpbusd_epi32(c0, a, b); c1 = _mm512_dpbusd_epi32(c1, a, b);
        c2 = _mm512_dpbusd_epi32(c2, a, b); c3 = _mm512_dpbusd_epi32(c3, a, b);
        c4 = _mm512_dpbusd_epi32(c4, a, b); c5 = _mm512_dpbusd_epi32(c5, a, b);
        c6 = _mm512_dpbusd_epi32(c6, a, b); c7 = _mm512_dpbusd_epi32(c7, a, b);
        __asm__ volatile("" : "+v"(a));
    }
    __m512i s = _mm512_add_epi32(_mm512_add_epi32(_mm512_add_epi32(c0, c1), _mm512_add_epi32(c2, c3)),
                                 _mm512_add_epi32(_mm512_add_epi32(c4, c5), _mm512_add_epi32(c6, c7)));
    r->sink = _mm512_reduce_add_epi32(s);
    r->ops = (double)ITERS * 8 * 64 * 2;
#else
    __m256i a = _mm256_set1_epi8(3), b = _mm256_set1_epi8(-2), one = _mm256_set1_epi16(1);
    __m256i c0 = _mm256_setzero_si256(), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0;
    for (long i = 0; i < ITERS; i++) {
        c0 = _mm256_add_epi32(c0, _mm256_madd_epi16(_mm256_maddubs_epi16(a, b), one));
        c1 = _mm256_add_epi32(c1, _mm256_madd_epi16(_mm256_maddubs_epi16(a, b), one));
        c2 = _mm256_add_epi32(c2, _mm256_madd_epi16(_mm256_maddubs_epi16(a, b), one));
        c3 = _mm256_add_epi32(c3, _mm256_madd_epi16(_mm256_maddubs_epi16(a, b), one));
        c4 = _mm256_add_epi32(c4, _mm256_madd_epi16(_mm256_maddubs_epi16(a, b), one));
        c5 = _mm256_add_epi32(c5, _mm256_madd_epi16(_mm256_maddubs_epi16(a, b), one));
        __asm__ volatile("" : "+x"(a));
    }
    __m256i s = _mm256_add_epi32(_mm256_add_epi32(_mm256_add_epi32(c0, c1), _mm256_add_epi32(c2, c3)),
                                 _mm256_add_epi32(c4, c5));
    int32_t o[8];
    _mm256_storeu_si256((__m256i *)o, s);
    r->sink = o[0];
    r->ops = (double)ITERS * 6 * 32 * 2;
#endif
    return NULL;
}

int main(int argc, char **argv) {
    int threads = 1, c;
    while ((c = getopt(argc, argv, "t:")) != -1) {
        if (c == 't') threads = atoi(optarg);
        else { fprintf(stderr, "usage: int8peak [-t THREADS]\n"); return 2; }
    }
    if (threads < 1 || threads > 256) { fprintf(stderr, "int8peak: bad thread count\n"); return 2; }
    pthread_t tid[256];
    result res[256];
    double t0 = now();
    for (int t = 0; t < threads; t++) pthread_create(&tid[t], NULL, run, &res[t]);
    double ops = 0;
    int64_t sink = 0;
    for (int t = 0; t < threads; t++) { pthread_join(tid[t], NULL); ops += res[t].ops; sink ^= res[t].sink; }
    double dt = now() - t0;
#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
    const char *isa = "avx512-vnni";
#else
    const char *isa = "avx2";
#endif
    printf("{\"probe\":\"int8-madd\",\"isa\":\"%s\",\"threads\":%d,\"gop_per_s\":%.1f,\"sink\":%lld}\n",
           isa, threads, ops / dt / 1e9, (long long)(sink & 1));
    return 0;
}
