/* safetensors.c - validate and index a safetensors file (see safetensors.h). */
#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

struct bn_st {
    char *path;
    const uint8_t *base;   /* whole file */
    size_t size;
    bool mapped;
    const uint8_t *buf;    /* data buffer (after the header) */
    uint64_t buf_len;
    bn_json_doc *hdr;
    const bn_json *meta;
    bn_st_tensor *t;
    size_t n;
};

static const struct { const char *name; size_t size; } dtypes[BN_ST_DTYPE_COUNT] = {
    [BN_ST_BOOL] = { "BOOL", 1 }, [BN_ST_U8] = { "U8", 1 }, [BN_ST_I8] = { "I8", 1 },
    [BN_ST_F8_E4M3] = { "F8_E4M3", 1 }, [BN_ST_F8_E5M2] = { "F8_E5M2", 1 },
    [BN_ST_I16] = { "I16", 2 }, [BN_ST_U16] = { "U16", 2 }, [BN_ST_F16] = { "F16", 2 },
    [BN_ST_BF16] = { "BF16", 2 }, [BN_ST_I32] = { "I32", 4 }, [BN_ST_U32] = { "U32", 4 },
    [BN_ST_F32] = { "F32", 4 }, [BN_ST_F64] = { "F64", 8 }, [BN_ST_I64] = { "I64", 8 },
    [BN_ST_U64] = { "U64", 8 },
};

/* dtype name as the format spells it. */
const char *bn_st_dtype_name(bn_st_dtype t) { return (unsigned)t < BN_ST_DTYPE_COUNT ? dtypes[t].name : "?"; }
/* Bytes per element of a dtype. */
size_t bn_st_dtype_size(bn_st_dtype t) { return (unsigned)t < BN_ST_DTYPE_COUNT ? dtypes[t].size : 0; }

/* Header dtype string -> enum, -1 if unknown. */
int bn_st_dtype_from_name(const char *s) {
    for (int i = 0; i < BN_ST_DTYPE_COUNT; i++)
        if (strcmp(s, dtypes[i].name) == 0) return i;
    return -1;
}

/* Order tensors by data offset for the contiguity check. */
static int cmp_begin(const void *a, const void *b) {
    const bn_st_tensor *x = *(bn_st_tensor *const *)a, *y = *(bn_st_tensor *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* Parse one header entry into t; name is the JSON key. */
static int parse_entry(bn_st *st, const char *name, const bn_json *v, bn_st_tensor *t, bn_err *e) {
    const char *nm = st->path;
    if (bn_json_type_of(v) != BN_JSON_OBJ) return bn_errf(e, "%s: %s: header entry is not an object", nm, name);
    const char *ds = bn_json_str(bn_json_get(v, "dtype"), NULL);
    if (!ds) return bn_errf(e, "%s: %s: dtype: missing or not a string", nm, name);
    int dt = bn_st_dtype_from_name(ds);
    if (dt < 0) return bn_errf(e, "%s: %s: dtype: unsupported dtype '%.20s'", nm, name, ds);
    t->dtype = (bn_st_dtype)dt;
    const bn_json *sh = bn_json_get(v, "shape");
    if (bn_json_type_of(sh) != BN_JSON_ARR) return bn_errf(e, "%s: %s: shape: missing or not an array", nm, name);
    if (bn_json_len(sh) > BN_ST_MAX_DIMS) return bn_errf(e, "%s: %s: shape: more than %d dims", nm, name, BN_ST_MAX_DIMS);
    t->n_dims = (uint32_t)bn_json_len(sh);
    uint64_t n = 1;
    for (uint32_t i = 0; i < t->n_dims; i++) {
        uint64_t d;
        if (!bn_json_u64(bn_json_at(sh, i), &d) || d > (uint64_t)INT64_MAX)
            return bn_errf(e, "%s: %s: shape: dim %u is not a non-negative integer", nm, name, i);
        t->shape[i] = (int64_t)d;
        if (!bn_mul_u64(n, d, &n)) return bn_errf(e, "%s: %s: shape: element count overflows", nm, name);
    }
    t->n_elem = n;
    const bn_json *off = bn_json_get(v, "data_offsets");
    if (bn_json_type_of(off) != BN_JSON_ARR || bn_json_len(off) != 2 ||
        !bn_json_u64(bn_json_at(off, 0), &t->begin) || !bn_json_u64(bn_json_at(off, 1), &t->end))
        return bn_errf(e, "%s: %s: data_offsets: not two non-negative integers", nm, name);
    if (t->end < t->begin) return bn_errf(e, "%s: %s: data_offsets: end before begin", nm, name);
    uint64_t bytes;
    if (!bn_mul_u64(n, dtypes[dt].size, &bytes)) return bn_errf(e, "%s: %s: byte size overflows", nm, name);
    if (t->end - t->begin != bytes)
        return bn_errf(e, "%s: %s: data_offsets: span %llu bytes, shape and dtype need %llu", nm, name,
                       (unsigned long long)(t->end - t->begin), (unsigned long long)bytes);
    if (t->end > st->buf_len)
        return bn_errf(e, "%s: %s: data_offsets: end %llu beyond the data (%llu bytes; truncated file?)", nm, name,
                       (unsigned long long)t->end, (unsigned long long)st->buf_len);
    t->data = st->buf + t->begin;
    return 0;
}

/* Validate the header and build the tensor table. */
static int parse(bn_st *st, bn_err *e) {
    const char *nm = st->path;
    if (st->size < 8) return bn_errf(e, "%s: header: file too short (%zu bytes)", nm, st->size);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = (hl << 8) | st->base[i];
    if (hl > BN_ST_MAX_HEADER) return bn_errf(e, "%s: header: length %llu too large", nm, (unsigned long long)hl);
    if (hl > st->size - 8)
        return bn_errf(e, "%s: header: length %llu beyond the end of the file (truncated?)", nm, (unsigned long long)hl);
    if (hl < 2 || st->base[8] != '{') return bn_errf(e, "%s: header: does not start with '{'", nm);
    size_t jl = (size_t)hl;
    while (jl > 0 && st->base[8 + jl - 1] == ' ') jl--; /* trailing space padding is allowed */
    bn_err je;
    if (bn_json_parse(&st->hdr, (const char *)st->base + 8, jl, 16, "header", &je))
        return bn_errf(e, "%s: %s", nm, je.msg);
    const bn_json *root = bn_json_root(st->hdr);
    if (bn_json_type_of(root) != BN_JSON_OBJ) return bn_errf(e, "%s: header: not a JSON object", nm);
    st->buf = st->base + 8 + hl;
    st->buf_len = st->size - 8 - hl;
    size_t nk = bn_json_len(root);
    st->t = calloc(nk ? nk : 1, sizeof *st->t);
    if (!st->t) return bn_errf(e, "%s: out of memory", nm);
    for (size_t i = 0; i < nk; i++) {
        size_t kl;
        const char *k = bn_json_key_at(root, i, &kl);
        const bn_json *v = bn_json_at(root, i);
        if (strlen(k) != kl) return bn_errf(e, "%s: header: tensor name contains NUL", nm);
        if (strcmp(k, "__metadata__") == 0) {
            if (bn_json_type_of(v) != BN_JSON_OBJ) return bn_errf(e, "%s: __metadata__: not an object", nm);
            for (size_t j = 0; j < bn_json_len(v); j++)
                if (bn_json_type_of(bn_json_at(v, j)) != BN_JSON_STR)
                    return bn_errf(e, "%s: __metadata__: values must be strings", nm);
            st->meta = v;
            continue;
        }
        bn_st_tensor *t = &st->t[st->n];
        t->name = k;
        if (parse_entry(st, k, v, t, e)) return -1;
        st->n++;
    }
    /* contiguity: sorted by offset, each tensor starts where the previous ended */
    bn_st_tensor **s = malloc((st->n ? st->n : 1) * sizeof *s);
    if (!s) return bn_errf(e, "%s: out of memory", nm);
    for (size_t i = 0; i < st->n; i++) s[i] = &st->t[i];
    qsort(s, st->n, sizeof *s, cmp_begin);
    uint64_t pos = 0;
    int rc = 0;
    for (size_t i = 0; i < st->n && !rc; i++) {
        if (s[i]->begin < pos)
            rc = bn_errf(e, "%s: %s: data_offsets: overlaps %s", nm, s[i]->name, s[i - 1]->name);
        else if (s[i]->begin > pos)
            rc = bn_errf(e, "%s: %s: data_offsets: gap of %llu bytes before the tensor", nm, s[i]->name,
                         (unsigned long long)(s[i]->begin - pos));
        pos = s[i]->end;
    }
    free(s);
    if (rc) return rc;
    if (pos != st->buf_len)
        return bn_errf(e, "%s: data: %llu bytes after the last tensor (header says %llu)", nm,
                       (unsigned long long)(st->buf_len - pos), (unsigned long long)pos);
    return 0;
}

/* Allocate the handle; shared by the file and memory openers. */
static bn_st *st_new(const char *name, bn_err *e) {
    bn_st *st = calloc(1, sizeof *st);
    if (!st || !(st->path = strdup(name))) {
        free(st);
        bn_errf(e, "%s: out of memory", name);
        return NULL;
    }
    return st;
}

/* Validate a file held in memory (fuzzer, tests). */
int bn_st_open_mem(bn_st **out, const void *data, size_t len, const char *name, bn_err *e) {
    *out = NULL;
    bn_st *st = st_new(name ? name : "safetensors", e);
    if (!st) return -1;
    st->base = data;
    st->size = len;
    if (parse(st, e)) {
        bn_st_close(st);
        return -1;
    }
    *out = st;
    return 0;
}

/* Map a file read-only and validate it; tensors point into the mapping. */
int bn_st_open(bn_st **out, const char *path, bn_err *e) {
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return bn_errf(e, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return bn_errf(e, "%s: not a regular file", path);
    }
    bn_st *st = st_new(path, e);
    if (!st) { close(fd); return -1; }
    st->size = (size_t)sb.st_size;
    if (st->size > 0) {
        void *m = mmap(NULL, st->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            close(fd);
            bn_st_close(st);
            return bn_errf(e, "%s: mmap failed: %s", path, strerror(errno));
        }
        st->base = m;
        st->mapped = true;
    } else {
        st->base = (const uint8_t *)"";
    }
    close(fd);
    if (parse(st, e)) {
        bn_st_close(st);
        return -1;
    }
    *out = st;
    return 0;
}

/* Unmap and free. */
void bn_st_close(bn_st *st) {
    if (!st) return;
    if (st->mapped) munmap((void *)st->base, st->size);
    bn_json_free(st->hdr);
    free(st->t);
    free(st->path);
    free(st);
}

/* Name used in messages. */
const char *bn_st_path(const bn_st *st) { return st->path; }
/* Tensor count (without __metadata__). */
size_t bn_st_n_tensors(const bn_st *st) { return st->n; }
/* Tensor by header position. */
const bn_st_tensor *bn_st_tensor_at(const bn_st *st, size_t i) { return i < st->n ? &st->t[i] : NULL; }
/* The __metadata__ object, if any. */
const bn_json *bn_st_metadata(const bn_st *st) { return st->meta; }

/* Tensor by name (linear: a few hundred tensors per shard). */
const bn_st_tensor *bn_st_find(const bn_st *st, const char *name) {
    for (size_t i = 0; i < st->n; i++)
        if (strcmp(st->t[i].name, name) == 0) return &st->t[i];
    return NULL;
}

/* Drop a converted tensor's pages so RSS stays near one tensor. */
void bn_st_release(const bn_st *st, const bn_st_tensor *t) {
    if (!st->mapped || t->end == t->begin) return;
    uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t a = ((uintptr_t)t->data + pg - 1) & ~(pg - 1);
    uintptr_t b = ((uintptr_t)t->data + (uintptr_t)(t->end - t->begin)) & ~(pg - 1);
    if (b > a) madvise((void *)a, b - a, MADV_DONTNEED);
}

/* One element of a float tensor as f32 (bf16 and f16 widen exactly). */
float bn_st_get_f32(const bn_st_tensor *t, uint64_t i) {
    const uint8_t *p = t->data;
    switch (t->dtype) {
    case BN_ST_F32: { float f; memcpy(&f, p + 4 * i, 4); return f; }
    case BN_ST_F16: { uint16_t h; memcpy(&h, p + 2 * i, 2); return bn_f16_to_f32(h); }
    case BN_ST_BF16: { uint16_t h; memcpy(&h, p + 2 * i, 2); return bn_bf16_to_f32(h); }
    default: return 0.0f;
    }
}
