#!/usr/bin/env bats
# bn-quantize: HF directories (bf16 master, Microsoft-packed, sharded, SPM and
# BPE tokenizers), GGUF requantization round trips, synthetic models, and every
# error path. Inputs are generated here (tests/tools/pack_hf.py, numpy); no
# ../shared needed.
load helpers

setup_file() {
    export PACK="$BN_ROOT/tests/tools/pack_hf.py"
    export W="$BATS_FILE_TMPDIR"
    export SPMV="$BN_DATA/tokenizer/kjv-tokenizer.model"
    /usr/bin/python3 "$PACK" tiny "$W/bpe" --seed 3
    /usr/bin/python3 "$PACK" tiny "$W/bpe-packed" --seed 3 --packed
    /usr/bin/python3 "$PACK" tiny "$W/bpe-shards" --seed 3 --shards 3
    /usr/bin/python3 "$PACK" tiny "$W/spm" --seed 5 --spm "$SPMV" --dtype F16
    bn-quantize -q "$W/bpe" -o "$W/bpe-i2s.gguf" --type I2_S
}

setup() {
    T="$BATS_TEST_TMPDIR"
    CMP="$BN_TESTBIN/cmp_tensors"
    VAL="$BN_TESTBIN/validate_model"
}

# no temp or partial files left next to an output
assert_no_leftovers() {
    run ls -A "$1"
    assert_output "${2:-}"
}

@test "bn-quantize: --help, --version, usage errors exit 2" {
    run bn-quantize --help
    assert_success
    assert_output --partial "usage: bn-quantize"
    run bn-quantize --version
    assert_success
    assert_output --partial "bn-quantize"
    run bn-quantize
    assert_failure 2
    run bn-quantize "$W/bpe" -o "$T/x.gguf"
    assert_failure 2
    assert_output --partial "no weight type"
    run bn-quantize "$W/bpe" -o "$T/x.gguf" --type Q4_0
    assert_failure 2
    assert_output --partial "Q4_0"
    run bn-quantize "$W/bpe" -o "$T/x.gguf" --type bogus
    assert_failure 2
    run bn-quantize "$W/bpe" -o "$T/x.gguf" --type I2_S --token-embedding-type nope
    assert_failure 2
    run bn-quantize "$W/bpe" "$T/x.gguf" I2_S 0
    assert_failure 2
    assert_no_leftovers "$T"
}

@test "HF bf16 + BPE tokenizer.json -> I2_S, TQ2_0, TQ1_0, F16, F32: all valid" {
    for t in I2_S TQ2_0 TQ1_0 F16 F32; do
        run bn-quantize -q "$W/bpe" -o "$T/m-$t.gguf" --type "$t"
        assert_success
        run "$VAL" "$T/m-$t.gguf"
        assert_success
    done
    # 2 layers x 7 linear weights in the requested type
    run "$CMP" "$T/m-TQ2_0.gguf" "$T/m-TQ2_0.gguf" --only-type tq2_0
    assert_line "14 of 14 tensors identical"
    run "$CMP" "$T/m-I2_S.gguf" "$T/m-I2_S.gguf" --only-type i2_s
    assert_line "14 of 14 tensors identical"
    # arch defaults: bitnet-b1.58 for I2_S, bitnet (+ relu2 activation key) for TQ
    grep -qa "bitnet-b1.58.embedding_length" "$T/m-I2_S.gguf"
    grep -qa "bitnet.embedding_length" "$T/m-TQ2_0.gguf"
    grep -qa "bitnet.hidden_activation" "$T/m-TQ2_0.gguf"
    grep -qa "tokenizer.ggml.merges" "$T/m-I2_S.gguf"
    grep -qa "tokenizer.chat_template" "$T/m-I2_S.gguf"
}

@test "HF F16 master + SentencePiece tokenizer.model, sharded and packed inputs" {
    run bn-quantize -q "$W/spm" -o "$T/spm.gguf" --type I2_S
    assert_success
    run "$VAL" "$T/spm.gguf"
    assert_success
    grep -qa "tokenizer.ggml.pre" "$T/spm.gguf"
    # sharded (model.safetensors.index.json) gives the same tensors as one file
    run bn-quantize -q "$W/bpe-shards" -o "$T/shards.gguf" --type I2_S
    assert_success
    run "$CMP" "$T/shards.gguf" "$W/bpe-i2s.gguf"
    assert_success
    # Microsoft packed U8 + weight_scale = the bf16 master, tensor for tensor
    run bn-quantize -q "$W/bpe-packed" -o "$T/packed.gguf" --type I2_S
    assert_success
    run "$CMP" "$T/packed.gguf" "$W/bpe-i2s.gguf"
    assert_success
    assert_line "24 of 24 tensors identical"
}

@test "GGUF round trips are exact: I2_S <-> F32, TQ2_0 <-> I2_S <-> TQ1_0, TQ2_0 <-> F16" {
    bn-quantize -q "$W/bpe-i2s.gguf" -o "$T/f32.gguf" --type F32
    bn-quantize -q "$T/f32.gguf" -o "$T/back.gguf" --type I2_S
    run "$CMP" "$T/back.gguf" "$W/bpe-i2s.gguf"
    assert_success
    # TQ blocks store d as f16, so TQ output rounds the tensor scale to f16 once;
    # from then on every conversion is exact
    bn-quantize -q "$W/bpe" -o "$T/tq2.gguf" --type TQ2_0
    bn-quantize -q "$W/bpe-i2s.gguf" -o "$T/tq2b.gguf" --type TQ2_0
    run "$CMP" "$T/tq2b.gguf" "$T/tq2.gguf"
    assert_success
    bn-quantize -q "$T/tq2.gguf" -o "$T/i2s.gguf" --type I2_S
    bn-quantize -q "$T/i2s.gguf" -o "$T/tq1.gguf" --type TQ1_0
    bn-quantize -q "$T/tq1.gguf" -o "$T/tq2c.gguf" --type TQ2_0
    run "$CMP" "$T/tq2c.gguf" "$T/tq2.gguf"
    assert_success
    bn-quantize -q "$T/tq1.gguf" -o "$T/i2s2.gguf" --type I2_S
    run "$CMP" "$T/i2s2.gguf" "$T/i2s.gguf"
    assert_success
    bn-quantize -q "$T/tq2.gguf" -o "$T/f16.gguf" --type F16
    bn-quantize -q "$T/f16.gguf" -o "$T/tq2d.gguf" --type TQ2_0
    run "$CMP" "$T/tq2d.gguf" "$T/tq2.gguf"
    assert_success
    # synthetic scales (k/64) are exact in f16: I2_S -> TQ2_0 -> TQ1_0 -> I2_S is the identity
    bn-quantize -q --synthetic tiny --dims layers=1 --vocab "$W/bpe-i2s.gguf" -o "$T/s.gguf" --type I2_S
    bn-quantize -q "$T/s.gguf" -o "$T/s2.gguf" --type TQ2_0
    bn-quantize -q "$T/s2.gguf" -o "$T/s1.gguf" --type TQ1_0
    bn-quantize -q "$T/s1.gguf" -o "$T/s0.gguf" --type I2_S
    run "$CMP" "$T/s0.gguf" "$T/s.gguf"
    assert_success
}

@test "llama-quantize positional form gives the same file as -o/--type" {
    run bn-quantize -q "$W/bpe" "$T/pos.gguf" I2_S 1
    assert_success
    cmp "$T/pos.gguf" "$W/bpe-i2s.gguf"
}

@test "thread count does not change the output" {
    bn-quantize -q -j 1 --synthetic tiny --dims layers=1 --vocab "$W/bpe-i2s.gguf" -o "$T/a.gguf" --type I2_S
    bn-quantize -q -j 3 --synthetic tiny --dims layers=1 --vocab "$W/bpe-i2s.gguf" -o "$T/b.gguf" --type I2_S
    cmp "$T/a.gguf" "$T/b.gguf"
    bn-quantize -q -j 1 "$W/bpe" -o "$T/c.gguf" --type TQ1_0
    bn-quantize -q -j 4 "$W/bpe" -o "$T/d.gguf" --type TQ1_0
    cmp "$T/c.gguf" "$T/d.gguf"
}

@test "token embedding types: Q8_0, Q6_K, F32; requantizing the embedding of a GGUF" {
    for t in Q8_0 Q6_K F32; do
        run bn-quantize -q "$W/bpe" -o "$T/e-$t.gguf" --type I2_S --token-embedding-type "$t"
        assert_success
        run "$VAL" "$T/e-$t.gguf"
        assert_success
    done
    run "$CMP" "$T/e-Q8_0.gguf" "$T/e-Q8_0.gguf" --only-type q8_0
    assert_line "1 of 1 tensors identical"
    run "$CMP" "$T/e-Q6_K.gguf" "$T/e-Q6_K.gguf" --only-type q6_K
    assert_line "1 of 1 tensors identical"
    run "$CMP" "$T/e-F32.gguf" "$T/e-F32.gguf" --only-type f32
    assert_line "10 of 10 tensors identical"  # token_embd + 9 norms
    run bn-quantize -q "$W/bpe-i2s.gguf" -o "$T/q8.gguf" --type I2_S --token-embedding-type Q8_0
    assert_success
    run "$CMP" "$T/q8.gguf" "$T/e-Q8_0.gguf"
    assert_success
}

@test "synthetic tiny: fixture layout, deterministic per seed, valid" {
    V="$BN_DATA/tokenizer/ggml-vocab-llama-spm.gguf"
    run bn-quantize -q --synthetic tiny --vocab "$V" -o "$T/s1.gguf" --type I2_S
    assert_success
    run "$VAL" "$T/s1.gguf"
    assert_success
    # 46 tensors: 28 I2_S (4 layers x 7), 17 F32 norms, token_embd F16 [256, 32000]
    run "$CMP" "$T/s1.gguf" "$T/s1.gguf" --only-type i2_s
    assert_line "28 of 28 tensors identical"
    run "$CMP" "$T/s1.gguf" "$T/s1.gguf" --only-type f32
    assert_line "17 of 17 tensors identical"
    run "$CMP" "$T/s1.gguf" "$T/s1.gguf"
    assert_line "46 of 46 tensors identical"
    [ "$(stat -c %s "$T/s1.gguf")" -gt 17800000 ]
    bn-quantize -q --synthetic tiny --vocab "$V" -o "$T/s2.gguf" --type I2_S
    cmp "$T/s1.gguf" "$T/s2.gguf"
    bn-quantize -q --synthetic tiny --vocab "$V" --seed 7 -o "$T/s3.gguf" --type I2_S
    run "$CMP" "$T/s1.gguf" "$T/s3.gguf"
    assert_failure
    # I2_S synthetic codes are packed directly; the float path (F32, TQ2_0) must agree
    bn-quantize -q --synthetic tiny --vocab "$V" -o "$T/s4.gguf" --type TQ2_0
    bn-quantize -q "$T/s1.gguf" -o "$T/s5.gguf" --type TQ2_0
    run "$CMP" "$T/s4.gguf" "$T/s5.gguf"
    assert_success
    bn-quantize -q --synthetic tiny --vocab "$V" -o "$T/s6.gguf" --type F32
    bn-quantize -q "$T/s6.gguf" -o "$T/s7.gguf" --type I2_S
    run "$CMP" "$T/s7.gguf" "$T/s1.gguf"
    assert_success
}

@test "synthetic: --dims, shape rules per type, missing --vocab" {
    run bn-quantize -q --synthetic tiny --dims embd=128,heads=4,kv=2,ffn=384,layers=1 --vocab "$W/bpe-i2s.gguf" -o "$T/d.gguf" --type I2_S
    assert_success
    run "$VAL" "$T/d.gguf"
    assert_success
    run bn-quantize -q --synthetic tiny --dims embd=128,heads=4,kv=2,ffn=384,layers=1 --vocab "$W/bpe-i2s.gguf" -o "$T/e.gguf" --type TQ2_0
    assert_failure 1
    assert_output --partial "multiple of 256"
    run bn-quantize -q --synthetic tiny --dims embd=192,heads=3,kv=1,layers=1 --vocab "$W/bpe-i2s.gguf" -o "$T/f.gguf" --type I2_S
    assert_failure 1
    assert_output --partial "I2_S needs the row length (ne0) to be a multiple of 128"
    run bn-quantize -q --synthetic custom --dims embd=128,layers=1,heads=4,kv=2,ffn=256,ctx=64 --vocab "$W/bpe-i2s.gguf" -o "$T/c.gguf" --type TQ1_0
    assert_failure 1
    assert_output --partial "multiple of 256"
    run bn-quantize -q --synthetic custom --dims embd=256,layers=1,heads=4,kv=2,ffn=256,ctx=64 --vocab "$W/bpe-i2s.gguf" -o "$T/c.gguf" --type TQ1_0
    assert_success
    run "$VAL" --stats "$T/c.gguf"
    assert_success
    assert_line "tq1_0: 7 tensors, $(( (256*256*2 + 256*128*2 + 256*256*3) / 256 * 54 )) bytes"
    run bn-quantize -q --synthetic custom --dims embd=256 --vocab "$W/bpe-i2s.gguf" -o "$T/c2.gguf" --type I2_S
    assert_failure 1
    assert_output --partial "dimensions incomplete"
    rm -f "$T/c.gguf"
    run bn-quantize -q --synthetic tiny -o "$T/g.gguf" --type I2_S
    assert_failure 1
    assert_output --partial "--vocab"
    run bn-quantize -q --synthetic huge --vocab "$W/bpe-i2s.gguf" -o "$T/g.gguf" --type I2_S
    assert_failure 2
    run bn-quantize -q --synthetic tiny --dims embd=x --vocab "$W/bpe-i2s.gguf" -o "$T/g.gguf" --type I2_S
    assert_failure 2
    run bn-quantize -q --synthetic tiny --vocab "$BN_DATA/tokenizer/kjv-tokenizer.model" -o "$T/g.gguf" --type I2_S
    assert_failure 1
    rm -f "$T"/d.gguf
    assert_no_leftovers "$T"
}

@test "errors: missing tensor, shape mismatch, bad dtype" {
    /usr/bin/python3 "$PACK" tiny "$T/drop" --drop model.layers.1.mlp.up_proj.weight
    run bn-quantize -q "$T/drop" -o "$T/o.gguf" --type I2_S
    assert_failure 1
    assert_output --partial "missing tensor model.layers.1.mlp.up_proj.weight"
    /usr/bin/python3 "$PACK" tiny "$T/bad" --bad-dtype model.layers.0.self_attn.k_proj.weight
    run bn-quantize -q "$T/bad" -o "$T/o.gguf" --type I2_S
    assert_failure 1
    assert_output --partial "unsupported dtype I32"
    /usr/bin/python3 "$PACK" tiny "$T/shape"
    sed -i 's/"intermediate_size": 768/"intermediate_size": 512/' "$T/shape/config.json"
    run bn-quantize -q "$T/shape" -o "$T/o.gguf" --type I2_S
    assert_failure 1
    assert_output --partial "does not match config.json"
    [ ! -e "$T/o.gguf" ]
    run sh -c "ls -A '$T' | grep -c tmp"
    assert_output 0
}

@test "errors: bad shapes for the type (HF dir with embd 192)" {
    /usr/bin/python3 "$PACK" tiny "$T/odd" --embd 192 --heads 3 --kv 1 --ffn 512
    run bn-quantize -q "$T/odd" -o "$T/o.gguf" --type I2_S
    assert_failure 1
    assert_output --partial "multiple of 128"
    run bn-quantize -q "$T/odd" -o "$T/o.gguf" --type TQ1_0
    assert_failure 1
    assert_output --partial "tq1_0 needs the row length (ne0) to be a multiple of 256"
    run bn-quantize -q "$T/odd" -o "$T/o.gguf" --type F16
    assert_success
}

@test "errors: corrupt safetensors header, truncated file, missing config, no weights, not a model" {
    cp -r "$W/bpe" "$T/c1"
    printf 'X' | dd of="$T/c1/model.safetensors" bs=1 seek=8 conv=notrunc status=none
    run bn-quantize -q "$T/c1" -o "$T/o.gguf" --type I2_S
    assert_failure 1
    assert_output --partial "model.safetensors: header"
    cp -r "$W/bpe" "$T/c2"
    truncate -s -1000 "$T/c2/model.safetensors"
    run bn-quantize -q "$T/c2" -o "$T/o.gguf" --type I2_S
    assert_failure 1
    assert_output --partial "truncated"
    cp -r "$W/bpe" "$T/c3"
    printf '\xff\xff\xff\xff\xff\xff\xff\x7f' | dd of="$T/c3/model.safetensors" bs=1 conv=notrunc status=none
    run bn-quantize -q "$T/c3" -o "$T/o.gguf" --type I2_S
    assert_failure 1
    assert_output --partial "too large"
    cp -r "$W/bpe" "$T/c4"
    rm "$T/c4/config.json"
    run bn-quantize -q "$T/c4" -o "$T/o.gguf" --type I2_S
    assert_failure 1
    assert_output --partial "config.json: missing"
    cp -r "$W/bpe" "$T/c5"
    rm "$T/c5/model.safetensors"
    run bn-quantize -q "$T/c5" -o "$T/o.gguf" --type I2_S
    assert_failure 1
    assert_output --partial "no *.safetensors"
    cp -r "$W/bpe" "$T/c6"
    sed -i 's/"model_type": "bitnet"/"model_type": "llama"/; s/BitNetForCausalLM/LlamaForCausalLM/' "$T/c6/config.json"
    run bn-quantize -q "$T/c6" -o "$T/o.gguf" --type I2_S
    assert_failure 1
    assert_output --partial "not a BitNet model"
    cp -r "$W/bpe" "$T/c7"
    printf '{"vocab_size": 261,' > "$T/c7/config.json"
    run bn-quantize -q "$T/c7" -o "$T/o.gguf" --type I2_S
    assert_failure 1
    assert_output --partial "config.json: offset"
    cp -r "$W/bpe" "$T/c8"
    rm "$T/c8/tokenizer.json"
    run bn-quantize -q "$T/c8" -o "$T/o.gguf" --type I2_S
    assert_failure 1
    assert_output --partial "no tokenizer"
    run bn-quantize -q "$T/nonexistent" -o "$T/o.gguf" --type I2_S
    assert_failure 1
    head -c 1000 "$W/bpe-i2s.gguf" > "$T/trunc.gguf"
    run bn-quantize -q "$T/trunc.gguf" -o "$T/o.gguf" --type TQ2_0
    assert_failure 1
    [ ! -e "$T/o.gguf" ]
}

@test "failures leave no partial file: unwritable path, failure in the middle, old output kept" {
    run bn-quantize -q "$W/bpe" -o "$T/no/such/dir/o.gguf" --type I2_S
    assert_failure 1
    [ ! -e "$T/no" ]
    # a TQ2_0 file whose last weight has two different block scales cannot become I2_S:
    # the error comes after 23 tensors were written
    bn-quantize -q "$W/bpe" -o "$T/tq2.gguf" --type TQ2_0
    /usr/bin/python3 "$PACK" bump-scale "$T/tq2.gguf" blk.1.ffn_down.weight
    mkdir "$T/out"
    echo old > "$T/out/model.gguf"
    run bn-quantize "$T/tq2.gguf" -o "$T/out/model.gguf" --type I2_S
    assert_failure 1
    assert_output --partial "[23/24]"
    assert_output --partial "blk.1.ffn_down.weight: values are not ternary with one scale"
    run cat "$T/out/model.gguf"
    assert_output old
    assert_no_leftovers "$T/out" model.gguf
    # the same file is still fine for TQ types (per-block scales are representable)
    run bn-quantize -q "$T/tq2.gguf" -o "$T/out/tq1.gguf" --type TQ1_0
    assert_success
}

@test "progress: plain lines on a pipe, none with --quiet, summary line" {
    run bn-quantize "$W/bpe" -o "$T/p.gguf" --type I2_S
    assert_success
    assert_line --partial "[1/24] token_embd.weight"
    assert_line --partial "[24/24] blk.1.ffn_down.weight"
    assert_line --partial "wrote $T/p.gguf"
    run bn-quantize -q "$W/bpe" -o "$T/p.gguf" --type I2_S
    assert_success
    assert_output ""
}

@test "an interrupted run (SIGTERM/SIGINT) leaves no temp file and no output" {
    for sig in TERM INT; do
        bn-quantize -q --synthetic tiny --dims embd=1024,ffn=4096,heads=8,kv=2,layers=40 \
            --vocab "$W/bpe-i2s.gguf" -o "$T/big.gguf" --type I2_S &
        pid=$!
        # kill while the temp file exists, not after a fixed time (the run
        # can take less than a second on a fast machine)
        for i in $(seq 1 1000); do ls "$T"/big.gguf.tmp.* >/dev/null 2>&1 && break; sleep 0.01; done
        kill -$sig $pid
        run wait $pid
        assert_failure
        assert_no_leftovers "$T"
    done
}

@test "untied lm_head becomes output.weight with its own type" {
    /usr/bin/python3 "$PACK" tiny "$T/untied" --untied
    run bn-quantize -q "$T/untied" -o "$T/u.gguf" --type I2_S --output-tensor-type Q8_0
    assert_success
    run "$VAL" --stats "$T/u.gguf"
    assert_success
    assert_line "q8_0: 1 tensors, $((261 * 256 / 32 * 34)) bytes"
    assert_line "total: 25 tensors"
    # the same directory marked tied ignores lm_head
    sed -i 's/"tie_word_embeddings": false/"tie_word_embeddings": true/' "$T/untied/config.json"
    run bn-quantize -q "$T/untied" -o "$T/t.gguf" --type I2_S
    assert_success
    run "$VAL" --stats "$T/t.gguf"
    assert_line "total: 24 tensors"
}

@test "--arch renames the hyper-parameter keys of a GGUF; F32 master checkpoints convert" {
    run bn-quantize -q "$W/bpe-i2s.gguf" -o "$T/a.gguf" --type I2_S --arch bitnet
    assert_success
    run "$VAL" "$T/a.gguf"
    assert_success
    grep -qa "bitnet.embedding_length" "$T/a.gguf"
    grep -qa "bitnet.hidden_activation" "$T/a.gguf"
    ! grep -qa "bitnet-b1.58.embedding_length" "$T/a.gguf"
    run bn-quantize -q "$T/a.gguf" -o "$T/b.gguf" --type I2_S --arch bitnet-b1.58
    assert_success
    run "$CMP" "$T/b.gguf" "$W/bpe-i2s.gguf"
    assert_success
    run bn-quantize -q "$W/bpe" -o "$T/c.gguf" --type I2_S --arch llama
    assert_failure 1
    assert_output --partial "unknown architecture"
    /usr/bin/python3 "$PACK" tiny "$T/f32" --dtype F32
    run bn-quantize -q "$T/f32" -o "$T/f32.gguf" --type I2_S
    assert_success
    run "$VAL" "$T/f32.gguf"
    assert_success
}

@test "special ids: config.json first, then generation_config.json, then token strings" {
    cp -r "$W/bpe" "$T/sp"
    # no ids in config.json: generation_config.json decides eos, token strings decide bos
    /usr/bin/python3 - "$T/sp" <<'PY'
import json, sys
d = sys.argv[1]
c = json.load(open(d + '/config.json')); del c['bos_token_id']; del c['eos_token_id']
json.dump(c, open(d + '/config.json', 'w'))
json.dump({'eos_token_id': [5, 6]}, open(d + '/generation_config.json', 'w'))
t = json.load(open(d + '/tokenizer_config.json')); t['bos_token'] = {'content': '<|end_of_text|>'}
json.dump(t, open(d + '/tokenizer_config.json', 'w'))
PY
    run bn-quantize -q "$T/sp" -o "$T/sp.gguf" --type I2_S
    assert_success
    [ -x "$BN_BIN/bn-gguf" ] || skip "bn-gguf not built"
    run bn-gguf meta "$T/sp.gguf" tokenizer.ggml.eos_token_id
    assert_output "5"
    run bn-gguf meta "$T/sp.gguf" tokenizer.ggml.bos_token_id
    assert_output "260"
}
