/* test_forward.c - the transformer step on small models written here with
 * the GGUF writer: against an independent double-precision forward (F32
 * weights, F32 cache), bitwise equality across thread counts and batch
 * sizes, I2_S against F32 on the same ternary weights, load-time checks that
 * fail before compute, context overflow, the pool, LOGT round trips and the
 * logits helpers. Needs no files outside the test. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "forward.h"
#include "logt.h"
#include "pool.h"
#include "quant.h"
#include "tap.h"

enum { D = 128, NH = 4, NKV = 2, HD = 32, FF = 256, NL = 2, V = 64, CTX = 40 };
static const float ROPE_BASE = 10000.0f, EPS = 1e-5f;

/* deterministic inputs */
static uint64_t rng_s = 0x2545F4914F6CDD1Dull;
static uint64_t rng(void) {
    rng_s ^= rng_s >> 12; rng_s ^= rng_s << 25; rng_s ^= rng_s >> 27;
    return rng_s * 2685821657736338717ull;
}
static float unif(void) { return (float)((rng() >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f; }

/* The model's float values (kept for the reference forward). */
typedef struct ref_model {
    float *embd;                          /* [V][D] */
    float *norm_out;                      /* [D] */
    float *an[NL], *asn[NL], *fn[NL], *fsn[NL];
    float *w[NL][7];                      /* q k v o gate up down, row-major [M][K] */
} ref_model;
static const char *wname[7] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};
static const int wK[7] = {D, D, D, NH * HD, D, D, FF};
static const int wM[7] = {NH * HD, NKV * HD, NKV * HD, D, FF, FF, D};

static float *vec(int n, float base, float amp) {
    float *v = malloc((size_t)n * sizeof *v);
    for (int i = 0; i < n; i++) v[i] = base + amp * unif();
    return v;
}

static void ref_init(ref_model *r) {
    rng_s = 0x2545F4914F6CDD1Dull;
    r->embd = vec(V * D, 0, 0.5f);
    r->norm_out = vec(D, 1, 0.1f);
    for (int l = 0; l < NL; l++) {
        r->an[l] = vec(D, 1, 0.1f); r->asn[l] = vec(NH * HD, 1, 0.1f);
        r->fn[l] = vec(D, 1, 0.1f); r->fsn[l] = vec(FF, 1, 0.1f);
        for (int k = 0; k < 7; k++) {
            int n = wK[k] * wM[k];
            r->w[l][k] = malloc((size_t)n * sizeof(float));
            const float s = (float)(2 + k % 3) / 64.0f; /* exact in any type */
            for (int i = 0; i < n; i++) {
                float u = unif();
                r->w[l][k][i] = u < -0.4f ? -s : u > 0.4f ? s : 0.0f;
            }
        }
    }
}

static void ref_free(ref_model *r) {
    free(r->embd);
    free(r->norm_out);
    for (int l = 0; l < NL; l++) {
        free(r->an[l]); free(r->asn[l]); free(r->fn[l]); free(r->fsn[l]);
        for (int k = 0; k < 7; k++) free(r->w[l][k]);
    }
}

/* What to break when writing (load-time checks). */
typedef enum { OK = 0, DROP_DOWN, BAD_SHAPE_K, BAD_TYPE_Q, BAD_ARCH, NO_CTX, BAD_VOCAB, EMB_F16 } breakage;

/* Write the model as GGUF with linear weights of type wt. */
static int write_model(const ref_model *r, const char *path, uint32_t wt, breakage brk) {
    bn_err e;
    bn_gguf_writer *w;
    if (bn_gguf_writer_new(&w, path, &e) < 0) { printf("# %s\n", e.msg); return -1; }
    const char *arch = brk == BAD_ARCH ? "llama" : "bitnet-b1.58";
    char k[96];
#define KEY(s) (snprintf(k, sizeof k, "%s.%s", arch, s), k)
    int rc = bn_gguf_w_str(w, "general.architecture", arch, &e);
    rc |= bn_gguf_w_u32(w, KEY("embedding_length"), D, &e);
    rc |= bn_gguf_w_u32(w, KEY("block_count"), NL, &e);
    rc |= bn_gguf_w_u32(w, KEY("feed_forward_length"), FF, &e);
    rc |= bn_gguf_w_u32(w, KEY("attention.head_count"), NH, &e);
    rc |= bn_gguf_w_u32(w, KEY("attention.head_count_kv"), NKV, &e);
    if (brk != NO_CTX) rc |= bn_gguf_w_u32(w, KEY("context_length"), CTX, &e);
    rc |= bn_gguf_w_u32(w, KEY("rope.dimension_count"), HD, &e);
    rc |= bn_gguf_w_f32(w, KEY("rope.freq_base"), ROPE_BASE, &e);
    rc |= bn_gguf_w_f32(w, KEY("attention.layer_norm_rms_epsilon"), EPS, &e);
    rc |= bn_gguf_w_u32(w, KEY("vocab_size"), brk == BAD_VOCAB ? V + 1 : V, &e);
    bn_gguf_str toks[V];
    char tb[V][16];
    for (int i = 0; i < V; i++) { snprintf(tb[i], sizeof tb[i], "t%d", i); toks[i] = (bn_gguf_str){tb[i], strlen(tb[i])}; }
    rc |= bn_gguf_w_arr_str(w, "tokenizer.ggml.tokens", toks, V, &e);
    rc |= bn_gguf_w_u32(w, "tokenizer.ggml.bos_token_id", 1, &e);
    rc |= bn_gguf_w_u32(w, "tokenizer.ggml.eos_token_id", 2, &e);
#undef KEY
    /* declare tensors, then data in the same order */
    typedef struct { char name[64]; uint32_t type; int64_t ne[2]; int nd; const float *src; } tdesc;
    tdesc td[4 + NL * 11];
    int nt = 0;
    td[nt++] = (tdesc){"token_embd.weight", brk == EMB_F16 ? BN_TYPE_F16 : BN_TYPE_F32, {D, V}, 2, r->embd};
    td[nt++] = (tdesc){"output_norm.weight", BN_TYPE_F32, {D, 1}, 1, r->norm_out};
    for (int l = 0; l < NL; l++) {
        const float *norms[4] = {r->an[l], r->asn[l], r->fn[l], r->fsn[l]};
        const char *nn[4] = {"attn_norm", "attn_sub_norm", "ffn_norm", "ffn_sub_norm"};
        const int nl[4] = {D, NH * HD, D, FF};
        for (int i = 0; i < 4; i++) {
            td[nt] = (tdesc){"", BN_TYPE_F32, {nl[i], 1}, 1, norms[i]};
            snprintf(td[nt++].name, 64, "blk.%d.%s.weight", l, nn[i]);
        }
        for (int i = 0; i < 7; i++) {
            if (brk == DROP_DOWN && l == 1 && i == 6) continue;
            td[nt] = (tdesc){"", wt, {wK[i], wM[i]}, 2, r->w[l][i]};
            if (brk == BAD_SHAPE_K && l == 0 && i == 1) td[nt].ne[1] = wM[i] + 32;
            if (brk == BAD_TYPE_Q && l == 0 && i == 0) td[nt].type = BN_TYPE_Q8_0;
            snprintf(td[nt++].name, 64, "blk.%d.%s.weight", l, wname[i]);
        }
    }
    for (int i = 0; i < nt && rc == 0; i++)
        if (bn_gguf_w_tensor(w, td[i].name, td[i].type, (uint32_t)td[i].nd, td[i].ne, &e) < 0) rc = -1;
    for (int i = 0; i < nt && rc == 0; i++) {
        int64_t n = td[i].ne[0] * td[i].ne[1];
        const float *src = td[i].src;
        float *tmp = NULL;
        if (n > (int64_t)wK[1] * wM[1] && src == r->w[0][1] && td[i].ne[1] != wM[1]) { /* BAD_SHAPE_K: pad */
            tmp = calloc((size_t)n, sizeof *tmp);
            memcpy(tmp, src, (size_t)wK[1] * wM[1] * sizeof *tmp);
            src = tmp;
        }
        if (td[i].type == BN_TYPE_F32) {
            rc = bn_gguf_w_data(w, i, src, (size_t)n * 4, &e);
        } else if (td[i].type == BN_TYPE_F16) { /* EMB_F16: the tied head is F16 as in real files */
            uint16_t *h = malloc((size_t)n * sizeof *h);
            for (int64_t q = 0; q < n; q++) h[q] = bn_f32_to_f16(src[q]);
            rc = bn_gguf_w_data(w, i, h, (size_t)n * 2, &e);
            free(h);
        } else if (td[i].type == BN_TYPE_I2_S) {
            uint8_t *q = calloc(bn_i2s_nbytes(n), 1);
            size_t nb = bn_quantize_i2_s_ref(src, q, n);
            rc = bn_gguf_w_data(w, i, q, nb, &e);
            free(q);
        } else if (td[i].type == BN_TYPE_Q8_0) {
            bn_block_q8_0 *q = calloc((size_t)n / BN_QK8_0, sizeof *q);
            bn_quantize_row_q8_0_ref(src, q, n);
            rc = bn_gguf_w_data(w, i, q, (size_t)n / BN_QK8_0 * sizeof *q, &e);
            free(q);
        }
        free(tmp);
    }
    if (rc == 0) rc = bn_gguf_writer_finish(w, &e);
    else bn_gguf_writer_abort(w);
    if (rc) printf("# write_model: %s\n", e.msg);
    return rc;
}

/* ---- independent reference forward (double, F32 cache) ------------------- */

static void ref_rms(double *o, const double *x, const float *w, int n) {
    double s = 0;
    for (int i = 0; i < n; i++) s += x[i] * x[i];
    double sc = 1.0 / sqrt(s / n + EPS);
    for (int i = 0; i < n; i++) o[i] = x[i] * sc * w[i];
}
static void ref_mm(double *y, const float *W, const double *x, int K, int M) {
    for (int r = 0; r < M; r++) {
        double s = 0;
        for (int k = 0; k < K; k++) s += (double)W[(size_t)r * K + k] * x[k];
        y[r] = s;
    }
}
static void ref_rope(double *v, int pos) {
    for (int i = 0; i < HD / 2; i++) {
        double th = pos * pow(ROPE_BASE, -2.0 * i / HD), c = cos(th), s = sin(th);
        double a = v[i], b = v[i + HD / 2];
        v[i] = a * c - b * s;
        v[i + HD / 2] = a * s + b * c;
    }
}

/* Logits of every position of tok[0..n) into out[n][V]. */
static void ref_forward(const ref_model *r, const int32_t *tok, int n, float *out) {
    static double K[NL][CTX][NKV * HD], Vc[NL][CTX][NKV * HD];
    for (int t = 0; t < n; t++) {
        double x[D], h[FF > D ? FF : D], q[NH * HD], kk[NKV * HD], vv[NKV * HD], att[NH * HD], y[D], g[FF], u[FF];
        for (int i = 0; i < D; i++) x[i] = r->embd[(size_t)tok[t] * D + i];
        for (int l = 0; l < NL; l++) {
            ref_rms(h, x, r->an[l], D);
            ref_mm(q, r->w[l][0], h, D, NH * HD);
            ref_mm(kk, r->w[l][1], h, D, NKV * HD);
            ref_mm(vv, r->w[l][2], h, D, NKV * HD);
            for (int hh = 0; hh < NH; hh++) ref_rope(q + hh * HD, t);
            for (int hh = 0; hh < NKV; hh++) ref_rope(kk + hh * HD, t);
            memcpy(K[l][t], kk, sizeof kk);
            memcpy(Vc[l][t], vv, sizeof vv);
            for (int hh = 0; hh < NH; hh++) {
                const int kv = hh / (NH / NKV);
                double sc[CTX], mx = -1e300, sum = 0;
                for (int p = 0; p <= t; p++) {
                    double s = 0;
                    for (int d = 0; d < HD; d++) s += q[hh * HD + d] * K[l][p][kv * HD + d];
                    sc[p] = s / sqrt((double)HD);
                    mx = sc[p] > mx ? sc[p] : mx;
                }
                for (int p = 0; p <= t; p++) sum += (sc[p] = exp(sc[p] - mx));
                for (int d = 0; d < HD; d++) {
                    double a = 0;
                    for (int p = 0; p <= t; p++) a += sc[p] / sum * Vc[l][p][kv * HD + d];
                    att[hh * HD + d] = a;
                }
            }
            ref_rms(h, att, r->asn[l], NH * HD);
            ref_mm(y, r->w[l][3], h, NH * HD, D);
            for (int i = 0; i < D; i++) x[i] += y[i];
            ref_rms(h, x, r->fn[l], D);
            ref_mm(g, r->w[l][4], h, D, FF);
            ref_mm(u, r->w[l][5], h, D, FF);
            for (int i = 0; i < FF; i++) { double a = g[i] > 0 ? g[i] : 0; g[i] = a * a * u[i]; }
            ref_rms(h, g, r->fsn[l], FF);
            ref_mm(y, r->w[l][6], h, FF, D);
            for (int i = 0; i < D; i++) x[i] += y[i];
        }
        ref_rms(h, x, r->norm_out, D);
        for (int v = 0; v < V; v++) {
            double s = 0;
            for (int i = 0; i < D; i++) s += (double)r->embd[(size_t)v * D + i] * h[i];
            out[(size_t)t * V + v] = (float)s;
        }
    }
}

/* ---- running the engine -------------------------------------------------- */

typedef struct eng {
    bn_gguf *g;
    bn_model m;
    bn_forward *f;
} eng;

static int eng_open_c(eng *x, const char *path, int threads, int batch, bn_kv_type kv, const bn_kernels *k, bn_compat c,
                      bn_err *e) {
    memset(x, 0, sizeof *x);
    if (bn_gguf_open(&x->g, path, e) < 0) return -1;
    bn_model_opts mo = {0};
    if (bn_model_load(&x->m, x->g, &mo, e) < 0) return -1;
    bn_forward_opts fo = {.n_threads = threads, .n_batch = batch, .kv = kv, .kern = k, .compat = c};
    return bn_forward_new(&x->f, &x->m, &fo, e);
}
static int eng_open(eng *x, const char *path, int threads, int batch, bn_kv_type kv, const bn_kernels *k, bn_err *e) {
    return eng_open_c(x, path, threads, batch, kv, k, BN_COMPAT_NONE, e);
}
static void eng_close(eng *x) {
    bn_forward_free(x->f);
    bn_model_free(&x->m);
    if (x->g) bn_gguf_close(x->g);
}

/* All rows of a prompt, then `extra` single-token decode steps. */
static int eng_run(eng *x, const int32_t *tok, int n, int extra, float *out, bn_err *e) {
    bn_forward_reset(x->f);
    if (bn_forward_eval(x->f, tok, n, out, n, e) < 0) return -1;
    for (int i = 0; i < extra; i++)
        if (bn_forward_eval(x->f, tok + n + i, 1, out + (size_t)(n + i) * V, 1, e) < 0) return -1;
    return 0;
}

static double max_abs_diff(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - b[i]));
    return m;
}

static void pool_sum(void *ctx, int ith, int nth) {
    int64_t lo, hi, *acc = ctx;
    bn_pool_split(1000, ith, nth, 16, &lo, &hi);
    acc[ith] = 0;
    for (int64_t i = lo; i < hi; i++) acc[ith] += i;
}

/* Costs for bn_pool_split_cost: kind 0 grows with u (causal attention),
 * 1 constant, 2 all zero, 3 pseudo-random 0..99. */
static int64_t test_cost(const void *ctx, int64_t u) {
    switch (*(const int *)ctx) {
    case 0: return u + 1;
    case 1: return 5;
    case 2: return 0;
    default: return (int64_t)((u * 2654435761u) >> 7) % 100;
    }
}

/* Shares by cost: in order, aligned, covering [0, n) exactly, and each
 * within one aligned unit's cost of an even share of the total. */
static void test_split_cost(void) {
    const int64_t ns[] = {0, 1, 7, 100, 1001};
    int ok = 1, checked = 0;
    for (int kind = 0; kind < 4; kind++)
        for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++)
            for (int64_t align = 1; align <= 4; align *= 2)
                for (int nth = 1; nth <= 5; nth++) {
                    const int64_t n = ns[ni];
                    int64_t total = 0, unit_max = 0, prev = 0;
                    for (int64_t b = 0; b < n; b += align) {
                        int64_t c = 0;
                        for (int64_t u = b; u < n && u < b + align; u++) c += test_cost(&kind, u);
                        total += c;
                        if (c > unit_max) unit_max = c;
                    }
                    for (int ith = 0; ith < nth; ith++) {
                        int64_t lo, hi, c = 0;
                        bn_pool_split_cost(n, ith, nth, align, test_cost, &kind, &lo, &hi);
                        for (int64_t u = lo; u < hi; u++) c += test_cost(&kind, u);
                        ok &= lo == prev && lo <= hi && (lo % align == 0 || lo == n) && (ith < nth - 1 || hi == n);
                        ok &= c * nth <= total + (int64_t)nth * unit_max;
                        prev = hi;
                        checked++;
                    }
                }
    CHECK(ok && checked > 0, "bn_pool_split_cost: %d shares in order, aligned, covering, balanced", checked);
    /* a causal batch: 512 tokens of rising cost split in two at ~362 (the
     * count split's 256 gave the second thread 3x the first's keys) */
    int kind = 0;
    int64_t lo, hi;
    bn_pool_split_cost(512, 0, 2, 1, test_cost, &kind, &lo, &hi);
    CHECK(lo == 0 && hi >= 360 && hi <= 364, "bn_pool_split_cost: 512 rising costs split at %lld", (long long)hi);
}

/* bn_alloc_big (the KV cache): zeroed and writable for any size, freed with
 * its size; a size that overflows is an error, not a crash. */
static void test_alloc_big(void) {
    const size_t sizes[] = {1, 4095, 4096, (size_t)3 << 20, ((size_t)5 << 20) + 123};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        bn_err e = {{0}};
        const size_t n = sizes[i];
        unsigned char *p = bn_alloc_big(n, &e);
        int zero = p != NULL;
        for (size_t o = 0; p && o < n; o += 4093) zero &= p[o] == 0;
        if (p) {
            zero &= p[n - 1] == 0;
            memset(p, 0xa5, n);
            zero &= p[n - 1] == 0xa5;
        }
        CHECK(zero, "bn_alloc_big(%zu): zeroed and writable", n);
        bn_free_big(p, n);
    }
    bn_err e = {{0}};
    CHECK(bn_alloc_big(SIZE_MAX - 10, &e) == NULL && e.msg[0], "bn_alloc_big(SIZE_MAX - 10) fails: %s", e.msg);
#if defined(__linux__)
    /* bn_populate_big: every page resident afterwards (mincore), still zero */
    const size_t n = ((size_t)5 << 20) + 123, page = (size_t)sysconf(_SC_PAGESIZE), np = (n + page - 1) / page;
    unsigned char *p = bn_alloc_big(n, &e), *vec = calloc(np, 1);
    int resident = p && vec;
    if (resident) {
        bn_populate_big(p, n);
        resident = mincore(p, np * page, vec) == 0;
        for (size_t i = 0; resident && i < np; i++) resident &= vec[i] & 1;
        resident &= p[0] == 0 && p[n / 2] == 0 && p[n - 1] == 0;
    }
    CHECK(resident, "bn_populate_big: %zu pages resident and zero", np);
    free(vec);
    bn_free_big(p, n);
#endif
}

int main(void) {
    char dir[] = "/tmp/bn-test-forward-XXXXXX";
    if (!mkdtemp(dir)) { printf("not ok 1 - mkdtemp\n"); return 1; }
    char p_f32[96], p_i2s[96], p_bad[96], p_logt[96], p_e16[96];
    snprintf(p_f32, sizeof p_f32, "%s/f32.gguf", dir);
    snprintf(p_e16, sizeof p_e16, "%s/i2s-e16.gguf", dir);
    snprintf(p_i2s, sizeof p_i2s, "%s/i2s.gguf", dir);
    snprintf(p_bad, sizeof p_bad, "%s/bad.gguf", dir);
    snprintf(p_logt, sizeof p_logt, "%s/x.logt", dir);
    test_alloc_big();
    ref_model r;
    ref_init(&r);
    CHECK(write_model(&r, p_f32, BN_TYPE_F32, OK) == 0, "write F32 model");
    CHECK(write_model(&r, p_i2s, BN_TYPE_I2_S, OK) == 0, "write I2_S model");
    CHECK(write_model(&r, p_e16, BN_TYPE_I2_S, EMB_F16) == 0, "write I2_S model with an F16 token_embd (tied head)");
    const bn_kernels *ks = bn_kernels_for(BN_ISA_SCALAR);
    bn_err e = {{0}};

    enum { NP = 9, NX = 6, NT = NP + NX };
    int32_t tok[NT];
    for (int i = 0; i < NT; i++) tok[i] = (int32_t)(rng() % V);
    tok[0] = 1;
    float *want = malloc(sizeof(float) * NT * V), *got = malloc(sizeof(float) * NT * V), *alt = malloc(sizeof(float) * NT * V);
    ref_forward(&r, tok, NT, want);

    /* F32 weights, F32 cache: the engine is the reference up to float rounding */
    eng x;
    int rc = eng_open(&x, p_f32, 1, 4, BN_KV_F32, ks, &e);
    CHECK(rc == 0, "open F32 model (%s)", rc ? e.msg : "ok");
    if (rc == 0) {
        CHECK(x.m.hp.n_embd == D && x.m.hp.n_head_kv == NKV && x.m.hp.head_dim == HD && x.m.act == BN_FFN_RELU2 && x.m.tied,
              "hparams, relu2 for bitnet-b1.58, tied head");
        CHECK(strlen(x.m.vocab_fp) == 64, "vocab fingerprint present");
        rc = eng_run(&x, tok, NP, NX, got, &e);
        double d = max_abs_diff(got, want, (size_t)NT * V);
        CHECK(rc == 0 && d < 2e-3, "F32 engine vs double reference: max |diff| %.3g (prefill + decode)", d);
        bn_forward_reset(x.f);
        rc = bn_forward_eval(x.f, tok, NT, alt, 2, &e);
        CHECK(rc == 0 && memcmp(alt, got + (size_t)(NT - 2) * V, sizeof(float) * 2 * V) == 0, "n_out = last rows only");
        bn_forward_reset(x.f);
        int32_t many[CTX + 1] = {0};
        rc = bn_forward_eval(x.f, many, CTX + 1, NULL, 0, &e);
        CHECK(rc < 0 && strstr(e.msg, "context"), "running past n_ctx fails: %s", e.msg);
        int32_t bad = V;
        rc = bn_forward_eval(x.f, &bad, 1, alt, 1, &e);
        CHECK(rc < 0 && strstr(e.msg, "out of range"), "bad token id fails: %s", e.msg);
    }
    eng_close(&x);

    /* F16 cache: close to the F32 cache */
    rc = eng_open(&x, p_f32, 2, 5, BN_KV_F16, ks, &e);
    if (rc == 0) rc = eng_run(&x, tok, NP, NX, alt, &e);
    double d16 = max_abs_diff(alt, want, (size_t)NT * V);
    CHECK(rc == 0 && d16 < 5e-2, "F16 cache vs double reference: max |diff| %.3g", d16);
    eng_close(&x);

    /* bitwise identical for any thread count and batch size, every kernel table */
    for (int isa = 0; isa < BN_ISA_COUNT; isa++) {
        bn_cpu_info ci;
        bn_cpu_detect(&ci);
        if (!bn_isa_compiled((bn_isa)isa) || !bn_isa_supported(&ci, (bn_isa)isa)) continue;
        const bn_kernels *k = bn_kernels_for((bn_isa)isa);
        for (int mi = 0; mi < 2; mi++) {
            const char *path = mi ? p_i2s : p_f32;
            float *base = NULL;
            int same = 1;
            for (int t = 1; t <= 4; t++) {
                const int batch = t == 1 ? 128 : t == 2 ? 1 : t == 3 ? 3 : 7;
                rc = eng_open(&x, path, t, batch, BN_KV_F16, k, &e);
                if (rc == 0) rc = eng_run(&x, tok, NP, NX, got, &e);
                eng_close(&x);
                if (rc) { same = 0; break; }
                if (!base) { base = malloc(sizeof(float) * NT * V); memcpy(base, got, sizeof(float) * NT * V); }
                else if (memcmp(base, got, sizeof(float) * NT * V) != 0) same = 0;
            }
            CHECK(same, "%s %s: threads 1-4 with batch 128/1/3/7 bitwise equal", k->name, mi ? "I2_S" : "F32");
            free(base);
        }
    }

    /* compat bitnet.cpp (F16 cache): still the model's function; thread
     * invariant; every batch of >= 2 tokens computes a row the same way
     * (batches 3, 7, 128 of the 9-token prompt: bitwise equal), but a prompt
     * fed token by token differs (p rounded to f16 there, f32 in a batch).
     * The exact orders are checked against bitnet.cpp in tests/ref/forward.bats. */
    {
        rc = eng_open_c(&x, p_f32, 2, 5, BN_KV_F16, ks, BN_COMPAT_BITNETCPP, &e);
        if (rc == 0) rc = eng_run(&x, tok, NP, NX, alt, &e);
        eng_close(&x);
        double dc = max_abs_diff(alt, want, (size_t)NT * V);
        CHECK(rc == 0 && dc < 5e-2, "compat bitnet.cpp, F16 cache vs double reference: max |diff| %.3g", dc);
        for (int mi = 0; mi < 2; mi++) {
            const char *path = mi ? p_e16 : p_i2s;
            float *base = malloc(sizeof(float) * NT * V);
            int same = 1, differs = 0;
            const int batches[5] = {128, 3, 7, 128, 1}, threads[5] = {1, 2, 3, 4, 2};
            for (int i = 0; i < 5; i++) {
                rc = eng_open_c(&x, path, threads[i], batches[i], BN_KV_F16, bn_kernels_for(BN_ISA_SCALAR),
                                BN_COMPAT_BITNETCPP, &e);
                if (rc == 0) rc = eng_run(&x, tok, NP, NX, got, &e);
                eng_close(&x);
                if (rc) { same = 0; break; }
                if (i == 0) memcpy(base, got, sizeof(float) * NT * V);
                else if (i < 4 && memcmp(base, got, sizeof(float) * NT * V) != 0) same = 0;
                else if (i == 4) differs = memcmp(base, got, sizeof(float) * NP * V) != 0;
            }
            CHECK(same, "compat bitnet.cpp %s: batches 128/3/7 with threads 1-4 bitwise equal", mi ? "F16 head" : "I2_S");
            CHECK(differs, "compat bitnet.cpp %s: token-by-token prompt rows differ from the batched ones", mi ? "F16 head" : "I2_S");
            free(base);
        }
        bn_forward_opts bad = {.n_threads = 1, .kv = BN_KV_F16, .kern = ks, .compat = (bn_compat)7};
        bn_gguf *g = NULL;
        bn_model mm;
        bn_model_opts mo = {0};
        bn_forward *fw = NULL;
        rc = bn_gguf_open(&g, p_i2s, &e) < 0 || bn_model_load(&mm, g, &mo, &e) < 0 ? -2 : bn_forward_new(&fw, &mm, &bad, &e);
        CHECK(rc == -1 && strstr(e.msg, "compat"), "unknown compat value is an error: %s", e.msg);
        if (rc != -2) bn_model_free(&mm);
        bn_forward_free(fw);
        if (g) bn_gguf_close(g);
    }

    /* I2_S (int8 activations) tracks the F32 model on the same ternary weights */
    rc = eng_open(&x, p_i2s, 2, 8, BN_KV_F16, bn_kernels_for(BN_ISA_SCALAR), &e);
    if (rc == 0) rc = eng_run(&x, tok, NP, NX, got, &e);
    eng_close(&x);
    double di = max_abs_diff(got, want, (size_t)NT * V);
    CHECK(rc == 0 && di < 0.25, "I2_S vs double reference: max |diff| %.3g (activation quantization noise)", di);

    /* load-time checks: one clear line naming the problem, before compute */
    struct { breakage b; const char *needle; } bad[] = {
        {DROP_DOWN, "blk.1.ffn_down.weight: tensor missing"},
        {BAD_SHAPE_K, "blk.0.attn_k.weight: shape"},
        {BAD_TYPE_Q, "blk.0.attn_q.weight: type q8_0 not supported"},
        {BAD_ARCH, "not supported"},
        {NO_CTX, "context_length: missing"},
        {BAD_VOCAB, "vocab_size"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        CHECK(write_model(&r, p_bad, BN_TYPE_F32, bad[i].b) == 0, "write broken model %zu", i);
        rc = eng_open(&x, p_bad, 1, 4, BN_KV_F16, ks, &e);
        CHECK(rc < 0 && strstr(e.msg, bad[i].needle) && !strchr(e.msg, '\n'), "broken model %zu rejected: %s", i, e.msg);
        eng_close(&x);
    }

    /* pool: every index once, any thread count */
    for (int t = 1; t <= 5; t++) {
        bn_pool *p;
        int64_t acc[8] = {0}, sum = 0;
        CHECK(bn_pool_new(&p, t, &e) == 0, "pool %d threads", t);
        for (int rep = 0; rep < 50; rep++) bn_pool_run(p, pool_sum, acc);
        for (int i = 0; i < t; i++) sum += acc[i];
        CHECK(sum == 999 * 1000 / 2, "pool %d: split covers 0..999 exactly once", t);
        bn_pool_free(p);
    }
    int64_t lo, hi;
    bn_pool_split(100, 3, 4, 16, &lo, &hi);
    CHECK(lo % 16 == 0 && hi == 100, "split aligned, last share to the end [%lld,%lld)", (long long)lo, (long long)hi);
    test_split_cost();

    /* LOGT round trip, and a truncated file is refused */
    bn_logt_writer *lw;
    rc = bn_logt_writer_new(&lw, p_logt, V, &e);
    if (rc == 0) rc = bn_logt_writer_rows(lw, want, 3, &e);
    if (rc == 0) rc = bn_logt_writer_rows(lw, want + 3 * V, 2, &e);
    if (rc == 0) rc = bn_logt_writer_close(lw, &e);
    bn_logt lt;
    rc = rc ? rc : bn_logt_read(&lt, p_logt, &e);
    CHECK(rc == 0 && lt.n_rows == 5 && lt.n_vocab == V && memcmp(lt.data, want, sizeof(float) * 5 * V) == 0, "LOGT round trip");
    if (rc == 0) bn_logt_free(&lt);
    CHECK(truncate(p_logt, 16 + 4 * V) == 0 && bn_logt_read(&lt, p_logt, &e) < 0 && strstr(e.msg, "size"), "truncated LOGT refused: %s",
          e.msg);

    /* helpers */
    float row[5] = {1, 3, 3, -1, 0};
    CHECK(bn_argmax(row, 5) == 1, "argmax ties -> lowest id");
    {   /* against the one-pass definition: odd lengths, ties, NaNs, signed zeros, infinities */
        float rv[67];
        int nbad = 0;
        uint64_t st = 7;
        for (int trial = 0; trial < 4000; trial++) {
            const int n = 1 + trial % 67;
            for (int i = 0; i < n; i++) {
                st ^= st << 13, st ^= st >> 7, st ^= st << 17;
                const int k = (int)(st % 16);
                rv[i] = k == 0 ? NAN : k == 1 ? -0.0f : k == 2 ? 0.0f : k == 3 ? -INFINITY : k == 4 ? INFINITY
                     : k == 5 ? -FLT_MAX : (float)((int)(st >> 8) % 7 - 3);
            }
            if (trial % 5 == 0) rv[0] = NAN;
            if (trial % 7 == 0) for (int i = 0; i < n; i++) rv[i] = -INFINITY;
            int32_t a = 0;
            for (int i = 1; i < n; i++)
                if (rv[i] > rv[a]) a = i;
            nbad += bn_argmax(rv, n) != a;
        }
        CHECK(nbad == 0, "argmax equals the one-pass definition (%d of 4000 differ)", nbad);
    }
    double ps = 0;
    for (int i = 0; i < 5; i++) ps += exp(bn_log_softmax_at(row, 5, i));
    CHECK(fabs(ps - 1) < 1e-12, "log softmax normalised (%.3g)", ps - 1);
    float flat[4] = {2, 2, 2, 2}, nanr[3] = {0, NAN, 1};
    CHECK(bn_logits_check(flat, 4, &e) < 0 && bn_logits_check(nanr, 3, &e) < 0 && bn_logits_check(row, 5, &e) == 0,
          "logits check: all-equal and NaN rows flagged");
    { /* the blocked loop: one bad or one different value anywhere in rows of
       * 1..70 (blocks of 16 and the tail), counted; +0 and -0 are equal */
        float lr[70];
        int nfail = 0;
        const float bads[3] = {NAN, INFINITY, -INFINITY};
        for (int n = 1; n <= 70; n++)
            for (int at = 0; at < n; at++) {
                for (int i = 0; i < n; i++) lr[i] = (i & 1) ? -0.0f : 0.0f;
                bn_err ce;
                if (n > 1 && bn_logits_check(lr, n, &ce) == 0) nfail++; /* all equal */
                lr[at] = 1.5f;
                if (n > 1 && bn_logits_check(lr, n, &ce) != 0) nfail++; /* one differs */
                lr[at] = bads[at % 3];
                if (bn_logits_check(lr, n, &ce) == 0 || !strstr(ce.msg, "1 NaN or Inf")) nfail++;
                lr[n - 1 - at] = bads[(at + 1) % 3];
                const int nb = at == n - 1 - at ? 1 : 2;
                char wmsg[32];
                snprintf(wmsg, sizeof wmsg, "%d NaN or Inf", nb);
                if (bn_logits_check(lr, n, &ce) == 0 || !strstr(ce.msg, wmsg)) nfail++;
            }
        float one = 3.0f;
        CHECK(nfail == 0 && bn_logits_check(&one, 1, &e) == 0, "logits check: blocks and tail, every position (%d wrong)", nfail);
    }

    unlink(p_f32); unlink(p_i2s); unlink(p_bad); unlink(p_logt);
    rmdir(dir);
    free(want); free(got); free(alt);
    ref_free(&r);
    return tap_done();
}
