/* convert.c - HF checkpoint / GGUF / synthetic -> BitNet GGUF (see convert.h).
 *
 * One pipeline for all three sources: a plan (list of output tensors with
 * their output type, shape and where the values come from) is built and
 * checked first, the metadata and tensor table are written, then every tensor
 * is produced and encoded in turn. Linear (ternary) weights are materialised
 * as exact float values for the whole tensor (the absmean scale is a
 * whole-tensor statistic); embeddings are streamed in row chunks. */
#include "convert.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "gguf.h"
#include "json.h"
#include "pool.h"
#include "quant.h"
#include "safetensors.h"
#include "spm_model.h"
#include "vocab.h"

enum { K_EMBD, K_OUTPUT, K_NORM, K_LINEAR, K_OTHER };
enum { SRC_HF = 1, SRC_GGUF, SRC_SYNTH };

typedef struct item {
    char name[BN_GGUF_MAX_NAME];
    int kind;
    uint32_t type;                   /* output type */
    uint32_t n_dims;
    int64_t ne[BN_GGUF_MAX_DIMS];    /* GGUF order: ne[0] = row length */
    const bn_st_tensor *st, *st_scale;
    const bn_st *st_file;
    const bn_gguf_tensor *gt;
    uint64_t seed;                   /* synthetic */
    int widx;                        /* writer index */
} item;

typedef struct job {
    const bn_convert_opts *o;
    int src;
    bn_dims d;
    uint32_t n_rot;
    char arch[32];
    item *items;
    size_t n_items, cap_items;
    /* HF */
    const char *dir;
    bn_st **shards;
    size_t n_shards;
    bool scale_divides;              /* legacy BitLinear: W = T / weight_scale */
    /* GGUF */
    bn_gguf *in;
    /* synthetic */
    bn_gguf *vocab;
    bn_gguf_writer *w;
    bn_pool *pool;
} job;

/* Defaults a caller can start from (I2_S, F16 embedding, seed 1234). */
void bn_convert_opts_init(bn_convert_opts *o) {
    memset(o, 0, sizeof *o);
    o->wtype = BN_TYPE_I2_S;
    o->embd_type = -1;
    o->output_type = -1;
    o->seed = 1234;
}

/* general.file_type of bitnet.cpp / llama.cpp for the weight type (llama_ftype, not the tensor type id). */
int bn_ftype_for(uint32_t wtype) {
    switch (wtype) {
    case BN_TYPE_F32: return 0;
    case BN_TYPE_F16: return 1;
    case BN_TYPE_TQ1_0: return 36;
    case BN_TYPE_TQ2_0: return 37;
    case BN_TYPE_I2_S: return 40;
    default: return -1;
    }
}

/* Named synthetic shapes: the ../shared fixtures and bitnet-b1.58-2B-4T. */
int bn_dims_preset(bn_dims *d, const char *shape, bn_err *e) {
    memset(d, 0, sizeof *d);
    d->rope_base = 500000.0f;
    d->eps = 1e-5f;
    if (strcmp(shape, "tiny") == 0) {
        d->n_embd = 256; d->n_layer = 4; d->n_head = 8; d->n_head_kv = 2; d->n_ff = 768; d->n_ctx = 512;
    } else if (strcmp(shape, "2b4t") == 0) {
        d->n_embd = 2560; d->n_layer = 30; d->n_head = 20; d->n_head_kv = 5; d->n_ff = 6912; d->n_ctx = 4096;
    } else {
        return bn_errf(e, "--synthetic: unknown shape '%s' (tiny, 2b4t)", shape);
    }
    return 0;
}

/* --dims key=value list over a preset, so a test can shrink any dimension. */
int bn_dims_parse(bn_dims *d, const char *spec, bn_err *e) {
    char buf[512];
    if (strlen(spec) >= sizeof buf) return bn_errf(e, "--dims: too long");
    strcpy(buf, spec);
    if (d->rope_base == 0) d->rope_base = 500000.0f;
    if (d->eps == 0) d->eps = 1e-5f;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        if (!eq) return bn_errf(e, "--dims: '%s': expected key=value", tok);
        *eq = 0;
        const char *k = tok, *v = eq + 1;
        if (strcmp(k, "rope") == 0 || strcmp(k, "eps") == 0) {
            char *end;
            errno = 0;
            float f = strtof(v, &end);
            if (errno || *end || !(f > 0) || !isfinite(f)) return bn_errf(e, "--dims: %s: bad value '%s'", k, v);
            if (k[0] == 'r') d->rope_base = f; else d->eps = f;
            continue;
        }
        char *end;
        errno = 0;
        unsigned long x = strtoul(v, &end, 10);
        if (errno || *end || !*v || x == 0 || x > 1u << 24) return bn_errf(e, "--dims: %s: bad value '%s'", k, v);
        uint32_t *dst = strcmp(k, "embd") == 0 ? &d->n_embd : strcmp(k, "layers") == 0 ? &d->n_layer
                      : strcmp(k, "heads") == 0 ? &d->n_head : strcmp(k, "kv") == 0 ? &d->n_head_kv
                      : strcmp(k, "ffn") == 0 ? &d->n_ff : strcmp(k, "ctx") == 0 ? &d->n_ctx
                      : strcmp(k, "vocab") == 0 ? &d->n_vocab : NULL;
        if (!dst) return bn_errf(e, "--dims: unknown key '%s' (embd, layers, heads, kv, ffn, ctx, rope, eps)", k);
        *dst = (uint32_t)x;
    }
    return 0;
}

/* ---- small helpers ---------------------------------------------------------- */

/* Append an item to the plan. */
static item *add_item(job *j, const char *name, int kind, uint32_t type, uint32_t n_dims,
                      int64_t ne0, int64_t ne1, bn_err *e) {
    if (j->n_items == j->cap_items) {
        size_t nc = j->cap_items ? 2 * j->cap_items : 64;
        item *p = realloc(j->items, nc * sizeof *p);
        if (!p) { bn_errf(e, "out of memory"); return NULL; }
        j->items = p;
        j->cap_items = nc;
    }
    item *it = &j->items[j->n_items++];
    memset(it, 0, sizeof *it);
    snprintf(it->name, sizeof it->name, "%s", name);
    it->kind = kind;
    it->type = type;
    it->n_dims = n_dims;
    it->ne[0] = ne0;
    it->ne[1] = n_dims > 1 ? ne1 : 1;
    it->ne[2] = it->ne[3] = 1;
    return it;
}

/* Element count of a planned tensor. */
static int64_t item_nelem(const item *it) { return it->ne[0] * it->ne[1] * it->ne[2] * it->ne[3]; }
/* Rows (everything but ne0) of a planned tensor. */
static int64_t item_rows(const item *it) { return it->ne[1] * it->ne[2] * it->ne[3]; }

/* Whether a tensor of this shape can be stored in type; the message says which rule failed. */
static int check_shape(const item *it, bn_err *e) {
    int64_t k = it->ne[0];
    const char *tn = bn_type_name(it->type);
    switch (it->type) {
    case BN_TYPE_I2_S:
        if (k % 128) return bn_errf(e, "%s: shape [%lld, %lld]: I2_S needs the row length (ne0) to be a multiple of 128",
                                    it->name, (long long)it->ne[0], (long long)it->ne[1]);
        break;
    case BN_TYPE_TQ1_0: case BN_TYPE_TQ2_0: case BN_TYPE_Q6_K:
        if (k % 256) return bn_errf(e, "%s: shape [%lld, %lld]: %s needs the row length (ne0) to be a multiple of 256",
                                    it->name, (long long)it->ne[0], (long long)it->ne[1], tn);
        break;
    case BN_TYPE_Q8_0:
        if (k % 32) return bn_errf(e, "%s: shape [%lld, %lld]: Q8_0 needs the row length (ne0) to be a multiple of 32",
                                   it->name, (long long)it->ne[0], (long long)it->ne[1]);
        break;
    case BN_TYPE_F16: case BN_TYPE_F32: break;
    default: return bn_errf(e, "%s: output type %s is not supported", it->name, tn);
    }
    return 0;
}

/* Bytes of one row of K elements in type (not for I2_S, which is per tensor). */
static size_t row_bytes(uint32_t type, int64_t k) {
    switch (type) {
    case BN_TYPE_F32: return (size_t)k * 4;
    case BN_TYPE_F16: return (size_t)k * 2;
    case BN_TYPE_Q8_0: return (size_t)k / 32 * sizeof(bn_block_q8_0);
    case BN_TYPE_Q6_K: return (size_t)k / 256 * sizeof(bn_block_q6_K);
    case BN_TYPE_TQ1_0: return (size_t)k / 256 * sizeof(bn_block_tq1_0);
    case BN_TYPE_TQ2_0: return (size_t)k / 256 * sizeof(bn_block_tq2_0);
    default: return 0;
    }
}

/* Encode one row of floats in a row-wise type. */
static void encode_row(uint32_t type, const float *x, int64_t k, uint8_t *out) {
    switch (type) {
    case BN_TYPE_F32: memcpy(out, x, (size_t)k * 4); break;
    case BN_TYPE_F16:
        for (int64_t i = 0; i < k; i++) { uint16_t h = bn_f32_to_f16(x[i]); memcpy(out + 2 * i, &h, 2); }
        break;
    case BN_TYPE_Q8_0: bn_quantize_row_q8_0_ref(x, (bn_block_q8_0 *)out, k); break;
    case BN_TYPE_Q6_K: bn_quantize_row_q6_K_ref(x, (bn_block_q6_K *)out, k); break;
    case BN_TYPE_TQ1_0: bn_quantize_row_tq1_0_ref(x, (bn_block_tq1_0 *)out, k); break;
    case BN_TYPE_TQ2_0: bn_quantize_row_tq2_0_ref(x, (bn_block_tq2_0 *)out, k); break;
    default: break;
    }
}

typedef struct enc_ctx {
    uint32_t type;
    const float *x;
    int64_t k, rows;
    uint8_t *out;
    size_t rb;
} enc_ctx;

/* Pool worker: encode this thread's share of rows. */
static void enc_worker(void *p, int ith, int nth) {
    enc_ctx *c = p;
    int64_t lo, hi;
    bn_pool_split(c->rows, ith, nth, 1, &lo, &hi);
    for (int64_t r = lo; r < hi; r++) encode_row(c->type, c->x + r * c->k, c->k, c->out + (size_t)r * c->rb);
}

/* Encode rows in parallel (row-wise types). */
static void encode_rows(job *j, uint32_t type, const float *x, int64_t k, int64_t rows, uint8_t *out) {
    enc_ctx c = { type, x, k, rows, out, row_bytes(type, k) };
    if (j->pool && rows > 1) bn_pool_run(j->pool, enc_worker, &c);
    else enc_worker(&c, 0, 1);
}

/* Decode rows [r0, r0+nr) of a GGUF tensor to float. */
static int gguf_rows(const bn_gguf_tensor *t, int64_t r0, int64_t nr, float *y, bn_err *e) {
    int64_t k = t->ne[0];
    for (int64_t r = r0; r < r0 + nr; r++) {
        float *o = y + (r - r0) * k;
        switch (t->type) {
        case BN_TYPE_F32: memcpy(o, t->data + (size_t)r * k * 4, (size_t)k * 4); break;
        case BN_TYPE_F16: {
            const uint8_t *p = t->data + (size_t)r * k * 2;
            for (int64_t i = 0; i < k; i++) { uint16_t h; memcpy(&h, p + 2 * i, 2); o[i] = bn_f16_to_f32(h); }
            break;
        }
        case BN_TYPE_BF16: {
            const uint8_t *p = t->data + (size_t)r * k * 2;
            for (int64_t i = 0; i < k; i++) { uint16_t h; memcpy(&h, p + 2 * i, 2); o[i] = bn_bf16_to_f32(h); }
            break;
        }
        case BN_TYPE_Q8_0: bn_dequantize_row_q8_0((const bn_block_q8_0 *)(t->data + (size_t)r * row_bytes(t->type, k)), o, k); break;
        case BN_TYPE_Q6_K: bn_dequantize_row_q6_K((const bn_block_q6_K *)(t->data + (size_t)r * row_bytes(t->type, k)), o, k); break;
        case BN_TYPE_TQ2_0: bn_dequantize_row_tq2_0((const bn_block_tq2_0 *)(t->data + (size_t)r * row_bytes(t->type, k)), o, k); break;
        case BN_TYPE_TQ1_0: bn_dequantize_row_tq1_0((const bn_block_tq1_0 *)(t->data + (size_t)r * row_bytes(t->type, k)), o, k); break;
        case BN_TYPE_I2_S: {
            if (k % 128) return bn_errf(e, "%s: I2_S row length %lld is not a multiple of 128", t->name, (long long)k);
            int64_t n = k;
            float scale;
            int64_t total = t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
            memcpy(&scale, t->data + total / 4, 4);
            const uint8_t *p = t->data + (size_t)r * k / 4;
            for (int64_t i = 0; i < n; i++) {
                int c = bn_i2s_code(p, i);
                if (c == 3) return bn_errf(e, "%s: I2_S: invalid 2-bit code 3", t->name);
                o[i] = (float)(c - 1) * scale;
            }
            break;
        }
        default:
            return bn_errf(e, "%s: cannot decode tensor type %s", t->name, bn_type_name(t->type));
        }
    }
    return 0;
}

/* Drop the mapped pages of a tensor we are done with (keeps RSS near one tensor). */
static void release_pages(const void *data, uint64_t n) {
    uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t a = ((uintptr_t)data + pg - 1) & ~(pg - 1);
    uintptr_t b = ((uintptr_t)data + (uintptr_t)n) & ~(pg - 1);
    if (b > a) madvise((void *)a, b - a, MADV_DONTNEED);
}

/* ---- deterministic PRNG (synthetic models) --------------------------------- */

/* splitmix64: seeds the generator and hashes (seed, tensor, block) tuples. */
static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

typedef struct rng { uint64_t s[4]; } rng;

/* xoshiro256** seeded from one 64-bit value through splitmix64. */
static void rng_seed(rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
}

/* Rotate left, for xoshiro. */
static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

/* xoshiro256** step: fast, good enough statistics, identical on every platform. */
static inline uint64_t rng_next(rng *r) {
    uint64_t *s = r->s;
    uint64_t res = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return res;
}

/* Uniform double in (0, 1). */
static inline double rng_unit(rng *r) { return ((double)(rng_next(r) >> 11) + 0.5) * (1.0 / 9007199254740992.0); }

/* Two standard normals by Marsaglia's polar method (no trigonometry; one
 * log and one sqrt per pair), deterministic for a given generator state. */
static inline void rng_normal2(rng *r, double *a, double *b) {
    double u, v, q;
    do {
        u = 2.0 * rng_unit(r) - 1.0;
        v = 2.0 * rng_unit(r) - 1.0;
        q = u * u + v * v;
    } while (q >= 1.0 || q == 0.0);
    double f = sqrt(-2.0 * log(q) / q);
    *a = u * f;
    *b = v * f;
}

/* FNV-1a of a name, mixed into per-tensor seeds. */
static uint64_t name_hash(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) { h ^= (unsigned char)*s; h *= 1099511628211ull; }
    return h;
}

#define SYN_BLOCK 65536 /* elements per independently seeded block */

typedef struct syn_ctx {
    const item *it;
    float *v;
    int64_t n;
    float s;
} syn_ctx;

/* Ternary codes (0, 1, 2 for -1, 0, +1) of synthetic block b, P = .3/.4/.3:
 * one 16-bit draw per weight, 19661/65536 and 45875/65536 the thresholds.
 * Each block has its own seed, so any split over threads gives the same codes. */
static void syn_block_codes(const item *it, int64_t b, int64_t m, uint8_t *codes) {
    uint64_t sd = it->seed ^ (0xB10Cull * (uint64_t)(b + 1));
    rng r;
    rng_seed(&r, splitmix64(&sd));
    for (int64_t i = 0; i < m; i += 4) {
        uint64_t x = rng_next(&r);
        for (int q = 0; q < 4 && i + q < m; q++, x >>= 16) {
            unsigned u = (unsigned)(x & 0xFFFF);
            codes[i + q] = (uint8_t)(u < 19661u ? 0 : u < 45875u ? 1 : 2);
        }
    }
}

/* Pool worker: synthetic values s*T (float), block by block. */
static void syn_lin_worker(void *p, int ith, int nth) {
    syn_ctx *c = p;
    int64_t nb = (c->n + SYN_BLOCK - 1) / SYN_BLOCK, lo, hi;
    bn_pool_split(nb, ith, nth, 1, &lo, &hi);
    const float val[3] = { -c->s, 0.0f, c->s };
    uint8_t codes[SYN_BLOCK];
    for (int64_t b = lo; b < hi; b++) {
        int64_t i0 = b * SYN_BLOCK, m = c->n - i0 < SYN_BLOCK ? c->n - i0 : SYN_BLOCK;
        syn_block_codes(c->it, b, m, codes);
        for (int64_t i = 0; i < m; i++) c->v[i0 + i] = val[codes[i]];
    }
}

typedef struct syn_i2s_ctx { const item *it; int64_t n; uint8_t *out; } syn_i2s_ctx;

/* Pool worker: synthetic I2_S codes packed straight into the tensor bytes,
 * skipping the float stage (the 2B-4T shape has 2.1 G weights). Same layout as
 * bn_quantize_i2_s_ref: element j of a 128-block at byte j%32, bits
 * 6-2(j/32); the tests check it against the float path (TQ synthetic ==
 * I2_S synthetic requantized, and I2_S -> TQ -> I2_S identity). */
static void syn_i2s_worker(void *p, int ith, int nth) {
    syn_i2s_ctx *c = p;
    int64_t nb = (c->n + SYN_BLOCK - 1) / SYN_BLOCK, lo, hi;
    bn_pool_split(nb, ith, nth, 1, &lo, &hi);
    uint8_t codes[SYN_BLOCK];
    for (int64_t b = lo; b < hi; b++) {
        int64_t i0 = b * SYN_BLOCK, m = c->n - i0 < SYN_BLOCK ? c->n - i0 : SYN_BLOCK;
        syn_block_codes(c->it, b, m, codes);
        for (int64_t g = 0; g < m; g += 128) {
            const uint8_t *q = codes + g;
            uint8_t *o = c->out + (i0 + g) / 4;
            for (int k = 0; k < 32; k++)
                o[k] = (uint8_t)(q[k] << 6 | q[32 + k] << 4 | q[64 + k] << 2 | q[96 + k]);
        }
    }
}

/* Synthetic rows of an embedding (N(0, .15^2); F16 output rounds them) or a
 * norm (1 + .05 N(0,1)); each row has its own seed, so any split is the same. */
static void syn_rows(const item *it, int64_t r0, int64_t nr, float *y) {
    int64_t k = it->ne[0];
    bool norm = it->kind == K_NORM;
    for (int64_t r = r0; r < r0 + nr; r++) {
        uint64_t sd = it->seed ^ (0x5EEDull * (uint64_t)(r + 1));
        rng g;
        rng_seed(&g, splitmix64(&sd));
        float *o = y + (r - r0) * k;
        for (int64_t i = 0; i < k; i += 2) {
            double z[2];
            rng_normal2(&g, &z[0], &z[1]);
            for (int q = 0; q < 2 && i + q < k; q++)
                o[i + q] = norm ? (float)(1.0 + 0.05 * z[q]) : (float)(0.15 * z[q]);
        }
    }
}

typedef struct synrow_ctx { const item *it; int64_t r0, nr; float *y; } synrow_ctx;

/* Pool worker: this thread's share of synthetic rows. */
static void syn_rows_worker(void *p, int ith, int nth) {
    synrow_ctx *c = p;
    int64_t lo, hi;
    bn_pool_split(c->nr, ith, nth, 1, &lo, &hi);
    if (hi > lo) syn_rows(c->it, c->r0 + lo, hi - lo, c->y + lo * c->it->ne[0]);
}

#define I2S_CHUNK ((int64_t)128 * 8192)

typedef struct i2s_ctx { const float *v; int64_t n; uint8_t *out; } i2s_ctx;

/* Pool worker: pack chunks of 1M elements with bn_quantize_i2_s_ref into a
 * scratch buffer and keep only the codes (the codes depend only on each
 * element's sign, so chunking gives the same bytes as one call). */
static void i2s_worker(void *p, int ith, int nth) {
    i2s_ctx *c = p;
    int64_t nch = (c->n + I2S_CHUNK - 1) / I2S_CHUNK, lo, hi;
    bn_pool_split(nch, ith, nth, 1, &lo, &hi);
    uint8_t *scratch = hi > lo ? malloc((size_t)(I2S_CHUNK / 4 + 32)) : NULL;
    for (int64_t ch = lo; ch < hi; ch++) {
        int64_t i0 = ch * I2S_CHUNK, m = c->n - i0 < I2S_CHUNK ? c->n - i0 : I2S_CHUNK;
        if (scratch) {
            bn_quantize_i2_s_ref(c->v + i0, scratch, m);
            memcpy(c->out + i0 / 4, scratch, (size_t)(m / 4));
        } else { /* no memory for scratch: still correct, one element group at a time */
            uint8_t tmp[32 + 32];
            for (int64_t b = 0; b < m; b += 128) {
                bn_quantize_i2_s_ref(c->v + i0 + b, tmp, 128);
                memcpy(c->out + (i0 + b) / 4, tmp, 32);
            }
        }
    }
    free(scratch);
}

/* I2_S of n ternary values with magnitude s: codes in parallel, then the trailer. */
static void encode_i2s(job *j, const float *v, int64_t n, float s, uint8_t *out) {
    i2s_ctx c = { v, n, out };
    if (j->pool && n > I2S_CHUNK) bn_pool_run(j->pool, i2s_worker, &c);
    else i2s_worker(&c, 0, 1);
    memset(out + n / 4, 0, 32);
    memcpy(out + n / 4, &s, sizeof s);
}

/* ---- values of a linear weight ----------------------------------------------- */

/* Absmean ternarisation in place (HF WeightQuant, kjv README): s = max(mean|W|,
 * 1e-5) in float, inv = 1/s, T = clamp(rne(W*inv), -1, 1), value = T/inv. */
static void ternarize(float *v, int64_t n) {
    double acc = 0;
    for (int64_t i = 0; i < n; i++) acc += fabs((double)v[i]);
    float mean = n ? (float)(acc / (double)n) : 0.0f;
    float s = mean > 1e-5f ? mean : 1e-5f;
    float inv = 1.0f / s;
    float val[3] = { -1.0f / inv, 0.0f, 1.0f / inv };
    for (int64_t i = 0; i < n; i++) {
        float t = rintf(v[i] * inv);
        t = t < -1.0f ? -1.0f : t > 1.0f ? 1.0f : t;
        v[i] = val[(int)t + 1];
    }
}

/* True if every value is 0 or +-s for one s (then *s is that magnitude). */
static bool one_scale_ternary(const float *v, int64_t n, float *s) {
    float m = 0;
    for (int64_t i = 0; i < n; i++) {
        float a = fabsf(v[i]);
        if (a == 0) continue;
        if (m == 0) m = a;
        else if (a != m) return false;
    }
    *s = m;
    return true;
}

/* Produce the exact float values of linear weight it (n elements) into v. */
static int linear_values(job *j, const item *it, float *v, bn_err *e) {
    int64_t n = item_nelem(it);
    if (j->src == SRC_SYNTH) {
        uint64_t sd = it->seed;
        float s = (float)(2 + splitmix64(&sd) % 5) / 64.0f;
        syn_ctx c = { it, v, n, s };
        if (j->pool) bn_pool_run(j->pool, syn_lin_worker, &c);
        else syn_lin_worker(&c, 0, 1);
        return 0;
    }
    if (j->src == SRC_GGUF) {
        const bn_gguf_tensor *t = it->gt;
        int64_t rows = item_rows(it), k = it->ne[0], step = 256;
        uint64_t in_rb = t->type == BN_TYPE_I2_S ? 0 : t->nbytes / (uint64_t)rows;
        for (int64_t r = 0; r < rows; r += step) { /* decode in chunks, dropping the read pages */
            int64_t nr = rows - r < step ? rows - r : step;
            if (gguf_rows(t, r, nr, v + r * k, e)) return -1;
            if (in_rb) release_pages(t->data + (uint64_t)r * in_rb, (uint64_t)nr * in_rb);
        }
        release_pages(t->data, t->nbytes);
        if (t->type == BN_TYPE_F32 || t->type == BN_TYPE_F16 || t->type == BN_TYPE_BF16) {
            float s;
            if (!one_scale_ternary(v, n, &s)) ternarize(v, n); /* a float master: absmean as HF */
        }
        return 0;
    }
    /* HF */
    const bn_st_tensor *t = it->st;
    if (t->dtype == BN_ST_U8) { /* Microsoft packed: 4 codes per byte, rows out/4 apart */
        const bn_st_tensor *ts = it->st_scale;
        float ws = bn_st_get_f32(ts, 0);
        if (!isfinite(ws) || ws <= 0) return bn_errf(e, "%s: weight_scale %g is not a positive number", ts->name, ws);
        float scale = j->scale_divides ? 1.0f / ws : ws;
        int64_t k = it->ne[0], m = it->ne[1], q = m / 4;
        for (int64_t r = 0; r < q; r++) {
            const uint8_t *p = t->data + (size_t)r * k;
            for (int s = 0; s < 4; s++) {
                float *o = v + (s * q + r) * k;
                for (int64_t c = 0; c < k; c++) {
                    int code = (p[c] >> (2 * s)) & 3;
                    if (code == 3) return bn_errf(e, "%s: packed code 3 (value 2) is not ternary", t->name);
                    o[c] = (float)(code - 1) * scale;
                }
            }
        }
    } else {
        size_t es = bn_st_dtype_size(t->dtype);
        for (int64_t c0 = 0; c0 < n; c0 += 1 << 20) { /* copy in chunks, dropping the read pages */
            int64_t c1 = n - c0 < (1 << 20) ? n : c0 + (1 << 20);
            for (int64_t i = c0; i < c1; i++) v[i] = bn_st_get_f32(t, (uint64_t)i);
            release_pages(t->data + (size_t)c0 * es, (uint64_t)(c1 - c0) * es);
        }
        for (int64_t i = 0; i < n; i++)
            if (!isfinite(v[i])) return bn_errf(e, "%s: element %lld is not finite", t->name, (long long)i);
        ternarize(v, n);
    }
    bn_st_release(it->st_file, t);
    return 0;
}

/* Rows [r0, r0+nr) of a non-linear tensor as floats. */
static int other_rows(job *j, const item *it, int64_t r0, int64_t nr, float *y, bn_err *e) {
    if (j->src == SRC_SYNTH) {
        synrow_ctx c = { it, r0, nr, y };
        if (j->pool && nr > 1) bn_pool_run(j->pool, syn_rows_worker, &c);
        else syn_rows_worker(&c, 0, 1);
        return 0;
    }
    if (j->src == SRC_GGUF) return gguf_rows(it->gt, r0, nr, y, e);
    int64_t k = it->ne[0];
    for (int64_t i = 0; i < nr * k; i++) y[i] = bn_st_get_f32(it->st, (uint64_t)(r0 * k + i));
    return 0;
}

/* ---- producing one tensor ---------------------------------------------------- */

/* Compute, encode and write one planned tensor. */
static int emit(job *j, const item *it, bn_err *e) {
    int64_t n = item_nelem(it), k = it->ne[0], rows = item_rows(it);
    uint64_t nbytes;
    if (bn_type_nbytes(it->type, it->ne, it->n_dims, &nbytes, e)) return -1;
    /* same type in and out (GGUF input): copy the bytes unchanged */
    if (j->src == SRC_GGUF && it->gt->type == it->type) {
        const uint64_t step = 16u << 20; /* 16 MB at a time, pages dropped behind us */
        for (uint64_t o = 0; o < it->gt->nbytes; o += step) {
            uint64_t l = it->gt->nbytes - o < step ? it->gt->nbytes - o : step;
            if (bn_gguf_w_data(j->w, it->widx, it->gt->data + o, (size_t)l, e)) return -1;
            release_pages(it->gt->data + o, l);
        }
        return 0;
    }
    if (it->kind == K_LINEAR && j->src == SRC_SYNTH && it->type == BN_TYPE_I2_S) {
        uint8_t *out = malloc((size_t)nbytes);
        if (!out) return bn_errf(e, "%s: out of memory", it->name);
        syn_i2s_ctx c = { it, n, out };
        if (j->pool) bn_pool_run(j->pool, syn_i2s_worker, &c);
        else syn_i2s_worker(&c, 0, 1);
        uint64_t sd = it->seed; /* the same scale draw as linear_values() */
        float s = (float)(2 + splitmix64(&sd) % 5) / 64.0f;
        bool any = false; /* an all-zero tensor has scale 0, as quantize_i2_s gives it */
        for (int64_t i = 0; i < n / 4 && !any; i++) any = out[i] != 0x55;
        if (!any) s = 0;
        memset(out + n / 4, 0, 32);
        memcpy(out + n / 4, &s, sizeof s);
        int rc = bn_gguf_w_data(j->w, it->widx, out, (size_t)nbytes, e);
        free(out);
        return rc;
    }
    if (it->kind == K_LINEAR) {
        float *v = malloc((size_t)n * sizeof *v);
        uint8_t *out = malloc((size_t)nbytes);
        int rc = -1;
        if (!v || !out) { bn_errf(e, "%s: out of memory (%lld elements)", it->name, (long long)n); goto done_l; }
        if (linear_values(j, it, v, e)) goto done_l;
        if (it->type == BN_TYPE_I2_S) {
            float s = 0;
            if (j->src == SRC_SYNTH) { /* ternary by construction: s is the largest magnitude */
                for (int64_t i = 0; i < n && s == 0; i++) s = fabsf(v[i]);
            } else if (!one_scale_ternary(v, n, &s)) {
                bn_errf(e, "%s: values are not ternary with one scale per tensor (per-block scales differ?): "
                           "cannot be stored as I2_S", it->name);
                goto done_l;
            }
            encode_i2s(j, v, n, s, out);
        } else {
            encode_rows(j, it->type, v, k, rows, out);
        }
        rc = bn_gguf_w_data(j->w, it->widx, out, (size_t)nbytes, e);
    done_l:
        free(v);
        free(out);
        return rc;
    }
    /* row-streamed tensors */
    int64_t chunk = (int64_t)(1u << 22) / k;
    if (chunk < 1) chunk = 1;
    if (chunk > rows) chunk = rows;
    size_t rb = row_bytes(it->type, k);
    float *x = malloc((size_t)(chunk * k) * sizeof *x);
    uint8_t *out = malloc(rb * (size_t)chunk);
    int rc = 0;
    if (!x || !out) rc = bn_errf(e, "%s: out of memory", it->name);
    for (int64_t r = 0; r < rows && !rc; r += chunk) {
        int64_t nr = rows - r < chunk ? rows - r : chunk;
        if (other_rows(j, it, r, nr, x, e)) { rc = -1; break; }
        if (it->kind == K_NORM || j->src != SRC_SYNTH)
            for (int64_t i = 0; i < nr * k; i++)
                if (!isfinite(x[i])) { rc = bn_errf(e, "%s: non-finite value in row %lld", it->name, (long long)(r + i / k)); break; }
        if (rc) break;
        encode_rows(j, it->type, x, k, nr, out);
        rc = bn_gguf_w_data(j->w, it->widx, out, rb * (size_t)nr, e);
        /* drop the input pages of these rows now: a 128k x 2560 embedding would
         * otherwise stay mapped in RSS until the whole tensor is done */
        if (j->src == SRC_HF) {
            size_t es = bn_st_dtype_size(it->st->dtype);
            release_pages(it->st->data + (size_t)(r * k) * es, (uint64_t)(nr * k) * es);
        } else if (j->src == SRC_GGUF && it->gt->type != BN_TYPE_I2_S && rows > 0) {
            uint64_t in_rb = it->gt->nbytes / (uint64_t)rows;
            release_pages(it->gt->data + (uint64_t)r * in_rb, (uint64_t)nr * in_rb);
        }
    }
    if (j->src == SRC_HF) bn_st_release(it->st_file, it->st);
    if (j->src == SRC_GGUF) release_pages(it->gt->data, it->gt->nbytes);
    free(x);
    free(out);
    return rc;
}

/* ---- metadata ---------------------------------------------------------------- */

/* "<arch>.<key>" into buf. */
static const char *akey(const job *j, const char *k, char *buf, size_t n) {
    snprintf(buf, n, "%s.%s", j->arch, k);
    return buf;
}

/* The hyper-parameter keys of bitnet.cpp's / llama.cpp's converters, in their order. */
static int write_hparams(job *j, bn_err *e) {
    char b[128];
    bn_gguf_writer *w = j->w;
    if (bn_gguf_w_u32(w, akey(j, "vocab_size", b, sizeof b), j->d.n_vocab, e) ||
        bn_gguf_w_u32(w, akey(j, "context_length", b, sizeof b), j->d.n_ctx, e) ||
        bn_gguf_w_u32(w, akey(j, "embedding_length", b, sizeof b), j->d.n_embd, e) ||
        bn_gguf_w_u32(w, akey(j, "block_count", b, sizeof b), j->d.n_layer, e) ||
        bn_gguf_w_u32(w, akey(j, "feed_forward_length", b, sizeof b), j->d.n_ff, e) ||
        bn_gguf_w_u32(w, akey(j, "rope.dimension_count", b, sizeof b), j->n_rot, e) ||
        bn_gguf_w_u32(w, akey(j, "attention.head_count", b, sizeof b), j->d.n_head, e) ||
        bn_gguf_w_u32(w, akey(j, "attention.head_count_kv", b, sizeof b), j->d.n_head_kv, e) ||
        bn_gguf_w_f32(w, akey(j, "rope.freq_base", b, sizeof b), j->d.rope_base, e) ||
        bn_gguf_w_f32(w, akey(j, "attention.layer_norm_rms_epsilon", b, sizeof b), j->d.eps, e))
        return -1;
    return 0;
}

/* sha256 of a file, read in chunks (no mapping: keeps RSS small). */
static int sha256_file(const char *path, char hex[65], bn_err *e) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return bn_errf(e, "%s: cannot open: %s", path, strerror(errno));
    bn_sha256 s;
    bn_sha256_init(&s);
    static const size_t bufsz = 1 << 20;
    uint8_t *buf = malloc(bufsz);
    if (!buf) { close(fd); return bn_errf(e, "out of memory"); }
    for (;;) {
        ssize_t r = read(fd, buf, bufsz);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) { free(buf); close(fd); return bn_errf(e, "%s: read failed: %s", path, strerror(errno)); }
        if (r == 0) break;
        bn_sha256_update(&s, buf, (size_t)r);
    }
    free(buf);
    close(fd);
    uint8_t d[32];
    bn_sha256_final(&s, d);
    bn_sha256_hex(d, hex);
    return 0;
}

/* Last path component without trailing slashes, into buf. */
static const char *base_name(const char *p, char *buf, size_t n) {
    size_t l = strlen(p);
    while (l > 1 && p[l - 1] == '/') l--;
    size_t s = l;
    while (s > 0 && p[s - 1] != '/') s--;
    snprintf(buf, n, "%.*s", (int)(l - s), p + s);
    return buf;
}

/* Provenance: bn.quantize.{version,source,inputs}; inputs are "sha256  name" strings. */
static int write_provenance(job *j, const char *source, char **files, size_t n_files, bn_err *e) {
    if (bn_gguf_w_str(j->w, "bn.quantize.version", BN_VERSION, e) ||
        bn_gguf_w_str(j->w, "bn.quantize.source", source, e))
        return -1;
    if (!n_files) return 0;
    bn_gguf_str *arr = calloc(n_files, sizeof *arr);
    char (*lines)[BN_GGUF_MAX_NAME * 4] = calloc(n_files, sizeof *lines);
    int rc = 0;
    if (!arr || !lines) rc = bn_errf(e, "out of memory");
    for (size_t i = 0; i < n_files && !rc; i++) {
        char hex[65], bn[200];
        if (sha256_file(files[i], hex, e)) { rc = -1; break; }
        snprintf(lines[i], sizeof lines[i], "%s  %s", hex, base_name(files[i], bn, sizeof bn));
        arr[i].ptr = lines[i];
        arr[i].len = strlen(lines[i]);
    }
    if (!rc) rc = bn_gguf_w_arr_str(j->w, "bn.quantize.inputs", arr, n_files, e);
    free(arr);
    free(lines);
    return rc;
}

/* Declare every planned tensor (after checking its shape against its type). */
static int declare_tensors(job *j, bn_err *e) {
    for (size_t i = 0; i < j->n_items; i++) {
        item *it = &j->items[i];
        if (!(j->src == SRC_GGUF && it->gt->type == it->type) && check_shape(it, e)) return -1;
        int idx = bn_gguf_w_tensor(j->w, it->name, it->type, it->n_dims, it->ne, e);
        if (idx < 0) return -1;
        it->widx = idx;
    }
    return 0;
}

/* Write all tensor data, reporting progress. */
static int write_tensors(job *j, bn_err *e) {
    for (size_t i = 0; i < j->n_items; i++) {
        const item *it = &j->items[i];
        if (emit(j, it, e)) return -1;
        if (j->o->progress) {
            uint64_t nb = 0;
            bn_type_nbytes(it->type, it->ne, it->n_dims, &nb, NULL);
            j->o->progress(j->o->progress_ctx, i, j->n_items, it->name, nb);
        }
    }
    return 0;
}

/* Default arch for an output weight type. */
static const char *default_arch(uint32_t wtype) {
    return wtype == BN_TYPE_TQ1_0 || wtype == BN_TYPE_TQ2_0 ? "bitnet" : "bitnet-b1.58";
}

/* Start the job: options, thread pool, arch. */
static int job_init(job *j, const bn_convert_opts *o, int src, bn_err *e) {
    memset(j, 0, sizeof *j);
    j->o = o;
    j->src = src;
    if (bn_ftype_for(o->wtype) < 0)
        return bn_errf(e, "--type: %s is not a linear weight type (I2_S, TQ2_0, TQ1_0, F16, F32)", bn_type_name(o->wtype));
    if (o->arch && strcmp(o->arch, "bitnet-b1.58") && strcmp(o->arch, "bitnet") && strcmp(o->arch, "bitnet-25"))
        return bn_errf(e, "--arch: unknown architecture '%s' (bitnet-b1.58, bitnet, bitnet-25)", o->arch);
    for (int k = 0; k < 2; k++) {
        int t = k ? o->output_type : o->embd_type;
        if (t >= 0 && t != BN_TYPE_F16 && t != BN_TYPE_F32 && t != BN_TYPE_Q8_0 && t != BN_TYPE_Q6_K)
            return bn_errf(e, "%s: %s is not supported (F16, F32, Q8_0, Q6_K)",
                           k ? "--output-tensor-type" : "--token-embedding-type", bn_type_name((uint32_t)t));
    }
    snprintf(j->arch, sizeof j->arch, "%s", o->arch ? o->arch : default_arch(o->wtype));
    int nt = o->n_threads > 0 ? o->n_threads : 1;
    if (nt > 1 && bn_pool_new(&j->pool, nt, e)) return -1;
    return 0;
}

/* Release everything a job holds; an unfinished writer removes its temp file. */
static void job_free(job *j) {
    if (j->w) bn_gguf_writer_abort(j->w);
    for (size_t i = 0; i < j->n_shards; i++) bn_st_close(j->shards[i]);
    free(j->shards);
    if (j->in) bn_gguf_close(j->in);
    if (j->vocab) bn_gguf_close(j->vocab);
    if (j->pool) bn_pool_free(j->pool);
    free(j->items);
}

/* Check the model hyper-parameters are usable and derive n_rot. */
static int check_dims(job *j, const char *src, bn_err *e) {
    bn_dims *d = &j->d;
    if (!d->n_vocab || !d->n_embd || !d->n_layer || !d->n_head || !d->n_head_kv || !d->n_ff || !d->n_ctx)
        return bn_errf(e, "%s: model dimensions incomplete (vocab %u, embd %u, layers %u, heads %u, kv %u, ffn %u, ctx %u)",
                       src, d->n_vocab, d->n_embd, d->n_layer, d->n_head, d->n_head_kv, d->n_ff, d->n_ctx);
    if (d->n_embd % d->n_head) return bn_errf(e, "%s: embedding length %u not divisible by %u heads", src, d->n_embd, d->n_head);
    if (d->n_head % d->n_head_kv) return bn_errf(e, "%s: %u heads not divisible by %u kv heads", src, d->n_head, d->n_head_kv);
    if (d->n_layer > 1000) return bn_errf(e, "%s: %u layers is too many", src, d->n_layer);
    j->n_rot = d->n_embd / d->n_head;
    if (!(d->eps > 0) || !(d->rope_base > 0)) return bn_errf(e, "%s: rms eps and rope base must be > 0", src);
    return 0;
}

/* Standard BitNet tensor plan (bitnet.cpp order); sizes from j->d. */
static int plan_standard(job *j, bool with_output, bn_err *e) {
    const bn_dims *d = &j->d;
    uint32_t et = j->o->embd_type >= 0 ? (uint32_t)j->o->embd_type : BN_TYPE_F16;
    uint32_t ot = j->o->output_type >= 0 ? (uint32_t)j->o->output_type : et;
    int64_t E = d->n_embd, F = d->n_ff, hd = E / d->n_head, KV = hd * d->n_head_kv;
    if (!add_item(j, "token_embd.weight", K_EMBD, et, 2, E, d->n_vocab, e)) return -1;
    if (!add_item(j, "output_norm.weight", K_NORM, BN_TYPE_F32, 1, E, 1, e)) return -1;
    if (with_output && !add_item(j, "output.weight", K_OUTPUT, ot, 2, E, d->n_vocab, e)) return -1;
    static const struct { const char *n; int kind; int in, out; } L[] = {
        /* in/out: 0 = E, 1 = KV, 2 = F */
        { "attn_norm", K_NORM, 0, -1 }, { "attn_q", K_LINEAR, 0, 0 }, { "attn_k", K_LINEAR, 0, 1 },
        { "attn_v", K_LINEAR, 0, 1 }, { "attn_sub_norm", K_NORM, 0, -1 }, { "attn_output", K_LINEAR, 0, 0 },
        { "ffn_norm", K_NORM, 0, -1 }, { "ffn_gate", K_LINEAR, 0, 2 }, { "ffn_up", K_LINEAR, 0, 2 },
        { "ffn_sub_norm", K_NORM, 2, -1 }, { "ffn_down", K_LINEAR, 2, 0 },
    };
    const int64_t sz[3] = { E, KV, F };
    for (uint32_t l = 0; l < d->n_layer; l++)
        for (size_t t = 0; t < sizeof L / sizeof L[0]; t++) {
            char nm[BN_GGUF_MAX_NAME];
            snprintf(nm, sizeof nm, "blk.%u.%s.weight", l, L[t].n);
            bool lin = L[t].kind == K_LINEAR;
            if (!add_item(j, nm, L[t].kind, lin ? j->o->wtype : BN_TYPE_F32, lin ? 2 : 1, sz[L[t].in],
                          lin ? sz[L[t].out] : 1, e))
                return -1;
        }
    return 0;
}

/* Create the writer and the keys every output starts with. */
static int begin_output(job *j, const char *out, const char *name, bn_err *e) {
    if (bn_gguf_writer_new(&j->w, out, e)) return -1;
    if (bn_gguf_w_str(j->w, "general.architecture", j->arch, e) ||
        bn_gguf_w_str(j->w, "general.name", name, e) ||
        bn_gguf_w_u32(j->w, "general.file_type", (uint32_t)bn_ftype_for(j->o->wtype), e))
        return -1;
    return 0;
}

/* Finish: quantization version, provenance, tensors, rename. */
static int finish_output(job *j, const char *source, char **files, size_t n_files, bn_err *e) {
    if (bn_gguf_w_u32(j->w, "general.quantization_version", 2, e)) return -1;
    if (write_provenance(j, source, files, n_files, e)) return -1;
    if (declare_tensors(j, e) || write_tensors(j, e)) return -1;
    bn_gguf_writer *w = j->w;
    j->w = NULL;
    return bn_gguf_writer_finish(w, e);
}

/* ---- synthetic ----------------------------------------------------------------- */

int bn_convert_synthetic(const bn_dims *dims, const char *out, const bn_convert_opts *o, bn_err *e) {
    job j;
    if (job_init(&j, o, SRC_SYNTH, e)) { job_free(&j); return -1; }
    int rc = -1;
    j.d = *dims;
    if (!o->vocab_path) { bn_errf(e, "--synthetic needs --vocab FILE.gguf (the tokenizer to embed)"); goto done; }
    if (bn_gguf_open(&j.vocab, o->vocab_path, e)) goto done;
    const bn_gguf_kv *tok;
    uint64_t nv;
    if (bn_gguf_get_arr(j.vocab, "tokenizer.ggml.tokens", BN_GGUF_STR, &tok, &nv, e) != 1) {
        if (!e || !e->msg[0] || bn_gguf_find(j.vocab, "tokenizer.ggml.tokens") == NULL)
            bn_errf(e, "%s: tokenizer.ggml.tokens: missing (not a vocab GGUF)", o->vocab_path);
        goto done;
    }
    if (nv == 0 || nv > (1u << 24)) { bn_errf(e, "%s: tokenizer.ggml.tokens: bad length %llu", o->vocab_path, (unsigned long long)nv); goto done; }
    if (j.d.n_vocab && j.d.n_vocab != nv) {
        bn_errf(e, "--dims: vocab=%u but %s has %llu tokens", j.d.n_vocab, o->vocab_path, (unsigned long long)nv);
        goto done;
    }
    j.d.n_vocab = (uint32_t)nv;
    if (check_dims(&j, "--synthetic", e) || plan_standard(&j, false, e)) goto done;
    for (size_t i = 0; i < j.n_items; i++) j.items[i].seed = o->seed * 0x9E3779B97F4A7C15ull ^ name_hash(j.items[i].name);
    char name[64];
    snprintf(name, sizeof name, "synthetic-%s", j.arch);
    if (begin_output(&j, out, o->name ? o->name : name, e) || write_hparams(&j, e)) goto done;
    if (strcmp(j.arch, "bitnet") == 0 && bn_gguf_w_str(j.w, "bitnet.hidden_activation", "relu2", e)) goto done;
    for (uint64_t i = 0; i < bn_gguf_n_kv(j.vocab); i++) {
        const bn_gguf_kv *kv = bn_gguf_kv_at(j.vocab, i);
        if (kv->key.len > 10 && memcmp(kv->key.ptr, "tokenizer.", 10) == 0 && bn_gguf_w_copy_kv(j.w, kv, e)) goto done;
    }
    if (bn_gguf_w_u64(j.w, "bn.quantize.seed", o->seed, e)) goto done;
    char *files[1] = { (char *)o->vocab_path };
    rc = finish_output(&j, "synthetic", files, 1, e);
done:
    job_free(&j);
    return rc;
}

/* ---- GGUF input ---------------------------------------------------------------- */

/* Classify a GGUF tensor name. */
static int classify(const char *name, uint32_t n_dims) {
    if (strcmp(name, "token_embd.weight") == 0) return K_EMBD;
    if (strcmp(name, "output.weight") == 0) return K_OUTPUT;
    const char *lin[] = { ".attn_q.weight", ".attn_k.weight", ".attn_v.weight", ".attn_output.weight",
                          ".ffn_gate.weight", ".ffn_up.weight", ".ffn_down.weight" };
    if (strncmp(name, "blk.", 4) == 0) {
        for (size_t i = 0; i < sizeof lin / sizeof lin[0]; i++) {
            size_t l = strlen(name), s = strlen(lin[i]);
            if (l > s && strcmp(name + l - s, lin[i]) == 0) return K_LINEAR;
        }
    }
    if (n_dims == 1 && strstr(name, "norm")) return K_NORM;
    return K_OTHER;
}

/* Copy one KV, renaming an "<old>." prefix to the new arch. */
static int copy_kv_arch(job *j, const bn_gguf_kv *kv, const char *old, bn_err *e) {
    size_t ol = strlen(old);
    if (strcmp(old, j->arch) == 0 || kv->key.len <= ol || memcmp(kv->key.ptr, old, ol) || kv->key.ptr[ol] != '.')
        return bn_gguf_w_copy_kv(j->w, kv, e);
    char key[256];
    snprintf(key, sizeof key, "%s%.*s", j->arch, (int)(kv->key.len - ol), kv->key.ptr + ol);
    switch (kv->type) {
    case BN_GGUF_U8: case BN_GGUF_U16: case BN_GGUF_U32: return bn_gguf_w_u32(j->w, key, (uint32_t)kv->v.u, e);
    case BN_GGUF_U64: return bn_gguf_w_u64(j->w, key, kv->v.u, e);
    case BN_GGUF_I8: case BN_GGUF_I16: case BN_GGUF_I32: return bn_gguf_w_i32(j->w, key, (int32_t)kv->v.i, e);
    case BN_GGUF_F32: case BN_GGUF_F64: return bn_gguf_w_f32(j->w, key, (float)kv->v.f, e);
    case BN_GGUF_BOOL: return bn_gguf_w_bool(j->w, key, kv->v.u != 0, e);
    case BN_GGUF_STR: return bn_gguf_w_str_n(j->w, key, kv->v.s.ptr, (size_t)kv->v.s.len, e);
    default: return bn_errf(e, "%.*s: cannot rename an array key to arch %s", (int)kv->key.len, kv->key.ptr, j->arch);
    }
}

/* GGUF -> GGUF: decode every weight to its exact values and re-encode it, keeping the metadata. */
int bn_convert_gguf(const char *in, const char *out, const bn_convert_opts *o, bn_err *e) {
    job j;
    if (job_init(&j, o, SRC_GGUF, e)) { job_free(&j); return -1; }
    int rc = -1;
    if (bn_gguf_open(&j.in, in, e)) goto done;
    char old[32];
    bn_gguf_arch(j.in, old, sizeof old);
    if (strcmp(old, "bitnet-b1.58") && strcmp(old, "bitnet") && strcmp(old, "bitnet-25")) {
        bn_errf(e, "%s: general.architecture: '%s' is not a BitNet arch (bitnet-b1.58, bitnet, bitnet-25)", in, old);
        goto done;
    }
    if (!o->arch) snprintf(j.arch, sizeof j.arch, "%s", old);
    for (uint64_t i = 0; i < bn_gguf_n_tensors(j.in); i++) {
        const bn_gguf_tensor *t = bn_gguf_tensor_at(j.in, i);
        int kind = classify(t->name, t->n_dims);
        uint32_t type = t->type;
        if (kind == K_LINEAR) type = o->wtype;
        else if (kind == K_EMBD && o->embd_type >= 0) type = (uint32_t)o->embd_type;
        else if (kind == K_OUTPUT && (o->output_type >= 0 || o->embd_type >= 0))
            type = (uint32_t)(o->output_type >= 0 ? o->output_type : o->embd_type);
        else if (kind == K_NORM) type = BN_TYPE_F32;
        if (t->type == BN_TYPE_TL1 || t->type == BN_TYPE_TL2) {
            bn_errf(e, "%s: %s: TL1/TL2 input cannot be decoded without its kernel config", in, t->name);
            goto done;
        }
        if (kind == K_LINEAR && t->n_dims != 2) { bn_errf(e, "%s: %s: linear weight is not 2-D", in, t->name); goto done; }
        item *it = add_item(&j, t->name, kind, type, t->n_dims, t->ne[0], t->ne[1], e);
        if (!it) goto done;
        memcpy(it->ne, t->ne, sizeof it->ne);
        it->gt = t;
    }
    char gname[128] = "";
    bn_gguf_str gs;
    if (bn_gguf_get_str(j.in, "general.name", &gs, NULL) == 1)
        snprintf(gname, sizeof gname, "%.*s", (int)(gs.len < 127 ? gs.len : 127), gs.ptr);
    if (begin_output(&j, out, o->name ? o->name : gname, e)) goto done;
    /* begin_output wrote name and file_type; copy the rest in order */
    bool act = false;
    for (uint64_t i = 0; i < bn_gguf_n_kv(j.in); i++) {
        const bn_gguf_kv *kv = bn_gguf_kv_at(j.in, i);
        if (bn_gguf_str_eq(kv->key, "general.architecture") || bn_gguf_str_eq(kv->key, "general.file_type") ||
            bn_gguf_str_eq(kv->key, "general.quantization_version") || bn_gguf_str_eq(kv->key, "general.alignment") ||
            (kv->key.len >= 12 && memcmp(kv->key.ptr, "bn.quantize.", 12) == 0))
            continue;
        if (bn_gguf_str_eq(kv->key, "general.name")) continue; /* written by begin_output */
        char hk[64];
        snprintf(hk, sizeof hk, "%s.hidden_activation", old);
        if (bn_gguf_str_eq(kv->key, hk)) act = true;
        if (copy_kv_arch(&j, kv, old, e)) goto done;
    }
    /* bitnet-b1.58 implies relu^2; upstream "bitnet" needs the key to say so */
    if (!act && strcmp(j.arch, "bitnet") == 0 && strcmp(old, "bitnet") != 0 &&
        bn_gguf_w_str(j.w, "bitnet.hidden_activation", "relu2", e))
        goto done;
    char bn[256];
    char *files[1] = { (char *)in };
    rc = finish_output(&j, base_name(in, bn, sizeof bn), files, 1, e);
done:
    job_free(&j);
    return rc;
}

/* ---- Hugging Face checkpoints ------------------------------------------------------ */

#define CFG_MAX ((size_t)64 << 20)
#define TOKJSON_MAX ((size_t)256 << 20)

/* path = dir/name into buf; false if it does not fit. */
static bool join(char *buf, size_t n, const char *dir, const char *name) {
    return (size_t)snprintf(buf, n, "%s/%s", dir, name) < n;
}

/* Regular file test for the optional HF files. */
static bool file_exists(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* A list of input files (for provenance hashes). */
typedef struct flist { char **v; size_t n, cap; } flist;

/* Remember an input file (its sha256 goes into the provenance keys). */
static int flist_add(flist *l, const char *p, bn_err *e) {
    if (l->n == l->cap) {
        size_t nc = l->cap ? 2 * l->cap : 16;
        char **q = realloc(l->v, nc * sizeof *q);
        if (!q) return bn_errf(e, "out of memory");
        l->v = q;
        l->cap = nc;
    }
    if (!(l->v[l->n] = strdup(p))) return bn_errf(e, "out of memory");
    l->n++;
    return 0;
}

/* Free the input file list. */
static void flist_free(flist *l) {
    for (size_t i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
}

/* Integer field of config.json; 0 absent, 1 found, -1 bad. */
static int cfg_u32(const bn_json *cfg, const char *key, uint32_t *out, const char *path, bn_err *e) {
    const bn_json *v = bn_json_get(cfg, key);
    if (!v || bn_json_type_of(v) == BN_JSON_NULL) return 0;
    uint64_t x;
    if (!bn_json_u64(v, &x) || x > UINT32_MAX) return bn_errf(e, "%s: %s: not a non-negative integer", path, key);
    *out = (uint32_t)x;
    return 1;
}

/* Float field of config.json; 0 absent, 1 found, -1 bad. */
static int cfg_f32(const bn_json *cfg, const char *key, float *out, const char *path, bn_err *e) {
    const bn_json *v = bn_json_get(cfg, key);
    if (!v || bn_json_type_of(v) == BN_JSON_NULL) return 0;
    double x;
    if (!bn_json_num(v, &x)) return bn_errf(e, "%s: %s: not a number", path, key);
    *out = (float)x;
    return 1;
}

/* Open every safetensors shard: from the index's weight_map, or
 * model.safetensors, or all *.safetensors in the directory (sorted). */
static int open_shards(job *j, const char *dir, flist *files, bn_err *e) {
    char p[4096];
    flist names = { 0 };
    int rc = -1;
    bn_json_doc *idx = NULL;
    if (!join(p, sizeof p, dir, "model.safetensors.index.json")) return bn_errf(e, "%s: path too long", dir);
    if (file_exists(p)) {
        if (bn_json_parse_file(&idx, p, CFG_MAX, e) || flist_add(files, p, e)) goto out;
        const bn_json *wm = bn_json_get(bn_json_root(idx), "weight_map");
        if (bn_json_type_of(wm) != BN_JSON_OBJ) { bn_errf(e, "%s: weight_map: missing or not an object", p); goto out; }
        for (size_t i = 0; i < bn_json_len(wm); i++) {
            const char *f = bn_json_str(bn_json_at(wm, i), NULL);
            if (!f || !*f || strchr(f, '/')) { bn_errf(e, "%s: weight_map: bad file name", p); goto out; }
            bool seen = false;
            for (size_t k = 0; k < names.n && !seen; k++) seen = strcmp(names.v[k], f) == 0;
            if (!seen && flist_add(&names, f, e)) goto out;
        }
        if (!names.n) { bn_errf(e, "%s: weight_map: empty", p); goto out; }
    } else if (join(p, sizeof p, dir, "model.safetensors") && file_exists(p)) {
        if (flist_add(&names, "model.safetensors", e)) goto out;
    } else {
        DIR *dd = opendir(dir);
        if (!dd) { bn_errf(e, "%s: cannot open directory: %s", dir, strerror(errno)); goto out; }
        struct dirent *de;
        while ((de = readdir(dd))) {
            size_t l = strlen(de->d_name);
            if (l <= 12 || strcmp(de->d_name + l - 12, ".safetensors")) continue;
            if (flist_add(&names, de->d_name, e)) { closedir(dd); goto out; }
        }
        closedir(dd);
        for (size_t a = 0; a < names.n; a++) /* few shards: simple sort */
            for (size_t b = a + 1; b < names.n; b++)
                if (strcmp(names.v[b], names.v[a]) < 0) { char *t = names.v[a]; names.v[a] = names.v[b]; names.v[b] = t; }
        if (names.n == 0) { bn_errf(e, "%s: no *.safetensors files (model weights missing)", dir); goto out; }
    }
    j->shards = calloc(names.n, sizeof *j->shards);
    if (!j->shards) { bn_errf(e, "out of memory"); goto out; }
    for (size_t i = 0; i < names.n; i++) {
        if (!join(p, sizeof p, dir, names.v[i])) { bn_errf(e, "%s: path too long", dir); goto out; }
        if (bn_st_open(&j->shards[j->n_shards], p, e)) goto out;
        j->n_shards++;
        if (flist_add(files, p, e)) goto out;
    }
    rc = 0;
out:
    flist_free(&names);
    bn_json_free(idx);
    return rc;
}

/* Find an HF tensor in any shard. */
static const bn_st_tensor *hf_find(const job *j, const char *name, const bn_st **file) {
    for (size_t i = 0; i < j->n_shards; i++) {
        const bn_st_tensor *t = bn_st_find(j->shards[i], name);
        if (t) { if (file) *file = j->shards[i]; return t; }
    }
    return NULL;
}

/* HF name of a planned GGUF tensor. */
static void hf_name(const char *gg, char *out, size_t n) {
    static const struct { const char *g, *h; } M[] = {
        { "attn_norm", "input_layernorm" }, { "attn_q", "self_attn.q_proj" }, { "attn_k", "self_attn.k_proj" },
        { "attn_v", "self_attn.v_proj" }, { "attn_sub_norm", "self_attn.attn_sub_norm" },
        { "attn_output", "self_attn.o_proj" }, { "ffn_norm", "post_attention_layernorm" },
        { "ffn_gate", "mlp.gate_proj" }, { "ffn_up", "mlp.up_proj" }, { "ffn_sub_norm", "mlp.ffn_sub_norm" },
        { "ffn_down", "mlp.down_proj" },
    };
    if (strcmp(gg, "token_embd.weight") == 0) { snprintf(out, n, "model.embed_tokens.weight"); return; }
    if (strcmp(gg, "output_norm.weight") == 0) { snprintf(out, n, "model.norm.weight"); return; }
    if (strcmp(gg, "output.weight") == 0) { snprintf(out, n, "lm_head.weight"); return; }
    unsigned l;
    char part[64];
    if (sscanf(gg, "blk.%u.%63[^.].weight", &l, part) == 2)
        for (size_t i = 0; i < sizeof M / sizeof M[0]; i++)
            if (strcmp(part, M[i].g) == 0) { snprintf(out, n, "model.layers.%u.%s.weight", l, M[i].h); return; }
    snprintf(out, n, "%s", gg);
}

/* Attach the safetensors source of every planned tensor and check dtype and shape. */
static int hf_bind(job *j, bn_err *e) {
    size_t used = 0;
    for (size_t i = 0; i < j->n_items; i++) {
        item *it = &j->items[i];
        char hn[160];
        hf_name(it->name, hn, sizeof hn);
        const bn_st *f;
        const bn_st_tensor *t = hf_find(j, hn, &f);
        if (!t) return bn_errf(e, "%s: missing tensor %s (for %s)", j->dir, hn, it->name);
        it->st = t;
        it->st_file = f;
        used++;
        /* HF shape is [out, in] = GGUF ne reversed */
        int64_t out = it->ne[1], in = it->ne[0];
        bool packed = it->kind == K_LINEAR && t->dtype == BN_ST_U8;
        if (!packed && t->dtype != BN_ST_BF16 && t->dtype != BN_ST_F16 && t->dtype != BN_ST_F32)
            return bn_errf(e, "%s: %s: unsupported dtype %s (BF16, F16, F32%s)", bn_st_path(f), hn,
                           bn_st_dtype_name(t->dtype), it->kind == K_LINEAR ? ", or U8 packed ternary" : "");
        if (packed) {
            if (out % 4) return bn_errf(e, "%s: %s: packed weights need out %% 4 == 0", bn_st_path(f), hn);
            out /= 4;
        }
        bool ok = it->n_dims == 1 ? (t->n_dims == 1 && t->shape[0] == in)
                                  : (t->n_dims == 2 && t->shape[0] == out && t->shape[1] == in);
        if (!ok) {
            char got[96] = "";
            for (uint32_t d = 0; d < t->n_dims; d++)
                snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", d ? ", " : "", (long long)t->shape[d]);
            if (it->n_dims == 1)
                return bn_errf(e, "%s: %s: shape [%s] does not match config.json (expected [%lld])", bn_st_path(f), hn, got,
                               (long long)in);
            return bn_errf(e, "%s: %s: shape [%s] does not match config.json (expected [%lld, %lld]%s)", bn_st_path(f), hn,
                           got, (long long)out, (long long)in, packed ? ", packed U8" : "");
        }
        if (packed) {
            char sn[200];
            snprintf(sn, sizeof sn, "%.*s_scale", (int)strlen(hn), hn);
            const bn_st *sf;
            const bn_st_tensor *ts = hf_find(j, sn, &sf);
            if (!ts) return bn_errf(e, "%s: missing tensor %s (packed weight %s needs it)", j->dir, sn, hn);
            if (ts->n_elem != 1 || (ts->dtype != BN_ST_BF16 && ts->dtype != BN_ST_F16 && ts->dtype != BN_ST_F32))
                return bn_errf(e, "%s: %s: must be one BF16/F16/F32 value", bn_st_path(sf), sn);
            it->st_scale = ts;
            used++;
        }
    }
    /* anything left over is a tensor we do not understand (rotary inv_freq
     * buffers and a tied lm_head copy are ignored) */
    for (size_t s = 0; s < j->n_shards; s++)
        for (size_t i = 0; i < bn_st_n_tensors(j->shards[s]); i++) {
            const bn_st_tensor *t = bn_st_tensor_at(j->shards[s], i);
            bool found = false;
            for (size_t k = 0; k < j->n_items && !found; k++)
                found = j->items[k].st == t || j->items[k].st_scale == t;
            size_t l = strlen(t->name);
            if (!found && !(l > 9 && strcmp(t->name + l - 9, ".inv_freq") == 0) && strcmp(t->name, "lm_head.weight"))
                return bn_errf(e, "%s: %s: unexpected tensor (not part of a BitNet model)", bn_st_path(j->shards[s]), t->name);
        }
    (void)used;
    return 0;
}

/* Id of the token whose text is s (linear scan: called a few times), or -1. */
static int32_t find_token(const bn_vocab *v, const char *s, size_t l) {
    for (uint32_t i = 0; i < v->n_tokens; i++)
        if (v->text_len[i] == l && memcmp(v->text_blob + v->text_off[i], s, l) == 0) return (int32_t)i;
    return -1;
}

/* Special ids, first found wins: config.json *_token_id, generation_config.json
 * *_token_id (lists: the first), then the token strings of tokenizer_config.json
 * / special_tokens_map.json ("<s>" or {"content": "<s>"}) looked up in the
 * vocabulary; otherwise what the tokenizer itself says. add_bos/add_eos from
 * tokenizer_config.json. */
static void hf_special(bn_vocab *v, const bn_json *const cfgs[2], const bn_json *const maps[2], const bn_json *tcfg) {
    static const char *const ids[3] = { "bos_token_id", "eos_token_id", "pad_token_id" };
    static const char *const strs[4] = { "bos_token", "eos_token", "pad_token", "unk_token" };
    int32_t *dst[4] = { &v->bos, &v->eos, &v->pad, &v->unk };
    for (int k = 0; k < 4; k++) {
        bool done = false;
        for (int c = 0; c < 2 && !done && k < 3; c++) {
            int64_t x;
            const bn_json *val = bn_json_get(cfgs[c], ids[k]);
            if (bn_json_type_of(val) == BN_JSON_ARR) val = bn_json_at(val, 0);
            if (bn_json_i64(val, &x) && x >= 0 && x < (int64_t)v->n_tokens) { *dst[k] = (int32_t)x; done = true; }
        }
        for (int m = 0; m < 2 && !done; m++) {
            const bn_json *val = bn_json_get(maps[m], strs[k]);
            if (bn_json_type_of(val) == BN_JSON_OBJ) val = bn_json_get(val, "content");
            size_t l;
            const char *t = bn_json_str(val, &l);
            int32_t id = t ? find_token(v, t, l) : -1;
            if (id >= 0) { *dst[k] = id; done = true; }
        }
    }
    bool b;
    if (bn_json_bool(bn_json_get(tcfg, "add_bos_token"), &b)) v->add_bos = b;
    if (bn_json_bool(bn_json_get(tcfg, "add_eos_token"), &b)) v->add_eos = b;
}

/* tokenizer.json (byte-level BPE) -> bn_vocab tokens + merges strings. */
static int load_tokenizer_json(bn_vocab *v, const char *path, uint32_t n_vocab, bn_json_doc **doc_out,
                               const bn_json **merges, bn_err *e) {
    bn_json_doc *doc;
    if (bn_json_parse_file(&doc, path, TOKJSON_MAX, e)) return -1;
    *doc_out = doc;
    const bn_json *model = bn_json_get(bn_json_root(doc), "model");
    const char *type = bn_json_str(bn_json_get(model, "type"), NULL);
    if (!type || strcmp(type, "BPE")) return bn_errf(e, "%s: model.type: only BPE tokenizers are supported", path);
    const bn_json *vocab = bn_json_get(model, "vocab");
    *merges = bn_json_get(model, "merges");
    if (bn_json_type_of(vocab) != BN_JSON_OBJ) return bn_errf(e, "%s: model.vocab: missing or not an object", path);
    if (bn_json_type_of(*merges) != BN_JSON_ARR) return bn_errf(e, "%s: model.merges: missing or not an array", path);
    const bn_json *added = bn_json_get(bn_json_root(doc), "added_tokens");
    uint32_t n = n_vocab;
    for (int pass = 0; pass < 2; pass++) { /* highest id decides the size if config is smaller */
        const bn_json *src = pass ? added : vocab;
        for (size_t i = 0; i < bn_json_len(src); i++) {
            int64_t id;
            const bn_json *x = pass ? bn_json_get(bn_json_at(src, i), "id") : bn_json_at(src, i);
            if (!bn_json_i64(x, &id) || id < 0 || id >= (1 << 24)) return bn_errf(e, "%s: token id out of range", path);
            if ((uint32_t)id >= n) n = (uint32_t)id + 1;
        }
    }
    if (bn_vocab_init(v, BN_VOCAB_BPE, n, e)) return -1;
    uint8_t *set = calloc(n, 1);
    if (!set) return bn_errf(e, "out of memory");
    int rc = 0;
    for (size_t i = 0; i < bn_json_len(vocab) && !rc; i++) {
        size_t kl;
        const char *k = bn_json_key_at(vocab, i, &kl);
        int64_t id;
        bn_json_i64(bn_json_at(vocab, i), &id);
        if (set[id]) rc = bn_errf(e, "%s: model.vocab: id %lld used twice", path, (long long)id);
        else rc = bn_vocab_set_token(v, (uint32_t)id, k, kl, 0.0f, BN_TOK_NORMAL, e);
        set[id] = 1;
    }
    for (size_t i = 0; i < bn_json_len(added) && !rc; i++) {
        const bn_json *a = bn_json_at(added, i);
        int64_t id;
        size_t cl;
        bn_json_i64(bn_json_get(a, "id"), &id);
        const char *c = bn_json_str(bn_json_get(a, "content"), &cl);
        bool special = false;
        bn_json_bool(bn_json_get(a, "special"), &special);
        if (!c) { rc = bn_errf(e, "%s: added_tokens[%zu]: content missing", path, i); break; }
        /* score -1000 for control tokens, as in the official 2B-4T GGUF */
        rc = bn_vocab_set_token(v, (uint32_t)id, c, cl, special ? -1000.0f : 0.0f,
                                special ? BN_TOK_CONTROL : BN_TOK_USER_DEFINED, e);
        set[id] = 1;
    }
    for (uint32_t id = 0; id < n && !rc; id++) /* llama.cpp pads holes with [PAD<id>] */
        if (!set[id]) {
            char pad[32];
            int l = snprintf(pad, sizeof pad, "[PAD%u]", id);
            rc = bn_vocab_set_token(v, id, pad, (size_t)l, 0.0f, BN_TOK_USER_DEFINED, e);
        }
    free(set);
    return rc;
}

/* Write tokenizer.* keys from a vocabulary (and merges for BPE).
 * add_bos/add_eos are written for SentencePiece always (the fixtures' keys) and
 * for BPE only when tokenizer_config.json has them (has_bos / has_eos), as the
 * official 2B-4T file, which has add_bos_token but no add_eos_token. */
static int write_vocab(job *j, const bn_vocab *v, const bn_json *merges, const char *chat, bool has_bos,
                       bool has_eos, bn_err *e) {
    bn_gguf_writer *w = j->w;
    bool spm = v->type == BN_VOCAB_SPM;
    if (bn_gguf_w_str(w, "tokenizer.ggml.model", spm ? "llama" : "gpt2", e)) return -1;
    if (spm && bn_gguf_w_str(w, "tokenizer.ggml.pre", "default", e)) return -1;
    uint32_t n = v->n_tokens;
    bn_gguf_str *tok = calloc(n, sizeof *tok);
    int32_t *types = calloc(n, sizeof *types);
    int rc = -1;
    if (!tok || !types) { bn_errf(e, "out of memory"); goto out; }
    for (uint32_t i = 0; i < n; i++) {
        tok[i].ptr = v->text_blob + v->text_off[i];
        tok[i].len = v->text_len[i];
        types[i] = v->types[i];
    }
    if (bn_gguf_w_arr_str(w, "tokenizer.ggml.tokens", tok, n, e) ||
        bn_gguf_w_arr_f32(w, "tokenizer.ggml.scores", v->scores, n, e) ||
        bn_gguf_w_arr_i32(w, "tokenizer.ggml.token_type", types, n, e))
        goto out;
    if (merges) {
        size_t nm = bn_json_len(merges);
        bn_gguf_str *ms = calloc(nm ? nm : 1, sizeof *ms);
        char **own = calloc(nm ? nm : 1, sizeof *own);
        int mrc = 0;
        if (!ms || !own) mrc = bn_errf(e, "out of memory");
        for (size_t i = 0; i < nm && !mrc; i++) {
            const bn_json *m = bn_json_at(merges, i);
            size_t l;
            const char *s = bn_json_str(m, &l);
            if (s) { ms[i].ptr = s; ms[i].len = l; continue; }
            size_t l0, l1;
            const char *a = bn_json_str(bn_json_at(m, 0), &l0), *b = bn_json_str(bn_json_at(m, 1), &l1);
            if (bn_json_len(m) != 2 || !a || !b) { mrc = bn_errf(e, "tokenizer.json: merges[%zu]: not \"a b\" or [a, b]", i); break; }
            if (!(own[i] = malloc(l0 + l1 + 2))) { mrc = bn_errf(e, "out of memory"); break; }
            memcpy(own[i], a, l0);
            own[i][l0] = ' ';
            memcpy(own[i] + l0 + 1, b, l1);
            ms[i].ptr = own[i];
            ms[i].len = l0 + l1 + 1;
        }
        if (!mrc) mrc = bn_gguf_w_arr_str(w, "tokenizer.ggml.merges", ms, nm, e);
        for (size_t i = 0; own && i < nm; i++) free(own[i]);
        free(own);
        free(ms);
        if (mrc) goto out;
    }
    if ((v->bos >= 0 && bn_gguf_w_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)v->bos, e)) ||
        (v->eos >= 0 && bn_gguf_w_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)v->eos, e)) ||
        (v->unk >= 0 && bn_gguf_w_u32(w, "tokenizer.ggml.unknown_token_id", (uint32_t)v->unk, e)) ||
        (v->pad >= 0 && bn_gguf_w_u32(w, "tokenizer.ggml.padding_token_id", (uint32_t)v->pad, e)) ||
        ((spm || has_bos) && bn_gguf_w_bool(w, "tokenizer.ggml.add_bos_token", v->add_bos, e)) ||
        ((spm || has_eos) && bn_gguf_w_bool(w, "tokenizer.ggml.add_eos_token", v->add_eos, e)) ||
        (spm && !v->add_space_prefix && bn_gguf_w_bool(w, "tokenizer.ggml.add_space_prefix", false, e)) ||
        (chat && bn_gguf_w_str(w, "tokenizer.chat_template", chat, e)))
        goto out;
    rc = 0;
out:
    free(tok);
    free(types);
    return rc;
}

/* HF directory -> GGUF: config, shards, tokenizer, plan, then stream the tensors. */
int bn_convert_hf(const char *dir, const char *out, const bn_convert_opts *o, bn_err *e) {
    job j;
    flist files = { 0 };
    bn_json_doc *cfgd = NULL, *tcfgd = NULL, *tokd = NULL, *gcfgd = NULL, *smapd = NULL;
    bn_vocab voc;
    memset(&voc, 0, sizeof voc);
    int rc = -1;
    if (job_init(&j, o, SRC_HF, e)) goto done;
    j.dir = dir;
    char p[4096];
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) { bn_errf(e, "%s: not a directory", dir); goto done; }
    if (!join(p, sizeof p, dir, "config.json")) { bn_errf(e, "%s: path too long", dir); goto done; }
    if (!file_exists(p)) { bn_errf(e, "%s: config.json: missing (not a Hugging Face model directory)", dir); goto done; }
    if (bn_json_parse_file(&cfgd, p, CFG_MAX, e) || flist_add(&files, p, e)) goto done;
    const bn_json *cfg = bn_json_root(cfgd);
    if (bn_json_type_of(cfg) != BN_JSON_OBJ) { bn_errf(e, "%s: not a JSON object", p); goto done; }
    const char *mt = bn_json_str(bn_json_get(cfg, "model_type"), NULL);
    const char *ar = bn_json_str(bn_json_at(bn_json_get(cfg, "architectures"), 0), NULL);
    if (!(mt && strcmp(mt, "bitnet") == 0) && !(ar && strcasecmp(ar, "BitNetForCausalLM") == 0)) {
        bn_errf(e, "%s: model_type: '%s' is not a BitNet model (model_type \"bitnet\")", p, mt ? mt : "(missing)");
        goto done;
    }
    bn_dims *d = &j.d;
    d->rope_base = 500000.0f; /* BitNetConfig defaults */
    d->eps = 1e-5f;
    uint32_t head_dim = 0;
    if (cfg_u32(cfg, "vocab_size", &d->n_vocab, p, e) < 0 || cfg_u32(cfg, "hidden_size", &d->n_embd, p, e) < 0 ||
        cfg_u32(cfg, "intermediate_size", &d->n_ff, p, e) < 0 ||
        cfg_u32(cfg, "num_hidden_layers", &d->n_layer, p, e) < 0 ||
        cfg_u32(cfg, "num_attention_heads", &d->n_head, p, e) < 0 ||
        cfg_u32(cfg, "max_position_embeddings", &d->n_ctx, p, e) < 0 || cfg_u32(cfg, "head_dim", &head_dim, p, e) < 0 ||
        cfg_f32(cfg, "rms_norm_eps", &d->eps, p, e) < 0 || cfg_f32(cfg, "rope_theta", &d->rope_base, p, e) < 0)
        goto done;
    int kvr = cfg_u32(cfg, "num_key_value_heads", &d->n_head_kv, p, e);
    if (kvr < 0) goto done;
    if (kvr == 0) d->n_head_kv = d->n_head;
    if (check_dims(&j, p, e)) goto done;
    if (head_dim && head_dim != j.n_rot) {
        bn_errf(e, "%s: head_dim %u != hidden_size / num_attention_heads (%u)", p, head_dim, j.n_rot);
        goto done;
    }
    const bn_json *rs = bn_json_get(cfg, "rope_scaling");
    if (rs && bn_json_type_of(rs) != BN_JSON_NULL) { bn_errf(e, "%s: rope_scaling: not supported (must be null)", p); goto done; }
    const char *act = bn_json_str(bn_json_get(cfg, "hidden_act"), NULL);
    if (!act) act = "relu2";
    if (strcmp(act, "relu2") && strcmp(act, "silu")) { bn_errf(e, "%s: hidden_act: '%s' not supported (relu2, silu)", p, act); goto done; }
    if (!o->arch && strcmp(act, "silu") == 0) snprintf(j.arch, sizeof j.arch, "bitnet");
    if (strcmp(act, "silu") == 0 && strcmp(j.arch, "bitnet")) {
        bn_errf(e, "%s: hidden_act silu needs --arch bitnet (%s uses relu^2)", p, j.arch);
        goto done;
    }
    const bn_json *qc = bn_json_get(cfg, "quantization_config");
    const char *lc = bn_json_str(bn_json_get(qc, "linear_class"), NULL);
    if (lc && strcasecmp(lc, "bitlinear") == 0) j.scale_divides = true;
    else if (lc && strcasecmp(lc, "autobitlinear")) { bn_errf(e, "%s: quantization_config.linear_class: '%s' unknown", p, lc); goto done; }
    if (open_shards(&j, dir, &files, e)) goto done;
    bool tied = false; /* BitNetConfig default; no lm_head tensor means tied anyway */
    bn_json_bool(bn_json_get(cfg, "tie_word_embeddings"), &tied);
    bool with_output = hf_find(&j, "lm_head.weight", NULL) != NULL && !tied;
    if (plan_standard(&j, with_output, e) || hf_bind(&j, e)) goto done;
    for (size_t i = 0; i < j.n_items; i++)
        if (j.items[i].kind == K_LINEAR && j.items[i].st->dtype == BN_ST_U8 && !lc) {
            bn_errf(e, "%s: packed U8 weights but no quantization_config.linear_class in config.json", dir);
            goto done;
        }
    /* tokenizer */
    const bn_json *merges = NULL;
    if (join(p, sizeof p, dir, "tokenizer.model") && file_exists(p)) {
        if (bn_spm_model_load_file(&voc, p, e) || flist_add(&files, p, e)) goto done;
    } else if (join(p, sizeof p, dir, "tokenizer.json") && file_exists(p)) {
        if (load_tokenizer_json(&voc, p, d->n_vocab, &tokd, &merges, e) || flist_add(&files, p, e)) goto done;
    } else {
        bn_errf(e, "%s: no tokenizer (tokenizer.model or tokenizer.json)", dir);
        goto done;
    }
    if (voc.n_tokens != d->n_vocab) {
        bn_errf(e, "%s: tokenizer has %u tokens, config.json vocab_size is %u", dir, voc.n_tokens, d->n_vocab);
        goto done;
    }
    if (join(p, sizeof p, dir, "tokenizer_config.json") && file_exists(p)) {
        if (bn_json_parse_file(&tcfgd, p, CFG_MAX, e) || flist_add(&files, p, e)) goto done;
    }
    const bn_json *tcfg = bn_json_root(tcfgd);
    if (join(p, sizeof p, dir, "generation_config.json") && file_exists(p)) {
        if (bn_json_parse_file(&gcfgd, p, CFG_MAX, e) || flist_add(&files, p, e)) goto done;
    }
    if (join(p, sizeof p, dir, "special_tokens_map.json") && file_exists(p)) {
        if (bn_json_parse_file(&smapd, p, CFG_MAX, e) || flist_add(&files, p, e)) goto done;
    }
    const bn_json *cfgs[2] = { cfg, bn_json_root(gcfgd) }, *maps[2] = { tcfg, bn_json_root(smapd) };
    hf_special(&voc, cfgs, maps, tcfg);
    const char *chat = bn_json_str(bn_json_get(tcfg, "chat_template"), NULL);
    char name[128], bnm[128];
    const char *nop = bn_json_str(bn_json_get(cfg, "_name_or_path"), NULL);
    snprintf(name, sizeof name, "%s", o->name ? o->name : base_name(nop && *nop ? nop : dir, bnm, sizeof bnm));
    if (begin_output(&j, out, name, e) || write_hparams(&j, e)) goto done;
    if (strcmp(j.arch, "bitnet") == 0 && strcmp(act, "relu2") == 0 &&
        bn_gguf_w_str(j.w, "bitnet.hidden_activation", "relu2", e))
        goto done;
    bool has_bos = bn_json_get(tcfg, "add_bos_token") != NULL, has_eos = bn_json_get(tcfg, "add_eos_token") != NULL;
    if (write_vocab(&j, &voc, merges, chat, has_bos, has_eos, e)) goto done;
    /* the writer has copied the vocabulary: free it before the tensors (tens of MB for 128k tokens) */
    bn_vocab_free(&voc);
    bn_json_free(tokd);
    tokd = NULL;
    rc = finish_output(&j, base_name(dir, bnm, sizeof bnm), files.v, files.n, e);
done:
    job_free(&j);
    bn_vocab_free(&voc);
    bn_json_free(cfgd);
    bn_json_free(tcfgd);
    bn_json_free(tokd);
    bn_json_free(gcfgd);
    bn_json_free(smapd);
    flist_free(&files);
    return rc;
}
