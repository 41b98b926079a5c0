/* gguf_write.c - streaming GGUF v3 writer.
 *
 * Metadata and tensor declarations are collected in memory (they are small:
 * even a 128k-token vocabulary is a few MB); the header, the tensor-info
 * table and the padding are written when the first tensor data arrives (or at
 * finish), then tensor data streams straight to the file, each tensor padded
 * with zeros to general.alignment exactly like llama.cpp's gguf writer. The
 * output goes to "<path>.tmp.<pid>" and is renamed into place only when every
 * declared tensor has been written completely. */
#include "gguf.h"
#include "outfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct wtensor {
    char name[BN_GGUF_MAX_NAME];
    uint32_t type, n_dims;
    int64_t ne[BN_GGUF_MAX_DIMS];
    uint64_t offset, nbytes;
} wtensor;

struct bn_gguf_writer {
    char *path;
    bn_outfile out; /* temp file beside path, renamed by finish */
    FILE *f;        /* = out.f while open */
    bool failed, header_done;
    uint8_t *meta; /* serialized kv pairs */
    size_t meta_n, meta_cap;
    uint64_t n_kv;
    char **keys;   /* for duplicate detection */
    uint64_t keys_cap;
    wtensor *t;
    uint64_t n_t, t_cap;
    uint64_t data_size; /* running, aligned */
    uint32_t alignment;
    uint64_t cur;       /* tensor whose data is being written */
    uint64_t cur_done;  /* bytes of it written so far */
};

/* Any failure poisons the writer and removes the temp file at once, so a
 * crash later cannot leave a half-written model behind. */
static int fail(bn_gguf_writer *w, bn_err *e) {
    if (w && !w->failed) {
        w->failed = true;
        bn_outfile_abort(&w->out);
        w->f = NULL;
    }
    (void)e;
    return -1;
}

int bn_gguf_writer_new(bn_gguf_writer **out, const char *path, bn_err *e) {
    *out = NULL;
    bn_gguf_writer *w = calloc(1, sizeof *w);
    if (!w || !(w->path = strdup(path))) {
        free(w);
        return bn_errf(e, "%s: out of memory", path);
    }
    if (bn_outfile_open(&w->out, path, e) < 0) {
        free(w->path);
        free(w);
        return -1;
    }
    w->f = w->out.f;
    setvbuf(w->f, NULL, _IOFBF, 1 << 20);
    w->alignment = 32;
    *out = w;
    return 0;
}

static int meta_put(bn_gguf_writer *w, const void *d, size_t n, bn_err *e) {
    if (w->meta_n + n > w->meta_cap) {
        size_t nc = w->meta_cap ? w->meta_cap : 4096;
        while (nc < w->meta_n + n) nc *= 2;
        uint8_t *p = realloc(w->meta, nc);
        if (!p) { bn_errf(e, "%s: out of memory", w->path); return fail(w, e); }
        w->meta = p;
        w->meta_cap = nc;
    }
    memcpy(w->meta + w->meta_n, d, n);
    w->meta_n += n;
    return 0;
}

static int meta_le(bn_gguf_writer *w, uint64_t v, unsigned n, bn_err *e) {
    uint8_t b[8];
    for (unsigned i = 0; i < n; i++) b[i] = (uint8_t)(v >> (8 * i));
    return meta_put(w, b, n, e);
}

static int meta_str(bn_gguf_writer *w, const char *s, uint64_t n, bn_err *e) {
    if (meta_le(w, n, 8, e)) return -1;
    return meta_put(w, s, (size_t)n, e);
}

/* Start a kv pair: refuse late, duplicate and malformed keys, check the
 * general.alignment rules, then emit key and type. */
static int begin_kv(bn_gguf_writer *w, const char *key, size_t klen, uint32_t type, bn_err *e) {
    if (w->failed) return bn_errf(e, "%s: writer already failed", w->path);
    if (w->header_done) {
        bn_errf(e, "%s: kv '%.*s': metadata after tensor data started", w->path, (int)klen, key);
        return fail(w, e);
    }
    if (klen == 0) { bn_errf(e, "%s: kv: empty key", w->path); return fail(w, e); }
    for (uint64_t i = 0; i < w->n_kv; i++)
        if (strlen(w->keys[i]) == klen && memcmp(w->keys[i], key, klen) == 0) {
            bn_errf(e, "%s: kv '%.*s': duplicate key", w->path, (int)klen, key);
            return fail(w, e);
        }
    if (w->n_kv == w->keys_cap) {
        uint64_t nc = w->keys_cap ? w->keys_cap * 2 : 32;
        char **k = realloc(w->keys, nc * sizeof *k);
        if (!k) { bn_errf(e, "%s: out of memory", w->path); return fail(w, e); }
        w->keys = k;
        w->keys_cap = nc;
    }
    char *kc = malloc(klen + 1);
    if (!kc) { bn_errf(e, "%s: out of memory", w->path); return fail(w, e); }
    memcpy(kc, key, klen);
    kc[klen] = 0;
    if (memchr(kc, 0, klen)) {
        free(kc);
        bn_errf(e, "%s: kv: key contains a NUL byte", w->path);
        return fail(w, e);
    }
    w->keys[w->n_kv++] = kc;
    if (strcmp(kc, "general.alignment") == 0 && type != BN_GGUF_U32) {
        bn_errf(e, "%s: kv 'general.alignment': must be u32", w->path);
        return fail(w, e);
    }
    if (meta_str(w, key, klen, e) || meta_le(w, type, 4, e)) return -1;
    return 0;
}

int bn_gguf_w_u32(bn_gguf_writer *w, const char *key, uint32_t v, bn_err *e) {
    if (strcmp(key, "general.alignment") == 0) {
        if (v == 0 || (v & (v - 1))) {
            bn_errf(e, "%s: kv 'general.alignment': %u is not a power of two", w->path, v);
            return fail(w, e);
        }
        if (w->n_t) {
            bn_errf(e, "%s: kv 'general.alignment': must be set before any tensor", w->path);
            return fail(w, e);
        }
    }
    if (begin_kv(w, key, strlen(key), BN_GGUF_U32, e)) return -1;
    if (strcmp(key, "general.alignment") == 0) w->alignment = v;
    return meta_le(w, v, 4, e);
}

int bn_gguf_w_i32(bn_gguf_writer *w, const char *key, int32_t v, bn_err *e) {
    if (begin_kv(w, key, strlen(key), BN_GGUF_I32, e)) return -1;
    return meta_le(w, (uint32_t)v, 4, e);
}

int bn_gguf_w_u64(bn_gguf_writer *w, const char *key, uint64_t v, bn_err *e) {
    if (begin_kv(w, key, strlen(key), BN_GGUF_U64, e)) return -1;
    return meta_le(w, v, 8, e);
}

int bn_gguf_w_f32(bn_gguf_writer *w, const char *key, float v, bn_err *e) {
    uint32_t u;
    memcpy(&u, &v, 4);
    if (begin_kv(w, key, strlen(key), BN_GGUF_F32, e)) return -1;
    return meta_le(w, u, 4, e);
}

int bn_gguf_w_bool(bn_gguf_writer *w, const char *key, bool v, bn_err *e) {
    if (begin_kv(w, key, strlen(key), BN_GGUF_BOOL, e)) return -1;
    return meta_le(w, v ? 1 : 0, 1, e);
}

int bn_gguf_w_str(bn_gguf_writer *w, const char *key, const char *v, bn_err *e) {
    return bn_gguf_w_str_n(w, key, v, strlen(v), e);
}

int bn_gguf_w_str_n(bn_gguf_writer *w, const char *key, const char *v, size_t len, bn_err *e) {
    if (begin_kv(w, key, strlen(key), BN_GGUF_STR, e)) return -1;
    return meta_str(w, v, len, e);
}

int bn_gguf_w_arr_str(bn_gguf_writer *w, const char *key, const bn_gguf_str *v, uint64_t n, bn_err *e) {
    if (begin_kv(w, key, strlen(key), BN_GGUF_ARR, e) || meta_le(w, BN_GGUF_STR, 4, e) ||
        meta_le(w, n, 8, e))
        return -1;
    for (uint64_t i = 0; i < n; i++)
        if (meta_str(w, v[i].ptr, v[i].len, e)) return -1;
    return 0;
}

/* Fixed-size elements, little endian on the file side. */
static int w_arr_fixed(bn_gguf_writer *w, const char *key, uint32_t et, const void *v, uint64_t n,
                       unsigned es, bn_err *e) {
    if (begin_kv(w, key, strlen(key), BN_GGUF_ARR, e) || meta_le(w, et, 4, e) || meta_le(w, n, 8, e))
        return -1;
    const uint8_t *p = v;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t x = 0;
        memcpy(&x, p + i * es, es); /* little-endian host (x86, aarch64) */
        if (meta_le(w, x, es, e)) return -1;
    }
    return 0;
}

int bn_gguf_w_arr_f32(bn_gguf_writer *w, const char *key, const float *v, uint64_t n, bn_err *e) {
    return w_arr_fixed(w, key, BN_GGUF_F32, v, n, 4, e);
}

int bn_gguf_w_arr_i32(bn_gguf_writer *w, const char *key, const int32_t *v, uint64_t n, bn_err *e) {
    return w_arr_fixed(w, key, BN_GGUF_I32, v, n, 4, e);
}

/* Re-encode a parsed pair; arrays are copied byte for byte (they were
 * validated by the reader, nested ones included). */
int bn_gguf_w_copy_kv(bn_gguf_writer *w, const bn_gguf_kv *kv, bn_err *e) {
    if (bn_gguf_str_eq(kv->key, "general.alignment")) {
        if (kv->type != BN_GGUF_U32) {
            bn_errf(e, "%s: kv 'general.alignment': must be u32", w->path);
            return fail(w, e);
        }
        return bn_gguf_w_u32(w, "general.alignment", (uint32_t)kv->v.u, e);
    }
    if (begin_kv(w, kv->key.ptr, (size_t)kv->key.len, kv->type, e)) return -1;
    switch (kv->type) {
    case BN_GGUF_U8: case BN_GGUF_BOOL: return meta_le(w, kv->v.u, 1, e);
    case BN_GGUF_I8: return meta_le(w, (uint64_t)kv->v.i, 1, e);
    case BN_GGUF_U16: return meta_le(w, kv->v.u, 2, e);
    case BN_GGUF_I16: return meta_le(w, (uint64_t)kv->v.i, 2, e);
    case BN_GGUF_U32: return meta_le(w, kv->v.u, 4, e);
    case BN_GGUF_I32: return meta_le(w, (uint64_t)kv->v.i, 4, e);
    case BN_GGUF_U64: return meta_le(w, kv->v.u, 8, e);
    case BN_GGUF_I64: return meta_le(w, (uint64_t)kv->v.i, 8, e);
    case BN_GGUF_F32: { float f = (float)kv->v.f; uint32_t u; memcpy(&u, &f, 4); return meta_le(w, u, 4, e); }
    case BN_GGUF_F64: { uint64_t u; memcpy(&u, &kv->v.f, 8); return meta_le(w, u, 8, e); }
    case BN_GGUF_STR: return meta_str(w, kv->v.s.ptr, kv->v.s.len, e);
    case BN_GGUF_ARR:
        if (meta_le(w, kv->arr_type, 4, e) || meta_le(w, kv->arr_n, 8, e)) return -1;
        return meta_put(w, kv->arr_data, (size_t)kv->arr_bytes, e);
    default:
        bn_errf(e, "%s: kv '%.*s': bad value type %u", w->path, (int)kv->key.len, kv->key.ptr, kv->type);
        return fail(w, e);
    }
}

/* Declaring computes the tensor's offset now, so the info table is known
 * before any data is written. */
int bn_gguf_w_tensor(bn_gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                     const int64_t *ne, bn_err *e) {
    if (w->failed) return bn_errf(e, "%s: writer already failed", w->path);
    size_t nl = strlen(name);
    if (w->header_done) {
        bn_errf(e, "%s: tensor '%s': declared after tensor data started", w->path, name);
        return fail(w, e);
    }
    if (nl == 0 || nl >= BN_GGUF_MAX_NAME) {
        bn_errf(e, "%s: tensor '%s': name must be 1..%d bytes", w->path, name, BN_GGUF_MAX_NAME - 1);
        return fail(w, e);
    }
    for (uint64_t i = 0; i < w->n_t; i++)
        if (strcmp(w->t[i].name, name) == 0) {
            bn_errf(e, "%s: tensor '%s': duplicate tensor name", w->path, name);
            return fail(w, e);
        }
    if (w->n_t >= (uint64_t)INT32_MAX) {
        bn_errf(e, "%s: too many tensors", w->path);
        return fail(w, e);
    }
    wtensor t = {0};
    memcpy(t.name, name, nl);
    t.type = type;
    t.n_dims = n_dims;
    for (uint32_t d = 0; d < BN_GGUF_MAX_DIMS; d++) t.ne[d] = (d < n_dims) ? ne[d] : 1;
    if (bn_type_nbytes(type, t.ne, n_dims, &t.nbytes, e)) {
        char pre[128];
        snprintf(pre, sizeof pre, "%s: tensor '%s'", w->path, name);
        bn_err_prefix(e, pre);
        return fail(w, e);
    }
    t.offset = w->data_size;
    uint64_t end;
    if (!bn_add_u64(t.offset, t.nbytes, &end) || !bn_align_up_u64(end, w->alignment, &end)) {
        bn_errf(e, "%s: tensor '%s': data section size overflows", w->path, name);
        return fail(w, e);
    }
    if (w->n_t == w->t_cap) {
        uint64_t nc = w->t_cap ? w->t_cap * 2 : 64;
        wtensor *p = realloc(w->t, nc * sizeof *p);
        if (!p) { bn_errf(e, "%s: out of memory", w->path); return fail(w, e); }
        w->t = p;
        w->t_cap = nc;
    }
    w->t[w->n_t] = t;
    w->data_size = end;
    return (int)w->n_t++;
}

static int fput_le(bn_gguf_writer *w, uint64_t v, unsigned n) {
    uint8_t b[8];
    for (unsigned i = 0; i < n; i++) b[i] = (uint8_t)(v >> (8 * i));
    return fwrite(b, 1, n, w->f) == n ? 0 : -1;
}

static int write_zeros(bn_gguf_writer *w, uint64_t n) {
    static const uint8_t z[64];
    while (n) {
        size_t k = n < sizeof z ? (size_t)n : sizeof z;
        if (fwrite(z, 1, k, w->f) != k) return -1;
        n -= k;
    }
    return 0;
}

/* Header, metadata, tensor infos and padding up to the data section. */
static int write_header(bn_gguf_writer *w, bn_err *e) {
    if (w->header_done) return 0;
    uint64_t pos = 24 + w->meta_n;
    int bad = fwrite("GGUF", 1, 4, w->f) != 4 || fput_le(w, 3, 4) || fput_le(w, w->n_t, 8) ||
              fput_le(w, w->n_kv, 8) || (w->meta_n && fwrite(w->meta, 1, w->meta_n, w->f) != w->meta_n);
    for (uint64_t i = 0; i < w->n_t && !bad; i++) {
        const wtensor *t = &w->t[i];
        size_t nl = strlen(t->name);
        bad |= fput_le(w, nl, 8) || fwrite(t->name, 1, nl, w->f) != nl || fput_le(w, t->n_dims, 4);
        for (uint32_t d = 0; d < t->n_dims; d++) bad |= fput_le(w, (uint64_t)t->ne[d], 8);
        bad |= fput_le(w, t->type == BN_TYPE_MXFP4 ? 39 : t->type, 4) || fput_le(w, t->offset, 8);
        pos += 8 + nl + 4 + 8ull * t->n_dims + 4 + 8;
    }
    /* llama.cpp pads to the alignment even when there are no tensors */
    uint64_t aligned = pos;
    bn_align_up_u64(pos, w->alignment, &aligned);
    if (bad || write_zeros(w, aligned - pos)) {
        bn_errf(e, "%s: write: %s", w->path, strerror(errno));
        return fail(w, e);
    }
    w->header_done = true;
    return 0;
}

int bn_gguf_w_data(bn_gguf_writer *w, int idx, const void *data, size_t n, bn_err *e) {
    if (w->failed) return bn_errf(e, "%s: writer already failed", w->path);
    if (write_header(w, e)) return -1;
    /* tensors with every byte written already are behind us */
    if (idx < 0 || (uint64_t)idx != w->cur || w->cur >= w->n_t) {
        bn_errf(e, "%s: tensor #%d: data out of declaration order (expected #%llu)", w->path, idx,
                (unsigned long long)w->cur);
        return fail(w, e);
    }
    wtensor *t = &w->t[w->cur];
    if (n > t->nbytes - w->cur_done) {
        bn_errf(e, "%s: tensor '%s': %zu bytes of data exceed its size %llu", w->path, t->name,
                n + (size_t)w->cur_done, (unsigned long long)t->nbytes);
        return fail(w, e);
    }
    if (n && fwrite(data, 1, n, w->f) != n) {
        bn_errf(e, "%s: write: %s", w->path, strerror(errno));
        return fail(w, e);
    }
    w->cur_done += n;
    if (w->cur_done == t->nbytes) {
        uint64_t end = t->offset + t->nbytes, aligned = end;
        bn_align_up_u64(end, w->alignment, &aligned);
        if (write_zeros(w, aligned - end)) {
            bn_errf(e, "%s: write: %s", w->path, strerror(errno));
            return fail(w, e);
        }
        w->cur++;
        w->cur_done = 0;
    }
    return 0;
}

static void writer_free(bn_gguf_writer *w) {
    bn_outfile_abort(&w->out); /* no-op after a commit */
    for (uint64_t i = 0; i < w->n_kv; i++) free(w->keys[i]);
    free(w->keys);
    free(w->meta);
    free(w->t);
    free(w->path);
    free(w);
}

int bn_gguf_writer_finish(bn_gguf_writer *w, bn_err *e) {
    int rc = -1;
    if (w->failed) {
        bn_errf(e, "%s: writer already failed", w->path);
    } else if (write_header(w, e) == 0) {
        /* zero-sized tensors cannot exist, so anything not reached is missing data */
        if (w->cur < w->n_t) {
            bn_errf(e, "%s: tensor '%s': data incomplete (%llu of %llu bytes)", w->path,
                    w->t[w->cur].name, (unsigned long long)w->cur_done,
                    (unsigned long long)w->t[w->cur].nbytes);
            fail(w, e);
        } else {
            w->f = NULL;
            rc = bn_outfile_commit(&w->out, e); /* flush, fsync, rename; removes the temp file on error */
        }
    }
    writer_free(w);
    return rc;
}

void bn_gguf_writer_abort(bn_gguf_writer *w) {
    if (!w) return;
    fail(w, NULL);
    writer_free(w);
}
