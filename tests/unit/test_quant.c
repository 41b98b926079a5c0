/* test_quant.c - the scalar reference quantizers and dequantizers: exact
 * round trips for ternary data (I2_S, TQ2_0, TQ1_0), byte layouts checked
 * against hand-computed values from the bitnet.cpp / llama.cpp definitions,
 * q8_0 / q8_K / i8s rounding rules, and the Q6_K error budget of llama.cpp's
 * test-quantize-fns (rmse < 0.002, dot error < 0.02 on 0.1 + 2cos(i)). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "quant.h"
#include "tap.h"
#define BN_TEST_SEED 0x243F6A8885A308D3ull
#include "rng.h"


/* s * T with T in {-1, 0, 1}; zero_blocks makes some 256-blocks all zero. */
static void ternary(float *x, int64_t n, float s, int zero_blocks) {
    for (int64_t i = 0; i < n; i++) x[i] = (float)((int)(rng_u64() % 3) - 1) * s;
    if (zero_blocks)
        for (int64_t i = 256; i < n && i < 512; i++) x[i] = 0;
}

static void test_i2s(void) {
    const int64_t K = 384, M = 3, n = K * M;
    float x[384 * 3], y[384 * 3];
    ternary(x, n, 0.046875f, 0);
    uint8_t *buf = calloc(1, bn_i2s_nbytes(n));
    size_t wrote = bn_quantize_i2_s_ref(x, buf, n);
    float scale;
    memcpy(&scale, buf + n / 4, 4);
    int trailer_zero = 1;
    for (int i = 4; i < 32; i++) trailer_zero &= buf[n / 4 + i] == 0;
    CHECK(wrote == (size_t)n / 4 + 32 && scale == 0.046875f && trailer_zero,
          "i2_s: n/4+32 bytes, f32 scale = max|x| in the trailer, rest of trailer zero");
    for (int64_t r = 0; r < M; r++) bn_dequantize_row_i2_s(buf + r * K / 4, scale, y + r * K, K);
    CHECK(!memcmp(x, y, sizeof x), "i2_s: dequant(quant(s*T)) == s*T exactly (rows at r*K/4)");
    free(buf);

    /* layout: element 32g+p of a block at byte p, bits 7-2g:6-2g; codes 0,1,2 = -1,0,+1 */
    float h[128] = { 0 };
    h[0] = 1; h[32] = -1; h[64] = 0; h[96] = 1; /* byte 0: 10 00 01 10 = 0x86 */
    h[31] = -1;                                  /* byte 31: 00 01 01 01 = 0x15 */
    uint8_t hb[32 + 32];
    bn_quantize_i2_s_ref(h, hb, 128);
    CHECK(hb[0] == 0x86 && hb[31] == 0x15 && hb[1] == 0x55, "i2_s: hand-computed bytes 0x86 0x55 0x15 (got %02x %02x %02x)",
          hb[0], hb[1], hb[31]);
    CHECK(bn_i2s_code(hb, 0) == 2 && bn_i2s_code(hb, 32) == 0 && bn_i2s_code(hb, 64) == 1 && bn_i2s_code(hb, 96) == 2,
          "i2_s: bn_i2s_code reads the layout back");

    /* quantize_i2_s semantics: sign only, |x| < 1e-6 -> 0, scale = max|x| */
    float s3[128] = { 0 };
    s3[0] = 0.3f; s3[1] = -0.1f; s3[2] = 5e-7f; s3[3] = -0.3f;
    bn_quantize_i2_s_ref(s3, hb, 128);
    memcpy(&scale, hb + 32, 4);
    CHECK(bn_i2s_code(hb, 0) == 2 && bn_i2s_code(hb, 1) == 0 && bn_i2s_code(hb, 2) == 1 && bn_i2s_code(hb, 3) == 0 &&
              scale == 0.3f,
          "i2_s: non-ternary input -> sign codes, |x|<1e-6 -> 0, scale = max|x| (bitnet.cpp semantics)");
}

static void test_i8s(void) {
    float x[8] = { 127, 2.5f, -2.5f, 3.5f, -0.5f, 0.5f, 1.5f, -127 };
    int8_t q[8];
    float s;
    int32_t sum;
    bn_quantize_row_i8s_ref(x, q, 8, &s, &sum);
    CHECK(s == 1.0f && q[0] == 127 && q[1] == 2 && q[2] == -2 && q[3] == 4 && q[4] == 0 && q[5] == 0 && q[6] == 2 &&
              q[7] == -127 && sum == 6,
          "i8s: s = 127/max, round half to even, sum kept (sum=%d)", (int)sum);
    float z[4] = { 0, 0, 0, 0 };
    bn_quantize_row_i8s_ref(z, q, 4, &s, &sum);
    CHECK(s == (float)(127 / 0.00001) && q[0] == 0 && sum == 0, "i8s: all-zero row uses max = 1e-5");
    float big[2] = { 1.0f, -1.0f };
    bn_quantize_row_i8s_ref(big, q, 2, &s, &sum);
    CHECK(q[0] == 127 && q[1] == -127 && sum == 0, "i8s: symmetric extremes map to +-127");
}

static void test_tq2(void) {
    const int64_t n = 256 * 5;
    float x[256 * 5], y[256 * 5];
    ternary(x, n, 0.046875f, 1);
    bn_block_tq2_0 b[5];
    bn_quantize_row_tq2_0_ref(x, b, n);
    bn_dequantize_row_tq2_0(b, y, n);
    CHECK(!memcmp(x, y, sizeof x), "tq2_0: dequant(quant(s*T)) == s*T exactly (incl. an all-zero block)");
    CHECK(b[1].d == 0, "tq2_0: all-zero block has d = 0");
    float h[256] = { 0 };
    h[0] = 1; h[32] = -1; h[64] = 0; h[96] = 1; /* byte 0: bits 1:0 = 2, 3:2 = 0, 5:4 = 1, 7:6 = 2 -> 0x92 */
    h[128] = -1;                                 /* byte 32: 0x54 */
    bn_block_tq2_0 hb;
    bn_quantize_row_tq2_0_ref(h, &hb, 256);
    CHECK(hb.qs[0] == 0x92 && hb.qs[32] == 0x54 && hb.qs[1] == 0x55 && hb.d == 0x3c00,
          "tq2_0: hand-computed bytes 0x92 0x54 0x55, d = f16(1.0) at byte 64 (got %02x %02x %02x %04x)", hb.qs[0],
          hb.qs[32], hb.qs[1], hb.d);
    /* lroundf(x/d): halves round away from zero */
    float r[256] = { 0 };
    r[0] = 1.0f; r[1] = 0.5f; r[2] = -0.5f; r[3] = 0.49f;
    bn_quantize_row_tq2_0_ref(r, &hb, 256);
    bn_dequantize_row_tq2_0(&hb, y, 256);
    CHECK(y[1] == 1.0f && y[2] == -1.0f && y[3] == 0.0f, "tq2_0: lroundf rounds 0.5 away from zero, 0.49 to 0");
}

static void test_tq1(void) {
    const int64_t n = 256 * 5;
    float x[256 * 5], y[256 * 5];
    ternary(x, n, 0.046875f, 1);
    bn_block_tq1_0 b[5];
    bn_quantize_row_tq1_0_ref(x, b, n);
    bn_dequantize_row_tq1_0(b, y, n);
    CHECK(!memcmp(x, y, sizeof x), "tq1_0: dequant(quant(s*T)) == s*T exactly (incl. an all-zero block)");
    /* byte 0 holds elements 0,32,64,96,128 as trits (2,0,1,2,1): q = 2*81+0*27+1*9+2*3+1 = 178,
     * stored ceil(178*256/243) = 188 */
    float h[256] = { 0 };
    h[0] = 1; h[32] = -1; h[64] = 0; h[96] = 1; h[128] = 0;
    /* qh[0] holds elements 240,244,248,252: trits (2,1,1,0) -> (2*27+9+3+0)*3 = 198 -> ceil(198*256/243) = 209 */
    h[240] = 1; h[244] = 0; h[248] = 0; h[252] = -1;
    bn_block_tq1_0 hb;
    bn_quantize_row_tq1_0_ref(h, &hb, 256);
    CHECK(hb.qs[0] == 188 && hb.qh[0] == 209 && hb.d == 0x3c00, "tq1_0: hand-computed qs[0] = 188, qh[0] = 209 (got %d %d)",
          hb.qs[0], hb.qh[0]);
    uint8_t codes[256];
    bn_tq1_0_codes(&hb, codes);
    CHECK(codes[0] == 2 && codes[32] == 0 && codes[64] == 1 && codes[96] == 2 && codes[128] == 1 && codes[240] == 2 &&
              codes[252] == 0 && codes[1] == 1,
          "tq1_0: trits decode by (uint8)(q*3^n)*3 >> 8");
    /* as TQ2_0 (what kernels without a base-3 decoder multiply): the same
     * values, also for bytes no quantizer writes (243..255) */
    bn_block_tq1_0 any[6];
    for (int i = 0; i < 6; i++) {
        for (int j = 0; j < 48; j++) any[i].qs[j] = (uint8_t)(52 * i + j);
        for (int j = 0; j < 4; j++) any[i].qh[j] = (uint8_t)(52 * i + 48 + j);
        any[i].d = (uint16_t)(0x3400 + 37 * i);
    }
    bn_block_tq2_0 t2[6];
    bn_tq1_0_to_tq2_0(any, t2, 6);
    static float y1[256 * 6], y2[256 * 6];
    bn_dequantize_row_tq1_0(any, y1, 256 * 6);
    bn_dequantize_row_tq2_0(t2, y2, 256 * 6);
    CHECK(!memcmp(y1, y2, sizeof y1), "tq1_0 -> tq2_0: the same values for every byte 0..255 and d");
}

static void test_q8(void) {
    /* q8_0: d = amax/127, roundf (half away from zero) */
    float x[32] = { 127, 2.5f, -2.5f, 0.5f };
    bn_block_q8_0 b;
    bn_quantize_row_q8_0_ref(x, &b, 32);
    CHECK(b.d == 0x3c00 && b.qs[0] == 127 && b.qs[1] == 3 && b.qs[2] == -3 && b.qs[3] == 1 && b.qs[4] == 0,
          "q8_0: d = f16(amax/127), q = roundf(x/d) (got %d %d %d)", b.qs[1], b.qs[2], b.qs[3]);
    float r[64], y[64];
    double worst = 0;
    for (int i = 0; i < 64; i++) r[i] = (float)((double)(rng_u64() >> 11) / 9007199254740992.0 * 6 - 3);
    bn_block_q8_0 bb[2];
    bn_quantize_row_q8_0_ref(r, bb, 64);
    bn_dequantize_row_q8_0(bb, y, 64);
    for (int i = 0; i < 64; i++) {
        double d = bn_f16_to_f32(bb[i / 32].d), e = fabs(r[i] - y[i]) / d;
        if (e > worst) worst = e;
    }
    /* q uses the f32 d, dequant the f16 one: |q| <= 127 times a relative 2^-11 */
    CHECK(worst <= 0.5 + 127.0 / 2048 && worst > 0.3, "q8_0: |x - d*q| <= d/2 + 127*2^-11 d (f16 rounding of d): worst %.4f d", worst);

    /* q8_K: signed max maps to -127, ties to even, bsums, d = 1/iscale */
    float k[256];
    for (int i = 0; i < 256; i++) k[i] = 1.0f;
    k[0] = -2.0f; /* iscale = 63.5: 1 -> 63.5 -> 64 (even) */
    bn_block_q8_K kb;
    bn_quantize_row_q8_K_ref(k, &kb, 256);
    CHECK(kb.qs[0] == -127 && kb.qs[1] == 64 && kb.bsums[0] == -127 + 15 * 64 && kb.bsums[1] == 16 * 64 &&
              kb.d == 1 / 63.5f,
          "q8_K: max = signed largest magnitude -> -127, nearest-even, bsums (got %d %d %d)", kb.qs[0], kb.qs[1],
          kb.bsums[0]);
    k[0] = 2.0f; /* positive max: iscale = -63.5 -> q = -64 for 1.0, 2 -> -127 */
    bn_quantize_row_q8_K_ref(k, &kb, 256);
    CHECK(kb.qs[0] == -127 && kb.qs[1] == -64 && kb.d < 0, "q8_K: positive max gives negative d and q = -127 at the max");
    memset(k, 0, sizeof k);
    memset(&kb, 0x5a, sizeof kb);
    bn_quantize_row_q8_K_ref(k, &kb, 256);
    int zero = kb.d == 0;
    for (int i = 0; i < 256; i++) zero &= kb.qs[i] == 0;
    for (int i = 0; i < 16; i++) zero &= kb.bsums[i] == 0;
    CHECK(zero, "q8_K: all-zero block -> d = 0, q = 0, bsums = 0");
    float kr[512], ky[512];
    for (int i = 0; i < 512; i++) kr[i] = (float)((double)(rng_u64() >> 11) / 9007199254740992.0 * 2 - 1);
    bn_block_q8_K kk[2];
    bn_quantize_row_q8_K_ref(kr, kk, 512);
    bn_dequantize_row_q8_K(kk, ky, 512);
    int ok = 1;
    for (int bi = 0; bi < 2; bi++)
        for (int j = 0; j < 16; j++) {
            int s = 0;
            for (int l = 0; l < 16; l++) s += kk[bi].qs[j * 16 + l];
            ok &= s == kk[bi].bsums[j];
        }
    double w2 = 0;
    for (int i = 0; i < 512; i++) {
        double e = fabs(kr[i] - ky[i]) / fabs(kk[i / 256].d);
        if (e > w2) w2 = e;
    }
    CHECK(ok && w2 <= 0.5 + 1e-4, "q8_K: bsums are sums of 16, |x - d*q| <= |d|/2 (worst %.4f)", w2);
}

/* llama.cpp tests/test-quantize-fns.cpp: generate_data, array_rmse, thresholds. */
static void test_q6k(void) {
    enum { N = 32 * 128 };
    static float a[N], b[N], out[N];
    for (int i = 0; i < N; i++) a[i] = 0.1f + 2 * cosf((float)i + 0.0f);
    for (int i = 0; i < N; i++) b[i] = 0.1f + 2 * cosf((float)i + 1.0f);
    static bn_block_q6_K q[N / 256];
    bn_quantize_row_q6_K_ref(a, q, N);
    bn_dequantize_row_q6_K(q, out, N);
    double sum = 0;
    for (int i = 0; i < N; i++) sum += (double)(a[i] - out[i]) * (a[i] - out[i]);
    float rmse = sqrtf((float)sum) / N;
    CHECK(rmse < 0.002f, "q6_K: reference quantization rmse %.6f < 0.002 (test-quantize-fns)", rmse);

    /* dot against q8_K through the scalar kernel */
    bn_gguf_tensor t;
    memset(&t, 0, sizeof t);
    t.type = BN_TYPE_Q6_K;
    t.n_dims = 2;
    t.ne[0] = N;
    t.ne[1] = 1;
    t.ne[2] = t.ne[3] = 1;
    t.data = (const uint8_t *)q;
    t.nbytes = sizeof q;
    bn_qmat m;
    bn_err e;
    bn_act act;
    int ok = bn_qmat_from_tensor(&m, &t, &e) == 0 && bn_act_alloc(&act, BN_ACT_Q8K, N, 1, &e) == 0;
    CHECK(ok, "q6_K: qmat and q8_K activations set up");
    if (!ok) return;
    const bn_kernels *k = bn_kernels_for(BN_ISA_SCALAR);
    bn_act_quantize(k, &act, b, N, 1);
    float y;
    k->matmul(&m, &act, 0, 1, &y, 1);
    double ref = 0;
    for (int i = 0; i < N; i++) ref += (double)a[i] * b[i];
    double err = fabs(y - ref) / N;
    CHECK(err < 0.02, "q6_K: vec_dot with q8_K error %.6f < 0.02 (test-quantize-fns)", err);
    bn_act_free(&act);

    /* sub-block scales: an all-zero block quantizes to zeros */
    float z[256] = { 0 };
    bn_block_q6_K zb;
    memset(&zb, 0x77, sizeof zb);
    bn_quantize_row_q6_K_ref(z, &zb, 256);
    bn_dequantize_row_q6_K(&zb, out, 256);
    int allz = zb.d == 0;
    for (int i = 0; i < 256; i++) allz &= out[i] == 0;
    CHECK(allz, "q6_K: all-zero block -> d = 0, dequantizes to 0");
}

int main(void) {
    test_i2s();
    test_i8s();
    test_tq2();
    test_tq1();
    test_q8();
    test_q6k();
    return tap_done();
}
