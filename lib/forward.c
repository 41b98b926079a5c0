/* forward.c - the transformer step, in the order of the math (see llama2.c's
 * forward()): embed -> for each layer { attention block, FFN block } ->
 * output norm -> head. Each block is a few parallel regions on the pool. */
#include "forward.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdatomic.h>

#include "pool.h"
#include "vecmath.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

enum { SITE_EMBD = 0, SITE_ATT, SITE_FF, SITE_COUNT }; /* matmul inputs of width n_embd, q_dim, n_ff */
#define ROW_ALIGN 16

/* Batch attention on AVX-512 runs in blocks of BN_ATT_QT query tokens, each
 * block passing over the K and V rows in tiles of BN_ATT_KT rows: the rows
 * of a long context (4 MB of f32 K and V per kv head at 4096) are read
 * from L3 once per block instead of once per token. Multiple of 8 (the P.V
 * lane chains) and of 4 (the Q.K key groups). On the SPR VM, prefill of a
 * 4000-token prompt: 51 -> 68 tok/s (1 thread), 103 -> 127 (2); tiles of
 * 64 keys (the lane sums through memory too often) and 16-token blocks
 * measured slower. */
#define BN_ATT_QT 8
#define BN_ATT_KT 512
#define BN_ATT_BLOCK_BYTES (1 << 20)
/* Positions per V^T tile: the V cache keeps each (layer, kv head)'s
 * transposed V as tiles of BN_VT positions x head_dim columns, a column's
 * BN_VT values contiguous (128 bytes in f16). One token's V store then
 * writes head_dim lines within one 16 KB tile instead of one line in each
 * of head_dim columns n_ctx apart, and a short context's P.V reads whole
 * tiles. Zen 5 VM, 2b4t decode at 1 thread, 128 steps: with columns of
 * n_ctx the RoPE+store region took 108-111 ms at -c 4096 against 31-35 at -c
 * 256, the attention 144-150 against 117. A multiple of 32, so every
 * 32-position step of the P.V dot products (and its tail) lies in one
 * tile: the same positions in the same lanes, only the addresses move. */
#define BN_VT 64
/* Element offset of position p in a V^T column whose tiles are ts apart. */
static inline int64_t vt_off(int64_t ts, int p) { return (int64_t)(p / BN_VT) * ts + p % BN_VT; }

struct bn_forward {
    const bn_model *m;
    const bn_kernels *k;
    bn_pool *pool;
    int n_ctx, n_batch, n_threads, pos;
    int64_t k_head_ld; /* elements from one (layer, kv head)'s K rows to the next: n_ctx * head_dim + 32 */
    int64_t v_tile;    /* elements from one V^T tile (BN_VT positions of every column) to the next: head_dim * BN_VT */
    int64_t v_head_ld; /* elements from one (layer, kv head)'s V^T tiles to the next's */
    bn_kv_type kv;
    int q_dim, kv_dim, qkv_dim;

    /* activations for the current batch (row-major [n_batch][width]) */
    float *x;        /* residual stream [n_embd] */
    float *xn;       /* normalized matmul input [max(n_embd, q_dim, n_ff)] */
    float *qkv;      /* q | k | v  [qkv_dim] */
    float *att;      /* attention output [q_dim] */
    float *gu;       /* gate | up [2 n_ff] */
    float *y;        /* wo / down output [n_embd] */
    float *rope;     /* cos, sin per (token, pair) [n_rot] */
    bn_act act[SITE_COUNT][BN_ACT_COUNT]; /* kind unused: data == NULL */

    void *kc, *vc;   /* caches, f16 or f32: K [n_layer][n_head_kv][n_ctx][head_dim],
                        V transposed in tiles [n_layer][n_head_kv][n_ctx / BN_VT][head_dim][BN_VT]
                        (k_head_ld, v_tile, v_head_ld; see kcache_at) */
    size_t k_bytes, v_bytes; /* of kc, vc (bn_alloc_big) */
    float *f16tab;   /* f16 -> f32, 65536 entries (f16 cache only) */
    float *scores;   /* per thread [BN_ATT_QT][n_head / n_head_kv][n_ctx + 8] */
    float *qtmp;     /* per thread [BN_ATT_QT][n_head / n_head_kv][head_dim] */
    float *pvlanes;  /* per thread [BN_ATT_QT][n_head / n_head_kv][8][head_dim]: blocked P.V lane sums */
    float *kvtmp;    /* per thread: K rows [n_ctx][head_dim], V rows [n_ctx][head_dim], P.V lanes [8][head_dim] */
    float *wrow;     /* per thread [n_embd]: a head row as f32 (compat head) */
    struct mm_claim *claims; /* per thread: what is left of its one-token matmul share */
    struct tok_input *own;   /* per thread, 2+ threads: its own copy of a one-token matmul's input */
    bool hw_fma;     /* CPU has FMA: the fma-target helpers may run */
    bool hw_avx2;    /* and AVX2 (the compat head's vector loop) */
    bool hw_avx512;  /* and AVX-512 F/VL with an AVX-512 kernel table (batch attention) */
    int64_t att_block_bytes; /* f32 K+V bytes of a kv head past which batch attention is blocked */
    bn_vm_level vm;  /* vecmath level of the row helpers (norms, softmax, f16) */
    bn_compat compat;
};

/* ---- small numeric blocks, as ggml computes them ------------------------ */

/* ggml rms_norm + mul on rows: sum of squares in double, scale in float,
 * then * w. Eight rows' sums at a time (bn_sumsq_rows runs their chains side
 * by side); o may be x. */
static void rmsnorm_rows(float *o, int64_t ldo, const float *x, int64_t ldx, const float *w, int rows, int n, float eps,
                         bn_vm_level lv) {
    for (int r0 = 0; r0 < rows; r0 += 8) {
        const int nr = rows - r0 < 8 ? rows - r0 : 8;
        double sums[8];
        /* eight rows: their in-order chains side by side; fewer (decode's
         * one): bn_rms_mean, the same floats without the chain's latency */
        if (nr == 8) bn_sumsq_rows(x + r0 * ldx, ldx, nr, n, sums, lv);
        for (int r = 0; r < nr; r++) {
            const float mean = nr == 8 ? (float)(sums[r] / n) : bn_rms_mean(x + (r0 + r) * ldx, n, lv);
            const float scale = 1.0f / sqrtf(mean + eps);
            const float *xr = x + (r0 + r) * ldx;
            float *yr = o + (r0 + r) * ldo;
            for (int i = 0; i < n; i++) yr[i] = (xr[i] * scale) * w[i];
        }
    }
}

/* ggml rope cache: theta_i = pos * base^(-2i/n_rot) by repeated float multiplication. */
static void rope_cache(float *cs, int pos, int n_rot, float base) {
    const float theta_scale = powf(base, -2.0f / (float)n_rot);
    float theta = (float)pos;
    for (int i = 0; i < n_rot / 2; i++) {
        cs[2 * i] = cosf(theta);
        cs[2 * i + 1] = sinf(theta);
        theta *= theta_scale;
    }
}

/* NEOX rotation: pairs (i, i + n_rot/2). The reference engines' compilers
 * contract x0*c - x1*s into fma(x0, c, -(x1*s)) and x0*s + x1*c into
 * fma(x0, s, x1*c) (gcc -ffp-contract=fast, clang within one expression);
 * a one-ulp difference here rarely survives the f16 rounding of q and k,
 * but when it does it flips activation codes later (llamacpp-relu2-tq2_0
 * prompt B, decode row 27). */
#define BN_ROPE_BODY                                        \
    const int h = n_rot / 2;                                \
    for (int i = 0; i < h; i++) {                           \
        const float c = cs[2 * i], s = cs[2 * i + 1];       \
        const float x0 = v[i], x1 = v[i + h];               \
        v[i] = fmaf(x0, c, -(x1 * s));                      \
        v[i + h] = fmaf(x0, s, x1 * c);                     \
    }
static void rope_plain(float *v, const float *cs, int n_rot) { BN_ROPE_BODY }
#if defined(__x86_64__)
/* the same with fmaf as an instruction, not a library call (bitwise equal) */
__attribute__((target("fma"))) static void rope_fma(float *v, const float *cs, int n_rot) { BN_ROPE_BODY }
#endif
static void rope_neox(float *v, const float *cs, int n_rot, bool hw_fma) {
#if defined(__x86_64__)
    if (hw_fma) { rope_fma(v, cs, n_rot); return; }
#endif
    (void)hw_fma;
    rope_plain(v, cs, n_rot);
}


/* ---- attention arithmetic in ggml's order ---------------------------------
 * The reference engines run attention through ggml's AVX2 code: exponentials
 * from ggml_v_expf (a polynomial with FMAs, not libm), dot products as eight
 * FMA lanes reduced pairwise. A rounding difference here flips f16 roundings
 * of the probabilities and then int8 activation codes downstream, so the
 * exact order is reproduced (in scalar code; fmaf is exactly rounded either
 * way, the "fma" target only makes it fast). */


#define BN_DOT8_BODY                                                                           \
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};                                                   \
    int l = 0;                                                                                 \
    for (; l + 8 <= n; l += 8)                                                                 \
        for (int m = 0; m < 8; m++) acc[m] = fmaf(a[l + m], b[(int64_t)(l + m) * sb], acc[m]); \
    for (int m = 0; l + m < n; m++) acc[m] = fmaf(a[l + m], b[(int64_t)(l + m) * sb], acc[m]); \
    const float t0 = acc[4] + acc[0], t1 = acc[5] + acc[1], t2 = acc[6] + acc[2], t3 = acc[7] + acc[3]; \
    return (t0 + t2) + (t1 + t3);

#if defined(__x86_64__)
__attribute__((target("fma"))) static float dot8_fma(const float *a, const float *b, int64_t sb, int n) { BN_DOT8_BODY }
#endif
static float dot8_generic(const float *a, const float *b, int64_t sb, int n) { BN_DOT8_BODY }

/* Dot product as tinyBLAS computes one output (8 FMA lanes, then hsum);
 * b has stride sb. */
static inline float dot8(const float *a, const float *b, int64_t sb, int n, bool hw_fma) {
#if defined(__x86_64__)
    if (hw_fma) return dot8_fma(a, b, sb, n);
#endif
    (void)hw_fma;
    return dot8_generic(a, b, sb, n);
}

/* ggml_vec_dot_f16 on AVX2 (GGML_F16_STEP 32): element i goes by fma to lane
 * i % 32 (4 accumulators of 8); accumulators 0+2, 1+3, then 0+1; the 8 lanes
 * as (l0+h0 + l1+h1) + (l2+h2 + l3+h3) (add of the halves, two hadds). The
 * reference's n is always a multiple of 32 (head_dim 32..128, n_kv padded to
 * 32 with zero probabilities and zero cache cells), so there is no leftover
 * loop: missing elements are the padding's exact zeros. */
#define BN_DOTF16_BODY                                                                         \
    float acc[32];                                                                             \
    for (int m = 0; m < 32; m++) acc[m] = 0.0f;                                                \
    int l = 0;                                                                                 \
    for (; l + 32 <= n; l += 32)                                                               \
        for (int m = 0; m < 32; m++) acc[m] = fmaf(a[l + m], b[(int64_t)(l + m) * sb], acc[m]); \
    for (int m = 0; l + m < n; m++) acc[m] = fmaf(a[l + m], b[(int64_t)(l + m) * sb], acc[m]); \
    for (int m = 0; m < 8; m++) {                                                              \
        acc[m] = acc[m] + acc[16 + m];                                                         \
        acc[8 + m] = acc[8 + m] + acc[24 + m];                                                 \
    }                                                                                          \
    for (int m = 0; m < 8; m++) acc[m] = acc[m] + acc[8 + m];                                  \
    const float t0 = acc[0] + acc[4], t1 = acc[1] + acc[5], t2 = acc[2] + acc[6], t3 = acc[3] + acc[7]; \
    return (t0 + t1) + (t2 + t3);

#if defined(__x86_64__)
__attribute__((target("fma"))) static float dotf16_fma(const float *a, const float *b, int64_t sb, int n) { BN_DOTF16_BODY }
#endif
static float dotf16_generic(const float *a, const float *b, int64_t sb, int n) { BN_DOTF16_BODY }

/* Dot product as ggml_vec_dot_f16 computes it (operands already f16 values). */
static inline float dotf16(const float *a, const float *b, int64_t sb, int n, bool hw_fma) {
#if defined(__x86_64__)
    if (hw_fma) return dotf16_fma(a, b, sb, n);
#endif
    (void)hw_fma;
    return dotf16_generic(a, b, sb, n);
}

#if defined(__x86_64__)
/* Loads of 8 floats (or one) from an f32 row or, with F16, an f16 row
 * (vcvtph2ps: exact, so the same values as the converted copies). */
#define BN_AI_X86 static inline __attribute__((always_inline, target("avx2,fma,f16c")))
BN_AI_X86 __m256 ld8x(const void *b, int64_t i, const int F16) {
    if (F16) return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)b + i)));
    return _mm256_loadu_ps((const float *)b + i);
}
BN_AI_X86 float ld1x(const void *b, int64_t i, const int F16) {
    return F16 ? _cvtsh_ss(((const uint16_t *)b)[i]) : ((const float *)b)[i];
}
/* A V^T column (BN_VT values per tile, tiles ts elements apart) read from
 * element l on (l a multiple of 8, up to the end of its tile) as b[l...]:
 * the base that makes it so. ts == BN_VT: contiguous values, b itself. */
BN_AI_X86 const void *vt_chunk(const void *b, int64_t ts, int l, const int F16) {
    return (const uint8_t *)b + (int64_t)(l / BN_VT) * (ts - BN_VT) * (F16 ? 2 : 4);
}

/* Lanes m < r (r <= 8) of s, each with fmaf(a[i + m], b[i + m], s[m]);
 * the other lanes unchanged. In registers: the scalar tail loop it
 * replaces stored the lanes, changed some and reloaded them as a vector,
 * a store-forwarding stall per call that made the one-token P.V at short
 * contexts (~80 keys: a 16-element tail per column) cost 7% of a decoded
 * token on Zen 5. a and an f32 b are read with masked loads; an f16 b is
 * read whole (8 values): the K cache keeps 32 values of padding past every
 * head block (k_head_ld), V^T is in whole tiles of BN_VT positions (i is a
 * multiple of 8 there), and lanes past r are discarded by the blend
 * whatever they hold. */
BN_AI_X86 __m256 fma_lanes(__m256 s, const float *a, const void *b, const int F16, int64_t i, int r) {
    const __m256i on = _mm256_cmpgt_epi32(_mm256_set1_epi32(r), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    const __m256 x = _mm256_maskload_ps(a + i, on);
    const __m256 y = F16 ? ld8x(b, i, 1) : _mm256_maskload_ps((const float *)b + i, on);
    return _mm256_blendv_ps(s, _mm256_fmadd_ps(x, y, s), _mm256_castsi256_ps(on));
}

/* dot8 and dotf16 for contiguous operands with AVX2: the same lanes, fmas
 * and reduction trees as BN_DOT8_BODY and BN_DOTF16_BODY (bitwise equal),
 * for the Q.K products; b is f32, or f16 straight from the cache. */
BN_AI_X86 float dot8_x(const float *a, const void *b, const int F16, int n, int64_t ts) {
    __m256 s = _mm256_setzero_ps();
    int l = 0;
    for (; l + 8 <= n; l += 8) s = _mm256_fmadd_ps(_mm256_loadu_ps(a + l), ld8x(vt_chunk(b, ts, l, F16), l, F16), s);
    if (l < n) s = fma_lanes(s, a, vt_chunk(b, ts, l, F16), F16, l, n - l);
    __m128 t = _mm_add_ps(_mm256_extractf128_ps(s, 1), _mm256_castps256_ps128(s)); /* t_i = a[4+i] + a[i] */
    t = _mm_add_ps(t, _mm_movehl_ps(t, t));                                        /* t0+t2, t1+t3 */
    t = _mm_add_ss(t, _mm_movehdup_ps(t));
    return _mm_cvtss_f32(t);
}

/* BN_DOTF16_BODY's tree on its 32 lanes in four registers. */
BN_AI_X86 float tree32x(__m256 s0, __m256 s1, __m256 s2, __m256 s3) {
    s0 = _mm256_add_ps(s0, s2);
    s1 = _mm256_add_ps(s1, s3);
    s0 = _mm256_add_ps(s0, s1);
    __m128 t = _mm_add_ps(_mm256_castps256_ps128(s0), _mm256_extractf128_ps(s0, 1));
    t = _mm_hadd_ps(t, t);
    t = _mm_hadd_ps(t, t);
    return _mm_cvtss_f32(t);
}
/* The 32 lanes of a dotf16 chain in registers, finished by fmas of the
 * elements l..n-1 (fewer than 32) into lanes 0.., then the tree. */
BN_AI_X86 float tail32x(__m256 s0, __m256 s1, __m256 s2, __m256 s3, const float *a, const void *b, const int F16, int l,
                        int n) {
    const int r = n - l; /* 0..31 */
    if (r > 0) s0 = fma_lanes(s0, a, b, F16, l, r);
    if (r > 8) s1 = fma_lanes(s1, a, b, F16, l + 8, r - 8);
    if (r > 16) s2 = fma_lanes(s2, a, b, F16, l + 16, r - 16);
    if (r > 24) s3 = fma_lanes(s3, a, b, F16, l + 24, r - 24);
    return tree32x(s0, s1, s2, s3);
}
/* b: contiguous (ts == BN_VT) or a V^T column in tiles ts elements apart */
BN_AI_X86 float dotf16_x(const float *a, const void *b, const int F16, int n, int64_t ts) {
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    int l = 0;
    for (; l + 32 <= n; l += 32) {
        const void *bl = vt_chunk(b, ts, l, F16);
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + l), ld8x(bl, l, F16), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + l + 8), ld8x(bl, l + 8, F16), s1);
        s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + l + 16), ld8x(bl, l + 16, F16), s2);
        s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + l + 24), ld8x(bl, l + 24, F16), s3);
    }
    return tail32x(s0, s1, s2, s3, a, vt_chunk(b, ts, l, F16), F16, l, n);
}
__attribute__((target("avx2,fma,f16c"))) static float dot8_avx2(const float *a, const float *b, int n) { return dot8_x(a, b, 0, n, BN_VT); }
__attribute__((target("avx2,fma,f16c"))) static float dotf16_avx2(const float *a, const float *b, int n) {
    return dotf16_x(a, b, 0, n, BN_VT);
}
#endif

/* Which act kinds a set of weights needs (bitmask). */
static unsigned kinds_of(const bn_qmat *const *w, int n) {
    unsigned mask = 0;
    for (int i = 0; i < n; i++) mask |= 1u << bn_act_kind_for(w[i]->type);
    return mask;
}

/* ---- parallel regions ---------------------------------------------------- */

/* A region's shared arguments. Fields used depend on the region. */
typedef struct job {
    bn_forward *f;
    int n;                    /* tokens in the batch */
    int t_first;              /* first token index (output rows) */
    const float *in;          /* norm input rows */
    int64_t ld_in;
    const float *norm_w;      /* norm weight (NULL: input already normalized) */
    int width;                /* row width of in / norm */
    int site;
    unsigned kinds;           /* act kinds to fill */
    /* matmul group */
    int nw;
    const bn_qmat *w[3];
    float *y[3];
    float scale[3];
    int64_t ldy;
    float *resid;             /* y[0] rows added into resid (same ld) when not NULL */
    const bn_layer *L;
    int layer;
    _Atomic int64_t next_chunk; /* batch matmul: the next chunk to take */
    bool steal;                 /* one token: the shares in f->claims (matmul_steal) */
    int pre;                    /* one token, stealing: what each thread computes first (PRE_*) */
} job;

/* What a one-token matmul region computes first, on every thread into its
 * own tok_input: nothing (the input is in f->act), the norm and quantize of
 * region_norm_quant, or the FFN middle of region_ffn_act. */
enum { PRE_NONE = 0, PRE_NORM, PRE_FFN };

/* A thread's own normalized input and quantized activations (one token). */
typedef struct tok_input {
    float *xn;                            /* [max(n_embd, q_dim, n_ff)] */
    bn_act act[SITE_COUNT][BN_ACT_COUNT]; /* n = 1; kind unused: data == NULL */
} tok_input;

/* Norm (optional) + quantize rows [lo, hi) of the batch into xn and acts
 * (one site's kinds). */
static void norm_quant_rows(const job *j, float *xn, bn_act *acts, int64_t lo, int64_t hi) {
    bn_forward *f = j->f;
    const int64_t ldx = j->width;
    if (j->norm_w)
        rmsnorm_rows(xn + lo * ldx, ldx, j->in + (j->t_first + lo) * j->ld_in, j->ld_in, j->norm_w, (int)(hi - lo),
                     j->width, f->m->hp.rms_eps, f->vm);
    else if (j->in != xn)
        for (int64_t t = lo; t < hi; t++)
            memcpy(xn + t * ldx, j->in + (j->t_first + t) * j->ld_in, (size_t)j->width * sizeof(float));
    for (int kd = 0; kd < BN_ACT_COUNT; kd++)
        if (j->kinds & (1u << kd)) f->k->quantize_act(&acts[kd], xn, ldx, (int)lo, (int)hi);
}

/* Norm (optional) + quantize rows of the batch, split over tokens. */
static void region_norm_quant(void *arg, int ith, int nth) {
    job *j = arg;
    int64_t lo, hi;
    bn_pool_split(j->n, ith, nth, 1, &lo, &hi);
    if (lo < hi) norm_quant_rows(j, j->f->xn, j->f->act[j->site], lo, hi);
}

/* Weight i's rows [r0, r1) of every token: the per-tensor scale, then the
 * residual add, once the matmul has written them. */
static void matmul_finish(const job *j, int i, int64_t r0, int64_t r1) {
    for (int t = 0; t < j->n; t++) {
        float *yr = j->y[i] + (int64_t)t * j->ldy;
        if (j->scale[i] != 1.0f)
            for (int64_t r = r0; r < r1; r++) yr[r] *= j->scale[i];
        if (j->resid) {
            float *xr = j->resid + (int64_t)t * j->ldy;
            for (int64_t r = r0; r < r1; r++) xr[r] += yr[r];
        }
    }
}

/* Rows [lo, hi) of several weights sharing one input, taken as one range
 * over their concatenated rows; optional per-tensor scale and residual add. */
static void matmul_rows(job *j, int64_t lo, int64_t hi) {
    bn_forward *f = j->f;
    int64_t base = 0;
    for (int i = 0; i < j->nw; i++) {
        const bn_qmat *W = j->w[i];
        int64_t r0 = lo > base ? lo - base : 0, r1 = hi - base < W->M ? hi - base : W->M;
        base += W->M;
        if (r0 >= r1) continue;
        bn_act *a = &f->act[j->site][bn_act_kind_for(W->type)];
        f->k->matmul(W, a, r0, r1, j->y[i], j->ldy);
        matmul_finish(j, i, r0, r1);
    }
}

/* ---- one token: shares with stealing --------------------------------------
 * A thread's share of a one-token matmul is a range of rows that the kernel
 * reads as a few runs side by side (bn_kernels_runs), one weight stream per
 * run. On a VM one vCPU can run 5-35% slower than the other for a while, and
 * a static split then leaves the faster thread waiting. So each share is
 * counted in steps (row i of every run is step i; the 0..R*u-1 rows left
 * over are one more step). Its owner takes steps from the front: 7/8 of
 * them at once, then a quarter of what is left at a time; a thread whose
 * own share is done takes steps from the back of another's, half of what is
 * left at a time. Either way the runs stay whole streams: the owner's go on
 * where they were, the thief's start where the owner's will end. Zen 5 VM,
 * 2b4t decode at 2 threads, one process alternating per step with the
 * static split, 60 and 38 rounds of 96 steps: +2.1% and +0.6% (better by
 * over 1% in 35 of the 60 rounds, worse in 1); first claims of 3/4 and
 * 15/16 gave the same, a quarter at a time from the start +1.1%, and the
 * owner's chunks alone, without a thief, 4-6% less than the static split.
 * Dealing the last rows in 32-row chunks (an earlier try) measured 0-9%
 * slower: the chunks broke the streams. */

/* What is left of a share: steps [front, back), packed front | back << 32
 * so one compare-and-swap takes from either end; a line of its own. */
typedef struct mm_claim {
    _Alignas(64) _Atomic uint64_t left;
    int64_t min_steps; /* the smallest chunk worth a kernel call */
    char pad[64 - sizeof(uint64_t) - sizeof(int64_t)];
} mm_claim;

/* A share's part of one weight: rows [r0, r1), runs of n rows (a multiple
 * of u) from r0, then rows [r0 + R n, r1) as the last step. */
typedef struct mm_piece {
    int w, R, u;
    int64_t r0, r1, n, steps;
} mm_piece;

/* The pieces of thread v's share (the same split as the batch-less static
 * one) and their total steps; the same on every thread. */
static int64_t share_pieces(const job *j, int v, int nth, mm_piece *pc, int *np) {
    int64_t total = 0, lo, hi, base = 0, steps = 0;
    for (int i = 0; i < j->nw; i++) total += j->w[i]->M;
    bn_pool_split(total, v, nth, ROW_ALIGN, &lo, &hi);
    *np = 0;
    for (int i = 0; i < j->nw; i++) {
        const bn_qmat *W = j->w[i];
        const int64_t r0 = lo > base ? lo - base : 0, r1 = hi - base < W->M ? hi - base : W->M;
        base += W->M;
        if (r0 >= r1) continue;
        mm_piece *p = &pc[(*np)++];
        p->w = i;
        p->r0 = r0;
        p->r1 = r1;
        bn_kernels_runs(j->f->k, W->type, &p->R, &p->u);
        p->n = (r1 - r0) / ((int64_t)p->R * p->u) * p->u;
        p->steps = p->n / p->u + (r0 + p->R * p->n < r1);
        steps += p->steps;
    }
    return steps;
}

/* A thread's token prepared for the runs kernels (bn_kernels_runs_prep),
 * once per weight type and width instead of once per chunk. */
typedef struct runs_prep {
    _Alignas(64) uint8_t buf[BN_RUNS_PREP_BYTES];
    const void *prep;
    uint32_t type;
    int64_t K;
    bool done;
} runs_prep;

/* Steps [s0, s1) of a share: each piece's runs from step s0 on, and the
 * rows left over if the last step is among them. */
static void share_steps(job *j, const bn_act *acts, const mm_piece *pc, int np, int64_t s0, int64_t s1,
                        runs_prep *rp) {
    bn_forward *f = j->f;
    int64_t base = 0;
    for (int k = 0; k < np; k++) {
        const mm_piece *p = &pc[k];
        const bn_qmat *W = j->w[p->w];
        const bn_act *a = &acts[bn_act_kind_for(W->type)];
        const int64_t lo = s0 - base > 0 ? s0 - base : 0, hi = s1 - base < p->steps ? s1 - base : p->steps;
        const int64_t main_steps = p->n / p->u;
        base += p->steps;
        if (lo >= hi) continue;
        if (lo < main_steps) {
            const int64_t e = hi < main_steps ? hi : main_steps, len = (e - lo) * p->u;
            int64_t start[BN_MAX_RUNS];
            for (int r = 0; r < p->R; r++) start[r] = p->r0 + r * p->n + lo * p->u;
            if (!rp->done || rp->type != W->type || rp->K != W->K) {
                rp->prep = bn_kernels_runs_prep(f->k, W, a, rp->buf);
                rp->type = W->type;
                rp->K = W->K;
                rp->done = true;
            }
            bn_kernels_matmul_runs(f->k, W, a, rp->prep, start, len, j->y[p->w]);
            for (int r = 0; r < p->R; r++) matmul_finish(j, p->w, start[r], start[r] + len);
        }
        if (hi > main_steps) {
            const int64_t r = p->r0 + p->R * p->n;
            f->k->matmul(W, a, r, p->r1, j->y[p->w], j->ldy);
            matmul_finish(j, p->w, r, p->r1);
        }
    }
}

/* Take a chunk of steps from the front (the owner) or the back (a thief). */
static bool claim_steps(mm_claim *c, bool front, int64_t *s0, int64_t *s1) {
    uint64_t v = atomic_load_explicit(&c->left, memory_order_relaxed);
    for (;;) {
        const int64_t lo = (int64_t)(v & 0xffffffffu), hi = (int64_t)(v >> 32), rem = hi - lo;
        if (rem <= 0) return false;
        int64_t take = !front ? rem / 2 : lo == 0 ? rem - rem / 8 : rem / 4;
        if (take < c->min_steps) take = c->min_steps;
        if (take > rem) take = rem;
        const uint64_t nv = front ? v + (uint64_t)take : v - ((uint64_t)take << 32);
        if (atomic_compare_exchange_weak_explicit(&c->left, &v, nv, memory_order_relaxed, memory_order_relaxed)) {
            *s0 = front ? lo : hi - take;
            *s1 = front ? lo + take : hi;
            return true;
        }
    }
}

/* The one-token matmul on thread ith: its own share, then the others'. acts:
 * the input's activation kinds (f->act's site, or the thread's own). */
static void matmul_steal(job *j, const bn_act *acts, int ith, int nth) {
    runs_prep rp;
    rp.done = false;
    mm_piece pc[3];
    int np;
    int64_t s0, s1;
    for (int d = 0; d < nth; d++) {
        const int v = (ith + d) % nth;
        mm_claim *c = &j->f->claims[v];
        const uint64_t left = atomic_load_explicit(&c->left, memory_order_relaxed);
        if ((left & 0xffffffffu) >= left >> 32) continue;
        share_pieces(j, v, nth, pc, &np);
        while (claim_steps(c, d == 0, &s0, &s1)) share_steps(j, acts, pc, np, s0, s1, &rp);
    }
}

/* Before a one-token matmul region: every share's steps, all left. The
 * smallest chunk is ~16 KB of weights, so a kernel call's setup stays a
 * small part of it. */
static void matmul_steal_init(job *j, int nth) {
    int64_t total = 0;
    for (int i = 0; i < j->nw; i++) total += j->w[i]->M;
    j->steal = total < ((int64_t)1 << 32); /* steps of a share fit the 32-bit halves */
    for (int v = 0; v < nth && j->steal; v++) {
        mm_piece pc[3];
        int np;
        const int64_t steps = share_pieces(j, v, nth, pc, &np);
        mm_claim *c = &j->f->claims[v];
        const int64_t step_bytes = np ? (int64_t)(pc[0].R * pc[0].u) * (int64_t)j->w[pc[0].w]->row_bytes : 1;
        c->min_steps = (16384 + step_bytes - 1) / step_bytes;
        atomic_store_explicit(&c->left, (uint64_t)steps << 32, memory_order_relaxed);
    }
}

static void ffn_act_rows(const job *j, float *xn, bn_act *acts, int64_t lo, int64_t hi);

/* A matmul region. One token: each thread its contiguous share of the rows,
 * a stream the kernels read in runs, with stealing (matmul_steal). A batch
 * (compute bound, weight tiles from L2): chunks of BN_MM_CHUNK rows dealt
 * from a shared counter, the first one by thread index (as ggml's
 * current_chunk), so a thread that runs slower (on a VM a vCPU's speed
 * moves from region to region: the static split left one thread waiting 8%
 * of a 2-thread pp512 on average) takes fewer. Every row's result depends
 * only on the row, so the output is the same whichever thread computes it. */
#define BN_MM_CHUNK 128
static void region_matmul(void *arg, int ith, int nth) {
    job *j = arg;
    int64_t total = 0;
    for (int i = 0; i < j->nw; i++) total += j->w[i]->M;
    if (j->n > 1 && nth > 1) {
        for (int64_t c = ith;; c = atomic_fetch_add_explicit(&j->next_chunk, 1, memory_order_relaxed)) {
            const int64_t lo = c * BN_MM_CHUNK;
            if (lo >= total) break;
            matmul_rows(j, lo, lo + BN_MM_CHUNK < total ? lo + BN_MM_CHUNK : total);
        }
        return;
    }
    if (j->steal) {
        bn_forward *f = j->f;
        const bn_act *acts = f->act[j->site];
        if (j->pre != PRE_NONE) { /* this thread's own copy of the input: no region (and no barrier) before */
            tok_input *o = &f->own[ith];
            if (j->pre == PRE_NORM) norm_quant_rows(j, o->xn, o->act[j->site], 0, 1);
            else ffn_act_rows(j, o->xn, o->act[SITE_FF], 0, 1);
            acts = o->act[j->site];
        }
        matmul_steal(j, acts, ith, nth);
        return;
    }
    int64_t lo, hi;
    bn_pool_split(total, ith, nth, ROW_ALIGN, &lo, &hi);
    matmul_rows(j, lo, hi);
}

/* Where the caches keep a kv head's data, in elements: K as rows
 * [n_ctx][head_dim] per (layer, kv head), so one token's Q.K streams a
 * head's keys contiguously; V transposed, as llama.cpp keeps its one-token
 * V, so each output column's P.V is a dot product along positions, in
 * tiles of BN_VT positions: [n_ctx / BN_VT][head_dim][BN_VT] per (layer, kv
 * head). vcache_at gives column d's start in tile 0; position p of it is
 * vt_pos(f, p) further on. */
static inline int64_t kcache_at(const bn_forward *f, int layer, int kvh, int p) {
    return ((int64_t)layer * f->m->hp.n_head_kv + kvh) * f->k_head_ld + (int64_t)p * f->m->hp.head_dim;
}
static inline int64_t vcache_at(const bn_forward *f, int layer, int kvh, int d) {
    return ((int64_t)layer * f->m->hp.n_head_kv + kvh) * f->v_head_ld + (int64_t)d * BN_VT;
}
static inline int64_t vt_pos(const bn_forward *f, int p) { return vt_off(f->v_tile, p); }

/* Store kv head g's K and V vectors of position p (f16 or f32); V goes
 * across its tile's columns (BN_VT apart), converted a chunk at a time by
 * the same row helper. */
static void cache_put(bn_forward *f, int layer, int g, int p, const float *k, const float *v) {
    const int hd = f->m->hp.head_dim;
    const int64_t ko = kcache_at(f, layer, g, p), vo = vcache_at(f, layer, g, 0) + vt_pos(f, p);
    if (f->kv == BN_KV_F16) {
        bn_f32_to_f16_row(k, (uint16_t *)f->kc + ko, hd, f->vm);
        uint16_t h[64];
        for (int d0 = 0; d0 < hd; d0 += 64) {
            const int m = hd - d0 < 64 ? hd - d0 : 64;
            bn_f32_to_f16_row(v + d0, h, m, f->vm);
            for (int i = 0; i < m; i++) ((uint16_t *)f->vc)[vo + (int64_t)(d0 + i) * BN_VT] = h[i];
        }
    } else {
        memcpy((float *)f->kc + ko, k, (size_t)hd * sizeof(float));
        for (int d = 0; d < hd; d++) ((float *)f->vc)[vo + (int64_t)d * BN_VT] = v[d];
    }
}

/* RoPE on q and k heads, then K and V into the cache; items = (token, head). */
static void region_rope_store(void *arg, int ith, int nth) {
    job *j = arg;
    bn_forward *f = j->f;
    const bn_hparams *hp = &f->m->hp;
    const int nh = hp->n_head + hp->n_head_kv, hd = hp->head_dim;
    int64_t lo, hi, step = 1;
    bn_pool_split((int64_t)j->n * nh, ith, nth, 1, &lo, &hi);
    if (j->n == 1) {
        /* One token: the items dealt round robin, so every thread stores
         * some kv heads. The contiguous split gave the last thread all of
         * them: a V column is head_dim lines 2 * n_ctx bytes apart that the
         * weight stream has evicted since the last step, and storing them
         * cold from one thread measured ~27 us per layer while the other
         * waited, 3% of a 2-thread decode step. (Prefetching those lines
         * first measured no better. Batches keep contiguous items: round
         * robin would put neighbouring positions of a V line on different
         * threads.) */
        lo = ith, hi = nh, step = nth;
    }
    for (int64_t it = lo; it < hi; it += step) {
        const int t = (int)(it / nh), h = (int)(it % nh);
        float *row = f->qkv + (int64_t)t * f->qkv_dim;
        const float *cs = f->rope + (int64_t)t * hp->n_rot;
        if (h < hp->n_head) {
            rope_neox(row + h * hd, cs, hp->n_rot, f->hw_fma);
        } else {
            const int g = h - hp->n_head;
            float *kv = row + f->q_dim + g * hd;
            rope_neox(kv, cs, hp->n_rot, f->hw_fma);
            cache_put(f, j->layer, g, f->pos + t, kv, row + f->q_dim + f->kv_dim + g * hd);
        }
    }
}

/* Causal attention for items (token, q head) against the cache, in ggml's
 * arithmetic: q and p rounded to f16 (F16 cache), dot products in tinyBLAS
 * order, softmax with ggml_v_expf and 8-lane partial sums added in double. */
/* out[d] = dot8(p, V[.][d]) for every d at once: element j goes to lane j % 8
 * with an fma, lanes reduced as in BN_DOT8_BODY, so each out[d] is bitwise
 * what dot8(p, v + d, hd, n) gives, without walking V once per d. */
#define BN_PV8_BODY                                                                             \
    for (int m = 0; m < 8; m++)                                                                 \
        for (int d = 0; d < hd; d++) lanes[m * hd + d] = 0.0f;                                  \
    for (int j = 0; j < n; j++) {                                                               \
        float *acc = lanes + (j % 8) * hd;                                                      \
        const float pj = p[j], *vj = v + (int64_t)j * hd;                                       \
        BN_PV8_ROW                                                                              \
    }                                                                                           \
    for (int d = 0; d < hd; d++) {                                                              \
        const float *a = lanes + d;                                                             \
        const float t0 = a[4 * hd] + a[0], t1 = a[5 * hd] + a[hd], t2 = a[6 * hd] + a[2 * hd],  \
                    t3 = a[7 * hd] + a[3 * hd];                                                 \
        out[d] = (t0 + t2) + (t1 + t3);                                                         \
    }
#define BN_PV8_ROW for (int d = 0; d < hd; d++) acc[d] = fmaf(pj, vj[d], acc[d]);
static void pv8_generic(const float *p, const float *v, int n, int hd, float *lanes, float *out) { BN_PV8_BODY }
#if defined(__x86_64__)
/* The same sums with the eight lanes of 8 (or 16) consecutive d in
 * registers: element j goes by fma to lane j % 8, lanes reduced as in
 * BN_PV8_BODY; bitwise equal to pv8_generic, without its loads and stores
 * of the lanes array per element. */
/* STEP(0) .. STEP(6) for the first REM (< 8) of a group of 8, unrolled. */
#define BN_TAIL7(STEP, REM)                                                                      \
    if ((REM) > 0) STEP(0)                                                                       \
    if ((REM) > 1) STEP(1)                                                                       \
    if ((REM) > 2) STEP(2)                                                                       \
    if ((REM) > 3) STEP(3)                                                                       \
    if ((REM) > 4) STEP(4)                                                                       \
    if ((REM) > 5) STEP(5)                                                                       \
    if ((REM) > 6) STEP(6)
#define PV8_STEP(M)                                                                              \
    {                                                                                            \
        const __m256 pj = _mm256_set1_ps(p[j + M]);                                              \
        const int64_t o = (int64_t)(j + M) * ldv + d;                                            \
        a##M##0 = _mm256_fmadd_ps(pj, ld8x(v, o, F16), a##M##0);                                 \
        if (W2) a##M##1 = _mm256_fmadd_ps(pj, ld8x(v, o + 8, F16), a##M##1);                     \
    }
BN_AI_X86 void pv8_chunk(const float *p, const void *v, int64_t ldv, const int F16, int n, int d, const int W2,
                         float *out) {
    __m256 a00 = _mm256_setzero_ps(), a10 = a00, a20 = a00, a30 = a00, a40 = a00, a50 = a00, a60 = a00, a70 = a00;
    __m256 a01 = a00, a11 = a00, a21 = a00, a31 = a00, a41 = a00, a51 = a00, a61 = a00, a71 = a00;
    int j = 0;
    for (; j + 8 <= n; j += 8) {
        PV8_STEP(0) PV8_STEP(1) PV8_STEP(2) PV8_STEP(3) PV8_STEP(4) PV8_STEP(5) PV8_STEP(6) PV8_STEP(7)
    }
    const int rem = n - j;
    BN_TAIL7(PV8_STEP, rem)
    const __m256 t0 = _mm256_add_ps(a40, a00), t1 = _mm256_add_ps(a50, a10), t2 = _mm256_add_ps(a60, a20),
                 t3 = _mm256_add_ps(a70, a30);
    _mm256_storeu_ps(out + d, _mm256_add_ps(_mm256_add_ps(t0, t2), _mm256_add_ps(t1, t3)));
    if (W2) {
        const __m256 u0 = _mm256_add_ps(a41, a01), u1 = _mm256_add_ps(a51, a11), u2 = _mm256_add_ps(a61, a21),
                     u3 = _mm256_add_ps(a71, a31);
        _mm256_storeu_ps(out + d + 8, _mm256_add_ps(_mm256_add_ps(u0, u2), _mm256_add_ps(u1, u3)));
    }
}
#undef PV8_STEP

/* pv8 (BN_PV8_BODY's order) over V rows of stride ldv, f32 or f16. */
BN_AI_X86 void pv8_x(const float *p, const void *v, int64_t ldv, const int F16, int n, int hd, float *out) {
    int d = 0;
    for (; d + 16 <= hd; d += 16) pv8_chunk(p, v, ldv, F16, n, d, 1, out);
    for (; d + 8 <= hd; d += 8) pv8_chunk(p, v, ldv, F16, n, d, 0, out);
    for (; d < hd; d++) { /* the last hd % 8 columns, lane by lane */
        float l[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        for (int j = 0; j < n; j++) l[j % 8] = fmaf(p[j], ld1x(v, (int64_t)j * ldv + d, F16), l[j % 8]);
        const float t0 = l[4] + l[0], t1 = l[5] + l[1], t2 = l[6] + l[2], t3 = l[7] + l[3];
        out[d] = (t0 + t2) + (t1 + t3);
    }
}
__attribute__((target("avx2,fma,f16c"))) static void pv8_avx2(const float *p, const float *v, int n, int hd, float *lanes,
                                                               float *out) {
    pv8_x(p, v, hd, 0, n, hd, out);
    (void)lanes;
}


/* AVX-512 for a batch's attention: Q.K in ggml_vec_dot_f16's order with q
 * held in registers (head_dim a multiple of 32, up to 256), four keys at a
 * time, and P.V in pv8's order over 32 columns per pair of registers.
 * Bitwise the AVX2 and scalar results (the same lanes, fmas and trees). */
#define BN_AI_Z static inline __attribute__((always_inline, target("avx512f,avx512vl,avx2,fma,f16c")))
/* BN_DOTF16_BODY's tree on 32 lanes held as a (0-15) and b (16-31). */
BN_AI_Z float z_tree32(__m512 a, __m512 b) {
    const __m512 s = _mm512_add_ps(a, b);                                                    /* acc[m] + acc[16+m] */
    const __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(s), 1));
    const __m256 h = _mm256_add_ps(_mm512_castps512_ps256(s), hi); /* + acc[8+m] */
    __m128 t = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));          /* L[i] + L[4+i] */
    t = _mm_hadd_ps(t, t);                                                                    /* t0+t1, t2+t3 */
    t = _mm_hadd_ps(t, t);
    return _mm_cvtss_f32(t);
}
#define QKZ_KEY(R)                                                                              \
    a##R = _mm512_fmadd_ps(qa[c], _mm512_loadu_ps(k + (int64_t)(p + R) * hd + 32 * c), a##R);   \
    b##R = _mm512_fmadd_ps(qb[c], _mm512_loadu_ps(k + (int64_t)(p + R) * hd + 32 * c + 16), b##R);
/* q's 32-lane chunks into registers: lanes 0-15 of chunk c in qa[c], 16-31 in qb[c] */
BN_AI_Z void z_q_regs(const float *q, const int NC, __m512 *qa, __m512 *qb) {
#pragma GCC unroll 8
    for (int c = 0; c < NC; c++) {
        qa[c] = _mm512_loadu_ps(q + 32 * c);
        qb[c] = _mm512_loadu_ps(q + 32 * c + 16);
    }
}
BN_AI_Z void qk_z_nc(const float *q, const float *k, const int NC, int n, float scale, float *sc) {
    const int hd = 32 * NC;
    __m512 qa[8], qb[8];
    z_q_regs(q, NC, qa, qb);
    int p = 0;
    for (; p + 4 <= n; p += 4) {
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
#pragma GCC unroll 8
        for (int c = 0; c < NC; c++) { QKZ_KEY(0) QKZ_KEY(1) QKZ_KEY(2) QKZ_KEY(3) }
        sc[p] = z_tree32(a0, b0) * scale;
        sc[p + 1] = z_tree32(a1, b1) * scale;
        sc[p + 2] = z_tree32(a2, b2) * scale;
        sc[p + 3] = z_tree32(a3, b3) * scale;
    }
    for (; p < n; p++) {
        __m512 a0 = _mm512_setzero_ps(), b0 = a0;
#pragma GCC unroll 8
        for (int c = 0; c < NC; c++) { QKZ_KEY(0) }
        sc[p] = z_tree32(a0, b0) * scale;
    }
}
#undef QKZ_KEY
/* scores[p] = dotf16(q, K[p]) * scale for all n keys; hd % 32 == 0, hd <= 256 */
__attribute__((target("avx512f,avx512vl,avx2,fma,f16c"))) static void qk_f16order_z(const float *q, const float *k, int hd,
                                                                                          int n, float scale, float *sc) {
    switch (hd / 32) {
    case 1: qk_z_nc(q, k, 1, n, scale, sc); break;
    case 2: qk_z_nc(q, k, 2, n, scale, sc); break;
    case 4: qk_z_nc(q, k, 4, n, scale, sc); break;
    case 8: qk_z_nc(q, k, 8, n, scale, sc); break;
    default:
        for (int p = 0; p < n; p++) sc[p] = dotf16_x(q, k + (int64_t)p * hd, 0, hd, BN_VT) * scale;
    }
}

/* Q.K of two query heads of a group against the same keys (GQA): the
 * K rows are loaded once for both heads; each (head, key) keeps
 * qk_z_nc's 32 lanes and tree, so the scores are bitwise the same. */
#define QK2_KEY(H, R)                                                                            \
    a##H##R = _mm512_fmadd_ps(qa##H[c], k##R##a, a##H##R);                                       \
    b##H##R = _mm512_fmadd_ps(qb##H[c], k##R##b, b##H##R);
BN_AI_Z void qk2_z_nc(const float *q0, const float *q1, const float *k, const int NC, int n, float scale, float *s0,
                      float *s1) {
    const int hd = 32 * NC;
    __m512 qa0[4], qb0[4], qa1[4], qb1[4];
    z_q_regs(q0, NC, qa0, qb0);
    z_q_regs(q1, NC, qa1, qb1);
    int p = 0;
    for (; p + 2 <= n; p += 2) {
        __m512 a00 = _mm512_setzero_ps(), a01 = a00, a10 = a00, a11 = a00, b00 = a00, b01 = a00, b10 = a00, b11 = a00;
#pragma GCC unroll 4
        for (int c = 0; c < NC; c++) {
            const float *k0 = k + (int64_t)p * hd + 32 * c, *k1 = k0 + hd;
            const __m512 k0a = _mm512_loadu_ps(k0), k0b = _mm512_loadu_ps(k0 + 16);
            const __m512 k1a = _mm512_loadu_ps(k1), k1b = _mm512_loadu_ps(k1 + 16);
            QK2_KEY(0, 0) QK2_KEY(0, 1) QK2_KEY(1, 0) QK2_KEY(1, 1)
        }
        s0[p] = z_tree32(a00, b00) * scale;
        s0[p + 1] = z_tree32(a01, b01) * scale;
        s1[p] = z_tree32(a10, b10) * scale;
        s1[p + 1] = z_tree32(a11, b11) * scale;
    }
    if (p < n) {
        __m512 a00 = _mm512_setzero_ps(), a10 = a00, b00 = a00, b10 = a00;
#pragma GCC unroll 4
        for (int c = 0; c < NC; c++) {
            const float *k0 = k + (int64_t)p * hd + 32 * c;
            const __m512 k0a = _mm512_loadu_ps(k0), k0b = _mm512_loadu_ps(k0 + 16);
            QK2_KEY(0, 0) QK2_KEY(1, 0)
        }
        s0[p] = z_tree32(a00, b00) * scale;
        s1[p] = z_tree32(a10, b10) * scale;
    }
}
#undef QK2_KEY

/* Q.K in dot8's order (8 lanes, element e to lane e % 8, then dot8_x's
 * tree) for two heads at once: a zmm holds head 0's eight lanes low and head
 * 1's high, q of both interleaved chunk by chunk in registers, and each
 * 8-element chunk of a K row is broadcast to both halves: one load and one
 * fma per chunk for two heads (dot8_x: two loads and one fma per head).
 * The references' batch order for TQ files (llama.cpp) and --compat none. */
BN_AI_Z float z_tree8(__m256 s) {
    __m128 t = _mm_add_ps(_mm256_extractf128_ps(s, 1), _mm256_castps256_ps128(s)); /* t_i = a[4+i] + a[i] */
    t = _mm_add_ps(t, _mm_movehl_ps(t, t));                                        /* t0+t2, t1+t3 */
    t = _mm_add_ss(t, _mm_movehdup_ps(t));
    return _mm_cvtss_f32(t);
}
BN_AI_Z __m512 z_bcast8(const float *p) {
    return _mm512_castpd_ps(_mm512_broadcast_f64x4(_mm256_castps_pd(_mm256_loadu_ps(p))));
}
BN_AI_Z void z_qk8_out(__m512 acc, float scale, float *s0, float *s1) {
    *s0 = z_tree8(_mm512_castps512_ps256(acc)) * scale;
    *s1 = z_tree8(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc), 1))) * scale;
}
BN_AI_Z void qk8_pair_nc(const float *q0, const float *q1, const float *k, const int NC, int n, float scale, float *s0,
                         float *s1) {
    const int hd = 8 * NC;
    __m512 qq[16];
#pragma GCC unroll 16
    for (int c = 0; c < NC; c++)
        qq[c] = _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castpd256_pd512(_mm256_castps_pd(_mm256_loadu_ps(q0 + 8 * c))),
                                                    _mm256_castps_pd(_mm256_loadu_ps(q1 + 8 * c)), 1));
    int p = 0;
    for (; p + 4 <= n; p += 4) {
        const float *k0 = k + (int64_t)p * hd;
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
#pragma GCC unroll 16
        for (int c = 0; c < NC; c++) {
            a0 = _mm512_fmadd_ps(qq[c], z_bcast8(k0 + 8 * c), a0);
            a1 = _mm512_fmadd_ps(qq[c], z_bcast8(k0 + hd + 8 * c), a1);
            a2 = _mm512_fmadd_ps(qq[c], z_bcast8(k0 + 2 * hd + 8 * c), a2);
            a3 = _mm512_fmadd_ps(qq[c], z_bcast8(k0 + 3 * hd + 8 * c), a3);
        }
        z_qk8_out(a0, scale, s0 + p, s1 + p);
        z_qk8_out(a1, scale, s0 + p + 1, s1 + p + 1);
        z_qk8_out(a2, scale, s0 + p + 2, s1 + p + 2);
        z_qk8_out(a3, scale, s0 + p + 3, s1 + p + 3);
    }
    for (; p < n; p++) {
        __m512 a0 = _mm512_setzero_ps();
#pragma GCC unroll 16
        for (int c = 0; c < NC; c++) a0 = _mm512_fmadd_ps(qq[c], z_bcast8(k + (int64_t)p * hd + 8 * c), a0);
        z_qk8_out(a0, scale, s0 + p, s1 + p);
    }
}
/* scores of G heads (rows of q, stride hd) into sc + g * ld, two heads per
 * K load: in ggml_vec_dot_f16's order (dot8 == 0; an odd last head alone)
 * or in dot8's (dot8 == 1, G even); hd in {32, 64, 96, 128} */
__attribute__((target("avx512f,avx512vl,avx2,fma,f16c"))) static void qk_group_z(const float *q, int G, const float *k,
                                                                                     int hd, int n, float scale,
                                                                                     float *sc, int64_t ld, int dot8) {
    int g = 0;
    for (; g + 2 <= G; g += 2) {
        const float *q0 = q + (int64_t)g * hd, *q1 = q0 + hd;
        float *s0 = sc + g * ld, *s1 = s0 + ld;
        switch (hd / 32 + (dot8 ? 4 : 0)) {
        case 1: qk2_z_nc(q0, q1, k, 1, n, scale, s0, s1); break;
        case 2: qk2_z_nc(q0, q1, k, 2, n, scale, s0, s1); break;
        case 3: qk2_z_nc(q0, q1, k, 3, n, scale, s0, s1); break;
        case 4: qk2_z_nc(q0, q1, k, 4, n, scale, s0, s1); break;
        case 5: qk8_pair_nc(q0, q1, k, 4, n, scale, s0, s1); break;
        case 6: qk8_pair_nc(q0, q1, k, 8, n, scale, s0, s1); break;
        case 7: qk8_pair_nc(q0, q1, k, 12, n, scale, s0, s1); break;
        default: qk8_pair_nc(q0, q1, k, 16, n, scale, s0, s1); break;
        }
    }
    if (g < G && !dot8) qk_f16order_z(q + (int64_t)g * hd, k, hd, n, scale, sc + g * ld);
}

#define PVZ_STEP(M)                                                                                  \
    {                                                                                                \
        const __m512 pj = _mm512_set1_ps(p[j + M]);                                                  \
        const float *vj = v + (int64_t)(j + M) * hd + d;                                             \
        a##M##0 = _mm512_fmadd_ps(pj, _mm512_loadu_ps(vj), a##M##0);                                 \
        a##M##1 = _mm512_fmadd_ps(pj, _mm512_loadu_ps(vj + 16), a##M##1);                            \
    }
/* pv8 (BN_PV8_BODY's order) on f32 V rows of stride hd, 32 columns per pass. */
__attribute__((target("avx512f,avx512vl,avx2,fma,f16c"))) static void pv8_z(const float *p, const float *v, int n, int hd,
                                                                                  float *out) {
    int d = 0;
    for (; d + 32 <= hd; d += 32) {
        __m512 a00 = _mm512_setzero_ps(), a10 = a00, a20 = a00, a30 = a00, a40 = a00, a50 = a00, a60 = a00, a70 = a00;
        __m512 a01 = a00, a11 = a00, a21 = a00, a31 = a00, a41 = a00, a51 = a00, a61 = a00, a71 = a00;
        int j = 0;
        for (; j + 8 <= n; j += 8) {
            PVZ_STEP(0) PVZ_STEP(1) PVZ_STEP(2) PVZ_STEP(3) PVZ_STEP(4) PVZ_STEP(5) PVZ_STEP(6) PVZ_STEP(7)
        }
        const int rem = n - j;
        BN_TAIL7(PVZ_STEP, rem)
        const __m512 t0 = _mm512_add_ps(a40, a00), t1 = _mm512_add_ps(a50, a10), t2 = _mm512_add_ps(a60, a20),
                     t3 = _mm512_add_ps(a70, a30);
        _mm512_storeu_ps(out + d, _mm512_add_ps(_mm512_add_ps(t0, t2), _mm512_add_ps(t1, t3)));
        const __m512 u0 = _mm512_add_ps(a41, a01), u1 = _mm512_add_ps(a51, a11), u2 = _mm512_add_ps(a61, a21),
                     u3 = _mm512_add_ps(a71, a31);
        _mm512_storeu_ps(out + d + 16, _mm512_add_ps(_mm512_add_ps(u0, u2), _mm512_add_ps(u1, u3)));
    }
    if (d < hd) { /* the last hd % 32 columns with the AVX2 code */
        float tmp[32];
        pv8_x(p, v + d, hd, 0, n, hd - d, tmp);
        memcpy(out + d, tmp, (size_t)(hd - d) * sizeof(float));
    }
}
#undef PVZ_STEP

/* P.V of a batch for the G query heads that share one kv head (GQA), in
 * pv8's order: lane m of a column takes rows j = m, m+8, ... by fma in
 * increasing j; lanes reduced as BN_PV8_BODY. Running the eight lanes one
 * after another instead of interleaved leaves every chain's order alone and
 * lets one load of a V row feed G heads (pv8_z loads each row once per
 * head). CB registers of 16 columns per pass; columns d .. d + 16 CB. */
BN_AI_Z void pvg_cols(const float *const *p, const int G, const float *v, int n, int hd, int d, const int CB,
                      float *const *out) {
    float lanes[4][8][64];
    for (int m = 0; m < 8; m++) {
        __m512 acc[4][4];
#pragma GCC unroll 4
        for (int g = 0; g < G; g++)
#pragma GCC unroll 4
            for (int c = 0; c < CB; c++) acc[g][c] = _mm512_setzero_ps();
        for (int jj = m; jj < n; jj += 8) {
            const float *vj = v + (int64_t)jj * hd + d;
            __m512 vv[4];
#pragma GCC unroll 4
            for (int c = 0; c < CB; c++) vv[c] = _mm512_loadu_ps(vj + 16 * c);
#pragma GCC unroll 4
            for (int g = 0; g < G; g++) {
                const __m512 pj = _mm512_set1_ps(p[g][jj]);
#pragma GCC unroll 4
                for (int c = 0; c < CB; c++) acc[g][c] = _mm512_fmadd_ps(pj, vv[c], acc[g][c]);
            }
        }
#pragma GCC unroll 4
        for (int g = 0; g < G; g++)
#pragma GCC unroll 4
            for (int c = 0; c < CB; c++) _mm512_storeu_ps(&lanes[g][m][16 * c], acc[g][c]);
    }
    for (int g = 0; g < G; g++)
        for (int c = 0; c < CB; c++) {
            __m512 l[8];
            for (int m = 0; m < 8; m++) l[m] = _mm512_loadu_ps(&lanes[g][m][16 * c]);
            const __m512 t0 = _mm512_add_ps(l[4], l[0]), t1 = _mm512_add_ps(l[5], l[1]), t2 = _mm512_add_ps(l[6], l[2]),
                         t3 = _mm512_add_ps(l[7], l[3]);
            _mm512_storeu_ps(out[g] + d + 16 * c, _mm512_add_ps(_mm512_add_ps(t0, t2), _mm512_add_ps(t1, t3)));
        }
}
BN_AI_Z void pvg_g(const float *const *p, const int G, const float *v, int n, int hd, float *const *out) {
    int d = 0;
    for (; d + 64 <= hd; d += 64) pvg_cols(p, G, v, n, hd, d, 4, out);
    for (; d + 16 <= hd; d += 16) pvg_cols(p, G, v, n, hd, d, 1, out);
}
/* out[g] = P[g].V for G = 2..4 heads; hd % 16 == 0. Bitwise pv8_z per head. */
__attribute__((target("avx512f,avx512vl,avx2,fma,f16c"))) static void pv8_group_z(const float *const *p, int G,
                                                                                      const float *v, int n, int hd,
                                                                                      float *const *out) {
    switch (G) {
    case 2: pvg_g(p, 2, v, n, hd, out); break;
    case 3: pvg_g(p, 3, v, n, hd, out); break;
    default: pvg_g(p, 4, v, n, hd, out); break;
    }
}
/* pvg_cols over rows [j0, j1) only (j0 % 8 == 0), continuing each lane's
 * fma chain from L[g][m][hd] and leaving it there: run over consecutive
 * tiles of rows and then reduced by pvg_lanes_out, every chain sees the
 * same rows in the same order as pvg_cols, so the result is bitwise equal. */
BN_AI_Z void pvg_tile_cols(const float *const *p, const int G, const float *v, int j0, int j1, int hd, int d, const int CB,
                           float *L) {
    for (int m = 0; m < 8; m++) {
        __m512 acc[4][4];
#pragma GCC unroll 4
        for (int g = 0; g < G; g++)
#pragma GCC unroll 4
            for (int c = 0; c < CB; c++) acc[g][c] = _mm512_loadu_ps(L + (int64_t)(g * 8 + m) * hd + d + 16 * c);
        for (int jj = j0 + m; jj < j1; jj += 8) {
            const float *vj = v + (int64_t)jj * hd + d;
            __m512 vv[4];
#pragma GCC unroll 4
            for (int c = 0; c < CB; c++) vv[c] = _mm512_loadu_ps(vj + 16 * c);
#pragma GCC unroll 4
            for (int g = 0; g < G; g++) {
                const __m512 pj = _mm512_set1_ps(p[g][jj]);
#pragma GCC unroll 4
                for (int c = 0; c < CB; c++) acc[g][c] = _mm512_fmadd_ps(pj, vv[c], acc[g][c]);
            }
        }
#pragma GCC unroll 4
        for (int g = 0; g < G; g++)
#pragma GCC unroll 4
            for (int c = 0; c < CB; c++) _mm512_storeu_ps(L + (int64_t)(g * 8 + m) * hd + d + 16 * c, acc[g][c]);
    }
}
BN_AI_Z void pvg_tile_g(const float *const *p, const int G, const float *v, int j0, int j1, int hd, float *L) {
    int d = 0;
    for (; d + 64 <= hd; d += 64) pvg_tile_cols(p, G, v, j0, j1, hd, d, 4, L);
    for (; d + 16 <= hd; d += 16) pvg_tile_cols(p, G, v, j0, j1, hd, d, 1, L);
}
__attribute__((target("avx512f,avx512vl,avx2,fma,f16c"))) static void pv8_group_tile_z(const float *const *p, int G,
                                                                                           const float *v, int j0, int j1,
                                                                                           int hd, float *L) {
    switch (G) {
    case 2: pvg_tile_g(p, 2, v, j0, j1, hd, L); break;
    case 3: pvg_tile_g(p, 3, v, j0, j1, hd, L); break;
    default: pvg_tile_g(p, 4, v, j0, j1, hd, L); break;
    }
}
/* out[g] from the G x 8 lane sums, reduced as pvg_cols does. */
__attribute__((target("avx512f,avx512vl,avx2,fma,f16c"))) static void pvg_lanes_out(const float *L, int G, int hd,
                                                                                        float *const *out) {
    for (int g = 0; g < G; g++)
        for (int d = 0; d + 16 <= hd; d += 16) {
            __m512 l[8];
            for (int m = 0; m < 8; m++) l[m] = _mm512_loadu_ps(L + (int64_t)(g * 8 + m) * hd + d);
            const __m512 t0 = _mm512_add_ps(l[4], l[0]), t1 = _mm512_add_ps(l[5], l[1]), t2 = _mm512_add_ps(l[6], l[2]),
                         t3 = _mm512_add_ps(l[7], l[3]);
            _mm512_storeu_ps(out[g] + d, _mm512_add_ps(_mm512_add_ps(t0, t2), _mm512_add_ps(t1, t3)));
        }
}
#undef BN_TAIL7

/* One token's attention reads the cache in place (f16 or f32): no converted
 * copy of the whole prefix per step, which made decode fall from 19.5 to 3.9
 * tok/s between 128 and 2048 tokens of context. K rows of a kv head are one
 * contiguous stream; V is stored transposed, so out[d] is a dot product of
 * p with the contiguous column d (dot8's order = pv8's, dotf16's = ggml's
 * one-token P.V over its transposed V). */
__attribute__((target("avx2,fma,f16c"))) static float qk_direct(const float *q, const void *k, const int F16, const int vec, int hd) {
    if (F16) return vec ? dotf16_x(q, k, 1, hd, BN_VT) : dot8_x(q, k, 1, hd, BN_VT);
    return vec ? dotf16_x(q, k, 0, hd, BN_VT) : dot8_x(q, k, 0, hd, BN_VT);
}
/* vt: a kv head's V^T tiles, ts elements apart (f->v_tile) */
__attribute__((target("avx2,fma,f16c"))) static void pv_direct(const float *p, const void *vt, int64_t ts, const int F16,
                                                                const int vec, int n, int hd, float *out) {
    const size_t esz = F16 ? 2 : 4;
    for (int d = 0; d < hd; d++) {
        const void *col = (const uint8_t *)vt + (size_t)d * BN_VT * esz;
        if (F16) out[d] = vec ? dotf16_x(p, col, 1, n, ts) : dot8_x(p, col, 1, n, ts);
        else out[d] = vec ? dotf16_x(p, col, 0, n, ts) : dot8_x(p, col, 0, n, ts);
    }
}

/* One token's attention for two query heads of a group at once (GQA): each
 * K row and V column of the f16 cache is read and converted once for both
 * heads instead of once per head, which halves the cache traffic that
 * dominates a long context. Orders are those of qk_direct / pv_direct with
 * vec set (the references' one-token orders): bitwise the same. */
#ifndef BN_KV_PF
#define BN_KV_PF 2048
#endif
/* *r0, *r1 = dotf16(x0 | x1, b) for n f16 values of b, read once for both
 * (prefetched BN_KV_PF bytes ahead: one stream of the cache) */
BN_AI_X86 void dot2_f16(const float *x0, const float *x1, const uint16_t *b, int n, int64_t ts, float *r0, float *r1) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
    int l = 0;
    for (; l + 32 <= n; l += 32) {
        const uint16_t *bl = vt_chunk(b, ts, l, 1);
        _mm_prefetch((const char *)(bl + l) + BN_KV_PF, _MM_HINT_T0);
        const __m256 v0 = ld8x(bl, l, 1), v1 = ld8x(bl, l + 8, 1), v2 = ld8x(bl, l + 16, 1), v3 = ld8x(bl, l + 24, 1);
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x0 + l), v0, a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(x0 + l + 8), v1, a1);
        a2 = _mm256_fmadd_ps(_mm256_loadu_ps(x0 + l + 16), v2, a2);
        a3 = _mm256_fmadd_ps(_mm256_loadu_ps(x0 + l + 24), v3, a3);
        b0 = _mm256_fmadd_ps(_mm256_loadu_ps(x1 + l), v0, b0);
        b1 = _mm256_fmadd_ps(_mm256_loadu_ps(x1 + l + 8), v1, b1);
        b2 = _mm256_fmadd_ps(_mm256_loadu_ps(x1 + l + 16), v2, b2);
        b3 = _mm256_fmadd_ps(_mm256_loadu_ps(x1 + l + 24), v3, b3);
    }
    *r0 = tail32x(a0, a1, a2, a3, x0, vt_chunk(b, ts, l, 1), 1, l, n);
    *r1 = tail32x(b0, b1, b2, b3, x1, vt_chunk(b, ts, l, 1), 1, l, n);
}
/* Ask L2 for the first n positions of a kv head's V^T (f16 tiles ts
 * elements apart) before the group's Q.K, so that the P.V after it does not
 * wait on them. When each column was its own short run (160 bytes at 80
 * tokens, 8 KB apart with -c 4096), which no stream prefetcher follows, this
 * took the attention region from 188 to 124 ms of 5.7 s (SPR VM, 2b4t,
 * 16-token prompt + 128 decoded, 2 threads). Whole tiles, and the used part
 * of each column in the last one. Above 256 KB (long contexts) dot2_f16's
 * own prefetch serves them. The asm keeps gcc from deleting a loop nest
 * that only prefetches. */
static void prefetch_vcols(const uint8_t *vt, int64_t ts, int n, int hd) {
    if ((int64_t)n * 2 * hd > 256 * 1024) return;
    for (int t = 0; t * BN_VT < n; t++) {
        const uint8_t *tile = vt + (int64_t)t * ts * 2;
        const int m = n - t * BN_VT < BN_VT ? n - t * BN_VT : BN_VT;
        if (m == BN_VT) {
            for (int64_t o = 0; o < (int64_t)hd * BN_VT * 2; o += 64) __asm__ volatile("prefetcht1 %0" ::"m"(tile[o]));
            continue;
        }
        for (int d = 0; d < hd; d++)
            for (int o = 0; o < m * 2; o += 64) __asm__ volatile("prefetcht1 %0" ::"m"(tile[d * BN_VT * 2 + o]));
    }
}
/* s0[p], s1[p] = dotf16(q0 | q1, K row p) * scale (hd % 32 == 0: no tail) */
__attribute__((target("avx2,fma,f16c"))) static void qk_pair_f16(const float *q0, const float *q1, const uint16_t *k,
                                                                  int n, int hd, float scale, float *s0, float *s1) {
    for (int p = 0; p < n; p++) {
        float r0, r1;
        dot2_f16(q0, q1, k + (int64_t)p * hd, hd, BN_VT, &r0, &r1);
        s0[p] = r0 * scale;
        s1[p] = r1 * scale;
    }
}
/* out0[d], out1[d] = dotf16(p0 | p1, column d of V^T, tiles ts apart): each column read once */
__attribute__((target("avx2,fma,f16c"))) static void pv_pair_f16(const float *p0, const float *p1, const uint16_t *vt,
                                                                  int64_t ts, int n, int hd, float *o0, float *o1) {
    for (int d = 0; d < hd; d++) dot2_f16(p0, p1, vt + (int64_t)d * BN_VT, n, ts, o0 + d, o1 + d);
}
/* dot2_f16 on zmm: a zmm holds the lanes of two of its ymm chains (lanes
 * 0-15 and 16-31 of the 32), each lane gets the same fmas in the same
 * order, and the tail and tree are dot2_f16's: bitwise the same, with half
 * the conversions and fma instructions. At 2000 tokens of context the
 * one-token attention was a quarter of a decoded token (Zen 5 VM, 2
 * threads), its cache reads at ~19 GB/s: compute, not memory. */
#define BN_LO(z) _mm512_castps512_ps256(z)
#define BN_HI(z) _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(z), 1))
BN_AI_Z void dot2_f16_z(const float *x0, const float *x1, const uint16_t *b, int n, int64_t ts, float *r0, float *r1) {
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, c0 = a0, c1 = a0;
    int l = 0;
    for (; l + 32 <= n; l += 32) {
        const uint16_t *bl = vt_chunk(b, ts, l, 1);
        _mm_prefetch((const char *)(bl + l) + BN_KV_PF, _MM_HINT_T0);
        const __m512 v0 = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(bl + l)));
        const __m512 v1 = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(bl + l + 16)));
        a0 = _mm512_fmadd_ps(_mm512_loadu_ps(x0 + l), v0, a0);
        a1 = _mm512_fmadd_ps(_mm512_loadu_ps(x0 + l + 16), v1, a1);
        c0 = _mm512_fmadd_ps(_mm512_loadu_ps(x1 + l), v0, c0);
        c1 = _mm512_fmadd_ps(_mm512_loadu_ps(x1 + l + 16), v1, c1);
    }
    const uint16_t *bt = vt_chunk(b, ts, l, 1);
    *r0 = tail32x(BN_LO(a0), BN_HI(a0), BN_LO(a1), BN_HI(a1), x0, bt, 1, l, n);
    *r1 = tail32x(BN_LO(c0), BN_HI(c0), BN_LO(c1), BN_HI(c1), x1, bt, 1, l, n);
}
/* dot2_f16_z for a group's four query heads (x[h]: their q, or their p
 * rows) against NC (1 or 2) f16 vectors b + c * cs (K rows, or V^T columns
 * in tiles ts apart) into o[h oh + c], times scale if SCALED. Each (vector,
 * head) chain gets dot2_f16_z's fmas in its order and its tail and tree:
 * the same bits. Each K row and V column is read once for the four heads
 * instead of once per pair: at 4000 tokens of context the pairs read the
 * cache twice, 630 MB a token, and waited on it. The results are stored
 * straight from their registers: through a float array, two of them read
 * back as one 8-byte load missed store forwarding (7% of the Q.K). */
BN_AI_Z void dot4_f16_z(const float *const *x, const uint16_t *b, const int NC, int64_t cs, int n, int64_t ts, float *o,
                        int64_t oh, float scale, const int SCALED) {
    __m512 s[2][4][2];
#pragma GCC unroll 2
    for (int c = 0; c < NC; c++)
#pragma GCC unroll 4
        for (int h = 0; h < 4; h++) s[c][h][0] = s[c][h][1] = _mm512_setzero_ps();
    int l = 0;
    for (; l + 32 <= n; l += 32) {
        const uint16_t *bl = vt_chunk(b, ts, l, 1);
#pragma GCC unroll 2
        for (int c = 0; c < NC; c++) {
            const uint16_t *bc = bl + c * cs + l;
            _mm_prefetch((const char *)bc + BN_KV_PF, _MM_HINT_T0);
            const __m512 v0 = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)bc));
            const __m512 v1 = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(bc + 16)));
#pragma GCC unroll 4
            for (int h = 0; h < 4; h++) {
                s[c][h][0] = _mm512_fmadd_ps(_mm512_loadu_ps(x[h] + l), v0, s[c][h][0]);
                s[c][h][1] = _mm512_fmadd_ps(_mm512_loadu_ps(x[h] + l + 16), v1, s[c][h][1]);
            }
        }
    }
    const uint16_t *bt = vt_chunk(b, ts, l, 1);
#pragma GCC unroll 2
    for (int c = 0; c < NC; c++)
#pragma GCC unroll 4
        for (int h = 0; h < 4; h++) {
            const float r = tail32x(BN_LO(s[c][h][0]), BN_HI(s[c][h][0]), BN_LO(s[c][h][1]), BN_HI(s[c][h][1]), x[h],
                                    bt + c * cs, 1, l, n);
            o[h * oh + c] = SCALED ? r * scale : r;
        }
}
#undef BN_LO
#undef BN_HI
/* s_h[p] = dotf16(q_h, K row p) * scale for the group's four heads (q_h at
 * q + h hd, s_h at s + h ld), two rows at a time */
__attribute__((target("avx512f,avx512vl,avx2,fma,f16c"))) static void qk_quad_f16_z(const float *q, const uint16_t *k,
                                                                                     int n, int hd, float scale,
                                                                                     float *s, int64_t ld) {
    const float *x[4] = {q, q + hd, q + 2 * hd, q + 3 * hd};
    int p = 0;
    for (; p + 2 <= n; p += 2) dot4_f16_z(x, k + (int64_t)p * hd, 2, hd, hd, BN_VT, s + p, ld, scale, 1);
    if (p < n) dot4_f16_z(x, k + (int64_t)p * hd, 1, hd, hd, BN_VT, s + p, ld, scale, 1);
}
/* o_h[d] = dotf16(p_h, column d of V^T) for the four heads (p_h at p + h
 * ld, o_h at o + h hd), two columns at a time */
__attribute__((target("avx512f,avx512vl,avx2,fma,f16c"))) static void pv_quad_f16_z(const float *p, int64_t ld,
                                                                                     const uint16_t *vt, int64_t ts,
                                                                                     int n, int hd, float *o) {
    const float *x[4] = {p, p + ld, p + 2 * ld, p + 3 * ld};
    int d = 0;
    for (; d + 2 <= hd; d += 2) dot4_f16_z(x, vt + (int64_t)d * BN_VT, 2, BN_VT, n, ts, o + d, hd, 1.0f, 0);
    if (d < hd) dot4_f16_z(x, vt + (int64_t)d * BN_VT, 1, BN_VT, n, ts, o + d, hd, 1.0f, 0);
}
/* qk_pair_f16 and pv_pair_f16 with dot2_f16_z */
__attribute__((target("avx512f,avx512vl,avx2,fma,f16c"))) static void qk_pair_f16_z(const float *q0, const float *q1,
                                                                                     const uint16_t *k, int n, int hd,
                                                                                     float scale, float *s0, float *s1) {
    for (int p = 0; p < n; p++) {
        dot2_f16_z(q0, q1, k + (int64_t)p * hd, hd, BN_VT, s0 + p, s1 + p);
        s0[p] *= scale, s1[p] *= scale;
    }
}
__attribute__((target("avx512f,avx512vl,avx2,fma,f16c"))) static void pv_pair_f16_z(const float *p0, const float *p1,
                                                                                     const uint16_t *vt, int64_t ts, int n,
                                                                                     int hd, float *o0, float *o1) {
    for (int d = 0; d < hd; d++) dot2_f16_z(p0, p1, vt + (int64_t)d * BN_VT, n, ts, o0 + d, o1 + d);
}

/* f16 round trips (tab[bn_f32_to_f16(x)], bitwise) and f16 -> f32 with F16C. */
__attribute__((target("avx2,f16c"))) static void round_f16_avx2(const float *in, float *out, int n) {
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm256_cvtps_ph(_mm256_loadu_ps(in + i), _MM_FROUND_TO_NEAREST_INT)));
    for (; i < n; i++) out[i] = _cvtsh_ss(_cvtss_sh(in[i], _MM_FROUND_TO_NEAREST_INT));
}
__attribute__((target("avx2,f16c"))) static void f16_to_f32_avx2(const uint16_t *in, float *out, int n) {
    int i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(in + i))));
    for (; i < n; i++) out[i] = _cvtsh_ss(in[i]);
}
#endif
#undef BN_PV8_ROW


/* Rows [from, to) of one kv head's K and V as f32 into kbuf and vbuf (row
 * stride head_dim): K's rows are one contiguous run, V's are gathered from
 * its transposed tiles (ts elements apart), 8 positions x 8 columns per
 * transpose with AVX2 (exact copies either way). */
#if defined(__x86_64__)
__attribute__((target("avx2,f16c"))) static void vt_rows_avx2(const void *vt, int64_t ts, const int F16, int hd,
                                                               float *vbuf, int from, int to) {
    int p = from;
    for (; p < to && p % 8; p++) /* to a multiple of 8: 8 positions then lie in one tile */
        for (int d = 0; d < hd; d++) {
            const int64_t o = (int64_t)d * BN_VT + vt_off(ts, p);
            vbuf[(int64_t)p * hd + d] = F16 ? _cvtsh_ss(((const uint16_t *)vt)[o]) : ((const float *)vt)[o];
        }
    for (; p + 8 <= to && hd % 8 == 0; p += 8)
        for (int d = 0; d < hd; d += 8) {
            __m256 r[8], t[8], u[8];
            for (int i = 0; i < 8; i++) {
                const int64_t o = (int64_t)(d + i) * BN_VT + vt_off(ts, p);
                r[i] = F16 ? _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)vt + o)))
                           : _mm256_loadu_ps((const float *)vt + o);
            }
            for (int i = 0; i < 8; i += 2) {
                t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
                t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
            }
            for (int i = 0; i < 8; i += 4) {
                u[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
                u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xee);
                u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
                u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xee);
            }
            for (int i = 0; i < 4; i++) {
                _mm256_storeu_ps(vbuf + (int64_t)(p + i) * hd + d, _mm256_permute2f128_ps(u[i], u[i + 4], 0x20));
                _mm256_storeu_ps(vbuf + (int64_t)(p + i + 4) * hd + d, _mm256_permute2f128_ps(u[i], u[i + 4], 0x31));
            }
        }
    for (; p < to; p++)
        for (int d = 0; d < hd; d++) {
            const int64_t o = (int64_t)d * BN_VT + vt_off(ts, p);
            vbuf[(int64_t)p * hd + d] = F16 ? _cvtsh_ss(((const uint16_t *)vt)[o]) : ((const float *)vt)[o];
        }
}
#endif
/* Element i of a cache region (f16 or f32) as f32: exact either way. */
static inline float cache_f32(const bn_forward *f, const void *c, int64_t i) {
    return f->kv == BN_KV_F16 ? f->f16tab[((const uint16_t *)c)[i]] : ((const float *)c)[i];
}
static void kv_rows_f32(const bn_forward *f, int layer, int kvh, float *kbuf, float *vbuf, int from, int to) {
    if (to <= from) return;
    const int hd = f->m->hp.head_dim;
    const bool f16 = f->kv == BN_KV_F16;
    const int64_t esz = f16 ? 2 : 4;
    const int64_t nk = (int64_t)(to - from) * hd;
    const void *kr = (const uint8_t *)f->kc + kcache_at(f, layer, kvh, from) * esz;
    const void *vt = (const uint8_t *)f->vc + vcache_at(f, layer, kvh, 0) * esz;
    float *kd = kbuf + (int64_t)from * hd;
#if defined(__x86_64__)
    if (f->hw_avx2) {
        if (f16) f16_to_f32_avx2(kr, kd, (int)nk);
        else memcpy(kd, kr, (size_t)nk * sizeof(float));
        vt_rows_avx2(vt, f->v_tile, f16, hd, vbuf, from, to);
        return;
    }
#endif
    for (int64_t i = 0; i < nk; i++) kd[i] = cache_f32(f, kr, i);
    for (int p = from; p < to; p += 16) /* 16 positions x all columns: the rows stay in L1 */
        for (int d = 0; d < hd; d++)
            for (int q = p; q < to && q < p + 16; q++)
                vbuf[(int64_t)q * hd + d] = cache_f32(f, vt, (int64_t)d * BN_VT + vt_pos(f, q));
}

/* What a batch's attention items cost, for bn_pool_split_cost: a query
 * token at position p reads p + 1 keys (plus a fixed part, as 8 keys).
 * Units are (kv head, token, query head) items, or with tokens > 1 blocks
 * of that many tokens of one kv head (attention_blocked). */
typedef struct att_cost { int64_t per_kvh; int n, tokens, pos; } att_cost;
static int64_t att_unit_cost(const void *ctx, int64_t u) {
    const att_cost *c = ctx;
    const int64_t k = u % c->per_kvh;
    if (c->tokens <= 1) return c->pos + k / (c->per_kvh / c->n) + 1 + 8;
    const int64_t t0 = k * c->tokens, nt = c->n - t0 < c->tokens ? c->n - t0 : c->tokens;
    return nt * (c->pos + t0 + 1 + 8) + nt * (nt - 1) / 2;
}

#if defined(__x86_64__)
/* A batch's attention on AVX-512 with the group kernels (qk_group_z,
 * pv8_group_z's chains), BN_ATT_QT tokens of one kv head at a time: Q.K for
 * the block over tiles of BN_ATT_KT key rows, the softmax per row as in
 * region_attention, then P.V over the same tiles with the lane sums kept
 * in f->pvlanes between tiles. Every score and every lane chain is computed
 * in the order of the one-token-at-a-time path: bitwise the same output. */
static void attention_blocked(job *j, int ith, int nth, int dot8, bool p_f16) {
    bn_forward *f = j->f;
    const bn_hparams *hp = &f->m->hp;
    const int hd = hp->head_dim, group = hp->n_head / hp->n_head_kv;
    const float scale = 1.0f / sqrtf((float)hd);
    const bool f16 = f->kv == BN_KV_F16;
    const int64_t sc_ld = f->n_ctx + 8;
    float *const scb = f->scores + (int64_t)ith * BN_ATT_QT * group * sc_ld;
    float *const qb = f->qtmp + (int64_t)ith * BN_ATT_QT * group * hd;
    float *const lb = f->pvlanes + (int64_t)ith * BN_ATT_QT * group * 8 * hd;
    float *kbuf = f->kvtmp + (int64_t)ith * (2 * (int64_t)f->n_ctx + 8) * hd;
    float *vbuf = kbuf + (int64_t)f->n_ctx * hd;
    const int nblk = (j->n + BN_ATT_QT - 1) / BN_ATT_QT;
    int cached_kvh = -1, cached_n = 0;
    int64_t lo, hi;
    const att_cost ac = {.per_kvh = nblk, .n = j->n, .tokens = BN_ATT_QT, .pos = f->pos};
    bn_pool_split_cost((int64_t)hp->n_head_kv * nblk, ith, nth, 1, att_unit_cost, &ac, &lo, &hi);
    for (int64_t u = lo; u < hi; u++) {
        const int kvh = (int)(u / nblk), t0 = (int)(u % nblk) * BN_ATT_QT;
        const int nt = j->n - t0 < BN_ATT_QT ? j->n - t0 : BN_ATT_QT;
        const int n_max = f->pos + t0 + nt; /* keys of the block's last token */
        if (kvh != cached_kvh) { cached_kvh = kvh; cached_n = 0; }
        kv_rows_f32(f, j->layer, kvh, kbuf, vbuf, cached_n, n_max);
        if (n_max > cached_n) cached_n = n_max;
        for (int i = 0; i < nt; i++)
            for (int g = 0; g < group; g++) {
                const float *qsrc = f->qkv + (int64_t)(t0 + i) * f->qkv_dim + (kvh * group + g) * hd;
                float *qd = qb + ((int64_t)i * group + g) * hd;
                if (f16) round_f16_avx2(qsrc, qd, hd);
                else memcpy(qd, qsrc, (size_t)hd * sizeof(float));
            }
        for (int k0 = 0; k0 < n_max; k0 += BN_ATT_KT)
            for (int i = 0; i < nt; i++) {
                const int n_kv = f->pos + t0 + i + 1;
                if (k0 >= n_kv) continue;
                const int cnt = n_kv - k0 < BN_ATT_KT ? n_kv - k0 : BN_ATT_KT;
                qk_group_z(qb + (int64_t)i * group * hd, group, kbuf + (int64_t)k0 * hd, hd, cnt, scale,
                           scb + (int64_t)i * group * sc_ld + k0, sc_ld, dot8);
            }
        for (int i = 0; i < nt; i++) {
            const int n_kv = f->pos + t0 + i + 1;
            for (int g = 0; g < group; g++) {
                float *sc = scb + ((int64_t)i * group + g) * sc_ld;
                const float mx = bn_max_row(sc, n_kv, f->vm);
                const double sum = bn_softmax_exp(sc, n_kv, mx, f->vm);
                const float inv = (float)(1.0 / sum);
                for (int p = 0; p < n_kv; p++) sc[p] = sc[p] * inv;
                if (p_f16) round_f16_avx2(sc, sc, n_kv);
            }
            memset(lb + (int64_t)i * group * 8 * hd, 0, (size_t)group * 8 * hd * sizeof(float));
        }
        for (int k0 = 0; k0 < n_max; k0 += BN_ATT_KT)
            for (int i = 0; i < nt; i++) {
                const int n_kv = f->pos + t0 + i + 1;
                if (k0 >= n_kv) continue;
                const int k1 = n_kv - k0 < BN_ATT_KT ? n_kv : k0 + BN_ATT_KT;
                const float *pg[4];
                for (int g = 0; g < group; g++) pg[g] = scb + ((int64_t)i * group + g) * sc_ld;
                pv8_group_tile_z(pg, group, vbuf, k0, k1, hd, lb + (int64_t)i * group * 8 * hd);
            }
        for (int i = 0; i < nt; i++) {
            float *og[4];
            for (int g = 0; g < group; g++) og[g] = f->att + (int64_t)(t0 + i) * f->q_dim + (kvh * group + g) * hd;
            pvg_lanes_out(lb + (int64_t)i * group * 8 * hd, group, hd, og);
        }
    }
}
#endif

static void region_attention(void *arg, int ith, int nth) {
    job *j = arg;
    bn_forward *f = j->f;
    const bn_hparams *hp = &f->m->hp;
    const int hd = hp->head_dim, group = hp->n_head / hp->n_head_kv;
    const float scale = 1.0f / sqrtf((float)hd);
    const float *tab = f->f16tab;
    const bool fma_hw = f->hw_fma;
    const bool f16 = f->kv == BN_KV_F16;
    /* bitnet.cpp order (F16 cache only, see bn_compat): Q.K always in
     * ggml_vec_dot_f16 order; P.V with p rounded to f16 in vec_dot_f16 order
     * for one token, p in f32 in tinyBLAS order for a batch */
    const bool bcpp = f16 && f->compat == BN_COMPAT_BITNETCPP;
    /* llama.cpp order: vec_dot_f16 for one token, tinyBLAS (as NONE) for a batch */
    const bool lcpp1 = f16 && f->compat == BN_COMPAT_LLAMACPP && j->n == 1;
    const bool qk_vec = bcpp || lcpp1, pv_vec = (bcpp && j->n == 1) || lcpp1;
    const bool p_f16 = f16 && !(bcpp && j->n > 1);
    /* a batch's P.V for the query heads of one kv head at once (AVX-512,
     * f32 rows in kbuf/vbuf): items are split in whole groups */
    const bool direct = f->hw_avx2 && j->n == 1; /* one token: read the cache in place (see qk_direct) */
    const bool grouped = !direct && !pv_vec && f->hw_avx512 && group >= 2 && group <= 4 && hd % 16 == 0;
    /* one token: two query heads of a group at once (F16 cache, vec orders) */
    const bool pair = direct && qk_vec && pv_vec && f16 && hd % 32 == 0 && group % 2 == 0;
    /* and all four heads of a group at once, where this thread has the
     * whole group (AVX-512; a group split between threads goes in pairs) */
    const bool quad = pair && group == 4 && f->hw_avx512;
    /* a batch's Q.K for the whole group at the group's first head (AVX-512):
     * in ggml_vec_dot_f16's order, or in dot8's with heads in pairs */
    const bool qk_grp_vec = grouped && qk_vec && hd % 32 == 0 && hd <= 128;
    const bool qk_grp_8 = grouped && !qk_vec && group % 2 == 0 && hd % 32 == 0 && hd <= 128;
#if defined(__x86_64__)
    /* blocked once the f32 K and V rows outgrow ~1 MB (the L2 of the
     * machines measured): below that it measured up to 5% slower */
    if ((qk_grp_vec || qk_grp_8) && (int64_t)(f->pos + j->n) * hd * 2 * (int64_t)sizeof(float) > f->att_block_bytes) {
        attention_blocked(j, ith, nth, qk_grp_8, p_f16);
        return;
    }
#endif
    const int64_t sc_ld = f->n_ctx + 8;
    float *const sc0 = f->scores + (int64_t)ith * group * sc_ld;
    float *q = f->qtmp + (int64_t)ith * group * hd; /* [group][hd]: one head's, or the group's (grouped Q.K) */
    /* this thread's K and V rows of one kv head as floats, converted once per
     * call: items run kv head by kv head, tokens in order, so the cached
     * prefix only grows until the kv head changes */
    float *kbuf = f->kvtmp + (int64_t)ith * (2 * (int64_t)f->n_ctx + 8) * hd;
    float *vbuf = kbuf + (int64_t)f->n_ctx * hd, *lanes = vbuf + (int64_t)f->n_ctx * hd;
    int cached_kvh = -1, cached_n = 0;
    int64_t lo, hi;
    const int64_t align = grouped ? group : pair ? 2 : 1;
    if (j->n > 1) {
        const att_cost ac = {.per_kvh = (int64_t)j->n * group, .n = j->n, .tokens = 1, .pos = f->pos};
        bn_pool_split_cost((int64_t)j->n * hp->n_head, ith, nth, align, att_unit_cost, &ac, &lo, &hi);
    } else {
        bn_pool_split((int64_t)j->n * hp->n_head, ith, nth, align, &lo, &hi);
    }
    for (int64_t it = lo; it < hi; it++) {
        /* item order: kv head, then token, then query head of the group */
        const int kvh = (int)(it / ((int64_t)j->n * group)), rem = (int)(it % ((int64_t)j->n * group));
        const int t = rem / group, h = kvh * group + rem % group;
        const int n_kv = f->pos + t + 1;
        const float *qsrc = f->qkv + (int64_t)t * f->qkv_dim + h * hd;
        float *out = f->att + (int64_t)t * f->q_dim + h * hd;
        /* this head's group lies wholly in [lo, hi) (one token: items are heads) */
        const int64_t g0 = it - rem % group;
        const bool in_quad = quad && g0 >= lo && g0 + group <= hi;
        float *sc = sc0 + (grouped || in_quad ? rem % group : pair ? rem % 2 : 0) * sc_ld;
        /* one token with AVX2: read the cache rows in place (see qk_direct) */
        const size_t esz = f16 ? 2 : 4, row_b = (size_t)hd * esz;
        const uint8_t *krow0 = (const uint8_t *)f->kc + kcache_at(f, j->layer, kvh, 0) * (int64_t)esz;
        const uint8_t *vcol0 = (const uint8_t *)f->vc + vcache_at(f, j->layer, kvh, 0) * (int64_t)esz;
        (void)krow0, (void)vcol0, (void)row_b; /* used by the x86 paths only */
        if (kvh != cached_kvh) { cached_kvh = kvh; cached_n = 0; }
        if (!direct) kv_rows_f32(f, j->layer, kvh, kbuf, vbuf, cached_n, n_kv);
        if (n_kv > cached_n) cached_n = n_kv;
        /* this head's q (the group kernels, a whole group and a pair's second head have it) */
        if (!qk_grp_vec && !qk_grp_8 && !in_quad && !(pair && rem % 2 == 1)) {
#if defined(__x86_64__)
            if (f16 && f->hw_avx2) round_f16_avx2(qsrc, q, hd);
            else
#endif
                for (int d = 0; d < hd; d++) q[d] = f16 ? tab[bn_f32_to_f16(qsrc[d])] : qsrc[d];
        }
        /* scores = (q . k_p) * scale */
        float mx = -INFINITY;
        bool sc_done = false; /* scores already computed by a vector kernel */
#if defined(__x86_64__)
        const bool qk_z = !direct && qk_vec && f->hw_avx512 && hd % 32 == 0 && hd <= 256;
        if (in_quad) { /* the group's first head: Q.K for all four */
            if (rem % group == 0) {
                prefetch_vcols(vcol0, f->v_tile, n_kv, hd);
                for (int g = 0; g < group; g++) round_f16_avx2(qsrc + g * hd, q + g * hd, hd);
                qk_quad_f16_z(q, (const uint16_t *)krow0, n_kv, hd, scale, sc0, sc_ld);
            }
            mx = bn_max_row(sc, n_kv, f->vm);
            sc_done = true;
        } else if (pair) { /* the pair's first head: Q.K for both */
            if (rem % 2 == 0) {
                if (rem % group == 0 || it == lo) prefetch_vcols(vcol0, f->v_tile, n_kv, hd); /* once per kv head */
                round_f16_avx2(qsrc + hd, q + hd, hd);
                if (f->hw_avx512) qk_pair_f16_z(q, q + hd, (const uint16_t *)krow0, n_kv, hd, scale, sc, sc + sc_ld);
                else qk_pair_f16(q, q + hd, (const uint16_t *)krow0, n_kv, hd, scale, sc, sc + sc_ld);
            }
            mx = bn_max_row(sc, n_kv, f->vm);
            sc_done = true;
        } else if (qk_grp_vec) { /* the group's first head: Q.K for all of them */
            if (rem % group == 0) {
                for (int g = 0; g < group; g++) round_f16_avx2(qsrc + g * hd, q + g * hd, hd);
                qk_group_z(q, group, kbuf, hd, n_kv, scale, sc0, sc_ld, 0);
            }
            mx = bn_max_row(sc, n_kv, f->vm);
            sc_done = true;
        } else if (qk_grp_8) { /* dot8 order, heads in pairs */
            if (rem % group == 0) {
                for (int g = 0; g < group; g++) {
                    if (f16) round_f16_avx2(qsrc + g * hd, q + g * hd, hd);
                    else memcpy(q + g * hd, qsrc + g * hd, (size_t)hd * sizeof(float));
                }
                qk_group_z(q, group, kbuf, hd, n_kv, scale, sc0, sc_ld, 1);
            }
            mx = bn_max_row(sc, n_kv, f->vm);
            sc_done = true;
        } else if (qk_z) {
            qk_f16order_z(q, kbuf, hd, n_kv, scale, sc);
            mx = bn_max_row(sc, n_kv, f->vm);
            sc_done = true;
        }
#endif
        for (int p = sc_done ? n_kv : 0; p < n_kv; p++) {
            const float *kp = kbuf + (int64_t)p * hd;
            float s;
#if defined(__x86_64__)
            if (direct) s = qk_direct(q, krow0 + p * row_b, f16, qk_vec, hd);
            else if (f->hw_avx2) s = qk_vec ? dotf16_avx2(q, kp, hd) : dot8_avx2(q, kp, hd);
            else
#endif
                s = qk_vec ? dotf16(q, kp, 1, hd, fma_hw) : dot8(q, kp, 1, hd, fma_hw);
            sc[p] = s * scale;
            mx = sc[p] > mx ? sc[p] : mx;
        }
        /* softmax: exps in groups of 8 (zero padded), each group summed pairwise, groups in double */
        const double sum = bn_softmax_exp(sc, n_kv, mx, f->vm);
        const float inv = (float)(1.0 / sum);
        for (int p = 0; p < n_kv; p++) sc[p] = sc[p] * inv;
#if defined(__x86_64__)
        if (p_f16 && f->hw_avx2) round_f16_avx2(sc, sc, n_kv);
        else
#endif
            if (p_f16)
                for (int p = 0; p < n_kv; p++) sc[p] = tab[bn_f32_to_f16(sc[p])];
        /* out[d] = sum_p p_p * v_p[d] */
#if defined(__x86_64__)
        if (direct) {
            if (!pair) pv_direct(sc, vcol0, f->v_tile, f16, pv_vec, n_kv, hd, out);
            else if (in_quad) { /* the group's last head: P.V for all four */
                if (rem % group == group - 1)
                    pv_quad_f16_z(sc0, sc_ld, (const uint16_t *)vcol0, f->v_tile, n_kv, hd, out - (group - 1) * hd);
            } else if (rem % 2 == 1) { /* the pair's second head: P.V for both */
                if (f->hw_avx512) pv_pair_f16_z(sc - sc_ld, sc, (const uint16_t *)vcol0, f->v_tile, n_kv, hd, out - hd, out);
                else pv_pair_f16(sc - sc_ld, sc, (const uint16_t *)vcol0, f->v_tile, n_kv, hd, out - hd, out);
            }
            continue;
        }
#endif
        if (pv_vec) {
            for (int d = 0; d < hd; d++) out[d] = dotf16(sc, vbuf + d, hd, n_kv, fma_hw);
        } else {
#if defined(__x86_64__)
            if (grouped) {
                if (rem % group == group - 1) { /* the group's last head: P.V for all of them */
                    const float *pg[4];
                    float *og[4];
                    for (int g = 0; g < group; g++) {
                        pg[g] = sc0 + g * sc_ld;
                        og[g] = out - (int64_t)(group - 1 - g) * hd;
                    }
                    pv8_group_z(pg, group, vbuf, n_kv, hd, og);
                }
            } else if (f->hw_avx512) pv8_z(sc, vbuf, n_kv, hd, out);
            else if (f->hw_avx2) pv8_avx2(sc, vbuf, n_kv, hd, lanes, out);
            else
#endif
                pv8_generic(sc, vbuf, n_kv, hd, lanes, out);
        }
    }
}

#if defined(__x86_64__)
/* dot8 of an f32 row against n rows of x (stride K) with AVX2: the same
 * lanes, fmas and final reduction as dot8_generic, so bitwise equal to it. */
__attribute__((target("avx2,fma"))) static void dot8_rows_avx2(const float *w, const float *x, int K, int n, float *y,
                                                                int64_t ldy) {
    for (int t = 0; t < n; t++) {
        const float *xt = x + (int64_t)t * K;
        __m256 acc = _mm256_setzero_ps();
        int l = 0;
        for (; l + 8 <= K; l += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(w + l), _mm256_loadu_ps(xt + l), acc);
        float a[8];
        _mm256_storeu_ps(a, acc);
        for (int m = 0; l + m < K; m++) a[m] = fmaf(w[l + m], xt[l + m], a[m]);
        const float t0 = a[4] + a[0], t1 = a[5] + a[1], t2 = a[6] + a[2], t3 = a[7] + a[3];
        y[(int64_t)t * ldy] = (t0 + t2) + (t1 + t3);
    }
}
#endif

/* bitnet.cpp's head for n >= 2 rows: tinyBLAS F16 x F32, i.e. the f32
 * normalized rows in f->xn (not rounded to f16) against each f16 weight row,
 * 8 FMA lanes. Rows split over threads like region_matmul. */
static void region_head_f32(void *arg, int ith, int nth) {
    job *j = arg;
    bn_forward *f = j->f;
    const bn_qmat *W = j->w[0];
    const int K = (int)W->K;
    float *wr = f->wrow + (int64_t)ith * K;
    int64_t lo, hi;
    bn_pool_split(W->M, ith, nth, ROW_ALIGN, &lo, &hi);
    for (int64_t r = lo; r < hi; r++) {
        const uint16_t *w = (const uint16_t *)(W->data + (size_t)r * W->row_bytes);
        for (int k = 0; k < K; k++) wr[k] = f->f16tab ? f->f16tab[w[k]] : bn_f16_to_f32(w[k]);
#if defined(__x86_64__)
        if (f->hw_avx2) {
            dot8_rows_avx2(wr, f->xn, K, j->n, j->y[0] + r, j->ldy);
            continue;
        }
#endif
        for (int t = 0; t < j->n; t++) j->y[0][(int64_t)t * j->ldy + r] = dot8(wr, f->xn + (int64_t)t * K, 1, K, f->hw_fma);
    }
}

/* FFN middle of rows [lo, hi): act(gate) * up into xn, sub-norm, quantize
 * for down into acts (site FF's kinds). */
static void ffn_act_rows(const job *j, float *xn, bn_act *acts, int64_t lo, int64_t hi) {
    bn_forward *f = j->f;
    const int nff = f->m->hp.n_ff;
    for (int64_t t = lo; t < hi; t++) {
        const float *g = f->gu + t * 2 * nff, *u = g + nff;
        float *h = xn + t * nff;
        if (f->m->act == BN_FFN_SILU) bn_silu_mul_row(g, u, h, nff, f->vm); /* ggml_v_silu */
        else bn_relu2_mul_row(g, u, h, nff, f->vm);
    }
    rmsnorm_rows(xn + lo * nff, nff, xn + lo * nff, nff, j->L->ffn_sub_norm, (int)(hi - lo), nff, f->m->hp.rms_eps, f->vm);
    for (int kd = 0; kd < BN_ACT_COUNT; kd++)
        if (j->kinds & (1u << kd)) f->k->quantize_act(&acts[kd], xn, nff, (int)lo, (int)hi);
}

/* FFN middle of the batch, split over tokens. */
static void region_ffn_act(void *arg, int ith, int nth) {
    job *j = arg;
    int64_t lo, hi;
    bn_pool_split(j->n, ith, nth, 1, &lo, &hi);
    if (lo < hi) ffn_act_rows(j, j->f->xn, j->f->act[SITE_FF], lo, hi);
}

/* ---- the step ----------------------------------------------------------- */

static void run_norm_quant(bn_forward *f, int n, int t_first, const float *in, int64_t ld_in, const float *w, int width,
                           int site, unsigned kinds) {
    job j = {.f = f, .n = n, .t_first = t_first, .in = in, .ld_in = ld_in, .norm_w = w, .width = width, .site = site,
             .kinds = kinds};
    for (int kd = 0; kd < BN_ACT_COUNT; kd++)
        if (kinds & (1u << kd)) f->act[site][kd].n = n;
    bn_pool_run(f->pool, region_norm_quant, &j);
}

/* The matmul of one input site; pre (one token only): a job whose
 * PRE_NORM or PRE_FFN step each thread runs first into its own input
 * (f->own), one region where two were; NULL or a batch: the input is in
 * f->act already. Returns false, having run nothing, where a pre step
 * cannot be fused (no stealing): the caller then runs it as its own region. */
static bool run_matmul_pre(bn_forward *f, int n, int site, int nw, const bn_qmat *const *w, float *const *y,
                           const float *scale, int64_t ldy, float *resid, const job *pre) {
    job j = {.f = f, .n = n, .site = site, .nw = nw, .ldy = ldy, .resid = resid};
    for (int i = 0; i < nw; i++) { j.w[i] = w[i]; j.y[i] = y[i]; j.scale[i] = scale[i]; }
    atomic_init(&j.next_chunk, f->n_threads);
    if (n == 1 && f->n_threads > 1) matmul_steal_init(&j, f->n_threads);
    if (pre) {
        if (!j.steal || !f->own) return false;
        j.pre = pre->pre;
        j.t_first = pre->t_first;
        j.in = pre->in;
        j.ld_in = pre->ld_in;
        j.norm_w = pre->norm_w;
        j.width = pre->width;
        j.kinds = pre->kinds;
        j.L = pre->L;
    }
    bn_pool_run(f->pool, region_matmul, &j);
    return true;
}

static void run_matmul(bn_forward *f, int n, int site, int nw, const bn_qmat *const *w, float *const *y, const float *scale,
                       int64_t ldy, float *resid) {
    run_matmul_pre(f, n, site, nw, w, y, scale, ldy, resid, NULL);
}

/* Norm (optional) and quantize of one site's input, then the matmul: one
 * region for one token at 2+ threads, else two. With one token the norm is
 * a few microseconds of work on one thread while the others wait at a
 * barrier, then the matmul region starts; now every thread normalizes and
 * quantizes the token itself (the same code on the same input, so the same
 * bytes) into its own buffers and goes straight on to its matmul share. Zen
 * 5 VM, 2b4t decode at 2 threads, one process alternating per step with the
 * two regions (norms and FFN middle both): F16 head +2.0% and +1.9% (24 and
 * 30 rounds of 48 steps; faster by over 1% in 20 of the 30, slower in 1),
 * Q6_K head +0.8%; 3 and 4 threads on the 2 vCPUs +15%. */
static void run_norm_matmul(bn_forward *f, int n, int t_first, const float *in, int64_t ld_in, const float *norm_w,
                            int width, int site, int nw, const bn_qmat *const *w, float *const *y, const float *scale,
                            int64_t ldy, float *resid) {
    const job pre = {.pre = PRE_NORM, .t_first = t_first, .in = in, .ld_in = ld_in, .norm_w = norm_w, .width = width,
                     .kinds = kinds_of(w, nw)};
    if (n == 1 && run_matmul_pre(f, n, site, nw, w, y, scale, ldy, resid, &pre)) return;
    run_norm_quant(f, n, t_first, in, ld_in, norm_w, width, site, pre.kinds);
    run_matmul(f, n, site, nw, w, y, scale, ldy, resid);
}

/* One batch of n tokens at f->pos; logits for batch rows [first_out, n). */
static int eval_batch(bn_forward *f, const int32_t *tok, int n, float *logits, int first_out, bn_err *e) {
    const bn_model *m = f->m;
    const bn_hparams *hp = &m->hp;
    const int D = hp->n_embd, FF = hp->n_ff;
    const bool use_scales = strcmp(m->arch, "bitnet") == 0; /* only the bitnet graph multiplies blk.N.*.scale */

    for (int t = 0; t < n; t++) { /* embedding rows; rope angles per position */
        if (bn_model_embed(m, tok[t], f->x + (int64_t)t * D, e) < 0) return -1;
        rope_cache(f->rope + (int64_t)t * hp->n_rot, f->pos + t, hp->n_rot, hp->rope_base);
    }
    for (int il = 0; il < hp->n_layer; il++) {
        const bn_layer *L = &m->layers[il];
        /* attention block: n = rmsnorm(x); q,k,v = W·n; rope; cache; attend */
        const bn_qmat *qkvw[3] = {&L->wq, &L->wk, &L->wv};
        float *qkvy[3] = {f->qkv, f->qkv + f->q_dim, f->qkv + f->q_dim + f->kv_dim};
        float s3[3] = {use_scales ? L->sq : 1, use_scales ? L->sk : 1, use_scales ? L->sv : 1};
        run_norm_matmul(f, n, 0, f->x, D, L->attn_norm, D, SITE_EMBD, 3, qkvw, qkvy, s3, f->qkv_dim, NULL);
        job ja = {.f = f, .n = n, .layer = il, .L = L};
        bn_pool_run(f->pool, region_rope_store, &ja);
        bn_pool_run(f->pool, region_attention, &ja);
        /* x += Wo · subnorm(att) */
        const bn_qmat *wo[1] = {&L->wo};
        float *yo[1] = {f->y};
        float so[1] = {use_scales ? L->so : 1};
        run_norm_matmul(f, n, 0, f->att, f->q_dim, L->attn_sub_norm, f->q_dim, SITE_ATT, 1, wo, yo, so, D, f->x);
        /* FFN block: m = rmsnorm(x); x += Wdown · subnorm(act(Wgate·m) * (Wup·m)) */
        const bn_qmat *guw[2] = {&L->wgate, &L->wup};
        float *guy[2] = {f->gu, f->gu + FF};
        float s2[2] = {use_scales ? L->sgate : 1, use_scales ? L->sup : 1};
        run_norm_matmul(f, n, 0, f->x, D, L->ffn_norm, D, SITE_EMBD, 2, guw, guy, s2, 2 * FF, NULL);
        const bn_qmat *wd[1] = {&L->wdown};
        float *yd[1] = {f->y};
        float sd[1] = {use_scales ? L->sdown : 1};
        job jf = {.f = f, .n = n, .L = L, .kinds = kinds_of(wd, 1), .pre = PRE_FFN};
        if (n != 1 || !run_matmul_pre(f, n, SITE_FF, 1, wd, yd, sd, D, f->x, &jf)) { /* as run_norm_matmul */
            for (int kd = 0; kd < BN_ACT_COUNT; kd++)
                if (jf.kinds & (1u << kd)) f->act[SITE_FF][kd].n = n;
            bn_pool_run(f->pool, region_ffn_act, &jf);
            run_matmul(f, n, SITE_FF, 1, wd, yd, sd, D, f->x);
        }
    }
    f->pos += n;
    const int n_out = n - first_out;
    if (n_out <= 0) return 0;
    /* logits = head · rmsnorm_out(x) for the requested rows only */
    const bn_qmat *hw[1] = {&m->head};
    float *hy[1] = {logits};
    float one[1] = {1};
    if (f->compat == BN_COMPAT_BITNETCPP && n_out >= 2 && m->head.type == BN_TYPE_F16) {
        run_norm_quant(f, n_out, first_out, f->x, D, m->output_norm, D, SITE_EMBD, kinds_of(hw, 1));
        job jh = {.f = f, .n = n_out, .nw = 1, .w = {&m->head}, .y = {logits}, .ldy = hp->n_vocab};
        bn_pool_run(f->pool, region_head_f32, &jh);
    } else {
        run_norm_matmul(f, n_out, first_out, f->x, D, m->output_norm, D, SITE_EMBD, 1, hw, hy, one, hp->n_vocab, NULL);
    }
    return 0;
}

void bn_forward_profile(bn_forward *f, int on) { bn_pool_profile(f->pool, on); }

int bn_forward_regions(const bn_forward *f, bn_region_stat *out, int max) {
    static const struct { bn_pool_fn fn; const char *name; } names[] = {
        {region_norm_quant, "norm+quantize"}, {region_matmul, "matmul"},         {region_rope_store, "rope+store"},
        {region_attention, "attention"},      {region_ffn_act, "ffn-activation"}, {region_head_f32, "head-f32"},
    };
    bn_pool_stat st[BN_POOL_STATS_MAX];
    const int n = bn_pool_stats(f->pool, st, BN_POOL_STATS_MAX);
    for (int i = 0; i < n && i < max; i++) {
        out[i].name = "other";
        for (size_t k = 0; k < sizeof names / sizeof names[0]; k++)
            if (names[k].fn == st[i].fn) out[i].name = names[k].name;
        out[i].t = st[i];
    }
    return n;
}

int bn_forward_eval(bn_forward *f, const int32_t *tokens, int n, float *logits, int n_out, bn_err *e) {
    if (n < 0 || n_out < 0 || n_out > n) return bn_errf(e, "forward: n_out: %d not in 0..%d", n_out, n);
    if ((int64_t)f->pos + n > f->n_ctx)
        return bn_errf(e, "forward: context: %d tokens at position %d exceed the context size %d (-c)", n, f->pos, f->n_ctx);
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= f->m->hp.n_vocab)
            return bn_errf(e, "forward: token: id %d out of range 0..%d", tokens[i], f->m->hp.n_vocab - 1);
    const int first_out = n - n_out;
    for (int b0 = 0; b0 < n; b0 += f->n_batch) {
        const int nb = n - b0 < f->n_batch ? n - b0 : f->n_batch;
        int fo = first_out - b0; /* first row of this batch whose logits are wanted */
        if (fo < 0) fo = 0;
        if (fo > nb) fo = nb;
        float *dst = logits ? logits + (int64_t)(b0 + fo - first_out) * f->m->hp.n_vocab : NULL;
        if (eval_batch(f, tokens + b0, nb, dst, fo, e) < 0) return -1;
    }
    return 0;
}

/* ---- setup -------------------------------------------------------------- */

int bn_forward_new(bn_forward **out, const bn_model *m, const bn_forward_opts *o, bn_err *e) {
    *out = NULL;
    const bn_hparams *hp = &m->hp;
    if (!o->kern) return bn_errf(e, "forward: kernels: no kernel table");
    bn_forward *f = bn_calloc(1, sizeof *f, e);
    if (!f) return -1;
    f->m = m;
    f->k = o->kern;
    f->kv = o->kv;
    f->n_ctx = o->n_ctx > 0 ? o->n_ctx : hp->n_ctx_train;
    f->n_batch = o->n_batch > 0 ? o->n_batch : 128;
    f->n_threads = o->n_threads > 0 ? o->n_threads : 1;
    f->q_dim = hp->n_head * hp->head_dim;
    f->kv_dim = hp->n_head_kv * hp->head_dim;
    f->qkv_dim = f->q_dim + 2 * f->kv_dim;
    bn_cpu_info ci;
    bn_cpu_detect(&ci);
    /* the attention and head loops use AVX2/FMA only when the kernel table
     * is an x86 SIMD one, so BN_CPU=scalar runs the plain C reference
     * everywhere (their results are bitwise the same either way) */
    const bool simd_x86 = o->kern->isa == BN_ISA_AVX2 || o->kern->isa == BN_ISA_AVX512;
    f->hw_fma = ci.fma && simd_x86;
    f->hw_avx2 = ci.avx2 && ci.fma && ci.f16c && simd_x86;
    f->hw_avx512 = f->hw_avx2 && ci.avx512f && ci.avx512vl && o->kern->isa == BN_ISA_AVX512;
    /* BN_ATT_BLOCK_BYTES moves the point where batch attention goes blocked
     * (tests set 0 to run the blocked path on short prompts) */
    const char *ab = getenv("BN_ATT_BLOCK_BYTES");
    f->att_block_bytes = ab && *ab ? strtoll(ab, NULL, 10) : BN_ATT_BLOCK_BYTES;
    f->vm = f->hw_avx2 ? BN_VM_AVX2 : f->hw_fma ? BN_VM_FMA : BN_VM_PLAIN;
    f->compat = o->compat;
    if ((unsigned)f->compat > BN_COMPAT_LLAMACPP) { bn_forward_free(f); return bn_errf(e, "forward: compat: %d unknown", (int)o->compat); }
    if (f->n_ctx > (1 << 24)) { bn_forward_free(f); return bn_errf(e, "forward: n_ctx: %d too large", f->n_ctx); }

    /* every weight's act kind must exist in this kernel table */
    uint32_t types[16];
    int nt = bn_model_weight_types(m, types, 16);
    for (int i = 0; i < nt; i++)
        if (bn_act_kind_for(types[i]) < 0) {
            bn_forward_free(f);
            return bn_errf(e, "forward: kernels: no matmul for weight type %s", bn_type_name(types[i]));
        }

    const size_t B = (size_t)f->n_batch;
    int wmax = hp->n_embd > f->q_dim ? hp->n_embd : f->q_dim;
    wmax = wmax > hp->n_ff ? wmax : hp->n_ff;
    f->x = bn_malloc(B * hp->n_embd * sizeof(float), e);
    f->xn = f->x ? bn_malloc(B * wmax * sizeof(float), e) : NULL;
    f->qkv = f->xn ? bn_malloc(B * f->qkv_dim * sizeof(float), e) : NULL;
    f->att = f->qkv ? bn_malloc(B * f->q_dim * sizeof(float), e) : NULL;
    f->gu = f->att ? bn_malloc(B * 2 * hp->n_ff * sizeof(float), e) : NULL;
    f->y = f->gu ? bn_malloc(B * hp->n_embd * sizeof(float), e) : NULL;
    f->rope = f->y ? bn_malloc(B * hp->n_rot * sizeof(float), e) : NULL;
    /* per thread: the scores of one query head group (grouped P.V) */
    const size_t group = (size_t)(hp->n_head / hp->n_head_kv);
    f->scores = f->rope ? bn_malloc((size_t)f->n_threads * BN_ATT_QT * group * (f->n_ctx + 8) * sizeof(float), e) : NULL;
    f->kvtmp = f->scores ? bn_malloc((size_t)f->n_threads * (2 * (size_t)f->n_ctx + 8) * hp->head_dim * sizeof(float), e)
                         : NULL;
    f->qtmp = f->kvtmp ? bn_malloc((size_t)f->n_threads * BN_ATT_QT * group * hp->head_dim * sizeof(float), e) : NULL;
    f->pvlanes = f->qtmp ? bn_malloc((size_t)f->n_threads * BN_ATT_QT * group * 8 * hp->head_dim * sizeof(float), e) : NULL;
    f->wrow = f->pvlanes ? bn_malloc((size_t)f->n_threads * hp->n_embd * sizeof(float), e) : NULL;
    /* 32 values of padding after every K head block: the one-token kernels
     * read whole vectors past a row's last value (fma_lanes). V^T is in
     * whole tiles (BN_VT), so a column's reads past its last position stay
     * in its tile. */
    f->k_head_ld = (int64_t)f->n_ctx * hp->head_dim + 32;
    f->v_tile = (int64_t)hp->head_dim * BN_VT;
    f->v_head_ld = ((int64_t)f->n_ctx + BN_VT - 1) / BN_VT * f->v_tile;
    size_t esz = f->kv == BN_KV_F16 ? 2 : 4, heads = (size_t)hp->n_layer * hp->n_head_kv, k_n, v_n;
    if (!f->wrow || !bn_mul_size(heads * esz, (size_t)f->k_head_ld, &k_n) ||
        !bn_mul_size(heads * esz, (size_t)f->v_head_ld, &v_n)) {
        bn_forward_free(f);
        return e->msg[0] ? -1 : bn_errf(e, "forward: kv cache: size overflow");
    }
    f->k_bytes = k_n;
    f->v_bytes = v_n;
    f->kc = bn_alloc_big(k_n, e);
    f->vc = f->kc ? bn_alloc_big(v_n, e) : NULL;
    if (!f->vc) { bn_forward_free(f); bn_err_prefix(e, "forward: kv cache"); return -1; }
    bn_populate_big(f->kc, f->k_bytes);
    bn_populate_big(f->vc, f->v_bytes);
    if (f->kv == BN_KV_F16) {
        f->f16tab = bn_malloc(65536 * sizeof(float), e);
        if (!f->f16tab) { bn_forward_free(f); return -1; }
        for (uint32_t i = 0; i < 65536; i++) f->f16tab[i] = bn_f16_to_f32((uint16_t)i);
    }

    /* acts per input site for the kinds its consumers need */
    unsigned need[SITE_COUNT] = {0};
    for (int il = 0; il < hp->n_layer; il++) {
        const bn_layer *L = &m->layers[il];
        const bn_qmat *emb[5] = {&L->wq, &L->wk, &L->wv, &L->wgate, &L->wup};
        need[SITE_EMBD] |= kinds_of(emb, 5);
        const bn_qmat *wo = &L->wo, *wd = &L->wdown;
        need[SITE_ATT] |= kinds_of(&wo, 1);
        need[SITE_FF] |= kinds_of(&wd, 1);
    }
    const bn_qmat *hw = &m->head;
    need[SITE_EMBD] |= kinds_of(&hw, 1);
    const int64_t widths[SITE_COUNT] = {hp->n_embd, f->q_dim, hp->n_ff};
    for (int s = 0; s < SITE_COUNT; s++)
        for (int kd = 0; kd < BN_ACT_COUNT; kd++)
            if (need[s] & (1u << kd))
                if (bn_act_alloc(&f->act[s][kd], (bn_act_kind)kd, widths[s], f->n_batch, e) < 0) {
                    bn_forward_free(f);
                    return -1;
                }
    f->claims = aligned_alloc(64, (size_t)f->n_threads * sizeof *f->claims);
    if (!f->claims) { bn_forward_free(f); return bn_errf(e, "forward: out of memory"); }
    if (f->n_threads > 1) { /* each thread's own one-token input (run_norm_matmul) */
        f->own = calloc((size_t)f->n_threads, sizeof *f->own);
        if (!f->own) { bn_forward_free(f); return bn_errf(e, "forward: out of memory"); }
        for (int t = 0; t < f->n_threads; t++) {
            tok_input *ti = &f->own[t];
            if (!(ti->xn = bn_malloc((size_t)wmax * sizeof(float), e))) { bn_forward_free(f); return -1; }
            for (int s = 0; s < SITE_COUNT; s++)
                for (int kd = 0; kd < BN_ACT_COUNT; kd++)
                    if (need[s] & (1u << kd)) {
                        if (bn_act_alloc(&ti->act[s][kd], (bn_act_kind)kd, widths[s], 1, e) < 0) {
                            bn_forward_free(f);
                            return -1;
                        }
                        ti->act[s][kd].n = 1;
                    }
        }
    }
    if (bn_pool_new(&f->pool, f->n_threads, e) < 0) { bn_forward_free(f); return -1; }
    *out = f;
    return 0;
}

void bn_forward_free(bn_forward *f) {
    if (!f) return;
    if (f->pool) bn_pool_free(f->pool);
    for (int s = 0; s < SITE_COUNT; s++)
        for (int kd = 0; kd < BN_ACT_COUNT; kd++)
            if (f->act[s][kd].data) bn_act_free(&f->act[s][kd]);
    for (int t = 0; f->own && t < f->n_threads; t++) {
        free(f->own[t].xn);
        for (int s = 0; s < SITE_COUNT; s++)
            for (int kd = 0; kd < BN_ACT_COUNT; kd++)
                if (f->own[t].act[s][kd].data) bn_act_free(&f->own[t].act[s][kd]);
    }
    free(f->own);
    free(f->x); free(f->xn); free(f->qkv); free(f->att); free(f->gu); free(f->y); free(f->rope);
    free(f->scores); free(f->qtmp); free(f->pvlanes); free(f->kvtmp); free(f->wrow); free(f->claims); bn_free_big(f->kc, f->k_bytes); bn_free_big(f->vc, f->v_bytes); free(f->f16tab);
    free(f);
}

int bn_forward_n_ctx(const bn_forward *f) { return f->n_ctx; }
int bn_forward_pos(const bn_forward *f) { return f->pos; }
void bn_forward_reset(bn_forward *f) { f->pos = 0; }

/* "i2_s/avx2 f16/avx2 threads=2 kv=f16" */
void bn_forward_receipt(const bn_forward *f, char *buf, size_t n) {
    uint32_t types[16];
    int nt = bn_model_weight_types(f->m, types, 16);
    size_t used = 0;
    buf[0] = 0;
    for (int i = 0; i < nt && used < n; i++) {
        char p[64];
        bn_kernels_path(f->k, types[i], p, sizeof p);
        used += (size_t)snprintf(buf + used, n - used, "%s%s", i ? " " : "", p);
    }
    if (used < n)
        snprintf(buf + used, n - used, " threads=%d kv=%s compat=%s", f->n_threads, f->kv == BN_KV_F16 ? "f16" : "f32",
                 f->compat == BN_COMPAT_BITNETCPP ? "bitnet.cpp" : f->compat == BN_COMPAT_LLAMACPP ? "llama.cpp" : "none");
}

/* ---- logits helpers ------------------------------------------------------ */

/* The lowest index of the largest value; NaNs never win, and a NaN at
 * v[0] makes the answer 0 (the one-pass "v[i] > v[a]" definition). That
 * pass reloads v[a] behind a cmov every element, a ~7-cycle chain: 0.53 ms
 * for 2b4t's 128256 logits, 1.5-2% of a decode step. Eight independent
 * running maxima and then a search for the first equal value give the
 * same index (-0 == +0, so a zero of either sign ties) in ~10x less. */
int32_t bn_argmax(const float *v, int n) {
    if (n <= 1 || v[0] != v[0]) return 0;
    float m8[8];
    for (int j = 0; j < 8; j++) m8[j] = v[0];
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) m8[j] = v[i + j] > m8[j] ? v[i + j] : m8[j];
    float m = m8[0];
    for (int j = 1; j < 8; j++) m = m8[j] > m ? m8[j] : m;
    for (; i < n; i++) m = v[i] > m ? v[i] : m;
    for (i = 0; i < n; i++)
        if (v[i] == m) break;
    return i;
}

double bn_log_softmax_at(const float *v, int n, int32_t id) {
    double mx = v[0];
    for (int i = 1; i < n; i++) mx = v[i] > mx ? v[i] : mx;
    double s = 0.0;
    for (int i = 0; i < n; i++) s += exp((double)v[i] - mx);
    return (double)v[id] - mx - log(s);
}

/* Every decoded token's row passes through here on the calling thread
 * while the workers wait, so it is written for the vectorizer: the exponent
 * test on the bits instead of isfinite, flags summed instead of branches,
 * and 16-wide blocks with a known trip count (gcc's -O2 cost model will not
 * vectorize a loop that needs an epilogue). 128256 logits, SPR VM: the
 * time between a token's head GEMV and the next token's first region fell
 * by ~160 us (region timers; 2b4t decodes a token in ~40 ms). */
int bn_logits_check(const float *v, int n, bn_err *e) {
    int bad = 0, neq = 0, i = 0;
    const float v0 = n > 0 ? v[0] : 0.0f;
    for (; i + 16 <= n; i += 16) {
        int b16 = 0, q16 = 0;
        for (int j = 0; j < 16; j++) {
            uint32_t u;
            memcpy(&u, v + i + j, sizeof u);
            b16 += (u & 0x7f800000u) == 0x7f800000u;
            q16 |= v[i + j] != v0;
        }
        bad += b16;
        neq |= q16;
    }
    for (; i < n; i++) {
        if (!isfinite(v[i])) bad++;
        if (v[i] != v0) neq = 1;
    }
    if (bad) return bn_errf(e, "logits: %d NaN or Inf values", bad);
    if (!neq && n > 1) return bn_errf(e, "logits: all %d values equal (%g)", n, v[0]);
    return 0;
}
