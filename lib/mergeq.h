/* mergeq.h - the priority queue of merge candidates that both tokenizers
 * drain: SentencePiece (best score first) and byte-level BPE (lowest merge
 * rank first). Ties go to the leftmost pair, as in llama.cpp and HF. */
#ifndef BN_MERGEQ_H
#define BN_MERGEQ_H

#include <stddef.h>
#include <stdint.h>
#include "util.h"

typedef struct bn_merge {
    double key;           /* lower pops first: SPM pushes -score, BPE the rank */
    int32_t left, right;  /* symbol indices of the pair */
    int32_t a, b, c;      /* caller data checked when popped (SPM: joined size; BPE: ids and result) */
} bn_merge;

typedef struct bn_mergeq {
    bn_merge *a;
    size_t n, cap;
} bn_mergeq;

int bn_mergeq_push(bn_mergeq *q, bn_merge m, bn_err *e);
/* The first candidate; q must not be empty. */
bn_merge bn_mergeq_pop(bn_mergeq *q);
void bn_mergeq_free(bn_mergeq *q);

#endif
