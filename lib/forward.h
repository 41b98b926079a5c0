/* forward.h - the transformer step: embedding -> layers -> logits, for a
 * bn_model, with a KV cache, batched prefill and a thread pool.
 *
 * Numerics follow ggml's CPU graph for build_bitnet(_158): rmsnorm sums in
 * double, NEOX RoPE with theta by repeated multiplication in float, Q·K and
 * P·V against an F16 cache with q and p rounded to f16 (ggml vec_dot_f16),
 * softmax in f32 with a double sum. Every output row (matmul row, attention
 * head) is computed by one thread in a fixed order, so results are bitwise
 * identical for any thread count and (with compat NONE) any batch size. */
#ifndef BN_FORWARD_H
#define BN_FORWARD_H

#include <stdint.h>
#include "kernels.h"
#include "model.h"
#include "pool.h"
#include "util.h"

typedef enum bn_kv_type { BN_KV_F16 = 0, BN_KV_F32 } bn_kv_type;

/* Which reference engine's float order to reproduce in the F16 parts
 * (attention against an F16 cache, F16 head). NONE is batch invariant: every
 * row is computed the same way whatever the batch size (Q.K and P.V with q
 * and p rounded to f16 in tinyBLAS order, as upstream llama.cpp's prefill).
 * BITNETCPP reproduces bitnet.cpp (its ggml fork, llama.cpp ~2024-10, AVX2,
 * llamafile on), which is batch dependent because ggml_compute_forward_mul_mat
 * gives src1 with >= 2 contiguous rows to llamafile_sgemm (tinyBLAS) and
 * anything else to ggml_vec_dot_f16, and that sgemm takes F16 x F32 without
 * rounding src1 to f16:
 *   Q.K (q is a permuted view: never sgemm): q rounded to f16, vec_dot_f16 order;
 *   P.V, batch of >= 2 tokens: p in f32, tinyBLAS order; 1 token: p rounded
 *     to f16, vec_dot_f16 order;
 *   F16 head, >= 2 output rows: f32 input, tinyBLAS order; 1 row: as NONE.
 * With an F32 cache BITNETCPP changes nothing in attention.
 * LLAMACPP: upstream llama.cpp (2025), whose tinyBLAS takes F16 x F16 only
 * and only for >= 2 columns ("only enable sgemm for prompt processing"), so
 * q and p are always rounded to f16 and the order depends on the batch:
 *   Q.K and P.V, batch of >= 2 tokens: tinyBLAS order (as NONE);
 *   1 token: ggml_vec_dot_f16 order (as BITNETCPP's Q.K).
 * The TQ2_0/TQ1_0 kernels follow llama.cpp's AVX2 order in every mode. */
typedef enum bn_compat { BN_COMPAT_NONE = 0, BN_COMPAT_BITNETCPP, BN_COMPAT_LLAMACPP } bn_compat;

typedef struct bn_forward_opts {
    int n_ctx;               /* 0: the model's context_length */
    int n_batch;             /* tokens per batch in prefill; 0: 128 */
    int n_threads;           /* >= 1 */
    bn_kv_type kv;
    const bn_kernels *kern;  /* kernel table (bn_kernels_for(isa)) */
    bn_compat compat;        /* reference float order (NONE: batch invariant) */
} bn_forward_opts;

typedef struct bn_forward bn_forward; /* opaque */

int bn_forward_new(bn_forward **out, const bn_model *m, const bn_forward_opts *o, bn_err *e);
void bn_forward_free(bn_forward *f);

int bn_forward_n_ctx(const bn_forward *f);
int bn_forward_pos(const bn_forward *f); /* tokens already in the cache */
void bn_forward_reset(bn_forward *f);     /* start a new sequence at position 0 */

/* Evaluate n tokens at the current position (prefill when n > 1, in batches
 * of n_batch). Writes the logits of the last n_out tokens (0 <= n_out <= n)
 * to logits[n_out][n_vocab]. Running past n_ctx or a bad id is an error
 * before anything is computed. */
int bn_forward_eval(bn_forward *f, const int32_t *tokens, int n, float *logits, int n_out, bn_err *e);

/* Region timers of the thread pool (bn_pool_profile), named after the part
 * of the step each region runs: bn_forward_profile clears them and turns
 * them on or off, bn_forward_regions copies up to max (see bn_pool_stat for
 * the fields) and returns how many regions ran. */
typedef struct bn_region_stat {
    const char *name; /* "matmul", "attention", ... */
    bn_pool_stat t;
} bn_region_stat;
void bn_forward_profile(bn_forward *f, int on);
int bn_forward_regions(const bn_forward *f, bn_region_stat *out, int max);

/* Receipt: "i2_s/avx512-vnni f16/avx512 threads=2 kv=f16" for the types used. */
void bn_forward_receipt(const bn_forward *f, char *buf, size_t n);

/* ---- helpers on logits rows ---------------------------------------------- */

/* argmax, ties -> lowest id. */
int32_t bn_argmax(const float *v, int n);
/* log softmax(v)[id], computed in double. */
double bn_log_softmax_at(const float *v, int n, int32_t id);
/* 0 if the row is usable; -1 with a reason for NaN/Inf or all-equal values. */
int bn_logits_check(const float *v, int n, bn_err *e);

#endif
