/* bpe.c - byte-level BPE of one raw fragment: the pre-tokenizer regexes
 * written out by hand over code point categories, GPT-2 bytes_to_unicode,
 * then lowest-rank-first pair merges (leftmost on ties) with a heap.
 *
 * gpt-2:  's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * llama3: (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}
 *         | ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+ */
#include <stdlib.h>
#include <string.h>

#include "unicode.h"
#include "mergeq.h"
#include "vocab.h"

/* ---- pre-tokenizer ------------------------------------------------------- */

typedef struct cpbuf {
    uint32_t *cp;   /* code points */
    uint8_t *fl;    /* their category flags */
    uint32_t *off;  /* byte offset of each code point; off[n] = length */
    size_t n;
} cpbuf;

#define IS_L(i) (c->fl[i] & BN_UCAT_LETTER)
#define IS_N(i) (c->fl[i] & BN_UCAT_NUMBER)
#define IS_S(i) (c->fl[i] & BN_UCAT_SPACE)
#define IS_RN(i) (c->cp[i] == '\r' || c->cp[i] == '\n')

static uint32_t ascii_lower(uint32_t x) { return x >= 'A' && x <= 'Z' ? x + 32 : x; }

/* Length of a contraction at i ('s 't 're 've 'm 'll 'd), 0 if none. */
static size_t contraction(const cpbuf *c, size_t i, bool icase) {
    if (c->cp[i] != '\'' || i + 1 >= c->n) return 0;
    uint32_t a = c->cp[i + 1], b = i + 2 < c->n ? c->cp[i + 2] : 0;
    if (icase) { a = ascii_lower(a); b = ascii_lower(b); }
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
    return 0;
}

/* End of the run of characters starting at i that satisfy the flag test. */
static size_t run_end(const cpbuf *c, size_t i, unsigned want, bool negate) {
    while (i < c->n) {
        bool has = (c->fl[i] & want) != 0;
        if (has == negate) break;
        i++;
    }
    return i;
}

/* Whitespace alternatives shared by both regexes: \s+(?!\S)|\s+ */
static size_t space_tail(const cpbuf *c, size_t i) {
    size_t j = run_end(c, i, BN_UCAT_SPACE, false);
    if (j == c->n || j - i == 1) return j - i;
    return j - 1 - i;
}

/* One match of the gpt-2 regex at i; returns its length in code points. */
static size_t match_gpt2(const cpbuf *c, size_t i) {
    size_t k = contraction(c, i, false);
    if (k) return k;
    size_t j = i + (c->cp[i] == ' ' && i + 1 < c->n ? 1 : 0);
    if (IS_L(j)) return run_end(c, j, BN_UCAT_LETTER, false) - i;
    if (IS_N(j)) return run_end(c, j, BN_UCAT_NUMBER, false) - i;
    const unsigned lns = BN_UCAT_LETTER | BN_UCAT_NUMBER | BN_UCAT_SPACE;
    if (!(c->fl[j] & lns)) return run_end(c, j, lns, true) - i;
    return space_tail(c, i);
}

/* One match of the llama3 regex at i. */
static size_t match_llama3(const cpbuf *c, size_t i) {
    size_t k = contraction(c, i, true);
    if (k) return k;
    /* [^\r\n\p{L}\p{N}]?\p{L}+ */
    if (IS_L(i)) return run_end(c, i, BN_UCAT_LETTER, false) - i;
    if (!IS_RN(i) && !IS_N(i) && i + 1 < c->n && IS_L(i + 1))
        return run_end(c, i + 1, BN_UCAT_LETTER, false) - i;
    /* \p{N}{1,3} */
    if (IS_N(i)) {
        size_t j = i;
        while (j < c->n && j - i < 3 && IS_N(j)) j++;
        return j - i;
    }
    /*  ?[^\s\p{L}\p{N}]+[\r\n]* */
    const unsigned lns = BN_UCAT_LETTER | BN_UCAT_NUMBER | BN_UCAT_SPACE;
    size_t j = i + (c->cp[i] == ' ' && i + 1 < c->n ? 1 : 0);
    if (!(c->fl[j] & lns)) {
        j = run_end(c, j, lns, true);
        while (j < c->n && IS_RN(j)) j++;
        return j - i;
    }
    /* \s*[\r\n]+ : up to the last \r or \n of the whitespace run */
    size_t end = run_end(c, i, BN_UCAT_SPACE, false);
    for (size_t q = end; q > i; q--)
        if (IS_RN(q - 1)) return q - i;
    return space_tail(c, i);
}

/* ---- merges -------------------------------------------------------------- */

typedef struct bsym {
    int32_t id, prev, next;
    bool alive;
} bsym;

/* Queue (left, right) when the vocabulary has a merge for their ids. */
static int try_pair(const bn_vocab *v, const bsym *s, int32_t left, int32_t right, bn_mergeq *h, bn_err *e) {
    if (left < 0 || right < 0 || !v->merge_keys) return 0;
    int32_t a = s[left].id, b = s[right].id;
    if (a < 0 || b < 0) return 0;
    uint64_t key = (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
    uint64_t x = key - 1;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    uint64_t slot = x & v->merge_ht_mask;
    for (;;) {
        uint64_t k = v->merge_keys[slot];
        if (k == 0) return 0;
        if (k == key) break;
        slot = (slot + 1) & v->merge_ht_mask;
    }
    return bn_mergeq_push(h, (bn_merge){(double)v->merge_rank[slot], left, right, a, b, v->merge_result[slot]}, e);
}

typedef struct scratch {
    char *mapped;
    size_t mcap;
    bsym *s;
    size_t scap;
    bn_mergeq h;
} scratch;

/* BPE of one pre-token given as raw bytes. */
static int encode_word(const bn_vocab *v, const char *w, size_t n, scratch *sc, bn_ids *out, bn_err *e) {
    if (n == 0) return 0;
    if (v->ignore_merges) {
        if (sc->mcap < 2 * n) {
            free(sc->mapped);
            sc->mcap = 2 * n;
            sc->mapped = malloc(sc->mcap);
            if (!sc->mapped) return bn_errf(e, "tokenize: out of memory");
        }
        size_t m = 0;
        for (size_t i = 0; i < n; i++) {
            int32_t id = v->byte_tok[(uint8_t)w[i]];
            if (id < 0) { m = SIZE_MAX; break; }
            size_t tl;
            const char *t = bn_vocab_text(v, id, &tl);
            memcpy(sc->mapped + m, t, tl);
            m += tl;
        }
        if (m != SIZE_MAX) {
            int32_t id = bn_vocab_find(v, sc->mapped, m);
            if (id >= 0) return bn_ids_push(out, id, e);
        }
    }
    if (sc->scap < n) {
        free(sc->s);
        sc->scap = n;
        sc->s = malloc(n * sizeof *sc->s);
        if (!sc->s) return bn_errf(e, "tokenize: out of memory");
    }
    bsym *s = sc->s;
    for (size_t i = 0; i < n; i++)
        s[i] = (bsym){v->byte_tok[(uint8_t)w[i]], (int32_t)i - 1, i + 1 < n ? (int32_t)i + 1 : -1, true};
    sc->h.n = 0;
    int rc = 0;
    for (size_t i = 1; i < n && rc == 0; i++) rc = try_pair(v, s, (int32_t)i - 1, (int32_t)i, &sc->h, e);
    while (rc == 0 && sc->h.n > 0) {
        bn_merge p = bn_mergeq_pop(&sc->h);
        bsym *l = &s[p.left], *r = &s[p.right];
        if (!l->alive || !r->alive || l->next != p.right || l->id != p.a || r->id != p.b) continue;
        l->id = p.c;
        r->alive = false;
        l->next = r->next;
        if (r->next >= 0) s[r->next].prev = p.left;
        rc = try_pair(v, s, l->prev, p.left, &sc->h, e);
        if (rc == 0) rc = try_pair(v, s, p.left, l->next, &sc->h, e);
    }
    for (int32_t i = 0; rc == 0 && i >= 0; i = s[i].next) {
        int32_t id = s[i].id >= 0 ? s[i].id : v->unk;
        if (id < 0)
            return bn_errf(e, "tokenize: byte 0x%02X has no token and the vocabulary has no <unk>", (uint8_t)w[i]);
        rc = bn_ids_push(out, id, e);
    }
    return rc;
}

/* Decode the fragment once, then walk regex matches and BPE each. */
int bn_bpe_encode(const bn_vocab *v, const char *text, size_t len, bn_ids *out, bn_err *e) {
    if (len == 0) return 0;
    cpbuf c = {0};
    c.cp = malloc(len * sizeof *c.cp);
    c.fl = malloc(len + 1);
    c.off = malloc((len + 1) * sizeof *c.off);
    scratch sc = {0};
    int rc = 0;
    if (!c.cp || !c.fl || !c.off) {
        rc = bn_errf(e, "tokenize: out of memory");
        goto done;
    }
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t l = bn_utf8_decode((const uint8_t *)text + i, len - i, &cp);
        if (l == 0) {
            rc = bn_errf(e, "input: invalid UTF-8 at byte offset %zu", i);
            goto done;
        }
        c.cp[c.n] = cp;
        c.fl[c.n] = (uint8_t)bn_unicode_flags(cp);
        c.off[c.n++] = (uint32_t)i;
        i += l;
    }
    c.off[c.n] = (uint32_t)len;
    c.fl[c.n] = 0;
    for (size_t i = 0; i < c.n && rc == 0;) {
        size_t k = v->pre == BN_PRE_GPT2 ? match_gpt2(&c, i) : match_llama3(&c, i);
        if (k == 0) k = 1;
        rc = encode_word(v, text + c.off[i], c.off[i + k] - c.off[i], &sc, out, e);
        i += k;
    }
done:
    free(c.cp);
    free(c.fl);
    free(c.off);
    free(sc.mapped);
    free(sc.s);
    bn_mergeq_free(&sc.h);
    return rc;
}
