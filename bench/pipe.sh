#!/usr/bin/env bash
# bench/pipe.sh - decode speed of the 4-process pipeline (feedback loop)
# against bn-forward's in-process --greedy on the same model, in the same run.
#
#   bench/pipe.sh [-m MODEL] [-t THREADS] [-r REPEATS] [--short N] [--long N] [--out FILE]
#
# Both variants generate greedily (EOG banned, so both make exactly N tokens)
# and end in bn-detok. Wall time is measured for N = short and N = long; the
# difference cancels load, prefill and process start-up, so
#   decode tok/s = (long - short) / (min T_long - min T_short)
# (the minimum over repeats: the run least disturbed by other processes;
# medians are reported too).
# Prints one JSON object (stdout, or --out FILE).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
for d in "${BN_BIN:-}" "$root/bin"; do
    [ -n "$d" ] && [ -x "$d/bn-sample" ] && { PATH="$d:$PATH"; break; }
done
model=$root/models/kjv-bitnet-tiny-i2_s.gguf threads= reps=9 short=16 long=208 out=
prompt="In the beginning God created the heaven and the earth."
while [ $# -gt 0 ]; do
    case $1 in
    -m) model=$2; shift 2 ;;
    -t) threads=$2; shift 2 ;;
    -r) reps=$2; shift 2 ;;
    --short) short=$2; shift 2 ;;
    --long) long=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h|--help) sed -n 2,12p "$0"; exit 0 ;;
    *) echo "pipe.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
[ -f "$model" ] || { echo "pipe.sh: $model: no such file" >&2; exit 1; }
[ "$long" -gt "$short" ] || { echo "pipe.sh: --long must exceed --short" >&2; exit 2; }
fwd=(-m "$model")
[ -n "$threads" ] && fwd+=(-t "$threads")
# the end-of-generation ids, banned so both variants produce exactly N tokens
eos=$(bn-gguf meta "$model" 2>/dev/null | awk '/tokenizer.ggml.eos_token_id/ { print $NF; exit }')
eos=${eos:-2}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
bn-tokenize -m "$model" -p "$prompt" > "$tmp/prompt"

now() { date +%s%N; }
# one timed run of a variant for n tokens, in ms
run_inproc() {
    local t0 t1
    t0=$(now)
    bn-forward "${fwd[@]}" --greedy "$1" < "$tmp/prompt" | bn-detok -m "$model" -q > "$tmp/in.txt"
    t1=$(now)
    echo $(( (t1 - t0) / 1000 ))
}
run_pipe() {
    local t0 t1
    t0=$(now)
    bn-forward "${fwd[@]}" < "$tmp/prompt" | bn-sample -q --greedy -n "$1" --logit-bias "$eos-inf" \
        | bn-detok -m "$model" -q > "$tmp/pipe.txt"
    t1=$(now)
    echo $(( (t1 - t0) / 1000 ))
}
minimum() { sort -n | head -1; }
median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

# warm-up (page cache, CPU frequency), then interleaved repeats
run_inproc "$short" > /dev/null; run_pipe "$short" > /dev/null
for v in inproc pipe; do for n in short long; do : > "$tmp/$v.$n"; done; done
for i in $(seq "$reps"); do
    for v in inproc pipe; do
        run_$v "$short" >> "$tmp/$v.short"
        run_$v "$long" >> "$tmp/$v.long"
    done
done
ms() { minimum < "$tmp/$1"; }
md() { median < "$tmp/$1"; }
i_s=$(ms inproc.short) i_l=$(ms inproc.long) p_s=$(ms pipe.short) p_l=$(ms pipe.long)
mi_s=$(md inproc.short) mi_l=$(md inproc.long) mp_s=$(md pipe.short) mp_l=$(md pipe.long)
# the same text both ways (greedy, EOG banned): the loop changes speed, not tokens
same=$(cmp -s "$tmp/in.txt" "$tmp/pipe.txt" && echo true || echo false)
json=$(awk -v m="$model" -v t="${threads:-default}" -v r="$reps" -v s="$short" -v l="$long" \
    -v is="$i_s" -v il="$i_l" -v ps="$p_s" -v pl="$p_l" -v same="$same" \
    -v mis="$mi_s" -v mil="$mi_l" -v mps="$mp_s" -v mpl="$mp_l" 'BEGIN {
    n = l - s; ti = (il - is) / 1e6; tp = (pl - ps) / 1e6
    ri = n / ti; rp = n / tp; ratio = rp / ri
    printf "{\"bench\":\"pipe\",\"model\":\"%s\",\"threads\":\"%s\",\"repeats\":%d,\"tokens_short\":%d,\"tokens_long\":%d,", m, t, r, s, l
    printf "\"inprocess_min_ms\":{\"short\":%.3f,\"long\":%.3f},\"pipeline_min_ms\":{\"short\":%.3f,\"long\":%.3f},", is / 1000, il / 1000, ps / 1000, pl / 1000
    printf "\"inprocess_decode_tok_s\":%.2f,\"pipeline_decode_tok_s\":%.2f,\"pipeline_vs_inprocess\":%.4f,", ri, rp, ratio
    printf "\"median_inprocess_decode_tok_s\":%.2f,\"median_pipeline_decode_tok_s\":%.2f,", n / ((mil - mis) / 1e6), n / ((mpl - mps) / 1e6)
    printf "\"within_3pct\":%s,\"same_text\":%s}\n", (ratio >= 0.97 ? "true" : "false"), same }')
if [ -n "$out" ]; then printf '%s\n' "$json" > "$out.tmp.$$" && mv "$out.tmp.$$" "$out"; else printf '%s\n' "$json"; fi
