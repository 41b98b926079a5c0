/* int8peak.c - the int8 multiply-add peak of this CPU, the ceiling for prefill.
 *
 * Prefill of a ternary model is int8 x 2-bit multiply-adds (about 2 ops per
 * weight per token). This probe runs independent chains of the widest int8
 * dot instruction the build targets (AVX-512 VNNI vpdpbusd, else AVX2
 * vpmaddubsw into int16) on T threads and reports GOP/s (1 multiply-add = 2 ops).
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
    /* vpmaddubsw into int16 accumulators, as the AVX2 kernels do (they widen
     * with vpmaddwd once per several blocks): 8 independent chains, written in
     * asm because with intrinsics gcc either merged the chains into a single
     * vpmaddubsw per iteration (one shared input: the "peak" came out ~6x too
     * high) or spilled the accumulators to the stack (too low). */
    int16_t o[16];
    __asm__ volatile("vpcmpeqb %%ymm8, %%ymm8, %%ymm8\n\t" /* b = -1 bytes */
                     "vpabsb %%ymm8, %%ymm9\n\t"           /* a = 1 */
                     "vpxor %%ymm0, %%ymm0, %%ymm0\n\t"
                     "vmovdqa %%ymm0, %%ymm1\n\t"
                     "vmovdqa %%ymm0, %%ymm2\n\t"
                     "vmovdqa %%ymm0, %%ymm3\n\t"
                     "vmovdqa %%ymm0, %%ymm4\n\t"
                     "vmovdqa %%ymm0, %%ymm5\n\t"
                     "vmovdqa %%ymm0, %%ymm6\n\t"
                     "vmovdqa %%ymm0, %%ymm7\n\t"
                     "mov %[n], %%rcx\n"
                     "1:\n\t"
                     "vpmaddubsw %%ymm8, %%ymm9, %%ymm10\n\t"
                     "vpaddw %%ymm10, %%ymm0, %%ymm0\n\t"
                     "vpmaddubsw %%ymm8, %%ymm9, %%ymm11\n\t"
                     "vpaddw %%ymm11, %%ymm1, %%ymm1\n\t"
                     "vpmaddubsw %%ymm8, %%ymm9, %%ymm12\n\t"
                     "vpaddw %%ymm12, %%ymm2, %%ymm2\n\t"
                     "vpmaddubsw %%ymm8, %%ymm9, %%ymm13\n\t"
                     "vpaddw %%ymm13, %%ymm3, %%ymm3\n\t"
                     "vpmaddubsw %%ymm8, %%ymm9, %%ymm10\n\t"
                     "vpaddw %%ymm10, %%ymm4, %%ymm4\n\t"
                     "vpmaddubsw %%ymm8, %%ymm9, %%ymm11\n\t"
                     "vpaddw %%ymm11, %%ymm5, %%ymm5\n\t"
                     "vpmaddubsw %%ymm8, %%ymm9, %%ymm12\n\t"
                     "vpaddw %%ymm12, %%ymm6, %%ymm6\n\t"
                     "vpmaddubsw %%ymm8, %%ymm9, %%ymm13\n\t"
                     "vpaddw %%ymm13, %%ymm7, %%ymm7\n\t"
                     "dec %%rcx\n\t"
                     "jnz 1b\n\t"
                     "vpaddw %%ymm1, %%ymm0, %%ymm0\n\t"
                     "vpaddw %%ymm3, %%ymm2, %%ymm2\n\t"
                     "vpaddw %%ymm5, %%ymm4, %%ymm4\n\t"
                     "vpaddw %%ymm7, %%ymm6, %%ymm6\n\t"
                     "vpaddw %%ymm2, %%ymm0, %%ymm0\n\t"
                     "vpaddw %%ymm6, %%ymm4, %%ymm4\n\t"
                     "vpaddw %%ymm4, %%ymm0, %%ymm0\n\t"
                     "vmovdqu %%ymm0, %[o]\n\t"
                     "vzeroupper"
                     : [o] "=m"(o)
                     : [n] "r"(ITERS)
                     : "rcx", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9",
                       "xmm10", "xmm11", "xmm12", "xmm13", "cc");
    r->sink = o[0];
    r->ops = (double)ITERS * 8 * 32 * 2;
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
