/* test_gpu.c - every CUDA kernel against the CPU scalar reference of the
 * same operation (bn_kernels_for(BN_ISA_SCALAR), lib/quant.h), on random and
 * edge inputs (odd row counts, sizes that are not multiples of the tile,
 * all-zero rows, values at the int8 clamp, huge magnitudes), and with
 * --model FILE the whole forward pass: bn_gpu_eval against bn_forward_eval.
 *
 * Exact kernels (matmuls, quantizers, norms, RoPE, top-k) must agree bit for
 * bit; attention uses an online softmax and is checked with a tolerance.
 * Without a CUDA build or device every test is reported as a TAP skip
 * ("ok N - name # skip reason"). --probe exits 0 when a device is usable.
 *
 * Measurements (not tests, never run by make test; for the GPU machine):
 *   test_gpu --bandwidth          copy-kernel GB/s of device 0
 *   test_gpu --speed MODEL [N [P]]  P-token prefill (default 128) and N-step decode
 *                                 tokens/s, weight bytes per token, the fraction of the
 *                                 copy bandwidth, device memory; a JSON line last
 *
 * Device selection (runs on any machine; used by tests/gpu.bats):
 *   test_gpu --engine MODEL cpu|cuda|auto [strict]
 *       opens bn_engine, prints "engine: cpu|cuda" and the note; on the CPU
 *       it must give bitwise the logits of bn_forward itself (exit 1 if not,
 *       or if opening fails, with the error on stderr). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "forward.h"
#include "gpu.h"
#include "kernels.h"
#include "quant.h"
#include "tap.h"
#ifdef BN_HAVE_CUDA
#include "cuda/bn_cuda.h"
#endif

static const char *const test_names[] = {
    "i8s quantize (no norm) matches bn_quantize_row_i8s_ref",
    "rmsnorm + i8s quantize matches the forward.c formula",
    "relu^2 * up + sub-norm matches the CPU formula",
    "silu * up + sub-norm within 1e-6 of the CPU formula",
    "q8_K, q8_0 and f16 activation quantizers match the references byte for byte",
    "i2_s matmul (decode, prefill tiles, fused 3-weight launch) matches bn_mm_i2s_scalar bitwise",
    "tq2_0 matmul matches bn_mm_tq2_0_scalar bitwise",
    "q8_0 matmul matches bn_mm_q8_0_scalar bitwise",
    "f16 and f32 matmuls match the scalar references bitwise",
    "NEOX rope matches forward.c rope_neox",
    "attention over an f16 cache (whole and split-KV) within 2e-3 of a double reference",
    "top-k equals a full sort (ties by lower id)",
    "decode's fused norm + i8s + i2_s matmul (rms, relu^2, silu; 1-3 weights) equals the CPU chain bitwise",
};
#define N_TESTS (int)(sizeof test_names / sizeof test_names[0])

#ifdef BN_HAVE_CUDA

static uint64_t rng_s = 0x9E3779B97F4A7C15ull;
static uint64_t rng(void) {
    rng_s ^= rng_s >> 12; rng_s ^= rng_s << 25; rng_s ^= rng_s >> 27;
    return rng_s * 2685821657736338717ull;
}
static float unif(void) { return (float)((rng() >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f; }

/* Random rows with edge rows mixed in: row 1 all zero, row 2 one huge value,
 * row 3 values exactly at the clamp boundary. */
static float *rows(int n, int K, float amp) {
    float *x = malloc((size_t)n * K * sizeof *x);
    for (int i = 0; i < n * K; i++) x[i] = amp * unif();
    if (n > 1) memset(x + K, 0, (size_t)K * sizeof *x);
    if (n > 2) x[2 * K + K / 3] = 3.0e4f;
    if (n > 3) for (int i = 0; i < K; i++) x[3 * K + i] = (i & 1) ? 1.0f : -1.0f;
    return x;
}

static const bn_kernels *S;
static char err[256];

/* CPU rmsnorm exactly as lib/forward.c. */
static void ref_rms(float *o, const float *x, const float *w, int n, float eps) {
    double sum = 0.0;
    for (int i = 0; i < n; i++) sum += (double)(x[i] * x[i]);
    const float mean = (float)(sum / n);
    const float scale = 1.0f / sqrtf(mean + eps);
    for (int i = 0; i < n; i++) o[i] = (x[i] * scale) * w[i];
}

/* The CPU side of a norm of mode (bn_cuda.h) over one row: the row itself,
 * rmsnorm, or act(gate) * up then rmsnorm (xr holds gate then up). */
static void ref_norm(int mode, float *o, const float *xr, const float *w, int K) {
    if (mode == BN_CU_NORM_NONE) { memcpy(o, xr, (size_t)K * 4); return; }
    if (mode == BN_CU_NORM_RMS) { ref_rms(o, xr, w, K, 1e-5f); return; }
    for (int i = 0; i < K; i++) {
        const float g = xr[i], u = xr[K + i];
        if (mode == BN_CU_NORM_RELU2) { const float r = g > 0 ? g : 0; o[i] = (r * r) * u; }
        else o[i] = (g / (1.0f + expf(-g))) * u;
    }
    ref_rms(o, o, w, K, 1e-5f);
}

/* GPU norm+quant against CPU norm then bn_quantize_row_i8s_ref; mode as bn_cuda.h. */
static int norm_case(int mode, int n, int K, double tol) {
    const int ld = mode >= BN_CU_NORM_RELU2 ? 2 * K : K;
    float *x = rows(n, ld, 2.0f), *w = rows(1, K, 0.2f), *xn = malloc((size_t)n * K * 4), *rx = malloc((size_t)n * K * 4);
    for (int i = 0; i < K; i++) w[i] += 1.0f;
    int8_t *q = malloc((size_t)n * K), *rq = malloc((size_t)n * K);
    float sc[16], rsc[16];
    int32_t sm[16], rsm[16];
    int ok = bn_cu_test_norm_quant(mode, x, w, 1e-5f, n, K, xn, q, sc, sm, err, sizeof err) == 0;
    if (!ok) printf("# %s\n", err);
    for (int t = 0; ok && t < n; t++) {
        const float *xr = x + (size_t)t * ld;
        float *o = rx + (size_t)t * K;
        ref_norm(mode, o, xr, w, K);
        bn_quantize_row_i8s_ref(o, rq + (size_t)t * K, K, &rsc[t], &rsm[t]);
    }
    double md = 0;
    int qd = 0;
    for (size_t i = 0; ok && i < (size_t)n * K; i++) {
        const double d = fabs((double)xn[i] - rx[i]) / (fabs(rx[i]) > 1 ? fabs(rx[i]) : 1);
        md = d > md ? d : md;
        qd += q[i] != rq[i];
    }
    if (ok && tol == 0) {
        for (int t = 0; t < n; t++) ok &= sc[t] == rsc[t] && sm[t] == rsm[t];
        ok &= md == 0 && qd == 0;
    } else if (ok) {
        ok &= md <= tol;
    }
    if (!ok) printf("# mode %d n %d K %d: max rel diff %g, %d int8 codes differ\n", mode, n, K, md, qd);
    free(x); free(w); free(xn); free(rx); free(q); free(rq);
    return ok;
}

static int quant_cases(void) {
    int ok = 1;
    const int n = 5, K = 512;
    float *x = rows(n, K, 3.0f);
    bn_act a;
    const int kinds[3] = {BN_ACT_Q8K, BN_ACT_Q8_0, BN_ACT_F16};
    const int ckind[3] = {BN_CU_ACT_Q8K, BN_CU_ACT_Q8_0, BN_CU_ACT_F16};
    for (int i = 0; i < 3; i++) {
        bn_err e = {{0}};
        if (bn_act_alloc(&a, (bn_act_kind)kinds[i], K, n, &e) < 0) { printf("# %s\n", e.msg); return 0; }
        bn_act_quantize(S, &a, x, K, n);
        uint8_t *g = calloc((size_t)n, a.row_bytes);
        if (bn_cu_test_quant(ckind[i], x, n, K, g, a.row_bytes, err, sizeof err) < 0) { printf("# %s\n", err); ok = 0; }
        else if (memcmp(g, a.data, (size_t)n * a.row_bytes) != 0) {
            size_t at = 0;
            while (g[at] == ((const uint8_t *)a.data)[at]) at++;
            printf("# act kind %d differs: first at byte %zu (row %zu): gpu 0x%02x, cpu 0x%02x\n", kinds[i], at,
                   at / a.row_bytes, g[at], ((const uint8_t *)a.data)[at]);
            if (kinds[i] == BN_ACT_Q8_0) { /* the whole 34-byte block and its input, to tell d from q */
                const size_t b0 = at / sizeof(bn_block_q8_0) * sizeof(bn_block_q8_0);
                const float *xb = x + b0 / sizeof(bn_block_q8_0) * BN_QK8_0;
                printf("# block at byte %zu: gpu", b0);
                for (size_t j = 0; j < sizeof(bn_block_q8_0); j++) printf(" %02x", g[b0 + j]);
                printf("\n# block at byte %zu: cpu", b0);
                for (size_t j = 0; j < sizeof(bn_block_q8_0); j++) printf(" %02x", ((const uint8_t *)a.data)[b0 + j]);
                printf("\n# x:");
                for (int j = 0; j < BN_QK8_0; j++) printf(" %a", (double)xb[j]);
                printf("\n");
            }
            ok = 0;
        }
        free(g);
        bn_act_free(&a);
    }
    free(x);
    return ok;
}

/* A GPU matmul against the scalar table on the same quantized activations. */
static int mm_case(uint32_t type, int64_t K, int64_t M, int n, int nseg) {
    bn_err e = {{0}};
    const int64_t nel = K * M;
    float *w = malloc((size_t)nel * sizeof *w);
    const float s = 0.0625f;
    for (int64_t i = 0; i < nel; i++) {
        const float u = unif();
        w[i] = type == BN_TYPE_I2_S || type == BN_TYPE_TQ2_0 ? (u < -0.3f ? -s : u > 0.3f ? s : 0.0f) : u;
    }
    const size_t rb = bn_qmat_row_bytes(type, K);
    uint8_t *data = calloc(1, (size_t)M * rb + 64);
    bn_qmat W = {.type = type, .K = K, .M = M, .data = data, .row_bytes = rb, .scale = 1.0f};
    int cw = -1;
    switch (type) {
    case BN_TYPE_I2_S: bn_quantize_i2_s_ref(w, data, nel); memcpy(&W.scale, data + nel / 4, 4); cw = BN_CU_I2S; break;
    case BN_TYPE_TQ2_0: bn_quantize_row_tq2_0_ref(w, (bn_block_tq2_0 *)data, nel); cw = BN_CU_TQ2_0; break;
    case BN_TYPE_Q8_0: bn_quantize_row_q8_0_ref(w, (bn_block_q8_0 *)data, nel); cw = BN_CU_Q8_0; break;
    case BN_TYPE_F16: for (int64_t i = 0; i < nel; i++) ((uint16_t *)data)[i] = bn_f32_to_f16(w[i]); cw = BN_CU_F16; break;
    default: memcpy(data, w, (size_t)nel * 4); cw = BN_CU_F32; break;
    }
    float *x = rows(n, (int)K, 1.5f), *yr = malloc((size_t)n * M * 4), *yg = malloc((size_t)n * M * 4);
    bn_act a;
    int ok = bn_act_alloc(&a, (bn_act_kind)bn_act_kind_for(type), K, n, &e) == 0;
    if (ok) {
        bn_act_quantize(S, &a, x, K, n);
        S->matmul(&W, &a, 0, M, yr, M);
        bn_cu_mat cm = {.wtype = cw, .K = K, .M = M, .data = data, .row_bytes = rb, .scale = W.scale};
        ok = bn_cu_test_matmul(&cm, a.data, a.scale, a.sum, n, nseg, yg, err, sizeof err) == 0;
        if (!ok) printf("# %s\n", err);
        for (int64_t i = 0; ok && i < n * M; i++)
            if (memcmp(&yr[i], &yg[i], 4) != 0) {
                printf("# %s K %lld M %lld n %d segments %d: row %lld token %lld: gpu %.9g cpu %.9g\n", bn_type_name(type),
                       (long long)K, (long long)M, n, nseg, (long long)(i % M), (long long)(i / M), yg[i], yr[i]);
                ok = 0;
            }
        bn_act_free(&a);
    } else {
        printf("# %s\n", e.msg);
    }
    free(w); free(data); free(x); free(yr); free(yg);
    return ok;
}

static int mm_type(uint32_t type, int64_t K) {
    int ok = 1;
    const int ns[4] = {1, 2, 8, 11};  /* decode, and prefill tiles with a remainder */
    const int64_t Ms[2] = {37, 256}; /* odd row count: partial blocks of 8 rows */
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 2; j++) ok &= mm_case(type, K, Ms[j], ns[i], 1) & mm_case(type, K, Ms[j], ns[i], 3);
    return ok;
}

/* The fused decode kernel against the CPU chain: the norm of mode (as
 * norm_case's reference), bn_quantize_row_i8s_ref, bn_mm_i2s_scalar. */
static int fused_case(int mode, int64_t K, int64_t M, int nseg) {
    const int64_t ld = mode >= BN_CU_NORM_RELU2 ? 2 * K : K, nel = K * M;
    float *x = rows(1, (int)ld, 2.0f), *nw = rows(1, (int)K, 0.2f), *o = malloc((size_t)K * 4), *wf = malloc((size_t)nel * 4);
    for (int64_t i = 0; i < K; i++) nw[i] += 1.0f;
    for (int64_t i = 0; i < nel; i++) {
        const float u = unif();
        wf[i] = u < -0.3f ? -0.0625f : u > 0.3f ? 0.0625f : 0.0f;
    }
    if (K > 200) x[K / 2] = 40.0f; /* one outlier: most codes small */
    const size_t rb = bn_qmat_row_bytes(BN_TYPE_I2_S, K);
    uint8_t *data = calloc(1, (size_t)M * rb + 64);
    bn_quantize_i2_s_ref(wf, data, nel);
    bn_qmat W = {.type = BN_TYPE_I2_S, .K = K, .M = M, .data = data, .row_bytes = rb, .scale = 1.0f};
    memcpy(&W.scale, data + nel / 4, 4);
    ref_norm(mode, o, x, nw, (int)K);
    bn_err e = {{0}};
    bn_act a;
    float *yr = malloc((size_t)M * 4), *yg = malloc((size_t)M * 4);
    int ok = bn_act_alloc(&a, BN_ACT_I8S, K, 1, &e) == 0;
    if (ok) {
        a.n = 1;
        bn_quantize_row_i8s_ref(o, (int8_t *)a.data, K, &a.scale[0], &a.sum[0]);
        S->matmul(&W, &a, 0, M, yr, M);
        bn_cu_mat cm = {.wtype = BN_CU_I2S, .K = K, .M = M, .data = data, .row_bytes = rb, .scale = W.scale};
        ok = bn_cu_test_fused_i2s(mode, x, nw, 1e-5f, &cm, nseg, yg, err, sizeof err) == 0;
        if (!ok) printf("# %s\n", err);
        for (int64_t i = 0; ok && i < M; i++)
            if (memcmp(&yr[i], &yg[i], 4) != 0) {
                printf("# fused mode %d K %lld M %lld segments %d: row %lld: gpu %.9g cpu %.9g\n", mode, (long long)K,
                       (long long)M, nseg, (long long)i, yg[i], yr[i]);
                ok = 0;
            }
        bn_act_free(&a);
    } else {
        printf("# %s\n", e.msg);
    }
    free(x); free(nw); free(o); free(wf); free(data); free(yr); free(yg);
    return ok;
}

static int rope_case(void) {
    const int n = 3, nh = 4, nkv = 2, hd = 64, n_rot = 64, n_ctx = 16, pos = 9;
    const int w = (nh + 2 * nkv) * hd;
    float *qkv = rows(n, w, 1.0f), *ref = malloc((size_t)n * w * 4), *cs = malloc((size_t)n_ctx * n_rot * 4);
    const float ts = powf(10000.0f, -2.0f / n_rot);
    for (int p = 0; p < n_ctx; p++) {
        float th = (float)p;
        for (int i = 0; i < n_rot / 2; i++) { cs[p * n_rot + 2 * i] = cosf(th); cs[p * n_rot + 2 * i + 1] = sinf(th); th *= ts; }
    }
    memcpy(ref, qkv, (size_t)n * w * 4);
    for (int t = 0; t < n; t++)
        for (int h = 0; h < nh + nkv; h++) {
            float *v = ref + (size_t)t * w + h * hd;
            const float *c = cs + (pos + t) * n_rot;
            for (int i = 0; i < n_rot / 2; i++) {
                const float x0 = v[i], x1 = v[i + n_rot / 2];
                v[i] = x0 * c[2 * i] - x1 * c[2 * i + 1];
                v[i + n_rot / 2] = x0 * c[2 * i + 1] + x1 * c[2 * i];
            }
        }
    int ok = bn_cu_test_rope(qkv, n, pos, nh, nkv, hd, n_rot, cs, n_ctx, err, sizeof err) == 0;
    if (!ok) printf("# %s\n", err);
    ok = ok && memcmp(qkv, ref, (size_t)n * w * 4) == 0;
    free(qkv); free(ref); free(cs);
    return ok;
}

static int attention_case(int n, int pos, int hd, int nsplit) {
    const int nh = 4, nkv = 2, nk = pos + n, qd = nh * hd, kvd = nkv * hd;
    float *q = rows(n, qd, 1.0f), *out = malloc((size_t)n * qd * 4);
    uint16_t *kc = malloc((size_t)nk * kvd * 2), *vc = malloc((size_t)nk * kvd * 2);
    for (int i = 0; i < nk * kvd; i++) { kc[i] = bn_f32_to_f16(2 * unif()); vc[i] = bn_f32_to_f16(unif()); }
    int ok = bn_cu_test_attention(q, kc, vc, n, pos, nh, nkv, hd, nsplit, out, err, sizeof err) == 0;
    if (!ok) printf("# %s\n", err);
    double md = 0;
    double *sc = malloc((size_t)nk * sizeof *sc);
    for (int t = 0; ok && t < n; t++)
        for (int h = 0; h < nh; h++) {
            const int kvo = (h / (nh / nkv)) * hd, nkv_t = pos + t + 1;
            double mx = -INFINITY, sum = 0;
            for (int p = 0; p < nkv_t; p++) {
                double d = 0;
                for (int i = 0; i < hd; i++)
                    d += (double)bn_f16_to_f32(bn_f32_to_f16(q[(size_t)t * qd + h * hd + i])) * bn_f16_to_f32(kc[(size_t)p * kvd + kvo + i]);
                sc[p] = d / sqrt((double)hd);
                mx = sc[p] > mx ? sc[p] : mx;
            }
            for (int p = 0; p < nkv_t; p++) { sc[p] = exp(sc[p] - mx); sum += sc[p]; }
            for (int i = 0; i < hd; i++) {
                double o = 0;
                for (int p = 0; p < nkv_t; p++) o += sc[p] / sum * bn_f16_to_f32(vc[(size_t)p * kvd + kvo + i]);
                const double d = fabs(o - out[(size_t)t * qd + h * hd + i]);
                md = d > md ? d : md;
            }
        }
    if (md > 2e-3) { printf("# attention n %d pos %d hd %d splits %d: max diff %g\n", n, pos, hd, nsplit, md); ok = 0; }
    free(q); free(out); free(kc); free(vc); free(sc);
    return ok;
}

static int cmp_desc(const void *a, const void *b) {
    const float *x = a, *y = b; /* pairs (value, id as float bits) */
    if (x[0] != y[0]) return x[0] > y[0] ? -1 : 1;
    int32_t i, j;
    memcpy(&i, &x[1], 4);
    memcpy(&j, &y[1], 4);
    return i < j ? -1 : i > j;
}

static int topk_case(int n, int k) {
    float *v = malloc((size_t)n * 4), *pairs = malloc((size_t)n * 8), tv[256];
    int32_t ti[256];
    for (int i = 0; i < n; i++) v[i] = (float)(int)(unif() * 50) * 0.25f; /* many ties */
    v[n - 1] = 1000.0f;                                                  /* maximum in the last chunk */
    for (int i = 0; i < n; i++) { pairs[2 * i] = v[i]; memcpy(&pairs[2 * i + 1], &i, 4); }
    qsort(pairs, (size_t)n, 8, cmp_desc);
    int ok = bn_cu_test_topk(v, n, k, tv, ti, err, sizeof err) == 0;
    if (!ok) printf("# %s\n", err);
    for (int i = 0; ok && i < k; i++) {
        int32_t id;
        memcpy(&id, &pairs[2 * i + 1], 4);
        if (tv[i] != pairs[2 * i] || ti[i] != id) {
            printf("# top-k n %d k %d: rank %d gpu (%g, %d) cpu (%g, %d)\n", n, k, i, tv[i], ti[i], pairs[2 * i], id);
            ok = 0;
        }
    }
    free(v); free(pairs);
    return ok;
}

/* Whole model: GPU prefill + decode steps (graph and no graph) against the
 * CPU forward pass with the scalar kernels. */
static int model_parity(const char *path) {
    bn_err e = {{0}};
    bn_gguf *g = NULL;
    bn_model m;
    bn_forward *f = NULL;
    bn_gpu_model *gg = NULL, *gn = NULL, *gu = NULL;
    int ok = 0;
    if (bn_gguf_open(&g, path, &e) < 0) { printf("# %s\n", e.msg); return 0; }
    bn_model_opts mo = {0};
    if (bn_model_load(&m, g, &mo, &e) < 0) { printf("# %s\n", e.msg); bn_gguf_close(g); return 0; }
    const int V = m.hp.n_vocab, np = 9, nd = 6, nt = np + nd;
    int32_t tok[15];
    for (int i = 0; i < nt; i++) tok[i] = (int32_t)(rng() % (uint64_t)V);
    float *lc = malloc((size_t)nt * V * 4), *lg = malloc((size_t)nt * V * 4), *ln = malloc((size_t)nt * V * 4),
          *lu = malloc((size_t)nt * V * 4);
    bn_forward_opts fo = {.n_threads = 1, .n_batch = 4, .kv = BN_KV_F16, .kern = S, .n_ctx = 64};
    bn_gpu_opts go = {.n_ctx = 64, .n_batch = 4}, gno = {.n_ctx = 64, .n_batch = 4, .no_graph = true},
                guo = {.n_ctx = 64, .n_batch = 4, .no_fuse = true};
    if (bn_forward_new(&f, &m, &fo, &e) < 0 || bn_gpu_model_new(&gg, &m, &go, &e) < 0 || bn_gpu_model_new(&gn, &m, &gno, &e) < 0 ||
        bn_gpu_model_new(&gu, &m, &guo, &e) < 0) {
        printf("# %s\n", e.msg);
        goto out;
    }
    if (bn_forward_eval(f, tok, np, lc, np, &e) < 0 || bn_gpu_eval(gg, tok, np, lg, np, &e) < 0 ||
        bn_gpu_eval(gn, tok, np, ln, np, &e) < 0 || bn_gpu_eval(gu, tok, np, lu, np, &e) < 0) {
        printf("# %s\n", e.msg);
        goto out;
    }
    for (int i = np; i < nt; i++)
        if (bn_forward_eval(f, tok + i, 1, lc + (size_t)i * V, 1, &e) < 0 || bn_gpu_eval(gg, tok + i, 1, lg + (size_t)i * V, 1, &e) < 0 ||
            bn_gpu_eval(gn, tok + i, 1, ln + (size_t)i * V, 1, &e) < 0 || bn_gpu_eval(gu, tok + i, 1, lu + (size_t)i * V, 1, &e) < 0) {
            printf("# %s\n", e.msg);
            goto out;
        }
    ok = 1;
    int am = 0;
    double md = 0, range = 0;
    for (int t = 0; t < nt; t++) {
        const float *a = lc + (size_t)t * V, *b = lg + (size_t)t * V;
        am += bn_argmax(a, V) == bn_argmax(b, V);
        for (int i = 0; i < V; i++) {
            md = fmax(md, fabs((double)a[i] - b[i]));
            range = fmax(range, fabs((double)a[i]));
        }
    }
    const int same = memcmp(lg, ln, (size_t)nt * V * 4) == 0, fsame = memcmp(lg, lu, (size_t)nt * V * 4) == 0;
    printf("# model %s: max |gpu - cpu| %g (max |logit| %g), argmax agree %d/%d, graph == no graph: %d, "
           "fused == separate norms: %d\n", path, md, range, am, nt, same, fsame);
    ok = same && fsame && md <= 0.05 * (range > 1 ? range : 1) && am >= nt - 1;
    /* top-k of one more step equals the argmax of the full logits */
    float tv[8];
    int32_t ti[8];
    bn_gpu_reset(gg);
    int rc = bn_gpu_eval(gg, tok, np, lg, 1, &e);
    bn_gpu_reset(gg);
    if (rc < 0 || bn_gpu_eval_topk(gg, tok, np, 8, tv, ti, &e) < 0) {
        printf("# %s\n", e.msg);
        ok = 0;
    } else {
        ok &= ti[0] == bn_argmax(lg, V) && tv[0] == lg[ti[0]];
    }
out:
    bn_gpu_model_free(gg);
    bn_gpu_model_free(gn);
    bn_gpu_model_free(gu);
    bn_forward_free(f);
    bn_model_free(&m);
    bn_gguf_close(g);
    free(lc); free(lg); free(ln); free(lu);
    return ok;
}

/* Sum of the bytes a decode step must read: every matmul weight once. */
static double weight_bytes(const bn_model *m) {
    double b = (double)m->head.M * m->head.row_bytes;
    for (int il = 0; il < m->hp.n_layer; il++) {
        const bn_layer *L = &m->layers[il];
        const bn_qmat *w[7] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->wgate, &L->wup, &L->wdown};
        for (int i = 0; i < 7; i++) b += (double)w[i]->M * w[i]->row_bytes;
    }
    return b;
}

/* --speed: prefill of np tokens (batch np, best of 3), then n decode steps
 * through the graph with top-40 (as bn-sample asks); one JSON line at the end
 * for bench/gpu. */
static int speed(const char *path, int n, int np) {
    bn_err e = {{0}};
    bn_gguf *g = NULL;
    bn_model m;
    bn_gpu_model *gm = NULL;
    if (bn_gguf_open(&g, path, &e) < 0) { fprintf(stderr, "test_gpu: %s\n", e.msg); return 1; }
    bn_model_opts mo = {0};
    const char *head = getenv("BN_SPEED_HEAD"); /* q8_0: the compact head, requantized at load */
    if (head && strcmp(head, "q8_0") == 0) mo.head_type = BN_TYPE_Q8_0;
    if (bn_model_load(&m, g, &mo, &e) < 0) { fprintf(stderr, "test_gpu: %s\n", e.msg); bn_gguf_close(g); return 1; }
    const int ctx = np + n + 1;
    bn_gpu_opts go = {.n_ctx = ctx, .n_batch = np};
    int32_t *tok = malloc((size_t)(np + n) * sizeof *tok);
    float *lg = malloc((size_t)m.hp.n_vocab * sizeof *lg), tv[40];
    int32_t ti[40];
    int rc = 1;
    for (int i = 0; i < np + n; i++) tok[i] = (int32_t)(rng() % (uint64_t)m.hp.n_vocab);
    if (bn_gpu_model_new(&gm, &m, &go, &e) < 0) goto out;
    if (bn_gpu_eval(gm, tok, np, lg, 1, &e) < 0) goto out; /* warm-up: first launches, graph-free */
    uint64_t best = UINT64_MAX;
    for (int rep = 0; rep < 3; rep++) {
        bn_gpu_reset(gm);
        const uint64_t t0 = bn_now_ns();
        if (bn_gpu_eval(gm, tok, np, lg, 1, &e) < 0) goto out;
        const uint64_t dt = bn_now_ns() - t0;
        if (dt < best) best = dt;
    }
    if (bn_gpu_eval_topk(gm, tok + np, 1, 40, tv, ti, &e) < 0) goto out; /* records the graph */
    const uint64_t t2 = bn_now_ns();
    for (int i = 1; i < n; i++)
        if (bn_gpu_eval_topk(gm, tok + np + i, 1, 40, tv, ti, &e) < 0) goto out;
    const uint64_t t3 = bn_now_ns();
    double bw = 0;
    if (bn_gpu_copy_bandwidth(0, (size_t)1 << 30, 10, &bw, &e) < 0) goto out;
    const double dec = (n - 1) / ((t3 - t2) * 1e-9), wb = weight_bytes(&m), pp = np / (best * 1e-9);
    const double gib = (double)bn_gpu_bytes(gm) / (1024.0 * 1024 * 1024);
    char rec[512], dev[160];
    bn_gpu_receipt(gm, rec, sizeof rec);
    bn_gpu_describe(0, dev, sizeof dev);
    printf("receipt: %s\n", rec);
    printf("prefill: %d tokens in %.3f ms = %.0f tok/s (best of 3)\n", np, best * 1e-6, pp);
    printf("decode: %d steps = %.1f tok/s (%.3f ms/token), weights %.3f GB/token -> %.0f GB/s = %.1f%% of copy %.0f GB/s\n",
           n - 1, dec, 1e3 / dec, wb / 1e9, wb * dec / 1e9, bw > 0 ? 100.0 * wb * dec / 1e9 / bw : 0.0, bw);
    printf("device memory: %.3f GiB\n", gib);
    printf("{\"device\":\"%s\",\"model\":\"%s\",\"prompt\":%d,\"prefill_tok_s\":%.1f,\"decode_steps\":%d,"
           "\"head\":\"%s\",\"decode_tok_s\":%.1f,\"weight_gb_per_token\":%.4f,\"copy_gb_s\":%.0f,\"decode_bw_frac\":%.3f,\"gpu_mem_gib\":%.3f}\n",
           dev, path, np, pp, n - 1, bn_type_name(m.head.type), dec, wb / 1e9, bw, bw > 0 ? wb * dec / 1e9 / bw : 0.0, gib);
    rc = 0;
out:
    if (rc) fprintf(stderr, "test_gpu: %s\n", e.msg);
    bn_gpu_model_free(gm);
    bn_model_free(&m);
    bn_gguf_close(g);
    free(tok);
    free(lg);
    return rc;
}

#endif /* BN_HAVE_CUDA */

/* --engine: bn_engine on the requested device against bn_forward directly. */
static int engine_check(const char *path, const char *dev, bool strict) {
    bn_err e = {{0}};
    bn_gguf *g = NULL;
    bn_model m;
    const int d = bn_device_parse(dev);
    if (d < 0) { fprintf(stderr, "test_gpu: --engine: unknown device '%s'\n", dev); return 2; }
    if (bn_gguf_open(&g, path, &e) < 0) { fprintf(stderr, "test_gpu: %s\n", e.msg); return 1; }
    bn_model_opts mo = {0};
    if (bn_model_load(&m, g, &mo, &e) < 0) { fprintf(stderr, "test_gpu: %s\n", e.msg); bn_gguf_close(g); return 1; }
    const bn_kernels *k = bn_kernels_for(BN_ISA_SCALAR);
    bn_forward_opts fo = {.n_threads = 1, .n_batch = 4, .kv = BN_KV_F16, .kern = k, .n_ctx = 32};
    bn_engine x;
    bn_forward *f = NULL;
    const int V = m.hp.n_vocab, nt = 7;
    int32_t tok[7];
    for (int i = 0; i < nt; i++) tok[i] = (int32_t)((i * 2654435761u) % (uint32_t)V);
    float *a = malloc((size_t)nt * V * 4), *b = malloc((size_t)nt * V * 4);
    int rc = 1;
    if (bn_engine_open(&x, &m, &fo, (bn_device)d, strict, &e) < 0) {
        fprintf(stderr, "test_gpu: %s\n", e.msg);
        goto out_model;
    }
    char rec[512];
    bn_engine_receipt(&x, rec, sizeof rec);
    printf("engine: %s\nnote: %s\nreceipt: %s\n", x.gpu ? "cuda" : "cpu", x.note, rec);
    if (bn_engine_eval(&x, tok, 5, a, 5, &e) < 0 || bn_engine_eval(&x, tok + 5, 1, a + 5 * V, 1, &e) < 0 ||
        bn_engine_eval(&x, tok + 6, 1, a + 6 * V, 1, &e) < 0 || bn_engine_pos(&x) != nt) {
        fprintf(stderr, "test_gpu: engine eval: %s\n", e.msg);
        goto out;
    }
    if (bn_forward_new(&f, &m, &fo, &e) < 0 || bn_forward_eval(f, tok, 5, b, 5, &e) < 0 ||
        bn_forward_eval(f, tok + 5, 1, b + 5 * V, 1, &e) < 0 || bn_forward_eval(f, tok + 6, 1, b + 6 * V, 1, &e) < 0) {
        fprintf(stderr, "test_gpu: forward: %s\n", e.msg);
        goto out;
    }
    /* top-k of one more token: ids[0] is the argmax of the same row, values descend, ties by lower id */
    float tv[16];
    int32_t ti[16];
    const int kk = V < 16 ? V : 16;
    bn_engine_reset(&x);
    if (bn_engine_eval(&x, tok, 5, a, 5, &e) < 0) { fprintf(stderr, "test_gpu: %s\n", e.msg); goto out; }
    bn_engine_reset(&x);
    if (bn_engine_eval_topk(&x, tok, 5, kk, tv, ti, &e) < 0) { fprintf(stderr, "test_gpu: %s\n", e.msg); goto out; }
    int tk_ok = ti[0] == bn_argmax(a + 4 * V, V) && tv[0] == a[4 * V + ti[0]];
    for (int i = 1; i < kk; i++)
        tk_ok &= tv[i] < tv[i - 1] || (tv[i] == tv[i - 1] && ti[i] > ti[i - 1]);
    for (int i = 0; i < kk; i++) tk_ok &= tv[i] == a[4 * V + ti[i]];
    printf("top-%d consistent with the logits: %s\n", kk, tk_ok ? "yes" : "no");
    bn_engine_reset(&x);
    if (bn_engine_eval(&x, tok, 5, a, 5, &e) < 0 || bn_engine_eval(&x, tok + 5, 1, a + 5 * V, 1, &e) < 0 ||
        bn_engine_eval(&x, tok + 6, 1, a + 6 * V, 1, &e) < 0) {
        fprintf(stderr, "test_gpu: engine eval: %s\n", e.msg);
        goto out;
    }
    if (!tk_ok) {
        rc = 1;
    } else if (x.cpu) {
        rc = memcmp(a, b, (size_t)nt * V * 4) != 0;
        printf("cpu logits bitwise equal to bn_forward: %s\n", rc ? "no" : "yes");
    } else {
        int am = 0;
        for (int t = 0; t < nt; t++) am += bn_argmax(a + (size_t)t * V, V) == bn_argmax(b + (size_t)t * V, V);
        printf("gpu argmax agrees with the CPU on %d/%d rows\n", am, nt);
        rc = am < nt - 1;
    }
out:
    bn_forward_free(f);
    bn_engine_close(&x);
out_model:
    bn_model_free(&m);
    bn_gguf_close(g);
    free(a);
    free(b);
    return rc;
}

int main(int argc, char **argv) {
    char why[256] = "";
    const int have = bn_gpu_available(why, sizeof why);
    if (argc > 1 && strcmp(argv[1], "--probe") == 0) {
        if (!have) printf("%s\n", why);
        return have ? 0 : 1;
    }
    if (argc > 1 && (strcmp(argv[1], "--bandwidth") == 0 || strcmp(argv[1], "--speed") == 0)) {
        if (!have) { fprintf(stderr, "test_gpu: %s\n", why); return 1; }
#ifdef BN_HAVE_CUDA
        if (strcmp(argv[1], "--speed") == 0) {
            if (argc < 3) { fprintf(stderr, "usage: test_gpu --speed MODEL [STEPS [PROMPT]]\n"); return 2; }
            const int steps = argc > 3 && atoi(argv[3]) > 1 ? atoi(argv[3]) : 256;
            const int np = argc > 4 && atoi(argv[4]) > 0 ? atoi(argv[4]) : 128;
            return speed(argv[2], steps, np);
        }
        bn_err e = {{0}};
        double gbps = 0;
        if (bn_gpu_copy_bandwidth(0, (size_t)1 << 30, 10, &gbps, &e) < 0) { fprintf(stderr, "test_gpu: %s\n", e.msg); return 1; }
        printf("copy bandwidth: %.0f GB/s\n", gbps);
#endif
        return 0;
    }
    if (argc > 3 && strcmp(argv[1], "--engine") == 0)
        return engine_check(argv[2], argv[3], argc > 4 && strcmp(argv[4], "strict") == 0);
    const char *model = argc > 2 && strcmp(argv[1], "--model") == 0 ? argv[2] : NULL;
    if (!have) {
        for (int i = 0; i < N_TESTS; i++) CHECK(1, "%s # skip %s", test_names[i], why);
        if (model) CHECK(1, "model parity on %s # skip %s", model, why);
        return tap_done();
    }
#ifdef BN_HAVE_CUDA
    char dev[160];
    bn_gpu_describe(0, dev, sizeof dev);
    printf("# device: %s\n", dev);
    S = bn_kernels_for(BN_ISA_SCALAR);
    if (model) {
        CHECK(model_parity(model), "model parity on %s", model);
        return tap_done();
    }
    CHECK(norm_case(BN_CU_NORM_NONE, 5, 384, 0) && norm_case(BN_CU_NORM_NONE, 2, 100, 0), "%s", test_names[0]);
    CHECK(norm_case(BN_CU_NORM_RMS, 5, 2560, 0) && norm_case(BN_CU_NORM_RMS, 4, 97, 0), "%s", test_names[1]);
    CHECK(norm_case(BN_CU_NORM_RELU2, 5, 768, 0), "%s", test_names[2]);
    CHECK(norm_case(BN_CU_NORM_SILU, 5, 768, 1e-6), "%s", test_names[3]);
    CHECK(quant_cases(), "%s", test_names[4]);
    CHECK(mm_type(BN_TYPE_I2_S, 384) && mm_type(BN_TYPE_I2_S, 2560), "%s", test_names[5]);
    CHECK(mm_type(BN_TYPE_TQ2_0, 256) && mm_type(BN_TYPE_TQ2_0, 6912) && mm_type(BN_TYPE_TQ2_0, 9216), "%s", test_names[6]);
    CHECK(mm_type(BN_TYPE_Q8_0, 96) && mm_type(BN_TYPE_Q8_0, 2560), "%s", test_names[7]);
    CHECK(mm_type(BN_TYPE_F16, 77) && mm_type(BN_TYPE_F32, 130), "%s", test_names[8]);
    CHECK(rope_case(), "%s", test_names[9]);
    CHECK(attention_case(1, 0, 64, 1) && attention_case(1, 0, 64, 4) && attention_case(1, 200, 128, 8) &&
              attention_case(1, 1000, 128, 16) && attention_case(7, 70, 128, 1) && attention_case(3, 5, 256, 1) &&
              attention_case(2, 130, 96, 3),
          "%s", test_names[10]);
    CHECK(fused_case(BN_CU_NORM_RMS, 2560, 3840, 3) && fused_case(BN_CU_NORM_RMS, 2560, 37, 1) &&
              fused_case(BN_CU_NORM_RMS, 128, 9000, 2) && fused_case(BN_CU_NORM_RELU2, 6912, 2560, 1) &&
              fused_case(BN_CU_NORM_SILU, 384, 300, 1) && fused_case(BN_CU_NORM_RMS, 8192, 70, 2),
          "%s", test_names[12]);
    CHECK(topk_case(100, 1) && topk_case(4096, 40) && topk_case(128256, 64) && topk_case(300, 256), "%s",
          test_names[11]);
#endif
    return tap_done();
}
