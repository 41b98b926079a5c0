#!/usr/bin/env bats
# bn-gguf: the corrupt-file suite (table-driven, files from tests/tools/mkgguf),
# valid files, every subcommand's output and exit status, JSON validity, and
# writer round trips. Needs no ../shared.
load helpers

setup_file() {
    export CASES="$BATS_FILE_TMPDIR/cases"
    mkdir -p "$CASES"
    "$BN_TESTBIN/mkgguf" "$CASES"
}

# name | expected message fragment (exit status 1 from `bn-gguf validate`)
BAD_TABLE='
bad-empty|magic: file too small
bad-magic|magic: not a GGUF file
bad-version-1|version: GGUF version 1 is not supported
bad-version-future|version: unsupported GGUF version 4
bad-big-endian|looks like a big-endian GGUF
bad-trunc-header|n_tensors: file truncated
bad-huge-n-tensors|n_tensors: 72057594037927935 tensors cannot fit
bad-huge-n-kv|n_kv: 72057594037927935 key-value pairs cannot fit
bad-kv-count-lies|kv 2: key: file truncated
bad-trunc-key|kv 0: key: string length 20 runs past end of file
bad-trunc-value|kv '"'"'k'"'"': file truncated
bad-huge-key-len|kv 0: key: string length 4611686018427387904 runs past end of file
bad-huge-string-len|string length 18446744073709551615 runs past end of file
bad-value-type|bad value type 13
bad-array-count-overflow|array of 4611686018427387904 u32 runs past end of file
bad-array-str-count|array of 1099511627776 strings runs past end of file
bad-array-str-past-end|string length 100 runs past end of file
bad-array-type|bad array element type 99
bad-nested-array-type|bad array element type 77
bad-nested-too-deep|arrays nested deeper than 8
bad-nested-count|arrays runs past end of file
bad-duplicate-key|kv '"'"'test.value'"'"': duplicate key
bad-empty-key|empty key
bad-align-type|general.alignment'"'"': must be u32, not i32
bad-align-u64|general.alignment'"'"': must be u32, not u64
bad-align-value|48 is not a power of two
bad-align-zero|0 is not a power of two
bad-name-too-long|name too long (64 bytes, max 63)
bad-empty-name|tensor 0: name: empty name
bad-name-nul|name contains a NUL byte
bad-duplicate-tensor|tensor '"'"'a'"'"': duplicate tensor name
bad-n-dims-5|n_dims 5 out of range 1..4
bad-n-dims-0|n_dims 0 out of range 1..4
bad-zero-dim|ne[1] = 0 is not positive
bad-negative-dim|ne[0] = -8 is not positive
bad-ne-overflow|element count overflows
bad-bytes-overflow|f64: byte size overflows
bad-unknown-type|unknown type 40
bad-removed-type|unknown type 4
bad-block-multiple|q8_0: ne[0] = 33 is not a multiple of the block size 32
bad-tq2-block|tq2_0: ne[0] = 128 is not a multiple of the block size 256
bad-i2s-block|i2_s: ne[0] = 96 is not a multiple of the block size 128
bad-tl2-small|tl2: ne[0] = 128 is below 256
bad-offset-misaligned|offset 4 is not a multiple of the alignment 32
bad-offset-past-end|tensor '"'"'a'"'"': data extends past end of file
bad-offset-wraps|tensor '"'"'a'"'"': data extends past end of file
bad-overlap|tensor '"'"'b'"'"': data overlaps tensor '"'"'a'"'"'
bad-data-past-end|tensor '"'"'b'"'"': data extends past end of file
bad-trunc-tensor-info|tensor '"'"'a'"'"': file truncated
bad-trunc-tensor-name|tensor 0: name: string length 40 runs past end of file
model-missing-tensor|tensor '"'"'blk.0.ffn_up.weight'"'"': required tensor missing
model-missing-embd|tensor '"'"'token_embd.weight'"'"': required tensor missing
model-bad-shape|shape [128, 32, 1, 1], expected [128, 64]
model-bad-type|type bf16 is not supported for linear weights
model-bad-norm-type|type bf16 is not supported for norm weights
model-bad-embd-type|type tq2_0 is not supported for embeddings
model-missing-hparam|bitnet-b1.58.feed_forward_length'"'"': required key missing
model-missing-ctx|bitnet-b1.58.context_length'"'"': required key missing
model-head-divide|3 does not divide embedding_length 128
model-gqa|GQA ratio must be an integer
model-scores-len|tokenizer.ggml.scores'"'"': 15 entries, expected 16
model-vocab-size|20 does not match the 16 tokens
model-scale-nan|i2_s scale nan is not finite and positive
model-scale-zero|i2_s scale 0 is not finite and positive
model-scale-negative|i2_s scale -1 is not finite and positive
model-not-bitnet|'"'"'llama'"'"' is not a BitNet architecture
model-no-arch|general.architecture'"'"': required key missing
model-too-many-layers|100000 layers exceed the limit of 512
model-extra-tensor|rope_freqs.weight'"'"': unexpected tensor
model-bos-range|token id 16 is outside the vocabulary
model-eps|-1 is not in (0, 1)
model-tokens-type|tokenizer.ggml.tokens'"'"': must be an array of str
'

VALID_MODELS='valid-model-i2s valid-model-tq2 valid-model-f16 valid-vocab-only'
VALID_STRUCT='valid-struct-v2 valid-struct-no-tensors valid-struct-align64 valid-struct-nested valid-struct-every-type'

@test "mkgguf writes at least 30 corrupt files and every one is in the table" {
    run "$BN_TESTBIN/mkgguf" --list
    assert_success
    local n_bad=0 name
    for name in $output; do
        case $name in
        valid-*) [[ " $VALID_MODELS $VALID_STRUCT " == *" $name "* ]] || fail "valid file $name not tested" ;;
        *) n_bad=$((n_bad + 1)); grep -q "^$name|" <<<"$BAD_TABLE" || fail "corrupt file $name not in the table" ;;
        esac
    done
    [ "$n_bad" -ge 30 ] || fail "only $n_bad corrupt cases"
}

@test "validate: every corrupt file exits 1 with its message, prefixed by the path" {
    local failures="" name frag
    while IFS='|' read -r name frag; do
        [ -n "$name" ] || continue
        run bn-gguf validate "$CASES/$name.gguf"
        if [ "$status" -ne 1 ]; then
            failures+="$name: exit $status ($output)"$'\n'
        elif [[ "$output" != *"$frag"* ]]; then
            failures+="$name: expected '$frag', got '$output'"$'\n'
        elif [[ "${lines[0]}" != "$CASES/$name.gguf: "* ]]; then
            failures+="$name: not prefixed by the path: '${lines[0]}'"$'\n'
        fi
    done <<<"$BAD_TABLE"
    [ -z "$failures" ] || fail "$failures"
}

@test "validate: structural failures are one line each" {
    local name frag
    while IFS='|' read -r name frag; do
        [[ "$name" == bad-* ]] || continue
        run bn-gguf validate -q "$CASES/$name.gguf"
        [ "${#lines[@]}" -eq 1 ] || fail "$name: ${#lines[@]} lines: $output"
    done <<<"$BAD_TABLE"
}

@test "validate: valid models and vocab-only files pass the model checks" {
    local name
    for name in $VALID_MODELS; do
        run bn-gguf validate "$CASES/$name.gguf"
        assert_success
        assert_output "$CASES/$name.gguf: ok"
    done
}

@test "validate -s: valid structural files pass, model files fail without -s" {
    local name
    for name in $VALID_STRUCT; do
        run bn-gguf validate -s "$CASES/$name.gguf"
        assert_success
        run bn-gguf validate "$CASES/$name.gguf"
        assert_failure 1
    done
    run bn-gguf validate -s "$CASES/model-missing-tensor.gguf"
    assert_success
}

@test "validate: several files, exit 1 if any is bad, each reported" {
    run bn-gguf validate "$CASES/valid-model-i2s.gguf" "$CASES/bad-magic.gguf" "$CASES/valid-model-tq2.gguf"
    assert_failure 1
    assert_line "$CASES/valid-model-i2s.gguf: ok"
    assert_line "$CASES/bad-magic.gguf: magic: not a GGUF file"
    assert_line "$CASES/valid-model-tq2.gguf: ok"
    run bn-gguf validate -q "$CASES/valid-model-i2s.gguf"
    assert_success
    assert_output ""
}

@test "validate: missing file is exit 1 with the path, no file is usage" {
    run bn-gguf validate "$BATS_TEST_TMPDIR/nope.gguf"
    assert_failure 1
    assert_output --partial "nope.gguf: open: No such file"
    run bn-gguf validate
    assert_failure 2
    run bn-gguf frobnicate x
    assert_failure 2
    run bn-gguf --bogus-flag info x
    assert_failure 2
}

@test "--help and --version exit 0" {
    run bn-gguf --help
    assert_success
    assert_output --partial "usage: bn-gguf info"
    run bn-gguf --version
    assert_success
    assert_output --partial "bn-gguf"
}

@test "check: header pre-flight accepts good headers, rejects bad ones" {
    run bn-gguf check "$CASES/valid-model-i2s.gguf"
    assert_success
    assert_output --regexp "valid-model-i2s.gguf: GGUF v3, 13 tensors, [0-9]+ kv, [0-9]+ bytes: header ok$"
    local name
    for name in bad-magic bad-version-1 bad-version-future bad-huge-n-tensors bad-huge-n-kv bad-trunc-header bad-empty; do
        run bn-gguf check "$CASES/$name.gguf"
        assert_failure 1
    done
    run bn-gguf check --json "$CASES/bad-magic.gguf" "$CASES/valid-model-tq2.gguf"
    assert_failure 1
    echo "$output" | head -1 | /usr/bin/python3 -m json.tool >/dev/null
    echo "$output" | tail -1 | /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["ok"] and d["version"]==3, d'
}

@test "info: text summary of the tiny i2_s model" {
    run bn-gguf info "$CASES/valid-model-i2s.gguf"
    assert_success
    assert_line "arch:        bitnet-b1.58"
    assert_line --partial "n_vocab 16, n_ctx_train 256, n_embd 128, n_layer 1, n_head 4, n_head_kv 2, n_ff 128"
    assert_line "tokenizer:   llama, 16 tokens"
    assert_line "types:       f32 5, f16 1, i2_s 7"
    assert_line --partial "summary:     bitnet-b1.58 model, 1 layers, n_embd 128"
    assert_line --partial "mostly i2_s"
}

@test "info --json is valid JSON with the right numbers" {
    run bn-gguf info --json "$CASES/valid-model-tq2.gguf"
    assert_success
    echo "$output" | /usr/bin/python3 -c '
import json, sys
d = json.load(sys.stdin)
assert d["arch"] == "bitnet", d
assert d["hparams"]["n_embd"] == 256 and d["hparams"]["n_layer"] == 1, d
assert d["types"]["tq2_0"]["tensors"] == 7 and d["types"]["f32"]["tensors"] == 5, d
assert d["tokenizer"]["n_vocab"] == 16 and d["n_tensors"] == 13, d
'
}

@test "tensors: table and JSON agree with the file" {
    run bn-gguf tensors "$CASES/valid-struct-align64.gguf"
    assert_success
    assert_line --index 1 --regexp '^a +f32 +\[8\] +0 +32$'
    assert_line --index 2 --regexp '^b +q8_0 +\[32, 1\] +64 +34$'
    run bn-gguf tensors --json "$CASES/valid-model-i2s.gguf"
    assert_success
    echo "$output" | /usr/bin/python3 -c '
import json, sys
t = {x["name"]: x for x in json.load(sys.stdin)}
q = t["blk.0.attn_q.weight"]
assert q["type"] == "i2_s" and q["shape"] == [128, 128] and q["bytes"] == 128*128//4 + 32, q
assert all(x["offset"] % 32 == 0 for x in t.values())
'
}

@test "meta: all keys, one key, arrays summarized unless --full" {
    run bn-gguf meta "$CASES/valid-model-i2s.gguf"
    assert_success
    assert_line --regexp '^general.architecture +str += "bitnet-b1.58"$'
    assert_line --regexp '^bitnet-b1.58.attention.layer_norm_rms_epsilon f32 += 1e-05$'
    assert_line --regexp '^tokenizer.ggml.tokens +arr\[str,16\] += \["t0", "t1", "t2", "t3", "t4", "t5", "t6", "t7", \.\.\.\]$'
    run bn-gguf meta --full "$CASES/valid-model-i2s.gguf"
    assert_line --partial '"t14", "t15"]'
    run bn-gguf meta "$CASES/valid-model-i2s.gguf" general.architecture
    assert_success
    assert_output "bitnet-b1.58"
    run bn-gguf meta "$CASES/valid-model-i2s.gguf" bitnet-b1.58.block_count
    assert_output "1"
    run bn-gguf meta "$CASES/valid-model-i2s.gguf" no.such.key
    assert_failure 1
    assert_output --partial "kv 'no.such.key': not found"
}

@test "meta --json is valid JSON, escapes odd strings, NaN becomes null" {
    local f
    for f in valid-model-i2s valid-struct-nested valid-struct-every-type; do
        run bn-gguf meta --json --full "$CASES/$f.gguf"
        assert_success
        echo "$output" | /usr/bin/python3 -m json.tool >/dev/null || fail "$f: invalid JSON: $output"
    done
    run bn-gguf meta --json "$CASES/valid-struct-nested.gguf"
    echo "$output" | /usr/bin/python3 -c '
import json, sys
kv = {x["key"]: x for x in json.load(sys.stdin)["kv"]}
assert kv["nested"]["value"] == [["x", "\ufffd\n\"q\""], [None]], kv["nested"]
assert kv["u8s"]["value"] == [1, 2, 255]
assert kv["tab\tkey"]["value"] is True
'
    run bn-gguf meta --json "$CASES/valid-struct-every-type.gguf"
    echo "$output" | /usr/bin/python3 -c '
import json, sys
kv = {x["key"]: x["value"] for x in json.load(sys.stdin)["kv"]}
assert kv["k.f32"] == 0.25 and kv["k.f64"] == -1.5 and kv["k.str"] == "hello" and kv["k.u64"] == 1, kv
'
}

@test "meta --llama-log prints llama_model_loader lines" {
    run bn-gguf meta --llama-log "$CASES/valid-model-i2s.gguf"
    assert_success
    assert_line --index 0 --partial "llama_model_loader: loaded meta data with"
    assert_line "llama_model_loader: - kv   0:                       general.architecture str              = bitnet-b1.58"
    assert_line --regexp '^llama_model_loader: - kv +[0-9]+: +tokenizer.ggml.tokens arr\[str,16\] += \["t0", "t1", "t2", "t3", "t4", "t5", \.\.\.$'
    assert_line "llama_model_loader: - type  f32:    5 tensors"
    assert_line "llama_model_loader: - type i2_s:    7 tensors"
}

@test "writer: mkgguf --copy re-writes generated files byte for byte" {
    local name
    for name in valid-model-i2s valid-model-tq2 valid-model-f16 valid-vocab-only valid-struct-every-type valid-struct-align64; do
        run "$BN_TESTBIN/mkgguf" --copy "$CASES/$name.gguf" "$BATS_TEST_TMPDIR/$name.gguf"
        assert_success
        cmp "$CASES/$name.gguf" "$BATS_TEST_TMPDIR/$name.gguf" || fail "$name differs after copy"
    done
    run ls "$BATS_TEST_TMPDIR"
    refute_output --partial ".tmp."
}

@test "writer: a failed copy leaves no file behind" {
    run "$BN_TESTBIN/mkgguf" --copy "$CASES/bad-magic.gguf" "$BATS_TEST_TMPDIR/out.gguf"
    assert_failure
    [ ! -e "$BATS_TEST_TMPDIR/out.gguf" ]
    run ls "$BATS_TEST_TMPDIR"
    assert_output ""
}
