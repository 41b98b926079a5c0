/* util.h - errors, checked arithmetic, small helpers shared by every module.
 *
 * Library functions never print: they return -1 (or NULL) and fill a bn_err
 * with one line of the form "file: field: reason". Only tools print it, once,
 * prefixed with the tool name (see bn_die / bn_warn in cli.h). */
#ifndef BN_UTIL_H
#define BN_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#define BN_ERR_MAX 512

typedef struct bn_err {
    char msg[BN_ERR_MAX]; /* one line, no trailing newline */
} bn_err;

/* Fill e (if not NULL) with a printf-style message; always returns -1 so
 * callers can write `return bn_errf(e, "%s: magic: not a GGUF file", path);` */
int bn_errf(bn_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prepend "prefix: " to an existing message (used when a lower layer did not
 * know the file name). */
void bn_err_prefix(bn_err *e, const char *prefix);

/* Checked arithmetic: return false on overflow, leaving *out unspecified. */
static inline bool bn_add_u64(uint64_t a, uint64_t b, uint64_t *out) { return !__builtin_add_overflow(a, b, out); }
static inline bool bn_mul_u64(uint64_t a, uint64_t b, uint64_t *out) { return !__builtin_mul_overflow(a, b, out); }
static inline bool bn_add_size(size_t a, size_t b, size_t *out) { return !__builtin_add_overflow(a, b, out); }
static inline bool bn_mul_size(size_t a, size_t b, size_t *out) { return !__builtin_mul_overflow(a, b, out); }

/* Round up to a multiple of a power of two; false on overflow. */
static inline bool bn_align_up_u64(uint64_t x, uint64_t align, uint64_t *out) {
    uint64_t t;
    if (!bn_add_u64(x, align - 1, &t)) return false;
    *out = t & ~(align - 1);
    return true;
}

/* Allocation that reports failure through bn_err instead of aborting. */
void *bn_malloc(size_t n, bn_err *e);
void *bn_calloc(size_t n, size_t size, bn_err *e);

/* Zeroed memory for a big buffer that is streamed (the KV cache): anonymous
 * pages aligned to and advised for 2 MB transparent huge pages, where the
 * kernel has them; elsewhere calloc. Free with bn_free_big and the same n. */
void *bn_alloc_big(size_t n, bn_err *e);
void bn_free_big(void *p, size_t n);
/* Fault every page of a bn_alloc_big buffer in now (MADV_POPULATE_WRITE,
 * or a write per page where the kernel lacks it), so the first prompt does
 * not pay for them: llama.cpp clears its KV buffer when it creates the
 * context, outside its prompt timing, and so does bitnet.cpp. */
void bn_populate_big(void *p, size_t n);

/* Monotonic clock in nanoseconds. */
uint64_t bn_now_ns(void);

/* Strict mode: BITNET_STRICT_MODE=1 in the environment, or --strict on a
 * tool's command line (tools pass their flag in). Any fallback or suspicious
 * result becomes an error instead of a warning. */
bool bn_strict_env(void);

/* Half precision <-> single, IEEE 754 binary16, round to nearest even. */
float bn_f16_to_f32(uint16_t h);
uint16_t bn_f32_to_f16(float f);
/* bfloat16 -> f32 is exact; f32 -> bf16 rounds to nearest even. */
static inline float bn_bf16_to_f32(uint16_t h) {
    union { uint32_t u; float f; } v = { (uint32_t)h << 16 };
    return v.f;
}

/* Write the whole buffer to fd (retrying on EINTR / short writes). */
int bn_write_all(int fd, const void *buf, size_t n, bn_err *e);

/* Read a whole file into memory (for small files: configs, JSON, vectors). */
int bn_read_file(const char *path, uint8_t **data, size_t *len, size_t max_len, bn_err *e);

/* SHA-256 (FIPS 180-4). Used for fingerprints and provenance. */
typedef struct bn_sha256 {
    uint32_t h[8];
    uint64_t len;
    uint8_t buf[64];
    size_t nbuf;
} bn_sha256;
void bn_sha256_init(bn_sha256 *s);
void bn_sha256_update(bn_sha256 *s, const void *data, size_t n);
void bn_sha256_final(bn_sha256 *s, uint8_t out[32]);
void bn_sha256_hex(const uint8_t digest[32], char out[65]);

#endif
