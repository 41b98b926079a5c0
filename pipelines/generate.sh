#!/usr/bin/env bash
# generate.sh - text generation with the four-stage pipeline
#   bn-tokenize | bn-forward | bn-sample | bn-detok
# with one set of flags. Sampling flags not listed here go to bn-sample as-is.
#
#   pipelines/generate.sh -m MODEL -p PROMPT [-n N] [--temp T] [--seed S] [-t THREADS]
#                         [-c CTX] [--greedy] [--top-k K] [--top-p P] [--min-p P] ...
set -o pipefail
me=generate.sh
usage() {
    cat <<USAGE
usage: $me -m MODEL (-p PROMPT | -f FILE) [options]
  -m, --model FILE     GGUF model (vocabulary and weights)
  -p, --prompt TEXT    prompt text
  -f, --file FILE      prompt from a file
  -n, --predict N      tokens to generate (default 128, -1 = until end of generation)
  -t, --threads N      bn-forward threads
  -c, --ctx-size N     bn-forward context size
      --temp T, --seed S, --greedy, --top-k K, --top-p P, --min-p P, --repeat-penalty F,
      --stop S, --logit-bias ID+B, ...   passed to bn-sample (see bn-sample --help)
      --timing         print the timing summary (bn-detok) on stderr
  -h, --help
USAGE
}
here=$(cd "$(dirname "$0")" && pwd)
# find the tools: $BN_BIN, then ../bin next to this script, then PATH
for d in "${BN_BIN:-}" "$here/../bin"; do
    [ -n "$d" ] && [ -x "$d/bn-sample" ] && { PATH="$d:$PATH"; break; }
done
model= prompt= prompt_file= n=128 threads= ctx= timing=
sample=()
while [ $# -gt 0 ]; do
    case $1 in
    -m|--model) model=$2; shift 2 ;;
    -p|--prompt) prompt=$2; shift 2 ;;
    -f|--file) prompt_file=$2; shift 2 ;;
    -n|--predict) n=$2; shift 2 ;;
    -t|--threads) threads=$2; shift 2 ;;
    -c|--ctx-size) ctx=$2; shift 2 ;;
    --timing) timing=1; shift ;;
    -h|--help) usage; exit 0 ;;
    --greedy|--no-feedback|-q|--quiet) sample+=("$1"); shift ;;
    -*) [ $# -ge 2 ] || { echo "$me: $1 needs a value" >&2; exit 2; }
        sample+=("$1" "$2"); shift 2 ;;
    *) echo "$me: unexpected argument '$1'" >&2; usage >&2; exit 2 ;;
    esac
done
[ -n "$model" ] || { echo "$me: -m MODEL is required" >&2; exit 2; }
[ -f "$model" ] || { echo "$me: $model: no such file" >&2; exit 1; }
if [ -n "$prompt_file" ]; then
    [ -f "$prompt_file" ] || { echo "$me: $prompt_file: no such file" >&2; exit 1; }
    prompt=$(cat "$prompt_file")
fi
[ -n "$prompt" ] || { echo "$me: a prompt is required (-p or -f)" >&2; exit 2; }

fwd=(-m "$model")
[ -n "$threads" ] && fwd+=(-t "$threads")
[ -n "$ctx" ] && fwd+=(-c "$ctx")
det=(-m "$model")
[ -n "$timing" ] || det+=(-q) # bn-detok prints the timing summary unless quiet
# stop strings need the vocabulary in bn-sample too
for a in "${sample[@]}"; do [ "$a" = --stop ] && { sample+=(-m "$model"); break; }; done

bn-tokenize -m "$model" -p "$prompt" \
    | bn-forward "${fwd[@]}" \
    | bn-sample -n "$n" "${sample[@]}" \
    | bn-detok "${det[@]}"
