/* gpu.c - the C side of the GPU path: checks a bn_model against what the
 * CUDA kernels implement, translates it into the plain bn_cu_desc of
 * lib/cuda/bn_cuda.h, and keeps the position like lib/forward.c does. Built
 * without BN_HAVE_CUDA every entry point reports "built without CUDA". */
#include "gpu.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/bn_cuda.h" /* plain C: the format ids; its functions exist only with BN_HAVE_CUDA */

#define NO_CUDA "built without CUDA (make CUDA=1)"

/* The GPU kernel format of a GGUF type; -1 if the GPU has none. */
static int cu_wtype(uint32_t t) {
    switch (t) {
    case BN_TYPE_I2_S: return BN_CU_I2S;
    case BN_TYPE_TQ2_0: return BN_CU_TQ2_0;
    case BN_TYPE_F16: return BN_CU_F16;
    case BN_TYPE_Q8_0: return BN_CU_Q8_0;
    case BN_TYPE_F32: return BN_CU_F32;
    default: return -1;
    }
}

int bn_gpu_supports(const bn_model *m, bn_err *e) {
    const bn_hparams *hp = &m->hp;
    for (int il = 0; il < hp->n_layer; il++) {
        const bn_layer *L = &m->layers[il];
        const bn_qmat *w[7] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->wgate, &L->wup, &L->wdown};
        for (int i = 0; i < 7; i++)
            if (cu_wtype(w[i]->type) < 0)
                return bn_errf(e, "gpu: blk.%d: weight type %s has no CUDA kernel", il, bn_type_name(w[i]->type));
    }
    if (cu_wtype(m->head.type) < 0) return bn_errf(e, "gpu: output: type %s has no CUDA kernel", bn_type_name(m->head.type));
    const uint32_t et = m->tok_embd->type;
    if (et != BN_TYPE_F16 && et != BN_TYPE_F32 && et != BN_TYPE_Q8_0)
        return bn_errf(e, "gpu: token_embd: type %s has no CUDA embedding kernel", bn_type_name(et));
    if (hp->head_dim > 256 || hp->head_dim % 2 || hp->n_rot > hp->head_dim || hp->n_rot % 2)
        return bn_errf(e, "gpu: head_dim: %d (n_rot %d) not supported (<= 256, even)", hp->head_dim, hp->n_rot);
    return 0;
}

#ifndef BN_HAVE_CUDA

int bn_gpu_available(char *why, size_t n) {
    if (why && n) snprintf(why, n, "%s", NO_CUDA);
    return 0;
}
void bn_gpu_describe(int device, char *buf, size_t n) { snprintf(buf, n, "cuda:%d: %s", device, NO_CUDA); }
int bn_gpu_model_new(bn_gpu_model **out, const bn_model *m, const bn_gpu_opts *o, bn_err *e) {
    *out = NULL;
    return bn_errf(e, "gpu: %s", NO_CUDA);
}
void bn_gpu_model_free(bn_gpu_model *g) { (void)g; }
int bn_gpu_n_ctx(const bn_gpu_model *g) { return 0; }
int bn_gpu_pos(const bn_gpu_model *g) { return 0; }
void bn_gpu_reset(bn_gpu_model *g) {}
size_t bn_gpu_bytes(const bn_gpu_model *g) { return 0; }
int bn_gpu_eval(bn_gpu_model *g, const int32_t *tokens, int n, float *logits, int n_out, bn_err *e) {
    return bn_errf(e, "gpu: %s", NO_CUDA);
}
int bn_gpu_eval_topk(bn_gpu_model *g, const int32_t *tokens, int n, int k, float *vals, int32_t *ids, bn_err *e) {
    return bn_errf(e, "gpu: %s", NO_CUDA);
}
void bn_gpu_receipt(const bn_gpu_model *g, char *buf, size_t n) { snprintf(buf, n, "%s", NO_CUDA); }
int bn_gpu_copy_bandwidth(int device, size_t bytes, int iters, double *gbps, bn_err *e) {
    *gbps = 0;
    return bn_errf(e, "gpu: %s", NO_CUDA);
}

#else

/* Kernel path names for receipts, by cu_wtype. */
static const char *const k_path[] = {"i2_s/cuda-dp4a", "tq2_0/cuda-dp4a", "f16/cuda", "q8_0/cuda", "f32/cuda"};

struct bn_gpu_model {
    const bn_model *m;
    bn_cu_model *cu;
    int device, n_ctx, pos;
    bool graph, fuse;
};

int bn_gpu_available(char *why, size_t n) {
    char tmp[256];
    const int c = bn_cu_device_count(tmp, sizeof tmp);
    if (c <= 0 && why && n) snprintf(why, n, "%s", tmp);
    return c > 0 ? c : 0;
}

void bn_gpu_describe(int device, char *buf, size_t n) { bn_cu_device_name(device, buf, n); }

/* bn_qmat -> bn_cu_mat (host view). */
static void to_cu(bn_cu_mat *d, const bn_qmat *s) {
    d->wtype = cu_wtype(s->type);
    d->K = s->K;
    d->M = s->M;
    d->data = s->data;
    d->row_bytes = s->row_bytes;
    d->scale = s->scale;
}

int bn_gpu_model_new(bn_gpu_model **out, const bn_model *m, const bn_gpu_opts *o, bn_err *e) {
    *out = NULL;
    const bn_hparams *hp = &m->hp;
    char why[256], err[256];
    if (bn_gpu_available(why, sizeof why) <= 0) return bn_errf(e, "gpu: %s", why);
    if (bn_gpu_supports(m, e) < 0) return -1;
    const int n_ctx = o && o->n_ctx > 0 ? o->n_ctx : hp->n_ctx_train;
    if (n_ctx <= 0 || n_ctx > (1 << 24)) return bn_errf(e, "gpu: n_ctx: %d out of range", n_ctx);
    bn_gpu_model *g = bn_calloc(1, sizeof *g, e);
    if (!g) return -1;
    g->m = m;
    g->device = o ? o->device : 0;
    g->n_ctx = n_ctx;
    g->graph = !(o && o->no_graph);
    g->fuse = !(o && o->no_fuse);

    bn_cu_layer *ly = bn_calloc((size_t)hp->n_layer, sizeof *ly, e);
    float *cs = ly ? bn_malloc((size_t)n_ctx * hp->n_rot * sizeof(float), e) : NULL;
    if (!cs) { free(ly); free(g); return -1; }
    const bool use_scales = strcmp(m->arch, "bitnet") == 0; /* as lib/forward.c */
    for (int il = 0; il < hp->n_layer; il++) {
        const bn_layer *L = &m->layers[il];
        const bn_qmat *w[7] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->wgate, &L->wup, &L->wdown};
        const float s[7] = {L->sq, L->sk, L->sv, L->so, L->sgate, L->sup, L->sdown};
        ly[il].attn_norm = L->attn_norm;
        ly[il].attn_sub_norm = L->attn_sub_norm;
        ly[il].ffn_norm = L->ffn_norm;
        ly[il].ffn_sub_norm = L->ffn_sub_norm;
        for (int i = 0; i < 7; i++) {
            to_cu(&ly[il].w[i], w[i]);
            ly[il].s[i] = use_scales ? s[i] : 1.0f;
        }
    }
    /* rope angles exactly as lib/forward.c rope_cache, for every position */
    const float theta_scale = powf(hp->rope_base, -2.0f / (float)hp->n_rot);
    for (int p = 0; p < n_ctx; p++) {
        float theta = (float)p, *c = cs + (size_t)p * hp->n_rot;
        for (int i = 0; i < hp->n_rot / 2; i++) {
            c[2 * i] = cosf(theta);
            c[2 * i + 1] = sinf(theta);
            theta *= theta_scale;
        }
    }
    bn_cu_desc d = {
        .n_vocab = hp->n_vocab, .n_embd = hp->n_embd, .n_layer = hp->n_layer, .n_head = hp->n_head,
        .n_head_kv = hp->n_head_kv, .head_dim = hp->head_dim, .n_ff = hp->n_ff, .n_rot = hp->n_rot,
        .rms_eps = hp->rms_eps, .ffn_silu = m->act == BN_FFN_SILU, .layers = ly, .output_norm = m->output_norm,
        .n_ctx = n_ctx, .n_batch = o && o->n_batch > 0 ? o->n_batch : 128, .rope_cs = cs, .device = g->device,
        .use_graph = g->graph, .use_fused = g->fuse,
    };
    const bn_gguf_tensor *te = m->tok_embd;
    d.embd.wtype = cu_wtype(te->type);
    d.embd.K = te->ne[0];
    d.embd.M = te->ne[1];
    d.embd.data = te->data;
    d.embd.row_bytes = bn_qmat_row_bytes(te->type, te->ne[0]);
    d.embd.scale = 1.0f;
    to_cu(&d.head, &m->head);
    const int rc = bn_cu_model_new(&g->cu, &d, err, sizeof err);
    free(cs);
    free(ly);
    if (rc < 0) {
        free(g);
        return bn_errf(e, "gpu: cuda:%d: %s", o ? o->device : 0, err);
    }
    *out = g;
    return 0;
}

void bn_gpu_model_free(bn_gpu_model *g) {
    if (!g) return;
    bn_cu_model_free(g->cu);
    free(g);
}

int bn_gpu_n_ctx(const bn_gpu_model *g) { return g->n_ctx; }
int bn_gpu_pos(const bn_gpu_model *g) { return g->pos; }
void bn_gpu_reset(bn_gpu_model *g) { g->pos = 0; }
size_t bn_gpu_bytes(const bn_gpu_model *g) { return bn_cu_model_bytes(g->cu); }

/* The checks of bn_forward_eval, before anything runs. */
static int check_tokens(const bn_gpu_model *g, const int32_t *tokens, int n, bn_err *e) {
    if (n < 0) return bn_errf(e, "gpu: n: %d tokens", n);
    if ((int64_t)g->pos + n > g->n_ctx)
        return bn_errf(e, "gpu: context: %d tokens at position %d exceed the context size %d (-c)", n, g->pos, g->n_ctx);
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= g->m->hp.n_vocab)
            return bn_errf(e, "gpu: token: id %d out of range 0..%d", tokens[i], g->m->hp.n_vocab - 1);
    return 0;
}

int bn_gpu_eval(bn_gpu_model *g, const int32_t *tokens, int n, float *logits, int n_out, bn_err *e) {
    char err[256];
    if (n_out < 0 || n_out > n) return bn_errf(e, "gpu: n_out: %d not in 0..%d", n_out, n);
    if (check_tokens(g, tokens, n, e) < 0) return -1;
    if (n == 0) return 0;
    if (bn_cu_model_eval(g->cu, tokens, n, g->pos, logits, n_out, 0, NULL, NULL, err, sizeof err) < 0)
        return bn_errf(e, "gpu: cuda:%d: %s", g->device, err);
    g->pos += n;
    return 0;
}

int bn_gpu_eval_topk(bn_gpu_model *g, const int32_t *tokens, int n, int k, float *vals, int32_t *ids, bn_err *e) {
    char err[256];
    if (k < 1 || k > 256 || k > g->m->hp.n_vocab) return bn_errf(e, "gpu: top-k: k %d not in 1..256 (and <= n_vocab)", k);
    if (n < 1) return bn_errf(e, "gpu: top-k: needs at least one token");
    if (check_tokens(g, tokens, n, e) < 0) return -1;
    if (bn_cu_model_eval(g->cu, tokens, n, g->pos, NULL, 1, k, vals, ids, err, sizeof err) < 0)
        return bn_errf(e, "gpu: cuda:%d: %s", g->device, err);
    g->pos += n;
    return 0;
}

void bn_gpu_receipt(const bn_gpu_model *g, char *buf, size_t n) {
    char dev[160];
    uint32_t types[16];
    const int nt = bn_model_weight_types(g->m, types, 16);
    bn_cu_device_name(g->device, dev, sizeof dev);
    size_t used = (size_t)snprintf(buf, n, "cuda:%d %s", g->device, dev);
    for (int i = 0; i < nt && used < n; i++) {
        const int w = cu_wtype(types[i]);
        used += (size_t)snprintf(buf + used, n - used, " %s", w >= 0 ? k_path[w] : "?");
    }
    if (used < n)
        snprintf(buf + used, n - used, " graph=%s fused=%s kv=f16 mem=%.2fGiB", bn_cu_model_uses_graph(g->cu) ? "on" : "off",
                 bn_cu_model_uses_fused(g->cu) ? "on" : "off",
                 (double)bn_cu_model_bytes(g->cu) / (1024.0 * 1024 * 1024));
}

int bn_gpu_copy_bandwidth(int device, size_t bytes, int iters, double *gbps, bn_err *e) {
    char err[256];
    if (bn_cu_copy_bandwidth(device, bytes, iters, gbps, err, sizeof err) < 0) return bn_errf(e, "gpu: cuda:%d: %s", device, err);
    return 0;
}

#endif

/* ---- device selection ------------------------------------------------------ */

int bn_device_parse(const char *s) {
    if (!s) return -1;
    if (strcmp(s, "cpu") == 0) return BN_DEVICE_CPU;
    if (strcmp(s, "cuda") == 0 || strcmp(s, "gpu") == 0) return BN_DEVICE_CUDA;
    if (strcmp(s, "auto") == 0) return BN_DEVICE_AUTO;
    return -1;
}

/* Try the GPU pass; 0 and x->gpu set, or -1 with the reason in why. */
static int engine_try_gpu(bn_engine *x, const bn_model *m, const bn_forward_opts *fo, char *why, size_t n) {
    bn_err ge = {{0}};
    if (fo->kv != BN_KV_F16) {
        snprintf(why, n, "gpu: kv: the GPU cache is f16 only");
        return -1;
    }
    if (bn_gpu_available(why, n) <= 0) return -1;
    if (bn_gpu_supports(m, &ge) < 0) {
        snprintf(why, n, "%s", ge.msg);
        return -1;
    }
    bn_gpu_opts go = {.device = 0, .n_ctx = fo->n_ctx, .n_batch = fo->n_batch};
    if (bn_gpu_model_new(&x->gpu, m, &go, &ge) < 0) {
        snprintf(why, n, "%s", ge.msg);
        return -1;
    }
    return 0;
}

int bn_engine_open(bn_engine *x, const bn_model *m, const bn_forward_opts *fo, bn_device dev, bool strict, bn_err *e) {
    memset(x, 0, sizeof *x);
    if (dev == BN_DEVICE_CUDA || dev == BN_DEVICE_AUTO) {
        char why[BN_ERR_MAX] = "";
        if (engine_try_gpu(x, m, fo, why, sizeof why) == 0) return 0;
        if (dev == BN_DEVICE_CUDA && strict) return bn_errf(e, "device cuda: %s", why);
        snprintf(x->note, sizeof x->note, "%s", why);
    }
    x->n_vocab = m->hp.n_vocab;
    x->row = bn_malloc((size_t)x->n_vocab * sizeof(float), e);
    if (!x->row) return -1;
    if (bn_forward_new(&x->cpu, m, fo, e) < 0) {
        free(x->row);
        x->row = NULL;
        return -1;
    }
    return 0;
}

void bn_engine_close(bn_engine *x) {
    if (x->gpu) bn_gpu_model_free(x->gpu);
    if (x->cpu) bn_forward_free(x->cpu);
    free(x->row);
    x->gpu = NULL;
    x->cpu = NULL;
    x->row = NULL;
}

/* Top k of v[n] by insertion into a sorted list (k <= 256): value
 * descending, ties by lower id, as k_topk_stage on the GPU. */
static void topk_host(const float *v, int n, int k, float *vals, int32_t *ids) {
    int m = 0;
    for (int i = 0; i < n; i++) {
        if (m == k && !(v[i] > vals[k - 1])) continue; /* equal value: the earlier (lower) id stays */
        int j = m < k ? m++ : k - 1;
        while (j > 0 && v[i] > vals[j - 1]) {
            vals[j] = vals[j - 1];
            ids[j] = ids[j - 1];
            j--;
        }
        vals[j] = v[i];
        ids[j] = i;
    }
}

int bn_engine_eval_topk(bn_engine *x, const int32_t *tokens, int n, int k, float *vals, int32_t *ids, bn_err *e) {
    if (x->gpu) return bn_gpu_eval_topk(x->gpu, tokens, n, k, vals, ids, e);
    if (k < 1 || k > 256 || k > x->n_vocab) return bn_errf(e, "engine: top-k: k %d not in 1..256 (and <= n_vocab)", k);
    if (n < 1) return bn_errf(e, "engine: top-k: needs at least one token");
    if (bn_forward_eval(x->cpu, tokens, n, x->row, 1, e) < 0) return -1;
    topk_host(x->row, x->n_vocab, k, vals, ids);
    return 0;
}

int bn_engine_eval(bn_engine *x, const int32_t *tokens, int n, float *logits, int n_out, bn_err *e) {
    return x->gpu ? bn_gpu_eval(x->gpu, tokens, n, logits, n_out, e) : bn_forward_eval(x->cpu, tokens, n, logits, n_out, e);
}

int bn_engine_pos(const bn_engine *x) { return x->gpu ? bn_gpu_pos(x->gpu) : bn_forward_pos(x->cpu); }
int bn_engine_n_ctx(const bn_engine *x) { return x->gpu ? bn_gpu_n_ctx(x->gpu) : bn_forward_n_ctx(x->cpu); }

void bn_engine_reset(bn_engine *x) {
    if (x->gpu) bn_gpu_reset(x->gpu);
    else bn_forward_reset(x->cpu);
}

void bn_engine_receipt(const bn_engine *x, char *buf, size_t n) {
    if (x->gpu) bn_gpu_receipt(x->gpu, buf, n);
    else bn_forward_receipt(x->cpu, buf, n);
}
