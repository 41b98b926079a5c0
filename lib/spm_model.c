/* spm_model.c - a minimal protobuf reader for SentencePiece's ModelProto:
 *   ModelProto     { repeated SentencePiece pieces = 1; TrainerSpec trainer_spec = 2;
 *                    NormalizerSpec normalizer_spec = 3; ... }
 *   SentencePiece  { string piece = 1; float score = 2; Type type = 3 (default NORMAL); }
 *   TrainerSpec    { model_type = 3 (1 unigram, 2 bpe); unk_id = 40; bos_id = 41;
 *                    eos_id = 42; pad_id = 43; ... }
 *   NormalizerSpec { add_dummy_prefix = 3 (default true); ... }
 * Every length is checked against the buffer; unknown fields are skipped. */
#include "spm_model.h"

#include <stdlib.h>
#include <string.h>

#include "vocab.h"

typedef struct pb {
    const uint8_t *p, *end;
} pb;

/* Base-128 varint; false when truncated or longer than 10 bytes. */
static bool pb_varint(pb *b, uint64_t *out) {
    uint64_t v = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        if (b->p >= b->end) return false;
        uint8_t c = *b->p++;
        v |= (uint64_t)(c & 0x7F) << shift;
        if (!(c & 0x80)) { *out = v; return true; }
    }
    return false;
}

/* Skip one field of the given wire type. */
static bool pb_skip(pb *b, unsigned wt) {
    uint64_t x;
    switch (wt) {
    case 0: return pb_varint(b, &x);
    case 1: if (b->end - b->p < 8) return false; b->p += 8; return true;
    case 2:
        if (!pb_varint(b, &x) || x > (uint64_t)(b->end - b->p)) return false;
        b->p += x;
        return true;
    case 5: if (b->end - b->p < 4) return false; b->p += 4; return true;
    default: return false;
    }
}

/* A length-delimited sub-message or string. */
static bool pb_bytes(pb *b, pb *sub) {
    uint64_t n;
    if (!pb_varint(b, &n) || n > (uint64_t)(b->end - b->p)) return false;
    sub->p = b->p;
    sub->end = b->p + n;
    b->p += n;
    return true;
}

typedef struct piece {
    const uint8_t *text;
    size_t len;
    float score;
    int type;
} piece;

/* One SentencePiece message. */
static bool parse_piece(pb m, piece *out) {
    out->text = (const uint8_t *)"";
    out->len = 0;
    out->score = 0;
    out->type = 1;
    while (m.p < m.end) {
        uint64_t key;
        if (!pb_varint(&m, &key)) return false;
        unsigned f = (unsigned)(key >> 3), wt = key & 7;
        if (f == 1 && wt == 2) {
            pb s;
            if (!pb_bytes(&m, &s)) return false;
            out->text = s.p;
            out->len = (size_t)(s.end - s.p);
        } else if (f == 2 && wt == 5) {
            if (m.end - m.p < 4) return false;
            uint32_t u = (uint32_t)m.p[0] | (uint32_t)m.p[1] << 8 | (uint32_t)m.p[2] << 16 | (uint32_t)m.p[3] << 24;
            memcpy(&out->score, &u, 4);
            m.p += 4;
        } else if (f == 3 && wt == 0) {
            uint64_t t;
            if (!pb_varint(&m, &t)) return false;
            out->type = (int)t;
        } else if (!pb_skip(&m, wt)) {
            return false;
        }
    }
    return true;
}

/* Two passes: count pieces, then fill the vocabulary. */
int bn_spm_model_load(bn_vocab *v, const uint8_t *data, size_t len, const char *name, bn_err *e) {
    pb b = {data, data + len};
    uint32_t n = 0;
    int64_t model_type = 1, ids[4] = {0, 1, 2, -1}; /* unk bos eos pad: SentencePiece defaults */
    bool dummy_prefix = true, have_trainer = false;
    while (b.p < b.end) {
        uint64_t key;
        if (!pb_varint(&b, &key)) return bn_errf(e, "%s: protobuf: truncated at byte %zu", name, (size_t)(b.p - data));
        unsigned f = (unsigned)(key >> 3), wt = key & 7;
        if ((f == 1 || f == 2 || f == 3) && wt == 2) {
            pb sub;
            if (!pb_bytes(&b, &sub)) return bn_errf(e, "%s: protobuf: field %u overruns the file", name, f);
            if (f == 1) {
                if (++n > INT32_MAX / 2) return bn_errf(e, "%s: pieces: too many", name);
            } else {
                while (sub.p < sub.end) {
                    uint64_t k2, x;
                    if (!pb_varint(&sub, &k2)) return bn_errf(e, "%s: protobuf: bad spec field", name);
                    unsigned f2 = (unsigned)(k2 >> 3), w2 = k2 & 7;
                    if (w2 == 0) {
                        if (!pb_varint(&sub, &x)) return bn_errf(e, "%s: protobuf: bad varint", name);
                        if (f == 2 && f2 == 3) model_type = (int64_t)x;
                        if (f == 2 && f2 >= 40 && f2 <= 43) ids[f2 - 40] = (int32_t)(uint32_t)x;
                        if (f == 3 && f2 == 3) dummy_prefix = x != 0;
                    } else if (!pb_skip(&sub, w2)) {
                        return bn_errf(e, "%s: protobuf: bad spec field %u", name, f2);
                    }
                }
                if (f == 2) have_trainer = true;
            }
        } else if (!pb_skip(&b, wt)) {
            return bn_errf(e, "%s: protobuf: bad field %u (not a SentencePiece model?)", name, f);
        }
    }
    if (n == 0) return bn_errf(e, "%s: pieces: none (not a SentencePiece model or GGUF)", name);
    if (have_trainer && model_type != 2)
        return bn_errf(e, "%s: trainer_spec.model_type: %lld is not BPE (2); unsupported", name, (long long)model_type);
    if (bn_vocab_init(v, BN_VOCAB_SPM, n, e) < 0) return -1;
    b = (pb){data, data + len};
    uint32_t id = 0;
    while (b.p < b.end) {
        uint64_t key = 0;
        if (!pb_varint(&b, &key)) break;
        unsigned f = (unsigned)(key >> 3), wt = key & 7;
        if (f == 1 && wt == 2) {
            pb sub;
            piece pc;
            pb_bytes(&b, &sub);
            if (!parse_piece(sub, &pc)) {
                bn_errf(e, "%s: pieces[%u]: malformed", name, id);
                goto fail;
            }
            if (pc.type < 1 || pc.type > 6) {
                bn_errf(e, "%s: pieces[%u]: unknown type %d", name, id, pc.type);
                goto fail;
            }
            if (bn_vocab_set_token(v, id, (const char *)pc.text, pc.len, pc.score, pc.type, e) < 0) goto fail;
            id++;
        } else {
            pb_skip(&b, wt);
        }
    }
    v->unk = ids[0] >= 0 && ids[0] < n ? (int32_t)ids[0] : -1;
    v->bos = ids[1] >= 0 && ids[1] < n ? (int32_t)ids[1] : -1;
    v->eos = ids[2] >= 0 && ids[2] < n ? (int32_t)ids[2] : -1;
    v->pad = ids[3] >= 0 && ids[3] < n ? (int32_t)ids[3] : -1;
    v->add_bos = true;
    v->add_eos = false;
    v->add_space_prefix = dummy_prefix;
    if (bn_vocab_finish(v, e) < 0) goto fail;
    return 0;
fail:
    bn_vocab_free(v);
    return -1;
}

int bn_spm_model_load_file(bn_vocab *v, const char *path, bn_err *e) {
    uint8_t *data;
    size_t len;
    if (bn_read_file(path, &data, &len, (size_t)1 << 30, e) < 0) return -1;
    int r = bn_spm_model_load(v, data, len, path, e);
    free(data);
    return r;
}
