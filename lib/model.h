/* model.h - a BitNet model as the forward pass sees it: hyper-parameters
 * and views of the tensors inside an open GGUF (weights are used in place
 * from the mmap; nothing is copied except norm vectors stored as F16/BF16,
 * which are widened once and reported as a conversion).
 *
 * Archs: "bitnet-b1.58" and "bitnet-25" (FFN relu^2) and "bitnet" (FFN SiLU
 * unless <arch>.hidden_activation says otherwise). Every check runs in
 * bn_model_load, before any compute, and fails with one clear line. */
#ifndef BN_MODEL_H
#define BN_MODEL_H

#include <stdbool.h>
#include <stdint.h>
#include "gguf.h"
#include "kernels.h"
#include "util.h"

typedef enum bn_ffn_act {
    BN_FFN_DEFAULT = 0, /* what the arch says */
    BN_FFN_RELU2,       /* relu(x)^2: bitnet-b1.58, bitnet-25 (2B-4T) */
    BN_FFN_SILU,        /* x * sigmoid(x): stock llama.cpp "bitnet" */
} bn_ffn_act;

const char *bn_ffn_act_name(bn_ffn_act a);
/* "relu2" / "silu" -> act; -1 if unknown. */
int bn_ffn_act_parse(const char *s);

typedef struct bn_hparams {
    int n_vocab;      /* rows of token_embd */
    int n_embd;       /* model width */
    int n_layer;
    int n_head, n_head_kv;
    int head_dim;     /* n_embd / n_head */
    int n_ff;         /* FFN width */
    int n_ctx_train;  /* <arch>.context_length */
    int n_rot;        /* rope dims (= head_dim for these archs) */
    float rope_base;  /* <arch>.rope.freq_base */
    float rms_eps;    /* <arch>.attention.layer_norm_rms_epsilon */
} bn_hparams;

/* One transformer block. Optional per-matmul scales (bitnet "blk.N.*.scale")
 * are 1 when absent. */
typedef struct bn_layer {
    const float *attn_norm, *attn_sub_norm, *ffn_norm, *ffn_sub_norm;
    bn_qmat wq, wk, wv, wo, wgate, wup, wdown;
    float sq, sk, sv, so, sgate, sup, sdown;
} bn_layer;

typedef struct bn_model_opts {
    bn_ffn_act ffn_act; /* BN_FFN_DEFAULT: from the arch / hidden_activation */
    bool strict;        /* NaN/Inf in norms, embeddings or scales is an error; conversions too */
    uint32_t head_type; /* 0: the head as stored; BN_TYPE_Q8_0 / BN_TYPE_Q6_K: requantize an
                           F16/F32 head at load (explicitly asked for, so not a strict-mode error);
                           the input embedding keeps the file's rows */
} bn_model_opts;

typedef struct bn_model {
    const bn_gguf *g;           /* borrowed: must outlive the model */
    char arch[32];              /* general.architecture */
    bn_hparams hp;
    bn_ffn_act act;
    const bn_gguf_tensor *tok_embd;
    bn_qmat head;               /* output.weight, or token_embd when tied */
    bool tied;
    const float *output_norm;
    bn_layer *layers;
    int32_t bos, eos;           /* -1 if absent */
    int32_t eog[8];
    int n_eog;
    char vocab_fp[65];          /* sha256 over tokenizer.ggml.tokens (each text + NUL), as lib/vocab.c; "" if none */
    int n_converted;            /* norm vectors widened from F16/BF16 at load */
    char warn[256];             /* first load-time warning ("" if none) */
    float **owned;              /* widened norm vectors */
    int n_owned;
    void *head_owned;           /* the head requantized at load (bn_model_opts.head_type), or NULL */
    void *repacked;             /* the TQ1_0 layer weights as TQ2_0 (bn_model_repack_tq1), or NULL */
    size_t repacked_bytes;
    int n_repacked;             /* weight matrices in it */
} bn_model;

/* Read hparams and tensor views; check shapes, types and values. */
int bn_model_load(bn_model *m, const bn_gguf *g, const bn_model_opts *o, bn_err *e);
void bn_model_free(bn_model *m);

/* Rewrite the TQ1_0 layer weights as TQ2_0 in one owned buffer, with to_tq2
 * (a kernel table's tq1_to_tq2; NULL: the reference). The codes and scales
 * are the same, so the logits are bitwise the same; the TQ2_0 kernels read
 * ~22% more bytes but skip the base-3 decoding. Returns the number of
 * matrices rewritten, or -1 (out of memory; the model is unchanged). */
int bn_model_repack_tq1(bn_model *m, bn_tq1_to_tq2_fn to_tq2, bn_err *e);

/* Dequantize row `id` of token_embd into out[n_embd] (F16, F32, BF16, Q8_0, Q6_K). */
int bn_model_embed(const bn_model *m, int32_t id, float *out, bn_err *e);

/* Distinct linear weight types used (for receipts); returns the count. */
int bn_model_weight_types(const bn_model *m, uint32_t *types, int max);

#endif
