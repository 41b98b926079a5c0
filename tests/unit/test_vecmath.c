/* test_vecmath.c - the row helpers of lib/vecmath.c: each x86 version
 * bitwise against the C reference on random rows and edge cases (odd
 * lengths, row counts that are not a multiple of eight, exponents at and past
 * the float range, NaN, infinities, signed zeros, f16 ties and overflow). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cpu.h"
#include "tap.h"
#define BN_TEST_SEED 0x2545F4914F6CDD1Dull
#include "rng.h"
#include "util.h"
#include "vecmath.h"

/* any float bit pattern */
static float rng_bits(void) {
    uint32_t u = (uint32_t)rng_u64();
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static int same_bits(const void *a, const void *b, size_t n) { return memcmp(a, b, n) == 0; }
/* bitwise equal floats, except that any NaN equals any NaN: libm's fmaf and
 * the FMA instruction propagate NaN signs differently */
static int same_f32(const float *a, const float *b, int n) {
    for (int i = 0; i < n; i++)
        if (!(isnan(a[i]) && isnan(b[i])) && !same_bits(&a[i], &b[i], 4)) return 0;
    return 1;
}

/* v[i] for a row of mode m: 0 random in [-s, s], 1 wide exponents, 2 specials */
static void fill(float *v, int n, int mode, float s) {
    static const float sp[] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, 88.7f, -87.3f, 89.0f, -104.0f, 126.5f, -150.0f,
                               200.0f, -200.0f, 65504.0f, 65520.0f, 1e-8f, -6.1e-5f, 2.9802322e-8f};
    for (int i = 0; i < n; i++) {
        if (mode == 0) v[i] = s * rng_unif();
        else if (mode == 1) v[i] = ldexpf(rng_unif(), (int)(rng_u64() % 300) - 150);
        else v[i] = (rng_u64() & 3) ? sp[rng_u64() % (sizeof sp / sizeof sp[0])] : 300.0f * rng_unif();
    }
}

int main(void) {
    bn_cpu_info ci;
    bn_cpu_detect(&ci);
    const int x86 = ci.avx2 && ci.fma && ci.f16c;
#if !defined(__x86_64__)
    (void)x86;
#endif
    const bn_vm_level top = x86 ? BN_VM_AVX2 : BN_VM_PLAIN;
    if (!x86) printf("# no AVX2+FMA+F16C here: only the C levels are compared\n");
    static const int lens[] = {1, 3, 7, 8, 9, 15, 16, 17, 31, 64, 100, 127, 2560, 6913};
    enum { NL = sizeof lens / sizeof lens[0], MAXN = 8 * 6913 };
    float *a = malloc(MAXN * sizeof(float)), *b = malloc(MAXN * sizeof(float)), *c = malloc(MAXN * sizeof(float));
    float *u = malloc(MAXN * sizeof(float));
    uint16_t *h0 = malloc(MAXN * sizeof(uint16_t)), *h1 = malloc(MAXN * sizeof(uint16_t));
    if (!a || !b || !c || !u || !h0 || !h1) return 1;

    /* ggml_v_expf: the FMA build equals the plain build lane for lane */
    int bad = 0;
    for (int i = 0; i < 200000; i++) {
        float x = i < 100000 ? 220.0f * rng_unif() : rng_bits();
        float p = bn_ggml_expf(x, BN_VM_PLAIN), q = bn_ggml_expf(x, BN_VM_FMA);
        bad += !same_f32(&p, &q, 1);
    }
    CHECK(bad == 0, "ggml expf: FMA level bitwise the plain level (NaN signs aside) on 200000 inputs (%d differ)", bad);
    float e0 = bn_ggml_expf(0.0f, BN_VM_PLAIN), e1 = bn_ggml_expf(1.0f, BN_VM_PLAIN), e9 = bn_ggml_expf(-200.0f, BN_VM_PLAIN);
    CHECK(e0 == 1.0f && fabsf(e1 - 2.7182817f) < 1e-6f && e9 == 0.0f && isinf(bn_ggml_expf(100.0f, BN_VM_PLAIN)),
          "ggml expf: exp(0) = 1, exp(1) = %.7f, exp(-200) = 0, exp(100) = inf", e1);

    for (int mode = 0; mode < 3; mode++) {
        int fails[6] = {0};
        for (int li = 0; li < NL; li++) {
            const int n = lens[li];
            /* f16 row */
            fill(a, n, mode, 70000.0f);
            bn_f32_to_f16_row(a, h0, n, BN_VM_PLAIN);
            bn_f32_to_f16_row(a, h1, n, top);
            fails[0] += !same_bits(h0, h1, (size_t)n * 2);
            /* softmax exps and sum, max */
            fill(a, n, mode, 30.0f);
            memcpy(b, a, (size_t)n * sizeof(float));
            const float m0 = bn_max_row(a, n, BN_VM_PLAIN), m1 = bn_max_row(a, n, top);
            fails[1] += !(m0 == m1 || (isnan(m0) && isnan(m1)));
            const double s0 = bn_softmax_exp(a, n, m0, BN_VM_PLAIN), s1 = bn_softmax_exp(b, n, m0, top);
            fails[2] += !same_f32(a, b, n) || !(s0 == s1 || (isnan(s0) && isnan(s1)));
            /* sums of squares of 1..13 rows */
            for (int rows = 1; rows <= 13; rows += 4) {
                const int64_t ld = n + 3;
                if (rows * ld > MAXN) break;
                fill(a, (int)(rows * ld), mode, 4.0f);
                double d0[13], d1[13];
                bn_sumsq_rows(a, ld, rows, n, d0, BN_VM_PLAIN);
                bn_sumsq_rows(a, ld, rows, n, d1, top);
                for (int r = 0; r < rows; r++) fails[3] += !(d0[r] == d1[r] || (isnan(d0[r]) && isnan(d1[r])));
            }
            /* gated activations */
            fill(a, n, mode, 12.0f);
            fill(u, n, 0, 3.0f);
            bn_silu_mul_row(a, u, b, n, BN_VM_PLAIN);
            bn_silu_mul_row(a, u, c, n, top);
            fails[4] += !same_f32(b, c, n);
            bn_relu2_mul_row(a, u, b, n, BN_VM_PLAIN);
            bn_relu2_mul_row(a, u, c, n, top);
            fails[5] += !same_f32(b, c, n);
        }
        static const char *mn[3] = {"random", "wide exponents", "specials"};
        CHECK(fails[0] == 0, "f32 -> f16 rows (%s, %d lengths 1..6913): top level bitwise the reference", mn[mode], NL);
        CHECK(fails[1] == 0, "max rows (%s): top level equals the reference", mn[mode]);
        CHECK(fails[2] == 0, "softmax exps and sum (%s): top level bitwise the reference", mn[mode]);
        CHECK(fails[3] == 0, "sums of squares, 1/5/9/13 rows (%s): top level bitwise the reference", mn[mode]);
        CHECK(fails[4] == 0, "silu * up (%s): top level bitwise the reference", mn[mode]);
        CHECK(fails[5] == 0, "relu^2 * up (%s): top level bitwise the reference", mn[mode]);
    }

    /* rms-norm means: the 16-lane sum with its error check gives the float
     * the in-order double chain gives, for every length and kind of row */
    {
        int badm = 0, rows_m = 0;
        for (int it = 0; it < 6000; it++) {
            const int n = it < 200 ? 1 + it : 1 + (int)(rng_u64() % 7000);
            const int mode = it % 4;
            if (mode < 3) fill(a, n, mode, 4.0f);
            else for (int i = 0; i < n; i++) a[i] = 1.0f + ldexpf(rng_unif(), -20); /* means near 1: many boundaries */
            double sum;
            bn_sumsq_rows(a, n, 1, n, &sum, BN_VM_PLAIN);
            const float want = (float)(sum / n), got = bn_rms_mean(a, n, top);
            badm += !same_f32(&want, &got, 1);
            rows_m++;
        }
        CHECK(badm == 0, "rms mean: bitwise (float)(in-order sum / n) on %d rows, n 1..7000, 4 kinds (%d differ)", rows_m, badm);
        /* a mean exactly halfway between two floats: 63 ones and
         * fl(x0^2) = 1 + 2^-18 sum to 64 + 2^-18, mean 1 + 2^-24; the check
         * cannot decide, so the chain runs and ties go to even (1.0) */
        for (int i = 0; i < 64; i++) a[i] = 1.0f;
        a[17] = 1.0f + 0x1p-19f;
        const float tie = bn_rms_mean(a, 64, top);
        CHECK(tie == 1.0f, "rms mean on a rounding tie: %.9g (want 1)", tie);
        float o = 0;
        CHECK(bn_f32_of_f64_certain(1.0, 1e-12, &o) && o == 1.0f, "1.0 within 1e-12 is certainly 1.0f");
        CHECK(!bn_f32_of_f64_certain(1.0 + 0x1p-24, 1e-12, &o), "a tie between floats is not certain");
        CHECK(!bn_f32_of_f64_certain(1.0 + 0x1p-24 + 0x1p-45, 1e-12, &o), "1e-13 past a tie with 1e-12 of error is not certain");
        CHECK(bn_f32_of_f64_certain(1.0 + 0x1p-24 + 0x1p-45, 1e-15, &o) && o == 1.0f + 0x1p-23f,
              "2^-45 past a tie with 1e-15 of error rounds up, certainly");
        CHECK(!bn_f32_of_f64_certain(NAN, 1e-12, &o), "NaN is never certain");
        CHECK(bn_f32_of_f64_certain(1e300, 1e-12, &o) && isinf(o), "far above the float range: certainly inf");
    }

    /* f16 conversion over a sweep of the whole float range (every 4099th pattern) */
    bad = 0;
    for (uint64_t k = 0; k < (1ull << 32); k += 4099 * 4096ull) {
        int n = 0;
        for (uint64_t i = k; i < k + 4099 * 4096ull && i < (1ull << 32) && n < 4096; i += 4099, n++) {
            uint32_t bits = (uint32_t)i;
            memcpy(&a[n], &bits, 4);
        }
        bn_f32_to_f16_row(a, h0, n, BN_VM_PLAIN);
        bn_f32_to_f16_row(a, h1, n, top);
        bad += !same_bits(h0, h1, (size_t)n * 2);
    }
    CHECK(bad == 0, "f32 -> f16: every 4099th bit pattern bitwise the reference (%d blocks differ)", bad);

    /* the reference itself: softmax sum against a plain double sum of exp */
    fill(a, 100, 0, 5.0f);
    const float mx = bn_max_row(a, 100, BN_VM_PLAIN);
    double want = 0;
    for (int i = 0; i < 100; i++) want += exp((double)a[i] - mx);
    const double got = bn_softmax_exp(a, 100, mx, BN_VM_PLAIN);
    CHECK(fabs(got - want) < 1e-5 * want, "softmax sum %.6f vs libm %.6f", got, want);
    double sq = 0, sd;
    for (int i = 0; i < 100; i++) sq += (double)a[i] * a[i];
    bn_sumsq_rows(a, 100, 1, 100, &sd, BN_VM_PLAIN);
    CHECK(fabs(sd - sq) < 1e-5 * sq, "sum of squares %.6f vs double %.6f", sd, sq);
    free(a); free(b); free(c); free(u); free(h0); free(h1);
    return tap_done();
}
