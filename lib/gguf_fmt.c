/* gguf_fmt.c - rendering GGUF metadata as text for the tools: llama.cpp's
 * loader-log style (so our dump can be diffed against llama.cpp's), a
 * readable C-escaped style, and JSON; plus the per-file summary behind
 * `bn-gguf info`. Nothing here prints: everything returns strings or fills
 * structs, the tool decides where they go. */
#include "gguf.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- a growable string ---------------------------------------------------- */

typedef struct sb {
    char *s;
    size_t n, cap;
    bool oom;
} sb;

static void sb_put(sb *b, const char *p, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 64;
        while (nc < b->n + n + 1) nc *= 2;
        char *q = realloc(b->s, nc);
        if (!q) { b->oom = true; return; }
        b->s = q;
        b->cap = nc;
    }
    memcpy(b->s + b->n, p, n);
    b->n += n;
    b->s[b->n] = 0;
}

static void sb_cstr(sb *b, const char *s) { sb_put(b, s, strlen(s)); }

__attribute__((format(printf, 2, 3))) static void sb_printf(sb *b, const char *fmt, ...) {
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (k > 0) sb_put(b, tmp, (size_t)k < sizeof tmp ? (size_t)k : sizeof tmp - 1);
}

static char *sb_done(sb *b) {
    if (b->oom) { free(b->s); return NULL; }
    if (!b->s) sb_put(b, "", 0);
    return b->s;
}

/* ---- escaping ------------------------------------------------------------- */

/* Length of a valid UTF-8 sequence at p (1..4), 0 if invalid (overlongs,
 * surrogates and code points above U+10FFFF are invalid). */
static int utf8_len(const unsigned char *p, uint64_t n) {
    unsigned c = p[0];
    if (c < 0x80) return 1;
    int len;
    uint32_t cp;
    if ((c & 0xe0) == 0xc0) { len = 2; cp = c & 0x1f; }
    else if ((c & 0xf0) == 0xe0) { len = 3; cp = c & 0x0f; }
    else if ((c & 0xf8) == 0xf0) { len = 4; cp = c & 0x07; }
    else return 0;
    if ((uint64_t)len > n) return 0;
    for (int i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    static const uint32_t minv[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < minv[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return len;
}

/* JSON string body: control characters as \u00XX, invalid UTF-8 as U+FFFD. */
static void sb_json_str(sb *b, const char *s, uint64_t len) {
    const unsigned char *p = (const unsigned char *)s;
    sb_put(b, "\"", 1);
    for (uint64_t i = 0; i < len && !b->oom;) {
        unsigned c = p[i];
        if (c == '"') { sb_put(b, "\\\"", 2); i++; }
        else if (c == '\\') { sb_put(b, "\\\\", 2); i++; }
        else if (c == '\n') { sb_put(b, "\\n", 2); i++; }
        else if (c == '\t') { sb_put(b, "\\t", 2); i++; }
        else if (c == '\r') { sb_put(b, "\\r", 2); i++; }
        else if (c < 0x20 || c == 0x7f) { sb_printf(b, "\\u%04x", c); i++; }
        else {
            int l = utf8_len(p + i, len - i);
            if (l == 0) { sb_cstr(b, "\\ufffd"); i++; }
            else { sb_put(b, s + i, (size_t)l); i += (uint64_t)l; }
        }
    }
    sb_put(b, "\"", 1);
}

char *bn_gguf_json_quote(const char *p, uint64_t len) {
    sb b = {0};
    sb_json_str(&b, p, len);
    return sb_done(&b);
}

/* Readable quoting for terminals: C escapes for control bytes, UTF-8 kept. */
static void sb_c_str(sb *b, const char *s, uint64_t len) {
    const unsigned char *p = (const unsigned char *)s;
    sb_put(b, "\"", 1);
    for (uint64_t i = 0; i < len && !b->oom; i++) {
        unsigned c = p[i];
        if (c == '"') sb_put(b, "\\\"", 2);
        else if (c == '\\') sb_put(b, "\\\\", 2);
        else if (c == '\n') sb_put(b, "\\n", 2);
        else if (c == '\t') sb_put(b, "\\t", 2);
        else if (c == '\r') sb_put(b, "\\r", 2);
        else if (c < 0x20 || c == 0x7f) sb_printf(b, "\\x%02x", c);
        else sb_put(b, s + i, 1);
    }
    sb_put(b, "\"", 1);
}

/* ---- values --------------------------------------------------------------- */


/* Shortest %g text that reads back to the same f32/f64 (1e-05, not
 * 9.99999975e-06). */
static void sb_shortest(sb *b, double d, bool single) {
    char tmp[40];
    for (int p = single ? 6 : 15; p <= (single ? 9 : 17); p++) {
        snprintf(tmp, sizeof tmp, "%.*g", p, d);
        if (single ? strtof(tmp, NULL) == (float)d : strtod(tmp, NULL) == d) break;
    }
    sb_cstr(b, tmp);
}

/* One scalar (from a kv or an array element at p) in the given style:
 * LLAMA mimics std::to_string (floats as %f), the others round-trip. */
static void sb_scalar(sb *b, uint32_t t, const uint8_t *p, const bn_gguf_kv *kv, bn_gguf_fmt fmt) {
    uint64_t raw = 0;
    if (p) for (uint32_t i = 0; i < bn_gguf_vtype_size(t); i++) raw |= (uint64_t)p[i] << (8 * i);
    bool json = fmt == BN_GGUF_FMT_JSON;
    switch (t) {
    case BN_GGUF_U8: case BN_GGUF_U16: case BN_GGUF_U32: case BN_GGUF_U64:
        sb_printf(b, "%llu", (unsigned long long)(p ? raw : kv->v.u)); break;
    case BN_GGUF_I8: sb_printf(b, "%lld", p ? (long long)(int8_t)raw : (long long)kv->v.i); break;
    case BN_GGUF_I16: sb_printf(b, "%lld", p ? (long long)(int16_t)raw : (long long)kv->v.i); break;
    case BN_GGUF_I32: sb_printf(b, "%lld", p ? (long long)(int32_t)raw : (long long)kv->v.i); break;
    case BN_GGUF_I64: sb_printf(b, "%lld", p ? (long long)(int64_t)raw : (long long)kv->v.i); break;
    case BN_GGUF_BOOL: sb_cstr(b, (p ? raw : kv->v.u) ? "true" : "false"); break;
    case BN_GGUF_F32: case BN_GGUF_F64: {
        double d;
        if (!p) d = kv->v.f;
        else if (t == BN_GGUF_F32) { uint32_t u = (uint32_t)raw; float f; memcpy(&f, &u, 4); d = f; }
        else memcpy(&d, &raw, 8);
        if (json && !isfinite(d)) sb_cstr(b, "null");
        else if (fmt == BN_GGUF_FMT_LLAMA) sb_printf(b, "%f", d);
        else sb_shortest(b, d, t == BN_GGUF_F32);
        break;
    }
    default: sb_printf(b, "unknown type %u", t); break;
    }
}

static void sb_array(sb *b, const bn_gguf_kv *kv, bn_gguf_fmt fmt, uint64_t max, size_t stop_at);

/* One element of an array: strings are quoted (llama style escapes only \ and
 * "), nested arrays recurse (llama.cpp prints "???" for them). */
static void sb_elem(sb *b, bn_gguf_arr_iter *it, bn_gguf_fmt fmt, uint64_t max, size_t stop_at) {
    if (it->type == BN_GGUF_STR) {
        bn_gguf_str s;
        if (!bn_gguf_arr_next_str(it, &s)) return;
        if (fmt == BN_GGUF_FMT_JSON) sb_json_str(b, s.ptr, s.len);
        else if (fmt == BN_GGUF_FMT_TEXT) sb_c_str(b, s.ptr, s.len);
        else {
            sb_put(b, "\"", 1);
            for (uint64_t i = 0; i < s.len; i++) {
                if (s.ptr[i] == '\\') sb_put(b, "\\\\", 2);
                else if (s.ptr[i] == '"') sb_put(b, "\\\"", 2);
                else sb_put(b, s.ptr + i, 1);
            }
            sb_put(b, "\"", 1);
        }
    } else if (it->type == BN_GGUF_ARR) {
        bn_gguf_kv sub;
        if (!bn_gguf_arr_next_arr(it, &sub)) return;
        if (fmt == BN_GGUF_FMT_LLAMA) sb_cstr(b, "???");
        else sb_array(b, &sub, fmt, max, stop_at);
    } else {
        sb_scalar(b, it->type, it->p, NULL, fmt);
        it->p += bn_gguf_vtype_size(it->type);
        it->i++;
    }
}

static void sb_array(sb *b, const bn_gguf_kv *kv, bn_gguf_fmt fmt, uint64_t max, size_t stop_at) {
    bn_gguf_arr_iter it;
    bn_gguf_arr_iter_init(&it, kv);
    sb_put(b, "[", 1);
    uint64_t n = kv->arr_n;
    for (uint64_t j = 0; j < n && !b->oom; j++) {
        if (max && j == max) {
            if (fmt != BN_GGUF_FMT_JSON) sb_cstr(b, "...");
            break;
        }
        if (stop_at && b->n > stop_at) break; /* the caller only needs a prefix */
        sb_elem(b, &it, fmt, max, stop_at);
        if (j + 1 < n && !(max && j + 1 == max && fmt == BN_GGUF_FMT_JSON)) sb_cstr(b, ", ");
    }
    sb_put(b, "]", 1);
}

char *bn_gguf_value_str(const bn_gguf_kv *kv, bn_gguf_fmt fmt, uint64_t max_elems) {
    sb b = {0};
    if (kv->type == BN_GGUF_STR) {
        if (fmt == BN_GGUF_FMT_JSON) sb_json_str(&b, kv->v.s.ptr, kv->v.s.len);
        else if (fmt == BN_GGUF_FMT_TEXT) sb_c_str(&b, kv->v.s.ptr, kv->v.s.len);
        else sb_put(&b, kv->v.s.ptr, (size_t)(kv->v.s.len > 4096 ? 4096 : kv->v.s.len));
    } else if (kv->type == BN_GGUF_ARR) {
        sb_array(&b, kv, fmt, fmt == BN_GGUF_FMT_LLAMA ? 0 : max_elems,
                 fmt == BN_GGUF_FMT_LLAMA ? 256 : 0);
    } else {
        sb_scalar(&b, kv->type, NULL, kv, fmt);
    }
    char *s = sb_done(&b);
    if (!s || fmt != BN_GGUF_FMT_LLAMA) return s;
    /* llama_model_loader: cut at 40 chars (37 + "..."), then escape newlines */
    sb o = {0};
    size_t n = strlen(s);
    bool cut = n > 40;
    if (cut) n = 37;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\n') sb_put(&o, "\\n", 2);
        else sb_put(&o, s + i, 1);
    }
    if (cut) sb_cstr(&o, "...");
    free(s);
    return sb_done(&o);
}

void bn_gguf_type_str(const bn_gguf_kv *kv, char *buf, size_t n) {
    if (kv->type == BN_GGUF_ARR)
        snprintf(buf, n, "arr[%s,%llu]", bn_gguf_vtype_name(kv->arr_type), (unsigned long long)kv->arr_n);
    else
        snprintf(buf, n, "%s", bn_gguf_vtype_name(kv->type));
}

/* ---- summary -------------------------------------------------------------- */

static void copy_str(const bn_gguf *g, const char *key, char *buf, size_t n) {
    bn_gguf_str s;
    buf[0] = 0;
    if (bn_gguf_get_str(g, key, &s, NULL) != 1) return;
    size_t l = s.len < n - 1 ? (size_t)s.len : n - 1;
    memcpy(buf, s.ptr, l);
    buf[l] = 0;
}

static int64_t hp_int(const bn_gguf *g, const char *arch, const char *name) {
    char key[160];
    snprintf(key, sizeof key, "%s.%s", arch, name);
    uint64_t v;
    return bn_gguf_get_u64(g, key, &v, NULL) == 1 && v <= INT64_MAX ? (int64_t)v : -1;
}

static double hp_f(const bn_gguf *g, const char *arch, const char *name) {
    char key[160];
    snprintf(key, sizeof key, "%s.%s", arch, name);
    float f;
    return bn_gguf_get_f32(g, key, &f, NULL) == 1 ? f : NAN;
}

/* Order MXFP4 where llama.cpp has it (id 39) when sorting the histogram. */
static uint32_t sort_id(uint32_t t) { return t == BN_TYPE_MXFP4 ? 39 : t; }

void bn_gguf_summarize(const bn_gguf *g, bn_gguf_summary *s) {
    memset(s, 0, sizeof *s);
    bn_gguf_arch(g, s->arch, sizeof s->arch);
    copy_str(g, "general.name", s->name, sizeof s->name);
    copy_str(g, "tokenizer.ggml.model", s->tokenizer, sizeof s->tokenizer);
    copy_str(g, "tokenizer.ggml.pre", s->pre, sizeof s->pre);
    uint64_t n;
    if (bn_gguf_get_arr(g, "tokenizer.ggml.tokens", BN_GGUF_STR, NULL, &n, NULL) == 1) s->n_vocab = n;
    else if (s->arch[0] && hp_int(g, s->arch, "vocab_size") > 0) s->n_vocab = (uint64_t)hp_int(g, s->arch, "vocab_size");
    if (bn_gguf_get_arr(g, "tokenizer.ggml.merges", BN_GGUF_STR, NULL, &n, NULL) == 1) s->n_merges = n;
    s->n_ctx = hp_int(g, s->arch, "context_length");
    s->n_embd = hp_int(g, s->arch, "embedding_length");
    s->n_layer = hp_int(g, s->arch, "block_count");
    s->n_head = hp_int(g, s->arch, "attention.head_count");
    s->n_head_kv = hp_int(g, s->arch, "attention.head_count_kv");
    s->n_ff = hp_int(g, s->arch, "feed_forward_length");
    s->n_rot = hp_int(g, s->arch, "rope.dimension_count");
    s->rope_base = hp_f(g, s->arch, "rope.freq_base");
    s->rms_eps = hp_f(g, s->arch, "attention.layer_norm_rms_epsilon");
    uint32_t ft;
    s->file_type = bn_gguf_get_u32(g, "general.file_type", &ft, NULL) == 1 ? (int64_t)ft : -1;
    for (uint64_t i = 0; i < bn_gguf_n_tensors(g); i++) {
        const bn_gguf_tensor *t = bn_gguf_tensor_at(g, i);
        s->n_params += (uint64_t)(t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]);
        s->tensor_bytes += t->nbytes;
        int k;
        for (k = 0; k < s->n_types && s->types[k].type != t->type; k++) {}
        if (k == s->n_types) {
            if (s->n_types == BN_GGUF_MAX_TYPES) continue;
            s->types[k].type = t->type;
            s->n_types++;
        }
        s->types[k].count++;
        s->types[k].bytes += t->nbytes;
    }
    for (int a = 1; a < s->n_types; a++) /* insertion sort by ggml id */
        for (int b = a; b > 0 && sort_id(s->types[b - 1].type) > sort_id(s->types[b].type); b--) {
            __typeof__(s->types[0]) tmp = s->types[b];
            s->types[b] = s->types[b - 1];
            s->types[b - 1] = tmp;
        }
}
