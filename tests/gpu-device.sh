#!/usr/bin/env bash
# tests/gpu-device.sh - the acceptance checks of the CUDA path (issue 11) in
# one run, for a machine with an NVIDIA GPU and a CUDA build:
#
#   make CUDA=1 BUILD=build/cuda BIN=build/cuda/bin
#   BN_BIN=$PWD/build/cuda/bin BN_TESTBIN=$PWD/build/cuda/tests tests/gpu-device.sh
#
# 1. every kernel against its scalar CPU reference (test_gpu), and the whole
#    forward pass on synthetic I2_S / TQ2_0 / F16 models (test_gpu --model);
# 2. bn-forward --device cuda against --device cpu on the fixture prompts A, B,
#    C (I2_S and TQ2_0: prompt rows, and bitnet.cpp's 32 greedy ids fed back
#    as single-token decode steps through the CUDA graph) and the kjv model:
#    every row max |diff| <= 0.05 and the same argmax; the
#    GPU's prompt rows against bitnet.cpp's own logits (the quantized-path
#    bounds of tests/ref/forward.bats) and kjv against the float64 reference;
# 3. --device auto / --strict behaviour with a GPU present;
# 4. the CPU SIMD kernels of the host (test_kernels, test_vecmath: AVX-512
#    where the host has it).
# Speed is measured separately (bench/gpu). Prints "N passed, N failed" last;
# exit 1 if anything failed. Needs $BN_SHARED (fixtures, kjv reference).
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BN_BIN:-$root/bin}
TB=${BN_TESTBIN:-$root/build/tests}
SH=${BN_SHARED:-$root/../shared}
FX=$SH/fixtures
KJV=$SH/models/kjv-bitnet-tiny
NT=$(nproc)
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
PATH=$BIN:$PATH
pass=0 fail=0

# check NAME CMD...: one TAP line, the command's last lines as comments
check() {
    local name=$1 out rc
    shift
    if [ "$(type -t "$1")" = function ]; then out=$(timeout 300 bash -c '"$@"' _ "$@" 2>&1); else out=$(timeout 300 "$@" 2>&1); fi
    rc=$?
    if [ $rc = 0 ]; then echo "ok - $name"; pass=$((pass + 1)); else echo "not ok - $name (exit $rc)"; fail=$((fail + 1)); fi
    [ -n "$out" ] && printf '%s\n' "$out" | tail -n "${KEEP:-12}" | sed 's/^/#   /'
    return 0
}

A="1 450 4996 17354 1701 29916"
B="1"
C="1 9038 2501 263 931 29892 297 263 2319 5720 472 278 7636 310 263 6501 13569 29892 727 10600 385 2030 12006 28107 1058 1634 29874 2859 1432 9391 12006 297 4726 5174 278 697 393 18757 2038 670 1914 3050 29889"

# gpu_vs_cpu MODEL IDS TAG [FLAG]: prompt rows (one batch) of --device cuda vs --device cpu
gpu_vs_cpu() {
    local m=$1 ids=$2 tag=$3 flag=${4:-}
    echo "$ids" | bn-forward -m "$m" --ids $flag -t "$NT" --device cpu --dump-logits "$W/$tag.cpu.logt" >/dev/null || return 1
    echo "$ids" | bn-forward -m "$m" --ids $flag --device "${GPUDEV:-cuda}" --strict --dump-logits "$W/$tag.gpu.logt" >/dev/null || return 1
    "$TB/logt-compare" --quiet --max-abs 0.05 --argmax-all "$W/$tag.gpu.logt" "$W/$tag.cpu.logt"
}
# teacher MODEL IDS GEN_TXT TAG: the prompt as one batch, then each id of GEN_TXT
# as its own decode step (the CUDA graph on the GPU); every row GPU vs CPU
teacher() {
    local m=$1 ids=$2 gen=$3 tag=$4 dev
    for dev in cpu "${GPUDEV:-cuda}"; do
        teacher_frames "$ids" "$gen" | "$TB/bn-frames" --from-json |
            bn-forward -m "$m" --no-feedback --device $dev --strict -t "$NT" --dump-logits "$W/$tag.$dev.logt" >/dev/null || return 1
    done
    "$TB/logt-compare" --quiet --max-abs 0.05 --argmax-all "$W/$tag.${GPUDEV:-cuda}.logt" "$W/$tag.cpu.logt"
}
# greedy MODEL IDS N: how many of N greedy ids the GPU and the CPU share (a
# near-tie may legitimately flip one; the teacher-forced rows are the test)
greedy() {
    local m=$1 ids=$2 n=$3 a b same=0 i
    a=($(echo "$ids" | bn-forward -m "$m" --ids --greedy "$n" -t "$NT" --device cpu))
    b=($(echo "$ids" | bn-forward -m "$m" --ids --greedy "$n" --device "${GPUDEV:-cuda}" --strict))
    for ((i = 0; i < ${#a[@]}; i++)); do [ "${a[$i]}" = "${b[$i]:-}" ] && same=$((same + 1)) || break; done
    echo "greedy: first $same of ${#a[@]} ids equal"
    [ "${#a[@]}" -gt 0 ]
}
. "$root/tests/teacher_frames.sh"
export -f gpu_vs_cpu teacher greedy teacher_frames
export W TB NT PATH GPUDEV

echo "# $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | head -1)"
echo "# host: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2) ($NT threads)"
check "a CUDA device is usable" "$TB/test_gpu" --probe
check "copy bandwidth" "$TB/test_gpu" --bandwidth

KEEP=16 check "test_gpu: every kernel matches its scalar reference" \
    sh -c "'$TB/test_gpu' > '$W/unit.tap'; rc=\$?; cat '$W/unit.tap'; [ \$rc = 0 ] && ! grep -q '^not ok\\|# skip' '$W/unit.tap'"

V=$root/tests/data/tokenizer/ggml-vocab-llama-spm.gguf
bn-quantize -q --synthetic tiny --dims layers=2 --vocab "$V" -o "$W/s-i2s.gguf" --type I2_S
bn-quantize -q "$W/s-i2s.gguf" -o "$W/s-tq2.gguf" --type TQ2_0
bn-quantize -q "$W/s-i2s.gguf" -o "$W/s-f16.gguf" --type F16
for t in i2s tq2 f16; do
    check "whole model on the GPU vs the CPU pass, graph == direct launches: synthetic $t" \
        sh -c "'$TB/test_gpu' --model '$W/s-$t.gguf' > '$W/m.tap'; cat '$W/m.tap'; grep '^ok' '$W/m.tap' | grep -vq '# skip'"
done

# The fixtures: bitnet.cpp's I2_S file, and the same weights as TQ2_0.
bn-quantize -q "$FX/tiny-b158-i2_s.gguf" -o "$W/fx-tq2.gguf" --type TQ2_0 --arch bitnet
for p in A B C; do
    eval "ids=\$$p"
    check "fixture I2_S prompt $p: GPU vs CPU, every row <= 0.05, same argmax" gpu_vs_cpu "$FX/tiny-b158-i2_s.gguf" "$ids" "i2s$p"
    check "fixture I2_S prompt $p + bitnet.cpp's 32 greedy ids as decode steps (CUDA graph): rows <= 0.05, same argmax" \
        teacher "$FX/tiny-b158-i2_s.gguf" "$ids" "$FX/ref/bitnetcpp-i2_s/$p.gen.txt" "i2s${p}t"
    check "fixture TQ2_0 prompt $p + the same decode steps: rows <= 0.05, same argmax" \
        teacher "$W/fx-tq2.gguf" "$ids" "$FX/ref/bitnetcpp-i2_s/$p.gen.txt" "tq2${p}t"
    check "fixture I2_S prompt $p: GPU vs bitnet.cpp's logits (quantized-path bounds)" \
        "$TB/logt-compare" --quiet --frac 0.05:0.85 --max-abs 0.3 --min-pearson 0.9995 --mean-abs 0.01 \
        --argmax-margin 0.25 "$W/i2s$p.gpu.logt" "$FX/ref/bitnetcpp-i2_s/$p.prompt.logits"
    check "fixture I2_S prompt $p: 32 greedy steps on the GPU and the CPU (reported)" greedy "$FX/tiny-b158-i2_s.gguf" "$ids" 32
done

# A Q8_0 head (requantized at load): the GPU's q8_0 activation quantizer and
# head GEMV; on an H200 the rows came out bitwise equal to the CPU's once the
# quantizer stored its scale right (before, every scale's low byte was 0).
check "fixture I2_S prompt C, --head q8_0: GPU vs CPU, every row <= 0.05, same argmax" \
    gpu_vs_cpu "$FX/tiny-b158-i2_s.gguf" "$C" i2sCq8 "--head q8_0"

K=$root/models/kjv-bitnet-tiny-i2_s.gguf
kids=$(od -An -v -td4 -w4 "$KJV/ref_ids.bin" | tr -s ' \n' ' ')
check "kjv I2_S: GPU vs CPU, every row <= 0.05, same argmax" gpu_vs_cpu "$K" "$kids" kjv
check "kjv I2_S: GPU vs the float64 reference, <= 0.3, same top token at all 12 positions" \
    "$TB/logt-compare" --quiet --raw-b 4096 --max-abs 0.3 --argmax-all "$W/kjv.gpu.logt" "$KJV/ref_logits.bin"
echo "$kids" | bn-forward -m "$K" --ids --greedy 48 -t "$NT" | tr -s ' \n' ',' | sed 's/,$//' > "$W/kjv.gen.txt"
check "kjv I2_S + the CPU's 48 greedy ids as decode steps: rows <= 0.05, same argmax" teacher "$K" "$kids" "$W/kjv.gen.txt" kjvt
check "kjv I2_S: 48 greedy steps on the GPU and the CPU (reported)" greedy "$K" "$kids" 48

check "--device auto picks the GPU (receipt says cuda)" \
    sh -c "echo '$A' | bn-forward -m '$FX/tiny-b158-i2_s.gguf' --ids --greedy 2 --device auto -v 2>&1 >/dev/null | grep cuda"
check "--device cuda --strict runs (no fallback)" \
    sh -c "echo '$A' | bn-forward -m '$FX/tiny-b158-i2_s.gguf' --ids --greedy 2 --device cuda --strict"

check "host CPU SIMD kernels vs scalar (test_kernels)" sh -c "'$TB/test_kernels' > '$W/k.tap'; rc=\$?; tail -2 '$W/k.tap'; grep -o -m1 'avx512vnni' /proc/cpuinfo; [ \$rc = 0 ] && ! grep -q '^not ok' '$W/k.tap'"
check "host CPU vecmath vs C reference (test_vecmath)" sh -c "'$TB/test_vecmath' > '$W/v.tap'; rc=\$?; tail -2 '$W/v.tap'; [ \$rc = 0 ] && ! grep -q '^not ok' '$W/v.tap'"

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
