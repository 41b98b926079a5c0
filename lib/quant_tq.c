/* quant_tq.c - llama.cpp TQ1_0 and TQ2_0 ternary block formats: scalar
 * reference quantizers and dequantizers, transcribed from ggml-quants.c
 * (quantize_row_tq{1,2}_0_ref, dequantize_row_tq{1,2}_0) so files written by
 * bn-quantize are byte-identical to llama-quantize output for ternary input. */
#include "quant.h"

#include <math.h>
#include <string.h>

/* Largest magnitude of a 256 block (llama.cpp uses MAX(amax, fabsf(v))). */
static float block_amax(const float *x) {
    float amax = 0.0f;
    for (int j = 0; j < BN_QK_K; j++) {
        float v = fabsf(x[j]);
        amax = amax > v ? amax : v;
    }
    return amax;
}

/* quantize_row_tq2_0_ref: 4 codes per byte, group n of 32 in bits 2n. */
void bn_quantize_row_tq2_0_ref(const float *x, bn_block_tq2_0 *y, int64_t k) {
    int64_t nb = k / BN_QK_K;
    for (int64_t i = 0; i < nb; i++) {
        const float d = block_amax(x);
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = bn_f32_to_f16(d);
        for (size_t j = 0; j < sizeof y->qs; j += 32) {
            for (size_t m = 0; m < 32; ++m) {
                uint8_t q = 0;
                for (size_t n = 0; n < 4; ++n) {
                    int xi = (int)lroundf(x[m + n * 32] * id) + 1;
                    q += (uint8_t)((xi & 3) << (2 * n));
                }
                y[i].qs[j + m] = q;
            }
            x += 4 * 32;
        }
    }
}

/* dequantize_row_tq2_0: (code - 1) * d in element order. */
void bn_dequantize_row_tq2_0(const bn_block_tq2_0 *x, float *y, int64_t k) {
    int64_t nb = k / BN_QK_K;
    for (int64_t i = 0; i < nb; i++) {
        const float d = bn_f16_to_f32(x[i].d);
        for (size_t j = 0; j < sizeof x->qs; j += 32)
            for (size_t l = 0; l < 4; ++l)
                for (size_t m = 0; m < 32; ++m) {
                    int8_t q = (x[i].qs[j + m] >> (l * 2)) & 3;
                    *y++ = (float)(q - 1) * d;
                }
    }
}

/* quantize_row_tq1_0_ref: 5 trits per byte (most significant first), stored
 * as ceil(q*256/243) so a byte times 3^n exposes trit n in its top bits. */
void bn_quantize_row_tq1_0_ref(const float *x, bn_block_tq1_0 *y, int64_t k) {
    int64_t nb = k / BN_QK_K;
    for (int64_t i = 0; i < nb; i++) {
        const float d = block_amax(x);
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = bn_f32_to_f16(d);
        for (size_t j = 0; j < sizeof y->qs - sizeof y->qs % 32; j += 32) {
            for (size_t m = 0; m < 32; ++m) {
                uint8_t q = 0;
                for (size_t n = 0; n < 5; ++n) {
                    int xi = (int)lroundf(x[m + n * 32] * id) + 1;
                    q = (uint8_t)(q * 3 + xi);
                }
                q = (uint8_t)(((uint16_t)q * 256 + (243 - 1)) / 243);
                y[i].qs[j + m] = q;
            }
            x += 5 * 32;
        }
        for (size_t j = sizeof y->qs - sizeof y->qs % 32; j < sizeof y->qs; j += 16) {
            for (size_t m = 0; m < 16; ++m) {
                uint8_t q = 0;
                for (size_t n = 0; n < 5; ++n) {
                    int xi = (int)lroundf(x[m + n * 16] * id) + 1;
                    q = (uint8_t)(q * 3 + xi);
                }
                q = (uint8_t)(((uint16_t)q * 256 + (243 - 1)) / 243);
                y[i].qs[j + m] = q;
            }
            x += 5 * 16;
        }
        for (size_t j = 0; j < sizeof y->qh; ++j) {
            uint8_t q = 0;
            for (size_t m = 0; m < 4; ++m) {
                int xi = (int)lroundf(x[j + m * sizeof y->qh] * id) + 1;
                q = (uint8_t)(q * 3 + xi);
            }
            q = (uint8_t)(q * 3);
            q = (uint8_t)(((uint16_t)q * 256 + (243 - 1)) / 243);
            y[i].qh[j] = q;
        }
        x += 4 * sizeof y->qh;
    }
}

/* Trit n of a packed byte: (uint8)(byte * 3^n) * 3 >> 8, as ggml does. */
static inline uint8_t tq1_trit(uint8_t byte, uint8_t pow3) {
    uint8_t q = (uint8_t)(byte * pow3);
    return (uint8_t)(((uint16_t)q * 3) >> 8);
}

/* Codes of one TQ1_0 block in element order (shared by dequant and kernels). */
void bn_tq1_0_codes(const bn_block_tq1_0 *x, uint8_t codes[BN_QK_K]) {
    static const uint8_t pow3[6] = { 1, 3, 9, 27, 81, 243 };
    uint8_t *c = codes;
    for (size_t j = 0; j < sizeof x->qs - sizeof x->qs % 32; j += 32)
        for (size_t n = 0; n < 5; ++n)
            for (size_t m = 0; m < 32; ++m) *c++ = tq1_trit(x->qs[j + m], pow3[n]);
    for (size_t j = sizeof x->qs - sizeof x->qs % 32; j < sizeof x->qs; j += 16)
        for (size_t n = 0; n < 5; ++n)
            for (size_t m = 0; m < 16; ++m) *c++ = tq1_trit(x->qs[j + m], pow3[n]);
    for (size_t n = 0; n < 4; ++n)
        for (size_t j = 0; j < sizeof x->qh; ++j) *c++ = tq1_trit(x->qh[j], pow3[n]);
}

/* TQ1_0 blocks rewritten as TQ2_0 ones with the same codes and d (byte
 * 32c + m, bits 2n: element 128c + 32n + m): what a kernel without its own
 * base-3 decoder multiplies instead, decoding once per row, not per token. */
void bn_tq1_0_to_tq2_0(const bn_block_tq1_0 *x, bn_block_tq2_0 *y, int64_t nb) {
    uint8_t codes[BN_QK_K];
    for (int64_t i = 0; i < nb; i++) {
        bn_tq1_0_codes(&x[i], codes);
        for (int c = 0; c < 2; c++)
            for (int m = 0; m < 32; m++)
                y[i].qs[32 * c + m] = (uint8_t)(codes[128 * c + m] | codes[128 * c + 32 + m] << 2 |
                                                codes[128 * c + 64 + m] << 4 | codes[128 * c + 96 + m] << 6);
        y[i].d = x[i].d;
    }
}

/* dequantize_row_tq1_0: (trit - 1) * d. */
void bn_dequantize_row_tq1_0(const bn_block_tq1_0 *x, float *y, int64_t k) {
    int64_t nb = k / BN_QK_K;
    uint8_t codes[BN_QK_K];
    for (int64_t i = 0; i < nb; i++) {
        const float d = bn_f16_to_f32(x[i].d);
        bn_tq1_0_codes(&x[i], codes);
        for (int j = 0; j < BN_QK_K; j++) *y++ = (float)((int)codes[j] - 1) * d;
    }
}
