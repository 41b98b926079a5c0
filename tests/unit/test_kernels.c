/* test_kernels.c - every kernel table compiled in and supported by this CPU
 * against the scalar reference: activation quantizers byte for byte, matmul
 * outputs bitwise (integer parts are exact and the float epilogues share one
 * formula and order; the F16/F32 dots use the same 32-lane schedule). Also
 * checks the scalar kernels against an independent double-precision dot of
 * the dequantized operands, the row-range contract, and dispatch metadata.
 * No zmq/msgpack/gguf code: this file is also cross-built for `make test-neon`. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "quant.h"
#include "tap.h"
#define BN_TEST_SEED 0x9E3779B97F4A7C15ull
#include "rng.h"

static float rng_normal(void) {
    float s = 0;
    for (int i = 0; i < 4; i++) s += rng_unif();
    return s * 0.8660254f;
}

enum { WT_TERNARY_RANDOM, WT_ALL_PLUS, WT_ALL_MINUS, WT_ZERO_HEAVY, WT_GENERAL };
enum { ACT_RANDOM, ACT_ZERO, ACT_OUTLIER, ACT_SATURATE, ACT_TIES, ACT_TINY, ACT_MODES };
static const char *act_mode_name[ACT_MODES] = { "random", "zero", "outlier", "saturate", "ties", "tiny" };

/* Float weights for a type: ternary*s for the ternary formats, otherwise general values. */
static void make_weights(float *w, int64_t n, uint32_t type, int mode) {
    float s = 0.046875f; /* 3/64: exact in f16 */
    for (int64_t i = 0; i < n; i++) {
        int t;
        switch (mode) {
        case WT_ALL_PLUS: t = 1; break;
        case WT_ALL_MINUS: t = -1; break;
        case WT_ZERO_HEAVY: t = (rng_u64() % 10 == 0) ? ((rng_u64() & 1) ? 1 : -1) : 0; break;
        default: t = (int)(rng_u64() % 3) - 1; break;
        }
        if (type == BN_TYPE_I2_S || type == BN_TYPE_TQ1_0 || type == BN_TYPE_TQ2_0)
            w[i] = (float)t * s;
        else if (mode == WT_ALL_PLUS)
            w[i] = 0.5f;
        else if (mode == WT_ALL_MINUS)
            w[i] = -0.5f;
        else
            w[i] = rng_normal() * 0.1f;
    }
}

static void make_acts(float *x, int64_t n, int mode) {
    for (int64_t i = 0; i < n; i++) {
        switch (mode) {
        case ACT_ZERO: x[i] = 0; break;
        case ACT_OUTLIER: x[i] = rng_normal() * 0.01f; break;
        case ACT_SATURATE: x[i] = (rng_u64() & 1) ? 3.0f : -3.0f; break;
        case ACT_TIES: x[i] = (float)((int)(rng_u64() % 255) - 127) + 0.5f; break;
        case ACT_TINY: x[i] = rng_normal() * 1e-7f; break;
        default: x[i] = rng_normal(); break;
        }
    }
    if (mode == ACT_OUTLIER && n > 0) x[rng_u64() % (uint64_t)n] = 1000.0f;
    if (mode == ACT_TIES && n > 0) x[0] = 127.0f; /* max 127 -> s = 1: exact .5 ties */
}

/* Quantize an M x K float matrix into the storage of a weight type. */
static uint8_t *quantize_weights(const float *w, int64_t K, int64_t M, uint32_t type, size_t *nbytes) {
    size_t rb = bn_qmat_row_bytes(type, K);
    /* exact size (no slack) so sanitizer builds catch any SIMD over-read */
    size_t n = rb * (size_t)M + (type == BN_TYPE_I2_S ? 32 : 0);
    uint8_t *buf = calloc(1, n);
    if (type == BN_TYPE_I2_S) {
        bn_quantize_i2_s_ref(w, buf, K * M);
    } else {
        for (int64_t r = 0; r < M; r++) {
            const float *src = w + r * K;
            uint8_t *dst = buf + rb * (size_t)r;
            switch (type) {
            case BN_TYPE_TQ2_0: bn_quantize_row_tq2_0_ref(src, (bn_block_tq2_0 *)dst, K); break;
            case BN_TYPE_TQ1_0: bn_quantize_row_tq1_0_ref(src, (bn_block_tq1_0 *)dst, K); break;
            case BN_TYPE_Q8_0: bn_quantize_row_q8_0_ref(src, (bn_block_q8_0 *)dst, K); break;
            case BN_TYPE_Q6_K: bn_quantize_row_q6_K_ref(src, (bn_block_q6_K *)dst, K); break;
            case BN_TYPE_F16:
                for (int64_t k = 0; k < K; k++) ((uint16_t *)dst)[k] = bn_f32_to_f16(src[k]);
                break;
            case BN_TYPE_F32: memcpy(dst, src, (size_t)K * 4); break;
            }
        }
    }
    *nbytes = n;
    return buf;
}

static int make_qmat(bn_qmat *m, uint32_t type, int64_t K, int64_t M, const uint8_t *buf, size_t nbytes) {
    bn_gguf_tensor t;
    memset(&t, 0, sizeof t);
    snprintf(t.name, sizeof t.name, "test");
    t.type = type;
    t.n_dims = 2;
    t.ne[0] = K;
    t.ne[1] = M;
    t.ne[2] = t.ne[3] = 1;
    t.data = buf;
    t.nbytes = nbytes;
    bn_err e;
    if (bn_qmat_from_tensor(m, &t, &e)) {
        printf("# qmat: %s\n", e.msg);
        return -1;
    }
    return 0;
}

/* Dequantized weight row r (independent of the kernels). */
static void dequant_row(const bn_qmat *m, int64_t r, float *out) {
    const uint8_t *row = m->data + m->row_bytes * (size_t)r;
    switch (m->type) {
    case BN_TYPE_I2_S: bn_dequantize_row_i2_s(row, m->scale, out, m->K); break;
    case BN_TYPE_TQ2_0: bn_dequantize_row_tq2_0((const bn_block_tq2_0 *)row, out, m->K); break;
    case BN_TYPE_TQ1_0: bn_dequantize_row_tq1_0((const bn_block_tq1_0 *)row, out, m->K); break;
    case BN_TYPE_Q8_0: bn_dequantize_row_q8_0((const bn_block_q8_0 *)row, out, m->K); break;
    case BN_TYPE_Q6_K: bn_dequantize_row_q6_K((const bn_block_q6_K *)row, out, m->K); break;
    case BN_TYPE_F16:
        for (int64_t k = 0; k < m->K; k++) out[k] = bn_f16_to_f32(((const uint16_t *)row)[k]);
        break;
    case BN_TYPE_F32: memcpy(out, row, (size_t)m->K * 4); break;
    }
}

/* Dequantized activation row t. */
static void dequant_act(const bn_act *a, int t, float *out) {
    const uint8_t *row = (const uint8_t *)a->data + a->row_bytes * (size_t)t;
    switch (a->kind) {
    case BN_ACT_I8S:
        for (int64_t k = 0; k < a->K; k++) out[k] = (float)((const int8_t *)row)[k] / a->scale[t];
        break;
    case BN_ACT_Q8K: bn_dequantize_row_q8_K((const bn_block_q8_K *)row, out, a->K); break;
    case BN_ACT_Q8_0: bn_dequantize_row_q8_0((const bn_block_q8_0 *)row, out, a->K); break;
    case BN_ACT_F16:
        for (int64_t k = 0; k < a->K; k++) out[k] = bn_f16_to_f32(((const uint16_t *)row)[k]);
        break;
    default: memcpy(out, row, (size_t)a->K * 4); break;
    }
}

static int act_equal(const bn_act *a, const bn_act *b, int n) {
    if (memcmp(a->data, b->data, a->row_bytes * (size_t)n)) return 0;
    if (a->kind == BN_ACT_I8S) {
        if (memcmp(a->scale, b->scale, sizeof(float) * (size_t)n)) return 0;
        if (memcmp(a->sum, b->sum, sizeof(int32_t) * (size_t)n)) return 0;
    }
    return 1;
}

static const uint32_t all_types[] = { BN_TYPE_I2_S, BN_TYPE_TQ2_0, BN_TYPE_TQ1_0, BN_TYPE_Q8_0,
                                      BN_TYPE_Q6_K, BN_TYPE_F16, BN_TYPE_F32 };

/* K values per type: odd block counts and, for F16/F32, non-multiples of 32. */
static int k_values(uint32_t type, int64_t *ks) {
    int n = 0;
    switch (type) {
    case BN_TYPE_I2_S: /* 128 * 257: past the 32 KB the AVX-512 GEMV repacks on its stack, odd block count */
        ks[n++] = 128; ks[n++] = 384; ks[n++] = 128 * 21; ks[n++] = 2560; ks[n++] = 6912; ks[n++] = 8192; ks[n++] = 128 * 257;
        break;
    case BN_TYPE_Q8_0: ks[n++] = 32; ks[n++] = 96; ks[n++] = 32 * 9; ks[n++] = 32 * 81; ks[n++] = 2560; ks[n++] = 6912; break;
    case BN_TYPE_F16:
    case BN_TYPE_F32: ks[n++] = 1; ks[n++] = 37; ks[n++] = 256; ks[n++] = 1000; ks[n++] = 2560 + 13; ks[n++] = 8192; break;
    default: /* 256 * 65: past the 64 blocks the AVX-512 TQ1_0 GEMV repacks on its stack */
        ks[n++] = 256; ks[n++] = 768; ks[n++] = 256 * 7; ks[n++] = 2560; ks[n++] = 6912; ks[n++] = 8192; ks[n++] = 256 * 65;
        break;
    }
    return n;
}

/* One table vs scalar for one type over shapes x activation modes. */
/* One case's operands: n x K float activations (returned) and M x K weights
 * quantized into *buf (freed by the caller) and viewed by *qm; NULL, with
 * nothing left allocated, if the view is rejected. */
static float *make_case(uint32_t type, int64_t K, int64_t M, int n, int wmode, int amode, bn_qmat *qm, uint8_t **buf) {
    float *w = malloc(sizeof(float) * (size_t)(K * M));
    float *x = malloc(sizeof(float) * (size_t)(K * n));
    make_weights(w, K * M, type, wmode);
    make_acts(x, K * n, amode);
    size_t nbytes;
    *buf = quantize_weights(w, K, M, type, &nbytes);
    free(w);
    if (make_qmat(qm, type, K, M, *buf, nbytes)) {
        free(x);
        free(*buf);
        *buf = NULL;
        return NULL;
    }
    return x;
}

static void compare_table(const bn_kernels *k, uint32_t type) {
    const bn_kernels *ref = bn_kernels_for(BN_ISA_SCALAR);
    int64_t ks[8];
    int nk = k_values(type, ks);
    char path[64];
    bn_kernels_path(k, type, path, sizeof path);
    int bad_act = 0, bad_y = 0, bad_range = 0, cases = 0;
    char first_bad[256] = "";
    for (int ik = 0; ik < nk; ik++) {
        for (int im = 0; im < 2 * ACT_MODES; im++) {
            /* every shape and act mode twice: once with n tokens (prefill
             * tiles and their tails), once with one token (the decode GEMV) */
            const int64_t K = ks[ik];
            const int mode = im % ACT_MODES;
            const int n = im >= ACT_MODES ? 1 : 2 + (int)((ik * 3 + mode) % 8);
            /* one token, 29 rows: each half-range of 14 rows gives the
             * one-token GEMVs that read 2 or 4 row runs side by side
             * (z_rows_4streams, the four-run I2_S) several rows per run
             * and a remainder */
            const int64_t M = (ik % 2) ? 7 : n == 1 ? 29 : 13;
            int wmode = mode == ACT_SATURATE ? WT_ALL_PLUS : mode == ACT_ZERO ? WT_ALL_MINUS
                      : mode == ACT_TINY ? WT_ZERO_HEAVY : WT_TERNARY_RANDOM;
            bn_qmat qm;
            uint8_t *buf;
            float *x = make_case(type, K, M, n, wmode, mode, &qm, &buf);
            bn_act a_ref, a_k;
            bn_err e;
            if (!x || bn_act_alloc(&a_ref, bn_act_kind_for(type), K, n, &e) ||
                bn_act_alloc(&a_k, bn_act_kind_for(type), K, n, &e)) {
                CHECK(0, "%s: setup K=%lld", path, (long long)K);
                free(x); free(buf);
                return;
            }
            bn_act_quantize(ref, &a_ref, x, K, n);
            /* quantize in two pieces to exercise row ranges */
            a_k.n = n;
            k->quantize_act(&a_k, x, K, 0, n / 2);
            k->quantize_act(&a_k, x, K, n / 2, n);
            if (!act_equal(&a_ref, &a_k, n)) {
                bad_act++;
                if (!first_bad[0]) snprintf(first_bad, sizeof first_bad, "act K=%lld n=%d mode=%s", (long long)K, n, act_mode_name[mode]);
            }
            const float sentinel = -12345.5f;
            float *y_ref = malloc(sizeof(float) * (size_t)(M * n));
            float *y_k = malloc(sizeof(float) * (size_t)(M * n));
            for (int64_t i = 0; i < M * n; i++) y_ref[i] = y_k[i] = sentinel;
            ref->matmul(&qm, &a_ref, 0, M, y_ref, M);
            /* rows split in two calls, at an odd boundary */
            int64_t split = M / 2 + 1;
            k->matmul(&qm, &a_ref, 1, split, y_k, M);
            k->matmul(&qm, &a_ref, split, M, y_k, M);
            for (int t = 0; t < n; t++) {
                if (y_k[(int64_t)t * M] != sentinel) bad_range++;
                y_k[(int64_t)t * M] = y_ref[(int64_t)t * M];
            }
            if (memcmp(y_ref, y_k, sizeof(float) * (size_t)(M * n))) {
                bad_y++;
                for (int64_t i = 0; i < M * n; i++)
                    if (memcmp(&y_ref[i], &y_k[i], sizeof(float))) {
                        if (!first_bad[0])
                            snprintf(first_bad, sizeof first_bad, "Y K=%lld M=%lld n=%d mode=%s i=%lld ref=%.9g got=%.9g",
                                     (long long)K, (long long)M, n, act_mode_name[mode], (long long)i, y_ref[i], y_k[i]);
                        break;
                    }
            }
            cases++;
            bn_act_free(&a_ref);
            bn_act_free(&a_k);
            free(x); free(buf); free(y_ref); free(y_k);
        }
    }
    CHECK(bad_act == 0, "%s vs scalar: activations bytewise equal (%d cases) %s", path, cases, bad_act ? first_bad : "");
    CHECK(bad_y == 0, "%s vs scalar: Y bitwise equal, K in [%lld..%lld], n 1..9, 6 act modes (%d cases) %s", path,
          (long long)ks[0], (long long)ks[nk - 1], cases, bad_y ? first_bad : "");
    CHECK(bad_range == 0, "%s: rows outside [r0, r1) untouched", path);
}

/* Scalar kernels against a double dot of the dequantized operands: tests the
 * kernels' reading of each layout independently of the SIMD code. */
static void scalar_vs_dequant(uint32_t type) {
    const bn_kernels *ref = bn_kernels_for(BN_ISA_SCALAR);
    const int64_t K = type == BN_TYPE_F32 || type == BN_TYPE_F16 ? 1000 : 2560 + (type == BN_TYPE_Q8_0 ? 0 : 0);
    const int64_t M = 5;
    const int n = 3;
    float *w = malloc(sizeof(float) * (size_t)(K * M)), *x = malloc(sizeof(float) * (size_t)(K * n));
    make_weights(w, K * M, type, WT_TERNARY_RANDOM);
    make_acts(x, K * n, ACT_RANDOM);
    size_t nbytes;
    uint8_t *buf = quantize_weights(w, K, M, type, &nbytes);
    bn_qmat qm;
    bn_act a;
    bn_err e;
    make_qmat(&qm, type, K, M, buf, nbytes);
    bn_act_alloc(&a, bn_act_kind_for(type), K, n, &e);
    bn_act_quantize(ref, &a, x, K, n);
    float y[15];
    ref->matmul(&qm, &a, 0, M, y, M);
    float *wd = malloc(sizeof(float) * (size_t)K), *xd = malloc(sizeof(float) * (size_t)K);
    double worst = 0;
    for (int t = 0; t < n; t++) {
        dequant_act(&a, t, xd);
        for (int64_t r = 0; r < M; r++) {
            dequant_row(&qm, r, wd);
            double s = 0, sa = 0;
            for (int64_t k = 0; k < K; k++) { s += (double)wd[k] * xd[k]; sa += fabs((double)wd[k] * xd[k]); }
            double rel = fabs(y[t * M + r] - s) / (sa > 0 ? sa : 1);
            if (rel > worst) worst = rel;
        }
    }
    char path[64];
    bn_kernels_path(ref, type, path, sizeof path);
    CHECK(worst < 1e-5, "%s: scalar matches double dot of dequantized operands (worst rel %.2g)", path, worst);
    free(w); free(x); free(buf); free(wd); free(xd);
    bn_act_free(&a);
}

/* The hand-written formula of the I2_S path on a tiny case. */
static void i2s_hand(void) {
    const int64_t K = 128;
    float w[128], x[128];
    for (int i = 0; i < 128; i++) { w[i] = 0; x[i] = 0; }
    w[0] = 0.5f; w[32] = -0.5f; w[127] = 0.5f;
    x[0] = 127.0f; x[32] = 2.5f; x[127] = -3.5f; x[1] = 1.0f;
    uint8_t buf[128 / 4 + 32 + 64];
    memset(buf, 0, sizeof buf);
    bn_quantize_i2_s_ref(w, buf, K);
    bn_qmat qm;
    make_qmat(&qm, BN_TYPE_I2_S, K, 1, buf, K / 4 + 32);
    for (int isa = 0; isa < BN_ISA_COUNT; isa++) {
        const bn_kernels *k = bn_kernels_for((bn_isa)isa);
        bn_cpu_info ci;
        bn_cpu_detect(&ci);
        if (!k || !bn_isa_supported(&ci, (bn_isa)isa)) continue;
        bn_act a;
        bn_err e;
        bn_act_alloc(&a, BN_ACT_I8S, K, 1, &e);
        bn_act_quantize(k, &a, x, K, 1);
        /* s = 1: q0 = 127, q32 = 2 (tie to even), q127 = -4 (tie to even), q1 = 1; sum = 126 */
        const int8_t *q = a.data;
        int qok = a.scale[0] == 1.0f && q[0] == 127 && q[32] == 2 && q[127] == -4 && q[1] == 1 && a.sum[0] == 126;
        float y;
        k->matmul(&qm, &a, 0, 1, &y, 1);
        /* codes: 2 at 0, 0 at 32, 2 at 127, 1 elsewhere: sumi = 2*127 + 0*2 + 2*(-4) + 1*1 = 247;
         * y = (247 - 126) / 1 * 0.5 = 60.5 = (127 - 2 - 4) * 0.5 */
        CHECK(qok && y == 60.5f, "%s: I2_S hand-computed case (q ties-to-even, sum, y = %g, want 60.5)", k->name, y);
        bn_act_free(&a);
    }
}

/* A batch bigger than one activation chunk (bn_kernels_matmul_via cuts a
 * batch into ~256 KB pieces): the table's matmul must equal one direct call
 * of its kernel over all tokens, and the scalar table, bit for bit. K = 8192
 * makes the chunks 8-32 tokens, so 70 tokens give several chunks and a tail
 * that is not a multiple of the 4-token tiles; 37 rows are two 16-row AMX
 * panels and a tail. */
static void chunked_batch(const bn_kernels *k, uint32_t type) {
    const bn_kernels *ref = bn_kernels_for(BN_ISA_SCALAR);
    const int64_t K = 8192, M = 37;
    /* a table with bigger chunks for the slot (AMX: 1 MB) gets more tokens */
    const size_t chunk = k->mm_chunk[bn_wkind_of(type)];
    const int n = chunk > (256u << 10) ? 2 * (int)(chunk / (size_t)K) + 7 : 70;
    char path[64];
    bn_kernels_path(k, type, path, sizeof path);
    bn_qmat qm;
    uint8_t *buf;
    float *x = make_case(type, K, M, n, WT_TERNARY_RANDOM, ACT_RANDOM, &qm, &buf);
    bn_act a;
    bn_err e;
    float *y_ref = malloc(sizeof(float) * (size_t)(M * n)), *y_dir = malloc(sizeof(float) * (size_t)(M * n));
    float *y_k = malloc(sizeof(float) * (size_t)(M * n));
    if (!x || bn_act_alloc(&a, bn_act_kind_for(type), K, n, &e)) {
        CHECK(0, "%s: chunked setup", path);
    } else {
        bn_act_quantize(ref, &a, x, K, n);
        ref->matmul(&qm, &a, 0, M, y_ref, M);
        k->mm[bn_wkind_of(type)](&qm, &a, 0, M, y_dir, M);
        k->matmul(&qm, &a, 0, M, y_k, M);
        CHECK(!memcmp(y_k, y_dir, sizeof(float) * (size_t)(M * n)) && !memcmp(y_k, y_ref, sizeof(float) * (size_t)(M * n)),
              "%s: %d tokens in activation chunks == one direct call == scalar, bitwise", path, n);
        bn_act_free(&a);
    }
    free(x); free(buf); free(y_ref); free(y_dir); free(y_k);
}

/* Shapes big enough for the wide batch tiles (AMX: 16 or 32 rows x 16 or 32
 * tokens, with row and token tails), rows computed in two calls split at an
 * odd boundary, against the scalar table bit for bit. Weights all +1 with
 * saturated activations give the largest sums the int8 paths can form. */
static void big_tiles(const bn_kernels *k, uint32_t type) {
    const bn_kernels *ref = bn_kernels_for(BN_ISA_SCALAR);
    static const int64_t Ms[] = { 16, 33, 70 };
    static const int ns[] = { 1, 16, 17, 47, 70, 300 }; /* 1: the decode GEMVs' row tiles */
    const int64_t K = type == BN_TYPE_I2_S ? 384 : type == BN_TYPE_Q8_0 ? 96 : 512;
    const int64_t Kbig = type == BN_TYPE_F16 || type == BN_TYPE_F32 ? 1000 : 6912;
    char path[64], first_bad[160] = "";
    bn_kernels_path(k, type, path, sizeof path);
    int cases = 0, bad = 0;
    for (int iM = 0; iM < 3; iM++)
        for (int in = 0; in < 6; in++)
            for (int big = 0; big < 2; big++) {
                const int64_t M = Ms[iM], KK = big ? Kbig : K;
                const int n = ns[in];
                const int amode = (iM + in + big) % 2 ? ACT_SATURATE : ACT_RANDOM;
                bn_qmat qm;
                uint8_t *buf;
                float *x = make_case(type, KK, M, n, amode == ACT_SATURATE ? WT_ALL_PLUS : WT_TERNARY_RANDOM, amode, &qm, &buf);
                bn_act a;
                bn_err e;
                float *y_ref = malloc(sizeof(float) * (size_t)(M * n)), *y_k = malloc(sizeof(float) * (size_t)(M * n));
                if (!x || !y_ref || !y_k || bn_act_alloc(&a, bn_act_kind_for(type), KK, n, &e)) {
                    CHECK(0, "%s: big tile setup", path);
                    free(x); free(buf); free(y_ref); free(y_k);
                    return;
                }
                bn_act_quantize(ref, &a, x, KK, n);
                ref->matmul(&qm, &a, 0, M, y_ref, M);
                const int64_t split = M > 40 ? 37 : 5;
                k->matmul(&qm, &a, 0, split, y_k, M);
                k->matmul(&qm, &a, split, M, y_k, M);
                if (memcmp(y_ref, y_k, sizeof(float) * (size_t)(M * n))) {
                    bad++;
                    if (!first_bad[0]) snprintf(first_bad, sizeof first_bad, "M=%lld n=%d K=%lld", (long long)M, n, (long long)KK);
                }
                cases++;
                bn_act_free(&a);
                free(x); free(buf); free(y_ref); free(y_k);
            }
    CHECK(bad == 0, "%s vs scalar: wide tiles (M 16..70, n 1 and 16..300, row split), bitwise (%d cases) %s", path, cases, first_bad);
}

/* The one-token runs entry points (bn_kernels_runs, bn_kernels_matmul_runs),
 * as region_matmul deals a range out in parts: a range [r0, r1) cut into the
 * table's run layout, its steps computed in parts of 1..7 steps (from the
 * front, then from the back, with and without a prepared token), the rows
 * left over by k->matmul; against the scalar table bit for bit, rows outside
 * the range untouched. Widths with an odd block count, wider than the
 * preparing buffers, and saturated operands included. */
static void runs_parts(const bn_kernels *k, uint32_t type) {
    const bn_kernels *ref = bn_kernels_for(BN_ISA_SCALAR);
    int64_t ks[8];
    const int nk = k_values(type, ks);
    char path[64], first_bad[200] = "";
    bn_kernels_path(k, type, path, sizeof path);
    int R, u, cases = 0, bad = 0;
    bn_kernels_runs(k, type, &R, &u);
    CHECK(R >= 1 && R <= BN_MAX_RUNS && u >= 1, "%s: run layout %d runs of %d-row units", path, R, u);
    _Alignas(64) static uint8_t prep_buf[BN_RUNS_PREP_BYTES];
    for (int ik = 0; ik <= nk; ik++)
        for (int im = 0; im < 2; im++) {
            const int64_t K = ik < nk ? ks[ik] : type == BN_TYPE_F16 || type == BN_TYPE_F32 ? 8200 : 36864;
            const int64_t M = im ? 70 : 5 + (int64_t)R * u * 3, r0 = im ? 3 : 1, r1 = M - (im ? 2 : 0);
            const int amode = im ? ACT_SATURATE : ACT_RANDOM;
            bn_qmat qm;
            uint8_t *buf;
            float *x = make_case(type, K, M, 1, amode == ACT_SATURATE ? WT_ALL_PLUS : WT_TERNARY_RANDOM, amode, &qm, &buf);
            bn_act a;
            bn_err e;
            const float sentinel = -12345.5f;
            float *y_ref = malloc(sizeof(float) * (size_t)M), *y_k = malloc(sizeof(float) * (size_t)M);
            if (!x || !y_ref || !y_k || bn_act_alloc(&a, bn_act_kind_for(type), K, 1, &e)) {
                CHECK(0, "%s: runs setup K=%lld", path, (long long)K);
                free(x); free(buf); free(y_ref); free(y_k);
                return;
            }
            bn_act_quantize(ref, &a, x, K, 1);
            ref->matmul(&qm, &a, 0, M, y_ref, M);
            for (int64_t i = 0; i < M; i++) y_k[i] = sentinel;
            const int64_t n = (r1 - r0) / ((int64_t)R * u) * u, steps = n / u;
            const void *prep = bn_kernels_runs_prep(k, &qm, &a, prep_buf);
            int64_t lo = 0, hi = steps;
            for (int part = 0; lo < hi; part++) {
                int64_t take = 1 + (int64_t)(rng_u64() % 7);
                if (take > hi - lo) take = hi - lo;
                const int64_t s0 = part % 2 ? hi - take : lo;
                int64_t start[BN_MAX_RUNS];
                for (int j = 0; j < R; j++) start[j] = r0 + j * n + s0 * u;
                bn_kernels_matmul_runs(k, &qm, &a, part % 3 ? prep : NULL, start, take * u, y_k);
                if (part % 2) hi -= take;
                else lo += take;
            }
            k->matmul(&qm, &a, r0 + R * n, r1, y_k, M);
            int wrong = 0;
            for (int64_t i = 0; i < M; i++) {
                const bool inside = i >= r0 && i < r1;
                if (inside ? memcmp(&y_ref[i], &y_k[i], sizeof(float)) != 0 : y_k[i] != sentinel) {
                    if (!first_bad[0])
                        snprintf(first_bad, sizeof first_bad, "K=%lld M=%lld row %lld%s: ref=%.9g got=%.9g", (long long)K,
                                 (long long)M, (long long)i, inside ? "" : " (outside)", y_ref[i], y_k[i]);
                    wrong = 1;
                }
            }
            bad += wrong;
            cases++;
            bn_act_free(&a);
            free(x); free(buf); free(y_ref); free(y_k);
        }
    CHECK(bad == 0, "%s: one token in run parts (%d runs of %d-row units), bitwise the scalar result (%d cases) %s", path, R, u,
          cases, first_bad);
}

/* Whether table k gives the scalar result bit for bit on qm for n tokens
 * of act mode amode, quantized to the kind qm's type reads (0 yes, 1 no or
 * no memory). */
static int act_matmul_differs_mode(const bn_kernels *k, const bn_qmat *qm, int n, int amode) {
    const bn_kernels *ref = bn_kernels_for(BN_ISA_SCALAR);
    float *x = malloc(sizeof(float) * (size_t)(qm->K * n));
    float *y_ref = malloc(sizeof(float) * (size_t)(qm->M * n)), *y_k = malloc(sizeof(float) * (size_t)(qm->M * n));
    bn_act a;
    bn_err e;
    int bad = 1;
    if (x && y_ref && y_k && !bn_act_alloc(&a, bn_act_kind_for(qm->type), qm->K, n, &e)) {
        make_acts(x, qm->K * n, amode);
        bn_act_quantize(ref, &a, x, qm->K, n);
        ref->matmul(qm, &a, 0, qm->M, y_ref, qm->M);
        k->matmul(qm, &a, 0, qm->M, y_k, qm->M);
        bad = memcmp(y_ref, y_k, sizeof(float) * (size_t)(qm->M * n)) != 0;
        bn_act_free(&a);
    }
    free(x);
    free(y_ref);
    free(y_k);
    return bad;
}
static int q8k_matmul_differs(const bn_kernels *k, const bn_qmat *qm, int n) {
    return act_matmul_differs_mode(k, qm, n, ACT_RANDOM);
}

/* A K x M matrix of random ternary weights quantized to type into *q; the
 * buffer to free (NULL, and q unset, if it could not be made). */
static uint8_t *ternary_qmat(uint32_t type, int64_t K, int64_t M, bn_qmat *q) {
    float *w = malloc(sizeof(float) * (size_t)(K * M));
    if (!w) return NULL;
    make_weights(w, K * M, type, WT_TERNARY_RANDOM);
    size_t nbytes;
    uint8_t *buf = quantize_weights(w, K, M, type, &nbytes);
    free(w);
    if (buf && make_qmat(q, type, K, M, buf, nbytes)) {
        free(buf);
        buf = NULL;
    }
    return buf;
}

/* TQ1_0 blocks of arbitrary bytes: a file may hold qs/qh bytes above 242
 * (no quantizer writes them), and every kernel must decode them with the
 * reference's formula, (uint8)(b * 3^n) * 3 >> 8. One token and a batch,
 * with bytes 0..255 all present. Then rows of 513 blocks: past the 512 the
 * TQ2_0 rewrite buffers (the scalar path). */
static void tq1_any_bytes(const bn_kernels *k) {
    const int64_t K = 768, M = 11, nb = K / BN_QK_K;
    bn_block_tq1_0 *w = malloc(sizeof *w * (size_t)(M * nb));
    for (int64_t i = 0; i < M * nb; i++) {
        for (size_t j = 0; j < sizeof w[i].qs; j++) w[i].qs[j] = (uint8_t)(i * 52 + j);
        for (size_t j = 0; j < sizeof w[i].qh; j++) w[i].qh[j] = (uint8_t)(i * 52 + 48 + j);
        w[i].d = (uint16_t)(0x3000 + (rng_u64() & 0x0FFF));
    }
    bn_qmat qm = { .type = BN_TYPE_TQ1_0, .K = K, .M = M, .data = (const uint8_t *)w,
                   .row_bytes = (size_t)nb * sizeof *w, .scale = 1.0f };
    int bad = q8k_matmul_differs(k, &qm, 1) + q8k_matmul_differs(k, &qm, 6);
    CHECK(bad == 0, "%s: tq1_0 blocks of arbitrary bytes (0..255), 1 and 6 tokens: bitwise the scalar result", k->name);
    /* the table's TQ1_0 -> TQ2_0 rewrite (bn-forward's load-time repack) on the same blocks */
    if (k->tq1_to_tq2) {
        bn_block_tq2_0 *a = malloc(sizeof *a * (size_t)(M * nb)), *b = malloc(sizeof *b * (size_t)(M * nb));
        bad = !a || !b;
        if (!bad) {
            bn_tq1_0_to_tq2_0(w, a, M * nb);
            k->tq1_to_tq2((const struct bn_block_tq1_0 *)w, (struct bn_block_tq2_0 *)b, M * nb);
            bad = memcmp(a, b, sizeof *a * (size_t)(M * nb)) != 0;
        }
        CHECK(bad == 0, "%s: tq1_to_tq2 of arbitrary bytes: bytewise the reference rewrite", k->name);
        free(a);
        free(b);
    }
    free(w);
    bn_qmat ql;
    uint8_t *buf = ternary_qmat(BN_TYPE_TQ1_0, 256 * 513, 3, &ql);
    bad = !buf || q8k_matmul_differs(k, &ql, 1) + q8k_matmul_differs(k, &ql, 3);
    CHECK(bad == 0, "%s: tq1_0 rows of 513 blocks, 1 and 3 tokens: bitwise the scalar result", k->name);
    free(buf);
}

/* Q6_K blocks of arbitrary bytes (every ql, qh and scale byte value,
 * scales down to -128, which the quantizer does not write) and blocks at
 * the extremes (every 6-bit value 63, every scale -128 or 127) against
 * random, saturated and outlier activations, 1 and 5 tokens, on 13 rows
 * (the one-token kernels' runs and leftovers): bitwise the scalar result. */
static void q6k_any_bytes(const bn_kernels *k) {
    const int64_t K = 768, M = 13, nb = K / BN_QK_K;
    bn_block_q6_K *w = malloc(sizeof *w * (size_t)(M * nb));
    for (int64_t i = 0; i < M * nb; i++) {
        const bool extreme = i % 5 == 4;
        for (size_t j = 0; j < sizeof w[i].ql; j++) w[i].ql[j] = extreme ? 0xFF : (uint8_t)(i * 211 + j);
        for (size_t j = 0; j < sizeof w[i].qh; j++) w[i].qh[j] = extreme ? 0xFF : (uint8_t)(i * 211 + 128 + j);
        for (size_t j = 0; j < sizeof w[i].scales; j++)
            w[i].scales[j] = (int8_t)(extreme ? (i % 2 ? -128 : 127) : (uint8_t)(i * 211 + 192 + j));
        w[i].d = (uint16_t)(0x3000 + (rng_u64() & 0x0FFF));
    }
    bn_qmat qm = { .type = BN_TYPE_Q6_K, .K = K, .M = M, .data = (const uint8_t *)w,
                   .row_bytes = (size_t)nb * sizeof *w, .scale = 1.0f };
    int bad = 0;
    const int modes[3] = { ACT_RANDOM, ACT_SATURATE, ACT_OUTLIER };
    for (int m = 0; m < 3; m++) bad += act_matmul_differs_mode(k, &qm, 1, modes[m]) + act_matmul_differs_mode(k, &qm, 5, modes[m]);
    CHECK(bad == 0, "%s: q6_k blocks of arbitrary and extreme bytes, 3 act modes, 1 and 5 tokens: bitwise the scalar result",
          k->name);
    free(w);
}

/* Q8_0 blocks of any bytes (-128 and 127 included, which the quantizer
 * never writes but a file may hold) against 3 act modes, 1 and 3 tokens:
 * the one-token zmm kernel moves the weights' sign off by w ^ 0x80, so every
 * byte must come out exact. 37 rows: four runs of 8 and 5 left over. Rows
 * of 4097 blocks do not fit its prepared token: the ymm loop. */
static void q8_0_any_bytes(const bn_kernels *k) {
    static const int64_t nbs[2] = { 80, 4097 };
    for (int c = 0; c < 2; c++) {
        const int64_t nb = nbs[c], M = 37;
        bn_block_q8_0 *w = malloc(sizeof *w * (size_t)(M * nb));
        if (!w) {
            CHECK(0, "%s: q8_0 any bytes: no memory", k->name);
            return;
        }
        for (int64_t i = 0; i < M * nb; i++) {
            const int extreme = (int)(i % 7);
            for (int j = 0; j < BN_QK8_0; j++)
                w[i].qs[j] = (int8_t)(extreme == 5 ? -128 : extreme == 6 ? 127 : (uint8_t)(rng_u64() >> 11));
            w[i].d = (uint16_t)(0x2C00 + (rng_u64() & 0x0FFF));
        }
        bn_qmat qm = { .type = BN_TYPE_Q8_0, .K = nb * BN_QK8_0, .M = M, .data = (const uint8_t *)w,
                       .row_bytes = (size_t)nb * sizeof *w, .scale = 1.0f };
        int bad = 0;
        const int modes[3] = { ACT_RANDOM, ACT_SATURATE, ACT_OUTLIER };
        for (int m = 0; m < 3; m++) bad += act_matmul_differs_mode(k, &qm, 1, modes[m]) + act_matmul_differs_mode(k, &qm, 3, modes[m]);
        CHECK(bad == 0, "%s: q8_0 rows of %lld blocks of arbitrary and extreme bytes, 3 act modes, 1 and 3 tokens: bitwise the "
              "scalar result", k->name, (long long)nb);
        free(w);
    }
}

/* TQ2_0 one token on rows that just fill, and just overflow, the buffer the
 * AVX-512 GEMV lays the token out in (102 and 103 blocks of 320 bytes in
 * BN_RUNS_PREP_BYTES): the runs kernel, then the ymm loop. */
static void tq2_long_rows(const bn_kernels *k) {
    static const int64_t nbs[2] = { 102, 103 };
    for (int c = 0; c < 2; c++) {
        bn_qmat q;
        uint8_t *buf = ternary_qmat(BN_TYPE_TQ2_0, BN_QK_K * nbs[c], 9, &q);
        const int bad = !buf || q8k_matmul_differs(k, &q, 1) + q8k_matmul_differs(k, &q, 2);
        CHECK(bad == 0, "%s: tq2_0 rows of %lld blocks, 1 and 2 tokens: bitwise the scalar result", k->name,
              (long long)nbs[c]);
        free(buf);
    }
}

int main(void) {
    bn_cpu_info ci;
    bn_cpu_detect(&ci);
    int ran = 0;
    for (size_t i = 0; i < sizeof all_types / sizeof all_types[0]; i++) scalar_vs_dequant(all_types[i]);
    i2s_hand();
    for (int isa = 1; isa < BN_ISA_COUNT; isa++) {
        const bn_kernels *k = bn_kernels_for((bn_isa)isa);
        if (!k) {
            printf("# %s: not compiled in\n", bn_isa_name((bn_isa)isa));
            continue;
        }
        if (!bn_isa_supported(&ci, (bn_isa)isa)) {
            printf("# %s: not supported by this CPU, skipped\n", bn_isa_name((bn_isa)isa));
            continue;
        }
        printf("# running table %s\n", k->name);
        ran++;
        CHECK(k->isa == (bn_isa)isa, "%s: table isa field", k->name);
        for (size_t i = 0; i < sizeof all_types / sizeof all_types[0]; i++) {
            uint32_t ty = all_types[i];
            char path[64];
            bn_kernels_path(k, ty, path, sizeof path);
            printf("# %s: %s (%s)\n", k->name, path, bn_kernels_is_native(k, ty) ? "native" : "fallback");
            compare_table(k, ty);
            chunked_batch(k, ty);
            big_tiles(k, ty);
            runs_parts(k, ty);
        }
        tq1_any_bytes(k);
        tq2_long_rows(k);
        q6k_any_bytes(k);
        q8_0_any_bytes(k);
    }
    /* The tables bn_kernels_for does not pick on this CPU but that it can run:
     * AVX-512 without VNNI (AVX2 code) and NEON without dotprod. */
#if defined(__x86_64__)
    if (bn_isa_supported(&ci, BN_ISA_AVX512)) {
        printf("# running table %s (the no-VNNI variant)\n", bn_kernels_avx512.name);
        ran++;
        for (size_t i = 0; i < sizeof all_types / sizeof all_types[0]; i++) {
            compare_table(&bn_kernels_avx512, all_types[i]);
            runs_parts(&bn_kernels_avx512, all_types[i]);
        }
        q6k_any_bytes(&bn_kernels_avx512);
        q8_0_any_bytes(&bn_kernels_avx512);
    }
    /* with AMX the VNNI table is the one bn_kernels_for does not pick */
    if (bn_isa_supported(&ci, BN_ISA_AVX512) && ci.avx512vnni && bn_kernels_for(BN_ISA_AVX512) != &bn_kernels_avx512_vnni) {
        printf("# running table %s (the no-AMX variant)\n", bn_kernels_avx512_vnni.name);
        ran++;
        for (size_t i = 0; i < sizeof all_types / sizeof all_types[0]; i++) {
            compare_table(&bn_kernels_avx512_vnni, all_types[i]);
            big_tiles(&bn_kernels_avx512_vnni, all_types[i]);
            runs_parts(&bn_kernels_avx512_vnni, all_types[i]);
        }
        tq1_any_bytes(&bn_kernels_avx512_vnni);
        tq2_long_rows(&bn_kernels_avx512_vnni);
        q6k_any_bytes(&bn_kernels_avx512_vnni);
        q8_0_any_bytes(&bn_kernels_avx512_vnni);
    }
    printf("# AMX-INT8: %s\n", bn_kernels_for(BN_ISA_AVX512) == &bn_kernels_avx512_amx ? "in use (table avx512-amx)"
                                 : ci.amx_int8 ? "in the CPU but not enabled (BN_AMX=0 or refused)" : "not in this CPU");
    if (bn_isa_supported(&ci, BN_ISA_AVX512)) { /* BN_AMX=0 turns the AMX table off; without AMX it is never picked */
        const char *old = getenv("BN_AMX");
        setenv("BN_AMX", "0", 1);
        const bn_kernels *off = bn_kernels_for(BN_ISA_AVX512);
        if (old) setenv("BN_AMX", old, 1);
        else unsetenv("BN_AMX");
        CHECK(off != &bn_kernels_avx512_amx && (ci.amx_int8 || bn_kernels_for(BN_ISA_AVX512) != &bn_kernels_avx512_amx),
              "BN_AMX=0 gives %s; the AMX table only where the CPU has AMX-INT8", off->name);
    }
#endif
#if defined(__aarch64__)
    if (bn_isa_supported(&ci, BN_ISA_NEON) && ci.dotprod) {
        printf("# running table %s (the no-dotprod variant)\n", bn_kernels_neon.name);
        ran++;
        for (size_t i = 0; i < sizeof all_types / sizeof all_types[0]; i++) compare_table(&bn_kernels_neon, all_types[i]);
    }
#endif
    printf("# %d SIMD table(s) tested\n", ran);
    /* dispatch metadata */
    const bn_kernels *s = bn_kernels_for(BN_ISA_SCALAR);
    char p[64];
    bn_kernels_path(s, BN_TYPE_Q6_K, p, sizeof p);
    CHECK(!strcmp(p, "q6_k/scalar") && bn_kernels_is_native(s, BN_TYPE_Q6_K), "scalar path name %s", p);
    CHECK(bn_act_kind_for(BN_TYPE_I2_S) == BN_ACT_I8S && bn_act_kind_for(BN_TYPE_TQ1_0) == BN_ACT_Q8K &&
          bn_act_kind_for(BN_TYPE_TQ2_0) == BN_ACT_Q8K && bn_act_kind_for(BN_TYPE_Q6_K) == BN_ACT_Q8K &&
          bn_act_kind_for(BN_TYPE_Q8_0) == BN_ACT_Q8_0 && bn_act_kind_for(BN_TYPE_F16) == BN_ACT_F16 &&
          bn_act_kind_for(BN_TYPE_F32) == BN_ACT_F32 && bn_act_kind_for(BN_TYPE_Q4_0) == -1,
          "bn_act_kind_for mapping");
    bn_act a;
    bn_err e;
    CHECK(bn_act_alloc(&a, BN_ACT_Q8K, 300, 1, &e) == -1, "act alloc rejects K %% 256 != 0 for Q8K: %s", e.msg);

    /* bn_qmat_from_tensor refuses what the kernels cannot read safely */
    static uint8_t blob[256 * 4 / 4 + 32];
    memset(blob, 0, sizeof blob);
    float sc = 0.5f;
    memcpy(blob + 256, &sc, 4);
    bn_gguf_tensor t;
    memset(&t, 0, sizeof t);
    snprintf(t.name, sizeof t.name, "blk.0.attn_q.weight");
    t.type = BN_TYPE_I2_S;
    t.n_dims = 2;
    t.ne[0] = 256; t.ne[1] = 4; t.ne[2] = t.ne[3] = 1;
    t.data = blob;
    t.nbytes = sizeof blob;
    bn_qmat m;
    CHECK(bn_qmat_from_tensor(&m, &t, &e) == 0 && m.K == 256 && m.M == 4 && m.row_bytes == 64 && m.scale == 0.5f,
          "qmat: I2_S 256x4 view, row_bytes K/4, scale from the trailer");
    t.nbytes = sizeof blob - 1;
    CHECK(bn_qmat_from_tensor(&m, &t, &e) == -1, "qmat: truncated I2_S data rejected: %s", e.msg);
    t.nbytes = sizeof blob;
    t.ne[0] = 192; t.ne[1] = 4;
    CHECK(bn_qmat_from_tensor(&m, &t, &e) == -1, "qmat: I2_S K %% 128 != 0 rejected: %s", e.msg);
    t.ne[0] = 256;
    sc = NAN;
    memcpy(blob + 256, &sc, 4);
    CHECK(bn_qmat_from_tensor(&m, &t, &e) == -1, "qmat: NaN I2_S scale rejected: %s", e.msg);
    t.type = BN_TYPE_Q4_0;
    CHECK(bn_qmat_from_tensor(&m, &t, &e) == -1, "qmat: type without kernel rejected: %s", e.msg);
    t.type = BN_TYPE_TQ2_0;
    t.ne[0] = 128;
    CHECK(bn_qmat_from_tensor(&m, &t, &e) == -1, "qmat: TQ2_0 K %% 256 != 0 rejected: %s", e.msg);
    t.type = BN_TYPE_F32;
    t.n_dims = 3;
    t.ne[2] = 2;
    CHECK(bn_qmat_from_tensor(&m, &t, &e) == -1, "qmat: 3-D tensor rejected: %s", e.msg);
    return tap_done();
}
