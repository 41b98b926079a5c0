#!/usr/bin/env bash
# tests/run.sh SUITE... : run test suites and print one "N passed, N failed" line.
#   unit  C unit tests ($BN_TESTBIN/test_*), TAP output
#   bats  tests/*.bats (bats-core, TAP output)
#   ref   tests/ref/*.bats (reads ../shared; make test-ref)
# Exit status 1 when anything failed.
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
export BN_ROOT="$root"
export BN_BIN="${BN_BIN:-$root/bin}"
export BN_TESTBIN="${BN_TESTBIN:-$root/build/tests}"
export BN_SHARED="${BN_SHARED:-$root/../shared}"
log_dir=$(mktemp -d)
trap 'rm -rf "$log_dir"' EXIT
passed=0 failed=0 skipped=0

# count TAP lines of a log into the totals
count_tap() {
    local f=$1 p fl s
    s=$(grep -cE '^ok [0-9]+.*# ?skip' "$f" || true)
    p=$(grep -cE '^ok [0-9]+' "$f" || true)
    fl=$(grep -cE '^not ok [0-9]+' "$f" || true)
    passed=$((passed + p - s)); failed=$((failed + fl)); skipped=$((skipped + s))
}

# a sanitizer run that died before printing any TAP line
startup_crash() {
    [ "${BN_SANITIZE:-0}" = 1 ] && ! grep -qE '^(ok|not ok) [0-9]+' "$1" && grep -q 'Sanitizer:DEADLYSIGNAL' "$1"
}

# run a command with address-space randomisation off where the kernel lets us
no_aslr() {
    if setarch "$(uname -m)" -R true 2>/dev/null; then setarch "$(uname -m)" -R "$@"; else "$@"; fi
}

run_unit() {
    local t any=0
    for t in "$BN_TESTBIN"/test_*; do
        [ -x "$t" ] || continue
        any=1
        local name; name=$(basename "$t")
        echo "== unit: $name"
        local log="$log_dir/$name.log"
        ( cd "$root" && "$t" ) >"$log" 2>&1
        local rc=$?
        if [ "$rc" -ne 0 ] && startup_crash "$log"; then
            # ASan's shadow memory can collide with a randomised mapping before
            # main() runs (google/sanitizers#1724): keep the evidence, run once
            # more with address randomisation off, and count that run.
            echo "   $name: sanitizer crash before its first check; log:"; sed 's/^/   | /' "$log" | head -60
            echo "   $name: rerun with ASLR off"
            ( cd "$root" && no_aslr "$t" ) >"$log" 2>&1
            rc=$?
        fi
        grep -E '^(not ok|#)' "$log" | head -40
        count_tap "$log"
        local n; n=$(grep -cE '^(ok|not ok) [0-9]+' "$log" || true)
        if [ "$rc" -ne 0 ] && ! grep -qE '^not ok' "$log"; then
            echo "   $name exited $rc without a failing check (crash?)"; tail -40 "$log"; failed=$((failed + 1))
        fi
        echo "   $n checks"
    done
    [ $any = 1 ] || echo "== unit: no unit tests built"
}

run_bats() {
    local dir=$1 files
    files=$(ls "$dir"/*.bats 2>/dev/null)
    [ -n "$files" ] || { echo "== bats: none in $dir"; return; }
    local f
    for f in $files; do
        echo "== bats: ${f#$root/}"
        local log="$log_dir/$(basename "$f").log"
        bats --tap "$f" >"$log" 2>&1
        local rc=$?
        grep -E '^(not ok|ok .*# ?skip)' "$log" | head -40
        grep -E '^#' "$log" | head -60
        count_tap "$log"
        if [ "$rc" -ne 0 ] && ! grep -qE '^not ok' "$log"; then
            echo "   bats failed without a failing test:"; tail -5 "$log"; failed=$((failed + 1))
        fi
    done
}

for suite in "$@"; do
    case $suite in
    unit) run_unit ;;
    bats) run_bats "$root/tests" ;;
    ref)
        if [ ! -d "$BN_SHARED/fixtures" ]; then
            echo "test-ref: $BN_SHARED/fixtures not found (set SHARED=...)"; failed=$((failed + 1))
        else
            run_bats "$root/tests/ref"
        fi ;;
    *) echo "unknown suite $suite"; exit 2 ;;
    esac
done
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
