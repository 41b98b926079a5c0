/* frame.c - msgpack frames: encoding with msgpack-c's packer, decoding with
 * a small bounds-checked reader of our own.
 *
 * Why our own decoder: msgpack-c's unpacker allocates n * sizeof(object) as
 * soon as it reads an array header, so a 6-byte frame that declares 2^32
 * elements asks for ~100 GB, and its buffer grows without limit. Here a
 * resumable scanner walks the msgpack headers first, enforcing the frame size
 * cap, the array cap and a nesting cap without allocating anything; only a
 * complete, well-formed frame is then decoded field by field, with a type
 * check on each field and byte offsets in every error message. The wire
 * format is plain msgpack (spec: docs/PROTOCOL.md). */
#include "frame.h"

#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#define SCAN_MAX_DEPTH 32  /* nesting cap for unknown fields/kinds */

static const char *const kind_names[BN_FRAME_KIND_COUNT] = {
    [BN_FRAME_UNKNOWN] = "unknown", [BN_FRAME_HELLO] = "hello",   [BN_FRAME_TOKENS] = "tokens",
    [BN_FRAME_LOGITS] = "logits",   [BN_FRAME_TOKEN] = "token",   [BN_FRAME_TEXT] = "text",
    [BN_FRAME_TIMING] = "timing",   [BN_FRAME_SCORES] = "scores", [BN_FRAME_ERROR] = "error",
    [BN_FRAME_END] = "end",
};

/* Names are the wire spelling of "kind"; one table so encode and decode agree. */
const char *bn_frame_kind_name(bn_frame_kind k) {
    return (unsigned)k < BN_FRAME_KIND_COUNT ? kind_names[k] : "unknown";
}

/* Map a wire kind string to the enum; unknown strings stay BN_FRAME_UNKNOWN. */
static bn_frame_kind kind_from_str(const uint8_t *s, size_t n) {
    for (int k = 1; k < BN_FRAME_KIND_COUNT; k++)
        if (strlen(kind_names[k]) == n && memcmp(kind_names[k], s, n) == 0) return (bn_frame_kind)k;
    return BN_FRAME_UNKNOWN;
}

/* A zeroed frame with the "none" conventions (bos/eos -1) so callers only set
 * what they use. */
void bn_frame_init(bn_frame *f, bn_frame_kind kind) {
    memset(f, 0, sizeof *f);
    f->kind = kind;
    f->hello.proto = BN_PROTO_VERSION;
    f->hello.bos = -1;
    f->hello.eos = -1;
}

/* Free decoder-owned buffers; frames built by callers (owns=false) are left alone. */
void bn_frame_free(bn_frame *f) {
    if (!f) return;
    if (f->owns) {
        free(f->tokens);
        free(f->logits);
        free(f->text);
        free(f->raw);
    }
    f->tokens = NULL;
    f->logits = NULL;
    f->text = NULL;
    f->raw = NULL;
    f->owns = false;
}

/* Bounded copy into a fixed char array (always NUL-terminated). */
static void copy_str(char *dst, size_t cap, const char *src) {
    if (!src) src = "";
    size_t n = strnlen(src, cap - 1);
    memcpy(dst, src, n);
    dst[n] = 0;
}

/* One place for the version and vocabulary checks every stage does. */
int bn_hello_check(const bn_hello *h, const char *expect_vocab_fp, bn_err *e) {
    const char *who = h->stage[0] ? h->stage : "upstream";
    if (h->proto != BN_PROTO_VERSION)
        return bn_errf(e, "%s: hello: protocol version %u, this stage speaks %d", who, h->proto, BN_PROTO_VERSION);
    if (expect_vocab_fp && expect_vocab_fp[0] && h->vocab_fp[0] && strcmp(expect_vocab_fp, h->vocab_fp) != 0)
        return bn_errf(e, "%s: hello: vocabulary mismatch (vocab_fp %.16s..., expected %.16s...)", who, h->vocab_fp,
                       expect_vocab_fp);
    return 0;
}

void bn_frame_tokens(bn_frame *f, int32_t *ids, uint32_t n, uint32_t pos) {
    bn_frame_init(f, BN_FRAME_TOKENS);
    f->tokens = ids;
    f->n_tokens = n;
    f->pos = pos;
}

void bn_frame_token(bn_frame *f, int32_t *id, uint32_t pos) {
    bn_frame_init(f, BN_FRAME_TOKEN);
    f->tokens = id;
    f->n_tokens = 1;
    f->pos = pos;
}

void bn_frame_timing(bn_frame *f, const char *stage, const char *event, uint64_t ns, uint64_t count) {
    bn_frame_init(f, BN_FRAME_TIMING);
    copy_str(f->stage, sizeof f->stage, stage);
    copy_str(f->event, sizeof f->event, event);
    f->ns = ns;
    f->count = count;
}

void bn_frame_error(bn_frame *f, const char *stage, const char *msg) {
    bn_frame_init(f, BN_FRAME_ERROR);
    copy_str(f->stage, sizeof f->stage, stage);
    f->text = (char *)(msg ? msg : "");
    f->text_len = strlen(f->text);
}

/* ------------------------------------------------------------------ */
/* Little-endian f32 <-> host, so the wire stays LE on any host.       */

static bool host_is_le(void) {
    const uint16_t one = 1;
    uint8_t b;
    memcpy(&b, &one, 1);
    return b == 1;
}

/* Copy n floats to LE bytes (dst may not alias src). */
static void f32_to_le(uint8_t *dst, const float *src, size_t n) {
    if (host_is_le()) { memcpy(dst, src, n * 4); return; }
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &src[i], 4);
        dst[4 * i] = (uint8_t)u; dst[4 * i + 1] = (uint8_t)(u >> 8);
        dst[4 * i + 2] = (uint8_t)(u >> 16); dst[4 * i + 3] = (uint8_t)(u >> 24);
    }
}

static void f32_from_le(float *dst, const uint8_t *src, size_t n) {
    if (host_is_le()) { memcpy(dst, src, n * 4); return; }
    for (size_t i = 0; i < n; i++) {
        uint32_t u = (uint32_t)src[4 * i] | (uint32_t)src[4 * i + 1] << 8 |
                     (uint32_t)src[4 * i + 2] << 16 | (uint32_t)src[4 * i + 3] << 24;
        memcpy(&dst[i], &u, 4);
    }
}

/* ------------------------------------------------------------------ */
/* Encoding                                                            */

typedef struct enc {
    msgpack_packer pk;
    int rc;  /* first error from the packer (allocation failure) */
} enc;

static void p_key(enc *x, const char *k) {
    size_t n = strlen(k);
    x->rc |= msgpack_pack_str(&x->pk, n);
    x->rc |= msgpack_pack_str_body(&x->pk, k, n);
}
static void p_str(enc *x, const char *k, const char *v, size_t n) {
    p_key(x, k);
    x->rc |= msgpack_pack_str(&x->pk, n);
    x->rc |= msgpack_pack_str_body(&x->pk, v, n);
}
static void p_cstr(enc *x, const char *k, const char *v) { p_str(x, k, v, strlen(v)); }
static void p_uint(enc *x, const char *k, uint64_t v) { p_key(x, k); x->rc |= msgpack_pack_uint64(&x->pk, v); }
static void p_int(enc *x, const char *k, int64_t v) { p_key(x, k); x->rc |= msgpack_pack_int64(&x->pk, v); }
static void p_ids(enc *x, const char *k, const int32_t *ids, uint32_t n) {
    p_key(x, k);
    x->rc |= msgpack_pack_array(&x->pk, n);
    for (uint32_t i = 0; i < n; i++) x->rc |= msgpack_pack_int32(&x->pk, ids[i]);
}
/* f32 data as one bin (little-endian), never as an array of floats. */
static int p_f32bin(enc *x, const char *k, const float *v, size_t n, bn_err *e) {
    p_key(x, k);
    x->rc |= msgpack_pack_bin(&x->pk, n * 4);
    if (n == 0) return 0; /* no body (and no memcpy from a NULL pointer) */
    if (host_is_le()) {
        x->rc |= msgpack_pack_bin_body(&x->pk, v, n * 4);
        return 0;
    }
    uint8_t *tmp = bn_malloc(n * 4, e);
    if (!tmp) return -1;
    f32_to_le(tmp, v, n);
    x->rc |= msgpack_pack_bin_body(&x->pk, tmp, n * 4);
    free(tmp);
    return 0;
}

/* Check a caller's frame before packing, so we never emit a frame that a
 * receiver would reject (and never read past the caller's arrays). */
static int enc_check(const bn_frame *f, bn_err *e) {
    const char *kn = bn_frame_kind_name(f->kind);
    uint64_t cells;
    switch (f->kind) {
    case BN_FRAME_UNKNOWN:
        if (!f->raw || f->raw_len == 0) return bn_errf(e, "frame: unknown: no raw bytes to re-emit");
        break;
    case BN_FRAME_HELLO:
        if (f->hello.n_eog > BN_MAX_EOG) return bn_errf(e, "frame: hello: eog: %u ids, max %d", f->hello.n_eog, BN_MAX_EOG);
        break;
    case BN_FRAME_TOKENS:
    case BN_FRAME_SCORES:
        if (f->n_tokens > BN_FRAME_MAX_ARRAY) return bn_errf(e, "frame: %s: ids: %u ids, max %u", kn, f->n_tokens, BN_FRAME_MAX_ARRAY);
        if (f->n_tokens && !f->tokens) return bn_errf(e, "frame: %s: ids: NULL with n_tokens=%u", kn, f->n_tokens);
        if (f->kind == BN_FRAME_SCORES) {
            if (f->n_rows != f->n_tokens) return bn_errf(e, "frame: scores: n_rows %u != number of ids %u", f->n_rows, f->n_tokens);
            if (f->n_rows && !f->logits) return bn_errf(e, "frame: scores: logprobs: NULL with n_rows=%u", f->n_rows);
        }
        break;
    case BN_FRAME_TOKEN:
        if (f->n_tokens != 1 || !f->tokens) return bn_errf(e, "frame: token: needs exactly one id");
        break;
    case BN_FRAME_LOGITS:
        if (!bn_mul_u64(f->n_rows, f->n_vocab, &cells) || cells * 4 > BN_FRAME_MAX_BYTES - 256)
            return bn_errf(e, "frame: logits: %u rows x %u vocab does not fit in one frame (max %u bytes); split rows over several frames",
                           f->n_rows, f->n_vocab, BN_FRAME_MAX_BYTES);
        if (cells && !f->logits) return bn_errf(e, "frame: logits: data: NULL");
        break;
    case BN_FRAME_TEXT:
    case BN_FRAME_ERROR:
        if (f->text_len > BN_FRAME_MAX_BYTES - 256) return bn_errf(e, "frame: %s: text of %zu bytes is too large", kn, f->text_len);
        if (f->text_len && !f->text) return bn_errf(e, "frame: %s: text: NULL", kn);
        break;
    default:
        break;
    }
    if ((unsigned)f->kind >= BN_FRAME_KIND_COUNT) return bn_errf(e, "frame: kind: invalid value %d", (int)f->kind);
    return 0;
}

/* Pack one frame as a msgpack map "kind" first, then the kind's fields. */
int bn_frame_encode(const bn_frame *f, uint8_t **buf, size_t *len, bn_err *e) {
    *buf = NULL;
    *len = 0;
    if (enc_check(f, e) < 0) return -1;
    if (f->kind == BN_FRAME_UNKNOWN) {
        uint8_t *p = bn_malloc(f->raw_len, e);
        if (!p) return -1;
        memcpy(p, f->raw, f->raw_len);
        *buf = p;
        *len = f->raw_len;
        return 0;
    }
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    enc x = { .rc = 0 };
    msgpack_packer_init(&x.pk, &sb, msgpack_sbuffer_write);
    const bn_hello *h = &f->hello;
    uint32_t nfields = 2; /* kind, seq */
    switch (f->kind) {
    case BN_FRAME_HELLO: nfields += 11; break;
    case BN_FRAME_TOKENS: nfields += 2; break;
    case BN_FRAME_TOKEN: nfields += 2; break;
    case BN_FRAME_LOGITS: nfields += 4; break;
    case BN_FRAME_TEXT: nfields += 1; break;
    case BN_FRAME_TIMING: nfields += 5; break;
    case BN_FRAME_SCORES: nfields += 3; break;
    case BN_FRAME_ERROR: nfields += 2; break;
    case BN_FRAME_END: nfields += f->more ? 1 : 0; break;
    default: break;
    }
    x.rc |= msgpack_pack_map(&x.pk, nfields);
    p_cstr(&x, "kind", bn_frame_kind_name(f->kind));
    p_uint(&x, "seq", f->seq);
    int rc = 0;
    switch (f->kind) {
    case BN_FRAME_HELLO:
        p_uint(&x, "proto", h->proto);
        p_cstr(&x, "stage", h->stage);
        p_cstr(&x, "vocab_fp", h->vocab_fp);
        p_cstr(&x, "model_fp", h->model_fp);
        p_uint(&x, "n_vocab", h->n_vocab);
        p_int(&x, "bos", h->bos);
        p_int(&x, "eos", h->eos);
        p_ids(&x, "eog", h->eog, h->n_eog);
        p_uint(&x, "n_ctx", h->n_ctx);
        p_cstr(&x, "feedback", h->feedback);
        p_cstr(&x, "kernels", h->kernels);
        break;
    case BN_FRAME_TOKENS:
        p_uint(&x, "pos", f->pos);
        p_ids(&x, "ids", f->tokens, f->n_tokens);
        break;
    case BN_FRAME_TOKEN:
        p_uint(&x, "pos", f->pos);
        p_int(&x, "id", f->tokens[0]);
        break;
    case BN_FRAME_LOGITS:
        p_uint(&x, "pos", f->pos);
        p_uint(&x, "n_rows", f->n_rows);
        p_uint(&x, "n_vocab", f->n_vocab);
        rc = p_f32bin(&x, "data", f->logits, (size_t)f->n_rows * f->n_vocab, e);
        break;
    case BN_FRAME_TEXT:
        p_str(&x, "text", f->text_len ? f->text : "", f->text_len);
        break;
    case BN_FRAME_TIMING:
        p_cstr(&x, "stage", f->stage);
        p_cstr(&x, "event", f->event);
        p_uint(&x, "ns", f->ns);
        p_uint(&x, "count", f->count);
        p_uint(&x, "t_start_ns", f->t_start_ns);
        break;
    case BN_FRAME_SCORES:
        p_uint(&x, "pos", f->pos);
        p_ids(&x, "ids", f->tokens, f->n_tokens);
        rc = p_f32bin(&x, "logprobs", f->logits, f->n_rows, e);
        break;
    case BN_FRAME_ERROR:
        p_cstr(&x, "stage", f->stage);
        p_str(&x, "message", f->text_len ? f->text : "", f->text_len);
        break;
    case BN_FRAME_END:
        if (f->more) { p_key(&x, "more"); x.rc |= msgpack_pack_true(&x.pk); }
        break;
    default:
        break;
    }
    if (rc < 0 || x.rc != 0) {
        msgpack_sbuffer_destroy(&sb);
        return rc < 0 ? -1 : bn_errf(e, "frame: %s: out of memory while encoding", bn_frame_kind_name(f->kind));
    }
    if (sb.size > BN_FRAME_MAX_BYTES) {
        size_t n = sb.size;
        msgpack_sbuffer_destroy(&sb);
        return bn_errf(e, "frame: %s: encoded size %zu exceeds the %u byte limit", bn_frame_kind_name(f->kind), n, BN_FRAME_MAX_BYTES);
    }
    *len = sb.size;
    *buf = (uint8_t *)msgpack_sbuffer_release(&sb);
    if (!*buf) { /* an empty sbuffer has no data pointer; cannot happen (map header) */
        *buf = bn_malloc(1, e);
        if (!*buf) return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Scanning: find where one msgpack object ends without allocating.    */

/* Header of the object at p[0..avail): total size of header (hdr), payload
 * bytes that follow it (payload), and child count for arrays/maps (children,
 * already doubled for maps). Returns 1 ok, 0 need more bytes, -1 invalid byte. */
static int mp_header(const uint8_t *p, size_t avail, size_t *hdr, uint64_t *payload, uint64_t *children, int *is_container) {
    if (avail < 1) return 0;
    uint8_t b = p[0];
    *payload = 0;
    *children = 0;
    *is_container = 0;
    *hdr = 1;
    if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) return 1;
    if ((b & 0xf0) == 0x80) { *children = 2u * (b & 0x0f); *is_container = 1; return 1; }
    if ((b & 0xf0) == 0x90) { *children = b & 0x0f; *is_container = 1; return 1; }
    if ((b & 0xe0) == 0xa0) { *payload = b & 0x1f; return 1; }
    size_t lenbytes = 0;
    uint64_t fixed = 0;
    int kind = 0; /* 0 fixed payload, 1 str/bin length, 2 ext length, 3 array, 4 map */
    switch (b) {
    case 0xc4: lenbytes = 1; kind = 1; break;
    case 0xc5: lenbytes = 2; kind = 1; break;
    case 0xc6: lenbytes = 4; kind = 1; break;
    case 0xc7: lenbytes = 1; kind = 2; break;
    case 0xc8: lenbytes = 2; kind = 2; break;
    case 0xc9: lenbytes = 4; kind = 2; break;
    case 0xca: fixed = 4; break;
    case 0xcb: fixed = 8; break;
    case 0xcc: case 0xd0: fixed = 1; break;
    case 0xcd: case 0xd1: fixed = 2; break;
    case 0xce: case 0xd2: fixed = 4; break;
    case 0xcf: case 0xd3: fixed = 8; break;
    case 0xd4: fixed = 2; break;
    case 0xd5: fixed = 3; break;
    case 0xd6: fixed = 5; break;
    case 0xd7: fixed = 9; break;
    case 0xd8: fixed = 17; break;
    case 0xd9: lenbytes = 1; kind = 1; break;
    case 0xda: lenbytes = 2; kind = 1; break;
    case 0xdb: lenbytes = 4; kind = 1; break;
    case 0xdc: lenbytes = 2; kind = 3; break;
    case 0xdd: lenbytes = 4; kind = 3; break;
    case 0xde: lenbytes = 2; kind = 4; break;
    case 0xdf: lenbytes = 4; kind = 4; break;
    default: return -1; /* 0xc1: never used */
    }
    if (kind == 0) { *payload = fixed; return 1; }
    if (avail < 1 + lenbytes) return 0;
    uint64_t n = 0;
    for (size_t i = 0; i < lenbytes; i++) n = n << 8 | p[1 + i];
    *hdr = 1 + lenbytes;
    switch (kind) {
    case 1: *payload = n; break;
    case 2: *payload = n + 1; break; /* ext: type byte + data */
    case 3: *children = n; *is_container = 1; break;
    case 4: *children = 2 * n; *is_container = 1; break;
    }
    return 1;
}

/* Resumable scan state: how far we got inside the current frame. */
typedef struct scan {
    uint64_t off;                      /* bytes of the frame accepted so far */
    uint32_t depth;                    /* open containers + the root slot */
    uint64_t left[SCAN_MAX_DEPTH + 1]; /* objects still expected at each level */
} scan;

static void scan_reset(scan *s) {
    s->off = 0;
    s->depth = 1;
    s->left[0] = 1;
}

/* Advance over buf[s->off .. avail). Returns 1 when the object is complete
 * (extent = s->off), 0 when more bytes are needed, -1 on malformed input.
 * base is the stream offset of buf[0], used in messages. require_map: the
 * root must be a map (a frame). */
static int scan_run(scan *s, const uint8_t *buf, size_t avail, uint64_t base, bool require_map, bn_err *e) {
    while (s->depth > 0) {
        if (s->left[s->depth - 1] == 0) { s->depth--; continue; }
        size_t hdr;
        uint64_t payload, children;
        int is_cont;
        uint64_t at = s->off;
        int r = mp_header(buf + at, avail - at, &hdr, &payload, &children, &is_cont);
        if (r < 0) return bn_errf(e, "frame at byte %llu: invalid msgpack byte 0x%02x at byte %llu",
                                  (unsigned long long)base, buf[at], (unsigned long long)(base + at));
        if (r == 0) return 0;
        if (require_map && at == 0 && !(is_cont && ((buf[0] & 0xf0) == 0x80 || buf[0] == 0xde || buf[0] == 0xdf)))
            return bn_errf(e, "frame at byte %llu: not a msgpack map (first byte 0x%02x)", (unsigned long long)base, buf[0]);
        uint64_t end = at + hdr + payload;
        if (end > BN_FRAME_MAX_BYTES)
            return bn_errf(e, "frame at byte %llu: larger than the %u byte limit (object at byte %llu needs %llu bytes)",
                           (unsigned long long)base, BN_FRAME_MAX_BYTES, (unsigned long long)(base + at),
                           (unsigned long long)(hdr + payload));
        if (is_cont) {
            uint64_t n = ((buf[at] & 0xf0) == 0x80 || buf[at] == 0xde || buf[at] == 0xdf) ? children / 2 : children;
            if (n > BN_FRAME_MAX_ARRAY)
                return bn_errf(e, "frame at byte %llu: container at byte %llu has %llu entries, max %u",
                               (unsigned long long)base, (unsigned long long)(base + at), (unsigned long long)n,
                               BN_FRAME_MAX_ARRAY);
            /* every entry takes at least one byte */
            if (at + hdr + children > BN_FRAME_MAX_BYTES)
                return bn_errf(e, "frame at byte %llu: container at byte %llu cannot fit in the %u byte limit",
                               (unsigned long long)base, (unsigned long long)(base + at), BN_FRAME_MAX_BYTES);
        }
        if (end > avail) return 0;
        s->off = end;
        s->left[s->depth - 1]--;
        if (is_cont && children > 0) {
            if (s->depth > SCAN_MAX_DEPTH)
                return bn_errf(e, "frame at byte %llu: nesting deeper than %d at byte %llu", (unsigned long long)base,
                               SCAN_MAX_DEPTH, (unsigned long long)(base + at));
            s->left[s->depth++] = children;
        }
    }
    return 1;
}

/* ------------------------------------------------------------------ */
/* Decoding a complete frame field by field.                           */

typedef struct cur {
    const uint8_t *p;
    size_t n, off;
    uint64_t base;  /* stream offset of p[0] */
    const char *kind;
} cur;

static unsigned long long at(const cur *c) { return (unsigned long long)(c->base + c->off); }

static uint64_t be(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; i++) v = v << 8 | p[i];
    return v;
}

/* The frame was scanned, so headers are in bounds; these still check. */
static int need(cur *c, size_t k, const char *field, bn_err *e) {
    if (c->n - c->off < k) return bn_errf(e, "frame at byte %llu: %s: %s: truncated", (unsigned long long)c->base, c->kind, field);
    return 0;
}

static int type_err(cur *c, const char *field, const char *want, bn_err *e) {
    return bn_errf(e, "frame at byte %llu: %s: field %s at byte %llu: expected %s (msgpack type 0x%02x)",
                   (unsigned long long)c->base, c->kind, field, at(c), want, c->p[c->off]);
}

/* Read any msgpack integer as signed 64 (uint64 above INT64_MAX is an error). */
static int rd_int(cur *c, const char *field, int64_t *v, bn_err *e) {
    if (need(c, 1, field, e) < 0) return -1;
    uint8_t b = c->p[c->off];
    int n = 0;
    bool sign = false;
    if (b <= 0x7f) { *v = b; c->off++; return 0; }
    if (b >= 0xe0) { *v = (int8_t)b; c->off++; return 0; }
    switch (b) {
    case 0xcc: n = 1; break; case 0xcd: n = 2; break; case 0xce: n = 4; break; case 0xcf: n = 8; break;
    case 0xd0: n = 1; sign = true; break; case 0xd1: n = 2; sign = true; break;
    case 0xd2: n = 4; sign = true; break; case 0xd3: n = 8; sign = true; break;
    default: return type_err(c, field, "an integer", e);
    }
    if (need(c, 1 + (size_t)n, field, e) < 0) return -1;
    uint64_t u = be(c->p + c->off + 1, n);
    if (sign) {
        int64_t s;
        if (n == 1) s = (int8_t)u; else if (n == 2) s = (int16_t)u; else if (n == 4) s = (int32_t)u; else s = (int64_t)u;
        *v = s;
    } else {
        if (u > (uint64_t)INT64_MAX) return bn_errf(e, "frame at byte %llu: %s: field %s at byte %llu: integer out of range",
                                                  (unsigned long long)c->base, c->kind, field, at(c));
        *v = (int64_t)u;
    }
    c->off += 1 + (size_t)n;
    return 0;
}

/* Unsigned up to max; negative or larger values are errors naming the field. */
static int rd_uint(cur *c, const char *field, uint64_t max, uint64_t *v, bn_err *e) {
    uint8_t b = c->off < c->n ? c->p[c->off] : 0;
    size_t start = c->off;
    if (b == 0xcf) { /* full uint64 range */
        if (need(c, 9, field, e) < 0) return -1;
        uint64_t u = be(c->p + c->off + 1, 8);
        if (u > max) goto range;
        *v = u;
        c->off += 9;
        return 0;
    }
    int64_t s;
    if (rd_int(c, field, &s, e) < 0) return -1;
    if (s < 0 || (uint64_t)s > max) { c->off = start; goto range; }
    *v = (uint64_t)s;
    return 0;
range:
    return bn_errf(e, "frame at byte %llu: %s: field %s at byte %llu: value out of range (0..%llu)",
                   (unsigned long long)c->base, c->kind, field, at(c), (unsigned long long)max);
}

static int rd_i32(cur *c, const char *field, int32_t *v, bn_err *e) {
    size_t start = c->off;
    int64_t s;
    if (rd_int(c, field, &s, e) < 0) return -1;
    if (s < INT32_MIN || s > INT32_MAX) {
        c->off = start;
        return bn_errf(e, "frame at byte %llu: %s: field %s at byte %llu: value out of int32 range",
                       (unsigned long long)c->base, c->kind, field, at(c));
    }
    *v = (int32_t)s;
    return 0;
}

static int rd_u32(cur *c, const char *field, uint32_t *v, bn_err *e) {
    uint64_t u;
    if (rd_uint(c, field, UINT32_MAX, &u, e) < 0) return -1;
    *v = (uint32_t)u;
    return 0;
}

/* msgpack true/false. */
static int rd_bool(cur *c, const char *field, bool *v, bn_err *e) {
    if (need(c, 1, field, e) < 0) return -1;
    uint8_t b = c->p[c->off];
    if (b != 0xc2 && b != 0xc3) return type_err(c, field, "a boolean", e);
    *v = b == 0xc3;
    c->off++;
    return 0;
}

/* str (or bin when allow_bin): pointer into the frame and length. */
static int rd_strbin(cur *c, const char *field, bool want_str, bool want_bin, const uint8_t **s, size_t *len, bn_err *e) {
    if (need(c, 1, field, e) < 0) return -1;
    uint8_t b = c->p[c->off];
    size_t hn;
    uint64_t n;
    bool is_str = (b & 0xe0) == 0xa0 || b == 0xd9 || b == 0xda || b == 0xdb;
    bool is_bin = b == 0xc4 || b == 0xc5 || b == 0xc6;
    if ((is_str && !want_str) || (is_bin && !want_bin) || (!is_str && !is_bin))
        return type_err(c, field, want_str ? (want_bin ? "a string or bin" : "a string") : "bin", e);
    if ((b & 0xe0) == 0xa0) { hn = 1; n = b & 0x1f; }
    else {
        int lb = (b == 0xd9 || b == 0xc4) ? 1 : (b == 0xda || b == 0xc5) ? 2 : 4;
        if (need(c, 1 + (size_t)lb, field, e) < 0) return -1;
        hn = 1 + (size_t)lb;
        n = be(c->p + c->off + 1, lb);
    }
    if (c->n - c->off - hn < n) return bn_errf(e, "frame at byte %llu: %s: %s: truncated", (unsigned long long)c->base, c->kind, field);
    *s = c->p + c->off + hn;
    *len = (size_t)n;
    c->off += hn + (size_t)n;
    return 0;
}

/* Fixed-size string field into a char array; too long is an error, so two
 * stages never silently disagree on a truncated name. */
static int rd_fixstr(cur *c, const char *field, char *dst, size_t cap, bn_err *e) {
    size_t start = c->off;
    const uint8_t *s;
    size_t n;
    if (rd_strbin(c, field, true, false, &s, &n, e) < 0) return -1;
    if (n >= cap || memchr(s, 0, n)) {
        c->off = start;
        return bn_errf(e, "frame at byte %llu: %s: field %s at byte %llu: string too long (max %zu bytes) or contains NUL",
                       (unsigned long long)c->base, c->kind, field, at(c), cap - 1);
    }
    memcpy(dst, s, n);
    dst[n] = 0;
    return 0;
}

/* Array header: element count, capped by max. */
static int rd_array(cur *c, const char *field, uint32_t max, uint32_t *count, bn_err *e) {
    if (need(c, 1, field, e) < 0) return -1;
    uint8_t b = c->p[c->off];
    uint64_t n;
    size_t hn;
    if ((b & 0xf0) == 0x90) { n = b & 0x0f; hn = 1; }
    else if (b == 0xdc || b == 0xdd) {
        int lb = b == 0xdc ? 2 : 4;
        if (need(c, 1 + (size_t)lb, field, e) < 0) return -1;
        n = be(c->p + c->off + 1, lb);
        hn = 1 + (size_t)lb;
    } else return type_err(c, field, "an array", e);
    if (n > max)
        return bn_errf(e, "frame at byte %llu: %s: field %s at byte %llu: %llu elements, max %u",
                       (unsigned long long)c->base, c->kind, field, at(c), (unsigned long long)n, max);
    if (n > c->n - c->off - hn) return bn_errf(e, "frame at byte %llu: %s: %s: truncated", (unsigned long long)c->base, c->kind, field);
    c->off += hn;
    *count = (uint32_t)n;
    return 0;
}

/* Array of int32 ids into a malloc'd buffer. */
static int rd_ids(cur *c, const char *field, uint32_t max, int32_t **ids, uint32_t *n, bn_err *e) {
    uint32_t cnt;
    if (rd_array(c, field, max, &cnt, e) < 0) return -1;
    int32_t *v = bn_malloc((size_t)cnt * sizeof *v, e);
    if (!v) return -1;
    for (uint32_t i = 0; i < cnt; i++)
        if (rd_i32(c, field, &v[i], e) < 0) { free(v); return -1; }
    free(*ids);
    *ids = v;
    *n = cnt;
    return 0;
}

/* Skip one value of an unknown field (structure was validated by the scanner). */
static int skip_value(cur *c, const char *field, bn_err *e) {
    scan s;
    scan_reset(&s);
    s.off = c->off;
    if (scan_run(&s, c->p, c->n, c->base, false, e) != 1)
        return bn_errf(e, "frame at byte %llu: %s: field %s: malformed value", (unsigned long long)c->base, c->kind, field);
    c->off = (size_t)s.off;
    return 0;
}

enum {
    F_SEQ = 1u << 0, F_POS = 1u << 1, F_IDS = 1u << 2, F_ID = 1u << 3, F_NROWS = 1u << 4, F_NVOCAB = 1u << 5,
    F_DATA = 1u << 6, F_TEXT = 1u << 7, F_STAGE = 1u << 8, F_EVENT = 1u << 9, F_NS = 1u << 10, F_COUNT = 1u << 11,
    F_TSTART = 1u << 12, F_PROTO = 1u << 13, F_VFP = 1u << 14, F_MFP = 1u << 15, F_BOS = 1u << 16,
    F_EOS = 1u << 17, F_EOG = 1u << 18, F_NCTX = 1u << 19, F_FEEDBACK = 1u << 20, F_KERNELS = 1u << 21,
    F_LOGPROBS = 1u << 22, F_MESSAGE = 1u << 23, F_MORE = 1u << 24,
};

typedef struct field_def {
    const char *name;
    uint32_t bit;
} field_def;

static const field_def fields[] = {
    {"seq", F_SEQ}, {"pos", F_POS}, {"ids", F_IDS}, {"id", F_ID}, {"n_rows", F_NROWS}, {"n_vocab", F_NVOCAB},
    {"data", F_DATA}, {"text", F_TEXT}, {"stage", F_STAGE}, {"event", F_EVENT}, {"ns", F_NS},
    {"count", F_COUNT}, {"t_start_ns", F_TSTART}, {"proto", F_PROTO}, {"vocab_fp", F_VFP},
    {"model_fp", F_MFP}, {"bos", F_BOS}, {"eos", F_EOS}, {"eog", F_EOG}, {"n_ctx", F_NCTX},
    {"feedback", F_FEEDBACK}, {"kernels", F_KERNELS}, {"logprobs", F_LOGPROBS}, {"message", F_MESSAGE},
    {"more", F_MORE},
};

/* Fields each kind understands; others are skipped (forward compatibility). */
static uint32_t kind_fields(bn_frame_kind k) {
    switch (k) {
    case BN_FRAME_HELLO:
        return F_SEQ | F_PROTO | F_STAGE | F_VFP | F_MFP | F_NVOCAB | F_BOS | F_EOS | F_EOG | F_NCTX | F_FEEDBACK | F_KERNELS;
    case BN_FRAME_TOKENS: return F_SEQ | F_POS | F_IDS;
    case BN_FRAME_TOKEN: return F_SEQ | F_POS | F_ID;
    case BN_FRAME_LOGITS: return F_SEQ | F_POS | F_NROWS | F_NVOCAB | F_DATA;
    case BN_FRAME_TEXT: return F_SEQ | F_TEXT;
    case BN_FRAME_TIMING: return F_SEQ | F_STAGE | F_EVENT | F_NS | F_COUNT | F_TSTART;
    case BN_FRAME_SCORES: return F_SEQ | F_POS | F_IDS | F_LOGPROBS;
    case BN_FRAME_ERROR: return F_SEQ | F_STAGE | F_MESSAGE;
    case BN_FRAME_END: return F_SEQ | F_MORE;
    default: return 0;
    }
}

/* Fields that must be present. */
static uint32_t kind_required(bn_frame_kind k) {
    switch (k) {
    case BN_FRAME_HELLO: return F_PROTO | F_STAGE;
    case BN_FRAME_TOKENS: return F_IDS;
    case BN_FRAME_TOKEN: return F_ID;
    case BN_FRAME_LOGITS: return F_NROWS | F_NVOCAB | F_DATA;
    case BN_FRAME_TEXT: return F_TEXT;
    case BN_FRAME_TIMING: return F_STAGE | F_EVENT | F_NS;
    case BN_FRAME_SCORES: return F_IDS | F_LOGPROBS;
    case BN_FRAME_ERROR: return F_MESSAGE;
    default: return 0;
    }
}

/* Find "kind" first (it may be anywhere in the map). */
static int find_kind(cur *c0, uint32_t nkeys, bn_frame_kind *kind, bool *found, bn_err *e) {
    cur c = *c0;
    *found = false;
    for (uint32_t i = 0; i < nkeys; i++) {
        const uint8_t *k;
        size_t kl;
        if (rd_strbin(&c, "(key)", true, false, &k, &kl, e) < 0) return -1;
        if (kl == 4 && memcmp(k, "kind", 4) == 0) {
            const uint8_t *v;
            size_t vl;
            if (rd_strbin(&c, "kind", true, false, &v, &vl, e) < 0) return -1;
            if (*found) return bn_errf(e, "frame at byte %llu: duplicate field kind", (unsigned long long)c.base);
            *found = true;
            *kind = kind_from_str(v, vl);
        } else if (skip_value(&c, "(value)", e) < 0) return -1;
    }
    return 0;
}

/* Decode one complete frame: buf must hold exactly one msgpack map. */
int bn_frame_decode(const uint8_t *buf, size_t len, uint64_t base_offset, bn_frame *f, bn_err *e) {
    bn_frame_init(f, BN_FRAME_UNKNOWN);
    if (len == 0) return bn_errf(e, "frame at byte %llu: empty frame", (unsigned long long)base_offset);
    if (len > BN_FRAME_MAX_BYTES)
        return bn_errf(e, "frame at byte %llu: %zu bytes exceeds the %u byte limit", (unsigned long long)base_offset, len, BN_FRAME_MAX_BYTES);
    scan s;
    scan_reset(&s);
    int r = scan_run(&s, buf, len, base_offset, true, e);
    if (r < 0) return -1;
    if (r == 0) return bn_errf(e, "truncated frame at byte %llu", (unsigned long long)(base_offset + len));
    if (s.off != len)
        return bn_errf(e, "frame at byte %llu: %zu trailing bytes after the frame", (unsigned long long)base_offset, len - (size_t)s.off);

    cur c = { .p = buf, .n = len, .off = 0, .base = base_offset, .kind = "frame" };
    uint8_t b = buf[0];
    uint32_t nkeys;
    if ((b & 0xf0) == 0x80) { nkeys = b & 0x0f; c.off = 1; }
    else if (b == 0xde) { nkeys = (uint32_t)be(buf + 1, 2); c.off = 3; }
    else { nkeys = (uint32_t)be(buf + 1, 4); c.off = 5; }

    bn_frame_kind kind = BN_FRAME_UNKNOWN;
    bool found;
    if (find_kind(&c, nkeys, &kind, &found, e) < 0) return -1;
    if (!found) return bn_errf(e, "frame at byte %llu: missing field kind", (unsigned long long)base_offset);
    if (kind == BN_FRAME_UNKNOWN) {
        f->raw = bn_malloc(len, e);
        if (!f->raw) return -1;
        memcpy(f->raw, buf, len);
        f->raw_len = len;
        f->owns = true;
        return 0;
    }
    f->kind = kind;
    f->owns = true;
    if (kind != BN_FRAME_HELLO) f->hello.proto = 0;
    c.kind = bn_frame_kind_name(kind);
    uint32_t known = kind_fields(kind), seen = 0;
    const uint8_t *data = NULL;
    size_t data_len = 0;
    for (uint32_t i = 0; i < nkeys; i++) {
        const uint8_t *k;
        size_t kl;
        if (rd_strbin(&c, "(key)", true, false, &k, &kl, e) < 0) goto fail;
        if (kl == 4 && memcmp(k, "kind", 4) == 0) { if (skip_value(&c, "kind", e) < 0) goto fail; continue; }
        uint32_t bit = 0;
        const char *name = "(unknown)";
        for (size_t j = 0; j < sizeof fields / sizeof fields[0]; j++)
            if (strlen(fields[j].name) == kl && memcmp(fields[j].name, k, kl) == 0) { bit = fields[j].bit; name = fields[j].name; break; }
        if (!(bit & known)) { if (skip_value(&c, name, e) < 0) goto fail; continue; }
        if (seen & bit) {
            bn_errf(e, "frame at byte %llu: %s: duplicate field %s at byte %llu", (unsigned long long)base_offset, c.kind, name, at(&c));
            goto fail;
        }
        seen |= bit;
        int rc = 0;
        uint64_t u;
        const uint8_t *sv;
        size_t sl;
        switch (bit) {
        case F_SEQ: rc = rd_u32(&c, name, &f->seq, e); break;
        case F_POS: rc = rd_u32(&c, name, &f->pos, e); break;
        case F_IDS: rc = rd_ids(&c, name, BN_FRAME_MAX_ARRAY, &f->tokens, &f->n_tokens, e); break;
        case F_ID:
            f->tokens = bn_malloc(sizeof(int32_t), e);
            if (!f->tokens) goto fail;
            f->n_tokens = 1;
            rc = rd_i32(&c, name, &f->tokens[0], e);
            break;
        case F_NROWS: rc = rd_u32(&c, name, &f->n_rows, e); break;
        case F_NVOCAB:
            rc = rd_u32(&c, name, kind == BN_FRAME_HELLO ? &f->hello.n_vocab : &f->n_vocab, e);
            break;
        case F_DATA: case F_LOGPROBS: rc = rd_strbin(&c, name, false, true, &data, &data_len, e); break;
        case F_TEXT: case F_MESSAGE:
            rc = rd_strbin(&c, name, true, true, &sv, &sl, e);
            if (rc == 0) {
                f->text = bn_malloc(sl + 1, e);
                if (!f->text) goto fail;
                memcpy(f->text, sv, sl);
                f->text[sl] = 0;
                f->text_len = sl;
            }
            break;
        case F_STAGE:
            rc = rd_fixstr(&c, name, kind == BN_FRAME_HELLO ? f->hello.stage : f->stage, sizeof f->stage, e);
            break;
        case F_EVENT: rc = rd_fixstr(&c, name, f->event, sizeof f->event, e); break;
        case F_NS: rc = rd_uint(&c, name, UINT64_MAX, &f->ns, e); break;
        case F_COUNT: rc = rd_uint(&c, name, UINT64_MAX, &f->count, e); break;
        case F_TSTART: rc = rd_uint(&c, name, UINT64_MAX, &f->t_start_ns, e); break;
        case F_PROTO: rc = rd_uint(&c, name, UINT32_MAX, &u, e); f->hello.proto = (uint32_t)u; break;
        case F_VFP: rc = rd_fixstr(&c, name, f->hello.vocab_fp, sizeof f->hello.vocab_fp, e); break;
        case F_MFP: rc = rd_fixstr(&c, name, f->hello.model_fp, sizeof f->hello.model_fp, e); break;
        case F_BOS: rc = rd_i32(&c, name, &f->hello.bos, e); break;
        case F_EOS: rc = rd_i32(&c, name, &f->hello.eos, e); break;
        case F_EOG: {
            uint32_t cnt;
            rc = rd_array(&c, name, BN_MAX_EOG, &cnt, e);
            for (uint32_t j = 0; rc == 0 && j < cnt; j++) rc = rd_i32(&c, name, &f->hello.eog[j], e);
            if (rc == 0) f->hello.n_eog = cnt;
            break;
        }
        case F_NCTX: rc = rd_u32(&c, name, &f->hello.n_ctx, e); break;
        case F_MORE: rc = rd_bool(&c, name, &f->more, e); break;
        case F_FEEDBACK: rc = rd_fixstr(&c, name, f->hello.feedback, sizeof f->hello.feedback, e); break;
        case F_KERNELS: rc = rd_fixstr(&c, name, f->hello.kernels, sizeof f->hello.kernels, e); break;
        default: rc = skip_value(&c, name, e); break;
        }
        if (rc < 0) goto fail;
    }
    uint32_t missing = kind_required(kind) & ~seen;
    if (missing) {
        for (size_t j = 0; j < sizeof fields / sizeof fields[0]; j++)
            if (missing & fields[j].bit) {
                bn_errf(e, "frame at byte %llu: %s: missing field %s", (unsigned long long)base_offset, c.kind, fields[j].name);
                goto fail;
            }
    }
    if (kind == BN_FRAME_LOGITS) {
        uint64_t cells;
        if (!bn_mul_u64(f->n_rows, f->n_vocab, &cells) || cells > data_len / 4 || cells * 4 != data_len) {
            bn_errf(e, "frame at byte %llu: logits: data is %zu bytes, expected n_rows %u x n_vocab %u x 4",
                    (unsigned long long)base_offset, data_len, f->n_rows, f->n_vocab);
            goto fail;
        }
        f->logits = bn_malloc(data_len, e);
        if (!f->logits) goto fail;
        f32_from_le(f->logits, data, (size_t)cells);
    } else if (kind == BN_FRAME_SCORES) {
        if ((uint64_t)f->n_tokens * 4 != data_len) {
            bn_errf(e, "frame at byte %llu: scores: logprobs is %zu bytes, expected %u ids x 4",
                    (unsigned long long)base_offset, data_len, f->n_tokens);
            goto fail;
        }
        f->n_rows = f->n_tokens;
        f->logits = bn_malloc(data_len, e);
        if (!f->logits) goto fail;
        f32_from_le(f->logits, data, f->n_rows);
    }
    return 0;
fail:
    bn_frame_free(f);
    f->kind = BN_FRAME_UNKNOWN;
    return -1;
}

/* ------------------------------------------------------------------ */
/* Streaming reader                                                    */

struct bn_frame_reader {
    uint8_t *buf;
    size_t cap;
    size_t start;      /* first byte of the current (incomplete) frame */
    size_t used;       /* bytes in buf */
    uint64_t consumed; /* stream offset of buf[0] */
    scan s;            /* progress inside the frame at start */
    bool failed;
    bn_err err;        /* sticky error once the stream is broken */
};

int bn_frame_reader_new(bn_frame_reader **out, bn_err *e) {
    bn_frame_reader *r = bn_calloc(1, sizeof *r, e);
    if (!r) return -1;
    scan_reset(&r->s);
    *out = r;
    return 0;
}

void bn_frame_reader_free(bn_frame_reader *r) {
    if (!r) return;
    free(r->buf);
    free(r);
}

/* Make room for at least want bytes after used: first drop consumed bytes,
 * then grow. The scanner caps a frame at BN_FRAME_MAX_BYTES, so the buffer
 * never exceeds that plus one read. */
static int reader_room(bn_frame_reader *r, size_t want, bn_err *e) {
    if (r->start > 0 && (r->start == r->used || r->cap - r->used < want)) {
        memmove(r->buf, r->buf + r->start, r->used - r->start);
        r->used -= r->start;
        r->consumed += r->start;
        r->start = 0;
    }
    if (r->cap - r->used >= want) return 0;
    size_t need;
    if (!bn_add_size(r->used, want, &need) || need > 2u * BN_FRAME_MAX_BYTES + (1u << 20))
        return bn_errf(e, "frame reader: more than %u bytes buffered; call next() between feeds", 2u * BN_FRAME_MAX_BYTES);
    size_t ncap = r->cap ? r->cap : 65536;
    while (ncap < need) ncap *= 2;
    uint8_t *nb = realloc(r->buf, ncap);
    if (!nb) return bn_errf(e, "frame reader: out of memory growing buffer to %zu bytes", ncap);
    r->buf = nb;
    r->cap = ncap;
    return 0;
}

/* Zero-copy feeding: a transport reads straight into the reader's buffer. */
int bn_frame_reader_reserve(bn_frame_reader *r, size_t want, uint8_t **buf, size_t *avail, bn_err *e) {
    if (reader_room(r, want, e) < 0) return -1;
    *buf = r->buf + r->used;
    *avail = r->cap - r->used;
    return 0;
}

void bn_frame_reader_commit(bn_frame_reader *r, size_t n) {
    if (n > r->cap - r->used) n = r->cap - r->used;
    r->used += n;
}

int bn_frame_reader_feed(bn_frame_reader *r, const void *data, size_t n, bn_err *e) {
    if (n == 0) return 0;
    if (reader_room(r, n, e) < 0) return -1;
    memcpy(r->buf + r->used, data, n);
    r->used += n;
    return 0;
}

/* Scan the buffered bytes; decode a frame once its last byte is in. */
int bn_frame_reader_next(bn_frame_reader *r, bn_frame *f, bn_err *e) {
    if (r->failed) {
        if (e) *e = r->err;
        return -1;
    }
    if (r->used == r->start) return 0;
    uint64_t base = r->consumed + r->start;
    int rc = scan_run(&r->s, r->buf + r->start, r->used - r->start, base, true, &r->err);
    if (rc == 0) return 0;
    if (rc == 1) {
        /* well-formed msgpack: step over it even if its fields are wrong, so
         * a caller may report the bad frame and go on */
        size_t n = (size_t)r->s.off;
        r->start += n;
        scan_reset(&r->s);
        if (bn_frame_decode(r->buf + r->start - n, n, base, f, e) == 0) return 1;
        return -1;
    }
    r->failed = true; /* not msgpack: the stream cannot be resynchronised */
    if (e) *e = r->err;
    return -1;
}

size_t bn_frame_reader_pending(const bn_frame_reader *r) { return r->used - r->start; }

uint64_t bn_frame_reader_offset(const bn_frame_reader *r) { return r->consumed + r->start; }

/* ------------------------------------------------------------------ */
/* JSON view (debugging and hand-written test streams)                 */

#include <math.h>
#include <stdio.h>

static void j_str(FILE *o, const char *s, size_t n) {
    fputc('"', o);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') { fputc('\\', o); fputc(ch, o); }
        else if (ch == '\n') fputs("\\n", o);
        else if (ch == '\t') fputs("\\t", o);
        else if (ch == '\r') fputs("\\r", o);
        else if (ch < 0x20 || ch == 0x7f) fprintf(o, "\\u%04x", ch);
        else fputc(ch, o);
    }
    fputc('"', o);
}

static void j_key(FILE *o, const char *k) { fprintf(o, ",\"%s\":", k); }

/* Non-finite values use the spelling Python's json module reads. */
static void j_float(FILE *o, float v) {
    if (isnan(v)) fputs("NaN", o);
    else if (isinf(v)) fputs(v > 0 ? "Infinity" : "-Infinity", o);
    else fprintf(o, "%.9g", (double)v);
}

static void j_ids(FILE *o, const char *k, const int32_t *ids, uint32_t n) {
    j_key(o, k);
    fputc('[', o);
    for (uint32_t i = 0; i < n; i++) fprintf(o, "%s%d", i ? "," : "", ids[i]);
    fputc(']', o);
}

static void j_floats(FILE *o, const char *k, const float *v, size_t n) {
    j_key(o, k);
    fputc('[', o);
    for (size_t i = 0; i < n; i++) { if (i) fputc(',', o); j_float(o, v[i]); }
    fputc(']', o);
}

/* Summary of a logits block: argmax per first row, min/max, so a line stays short. */
static void j_logit_summary(FILE *o, const bn_frame *f) {
    size_t n = (size_t)f->n_rows * f->n_vocab;
    if (!n || !f->logits) return;
    uint32_t am = 0;
    float mn = f->logits[0], mx = f->logits[0];
    for (uint32_t i = 0; i < f->n_vocab; i++) if (f->logits[i] > f->logits[am]) am = i;
    for (size_t i = 0; i < n; i++) { if (f->logits[i] < mn) mn = f->logits[i]; if (f->logits[i] > mx) mx = f->logits[i]; }
    fprintf(o, ",\"argmax0\":%u,\"min\":", am);
    j_float(o, mn);
    fputs(",\"max\":", o);
    j_float(o, mx);
}

int bn_frame_to_json(const bn_frame *f, bool full, char **out, bn_err *e) {
    char *buf = NULL;
    size_t sz = 0;
    FILE *o = open_memstream(&buf, &sz);
    if (!o) return bn_errf(e, "frame: json: out of memory");
    fputs("{\"kind\":", o);
    j_str(o, bn_frame_kind_name(f->kind), strlen(bn_frame_kind_name(f->kind)));
    if (f->kind != BN_FRAME_UNKNOWN) fprintf(o, ",\"seq\":%u", f->seq);
    const bn_hello *h = &f->hello;
    switch (f->kind) {
    case BN_FRAME_UNKNOWN:
        j_key(o, "raw_hex");
        fputc('"', o);
        for (size_t i = 0; i < f->raw_len; i++) fprintf(o, "%02x", f->raw[i]);
        fputc('"', o);
        break;
    case BN_FRAME_HELLO:
        fprintf(o, ",\"proto\":%u", h->proto);
        j_key(o, "stage"); j_str(o, h->stage, strlen(h->stage));
        j_key(o, "vocab_fp"); j_str(o, h->vocab_fp, strlen(h->vocab_fp));
        j_key(o, "model_fp"); j_str(o, h->model_fp, strlen(h->model_fp));
        fprintf(o, ",\"n_vocab\":%u,\"bos\":%d,\"eos\":%d", h->n_vocab, h->bos, h->eos);
        j_ids(o, "eog", h->eog, h->n_eog > BN_MAX_EOG ? BN_MAX_EOG : h->n_eog);
        fprintf(o, ",\"n_ctx\":%u", h->n_ctx);
        j_key(o, "feedback"); j_str(o, h->feedback, strlen(h->feedback));
        j_key(o, "kernels"); j_str(o, h->kernels, strlen(h->kernels));
        break;
    case BN_FRAME_TOKENS:
        fprintf(o, ",\"pos\":%u", f->pos);
        j_ids(o, "ids", f->tokens, f->tokens ? f->n_tokens : 0);
        break;
    case BN_FRAME_TOKEN:
        fprintf(o, ",\"pos\":%u,\"id\":%d", f->pos, f->tokens && f->n_tokens ? f->tokens[0] : -1);
        break;
    case BN_FRAME_LOGITS:
        fprintf(o, ",\"pos\":%u,\"n_rows\":%u,\"n_vocab\":%u", f->pos, f->n_rows, f->n_vocab);
        if (full && f->logits) j_floats(o, "data", f->logits, (size_t)f->n_rows * f->n_vocab);
        else j_logit_summary(o, f);
        break;
    case BN_FRAME_TEXT:
        j_key(o, "text"); j_str(o, f->text ? f->text : "", f->text ? f->text_len : 0);
        break;
    case BN_FRAME_TIMING:
        j_key(o, "stage"); j_str(o, f->stage, strlen(f->stage));
        j_key(o, "event"); j_str(o, f->event, strlen(f->event));
        fprintf(o, ",\"ns\":%llu,\"count\":%llu,\"t_start_ns\":%llu", (unsigned long long)f->ns,
                (unsigned long long)f->count, (unsigned long long)f->t_start_ns);
        break;
    case BN_FRAME_SCORES:
        fprintf(o, ",\"pos\":%u", f->pos);
        j_ids(o, "ids", f->tokens, f->tokens ? f->n_tokens : 0);
        j_floats(o, "logprobs", f->logits, f->logits ? f->n_rows : 0);
        break;
    case BN_FRAME_ERROR:
        j_key(o, "stage"); j_str(o, f->stage, strlen(f->stage));
        j_key(o, "message"); j_str(o, f->text ? f->text : "", f->text ? f->text_len : 0);
        break;
    case BN_FRAME_END:
        if (f->more) fputs(",\"more\":true", o);
        break;
    default:
        break;
    }
    fputc('}', o);
    if (fclose(o) != 0 || !buf) { free(buf); return bn_errf(e, "frame: json: out of memory"); }
    *out = buf;
    return 0;
}

/* Minimal JSON reader for one flat object: string, number, bool/null and
 * arrays of numbers as values. Enough for hand-written frame streams. */
typedef struct jp {
    const char *s;
    size_t n, i;
    bn_err *e;
    size_t data_n; /* floats given in "data" */
} jp;

static void jp_ws(jp *p) { while (p->i < p->n && (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' || p->s[p->i] == '\r')) p->i++; }
static int jp_fail(jp *p, const char *what) { return bn_errf(p->e, "json: column %zu: %s", p->i + 1, what); }

static void utf8_put(char *d, size_t *k, uint32_t cp) {
    if (cp < 0x80) d[(*k)++] = (char)cp;
    else if (cp < 0x800) { d[(*k)++] = (char)(0xc0 | cp >> 6); d[(*k)++] = (char)(0x80 | (cp & 0x3f)); }
    else if (cp < 0x10000) { d[(*k)++] = (char)(0xe0 | cp >> 12); d[(*k)++] = (char)(0x80 | ((cp >> 6) & 0x3f)); d[(*k)++] = (char)(0x80 | (cp & 0x3f)); }
    else { d[(*k)++] = (char)(0xf0 | cp >> 18); d[(*k)++] = (char)(0x80 | ((cp >> 12) & 0x3f)); d[(*k)++] = (char)(0x80 | ((cp >> 6) & 0x3f)); d[(*k)++] = (char)(0x80 | (cp & 0x3f)); }
}

static int jp_hex4(jp *p, uint32_t *v) {
    if (p->n - p->i < 4) return jp_fail(p, "short \\u escape");
    *v = 0;
    for (int k = 0; k < 4; k++) {
        char c = p->s[p->i++];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return jp_fail(p, "bad \\u escape");
        *v = *v << 4 | (uint32_t)d;
    }
    return 0;
}

/* Parse a string into a malloc'd UTF-8 buffer. */
static int jp_string(jp *p, char **out, size_t *len) {
    if (p->i >= p->n || p->s[p->i] != '"') return jp_fail(p, "expected a string");
    p->i++;
    char *d = malloc(p->n - p->i + 1);
    if (!d) return bn_errf(p->e, "json: out of memory");
    size_t k = 0;
    while (p->i < p->n && p->s[p->i] != '"') {
        char c = p->s[p->i++];
        if (c != '\\') { d[k++] = c; continue; }
        if (p->i >= p->n) break;
        c = p->s[p->i++];
        switch (c) {
        case 'n': d[k++] = '\n'; break; case 't': d[k++] = '\t'; break; case 'r': d[k++] = '\r'; break;
        case 'b': d[k++] = '\b'; break; case 'f': d[k++] = '\f'; break;
        case '"': case '\\': case '/': d[k++] = c; break;
        case 'u': {
            uint32_t cp, lo;
            if (jp_hex4(p, &cp) < 0) { free(d); return -1; }
            if (cp >= 0xd800 && cp < 0xdc00 && p->n - p->i >= 6 && p->s[p->i] == '\\' && p->s[p->i + 1] == 'u') {
                p->i += 2;
                if (jp_hex4(p, &lo) < 0) { free(d); return -1; }
                if (lo >= 0xdc00 && lo < 0xe000) cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            }
            utf8_put(d, &k, cp);
            break;
        }
        default: free(d); return jp_fail(p, "bad escape");
        }
    }
    if (p->i >= p->n) { free(d); return jp_fail(p, "unterminated string"); }
    p->i++;
    d[k] = 0;
    *out = d;
    *len = k;
    return 0;
}

static int jp_number(jp *p, double *v) {
    static const char *const special[] = {"NaN", "Infinity", "-Infinity"};
    for (int k = 0; k < 3; k++) {
        size_t l = strlen(special[k]);
        if (p->n - p->i >= l && memcmp(p->s + p->i, special[k], l) == 0) {
            p->i += l;
            *v = k == 0 ? NAN : k == 1 ? INFINITY : -INFINITY;
            return 0;
        }
    }
    char tmp[64];
    size_t k = 0;
    while (p->i + k < p->n && k < sizeof tmp - 1 && strchr("+-0123456789.eE", p->s[p->i + k])) { tmp[k] = p->s[p->i + k]; k++; }
    tmp[k] = 0;
    char *end;
    *v = strtod(tmp, &end);
    if (k == 0 || *end) return jp_fail(p, "expected a number");
    p->i += k;
    return 0;
}

/* Array of numbers into a malloc'd double array. */
static int jp_array(jp *p, double **out, size_t *count) {
    p->i++; /* '[' */
    size_t cap = 16, n = 0;
    double *v = malloc(cap * sizeof *v);
    if (!v) return bn_errf(p->e, "json: out of memory");
    jp_ws(p);
    if (p->i < p->n && p->s[p->i] == ']') { p->i++; *out = v; *count = 0; return 0; }
    for (;;) {
        jp_ws(p);
        if (n == cap) {
            if (cap >= BN_FRAME_MAX_ARRAY) { free(v); return jp_fail(p, "array too long"); }
            double *nv = realloc(v, 2 * cap * sizeof *v);
            if (!nv) { free(v); return bn_errf(p->e, "json: out of memory"); }
            v = nv;
            cap *= 2;
        }
        if (jp_number(p, &v[n++]) < 0) { free(v); return -1; }
        jp_ws(p);
        if (p->i < p->n && p->s[p->i] == ',') { p->i++; continue; }
        if (p->i < p->n && p->s[p->i] == ']') { p->i++; break; }
        free(v);
        return jp_fail(p, "expected , or ] in array");
    }
    *out = v;
    *count = n;
    return 0;
}

/* Assign one JSON member to the frame (names as on the wire). */
static int jp_assign(jp *p, bn_frame *f, const char *key, const char *str, size_t slen, const double *arr, size_t an,
                     bool is_num, double num) {
#define NEED_NUM() do { if (!is_num) return jp_fail(p, "expected a number"); } while (0)
#define NEED_STR() do { if (!str) return jp_fail(p, "expected a string"); } while (0)
    bn_hello *h = &f->hello;
    bool hello = f->kind == BN_FRAME_HELLO;
    if (!strcmp(key, "seq")) { NEED_NUM(); f->seq = (uint32_t)num; }
    else if (!strcmp(key, "pos")) { NEED_NUM(); f->pos = (uint32_t)num; }
    else if (!strcmp(key, "proto")) { NEED_NUM(); h->proto = (uint32_t)num; }
    else if (!strcmp(key, "n_rows")) { NEED_NUM(); f->n_rows = (uint32_t)num; }
    else if (!strcmp(key, "n_vocab")) { NEED_NUM(); if (hello) h->n_vocab = (uint32_t)num; else f->n_vocab = (uint32_t)num; }
    else if (!strcmp(key, "n_ctx")) { NEED_NUM(); h->n_ctx = (uint32_t)num; }
    else if (!strcmp(key, "bos")) { NEED_NUM(); h->bos = (int32_t)num; }
    else if (!strcmp(key, "eos")) { NEED_NUM(); h->eos = (int32_t)num; }
    else if (!strcmp(key, "ns")) { NEED_NUM(); f->ns = (uint64_t)num; }
    else if (!strcmp(key, "count")) { NEED_NUM(); f->count = (uint64_t)num; }
    else if (!strcmp(key, "t_start_ns")) { NEED_NUM(); f->t_start_ns = (uint64_t)num; }
    else if (!strcmp(key, "id")) {
        NEED_NUM();
        free(f->tokens);
        f->tokens = malloc(sizeof(int32_t));
        if (!f->tokens) return bn_errf(p->e, "json: out of memory");
        f->tokens[0] = (int32_t)num;
        f->n_tokens = 1;
    } else if (!strcmp(key, "ids") || !strcmp(key, "eog")) {
        if (!arr) return jp_fail(p, "expected an array");
        if (!strcmp(key, "eog")) {
            if (an > BN_MAX_EOG) return jp_fail(p, "too many eog ids");
            for (size_t k = 0; k < an; k++) h->eog[k] = (int32_t)arr[k];
            h->n_eog = (uint32_t)an;
        } else {
            free(f->tokens);
            f->tokens = malloc((an ? an : 1) * sizeof(int32_t));
            if (!f->tokens) return bn_errf(p->e, "json: out of memory");
            for (size_t k = 0; k < an; k++) f->tokens[k] = (int32_t)arr[k];
            f->n_tokens = (uint32_t)an;
        }
    } else if (!strcmp(key, "data") || !strcmp(key, "logprobs")) {
        if (!arr) return jp_fail(p, "expected an array");
        free(f->logits);
        f->logits = malloc((an ? an : 1) * sizeof(float));
        if (!f->logits) return bn_errf(p->e, "json: out of memory");
        for (size_t k = 0; k < an; k++) f->logits[k] = (float)arr[k];
        if (!strcmp(key, "logprobs")) f->n_rows = (uint32_t)an;
        else p->data_n = an;
    } else if (!strcmp(key, "text") || !strcmp(key, "message")) {
        NEED_STR();
        free(f->text);
        f->text = malloc(slen + 1);
        if (!f->text) return bn_errf(p->e, "json: out of memory");
        memcpy(f->text, str, slen + 1);
        f->text_len = slen;
    } else if (!strcmp(key, "stage")) { NEED_STR(); copy_str(hello ? h->stage : f->stage, sizeof f->stage, str); }
    else if (!strcmp(key, "event")) { NEED_STR(); copy_str(f->event, sizeof f->event, str); }
    else if (!strcmp(key, "vocab_fp")) { NEED_STR(); copy_str(h->vocab_fp, sizeof h->vocab_fp, str); }
    else if (!strcmp(key, "model_fp")) { NEED_STR(); copy_str(h->model_fp, sizeof h->model_fp, str); }
    else if (!strcmp(key, "feedback")) { NEED_STR(); copy_str(h->feedback, sizeof h->feedback, str); }
    else if (!strcmp(key, "kernels")) { NEED_STR(); copy_str(h->kernels, sizeof h->kernels, str); }
    /* other members are ignored, like unknown fields on the wire */
    return 0;
#undef NEED_NUM
#undef NEED_STR
}

/* Find "kind" first so members can be assigned in any order. */
static int jp_find_kind(const char *json, size_t len, bn_frame_kind *kind, bn_err *e) {
    const char *k = memmem(json, len, "\"kind\"", 6);
    if (!k) return bn_errf(e, "json: missing \"kind\"");
    jp p = { json, len, (size_t)(k - json) + 6, e, 0 };
    jp_ws(&p);
    if (p.i >= p.n || p.s[p.i] != ':') return jp_fail(&p, "expected : after \"kind\"");
    p.i++;
    jp_ws(&p);
    char *s;
    size_t sl;
    if (jp_string(&p, &s, &sl) < 0) return -1;
    *kind = kind_from_str((const uint8_t *)s, sl);
    free(s);
    if (*kind == BN_FRAME_UNKNOWN) return bn_errf(e, "json: unknown kind");
    return 0;
}

int bn_frame_from_json(const char *json, size_t len, bn_frame *f, bn_err *e) {
    bn_frame_kind kind;
    bn_frame_init(f, BN_FRAME_UNKNOWN);
    if (jp_find_kind(json, len, &kind, e) < 0) return -1;
    bn_frame_init(f, kind);
    f->owns = true;
    jp p = { json, len, 0, e, 0 };
    jp_ws(&p);
    if (p.i >= p.n || p.s[p.i] != '{') return jp_fail(&p, "expected {");
    p.i++;
    jp_ws(&p);
    if (p.i < p.n && p.s[p.i] == '}') p.i++;
    else for (;;) {
        jp_ws(&p);
        char *key, *str = NULL;
        size_t kl, sl = 0, an = 0;
        double *arr = NULL, num = 0;
        bool is_num = false;
        if (jp_string(&p, &key, &kl) < 0) goto fail;
        jp_ws(&p);
        if (p.i >= p.n || p.s[p.i] != ':') { free(key); jp_fail(&p, "expected :"); goto fail; }
        p.i++;
        jp_ws(&p);
        int rc = 0;
        if (p.i >= p.n) rc = jp_fail(&p, "expected a value");
        else if (p.s[p.i] == '"') rc = jp_string(&p, &str, &sl);
        else if (p.s[p.i] == '[') rc = jp_array(&p, &arr, &an);
        else if (p.n - p.i >= 4 && !memcmp(p.s + p.i, "true", 4)) { p.i += 4; if (!strcmp(key, "more")) f->more = true; }
        else if (p.n - p.i >= 4 && !memcmp(p.s + p.i, "null", 4)) p.i += 4;
        else if (p.n - p.i >= 5 && !memcmp(p.s + p.i, "false", 5)) p.i += 5;
        else { rc = jp_number(&p, &num); is_num = true; }
        if (rc == 0) rc = jp_assign(&p, f, key, str, sl, arr, an, is_num, num);
        free(key); free(str); free(arr);
        if (rc < 0) goto fail;
        jp_ws(&p);
        if (p.i < p.n && p.s[p.i] == ',') { p.i++; continue; }
        if (p.i < p.n && p.s[p.i] == '}') { p.i++; break; }
        jp_fail(&p, "expected , or }");
        goto fail;
    }
    jp_ws(&p);
    if (p.i != p.n) { jp_fail(&p, "trailing characters after the object"); goto fail; }
    if (kind == BN_FRAME_LOGITS && (uint64_t)f->n_rows * f->n_vocab != p.data_n) {
        bn_errf(e, "json: logits: data has %zu values, expected n_rows %u x n_vocab %u", p.data_n, f->n_rows, f->n_vocab);
        goto fail;
    }
    return 0;
fail:
    bn_frame_free(f);
    return -1;
}
