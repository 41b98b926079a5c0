/* kernels_avx512.c - avx512 kernel table(s). Slots without a avx512 kernel yet
 * fall back to the scalar reference and are reported as "scalar" by
 * bn_kernels_path / bn_kernels_is_native. */
#include "kernels.h"

static void avx512_quantize(bn_act *a, const float *X, int64_t ldx, int t0, int t1) {
    bn_kernels_quantize_via(&bn_kernels_avx512, a, X, ldx, t0, t1);
}

static void avx512_matmul(const bn_qmat *W, const bn_act *a, int64_t r0, int64_t r1, float *Y, int64_t ldy) {
    bn_kernels_matmul_via(&bn_kernels_avx512, W, a, r0, r1, Y, ldy);
}

const bn_kernels bn_kernels_avx512 = {
    .isa = BN_ISA_AVX512,
    .name = "avx512",
    .quantize_act = avx512_quantize,
    .matmul = avx512_matmul,
    .mm = { [BN_W_I2S] = bn_mm_i2s_scalar, [BN_W_TQ2_0] = bn_mm_tq2_0_scalar, [BN_W_TQ1_0] = bn_mm_tq1_0_scalar,
            [BN_W_Q8_0] = bn_mm_q8_0_scalar, [BN_W_Q6_K] = bn_mm_q6_K_scalar, [BN_W_F16] = bn_mm_f16_scalar,
            [BN_W_F32] = bn_mm_f32_scalar },
    .mm_isa = { "scalar", "scalar", "scalar", "scalar", "scalar", "scalar", "scalar" },
    .qa = { [BN_ACT_I8S] = bn_qa_i8s_scalar, [BN_ACT_Q8K] = bn_qa_q8k_scalar, [BN_ACT_Q8_0] = bn_qa_q8_0_scalar,
            [BN_ACT_F16] = bn_qa_f16_scalar, [BN_ACT_F32] = bn_qa_f32_scalar },
    .qa_isa = { "scalar", "scalar", "scalar", "scalar", "scalar" },
};

static void avx512_vnni_quantize(bn_act *a, const float *X, int64_t ldx, int t0, int t1) {
    bn_kernels_quantize_via(&bn_kernels_avx512_vnni, a, X, ldx, t0, t1);
}

static void avx512_vnni_matmul(const bn_qmat *W, const bn_act *a, int64_t r0, int64_t r1, float *Y, int64_t ldy) {
    bn_kernels_matmul_via(&bn_kernels_avx512_vnni, W, a, r0, r1, Y, ldy);
}

const bn_kernels bn_kernels_avx512_vnni = {
    .isa = BN_ISA_AVX512,
    .name = "avx512-vnni",
    .quantize_act = avx512_vnni_quantize,
    .matmul = avx512_vnni_matmul,
    .mm = { [BN_W_I2S] = bn_mm_i2s_scalar, [BN_W_TQ2_0] = bn_mm_tq2_0_scalar, [BN_W_TQ1_0] = bn_mm_tq1_0_scalar,
            [BN_W_Q8_0] = bn_mm_q8_0_scalar, [BN_W_Q6_K] = bn_mm_q6_K_scalar, [BN_W_F16] = bn_mm_f16_scalar,
            [BN_W_F32] = bn_mm_f32_scalar },
    .mm_isa = { "scalar", "scalar", "scalar", "scalar", "scalar", "scalar", "scalar" },
    .qa = { [BN_ACT_I8S] = bn_qa_i8s_scalar, [BN_ACT_Q8K] = bn_qa_q8k_scalar, [BN_ACT_Q8_0] = bn_qa_q8_0_scalar,
            [BN_ACT_F16] = bn_qa_f16_scalar, [BN_ACT_F32] = bn_qa_f32_scalar },
    .qa_isa = { "scalar", "scalar", "scalar", "scalar", "scalar" },
};
