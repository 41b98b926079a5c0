/* json.h - a small strict JSON (RFC 8259) parser for the files a converter
 * reads: config.json, tokenizer.json, tokenizer_config.json, safetensors
 * headers, *.safetensors.index.json.
 *
 * Strict: one value with only whitespace around it, no comments, no trailing
 * commas, no NaN/Infinity, no leading zeros, strings valid UTF-8 without raw
 * control characters, \u escapes with paired surrogates, no duplicate keys in
 * an object. Limits: nesting depth, input size. The whole document is parsed
 * into an immutable tree owned by a bn_json_doc; values stay valid until
 * bn_json_free(). Strings are decoded, NUL-terminated, and may contain NUL
 * bytes (use the length). */
#ifndef BN_JSON_H
#define BN_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "util.h"

typedef enum bn_json_type {
    BN_JSON_NULL = 0, BN_JSON_BOOL, BN_JSON_NUM, BN_JSON_STR, BN_JSON_ARR, BN_JSON_OBJ,
} bn_json_type;

typedef struct bn_json bn_json;         /* one value (opaque) */
typedef struct bn_json_doc bn_json_doc; /* the parsed document (owner) */

#define BN_JSON_DEFAULT_DEPTH 64

/* Parse len bytes of text. max_depth 0 means BN_JSON_DEFAULT_DEPTH. name is
 * used in error messages ("name: offset N: reason"). */
int bn_json_parse(bn_json_doc **out, const char *text, size_t len, unsigned max_depth,
                  const char *name, bn_err *e);
/* Read and parse a file of at most max_len bytes. */
int bn_json_parse_file(bn_json_doc **out, const char *path, size_t max_len, bn_err *e);
void bn_json_free(bn_json_doc *d);
const bn_json *bn_json_root(const bn_json_doc *d);

bn_json_type bn_json_type_of(const bn_json *v); /* NULL counts as BN_JSON_NULL */
const char *bn_json_type_name(bn_json_type t);

/* Objects and arrays: number of members; i-th member (NULL if out of range).
 * For objects bn_json_key_at gives the i-th key (members keep file order). */
size_t bn_json_len(const bn_json *v);
const bn_json *bn_json_at(const bn_json *v, size_t i);
const char *bn_json_key_at(const bn_json *v, size_t i, size_t *klen);
/* Member of an object by key; NULL if v is not an object or has no such key. */
const bn_json *bn_json_get(const bn_json *obj, const char *key);

/* Scalars. Each returns false when the value has another type. */
bool bn_json_bool(const bn_json *v, bool *out);
bool bn_json_num(const bn_json *v, double *out);
/* Integers: only literals without fraction or exponent that fit. */
bool bn_json_i64(const bn_json *v, int64_t *out);
bool bn_json_u64(const bn_json *v, uint64_t *out);
/* String value (decoded, NUL-terminated); *len may be NULL. NULL if not a string. */
const char *bn_json_str(const bn_json *v, size_t *len);

#endif
