/* logt-compare - compare two logits files (LOGT, or headerless float32 with
 * --raw-b): per row max |diff|, mean |diff|, Pearson correlation and argmax;
 * JSON on stdout. Optional bounds make it a test: exit 1 when one fails.
 *
 *   logt-compare [options] A.logits B.logits   (B is the reference) */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "logt.h"

static const char *tool = "logt-compare";

static void usage(FILE *f) {
    fprintf(f,
            "usage: logt-compare [options] A B\n"
            "  --raw-b N         B is headerless float32 rows of N values\n"
            "  --a-row I         first row of A to compare (default 0)\n"
            "  --b-row I         first row of B to compare (default 0)\n"
            "  --rows N          rows to compare (default: all that both have)\n"
            "  --max-abs X       every row: max |diff| <= X\n"
            "  --row-max-abs X   alias of --max-abs\n"
            "  --frac X:F        at least fraction F of rows have max |diff| <= X\n"
            "  --mean-abs X      mean |diff| over all values <= X\n"
            "  --min-pearson P   every row: Pearson >= P\n"
            "  --argmax-margin M rows where B's top-1 leads top-2 by > M: same argmax\n"
            "  --argmax-all      every row: same argmax\n"
            "  --quiet           no per-row array in the JSON\n");
}

/* argmax (ties -> lowest id) and the lead of top-1 over top-2 */
static void top2(const float *v, uint32_t n, uint32_t *arg, double *margin) {
    uint32_t a = 0;
    for (uint32_t i = 1; i < n; i++) if (v[i] > v[a]) a = i;
    double second = -INFINITY;
    for (uint32_t i = 0; i < n; i++) if (i != a && v[i] > second) second = v[i];
    *arg = a;
    *margin = n > 1 ? (double)v[a] - second : INFINITY;
}

/* Pearson correlation in double. */
static double pearson(const float *x, const float *y, uint32_t n) {
    double mx = 0, my = 0;
    for (uint32_t i = 0; i < n; i++) { mx += x[i]; my += y[i]; }
    mx /= n; my /= n;
    double sxy = 0, sxx = 0, syy = 0;
    for (uint32_t i = 0; i < n; i++) {
        double dx = x[i] - mx, dy = y[i] - my;
        sxy += dx * dy; sxx += dx * dx; syy += dy * dy;
    }
    if (sxx == 0 || syy == 0) return (sxx == syy) ? 1.0 : 0.0;
    return sxy / sqrt(sxx * syy);
}

int main(int argc, char **argv) {
    long raw_b = 0, a_row = 0, b_row = 0, rows = -1;
    double max_abs = -1, mean_abs = -1, min_p = -2, margin = -1, frac_x = -1, frac_f = 0;
    int argmax_all = 0, quiet = 0;
    enum { O_RAWB = 256, O_AROW, O_BROW, O_ROWS, O_MAXABS, O_FRAC, O_MEAN, O_PEAR, O_MARGIN, O_ALL, O_QUIET, O_VER };
    static const struct option lo[] = {
        {"raw-b", 1, 0, O_RAWB}, {"a-row", 1, 0, O_AROW}, {"b-row", 1, 0, O_BROW}, {"rows", 1, 0, O_ROWS},
        {"max-abs", 1, 0, O_MAXABS}, {"row-max-abs", 1, 0, O_MAXABS}, {"frac", 1, 0, O_FRAC},
        {"mean-abs", 1, 0, O_MEAN}, {"min-pearson", 1, 0, O_PEAR}, {"argmax-margin", 1, 0, O_MARGIN},
        {"argmax-all", 0, 0, O_ALL}, {"quiet", 0, 0, O_QUIET}, {"help", 0, 0, 'h'}, {"version", 0, 0, O_VER},
        {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        float fv;
        switch (c) {
        case O_RAWB: if (!bn_parse_long(optarg, 1, 1L << 30, &raw_b)) goto bad; break;
        case O_AROW: if (!bn_parse_long(optarg, 0, 1L << 30, &a_row)) goto bad; break;
        case O_BROW: if (!bn_parse_long(optarg, 0, 1L << 30, &b_row)) goto bad; break;
        case O_ROWS: if (!bn_parse_long(optarg, 0, 1L << 30, &rows)) goto bad; break;
        case O_MAXABS: if (!bn_parse_float(optarg, &fv)) goto bad; max_abs = fv; break;
        case O_MEAN: if (!bn_parse_float(optarg, &fv)) goto bad; mean_abs = fv; break;
        case O_PEAR: if (!bn_parse_float(optarg, &fv)) goto bad; min_p = fv; break;
        case O_MARGIN: if (!bn_parse_float(optarg, &fv)) goto bad; margin = fv; break;
        case O_FRAC: if (sscanf(optarg, "%lf:%lf", &frac_x, &frac_f) != 2) goto bad; break;
        case O_ALL: argmax_all = 1; break;
        case O_QUIET: quiet = 1; break;
        case 'h': usage(stdout); return 0;
        case O_VER: bn_print_version(tool, stdout); return 0;
        default: goto bad;
        }
    }
    if (argc - optind != 2) goto bad;

    bn_err e;
    bn_logt A, B;
    if (bn_logt_read(&A, argv[optind], &e) < 0) bn_die_err(tool, &e);
    if ((raw_b ? bn_logt_read_raw(&B, argv[optind + 1], (uint32_t)raw_b, &e) : bn_logt_read(&B, argv[optind + 1], &e)) < 0)
        bn_die_err(tool, &e);
    if (A.n_vocab != B.n_vocab) bn_die(tool, 1, "n_vocab differs: %u vs %u", A.n_vocab, B.n_vocab);
    if (a_row > (long)A.n_rows || b_row > (long)B.n_rows) bn_die(tool, 1, "start row past the end");
    long avail = (long)A.n_rows - a_row < (long)B.n_rows - b_row ? (long)A.n_rows - a_row : (long)B.n_rows - b_row;
    if (rows < 0) rows = avail;
    if (rows > avail) bn_die(tool, 1, "--rows %ld: only %ld rows available", rows, avail);
    if (rows == 0) bn_die(tool, 1, "no rows to compare");

    uint32_t V = A.n_vocab;
    double g_max = 0, g_sum = 0, g_minp = 2;
    long n_agree = 0, n_dec = 0, n_dec_agree = 0, n_within = 0, n_nonfinite = 0;
    int ok = 1;
    printf("{\"a\":\"%s\",\"b\":\"%s\",\"rows\":%ld,\"n_vocab\":%u", argv[optind], argv[optind + 1], rows, V);
    if (!quiet) printf(",\"per_row\":[");
    for (long r = 0; r < rows; r++) {
        const float *x = A.data + (size_t)(a_row + r) * V, *y = B.data + (size_t)(b_row + r) * V;
        double m = 0, s = 0;
        for (uint32_t i = 0; i < V; i++) {
            double d = fabs((double)x[i] - (double)y[i]);
            if (!isfinite(d)) { n_nonfinite++; d = INFINITY; }
            if (d > m) m = d;
            s += d;
        }
        double p = pearson(x, y, V), mb;
        uint32_t ax, ay;
        top2(x, V, &ax, &mb);
        top2(y, V, &ay, &mb);
        g_max = m > g_max ? m : g_max;
        g_sum += s;
        g_minp = p < g_minp ? p : g_minp;
        n_agree += ax == ay;
        if (frac_x >= 0 && m <= frac_x) n_within++;
        if (margin >= 0 && mb > margin) { n_dec++; n_dec_agree += ax == ay; }
        if (!quiet)
            printf("%s{\"row\":%ld,\"max_abs\":%.6g,\"mean_abs\":%.6g,\"pearson\":%.8f,\"argmax_a\":%u,\"argmax_b\":%u,\"margin_b\":%.4g}",
                   r ? "," : "", r, m, s / V, p, ax, ay, mb);
    }
    if (!quiet) printf("]");
    double g_mean = g_sum / ((double)rows * V);
    printf(",\"max_abs\":%.6g,\"mean_abs\":%.6g,\"min_pearson\":%.8f,\"argmax_agree\":%ld", g_max, g_mean, g_minp, n_agree);
    if (frac_x >= 0) printf(",\"frac_within\":%.4f", (double)n_within / rows);
    if (margin >= 0) printf(",\"decisive_rows\":%ld,\"decisive_agree\":%ld", n_dec, n_dec_agree);

    char why[512] = "";
    size_t wl = 0;
#define FAIL(...) do { ok = 0; if (wl < sizeof why) wl += (size_t)snprintf(why + wl, sizeof why - wl, __VA_ARGS__); } while (0)
    if (n_nonfinite) FAIL(" non-finite values: %ld;", n_nonfinite);
    if (max_abs >= 0 && !(g_max <= max_abs)) FAIL(" max_abs %.4g > %.4g;", g_max, max_abs);
    if (mean_abs >= 0 && !(g_mean <= mean_abs)) FAIL(" mean_abs %.4g > %.4g;", g_mean, mean_abs);
    if (min_p > -2 && !(g_minp >= min_p)) FAIL(" min_pearson %.6f < %.6f;", g_minp, min_p);
    if (frac_x >= 0 && (double)n_within / rows < frac_f) FAIL(" rows within %.3g: %ld/%ld < %.3g;", frac_x, n_within, rows, frac_f);
    if (margin >= 0 && n_dec_agree != n_dec) FAIL(" argmax differs on %ld decisive rows;", n_dec - n_dec_agree);
    if (argmax_all && n_agree != rows) FAIL(" argmax differs on %ld rows;", rows - n_agree);
    printf(",\"ok\":%s}\n", ok ? "true" : "false");
    if (!ok) fprintf(stderr, "%s: FAIL:%s\n", tool, why);
    bn_logt_free(&A);
    bn_logt_free(&B);
    if (bn_close_stdout(tool) != 0) return 1;
    return ok ? 0 : 1;
bad:
    usage(stderr);
    return 2;
}
