/* bn-quantize - make BitNet GGUF files: convert a Hugging Face checkpoint
 * directory, requantize a GGUF, or generate a synthetic model. The work is in
 * lib/convert.c; this file parses the command line and reports progress. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "convert.h"
#include "gguf.h"

static const char *tool = "bn-quantize";

/* Print the synopsis and options. */
static void usage(FILE *f) {
    fprintf(f,
        "usage: bn-quantize [options] INPUT -o OUTPUT --type TYPE\n"
        "       bn-quantize [options] INPUT OUTPUT TYPE [NTHREADS]\n"
        "       bn-quantize --synthetic SHAPE --vocab VOCAB.gguf [--seed N] -o OUTPUT --type TYPE\n"
        "INPUT is a Hugging Face model directory or a GGUF file.\n"
        "  -o, --output FILE             output GGUF (written to a temp file, then renamed)\n"
        "  -t, --type TYPE               linear weights: I2_S, TQ2_0, TQ1_0, F16, F32\n"
        "      --token-embedding-type T  token_embd: F16 (default), F32, Q8_0, Q6_K\n"
        "      --output-tensor-type T    output.weight when untied (default: as token_embd)\n"
        "      --arch ARCH               bitnet-b1.58 (default for I2_S/F16/F32) or bitnet (default for TQ*)\n"
        "      --name NAME               general.name\n"
        "  -j, --threads N               worker threads (default: online CPUs)\n"
        "  -q, --quiet                   no progress output\n"
        "      --synthetic SHAPE         random ternary model: tiny, 2b4t, or custom with --dims\n"
        "      --dims SPEC               embd=,layers=,heads=,kv=,ffn=,ctx=[,rope=,eps=] over SHAPE\n"
        "      --vocab FILE.gguf         tokenizer to embed in a synthetic model\n"
        "      --seed N                  synthetic seed (default 1234)\n"
        "  -h, --help, --version\n");
}

typedef struct prog { bool tty, quiet; } prog;

/* The writer's temp file ("<out>.tmp.<pid>", gguf.h), removed if we are
 * interrupted so that no partial output is left behind. */
static char tmp_path[4096];

/* On SIGINT/SIGTERM/SIGHUP remove the partial output, then die of the same signal. */
static void on_signal(int sig) {
    if (tmp_path[0]) unlink(tmp_path);
    signal(sig, SIG_DFL);
    raise(sig);
}

/* Progress: a bar on a terminal, one line per tensor otherwise. */
static void on_progress(void *ctx, uint64_t i, uint64_t n, const char *name, uint64_t bytes) {
    prog *p = ctx;
    if (p->quiet) return;
    if (p->tty) {
        int w = 30, fill = (int)((i + 1) * (uint64_t)w / (n ? n : 1));
        fprintf(stderr, "\r%s: [%.*s%*s] %llu/%llu %-40.40s", tool, fill, "##############################",
                w - fill, "", (unsigned long long)(i + 1), (unsigned long long)n, name);
        if (i + 1 == n) fputc('\n', stderr);
    } else {
        fprintf(stderr, "%s: [%llu/%llu] %s (%llu bytes)\n", tool, (unsigned long long)(i + 1),
                (unsigned long long)n, name, (unsigned long long)bytes);
    }
}

/* Parse a type name for a flag, exiting with status 2 if unknown. */
static int parse_type(const char *flag, const char *s) {
    int t = bn_type_from_name(s);
    if (t < 0) bn_die(tool, BN_EXIT_USAGE, "%s: unknown type '%s'", flag, s);
    return t;
}

/* Parse options (both command-line forms), run the conversion, print the summary. */
int main(int argc, char **argv) {
    enum { O_EMBD = 256, O_OUT, O_ARCH, O_NAME, O_SYN, O_DIMS, O_VOCAB, O_SEED, O_VERSION };
    static const struct option opts[] = {
        { "output", required_argument, 0, 'o' }, { "type", required_argument, 0, 't' },
        { "token-embedding-type", required_argument, 0, O_EMBD }, { "output-tensor-type", required_argument, 0, O_OUT },
        { "arch", required_argument, 0, O_ARCH }, { "name", required_argument, 0, O_NAME },
        { "threads", required_argument, 0, 'j' }, { "quiet", no_argument, 0, 'q' },
        { "synthetic", required_argument, 0, O_SYN }, { "dims", required_argument, 0, O_DIMS },
        { "vocab", required_argument, 0, O_VOCAB }, { "seed", required_argument, 0, O_SEED },
        { "help", no_argument, 0, 'h' }, { "version", no_argument, 0, O_VERSION }, { 0, 0, 0, 0 },
    };
    bn_convert_opts o;
    bn_convert_opts_init(&o);
    const char *out = NULL, *type = NULL, *syn = NULL, *dims = NULL;
    long nt = sysconf(_SC_NPROCESSORS_ONLN);
    prog pr = { isatty(2) != 0, false };
    int c;
    while ((c = getopt_long(argc, argv, "o:t:j:qh", opts, NULL)) != -1) {
        long v;
        switch (c) {
        case 'o': out = optarg; break;
        case 't': type = optarg; break;
        case O_EMBD: o.embd_type = parse_type("--token-embedding-type", optarg); break;
        case O_OUT: o.output_type = parse_type("--output-tensor-type", optarg); break;
        case O_ARCH: o.arch = optarg; break;
        case O_NAME: o.name = optarg; break;
        case 'j':
            if (!bn_parse_long(optarg, 1, 256, &v)) bn_die(tool, BN_EXIT_USAGE, "--threads: expected 1..256, got '%s'", optarg);
            nt = v;
            break;
        case 'q': pr.quiet = true; break;
        case O_SYN: syn = optarg; break;
        case O_DIMS: dims = optarg; break;
        case O_VOCAB: o.vocab_path = optarg; break;
        case O_SEED:
            if (!bn_parse_long(optarg, 0, 0x7fffffffffffffffL, &v)) bn_die(tool, BN_EXIT_USAGE, "--seed: bad number '%s'", optarg);
            o.seed = (uint64_t)v;
            break;
        case 'h': usage(stdout); return bn_close_stdout(tool);
        case O_VERSION: bn_print_version(tool, stdout); return bn_close_stdout(tool);
        default: usage(stderr); return BN_EXIT_USAGE;
        }
    }
    int npos = argc - optind;
    const char *in = NULL;
    if (syn) {
        if (npos > 0) bn_die(tool, BN_EXIT_USAGE, "--synthetic takes no INPUT ('%s')", argv[optind]);
    } else if (npos == 1) {
        in = argv[optind];
    } else if (npos >= 3 && npos <= 4 && !out && !type) { /* llama-quantize order */
        in = argv[optind];
        out = argv[optind + 1];
        type = argv[optind + 2];
        long v;
        if (npos == 4) {
            if (!bn_parse_long(argv[optind + 3], 1, 256, &v)) bn_die(tool, BN_EXIT_USAGE, "NTHREADS: expected 1..256");
            nt = v;
        }
    } else {
        usage(stderr);
        return BN_EXIT_USAGE;
    }
    if (!out) bn_die(tool, BN_EXIT_USAGE, "no output file (-o OUTPUT)");
    if (!type) bn_die(tool, BN_EXIT_USAGE, "no weight type (--type I2_S|TQ2_0|TQ1_0|F16|F32)");
    int wt = parse_type("--type", type);
    if (bn_ftype_for((uint32_t)wt) < 0) bn_die(tool, BN_EXIT_USAGE, "--type: %s is not one of I2_S, TQ2_0, TQ1_0, F16, F32", type);
    o.wtype = (uint32_t)wt;
    o.n_threads = nt > 0 ? (int)nt : 1;
    o.progress = on_progress;
    o.progress_ctx = &pr;
    bn_err e = { "" };
    if ((size_t)snprintf(tmp_path, sizeof tmp_path, "%s.tmp.%ld", out, (long)getpid()) >= sizeof tmp_path)
        bn_die(tool, BN_EXIT_USAGE, "output path too long");
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGHUP, on_signal);
    uint64_t t0 = bn_now_ns();
    int rc;
    if (syn) {
        bn_dims d;
        if (strcmp(syn, "custom") == 0) { memset(&d, 0, sizeof d); rc = 0; }
        else rc = bn_dims_preset(&d, syn, &e);
        if (!rc && dims) rc = bn_dims_parse(&d, dims, &e);
        if (rc) bn_die(tool, BN_EXIT_USAGE, "%s", e.msg);
        rc = bn_convert_synthetic(&d, out, &o, &e);
    } else {
        if (dims || o.vocab_path) bn_die(tool, BN_EXIT_USAGE, "--dims and --vocab only go with --synthetic");
        struct stat sb;
        if (stat(in, &sb) != 0) bn_die(tool, BN_EXIT_FAIL, "%s: no such file or directory", in);
        rc = S_ISDIR(sb.st_mode) ? bn_convert_hf(in, out, &o, &e) : bn_convert_gguf(in, out, &o, &e);
    }
    if (rc) {
        if (pr.tty && !pr.quiet) fputc('\n', stderr);
        bn_die_err(tool, &e);
    }
    if (!pr.quiet) {
        struct stat sb;
        long long sz = stat(out, &sb) == 0 ? (long long)sb.st_size : -1;
        fprintf(stderr, "%s: wrote %s (%lld bytes, %s weights) in %.2f s\n", tool, out, sz, bn_type_name(o.wtype),
                (double)(bn_now_ns() - t0) / 1e9);
    }
    return BN_EXIT_OK;
}
