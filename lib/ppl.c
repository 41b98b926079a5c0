/* ppl.c - chunking, NLL sums and KL statistics for perplexity (see ppl.h). */
#include "ppl.h"
#include "forward.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The window protocol is named on the command line. */
int bn_ppl_mode_parse(const char *s, bn_ppl_mode *out, bn_err *e) {
    if (strcmp(s, "llama") == 0) *out = BN_PPL_LLAMA;
    else if (strcmp(s, "kjv") == 0) *out = BN_PPL_KJV;
    else return bn_errf(e, "window-mode: %s: expected llama or kjv", s);
    return 0;
}

/* llama-perplexity: n_chunk = n_tokens / n_ctx, and fewer than 2*n_ctx
 * tokens is an error; kjv: every window, the last one shorter. */
int bn_ppl_plan(bn_ppl_mode mode, size_t n_tokens, int n_ctx, long max_chunks, size_t *n_chunks, bn_err *e) {
    if (n_ctx < 4) return bn_errf(e, "ctx: %d: at least 4 tokens", n_ctx);
    size_t n;
    if (mode == BN_PPL_LLAMA) {
        if (n_tokens < 2 * (size_t)n_ctx)
            return bn_errf(e, "tokens: %zu: you need at least %d tokens to evaluate perplexity with a context of %d",
                           n_tokens, 2 * n_ctx, n_ctx);
        n = n_tokens / (size_t)n_ctx;
    } else {
        if (n_tokens < 2) return bn_errf(e, "tokens: %zu: at least 2 tokens are needed", n_tokens);
        n = (n_tokens + (size_t)n_ctx - 1) / (size_t)n_ctx;
        if (n > 1 && n_tokens - (n - 1) * (size_t)n_ctx < 2) n--; /* a 1-token window predicts nothing */
    }
    if (max_chunks > 0 && (size_t)max_chunks < n) n = (size_t)max_chunks;
    *n_chunks = n;
    return 0;
}

/* Chunks are consecutive and non-overlapping in both modes. */
void bn_ppl_chunk(bn_ppl_mode mode, size_t n_tokens, int n_ctx, size_t i, size_t *start, int *len) {
    *start = i * (size_t)n_ctx;
    size_t left = n_tokens > *start ? n_tokens - *start : 0;
    *len = (int)(left < (size_t)n_ctx ? left : (size_t)n_ctx);
    if (mode == BN_PPL_LLAMA) *len = n_ctx;
}

/* llama-perplexity scores only the second half: the first has too little context. */
int bn_ppl_first_scored(bn_ppl_mode mode, int n_ctx) {
    return mode == BN_PPL_LLAMA ? n_ctx / 2 : 0;
}

/* Sums start at zero. */
void bn_ppl_init(bn_ppl *p) { memset(p, 0, sizeof *p); }

/* Accumulate -log p and its square (for the standard error). */
void bn_ppl_add(bn_ppl *p, double logprob) {
    p->nll -= logprob;
    p->nll2 += logprob * logprob;
    p->count++;
}

/* The running value llama-perplexity prints after each chunk. */
double bn_ppl_value(const bn_ppl *p) {
    return p->count ? exp(p->nll / (double)p->count) : NAN;
}

/* llama.cpp: nll2/n - (nll/n)^2 is the variance of the NLL; the error of
 * the mean is sqrt(var/(n-1)), propagated through exp as ppl*that. */
int bn_ppl_final(const bn_ppl *p, double *ppl, double *err, bn_err *e) {
    if (p->count == 0) return bn_errf(e, "perplexity: no token was scored");
    const double n = (double)p->count, mean = p->nll / n;
    double var = p->nll2 / n - mean * mean;
    *ppl = exp(mean);
    *err = (var > 0 && p->count > 1) ? *ppl * sqrt(var / (n - 1)) : 0.0;
    return 0;
}

/* Log-probabilities of a whole row, max-shifted, sum in double. */
void bn_log_softmax_row(const float *row, int n_vocab, float *out) {
    float mx = row[0];
    for (int i = 1; i < n_vocab; i++) if (row[i] > mx) mx = row[i];
    double s = 0;
    for (int i = 0; i < n_vocab; i++) s += exp((double)row[i] - mx);
    const double lse = mx + log(s);
    for (int i = 0; i < n_vocab; i++) out[i] = (float)((double)row[i] - lse);
}

/* ---- KL file ---------------------------------------------------------- */

struct bn_kl_writer {
    FILE *f;
    char *path, *tmp;
    uint8_t *buf; /* one row, little endian */
    uint32_t n_vocab, n_rows;
};

/* Little-endian u32 into a byte buffer (the format is LE on every host). */
static void put_u32(uint8_t *b, uint32_t v) {
    b[0] = (uint8_t)v; b[1] = (uint8_t)(v >> 8); b[2] = (uint8_t)(v >> 16); b[3] = (uint8_t)(v >> 24);
}

static uint32_t get_u32(const uint8_t *b) {
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

/* Temp file next to path, header with 0 rows patched at close. */
int bn_kl_writer_new(bn_kl_writer **out, const char *path, uint32_t n_vocab, bn_err *e) {
    if (n_vocab == 0) return bn_errf(e, "%s: n_vocab: 0", path);
    bn_kl_writer *w = calloc(1, sizeof *w);
    size_t n = strlen(path) + 32;
    if (!w) return bn_errf(e, "%s: out of memory", path);
    w->path = strdup(path);
    w->tmp = malloc(n);
    w->buf = malloc(4 + 4 * (size_t)n_vocab);
    if (!w->path || !w->tmp || !w->buf) {
        free(w->path); free(w->tmp); free(w->buf); free(w);
        return bn_errf(e, "%s: out of memory", path);
    }
    snprintf(w->tmp, n, "%s.tmp.%ld", path, (long)getpid());
    w->f = fopen(w->tmp, "wb");
    if (!w->f) {
        bn_errf(e, "%s: open: %s", w->tmp, strerror(errno));
        free(w->path); free(w->tmp); free(w->buf); free(w);
        return -1;
    }
    w->n_vocab = n_vocab;
    uint8_t h[16];
    memcpy(h, "BNKL", 4);
    put_u32(h + 4, 1); put_u32(h + 8, n_vocab); put_u32(h + 12, 0);
    if (fwrite(h, 1, 16, w->f) != 16) {
        bn_errf(e, "%s: write: %s", w->tmp, strerror(errno));
        bn_kl_writer_abort(w);
        return -1;
    }
    *out = w;
    return 0;
}

/* One row: the target id then the log-probs, both little endian. */
int bn_kl_writer_row(bn_kl_writer *w, int32_t target, const float *lp, bn_err *e) {
    put_u32(w->buf, (uint32_t)target);
    for (uint32_t i = 0; i < w->n_vocab; i++) {
        uint32_t u;
        memcpy(&u, &lp[i], 4);
        put_u32(w->buf + 4 + 4 * (size_t)i, u);
    }
    const size_t n = 4 + 4 * (size_t)w->n_vocab;
    if (fwrite(w->buf, 1, n, w->f) != n) return bn_errf(e, "%s: write: %s", w->tmp, strerror(errno));
    if (w->n_rows == UINT32_MAX) return bn_errf(e, "%s: rows: too many", w->path);
    w->n_rows++;
    return 0;
}

/* Patch the row count, flush, rename over the destination. */
int bn_kl_writer_close(bn_kl_writer *w, bn_err *e) {
    uint8_t b[4];
    put_u32(b, w->n_rows);
    int rc = 0;
    if (fseek(w->f, 12, SEEK_SET) != 0 || fwrite(b, 1, 4, w->f) != 4 || fflush(w->f) != 0)
        rc = bn_errf(e, "%s: write: %s", w->tmp, strerror(errno));
    if (fclose(w->f) != 0 && rc == 0) rc = bn_errf(e, "%s: close: %s", w->tmp, strerror(errno));
    w->f = NULL;
    if (rc == 0 && rename(w->tmp, w->path) != 0) rc = bn_errf(e, "%s: rename: %s", w->path, strerror(errno));
    if (rc < 0) remove(w->tmp);
    free(w->path); free(w->tmp); free(w->buf); free(w);
    return rc;
}

/* Drop the temp file (failed run: no partial output). */
void bn_kl_writer_abort(bn_kl_writer *w) {
    if (!w) return;
    if (w->f) fclose(w->f);
    remove(w->tmp);
    free(w->path); free(w->tmp); free(w->buf); free(w);
}

struct bn_kl_reader {
    FILE *f;
    char *path;
    uint32_t n_vocab, n_rows, done;
};

/* Check magic, version, and that the size is exactly what the header says. */
int bn_kl_reader_open(bn_kl_reader **out, const char *path, bn_err *e) {
    FILE *f = fopen(path, "rb");
    if (!f) return bn_errf(e, "%s: open: %s", path, strerror(errno));
    uint8_t h[16];
    if (fread(h, 1, 16, f) != 16 || memcmp(h, "BNKL", 4) != 0) {
        fclose(f);
        return bn_errf(e, "%s: magic: not a bn KL base file", path);
    }
    if (get_u32(h + 4) != 1) { fclose(f); return bn_errf(e, "%s: version: %u, expected 1", path, get_u32(h + 4)); }
    uint32_t nv = get_u32(h + 8), nr = get_u32(h + 12);
    if (nv == 0) { fclose(f); return bn_errf(e, "%s: n_vocab: 0", path); }
    if (fseek(f, 0, SEEK_END) != 0) { fclose(f); return bn_errf(e, "%s: seek: %s", path, strerror(errno)); }
    long sz = ftell(f);
    if (sz < 0 || (uint64_t)sz != 16 + (uint64_t)nr * (4 + 4 * (uint64_t)nv) || fseek(f, 16, SEEK_SET) != 0) {
        fclose(f);
        return bn_errf(e, "%s: size: %ld bytes, the header says %u rows of %u", path, sz, nr, nv);
    }
    bn_kl_reader *r = calloc(1, sizeof *r);
    if (!r || !(r->path = strdup(path))) { free(r); fclose(f); return bn_errf(e, "%s: out of memory", path); }
    r->f = f; r->n_vocab = nv; r->n_rows = nr;
    *out = r;
    return 0;
}

uint32_t bn_kl_reader_n_vocab(const bn_kl_reader *r) { return r->n_vocab; }
uint32_t bn_kl_reader_n_rows(const bn_kl_reader *r) { return r->n_rows; }

/* Rows are read one at a time so a large vocabulary never needs all in memory. */
int bn_kl_reader_row(bn_kl_reader *r, int32_t *target, float *lp, bn_err *e) {
    if (r->done == r->n_rows) return 0;
    uint8_t b[4];
    if (fread(b, 1, 4, r->f) != 4) return bn_errf(e, "%s: row %u: short read", r->path, r->done);
    *target = (int32_t)get_u32(b);
    if (fread(lp, 4, r->n_vocab, r->f) != r->n_vocab) return bn_errf(e, "%s: row %u: short read", r->path, r->done);
    for (uint32_t i = 0; i < r->n_vocab; i++) { /* LE on disk; swap on a big-endian host */
        uint8_t *p = (uint8_t *)&lp[i];
        uint32_t u = get_u32(p);
        memcpy(&lp[i], &u, 4);
    }
    r->done++;
    return 1;
}

void bn_kl_reader_close(bn_kl_reader *r) {
    if (!r) return;
    fclose(r->f);
    free(r->path);
    free(r);
}

/* ---- KL statistics ---------------------------------------------------- */

void bn_kl_stats_init(bn_kl_stats *s) { memset(s, 0, sizeof *s); }

void bn_kl_stats_free(bn_kl_stats *s) {
    free(s->kld);
    free(s->dp);
    memset(s, 0, sizeof *s);
}

/* KL(base||test) = sum p_base (log p_base - log p_test), plus the target's
 * probabilities for PPL ratios and delta-p, and whether top-1 agrees. */
int bn_kl_stats_add(bn_kl_stats *s, const float *base_lp, const float *test_lp, int n_vocab, int32_t target,
                    bn_err *e) {
    if (target < 0 || target >= n_vocab) return bn_errf(e, "kl: target %d outside the vocabulary (%d)", target, n_vocab);
    if (s->n == s->cap) {
        size_t nc = s->cap ? 2 * s->cap : 1024;
        double *k = realloc(s->kld, nc * sizeof *k);
        if (!k) return bn_errf(e, "kl: out of memory");
        s->kld = k;
        double *d = realloc(s->dp, nc * sizeof *d);
        if (!d) return bn_errf(e, "kl: out of memory");
        s->dp = d;
        s->cap = nc;
    }
    double kld = 0;
    for (int i = 0; i < n_vocab; i++) {
        const double lb = base_lp[i];
        kld += exp(lb) * (lb - (double)test_lp[i]);
    }
    const double lt = -(double)test_lp[target], lb = -(double)base_lp[target];
    s->kld[s->n] = kld;
    s->dp[s->n] = exp(-lt) - exp(-lb);
    s->n++;
    s->sum_kld += kld;
    s->sum_kld2 += kld * kld;
    s->sum_lt += lt; s->sum_lt2 += lt * lt;
    s->sum_lb += lb; s->sum_lb2 += lb * lb;
    s->sum_ltb += lt * lb;
    if (bn_argmax(base_lp, n_vocab) == bn_argmax(test_lp, n_vocab)) s->same_top++;
    return 0;
}

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Linear interpolation between order statistics (sorted v). */
static double percentile(const double *v, size_t n, double frac) {
    const double x = frac * (double)(n - 1);
    const size_t lo = (size_t)x;
    if (lo + 1 >= n) return v[n - 1];
    return v[lo] + (x - (double)lo) * (v[lo + 1] - v[lo]);
}

/* Means, errors of means, the KLD percentiles, top-1 agreement. */
int bn_kl_summarize(bn_kl_stats *s, bn_kl_summary *o, bn_err *e) {
    if (s->n < 2) return bn_errf(e, "kl: %zu rows compared, at least 2 are needed", s->n);
    memset(o, 0, sizeof *o);
    const double n = (double)s->n;
    o->n = s->n;
    const double mt = s->sum_lt / n, mb = s->sum_lb / n;
    o->ppl_test = exp(mt);
    o->ppl_base = exp(mb);
    const double vt = s->sum_lt2 / n - mt * mt, vb = s->sum_lb2 / n - mb * mb, cv = s->sum_ltb / n - mt * mb;
    o->cor_ln_ppl = (vt > 0 && vb > 0) ? cv / sqrt(vt * vb) : 1.0;
    o->mean_ln_ratio = mt - mb;
    const double vr = vt + vb - 2 * cv;
    o->mean_ln_ratio_err = vr > 0 ? sqrt(vr / (n - 1)) : 0;
    o->kld_mean = s->sum_kld / n;
    const double vk = s->sum_kld2 / n - o->kld_mean * o->kld_mean;
    o->kld_err = vk > 0 ? sqrt(vk / (n - 1)) : 0;
    double sdp2 = 0;
    for (size_t i = 0; i < s->n; i++) sdp2 += s->dp[i] * s->dp[i];
    o->rms_dp = sqrt(sdp2 / n);
    double sdp4 = 0;
    for (size_t i = 0; i < s->n; i++) sdp4 += s->dp[i] * s->dp[i] * s->dp[i] * s->dp[i];
    const double vdp2 = sdp4 / n - (sdp2 / n) * (sdp2 / n);
    o->rms_dp_err = (o->rms_dp > 0 && vdp2 > 0) ? 0.5 / o->rms_dp * sqrt(vdp2 / (n - 1)) : 0;
    qsort(s->kld, s->n, sizeof *s->kld, cmp_double);
    o->kld_max = s->kld[s->n - 1];
    o->kld_p999 = percentile(s->kld, s->n, 0.999);
    o->kld_p99 = percentile(s->kld, s->n, 0.99);
    o->kld_p95 = percentile(s->kld, s->n, 0.95);
    o->kld_p90 = percentile(s->kld, s->n, 0.90);
    o->kld_median = percentile(s->kld, s->n, 0.5);
    o->kld_p10 = percentile(s->kld, s->n, 0.10);
    o->kld_p5 = percentile(s->kld, s->n, 0.05);
    o->kld_p1 = percentile(s->kld, s->n, 0.01);
    o->kld_p01 = percentile(s->kld, s->n, 0.001);
    o->kld_min = s->kld[0];
    o->same_top = (double)s->same_top / n;
    o->same_top_err = sqrt(o->same_top * (1 - o->same_top) / (n - 1));
    return 0;
}

/* ---- scoring stage ---------------------------------------------------- */

/* Zero state; the KL base is opened now so a bad file fails before any work. */
int bn_ppl_scorer_init(bn_ppl_scorer *s, bn_ppl_mode mode, const char *kl_save, const char *kl_base, bn_err *e) {
    memset(s, 0, sizeof *s);
    s->mode = mode;
    s->kl_save = kl_save;
    s->kl_base = kl_base;
    bn_ppl_init(&s->p);
    bn_kl_stats_init(&s->kl);
    if (kl_base && bn_kl_reader_open(&s->klr, kl_base, e) < 0) return -1;
    return 0;
}

/* A chunk ends: record the running value llama-perplexity prints. */
static int close_chunk(bn_ppl_scorer *s, bn_err *e) {
    if (!s->open) return 0;
    s->open = false;
    s->p.chunks++;
    double *c = realloc(s->chunk_ppl, (s->n_chunk_ppl + 1) * sizeof *c);
    if (!c) return bn_errf(e, "scores: out of memory");
    s->chunk_ppl = c;
    c[s->n_chunk_ppl++] = bn_ppl_value(&s->p);
    return 1;
}

/* One logits row at chunk position r: NLL of the next token, KL save/compare. */
static int score_row(bn_ppl_scorer *s, const float *row, uint32_t r, bn_err *e) {
    const int32_t tgt = s->chunk[r + 1];
    if (tgt < 0 || (uint32_t)tgt >= s->n_vocab) return bn_errf(e, "tokens: id %d outside the vocabulary", tgt);
    bn_log_softmax_row(row, (int)s->n_vocab, s->lp);
    bn_ppl_add(&s->p, s->lp[tgt]);
    if (s->klw && bn_kl_writer_row(s->klw, tgt, s->lp, e) < 0) return -1;
    if (s->klr) {
        int32_t bt;
        int rc = bn_kl_reader_row(s->klr, &bt, s->blp, e);
        if (rc < 0) return -1;
        if (rc == 0) return bn_errf(e, "%s: rows: fewer than this run scores", s->kl_base);
        if (bt != tgt)
            return bn_errf(e, "%s: row %zu: target %d, this run has %d (different text or ctx?)", s->kl_base, s->kl.n,
                           bt, tgt);
        if (bn_kl_stats_add(&s->kl, s->blp, s->lp, (int)s->n_vocab, tgt, e) < 0) return -1;
    }
    return 0;
}

/* Row buffers and the KL writer once the vocabulary size is known. */
static int need_rows(bn_ppl_scorer *s, bn_err *e) {
    if (s->lp) return 0;
    s->lp = malloc(s->n_vocab * sizeof *s->lp);
    s->blp = malloc(s->n_vocab * sizeof *s->blp);
    if (!s->lp || !s->blp) return bn_errf(e, "logits: out of memory");
    if (s->kl_save && bn_kl_writer_new(&s->klw, s->kl_save, s->n_vocab, e) < 0) return -1;
    if (s->klr && bn_kl_reader_n_vocab(s->klr) != s->n_vocab)
        return bn_errf(e, "%s: n_vocab: %u, this model has %u", s->kl_base, bn_kl_reader_n_vocab(s->klr), s->n_vocab);
    return 0;
}

/* One frame of bn-forward's output (the protocol: docs/PROTOCOL.md). */
int bn_ppl_scorer_frame(bn_ppl_scorer *s, const bn_frame *f, bn_err *e) {
    const uint32_t first = (uint32_t)bn_ppl_first_scored(s->mode, (int)s->len);
    int rc = 0;
    switch (f->kind) {
    case BN_FRAME_HELLO:
        if (bn_hello_check(&f->hello, NULL, e) < 0) return -1;
        if (f->hello.n_vocab) s->n_vocab = f->hello.n_vocab;
        return 0;
    case BN_FRAME_TOKENS:
        if (f->pos != 0) return bn_errf(e, "tokens: position %u: chunks start at 0", f->pos);
        if ((rc = close_chunk(s, e)) < 0) return -1;
        free(s->chunk);
        if (!(s->chunk = malloc(((size_t)f->n_tokens + 1) * sizeof *s->chunk))) return bn_errf(e, "tokens: out of memory");
        memcpy(s->chunk, f->tokens, f->n_tokens * sizeof *s->chunk);
        s->len = f->n_tokens;
        s->open = true;
        return rc;
    case BN_FRAME_SCORES:
        if (!s->open) return bn_errf(e, "scores: before any tokens frame");
        if (s->kl_save || s->kl_base)
            return bn_errf(e, "scores: --kl-save/--kl-base need whole rows: run bn-forward --logits all");
        for (uint32_t i = 0; i < f->n_tokens; i++) {
            const uint32_t r = f->pos + i;
            if (r + 1 >= s->len || f->tokens[i] != s->chunk[r + 1])
                return bn_errf(e, "scores: position %u does not match the chunk", r);
            if (r >= first) bn_ppl_add(&s->p, f->logits[i]);
        }
        return 0;
    case BN_FRAME_LOGITS:
        if (!s->open) return bn_errf(e, "logits: before any tokens frame");
        if (!s->n_vocab || f->n_vocab != s->n_vocab)
            return bn_errf(e, "logits: n_vocab %u, hello said %u", f->n_vocab, s->n_vocab);
        if (need_rows(s, e) < 0) return -1;
        for (uint32_t i = 0; i < f->n_rows; i++) {
            const uint32_t r = f->pos + i;
            if (r >= s->len) return bn_errf(e, "logits: row %u past the chunk (%u tokens)", r, s->len);
            if (r >= first && r + 1 < s->len && score_row(s, f->logits + (size_t)i * f->n_vocab, r, e) < 0) return -1;
        }
        return 0;
    case BN_FRAME_ERROR:
        return bn_errf(e, "upstream %s: %s", f->stage[0] ? f->stage : "stage", f->text ? f->text : "error");
    default:
        return 0; /* timing, end of a sequence, unknown kinds */
    }
}

int bn_ppl_scorer_finish(bn_ppl_scorer *s, bn_err *e) {
    int rc = close_chunk(s, e);
    if (rc >= 0 && s->p.chunks == 0) return bn_errf(e, "input: no chunks (empty stream: did an upstream stage fail?)");
    return rc;
}

/* The base must have been consumed exactly; the saved file appears only now. */
int bn_ppl_scorer_commit(bn_ppl_scorer *s, bn_err *e) {
    if (s->klr && bn_kl_reader_n_rows(s->klr) != s->kl.n)
        return bn_errf(e, "%s: rows: %u, this run scored %zu", s->kl_base, bn_kl_reader_n_rows(s->klr), s->kl.n);
    if (s->kl_save && !s->klw) return bn_errf(e, "%s: no logits rows were received", s->kl_save);
    if (s->klw) {
        bn_kl_writer *w = s->klw;
        s->klw = NULL;
        if (bn_kl_writer_close(w, e) < 0) return -1;
    }
    return 0;
}

void bn_ppl_scorer_free(bn_ppl_scorer *s) {
    bn_kl_writer_abort(s->klw);
    bn_kl_reader_close(s->klr);
    bn_kl_stats_free(&s->kl);
    free(s->chunk);
    free(s->lp);
    free(s->blp);
    free(s->chunk_ppl);
    memset(s, 0, sizeof *s);
}
