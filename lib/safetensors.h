/* safetensors.h - bounds-checked reader for the safetensors format
 * (huggingface/safetensors): u64 little-endian header length N, N bytes of
 * JSON header {"name": {"dtype", "shape", "data_offsets": [begin, end]}, ...,
 * "__metadata__": {str: str}}, then the data buffer. Offsets are relative to
 * the buffer (byte 8 + N).
 *
 * Checks, as the reference implementation: N <= 100 MB and inside the file,
 * header is a JSON object starting with '{' (trailing spaces allowed), known
 * dtypes, shapes of non-negative integers, end - begin == product(shape) *
 * dtype size without overflow, tensors cover the data buffer contiguously
 * (sorted by offset: no gap, no overlap) up to the end of the file. */
#ifndef BN_SAFETENSORS_H
#define BN_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>
#include "json.h"
#include "util.h"

typedef enum bn_st_dtype {
    BN_ST_BOOL = 0, BN_ST_U8, BN_ST_I8, BN_ST_F8_E4M3, BN_ST_F8_E5M2, BN_ST_I16, BN_ST_U16,
    BN_ST_F16, BN_ST_BF16, BN_ST_I32, BN_ST_U32, BN_ST_F32, BN_ST_F64, BN_ST_I64, BN_ST_U64,
    BN_ST_DTYPE_COUNT
} bn_st_dtype;

#define BN_ST_MAX_DIMS 8
#define BN_ST_MAX_HEADER (100u * 1024 * 1024)

typedef struct bn_st_tensor {
    const char *name;       /* NUL-terminated, owned by the bn_st */
    bn_st_dtype dtype;
    uint32_t n_dims;        /* 0 for a scalar */
    int64_t shape[BN_ST_MAX_DIMS]; /* row-major: shape[n_dims-1] varies fastest */
    uint64_t n_elem;
    uint64_t begin, end;    /* offsets in the data buffer */
    const uint8_t *data;    /* begin of the tensor's bytes */
} bn_st_tensor;

typedef struct bn_st bn_st; /* opaque */

/* Map and validate a file; "path: field: reason" on error. */
int bn_st_open(bn_st **out, const char *path, bn_err *e);
/* The same on a buffer that must outlive the bn_st (fuzzing, tests). */
int bn_st_open_mem(bn_st **out, const void *data, size_t len, const char *name, bn_err *e);
void bn_st_close(bn_st *st);

const char *bn_st_path(const bn_st *st);
size_t bn_st_n_tensors(const bn_st *st);
const bn_st_tensor *bn_st_tensor_at(const bn_st *st, size_t i); /* header order */
const bn_st_tensor *bn_st_find(const bn_st *st, const char *name); /* NULL if absent */
/* "__metadata__" object or NULL. */
const bn_json *bn_st_metadata(const bn_st *st);

/* Tell the kernel the pages of a tensor are no longer needed (a file mapping
 * is dropped from RSS; re-reading faults them back in). No-op on buffers. */
void bn_st_release(const bn_st *st, const bn_st_tensor *t);

const char *bn_st_dtype_name(bn_st_dtype t); /* "BF16", ... */
size_t bn_st_dtype_size(bn_st_dtype t);      /* bytes per element */
int bn_st_dtype_from_name(const char *s);    /* -1 if unknown */

/* Convert element i of a F32/F16/BF16 tensor to float (no checks on i). */
float bn_st_get_f32(const bn_st_tensor *t, uint64_t i);

#endif
