/* ppl.h - perplexity bookkeeping: how a token stream is cut into chunks
 * (llama-perplexity's protocol or the kjv reference's windows), NLL
 * accumulation with llama.cpp's standard error, and KL divergence / top-1
 * agreement between a base model's and a tested model's distributions. */
#ifndef BN_PPL_H
#define BN_PPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "frame.h"
#include "util.h"

typedef enum bn_ppl_mode {
    BN_PPL_LLAMA = 0, /* chunks of n_ctx, BOS replaces token 0, second half scored, remainder dropped */
    BN_PPL_KJV,       /* windows of n_ctx (last shorter), every token but the first scored */
} bn_ppl_mode;

/* Parse "llama" / "kjv". */
int bn_ppl_mode_parse(const char *s, bn_ppl_mode *out, bn_err *e);

/* How many chunks a stream of n_tokens gives (max_chunks > 0 caps it).
 * llama mode refuses n_tokens < 2*n_ctx like llama-perplexity does. */
int bn_ppl_plan(bn_ppl_mode mode, size_t n_tokens, int n_ctx, long max_chunks, size_t *n_chunks, bn_err *e);

/* Chunk i: first token index in the stream and its length. */
void bn_ppl_chunk(bn_ppl_mode mode, size_t n_tokens, int n_ctx, size_t i, size_t *start, int *len);

/* First logits row (position) of a chunk whose next-token log-prob counts:
 * llama: n_ctx/2 (rows first..len-2 scored); kjv: 0. */
int bn_ppl_first_scored(bn_ppl_mode mode, int n_ctx);

/* Running NLL sums, as llama-perplexity keeps them. */
typedef struct bn_ppl {
    double nll, nll2;  /* sum of -log p and of its square */
    uint64_t count;    /* scored tokens */
    uint64_t chunks;
} bn_ppl;

void bn_ppl_init(bn_ppl *p);
void bn_ppl_add(bn_ppl *p, double logprob);
/* exp(mean NLL) so far (the running [i] value); NAN when nothing scored. */
double bn_ppl_value(const bn_ppl *p);
/* Final PPL and its standard error (llama.cpp: ppl * sqrt(var(nll)/(n-1))). */
int bn_ppl_final(const bn_ppl *p, double *ppl, double *err, bn_err *e);

/* log-softmax of a row into out (double accumulation); returns 0. */
void bn_log_softmax_row(const float *row, int n_vocab, float *out);

/* ---- KL divergence: base log-probs saved to a file, compared later ----
 * File "BNKL": magic[4], u32 version 1, u32 n_vocab, u32 n_rows, then per
 * row: i32 target id, n_vocab f32 log-probs (little endian). */
typedef struct bn_kl_writer bn_kl_writer;
int bn_kl_writer_new(bn_kl_writer **out, const char *path, uint32_t n_vocab, bn_err *e);
int bn_kl_writer_row(bn_kl_writer *w, int32_t target, const float *logprobs, bn_err *e);
int bn_kl_writer_close(bn_kl_writer *w, bn_err *e); /* patches n_rows, renames; frees w */
void bn_kl_writer_abort(bn_kl_writer *w);

typedef struct bn_kl_reader bn_kl_reader;
int bn_kl_reader_open(bn_kl_reader **out, const char *path, bn_err *e);
uint32_t bn_kl_reader_n_vocab(const bn_kl_reader *r);
uint32_t bn_kl_reader_n_rows(const bn_kl_reader *r);
/* Next row: 1 = read, 0 = no rows left, -1 = error. logprobs holds n_vocab. */
int bn_kl_reader_row(bn_kl_reader *r, int32_t *target, float *logprobs, bn_err *e);
void bn_kl_reader_close(bn_kl_reader *r);

/* Per-row comparison statistics (llama-perplexity --kl-divergence). */
typedef struct bn_kl_stats {
    size_t n, cap;
    double *kld;         /* per-row KL(base || test) */
    double *dp;          /* per-row p_test(target) - p_base(target) */
    double sum_kld, sum_kld2;
    double sum_lt, sum_lt2, sum_lb, sum_lb2, sum_ltb; /* -log p of target: test, base */
    uint64_t same_top;
} bn_kl_stats;

typedef struct bn_kl_summary {
    size_t n;
    double ppl_test, ppl_base, cor_ln_ppl, mean_ln_ratio, mean_ln_ratio_err;
    double kld_mean, kld_err, kld_max, kld_p999, kld_p99, kld_p95, kld_p90, kld_median, kld_p10, kld_p5, kld_p1,
        kld_p01, kld_min;
    double rms_dp, rms_dp_err;
    double same_top, same_top_err; /* fractions (0..1) */
} bn_kl_summary;

void bn_kl_stats_init(bn_kl_stats *s);
void bn_kl_stats_free(bn_kl_stats *s);
/* One row: base and test log-probs (n_vocab each), the actual next token. */
int bn_kl_stats_add(bn_kl_stats *s, const float *base_lp, const float *test_lp, int n_vocab, int32_t target,
                    bn_err *e);
int bn_kl_summarize(bn_kl_stats *s, bn_kl_summary *out, bn_err *e);

/* ---- the scoring stage: bn-forward's frames in, sums out ----
 * A tokens frame at position 0 opens a chunk (bn-forward passes tokens frames
 * on before its results); SCORES frames (log p of each next token) or LOGITS
 * frames (whole rows, needed for KL) add the scored rows of that chunk. */
typedef struct bn_ppl_scorer {
    bn_ppl_mode mode;
    const char *kl_save, *kl_base; /* paths or NULL */
    bn_ppl p;
    int32_t *chunk;                /* the open chunk's tokens */
    uint32_t len;
    bool open;
    uint32_t n_vocab;              /* from the hello */
    float *lp, *blp;               /* a row's log-probs; the base's */
    bn_kl_writer *klw;
    bn_kl_reader *klr;
    bn_kl_stats kl;
    double *chunk_ppl;             /* running PPL after each chunk */
    size_t n_chunk_ppl;
} bn_ppl_scorer;

int bn_ppl_scorer_init(bn_ppl_scorer *s, bn_ppl_mode mode, const char *kl_save, const char *kl_base, bn_err *e);
/* 1 = the frame closed a chunk (a new chunk_ppl entry), 0 = consumed, -1 = error. */
int bn_ppl_scorer_frame(bn_ppl_scorer *s, const bn_frame *f, bn_err *e);
/* End of stream: closes the open chunk (1 if one was closed, 0 if none). */
int bn_ppl_scorer_finish(bn_ppl_scorer *s, bn_err *e);
/* After a successful run: checks every base row was used, writes the KL file. */
int bn_ppl_scorer_commit(bn_ppl_scorer *s, bn_err *e);
void bn_ppl_scorer_free(bn_ppl_scorer *s); /* aborts an uncommitted KL file */

#endif
