/* convert.h - build BitNet GGUF files: from a Hugging Face checkpoint
 * directory (config.json + safetensors + tokenizer), by requantizing another
 * GGUF, or from synthetic random ternary weights. Tensors are streamed one by
 * one (peak memory about one linear weight in float plus its output), the
 * output goes through the GGUF writer (temp file + rename).
 *
 * Weight math (docs/FORMATS.md has the sources): per tensor s = max(mean|W|,
 * 1e-5) in float, inv = 1/s, T = clamp(rne(W*inv), -1, 1), value = T/inv
 * (HF WeightQuant / the kjv reference). I2_S gets scale 1/inv in the trailer,
 * TQ1_0/TQ2_0 are quantize_row_tq*_ref of the ternary values. */
#ifndef BN_CONVERT_H
#define BN_CONVERT_H

#include <stdbool.h>
#include <stdint.h>
#include "util.h"

/* Model shape; 0 fields mean "take from the source". */
typedef struct bn_dims {
    uint32_t n_vocab, n_ctx, n_embd, n_layer, n_head, n_head_kv, n_ff;
    float rope_base, eps;
} bn_dims;

/* Progress callback: tensor i of n (0-based) named name is done. */
typedef void (*bn_convert_progress)(void *ctx, uint64_t i, uint64_t n, const char *name, uint64_t bytes);

typedef struct bn_convert_opts {
    uint32_t wtype;          /* linear weights: BN_TYPE_I2_S, TQ2_0, TQ1_0, F16, F32 */
    int embd_type;           /* token_embd: -1 = keep / F16 default; F16, F32, Q8_0, Q6_K */
    int output_type;         /* output.weight when present: -1 = like embd_type */
    const char *arch;        /* NULL: bitnet-b1.58 for I2_S/F16/F32, bitnet for TQ* (GGUF input keeps its arch) */
    const char *name;        /* general.name override */
    int n_threads;           /* 0 = 1 */
    bn_convert_progress progress;
    void *progress_ctx;
    /* synthetic */
    const char *vocab_path;  /* GGUF whose tokenizer.* keys are copied */
    uint64_t seed;
} bn_convert_opts;

/* Defaults: wtype I2_S, embd F16, arch by type, seed 1234. */
void bn_convert_opts_init(bn_convert_opts *o);

/* Named synthetic shapes: "tiny" (the ../shared fixtures' shape) and "2b4t"
 * (bitnet-b1.58-2B-4T). n_vocab is left 0 (taken from the vocab file). */
int bn_dims_preset(bn_dims *d, const char *shape, bn_err *e);
/* "embd=256,layers=4,heads=8,kv=2,ffn=768,ctx=512[,rope=..,eps=..]" over d. */
int bn_dims_parse(bn_dims *d, const char *spec, bn_err *e);

/* HF checkpoint directory -> GGUF. */
int bn_convert_hf(const char *dir, const char *out, const bn_convert_opts *o, bn_err *e);
/* GGUF -> GGUF with other tensor types (weights must decode to exact ternary
 * values with one scale per tensor for I2_S output). */
int bn_convert_gguf(const char *in, const char *out, const bn_convert_opts *o, bn_err *e);
/* Random model of the given shape with the vocabulary of o->vocab_path. */
int bn_convert_synthetic(const bn_dims *d, const char *out, const bn_convert_opts *o, bn_err *e);

/* llama_ftype number for a linear weight type (I2_S 40, TQ1_0 36, TQ2_0 37,
 * F16 1, F32 0); -1 if none. */
int bn_ftype_for(uint32_t wtype);

#endif
