#!/usr/bin/env bats
# Tokenizer parity on the reference files that are too big to copy into
# tests/data: the LLaMA 3 BPE vocabularies (llama-bpe and the real
# bitnet-b1.58-2B-4T vocab) and the whole kjv eval set. Reads $BN_SHARED.
load ../helpers

setup() {
    S="$BN_SHARED/tokenizer"
    K="$BN_SHARED/models/kjv-bitnet-tiny"
    D="$BN_DATA/tokenizer"
    BPE="$S/ggml-vocab-llama-bpe.gguf"
    B4T="$S/bitnet-b1.58-2B-4T.vocab.gguf"
    [ -f "$BPE" ] || skip "no $BPE"
}

@test "llama.cpp vectors on llama-bpe: 46/46, round trip 46/46" {
    run "$BN_TESTBIN/tokvec" inp "$BPE" "$S/ggml-vocab-llama-bpe.gguf.inp" "$S/ggml-vocab-llama-bpe.gguf.out"
    assert_success
    assert_output --partial "matched 46/46, round trip 46/46"
}

@test "real 2B-4T vocab (no tokenizer.ggml.pre) tokenizes the llama3 vectors identically" {
    run "$BN_TESTBIN/tokvec" inp "$B4T" "$S/ggml-vocab-llama-bpe.gguf.inp" "$S/ggml-vocab-llama-bpe.gguf.out"
    assert_success
    assert_output --partial "matched 46/46, round trip 46/46"
    run "$BN_TESTBIN/tokvec" inp "$B4T" "$S/llama-bpe.llama3-tokenizer-js-1.2.0.inp" "$S/llama-bpe.llama3-tokenizer-js-1.2.0.out"
    assert_success
    assert_output --partial "matched 14/14"
}

@test "npm llama3-tokenizer-js vectors 14/14 on llama-bpe" {
    run "$BN_TESTBIN/tokvec" inp "$BPE" "$S/llama-bpe.llama3-tokenizer-js-1.2.0.inp" "$S/llama-bpe.llama3-tokenizer-js-1.2.0.out"
    assert_success
    assert_output --partial "matched 14/14"
}

@test "llama.cpp special-token and detok cases on llama-bpe and 2B-4T (jsonl)" {
    run "$BN_TESTBIN/tokvec" jsonl "$BPE" "$S/llama-bpe.llamacpp-special-detok.jsonl"
    assert_success
    assert_output --partial "matched 320/320"
    run "$BN_TESTBIN/tokvec" jsonl "$B4T" "$S/llama-bpe.llamacpp-special-detok.jsonl"
    assert_success
    assert_output --partial "matched 320/320"
}

@test "2B-4T: BOS 128000, EOS 128001, EOG {128001, 128009}, llama3 rules, published token hash" {
    run "$BN_TESTBIN/tokvec" info "$B4T"
    assert_success
    assert_output --partial "type=gpt2 pre=llama3 n_tokens=128256 n_merges=280147 bos=128000 eos=128001"
    assert_output --partial "eot=128009"
    assert_output --partial "eog=128001,128009"
    # sha256 of the NUL-terminated tokens = the value BitNet-rs publishes for the official GGUF
    assert_output --partial "fingerprint=6bb6260c"
    run bn-tokenize -m "$B4T" -p "I" --ids
    assert_output "128000 40"
}

@test "2B-4T chat: HF bitnet template gives the transformers test ids" {
    run bn-tokenize -m "$B4T" -p "How are you?" --chat --chat-template bitnet --ids
    assert_output "128000 1502 25 2650 527 499 30 128009 72803 25 220"
    run bn-tokenize -m "$B4T" -p "<|begin_of_text|>User: How are you?<|eot_id|>Assistant: " --special --ids
    assert_output "128000 128000 1502 25 2650 527 499 30 128009 72803 25 220"
}

@test "2B-4T: <|eot_id|> is hidden in detok unless --special" {
    run bn-detok -m "$B4T" --ids -q <<< "128000 9906 128009"
    assert_output "Hello"
    run bn-detok -m "$B4T" --ids -q --special <<< "128000 9906 128009"
    assert_output "<|begin_of_text|>Hello<|eot_id|>"
}

@test "kjv: eval_ids.bin (BOS + encode(line) + EOS per chapter) reproduced exactly" {
    run "$BN_TESTBIN/tokvec" ids "$K/tokenizer.model" "$K/eval.txt" "$K/eval_ids.bin" --lines
    assert_success
    assert_output --partial "matched 24351/24351 ids (produced 24351)"
    run "$BN_TESTBIN/tokvec" ids "$K/tokenizer.model" "$D/kjv-ref.txt" "$K/ref_ids.bin"
    assert_success
}

@test "kjv: round trip detok(tokenize(x)) == x for every eval line and the whole file" {
    run "$BN_TESTBIN/tokvec" rt "$K/tokenizer.model" "$K/eval.txt"
    assert_success
    assert_output --partial "round trip 27/27 lines"
    bn-tokenize -m "$K/tokenizer.model" -f "$K/eval.txt" | bn-detok -m "$K/tokenizer.model" -q > "$BATS_TEST_TMPDIR/back"
    cmp "$K/eval.txt" "$BATS_TEST_TMPDIR/back"
}

@test "round trips of the KJV text through every vocabulary" {
    for m in "$BPE" "$B4T" "$D/ggml-vocab-gpt-2.gguf" "$D/ggml-vocab-llama-spm.gguf"; do
        run "$BN_TESTBIN/tokvec" rt "$m" "$K/eval.txt"
        assert_success
    done
}
