/* gguf.h - GGUF v2/v3 reader (mmap, every read bounds-checked), type traits,
 * model-level validation helpers and a streaming writer.
 *
 * Strings in the file are NOT NUL-terminated: they are (ptr, len) views into
 * the mapping and stay valid until bn_gguf_close(). */
#ifndef BN_GGUF_H
#define BN_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "util.h"

/* ---- ggml tensor types ---------------------------------------------------- */

/* Ids as in llama.cpp's ggml.h; 36..39 as in bitnet.cpp's fork. Id 39 is TL2
 * in bitnet.cpp files and MXFP4 in current upstream: see bn_type_resolve(). */
typedef enum bn_type {
    BN_TYPE_F32 = 0, BN_TYPE_F16 = 1, BN_TYPE_Q4_0 = 2, BN_TYPE_Q4_1 = 3,
    BN_TYPE_Q5_0 = 6, BN_TYPE_Q5_1 = 7, BN_TYPE_Q8_0 = 8, BN_TYPE_Q8_1 = 9,
    BN_TYPE_Q2_K = 10, BN_TYPE_Q3_K = 11, BN_TYPE_Q4_K = 12, BN_TYPE_Q5_K = 13,
    BN_TYPE_Q6_K = 14, BN_TYPE_Q8_K = 15, BN_TYPE_IQ2_XXS = 16, BN_TYPE_IQ2_XS = 17,
    BN_TYPE_IQ3_XXS = 18, BN_TYPE_IQ1_S = 19, BN_TYPE_IQ4_NL = 20, BN_TYPE_IQ3_S = 21,
    BN_TYPE_IQ2_S = 22, BN_TYPE_IQ4_XS = 23, BN_TYPE_I8 = 24, BN_TYPE_I16 = 25,
    BN_TYPE_I32 = 26, BN_TYPE_I64 = 27, BN_TYPE_F64 = 28, BN_TYPE_IQ1_M = 29,
    BN_TYPE_BF16 = 30, BN_TYPE_TQ1_0 = 34, BN_TYPE_TQ2_0 = 35,
    BN_TYPE_I2_S = 36, BN_TYPE_I8_S = 37, BN_TYPE_TL1 = 38, BN_TYPE_TL2 = 39,
    BN_TYPE_MXFP4 = 1039, /* upstream id 39, remapped here after bn_type_resolve() */
} bn_type;

typedef struct bn_type_traits {
    const char *name;    /* "f32", "tq2_0", "i2_s", ... as llama.cpp prints them */
    uint32_t blck_size;  /* elements per block (I2_S: 128, the packing group) */
    uint32_t type_size;  /* bytes per block (I2_S: 32) */
    uint32_t trailer;    /* bytes after the packed data for the whole tensor (I2_S, TL1, TL2: 32);
                          * TL2's size is special-cased in bn_type_nbytes (traits nominal 1/1) */
    bool is_quantized;
} bn_type_traits;

/* Traits for a type id (after resolution), NULL if unknown. */
const bn_type_traits *bn_type_traits_get(uint32_t type);
const char *bn_type_name(uint32_t type); /* "?" when unknown */
/* Parse "i2_s", "TQ2_0", "f16"... case-insensitively; -1 if unknown. */
int bn_type_from_name(const char *name);

/* Bytes a tensor of this type and shape occupies, with the I2_S/TL1/TL2
 * special sizes (n/4 + 32, ...). Errors on overflow, on element counts that
 * are not a multiple of the block size, and on unknown types. */
int bn_type_nbytes(uint32_t type, const int64_t *ne, uint32_t n_dims, uint64_t *out, bn_err *e);

/* ---- metadata values ------------------------------------------------------ */

typedef enum bn_gguf_vtype {
    BN_GGUF_U8 = 0, BN_GGUF_I8 = 1, BN_GGUF_U16 = 2, BN_GGUF_I16 = 3,
    BN_GGUF_U32 = 4, BN_GGUF_I32 = 5, BN_GGUF_F32 = 6, BN_GGUF_BOOL = 7,
    BN_GGUF_STR = 8, BN_GGUF_ARR = 9, BN_GGUF_U64 = 10, BN_GGUF_I64 = 11,
    BN_GGUF_F64 = 12,
} bn_gguf_vtype;

const char *bn_gguf_vtype_name(uint32_t vtype);
/* Bytes of one value of a fixed-size type; 0 for STR, ARR and unknown types. */
uint32_t bn_gguf_vtype_size(uint32_t vtype);

typedef struct bn_gguf_str {
    const char *ptr; /* not NUL-terminated */
    uint64_t len;
} bn_gguf_str;

/* One metadata pair. Scalars are decoded; arrays keep a pointer to their first
 * element in the mapping and are read with an iterator. */
typedef struct bn_gguf_kv {
    bn_gguf_str key;
    uint32_t type;          /* bn_gguf_vtype */
    union {
        uint64_t u;         /* U8..U64, BOOL */
        int64_t i;          /* I8..I64 */
        double f;           /* F32, F64 */
        bn_gguf_str s;      /* STR */
    } v;
    uint32_t arr_type;      /* ARR: element type */
    uint64_t arr_n;         /* ARR: element count */
    const uint8_t *arr_data;/* ARR: first element (validated to lie in the file) */
    uint64_t arr_bytes;     /* ARR: total bytes of the elements */
} bn_gguf_kv;

/* Walk the elements of an array value (already validated at open). */
typedef struct bn_gguf_arr_iter {
    const uint8_t *p, *end;
    uint32_t type;
    uint64_t i, n;
} bn_gguf_arr_iter;

void bn_gguf_arr_iter_init(bn_gguf_arr_iter *it, const bn_gguf_kv *kv);
/* Next element as a string (STR arrays) / integer / float; false at the end
 * or when the element type does not fit the request. */
bool bn_gguf_arr_next_str(bn_gguf_arr_iter *it, bn_gguf_str *out);
bool bn_gguf_arr_next_i64(bn_gguf_arr_iter *it, int64_t *out);
bool bn_gguf_arr_next_f64(bn_gguf_arr_iter *it, double *out);
/* Nested arrays (element type ARR): describe the next element as an array kv
 * (key empty) that can be iterated in turn. */
bool bn_gguf_arr_next_arr(bn_gguf_arr_iter *it, bn_gguf_kv *out);

/* ---- tensors -------------------------------------------------------------- */

#define BN_GGUF_MAX_DIMS 4
#define BN_GGUF_MAX_NAME 64 /* names must be shorter (GGML_MAX_NAME) */

typedef struct bn_gguf_tensor {
    char name[BN_GGUF_MAX_NAME];  /* NUL-terminated copy */
    uint32_t type;                /* resolved bn_type */
    uint32_t n_dims;
    int64_t ne[BN_GGUF_MAX_DIMS]; /* ne[0] = row length (inputs); unused dims are 1 */
    uint64_t offset;              /* relative to the data section */
    uint64_t nbytes;              /* from bn_type_nbytes() */
    const uint8_t *data;          /* into the mapping */
} bn_gguf_tensor;

/* ---- the file ------------------------------------------------------------- */

typedef struct bn_gguf bn_gguf; /* opaque */

/* Map and parse a file. Structural checks (GGUF security checklist): magic,
 * version 2/3, counts against the file size, string and array lengths, value
 * types, duplicate keys, alignment (u32 power of two), tensor names (< 64
 * bytes, unique), n_dims <= 4, positive dims, overflow-checked element counts
 * and byte sizes, block-size multiples, aligned in-bounds non-overlapping data.
 * On error returns -1 with "path: field: reason" in e. */
int bn_gguf_open(bn_gguf **out, const char *path, bn_err *e);
/* Where bn_gguf_open_ex puts the file. MAP: a read-only file mapping (shared
 * page cache, instant load). COPY_HUGE: read into private memory advised for
 * transparent 2 MB pages. Decode streams every weight once per token; a page
 * cache holding the file in 4 KB folios (as right after it was written) costs
 * a TLB walk per 4 KB, and which folios the cache holds is the kernel's
 * business (the same file went from 1.12 GB to 67 MB PMD-mapped within an
 * hour). 2b4t decode on the SPR VM, 1 / 2 threads: mapped from 4 KB folios
 * 9.8 / 17.6 tok/s, from large folios 11.2 / 20.5, copied 12.0 / 21.9 (0.97 /
 * 0.96 of the read probe); the copy costs ~0.3 s of load per GB (3 s when the
 * VM must first back the memory). */
typedef enum bn_gguf_load { BN_GGUF_MAP = 0, BN_GGUF_COPY_HUGE } bn_gguf_load;
int bn_gguf_open_ex(bn_gguf **out, const char *path, bn_gguf_load how, bn_err *e);
/* Whether the file was loaded with BN_GGUF_COPY_HUGE. */
bool bn_gguf_copied(const bn_gguf *g);
/* Whether transparent huge pages are on for madvised memory (Linux). */
bool bn_thp_enabled(void);
/* The same on a memory buffer (fuzzers, tests); name is used in messages. The
 * buffer must outlive the bn_gguf. */
int bn_gguf_open_mem(bn_gguf **out, const void *data, size_t len, const char *name, bn_err *e);
void bn_gguf_close(bn_gguf *g);
/* Map the page tables of the tensor data now (madvise MADV_POPULATE_READ,
 * Linux >= 5.14), as llama.cpp's MAP_POPULATE does: otherwise the first
 * pass over the weights takes one minor fault per 4 KB page (~300k for a
 * 1.2 GB model, ~0.4 s inside the first forward step). Returns 0, or -1
 * where the kernel cannot (nothing changes then: pages fault in lazily). */
int bn_gguf_prefault(const bn_gguf *g);

const char *bn_gguf_path(const bn_gguf *g);
uint32_t bn_gguf_version(const bn_gguf *g);
uint64_t bn_gguf_file_size(const bn_gguf *g);
uint32_t bn_gguf_alignment(const bn_gguf *g);
uint64_t bn_gguf_data_offset(const bn_gguf *g); /* absolute file offset of the data section */

uint64_t bn_gguf_n_kv(const bn_gguf *g);
const bn_gguf_kv *bn_gguf_kv_at(const bn_gguf *g, uint64_t i);
const bn_gguf_kv *bn_gguf_find(const bn_gguf *g, const char *key); /* NULL if absent */

/* Typed getters. Return 1 found, 0 absent, -1 present with an unusable type or
 * out-of-range value (e filled). Integer getters accept any integer type whose
 * value fits. */
int bn_gguf_get_u32(const bn_gguf *g, const char *key, uint32_t *out, bn_err *e);
int bn_gguf_get_i32(const bn_gguf *g, const char *key, int32_t *out, bn_err *e);
int bn_gguf_get_u64(const bn_gguf *g, const char *key, uint64_t *out, bn_err *e);
int bn_gguf_get_f32(const bn_gguf *g, const char *key, float *out, bn_err *e);
int bn_gguf_get_bool(const bn_gguf *g, const char *key, bool *out, bn_err *e);
int bn_gguf_get_str(const bn_gguf *g, const char *key, bn_gguf_str *out, bn_err *e);
/* Array of the given element type (BN_GGUF_STR etc.); *n gets its length. */
int bn_gguf_get_arr(const bn_gguf *g, const char *key, uint32_t elem_type,
                    const bn_gguf_kv **kv, uint64_t *n, bn_err *e);

/* Compare a file string with a C string. */
bool bn_gguf_str_eq(bn_gguf_str s, const char *c);

uint64_t bn_gguf_n_tensors(const bn_gguf *g);
const bn_gguf_tensor *bn_gguf_tensor_at(const bn_gguf *g, uint64_t i);
const bn_gguf_tensor *bn_gguf_find_tensor(const bn_gguf *g, const char *name); /* NULL if absent */

/* general.architecture as a C string copy into buf ("" if absent). */
void bn_gguf_arch(const bn_gguf *g, char *buf, size_t n);

/* Model-level checks for the BitNet archs (bitnet-b1.58, bitnet, bitnet-25):
 * hparams present and consistent, required tensors with the right shapes and
 * supported types, tokenizer arrays of vocab length, I2_S scales finite > 0.
 * Appends one line per problem to *report (malloc'd, caller frees; NULL when
 * there is none) and returns the number of problems (0 = valid). A file with
 * no tensors is a vocabulary file: only its tokenizer is checked, any arch.
 * Linear weights must be i2_s/tq1_0/tq2_0/f16/f32/q8_0/q6_K (the kernel
 * types), embeddings f16/f32/q8_0/q6_K, norms f32. */
int bn_gguf_validate_model(const bn_gguf *g, char **report);

/* Cheap pre-flight (`bn-gguf check`): reads only the 24-byte header and the
 * file size; checks magic, version and that the counts can fit the file. */
typedef struct bn_gguf_header {
    uint32_t version;
    uint64_t n_tensors, n_kv, file_size;
} bn_gguf_header;
int bn_gguf_check_header(const char *path, bn_gguf_header *h, bn_err *e);

/* ---- rendering for tools (gguf_fmt.c) --------------------------------------- */

typedef enum bn_gguf_fmt {
    BN_GGUF_FMT_LLAMA, /* as llama_model_loader's kv dump: strings raw, arrays "[...]" with
                        * strings quoted, floats %f, cut to 40 chars ("..."), \n escaped */
    BN_GGUF_FMT_TEXT,  /* strings quoted with C escapes, floats round-trip (%.9g / %.17g) */
    BN_GGUF_FMT_JSON,  /* a JSON value; invalid UTF-8 as U+FFFD, NaN/Inf as null */
} bn_gguf_fmt;

/* A kv's value as a malloc'd string (NULL on out of memory). Arrays show at
 * most max_elems elements (0 = all; TEXT appends "..." when cut, JSON just
 * stops; LLAMA ignores it and renders only the prefix it needs). */
char *bn_gguf_value_str(const bn_gguf_kv *kv, bn_gguf_fmt fmt, uint64_t max_elems);
/* The type column as llama.cpp prints it: "u32", "arr[str,32000]". */
void bn_gguf_type_str(const bn_gguf_kv *kv, char *buf, size_t n);
/* Bytes as a quoted JSON string (malloc'd; NULL on out of memory). */
char *bn_gguf_json_quote(const char *p, uint64_t len);

#define BN_GGUF_MAX_TYPES 48
/* What `bn-gguf info` reports; integers are -1 and floats NaN when absent. */
typedef struct bn_gguf_summary {
    char arch[64], name[128], tokenizer[32], pre[64];
    uint64_t n_vocab, n_merges;
    int64_t n_ctx, n_embd, n_layer, n_head, n_head_kv, n_ff, n_rot, file_type;
    double rope_base, rms_eps;
    uint64_t n_params, tensor_bytes;
    int n_types; /* histogram, sorted by ggml type id */
    struct { uint32_t type; uint64_t count, bytes; } types[BN_GGUF_MAX_TYPES];
} bn_gguf_summary;
void bn_gguf_summarize(const bn_gguf *g, bn_gguf_summary *s);

/* ---- writer --------------------------------------------------------------- */

/* Streaming writer: set metadata, declare every tensor (name, type, shape),
 * then write each tensor's data in declaration order, then finish. The file
 * goes to "<path>.tmp.<pid>" and is renamed over path only by a successful
 * bn_gguf_writer_finish(); bn_gguf_writer_abort() (or any error) removes it.
 * Version 3, general.alignment honoured (default 32), little endian. */
typedef struct bn_gguf_writer bn_gguf_writer;

int bn_gguf_writer_new(bn_gguf_writer **out, const char *path, bn_err *e);
int bn_gguf_w_u32(bn_gguf_writer *w, const char *key, uint32_t v, bn_err *e);
int bn_gguf_w_i32(bn_gguf_writer *w, const char *key, int32_t v, bn_err *e);
int bn_gguf_w_u64(bn_gguf_writer *w, const char *key, uint64_t v, bn_err *e);
int bn_gguf_w_f32(bn_gguf_writer *w, const char *key, float v, bn_err *e);
int bn_gguf_w_bool(bn_gguf_writer *w, const char *key, bool v, bn_err *e);
int bn_gguf_w_str(bn_gguf_writer *w, const char *key, const char *v, bn_err *e);
int bn_gguf_w_str_n(bn_gguf_writer *w, const char *key, const char *v, size_t len, bn_err *e);
int bn_gguf_w_arr_str(bn_gguf_writer *w, const char *key, const bn_gguf_str *v, uint64_t n, bn_err *e);
int bn_gguf_w_arr_f32(bn_gguf_writer *w, const char *key, const float *v, uint64_t n, bn_err *e);
int bn_gguf_w_arr_i32(bn_gguf_writer *w, const char *key, const int32_t *v, uint64_t n, bn_err *e);
/* Copy a metadata pair from an open file unchanged (any type, arrays too). */
int bn_gguf_w_copy_kv(bn_gguf_writer *w, const bn_gguf_kv *kv, bn_err *e);
/* Declare a tensor; returns its index (>= 0) or -1. */
int bn_gguf_w_tensor(bn_gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                     const int64_t *ne, bn_err *e);
/* Data for tensor idx; must be called in declaration order with exactly
 * bn_type_nbytes() bytes (may be split over several calls). */
int bn_gguf_w_data(bn_gguf_writer *w, int idx, const void *data, size_t n, bn_err *e);
int bn_gguf_writer_finish(bn_gguf_writer *w, bn_err *e); /* frees w */
void bn_gguf_writer_abort(bn_gguf_writer *w);            /* frees w, removes the temp file */

#endif
