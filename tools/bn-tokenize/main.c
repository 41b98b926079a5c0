/* bn-tokenize - text in, token ids out: a hello frame and a tokens frame
 * (or plain ids with --ids). The tokenizers are in lib/vocab.c, spm.c and
 * bpe.c; chat formats in lib/chat.c. This file is the command line. */
#include <limits.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fetch.h"
#include "chat.h"
#include "cli.h"
#include "frame.h"
#include "transport.h"
#include "vocab.h"

static const char *tool = "bn-tokenize";

/* Print the synopsis and options. */
static void usage(FILE *f) {
    fprintf(f,
        "usage: bn-tokenize -m MODEL [-p TEXT | -f FILE] [options]\n"
        "Tokenize TEXT (or FILE, or stdin). MODEL is a GGUF with a vocabulary or a\n"
        "SentencePiece tokenizer.model. Writes a hello frame and a tokens frame.\n"
        "  -m, --model FILE          GGUF or tokenizer.model\n"
        "  -p, --prompt TEXT         text to tokenize\n"
        "  -f, --file FILE           read the text from FILE (- = stdin)\n"
        "      --ids                 print ids as one line of decimal numbers instead of frames\n"
        "      --no-bos              do not add BOS (nor EOS)\n"
        "      --special             parse special-token texts such as <|eot_id|> in the input\n"
        "      --chat                wrap the text as a user message in the model's chat template\n"
        "      --system TEXT         system message for --chat\n"
        "      --chat-template NAME  llama3, bitnet, bitnet-gguf or llama2 instead of the model's\n"
        "  -e, --escape              process \\n \\t \\\\ \\xHH ... escapes in the text\n"
        "  -o, --out ENDPOINT        where frames go (default - = stdout; tcp://, ipc://, file)\n"
        BN_TRANSPORT_USAGE
        "      --pos N               position of the first token (continue a bn-forward session)\n"
        "      --keep-open           no final END frame: more prompts follow on the same stream (chat)\n"
        "  -h, --help, --version\n");
}

/* The whole input as one buffer (stdin, a file, or -p). */
static char *read_input(const char *prompt, const char *file, size_t *len) {
    if (prompt) {
        *len = strlen(prompt);
        char *s = malloc(*len + 1);
        if (!s) bn_die(tool, 1, "out of memory");
        memcpy(s, prompt, *len + 1);
        return s;
    }
    FILE *f = stdin;
    if (file && strcmp(file, "-") != 0 && !(f = fopen(file, "rb"))) bn_die(tool, 1, "%s: cannot open", file);
    size_t cap = 1 << 16, n = 0;
    char *s = malloc(cap);
    for (;;) {
        if (!s) bn_die(tool, 1, "out of memory");
        size_t k = fread(s + n, 1, cap - n - 1, f);
        n += k;
        if (k == 0) break;
        if (n + 1 == cap) s = realloc(s, cap *= 2);
    }
    if (ferror(f)) bn_die(tool, 1, "%s: read error", file ? file : "stdin");
    if (f != stdin) fclose(f);
    s[n] = 0;
    *len = n;
    return s;
}

/* hello, tokens (split at the frame array cap), timing. */
static void write_frames(const bn_vocab *v, const char *out, bn_conn_opts o, const bn_ids *ids, uint32_t pos0,
                         bool keep_open, uint64_t t0, uint64_t ns) {
    o.peer_name = "downstream";
    bn_conn *c;
    bn_err e;
    if (bn_conn_open_out(&c, out, &o, &e) < 0) bn_die_err(tool, &e);
    bn_frame f;
    bn_frame_init(&f, BN_FRAME_HELLO);
    snprintf(f.hello.stage, sizeof f.hello.stage, "%s", tool);
    snprintf(f.hello.vocab_fp, sizeof f.hello.vocab_fp, "%s", v->fingerprint);
    f.hello.n_vocab = v->n_tokens;
    f.hello.bos = v->bos;
    f.hello.eos = v->eos;
    for (uint32_t i = 0; i < v->n_eog && i < BN_MAX_EOG; i++) f.hello.eog[f.hello.n_eog++] = v->eog[i];
    if (bn_conn_write(c, &f, &e) < 0) bn_die_err(tool, &e);
    size_t pos = 0;
    do {
        size_t k = ids->n - pos > BN_FRAME_MAX_ARRAY ? BN_FRAME_MAX_ARRAY : ids->n - pos;
        bn_frame_tokens(&f, ids->ids + pos, (uint32_t)k, pos0 + (uint32_t)pos);
        if (bn_conn_write(c, &f, &e) < 0) bn_die_err(tool, &e);
        pos += k;
    } while (pos < ids->n);
    bn_frame_timing(&f, tool, "tokenize", ns, ids->n);
    f.t_start_ns = t0;
    if (bn_conn_write(c, &f, &e) < 0) bn_die_err(tool, &e);
    bn_frame_init(&f, BN_FRAME_END); /* over ZeroMQ the reader only knows we are done from this */
    if ((!keep_open && bn_conn_write(c, &f, &e) < 0) || bn_conn_flush(c, &e) < 0) bn_die_err(tool, &e);
    bn_conn_close(c);
}

int main(int argc, char **argv) {
    enum { O_IDS = 256, O_NOBOS, O_SPECIAL, O_CHAT, O_SYSTEM, O_TMPL, O_POS, O_KEEP, O_VERSION };
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'}, {"prompt", required_argument, 0, 'p'},
        {"file", required_argument, 0, 'f'}, {"ids", no_argument, 0, O_IDS},
        {"no-bos", no_argument, 0, O_NOBOS}, {"special", no_argument, 0, O_SPECIAL},
        {"chat", no_argument, 0, O_CHAT}, {"system", required_argument, 0, O_SYSTEM},
        {"chat-template", required_argument, 0, O_TMPL}, {"escape", no_argument, 0, 'e'},
        {"out", required_argument, 0, 'o'}, {"pos", required_argument, 0, O_POS}, {"keep-open", no_argument, 0, O_KEEP}, BN_TRANSPORT_LONGOPTS,
        {"help", no_argument, 0, 'h'}, {"version", no_argument, 0, O_VERSION}, {0, 0, 0, 0}};
    const char *model = NULL, *prompt = NULL, *file = NULL, *system = NULL, *tmpl = NULL, *out = "-";
    bool ids_mode = false, no_bos = false, special = false, chat = false, esc = false;
    long pos0 = 0;
    bool keep_open = false;
    bn_conn_opts co;
    bn_cli_transport_init(tool, &co);
    int c;
    while ((c = getopt_long(argc, argv, "m:p:f:eo:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'p': prompt = optarg; break;
        case 'f': file = optarg; break;
        case 'e': esc = true; break;
        case 'o': out = optarg; break;
        case O_IDS: ids_mode = true; break;
        case O_NOBOS: no_bos = true; break;
        case O_SPECIAL: special = true; break;
        case O_CHAT: chat = true; break;
        case O_SYSTEM: system = optarg; break;
        case O_TMPL: tmpl = optarg; break;
        case O_KEEP: keep_open = true; break;
        case O_POS:
            if (!bn_parse_long(optarg, 0, INT32_MAX, &pos0)) bn_die(tool, 2, "--pos: bad value '%s'", optarg);
            break;
        case 'h': usage(stdout); return 0;
        case O_VERSION: bn_print_version(tool, stdout); return 0;
        default:
            if (!bn_cli_transport_opt(tool, c, optarg, &co)) { usage(stderr); return 2; }
        }
    }
    if (!model || optind < argc || (prompt && file)) { usage(stderr); return 2; }
    if ((system || tmpl) && !chat) bn_die(tool, 2, "--system and --chat-template need --chat");
    bn_ignore_sigpipe();
    bn_err e;
    bn_vocab v;
    char model_path[PATH_MAX]; /* hf:OWNER/REPO[:FILE] -> cached local file */
    if (bn_model_resolve(model, model_path, sizeof model_path, &e) < 0) bn_die_err(tool, &e);
    model = model_path;
    if (bn_vocab_load_file(&v, model, &e) < 0) bn_die_err(tool, &e);
    size_t len;
    char *text = read_input(prompt, file, &len);
    if (esc) len = bn_unescape(text, len);
    bool add_special = !no_bos;
    if (chat) {
        bn_chat_kind k;
        if ((tmpl ? bn_chat_from_name(tmpl, &k, &e) : bn_chat_detect(v.chat_template, &k, &e)) < 0)
            bn_die_err(tool, &e);
        if (memchr(text, 0, len)) bn_die(tool, 1, "input: NUL byte in a chat message");
        bn_chat_msg msgs[2];
        size_t n = 0;
        if (system) msgs[n++] = (bn_chat_msg){"system", system};
        msgs[n++] = (bn_chat_msg){"user", text};
        char *r;
        if (bn_chat_apply(k, &v, msgs, n, true, &r, &e) < 0) bn_die_err(tool, &e);
        free(text);
        text = r;
        len = strlen(r);
        special = true; /* the template's own markers are special tokens */
        size_t bl;
        const char *bt = v.bos >= 0 ? bn_vocab_text(&v, v.bos, &bl) : NULL;
        if (bt && bl && len >= bl && !memcmp(text, bt, bl)) add_special = false; /* BOS is in the text */
    }
    bn_ids ids = {0};
    uint64_t t0 = bn_now_ns();
    if (bn_tokenize(&v, text, len, add_special, special, &ids, &e) < 0) bn_die_err(tool, &e);
    uint64_t ns = bn_now_ns() - t0;
    if (ids_mode) {
        for (size_t i = 0; i < ids.n; i++) printf(i ? " %d" : "%d", ids.ids[i]);
        putchar('\n');
    } else {
        write_frames(&v, out, co, &ids, (uint32_t)pos0, keep_open, t0, ns);
    }
    bn_ids_free(&ids);
    free(text);
    bn_vocab_free(&v);
    return bn_close_stdout(tool);
}
