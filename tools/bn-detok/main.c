/* bn-detok - token ids in, UTF-8 text out, flushed after every token. Reads
 * token/tokens/text frames (or plain ids with --ids); prints the pipeline's
 * timing summary on stderr at the end. Logic: lib/detok.c, lib/vocab.c. */
#include <limits.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fetch.h"
#include "outfile.h"
#include "cli.h"
#include "detok.h"
#include "frame.h"
#include "timing.h"
#include "transport.h"
#include "vocab.h"

static const char *tool = "bn-detok";

/* Print the synopsis and options. */
static void usage(FILE *f) {
    fprintf(f,
        "usage: bn-detok -m MODEL [options]\n"
        "Turn token frames (stdin, or --in) into text on stdout, as they arrive.\n"
        "  -m, --model FILE     GGUF or tokenizer.model holding the vocabulary\n"
        "  -i, --in ENDPOINT    where frames come from (default - = stdin)\n"
        "      --ids            read plain decimal ids from stdin instead of frames\n"
        "      --special        show control tokens such as <|eot_id|> (hidden by default)\n"
        "      --stats FILE     write the timing summary as JSON\n"
        "      --trace FILE     write every stage's timing as Chrome trace events (Perfetto, chrome://tracing)\n"
        "  -q, --quiet          no timing summary on stderr\n"
        BN_TRANSPORT_USAGE
        "  -h, --help, --version\n");
}

typedef struct run {
    bn_detok d;
    bn_timing t;
    uint64_t ns, n_tok, t_first, t_start;
    bool out_broken;
    int out_errno; /* why the last write failed (EPIPE: the reader left on purpose) */
    bn_trace *trace; /* --trace FILE: every stage's timing frames as Chrome trace events */
} run;

/* Write text now; a reader that went away ends the run quietly. */
static void emit(run *r, const char *s, size_t n) {
    if (r->out_broken || n == 0) return;
    errno = 0;
    if (fwrite(s, 1, n, stdout) != n || fflush(stdout) != 0) {
        r->out_broken = true;
        r->out_errno = errno;
    }
}

static void push_id(run *r, int32_t id) {
    bn_err e;
    const char *s;
    size_t n;
    uint64_t t0 = bn_now_ns();
    if (!r->t_first) r->t_first = t0;
    if (bn_detok_push(&r->d, id, &s, &n, &e) < 0) bn_die_err(tool, &e);
    r->ns += bn_now_ns() - t0;
    r->n_tok++;
    emit(r, s, n);
}

static void finish_seq(run *r) {
    const char *s;
    size_t n;
    bn_detok_finish(&r->d, &s, &n);
    emit(r, s, n);
    bn_detok_reset(&r->d);
}

/* --ids: numbers separated by whitespace, each pushed as soon as it ends. */
static void read_ids(run *r) {
    char num[24];
    size_t nl = 0;
    uint64_t off = 0;
    for (;;) {
        char buf[4096];
        ssize_t k = read(0, buf, sizeof buf);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) bn_die(tool, 1, "stdin: read error: %s", strerror(errno));
        for (ssize_t i = 0; i <= k; i++) {
            char c = i < k ? buf[i] : ' ';
            if (k == 0 && i == 0) c = ' ';
            if (c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == ',') {
                if (nl) {
                    num[nl] = 0;
                    long id;
                    if (!bn_parse_long(num, INT32_MIN, INT32_MAX, &id))
                        bn_die(tool, 1, "stdin: byte %llu: bad token id '%s'", (unsigned long long)(off - nl), num);
                    push_id(r, (int32_t)id);
                    nl = 0;
                }
            } else if (i < k) {
                if (nl + 1 >= sizeof num || !((c >= '0' && c <= '9') || (c == '-' && nl == 0)))
                    bn_die(tool, 1, "stdin: byte %llu: not a token id (0x%02x)", (unsigned long long)off,
                           (unsigned char)c);
                num[nl++] = c;
            }
            if (i < k) off++;
        }
        if (k == 0) break;
    }
}

/* Frames: hello (vocabulary check), tokens/token, text, timing, end, error. */
static void read_frames(run *r, const bn_vocab *v, const char *in, bn_conn_opts o) {
    o.peer_name = "upstream";
    bn_conn *c;
    bn_err e;
    if (bn_conn_open_in(&c, in, &o, &e) < 0) bn_die_err(tool, &e);
    bn_frame f;
    int rc = 0;
    bool done = false;
    while (!done && !r->out_broken && (rc = bn_conn_read(c, &f, &e)) == 1) {
        switch (f.kind) {
        case BN_FRAME_HELLO:
            if (f.hello.vocab_fp[0] && strcmp(f.hello.vocab_fp, v->fingerprint) != 0)
                bn_die(tool, 1, "vocabulary mismatch: tokenizer %.16s vs model %.16s (from %s)", f.hello.vocab_fp,
                       v->fingerprint, f.hello.stage[0] ? f.hello.stage : "upstream");
            break;
        case BN_FRAME_TOKENS:
        case BN_FRAME_TOKEN:
            for (uint32_t i = 0; i < f.n_tokens; i++) push_id(r, f.tokens[i]);
            break;
        case BN_FRAME_TEXT: emit(r, f.text, f.text_len); break;
        case BN_FRAME_TIMING:
            bn_timing_add_frame(&r->t, &f);
            if (r->trace) bn_trace_frame(r->trace, &f);
            break;
        case BN_FRAME_END:
            finish_seq(r);
            if (!f.more) done = true; /* the whole stream ended (no EOF on ZeroMQ) */
            break;
        case BN_FRAME_ERROR: bn_die(tool, 1, "upstream %s: %s", f.stage, f.text ? f.text : "error");
        default: break;
        }
        bn_frame_free(&f);
    }
    if (!r->out_broken && rc < 0) bn_die_err(tool, &e);
    bn_conn_stats st;
    bn_conn_get_stats(c, &st);
    bn_timing_add(&r->t, tool, "wait", st.wait_ns, st.frames, 0);
    bn_timing_add(&r->t, tool, "codec", st.codec_ns, st.frames, 0);
    bn_conn_close(c);
}

/* The summary on stderr and, with --stats, as JSON (temp file + rename). */
static void report(run *r, bool quiet, const char *stats) {
    uint64_t wall = bn_now_ns() - r->t_start; /* bn-detok runs from the first stage to the last */
    bn_timing_add(&r->t, tool, "detok", r->ns, r->n_tok, r->t_first);
    if (r->trace) {
        bn_err te;
        bn_trace_event(r->trace, tool, "detok", r->t_first, r->ns, r->n_tok);
        if (bn_trace_close(r->trace, &te) < 0) bn_die_err(tool, &te);
        r->trace = NULL;
    }
    if (!quiet) {
        char *s = bn_timing_summary_text(&r->t, wall);
        if (s) fprintf(stderr, "\n%s", s);
        free(s);
    }
    if (stats) {
        char *j = bn_timing_summary_json(&r->t, wall);
        bn_outfile out;
        bn_err e;
        if (!j) bn_die(tool, 1, "%s: out of memory", stats);
        if (bn_outfile_open(&out, stats, &e) < 0) bn_die_err(tool, &e);
        fputs(j, out.f);
        fputc('\n', out.f);
        if (bn_outfile_commit(&out, &e) < 0) bn_die_err(tool, &e);
        free(j);
    }
}

int main(int argc, char **argv) {
    enum { O_IDS = 256, O_SPECIAL, O_STATS, O_TRACE, O_VERSION };
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'}, {"in", required_argument, 0, 'i'},
        {"ids", no_argument, 0, O_IDS}, {"special", no_argument, 0, O_SPECIAL},
        {"stats", required_argument, 0, O_STATS}, {"trace", required_argument, 0, O_TRACE}, {"quiet", no_argument, 0, 'q'},
        BN_TRANSPORT_LONGOPTS, {"help", no_argument, 0, 'h'},
        {"version", no_argument, 0, O_VERSION}, {0, 0, 0, 0}};
    const char *model = NULL, *in = "-", *stats = NULL, *trace = NULL;
    bool ids = false, special = false, quiet = false;
    bn_conn_opts co;
    bn_cli_transport_init(tool, &co);
    int c;
    while ((c = getopt_long(argc, argv, "m:i:qh", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'i': in = optarg; break;
        case 'q': quiet = true; break;
        case O_IDS: ids = true; break;
        case O_SPECIAL: special = true; break;
        case O_STATS: stats = optarg; break;
        case O_TRACE: trace = optarg; break;
        case 'h': usage(stdout); return 0;
        case O_VERSION: bn_print_version(tool, stdout); return 0;
        default:
            if (!bn_cli_transport_opt(tool, c, optarg, &co)) { usage(stderr); return 2; }
        }
    }
    if (!model || optind < argc || (ids && strcmp(in, "-") != 0)) { usage(stderr); return 2; }
    bn_ignore_sigpipe();
    bn_err e;
    bn_vocab v;
    char model_path[PATH_MAX]; /* hf:OWNER/REPO[:FILE] -> cached local file */
    if (bn_model_resolve(model, model_path, sizeof model_path, &e) < 0) bn_die_err(tool, &e);
    model = model_path;
    if (bn_vocab_load_file(&v, model, &e) < 0) bn_die_err(tool, &e);
    run r = {0};
    if (trace && bn_trace_open(&r.trace, trace, &e) < 0) bn_die_err(tool, &e);
    r.t_start = bn_now_ns();
    bn_timing_init(&r.t);
    if (bn_detok_init(&r.d, &v, special, &e) < 0) bn_die_err(tool, &e);
    if (ids) read_ids(&r);
    else read_frames(&r, &v, in, co);
    finish_seq(&r);
    report(&r, quiet, stats);
    bn_detok_free(&r.d);
    bn_vocab_free(&v);
    if (r.out_broken && r.out_errno == EPIPE) return BN_EXIT_OK; /* | head: a clean end */
    return bn_close_stdout(tool);
}
