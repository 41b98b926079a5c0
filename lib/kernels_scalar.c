/* kernels_scalar.c - the reference kernels. They define the numerics every
 * SIMD table must reproduce: integer dot products are exact (int32), float
 * epilogues are written once per type with a fixed order, and F16/F32 dots
 * use 32 interleaved fmaf lanes reduced by a fixed tree so that AVX2 (4x8),
 * AVX-512 (2x16) and NEON (8x4) can give bitwise the same result. */
#include <math.h>
#include <string.h>

#include "kernels.h"
#include "quant.h"

#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

/* ---- activation quantization --------------------------------------------- */

void bn_qa_i8s_scalar(bn_act *a, const float *X, int64_t ldx, int t0, int t1) {
    for (int t = t0; t < t1; t++)
        bn_quantize_row_i8s_ref(X + (int64_t)t * ldx, (int8_t *)a->data + (size_t)t * a->row_bytes, a->K,
                                &a->scale[t], &a->sum[t]);
}

void bn_qa_q8k_scalar(bn_act *a, const float *X, int64_t ldx, int t0, int t1) {
    for (int t = t0; t < t1; t++)
        bn_quantize_row_q8_K_ref(X + (int64_t)t * ldx,
                                 (bn_block_q8_K *)((uint8_t *)a->data + (size_t)t * a->row_bytes), a->K);
}

void bn_qa_q8_0_scalar(bn_act *a, const float *X, int64_t ldx, int t0, int t1) {
    for (int t = t0; t < t1; t++)
        bn_quantize_row_q8_0_ref(X + (int64_t)t * ldx,
                                 (bn_block_q8_0 *)((uint8_t *)a->data + (size_t)t * a->row_bytes), a->K);
}

void bn_qa_f16_scalar(bn_act *a, const float *X, int64_t ldx, int t0, int t1) {
    for (int t = t0; t < t1; t++) {
        const float *x = X + (int64_t)t * ldx;
        uint16_t *y = (uint16_t *)((uint8_t *)a->data + (size_t)t * a->row_bytes);
        for (int64_t k = 0; k < a->K; k++) y[k] = bn_f32_to_f16(x[k]);
    }
}

void bn_qa_f32_scalar(bn_act *a, const float *X, int64_t ldx, int t0, int t1) {
    for (int t = t0; t < t1; t++)
        memcpy((uint8_t *)a->data + (size_t)t * a->row_bytes, X + (int64_t)t * ldx, (size_t)a->K * sizeof(float));
}

/* ---- I2_S x I8S ----------------------------------------------------------- */

/* sumi = sum over k of code(k) * q(k), codes in {0,1,2}; exact in int32
 * (|sumi| <= 2*128*K). bitnet.cpp's AVX2 kernel keeps int16 partial sums over
 * 32 blocks and can wrap for adversarial inputs; this reference does not. */
void bn_mm_i2s_scalar(const bn_qmat *W, const bn_act *a, int64_t r0, int64_t r1, float *Y, int64_t ldy) {
    const int64_t K = W->K;
    for (int t = 0; t < a->n; t++) {
        const int8_t *q = (const int8_t *)a->data + (size_t)t * a->row_bytes;
        for (int64_t r = r0; r < r1; r++) {
            const uint8_t *w = W->data + (size_t)r * W->row_bytes;
            int32_t sumi = 0;
            for (int64_t b = 0; b < K / 128; b++) {
                const uint8_t *wb = w + b * 32;
                const int8_t *qb = q + b * 128;
                for (int g = 0; g < 4; g++)
                    for (int p = 0; p < 32; p++) sumi += ((wb[p] >> (6 - 2 * g)) & 3) * qb[g * 32 + p];
            }
            Y[(int64_t)t * ldy + r] = bn_i2s_out(sumi, a->sum[t], a->scale[t], W->scale);
        }
    }
}

/* ---- TQ2_0 / TQ1_0 / Q6_K x Q8K --------------------------------------------
 * TQ in llama.cpp's AVX2 order (ggml_vec_dot_tq{1,2}_0_q8_K), which its
 * reference logits carry: per 256 block eight exact int32 lane sums, lane L
 * holding code*q of the elements e with (e % 32) / 4 == L minus the q8_K sum
 * of elements 32L..32L+31; each lane accumulates fmaf(lane, y.d * x.d) in
 * float across blocks; the eight lanes are reduced once at the end as
 * hsum_float_8 does (bn_hsum8f). TQ2_0 and TQ1_0 share the lane mapping, so
 * equal weights give bitwise equal outputs (as they do in llama.cpp). */

/* The eight lane sums of one block from its codes (0..2). */
static void tq_block_lanes(const uint8_t codes[BN_QK_K], const bn_block_q8_K *y, int32_t lanes[8]) {
    for (int l = 0; l < 8; l++) lanes[l] = -(y->bsums[2 * l] + y->bsums[2 * l + 1]);
    for (int e = 0; e < BN_QK_K; e++) lanes[(e % 32) / 4] += codes[e] * y->qs[e];
}

/* One row of TQ blocks against one q8_K row; CODES fills codes[] for block i. */
#define BN_TQ_ROW_DOT(CODES)                                                   \
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};                                   \
    for (int64_t i = 0; i < nb; i++) {                                         \
        CODES;                                                                 \
        int32_t lanes[8];                                                      \
        tq_block_lanes(codes, &y[i], lanes);                                   \
        const float d = y[i].d * bn_f16_to_f32(x[i].d);                        \
        for (int l = 0; l < 8; l++) acc[l] = fmaf((float)lanes[l], d, acc[l]); \
    }                                                                          \
    Y[(int64_t)t * ldy + r] = bn_hsum8f(acc);

void bn_mm_tq2_0_scalar(const bn_qmat *W, const bn_act *a, int64_t r0, int64_t r1, float *Y, int64_t ldy) {
    const int64_t nb = W->K / BN_QK_K;
    uint8_t codes[BN_QK_K];
    for (int t = 0; t < a->n; t++) {
        const bn_block_q8_K *y = (const bn_block_q8_K *)((const uint8_t *)a->data + (size_t)t * a->row_bytes);
        for (int64_t r = r0; r < r1; r++) {
            const bn_block_tq2_0 *x = (const bn_block_tq2_0 *)(W->data + (size_t)r * W->row_bytes);
            /* byte 32c+m, bits 2n: element 128c+32n+m */
            BN_TQ_ROW_DOT(for (int e = 0; e < BN_QK_K; e++) codes[e] =
                              (x[i].qs[32 * (e / 128) + e % 32] >> (2 * ((e / 32) % 4))) & 3)
        }
    }
}

void bn_mm_tq1_0_scalar(const bn_qmat *W, const bn_act *a, int64_t r0, int64_t r1, float *Y, int64_t ldy) {
    const int64_t nb = W->K / BN_QK_K;
    uint8_t codes[BN_QK_K];
    for (int t = 0; t < a->n; t++) {
        const bn_block_q8_K *y = (const bn_block_q8_K *)((const uint8_t *)a->data + (size_t)t * a->row_bytes);
        for (int64_t r = r0; r < r1; r++) {
            const bn_block_tq1_0 *x = (const bn_block_tq1_0 *)(W->data + (size_t)r * W->row_bytes);
            BN_TQ_ROW_DOT(bn_tq1_0_codes(&x[i], codes))
        }
    }
}
#undef BN_TQ_ROW_DOT

/* Q6_K: sumi = sum over 16 sub-blocks of scale * sum (q6-32)*q8, exact; then
 * sumf += (f16(x.d) * y.d) * (float)sumi per block. (llama.cpp's scalar code
 * spreads the float sum over 8 lanes; its SIMD code uses one fma per block.) */
void bn_mm_q6_K_scalar(const bn_qmat *W, const bn_act *a, int64_t r0, int64_t r1, float *Y, int64_t ldy) {
    const int64_t nb = W->K / BN_QK_K;
    for (int t = 0; t < a->n; t++) {
        const bn_block_q8_K *y = (const bn_block_q8_K *)((const uint8_t *)a->data + (size_t)t * a->row_bytes);
        for (int64_t r = r0; r < r1; r++) {
            const bn_block_q6_K *x = (const bn_block_q6_K *)(W->data + (size_t)r * W->row_bytes);
            float sumf = 0.0f;
            for (int64_t i = 0; i < nb; i++) {
                int8_t v[BN_QK_K];
                const uint8_t *ql = x[i].ql, *qh = x[i].qh;
                for (int n = 0; n < BN_QK_K; n += 128) {
                    for (int l = 0; l < 32; l++) {
                        v[n + l + 0] = (int8_t)(((ql[l + 0] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32);
                        v[n + l + 32] = (int8_t)(((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32);
                        v[n + l + 64] = (int8_t)(((ql[l + 0] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
                        v[n + l + 96] = (int8_t)(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
                    }
                    ql += 64;
                    qh += 32;
                }
                int32_t sumi = 0;
                for (int s = 0; s < 16; s++) {
                    int32_t ss = 0;
                    for (int l = 0; l < 16; l++) ss += v[s * 16 + l] * y[i].qs[s * 16 + l];
                    sumi += x[i].scales[s] * ss;
                }
                const float d = bn_f16_to_f32(x[i].d) * y[i].d;
                sumf += d * (float)sumi;
            }
            Y[(int64_t)t * ldy + r] = sumf;
        }
    }
}

/* ---- Q8_0 x Q8_0 ---------------------------------------------------------- */

/* ggml_vec_dot_q8_0_q8_0 scalar: sumf += sumi * (f16(x.d) * f16(y.d)). */
void bn_mm_q8_0_scalar(const bn_qmat *W, const bn_act *a, int64_t r0, int64_t r1, float *Y, int64_t ldy) {
    const int64_t nb = W->K / BN_QK8_0;
    for (int t = 0; t < a->n; t++) {
        const bn_block_q8_0 *y = (const bn_block_q8_0 *)((const uint8_t *)a->data + (size_t)t * a->row_bytes);
        for (int64_t r = r0; r < r1; r++) {
            const bn_block_q8_0 *x = (const bn_block_q8_0 *)(W->data + (size_t)r * W->row_bytes);
            float sumf = 0.0f;
            for (int64_t i = 0; i < nb; i++) {
                int32_t sumi = 0;
                for (int j = 0; j < BN_QK8_0; j++) sumi += x[i].qs[j] * y[i].qs[j];
                sumf += (float)sumi * (bn_f16_to_f32(x[i].d) * bn_f16_to_f32(y[i].d));
            }
            Y[(int64_t)t * ldy + r] = sumf;
        }
    }
}

/* ---- F16 / F32 ------------------------------------------------------------ */

/* Fixed reduction of the 32 lanes: lane j += lane j+h for h = 16, 8, 4, 2, 1. */
static float reduce32(float *acc) {
    for (int h = 16; h >= 1; h /= 2)
        for (int j = 0; j < h; j++) acc[j] = acc[j] + acc[j + h];
    return acc[0];
}

/* Element k goes to lane k % 32 with a fused multiply-add (exact products for
 * f16 x f16, so this equals ggml's mul-then-add per element). */
void bn_mm_f16_scalar(const bn_qmat *W, const bn_act *a, int64_t r0, int64_t r1, float *Y, int64_t ldy) {
    const int64_t K = W->K;
    for (int t = 0; t < a->n; t++) {
        const uint16_t *x = (const uint16_t *)((const uint8_t *)a->data + (size_t)t * a->row_bytes);
        for (int64_t r = r0; r < r1; r++) {
            const uint16_t *w = (const uint16_t *)(W->data + (size_t)r * W->row_bytes);
            float acc[32] = { 0 };
            for (int64_t k = 0; k < K; k++)
                acc[k & 31] = fmaf(bn_f16_to_f32(w[k]), bn_f16_to_f32(x[k]), acc[k & 31]);
            Y[(int64_t)t * ldy + r] = reduce32(acc);
        }
    }
}

void bn_mm_f32_scalar(const bn_qmat *W, const bn_act *a, int64_t r0, int64_t r1, float *Y, int64_t ldy) {
    const int64_t K = W->K;
    for (int t = 0; t < a->n; t++) {
        const float *x = (const float *)((const uint8_t *)a->data + (size_t)t * a->row_bytes);
        for (int64_t r = r0; r < r1; r++) {
            const float *w = (const float *)(W->data + (size_t)r * W->row_bytes);
            float acc[32] = { 0 };
            for (int64_t k = 0; k < K; k++) acc[k & 31] = fmaf(w[k], x[k], acc[k & 31]);
            Y[(int64_t)t * ldy + r] = reduce32(acc);
        }
    }
}

/* ---- table ---------------------------------------------------------------- */

BN_KERNELS_ENTRY_POINTS(scalar, bn_kernels_scalar)

const bn_kernels bn_kernels_scalar = {
    .isa = BN_ISA_SCALAR,
    .name = "scalar",
    .quantize_act = scalar_quantize,
    .matmul = scalar_matmul,
    .mm = { [BN_W_I2S] = bn_mm_i2s_scalar, [BN_W_TQ2_0] = bn_mm_tq2_0_scalar, [BN_W_TQ1_0] = bn_mm_tq1_0_scalar,
            [BN_W_Q8_0] = bn_mm_q8_0_scalar, [BN_W_Q6_K] = bn_mm_q6_K_scalar, [BN_W_F16] = bn_mm_f16_scalar,
            [BN_W_F32] = bn_mm_f32_scalar },
    .mm_isa = { "scalar", "scalar", "scalar", "scalar", "scalar", "scalar", "scalar" },
    .qa = { [BN_ACT_I8S] = bn_qa_i8s_scalar, [BN_ACT_Q8K] = bn_qa_q8k_scalar, [BN_ACT_Q8_0] = bn_qa_q8_0_scalar,
            [BN_ACT_F16] = bn_qa_f16_scalar, [BN_ACT_F32] = bn_qa_f32_scalar },
    .qa_isa = { "scalar", "scalar", "scalar", "scalar", "scalar" },
};
