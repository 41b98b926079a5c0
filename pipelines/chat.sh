#!/usr/bin/env bash
# chat.sh - interactive chat with one bn-forward process (one KV cache) kept
# across turns:
#
#   bn-forward < FIFO | bn-sample --json EVENTS --hide-prompt | bn-detok
#
# Each line you type becomes `bn-tokenize --chat` frames written into the
# FIFO; bn-forward prefills them after what it already holds and the sampler
# answers through the feedback loop. bn-sample's per-generation "done" line
# (EVENTS) says when the answer is complete and where the next turn starts
# (n_past). Ctrl-D (or an empty stdin) ends the session cleanly.
#
#   pipelines/chat.sh -m MODEL [--system TEXT] [-n N] [--temp T] [--seed S] [-t THREADS] [bn-sample flags]
set -u
me=chat.sh
here=$(cd "$(dirname "$0")" && pwd)
for d in "${BN_BIN:-}" "$here/../bin"; do
    [ -n "$d" ] && [ -x "$d/bn-sample" ] && { PATH="$d:$PATH"; break; }
done
model= system= n=256 threads= template=
sample=()
while [ $# -gt 0 ]; do
    case $1 in
    -m|--model) model=$2; shift 2 ;;
    --system) system=$2; shift 2 ;;
    --chat-template) template=$2; shift 2 ;;
    -n|--predict) n=$2; shift 2 ;;
    -t|--threads) threads=$2; shift 2 ;;
    -h|--help) sed -n 2,14p "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    --greedy|-q|--quiet) sample+=("$1"); shift ;;
    -*) [ $# -ge 2 ] || { echo "$me: $1 needs a value" >&2; exit 2; }; sample+=("$1" "$2"); shift 2 ;;
    *) echo "$me: unexpected argument '$1'" >&2; exit 2 ;;
    esac
done
[ -n "$model" ] || { echo "$me: -m MODEL is required" >&2; exit 2; }
[ -f "$model" ] || { echo "$me: $model: no such file" >&2; exit 1; }

dir=$(mktemp -d)
chmod 700 "$dir"
pids=()
cleanup() {
    exec 3>&- 2>/dev/null
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mkfifo "$dir/in" "$dir/events"

# Follow-up turns must continue at the cache position: bn-tokenize --pos N
# does that. Without it every turn starts a fresh context (pos 0 resets).
has_pos=0
bn-tokenize --help 2>/dev/null | grep -q -- '--pos' && has_pos=1
[ $has_pos = 1 ] || echo "$me: bn-tokenize has no --pos: each turn starts a new context (no memory of earlier turns)" >&2

fwd=(-m "$model")
[ -n "$threads" ] && fwd+=(-t "$threads")
bn-forward "${fwd[@]}" < "$dir/in" \
    | bn-sample -q -n "$n" --hide-prompt --json "$dir/events" "${sample[@]}" \
    | bn-detok -m "$model" -q &
pids+=($!)
exec 3> "$dir/in"      # held open across turns: bn-forward never sees EOF until we leave
exec 4<> "$dir/events" # read-write: opening never blocks, even if the pipeline failed to start

tok=(-m "$model" --chat)
[ -n "$template" ] && tok+=(--chat-template "$template")
n_past=0 turn=0
while :; do
    [ -t 0 ] && printf '> ' >&2
    IFS= read -r line || break
    [ -n "$line" ] || continue
    args=("${tok[@]}" --keep-open)
    if [ $turn = 0 ]; then
        [ -n "$system" ] && args+=(--system "$system")
    elif [ $has_pos = 1 ]; then
        args+=(--no-bos --pos "$n_past")
    fi
    bn-tokenize "${args[@]}" -p "$line" >&3 || { echo "$me: bn-tokenize failed" >&2; break; }
    # wait for the end of the answer
    done_line=
    while :; do
        if IFS= read -r -t 0.5 ev <&4; then
            case $ev in *'"done":true'*) done_line=$ev; break ;; esac
        elif ! kill -0 "${pids[0]}" 2>/dev/null; then
            break # the pipeline is gone (its error is on stderr)
        fi
    done
    [ -n "$done_line" ] || { echo "$me: the pipeline ended" >&2; break; }
    np=$(printf '%s' "$done_line" | sed -n 's/.*"n_past":\([0-9]*\).*/\1/p')
    [ -n "$np" ] && n_past=$np
    turn=$((turn + 1))
    sleep 0.05 # let bn-detok print the last piece before the next prompt
    echo
done
exec 3>&-              # Ctrl-D: bn-forward sees EOF and ends the stream; everyone exits
rc=0
wait "${pids[@]}" || rc=$?
exec 4<&-
exit $rc
