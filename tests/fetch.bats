#!/usr/bin/env bats
# The fetch step (pipelines/fetch-model.sh) and bn_model_resolve, against a
# local hub (tests/tools/hubserver.py) on 127.0.0.1 only. Nothing here touches
# the internet. Every fetch runs under `timeout`, the server exits by itself
# after 60 s and is killed in teardown.

load helpers

PY=/usr/bin/python3
HUB="$BN_ROOT/tests/tools/hubserver.py"
FETCH="$BN_ROOT/pipelines/fetch-model.sh"

setup_file() {
    local r=$BATS_FILE_TMPDIR/hub
    mkdir -p "$r/o/r" "$r/two/r" "$r/none/r" "$r/bad/r"
    "$PY" "$HUB" mkgguf "$r/o/r/model.gguf" 300000
    printf '# a model card\n' >"$r/o/r/README.md"
    "$PY" "$HUB" mkgguf "$r/two/r/a.gguf" 1000
    "$PY" "$HUB" mkgguf "$r/two/r/b.gguf" 2000
    printf 'no model here\n' >"$r/none/r/README.md"
    head -c 5000 /dev/urandom >"$r/bad/r/bad.gguf"
}

setup() {
    HUB_ROOT=$BATS_FILE_TMPDIR/hub
    MODEL=$HUB_ROOT/o/r/model.gguf
    MODEL_SHA=$(sha256sum "$MODEL" | cut -d' ' -f1)
    export BN_CACHE=$BATS_TEST_TMPDIR/cache
    export BN_FETCH_TIMEOUT=5
    # transport tests: the tiny GGUF is a valid container, not a BitNet model,
    # so model validation is tested on its own below
    export BN_FETCH_VALIDATE=0
    unset BN_OFFLINE BN_FETCH BITNET_STRICT_MODE HF_TOKEN HF_ENDPOINT BN_GGUF
    HUB_PID=""
    MOUNTED=""
}

teardown() {
    stop_hub
    if [ -n "$MOUNTED" ]; then umount "$MOUNTED" || true; fi
}

# start_hub [hubserver options]: serve $HUB_ROOT on a free loopback port.
start_hub() {
    HUB_LOG=$BATS_TEST_TMPDIR/hub.log
    : >"$HUB_LOG"
    rm -f "$BATS_TEST_TMPDIR/port"
    "$PY" "$HUB" --root "$HUB_ROOT" --port-file "$BATS_TEST_TMPDIR/port" --log "$HUB_LOG" \
        --max-seconds 60 "$@" 3>&- &
    HUB_PID=$!
    local i
    for i in $(seq 100); do
        [ -s "$BATS_TEST_TMPDIR/port" ] && break
        sleep 0.05
    done
    [ -s "$BATS_TEST_TMPDIR/port" ] || { echo "hub did not start"; return 1; }
    export BN_HUB_URL=http://127.0.0.1:$(cat "$BATS_TEST_TMPDIR/port")
}

stop_hub() {
    if [ -n "$HUB_PID" ]; then
        kill "$HUB_PID" 2>/dev/null || true
        wait "$HUB_PID" 2>/dev/null || true
        HUB_PID=""
    fi
}

fetch() { timeout 30 "$FETCH" "$@"; }
nblobs() { find "$BN_CACHE/blobs" -type f 2>/dev/null | wc -l; }
ndata_gets() { grep -c '^GET /cdn/' "$HUB_LOG" || true; }

@test "fetch: fresh download lands verified in blobs/, path is the last stdout line" {
    start_hub
    run --separate-stderr fetch hf:o/r:model.gguf
    assert_success
    [ "${lines[-1]}" = "$BN_CACHE/blobs/sha256-$MODEL_SHA" ]
    cmp "$MODEL" "${lines[-1]}"
    [ "$(sha256sum "${lines[-1]}" | cut -d' ' -f1)" = "$MODEL_SHA" ]
    grep -qxP "hf:o/r:model.gguf\t$MODEL_SHA" "$BN_CACHE/index"
    [ "$(nblobs)" -eq 1 ]
    [ -z "$(ls -A "$BN_CACHE/partial")" ]
}

@test "fetch: no FILE picks the repo's single .gguf from the API listing" {
    start_hub
    run --separate-stderr fetch hf:o/r
    assert_success
    [ "${lines[-1]}" = "$BN_CACHE/blobs/sha256-$MODEL_SHA" ]
    grep -q '^GET /api/models/o/r ' "$HUB_LOG"
    grep -qxP "hf:o/r\t$MODEL_SHA" "$BN_CACHE/index"
}

@test "fetch: several or no .gguf files is a clear error listing the candidates" {
    start_hub
    run --separate-stderr fetch hf:two/r
    assert_failure 1
    [[ $stderr == *"2 .gguf files"* && $stderr == *"hf:two/r:a.gguf"* && $stderr == *"hf:two/r:b.gguf"* ]]
    run --separate-stderr fetch hf:none/r
    assert_failure 1
    [[ $stderr == *"no .gguf file"*"README.md"* ]]
    [ "$(nblobs)" -eq 0 ]
}

@test "fetch: a second request is served from the cache with the server gone" {
    start_hub
    run --separate-stderr fetch hf:o/r:model.gguf
    assert_success
    first=${lines[-1]}
    run --separate-stderr fetch hf:o/r
    assert_success
    stop_hub
    run --separate-stderr fetch hf:o/r:model.gguf
    assert_success
    [ "${lines[-1]}" = "$first" ]
    run --separate-stderr fetch hf:o/r
    assert_success
    [ "${lines[-1]}" = "$first" ]
    [ "$(ndata_gets)" -eq 1 ]
}

@test "fetch: a connection cut mid-body is resumed with an HTTP Range request" {
    start_hub --cut-after 100000
    run --separate-stderr fetch hf:o/r:model.gguf
    assert_success
    grep -q '^CUT /cdn/o/r/model.gguf after 100000 bytes' "$HUB_LOG"
    grep -q '^GET /cdn/o/r/model.gguf range=bytes=100000-$' "$HUB_LOG"
    cmp "$MODEL" "${lines[-1]}"
}

@test "fetch: an interrupted run keeps only a partial file; the next run resumes it" {
    start_hub --cut-after 120000
    BN_FETCH_RETRIES=0 run --separate-stderr fetch hf:o/r:model.gguf
    assert_failure 1
    [[ $stderr == *"run again to resume"* ]]
    [ "$(nblobs)" -eq 0 ]
    [ "$(stat -c %s "$BN_CACHE/partial/sha256-$MODEL_SHA.part")" -eq 120000 ]
    ! grep -q "model.gguf" "$BN_CACHE/index" 2>/dev/null
    run --separate-stderr fetch hf:o/r:model.gguf
    assert_success
    grep -q 'range=bytes=120000-$' "$HUB_LOG"
    cmp "$MODEL" "${lines[-1]}"
    [ ! -e "$BN_CACHE/partial/sha256-$MODEL_SHA.part" ]
}

@test "fetch: a server that ignores Range makes the download start over" {
    start_hub --cut-after 100000 --no-range
    run --separate-stderr fetch hf:o/r:model.gguf
    assert_success
    cmp "$MODEL" "${lines[-1]}"
}

@test "fetch: sha256 mismatch: nothing lands in the cache, exit 1" {
    start_hub --bad-sha
    run --separate-stderr fetch hf:o/r:model.gguf
    assert_failure 1
    [[ $stderr == *"sha256 mismatch"* ]]
    [ "$(nblobs)" -eq 0 ]
    [ -z "$(ls -A "$BN_CACHE/partial")" ]
    [ ! -s "$BN_CACHE/index" ]
}

@test "fetch: a small non-LFS file is verified by its git blob hash, stored by sha256" {
    start_hub
    run --separate-stderr fetch hf:o/r:README.md
    assert_success
    sha=$(sha256sum "$HUB_ROOT/o/r/README.md" | cut -d' ' -f1)
    [ "${lines[-1]}" = "$BN_CACHE/blobs/sha256-$sha" ]
    cmp "$HUB_ROOT/o/r/README.md" "${lines[-1]}"
    ! grep -q '^GET /cdn/' "$HUB_LOG"
    stop_hub
    start_hub --bad-sha
    run --separate-stderr fetch hf:o/r:README.md --quiet
    assert_success          # still served from the cache
    rm -rf "$BN_CACHE"
    run --separate-stderr fetch hf:o/r:README.md
    assert_failure 1
    [[ $stderr == *"git blob hash mismatch"* ]]
    [ "$(nblobs)" -eq 0 ]
}

@test "fetch: --sha256 pins the content: wrong pin fails, right pin hits the cache offline" {
    start_hub
    run --separate-stderr fetch hf:o/r:model.gguf --sha256 "$(printf '0%.0s' {1..64})"
    assert_failure 1
    [[ $stderr == *"--sha256 asks for"* ]]
    [ "$(nblobs)" -eq 0 ]
    run --separate-stderr fetch hf:o/r:model.gguf --sha256 "${MODEL_SHA^^}"
    assert_success
    stop_hub
    BN_OFFLINE=1 run --separate-stderr fetch hf:other/name:x.gguf --sha256 "$MODEL_SHA"
    assert_success
    [ "${lines[-1]}" = "$BN_CACHE/blobs/sha256-$MODEL_SHA" ]
}

@test "fetch: 404 for a missing file or repository is a clear error" {
    start_hub
    run --separate-stderr fetch hf:o/r:missing.gguf
    assert_failure 1
    [[ $stderr == *"not found on the hub (HTTP 404"*"/o/r/resolve/main/missing.gguf"* ]]
    run --separate-stderr fetch hf:nobody/nothing
    assert_failure 1
    [[ $stderr == *"HTTP 404"*"/api/models/nobody/nothing"* ]]
    [ "$(nblobs)" -eq 0 ]
}

@test "fetch: a stalled server fails by the timeout, not forever" {
    start_hub --stall-after 50000 --stall-seconds 40
    BN_FETCH_TIMEOUT=2 BN_FETCH_RETRIES=1 run --separate-stderr fetch hf:o/r:model.gguf
    assert_failure 1         # not 124: our own timeout fired, not the test's
    [[ $stderr == *"curl exit 28"* ]]
    [ "$(grep -c '^STALL' "$HUB_LOG")" -eq 2 ]
    [ "$(nblobs)" -eq 0 ]
}

@test "fetch: nothing listening is a connection error, not a hang" {
    start_hub
    stop_hub
    run --separate-stderr fetch hf:o/r:model.gguf
    assert_failure 1
    [[ $stderr == *"no answer from"* ]]
}

@test "fetch: disk full: exit 1, nothing in blobs/" {
    [ "$(id -u)" = 0 ] || skip "needs root to mount a small tmpfs"
    mkdir -p "$BATS_TEST_TMPDIR/full"
    mount -t tmpfs -o size=128k tmpfs "$BATS_TEST_TMPDIR/full" 2>/dev/null ||
        skip "mount -t tmpfs not permitted here"
    MOUNTED=$BATS_TEST_TMPDIR/full
    export BN_CACHE=$MOUNTED/cache
    start_hub
    run --separate-stderr fetch hf:o/r:model.gguf
    assert_failure 1
    [[ $stderr == *"disk full?"* ]]
    [ "$(nblobs)" -eq 0 ]
    ! grep -q model "$BN_CACHE/index" 2>/dev/null
}

@test "fetch: two concurrent fetches of one file: both succeed, one download, one blob" {
    start_hub --chunk-delay 0.05
    ( fetch hf:o/r:model.gguf >"$BATS_TEST_TMPDIR/a.out" 2>"$BATS_TEST_TMPDIR/a.err"; echo $? >"$BATS_TEST_TMPDIR/a.rc" ) 3>&- &
    pa=$!
    ( fetch hf:o/r >"$BATS_TEST_TMPDIR/b.out" 2>"$BATS_TEST_TMPDIR/b.err"; echo $? >"$BATS_TEST_TMPDIR/b.rc" ) 3>&- &
    pb=$!
    wait $pa $pb
    [ "$(cat "$BATS_TEST_TMPDIR/a.rc")" = 0 ]
    [ "$(cat "$BATS_TEST_TMPDIR/b.rc")" = 0 ]
    a=$(tail -n 1 "$BATS_TEST_TMPDIR/a.out")
    b=$(tail -n 1 "$BATS_TEST_TMPDIR/b.out")
    [ "$a" = "$b" ]
    cmp "$MODEL" "$a"
    [ "$(nblobs)" -eq 1 ]
    [ "$(ndata_gets)" -eq 1 ]
    grep -qxP "hf:o/r\t$MODEL_SHA" "$BN_CACHE/index"
    grep -qxP "hf:o/r:model.gguf\t$MODEL_SHA" "$BN_CACHE/index"
}

@test "fetch: offline mode: a hit is served, a miss says so without network" {
    start_hub
    run --separate-stderr fetch hf:o/r:model.gguf
    assert_success
    : >"$HUB_LOG"
    BN_OFFLINE=1 run --separate-stderr fetch hf:o/r:model.gguf
    assert_success
    [ "${lines[-1]}" = "$BN_CACHE/blobs/sha256-$MODEL_SHA" ]
    BN_OFFLINE=1 run --separate-stderr fetch hf:two/r:a.gguf
    assert_failure 1
    [[ $stderr == *"not in the cache"*"BN_OFFLINE=1"* ]]
    [ ! -s "$HUB_LOG" ]
}

@test "fetch: bad specs are usage errors (exit 2) and reach no server" {
    start_hub
    for s in model.gguf hf:o hf:o/r/x hf:../r hf:o/r:../../etc/passwd hf:o/r:a/../b.gguf "hf:o/r:a b.gguf" hf:-o/r; do
        run --separate-stderr fetch "$s"
        [ "$status" -eq 2 ] || { echo "spec '$s' gave $status"; false; }
    done
    run --separate-stderr fetch hf:o/r --sha256 xyz
    assert_failure 2
    run --separate-stderr fetch --help
    assert_success
    [ ! -s "$HUB_LOG" ]
}

@test "fetch: a GGUF that bn-gguf rejects is not cached" {
    [ -x "$BN_BIN/bn-gguf" ] || skip "bn-gguf not built"
    start_hub
    BN_FETCH_VALIDATE=1 BN_GGUF=$BN_BIN/bn-gguf run --separate-stderr fetch hf:bad/r:bad.gguf
    assert_failure 1
    [[ $stderr == *"not a valid GGUF"* ]]
    # a sound GGUF container that is no BitNet model
    BN_FETCH_VALIDATE=1 BN_GGUF=$BN_BIN/bn-gguf run --separate-stderr fetch hf:o/r:model.gguf
    assert_failure 1
    [[ $stderr == *"not a valid GGUF"*"not a BitNet architecture"* ]]
    [ "$(nblobs)" -eq 0 ]
    [ -z "$(ls -A "$BN_CACHE/partial")" ]
}

@test "fetch: a GGUF that bn-gguf accepts is cached after validation" {
    [ -x "$BN_BIN/bn-gguf" ] || skip "bn-gguf not built"
    local c good="" syn=$BATS_TEST_TMPDIR/synthetic.gguf
    if [ -x "$BN_BIN/bn-quantize" ] && [ -f "$BN_DATA/tokenizer/ggml-vocab-llama-spm.gguf" ]; then
        timeout 60 "$BN_BIN/bn-quantize" --synthetic tiny --vocab "$BN_DATA/tokenizer/ggml-vocab-llama-spm.gguf" \
            -o "$syn" --type I2_S -q || true
    fi
    for c in "$syn" "$BN_DATA"/*.gguf "$BN_SHARED/fixtures/tiny-b158-i2_s.gguf"; do
        [ -f "$c" ] && "$BN_BIN/bn-gguf" validate "$c" >/dev/null 2>&1 && { good=$c; break; }
    done
    [ -n "$good" ] || skip "no GGUF here that bn-gguf validate accepts"
    mkdir -p "$BATS_TEST_TMPDIR/hub2/v/m"
    cp "$good" "$BATS_TEST_TMPDIR/hub2/v/m/model.gguf"
    HUB_ROOT=$BATS_TEST_TMPDIR/hub2
    start_hub
    BN_FETCH_VALIDATE=1 BN_GGUF=$BN_BIN/bn-gguf run --separate-stderr fetch hf:v/m
    assert_success
    cmp "$good" "${lines[-1]}"
}

@test "fetch: strict mode refuses a GGUF it cannot validate" {
    # a copy of the script away from any bin/bn-gguf, and a PATH without one
    mkdir -p "$BATS_TEST_TMPDIR/lone/pipelines"
    cp "$FETCH" "$BATS_TEST_TMPDIR/lone/pipelines/"
    start_hub
    BN_FETCH_VALIDATE=1 BITNET_STRICT_MODE=1 PATH=/usr/bin:/bin \
        run --separate-stderr timeout 30 "$BATS_TEST_TMPDIR/lone/pipelines/fetch-model.sh" hf:o/r:model.gguf
    assert_failure 1
    [[ $stderr == *"bn-gguf not found"* ]]
    [ "$(nblobs)" -eq 0 ]
}

@test "resolve: plain paths pass through, hf: specs are fetched, then served by the C cache lookup" {
    [ -x "$BN_TESTBIN/resolve" ] || skip "resolve test tool not built"
    run --separate-stderr "$BN_TESTBIN/resolve" some/dir/model.gguf
    assert_success
    assert_output some/dir/model.gguf
    start_hub
    BN_FETCH=$FETCH run --separate-stderr timeout 30 "$BN_TESTBIN/resolve" hf:o/r:model.gguf
    assert_success
    assert_output "$BN_CACHE/blobs/sha256-$MODEL_SHA"
    stop_hub
    # a hit needs neither the script nor the network
    BN_FETCH=/nonexistent BN_OFFLINE=1 run --separate-stderr "$BN_TESTBIN/resolve" hf:o/r:model.gguf
    assert_success
    assert_output "$BN_CACHE/blobs/sha256-$MODEL_SHA"
    BN_OFFLINE=1 run --separate-stderr "$BN_TESTBIN/resolve" hf:o/r:other.gguf
    assert_failure 1
    [[ $stderr == "resolve: hf:o/r:other.gguf: not in the cache"*"BN_OFFLINE=1"* ]]
}

@test "resolve: finds <bindir>/../pipelines/fetch-model.sh, keeps the tool's stdin, reports failures" {
    [ -x "$BN_TESTBIN/resolve" ] || skip "resolve test tool not built"
    local t=$BATS_TEST_TMPDIR/tree
    mkdir -p "$t/bin" "$t/pipelines"
    cp "$BN_TESTBIN/resolve" "$t/bin/"
    cp "$FETCH" "$t/pipelines/"
    start_hub
    run --separate-stderr bash -c "printf 'frame-bytes' | { timeout 30 '$t/bin/resolve' hf:o/r && cat; }"
    assert_success
    [ "${lines[0]}" = "$BN_CACHE/blobs/sha256-$MODEL_SHA" ]
    [ "${lines[1]}" = "frame-bytes" ]
    run --separate-stderr timeout 30 "$t/bin/resolve" hf:o/r:missing.gguf
    assert_failure 1
    [[ $stderr == *"HTTP 404"* ]]
    [[ $stderr == *"resolve: hf:o/r:missing.gguf: fetch failed (fetch-model.sh exit 1)"* ]]
    rm "$t/pipelines/fetch-model.sh"
    run --separate-stderr "$t/bin/resolve" hf:o/r:missing.gguf
    assert_failure 1
    [[ $stderr == *"fetch-model.sh not found"* ]]
}

@test "tools: -m hf:OWNER/REPO:FILE works in bn-gguf, bn-tokenize, bn-detok and bn-forward" {
    for t in bn-gguf bn-tokenize bn-detok bn-forward bn-quantize; do
        [ -x "$BN_BIN/$t" ] || skip "$t not built"
    done
    local syn=$BATS_TEST_TMPDIR/hub3/o/tiny/model.gguf
    mkdir -p "$(dirname "$syn")"
    timeout 60 "$BN_BIN/bn-quantize" --synthetic tiny --vocab "$BN_DATA/tokenizer/ggml-vocab-llama-spm.gguf" \
        -o "$syn" --type I2_S -q
    HUB_ROOT=$BATS_TEST_TMPDIR/hub3
    start_hub
    export BN_FETCH=$FETCH BN_FETCH_VALIDATE=1 BN_GGUF=$BN_BIN/bn-gguf
    run --separate-stderr timeout 60 "$BN_BIN/bn-gguf" info hf:o/tiny:model.gguf
    assert_success
    assert_output --partial "bitnet-b1.58"
    stop_hub
    # everything below is served from the cache: the hub is gone
    run --separate-stderr timeout 60 "$BN_BIN/bn-tokenize" -m hf:o/tiny:model.gguf -p "Hello world" --ids
    assert_success
    assert_output "1 15043 3186"
    run --separate-stderr bash -c "echo 1 15043 | BN_OFFLINE=1 timeout 60 '$BN_BIN/bn-detok' -m hf:o/tiny:model.gguf --ids --quiet"
    assert_success
    assert_output "Hello"
    run --separate-stderr bash -c "echo 1 15043 | BN_OFFLINE=1 timeout 60 '$BN_BIN/bn-forward' -m hf:o/tiny:model.gguf --ids --greedy 2"
    assert_success
    [ "$(echo "$output" | wc -w)" -eq 2 ]
    run --separate-stderr env BN_OFFLINE=1 "$BN_BIN/bn-gguf" info hf:o/other:model.gguf
    assert_failure 1
    [[ $stderr == *"BN_OFFLINE=1"* ]]
}
