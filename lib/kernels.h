/* kernels.h - the matmul contract between the forward pass and the per-ISA
 * kernels. For every weight type there is a scalar reference (lib/quant_*.c,
 * lib/kernels_scalar.c) and SIMD versions (lib/kernels_avx2.c,
 * lib/kernels_avx512.c, lib/kernels_neon.c) that must agree with it: bit for
 * bit on integer parts, within 1e-6 relative on float parts.
 *
 * A matmul is  Y[t][r] = sum_k W[r][k] * X[t][k]  for output rows r in
 * [r0, r1) and tokens t in [0, n). W is a GGUF tensor with ne = [K, M] (row r
 * is K inputs), X is n rows of K floats quantized once per matmul input into
 * a bn_act of the kind the weight type needs. One output row is always
 * computed by one call, in one fixed order, so splitting rows across threads
 * gives bitwise identical results for any thread count. */
#ifndef BN_KERNELS_H
#define BN_KERNELS_H

#include <stddef.h>
#include <stdint.h>
#include "cpu.h"
#include "gguf.h"

typedef enum bn_act_kind {
    BN_ACT_I8S = 0, /* bitnet.cpp I2_S: int8 per token, s = 127/max(|x|,1e-5), q = clamp(rne(x*s)), sum(q) kept */
    BN_ACT_Q8K,     /* llama.cpp q8_K per 256 block (TQ1_0, TQ2_0, Q6_K weights) */
    BN_ACT_Q8_0,    /* llama.cpp q8_0 per 32 block (Q8_0 weights) */
    BN_ACT_F16,     /* activations rounded to f16 (F16 weights, as ggml's vec_dot_f16) */
    BN_ACT_F32,     /* plain f32 (F32 weights) */
    BN_ACT_COUNT
} bn_act_kind;

/* The activation kind a weight type multiplies against; -1 if unsupported. */
int bn_act_kind_for(uint32_t weight_type);

/* Quantized activations: n rows of K values. Memory is owned by the caller
 * (bn_act_alloc / bn_act_free) and reused across steps. */
typedef struct bn_act {
    bn_act_kind kind;
    int64_t K;
    int n, n_cap;
    void *data;       /* I8S: int8 [n][K]; Q8K/Q8_0: blocks [n][K/blk]; F16: uint16 [n][K]; F32: float [n][K] */
    float *scale;     /* I8S: per row s (= 127/max) */
    int32_t *sum;     /* I8S: per row sum of q */
    size_t row_bytes; /* bytes of one row in data */
} bn_act;

/* Allocate room for n_cap rows of K values (64-byte aligned); a->n = 0.
 * Fails if K is not a multiple of the kind's block (Q8K 256, Q8_0 32). */
int bn_act_alloc(bn_act *a, bn_act_kind kind, int64_t K, int n_cap, bn_err *e);
void bn_act_free(bn_act *a);

/* A weight matrix as the kernels see it (a view into the mmap, never copied). */
typedef struct bn_qmat {
    uint32_t type;        /* bn_type: I2_S, TQ2_0, TQ1_0, F16, F32, Q8_0, Q6_K */
    int64_t K, M;         /* inputs (ne0), outputs (ne1) */
    const uint8_t *data;  /* tensor data */
    size_t row_bytes;     /* bytes per row (I2_S: K/4) */
    float scale;          /* I2_S: per-tensor scale from the trailer; 1 for other types */
    const void *packed;   /* optional ISA-specific repacked copy (NULL = use data) */
} bn_qmat;

/* Fill a bn_qmat from a GGUF tensor (checks type and shape, reads the I2_S scale). */
int bn_qmat_from_tensor(bn_qmat *m, const bn_gguf_tensor *t, bn_err *e);

/* Per-ISA function table. Tables are static const: no mutable state. */
/* Weight kinds that have kernels (index into the per-type slots below). */
typedef enum bn_wkind {
    BN_W_I2S = 0, BN_W_TQ2_0, BN_W_TQ1_0, BN_W_Q8_0, BN_W_Q6_K, BN_W_F16, BN_W_F32, BN_W_COUNT
} bn_wkind;

/* The kernel slot of a weight type; -1 if no kernel exists for it. */
int bn_wkind_of(uint32_t weight_type);

typedef void (*bn_matmul_fn)(const bn_qmat *W, const bn_act *a, int64_t r0, int64_t r1, float *Y, int64_t ldy);
typedef void (*bn_quantize_act_fn)(bn_act *a, const float *X, int64_t ldx, int t0, int t1);
#define BN_MAX_RUNS 8             /* most runs a table's one-token layout may read side by side */
#define BN_RUNS_PREP_BYTES 32768  /* room for a token prepared for the runs (mm_runs_prep) */
/* One token, rows start[j] + i for j < the slot's run count, i < len. */
typedef void (*bn_mm_runs_fn)(const bn_qmat *W, const bn_act *a, const void *prep, const int64_t *start, int64_t len,
                              float *Y);
typedef const void *(*bn_mm_runs_prep_fn)(const bn_qmat *W, const bn_act *a, void *buf);

/* TQ1_0 blocks rewritten as TQ2_0 ones: the same codes and d (quant.h
 * bn_tq1_0_to_tq2_0 is the reference). */
struct bn_block_tq1_0;
struct bn_block_tq2_0;
typedef void (*bn_tq1_to_tq2_fn)(const struct bn_block_tq1_0 *x, struct bn_block_tq2_0 *y, int64_t nb);

typedef struct bn_kernels {
    bn_isa isa;
    const char *name; /* "scalar", "avx2", "avx512", "avx512-vnni", "avx512-amx", "neon", "neon-dotprod" */

    /* Quantize rows [t0, t1) of X (row stride ldx floats) into a (rows t0..t1-1). */
    void (*quantize_act)(bn_act *a, const float *X, int64_t ldx, int t0, int t1);

    /* Y[t*ldy + r] for r in [r0, r1), t in [0, a->n). The act kind must be
     * bn_act_kind_for(W->type). */
    void (*matmul)(const bn_qmat *W, const bn_act *a, int64_t r0, int64_t r1, float *Y, int64_t ldy);

    /* Per-type slots the two entry points above dispatch to, and the ISA
     * name of the code in each slot ("scalar" where this table falls back). */
    bn_matmul_fn mm[BN_W_COUNT];
    const char *mm_isa[BN_W_COUNT];
    bn_quantize_act_fn qa[BN_ACT_COUNT];
    const char *qa_isa[BN_ACT_COUNT];
    /* Bytes of activations per batch chunk for a slot (0: the default, see
     * bn_kernels_matmul_via): kernels that repack their operands per call
     * want bigger chunks than ones that stream them. */
    size_t mm_chunk[BN_W_COUNT];
    /* One token: a slot whose kernel reads a range [r0, r1) as runs side by
     * side (several weight streams at once) says how, so that a caller
     * dealing the range out in parts keeps those streams (region_matmul's
     * stealing). The kernel reads R = mm_runs_n[slot] runs of n rows, n =
     * (r1 - r0) / (R * u) * u with u = mm_run_unit[slot], the run j from
     * r0 + j * n, row i of every run together; then the rows left over.
     * mm_runs[slot] computes any part of that: rows start[j] + i for j < R,
     * i < len (len a multiple of u), each bitwise as matmul computes it.
     * NULL: the slot reads a row at a time (R = u = 1). mm_runs_prep[slot],
     * where there is one, puts the token in the form the runs read into buf
     * (BN_RUNS_PREP_BYTES, 64-byte aligned) once for many mm_runs calls;
     * it returns what to pass them as prep (NULL: nothing prepared). */
    bn_mm_runs_fn mm_runs[BN_W_COUNT];
    bn_mm_runs_prep_fn mm_runs_prep[BN_W_COUNT];
    uint8_t mm_runs_n[BN_W_COUNT], mm_run_unit[BN_W_COUNT];
    /* TQ1_0 blocks rewritten as TQ2_0 ones (the same codes and d), for
     * bn_model_repack_tq1; NULL: the reference bn_tq1_0_to_tq2_0. */
    bn_tq1_to_tq2_fn tq1_to_tq2;
} bn_kernels;

/* The table for an ISA (NULL if not compiled in). */
const bn_kernels *bn_kernels_for(bn_isa isa);

/* Name of the path a given weight type actually takes on this table, e.g.
 * "i2_s/avx2" or "tq1_0/scalar" when the ISA has no special kernel for it. */
void bn_kernels_path(const bn_kernels *k, uint32_t weight_type, char *buf, size_t n);
/* Whether this table has a real SIMD kernel for the type (strict mode uses it). */
int bn_kernels_is_native(const bn_kernels *k, uint32_t weight_type);

/* a->n (rows in use) is set by the caller before quantize_act / matmul, so
 * several threads may quantize disjoint row ranges; this helper does both
 * for the single-threaded case: a->n = n, then quantize rows [0, n). */
void bn_act_quantize(const bn_kernels *k, bn_act *a, const float *X, int64_t ldx, int n);

/* The one-token run layout of a weight type on this table (see mm_runs):
 * *R runs of a multiple of *unit rows; 1 and 1 for a row at a time. */
void bn_kernels_runs(const bn_kernels *k, uint32_t weight_type, int *R, int *unit);
/* The one token a in the form W's runs read (see mm_runs_prep), written
 * into buf (BN_RUNS_PREP_BYTES, 64-byte aligned); NULL if the slot prepares
 * nothing. Valid for runs calls with the same a and W->K until a changes. */
const void *bn_kernels_runs_prep(const bn_kernels *k, const bn_qmat *W, const bn_act *a, void *buf);
/* One token: Y[start[j] + i] for j < R, i < len, with R and a multiple of
 * unit as bn_kernels_runs says; the rows as k->matmul computes them. prep:
 * from bn_kernels_runs_prep, or NULL. */
void bn_kernels_matmul_runs(const bn_kernels *k, const bn_qmat *W, const bn_act *a, const void *prep,
                            const int64_t *start, int64_t len, float *Y);

/* Bytes of one weight row of K inputs for a type with a kernel (0 if none). */
size_t bn_qmat_row_bytes(uint32_t type, int64_t K);

/* ---- implementation interface between lib/kernels*.c (not for callers) ---- */

/* The tables, defined in each ISA file (only the ones compiled in exist). */
extern const bn_kernels bn_kernels_scalar;
extern const bn_kernels bn_kernels_avx2;
extern const bn_kernels bn_kernels_avx512;      /* no VNNI: AVX2 integer kernels */
extern const bn_kernels bn_kernels_avx512_vnni;
extern const bn_kernels bn_kernels_avx512_amx; /* VNNI + AMX tiles for I2_S batches */
extern const bn_kernels bn_kernels_neon;
extern const bn_kernels bn_kernels_neon_dotprod;

/* Dispatch through a table's slots (used by every table's entry points). */
void bn_kernels_matmul_via(const bn_kernels *k, const bn_qmat *W, const bn_act *a,
                           int64_t r0, int64_t r1, float *Y, int64_t ldy);
void bn_kernels_quantize_via(const bn_kernels *k, bn_act *a, const float *X, int64_t ldx, int t0, int t1);

/* TQ1_0 through a TQ2_0 kernel: rows rewritten by to_tq2 (same codes and d,
 * so bitwise the TQ1_0 reference) a few at a time into a stack buffer, then
 * mm_tq2 on them. Base-3 decoding is paid once per row instead of per row and
 * token. */
void bn_mm_tq1_0_via_tq2(const bn_qmat *W, const bn_act *a, int64_t r0, int64_t r1, float *Y, int64_t ldy,
                         bn_tq1_to_tq2_fn to_tq2, bn_matmul_fn mm_tq2);

/* The two generic entry points of a table (PFX_quantize, PFX_matmul), each
 * dispatching through the table's per-type slots. */
#define BN_KERNELS_ENTRY_POINTS(PFX, TABLE)                                                            \
    static void PFX##_quantize(bn_act *a, const float *X, int64_t ldx, int t0, int t1) {             \
        bn_kernels_quantize_via(&TABLE, a, X, ldx, t0, t1);                                          \
    }                                                                                                \
    static void PFX##_matmul(const bn_qmat *W, const bn_act *a, int64_t r0, int64_t r1, float *Y,     \
                             int64_t ldy) {                                                          \
        bn_kernels_matmul_via(&TABLE, W, a, r0, r1, Y, ldy);                                         \
    }

/* Scalar references (lib/kernels_scalar.c), also the fallbacks of SIMD tables. */
void bn_qa_i8s_scalar(bn_act *a, const float *X, int64_t ldx, int t0, int t1);
void bn_qa_q8k_scalar(bn_act *a, const float *X, int64_t ldx, int t0, int t1);
void bn_qa_q8_0_scalar(bn_act *a, const float *X, int64_t ldx, int t0, int t1);
void bn_qa_f16_scalar(bn_act *a, const float *X, int64_t ldx, int t0, int t1);
void bn_qa_f32_scalar(bn_act *a, const float *X, int64_t ldx, int t0, int t1);
void bn_mm_i2s_scalar(const bn_qmat *W, const bn_act *a, int64_t r0, int64_t r1, float *Y, int64_t ldy);
void bn_mm_tq2_0_scalar(const bn_qmat *W, const bn_act *a, int64_t r0, int64_t r1, float *Y, int64_t ldy);
void bn_mm_tq1_0_scalar(const bn_qmat *W, const bn_act *a, int64_t r0, int64_t r1, float *Y, int64_t ldy);
void bn_mm_q8_0_scalar(const bn_qmat *W, const bn_act *a, int64_t r0, int64_t r1, float *Y, int64_t ldy);
void bn_mm_q6_K_scalar(const bn_qmat *W, const bn_act *a, int64_t r0, int64_t r1, float *Y, int64_t ldy);
void bn_mm_f16_scalar(const bn_qmat *W, const bn_act *a, int64_t r0, int64_t r1, float *Y, int64_t ldy);
void bn_mm_f32_scalar(const bn_qmat *W, const bn_act *a, int64_t r0, int64_t r1, float *Y, int64_t ldy);

/* AVX2 kernels (lib/kernels_avx2.c), reused by the AVX-512 tables. */
void bn_qa_i8s_avx2(bn_act *a, const float *X, int64_t ldx, int t0, int t1);
void bn_qa_q8k_avx2(bn_act *a, const float *X, int64_t ldx, int t0, int t1);
void bn_qa_f16_avx2(bn_act *a, const float *X, int64_t ldx, int t0, int t1);
void bn_mm_i2s_avx2(const bn_qmat *W, const bn_act *a, int64_t r0, int64_t r1, float *Y, int64_t ldy);
void bn_mm_tq2_0_avx2(const bn_qmat *W, const bn_act *a, int64_t r0, int64_t r1, float *Y, int64_t ldy);
void bn_mm_tq1_0_avx2(const bn_qmat *W, const bn_act *a, int64_t r0, int64_t r1, float *Y, int64_t ldy);
void bn_tq1_to_tq2_avx2(const struct bn_block_tq1_0 *x, struct bn_block_tq2_0 *y, int64_t nb);
void bn_mm_q6_K_avx2(const bn_qmat *W, const bn_act *a, int64_t r0, int64_t r1, float *Y, int64_t ldy);
void bn_mm_q8_0_avx2(const bn_qmat *W, const bn_act *a, int64_t r0, int64_t r1, float *Y, int64_t ldy);
void bn_mm_f16_avx2(const bn_qmat *W, const bn_act *a, int64_t r0, int64_t r1, float *Y, int64_t ldy);
void bn_mm_f32_avx2(const bn_qmat *W, const bn_act *a, int64_t r0, int64_t r1, float *Y, int64_t ldy);

/* AVX-512 VNNI I2_S (lib/kernels_avx512.c) and the AMX batch kernel built on
 * it (lib/kernels_amx_avx512.c; needs bn_cpu_amx_enable first). */
void bn_mm_i2s_vnni(const bn_qmat *W, const bn_act *a, int64_t r0, int64_t r1, float *Y, int64_t ldy);
void bn_mm_i2s_amx(const bn_qmat *W, const bn_act *a, int64_t r0, int64_t r1, float *Y, int64_t ldy);

/* The I2_S epilogue shared by every ISA (one formula, so results are bitwise
 * equal): y = ((float)sumi - (float)act_sum) / act_scale * w_scale. */
static inline float bn_i2s_out(int32_t sumi, int32_t act_sum, float act_scale, float w_scale) {
    return ((float)sumi - (float)act_sum) / act_scale * w_scale;
}

/* Eight float lanes reduced as ggml's hsum_float_8 (high half + low half,
 * then lanes 0+2 and 1+3, then those two), the TQ epilogue of every ISA. */
static inline float bn_hsum8f(const float a[8]) {
    const float t0 = a[4] + a[0], t1 = a[5] + a[1], t2 = a[6] + a[2], t3 = a[7] + a[3];
    return (t0 + t2) + (t1 + t3);
}

#endif
