/* kernels_neon.c - aarch64 NEON kernels: I2_S reading the x86 128-element
 * layout (the one in every published I2_S file; bitnet.cpp's own ARM build
 * since 2025-11 expects a 64-element layout and misreads them), TQ2_0 (and
 * TQ1_0 through it), Q8_0, Q6_K, F16 and F32, plus the I8S/F16 activation
 * quantizers. Two tables: with the
 * dotprod extension (sdot, checked through HWCAP at table selection) and
 * without it (smull + sadalp). Integer parts are exact, so results equal the
 * scalar reference bit for bit; F16/F32 use the scalar's 32-lane schedule. */
#include <arm_neon.h>
#include <math.h>
#include <string.h>

#include "kernels.h"
#include "quant.h"

#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

#define BN_AI static inline __attribute__((always_inline))

/* acc += codes (0..3, as s8) . q (s8) over 16 lanes, into 4 int32 lanes:
 * lane i gets bytes 4i..4i+3 (as vdotq_s32 and x86's maddubs + madd do; the
 * TQ lane sums depend on it). */
BN_AI int32x4_t dot16(int32x4_t acc, int8x16_t c, int8x16_t q, const int DP) {
#if defined(__ARM_FEATURE_DOTPROD)
    if (DP) return vdotq_s32(acc, c, q);
#endif
    /* |c*q| <= 3*128: a pair of products per int16 lane stays far from overflow */
    int16x8_t lo = vmull_s8(vget_low_s8(c), vget_low_s8(q)), hi = vmull_s8(vget_high_s8(c), vget_high_s8(q));
    return vpadalq_s16(acc, vpaddq_s16(lo, hi));
}

/* ---- activation quantization (same arithmetic as the scalar reference) ---- */

static void neon_qa_i8s(bn_act *a, const float *X, int64_t ldx, int t0, int t1) {
    const int64_t K = a->K;
    for (int t = t0; t < t1; t++) {
        const float *x = X + (int64_t)t * ldx;
        int8_t *q = (int8_t *)a->data + (size_t)t * a->row_bytes;
        float32x4_t mx = vdupq_n_f32(0);
        int64_t k = 0;
        for (; k + 4 <= K; k += 4) mx = vmaxq_f32(mx, vabsq_f32(vld1q_f32(x + k)));
        double max = 0.00001;
        float m = vmaxvq_f32(mx);
        if ((double)m > max) max = m;
        for (; k < K; k++) if (fabs((double)x[k]) > max) max = fabs((double)x[k]);
        const float s = (float)(127 / max);
        int32x4_t sum = vdupq_n_s32(0);
        const int32x4_t lo = vdupq_n_s32(-128), hi = vdupq_n_s32(127);
        k = 0;
        for (; k + 16 <= K; k += 16) {
            int32x4_t v[4];
            for (int j = 0; j < 4; j++) {
                /* vcvtnq: round to nearest, ties to even (= the magic-number trick) */
                v[j] = vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(x + k + 4 * j), s));
                v[j] = vminq_s32(vmaxq_s32(v[j], lo), hi);
                sum = vaddq_s32(sum, v[j]);
            }
            int16x8_t h0 = vcombine_s16(vmovn_s32(v[0]), vmovn_s32(v[1]));
            int16x8_t h1 = vcombine_s16(vmovn_s32(v[2]), vmovn_s32(v[3]));
            vst1q_s8(q + k, vcombine_s8(vmovn_s16(h0), vmovn_s16(h1)));
        }
        int32_t acc = vaddvq_s32(sum);
        for (; k < K; k++) {
            int v = bn_nearest_int(x[k] * s);
            v = v > 127 ? 127 : v < -128 ? -128 : v;
            q[k] = (int8_t)v;
            acc += v;
        }
        a->scale[t] = s;
        a->sum[t] = acc;
    }
}

static void neon_qa_f16(bn_act *a, const float *X, int64_t ldx, int t0, int t1) {
    for (int t = t0; t < t1; t++) {
        const float *x = X + (int64_t)t * ldx;
        uint16_t *y = (uint16_t *)((uint8_t *)a->data + (size_t)t * a->row_bytes);
        int64_t k = 0;
        for (; k + 4 <= a->K; k += 4) vst1_u16(y + k, vreinterpret_u16_f16(vcvt_f16_f32(vld1q_f32(x + k))));
        for (; k < a->K; k++) y[k] = bn_f32_to_f16(x[k]);
    }
}

/* ---- I2_S ------------------------------------------------------------------
 * A 32-byte block is two 16-byte halves; group g of half h holds elements
 * 32g + 16h + p at bits 6-2g of byte 16h + p. Tiles as on x86: RB rows x TB
 * tokens, codes unpacked once per block, activations loaded once per token. */
BN_AI void i2s_tile(const uint8_t *const *w, const int RB, const int8_t *const *q, const int TB, int64_t nb,
                    int32_t *out, const int DP) {
    const uint8x16_t m3 = vdupq_n_u8(3);
    int32x4_t acc[4][2];
    for (int i = 0; i < RB * TB; i++) acc[i][0] = acc[i][1] = vdupq_n_s32(0);
    for (int64_t b = 0; b < nb; b++) {
        for (int r = 0; r < RB; r++) {
            const uint8_t *wb = w[r] + 32 * b;
            __builtin_prefetch(wb + 512);
            uint8x16_t w0 = vld1q_u8(wb), w1 = vld1q_u8(wb + 16);
            int8x16_t c[8];
            c[0] = vreinterpretq_s8_u8(vshrq_n_u8(w0, 6));
            c[1] = vreinterpretq_s8_u8(vshrq_n_u8(w1, 6));
            c[2] = vreinterpretq_s8_u8(vandq_u8(vshrq_n_u8(w0, 4), m3));
            c[3] = vreinterpretq_s8_u8(vandq_u8(vshrq_n_u8(w1, 4), m3));
            c[4] = vreinterpretq_s8_u8(vandq_u8(vshrq_n_u8(w0, 2), m3));
            c[5] = vreinterpretq_s8_u8(vandq_u8(vshrq_n_u8(w1, 2), m3));
            c[6] = vreinterpretq_s8_u8(vandq_u8(w0, m3));
            c[7] = vreinterpretq_s8_u8(vandq_u8(w1, m3));
            for (int t = 0; t < TB; t++) {
                const int8_t *qb = q[t] + 128 * b;
                int32x4_t *ac = acc[r * TB + t];
                for (int j = 0; j < 8; j += 2) {
                    ac[0] = dot16(ac[0], c[j], vld1q_s8(qb + 16 * j), DP);
                    ac[1] = dot16(ac[1], c[j + 1], vld1q_s8(qb + 16 * j + 16), DP);
                }
            }
        }
    }
    for (int i = 0; i < RB * TB; i++) out[i] = vaddvq_s32(vaddq_s32(acc[i][0], acc[i][1]));
}

BN_AI void mm_i2s(const bn_qmat *W, const bn_act *a, int64_t r0, int64_t r1, float *Y, int64_t ldy, const int DP) {
    const int64_t nb = W->K / 128;
    const int8_t *qa = (const int8_t *)a->data;
    int t = 0;
    for (; t + 4 <= a->n; t += 4) {
        const int8_t *q[4] = { qa + (size_t)t * a->row_bytes, qa + (size_t)(t + 1) * a->row_bytes,
                               qa + (size_t)(t + 2) * a->row_bytes, qa + (size_t)(t + 3) * a->row_bytes };
        for (int64_t r = r0; r < r1; r++) {
            const uint8_t *w[1] = { W->data + (size_t)r * W->row_bytes };
            int32_t s[4];
            i2s_tile(w, 1, q, 4, nb, s, DP);
            for (int j = 0; j < 4; j++)
                Y[(int64_t)(t + j) * ldy + r] = bn_i2s_out(s[j], a->sum[t + j], a->scale[t + j], W->scale);
        }
    }
    for (; t < a->n; t++) {
        const int8_t *q[1] = { qa + (size_t)t * a->row_bytes };
        int64_t r = r0;
        for (; r + 4 <= r1; r += 4) {
            const uint8_t *w[4] = { W->data + (size_t)r * W->row_bytes, W->data + (size_t)(r + 1) * W->row_bytes,
                                    W->data + (size_t)(r + 2) * W->row_bytes, W->data + (size_t)(r + 3) * W->row_bytes };
            int32_t s[4];
            i2s_tile(w, 4, q, 1, nb, s, DP);
            for (int j = 0; j < 4; j++) Y[(int64_t)t * ldy + r + j] = bn_i2s_out(s[j], a->sum[t], a->scale[t], W->scale);
        }
        for (; r < r1; r++) {
            const uint8_t *w[1] = { W->data + (size_t)r * W->row_bytes };
            int32_t s[1];
            i2s_tile(w, 1, q, 1, nb, s, DP);
            Y[(int64_t)t * ldy + r] = bn_i2s_out(s[0], a->sum[t], a->scale[t], W->scale);
        }
    }
}

/* ---- TQ2_0 -----------------------------------------------------------------
 * Byte 32c+m, bits 2n: element 128c+32n+m. Per block the eight exact int32
 * lanes of the scalar reference (lo: bytes 0..15 of each 32, hi: 16..31,
 * minus bsums pairs), then eight fma lanes in float and bn_hsum8f. */
BN_AI void tq2_block(const bn_block_tq2_0 *x, const bn_block_q8_K *y, const int DP, int32x4_t *lo, int32x4_t *hi) {
    const uint8x16_t m3 = vdupq_n_u8(3);
    int32x4_t acc0 = vnegq_s32(vpaddlq_s16(vld1q_s16(y->bsums)));
    int32x4_t acc1 = vnegq_s32(vpaddlq_s16(vld1q_s16(y->bsums + 8)));
    for (int c = 0; c < 2; c++) {
        uint8x16_t w0 = vld1q_u8(x->qs + 32 * c), w1 = vld1q_u8(x->qs + 32 * c + 16);
        const int8_t *qb = y->qs + 128 * c;
        for (int n = 0; n < 4; n++) {
            uint8x16_t s0 = n ? vshlq_u8(w0, vdupq_n_s8((int8_t)(-2 * n))) : w0;
            uint8x16_t s1 = n ? vshlq_u8(w1, vdupq_n_s8((int8_t)(-2 * n))) : w1;
            acc0 = dot16(acc0, vreinterpretq_s8_u8(vandq_u8(s0, m3)), vld1q_s8(qb + 32 * n), DP);
            acc1 = dot16(acc1, vreinterpretq_s8_u8(vandq_u8(s1, m3)), vld1q_s8(qb + 32 * n + 16), DP);
        }
    }
    *lo = acc0;
    *hi = acc1;
}

BN_AI void mm_tq2_0(const bn_qmat *W, const bn_act *a, int64_t r0, int64_t r1, float *Y, int64_t ldy, const int DP) {
    const int64_t nb = W->K / BN_QK_K;
    /* row outer, token inner: a row's blocks stay in L1 across tokens */
    for (int64_t r = r0; r < r1; r++) {
        const bn_block_tq2_0 *x = (const bn_block_tq2_0 *)(W->data + (size_t)r * W->row_bytes);
        for (int t = 0; t < a->n; t++) {
            const bn_block_q8_K *y = (const bn_block_q8_K *)((const uint8_t *)a->data + (size_t)t * a->row_bytes);
            float32x4_t f0 = vdupq_n_f32(0), f1 = vdupq_n_f32(0);
            for (int64_t i = 0; i < nb; i++) {
                int32x4_t lo, hi;
                tq2_block(&x[i], &y[i], DP, &lo, &hi);
                const float32x4_t d = vdupq_n_f32(y[i].d * bn_f16_to_f32(x[i].d));
                f0 = vfmaq_f32(f0, vcvtq_f32_s32(lo), d);
                f1 = vfmaq_f32(f1, vcvtq_f32_s32(hi), d);
            }
            float l8[8];
            vst1q_f32(l8, f0);
            vst1q_f32(l8 + 4, f1);
            Y[(int64_t)t * ldy + r] = bn_hsum8f(l8);
        }
    }
}

/* ---- Q8_0 ------------------------------------------------------------------
 * Per block the exact int32 dot of 32 int8 pairs, then the reference's chain
 * sumf += (float)sumi * (dx * dy) per row (mul, then add: no fma), four rows
 * in the lanes of one vector. Without dotprod the products are widened and
 * accumulated pairwise into int32 at once (|x*y| <= 16384: two of them can
 * overflow int16, so no pairwise add in 16 bits as dot16 does). */
BN_AI int32_t q8_0_dot(const int8_t *x, const int8_t *y, const int DP) {
    const int8x16_t x0 = vld1q_s8(x), x1 = vld1q_s8(x + 16), y0 = vld1q_s8(y), y1 = vld1q_s8(y + 16);
#if defined(__ARM_FEATURE_DOTPROD)
    if (DP) return vaddvq_s32(vdotq_s32(vdotq_s32(vdupq_n_s32(0), x0, y0), x1, y1));
#endif
    int32x4_t acc = vpadalq_s16(vdupq_n_s32(0), vmull_s8(vget_low_s8(x0), vget_low_s8(y0)));
    acc = vpadalq_s16(acc, vmull_high_s8(x0, y0));
    acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(x1), vget_low_s8(y1)));
    acc = vpadalq_s16(acc, vmull_high_s8(x1, y1));
    return vaddvq_s32(acc);
}

BN_AI void mm_q8_0(const bn_qmat *W, const bn_act *a, int64_t r0, int64_t r1, float *Y, int64_t ldy, const int DP) {
    const int64_t nb = W->K / BN_QK8_0;
    int64_t r = r0;
    /* 4-row tiles outer, tokens inner: the tile's blocks stay in L1 across tokens */
    for (; r + 4 <= r1; r += 4) {
        const bn_block_q8_0 *x[4];
        for (int j = 0; j < 4; j++) x[j] = (const bn_block_q8_0 *)(W->data + (size_t)(r + j) * W->row_bytes);
        for (int t = 0; t < a->n; t++) {
            const bn_block_q8_0 *y = (const bn_block_q8_0 *)((const uint8_t *)a->data + (size_t)t * a->row_bytes);
            float32x4_t sumf = vdupq_n_f32(0);
            for (int64_t i = 0; i < nb; i++) {
                __builtin_prefetch(&x[0][i] + 16);
                const int32_t s[4] = { q8_0_dot(x[0][i].qs, y[i].qs, DP), q8_0_dot(x[1][i].qs, y[i].qs, DP),
                                       q8_0_dot(x[2][i].qs, y[i].qs, DP), q8_0_dot(x[3][i].qs, y[i].qs, DP) };
                const uint16_t dh[4] = { x[0][i].d, x[1][i].d, x[2][i].d, x[3][i].d };
                const float32x4_t d = vmulq_n_f32(vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(dh))), bn_f16_to_f32(y[i].d));
                sumf = vaddq_f32(sumf, vmulq_f32(vcvtq_f32_s32(vld1q_s32(s)), d));
            }
            float o[4];
            vst1q_f32(o, sumf);
            for (int j = 0; j < 4; j++) Y[(int64_t)t * ldy + r + j] = o[j];
        }
    }
    for (; r < r1; r++) {
        const bn_block_q8_0 *x = (const bn_block_q8_0 *)(W->data + (size_t)r * W->row_bytes);
        for (int t = 0; t < a->n; t++) {
            const bn_block_q8_0 *y = (const bn_block_q8_0 *)((const uint8_t *)a->data + (size_t)t * a->row_bytes);
            float sumf = 0.0f;
            for (int64_t i = 0; i < nb; i++)
                sumf += (float)q8_0_dot(x[i].qs, y[i].qs, DP) * (bn_f16_to_f32(x[i].d) * bn_f16_to_f32(y[i].d));
            Y[(int64_t)t * ldy + r] = sumf;
        }
    }
}

/* ---- Q6_K ------------------------------------------------------------------
 * Each 16-lane vector of unpacked 6-bit values (ql nibble | qh pair << 4,
 * minus 32) is exactly one 16-element sub-block; its dot (|v*q| <= 4096, so
 * dot16's pairwise int16 sum is safe) is scaled by the sub-block's int8
 * scale in int32. Exact, then the reference's sumf += d * (float)sumi. */
BN_AI int32_t q6k_block(const bn_block_q6_K *x, const bn_block_q8_K *y, const int DP) {
    const uint8x16_t m4 = vdupq_n_u8(0x0F), m3 = vdupq_n_u8(3);
    const int8x16_t k32 = vdupq_n_s8(32);
    int32x4_t acc = vdupq_n_s32(0);
    for (int h = 0; h < 2; h++) { /* elements 128h.. from ql[64h..], qh[32h..] */
        const uint8_t *ql = x->ql + 64 * h, *qh = x->qh + 32 * h;
        for (int l = 0; l < 32; l += 16) {
            const uint8x16_t a = vld1q_u8(ql + l), b = vld1q_u8(ql + 32 + l), hb = vld1q_u8(qh + l);
            uint8x16_t v[4];
            v[0] = vorrq_u8(vandq_u8(a, m4), vshlq_n_u8(vandq_u8(hb, m3), 4));
            v[1] = vorrq_u8(vandq_u8(b, m4), vshlq_n_u8(vandq_u8(vshrq_n_u8(hb, 2), m3), 4));
            v[2] = vorrq_u8(vshrq_n_u8(a, 4), vshlq_n_u8(vandq_u8(vshrq_n_u8(hb, 4), m3), 4));
            v[3] = vorrq_u8(vshrq_n_u8(b, 4), vshlq_n_u8(vshrq_n_u8(hb, 6), 4));
            for (int k = 0; k < 4; k++) { /* elements 128h + 32k + l.., sub-block 8h + 2k + l / 16 */
                const int e = 128 * h + 32 * k + l;
                const int32x4_t p = dot16(vdupq_n_s32(0), vsubq_s8(vreinterpretq_s8_u8(v[k]), k32), vld1q_s8(y->qs + e), DP);
                acc = vmlaq_n_s32(acc, p, x->scales[e / 16]);
            }
        }
    }
    return vaddvq_s32(acc);
}

BN_AI void mm_q6_K(const bn_qmat *W, const bn_act *a, int64_t r0, int64_t r1, float *Y, int64_t ldy, const int DP) {
    const int64_t nb = W->K / BN_QK_K;
    /* row outer, token inner: a row's blocks stay in L1 across tokens */
    for (int64_t r = r0; r < r1; r++) {
        const bn_block_q6_K *x = (const bn_block_q6_K *)(W->data + (size_t)r * W->row_bytes);
        for (int t = 0; t < a->n; t++) {
            const bn_block_q8_K *y = (const bn_block_q8_K *)((const uint8_t *)a->data + (size_t)t * a->row_bytes);
            float sumf = 0.0f;
            for (int64_t i = 0; i < nb; i++) {
                const float d = bn_f16_to_f32(x[i].d) * y[i].d;
                sumf += d * (float)q6k_block(&x[i], &y[i], DP);
            }
            Y[(int64_t)t * ldy + r] = sumf;
        }
    }
}

/* ---- F16 / F32: 8 x 4 lanes = the scalar's 32 lanes ------------------------- */
static float reduce32(float *acc) {
    for (int h = 16; h >= 1; h /= 2)
        for (int j = 0; j < h; j++) acc[j] = acc[j] + acc[j + h];
    return acc[0];
}

BN_AI float32x4_t ld4(const void *p, int64_t k, const int F16) {
    if (F16) return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16((const uint16_t *)p + k)));
    return vld1q_f32((const float *)p + k);
}

BN_AI float fdot(const void *w, const void *x, int64_t K, const int F16) {
    float32x4_t acc[8];
    for (int j = 0; j < 8; j++) acc[j] = vdupq_n_f32(0);
    const int64_t K32 = K & ~(int64_t)31;
    for (int64_t k = 0; k < K32; k += 32)
        for (int j = 0; j < 8; j++) acc[j] = vfmaq_f32(acc[j], ld4(w, k + 4 * j, F16), ld4(x, k + 4 * j, F16));
    float lanes[32];
    for (int j = 0; j < 8; j++) vst1q_f32(lanes + 4 * j, acc[j]);
    for (int64_t k = K32; k < K; k++) {
        float wf = F16 ? bn_f16_to_f32(((const uint16_t *)w)[k]) : ((const float *)w)[k];
        float xf = F16 ? bn_f16_to_f32(((const uint16_t *)x)[k]) : ((const float *)x)[k];
        lanes[k & 31] = fmaf(wf, xf, lanes[k & 31]);
    }
    return reduce32(lanes);
}

static void neon_mm_f16(const bn_qmat *W, const bn_act *a, int64_t r0, int64_t r1, float *Y, int64_t ldy) {
    for (int t = 0; t < a->n; t++)
        for (int64_t r = r0; r < r1; r++)
            Y[(int64_t)t * ldy + r] = fdot(W->data + (size_t)r * W->row_bytes,
                                           (const uint8_t *)a->data + (size_t)t * a->row_bytes, W->K, 1);
}

static void neon_mm_f32(const bn_qmat *W, const bn_act *a, int64_t r0, int64_t r1, float *Y, int64_t ldy) {
    for (int t = 0; t < a->n; t++)
        for (int64_t r = r0; r < r1; r++)
            Y[(int64_t)t * ldy + r] = fdot(W->data + (size_t)r * W->row_bytes,
                                           (const uint8_t *)a->data + (size_t)t * a->row_bytes, W->K, 0);
}

/* A kernel body with its DP flag, as the two tables' slots: neon_NAME (no
 * dotprod) and dp_NAME (sdot). */
#define NEON_SLOTS(NAME, BODY)                                                                              \
    static void neon_##NAME(const bn_qmat *W, const bn_act *a, int64_t r0, int64_t r1, float *Y, int64_t ldy) { \
        BODY(W, a, r0, r1, Y, ldy, 0);                                                                      \
    }                                                                                                       \
    static void dp_##NAME(const bn_qmat *W, const bn_act *a, int64_t r0, int64_t r1, float *Y, int64_t ldy) {   \
        BODY(W, a, r0, r1, Y, ldy, 1);                                                                      \
    }
NEON_SLOTS(mm_i2s, mm_i2s)
NEON_SLOTS(mm_tq2_0, mm_tq2_0)
NEON_SLOTS(mm_q8_0, mm_q8_0)
NEON_SLOTS(mm_q6_K, mm_q6_K)

/* Trit n of 16 packed bytes, ((uint8)(b * 3^n) * 3) >> 8 as the reference's
 * tq1_trit: vmulq_u8 keeps the low byte, vmull_u8 by 3 then the high byte. */
BN_AI uint8x16_t neon_trit(uint8x16_t b, uint8_t pow3) {
    const uint8x16_t q = vmulq_u8(b, vdupq_n_u8(pow3));
    const uint8x8_t three = vdup_n_u8(3);
    return vcombine_u8(vshrn_n_u16(vmull_u8(vget_low_u8(q), three), 8), vshrn_n_u16(vmull_u8(vget_high_u8(q), three), 8));
}

/* bn_tq1_0_to_tq2_0 with 16-byte trits: codes in element order (qs[0..31]:
 * element 32n + m; qs[32..47]: 160 + 16n + m; qh[j]: 240 + 4n + j), then
 * four to a byte (byte 32c + m, bits 2n: element 128c + 32n + m). The
 * table's tq1_to_tq2 (bn-forward's load-time rewrite) and its batches. */
static void neon_tq1_to_tq2(const bn_block_tq1_0 *x, bn_block_tq2_0 *y, int64_t nb) {
    static const uint8_t pow3[5] = { 1, 3, 9, 27, 81 };
    for (int64_t i = 0; i < nb; i++) {
        _Alignas(16) uint8_t codes[BN_QK_K];
        uint8_t h[16] = { 0 };
        memcpy(h, x[i].qh, sizeof x[i].qh);
        const uint8x16_t b0 = vld1q_u8(x[i].qs), b1 = vld1q_u8(x[i].qs + 16), b2 = vld1q_u8(x[i].qs + 32),
                         bh = vld1q_u8(h);
        for (int n = 0; n < 5; n++) {
            vst1q_u8(codes + 32 * n, neon_trit(b0, pow3[n]));
            vst1q_u8(codes + 32 * n + 16, neon_trit(b1, pow3[n]));
            vst1q_u8(codes + 160 + 16 * n, neon_trit(b2, pow3[n]));
        }
        for (int n = 0; n < 4; n++) { /* trit n of qh byte j: lane j */
            uint8_t t[16];
            vst1q_u8(t, neon_trit(bh, pow3[n]));
            memcpy(codes + 240 + 4 * n, t, 4);
        }
        for (int c = 0; c < 2; c++)
            for (int m = 0; m < 32; m += 16) {
                const uint8_t *cc = codes + 128 * c + m;
                uint8x16_t q = vld1q_u8(cc);
                q = vorrq_u8(q, vshlq_n_u8(vld1q_u8(cc + 32), 2));
                q = vorrq_u8(q, vshlq_n_u8(vld1q_u8(cc + 64), 4));
                q = vorrq_u8(q, vshlq_n_u8(vld1q_u8(cc + 96), 6));
                vst1q_u8(y[i].qs + 32 * c + m, q);
            }
        y[i].d = x[i].d;
    }
}

/* TQ1_0 as TQ2_0 rows (neon_tq1_to_tq2 decodes, once per row), then the
 * TQ2_0 kernels: the scalar kernel decoded every block again per token. */
BN_AI void mm_tq1_0(const bn_qmat *W, const bn_act *a, int64_t r0, int64_t r1, float *Y, int64_t ldy, const int DP) {
    bn_mm_tq1_0_via_tq2(W, a, r0, r1, Y, ldy, neon_tq1_to_tq2, DP ? dp_mm_tq2_0 : neon_mm_tq2_0);
}
NEON_SLOTS(mm_tq1_0, mm_tq1_0)

/* ---- tables ----------------------------------------------------------------- */

BN_KERNELS_ENTRY_POINTS(neon, bn_kernels_neon)
BN_KERNELS_ENTRY_POINTS(dp, bn_kernels_neon_dotprod)

const bn_kernels bn_kernels_neon = {
    .isa = BN_ISA_NEON,
    .name = "neon",
    .quantize_act = neon_quantize,
    .matmul = neon_matmul,
    .mm = { [BN_W_I2S] = neon_mm_i2s, [BN_W_TQ2_0] = neon_mm_tq2_0, [BN_W_TQ1_0] = neon_mm_tq1_0,
            [BN_W_Q8_0] = neon_mm_q8_0, [BN_W_Q6_K] = neon_mm_q6_K, [BN_W_F16] = neon_mm_f16,
            [BN_W_F32] = neon_mm_f32 },
    .mm_isa = { "neon", "neon", "neon", "neon", "neon", "neon", "neon" },
    .qa = { [BN_ACT_I8S] = neon_qa_i8s, [BN_ACT_Q8K] = bn_qa_q8k_scalar, [BN_ACT_Q8_0] = bn_qa_q8_0_scalar,
            [BN_ACT_F16] = neon_qa_f16, [BN_ACT_F32] = bn_qa_f32_scalar },
    .qa_isa = { "neon", "scalar", "scalar", "neon", "scalar" },
    .tq1_to_tq2 = neon_tq1_to_tq2,
};

const bn_kernels bn_kernels_neon_dotprod = {
    .isa = BN_ISA_NEON,
    .name = "neon-dotprod",
    .quantize_act = dp_quantize,
    .matmul = dp_matmul,
    .mm = { [BN_W_I2S] = dp_mm_i2s, [BN_W_TQ2_0] = dp_mm_tq2_0, [BN_W_TQ1_0] = dp_mm_tq1_0,
            [BN_W_Q8_0] = dp_mm_q8_0, [BN_W_Q6_K] = dp_mm_q6_K, [BN_W_F16] = neon_mm_f16,
            [BN_W_F32] = neon_mm_f32 },
    .mm_isa = { "neon-dotprod", "neon-dotprod", "neon-dotprod", "neon-dotprod", "neon-dotprod", "neon", "neon" },
    .qa = { [BN_ACT_I8S] = neon_qa_i8s, [BN_ACT_Q8K] = bn_qa_q8k_scalar, [BN_ACT_Q8_0] = bn_qa_q8_0_scalar,
            [BN_ACT_F16] = neon_qa_f16, [BN_ACT_F32] = bn_qa_f32_scalar },
    .qa_isa = { "neon", "scalar", "scalar", "neon", "scalar" },
    .tq1_to_tq2 = neon_tq1_to_tq2,
};
