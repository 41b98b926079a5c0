/* tokvec - check the tokenizer against reference vectors (test helper).
 *
 *   tokvec inp   MODEL FILE.inp FILE.out   llama.cpp test-tokenizer-0 vectors
 *                (add_special=0, parse_special=0), plus the streaming round
 *                trip detok(tokenize(x)) == x for each input
 *   tokvec jsonl MODEL FILE.jsonl          llama.cpp special/detok cases
 *   tokvec ids   MODEL TEXT IDS.bin [--lines]
 *                int32 LE ids: BOS + encode(TEXT) (no trailing newline), or
 *                with --lines BOS + encode(line) + EOS for every line
 *   tokvec rt    MODEL TEXT                round trip of every line of TEXT
 *   tokvec info  MODEL                     kind, pre, counts, special ids, EOG set, fingerprint
 *   tokvec bench MODEL TEXT REPS           tokenize every line of TEXT REPS times; JSON with
 *                                          the best time (load time excluded) and MB/s
 *
 * Prints "NAME: matched N/M" and one line per mismatch; exit 1 on any. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "detok.h"
#include "json.h"
#include "vocab.h"

static int die(const bn_err *e) {
    fprintf(stderr, "tokvec: %s\n", e->msg);
    return 2;
}

/* Streaming detokenization of ids without BOS handling beyond the vocab's. */
static char *stream_detok(const bn_vocab *v, const int32_t *ids, size_t n, size_t *len, bn_err *e) {
    bn_detok d;
    if (bn_detok_init(&d, v, false, e) < 0) return NULL;
    size_t cap = 64, l = 0;
    char *s = malloc(cap);
    for (size_t i = 0; i <= n; i++) {
        const char *t;
        size_t k;
        if (i < n) {
            if (bn_detok_push(&d, ids[i], &t, &k, e) < 0) { free(s); bn_detok_free(&d); return NULL; }
        } else {
            bn_detok_finish(&d, &t, &k);
        }
        while (l + k + 1 > cap) s = realloc(s, cap *= 2);
        memcpy(s + l, t, k);
        l += k;
    }
    s[l] = 0;
    *len = l;
    bn_detok_free(&d);
    return s;
}

static bool same_ids(const bn_ids *a, const bn_ids *b) {
    return a->n == b->n && (a->n == 0 || memcmp(a->ids, b->ids, a->n * sizeof *a->ids) == 0);
}

static void show(const char *s, size_t n) {
    putchar('"');
    for (size_t i = 0; i < n && i < 60; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n') fputs("\\n", stdout);
        else if (c < 0x20) printf("\\x%02x", c);
        else putchar(c);
    }
    putchar('"');
}

static int cmd_inp(const bn_vocab *v, const char *inp, const char *outp) {
    bn_err e;
    uint8_t *in, *out;
    size_t inl, outl;
    if (bn_read_file(inp, &in, &inl, 1 << 24, &e) < 0 || bn_read_file(outp, &out, &outl, 1 << 24, &e) < 0)
        return die(&e);
    const char *sep = "\n__ggml_vocab_test__\n";
    size_t seplen = strlen(sep), pos = 0, total = 0, ok = 0, rt_ok = 0;
    char *line = (char *)out, *out_end = (char *)out + outl;
    while (pos < inl) {
        const char *hit = memmem(in + pos, inl - pos, sep, seplen);
        size_t end = hit ? (size_t)((const uint8_t *)hit - in) : inl;
        const char *text = (const char *)in + pos;
        size_t tlen = end - pos;
        pos = hit ? end + seplen : inl;
        /* expected ids: next line of .out */
        char *nl = memchr(line, '\n', (size_t)(out_end - line));
        if (!nl) nl = out_end;
        bn_ids exp = {0}, got = {0};
        for (char *p = line; p < nl;) {
            char *q;
            long x = strtol(p, &q, 10);
            if (q == p) break;
            bn_ids_push(&exp, (int32_t)x, &e);
            p = q;
        }
        line = nl < out_end ? nl + 1 : out_end;
        total++;
        if (bn_tokenize(v, text, tlen, false, false, &got, &e) < 0) {
            printf("case %zu: error %s\n", total, e.msg);
        } else if (same_ids(&got, &exp)) {
            ok++;
        } else {
            printf("case %zu: mismatch ", total);
            show(text, tlen);
            printf("\n  want");
            for (size_t i = 0; i < exp.n; i++) printf(" %d", exp.ids[i]);
            printf("\n  got ");
            for (size_t i = 0; i < got.n; i++) printf(" %d", got.ids[i]);
            printf("\n");
        }
        size_t dl;
        char *d = stream_detok(v, got.ids, got.n, &dl, &e);
        if (d && dl == tlen && memcmp(d, text, tlen) == 0) rt_ok++;
        else if (d) {
            printf("case %zu: round trip differs: ", total);
            show(d, dl);
            printf(" vs ");
            show(text, tlen);
            printf("\n");
        }
        free(d);
        bn_ids_free(&exp);
        bn_ids_free(&got);
    }
    printf("%s: matched %zu/%zu, round trip %zu/%zu\n", inp, ok, total, rt_ok, total);
    free(in);
    free(out);
    return ok == total && rt_ok == total ? 0 : 1;
}

static int cmd_jsonl(const bn_vocab *v, const char *path) {
    bn_err e;
    uint8_t *buf;
    size_t len;
    if (bn_read_file(path, &buf, &len, 1 << 24, &e) < 0) return die(&e);
    size_t total = 0, ok = 0, lineno = 0;
    char *p = (char *)buf, *end = (char *)buf + len;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) nl = end;
        lineno++;
        if (nl == p) { p = nl + 1; continue; }
        bn_json_doc *doc;
        if (bn_json_parse(&doc, p, (size_t)(nl - p), 0, path, &e) < 0) return die(&e);
        const bn_json *r = bn_json_root(doc);
        size_t tl;
        const char *text = bn_json_str(bn_json_get(r, "text"), &tl);
        bool as = false, ps = false;
        bn_json_bool(bn_json_get(r, "add_special"), &as);
        bn_json_bool(bn_json_get(r, "parse_special"), &ps);
        const bn_json *ids = bn_json_get(r, "ids");
        bn_ids exp = {0}, got = {0};
        for (size_t i = 0; i < bn_json_len(ids); i++) {
            int64_t x = 0;
            bn_json_i64(bn_json_at(ids, i), &x);
            bn_ids_push(&exp, (int32_t)x, &e);
        }
        total++;
        bool good = true;
        if (bn_tokenize(v, text, tl, as, ps, &got, &e) < 0) {
            printf("line %zu: error %s\n", lineno, e.msg);
            good = false;
        } else if (!same_ids(&got, &exp)) {
            printf("line %zu (add_special=%d parse_special=%d): ids differ for ", lineno, as, ps);
            show(text, tl);
            printf("\n  want");
            for (size_t i = 0; i < exp.n; i++) printf(" %d", exp.ids[i]);
            printf("\n  got ");
            for (size_t i = 0; i < got.n; i++) printf(" %d", got.ids[i]);
            printf("\n");
            good = false;
        }
        total--;
        ok += good;
        total++;
        const bn_json *dt = bn_json_get(r, "detok");
        for (int rs = 0; rs < 2; rs++)
            for (int us = 0; us < 2; us++) {
                char key[64];
                snprintf(key, sizeof key, "remove_special=%d,unparse_special=%d", rs, us);
                size_t wl;
                const char *want = bn_json_str(bn_json_get(dt, key), &wl);
                char *s;
                size_t sl;
                total++;
                if (!want || bn_detokenize(v, exp.ids, exp.n, rs, us, &s, &sl, &e) < 0) {
                    printf("line %zu: detok %s: error\n", lineno, key);
                    continue;
                }
                if (sl == wl && memcmp(s, want, wl) == 0) ok++;
                else {
                    printf("line %zu: detok %s: got ", lineno, key);
                    show(s, sl);
                    printf(" want ");
                    show(want, wl);
                    printf("\n");
                }
                free(s);
            }
        bn_ids_free(&exp);
        bn_ids_free(&got);
        bn_json_free(doc);
        p = nl + 1;
    }
    printf("%s: matched %zu/%zu (ids and 4 detok modes per line)\n", path, ok, total);
    free(buf);
    return ok == total ? 0 : 1;
}

static int cmd_ids(const bn_vocab *v, const char *textp, const char *idsp, bool lines) {
    bn_err e;
    uint8_t *t, *ib;
    size_t tl, il;
    if (bn_read_file(textp, &t, &tl, 1 << 26, &e) < 0 || bn_read_file(idsp, &ib, &il, 1 << 26, &e) < 0)
        return die(&e);
    bn_ids got = {0};
    size_t nlines = 0;
    if (!lines) {
        while (tl > 0 && t[tl - 1] == '\n') tl--;
        if (bn_tokenize(v, (char *)t, tl, true, false, &got, &e) < 0) return die(&e);
    } else {
        char *p = (char *)t, *end = (char *)t + tl;
        while (p < end) {
            char *nl = memchr(p, '\n', (size_t)(end - p));
            if (!nl) nl = end;
            if (bn_tokenize(v, p, (size_t)(nl - p), true, false, &got, &e) < 0) return die(&e);
            bn_ids_push(&got, v->eos, &e);
            nlines++;
            p = nl + 1;
        }
    }
    size_t n = il / 4, same = 0;
    for (size_t i = 0; i < n && i < got.n; i++) {
        int32_t x;
        memcpy(&x, ib + 4 * i, 4);
        if (x == got.ids[i]) same++;
        else if (same == i) printf("first difference at %zu: want %d got %d\n", i, x, got.ids[i]);
    }
    printf("%s: matched %zu/%zu ids (produced %zu)\n", idsp, same, n, got.n);
    int rc = same == n && got.n == n ? 0 : 1;
    bn_ids_free(&got);
    free(t);
    free(ib);
    return rc;
}

static int cmd_rt(const bn_vocab *v, const char *textp) {
    bn_err e;
    uint8_t *t;
    size_t tl, total = 0, ok = 0;
    if (bn_read_file(textp, &t, &tl, 1 << 26, &e) < 0) return die(&e);
    char *p = (char *)t, *end = (char *)t + tl;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) nl = end;
        bn_ids got = {0};
        if (bn_tokenize(v, p, (size_t)(nl - p), true, false, &got, &e) < 0) return die(&e);
        size_t dl;
        char *d = stream_detok(v, got.ids, got.n, &dl, &e);
        total++;
        if (d && dl == (size_t)(nl - p) && memcmp(d, p, dl) == 0) ok++;
        else printf("line %zu: round trip differs\n", total);
        free(d);
        bn_ids_free(&got);
        p = nl + 1;
    }
    printf("%s: round trip %zu/%zu lines\n", textp, ok, total);
    free(t);
    return ok == total ? 0 : 1;
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "info")) {
        bn_vocab v;
        bn_err e;
        if (bn_vocab_load_file(&v, argv[2], &e) < 0) return die(&e);
        printf("type=%s pre=%s n_tokens=%u n_merges=%u bos=%d eos=%d unk=%d eot=%d pad=%d add_bos=%d eog=",
               bn_vocab_type_name(v.type), bn_vocab_pre_name(v.pre), v.n_tokens, v.n_merges, v.bos, v.eos, v.unk,
               v.eot, v.pad, v.add_bos);
        for (uint32_t i = 0; i < v.n_eog; i++) printf(i ? ",%d" : "%d", v.eog[i]);
        printf(" fingerprint=%s\n", v.fingerprint);
        bn_vocab_free(&v);
        return 0;
    }
    if (argc == 5 && !strcmp(argv[1], "bench")) {
        bn_vocab v;
        bn_err e;
        uint8_t *t;
        size_t tl;
        uint64_t t0 = bn_now_ns();
        if (bn_vocab_load_file(&v, argv[2], &e) < 0) return die(&e);
        uint64_t load_ns = bn_now_ns() - t0;
        if (bn_read_file(argv[3], &t, &tl, 1 << 28, &e) < 0) return die(&e);
        long reps = atol(argv[4]);
        uint64_t best = UINT64_MAX;
        size_t ntok = 0;
        bn_ids a = {0};
        for (long r = 0; r < (reps > 0 ? reps : 1); r++) {
            ntok = 0;
            t0 = bn_now_ns();
            char *p = (char *)t, *end = (char *)t + tl;
            while (p < end) {
                char *nl = memchr(p, '\n', (size_t)(end - p));
                if (!nl) nl = end;
                a.n = 0;
                if (bn_tokenize(&v, p, (size_t)(nl - p), true, false, &a, &e) < 0) return die(&e);
                ntok += a.n;
                p = nl + 1;
            }
            uint64_t dt = bn_now_ns() - t0;
            if (dt < best) best = dt;
        }
        printf("{\"model\":\"%s\",\"type\":\"%s\",\"bytes\":%zu,\"tokens\":%zu,\"load_s\":%.4f,"
               "\"best_s\":%.5f,\"mb_per_s\":%.2f}\n", argv[2], bn_vocab_type_name(v.type), tl, ntok,
               (double)load_ns / 1e9, (double)best / 1e9, (double)tl / 1e6 / ((double)best / 1e9));
        bn_ids_free(&a);
        free(t);
        bn_vocab_free(&v);
        return 0;
    }
    if (argc < 4) {
        fprintf(stderr, "usage: tokvec inp|jsonl|ids|rt MODEL FILE...\n");
        return 2;
    }
    bn_vocab v;
    bn_err e;
    if (bn_vocab_load_file(&v, argv[2], &e) < 0) return die(&e);
    int rc = 2;
    if (!strcmp(argv[1], "inp") && argc == 5) rc = cmd_inp(&v, argv[3], argv[4]);
    else if (!strcmp(argv[1], "jsonl") && argc == 4) rc = cmd_jsonl(&v, argv[3]);
    else if (!strcmp(argv[1], "ids") && argc >= 5)
        rc = cmd_ids(&v, argv[3], argv[4], argc == 6 && !strcmp(argv[5], "--lines"));
    else if (!strcmp(argv[1], "rt") && argc == 4) rc = cmd_rt(&v, argv[3]);
    else fprintf(stderr, "tokvec: bad arguments\n");
    bn_vocab_free(&v);
    return rc;
}
