/* quant.h - block layouts and scalar reference quantize / dequantize for the
 * weight and activation types the kernels use. These functions define the
 * numerics: every SIMD kernel in lib/kernels_*.c is tested against them.
 *
 * Sources of truth (see docs/KERNELS.md and shared/docs/bitnet-format.md):
 *   I2_S   bitnet.cpp quantize_i2_s (x86 layout) / quantize_row_i8_s
 *   TQ1_0, TQ2_0, Q8_0, Q8_K, Q6_K   llama.cpp ggml-quants.c *_ref functions
 * All block scales stored as f16 use IEEE round-to-nearest-even conversion
 * (bn_f32_to_f16), as GGML_FP32_TO_FP16 does. */
#ifndef BN_QUANT_H
#define BN_QUANT_H

#include <stddef.h>
#include <stdint.h>
#include "util.h"

#define BN_QK_I2S 128 /* I2_S packing group: 128 elements -> 32 bytes */
#define BN_QK_K   256 /* K-quant / TQ super-block */
#define BN_QK8_0  32

/* llama.cpp block_tq2_0: element 128c+32n+m at qs[32c+m] bits [2n+1:2n]; d (f16) last. */
typedef struct bn_block_tq2_0 {
    uint8_t qs[BN_QK_K / 4];
    uint16_t d;
} bn_block_tq2_0;

/* llama.cpp block_tq1_0: base-3, 5 trits per qs byte, 4 per qh byte; d (f16) last. */
typedef struct bn_block_tq1_0 {
    uint8_t qs[(BN_QK_K - 4 * BN_QK_K / 64) / 5]; /* 48 */
    uint8_t qh[BN_QK_K / 64];                     /* 4 */
    uint16_t d;
} bn_block_tq1_0;

/* llama.cpp block_q8_0: f16 d, 32 int8. */
typedef struct bn_block_q8_0 {
    uint16_t d;
    int8_t qs[BN_QK8_0];
} bn_block_q8_0;

/* llama.cpp block_q8_K (activations only): f32 d, 256 int8, sums of 16. */
typedef struct bn_block_q8_K {
    float d;
    int8_t qs[BN_QK_K];
    int16_t bsums[BN_QK_K / 16];
} bn_block_q8_K;

/* llama.cpp block_q6_K: 6-bit quants (low 4 in ql, high 2 in qh), int8 scales per 16, f16 d. */
typedef struct bn_block_q6_K {
    uint8_t ql[BN_QK_K / 2];
    uint8_t qh[BN_QK_K / 4];
    int8_t scales[BN_QK_K / 16];
    uint16_t d;
} bn_block_q6_K;

_Static_assert(sizeof(bn_block_tq2_0) == 66, "block_tq2_0 size");
_Static_assert(sizeof(bn_block_tq1_0) == 54, "block_tq1_0 size");
_Static_assert(sizeof(bn_block_q8_0) == 34, "block_q8_0 size");
_Static_assert(sizeof(bn_block_q8_K) == 292, "block_q8_K size");
_Static_assert(sizeof(bn_block_q6_K) == 210, "block_q6_K size");

/* llama.cpp nearest_int: round to nearest, ties to even, via the 1.5*2^23
 * magic number. Valid for |x| <= 4194303. */
static inline int bn_nearest_int(float fval) {
    union { float f; int32_t i; } u;
    u.f = fval + 12582912.f;
    return (u.i & 0x007fffff) - 0x00400000;
}

/* ---- I2_S (bitnet.cpp, x86 layout) ---------------------------------------
 * A whole tensor of n elements (n % 128 == 0) packs into n/4 bytes followed by
 * a 32-byte trailer whose first 4 bytes are the f32 scale (rest zero). */

/* Bytes of an I2_S tensor of n elements: n/4 + 32. */
size_t bn_i2s_nbytes(int64_t n);
/* bitnet.cpp quantize_i2_s semantics: scale = max|x| (computed in double),
 * code 1 if |x| < 1e-6, else 2 for x > 0 and 0 for x < 0. Only meaningful
 * when x is already ternary (x in {-s, 0, +s}); bn-quantize ternarizes with
 * absmean first. Writes bn_i2s_nbytes(n) bytes; returns that count. */
size_t bn_quantize_i2_s_ref(const float *x, uint8_t *dst, int64_t n);
/* Decode k elements of packed I2_S data (k % 128 == 0, starting on a block
 * boundary, e.g. row r at data + r*K/4) with the tensor scale. */
void bn_dequantize_row_i2_s(const uint8_t *src, float scale, float *y, int64_t k);
/* The 2-bit code (0, 1, 2) of element j of packed data starting on a block boundary. */
static inline int bn_i2s_code(const uint8_t *src, int64_t j) {
    int64_t b = j >> 7, p = j & 31, g = (j & 127) >> 5;
    return (src[b * 32 + p] >> (6 - 2 * g)) & 3;
}

/* bitnet.cpp quantize_row_i8_s: one activation row of k floats -> int8 with
 * s = (float)(127 / max(1e-5, max|x|)) (max in double), q = clamp(rne(x*s),
 * -128, 127) with x*s in f32; *scale = s, *sum = sum of q. */
void bn_quantize_row_i8s_ref(const float *x, int8_t *q, int64_t k, float *scale, int32_t *sum);

/* ---- TQ1_0 / TQ2_0 (llama.cpp) -------------------------------------------
 * Per 256 block: d = max|x|, id = d ? 1/d : 0, t = lroundf(x*id) + 1. */
void bn_quantize_row_tq2_0_ref(const float *x, bn_block_tq2_0 *y, int64_t k);
void bn_dequantize_row_tq2_0(const bn_block_tq2_0 *x, float *y, int64_t k);
void bn_quantize_row_tq1_0_ref(const float *x, bn_block_tq1_0 *y, int64_t k);
void bn_dequantize_row_tq1_0(const bn_block_tq1_0 *x, float *y, int64_t k);
/* Ternary codes 0,1,2 (value = code-1) of one TQ1_0 block in element order. */
void bn_tq1_0_codes(const bn_block_tq1_0 *x, uint8_t codes[BN_QK_K]);
/* nb TQ1_0 blocks as TQ2_0 blocks: the same codes and d. */
void bn_tq1_0_to_tq2_0(const bn_block_tq1_0 *x, bn_block_tq2_0 *y, int64_t nb);

/* ---- Q8_0, Q8_K, Q6_K (llama.cpp) ---------------------------------------- */
/* quantize_row_q8_0_ref: d = max|x|/127, q = roundf(x * (1/d)). */
void bn_quantize_row_q8_0_ref(const float *x, bn_block_q8_0 *y, int64_t k);
void bn_dequantize_row_q8_0(const bn_block_q8_0 *x, float *y, int64_t k);
/* quantize_row_q8_K_ref: max = signed value of largest magnitude, iscale =
 * -127/max, q = min(127, nearest_int(iscale*x)), bsums per 16, d = 1/iscale;
 * an all-zero block gets d = 0, q = 0, bsums = 0. */
void bn_quantize_row_q8_K_ref(const float *x, bn_block_q8_K *y, int64_t k);
void bn_dequantize_row_q8_K(const bn_block_q8_K *x, float *y, int64_t k);
/* quantize_row_q6_K_ref (make_qx_quants with rmse_type 1) and dequantize_row_q6_K. */
void bn_quantize_row_q6_K_ref(const float *x, bn_block_q6_K *y, int64_t k);
void bn_dequantize_row_q6_K(const bn_block_q6_K *x, float *y, int64_t k);

#endif
