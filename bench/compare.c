/* compare.c - flag benchmark figures that got more than 5% worse.
 *
 * usage: compare [--tolerance PCT] OLD.json NEW.json
 * Both files are bench/run (or bench/context) output. Every numeric leaf is
 * compared by its path, results named by type, threads, test and context
 * rather than by position. Across machines only ratios mean anything, so unless both files
 * name the same machine (machine.model and machine.cores equal) only keys
 * ending in _frac, _ratio or _x are compared; on one machine tok/s figures
 * are compared too. Direction comes from the name: *_ms, *_ns, *_s, *rss*
 * are lower-is-better, the rest higher-is-better. Machine facts, the
 * probes (ceilings), the peer's own tok/s and min/max spreads are skipped:
 * medians and ratios are what is compared. Prints a JSON report;
 * exit 1 if anything regressed, 2 on usage or unreadable input. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "util.h"

typedef struct { char path[256]; double v; } leaf;
typedef struct { leaf *a; size_t n, cap; } leaves;

static void push(leaves *l, const char *path, double v) {
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        l->a = realloc(l->a, l->cap * sizeof *l->a);
        if (!l->a) { fprintf(stderr, "compare: out of memory\n"); exit(2); }
    }
    snprintf(l->a[l->n].path, sizeof l->a[l->n].path, "%s", path);
    l->a[l->n++].v = v;
}

/* A result's identity, "i2_s/t2/tg128" (type, threads, test, ctx: those it
 * has), so that runs with other tests or another order are compared figure
 * by figure; 0 for elements without them (then the index names them). */
static int elem_key(const bn_json *e, char *key, size_t n) {
    if (bn_json_type_of(e) != BN_JSON_OBJ) return 0;
    static const char *const fields[] = { "type", "threads", "test", "ctx" };
    size_t len = 0;
    key[0] = 0;
    for (size_t f = 0; f < sizeof fields / sizeof fields[0]; f++) {
        const bn_json *x = bn_json_get(e, fields[f]);
        const char *str = bn_json_str(x, NULL);
        double d;
        int w = 0;
        if (str) w = snprintf(key + len, n - len, "%s%s", len ? "/" : "", str);
        else if (bn_json_num(x, &d)) w = snprintf(key + len, n - len, "%s%s%g", len ? "/" : "", f == 1 ? "t" : "", d);
        if (w < 0 || (size_t)w >= n - len) return 0;
        len += (size_t)w;
    }
    return len > 0;
}

/* Walk the document, recording numeric leaves as a.b[2].c paths (array
 * elements named by elem_key where they have an identity). */
static void walk(const bn_json *v, const char *path, leaves *out) {
    char sub[256];
    switch (bn_json_type_of(v)) {
    case BN_JSON_OBJ:
        for (size_t i = 0; i < bn_json_len(v); i++) {
            size_t kl;
            const char *k = bn_json_key_at(v, i, &kl);
            snprintf(sub, sizeof sub, "%s%s%.*s", path, *path ? "." : "", (int)kl, k);
            walk(bn_json_at(v, i), sub, out);
        }
        break;
    case BN_JSON_ARR:
        for (size_t i = 0; i < bn_json_len(v); i++) {
            char key[128];
            if (elem_key(bn_json_at(v, i), key, sizeof key)) snprintf(sub, sizeof sub, "%s[%s]", path, key);
            else snprintf(sub, sizeof sub, "%s[%zu]", path, i);
            walk(bn_json_at(v, i), sub, out);
        }
        break;
    default: {
        double d;
        if (bn_json_num(v, &d)) push(out, path, d);
    }
    }
}

static int ends_with(const char *s, const char *suf) {
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && strcmp(s + n - m, suf) == 0;
}

static const char *machine_id(const bn_json *root, char *buf, size_t n) {
    const bn_json *m = bn_json_get(root, "machine");
    const char *model = bn_json_str(bn_json_get(m, "model"), NULL);
    double cores = 0;
    bn_json_num(bn_json_get(m, "cores"), &cores);
    snprintf(buf, n, "%s/%g", model ? model : "?", cores);
    return buf;
}

int main(int argc, char **argv) {
    double tol = 5.0;
    int ai = 1;
    if (argc > 2 && strcmp(argv[1], "--tolerance") == 0) { tol = atof(argv[2]); ai = 3; }
    if (argc - ai != 2) { fprintf(stderr, "usage: compare [--tolerance PCT] OLD.json NEW.json\n"); return 2; }
    bn_json_doc *d[2];
    bn_err e;
    for (int i = 0; i < 2; i++)
        if (bn_json_parse_file(&d[i], argv[ai + i], 64 << 20, &e) < 0) {
            fprintf(stderr, "compare: %s\n", e.msg);
            if (i == 1) bn_json_free(d[0]); /* the first file's document, parsed */
            return 2;
        }
    char ma[200], mb[200];
    int same = strcmp(machine_id(bn_json_root(d[0]), ma, sizeof ma), machine_id(bn_json_root(d[1]), mb, sizeof mb)) == 0;
    leaves lo = {0}, ln = {0};
    walk(bn_json_root(d[0]), "", &lo);
    walk(bn_json_root(d[1]), "", &ln);
    int worse = 0, compared = 0;
    printf("{\"same_machine\":%s,\"tolerance_pct\":%g,\"regressions\":[", same ? "true" : "false", tol);
    for (size_t i = 0; i < ln.n; i++) {
        const char *p = ln.a[i].path;
        /* machine facts, the measured ceilings and the peer's own speed are
         * context, not our figures */
        if (strstr(p, "machine.") == p || strstr(p, "runs") || strstr(p, "config.") || strstr(p, "probes") == p ||
            strstr(p, "roofline_tok_s") || strstr(p, "read_gb_per_s") || strstr(p, ".peer.") || strstr(p, "_min") ||
            strstr(p, "_max"))
            continue;
        int ratio = ends_with(p, "_frac") || ends_with(p, "_ratio") || ends_with(p, "_x");
        if (!ratio && !same) continue;
        int rate = strstr(p, "tok_s") || strstr(p, "per_s");
        int lower_better = !rate && (ends_with(p, "_ms") || ends_with(p, "_ns") || ends_with(p, "_s") || strstr(p, "rss"));
        if (!ratio && !lower_better && !rate) continue;
        for (size_t j = 0; j < lo.n; j++) {
            if (strcmp(lo.a[j].path, p) != 0) continue;
            double o = lo.a[j].v, nv = ln.a[i].v;
            if (!(fabs(o) > 0)) break;
            compared++;
            double change = (nv - o) / fabs(o) * 100.0;
            if ((lower_better && change > tol) || (!lower_better && change < -tol)) {
                printf("%s{\"figure\":\"%s\",\"old\":%g,\"new\":%g,\"change_pct\":%.2f}", worse ? "," : "", p, o, nv, change);
                worse++;
            }
            break;
        }
    }
    printf("],\"compared\":%d,\"regressed\":%d}\n", compared, worse);
    bn_json_free(d[0]);
    bn_json_free(d[1]);
    free(lo.a);
    free(ln.a);
    return worse ? 1 : 0;
}
