#!/usr/bin/env bats
# bn-ppl and pipelines/perplexity.sh on a synthetic model (no ../shared needed):
# llama-perplexity's protocol recomputed independently from bn-forward's
# dumped logits (one fresh run per chunk, BOS replacing the first token,
# second half scored), kjv windows, --chunks, batch invariance, KL files,
# and the errors: empty or short text, bad flags, mismatched KL base.
load helpers

PPL="$BN_ROOT/pipelines/perplexity.sh"

setup_file() {
    export W="$BATS_FILE_TMPDIR"
    bn-quantize -q --synthetic tiny --vocab "$BN_DATA/tokenizer/ggml-vocab-llama-spm.gguf" -o "$W/m.gguf" --type I2_S
    for i in 1 2 3 4 5 6; do
        echo "In the beginning God created the heaven and the earth. And the earth was without form, and void;"
        echo "and darkness was upon the face of the deep. And the Spirit of God moved upon the face of the waters $i."
    done >"$W/text.txt"
    : >"$W/empty.txt"
    echo "Too short." >"$W/short.txt"
}

@test "bn-ppl --help, --version; bad flags exit 2" {
    run bn-ppl --help
    assert_success
    assert_output --partial "usage: bn-ppl"
    run bn-ppl --version
    assert_success
    run bn-ppl --bogus
    assert_failure 2
    run bn-ppl --split -c 2
    assert_failure 2
    run bn-ppl --window-mode foo
    assert_failure 2
    assert_output --partial "expected llama or kjv"
    run bn-ppl --kl-save a --kl-base b
    assert_failure 2
    run bn-ppl --split --json
    assert_failure 2
    run bn-ppl --ids
    assert_failure 2
}

@test "perplexity.sh: usage errors exit 2, missing files exit 1" {
    run "$PPL" -f "$W/text.txt"
    assert_failure 2
    run "$PPL" -m "$W/m.gguf" -f "$W/text.txt" -c abc
    assert_failure 2
    run "$PPL" -m "$W/m.gguf" -f "$W/text.txt" --window-mode x
    assert_failure 2
    run "$PPL" -m "$W/m.gguf" -f "$W/text.txt" --nope
    assert_failure 2
    run "$PPL" -m "$W/m.gguf" -f "$W/missing.txt"
    assert_failure 1
    run "$PPL" --help
    assert_success
}

@test "empty text and text shorter than 2*ctx fail with llama-perplexity's message" {
    run "$PPL" -m "$W/m.gguf" -f "$W/empty.txt" -c 32
    assert_failure 1
    run "$PPL" -m "$W/m.gguf" -f "$W/short.txt" -c 32
    assert_failure 1
    assert_output --partial "you need at least 64 tokens to evaluate perplexity with a context of 32"
    run bash -c "bn-ppl <\"$W/empty.txt\""
    assert_failure 1
    assert_output --partial "no chunks"
}

@test "llama protocol recomputed from bn-forward's dumped logits: per-chunk fresh cache, BOS first, second half scored" {
    run "$PPL" -m "$W/m.gguf" -f "$W/text.txt" -c 32 -t 2 --json
    assert_success
    assert_output --regexp '\[1\][0-9.]+,\[2\][0-9.]+,'
    assert_line --regexp '^Final estimate: PPL = [0-9.]+ \+/- [0-9.]+$'
    echo "${lines[-1]}" >"$W/ours.json"
    bn-tokenize -m "$W/m.gguf" -f "$W/text.txt" --ids >"$W/ids.txt"
    n=$(wc -w <"$W/ids.txt")
    chunks=$((n / 32))
    ids=($(cat "$W/ids.txt"))
    for c in $(seq 0 $((chunks - 1))); do # one process per chunk: an empty cache for sure
        chunk=("${ids[@]:$((c * 32)):32}")
        chunk[0]=1
        echo "${chunk[*]}" >"$W/chunk$c.txt"
        echo "${chunk[*]}" | bn-forward -m "$W/m.gguf" --ids --dump-logits "$W/chunk$c.logt" -t 1 >/dev/null
    done
    /usr/bin/python3 - "$W" "$chunks" <<'PY'
import json, sys, numpy as np
w, chunks = sys.argv[1], int(sys.argv[2])
nll, run = [], []
for c in range(chunks):
    ids = [int(x) for x in open('%s/chunk%d.txt' % (w, c)).read().split()]
    raw = open('%s/chunk%d.logt' % (w, c), 'rb').read()
    nr, nv = np.frombuffer(raw[8:16], '<u4')
    lg = np.frombuffer(raw[16:], '<f4').reshape(nr, nv).astype(np.float64)
    for r in range(16, 31):
        row = lg[r]; m = row.max()
        nll.append(-(row[ids[r + 1]] - m - np.log(np.exp(row - m).sum())))
    run.append(np.exp(np.mean(nll)))
nll = np.array(nll)
ppl = np.exp(nll.mean())
err = ppl * np.sqrt((np.mean(nll ** 2) - nll.mean() ** 2) / (len(nll) - 1))
j = json.load(open(w + '/ours.json'))
print(j, ppl, err, file=sys.stderr)
assert j['chunks'] == chunks and j['tokens_scored'] == 15 * chunks, j
assert abs(j['ppl'] - ppl) / ppl < 1e-4, (j['ppl'], ppl)
assert abs(j['ppl_stderr'] - err) / err < 1e-3, (j['ppl_stderr'], err)
assert all(abs(a - b) / b < 1e-4 for a, b in zip(j['chunk_ppl'], run)), (j['chunk_ppl'], run)
PY
}

@test "--chunks caps the chunks; batch size and threads do not change the result" {
    run "$PPL" -m "$W/m.gguf" -f "$W/text.txt" -c 32 --chunks 2 --json
    assert_success
    echo "${lines[-1]}" | grep -q '"chunks":2,"tokens_scored":30,'
    a=$("$PPL" -m "$W/m.gguf" -f "$W/text.txt" -c 32 -b 32 -t 1 | tail -n 1)
    b=$("$PPL" -m "$W/m.gguf" -f "$W/text.txt" -c 32 -b 7 -t 2 | tail -n 1)
    [ "$a" = "$b" ]
}

@test "kjv windows: last window shorter, every token but the first of each window scored" {
    n=$(bn-tokenize -m "$W/m.gguf" -f "$W/text.txt" --ids | wc -w)
    # kjv mode: BOS + encode(line) + EOS per line
    total=0
    while IFS= read -r l; do total=$((total + $(bn-tokenize -m "$W/m.gguf" -p "$l" --ids | wc -w) + 1)); done <"$W/text.txt"
    windows=$(((total + 31) / 32))
    run "$PPL" -m "$W/m.gguf" -f "$W/text.txt" -c 32 --window-mode kjv --json
    assert_success
    echo "${lines[-1]}" | grep -q "\"chunks\":$windows,\"tokens_scored\":$((total - windows)),\"mode\":\"kjv\""
}

@test "bn-ppl --split: tokens frames at position 0, BOS replacing each chunk's first token; --ids input" {
    run bash -c "echo '1 5 6 7 8 9 10 11 12 13 14 15 16' | bn-ppl --split --ids --bos 1 -c 4 | '$BN_TESTBIN/bn-frames'"
    assert_success
    assert_output --partial '"ids":[1,5,6,7]'
    assert_output --partial '"ids":[1,9,10,11]'
    assert_output --partial '"ids":[1,13,14,15]'
    refute_output --partial '"ids":[8'
    run bash -c "echo '1 5 6 7 8 9 10 11 12 13' | bn-ppl --split --ids -c 4 --window-mode kjv | '$BN_TESTBIN/bn-frames'"
    assert_output --partial '"ids":[1,5,6,7]'
    assert_output --partial '"ids":[8,9,10,11]'
    assert_output --partial '"ids":[12,13]'
    run bash -c "echo '1 x' | bn-ppl --split --ids -c 4"
    assert_failure 1
}

@test "KL: a model against its own base gives KLD 0 and 100% same top; another seed does not; mismatched base is an error" {
    run "$PPL" -m "$W/m.gguf" -f "$W/text.txt" -c 32 --kl-save "$W/base.kl"
    assert_success
    [ -s "$W/base.kl" ]
    run "$PPL" -m "$W/m.gguf" -f "$W/text.txt" -c 32 --kl-base "$W/base.kl" --json
    assert_success
    assert_line "Same top p: 100.000 +/- 0.000 %"
    assert_line --regexp '^Mean    KLD:   0.000000'
    bn-quantize -q --synthetic tiny --seed 7 --vocab "$BN_DATA/tokenizer/ggml-vocab-llama-spm.gguf" -o "$W/m7.gguf" --type I2_S
    run "$PPL" -m "$W/m7.gguf" -f "$W/text.txt" -c 32 --kl-base "$W/base.kl" --json
    assert_success
    echo "${lines[-1]}" | /usr/bin/python3 -c 'import json,sys; k=json.load(sys.stdin)["kl"]; assert k["mean_kld"] > 0.01, k'
    run "$PPL" -m "$W/m.gguf" -f "$W/text.txt" -c 64 --kl-base "$W/base.kl"
    assert_failure 1
    head -c 100 "$W/base.kl" >"$W/bad.kl"
    run "$PPL" -m "$W/m.gguf" -f "$W/text.txt" -c 32 --kl-base "$W/bad.kl"
    assert_failure 1
    assert_output --partial "size"
    run "$PPL" -m "$W/m.gguf" -f "$W/text.txt" -c 32 --kl-base "$W/text.txt"
    assert_failure 1
    assert_output --partial "magic"
}

@test "a failed --kl-save leaves no file; bn-ppl refuses --kl-* on SCORES frames" {
    run "$PPL" -m "$W/m.gguf" -f "$W/short.txt" -c 32 --kl-save "$W/none.kl"
    assert_failure 1
    [ ! -e "$W/none.kl" ]
    run bash -c "bn-tokenize -m '$W/m.gguf' -f '$W/text.txt' | bn-ppl --split -c 32 | bn-forward -m '$W/m.gguf' --scores | bn-ppl --kl-save '$W/x.kl'"
    assert_failure 1
    assert_output --partial "--logits all"
    [ ! -e "$W/x.kl" ]
}

@test "KL statistics recomputed from both models' dumped logits: mean/max KLD, same top, PPL ratio" {
    "$PPL" -m "$W/m.gguf" -f "$W/text.txt" -c 32 --kl-save "$W/b.kl" >/dev/null
    [ -f "$W/m7.gguf" ] || bn-quantize -q --synthetic tiny --seed 7 --vocab "$BN_DATA/tokenizer/ggml-vocab-llama-spm.gguf" -o "$W/m7.gguf" --type I2_S
    run "$PPL" -m "$W/m7.gguf" -f "$W/text.txt" -c 32 --kl-base "$W/b.kl" --json
    assert_success
    echo "${lines[-1]}" >"$W/kl.json"
    ids=($(bn-tokenize -m "$W/m.gguf" -f "$W/text.txt" --ids))
    chunks=$((${#ids[@]} / 32))
    for c in $(seq 0 $((chunks - 1))); do
        chunk=("${ids[@]:$((c * 32)):32}")
        chunk[0]=1
        echo "${chunk[*]}" >"$W/k$c.txt"
        for m in m m7; do echo "${chunk[*]}" | bn-forward -m "$W/$m.gguf" --ids --dump-logits "$W/k$c.$m.logt" -t 1 >/dev/null; done
    done
    /usr/bin/python3 - "$W" "$chunks" <<'PY'
import json, sys, numpy as np
w, chunks = sys.argv[1], int(sys.argv[2])
def rows(path):
    raw = open(path, 'rb').read()
    nr, nv = np.frombuffer(raw[8:16], '<u4')
    lg = np.frombuffer(raw[16:], '<f4').reshape(nr, nv).astype(np.float64)
    m = lg.max(axis=1, keepdims=True)
    return lg - m - np.log(np.exp(lg - m).sum(axis=1, keepdims=True))
kld, same, lb_t, lq_t = [], 0, [], []
for c in range(chunks):
    ids = [int(x) for x in open('%s/k%d.txt' % (w, c)).read().split()]
    b, q = rows('%s/k%d.m.logt' % (w, c)), rows('%s/k%d.m7.logt' % (w, c))
    for r in range(16, 31):
        kld.append(float((np.exp(b[r]) * (b[r] - q[r])).sum()))
        same += int(np.argmax(b[r]) == np.argmax(q[r]))
        lb_t.append(-b[r][ids[r + 1]]); lq_t.append(-q[r][ids[r + 1]])
k = json.load(open(w + '/kl.json'))['kl']
n = len(kld)
print(k, np.mean(kld), max(kld), same / n, file=sys.stderr)
assert k['rows'] == n
assert abs(k['mean_kld'] - np.mean(kld)) <= 1e-4 * np.mean(kld) + 1e-7, (k['mean_kld'], np.mean(kld))
assert abs(k['max_kld'] - max(kld)) <= 1e-4 * max(kld) + 1e-7, (k['max_kld'], max(kld))
assert abs(k['median_kld'] - np.median(kld)) <= 1e-4 * np.median(kld) + 1e-7, (k['median_kld'], np.median(kld))
assert abs(k['same_top'] - same / n) < 1e-6, (k['same_top'], same / n)
assert abs(k['ppl_base'] - np.exp(np.mean(lb_t))) / k['ppl_base'] < 1e-4
assert abs(k['ppl_q'] - np.exp(np.mean(lq_t))) / k['ppl_q'] < 1e-4
PY
}
