/* test_gguf.c - unit tests for the GGUF module: type traits and sizes, the
 * reader on hand-built buffers (every value type, nested arrays, getters,
 * iterators), rejection of a few corruptions, and a writer round trip. */
#include "gguf.h"
#include "tap.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- a tiny byte builder for hand-made files ------------------------------ */

typedef struct buf {
    uint8_t *p;
    size_t n, cap;
} buf;

static void put(buf *b, const void *d, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        if (!b->p) abort();
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void put_u8(buf *b, uint8_t v) { put(b, &v, 1); }
static void put_u16(buf *b, uint16_t v) { uint8_t x[2] = {(uint8_t)v, (uint8_t)(v >> 8)}; put(b, x, 2); }
static void put_u32(buf *b, uint32_t v) {
    uint8_t x[4];
    for (int i = 0; i < 4; i++) x[i] = (uint8_t)(v >> (8 * i));
    put(b, x, 4);
}
static void put_u64(buf *b, uint64_t v) {
    uint8_t x[8];
    for (int i = 0; i < 8; i++) x[i] = (uint8_t)(v >> (8 * i));
    put(b, x, 8);
}
static void put_f32(buf *b, float f) { uint32_t u; memcpy(&u, &f, 4); put_u32(b, u); }
static void put_f64(buf *b, double f) { uint64_t u; memcpy(&u, &f, 8); put_u64(b, u); }
static void put_str(buf *b, const char *s) { put_u64(b, strlen(s)); put(b, s, strlen(s)); }
static void put_key(buf *b, const char *k, uint32_t t) { put_str(b, k); put_u32(b, t); }
static void pad_to(buf *b, size_t a) { while (b->n % a) put_u8(b, 0); }

/* ---- type traits ------------------------------------------------------------ */

static void test_traits(void) {
    static const struct { uint32_t id; const char *name; uint32_t blck, size; } want[] = {
        {0, "f32", 1, 4}, {1, "f16", 1, 2}, {2, "q4_0", 32, 18}, {3, "q4_1", 32, 20},
        {6, "q5_0", 32, 22}, {7, "q5_1", 32, 24}, {8, "q8_0", 32, 34}, {9, "q8_1", 32, 36},
        {10, "q2_K", 256, 84}, {11, "q3_K", 256, 110}, {12, "q4_K", 256, 144},
        {13, "q5_K", 256, 176}, {14, "q6_K", 256, 210}, {15, "q8_K", 256, 292},
        {16, "iq2_xxs", 256, 66}, {17, "iq2_xs", 256, 74}, {18, "iq3_xxs", 256, 98},
        {19, "iq1_s", 256, 50}, {20, "iq4_nl", 32, 18}, {21, "iq3_s", 256, 110},
        {22, "iq2_s", 256, 82}, {23, "iq4_xs", 256, 136}, {24, "i8", 1, 1}, {25, "i16", 1, 2},
        {26, "i32", 1, 4}, {27, "i64", 1, 8}, {28, "f64", 1, 8}, {29, "iq1_m", 256, 56},
        {30, "bf16", 1, 2}, {34, "tq1_0", 256, 54}, {35, "tq2_0", 256, 66},
        {36, "i2_s", 128, 32}, {37, "i8_s", 1, 1}, {38, "tl1", 4, 1}, {39, "tl2", 1, 1},
        {BN_TYPE_MXFP4, "mxfp4", 32, 17},
    };
    int bad = 0;
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const bn_type_traits *t = bn_type_traits_get(want[i].id);
        if (!t || strcmp(t->name, want[i].name) || t->blck_size != want[i].blck ||
            t->type_size != want[i].size) {
            printf("# type %u: wrong traits\n", want[i].id);
            bad++;
        }
        if (bn_type_from_name(want[i].name) != (int)want[i].id) {
            printf("# name %s does not parse back\n", want[i].name);
            bad++;
        }
    }
    CHECK(bad == 0, "type traits of %zu types match llama.cpp/bitnet.cpp", sizeof want / sizeof want[0]);
    CHECK(!bn_type_traits_get(4) && !bn_type_traits_get(5) && !bn_type_traits_get(31) &&
              !bn_type_traits_get(33) && !bn_type_traits_get(40) && !bn_type_traits_get(1000),
          "removed and unknown ids have no traits");
    CHECK(strcmp(bn_type_name(77), "?") == 0, "unknown type name is ?");
    CHECK(bn_type_from_name("TQ2_0") == BN_TYPE_TQ2_0 && bn_type_from_name("Q6_k") == BN_TYPE_Q6_K &&
              bn_type_from_name("nope") == -1,
          "type names parse case-insensitively");

    bn_err e;
    uint64_t nb = 0;
    int64_t ne[4] = {2560, 2560, 1, 1};
    CHECK(bn_type_nbytes(BN_TYPE_I2_S, ne, 2, &nb, &e) == 0 && nb == 2560ull * 2560 / 4 + 32,
          "i2_s nbytes = n/4 + 32");
    CHECK(bn_type_nbytes(BN_TYPE_TL1, ne, 2, &nb, &e) == 0 && nb == 2560ull * 2560 / 4 + 32,
          "tl1 nbytes = n/4 + 32");
    int64_t k = 3200, m = 8640;
    uint64_t tl2 = (uint64_t)(((k - 256) * m / 3) * 5 / 8 + 256 * m / 2 * 4 / 8);
    tl2 = (tl2 + 31) / 32 * 32 + 32;
    int64_t ne2[4] = {k, m, 1, 1};
    CHECK(bn_type_nbytes(BN_TYPE_TL2, ne2, 2, &nb, &e) == 0 && nb == tl2,
          "tl2 nbytes per bitnet-format 1.2 (%llu)", (unsigned long long)nb);
    int64_t ne3[4] = {256, 768, 1, 1};
    CHECK(bn_type_nbytes(BN_TYPE_TQ2_0, ne3, 2, &nb, &e) == 0 && nb == 768ull * 66,
          "tq2_0 nbytes");
    CHECK(bn_type_nbytes(BN_TYPE_TQ1_0, ne3, 2, &nb, &e) == 0 && nb == 768ull * 54,
          "tq1_0 nbytes");
    int64_t ne4[4] = {96, 4, 1, 1};
    CHECK(bn_type_nbytes(BN_TYPE_TQ2_0, ne4, 2, &nb, &e) == -1 && strstr(e.msg, "block size"),
          "ne0 not a multiple of the block size is refused: %s", e.msg);
    int64_t ne5[4] = {INT64_MAX / 2, 4, 1, 1};
    CHECK(bn_type_nbytes(BN_TYPE_F32, ne5, 2, &nb, &e) == -1 && strstr(e.msg, "overflow"),
          "element count overflow is refused: %s", e.msg);
    int64_t ne6[4] = {256, 0, 1, 1};
    CHECK(bn_type_nbytes(BN_TYPE_F32, ne6, 2, &nb, &e) == -1, "zero dim is refused");
    int64_t ne7[4] = {1ll << 40, 1ll << 21, 1, 1};
    CHECK(bn_type_nbytes(BN_TYPE_F64, ne7, 2, &nb, &e) == -1 && strstr(e.msg, "overflow"),
          "byte size overflow is refused: %s", e.msg);
    CHECK(bn_type_nbytes(99, ne, 2, &nb, &e) == -1, "unknown type is refused");
}

/* ---- the reader on a hand-built file ---------------------------------------- */

/* A file with one key of every type (and a nested array) plus two tensors. */
static buf build_all_types(uint32_t version) {
    buf b = {0};
    put(&b, "GGUF", 4);
    put_u32(&b, version);
    put_u64(&b, 2);  /* tensors */
    put_u64(&b, 19); /* kv */
    put_key(&b, "general.architecture", BN_GGUF_STR); put_str(&b, "test");
    put_key(&b, "k.u8", BN_GGUF_U8); put_u8(&b, 200);
    put_key(&b, "k.i8", BN_GGUF_I8); put_u8(&b, (uint8_t)-5);
    put_key(&b, "k.u16", BN_GGUF_U16); put_u16(&b, 60000);
    put_key(&b, "k.i16", BN_GGUF_I16); put_u16(&b, (uint16_t)-30000);
    put_key(&b, "k.u32", BN_GGUF_U32); put_u32(&b, 4000000000u);
    put_key(&b, "k.i32", BN_GGUF_I32); put_u32(&b, (uint32_t)-7);
    put_key(&b, "k.f32", BN_GGUF_F32); put_f32(&b, 0.25f);
    put_key(&b, "k.bool", BN_GGUF_BOOL); put_u8(&b, 1);
    put_key(&b, "k.u64", BN_GGUF_U64); put_u64(&b, 1ull << 40);
    put_key(&b, "k.i64", BN_GGUF_I64); put_u64(&b, (uint64_t)-3);
    put_key(&b, "k.f64", BN_GGUF_F64); put_f64(&b, -1.5);
    put_key(&b, "k.arr_str", BN_GGUF_ARR); put_u32(&b, BN_GGUF_STR); put_u64(&b, 3);
    put_str(&b, "a"); put_str(&b, ""); put_str(&b, "hello");
    put_key(&b, "k.arr_i32", BN_GGUF_ARR); put_u32(&b, BN_GGUF_I32); put_u64(&b, 3);
    put_u32(&b, 1); put_u32(&b, (uint32_t)-2); put_u32(&b, 3);
    put_key(&b, "k.arr_f32", BN_GGUF_ARR); put_u32(&b, BN_GGUF_F32); put_u64(&b, 2);
    put_f32(&b, 1.5f); put_f32(&b, -2.0f);
    put_key(&b, "k.arr_nested", BN_GGUF_ARR); put_u32(&b, BN_GGUF_ARR); put_u64(&b, 2);
    put_u32(&b, BN_GGUF_U8); put_u64(&b, 2); put_u8(&b, 7); put_u8(&b, 8);
    put_u32(&b, BN_GGUF_STR); put_u64(&b, 1); put_str(&b, "xy");
    put_key(&b, "k.arr_empty", BN_GGUF_ARR); put_u32(&b, BN_GGUF_U64); put_u64(&b, 0);
    put_key(&b, "k.str_nul", BN_GGUF_STR); put_u64(&b, 3); put(&b, "a\0b", 3);
    put_key(&b, "general.alignment", BN_GGUF_U32); put_u32(&b, 64);
    /* tensors: f32 [4,2] at 0, q8_0 [32, 3] at 64 */
    put_str(&b, "w.a"); put_u32(&b, 2); put_u64(&b, 4); put_u64(&b, 2);
    put_u32(&b, BN_TYPE_F32); put_u64(&b, 0);
    put_str(&b, "w.b"); put_u32(&b, 2); put_u64(&b, 32); put_u64(&b, 3);
    put_u32(&b, BN_TYPE_Q8_0); put_u64(&b, 64);
    pad_to(&b, 64);
    for (int i = 0; i < 8; i++) put_f32(&b, (float)i);
    pad_to(&b, 64);
    for (int i = 0; i < 3 * 34; i++) put_u8(&b, (uint8_t)i);
    return b;
}

static void test_reader(void) {
    buf b = build_all_types(3);
    bn_gguf *g = NULL;
    bn_err e = {{0}};
    int rc = bn_gguf_open_mem(&g, b.p, b.n, "mem.gguf", &e);
    CHECK(rc == 0, "hand-built v3 file with every value type opens (%s)", rc ? e.msg : "ok");
    if (rc) return;
    CHECK(bn_gguf_version(g) == 3 && bn_gguf_n_kv(g) == 19 && bn_gguf_n_tensors(g) == 2,
          "version and counts");
    CHECK(bn_gguf_alignment(g) == 64 && bn_gguf_data_offset(g) % 64 == 0, "alignment 64 honoured");
    CHECK(bn_gguf_prefault(g) == -1, "prefault of a memory buffer: nothing to map (-1)");
    char arch[16];
    bn_gguf_arch(g, arch, sizeof arch);
    CHECK(strcmp(arch, "test") == 0, "arch");
    uint32_t u32;
    int32_t i32;
    uint64_t u64;
    float f;
    bool bo;
    bn_gguf_str s;
    CHECK(bn_gguf_get_u32(g, "k.u8", &u32, &e) == 1 && u32 == 200, "u8 as u32");
    CHECK(bn_gguf_get_i32(g, "k.i8", &i32, &e) == 1 && i32 == -5, "i8 as i32");
    CHECK(bn_gguf_get_u32(g, "k.u16", &u32, &e) == 1 && u32 == 60000, "u16");
    CHECK(bn_gguf_get_i32(g, "k.i16", &i32, &e) == 1 && i32 == -30000, "i16");
    CHECK(bn_gguf_get_u32(g, "k.u32", &u32, &e) == 1 && u32 == 4000000000u, "u32");
    CHECK(bn_gguf_get_i32(g, "k.u32", &i32, &e) == -1 && strstr(e.msg, "out of range"),
          "u32 4e9 does not fit i32: %s", e.msg);
    CHECK(bn_gguf_get_u32(g, "k.i32", &u32, &e) == -1, "negative i32 does not fit u32");
    CHECK(bn_gguf_get_f32(g, "k.f32", &f, &e) == 1 && f == 0.25f, "f32");
    CHECK(bn_gguf_get_bool(g, "k.bool", &bo, &e) == 1 && bo, "bool");
    CHECK(bn_gguf_get_u64(g, "k.u64", &u64, &e) == 1 && u64 == 1ull << 40, "u64");
    CHECK(bn_gguf_get_u32(g, "k.u64", &u32, &e) == -1, "2^40 does not fit u32");
    CHECK(bn_gguf_get_i32(g, "k.i64", &i32, &e) == 1 && i32 == -3, "i64 as i32");
    CHECK(bn_gguf_get_f32(g, "k.f64", &f, &e) == 1 && f == -1.5f, "f64 as f32");
    CHECK(bn_gguf_get_str(g, "general.architecture", &s, &e) == 1 && bn_gguf_str_eq(s, "test"), "str");
    CHECK(bn_gguf_get_str(g, "k.str_nul", &s, &e) == 1 && s.len == 3 && s.ptr[1] == 0,
          "strings are length-counted (embedded NUL kept)");
    CHECK(bn_gguf_get_str(g, "k.u32", &s, &e) == -1 && strstr(e.msg, "expected str, got u32"),
          "wrong type: %s", e.msg);
    CHECK(bn_gguf_get_u32(g, "absent", &u32, &e) == 0, "absent key returns 0");
    CHECK(bn_gguf_get_bool(g, "k.u8", &bo, &e) == -1, "u8 is not a bool");

    const bn_gguf_kv *kv;
    uint64_t n;
    CHECK(bn_gguf_get_arr(g, "k.arr_str", BN_GGUF_STR, &kv, &n, &e) == 1 && n == 3, "str array");
    bn_gguf_arr_iter it;
    bn_gguf_arr_iter_init(&it, kv);
    bn_gguf_str s1, s2, s3, s4;
    bool ok = bn_gguf_arr_next_str(&it, &s1) && bn_gguf_arr_next_str(&it, &s2) &&
              bn_gguf_arr_next_str(&it, &s3) && !bn_gguf_arr_next_str(&it, &s4);
    CHECK(ok && bn_gguf_str_eq(s1, "a") && s2.len == 0 && bn_gguf_str_eq(s3, "hello"),
          "iterate str array");
    CHECK(bn_gguf_get_arr(g, "k.arr_str", BN_GGUF_I32, &kv, &n, &e) == -1 &&
              strstr(e.msg, "expected arr[i32], got arr[str]"),
          "array element type is checked: %s", e.msg);
    CHECK(bn_gguf_get_arr(g, "k.arr_i32", BN_GGUF_I32, &kv, &n, &e) == 1, "i32 array");
    bn_gguf_arr_iter_init(&it, kv);
    int64_t a, bb, c;
    double d;
    ok = bn_gguf_arr_next_i64(&it, &a) && bn_gguf_arr_next_i64(&it, &bb) &&
         bn_gguf_arr_next_i64(&it, &c) && !bn_gguf_arr_next_i64(&it, &a);
    CHECK(ok && bb == -2 && c == 3, "iterate i32 array");
    bn_gguf_arr_iter_init(&it, kv);
    CHECK(!bn_gguf_arr_next_f64(&it, &d) && !bn_gguf_arr_next_str(&it, &s1),
          "iterator refuses a mismatched request");
    CHECK(bn_gguf_get_arr(g, "k.arr_f32", BN_GGUF_F32, &kv, &n, &e) == 1, "f32 array");
    bn_gguf_arr_iter_init(&it, kv);
    double d2;
    CHECK(bn_gguf_arr_next_f64(&it, &d) && bn_gguf_arr_next_f64(&it, &d2) && d == 1.5 && d2 == -2.0,
          "iterate f32 array");
    CHECK(bn_gguf_get_arr(g, "k.arr_nested", BN_GGUF_ARR, &kv, &n, &e) == 1 && n == 2, "nested array");
    bn_gguf_arr_iter_init(&it, kv);
    bn_gguf_kv sub1, sub2, sub3;
    ok = bn_gguf_arr_next_arr(&it, &sub1) && bn_gguf_arr_next_arr(&it, &sub2) &&
         !bn_gguf_arr_next_arr(&it, &sub3);
    CHECK(ok && sub1.arr_type == BN_GGUF_U8 && sub1.arr_n == 2 && sub2.arr_type == BN_GGUF_STR,
          "iterate nested array");
    bn_gguf_arr_iter it2;
    bn_gguf_arr_iter_init(&it2, &sub2);
    CHECK(bn_gguf_arr_next_str(&it2, &s1) && bn_gguf_str_eq(s1, "xy"), "inner string array");
    CHECK(bn_gguf_get_arr(g, "k.arr_empty", BN_GGUF_U64, &kv, &n, &e) == 1 && n == 0, "empty array");

    const bn_gguf_tensor *ta = bn_gguf_find_tensor(g, "w.a"), *tb = bn_gguf_find_tensor(g, "w.b");
    CHECK(ta && tb && !bn_gguf_find_tensor(g, "w.c"), "find tensors by name");
    if (ta && tb) {
        float v;
        memcpy(&v, ta->data + 7 * 4, 4);
        CHECK(ta->type == BN_TYPE_F32 && ta->n_dims == 2 && ta->ne[0] == 4 && ta->ne[1] == 2 &&
                  ta->ne[2] == 1 && ta->nbytes == 32 && v == 7.0f,
              "tensor a: shape, size, data");
        CHECK(tb->type == BN_TYPE_Q8_0 && tb->nbytes == 3 * 34 && tb->offset == 64 &&
                  tb->data[5] == 5 && tb->data == b.p + bn_gguf_data_offset(g) + 64,
              "tensor b: q8_0 size, offset, data");
    }
    bn_gguf_close(g);

    /* same file as version 2 */
    memcpy(b.p + 4, "\x02\0\0\0", 4);
    rc = bn_gguf_open_mem(&g, b.p, b.n, "mem.gguf", &e);
    CHECK(rc == 0 && bn_gguf_version(g) == 2, "version 2 is read too");
    bn_gguf_close(g);

    /* every truncation fails cleanly */
    memcpy(b.p + 4, "\x03\0\0\0", 4);
    int trunc_ok = 0;
    for (size_t cut = 0; cut < b.n; cut++) {
        uint8_t *copy = malloc(cut ? cut : 1);
        memcpy(copy, b.p, cut);
        if (bn_gguf_open_mem(&g, copy, cut, "t.gguf", &e) == -1 && strncmp(e.msg, "t.gguf: ", 8) == 0)
            trunc_ok++;
        else
            bn_gguf_close(g);
        free(copy);
    }
    CHECK(trunc_ok == (int)b.n, "all %zu truncations are rejected with a path-prefixed message", b.n);
    free(b.p);
}

/* Small corruptions of a good file, each with the message fragment expected. */
static void test_corrupt(void) {
    bn_gguf *g;
    bn_err e;
    struct { const char *what; const char *frag; } cases[] = {
        {"bad magic", "not a GGUF file"}, {"v1", "version 1"}, {"v4", "unsupported GGUF version"},
        {"huge n_kv", "cannot fit"}, {"huge n_tensors", "cannot fit"},
    };
    for (int i = 0; i < 5; i++) {
        buf b = build_all_types(3);
        switch (i) {
        case 0: b.p[0] = 'X'; break;
        case 1: b.p[4] = 1; break;
        case 2: b.p[4] = 4; break;
        case 3: memset(b.p + 16, 0xff, 7); break;
        case 4: memset(b.p + 8, 0xff, 7); break;
        }
        int rc = bn_gguf_open_mem(&g, b.p, b.n, "c.gguf", &e);
        CHECK(rc == -1 && strstr(e.msg, cases[i].frag), "%s: %s", cases[i].what, rc ? e.msg : "accepted");
        if (!rc) bn_gguf_close(g);
        free(b.p);
    }
    CHECK(bn_gguf_open_mem(&g, NULL, 0, "empty", &e) == -1 && strstr(e.msg, "too small"),
          "empty buffer: %s", e.msg);
    CHECK(bn_gguf_open(&g, "/nonexistent/x.gguf", &e) == -1 && strstr(e.msg, "/nonexistent/x.gguf: open"),
          "missing file: %s", e.msg);
}

/* ---- writer round trip ------------------------------------------------------ */

static char tmpdir[64];

static void fill(uint8_t *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)(seed * 131 + i * 7 + (i >> 8));
}

static bool kv_equal(const bn_gguf_kv *a, const bn_gguf_kv *b) {
    if (a->key.len != b->key.len || memcmp(a->key.ptr, b->key.ptr, a->key.len) || a->type != b->type)
        return false;
    switch (a->type) {
    case BN_GGUF_STR: return a->v.s.len == b->v.s.len && !memcmp(a->v.s.ptr, b->v.s.ptr, a->v.s.len);
    case BN_GGUF_ARR:
        return a->arr_type == b->arr_type && a->arr_n == b->arr_n && a->arr_bytes == b->arr_bytes &&
               !memcmp(a->arr_data, b->arr_data, a->arr_bytes);
    case BN_GGUF_F32: case BN_GGUF_F64: return a->v.f == b->v.f;
    default: return a->v.u == b->v.u;
    }
}

static int count_files(const char *dir) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "ls -A %s | wc -l", dir);
    FILE *p = popen(cmd, "r");
    int n = -1;
    if (p) { if (fscanf(p, "%d", &n) != 1) n = -1; pclose(p); }
    return n;
}

/* Write a file with every writer entry point, read it back, compare. */
static void test_writer(uint32_t align) {
    char path[128];
    snprintf(path, sizeof path, "%s/w%u.gguf", tmpdir, align);
    bn_err e = {{0}};
    bn_gguf_writer *w;
    CHECK(bn_gguf_writer_new(&w, path, &e) == 0, "writer_new (%s)", e.msg);
    bn_gguf_str toks[3] = {{"<s>", 3}, {"a\0b", 3}, {"", 0}};
    float sc[3] = {0.5f, -1.0f, 3.25f};
    int32_t ty[3] = {3, 1, -6};
    int ok = 0;
    ok |= bn_gguf_w_str(w, "general.architecture", "bitnet-25", &e);
    if (align != 32) ok |= bn_gguf_w_u32(w, "general.alignment", align, &e);
    ok |= bn_gguf_w_u32(w, "a.u32", 123456, &e);
    ok |= bn_gguf_w_i32(w, "a.i32", -99, &e);
    ok |= bn_gguf_w_u64(w, "a.u64", 1ull << 50, &e);
    ok |= bn_gguf_w_f32(w, "a.f32", 1e-5f, &e);
    ok |= bn_gguf_w_bool(w, "a.bool", true, &e);
    ok |= bn_gguf_w_str_n(w, "a.strn", "xyz", 2, &e);
    ok |= bn_gguf_w_arr_str(w, "a.toks", toks, 3, &e);
    ok |= bn_gguf_w_arr_f32(w, "a.scores", sc, 3, &e);
    ok |= bn_gguf_w_arr_i32(w, "a.types", ty, 3, &e);
    CHECK(ok == 0, "metadata written (%s)", e.msg);
    struct { const char *name; uint32_t type, nd; int64_t ne[4]; } ts[] = {
        {"t.f32", BN_TYPE_F32, 1, {5}}, {"t.f16", BN_TYPE_F16, 2, {3, 7}},
        {"t.q8_0", BN_TYPE_Q8_0, 3, {64, 2, 3}}, {"t.i2_s", BN_TYPE_I2_S, 2, {256, 64}},
        {"t.tq2_0", BN_TYPE_TQ2_0, 2, {256, 3}}, {"t.tl2", BN_TYPE_TL2, 2, {384, 32}},
        {"t.bf16", BN_TYPE_BF16, 4, {2, 2, 2, 2}},
    };
    int nt = (int)(sizeof ts / sizeof ts[0]);
    uint64_t nbytes[8];
    for (int i = 0; i < nt; i++) {
        int idx = bn_gguf_w_tensor(w, ts[i].name, ts[i].type, ts[i].nd, ts[i].ne, &e);
        bn_type_nbytes(ts[i].type, (int64_t[4]){ts[i].ne[0], ts[i].nd > 1 ? ts[i].ne[1] : 1,
                       ts[i].nd > 2 ? ts[i].ne[2] : 1, ts[i].nd > 3 ? ts[i].ne[3] : 1}, ts[i].nd, &nbytes[i], &e);
        CHECK(idx == i, "declare %s -> %d", ts[i].name, idx);
    }
    CHECK(bn_gguf_w_u32(w, "late", 1, &e) == 0, "metadata after declarations is allowed before data");
    for (int i = 0; i < nt; i++) {
        uint8_t *d = malloc(nbytes[i]);
        fill(d, nbytes[i], (unsigned)i);
        size_t half = nbytes[i] / 2;
        int r = bn_gguf_w_data(w, i, d, half, &e) | bn_gguf_w_data(w, i, d + half, nbytes[i] - half, &e);
        CHECK(r == 0, "data for %s in two pieces (%s)", ts[i].name, r ? e.msg : "ok");
        free(d);
    }
    CHECK(bn_gguf_writer_finish(w, &e) == 0, "finish (%s)", e.msg);
    CHECK(count_files(tmpdir) >= 1, "file in place");

    bn_gguf *g;
    int rc = bn_gguf_open(&g, path, &e);
    CHECK(rc == 0, "written file reads back (%s)", rc ? e.msg : "ok");
    if (rc) return;
    CHECK(bn_gguf_version(g) == 3 && bn_gguf_alignment(g) == align && bn_gguf_data_offset(g) % align == 0,
          "version 3, alignment %u", align);
    CHECK(bn_gguf_file_size(g) == bn_gguf_data_offset(g) + bn_gguf_tensor_at(g, nt - 1)->offset +
                                      ((nbytes[nt - 1] + align - 1) / align * align),
          "file ends with the padded last tensor");
    {   /* prefaulting a mapped file leaves its bytes as they were (0, or -1 on kernels without it) */
        const bn_gguf_tensor *t0 = bn_gguf_tensor_at(g, 0);
        uint8_t first = t0->data[0];
        int pr = bn_gguf_prefault(g);
        CHECK((pr == 0 || pr == -1) && t0->data[0] == first, "prefault of the mapped file: %d, data unchanged", pr);
    }
    {   /* the same file read into (huge-page) memory: same header, every tensor's bytes equal */
        bn_gguf *gc;
        int rcc = bn_gguf_open_ex(&gc, path, BN_GGUF_COPY_HUGE, &e);
        int same = rcc == 0 && bn_gguf_copied(gc) && !bn_gguf_copied(g) && bn_gguf_n_tensors(gc) == bn_gguf_n_tensors(g) &&
                   bn_gguf_data_offset(gc) == bn_gguf_data_offset(g);
        for (uint64_t i = 0; same && i < bn_gguf_n_tensors(g); i++) {
            const bn_gguf_tensor *a = bn_gguf_tensor_at(g, i), *c = bn_gguf_tensor_at(gc, i);
            same = a->nbytes == c->nbytes && a->data != c->data && !memcmp(a->data, c->data, a->nbytes) &&
                   (uintptr_t)c->data % align == 0;
        }
        CHECK(same, "BN_GGUF_COPY_HUGE: a copy with the mapped file's tensors, aligned (%s)", rcc ? e.msg : "ok");
        if (rcc == 0) bn_gguf_close(gc);
    }
    uint32_t u32; int32_t i32; uint64_t u64; float f; bool b; bn_gguf_str s;
    CHECK(bn_gguf_get_u32(g, "a.u32", &u32, &e) == 1 && u32 == 123456, "u32 back");
    CHECK(bn_gguf_get_i32(g, "a.i32", &i32, &e) == 1 && i32 == -99, "i32 back");
    CHECK(bn_gguf_get_u64(g, "a.u64", &u64, &e) == 1 && u64 == 1ull << 50, "u64 back");
    CHECK(bn_gguf_get_f32(g, "a.f32", &f, &e) == 1 && f == 1e-5f, "f32 back");
    CHECK(bn_gguf_get_bool(g, "a.bool", &b, &e) == 1 && b, "bool back");
    CHECK(bn_gguf_get_str(g, "a.strn", &s, &e) == 1 && bn_gguf_str_eq(s, "xy"), "str_n back");
    CHECK(bn_gguf_get_u32(g, "late", &u32, &e) == 1, "late key back");
    const bn_gguf_kv *kv;
    uint64_t n;
    bn_gguf_arr_iter it;
    bn_gguf_str s1, s2, s3;
    CHECK(bn_gguf_get_arr(g, "a.toks", BN_GGUF_STR, &kv, &n, &e) == 1 && n == 3, "str array back");
    bn_gguf_arr_iter_init(&it, kv);
    CHECK(bn_gguf_arr_next_str(&it, &s1) && bn_gguf_arr_next_str(&it, &s2) && bn_gguf_arr_next_str(&it, &s3) &&
              bn_gguf_str_eq(s1, "<s>") && s2.len == 3 && s2.ptr[1] == 0 && s3.len == 0,
          "str array contents");
    double d;
    int64_t x;
    CHECK(bn_gguf_get_arr(g, "a.scores", BN_GGUF_F32, &kv, &n, &e) == 1, "f32 array back");
    bn_gguf_arr_iter_init(&it, kv);
    int good = 0;
    for (int i = 0; i < 3; i++) good += bn_gguf_arr_next_f64(&it, &d) && d == sc[i];
    CHECK(good == 3, "f32 array contents");
    CHECK(bn_gguf_get_arr(g, "a.types", BN_GGUF_I32, &kv, &n, &e) == 1, "i32 array back");
    bn_gguf_arr_iter_init(&it, kv);
    good = 0;
    for (int i = 0; i < 3; i++) good += bn_gguf_arr_next_i64(&it, &x) && x == ty[i];
    CHECK(good == 3, "i32 array contents");
    good = 0;
    for (int i = 0; i < nt; i++) {
        const bn_gguf_tensor *t = bn_gguf_tensor_at(g, (uint64_t)i);
        uint8_t *dd = malloc(nbytes[i]);
        fill(dd, nbytes[i], (unsigned)i);
        bool same = strcmp(t->name, ts[i].name) == 0 && t->type == ts[i].type && t->n_dims == ts[i].nd &&
                    t->nbytes == nbytes[i] && t->offset % align == 0 && !memcmp(t->data, dd, nbytes[i]);
        for (uint32_t dd2 = 0; dd2 < ts[i].nd; dd2++) same &= t->ne[dd2] == ts[i].ne[dd2];
        if (!same) printf("# tensor %s differs\n", ts[i].name);
        good += same;
        free(dd);
    }
    CHECK(good == nt, "all %d tensors read back identically (tl2 resolved by arch bitnet-25)", nt);

    /* copy every kv into a second file: byte-identical metadata */
    char path2[160];
    snprintf(path2, sizeof path2, "%s/copy%u.gguf", tmpdir, align);
    bn_gguf_writer *w2;
    rc = bn_gguf_writer_new(&w2, path2, &e);
    for (uint64_t i = 0; i < bn_gguf_n_kv(g) && rc == 0; i++) rc = bn_gguf_w_copy_kv(w2, bn_gguf_kv_at(g, i), &e);
    if (rc == 0) rc = bn_gguf_writer_finish(w2, &e);
    else bn_gguf_writer_abort(w2);
    CHECK(rc == 0, "copy_kv of every pair (%s)", rc ? e.msg : "ok");
    bn_gguf *g2;
    if (rc == 0 && bn_gguf_open(&g2, path2, &e) == 0) {
        good = bn_gguf_n_kv(g2) == bn_gguf_n_kv(g);
        for (uint64_t i = 0; good && i < bn_gguf_n_kv(g); i++) good = kv_equal(bn_gguf_kv_at(g, i), bn_gguf_kv_at(g2, i));
        CHECK(good, "copied kvs identical");
        bn_gguf_close(g2);
    } else {
        CHECK(0, "copied file opens (%s)", e.msg);
    }
    bn_gguf_close(g);
    unlink(path);
    unlink(path2);
}

/* Misuse is an error and never leaves a file (final or temp) behind. */
static void test_writer_errors(void) {
    char path[128];
    snprintf(path, sizeof path, "%s/bad.gguf", tmpdir);
    int before = count_files(tmpdir);
    bn_err e;
    bn_gguf_writer *w;
    int64_t ne[2] = {32, 2};
    uint8_t d[68] = {0};

    bn_gguf_writer_new(&w, path, &e);
    bn_gguf_w_u32(w, "k", 1, &e);
    CHECK(bn_gguf_w_u32(w, "k", 2, &e) == -1 && strstr(e.msg, "duplicate key"), "duplicate key: %s", e.msg);
    CHECK(bn_gguf_writer_finish(w, &e) == -1, "finish after failure fails");
    CHECK(count_files(tmpdir) == before, "no file left after a failed writer");

    bn_gguf_writer_new(&w, path, &e);
    bn_gguf_w_tensor(w, "x", BN_TYPE_Q8_0, 2, ne, &e);
    CHECK(bn_gguf_w_tensor(w, "x", BN_TYPE_Q8_0, 2, ne, &e) == -1 && strstr(e.msg, "duplicate tensor"),
          "duplicate tensor: %s", e.msg);
    bn_gguf_writer_abort(w);

    bn_gguf_writer_new(&w, path, &e);
    CHECK(bn_gguf_w_i32(w, "general.alignment", 64, &e) == -1 && strstr(e.msg, "must be u32"),
          "alignment must be u32: %s", e.msg);
    bn_gguf_writer_abort(w);
    bn_gguf_writer_new(&w, path, &e);
    CHECK(bn_gguf_w_u32(w, "general.alignment", 48, &e) == -1 && strstr(e.msg, "power of two"),
          "alignment must be a power of two: %s", e.msg);
    bn_gguf_writer_abort(w);

    bn_gguf_writer_new(&w, path, &e);
    int64_t bad_ne[2] = {33, 2};
    CHECK(bn_gguf_w_tensor(w, "y", BN_TYPE_Q8_0, 2, bad_ne, &e) == -1 && strstr(e.msg, "block size"),
          "bad shape: %s", e.msg);
    bn_gguf_writer_abort(w);

    bn_gguf_writer_new(&w, path, &e);
    bn_gguf_w_tensor(w, "a", BN_TYPE_Q8_0, 2, ne, &e);
    bn_gguf_w_tensor(w, "b", BN_TYPE_Q8_0, 2, ne, &e);
    CHECK(bn_gguf_w_data(w, 1, d, 68, &e) == -1 && strstr(e.msg, "order"), "out of order: %s", e.msg);
    bn_gguf_writer_abort(w);

    bn_gguf_writer_new(&w, path, &e);
    bn_gguf_w_tensor(w, "a", BN_TYPE_Q8_0, 2, ne, &e);
    CHECK(bn_gguf_w_data(w, 0, d, 60, &e) == 0, "partial data accepted");
    CHECK(bn_gguf_w_u32(w, "late", 1, &e) == -1 && strstr(e.msg, "after tensor data"),
          "metadata after data started: %s", e.msg);
    bn_gguf_writer_abort(w);
    bn_gguf_writer_new(&w, path, &e);
    bn_gguf_w_tensor(w, "a", BN_TYPE_Q8_0, 2, ne, &e);
    CHECK(bn_gguf_w_data(w, 0, d, 60, &e) == 0, "partial data accepted");
    CHECK(bn_gguf_writer_finish(w, &e) == -1 && strstr(e.msg, "incomplete"), "incomplete: %s", e.msg);

    bn_gguf_writer_new(&w, path, &e);
    bn_gguf_w_tensor(w, "a", BN_TYPE_Q8_0, 2, ne, &e);
    CHECK(bn_gguf_w_data(w, 0, d, 69, &e) == -1 && strstr(e.msg, "exceed"), "too much data: %s", e.msg);
    bn_gguf_writer_abort(w);
    CHECK(count_files(tmpdir) == before, "no file left after any misuse");

    CHECK(bn_gguf_writer_new(&w, "/nonexistent/dir/x.gguf", &e) == -1 && strstr(e.msg, "create"),
          "unwritable path: %s", e.msg);
}

/* Id 39 without bitnet.cpp context is upstream MXFP4. */
static void test_id39(void) {
    char path[128];
    snprintf(path, sizeof path, "%s/mx.gguf", tmpdir);
    bn_err e;
    bn_gguf_writer *w;
    int64_t ne[2] = {64, 2};
    uint8_t d[68];
    memset(d, 1, sizeof d);
    bn_gguf_writer_new(&w, path, &e);
    bn_gguf_w_str(w, "general.architecture", "llama", &e);
    bn_gguf_w_tensor(w, "m", BN_TYPE_MXFP4, 2, ne, &e);
    bn_gguf_w_data(w, 0, d, 68, &e);
    CHECK(bn_gguf_writer_finish(w, &e) == 0, "mxfp4 file written (%s)", e.msg);
    bn_gguf *g;
    CHECK(bn_gguf_open(&g, path, &e) == 0 && bn_gguf_tensor_at(g, 0)->type == BN_TYPE_MXFP4 &&
              bn_gguf_tensor_at(g, 0)->nbytes == 68,
          "id 39 under arch llama reads as mxfp4");
    bn_gguf_close(g);
    unlink(path);
}

/* Rendering: JSON escaping, the llama.cpp log cut, text summaries. */
static void test_fmt(void) {
    char *q = bn_gguf_json_quote("a\"b\\\n\x01\xff\xc3\xa9\xed\xa0\x80z", 13);
    CHECK(q && strcmp(q, "\"a\\\"b\\\\\\n\\u0001\\ufffd\xc3\xa9\\ufffd\\ufffd\\ufffdz\"") == 0,
          "json quote escapes, keeps valid UTF-8, replaces invalid bytes: %s", q ? q : "(null)");
    free(q);
    buf b = build_all_types(3);
    bn_gguf *g;
    bn_err e;
    if (bn_gguf_open_mem(&g, b.p, b.n, "m", &e)) { CHECK(0, "open for fmt: %s", e.msg); return; }
    struct { const char *key; bn_gguf_fmt f; uint64_t max; const char *want; } cases[] = {
        {"k.f32", BN_GGUF_FMT_LLAMA, 0, "0.250000"}, {"k.f32", BN_GGUF_FMT_TEXT, 0, "0.25"},
        {"k.i8", BN_GGUF_FMT_TEXT, 0, "-5"}, {"k.bool", BN_GGUF_FMT_JSON, 0, "true"},
        {"k.str_nul", BN_GGUF_FMT_JSON, 0, "\"a\\u0000b\""}, {"k.str_nul", BN_GGUF_FMT_TEXT, 0, "\"a\\x00b\""},
        {"k.arr_str", BN_GGUF_FMT_LLAMA, 0, "[\"a\", \"\", \"hello\"]"},
        {"k.arr_str", BN_GGUF_FMT_TEXT, 2, "[\"a\", \"\", ...]"}, {"k.arr_str", BN_GGUF_FMT_JSON, 2, "[\"a\", \"\"]"},
        {"k.arr_nested", BN_GGUF_FMT_LLAMA, 0, "[???, ???]"}, {"k.arr_nested", BN_GGUF_FMT_JSON, 0, "[[7, 8], [\"xy\"]]"},
        {"k.arr_f32", BN_GGUF_FMT_LLAMA, 0, "[1.500000, -2.000000]"}, {"k.arr_empty", BN_GGUF_FMT_JSON, 0, "[]"},
        {"k.u64", BN_GGUF_FMT_JSON, 0, "1099511627776"},
    };
    int bad = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *v = bn_gguf_value_str(bn_gguf_find(g, cases[i].key), cases[i].f, cases[i].max);
        if (!v || strcmp(v, cases[i].want)) { printf("# %s fmt %d: got %s want %s\n", cases[i].key, cases[i].f, v ? v : "(null)", cases[i].want); bad++; }
        free(v);
    }
    CHECK(bad == 0, "value rendering in the three styles");
    char t[32];
    bn_gguf_type_str(bn_gguf_find(g, "k.arr_i32"), t, sizeof t);
    CHECK(strcmp(t, "arr[i32,3]") == 0, "type column %s", t);
    bn_gguf_close(g);
    free(b.p);

    /* the llama.cpp 40-character cut and newline escaping */
    buf c = {0};
    put(&c, "GGUF", 4); put_u32(&c, 3); put_u64(&c, 0); put_u64(&c, 2);
    put_key(&c, "long", BN_GGUF_STR); put_str(&c, "0123456789012345678901234567890123456789X");
    put_key(&c, "nl", BN_GGUF_STR); put_str(&c, "a\nb");
    if (bn_gguf_open_mem(&g, c.p, c.n, "m", &e) == 0) {
        char *v1 = bn_gguf_value_str(bn_gguf_find(g, "long"), BN_GGUF_FMT_LLAMA, 0);
        char *v2 = bn_gguf_value_str(bn_gguf_find(g, "nl"), BN_GGUF_FMT_LLAMA, 0);
        CHECK(v1 && strcmp(v1, "0123456789012345678901234567890123456...") == 0, "41 chars cut to 37 + ...: %s", v1);
        CHECK(v2 && strcmp(v2, "a\\nb") == 0, "newline escaped: %s", v2);
        free(v1); free(v2);
        bn_gguf_close(g);
    }
    free(c.p);
}

/* The 24-byte pre-flight agrees with the full parser on headers. */
static void test_check_header(void) {
    char path[128];
    snprintf(path, sizeof path, "%s/h.gguf", tmpdir);
    buf b = build_all_types(3);
    FILE *f = fopen(path, "wb");
    fwrite(b.p, 1, b.n, f);
    fclose(f);
    bn_gguf_header h;
    bn_err e;
    CHECK(bn_gguf_check_header(path, &h, &e) == 0 && h.version == 3 && h.n_tensors == 2 && h.n_kv == 19 &&
              h.file_size == b.n, "header of a good file");
    b.p[4] = 1;
    f = fopen(path, "wb");
    fwrite(b.p, 1, 24, f);
    fclose(f);
    CHECK(bn_gguf_check_header(path, &h, &e) == -1 && strstr(e.msg, "version 1"), "version 1: %s", e.msg);
    b.p[4] = 3;
    f = fopen(path, "wb");
    fwrite(b.p, 1, 24, f);
    fclose(f);
    CHECK(bn_gguf_check_header(path, &h, &e) == -1 && strstr(e.msg, "cannot fit"), "counts vs size: %s", e.msg);
    unlink(path);
    free(b.p);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_gguf.XXXXXX");
    if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 1; }
    test_traits();
    test_reader();
    test_corrupt();
    test_writer(32);
    test_writer(128);
    test_writer_errors();
    test_id39();
    test_fmt();
    test_check_header();
    rmdir(tmpdir);
    return tap_done();
}
