#!/usr/bin/env bats
# bn-sample on crafted frames (bn-frames --from-json): greedy ties, bias,
# stop rules, seeds, --json, feedback socket, pass-through and bad input.
load helpers

setup() {
    TMP="$BATS_TEST_TMPDIR"
    BF="$BN_TESTBIN/bn-frames"
    KJV="$BN_DATA/tokenizer/kjv-tokenizer.model"
    HELLO='{"kind":"hello","proto":1,"stage":"fake-forward","n_vocab":4,"eos":3,"eog":[3]}'
}

# frames FILE: JSON lines on stdin -> frames in FILE
frames() { "$BF" --from-json > "$1"; }
# row POS A B C D: a logits frame of one row over a 4-token vocabulary
row() { echo "{\"kind\":\"logits\",\"pos\":$1,\"n_rows\":1,\"n_vocab\":4,\"data\":[$2,$3,$4,$5]}"; }
# errs CMD...: run CMD with stdout discarded and stderr captured (for `run`)
errs() { "$@" 2>&1 >/dev/null; }
# onehot POS ID N: a logits row over N ids whose argmax is ID
onehot() {
    awk -v p="$1" -v id="$2" -v n="$3" 'BEGIN { printf "{\"kind\":\"logits\",\"pos\":%d,\"n_rows\":1,\"n_vocab\":%d,\"data\":[", p, n;
        for (i = 0; i < n; i++) printf "%s%s", (i ? "," : ""), (i == id ? "10" : "0"); print "]}" }'
}
@test "bn-sample: --help, --version, usage errors exit 2" {
    run bn-sample --help
    assert_success
    assert_output --partial "usage: bn-sample"
    run bn-sample --version
    assert_success
    assert_output --partial "bn-sample"
    run bn-sample --bogus
    assert_failure 2
    run bn-sample --stop "x"
    assert_failure 2
    assert_output --partial "needs the vocabulary"
    run bn-sample --top-p 1.5
    assert_failure 2
    run bn-sample --logit-bias 5
    assert_failure 2
    assert_output --partial "logit-bias"
    run bn-sample --seed -1
    assert_failure 2
    run bn-sample extra
    assert_failure 2
}

@test "greedy: argmax per logits frame, ties -> lowest id, last row of a multi-row frame" {
    { echo "$HELLO"; row 2 0 1 5 2; row 3 1 7 7 0;
      echo '{"kind":"logits","pos":4,"n_rows":2,"n_vocab":4,"data":[9,0,0,0, 0,0,2,0]}'
      echo '{"kind":"end"}'; } | frames "$TMP/in"
    run bash -c "bn-sample --greedy < '$TMP/in' > '$TMP/out' && '$BF' < '$TMP/out'"
    assert_success
    run bash -c "'$BF' < '$TMP/out' | grep -o '\"kind\":\"token\",\"seq\":0,\"pos\":[0-9]*,\"id\":[0-9]*'"
    assert_line --index 0 '"kind":"token","seq":0,"pos":3,"id":2'
    assert_line --index 1 '"kind":"token","seq":0,"pos":4,"id":1'
    assert_line --index 2 '"kind":"token","seq":0,"pos":6,"id":2'
    [ "${#lines[@]}" -eq 3 ]
}

@test "frame order: hello first, timing passed through, per-generation end (more) and a final end" {
    { echo "$HELLO"; row 2 0 1 5 2;
      echo '{"kind":"timing","stage":"bn-forward","event":"decode","ns":5,"count":1}'
      row 3 0 0 0 9; echo '{"kind":"end"}'; } | frames "$TMP/in"
    bn-sample --greedy < "$TMP/in" > "$TMP/out"
    run bash -c "'$BF' < '$TMP/out' | sed -E 's/^\\{\"kind\":\"([a-z]+)\".*(\"more\":true)?.*/\\1/'"
    assert_success
    assert_line --index 0 hello
    assert_line --index 1 token
    assert_line --index 2 timing
    # EOG (id 3): no token, then bn-sample's timing and END(more), then wait/codec timing and the final END
    run bash -c "'$BF' < '$TMP/out'"
    assert_line --index 2 --partial '"stage":"bn-forward","event":"decode"'
    assert_line --index 3 --partial '"stage":"bn-sample","event":"sample"'
    assert_line --index 4 '{"kind":"end","seq":0,"more":true}'
    assert_line --index 7 '{"kind":"end","seq":0}'
    refute_output --partial '"id":3'
}

@test "-n N ends a generation after N tokens" {
    { echo "$HELLO"; row 2 0 1 5 2; row 3 0 9 5 2; row 4 9 0 0 0; echo '{"kind":"end"}'; } | frames "$TMP/in"
    bn-sample --greedy -n 2 < "$TMP/in" > "$TMP/out"
    run bash -c "'$BF' < '$TMP/out' | grep -n -E '\"kind\":\"(token|end)\"'"
    assert_line --index 0 --partial '"pos":3,"id":2'
    assert_line --index 1 --partial '"pos":4,"id":1'
    assert_line --index 2 --partial '"more":true'
    # without a feedback socket the next logits start a new generation
    assert_line --index 3 --partial '"pos":5,"id":0'
}

@test "--logit-bias: ban and boost change the greedy choice" {
    { echo "$HELLO"; row 2 0 1 5 2; echo '{"kind":"end"}'; } | frames "$TMP/in"
    run bash -c "bn-sample --greedy --logit-bias 2-inf < '$TMP/in' | '$BF'"
    refute_output --partial '"kind":"token"' # next best is the EOG id 3: it ends the generation, not shown
    run bash -c "bn-sample --greedy --logit-bias 2-inf --json < '$TMP/in'"
    assert_output --partial '"reason":"eog"'
    run bash -c "bn-sample --greedy --logit-bias 0+10 < '$TMP/in' | '$BF' | grep token"
    assert_output --partial '"id":0'
    run errs bn-sample --greedy --logit-bias 9+1 < "$TMP/in"
    assert_failure 1
    assert_output --partial "id 9 outside the vocabulary"
}

@test "--json: one line per token with logprob and sorted alternatives, then a done line" {
    { echo "$HELLO"; row 2 0 0 0.6931471805599453 -1000; row 3 0 1 0 -1000; echo '{"kind":"end"}'; } | frames "$TMP/in"
    run bn-sample --greedy --json --n-probs 2 < "$TMP/in"
    assert_success
    # p = 2/4 for id 2 in the first row: logprob = log 0.5
    assert_line --index 0 --regexp '^\{"pos":3,"id":2,"logprob":-0.69314[0-9]*,"top":\[\{"id":2,"logprob":-0.69314[0-9]*\},\{"id":0,"logprob":-1.3862[0-9]*\}\]\}$'
    assert_line --index 1 --regexp '^\{"pos":4,"id":1,'
    assert_line --index 2 --regexp '^\{"done":true,"reason":"end","eval_count":2,'
    # --json FILE keeps the frames on stdout
    bn-sample --greedy --json "$TMP/j" < "$TMP/in" > "$TMP/out"
    run cat "$TMP/j"
    assert_line --index 0 --partial '"id":2'
    run bash -c "'$BF' < '$TMP/out' | grep -c token"
    assert_output 2
}

@test "seeds: same seed -> same tokens, another seed -> different, temperature sampling covers the vocabulary" {
    { echo "$HELLO"; for i in $(seq 2 201); do row $i 0 0 0 -1000; done; echo '{"kind":"end"}'; } | frames "$TMP/in"
    bn-sample --seed 7 --temp 1 < "$TMP/in" | "$BF" | grep token > "$TMP/a"
    bn-sample --seed 7 --temp 1 < "$TMP/in" | "$BF" | grep token > "$TMP/b"
    bn-sample --seed 8 --temp 1 < "$TMP/in" | "$BF" | grep token > "$TMP/c"
    cmp "$TMP/a" "$TMP/b"
    ! cmp -s "$TMP/a" "$TMP/c"
    [ "$(wc -l < "$TMP/a")" -eq 200 ]
    # ids 0..2 equally likely, 3 (EOG) practically never: each seen 200/3 +- 5 sd (sd ~ 6.7) times
    for id in 0 1 2; do
        n=$(grep -c "\"id\":$id}" "$TMP/a")
        [ "$n" -gt 33 ] && [ "$n" -lt 100 ]
    done
}

@test "--stop-on-repeat K ends a looping generation and says so" {
    { echo "$HELLO"; for i in $(seq 2 2 20); do row $i 9 0 0 0; row $((i+1)) 0 9 0 0; done; echo '{"kind":"end"}'; } | frames "$TMP/in"
    run bash -c "bn-sample --greedy --stop-on-repeat 3 --json < '$TMP/in' 2>'$TMP/err'"
    assert_success
    # 0 1 0 1 0: the last three (0 1 0) repeat the span at 0
    assert_line --index 5 --regexp '"done":true,"reason":"repeat","eval_count":5'
    run cat "$TMP/err"
    assert_output --partial "repeat"
}

@test "--stop STRING with -m: the token completing the string is the last" {
    ids=(1037 261 2076 391 3304 261 738 270 261 624 4057)
    { echo '{"kind":"hello","proto":1,"stage":"fake","n_vocab":4096,"eos":2,"eog":[2]}'
      p=1; for id in "${ids[@]}"; do onehot $p $id 4096; p=$((p+1)); done; echo '{"kind":"end"}'; } | frames "$TMP/in"
    run bn-sample -m "$KJV" --greedy --json < "$TMP/in"
    assert_success
    assert_line --index 0 --partial '"text":"'
    [ "${#lines[@]}" -eq 12 ]
    run bn-sample -m "$KJV" --greedy --json --stop "God cr" < "$TMP/in"
    assert_success
    # " In the beginning God created": the 5th token completes "God cr"
    assert_line --index 4 --partial '"text":" created"'
    assert_line --index 5 --partial '"reason":"stop","eval_count":5'
    # frames: END(more) follows the completing token; the text so far ends with it
    run bash -c "bn-sample -m '$KJV' --greedy --stop 'heaven' < '$TMP/in' | '$BF' | grep -E -m 8 '\"kind\":\"(token|end)\"' | tail -2"
    assert_line --index 0 --partial '"id":738'
    assert_line --index 1 --partial '"more":true'
}

@test "vocabulary check: -m with a different vocabulary than the hello's is an error" {
    fp=$(printf 'x%.0s' $(seq 64))
    { echo "{\"kind\":\"hello\",\"proto\":1,\"stage\":\"fake\",\"n_vocab\":4096,\"vocab_fp\":\"$fp\"}"; onehot 1 5 4096; } | frames "$TMP/in"
    run errs bn-sample -m "$KJV" --greedy < "$TMP/in"
    assert_failure 1
    assert_output --partial "vocabulary differs"
}

@test "feedback: tokens and END(more) go back to the endpoint in hello.feedback" {
    ep="ipc://$TMP/fb"
    timeout 20 "$BF" -i "@$ep" --timeout 3000 > "$TMP/fb.json" 2>"$TMP/fb.err" &
    pid=$!
    sleep 0.3
    { echo "{\"kind\":\"hello\",\"proto\":1,\"stage\":\"fake\",\"n_vocab\":4,\"eos\":3,\"eog\":[3],\"feedback\":\"$ep\"}"
      row 2 0 1 5 2; row 3 0 9 5 2; row 4 0 0 0 9; echo '{"kind":"end"}'; } | frames "$TMP/in"
    run bash -c "bn-sample --greedy < '$TMP/in' | '$BF'"
    assert_success
    refute_output --partial "feedback\":\"ipc" # the endpoint is not passed downstream
    wait $pid || true
    run cat "$TMP/fb.json"
    assert_line --index 0 '{"kind":"token","seq":0,"pos":3,"id":2}'
    assert_line --index 1 '{"kind":"token","seq":0,"pos":4,"id":1}'
    # the EOG token is fed back (bn-forward's cache ends the turn) but not shown downstream
    assert_line --index 2 '{"kind":"token","seq":0,"pos":5,"id":3}'
    assert_line --index 3 '{"kind":"end","seq":0,"more":true}'
}

@test "after END on feedback, the logits of the last fed token are dropped; later ones start a new generation" {
    ep="ipc://$TMP/fb2"
    timeout 20 "$BF" -i "@$ep" --timeout 3000 > /dev/null 2>&1 &
    pid=$!
    sleep 0.3
    { echo "{\"kind\":\"hello\",\"proto\":1,\"stage\":\"fake\",\"n_vocab\":4,\"eos\":3,\"eog\":[3],\"feedback\":\"$ep\"}"
      row 2 0 1 5 2; row 3 9 0 0 0; row 6 0 9 0 0; echo '{"kind":"end"}'; } | frames "$TMP/in"
    run bash -c "bn-sample --greedy -n 1 < '$TMP/in' | '$BF' | grep -o '\"pos\":[0-9]*,\"id\":[0-9]*'"
    wait $pid || true
    # pos 3 logits answer the fed token 2 -> dropped; pos 6 is a new prompt -> sampled
    assert_line --index 0 '"pos":3,"id":2'
    assert_line --index 1 '"pos":7,"id":1'
    [ "${#lines[@]}" -eq 2 ]
}

@test "bad input: garbage, truncated stream, wrong frame kind, logits before hello, n_vocab mismatch, NaN, upstream error" {
    printf 'this is not msgpack at all' > "$TMP/garbage"
    run errs bn-sample --greedy < "$TMP/garbage"
    assert_failure 1
    assert_output --regexp "^bn-sample: "
    { echo "$HELLO"; row 2 0 1 5 2; } | frames "$TMP/ok"
    head -c $(( $(stat -c %s "$TMP/ok") - 5 )) "$TMP/ok" > "$TMP/trunc"
    run errs bn-sample --greedy < "$TMP/trunc"
    assert_failure 1
    { echo "$HELLO"; echo '{"kind":"token","id":1}'; } | frames "$TMP/kind"
    run errs bn-sample --greedy < "$TMP/kind"
    assert_failure 1
    assert_output --partial "unexpected token frame"
    row 2 0 1 5 2 | frames "$TMP/nohello"
    run errs bn-sample --greedy < "$TMP/nohello"
    assert_failure 1
    assert_output --partial "before hello"
    { echo "$HELLO"; echo '{"kind":"logits","pos":2,"n_rows":1,"n_vocab":3,"data":[0,1,2]}'; } | frames "$TMP/nv"
    run errs bn-sample --greedy < "$TMP/nv"
    assert_failure 1
    assert_output --partial "n_vocab 3, hello said 4"
    { echo "$HELLO"; echo '{"kind":"error","stage":"bn-forward","text":"model exploded"}'; } | frames "$TMP/err"
    run errs bn-sample --greedy < "$TMP/err"
    assert_failure 1
    assert_output --partial "bn-forward: model exploded"
    : > "$TMP/empty"
    run errs bn-sample --greedy < "$TMP/empty"
    assert_failure 1
    assert_output --partial "before a hello"
    # EOF in the middle of a generation with a feedback socket = the peer died
    ep="ipc://$TMP/fb3"
    { echo "{\"kind\":\"hello\",\"proto\":1,\"stage\":\"fake\",\"n_vocab\":4,\"feedback\":\"$ep\"}"; row 2 0 1 5 2; } | frames "$TMP/mid"
    timeout 20 "$BF" -i "@$ep" --timeout 2000 > /dev/null 2>&1 &
    run errs timeout 20 bn-sample --greedy < "$TMP/mid"
    assert_failure 1
    assert_output --partial "mid-generation"
}

@test "NaN logits are an error naming the id" {
    printf '%s' "$HELLO" | frames "$TMP/h"
    /usr/bin/python3 -c 'import msgpack' 2>/dev/null || skip "python3-msgpack missing"
    /usr/bin/python3 - "$TMP/nan" <<'EOF'
import msgpack, struct, sys
open(sys.argv[1], "wb").write(msgpack.packb({"kind": "logits", "pos": 2, "n_rows": 1, "n_vocab": 4,
    "data": struct.pack("<4f", 0.0, float("nan"), 1.0, 2.0)}))
EOF
    cat "$TMP/h" "$TMP/nan" > "$TMP/in"
    run errs bn-sample --greedy < "$TMP/in"
    assert_failure 1
    assert_output --partial "id 1: NaN"
}

@test "a reader that goes away (| head -c) is a clean exit" {
    { echo "$HELLO"; for i in $(seq 2 3000); do row $i 0 1 5 2; done; echo '{"kind":"end"}'; } | frames "$TMP/in"
    run bash -c "set -o pipefail; bn-sample --greedy < '$TMP/in' | head -c 100 > /dev/null"
    assert_success
}
