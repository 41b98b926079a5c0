/* bn_cuda.h - the plain C interface between lib/gpu.c (compiled by cc) and
 * the CUDA code in the lib/cuda .cu files (compiled by nvcc). Only C types cross it:
 * gpu.c turns a bn_model into a bn_cu_desc of host pointers, the .cu side
 * uploads, runs and reports errors as one line in a caller buffer. Every
 * function returns 0 on success and -1 with err filled on failure.
 * Only built with make CUDA=1 (BN_HAVE_CUDA). */
#ifndef BN_CUDA_H
#define BN_CUDA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Weight formats the GPU kernels implement (gpu.c maps GGUF types to these). */
enum { BN_CU_I2S = 0, BN_CU_TQ2_0, BN_CU_F16, BN_CU_Q8_0, BN_CU_F32, BN_CU_WCOUNT };
/* Activation kinds, as bn_act_kind: I8S, Q8K, Q8_0, F16 (F32 weights use F16-free f32 rows). */
enum { BN_CU_ACT_I8S = 0, BN_CU_ACT_Q8K, BN_CU_ACT_Q8_0, BN_CU_ACT_F16, BN_CU_ACT_F32 };
/* Input modes of the fused norm + quantize kernel. */
enum { BN_CU_NORM_NONE = 0, BN_CU_NORM_RMS, BN_CU_NORM_RELU2, BN_CU_NORM_SILU };

/* A weight matrix in host memory: M rows of K inputs, row_bytes each. */
typedef struct bn_cu_mat {
    int wtype;             /* BN_CU_* */
    int64_t K, M;
    const uint8_t *data;   /* host pointer (mmap view), M * row_bytes bytes */
    size_t row_bytes;
    float scale;           /* I2_S per-tensor scale, else 1 */
} bn_cu_mat;

typedef struct bn_cu_layer {
    const float *attn_norm, *attn_sub_norm, *ffn_norm, *ffn_sub_norm; /* host f32 */
    bn_cu_mat w[7];        /* q, k, v, o, gate, up, down */
    float s[7];            /* extra per-matmul scales (1 when unused) */
} bn_cu_layer;

typedef struct bn_cu_desc {
    int n_vocab, n_embd, n_layer, n_head, n_head_kv, head_dim, n_ff, n_rot;
    float rms_eps;
    int ffn_silu;               /* 0: relu^2, 1: SiLU */
    const bn_cu_layer *layers;  /* [n_layer] */
    bn_cu_mat embd;             /* token_embd (F16, F32 or Q8_0 rows) */
    bn_cu_mat head;             /* output weight (may be the same data as embd) */
    const float *output_norm;
    int n_ctx, n_batch;
    const float *rope_cs;       /* host [n_ctx][n_rot]: cos, sin per pair, as forward.c computes them */
    int device;                 /* CUDA device ordinal */
    int use_graph;              /* record the decode step in a CUDA graph */
    int use_fused;              /* decode: fuse the norms into the I2_S matmuls (same bits) */
} bn_cu_desc;

typedef struct bn_cu_model bn_cu_model;

/* Number of CUDA devices (0 with a reason in why when none is usable). */
int bn_cu_device_count(char *why, size_t n);
/* "NVIDIA H100 80GB HBM3, sm_90, 79.1 GiB" for a device. */
int bn_cu_device_name(int dev, char *buf, size_t n);

int bn_cu_model_new(bn_cu_model **out, const bn_cu_desc *d, char *err, size_t errn);
void bn_cu_model_free(bn_cu_model *g);
/* 1 while decode steps replay a CUDA graph (0 when disabled or refused by the driver). */
int bn_cu_model_uses_graph(const bn_cu_model *g);
/* 1 when decode steps use the fused norm + I2_S matmul kernels. */
int bn_cu_model_uses_fused(const bn_cu_model *g);
/* Bytes of device memory the model holds (weights, caches, buffers). */
size_t bn_cu_model_bytes(const bn_cu_model *g);
/* n tokens at position pos (tokens already checked); logits of the last
 * n_out tokens to logits[n_out][n_vocab] when logits != NULL; when k > 0 the
 * top k (value, id) of the last token's logits to topv/topi, sorted
 * descending, ties by lower id. */
int bn_cu_model_eval(bn_cu_model *g, const int32_t *tokens, int n, int pos, float *logits, int n_out, int k,
                     float *topv, int32_t *topi, char *err, size_t errn);

/* Device-to-device copy bandwidth of a plain copy kernel over `bytes`
 * (rounded down to 16), best of iters runs, in GB/s (1e9 bytes read + written). */
int bn_cu_copy_bandwidth(int dev, size_t bytes, int iters, double *gbps, char *err, size_t errn);

/* ---- single kernels on host data (tests compare them with the CPU references) ---- */

/* Fused norm + quantize: rows of x (mode NONE / RMS) or of gate|up pairs
 * gu[t][2K] (RELU2 / SILU); xn[n][K] receives the f32 normalized rows and,
 * when q != NULL, q[n][K] / scale[n] / sum[n] the I8S activations. */
int bn_cu_test_norm_quant(int mode, const float *x, const float *w, float eps, int n, int K, float *xn, int8_t *q,
                          float *scale, int32_t *sum, char *err, size_t errn);
/* Quantize f32 rows to Q8K / Q8_0 / F16 blocks laid out as lib/quant.h (out: n rows of row_bytes). */
int bn_cu_test_quant(int kind, const float *x, int n, int K, void *out, size_t row_bytes, char *err, size_t errn);
/* Y[n][M] = W . act for a host W and host activations in the kind W needs
 * (I8S: q[n][K] + scale[n] + sum[n]; others: blocks as lib/quant.h); the
 * kernel variant for n tokens is chosen as the model does. nseg 3: W's rows
 * are passed as three weights in one launch (the fused q|k|v path). */
int bn_cu_test_matmul(const bn_cu_mat *W, const void *act, const float *act_scale, const int32_t *act_sum, int n,
                      int nseg, float *Y, char *err, size_t errn);
/* Decode's fused kernel: norm (mode as bn_cu_test_norm_quant, x one row of K or
 * 2K inputs) + I8S quantization + the I2_S matmul W (nseg 2/3: W's rows as that
 * many weights in one launch); Y[M]. */
int bn_cu_test_fused_i2s(int mode, const float *x, const float *w, float eps, const bn_cu_mat *W, int nseg, float *Y,
                         char *err, size_t errn);
/* NEOX RoPE of q heads and k heads of qkv rows [n][(nh + 2 nkv) hd] at positions pos..pos+n-1 with a
 * host cos/sin table [n_ctx][n_rot]; results back in qkv (q, k rotated; v unchanged). */
int bn_cu_test_rope(float *qkv, int n, int pos, int n_head, int n_head_kv, int hd, int n_rot, const float *cs, int n_ctx,
                    char *err, size_t errn);
/* Causal attention of q[n][nh*hd] against f16 caches k, v [n_kv_total][nkv*hd] where query t sees
 * pos+t+1 keys, each head's keys cut into nsplit ranges (1..16) merged at the end; out[n][nh*hd]. */
int bn_cu_test_attention(const float *q, const uint16_t *kc, const uint16_t *vc, int n, int pos, int n_head,
                         int n_head_kv, int hd, int nsplit, float *out, char *err, size_t errn);
/* Top-k of v[n] (values, ids descending; ties by lower id). */
int bn_cu_test_topk(const float *v, int n, int k, float *topv, int32_t *topi, char *err, size_t errn);

#ifdef __cplusplus
}
#endif
#endif
