/* vecmath.h - row helpers of the forward pass in ggml's arithmetic: f16
 * rounding, sums of squares in double (rms_norm), ggml_v_expf and the
 * softmax sums built on it. Each has a plain C reference and an x86 version
 * (AVX2 + FMA + F16C) that gives bitwise the same results, so the reference
 * engines' numerics hold on every path; the caller picks the level. */
#ifndef BN_VECMATH_H
#define BN_VECMATH_H

#include <stdbool.h>
#include <stdint.h>

typedef enum {
    BN_VM_PLAIN = 0, /* C only (fmaf may be a library call) */
    BN_VM_FMA,       /* scalar code compiled for hardware FMA */
    BN_VM_AVX2,      /* AVX2 + FMA + F16C vectors */
} bn_vm_level;

/* ggml_v_expf for one lane (a polynomial with FMAs, not libm's expf). */
float bn_ggml_expf(float x, bn_vm_level lv);

/* y[i] = f16 bits of x[i], round to nearest even (bn_f32_to_f16). */
void bn_f32_to_f16_row(const float *x, uint16_t *y, int n, bn_vm_level lv);

/* sums[r] = sum over i in order of (double)(x[r][i] * x[r][i]), the float
 * square added in double one element at a time, as ggml_compute_forward_rms_norm
 * does; the x86 version runs eight rows' chains side by side. */
void bn_sumsq_rows(const float *x, int64_t ldx, int rows, int n, double *sums, bn_vm_level lv);

/* (float)(sum / n) for one row, the sum exactly as bn_sumsq_rows forms it
 * (bitwise the same float), by a 16-lane sum checked against its error
 * bound, the in-order chain when the check cannot decide. */
float bn_rms_mean(const float *x, int n, bn_vm_level lv);

/* *out = (float)q and true when every double within relative rel of q
 * rounds to the same float; false when q is that near a rounding boundary
 * (or NaN). */
bool bn_f32_of_f64_certain(double q, double rel, float *out);

/* v[i] = ggml_expf(v[i] - mx) for i < n, returning their sum formed as
 * ggml_vec_soft_max_f32 (AVX2) forms it: groups of 8 (the last one zero
 * padded) reduced pairwise in float, the group sums added in double. */
double bn_softmax_exp(float *v, int n, float mx, bn_vm_level lv);

/* max over v[0..n) ignoring NaNs (-INFINITY when n == 0 or all are NaN). */
float bn_max_row(const float *v, int n, bn_vm_level lv);

/* h[i] = silu(g[i]) * u[i] with ggml_v_silu's formula: g / (1 + expf(-g)). */
void bn_silu_mul_row(const float *g, const float *u, float *h, int n, bn_vm_level lv);

/* h[i] = relu(g[i])^2 * u[i] (BitNet b1.58's squared-ReLU gate). */
void bn_relu2_mul_row(const float *g, const float *u, float *h, int n, bn_vm_level lv);

#endif
