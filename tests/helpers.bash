# Shared setup for bats tests: load bats-assert, find the binaries.
bats_require_minimum_version 1.5.0
for d in /usr/lib/bats /usr/lib/bats-core /usr/local/lib/bats; do
    if [ -f "$d/bats-support/load.bash" ]; then
        load "$d/bats-support/load.bash"
        load "$d/bats-assert/load.bash"
        [ -f "$d/bats-file/load.bash" ] && load "$d/bats-file/load.bash"
        break
    fi
done
BN_ROOT="${BN_ROOT:-$(cd "$BATS_TEST_DIRNAME/.." && pwd)}"
[ -d "$BN_ROOT/lib" ] || BN_ROOT="$(cd "$BATS_TEST_DIRNAME/../.." && pwd)"
BN_BIN="${BN_BIN:-$BN_ROOT/bin}"
BN_TESTBIN="${BN_TESTBIN:-$BN_ROOT/build/tests}"
BN_SHARED="${BN_SHARED:-$BN_ROOT/../shared}"
BN_DATA="$BN_ROOT/tests/data"
PATH="$BN_BIN:$PATH"
export BN_ROOT BN_BIN BN_TESTBIN BN_SHARED BN_DATA PATH
