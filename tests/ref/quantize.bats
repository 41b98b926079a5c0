#!/usr/bin/env bats
# bn-quantize against the reference files in $BN_SHARED: the bitnet.cpp and
# llama.cpp fixtures round-trip byte for byte, the trained kjv checkpoint
# converts (bf16 master and a Microsoft-packed copy agree), the shipped demo
# model is reproducible, and the synthetic 2B-4T layout matches the official
# file's numbers.
load ../helpers

setup() {
    F="$BN_SHARED/fixtures"
    K="$BN_SHARED/models/kjv-bitnet-tiny"
    T="$BATS_TEST_TMPDIR"
    CMP="$BN_TESTBIN/cmp_tensors"
    VAL="$BN_TESTBIN/validate_model"
    [ -f "$F/tiny-b158-i2_s.gguf" ] || skip "no fixtures in $BN_SHARED"
}

# bn-gguf validate when it is built, and always the library validator
validate() {
    if [ -x "$BN_BIN/bn-gguf" ]; then
        run bn-gguf validate "$@"
        assert_success
    fi
    run "$VAL" "$@"
    assert_success
}

@test "bitnet.cpp I2_S fixture: -> F32 -> I2_S and -> F16 -> I2_S reproduce every tensor" {
    for mid in F32 F16; do
        bn-quantize -q "$F/tiny-b158-i2_s.gguf" -o "$T/mid.gguf" --type "$mid"
        bn-quantize -q "$T/mid.gguf" -o "$T/back.gguf" --type I2_S
        run "$CMP" "$T/back.gguf" "$F/tiny-b158-i2_s.gguf"
        assert_success
        assert_line "46 of 46 tensors identical"
        validate "$T/back.gguf"
    done
}

@test "llama.cpp TQ2_0 / TQ1_0 fixtures: -> F32 -> same type, and via I2_S, reproduce every tensor" {
    for t in tq2_0 tq1_0; do
        T_UP=$(echo "$t" | tr a-z A-Z)
        bn-quantize -q "$F/tiny-bitnet-$t.gguf" -o "$T/f32.gguf" --type F32
        bn-quantize -q "$T/f32.gguf" -o "$T/back.gguf" --type "$T_UP"
        run "$CMP" "$T/back.gguf" "$F/tiny-bitnet-$t.gguf"
        assert_success
        assert_line "46 of 46 tensors identical"
        bn-quantize -q "$F/tiny-bitnet-$t.gguf" -o "$T/i2s.gguf" --type I2_S
        bn-quantize -q "$T/i2s.gguf" -o "$T/back2.gguf" --type "$T_UP"
        run "$CMP" "$T/back2.gguf" "$F/tiny-bitnet-$t.gguf"
        assert_success
        validate "$T/back2.gguf"
    done
}

@test "TQ from the I2_S fixture's weights equals llama.cpp's TQ fixtures, and back" {
    for t in TQ2_0 TQ1_0; do
        lc=$(echo "$t" | tr A-Z a-z)
        bn-quantize -q "$F/tiny-b158-i2_s.gguf" -o "$T/tq.gguf" --type "$t"
        run "$CMP" "$T/tq.gguf" "$F/tiny-bitnet-$lc.gguf"
        assert_success
        assert_line "46 of 46 tensors identical"
        bn-quantize -q "$T/tq.gguf" -o "$T/i2s.gguf" --type I2_S
        run "$CMP" "$T/i2s.gguf" "$F/tiny-b158-i2_s.gguf"
        assert_success
    done
}

@test "synthetic tiny with the fixture vocabulary has the fixture layout and offsets" {
    bn-quantize -q --synthetic tiny --vocab "$BN_SHARED/tokenizer/ggml-vocab-llama-spm.gguf" -o "$T/s.gguf" --type I2_S
    validate "$T/s.gguf"
    run "$VAL" --stats "$T/s.gguf"
    assert_line "i2_s: 28 tensors, $((16416*8 + 4128*8 + 49184*12)) bytes"
    assert_line "f16: 1 tensors, 16384000 bytes"
    assert_line "f32: 17 tensors, $((1024*13 + 3072*4)) bytes"
}

@test "kjv-bitnet-tiny converts to I2_S, TQ2_0, TQ1_0, F16 and every file validates" {
    for t in I2_S TQ2_0 TQ1_0 F16; do
        run bn-quantize -q "$K" -o "$T/kjv-$t.gguf" --type "$t"
        assert_success
        validate "$T/kjv-$t.gguf"
    done
    run "$VAL" --stats "$T/kjv-I2_S.gguf"
    assert_line "i2_s: 42 tensors, $(( (16416 + 8224*2 + 16416 + 49184*3) * 6 )) bytes"
    assert_line "total: 68 tensors"
}

@test "the shipped demo model is exactly what the documented command produces" {
    [ -f "$BN_ROOT/models/kjv-bitnet-tiny-i2_s.gguf" ] || skip "models/kjv-bitnet-tiny-i2_s.gguf not present"
    bn-quantize -q "$K" -o "$T/demo.gguf" --type I2_S
    cmp "$T/demo.gguf" "$BN_ROOT/models/kjv-bitnet-tiny-i2_s.gguf"
    [ "$(stat -c %s "$BN_ROOT/models/kjv-bitnet-tiny-i2_s.gguf")" -lt 5000000 ]
    run sha256sum "$BN_ROOT/models/kjv-bitnet-tiny-i2_s.gguf"
    assert_output --partial "$(grep -o '[0-9a-f]\{64\}' "$BN_ROOT/models/README.md" | head -1)"
}

@test "a Microsoft-packed copy of the kjv weights gives the same GGUF tensors as the bf16 master" {
    /usr/bin/python3 "$BN_ROOT/tests/tools/pack_hf.py" pack "$K" "$T/packed"
    grep -q autobitlinear "$T/packed/config.json"
    bn-quantize -q "$K" -o "$T/master.gguf" --type I2_S
    bn-quantize -q "$T/packed" -o "$T/packed.gguf" --type I2_S
    run "$CMP" "$T/packed.gguf" "$T/master.gguf"
    assert_success
    assert_line "68 of 68 tensors identical"
}

@test "kjv ternary codes equal a numpy re-implementation of the reference weight_quant" {
    bn-quantize -q "$K" -o "$T/kjv.gguf" --type I2_S
    run /usr/bin/python3 - "$K/model.safetensors" "$T/kjv.gguf" <<'EOF'
import json, struct, sys
import numpy as np
st = open(sys.argv[1], 'rb').read()
n = struct.unpack('<Q', st[:8])[0]; hdr = json.loads(st[8:8 + n]); base = 8 + n
g = open(sys.argv[2], 'rb').read()
pos = 24
def rd(fmt):
    global pos
    v = struct.unpack_from('<' + fmt, g, pos); pos += struct.calcsize('<' + fmt); return v
def rs():
    global pos
    k, = rd('Q'); s = g[pos:pos + k]; pos += k; return s
SZ = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
def skip(t):
    global pos
    if t == 8: rs()
    elif t == 9:
        at, = rd('I'); k, = rd('Q')
        for _ in range(k): skip(at)
    else: pos += SZ[t]
nt, nkv = struct.unpack_from('<QQ', g, 8)
for _ in range(nkv): rs(); t, = rd('I'); skip(t)
T = {}
for _ in range(nt):
    nm = rs().decode(); nd, = rd('I'); ne = rd('Q' * nd); ty, = rd('I'); off, = rd('Q'); T[nm] = (ne, ty, off)
gb = (pos + 31) // 32 * 32
M = {'attn_q': 'self_attn.q_proj', 'attn_k': 'self_attn.k_proj', 'attn_v': 'self_attn.v_proj', 'attn_output': 'self_attn.o_proj',
     'ffn_gate': 'mlp.gate_proj', 'ffn_up': 'mlp.up_proj', 'ffn_down': 'mlp.down_proj'}
total = bad = 0
for nm, (ne, ty, off) in T.items():
    if ty != 36: continue
    l, part = int(nm.split('.')[1]), nm.split('.')[2]
    h = hdr['model.layers.%d.%s.weight' % (l, M[part])]
    a, b = h['data_offsets']
    w = (np.frombuffer(st[base + a:base + b], '<u2').astype(np.uint32) << 16).view(np.float32)
    nel = ne[0] * ne[1]
    raw = np.frombuffer(g[gb + off:gb + off + nel // 4], np.uint8).reshape(-1, 32)
    codes = np.concatenate([((raw >> (6 - 2 * k)) & 3) for k in range(4)], axis=1).reshape(-1).astype(np.int8) - 1
    scale = struct.unpack_from('<f', g, gb + off + nel // 4)[0]
    # mean|W| correctly rounded to f32 (sum in float64), as bn-quantize; the codes must
    # also equal those from numpy's float32 pairwise mean (torch's f32 mean may differ
    # from the exact one by an ulp, which moves no code on these weights)
    inv = np.float32(1) / max(np.float32(np.abs(w.astype(np.float64)).mean()), np.float32(1e-5))
    inv32 = np.float32(1) / max(np.abs(w).mean(dtype=np.float32), np.float32(1e-5))
    t = np.clip(np.round(w * inv), -1, 1).astype(np.int8)
    t32 = np.clip(np.round(w * inv32), -1, 1).astype(np.int8)
    total += t.size; bad += int((t != codes).sum()) + int((t32 != codes).sum())
    if scale != np.float32(1) / inv: bad += 1
print('codes', total, 'mismatches', bad)
EOF
    assert_success
    assert_output "codes 4718592 mismatches 0"
}

@test "synthetic 2b4t matches the official bitnet-b1.58-2B-4T layout (slow: ~1.2 GB)" {
    V="$BN_SHARED/tokenizer/bitnet-b1.58-2B-4T.vocab.gguf"
    [ -f "$V" ] || skip "no $V"
    bn-quantize -q --synthetic 2b4t --vocab "$V" -o "$T/2b4t.gguf" --type I2_S
    validate "$T/2b4t.gguf"
    run "$VAL" --stats "$T/2b4t.gguf"
    assert_line "i2_s: 210 tensors, 521017920 bytes"
    assert_line "f16: 1 tensors, 656670720 bytes"
    assert_line "f32: 121 tensors, 1761280 bytes"
    assert_line "total: 332 tensors"
    grep -qa "tokenizer.ggml.merges" "$T/2b4t.gguf"
    grep -qa "tokenizer.chat_template" "$T/2b4t.gguf"
    rm -f "$T/2b4t.gguf"
}

@test "a LLaMA-3 tokenizer.json checkpoint gives exactly the official 2B-4T tokenizer keys" {
    V="$BN_SHARED/tokenizer/bitnet-b1.58-2B-4T.vocab.gguf"
    [ -f "$V" ] || skip "no $V"
    /usr/bin/python3 "$BN_ROOT/tests/tools/pack_hf.py" tiny "$T/l3" --vocab-size 128256 --embd 128 --heads 2 --kv 1 --ffn 256 --layers 1
    /usr/bin/python3 "$BN_ROOT/tests/tools/gguf_vocab_json.py" tojson "$V" "$T/l3"
    run bn-quantize -q "$T/l3" -o "$T/l3.gguf" --type I2_S
    assert_success
    validate "$T/l3.gguf"
    # tokens, token types, scores (-1000 for the 256 specials), 280147 merges, ids, chat template
    run /usr/bin/python3 "$BN_ROOT/tests/tools/gguf_vocab_json.py" cmp "$T/l3.gguf" "$V"
    assert_success
    assert_output --partial "10 tokenizer keys compared, 0 differ"
}

@test "kjv converted to I2_S / TQ2_0 / TQ1_0 / F16 runs in bn-forward within the README's tolerance of the reference logits" {
    [ -x "$BN_BIN/bn-forward" ] || skip "bn-forward not built"
    for t in I2_S TQ2_0 TQ1_0 F16; do
        bn-quantize -q "$K" -o "$T/k.gguf" --type "$t"
        echo "1 1037 261 2076 391 3304 261 738 270 261 624 4057" |
            bn-forward -m "$T/k.gguf" --ids --logits all --dump-logits "$T/k.logt" -t 1 >/dev/null
        # kjv README: max |dlogit| < ~0.3 and the same argmax on every row
        run /usr/bin/python3 -c "
import numpy as np
a = np.fromfile('$T/k.logt', '<f4', offset=16).reshape(-1, 4096)
r = np.fromfile('$K/ref_logits.bin', '<f4').reshape(12, 4096)
d = float(np.abs(a - r).max())
print('$t maxabs %.4f argmax %s' % (d, bool((a.argmax(1) == r.argmax(1)).all())))
assert a.shape == r.shape and d < 0.3 and (a.argmax(1) == r.argmax(1)).all()
"
        assert_success
    done
}
