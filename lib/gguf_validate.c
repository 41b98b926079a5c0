/* gguf_validate.c - model-level checks for the BitNet archs.
 *
 * The reader has already proven the file is structurally sound; this asks
 * whether bn can run it: hyper-parameters present and consistent, every
 * tensor the graph needs present with the right shape and a type that has a
 * kernel, the tokenizer arrays as long as the vocabulary, I2_S scales sane.
 * It collects every problem (one line each) instead of stopping at the
 * first, so `bn-gguf validate` shows the whole picture at once. */
#include "gguf.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LAYERS 512      /* LLAMA_MAX_LAYERS; above it llama.cpp wrote out of bounds */
#define MAX_REPORT_LINES 200

typedef struct report {
    char *s;
    size_t n, cap;
    int count;
    const char *path;
} report;

static void append(report *r, const char *line) {
    size_t l = strlen(line);
    if (r->n + l + 2 > r->cap) {
        size_t nc = r->cap ? r->cap * 2 : 1024;
        while (nc < r->n + l + 2) nc *= 2;
        char *p = realloc(r->s, nc);
        if (!p) return; /* the count still reports the problem */
        r->s = p;
        r->cap = nc;
    }
    memcpy(r->s + r->n, line, l);
    r->n += l;
    r->s[r->n++] = '\n';
    r->s[r->n] = 0;
}

/* Append "path: msg\n"; after MAX_REPORT_LINES lines only count. */
__attribute__((format(printf, 2, 3))) static void problem(report *r, const char *fmt, ...) {
    r->count++;
    if (r->count > MAX_REPORT_LINES) return;
    char line[600];
    int k = snprintf(line, sizeof line, "%s: ", r->path);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + k, sizeof line - (size_t)k, fmt, ap);
    va_end(ap);
    append(r, line);
}

static bool is_bitnet_arch(const char *a) {
    return !strcmp(a, "bitnet-b1.58") || !strcmp(a, "bitnet") || !strcmp(a, "bitnet-25");
}

/* A required positive integer hparam; 0 when absent or unusable. */
static uint64_t need_u32(const bn_gguf *g, report *r, const char *arch, const char *name, bool required) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, name);
    uint32_t v = 0;
    bn_err e;
    int rc = bn_gguf_get_u32(g, key, &v, &e);
    if (rc == 0) {
        if (required) problem(r, "kv '%s': required key missing", key);
        return 0;
    }
    if (rc < 0) {
        const char *m = strstr(e.msg, ": kv '");
        problem(r, "%s", m ? m + 2 : e.msg);
        return 0;
    }
    if (v == 0) problem(r, "kv '%s': must be positive", key);
    return v;
}

static bool type_in(uint32_t t, const uint32_t *set, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (set[i] == t) return true;
    return false;
}

static const uint32_t linear_types[] = {BN_TYPE_I2_S, BN_TYPE_TQ1_0, BN_TYPE_TQ2_0, BN_TYPE_F16,
                                        BN_TYPE_F32, BN_TYPE_Q8_0, BN_TYPE_Q6_K};
static const uint32_t embd_types[] = {BN_TYPE_F16, BN_TYPE_F32, BN_TYPE_Q8_0, BN_TYPE_Q6_K};
static const uint32_t norm_types[] = {BN_TYPE_F32};

typedef enum { K_NORM, K_LINEAR, K_EMBD } tkind;

/* One required (or optional) tensor: present, shape [a] or [a, b], type. */
static void check_tensor(const bn_gguf *g, report *r, const char *name, tkind kind, int64_t a,
                         int64_t b, bool required, unsigned char *seen) {
    const bn_gguf_tensor *t = bn_gguf_find_tensor(g, name);
    if (!t) {
        if (required) problem(r, "tensor '%s': required tensor missing", name);
        return;
    }
    seen[t - bn_gguf_tensor_at(g, 0)] = 1;
    int64_t want[4] = {a, b > 0 ? b : 1, 1, 1};
    if (a > 0 && memcmp(t->ne, want, sizeof want) != 0) {
        if (b > 0)
            problem(r, "tensor '%s': shape [%lld, %lld, %lld, %lld], expected [%lld, %lld]", name,
                    (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2], (long long)t->ne[3],
                    (long long)a, (long long)b);
        else
            problem(r, "tensor '%s': shape [%lld, %lld, %lld, %lld], expected [%lld]", name,
                    (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2], (long long)t->ne[3],
                    (long long)a);
    }
    bool ok = kind == K_NORM     ? type_in(t->type, norm_types, 1)
              : kind == K_LINEAR ? type_in(t->type, linear_types, sizeof linear_types / 4)
                                 : type_in(t->type, embd_types, sizeof embd_types / 4);
    if (!ok) {
        problem(r, "tensor '%s': type %s is not supported for %s", name, bn_type_name(t->type),
                kind == K_NORM ? "norm weights (f32)"
                : kind == K_LINEAR ? "linear weights (i2_s tq1_0 tq2_0 f16 f32 q8_0 q6_K)"
                                   : "embeddings (f16 f32 q8_0 q6_K)");
        return;
    }
    if (t->type == BN_TYPE_I2_S) {
        uint64_t n = (uint64_t)t->ne[0] * (uint64_t)t->ne[1] * (uint64_t)t->ne[2] * (uint64_t)t->ne[3];
        float s;
        memcpy(&s, t->data + n / 4, 4); /* the trailer lies inside nbytes */
        if (!isfinite(s) || !(s > 0))
            problem(r, "tensor '%s': i2_s scale %g is not finite and positive", name, (double)s);
    }
}

/* Tokenizer: arrays of the declared element types, all of vocab length;
 * special token ids inside the vocabulary. Returns the vocab size (0 if
 * unknown). */
static uint64_t check_tokenizer(const bn_gguf *g, report *r, const char *arch, bool need_tokens) {
    bn_err e;
    const bn_gguf_kv *kv;
    uint64_t n_tok = 0, n;
    int rc = bn_gguf_get_arr(g, "tokenizer.ggml.tokens", BN_GGUF_STR, &kv, &n_tok, &e);
    if (rc < 0) {
        problem(r, "kv 'tokenizer.ggml.tokens': must be an array of str");
        n_tok = 0;
    } else if (rc == 0 && need_tokens) {
        problem(r, "kv 'tokenizer.ggml.tokens': required key missing");
    } else if (rc == 1 && n_tok == 0) {
        problem(r, "kv 'tokenizer.ggml.tokens': empty vocabulary");
    }
    uint64_t vocab = n_tok;
    if (arch[0]) {
        char key[128];
        snprintf(key, sizeof key, "%s.vocab_size", arch);
        uint32_t vs;
        int vr = bn_gguf_get_u32(g, key, &vs, &e);
        if (vr < 0) problem(r, "kv '%s': must be an unsigned integer", key);
        if (vr == 1) {
            if (n_tok && vs != n_tok)
                problem(r, "kv '%s': %u does not match the %llu tokens in tokenizer.ggml.tokens", key,
                        vs, (unsigned long long)n_tok);
            if (!n_tok) vocab = vs;
        }
    }
    static const struct { const char *key; uint32_t type; } arrs[] = {
        {"tokenizer.ggml.scores", BN_GGUF_F32}, {"tokenizer.ggml.token_type", BN_GGUF_I32}};
    for (int i = 0; i < 2; i++) {
        rc = bn_gguf_get_arr(g, arrs[i].key, arrs[i].type, &kv, &n, &e);
        if (rc < 0)
            problem(r, "kv '%s': must be an array of %s", arrs[i].key, bn_gguf_vtype_name(arrs[i].type));
        else if (rc == 1 && n_tok && n != n_tok)
            problem(r, "kv '%s': %llu entries, expected %llu (the vocabulary size)", arrs[i].key,
                    (unsigned long long)n, (unsigned long long)n_tok);
    }
    rc = bn_gguf_get_arr(g, "tokenizer.ggml.merges", BN_GGUF_STR, &kv, &n, &e);
    if (rc < 0) problem(r, "kv 'tokenizer.ggml.merges': must be an array of str");
    const bn_gguf_kv *m = bn_gguf_find(g, "tokenizer.ggml.model");
    if (m && m->type != BN_GGUF_STR) problem(r, "kv 'tokenizer.ggml.model': must be str");
    static const char *const ids[] = {"bos", "eos", "unknown", "padding", "separator", "eot", "eom"};
    for (int i = 0; i < 7; i++) {
        char key[64];
        snprintf(key, sizeof key, "tokenizer.ggml.%s_token_id", ids[i]);
        uint32_t id;
        rc = bn_gguf_get_u32(g, key, &id, &e);
        if (rc < 0) problem(r, "kv '%s': must be an unsigned integer", key);
        else if (rc == 1 && vocab && id >= vocab)
            problem(r, "kv '%s': token id %u is outside the vocabulary (%llu tokens)", key, id,
                    (unsigned long long)vocab);
    }
    return vocab;
}

/* Is this one of the optional per-layer scale tensors of the `bitnet` arch
 * ("blk.N.attn_q.scale", shape [1], f32)? */
static bool is_layer_scale(const bn_gguf_tensor *t) {
    const char *dot = strrchr(t->name, '.');
    return dot && strncmp(t->name, "blk.", 4) == 0 && strcmp(dot, ".scale") == 0 &&
           t->type == BN_TYPE_F32 && t->ne[0] == 1 && t->ne[1] == 1 && t->ne[2] == 1 && t->ne[3] == 1;
}

int bn_gguf_validate_model(const bn_gguf *g, char **out) {
    report r = {0};
    r.path = bn_gguf_path(g);
    *out = NULL;
    char arch[64];
    bn_gguf_arch(g, arch, sizeof arch);
    const bn_gguf_kv *akv = bn_gguf_find(g, "general.architecture");
    uint64_t nt = bn_gguf_n_tensors(g);

    if (akv && akv->type != BN_GGUF_STR) problem(&r, "kv 'general.architecture': must be str");
    if (nt == 0) {
        /* vocab-only file: only the tokenizer matters (any arch) */
        check_tokenizer(g, &r, is_bitnet_arch(arch) ? arch : "", true);
        *out = r.s;
        return r.count;
    }
    if (!akv) {
        problem(&r, "kv 'general.architecture': required key missing");
        *out = r.s;
        return r.count;
    }
    if (!is_bitnet_arch(arch)) {
        problem(&r, "kv 'general.architecture': '%s' is not a BitNet architecture "
                    "(bitnet-b1.58, bitnet, bitnet-25)", arch);
        *out = r.s;
        return r.count;
    }

    int64_t n_embd = (int64_t)need_u32(g, &r, arch, "embedding_length", true);
    int64_t n_layer = (int64_t)need_u32(g, &r, arch, "block_count", true);
    int64_t n_ff = (int64_t)need_u32(g, &r, arch, "feed_forward_length", true);
    int64_t n_head = (int64_t)need_u32(g, &r, arch, "attention.head_count", true);
    int64_t n_head_kv = (int64_t)need_u32(g, &r, arch, "attention.head_count_kv", true);
    need_u32(g, &r, arch, "context_length", true);
    int64_t n_rot = (int64_t)need_u32(g, &r, arch, "rope.dimension_count", false);
    char key[128];
    float f;
    bn_err e;
    snprintf(key, sizeof key, "%s.attention.layer_norm_rms_epsilon", arch);
    int rc = bn_gguf_get_f32(g, key, &f, &e);
    if (rc == 0) problem(&r, "kv '%s': required key missing", key);
    else if (rc < 0) problem(&r, "kv '%s': must be f32", key);
    else if (!isfinite(f) || !(f > 0) || f >= 1) problem(&r, "kv '%s': %g is not in (0, 1)", key, (double)f);
    snprintf(key, sizeof key, "%s.rope.freq_base", arch); /* optional, llama.cpp default 10000 */
    rc = bn_gguf_get_f32(g, key, &f, &e);
    if (rc < 0) problem(&r, "kv '%s': must be f32", key);
    else if (rc == 1 && (!isfinite(f) || !(f > 0))) problem(&r, "kv '%s': %g is not positive", key, (double)f);

    if (n_layer > MAX_LAYERS) {
        problem(&r, "kv '%s.block_count': %lld layers exceed the limit of %d", arch, (long long)n_layer, MAX_LAYERS);
        n_layer = 0;
    }
    int64_t head_dim = 0, n_embd_kv = 0;
    if (n_embd && n_head) {
        if (n_embd % n_head) problem(&r, "kv '%s.attention.head_count': %lld does not divide embedding_length %lld",
                                     arch, (long long)n_head, (long long)n_embd);
        else head_dim = n_embd / n_head;
    }
    if (n_head && n_head_kv) {
        if (n_head_kv > n_head || n_head % n_head_kv)
            problem(&r, "kv '%s.attention.head_count_kv': %lld does not divide head_count %lld (GQA ratio must be an integer)",
                    arch, (long long)n_head_kv, (long long)n_head);
        else if (head_dim)
            n_embd_kv = head_dim * n_head_kv;
    }
    if (head_dim && head_dim % 2) problem(&r, "kv '%s.attention.head_count': head dimension %lld is odd (RoPE needs pairs)",
                                          arch, (long long)head_dim);
    if (head_dim && n_rot && (n_rot > head_dim || n_rot % 2))
        problem(&r, "kv '%s.rope.dimension_count': %lld does not fit the head dimension %lld", arch,
                (long long)n_rot, (long long)head_dim);

    uint64_t vocab = check_tokenizer(g, &r, arch, true);

    unsigned char *seen = calloc(nt, 1);
    if (!seen) {
        problem(&r, "out of memory");
        *out = r.s;
        return r.count;
    }
    int64_t nv = vocab ? (int64_t)vocab : 0;
    check_tensor(g, &r, "token_embd.weight", K_EMBD, n_embd, nv, true, seen);
    check_tensor(g, &r, "output_norm.weight", K_NORM, n_embd, 0, true, seen);
    check_tensor(g, &r, "output.weight", K_EMBD, n_embd, nv, false, seen);
    static const struct { const char *n; tkind k; int a, b; } per_layer[] = {
        /* a/b: 0 n_embd, 1 n_embd_kv, 2 n_ff, -1 none */
        {"attn_norm", K_NORM, 0, -1}, {"attn_q", K_LINEAR, 0, 0}, {"attn_k", K_LINEAR, 0, 1},
        {"attn_v", K_LINEAR, 0, 1}, {"attn_sub_norm", K_NORM, 0, -1}, {"attn_output", K_LINEAR, 0, 0},
        {"ffn_norm", K_NORM, 0, -1}, {"ffn_gate", K_LINEAR, 0, 2}, {"ffn_up", K_LINEAR, 0, 2},
        {"ffn_sub_norm", K_NORM, 2, -1}, {"ffn_down", K_LINEAR, 2, 0},
    };
    int64_t dims[3] = {n_embd, n_embd_kv, n_ff};
    for (int64_t l = 0; l < n_layer; l++) {
        for (size_t i = 0; i < sizeof per_layer / sizeof per_layer[0]; i++) {
            char name[BN_GGUF_MAX_NAME];
            snprintf(name, sizeof name, "blk.%lld.%s.weight", (long long)l, per_layer[i].n);
            int64_t a = dims[per_layer[i].a], b = per_layer[i].b < 0 ? 0 : dims[per_layer[i].b];
            if (per_layer[i].b >= 0 && b == 0) a = 0; /* shape unknown: hparams already reported */
            if (a == 0) b = 0;
            check_tensor(g, &r, name, per_layer[i].k, a, b, true, seen);
        }
    }
    for (uint64_t i = 0; i < nt; i++) {
        const bn_gguf_tensor *t = bn_gguf_tensor_at(g, i);
        if (!seen[i] && !is_layer_scale(t) && n_layer)
            problem(&r, "tensor '%s': unexpected tensor for arch %s", t->name, arch);
    }
    free(seen);
    if (r.count > MAX_REPORT_LINES) {
        char line[600];
        snprintf(line, sizeof line, "%s: ... %d more problems not shown", r.path, r.count - MAX_REPORT_LINES);
        append(&r, line);
    }
    *out = r.s;
    return r.count;
}
