#!/usr/bin/env bats
# bn-forward against the reference engines' logits ($BN_SHARED/fixtures/ref,
# see its README): prompt rows, teacher-forced rows on the reference's own
# greedy ids (P.gen.logits), greedy ids, the kjv model, thread and ISA
# determinism. Bounds (issue 6):
#   float paths      every row max|diff| <= 0.05, Pearson >= 0.9999
#   quantized paths  >= 85% rows max|diff| <= 0.05, every row <= 0.3,
#                    Pearson >= 0.9995, mean |diff| <= 0.01
#   always           argmax equal where the reference's top-1 leads by > 0.25
# Where the engine does not (yet) meet the issue bound the test says so in
# its name and holds the measured level instead, so regressions still fail.
load ../helpers
. "$BN_ROOT/tests/teacher_frames.sh"

FX="$BN_SHARED/fixtures"
A="1 450 4996 17354 1701 29916"
B="1"
C="1 9038 2501 263 931 29892 297 263 2319 5720 472 278 7636 310 263 6501 13569 29892 727 10600 385 2030 12006 28107 1058 1634 29874 2859 1432 9391 12006 297 4726 5174 278 697 393 18757 2038 670 1914 3050 29889"
FLOAT="--max-abs 0.05 --min-pearson 0.9999 --argmax-margin 0.25"
QUANT="--frac 0.05:0.85 --max-abs 0.3 --min-pearson 0.9995 --mean-abs 0.01 --argmax-margin 0.25"
LOOSE="--max-abs 0.6 --min-pearson 0.998 --mean-abs 0.07 --argmax-margin 0.25"

setup_file() {
    export W="$BATS_FILE_TMPDIR"
    bn-quantize -q "$FX/tiny-b158-i2_s.gguf" -o "$W/f32.gguf" --type F32
    bn-quantize -q "$FX/tiny-b158-i2_s.gguf" -o "$W/f16.gguf" --type F16
}

prompt_of() { case $1 in A) echo "$A";; B) echo "$B";; C) echo "$C";; esac; }

# prompt MODEL REFDIR P BOUNDS [bn-forward args]: prompt rows vs P.prompt.logits
prompt() {
    local m=$1 ref=$2 p=$3 bounds=$4; shift 4
    prompt_of $p | bn-forward -m "$m" --ids --dump-logits "$W/p.logt" -t 2 "$@"
    run "$BN_TESTBIN/logt-compare" --quiet $bounds "$W/p.logt" "$ref/$p.prompt.logits"
    echo "$p prompt: $output" >&3
    assert_success
}

# teacher MODEL REFDIR P BOUNDS [args]: teacher-forced on the reference's
# own greedy ids the way the reference produced P.gen.logits: the prompt as
# one tokens frame, then each id as its own token frame (one decode step
# each); rows after the prompt vs P.gen.logits
teacher() {
    local m=$1 ref=$2 p=$3 bounds=$4; shift 4
    local np
    np=$(prompt_of $p | wc -w)
    teacher_frames "$(prompt_of $p)" "$ref/$p.gen.txt" | "$BN_TESTBIN/bn-frames" --from-json |
        bn-forward -m "$m" --no-feedback --dump-logits "$W/g.logt" -t 2 "$@" >/dev/null
    run "$BN_TESTBIN/logt-compare" --quiet --a-row $np $bounds "$W/g.logt" "$ref/$p.gen.logits"
    echo "$p teacher-forced: $output" >&3
    assert_success
}

# batch_teacher MODEL REFDIR P BOUNDS [args]: prompt + the reference's ids in
# one batch (another float order than the reference's decode steps)
batch_teacher() {
    local m=$1 ref=$2 p=$3 bounds=$4; shift 4
    local ids np
    ids="$(prompt_of $p) $(tr ',' ' ' < "$ref/$p.gen.txt")"
    np=$(prompt_of $p | wc -w)
    echo "$ids" | bn-forward -m "$m" --ids --dump-logits "$W/g.logt" -t 2 "$@"
    run "$BN_TESTBIN/logt-compare" --quiet --a-row $np $bounds "$W/g.logt" "$ref/$p.gen.logits"
    echo "$p teacher-forced, one batch: $output" >&3
    assert_success
}

# decode MODEL REFDIR P BOUNDS [args]: the prompt as one batch, then the
# greedy continuation one token per step in-process (the reference's decode
# path, unlike teacher, which feeds everything as one batch); rows after the
# prompt vs P.gen.logits. Only meaningful while the greedy ids equal the
# reference's, so that is asserted first.
decode() {
    local m=$1 ref=$2 p=$3 bounds=$4; shift 4
    local np got want
    np=$(prompt_of $p | wc -w)
    got=$(prompt_of $p | bn-forward -m "$m" --ids --greedy 32 --dump-logits "$W/d.logt" -t 2 "$@" | tr -s ' \n' ',')
    want=$(tr -d ' \n' < "$ref/$p.gen.txt")
    [ "${got%,}" = "$want" ]
    run "$BN_TESTBIN/logt-compare" --quiet --a-row $np $bounds "$W/d.logt" "$ref/$p.gen.logits"
    echo "$p decode: $output" >&3
    assert_success
}

# greedy MODEL REFDIR P MIN [args]: at least MIN of 32 greedy ids equal
greedy() {
    local m=$1 ref=$2 p=$3 min=$4; shift 4
    local got want same=0 i=0
    got=($(prompt_of $p | bn-forward -m "$m" --ids --greedy 32 -t 2 "$@"))
    want=($(tr ',' ' ' < "$ref/$p.gen.txt"))
    for i in $(seq 0 31); do [ "${got[$i]}" = "${want[$i]}" ] && same=$((same + 1)); done
    echo "$p greedy: $same/32 ids equal" >&3
    [ "$same" -ge "$min" ]
}

@test "F32 (bn-quantize of the I2_S fixture) vs bitnetcpp-f32: float bounds, prompt and teacher-forced; greedy 32/32" {
    for p in A B C; do
        prompt "$W/f32.gguf" "$FX/ref/bitnetcpp-f32" $p "$FLOAT"
        teacher "$W/f32.gguf" "$FX/ref/bitnetcpp-f32" $p "$FLOAT"
        greedy "$W/f32.gguf" "$FX/ref/bitnetcpp-f32" $p 32
    done
}

@test "F16 vs llamacpp-relu2-f16 and, with --ffn-act silu, vs llamacpp-stock-f16: float bounds; greedy 32/32" {
    for p in A B C; do
        prompt "$W/f16.gguf" "$FX/ref/llamacpp-relu2-f16" $p "$FLOAT"
        greedy "$W/f16.gguf" "$FX/ref/llamacpp-relu2-f16" $p 32
        prompt "$W/f16.gguf" "$FX/ref/llamacpp-stock-f16" $p "$FLOAT" --ffn-act silu
        greedy "$W/f16.gguf" "$FX/ref/llamacpp-stock-f16" $p 32 --ffn-act silu
    done
}

@test "TQ2_0 / TQ1_0 relu2 (auto = llama.cpp numerics for arch bitnet) vs llamacpp-relu2-tq2_0: prompt and teacher-forced rows equal to 1e-5, greedy 32/32" {
    # measured: max |diff| <= 2e-6 on every row (the F16 head sums in another order)
    local EXACT="--max-abs 1e-5 --min-pearson 0.9999999 --argmax-all"
    for m in tiny-bitnet-tq2_0 tiny-bitnet-tq1_0; do
        for p in A B C; do
            prompt "$FX/$m.gguf" "$FX/ref/llamacpp-relu2-tq2_0" $p "$EXACT" --ffn-act relu2
            teacher "$FX/$m.gguf" "$FX/ref/llamacpp-relu2-tq2_0" $p "$EXACT" --ffn-act relu2
            greedy "$FX/$m.gguf" "$FX/ref/llamacpp-relu2-${m#tiny-bitnet-}" $p 32 --ffn-act relu2
        done
    done
}

@test "TQ2_0 relu2 teacher-forced in one batch (not the reference's decode order): measured level" {
    for p in A B C; do
        batch_teacher "$FX/tiny-bitnet-tq2_0.gguf" "$FX/ref/llamacpp-relu2-tq2_0" $p "$LOOSE" --ffn-act relu2
    done
}

@test "TQ2_0 / TQ1_0 SiLU (arch default) vs llamacpp-stock-tq2_0: prompt rows equal to 1e-5, greedy 32/32" {
    local EXACT="--max-abs 1e-5 --min-pearson 0.9999999 --argmax-all"
    for m in tiny-bitnet-tq2_0 tiny-bitnet-tq1_0; do
        for p in A B C; do
            prompt "$FX/$m.gguf" "$FX/ref/llamacpp-stock-tq2_0" $p "$EXACT"
            greedy "$FX/$m.gguf" "$FX/ref/llamacpp-stock-${m#tiny-bitnet-}" $p 32
        done
    done
}

@test "TQ2_0 --compat none (batch invariant) vs llamacpp-relu2-tq2_0: prompt rows within the quantized bounds, teacher-forced rows at the measured level" {
    # none orders Q.K of one token as tinyBLAS does a batch; llama.cpp uses
    # ggml_vec_dot_f16 there, and after ~24 steps one f16 rounding flips
    # (B: 25/32 rows within 0.05, max 0.09)
    for p in A B C; do
        prompt "$FX/tiny-bitnet-tq2_0.gguf" "$FX/ref/llamacpp-relu2-tq2_0" $p "$QUANT" --ffn-act relu2 --compat none
        teacher "$FX/tiny-bitnet-tq2_0.gguf" "$FX/ref/llamacpp-relu2-tq2_0" $p "$LOOSE" --ffn-act relu2 --compat none
    done
}

@test "I2_S --compat none (batch invariant) vs bitnetcpp-i2_s: B within bounds; A, C at the measured level" {
    # bitnet.cpp runs the F16 parts of a batch (P.V, the head) through
    # llamafile's sgemm with f32 inputs; --compat none keeps one order for any
    # batch size, which lands at activation-quantization noise on A and C
    local N=(--compat none)
    prompt "$FX/tiny-b158-i2_s.gguf" "$FX/ref/bitnetcpp-i2_s" B "$QUANT" "${N[@]}"
    for p in A C; do prompt "$FX/tiny-b158-i2_s.gguf" "$FX/ref/bitnetcpp-i2_s" $p "$LOOSE" "${N[@]}"; done
    for p in A B C; do batch_teacher "$FX/tiny-b158-i2_s.gguf" "$FX/ref/bitnetcpp-i2_s" $p "$LOOSE" "${N[@]}"; done
    greedy "$FX/tiny-b158-i2_s.gguf" "$FX/ref/bitnetcpp-i2_s" B 32 "${N[@]}"
    greedy "$FX/tiny-b158-i2_s.gguf" "$FX/ref/bitnetcpp-i2_s" C 32 "${N[@]}"
    greedy "$FX/tiny-b158-i2_s.gguf" "$FX/ref/bitnetcpp-i2_s" A 0 "${N[@]}"
}

@test "I2_S default (auto = bitnet.cpp numerics for its arch) vs bitnetcpp-i2_s: prompt and decode rows equal to 1e-5, greedy 32/32" {
    local EXACT="--max-abs 1e-5 --min-pearson 0.9999999 --argmax-all"
    for p in A B C; do
        prompt "$FX/tiny-b158-i2_s.gguf" "$FX/ref/bitnetcpp-i2_s" $p "$EXACT"
        decode "$FX/tiny-b158-i2_s.gguf" "$FX/ref/bitnetcpp-i2_s" $p "$EXACT"
        greedy "$FX/tiny-b158-i2_s.gguf" "$FX/ref/bitnetcpp-i2_s" $p 32
    done
}

@test "I2_S --compat bitnet.cpp vs bitnetcpp-i2_s: prompt rows and single-token decode rows equal to 1e-5, greedy 32/32" {
    # measured: prompt rows A, C bitwise equal, B and decode rows <= 2e-6
    # (the F16 head of one row sums in another order); see lib/forward.h bn_compat
    local EXACT="--max-abs 1e-5 --min-pearson 0.9999999 --argmax-all"
    for p in A B C; do
        prompt "$FX/tiny-b158-i2_s.gguf" "$FX/ref/bitnetcpp-i2_s" $p "$EXACT" --compat bitnet.cpp
        decode "$FX/tiny-b158-i2_s.gguf" "$FX/ref/bitnetcpp-i2_s" $p "$EXACT" --compat bitnet.cpp
    done
}

@test "kjv-bitnet-tiny (I2_S and F16 from the safetensors) vs ref_logits.bin: max |diff| <= 0.3, same top token at all 12 positions" {
    K="$BN_SHARED/models/kjv-bitnet-tiny"
    m="$BN_ROOT/models/kjv-bitnet-tiny-i2_s.gguf"
    [ -f "$m" ] || { bn-quantize -q "$K" -o "$W/kjv-i2s.gguf" --type I2_S; m="$W/kjv-i2s.gguf"; }
    bn-quantize -q "$K" -o "$W/kjv-f16.gguf" --type F16
    ids=$(od -An -v -td4 -w4 "$K/ref_ids.bin" | tr -s ' \n' ' ')
    for mm in "$m" "$W/kjv-f16.gguf"; do
        echo "$ids" | bn-forward -m "$mm" --ids --dump-logits "$W/k.logt" -t 2
        run "$BN_TESTBIN/logt-compare" --quiet --raw-b 4096 --max-abs 0.3 --argmax-all "$W/k.logt" "$K/ref_logits.bin"
        echo "kjv $(basename "$mm"): $output" >&3
        assert_success
    done
}

@test "fixture logits bitwise identical for threads 1-4 and for every ISA (scalar, avx2, avx512)" {
    for m in "$FX/tiny-b158-i2_s.gguf" "$FX/tiny-bitnet-tq2_0.gguf" "$W/f16.gguf" "$W/f32.gguf"; do
        for t in 1 2 3 4; do echo "$C" | bn-forward -m "$m" --ids --greedy 4 -t $t --dump-logits "$W/t$t.logt" >/dev/null; done
        cmp "$W/t1.logt" "$W/t2.logt"
        cmp "$W/t1.logt" "$W/t3.logt"
        cmp "$W/t1.logt" "$W/t4.logt"
        echo "$C" | BN_CPU=scalar bn-forward -m "$m" --ids --greedy 4 -t 2 --dump-logits "$W/scalar.logt" >/dev/null
        for cpu in avx2 avx512; do
            grep -q avx512f /proc/cpuinfo || [ $cpu != avx512 ] || continue
            echo "$C" | BN_CPU=$cpu bn-forward -m "$m" --ids --greedy 4 -t 2 --dump-logits "$W/$cpu.logt" >/dev/null
            cmp "$W/$cpu.logt" "$W/scalar.logt"
            echo "$(basename "$m") $cpu: logits bitwise equal to BN_CPU=scalar (kernels, attention, head)" >&3
        done
    done
}
