#!/usr/bin/env bats
# bn-detok: streaming, byte fallback, special tokens, frames, bad input.
load helpers

setup() {
    D="$BN_DATA/tokenizer"
    KJV="$D/kjv-tokenizer.model"
    SPM="$D/ggml-vocab-llama-spm.gguf"
    GPT2="$D/ggml-vocab-gpt-2.gguf"
    TMP="$BATS_TEST_TMPDIR"
    TF="$BN_TESTBIN/tokframes"
}

@test "bn-detok: --help, --version, usage errors" {
    run bn-detok --help
    assert_success
    assert_output --partial "usage: bn-detok"
    run bn-detok --version
    assert_success
    run bn-detok --ids
    assert_failure 2
}

@test "--ids: plain ids to text, SPM leading space stripped after BOS" {
    run bn-detok -m "$KJV" --ids -q <<< "1 1037 261 2076 391 3304 261 738 270 261 624 4057"
    assert_success
    assert_output "In the beginning God created the heaven and the earth."
}

@test "streaming: ids one at a time through a pipe give the same text as all at once" {
    ids=$(bn-tokenize -m "$SPM" -p "Grüße, 🦙 and €5!" --ids)
    all=$(echo "$ids" | bn-detok -m "$SPM" --ids -q)
    slow=$(for i in $ids; do echo "$i"; sleep 0.05; done | bn-detok -m "$SPM" --ids -q)
    [ "$all" = "Grüße, 🦙 and €5!" ]
    [ "$slow" = "$all" ]
    ids=$(bn-tokenize -m "$GPT2" -p "Grüße, 🦙 and €5!" --ids)
    slow=$(for i in $ids; do echo "{\"kind\":\"token\",\"id\":$i}"; sleep 0.05; done | "$TF" | bn-detok -m "$GPT2" -q)
    [ "$slow" = "Grüße, 🦙 and €5!" ]
}

@test "streaming: text is flushed per token, before the stream ends" {
    mkfifo "$TMP/fifo"
    bn-detok -m "$KJV" --ids -q < "$TMP/fifo" > "$TMP/out" 3>&- &
    pid=$!
    exec 7> "$TMP/fifo"
    echo "1 1037 261" >&7
    for _ in 1 2 3 4 5 6 7 8 9 10; do [ -s "$TMP/out" ] && break; sleep 0.2; done
    run cat "$TMP/out"
    assert_output "In the"
    echo "2076" >&7
    exec 7>&-
    wait "$pid"
    run cat "$TMP/out"
    assert_output "In the beginning"
}

@test "byte-fallback tokens are held until the character is complete" {
    # 🦙 = <0xF0> <0x9F> <0xA6> <0x99> in llama-spm (ids 243 162 169 156)
    mkfifo "$TMP/fifo"
    bn-detok -m "$SPM" --ids -q < "$TMP/fifo" > "$TMP/out" 3>&- &
    pid=$!
    exec 7> "$TMP/fifo"
    echo "15043 243 162" >&7
    for _ in 1 2 3 4 5 6 7 8 9 10; do [ -s "$TMP/out" ] && break; sleep 0.2; done
    sleep 0.2
    run cat "$TMP/out"
    assert_output "Hello"
    echo "169 156" >&7
    exec 7>&-
    wait "$pid"
    run cat "$TMP/out"
    assert_output "Hello🦙"
}

@test "a character cut off at the end becomes U+FFFD" {
    run bn-detok -m "$SPM" --ids -q <<< "15043 243 162"
    assert_output "Hello�"
}

@test "--special shows control tokens, hidden by default" {
    run bn-detok -m "$SPM" --ids -q <<< "1 15043 2"
    assert_output "Hello"
    run bn-detok -m "$SPM" --ids -q --special <<< "1 15043 2"
    assert_output "<s> Hello</s>"
}

@test "frames: token, tokens and text frames are printed; timing summary; --quiet; --stats" {
    printf '%s\n' '{"kind":"hello","stage":"test","n_vocab":4096}' '{"kind":"tokens","ids":[1,1037,261]}' \
        '{"kind":"token","id":2076}' '{"kind":"text","text":" [t]"}' \
        '{"kind":"timing","stage":"bn-forward","event":"decode","ns":2000000,"count":4}' | "$TF" > "$TMP/f.bin"
    run bn-detok -m "$KJV" --in "$TMP/f.bin" --stats "$TMP/s.json"
    assert_success
    assert_output --partial "In the beginning [t]"
    assert_output --partial "2.00 ms /      4 tokens"
    assert_output --regexp "detok +[0-9.]+ ms"
    grep -q '"bn-forward":{"decode":{"ns":2000000,"count":4,"n":1}}' "$TMP/s.json"
    grep -q '"detok_count":4' "$TMP/s.json"
    run bn-detok -m "$KJV" -q --in "$TMP/f.bin"
    assert_output "In the beginning [t]"
}

@test "end frame flushes and restarts the sequence" {
    printf '%s\n' '{"kind":"tokens","ids":[1,1037]}' '{"kind":"end","more":true}' '{"kind":"tokens","ids":[1,1037]}' | "$TF" > "$TMP/f.bin"
    run bn-detok -m "$KJV" -q --in "$TMP/f.bin"
    assert_output "InIn"
}

@test "end frame without more ends the stream (no EOF needed, as over ZeroMQ)" {
    printf '%s\n' '{"kind":"tokens","ids":[1,1037]}' '{"kind":"end"}' '{"kind":"tokens","ids":[1,1037]}' | "$TF" > "$TMP/f.bin"
    run bn-detok -m "$KJV" -q --in "$TMP/f.bin"
    assert_success
    assert_output "In"
}

@test "out-of-range id is a clear error" {
    run bn-detok -m "$KJV" --ids -q <<< "1 4096"
    assert_failure 1
    assert_output --partial "token id 4096 out of range (vocabulary of 4096)"
    run bn-detok -m "$KJV" --ids -q <<< "-5"
    assert_failure 1
    assert_output --partial "out of range"
}

@test "garbage on stdin: frames and --ids" {
    head -c 3000 /dev/urandom > "$TMP/junk"
    run bn-detok -m "$KJV" -q < "$TMP/junk"
    assert_failure 1
    assert_output --partial "bn-detok: "
    run bn-detok -m "$KJV" --ids -q <<< "12 abc"
    assert_failure 1
    assert_output --partial "not a token id"
}

@test "vocabulary mismatch between tokenizer and detokenizer" {
    run bash -c "bn-tokenize -m '$GPT2' -p hi | bn-detok -m '$KJV' -q"
    assert_failure 1
    assert_output --partial "vocabulary mismatch: tokenizer 970836353b582d0b vs model af427572e526cdad"
}

@test "error frame from upstream ends with its message" {
    printf '%s\n' '{"kind":"error","stage":"bn-forward","message":"out of memory"}' | "$TF" > "$TMP/f.bin"
    run bn-detok -m "$KJV" -q --in "$TMP/f.bin"
    assert_failure 1
    assert_output --partial "upstream bn-forward: out of memory"
}

@test "missing model and model without vocabulary" {
    run bn-detok -m "$TMP/none.gguf" --ids <<< "1"
    assert_failure 1
    assert_output --partial "cannot open"
    printf 'GGUF\003\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000' > "$TMP/empty.gguf"
    run bn-detok -m "$TMP/empty.gguf" --ids <<< "1"
    assert_failure 1
    assert_output --partial "no vocabulary"
}
