/* gemvprobe.c - how close the one-token GEMVs stream to a plain read.
 *
 * Decode reads every weight once per token, so its ceiling is the read
 * bandwidth; bench/run compares whole decode runs with bench/bwprobe, but a
 * VM's bandwidth moves between phases within seconds, and a decode step
 * also spends time outside the GEMVs. This probe puts one I2_S and one F16
 * matrix of -m MiB each (2b4t's K = 2560) in 2 MB pages and times, in
 * alternating passes: a read of the I2_S matrix's bytes (every way of
 * readways.h, the fastest kept, as bwprobe), the I2_S GEMV and the F16 GEMV of the
 * kernel table bn-forward selects, each split over T threads with the same
 * pool. With -c MiB the GEMVs run as regions of that many MiB each (2b4t's
 * decode regions are 1.6-8.8 MB), which adds the per-region start and
 * barrier to the kernel's own rate. Medians (and best) over -r passes.
 * With -d it replays instead the GEMVs of one 2b4t decode step, as the
 * regions bn-forward runs (per layer: QKV 3840x2560, Wo 2560x2560, gate+up
 * 13824x2560, down 2560x6912, all I2_S; then the 128256x2560 head, F16, or
 * Q8_0 with -q), nothing between them, against a read of the same bytes:
 * what decode could reach with attention and norms free.
 * usage: gemvprobe [-t THREADS] [-m MiB] [-r PASSES] [-c REGION_MiB] [-d [-q]] -> one JSON line */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#if defined(__x86_64__)
#include <immintrin.h>
#endif
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cpu.h"
#include "kernels.h"
#include "pool.h"
#include "util.h"
#include "readways.h"

#define KDIM 2560
#define PASSES_MAX 101

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct {
    const bn_kernels *k;
    const bn_qmat *w;
    const bn_act *a;
    float *y;
    int64_t r0, r1; /* this region's rows */
    const uint8_t *buf; /* read by pass_read */
    size_t n;
    int way;            /* readways.h */
    uint64_t sink[64][8]; /* per thread, a cache line apart */
} probe;

/* Rows [r0, r1) of the region split as bn-forward splits a matmul's rows. */
static void region_gemv(void *arg, int ith, int nth) {
    probe *p = arg;
    int64_t lo, hi;
    bn_pool_split(p->r1 - p->r0, ith, nth, 4, &lo, &hi);
    if (lo < hi) p->k->matmul(p->w, p->a, p->r0 + lo, p->r0 + hi, p->y, 0);
}

/* This thread's slice of the buffer, read the way p->way (readways.h). */
static void region_read(void *arg, int ith, int nth) {
    probe *p = arg;
    int64_t lo, hi;
    bn_pool_split((int64_t)(p->n / 256), ith, nth, 1, &lo, &hi);
    p->sink[ith][0] ^= read_way(p->buf + lo * 256, (size_t)(hi - lo) * 256, p->way);
}

/* The fastest of the readways.h ways in this pass, in seconds. */
static double pass_read(bn_pool *pool, probe *p) {
    double best = 1e30;
    for (p->way = 0; p->way < READ_WAYS; p->way++) {
        double t0 = now();
        bn_pool_run(pool, region_read, p);
        double t = now() - t0;
        if (t < best) best = t;
    }
    return best;
}

/* One pass of a GEMV over the whole matrix in regions of rows_per_region. */
static double pass_gemv(bn_pool *pool, probe *p, const bn_qmat *w, const bn_act *a, int64_t rows_per_region) {
    p->w = w;
    p->a = a;
    double t0 = now();
    for (int64_t r = 0; r < w->M; r += rows_per_region) {
        p->r0 = r;
        p->r1 = r + rows_per_region < w->M ? r + rows_per_region : w->M;
        bn_pool_run(pool, region_gemv, p);
    }
    return now() - t0;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The matrices the probe streams: the types a 2b4t decode reads (I2_S
 * ternary GEMVs, the F16 head, a Q8_0 or Q6_K head from --head). */
enum { N_MATS = 4 };
static const struct {
    const char *name;
    bn_type type;
    bn_act_kind act;
    size_t row_bytes;
} mats[N_MATS] = {
    { "i2s", BN_TYPE_I2_S, BN_ACT_I8S, KDIM / 4 },
    { "f16", BN_TYPE_F16, BN_ACT_F16, KDIM * 2 },
    { "q8_0", BN_TYPE_Q8_0, BN_ACT_Q8_0, KDIM / 32 * 34 },
    { "q6_k", BN_TYPE_Q6_K, BN_ACT_Q8K, KDIM / 256 * 210 },
};

/* Fill a matrix with random data its kernels accept: random bytes for the
 * codes, and f16 values in [1, 2) (no NaN, no subnormal) wherever the
 * format holds halves (every F16 element, each Q8_0 block's scale, each
 * Q6_K block's d in its last two bytes). */
static void fill(uint8_t *b, size_t bytes, bn_type type, size_t row_bytes) {
    uint64_t st = 0x9E3779B97F4A7C15ull;
    for (size_t i = 0; i < bytes; i += 8) {
        st ^= st << 13, st ^= st >> 7, st ^= st << 17;
        uint64_t v = st;
        if (type == BN_TYPE_F16) v = (st & 0x03FF03FF03FF03FFull) | 0x3C003C003C003C00ull;
        memcpy(b + i, &v, 8);
    }
    if (type == BN_TYPE_Q8_0)
        for (size_t r = 0; r + row_bytes <= bytes; r += row_bytes)
            for (size_t o = 0; o < row_bytes; o += 34) {
                uint16_t h = (uint16_t)(0x3C00 | (b[r + o] & 0xFF));
                memcpy(b + r + o, &h, 2);
            }
    if (type == BN_TYPE_Q6_K)
        for (size_t r = 0; r + row_bytes <= bytes; r += row_bytes)
            for (size_t o = 0; o < row_bytes; o += 210) {
                uint16_t h = (uint16_t)(0x3C00 | (b[r + o] & 0xFF));
                memcpy(b + r + o + 208, &h, 2);
            }
}

/* ---- -d: one decode step's GEMVs ---------------------------------------- */

enum { N_LAYER = 30, N_VOCAB = 128256, N_FF = 6912 };

/* A pass over the step's regions in order; the seconds it took. */
static double pass_replay(bn_pool *pool, probe *p, bn_qmat *layer_w, int n_lw, bn_act *a_embd, bn_act *a_ff,
                          bn_qmat *head, bn_act *a_head) {
    double t0 = now();
    for (int i = 0; i < n_lw; i++) {
        p->w = &layer_w[i];
        p->a = layer_w[i].K == N_FF ? a_ff : a_embd;
        p->r0 = 0;
        p->r1 = layer_w[i].M;
        bn_pool_run(pool, region_gemv, p);
    }
    p->w = head;
    p->a = a_head;
    p->r0 = 0;
    p->r1 = head->M;
    bn_pool_run(pool, region_gemv, p);
    return now() - t0;
}

static int replay(const bn_kernels *k, bn_pool *pool, int threads, int passes, int q8_head) {
    bn_err e = {0};
    static const int64_t rows[4] = { 3840, KDIM, 2 * N_FF, KDIM }, cols[4] = { KDIM, KDIM, KDIM, N_FF };
    bn_qmat lw[4 * N_LAYER];
    size_t layer_bytes = 0;
    for (int i = 0; i < 4 * N_LAYER; i++) {
        lw[i] = (bn_qmat){ .type = BN_TYPE_I2_S, .M = rows[i % 4], .K = cols[i % 4], .row_bytes = (size_t)cols[i % 4] / 4,
                           .scale = 1.0f };
        layer_bytes += (size_t)lw[i].M * lw[i].row_bytes;
    }
    bn_qmat head = { .type = q8_head ? BN_TYPE_Q8_0 : BN_TYPE_F16, .M = N_VOCAB, .K = KDIM,
                     .row_bytes = q8_head ? KDIM / 32 * 34 : KDIM * 2, .scale = 1.0f };
    const size_t head_bytes = (size_t)head.M * head.row_bytes, total = layer_bytes + head_bytes;
    uint8_t *blob = bn_alloc_big(total, &e);
    float *y = blob ? bn_alloc_big((size_t)N_VOCAB * sizeof(float), &e) : NULL;
    bn_act a_embd = {0}, a_ff = {0}, a_head = {0};
    if (!y || bn_act_alloc(&a_embd, BN_ACT_I8S, KDIM, 1, &e) < 0 || bn_act_alloc(&a_ff, BN_ACT_I8S, N_FF, 1, &e) < 0 ||
        bn_act_alloc(&a_head, q8_head ? BN_ACT_Q8_0 : BN_ACT_F16, KDIM, 1, &e) < 0) {
        fprintf(stderr, "gemvprobe: %s\n", e.msg);
        return 1;
    }
    fill(blob, layer_bytes, BN_TYPE_I2_S, 0);
    fill(blob + layer_bytes, head_bytes, head.type, head.row_bytes);
    size_t off = 0;
    for (int i = 0; i < 4 * N_LAYER; i++) {
        lw[i].data = blob + off;
        off += (size_t)lw[i].M * lw[i].row_bytes;
    }
    head.data = blob + layer_bytes;
    static float x[N_FF];
    for (int i = 0; i < N_FF; i++) x[i] = (float)((i * 37) % 101 - 50) / 50.0f;
    bn_act_quantize(k, &a_embd, x, KDIM, 1);
    bn_act_quantize(k, &a_ff, x, N_FF, 1);
    bn_act_quantize(k, &a_head, x, KDIM, 1);
    probe p = { .k = k, .y = y, .buf = blob, .n = total / 256 * 256 };
    double gb_read[PASSES_MAX], gb_step[PASSES_MAX], frac[PASSES_MAX], tok_s[PASSES_MAX];
    for (int r = -1; r < passes; r++) {
        double tr = pass_read(pool, &p);
        double ts = pass_replay(pool, &p, lw, 4 * N_LAYER, &a_embd, &a_ff, &head, &a_head);
        if (r < 0) continue;
        gb_read[r] = (double)p.n / tr / 1e9;
        gb_step[r] = (double)total / ts / 1e9;
        frac[r] = gb_step[r] / gb_read[r];
        tok_s[r] = 1.0 / ts;
    }
    qsort(gb_read, (size_t)passes, sizeof(double), cmp_d);
    qsort(gb_step, (size_t)passes, sizeof(double), cmp_d);
    qsort(frac, (size_t)passes, sizeof(double), cmp_d);
    qsort(tok_s, (size_t)passes, sizeof(double), cmp_d);
    const int md = passes / 2;
    uint64_t sink = 0;
    for (int t = 0; t < threads; t++) sink ^= p.sink[t][0];
    printf("{\"probe\":\"decode-replay\",\"isa\":\"%s\",\"threads\":%d,\"head\":\"%s\",\"step_bytes\":%zu,\"regions\":%d,"
           "\"passes\":%d,\"read_gb_s\":%.2f,\"step_gb_s\":%.2f,\"step_of_read\":%.3f,\"tok_s\":%.2f,\"sink\":%llu}\n",
           k->name, threads, q8_head ? "q8_0" : "f16", total, 4 * N_LAYER + 1, passes, gb_read[md], gb_step[md], frac[md],
           tok_s[md], (unsigned long long)(sink & 1));
    bn_act_free(&a_embd);
    bn_act_free(&a_ff);
    bn_act_free(&a_head);
    bn_free_big(y, (size_t)N_VOCAB * sizeof(float));
    bn_free_big(blob, total);
    return 0;
}

int main(int argc, char **argv) {
    int threads = 1, passes = 15, c, decode = 0, q8_head = 0;
    long mib = 512, region_mib = 0;
    while ((c = getopt(argc, argv, "t:m:r:c:dq")) != -1) {
        if (c == 'd') decode = 1;
        else if (c == 'q') q8_head = 1;
        else if (c == 't') threads = atoi(optarg);
        else if (c == 'm') mib = atol(optarg);
        else if (c == 'r') passes = atoi(optarg);
        else if (c == 'c') region_mib = atol(optarg);
        else {
            fprintf(stderr, "usage: gemvprobe [-t THREADS] [-m MiB] [-r PASSES] [-c REGION_MiB] [-d [-q]]\n");
            return 2;
        }
    }
    if (threads < 1 || threads > 64 || mib < 1 || mib > 16384 || passes < 1 || passes > PASSES_MAX || region_mib < 0) {
        fprintf(stderr, "gemvprobe: bad arguments\n");
        return 2;
    }
    bn_err e = {0};
    bn_isa isa;
    const bn_kernels *k;
    bn_pool *pool;
    if (bn_isa_select(&isa, &e) < 0 || !(k = bn_kernels_for(isa)) || bn_pool_new(&pool, threads, &e) < 0) {
        fprintf(stderr, "gemvprobe: %s\n", e.msg[0] ? e.msg : "no kernel table");
        return 1;
    }
    if (decode) {
        int rc = replay(k, pool, threads, passes, q8_head);
        bn_pool_free(pool);
        return rc;
    }
    const size_t bytes = (size_t)mib << 20;
    bn_qmat w[N_MATS];
    bn_act a[N_MATS];
    uint8_t *buf[N_MATS];
    int64_t rows_per_region[N_MATS], m_all = 0;
    float x[KDIM];
    for (int i = 0; i < KDIM; i++) x[i] = (float)((i * 37) % 101 - 50) / 50.0f;
    for (int m = 0; m < N_MATS; m++) {
        w[m] = (bn_qmat){ .type = mats[m].type, .K = KDIM, .row_bytes = mats[m].row_bytes, .scale = 1.0f };
        w[m].M = (int64_t)(bytes / w[m].row_bytes) / 8 * 8;
        m_all += w[m].M;
        a[m] = (bn_act){0};
        if (!(buf[m] = bn_alloc_big(bytes, &e)) || bn_act_alloc(&a[m], mats[m].act, KDIM, 1, &e) < 0) {
            fprintf(stderr, "gemvprobe: %s\n", e.msg);
            return 1;
        }
        fill(buf[m], bytes, mats[m].type, mats[m].row_bytes);
        w[m].data = buf[m];
        bn_act_quantize(k, &a[m], x, KDIM, 1);
        rows_per_region[m] = region_mib ? (region_mib << 20) / (int64_t)w[m].row_bytes / 8 * 8 : w[m].M;
    }
    float *y = bn_alloc_big((size_t)m_all * sizeof(float), &e);
    if (!y) {
        fprintf(stderr, "gemvprobe: %s\n", e.msg);
        return 1;
    }

    probe p = { .k = k, .y = y, .buf = buf[0], .n = bytes };
    double gb_read[PASSES_MAX], gb[N_MATS][PASSES_MAX], frac[N_MATS][PASSES_MAX];
    for (int r = -1; r < passes; r++) { /* pass -1 warms up */
        double tr = pass_read(pool, &p);
        for (int m = 0; m < N_MATS; m++) {
            double t = pass_gemv(pool, &p, &w[m], &a[m], rows_per_region[m]);
            if (r < 0) continue;
            gb[m][r] = (double)w[m].M * w[m].row_bytes / t / 1e9;
        }
        if (r >= 0) gb_read[r] = (double)bytes / tr / 1e9;
    }
    /* per pass, each GEMV against the read right before it; then medians */
    for (int m = 0; m < N_MATS; m++) {
        for (int r = 0; r < passes; r++) frac[m][r] = gb[m][r] / gb_read[r];
        qsort(gb[m], (size_t)passes, sizeof(double), cmp_d);
        qsort(frac[m], (size_t)passes, sizeof(double), cmp_d);
    }
    qsort(gb_read, (size_t)passes, sizeof(double), cmp_d);
    const int md = passes / 2, hi = passes - 1;
    uint64_t sink = 0;
    for (int t = 0; t < threads; t++) sink ^= p.sink[t][0];
    printf("{\"probe\":\"gemv-vs-read\",\"isa\":\"%s\",\"threads\":%d,\"mib\":%ld,\"region_mib\":%ld,\"passes\":%d,"
           "\"read_gb_s\":%.2f,\"read_gb_s_best\":%.2f",
           k->name, threads, mib, region_mib, passes, gb_read[md], gb_read[hi]);
    for (int m = 0; m < N_MATS; m++)
        printf(",\"%s_gb_s\":%.2f,\"%s_gb_s_best\":%.2f,\"%s_of_read\":%.3f", mats[m].name, gb[m][md], mats[m].name,
               gb[m][hi], mats[m].name, frac[m][md]);
    printf(",\"y\":%g,\"sink\":%llu}\n", (double)y[0], (unsigned long long)(sink & 1));
    for (int m = 0; m < N_MATS; m++) {
        bn_act_free(&a[m]);
        bn_free_big(buf[m], bytes);
    }
    bn_free_big(y, (size_t)m_all * sizeof(float));
    bn_pool_free(pool);
    return 0;
}
