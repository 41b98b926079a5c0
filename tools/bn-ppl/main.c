/* bn-ppl - perplexity the way llama-perplexity computes it, as two pipeline stages:
 *
 *   bn-tokenize -m M -f TEXT | bn-ppl --split -c 128 | bn-forward -m M --scores | bn-ppl
 *
 * --split cuts the token stream into chunks (each a tokens frame at position
 * 0, so bn-forward starts it on an empty cache; BOS replaces the first token
 * in llama mode). Without --split it reads bn-forward's output: tokens frames
 * (passed on by bn-forward) mark the chunks, SCORES frames (or LOGITS frames,
 * needed for --kl-*) give log p of each next token. Chunking, sums and KL
 * statistics live in lib/ppl.c. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "frame.h"
#include "ppl.h"
#include "transport.h"

static const char *T = "bn-ppl";

static void usage(FILE *f) {
    fprintf(f,
        "usage: bn-ppl --split -c CTX [--window-mode llama|kjv] [--chunks N] [--ids [--bos ID]]\n"
        "       bn-ppl [--window-mode llama|kjv] [--json] [--kl-save FILE | --kl-base FILE]\n"
        "Split a token stream into perplexity chunks (--split), or score bn-forward's\n"
        "SCORES/LOGITS frames and print llama-perplexity style results.\n"
        "  -s, --split             chunk tokens frames (stdin) into tokens frames (stdout)\n"
        "  -c, --ctx N             chunk (window) size in tokens (default 512)\n"
        "      --window-mode M     llama: chunks of CTX, BOS first, second half scored (default);\n"
        "                          kjv: windows of CTX (last shorter), all but the first token scored\n"
        "      --chunks N          use at most N chunks (default all)\n"
        "      --ids               --split input is plain decimal ids instead of frames\n"
        "      --bos ID            BOS id for --ids in llama mode (default: none, no replacement)\n"
        "      --json              print a JSON object as the last line\n"
        "      --kl-save FILE      save the scored rows' log-probs (needs LOGITS frames)\n"
        "      --kl-base FILE      compare with a saved base: KL divergence, same top p\n"
        "  -h, --help, --version\n");
}

typedef struct opts {
    bool split, ids, json;
    long ctx, chunks, bos;
    bn_ppl_mode mode;
    const char *kl_save, *kl_base;
} opts;

/* Read all ids (frames or plain numbers) from stdin. */
static int read_ids(const opts *o, int32_t **ids, size_t *n, bn_hello *h, bn_err *e) {
    size_t cap = 0;
    *ids = NULL; *n = 0;
    if (o->ids) {
        long v;
        while (scanf("%ld", &v) == 1) {
            if (v < 0 || v > INT32_MAX) return bn_errf(e, "stdin: id %ld out of range", v);
            if (*n == cap) {
                cap = cap ? 2 * cap : 4096;
                int32_t *p = realloc(*ids, cap * sizeof *p);
                if (!p) return bn_errf(e, "stdin: out of memory");
                *ids = p;
            }
            (*ids)[(*n)++] = (int32_t)v;
        }
        if (!feof(stdin)) return bn_errf(e, "stdin: not a decimal id");
        return 0;
    }
    bn_conn *in;
    bn_conn_opts co;
    bn_conn_opts_default(&co);
    if (bn_conn_open_in(&in, "-", &co, e) < 0) return -1;
    int rc;
    bn_frame f;
    while ((rc = bn_conn_read(in, &f, e)) > 0) {
        if (f.kind == BN_FRAME_HELLO) {
            if (bn_hello_check(&f.hello, NULL, e) < 0) { rc = -1; bn_frame_free(&f); break; }
            *h = f.hello;
        } else if (f.kind == BN_FRAME_TOKENS) {
            if (*n + f.n_tokens > cap) {
                cap = *n + f.n_tokens + cap;
                int32_t *p = realloc(*ids, cap * sizeof *p);
                if (!p) { bn_frame_free(&f); rc = bn_errf(e, "stdin: out of memory"); break; }
                *ids = p;
            }
            memcpy(*ids + *n, f.tokens, f.n_tokens * sizeof **ids);
            *n += f.n_tokens;
        } else if (f.kind == BN_FRAME_ERROR) {
            rc = bn_errf(e, "upstream %s: %s", f.stage[0] ? f.stage : "stage", f.text ? f.text : "error");
            bn_frame_free(&f);
            break;
        }
        bn_frame_free(&f);
    }
    bn_conn_close(in);
    return rc < 0 ? -1 : 0;
}

/* --split: hello, one tokens frame per chunk at position 0, end. */
static int split(const opts *o, bn_err *e) {
    bn_hello up;
    memset(&up, 0, sizeof up);
    up.bos = o->ids ? (int32_t)o->bos : -1;
    up.eos = -1;
    int32_t *ids;
    size_t n, n_chunks;
    if (read_ids(o, &ids, &n, &up, e) < 0) { free(ids); return -1; }
    if (n == 0) { free(ids); return bn_errf(e, "input: no tokens (empty text?)"); }
    if (bn_ppl_plan(o->mode, n, (int)o->ctx, o->chunks, &n_chunks, e) < 0) { free(ids); return -1; }
    /* llama replaces the first token of every chunk by BOS when the vocabulary adds one */
    const bool bos = o->mode == BN_PPL_LLAMA && up.bos >= 0 && ids[0] == up.bos;
    fprintf(stderr, "%s: %zu tokens, %zu chunks of %ld (%s)\n", T, n, n_chunks, o->ctx,
            o->mode == BN_PPL_LLAMA ? "llama" : "kjv");
    bn_conn *out;
    bn_conn_opts co;
    bn_conn_opts_default(&co);
    if (bn_conn_open_out(&out, "-", &co, e) < 0) { free(ids); return -1; }
    bn_frame f;
    bn_frame_init(&f, BN_FRAME_HELLO);
    f.hello = up;
    f.hello.proto = BN_PROTO_VERSION;
    snprintf(f.hello.stage, sizeof f.hello.stage, "%s", T);
    int rc = bn_conn_write(out, &f, e);
    for (size_t i = 0; rc == 0 && i < n_chunks; i++) {
        size_t start;
        int len;
        bn_ppl_chunk(o->mode, n, (int)o->ctx, i, &start, &len);
        int32_t save = ids[start];
        if (bos) ids[start] = up.bos;
        bn_frame_tokens(&f, ids + start, (uint32_t)len, 0);
        rc = bn_conn_write(out, &f, e);
        ids[start] = save;
    }
    if (rc == 0) { bn_frame_init(&f, BN_FRAME_END); rc = bn_conn_write(out, &f, e); }
    if (rc == 0) rc = bn_conn_finish(out, e);
    bn_conn_close(out);
    free(ids);
    return rc;
}

typedef struct scorer {
    const opts *o;
    bn_ppl p;
    int32_t *chunk;      /* current chunk's tokens */
    uint32_t len;
    bool open;
    uint32_t n_vocab;
    float *lp, *blp;     /* log-softmax of a row; the base row */
    bn_kl_writer *klw;
    bn_kl_reader *klr;
    bn_kl_stats kl;
    double *chunk_ppl;
    size_t n_chunk_ppl;
} scorer;

/* A chunk ends: print the running value like llama-perplexity does. */
static int close_chunk(scorer *s, bn_err *e) {
    if (!s->open) return 0;
    s->open = false;
    s->p.chunks++;
    double *c = realloc(s->chunk_ppl, (s->n_chunk_ppl + 1) * sizeof *c);
    if (!c) return bn_errf(e, "out of memory");
    s->chunk_ppl = c;
    c[s->n_chunk_ppl++] = bn_ppl_value(&s->p);
    printf("[%llu]%.4lf,", (unsigned long long)s->p.chunks, bn_ppl_value(&s->p));
    fflush(stdout);
    return 0;
}

/* One logits row at chunk position r: NLL of the next token, KL save/compare. */
static int score_row(scorer *s, const float *row, uint32_t r, bn_err *e) {
    const int32_t tgt = s->chunk[r + 1];
    if (tgt < 0 || (uint32_t)tgt >= s->n_vocab) return bn_errf(e, "token %d outside the vocabulary", tgt);
    bn_log_softmax_row(row, (int)s->n_vocab, s->lp);
    bn_ppl_add(&s->p, s->lp[tgt]);
    if (s->klw && bn_kl_writer_row(s->klw, tgt, s->lp, e) < 0) return -1;
    if (s->klr) {
        int32_t bt;
        int rc = bn_kl_reader_row(s->klr, &bt, s->blp, e);
        if (rc < 0) return -1;
        if (rc == 0) return bn_errf(e, "%s: fewer rows than this run scores", s->o->kl_base);
        if (bt != tgt) return bn_errf(e, "%s: row %zu: target %d, this run has %d (different text or ctx?)",
                                      s->o->kl_base, s->kl.n, bt, tgt);
        if (bn_kl_stats_add(&s->kl, s->blp, s->lp, (int)s->n_vocab, tgt, e) < 0) return -1;
    }
    return 0;
}

/* One frame of bn-forward's output. */
static int on_frame(scorer *s, const bn_frame *f, bn_err *e) {
    const uint32_t first = (uint32_t)bn_ppl_first_scored(s->o->mode, (int)s->len);
    switch (f->kind) {
    case BN_FRAME_HELLO:
        if (bn_hello_check(&f->hello, NULL, e) < 0) return -1;
        if (f->hello.n_vocab) s->n_vocab = f->hello.n_vocab;
        return 0;
    case BN_FRAME_TOKENS:
        if (f->pos != 0) return bn_errf(e, "tokens frame at position %u: chunks start at 0", f->pos);
        if (close_chunk(s, e) < 0) return -1;
        free(s->chunk);
        if (!(s->chunk = malloc(((size_t)f->n_tokens + 1) * sizeof *s->chunk))) return bn_errf(e, "out of memory");
        memcpy(s->chunk, f->tokens, f->n_tokens * sizeof *s->chunk);
        s->len = f->n_tokens;
        s->open = true;
        return 0;
    case BN_FRAME_SCORES:
        if (!s->open) return bn_errf(e, "scores before any tokens frame");
        if (s->o->kl_save || s->o->kl_base) return bn_errf(e, "--kl-save/--kl-base need whole rows: run bn-forward --logits all");
        for (uint32_t i = 0; i < f->n_tokens; i++) {
            const uint32_t r = f->pos + i;
            if (r + 1 >= s->len || f->tokens[i] != s->chunk[r + 1])
                return bn_errf(e, "scores frame: position %u does not match the chunk", r);
            if (r >= first) bn_ppl_add(&s->p, f->logits[i]);
        }
        return 0;
    case BN_FRAME_LOGITS:
        if (!s->open) return bn_errf(e, "logits before any tokens frame");
        if (!s->n_vocab || f->n_vocab != s->n_vocab) return bn_errf(e, "logits frame: n_vocab %u, hello said %u", f->n_vocab, s->n_vocab);
        if (!s->lp) {
            s->lp = malloc(s->n_vocab * sizeof *s->lp);
            s->blp = malloc(s->n_vocab * sizeof *s->blp);
            if (!s->lp || !s->blp) return bn_errf(e, "out of memory");
            if (s->o->kl_save && bn_kl_writer_new(&s->klw, s->o->kl_save, s->n_vocab, e) < 0) return -1;
            if (s->klr && bn_kl_reader_n_vocab(s->klr) != s->n_vocab)
                return bn_errf(e, "%s: n_vocab %u, this model has %u", s->o->kl_base, bn_kl_reader_n_vocab(s->klr), s->n_vocab);
        }
        for (uint32_t i = 0; i < f->n_rows; i++) {
            const uint32_t r = f->pos + i;
            if (r >= s->len) return bn_errf(e, "logits frame: row %u past the chunk (%u tokens)", r, s->len);
            if (r >= first && r + 1 < s->len && score_row(s, f->logits + (size_t)i * f->n_vocab, r, e) < 0) return -1;
        }
        return 0;
    case BN_FRAME_ERROR:
        return bn_errf(e, "upstream %s: %s", f->stage[0] ? f->stage : "stage", f->text ? f->text : "error");
    default:
        return 0; /* timing, end of a sequence */
    }
}

/* Final figures, KL statistics, JSON. */
static int report(scorer *s, bn_err *e) {
    double ppl, err;
    printf("\n");
    if (bn_ppl_final(&s->p, &ppl, &err, e) < 0) return -1;
    printf("Final estimate: PPL = %.4lf +/- %.5lf\n", ppl, err);
    bn_kl_summary k;
    if (s->klr) {
        if (bn_kl_reader_n_rows(s->klr) != s->kl.n)
            return bn_errf(e, "%s: %u rows, this run scored %zu", s->o->kl_base, bn_kl_reader_n_rows(s->klr), s->kl.n);
        if (bn_kl_summarize(&s->kl, &k, e) < 0) return -1;
        printf("====== Perplexity statistics ======\n");
        printf("Mean PPL(Q)                   : %10.6lf\n", k.ppl_test);
        printf("Mean PPL(base)                : %10.6lf\n", k.ppl_base);
        printf("Cor(ln(PPL(Q)), ln(PPL(base))): %6.2lf%%\n", 100 * k.cor_ln_ppl);
        printf("Mean ln(PPL(Q)/PPL(base))     : %10.6lf +/- %10.6lf\n", k.mean_ln_ratio, k.mean_ln_ratio_err);
        printf("Mean PPL(Q)/PPL(base)         : %10.6lf\n", exp(k.mean_ln_ratio));
        printf("====== KL divergence statistics ======\n");
        printf("Mean    KLD: %10.6lf +/- %10.6lf\n", k.kld_mean, k.kld_err);
        printf("Maximum KLD: %10.6lf\n99.9%%   KLD: %10.6lf\n99.0%%   KLD: %10.6lf\n95.0%%   KLD: %10.6lf\n"
               "90.0%%   KLD: %10.6lf\nMedian  KLD: %10.6lf\n10.0%%   KLD: %10.6lf\n 5.0%%   KLD: %10.6lf\n"
               " 1.0%%   KLD: %10.6lf\n 0.1%%   KLD: %10.6lf\nMinimum KLD: %10.6lf\n",
               k.kld_max, k.kld_p999, k.kld_p99, k.kld_p95, k.kld_p90, k.kld_median, k.kld_p10, k.kld_p5, k.kld_p1,
               k.kld_p01, k.kld_min);
        printf("====== Token probability statistics ======\n");
        printf("RMS \xce\x94p    : %6.3lf +/- %5.3lf %%\n", 100 * k.rms_dp, 100 * k.rms_dp_err);
        printf("Same top p: %6.3lf +/- %5.3lf %%\n", 100 * k.same_top, 100 * k.same_top_err);
    }
    if (s->o->json) {
        printf("{\"ppl\":%.6f,\"ppl_stderr\":%.6f,\"chunks\":%llu,\"tokens_scored\":%llu,\"mode\":\"%s\",\"chunk_ppl\":[",
               ppl, err, (unsigned long long)s->p.chunks, (unsigned long long)s->p.count,
               s->o->mode == BN_PPL_LLAMA ? "llama" : "kjv");
        for (size_t i = 0; i < s->n_chunk_ppl; i++) printf("%s%.6f", i ? "," : "", s->chunk_ppl[i]);
        printf("]");
        if (s->klr)
            printf(",\"kl\":{\"rows\":%zu,\"mean_kld\":%.8f,\"mean_kld_err\":%.8f,\"max_kld\":%.8f,\"p99_kld\":%.8f,"
                   "\"median_kld\":%.8f,\"same_top\":%.6f,\"same_top_err\":%.6f,\"rms_dp\":%.6f,\"ppl_base\":%.6f,"
                   "\"ppl_q\":%.6f,\"cor_ln_ppl\":%.6f}",
                   k.n, k.kld_mean, k.kld_err, k.kld_max, k.kld_p99, k.kld_median, k.same_top, k.same_top_err,
                   k.rms_dp, k.ppl_base, k.ppl_test, k.cor_ln_ppl);
        printf("}\n");
    }
    return 0;
}

/* Scoring stage: read bn-forward's frames to the end, then report. */
static int score(const opts *o, bn_err *e) {
    scorer s;
    memset(&s, 0, sizeof s);
    s.o = o;
    bn_ppl_init(&s.p);
    bn_kl_stats_init(&s.kl);
    bn_conn *in = NULL;
    bn_conn_opts co;
    bn_conn_opts_default(&co);
    int rc = 0;
    if (o->kl_base && bn_kl_reader_open(&s.klr, o->kl_base, e) < 0) return -1;
    if (bn_conn_open_in(&in, "-", &co, e) < 0) rc = -1;
    bn_frame f;
    while (rc == 0 && (rc = bn_conn_read(in, &f, e)) > 0) {
        rc = on_frame(&s, &f, e);
        bn_frame_free(&f);
    }
    if (rc == 0) rc = close_chunk(&s, e);
    if (rc == 0 && s.p.chunks == 0) rc = bn_errf(e, "input: no chunks (empty stream: did an upstream stage fail?)");
    if (rc == 0) rc = report(&s, e);
    if (s.klw) {
        if (rc == 0) rc = bn_kl_writer_close(s.klw, e);
        else bn_kl_writer_abort(s.klw);
    }
    if (in) bn_conn_close(in);
    bn_kl_reader_close(s.klr);
    bn_kl_stats_free(&s.kl);
    free(s.chunk); free(s.lp); free(s.blp); free(s.chunk_ppl);
    return rc;
}

int main(int argc, char **argv) {
    enum { O_MODE = 256, O_CHUNKS, O_IDS, O_BOS, O_JSON, O_KLS, O_KLB, O_VER };
    static const struct option lo[] = {
        {"split", 0, 0, 's'}, {"ctx", 1, 0, 'c'}, {"window-mode", 1, 0, O_MODE}, {"chunks", 1, 0, O_CHUNKS},
        {"ids", 0, 0, O_IDS}, {"bos", 1, 0, O_BOS}, {"json", 0, 0, O_JSON}, {"kl-save", 1, 0, O_KLS},
        {"kl-base", 1, 0, O_KLB}, {"help", 0, 0, 'h'}, {"version", 0, 0, O_VER}, {0, 0, 0, 0}};
    opts o = {.ctx = 512, .bos = -1, .mode = BN_PPL_LLAMA};
    bn_err e = {0};
    int c;
    while ((c = getopt_long(argc, argv, "sc:h", lo, NULL)) != -1) {
        switch (c) {
        case 's': o.split = true; break;
        case 'c': if (!bn_parse_long(optarg, 4, 1L << 24, &o.ctx)) bn_die(T, 2, "--ctx: %s: expected 4..16777216", optarg); break;
        case O_MODE: if (bn_ppl_mode_parse(optarg, &o.mode, &e) < 0) bn_die(T, 2, "%s", e.msg); break;
        case O_CHUNKS: if (!bn_parse_long(optarg, 1, 1L << 30, &o.chunks)) bn_die(T, 2, "--chunks: %s: expected a positive number", optarg); break;
        case O_IDS: o.ids = true; break;
        case O_BOS: if (!bn_parse_long(optarg, 0, INT32_MAX, &o.bos)) bn_die(T, 2, "--bos: %s: expected a token id", optarg); break;
        case O_JSON: o.json = true; break;
        case O_KLS: o.kl_save = optarg; break;
        case O_KLB: o.kl_base = optarg; break;
        case 'h': usage(stdout); return 0;
        case O_VER: bn_print_version(T, stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) bn_die(T, 2, "unexpected argument: %s", argv[optind]);
    if (o.kl_save && o.kl_base) bn_die(T, 2, "--kl-save and --kl-base do not mix");
    if (o.split && (o.json || o.kl_save || o.kl_base)) bn_die(T, 2, "--split only chunks; --json and --kl-* are for scoring");
    if (!o.split && (o.ids || o.bos >= 0)) bn_die(T, 2, "--ids and --bos are for --split");
    if ((o.split ? split(&o, &e) : score(&o, &e)) < 0) bn_die_err(T, &e);
    return bn_close_stdout(T) ? BN_EXIT_FAIL : BN_EXIT_OK;
}
