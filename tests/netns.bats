#!/usr/bin/env bats
# Four "hosts" as Linux network namespaces joined by veth pairs to a bridge
# that lives in a fifth namespace (nothing touches the host's own network;
# addresses 10.200.0.x exist only inside the namespaces). Each stage runs in
# its own namespace and the links between them are tcp with CURVE:
#
#   ns a 10.200.0.1  bn-tokenize
#   ns b 10.200.0.2  bn-forward   (feedback endpoint reached over tcp)
#   ns c 10.200.0.3  bn-sample    (CURVE natively: -i/-o/--feedback tcp://)
#   ns d 10.200.0.4  bn-detok
#
# bn-tokenize, bn-forward and bn-detok have no --curve-keys option yet, so on
# their hosts a bn-frames relay (tests/tools, the same transport library)
# carries their stdin/stdout over the CURVE link. Skipped, with the reason,
# when namespaces cannot be created (no root / no CAP_NET_ADMIN).
load helpers

setup_file() {
    export NS="bnt$$"
    if ! ip netns add "${NS}sw" 2>/dev/null; then
        export NETNS_SKIP="cannot create network namespaces here (needs root / CAP_NET_ADMIN)"
        return 0
    fi
    ip -n "${NS}sw" link add br0 type bridge
    ip -n "${NS}sw" link set br0 up
    local i=1
    for h in a b c d; do
        ip netns add "$NS$h"
        ip link add "v$NS$h" netns "$NS$h" type veth peer name "p$h" netns "${NS}sw"
        ip -n "$NS$h" link set "v$NS$h" name eth0
        ip -n "$NS$h" addr add "10.200.0.$i/24" dev eth0
        ip -n "$NS$h" link set eth0 up
        ip -n "$NS$h" link set lo up
        ip -n "${NS}sw" link set "p$h" master br0
        ip -n "${NS}sw" link set "p$h" up
        i=$((i + 1))
    done
    M="$BN_ROOT/models/kjv-bitnet-tiny-i2_s.gguf"
    if [ ! -f "$M" ]; then
        M="$BATS_FILE_TMPDIR/syn.gguf"
        bn-quantize -q --synthetic tiny --vocab "$BN_DATA/tokenizer/ggml-vocab-llama-spm.gguf" --type I2_S -o "$M"
    fi
    export M
    export KEYS="$BATS_FILE_TMPDIR/keys"
    bn-keygen "$KEYS" > /dev/null
}

teardown_file() {
    [ -n "${NETNS_SKIP:-}" ] && return 0
    # stop whatever still runs inside our namespaces, then remove them
    for h in a b c d sw; do
        for pid in $(ip netns pids "$NS$h" 2>/dev/null); do kill "$pid" 2>/dev/null || true; done
    done
    for h in a b c d sw; do ip netns del "$NS$h" 2>/dev/null || true; done
    return 0
}

setup() {
    [ -z "${NETNS_SKIP:-}" ] || skip "$NETNS_SKIP"
    TMP="$BATS_TEST_TMPDIR"
    BF="$BN_TESTBIN/bn-frames"
    P="In the beginning God created the heaven and the earth"
    export BN_TIMEOUT_MS=10000
}

# inn HOST CMD...: run CMD inside namespace HOST
inn() { local h=$1; shift; ip netns exec "$NS$h" "$@"; }

@test "netns: each host has only its 10.200.0.x address, and frames cross from a to d" {
    run inn d ip -4 -o addr show
    assert_output --partial "10.200.0.4/24"
    refute_output --regexp "inet (192|172)\."
    [ "$(echo "$output" | grep -c inet)" -eq 2 ] # lo and eth0
    inn a timeout 20 bash -c "echo '{\"kind\":\"hello\",\"proto\":1,\"stage\":\"ns-a\"}
{\"kind\":\"end\"}' | '$BF' --from-json -o tcp://10.200.0.1:5581 --curve-keys '$KEYS'" &
    run inn d timeout 20 "$BF" -i tcp://10.200.0.1:5581 --curve-keys "$KEYS"
    wait || true
    assert_success
    assert_line --index 0 --partial '"stage":"ns-a"'
}

@test "netns: four stages on four hosts over tcp + CURVE generate the same text as a local pipe" {
    run timeout 60 bash -c "bn-tokenize -m '$M' -p '$P' | bn-forward -m '$M' | bn-sample --seed 9 -n 30 -q | bn-detok -m '$M' -q"
    assert_success
    local want="$output"
    echo '{"kind":"end"}' | "$BF" --from-json > "$TMP/end"   # bn-tokenize's stream has no END yet
    # host a: tokenizer, its output bound on 10.200.0.1 (CURVE server)
    inn a bash -c "{ bn-tokenize -m '$M' -p '$P'; cat '$TMP/end'; } | timeout 60 '$BF' --pass -o tcp://10.200.0.1:5551 --curve-keys '$KEYS'" \
        2>"$TMP/a.err" &
    # host b: forward; prompt in from a, logits out bound on 10.200.0.2, feedback: tcp 10.200.0.2:5553 -> local ipc
    inn b bash -c "timeout 60 '$BF' --pass -i tcp://10.200.0.1:5551 --curve-keys '$KEYS' \
        | timeout 60 bn-forward -m '$M' --feedback 'ipc://$TMP/fb' \
        | timeout 60 '$BF' --pass -o tcp://10.200.0.2:5552 --curve-keys '$KEYS'" 2>"$TMP/b.err" &
    inn b timeout 60 "$BF" --pass -i @tcp://10.200.0.2:5553 --curve-keys "$KEYS" -o ">ipc://$TMP/fb" 2>"$TMP/b2.err" &
    # host c: the sampler speaks CURVE itself on all three links
    inn c timeout 60 bn-sample --seed 9 -n 30 -q --curve-keys "$KEYS" -i tcp://10.200.0.2:5552 \
        -o tcp://10.200.0.3:5554 --feedback '>tcp://10.200.0.2:5553' 2>"$TMP/c.err" &
    # host d: detok reads from c
    run inn d bash -c "timeout 60 '$BF' --pass -i tcp://10.200.0.3:5554 --curve-keys '$KEYS' | timeout 60 bn-detok -m '$M' -q"
    cat "$TMP"/*.err >&3 || true
    assert_success
    [ "$output" = "$want" ]
}

@test "netns: a client without the right key gets nothing through (CURVE refuses it)" {
    # the stranger knows the server's public key but its own client key is not authorized
    bn-keygen "$TMP/stranger" > /dev/null
    cp "$KEYS/server.pub" "$TMP/stranger/server.pub"
    inn c timeout 20 bn-sample --seed 1 -q --curve-keys "$KEYS" -i tcp://10.200.0.2:5562 -o tcp://10.200.0.3:5564 \
        --no-feedback --timeout 4000 2>"$TMP/c.err" &
    sleep 0.3
    # a stranger's keys: its handshake fails, it times out reading, and bn-sample logs the refusal
    run inn d timeout 20 "$BF" -i tcp://10.200.0.3:5564 --curve-keys "$TMP/stranger" --timeout 2000
    assert_failure
    assert_output --partial "timeout"
    wait || true
    run cat "$TMP/c.err"
    assert_output --partial "refused"
}

@test "netns: plaintext tcp on a non-loopback address is refused without CURVE" {
    run inn c timeout 10 bn-sample -q --no-feedback -i tcp://10.200.0.2:5572 -o tcp://10.200.0.3:5574
    assert_failure 1
    assert_output --partial "refusing a plaintext bind"
}
