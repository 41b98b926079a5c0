/* kernels_amx_avx512.c - I2_S prefill on Intel AMX (Sapphire Rapids and
 * later). One tdpbusd multiplies a 16 x 64 tile of unsigned bytes by a
 * 64 x 16 tile of signed bytes into 16 x 16 int32 sums: 16384 multiply-adds
 * in one instruction, 8-16x what vpdpbusd on a zmm does per cycle. The I2_S
 * codes (0, 1, 2) are the unsigned operand and the int8 activations the
 * signed one, so every sum is the exact integer the scalar reference forms
 * and the epilogue is bn_i2s_out: results are bitwise equal to it.
 *
 * Layout per call (rows [r0, r1), n tokens of one activation chunk):
 * - B: the activations of 16 tokens x 64 k per tile, in the "VNNI" order AMX
 *   wants (tile row kk holds, for each token, its 4 values k = 4kk..4kk+3),
 *   packed once per call for all tokens (zeros past the last token);
 * - A: a panel of 16 or 32 weight rows unpacked from 2 bits to one code per
 *   byte in k order, tile by tile, then used against every token tile;
 * - C: 2 x 2 tiles of 16 rows x 16 tokens accumulated over all of K.
 * Rows past the last multiple of 16 and batches under 16 tokens take the
 * VNNI kernel. The tile instructions are written as inline asm with memory
 * clobbers (the compiler's intrinsics do not tell it that tileloadd reads and
 * tilestored writes memory), so no -mamx flag is needed to build this file.
 *
 * Using AMX needs the kernel's permission (arch_prctl ARCH_REQ_XCOMP_PERM,
 * asked in bn_kernels_for); without it the table is never chosen. */
#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"

#define AMX_ROWS 16  /* rows of a tile (weights rows in A, tokens in C's columns) */
#define AMX_KB 64    /* bytes of k per tile row of A */
#define AMX_TILE 1024 /* bytes of one 16 x 64 tile */

/* The tile configuration (palette 1): eight 16 x 64-byte tiles. tmm0-3 hold
 * the C sums, tmm4-5 the weight tiles, tmm6-7 the activation tiles. */
typedef struct amx_cfg {
    uint8_t palette_id, start_row;
    uint8_t reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} amx_cfg;
_Static_assert(sizeof(amx_cfg) == 64, "ldtilecfg reads 64 bytes");

#define AMX_LOAD(t, p) __asm__ volatile("tileloadd (%0,%1,1), %%tmm" #t ::"r"(p), "r"((long)AMX_KB) : "memory")
#define AMX_STORE(t, p) __asm__ volatile("tilestored %%tmm" #t ", (%0,%1,1)" ::"r"(p), "r"((long)AMX_KB) : "memory")
#define AMX_ZERO(t) __asm__ volatile("tilezero %%tmm" #t ::)
/* tmm c += tmm a (u8, weights) . tmm b (s8, activations) */
#define AMX_DPBUSD(c, a, b) __asm__ volatile("tdpbusd %%tmm" #b ", %%tmm" #a ", %%tmm" #c ::)

static void amx_config(void) {
    amx_cfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette_id = 1;
    for (int t = 0; t < 8; t++) {
        cfg.colsb[t] = AMX_KB;
        cfg.rows[t] = AMX_ROWS;
    }
    __asm__ volatile("ldtilecfg %0" ::"m"(cfg) : "memory");
}

static void amx_release(void) { __asm__ volatile("tilerelease" ::: "memory"); }

/* Tokens [16 tt, 16 tt + 16) of q, all of K, into B's tiles for that token
 * tile: tile kc at B + kc * AMX_TILE, row kk = for each token nn its dwords
 * k = 64 kc + 4 kk .. + 3. A dword transpose; tokens past n are zeros. */
static void amx_pack_acts(const int8_t *q, size_t row_bytes, int n, int tt, int64_t K, uint8_t *B) {
    const int64_t KC = K / AMX_KB;
    for (int nn = 0; nn < AMX_ROWS; nn++) {
        const int t = tt * AMX_ROWS + nn;
        for (int64_t kc = 0; kc < KC; kc++) {
            uint32_t *dst = (uint32_t *)(B + kc * AMX_TILE) + nn;
            if (t >= n) {
                for (int kk = 0; kk < AMX_ROWS; kk++) dst[kk * AMX_ROWS] = 0;
                continue;
            }
            uint32_t src[AMX_ROWS];
            memcpy(src, q + (size_t)t * row_bytes + kc * AMX_KB, sizeof src);
            for (int kk = 0; kk < AMX_ROWS; kk++) dst[kk * AMX_ROWS] = src[kk];
        }
    }
}

/* RA x 16 weight rows from w0 (row stride rb) as one code per byte in k
 * order: tile (kc, j) at A + (kc * RA + j) * AMX_TILE. An I2_S block is 32
 * bytes holding k = 32 g + i in bits 6 - 2g of byte i, so a 32-byte load
 * broadcast to both halves of a zmm and shifted by 6 | 4 (then 2 | 0) gives
 * the 64 codes of k = 0..63 (then 64..127) in order. */
static void amx_unpack_rows(const uint8_t *w0, size_t rb, int RA, int64_t nb, uint8_t *A) {
    const __m512i m3 = _mm512_set1_epi8(3);
    const __m512i sh_lo = _mm512_inserti64x4(_mm512_set1_epi16(6), _mm256_set1_epi16(4), 1);
    const __m512i sh_hi = _mm512_inserti64x4(_mm512_set1_epi16(2), _mm256_set1_epi16(0), 1);
    for (int i = 0; i < RA * AMX_ROWS; i++) {
        const uint8_t *w = w0 + (size_t)i * rb;
        uint8_t *a = A + (size_t)(i / AMX_ROWS) * AMX_TILE + (size_t)(i % AMX_ROWS) * AMX_KB;
        for (int64_t b = 0; b < nb; b++) {
            const __m512i v = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(w + 32 * b)));
            _mm512_store_si512((void *)(a + (size_t)(2 * b) * RA * AMX_TILE), _mm512_and_si512(_mm512_srlv_epi16(v, sh_lo), m3));
            _mm512_store_si512((void *)(a + (size_t)(2 * b + 1) * RA * AMX_TILE), _mm512_and_si512(_mm512_srlv_epi16(v, sh_hi), m3));
        }
    }
}

/* C[j * TB + i] (16 rows x 16 tokens int32, row stride 64 bytes) = weight
 * tile rows j of A times token tile i of B over all KC k-tiles; B's second
 * token tile starts KC tiles after the first. */
static inline __attribute__((always_inline)) void amx_block(const uint8_t *A, const uint8_t *B, int64_t KC, const int RA,
                                                            const int TB, int32_t *C) {
    AMX_ZERO(0);
    if (TB == 2) AMX_ZERO(1);
    if (RA == 2) {
        AMX_ZERO(2);
        if (TB == 2) AMX_ZERO(3);
    }
    const uint8_t *b1 = B + KC * AMX_TILE;
    for (int64_t kc = 0; kc < KC; kc++) {
        const uint8_t *ak = A + kc * RA * AMX_TILE;
        AMX_LOAD(4, ak);
        AMX_LOAD(6, B + kc * AMX_TILE);
        AMX_DPBUSD(0, 4, 6);
        if (TB == 2) {
            AMX_LOAD(7, b1 + kc * AMX_TILE);
            AMX_DPBUSD(1, 4, 7);
        }
        if (RA == 2) {
            AMX_LOAD(5, ak + AMX_TILE);
            AMX_DPBUSD(2, 5, 6);
            if (TB == 2) AMX_DPBUSD(3, 5, 7);
        }
    }
    AMX_STORE(0, C);
    if (TB == 2) AMX_STORE(1, C + 256);
    if (RA == 2) {
        AMX_STORE(2, C + 256 * TB);
        if (TB == 2) AMX_STORE(3, C + 256 * TB + 256);
    }
}

/* Transpose 16 x 16 floats in registers (r[i] = row i becomes column i):
 * pairs of rows interleaved, then pairs of pairs, then 128-bit lanes twice. */
static inline __attribute__((always_inline)) void amx_transpose16(__m512 r[16]) {
    __m512 t[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++) { /* r[4i + c], 128-bit lane L: rows 4i..4i+3 of column 4L + c */
        const __m512d a = _mm512_castps_pd(t[4 * i]), b = _mm512_castps_pd(t[4 * i + 1]);
        const __m512d c = _mm512_castps_pd(t[4 * i + 2]), d = _mm512_castps_pd(t[4 * i + 3]);
        r[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
        r[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
        r[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
        r[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
    }
    for (int c = 0; c < 4; c++) {
        t[c] = _mm512_shuffle_f32x4(r[c], r[4 + c], 0x88);
        t[4 + c] = _mm512_shuffle_f32x4(r[c], r[4 + c], 0xdd);
        t[8 + c] = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0x88);
        t[12 + c] = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0xdd);
    }
    for (int c = 0; c < 4; c++) {
        r[c] = _mm512_shuffle_f32x4(t[c], t[8 + c], 0x88);
        r[8 + c] = _mm512_shuffle_f32x4(t[c], t[8 + c], 0xdd);
        r[4 + c] = _mm512_shuffle_f32x4(t[4 + c], t[12 + c], 0x88);
        r[12 + c] = _mm512_shuffle_f32x4(t[4 + c], t[12 + c], 0xdd);
    }
}

/* One C tile (16 rows x 16 tokens) through bn_i2s_out's formula, 16 tokens
 * per vector (sub, div, mul in its order: the same roundings), then
 * transposed so each token's 16 outputs are one store into its row of Y.
 * nt: tokens from the tile's first to the batch's end (past 16: all 16). */
static void amx_epilogue(const int32_t *c, const int32_t *sum, const float *scale, int nt, float w_scale, float *y,
                         int64_t ldy) {
    const __mmask16 valid = nt >= AMX_ROWS ? 0xffff : (__mmask16)((1u << nt) - 1);
    const __m512 sumf = _mm512_cvtepi32_ps(_mm512_maskz_loadu_epi32(valid, sum));
    const __m512 scl = _mm512_mask_loadu_ps(_mm512_set1_ps(1.0f), valid, scale);
    const __m512 ws = _mm512_set1_ps(w_scale);
    __m512 f[16];
    for (int m = 0; m < AMX_ROWS; m++)
        f[m] = _mm512_mul_ps(_mm512_div_ps(_mm512_sub_ps(_mm512_cvtepi32_ps(_mm512_load_si512((const void *)(c + 16 * m))), sumf), scl), ws);
    amx_transpose16(f);
    for (int nn = 0; nn < nt && nn < AMX_ROWS; nn++) _mm512_storeu_ps(y + (int64_t)nn * ldy, f[nn]);
}

void bn_mm_i2s_amx(const bn_qmat *W, const bn_act *a, int64_t r0, int64_t r1, float *Y, int64_t ldy) {
    const int n = a->n;
    const int64_t K = W->K, nb = K / 128, KC = K / AMX_KB;
    const int64_t r16 = r0 + ((r1 - r0) & ~(int64_t)(AMX_ROWS - 1));
    if (n < AMX_ROWS || r16 == r0) {
        bn_mm_i2s_vnni(W, a, r0, r1, Y, ldy);
        return;
    }
    const int T16 = (n + AMX_ROWS - 1) / AMX_ROWS;
    const size_t bbytes = (size_t)T16 * (size_t)KC * AMX_TILE, abytes = 2 * (size_t)KC * AMX_TILE;
    uint8_t *B = aligned_alloc(64, bbytes + abytes);
    if (!B) { /* no room for the packed operands: the same sums by the VNNI kernel */
        bn_mm_i2s_vnni(W, a, r0, r1, Y, ldy);
        return;
    }
    uint8_t *A = B + bbytes;
    for (int tt = 0; tt < T16; tt++)
        amx_pack_acts((const int8_t *)a->data, a->row_bytes, n, tt, K, B + (size_t)tt * KC * AMX_TILE);
    _Alignas(64) int32_t C[4 * 256];
    amx_config();
    for (int64_t r = r0; r < r16;) {
        const int RA = r + 2 * AMX_ROWS <= r16 ? 2 : 1;
        amx_unpack_rows(W->data + (size_t)r * W->row_bytes, W->row_bytes, RA, nb, A);
        for (int tt = 0; tt < T16;) {
            const int TB = tt + 2 <= T16 ? 2 : 1;
            const uint8_t *Bt = B + (size_t)tt * KC * AMX_TILE;
            if (RA == 2 && TB == 2) amx_block(A, Bt, KC, 2, 2, C);
            else if (RA == 2) amx_block(A, Bt, KC, 2, 1, C);
            else if (TB == 2) amx_block(A, Bt, KC, 1, 2, C);
            else amx_block(A, Bt, KC, 1, 1, C);
            for (int j = 0; j < RA; j++)
                for (int i = 0; i < TB; i++) {
                    const int t0 = (tt + i) * AMX_ROWS;
                    amx_epilogue(C + 256 * (j * TB + i), a->sum + t0, a->scale + t0, n - t0, W->scale,
                                 Y + (int64_t)t0 * ldy + r + AMX_ROWS * j, ldy);
                }
            tt += TB;
        }
        r += (int64_t)RA * AMX_ROWS;
    }
    amx_release();
    free(B);
    if (r16 < r1) bn_mm_i2s_vnni(W, a, r16, r1, Y, ldy);
}
