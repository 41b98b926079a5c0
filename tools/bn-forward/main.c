/* bn-forward - token ids in, logits out: the transformer stage.
 *
 *   bn-tokenize -m M -p "In the beginning" | bn-forward -m M | bn-sample | bn-detok -m M
 *
 * Reads hello/tokens/token/end frames, runs the model (lib/forward.c), writes
 * a hello, logits (or scores) and timing frames, and an end frame. After a
 * prompt it can wait for sampled tokens on a feedback endpoint (see
 * docs/man/bn-forward.md, "Feedback"). This file is the command line and the
 * frame loop; the numerics are in lib/forward.c and lib/model.c. */
#include <limits.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fetch.h"
#include "cli.h"
#include "forward.h"
#include "gpu.h"
#include "frame.h"
#include "logt.h"
#include "transport.h"

static const char *T = "bn-forward";

static void usage(FILE *f) {
    fprintf(f,
        "usage: bn-forward -m MODEL [options]\n"
        "Run a BitNet GGUF on token frames (stdin) and write logits frames (stdout).\n"
        "  -m, --model FILE        GGUF model (bitnet-b1.58, bitnet, bitnet-25)\n"
        "  -i, --in SPEC           frames in: - (stdin), a file, tcp://, ipc:// (default -)\n"
        "  -o, --out SPEC          frames out (default -)\n"
        "  -t, --threads N         threads (default: physical cores)\n"
        "  -c, --ctx N             context size (default: the model's context_length)\n"
        "  -b, --batch N           prompt tokens per batch (default 512)\n"
        "      --kv f16|f32        KV cache type (default f16)\n"
        "      --device cpu|cuda|auto  where the forward pass runs (default cpu); cuda without a\n"
        "                          usable GPU falls back to the CPU with a warning (an error with --strict)\n"
        "      --compat auto|none|bitnet.cpp|llama.cpp  float order of the F16 attention and head:\n"
        "                          bitnet.cpp's or llama.cpp's (both depend on the batch size) or batch\n"
        "                          invariant (none); auto (default): bitnet.cpp for its archs (bitnet-b1.58,\n"
        "                          bitnet-25), llama.cpp for the others\n"
        "      --ffn-act relu2|silu  override the FFN activation\n"
        "      --head q8_0|q6_k    requantize an f16/f32 output head at load (about half the\n"
        "                          head bytes per decoded token; input embeddings unchanged)\n"
        "      --no-repack         keep TQ1_0 weights as stored (default: rewritten at load as\n"
        "                          TQ2_0, bitwise the same logits, ~1.6x faster decode, ~22%% more\n"
        "                          bytes for those weights; --strict never rewrites)\n"
        "      --mmap, --no-mmap   map the model file, or read it into private memory in 2 MB\n"
        "                          pages (default where transparent huge pages are on: decode\n"
        "                          up to 25%% faster than from a mapping, ~0.3 s more load per GB)\n"
        "      --logits last|all   rows per tokens frame (default last)\n"
        "      --dump-logits FILE  also write every row produced as a LOGT file\n"
        "      --scores            per-token log-probabilities (SCORES frames) instead of logits\n"
        "      --greedy N          continue each prompt greedily for N tokens in-process\n"
        "      --ids               plain ids on stdin instead of frames; prints generated ids\n"
        "      --feedback SPEC     feedback endpoint to bind (default: private ipc://)\n"
        "      --no-feedback       never wait for sampled tokens\n"
        "      --strict            fallbacks and bad logits are errors (also BITNET_STRICT_MODE=1)\n"
        "      --profile-regions   time the thread pool's regions over the decode steps (one token\n"
        "                          each) and print them on stderr at the end (CPU only)\n"
        BN_TRANSPORT_USAGE
        "  -v, --verbose           print the kernel receipt and speeds on stderr\n"
        "  -h, --help, --version\n");
}

typedef struct opts {
    const char *model, *in, *out, *dump, *feedback;
    long threads, ctx, batch, greedy;
    bn_conn_opts co; /* --timeout, --curve-keys, --insecure */
    int ffn_act, compat, device;
    int load; /* bn_gguf_load (--mmap, --no-mmap); -1: a copy in huge pages where THP is on, else map */
    uint32_t head_type;
    bool kv32, all, scores, ids, no_feedback, strict, verbose, profile, no_repack;
} opts;

typedef struct run {
    const opts *o;
    bn_model m;
    bn_engine fw; /* the CPU pass, or the GPU pass with --device cuda|auto */
    bn_conn *in, *out, *fb;
    bn_logt_writer *dump;
    float *logits;            /* [n_batch][n_vocab] */
    float *prev;              /* last row produced (greedy, scores) */
    int n_batch, V;
    bool have_prev, warned, profiling;
    char receipt[256];
    uint64_t ns_prefill, ns_decode, n_prefill, n_decode;
} run;

/* ---- output helpers ---------------------------------------------------- */

static int put(run *r, const bn_frame *f, bn_err *e) { return r->out ? bn_conn_write(r->out, f, e) : 0; }

static int timing(run *r, const char *ev, uint64_t ns, uint64_t count, bn_err *e) {
    bn_frame f;
    bn_frame_timing(&f, T, ev, ns, count);
    f.t_start_ns = bn_now_ns() - ns; /* sent as the event ends: lets bn-detok --trace place it */
    return put(r, &f, e);
}

/* Check rows (strict: error; else warn once), dump them, send them on. */
static int emit_rows(run *r, float *rows, int n, uint32_t pos, bool send, bn_err *e) {
    for (int i = 0; i < n; i++) {
        bn_err ce;
        if (bn_logits_check(rows + (size_t)i * r->V, r->V, &ce) < 0) {
            if (r->o->strict) return bn_errf(e, "position %u: %s (strict mode)", pos + i, ce.msg);
            if (!r->warned) bn_warnx(T, "position %u: %s", pos + i, ce.msg);
            r->warned = true;
        }
    }
    if (r->dump && bn_logt_writer_rows(r->dump, rows, (uint32_t)n, e) < 0) return -1;
    if (!send) return 0;
    bn_frame f;
    bn_frame_init(&f, BN_FRAME_LOGITS);
    f.logits = rows;
    f.n_rows = (uint32_t)n;
    f.n_vocab = (uint32_t)r->V;
    f.pos = pos;
    return put(r, &f, e);
}

/* --profile-regions: one line per region, then where thread 0's time went. */
static void print_regions(run *r) {
    if (!r->fw.cpu) {
        bn_warnx(T, "--profile-regions: no CPU forward pass to profile");
        return;
    }
    if (!r->profiling) {
        bn_warnx(T, "--profile-regions: no decode step ran");
        return;
    }
    bn_region_stat st[BN_POOL_STATS_MAX];
    const int n = bn_forward_regions(r->fw.cpu, st, BN_POOL_STATS_MAX);
    double own = 0, wait = 0, before = 0;
    for (int i = 0; i < n && i < BN_POOL_STATS_MAX; i++) {
        const bn_pool_stat *t = &st[i].t;
        bn_warnx(T, "region %-14s calls %7llu  thread 0: own %9.1f ms, wait %7.1f ms, before %7.1f ms;"
                    "  workers: work %9.1f ms, start %6.1f ms",
                 st[i].name, (unsigned long long)t->calls, t->own_ms, t->wait_ms, t->before_ms, t->work_ms, t->start_ms);
        own += t->own_ms, wait += t->wait_ms, before += t->before_ms;
    }
    bn_warnx(T, "regions: thread 0 %.1f ms own work, %.1f ms waiting for workers, %.1f ms between regions",
             own, wait, before);
}

/* ---- evaluation --------------------------------------------------------- */

/* A run of tokens at the cache position: logits (last/all) or scores,
 * chunked by n_batch so memory stays at n_batch rows. */
static int eval_tokens(run *r, const int32_t *tok, int n, bn_err *e) {
    const bool all = r->o->all || r->o->scores || r->o->dump;
    uint64_t t0 = bn_now_ns();
    float *sc_lp = NULL;
    int32_t *sc_tgt = NULL;
    uint32_t sc_n = 0, sc_pos = 0;
    if (r->o->scores) {
        sc_lp = malloc(((size_t)n + 1) * sizeof *sc_lp);
        sc_tgt = malloc(((size_t)n + 1) * sizeof *sc_tgt);
        if (!sc_lp || !sc_tgt) { free(sc_lp); free(sc_tgt); return bn_errf(e, "out of memory for %d scores", n); }
    }
    for (int c0 = 0; c0 < n; c0 += r->n_batch) {
        const int nc = n - c0 < r->n_batch ? n - c0 : r->n_batch;
        const bool last_chunk = c0 + nc == n;
        const int n_out = all ? nc : last_chunk ? 1 : 0;
        const uint32_t pos = (uint32_t)bn_engine_pos(&r->fw);
        if (r->o->profile && nc == 1 && !r->profiling && r->fw.cpu) { /* from the first decode step on */
            bn_forward_profile(r->fw.cpu, 1);
            r->profiling = true;
        }
        if (bn_engine_eval(&r->fw, tok + c0, nc, r->logits, n_out, e) < 0) goto fail;
        const bool had_prev = r->have_prev;
        if (r->o->scores) { /* log p(next token) for every row that has one */
            for (int i = had_prev ? -1 : 0; i < nc - 1; i++) {
                const float *row = i < 0 ? r->prev : r->logits + (size_t)i * r->V;
                if (sc_n == 0) sc_pos = pos + (uint32_t)i;
                sc_tgt[sc_n] = tok[c0 + i + 1];
                sc_lp[sc_n++] = (float)bn_log_softmax_at(row, r->V, tok[c0 + i + 1]);
            }
            r->have_prev = true;
            if (r->dump && bn_logt_writer_rows(r->dump, r->logits, (uint32_t)nc, e) < 0) goto fail;
        } else if (n_out) {
            const bool send = r->o->all || last_chunk;
            float *rows = r->logits;
            const int nrow = n_out;
            const uint32_t base = pos + (uint32_t)(nc - nrow); /* position of the first row */
            if (send && !r->o->all) { /* dump wanted every row, the frame only the last */
                if (emit_rows(r, rows, nrow - 1, base, false, e) < 0) goto fail;
                rows += (size_t)(nrow - 1) * r->V;
                if (emit_rows(r, rows, 1, base + (uint32_t)nrow - 1, true, e) < 0) goto fail;
            } else if (emit_rows(r, rows, nrow, base, send, e) < 0) {
                goto fail;
            }
        }
        if (n_out) memcpy(r->prev, r->logits + (size_t)(n_out - 1) * r->V, (size_t)r->V * sizeof(float));
    }
    if (sc_n) { /* one SCORES frame per run of tokens */
        bn_frame f;
        bn_frame_init(&f, BN_FRAME_SCORES);
        f.tokens = sc_tgt;
        f.n_tokens = sc_n;
        f.logits = sc_lp;
        f.n_rows = sc_n;
        f.pos = sc_pos;
        if (put(r, &f, e) < 0) goto fail;
    }
    free(sc_lp);
    free(sc_tgt);
    uint64_t ns = bn_now_ns() - t0;
    if (n == 1) { r->ns_decode += ns; r->n_decode++; }
    else { r->ns_prefill += ns; r->n_prefill += (uint64_t)n; }
    return timing(r, n == 1 ? "decode" : "prefill", ns, (uint64_t)n, e);
fail:
    free(sc_lp);
    free(sc_tgt);
    return -1;
}

/* Greedy continuation in-process: argmax of the last row (ties -> lowest
 * id), a TOKEN frame downstream, one decode step. EOG does not stop it. */
static int greedy(run *r, int32_t *ids_out, bn_err *e) {
    for (long i = 0; i < r->o->greedy; i++) {
        int32_t id = bn_argmax(r->prev, r->V);
        if (ids_out) ids_out[i] = id;
        bn_frame f;
        bn_frame_token(&f, &id, (uint32_t)bn_engine_pos(&r->fw));
        if (put(r, &f, e) < 0 || eval_tokens(r, &id, 1, e) < 0) return -1;
    }
    return 0;
}

/* ---- the frame loop ------------------------------------------------------ */

/* Hello from upstream: the vocabulary must be the model's. */
static int on_hello(run *r, const bn_hello *h, bn_err *e) {
    if (h->proto != BN_PROTO_VERSION)
        return bn_errf(e, "hello: protocol %u from %s, this is %d", h->proto, h->stage, BN_PROTO_VERSION);
    if (h->vocab_fp[0] && r->m.vocab_fp[0] && strcmp(h->vocab_fp, r->m.vocab_fp) != 0)
        return bn_errf(e, "hello: %s's vocabulary (%.12s...) is not the model's (%.12s...): tokenizer and model differ",
                       h->stage[0] ? h->stage : "upstream", h->vocab_fp, r->m.vocab_fp);
    if (h->n_vocab && h->n_vocab != (uint32_t)r->V)
        return bn_errf(e, "hello: %s says n_vocab %u, the model has %d", h->stage[0] ? h->stage : "upstream", h->n_vocab, r->V);
    return 0;
}

/* A prompt (or continuation) at f->pos: position 0 starts a new sequence. */
static int on_tokens(run *r, const bn_frame *f, bn_err *e) {
    if (f->pos == 0) { bn_engine_reset(&r->fw); r->have_prev = false; }
    else if (f->pos != (uint32_t)bn_engine_pos(&r->fw))
        return bn_errf(e, "tokens at position %u, but %d tokens are in the cache", f->pos, bn_engine_pos(&r->fw));
    if (put(r, f, e) < 0) return -1; /* the sampler's penalties see the prompt */
    if (eval_tokens(r, f->tokens, (int)f->n_tokens, e) < 0) return -1;
    return greedy(r, NULL, e);
}

/* Sampled tokens on the feedback endpoint until the sampler ends the turn. */
static int feedback_loop(run *r, bn_err *e) {
    for (;;) {
        bn_frame f;
        int rc = bn_conn_read(r->fb, &f, e);
        if (rc < 0) return -1;
        if (rc == 0) return 0;
        if (f.kind == BN_FRAME_TOKEN && f.n_tokens == 1) {
            if (f.pos != (uint32_t)bn_engine_pos(&r->fw))
                rc = bn_errf(e, "feedback: token for position %u, cache holds %d", f.pos, bn_engine_pos(&r->fw));
            else rc = eval_tokens(r, f.tokens, 1, e);
            if (rc == 0) rc = bn_conn_flush(r->out, e);
        } else if (f.kind == BN_FRAME_END) {
            bn_frame_free(&f);
            return 0;
        } else if (f.kind == BN_FRAME_ERROR) {
            rc = bn_errf(e, "feedback: %s: %s", f.stage[0] ? f.stage : "sampler", f.text ? f.text : "error");
        } else {
            rc = bn_errf(e, "feedback: unexpected %s frame", bn_frame_kind_name(f.kind));
        }
        bn_frame_free(&f);
        if (rc < 0) return -1;
    }
}

/* Read input frames until the stream ends. */
static int frame_loop(run *r, bn_err *e) {
    for (;;) {
        bn_frame f;
        int rc = bn_conn_read(r->in, &f, e);
        if (rc < 0) return -1;
        if (rc == 0) return 0;
        switch (f.kind) {
        case BN_FRAME_HELLO: rc = on_hello(r, &f.hello, e); break;
        case BN_FRAME_TOKENS:
            rc = on_tokens(r, &f, e);
            if (rc == 0) rc = bn_conn_flush(r->out, e);
            if (rc == 0 && r->fb) rc = feedback_loop(r, e);
            break;
        case BN_FRAME_TOKEN:
            if (f.n_tokens != 1) { rc = bn_errf(e, "token frame with %u ids", f.n_tokens); break; }
            rc = eval_tokens(r, f.tokens, 1, e);
            break;
        case BN_FRAME_END:
            if (f.more) { rc = put(r, &f, e); break; }
            bn_frame_free(&f);
            return 0;
        case BN_FRAME_ERROR:
            put(r, &f, e);
            rc = bn_errf(e, "%s: %s", f.stage[0] ? f.stage : "upstream", f.text ? f.text : "error");
            break;
        default: rc = put(r, &f, e); /* timing, text, unknown: pass on */
        }
        bn_frame_free(&f);
        if (rc < 0) return -1;
        if (bn_conn_flush(r->out, e) < 0) return -1;
    }
}

/* --ids: whitespace/comma separated ids on stdin, generated ids on stdout. */
static int ids_mode(run *r, bn_err *e) {
    size_t cap = 1024, n = 0;
    int32_t *ids = malloc(cap * sizeof *ids);
    long v;
    char buf[32];
    int c, len = 0;
    if (!ids) return bn_errf(e, "out of memory");
    for (;;) {
        c = getchar();
        if (c >= '0' && c <= '9' && len < 30) { buf[len++] = (char)c; continue; }
        if (len) {
            buf[len] = 0;
            if (!bn_parse_long(buf, 0, INT32_MAX, &v)) { free(ids); return bn_errf(e, "stdin: bad id \"%s\"", buf); }
            if (n == cap) {
                int32_t *ni = realloc(ids, (cap *= 2) * sizeof *ids);
                if (!ni) { free(ids); return bn_errf(e, "out of memory"); }
                ids = ni;
            }
            ids[n++] = (int32_t)v;
            len = 0;
        }
        if (c == EOF) break;
        if (c != ' ' && c != ',' && c != '\n' && c != '\t' && c != '\r') { free(ids); return bn_errf(e, "stdin: unexpected character '%c' (want ids)", c); }
    }
    int32_t *gen = calloc((size_t)r->o->greedy + 1, sizeof *gen);
    int rc = gen ? 0 : bn_errf(e, "out of memory");
    if (rc == 0 && n == 0) rc = bn_errf(e, "stdin: no token ids");
    if (rc == 0) rc = eval_tokens(r, ids, (int)n, e);
    if (rc == 0) rc = greedy(r, gen, e);
    for (long i = 0; rc == 0 && i < r->o->greedy; i++) printf("%s%d", i ? " " : "", gen[i]);
    if (rc == 0 && r->o->greedy) printf("\n");
    free(gen);
    free(ids);
    return rc;
}

/* ---- setup --------------------------------------------------------------- */

/* Feedback only makes sense when someone downstream can sample: output to a
 * pipe, socket or ZeroMQ endpoint, not a terminal or regular file. */
static bool want_feedback(const opts *o) {
    if (o->no_feedback || o->ids || o->scores || o->greedy > 0) return false;
    if (o->feedback) return true;
    struct stat st;
    if (!strcmp(o->out, "-")) return fstat(1, &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode));
    if (strstr(o->out, "://")) return true;
    return stat(o->out, &st) == 0 && S_ISFIFO(st.st_mode);
}

static void parse(int argc, char **argv, opts *o) {
    enum { O_KV = 256, O_ACT, O_LOGITS, O_DUMP, O_SCORES, O_GREEDY, O_IDS, O_FB, O_NOFB, O_STRICT, O_VER, O_COMPAT, O_DEVICE, O_HEAD, O_MMAP, O_NOMMAP, O_PROF, O_NOREPACK };
    static const struct option lo[] = {
        {"model", 1, 0, 'm'}, {"in", 1, 0, 'i'}, {"out", 1, 0, 'o'}, {"threads", 1, 0, 't'}, {"ctx", 1, 0, 'c'},
        {"batch", 1, 0, 'b'}, {"kv", 1, 0, O_KV}, {"ffn-act", 1, 0, O_ACT}, {"compat", 1, 0, O_COMPAT}, {"head", 1, 0, O_HEAD}, {"mmap", 0, 0, O_MMAP}, {"no-mmap", 0, 0, O_NOMMAP}, {"no-repack", 0, 0, O_NOREPACK}, {"device", 1, 0, O_DEVICE}, {"logits", 1, 0, O_LOGITS},
        {"dump-logits", 1, 0, O_DUMP}, {"scores", 0, 0, O_SCORES}, {"greedy", 1, 0, O_GREEDY}, {"ids", 0, 0, O_IDS},
        {"feedback", 1, 0, O_FB}, {"no-feedback", 0, 0, O_NOFB}, {"strict", 0, 0, O_STRICT}, {"profile-regions", 0, 0, O_PROF}, BN_TRANSPORT_LONGOPTS,
        {"verbose", 0, 0, 'v'}, {"help", 0, 0, 'h'}, {"version", 0, 0, O_VER}, {0, 0, 0, 0}};
    *o = (opts){.in = "-", .out = "-", .compat = -1, .load = -1};
    bn_cli_transport_init(T, &o->co);
    int c;
    while ((c = getopt_long(argc, argv, "m:i:o:t:c:b:vh", lo, NULL)) != -1) {
        switch (c) {
        case 'm': o->model = optarg; break;
        case 'i': o->in = optarg; break;
        case 'o': o->out = optarg; break;
        case 't': if (!bn_parse_long(optarg, 1, 1024, &o->threads)) bn_die(T, 2, "-t: want 1..1024"); break;
        case 'c': if (!bn_parse_long(optarg, 1, 1 << 24, &o->ctx)) bn_die(T, 2, "-c: want 1..16777216"); break;
        case 'b': if (!bn_parse_long(optarg, 1, 65536, &o->batch)) bn_die(T, 2, "-b: want 1..65536"); break;
        case O_KV:
            if (strcmp(optarg, "f16") && strcmp(optarg, "f32")) bn_die(T, 2, "--kv: want f16 or f32");
            o->kv32 = !strcmp(optarg, "f32");
            break;
        case O_MMAP: o->load = BN_GGUF_MAP; break;
        case O_NOMMAP: o->load = BN_GGUF_COPY_HUGE; break;
        case O_NOREPACK: o->no_repack = true; break;
        case O_HEAD:
            if (!strcmp(optarg, "q8_0")) o->head_type = BN_TYPE_Q8_0;
            else if (!strcmp(optarg, "q6_k")) o->head_type = BN_TYPE_Q6_K;
            else bn_die(T, 2, "--head: want q8_0 or q6_k");
            break;
        case O_COMPAT:
            if (!strcmp(optarg, "auto")) o->compat = -1;
            else if (!strcmp(optarg, "none")) o->compat = BN_COMPAT_NONE;
            else if (!strcmp(optarg, "bitnet.cpp")) o->compat = BN_COMPAT_BITNETCPP;
            else if (!strcmp(optarg, "llama.cpp")) o->compat = BN_COMPAT_LLAMACPP;
            else bn_die(T, 2, "--compat: want auto, none, bitnet.cpp or llama.cpp");
            break;
        case O_ACT:
            if ((o->ffn_act = bn_ffn_act_parse(optarg)) < 0) bn_die(T, 2, "--ffn-act: want relu2 or silu");
            break;
        case O_LOGITS:
            if (strcmp(optarg, "last") && strcmp(optarg, "all")) bn_die(T, 2, "--logits: want last or all");
            o->all = !strcmp(optarg, "all");
            break;
        case O_DUMP: o->dump = optarg; break;
        case O_SCORES: o->scores = true; break;
        case O_GREEDY: if (!bn_parse_long(optarg, 0, 1 << 24, &o->greedy)) bn_die(T, 2, "--greedy: want a count"); break;
        case O_IDS: o->ids = true; break;
        case O_PROF: o->profile = true; break;
        case O_FB: o->feedback = optarg; break;
        case O_NOFB: o->no_feedback = true; break;
        case O_STRICT: o->strict = true; break;
        case O_DEVICE:
            if ((o->device = bn_device_parse(optarg)) < 0) bn_die(T, 2, "--device: want cpu, cuda or auto");
            break;
        case 'v': o->verbose = true; break;
        case 'h': usage(stdout); exit(0);
        case O_VER: bn_print_version(T, stdout); exit(0);
        default:
            if (!bn_cli_transport_opt(T, c, optarg, &o->co)) { usage(stderr); exit(2); }
        }
    }
    if (optind != argc || !o->model) { usage(stderr); exit(2); }
    { /* hf:OWNER/REPO[:FILE] -> cached local file */
        static char resolved[PATH_MAX];
        bn_err e;
        if (bn_model_resolve(o->model, resolved, sizeof resolved, &e) < 0) bn_die_err(T, &e);
        o->model = resolved;
    }
    if (o->scores && o->greedy) bn_die(T, 2, "--scores and --greedy do not mix");
    o->strict = o->strict || bn_strict_env();
}

/* Kernel table; a weight type without a SIMD kernel on a SIMD table is a
 * fallback (strict: error). */
static const bn_kernels *pick_kernels(run *r, bn_err *e) {
    bn_isa isa;
    if (bn_isa_select(&isa, e) < 0) return NULL;
    const bn_kernels *k = bn_kernels_for(isa);
    if (!k) { bn_errf(e, "kernels: %s not compiled in", bn_isa_name(isa)); return NULL; }
    uint32_t types[16];
    int nt = bn_model_weight_types(&r->m, types, 16);
    for (int i = 0; i < nt; i++) {
        if (bn_kernels_is_native(k, types[i])) continue;
        if (r->o->strict) {
            bn_errf(e, "kernels: %s has no %s kernel, would fall back to scalar (strict mode)", k->name, bn_type_name(types[i]));
            return NULL;
        }
        bn_warnx(T, "%s: no %s kernel, using the scalar one", k->name, bn_type_name(types[i]));
    }
    return k;
}

static int setup(run *r, bn_gguf **g, bn_err *e) {
    const opts *o = r->o;
    const bn_gguf_load how = o->load >= 0 ? (bn_gguf_load)o->load : bn_thp_enabled() ? BN_GGUF_COPY_HUGE : BN_GGUF_MAP;
    if (bn_gguf_open_ex(g, o->model, how, e) < 0) return -1;
    if (how == BN_GGUF_MAP) bn_gguf_prefault(*g); /* page tables now, not one fault per page in the first step */
    bn_model_opts mo = {.ffn_act = (bn_ffn_act)o->ffn_act, .strict = o->strict, .head_type = o->head_type};
    if (bn_model_load(&r->m, *g, &mo, e) < 0) return -1;
    if (r->m.warn[0]) bn_warnx(T, "%s", r->m.warn);
    const bn_kernels *k = pick_kernels(r, e);
    if (!k) return -1;
    /* TQ1_0 as TQ2_0 (bitwise the same logits); strict mode runs what the file holds */
    if (!o->strict && !o->no_repack && bn_model_repack_tq1(&r->m, k->tq1_to_tq2, e) < 0) return -1;
    bn_cpu_info ci;
    bn_cpu_detect(&ci);
    r->n_batch = o->batch ? (int)o->batch : 512; /* llama.cpp's and bitnet.cpp's n_ubatch */
    /* files bitnet.cpp makes get bitnet.cpp's numerics, llama.cpp's (arch
     * bitnet) llama.cpp's, unless asked otherwise */
    bn_compat compat = o->compat >= 0 ? (bn_compat)o->compat
                     : (!strcmp(r->m.arch, "bitnet-b1.58") || !strcmp(r->m.arch, "bitnet-25")) ? BN_COMPAT_BITNETCPP
                                                                                                : BN_COMPAT_LLAMACPP;
    bn_forward_opts fo = {.n_ctx = (int)o->ctx, .n_batch = r->n_batch, .n_threads = o->threads ? (int)o->threads : ci.n_cores,
                          .kv = o->kv32 ? BN_KV_F32 : BN_KV_F16, .kern = k, .compat = compat};
    if (bn_engine_open(&r->fw, &r->m, &fo, (bn_device)o->device, o->strict, e) < 0) return -1;
    if (r->fw.note[0] && o->device == BN_DEVICE_CUDA) bn_warnx(T, "--device cuda: %s; using the CPU", r->fw.note);
    else if (r->fw.note[0] && o->verbose) bn_warnx(T, "--device auto: %s; using the CPU", r->fw.note);
    r->V = r->m.hp.n_vocab;
    r->logits = malloc((size_t)r->n_batch * r->V * sizeof(float));
    r->prev = malloc((size_t)r->V * sizeof(float));
    if (!r->logits || !r->prev) return bn_errf(e, "out of memory for %d logits rows", r->n_batch);
    char rc[160]; /* with rp, fits receipt[256] (gcc -O1 checks) */
    bn_engine_receipt(&r->fw, rc, sizeof rc);
    char rp[48] = "";
    if (r->m.n_repacked) snprintf(rp, sizeof rp, " repacked=%d tq1_0>tq2_0", r->m.n_repacked);
    snprintf(r->receipt, sizeof r->receipt, "%s act=%s strict=%d weights=%s%s", rc, bn_ffn_act_name(r->m.act), o->strict,
             bn_gguf_copied(*g) ? "copy" : "mmap", rp);
    if (o->dump && bn_logt_writer_new(&r->dump, o->dump, (uint32_t)r->V, e) < 0) return -1;
    return 0;
}

/* Open the frame endpoints and the feedback socket, write the hello. */
static int open_frames(run *r, bn_err *e) {
    const opts *o = r->o;
    bn_conn_opts co = o->co;
    co.peer_name = "upstream (bn-tokenize)";
    if (bn_conn_open_in(&r->in, o->in, &co, e) < 0) return -1;
    co.peer_name = "downstream (bn-sample)";
    if (bn_conn_open_out(&r->out, o->out, &co, e) < 0) return -1;
    bn_frame h;
    bn_frame_init(&h, BN_FRAME_HELLO);
    if (want_feedback(o)) {
        char spec[300];
        if (o->feedback) snprintf(spec, sizeof spec, "%s%s", o->feedback[0] == '@' ? "" : "@", o->feedback);
        else if (bn_conn_temp_ipc(spec + 1, sizeof spec - 1, "feedback", e) < 0) return -1;
        else spec[0] = '@';
        co.peer_name = "bn-sample (feedback)";
        if (bn_conn_open_in(&r->fb, spec, &co, e) < 0) return -1;
        snprintf(h.hello.feedback, sizeof h.hello.feedback, "%s", bn_conn_endpoint(r->fb));
    }
    snprintf(h.hello.stage, sizeof h.hello.stage, "%s", T);
    snprintf(h.hello.vocab_fp, sizeof h.hello.vocab_fp, "%s", r->m.vocab_fp);
    h.hello.n_vocab = (uint32_t)r->V;
    h.hello.bos = r->m.bos;
    h.hello.eos = r->m.eos;
    for (int i = 0; i < r->m.n_eog && i < BN_MAX_EOG; i++) h.hello.eog[h.hello.n_eog++] = r->m.eog[i];
    h.hello.n_ctx = (uint32_t)bn_engine_n_ctx(&r->fw);
    snprintf(h.hello.kernels, sizeof h.hello.kernels, "%s", r->receipt);
    if (put(r, &h, e) < 0 || bn_conn_flush(r->out, e) < 0) return -1;
    return 0;
}

int main(int argc, char **argv) {
    opts o;
    parse(argc, argv, &o);
    bn_ignore_sigpipe();
    run r = {.o = &o};
    bn_gguf *g = NULL;
    bn_err e = {{0}};
    uint64_t t0 = bn_now_ns();
    int rc = setup(&r, &g, &e);
    uint64_t t_load = bn_now_ns() - t0;
    if (rc == 0 && o.ids) {
        rc = ids_mode(&r, &e);
    } else if (rc == 0) {
        rc = open_frames(&r, &e);
        if (rc == 0) rc = timing(&r, "load", t_load, 0, &e);
        if (rc == 0) rc = frame_loop(&r, &e);
        if (rc == 0) {
            bn_frame end;
            bn_frame_init(&end, BN_FRAME_END);
            rc = put(&r, &end, &e);
        }
        if (rc == 0) rc = bn_conn_flush(r.out, &e);
        if (rc == 0) rc = bn_conn_finish(r.out, &e);
    }
    if (rc == 0 && r.dump) { rc = bn_logt_writer_close(r.dump, &e); r.dump = NULL; }
    if (rc < 0) {
        bn_frame ef;
        bn_err ig;
        bn_frame_error(&ef, T, e.msg);
        if (r.out) { bn_conn_write(r.out, &ef, &ig); bn_conn_flush(r.out, &ig); }
        bn_warnx(T, "%s", e.msg);
    }
    if (o.verbose && rc == 0)
        bn_warnx(T, "%s; load %.1f ms; prefill %llu tok %.1f tok/s; decode %llu tok %.1f tok/s", r.receipt, t_load / 1e6,
                 (unsigned long long)r.n_prefill, r.ns_prefill ? r.n_prefill * 1e9 / r.ns_prefill : 0.0,
                 (unsigned long long)r.n_decode, r.ns_decode ? r.n_decode * 1e9 / r.ns_decode : 0.0);
    if (o.profile && rc == 0) print_regions(&r);
    if (r.dump) bn_logt_writer_abort(r.dump);
    if (r.fb) bn_conn_close(r.fb);
    if (r.in) bn_conn_close(r.in);
    if (r.out) bn_conn_close(r.out);
    bn_engine_close(&r.fw);
    bn_model_free(&r.m);
    if (g) bn_gguf_close(g);
    free(r.logits);
    free(r.prev);
    if (o.ids && bn_close_stdout(T) != 0) return 1;
    return rc < 0 ? 1 : 0;
}
