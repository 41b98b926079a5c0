/* fuzz_frame.c - libFuzzer harness for the frame decoder and the streaming
 * reader. Input: arbitrary bytes. Checks, beyond "no crash, no leak, no UB":
 *  - a frame that decodes re-encodes to bytes that decode to the same frame
 *    (and unknown kinds re-emit their exact bytes);
 *  - whatever we accept, msgpack-c also parses as exactly one object;
 *  - the streaming reader, fed in chunks whose sizes come from the input,
 *    returns frames for exactly the prefix that bn_frame_decode accepts
 *    frame by frame.
 * Seeds: tests/fuzz/corpus/fuzz_frame/ (one valid frame of each kind). */
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"

/* Re-encode a decoded frame; the result must decode to an equal encoding. */
static void check_reencode(const bn_frame *f, const uint8_t *orig, size_t len) {
    uint8_t *b1, *b2;
    size_t l1, l2;
    bn_err e;
    if (bn_frame_encode(f, &b1, &l1, &e) < 0) return; /* e.g. a token frame without id: refused, fine */
    if (f->kind == BN_FRAME_UNKNOWN && (l1 != len || memcmp(b1, orig, len))) abort();
    bn_frame g;
    if (bn_frame_decode(b1, l1, 0, &g, &e) < 0) abort();
    if (bn_frame_encode(&g, &b2, &l2, &e) < 0) abort();
    if (l1 != l2 || memcmp(b1, b2, l1)) abort();
    char *js;
    if (bn_frame_to_json(&g, false, &js, &e) == 0) free(js);
    bn_frame_free(&g);
    free(b1);
    free(b2);
}

/* msgpack-c must agree that buf is one complete msgpack object. */
static void check_msgpack_c(const uint8_t *buf, size_t len) {
    msgpack_zone z;
    msgpack_zone_init(&z, 2048);
    msgpack_object o;
    size_t off = 0;
    msgpack_unpack_return r = msgpack_unpack((const char *)buf, len, &off, &z, &o);
    if (r != MSGPACK_UNPACK_SUCCESS || off != len || o.type != MSGPACK_OBJECT_MAP) abort();
    msgpack_zone_destroy(&z);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    bn_frame f;
    bn_err e;
    if (bn_frame_decode(data, size, 0, &f, &e) == 0) {
        check_msgpack_c(data, size);
        check_reencode(&f, data, size);
        bn_frame_free(&f);
    }

    /* streaming: chunk sizes from the first byte */
    bn_frame_reader *r;
    if (bn_frame_reader_new(&r, &e) < 0) return 0;
    size_t step = size ? (size_t)(data[0] % 17) + 1 : 1;
    size_t i = 0;
    uint64_t expect_off = 0;
    for (;;) {
        int rc = bn_frame_reader_next(r, &f, &e);
        if (rc == 1) {
            /* the frame occupies [expect_off, reader offset): decode it alone */
            uint64_t end = bn_frame_reader_offset(r);
            bn_frame g;
            if (end <= expect_off || end > size) abort();
            if (bn_frame_decode(data + expect_off, (size_t)(end - expect_off), expect_off, &g, &e) < 0) abort();
            bn_frame_free(&g);
            bn_frame_free(&f);
            expect_off = end;
            continue;
        }
        if (rc < 0) {
            /* a well-formed frame with bad fields is stepped over (offset
             * moves on, reading continues); bytes that are not msgpack
             * break the stream for good (offset stays) */
            uint64_t off = bn_frame_reader_offset(r);
            if (off == expect_off) break;
            expect_off = off;
            continue;
        }
        if (i >= size) break;
        size_t n = step < size - i ? step : size - i;
        if (bn_frame_reader_feed(r, data + i, n, &e) < 0) break;
        i += n;
    }
    bn_frame_reader_free(r);
    return 0;
}
