/* int8peak.c - the int8 multiply-add peak of this CPU, the ceiling for prefill.
 *
 * Prefill of a ternary model is int8 x 2-bit multiply-adds (about 2 ops per
 * weight per token). This probe runs independent chains of the widest int8
 * dot instruction the build targets (AVX-512 VNNI vpdpbusd, else AVX2
 * vpmaddubsw into int16) on T threads and reports GOP/s (1 multiply-add = 2 ops).
 * Where the CPU has AMX-INT8 and bn-forward would use it (bn_cpu_amx_enable:
 * not with BN_AMX=0), gop_per_s is the tile peak (tdpbusd chains, what the
 * avx512-amx table's prefill runs on) and simd_gop_per_s the vector one: a
 * prefill "fraction of the int8 peak" against the vector peak exceeded 1.
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

#include "cpu.h"

#define ITERS 20000000L
#define AMX_ITERS 4000000L

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

/* Four independent tdpbusd chains (tmm0-3 += tmm4|5 . tmm6|7), each 16 x 16
 * int32 sums of 64 u8 x s8 products per instruction. Inline asm as in
 * lib/kernels_amx_avx512.c (no -mamx flags needed). */
static void *run_amx(void *arg) {
    result *r = arg;
    struct {
        uint8_t palette_id, start_row, reserved[14];
        uint16_t colsb[16];
        uint8_t rows[16];
    } cfg = {0};
    _Static_assert(sizeof cfg == 64, "ldtilecfg reads 64 bytes");
    _Alignas(64) int8_t a[1024], b[1024];
    _Alignas(64) int32_t c[256];
    for (int i = 0; i < 1024; i++) a[i] = 3, b[i] = -2;
    cfg.palette_id = 1;
    for (int t = 0; t < 8; t++) cfg.colsb[t] = 64, cfg.rows[t] = 16;
    __asm__ volatile("ldtilecfg %0" ::"m"(cfg) : "memory");
    __asm__ volatile("tileloadd (%0,%1,1), %%tmm4\n\ttileloadd (%0,%1,1), %%tmm5\n\t"
                     "tileloadd (%2,%1,1), %%tmm6\n\ttileloadd (%2,%1,1), %%tmm7\n\t"
                     "tilezero %%tmm0\n\ttilezero %%tmm1\n\ttilezero %%tmm2\n\ttilezero %%tmm3" ::"r"(a), "r"(64L),
                     "r"(b)
                     : "memory");
    for (long i = 0; i < AMX_ITERS; i++)
        __asm__ volatile("tdpbusd %%tmm6, %%tmm4, %%tmm0\n\ttdpbusd %%tmm7, %%tmm4, %%tmm1\n\t"
                         "tdpbusd %%tmm6, %%tmm5, %%tmm2\n\ttdpbusd %%tmm7, %%tmm5, %%tmm3" ::);
    __asm__ volatile("tilestored %%tmm0, (%0,%1,1)" ::"r"(c), "r"(64L) : "memory");
    __asm__ volatile("tilerelease" ::: "memory");
    r->sink = c[0];
    r->ops = (double)AMX_ITERS * 4 * 16 * 16 * 64 * 2;
    return NULL;
}

/* GOP/s of fn on T threads at once. */
static double probe(void *(*fn)(void *), int threads, int64_t *sink) {
    pthread_t tid[256];
    result res[256];
    double t0 = now();
    for (int t = 0; t < threads; t++) pthread_create(&tid[t], NULL, fn, &res[t]);
    double ops = 0;
    for (int t = 0; t < threads; t++) { pthread_join(tid[t], NULL); ops += res[t].ops; *sink ^= res[t].sink; }
    return ops / (now() - t0) / 1e9;
}

int main(int argc, char **argv) {
    int threads = 1, c;
    while ((c = getopt(argc, argv, "t:")) != -1) {
        if (c == 't') threads = atoi(optarg);
        else { fprintf(stderr, "usage: int8peak [-t THREADS]\n"); return 2; }
    }
    if (threads < 1 || threads > 256) { fprintf(stderr, "int8peak: bad thread count\n"); return 2; }
    int64_t sink = 0;
    const double simd = probe(run, threads, &sink);
#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
    const char *isa = "avx512-vnni";
#else
    const char *isa = "avx2";
#endif
    bn_cpu_info ci;
    bn_cpu_detect(&ci);
    if (bn_cpu_amx_enable(&ci)) {
        const double amx = probe(run_amx, threads, &sink);
        printf("{\"probe\":\"int8-madd\",\"isa\":\"amx-int8\",\"threads\":%d,\"gop_per_s\":%.1f,"
               "\"simd_isa\":\"%s\",\"simd_gop_per_s\":%.1f,\"sink\":%lld}\n",
               threads, amx, isa, simd, (long long)(sink & 1));
        return 0;
    }
    printf("{\"probe\":\"int8-madd\",\"isa\":\"%s\",\"threads\":%d,\"gop_per_s\":%.1f,\"sink\":%lld}\n",
           isa, threads, simd, (long long)(sink & 1));
    return 0;
}
