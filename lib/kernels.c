/* kernels.c - activation buffers, weight views, and the choice of kernel
 * table per ISA. The numeric code lives in lib/kernels_<isa>.c. */
#include "kernels.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quant.h"

/* Which activation format each weight type multiplies against (see kernels.h). */
int bn_act_kind_for(uint32_t weight_type) {
    switch (weight_type) {
    case BN_TYPE_I2_S: return BN_ACT_I8S;
    case BN_TYPE_TQ1_0:
    case BN_TYPE_TQ2_0:
    case BN_TYPE_Q6_K: return BN_ACT_Q8K;
    case BN_TYPE_Q8_0: return BN_ACT_Q8_0;
    case BN_TYPE_F16: return BN_ACT_F16;
    case BN_TYPE_F32: return BN_ACT_F32;
    default: return -1;
    }
}

/* Slot of a weight type in the per-table kernel arrays. */
int bn_wkind_of(uint32_t weight_type) {
    switch (weight_type) {
    case BN_TYPE_I2_S: return BN_W_I2S;
    case BN_TYPE_TQ2_0: return BN_W_TQ2_0;
    case BN_TYPE_TQ1_0: return BN_W_TQ1_0;
    case BN_TYPE_Q8_0: return BN_W_Q8_0;
    case BN_TYPE_Q6_K: return BN_W_Q6_K;
    case BN_TYPE_F16: return BN_W_F16;
    case BN_TYPE_F32: return BN_W_F32;
    default: return -1;
    }
}

/* Row bytes per weight type; also the block divisibility rule (0 = invalid). */
size_t bn_qmat_row_bytes(uint32_t type, int64_t K) {
    if (K <= 0) return 0;
    switch (type) {
    case BN_TYPE_I2_S: return K % BN_QK_I2S ? 0 : (size_t)K / 4;
    case BN_TYPE_TQ2_0: return K % BN_QK_K ? 0 : (size_t)K / BN_QK_K * sizeof(bn_block_tq2_0);
    case BN_TYPE_TQ1_0: return K % BN_QK_K ? 0 : (size_t)K / BN_QK_K * sizeof(bn_block_tq1_0);
    case BN_TYPE_Q6_K: return K % BN_QK_K ? 0 : (size_t)K / BN_QK_K * sizeof(bn_block_q6_K);
    case BN_TYPE_Q8_0: return K % BN_QK8_0 ? 0 : (size_t)K / BN_QK8_0 * sizeof(bn_block_q8_0);
    case BN_TYPE_F16: return (size_t)K * 2;
    case BN_TYPE_F32: return (size_t)K * 4;
    default: return 0;
    }
}

/* Bytes of one activation row for a kind (0 when K breaks its block rule). */
static size_t act_row_bytes(bn_act_kind kind, int64_t K) {
    if (K <= 0) return 0;
    switch (kind) {
    case BN_ACT_I8S: return (size_t)K;
    case BN_ACT_Q8K: return K % BN_QK_K ? 0 : (size_t)K / BN_QK_K * sizeof(bn_block_q8_K);
    case BN_ACT_Q8_0: return K % BN_QK8_0 ? 0 : (size_t)K / BN_QK8_0 * sizeof(bn_block_q8_0);
    case BN_ACT_F16: return (size_t)K * 2;
    case BN_ACT_F32: return (size_t)K * 4;
    default: return 0;
    }
}

/* 64-byte aligned allocation so SIMD loads of a row never split more cache
 * lines than needed; size rounded up as aligned_alloc requires. */
static void *alloc64(size_t n, bn_err *e) {
    size_t r;
    if (!bn_add_size(n, 63, &r)) { bn_errf(e, "kernels: activation buffer: size overflow"); return NULL; }
    r &= ~(size_t)63;
    void *p = aligned_alloc(64, r ? r : 64);
    if (!p) bn_errf(e, "kernels: activation buffer: out of memory (%zu bytes)", r);
    else memset(p, 0, r ? r : 64);
    return p;
}

int bn_act_alloc(bn_act *a, bn_act_kind kind, int64_t K, int n_cap, bn_err *e) {
    memset(a, 0, sizeof *a);
    if ((unsigned)kind >= BN_ACT_COUNT) return bn_errf(e, "kernels: activation kind %d: unknown", (int)kind);
    if (n_cap <= 0) return bn_errf(e, "kernels: activation rows: %d must be > 0", n_cap);
    size_t rb = act_row_bytes(kind, K);
    if (!rb) return bn_errf(e, "kernels: activation K: %lld is not a positive multiple of the block size",
                            (long long)K);
    size_t total;
    if (!bn_mul_size(rb, (size_t)n_cap, &total)) return bn_errf(e, "kernels: activation buffer: size overflow");
    a->data = alloc64(total, e);
    if (!a->data) return -1;
    a->scale = alloc64((size_t)n_cap * sizeof(float), e);
    a->sum = alloc64((size_t)n_cap * sizeof(int32_t), e);
    if (!a->scale || !a->sum) { bn_act_free(a); return -1; }
    a->kind = kind;
    a->K = K;
    a->n = 0;
    a->n_cap = n_cap;
    a->row_bytes = rb;
    return 0;
}

void bn_act_free(bn_act *a) {
    if (!a) return;
    free(a->data);
    free(a->scale);
    free(a->sum);
    memset(a, 0, sizeof *a);
}

void bn_act_quantize(const bn_kernels *k, bn_act *a, const float *X, int64_t ldx, int n) {
    a->n = n;
    k->quantize_act(a, X, ldx, 0, n);
}

/* A view of a GGUF tensor as a matrix; everything a kernel later relies on
 * (block multiples, byte size, the I2_S trailer scale) is checked here once. */
int bn_qmat_from_tensor(bn_qmat *m, const bn_gguf_tensor *t, bn_err *e) {
    memset(m, 0, sizeof *m);
    if (bn_wkind_of(t->type) < 0)
        return bn_errf(e, "%s: type: no matmul kernel for type %u", t->name, t->type);
    if (t->n_dims < 1 || t->n_dims > 2 || (t->n_dims == 2 && (t->ne[2] != 1 || t->ne[3] != 1)))
        return bn_errf(e, "%s: shape: a weight matrix must have 1 or 2 dimensions", t->name);
    int64_t K = t->ne[0], M = t->n_dims == 2 ? t->ne[1] : 1;
    if (K <= 0 || M <= 0) return bn_errf(e, "%s: shape: dimensions must be positive", t->name);
    size_t rb = bn_qmat_row_bytes(t->type, K);
    if (!rb) return bn_errf(e, "%s: shape: ne0 = %lld is not a multiple of the block size of its type",
                            t->name, (long long)K);
    uint64_t need;
    if (!bn_mul_u64(rb, (uint64_t)M, &need)) return bn_errf(e, "%s: shape: size overflow", t->name);
    if (t->type == BN_TYPE_I2_S) need += 32;
    if (t->nbytes < need || !t->data)
        return bn_errf(e, "%s: data: %llu bytes, need %llu", t->name, (unsigned long long)t->nbytes,
                       (unsigned long long)need);
    m->type = t->type;
    m->K = K;
    m->M = M;
    m->data = t->data;
    m->row_bytes = rb;
    m->scale = 1.0f;
    if (t->type == BN_TYPE_I2_S) {
        float s;
        memcpy(&s, t->data + rb * (uint64_t)M, sizeof s);
        if (!isfinite(s) || s < 0) return bn_errf(e, "%s: scale: I2_S scale %g is not finite and >= 0", t->name, s);
        m->scale = s;
    }
    return 0;
}

/* Static tables per ISA; AVX-512 and NEON pick their variant from the CPU. */
const bn_kernels *bn_kernels_for(bn_isa isa) {
    switch (isa) {
    case BN_ISA_SCALAR: return &bn_kernels_scalar;
#if defined(__x86_64__)
    case BN_ISA_AVX2: return &bn_kernels_avx2;
    case BN_ISA_AVX512: {
        bn_cpu_info ci;
        bn_cpu_detect(&ci);
        if (bn_cpu_amx_enable(&ci)) return &bn_kernels_avx512_amx;
        return ci.avx512vnni ? &bn_kernels_avx512_vnni : &bn_kernels_avx512;
    }
#endif
#if defined(__aarch64__)
    case BN_ISA_NEON: {
        bn_cpu_info ci;
        bn_cpu_detect(&ci);
        return ci.dotprod ? &bn_kernels_neon_dotprod : &bn_kernels_neon;
    }
#endif
    default: return NULL;
    }
}

void bn_kernels_path(const bn_kernels *k, uint32_t weight_type, char *buf, size_t n) {
    static const char *names[BN_W_COUNT] = { "i2_s", "tq2_0", "tq1_0", "q8_0", "q6_k", "f16", "f32" };
    int w = bn_wkind_of(weight_type);
    if (w < 0) snprintf(buf, n, "type%u/none", weight_type);
    else snprintf(buf, n, "%s/%s", names[w], k->mm_isa[w]);
}

/* Native = the slot holds code of this table's ISA family, not the scalar
 * fallback (the scalar table is native to itself). */
int bn_kernels_is_native(const bn_kernels *k, uint32_t weight_type) {
    int w = bn_wkind_of(weight_type);
    if (w < 0 || !k->mm[w]) return 0;
    if (k->isa == BN_ISA_SCALAR) return 1;
    return strcmp(k->mm_isa[w], "scalar") != 0;
}

/* A batch's activations are cut into chunks of about this many bytes, and
 * each chunk runs over all the rows before the next starts: a chunk stays in
 * L2 while the rows stream past (for K = 6912 a 512-token batch is 3.5 MB of
 * int8 activations, more than any L2 here). */
#define BN_MM_CHUNK_BYTES (256u << 10)

/* Every (row, token) result is computed the same way whatever the tile it
 * lands in (the kernels equal the scalar reference bit for bit for any token
 * count), so chunking changes speed only. */
void bn_kernels_matmul_via(const bn_kernels *k, const bn_qmat *W, const bn_act *a,
                           int64_t r0, int64_t r1, float *Y, int64_t ldy) {
    int w = bn_wkind_of(W->type);
    if (w < 0 || a->n <= 0 || r1 <= r0) return;
    size_t bytes = k->mm_chunk[w] ? k->mm_chunk[w] : BN_MM_CHUNK_BYTES;
    int chunk = (int)(bytes / (a->row_bytes ? a->row_bytes : 1)) & ~3;
    if (chunk < 4) chunk = 4;
    for (int t0 = 0; t0 < a->n; t0 += chunk) {
        bn_act part = *a;
        part.n = a->n - t0 < chunk ? a->n - t0 : chunk;
        part.data = (uint8_t *)a->data + (size_t)t0 * a->row_bytes;
        if (a->scale) part.scale = a->scale + t0;
        if (a->sum) part.sum = a->sum + t0;
        k->mm[w](W, &part, r0, r1, Y + (int64_t)t0 * ldy, ldy);
    }
}

void bn_kernels_runs(const bn_kernels *k, uint32_t weight_type, int *R, int *unit) {
    const int w = bn_wkind_of(weight_type);
    *R = *unit = 1;
    if (w < 0 || !k->mm_runs[w] || k->mm_runs_n[w] < 1 || k->mm_runs_n[w] > BN_MAX_RUNS || k->mm_run_unit[w] < 1) return;
    *R = k->mm_runs_n[w];
    *unit = k->mm_run_unit[w];
}

const void *bn_kernels_runs_prep(const bn_kernels *k, const bn_qmat *W, const bn_act *a, void *buf) {
    const int w = bn_wkind_of(W->type);
    if (w < 0 || !k->mm_runs[w] || !k->mm_runs_prep[w]) return NULL;
    return k->mm_runs_prep[w](W, a, buf);
}

/* A table without a runs kernel for the slot reads a row at a time, so its
 * one run is a plain row range. */
void bn_kernels_matmul_runs(const bn_kernels *k, const bn_qmat *W, const bn_act *a, const void *prep,
                            const int64_t *start, int64_t len, float *Y) {
    const int w = bn_wkind_of(W->type);
    if (w < 0 || len <= 0) return;
    int R, u;
    bn_kernels_runs(k, W->type, &R, &u);
    if (R > 1 || u > 1) k->mm_runs[w](W, a, prep, start, len, Y);
    else k->matmul(W, a, start[0], start[0] + len, Y, W->M);
}

/* A stack buffer of 512 TQ2_0 blocks (33 KB), up to 8 rows at a time. */
void bn_mm_tq1_0_via_tq2(const bn_qmat *W, const bn_act *a, int64_t r0, int64_t r1, float *Y, int64_t ldy,
                         bn_tq1_to_tq2_fn to_tq2, bn_matmul_fn mm_tq2) {
    enum { BLOCKS = 512 };
    const int64_t nb = W->K / BN_QK_K;
    if (nb > BLOCKS) { /* rows of over 131072 values: the reference */
        bn_mm_tq1_0_scalar(W, a, r0, r1, Y, ldy);
        return;
    }
    const int64_t rows = BLOCKS / nb < 8 ? BLOCKS / nb : 8;
    _Alignas(64) bn_block_tq2_0 t2[BLOCKS];
    bn_qmat w2 = *W;
    w2.type = BN_TYPE_TQ2_0;
    w2.row_bytes = (size_t)nb * sizeof(bn_block_tq2_0);
    w2.data = (const uint8_t *)t2;
    w2.packed = NULL;
    for (int64_t r = r0; r < r1; r += rows) {
        const int64_t n = r1 - r < rows ? r1 - r : rows;
        for (int64_t j = 0; j < n; j++)
            to_tq2((const bn_block_tq1_0 *)(W->data + (size_t)(r + j) * W->row_bytes), t2 + j * nb, nb);
        w2.M = n;
        mm_tq2(&w2, a, 0, n, Y + r, ldy);
    }
}

void bn_kernels_quantize_via(const bn_kernels *k, bn_act *a, const float *X, int64_t ldx, int t0, int t1) {
    if ((unsigned)a->kind >= BN_ACT_COUNT || t1 <= t0) return;
    k->qa[a->kind](a, X, ldx, t0, t1);
}
