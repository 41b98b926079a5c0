/* kernels_x86.h - x86 integer kernel bodies shared by lib/kernels_avx2.c
 * (BN_X86_VNNI 0: maddubs + madd) and lib/kernels_avx512.c (BN_X86_VNNI 1:
 * vpdpbusd on 256-bit vectors). Internal to those two files: it needs their
 * -m flags and defines static functions. Both variants produce exact int32
 * dot products, so results equal the scalar reference bit for bit.
 *
 * Why 256-bit VNNI and not 512: on Zen 4 a zmm op costs two ymm ops, and an
 * I2_S block (128 weights = 32 bytes) maps naturally onto one ymm of codes
 * against four contiguous ymm of activations; zmm would need lane shuffles of
 * the activations (two blocks per register). */
#ifndef BN_KERNELS_X86_H
#define BN_KERNELS_X86_H

#include <immintrin.h>
#include <string.h>

#include "kernels.h"
#include "quant.h"

#ifndef BN_X86_VNNI
#error "define BN_X86_VNNI before including kernels_x86.h"
#endif

#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

#define BN_AI static inline __attribute__((always_inline))

/* How far ahead of the current read the GEMVs prefetch their weight stream.
 * On the AVX2-only Zen 2 VM, 0 to 16 KB and T0/T1/T2/NTA hints all streamed
 * within noise of each other (the L2 stream prefetcher does most of the work);
 * 4 KB was chosen on Zen 4, where the prefetched GEMVs beat a plain read. */
#ifndef BN_PF_AHEAD
#define BN_PF_AHEAD 4096
#endif
/* The AVX-512 one-token I2_S and Q8_0 GEMVs prefetch further: on the Zen 5
 * VM (bench/gemvprobe with the distance varied pass by pass in one process,
 * order rotated) the I2_S GEMV streamed at 0.90-0.93 of a same-pass read
 * with 4 KB and 0.97-1.0 with 24-32 KB (1 and 2 threads), the Q8_0 head
 * 0.76-0.81 -> 0.80-0.84; the F16 head moved within noise, and the AVX2
 * I2_S tile on the same CPU streamed worse (0.80 -> 0.70), so those keep
 * BN_PF_AHEAD. */
#ifndef BN_PF_STREAM
#define BN_PF_STREAM 32768
#endif
/* The AMX table's one-token I2_S and F16 GEMVs (and its Q8_0 8-row tile)
 * prefetch into L2, not L1, BN_PF_L2 ahead. On the Sapphire Rapids-class
 * Xeon VM (AMX means Intel) gemvprobe measured, 1 / 2 threads, GB/s, old ->
 * new: I2_S (32 KB into L1) 14.8-15.4 / 29.7-30.2 -> 17.6-18.0 / 33.6, F16
 * (4 KB into L1) 14.5-14.7 / 28.3-28.6 -> 16.7-16.9 / 31.5-31.8, the Q8_0
 * tile 10.8-11.0 / 21.3-21.5 -> 12.6-12.8 / 24.9-25.0; 4-16 KB into L2 were
 * within noise of each other, and into L1 every distance of 4 KB or more
 * lost 10-20%. */
#ifndef BN_PF_L2
#define BN_PF_L2 8192
#endif
/* The AVX-512 one-token kernels that read a thread's rows as four runs side
 * by side (F16 / f32, I2_S, TQ2_0, Q8_0, Q6_K) prefetch each run into L1
 * this far ahead of itself, every line; each kernel's comment gives what it
 * measured (on the Zen 5 VM 1 KB or less fell short of 2 KB, 3-4 KB were no
 * better). */
#ifndef BN_PF_RUN
#define BN_PF_RUN 2048
#endif

/* A software prefetch into L1 (T0) or, with L2 set, into L2 (T1); L2 is a
 * constant at every call, so the branch folds away. */
BN_AI void x86_prefetch(const char *p, const int L2) {
    if (L2) _mm_prefetch(p, _MM_HINT_T1);
    else _mm_prefetch(p, _MM_HINT_T0);
}

/* Sum of the 8 int32 lanes (exact, order irrelevant). */
BN_AI int32_t x86_hsum_i32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

/* acc += dot of 4 groups of unsigned codes (0..3) with signed activations:
 * per int32 lane the sum of 4 u8*s8 products from each pair. Without VNNI the
 * four maddubs results are summed in int16 first (|each| <= 2*3*128, so the
 * sum of four fits easily) and widened once. */
BN_AI __m256i x86_dot4(__m256i acc, __m256i c0, __m256i q0, __m256i c1, __m256i q1, __m256i c2, __m256i q2,
                       __m256i c3, __m256i q3) {
#if BN_X86_VNNI
    acc = _mm256_dpbusd_epi32(acc, c0, q0);
    acc = _mm256_dpbusd_epi32(acc, c1, q1);
    acc = _mm256_dpbusd_epi32(acc, c2, q2);
    acc = _mm256_dpbusd_epi32(acc, c3, q3);
    return acc;
#else
    __m256i s01 = _mm256_add_epi16(_mm256_maddubs_epi16(c0, q0), _mm256_maddubs_epi16(c1, q1));
    __m256i s23 = _mm256_add_epi16(_mm256_maddubs_epi16(c2, q2), _mm256_maddubs_epi16(c3, q3));
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_add_epi16(s01, s23), _mm256_set1_epi16(1)));
#endif
}

/* ---- I2_S ------------------------------------------------------------------
 * One 32-byte block holds 128 codes: element 32g+p at byte p, bits 6-2g. The
 * four groups g are shifted down and masked, then dotted with the 4 x 32
 * activations of the block. A tile is RB weight rows x TB tokens; the codes of
 * a row are unpacked once per block and reused for every token in the tile,
 * and the activations of a token are loaded once and reused for every row. */
BN_AI void x86_i2s_tile(const uint8_t *const *w, const int RB, const int8_t *const *q, const int TB, int64_t nb,
                        int32_t *out) {
    const __m256i m3 = _mm256_set1_epi8(3);
#if BN_X86_VNNI
    /* NA accumulators per (row, token), group g into g % NA: independent
     * vpdpbusd chains instead of one serial chain of four (latency bound);
     * big tiles use 2 so that everything stays in the 32 vector registers */
    const int NA = RB * TB > 4 ? 2 : 4;
    __m256i acc[8][4];
#pragma GCC unroll 16
    for (int i = 0; i < RB * TB; i++)
#pragma GCC unroll 4
        for (int g = 0; g < 4; g++) acc[i][g] = _mm256_setzero_si256();
#else
    /* maddubs sums of a block stay in int16 lanes for 8 blocks before they
     * are widened (one madd per 8 blocks instead of per block): per block a
     * lane adds at most 4 maddubs pairs of |code * q| <= 3 * 128, i.e. 3072,
     * so 8 blocks stay below 32767 for any code bytes (exact, no wrap) */
    __m256i acc[8], a16[8];
#pragma GCC unroll 16
    for (int i = 0; i < RB * TB; i++) acc[i] = a16[i] = _mm256_setzero_si256();
#endif
    /* callers' tiles are adjacent rows, one contiguous stream of RB * 32 * nb
     * bytes: prefetch it linearly, a tile + 4 KB ahead, RB lines every 2 blocks */
    const char *pf = (const char *)w[0] + (size_t)RB * 32 * (size_t)nb + BN_PF_AHEAD;
    for (int64_t b = 0; b < nb; b++) {
        if (!(b & 1))
#pragma GCC unroll 4
            for (int r = 0; r < RB; r++) _mm_prefetch(pf + (size_t)RB * 32 * b + 64 * r, _MM_HINT_T0);
#pragma GCC unroll 4
        for (int r = 0; r < RB; r++) {
            __m256i wv = _mm256_loadu_si256((const __m256i *)(w[r] + 32 * b));
            __m256i c0 = _mm256_and_si256(_mm256_srli_epi16(wv, 6), m3);
            __m256i c1 = _mm256_and_si256(_mm256_srli_epi16(wv, 4), m3);
            __m256i c2 = _mm256_and_si256(_mm256_srli_epi16(wv, 2), m3);
            __m256i c3 = _mm256_and_si256(wv, m3);
#pragma GCC unroll 4
            for (int t = 0; t < TB; t++) {
                const int8_t *qb = q[t] + 128 * b;
                __m256i q0 = _mm256_loadu_si256((const __m256i *)qb);
                __m256i q1 = _mm256_loadu_si256((const __m256i *)(qb + 32));
                __m256i q2 = _mm256_loadu_si256((const __m256i *)(qb + 64));
                __m256i q3 = _mm256_loadu_si256((const __m256i *)(qb + 96));
#if BN_X86_VNNI
                __m256i *ac = acc[r * TB + t];
                ac[0] = _mm256_dpbusd_epi32(ac[0], c0, q0);
                ac[1 % NA] = _mm256_dpbusd_epi32(ac[1 % NA], c1, q1);
                ac[2 % NA] = _mm256_dpbusd_epi32(ac[2 % NA], c2, q2);
                ac[3 % NA] = _mm256_dpbusd_epi32(ac[3 % NA], c3, q3);
#else
                const __m256i s01 = _mm256_add_epi16(_mm256_maddubs_epi16(c0, q0), _mm256_maddubs_epi16(c1, q1));
                const __m256i s23 = _mm256_add_epi16(_mm256_maddubs_epi16(c2, q2), _mm256_maddubs_epi16(c3, q3));
                a16[r * TB + t] = _mm256_add_epi16(a16[r * TB + t], _mm256_add_epi16(s01, s23));
#endif
            }
        }
#if !BN_X86_VNNI
        if ((b & 7) == 7 || b + 1 == nb)
#pragma GCC unroll 16
            for (int i = 0; i < RB * TB; i++) {
                acc[i] = _mm256_add_epi32(acc[i], _mm256_madd_epi16(a16[i], _mm256_set1_epi16(1)));
                a16[i] = _mm256_setzero_si256();
            }
#endif
    }
#if BN_X86_VNNI
#pragma GCC unroll 16
    for (int i = 0; i < RB * TB; i++)
        out[i] = NA == 4 ? x86_hsum_i32(_mm256_add_epi32(_mm256_add_epi32(acc[i][0], acc[i][1]),
                                                         _mm256_add_epi32(acc[i][2], acc[i][3])))
                         : x86_hsum_i32(_mm256_add_epi32(acc[i][0], acc[i][1]));
#else
#pragma GCC unroll 16
    for (int i = 0; i < RB * TB; i++) out[i] = x86_hsum_i32(acc[i]);
#endif
}

/* Rows [r0, r1) x all tokens. Decode (one token) runs 4 rows at a time so the
 * activation loads are shared; prefill runs 1 row x 4 tokens so each block's
 * codes are unpacked once for 4 tokens. The epilogue is bn_i2s_out. */
static void x86_mm_i2s(const bn_qmat *W, const bn_act *a, int64_t r0, int64_t r1, float *Y, int64_t ldy) {
    const int64_t nb = W->K / 128;
    const int8_t *qa = (const int8_t *)a->data;
    int t = 0;
    for (; t + 4 <= a->n; t += 4) {
        const int8_t *q[4] = { qa + (size_t)t * a->row_bytes, qa + (size_t)(t + 1) * a->row_bytes,
                               qa + (size_t)(t + 2) * a->row_bytes, qa + (size_t)(t + 3) * a->row_bytes };
        int64_t r = r0;
#if BN_X86_VNNI
        /* 2 rows x 4 tokens: 16 accumulators + 8 code vectors fit 32 registers */
        for (; r + 2 <= r1; r += 2) {
            const uint8_t *w[2] = { W->data + (size_t)r * W->row_bytes, W->data + (size_t)(r + 1) * W->row_bytes };
            int32_t s[8];
            x86_i2s_tile(w, 2, q, 4, nb, s);
            for (int i = 0; i < 2; i++)
                for (int j = 0; j < 4; j++)
                    Y[(int64_t)(t + j) * ldy + r + i] =
                        bn_i2s_out(s[i * 4 + j], a->sum[t + j], a->scale[t + j], W->scale);
        }
#endif
        for (; r < r1; r++) {
            const uint8_t *w[1] = { W->data + (size_t)r * W->row_bytes };
            int32_t s[4];
            x86_i2s_tile(w, 1, q, 4, nb, s);
            for (int j = 0; j < 4; j++)
                Y[(int64_t)(t + j) * ldy + r] = bn_i2s_out(s[j], a->sum[t + j], a->scale[t + j], W->scale);
        }
    }
    for (; t < a->n; t++) {
        const int8_t *q[1] = { qa + (size_t)t * a->row_bytes };
        int64_t r = r0;
        for (; r + 4 <= r1; r += 4) {
            const uint8_t *w[4] = { W->data + (size_t)r * W->row_bytes, W->data + (size_t)(r + 1) * W->row_bytes,
                                    W->data + (size_t)(r + 2) * W->row_bytes,
                                    W->data + (size_t)(r + 3) * W->row_bytes };
            int32_t s[4];
            x86_i2s_tile(w, 4, q, 1, nb, s);
            for (int j = 0; j < 4; j++)
                Y[(int64_t)t * ldy + r + j] = bn_i2s_out(s[j], a->sum[t], a->scale[t], W->scale);
        }
        for (; r < r1; r++) {
            const uint8_t *w[1] = { W->data + (size_t)r * W->row_bytes };
            int32_t s[1];
            x86_i2s_tile(w, 1, q, 1, nb, s);
            Y[(int64_t)t * ldy + r] = bn_i2s_out(s[0], a->sum[t], a->scale[t], W->scale);
        }
    }
}

/* ---- TQ2_0 -----------------------------------------------------------------
 * Block: qs[64] then f16 d. Byte 32c+m bits 2n hold element 128c+32n+m, so
 * one 32-byte load gives 4 code vectors for 128 contiguous q8_K values.
 * sum (code-1)*q = sum code*q - sum q, with sum q from the q8_K bsums. Per
 * block the int32 total is exact; the float chain is the scalar one. */
/* The 8 code vectors of a block: v[4c + n] holds bits 2n of bytes 32c.. */
BN_AI void x86_tq2_codes(const bn_block_tq2_0 *x, __m256i *v) {
    const __m256i m3 = _mm256_set1_epi8(3);
    for (int c = 0; c < 2; c++) {
        __m256i wv = _mm256_loadu_si256((const __m256i *)(x->qs + 32 * c));
        v[4 * c] = _mm256_and_si256(wv, m3);
        v[4 * c + 1] = _mm256_and_si256(_mm256_srli_epi16(wv, 2), m3);
        v[4 * c + 2] = _mm256_and_si256(_mm256_srli_epi16(wv, 4), m3);
        v[4 * c + 3] = _mm256_and_si256(_mm256_srli_epi16(wv, 6), m3);
    }
}

/* The block's 8 int32 lanes against one q8_K block, from unpacked codes. */
BN_AI __m256i x86_tq2_dot(const __m256i *v, const bn_block_q8_K *y) {
    __m256i acc = _mm256_sub_epi32(_mm256_setzero_si256(),
                                   _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)y->bsums),
                                                     _mm256_set1_epi16(1)));
#if BN_X86_VNNI
    __m256i part[2] = { acc, _mm256_setzero_si256() }; /* two independent vpdpbusd chains */
#define BN_TQ2_PART(c) part[c]
#else
#define BN_TQ2_PART(c) acc
#endif
    for (int c = 0; c < 2; c++) {
        const int8_t *qb = y->qs + 128 * c;
        BN_TQ2_PART(c) = x86_dot4(BN_TQ2_PART(c), v[4 * c], _mm256_loadu_si256((const __m256i *)qb),
                                  v[4 * c + 1], _mm256_loadu_si256((const __m256i *)(qb + 32)),
                                  v[4 * c + 2], _mm256_loadu_si256((const __m256i *)(qb + 64)),
                                  v[4 * c + 3], _mm256_loadu_si256((const __m256i *)(qb + 96)));
    }
#undef BN_TQ2_PART
#if BN_X86_VNNI
    return _mm256_add_epi32(part[0], part[1]);
#else
    return acc;
#endif
}

BN_AI __m256i x86_tq2_block(const bn_block_tq2_0 *x, const bn_block_q8_K *y) {
    __m256i v[8];
    x86_tq2_codes(x, v);
    return x86_tq2_dot(v, y);
}

/* Horizontal sums of 8 vectors at once: lane i of the result = sum of v[i]. */
BN_AI __m256i x86_hsum8(const __m256i *v) {
    __m256i a01 = _mm256_hadd_epi32(v[0], v[1]), a23 = _mm256_hadd_epi32(v[2], v[3]);
    __m256i a45 = _mm256_hadd_epi32(v[4], v[5]), a67 = _mm256_hadd_epi32(v[6], v[7]);
    __m256i a = _mm256_hadd_epi32(a01, a23), b = _mm256_hadd_epi32(a45, a67);
    return _mm256_add_epi32(_mm256_permute2x128_si256(a, b, 0x20), _mm256_permute2x128_si256(a, b, 0x31));
}

/* The TQ matmul loop, shared by TQ2_0 and TQ1_0: row outer, token inner (a
 * row's blocks stay in L1 across tokens). Per block the eight int32 lanes
 * (lane L = elements with (e % 32) / 4 == L, minus bsums 2L, 2L+1) go to
 * float and into eight fma lanes, reduced once at the end: llama.cpp's AVX2
 * order, as the scalar reference. */
#define BN_X86_MM_TQ(NAME, BLOCK_T, BLOCK_FN)                                                              \
    static void NAME(const bn_qmat *W, const bn_act *a, int64_t r0, int64_t r1, float *Y, int64_t ldy) {    \
        const int64_t nb = W->K / BN_QK_K;                                                                 \
        for (int64_t r = r0; r < r1; r++) {                                                                \
            const BLOCK_T *x = (const BLOCK_T *)(W->data + (size_t)r * W->row_bytes);                      \
            for (int t = 0; t < a->n; t++) {                                                               \
                const bn_block_q8_K *y = (const bn_block_q8_K *)((const uint8_t *)a->data + (size_t)t * a->row_bytes); \
                __m256 acc = _mm256_setzero_ps();                                                          \
                for (int64_t i = 0; i < nb; i++) {                                                         \
                    /* rows are adjacent: one stream, prefetched 4 KB ahead */                             \
                    _mm_prefetch((const char *)&x[i] + BN_PF_AHEAD, _MM_HINT_T0);                          \
                    _mm_prefetch((const char *)&x[i] + BN_PF_AHEAD + 64, _MM_HINT_T0);                     \
                    const __m256 d = _mm256_set1_ps(y[i].d * _cvtsh_ss(x[i].d));                           \
                    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(BLOCK_FN(&x[i], &y[i])), d, acc);             \
                }                                                                                          \
                float l8[8];                                                                               \
                _mm256_storeu_ps(l8, acc);                                                                 \
                Y[(int64_t)t * ldy + r] = bn_hsum8f(l8);                                                   \
            }                                                                                              \
        }                                                                                                  \
    }

BN_X86_MM_TQ(x86_mm_tq2_0_1, bn_block_tq2_0, x86_tq2_block)

/* TQ2_0 for a batch: tiles of 4 tokens share each block's unpacked codes
 * (per token the same lanes and fma chain as above, so bitwise the same);
 * one token and the tail tokens take the loop above. Token tiles are outer:
 * a tile's activations (4 x 2.9 KB for K = 2560) stay in L1 while the rows
 * stream past; rows outer re-read every token's activations from L3 per row
 * (1.5 MB for 512 tokens) and ran ~20% slower on a 512-token batch. */
static void x86_mm_tq2_0(const bn_qmat *W, const bn_act *a, int64_t r0, int64_t r1, float *Y, int64_t ldy) {
    const int64_t nb = W->K / BN_QK_K;
    const int n4 = a->n & ~3;
    if (n4 > 0) {
        for (int t = 0; t < n4; t += 4) {
            const bn_block_q8_K *y[4];
            for (int j = 0; j < 4; j++)
                y[j] = (const bn_block_q8_K *)((const uint8_t *)a->data + (size_t)(t + j) * a->row_bytes);
            for (int64_t r = r0; r < r1; r++) {
                const bn_block_tq2_0 *x = (const bn_block_tq2_0 *)(W->data + (size_t)r * W->row_bytes);
                __m256 acc[4] = { _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps() };
                for (int64_t i = 0; i < nb; i++) {
                    __m256i v[8];
                    x86_tq2_codes(&x[i], v);
                    const float wd = _cvtsh_ss(x[i].d);
#pragma GCC unroll 4
                    for (int j = 0; j < 4; j++)
                        acc[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(x86_tq2_dot(v, &y[j][i])), _mm256_set1_ps(y[j][i].d * wd),
                                                 acc[j]);
                }
                for (int j = 0; j < 4; j++) {
                    float l8[8];
                    _mm256_storeu_ps(l8, acc[j]);
                    Y[(int64_t)(t + j) * ldy + r] = bn_hsum8f(l8);
                }
            }
        }
    }
    if (n4 < a->n) {
        bn_act tail = *a;
        tail.n = a->n - n4;
        tail.data = (uint8_t *)a->data + (size_t)n4 * a->row_bytes;
        x86_mm_tq2_0_1(W, &tail, r0, r1, Y + (int64_t)n4 * ldy, ldy);
    }
}

/* ---- Q8_0 ------------------------------------------------------------------
 * s8 x s8 through the unsigned path: |w| times q with w's sign moved onto q.
 * Exact as long as q != -128, which q8_0 activations never are (|q| <= 127). */
BN_AI __m256i x86_q8_0_block(const bn_block_q8_0 *x, const bn_block_q8_0 *y) {
    __m256i wv = _mm256_loadu_si256((const __m256i *)x->qs);
    __m256i qv = _mm256_loadu_si256((const __m256i *)y->qs);
    __m256i ax = _mm256_sign_epi8(wv, wv), sy = _mm256_sign_epi8(qv, wv);
#if BN_X86_VNNI
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), ax, sy);
#else
    return _mm256_madd_epi16(_mm256_maddubs_epi16(ax, sy), _mm256_set1_epi16(1));
#endif
}

/* Eight adjacent rows against one token: row j's block dot lands in lane j
 * (x86_hsum8), and the eight per-row chains sumf += (float)s * (dx * dy) run
 * as the lanes of one vector, block after block: each row keeps the scalar
 * reference's order (mul, mul, add; no fma), and the chain latency and the
 * scale conversions are paid once per eight rows instead of per row. */
/* gap: rows 4-7 lie gap bytes further on (two runs of 4 rows read side by
 * side, each prefetched as its own linear stream, pf and pf + gap); 0: the
 * 8 rows are adjacent, one stream. */
BN_AI void x86_q8_0_tile8(const uint8_t *w0, size_t row_bytes, int64_t nb, const bn_block_q8_0 *y, const char *pf,
                          const int L2, const size_t gap, float *out) {
    const bn_block_q8_0 *x[8];
    for (int j = 0; j < 8; j++)
        x[j] = (const bn_block_q8_0 *)(w0 + (gap && j >= 4 ? gap + (size_t)(j - 4) * row_bytes : (size_t)j * row_bytes));
    __m256 acc = _mm256_setzero_ps();
    /* the row loops unrolled: rolled, gcc 12 kept x[] and v[] on the stack
     * and the one-token Q8_0 head ran compute bound (20 GB/s per core on
     * the Zen 5 VM, where the I2_S GEMVs stream 28) */
    for (int64_t i = 0; i < nb; i++) {
        if (pf && gap) /* each run's 4 x 34 bytes per step, linearly ahead */
#pragma GCC unroll 3
            for (int j = 0; j < 3; j++) {
                x86_prefetch(pf + (size_t)i * 4 * sizeof(bn_block_q8_0) + 64 * j, L2);
                x86_prefetch(pf + gap + (size_t)i * 4 * sizeof(bn_block_q8_0) + 64 * j, L2);
            }
        else if (pf) /* the tile's 8 x 34 bytes per step, as one linear stream ahead */
#pragma GCC unroll 5
            for (int j = 0; j < 5; j++) x86_prefetch(pf + (size_t)i * 8 * sizeof(bn_block_q8_0) + 64 * j, L2);
        __m256i v[8];
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++) v[j] = x86_q8_0_block(&x[j][i], &y[i]);
        const __m256 s = _mm256_cvtepi32_ps(x86_hsum8(v));
        const __m128i dh = _mm_setr_epi16((short)x[0][i].d, (short)x[1][i].d, (short)x[2][i].d, (short)x[3][i].d,
                                          (short)x[4][i].d, (short)x[5][i].d, (short)x[6][i].d, (short)x[7][i].d);
        const __m256 d = _mm256_mul_ps(_mm256_cvtph_ps(dh), _mm256_set1_ps(_cvtsh_ss(y[i].d)));
        acc = _mm256_add_ps(acc, _mm256_mul_ps(s, d));
    }
    _mm256_storeu_ps(out, acc);
}

/* One row against one token, for decode: eight blocks' exact dots at a time
 * (x86_hsum8 puts block i+k's in lane k), their products (float)s *
 * (dx * dy) as a vector, then added into the row's one float chain in block
 * order, as the scalar reference does. A row at a time is one sequential
 * stream; the 8-row tile's eight streams 2720 bytes apart streamed at 0.70
 * of the read on the SPR VM (and at the L3 rate from L3, so not compute).
 * dyf: the token's block scales as floats; pf: prefetch (x86_prefetch). */
BN_AI float x86_q8_0_row(const bn_block_q8_0 *x, const bn_block_q8_0 *y, const float *dyf, int64_t nb, const size_t pf,
                         const int L2) {
    float sumf = 0.0f;
    int64_t i = 0;
    for (; i + 8 <= nb; i += 8) {
#pragma GCC unroll 5
        for (int j = 0; j < 5; j++) x86_prefetch((const char *)&x[i] + pf + 64 * j, L2);
        __m256i v[8];
#pragma GCC unroll 8
        for (int k = 0; k < 8; k++) v[k] = x86_q8_0_block(&x[i + k], &y[i + k]);
        const __m256 s = _mm256_cvtepi32_ps(x86_hsum8(v));
        const __m128i dh = _mm_setr_epi16((short)x[i].d, (short)x[i + 1].d, (short)x[i + 2].d, (short)x[i + 3].d,
                                          (short)x[i + 4].d, (short)x[i + 5].d, (short)x[i + 6].d, (short)x[i + 7].d);
        const __m256 d = _mm256_mul_ps(_mm256_cvtph_ps(dh), _mm256_loadu_ps(dyf + i));
        float p[8];
        _mm256_storeu_ps(p, _mm256_mul_ps(s, d));
#pragma GCC unroll 8
        for (int k = 0; k < 8; k++) sumf += p[k];
    }
    for (; i < nb; i++) {
        const int32_t s = x86_hsum_i32(x86_q8_0_block(&x[i], &y[i]));
        sumf += (float)s * (_cvtsh_ss(x[i].d) * dyf[i]);
    }
    return sumf;
}

/* One token, rows start[j] + i for j < 2, i < len (a multiple of 4, run 1
 * after run 0): 4 rows of each run in one x86_q8_0_tile8, each run's bytes
 * prefetched pf_one ahead of it (bn_kernels.mm_runs). */
BN_AI void x86_q8_0_runs(const bn_qmat *W, const bn_act *a, const int64_t *start, int64_t len, float *Y, const size_t pf_one,
                         const int L2) {
    const int64_t nb = W->K / BN_QK8_0;
    const size_t gap = (size_t)(start[1] - start[0]) * W->row_bytes;
    const bn_block_q8_0 *y = (const bn_block_q8_0 *)a->data;
    for (int64_t i = 0; i < len; i += 4) {
        const uint8_t *w0 = W->data + (size_t)(start[0] + i) * W->row_bytes;
        float out[8];
        x86_q8_0_tile8(w0, W->row_bytes, nb, y, (const char *)w0 + 4 * W->row_bytes + pf_one, L2, gap, out);
        for (int j = 0; j < 4; j++) {
            Y[start[0] + i + j] = out[j];
            Y[start[1] + i + j] = out[4 + j];
        }
    }
}

/* pf_one: the prefetch distance for one token (batches use BN_PF_AHEAD);
 * L2: prefetch into L2 (x86_prefetch) */
BN_AI void x86_mm_q8_0_pf(const bn_qmat *W, const bn_act *a, int64_t r0, int64_t r1, float *Y, int64_t ldy,
                          const size_t pf_one, const int L2, const int TWO) {
    const int64_t nb = W->K / BN_QK8_0;
    int64_t r = r0;
    if (TWO && a->n == 1) {
        /* one token: the range cut in two runs of `per` rows (a multiple of
         * 4), 4 rows of each in one tile (x86_q8_0_runs). Zen 5 VM, the Q8_0
         * head in rotation in one process, GB/s at 1 / 2 threads: one run of
         * 8-row tiles 20.2 / 45.9, two runs of 4 24.3 / 50.1, four of 2 23.6 /
         * 47.2, eight of 1 22.4 / 44.1 (a 4-stream read: 30.8 / 59.1); two
         * runs without prefetch 13.8 / 25.7. */
        const int64_t per = (r1 - r0) / 8 * 4, start[2] = { r0, r0 + per };
        x86_q8_0_runs(W, a, start, per, Y, pf_one, L2);
        r = r0 + 2 * per;
    }
    /* row tiles outer, tokens inner: the tile's blocks stay in L1 across tokens */
    for (; r + 8 <= r1; r += 8) {
        const uint8_t *w0 = W->data + (size_t)r * W->row_bytes;
        const char *pf = (const char *)w0 + 8 * W->row_bytes + (a->n == 1 ? pf_one : BN_PF_AHEAD);
        for (int t = 0; t < a->n; t++) {
            const bn_block_q8_0 *y = (const bn_block_q8_0 *)((const uint8_t *)a->data + (size_t)t * a->row_bytes);
            float out[8];
            x86_q8_0_tile8(w0, W->row_bytes, nb, y, t == 0 ? pf : NULL, L2, 0, out);
            for (int j = 0; j < 8; j++) Y[(int64_t)t * ldy + r + j] = out[j];
        }
    }
    for (; r < r1; r++) { /* the last r1 - r0 mod 8 rows one at a time, same chains */
        const bn_block_q8_0 *x = (const bn_block_q8_0 *)(W->data + (size_t)r * W->row_bytes);
        for (int t = 0; t < a->n; t++) {
            const bn_block_q8_0 *y = (const bn_block_q8_0 *)((const uint8_t *)a->data + (size_t)t * a->row_bytes);
            float sumf = 0.0f;
            for (int64_t i = 0; i < nb; i++) {
                int32_t s = x86_hsum_i32(x86_q8_0_block(&x[i], &y[i]));
                sumf += (float)s * (_cvtsh_ss(x[i].d) * _cvtsh_ss(y[i].d));
            }
            Y[(int64_t)t * ldy + r] = sumf;
        }
    }
}

static void x86_mm_q8_0(const bn_qmat *W, const bn_act *a, int64_t r0, int64_t r1, float *Y, int64_t ldy) {
    x86_mm_q8_0_pf(W, a, r0, r1, Y, ldy, BN_X86_VNNI ? BN_PF_STREAM : BN_PF_AHEAD, 0, BN_X86_VNNI);
}

/* ---- Q6_K ------------------------------------------------------------------
 * Per half (128 elements): ql[64h..] low/high nibbles and 2-bit pieces of
 * qh[32h..] form four vectors of 6-bit values v (0..63) for elements +0, +32,
 * +64, +96. sum (v-32)*q*scale = sum scale*(v*q) - 32 * sum scale*bsum: v*q
 * by vpmaddubsw (|pair| <= 63*128*2), scales applied by vpmaddwd with a
 * vector holding scale[2i] in the low and scale[2i+1] in the high 128 bits. */
BN_AI __m256i x86_q6k_block(const bn_block_q6_K *x, const bn_block_q8_K *y) {
    const __m256i m4 = _mm256_set1_epi8(0x0F), m3 = _mm256_set1_epi8(3);
    const __m128i sc8 = _mm_loadu_si128((const __m128i *)x->scales);
    __m256i acc = _mm256_slli_epi32(
        _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)y->bsums), _mm256_cvtepi8_epi16(sc8)), 5);
    acc = _mm256_sub_epi32(_mm256_setzero_si256(), acc);
    /* unrolled, so each shuffle below is a constant (rolled, gcc built it
     * with 7 instructions per use and spilled v[] to the stack) */
#pragma GCC unroll 2
    for (int h = 0; h < 2; h++) {
        __m256i ql0 = _mm256_loadu_si256((const __m256i *)(x->ql + 64 * h));
        __m256i ql1 = _mm256_loadu_si256((const __m256i *)(x->ql + 64 * h + 32));
        __m256i qh = _mm256_loadu_si256((const __m256i *)(x->qh + 32 * h));
        __m256i v[4];
        v[0] = _mm256_or_si256(_mm256_and_si256(ql0, m4), _mm256_slli_epi16(_mm256_and_si256(qh, m3), 4));
        v[1] = _mm256_or_si256(_mm256_and_si256(ql1, m4),
                               _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), m3), 4));
        v[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4),
                               _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), m3), 4));
        v[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                               _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), m3), 4));
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) {
            const int i = 4 * h + j; /* scale pair 2i, 2i+1 */
            const __m128i shuf = _mm_setr_epi8((char)(2 * i), (char)(2 * i), (char)(2 * i), (char)(2 * i), (char)(2 * i),
                                               (char)(2 * i), (char)(2 * i), (char)(2 * i), (char)(2 * i + 1),
                                               (char)(2 * i + 1), (char)(2 * i + 1), (char)(2 * i + 1), (char)(2 * i + 1),
                                               (char)(2 * i + 1), (char)(2 * i + 1), (char)(2 * i + 1));
            __m256i sc = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(sc8, shuf));
            __m256i p = _mm256_maddubs_epi16(v[j], _mm256_loadu_si256((const __m256i *)(y->qs + 128 * h + 32 * j)));
            acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p, sc));
        }
    }
    return acc;
}

/* Rows one at a time, prefetched 4 KB ahead on the first token: without
 * the prefetch one token streamed 9.8 GB/s from memory against 21.5 with it
 * (Zen 5 VM, AVX2 table, 1 thread), and a Q6_K head was slower than F16. */
static inline void x86_mm_q6_K(const bn_qmat *W, const bn_act *a, int64_t r0, int64_t r1, float *Y, int64_t ldy) {
    const int64_t nb = W->K / BN_QK_K;
    /* row outer, token inner: a row's blocks stay in L1 across tokens */
    for (int64_t r = r0; r < r1; r++) {
        const bn_block_q6_K *x = (const bn_block_q6_K *)(W->data + (size_t)r * W->row_bytes);
        for (int t = 0; t < a->n; t++) {
            const bn_block_q8_K *y = (const bn_block_q8_K *)((const uint8_t *)a->data + (size_t)t * a->row_bytes);
            float sumf = 0.0f;
            int64_t i = 0;
            for (; i + 8 <= nb; i += 8) {
                __m256i v[8];
                for (int j = 0; j < 8; j++) {
                    if (t == 0) { /* the row's first pass streams it from memory */
                        const char *pf = (const char *)&x[i + j] + BN_PF_AHEAD;
                        for (int l = 0; l < (int)sizeof *x; l += 64) _mm_prefetch(pf + l, _MM_HINT_T0);
                    }
                    v[j] = x86_q6k_block(&x[i + j], &y[i + j]);
                }
                int32_t s[8];
                _mm256_storeu_si256((__m256i *)s, x86_hsum8(v));
                for (int j = 0; j < 8; j++) sumf += (_cvtsh_ss(x[i + j].d) * y[i + j].d) * (float)s[j];
            }
            for (; i < nb; i++) {
                int32_t s = x86_hsum_i32(x86_q6k_block(&x[i], &y[i]));
                sumf += (_cvtsh_ss(x[i].d) * y[i].d) * (float)s;
            }
            Y[(int64_t)t * ldy + r] = sumf;
        }
    }
}

/* ---- TQ1_0 -----------------------------------------------------------------
 * Base-3 bytes: trit n of byte b is ((uint8)(b*3^n) * 3) >> 8. b*3^n mod 256
 * with byte adds and masked 16-bit shifts (x*9 = (x<<3 & 0xF8..) + x), then
 * (v*3) >> 8 per byte with vpmulhuw on the byte moved into the high half of a
 * 16-bit lane: mulhi(v<<8, 3) = (3v) >> 8. All exact. */
BN_AI __m256i x86_mul3(__m256i x) { return _mm256_add_epi8(x, _mm256_add_epi8(x, x)); }
BN_AI __m256i x86_mul9(__m256i x) {
    return _mm256_add_epi8(_mm256_and_si256(_mm256_slli_epi16(x, 3), _mm256_set1_epi8((char)0xF8)), x);
}
BN_AI __m256i x86_trit(__m256i v) {
    const __m256i three = _mm256_set1_epi16(3);
    __m256i lo = _mm256_mulhi_epu16(_mm256_slli_epi16(v, 8), three);
    __m256i hi = _mm256_mulhi_epu16(_mm256_and_si256(v, _mm256_set1_epi16((short)0xFF00)), three);
    return _mm256_or_si256(lo, _mm256_slli_epi16(hi, 8));
}

BN_AI __m256i x86_tq1_block(const bn_block_tq1_0 *x, const bn_block_q8_K *y) {
    __m256i acc = _mm256_sub_epi32(_mm256_setzero_si256(),
                                   _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)y->bsums),
                                                     _mm256_set1_epi16(1)));
    /* qs[0..31]: trit n of byte m = element 32n + m */
    __m256i b0 = _mm256_loadu_si256((const __m256i *)x->qs);
    __m256i b1 = x86_mul3(b0), b2 = x86_mul9(b0), b3 = x86_mul9(b1), b4 = x86_mul9(b2);
    acc = x86_dot4(acc, x86_trit(b0), _mm256_loadu_si256((const __m256i *)y->qs), x86_trit(b1),
                   _mm256_loadu_si256((const __m256i *)(y->qs + 32)), x86_trit(b2),
                   _mm256_loadu_si256((const __m256i *)(y->qs + 64)), x86_trit(b3),
                   _mm256_loadu_si256((const __m256i *)(y->qs + 96)));
    /* qs[32..47]: trit n of byte m = element 160 + 16n + m; pair (n=0,1), (2,3) in the
     * two 128-bit halves, and trit 4 with the qh part below */
    __m128i c16 = _mm_loadu_si128((const __m128i *)(x->qs + 32));
    __m256i c0 = _mm256_broadcastsi128_si256(c16);
    __m256i c01 = _mm256_blend_epi32(c0, x86_mul3(c0), 0xF0);   /* [b | 3b] */
    __m256i c23 = x86_mul9(c01);                                /* [9b | 27b] */
    __m256i c4 = x86_mul9(x86_mul9(c0));                        /* 81b in both halves */
    /* qh[0..3]: trit n of byte j = element 240 + 4n + j (n = 0..3) */
    uint32_t qh4;
    memcpy(&qh4, x->qh, 4);
    __m256i h0 = _mm256_set1_epi32((int)qh4);                   /* bytes j = 0..3 repeated */
    __m256i h01 = _mm256_blend_epi32(h0, x86_mul3(h0), 0xF0);   /* low: qh*1, high: qh*3 */
    __m256i h23 = x86_mul9(h01);                                /* low: qh*9, high: qh*27 */
    /* low 128 of h01 holds n=0 at bytes 0..3 (then repeats); build [n0 n1 n2 n3] as 16 bytes */
    __m256i th01 = x86_trit(h01), th23 = x86_trit(h23);
    __m128i tq = _mm_unpacklo_epi32(_mm256_castsi256_si128(th01), _mm256_extracti128_si256(th01, 1)); /* n0, n1 */
    __m128i tq23 = _mm_unpacklo_epi32(_mm256_castsi256_si128(th23), _mm256_extracti128_si256(th23, 1)); /* n2, n3 */
    tq = _mm_unpacklo_epi64(tq, tq23);
    __m256i last = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm256_castsi256_si128(x86_trit(c4))), tq, 1);
    acc = x86_dot4(acc, x86_trit(c01), _mm256_loadu_si256((const __m256i *)(y->qs + 160)), x86_trit(c23),
                   _mm256_loadu_si256((const __m256i *)(y->qs + 192)), last,
                   _mm256_loadu_si256((const __m256i *)(y->qs + 224)), x86_trit(b4),
                   _mm256_loadu_si256((const __m256i *)(y->qs + 128)));
    return acc;
}

BN_X86_MM_TQ(x86_mm_tq1_0, bn_block_tq1_0, x86_tq1_block)

/* bn_tq1_0_to_tq2_0 with ymm trits (see bn_mm_tq1_0_via_tq2). Codes go
 * out in element order (qs[0..31]: element 32n + m; qs[32..47], in the low
 * half of a second vector: element 160 + 16n + m; qh, in its high half's low
 * 4 bytes: element 240 + 4n + j for n < 4), then four to a byte (byte
 * 32c + m, bits 2n: element 128c + 32n + m). */
BN_AI void x86_tq1_to_tq2_row(const bn_block_tq1_0 *x, bn_block_tq2_0 *o, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        _Alignas(32) uint8_t codes[BN_QK_K];
        uint32_t qh4;
        memcpy(&qh4, x[i].qh, 4);
        __m256i b = _mm256_loadu_si256((const __m256i *)x[i].qs);
        __m256i c = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(x[i].qs + 32))),
                                            _mm_cvtsi32_si128((int)qh4), 1);
        for (int n = 0; n < 5; n++) {
            _mm256_store_si256((__m256i *)(codes + 32 * n), x86_trit(b));
            const __m256i tc = x86_trit(c);
            _mm_store_si128((__m128i *)(codes + 160 + 16 * n), _mm256_castsi256_si128(tc));
            if (n < 4) { /* trit n of qh byte j: byte j of the high half */
                const uint32_t t = (uint32_t)_mm_extract_epi32(_mm256_extracti128_si256(tc, 1), 0);
                memcpy(codes + 240 + 4 * n, &t, 4);
            }
            b = x86_mul3(b);
            c = x86_mul3(c);
        }
        for (int h = 0; h < 2; h++) {
            const uint8_t *cc = codes + 128 * h;
            __m256i q = _mm256_load_si256((const __m256i *)cc);
            q = _mm256_or_si256(q, _mm256_slli_epi16(_mm256_load_si256((const __m256i *)(cc + 32)), 2));
            q = _mm256_or_si256(q, _mm256_slli_epi16(_mm256_load_si256((const __m256i *)(cc + 64)), 4));
            q = _mm256_or_si256(q, _mm256_slli_epi16(_mm256_load_si256((const __m256i *)(cc + 96)), 6));
            _mm256_storeu_si256((__m256i *)(o[i].qs + 32 * h), q);
        }
        o[i].d = x[i].d;
    }
}

#endif
