/* vocab.c - vocabulary building, loading (GGUF / tokenizer.model), lookup,
 * the special-token splitter in front of the SPM and BPE encoders, and
 * llama.cpp-compatible detokenization. */
#include "vocab.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "spm_model.h"
#include "unicode.h"

/* ---- hashing ------------------------------------------------------------- */

/* FNV-1a: short strings, no state, good enough spread for open addressing. */
static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)s[i];
        h *= 1099511628211ull;
    }
    return h ^ (h >> 29);
}

/* Mix a 64-bit pair key into a table index. */
static uint64_t hash_u64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

/* Smallest power of two >= 2n (load factor <= 0.5). */
static uint64_t table_size(uint64_t n) {
    uint64_t s = 16;
    while (s < 2 * n) s <<= 1;
    return s;
}

const char *bn_vocab_type_name(bn_vocab_type t) {
    return t == BN_VOCAB_SPM ? "llama" : t == BN_VOCAB_BPE ? "gpt2" : "?";
}

const char *bn_vocab_pre_name(bn_vocab_pre p) {
    return p == BN_PRE_GPT2 ? "gpt-2" : p == BN_PRE_LLAMA3 ? "llama3" : "none";
}

/* ---- building ------------------------------------------------------------ */

/* Zeroed arrays for n tokens; specials unset until the loader fills them. */
int bn_vocab_init(bn_vocab *v, bn_vocab_type type, uint32_t n, bn_err *e) {
    memset(v, 0, sizeof *v);
    v->type = type;
    v->pre = type == BN_VOCAB_BPE ? BN_PRE_LLAMA3 : BN_PRE_NONE;
    v->bos = v->eos = v->unk = v->eot = v->pad = v->eom = -1;
    v->add_space_prefix = type == BN_VOCAB_SPM;
    v->clean_spaces = type == BN_VOCAB_BPE;
    if (n == 0) return bn_errf(e, "vocab: tokens: empty vocabulary");
    v->n_tokens = n;
    v->text_off = bn_calloc(n, sizeof *v->text_off, e);
    v->text_len = bn_calloc(n, sizeof *v->text_len, e);
    v->scores = bn_calloc(n, sizeof *v->scores, e);
    v->types = bn_calloc(n, sizeof *v->types, e);
    if (!v->text_off || !v->text_len || !v->scores || !v->types) {
        bn_vocab_free(v);
        return -1;
    }
    memset(v->types, BN_TOK_NORMAL, n);
    for (int i = 0; i < 256; i++) v->byte_tok[i] = -1;
    return 0;
}

/* Token texts go into one growing blob so lookups touch little memory. */
int bn_vocab_set_token(bn_vocab *v, uint32_t id, const char *text, size_t len, float score,
                       int type, bn_err *e) {
    if (id >= v->n_tokens) return bn_errf(e, "vocab: token %u: id out of range", id);
    if (len > UINT32_MAX / 2) return bn_errf(e, "vocab: token %u: text too long", id);
    if (v->blob_len + len + 1 > v->blob_cap) {
        size_t cap = v->blob_cap ? v->blob_cap : 4096;
        while (cap < v->blob_len + len + 1) cap *= 2;
        char *nb = realloc(v->text_blob, cap);
        if (!nb) return bn_errf(e, "vocab: out of memory");
        v->text_blob = nb;
        v->blob_cap = cap;
    }
    memcpy(v->text_blob + v->blob_len, text, len);
    v->text_blob[v->blob_len + len] = 0;
    v->text_off[id] = v->blob_len;
    v->text_len[id] = (uint32_t)len;
    v->blob_len += len + 1;
    v->scores[id] = score;
    v->types[id] = (uint8_t)type;
    return 0;
}

/* Token text -> id table; first id wins for duplicate texts, as in a map
 * that keeps the first insertion. */
static int build_token_table(bn_vocab *v, bn_err *e) {
    if (v->tok_ht) return 0;
    uint64_t size = table_size(v->n_tokens);
    v->tok_ht = bn_calloc(size, sizeof *v->tok_ht, e);
    if (!v->tok_ht) return -1;
    v->tok_ht_mask = size - 1;
    for (uint32_t id = 0; id < v->n_tokens; id++) {
        const char *s = v->text_blob ? v->text_blob + v->text_off[id] : "";
        uint64_t h = hash_bytes(s, v->text_len[id]) & v->tok_ht_mask;
        for (;;) {
            uint32_t slot = v->tok_ht[h];
            if (slot == 0) { v->tok_ht[h] = id + 1; break; }
            uint32_t o = slot - 1;
            if (v->text_len[o] == v->text_len[id] &&
                memcmp(v->text_blob + v->text_off[o], s, v->text_len[id]) == 0)
                break; /* duplicate text: keep the first id */
            h = (h + 1) & v->tok_ht_mask;
        }
    }
    return 0;
}

int32_t bn_vocab_find(const bn_vocab *v, const char *s, size_t n) {
    if (!v->tok_ht) return -1;
    uint64_t h = hash_bytes(s, n) & v->tok_ht_mask;
    for (;;) {
        uint32_t slot = v->tok_ht[h];
        if (slot == 0) return -1;
        uint32_t id = slot - 1;
        if (v->text_len[id] == n && memcmp(v->text_blob + v->text_off[id], s, n) == 0)
            return (int32_t)id;
        h = (h + 1) & v->tok_ht_mask;
    }
}

/* Merges are kept as token-id pairs: the parts and the result must all be
 * tokens (true for every real byte-level vocabulary); others are dropped and
 * counted in n_merges_dropped. The rank is the position in the list. */
int bn_vocab_add_merge(bn_vocab *v, const char *left, size_t llen, const char *right, size_t rlen,
                       bn_err *e) {
    if (build_token_table(v, e) < 0) return -1;
    int32_t a = bn_vocab_find(v, left, llen), b = bn_vocab_find(v, right, rlen);
    char stackbuf[256];
    char *cat = llen + rlen <= sizeof stackbuf ? stackbuf : malloc(llen + rlen);
    if (!cat) return bn_errf(e, "vocab: out of memory");
    memcpy(cat, left, llen);
    memcpy(cat + llen, right, rlen);
    int32_t r = bn_vocab_find(v, cat, llen + rlen);
    if (cat != stackbuf) free(cat);
    if (v->n_pend == v->cap_pend) {
        uint32_t cap = v->cap_pend ? v->cap_pend * 2 : 1024;
        uint64_t *nm = realloc(v->pend_merges, (size_t)cap * 2 * sizeof *nm);
        if (!nm) return bn_errf(e, "vocab: out of memory");
        v->pend_merges = nm;
        v->cap_pend = cap;
    }
    if (a < 0 || b < 0 || r < 0) {
        /* keep a sentinel so later ranks stay list positions */
        v->pend_merges[2 * v->n_pend] = UINT64_MAX;
        v->pend_merges[2 * v->n_pend + 1] = 0;
        v->n_merges_dropped++;
    } else {
        v->pend_merges[2 * v->n_pend] = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
        v->pend_merges[2 * v->n_pend + 1] = (uint64_t)(uint32_t)r;
    }
    v->n_pend++;
    return 0;
}

/* Pair table: key -> (rank, result). The lowest rank wins for duplicates. */
static int build_merge_table(bn_vocab *v, bn_err *e) {
    if (v->n_pend == 0) return 0;
    uint64_t size = table_size(v->n_pend);
    v->merge_keys = bn_calloc(size, sizeof *v->merge_keys, e);
    v->merge_rank = bn_calloc(size, sizeof *v->merge_rank, e);
    v->merge_result = bn_calloc(size, sizeof *v->merge_result, e);
    if (!v->merge_keys || !v->merge_rank || !v->merge_result) return -1;
    v->merge_ht_mask = size - 1;
    for (uint32_t i = 0; i < v->n_pend; i++) {
        uint64_t key = v->pend_merges[2 * i];
        if (key == UINT64_MAX) continue;
        uint64_t h = hash_u64(key) & v->merge_ht_mask;
        while (v->merge_keys[h] != 0 && v->merge_keys[h] != key + 1) h = (h + 1) & v->merge_ht_mask;
        if (v->merge_keys[h] == key + 1) continue;
        v->merge_keys[h] = key + 1;
        v->merge_rank[h] = i;
        v->merge_result[h] = (int32_t)v->pend_merges[2 * i + 1];
        v->n_merges++;
    }
    free(v->pend_merges);
    v->pend_merges = NULL;
    return 0;
}

/* Longest special text first, so "<|eot_id|>" wins over a shorter prefix. */
static int cmp_special(const void *a, const void *b, void *ctx) {
    const bn_vocab *v = ctx;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    if (v->text_len[x] != v->text_len[y]) return v->text_len[x] > v->text_len[y] ? -1 : 1;
    return x < y ? -1 : x > y;
}

/* GPT-2 bytes_to_unicode: printable Latin-1 bytes map to themselves, the
 * other 68 to U+0100.. in increasing byte order. */
static uint32_t byte_to_cp(uint8_t b) {
    if ((b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE) return b;
    if (b <= 0x20) return 0x100 + b;
    if (b >= 0x7F && b <= 0xA0) return 0x100 + 33 + (b - 0x7F);
    return 0x100 + 67; /* 0xAD */
}

/* Inverse of byte_to_cp; -1 for code points outside the mapping. */
static int cp_to_byte(uint32_t cp) {
    if ((cp >= 0x21 && cp <= 0x7E) || (cp >= 0xA1 && cp <= 0xAC) || (cp >= 0xAE && cp <= 0xFF))
        return (int)cp;
    if (cp >= 0x100 && cp < 0x100 + 68) {
        uint32_t n = cp - 0x100;
        if (n < 33) return (int)n;
        if (n < 67) return (int)(0x7F + n - 33);
        return 0xAD;
    }
    return -1;
}

static void add_eog(bn_vocab *v, int32_t id) {
    if (id < 0) return;
    for (uint32_t i = 0; i < v->n_eog; i++)
        if (v->eog[i] == id) return;
    if (v->n_eog < BN_VOCAB_MAX_EOG) v->eog[v->n_eog++] = id;
}

/* Derived structures and defaults; see the header. */
int bn_vocab_finish(bn_vocab *v, bn_err *e) {
    for (uint32_t id = 0; id < v->n_tokens; id++)
        if (v->types[id] == 0) v->types[id] = BN_TOK_NORMAL;
    if (!v->text_blob) {
        v->text_blob = calloc(1, 1);
        if (!v->text_blob) return bn_errf(e, "vocab: out of memory");
    }
    if (build_token_table(v, e) < 0) return -1;
    if (build_merge_table(v, e) < 0) return -1;
    if (v->pre == BN_PRE_LLAMA3) v->ignore_merges = true;
    /* byte tokens */
    for (int b = 0; b < 256; b++) {
        char buf[8];
        size_t n;
        if (v->type == BN_VOCAB_SPM) {
            static const char hex[] = "0123456789ABCDEF";
            buf[0] = '<'; buf[1] = '0'; buf[2] = 'x';
            buf[3] = hex[b >> 4]; buf[4] = hex[b & 15]; buf[5] = '>';
            n = 6;
        } else {
            n = bn_utf8_encode(byte_to_cp((uint8_t)b), buf);
        }
        v->byte_tok[b] = bn_vocab_find(v, buf, n);
    }
    /* can SPM encoding split before each U+2581 that follows another
     * character? Only if no token has an inner U+2581 after something else
     * (runs like "\xE2\x96\x81\xE2\x96\x81" are fine), so no merge can span it */
    v->spm_ws_split = v->type == BN_VOCAB_SPM;
    for (uint32_t id = 0; id < v->n_tokens && v->spm_ws_split; id++) {
        const char *t = v->text_blob + v->text_off[id];
        for (uint32_t k = 1; k + 2 < v->text_len[id]; k++)
            if (memcmp(t + k, "\xE2\x96\x81", 3) == 0 && (k < 3 || memcmp(t + k - 3, "\xE2\x96\x81", 3) != 0)) {
                v->spm_ws_split = false;
                break;
            }
    }
    /* special ids range check */
    int32_t *sp[] = {&v->bos, &v->eos, &v->unk, &v->eot, &v->pad, &v->eom};
    static const char *spn[] = {"bos", "eos", "unk", "eot", "pad", "eom"};
    for (int i = 0; i < 6; i++)
        if (*sp[i] >= (int32_t)v->n_tokens)
            return bn_errf(e, "vocab: %s_token_id: %d out of range (vocabulary of %u)", spn[i], *sp[i],
                           v->n_tokens);
    /* EOT by text, as llama.cpp does when the id is not in the metadata */
    if (v->eot < 0) {
        static const char *eot_names[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<EOT>"};
        for (size_t i = 0; i < sizeof eot_names / sizeof eot_names[0] && v->eot < 0; i++) {
            int32_t id = bn_vocab_find(v, eot_names[i], strlen(eot_names[i]));
            if (id >= 0 && v->types[id] == BN_TOK_CONTROL) v->eot = id;
        }
    }
    if (v->eom < 0) {
        int32_t id = bn_vocab_find(v, "<|eom_id|>", 10);
        if (id >= 0 && v->types[id] == BN_TOK_CONTROL) v->eom = id;
    }
    v->n_eog = 0;
    add_eog(v, v->eos);
    add_eog(v, v->eot);
    add_eog(v, v->eom);
    /* special tokens for the splitter */
    v->special = bn_calloc(v->n_tokens, sizeof *v->special, e);
    if (!v->special) return -1;
    v->n_special = 0;
    for (uint32_t id = 0; id < v->n_tokens; id++) {
        int t = v->types[id];
        if ((t == BN_TOK_CONTROL || t == BN_TOK_USER_DEFINED || t == BN_TOK_UNKNOWN) && v->text_len[id] > 0)
            v->special[v->n_special++] = (int32_t)id;
    }
    qsort_r(v->special, v->n_special, sizeof *v->special, cmp_special, v);
    /* fingerprint: sha256 over every token text followed by a NUL */
    bn_sha256 s;
    bn_sha256_init(&s);
    for (uint32_t id = 0; id < v->n_tokens; id++)
        bn_sha256_update(&s, v->text_blob + v->text_off[id], (size_t)v->text_len[id] + 1);
    uint8_t d[32];
    bn_sha256_final(&s, d);
    bn_sha256_hex(d, v->fingerprint);
    return 0;
}

void bn_vocab_free(bn_vocab *v) {
    free(v->text_blob);
    free(v->text_off);
    free(v->text_len);
    free(v->scores);
    free(v->types);
    free(v->chat_template);
    free(v->tok_ht);
    free(v->merge_keys);
    free(v->merge_rank);
    free(v->merge_result);
    free(v->special);
    free(v->pend_merges);
    memset(v, 0, sizeof *v);
}

bool bn_vocab_is_eog(const bn_vocab *v, int32_t id) {
    for (uint32_t i = 0; i < v->n_eog; i++)
        if (v->eog[i] == id) return true;
    return false;
}

/* ---- GGUF loading -------------------------------------------------------- */

/* Optional integer id key: absent leaves *out, a bad value is an error. */
static int get_id(const bn_gguf *g, const char *key, int32_t *out, bn_err *e) {
    int32_t x;
    int r = bn_gguf_get_i32(g, key, &x, e);
    if (r < 0) {
        uint32_t u;
        bn_err e2;
        /* u32 values above INT32_MAX (e.g. 0xFFFFFFFF = none) mean "unset" */
        if (bn_gguf_get_u32(g, key, &u, &e2) == 1) { *out = -1; return 0; }
        return -1;
    }
    if (r == 1) *out = x;
    return 0;
}

static int get_flag(const bn_gguf *g, const char *key, bool *out, bn_err *e) {
    bool b;
    int r = bn_gguf_get_bool(g, key, &b, e);
    if (r < 0) return -1;
    if (r == 1) *out = b;
    return 0;
}

/* The tokenizer.ggml.* keys as llama.cpp's llama_vocab::load reads them. */
int bn_vocab_load_gguf(bn_vocab *v, const bn_gguf *g, bn_err *e) {
    const char *path = bn_gguf_path(g);
    bn_gguf_str model;
    int r = bn_gguf_get_str(g, "tokenizer.ggml.model", &model, e);
    if (r < 0) return -1;
    if (r == 0) return bn_errf(e, "%s: tokenizer.ggml.model: missing (the file has no vocabulary)", path);
    bn_vocab_type type;
    if (bn_gguf_str_eq(model, "llama")) type = BN_VOCAB_SPM;
    else if (bn_gguf_str_eq(model, "gpt2")) type = BN_VOCAB_BPE;
    else
        return bn_errf(e, "%s: tokenizer.ggml.model: unsupported tokenizer \"%.*s\" (llama and gpt2 are)", path,
                       (int)(model.len > 40 ? 40 : model.len), model.ptr);
    const bn_gguf_kv *tk = bn_gguf_find(g, "tokenizer.ggml.tokens");
    if (!tk) return bn_errf(e, "%s: tokenizer.ggml.tokens: missing", path);
    if (tk->type != BN_GGUF_ARR || tk->arr_type != BN_GGUF_STR)
        return bn_errf(e, "%s: tokenizer.ggml.tokens: not an array of strings", path);
    if (tk->arr_n == 0 || tk->arr_n > INT32_MAX - 1)
        return bn_errf(e, "%s: tokenizer.ggml.tokens: bad count %llu", path, (unsigned long long)tk->arr_n);
    uint32_t n = (uint32_t)tk->arr_n;
    if (bn_vocab_init(v, type, n, e) < 0) return -1;
    bn_gguf_str pre = {0};
    r = bn_gguf_get_str(g, "tokenizer.ggml.pre", &pre, e);
    if (r < 0) goto fail;
    if (type == BN_VOCAB_BPE) {
        if (r == 0) {
            v->pre = BN_PRE_LLAMA3; /* the 2B-4T file: trained with LLaMA 3's tokenizer */
        } else if (bn_gguf_str_eq(pre, "llama3") || bn_gguf_str_eq(pre, "llama-v3") ||
                   bn_gguf_str_eq(pre, "llama-bpe") || bn_gguf_str_eq(pre, "falcon3")) {
            v->pre = BN_PRE_LLAMA3;
            v->add_bos = true;
        } else if (bn_gguf_str_eq(pre, "gpt-2") || bn_gguf_str_eq(pre, "default")) {
            v->pre = BN_PRE_GPT2;
        } else {
            bn_errf(e, "%s: tokenizer.ggml.pre: unsupported pre-tokenizer \"%.*s\" (llama3, llama-bpe, gpt-2, default are)",
                    path, (int)(pre.len > 40 ? 40 : pre.len), pre.ptr);
            goto fail;
        }
    }
    if (r == 1) {
        size_t l = pre.len < sizeof v->pre_name - 1 ? pre.len : sizeof v->pre_name - 1;
        memcpy(v->pre_name, pre.ptr, l);
        v->pre_name[l] = 0;
    }
    const bn_gguf_kv *sc = bn_gguf_find(g, "tokenizer.ggml.scores");
    const bn_gguf_kv *tt = bn_gguf_find(g, "tokenizer.ggml.token_type");
    if (sc && (sc->type != BN_GGUF_ARR || sc->arr_n != n)) {
        bn_errf(e, "%s: tokenizer.ggml.scores: expected an array of %u", path, n);
        goto fail;
    }
    if (tt && (tt->type != BN_GGUF_ARR || tt->arr_n != n)) {
        bn_errf(e, "%s: tokenizer.ggml.token_type: expected an array of %u", path, n);
        goto fail;
    }
    bn_gguf_arr_iter it_t, it_s, it_y;
    bn_gguf_arr_iter_init(&it_t, tk);
    if (sc) bn_gguf_arr_iter_init(&it_s, sc);
    if (tt) bn_gguf_arr_iter_init(&it_y, tt);
    for (uint32_t id = 0; id < n; id++) {
        bn_gguf_str s;
        double score = 0;
        int64_t ty = BN_TOK_NORMAL;
        if (!bn_gguf_arr_next_str(&it_t, &s)) {
            bn_errf(e, "%s: tokenizer.ggml.tokens: element %u unreadable", path, id);
            goto fail;
        }
        if (sc && !bn_gguf_arr_next_f64(&it_s, &score)) {
            bn_errf(e, "%s: tokenizer.ggml.scores: element %u is not a number", path, id);
            goto fail;
        }
        if (tt && !bn_gguf_arr_next_i64(&it_y, &ty)) {
            bn_errf(e, "%s: tokenizer.ggml.token_type: element %u is not an integer", path, id);
            goto fail;
        }
        if (ty < 0 || ty > 6) {
            bn_errf(e, "%s: tokenizer.ggml.token_type: element %u: unknown type %lld", path, id, (long long)ty);
            goto fail;
        }
        if (bn_vocab_set_token(v, id, s.ptr, s.len, (float)score, (int)ty, e) < 0) goto fail;
    }
    if (type == BN_VOCAB_BPE) {
        const bn_gguf_kv *mg = bn_gguf_find(g, "tokenizer.ggml.merges");
        if (!mg) {
            bn_errf(e, "%s: tokenizer.ggml.merges: missing (required for gpt2 vocabularies)", path);
            goto fail;
        }
        if (mg->type != BN_GGUF_ARR || mg->arr_type != BN_GGUF_STR) {
            bn_errf(e, "%s: tokenizer.ggml.merges: not an array of strings", path);
            goto fail;
        }
        bn_gguf_arr_iter it;
        bn_gguf_arr_iter_init(&it, mg);
        bn_gguf_str m;
        uint64_t i = 0;
        while (bn_gguf_arr_next_str(&it, &m)) {
            const char *sp = m.len > 1 ? memchr(m.ptr + 1, ' ', m.len - 1) : NULL;
            if (!sp) {
                bn_errf(e, "%s: tokenizer.ggml.merges: element %llu has no space", path, (unsigned long long)i);
                goto fail;
            }
            size_t ll = (size_t)(sp - m.ptr);
            if (bn_vocab_add_merge(v, m.ptr, ll, sp + 1, m.len - ll - 1, e) < 0) goto fail;
            i++;
        }
    } else {
        v->bos = 1; v->eos = 2; v->unk = 0; v->add_bos = true;
    }
    if (get_id(g, "tokenizer.ggml.bos_token_id", &v->bos, e) < 0 ||
        get_id(g, "tokenizer.ggml.eos_token_id", &v->eos, e) < 0 ||
        get_id(g, "tokenizer.ggml.unknown_token_id", &v->unk, e) < 0 ||
        get_id(g, "tokenizer.ggml.eot_token_id", &v->eot, e) < 0 ||
        get_id(g, "tokenizer.ggml.eom_token_id", &v->eom, e) < 0 ||
        get_id(g, "tokenizer.ggml.padding_token_id", &v->pad, e) < 0 ||
        get_flag(g, "tokenizer.ggml.add_bos_token", &v->add_bos, e) < 0 ||
        get_flag(g, "tokenizer.ggml.add_eos_token", &v->add_eos, e) < 0 ||
        get_flag(g, "tokenizer.ggml.add_space_prefix", &v->add_space_prefix, e) < 0)
        goto fail;
    bn_gguf_str ct;
    r = bn_gguf_get_str(g, "tokenizer.chat_template", &ct, e);
    if (r < 0) goto fail;
    if (r == 1) {
        v->chat_template = malloc(ct.len + 1);
        if (!v->chat_template) { bn_errf(e, "%s: out of memory", path); goto fail; }
        memcpy(v->chat_template, ct.ptr, ct.len);
        v->chat_template[ct.len] = 0;
    }
    if (bn_vocab_finish(v, e) < 0) {
        bn_err_prefix(e, path);
        goto fail;
    }
    return 0;
fail:
    bn_vocab_free(v);
    return -1;
}

/* GGUF or SentencePiece protobuf, by magic. */
int bn_vocab_load_file(bn_vocab *v, const char *path, bn_err *e) {
    uint8_t magic[4] = {0};
    FILE *f = fopen(path, "rb");
    if (!f) return bn_errf(e, "%s: cannot open: %s", path, strerror(errno));
    size_t got = fread(magic, 1, 4, f);
    fclose(f);
    if (got == 4 && memcmp(magic, "GGUF", 4) == 0) {
        bn_gguf *g;
        if (bn_gguf_open(&g, path, e) < 0) return -1;
        int r = bn_vocab_load_gguf(v, g, e);
        bn_gguf_close(g);
        return r;
    }
    return bn_spm_model_load_file(v, path, e);
}

/* ---- tokenizing ---------------------------------------------------------- */

int bn_ids_push(bn_ids *a, int32_t id, bn_err *e) {
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 256;
        int32_t *p = realloc(a->ids, cap * sizeof *p);
        if (!p) return bn_errf(e, "tokenize: out of memory");
        a->ids = p;
        a->cap = cap;
    }
    a->ids[a->n++] = id;
    return 0;
}

void bn_ids_free(bn_ids *a) {
    free(a->ids);
    a->ids = NULL;
    a->n = a->cap = 0;
}

/* A piece of input: raw text (id < 0) or an already recognized token. */
typedef struct frag {
    size_t off, len;
    int32_t id;
} frag;

typedef struct frag_list {
    frag *f;
    size_t n, cap;
} frag_list;

static int frag_push(frag_list *l, size_t off, size_t len, int32_t id, bn_err *e) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        frag *p = realloc(l->f, cap * sizeof *p);
        if (!p) return bn_errf(e, "tokenize: out of memory");
        l->f = p;
        l->cap = cap;
    }
    l->f[l->n++] = (frag){off, len, id};
    return 0;
}

/* llama.cpp's tokenizer_st_partition: for each special token, longest
 * first, split every raw fragment at each occurrence of its text. */
static int split_special(const bn_vocab *v, const char *text, size_t len, bool parse_special,
                         frag_list *out, bn_err *e) {
    frag_list a = {0}, b = {0};
    if (len > 0 && frag_push(&a, 0, len, -1, e) < 0) return -1;
    for (uint32_t k = 0; k < v->n_special; k++) {
        int32_t id = v->special[k];
        if (!parse_special && v->types[id] != BN_TOK_USER_DEFINED) continue;
        size_t tl;
        const char *t = bn_vocab_text(v, id, &tl);
        b.n = 0;
        bool any = false;
        for (size_t i = 0; i < a.n; i++) {
            frag fr = a.f[i];
            if (fr.id >= 0 || fr.len < tl) {
                if (frag_push(&b, fr.off, fr.len, fr.id, e) < 0) goto fail;
                continue;
            }
            size_t pos = fr.off, end = fr.off + fr.len;
            while (pos < end) {
                const char *hit = memmem(text + pos, end - pos, t, tl);
                if (!hit) break;
                size_t h = (size_t)(hit - text);
                any = true;
                if (h > pos && frag_push(&b, pos, h - pos, -1, e) < 0) goto fail;
                if (frag_push(&b, h, tl, id, e) < 0) goto fail;
                pos = h + tl;
            }
            if (pos < end && frag_push(&b, pos, end - pos, -1, e) < 0) goto fail;
        }
        if (any) {
            frag_list t2 = a;
            a = b;
            b = t2;
        }
    }
    free(b.f);
    *out = a;
    return 0;
fail:
    free(a.f);
    free(b.f);
    return -1;
}

/* Special split, then the SPM (with dummy prefix and escaped spaces) or BPE
 * encoder on each raw fragment; BOS/EOS as the vocabulary asks. */
int bn_tokenize(const bn_vocab *v, const char *text, size_t len, bool add_special,
                bool parse_special, bn_ids *out, bn_err *e) {
    size_t bad;
    if (!bn_utf8_valid(text, len, &bad))
        return bn_errf(e, "input: invalid UTF-8 at byte offset %zu", bad);
    if (add_special && v->add_bos && v->bos >= 0 && bn_ids_push(out, v->bos, e) < 0) return -1;
    frag_list fl = {0};
    if (split_special(v, text, len, parse_special, &fl, e) < 0) return -1;
    bool prev_special = true;
    char *buf = NULL;
    size_t cap = 0;
    int rc = 0;
    for (size_t i = 0; i < fl.n && rc == 0; i++) {
        frag fr = fl.f[i];
        if (fr.id >= 0) {
            rc = bn_ids_push(out, fr.id, e);
            prev_special = true;
            continue;
        }
        if (v->type == BN_VOCAB_BPE) {
            rc = bn_bpe_encode(v, text + fr.off, fr.len, out, e);
            continue;
        }
        /* SPM: optional ' ' prefix, every space becomes U+2581 (3 bytes) */
        size_t need = 3 * (fr.len + 1);
        if (need > cap) {
            free(buf);
            cap = need;
            buf = malloc(cap);
            if (!buf) { rc = bn_errf(e, "tokenize: out of memory"); break; }
        }
        size_t n = 0;
        const char *s = text + fr.off;
        if (v->add_space_prefix && prev_special) {
            memcpy(buf, "\xE2\x96\x81", 3);
            n = 3;
        }
        for (size_t j = 0; j < fr.len; j++) {
            if (s[j] == ' ') { memcpy(buf + n, "\xE2\x96\x81", 3); n += 3; }
            else buf[n++] = s[j];
        }
        rc = bn_spm_encode(v, buf, n, out, e);
        prev_special = false;
    }
    free(buf);
    free(fl.f);
    if (rc == 0 && add_special && v->add_eos && v->eos >= 0) rc = bn_ids_push(out, v->eos, e);
    return rc;
}

/* ---- detokenizing -------------------------------------------------------- */

size_t bn_vocab_piece_max(const bn_vocab *v) {
    size_t m = 8;
    for (uint32_t i = 0; i < v->n_tokens; i++)
        if (v->text_len[i] > m) m = v->text_len[i];
    return m + 1;
}

/* See the header; mirrors llama_vocab::token_to_piece. */
long bn_token_piece(const bn_vocab *v, int32_t id, bool special, int lstrip, char *buf, bn_err *e) {
    if (id < 0 || (uint32_t)id >= v->n_tokens)
        return bn_errf(e, "detok: token id %d out of range (vocabulary of %u)", id, v->n_tokens);
    int t = v->types[id];
    size_t tl;
    const char *s = bn_vocab_text(v, id, &tl);
    size_t n = 0;
    if (t == BN_TOK_CONTROL || t == BN_TOK_UNKNOWN) {
        if (!special) return 0;
        memcpy(buf, s, tl);
        n = tl;
    } else if (t == BN_TOK_USER_DEFINED) {
        memcpy(buf, s, tl);
        n = tl;
    } else if (v->type == BN_VOCAB_SPM) {
        if (t == BN_TOK_NORMAL) {
            for (size_t i = 0; i < tl; i++) {
                if (i + 2 < tl && (uint8_t)s[i] == 0xE2 && (uint8_t)s[i + 1] == 0x96 && (uint8_t)s[i + 2] == 0x81) {
                    buf[n++] = ' ';
                    i += 2;
                } else {
                    buf[n++] = s[i];
                }
            }
        } else if (t == BN_TOK_BYTE) {
            unsigned x = 0;
            for (size_t i = 3; i + 1 < tl; i++) {
                char c = s[i];
                x = x * 16 + (unsigned)(c >= 'a' ? c - 'a' + 10 : c >= 'A' ? c - 'A' + 10 : c - '0');
            }
            buf[n++] = (char)(x & 0xFF);
        }
    } else if (t == BN_TOK_NORMAL) {
        size_t i = 0;
        while (i < tl) {
            uint32_t cp;
            size_t l = bn_utf8_decode((const uint8_t *)s + i, tl - i, &cp);
            int b = l ? cp_to_byte(cp) : -1;
            if (b < 0) { /* not a mapped byte: copy the character through */
                size_t k = l ? l : 1;
                memcpy(buf + n, s + i, k);
                n += k;
                i += k;
            } else {
                buf[n++] = (char)b;
                i += l;
            }
        }
    }
    size_t skip = 0;
    while ((int)skip < lstrip && skip < n && buf[skip] == ' ') skip++;
    if (skip) memmove(buf, buf + skip, n - skip);
    return (long)(n - skip);
}

/* llama.cpp's clean_up_tokenization_spaces passes over the whole text. */
static size_t clean_spaces(char *t, size_t total) {
    size_t n = total ? 1 : 0;
    for (size_t i = 1; i < total; i++) {
        char x = t[i];
        if (t[i - 1] == ' ' && (x == '?' || x == '!' || x == '.' || x == ',')) n--;
        t[n++] = x;
    }
    size_t total2 = n;
    n = total2 ? 1 : 0;
    for (size_t i = 1; i < total2; i++) {
        char x = t[i];
        if (x == '\'' && i + 1 < total2 && t[i - 1] == ' ' && t[i + 1] == ' ') {
            n--;
            t[++i] = 0;
        }
        t[n++] = x;
    }
    size_t total3 = n;
    n = total3 ? 1 : 0;
    for (size_t i = 1; i < total3; i++) {
        char x = t[i];
        if (t[i - 1] == ' ' && x == '\'' && i + 1 < total3) {
            char x1 = t[i + 1];
            if (x1 == 's' || x1 == 'm') n--;
            else if (x1 != 't' && x1 != 'd' && i + 2 < total3) {
                char x2 = t[i + 2];
                if ((x1 == 'r' && x2 == 'e') || (x1 == 'v' && x2 == 'e')) n--;
            }
        }
        t[n++] = x;
    }
    return n;
}

/* See the header: llama_vocab::detokenize. */
int bn_detokenize(const bn_vocab *v, const int32_t *ids, size_t n, bool remove_special,
                  bool unparse_special, char **out, size_t *out_len, bn_err *e) {
    bool remove_space = v->add_space_prefix;
    if (remove_special && v->add_bos && n > 0 && ids[0] == v->bos) {
        remove_space = false;
        ids++;
        n--;
    }
    if (remove_special && v->add_eos && n > 0 && ids[n - 1] == v->eos) n--;
    size_t pm = bn_vocab_piece_max(v);
    size_t cap = 64, len = 0;
    char *text = malloc(cap), *piece = malloc(pm);
    if (!text || !piece) {
        free(text);
        free(piece);
        return bn_errf(e, "detok: out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        long k = bn_token_piece(v, ids[i], unparse_special, remove_space ? 1 : 0, piece, e);
        remove_space = false;
        if (k < 0) {
            free(text);
            free(piece);
            return -1;
        }
        if (len + (size_t)k + 1 > cap) {
            while (len + (size_t)k + 1 > cap) cap *= 2;
            char *nt = realloc(text, cap);
            if (!nt) {
                free(text);
                free(piece);
                return bn_errf(e, "detok: out of memory");
            }
            text = nt;
        }
        memcpy(text + len, piece, (size_t)k);
        len += (size_t)k;
    }
    free(piece);
    if (v->clean_spaces) len = clean_spaces(text, len);
    text[len] = 0;
    *out = text;
    *out_len = len;
    return 0;
}
