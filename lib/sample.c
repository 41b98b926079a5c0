/* sample.c - deterministic PRNG, penalties and the llama.cpp sampler chain. */
#include "sample.h"

#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

/* ======================== PRNG ======================== */

/* splitmix64 spreads one 64-bit seed over the xoshiro state (Vigna's
 * recommended seeding: consecutive seeds give unrelated streams). */
uint64_t bn_splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Seed via splitmix64 so every seed (including 0) gives a non-zero state. */
void bn_rng_seed(bn_rng *r, uint64_t seed) {
    uint64_t st = seed;
    for (int i = 0; i < 4; i++) r->s[i] = bn_splitmix64(&st);
    if (!(r->s[0] | r->s[1] | r->s[2] | r->s[3])) r->s[0] = 1;
}

static inline uint64_t rotl64(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

/* xoshiro256** (Blackman & Vigna): fast, 256-bit state, no platform dependence. */
uint64_t bn_rng_next(bn_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl64(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl64(s[3], 45);
    return result;
}

/* Top 53 bits -> [0, 1): exact in a double, never 1.0. */
double bn_rng_uniform(bn_rng *r) { return (double)(bn_rng_next(r) >> 11) * 0x1.0p-53; }

/* ======================== parameters ======================== */

/* llama.cpp's defaults, so users get the behaviour they know. */
void bn_sampler_params_default(bn_sampler_params *p) {
    memset(p, 0, sizeof *p);
    p->temp = 0.8f;
    p->top_k = 40;
    p->top_p = 0.95f;
    p->min_p = 0.05f;
    p->repeat_penalty = 1.0f;
    p->freq_penalty = 0.0f;
    p->presence_penalty = 0.0f;
    p->repeat_last_n = 64;
    p->seed = 0;
    p->n_top = 0;
}

struct bn_sampler {
    bn_sampler_params p;
    bn_logit_bias *bias;     /* own copy */
    uint32_t n_vocab;
    bn_rng rng;
    bn_candidate *cand;      /* n_vocab scratch */
    uint32_t *counts;        /* per-id occurrences inside the penalty window */
    int32_t *ring;           /* last repeat_last_n accepted ids (window > 0) */
    size_t ring_len, ring_pos;
};

/* Validate and copy the parameters; allocate the scratch once per sampler. */
int bn_sampler_new(bn_sampler **out, const bn_sampler_params *p, uint32_t n_vocab, bn_err *e) {
    *out = NULL;
    if (n_vocab == 0) return bn_errf(e, "sampler: n_vocab: must be > 0");
    if (isnan(p->temp) || isnan(p->top_p) || isnan(p->min_p))
        return bn_errf(e, "sampler: parameters: NaN");
    if (p->top_p < 0.0f) return bn_errf(e, "sampler: top_p: %g is negative", (double)p->top_p);
    if (p->min_p > 1.0f) return bn_errf(e, "sampler: min_p: %g is above 1", (double)p->min_p);
    if (!(p->repeat_penalty > 0.0f) || !isfinite(p->repeat_penalty))
        return bn_errf(e, "sampler: repeat_penalty: %g must be > 0", (double)p->repeat_penalty);
    if (!isfinite(p->freq_penalty) || !isfinite(p->presence_penalty))
        return bn_errf(e, "sampler: penalties: must be finite");
    if (p->repeat_last_n < -1) return bn_errf(e, "sampler: repeat_last_n: %d is below -1", p->repeat_last_n);
    if (p->n_top > BN_SAMPLE_MAX_TOP) return bn_errf(e, "sampler: n_top: %u is above %d", p->n_top, BN_SAMPLE_MAX_TOP);
    for (size_t i = 0; i < p->n_bias; i++) {
        if (p->bias[i].id < 0 || (uint32_t)p->bias[i].id >= n_vocab)
            return bn_errf(e, "sampler: logit_bias: id %d outside the vocabulary (%u)", p->bias[i].id, n_vocab);
        if (isnan(p->bias[i].bias) || p->bias[i].bias == INFINITY)
            return bn_errf(e, "sampler: logit_bias: id %d: bias must be finite or -inf", p->bias[i].id);
    }
    bn_sampler *s = bn_calloc(1, sizeof *s, e);
    if (!s) return -1;
    s->p = *p;
    s->n_vocab = n_vocab;
    s->cand = bn_calloc(n_vocab, sizeof *s->cand, e);
    s->counts = bn_calloc(n_vocab, sizeof *s->counts, e);
    s->bias = p->n_bias ? bn_calloc(p->n_bias, sizeof *s->bias, e) : NULL;
    s->ring = p->repeat_last_n > 0 ? bn_calloc((size_t)p->repeat_last_n, sizeof *s->ring, e) : NULL;
    if (!s->cand || !s->counts || (p->n_bias && !s->bias) || (p->repeat_last_n > 0 && !s->ring)) {
        bn_sampler_free(s);
        return -1;
    }
    if (p->n_bias) memcpy(s->bias, p->bias, p->n_bias * sizeof *s->bias);
    s->p.bias = s->bias;
    bn_rng_seed(&s->rng, p->seed);
    *out = s;
    return 0;
}

/* Free a sampler and its scratch (NULL is fine). */
void bn_sampler_free(bn_sampler *s) {
    if (!s) return;
    free(s->cand);
    free(s->counts);
    free(s->bias);
    free(s->ring);
    free(s);
}

/* The vocabulary size the sampler was built for (callers check frames against it). */
uint32_t bn_sampler_n_vocab(const bn_sampler *s) { return s->n_vocab; }

/* Push an id into the penalty window, evicting the oldest when full. */
int bn_sampler_accept(bn_sampler *s, int32_t id, bn_err *e) {
    if (id < 0 || (uint32_t)id >= s->n_vocab)
        return bn_errf(e, "sampler: token: id %d outside the vocabulary (%u)", id, s->n_vocab);
    int32_t w = s->p.repeat_last_n;
    if (w == 0) return 0;
    if (w < 0) {
        if (s->counts[id] < UINT32_MAX) s->counts[id]++;
        return 0;
    }
    if (s->ring_len == (size_t)w) {
        int32_t old = s->ring[s->ring_pos];
        s->counts[old]--;
    } else {
        s->ring_len++;
    }
    s->ring[s->ring_pos] = id;
    s->ring_pos = (s->ring_pos + 1) % (size_t)w;
    s->counts[id]++;
    return 0;
}

/* Start a new, unrelated sequence: penalties forget, the RNG stream goes on. */
void bn_sampler_reset_history(bn_sampler *s) {
    memset(s->counts, 0, s->n_vocab * sizeof *s->counts);
    s->ring_len = s->ring_pos = 0;
}

/* ======================== steps ======================== */

/* Total order used everywhere: higher logit first, then lower id, so ties
 * are broken the same way on every machine. */
static inline bool cand_better(const bn_candidate *a, const bn_candidate *b) {
    return a->logit > b->logit || (a->logit == b->logit && a->id < b->id);
}

static int cand_cmp(const void *pa, const void *pb) {
    const bn_candidate *a = pa, *b = pb;
    if (cand_better(a, b)) return -1;
    if (cand_better(b, a)) return 1;
    return 0;
}

/* llama.cpp's penalties: one multiplicative repeat penalty per present id,
 * then the additive frequency/presence terms. */
void bn_apply_penalties(bn_candidate *c, size_t n, const uint32_t *counts,
                        float repeat, float freq, float presence) {
    for (size_t i = 0; i < n; i++) {
        uint32_t cnt = counts[c[i].id];
        if (!cnt) continue;
        if (c[i].logit <= 0.0f) c[i].logit *= repeat;
        else c[i].logit /= repeat;
        c[i].logit -= (float)cnt * freq + presence;
    }
}

/* Sift-down for a min-heap under cand_better (root = worst kept). */
static void heap_sift(bn_candidate *h, size_t n, size_t i) {
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, w = i;
        if (l < n && cand_better(&h[w], &h[l])) w = l;
        if (r < n && cand_better(&h[w], &h[r])) w = r;
        if (w == i) return;
        bn_candidate t = h[i]; h[i] = h[w]; h[w] = t;
        i = w;
    }
}

/* Partial selection with a k-heap (O(n log k)), then sort the k kept:
 * top-k 40 of a 128k vocabulary must not cost a full sort per token. */
size_t bn_top_k(bn_candidate *c, size_t n, int32_t k) {
    if (k <= 0 || (size_t)k >= n) {
        qsort(c, n, sizeof *c, cand_cmp);
        return n;
    }
    size_t kk = (size_t)k;
    for (size_t i = kk / 2; i-- > 0;) heap_sift(c, kk, i);
    for (size_t i = kk; i < n; i++) {
        if (cand_better(&c[i], &c[0])) {
            c[0] = c[i];
            heap_sift(c, kk, 0);
        }
    }
    qsort(c, kk, sizeof *c, cand_cmp);
    return kk;
}

/* Numerically stable softmax (max subtracted, sums in double). */
void bn_softmax(bn_candidate *c, size_t n) {
    if (!n) return;
    float mx = c[0].logit;
    for (size_t i = 1; i < n; i++) if (c[i].logit > mx) mx = c[i].logit;
    double sum = 0.0;
    for (size_t i = 0; i < n; i++) {
        float v = expf(c[i].logit - mx);
        c[i].p = v;
        sum += v;
    }
    for (size_t i = 0; i < n; i++) c[i].p = (float)((double)c[i].p / sum);
}

/* Nucleus sampling's cut: the first token that makes the cumulative mass
 * reach p is kept (llama.cpp includes it). */
size_t bn_top_p(bn_candidate *c, size_t n, float p) {
    if (p >= 1.0f || n <= 1) return n;
    bn_softmax(c, n);
    double cum = 0.0;
    for (size_t i = 0; i < n; i++) {
        cum += c[i].p;
        if (cum >= (double)p) return i + 1;
    }
    return n;
}

/* Min-p: relative threshold to the best token, done on logits as llama.cpp
 * does (p_i >= min_p * p_max  <=>  logit_i >= logit_max + log(min_p)). */
size_t bn_min_p(bn_candidate *c, size_t n, float min_p) {
    if (min_p <= 0.0f || n <= 1) return n;
    float mx = c[0].logit;
    for (size_t i = 1; i < n; i++) if (c[i].logit > mx) mx = c[i].logit;
    float thr = mx + logf(min_p);
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (c[i].logit >= thr) c[m++] = c[i];
    return m ? m : 1;
}

/* Inverse-CDF draw over the candidates in their current order. */
size_t bn_draw(const bn_candidate *c, size_t n, double u) {
    double total = 0.0;
    for (size_t i = 0; i < n; i++) total += c[i].p;
    double target = u * total, cum = 0.0;
    for (size_t i = 0; i < n; i++) {
        cum += c[i].p;
        if (target < cum) return i;
    }
    /* rounding: fall back to the last candidate with mass */
    for (size_t i = n; i-- > 0;) if (c[i].p > 0.0f) return i;
    return 0;
}

/* ======================== the chain ======================== */

/* Bias then penalties for one id, in the same order and arithmetic as the
 * whole-row pass, so the result is bit-identical to it. */
static float processed_logit(const bn_sampler *s, const float *logits, int32_t id) {
    bn_candidate one = { id, logits[id], 0.0f };
    for (size_t b = 0; b < s->p.n_bias; b++)
        if (s->bias[b].id == id) one.logit += s->bias[b].bias;
    if (s->p.repeat_last_n != 0 &&
        (s->p.repeat_penalty != 1.0f || s->p.freq_penalty != 0.0f || s->p.presence_penalty != 0.0f))
        bn_apply_penalties(&one, 1, s->counts, s->p.repeat_penalty, s->p.freq_penalty, s->p.presence_penalty);
    return one.logit;
}

/* Log-sum-exp of the full processed row and its n_top best ids, for --json
 * (reported distribution = temperature 1, before truncation, like OpenAI logprobs). */
static double row_stats(const bn_sampler *s, const bn_candidate *c, size_t n, bn_sample_info *info) {
    float mx = -INFINITY;
    for (size_t i = 0; i < n; i++) if (c[i].logit > mx) mx = c[i].logit;
    double sum = 0.0;
    for (size_t i = 0; i < n; i++) sum += exp((double)c[i].logit - (double)mx);
    double lse = (double)mx + log(sum);
    uint32_t k = s->p.n_top, m = 0;
    bn_candidate best[BN_SAMPLE_MAX_TOP];
    for (size_t i = 0; i < n && k; i++) {
        if (m == k && !cand_better(&c[i], &best[m - 1])) continue;
        uint32_t j = m < k ? m++ : m - 1;
        while (j > 0 && cand_better(&c[i], &best[j - 1])) { best[j] = best[j - 1]; j--; }
        best[j] = c[i];
    }
    info->n_top = m;
    for (uint32_t i = 0; i < m; i++) {
        info->top[i].id = best[i].id;
        info->top[i].logprob = (float)((double)best[i].logit - lse);
    }
    return lse;
}

/* bias -> penalties -> (greedy | top_k -> top_p -> min_p -> temperature -> draw). */
int bn_sampler_sample(bn_sampler *s, const float *logits, int32_t *id, bn_sample_info *info, bn_err *e) {
    bn_candidate *c = s->cand;
    for (uint32_t i = 0; i < s->n_vocab; i++) {
        float v = logits[i];
        if (isnan(v) || v == INFINITY) return bn_errf(e, "logits: id %u: %s", i, isnan(v) ? "NaN" : "+inf");
        c[i].id = (int32_t)i;
        c[i].logit = v;
        c[i].p = 0.0f;
    }
    for (size_t b = 0; b < s->p.n_bias; b++) c[s->bias[b].id].logit += s->bias[b].bias;
    if (s->p.repeat_last_n != 0 &&
        (s->p.repeat_penalty != 1.0f || s->p.freq_penalty != 0.0f || s->p.presence_penalty != 0.0f))
        bn_apply_penalties(c, s->n_vocab, s->counts, s->p.repeat_penalty, s->p.freq_penalty, s->p.presence_penalty);
    /* drop banned ids (-inf): they can never be drawn */
    size_t n = 0;
    for (uint32_t i = 0; i < s->n_vocab; i++)
        if (c[i].logit != -INFINITY) c[n++] = c[i];
    if (!n) return bn_errf(e, "logits: every id is -inf after bias and penalties");
    double lse = info ? row_stats(s, c, n, info) : 0.0;

    int32_t chosen;
    size_t m = 1;
    if (s->p.temp <= 0.0f) {
        size_t best = 0;
        for (size_t i = 1; i < n; i++) if (cand_better(&c[i], &c[best])) best = i;
        chosen = c[best].id;
    } else {
        m = n;
        if ((s->p.top_k > 0 && (size_t)s->p.top_k < m) || s->p.top_p < 1.0f) m = bn_top_k(c, m, s->p.top_k);
        m = bn_top_p(c, m, s->p.top_p);
        m = bn_min_p(c, m, s->p.min_p);
        for (size_t i = 0; i < m; i++) c[i].logit /= s->p.temp;
        bn_softmax(c, m);
        chosen = c[bn_draw(c, m, bn_rng_uniform(&s->rng))].id;
    }
    if (info) {
        info->logprob = (float)((double)processed_logit(s, logits, chosen) - lse);
        info->n_kept = (uint32_t)m;
    }
    *id = chosen;
    return 0;
}

/* ======================== stop conditions ======================== */

/* Naive O(n*k) scan: generation lengths are small, and this runs once per token. */
long bn_repeat_find(const int32_t *toks, size_t n, size_t k) {
    if (k == 0 || n < k + 1) return -1;
    const int32_t *tail = toks + n - k;
    for (size_t j = 0; j + k < n; j++)
        if (memcmp(toks + j, tail, k * sizeof *toks) == 0) return (long)j;
    return -1;
}

/* Look only where a match could end in the new bytes [from, len). */
int bn_stop_find(const char *text, size_t len, size_t from, const char *const *stops, size_t n_stops, size_t *at) {
    int best = -1;
    size_t best_at = 0;
    for (size_t i = 0; i < n_stops; i++) {
        size_t sl = strlen(stops[i]);
        if (!sl || sl > len) continue;
        size_t start = from >= sl - 1 ? from - (sl - 1) : 0;
        for (size_t j = start; j + sl <= len; j++) {
            if (memcmp(text + j, stops[i], sl) == 0) {
                if (best < 0 || j < best_at) { best = (int)i; best_at = j; }
                break;
            }
        }
    }
    if (best >= 0 && at) *at = best_at;
    return best;
}

/* ======================== command-line and output helpers ======================== */

/* "ID+BIAS" or "ID-BIAS": the sign belongs to the bias, as in llama.cpp. */
int bn_logit_bias_parse(const char *s, bn_logit_bias *out, bn_err *e) {
    const char *p = s;
    if (!*p || *p < '0' || *p > '9') return bn_errf(e, "logit-bias: '%s': expected ID+BIAS or ID-BIAS", s);
    long id = 0;
    while (*p >= '0' && *p <= '9') {
        id = id * 10 + (*p - '0');
        if (id > INT32_MAX) return bn_errf(e, "logit-bias: '%s': id too large", s);
        p++;
    }
    if (*p != '+' && *p != '-') return bn_errf(e, "logit-bias: '%s': expected + or - after the id", s);
    float v;
    if (strcmp(p + 1, "inf") == 0) {
        v = INFINITY;
    } else {
        char *end;
        v = strtof(p + 1, &end);
        if (end == p + 1 || *end || !isfinite(v) || p[1] == '-' || p[1] == '+')
            return bn_errf(e, "logit-bias: '%s': bad bias", s);
    }
    if (*p == '-') v = -v;
    if (v == INFINITY) return bn_errf(e, "logit-bias: '%s': +inf is not allowed (use a large finite bias)", s);
    out->id = (int32_t)id;
    out->bias = v;
    return 0;
}

/* Length of a valid UTF-8 sequence starting at s (n bytes left), 0 if invalid. */
static size_t utf8_len(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    size_t l;
    uint32_t cp;
    if (c < 0x80) return 1;
    if ((c & 0xe0) == 0xc0) { l = 2; cp = c & 0x1f; }
    else if ((c & 0xf0) == 0xe0) { l = 3; cp = c & 0x0f; }
    else if ((c & 0xf8) == 0xf0) { l = 4; cp = c & 0x07; }
    else return 0;
    if (l > n) return 0;
    for (size_t i = 1; i < l; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((l == 2 && cp < 0x80) || (l == 3 && cp < 0x800) || (l == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return l;
}

/* Tokens can hold partial UTF-8; JSON consumers need valid text, so broken
 * bytes become \u00XX (the byte value, like Python's surrogateescape-ish view). */
int bn_json_quote(char *buf, size_t cap, size_t *len, const char *bytes, size_t n) {
    size_t o = *len;
#define PUT(ch) do { if (o + 1 >= cap) return -1; buf[o++] = (char)(ch); } while (0)
    PUT('"');
    const unsigned char *s = (const unsigned char *)bytes;
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        size_t l = utf8_len(s + i, n - i);
        if (l > 1) {
            for (size_t j = 0; j < l; j++) PUT(s[i + j]);
            i += l;
            continue;
        }
        if (l == 1 && c >= 0x20 && c != '"' && c != '\\') { PUT(c); i++; continue; }
        const char *esc = c == '"' ? "\\\"" : c == '\\' ? "\\\\" : c == '\n' ? "\\n" : c == '\t' ? "\\t" : c == '\r' ? "\\r" : NULL;
        char tmp[8];
        if (!esc) { snprintf(tmp, sizeof tmp, "\\u%04x", c); esc = tmp; }
        for (const char *q = esc; *q; q++) PUT(*q);
        i++;
    }
    PUT('"');
#undef PUT
    buf[o] = 0;
    *len = o;
    return 0;
}

/* ======================== stop rules of a generation ======================== */

/* Keep the configuration; buffers grow on first use. */
void bn_stopper_init(bn_stopper *s, long n_predict, size_t repeat_k, const char *const *stops, size_t n_stops) {
    memset(s, 0, sizeof *s);
    s->n_predict = n_predict;
    s->repeat_k = repeat_k;
    s->stops = stops;
    s->n_stops = n_stops;
}

/* Each generation is judged on its own tokens and text. */
void bn_stopper_reset(bn_stopper *s) {
    s->n_hist = 0;
    s->n_text = 0;
}

/* Grow a buffer to hold need elements of size sz (doubling). */
static int grow(void **buf, size_t *cap, size_t need, size_t sz, bn_err *e) {
    if (need <= *cap) return 0;
    size_t nc = *cap ? *cap : 256;
    while (nc < need) {
        if (!bn_mul_size(nc, 2, &nc)) return bn_errf(e, "stopper: size overflow");
    }
    size_t bytes;
    if (!bn_mul_size(nc, sz, &bytes)) return bn_errf(e, "stopper: size overflow");
    void *nb = realloc(*buf, bytes);
    if (!nb) return bn_errf(e, "out of memory");
    *buf = nb;
    *cap = nc;
    return 0;
}

/* Same order as llama-cli: the text (antiprompt) first, then the count. */
int bn_stopper_push(bn_stopper *s, int32_t id, const char *piece, size_t len, const char **reason, bn_err *e) {
    *reason = NULL;
    if (grow((void **)&s->hist, &s->cap_hist, s->n_hist + 1, sizeof *s->hist, e)) return -1;
    s->hist[s->n_hist++] = id;
    if (s->n_stops && piece) {
        if (grow((void **)&s->text, &s->cap_text, s->n_text + len + 1, 1, e)) return -1;
        size_t from = s->n_text;
        memcpy(s->text + s->n_text, piece, len);
        s->n_text += len;
        if (bn_stop_find(s->text, s->n_text, from, s->stops, s->n_stops, NULL) >= 0) { *reason = "stop"; return 0; }
    }
    if (s->n_predict >= 0 && s->n_hist >= (size_t)s->n_predict) { *reason = "length"; return 0; }
    if (s->repeat_k && bn_repeat_find(s->hist, s->n_hist, s->repeat_k) >= 0) *reason = "repeat";
    return 0;
}

void bn_stopper_free(bn_stopper *s) {
    free(s->hist);
    free(s->text);
    memset(s, 0, sizeof *s);
}
