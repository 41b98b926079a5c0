#!/usr/bin/env bats
# Frames on the wire: bn-frames (tests/tools) and bn-keygen; interop with
# Python's msgpack (the protocol must be implementable with any library),
# stream errors, ZeroMQ endpoints, timeouts and CURVE from the command line.
load helpers

setup() {
    FR="$BN_TESTBIN/bn-frames"
    [ -x "$FR" ] || skip "bn-frames not built"
    T="$BATS_TEST_TMPDIR"
    PY=/usr/bin/python3
    cat >"$T/all.jsonl" <<'EOF'
{"kind":"hello","seq":0,"proto":1,"stage":"bn-forward","vocab_fp":"ab12","model_fp":"cd34","n_vocab":32000,"bos":1,"eos":2,"eog":[2,32000],"n_ctx":2048,"feedback":"ipc:///tmp/x/fb","kernels":"i2_s/avx2"}
{"kind":"tokens","seq":0,"pos":0,"ids":[1,15043,-5,2147483647]}
{"kind":"logits","seq":0,"pos":4,"n_rows":2,"n_vocab":3,"data":[0.5,-1.25,3,-Infinity,1e-30,7]}
{"kind":"token","seq":3,"pos":5,"id":32000}
{"kind":"text","seq":0,"text":"caf\u00e9 \"quoted\"\n\ttab"}
{"kind":"timing","seq":0,"stage":"bn-forward","event":"decode","ns":123456789012,"count":1,"t_start_ns":99}
{"kind":"scores","seq":0,"pos":1,"ids":[5,6],"logprobs":[-0.5,-2.25]}
{"kind":"error","seq":0,"stage":"bn-sample","message":"boom"}
{"kind":"end","seq":0,"more":true}
{"kind":"end","seq":0}
EOF
}

have_pymsgpack() {
    "$PY" -c 'import msgpack' 2>/dev/null
}

free_port() {
    "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

@test "bn-frames: --help exits 0, bad usage exits 2" {
    run -0 "$FR" --help
    assert_output --partial "usage: bn-frames"
    run -2 "$FR" --bogus
    run -2 "$FR" --from-json --pass
}

@test "JSON -> frames -> JSON keeps every kind and field" {
    run -0 bash -c "'$FR' --from-json <'$T/all.jsonl' | '$FR' --full"
    assert_line --index 0 '{"kind":"hello","seq":0,"proto":1,"stage":"bn-forward","vocab_fp":"ab12","model_fp":"cd34","n_vocab":32000,"bos":1,"eos":2,"eog":[2,32000],"n_ctx":2048,"feedback":"ipc:///tmp/x/fb","kernels":"i2_s/avx2"}'
    assert_line --index 1 '{"kind":"tokens","seq":0,"pos":0,"ids":[1,15043,-5,2147483647]}'
    assert_line --index 2 '{"kind":"logits","seq":0,"pos":4,"n_rows":2,"n_vocab":3,"data":[0.5,-1.25,3,-Infinity,1e-30,7]}'
    assert_line --index 3 '{"kind":"token","seq":3,"pos":5,"id":32000}'
    assert_line --index 4 '{"kind":"text","seq":0,"text":"café \"quoted\"\n\ttab"}'
    assert_line --index 5 '{"kind":"timing","seq":0,"stage":"bn-forward","event":"decode","ns":123456789012,"count":1,"t_start_ns":99}'
    assert_line --index 6 '{"kind":"scores","seq":0,"pos":1,"ids":[5,6],"logprobs":[-0.5,-2.25]}'
    assert_line --index 7 '{"kind":"error","seq":0,"stage":"bn-sample","message":"boom"}'
    assert_line --index 8 '{"kind":"end","seq":0,"more":true}'
    assert_line --index 9 '{"kind":"end","seq":0}'
    [ "${#lines[@]}" -eq 10 ]
}

@test "interop: Python msgpack reads the frames we write" {
    have_pymsgpack || skip "python3-msgpack missing for /usr/bin/python3"
    "$FR" --from-json <"$T/all.jsonl" >"$T/all.bin"
    run -0 "$PY" - "$T/all.bin" <<'EOF'
import sys, struct, msgpack
u = msgpack.Unpacker(open(sys.argv[1], "rb"), raw=False)
fr = list(u)
assert [f["kind"] for f in fr] == ["hello","tokens","logits","token","text","timing","scores","error","end","end"], fr
h = fr[0]
assert h["proto"] == 1 and h["stage"] == "bn-forward" and h["eog"] == [2, 32000] and h["n_vocab"] == 32000
assert fr[1]["ids"] == [1, 15043, -5, 2147483647]
lg = fr[2]
assert isinstance(lg["data"], bytes) and len(lg["data"]) == 24
v = struct.unpack("<6f", lg["data"])
assert v[0] == 0.5 and v[1] == -1.25 and v[3] == float("-inf") and v[5] == 7.0, v
assert fr[3]["id"] == 32000 and fr[3]["seq"] == 3
assert fr[4]["text"] == 'café "quoted"\n\ttab'
assert fr[5]["ns"] == 123456789012
assert struct.unpack("<2f", fr[6]["logprobs"]) == (-0.5, -2.25)
assert fr[8].get("more") is True and "more" not in fr[9]
print("ok", len(fr))
EOF
    assert_output "ok 10"
}

@test "interop: we read frames Python writes (extra fields, unknown kind, any key order)" {
    have_pymsgpack || skip "python3-msgpack missing for /usr/bin/python3"
    run -0 "$PY" - "$T/py.bin" <<'EOF'
import sys, struct, msgpack
out = open(sys.argv[1], "wb")
def w(o): out.write(msgpack.packb(o, use_bin_type=True))
w({"stage": "py", "proto": 1, "kind": "hello", "future_field": {"x": [1, 2.5, None]}})
w({"kind": "tokens", "ids": [7, 8, 9], "pos": 2})
w({"kind": "logits", "n_rows": 1, "n_vocab": 2, "pos": 0, "data": struct.pack("<2f", 1.5, -2.0)})
w({"kind": "embedding", "vec": [1.0, 2.0]})
w({"kind": "token", "id": -1})
w({"kind": "end"})
print("written")
EOF
    run -0 "$FR" -i "$T/py.bin"
    assert_line --index 0 --partial '"kind":"hello","seq":0,"proto":1,"stage":"py"'
    assert_line --index 1 '{"kind":"tokens","seq":0,"pos":2,"ids":[7,8,9]}'
    assert_line --index 2 '{"kind":"logits","seq":0,"pos":0,"n_rows":1,"n_vocab":2,"argmax0":0,"min":-2,"max":1.5}'
    assert_line --index 3 --partial '{"kind":"unknown","raw_hex":"82a46b696e64a9656d62656464696e67'
    assert_line --index 4 '{"kind":"token","seq":0,"pos":0,"id":-1}'
}

@test "unknown kinds pass through a stage byte for byte" {
    have_pymsgpack || skip "python3-msgpack missing for /usr/bin/python3"
    "$PY" -c '
import msgpack, sys
sys.stdout.buffer.write(msgpack.packb({"kind": "embedding", "v": [1, 2, {"a": None}]}) + msgpack.packb({"kind": "tokens", "ids": [1]}))' >"$T/u.bin"
    "$FR" --pass -i "$T/u.bin" -o "$T/u2.bin"
    # the tokens frame is re-encoded canonically, the unknown frame kept as is
    run -0 "$PY" -c '
import msgpack
a = open("'"$T"'/u.bin", "rb").read(); b = open("'"$T"'/u2.bin", "rb").read()
ua = msgpack.packb({"kind": "embedding", "v": [1, 2, {"a": None}]})
assert b.startswith(ua), (a, b)
print(list(msgpack.Unpacker(__import__("io").BytesIO(b), raw=False))[1]["ids"])'
    assert_output "[1]"
}

@test "a truncated stream is an error naming the byte offset" {
    "$FR" --from-json <"$T/all.jsonl" >"$T/all.bin"
    size=$(stat -c %s "$T/all.bin")
    head -c $((size - 3)) "$T/all.bin" >"$T/cut.bin"
    run -1 "$FR" -i "$T/cut.bin"
    assert_output --partial "truncated frame at byte"
    assert_output --partial "$T/cut.bin"
    # a cut inside the first frame: still an error, not silence
    head -c 7 "$T/all.bin" >"$T/cut7.bin"
    run -1 "$FR" -i "$T/cut7.bin"
    assert_output --partial "truncated frame at byte 0"
}

@test "garbage and wrong field types are errors with offsets, never crashes" {
    printf '\xc1\x00\x01' >"$T/g.bin"
    run -1 "$FR" -i "$T/g.bin"
    assert_output --partial "byte 0"
    head -c 4096 /dev/urandom >"$T/r.bin"
    run -1 "$FR" -i "$T/r.bin"
    assert_output --partial "bn-frames:"
    echo '{"kind":"token","id":1}' | "$FR" --from-json >"$T/ok.bin"
    have_pymsgpack || skip "python3-msgpack missing for /usr/bin/python3"
    "$PY" -c 'import msgpack,sys; sys.stdout.buffer.write(msgpack.packb({"kind":"tokens","ids":"oops"}))' >>"$T/ok.bin"
    run -1 "$FR" -i "$T/ok.bin"
    assert_output --partial "field ids at byte"
}

@test "writing into a closed pipe: 'output closed by reader', exit 1" {
    yes '{"kind":"token","id":5}' | head -n 200000 >"$T/many.jsonl"
    run bash -c "'$FR' --from-json <'$T/many.jsonl' 2>'$T/err' | head -c 10 >/dev/null; echo \${PIPESTATUS[0]}"
    assert_output "1"
    run cat "$T/err"
    assert_output --partial "output closed by reader"
}

@test "text on stdout into a pipe closed early (| head): exit 0, no message" {
    # the write that hits EPIPE happens long before exit; bn_close_stdout must
    # still see that the reader left (it once reported EIO here)
    yes '{"kind":"token","id":5}' | head -n 200000 >"$T/many.jsonl"
    "$FR" --from-json <"$T/many.jsonl" >"$T/many.bin"
    run bash -c "'$FR' <'$T/many.bin' 2>'$T/err' | head -c 10 >/dev/null; echo \${PIPESTATUS[0]}"
    assert_output "0"
    run cat "$T/err"
    assert_output ""
}

@test "output files appear only when complete" {
    "$FR" --from-json -o "$T/out.bin" <"$T/all.jsonl"
    [ -s "$T/out.bin" ]
    run -0 bash -c "ls '$T' | grep -c tmp || true"
    assert_output "0"
    run -1 "$FR" --from-json -o "$T/bad.bin" <<<'{"kind":"token"}'
    [ ! -e "$T/bad.bin" ]
}

@test "ZeroMQ ipc: default rule (output binds, input connects), END ends the stream" {
    ep="ipc://$T/s"
    "$FR" -i "$ep" --timeout 5000 >"$T/recv.jsonl" &
    pid=$!
    "$FR" --from-json -o "$ep" --timeout 5000 <"$T/all.jsonl"
    wait $pid
    run -0 wc -l <"$T/recv.jsonl"
    # END with "more" does not end the stream; the final END does
    assert_output "10"
}

@test "ZeroMQ tcp: @ forces bind on the input, > forces connect on the output" {
    port=$(free_port)
    "$FR" -i "@tcp://127.0.0.1:$port" --timeout 5000 >"$T/recv.jsonl" &
    pid=$!
    "$FR" --from-json -o ">tcp://127.0.0.1:$port" --timeout 5000 <"$T/all.jsonl"
    wait $pid
    run -0 head -n 1 "$T/recv.jsonl"
    assert_output --partial '"kind":"hello"'
}

@test "a silent ZeroMQ peer times out with the endpoint named (flag and BN_TIMEOUT_MS)" {
    run -1 "$FR" -i "@ipc://$T/quiet" --timeout 300
    assert_output --partial "ipc://$T/quiet"
    assert_output --partial "within 300 ms"
    BN_TIMEOUT_MS=250 run -1 "$FR" -i "@ipc://$T/quiet2"
    assert_output --partial "within 250 ms"
}

@test "plaintext tcp binds only on loopback unless --insecure" {
    run -1 "$FR" -i "@tcp://0.0.0.0:$(free_port)" --timeout 100
    assert_output --partial "refusing a plaintext bind"
    run -1 "$FR" -i "@tcp://0.0.0.0:$(free_port)" --timeout 100 --insecure
    assert_output --partial "within 100 ms"
}

@test "bn-keygen: key pairs, modes, refuses to overwrite, --name adds a client" {
    run -0 bn-keygen --help
    run -2 bn-keygen
    run -0 bn-keygen "$T/keys"
    [ "$(stat -c %a "$T/keys/server.key")" = 600 ]
    [ "$(stat -c %a "$T/keys/client.key")" = 600 ]
    [ "$(wc -c <"$T/keys/server.pub")" -eq 41 ]
    cmp "$T/keys/client.pub" "$T/keys/authorized/client.pub"
    run -1 bn-keygen "$T/keys"
    assert_output --partial "exists"
    old=$(cat "$T/keys/server.pub")
    run -0 bn-keygen --force "$T/keys"
    [ "$(cat "$T/keys/server.pub")" != "$old" ]
    run -0 bn-keygen --name laptop "$T/keys"
    [ -f "$T/keys/authorized/laptop.pub" ]
    [ "$(stat -c %a "$T/keys/laptop.key")" = 600 ]
}

@test "CURVE: right keys get through, a wrong client key is refused and logged" {
    bn-keygen "$T/k" 2>/dev/null
    mkdir "$T/bad"
    bn-keygen --name client "$T/bad" 2>/dev/null   # a pair the server does not know
    cp "$T/k/server.pub" "$T/bad/"
    port=$(free_port)
    "$FR" -i "@tcp://127.0.0.1:$port" --curve-keys "$T/k" --timeout 5000 >"$T/ok.jsonl" 2>"$T/ok.err" &
    pid=$!
    "$FR" --from-json -o ">tcp://127.0.0.1:$port" --curve-keys "$T/k" --timeout 5000 <"$T/all.jsonl"
    wait $pid
    [ "$(wc -l <"$T/ok.jsonl")" -eq 10 ]

    port=$(free_port)
    "$FR" -i "@tcp://127.0.0.1:$port" --curve-keys "$T/k" --timeout 1500 >"$T/bad.jsonl" 2>"$T/bad.err" &
    pid=$!
    "$FR" --from-json -o ">tcp://127.0.0.1:$port" --curve-keys "$T/bad" --timeout 1000 <"$T/all.jsonl" 2>/dev/null || true
    st=0
    wait $pid || st=$?
    [ "$st" -eq 1 ]
    [ ! -s "$T/bad.jsonl" ]
    run cat "$T/bad.err"
    assert_output --partial "refused a client from 127.0.0.1"
    assert_output --partial "within 1500 ms"
}

@test "timing frames: text and JSON summaries, Chrome trace file" {
    cat >"$T/t.jsonl" <<'EOF'
{"kind":"timing","stage":"bn-tokenize","event":"tokenize","ns":2000000,"count":12,"t_start_ns":1000000000}
{"kind":"timing","stage":"bn-forward","event":"load","ns":500000000,"t_start_ns":1002000000}
{"kind":"timing","stage":"bn-forward","event":"prefill","ns":120000000,"count":12,"t_start_ns":1502000000}
{"kind":"timing","stage":"bn-forward","event":"decode","ns":50000000,"count":2,"t_start_ns":1622000000}
{"kind":"timing","stage":"bn-sample","event":"sample","ns":1000000,"count":2,"t_start_ns":1672000000}
{"kind":"end"}
EOF
    "$FR" --from-json <"$T/t.jsonl" >"$T/t.bin"
    run -0 --separate-stderr "$FR" -i "$T/t.bin" --summary --trace "$T/trace.json"
    [[ "$stderr" == *"prefill        120.00 ms /     12 tokens (  10.000 ms/token,   100.00 tok/s)"* ]]
    [[ "$stderr" == *"decode          50.00 ms /      2 tokens (  25.000 ms/token,    40.00 tok/s)"* ]]
    [[ "$stderr" == *"total          673.00 ms"* ]]
    run -0 --separate-stderr "$FR" -i "$T/t.bin" --summary-json
    run -0 "$PY" -c '
import json, sys
j = json.loads(sys.argv[1])
assert j["total_duration"] == 673000000 and j["load_duration"] == 500000000
assert j["prompt_eval_count"] == 12 and j["prompt_eval_duration"] == 120000000
assert j["eval_count"] == 2 and j["eval_duration"] == 50000000
assert j["stages"]["bn-sample"]["sample"]["ns"] == 1000000
t = json.load(open(sys.argv[2]))
ev = [e for e in t["traceEvents"] if e["ph"] == "X"]
assert len(ev) == 5 and ev[0]["name"] == "tokenize" and ev[0]["ts"] == 1000000.0 and ev[0]["dur"] == 2000.0
print("ok")' "$stderr" "$T/trace.json"
    assert_output "ok"
}
