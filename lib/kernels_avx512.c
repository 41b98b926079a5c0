/* kernels_avx512.c - AVX-512 tables. With VNNI (Zen 4, Ice Lake and later)
 * the integer kernels use vpdpbusd (u8 x s8 -> s32, exact) on 256-bit
 * vectors via the shared bodies in kernels_x86.h; float kernels and the
 * activation quantizers are the AVX2 ones. Without VNNI the table is the
 * AVX2 code under the avx512 name (slots report "avx2"). */
#define BN_X86_VNNI 1
#include "kernels_x86.h"

/* ---- I2_S decode (one token) with 512-bit VNNI ---------------------------------
 * A GEMV streams every weight byte once, so it must unpack faster than memory
 * delivers. Two blocks of a row fill one zmm (64 contiguous code bytes); the
 * codes stay in place under four masks (0xC0, 0x30, 0x0C, 0x03: code times 64,
 * 16, 4, 1), each into its own vpdpbusd accumulator, and the four sums are
 * shifted back at the end (exact: each is a multiple of its scale) - 4 ops of
 * unpacking per 64 bytes instead of 14 with shifts on ymm. The activations of
 * group g of blocks (b, b+1) are the two 32-byte pieces joined. Lane sums stay
 * below 2^31 for nb < 40000 (each vpdpbusd adds at most 4*192*128 per lane);
 * longer rows take the ymm tile. The 4 rows of a tile are adjacent, so the
 * tile is one contiguous stream: it is prefetched linearly, a tile ahead plus
 * BN_PF_STREAM (prefetching each row ahead fell into rows already being
 * loaded). */
/* q repacked for the one-token GEMV: per block pair (b, b+1) and group g, the
 * 32 activations of group g of block b, then those of block b+1, so one zmm
 * load gives what the tile otherwise joins from two loads and an insert (the
 * GEMV was compute bound on one core: 26 GB/s against the F16 head's 35). */
BN_AI void z_i2s_repack(const int8_t *q, int64_t nb, int8_t *qr) {
    for (int64_t b = 0; b + 2 <= nb; b += 2)
        for (int g = 0; g < 4; g++) {
            const __m256i lo = _mm256_loadu_si256((const __m256i *)(q + 128 * b + 32 * g));
            const __m256i hi = _mm256_loadu_si256((const __m256i *)(q + 128 * (b + 1) + 32 * g));
            _mm512_store_si512((void *)(qr + 128 * b + 64 * g), _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1));
        }
}

/* The four field masks of the masked form (code times 64, 16, 4, 1) and R
 * rows' zeroed accumulators; the row's sum from its four accumulators, each
 * shifted back. */
BN_AI void z_i2s_start(__m512i m[4], __m512i acc[][4], const int R) {
    m[0] = _mm512_set1_epi8((char)0xC0);
    m[1] = _mm512_set1_epi8(0x30);
    m[2] = _mm512_set1_epi8(0x0C);
    m[3] = _mm512_set1_epi8(0x03);
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int g = 0; g < 4; g++) acc[r][g] = _mm512_setzero_si512();
}
BN_AI int32_t z_i2s_fold(const __m512i *acc) {
    const __m512i s = _mm512_add_epi32(_mm512_add_epi32(_mm512_srai_epi32(acc[0], 6), _mm512_srai_epi32(acc[1], 4)),
                                       _mm512_add_epi32(_mm512_srai_epi32(acc[2], 2), acc[3]));
    return _mm512_reduce_add_epi32(s);
}

/* qr: q as z_i2s_repack leaves it, or NULL to join the pieces here */
BN_AI void z_i2s_gemv_tile(const uint8_t *w0, size_t rb, const int RB, const int8_t *q, const int8_t *qr, int64_t nb,
                           const size_t PF, const int L2, int32_t *out) {
    __m512i m[4], acc[4][4];
    z_i2s_start(m, acc, RB);
    const char *pf = (const char *)w0 + (size_t)RB * rb + PF;
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2) {
        const int8_t *qb = q + 128 * b;
        __m512i qg[4];
#pragma GCC unroll 4
        for (int g = 0; g < 4; g++)
            qg[g] = qr ? _mm512_loadu_si512((const void *)(qr + 128 * b + 64 * g))
                       : _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(qb + 32 * g))),
                                            _mm256_loadu_si256((const __m256i *)(qb + 128 + 32 * g)), 1);
#pragma GCC unroll 4
        for (int r = 0; r < RB; r++) x86_prefetch(pf + (size_t)RB * 32 * b + 64 * r, L2);
#pragma GCC unroll 4
        for (int r = 0; r < RB; r++) {
            __m512i wv = _mm512_loadu_si512((const void *)(w0 + (size_t)r * rb + 32 * b));
            acc[r][0] = _mm512_dpbusd_epi32(acc[r][0], _mm512_and_si512(wv, m[0]), qg[0]);
            acc[r][1] = _mm512_dpbusd_epi32(acc[r][1], _mm512_and_si512(wv, m[1]), qg[1]);
            acc[r][2] = _mm512_dpbusd_epi32(acc[r][2], _mm512_and_si512(wv, m[2]), qg[2]);
            acc[r][3] = _mm512_dpbusd_epi32(acc[r][3], _mm512_and_si512(wv, m[3]), qg[3]);
        }
    }
    int32_t tail[4] = {0, 0, 0, 0};
    if (b < nb) { /* odd block count: the last block with the ymm tile */
        const uint8_t *w[4] = { w0 + 32 * b, w0 + rb + 32 * b, w0 + 2 * rb + 32 * b, w0 + 3 * rb + 32 * b };
        const int8_t *qt[1] = { q + 128 * b };
        x86_i2s_tile(w, RB, qt, 1, 1, tail);
    }
#pragma GCC unroll 4
    for (int r = 0; r < RB; r++) out[r] = z_i2s_fold(acc[r]) + tail[r];
}

/* acc += a . b (vpdpbusd) updated in place. With the intrinsic gcc 12 kept
 * each accumulator of the multi-run I2_S loop (then two runs) in two registers and copied it
 * back and forth every step (16 extra moves per 128 bytes); the asm's "+v"
 * ties the accumulator to one register. */
BN_AI __m512i z_dpbusd_inplace(__m512i acc, __m512i a, __m512i b) {
    __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(a), "v"(b));
    return acc;
}

/* NR rows at their own addresses (runs read side by side), activations
 * repacked (qr), an even block count: the masked form of z_i2s_gemv_tile,
 * row r's sum in out[r], vpdpbusd in place (z_dpbusd_inplace:
 * z_i2s_gemv_tile with its rows a run apart, through the intrinsic,
 * streamed 18 GB/s a core on the Zen 5 VM against 25-30). Each run is
 * prefetched into L1 BN_PF_RUN bytes ahead of itself, every line (see
 * z_i2s_one). */
BN_AI void z_i2s_gemv_rows(const uint8_t *const *w, const int NR, const int8_t *qr, int64_t nb, int32_t *out) {
    __m512i m[4], acc[4][4];
    z_i2s_start(m, acc, NR);
    for (int64_t b = 0; b + 2 <= nb; b += 2) {
        __m512i qg[4];
#pragma GCC unroll 4
        for (int g = 0; g < 4; g++) qg[g] = _mm512_load_si512((const void *)(qr + 128 * b + 64 * g));
#pragma GCC unroll 4
        for (int r = 0; r < NR; r++) {
            _mm_prefetch((const char *)w[r] + 32 * b + BN_PF_RUN, _MM_HINT_T0);
            const __m512i wv = _mm512_loadu_si512((const void *)(w[r] + 32 * b));
            acc[r][0] = z_dpbusd_inplace(acc[r][0], _mm512_and_si512(wv, m[0]), qg[0]);
            acc[r][1] = z_dpbusd_inplace(acc[r][1], _mm512_and_si512(wv, m[1]), qg[1]);
            acc[r][2] = z_dpbusd_inplace(acc[r][2], _mm512_and_si512(wv, m[2]), qg[2]);
            acc[r][3] = z_dpbusd_inplace(acc[r][3], _mm512_and_si512(wv, m[3]), qg[3]);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < NR; r++) out[r] = z_i2s_fold(acc[r]);
}

/* 32 code bytes of two rows side by side (row a low, row b high), unpacked
 * into the four 2-bit fields: c[n] = (bytes >> 2n) & 3. Shared by the I2_S
 * and TQ2_0 batch tiles. */
BN_AI void z_pair_codes(const uint8_t *a, const uint8_t *b, __m512i *c) {
    const __m512i m3 = _mm512_set1_epi8(3);
    const __m512i wv = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)a)),
                                          _mm256_loadu_si256((const __m256i *)b), 1);
    c[0] = _mm512_and_si512(wv, m3);
    c[1] = _mm512_and_si512(_mm512_srli_epi16(wv, 2), m3);
    c[2] = _mm512_and_si512(_mm512_srli_epi16(wv, 4), m3);
    c[3] = _mm512_and_si512(_mm512_srli_epi16(wv, 6), m3);
}

/* What a 4-row x 4-token zmm tiling leaves to the ymm kernel mm: the odd
 * last row [r_pairs, r1) for the tiled tokens [0, n4), then every row for
 * the tail tokens [n4, n). */
static void z_batch_leftovers(bn_matmul_fn mm, const bn_qmat *W, const bn_act *a, int n4, int64_t r_pairs, int64_t r0,
                              int64_t r1, float *Y, int64_t ldy) {
    if (r_pairs < r1 && n4 > 0) {
        bn_act head = *a;
        head.n = n4;
        mm(W, &head, r_pairs, r1, Y, ldy);
    }
    if (n4 < a->n) {
        bn_act tail = *a;
        tail.n = a->n - n4;
        tail.data = (uint8_t *)a->data + (size_t)n4 * a->row_bytes;
        if (a->scale) tail.scale = a->scale + n4;
        if (a->sum) tail.sum = a->sum + n4;
        mm(W, &tail, r0, r1, Y + (int64_t)n4 * ldy, ldy);
    }
}

/* ---- I2_S prefill (a batch of tokens) with 512-bit VNNI -------------------------
 * A tile of 2 row pairs x 4 tokens. A zmm holds block b of row r (low half)
 * and of row r+1 (high half), so the 4 x 32 activations of block b are one
 * 32-byte broadcast each and serve both rows; codes are unpacked once per
 * block (shifts + masks) for all 4 tokens; one vpdpbusd chain per (pair,
 * token): 8 accumulators leave registers for the codes (two chains each
 * spilled and measured slower). 32 vpdpbusd per block and tile keep both
 * 512-bit VNNI pipes busy, twice the work per instruction of the ymm tile. */
BN_AI void z_i2s_batch_tile(const uint8_t *const *w, const int RP, const int8_t *const *q, int64_t nb, int32_t *out) {
    __m512i acc[2][4];
#pragma GCC unroll 2
    for (int p = 0; p < RP; p++)
#pragma GCC unroll 4
        for (int t = 0; t < 4; t++) acc[p][t] = _mm512_setzero_si512();
    for (int64_t b = 0; b < nb; b++) {
        __m512i c[2][4]; /* c[p][n]: field n (bits 2n); I2_S group g is field 3 - g */
#pragma GCC unroll 2
        for (int p = 0; p < RP; p++) z_pair_codes(w[2 * p] + 32 * b, w[2 * p + 1] + 32 * b, c[p]);
#pragma GCC unroll 4
        for (int t = 0; t < 4; t++) {
            const int8_t *qb = q[t] + 128 * b;
#pragma GCC unroll 4
            for (int g = 0; g < 4; g++) {
                const __m512i qg = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(qb + 32 * g)));
#pragma GCC unroll 2
                for (int p = 0; p < RP; p++) acc[p][t] = _mm512_dpbusd_epi32(acc[p][t], c[p][3 - g], qg);
            }
        }
    }
#pragma GCC unroll 2
    for (int p = 0; p < RP; p++)
#pragma GCC unroll 4
        for (int t = 0; t < 4; t++) {
            const __m512i s = acc[p][t];
            out[(2 * p) * 4 + t] = x86_hsum_i32(_mm512_castsi512_si256(s));
            out[(2 * p + 1) * 4 + t] = x86_hsum_i32(_mm512_extracti64x4_epi64(s, 1));
        }
}

/* A batch: tiles of 4 rows x 4 tokens (2 rows at the end of a range), the
 * ymm kernel for the remaining rows and tokens. */
static void z_mm_i2s_batch(const bn_qmat *W, const bn_act *a, int64_t r0, int64_t r1, float *Y, int64_t ldy) {
    const int64_t nb = W->K / 128;
    const int8_t *qa = (const int8_t *)a->data;
    const int n4 = a->n & ~3;
    int64_t r = r0;
    for (; r + 2 <= r1; ) {
        const int RP = r + 4 <= r1 ? 2 : 1;
        const uint8_t *w[4];
        for (int j = 0; j < 2 * RP; j++) w[j] = W->data + (size_t)(r + j) * W->row_bytes;
        for (int t = 0; t < n4; t += 4) {
            const int8_t *q[4] = { qa + (size_t)t * a->row_bytes, qa + (size_t)(t + 1) * a->row_bytes,
                                   qa + (size_t)(t + 2) * a->row_bytes, qa + (size_t)(t + 3) * a->row_bytes };
            int32_t s[16];
            if (RP == 2) z_i2s_batch_tile(w, 2, q, nb, s);
            else z_i2s_batch_tile(w, 1, q, nb, s);
            for (int i = 0; i < 2 * RP; i++)
                for (int j = 0; j < 4; j++)
                    Y[(int64_t)(t + j) * ldy + r + i] = bn_i2s_out(s[i * 4 + j], a->sum[t + j], a->scale[t + j], W->scale);
        }
        r += 2 * RP;
    }
    z_batch_leftovers(x86_mm_i2s, W, a, n4, r, r0, r1, Y, ldy);
}

/* One token, rows start[j] + i for j < NS, i < len: four runs (NS = 4) read
 * side by side, row i of each in one z_i2s_gemv_rows (each run prefetched
 * 2 KB ahead), where the activations fit the repack buffer and the block
 * count is even; otherwise a row at a time. Either way each row's sum is
 * the same integer. qr_in: the activations as z_i2s_repack leaves them, or
 * NULL to repack them here. Zen 5 VM, 2b4t decode, one process alternating
 * the variants per step, 15 runs of 256 steps at 1 and 2 threads: four runs
 * against two +0.6% to +7.2% (never slower); four runs each prefetched 2 KB
 * ahead, as z_rows_4streams, -6% to +22% with the VM's phase (the gains
 * where it read slowly); 1 KB ahead -2% to +5.5%. Fourteenth session, whole
 * bn-forward runs alternated (tg128): the 2 KB prefetch (no longer with the
 * first 2 KB of each run prefetched before the loop) +1% to +22% at 2
 * threads in all 25 rounds, -2% to +18% at 1 thread (one round of 13
 * slower); 1 KB and 512 B ahead less, 3-4 KB no better, every other line
 * (2 KB) 10-20% slower than none. Earlier (two runs against
 * one, 512 MB of 2560- and 6912-wide rows, GB/s at 1 / 2 threads): one
 * stream prefetched 32 KB ahead 20.3 / 40.9 and 16.8 / 34.4, two streams
 * 23.7 / 48.4 and 19.3 / 38.6, two streams prefetched 2-32 KB ahead
 * 19.1-20.7 / 28.9-40.4. A row at a time is one sequential stream (as the
 * F16 GEMV in z_mm; 4-row tiles measured ~3% slower with 2 threads, the same
 * with 1). */
BN_AI void z_i2s_one(const bn_qmat *W, const bn_act *a, const int8_t *qr_in, const int64_t *start, const int NS,
                     int64_t len, float *Y, const size_t PF, const int L2) {
    const int64_t nb = W->K / 128;
    const int8_t *q = (const int8_t *)a->data, *qr = qr_in;
    _Alignas(64) int8_t qbuf[BN_RUNS_PREP_BYTES];
    if (len <= 0) return;
    if (!qr && nb * 128 <= (int64_t)sizeof qbuf) {
        z_i2s_repack(q, nb, qbuf);
        qr = qbuf;
    }
    if (NS == 4 && qr && nb % 2 == 0) {
        for (int64_t i = 0; i < len; i++) {
            int32_t s[4];
            const uint8_t *w4[4];
            for (int j = 0; j < 4; j++) w4[j] = W->data + (size_t)(start[j] + i) * W->row_bytes;
            z_i2s_gemv_rows(w4, 4, qr, nb, s);
            for (int j = 0; j < 4; j++) Y[start[j] + i] = bn_i2s_out(s[j], a->sum[0], a->scale[0], W->scale);
        }
        return;
    }
    for (int j = 0; j < NS; j++)
        for (int64_t r = start[j]; r < start[j] + len; r++) {
            int32_t s[1];
            z_i2s_gemv_tile(W->data + (size_t)r * W->row_bytes, W->row_bytes, 1, q, qr, nb, PF, L2, s);
            Y[r] = bn_i2s_out(s[0], a->sum[0], a->scale[0], W->scale);
        }
}

/* One token: a row at a time, or (RUNS) the range cut in four runs of n
 * rows read side by side (z_i2s_one) and the 0-3 rows left over a row at a
 * time; batches: the 4 x 4 zmm tiles; very long rows: the ymm tiles (the
 * lane sums of the masked form need nb < 40000). */
BN_AI void z_mm_i2s(const bn_qmat *W, const bn_act *a, int64_t r0, int64_t r1, float *Y, int64_t ldy, const size_t PF,
                    const int L2, const int RUNS) {
    if (W->K / 128 >= 40000) {
        x86_mm_i2s(W, a, r0, r1, Y, ldy);
        return;
    }
    if (a->n != 1) {
        z_mm_i2s_batch(W, a, r0, r1, Y, ldy);
        return;
    }
    if (RUNS) {
        const int64_t n = (r1 - r0) / 4, start[4] = { r0, r0 + n, r0 + 2 * n, r0 + 3 * n };
        z_i2s_one(W, a, NULL, start, 4, n, Y, PF, L2);
        r0 += 4 * n;
    }
    z_i2s_one(W, a, NULL, &r0, 1, r1 - r0, Y, PF, L2);
}

static void vnni_mm_i2s(const bn_qmat *W, const bn_act *a, int64_t r0, int64_t r1, float *Y, int64_t ldy) {
    z_mm_i2s(W, a, r0, r1, Y, ldy, BN_PF_STREAM, 0, 1);
}

/* Part of vnni_mm_i2s's four runs (bn_kernels.mm_runs), the activations
 * repacked once beforehand (mm_runs_prep): a repack per call made 18 KB
 * calls 15-20% slower than one call over the matrix (gate, one thread). */
static const void *vnni_prep_i2s(const bn_qmat *W, const bn_act *a, void *buf) {
    const int64_t nb = W->K / 128;
    if (nb * 128 > BN_RUNS_PREP_BYTES) return NULL;
    z_i2s_repack((const int8_t *)a->data, nb, buf);
    return buf;
}
static void vnni_runs_i2s(const bn_qmat *W, const bn_act *a, const void *prep, const int64_t *start, int64_t len,
                          float *Y) {
    if (W->K / 128 >= 40000) {
        for (int j = 0; j < 4; j++) x86_mm_i2s(W, a, start[j], start[j] + len, Y, W->M);
        return;
    }
    z_i2s_one(W, a, prep, start, 4, len, Y, BN_PF_STREAM, 0);
}

/* The AMX table's: as vnni_mm_i2s, one token prefetched into L2 (BN_PF_L2) */
void bn_mm_i2s_vnni(const bn_qmat *W, const bn_act *a, int64_t r0, int64_t r1, float *Y, int64_t ldy) {
    z_mm_i2s(W, a, r0, r1, Y, ldy, BN_PF_L2, 1, 0);
}

/* ---- TQ2_0 batch with 512-bit VNNI ------------------------------------------------
 * As the I2_S batch tile: a zmm holds a 32-byte chunk of block i of row r
 * (low half) and of row r+1 (high half) against broadcast q8_K groups, for
 * 2 row pairs x 4 tokens. Per block and (pair, token) the 16 int32 lanes
 * (8 per row, llama.cpp's lane mapping, bsums pairs subtracted) go to float
 * and into an fma chain with that row's y.d * x.d, exactly the per-row order
 * of the scalar reference; the halves are reduced with bn_hsum8f at the end. */
BN_AI void z_tq2_batch_tile(const bn_block_tq2_0 *const *x, const int RP, const bn_block_q8_K *const *y, int64_t nb,
                            float *out) {
    __m512 facc[2][4];
#pragma GCC unroll 2
    for (int p = 0; p < RP; p++)
#pragma GCC unroll 4
        for (int t = 0; t < 4; t++) facc[p][t] = _mm512_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        __m512i acc[2][4];
        __m512 dw[2];
#pragma GCC unroll 4
        for (int t = 0; t < 4; t++) {
            const __m512i bs = _mm512_broadcast_i64x4(
                _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)y[t][i].bsums), _mm256_set1_epi16(1)));
#pragma GCC unroll 2
            for (int p = 0; p < RP; p++) acc[p][t] = _mm512_sub_epi32(_mm512_setzero_si512(), bs);
        }
#pragma GCC unroll 2
        for (int p = 0; p < RP; p++)
            dw[p] = _mm512_insertf32x8(_mm512_set1_ps(_cvtsh_ss(x[2 * p][i].d)), _mm256_set1_ps(_cvtsh_ss(x[2 * p + 1][i].d)), 1);
#pragma GCC unroll 2
        for (int c = 0; c < 2; c++) {
            __m512i cv[2][4];
#pragma GCC unroll 2
            for (int p = 0; p < RP; p++) z_pair_codes(x[2 * p][i].qs + 32 * c, x[2 * p + 1][i].qs + 32 * c, cv[p]);
#pragma GCC unroll 4
            for (int t = 0; t < 4; t++)
#pragma GCC unroll 4
                for (int n = 0; n < 4; n++) {
                    const __m512i qg =
                        _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(y[t][i].qs + 128 * c + 32 * n)));
#pragma GCC unroll 2
                    for (int p = 0; p < RP; p++) acc[p][t] = _mm512_dpbusd_epi32(acc[p][t], cv[p][n], qg);
                }
        }
#pragma GCC unroll 4
        for (int t = 0; t < 4; t++) {
            const __m512 yd = _mm512_set1_ps(y[t][i].d);
#pragma GCC unroll 2
            for (int p = 0; p < RP; p++)
                facc[p][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[p][t]), _mm512_mul_ps(yd, dw[p]), facc[p][t]);
        }
    }
#pragma GCC unroll 2
    for (int p = 0; p < RP; p++)
#pragma GCC unroll 4
        for (int t = 0; t < 4; t++) {
            float l16[16];
            _mm512_storeu_ps(l16, facc[p][t]);
            out[(2 * p) * 4 + t] = bn_hsum8f(l16);
            out[(2 * p + 1) * 4 + t] = bn_hsum8f(l16 + 8);
        }
}

/* ---- TQ2_0 one token with 512-bit VNNI ----------------------------------------
 * The ymm row loop (x86_tq2_block) unpacks each 32-byte half of a block's
 * codes with shifts and masks into 8 vectors, ~35 instructions per 66-byte
 * block. Here one zmm holds the block's 64 code bytes, half c = 0 low and
 * c = 1 high; the codes with shift 2n against the activations 32n.. of both
 * halves (laid out once per token, z_tq2_prep) go into vpdpbusd, so lane L of
 * the low half and lane L of the high half together are the ymm kernel's lane
 * L: the same exact integers per lane, the same bsums, cvt and fma per block,
 * the same tree at the end (bitwise the reference).
 * Four rows at a time (four runs read side by side, as the I2_S GEMV) share
 * each block's activation loads, and two rows share one zmm of float lanes
 * (row A's eight in the low half, row B's in the high). A row at a time this
 * loop was bound by loads, not by vpdpbusd: gcc folds each activation load
 * into each row's vpdpbusd, and a 66-byte block's code load crosses a cache
 * line. Holding the activations and codes in registers (the empty asm
 * statements) and starting each chain from the block's bsums took it, on the
 * Zen 5 VM, 1 thread, from 27.6 to 40.8 GB/s from L2 and from 22-23 to 32-33
 * GB/s from memory (the row loop it replaced, 2560-wide rows); two vpdpbusd
 * chains per row instead of one: +4-10%. */
enum { Z_TQ2_PREP_BLOCK = 320 }; /* bytes of prep per block: 256 activations, 64 of lane offsets */

/* Per block: the activations of shift n (32n.. of both halves) at 64n, then a
 * zmm whose low eight int32 lanes are the reference's lane offsets
 * -(bsums[2L] + bsums[2L + 1]) and whose high eight are 0, the start of
 * each row's vpdpbusd chain. nb * Z_TQ2_PREP_BLOCK bytes, 64-byte aligned. */
BN_AI void z_tq2_prep(const bn_block_q8_K *y, int64_t nb, int8_t *p) {
    for (int64_t b = 0; b < nb; b++) {
        int8_t *g = p + Z_TQ2_PREP_BLOCK * b;
        int32_t off[16] = { 0 };
        for (int n = 0; n < 4; n++) {
            memcpy(g + 64 * n, y[b].qs + 32 * n, 32);
            memcpy(g + 64 * n + 32, y[b].qs + 128 + 32 * n, 32);
        }
        for (int l = 0; l < 8; l++) off[l] = -(y[b].bsums[2 * l] + y[b].bsums[2 * l + 1]);
        memcpy(g + 256, off, sizeof off);
    }
}

/* Each row (its run) is prefetched into L1 this far ahead of itself, one
 * prefetch per 66-byte block (a line in 33 goes without). Fourteenth
 * session, Zen 5 VM, 2b4t TQ2_0, whole tg128 runs alternated: 2 KB ahead
 * against none +13-17% at 1 thread, -5% to +25% at 2 (the gains where the
 * VM read slowly). */
/* Rows x[0..3] against one token: out[j] bitwise the reference's row dot. */
BN_AI void z_tq2_rows4(const bn_block_tq2_0 *const *x, const bn_block_q8_K *y, const int8_t *p, int64_t nb, float *out) {
    const __m512i m3 = _mm512_set1_epi8(3);
    __m512 acc[2] = { _mm512_setzero_ps(), _mm512_setzero_ps() };
    for (int64_t i = 0; i < nb; i++) {
        const int8_t *g = p + Z_TQ2_PREP_BLOCK * i;
        __m512i y0 = _mm512_load_si512((const void *)g), y1 = _mm512_load_si512((const void *)(g + 64));
        __m512i y2 = _mm512_load_si512((const void *)(g + 128)), y3 = _mm512_load_si512((const void *)(g + 192));
        const __m512i off = _mm512_load_si512((const void *)(g + 256));
        __asm__("" : "+v"(y0), "+v"(y1), "+v"(y2), "+v"(y3)); /* one load each, not one per row */
        __m512i s[4];
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++) {
            _mm_prefetch((const char *)&x[r][i] + BN_PF_RUN, _MM_HINT_T0);
            __m512i wv = _mm512_loadu_si512((const void *)x[r][i].qs);
            __asm__("" : "+v"(wv)); /* one load, not one per use */
            __m512i t = _mm512_dpbusd_epi32(off, _mm512_and_si512(wv, m3), y0);
            __m512i u = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_and_si512(_mm512_srli_epi16(wv, 2), m3), y1);
            t = _mm512_dpbusd_epi32(t, _mm512_and_si512(_mm512_srli_epi16(wv, 4), m3), y2);
            u = _mm512_dpbusd_epi32(u, _mm512_and_si512(_mm512_srli_epi16(wv, 6), m3), y3);
            s[r] = _mm512_add_epi32(t, u);
        }
        const __m512 yd = _mm512_set1_ps(y[i].d);
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            /* rows 2h and 2h+1: lanes L and L + 8 of each into its half */
            const __m512i lo = _mm512_shuffle_i64x2(s[2 * h], s[2 * h + 1], 0x44);
            const __m512i hi = _mm512_shuffle_i64x2(s[2 * h], s[2 * h + 1], 0xEE);
            const __m256i dh = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_set1_epi16((short)x[2 * h][i].d)),
                                                       _mm_set1_epi16((short)x[2 * h + 1][i].d), 1);
            const __m512 d = _mm512_mul_ps(_mm512_cvtph_ps(dh), yd); /* y.d * x.d per row, as the reference */
            acc[h] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(lo, hi)), d, acc[h]);
        }
    }
    for (int h = 0; h < 2; h++) {
        float l16[16];
        _mm512_storeu_ps(l16, acc[h]);
        out[2 * h] = bn_hsum8f(l16);
        out[2 * h + 1] = bn_hsum8f(l16 + 8);
    }
}

/* A four-row one-token kernel: rows x[0..3] of a 256-block type against the
 * token a (prep: its prepared form, if the kernel takes one) into out[0..3]. */
typedef void (*z_rows4_fn)(const uint8_t *const *x, const bn_act *a, const void *prep, int64_t nb, float *out);

/* One token, rows start[j] + i for j < NS, i < len, through a four-row
 * kernel: with NS = 4 row i of each run in one call; otherwise four rows of
 * the run at a time, the last 1-3 filled up with repeats of the run's last
 * row. (One indirect call per four rows of 0.6-2 KB each.) */
static void z_one_rows4(const bn_qmat *W, const bn_act *a, const void *prep, const int64_t *start, const int NS,
                        int64_t len, float *Y, z_rows4_fn rows4) {
    const int64_t nb = W->K / BN_QK_K;
    const uint8_t *x[4];
    float o[4];
    if (NS == 4) {
        for (int64_t i = 0; i < len; i++) {
            for (int j = 0; j < 4; j++) x[j] = W->data + (size_t)(start[j] + i) * W->row_bytes;
            rows4(x, a, prep, nb, o);
            for (int j = 0; j < 4; j++) Y[start[j] + i] = o[j];
        }
        return;
    }
    for (int j = 0; j < NS; j++)
        for (int64_t r = start[j]; r < start[j] + len; r += 4) {
            const int64_t n = start[j] + len - r < 4 ? start[j] + len - r : 4;
            for (int k = 0; k < 4; k++) x[k] = W->data + (size_t)(r + (k < n ? k : n - 1)) * W->row_bytes;
            rows4(x, a, prep, nb, o);
            for (int k = 0; k < n; k++) Y[r + k] = o[k];
        }
}

static void z_tq2_rows4_call(const uint8_t *const *x, const bn_act *a, const void *prep, int64_t nb, float *out) {
    const bn_block_tq2_0 *b[4] = { (const bn_block_tq2_0 *)x[0], (const bn_block_tq2_0 *)x[1],
                                   (const bn_block_tq2_0 *)x[2], (const bn_block_tq2_0 *)x[3] };
    z_tq2_rows4(b, (const bn_block_q8_K *)a->data, prep, nb, out);
}

/* One token, rows start[j] + i (z_one_rows4) through z_tq2_rows4. p: the
 * token as z_tq2_prep lays it out, or NULL to lay it out here. Rows past the
 * prep buffer (nb * Z_TQ2_PREP_BLOCK > BN_RUNS_PREP_BYTES) take the ymm loop. */
static void z_tq2_one(const bn_qmat *W, const bn_act *a, const int8_t *p, const int64_t *start, const int NS,
                      int64_t len, float *Y) {
    const int64_t nb = W->K / BN_QK_K;
    if (len <= 0) return;
    if (nb * Z_TQ2_PREP_BLOCK > BN_RUNS_PREP_BYTES) {
        for (int j = 0; j < NS; j++) x86_mm_tq2_0(W, a, start[j], start[j] + len, Y, W->M);
        return;
    }
    _Alignas(64) int8_t buf[BN_RUNS_PREP_BYTES];
    if (!p) {
        z_tq2_prep((const bn_block_q8_K *)a->data, nb, buf);
        p = buf;
    }
    z_one_rows4(W, a, p, start, NS, len, Y, z_tq2_rows4_call);
}

/* The token as z_tq2_one reads it (bn_kernels.mm_runs_prep), or NULL where
 * the row is too long for the buffer. */
static const void *vnni_prep_tq2_0(const bn_qmat *W, const bn_act *a, void *buf) {
    const int64_t nb = W->K / BN_QK_K;
    if (nb * Z_TQ2_PREP_BLOCK > BN_RUNS_PREP_BYTES) return NULL;
    z_tq2_prep((const bn_block_q8_K *)a->data, nb, buf);
    return buf;
}
/* Part of vnni_mm_tq2_0's four runs (bn_kernels.mm_runs). */
static void vnni_runs_tq2_0(const bn_qmat *W, const bn_act *a, const void *prep, const int64_t *start, int64_t len,
                            float *Y) {
    z_tq2_one(W, a, prep, start, 4, len, Y);
}

/* One token: the range cut in four runs read side by side (z_tq2_one) and
 * the 0-3 rows left over; batches: 4 rows x 4 tokens on zmm, the ymm kernel
 * for the rest. */
static void vnni_mm_tq2_0(const bn_qmat *W, const bn_act *a, int64_t r0, int64_t r1, float *Y, int64_t ldy) {
    const int n4 = a->n & ~3;
    if (a->n == 1) {
        _Alignas(64) int8_t buf[BN_RUNS_PREP_BYTES];
        const int8_t *p = vnni_prep_tq2_0(W, a, buf);
        const int64_t n = (r1 - r0) / 4, start[4] = { r0, r0 + n, r0 + 2 * n, r0 + 3 * n };
        z_tq2_one(W, a, p, start, 4, n, Y);
        r0 += 4 * n;
        z_tq2_one(W, a, p, &r0, 1, r1 - r0, Y);
        (void)ldy;
        return;
    }
    if (n4 == 0) {
        x86_mm_tq2_0(W, a, r0, r1, Y, ldy);
        return;
    }
    const int64_t nb = W->K / BN_QK_K, r_pairs = r0 + ((r1 - r0) & ~(int64_t)1);
    for (int64_t r = r0; r < r_pairs;) {
        const int RP = r + 4 <= r_pairs ? 2 : 1;
        const bn_block_tq2_0 *x[4];
        for (int j = 0; j < 2 * RP; j++) x[j] = (const bn_block_tq2_0 *)(W->data + (size_t)(r + j) * W->row_bytes);
        for (int t = 0; t < n4; t += 4) {
            const bn_block_q8_K *y[4];
            for (int j = 0; j < 4; j++) y[j] = (const bn_block_q8_K *)((const uint8_t *)a->data + (size_t)(t + j) * a->row_bytes);
            float o[16];
            if (RP == 2) z_tq2_batch_tile(x, 2, y, nb, o);
            else z_tq2_batch_tile(x, 1, y, nb, o);
            for (int i = 0; i < 2 * RP; i++)
                for (int j = 0; j < 4; j++) Y[(int64_t)(t + j) * ldy + r + i] = o[i * 4 + j];
        }
        r += 2 * RP;
    }
    z_batch_leftovers(x86_mm_tq2_0, W, a, n4, r_pairs, r0, r1, Y, ldy);
}

/* ---- Q6_K one token with 512-bit vectors --------------------------------------
 * (AVX-512 F/BW/VL only, no VNNI: every AVX-512 table uses it.)
 * The ymm block (x86_q6k_block) and its per-row float chain ran 13.5 GB/s
 * from L2 and 8.2 from memory on the Zen 5 VM, so a Q6_K head (--head q6_k,
 * the fewest head bytes) decoded slower than the F16 head it replaces (19.4
 * against ~25 tok/s, 1 thread). Here a zmm holds 64 elements: the 64 ql bytes
 * of a half give elements 0..63 (low nibbles) and 64..127 (high nibbles) in
 * order, and the half's 32 qh bytes, in both 256-bit halves, are shifted per
 * half (sllv/srlv) so the right 2-bit field lands on bits 4-5 and is merged
 * with one vpternlogd. v (0..63) x q8 by vpmaddubsw (|pair| <= 63*128*2, no
 * saturation), the sub-block scales by vpmaddwd against the scales widened to
 * 16 bits and spread 8 pairs each (vpermw); each row's sum starts from
 * -32 * sum(scale * bsum). Four rows at a time (four runs side by side) share
 * the block's activation loads; their block sums are reduced together to
 * four exact int32 (the reference's sumi), and the four float chains sumf +=
 * (x.d * y.d) * sumi run as lanes of one xmm, in block order: bitwise the
 * reference. Zen 5 VM, 1 thread, 2560-wide rows: 14.1 -> 59.0 GB/s from L2,
 * 8.5 -> 35.3 GB/s from memory. BN_PF_RUN: each row (its run)
 * prefetched into L1 this far ahead of itself, every line of each 210-byte
 * block. Fourteenth session, Zen 5 VM: gemvprobe's Q6_K matrix at 2 threads
 * 0.87-0.91 -> 0.95-0.98 of the read; 2b4t with --head q6_k, whole tg128
 * runs alternated, +5-21% in four rounds of five at 2 threads (one -22%),
 * +6-12% in two of three at 1 (one -5%). The thirteenth session's try (1-4
 * KB, before the I2_S runs prefetched too) was within noise in decode. */
BN_AI void z_q6k_rows4(const bn_block_q6_K *const *x, const bn_block_q8_K *y, int64_t nb, float *out) {
    static const int16_t spread[4][32] = { /* pair k of 64-element chunk c: sub-block 4c + k/8 */
        { 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3 },
        { 4, 4, 4, 4, 4, 4, 4, 4, 5, 5, 5, 5, 5, 5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 6, 7, 7, 7, 7, 7, 7, 7, 7 },
        { 8, 8, 8, 8, 8, 8, 8, 8, 9, 9, 9, 9, 9, 9, 9, 9, 10, 10, 10, 10, 10, 10, 10, 10, 11, 11, 11, 11, 11, 11, 11, 11 },
        { 12, 12, 12, 12, 12, 12, 12, 12, 13, 13, 13, 13, 13, 13, 13, 13,
          14, 14, 14, 14, 14, 14, 14, 14, 15, 15, 15, 15, 15, 15, 15, 15 },
    };
    const __m512i m0f = _mm512_set1_epi8(0x0F), m30 = _mm512_set1_epi8(0x30);
    /* qh fields to bits 4-5: elements 0..31 bits 0-1 (<< 4), 32..63 bits 2-3
     * (<< 2); elements 64..95 bits 4-5 (as is), 96..127 bits 6-7 (>> 2) */
    const __m512i shl = _mm512_inserti64x4(_mm512_set1_epi16(4), _mm256_set1_epi16(2), 1);
    const __m512i shr = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(2), 1);
    const __m512i lane0 = _mm512_setr_epi32(0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    __m512i idx[4];
    for (int c = 0; c < 4; c++) idx[c] = _mm512_loadu_si512((const void *)spread[c]);
    __m128 sumf = _mm_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        __m512i yq[4];
        for (int c = 0; c < 4; c++) yq[c] = _mm512_loadu_si512((const void *)(y[i].qs + 64 * c));
        __asm__("" : "+v"(yq[0]), "+v"(yq[1]), "+v"(yq[2]), "+v"(yq[3])); /* one load each, not one per row */
        const __m256i nbs = _mm256_sub_epi16(_mm256_setzero_si256(), _mm256_loadu_si256((const __m256i *)y[i].bsums));
        __m512i s[4];
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++) {
            const bn_block_q6_K *b = &x[r][i];
            { /* every line of the block BN_PF_RUN ahead */
                const char *pf = (const char *)b + BN_PF_RUN;
                _mm_prefetch(pf, _MM_HINT_T0);
                _mm_prefetch(pf + 64, _MM_HINT_T0);
                _mm_prefetch(pf + 128, _MM_HINT_T0);
                _mm_prefetch(pf + sizeof *b - 1, _MM_HINT_T0);
            }
            const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)b->scales));
            const __m512i sc = _mm512_zextsi256_si512(sc16);
            /* -32 * sum(scale * bsum): 32 * scale fits int16, -bsum too */
            __m512i acc = _mm512_zextsi256_si512(_mm256_madd_epi16(nbs, _mm256_slli_epi16(sc16, 5)));
#pragma GCC unroll 2
            for (int h = 0; h < 2; h++) {
                __m512i ql = _mm512_loadu_si512((const void *)(b->ql + 64 * h));
                __m512i qh = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(b->qh + 32 * h)));
                __asm__("" : "+v"(ql), "+v"(qh)); /* one load each, not one per use */
                /* (field & 0x30) | nibble */
                const __m512i vlo =
                    _mm512_ternarylogic_epi32(_mm512_sllv_epi16(qh, shl), m30, _mm512_and_si512(ql, m0f), 0xEA);
                const __m512i vhi = _mm512_ternarylogic_epi32(_mm512_srlv_epi16(qh, shr), m30,
                                                              _mm512_and_si512(_mm512_srli_epi16(ql, 4), m0f), 0xEA);
                acc = _mm512_add_epi32(acc, _mm512_madd_epi16(_mm512_maddubs_epi16(vlo, yq[2 * h]),
                                                              _mm512_permutexvar_epi16(idx[2 * h], sc)));
                acc = _mm512_add_epi32(acc, _mm512_madd_epi16(_mm512_maddubs_epi16(vhi, yq[2 * h + 1]),
                                                              _mm512_permutexvar_epi16(idx[2 * h + 1], sc)));
            }
            s[r] = acc;
        }
        /* the four rows' 16 lanes each down to one exact sum each */
        const __m512i t01 = _mm512_add_epi32(_mm512_shuffle_i64x2(s[0], s[1], 0x44), _mm512_shuffle_i64x2(s[0], s[1], 0xEE));
        const __m512i t23 = _mm512_add_epi32(_mm512_shuffle_i64x2(s[2], s[3], 0x44), _mm512_shuffle_i64x2(s[2], s[3], 0xEE));
        __m512i u = _mm512_add_epi32(_mm512_shuffle_i64x2(t01, t23, 0x88), _mm512_shuffle_i64x2(t01, t23, 0xDD));
        u = _mm512_add_epi32(u, _mm512_shuffle_epi32(u, (_MM_PERM_ENUM)0x4E));
        u = _mm512_add_epi32(u, _mm512_shuffle_epi32(u, (_MM_PERM_ENUM)0xB1));
        const __m128i sumi = _mm512_castsi512_si128(_mm512_permutexvar_epi32(lane0, u));
        const __m128i dh = _mm_setr_epi16((short)x[0][i].d, (short)x[1][i].d, (short)x[2][i].d, (short)x[3][i].d, 0, 0, 0, 0);
        const __m128 d = _mm_mul_ps(_mm_cvtph_ps(dh), _mm_set1_ps(y[i].d)); /* x.d * y.d, as the reference */
        sumf = _mm_add_ps(sumf, _mm_mul_ps(d, _mm_cvtepi32_ps(sumi)));
    }
    _mm_storeu_ps(out, sumf);
}

static void z_q6k_rows4_call(const uint8_t *const *x, const bn_act *a, const void *prep, int64_t nb, float *out) {
    const bn_block_q6_K *b[4] = { (const bn_block_q6_K *)x[0], (const bn_block_q6_K *)x[1], (const bn_block_q6_K *)x[2],
                                  (const bn_block_q6_K *)x[3] };
    (void)prep;
    z_q6k_rows4(b, (const bn_block_q8_K *)a->data, nb, out);
}

/* Part of z_mm_q6_K's four runs (bn_kernels.mm_runs; no prep). */
static void z_runs_q6_K(const bn_qmat *W, const bn_act *a, const void *prep, const int64_t *start, int64_t len,
                           float *Y) {
    z_one_rows4(W, a, NULL, start, 4, len, Y, z_q6k_rows4_call);
}

/* One token: the range cut in four runs read side by side and the 0-3 rows
 * left over; batches: the ymm kernel. */
static void z_mm_q6_K(const bn_qmat *W, const bn_act *a, int64_t r0, int64_t r1, float *Y, int64_t ldy) {
    if (a->n != 1) {
        x86_mm_q6_K(W, a, r0, r1, Y, ldy);
        return;
    }
    const int64_t n = (r1 - r0) / 4, start[4] = { r0, r0 + n, r0 + 2 * n, r0 + 3 * n };
    z_one_rows4(W, a, NULL, start, 4, n, Y, z_q6k_rows4_call);
    r0 += 4 * n;
    z_one_rows4(W, a, NULL, &r0, 1, r1 - r0, Y, z_q6k_rows4_call);
}

/* ---- TQ1_0 with 512-bit VNNI --------------------------------------------------
 * A TQ1_0 byte b holds 5 trits: trit n is (3 v_n) >> 8 with v_n = b * 3^n mod
 * 256 (ggml's definition). v_{n+1} = 3 v_n mod 256 takes two byte adds, and
 * since 3 v_n = 256 trit_n + v_{n+1}, the dot of trit n with activations y is
 * (3 dot(v_n, y) - dot(v_{n+1}, y)) / 256 exactly: two vpdpbusd (u8 x s8) per
 * trit and no multiply on bytes. (Trits on 16-bit lanes by vpmullw and
 * vpmulhuw, then vpdpwssd, ran 5.8 ns a block from L2 on the Zen 5 VM
 * against 5.0 for this form and 9.9 for the ymm kernel.)
 * A block is one zmm (z_tq1_bytes): qs in bytes 0..47 (trit n of byte m is
 * element 32n + m for m < 32, 160 + 16n + (m - 32) after), and qh copied
 * into bytes 48..51, 52..55, 56..59, 60..63, copy c serving trit c (element
 * 240 + 4c + j). */
BN_AI __m512i z_tq1_bytes(const bn_block_tq1_0 *x) {
    static const int8_t qh_copies[64] = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
                                          0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
                                          0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
                                          0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3 };
    /* a masked load of the block's 52 code bytes: nothing past them is read */
    return _mm512_shuffle_epi8(_mm512_maskz_loadu_epi8(0xFFFFFFFFFFFFFull, x),
                               _mm512_loadu_si512((const void *)qh_copies));
}

BN_AI __m512i z_mul3_epi8(__m512i v) { return _mm512_add_epi8(v, _mm512_add_epi8(v, v)); }
BN_AI __m512i z_mul3_epi32(__m512i v) { return _mm512_add_epi32(v, _mm512_add_epi32(v, v)); }

/* One token's q8_K activations laid out for z_tq1_block: per block and trit
 * n, 64 bytes: y[32n..] in bytes 0..31, y[160 + 16n..] in 32..47, y[240 +
 * 4n..] in qh copy n (n < 4), zeros elsewhere; and the reference's lane
 * offsets -(bsums[2l] + bsums[2l + 1]). */
enum { Z_TQ1_NB_MAX = 64, Z_TQ1_YBYTES = 5 * 64 };
BN_AI void z_tq1_repack(const bn_block_q8_K *y, int64_t nb, int8_t *yr, int32_t *off) {
    for (int64_t i = 0; i < nb; i++) {
        int8_t *g = yr + (size_t)i * Z_TQ1_YBYTES;
        memset(g, 0, Z_TQ1_YBYTES);
        for (int n = 0; n < 5; n++) {
            memcpy(g + 64 * n, y[i].qs + 32 * n, 32);
            memcpy(g + 64 * n + 32, y[i].qs + 160 + 16 * n, 16);
            if (n < 4) memcpy(g + 64 * n + 48 + 4 * n, y[i].qs + 240 + 4 * n, 4);
        }
        for (int l = 0; l < 8; l++) off[8 * i + l] = -(y[i].bsums[2 * l] + y[i].bsums[2 * l + 1]);
    }
}

/* The reference's eight lane sums of one block (lane (e % 32) / 4 of element
 * e, plus off), as floats. In int32 lane i the reference lane is i for
 * i < 8 and i - 8 above, except bytes 32..47 of the odd trits (elements
 * 176.., 208..), which belong to lane i - 4: odd trits accumulate apart. */
BN_AI __m256 z_tq1_block(const bn_block_tq1_0 *x, const int8_t *g, const int32_t *off) {
    __m512i v = z_tq1_bytes(x);
    __m512i se = _mm512_setzero_si512(), te = se, so = se, to = se;
#pragma GCC unroll 5
    for (int n = 0; n < 5; n++) {
        const __m512i yn = _mm512_loadu_si512((const void *)(g + 64 * n));
        const __m512i v3 = z_mul3_epi8(v);
        if (n & 1) {
            so = _mm512_dpbusd_epi32(so, v, yn);
            to = _mm512_dpbusd_epi32(to, v3, yn);
        } else {
            se = _mm512_dpbusd_epi32(se, v, yn);
            te = _mm512_dpbusd_epi32(te, v3, yn);
        }
        v = v3;
    }
    const __m512i e = _mm512_sub_epi32(z_mul3_epi32(se), te), o = _mm512_sub_epi32(z_mul3_epi32(so), to);
    /* odd trits' lanes 8..11 onto 12..15 (both lane 4..7), then lanes i and
     * i + 8 together */
    const __m512i o_hi = _mm512_maskz_shuffle_i32x4(0xF000, o, o, 0x80); /* 128-bit chunk 2 -> 3 */
    const __m512i z = _mm512_add_epi32(e, _mm512_maskz_add_epi32(0xF0FF, o, o_hi));
    const __m256i s = _mm256_add_epi32(_mm512_castsi512_si256(z), _mm512_extracti64x4_epi64(z, 1));
    /* every sum is 256 x the trit dot: the shift is exact */
    return _mm256_cvtepi32_ps(_mm256_add_epi32(_mm256_srai_epi32(s, 8), _mm256_loadu_si256((const __m256i *)off)));
}

/* One row against one token: the blocks in the reference's float chain. */
BN_AI float z_tq1_row(const bn_block_tq1_0 *x, const bn_block_q8_K *y, const int8_t *yr, const int32_t *off,
                      int64_t nb) {
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        _mm_prefetch((const char *)&x[i] + BN_PF_AHEAD, _MM_HINT_T0);
        const __m256 lanes = z_tq1_block(&x[i], yr + (size_t)i * Z_TQ1_YBYTES, off + 8 * i);
        acc = _mm256_fmadd_ps(lanes, _mm256_set1_ps(y[i].d * _cvtsh_ss(x[i].d)), acc);
    }
    float l8[8];
    _mm256_storeu_ps(l8, acc);
    return bn_hsum8f(l8);
}

/* One token: z_tq1_row per row. A batch: rows rewritten as TQ2_0 for the
 * TQ2_0 batch kernel (bn_mm_tq1_0_via_tq2), which unpacks 2-bit codes once
 * per 4-token tile where base-3 decoding would be paid per token and row.
 * One token on rows longer than 64 blocks (past the repack buffer): the ymm
 * kernel. */
static void vnni_mm_tq1_0(const bn_qmat *W, const bn_act *a, int64_t r0, int64_t r1, float *Y, int64_t ldy) {
    const int64_t nb = W->K / BN_QK_K;
    if (a->n == 1 && nb > Z_TQ1_NB_MAX) {
        x86_mm_tq1_0(W, a, r0, r1, Y, ldy);
        return;
    }
    if (a->n == 1) {
        const bn_block_q8_K *y = (const bn_block_q8_K *)a->data;
        _Alignas(64) int8_t yr[Z_TQ1_NB_MAX * Z_TQ1_YBYTES];
        _Alignas(32) int32_t off[Z_TQ1_NB_MAX * 8];
        z_tq1_repack(y, nb, yr, off);
        for (int64_t r = r0; r < r1; r++)
            Y[r] = z_tq1_row((const bn_block_tq1_0 *)(W->data + (size_t)r * W->row_bytes), y, yr, off, nb);
        return;
    }
    bn_mm_tq1_0_via_tq2(W, a, r0, r1, Y, ldy, bn_tq1_to_tq2_avx2, vnni_mm_tq2_0);
}

/* ---- Q8_0, one token, on zmm ------------------------------------------------
 * The ymm tile (x86_q8_0_tile8: 8 rows, two runs of 4) read the Q8_0 head
 * at 27 GB/s per core from memory and 33 from L2 on the Zen 5 VM, where the
 * F16 head streams 35 and a read 40: it spent its time on instructions
 * (vpsignb twice per row block, a vphaddd tree per 8 rows, eight vpinsrw)
 * and its 8 rows were 8 short streams. Here, as the F16 head: four runs read
 * side by side, each a row at a time, one sequential stream per run, 16
 * blocks (544 bytes) of each row per step. Two blocks share a zmm; the sign
 * moves off the weights by the offset w + 128 (w ^ 0x80, u8), so one
 * vpdpbusd gives sum (w + 128) q, and the token's 128 * sum q per block
 * (prep) comes off once 8 such vectors (4 rows x 4 blocks) are reduced by
 * one unpack/add tree to a vector whose 128-bit lanes are the 4 blocks and
 * whose elements are the 4 rows. The integers are exact as before, and each
 * row keeps the scalar reference's float chain, sumf += (float)s * (dx * dy)
 * in block order, as one element of an xmm chain. Same process, in rotation
 * with the ymm tile, a 349 MB Q8_0 head, GB/s at 1 / 2 threads: 26.5 -> 30.6
 * / 40.5 -> 52.9 (1.16x / 1.31x; other rotations 1.06-1.13x / 1.02-1.09x),
 * from L2 45 -> 51; each row's scales by one gather, 16 blocks' 4 x 4 sums
 * per step. (Two earlier forms of 16 rows per step, 4 runs of 4 adjacent
 * rows, read from L2 at 39-49 GB/s but from memory no faster than the ymm
 * tile: 16 short streams.) BN_PF_RUN: each run prefetched into L1 this far
 * ahead of itself (1 KB slower, 4 KB within noise). */
enum { Z_Q8_G = 16 };

/* The token as z_q8_rows4 reads it: per block dy (float) and 128 * sum q
 * (int32), each four times (one per row lane); NULL where they do not fit
 * buf. */
static const void *vnni_prep_q8_0(const bn_qmat *W, const bn_act *a, void *buf) {
    const int64_t nb = W->K / BN_QK8_0;
    if (nb * 32 > BN_RUNS_PREP_BYTES) return NULL;
    const bn_block_q8_0 *y = (const bn_block_q8_0 *)a->data;
    float *dy = buf;
    int32_t *b128 = (int32_t *)buf + 4 * nb;
    for (int64_t i = 0; i < nb; i++) {
        int32_t sq = 0;
        for (int k = 0; k < BN_QK8_0; k++) sq += y[i].qs[k];
        for (int r = 0; r < 4; r++) {
            dy[4 * i + r] = _cvtsh_ss(y[i].d);
            b128[4 * i + r] = 128 * sq;
        }
    }
    return buf;
}

/* 8 vectors of 16 int32 lanes -> one: pairs of 32-bit, then of 64-bit
 * interleaves, then 128-bit lanes. With v[r] = row r's blocks (b, b+1)
 * side by side and v[4 + r] its blocks (b+2, b+3), r < 4, the 128-bit lane
 * k of the result holds block b+k's sums of rows 0-3. */
BN_AI __m512i z_q8_tree(const __m512i *v) {
    __m512i t[4];
#pragma GCC unroll 4
    for (int k = 0; k < 4; k++)
        t[k] = _mm512_add_epi32(_mm512_unpacklo_epi32(v[2 * k], v[2 * k + 1]), _mm512_unpackhi_epi32(v[2 * k], v[2 * k + 1]));
    const __m512i u0 = _mm512_add_epi32(_mm512_unpacklo_epi64(t[0], t[1]), _mm512_unpackhi_epi64(t[0], t[1]));
    const __m512i u1 = _mm512_add_epi32(_mm512_unpacklo_epi64(t[2], t[3]), _mm512_unpackhi_epi64(t[2], t[3]));
    return _mm512_add_epi32(_mm512_shuffle_i32x4(u0, u1, _MM_SHUFFLE(2, 0, 2, 0)),
                            _mm512_shuffle_i32x4(u0, u1, _MM_SHUFFLE(3, 1, 3, 1)));
}

/* Four rows x[r] against one token (dy, b128: vnni_prep_q8_0's), each x[r]
 * prefetched pf bytes ahead of itself; out[r]. The rows lie less than 2 GB
 * after x[0] (one gather reads the four rows' scales). */
BN_AI void z_q8_rows4(const bn_block_q8_0 *const *x, const bn_block_q8_0 *y, const float *dy, const int32_t *b128,
                      int64_t nb, size_t pf, float *out) {
    const __m512i flip = _mm512_set1_epi8((char)0x80);
    /* lane 4k + r: the scale of block k (of four) in row r, from x[0] */
    __m512i doff;
    {
        _Alignas(64) int32_t o[16];
        for (int k = 0; k < 4; k++)
            for (int r = 0; r < 4; r++) o[4 * k + r] = (int32_t)((const uint8_t *)x[r] - (const uint8_t *)x[0]) + 34 * k;
        doff = _mm512_load_si512(o);
    }
    __m128 sum = _mm_setzero_ps();
    int64_t i = 0;
    for (; i + Z_Q8_G <= nb; i += Z_Q8_G) {
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++)
#pragma GCC unroll 9
            for (int l = 0; l < 9; l++) _mm_prefetch((const char *)&x[r][i] + pf + 64 * l, _MM_HINT_T0);
#pragma GCC unroll 4
        for (int m = 0; m < 4; m++) { /* blocks i + 4m .. i + 4m + 3 */
            const int64_t b = i + 4 * m;
            const __m512i q01 = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)y[b].qs)),
                                                   _mm256_loadu_si256((const __m256i *)y[b + 1].qs), 1);
            const __m512i q23 = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)y[b + 2].qs)),
                                                   _mm256_loadu_si256((const __m256i *)y[b + 3].qs), 1);
            __m512i v[8];
#pragma GCC unroll 4
            for (int r = 0; r < 4; r++) {
                const bn_block_q8_0 *xb = x[r] + b;
                const __m512i w01 = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)xb[0].qs)),
                                                       _mm256_loadu_si256((const __m256i *)xb[1].qs), 1);
                const __m512i w23 = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)xb[2].qs)),
                                                       _mm256_loadu_si256((const __m256i *)xb[3].qs), 1);
                v[r] = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_xor_si512(w01, flip), q01);
                v[4 + r] = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_xor_si512(w23, flip), q23);
            }
            const __m512i si = _mm512_sub_epi32(z_q8_tree(v), _mm512_loadu_si512(b128 + 4 * b));
            const __m256i dh = _mm512_cvtepi32_epi16(_mm512_i32gather_epi32(doff, (const void *)(x[0] + b), 1));
            const __m512 d = _mm512_mul_ps(_mm512_cvtph_ps(dh), _mm512_loadu_ps(dy + 4 * b));
            const __m512 p = _mm512_mul_ps(_mm512_cvtepi32_ps(si), d);
            /* the four rows' chains, block after block */
            sum = _mm_add_ps(sum, _mm512_castps512_ps128(p));
            sum = _mm_add_ps(sum, _mm512_extractf32x4_ps(p, 1));
            sum = _mm_add_ps(sum, _mm512_extractf32x4_ps(p, 2));
            sum = _mm_add_ps(sum, _mm512_extractf32x4_ps(p, 3));
        }
    }
    float s4[4];
    _mm_storeu_ps(s4, sum);
    for (; i < nb; i++) /* the last nb % 16 blocks */
        for (int r = 0; r < 4; r++) {
            const int32_t s = x86_hsum_i32(x86_q8_0_block(&x[r][i], &y[i]));
            s4[r] += (float)s * (_cvtsh_ss(x[r][i].d) * dy[4 * i]);
        }
    for (int r = 0; r < 4; r++) out[r] = s4[r];
}

/* One token, rows start[s] + i for s < 4, i < len, four at a time (one per
 * run) through z_q8_rows4; p from vnni_prep_q8_0, or NULL to prepare here. */
static void z_q8_one(const bn_qmat *W, const bn_act *a, const void *p, const int64_t *start, int64_t len, float *Y) {
    const int64_t nb = W->K / BN_QK8_0;
    _Alignas(64) uint8_t buf[BN_RUNS_PREP_BYTES];
    if (!p) p = vnni_prep_q8_0(W, a, buf);
    int64_t span = 0; /* z_q8_rows4 gathers the scales at 32-bit offsets from run 0's row */
    for (int s = 1; s < 4; s++) span = llabs(start[s] - start[0]) > span ? llabs(start[s] - start[0]) : span;
    if (!p || (span + 1) * (int64_t)W->row_bytes > INT32_MAX) {
        /* rows over 1024 blocks, or runs 2 GB apart: the ymm kernel, run by run */
        for (int s = 0; s < 4; s++) x86_mm_q8_0(W, a, start[s], start[s] + len, Y, W->M);
        return;
    }
    const float *dy = p;
    const int32_t *b128 = (const int32_t *)p + 4 * nb;
    const bn_block_q8_0 *y = (const bn_block_q8_0 *)a->data;
    for (int64_t i = 0; i < len; i++) {
        const bn_block_q8_0 *x[4];
        for (int s = 0; s < 4; s++) x[s] = (const bn_block_q8_0 *)(W->data + (size_t)(start[s] + i) * W->row_bytes);
        float o[4];
        z_q8_rows4(x, y, dy, b128, nb, BN_PF_RUN, o);
        for (int s = 0; s < 4; s++) Y[start[s] + i] = o[s];
    }
}

/* One token: four runs (z_q8_one), the 0-3 rows left over and batches by
 * the ymm kernel. */
static void vnni_mm_q8_0(const bn_qmat *W, const bn_act *a, int64_t r0, int64_t r1, float *Y, int64_t ldy) {
    if (a->n == 1) {
        const int64_t n = (r1 - r0) / 4, start[4] = { r0, r0 + n, r0 + 2 * n, r0 + 3 * n };
        if (n > 0) z_q8_one(W, a, NULL, start, n, Y);
        r0 += 4 * n;
    }
    x86_mm_q8_0(W, a, r0, r1, Y, ldy);
}
static void vnni_runs_q8_0(const bn_qmat *W, const bn_act *a, const void *prep, const int64_t *start, int64_t len,
                           float *Y) {
    z_q8_one(W, a, prep, start, len, Y);
}

/* ---- F16 / F32 with 512-bit vectors ------------------------------------------
 * Two zmm accumulators per (row, token) = the scalar's 32 lanes (lanes 0-15 and
 * 16-31), fma per element, tail on the same lanes with fmaf, the scalar's
 * reduction tree: bitwise equal to the reference. Decode runs 4 rows at a time
 * (8 accumulators), prefetching the tile's contiguous bytes linearly ahead. */
#include <math.h>

static float z_reduce32(float *acc) {
    for (int h = 16; h >= 1; h /= 2)
        for (int j = 0; j < h; j++) acc[j] = acc[j] + acc[j + h];
    return acc[0];
}

/* z_reduce32 of lanes 0-15 in a and 16-31 in b without the trip through
 * memory: each step h adds the upper h lanes onto the lower h, as the loop
 * does, so the sum is bitwise the same. The one-token F16 head reduces once
 * per 5 KB row: SPR VM, gemvprobe, 1 / 2 threads, 0.913-0.922 / 0.847-0.883
 * -> 0.925-0.952 / 0.897-0.905 of the read. */
BN_AI float z_reduce32_regs(__m512 a, __m512 b) {
    const __m512 s16 = _mm512_add_ps(a, b);
    const __m256 s8 = _mm256_add_ps(_mm512_castps512_ps256(s16),
                                    _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(s16), 1)));
    const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
    const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    return _mm_cvtss_f32(_mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1)));
}

BN_AI __m512 z_ld(const void *p, int64_t k, const int F16) {
    if (F16) return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)((const uint16_t *)p + k)));
    return _mm512_loadu_ps((const float *)p + k);
}

/* XF: x is f16 (1) or already f32 (0); F16: the weights are f16. SEP: the
 * RB rows lie apart (separate streams, each prefetched PF ahead of itself);
 * otherwise they are adjacent and prefetched as one stream, a tile + PF
 * ahead. Either way row r's result depends only on row r. */
BN_AI void z_tile_pf(const void *const *w, const int RB, const void *x, const int XF, int64_t K, const int F16, const size_t PF,
                     const int L2, const int SEP, float *out) {
    __m512 acc[4][2];
    const char *pf = (const char *)w[0] + (size_t)RB * (size_t)K * (F16 ? 2 : 4) + PF;
#pragma GCC unroll 4
    for (int r = 0; r < RB; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    const int64_t K32 = K & ~(int64_t)31;
    for (int64_t k = 0; k < K32; k += 32) {
        __m512 x0 = z_ld(x, k, XF), x1 = z_ld(x, k + 16, XF);
        if (SEP) {
#pragma GCC unroll 4
            for (int r = 0; r < RB; r++)
                for (int c = 0; c < (F16 ? 1 : 2); c++) x86_prefetch((const char *)w[r] + (k << (F16 ? 1 : 2)) + PF + 64 * c, L2);
        } else
            for (int r = 0; r < RB * (F16 ? 1 : 2); r++) x86_prefetch(pf + (size_t)RB * (k << (F16 ? 1 : 2)) + 64 * r, L2);
#pragma GCC unroll 4
        for (int r = 0; r < RB; r++) {
            acc[r][0] = _mm512_fmadd_ps(z_ld(w[r], k, F16), x0, acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(z_ld(w[r], k + 16, F16), x1, acc[r][1]);
        }
    }
    for (int r = 0; r < RB; r++) {
        if (K32 == K) { /* no tail: z_reduce32's tree on the registers */
            out[r] = z_reduce32_regs(acc[r][0], acc[r][1]);
            continue;
        }
        float lanes[32];
        _mm512_storeu_ps(lanes, acc[r][0]);
        _mm512_storeu_ps(lanes + 16, acc[r][1]);
        for (int64_t k = K32; k < K; k++) {
            float wf = F16 ? _cvtsh_ss(((const uint16_t *)w[r])[k]) : ((const float *)w[r])[k];
            float xf = XF ? _cvtsh_ss(((const uint16_t *)x)[k]) : ((const float *)x)[k];
            lanes[k & 31] = fmaf(wf, xf, lanes[k & 31]);
        }
        out[r] = z_reduce32(lanes);
    }
}

BN_AI void z_tile(const void *const *w, const int RB, const void *x, const int XF, int64_t K, const int F16, const size_t PF,
                  const int L2, float *out) {
    z_tile_pf(w, RB, x, XF, K, F16, PF, L2, 0, out);
}

/* One token, rows [r0, r1) as four streams read side by side: the range cut
 * in four runs of n rows, row i of each run in one z_tile_pf, each run
 * prefetched 2 KB ahead of itself (BN_PF_RUN). On the Zen 5 VM, the F16 head
 * (128256 x 2560), timed in rotation in one process against a same-pass
 * best-way read, 1 / 2 threads: a row at a time (one stream, 4 KB ahead)
 * 0.88 / 0.89 of the read, four streams without prefetch 1.08 / 0.91, four
 * streams 2 KB ahead 1.16 / 1.10; a plain 4-stream read is faster than a
 * 1-stream one too, which is why bench/readways.h reads that way as well.
 * The rest (fewer than 4 rows left over) a row at a time. x is f32. */
BN_AI void z_rows_runs(const bn_qmat *W, const float *x, const int64_t *start, int64_t len, float *Y, const int F16,
                       const int L2) {
    for (int64_t i = 0; i < len; i++) {
        const void *w[4];
        float o[4];
        for (int s = 0; s < 4; s++) w[s] = W->data + (size_t)(start[s] + i) * W->row_bytes;
        z_tile_pf(w, 4, x, 0, W->K, F16, BN_PF_RUN, L2, 1, o);
        for (int s = 0; s < 4; s++) Y[start[s] + i] = o[s];
    }
}

BN_AI int64_t z_rows_4streams(const bn_qmat *W, const float *x, int64_t r0, int64_t r1, float *Y, const int F16, const int L2) {
    const int64_t n = (r1 - r0) / 4, start[4] = { r0, r0 + n, r0 + 2 * n, r0 + 3 * n };
    z_rows_runs(W, x, start, n, Y, F16, L2);
    return r0 + 4 * n;
}

/* One f16 token as f32 (exact) into buf, once for all rows instead of two
 * conversions per 32 weights in every row; NULL if K floats do not fit
 * BN_RUNS_PREP_BYTES. Also the F16 slot's mm_runs_prep. */
static const void *z_prep_f16(const bn_qmat *W, const bn_act *a, void *buf) {
    if (W->K * (int64_t)sizeof(float) > BN_RUNS_PREP_BYTES) return NULL;
    for (int64_t k = 0; k < W->K; k++) ((float *)buf)[k] = _cvtsh_ss(((const uint16_t *)a->data)[k]);
    return buf;
}

/* Row groups outer, tokens inner: with several tokens the 4 rows (4 x K
 * weights) are read from memory once and from L1/L2 for the other tokens. */
BN_AI void z_mm(const bn_qmat *W, const bn_act *a, int64_t r0, int64_t r1, float *Y, int64_t ldy, const int F16,
                const size_t PF, const int L2, const int SEP) {
    int64_t r = r0;
    /* one token (decode): a row at a time is one sequential stream, which the
     * hardware prefetcher follows better than four rows 5 KB apart (F16 head,
     * 1 thread: 33.5 -> 35.5 GB/s in a microbenchmark) */
    const int64_t rb = a->n == 1 ? r0 : r1;
    for (; r + 4 <= rb; r += 4) {
        const void *w[4] = { W->data + (size_t)r * W->row_bytes, W->data + (size_t)(r + 1) * W->row_bytes,
                             W->data + (size_t)(r + 2) * W->row_bytes, W->data + (size_t)(r + 3) * W->row_bytes };
        for (int t = 0; t < a->n; t++)
            z_tile(w, 4, (const uint8_t *)a->data + (size_t)t * a->row_bytes, F16, W->K, F16, PF, L2, &Y[(int64_t)t * ldy + r]);
    }
    /* one f16 token: as f32 once (z_prep_f16) */
    _Alignas(64) float xf[BN_RUNS_PREP_BYTES / sizeof(float)];
    const bool x32 = F16 && a->n == 1 && r < r1 && z_prep_f16(W, a, xf);
    if (SEP && a->n == 1 && (x32 || !F16)) r = z_rows_4streams(W, x32 ? xf : (const float *)a->data, r, r1, Y, F16, L2);
    for (; r < r1; r++) {
        const void *w[1] = { W->data + (size_t)r * W->row_bytes };
        if (x32) {
            z_tile(w, 1, xf, 0, W->K, F16, PF, L2, &Y[r]);
            continue;
        }
        for (int t = 0; t < a->n; t++)
            z_tile(w, 1, (const uint8_t *)a->data + (size_t)t * a->row_bytes, F16, W->K, F16, PF, L2, &Y[(int64_t)t * ldy + r]);
    }
}

static void z_mm_f16(const bn_qmat *W, const bn_act *a, int64_t r0, int64_t r1, float *Y, int64_t ldy) {
    z_mm(W, a, r0, r1, Y, ldy, 1, BN_PF_AHEAD, 0, 1);
}

static void z_mm_f32(const bn_qmat *W, const bn_act *a, int64_t r0, int64_t r1, float *Y, int64_t ldy) {
    z_mm(W, a, r0, r1, Y, ldy, 0, BN_PF_AHEAD, 0, 1);
}

/* Part of z_mm's four streams (SEP, one token; bn_kernels.mm_runs). An f16
 * token is converted to f32 once (mm_runs_prep, or here without one), as
 * z_mm does; where z_mm would not use the streams (f16 rows over 8192 wide)
 * each run goes a row at a time. */
BN_AI void z_runs(const bn_qmat *W, const bn_act *a, const void *prep, const int64_t *start, int64_t len, float *Y,
                  const int F16) {
    _Alignas(64) float xf[BN_RUNS_PREP_BYTES / sizeof(float)];
    if (F16 && !prep) prep = z_prep_f16(W, a, xf);
    if (F16 && !prep) {
        for (int j = 0; j < 4; j++) z_mm(W, a, start[j], start[j] + len, Y, W->M, F16, BN_PF_AHEAD, 0, 0);
        return;
    }
    z_rows_runs(W, F16 ? (const float *)prep : (const float *)a->data, start, len, Y, F16, 0);
}
static void z_runs_f16(const bn_qmat *W, const bn_act *a, const void *prep, const int64_t *start, int64_t len, float *Y) {
    z_runs(W, a, prep, start, len, Y, 1);
}
static void z_runs_f32(const bn_qmat *W, const bn_act *a, const void *prep, const int64_t *start, int64_t len, float *Y) {
    z_runs(W, a, prep, start, len, Y, 0);
}

/* The AMX table's F16 and Q8_0 slots. F16: the same kernel, one token
 * prefetched into L2 (BN_PF_L2). Q8_0, one token: a row at a time
 * (x86_q8_0_row), prefetched into L1 2 KB ahead. gemvprobe on the SPR VM,
 * GB/s at 1 / 2 threads, read 18.3-19.2 / 37.4-38.0: the 8-row tile 12.6-13.0
 * / 24.9-25.6 (into L2 8 KB ahead; 4-32 KB and per-row prefetches no
 * better), the row 14.2 / 28 into L2 8 KB ahead, 15.3-15.9 / 31.0-31.8 into
 * L1 1.5-2 KB ahead, 11.6-12.3 / 23.4-28.7 at 2.5-4 KB. From L2 both run at
 * ~29 GB/s and without the float chain the row streams no faster, so the
 * limit from memory is the access pattern, not the arithmetic. */
static void amx_mm_f16(const bn_qmat *W, const bn_act *a, int64_t r0, int64_t r1, float *Y, int64_t ldy) {
    if (a->n == 1) z_mm(W, a, r0, r1, Y, ldy, 1, BN_PF_L2, 1, 0);
    else z_mm(W, a, r0, r1, Y, ldy, 1, BN_PF_AHEAD, 0, 0);
}

#define BN_PF_Q8_ROW 2048
static void amx_mm_q8_0(const bn_qmat *W, const bn_act *a, int64_t r0, int64_t r1, float *Y, int64_t ldy) {
    const int64_t nb = W->K / BN_QK8_0;
    float dyf[1024];
    if (a->n != 1) { /* batches as the VNNI table */
        x86_mm_q8_0(W, a, r0, r1, Y, ldy);
        return;
    }
    if (nb > 1024) { /* rows too long for dyf: the 8-row tile */
        x86_mm_q8_0_pf(W, a, r0, r1, Y, ldy, BN_PF_L2, 1, 0);
        return;
    }
    const bn_block_q8_0 *y = (const bn_block_q8_0 *)a->data;
    for (int64_t i = 0; i < nb; i++) dyf[i] = _cvtsh_ss(y[i].d);
    for (int64_t r = r0; r < r1; r++)
        Y[r] = x86_q8_0_row((const bn_block_q8_0 *)(W->data + (size_t)r * W->row_bytes), y, dyf, nb, BN_PF_Q8_ROW, 0);
}

/* What the three AVX-512 tables share: the AVX2 activation quantizers, and
 * (VNNI, AMX) every matmul slot but I2_S's. */
#define Z_QUANTIZERS                                                                                        \
    .qa = { [BN_ACT_I8S] = bn_qa_i8s_avx2, [BN_ACT_Q8K] = bn_qa_q8k_avx2, [BN_ACT_Q8_0] = bn_qa_q8_0_scalar, \
            [BN_ACT_F16] = bn_qa_f16_avx2, [BN_ACT_F32] = bn_qa_f32_scalar },                               \
    .qa_isa = { "avx2", "avx2", "scalar", "avx2", "scalar" },                                          \
    .tq1_to_tq2 = bn_tq1_to_tq2_avx2
#define VNNI_MATMULS(I2S, Q8_0, F16)                                                               \
    [BN_W_I2S] = I2S, [BN_W_TQ2_0] = vnni_mm_tq2_0, [BN_W_TQ1_0] = vnni_mm_tq1_0, [BN_W_Q8_0] = Q8_0, \
    [BN_W_Q6_K] = z_mm_q6_K, [BN_W_F16] = F16, [BN_W_F32] = z_mm_f32

BN_KERNELS_ENTRY_POINTS(avx512, bn_kernels_avx512)

BN_KERNELS_ENTRY_POINTS(vnni, bn_kernels_avx512_vnni)

const bn_kernels bn_kernels_avx512 = {
    .isa = BN_ISA_AVX512,
    .name = "avx512",
    .quantize_act = avx512_quantize,
    .matmul = avx512_matmul,
    .mm = { [BN_W_I2S] = bn_mm_i2s_avx2, [BN_W_TQ2_0] = bn_mm_tq2_0_avx2, [BN_W_TQ1_0] = bn_mm_tq1_0_avx2,
            [BN_W_Q8_0] = bn_mm_q8_0_avx2, [BN_W_Q6_K] = z_mm_q6_K, [BN_W_F16] = z_mm_f16,
            [BN_W_F32] = z_mm_f32 },
    .mm_isa = { "avx2", "avx2", "avx2", "avx2", "avx512", "avx512", "avx512" },
    .mm_runs = { [BN_W_Q6_K] = z_runs_q6_K, [BN_W_F16] = z_runs_f16, [BN_W_F32] = z_runs_f32 },
    .mm_runs_prep = { [BN_W_F16] = z_prep_f16 },
    .mm_runs_n = { [BN_W_Q6_K] = 4, [BN_W_F16] = 4, [BN_W_F32] = 4 },
    .mm_run_unit = { [BN_W_Q6_K] = 1, [BN_W_F16] = 1, [BN_W_F32] = 1 },
    Z_QUANTIZERS,
};

const bn_kernels bn_kernels_avx512_vnni = {
    .isa = BN_ISA_AVX512,
    .name = "avx512-vnni",
    .quantize_act = vnni_quantize,
    .matmul = vnni_matmul,
    .mm = { VNNI_MATMULS(vnni_mm_i2s, vnni_mm_q8_0, z_mm_f16) },
    .mm_isa = { "avx512-vnni", "avx512-vnni", "avx512-vnni", "avx512-vnni", "avx512-vnni", "avx512", "avx512" },
    .mm_runs = { [BN_W_I2S] = vnni_runs_i2s, [BN_W_TQ2_0] = vnni_runs_tq2_0, [BN_W_Q8_0] = vnni_runs_q8_0,
                 [BN_W_Q6_K] = z_runs_q6_K, [BN_W_F16] = z_runs_f16, [BN_W_F32] = z_runs_f32 },
    .mm_runs_prep = { [BN_W_I2S] = vnni_prep_i2s, [BN_W_TQ2_0] = vnni_prep_tq2_0, [BN_W_Q8_0] = vnni_prep_q8_0,
                      [BN_W_F16] = z_prep_f16 },
    .mm_runs_n = { [BN_W_I2S] = 4, [BN_W_TQ2_0] = 4, [BN_W_Q8_0] = 4, [BN_W_Q6_K] = 4, [BN_W_F16] = 4, [BN_W_F32] = 4 },
    .mm_run_unit = { [BN_W_I2S] = 1, [BN_W_TQ2_0] = 1, [BN_W_Q8_0] = 1, [BN_W_Q6_K] = 1, [BN_W_F16] = 1, [BN_W_F32] = 1 },
    Z_QUANTIZERS,
};

BN_KERNELS_ENTRY_POINTS(amx, bn_kernels_avx512_amx)

/* The VNNI table with I2_S batches of 16+ tokens on AMX tiles. */
const bn_kernels bn_kernels_avx512_amx = {
    .isa = BN_ISA_AVX512,
    .name = "avx512-amx",
    .quantize_act = amx_quantize,
    .matmul = amx_matmul,
    .mm = { VNNI_MATMULS(bn_mm_i2s_amx, amx_mm_q8_0, amx_mm_f16) },
    /* AMX unpacks a 32-row weight panel per call and pays it back over the
     * chunk's tokens: pp512 on the SPR VM, 1 thread, 256 KB 152 tok/s, 512 KB
     * 185, 1 MB 198, 2 MB 187 (the chunk must stay in the 2 MB L2) */
    .mm_chunk = { [BN_W_I2S] = 1u << 20 },
    .mm_isa = { "avx512-amx", "avx512-vnni", "avx512-vnni", "avx512-vnni", "avx512-vnni", "avx512", "avx512" },
    .mm_runs = { [BN_W_TQ2_0] = vnni_runs_tq2_0, [BN_W_Q6_K] = z_runs_q6_K, [BN_W_F32] = z_runs_f32 },
    .mm_runs_prep = { [BN_W_TQ2_0] = vnni_prep_tq2_0 },
    .mm_runs_n = { [BN_W_TQ2_0] = 4, [BN_W_Q6_K] = 4, [BN_W_F32] = 4 },
    .mm_run_unit = { [BN_W_TQ2_0] = 1, [BN_W_Q6_K] = 1, [BN_W_F32] = 1 },
    Z_QUANTIZERS,
};
