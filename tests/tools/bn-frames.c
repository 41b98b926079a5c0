/* bn-frames - debugging and test tool for the frame protocol.
 *   bn-frames [-i IN]                print one JSON line per frame read from IN
 *   bn-frames --from-json [-o OUT]   JSON lines on stdin -> frames to OUT
 *   bn-frames --pass -i IN -o OUT    copy frames (unknown kinds byte for byte)
 * IN/OUT: "-", a path, or a ZeroMQ endpoint (docs/PROTOCOL.md). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "timing.h"
#include "transport.h"

static const char *tool = "bn-frames";

static void usage(FILE *o) {
    fprintf(o,
        "usage: bn-frames [options]\n"
        "  -i, --input SPEC       frames from SPEC (default -)\n"
        "  -o, --output SPEC      frames to SPEC (default -) with --from-json / --pass\n"
        "      --from-json        read JSON objects, one per line, write frames\n"
        "      --pass             copy frames from input to output\n"
        "      --full             print all logits values (default: a summary)\n"
        "      --summary          at the end print the timing summary of TIMING frames (stderr)\n"
        "      --summary-json     the same as one JSON object (Ollama-style names, ns)\n"
        "      --trace FILE       write TIMING frames as Chrome trace-event JSON\n"
        "      --timeout MS       ZeroMQ/pipe timeout (default: BN_TIMEOUT_MS or transport default)\n"
        "      --curve-keys DIR   CURVE on tcp:// endpoints (see bn-keygen)\n"
        "      --insecure         allow plaintext tcp binds on non-loopback addresses\n"
        "  -h, --help             this help\n"
        "      --version          version\n");
}

/* Security events (CURVE refusals) from the transport, on stderr. */
static void log_stderr(void *ud, const char *line) {
    (void)ud;
    fprintf(stderr, "%s: %s\n", tool, line);
}

static int from_json(const char *out, const bn_conn_opts *o) {
    bn_conn *c;
    bn_err e;
    if (bn_conn_open_out(&c, out, o, &e) < 0) bn_die_err(tool, &e);
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    long lineno = 0;
    while ((n = getline(&line, &cap, stdin)) > 0) {
        lineno++;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
        if (n == 0 || line[0] == '#') continue;
        bn_frame f;
        if (bn_frame_from_json(line, (size_t)n, &f, &e) < 0) bn_die(tool, 1, "stdin:%ld: %s", lineno, e.msg);
        int r = bn_conn_write(c, &f, &e);
        bn_frame_free(&f);
        if (r < 0) bn_die_err(tool, &e);
    }
    free(line);
    if (bn_conn_finish(c, &e) < 0) bn_die_err(tool, &e);
    bn_conn_close(c);
    return 0;
}

static int dump_or_pass(const char *in, const char *out, bool pass, bool full, int summary, const char *trace,
                        const bn_conn_opts *o) {
    bn_conn *ci, *co = NULL;
    bn_err e;
    if (bn_conn_open_in(&ci, in, o, &e) < 0) bn_die_err(tool, &e);
    if (pass && bn_conn_open_out(&co, out, o, &e) < 0) bn_die_err(tool, &e);
    bn_trace *tr = NULL;
    if (trace && bn_trace_open(&tr, trace, &e) < 0) bn_die_err(tool, &e);
    bn_timing t;
    bn_timing_init(&t);
    bn_frame f;
    int r;
    while ((r = bn_conn_read(ci, &f, &e)) == 1) {
        bn_timing_add_frame(&t, &f);
        if (tr) bn_trace_frame(tr, &f);
        if (pass) {
            if (bn_conn_write(co, &f, &e) < 0) bn_die_err(tool, &e);
        } else {
            char *js;
            if (bn_frame_to_json(&f, full, &js, &e) < 0) bn_die_err(tool, &e);
            fputs(js, stdout);
            fputc('\n', stdout);
            fflush(stdout);
            free(js);
        }
        bn_frame_free(&f);
    }
    if (r < 0) bn_die_err(tool, &e);
    bn_conn_close(ci);
    if (co) {
        if (bn_conn_finish(co, &e) < 0) bn_die_err(tool, &e);
        bn_conn_close(co);
    }
    if (tr && bn_trace_close(tr, &e) < 0) bn_die_err(tool, &e);
    if (summary) {
        char *s = summary == 2 ? bn_timing_summary_json(&t, 0) : bn_timing_summary_text(&t, 0);
        if (s) fprintf(stderr, "%s%s", s, summary == 2 ? "\n" : "");
        free(s);
    }
    return bn_close_stdout(tool);
}

int main(int argc, char **argv) {
    static const struct option longopts[] = {
        {"input", required_argument, 0, 'i'}, {"output", required_argument, 0, 'o'},
        {"from-json", no_argument, 0, 'J'},   {"pass", no_argument, 0, 'P'},
        {"full", no_argument, 0, 'F'},        {"summary", no_argument, 0, 'S'},
        {"summary-json", no_argument, 0, 'j'}, {"trace", required_argument, 0, 'R'},
        {"timeout", required_argument, 0, 'T'}, {"curve-keys", required_argument, 0, 'K'},
        {"insecure", no_argument, 0, 'I'},    {"help", no_argument, 0, 'h'},
        {"version", no_argument, 0, 'V'},     {0, 0, 0, 0},
    };
    const char *in = "-", *out = "-";
    bool json_in = false, pass = false, full = false;
    int summary = 0;
    const char *trace = NULL;
    bn_conn_opts o;
    bn_conn_opts_default(&o);
    o.log = log_stderr;
    int c;
    long v;
    while ((c = getopt_long(argc, argv, "i:o:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'i': in = optarg; break;
        case 'o': out = optarg; break;
        case 'J': json_in = true; break;
        case 'P': pass = true; break;
        case 'F': full = true; break;
        case 'S': summary = 1; break;
        case 'j': summary = 2; break;
        case 'R': trace = optarg; break;
        case 'T':
            if (!bn_parse_long(optarg, -1, 86400000L, &v)) bn_die(tool, 2, "--timeout: not a number of ms: %s", optarg);
            o.timeout_ms = (int)v;
            break;
        case 'K': o.curve_dir = optarg; break;
        case 'I': o.insecure = true; break;
        case 'h': usage(stdout); return 0;
        case 'V': bn_print_version(tool, stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc) { usage(stderr); return 2; }
    if (json_in && pass) bn_die(tool, 2, "--from-json and --pass exclude each other");
    bn_ignore_sigpipe();
    if (json_in) return from_json(out, &o);
    return dump_or_pass(in, out, pass, full, summary, trace, &o);
}
