#!/usr/bin/env bash
# demo.sh - `make demo`: generate Bible-like text with the shipped tiny KJV
# BitNet model through the four-stage pipeline, then the timing summary.
#   pipelines/demo.sh [-p PROMPT] [-n N] [--seed S] [extra bn-sample flags]
set -o pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
model=${BN_DEMO_MODEL:-$root/models/kjv-bitnet-tiny-i2_s.gguf}
prompt="In the beginning God created the heaven and the earth. And the earth was"
n=120 seed=1
extra=()
while [ $# -gt 0 ]; do
    case $1 in
    -p) prompt=$2; shift 2 ;;
    -n) n=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    -h|--help) echo "usage: demo.sh [-p PROMPT] [-n N] [--seed S] [bn-sample flags]"; exit 0 ;;
    *) extra+=("$1"); shift ;;
    esac
done
if [ ! -f "$model" ]; then
    echo "demo.sh: $model is missing; build it with bn-quantize (see models/README.md)" >&2
    exit 1
fi
echo "== $(basename "$model"): \"$prompt\" (seed $seed, $n tokens)" >&2
err=$(mktemp)
trap 'rm -f "$err"' EXIT
# the text streams to stdout; the timing summary (stderr) follows it on its own lines
"$here/generate.sh" -m "$model" -p "$prompt" -n "$n" --seed "$seed" --temp 0.8 \
    --repeat-penalty 1.1 --timing "${extra[@]}" 2>"$err"
rc=$?
echo
echo >&2
cat "$err" >&2
exit $rc
