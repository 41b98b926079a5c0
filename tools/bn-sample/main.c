/* bn-sample - choose tokens from logits frames and close the feedback loop.
 *
 *   bn-tokenize -m M -p "In the beginning" | bn-forward -m M | bn-sample | bn-detok -m M
 *
 * Reads hello + logits frames, writes the hello onward and one TOKEN frame per
 * sampled token, and pushes each token back to bn-forward's feedback endpoint
 * (hello.feedback) so it can run the next decode step. The sampling itself
 * (and every stop rule's arithmetic) lives in lib/sample.c. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "frame.h"
#include "outfile.h"
#include "sample.h"
#include "transport.h"
#include "vocab.h"

static const char *T = "bn-sample";

static void usage(FILE *f) {
    fprintf(f,
        "usage: bn-sample [options]\n"
        "  -i, --in SPEC           frames in: - (stdin), a file, tcp://, ipc:// (default -)\n"
        "  -o, --out SPEC          frames out (default -)\n"
        "      --feedback SPEC     where sampled tokens go back to (default: hello.feedback)\n"
        "      --no-feedback       do not feed tokens back (logits come from a file)\n"
        "      --temp T            temperature, <= 0 is greedy (default 0.8)\n"
        "      --greedy            same as --temp 0\n"
        "      --top-k K           0 = off (default 40)\n"
        "      --top-p P           1 = off (default 0.95)\n"
        "      --min-p P           0 = off (default 0.05)\n"
        "      --repeat-penalty F  1 = off (default 1.0)\n"
        "      --frequency-penalty F, --presence-penalty F   0 = off\n"
        "      --repeat-last-n N   penalty window, 0 off, -1 everything (default 64)\n"
        "      --logit-bias ID(+|-)BIAS   repeatable, -inf bans a token\n"
        "  -s, --seed S            random seed (default: random, printed on stderr)\n"
        "  -n, --predict N         stop after N tokens per generation (-1 = no limit, default)\n"
        "      --stop STRING       stop when the text contains STRING (needs -m), repeatable\n"
        "  -m, --model FILE        GGUF with the vocabulary (for --stop and token text in --json)\n"
        "      --stop-on-repeat K  stop when the last K tokens repeat an earlier span\n"
        "      --json [FILE]       one JSON line per token (stdout instead of frames, or FILE)\n"
        "      --n-probs N         alternatives per token in --json (default 5, max 32)\n"
        "      --hide-prompt       do not pass the prompt's tokens frames downstream\n"
        BN_TRANSPORT_USAGE
        "  -q, --quiet             no informational messages on stderr\n"
        "  -h, --help, --version\n");
}

enum { O_FEEDBACK = 256, O_NOFB, O_TEMP, O_GREEDY, O_TOPK, O_TOPP, O_MINP, O_RP, O_FP, O_PP, O_RLN, O_BIAS,
       O_STOP, O_REPEAT, O_JSON, O_NPROBS, O_VERSION, O_HIDE };

typedef struct opts {
    const char *in, *out, *feedback, *model, *json_file;
    bool no_feedback, json, quiet, seed_set, hide_prompt;
    long n_predict, stop_repeat;
    bn_conn_opts co; /* --timeout, --curve-keys, --insecure */
    const char *stops[16];
    size_t n_stops;
    bn_logit_bias bias[64];
    bn_sampler_params sp;
} opts;

/* ---- the generation loop ------------------------------------------------- */

typedef struct gen {
    const opts *o;
    bn_conn *in, *out, *fb;
    FILE *json;              /* --json target (stdout or the file), NULL if off */
    bool frames_out;         /* TOKEN frames go to --out (not when --json is on stdout) */
    bn_sampler *smp;
    bn_hello hello;
    bool have_hello, active, upstream_end;
    bool reader_gone;        /* downstream closed its input (| head): a clean end */
    bool saw_tokens, saw_logits;
    bool upstream_failed;    /* the error came from bn-forward's side: do not wait on its feedback socket */
    int64_t fed_pos;         /* position of the last token fed back in a finished generation (-1 none) */
    bn_stopper stop;         /* -n, --stop, --stop-on-repeat */
    uint64_t ns_sample, n_sampled, n_gens;
    const char *reason;      /* why the last generation stopped */
    bn_vocab vocab;          /* -m: token text for --stop and --json */
    bool have_vocab;
    char *piece;             /* bn_vocab_piece_max bytes */
    char jbuf[1024];
    bn_outfile json_out;     /* --json FILE: temp file renamed at the end (devices in place) */
} gen;

/* Connection options from the command line, with peer for messages. */
static void conn_opts(const opts *o, const char *peer, bn_conn_opts *co) {
    *co = o->co;
    co->peer_name = peer;
}

/* Open --in, --out and the --json file; the sampler waits for the hello. */
static int gen_open(gen *g, const opts *o, bn_err *e) {
    memset(g, 0, sizeof *g);
    g->o = o;
    g->fed_pos = -1;
    bn_stopper_init(&g->stop, o->n_predict, (size_t)o->stop_repeat, o->stops, o->n_stops);
    bn_conn_opts co;
    conn_opts(o, "bn-forward", &co);
    if (bn_conn_open_in(&g->in, o->in, &co, e)) return -1;
    g->frames_out = !(o->json && !o->json_file);
    if (g->frames_out) {
        co.peer_name = "bn-detok";
        if (bn_conn_open_out(&g->out, o->out, &co, e)) return -1;
    }
    if (o->model) {
        if (bn_vocab_load_file(&g->vocab, o->model, e)) return -1;
        g->have_vocab = true;
        g->piece = malloc(bn_vocab_piece_max(&g->vocab) + 1);
        if (!g->piece) return bn_errf(e, "out of memory");
    }
    if (o->json && !o->json_file) g->json = stdout;
    if (o->json_file) {
        if (bn_outfile_open(&g->json_out, o->json_file, e) < 0) return -1;
        g->json = g->json_out.f;
    }
    return 0;
}

/* Write one frame downstream (no-op when --json replaces the frames). */
static int put(gen *g, const bn_frame *f, bn_err *e) {
    if (!g->frames_out) return 0;
    if (bn_conn_write(g->out, f, e) == 0 && bn_conn_flush(g->out, e) == 0) return 0;
    if (strstr(e->msg, "closed by reader")) g->reader_gone = true; /* transport.h: EPIPE says so */
    return -1;
}

/* Send a frame back to bn-forward (when there is a feedback endpoint). */
static int feed(gen *g, const bn_frame *f, bn_err *e) {
    if (!g->fb) return 0;
    if (bn_conn_write(g->fb, f, e) || bn_conn_flush(g->fb, e)) {
        bn_err_prefix(e, "feedback");
        return -1;
    }
    return 0;
}

/* Hellos are passed on (without the feedback endpoint, which is ours). The
 * first with n_vocab creates the sampler; the first with a feedback endpoint
 * opens the connection back to bn-forward (we connect, bn-forward binds). */
static int on_hello(gen *g, bn_frame *f, bn_err *e) {
    bn_hello *h = &f->hello;
    if (h->proto != BN_PROTO_VERSION)
        return bn_errf(e, "hello: protocol %u from %s, this is %d", h->proto, h->stage, BN_PROTO_VERSION);
    if (g->have_vocab && h->vocab_fp[0] && strcmp(h->vocab_fp, g->vocab.fingerprint) != 0)
        return bn_errf(e, "%s: vocabulary differs from the one %s uses (fingerprint %.12s vs %.12s)",
                       g->o->model, h->stage, g->vocab.fingerprint, h->vocab_fp);
    if (h->n_vocab && g->have_hello && h->n_vocab != g->hello.n_vocab)
        return bn_errf(e, "hello: %s says n_vocab %u, earlier %s said %u", h->stage, h->n_vocab, g->hello.stage,
                       g->hello.n_vocab);
    if (h->n_vocab && !g->have_hello) {
        if (g->have_vocab && h->n_vocab != g->vocab.n_tokens)
            return bn_errf(e, "%s: %u tokens, %s has %u", g->o->model, g->vocab.n_tokens, h->stage, h->n_vocab);
        g->hello = *h;
        g->have_hello = true;
        if (bn_sampler_new(&g->smp, &g->o->sp, h->n_vocab, e)) return -1;
    } else if (g->have_hello && (h->n_eog || h->eos >= 0)) {
        memcpy(g->hello.eog, h->eog, sizeof h->eog); /* a later stage knows better */
        g->hello.n_eog = h->n_eog;
        g->hello.eos = h->eos;
    }
    const char *fb = g->o->no_feedback ? "" : g->o->feedback ? g->o->feedback : h->feedback;
    if (*fb && !g->fb) {
        bn_conn_opts co;
        conn_opts(g->o, "bn-forward (feedback)", &co);
        if (bn_conn_open_feedback_out(&g->fb, fb, &co, e)) return -1; /* connects: bn-forward binds */
        bn_conn_watch(g->fb, g->in); /* a dead bn-forward fails a pending feedback send at once */
    }
    h->feedback[0] = 0;
    return put(g, f, e);
}

static bool is_eog(const gen *g, int32_t id) {
    for (uint32_t i = 0; i < g->hello.n_eog && i < BN_MAX_EOG; i++) if (g->hello.eog[i] == id) return true;
    return id == g->hello.eos && id >= 0;
}

/* One JSON line per token: {"pos","id","logprob","top":[{"id","logprob"}]}. */
static int json_token(gen *g, uint32_t pos, int32_t id, const bn_sample_info *in, bn_err *e) {
    if (!g->json) return 0;
    fprintf(g->json, "{\"pos\":%u,\"id\":%d,", pos, id);
    if (g->have_vocab) {
        long pl = bn_token_piece(&g->vocab, id, true, 0, g->piece, e);
        size_t jl = 0;
        if (pl < 0) return -1;
        if (bn_json_quote(g->jbuf, sizeof g->jbuf, &jl, g->piece, (size_t)pl) == 0)
            fprintf(g->json, "\"text\":%s,", g->jbuf);
    }
    fprintf(g->json, "\"logprob\":%.6g,\"top\":[", (double)in->logprob);
    for (uint32_t i = 0; i < in->n_top; i++)
        fprintf(g->json, "%s{\"id\":%d,\"logprob\":%.6g}", i ? "," : "", in->top[i].id, (double)in->top[i].logprob);
    fprintf(g->json, "]}\n");
    if (fflush(g->json)) {
        if (errno == EPIPE) g->reader_gone = true;
        return bn_errf(e, "--json: write failed: %s", strerror(errno));
    }
    return 0;
}

/* A generation is over: tell bn-forward (END on feedback), report timing and
 * END downstream. Logits for the token already fed back are dropped later. */
static int finish(gen *g, const char *reason, uint32_t seq, bn_err *e) {
    bn_frame f;
    g->active = false;
    g->reason = reason;
    g->n_gens++;
    bn_frame_init(&f, BN_FRAME_END);
    f.seq = seq;
    f.more = true; /* only this sequence ended */
    if (feed(g, &f, e)) return -1;
    bn_frame t;
    bn_frame_timing(&t, "bn-sample", "sample", g->ns_sample, g->n_sampled);
    t.t_start_ns = bn_now_ns() - g->ns_sample; /* approximate: sampling is spread over the generation */
    if (put(g, &t, e)) return -1;
    if (put(g, &f, e)) return -1;
    if (g->json) {
        /* n_past: tokens bn-forward's cache holds once it ran the last token fed back,
         * i.e. the position where a follow-up prompt (chat) continues */
        fprintf(g->json, "{\"done\":true,\"reason\":\"%s\",\"eval_count\":%zu,\"sample_duration\":%llu",
                reason, g->stop.n_hist, (unsigned long long)g->ns_sample);
        if (g->fed_pos >= 0) fprintf(g->json, ",\"n_past\":%lld", (long long)g->fed_pos + 1);
        fprintf(g->json, "}\n");
        fflush(g->json);
    }
    if (!g->o->quiet && !strcmp(reason, "repeat"))
        bn_warnx(T, "stopped: the last %ld tokens repeat an earlier span", g->o->stop_repeat);
    return 0;
}

/* Sample from the last row, emit, feed back, and apply the stop rules. */
static int on_logits(gen *g, const bn_frame *f, bn_err *e) {
    if (!g->have_hello) return bn_errf(e, "logits frame before hello");
    if (f->n_vocab != g->hello.n_vocab)
        return bn_errf(e, "logits: n_vocab %u, hello said %u", f->n_vocab, g->hello.n_vocab);
    if (f->n_rows == 0) return bn_errf(e, "logits: no rows");
    uint32_t last = f->pos + f->n_rows - 1;
    if (!g->active) {
        if (g->fed_pos >= 0 && last == (uint32_t)g->fed_pos) { /* the step after our END: once */
            g->fed_pos = -1;
            return 0;
        }
        g->active = true;
        bn_stopper_reset(&g->stop);
    }
    const float *row = f->logits + (size_t)(f->n_rows - 1) * f->n_vocab;
    int32_t id;
    bn_sample_info info;
    uint64_t t0 = bn_now_ns();
    if (bn_sampler_sample(g->smp, row, &id, g->json ? &info : NULL, e)) return -1;
    g->ns_sample += bn_now_ns() - t0;
    g->n_sampled++;
    int32_t one = id;
    bn_frame tk;
    bn_frame_token(&tk, &one, last + 1);
    tk.seq = f->seq;
    if (is_eog(g, id)) {
        /* not shown downstream, but fed back so bn-forward's cache ends the
         * turn the way a chat template expects (<|eot_id|>, </s>) */
        if (feed(g, &tk, e) || bn_sampler_accept(g->smp, id, e)) return -1;
        g->fed_pos = g->fb ? (int64_t)last + 1 : -1;
        return finish(g, "eog", f->seq, e);
    }
    if (put(g, &tk, e) || json_token(g, last + 1, id, &info, e) || feed(g, &tk, e)) return -1;
    if (bn_sampler_accept(g->smp, id, e)) return -1;
    g->fed_pos = g->fb ? (int64_t)last + 1 : -1;
    long pl = 0;
    if (g->o->n_stops && (pl = bn_token_piece(&g->vocab, id, false, 0, g->piece, e)) < 0) return -1;
    const char *why;
    if (bn_stopper_push(&g->stop, id, g->o->n_stops ? g->piece : NULL, (size_t)pl, &why, e)) return -1;
    if (why) return finish(g, why, f->seq, e);
    return 0;
}

/* Read frames until upstream's stream ends; route each by kind. */
static int gen_run(gen *g, bn_err *e) {
    for (;;) {
        bn_frame f;
        int r = bn_conn_read(g->in, &f, e);
        if (r < 0) { g->upstream_failed = true; return -1; }
        if (r == 0) break;
        int rc = 0;
        switch (f.kind) {
        case BN_FRAME_HELLO: rc = on_hello(g, &f, e); break;
        case BN_FRAME_LOGITS: g->saw_logits = true; rc = on_logits(g, &f, e); break;
        case BN_FRAME_TOKENS: /* the prompt, if upstream passes it on: penalties see it */
            g->saw_tokens = true;
            if (!g->active) g->fed_pos = -1; /* a new prompt: no stale step can follow */
            for (uint32_t i = 0; i < f.n_tokens && g->smp && !rc; i++) rc = bn_sampler_accept(g->smp, f.tokens[i], e);
            if (!rc && !g->o->hide_prompt) rc = put(g, &f, e);
            break;
        case BN_FRAME_TIMING: case BN_FRAME_UNKNOWN: rc = put(g, &f, e); break;
        case BN_FRAME_ERROR:
            put(g, &f, e);
            rc = bn_errf(e, "%s: %s", f.stage[0] ? f.stage : "upstream", f.text ? f.text : "error");
            g->upstream_failed = true;
            break;
        case BN_FRAME_END:
            if (g->active) rc = finish(g, "end", f.seq, e); /* upstream stopped first (context full) */
            if (!f.more) g->upstream_end = true;
            break;
        default:
            rc = bn_errf(e, "unexpected %s frame from upstream (expected hello/logits)", bn_frame_kind_name(f.kind));
        }
        bn_frame_free(&f);
        if (rc) return -1;
    }
    if (!g->have_hello) return bn_errf(e, "input ended before a hello frame with n_vocab");
    if (g->saw_tokens && !g->saw_logits)
        return bn_errf(e, "tokens but no logits in the input (is bn-forward missing between bn-tokenize and bn-sample?)");
    if (g->active && g->fb) {
        g->upstream_failed = true;
        return bn_errf(e, "bn-forward: stream ended mid-generation (peer gone?)");
    }
    return 0;
}

/* Tell downstream and bn-forward that this sampler is done after an error
 * (best effort, errors ignored: the real error is already in hand). */
static void gen_fail(gen *g, const char *msg) {
    bn_frame f;
    bn_err ignore;
    bn_frame_error(&f, T, msg);
    if (g->out) { bn_conn_write(g->out, &f, &ignore); bn_conn_flush(g->out, &ignore); }
    if (g->fb && !g->upstream_failed) { bn_conn_write(g->fb, &f, &ignore); bn_conn_flush(g->fb, &ignore); }
}

static void gen_close(gen *g) {
    g->json = NULL;
    bn_outfile_abort(&g->json_out); /* no-op once committed; removes the temp file of a failed run */
    bn_conn_close(g->in);
    bn_conn_close(g->out);
    bn_conn_close(g->fb);
    bn_sampler_free(g->smp);
    bn_stopper_free(&g->stop);
    free(g->piece);
    if (g->have_vocab) bn_vocab_free(&g->vocab);
    g->have_vocab = false;
}

/* Normal end: a final END downstream and on feedback, then close everything. */
static int gen_close_checked(gen *g, bn_err *e) {
    bn_frame f;
    bn_frame_init(&f, BN_FRAME_END);
    int rc = 0;
    /* where bn-sample's own time went besides sampling: waiting for logits, msgpack */
    bn_conn_stats si = {0}, so = {0}, sf = {0};
    bn_conn_get_stats(g->in, &si);
    if (g->out) bn_conn_get_stats(g->out, &so);
    if (g->fb) bn_conn_get_stats(g->fb, &sf);
    bn_frame t;
    bn_frame_timing(&t, "bn-sample", "wait", si.wait_ns, si.frames);
    if (put(g, &t, e)) rc = -1;
    bn_frame_timing(&t, "bn-sample", "codec", si.codec_ns + so.codec_ns + sf.codec_ns, si.frames + so.frames + sf.frames);
    if (!rc && put(g, &t, e)) rc = -1;
    if (!rc && put(g, &f, e)) rc = -1; /* the stream's last frame (more = false) */
    if (!rc && g->json && g->json != stdout) {
        g->json = NULL;
        rc = bn_outfile_commit(&g->json_out, e);
    }
    if (g->json != stdout) g->json = NULL;
    gen_close(g);
    return rc;
}

/* Parse flags into o (exits 2 on a usage error). */
static void parse(int argc, char **argv, opts *o) {
    static const struct option lo[] = {
        { "in", 1, 0, 'i' }, { "out", 1, 0, 'o' }, { "feedback", 1, 0, O_FEEDBACK }, { "no-feedback", 0, 0, O_NOFB },
        { "temp", 1, 0, O_TEMP }, { "greedy", 0, 0, O_GREEDY }, { "top-k", 1, 0, O_TOPK }, { "top-p", 1, 0, O_TOPP },
        { "min-p", 1, 0, O_MINP }, { "repeat-penalty", 1, 0, O_RP }, { "frequency-penalty", 1, 0, O_FP },
        { "presence-penalty", 1, 0, O_PP }, { "repeat-last-n", 1, 0, O_RLN }, { "logit-bias", 1, 0, O_BIAS },
        { "seed", 1, 0, 's' }, { "predict", 1, 0, 'n' }, { "stop", 1, 0, O_STOP }, { "model", 1, 0, 'm' },
        { "stop-on-repeat", 1, 0, O_REPEAT }, { "json", 2, 0, O_JSON }, { "n-probs", 1, 0, O_NPROBS },
        BN_TRANSPORT_LONGOPTS,
        { "hide-prompt", 0, 0, O_HIDE }, { "quiet", 0, 0, 'q' }, { "help", 0, 0, 'h' }, { "version", 0, 0, O_VERSION }, { 0, 0, 0, 0 } };
    memset(o, 0, sizeof *o);
    o->in = o->out = "-";
    o->n_predict = -1;
    bn_cli_transport_init(T, &o->co);
    bn_sampler_params_default(&o->sp);
    o->sp.n_top = 5;
    int c;
    long l;
    float f;
    bn_err e;
#define NUM(lo_, hi_) do { if (!bn_parse_long(optarg, lo_, hi_, &l)) bn_die(T, 2, "%s: bad number '%s'", argv[optind - 1], optarg); } while (0)
#define FLT() do { if (!bn_parse_float(optarg, &f)) bn_die(T, 2, "bad number '%s'", optarg); } while (0)
    while ((c = getopt_long(argc, argv, "i:o:s:n:m:qh", lo, NULL)) != -1) {
        switch (c) {
        case 'i': o->in = optarg; break;
        case 'o': o->out = optarg; break;
        case O_FEEDBACK: o->feedback = optarg; break;
        case O_NOFB: o->no_feedback = true; break;
        case O_TEMP: FLT(); o->sp.temp = f; break;
        case O_GREEDY: o->sp.temp = 0; break;
        case O_TOPK: NUM(0, INT32_MAX); o->sp.top_k = (int32_t)l; break;
        case O_TOPP: FLT(); if (f < 0 || f > 1) bn_die(T, 2, "--top-p: %s is outside [0,1]", optarg); o->sp.top_p = f; break;
        case O_MINP: FLT(); if (f < 0 || f > 1) bn_die(T, 2, "--min-p: %s is outside [0,1]", optarg); o->sp.min_p = f; break;
        case O_RP: FLT(); if (f <= 0) bn_die(T, 2, "--repeat-penalty: must be > 0"); o->sp.repeat_penalty = f; break;
        case O_FP: FLT(); o->sp.freq_penalty = f; break;
        case O_PP: FLT(); o->sp.presence_penalty = f; break;
        case O_RLN: NUM(-1, INT32_MAX); o->sp.repeat_last_n = (int32_t)l; break;
        case O_BIAS:
            if (o->sp.n_bias == sizeof o->bias / sizeof o->bias[0]) bn_die(T, 2, "--logit-bias: at most 64");
            if (bn_logit_bias_parse(optarg, &o->bias[o->sp.n_bias], &e)) bn_die(T, 2, "%s", e.msg);
            o->sp.n_bias++;
            break;
        case 's':
            if (!bn_parse_long(optarg, 0, INT64_MAX, &l)) bn_die(T, 2, "--seed: bad number '%s'", optarg);
            o->sp.seed = (uint64_t)l; o->seed_set = true; break;
        case 'n': NUM(-1, INT32_MAX); o->n_predict = l; break;
        case O_STOP:
            if (o->n_stops == 16) bn_die(T, 2, "--stop: at most 16");
            if (!*optarg) bn_die(T, 2, "--stop: empty string");
            o->stops[o->n_stops++] = optarg; break;
        case 'm': o->model = optarg; break;
        case O_REPEAT: NUM(1, 4096); o->stop_repeat = l; break;
        case O_JSON:
            o->json = true;
            if (optarg) o->json_file = optarg;
            else if (optind < argc && argv[optind][0] != '-') o->json_file = argv[optind++];
            break;
        case O_NPROBS: NUM(0, BN_SAMPLE_MAX_TOP); o->sp.n_top = (uint32_t)l; break;
        case 'q': o->quiet = true; break;
        case O_HIDE: o->hide_prompt = true; break;
        case 'h': usage(stdout); exit(0);
        case O_VERSION: bn_print_version(T, stdout); exit(0);
        default:
            if (!bn_cli_transport_opt(T, c, optarg, &o->co)) { usage(stderr); exit(2); }
        }
    }
    if (optind < argc) bn_die(T, 2, "unexpected argument '%s' (see --help)", argv[optind]);
    if (o->n_stops && !o->model) bn_die(T, 2, "--stop needs the vocabulary: pass -m MODEL");
    if (o->feedback && o->no_feedback) bn_die(T, 2, "--feedback and --no-feedback conflict");
    o->sp.bias = o->bias;
    if (!o->seed_set) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t st = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ ((uint64_t)getpid() << 40);
        o->sp.seed = bn_splitmix64(&st) & (uint64_t)INT64_MAX;
        if (!o->quiet && o->sp.temp > 0) bn_warnx(T, "seed %llu", (unsigned long long)o->sp.seed);
    }
}

int main(int argc, char **argv) {
    opts o;
    parse(argc, argv, &o);
    bn_ignore_sigpipe();
    gen g;
    bn_err e;
    if (gen_open(&g, &o, &e) != 0) {
        gen_close(&g);
        bn_die_err(T, &e);
    }
    int rc = gen_run(&g, &e);
    if (rc != 0 && g.reader_gone) {
        /* | head: stop bn-forward's generation (END on feedback), then read what it
         * still sends until its stream ends, so it never writes into a closed pipe */
        bn_frame f;
        bn_err ignore;
        bn_frame_init(&f, BN_FRAME_END);
        if (g.fb) bn_conn_write(g.fb, &f, &ignore);
        while (bn_conn_read(g.in, &f, &ignore) == 1) bn_frame_free(&f);
        gen_close(&g);
        return BN_EXIT_OK;
    }
    if (rc != 0) {
        bn_warnx(T, "%s", e.msg); /* first: closing sockets may take up to the timeout */
        gen_fail(&g, e.msg);
        gen_close(&g);
        return BN_EXIT_FAIL;
    }
    rc = gen_close_checked(&g, &e);
    if (rc != 0) bn_die_err(T, &e);
    return bn_close_stdout(T) ? BN_EXIT_FAIL : BN_EXIT_OK;
}
