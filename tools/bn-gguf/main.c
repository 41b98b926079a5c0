/* bn-gguf - inspect and validate GGUF files: info, tensors, meta, validate,
 * check. Parsing, validation and value rendering live in lib/gguf*.c; this
 * file only picks the subcommand and lays the output out. */
#include <limits.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fetch.h"
#include "cli.h"
#include "gguf.h"

static const char *tool = "bn-gguf";

static void usage(FILE *f) {
    fprintf(f,
            "usage: bn-gguf info [--json] FILE\n"
            "       bn-gguf tensors [--json] FILE\n"
            "       bn-gguf meta [--json] [--full] [--llama-log] FILE [KEY]\n"
            "       bn-gguf validate [-s] [-q] FILE...\n"
            "       bn-gguf check [--json] FILE...\n"
            "       bn-gguf --help | --version\n"
            "  -j, --json        JSON output\n"
            "  -f, --full        print arrays completely (meta)\n"
            "  -l, --llama-log   print metadata as llama.cpp's model loader logs it (meta)\n"
            "  -s, --structural  validate: only the GGUF structure, no BitNet model checks\n"
            "  -q, --quiet       validate: print problems only, not 'FILE: ok'\n");
}

static struct { bool json, full, llama, structural, quiet; } opt;

/* Open or die with the reader's one-line message. */
static bn_gguf *open_or_die(const char *path) {
    bn_gguf *g;
    bn_err e;
    if (bn_gguf_open(&g, path, &e)) bn_die_err(tool, &e);
    return g;
}

static void print_json_str(const char *s, size_t n) {
    char *q = bn_gguf_json_quote(s, n);
    fputs(q ? q : "\"\"", stdout);
    free(q);
}

static void shape_str(const bn_gguf_tensor *t, char *buf, size_t n) {
    size_t k = (size_t)snprintf(buf, n, "[");
    for (uint32_t d = 0; d < t->n_dims && k < n; d++)
        k += (size_t)snprintf(buf + k, n - k, "%s%lld", d ? ", " : "", (long long)t->ne[d]);
    if (k < n) snprintf(buf + k, n - k, "]");
}

static void json_num(const char *key, double v, bool comma) {
    printf("\"%s\": ", key);
    if (isfinite(v)) printf("%.9g", v); else printf("null");
    if (comma) printf(", ");
}

static int cmd_info(const char *path) {
    bn_gguf *g = open_or_die(path);
    bn_gguf_summary s;
    bn_gguf_summarize(g, &s);
    uint32_t main_type = 0;
    uint64_t best = 0;
    for (int i = 0; i < s.n_types; i++)
        if (bn_type_traits_get(s.types[i].type)->is_quantized && s.types[i].bytes > best) {
            best = s.types[i].bytes;
            main_type = s.types[i].type;
        }
    char summary[512];
    double mib = (double)bn_gguf_file_size(g) / 1048576.0;
    if (bn_gguf_n_tensors(g) == 0)
        snprintf(summary, sizeof summary, "vocab-only file: %s tokenizer, %llu tokens",
                 s.tokenizer[0] ? s.tokenizer : "no", (unsigned long long)s.n_vocab);
    else
        snprintf(summary, sizeof summary, "%s model, %lld layers, n_embd %lld, %.2f M params, %.2f MiB%s%s",
                 s.arch[0] ? s.arch : "unknown-arch", (long long)s.n_layer, (long long)s.n_embd,
                 (double)s.n_params / 1e6, mib, best ? ", mostly " : "", best ? bn_type_name(main_type) : "");
    const struct { const char *k; int64_t v; } hp[] = {
        {"n_vocab", (int64_t)s.n_vocab}, {"n_ctx_train", s.n_ctx}, {"n_embd", s.n_embd},
        {"n_layer", s.n_layer}, {"n_head", s.n_head}, {"n_head_kv", s.n_head_kv}, {"n_ff", s.n_ff},
        {"n_rot", s.n_rot}, {"file_type", s.file_type}};
    if (opt.json) {
        printf("{\"file\": ");
        print_json_str(path, strlen(path));
        printf(", \"size\": %llu, \"version\": %u, \"alignment\": %u, \"data_offset\": %llu, "
               "\"n_kv\": %llu, \"n_tensors\": %llu, \"arch\": ",
               (unsigned long long)bn_gguf_file_size(g), bn_gguf_version(g), bn_gguf_alignment(g),
               (unsigned long long)bn_gguf_data_offset(g), (unsigned long long)bn_gguf_n_kv(g),
               (unsigned long long)bn_gguf_n_tensors(g));
        print_json_str(s.arch, strlen(s.arch));
        printf(", \"name\": ");
        print_json_str(s.name, strlen(s.name));
        printf(", \"hparams\": {");
        for (size_t i = 0; i < sizeof hp / sizeof hp[0]; i++)
            if (hp[i].v >= 0) printf("\"%s\": %lld, ", hp[i].k, (long long)hp[i].v);
        json_num("rope_freq_base", s.rope_base, true);
        json_num("rms_eps", s.rms_eps, false);
        printf("}, \"tokenizer\": {\"model\": ");
        print_json_str(s.tokenizer, strlen(s.tokenizer));
        printf(", \"pre\": ");
        print_json_str(s.pre, strlen(s.pre));
        printf(", \"n_vocab\": %llu, \"n_merges\": %llu}, \"types\": {", (unsigned long long)s.n_vocab,
               (unsigned long long)s.n_merges);
        for (int i = 0; i < s.n_types; i++)
            printf("%s\"%s\": {\"tensors\": %llu, \"bytes\": %llu}", i ? ", " : "", bn_type_name(s.types[i].type),
                   (unsigned long long)s.types[i].count, (unsigned long long)s.types[i].bytes);
        printf("}, \"n_params\": %llu, \"tensor_bytes\": %llu, \"summary\": ", (unsigned long long)s.n_params,
               (unsigned long long)s.tensor_bytes);
        print_json_str(summary, strlen(summary));
        printf("}\n");
    } else {
        printf("file:        %s\n", path);
        printf("size:        %llu bytes (%.2f MiB)\n", (unsigned long long)bn_gguf_file_size(g), mib);
        printf("gguf:        version %u, %llu kv, %llu tensors, alignment %u, data at %llu\n",
               bn_gguf_version(g), (unsigned long long)bn_gguf_n_kv(g), (unsigned long long)bn_gguf_n_tensors(g),
               bn_gguf_alignment(g), (unsigned long long)bn_gguf_data_offset(g));
        printf("arch:        %s\n", s.arch[0] ? s.arch : "(none)");
        if (s.name[0]) printf("name:        %s\n", s.name);
        printf("hparams:    ");
        for (size_t i = 0; i < sizeof hp / sizeof hp[0]; i++)
            if (hp[i].v >= 0) printf(" %s %lld,", hp[i].k, (long long)hp[i].v);
        if (isfinite(s.rope_base)) printf(" rope_freq_base %g,", s.rope_base);
        if (isfinite(s.rms_eps)) printf(" rms_eps %g", s.rms_eps);
        printf("\n");
        printf("tokenizer:   %s%s%s%s, %llu tokens", s.tokenizer[0] ? s.tokenizer : "(none)",
               s.pre[0] ? " (pre " : "", s.pre, s.pre[0] ? ")" : "", (unsigned long long)s.n_vocab);
        if (s.n_merges) printf(", %llu merges", (unsigned long long)s.n_merges);
        printf("\ntensors:     %llu, %llu bytes, %.2f M params\n", (unsigned long long)bn_gguf_n_tensors(g),
               (unsigned long long)s.tensor_bytes, (double)s.n_params / 1e6);
        printf("types:      ");
        for (int i = 0; i < s.n_types; i++)
            printf(" %s %llu%s", bn_type_name(s.types[i].type), (unsigned long long)s.types[i].count,
                   i + 1 < s.n_types ? "," : "");
        printf("\nsummary:     %s\n", summary);
    }
    bn_gguf_close(g);
    return 0;
}

static int cmd_tensors(const char *path) {
    bn_gguf *g = open_or_die(path);
    char shape[128];
    if (opt.json) printf("[");
    else printf("%-40s %-7s %-24s %12s %12s\n", "NAME", "TYPE", "SHAPE", "OFFSET", "BYTES");
    for (uint64_t i = 0; i < bn_gguf_n_tensors(g); i++) {
        const bn_gguf_tensor *t = bn_gguf_tensor_at(g, i);
        shape_str(t, shape, sizeof shape);
        if (opt.json) {
            printf("%s\n {\"name\": ", i ? "," : "");
            print_json_str(t->name, strlen(t->name));
            printf(", \"type\": \"%s\", \"shape\": %s, \"offset\": %llu, \"file_offset\": %llu, \"bytes\": %llu}",
                   bn_type_name(t->type), shape, (unsigned long long)t->offset,
                   (unsigned long long)(bn_gguf_data_offset(g) + t->offset), (unsigned long long)t->nbytes);
        } else {
            printf("%-40s %-7s %-24s %12llu %12llu\n", t->name, bn_type_name(t->type), shape,
                   (unsigned long long)t->offset, (unsigned long long)t->nbytes);
        }
    }
    if (opt.json) printf("%s]\n", bn_gguf_n_tensors(g) ? "\n" : "");
    bn_gguf_close(g);
    return 0;
}

/* One kv in the selected style; JSON objects carry the full count. */
static void print_kv(const bn_gguf_kv *kv, uint64_t i, bool only_value) {
    char type[64];
    bn_gguf_type_str(kv, type, sizeof type);
    uint64_t max = opt.full ? 0 : 8;
    if (opt.llama) {
        char *v = bn_gguf_value_str(kv, BN_GGUF_FMT_LLAMA, 0);
        printf("llama_model_loader: - kv %3llu: %42.*s %-16s = %s\n", (unsigned long long)i, (int)kv->key.len,
               kv->key.ptr, type, v ? v : "");
        free(v);
        return;
    }
    char *v = bn_gguf_value_str(kv, opt.json ? BN_GGUF_FMT_JSON : BN_GGUF_FMT_TEXT, max);
    if (opt.json) {
        printf("{\"key\": ");
        print_json_str(kv->key.ptr, kv->key.len);
        printf(", \"type\": \"%s\"", bn_gguf_vtype_name(kv->type));
        if (kv->type == BN_GGUF_ARR)
            printf(", \"elem_type\": \"%s\", \"n\": %llu, \"truncated\": %s", bn_gguf_vtype_name(kv->arr_type),
                   (unsigned long long)kv->arr_n, max && kv->arr_n > max ? "true" : "false");
        printf(", \"value\": %s}", v ? v : "null");
    } else if (only_value) {
        if (kv->type == BN_GGUF_STR) fwrite(kv->v.s.ptr, 1, (size_t)kv->v.s.len, stdout);
        else fputs(v ? v : "", stdout);
        putchar('\n');
    } else {
        printf("%-40.*s %-16s = %s\n", (int)kv->key.len, kv->key.ptr, type, v ? v : "");
    }
    free(v);
}

static int cmd_meta(const char *path, const char *key) {
    bn_gguf *g = open_or_die(path);
    if (key) {
        const bn_gguf_kv *kv = bn_gguf_find(g, key);
        if (!kv) bn_die(tool, BN_EXIT_FAIL, "%s: kv '%s': not found", path, key);
        uint64_t i = (uint64_t)(kv - bn_gguf_kv_at(g, 0));
        print_kv(kv, i, true);
        if (opt.json) printf("\n");
        bn_gguf_close(g);
        return 0;
    }
    if (opt.llama)
        printf("llama_model_loader: loaded meta data with %llu key-value pairs and %llu tensors from %s "
               "(version GGUF V%u%s)\n", (unsigned long long)bn_gguf_n_kv(g),
               (unsigned long long)bn_gguf_n_tensors(g), path, bn_gguf_version(g),
               bn_gguf_version(g) == 3 ? " (latest)" : "");
    if (opt.llama)
        printf("llama_model_loader: Dumping metadata keys/values. Note: KV overrides do not apply in this output.\n");
    if (opt.json) printf("{\"file\": "), print_json_str(path, strlen(path)), printf(", \"kv\": [");
    for (uint64_t i = 0; i < bn_gguf_n_kv(g); i++) {
        if (opt.json) printf("%s\n ", i ? "," : "");
        print_kv(bn_gguf_kv_at(g, i), i, false);
    }
    if (opt.json) printf("\n]}\n");
    if (opt.llama) {
        bn_gguf_summary s;
        bn_gguf_summarize(g, &s);
        for (int i = 0; i < s.n_types; i++)
            printf("llama_model_loader: - type %4s: %4llu tensors\n", bn_type_name(s.types[i].type),
                   (unsigned long long)s.types[i].count);
    }
    bn_gguf_close(g);
    return 0;
}

static int cmd_validate(int n, char **files) {
    int bad = 0;
    for (int i = 0; i < n; i++) {
        bn_gguf *g;
        bn_err e;
        if (bn_gguf_open(&g, files[i], &e)) {
            printf("%s\n", e.msg);
            bad++;
            continue;
        }
        char *rep = NULL;
        int problems = opt.structural ? 0 : bn_gguf_validate_model(g, &rep);
        if (problems) fputs(rep ? rep : "", stdout), bad++;
        else if (!opt.quiet) printf("%s: ok\n", files[i]);
        free(rep);
        bn_gguf_close(g);
    }
    return bad ? BN_EXIT_FAIL : BN_EXIT_OK;
}

static int cmd_check(int n, char **files) {
    int bad = 0;
    for (int i = 0; i < n; i++) {
        bn_gguf_header h;
        bn_err e;
        int rc = bn_gguf_check_header(files[i], &h, &e);
        bad += rc != 0;
        if (opt.json) {
            printf("{\"file\": ");
            print_json_str(files[i], strlen(files[i]));
            printf(", \"ok\": %s, \"version\": %u, \"n_tensors\": %llu, \"n_kv\": %llu, \"size\": %llu, \"error\": ",
                   rc ? "false" : "true", h.version, (unsigned long long)h.n_tensors, (unsigned long long)h.n_kv,
                   (unsigned long long)h.file_size);
            if (rc) print_json_str(e.msg, strlen(e.msg)); else printf("null");
            printf("}\n");
        } else if (rc) {
            printf("%s\n", e.msg);
        } else {
            printf("%s: GGUF v%u, %llu tensors, %llu kv, %llu bytes: header ok\n", files[i], h.version,
                   (unsigned long long)h.n_tensors, (unsigned long long)h.n_kv, (unsigned long long)h.file_size);
        }
    }
    return bad ? BN_EXIT_FAIL : BN_EXIT_OK;
}

int main(int argc, char **argv) {
    static const struct option lo[] = {
        {"json", no_argument, 0, 'j'}, {"full", no_argument, 0, 'f'}, {"llama-log", no_argument, 0, 'l'},
        {"structural", no_argument, 0, 's'}, {"quiet", no_argument, 0, 'q'}, {"help", no_argument, 0, 'h'},
        {"version", no_argument, 0, 'V'}, {0, 0, 0, 0}};
    bn_ignore_sigpipe();
    int c;
    /* options may come before or after the subcommand (GNU getopt permutes) */
    while ((c = getopt_long(argc, argv, "jflsqhV", lo, NULL)) != -1) {
        switch (c) {
        case 'j': opt.json = true; break;
        case 'f': opt.full = true; break;
        case 'l': opt.llama = true; break;
        case 's': opt.structural = true; break;
        case 'q': opt.quiet = true; break;
        case 'h': usage(stdout); return bn_close_stdout(tool);
        case 'V': bn_print_version(tool, stdout); return bn_close_stdout(tool);
        default: usage(stderr); return BN_EXIT_USAGE;
        }
    }
    if (optind >= argc) { usage(stderr); return BN_EXIT_USAGE; }
    const char *cmd = argv[optind];
    int nargs = argc - optind - 1;
    char **args = argv + optind + 1;
    for (int i = 0; i < nargs; i++) { /* hf:OWNER/REPO[:FILE] -> cached local file */
        char p[PATH_MAX];
        bn_err e;
        if (bn_model_resolve(args[i], p, sizeof p, &e) < 0) bn_die_err(tool, &e);
        if (strcmp(p, args[i]) != 0 && !(args[i] = strdup(p))) bn_die(tool, 1, "out of memory");
    }
    int rc;
    if (!strcmp(cmd, "info") && nargs == 1) rc = cmd_info(args[0]);
    else if (!strcmp(cmd, "tensors") && nargs == 1) rc = cmd_tensors(args[0]);
    else if (!strcmp(cmd, "meta") && (nargs == 1 || nargs == 2)) rc = cmd_meta(args[0], nargs == 2 ? args[1] : NULL);
    else if (!strcmp(cmd, "validate") && nargs >= 1) rc = cmd_validate(nargs, args);
    else if (!strcmp(cmd, "check") && nargs >= 1) rc = cmd_check(nargs, args);
    else {
        bn_warnx(tool, "%s: unknown command or wrong number of arguments", cmd);
        usage(stderr);
        return BN_EXIT_USAGE;
    }
    int rc2 = bn_close_stdout(tool);
    return rc ? rc : rc2;
}
