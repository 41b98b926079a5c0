#!/usr/bin/env bats
# bn-forward: options, frames in and out, the pipeline with bn-sample, ids
# mode, determinism over threads and kernel paths, and models or inputs that
# must fail before compute with one clear line. Models come from
# bn-quantize --synthetic with the llama SPM vocabulary in tests/data.
load helpers

setup_file() {
    export W="$BATS_FILE_TMPDIR"
    V="$BN_DATA/tokenizer/ggml-vocab-llama-spm.gguf"
    bn-quantize -q --synthetic tiny --dims layers=2 --vocab "$V" -o "$W/i2s.gguf" --type I2_S
    bn-quantize -q "$W/i2s.gguf" -o "$W/tq2.gguf" --type TQ2_0
    bn-quantize -q "$W/i2s.gguf" -o "$W/f16.gguf" --type F16
    bn-quantize -q --synthetic tiny --dims layers=1 --vocab "$BN_DATA/tokenizer/ggml-vocab-gpt-2.gguf" -o "$W/gpt2.gguf" --type I2_S
}

@test "help, version, usage errors" {
    run bn-forward --help
    assert_success
    assert_output --partial "usage: bn-forward"
    run bn-forward --version
    assert_success
    run bn-forward
    assert_failure 2
    run bn-forward -m "$W/i2s.gguf" --kv f8
    assert_failure 2
    run bn-forward -m "$W/i2s.gguf" --bogus
    assert_failure 2
}

@test "frames: hello, prompt passed on, one logits row, timing, end; exits without a sampler" {
    bn-tokenize -m "$W/i2s.gguf" -p "The quick brown fox" | timeout 20 bn-forward -m "$W/i2s.gguf" --no-feedback > "$W/out.frames"
    run "$BN_TESTBIN/bn-frames" < "$W/out.frames"
    assert_success
    assert_line --index 0 --partial '"kind":"hello"'
    assert_output --partial '"stage":"bn-forward"'
    assert_output --partial '"n_ctx":512'
    assert_output --partial '"kernels":"i2_s/'
    assert_output --partial '"kind":"tokens"'
    assert_output --regexp '"kind":"logits","seq":0,"pos":5,"n_rows":1,"n_vocab":32000'
    assert_output --partial '"event":"prefill"'
    assert_output --partial '"event":"load"'
    assert_line --index 6 --partial '"kind":"end"'
    # to a regular file (no sampler possible) it does not wait for feedback either
    bn-tokenize -m "$W/i2s.gguf" -p "hi" | timeout 20 bn-forward -m "$W/i2s.gguf" > "$W/out2.frames"
    run "$BN_TESTBIN/bn-frames" < "$W/out2.frames"
    refute_output --partial '"feedback":"ipc'
}

@test "--logits all and --dump-logits: one row per prompt token, same values" {
    bn-tokenize -m "$W/i2s.gguf" -p "The quick brown fox" |
        bn-forward -m "$W/i2s.gguf" --no-feedback --logits all --dump-logits "$W/d.logt" > "$W/all.frames"
    run "$BN_TESTBIN/bn-frames" < "$W/all.frames"
    assert_output --regexp '"kind":"logits","seq":0,"pos":0,"n_rows":6,'
    run "$BN_TESTBIN/logt-compare" --quiet --max-abs 0 "$W/d.logt" "$W/d.logt"
    assert_success
    assert_output --partial '"rows":6'
    # the same prompt as plain ids gives bitwise the same rows
    echo "1 450 4996 17354 1701 29916" | bn-forward -m "$W/i2s.gguf" --ids --dump-logits "$W/e.logt"
    cmp "$W/d.logt" "$W/e.logt"
}

@test "pipeline: tokenize | forward | sample | detok closes the feedback loop and ends" {
    run timeout 60 sh -c "bn-tokenize -m '$W/i2s.gguf' -p 'Once upon a time' | bn-forward -m '$W/i2s.gguf' -t 2 |
        bn-sample --greedy -n 6 | bn-detok -m '$W/i2s.gguf' 2>/dev/null"
    assert_success
    assert_output --partial "Once upon a time"
    # greedy through the feedback loop = greedy in-process
    ids=$(echo "1 9038 2501 263 931" | bn-forward -m "$W/i2s.gguf" --ids --greedy 6)
    run timeout 60 sh -c "echo '1 9038 2501 263 931' | bn-forward -m '$W/i2s.gguf' --ids --dump-logits /dev/null >/dev/null"
    assert_success
    [ "$(echo "$ids" | wc -w)" -eq 6 ]
}

@test "--profile-regions: the decode steps' regions on stderr, ids unchanged" {
    want=$(echo "1 9038 2501 263 931" | bn-forward -m "$W/i2s.gguf" --ids --greedy 5 -t 2)
    for t in 1 2 3; do
        run --separate-stderr sh -c "echo '1 9038 2501 263 931' | bn-forward -m '$W/i2s.gguf' --ids --greedy 5 -t $t --profile-regions"
        assert_success
        [ "$output" = "$want" ]
        # 5 decode steps (the last token's too): each runs matmul regions
        echo "$stderr" | grep -Eq "region matmul +calls +[1-9][0-9]* "
        echo "$stderr" | grep -Eq "region attention +calls +10 "
        echo "$stderr" | grep -q "^bn-forward: regions: thread 0 "
    done
    # prefill only: nothing to report, said once, still success
    run --separate-stderr sh -c "echo '1 9038 2501' | bn-forward -m '$W/i2s.gguf' --ids --greedy 0 --profile-regions"
    assert_success
    [ "$stderr" = "bn-forward: --profile-regions: no decode step ran" ]
}

@test "--ids --greedy: same ids and bitwise same logits for threads 1-4, batch sizes and kernel paths" {
    p="1 9038 2501 263 931 29892 297 263 2319 5720 472 278"
    ref=$(echo "$p" | bn-forward -m "$W/tq2.gguf" --ids --greedy 8 -t 1 --dump-logits "$W/t1.logt")
    [ "$(echo "$ref" | wc -w)" -eq 8 ]
    for t in 2 3 4; do
        out=$(echo "$p" | bn-forward -m "$W/tq2.gguf" --ids --greedy 8 -t $t -b $((t + 1)) --dump-logits "$W/t$t.logt")
        [ "$out" = "$ref" ]
        cmp "$W/t1.logt" "$W/t$t.logt"
    done
    # 36 prompt tokens: the wide batch tiles (AMX takes batches of 16+), with
    # BN_AMX=0 the AVX-512 VNNI kernels instead
    p36="$p $p $p"
    for cpu in scalar avx2 avx512 avx512-noamx; do
        grep -q avx512f /proc/cpuinfo || [ ${cpu%-noamx} != avx512 ] || continue
        amx=1; [ $cpu = avx512-noamx ] && amx=0
        out=$(echo "$p36" | BN_AMX=$amx BN_CPU=${cpu%-noamx} bn-forward -m "$W/i2s.gguf" --ids --greedy 8 -t 2 --dump-logits "$W/c_$cpu.logt")
        cmp "$W/c_scalar.logt" "$W/c_$cpu.logt"
    done
}

@test "attention with head_dim 44 and 64 (every vector path and tail; decode past 32 and 40 positions): bitwise the same logits for every ISA, --compat order and --kv type" {
    p="1 9038 2501 263 931 29892 297 263 2319 5720 472 278"
    # head_dim 44: every AVX2 chunk width and tail; 64: the AVX-512 batch paths (q in registers)
    for hd in 44 64; do
    bn-quantize -q --synthetic tiny --dims embd=$((hd * 8)),layers=1,heads=8,kv=2 --vocab "$BN_DATA/tokenizer/ggml-vocab-llama-spm.gguf" \
        -o "$W/hd$hd.gguf" --type F32
    for kv in f16 f32; do
        for c in none bitnet.cpp llama.cpp; do
            for cpu in scalar avx2 avx512; do
                grep -q avx512f /proc/cpuinfo || [ $cpu != avx512 ] || continue
                grep -q avx2 /proc/cpuinfo || [ $cpu = scalar ] || continue
                echo "$p" | BN_CPU=$cpu bn-forward -m "$W/hd$hd.gguf" --ids --greedy 40 -t 2 --kv $kv --compat $c \
                    --dump-logits "$W/h_$cpu.logt" >/dev/null
                cmp "$W/h_scalar.logt" "$W/h_$cpu.logt"
            done
        done
    done
    done
}

@test "one-token attention by whole GQA groups (four heads per cache read) and by pairs where threads split a group: bitwise the scalar logits" {
    grep -q avx512f /proc/cpuinfo || skip "no AVX-512 here"
    p="1 9038 2501 263 931 29892 297 263 2319 5720 472 278"
    # 8 heads over 2 kv heads (groups of 4), head_dim 64; 1 thread: whole
    # groups only; 3 threads: groups split between threads go in pairs
    bn-quantize -q --synthetic tiny --dims embd=512,layers=1,heads=8,kv=2 --vocab "$BN_DATA/tokenizer/ggml-vocab-llama-spm.gguf" \
        -o "$W/g4.gguf" --type F32
    for c in bitnet.cpp llama.cpp; do
        echo "$p" | BN_CPU=scalar bn-forward -m "$W/g4.gguf" --ids --greedy 37 -t 1 --compat $c --dump-logits "$W/g_ref.logt" >/dev/null
        for t in 1 3; do
            echo "$p" | BN_CPU=avx512 bn-forward -m "$W/g4.gguf" --ids --greedy 37 -t $t --compat $c \
                --dump-logits "$W/g_$t.logt" >/dev/null
            cmp "$W/g_ref.logt" "$W/g_$t.logt"
        done
    done
}

@test "--head q8_0|q6_k requantizes the F16 head at load: receipt names it, logits stay close; bad values fail" {
    p="1 9038 2501 263 931 29892 297 263"
    echo "$p" | bn-forward -m "$W/i2s.gguf" --ids --dump-logits "$W/hf.logt"
    for h in q8_0 q6_k; do
        run sh -c "echo '$p' | bn-forward -m '$W/i2s.gguf' --ids --head $h -v --dump-logits '$W/h.logt' 2>&1 >/dev/null"
        assert_success
        assert_output --partial "$h/"
        run "$BN_TESTBIN/logt-compare" --quiet --min-pearson 0.999 --max-abs 0.5 "$W/h.logt" "$W/hf.logt"
        assert_success
    done
    # a real conversion happened (not the F16 head again)
    run cmp -s "$W/h.logt" "$W/hf.logt"
    assert_failure
    run sh -c "echo 1 | bn-forward -m '$W/i2s.gguf' --ids --head q4_0"
    assert_failure 2
    assert_output --partial "--head"
    bn-quantize -q "$W/i2s.gguf" -o "$W/q8e.gguf" --type I2_S --token-embedding-type Q8_0
    run sh -c "echo 1 | bn-forward -m '$W/q8e.gguf' --ids --head q6_k"
    assert_failure 1
    assert_output --partial "the file's head is q8_0"
}

@test "--kv f32 and F16 weights stay close to the I2_S model (same ternary weights)" {
    p="1 9038 2501 263 931 29892 297 263"
    echo "$p" | bn-forward -m "$W/i2s.gguf" --ids --dump-logits "$W/a.logt"
    echo "$p" | bn-forward -m "$W/i2s.gguf" --ids --kv f32 --dump-logits "$W/b.logt"
    echo "$p" | bn-forward -m "$W/f16.gguf" --ids --dump-logits "$W/c.logt"
    run "$BN_TESTBIN/logt-compare" --quiet --min-pearson 0.99 "$W/a.logt" "$W/b.logt"
    assert_success
    run "$BN_TESTBIN/logt-compare" --quiet --min-pearson 0.99 "$W/a.logt" "$W/c.logt"
    assert_success
    run "$BN_TESTBIN/logt-compare" --quiet --max-abs 0 "$W/a.logt" "$W/c.logt"
    assert_failure
}

@test "--scores: one log-probability per next token, all <= 0" {
    bn-tokenize -m "$W/i2s.gguf" -p "The quick brown fox" | bn-forward -m "$W/i2s.gguf" --scores > "$W/s.frames"
    run "$BN_TESTBIN/bn-frames" --full < "$W/s.frames"
    assert_success
    assert_output --regexp '"kind":"scores","seq":0,"pos":0'
    assert_output --partial '"ids":[450,4996,17354,1701,29916]'
    assert_output --regexp '"logprobs":\[-[0-9.]+(,-[0-9.]+){4}\]'
    # one frame per tokens frame, whatever the batch size
    bn-tokenize -m "$W/i2s.gguf" -p "The quick brown fox" | bn-forward -m "$W/i2s.gguf" --scores -b 2 > "$W/s2.frames"
    run diff <("$BN_TESTBIN/bn-frames" --full < "$W/s.frames" | grep scores) <("$BN_TESTBIN/bn-frames" --full < "$W/s2.frames" | grep scores)
    assert_success
}

@test "SiLU override changes the function; relu2 is the bitnet-b1.58 default" {
    echo "1 450 4996" | bn-forward -m "$W/i2s.gguf" --ids --dump-logits "$W/r.logt"
    echo "1 450 4996" | bn-forward -m "$W/i2s.gguf" --ids --ffn-act relu2 --dump-logits "$W/r2.logt"
    echo "1 450 4996" | bn-forward -m "$W/i2s.gguf" --ids --ffn-act silu --dump-logits "$W/s.logt"
    cmp "$W/r.logt" "$W/r2.logt"
    run "$BN_TESTBIN/logt-compare" --quiet --max-abs 0.01 "$W/r.logt" "$W/s.logt"
    assert_failure
}

@test "vocabulary mismatch fails before compute with one line" {
    run sh -c "bn-tokenize -m '$W/gpt2.gguf' -p hello | bn-forward -m '$W/i2s.gguf' --no-feedback > '$W/mm.frames'"
    assert_failure
    assert_output --partial "bn-forward: hello: bn-tokenize's vocabulary"
    assert_output --partial "tokenizer and model differ"
    run "$BN_TESTBIN/bn-frames" < "$W/mm.frames"
    refute_output --partial '"kind":"logits"'
    assert_output --partial '"kind":"error"'
}

@test "context overflow, bad ids and bad models are one clear error" {
    run sh -c "echo '1 2 3 4 5 6' | bn-forward -m '$W/i2s.gguf' --ids -c 4"
    assert_failure 1
    assert_output --partial "exceed the context size 4"
    run sh -c "echo '1 99999' | bn-forward -m '$W/i2s.gguf' --ids"
    assert_failure 1
    assert_output --partial "out of range"
    run sh -c "echo '1 x' | bn-forward -m '$W/i2s.gguf' --ids"
    assert_failure 1
    head -c 1000000 "$W/i2s.gguf" > "$W/trunc.gguf"
    run sh -c "echo 1 | bn-forward -m '$W/trunc.gguf' --ids"
    assert_failure 1
    [ "${#lines[@]}" -eq 1 ]
    assert_output --partial "trunc.gguf"
    run sh -c "echo 1 | bn-forward -m '$W/nonexistent.gguf' --ids"
    assert_failure 1
    [ "${#lines[@]}" -eq 1 ]
}

@test "--strict: receipt says strict=1; TQ1_0 without a SIMD kernel is refused" {
    bn-tokenize -m "$W/i2s.gguf" -p "hi" | bn-forward -m "$W/i2s.gguf" --no-feedback --strict > "$W/st.frames" || true
    run "$BN_TESTBIN/bn-frames" < "$W/st.frames"
    if grep -q 'scalar' <<<"$output"; then skip "this build falls back to scalar for i2_s"; fi
    assert_output --partial "strict=1"
    bn-quantize -q "$W/i2s.gguf" -o "$W/tq1.gguf" --type TQ1_0
    if BN_CPU=avx2 bn-forward -m "$W/tq1.gguf" --ids -v </dev/null 2>&1 | grep -q 'tq1_0/scalar'; then
        run sh -c "echo 1 | BN_CPU=avx2 bn-forward -m '$W/tq1.gguf' --ids --strict"
        assert_failure 1
        assert_output --partial "strict mode"
        run sh -c "echo 1 | BN_CPU=avx2 BITNET_STRICT_MODE=1 bn-forward -m '$W/tq1.gguf' --ids"
        assert_failure 1
    fi
}

@test "--no-mmap reads the model into memory: receipt says so, logits bitwise those of --mmap; a truncated file fails the same way" {
    p="1 9038 2501 263 931 29892 297 263"
    echo "$p" | bn-forward -m "$W/i2s.gguf" --ids --greedy 4 --mmap --dump-logits "$W/mm.logt" >/dev/null
    run sh -c "echo '$p' | bn-forward -m '$W/i2s.gguf' --ids --greedy 4 --no-mmap -v --dump-logits '$W/cp.logt' 2>&1 >/dev/null"
    assert_success
    assert_output --partial "weights=copy"
    cmp "$W/mm.logt" "$W/cp.logt"
    head -c 100000 "$W/i2s.gguf" > "$W/trunc.gguf"
    for m in --mmap --no-mmap; do
        run sh -c "echo 1 | bn-forward -m '$W/trunc.gguf' --ids $m"
        assert_failure
        assert_output --partial "trunc.gguf"
        [ "${#lines[@]}" -eq 1 ]
    done
}

@test "TQ1_0 weights rewritten as TQ2_0 at load: receipt names it; logits and ids bitwise those of --no-repack and --strict on every table" {
    bn-quantize -q "$W/i2s.gguf" -o "$W/tq1r.gguf" --type TQ1_0
    p="1 9038 2501 263 931 29892 297 263"
    cpus="native scalar"
    grep -qw avx2 /proc/cpuinfo && cpus="$cpus avx2"
    for cpu in $cpus; do
        env=""; [ "$cpu" = native ] || env="BN_CPU=$cpu"
        echo "$p" | env $env bn-forward -m "$W/tq1r.gguf" --ids --greedy 6 --no-repack --dump-logits "$W/nr.logt" > "$W/nr.ids"
        run sh -c "echo '$p' | $env bn-forward -m '$W/tq1r.gguf' --ids --greedy 6 -v --dump-logits '$W/rp.logt' 2>&1 >'$W/rp.ids'"
        assert_success
        assert_output --partial "repacked=14 tq1_0>tq2_0"
        assert_output --partial "tq2_0/"
        cmp "$W/nr.logt" "$W/rp.logt"
        cmp "$W/nr.ids" "$W/rp.ids"
    done
    run sh -c "echo '$p' | bn-forward -m '$W/tq1r.gguf' --ids --greedy 6 --strict -v --dump-logits '$W/st.logt' 2>&1 >/dev/null"
    if grep -q 'tq1_0/scalar' <<<"$output"; then skip "this build has no SIMD TQ1_0 kernel: strict refuses it"; fi
    assert_success
    refute_output --partial "repacked"
    assert_output --partial "tq1_0/"
    cmp "$W/nr.logt" "$W/st.logt"
    run sh -c "echo 1 | bn-forward -m '$W/tq2.gguf' --ids -v 2>&1 >/dev/null"
    assert_success
    refute_output --partial "repacked"
}

@test "blocked batch attention (long contexts; forced with BN_ATT_BLOCK_BYTES): bitwise the logits of the unblocked path, every --compat order and --kv type" {
    grep -q avx512f /proc/cpuinfo || skip "no AVX-512: the blocked path is AVX-512 only"
    bn-quantize -q --synthetic tiny --dims embd=512,layers=2,heads=8,kv=2 --vocab "$BN_DATA/tokenizer/ggml-vocab-llama-spm.gguf" \
        -o "$W/hd64b.gguf" --type F32
    # 1101 tokens in batches of 256: blocks of 8 query tokens at positions > 0, a partial last
    # block, up to three 512-key tiles; two layers, so every position reaches the last row.
    # The unblocked AVX-512 path equals the scalar one (the head_dim test above).
    p="1 $(seq 1 1100 | awk '{printf "%d ", ($1 * 7919) % 31000 + 2}')"
    for kv in f16 f32; do
        for c in none bitnet.cpp llama.cpp; do
            for b in 0 1000000000; do
                echo "$p" | BN_ATT_BLOCK_BYTES=$b BN_CPU=avx512 bn-forward -m "$W/hd64b.gguf" --ids --greedy 4 -t 2 -b 256 \
                    -c 2048 --kv $kv --compat $c --dump-logits >(sha256sum > "$W/b_$b.sum") >/dev/null
            done
            for f in "$W/b_0.sum" "$W/b_1000000000.sum"; do # the substitutions' sha256sum finishing
                for _ in $(seq 200); do [ -s "$f" ] && break; sleep 0.1; done
            done
            cmp "$W/b_0.sum" "$W/b_1000000000.sum"
            rm -f "$W"/b_*.sum
        done
    done
}
