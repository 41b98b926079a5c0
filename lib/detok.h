/* detok.h - streaming detokenizer: token ids in, UTF-8 text out, one token
 * at a time. Bytes of a character split over several tokens (<0xE2> <0x80>
 * <0x9C>, or byte-level BPE pieces) are held back until the character is
 * complete, so a consumer flushing after every token never prints half a
 * character. Ill-formed byte sequences come out as U+FFFD, so the output is
 * always valid UTF-8.
 *
 * SentencePiece vocabularies (add_space_prefix): the first piece that
 * produces text loses one leading space, so detok(tokenize(x)) == x even
 * after a BOS. (llama_detokenize keeps that space when the first token is a
 * BOS; bn_detokenize() in vocab.h reproduces that exactly.) No
 * clean_spaces pass is applied: streaming output stays lossless. */
#ifndef BN_DETOK_H
#define BN_DETOK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "util.h"
#include "vocab.h"

typedef struct bn_detok {
    const bn_vocab *v;
    bool special;        /* print CONTROL / UNKNOWN token texts */
    bool strip_space;    /* next text piece loses one leading space */
    uint8_t pend[4];     /* bytes of an unfinished character */
    size_t npend, need;  /* held bytes, bytes the lead byte announced */
    uint8_t lo, hi;      /* allowed range of the second byte */
    char *piece;         /* scratch for one token's bytes */
    char *out;           /* text ready to write */
    size_t out_cap;
} bn_detok;

int bn_detok_init(bn_detok *d, const bn_vocab *v, bool special, bn_err *e);
/* Feed one id. *text / *len: complete UTF-8 to write now (may be empty),
 * valid until the next call. Error for ids outside the vocabulary. */
int bn_detok_push(bn_detok *d, int32_t id, const char **text, size_t *len, bn_err *e);
/* End of a stream: an unfinished character becomes U+FFFD. */
void bn_detok_finish(bn_detok *d, const char **text, size_t *len);
/* Start a new sequence (the SPM leading space is stripped again). */
void bn_detok_reset(bn_detok *d);
void bn_detok_free(bn_detok *d);

#endif
