/* unicode.c - UTF-8 codec and category lookup for the tokenizers. */
#include "unicode.h"

/* Binary search in the generated range table; ASCII is the common case and
 * is answered from a small switch-free test first. */
unsigned bn_unicode_flags(uint32_t cp) {
    if (cp < 0x80) {
        if (cp >= 'a' && cp <= 'z') return BN_UCAT_LETTER;
        if (cp >= 'A' && cp <= 'Z') return BN_UCAT_LETTER;
        if (cp >= '0' && cp <= '9') return BN_UCAT_NUMBER;
        if (cp == ' ' || (cp >= 0x09 && cp <= 0x0D)) return BN_UCAT_SPACE;
        return 0;
    }
    size_t lo = 0, hi = bn_unicode_n_ranges;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const bn_unicode_range *r = &bn_unicode_ranges[mid];
        if (cp < r->first) hi = mid;
        else if (cp > r->last) lo = mid + 1;
        else return r->flags;
    }
    return 0;
}

/* Strict decoder (RFC 3629 table 3-7): rejects overlongs, surrogates and
 * code points past U+10FFFF so that invalid input is reported, not guessed. */
size_t bn_utf8_decode(const uint8_t *s, size_t n, uint32_t *cp) {
    if (n == 0) return 0;
    uint8_t c = s[0];
    if (c < 0x80) { *cp = c; return 1; }
    size_t len;
    uint32_t v;
    uint8_t lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) { len = 2; v = c & 0x1F; }
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3; v = c & 0x0F;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4; v = c & 0x07;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else return 0;
    if (n < len) return 0;
    if (s[1] < lo || s[1] > hi) return 0;
    v = (v << 6) | (s[1] & 0x3F);
    for (size_t i = 2; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        v = (v << 6) | (s[i] & 0x3F);
    }
    *cp = v;
    return len;
}

/* Standard UTF-8 encoder; callers only pass scalar values. */
size_t bn_utf8_encode(uint32_t cp, char out[4]) {
    if (cp < 0x80) { out[0] = (char)cp; return 1; }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Whole-buffer validation so tokenizers can reject bad input up front with
 * the byte offset of the problem. */
bool bn_utf8_valid(const char *buf, size_t n, size_t *bad) {
    const uint8_t *s = (const uint8_t *)buf;
    size_t i = 0;
    while (i < n) {
        if (s[i] < 0x80) { i++; continue; }
        uint32_t cp;
        size_t l = bn_utf8_decode(s + i, n - i, &cp);
        if (l == 0) {
            if (bad) *bad = i;
            return false;
        }
        i += l;
    }
    return true;
}

/* llama.cpp's unicode_len_utf8: the high nibble of the lead byte decides. */
size_t bn_utf8_seq_len(uint8_t lead) {
    static const uint8_t lookup[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return lookup[lead >> 4];
}
