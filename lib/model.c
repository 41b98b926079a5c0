/* model.c - hparams and tensor views of a BitNet GGUF, checked before compute. */
#include "model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quant.h"

const char *bn_ffn_act_name(bn_ffn_act a) {
    return a == BN_FFN_RELU2 ? "relu2" : a == BN_FFN_SILU ? "silu" : "default";
}

/* Accept the spellings HF configs and converters use. */
int bn_ffn_act_parse(const char *s) {
    if (!strcmp(s, "relu2") || !strcmp(s, "relu_squared") || !strcmp(s, "relu_sqr") || !strcmp(s, "relu^2"))
        return BN_FFN_RELU2;
    if (!strcmp(s, "silu") || !strcmp(s, "swish")) return BN_FFN_SILU;
    return -1;
}

/* Read "<arch>.<key>" as a positive int; required keys fail when absent. */
static int hp_int(const bn_gguf *g, const char *arch, const char *key, bool required, int dflt, int *out, bn_err *e) {
    char k[128];
    snprintf(k, sizeof k, "%s.%s", arch, key);
    uint32_t v;
    int r = bn_gguf_get_u32(g, k, &v, e);
    if (r < 0) return -1;
    if (r == 0) {
        if (required) return bn_errf(e, "%s: %s: missing", bn_gguf_path(g), k);
        *out = dflt;
        return 0;
    }
    if (v == 0 || v > (1u << 30)) return bn_errf(e, "%s: %s: %u out of range", bn_gguf_path(g), k, v);
    *out = (int)v;
    return 0;
}

static int hp_float(const bn_gguf *g, const char *arch, const char *key, bool required, float dflt, float *out, bn_err *e) {
    char k[128];
    snprintf(k, sizeof k, "%s.%s", arch, key);
    int r = bn_gguf_get_f32(g, k, out, e);
    if (r < 0) return -1;
    if (r == 0) {
        if (required) return bn_errf(e, "%s: %s: missing", bn_gguf_path(g), k);
        *out = dflt;
    }
    if (!isfinite(*out) || *out <= 0) return bn_errf(e, "%s: %s: %g must be finite and > 0", bn_gguf_path(g), k, *out);
    return 0;
}

/* A required tensor with the given 1-D or 2-D shape. */
static const bn_gguf_tensor *need(const bn_gguf *g, const char *name, int64_t ne0, int64_t ne1, bn_err *e) {
    const bn_gguf_tensor *t = bn_gguf_find_tensor(g, name);
    if (!t) { bn_errf(e, "%s: %s: tensor missing", bn_gguf_path(g), name); return NULL; }
    if (t->ne[0] != ne0 || t->ne[1] != ne1 || t->ne[2] != 1 || t->ne[3] != 1) {
        bn_errf(e, "%s: %s: shape [%lld, %lld, %lld, %lld], want [%lld, %lld]", bn_gguf_path(g), name,
                (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2], (long long)t->ne[3],
                (long long)ne0, (long long)ne1);
        return NULL;
    }
    return t;
}

/* Every value finite (strict-mode load check). */
static bool all_finite(const float *v, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(v[i])) return false;
    return true;
}

/* A norm vector: F32 used in place; F16/BF16 widened into an owned copy. */
static int load_norm(bn_model *m, const char *name, int64_t n, const bn_model_opts *o, const float **out, bn_err *e) {
    const bn_gguf_tensor *t = need(m->g, name, n, 1, e);
    if (!t) return -1;
    const float *v;
    if (t->type == BN_TYPE_F32) {
        v = (const float *)t->data;
    } else if (t->type == BN_TYPE_F16 || t->type == BN_TYPE_BF16) {
        if (o->strict)
            return bn_errf(e, "%s: %s: type %s would be converted to f32 on load (strict mode)", bn_gguf_path(m->g), name,
                           bn_type_name(t->type));
        float *w = bn_malloc((size_t)n * sizeof *w, e);
        if (!w) return -1;
        const uint16_t *h = (const uint16_t *)t->data;
        for (int64_t i = 0; i < n; i++) w[i] = t->type == BN_TYPE_F16 ? bn_f16_to_f32(h[i]) : bn_bf16_to_f32(h[i]);
        float **ow = realloc(m->owned, (size_t)(m->n_owned + 1) * sizeof *ow);
        if (!ow) { free(w); return bn_errf(e, "%s: out of memory", name); }
        m->owned = ow;
        m->owned[m->n_owned++] = w;
        if (!m->n_converted++) snprintf(m->warn, sizeof m->warn, "%s: type %s converted to f32 on load", name, bn_type_name(t->type));
        v = w;
    } else {
        return bn_errf(e, "%s: %s: type %s not supported for a norm (want f32, f16 or bf16)", bn_gguf_path(m->g), name,
                       bn_type_name(t->type));
    }
    if (o->strict && !all_finite(v, n)) return bn_errf(e, "%s: %s: NaN or Inf in weights", bn_gguf_path(m->g), name);
    *out = v;
    return 0;
}

static bool linear_type_ok(uint32_t t) {
    return t == BN_TYPE_I2_S || t == BN_TYPE_TQ2_0 || t == BN_TYPE_TQ1_0 || t == BN_TYPE_F16 || t == BN_TYPE_F32;
}
static bool embd_type_ok(uint32_t t) {
    return t == BN_TYPE_F16 || t == BN_TYPE_F32 || t == BN_TYPE_BF16 || t == BN_TYPE_Q8_0 || t == BN_TYPE_Q6_K;
}

/* A linear weight [K, M] of a supported type, as a kernel view. */
static int load_linear(bn_model *m, const char *name, int64_t K, int64_t M, bn_qmat *q, bn_err *e) {
    const bn_gguf_tensor *t = need(m->g, name, K, M, e);
    if (!t) return -1;
    if (!linear_type_ok(t->type))
        return bn_errf(e, "%s: %s: type %s not supported for a linear weight (want i2_s, tq2_0, tq1_0, f16 or f32)",
                       bn_gguf_path(m->g), name, bn_type_name(t->type));
    if (bn_qmat_from_tensor(q, t, e) < 0) { bn_err_prefix(e, bn_gguf_path(m->g)); return -1; }
    if (t->type == BN_TYPE_I2_S && !(isfinite(q->scale) && q->scale > 0))
        return bn_errf(e, "%s: %s: i2_s scale %g must be finite and > 0", bn_gguf_path(m->g), name, q->scale);
    return 0;
}

/* Optional bitnet "<name>.scale" tensor [1] F32; 1 when absent. */
static int load_scale(bn_model *m, const char *base, float *s, bn_err *e) {
    char name[BN_GGUF_MAX_NAME + 8];
    snprintf(name, sizeof name, "%s.scale", base);
    *s = 1.0f;
    const bn_gguf_tensor *t = bn_gguf_find_tensor(m->g, name);
    if (!t) return 0;
    if (t->type != BN_TYPE_F32 || t->ne[0] != 1 || t->ne[1] != 1 || t->ne[2] != 1 || t->ne[3] != 1)
        return bn_errf(e, "%s: %s: want one f32 value, got type %s with %lld elements", bn_gguf_path(m->g), name,
                       bn_type_name(t->type), (long long)(t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]));
    memcpy(s, t->data, 4);
    if (!isfinite(*s)) return bn_errf(e, "%s: %s: NaN or Inf", bn_gguf_path(m->g), name);
    return 0;
}

/* Special token ids; -1 if absent or out of range. */
static int32_t token_id(const bn_gguf *g, const char *key, int n_vocab) {
    uint32_t v;
    bn_err e2;
    if (bn_gguf_get_u32(g, key, &v, &e2) != 1 || v >= (uint32_t)n_vocab) return -1;
    return (int32_t)v;
}

/* Pick the FFN activation: override, then <arch>.hidden_activation, then the arch. */
static int pick_act(bn_model *m, const bn_model_opts *o, bn_err *e) {
    if (o->ffn_act != BN_FFN_DEFAULT) { m->act = o->ffn_act; return 0; }
    m->act = strcmp(m->arch, "bitnet") == 0 ? BN_FFN_SILU : BN_FFN_RELU2;
    char k[96];
    snprintf(k, sizeof k, "%s.hidden_activation", m->arch);
    bn_gguf_str s;
    int r = bn_gguf_get_str(m->g, k, &s, e);
    if (r < 0) return -1;
    if (r == 1) {
        char buf[32];
        size_t n = s.len < sizeof buf - 1 ? (size_t)s.len : sizeof buf - 1;
        memcpy(buf, s.ptr, n);
        buf[n] = 0;
        int a = bn_ffn_act_parse(buf);
        if (a < 0) return bn_errf(e, "%s: %s: activation \"%s\" not supported (relu2 or silu)", bn_gguf_path(m->g), k, buf);
        m->act = (bn_ffn_act)a;
    }
    return 0;
}

static int load_hparams(bn_model *m, bn_err *e) {
    const bn_gguf *g = m->g;
    const char *a = m->arch;
    bn_hparams *hp = &m->hp;
    if (hp_int(g, a, "embedding_length", true, 0, &hp->n_embd, e) < 0 ||
        hp_int(g, a, "block_count", true, 0, &hp->n_layer, e) < 0 ||
        hp_int(g, a, "feed_forward_length", true, 0, &hp->n_ff, e) < 0 ||
        hp_int(g, a, "attention.head_count", true, 0, &hp->n_head, e) < 0 ||
        hp_int(g, a, "attention.head_count_kv", false, hp->n_head, &hp->n_head_kv, e) < 0 ||
        hp_int(g, a, "context_length", true, 0, &hp->n_ctx_train, e) < 0 ||
        hp_float(g, a, "rope.freq_base", false, 10000.0f, &hp->rope_base, e) < 0 ||
        hp_float(g, a, "attention.layer_norm_rms_epsilon", true, 0, &hp->rms_eps, e) < 0)
        return -1;
    const char *p = bn_gguf_path(g);
    if (hp->n_embd % hp->n_head != 0)
        return bn_errf(e, "%s: %s.attention.head_count: %d does not divide embedding_length %d", p, a, hp->n_head, hp->n_embd);
    if (hp->n_head % hp->n_head_kv != 0)
        return bn_errf(e, "%s: %s.attention.head_count_kv: %d does not divide head_count %d", p, a, hp->n_head_kv, hp->n_head);
    hp->head_dim = hp->n_embd / hp->n_head;
    if (hp_int(g, a, "rope.dimension_count", false, hp->head_dim, &hp->n_rot, e) < 0) return -1;
    if (hp->n_rot > hp->head_dim || hp->n_rot % 2 != 0)
        return bn_errf(e, "%s: %s.rope.dimension_count: %d must be even and <= head dim %d", p, a, hp->n_rot, hp->head_dim);
    return 0;
}

/* Load everything; on failure the model is freed and e names the problem. */
/* The head as Q8_0 or Q6_K, quantized at load from F16/F32 rows with the
 * reference quantizers (what bn-quantize --token-embedding-type writes),
 * so an F16-head file can be decoded with ~half the head bytes per token
 * without rewriting it. Only the head changes: input embeddings still come
 * from the file's rows. */
static int requant_head(bn_model *m, uint32_t type, bn_err *e) {
    const int64_t K = m->head.K, M = m->head.M;
    if (type != BN_TYPE_Q8_0 && type != BN_TYPE_Q6_K)
        return bn_errf(e, "head: --head %s: only q8_0 and q6_k can be made at load", bn_type_name(type));
    if (m->head.type != BN_TYPE_F16 && m->head.type != BN_TYPE_F32)
        return bn_errf(e, "head: --head %s: the file's head is %s (requantizing needs f16 or f32)", bn_type_name(type),
                       bn_type_name(m->head.type));
    const int64_t blk = type == BN_TYPE_Q8_0 ? BN_QK8_0 : BN_QK_K;
    if (K % blk != 0) return bn_errf(e, "head: --head %s: n_embd %lld is not a multiple of %lld", bn_type_name(type), (long long)K, (long long)blk);
    const size_t rb = (size_t)(K / blk) * (type == BN_TYPE_Q8_0 ? sizeof(bn_block_q8_0) : sizeof(bn_block_q6_K));
    size_t total;
    if (!bn_mul_size((size_t)M, rb, &total)) return bn_errf(e, "head: size overflows");
    uint8_t *buf = bn_malloc(total, e);
    float *row = buf ? bn_malloc((size_t)K * sizeof(float), e) : NULL;
    if (!row) { free(buf); return -1; }
    for (int64_t r = 0; r < M; r++) {
        const uint8_t *src = m->head.data + (size_t)r * m->head.row_bytes;
        for (int64_t k = 0; k < K; k++)
            row[k] = m->head.type == BN_TYPE_F16 ? bn_f16_to_f32(((const uint16_t *)src)[k]) : ((const float *)src)[k];
        if (type == BN_TYPE_Q8_0) bn_quantize_row_q8_0_ref(row, (bn_block_q8_0 *)(buf + (size_t)r * rb), K);
        else bn_quantize_row_q6_K_ref(row, (bn_block_q6_K *)(buf + (size_t)r * rb), K);
    }
    free(row);
    m->head_owned = buf;
    m->head.type = type;
    m->head.data = buf;
    m->head.row_bytes = rb;
    return 0;
}

static void layer_weights(bn_layer *L, bn_qmat **w) {
    w[0] = &L->wq, w[1] = &L->wk, w[2] = &L->wv, w[3] = &L->wo, w[4] = &L->wgate, w[5] = &L->wup, w[6] = &L->wdown;
}
/* TQ1_0 layer weights rewritten as TQ2_0 in one buffer (bn-forward's default).
 * TQ1_0 packs 5 trits per byte; every one-token kernel has to decode base 3
 * per row and token, which holds it to ~10 GB/s a core of TQ1_0 blocks on
 * the Zen 5 VM, where the TQ2_0 kernel streams 32-34. The rewrite keeps each
 * block's codes and d (bn_tq1_0_to_tq2_0), and the TQ1_0 and TQ2_0 references
 * compute the same integer block sums and float chain, so the logits are
 * bitwise those of the TQ1_0 kernels (bn-forward.bats compares them). */
int bn_model_repack_tq1(bn_model *m, bn_tq1_to_tq2_fn to_tq2, bn_err *e) {
    if (!to_tq2) to_tq2 = bn_tq1_0_to_tq2_0;
    size_t total = 0;
    for (int il = 0; il < m->hp.n_layer; il++) {
        bn_qmat *w[7];
        layer_weights(&m->layers[il], w);
        for (int i = 0; i < 7; i++)
            if (w[i]->type == BN_TYPE_TQ1_0) total += (size_t)w[i]->M * (size_t)(w[i]->K / BN_QK_K) * sizeof(bn_block_tq2_0);
    }
    if (!total) return 0;
    uint8_t *buf = bn_alloc_big(total, e);
    if (!buf) {
        bn_err_prefix(e, "repack tq1_0");
        return -1;
    }
    size_t off = 0;
    for (int il = 0; il < m->hp.n_layer; il++) {
        bn_qmat *w[7];
        layer_weights(&m->layers[il], w);
        for (int i = 0; i < 7; i++) {
            bn_qmat *q = w[i];
            if (q->type != BN_TYPE_TQ1_0) continue;
            const int64_t nb = q->K / BN_QK_K;
            const size_t rb = (size_t)nb * sizeof(bn_block_tq2_0);
            for (int64_t r = 0; r < q->M; r++)
                to_tq2((const bn_block_tq1_0 *)(q->data + (size_t)r * q->row_bytes), (bn_block_tq2_0 *)(buf + off + (size_t)r * rb),
                       nb);
            q->type = BN_TYPE_TQ2_0;
            q->data = buf + off;
            q->row_bytes = rb;
            q->packed = NULL;
            off += (size_t)q->M * rb;
            m->n_repacked++;
        }
    }
    m->repacked = buf;
    m->repacked_bytes = total;
    return m->n_repacked;
}

int bn_model_load(bn_model *m, const bn_gguf *g, const bn_model_opts *o, bn_err *e) {
    memset(m, 0, sizeof *m);
    m->g = g;
    m->bos = m->eos = -1;
    const char *p = bn_gguf_path(g);
    bn_gguf_arch(g, m->arch, sizeof m->arch);
    if (strcmp(m->arch, "bitnet-b1.58") && strcmp(m->arch, "bitnet") && strcmp(m->arch, "bitnet-25"))
        return bn_errf(e, "%s: general.architecture: \"%s\" not supported (bitnet-b1.58, bitnet, bitnet-25)", p, m->arch);
    if (load_hparams(m, e) < 0 || pick_act(m, o, e) < 0) goto fail;
    bn_hparams *hp = &m->hp;

    m->tok_embd = bn_gguf_find_tensor(g, "token_embd.weight");
    if (!m->tok_embd) { bn_errf(e, "%s: token_embd.weight: tensor missing", p); goto fail; }
    if (m->tok_embd->ne[0] != hp->n_embd || m->tok_embd->ne[2] != 1 || m->tok_embd->ne[3] != 1 || m->tok_embd->ne[1] < 1 ||
        m->tok_embd->ne[1] > INT32_MAX) {
        bn_errf(e, "%s: token_embd.weight: shape [%lld, %lld], want [%d, n_vocab]", p, (long long)m->tok_embd->ne[0],
                (long long)m->tok_embd->ne[1], hp->n_embd);
        goto fail;
    }
    if (!embd_type_ok(m->tok_embd->type)) {
        bn_errf(e, "%s: token_embd.weight: type %s not supported (f16, f32, bf16, q8_0, q6_k)", p, bn_type_name(m->tok_embd->type));
        goto fail;
    }
    hp->n_vocab = (int)m->tok_embd->ne[1];
    int vs;
    if (hp_int(g, m->arch, "vocab_size", false, hp->n_vocab, &vs, e) < 0) goto fail;
    if (vs != hp->n_vocab) {
        bn_errf(e, "%s: %s.vocab_size: %d but token_embd.weight has %d rows", p, m->arch, vs, hp->n_vocab);
        goto fail;
    }
    const bn_gguf_kv *tk;
    uint64_t ntok;
    int r = bn_gguf_get_arr(g, "tokenizer.ggml.tokens", BN_GGUF_STR, &tk, &ntok, e);
    if (r < 0) goto fail;
    if (r == 1 && ntok != (uint64_t)hp->n_vocab) {
        bn_errf(e, "%s: tokenizer.ggml.tokens: %llu tokens but token_embd.weight has %d rows", p, (unsigned long long)ntok,
                hp->n_vocab);
        goto fail;
    }
    if (r == 1) { /* the vocabulary fingerprint stages compare in their hello frames */
        bn_sha256 s;
        bn_sha256_init(&s);
        bn_gguf_arr_iter it;
        bn_gguf_arr_iter_init(&it, tk);
        bn_gguf_str ts;
        static const uint8_t nul = 0;
        while (bn_gguf_arr_next_str(&it, &ts)) {
            bn_sha256_update(&s, ts.ptr, (size_t)ts.len);
            bn_sha256_update(&s, &nul, 1);
        }
        uint8_t d[32];
        bn_sha256_final(&s, d);
        bn_sha256_hex(d, m->vocab_fp);
    }

    const bn_gguf_tensor *out = bn_gguf_find_tensor(g, "output.weight");
    const bn_gguf_tensor *ht = out ? out : m->tok_embd;
    m->tied = out == NULL;
    if (out && !need(g, "output.weight", hp->n_embd, hp->n_vocab, e)) goto fail;
    if (!embd_type_ok(ht->type) || ht->type == BN_TYPE_BF16) {
        bn_errf(e, "%s: %s: type %s not supported for the output head (f16, f32, q8_0, q6_k)", p, ht->name, bn_type_name(ht->type));
        goto fail;
    }
    if (bn_qmat_from_tensor(&m->head, ht, e) < 0) { bn_err_prefix(e, p); goto fail; }
    if (o->head_type && o->head_type != ht->type && requant_head(m, o->head_type, e) < 0) { bn_err_prefix(e, p); goto fail; }
    if (load_norm(m, "output_norm.weight", hp->n_embd, o, &m->output_norm, e) < 0) goto fail;

    int q_dim = hp->n_head * hp->head_dim, kv_dim = hp->n_head_kv * hp->head_dim;
    m->layers = bn_calloc((size_t)hp->n_layer, sizeof *m->layers, e);
    if (!m->layers) goto fail;
    for (int il = 0; il < hp->n_layer; il++) {
        bn_layer *L = &m->layers[il];
        char n[BN_GGUF_MAX_NAME];
#define NAME(s) (snprintf(n, sizeof n, "blk.%d." s, il), n)
        if (load_norm(m, NAME("attn_norm.weight"), hp->n_embd, o, &L->attn_norm, e) < 0 ||
            load_norm(m, NAME("attn_sub_norm.weight"), q_dim, o, &L->attn_sub_norm, e) < 0 ||
            load_norm(m, NAME("ffn_norm.weight"), hp->n_embd, o, &L->ffn_norm, e) < 0 ||
            load_norm(m, NAME("ffn_sub_norm.weight"), hp->n_ff, o, &L->ffn_sub_norm, e) < 0 ||
            load_linear(m, NAME("attn_q.weight"), hp->n_embd, q_dim, &L->wq, e) < 0 ||
            load_linear(m, NAME("attn_k.weight"), hp->n_embd, kv_dim, &L->wk, e) < 0 ||
            load_linear(m, NAME("attn_v.weight"), hp->n_embd, kv_dim, &L->wv, e) < 0 ||
            load_linear(m, NAME("attn_output.weight"), q_dim, hp->n_embd, &L->wo, e) < 0 ||
            load_linear(m, NAME("ffn_gate.weight"), hp->n_embd, hp->n_ff, &L->wgate, e) < 0 ||
            load_linear(m, NAME("ffn_up.weight"), hp->n_embd, hp->n_ff, &L->wup, e) < 0 ||
            load_linear(m, NAME("ffn_down.weight"), hp->n_ff, hp->n_embd, &L->wdown, e) < 0 ||
            load_scale(m, NAME("attn_q"), &L->sq, e) < 0 || load_scale(m, NAME("attn_k"), &L->sk, e) < 0 ||
            load_scale(m, NAME("attn_v"), &L->sv, e) < 0 || load_scale(m, NAME("attn_output"), &L->so, e) < 0 ||
            load_scale(m, NAME("ffn_gate"), &L->sgate, e) < 0 || load_scale(m, NAME("ffn_up"), &L->sup, e) < 0 ||
            load_scale(m, NAME("ffn_down"), &L->sdown, e) < 0)
            goto fail;
#undef NAME
    }

    m->bos = token_id(g, "tokenizer.ggml.bos_token_id", hp->n_vocab);
    m->eos = token_id(g, "tokenizer.ggml.eos_token_id", hp->n_vocab);
    const char *eogk[] = {"tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"};
    for (size_t i = 0; i < sizeof eogk / sizeof *eogk; i++) {
        int32_t id = token_id(g, eogk[i], hp->n_vocab);
        bool dup = false;
        for (int j = 0; j < m->n_eog; j++) dup |= m->eog[j] == id;
        if (id >= 0 && !dup) m->eog[m->n_eog++] = id;
    }

    if (o->strict) { /* every embedding row must decode to finite values */
        float *row = bn_malloc((size_t)hp->n_embd * sizeof *row, e);
        if (!row) goto fail;
        for (int32_t t = 0; t < hp->n_vocab; t++) {
            if (bn_model_embed(m, t, row, e) < 0 || !all_finite(row, hp->n_embd)) {
                free(row);
                bn_errf(e, "%s: token_embd.weight: NaN or Inf in row %d", p, t);
                goto fail;
            }
        }
        free(row);
    }
    return 0;
fail:
    bn_model_free(m);
    return -1;
}

void bn_model_free(bn_model *m) {
    free(m->head_owned);
    if (m->repacked) bn_free_big(m->repacked, m->repacked_bytes);
    for (int i = 0; i < m->n_owned; i++) free(m->owned[i]);
    free(m->owned);
    free(m->layers);
    memset(m, 0, sizeof *m);
}

/* ggml_get_rows: one row of token_embd widened to f32. */
int bn_model_embed(const bn_model *m, int32_t id, float *out, bn_err *e) {
    const bn_gguf_tensor *t = m->tok_embd;
    int64_t K = m->hp.n_embd;
    if (id < 0 || id >= m->hp.n_vocab) return bn_errf(e, "token: id %d out of range 0..%d", id, m->hp.n_vocab - 1);
    const uint8_t *base = t->data;
    switch (t->type) {
    case BN_TYPE_F32: memcpy(out, base + (size_t)id * K * 4, (size_t)K * 4); return 0;
    case BN_TYPE_F16: {
        const uint16_t *h = (const uint16_t *)(base + (size_t)id * K * 2);
        for (int64_t i = 0; i < K; i++) out[i] = bn_f16_to_f32(h[i]);
        return 0;
    }
    case BN_TYPE_BF16: {
        const uint16_t *h = (const uint16_t *)(base + (size_t)id * K * 2);
        for (int64_t i = 0; i < K; i++) out[i] = bn_bf16_to_f32(h[i]);
        return 0;
    }
    case BN_TYPE_Q8_0:
        bn_dequantize_row_q8_0((const bn_block_q8_0 *)(base + (size_t)id * (K / BN_QK8_0) * sizeof(bn_block_q8_0)), out, K);
        return 0;
    case BN_TYPE_Q6_K:
        bn_dequantize_row_q6_K((const bn_block_q6_K *)(base + (size_t)id * (K / BN_QK_K) * sizeof(bn_block_q6_K)), out, K);
        return 0;
    default: return bn_errf(e, "token_embd.weight: type %s not supported", bn_type_name(t->type));
    }
}

/* The distinct types of the linear weights and the head, in first-use order. */
int bn_model_weight_types(const bn_model *m, uint32_t *types, int max) {
    int n = 0;
    for (int il = 0; il <= m->hp.n_layer; il++) {
        const bn_qmat *ws[7];
        int nw = 0;
        if (il < m->hp.n_layer) {
            const bn_layer *L = &m->layers[il];
            const bn_qmat *all[7] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->wgate, &L->wup, &L->wdown};
            memcpy(ws, all, sizeof all);
            nw = 7;
        } else {
            ws[0] = &m->head;
            nw = 1;
        }
        for (int i = 0; i < nw; i++) {
            bool seen = false;
            for (int j = 0; j < n; j++) seen |= types[j] == ws[i]->type;
            if (!seen && n < max) types[n++] = ws[i]->type;
        }
    }
    return n;
}
