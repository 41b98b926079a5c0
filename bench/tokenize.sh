#!/usr/bin/env bash
# bench/tokenize.sh - tokenizer throughput (MB/s) on KJV text (eval.txt plus
# train_sample.txt, tokenized line by line with BOS) for each vocabulary, next
# to the python sentencepiece module on the kjv tokenizer.model in the same
# run. Prints one JSON object. Needs `make` (build/tests/tokvec) and
# ../shared (SHARED=... or BN_SHARED=...). REPS=N (default 5): best of N.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
shared=${BN_SHARED:-${SHARED:-$root/../shared}}
tokvec=${BN_TESTBIN:-$root/build/tests}/tokvec
reps=${REPS:-5}
kjv=$shared/models/kjv-bitnet-tiny
[ -x "$tokvec" ] || { echo "bench/tokenize.sh: $tokvec not built (run make)" >&2; exit 1; }
[ -f "$kjv/eval.txt" ] || { echo "bench/tokenize.sh: $kjv/eval.txt not found (set BN_SHARED)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat "$kjv/eval.txt" "$kjv/train_sample.txt" > "$tmp/kjv.txt"

models=("$kjv/tokenizer.model" "$root/tests/data/tokenizer/ggml-vocab-llama-spm.gguf"
        "$root/tests/data/tokenizer/ggml-vocab-gpt-2.gguf" "$shared/tokenizer/ggml-vocab-llama-bpe.gguf"
        "$shared/tokenizer/bitnet-b1.58-2B-4T.vocab.gguf")
rows=()
for m in "${models[@]}"; do
    [ -f "$m" ] || continue
    rows+=("$("$tokvec" bench "$m" "$tmp/kjv.txt" "$reps")")
done
if /usr/bin/python3 -c 'import sentencepiece' 2>/dev/null; then
    rows+=("$(/usr/bin/python3 "$root/bench/tokenize_sp.py" "$kjv/tokenizer.model" "$tmp/kjv.txt" "$reps")")
fi
printf '{"bench":"tokenize","text_bytes":%s,"reps":%s,"cpu":"%s","results":[\n' \
    "$(wc -c < "$tmp/kjv.txt")" "$reps" "$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //; s/"//g')"
n=${#rows[@]}
for i in "${!rows[@]}"; do
    sep=","; [ "$i" -eq $((n - 1)) ] && sep=""
    printf '  %s%s\n' "${rows[$i]}" "$sep"
done
printf ']}\n'
