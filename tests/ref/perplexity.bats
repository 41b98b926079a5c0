#!/usr/bin/env bats
# pipelines/perplexity.sh against llama-perplexity's logs ($BN_SHARED/fixtures/ref/perplexity,
# `llama-perplexity -c 128 -b 128` on ppl_text.txt: 463 tokens, 3 chunks) and against
# kjv-bitnet-tiny's held-out figure (42.49, its own protocol: windows of 256).
# Bounds: quantized 0.3% on every running [i] value and the final PPL, float 0.1%.
load ../helpers

FX="$BN_SHARED/fixtures"
PPL="$BN_ROOT/pipelines/perplexity.sh"

setup_file() {
    export W="$BATS_FILE_TMPDIR"
    bn-quantize -q "$FX/tiny-b158-i2_s.gguf" -o "$W/f16.gguf" --type F16
    bn-quantize -q "$FX/tiny-b158-i2_s.gguf" -o "$W/f32.gguf" --type F32
}

# check MODEL LOG PCT [args]: every [i] value and the final PPL within PCT % of LOG's
# (PCT may be CHUNK_PCT:FINAL_PCT)
check() {
    local m=$1 log=$2 pct=$3 fpct; shift 3
    fpct=${pct#*:}; pct=${pct%:*}
    run "$PPL" -m "$m" -f "$FX/ref/ppl_text.txt" -c 128 -b 128 -t 2 "$@"
    assert_success
    echo "$(basename "$log" .log): $(echo "$output" | grep -v '^bn-ppl' | tr '\n' ' ')" >&3
    local ours theirs
    ours=$(echo "$output" | grep -o '\[[0-9]*\][0-9.]*' | tr '\n' ' ')
    theirs=$(grep -o '\[[0-9]*\][0-9.]*' "$log" | tr '\n' ' ')
    ours="$ours $(echo "$output" | sed -n 's/^Final estimate: PPL = \([0-9.]*\) +\/- .*/\1/p')"
    theirs="$theirs $(sed -n 's/^Final estimate: PPL = \([0-9.]*\) +\/- .*/\1/p' "$log")"
    awk -v a="$ours" -v b="$theirs" -v pct="$pct" -v fpct="$fpct" 'BEGIN {
        na = split(a, x, " "); nb = split(b, y, " ");
        if (na != nb || na < 4) { print "value count " na " vs " nb; exit 1 }
        for (i = 1; i <= na; i++) {
            sub(/^\[[0-9]+\]/, "", x[i]); sub(/^\[[0-9]+\]/, "", y[i]);
            d = 100 * (x[i] - y[i]) / y[i]; if (d < 0) d = -d;
            printf "%s vs %s: %.3f%%\n", x[i], y[i], d;
            lim = i == na ? fpct : pct;
            if (d > lim) { print "outside " lim "%"; exit 1 }
        } }' >&3
}

@test "text tokenizes to 463 tokens with BOS, as llama.cpp's tokenizer gave" {
    run bn-tokenize -m "$FX/tiny-b158-i2_s.gguf" -f "$FX/ref/ppl_text.txt" --ids
    assert_success
    [ "$(echo "$output" | wc -w)" -eq 463 ]
    [ "$(echo "$output" | awk '{print $1}')" = 1 ]
}

@test "I2_S vs bitnetcpp-i2_s: every chunk and the final PPL within 0.3%" {
    check "$FX/tiny-b158-i2_s.gguf" "$FX/ref/perplexity/bitnetcpp-i2_s.log" 0.3
}

@test "TQ2_0 and TQ1_0 relu2 vs llamacpp-relu2-tq2_0/tq1_0: every chunk and the final PPL within 0.01% (issue bound 0.3%)" {
    check "$FX/tiny-bitnet-tq2_0.gguf" "$FX/ref/perplexity/llamacpp-relu2-tq2_0.log" 0.01 --ffn-act relu2
    check "$FX/tiny-bitnet-tq1_0.gguf" "$FX/ref/perplexity/llamacpp-relu2-tq1_0.log" 0.01 --ffn-act relu2
}

@test "F16 vs llamacpp-relu2-f16 and F32 vs bitnetcpp-f32: within 0.1%; F16 SiLU vs llamacpp-stock-f16: within 0.1%" {
    check "$W/f16.gguf" "$FX/ref/perplexity/llamacpp-relu2-f16.log" 0.1
    check "$W/f32.gguf" "$FX/ref/perplexity/bitnetcpp-f32.log" 0.1
    check "$W/f16.gguf" "$FX/ref/perplexity/llamacpp-stock-f16.log" 0.1 --ffn-act silu
}

@test "TQ2_0 and TQ1_0 SiLU (arch default) vs llamacpp-stock-tq2_0/tq1_0: within 0.01% (issue bound 0.3%)" {
    check "$FX/tiny-bitnet-tq2_0.gguf" "$FX/ref/perplexity/llamacpp-stock-tq2_0.log" 0.01
    check "$FX/tiny-bitnet-tq1_0.gguf" "$FX/ref/perplexity/llamacpp-stock-tq1_0.log" 0.01
}

@test "standard error as llama.cpp: I2_S final +/- within 1% of 79565.60" {
    run "$PPL" -m "$FX/tiny-b158-i2_s.gguf" -f "$FX/ref/ppl_text.txt" -c 128 -t 2 --json
    assert_success
    echo "${lines[-1]}" | /usr/bin/python3 -c '
import json, sys
j = json.loads(sys.stdin.read())
assert j["chunks"] == 3 and j["tokens_scored"] == 3 * 63, j
assert abs(j["ppl_stderr"] - 79565.60088) / 79565.60088 < 0.01, j["ppl_stderr"]'
}

@test "kjv-bitnet-tiny held-out PPL (kjv protocol: BOS+line+EOS, windows of 256, first unscored) within 1% of 42.49; llama-style -c 256 reported" {
    K="$BN_SHARED/models/kjv-bitnet-tiny"
    m="$BN_ROOT/models/kjv-bitnet-tiny-i2_s.gguf"
    [ -f "$m" ] || { bn-quantize -q "$K" -o "$W/kjv.gguf" --type I2_S; m="$W/kjv.gguf"; }
    run "$PPL" -m "$m" -f "$K/eval.txt" -c 256 -t 2 --window-mode kjv --json
    assert_success
    echo "kjv: ${lines[-2]}" >&3
    echo "${lines[-1]}" | /usr/bin/python3 -c '
import json, sys
j = json.loads(sys.stdin.read())
assert j["tokens_scored"] == 24255, j["tokens_scored"]
assert abs(j["ppl"] - 42.49) / 42.49 < 0.01, j["ppl"]'
    run "$PPL" -m "$m" -f "$K/eval.txt" -c 256 -t 2
    assert_success
    echo "kjv llama-style -c 256: ${lines[-1]}" >&3
    assert_line --regexp '^Final estimate: PPL = [0-9.]+ \+/- [0-9.]+$'
}

@test "KL divergence: Q8_0 token embedding vs the I2_S fixture's F16 one; a model against itself gives KLD 0 and 100% same top" {
    bn-quantize -q "$FX/tiny-b158-i2_s.gguf" -o "$W/q8.gguf" --type I2_S --token-embedding-type Q8_0
    run "$PPL" -m "$FX/tiny-b158-i2_s.gguf" -f "$FX/ref/ppl_text.txt" -c 128 -t 2 --kl-save "$W/base.kl"
    assert_success
    run "$PPL" -m "$FX/tiny-b158-i2_s.gguf" -f "$FX/ref/ppl_text.txt" -c 128 -t 2 --kl-base "$W/base.kl" --json
    assert_success
    assert_line --regexp '^Same top p: 100.000 \+/- 0.000 %$'
    assert_line --regexp '^Mean    KLD:   0.000000'
    run "$PPL" -m "$W/q8.gguf" -f "$FX/ref/ppl_text.txt" -c 128 -t 2 --kl-base "$W/base.kl" --json
    assert_success
    echo "Q8_0 embedding: $(echo "$output" | grep -E 'Mean    KLD|Same top|Final')" >&3
    echo "${lines[-1]}" | /usr/bin/python3 -c '
import json, sys
j = json.loads(sys.stdin.read())["kl"]
assert j["rows"] == 189 and 0 < j["mean_kld"] < 0.05 and j["same_top"] > 0.8, j'
}
