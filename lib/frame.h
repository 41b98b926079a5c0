/* frame.h - the messages stages exchange: one msgpack map per frame, with a
 * "kind" key and typed fields (spec: docs/PROTOCOL.md). Over a pipe frames
 * follow each other; over ZeroMQ one frame is one message.
 *
 * Decoding is defensive: size and array caps, a type check on every field,
 * errors name the byte offset. Unknown fields are ignored; unknown kinds
 * decode as BN_FRAME_UNKNOWN with the raw bytes kept so stages pass them on. */
#ifndef BN_FRAME_H
#define BN_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "util.h"

#define BN_PROTO_VERSION 1
#define BN_FRAME_MAX_BYTES (64u << 20)   /* one frame at most 64 MiB */
#define BN_FRAME_MAX_ARRAY (16u << 20)   /* at most 16M elements in any array */

typedef enum bn_frame_kind {
    BN_FRAME_UNKNOWN = 0,
    BN_FRAME_HELLO,   /* stage introduces itself: version, fingerprints, special ids, endpoints */
    BN_FRAME_TOKENS,  /* a run of token ids (prompt) */
    BN_FRAME_LOGITS,  /* f32 rows [n_rows][n_vocab] as bin, starting at position pos */
    BN_FRAME_TOKEN,   /* one sampled token id (downstream and on the feedback socket) */
    BN_FRAME_TEXT,    /* UTF-8 text */
    BN_FRAME_TIMING,  /* stage, event, ns, count */
    BN_FRAME_SCORES,  /* per-position log-probabilities of given next tokens (perplexity) */
    BN_FRAME_ERROR,   /* stage, message: a peer failed */
    BN_FRAME_END,     /* end of a sequence / stream */
    BN_FRAME_KIND_COUNT
} bn_frame_kind;

const char *bn_frame_kind_name(bn_frame_kind k); /* "hello", "tokens", ... */

#define BN_MAX_EOG 8

typedef struct bn_hello {
    uint32_t proto;          /* BN_PROTO_VERSION */
    char stage[32];          /* "bn-tokenize", "bn-forward", ... */
    char vocab_fp[72];       /* fingerprint of the vocabulary (hex sha256 of tokens), "" if none */
    char model_fp[72];       /* fingerprint of the model file ("" if the stage has none) */
    uint32_t n_vocab;        /* 0 if unknown */
    int32_t bos, eos;        /* -1 if none */
    int32_t eog[BN_MAX_EOG]; /* end-of-generation ids (EOS, EOT, ...) */
    uint32_t n_eog;
    uint32_t n_ctx;          /* context size (bn-forward), 0 if unknown */
    char feedback[256];      /* endpoint a downstream sampler connects back to, "" if none */
    char kernels[256];       /* receipt: "i2_s/avx512 f16/avx512 threads=2 strict=0" */
} bn_hello;

typedef struct bn_frame {
    bn_frame_kind kind;
    uint32_t seq;            /* sequence id (0 by default) */

    bn_hello hello;          /* HELLO */

    int32_t *tokens;         /* TOKENS (n_tokens ids), TOKEN (n_tokens == 1), SCORES (targets) */
    uint32_t n_tokens;
    uint32_t pos;            /* TOKENS/LOGITS/SCORES: position of the first row/token */

    float *logits;           /* LOGITS: n_rows * n_vocab floats; SCORES: n_rows log-probs */
    uint32_t n_rows, n_vocab;

    char *text;              /* TEXT / ERROR message (NUL-terminated copy) */
    size_t text_len;

    char stage[32];          /* TIMING / ERROR: producing stage */
    char event[32];          /* TIMING: "load", "prefill", "decode", "sample", ... */
    uint64_t ns;             /* TIMING: duration in nanoseconds */
    uint64_t count;          /* TIMING: tokens (or items) the duration covers */
    uint64_t t_start_ns;     /* TIMING: start time on the producer's monotonic clock, 0 if unknown */

    bool more;               /* END: only sequence `seq` ended, more frames follow (wire "more");
                              * false (default): end of the whole stream */

    uint8_t *raw;            /* UNKNOWN: the frame's bytes, to pass through unchanged */
    size_t raw_len;

    bool owns;               /* decoder allocated the pointers above */
} bn_frame;

/* Zero a frame (kind UNKNOWN, bos/eos -1). */
void bn_frame_init(bn_frame *f, bn_frame_kind kind);
/* Free what a decoder allocated (no-op for frames built by callers with owns=false). */
void bn_frame_free(bn_frame *f);

/* Encode to a malloc'd buffer. */
int bn_frame_encode(const bn_frame *f, uint8_t **buf, size_t *len, bn_err *e);

/* Decode exactly one frame from buf[0..len). base_offset is added to byte
 * offsets in messages (stream position). */
int bn_frame_decode(const uint8_t *buf, size_t len, uint64_t base_offset, bn_frame *f, bn_err *e);

/* Streaming decoder for pipes: feed bytes, pull frames. */
typedef struct bn_frame_reader bn_frame_reader;
int bn_frame_reader_new(bn_frame_reader **out, bn_err *e);
void bn_frame_reader_free(bn_frame_reader *r);
/* Reserve space, read into it, commit. */
int bn_frame_reader_feed(bn_frame_reader *r, const void *data, size_t n, bn_err *e);
/* 1 = a frame was produced, 0 = need more bytes, -1 = malformed (e names the offset). */
int bn_frame_reader_next(bn_frame_reader *r, bn_frame *f, bn_err *e);
/* Bytes buffered but not yet a complete frame (non-zero at EOF = truncated stream). */
size_t bn_frame_reader_pending(const bn_frame_reader *r);
/* Zero-copy feeding: get at least `want` writable bytes at *buf (*avail says
 * how many), read into them, then commit the count actually read. */
int bn_frame_reader_reserve(bn_frame_reader *r, size_t want, uint8_t **buf, size_t *avail, bn_err *e);
void bn_frame_reader_commit(bn_frame_reader *r, size_t n);
/* Stream offset of the first byte not yet returned as a frame. */
uint64_t bn_frame_reader_offset(const bn_frame_reader *r);
/* Notes: next() returning -1 on a frame that is valid msgpack but has wrong
 * fields steps over that frame (a caller may go on); bytes that are not
 * msgpack break the stream for good (next() keeps returning -1). */

/* One JSON object per frame (debugging, bn-frames): {"kind":"tokens",...};
 * logits are summarised unless full is true; unknown frames print their raw
 * bytes as hex. malloc'd NUL-terminated string in *out. */
int bn_frame_to_json(const bn_frame *f, bool full, char **out, bn_err *e);
/* The reverse, for tests and hand-written streams: a JSON object with the
 * wire field names ("data"/"logprobs" as arrays of numbers). The frame owns
 * its buffers (free with bn_frame_free). */
int bn_frame_from_json(const char *json, size_t len, bn_frame *f, bn_err *e);

/* A received hello is usable: proto is BN_PROTO_VERSION; when both
 * fingerprints are non-empty they match (expect_vocab_fp may be NULL/""). */
int bn_hello_check(const bn_hello *h, const char *expect_vocab_fp, bn_err *e);

/* Convenience constructors for frames whose pointers the caller owns. */
void bn_frame_tokens(bn_frame *f, int32_t *ids, uint32_t n, uint32_t pos);
void bn_frame_token(bn_frame *f, int32_t *id, uint32_t pos);
void bn_frame_timing(bn_frame *f, const char *stage, const char *event, uint64_t ns, uint64_t count);
void bn_frame_error(bn_frame *f, const char *stage, const char *msg);

#endif
