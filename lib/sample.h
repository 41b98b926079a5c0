/* sample.h - turning a row of logits into one token id: a deterministic
 * PRNG (xoshiro256** seeded through splitmix64), logit bias, repetition /
 * frequency / presence penalties over a window, and the llama.cpp sampler
 * chain penalties -> top_k -> top_p -> min_p -> temperature -> draw.
 * Greedy (temp <= 0) is argmax after bias and penalties, ties -> lowest id.
 *
 * Everything here is pure computation on caller-supplied memory: the same
 * seed, parameters and logits give the same ids on every machine, thread
 * count and transport. Also small helpers the sampler tool needs for its
 * stop conditions (repeated spans, stop strings). */
#ifndef BN_SAMPLE_H
#define BN_SAMPLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "util.h"

/* ---- PRNG ---------------------------------------------------------------- */

typedef struct bn_rng {
    uint64_t s[4];
} bn_rng;

/* Seed the four state words from splitmix64(seed) (never all zero). */
void bn_rng_seed(bn_rng *r, uint64_t seed);
/* Next 64 random bits (xoshiro256**). */
uint64_t bn_rng_next(bn_rng *r);
/* Uniform double in [0, 1) with 53 random bits. */
double bn_rng_uniform(bn_rng *r);
/* One splitmix64 step (exposed for tests and for deriving seeds). */
uint64_t bn_splitmix64(uint64_t *state);

/* ---- sampler ------------------------------------------------------------- */

typedef struct bn_logit_bias {
    int32_t id;
    float bias;              /* added to the logit; -INFINITY bans the token */
} bn_logit_bias;

typedef struct bn_sampler_params {
    float temp;              /* <= 0: greedy (default 0.8) */
    int32_t top_k;           /* <= 0: off (default 40) */
    float top_p;             /* >= 1: off (default 0.95) */
    float min_p;             /* <= 0: off (default 0.05) */
    float repeat_penalty;    /* 1: off (default 1.0) */
    float freq_penalty;      /* 0: off */
    float presence_penalty;  /* 0: off */
    int32_t repeat_last_n;   /* penalty window in tokens; 0 off, -1 whole history (default 64) */
    uint64_t seed;
    const bn_logit_bias *bias; /* copied by bn_sampler_new */
    size_t n_bias;
    uint32_t n_top;          /* alternatives reported in bn_sample_info (0..BN_SAMPLE_MAX_TOP) */
} bn_sampler_params;

/* llama.cpp's defaults (conventions.md section 2), seed 0. */
void bn_sampler_params_default(bn_sampler_params *p);

#define BN_SAMPLE_MAX_TOP 32

typedef struct bn_sample_alt {
    int32_t id;
    float logprob;
} bn_sample_alt;

/* What bn_sampler_sample can report besides the id (filled when info != NULL). */
typedef struct bn_sample_info {
    float logprob;           /* log-probability of the chosen id under the full
                              * distribution after bias and penalties, temperature 1 */
    uint32_t n_kept;         /* candidates left when the draw happened */
    uint32_t n_top;          /* best alternatives under that same distribution */
    bn_sample_alt top[BN_SAMPLE_MAX_TOP];
} bn_sample_info;

typedef struct bn_candidate {
    int32_t id;
    float logit;
    float p;
} bn_candidate;

typedef struct bn_sampler bn_sampler;

/* Allocate a sampler for a vocabulary of n_vocab ids; checks the parameters
 * (ranges, bias ids < n_vocab). */
int bn_sampler_new(bn_sampler **out, const bn_sampler_params *p, uint32_t n_vocab, bn_err *e);
void bn_sampler_free(bn_sampler *s);
uint32_t bn_sampler_n_vocab(const bn_sampler *s);

/* Record a token as part of the sequence (prompt or generated), so the
 * penalties see it. Ids outside the vocabulary are an error. */
int bn_sampler_accept(bn_sampler *s, int32_t id, bn_err *e);
/* Forget the penalty history (a new, unrelated sequence); the RNG goes on. */
void bn_sampler_reset_history(bn_sampler *s);

/* Choose the next id from one row of n_vocab logits. Does NOT accept it:
 * call bn_sampler_accept with the id actually used. NaN or +inf logits and
 * a row where every id is banned are errors. */
int bn_sampler_sample(bn_sampler *s, const float *logits, int32_t *id, bn_sample_info *info, bn_err *e);

/* ---- the individual steps, on a candidate array (exposed for tests) ------ */

/* Apply the penalties for the given per-id counts (llama.cpp semantics:
 * logit <= 0 is multiplied by repeat, > 0 divided; then
 * logit -= count * freq + (count > 0) * presence). */
void bn_apply_penalties(bn_candidate *c, size_t n, const uint32_t *counts,
                        float repeat, float freq, float presence);
/* Keep the k best (logit desc, id asc), sorted. k <= 0 or k >= n: sort only. Returns new n. */
size_t bn_top_k(bn_candidate *c, size_t n, int32_t k);
/* Softmax of the logits into p (over the n candidates, any order). */
void bn_softmax(bn_candidate *c, size_t n);
/* Nucleus: c sorted by bn_top_k; keep the shortest prefix whose probability
 * reaches p (at least one). Returns new n. */
size_t bn_top_p(bn_candidate *c, size_t n, float p);
/* Keep candidates with probability >= min_p * max probability (order kept).
 * Returns new n (at least one). */
size_t bn_min_p(bn_candidate *c, size_t n, float min_p);
/* Draw one candidate index according to p (softmax first); u in [0, 1). */
size_t bn_draw(const bn_candidate *c, size_t n, double u);

/* ---- stop conditions ----------------------------------------------------- */

/* If the last k ids of toks[0..n) also occur starting at an earlier index,
 * return that (earliest) index; else -1. k == 0 or n < k + 1: -1. */
long bn_repeat_find(const int32_t *toks, size_t n, size_t k);

/* Earliest stop string that occurs in text[0..len) at or after byte offset
 * `from` (matches may start before `from` if they end after it). Returns
 * the stop's index, or -1; *at gets the match offset. */
int bn_stop_find(const char *text, size_t len, size_t from, const char *const *stops, size_t n_stops, size_t *at);


/* The stop rules of one generation, in the order bn-sample applies them
 * after each emitted token: a stop string in the text so far, -n reached,
 * the last repeat_k tokens repeating an earlier span. */
typedef struct bn_stopper {
    long n_predict;              /* tokens per generation, -1 = no limit */
    size_t repeat_k;             /* 0 = off */
    const char *const *stops;    /* borrowed */
    size_t n_stops;
    int32_t *hist;               /* this generation's tokens */
    size_t n_hist, cap_hist;
    char *text;                  /* this generation's text (only with stop strings) */
    size_t n_text, cap_text;
} bn_stopper;

void bn_stopper_init(bn_stopper *s, long n_predict, size_t repeat_k, const char *const *stops, size_t n_stops);
/* A new generation starts: history and text are forgotten. */
void bn_stopper_reset(bn_stopper *s);
/* Record an emitted token and its text piece (piece may be NULL without
 * stop strings). *reason: NULL to go on, else "stop", "length" or "repeat". */
int bn_stopper_push(bn_stopper *s, int32_t id, const char *piece, size_t len, const char **reason, bn_err *e);
void bn_stopper_free(bn_stopper *s);

/* ---- command-line and output helpers ------------------------------------ */

/* Parse llama.cpp's --logit-bias syntax "ID+BIAS" / "ID-BIAS" ("-inf" bans). */
int bn_logit_bias_parse(const char *s, bn_logit_bias *out, bn_err *e);

/* Append a JSON string literal (quotes, escapes, invalid UTF-8 bytes as
 * \u00XX) of bytes[0..n) to buf (capacity cap, *len updated). Returns -1
 * when it does not fit. */
int bn_json_quote(char *buf, size_t cap, size_t *len, const char *bytes, size_t n);

#endif
