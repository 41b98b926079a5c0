/* quant_q8.c - llama.cpp Q8_0, Q8_K and Q6_K: scalar reference quantizers
 * and dequantizers transcribed from ggml-quants.c. Q8_0/Q8_K also serve as
 * activation formats (Q8_0 weights, TQ1_0/TQ2_0/Q6_K weights). */
#include "quant.h"

#include <math.h>
#include <string.h>

#define GROUP_MAX_EPS 1e-15f

/* quantize_row_q8_0_ref: d = amax/127 (f16), q = roundf(x * 1/d). */
void bn_quantize_row_q8_0_ref(const float *x, bn_block_q8_0 *y, int64_t k) {
    int64_t nb = k / BN_QK8_0;
    for (int64_t i = 0; i < nb; i++) {
        float amax = 0.0f;
        for (int j = 0; j < BN_QK8_0; j++) {
            float v = fabsf(x[i * BN_QK8_0 + j]);
            amax = amax > v ? amax : v;
        }
        const float d = amax / ((1 << 7) - 1);
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = bn_f32_to_f16(d);
        for (int j = 0; j < BN_QK8_0; ++j) y[i].qs[j] = (int8_t)roundf(x[i * BN_QK8_0 + j] * id);
    }
}

/* dequantize_row_q8_0: q * d. */
void bn_dequantize_row_q8_0(const bn_block_q8_0 *x, float *y, int64_t k) {
    int64_t nb = k / BN_QK8_0;
    for (int64_t i = 0; i < nb; i++) {
        const float d = bn_f16_to_f32(x[i].d);
        for (int j = 0; j < BN_QK8_0; ++j) y[i * BN_QK8_0 + j] = x[i].qs[j] * d;
    }
}

/* quantize_row_q8_K_ref: scale from the signed largest-magnitude value so it
 * maps to -127; bsums let ternary kernels subtract the code offset. */
void bn_quantize_row_q8_K_ref(const float *x, bn_block_q8_K *y, int64_t k) {
    int64_t nb = k / BN_QK_K;
    for (int64_t i = 0; i < nb; i++) {
        float max = 0, amax = 0;
        for (int j = 0; j < BN_QK_K; ++j) {
            float ax = fabsf(x[j]);
            if (ax > amax) { amax = ax; max = x[j]; }
        }
        if (!amax) {
            y[i].d = 0;
            memset(y[i].qs, 0, sizeof y[i].qs);
            memset(y[i].bsums, 0, sizeof y[i].bsums); /* llama.cpp leaves them unset */
            x += BN_QK_K;
            continue;
        }
        const float iscale = -127.f / max;
        for (int j = 0; j < BN_QK_K; ++j) {
            int v = bn_nearest_int(iscale * x[j]);
            y[i].qs[j] = (int8_t)(v < 127 ? v : 127);
        }
        for (int j = 0; j < BN_QK_K / 16; ++j) {
            int sum = 0;
            for (int ii = 0; ii < 16; ++ii) sum += y[i].qs[j * 16 + ii];
            y[i].bsums[j] = (int16_t)sum;
        }
        y[i].d = 1 / iscale;
        x += BN_QK_K;
    }
}

/* dequantize_row_q8_K: d * q. */
void bn_dequantize_row_q8_K(const bn_block_q8_K *x, float *y, int64_t k) {
    int64_t nb = k / BN_QK_K;
    for (int64_t i = 0; i < nb; i++)
        for (int j = 0; j < BN_QK_K; ++j) *y++ = x[i].d * x[i].qs[j];
}

/* make_qx_quants of ggml-quants.c (the qw == NULL path, rmse_type >= 1):
 * search 19 candidate scales around -nmax/max for the best weighted fit. */
static float make_qx_quants(int n, int nmax, const float *x, int8_t *L, int rmse_type) {
    float max = 0, amax = 0;
    for (int i = 0; i < n; ++i) {
        float ax = fabsf(x[i]);
        if (ax > amax) { amax = ax; max = x[i]; }
    }
    if (amax < GROUP_MAX_EPS) {
        for (int i = 0; i < n; ++i) L[i] = 0;
        return 0.f;
    }
    float iscale = -nmax / max;
    if (rmse_type == 0) {
        for (int i = 0; i < n; ++i) {
            int l = bn_nearest_int(iscale * x[i]);
            l = l < -nmax ? -nmax : l > nmax - 1 ? nmax - 1 : l;
            L[i] = (int8_t)(nmax + l);
        }
        return 1 / iscale;
    }
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; ++i) {
        int l = bn_nearest_int(iscale * x[i]);
        l = l < -nmax ? -nmax : l > nmax - 1 ? nmax - 1 : l;
        L[i] = (int8_t)(l + nmax);
        float w = rmse_type == 1 ? x[i] * x[i] : rmse_type == 2 ? 1 : rmse_type == 3 ? fabsf(x[i]) : sqrtf(fabsf(x[i]));
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    float scale = suml2 ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; ++is) {
        if (is == 0) continue;
        iscale = -(nmax + 0.1f * is) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; ++i) {
            int l = bn_nearest_int(iscale * x[i]);
            l = l < -nmax ? -nmax : l > nmax - 1 ? nmax - 1 : l;
            float w = rmse_type == 1 ? x[i] * x[i] : rmse_type == 2 ? 1 : rmse_type == 3 ? fabsf(x[i]) : sqrtf(fabsf(x[i]));
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; ++i) {
                int l = bn_nearest_int(iscale * x[i]);
                L[i] = (int8_t)(nmax + (l < -nmax ? -nmax : l > nmax - 1 ? nmax - 1 : l));
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

/* quantize_row_q6_K_ref: 16 sub-block scales from make_qx_quants, requantized
 * to int8 against one f16 super-scale, then 6-bit values re-fit per sub-block. */
void bn_quantize_row_q6_K_ref(const float *x, bn_block_q6_K *y, int64_t k) {
    int64_t nb = k / BN_QK_K;
    int8_t L[BN_QK_K];
    float scales[BN_QK_K / 16];
    for (int64_t i = 0; i < nb; i++) {
        float max_scale = 0, max_abs_scale = 0;
        for (int ib = 0; ib < BN_QK_K / 16; ++ib) {
            const float scale = make_qx_quants(16, 32, x + 16 * ib, L + 16 * ib, 1);
            scales[ib] = scale;
            const float abs_scale = fabsf(scale);
            if (abs_scale > max_abs_scale) { max_abs_scale = abs_scale; max_scale = scale; }
        }
        if (max_abs_scale < GROUP_MAX_EPS) {
            memset(&y[i], 0, sizeof y[i]);
            y[i].d = bn_f32_to_f16(0.f);
            x += BN_QK_K;
            continue;
        }
        float iscale = -128.f / max_scale;
        y[i].d = bn_f32_to_f16(1 / iscale);
        for (int ib = 0; ib < BN_QK_K / 16; ++ib) {
            int v = bn_nearest_int(iscale * scales[ib]);
            y[i].scales[ib] = (int8_t)(v < 127 ? v : 127);
        }
        for (int j = 0; j < BN_QK_K / 16; ++j) {
            float d = bn_f16_to_f32(y[i].d) * y[i].scales[j];
            if (!d) continue;
            for (int ii = 0; ii < 16; ++ii) {
                int l = bn_nearest_int(x[16 * j + ii] / d);
                l = l < -32 ? -32 : l > 31 ? 31 : l;
                L[16 * j + ii] = (int8_t)(l + 32);
            }
        }
        uint8_t *ql = y[i].ql, *qh = y[i].qh;
        for (int j = 0; j < BN_QK_K; j += 128) {
            for (int l = 0; l < 32; ++l) {
                const uint8_t q1 = L[j + l + 0] & 0xF;
                const uint8_t q2 = L[j + l + 32] & 0xF;
                const uint8_t q3 = L[j + l + 64] & 0xF;
                const uint8_t q4 = L[j + l + 96] & 0xF;
                ql[l + 0] = (uint8_t)(q1 | (q3 << 4));
                ql[l + 32] = (uint8_t)(q2 | (q4 << 4));
                qh[l] = (uint8_t)((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) |
                                  ((L[j + l + 64] >> 4) << 4) | ((L[j + l + 96] >> 4) << 6));
            }
            ql += 64;
            qh += 32;
        }
        x += BN_QK_K;
    }
}

/* dequantize_row_q6_K: d * scale[sub-block] * (q6 - 32). */
void bn_dequantize_row_q6_K(const bn_block_q6_K *x, float *y, int64_t k) {
    int64_t nb = k / BN_QK_K;
    for (int64_t i = 0; i < nb; i++) {
        const float d = bn_f16_to_f32(x[i].d);
        const uint8_t *ql = x[i].ql, *qh = x[i].qh;
        const int8_t *sc = x[i].scales;
        for (int n = 0; n < BN_QK_K; n += 128) {
            for (int l = 0; l < 32; ++l) {
                int is = l / 16;
                const int8_t q1 = (int8_t)((ql[l + 0] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                const int8_t q2 = (int8_t)((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                const int8_t q3 = (int8_t)((ql[l + 0] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                const int8_t q4 = (int8_t)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                y[l + 0] = d * sc[is + 0] * q1;
                y[l + 32] = d * sc[is + 2] * q2;
                y[l + 64] = d * sc[is + 4] * q3;
                y[l + 96] = d * sc[is + 6] * q4;
            }
            y += 128;
            ql += 64;
            qh += 32;
            sc += 8;
        }
    }
}
