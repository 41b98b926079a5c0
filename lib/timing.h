/* timing.h - where the time goes, per stage: monotonic timers, accumulated
 * (stage, event) totals, TIMING frames in and out, a human summary in the
 * llama.cpp style, an Ollama-style JSON summary (nanoseconds), and a Chrome
 * trace-event writer (chrome://tracing, https://ui.perfetto.dev).
 *
 * Event names all stages agree on (docs/PROTOCOL.md, "Timing events"):
 *   bn-tokenize  tokenize (count = tokens)
 *   bn-forward   load, prefill (count = prompt tokens), decode (count = 1 per step)
 *   bn-sample    sample (count = tokens sampled)
 *   bn-detok     detok (count = tokens)
 *   any stage    wait (blocked on input), codec (frame encode/decode) */
#ifndef BN_TIMING_H
#define BN_TIMING_H

#include <stdint.h>
#include <stdbool.h>
#include "frame.h"
#include "util.h"

#define BN_TIMING_MAX 64 /* distinct (stage, event) pairs kept */

typedef struct bn_timing_entry {
    char stage[32];
    char event[32];
    uint64_t ns;       /* total duration */
    uint64_t count;    /* total items (tokens) */
    uint64_t n;        /* how many records were merged */
    uint64_t first_ns; /* earliest t_start_ns seen (0 = unknown) */
    uint64_t last_ns;  /* latest t_start_ns + ns seen */
} bn_timing_entry;

typedef struct bn_timing {
    bn_timing_entry e[BN_TIMING_MAX];
    size_t n;
    uint64_t dropped;  /* records that found no free slot */
} bn_timing;

void bn_timing_init(bn_timing *t);

/* Accumulate one record; t_start_ns 0 if unknown. */
void bn_timing_add(bn_timing *t, const char *stage, const char *event, uint64_t ns, uint64_t count, uint64_t t_start_ns);
/* Stage timer: t0 = bn_now_ns() before the work, then this adds
 * (now - t0) with t0 as start; returns the duration in ns. */
uint64_t bn_timing_since(bn_timing *t, const char *stage, const char *event, uint64_t t0, uint64_t count);
/* Accumulate a TIMING frame (other kinds are ignored; returns 1 if used). */
int bn_timing_add_frame(bn_timing *t, const bn_frame *f);
/* Totals of an event: for one stage, or summed over all stages (stage NULL). */
bn_timing_entry bn_timing_get(const bn_timing *t, const char *stage, const char *event);

/* Human summary, one line per event (malloc'd), e.g.
 *   prefill     123.45 ms /   12 tokens (  10.29 ms/token,   97.21 tok/s)
 * total_ns 0: the wall span covered by the records (same-host monotonic
 * clock), or the sum of the events if no start times are known. */
char *bn_timing_summary_text(const bn_timing *t, uint64_t total_ns);
/* JSON object with Ollama's names in nanoseconds: total_duration,
 * load_duration, prompt_eval_count, prompt_eval_duration, eval_count,
 * eval_duration, plus tokenize/sample/detok durations and "stages":
 * {"bn-forward":{"decode":{"ns":..,"count":..,"n":..},...},...}. */
char *bn_timing_summary_json(const bn_timing *t, uint64_t total_ns);

/* Emit every accumulated entry of `stage` as TIMING frames through a
 * callback (a stage sends its wait/codec totals at the end). */
typedef int (*bn_timing_emit_fn)(void *ud, const bn_frame *f, bn_err *e);
int bn_timing_emit(const bn_timing *t, const char *stage, bn_timing_emit_fn fn, void *ud, bn_err *e);

/* Chrome trace-event JSON ("X" complete events, microseconds). Written to
 * PATH.tmp.PID and renamed on close; one thread lane per stage. */
typedef struct bn_trace bn_trace;
int bn_trace_open(bn_trace **out, const char *path, bn_err *e);
void bn_trace_event(bn_trace *tr, const char *stage, const char *event, uint64_t t_start_ns, uint64_t ns, uint64_t count);
/* A TIMING frame as a trace event (needs t_start_ns; returns 1 if written). */
int bn_trace_frame(bn_trace *tr, const bn_frame *f);
/* Finish the JSON and rename into place; 0 ok, -1 on a write error. */
int bn_trace_close(bn_trace *tr, bn_err *e);

#endif
