/* gguf_read.c - GGUF v2/v3 reader: type traits, the bounds-checked parser
 * (mmap or memory buffer), metadata getters and array iterators.
 *
 * Design: every read goes through a cursor that knows the file size, so no
 * pointer is ever formed past the end of the buffer. Counts from the header
 * are only trusted after they have been checked against the bytes that are
 * left, and arrays of entries grow as entries are actually parsed, so a file
 * that lies about its counts cannot make us allocate more than a small
 * multiple of its own size. */
#include "gguf.h"

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

/* ---- type traits ---------------------------------------------------------- */

/* Block sizes and bytes per block as in llama.cpp's ggml.c type_traits
 * (UP-2502), bitnet.cpp's fork for 36..39 (with the whole-tensor sizes of
 * bitnet-format.md §1.2 expressed as blck/type_size/trailer), and upstream's
 * MXFP4 (32 elements in 17 bytes). TL2's size is not a per-block formula and
 * is special-cased in bn_type_nbytes(); its traits are nominal. */
static const bn_type_traits type_table[] = {
    [BN_TYPE_F32] = {"f32", 1, 4, 0, false},
    [BN_TYPE_F16] = {"f16", 1, 2, 0, false},
    [BN_TYPE_Q4_0] = {"q4_0", 32, 18, 0, true},
    [BN_TYPE_Q4_1] = {"q4_1", 32, 20, 0, true},
    [BN_TYPE_Q5_0] = {"q5_0", 32, 22, 0, true},
    [BN_TYPE_Q5_1] = {"q5_1", 32, 24, 0, true},
    [BN_TYPE_Q8_0] = {"q8_0", 32, 34, 0, true},
    [BN_TYPE_Q8_1] = {"q8_1", 32, 36, 0, true},
    [BN_TYPE_Q2_K] = {"q2_K", 256, 84, 0, true},
    [BN_TYPE_Q3_K] = {"q3_K", 256, 110, 0, true},
    [BN_TYPE_Q4_K] = {"q4_K", 256, 144, 0, true},
    [BN_TYPE_Q5_K] = {"q5_K", 256, 176, 0, true},
    [BN_TYPE_Q6_K] = {"q6_K", 256, 210, 0, true},
    [BN_TYPE_Q8_K] = {"q8_K", 256, 292, 0, true},
    [BN_TYPE_IQ2_XXS] = {"iq2_xxs", 256, 66, 0, true},
    [BN_TYPE_IQ2_XS] = {"iq2_xs", 256, 74, 0, true},
    [BN_TYPE_IQ3_XXS] = {"iq3_xxs", 256, 98, 0, true},
    [BN_TYPE_IQ1_S] = {"iq1_s", 256, 50, 0, true},
    [BN_TYPE_IQ4_NL] = {"iq4_nl", 32, 18, 0, true},
    [BN_TYPE_IQ3_S] = {"iq3_s", 256, 110, 0, true},
    [BN_TYPE_IQ2_S] = {"iq2_s", 256, 82, 0, true},
    [BN_TYPE_IQ4_XS] = {"iq4_xs", 256, 136, 0, true},
    [BN_TYPE_I8] = {"i8", 1, 1, 0, false},
    [BN_TYPE_I16] = {"i16", 1, 2, 0, false},
    [BN_TYPE_I32] = {"i32", 1, 4, 0, false},
    [BN_TYPE_I64] = {"i64", 1, 8, 0, false},
    [BN_TYPE_F64] = {"f64", 1, 8, 0, false},
    [BN_TYPE_IQ1_M] = {"iq1_m", 256, 56, 0, true},
    [BN_TYPE_BF16] = {"bf16", 1, 2, 0, false},
    [BN_TYPE_TQ1_0] = {"tq1_0", 256, 54, 0, true},
    [BN_TYPE_TQ2_0] = {"tq2_0", 256, 66, 0, true},
    [BN_TYPE_I2_S] = {"i2_s", 128, 32, 32, true},
    [BN_TYPE_I8_S] = {"i8_s", 1, 1, 0, true},
    [BN_TYPE_TL1] = {"tl1", 4, 1, 32, true},
    [BN_TYPE_TL2] = {"tl2", 1, 1, 32, true},
};
#define TYPE_TABLE_N (sizeof type_table / sizeof type_table[0])
static const bn_type_traits mxfp4_traits = {"mxfp4", 32, 17, 0, true};

/* Lookup by resolved id; holes in the table (removed ids) are unknown. */
const bn_type_traits *bn_type_traits_get(uint32_t type) {
    if (type == BN_TYPE_MXFP4) return &mxfp4_traits;
    if (type >= TYPE_TABLE_N || !type_table[type].name) return NULL;
    return &type_table[type];
}

/* Printable name for messages and listings. */
const char *bn_type_name(uint32_t type) {
    const bn_type_traits *t = bn_type_traits_get(type);
    return t ? t->name : "?";
}

/* For command-line options like --type i2_s. */
int bn_type_from_name(const char *name) {
    if (!name) return -1;
    for (uint32_t i = 0; i < TYPE_TABLE_N; i++)
        if (type_table[i].name && strcasecmp(type_table[i].name, name) == 0) return (int)i;
    if (strcasecmp(name, "mxfp4") == 0) return BN_TYPE_MXFP4;
    return -1;
}

/* Whole-tensor byte size; the one place that knows the I2_S/TL1/TL2 special
 * sizes, so the reader, the writer and the quantizer cannot disagree. */
int bn_type_nbytes(uint32_t type, const int64_t *ne, uint32_t n_dims, uint64_t *out, bn_err *e) {
    const bn_type_traits *tt = bn_type_traits_get(type);
    if (!tt) return bn_errf(e, "unknown type %u", type);
    if (n_dims < 1 || n_dims > BN_GGUF_MAX_DIMS)
        return bn_errf(e, "n_dims %u out of range 1..%d", n_dims, BN_GGUF_MAX_DIMS);
    uint64_t n = 1, rows = 1;
    for (uint32_t d = 0; d < n_dims; d++) {
        if (ne[d] <= 0) return bn_errf(e, "ne[%u] = %lld is not positive", d, (long long)ne[d]);
        if (!bn_mul_u64(n, (uint64_t)ne[d], &n) || n > (uint64_t)INT64_MAX)
            return bn_errf(e, "element count overflows");
        if (d > 0) rows *= (uint64_t)ne[d]; /* <= n, cannot overflow */
    }
    if ((uint64_t)ne[0] % tt->blck_size != 0)
        return bn_errf(e, "%s: ne[0] = %lld is not a multiple of the block size %u", tt->name,
                       (long long)ne[0], tt->blck_size);
    uint64_t bytes;
    if (type == BN_TYPE_TL2) {
        /* pad32(((K-256)*M/3)*5/8 + 256*M/2*4/8) + 32, K = ne0, M = rows */
        uint64_t k = (uint64_t)ne[0], a, b;
        if (k < 256) return bn_errf(e, "tl2: ne[0] = %llu is below 256", (unsigned long long)k);
        if (!bn_mul_u64(k - 256, rows, &a) || !bn_mul_u64(a / 3, 5, &a))
            return bn_errf(e, "tl2: byte size overflows");
        a /= 8;
        if (!bn_mul_u64(rows / 2 * 256, 4, &b)) return bn_errf(e, "tl2: byte size overflows");
        b /= 8;
        if (!bn_add_u64(a, b, &bytes) || !bn_align_up_u64(bytes, 32, &bytes))
            return bn_errf(e, "tl2: byte size overflows");
    } else if (!bn_mul_u64(n / tt->blck_size, tt->type_size, &bytes)) {
        return bn_errf(e, "%s: byte size overflows", tt->name);
    }
    if (!bn_add_u64(bytes, tt->trailer, &bytes) || bytes > (uint64_t)SIZE_MAX)
        return bn_errf(e, "%s: byte size overflows", tt->name);
    *out = bytes;
    return 0;
}

/* ---- value types ---------------------------------------------------------- */

static const char *const vtype_names[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32",
                                          "bool", "str", "arr", "u64", "i64", "f64"};
#define N_VTYPES 13

/* Short names as llama.cpp's gguf_type_name prints them. */
const char *bn_gguf_vtype_name(uint32_t vtype) {
    return vtype < N_VTYPES ? vtype_names[vtype] : "?";
}

/* Size of a fixed-size value type, 0 for STR/ARR/unknown. */
uint32_t bn_gguf_vtype_size(uint32_t t) {
    switch (t) {
    case BN_GGUF_U8: case BN_GGUF_I8: case BN_GGUF_BOOL: return 1;
    case BN_GGUF_U16: case BN_GGUF_I16: return 2;
    case BN_GGUF_U32: case BN_GGUF_I32: case BN_GGUF_F32: return 4;
    case BN_GGUF_U64: case BN_GGUF_I64: case BN_GGUF_F64: return 8;
    default: return 0;
    }
}

static uint64_t ld_le(const uint8_t *p, unsigned n) {
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* Decode one fixed-size scalar at p into the kv union. */
static void decode_scalar(bn_gguf_kv *kv, uint32_t t, const uint8_t *p) {
    uint64_t raw = ld_le(p, bn_gguf_vtype_size(t));
    switch (t) {
    case BN_GGUF_U8: case BN_GGUF_U16: case BN_GGUF_U32: case BN_GGUF_U64: case BN_GGUF_BOOL:
        kv->v.u = raw; break;
    case BN_GGUF_I8: kv->v.i = (int8_t)raw; break;
    case BN_GGUF_I16: kv->v.i = (int16_t)raw; break;
    case BN_GGUF_I32: kv->v.i = (int32_t)raw; break;
    case BN_GGUF_I64: kv->v.i = (int64_t)raw; break;
    case BN_GGUF_F32: { uint32_t b = (uint32_t)raw; float f; memcpy(&f, &b, 4); kv->v.f = f; break; }
    case BN_GGUF_F64: { double f; memcpy(&f, &raw, 8); kv->v.f = f; break; }
    default: break;
    }
}

/* ---- the file object ------------------------------------------------------ */

struct bn_gguf {
    char *path;
    const uint8_t *base;
    uint64_t size;
    bool mapped, copied;
    void *map_base;  /* what munmap gets (the copy's over-allocated region), NULL: base */
    size_t map_len;
    uint32_t version, alignment;
    uint64_t data_offset;
    bn_gguf_kv *kv;
    uint64_t n_kv;
    bn_gguf_tensor *t;
    uint64_t n_t;
    uint64_t *t_hash; /* open addressing, tensor index + 1, 0 = empty */
    uint64_t t_hash_cap;
};

/* Parse cursor: the only code that touches file bytes during parsing. */
typedef struct cur {
    const uint8_t *base;
    uint64_t size, pos;
    const char *name;
    bn_err *e;
} cur;

static uint64_t left(const cur *c) { return c->size - c->pos; }

static int need(cur *c, uint64_t n, const char *field) {
    if (n > left(c))
        return bn_errf(c->e, "%s: %s: file truncated (need %llu bytes at offset %llu, file has %llu)",
                       c->name, field, (unsigned long long)n, (unsigned long long)c->pos,
                       (unsigned long long)c->size);
    return 0;
}

static int rd_u32(cur *c, uint32_t *v, const char *field) {
    if (need(c, 4, field)) return -1;
    *v = (uint32_t)ld_le(c->base + c->pos, 4);
    c->pos += 4;
    return 0;
}

static int rd_u64(cur *c, uint64_t *v, const char *field) {
    if (need(c, 8, field)) return -1;
    *v = ld_le(c->base + c->pos, 8);
    c->pos += 8;
    return 0;
}

static int rd_str(cur *c, bn_gguf_str *s, const char *field) {
    uint64_t len;
    if (rd_u64(c, &len, field)) return -1;
    if (len > left(c))
        return bn_errf(c->e, "%s: %s: string length %llu runs past end of file", c->name, field,
                       (unsigned long long)len);
    s->ptr = (const char *)c->base + c->pos;
    s->len = len;
    c->pos += len;
    return 0;
}

#define MAX_ARR_DEPTH 8

/* Validate and skip one array body (element type + count + elements) whose
 * header starts at the cursor; fills kv's array fields. Recursion is bounded
 * by MAX_ARR_DEPTH, counts by the remaining bytes. */
static int parse_array(cur *c, bn_gguf_kv *kv, int depth, const char *field) {
    uint32_t at;
    uint64_t n;
    if (depth > MAX_ARR_DEPTH)
        return bn_errf(c->e, "%s: %s: arrays nested deeper than %d", c->name, field, MAX_ARR_DEPTH);
    if (rd_u32(c, &at, field) || rd_u64(c, &n, field)) return -1;
    if (at >= N_VTYPES)
        return bn_errf(c->e, "%s: %s: bad array element type %u", c->name, field, at);
    kv->arr_type = at;
    kv->arr_n = n;
    kv->arr_data = c->base + c->pos;
    uint64_t start = c->pos;
    uint32_t es = bn_gguf_vtype_size(at);
    if (es) {
        uint64_t bytes;
        if (!bn_mul_u64(n, es, &bytes) || bytes > left(c))
            return bn_errf(c->e, "%s: %s: array of %llu %s runs past end of file", c->name, field,
                           (unsigned long long)n, vtype_names[at]);
        c->pos += bytes;
    } else if (at == BN_GGUF_STR) {
        if (n > left(c) / 8)
            return bn_errf(c->e, "%s: %s: array of %llu strings runs past end of file", c->name,
                           field, (unsigned long long)n);
        for (uint64_t i = 0; i < n; i++) {
            bn_gguf_str s;
            if (rd_str(c, &s, field)) return -1;
        }
    } else { /* nested arrays */
        if (n > left(c) / 12)
            return bn_errf(c->e, "%s: %s: array of %llu arrays runs past end of file", c->name,
                           field, (unsigned long long)n);
        for (uint64_t i = 0; i < n; i++) {
            bn_gguf_kv sub;
            if (parse_array(c, &sub, depth + 1, field)) return -1;
        }
    }
    kv->arr_bytes = c->pos - start;
    return 0;
}

/* Grow a vector by doubling; the caller only grows after an entry parsed,
 * which bounds memory by the file size. */
static int grow(void **p, uint64_t *cap, uint64_t need_n, size_t elem, bn_err *e, const char *name) {
    if (need_n <= *cap) return 0;
    uint64_t nc = *cap ? *cap * 2 : 16;
    while (nc < need_n) nc *= 2;
    size_t bytes;
    if (!bn_mul_size((size_t)nc, elem, &bytes)) return bn_errf(e, "%s: out of memory", name);
    void *q = realloc(*p, bytes);
    if (!q) return bn_errf(e, "%s: out of memory", name);
    *p = q;
    *cap = nc;
    return 0;
}

static uint64_t hash_bytes(const void *p, size_t n) {
    const uint8_t *b = p;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

/* Quote a file string for an error message (printable ASCII only, capped). */
static void quote(char *buf, size_t n, const char *p, uint64_t len) {
    size_t j = 0;
    for (uint64_t i = 0; i < len && j + 5 < n; i++) {
        unsigned char ch = (unsigned char)p[i];
        buf[j++] = (ch >= 32 && ch < 127) ? (char)ch : '?';
    }
    if (len > 0 && j + 5 >= n && j >= 3) { buf[j - 3] = '.'; buf[j - 2] = '.'; buf[j - 1] = '.'; }
    buf[j] = 0;
}

static int parse_kvs(cur *c, bn_gguf *g, uint64_t n_kv) {
    uint64_t cap = 0;
    char field[160], q[100];
    for (uint64_t i = 0; i < n_kv; i++) {
        if (grow((void **)&g->kv, &cap, i + 1, sizeof *g->kv, c->e, c->name)) return -1;
        bn_gguf_kv *kv = &g->kv[i];
        memset(kv, 0, sizeof *kv);
        snprintf(field, sizeof field, "kv %llu: key", (unsigned long long)i);
        if (rd_str(c, &kv->key, field)) return -1;
        if (kv->key.len == 0) return bn_errf(c->e, "%s: %s: empty key", c->name, field);
        quote(q, sizeof q, kv->key.ptr, kv->key.len);
        snprintf(field, sizeof field, "kv '%s'", q);
        if (rd_u32(c, &kv->type, field)) return -1;
        if (kv->type >= N_VTYPES)
            return bn_errf(c->e, "%s: %s: bad value type %u", c->name, field, kv->type);
        if (kv->type == BN_GGUF_STR) {
            if (rd_str(c, &kv->v.s, field)) return -1;
        } else if (kv->type == BN_GGUF_ARR) {
            if (parse_array(c, kv, 1, field)) return -1;
        } else {
            uint32_t es = bn_gguf_vtype_size(kv->type);
            if (need(c, es, field)) return -1;
            decode_scalar(kv, kv->type, c->base + c->pos);
            c->pos += es;
        }
        g->n_kv = i + 1;
    }
    return 0;
}

/* Duplicate keys are an error (llama.cpp refuses them too). */
static int check_dup_keys(bn_gguf *g, bn_err *e) {
    uint64_t cap = 16;
    while (cap < g->n_kv * 2) cap *= 2;
    uint64_t *h = calloc(cap, sizeof *h);
    if (!h) return bn_errf(e, "%s: out of memory", g->path);
    for (uint64_t i = 0; i < g->n_kv; i++) {
        const bn_gguf_str *k = &g->kv[i].key;
        uint64_t j = hash_bytes(k->ptr, k->len) & (cap - 1);
        while (h[j]) {
            const bn_gguf_str *o = &g->kv[h[j] - 1].key;
            if (o->len == k->len && memcmp(o->ptr, k->ptr, k->len) == 0) {
                char q[100];
                quote(q, sizeof q, k->ptr, k->len);
                free(h);
                return bn_errf(e, "%s: kv '%s': duplicate key", g->path, q);
            }
            j = (j + 1) & (cap - 1);
        }
        h[j] = i + 1;
    }
    free(h);
    return 0;
}

static int parse_tensor_infos(cur *c, bn_gguf *g, uint64_t n_t) {
    uint64_t cap = 0;
    char field[160];
    for (uint64_t i = 0; i < n_t; i++) {
        if (grow((void **)&g->t, &cap, i + 1, sizeof *g->t, c->e, c->name)) return -1;
        bn_gguf_tensor *t = &g->t[i];
        memset(t, 0, sizeof *t);
        bn_gguf_str nm;
        snprintf(field, sizeof field, "tensor %llu: name", (unsigned long long)i);
        if (rd_str(c, &nm, field)) return -1;
        if (nm.len == 0) return bn_errf(c->e, "%s: %s: empty name", c->name, field);
        if (nm.len >= BN_GGUF_MAX_NAME) {
            char q[100];
            quote(q, sizeof q, nm.ptr, nm.len);
            return bn_errf(c->e, "%s: tensor '%s': name too long (%llu bytes, max %d)", c->name, q,
                           (unsigned long long)nm.len, BN_GGUF_MAX_NAME - 1);
        }
        if (memchr(nm.ptr, 0, nm.len))
            return bn_errf(c->e, "%s: %s: name contains a NUL byte", c->name, field);
        memcpy(t->name, nm.ptr, nm.len);
        t->name[nm.len] = 0;
        snprintf(field, sizeof field, "tensor '%s'", t->name);
        if (rd_u32(c, &t->n_dims, field)) return -1;
        if (t->n_dims < 1 || t->n_dims > BN_GGUF_MAX_DIMS)
            return bn_errf(c->e, "%s: %s: n_dims %u out of range 1..%d", c->name, field, t->n_dims,
                           BN_GGUF_MAX_DIMS);
        for (uint32_t d = 0; d < BN_GGUF_MAX_DIMS; d++) t->ne[d] = 1;
        uint64_t prod = 1;
        for (uint32_t d = 0; d < t->n_dims; d++) {
            uint64_t v;
            if (rd_u64(c, &v, field)) return -1;
            t->ne[d] = (int64_t)v;
            if (t->ne[d] <= 0)
                return bn_errf(c->e, "%s: %s: ne[%u] = %lld is not positive", c->name, field, d,
                               (long long)t->ne[d]);
            if (!bn_mul_u64(prod, v, &prod) || prod > (uint64_t)INT64_MAX)
                return bn_errf(c->e, "%s: %s: element count overflows", c->name, field);
        }
        if (rd_u32(c, &t->type, field) || rd_u64(c, &t->offset, field)) return -1;
        g->n_t = i + 1;
    }
    return 0;
}

/* Id 39 is TL2 in bitnet.cpp files and MXFP4 in upstream llama.cpp. It is
 * TL2 when the file says it comes from bitnet.cpp: arch bitnet-b1.58 or
 * bitnet-25 (archs upstream does not know), general.file_type 39 or 40
 * (bitnet.cpp's TL2 and I2_S ftypes, unused upstream), or another tensor of
 * a bitnet.cpp-only type (36 I2_S, 37 I8_S, 38 TL1). Otherwise MXFP4. */
static bool id39_is_tl2(const bn_gguf *g) {
    char arch[64];
    bn_gguf_arch(g, arch, sizeof arch);
    if (strcmp(arch, "bitnet-b1.58") == 0 || strcmp(arch, "bitnet-25") == 0) return true;
    uint32_t ft;
    if (bn_gguf_get_u32(g, "general.file_type", &ft, NULL) == 1 && (ft == 39 || ft == 40)) return true;
    for (uint64_t i = 0; i < g->n_t; i++)
        if (g->t[i].type >= 36 && g->t[i].type <= 38) return true;
    return false;
}

static int cmp_off(const void *a, const void *b, void *arg) {
    const bn_gguf_tensor *t = arg;
    uint64_t x = t[*(const uint64_t *)a].offset, y = t[*(const uint64_t *)b].offset;
    return x < y ? -1 : x > y;
}

/* Tensor-level checks once all infos and the alignment are known: types,
 * sizes, unique names (building the lookup hash), aligned in-bounds data,
 * no overlaps. */
static int check_tensors(bn_gguf *g, uint64_t infos_end, bn_err *e) {
    if (g->n_t == 0) { /* older writers did not pad files without tensors */
        if (!bn_align_up_u64(infos_end, g->alignment, &g->data_offset) || g->data_offset > g->size)
            g->data_offset = infos_end;
        return 0;
    }
    if (!bn_align_up_u64(infos_end, g->alignment, &g->data_offset))
        return bn_errf(e, "%s: data section: offset overflows", g->path);
    bool tl2 = id39_is_tl2(g);
    for (uint64_t i = 0; i < g->n_t; i++) {
        bn_gguf_tensor *t = &g->t[i];
        if (t->type == 39 && !tl2) t->type = BN_TYPE_MXFP4;
        if (!bn_type_traits_get(t->type))
            return bn_errf(e, "%s: tensor '%s': unknown type %u", g->path, t->name, t->type);
        if (bn_type_nbytes(t->type, t->ne, t->n_dims, &t->nbytes, e)) {
            char pre[200];
            snprintf(pre, sizeof pre, "%s: tensor '%s'", g->path, t->name);
            bn_err_prefix(e, pre);
            return -1;
        }
        if (t->offset % g->alignment)
            return bn_errf(e, "%s: tensor '%s': offset %llu is not a multiple of the alignment %u",
                           g->path, t->name, (unsigned long long)t->offset, g->alignment);
        uint64_t end;
        if (!bn_add_u64(g->data_offset, t->offset, &end) || !bn_add_u64(end, t->nbytes, &end) ||
            end > g->size)
            return bn_errf(e, "%s: tensor '%s': data extends past end of file", g->path, t->name);
        t->data = g->base + g->data_offset + t->offset;
    }
    /* unique names + lookup table */
    uint64_t cap = 16;
    while (cap < g->n_t * 2) cap *= 2;
    g->t_hash = calloc(cap, sizeof *g->t_hash);
    if (!g->t_hash) return bn_errf(e, "%s: out of memory", g->path);
    g->t_hash_cap = cap;
    for (uint64_t i = 0; i < g->n_t; i++) {
        uint64_t j = hash_bytes(g->t[i].name, strlen(g->t[i].name)) & (cap - 1);
        while (g->t_hash[j]) {
            if (strcmp(g->t[g->t_hash[j] - 1].name, g->t[i].name) == 0)
                return bn_errf(e, "%s: tensor '%s': duplicate tensor name", g->path, g->t[i].name);
            j = (j + 1) & (cap - 1);
        }
        g->t_hash[j] = i + 1;
    }
    /* overlaps: sort by offset, compare neighbours */
    uint64_t *ord = malloc(g->n_t * sizeof *ord);
    if (!ord) return bn_errf(e, "%s: out of memory", g->path);
    for (uint64_t i = 0; i < g->n_t; i++) ord[i] = i;
    qsort_r(ord, g->n_t, sizeof *ord, cmp_off, g->t);
    for (uint64_t i = 1; i < g->n_t; i++) {
        const bn_gguf_tensor *a = &g->t[ord[i - 1]], *b = &g->t[ord[i]];
        if (a->offset + a->nbytes > b->offset) {
            bn_errf(e, "%s: tensor '%s': data overlaps tensor '%s'", g->path, b->name, a->name);
            free(ord);
            return -1;
        }
    }
    free(ord);
    return 0;
}

/* Versions 2 and 3 share one layout; 1 had 32-bit counts. */
static int check_version(const char *path, uint32_t v, bn_err *e) {
    if (v == 1) return bn_errf(e, "%s: version: GGUF version 1 is not supported (only 2 and 3)", path);
    if (v != 2 && v != 3) {
        if ((v & 0xffff) == 0 && (v >> 24) <= 3)
            return bn_errf(e, "%s: version: %u looks like a big-endian GGUF (not supported)", path, v);
        return bn_errf(e, "%s: version: unsupported GGUF version %u (only 2 and 3)", path, v);
    }
    return 0;
}

/* Header counts against the bytes after the header, using the smallest
 * encodings: a tensor info is at least 8+1+4+8+4+8 = 33 bytes, a kv pair
 * 8+1+4+1 = 14. This is what keeps lying counts from driving allocations. */
static int check_counts(const char *path, uint64_t n_t, uint64_t n_kv, uint64_t rest, uint64_t size,
                        bn_err *e) {
    if (n_t > rest / 33)
        return bn_errf(e, "%s: n_tensors: %llu tensors cannot fit in a %llu-byte file", path,
                       (unsigned long long)n_t, (unsigned long long)size);
    if (n_kv > rest / 14)
        return bn_errf(e, "%s: n_kv: %llu key-value pairs cannot fit in a %llu-byte file", path,
                       (unsigned long long)n_kv, (unsigned long long)size);
    if (n_t * 33 + n_kv * 14 > rest)
        return bn_errf(e, "%s: n_kv: %llu key-value pairs and %llu tensors cannot fit in a %llu-byte file",
                       path, (unsigned long long)n_kv, (unsigned long long)n_t, (unsigned long long)size);
    return 0;
}

/* The parser proper, on g->base/g->size. */
static int parse(bn_gguf *g, bn_err *e) {
    cur c = {g->base, g->size, 0, g->path, e};
    if (g->size < 4) return bn_errf(e, "%s: magic: file too small to be GGUF (%llu bytes)", g->path,
                                    (unsigned long long)g->size);
    if (memcmp(g->base, "GGUF", 4) != 0) return bn_errf(e, "%s: magic: not a GGUF file", g->path);
    c.pos = 4;
    if (rd_u32(&c, &g->version, "version")) return -1;
    if (check_version(g->path, g->version, e)) return -1;
    uint64_t n_t, n_kv;
    if (rd_u64(&c, &n_t, "n_tensors") || rd_u64(&c, &n_kv, "n_kv")) return -1;
    if (check_counts(g->path, n_t, n_kv, left(&c), g->size, e)) return -1;
    if (parse_kvs(&c, g, n_kv)) return -1;
    if (check_dup_keys(g, e)) return -1;
    g->alignment = 32;
    const bn_gguf_kv *al = bn_gguf_find(g, "general.alignment");
    if (al) {
        if (al->type != BN_GGUF_U32)
            return bn_errf(e, "%s: kv 'general.alignment': must be u32, not %s", g->path,
                           bn_gguf_vtype_name(al->type));
        if (al->v.u == 0 || (al->v.u & (al->v.u - 1)))
            return bn_errf(e, "%s: kv 'general.alignment': %llu is not a power of two", g->path,
                           (unsigned long long)al->v.u);
        g->alignment = (uint32_t)al->v.u;
    }
    if (parse_tensor_infos(&c, g, n_t)) return -1;
    return check_tensors(g, c.pos, e);
}

static int open_common(bn_gguf **out, bn_gguf *g, bn_err *e) {
    if (parse(g, e)) {
        bn_gguf_close(g);
        *out = NULL;
        return -1;
    }
    *out = g;
    return 0;
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

/* The whole file read into private anonymous memory advised for 2 MB pages,
 * then made read-only. The pages are faulted in before the read: pread into
 * unfaulted huge-page memory took 3.2 s for 1.2 GB on the SPR VM, 0.14 s of
 * faults + 0.18 s of reading this way. */
static int read_huge(bn_gguf *g, int fd, bn_err *e) {
    const size_t huge = (size_t)2 << 20;
    size_t len;
    if (!bn_add_size((size_t)g->size, 2 * huge - 1, &len)) return bn_errf(e, "%s: load: file too large", g->path);
    len &= ~(huge - 1);
    void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return bn_errf(e, "%s: load: %s (%zu bytes)", g->path, strerror(errno), len);
    g->map_base = m;
    g->map_len = len;
    uint8_t *p = (uint8_t *)(((uintptr_t)m + huge - 1) & ~(uintptr_t)(huge - 1));
    const size_t span = len - (size_t)(p - (uint8_t *)m);
#if defined(MADV_HUGEPAGE)
    madvise(p, span, MADV_HUGEPAGE);
#endif
    madvise(p, span, MADV_POPULATE_WRITE); /* Linux >= 5.14; otherwise pages fault during the read */
    uint64_t off = 0;
    while (off < g->size) {
        size_t want = g->size - off > ((uint64_t)64 << 20) ? (size_t)64 << 20 : (size_t)(g->size - off);
        ssize_t k = pread(fd, p + off, want, (off_t)off);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) return bn_errf(e, "%s: read: %s", g->path, strerror(errno));
        if (k == 0) return bn_errf(e, "%s: read: file shrank to %llu bytes while loading", g->path, (unsigned long long)off);
        off += (uint64_t)k;
    }
    const long page = sysconf(_SC_PAGESIZE);
    mprotect(p, ((size_t)g->size + (size_t)page - 1) & ~((size_t)page - 1), PROT_READ);
    g->base = p;
    g->mapped = true;
    g->copied = true;
    return 0;
}

/* See gguf.h: "[always]" or "[madvise]" in the THP setting. */
bool bn_thp_enabled(void) {
#if defined(__linux__)
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
    if (!f) return false;
    char line[128] = "";
    bool on = fgets(line, sizeof line, f) && (strstr(line, "[always]") || strstr(line, "[madvise]"));
    fclose(f);
    return on;
#else
    return false;
#endif
}

/* Map the file read-only; all views handed out point into this mapping. */
int bn_gguf_open(bn_gguf **out, const char *path, bn_err *e) { return bn_gguf_open_ex(out, path, BN_GGUF_MAP, e); }

int bn_gguf_open_ex(bn_gguf **out, const char *path, bn_gguf_load how, bn_err *e) {
    *out = NULL;
    bn_gguf *g = calloc(1, sizeof *g);
    if (!g || !(g->path = strdup(path))) {
        free(g);
        return bn_errf(e, "%s: out of memory", path);
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        bn_errf(e, "%s: open: %s", path, strerror(errno));
        bn_gguf_close(g);
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        bn_errf(e, "%s: open: not a regular file", path);
        close(fd);
        bn_gguf_close(g);
        return -1;
    }
    g->size = (uint64_t)st.st_size;
    if (g->size > 0 && how == BN_GGUF_COPY_HUGE) {
        int rc = read_huge(g, fd, e);
        close(fd);
        if (rc) {
            bn_gguf_close(g);
            return -1;
        }
        return open_common(out, g, e);
    }
    if (g->size > 0) {
        void *m = mmap(NULL, (size_t)g->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            bn_errf(e, "%s: mmap: %s", path, strerror(errno));
            close(fd);
            bn_gguf_close(g);
            return -1;
        }
        g->base = m;
        g->mapped = true;
    } else {
        g->base = (const uint8_t *)"";
    }
    close(fd);
    return open_common(out, g, e);
}

/* See gguf.h: prefault the data section of a mapped file. */
int bn_gguf_prefault(const bn_gguf *g) {
#if defined(__linux__)
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif
    if (!g->mapped || g->copied || g->data_offset >= g->size) return -1;
    const long page = sysconf(_SC_PAGESIZE);
    const uint64_t start = g->data_offset & ~(uint64_t)(page - 1);
    return madvise((void *)(uintptr_t)(g->base + start), (size_t)(g->size - start), MADV_POPULATE_READ) == 0 ? 0 : -1;
#else
    (void)g;
    return -1;
#endif
}

/* The header checks of parse() on the first 24 bytes only: fast enough to
 * run on every file of a directory before deciding which to open. */
int bn_gguf_check_header(const char *path, bn_gguf_header *h, bn_err *e) {
    memset(h, 0, sizeof *h);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return bn_errf(e, "%s: open: %s", path, strerror(errno));
    struct stat st;
    uint8_t b[24];
    ssize_t k = -1;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) k = pread(fd, b, sizeof b, 0);
    close(fd);
    if (k < 0) return bn_errf(e, "%s: open: not a readable regular file", path);
    h->file_size = (uint64_t)st.st_size;
    cur c = {b, (uint64_t)k, 0, path, e};
    if (k < 4) return bn_errf(e, "%s: magic: file too small to be GGUF (%lld bytes)", path, (long long)k);
    if (memcmp(b, "GGUF", 4) != 0) return bn_errf(e, "%s: magic: not a GGUF file", path);
    c.pos = 4;
    if (rd_u32(&c, &h->version, "version")) return -1;
    if (check_version(path, h->version, e)) return -1;
    if (rd_u64(&c, &h->n_tensors, "n_tensors") || rd_u64(&c, &h->n_kv, "n_kv")) return -1;
    if (h->file_size < 24) return bn_errf(e, "%s: n_kv: file truncated", path);
    return check_counts(path, h->n_tensors, h->n_kv, h->file_size - 24, h->file_size, e);
}

/* Same parser on caller memory (fuzzers, tests). */
int bn_gguf_open_mem(bn_gguf **out, const void *data, size_t len, const char *name, bn_err *e) {
    *out = NULL;
    if (!name) name = "<memory>";
    bn_gguf *g = calloc(1, sizeof *g);
    if (!g || !(g->path = strdup(name))) {
        free(g);
        return bn_errf(e, "%s: out of memory", name);
    }
    g->base = data ? data : (const void *)"";
    g->size = data ? len : 0;
    return open_common(out, g, e);
}

void bn_gguf_close(bn_gguf *g) {
    if (!g) return;
    if (g->map_base) munmap(g->map_base, g->map_len);
    else if (g->mapped) munmap((void *)g->base, (size_t)g->size);
    free(g->kv);
    free(g->t);
    free(g->t_hash);
    free(g->path);
    free(g);
}

const char *bn_gguf_path(const bn_gguf *g) { return g->path; }
bool bn_gguf_copied(const bn_gguf *g) { return g->copied; }
uint32_t bn_gguf_version(const bn_gguf *g) { return g->version; }
uint64_t bn_gguf_file_size(const bn_gguf *g) { return g->size; }
uint32_t bn_gguf_alignment(const bn_gguf *g) { return g->alignment; }
uint64_t bn_gguf_data_offset(const bn_gguf *g) { return g->data_offset; }
uint64_t bn_gguf_n_kv(const bn_gguf *g) { return g->n_kv; }
uint64_t bn_gguf_n_tensors(const bn_gguf *g) { return g->n_t; }

const bn_gguf_kv *bn_gguf_kv_at(const bn_gguf *g, uint64_t i) {
    return i < g->n_kv ? &g->kv[i] : NULL;
}

const bn_gguf_tensor *bn_gguf_tensor_at(const bn_gguf *g, uint64_t i) {
    return i < g->n_t ? &g->t[i] : NULL;
}

bool bn_gguf_str_eq(bn_gguf_str s, const char *c) {
    size_t n = strlen(c);
    return s.len == n && memcmp(s.ptr, c, n) == 0;
}

/* Linear: models have a few dozen keys. */
const bn_gguf_kv *bn_gguf_find(const bn_gguf *g, const char *key) {
    for (uint64_t i = 0; i < g->n_kv; i++)
        if (bn_gguf_str_eq(g->kv[i].key, key)) return &g->kv[i];
    return NULL;
}

/* Hashed: models have hundreds of tensors and the loaders look each up. */
const bn_gguf_tensor *bn_gguf_find_tensor(const bn_gguf *g, const char *name) {
    if (!g->t_hash_cap) return NULL;
    uint64_t j = hash_bytes(name, strlen(name)) & (g->t_hash_cap - 1);
    while (g->t_hash[j]) {
        const bn_gguf_tensor *t = &g->t[g->t_hash[j] - 1];
        if (strcmp(t->name, name) == 0) return t;
        j = (j + 1) & (g->t_hash_cap - 1);
    }
    return NULL;
}

void bn_gguf_arch(const bn_gguf *g, char *buf, size_t n) {
    if (!n) return;
    buf[0] = 0;
    const bn_gguf_kv *kv = bn_gguf_find(g, "general.architecture");
    if (!kv || kv->type != BN_GGUF_STR) return;
    size_t l = kv->v.s.len < n - 1 ? (size_t)kv->v.s.len : n - 1;
    memcpy(buf, kv->v.s.ptr, l);
    buf[l] = 0;
}

/* ---- typed getters -------------------------------------------------------- */

static bool is_uint(uint32_t t) {
    return t == BN_GGUF_U8 || t == BN_GGUF_U16 || t == BN_GGUF_U32 || t == BN_GGUF_U64;
}
static bool is_sint(uint32_t t) {
    return t == BN_GGUF_I8 || t == BN_GGUF_I16 || t == BN_GGUF_I32 || t == BN_GGUF_I64;
}

/* Common part of the integer getters: fetch as a sign + magnitude pair. */
static int get_int(const bn_gguf *g, const char *key, const char *want, bool *neg, uint64_t *mag,
                   bn_err *e, const bn_gguf_kv **kvp) {
    const bn_gguf_kv *kv = bn_gguf_find(g, key);
    if (!kv) return 0;
    *kvp = kv;
    if (is_uint(kv->type)) {
        *neg = false;
        *mag = kv->v.u;
    } else if (is_sint(kv->type)) {
        *neg = kv->v.i < 0;
        *mag = *neg ? (uint64_t)0 - (uint64_t)kv->v.i : (uint64_t)kv->v.i;
    } else {
        return bn_errf(e, "%s: kv '%s': expected %s, got %s", g->path, key, want,
                       bn_gguf_vtype_name(kv->type));
    }
    return 1;
}

static int range_err(const bn_gguf *g, const char *key, const char *want, const bn_gguf_kv *kv,
                     bn_err *e) {
    if (is_sint(kv->type))
        return bn_errf(e, "%s: kv '%s': value %lld out of range for %s", g->path, key,
                       (long long)kv->v.i, want);
    return bn_errf(e, "%s: kv '%s': value %llu out of range for %s", g->path, key,
                   (unsigned long long)kv->v.u, want);
}

int bn_gguf_get_u32(const bn_gguf *g, const char *key, uint32_t *out, bn_err *e) {
    bool neg;
    uint64_t m;
    const bn_gguf_kv *kv = NULL;
    int r = get_int(g, key, "u32", &neg, &m, e, &kv);
    if (r != 1) return r;
    if (neg || m > UINT32_MAX) return range_err(g, key, "u32", kv, e);
    *out = (uint32_t)m;
    return 1;
}

int bn_gguf_get_i32(const bn_gguf *g, const char *key, int32_t *out, bn_err *e) {
    bool neg;
    uint64_t m;
    const bn_gguf_kv *kv = NULL;
    int r = get_int(g, key, "i32", &neg, &m, e, &kv);
    if (r != 1) return r;
    if (neg ? m > (uint64_t)INT32_MAX + 1 : m > INT32_MAX) return range_err(g, key, "i32", kv, e);
    *out = neg ? (int32_t)(0 - (int64_t)m) : (int32_t)m;
    return 1;
}

int bn_gguf_get_u64(const bn_gguf *g, const char *key, uint64_t *out, bn_err *e) {
    bool neg;
    uint64_t m;
    const bn_gguf_kv *kv = NULL;
    int r = get_int(g, key, "u64", &neg, &m, e, &kv);
    if (r != 1) return r;
    if (neg) return range_err(g, key, "u64", kv, e);
    *out = m;
    return 1;
}

int bn_gguf_get_f32(const bn_gguf *g, const char *key, float *out, bn_err *e) {
    const bn_gguf_kv *kv = bn_gguf_find(g, key);
    if (!kv) return 0;
    if (kv->type != BN_GGUF_F32 && kv->type != BN_GGUF_F64)
        return bn_errf(e, "%s: kv '%s': expected f32, got %s", g->path, key,
                       bn_gguf_vtype_name(kv->type));
    if (isfinite(kv->v.f) && fabs(kv->v.f) > 3.4028234663852886e38)
        return bn_errf(e, "%s: kv '%s': value %g out of range for f32", g->path, key, kv->v.f);
    *out = (float)kv->v.f;
    return 1;
}

int bn_gguf_get_bool(const bn_gguf *g, const char *key, bool *out, bn_err *e) {
    const bn_gguf_kv *kv = bn_gguf_find(g, key);
    if (!kv) return 0;
    if (kv->type != BN_GGUF_BOOL)
        return bn_errf(e, "%s: kv '%s': expected bool, got %s", g->path, key,
                       bn_gguf_vtype_name(kv->type));
    *out = kv->v.u != 0;
    return 1;
}

int bn_gguf_get_str(const bn_gguf *g, const char *key, bn_gguf_str *out, bn_err *e) {
    const bn_gguf_kv *kv = bn_gguf_find(g, key);
    if (!kv) return 0;
    if (kv->type != BN_GGUF_STR)
        return bn_errf(e, "%s: kv '%s': expected str, got %s", g->path, key,
                       bn_gguf_vtype_name(kv->type));
    *out = kv->v.s;
    return 1;
}

/* Strict on the element type: reading a vocab array as the wrong type was a
 * real out-of-bounds bug in llama.cpp (PR #26690). */
int bn_gguf_get_arr(const bn_gguf *g, const char *key, uint32_t elem_type, const bn_gguf_kv **kv,
                    uint64_t *n, bn_err *e) {
    const bn_gguf_kv *k = bn_gguf_find(g, key);
    if (!k) return 0;
    if (k->type != BN_GGUF_ARR)
        return bn_errf(e, "%s: kv '%s': expected arr[%s], got %s", g->path, key,
                       bn_gguf_vtype_name(elem_type), bn_gguf_vtype_name(k->type));
    if (k->arr_type != elem_type)
        return bn_errf(e, "%s: kv '%s': expected arr[%s], got arr[%s]", g->path, key,
                       bn_gguf_vtype_name(elem_type), bn_gguf_vtype_name(k->arr_type));
    if (kv) *kv = k;
    if (n) *n = k->arr_n;
    return 1;
}

/* ---- array iteration ------------------------------------------------------ */

void bn_gguf_arr_iter_init(bn_gguf_arr_iter *it, const bn_gguf_kv *kv) {
    memset(it, 0, sizeof *it);
    if (!kv || kv->type != BN_GGUF_ARR) return;
    it->p = kv->arr_data;
    it->end = kv->arr_data + kv->arr_bytes;
    it->type = kv->arr_type;
    it->n = kv->arr_n;
}

/* Elements were validated at open; the end pointer is checked anyway so an
 * iterator over a hand-built kv cannot run off. */
bool bn_gguf_arr_next_str(bn_gguf_arr_iter *it, bn_gguf_str *out) {
    if (it->i >= it->n || it->type != BN_GGUF_STR || it->end - it->p < 8) return false;
    uint64_t len = ld_le(it->p, 8);
    if (len > (uint64_t)(it->end - it->p - 8)) return false;
    out->ptr = (const char *)it->p + 8;
    out->len = len;
    it->p += 8 + len;
    it->i++;
    return true;
}

bool bn_gguf_arr_next_i64(bn_gguf_arr_iter *it, int64_t *out) {
    if (it->i >= it->n) return false;
    uint32_t es = bn_gguf_vtype_size(it->type);
    if (!es || it->type == BN_GGUF_F32 || it->type == BN_GGUF_F64 || it->end - it->p < es) return false;
    bn_gguf_kv tmp;
    decode_scalar(&tmp, it->type, it->p);
    if (is_sint(it->type)) *out = tmp.v.i;
    else if (tmp.v.u > (uint64_t)INT64_MAX) return false;
    else *out = (int64_t)tmp.v.u;
    it->p += es;
    it->i++;
    return true;
}

bool bn_gguf_arr_next_f64(bn_gguf_arr_iter *it, double *out) {
    if (it->i >= it->n || (it->type != BN_GGUF_F32 && it->type != BN_GGUF_F64)) return false;
    uint32_t es = bn_gguf_vtype_size(it->type);
    if (it->end - it->p < es) return false;
    bn_gguf_kv tmp;
    decode_scalar(&tmp, it->type, it->p);
    *out = tmp.v.f;
    it->p += es;
    it->i++;
    return true;
}

/* Nested arrays: the element is itself an array; fill a kv describing it so
 * it can be iterated in turn. Sizes are recomputed with bounds checks. */
static uint64_t arr_body_bytes(const uint8_t *p, const uint8_t *end, int depth, bool *ok) {
    if (depth > MAX_ARR_DEPTH || end - p < 12) { *ok = false; return 0; }
    cur c = {p, (uint64_t)(end - p), 0, "", NULL};
    bn_gguf_kv sub;
    if (parse_array(&c, &sub, depth, "")) { *ok = false; return 0; }
    return c.pos;
}

bool bn_gguf_arr_next_arr(bn_gguf_arr_iter *it, bn_gguf_kv *out) {
    if (it->i >= it->n || it->type != BN_GGUF_ARR) return false;
    bool ok = true;
    uint64_t total = arr_body_bytes(it->p, it->end, 1, &ok);
    if (!ok) return false;
    memset(out, 0, sizeof *out);
    out->type = BN_GGUF_ARR;
    out->arr_type = (uint32_t)ld_le(it->p, 4);
    out->arr_n = ld_le(it->p + 4, 8);
    out->arr_data = it->p + 12;
    out->arr_bytes = total - 12;
    it->p += total;
    it->i++;
    return true;
}
