/* kernels_avx512.c - AVX-512 tables. With VNNI (Zen 4, Ice Lake and later)
 * the integer kernels use vpdpbusd (u8 x s8 -> s32, exact) on 256-bit
 * vectors via the shared bodies in kernels_x86.h; float kernels and the
 * activation quantizers are the AVX2 ones. Without VNNI the table is the
 * AVX2 code under the avx512 name (slots report "avx2"). */
#define BN_X86_VNNI 1
#include "kernels_x86.h"

static void vnni_mm_i2s(const bn_qmat *W, const bn_act *a, int64_t r0, int64_t r1, float *Y, int64_t ldy) {
    x86_mm_i2s(W, a, r0, r1, Y, ldy);
}

static void vnni_mm_tq2_0(const bn_qmat *W, const bn_act *a, int64_t r0, int64_t r1, float *Y, int64_t ldy) {
    x86_mm_tq2_0(W, a, r0, r1, Y, ldy);
}

static void vnni_mm_tq1_0(const bn_qmat *W, const bn_act *a, int64_t r0, int64_t r1, float *Y, int64_t ldy) {
    x86_mm_tq1_0(W, a, r0, r1, Y, ldy);
}

static void vnni_mm_q8_0(const bn_qmat *W, const bn_act *a, int64_t r0, int64_t r1, float *Y, int64_t ldy) {
    x86_mm_q8_0(W, a, r0, r1, Y, ldy);
}

static void avx512_quantize(bn_act *a, const float *X, int64_t ldx, int t0, int t1) {
    bn_kernels_quantize_via(&bn_kernels_avx512, a, X, ldx, t0, t1);
}

static void avx512_matmul(const bn_qmat *W, const bn_act *a, int64_t r0, int64_t r1, float *Y, int64_t ldy) {
    bn_kernels_matmul_via(&bn_kernels_avx512, W, a, r0, r1, Y, ldy);
}

static void vnni_quantize(bn_act *a, const float *X, int64_t ldx, int t0, int t1) {
    bn_kernels_quantize_via(&bn_kernels_avx512_vnni, a, X, ldx, t0, t1);
}

static void vnni_matmul(const bn_qmat *W, const bn_act *a, int64_t r0, int64_t r1, float *Y, int64_t ldy) {
    bn_kernels_matmul_via(&bn_kernels_avx512_vnni, W, a, r0, r1, Y, ldy);
}

const bn_kernels bn_kernels_avx512 = {
    .isa = BN_ISA_AVX512,
    .name = "avx512",
    .quantize_act = avx512_quantize,
    .matmul = avx512_matmul,
    .mm = { [BN_W_I2S] = bn_mm_i2s_avx2, [BN_W_TQ2_0] = bn_mm_tq2_0_avx2, [BN_W_TQ1_0] = bn_mm_tq1_0_avx2,
            [BN_W_Q8_0] = bn_mm_q8_0_avx2, [BN_W_Q6_K] = bn_mm_q6_K_avx2, [BN_W_F16] = bn_mm_f16_avx2,
            [BN_W_F32] = bn_mm_f32_avx2 },
    .mm_isa = { "avx2", "avx2", "avx2", "avx2", "avx2", "avx2", "avx2" },
    .qa = { [BN_ACT_I8S] = bn_qa_i8s_avx2, [BN_ACT_Q8K] = bn_qa_q8k_avx2, [BN_ACT_Q8_0] = bn_qa_q8_0_scalar,
            [BN_ACT_F16] = bn_qa_f16_avx2, [BN_ACT_F32] = bn_qa_f32_scalar },
    .qa_isa = { "avx2", "avx2", "scalar", "avx2", "scalar" },
};

const bn_kernels bn_kernels_avx512_vnni = {
    .isa = BN_ISA_AVX512,
    .name = "avx512-vnni",
    .quantize_act = vnni_quantize,
    .matmul = vnni_matmul,
    .mm = { [BN_W_I2S] = vnni_mm_i2s, [BN_W_TQ2_0] = vnni_mm_tq2_0, [BN_W_TQ1_0] = vnni_mm_tq1_0,
            [BN_W_Q8_0] = vnni_mm_q8_0, [BN_W_Q6_K] = bn_mm_q6_K_avx2, [BN_W_F16] = bn_mm_f16_avx2,
            [BN_W_F32] = bn_mm_f32_avx2 },
    .mm_isa = { "avx512-vnni", "avx512-vnni", "avx512-vnni", "avx512-vnni", "avx2", "avx2", "avx2" },
    .qa = { [BN_ACT_I8S] = bn_qa_i8s_avx2, [BN_ACT_Q8K] = bn_qa_q8k_avx2, [BN_ACT_Q8_0] = bn_qa_q8_0_scalar,
            [BN_ACT_F16] = bn_qa_f16_avx2, [BN_ACT_F32] = bn_qa_f32_scalar },
    .qa_isa = { "avx2", "avx2", "scalar", "avx2", "scalar" },
};
