/* quant_i2s.c - bitnet.cpp I2_S weights (x86 128-element layout) and the
 * per-token int8 activation quantization that goes with them. Scalar
 * references; the kernels in lib/kernels_*.c must match these bit for bit. */
#include "quant.h"

#include <math.h>
#include <string.h>

/* Size rule of ggml_nbytes for I2_S: packed codes plus one 32-byte trailer. */
size_t bn_i2s_nbytes(int64_t n) {
    return (size_t)n / 4 + 32;
}

/* Mirrors bitnet.cpp quantize_i2_s (ACT_PARALLEL x86 path): the scale is the
 * largest magnitude of the whole tensor (double), each element becomes a sign
 * code with no division or rounding, so the input must already be ternary. */
size_t bn_quantize_i2_s_ref(const float *x, uint8_t *dst, int64_t n) {
    double max = 0;
    for (int64_t i = 0; i < n; i++) {
        double a = fabs((double)x[i]);
        if (a > max) max = a;
    }
    float scale = (float)max;
    memset(dst, 0, bn_i2s_nbytes(n));
    for (int64_t i = 0; i < n; i++) {
        int code;
        if (fabs((double)x[i]) < 1e-6) code = 1;
        else code = (double)x[i] * max > 0 ? 2 : 0;
        int64_t b = i / 128, j = i % 128;
        dst[b * 32 + j % 32] |= (uint8_t)(code << (6 - 2 * (j / 32)));
    }
    memcpy(dst + n / 4, &scale, sizeof scale);
    return bn_i2s_nbytes(n);
}

/* dequantize_row_i2_s of bitnet.cpp: code map {-1, 0, +1, 0} times the scale. */
void bn_dequantize_row_i2_s(const uint8_t *src, float scale, float *y, int64_t k) {
    static const float map[4] = { -1.f, 0.f, 1.f, 0.f };
    for (int64_t j = 0; j < k; j++) y[j] = map[bn_i2s_code(src, j)] * scale;
}

/* quantize_row_i8_s of bitnet.cpp: per-row absmax in double, scale rounded to
 * f32, products in f32 rounded to nearest-even, clamp to int8, keep the sum. */
void bn_quantize_row_i8s_ref(const float *x, int8_t *q, int64_t k, float *scale, int32_t *sum) {
    double max = 0.00001;
    for (int64_t i = 0; i < k; i++) {
        double a = fabs((double)x[i]);
        if (a > max) max = a;
    }
    float s = (float)(127 / max);
    int32_t acc = 0;
    for (int64_t i = 0; i < k; i++) {
        int v = bn_nearest_int(x[i] * s);
        if (v > 127) v = 127;
        if (v < -128) v = -128;
        q[i] = (int8_t)v;
        acc += v;
    }
    *scale = s;
    *sum = acc;
}
