/* vecmath.c - see vecmath.h. The x86 versions keep every lane's operations
 * and every reduction's order of the C references; fmaf is exactly rounded,
 * so a lane computed by _mm256_fmadd_ps equals the scalar fmaf. */
#include "vecmath.h"

#include <math.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define BN_VM_X86 __attribute__((target("avx2,fma,f16c")))
#endif

#include "util.h"

/* ---- ggml_v_expf ---------------------------------------------------------
 * exp(x) = 2^n * (1 + j) with n = round(x / ln 2) by the 1.5*2^23 trick, b =
 * x - n ln 2 in two steps, j a degree-5 polynomial in b; |n| > 126 scales in
 * two factors so results near the float range's ends stay right. */
#define BN_V_EXPF_BODY                                                                         \
    const float r = 0x1.8p23f;                                                                 \
    const float z = fmaf(x, 0x1.715476p+0f, r);                                                \
    const float n = z - r;                                                                     \
    const float b = fmaf(-n, 0x1.7f7d1cp-20f, fmaf(-n, 0x1.62e4p-1f, x));                      \
    uint32_t zb, one = 0x3f800000u;                                                            \
    memcpy(&zb, &z, 4);                                                                        \
    const uint32_t e = zb << 23;                                                               \
    const uint32_t kb = e + one;                                                               \
    float k;                                                                                   \
    memcpy(&k, &kb, 4);                                                                        \
    const float u = b * b;                                                                     \
    const float j = fmaf(fmaf(fmaf(0x1.0e4020p-7f, b, 0x1.573e2ep-5f), u,                      \
                              fmaf(0x1.555e66p-3f, b, 0x1.fffdb6p-2f)),                        \
                         u, 0x1.ffffecp-1f * b);                                               \
    if (!(fabsf(n) > 126.0f)) return fmaf(j, k, k);                                            \
    if (fabsf(n) > 192.0f) {                                                                   \
        const uint32_t g = n <= 0.0f ? 0x82000000u : 0u;                                       \
        const uint32_t s1b = g + 0x7f000000u;                                                  \
        float s1;                                                                              \
        memcpy(&s1, &s1b, 4);                                                                  \
        return s1 * s1;                                                                        \
    }                                                                                          \
    const uint32_t g = n <= 0.0f ? 0x82000000u : 0u;                                           \
    const uint32_t s1b = g + 0x7f000000u, s2b = e - g;                                         \
    float s1, s2;                                                                              \
    memcpy(&s1, &s1b, 4);                                                                      \
    memcpy(&s2, &s2b, 4);                                                                      \
    return fmaf(s2, j, s2) * s1;

#if defined(__x86_64__)
__attribute__((target("fma"))) static float expf_fma(float x) { BN_V_EXPF_BODY }
#endif
static float expf_plain(float x) { BN_V_EXPF_BODY }

float bn_ggml_expf(float x, bn_vm_level lv) {
#if defined(__x86_64__)
    if (lv >= BN_VM_FMA) return expf_fma(x);
#endif
    (void)lv;
    return expf_plain(x);
}

#if defined(__x86_64__)
/* BN_V_EXPF_BODY on 8 lanes: the fast path and both range fixes computed,
 * then selected per lane by the same tests (|n| > 126, |n| > 192, n <= 0). */
BN_VM_X86 static __m256 expf8(__m256 x) {
    const __m256 r = _mm256_set1_ps(0x1.8p23f);
    const __m256 z = _mm256_fmadd_ps(x, _mm256_set1_ps(0x1.715476p+0f), r);
    const __m256 n = _mm256_sub_ps(z, r);
    const __m256 b = _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.7f7d1cp-20f),
                                      _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.62e4p-1f), x));
    const __m256i e = _mm256_slli_epi32(_mm256_castps_si256(z), 23);
    const __m256 k = _mm256_castsi256_ps(_mm256_add_epi32(e, _mm256_set1_epi32(0x3f800000)));
    const __m256 u = _mm256_mul_ps(b, b);
    const __m256 j = _mm256_fmadd_ps(
        _mm256_fmadd_ps(_mm256_fmadd_ps(_mm256_set1_ps(0x1.0e4020p-7f), b, _mm256_set1_ps(0x1.573e2ep-5f)), u,
                        _mm256_fmadd_ps(_mm256_set1_ps(0x1.555e66p-3f), b, _mm256_set1_ps(0x1.fffdb6p-2f))),
        u, _mm256_mul_ps(_mm256_set1_ps(0x1.ffffecp-1f), b));
    const __m256 fast = _mm256_fmadd_ps(j, k, k);
    const __m256 an = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), n);
    const __m256 c = _mm256_cmp_ps(an, _mm256_set1_ps(126.0f), _CMP_GT_OQ);
    if (_mm256_movemask_ps(c) == 0) return fast;
    const __m256i g = _mm256_and_si256(_mm256_castps_si256(_mm256_cmp_ps(n, _mm256_setzero_ps(), _CMP_LE_OQ)),
                                       _mm256_set1_epi32((int)0x82000000u));
    const __m256 s1 = _mm256_castsi256_ps(_mm256_add_epi32(g, _mm256_set1_epi32(0x7f000000)));
    const __m256 s2 = _mm256_castsi256_ps(_mm256_sub_epi32(e, g));
    const __m256 d = _mm256_cmp_ps(an, _mm256_set1_ps(192.0f), _CMP_GT_OQ);
    const __m256 mid = _mm256_mul_ps(_mm256_fmadd_ps(s2, j, s2), s1);
    return _mm256_blendv_ps(_mm256_blendv_ps(fast, mid, c), _mm256_mul_ps(s1, s1), d);
}
#endif

/* ---- f16 ----------------------------------------------------------------- */

#if defined(__x86_64__)
/* F16C rounds to nearest even and keeps a quiet NaN's top payload bits, as
 * bn_f32_to_f16 does. */
BN_VM_X86 static void f32_to_f16_avx2(const float *x, uint16_t *y, int n) {
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(y + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) y[i] = _cvtss_sh(x[i], _MM_FROUND_TO_NEAREST_INT);
}
#endif

void bn_f32_to_f16_row(const float *x, uint16_t *y, int n, bn_vm_level lv) {
#if defined(__x86_64__)
    if (lv >= BN_VM_AVX2) { f32_to_f16_avx2(x, y, n); return; }
#endif
    (void)lv;
    for (int i = 0; i < n; i++) y[i] = bn_f32_to_f16(x[i]);
}

/* ---- sums of squares ----------------------------------------------------- */

#if defined(__x86_64__)
/* Eight rows at once: an 8x8 block of squares is transposed so register e
 * holds element i+e of the eight rows, then added into two vectors of four
 * double sums, element after element: each row's chain keeps its order,
 * and eight chains share the latency of one. */
BN_VM_X86 static void sumsq8_avx2(const float *x, int64_t ldx, int n, double *sums) {
    __m256d s0 = _mm256_setzero_pd(), s1 = s0;
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 r[8];
        for (int k = 0; k < 8; k++) {
            const __m256 v = _mm256_loadu_ps(x + k * ldx + i);
            r[k] = _mm256_mul_ps(v, v);
        }
        const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
        const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
        const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
        const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
        const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
        const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
        const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
        const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
        __m256 c[8]; /* c[e] = element i+e of rows 0..7 */
        c[0] = _mm256_permute2f128_ps(u0, u4, 0x20); c[4] = _mm256_permute2f128_ps(u0, u4, 0x31);
        c[1] = _mm256_permute2f128_ps(u1, u5, 0x20); c[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
        c[2] = _mm256_permute2f128_ps(u2, u6, 0x20); c[6] = _mm256_permute2f128_ps(u2, u6, 0x31);
        c[3] = _mm256_permute2f128_ps(u3, u7, 0x20); c[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
        for (int e = 0; e < 8; e++) {
            s0 = _mm256_add_pd(s0, _mm256_cvtps_pd(_mm256_castps256_ps128(c[e])));
            s1 = _mm256_add_pd(s1, _mm256_cvtps_pd(_mm256_extractf128_ps(c[e], 1)));
        }
    }
    _mm256_storeu_pd(sums, s0);
    _mm256_storeu_pd(sums + 4, s1);
    for (; i < n; i++)
        for (int k = 0; k < 8; k++) sums[k] += (double)(x[k * ldx + i] * x[k * ldx + i]);
}
#endif

void bn_sumsq_rows(const float *x, int64_t ldx, int rows, int n, double *sums, bn_vm_level lv) {
    int r = 0;
#if defined(__x86_64__)
    if (lv >= BN_VM_AVX2)
        for (; r + 8 <= rows; r += 8) sumsq8_avx2(x + r * ldx, ldx, n, sums + r);
#endif
    (void)lv;
    for (; r < rows; r++) {
        const float *xr = x + r * ldx;
        double sum = 0.0;
        for (int i = 0; i < n; i++) sum += (double)(xr[i] * xr[i]);
        sums[r] = sum;
    }
}

/* (float)q when every double within q * (1 +- rel) rounds to the same float
 * (then any sum that close to the one q came from gives the same float);
 * false when q lies too near a float rounding boundary or is NaN. The ends
 * are widened by 4 ulp of double for their own rounding. */
bool bn_f32_of_f64_certain(double q, double rel, float *out) {
    const double d = rel + 4.0 * 0x1p-53;
    const float lo = (float)(q - fabs(q) * d), hi = (float)(q + fabs(q) * d);
    if (lo != hi) return false; /* also NaN */
    *out = (float)q;
    return *out == lo;
}

#if defined(__x86_64__)
/* sum of (double)(x[i]*x[i]) in 16 lanes (element i in lane i % 16, the
 * lanes reduced pairwise): the same float squares, another order. */
BN_VM_X86 static double sumsq_lanes_avx2(const float *x, int n) {
    __m256d s[4] = { _mm256_setzero_pd(), _mm256_setzero_pd(), _mm256_setzero_pd(), _mm256_setzero_pd() };
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m256 a = _mm256_loadu_ps(x + i), b = _mm256_loadu_ps(x + i + 8);
        const __m256 a2 = _mm256_mul_ps(a, a), b2 = _mm256_mul_ps(b, b);
        s[0] = _mm256_add_pd(s[0], _mm256_cvtps_pd(_mm256_castps256_ps128(a2)));
        s[1] = _mm256_add_pd(s[1], _mm256_cvtps_pd(_mm256_extractf128_ps(a2, 1)));
        s[2] = _mm256_add_pd(s[2], _mm256_cvtps_pd(_mm256_castps256_ps128(b2)));
        s[3] = _mm256_add_pd(s[3], _mm256_cvtps_pd(_mm256_extractf128_ps(b2, 1)));
    }
    double l[16];
    for (int k = 0; k < 4; k++) _mm256_storeu_pd(l + 4 * k, s[k]);
    for (; i < n; i++) l[i % 16] += (double)(x[i] * x[i]);
    for (int h = 8; h >= 1; h /= 2)
        for (int k = 0; k < h; k++) l[k] += l[k + h];
    return l[0];
}
#endif

/* One row's rms-norm mean, (float)(sum / n) with the sum as bn_sumsq_rows
 * forms it (in order, in double). That chain of n dependent double adds was
 * 2-5 us per decode norm (n = 2560, 6912). Any summation order of n
 * nonnegative terms is within (n-1)u/(1-(n-1)u) of the exact sum (u =
 * 2^-53), so the in-order sum and a 16-lane one differ by at most twice
 * that; when bn_f32_of_f64_certain says every double that close gives the
 * same float, the lane sum's float is the in-order one's, bit for bit.
 * Otherwise (a mean within ~1e-12 of a float rounding boundary, or NaN)
 * the in-order chain runs. */
float bn_rms_mean(const float *x, int n, bn_vm_level lv) {
#if defined(__x86_64__)
    if (lv >= BN_VM_AVX2 && n >= 64) {
        const double g = (double)(n - 1) * 0x1p-53, rel = 2.0 * g / (1.0 - g) * 1.01 + 2.0 * 0x1p-53;
        float m;
        if (bn_f32_of_f64_certain(sumsq_lanes_avx2(x, n) / n, rel, &m)) return m;
    }
#endif
    (void)lv;
    double sum;
    bn_sumsq_rows(x, n, 1, n, &sum, BN_VM_PLAIN);
    return (float)(sum / n);
}

/* ---- softmax ------------------------------------------------------------- */

/* ((v0+v4) + (v2+v6)) + ((v1+v5) + (v3+v7)): the AVX2 horizontal sum. */
static float tree8(const float *v) {
    const float t0 = v[4] + v[0], t1 = v[5] + v[1], t2 = v[6] + v[2], t3 = v[7] + v[3];
    return (t0 + t2) + (t1 + t3);
}

#if defined(__x86_64__)
BN_VM_X86 static float tree8_avx2(__m256 s) {
    __m128 t = _mm_add_ps(_mm256_extractf128_ps(s, 1), _mm256_castps256_ps128(s)); /* t_i = v[4+i] + v[i] */
    t = _mm_add_ps(t, _mm_movehl_ps(t, t));                                        /* t0+t2, t1+t3 */
    t = _mm_add_ss(t, _mm_movehdup_ps(t));
    return _mm_cvtss_f32(t);
}

BN_VM_X86 static double softmax_exp_avx2(float *v, int n, float mx) {
    const __m256 m = _mm256_set1_ps(mx);
    double sum = 0.0;
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 e = expf8(_mm256_sub_ps(_mm256_loadu_ps(v + i), m));
        _mm256_storeu_ps(v + i, e);
        sum += (double)tree8_avx2(e);
    }
    if (i < n) { /* the last group: lanes past n are zero */
        const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(n - i), idx);
        const __m256 x = _mm256_maskload_ps(v + i, mask);
        const __m256 e = _mm256_and_ps(expf8(_mm256_sub_ps(x, m)), _mm256_castsi256_ps(mask));
        _mm256_maskstore_ps(v + i, mask, e);
        sum += (double)tree8_avx2(e);
    }
    return sum;
}

BN_VM_X86 static float max_avx2(const float *v, int n) {
    __m256 m = _mm256_set1_ps(-INFINITY);
    int i = 0;
    for (; i + 8 <= n; i += 8) m = _mm256_max_ps(_mm256_loadu_ps(v + i), m); /* a NaN in v keeps m */
    float l[8], mx = -INFINITY;
    _mm256_storeu_ps(l, m);
    for (int k = 0; k < 8; k++) mx = l[k] > mx ? l[k] : mx;
    for (; i < n; i++) mx = v[i] > mx ? v[i] : mx;
    return mx;
}

/* max(g, 0) gives +0 for g <= 0 and for NaN, as the scalar select does. */
BN_VM_X86 static void relu2_mul_avx2(const float *g, const float *u, float *h, int n) {
    const __m256 z = _mm256_setzero_ps();
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 r = _mm256_max_ps(_mm256_loadu_ps(g + i), z);
        _mm256_storeu_ps(h + i, _mm256_mul_ps(_mm256_mul_ps(r, r), _mm256_loadu_ps(u + i)));
    }
    for (; i < n; i++) {
        const float r = g[i] > 0.0f ? g[i] : 0.0f;
        h[i] = (r * r) * u[i];
    }
}

BN_VM_X86 static void silu_mul_avx2(const float *g, const float *u, float *h, int n) {
    const __m256 one = _mm256_set1_ps(1.0f);
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 x = _mm256_loadu_ps(g + i);
        const __m256 s = _mm256_div_ps(x, _mm256_add_ps(one, expf8(_mm256_sub_ps(_mm256_setzero_ps(), x))));
        _mm256_storeu_ps(h + i, _mm256_mul_ps(s, _mm256_loadu_ps(u + i)));
    }
    for (; i < n; i++) h[i] = (g[i] / (1.0f + expf_fma(0.0f - g[i]))) * u[i];
}
#endif

double bn_softmax_exp(float *v, int n, float mx, bn_vm_level lv) {
#if defined(__x86_64__)
    if (lv >= BN_VM_AVX2) return softmax_exp_avx2(v, n, mx);
#endif
    double sum = 0.0;
    for (int p = 0; p < n; p += 8) {
        float e[8];
        for (int m = 0; m < 8; m++) e[m] = p + m < n ? bn_ggml_expf(v[p + m] - mx, lv) : 0.0f;
        for (int m = 0; m < 8 && p + m < n; m++) v[p + m] = e[m];
        sum += (double)tree8(e);
    }
    return sum;
}

float bn_max_row(const float *v, int n, bn_vm_level lv) {
#if defined(__x86_64__)
    if (lv >= BN_VM_AVX2) return max_avx2(v, n);
#endif
    (void)lv;
    float mx = -INFINITY;
    for (int i = 0; i < n; i++) mx = v[i] > mx ? v[i] : mx;
    return mx;
}

void bn_silu_mul_row(const float *g, const float *u, float *h, int n, bn_vm_level lv) {
#if defined(__x86_64__)
    if (lv >= BN_VM_AVX2) { silu_mul_avx2(g, u, h, n); return; }
#endif
    for (int i = 0; i < n; i++) h[i] = (g[i] / (1.0f + bn_ggml_expf(0.0f - g[i], lv))) * u[i];
}

/* The branch on the sign of g mispredicts half the time on real activations
 * (7% of a 2b4t prefill in the scalar loop), hence the vector version. */
void bn_relu2_mul_row(const float *g, const float *u, float *h, int n, bn_vm_level lv) {
#if defined(__x86_64__)
    if (lv >= BN_VM_AVX2) { relu2_mul_avx2(g, u, h, n); return; }
#endif
    (void)lv;
    for (int i = 0; i < n; i++) {
        const float r = g[i] > 0.0f ? g[i] : 0.0f;
        h[i] = (r * r) * u[i];
    }
}
