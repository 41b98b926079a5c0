#!/usr/bin/env bats
# bn-gguf against the reference files in $BN_SHARED: every fixture and
# tokenizer GGUF validates, our llama-log dump equals the lines llama.cpp /
# bitnet.cpp printed when they loaded the same file, the hparams, parameter
# counts and model sizes they printed match ours (this checks the I2_S/TQ
# byte-size rules against ggml_nbytes), and the writer reproduces the files
# byte for byte.
load ../helpers

setup() {
    FX="$BN_SHARED/fixtures"
    TK="$BN_SHARED/tokenizer"
    [ -d "$FX/ref" ] || skip "no $FX/ref"
}

# Compare `bn-gguf info --json` (stdin) with a log's print_meta lines (argv[1]).
CHECK_META='import json, re, sys
d = json.load(sys.stdin)
log = open(sys.argv[1]).read()
def meta(key):
    m = re.search(r"(?:llm_load_print_meta|print_info): %s\s+= (.*)" % re.escape(key), log)
    return m.group(1).strip() if m else None
h = d["hparams"]
for ours, theirs in [("n_vocab", "n_vocab"), ("n_ctx_train", "n_ctx_train"), ("n_embd", "n_embd"),
                     ("n_layer", "n_layer"), ("n_head", "n_head"), ("n_head_kv", "n_head_kv"), ("n_ff", "n_ff")]:
    assert str(h[ours]) == meta(theirs), (ours, h[ours], meta(theirs))
assert meta("model params") == "%.2f M" % (d["n_params"] / 1e6), (meta("model params"), d["n_params"])
size = meta("model size") or meta("file size")
assert size.startswith("%.2f MiB" % (d["tensor_bytes"] / 1048576.0)), (size, d["tensor_bytes"])
'

# The model file a log was made from (relative name as the engine printed it).
log_model() {
    sed -n 's/.* tensors from \([^ ]*\) (version.*/\1/p' "$1" | head -1
}

@test "validate: every GGUF in fixtures/ and tokenizer/ is valid" {
    local files=("$FX"/*.gguf "$TK"/*.gguf)
    [ "${#files[@]}" -ge 3 ] || fail "no GGUF files found"
    run bn-gguf validate "${files[@]}"
    assert_success
    [ "${#lines[@]}" -eq "${#files[@]}" ]
    run bn-gguf check "${files[@]}"
    assert_success
}

@test "meta --llama-log equals llama_model_loader's dump in every log of a stored fixture" {
    local log model compared=0 missing=0
    for log in "$FX"/ref/*/*.log "$FX"/ref/perplexity/*.log; do
        model=$(log_model "$log")
        [ -n "$model" ] || continue
        if [ ! -f "$FX/$model" ]; then missing=$((missing + 1)); continue; fi
        # run from the fixtures dir so the printed path is the same relative name
        run bash -c 'cd "$1" && bn-gguf meta --llama-log "$2"' _ "$FX" "$model"
        assert_success
        diff <(grep '^llama_model_loader: \(- \|loaded meta\)' "$log") \
             <(grep '^llama_model_loader: \(- \|loaded meta\)' <<<"$output") ||
            fail "$log: our dump of $model differs"
        compared=$((compared + 1))
    done
    echo "# compared $compared logs, $missing logs name files not stored here" >&3
    [ "$compared" -ge 9 ] || fail "only $compared logs compared"
}

@test "hparams, params and model size agree with the engines' print_meta lines" {
    local log model compared=0
    for log in "$FX"/ref/*/A.log; do
        model=$(log_model "$log")
        [ -f "$FX/$model" ] || continue
        run bn-gguf info --json "$FX/$model"
        assert_success
        # llama.cpp prints "model size" (bitnet.cpp) or "file size" (newer) from
        # the sum of ggml_nbytes, and params from the element counts.
        /usr/bin/python3 -c "$CHECK_META" "$log" <<<"$output" || fail "$log: mismatch"
        compared=$((compared + 1))
    done
    [ "$compared" -ge 3 ] || fail "only $compared logs compared"
}

@test "i2_s fixture: tensors are contiguous with n/4+32 bytes each, padded to 32" {
    run bn-gguf tensors --json "$FX/tiny-b158-i2_s.gguf"
    assert_success
    /usr/bin/python3 -c '
import json, sys
t = sorted(json.load(sys.stdin), key=lambda x: x["offset"])
n_i2s = 0
for a, b in zip(t, t[1:]):
    assert b["offset"] == (a["offset"] + a["bytes"] + 31) // 32 * 32, (a, b)
for x in t:
    if x["type"] == "i2_s":
        n = x["shape"][0] * x["shape"][1]
        assert x["bytes"] == n // 4 + 32, x
        n_i2s += 1
assert n_i2s == 28, n_i2s
' <<<"$output"
}

@test "writer: fixtures and padded vocab files re-written byte for byte" {
    local f n=0
    for f in "$FX"/*.gguf "$TK"/bitnet-b1.58-2B-4T.vocab.gguf "$TK"/ggml-vocab-llama-bpe.gguf; do
        [ -f "$f" ] || continue
        run "$BN_TESTBIN/mkgguf" --copy "$f" "$BATS_TEST_TMPDIR/copy.gguf"
        assert_success
        cmp "$f" "$BATS_TEST_TMPDIR/copy.gguf" || fail "$f differs after a copy through the writer"
        rm -f "$BATS_TEST_TMPDIR/copy.gguf"
        n=$((n + 1))
    done
    [ "$n" -ge 3 ]
}

@test "info on the fixtures: arch, tokenizer and type histogram" {
    run bn-gguf info "$FX/tiny-b158-i2_s.gguf"
    assert_success
    assert_line "arch:        bitnet-b1.58"
    assert_line "tokenizer:   llama (pre default), 32000 tokens"
    assert_line "types:       f32 17, f16 1, i2_s 28"
    run bn-gguf info "$FX/tiny-bitnet-tq1_0.gguf"
    assert_line "types:       f32 17, f16 1, tq1_0 28"
    run bn-gguf info "$TK/ggml-vocab-gpt-2.gguf"
    assert_line --partial "summary:     vocab-only file: gpt2 tokenizer"
    assert_line --regexp "^tokenizer:   gpt2.*, [0-9]+ merges$"
}
