/* logt.h - the LOGT logits file format used by the reference fixtures:
 * 16-byte header  char magic[4] = "LOGT"; uint32 version = 1; uint32 n_rows;
 * uint32 n_vocab;  then n_rows * n_vocab float32, little endian, row-major.
 * (Raw headerless float32 files, like kjv ref_logits.bin, can be read with
 * bn_logt_read_raw given n_vocab.) */
#ifndef BN_LOGT_H
#define BN_LOGT_H

#include <stdint.h>
#include <stdio.h>
#include "util.h"

typedef struct bn_logt {
    uint32_t n_rows, n_vocab;
    float *data; /* [n_rows][n_vocab], malloc'd */
} bn_logt;

/* Read a LOGT file (checks magic, version and that the size matches). */
int bn_logt_read(bn_logt *l, const char *path, bn_err *e);
/* Read a headerless float32 file of rows of n_vocab values. */
int bn_logt_read_raw(bn_logt *l, const char *path, uint32_t n_vocab, bn_err *e);
void bn_logt_free(bn_logt *l);

/* Streaming writer: rows are appended, the header is patched and the temp
 * file renamed over path at close (never a partial file). */
typedef struct bn_logt_writer bn_logt_writer;
int bn_logt_writer_new(bn_logt_writer **out, const char *path, uint32_t n_vocab, bn_err *e);
int bn_logt_writer_rows(bn_logt_writer *w, const float *rows, uint32_t n_rows, bn_err *e);
int bn_logt_writer_close(bn_logt_writer *w, bn_err *e); /* frees w */
void bn_logt_writer_abort(bn_logt_writer *w);            /* frees w, removes the temp file */

#endif
