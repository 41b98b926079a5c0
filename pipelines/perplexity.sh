#!/bin/bash
# perplexity.sh - perplexity of a model on a text, computed like llama-perplexity:
#   bn-tokenize | bn-ppl --split | bn-forward --scores | bn-ppl
# Chunks of CTX tokens start from position 0 on an empty KV cache (one tokens
# frame at position 0 each), BOS replaces their first token, the second half
# of each chunk is scored. --window-mode kjv follows the kjv-bitnet-tiny
# reference instead: BOS+encode(line)+EOS per line, windows of CTX, every token
# but the first of each window scored. --kl-save/--kl-base switch bn-forward to
# whole logits rows (--logits all) for KL divergence and top-1 agreement.
set -eu
me=perplexity.sh
usage() {
    cat <<USAGE
usage: $me -m MODEL -f TEXT [-c CTX] [-b BATCH] [-t THREADS] [--json] [--chunks N]
          [--window-mode llama|kjv] [--kl-save FILE | --kl-base FILE] [--ffn-act relu2|silu] [--kv f16|f32] [--head q8_0|q6_k]
  -m MODEL        GGUF model (also the tokenizer)
  -f TEXT         text file
  -c CTX          chunk size (default 512; kjv: window size)
  -b BATCH        bn-forward batch (default: CTX up to 512, as llama-perplexity evaluates a
                  chunk in one batch; the batch size can change the float order)
  -t THREADS      threads (default: bn-forward's)
  --json          last line is a JSON object (ppl, ppl_stderr, chunks, tokens_scored, ...)
  --chunks N      at most N chunks
  --window-mode M llama (default) or kjv (see above)
  --kl-save FILE  save the scored rows' log-probs of this (base) model
  --kl-base FILE  compare with a saved base: KL divergence, same top p
  --ffn-act A     bn-forward's FFN activation override
  --kv T          KV cache type
  --head T        requantize the f16 output head at load (bn-forward --head)
USAGE
}
dir=$(cd "$(dirname "$0")" && pwd)
BN_BIN=${BN_BIN:-}
if [ -z "$BN_BIN" ]; then
    if [ -x "$dir/../bin/bn-ppl" ]; then BN_BIN=$dir/../bin; else BN_BIN=$(dirname "$(command -v bn-ppl || echo /usr/local/bin/bn-ppl)"); fi
fi
model= text= ctx=512 batch= threads= json= chunks= mode=llama kls= klb= act= kv= head=
while [ $# -gt 0 ]; do
    case $1 in
    -m|--model) model=${2:?}; shift 2 ;;
    -f|--file) text=${2:?}; shift 2 ;;
    -c|--ctx) ctx=${2:?}; shift 2 ;;
    -b|--batch) batch=${2:?}; shift 2 ;;
    -t|--threads) threads=${2:?}; shift 2 ;;
    --json) json=--json; shift ;;
    --chunks) chunks=${2:?}; shift 2 ;;
    --window-mode) mode=${2:?}; shift 2 ;;
    --kl-save) kls=${2:?}; shift 2 ;;
    --kl-base) klb=${2:?}; shift 2 ;;
    --ffn-act) act=${2:?}; shift 2 ;;
    --kv) kv=${2:?}; shift 2 ;;
    --head) head=${2:?}; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "$me: unknown option: $1" >&2; usage >&2; exit 2 ;;
    esac
done
[ -n "$model" ] && [ -n "$text" ] || { echo "$me: -m MODEL and -f TEXT are required" >&2; usage >&2; exit 2; }
case $ctx in ''|*[!0-9]*) echo "$me: -c: $ctx: expected a number" >&2; exit 2 ;; esac
[ -n "$batch" ] || { batch=$ctx; [ "$batch" -le 512 ] || batch=512; }
case $batch in ''|*[!0-9]*|0) echo "$me: -b: $batch: expected a positive number" >&2; exit 2 ;; esac
case $mode in llama|kjv) ;; *) echo "$me: --window-mode: $mode: expected llama or kjv" >&2; exit 2 ;; esac
[ -r "$text" ] || { echo "$me: $text: cannot read" >&2; exit 1; }
[ -r "$model" ] || { echo "$me: $model: cannot read" >&2; exit 1; }
[ "$batch" -le "$ctx" ] || batch=$ctx

set -- -m "$model" -c "$ctx" -b "$batch"
[ -n "$threads" ] && set -- "$@" -t "$threads"
[ -n "$act" ] && set -- "$@" --ffn-act "$act"
[ -n "$kv" ] && set -- "$@" --kv "$kv"
[ -n "$head" ] && set -- "$@" --head "$head"
if [ -n "$kls$klb" ]; then set -- "$@" --logits all --no-feedback; else set -- "$@" --scores; fi
split=(--split -c "$ctx" --window-mode "$mode")
[ -n "$chunks" ] && split+=(--chunks "$chunks")
score=(--window-mode "$mode")
[ -n "$json" ] && score+=(--json)
[ -n "$kls" ] && score+=(--kl-save "$kls")
[ -n "$klb" ] && score+=(--kl-base "$klb")

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
# Each stage's status is kept: a pipeline's own status is only the last one's.
if [ "$mode" = kjv ]; then
    eos=$("$BN_BIN/bn-gguf" meta "$model" tokenizer.ggml.eos_token_id) || { echo "$me: $model: no EOS id" >&2; exit 1; }
    # [BOS] + encode(line) + [EOS] per line (bn-tokenize adds the BOS)
    while IFS= read -r line || [ -n "$line" ]; do
        "$BN_BIN/bn-tokenize" -m "$model" -p "$line" --ids || exit 1
        echo " $eos"
    done <"$text" >"$tmp/ids" || { echo "$me: tokenizing $text failed" >&2; exit 1; }
    { "$BN_BIN/bn-ppl" "${split[@]}" --ids <"$tmp/ids" || echo $? >"$tmp/rc1"; } |
        { "$BN_BIN/bn-forward" "$@" || echo $? >"$tmp/rc2"; } |
        { "$BN_BIN/bn-ppl" "${score[@]}" || echo $? >"$tmp/rc3"; }
else
    { "$BN_BIN/bn-tokenize" -m "$model" -f "$text" || echo $? >"$tmp/rc0"; } |
        { "$BN_BIN/bn-ppl" "${split[@]}" || echo $? >"$tmp/rc1"; } |
        { "$BN_BIN/bn-forward" "$@" || echo $? >"$tmp/rc2"; } |
        { "$BN_BIN/bn-ppl" "${score[@]}" || echo $? >"$tmp/rc3"; }
fi
for s in 0 1 2 3; do
    if [ -f "$tmp/rc$s" ]; then exit 1; fi
done
exit 0
