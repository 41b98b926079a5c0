/* spm.c - SentencePiece-style encoding of one escaped fragment (spaces
 * already U+2581), the algorithm of llama.cpp's llm_tokenizer_spm and of
 * SentencePiece's BPE model: start from UTF-8 characters, repeatedly merge
 * the adjacent pair whose concatenation is a token with the highest score
 * (leftmost on ties), then emit each symbol's token or its <0xNN> bytes.
 * A binary heap of candidate pairs with lazy invalidation makes it
 * O(n log n) in the fragment length. */
#include <stdlib.h>
#include <string.h>

#include "unicode.h"
#include "mergeq.h"
#include "vocab.h"

typedef struct sym {
    int32_t prev, next;
    uint32_t start, n; /* n == 0: merged away */
} sym;

/* Queue the pair (left, right) if their joined text is a token. */
static int try_bigram(const bn_vocab *v, const char *text, const sym *s, int32_t left, int32_t right,
                      bn_mergeq *h, bn_err *e) {
    if (left < 0 || right < 0) return 0;
    uint32_t n = s[left].n + s[right].n;
    int32_t id = bn_vocab_find(v, text + s[left].start, n);
    if (id < 0) return 0;
    return bn_mergeq_push(h, (bn_merge){-(double)v->scores[id], left, right, (int32_t)n, 0, 0}, e);
}

/* Token for each byte of an unknown symbol: <0xNN>, else <unk>. */
static int byte_fallback(const bn_vocab *v, const char *p, uint32_t n, bn_ids *out, bn_err *e) {
    for (uint32_t i = 0; i < n; i++) {
        int32_t id = v->byte_tok[(uint8_t)p[i]];
        if (id < 0) id = v->unk;
        if (id < 0)
            return bn_errf(e, "tokenize: byte 0x%02X has no token and the vocabulary has no <unk>", (uint8_t)p[i]);
        if (bn_ids_push(out, id, e) < 0) return -1;
    }
    return 0;
}

/* Merge loop over one segment text[0..len) with caller-provided scratch. */
static int encode_segment(const bn_vocab *v, const char *text, size_t len, sym *s, bn_mergeq *h, bn_ids *out,
                          bn_err *e) {
    int32_t ns = 0;
    h->n = 0;
    for (size_t off = 0; off < len;) {
        size_t l = bn_utf8_seq_len((uint8_t)text[off]);
        if (l > len - off) l = len - off;
        s[ns] = (sym){ns - 1, -1, (uint32_t)off, (uint32_t)l};
        if (ns > 0) s[ns - 1].next = ns;
        ns++;
        off += l;
    }
    int rc = 0;
    for (int32_t i = 1; i < ns && rc == 0; i++) rc = try_bigram(v, text, s, i - 1, i, h, e);
    while (rc == 0 && h->n > 0) {
        bn_merge b = bn_mergeq_pop(h);
        sym *l = &s[b.left], *r = &s[b.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != (uint32_t)b.a || l->next != b.right) continue;
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) s[r->next].prev = b.left;
        rc = try_bigram(v, text, s, l->prev, b.left, h, e);
        if (rc == 0) rc = try_bigram(v, text, s, b.left, l->next, h, e);
    }
    for (int32_t i = 0; rc == 0 && i >= 0 && ns > 0; i = s[i].next) {
        int32_t id = bn_vocab_find(v, text + s[i].start, s[i].n);
        rc = id >= 0 ? bn_ids_push(out, id, e) : byte_fallback(v, text + s[i].start, s[i].n, out, e);
    }
    return rc;
}

/* When no token has a U+2581 right after a character other than U+2581
 * (true of LLaMA's and kjv's vocabularies: spaces only start pieces or form
 * runs), no merge can cross a U+2581 that follows another character, so the
 * text is cut there and each word (with the spaces before it) is encoded on
 * its own: identical ids, and heaps the size of a word, not of the text. */
int bn_spm_encode(const bn_vocab *v, const char *text, size_t len, bn_ids *out, bn_err *e) {
    if (len == 0) return 0;
    if (len > INT32_MAX) return bn_errf(e, "tokenize: fragment too long");
    sym *s = malloc(len * sizeof *s);
    bn_mergeq h = {0};
    if (!s) return bn_errf(e, "tokenize: out of memory");
    int rc = 0;
    if (!v->spm_ws_split) {
        rc = encode_segment(v, text, len, s, &h, out, e);
    } else {
        size_t start = 0;
        for (size_t i = 1; i <= len && rc == 0; i++) {
            if (i == len || (i + 2 < len && memcmp(text + i, "\xE2\x96\x81", 3) == 0 &&
                             (i < 3 || memcmp(text + i - 3, "\xE2\x96\x81", 3) != 0))) {
                rc = encode_segment(v, text + start, i - start, s, &h, out, e);
                start = i;
            }
        }
    }
    bn_mergeq_free(&h);
    free(s);
    return rc;
}
