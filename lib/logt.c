/* logt.c - read and write LOGT logits files. */
#include "logt.h"
#include "outfile.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LOGT_MAX_BYTES ((uint64_t)1 << 34)

static uint32_t rd_u32le(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Decode little-endian floats into host order (a no-op copy on x86/arm64). */
static void floats_from_le(float *dst, const uint8_t *src, uint64_t n) {
    for (uint64_t i = 0; i < n; i++) {
        uint32_t u = rd_u32le(src + 4 * i);
        memcpy(&dst[i], &u, 4);
    }
}

/* Whole file into memory with a size cap. */
static int slurp(const char *path, uint8_t **buf, uint64_t *len, bn_err *e) {
    FILE *f = fopen(path, "rb");
    if (!f) return bn_errf(e, "%s: open: %s", path, strerror(errno));
    if (fseek(f, 0, SEEK_END) != 0) { fclose(f); return bn_errf(e, "%s: seek: %s", path, strerror(errno)); }
    long sz = ftell(f);
    if (sz < 0 || (uint64_t)sz > LOGT_MAX_BYTES) { fclose(f); return bn_errf(e, "%s: size: unusable", path); }
    rewind(f);
    uint8_t *b = malloc(sz ? (size_t)sz : 1);
    if (!b) { fclose(f); return bn_errf(e, "%s: read: out of memory", path); }
    if (sz && fread(b, 1, (size_t)sz, f) != (size_t)sz) { free(b); fclose(f); return bn_errf(e, "%s: read: short read", path); }
    fclose(f);
    *buf = b;
    *len = (uint64_t)sz;
    return 0;
}

/* Read a LOGT file; the payload size must match the header exactly. */
int bn_logt_read(bn_logt *l, const char *path, bn_err *e) {
    memset(l, 0, sizeof *l);
    uint8_t *b;
    uint64_t len;
    if (slurp(path, &b, &len, e) < 0) return -1;
    int rc = -1;
    if (len < 16 || memcmp(b, "LOGT", 4) != 0) { bn_errf(e, "%s: magic: not a LOGT file", path); goto out; }
    if (rd_u32le(b + 4) != 1) { bn_errf(e, "%s: version: %u unsupported (want 1)", path, rd_u32le(b + 4)); goto out; }
    uint32_t nr = rd_u32le(b + 8), nv = rd_u32le(b + 12);
    uint64_t want = 16 + (uint64_t)nr * nv * 4;
    if (nv == 0 || want != len) {
        bn_errf(e, "%s: size: %llu bytes, header says %u rows x %u vocab", path, (unsigned long long)len, nr, nv);
        goto out;
    }
    l->data = malloc((size_t)nr * nv * 4 + 4);
    if (!l->data) { bn_errf(e, "%s: read: out of memory", path); goto out; }
    floats_from_le(l->data, b + 16, (uint64_t)nr * nv);
    l->n_rows = nr;
    l->n_vocab = nv;
    rc = 0;
out:
    free(b);
    return rc;
}

/* Read headerless float32 rows. */
int bn_logt_read_raw(bn_logt *l, const char *path, uint32_t n_vocab, bn_err *e) {
    memset(l, 0, sizeof *l);
    uint8_t *b;
    uint64_t len;
    if (n_vocab == 0) return bn_errf(e, "%s: n_vocab: must be > 0", path);
    if (slurp(path, &b, &len, e) < 0) return -1;
    if (len % ((uint64_t)n_vocab * 4) != 0 || len / ((uint64_t)n_vocab * 4) > UINT32_MAX) {
        free(b);
        return bn_errf(e, "%s: size: %llu bytes is not a whole number of %u-float rows", path,
                       (unsigned long long)len, n_vocab);
    }
    l->n_rows = (uint32_t)(len / ((uint64_t)n_vocab * 4));
    l->n_vocab = n_vocab;
    l->data = malloc(len + 4);
    if (!l->data) { free(b); return bn_errf(e, "%s: read: out of memory", path); }
    floats_from_le(l->data, b, len / 4);
    free(b);
    return 0;
}

void bn_logt_free(bn_logt *l) {
    free(l->data);
    memset(l, 0, sizeof *l);
}

struct bn_logt_writer {
    bn_outfile out;
    uint32_t n_vocab, n_rows;
};

static void put_u32le(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}

/* Open the output (temp file + rename) and write a header with 0 rows
 * (patched at close). */
int bn_logt_writer_new(bn_logt_writer **out, const char *path, uint32_t n_vocab, bn_err *e) {
    *out = NULL;
    bn_logt_writer *w = bn_calloc(1, sizeof *w, e);
    if (!w) return -1;
    if (bn_outfile_open(&w->out, path, e) < 0) { free(w); return -1; }
    w->n_vocab = n_vocab;
    uint8_t h[16] = { 'L', 'O', 'G', 'T' };
    put_u32le(h + 4, 1);
    put_u32le(h + 12, n_vocab);
    if (fwrite(h, 1, 16, w->out.f) != 16) {
        bn_errf(e, "%s: write: %s", path, strerror(errno));
        bn_logt_writer_abort(w);
        return -1;
    }
    *out = w;
    return 0;
}

/* Append rows (host floats written little endian). */
int bn_logt_writer_rows(bn_logt_writer *w, const float *rows, uint32_t n_rows, bn_err *e) {
    uint8_t buf[4096];
    uint64_t total = (uint64_t)n_rows * w->n_vocab, done = 0;
    while (done < total) {
        size_t k = 0;
        for (; k < sizeof buf / 4 && done < total; k++, done++) {
            uint32_t u;
            memcpy(&u, &rows[done], 4);
            put_u32le(buf + 4 * k, u);
        }
        if (fwrite(buf, 4, k, w->out.f) != k) return bn_errf(e, "%s: write: %s", w->out.path, strerror(errno));
    }
    if (w->n_rows + (uint64_t)n_rows > UINT32_MAX) return bn_errf(e, "%s: n_rows: too many rows", w->out.path);
    w->n_rows += n_rows;
    return 0;
}

/* Patch the row count, then commit the file. */
int bn_logt_writer_close(bn_logt_writer *w, bn_err *e) {
    uint8_t nr[4];
    put_u32le(nr, w->n_rows);
    int rc;
    if (w->out.tmp && (fseek(w->out.f, 8, SEEK_SET) != 0 || fwrite(nr, 1, 4, w->out.f) != 4)) {
        rc = bn_errf(e, "%s: write: %s", w->out.path, strerror(errno));
        bn_outfile_abort(&w->out);
    } else {
        rc = bn_outfile_commit(&w->out, e);
    }
    free(w);
    return rc;
}

void bn_logt_writer_abort(bn_logt_writer *w) {
    if (!w) return;
    bn_outfile_abort(&w->out);
    free(w);
}
