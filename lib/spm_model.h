/* spm_model.h - read a SentencePiece tokenizer.model (protobuf ModelProto)
 * into a bn_vocab of kind "llama": pieces, scores, types, unk/bos/eos/pad
 * ids from the trainer spec, add_dummy_prefix from the normalizer spec.
 * bn-quantize reuses it to embed the vocabulary in a GGUF. Only BPE models
 * are accepted (unigram needs Viterbi decoding, which bn does not do). */
#ifndef BN_SPM_MODEL_H
#define BN_SPM_MODEL_H

#include <stddef.h>
#include <stdint.h>
#include "util.h"

struct bn_vocab;

/* Parse a ModelProto held in memory; name is used in messages. */
int bn_spm_model_load(struct bn_vocab *v, const uint8_t *data, size_t len, const char *name, bn_err *e);
/* Read and parse a file. */
int bn_spm_model_load_file(struct bn_vocab *v, const char *path, bn_err *e);

#endif
