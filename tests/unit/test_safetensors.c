/* test_safetensors: the reader accepts well-formed files and rejects every
 * kind of inconsistent header with a message naming the problem. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "safetensors.h"
#include "tap.h"

static uint8_t buf[4096];

/* Build header + data_len bytes of data (byte i = i & 255) into buf. */
static size_t mk(const char *hdr, size_t data_len) {
    size_t hl = strlen(hdr);
    for (int i = 0; i < 8; i++) buf[i] = (uint8_t)((uint64_t)hl >> (8 * i));
    memcpy(buf + 8, hdr, hl);
    for (size_t i = 0; i < data_len; i++) buf[8 + hl + i] = (uint8_t)i;
    return 8 + hl + data_len;
}

/* Open buf[0..n) and expect failure whose message contains want. */
static int fails(size_t n, const char *want, bn_err *e) {
    bn_st *st;
    if (bn_st_open_mem(&st, buf, n, "m", e) == 0) {
        bn_st_close(st);
        snprintf(e->msg, sizeof e->msg, "(accepted)");
        return 0;
    }
    return strstr(e->msg, want) != NULL;
}

int main(void) {
    bn_err e;
    bn_st *st;
    /* a: bf16 [2,3] = 12 bytes, b: f32 [2] = 8 bytes, c: scalar f16 = 2 bytes, d: empty u8 [0] */
    size_t n = mk("{\"__metadata__\":{\"format\":\"pt\"},"
                  "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[12,20]},"
                  "\"a\":{\"dtype\":\"BF16\",\"shape\":[2,3],\"data_offsets\":[0,12]},"
                  "\"c\":{\"dtype\":\"F16\",\"shape\":[],\"data_offsets\":[20,22]},"
                  "\"d\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[22,22]}}   ", 22);
    /* set values: a[0] = bf16 1.5 (0x3FC0), b[1] = 2.25f, c = f16 -2 (0xC000) */
    size_t base = n - 22;
    buf[base + 0] = 0xC0; buf[base + 1] = 0x3F;
    float f = 2.25f;
    memcpy(buf + base + 16, &f, 4);
    buf[base + 20] = 0x00; buf[base + 21] = 0xC0;
    int rc = bn_st_open_mem(&st, buf, n, "m", &e);
    CHECK(rc == 0, "valid file opens (%s)", rc ? e.msg : "ok");
    if (rc == 0) {
        CHECK(bn_st_n_tensors(st) == 4, "4 tensors");
        const bn_st_tensor *a = bn_st_find(st, "a"), *b = bn_st_find(st, "b"), *c = bn_st_find(st, "c");
        CHECK(a && a->dtype == BN_ST_BF16 && a->n_dims == 2 && a->shape[0] == 2 && a->shape[1] == 3 && a->n_elem == 6, "a: bf16 [2,3]");
        CHECK(a && bn_st_get_f32(a, 0) == 1.5f, "bf16 value");
        CHECK(b && bn_st_get_f32(b, 1) == 2.25f, "f32 value");
        CHECK(c && c->n_dims == 0 && c->n_elem == 1 && bn_st_get_f32(c, 0) == -2.0f, "f16 scalar");
        CHECK(bn_st_find(st, "zz") == NULL, "absent tensor");
        const bn_json *m = bn_st_metadata(st);
        CHECK(m && strcmp(bn_json_str(bn_json_get(m, "format"), NULL), "pt") == 0, "metadata");
        CHECK(strcmp(bn_st_tensor_at(st, 0)->name, "b") == 0, "header order kept");
        bn_st_close(st);
    }
    CHECK(bn_st_dtype_size(BN_ST_BF16) == 2 && bn_st_dtype_from_name("F8_E4M3") == BN_ST_F8_E4M3 &&
          bn_st_dtype_from_name("Q4") == -1, "dtype table");

    CHECK(fails(5, "too short", &e), "short file: %s", e.msg);
    memset(buf, 0xff, 8);
    CHECK(fails(64, "too large", &e), "huge header length: %s", e.msg);
    n = mk("{}", 0);
    buf[0] = 100;
    CHECK(fails(n, "beyond the end", &e), "header beyond file: %s", e.msg);
    n = mk("[1]", 0);
    CHECK(fails(n, "does not start with '{'", &e), "not an object: %s", e.msg);
    n = mk("{\"a\":}", 0);
    CHECK(fails(n, "m: header: offset", &e), "bad JSON: %s", e.msg);
    n = mk("{\"a\":{\"dtype\":\"Q4\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1);
    CHECK(fails(n, "unsupported dtype 'Q4'", &e), "unknown dtype: %s", e.msg);
    n = mk("{\"a\":{\"dtype\":\"U8\",\"shape\":[-1],\"data_offsets\":[0,1]}}", 1);
    CHECK(fails(n, "shape", &e), "negative dim: %s", e.msg);
    n = mk("{\"a\":{\"dtype\":\"U8\",\"shape\":[1.5],\"data_offsets\":[0,1]}}", 1);
    CHECK(fails(n, "shape", &e), "fractional dim: %s", e.msg);
    n = mk("{\"a\":{\"dtype\":\"U8\",\"shape\":[1,2,3,4,5,6,7,8,9],\"data_offsets\":[0,1]}}", 1);
    CHECK(fails(n, "dims", &e), "too many dims: %s", e.msg);
    n = mk("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,1]}}", 1);
    CHECK(fails(n, "overflow", &e), "element count overflow: %s", e.msg);
    n = mk("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4);
    CHECK(fails(n, "need 8", &e), "span does not match shape: %s", e.msg);
    n = mk("{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]}}", 3);
    CHECK(fails(n, "truncated", &e), "data beyond end: %s", e.msg);
    n = mk("{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[2,4]}}", 4);
    CHECK(fails(n, "overlaps", &e), "overlap: %s", e.msg);
    n = mk("{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[2,4]}}", 4);
    CHECK(fails(n, "gap", &e), "gap before a tensor: %s", e.msg);
    n = mk("{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]}}", 4);
    CHECK(fails(n, "after the last tensor", &e), "trailing bytes: %s", e.msg);
    n = mk("{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[2,0]}}", 4);
    CHECK(fails(n, "end before begin", &e), "reversed offsets: %s", e.msg);
    n = mk("{\"a\":{\"dtype\":\"U8\",\"shape\":[2]}}", 2);
    CHECK(fails(n, "data_offsets", &e), "missing offsets: %s", e.msg);
    n = mk("{\"a\":{\"shape\":[2],\"data_offsets\":[0,2]}}", 2);
    CHECK(fails(n, "dtype", &e), "missing dtype: %s", e.msg);
    n = mk("{\"a\":3}", 0);
    CHECK(fails(n, "not an object", &e), "entry not an object: %s", e.msg);
    n = mk("{\"__metadata__\":{\"x\":1}}", 0);
    CHECK(fails(n, "strings", &e), "metadata values must be strings: %s", e.msg);
    n = mk("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}", 2);
    CHECK(fails(n, "duplicate", &e), "duplicate names: %s", e.msg);

    /* file API: missing file */
    CHECK(bn_st_open(&st, "/nonexistent/x.safetensors", &e) != 0 && strstr(e.msg, "cannot open"), "missing file: %s", e.msg);
    return tap_done();
}
