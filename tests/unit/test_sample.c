/* test_sample.c - every sampler step on crafted logits, the penalty math,
 * the PRNG against its published reference values, seed determinism and
 * sampling frequencies checked against statistical bounds (fixed seeds, so
 * the test is deterministic, never flaky). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sample.h"
#include "tap.h"

static void fill(bn_candidate *c, const float *l, size_t n) {
    for (size_t i = 0; i < n; i++) { c[i].id = (int32_t)i; c[i].logit = l[i]; c[i].p = 0; }
}

static bn_sampler *mk(float temp, int32_t k, float top_p, float min_p, uint64_t seed, uint32_t nv) {
    bn_sampler_params p;
    bn_sampler_params_default(&p);
    p.temp = temp; p.top_k = k; p.top_p = top_p; p.min_p = min_p; p.seed = seed;
    bn_sampler *s = NULL;
    bn_err e;
    if (bn_sampler_new(&s, &p, nv, &e) != 0) { printf("# %s\n", e.msg); return NULL; }
    return s;
}

static void test_rng(void) {
    /* xoshiro256** reference: state {1,2,3,4} gives 11520, 0, 1509978240, 1215971899390074240 */
    bn_rng r = { { 1, 2, 3, 4 } };
    uint64_t a = bn_rng_next(&r), b = bn_rng_next(&r), c = bn_rng_next(&r), d = bn_rng_next(&r);
    CHECK(a == 11520u && b == 0 && c == 1509978240u && d == 1215971899390074240ull,
          "xoshiro256** matches reference outputs");
    /* splitmix64 reference: state 0 -> 0xe220a8397b1dcdaf, 0x6e789e6aa1b965f4 */
    uint64_t st = 0;
    uint64_t s1 = bn_splitmix64(&st), s2 = bn_splitmix64(&st);
    CHECK(s1 == 0xe220a8397b1dcdafull && s2 == 0x6e789e6aa1b965f4ull, "splitmix64 matches reference outputs");
    bn_rng x, y, z;
    bn_rng_seed(&x, 42); bn_rng_seed(&y, 42); bn_rng_seed(&z, 43);
    int same = 1, diff = 0, inrange = 1;
    for (int i = 0; i < 1000; i++) {
        double u = bn_rng_uniform(&x);
        if (u != bn_rng_uniform(&y)) same = 0;
        if (u != bn_rng_uniform(&z)) diff = 1;
        if (!(u >= 0.0 && u < 1.0)) inrange = 0;
    }
    CHECK(same, "same seed -> same stream");
    CHECK(diff, "seeds 42 and 43 -> different streams");
    CHECK(inrange, "uniform in [0,1)");
    bn_rng_seed(&x, 0);
    CHECK((x.s[0] | x.s[1] | x.s[2] | x.s[3]) != 0, "seed 0 gives a non-zero state");
    /* mean of 100000 uniforms: sd of the mean is 1/sqrt(12*1e5) ~ 0.00091 */
    double sum = 0;
    bn_rng_seed(&x, 7);
    for (int i = 0; i < 100000; i++) sum += bn_rng_uniform(&x);
    CHECK(fabs(sum / 100000 - 0.5) < 5 * 0.00091, "uniform mean %.5f within 5 sd of 0.5", sum / 100000);
}

static void test_greedy(void) {
    bn_sampler *s = mk(0.0f, 40, 0.95f, 0.05f, 1, 4);
    bn_err e;
    int32_t id = -1;
    float l1[4] = { 1, 3, 3, 2 };
    CHECK(bn_sampler_sample(s, l1, &id, NULL, &e) == 0 && id == 1, "greedy tie -> lowest id (got %d)", id);
    float l2[4] = { 0, 0, 0, 0 };
    CHECK(bn_sampler_sample(s, l2, &id, NULL, &e) == 0 && id == 0, "greedy all equal -> id 0");
    float l3[4] = { -INFINITY, -5, -INFINITY, -7 };
    CHECK(bn_sampler_sample(s, l3, &id, NULL, &e) == 0 && id == 1, "greedy skips -inf ids");
    float l4[4] = { -INFINITY, -INFINITY, -INFINITY, -INFINITY };
    CHECK(bn_sampler_sample(s, l4, &id, NULL, &e) == -1 && strstr(e.msg, "-inf"), "all -inf -> error: %s", e.msg);
    float l5[4] = { 0, NAN, 0, 0 };
    CHECK(bn_sampler_sample(s, l5, &id, NULL, &e) == -1 && strstr(e.msg, "id 1: NaN"), "NaN -> error: %s", e.msg);
    float l6[4] = { 0, 0, INFINITY, 0 };
    CHECK(bn_sampler_sample(s, l6, &id, NULL, &e) == -1 && strstr(e.msg, "+inf"), "+inf -> error");
    /* greedy with info: logprob = log softmax */
    bn_sampler_free(s);
    bn_sampler_params p;
    bn_sampler_params_default(&p);
    p.temp = 0; p.n_top = 3;
    CHECK(bn_sampler_new(&s, &p, 4, &e) == 0, "sampler with n_top");
    bn_sample_info info;
    float l7[4] = { logf(0.1f), logf(0.4f), logf(0.2f), logf(0.3f) };
    bn_sampler_sample(s, l7, &id, &info, &e);
    CHECK(id == 1 && fabsf(info.logprob - logf(0.4f)) < 1e-5f, "greedy logprob %.6f", (double)info.logprob);
    CHECK(info.n_top == 3 && info.top[0].id == 1 && info.top[1].id == 3 && info.top[2].id == 2 &&
          fabsf(info.top[2].logprob - logf(0.2f)) < 1e-5f, "top alternatives sorted with logprobs");
    bn_sampler_free(s);
}

static void test_bias(void) {
    bn_sampler_params p;
    bn_sampler_params_default(&p);
    p.temp = 0;
    bn_logit_bias b[2] = { { 0, -INFINITY }, { 2, 1.5f } };
    p.bias = b; p.n_bias = 2;
    bn_sampler *s;
    bn_err e;
    CHECK(bn_sampler_new(&s, &p, 3, &e) == 0, "sampler with logit bias");
    b[1].bias = 100; /* the sampler keeps its own copy */
    float l[3] = { 10, 2, 1 };
    int32_t id;
    bn_sampler_sample(s, l, &id, NULL, &e);
    CHECK(id == 2, "bias: ban id 0, +1.5 on id 2 beats id 1 (got %d)", id);
    float l2[3] = { 10, 2.6f, 1 };
    bn_sampler_sample(s, l2, &id, NULL, &e);
    CHECK(id == 1, "bias copied at creation (later edits ignored)");
    bn_sampler_free(s);
    bn_logit_bias bad = { 3, 1 };
    p.bias = &bad; p.n_bias = 1;
    CHECK(bn_sampler_new(&s, &p, 3, &e) == -1 && strstr(e.msg, "id 3"), "bias id outside vocab: %s", e.msg);
    p.n_bias = 0;
    p.repeat_penalty = 0;
    CHECK(bn_sampler_new(&s, &p, 3, &e) == -1, "repeat_penalty 0 rejected");
    p.repeat_penalty = 1; p.top_p = NAN;
    CHECK(bn_sampler_new(&s, &p, 3, &e) == -1, "NaN parameter rejected");
    p.top_p = 0.9f;
    CHECK(bn_sampler_new(&s, &p, 0, &e) == -1, "n_vocab 0 rejected");
}

static void test_top_k(void) {
    bn_candidate c[6];
    float l[6] = { 0.5f, 2, 1, 2, -1, 3 };
    fill(c, l, 6);
    size_t n = bn_top_k(c, 6, 3);
    CHECK(n == 3 && c[0].id == 5 && c[1].id == 1 && c[2].id == 3, "top-k 3 keeps 5,1,3 sorted, tie -> lower id first");
    fill(c, l, 6);
    n = bn_top_k(c, 6, 0);
    CHECK(n == 6 && c[0].id == 5 && c[5].id == 4, "top-k 0: all kept, sorted");
    fill(c, l, 6);
    n = bn_top_k(c, 6, 10);
    CHECK(n == 6, "top-k larger than n keeps all");
    fill(c, l, 6);
    n = bn_top_k(c, 6, 1);
    CHECK(n == 1 && c[0].id == 5, "top-k 1 = argmax");
    /* heap selection vs a full sort on a random row with many ties */
    enum { N = 5000, K = 57 };
    static bn_candidate a[N], b[N];
    bn_rng r;
    bn_rng_seed(&r, 99);
    for (int i = 0; i < N; i++) {
        a[i].id = i;
        a[i].logit = (float)(bn_rng_next(&r) % 200) / 10.0f;
        b[i] = a[i];
    }
    size_t na = bn_top_k(a, N, K);
    bn_top_k(b, N, 0);
    int same = na == K;
    for (int i = 0; i < K && same; i++) same = a[i].id == b[i].id;
    CHECK(same, "heap top-k equals the first k of a full sort (5000 ids, ties)");
}

static void test_top_p_min_p(void) {
    bn_candidate c[4];
    float l[4] = { logf(0.5f), logf(0.3f), logf(0.15f), logf(0.05f) };
    fill(c, l, 4);
    bn_softmax(c, 4);
    CHECK(fabsf(c[0].p - 0.5f) < 1e-6f && fabsf(c[3].p - 0.05f) < 1e-6f, "softmax recovers probabilities");
    size_t n;
    fill(c, l, 4); n = bn_top_p(c, 4, 0.4f);
    CHECK(n == 1, "top-p 0.4 keeps 1 (got %zu)", n);
    fill(c, l, 4); n = bn_top_p(c, 4, 0.75f);
    CHECK(n == 2, "top-p 0.75 keeps 2 (got %zu)", n);
    fill(c, l, 4); n = bn_top_p(c, 4, 0.9f);
    CHECK(n == 3, "top-p 0.9 keeps 3 (got %zu)", n);
    fill(c, l, 4); n = bn_top_p(c, 4, 0.99f);
    CHECK(n == 4, "top-p 0.99 keeps 4 (got %zu)", n);
    fill(c, l, 4); n = bn_top_p(c, 4, 1.0f);
    CHECK(n == 4, "top-p 1 is off");
    fill(c, l, 4); n = bn_top_p(c, 4, 0.0f);
    CHECK(n == 1, "top-p 0 keeps one");
    fill(c, l, 4); n = bn_min_p(c, 4, 0.2f);
    CHECK(n == 3 && c[2].id == 2, "min-p 0.2 (threshold 0.1) keeps 3 (got %zu)", n);
    fill(c, l, 4); n = bn_min_p(c, 4, 0.5f);
    CHECK(n == 2, "min-p 0.5 (threshold 0.25) keeps 2 (got %zu)", n);
    fill(c, l, 4); n = bn_min_p(c, 4, 0.0f);
    CHECK(n == 4, "min-p 0 is off");
    fill(c, l, 4); n = bn_min_p(c, 4, 1.0f);
    CHECK(n == 1 && c[0].id == 0, "min-p 1 keeps the best only");
    /* min-p keeps order on an unsorted row */
    float u[4] = { logf(0.05f), logf(0.5f), logf(0.15f), logf(0.3f) };
    fill(c, u, 4); n = bn_min_p(c, 4, 0.2f);
    CHECK(n == 3 && c[0].id == 1 && c[1].id == 2 && c[2].id == 3, "min-p on unsorted row keeps order");
}

static void test_draw(void) {
    bn_candidate c[3] = { { 0, 0, 0.2f }, { 1, 0, 0.5f }, { 2, 0, 0.3f } };
    CHECK(bn_draw(c, 3, 0.0) == 0, "draw u=0 -> first");
    CHECK(bn_draw(c, 3, 0.19999) == 0, "draw u<0.2 -> first");
    CHECK(bn_draw(c, 3, 0.2000001) == 1, "draw u just above 0.2 -> second");
    CHECK(bn_draw(c, 3, 0.69999) == 1, "draw u<0.7 -> second");
    CHECK(bn_draw(c, 3, 0.9999999) == 2, "draw u->1 -> last");
    bn_candidate z[3] = { { 0, 0, 0.5f }, { 1, 0, 0.5f }, { 2, 0, 0.0f } };
    CHECK(bn_draw(z, 3, 0.9999999999) == 1, "draw never picks a zero-probability tail");
}

static void test_penalties(void) {
    bn_candidate c[4];
    float l[4] = { 2, -2, 1, 0 };
    uint32_t counts[4] = { 1, 1, 0, 2 };
    fill(c, l, 4);
    bn_apply_penalties(c, 4, counts, 2.0f, 0.5f, 0.25f);
    CHECK(fabsf(c[0].logit - 0.25f) < 1e-6f, "positive logit divided: 2/2 - 0.5 - 0.25 = 0.25 (%g)", (double)c[0].logit);
    CHECK(fabsf(c[1].logit + 4.75f) < 1e-6f, "negative logit multiplied: -2*2 - 0.75 = -4.75 (%g)", (double)c[1].logit);
    CHECK(c[2].logit == 1.0f, "absent id untouched");
    CHECK(fabsf(c[3].logit + 1.25f) < 1e-6f, "count 2: 0*2 - 2*0.5 - 0.25 = -1.25 (%g)", (double)c[3].logit);

    /* the window: repeat_last_n = 2, huge penalty, greedy */
    bn_sampler_params p;
    bn_sampler_params_default(&p);
    p.temp = 0; p.repeat_penalty = 100; p.repeat_last_n = 2;
    bn_sampler *s;
    bn_err e;
    bn_sampler_new(&s, &p, 3, &e);
    float r[3] = { 5, 4, 3 };
    int32_t id;
    bn_sampler_sample(s, r, &id, NULL, &e);
    CHECK(id == 0, "no history: argmax 0");
    bn_sampler_accept(s, 0, &e);
    bn_sampler_sample(s, r, &id, NULL, &e);
    CHECK(id == 1, "0 in window -> penalised, pick 1");
    bn_sampler_accept(s, 1, &e);
    bn_sampler_sample(s, r, &id, NULL, &e);
    CHECK(id == 2, "0 and 1 in window -> pick 2");
    bn_sampler_accept(s, 2, &e);
    bn_sampler_sample(s, r, &id, NULL, &e);
    CHECK(id == 0, "0 left the window of 2 -> pick 0 again");
    CHECK(bn_sampler_accept(s, 3, &e) == -1, "accept id outside vocab -> error");
    bn_sampler_reset_history(s);
    bn_sampler_accept(s, 1, &e);
    bn_sampler_sample(s, r, &id, NULL, &e);
    CHECK(id == 0, "reset_history forgets");
    bn_sampler_free(s);
    /* whole-history window (-1) and window 0 (off) */
    p.repeat_last_n = -1;
    bn_sampler_new(&s, &p, 3, &e);
    bn_sampler_accept(s, 0, &e); bn_sampler_accept(s, 1, &e); bn_sampler_accept(s, 2, &e); bn_sampler_accept(s, 2, &e);
    bn_sampler_sample(s, r, &id, NULL, &e);
    CHECK(id == 0, "window -1 keeps everything (all penalised equally -> 0)");
    bn_sampler_free(s);
    p.repeat_last_n = 0;
    bn_sampler_new(&s, &p, 3, &e);
    bn_sampler_accept(s, 0, &e);
    bn_sampler_sample(s, r, &id, NULL, &e);
    CHECK(id == 0, "window 0 disables penalties");
    bn_sampler_free(s);
    /* presence penalty via the sampler: 5 - 1.5 < 4 */
    bn_sampler_params_default(&p);
    p.temp = 0; p.presence_penalty = 1.5f;
    bn_sampler_new(&s, &p, 3, &e);
    bn_sampler_accept(s, 0, &e);
    bn_sampler_sample(s, r, &id, NULL, &e);
    CHECK(id == 1, "presence penalty changes greedy choice");
    bn_sampler_free(s);
}

/* Frequencies of n draws vs expected probabilities: every count within 5
 * binomial sd and the chi-square below the 0.9999 quantile. */
static void freq_check(const char *what, bn_sampler *s, const float *l, const double *pexp, int nv, int n) {
    int cnt[16] = { 0 };
    bn_err e;
    int ok = 1;
    for (int i = 0; i < n; i++) {
        int32_t id;
        if (bn_sampler_sample(s, l, &id, NULL, &e) != 0 || id < 0 || id >= nv) { ok = 0; break; }
        cnt[id]++;
    }
    double chi = 0;
    int df = 0;
    for (int i = 0; i < nv; i++) {
        double ex = pexp[i] * n, sd = sqrt(n * pexp[i] * (1 - pexp[i]));
        if (pexp[i] == 0) { if (cnt[i]) ok = 0; continue; }
        if (fabs(cnt[i] - ex) > 5 * sd) ok = 0;
        chi += (cnt[i] - ex) * (cnt[i] - ex) / ex;
        df++;
    }
    /* chi-square 0.9999 quantiles for df-1 = 1..3: 15.1, 18.4, 21.1 */
    double lim = df - 1 == 1 ? 15.1 : df - 1 == 2 ? 18.4 : 21.1;
    CHECK(ok && chi < lim, "%s: counts %d %d %d %d, chi2 %.2f < %.1f", what, cnt[0], cnt[1], cnt[2], cnt[3], chi, lim);
}

static void test_distribution(void) {
    float l[4] = { logf(0.1f), logf(0.2f), logf(0.3f), logf(0.4f) };
    double p1[4] = { 0.1, 0.2, 0.3, 0.4 };
    bn_sampler *s = mk(1.0f, 0, 1.0f, 0.0f, 12345, 4);
    freq_check("temp 1", s, l, p1, 4, 100000);
    bn_sampler_free(s);
    double p2[4] = { 0.01 / 0.30, 0.04 / 0.30, 0.09 / 0.30, 0.16 / 0.30 };
    s = mk(0.5f, 0, 1.0f, 0.0f, 777, 4);
    freq_check("temp 0.5 (p^2 renormalised)", s, l, p2, 4, 100000);
    bn_sampler_free(s);
    double p3[4] = { 0, 0, 3.0 / 7, 4.0 / 7 };
    s = mk(1.0f, 2, 1.0f, 0.0f, 5, 4);
    freq_check("top-k 2 renormalised", s, l, p3, 4, 50000);
    bn_sampler_free(s);
    double p4[4] = { 0, 0.2 / 0.9, 0.3 / 0.9, 0.4 / 0.9 };
    s = mk(1.0f, 0, 0.85f, 0.0f, 6, 4);
    freq_check("top-p 0.85 drops the 0.1 tail", s, l, p4, 4, 50000);
    bn_sampler_free(s);
    double p5[4] = { 0, 0, 3.0 / 7, 4.0 / 7 };
    s = mk(1.0f, 0, 1.0f, 0.6f, 8, 4);
    freq_check("min-p 0.6 keeps p >= 0.24", s, l, p5, 4, 50000);
    bn_sampler_free(s);
    /* llama.cpp defaults on this row: top-k 40 keeps all, top-p 0.95 keeps all
     * (0.4+0.3+0.2 = 0.9 < 0.95), min-p 0.05 keeps all, temp 0.8 */
    double q[4], z = 0;
    for (int i = 0; i < 4; i++) z += q[i] = pow(p1[i], 1 / 0.8);
    for (int i = 0; i < 4; i++) q[i] /= z;
    s = mk(0.8f, 40, 0.95f, 0.05f, 9, 4);
    freq_check("llama.cpp defaults", s, l, q, 4, 50000);
    bn_sampler_free(s);
}

static void test_determinism(void) {
    enum { NV = 300, STEPS = 200 };
    static float rows[STEPS][NV];
    bn_rng r;
    bn_rng_seed(&r, 2024);
    for (int t = 0; t < STEPS; t++)
        for (int i = 0; i < NV; i++) rows[t][i] = (float)(bn_rng_uniform(&r) * 8.0 - 4.0);
    int32_t out[3][STEPS];
    uint64_t seeds[3] = { 1, 1, 2 };
    for (int k = 0; k < 3; k++) {
        bn_sampler_params p;
        bn_sampler_params_default(&p);
        p.seed = seeds[k]; p.repeat_penalty = 1.1f; p.temp = 1.0f; p.top_k = 0; p.top_p = 0.98f; p.min_p = 0.01f;
        bn_sampler *s;
        bn_err e;
        bn_sampler_new(&s, &p, NV, &e);
        for (int t = 0; t < STEPS; t++) {
            bn_sampler_sample(s, rows[t], &out[k][t], NULL, &e);
            bn_sampler_accept(s, out[k][t], &e);
        }
        bn_sampler_free(s);
    }
    CHECK(memcmp(out[0], out[1], sizeof out[0]) == 0, "same seed -> same %d ids", STEPS);
    CHECK(memcmp(out[0], out[2], sizeof out[0]) != 0, "different seed -> different ids");
    /* info does not change the RNG stream */
    bn_sampler_params p;
    bn_sampler_params_default(&p);
    p.seed = 1; p.repeat_penalty = 1.1f; p.temp = 1.0f; p.top_k = 0; p.top_p = 0.98f; p.min_p = 0.01f; p.n_top = 5;
    bn_sampler *s;
    bn_err e;
    bn_sampler_new(&s, &p, NV, &e);
    int same = 1, lp_ok = 1;
    for (int t = 0; t < STEPS; t++) {
        int32_t id;
        bn_sample_info info;
        bn_sampler_sample(s, rows[t], &id, &info, &e);
        if (id != out[0][t]) same = 0;
        if (!(info.logprob <= 0) || info.top[0].logprob < info.logprob || info.n_top != 5) lp_ok = 0;
        bn_sampler_accept(s, id, &e);
    }
    bn_sampler_free(s);
    CHECK(same, "asking for info keeps the same ids");
    CHECK(lp_ok, "logprobs <= 0 and the best alternative >= the chosen");
}

static void test_stops(void) {
    int32_t a[] = { 1, 2, 3, 1, 2 };
    CHECK(bn_repeat_find(a, 5, 2) == 0, "repeat: [1 2] seen at 0");
    CHECK(bn_repeat_find(a, 5, 3) == -1, "repeat: [3 1 2] not seen");
    int32_t b[] = { 5, 5, 5 };
    CHECK(bn_repeat_find(b, 3, 2) == 0, "repeat: overlapping span counts");
    CHECK(bn_repeat_find(b, 2, 2) == -1, "repeat: n < k+1 -> none");
    CHECK(bn_repeat_find(b, 3, 0) == -1, "repeat: k 0 -> none");
    const char *stops[] = { "END", "\n\n", "xyz" };
    size_t at = 99;
    const char *t = "hello\n\nworld END";
    CHECK(bn_stop_find(t, strlen(t), 0, stops, 3, &at) == 1 && at == 5, "stop: earliest match wins");
    CHECK(bn_stop_find(t, strlen(t), 14, stops, 3, &at) == 0 && at == 13, "stop: match starting before `from`");
    CHECK(bn_stop_find(t, 15, 0, stops, 1, &at) == -1, "stop: partial match is not a stop");
    CHECK(bn_stop_find("", 0, 0, stops, 3, &at) == -1, "stop: empty text");
}

static void test_cli_helpers(void) {
    bn_logit_bias b;
    bn_err e;
    CHECK(bn_logit_bias_parse("15043+1.5", &b, &e) == 0 && b.id == 15043 && b.bias == 1.5f, "logit-bias ID+BIAS");
    CHECK(bn_logit_bias_parse("7-2", &b, &e) == 0 && b.id == 7 && b.bias == -2.0f, "logit-bias ID-BIAS");
    CHECK(bn_logit_bias_parse("2-inf", &b, &e) == 0 && b.id == 2 && b.bias == -INFINITY, "logit-bias ID-inf bans");
    CHECK(bn_logit_bias_parse("2+inf", &b, &e) == -1, "logit-bias +inf rejected");
    CHECK(bn_logit_bias_parse("x+1", &b, &e) == -1, "logit-bias needs an id");
    CHECK(bn_logit_bias_parse("3", &b, &e) == -1, "logit-bias needs a sign");
    CHECK(bn_logit_bias_parse("3+", &b, &e) == -1, "logit-bias needs a value");
    CHECK(bn_logit_bias_parse("3+1x", &b, &e) == -1, "logit-bias trailing junk");
    CHECK(bn_logit_bias_parse("3--1", &b, &e) == -1, "logit-bias double sign");
    CHECK(bn_logit_bias_parse("99999999999+1", &b, &e) == -1, "logit-bias id overflow");
    char buf[64];
    size_t len = 0;
    CHECK(bn_json_quote(buf, sizeof buf, &len, "a\"b\\c\n\x01", 7) == 0 && strcmp(buf, "\"a\\\"b\\\\c\\n\\u0001\"") == 0,
          "json quote escapes: %s", buf);
    len = 0;
    CHECK(bn_json_quote(buf, sizeof buf, &len, "\xc3\xa9\xe2", 3) == 0 && strcmp(buf, "\"\xc3\xa9\\u00e2\"") == 0,
          "json quote keeps valid UTF-8, escapes a partial sequence: %s", buf);
    len = 0;
    CHECK(bn_json_quote(buf, 4, &len, "abcdef", 6) == -1, "json quote reports overflow");
}

static void test_stopper(void) {
    bn_stopper st;
    bn_err e;
    const char *why = "x";
    bn_stopper_init(&st, 3, 0, NULL, 0);
    bn_stopper_push(&st, 5, NULL, 0, &why, &e);
    CHECK(why == NULL, "stopper: 1 of 3 -> go on");
    bn_stopper_push(&st, 6, NULL, 0, &why, &e);
    bn_stopper_push(&st, 7, NULL, 0, &why, &e);
    CHECK(why && !strcmp(why, "length"), "stopper: 3 of 3 -> length");
    bn_stopper_reset(&st);
    bn_stopper_push(&st, 5, NULL, 0, &why, &e);
    CHECK(why == NULL && st.n_hist == 1, "stopper: reset starts a new count");
    bn_stopper_free(&st);
    /* repeat: 1 2 1 2 1 with k = 3 */
    bn_stopper_init(&st, -1, 3, NULL, 0);
    int32_t seq[5] = { 1, 2, 1, 2, 1 };
    int at = -1;
    for (int i = 0; i < 5; i++) {
        bn_stopper_push(&st, seq[i], NULL, 0, &why, &e);
        if (why && at < 0) at = i;
    }
    CHECK(at == 4 && !strcmp(why, "repeat"), "stopper: repeat of 3 seen at the 5th token (%d)", at);
    bn_stopper_free(&st);
    /* stop strings across pieces, before the length rule; many pushes grow the buffers */
    const char *stops[] = { "God cr" };
    bn_stopper_init(&st, 5, 0, stops, 1);
    const char *pieces[] = { " In", " the", " beginning", " God", " created" };
    for (int i = 0; i < 5; i++) bn_stopper_push(&st, i, pieces[i], strlen(pieces[i]), &why, &e);
    CHECK(why && !strcmp(why, "stop"), "stopper: stop string spanning two pieces wins over length");
    bn_stopper_free(&st);
    bn_stopper_init(&st, -1, 0, stops, 1);
    int ok = 1;
    for (int i = 0; i < 5000 && ok; i++) {
        if (bn_stopper_push(&st, i, "ab", 2, &why, &e) != 0 || why) ok = 0;
    }
    CHECK(ok && st.n_hist == 5000 && st.n_text == 10000, "stopper: 5000 tokens, no false stop, buffers grow");
    bn_stopper_free(&st);
}

int main(void) {
    test_rng();
    test_greedy();
    test_bias();
    test_top_k();
    test_top_p_min_p();
    test_draw();
    test_penalties();
    test_distribution();
    test_determinism();
    test_stops();
    test_cli_helpers();
    test_stopper();
    return tap_done();
}
