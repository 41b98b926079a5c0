/* test_frame.c - frame codec: round trip of every kind, limits, type checks,
 * truncation at every byte, garbage, the streaming reader fed byte by byte,
 * and agreement with msgpack-c's own parser on what we emit. */
#include <math.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "timing.h"
#include "tap.h"

/* Build one frame of each kind with non-default values in every field. */
static int32_t ids[5] = {1, -2, 300, 70000, 2147483647};
static int32_t one_id = 128009;
static float lg[6] = {0.5f, -1.25f, 3e38f, -INFINITY, 1e-30f, 7.0f};
static float lp[5] = {-0.1f, -2.5f, -0.0f, -10.0f, -3.25f};

static void make(bn_frame *f, bn_frame_kind k) {
    bn_frame_init(f, k);
    f->seq = 7;
    switch (k) {
    case BN_FRAME_HELLO:
        snprintf(f->hello.stage, sizeof f->hello.stage, "bn-forward");
        snprintf(f->hello.vocab_fp, sizeof f->hello.vocab_fp, "%064d", 42);
        snprintf(f->hello.model_fp, sizeof f->hello.model_fp, "abc");
        f->hello.n_vocab = 128256;
        f->hello.bos = 128000;
        f->hello.eos = 128001;
        f->hello.eog[0] = 128001;
        f->hello.eog[1] = 128009;
        f->hello.n_eog = 2;
        f->hello.n_ctx = 4096;
        snprintf(f->hello.feedback, sizeof f->hello.feedback, "ipc:///tmp/bn-x/fb");
        snprintf(f->hello.kernels, sizeof f->hello.kernels, "i2_s/avx512 threads=2");
        break;
    case BN_FRAME_TOKENS: f->tokens = ids; f->n_tokens = 5; f->pos = 3; break;
    case BN_FRAME_TOKEN: f->tokens = &one_id; f->n_tokens = 1; f->pos = 9; break;
    case BN_FRAME_LOGITS: f->logits = lg; f->n_rows = 2; f->n_vocab = 3; f->pos = 11; break;
    case BN_FRAME_TEXT: f->text = "h\xc3\xa9llo\n"; f->text_len = 7; break;
    case BN_FRAME_TIMING:
        snprintf(f->stage, sizeof f->stage, "bn-forward");
        snprintf(f->event, sizeof f->event, "decode");
        f->ns = 123456789012ull; f->count = 5; f->t_start_ns = 99;
        break;
    case BN_FRAME_SCORES: f->tokens = ids; f->n_tokens = 5; f->logits = lp; f->n_rows = 5; f->pos = 1; break;
    case BN_FRAME_ERROR: snprintf(f->stage, sizeof f->stage, "bn-sample"); f->text = "boom"; f->text_len = 4; break;
    case BN_FRAME_END: f->more = true; break;
    default: break;
    }
}

static bool same(const bn_frame *a, const bn_frame *b) {
    if (a->kind != b->kind || a->seq != b->seq) return false;
    switch (a->kind) {
    case BN_FRAME_HELLO:
        return a->hello.proto == b->hello.proto && !strcmp(a->hello.stage, b->hello.stage) &&
               !strcmp(a->hello.vocab_fp, b->hello.vocab_fp) && !strcmp(a->hello.model_fp, b->hello.model_fp) &&
               a->hello.n_vocab == b->hello.n_vocab && a->hello.bos == b->hello.bos && a->hello.eos == b->hello.eos &&
               a->hello.n_eog == b->hello.n_eog && !memcmp(a->hello.eog, b->hello.eog, sizeof a->hello.eog) &&
               a->hello.n_ctx == b->hello.n_ctx && !strcmp(a->hello.feedback, b->hello.feedback) &&
               !strcmp(a->hello.kernels, b->hello.kernels);
    case BN_FRAME_TOKENS:
    case BN_FRAME_TOKEN:
        return a->pos == b->pos && a->n_tokens == b->n_tokens && !memcmp(a->tokens, b->tokens, a->n_tokens * 4);
    case BN_FRAME_LOGITS:
        return a->pos == b->pos && a->n_rows == b->n_rows && a->n_vocab == b->n_vocab &&
               !memcmp(a->logits, b->logits, (size_t)a->n_rows * a->n_vocab * 4);
    case BN_FRAME_TEXT: return a->text_len == b->text_len && !memcmp(a->text, b->text, a->text_len);
    case BN_FRAME_TIMING:
        return !strcmp(a->stage, b->stage) && !strcmp(a->event, b->event) && a->ns == b->ns && a->count == b->count &&
               a->t_start_ns == b->t_start_ns;
    case BN_FRAME_SCORES:
        return a->pos == b->pos && a->n_tokens == b->n_tokens && a->n_rows == b->n_rows &&
               !memcmp(a->tokens, b->tokens, a->n_tokens * 4) && !memcmp(a->logits, b->logits, a->n_rows * 4);
    case BN_FRAME_ERROR:
        return !strcmp(a->stage, b->stage) && a->text_len == b->text_len && !memcmp(a->text, b->text, a->text_len);
    case BN_FRAME_END: return a->more == b->more;
    default: return false;
    }
}

/* Encode with our packer and parse with msgpack-c: what we emit is msgpack. */
static bool msgpack_c_agrees(const uint8_t *buf, size_t len) {
    msgpack_zone z;
    msgpack_zone_init(&z, 2048);
    msgpack_object o;
    size_t off = 0;
    msgpack_unpack_return r = msgpack_unpack((const char *)buf, len, &off, &z, &o);
    bool ok = r == MSGPACK_UNPACK_SUCCESS && off == len && o.type == MSGPACK_OBJECT_MAP;
    msgpack_zone_destroy(&z);
    return ok;
}

static void test_round_trip(void) {
    for (int k = 1; k < BN_FRAME_KIND_COUNT; k++) {
        bn_frame f, g;
        bn_err e = {{0}};
        uint8_t *buf;
        size_t len;
        make(&f, (bn_frame_kind)k);
        int r = bn_frame_encode(&f, &buf, &len, &e);
        CHECK(r == 0, "encode %s (%s)", bn_frame_kind_name(k), e.msg);
        if (r) continue;
        CHECK(msgpack_c_agrees(buf, len), "%s: msgpack-c parses our bytes as one map", bn_frame_kind_name(k));
        r = bn_frame_decode(buf, len, 0, &g, &e);
        CHECK(r == 0 && same(&f, &g), "round trip %s (%s)", bn_frame_kind_name(k), r ? e.msg : "");
        /* re-encode gives the same bytes */
        uint8_t *buf2;
        size_t len2;
        CHECK(bn_frame_encode(&g, &buf2, &len2, &e) == 0 && len2 == len && !memcmp(buf, buf2, len),
              "%s re-encodes identically", bn_frame_kind_name(k));
        free(buf2);
        /* truncation at every byte offset is an error, never a crash */
        int bad = 0;
        for (size_t cut = 0; cut < len; cut++) {
            bn_frame t;
            if (bn_frame_decode(buf, cut, 100, &t, &e) == 0) { bad++; bn_frame_free(&t); }
        }
        CHECK(bad == 0, "%s: all %zu truncations rejected", bn_frame_kind_name(k), len);
        /* JSON view round trip */
        char *js;
        if (bn_frame_to_json(&g, true, &js, &e) == 0) {
            bn_frame h;
            int jr = bn_frame_from_json(js, strlen(js), &h, &e);
            CHECK(jr == 0 && same(&g, &h), "%s: JSON round trip (%s)", bn_frame_kind_name(k), jr ? e.msg : js);
            if (jr == 0) bn_frame_free(&h);
            free(js);
        } else CHECK(0, "to_json %s: %s", bn_frame_kind_name(k), e.msg);
        bn_frame_free(&g);
        free(buf);
    }
}

/* A hand-packed frame, so tests can write wrong types and extra fields. */
typedef struct pk {
    msgpack_sbuffer sb;
    msgpack_packer p;
} pk;
static void pk_init(pk *x) { msgpack_sbuffer_init(&x->sb); msgpack_packer_init(&x->p, &x->sb, msgpack_sbuffer_write); }
static void pk_s(pk *x, const char *s) { msgpack_pack_str(&x->p, strlen(s)); msgpack_pack_str_body(&x->p, s, strlen(s)); }

static int decode_pk(pk *x, bn_frame *f, bn_err *e) {
    int r = bn_frame_decode((uint8_t *)x->sb.data, x->sb.size, 0, f, e);
    msgpack_sbuffer_destroy(&x->sb);
    return r;
}

static void test_fields(void) {
    bn_frame f;
    bn_err e;
    pk x;

    /* unknown fields ignored, any key order */
    pk_init(&x);
    msgpack_pack_map(&x.p, 4);
    pk_s(&x, "future"); msgpack_pack_array(&x.p, 2); msgpack_pack_nil(&x.p); pk_s(&x, "z");
    pk_s(&x, "id"); msgpack_pack_int(&x.p, 42);
    pk_s(&x, "kind"); pk_s(&x, "token");
    pk_s(&x, "extra"); msgpack_pack_map(&x.p, 1); pk_s(&x, "a"); msgpack_pack_double(&x.p, 1.5);
    int r = decode_pk(&x, &f, &e);
    CHECK(r == 0 && f.kind == BN_FRAME_TOKEN && f.tokens[0] == 42, "unknown fields ignored, kind anywhere (%s)", r ? e.msg : "");
    if (r == 0) bn_frame_free(&f);

    /* unknown kind kept raw and re-emitted unchanged */
    pk_init(&x);
    msgpack_pack_map(&x.p, 2);
    pk_s(&x, "kind"); pk_s(&x, "embedding");
    pk_s(&x, "v"); msgpack_pack_array(&x.p, 1); msgpack_pack_float(&x.p, 1.0f);
    size_t rawlen = x.sb.size;
    uint8_t *copy = malloc(rawlen);
    memcpy(copy, x.sb.data, rawlen);
    r = decode_pk(&x, &f, &e);
    CHECK(r == 0 && f.kind == BN_FRAME_UNKNOWN && f.raw_len == rawlen && !memcmp(f.raw, copy, rawlen), "unknown kind kept raw");
    uint8_t *out;
    size_t outlen;
    CHECK(r == 0 && bn_frame_encode(&f, &out, &outlen, &e) == 0 && outlen == rawlen && !memcmp(out, copy, rawlen),
          "unknown kind re-emitted byte for byte");
    if (r == 0) { free(out); bn_frame_free(&f); }
    free(copy);

    /* wrong types name the field and the byte offset */
    pk_init(&x);
    msgpack_pack_map(&x.p, 2);
    pk_s(&x, "kind"); pk_s(&x, "tokens");
    pk_s(&x, "ids"); pk_s(&x, "notanarray");
    r = decode_pk(&x, &f, &e);
    CHECK(r < 0 && strstr(e.msg, "ids") && strstr(e.msg, "at byte 17"), "ids as string rejected: %s", e.msg);

    pk_init(&x);
    msgpack_pack_map(&x.p, 2);
    pk_s(&x, "kind"); pk_s(&x, "tokens");
    pk_s(&x, "ids"); msgpack_pack_array(&x.p, 2); msgpack_pack_int(&x.p, 1); msgpack_pack_double(&x.p, 2.0);
    r = decode_pk(&x, &f, &e);
    CHECK(r < 0 && strstr(e.msg, "expected an integer"), "float id rejected: %s", e.msg);

    pk_init(&x);
    msgpack_pack_map(&x.p, 2);
    pk_s(&x, "kind"); pk_s(&x, "token");
    pk_s(&x, "id"); msgpack_pack_int64(&x.p, 1ll << 40);
    r = decode_pk(&x, &f, &e);
    CHECK(r < 0 && strstr(e.msg, "int32"), "id out of int32 range rejected: %s", e.msg);

    pk_init(&x);
    msgpack_pack_map(&x.p, 2);
    pk_s(&x, "kind"); pk_s(&x, "token");
    pk_s(&x, "pos"); msgpack_pack_int(&x.p, -1);
    r = decode_pk(&x, &f, &e);
    CHECK(r < 0, "negative pos / missing id rejected: %s", e.msg);

    pk_init(&x);
    msgpack_pack_map(&x.p, 1);
    pk_s(&x, "kind"); msgpack_pack_int(&x.p, 3);
    r = decode_pk(&x, &f, &e);
    CHECK(r < 0 && strstr(e.msg, "kind"), "kind as int rejected: %s", e.msg);

    pk_init(&x);
    msgpack_pack_map(&x.p, 1);
    pk_s(&x, "id"); msgpack_pack_int(&x.p, 3);
    r = decode_pk(&x, &f, &e);
    CHECK(r < 0 && strstr(e.msg, "missing field kind"), "missing kind rejected: %s", e.msg);

    pk_init(&x);
    msgpack_pack_map(&x.p, 3);
    pk_s(&x, "kind"); pk_s(&x, "token");
    pk_s(&x, "id"); msgpack_pack_int(&x.p, 3);
    pk_s(&x, "id"); msgpack_pack_int(&x.p, 4);
    r = decode_pk(&x, &f, &e);
    CHECK(r < 0 && strstr(e.msg, "duplicate"), "duplicate field rejected: %s", e.msg);

    pk_init(&x);
    msgpack_pack_map(&x.p, 2);
    pk_s(&x, "kind"); pk_s(&x, "timing");
    pk_s(&x, "stage"); pk_s(&x, "a-stage-name-that-is-longer-than-31-bytes");
    r = decode_pk(&x, &f, &e);
    CHECK(r < 0 && strstr(e.msg, "too long"), "overlong stage rejected: %s", e.msg);

    /* logits: data length must match n_rows x n_vocab */
    pk_init(&x);
    msgpack_pack_map(&x.p, 4);
    pk_s(&x, "kind"); pk_s(&x, "logits");
    pk_s(&x, "n_rows"); msgpack_pack_int(&x.p, 2);
    pk_s(&x, "n_vocab"); msgpack_pack_int(&x.p, 1000000);
    pk_s(&x, "data"); msgpack_pack_bin(&x.p, 8); msgpack_pack_bin_body(&x.p, "12345678", 8);
    r = decode_pk(&x, &f, &e);
    CHECK(r < 0 && strstr(e.msg, "expected n_rows"), "logits size mismatch rejected: %s", e.msg);

    pk_init(&x);
    msgpack_pack_map(&x.p, 4);
    pk_s(&x, "kind"); pk_s(&x, "logits");
    pk_s(&x, "n_rows"); msgpack_pack_int(&x.p, 1);
    pk_s(&x, "n_vocab"); msgpack_pack_int(&x.p, 2);
    pk_s(&x, "data"); msgpack_pack_array(&x.p, 2); msgpack_pack_float(&x.p, 1); msgpack_pack_float(&x.p, 2);
    r = decode_pk(&x, &f, &e);
    CHECK(r < 0 && strstr(e.msg, "expected bin"), "logits as float array rejected: %s", e.msg);

    /* hello with too many eog ids */
    pk_init(&x);
    msgpack_pack_map(&x.p, 4);
    pk_s(&x, "kind"); pk_s(&x, "hello");
    pk_s(&x, "proto"); msgpack_pack_int(&x.p, 1);
    pk_s(&x, "stage"); pk_s(&x, "x");
    pk_s(&x, "eog"); msgpack_pack_array(&x.p, 9);
    for (int i = 0; i < 9; i++) msgpack_pack_int(&x.p, i);
    r = decode_pk(&x, &f, &e);
    CHECK(r < 0 && strstr(e.msg, "eog"), "9 eog ids rejected: %s", e.msg);

    /* empty payloads: zero logits rows, no ids, empty text */
    bn_frame_init(&f, BN_FRAME_LOGITS);
    f.n_vocab = 5;
    r = bn_frame_encode(&f, &out, &outlen, &e);
    bn_frame g;
    CHECK(r == 0 && bn_frame_decode(out, outlen, 0, &g, &e) == 0 && g.n_rows == 0 && g.n_vocab == 5, "logits with 0 rows");
    if (r == 0) { free(out); bn_frame_free(&g); }
    bn_frame_init(&f, BN_FRAME_TOKENS);
    r = bn_frame_encode(&f, &out, &outlen, &e);
    CHECK(r == 0 && bn_frame_decode(out, outlen, 0, &g, &e) == 0 && g.n_tokens == 0, "tokens with no ids");
    if (r == 0) { free(out); bn_frame_free(&g); }
    bn_frame_init(&f, BN_FRAME_TEXT);
    r = bn_frame_encode(&f, &out, &outlen, &e);
    CHECK(r == 0 && bn_frame_decode(out, outlen, 0, &g, &e) == 0 && g.text_len == 0 && g.text && g.text[0] == 0, "empty text");
    if (r == 0) { free(out); bn_frame_free(&g); }

    /* encode refuses what decode would refuse */
    bn_frame_init(&f, BN_FRAME_LOGITS);
    f.n_rows = 1000; f.n_vocab = 128256; f.logits = lg;
    CHECK(bn_frame_encode(&f, &out, &outlen, &e) < 0 && strstr(e.msg, "split"), "encode refuses a 500 MB logits frame: %s", e.msg);
    bn_frame_init(&f, BN_FRAME_TOKEN);
    CHECK(bn_frame_encode(&f, &out, &outlen, &e) < 0, "encode refuses a token frame without id");
}

static void test_hello_check(void) {
    bn_frame f;
    bn_err e;
    make(&f, BN_FRAME_HELLO);
    CHECK(bn_hello_check(&f.hello, NULL, &e) == 0, "hello check: ok without expectation");
    CHECK(bn_hello_check(&f.hello, f.hello.vocab_fp, &e) == 0, "hello check: same vocab_fp");
    CHECK(bn_hello_check(&f.hello, "ffff", &e) < 0 && strstr(e.msg, "vocabulary mismatch") && strstr(e.msg, "bn-forward"),
          "hello check: vocab mismatch: %s", e.msg);
    f.hello.vocab_fp[0] = 0;
    CHECK(bn_hello_check(&f.hello, "ffff", &e) == 0, "hello check: no fingerprint, nothing to compare");
    f.hello.proto = 2;
    CHECK(bn_hello_check(&f.hello, NULL, &e) < 0 && strstr(e.msg, "protocol version 2"), "hello check: proto 2: %s", e.msg);
}

static void test_limits(void) {
    bn_frame f;
    bn_err e;
    /* declared sizes beyond the caps are refused before any allocation */
    const uint8_t huge_arr[] = {0x82, 0xa4, 'k', 'i', 'n', 'd', 0xa6, 't', 'o', 'k', 'e', 'n', 's',
                                0xa3, 'i', 'd', 's', 0xdd, 0xff, 0xff, 0xff, 0xff};
    int r = bn_frame_decode(huge_arr, sizeof huge_arr, 1000, &f, &e);
    CHECK(r < 0 && strstr(e.msg, "entries, max") && strstr(e.msg, "byte 1017"), "array of 2^32-1 refused: %s", e.msg);
    const uint8_t big_bin[] = {0x81, 0xa4, 'd', 'a', 't', 'a', 0xc6, 0x10, 0, 0, 0};
    r = bn_frame_decode(big_bin, sizeof big_bin, 0, &f, &e);
    CHECK(r < 0 && strstr(e.msg, "limit"), "bin of 256 MiB refused: %s", e.msg);
    /* 5M-element array (under the count cap, over what the bytes can hold) */
    const uint8_t arr5m[] = {0x81, 0xa1, 'x', 0xdd, 0x04, 0xc4, 0xb4, 0x00};
    r = bn_frame_decode(arr5m, sizeof arr5m, 0, &f, &e);
    CHECK(r < 0, "array of 80M entries refused: %s", e.msg);
    /* nesting */
    uint8_t deep[200];
    size_t n = 0;
    deep[n++] = 0x81; deep[n++] = 0xa1; deep[n++] = 'x';
    for (int i = 0; i < 100; i++) deep[n++] = 0x91;
    deep[n++] = 0xc0;
    r = bn_frame_decode(deep, n, 0, &f, &e);
    CHECK(r < 0 && strstr(e.msg, "nesting"), "nesting 100 deep refused: %s", e.msg);
    /* not a map, invalid byte, trailing bytes, empty */
    const uint8_t arr[] = {0x91, 0x01};
    r = bn_frame_decode(arr, sizeof arr, 5, &f, &e);
    CHECK(r < 0 && strstr(e.msg, "not a msgpack map") && strstr(e.msg, "byte 5"), "array frame refused: %s", e.msg);
    const uint8_t c1[] = {0x81, 0xa1, 'x', 0xc1};
    r = bn_frame_decode(c1, sizeof c1, 0, &f, &e);
    CHECK(r < 0 && strstr(e.msg, "0xc1") && strstr(e.msg, "byte 3"), "0xc1 refused: %s", e.msg);
    const uint8_t trail[] = {0x81, 0xa4, 'k', 'i', 'n', 'd', 0xa3, 'e', 'n', 'd', 0x00};
    r = bn_frame_decode(trail, sizeof trail, 0, &f, &e);
    CHECK(r < 0 && strstr(e.msg, "trailing"), "trailing byte refused: %s", e.msg);
    r = bn_frame_decode(trail, sizeof trail - 1, 0, &f, &e);
    CHECK(r == 0 && f.kind == BN_FRAME_END && !f.more, "minimal end frame accepted");
    r = bn_frame_decode(trail, 0, 0, &f, &e);
    CHECK(r < 0, "empty input refused");

    /* garbage: random bytes never crash, and whatever decodes is a frame */
    srand(1);
    int ok = 0, fail = 0;
    uint8_t g[64];
    for (int t = 0; t < 20000; t++) {
        size_t len = 1 + (size_t)(rand() % 64);
        for (size_t i = 0; i < len; i++) g[i] = (uint8_t)rand();
        if (t % 2) g[0] = (uint8_t)(0x80 | (rand() & 0x0f));
        if (bn_frame_decode(g, len, 0, &f, &e) == 0) { ok++; bn_frame_free(&f); } else fail++;
    }
    CHECK(ok + fail == 20000, "20000 random inputs handled (%d decoded, %d refused)", ok, fail);
}

/* A stream of every kind, fed one byte at a time and in random chunks. */
static void test_reader(void) {
    uint8_t *stream = NULL;
    size_t slen = 0;
    size_t offs[BN_FRAME_KIND_COUNT];
    for (int k = 1; k < BN_FRAME_KIND_COUNT; k++) {
        bn_frame f;
        uint8_t *b;
        size_t l;
        bn_err e;
        make(&f, (bn_frame_kind)k);
        if (bn_frame_encode(&f, &b, &l, &e) < 0) continue;
        offs[k] = slen;
        stream = realloc(stream, slen + l);
        memcpy(stream + slen, b, l);
        slen += l;
        free(b);
    }
    for (int mode = 0; mode < 2; mode++) {
        bn_frame_reader *r;
        bn_err e;
        bn_frame_reader_new(&r, &e);
        int got = 0, bad = 0;
        size_t i = 0;
        srand(7);
        while (i < slen) {
            size_t n = mode == 0 ? 1 : 1 + (size_t)(rand() % 40);
            if (n > slen - i) n = slen - i;
            bn_frame_reader_feed(r, stream + i, n, &e);
            i += n;
            bn_frame f;
            int rc;
            while ((rc = bn_frame_reader_next(r, &f, &e)) == 1) {
                bn_frame want;
                make(&want, (bn_frame_kind)(got + 1));
                if (!same(&want, &f)) bad++;
                got++;
                bn_frame_free(&f);
            }
            if (rc < 0) { bad++; break; }
        }
        CHECK(got == BN_FRAME_KIND_COUNT - 1 && bad == 0 && bn_frame_reader_pending(r) == 0,
              "reader (%s): %d frames, %d bad", mode ? "random chunks" : "one byte at a time", got, bad);
        bn_frame_reader_free(r);
    }
    /* truncated at every offset: the reader never produces a wrong frame and
     * always has bytes pending unless the cut is at a frame boundary */
    int wrong = 0;
    for (size_t cut = 0; cut < slen; cut++) {
        bn_frame_reader *r;
        bn_err e;
        bn_frame_reader_new(&r, &e);
        bn_frame_reader_feed(r, stream, cut, &e);
        bn_frame f;
        int got = 0, rc;
        while ((rc = bn_frame_reader_next(r, &f, &e)) == 1) { got++; bn_frame_free(&f); }
        bool boundary = false;
        int frames_before = 0;
        for (int k = 1; k < BN_FRAME_KIND_COUNT; k++) {
            if (offs[k] == cut) boundary = true;
            if (offs[k] < cut) frames_before++;
        }
        int expect = boundary ? frames_before : frames_before - 1;
        if (rc != 0 || got != expect || (bn_frame_reader_pending(r) == 0) != boundary) wrong++;
        bn_frame_reader_free(r);
    }
    CHECK(wrong == 0, "stream cut at each of %zu offsets: pending bytes reported exactly when mid-frame", slen);

    /* garbage in the middle: error names the offset and sticks */
    bn_frame_reader *r;
    bn_err e;
    bn_frame_reader_new(&r, &e);
    bn_frame_reader_feed(r, stream, offs[3], &e);
    bn_frame_reader_feed(r, "\xc1garbage", 8, &e);
    bn_frame f;
    int rc, got = 0;
    while ((rc = bn_frame_reader_next(r, &f, &e)) == 1) { got++; bn_frame_free(&f); }
    char want[64];
    snprintf(want, sizeof want, "byte %zu", offs[3]);
    CHECK(rc < 0 && got == 2 && strstr(e.msg, want), "garbage after 2 frames: %s", e.msg);
    CHECK(bn_frame_reader_next(r, &f, &e) < 0, "error is sticky");
    bn_frame_reader_free(r);

    /* a wrongly typed but well-formed frame is skipped: the next one decodes */
    bn_frame_reader_new(&r, &e);
    const uint8_t badtok[] = {0x82, 0xa4, 'k', 'i', 'n', 'd', 0xa5, 't', 'o', 'k', 'e', 'n', 0xa2, 'i', 'd', 0xa1, 'x'};
    bn_frame_reader_feed(r, badtok, sizeof badtok, &e);
    bn_frame_reader_feed(r, stream, offs[2], &e);
    rc = bn_frame_reader_next(r, &f, &e);
    CHECK(rc < 0 && strstr(e.msg, "field id"), "bad frame reported: %s", e.msg);
    rc = bn_frame_reader_next(r, &f, &e);
    CHECK(rc == 1 && f.kind == BN_FRAME_HELLO, "next frame still decodes");
    if (rc == 1) bn_frame_free(&f);
    bn_frame_reader_free(r);

    /* a frame declared larger than the cap fails as soon as the header is in */
    bn_frame_reader_new(&r, &e);
    const uint8_t bigstr[] = {0x81, 0xa4, 't', 'e', 'x', 't', 0xdb, 0x7f, 0, 0, 0};
    bn_frame_reader_feed(r, bigstr, sizeof bigstr, &e);
    rc = bn_frame_reader_next(r, &f, &e);
    CHECK(rc < 0 && strstr(e.msg, "limit"), "oversized frame refused from its header: %s", e.msg);
    bn_frame_reader_free(r);
    free(stream);
}

/* TIMING frames accumulate into the per-stage summary; names per PROTOCOL.md. */
static int collect(void *ud, const bn_frame *f, bn_err *e) {
    (void)e;
    bn_timing_add_frame(ud, f);
    return 0;
}

static void test_timing(void) {
    bn_timing t;
    bn_timing_init(&t);
    bn_frame f;
    bn_frame_timing(&f, "bn-tokenize", "tokenize", 2000000, 12);
    f.t_start_ns = 1000000000;
    CHECK(bn_timing_add_frame(&t, &f) == 1, "timing frame accepted");
    bn_frame_timing(&f, "bn-forward", "load", 500000000, 0);
    f.t_start_ns = 1002000000;
    bn_timing_add_frame(&t, &f);
    bn_frame_timing(&f, "bn-forward", "prefill", 120000000, 12);
    f.t_start_ns = 1502000000;
    bn_timing_add_frame(&t, &f);
    for (int i = 0; i < 4; i++) {
        bn_frame_timing(&f, "bn-forward", "decode", 25000000, 1);
        f.t_start_ns = 1622000000ull + 25000000ull * (uint64_t)i;
        bn_timing_add_frame(&t, &f);
    }
    bn_frame_timing(&f, "bn-sample", "wait", 7000000, 4);
    bn_timing_add_frame(&t, &f);
    bn_frame_token(&f, &one_id, 0);
    CHECK(bn_timing_add_frame(&t, &f) == 0, "non-timing frame ignored");
    bn_timing_entry d = bn_timing_get(&t, "bn-forward", "decode");
    CHECK(d.ns == 100000000 && d.count == 4 && d.n == 4, "decode accumulated: %llu ns, %llu tokens",
          (unsigned long long)d.ns, (unsigned long long)d.count);
    char *js = bn_timing_summary_json(&t, 0);
    CHECK(js && strstr(js, "\"total_duration\":722000000,") && strstr(js, "\"load_duration\":500000000,") &&
          strstr(js, "\"prompt_eval_count\":12,") && strstr(js, "\"prompt_eval_duration\":120000000,") &&
          strstr(js, "\"eval_count\":4,") && strstr(js, "\"eval_duration\":100000000,") &&
          strstr(js, "\"bn-sample\":{\"wait\":{\"ns\":7000000,\"count\":4,\"n\":1}}"),
          "JSON summary, Ollama names, wall span total: %s", js ? js : "(null)");
    free(js);
    char *tx = bn_timing_summary_text(&t, 0);
    CHECK(tx && strstr(tx, "decode") && strstr(tx, "25.000 ms/token") && strstr(tx, "40.00 tok/s") &&
          strstr(tx, "prefill") && strstr(tx, "100.00 tok/s") && strstr(tx, "wait       bn-sample 7.00 ms"),
          "text summary");
    for (char *l = tx ? strtok(tx, "\n") : NULL; l; l = strtok(NULL, "\n")) printf("# %s\n", l);
    free(tx);
    uint64_t t0 = bn_now_ns();
    uint64_t d1 = bn_timing_since(&t, "bn-detok", "detok", t0, 3);
    bn_timing_entry dt = bn_timing_get(&t, "bn-detok", "detok");
    CHECK(dt.ns == d1 && dt.count == 3 && dt.first_ns == t0, "timer: since t0 recorded with its start");
    /* emit -> re-accumulate gives the same totals */
    bn_timing u;
    bn_timing_init(&u);
    bn_err e;
    CHECK(bn_timing_emit(&t, "bn-forward", collect, &u, &e) == 0 && u.n == 3 &&
          bn_timing_get(&u, NULL, "decode").ns == 100000000, "emit of one stage's totals");
    /* the table is bounded */
    bn_timing_init(&u);
    char ev[32];
    for (int i = 0; i < BN_TIMING_MAX + 5; i++) {
        snprintf(ev, sizeof ev, "e%d", i);
        bn_timing_add(&u, "s", ev, 1, 1, 0);
    }
    CHECK(u.n == BN_TIMING_MAX && u.dropped == 5, "more than %d kinds: extra dropped and counted", BN_TIMING_MAX);
}

int main(void) {
    test_round_trip();
    test_fields();
    test_hello_check();
    test_limits();
    test_reader();
    test_timing();
    return tap_done();
}
