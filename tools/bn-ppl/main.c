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

/* Final figures, KL statistics, JSON. */
static int report(bn_ppl_scorer *s, const opts *o, bn_err *e) {
    double ppl, err;
    printf("\n");
    if (bn_ppl_final(&s->p, &ppl, &err, e) < 0) return -1;
    printf("Final estimate: PPL = %.4lf +/- %.5lf\n", ppl, err);
    bn_kl_summary k;
    if (s->klr) {
        if (bn_kl_reader_n_rows(s->klr) != s->kl.n)
            return bn_errf(e, "%s: %u rows, this run scored %zu", o->kl_base, bn_kl_reader_n_rows(s->klr), s->kl.n);
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
    if (o->json) {
        printf("{\"ppl\":%.6f,\"ppl_stderr\":%.6f,\"chunks\":%llu,\"tokens_scored\":%llu,\"mode\":\"%s\",\"chunk_ppl\":[",
               ppl, err, (unsigned long long)s->p.chunks, (unsigned long long)s->p.count,
               o->mode == BN_PPL_LLAMA ? "llama" : "kjv");
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

/* Scoring stage: read bn-forward's frames to the end, print as llama does. */
static int score(const opts *o, bn_err *e) {
    bn_ppl_scorer s;
    bn_conn *in = NULL;
    bn_conn_opts co;
    bn_conn_opts_default(&co);
    int rc = bn_ppl_scorer_init(&s, o->mode, o->kl_save, o->kl_base, e);
    if (rc == 0) rc = bn_conn_open_in(&in, "-", &co, e);
    bn_frame f;
    while (rc == 0 && (rc = bn_conn_read(in, &f, e)) > 0) {
        rc = bn_ppl_scorer_frame(&s, &f, e);
        bn_frame_free(&f);
        if (rc == 1) { printf("[%zu]%.4lf,", s.n_chunk_ppl, s.chunk_ppl[s.n_chunk_ppl - 1]); fflush(stdout); rc = 0; }
    }
    if (rc == 0 && (rc = bn_ppl_scorer_finish(&s, e)) == 1) {
        printf("[%zu]%.4lf,", s.n_chunk_ppl, s.chunk_ppl[s.n_chunk_ppl - 1]);
        rc = 0;
    }
    if (rc == 0) rc = report(&s, o, e);
    if (rc == 0) rc = bn_ppl_scorer_commit(&s, e);
    if (in) bn_conn_close(in);
    bn_ppl_scorer_free(&s);
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
