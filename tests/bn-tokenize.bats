#!/usr/bin/env bats
# bn-tokenize: vectors, options, frames, bad input. Needs only tests/data.
load helpers

setup() {
    D="$BN_DATA/tokenizer"
    KJV="$D/kjv-tokenizer.model"
    SPM="$D/ggml-vocab-llama-spm.gguf"
    GPT2="$D/ggml-vocab-gpt-2.gguf"
    TMP="$BATS_TEST_TMPDIR"
}

@test "bn-tokenize: --help, --version, usage errors" {
    run bn-tokenize --help
    assert_success
    assert_output --partial "usage: bn-tokenize"
    run bn-tokenize --version
    assert_success
    assert_output --partial "bn-tokenize"
    run bn-tokenize -p hi
    assert_failure 2
    run bn-tokenize -m "$KJV" --bogus
    assert_failure 2
}

@test "llama.cpp vectors: llama-spm 46/46 and gpt-2 46/46 with round trips" {
    run "$BN_TESTBIN/tokvec" inp "$SPM" "$SPM.inp" "$SPM.out"
    assert_success
    assert_output --partial "matched 46/46, round trip 46/46"
    run "$BN_TESTBIN/tokvec" inp "$GPT2" "$GPT2.inp" "$GPT2.out"
    assert_success
    assert_output --partial "matched 46/46, round trip 46/46"
}

@test "npm llama-tokenizer-js vectors 12/12 on llama-spm" {
    run "$BN_TESTBIN/tokvec" inp "$SPM" "$D/llama-spm.llama-tokenizer-js-1.2.2.inp" "$D/llama-spm.llama-tokenizer-js-1.2.2.out"
    assert_success
    assert_output --partial "matched 12/12"
}

@test "llama.cpp special-token and detok cases on llama-spm (jsonl)" {
    run "$BN_TESTBIN/tokvec" jsonl "$SPM" "$D/llama-spm.llamacpp-special-detok.jsonl"
    assert_success
    assert_output --partial "matched 260/260"
}

@test "kjv tokenizer.model reproduces ref_ids.bin (BOS + Genesis 1:1)" {
    run "$BN_TESTBIN/tokvec" ids "$KJV" "$D/kjv-ref.txt" "$D/kjv-ref_ids.bin"
    assert_success
    assert_output --partial "matched 12/12"
    want=$(od -An -v -t d4 "$D/kjv-ref_ids.bin" | xargs)
    run bn-tokenize -m "$KJV" -f "$D/kjv-ref.txt" --ids
    assert_success
    assert_output "$want"
}

@test "-p, -f and stdin give the same ids; --no-bos drops BOS" {
    a=$(bn-tokenize -m "$SPM" -p "Hello world" --ids)
    printf 'Hello world' > "$TMP/in.txt"
    b=$(bn-tokenize -m "$SPM" -f "$TMP/in.txt" --ids)
    c=$(printf 'Hello world' | bn-tokenize -m "$SPM" --ids)
    [ "$a" = "1 15043 3186" ]
    [ "$a" = "$b" ] && [ "$a" = "$c" ]
    run bn-tokenize -m "$SPM" -p "Hello world" --ids --no-bos
    assert_output "15043 3186"
}

@test "--special parses control tokens; plain text otherwise" {
    run bn-tokenize -m "$SPM" -p "<s>hi</s>" --ids --no-bos --special
    assert_output "1 7251 2"
    run bn-tokenize -m "$SPM" -p "<s>" --ids --no-bos
    refute_output "1"
    run bn-tokenize -m "$GPT2" -p "a<|endoftext|>" --ids --special
    assert_output "64 50256"
}

@test "-e processes escapes" {
    run bn-tokenize -m "$GPT2" -p 'a\nb' -e --ids
    assert_output "$(printf 'a\nb' | bn-tokenize -m "$GPT2" --ids)"
}

@test "--chat: model without template errors clearly; --chat-template chooses one" {
    run bn-tokenize -m "$KJV" -p hi --chat --ids
    assert_failure 1
    assert_output --partial "no tokenizer.chat_template"
    run bn-tokenize -m "$SPM" -p hi --chat --chat-template llama2 --system "Be brief." --ids
    assert_success
    assert_output "$(bn-tokenize -m "$SPM" -e -p '[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nhi [/INST]' --ids)"
    run bn-tokenize -m "$SPM" -p hi --chat --chat-template nope
    assert_failure 1
    assert_output --partial "unknown name"
}

@test "empty input gives only BOS; 1 MB input works" {
    run bn-tokenize -m "$KJV" -p "" --ids
    assert_output "1"
    run bn-tokenize -m "$GPT2" -p "" --ids
    assert_output ""
    yes "In the beginning God created the heaven and the earth, 1234." | head -c 1048576 > "$TMP/big.txt"
    run bn-tokenize -m "$KJV" -f "$TMP/big.txt" --ids
    assert_success
    n=$(echo "$output" | wc -w)
    [ "$n" -gt 200000 ]
    bn-tokenize -m "$KJV" -f "$TMP/big.txt" | bn-detok -m "$KJV" -q > "$TMP/back.txt"
    cmp "$TMP/big.txt" "$TMP/back.txt"
}

@test "invalid UTF-8 is rejected with its byte offset" {
    printf 'abc\xff def' > "$TMP/bad.txt"
    run bn-tokenize -m "$SPM" -f "$TMP/bad.txt" --ids
    assert_failure 1
    assert_output --partial "invalid UTF-8 at byte offset 3"
}

@test "missing model, model without vocabulary, garbage model" {
    run bn-tokenize -m "$TMP/none.gguf" -p hi
    assert_failure 1
    assert_output --partial "cannot open"
    printf 'GGUF\003\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000' > "$TMP/empty.gguf"
    run bn-tokenize -m "$TMP/empty.gguf" -p hi
    assert_failure 1
    assert_output --partial "tokenizer.ggml.model: missing"
    head -c 5000 /dev/urandom > "$TMP/junk.bin"
    run bn-tokenize -m "$TMP/junk.bin" -p hi
    assert_failure 1
    assert_output --partial "bn-tokenize: "
}

@test "frames: bn-tokenize | bn-detok reproduces the text (SPM and BPE)" {
    for m in "$KJV" "$SPM" "$GPT2"; do
        out=$(bn-tokenize -m "$m" -p "Héllo  world, 1 2 3 ü 日本 🦙!" | bn-detok -m "$m" -q)
        [ "$out" = "Héllo  world, 1 2 3 ü 日本 🦙!" ]
    done
}

@test "--out writes the frames to a file" {
    bn-tokenize -m "$KJV" -p "Jesus wept." -o "$TMP/f.bin"
    [ -s "$TMP/f.bin" ]
    run bn-detok -m "$KJV" -q --in "$TMP/f.bin"
    assert_output "Jesus wept."
}

@test "bn-tokenize: frames end with END; --pos offsets the tokens; --keep-open leaves the stream open" {
    run bash -c "bn-tokenize -m '$SPM' -p Hello --no-bos --pos 7 | '$BN_TESTBIN/bn-frames'"
    assert_success
    assert_line --index 1 --partial '"kind":"tokens","seq":0,"pos":7,"ids":[15043]'
    assert_line --index 3 '{"kind":"end","seq":0}'
    run bash -c "bn-tokenize -m '$SPM' -p Hello --keep-open | '$BN_TESTBIN/bn-frames'"
    assert_success
    refute_output --partial '"kind":"end"'
    run bn-tokenize -m "$SPM" -p Hello --pos -1
    assert_failure 2
    run bn-tokenize -m "$SPM" -p Hello --timeout soon
    assert_failure 2
    assert_output --partial "--timeout: bad value"
}
