/* detok.c - streaming detokenizer with a UTF-8 completion buffer. */
#include "detok.h"

#include <stdlib.h>
#include <string.h>

int bn_detok_init(bn_detok *d, const bn_vocab *v, bool special, bn_err *e) {
    memset(d, 0, sizeof *d);
    d->v = v;
    d->special = special;
    size_t pm = bn_vocab_piece_max(v);
    d->piece = malloc(pm);
    d->out_cap = 3 * pm + 16;
    d->out = malloc(d->out_cap);
    if (!d->piece || !d->out) {
        bn_detok_free(d);
        return bn_errf(e, "detok: out of memory");
    }
    bn_detok_reset(d);
    return 0;
}

void bn_detok_reset(bn_detok *d) {
    d->strip_space = d->v->add_space_prefix;
    d->npend = d->need = 0;
}

void bn_detok_free(bn_detok *d) {
    free(d->piece);
    free(d->out);
    d->piece = d->out = NULL;
}

static size_t put_fffd(char *o, size_t n) {
    memcpy(o + n, "\xEF\xBF\xBD", 3);
    return n + 3;
}

/* Push one byte through the UTF-8 state machine, appending finished
 * characters (or U+FFFD for broken ones) at o[n]; returns the new length. */
static size_t feed_byte(bn_detok *d, uint8_t c, char *o, size_t n) {
    if (d->npend > 0) {
        uint8_t lo = d->npend == 1 ? d->lo : 0x80, hi = d->npend == 1 ? d->hi : 0xBF;
        if (c >= lo && c <= hi) {
            d->pend[d->npend++] = c;
            if (d->npend == d->need) {
                memcpy(o + n, d->pend, d->npend);
                n += d->npend;
                d->npend = 0;
            }
            return n;
        }
        n = put_fffd(o, n); /* unfinished sequence interrupted */
        d->npend = 0;
    }
    if (c < 0x80) {
        o[n++] = (char)c;
        return n;
    }
    d->lo = 0x80;
    d->hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) d->need = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        d->need = 3;
        if (c == 0xE0) d->lo = 0xA0;
        if (c == 0xED) d->hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        d->need = 4;
        if (c == 0xF0) d->lo = 0x90;
        if (c == 0xF4) d->hi = 0x8F;
    } else {
        return put_fffd(o, n); /* cannot start a character */
    }
    d->pend[0] = c;
    d->npend = 1;
    return n;
}

int bn_detok_push(bn_detok *d, int32_t id, const char **text, size_t *len, bn_err *e) {
    long k = bn_token_piece(d->v, id, d->special, 0, d->piece, e);
    if (k < 0) return -1;
    long i = 0;
    if (k > 0 && d->strip_space) { /* only the very first text piece */
        if (d->piece[0] == ' ') i = 1;
        d->strip_space = false;
    }
    size_t n = 0;
    for (; i < k; i++) n = feed_byte(d, (uint8_t)d->piece[i], d->out, n);
    *text = d->out;
    *len = n;
    return 0;
}

void bn_detok_finish(bn_detok *d, const char **text, size_t *len) {
    size_t n = 0;
    if (d->npend > 0) n = put_fffd(d->out, n);
    d->npend = 0;
    *text = d->out;
    *len = n;
}

