/* kernels_avx2.c - AVX2 (+FMA, F16C) kernels: I2_S, TQ2_0 and Q8_0 integer
 * dot products (shared bodies in kernels_x86.h, maddubs variant), F16 and
 * F32 dots on the same 32-lane schedule as the scalar reference, and the
 * activation quantizers. Every weight type has an AVX2 kernel. */
#define BN_X86_VNNI 0
#include "kernels_x86.h"

#include <math.h>

/* ---- activation quantization ----------------------------------------------
 * Same arithmetic as bn_quantize_row_i8s_ref: absmax in f32 lanes (exact, max
 * is order-independent), the scale computed in double, x*s in f32 rounded to
 * nearest-even by vroundps (equal to the magic-number trick for |v| < 2^22),
 * clamped to [-128, 127] before the sum and the narrowing. */
void bn_qa_i8s_avx2(bn_act *a, const float *X, int64_t ldx, int t0, int t1) {
    const int64_t K = a->K;
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (int t = t0; t < t1; t++) {
        const float *x = X + (int64_t)t * ldx;
        int8_t *q = (int8_t *)a->data + (size_t)t * a->row_bytes;
        __m256 mx = _mm256_setzero_ps();
        int64_t k = 0;
        for (; k + 8 <= K; k += 8) mx = _mm256_max_ps(mx, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + k)));
        float lanes[8];
        _mm256_storeu_ps(lanes, mx);
        double max = 0.00001;
        for (int j = 0; j < 8; j++) if ((double)lanes[j] > max) max = lanes[j];
        for (; k < K; k++) if (fabs((double)x[k]) > max) max = fabs((double)x[k]);
        const float s = (float)(127 / max);
        const __m256 sv = _mm256_set1_ps(s);
        const __m256i lo = _mm256_set1_epi32(-128), hi = _mm256_set1_epi32(127);
        __m256i sum = _mm256_setzero_si256();
        k = 0;
        for (; k + 32 <= K; k += 32) {
            __m256i v[4];
            for (int j = 0; j < 4; j++) {
                __m256 f = _mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + k + 8 * j), sv),
                                           _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
                v[j] = _mm256_min_epi32(_mm256_max_epi32(_mm256_cvtps_epi32(f), lo), hi);
                sum = _mm256_add_epi32(sum, v[j]);
            }
            __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(v[0], v[1]), _mm256_packs_epi32(v[2], v[3]));
            p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
            _mm256_storeu_si256((__m256i *)(q + k), p);
        }
        int32_t acc = x86_hsum_i32(sum);
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

/* q8_K: the signed value of largest magnitude is the FIRST element whose |x|
 * equals the block absmax (the scalar loop keeps the first strict maximum). */
void bn_qa_q8k_avx2(bn_act *a, const float *X, int64_t ldx, int t0, int t1) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const int64_t nb = a->K / BN_QK_K;
    for (int t = t0; t < t1; t++) {
        const float *x = X + (int64_t)t * ldx;
        bn_block_q8_K *y = (bn_block_q8_K *)((uint8_t *)a->data + (size_t)t * a->row_bytes);
        for (int64_t i = 0; i < nb; i++, x += BN_QK_K) {
            __m256 mx = _mm256_setzero_ps();
            for (int k = 0; k < BN_QK_K; k += 8) mx = _mm256_max_ps(mx, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + k)));
            float lanes[8];
            _mm256_storeu_ps(lanes, mx);
            float amax = 0;
            for (int j = 0; j < 8; j++) amax = lanes[j] > amax ? lanes[j] : amax;
            if (!amax) {
                memset(&y[i], 0, sizeof y[i]);
                continue;
            }
            float max = 0;
            const __m256 av = _mm256_set1_ps(amax);
            for (int k = 0; k < BN_QK_K; k += 8) {
                int m = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x + k)), av, _CMP_EQ_OQ));
                if (m) { max = x[k + __builtin_ctz((unsigned)m)]; break; }
            }
            const float iscale = -127.f / max;
            const __m256 iv = _mm256_set1_ps(iscale);
            const __m256i hi = _mm256_set1_epi32(127);
            for (int k = 0; k < BN_QK_K; k += 32) {
                __m256i v[4];
                for (int j = 0; j < 4; j++) {
                    __m256 f = _mm256_round_ps(_mm256_mul_ps(iv, _mm256_loadu_ps(x + k + 8 * j)),
                                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
                    v[j] = _mm256_min_epi32(_mm256_cvtps_epi32(f), hi);
                }
                __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(v[0], v[1]), _mm256_packs_epi32(v[2], v[3]));
                p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
                _mm256_storeu_si256((__m256i *)(y[i].qs + k), p);
            }
            /* bsums: bytes -> i16 pairs (maddubs with 1s) -> i32 quads (madd with
             * 1s) -> two hadds give the four 16-byte sums of each 64 bytes. */
            const __m256i one8 = _mm256_set1_epi8(1), one16 = _mm256_set1_epi16(1);
            for (int k = 0; k < BN_QK_K; k += 64) {
                __m256i m0 = _mm256_madd_epi16(
                    _mm256_maddubs_epi16(one8, _mm256_loadu_si256((const __m256i *)(y[i].qs + k))), one16);
                __m256i m1 = _mm256_madd_epi16(
                    _mm256_maddubs_epi16(one8, _mm256_loadu_si256((const __m256i *)(y[i].qs + k + 32))), one16);
                __m256i h = _mm256_hadd_epi32(m0, m1);
                h = _mm256_hadd_epi32(h, h);
                int32_t o[8];
                _mm256_storeu_si256((__m256i *)o, h);
                y[i].bsums[k / 16 + 0] = (int16_t)o[0];
                y[i].bsums[k / 16 + 1] = (int16_t)o[4];
                y[i].bsums[k / 16 + 2] = (int16_t)o[1];
                y[i].bsums[k / 16 + 3] = (int16_t)o[5];
            }
            y[i].d = 1 / iscale;
        }
    }
}

void bn_qa_f16_avx2(bn_act *a, const float *X, int64_t ldx, int t0, int t1) {
    for (int t = t0; t < t1; t++) {
        const float *x = X + (int64_t)t * ldx;
        uint16_t *y = (uint16_t *)((uint8_t *)a->data + (size_t)t * a->row_bytes);
        int64_t k = 0;
        for (; k + 8 <= a->K; k += 8)
            _mm_storeu_si128((__m128i *)(y + k), _mm256_cvtps_ph(_mm256_loadu_ps(x + k), _MM_FROUND_TO_NEAREST_INT));
        for (; k < a->K; k++) y[k] = bn_f32_to_f16(x[k]);
    }
}

/* ---- F16 / F32 ---------------------------------------------------------------
 * 4 accumulators of 8 lanes = the scalar's 32 lanes (element k in lane k%32),
 * fma per element, tail elements continue on the same lanes with fmaf, and the
 * lanes are reduced by the scalar's fixed tree: bitwise equal to the reference. */
static float reduce32(float *acc) {
    for (int h = 16; h >= 1; h /= 2)
        for (int j = 0; j < h; j++) acc[j] = acc[j] + acc[j + h];
    return acc[0];
}

BN_AI __m256 ld_f16(const uint16_t *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }

/* RB rows x TB tokens; F16 != 0 selects f16 storage of both operands. */
BN_AI void fdot_tile(const void *const *w, const int RB, const void *const *x, const int TB, int64_t K, const int F16,
                     float *out) {
    __m256 acc[8][4];
#pragma GCC unroll 16
    for (int i = 0; i < RB * TB; i++)
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) acc[i][j] = _mm256_setzero_ps();
    const int64_t K32 = K & ~(int64_t)31;
    /* the RB rows are adjacent: prefetch the tile's stream linearly, a tile + 4 KB ahead */
    const char *pf = (const char *)w[0] + (size_t)RB * (size_t)K * (F16 ? 2 : 4) + BN_PF_AHEAD;
    for (int64_t k = 0; k < K32; k += 32) {
        __m256 xv[4][4];
#pragma GCC unroll 4
        for (int t = 0; t < TB; t++)
#pragma GCC unroll 4
            for (int j = 0; j < 4; j++)
                xv[t][j] = F16 ? ld_f16((const uint16_t *)x[t] + k + 8 * j) : _mm256_loadu_ps((const float *)x[t] + k + 8 * j);
        for (int r = 0; r < RB * (F16 ? 1 : 2); r++) _mm_prefetch(pf + (size_t)RB * (k << (F16 ? 1 : 2)) + 64 * r, _MM_HINT_T0);
#pragma GCC unroll 4
        for (int r = 0; r < RB; r++) {
#pragma GCC unroll 4
            for (int j = 0; j < 4; j++) {
                __m256 wv = F16 ? ld_f16((const uint16_t *)w[r] + k + 8 * j) : _mm256_loadu_ps((const float *)w[r] + k + 8 * j);
#pragma GCC unroll 4
                for (int t = 0; t < TB; t++) acc[r * TB + t][j] = _mm256_fmadd_ps(wv, xv[t][j], acc[r * TB + t][j]);
            }
        }
    }
#pragma GCC unroll 16
    for (int i = 0; i < RB * TB; i++) {
        float lanes[32];
        for (int j = 0; j < 4; j++) _mm256_storeu_ps(lanes + 8 * j, acc[i][j]);
        const int r = i / TB, t = i % TB;
        for (int64_t k = K32; k < K; k++) {
            float wf = F16 ? _cvtsh_ss(((const uint16_t *)w[r])[k]) : ((const float *)w[r])[k];
            float xf = F16 ? _cvtsh_ss(((const uint16_t *)x[t])[k]) : ((const float *)x[t])[k];
            lanes[k & 31] = fmaf(wf, xf, lanes[k & 31]);
        }
        out[i] = reduce32(lanes);
    }
}

/* 2 rows share the activation loads; row pairs outer, tokens inner, so with
 * several tokens the rows are read from memory once and from L1 after that. */
BN_AI void fdot_mm(const bn_qmat *W, const bn_act *a, int64_t r0, int64_t r1, float *Y, int64_t ldy, const int F16) {
    const uint8_t *xa = (const uint8_t *)a->data;
    int64_t r = r0;
    /* one token: a row at a time, one sequential stream (see z_mm) */
    const int64_t rp = a->n == 1 ? r0 : r1;
    for (; r + 2 <= rp; r += 2) {
        const void *w[2] = { W->data + (size_t)r * W->row_bytes, W->data + (size_t)(r + 1) * W->row_bytes };
        for (int t = 0; t < a->n; t++) {
            const void *x[1] = { xa + (size_t)t * a->row_bytes };
            float o[2];
            fdot_tile(w, 2, x, 1, W->K, F16, o);
            Y[(int64_t)t * ldy + r] = o[0];
            Y[(int64_t)t * ldy + r + 1] = o[1];
        }
    }
    for (; r < r1; r++) {
        const void *w[1] = { W->data + (size_t)r * W->row_bytes };
        for (int t = 0; t < a->n; t++) {
            const void *x[1] = { xa + (size_t)t * a->row_bytes };
            fdot_tile(w, 1, x, 1, W->K, F16, &Y[(int64_t)t * ldy + r]);
        }
    }
}

void bn_mm_f16_avx2(const bn_qmat *W, const bn_act *a, int64_t r0, int64_t r1, float *Y, int64_t ldy) {
    fdot_mm(W, a, r0, r1, Y, ldy, 1);
}

void bn_mm_f32_avx2(const bn_qmat *W, const bn_act *a, int64_t r0, int64_t r1, float *Y, int64_t ldy) {
    fdot_mm(W, a, r0, r1, Y, ldy, 0);
}

void bn_mm_i2s_avx2(const bn_qmat *W, const bn_act *a, int64_t r0, int64_t r1, float *Y, int64_t ldy) {
    x86_mm_i2s(W, a, r0, r1, Y, ldy);
}

void bn_mm_tq2_0_avx2(const bn_qmat *W, const bn_act *a, int64_t r0, int64_t r1, float *Y, int64_t ldy) {
    x86_mm_tq2_0(W, a, r0, r1, Y, ldy);
}

void bn_tq1_to_tq2_avx2(const bn_block_tq1_0 *x, bn_block_tq2_0 *y, int64_t nb) {
    x86_tq1_to_tq2_row(x, y, nb);
}

/* One token: the ymm kernel; a batch: as TQ2_0 rows (bn_mm_tq1_0_via_tq2) */
void bn_mm_tq1_0_avx2(const bn_qmat *W, const bn_act *a, int64_t r0, int64_t r1, float *Y, int64_t ldy) {
    if (a->n == 1) x86_mm_tq1_0(W, a, r0, r1, Y, ldy);
    else bn_mm_tq1_0_via_tq2(W, a, r0, r1, Y, ldy, bn_tq1_to_tq2_avx2, bn_mm_tq2_0_avx2);
}

void bn_mm_q6_K_avx2(const bn_qmat *W, const bn_act *a, int64_t r0, int64_t r1, float *Y, int64_t ldy) {
    x86_mm_q6_K(W, a, r0, r1, Y, ldy);
}

void bn_mm_q8_0_avx2(const bn_qmat *W, const bn_act *a, int64_t r0, int64_t r1, float *Y, int64_t ldy) {
    x86_mm_q8_0(W, a, r0, r1, Y, ldy);
}

/* ---- table ------------------------------------------------------------------ */

BN_KERNELS_ENTRY_POINTS(avx2, bn_kernels_avx2)

const bn_kernels bn_kernels_avx2 = {
    .isa = BN_ISA_AVX2,
    .name = "avx2",
    .quantize_act = avx2_quantize,
    .matmul = avx2_matmul,
    .mm = { [BN_W_I2S] = bn_mm_i2s_avx2, [BN_W_TQ2_0] = bn_mm_tq2_0_avx2, [BN_W_TQ1_0] = bn_mm_tq1_0_avx2,
            [BN_W_Q8_0] = bn_mm_q8_0_avx2, [BN_W_Q6_K] = bn_mm_q6_K_avx2, [BN_W_F16] = bn_mm_f16_avx2,
            [BN_W_F32] = bn_mm_f32_avx2 },
    .mm_isa = { "avx2", "avx2", "avx2", "avx2", "avx2", "avx2", "avx2" },
    .qa = { [BN_ACT_I8S] = bn_qa_i8s_avx2, [BN_ACT_Q8K] = bn_qa_q8k_avx2, [BN_ACT_Q8_0] = bn_qa_q8_0_scalar,
            [BN_ACT_F16] = bn_qa_f16_avx2, [BN_ACT_F32] = bn_qa_f32_scalar },
    .qa_isa = { "avx2", "avx2", "scalar", "avx2", "scalar" },
    .tq1_to_tq2 = bn_tq1_to_tq2_avx2,
};
