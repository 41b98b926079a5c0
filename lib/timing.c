/* timing.c - per-stage time accounting, summaries and Chrome traces. */
#include "timing.h"
#include "outfile.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void bn_timing_init(bn_timing *t) { memset(t, 0, sizeof *t); }

static void copy_name(char *dst, size_t cap, const char *src) {
    snprintf(dst, cap, "%s", src ? src : "");
}

/* Merge into the (stage, event) slot, creating it if there is room. */
void bn_timing_add(bn_timing *t, const char *stage, const char *event, uint64_t ns, uint64_t count, uint64_t t_start_ns) {
    bn_timing_entry *x = NULL;
    for (size_t i = 0; i < t->n; i++)
        if (!strcmp(t->e[i].stage, stage ? stage : "") && !strcmp(t->e[i].event, event ? event : "")) { x = &t->e[i]; break; }
    if (!x) {
        if (t->n == BN_TIMING_MAX) { t->dropped++; return; }
        x = &t->e[t->n++];
        memset(x, 0, sizeof *x);
        copy_name(x->stage, sizeof x->stage, stage);
        copy_name(x->event, sizeof x->event, event);
    }
    x->ns += ns;
    x->count += count;
    x->n++;
    if (t_start_ns) {
        if (!x->first_ns || t_start_ns < x->first_ns) x->first_ns = t_start_ns;
        if (t_start_ns + ns > x->last_ns) x->last_ns = t_start_ns + ns;
    }
}

uint64_t bn_timing_since(bn_timing *t, const char *stage, const char *event, uint64_t t0, uint64_t count) {
    uint64_t now = bn_now_ns(), ns = now > t0 ? now - t0 : 0;
    bn_timing_add(t, stage, event, ns, count, t0);
    return ns;
}

int bn_timing_add_frame(bn_timing *t, const bn_frame *f) {
    if (f->kind != BN_FRAME_TIMING) return 0;
    bn_timing_add(t, f->stage, f->event, f->ns, f->count, f->t_start_ns);
    return 1;
}

bn_timing_entry bn_timing_get(const bn_timing *t, const char *stage, const char *event) {
    bn_timing_entry r;
    memset(&r, 0, sizeof r);
    copy_name(r.stage, sizeof r.stage, stage);
    copy_name(r.event, sizeof r.event, event);
    for (size_t i = 0; i < t->n; i++) {
        const bn_timing_entry *x = &t->e[i];
        if (strcmp(x->event, event) || (stage && strcmp(x->stage, stage))) continue;
        r.ns += x->ns;
        r.count += x->count;
        r.n += x->n;
        if (x->first_ns && (!r.first_ns || x->first_ns < r.first_ns)) r.first_ns = x->first_ns;
        if (x->last_ns > r.last_ns) r.last_ns = x->last_ns;
    }
    return r;
}

/* Wall span of everything with start times, else the sum of the main events. */
static uint64_t total_of(const bn_timing *t, uint64_t total_ns) {
    if (total_ns) return total_ns;
    uint64_t lo = 0, hi = 0, sum = 0;
    for (size_t i = 0; i < t->n; i++) {
        const bn_timing_entry *x = &t->e[i];
        if (x->first_ns && (!lo || x->first_ns < lo)) lo = x->first_ns;
        if (x->last_ns > hi) hi = x->last_ns;
        if (strcmp(x->event, "wait") && strcmp(x->event, "codec")) sum += x->ns;
    }
    return lo && hi > lo ? hi - lo : sum;
}

static const char *const main_events[] = {"tokenize", "load", "prefill", "decode", "sample", "detok"};

/* One llama.cpp-like line: "decode  2345.00 ms /  64 tokens (36.64 ms/token, 27.29 tok/s)". */
static void line(FILE *o, const char *label, uint64_t ns, uint64_t count, bool rate) {
    double ms = (double)ns / 1e6;
    fprintf(o, "%-10s %10.2f ms", label, ms);
    if (count) {
        fprintf(o, " / %6llu tokens (%8.3f ms/token", (unsigned long long)count, ms / (double)count);
        if (rate && ns) fprintf(o, ", %8.2f tok/s", (double)count * 1e9 / (double)ns);
        fputc(')', o);
    }
    fputc('\n', o);
}

char *bn_timing_summary_text(const bn_timing *t, uint64_t total_ns) {
    char *buf = NULL;
    size_t sz = 0;
    FILE *o = open_memstream(&buf, &sz);
    if (!o) return NULL;
    for (size_t k = 0; k < sizeof main_events / sizeof main_events[0]; k++) {
        bn_timing_entry x = bn_timing_get(t, NULL, main_events[k]);
        if (!x.n) continue;
        bool is_load = !strcmp(main_events[k], "load");
        line(o, main_events[k], x.ns, is_load ? 0 : x.count, !strcmp(main_events[k], "prefill") || !strcmp(main_events[k], "decode"));
    }
    /* per stage: time blocked on input and spent in the frame codec */
    for (int pass = 0; pass < 2; pass++) {
        const char *ev = pass ? "codec" : "wait";
        bool any = false;
        for (size_t i = 0; i < t->n; i++) {
            if (strcmp(t->e[i].event, ev)) continue;
            if (!any) fprintf(o, "%-10s", ev);
            fprintf(o, "%s %s %.2f ms", any ? "," : "", t->e[i].stage, (double)t->e[i].ns / 1e6);
            any = true;
        }
        if (any) fputc('\n', o);
    }
    line(o, "total", total_of(t, total_ns), 0, false);
    if (t->dropped) fprintf(o, "(%llu timing records dropped: more than %d kinds)\n", (unsigned long long)t->dropped, BN_TIMING_MAX);
    if (fclose(o) != 0) { free(buf); return NULL; }
    return buf;
}

char *bn_timing_summary_json(const bn_timing *t, uint64_t total_ns) {
    char *buf = NULL;
    size_t sz = 0;
    FILE *o = open_memstream(&buf, &sz);
    if (!o) return NULL;
    bn_timing_entry load = bn_timing_get(t, NULL, "load"), pre = bn_timing_get(t, NULL, "prefill"),
                    dec = bn_timing_get(t, NULL, "decode"), tok = bn_timing_get(t, NULL, "tokenize"),
                    smp = bn_timing_get(t, NULL, "sample"), det = bn_timing_get(t, NULL, "detok");
    fprintf(o, "{\"total_duration\":%llu,\"load_duration\":%llu,\"prompt_eval_count\":%llu,\"prompt_eval_duration\":%llu,"
               "\"eval_count\":%llu,\"eval_duration\":%llu,\"tokenize_count\":%llu,\"tokenize_duration\":%llu,"
               "\"sample_count\":%llu,\"sample_duration\":%llu,\"detok_count\":%llu,\"detok_duration\":%llu,\"stages\":{",
            (unsigned long long)total_of(t, total_ns), (unsigned long long)load.ns, (unsigned long long)pre.count,
            (unsigned long long)pre.ns, (unsigned long long)dec.count, (unsigned long long)dec.ns,
            (unsigned long long)tok.count, (unsigned long long)tok.ns, (unsigned long long)smp.count,
            (unsigned long long)smp.ns, (unsigned long long)det.count, (unsigned long long)det.ns);
    /* group by stage in first-seen order */
    bool first_stage = true;
    for (size_t i = 0; i < t->n; i++) {
        bool seen = false;
        for (size_t j = 0; j < i; j++) if (!strcmp(t->e[j].stage, t->e[i].stage)) { seen = true; break; }
        if (seen) continue;
        fprintf(o, "%s\"", first_stage ? "" : ",");
        for (const char *p = t->e[i].stage; *p; p++) {
            if (*p == '"' || *p == '\\') fputc('\\', o);
            if ((unsigned char)*p >= 0x20) fputc(*p, o);
        }
        fputs("\":{", o);
        first_stage = false;
        bool first_ev = true;
        for (size_t j = i; j < t->n; j++) {
            if (strcmp(t->e[j].stage, t->e[i].stage)) continue;
            fprintf(o, "%s\"", first_ev ? "" : ",");
            for (const char *p = t->e[j].event; *p; p++) {
                if (*p == '"' || *p == '\\') fputc('\\', o);
                if ((unsigned char)*p >= 0x20) fputc(*p, o);
            }
            fprintf(o, "\":{\"ns\":%llu,\"count\":%llu,\"n\":%llu}", (unsigned long long)t->e[j].ns,
                    (unsigned long long)t->e[j].count, (unsigned long long)t->e[j].n);
            first_ev = false;
        }
        fputc('}', o);
    }
    fputs("}}", o);
    if (fclose(o) != 0) { free(buf); return NULL; }
    return buf;
}

int bn_timing_emit(const bn_timing *t, const char *stage, bn_timing_emit_fn fn, void *ud, bn_err *e) {
    for (size_t i = 0; i < t->n; i++) {
        if (stage && strcmp(t->e[i].stage, stage)) continue;
        bn_frame f;
        bn_frame_timing(&f, t->e[i].stage, t->e[i].event, t->e[i].ns, t->e[i].count);
        f.t_start_ns = t->e[i].first_ns;
        if (fn(ud, &f, e) < 0) return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Chrome trace events                                                 */

struct bn_trace {
    bn_outfile out;
    FILE *f; /* = out.f */
    char lanes[16][32]; /* stage -> tid */
    int n_lanes;
    bool first;
    bool failed;
};

int bn_trace_open(bn_trace **out, const char *path, bn_err *e) {
    bn_trace *tr = bn_calloc(1, sizeof *tr, e);
    if (!tr) return -1;
    if (bn_outfile_open(&tr->out, path, e) < 0) { free(tr); return -1; }
    tr->f = tr->out.f;
    fputs("{\"displayTimeUnit\":\"ms\",\"traceEvents\":[", tr->f);
    tr->first = true;
    *out = tr;
    return 0;
}

/* One lane (tid) per stage, named with a metadata event the first time. */
static int lane(bn_trace *tr, const char *stage) {
    for (int i = 0; i < tr->n_lanes; i++) if (!strcmp(tr->lanes[i], stage)) return i + 1;
    if (tr->n_lanes == 16) return 16;
    copy_name(tr->lanes[tr->n_lanes], sizeof tr->lanes[0], stage);
    tr->n_lanes++;
    fprintf(tr->f, "%s{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":1,\"tid\":%d,\"args\":{\"name\":\"%s\"}}",
            tr->first ? "" : ",\n", tr->n_lanes, tr->lanes[tr->n_lanes - 1]);
    tr->first = false;
    return tr->n_lanes;
}

static bool plain_name(const char *s) {
    for (; *s; s++) if (*s == '"' || *s == '\\' || (unsigned char)*s < 0x20) return false;
    return true;
}

void bn_trace_event(bn_trace *tr, const char *stage, const char *event, uint64_t t_start_ns, uint64_t ns, uint64_t count) {
    if (!tr || !plain_name(stage) || !plain_name(event)) return;
    int tid = lane(tr, stage);
    fprintf(tr->f, "%s{\"name\":\"%s\",\"cat\":\"%s\",\"ph\":\"X\",\"pid\":1,\"tid\":%d,\"ts\":%.3f,\"dur\":%.3f,\"args\":{\"count\":%llu}}",
            tr->first ? "" : ",\n", event, stage, tid, (double)t_start_ns / 1e3, (double)ns / 1e3, (unsigned long long)count);
    tr->first = false;
}

int bn_trace_frame(bn_trace *tr, const bn_frame *f) {
    if (f->kind != BN_FRAME_TIMING || !f->t_start_ns) return 0;
    bn_trace_event(tr, f->stage, f->event, f->t_start_ns, f->ns, f->count);
    return 1;
}

int bn_trace_close(bn_trace *tr, bn_err *e) {
    if (!tr) return 0;
    fputs("]}\n", tr->f);
    int r = bn_outfile_commit(&tr->out, e);
    free(tr);
    return r;
}
