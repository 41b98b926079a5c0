/* kernels.cuh - device data views and the launchers of lib/cuda/kernels.cu,
 * shared by model.cu (the forward step) and test.cu (single-kernel checks).
 * Numerics follow lib/kernels_scalar.c and lib/forward.c; the .cu files are
 * built with --fmad=false so that a*b+c is never contracted unless written
 * as fmaf, which is what the C side does at -O2 without -mfma. */
#ifndef BN_CUDA_KERNELS_CUH
#define BN_CUDA_KERNELS_CUH

#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>
#include <stdio.h>

#include "cuda/bn_cuda.h"

#define BN_CU_Q8K_BYTES 292  /* lib/quant.h bn_block_q8_K: f32 d, int8 qs[256], int16 bsums[16] */
#define BN_CU_Q8_0_BYTES 34  /* f16 d, int8 qs[32] */
#define BN_CU_TQ2_BYTES 66   /* qs[64], f16 d */
#define BN_CU_TOPK_MAX 256

/* A weight matrix in device memory. */
struct cu_mat {
    int wtype;
    int64_t K, M;
    const uint8_t *d;
    size_t row_bytes;
    float scale;
};

/* Quantized activations for n rows of K inputs in device memory; only the
 * kinds some consumer needs are non-NULL. Rows are dense (stride K or K/blk). */
struct cu_act {
    int64_t K;
    int8_t *q;        /* I8S [n][K] */
    float *qscale;    /* I8S [n] */
    int32_t *qsum;    /* I8S [n] */
    uint8_t *q8k;     /* [n][K/256] blocks */
    uint8_t *q8_0;    /* [n][K/32] blocks */
    __half *f16;      /* [n][K] */
    const float *f32; /* [n][K] (the normalized rows themselves) */
};

/* The act kind a weight format multiplies against. */
static inline int cu_act_kind_of(int wtype) {
    switch (wtype) {
    case BN_CU_I2S: return BN_CU_ACT_I8S;
    case BN_CU_TQ2_0: return BN_CU_ACT_Q8K;
    case BN_CU_Q8_0: return BN_CU_ACT_Q8_0;
    case BN_CU_F16: return BN_CU_ACT_F16;
    default: return BN_CU_ACT_F32;
    }
}

/* Launchers (asynchronous on stream s; errors surface at the next sync). */
void cu_norm_quant(cudaStream_t s, int mode, const float *x, int64_t ldx, const float *w, float eps, int n, int K,
                   float *xn, int8_t *q, float *qscale, int32_t *qsum);
void cu_quant_q8k(cudaStream_t s, const float *xn, int n, int K, uint8_t *out);
void cu_quant_q8_0(cudaStream_t s, const float *xn, int n, int K, uint8_t *out);
void cu_quant_f16(cudaStream_t s, const float *xn, int n, int K, __half *out);
/* One weight of a matmul launch: its rows, scales and output. */
struct cu_mm_seg {
    const uint8_t *d;
    int64_t M;
    float wscale;  /* I2_S tensor scale */
    float *Y;
    int64_t ldy;
    float scale;   /* extra per-matmul scale (1: none) */
    float *resid;  /* NULL: no residual add */
};
/* Up to 3 weights of one type and K sharing an input (q|k|v, gate|up) as
 * one launch over their concatenated rows (fewer kernels per decode step). */
struct cu_mm_args {
    cu_mm_seg seg[3];
    int nseg;
};

/* Y[t*ldy + r] = scale * (W . act_t)[r]; resid[t*ldy + r] += that when resid != NULL. */
void cu_matmul(cudaStream_t s, const cu_mat *W, const cu_act *a, int n, float *Y, int64_t ldy, float scale, float *resid);
/* nw (1..3) weights of the same type and K in one launch; resid applies to W[0]. */
void cu_matmul_multi(cudaStream_t s, int nw, const cu_mat *const *W, const cu_act *a, int n, float *const *Y, int64_t ldy,
                     const float *scale, float *resid);
/* Decode (one token): the norm of mode (BN_CU_NORM_*) of row x with weight w,
 * I8S quantization and nw (1..3) I2_S weights of the same K in one launch;
 * the same bits as cu_norm_quant then cu_matmul_multi. resid applies to
 * W[0]. cu_fused_i2s_ok: whether K fits the kernel. */
int cu_fused_i2s_ok(int64_t K);
void cu_matmul_i2s_fused(cudaStream_t s, int mode, const float *x, const float *w, float eps, int nw,
                         const cu_mat *const *W, float *const *Y, const float *scale, float *resid);
void cu_embed(cudaStream_t s, const cu_mat *E, const int32_t *tok, int n, float *x);
void cu_rope_store(cudaStream_t s, float *qkv, int n, const int *pos0, int n_head, int n_head_kv, int hd, int n_rot,
                   const float *cs, __half *kc, __half *vc);
/* nsplit > 1 splits each head's key range (decode); part holds
 * n * n_head * nsplit * (2 + hd) floats. cu_attention_splits picks nsplit. */
#define BN_CU_ATT_MAX_SPLIT 16
int cu_attention_splits(int n, int n_ctx);
void cu_attention(cudaStream_t s, const float *qkv, int qkv_stride, int n, const int *pos0, int n_head, int n_head_kv,
                  int hd, const __half *kc, const __half *vc, float *out, int out_stride, int nsplit, float *part);
/* Top-k over v[n]; tmp holds 2 * ceil(n/2048) * k floats and as many ints. */
void cu_topk(cudaStream_t s, const float *v, int n, int k, float *tmpv, int32_t *tmpi, float *outv, int32_t *outi);
size_t cu_topk_tmp_elems(int n, int k);

/* Fill err with "what: cuda error string" and return -1 when e != cudaSuccess. */
static inline int cu_fail(cudaError_t e, const char *what, char *err, size_t errn) {
    if (e == cudaSuccess) return 0;
    snprintf(err, errn, "%s: %s", what, cudaGetErrorString(e));
    return -1;
}
#define CU_TRY(call, what)                                         \
    do {                                                           \
        if (cu_fail((call), (what), err, errn) < 0) goto fail;     \
    } while (0)

#endif
