/* json.c - strict JSON parser into an immutable tree (see json.h). */
#include "json.h"

#include <locale.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

struct bn_json {
    uint8_t type;
    uint8_t b;        /* BOOL value */
    uint8_t is_int;   /* NUM: integer literal that fit in 64 bits */
    uint8_t neg;      /* NUM: literal had a minus sign */
    uint32_t n;       /* ARR/OBJ: member count */
    double num;
    uint64_t mag;     /* NUM integer: magnitude */
    const char *s;    /* STR: decoded text */
    size_t slen;
    const char *key;  /* member of an object: its key */
    size_t klen;
    size_t kid0;      /* ARR/OBJ: first index into kids during parsing */
    bn_json **kids;   /* ARR/OBJ: members, after finishing */
};

struct bn_json_doc {
    bn_json *nodes;
    size_t n_nodes, cap_nodes;
    size_t *kidx;     /* member node indices, containers contiguous */
    size_t n_kidx, cap_kidx;
    bn_json **kids;   /* kidx turned into pointers */
    char *arena;      /* decoded strings, len + 1 bytes is always enough */
    size_t arena_used;
};

typedef struct parser {
    bn_json_doc *d;
    const unsigned char *p, *start, *end;
    unsigned max_depth;
    const char *name;
    bn_err *e;
    size_t *stack; /* pending member indices of open containers */
    size_t n_stack, cap_stack;
    locale_t cloc; /* "C" numbers whatever the caller's LC_NUMERIC */
} parser;

/* Report an error with the byte offset so corrupt files can be located. */
static int perr(parser *ps, const char *what) {
    return bn_errf(ps->e, "%s: offset %zu: %s", ps->name, (size_t)(ps->p - ps->start), what);
}

/* Grow a dynamic array by doubling; false when out of memory. */
static bool grow(void **arr, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return true;
    size_t nc = *cap ? *cap : 64;
    while (nc < need) {
        if (nc > SIZE_MAX / 2 / elem) return false;
        nc *= 2;
    }
    void *q = realloc(*arr, nc * elem);
    if (!q) return false;
    *arr = q;
    *cap = nc;
    return true;
}

/* Allocate a fresh node; returns its index or SIZE_MAX on out of memory. */
static size_t new_node(parser *ps, uint8_t type) {
    bn_json_doc *d = ps->d;
    if (!grow((void **)&d->nodes, &d->cap_nodes, d->n_nodes + 1, sizeof *d->nodes)) return SIZE_MAX;
    bn_json *v = &d->nodes[d->n_nodes];
    memset(v, 0, sizeof *v);
    v->type = type;
    return d->n_nodes++;
}

/* Skip JSON whitespace (space, tab, CR, LF only). */
static void skip_ws(parser *ps) {
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r')) ps->p++;
}

/* Length of a valid UTF-8 sequence at p (1..4), 0 if invalid. */
static size_t utf8_len(const unsigned char *p, const unsigned char *end) {
    unsigned c = p[0];
    size_t n;
    uint32_t cp;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) { n = 2; cp = c & 0x1F; }
    else if (c >= 0xE0 && c <= 0xEF) { n = 3; cp = c & 0x0F; }
    else if (c >= 0xF0 && c <= 0xF4) { n = 4; cp = c & 0x07; }
    else return 0;
    if ((size_t)(end - p) < n) return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (p[i] & 0x3F);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10FFFF) return 0;
    if (cp >= 0xD800 && cp <= 0xDFFF) return 0;
    return n;
}

/* Encode a code point as UTF-8 into out; returns the byte count. */
static size_t utf8_put(uint32_t cp, char *out) {
    if (cp < 0x80) { out[0] = (char)cp; return 1; }
    if (cp < 0x800) { out[0] = (char)(0xC0 | (cp >> 6)); out[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12)); out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18)); out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Four hex digits of a \u escape; -1 if malformed. */
static long hex4(parser *ps) {
    if (ps->end - ps->p < 4) return -1;
    long v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned c = ps->p[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= c - '0';
        else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
        else return -1;
    }
    ps->p += 4;
    return v;
}

/* Parse a string at the opening quote into the arena. */
static int parse_string(parser *ps, const char **out, size_t *olen) {
    bn_json_doc *d = ps->d;
    ps->p++; /* opening quote */
    char *dst = d->arena + d->arena_used;
    size_t n = 0;
    for (;;) {
        if (ps->p >= ps->end) return perr(ps, "unterminated string");
        unsigned c = *ps->p;
        if (c == '"') { ps->p++; break; }
        if (c < 0x20) return perr(ps, "control character in string");
        if (c == '\\') {
            ps->p++;
            if (ps->p >= ps->end) return perr(ps, "unterminated escape");
            c = *ps->p++;
            switch (c) {
            case '"': dst[n++] = '"'; break;
            case '\\': dst[n++] = '\\'; break;
            case '/': dst[n++] = '/'; break;
            case 'b': dst[n++] = '\b'; break;
            case 'f': dst[n++] = '\f'; break;
            case 'n': dst[n++] = '\n'; break;
            case 'r': dst[n++] = '\r'; break;
            case 't': dst[n++] = '\t'; break;
            case 'u': {
                long cp = hex4(ps);
                if (cp < 0) return perr(ps, "bad \\u escape");
                if (cp >= 0xDC00 && cp <= 0xDFFF) return perr(ps, "unpaired low surrogate");
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    if (ps->end - ps->p < 2 || ps->p[0] != '\\' || ps->p[1] != 'u')
                        return perr(ps, "unpaired high surrogate");
                    ps->p += 2;
                    long lo = hex4(ps);
                    if (lo < 0xDC00 || lo > 0xDFFF) return perr(ps, "bad low surrogate");
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                }
                n += utf8_put((uint32_t)cp, dst + n); /* never longer than the escape */
                break;
            }
            default: return perr(ps, "bad escape");
            }
            continue;
        }
        size_t l = utf8_len(ps->p, ps->end);
        if (!l) return perr(ps, "invalid UTF-8 in string");
        memcpy(dst + n, ps->p, l);
        n += l;
        ps->p += l;
    }
    dst[n] = 0;
    d->arena_used += n + 1;
    *out = dst;
    *olen = n;
    return 0;
}

/* Parse a number literal following the JSON grammar exactly. */
static int parse_number(parser *ps, bn_json *v) {
    const unsigned char *s = ps->p;
    bool neg = false, frac = false;
    if (ps->p < ps->end && *ps->p == '-') { neg = true; ps->p++; }
    if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9') return perr(ps, "bad number");
    uint64_t mag = 0;
    bool fits = true;
    if (*ps->p == '0') {
        ps->p++;
        if (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') return perr(ps, "leading zero in number");
    } else {
        while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') {
            uint64_t dgt = (uint64_t)(*ps->p - '0');
            if (!bn_mul_u64(mag, 10, &mag) || !bn_add_u64(mag, dgt, &mag)) fits = false;
            ps->p++;
        }
    }
    if (ps->p < ps->end && *ps->p == '.') {
        frac = true;
        ps->p++;
        if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9') return perr(ps, "bad fraction");
        while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') ps->p++;
    }
    if (ps->p < ps->end && (*ps->p == 'e' || *ps->p == 'E')) {
        frac = true;
        ps->p++;
        if (ps->p < ps->end && (*ps->p == '+' || *ps->p == '-')) ps->p++;
        if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9') return perr(ps, "bad exponent");
        while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') ps->p++;
    }
    size_t len = (size_t)(ps->p - s);
    char buf[400];
    if (len >= sizeof buf) return perr(ps, "number literal too long");
    memcpy(buf, s, len);
    buf[len] = 0;
    double x = ps->cloc ? strtod_l(buf, NULL, ps->cloc) : strtod(buf, NULL);
    if (!isfinite(x)) return perr(ps, "number out of range");
    v->num = x;
    v->neg = neg;
    if (!frac && fits && !(neg && mag > (uint64_t)INT64_MAX + 1)) {
        v->is_int = 1;
        v->mag = mag;
    }
    return 0;
}

typedef struct keyref { const char *k; size_t l; } keyref;

/* Order keys for duplicate detection. */
static int keycmp(const void *a, const void *b) {
    const keyref *x = a, *y = b;
    if (x->l != y->l) return x->l < y->l ? -1 : 1;
    return memcmp(x->k, y->k, x->l);
}

/* Reject an object whose members (top n of the stack) repeat a key. */
static int check_dups(parser *ps, size_t first, size_t n) {
    if (n < 2) return 0;
    keyref *ks = malloc(n * sizeof *ks);
    if (!ks) return perr(ps, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const bn_json *m = &ps->d->nodes[ps->stack[first + i]];
        ks[i].k = m->key;
        ks[i].l = m->klen;
    }
    qsort(ks, n, sizeof *ks, keycmp);
    int rc = 0;
    for (size_t i = 1; i < n && !rc; i++)
        if (keycmp(&ks[i - 1], &ks[i]) == 0) rc = perr(ps, "duplicate key in object");
    free(ks);
    return rc;
}

static int parse_value(parser *ps, unsigned depth, size_t *out);

/* Parse an array or object; members go on the stack, then into kidx. */
static int parse_container(parser *ps, unsigned depth, size_t idx, bool obj) {
    if (depth >= ps->max_depth) return perr(ps, "nesting too deep");
    char close = obj ? '}' : ']';
    ps->p++;
    size_t first = ps->n_stack, n = 0;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == close) {
        ps->p++;
    } else {
        for (;;) {
            const char *key = NULL;
            size_t klen = 0;
            skip_ws(ps);
            if (obj) {
                if (ps->p >= ps->end || *ps->p != '"') return perr(ps, "expected object key");
                if (parse_string(ps, &key, &klen)) return -1;
                skip_ws(ps);
                if (ps->p >= ps->end || *ps->p != ':') return perr(ps, "expected ':'");
                ps->p++;
            }
            size_t m;
            if (parse_value(ps, depth + 1, &m)) return -1;
            ps->d->nodes[m].key = key;
            ps->d->nodes[m].klen = klen;
            if (!grow((void **)&ps->stack, &ps->cap_stack, ps->n_stack + 1, sizeof *ps->stack))
                return perr(ps, "out of memory");
            ps->stack[ps->n_stack++] = m;
            n++;
            if (n > UINT32_MAX) return perr(ps, "too many members");
            skip_ws(ps);
            if (ps->p < ps->end && *ps->p == ',') { ps->p++; continue; }
            if (ps->p < ps->end && *ps->p == close) { ps->p++; break; }
            return perr(ps, obj ? "expected ',' or '}'" : "expected ',' or ']'");
        }
    }
    if (obj && check_dups(ps, first, n)) return -1;
    bn_json_doc *d = ps->d;
    if (!grow((void **)&d->kidx, &d->cap_kidx, d->n_kidx + n, sizeof *d->kidx)) return perr(ps, "out of memory");
    if (n) memcpy(d->kidx + d->n_kidx, ps->stack + first, n * sizeof *d->kidx);
    d->nodes[idx].kid0 = d->n_kidx;
    d->nodes[idx].n = (uint32_t)n;
    d->n_kidx += n;
    ps->n_stack = first;
    return 0;
}

/* Match a literal keyword (true/false/null). */
static bool lit(parser *ps, const char *w) {
    size_t l = strlen(w);
    if ((size_t)(ps->end - ps->p) < l || memcmp(ps->p, w, l) != 0) return false;
    ps->p += l;
    return true;
}

/* Parse any value at the current position; *out gets its node index. */
static int parse_value(parser *ps, unsigned depth, size_t *out) {
    skip_ws(ps);
    if (ps->p >= ps->end) return perr(ps, "unexpected end of input");
    unsigned c = *ps->p;
    size_t idx;
    switch (c) {
    case '{': case '[':
        if ((idx = new_node(ps, c == '{' ? BN_JSON_OBJ : BN_JSON_ARR)) == SIZE_MAX) return perr(ps, "out of memory");
        if (parse_container(ps, depth, idx, c == '{')) return -1;
        break;
    case '"': {
        if ((idx = new_node(ps, BN_JSON_STR)) == SIZE_MAX) return perr(ps, "out of memory");
        const char *s;
        size_t l;
        if (parse_string(ps, &s, &l)) return -1;
        ps->d->nodes[idx].s = s;
        ps->d->nodes[idx].slen = l;
        break;
    }
    case 't': case 'f': case 'n':
        if (lit(ps, "true")) { if ((idx = new_node(ps, BN_JSON_BOOL)) == SIZE_MAX) return perr(ps, "out of memory"); ps->d->nodes[idx].b = 1; }
        else if (lit(ps, "false")) { if ((idx = new_node(ps, BN_JSON_BOOL)) == SIZE_MAX) return perr(ps, "out of memory"); }
        else if (lit(ps, "null")) { if ((idx = new_node(ps, BN_JSON_NULL)) == SIZE_MAX) return perr(ps, "out of memory"); }
        else return perr(ps, "invalid literal");
        break;
    default:
        if (c != '-' && (c < '0' || c > '9')) return perr(ps, "unexpected character");
        if ((idx = new_node(ps, BN_JSON_NUM)) == SIZE_MAX) return perr(ps, "out of memory");
        if (parse_number(ps, &ps->d->nodes[idx])) return -1;
        break;
    }
    *out = idx;
    return 0;
}

/* Parse a whole document; on error nothing is returned and the message has the offset. */
int bn_json_parse(bn_json_doc **out, const char *text, size_t len, unsigned max_depth,
                  const char *name, bn_err *e) {
    *out = NULL;
    if (!name) name = "json";
    bn_json_doc *d = calloc(1, sizeof *d);
    if (!d) return bn_errf(e, "%s: out of memory", name);
    size_t alen;
    if (!bn_add_size(len, 1, &alen) || !(d->arena = malloc(alen))) {
        free(d);
        return bn_errf(e, "%s: out of memory", name);
    }
    parser ps = { d, (const unsigned char *)text, (const unsigned char *)text,
                  (const unsigned char *)text + len, max_depth ? max_depth : BN_JSON_DEFAULT_DEPTH,
                  name, e, NULL, 0, 0, newlocale(LC_NUMERIC_MASK, "C", (locale_t)0) };
    size_t root;
    int rc = parse_value(&ps, 0, &root);
    if (!rc) {
        skip_ws(&ps);
        if (ps.p != ps.end) rc = perr(&ps, "trailing data after JSON value");
    }
    free(ps.stack);
    if (ps.cloc) freelocale(ps.cloc);
    if (!rc) {
        d->kids = malloc((d->n_kidx ? d->n_kidx : 1) * sizeof *d->kids);
        if (!d->kids) rc = bn_errf(e, "%s: out of memory", name);
    }
    if (rc) {
        bn_json_free(d);
        return -1;
    }
    for (size_t i = 0; i < d->n_kidx; i++) d->kids[i] = &d->nodes[d->kidx[i]];
    for (size_t i = 0; i < d->n_nodes; i++)
        if (d->nodes[i].type == BN_JSON_ARR || d->nodes[i].type == BN_JSON_OBJ)
            d->nodes[i].kids = d->kids + d->nodes[i].kid0;
    free(d->kidx);
    d->kidx = NULL;
    (void)root; /* the root is always node 0 */
    *out = d;
    return 0;
}

/* Read a (size-limited) file and parse it, naming the file in errors. */
int bn_json_parse_file(bn_json_doc **out, const char *path, size_t max_len, bn_err *e) {
    uint8_t *buf;
    size_t len;
    *out = NULL;
    if (bn_read_file(path, &buf, &len, max_len, e)) return -1;
    int rc = bn_json_parse(out, (const char *)buf, len, 0, path, e);
    free(buf);
    return rc;
}

/* Free a document and every value in it. */
void bn_json_free(bn_json_doc *d) {
    if (!d) return;
    free(d->nodes);
    free(d->kidx);
    free(d->kids);
    free(d->arena);
    free(d);
}

/* The top-level value (node 0). */
const bn_json *bn_json_root(const bn_json_doc *d) { return d && d->n_nodes ? &d->nodes[0] : NULL; }

/* Type of a value; NULL (absent) reads as null so lookups chain safely. */
bn_json_type bn_json_type_of(const bn_json *v) { return v ? (bn_json_type)v->type : BN_JSON_NULL; }

/* Type name for messages. */
const char *bn_json_type_name(bn_json_type t) {
    static const char *const names[] = { "null", "bool", "number", "string", "array", "object" };
    return (unsigned)t < 6 ? names[t] : "?";
}

/* Member count of an array or object, 0 for anything else. */
size_t bn_json_len(const bn_json *v) {
    return v && (v->type == BN_JSON_ARR || v->type == BN_JSON_OBJ) ? v->n : 0;
}

/* i-th member (file order), NULL past the end. */
const bn_json *bn_json_at(const bn_json *v, size_t i) {
    return i < bn_json_len(v) ? v->kids[i] : NULL;
}

/* i-th key of an object. */
const char *bn_json_key_at(const bn_json *v, size_t i, size_t *klen) {
    if (!v || v->type != BN_JSON_OBJ || i >= v->n) return NULL;
    if (klen) *klen = v->kids[i]->klen;
    return v->kids[i]->key;
}

/* Object member by key (linear: config objects are small; big ones are iterated). */
const bn_json *bn_json_get(const bn_json *obj, const char *key) {
    if (!obj || obj->type != BN_JSON_OBJ) return NULL;
    size_t l = strlen(key);
    for (uint32_t i = 0; i < obj->n; i++) {
        const bn_json *m = obj->kids[i];
        if (m->klen == l && memcmp(m->key, key, l) == 0) return m;
    }
    return NULL;
}

/* Boolean value. */
bool bn_json_bool(const bn_json *v, bool *out) {
    if (!v || v->type != BN_JSON_BOOL) return false;
    *out = v->b;
    return true;
}

/* Any number as a double. */
bool bn_json_num(const bn_json *v, double *out) {
    if (!v || v->type != BN_JSON_NUM) return false;
    *out = v->num;
    return true;
}

/* Exact signed integer (literal without fraction or exponent). */
bool bn_json_i64(const bn_json *v, int64_t *out) {
    if (!v || v->type != BN_JSON_NUM || !v->is_int) return false;
    if (v->neg) {
        *out = v->mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v->mag;
        return true;
    }
    if (v->mag > (uint64_t)INT64_MAX) return false;
    *out = (int64_t)v->mag;
    return true;
}

/* Exact unsigned integer (byte offsets, shapes). */
bool bn_json_u64(const bn_json *v, uint64_t *out) {
    if (!v || v->type != BN_JSON_NUM || !v->is_int) return false;
    if (v->neg && v->mag != 0) return false;
    *out = v->mag;
    return true;
}

/* Decoded string and its length (may contain NUL). */
const char *bn_json_str(const bn_json *v, size_t *len) {
    if (!v || v->type != BN_JSON_STR) return NULL;
    if (len) *len = v->slen;
    return v->s;
}
