/* gpu.h - the forward pass on a CUDA GPU, with the same contract as
 * lib/forward.h (bn_forward_eval): a model handle with a KV cache and a
 * position, eval of n tokens returning the logits of the last n_out, plus a
 * top-k variant so only k (value, id) pairs cross PCIe per decode step.
 *
 * Always compiled. Without BN_HAVE_CUDA (make without CUDA=1) nothing runs:
 * bn_gpu_available() returns 0 with "built without CUDA (make CUDA=1)" and
 * bn_gpu_model_new fails with that reason, so tools can fall back to the CPU.
 *
 * Numerics (docs/CUDA.md): matmuls, activation quantization, norms, RoPE and
 * the F16 head follow the scalar references in the same order (bitwise equal
 * on the same inputs); attention uses an online softmax, so logits differ
 * from lib/forward.c by float rounding that can flip int8 activation codes:
 * parity is checked with a tolerance and on argmax, not bitwise. */
#ifndef BN_GPU_H
#define BN_GPU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "forward.h"
#include "model.h"
#include "util.h"

/* Number of usable CUDA devices; 0 with a one-line reason in why (n bytes). */
int bn_gpu_available(char *why, size_t n);
/* "NVIDIA H100 80GB HBM3, sm_90, 79.1 GiB" (or the reason it is unavailable). */
void bn_gpu_describe(int device, char *buf, size_t n);

/* Whether every tensor of the model has a GPU kernel (I2_S, TQ2_0, F16, F32,
 * Q8_0 matmuls; F16/F32/Q8_0 embeddings; head_dim <= 256). Needs no device,
 * so `--device auto` can decide before uploading anything. */
int bn_gpu_supports(const bn_model *m, bn_err *e);

typedef struct bn_gpu_opts {
    int device;    /* CUDA ordinal, 0 by default */
    int n_ctx;     /* 0: the model's context_length */
    int n_batch;   /* prefill batch; 0: 128 */
    bool no_graph; /* don't record the decode step in a CUDA graph */
    bool no_fuse;  /* decode: separate norm kernels instead of the fused I2_S matmul (same bits) */
} bn_gpu_opts;

typedef struct bn_gpu_model bn_gpu_model; /* opaque */

/* Upload the weights of m (which must outlive the handle) and allocate the
 * F16 KV cache and buffers on the device. */
int bn_gpu_model_new(bn_gpu_model **out, const bn_model *m, const bn_gpu_opts *o, bn_err *e);
void bn_gpu_model_free(bn_gpu_model *g);

int bn_gpu_n_ctx(const bn_gpu_model *g);
int bn_gpu_pos(const bn_gpu_model *g);   /* tokens already in the cache */
void bn_gpu_reset(bn_gpu_model *g);      /* new sequence at position 0 */
size_t bn_gpu_bytes(const bn_gpu_model *g); /* device memory held */

/* As bn_forward_eval: n tokens at the current position, logits of the last
 * n_out to logits[n_out][n_vocab]; a bad id or running past n_ctx is an
 * error before anything runs. */
int bn_gpu_eval(bn_gpu_model *g, const int32_t *tokens, int n, float *logits, int n_out, bn_err *e);
/* n tokens, then the top k (1..256) logits of the last one: vals/ids sorted
 * by value descending, ties by lower id (so ids[0] == bn_argmax). */
int bn_gpu_eval_topk(bn_gpu_model *g, const int32_t *tokens, int n, int k, float *vals, int32_t *ids, bn_err *e);

/* "cuda:0 <device> i2_s/cuda-dp4a f16/cuda graph=on kv=f16 mem=1.31GiB" */
void bn_gpu_receipt(const bn_gpu_model *g, char *buf, size_t n);

/* Copy-kernel bandwidth of a device in GB/s (bench: fraction of peak). */
int bn_gpu_copy_bandwidth(int device, size_t bytes, int iters, double *gbps, bn_err *e);

/* ---- device selection for tools (bn-forward --device cpu|cuda|auto) ----------
 * One handle over either forward pass, so a tool replaces bn_forward_* calls
 * by bn_engine_* and gets the fallback rules in one place:
 *   cpu   the CPU pass (lib/forward.h);
 *   cuda  the GPU pass; when it cannot be used (no CUDA build, no device,
 *         a tensor type without a kernel, kv=f32, upload failure): an error
 *         in strict mode, otherwise the CPU pass with `note` saying why (the
 *         tool prints it as a warning);
 *   auto  the GPU pass when usable, otherwise the CPU pass (note set, not
 *         a warning). */
typedef enum bn_device { BN_DEVICE_CPU = 0, BN_DEVICE_CUDA, BN_DEVICE_AUTO } bn_device;

/* "cpu" / "cuda" / "auto" -> device; -1 if unknown. */
int bn_device_parse(const char *s);

typedef struct bn_engine {
    bn_forward *cpu;    /* exactly one of cpu / gpu is set after bn_engine_open */
    bn_gpu_model *gpu;
    char note[BN_ERR_MAX]; /* why the CPU runs although cuda/auto was asked for; "" otherwise */
    float *row;         /* CPU pass: one logits row for bn_engine_eval_topk */
    int n_vocab;
} bn_engine;

/* fo gives n_ctx, n_batch (both passes), threads, kv and kernels (CPU pass). */
int bn_engine_open(bn_engine *x, const bn_model *m, const bn_forward_opts *fo, bn_device dev, bool strict, bn_err *e);
void bn_engine_close(bn_engine *x);
int bn_engine_eval(bn_engine *x, const int32_t *tokens, int n, float *logits, int n_out, bn_err *e);
/* n tokens, then the top k (1..256) of the last token's logits, sorted by
 * value descending, ties by lower id: on the GPU only k pairs cross PCIe, on
 * the CPU it is a selection over the logits row. */
int bn_engine_eval_topk(bn_engine *x, const int32_t *tokens, int n, int k, float *vals, int32_t *ids, bn_err *e);
int bn_engine_pos(const bn_engine *x);
int bn_engine_n_ctx(const bn_engine *x);
void bn_engine_reset(bn_engine *x);
void bn_engine_receipt(const bn_engine *x, char *buf, size_t n);

#endif
