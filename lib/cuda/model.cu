/* model.cu - a bn model resident on the GPU: weights uploaded once (the I2_S
 * x86 layout is used as stored, see kernels.cu), an F16 KV cache, and the
 * forward step of lib/forward.c as a sequence of kernels on one stream. A
 * single-token step is recorded once into a CUDA graph and replayed: tokens
 * and the position are read from device memory, filled by a copy node at the
 * start of the graph, so the graph does not depend on them. */
#include <stdlib.h>
#include <string.h>

#include "cuda/kernels.cuh"

enum { W_Q = 0, W_K, W_V, W_O, W_GATE, W_UP, W_DOWN };

struct bn_cu_model {
    int n_vocab, D, n_layer, n_head, n_head_kv, hd, FF, n_rot, n_ctx, B;
    int q_dim, kv_dim, qkv_dim, wmax, silu, use_graph, device;
    int fused;                 /* decode: norms fused into the I2_S matmuls (k_mm_i2s_nq) */
    float eps;
    cudaStream_t st;
    size_t bytes;
    /* weights */
    cu_mat *w;                 /* [n_layer][7] */
    float *ls;                 /* [n_layer][7] extra scales (host) */
    float **norm;              /* [n_layer][4] device: attn, attn_sub, ffn, ffn_sub */
    float *out_norm;
    cu_mat embd, head;
    unsigned need_embd, need_att, need_ff, need_head; /* act kinds per input site (bit masks) */
    /* activations */
    float *x, *xn, *qkv, *att, *gu, *y, *logits, *cs;
    float *att_part;           /* split-KV partials of decode attention */
    int8_t *q;
    float *qscale;
    int32_t *qsum;
    uint8_t *q8k, *q8_0;
    __half *f16;
    __half *kc, *vc;
    int32_t *io;               /* device: [0] = position of the batch, [1..B] tokens */
    int32_t *h_io;             /* pinned host twin */
    float *topv, *tmpv, *h_topv, *h_logits;
    int32_t *topi, *tmpi, *h_topi;
    /* decode graph */
    cudaGraphExec_t gexec;
    int g_mode;                /* -1: none; 0: logits; k > 0: top-k */
};

/* Device allocation that counts bytes (memory estimate in bn_cu_model_bytes). */
static cudaError_t dalloc(bn_cu_model *g, void **p, size_t n) {
    g->bytes += n;
    return cudaMalloc(p, n ? n : 1);
}

static int upload(bn_cu_model *g, cu_mat *dst, const bn_cu_mat *src, char *err, size_t errn) {
    void *d = NULL;
    const size_t n = (size_t)src->M * src->row_bytes;
    dst->wtype = src->wtype;
    dst->K = src->K;
    dst->M = src->M;
    dst->row_bytes = src->row_bytes;
    dst->scale = src->scale;
    dst->d = NULL;
    CU_TRY(dalloc(g, &d, n), "cudaMalloc weights");
    dst->d = (const uint8_t *)d;
    CU_TRY(cudaMemcpy(d, src->data, n, cudaMemcpyHostToDevice), "cudaMemcpy weights");
    return 0;
fail:
    return -1;
}

static int upload_f32(bn_cu_model *g, float **dst, const float *src, size_t n, char *err, size_t errn) {
    CU_TRY(dalloc(g, (void **)dst, n * sizeof(float)), "cudaMalloc norms");
    CU_TRY(cudaMemcpy(*dst, src, n * sizeof(float), cudaMemcpyHostToDevice), "cudaMemcpy norms");
    return 0;
fail:
    return -1;
}

/* Check that a matrix can go through a GPU kernel at its input width. */
static int check_mat(const bn_cu_mat *m, int64_t K, const char *what, char *err, size_t errn) {
    static const int blk[BN_CU_WCOUNT] = {128, 256, 1, 32, 1};
    if (m->wtype < 0 || m->wtype >= BN_CU_WCOUNT) { snprintf(err, errn, "%s: weight type has no GPU kernel", what); return -1; }
    if (m->K != K || m->K % blk[m->wtype] != 0) {
        snprintf(err, errn, "%s: K %lld does not fit (expected %lld, multiple of %d)", what, (long long)m->K, (long long)K,
                 blk[m->wtype]);
        return -1;
    }
    if (cu_act_kind_of(m->wtype) == BN_CU_ACT_Q8K && K % 256) { snprintf(err, errn, "%s: K not a multiple of 256", what); return -1; }
    return 0;
}

extern "C" int bn_cu_model_new(bn_cu_model **out, const bn_cu_desc *d, char *err, size_t errn) {
    *out = NULL;
    bn_cu_model *g = (bn_cu_model *)calloc(1, sizeof *g);
    if (!g) { snprintf(err, errn, "out of host memory"); return -1; }
    g->g_mode = -1;
    g->n_vocab = d->n_vocab; g->D = d->n_embd; g->n_layer = d->n_layer; g->n_head = d->n_head;
    g->n_head_kv = d->n_head_kv; g->hd = d->head_dim; g->FF = d->n_ff; g->n_rot = d->n_rot;
    g->n_ctx = d->n_ctx; g->B = d->n_batch > 0 ? d->n_batch : 128; g->eps = d->rms_eps; g->silu = d->ffn_silu;
    g->use_graph = d->use_graph;
    g->fused = d->use_fused;
    g->device = d->device;
    g->q_dim = g->n_head * g->hd;
    g->kv_dim = g->n_head_kv * g->hd;
    g->qkv_dim = g->q_dim + 2 * g->kv_dim;
    g->wmax = g->D > g->q_dim ? g->D : g->q_dim;
    g->wmax = g->wmax > g->FF ? g->wmax : g->FF;
    const size_t B = (size_t)g->B, L = (size_t)g->n_layer;
    if (g->hd > 256 || g->hd % 2 || g->n_rot > g->hd || g->n_rot % 2 || g->n_head_kv <= 0 || g->n_head % g->n_head_kv) {
        snprintf(err, errn, "head_dim %d / n_rot %d / heads %d:%d not supported by the GPU attention", g->hd, g->n_rot,
                 g->n_head, g->n_head_kv);
        free(g);
        return -1;
    }
    CU_TRY(cudaSetDevice(d->device), "cudaSetDevice");
    CU_TRY(cudaStreamCreateWithFlags(&g->st, cudaStreamNonBlocking), "cudaStreamCreate");

    g->w = (cu_mat *)calloc(L * 7, sizeof(cu_mat));
    g->ls = (float *)calloc(L * 7, sizeof(float));
    g->norm = (float **)calloc(L * 4, sizeof(float *));
    if (!g->w || !g->ls || !g->norm) { snprintf(err, errn, "out of host memory"); goto fail; }
    for (int il = 0; il < g->n_layer; il++) {
        const bn_cu_layer *ly = &d->layers[il];
        const int64_t Ks[7] = {g->D, g->D, g->D, g->q_dim, g->D, g->D, g->FF};
        for (int i = 0; i < 7; i++) {
            char what[64];
            snprintf(what, sizeof what, "blk.%d matmul %d", il, i);
            if (check_mat(&ly->w[i], Ks[i], what, err, errn) < 0) goto fail;
            if (upload(g, &g->w[il * 7 + i], &ly->w[i], err, errn) < 0) goto fail;
            g->ls[il * 7 + i] = ly->s[i];
            if (ly->w[i].wtype != BN_CU_I2S || !cu_fused_i2s_ok(Ks[i])) g->fused = 0;
            const unsigned bit = 1u << cu_act_kind_of(ly->w[i].wtype);
            if (i == W_O) g->need_att |= bit;
            else if (i == W_DOWN) g->need_ff |= bit;
            else g->need_embd |= bit;
        }
        const float *nv[4] = {ly->attn_norm, ly->attn_sub_norm, ly->ffn_norm, ly->ffn_sub_norm};
        const size_t nn[4] = {(size_t)g->D, (size_t)g->q_dim, (size_t)g->D, (size_t)g->FF};
        for (int i = 0; i < 4; i++)
            if (upload_f32(g, &g->norm[il * 4 + i], nv[i], nn[i], err, errn) < 0) goto fail;
    }
    if (upload_f32(g, &g->out_norm, d->output_norm, (size_t)g->D, err, errn) < 0) goto fail;
    if (d->embd.wtype != BN_CU_F16 && d->embd.wtype != BN_CU_F32 && d->embd.wtype != BN_CU_Q8_0) {
        snprintf(err, errn, "token_embd: type has no GPU embedding kernel");
        goto fail;
    }
    if (upload(g, &g->embd, &d->embd, err, errn) < 0) goto fail;
    if (check_mat(&d->head, g->D, "output", err, errn) < 0) goto fail;
    if (d->head.data == d->embd.data && d->head.wtype == d->embd.wtype) {
        g->head = g->embd; /* tied: one copy */
        g->head.scale = d->head.scale;
    } else if (upload(g, &g->head, &d->head, err, errn) < 0) {
        goto fail;
    }
    g->need_head = 1u << cu_act_kind_of(d->head.wtype);

    /* activations and caches */
    {
        const unsigned all = g->need_embd | g->need_att | g->need_ff | g->need_head;
        const size_t W = (size_t)g->wmax;
        CU_TRY(dalloc(g, (void **)&g->x, B * g->D * 4), "cudaMalloc");
        CU_TRY(dalloc(g, (void **)&g->xn, B * W * 4), "cudaMalloc");
        CU_TRY(dalloc(g, (void **)&g->qkv, B * g->qkv_dim * 4), "cudaMalloc");
        CU_TRY(dalloc(g, (void **)&g->att, B * g->q_dim * 4), "cudaMalloc");
        CU_TRY(dalloc(g, (void **)&g->gu, B * 2 * g->FF * 4), "cudaMalloc");
        CU_TRY(dalloc(g, (void **)&g->y, B * g->D * 4), "cudaMalloc");
        CU_TRY(dalloc(g, (void **)&g->logits, B * g->n_vocab * 4), "cudaMalloc logits");
        CU_TRY(dalloc(g, (void **)&g->att_part,
                      (size_t)g->n_head * BN_CU_ATT_MAX_SPLIT * (2 + g->hd) * 4), "cudaMalloc");
        CU_TRY(dalloc(g, (void **)&g->q, B * W), "cudaMalloc");
        CU_TRY(dalloc(g, (void **)&g->qscale, B * 4), "cudaMalloc");
        CU_TRY(dalloc(g, (void **)&g->qsum, B * 4), "cudaMalloc");
        if (all & (1u << BN_CU_ACT_Q8K)) CU_TRY(dalloc(g, (void **)&g->q8k, B * (W / 256 + 1) * BN_CU_Q8K_BYTES), "cudaMalloc");
        if (all & (1u << BN_CU_ACT_Q8_0)) CU_TRY(dalloc(g, (void **)&g->q8_0, B * (W / 32 + 1) * BN_CU_Q8_0_BYTES), "cudaMalloc");
        if (all & (1u << BN_CU_ACT_F16)) CU_TRY(dalloc(g, (void **)&g->f16, B * W * 2), "cudaMalloc");
        const size_t cache = L * (size_t)g->n_ctx * g->kv_dim * sizeof(__half);
        CU_TRY(dalloc(g, (void **)&g->kc, cache), "cudaMalloc kv cache");
        CU_TRY(dalloc(g, (void **)&g->vc, cache), "cudaMalloc kv cache");
        CU_TRY(cudaMemset(g->kc, 0, cache), "cudaMemset");
        CU_TRY(cudaMemset(g->vc, 0, cache), "cudaMemset");
        const size_t csn = (size_t)g->n_ctx * g->n_rot;
        if (upload_f32(g, &g->cs, d->rope_cs, csn, err, errn) < 0) goto fail;
        CU_TRY(dalloc(g, (void **)&g->io, (B + 1) * 4), "cudaMalloc");
        CU_TRY(cudaMallocHost((void **)&g->h_io, (B + 1) * 4), "cudaMallocHost");
        CU_TRY(dalloc(g, (void **)&g->topv, BN_CU_TOPK_MAX * 4), "cudaMalloc");
        CU_TRY(dalloc(g, (void **)&g->topi, BN_CU_TOPK_MAX * 4), "cudaMalloc");
        const size_t tn = cu_topk_tmp_elems(g->n_vocab, BN_CU_TOPK_MAX);
        CU_TRY(dalloc(g, (void **)&g->tmpv, tn * 4), "cudaMalloc");
        CU_TRY(dalloc(g, (void **)&g->tmpi, tn * 4), "cudaMalloc");
        CU_TRY(cudaMallocHost((void **)&g->h_topv, BN_CU_TOPK_MAX * 4), "cudaMallocHost");
        CU_TRY(cudaMallocHost((void **)&g->h_topi, BN_CU_TOPK_MAX * 4), "cudaMallocHost");
        CU_TRY(cudaMallocHost((void **)&g->h_logits, (size_t)g->n_vocab * 4), "cudaMallocHost");
    }
    CU_TRY(cudaDeviceSynchronize(), "upload");
    *out = g;
    return 0;
fail:
    bn_cu_model_free(g);
    return -1;
}

extern "C" void bn_cu_model_free(bn_cu_model *g) {
    if (!g) return;
    if (g->gexec) cudaGraphExecDestroy(g->gexec);
    if (g->w) {
        for (int i = 0; i < g->n_layer * 7; i++) cudaFree((void *)g->w[i].d);
        free(g->w);
    }
    if (g->norm) {
        for (int i = 0; i < g->n_layer * 4; i++) cudaFree(g->norm[i]);
        free(g->norm);
    }
    free(g->ls);
    if (g->head.d != g->embd.d) cudaFree((void *)g->head.d);
    cudaFree((void *)g->embd.d);
    void *dev[] = {g->out_norm, g->x, g->xn, g->qkv, g->att, g->gu, g->y, g->logits, g->att_part, g->cs, g->q, g->qscale, g->qsum,
                   g->q8k, g->q8_0, g->f16, g->kc, g->vc, g->io, g->topv, g->topi, g->tmpv, g->tmpi};
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++) cudaFree(dev[i]);
    cudaFreeHost(g->h_io);
    cudaFreeHost(g->h_topv);
    cudaFreeHost(g->h_topi);
    cudaFreeHost(g->h_logits);
    if (g->st) cudaStreamDestroy(g->st);
    free(g);
}

extern "C" size_t bn_cu_model_bytes(const bn_cu_model *g) { return g->bytes; }
extern "C" int bn_cu_model_uses_graph(const bn_cu_model *g) { return g->use_graph; }
extern "C" int bn_cu_model_uses_fused(const bn_cu_model *g) { return g->fused; }

/* Norm (mode) of n rows into xn, then every act kind in `need` from xn;
 * I8S is fused into the norm kernel. Returns the act view for width K. */
static cu_act norm_acts(bn_cu_model *g, int mode, const float *in, int64_t ld, const float *w, int n, int K, unsigned need) {
    cu_act a;
    a.K = K;
    a.q = g->q;
    a.qscale = g->qscale;
    a.qsum = g->qsum;
    a.q8k = g->q8k;
    a.q8_0 = g->q8_0;
    a.f16 = g->f16;
    a.f32 = g->xn;
    const bool i8 = need & (1u << BN_CU_ACT_I8S);
    cu_norm_quant(g->st, mode, in, ld, w, g->eps, n, K, g->xn, i8 ? g->q : NULL, g->qscale, g->qsum);
    if (need & (1u << BN_CU_ACT_Q8K)) cu_quant_q8k(g->st, g->xn, n, K, g->q8k);
    if (need & (1u << BN_CU_ACT_Q8_0)) cu_quant_q8_0(g->st, g->xn, n, K, g->q8_0);
    if (need & (1u << BN_CU_ACT_F16)) cu_quant_f16(g->st, g->xn, n, K, g->f16);
    return a;
}

/* Weights sharing one input: one launch when their types and K agree (the
 * usual case), else one launch each. */
static void matmul_group(bn_cu_model *g, int nw, const cu_mat *const *W, const cu_act *a, int n, float *const *Y,
                         int64_t ldy, const float *scale) {
    bool same = true;
    for (int i = 1; i < nw; i++) same = same && W[i]->wtype == W[0]->wtype && W[i]->K == W[0]->K;
    if (same) {
        cu_matmul_multi(g->st, nw, W, a, n, Y, ldy, scale, NULL);
        return;
    }
    for (int i = 0; i < nw; i++) cu_matmul(g->st, W[i], a, n, Y[i], ldy, scale[i], NULL);
}

/* The norm (mode) of n input rows, then nw weights sharing that input:
 * for one token of an all-I2_S model (fused) one k_mm_i2s_nq launch, the
 * same bits as norm_acts + the matmuls, which run otherwise. resid (the
 * residual add) applies to W[0] and is only used with nw == 1. */
static void norm_matmul(bn_cu_model *g, bool fused, int mode, const float *in, int64_t ld, const float *w, int n, int K,
                        unsigned need, int nw, const cu_mat *const *W, float *const *Y, int64_t ldy, const float *scale,
                        float *resid) {
    if (fused) {
        cu_matmul_i2s_fused(g->st, mode, in, w, g->eps, nw, W, Y, scale, resid);
        return;
    }
    cu_act a = norm_acts(g, mode, in, ld, w, n, K, need);
    if (nw == 1) cu_matmul(g->st, W[0], &a, n, Y[0], ldy, scale[0], resid);
    else matmul_group(g, nw, W, &a, n, Y, ldy, scale);
}

/* Enqueue one batch of n tokens (tokens and position already in g->io or
 * copied by the first node): the layers, then the head for rows
 * [first_out, n), then top-k (k > 0) or the logits copy (k == 0, to the
 * pinned buffer when to_pinned, for the last row only). */
static void enqueue_batch(bn_cu_model *g, int n, int first_out, int k, bool copy_logits_pinned) {
    cudaStream_t s = g->st;
    const int D = g->D, FF = g->FF;
    const int *pos0 = g->io;
    cudaMemcpyAsync(g->io, g->h_io, (size_t)(n + 1) * 4, cudaMemcpyHostToDevice, s);
    cu_embed(s, &g->embd, g->io + 1, n, g->x);
    const bool fused = n == 1 && g->fused; /* decode: five launches a layer */
    for (int il = 0; il < g->n_layer; il++) {
        const cu_mat *W = g->w + il * 7;
        const float *sc = g->ls + il * 7;
        float *const *nm = g->norm + il * 4;
        const size_t coff = (size_t)il * g->n_ctx * g->kv_dim;
        const cu_mat *qkv_w[3] = {&W[W_Q], &W[W_K], &W[W_V]}, *o_w[1] = {&W[W_O]}, *gu_w[2] = {&W[W_GATE], &W[W_UP]},
                     *d_w[1] = {&W[W_DOWN]};
        float *qkv_y[3] = {g->qkv, g->qkv + g->q_dim, g->qkv + g->q_dim + g->kv_dim}, *o_y[1] = {g->y},
              *gu_y[2] = {g->gu, g->gu + FF};
        norm_matmul(g, fused, BN_CU_NORM_RMS, g->x, D, nm[0], n, D, g->need_embd, 3, qkv_w, qkv_y, g->qkv_dim, sc + W_Q, NULL);
        cu_rope_store(s, g->qkv, n, pos0, g->n_head, g->n_head_kv, g->hd, g->n_rot, g->cs, g->kc + coff, g->vc + coff);
        cu_attention(s, g->qkv, g->qkv_dim, n, pos0, g->n_head, g->n_head_kv, g->hd, g->kc + coff, g->vc + coff, g->att,
                     g->q_dim, cu_attention_splits(n, g->n_ctx), g->att_part);
        norm_matmul(g, fused, BN_CU_NORM_RMS, g->att, g->q_dim, nm[1], n, g->q_dim, g->need_att, 1, o_w, o_y, D, sc + W_O,
                    g->x);
        norm_matmul(g, fused, BN_CU_NORM_RMS, g->x, D, nm[2], n, D, g->need_embd, 2, gu_w, gu_y, 2 * FF, sc + W_GATE, NULL);
        norm_matmul(g, fused, g->silu ? BN_CU_NORM_SILU : BN_CU_NORM_RELU2, g->gu, 2 * FF, nm[3], n, FF, g->need_ff, 1, d_w,
                    o_y, D, sc + W_DOWN, g->x);
    }
    const int n_out = n - first_out;
    if (n_out <= 0) return;
    cu_act a = norm_acts(g, BN_CU_NORM_RMS, g->x + (size_t)first_out * D, D, g->out_norm, n_out, D, g->need_head);
    cu_matmul(s, &g->head, &a, n_out, g->logits, g->n_vocab, 1.0f, NULL);
    if (k > 0) {
        cu_topk(s, g->logits + (size_t)(n_out - 1) * g->n_vocab, g->n_vocab, k, g->tmpv, g->tmpi, g->topv, g->topi);
        cudaMemcpyAsync(g->h_topv, g->topv, (size_t)k * 4, cudaMemcpyDeviceToHost, s);
        cudaMemcpyAsync(g->h_topi, g->topi, (size_t)k * 4, cudaMemcpyDeviceToHost, s);
    } else if (copy_logits_pinned) {
        cudaMemcpyAsync(g->h_logits, g->logits + (size_t)(n_out - 1) * g->n_vocab, (size_t)g->n_vocab * 4,
                        cudaMemcpyDeviceToHost, s);
    }
}

/* Record the single-token step for output mode (0 logits, k top-k) once. */
static int ensure_graph(bn_cu_model *g, int mode, char *err, size_t errn) {
    cudaGraph_t graph = NULL;
    if (g->gexec && g->g_mode == mode) return 0;
    if (g->gexec) {
        cudaGraphExecDestroy(g->gexec);
        g->gexec = NULL;
        g->g_mode = -1;
    }
    CU_TRY(cudaStreamBeginCapture(g->st, cudaStreamCaptureModeThreadLocal), "cudaStreamBeginCapture");
    enqueue_batch(g, 1, 0, mode, true);
    CU_TRY(cudaStreamEndCapture(g->st, &graph), "cudaStreamEndCapture");
    CU_TRY(cudaGraphInstantiate(&g->gexec, graph, 0), "cudaGraphInstantiate");
    cudaGraphDestroy(graph);
    g->g_mode = mode;
    return 0;
fail:
    if (graph) cudaGraphDestroy(graph);
    return -1;
}

extern "C" int bn_cu_model_eval(bn_cu_model *g, const int32_t *tokens, int n, int pos, float *logits, int n_out, int k,
                                float *topv, int32_t *topi, char *err, size_t errn) {
    if (k < 0 || k > BN_CU_TOPK_MAX || k > g->n_vocab) { snprintf(err, errn, "top-k: k %d not in 0..%d", k, BN_CU_TOPK_MAX); return -1; }
    if (k > 0 && n_out < 1) n_out = 1;
    if (n_out < 0 || n_out > n) { snprintf(err, errn, "n_out %d not in 0..%d", n_out, n); return -1; }
    if (pos < 0 || (int64_t)pos + n > g->n_ctx) { snprintf(err, errn, "context: %d tokens at %d exceed %d", n, pos, g->n_ctx); return -1; }
    const int first_out = n - n_out;
    CU_TRY(cudaSetDevice(g->device), "cudaSetDevice");
    for (int b0 = 0; b0 < n; b0 += g->B) {
        const int nb = n - b0 < g->B ? n - b0 : g->B;
        int fo = first_out - b0;
        fo = fo < 0 ? 0 : (fo > nb ? nb : fo);
        const bool last = b0 + nb == n;
        g->h_io[0] = pos + b0;
        memcpy(g->h_io + 1, tokens + b0, (size_t)nb * 4);
        const int kk = last ? k : 0;
        if (nb == 1 && g->use_graph && ensure_graph(g, kk, err, errn) < 0) {
            /* capture or instantiation refused (driver limits): run without graphs from now on */
            cudaGetLastError();
            g->use_graph = 0;
            err[0] = 0;
        }
        if (nb == 1 && g->use_graph) { /* decode: replay the recorded step */
            CU_TRY(cudaGraphLaunch(g->gexec, g->st), "cudaGraphLaunch");
            CU_TRY(cudaStreamSynchronize(g->st), "decode step");
            if (kk == 0 && fo == 0 && logits)
                memcpy(logits + (size_t)(b0 + fo - first_out) * g->n_vocab, g->h_logits, (size_t)g->n_vocab * 4);
        } else {
            enqueue_batch(g, nb, fo, kk, false);
            CU_TRY(cudaGetLastError(), "kernel launch");
            if (kk == 0 && fo < nb && logits)
                CU_TRY(cudaMemcpyAsync(logits + (size_t)(b0 + fo - first_out) * g->n_vocab, g->logits,
                                       (size_t)(nb - fo) * g->n_vocab * 4, cudaMemcpyDeviceToHost, g->st),
                       "cudaMemcpy logits");
            CU_TRY(cudaStreamSynchronize(g->st), "forward batch");
        }
        if (last && kk > 0) {
            memcpy(topv, g->h_topv, (size_t)k * 4);
            memcpy(topi, g->h_topi, (size_t)k * 4);
        }
    }
    return 0;
fail:
    return -1;
}
