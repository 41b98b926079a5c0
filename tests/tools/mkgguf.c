/* mkgguf - writes hand-made GGUF files for the tests: dozens of corrupt ones
 * (each broken in exactly one way, mirroring llama.cpp's test-gguf.cpp and the
 * GGUF CVE list in docs/conventions.md §3) and a few valid ones, so the tests
 * never need ../shared.
 *
 *   mkgguf DIR             write every case into DIR (NAME.gguf)
 *   mkgguf --list          print the case names
 *   mkgguf --copy IN OUT   re-write IN through the library writer (ref tests
 *                          compare the copy byte for byte with the original)
 *
 * Structural cases are built byte by byte (the writer refuses to produce
 * them); model-level cases are written with bn_gguf_writer and one knob
 * turned. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"

/* ---- byte builder --------------------------------------------------------- */

typedef struct buf {
    uint8_t *p;
    size_t n, cap;
} buf;

static void put(buf *b, const void *d, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 256;
        b->p = realloc(b->p, b->cap);
        if (!b->p) { perror("mkgguf"); exit(1); }
    }
    if (n) memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void le(buf *b, uint64_t v, int n) {
    uint8_t x[8];
    for (int i = 0; i < n; i++) x[i] = (uint8_t)(v >> (8 * i));
    put(b, x, (size_t)n);
}
static void u8(buf *b, uint8_t v) { le(b, v, 1); }
static void u32(buf *b, uint32_t v) { le(b, v, 4); }
static void u64(buf *b, uint64_t v) { le(b, v, 8); }
static void str(buf *b, const char *s) { u64(b, strlen(s)); put(b, s, strlen(s)); }
static void hdr(buf *b, uint32_t version, uint64_t nt, uint64_t nkv) {
    put(b, "GGUF", 4);
    u32(b, version);
    u64(b, nt);
    u64(b, nkv);
}
static void kv_u32(buf *b, const char *k, uint32_t v) { str(b, k); u32(b, BN_GGUF_U32); u32(b, v); }
static void kv_str(buf *b, const char *k, const char *v) { str(b, k); u32(b, BN_GGUF_STR); str(b, v); }
static void tinfo(buf *b, const char *name, uint32_t nd, const int64_t *ne, uint32_t type, uint64_t off) {
    str(b, name);
    u32(b, nd);
    for (uint32_t i = 0; i < nd; i++) u64(b, (uint64_t)ne[i]);
    u32(b, type);
    u64(b, off);
}
static void pad(buf *b, size_t a) { while (b->n % a) u8(b, 0); }
static void zeros(buf *b, size_t n) { for (size_t i = 0; i < n; i++) u8(b, 0); }

/* The structural base: 2 kvs and two f32 tensors [8] and [4, 2] at 0 and 32. */
static void base_kvs(buf *b) {
    kv_str(b, "general.architecture", "test");
    kv_u32(b, "test.value", 7);
}
static void base_file(buf *b, uint32_t version) {
    hdr(b, version, 2, 2);
    base_kvs(b);
    tinfo(b, "a", 1, (int64_t[]){8}, BN_TYPE_F32, 0);
    tinfo(b, "b", 2, (int64_t[]){4, 2}, BN_TYPE_F32, 32);
    pad(b, 32);
    zeros(b, 64);
}

/* One tensor with the given info after the base kvs, then `data` bytes. */
static void one_tensor(buf *b, const char *name, uint32_t nd, const int64_t *ne, uint32_t type,
                       uint64_t off, size_t data) {
    hdr(b, 3, 1, 2);
    base_kvs(b);
    tinfo(b, name, nd, ne, type, off);
    pad(b, 32);
    zeros(b, data);
}

/* A file whose only kv holds the given raw value bytes after key and type. */
static void one_kv_raw(buf *b, uint32_t type, const buf *val) {
    hdr(b, 3, 0, 1);
    str(b, "k");
    u32(b, type);
    put(b, val->p, val->n);
}

/* ---- structural cases ----------------------------------------------------- */

typedef void (*mkfn)(buf *b);

static void c_empty(buf *b) { (void)b; }
static void c_bad_magic(buf *b) { base_file(b, 3); memcpy(b->p, "GGML", 4); }
static void c_version_1(buf *b) { base_file(b, 1); }
static void c_version_future(buf *b) { base_file(b, 4); }
static void c_big_endian(buf *b) { base_file(b, 0x03000000u); }
static void c_trunc_header(buf *b) { base_file(b, 3); b->n = 14; }
static void c_huge_n_tensors(buf *b) { base_file(b, 3); memset(b->p + 8, 0xff, 7); }
static void c_huge_n_kv(buf *b) { base_file(b, 3); memset(b->p + 16, 0xff, 7); }
static void c_kv_count_lies(buf *b) { hdr(b, 3, 0, 3); base_kvs(b); }
static void c_trunc_key(buf *b) { hdr(b, 3, 0, 1); u64(b, 20); put(b, "general.arch", 12); }
static void c_trunc_value(buf *b) { hdr(b, 3, 0, 1); str(b, "k"); u32(b, BN_GGUF_U64); u32(b, 1); }
static void c_huge_key_len(buf *b) { hdr(b, 3, 0, 1); u64(b, 1ull << 62); put(b, "abc", 3); zeros(b, 40); }
static void c_huge_string_len(buf *b) {
    hdr(b, 3, 0, 1); str(b, "k"); u32(b, BN_GGUF_STR); u64(b, UINT64_MAX); put(b, "abc", 3);
}
static void c_bad_value_type(buf *b) { hdr(b, 3, 0, 1); str(b, "k"); u32(b, 13); u32(b, 0); }
static void c_array_count_overflow(buf *b) {
    buf v = {0}; u32(&v, BN_GGUF_U32); u64(&v, 1ull << 62); u32(&v, 1); one_kv_raw(b, BN_GGUF_ARR, &v); free(v.p);
}
static void c_array_str_count(buf *b) {
    buf v = {0}; u32(&v, BN_GGUF_STR); u64(&v, 1ull << 40); str(&v, "x"); one_kv_raw(b, BN_GGUF_ARR, &v); free(v.p);
}
static void c_array_str_past_end(buf *b) {
    buf v = {0}; u32(&v, BN_GGUF_STR); u64(&v, 2); str(&v, "x"); u64(&v, 100); put(&v, "yz", 2);
    one_kv_raw(b, BN_GGUF_ARR, &v); free(v.p);
}
static void c_bad_array_type(buf *b) {
    buf v = {0}; u32(&v, 99); u64(&v, 1); u32(&v, 0); one_kv_raw(b, BN_GGUF_ARR, &v); free(v.p);
}
static void c_bad_nested_type(buf *b) {
    buf v = {0}; u32(&v, BN_GGUF_ARR); u64(&v, 2);
    u32(&v, BN_GGUF_U8); u64(&v, 1); u8(&v, 1);
    u32(&v, 77); u64(&v, 1); u32(&v, 0);
    one_kv_raw(b, BN_GGUF_ARR, &v); free(v.p);
}
static void c_nested_too_deep(buf *b) {
    buf v = {0};
    for (int i = 0; i < 12; i++) { u32(&v, BN_GGUF_ARR); u64(&v, 1); }
    u32(&v, BN_GGUF_U8); u64(&v, 1); u8(&v, 1);
    one_kv_raw(b, BN_GGUF_ARR, &v); free(v.p);
}
static void c_nested_count_huge(buf *b) {
    buf v = {0}; u32(&v, BN_GGUF_ARR); u64(&v, UINT64_MAX / 2); u32(&v, BN_GGUF_U8); u64(&v, 0);
    one_kv_raw(b, BN_GGUF_ARR, &v); free(v.p);
}
static void c_duplicate_key(buf *b) { hdr(b, 3, 0, 3); base_kvs(b); kv_u32(b, "test.value", 8); }
static void c_empty_key(buf *b) { hdr(b, 3, 0, 1); kv_u32(b, "", 1); }
static void c_align_type(buf *b) {
    hdr(b, 3, 0, 1); str(b, "general.alignment"); u32(b, BN_GGUF_I32); u32(b, 64);
}
static void c_align_u64(buf *b) {
    hdr(b, 3, 0, 1); str(b, "general.alignment"); u32(b, BN_GGUF_U64); u64(b, 64);
}
static void c_align_pow2(buf *b) { hdr(b, 3, 0, 1); kv_u32(b, "general.alignment", 48); }
static void c_align_zero(buf *b) { hdr(b, 3, 0, 1); kv_u32(b, "general.alignment", 0); }
static void c_name_too_long(buf *b) {
    char n[65];
    memset(n, 'x', 64);
    n[64] = 0;
    one_tensor(b, n, 1, (int64_t[]){8}, BN_TYPE_F32, 0, 32);
}
static void c_empty_name(buf *b) { one_tensor(b, "", 1, (int64_t[]){8}, BN_TYPE_F32, 0, 32); }
static void c_name_nul(buf *b) {
    hdr(b, 3, 1, 2); base_kvs(b);
    u64(b, 3); put(b, "a\0b", 3); u32(b, 1); u64(b, 8); u32(b, BN_TYPE_F32); u64(b, 0);
    pad(b, 32); zeros(b, 32);
}
static void c_dup_tensor(buf *b) {
    hdr(b, 3, 2, 2); base_kvs(b);
    tinfo(b, "a", 1, (int64_t[]){8}, BN_TYPE_F32, 0);
    tinfo(b, "a", 1, (int64_t[]){8}, BN_TYPE_F32, 32);
    pad(b, 32); zeros(b, 64);
}
static void c_n_dims_5(buf *b) { one_tensor(b, "a", 5, (int64_t[]){2, 2, 2, 1, 1}, BN_TYPE_F32, 0, 32); }
static void c_n_dims_0(buf *b) { one_tensor(b, "a", 0, NULL, BN_TYPE_F32, 0, 32); }
static void c_zero_dim(buf *b) { one_tensor(b, "a", 2, (int64_t[]){8, 0}, BN_TYPE_F32, 0, 32); }
static void c_negative_dim(buf *b) { one_tensor(b, "a", 2, (int64_t[]){-8, 2}, BN_TYPE_F32, 0, 32); }
static void c_ne_overflow(buf *b) {
    one_tensor(b, "a", 3, (int64_t[]){1ll << 31, 1ll << 31, 1ll << 2}, BN_TYPE_F32, 0, 32);
}
static void c_bytes_overflow(buf *b) { one_tensor(b, "a", 2, (int64_t[]){1ll << 61, 2}, BN_TYPE_F64, 0, 32); }
static void c_unknown_type(buf *b) { one_tensor(b, "a", 1, (int64_t[]){8}, 40, 0, 32); }
static void c_removed_type(buf *b) { one_tensor(b, "a", 1, (int64_t[]){32}, 4, 0, 32); }
static void c_block_multiple(buf *b) { one_tensor(b, "a", 2, (int64_t[]){33, 2}, BN_TYPE_Q8_0, 0, 96); }
static void c_tq2_block(buf *b) { one_tensor(b, "a", 2, (int64_t[]){128, 2}, BN_TYPE_TQ2_0, 0, 160); }
static void c_i2s_block(buf *b) { one_tensor(b, "a", 2, (int64_t[]){96, 2}, BN_TYPE_I2_S, 0, 96); }
static void c_tl2_small(buf *b) {
    hdr(b, 3, 1, 1); kv_str(b, "general.architecture", "bitnet-b1.58");
    tinfo(b, "a", 2, (int64_t[]){128, 4}, BN_TYPE_TL2, 0);
    pad(b, 32); zeros(b, 256);
}
static void c_offset_misaligned(buf *b) { one_tensor(b, "a", 1, (int64_t[]){8}, BN_TYPE_F32, 4, 64); }
static void c_offset_past_end(buf *b) { one_tensor(b, "a", 1, (int64_t[]){8}, BN_TYPE_F32, 1ull << 40, 64); }
static void c_offset_wraps(buf *b) { one_tensor(b, "a", 1, (int64_t[]){8}, BN_TYPE_F32, UINT64_MAX - 31, 64); }
static void c_overlap(buf *b) {
    hdr(b, 3, 2, 2); base_kvs(b);
    tinfo(b, "a", 1, (int64_t[]){16}, BN_TYPE_F32, 0);
    tinfo(b, "b", 1, (int64_t[]){8}, BN_TYPE_F32, 32);
    pad(b, 32); zeros(b, 96);
}
static void c_data_past_end(buf *b) { base_file(b, 3); b->n -= 8; }
static void c_trunc_tensor_info(buf *b) {
    hdr(b, 3, 1, 2); base_kvs(b);
    str(b, "a"); u32(b, 2); u64(b, 8);
}
static void c_trunc_tensor_name(buf *b) { hdr(b, 3, 1, 2); base_kvs(b); u64(b, 40); put(b, "abc", 3); }

/* ---- valid structural files ----------------------------------------------- */

static void v_v2(buf *b) { base_file(b, 2); }
static void v_no_tensors(buf *b) { hdr(b, 3, 0, 2); base_kvs(b); }
static void v_align64(buf *b) {
    hdr(b, 3, 2, 1); kv_u32(b, "general.alignment", 64);
    tinfo(b, "a", 1, (int64_t[]){8}, BN_TYPE_F32, 0);
    tinfo(b, "b", 2, (int64_t[]){32, 1}, BN_TYPE_Q8_0, 64);
    pad(b, 64); zeros(b, 64 + 34); pad(b, 64);
}
static void v_nested(buf *b) {
    hdr(b, 3, 0, 3);
    str(b, "nested"); u32(b, BN_GGUF_ARR); u32(b, BN_GGUF_ARR); u64(b, 2);
    u32(b, BN_GGUF_STR); u64(b, 2); str(b, "x"); str(b, "\xff\n\"q\"");
    u32(b, BN_GGUF_F64); u64(b, 1); u64(b, 0x7ff8000000000000ull); /* NaN: JSON must say null */
    str(b, "u8s"); u32(b, BN_GGUF_ARR); u32(b, BN_GGUF_U8); u64(b, 3); u8(b, 1); u8(b, 2); u8(b, 255);
    str(b, "tab\tkey"); u32(b, BN_GGUF_BOOL); u8(b, 1);
}
static void v_every_type(buf *b) {
    hdr(b, 3, 1, 12);
    static const uint32_t ts[] = {BN_GGUF_U8, BN_GGUF_I8, BN_GGUF_U16, BN_GGUF_I16, BN_GGUF_U32,
                                  BN_GGUF_I32, BN_GGUF_F32, BN_GGUF_BOOL, BN_GGUF_U64, BN_GGUF_I64,
                                  BN_GGUF_F64};
    static const int sz[] = {1, 1, 2, 2, 4, 4, 4, 1, 8, 8, 8};
    for (int i = 0; i < 11; i++) {
        char k[16];
        snprintf(k, sizeof k, "k.%s", bn_gguf_vtype_name(ts[i]));
        str(b, k);
        u32(b, ts[i]);
        le(b, ts[i] == BN_GGUF_F32 ? 0x3e800000u : ts[i] == BN_GGUF_F64 ? 0xbff8000000000000ull : 1, sz[i]);
    }
    kv_str(b, "k.str", "hello");
    tinfo(b, "q", 2, (int64_t[]){256, 1}, BN_TYPE_Q6_K, 0);
    pad(b, 32); zeros(b, 224);
}

/* ---- model-level files (through the writer) -------------------------------- */

typedef struct mcfg {
    const char *arch;
    int n_embd, n_head, n_head_kv, n_ff, n_layer, n_vocab;
    uint32_t lin_type, embd_type;
    const char *skip_tensor;    /* leave this one out */
    const char *bad_shape;      /* declare this one with ne1 halved */
    const char *odd_type;       /* declare this one as bf16 */
    const char *skip_key;       /* leave this hparam suffix out */
    uint32_t block_count_kv;    /* 0: n_layer */
    int scores_n;               /* 0: n_vocab */
    uint32_t vocab_size_kv;     /* 0: n_vocab */
    uint32_t bos;
    float eps, i2s_scale;
    bool output, layer_scales, extra_tensor, tokens_as_i32, vocab_only;
} mcfg;

static mcfg default_model(void) {
    mcfg m = {"bitnet-b1.58", 128, 4, 2, 128, 1, 16, BN_TYPE_I2_S, BN_TYPE_F16, 0, 0, 0, 0, 0, 0, 0, 1,
              1e-5f, 0.0625f, false, false, false, false, false};
    return m;
}

static int wdie(bn_gguf_writer *w, const bn_err *e) {
    fprintf(stderr, "mkgguf: %s\n", e->msg);
    if (w) bn_gguf_writer_abort(w);
    return -1;
}

/* Fill one tensor's bytes: norms 1.0, f16 ones, quantized patterns; I2_S
 * gets its scale in the trailer. */
static int put_tensor_data(bn_gguf_writer *w, int idx, uint32_t type, int64_t n, uint64_t nbytes,
                           const mcfg *m, bn_err *e) {
    uint8_t *d = calloc(1, nbytes);
    if (!d) return -1;
    if (type == BN_TYPE_F32) for (int64_t i = 0; i < n; i++) { float one = 1.0f; memcpy(d + 4 * i, &one, 4); }
    else if (type == BN_TYPE_F16 || type == BN_TYPE_BF16) for (int64_t i = 0; i < n; i++) { d[2 * i + 1] = type == BN_TYPE_F16 ? 0x3c : 0x3f; d[2 * i] = type == BN_TYPE_F16 ? 0 : 0x80; }
    else for (uint64_t i = 0; i < nbytes; i++) d[i] = (uint8_t)(0x59 + i * 37);
    if (type == BN_TYPE_I2_S) {
        memset(d + n / 4, 0, 32);
        memcpy(d + n / 4, &m->i2s_scale, 4);
    }
    int rc = bn_gguf_w_data(w, idx, d, nbytes, e);
    free(d);
    return rc;
}

static int write_model(const char *path, const mcfg *m) {
    bn_err e;
    bn_gguf_writer *w;
    if (bn_gguf_writer_new(&w, path, &e)) return wdie(NULL, &e);
    char key[128];
    int rc = 0;
    if (m->arch) rc |= bn_gguf_w_str(w, "general.architecture", m->arch, &e);
    rc |= bn_gguf_w_str(w, "general.name", "mkgguf tiny", &e);
    const char *ar = m->arch ? m->arch : "bitnet-b1.58";
    if (!m->vocab_only) {
        struct { const char *k; uint32_t v; } hp[] = {
            {"context_length", 256}, {"embedding_length", (uint32_t)m->n_embd},
            {"block_count", m->block_count_kv ? m->block_count_kv : (uint32_t)m->n_layer},
            {"feed_forward_length", (uint32_t)m->n_ff}, {"attention.head_count", (uint32_t)m->n_head},
            {"attention.head_count_kv", (uint32_t)m->n_head_kv},
            {"rope.dimension_count", (uint32_t)(m->n_embd / m->n_head)},
            {"vocab_size", m->vocab_size_kv ? m->vocab_size_kv : (uint32_t)m->n_vocab}};
        for (size_t i = 0; i < sizeof hp / sizeof hp[0]; i++) {
            if (m->skip_key && !strcmp(m->skip_key, hp[i].k)) continue;
            snprintf(key, sizeof key, "%s.%s", ar, hp[i].k);
            rc |= bn_gguf_w_u32(w, key, hp[i].v, &e);
        }
        snprintf(key, sizeof key, "%s.attention.layer_norm_rms_epsilon", ar);
        rc |= bn_gguf_w_f32(w, key, m->eps, &e);
        snprintf(key, sizeof key, "%s.rope.freq_base", ar);
        rc |= bn_gguf_w_f32(w, key, 500000.0f, &e);
    }
    rc |= bn_gguf_w_str(w, "tokenizer.ggml.model", "llama", &e);
    bn_gguf_str toks[64];
    char tokbuf[64][16];
    float scores[64];
    int32_t types[64];
    for (int i = 0; i < m->n_vocab; i++) {
        snprintf(tokbuf[i], sizeof tokbuf[i], "t%d", i);
        toks[i].ptr = tokbuf[i];
        toks[i].len = strlen(tokbuf[i]);
        scores[i] = (float)-i;
        types[i] = 1;
    }
    if (m->tokens_as_i32) rc |= bn_gguf_w_arr_i32(w, "tokenizer.ggml.tokens", types, (uint64_t)m->n_vocab, &e);
    else rc |= bn_gguf_w_arr_str(w, "tokenizer.ggml.tokens", toks, (uint64_t)m->n_vocab, &e);
    rc |= bn_gguf_w_arr_f32(w, "tokenizer.ggml.scores", scores, (uint64_t)(m->scores_n ? m->scores_n : m->n_vocab), &e);
    rc |= bn_gguf_w_arr_i32(w, "tokenizer.ggml.token_type", types, (uint64_t)m->n_vocab, &e);
    rc |= bn_gguf_w_u32(w, "tokenizer.ggml.bos_token_id", m->bos, &e);
    if (rc) return wdie(w, &e);

    struct { char name[64]; uint32_t type; int nd; int64_t ne[2]; } t[64];
    int nt = 0;
#define ADD(NAME, TYPE, ND, A, B) do { snprintf(t[nt].name, 64, "%s", NAME); t[nt].type = TYPE; \
        t[nt].nd = ND; t[nt].ne[0] = A; t[nt].ne[1] = B; nt++; } while (0)
    if (!m->vocab_only) {
        int E = m->n_embd, F = m->n_ff, KV = m->n_embd / m->n_head * m->n_head_kv;
        ADD("token_embd.weight", m->embd_type, 2, E, m->n_vocab);
        ADD("output_norm.weight", BN_TYPE_F32, 1, E, 1);
        if (m->output) ADD("output.weight", m->embd_type, 2, E, m->n_vocab);
        for (int l = 0; l < m->n_layer; l++) {
            char n[64];
#define L(SUF, TYPE, ND, A, B) do { snprintf(n, sizeof n, "blk.%d.%s", l, SUF); ADD(n, TYPE, ND, A, B); } while (0)
            L("attn_norm.weight", BN_TYPE_F32, 1, E, 1);
            L("attn_q.weight", m->lin_type, 2, E, E);
            L("attn_k.weight", m->lin_type, 2, E, KV);
            L("attn_v.weight", m->lin_type, 2, E, KV);
            L("attn_sub_norm.weight", BN_TYPE_F32, 1, E, 1);
            L("attn_output.weight", m->lin_type, 2, E, E);
            L("ffn_norm.weight", BN_TYPE_F32, 1, E, 1);
            L("ffn_gate.weight", m->lin_type, 2, E, F);
            L("ffn_up.weight", m->lin_type, 2, E, F);
            L("ffn_sub_norm.weight", BN_TYPE_F32, 1, F, 1);
            L("ffn_down.weight", m->lin_type, 2, F, E);
            if (m->layer_scales) L("attn_q.scale", BN_TYPE_F32, 1, 1, 1);
        }
        if (m->extra_tensor) ADD("rope_freqs.weight", BN_TYPE_F32, 1, 16, 1);
    }
    int idx[64], ni = 0;
    int64_t nel[64];
    uint64_t nb[64];
    uint32_t ty[64];
    for (int i = 0; i < nt; i++) {
        if (m->skip_tensor && !strcmp(m->skip_tensor, t[i].name)) continue;
        if (m->bad_shape && !strcmp(m->bad_shape, t[i].name)) t[i].ne[1] /= 2;
        if (m->odd_type && !strcmp(m->odd_type, t[i].name)) t[i].type = BN_TYPE_BF16;
        idx[ni] = bn_gguf_w_tensor(w, t[i].name, t[i].type, (uint32_t)t[i].nd, t[i].ne, &e);
        if (idx[ni] < 0) return wdie(NULL, &e);
        nel[ni] = t[i].ne[0] * (t[i].nd > 1 ? t[i].ne[1] : 1);
        ty[ni] = t[i].type;
        int64_t ne4[4] = {t[i].ne[0], t[i].nd > 1 ? t[i].ne[1] : 1, 1, 1};
        bn_type_nbytes(t[i].type, ne4, (uint32_t)t[i].nd, &nb[ni], &e);
        ni++;
    }
    for (int i = 0; i < ni; i++)
        if (put_tensor_data(w, idx[i], ty[i], nel[i], nb[i], m, &e)) return wdie(NULL, &e);
    if (bn_gguf_writer_finish(w, &e)) return wdie(NULL, &e);
    return 0;
}

/* ---- the case table --------------------------------------------------------- */

typedef struct mcase {
    const char *name;
    mkfn fn;               /* hand-built bytes, or */
    void (*mod)(mcfg *m);  /* a tweak of the default model */
} mcase;

static void m_valid(mcfg *m) { (void)m; }
static void m_valid_tq2(mcfg *m) { m->arch = "bitnet"; m->n_embd = 256; m->n_ff = 256; m->lin_type = BN_TYPE_TQ2_0; }
static void m_valid_f16(mcfg *m) { m->arch = "bitnet-25"; m->lin_type = BN_TYPE_F16; m->embd_type = BN_TYPE_F32; m->output = true; m->layer_scales = true; }
static void m_vocab_only(mcfg *m) { m->vocab_only = true; }
static void m_missing_tensor(mcfg *m) { m->skip_tensor = "blk.0.ffn_up.weight"; }
static void m_missing_embd(mcfg *m) { m->skip_tensor = "token_embd.weight"; }
static void m_bad_shape(mcfg *m) { m->bad_shape = "blk.0.attn_k.weight"; }
static void m_bad_type(mcfg *m) { m->odd_type = "blk.0.attn_q.weight"; }
static void m_bad_norm_type(mcfg *m) { m->odd_type = "blk.0.ffn_norm.weight"; }
static void m_missing_hparam(mcfg *m) { m->skip_key = "feed_forward_length"; }
static void m_missing_ctx(mcfg *m) { m->skip_key = "context_length"; }
static void m_head_divide(mcfg *m) { m->n_head = 3; m->n_head_kv = 1; m->n_embd = 128; }
static void m_gqa(mcfg *m) { m->n_head = 4; m->n_head_kv = 3; }
static void m_scores_len(mcfg *m) { m->scores_n = 15; }
static void m_vocab_size_kv(mcfg *m) { m->vocab_size_kv = 20; }
static void m_scale_nan(mcfg *m) { m->i2s_scale = NAN; }
static void m_scale_zero(mcfg *m) { m->i2s_scale = 0.0f; }
static void m_scale_neg(mcfg *m) { m->i2s_scale = -1.0f; }
static void m_not_bitnet(mcfg *m) { m->arch = "llama"; }
static void m_no_arch(mcfg *m) { m->arch = NULL; }
static void m_too_many_layers(mcfg *m) { m->block_count_kv = 100000; }
static void m_extra_tensor(mcfg *m) { m->extra_tensor = true; }
static void m_bos_range(mcfg *m) { m->bos = 16; }
static void m_eps(mcfg *m) { m->eps = -1.0f; }
static void m_tokens_type(mcfg *m) { m->tokens_as_i32 = true; }
static void m_embd_type(mcfg *m) { m->embd_type = BN_TYPE_TQ2_0; m->n_embd = 256; m->n_ff = 256; m->lin_type = BN_TYPE_TQ2_0; }

static const mcase cases[] = {
    {"bad-empty", c_empty, 0}, {"bad-magic", c_bad_magic, 0}, {"bad-version-1", c_version_1, 0},
    {"bad-version-future", c_version_future, 0}, {"bad-big-endian", c_big_endian, 0},
    {"bad-trunc-header", c_trunc_header, 0}, {"bad-huge-n-tensors", c_huge_n_tensors, 0},
    {"bad-huge-n-kv", c_huge_n_kv, 0}, {"bad-kv-count-lies", c_kv_count_lies, 0},
    {"bad-trunc-key", c_trunc_key, 0}, {"bad-trunc-value", c_trunc_value, 0},
    {"bad-huge-key-len", c_huge_key_len, 0}, {"bad-huge-string-len", c_huge_string_len, 0},
    {"bad-value-type", c_bad_value_type, 0}, {"bad-array-count-overflow", c_array_count_overflow, 0},
    {"bad-array-str-count", c_array_str_count, 0}, {"bad-array-str-past-end", c_array_str_past_end, 0},
    {"bad-array-type", c_bad_array_type, 0}, {"bad-nested-array-type", c_bad_nested_type, 0},
    {"bad-nested-too-deep", c_nested_too_deep, 0}, {"bad-nested-count", c_nested_count_huge, 0},
    {"bad-duplicate-key", c_duplicate_key, 0}, {"bad-empty-key", c_empty_key, 0},
    {"bad-align-type", c_align_type, 0}, {"bad-align-u64", c_align_u64, 0},
    {"bad-align-value", c_align_pow2, 0}, {"bad-align-zero", c_align_zero, 0},
    {"bad-name-too-long", c_name_too_long, 0}, {"bad-empty-name", c_empty_name, 0},
    {"bad-name-nul", c_name_nul, 0}, {"bad-duplicate-tensor", c_dup_tensor, 0},
    {"bad-n-dims-5", c_n_dims_5, 0}, {"bad-n-dims-0", c_n_dims_0, 0}, {"bad-zero-dim", c_zero_dim, 0},
    {"bad-negative-dim", c_negative_dim, 0}, {"bad-ne-overflow", c_ne_overflow, 0},
    {"bad-bytes-overflow", c_bytes_overflow, 0}, {"bad-unknown-type", c_unknown_type, 0},
    {"bad-removed-type", c_removed_type, 0}, {"bad-block-multiple", c_block_multiple, 0},
    {"bad-tq2-block", c_tq2_block, 0}, {"bad-i2s-block", c_i2s_block, 0}, {"bad-tl2-small", c_tl2_small, 0},
    {"bad-offset-misaligned", c_offset_misaligned, 0}, {"bad-offset-past-end", c_offset_past_end, 0},
    {"bad-offset-wraps", c_offset_wraps, 0}, {"bad-overlap", c_overlap, 0},
    {"bad-data-past-end", c_data_past_end, 0}, {"bad-trunc-tensor-info", c_trunc_tensor_info, 0},
    {"bad-trunc-tensor-name", c_trunc_tensor_name, 0},
    {"model-missing-tensor", 0, m_missing_tensor}, {"model-missing-embd", 0, m_missing_embd},
    {"model-bad-shape", 0, m_bad_shape}, {"model-bad-type", 0, m_bad_type},
    {"model-bad-norm-type", 0, m_bad_norm_type}, {"model-bad-embd-type", 0, m_embd_type},
    {"model-missing-hparam", 0, m_missing_hparam}, {"model-missing-ctx", 0, m_missing_ctx},
    {"model-head-divide", 0, m_head_divide}, {"model-gqa", 0, m_gqa}, {"model-scores-len", 0, m_scores_len},
    {"model-vocab-size", 0, m_vocab_size_kv}, {"model-scale-nan", 0, m_scale_nan},
    {"model-scale-zero", 0, m_scale_zero}, {"model-scale-negative", 0, m_scale_neg},
    {"model-not-bitnet", 0, m_not_bitnet}, {"model-no-arch", 0, m_no_arch},
    {"model-too-many-layers", 0, m_too_many_layers}, {"model-extra-tensor", 0, m_extra_tensor},
    {"model-bos-range", 0, m_bos_range}, {"model-eps", 0, m_eps}, {"model-tokens-type", 0, m_tokens_type},
    {"valid-model-i2s", 0, m_valid}, {"valid-model-tq2", 0, m_valid_tq2}, {"valid-model-f16", 0, m_valid_f16},
    {"valid-vocab-only", 0, m_vocab_only}, {"valid-struct-v2", v_v2, 0},
    {"valid-struct-no-tensors", v_no_tensors, 0}, {"valid-struct-align64", v_align64, 0},
    {"valid-struct-nested", v_nested, 0}, {"valid-struct-every-type", v_every_type, 0},
};

static int write_bytes(const char *path, const buf *b) {
    FILE *f = fopen(path, "wb");
    if (!f || (b->n && fwrite(b->p, 1, b->n, f) != b->n) || fclose(f) != 0) {
        perror(path);
        return -1;
    }
    return 0;
}

/* Re-write a file through the writer: every kv copied, every tensor streamed. */
static int copy_file(const char *in, const char *out) {
    bn_gguf *g;
    bn_gguf_writer *w;
    bn_err e;
    if (bn_gguf_open(&g, in, &e) || bn_gguf_writer_new(&w, out, &e)) return wdie(NULL, &e);
    for (uint64_t i = 0; i < bn_gguf_n_kv(g); i++)
        if (bn_gguf_w_copy_kv(w, bn_gguf_kv_at(g, i), &e)) return wdie(w, &e);
    for (uint64_t i = 0; i < bn_gguf_n_tensors(g); i++) {
        const bn_gguf_tensor *t = bn_gguf_tensor_at(g, i);
        if (bn_gguf_w_tensor(w, t->name, t->type, t->n_dims, t->ne, &e) < 0) return wdie(NULL, &e);
    }
    for (uint64_t i = 0; i < bn_gguf_n_tensors(g); i++) {
        const bn_gguf_tensor *t = bn_gguf_tensor_at(g, i);
        if (bn_gguf_w_data(w, (int)i, t->data, (size_t)t->nbytes, &e)) return wdie(NULL, &e);
    }
    int rc = bn_gguf_writer_finish(w, &e) ? wdie(NULL, &e) : 0;
    bn_gguf_close(g);
    return rc;
}

int main(int argc, char **argv) {
    size_t n = sizeof cases / sizeof cases[0];
    if (argc == 2 && !strcmp(argv[1], "--list")) {
        for (size_t i = 0; i < n; i++) printf("%s\n", cases[i].name);
        return 0;
    }
    if (argc == 4 && !strcmp(argv[1], "--copy")) return copy_file(argv[2], argv[3]) ? 1 : 0;
    if (argc != 2 || argv[1][0] == '-') {
        fprintf(stderr, "usage: mkgguf DIR | --list | --copy IN OUT\n");
        return 2;
    }
    char path[4096];
    for (size_t i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/%s.gguf", argv[1], cases[i].name);
        if (cases[i].fn) {
            buf b = {0};
            cases[i].fn(&b);
            int rc = write_bytes(path, &b);
            free(b.p);
            if (rc) return 1;
        } else {
            mcfg m = default_model();
            cases[i].mod(&m);
            if (write_model(path, &m)) return 1;
        }
    }
    return 0;
}
