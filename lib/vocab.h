/* vocab.h - tokenizer vocabularies (GGUF tokenizer.ggml.* or a SentencePiece
 * tokenizer.model), text -> token ids and ids -> text.
 *
 * Two kinds, as llama.cpp names them in tokenizer.ggml.model:
 *   "llama"  SentencePiece: score-driven pair merges over UTF-8 characters,
 *            U+2581 for spaces, a dummy prefix space, <0xNN> byte fallback.
 *   "gpt2"   byte-level BPE: a pre-tokenizer regex (gpt-2 or llama3 rules,
 *            hand-written in bpe.c), bytes_to_unicode mapping, merge ranks.
 *
 * Input text must be valid UTF-8: bn_tokenize() rejects anything else with
 * the byte offset of the first bad sequence (llama.cpp instead substitutes
 * U+FFFD; we prefer a loud error). A bn_vocab is immutable after
 * bn_vocab_finish() and can be shared between threads. */
#ifndef BN_VOCAB_H
#define BN_VOCAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "util.h"

typedef enum bn_vocab_type {
    BN_VOCAB_SPM = 1, /* "llama" */
    BN_VOCAB_BPE = 2, /* "gpt2" */
} bn_vocab_type;

typedef enum bn_vocab_pre {
    BN_PRE_NONE = 0,   /* SPM: no pre-tokenizer */
    BN_PRE_GPT2 = 1,   /* "gpt-2", "default" */
    BN_PRE_LLAMA3 = 2, /* "llama3", "llama-v3", "llama-bpe", "falcon3", or missing */
} bn_vocab_pre;

/* Token types (tokenizer.ggml.token_type; same numbers as SentencePiece). */
enum {
    BN_TOK_NORMAL = 1, BN_TOK_UNKNOWN = 2, BN_TOK_CONTROL = 3,
    BN_TOK_USER_DEFINED = 4, BN_TOK_UNUSED = 5, BN_TOK_BYTE = 6,
};

#define BN_VOCAB_MAX_EOG 8

typedef struct bn_vocab {
    bn_vocab_type type;
    bn_vocab_pre pre;
    char pre_name[32];        /* tokenizer.ggml.pre as found ("" when missing) */
    uint32_t n_tokens;
    /* token i: text_blob[text_off[i] .. + text_len[i]) */
    char *text_blob;
    uint64_t *text_off;
    uint32_t *text_len;
    float *scores;            /* 0 when the file has none */
    uint8_t *types;           /* BN_TOK_* */
    int32_t bos, eos, unk, eot, pad, eom; /* -1 when absent */
    int32_t eog[BN_VOCAB_MAX_EOG];        /* end-of-generation ids */
    uint32_t n_eog;
    bool add_bos, add_eos;
    bool add_space_prefix;    /* SPM dummy prefix (default true) */
    bool ignore_merges;       /* BPE: whole pre-token lookup first (llama3) */
    bool clean_spaces;        /* llama.cpp detokenize clean-up (BPE) */
    char *chat_template;      /* NUL-terminated copy, NULL when absent */
    char fingerprint[65];     /* hex sha256 over every token text + NUL */

    /* lookup structures built by bn_vocab_finish() */
    uint32_t *tok_ht;         /* open addressing, id+1 (0 = empty) */
    uint64_t tok_ht_mask;
    uint32_t n_merges;
    uint64_t *merge_keys;     /* (left id << 32 | right id) + 1, 0 = empty */
    uint32_t *merge_rank;
    int32_t *merge_result;
    uint64_t merge_ht_mask;
    int32_t byte_tok[256];    /* SPM <0xNN> / BPE mapped byte char, -1 if absent */
    int32_t *special;         /* CONTROL / USER_DEFINED / UNKNOWN ids, longest text first */
    uint32_t n_special;
    size_t blob_len, blob_cap; /* builder state */
    /* pending merges as (left id, right id), ranks in order of addition */
    uint64_t *pend_merges;
    uint32_t n_pend, cap_pend;
    uint32_t n_merges_dropped; /* merges whose parts or result are not tokens */
    bool spm_ws_split;        /* no token has a U+2581 right after another character:
                               * SPM may encode word by word (same ids, small heaps) */
} bn_vocab;

/* ---- building ------------------------------------------------------------ */

/* Start a vocabulary of n tokens (all empty NORMAL, score 0, specials -1). */
int bn_vocab_init(bn_vocab *v, bn_vocab_type type, uint32_t n, bn_err *e);
/* Set token id's text, score and type. Every id must be set once. */
int bn_vocab_set_token(bn_vocab *v, uint32_t id, const char *text, size_t len, float score,
                       int type, bn_err *e);
/* BPE: append a merge "left right" (rank = order of addition). */
int bn_vocab_add_merge(bn_vocab *v, const char *left, size_t llen, const char *right, size_t rlen,
                       bn_err *e);
/* Hash tables, byte map, special list, EOG set, fingerprint. After this the
 * vocabulary is read-only. Sets defaults: SPM add_space_prefix, BPE
 * clean_spaces, llama3 ignore_merges; EOT found by text when unset. */
int bn_vocab_finish(bn_vocab *v, bn_err *e);
void bn_vocab_free(bn_vocab *v);

/* ---- loading ------------------------------------------------------------- */

struct bn_gguf;
/* Read tokenizer.ggml.* (and tokenizer.chat_template) from an open GGUF.
 * Errors: no tokenizer.ggml.model (a file without vocabulary), unknown model
 * or pre-tokenizer, array length mismatches, special ids out of range. */
int bn_vocab_load_gguf(bn_vocab *v, const struct bn_gguf *g, bn_err *e);
/* Open path: a GGUF, or a SentencePiece tokenizer.model (protobuf; see
 * spm_model.h), chosen by the file's magic. */
int bn_vocab_load_file(bn_vocab *v, const char *path, bn_err *e);

/* ---- lookup -------------------------------------------------------------- */

/* Id of the token whose text is exactly s[0..n), or -1. */
int32_t bn_vocab_find(const bn_vocab *v, const char *s, size_t n);
static inline const char *bn_vocab_text(const bn_vocab *v, int32_t id, size_t *len) {
    *len = v->text_len[id];
    return v->text_blob + v->text_off[id];
}
bool bn_vocab_is_eog(const bn_vocab *v, int32_t id);
/* "llama" / "gpt2" */
const char *bn_vocab_type_name(bn_vocab_type t);
const char *bn_vocab_pre_name(bn_vocab_pre p);

/* ---- tokenizing ---------------------------------------------------------- */

/* A growable id array. */
typedef struct bn_ids {
    int32_t *ids;
    size_t n, cap;
} bn_ids;
int bn_ids_push(bn_ids *a, int32_t id, bn_err *e);
void bn_ids_free(bn_ids *a);

/* Text -> ids, appended to out. add_special: BOS (and EOS) as the vocabulary
 * asks (add_bos / add_eos). parse_special: CONTROL and UNKNOWN token texts in
 * the input become those tokens (USER_DEFINED texts always do, as in
 * llama.cpp). Rejects invalid UTF-8 with its byte offset. */
int bn_tokenize(const bn_vocab *v, const char *text, size_t len, bool add_special,
                bool parse_special, bn_ids *out, bn_err *e);

/* Internal per-kind encoders of one raw-text fragment (spm.c, bpe.c). */
int bn_spm_encode(const bn_vocab *v, const char *text, size_t len, bn_ids *out, bn_err *e);
int bn_bpe_encode(const bn_vocab *v, const char *text, size_t len, bn_ids *out, bn_err *e);

/* ---- detokenizing -------------------------------------------------------- */

/* Bytes of one token as llama.cpp's token_to_piece: CONTROL and UNKNOWN give
 * nothing unless special; USER_DEFINED is copied; SPM unescapes U+2581 and
 * turns <0xNN> into the byte; BPE maps code points back to bytes. buf must
 * hold bn_vocab_piece_max(v) bytes. lstrip: drop that many leading spaces.
 * Returns the length, or -1 for an id out of range. */
long bn_token_piece(const bn_vocab *v, int32_t id, bool special, int lstrip, char *buf, bn_err *e);
size_t bn_vocab_piece_max(const bn_vocab *v);

/* llama.cpp's llama_detokenize(remove_special, unparse_special), including
 * its leading-space and clean_spaces rules. *out is malloc'd and
 * NUL-terminated. */
int bn_detokenize(const bn_vocab *v, const int32_t *ids, size_t n, bool remove_special,
                  bool unparse_special, char **out, size_t *out_len, bn_err *e);

#endif
