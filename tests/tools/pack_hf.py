#!/usr/bin/python3
"""Test helper for bn-quantize: write Hugging Face BitNet checkpoint directories.

  pack_hf.py pack SRC_DIR OUT_DIR
      Microsoft's packed form (microsoft/bitnet-b1.58-2B-4T layout) of a bf16/f16/f32
      master checkpoint: every q/k/v/o/gate/up/down weight is ternarized with absmean
      (s = max(mean|W|, 1e-5) in float32, inv = 1/s, T = clamp(rne(W*inv), -1, 1)),
      packed 4 codes per byte with the codes of one byte in rows out/4 apart
      (unpacked row i*(out/4) + r = ((packed[r] >> 2i) & 3) - 1), and given a scalar
      F32 `<name>_scale` = 1/inv (multiplicative, quantization_config.linear_class
      "autobitlinear"). Other tensors and files are copied.
  pack_hf.py tiny OUT_DIR [options]
      A small random BitNet checkpoint (bf16 master weights by default) for tests that
      must not need ../shared. Options: --seed N, --layers N, --embd N, --ffn N,
      --heads N, --kv N, --dtype BF16|F16|F32, --spm FILE (tokenizer.model; otherwise a
      small byte-level BPE tokenizer.json is written), --packed, --shards N,
      --drop NAME, --bad-dtype NAME (store NAME as I32), --scale-dtype F32|BF16,
      --untied (a separate lm_head.weight, tie_word_embeddings false), --vocab-size N
      (embedding rows; the caller then replaces the tokenizer files).
  pack_hf.py bump-scale FILE.gguf TENSOR
      Double the f16 scale d of the first block of a TQ2_0 tensor in place (a TQ file
      with per-block scales that cannot become I2_S without loss).

Only for tests (numpy); bn itself never runs Python.
"""
import argparse, json, os, shutil, struct, sys
import numpy as np

LINEAR = ('q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj')


def is_linear(name):
    return name.endswith('.weight') and name.split('.')[-2] in LINEAR


def read_safetensors(path):
    with open(path, 'rb') as f:
        n = struct.unpack('<Q', f.read(8))[0]
        hdr = json.loads(f.read(n))
        data = f.read()
    out = {}
    for k, v in hdr.items():
        if k == '__metadata__':
            continue
        a, b = v['data_offsets']
        raw = data[a:b]
        dt = v['dtype']
        if dt == 'BF16':
            x = (np.frombuffer(raw, '<u2').astype(np.uint32) << 16).view(np.float32)
        elif dt == 'F16':
            x = np.frombuffer(raw, '<f2').astype(np.float32)
        elif dt == 'F32':
            x = np.frombuffer(raw, '<f4').copy()
        else:
            raise SystemExit('unsupported dtype %s' % dt)
        out[k] = (x.reshape(v['shape']), dt)
    return out


def to_bytes(x, dt):
    if dt == 'BF16':
        u = np.ascontiguousarray(x, np.float32).view(np.uint32)
        u = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype('<u2')  # round to nearest even
        return u.tobytes()
    if dt == 'F16':
        return np.asarray(x, '<f2').tobytes()
    if dt == 'F32':
        return np.asarray(x, '<f4').tobytes()
    if dt == 'U8':
        return np.asarray(x, np.uint8).tobytes()
    if dt == 'I32':
        return np.asarray(x, '<i4').tobytes()
    raise SystemExit('bad dtype ' + dt)


def stored(x, dt):
    """The float32 values a tensor has after being written in dtype dt."""
    b = to_bytes(x, dt)
    if dt == 'BF16':
        return (np.frombuffer(b, '<u2').astype(np.uint32) << 16).view(np.float32).reshape(np.shape(x))
    if dt == 'F16':
        return np.frombuffer(b, '<f2').astype(np.float32).reshape(np.shape(x))
    return np.asarray(x, np.float32)


def write_safetensors(path, tensors):
    """tensors: list of (name, array, dtype); data laid out contiguously in order."""
    hdr, blobs, off = {'__metadata__': {'format': 'pt'}}, [], 0
    for name, x, dt in tensors:
        b = to_bytes(x, dt)
        hdr[name] = {'dtype': dt, 'shape': list(np.shape(x)), 'data_offsets': [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(hdr, separators=(',', ':')).encode()
    h += b' ' * ((8 - len(h) % 8) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def ternarize(w):
    w = np.asarray(w, np.float32)
    m = np.float32(np.abs(w.astype(np.float64)).mean())
    s = max(m, np.float32(1e-5))
    inv = np.float32(1) / np.float32(s)
    t = np.clip(np.round(w * inv), -1, 1).astype(np.int8)  # np.round: half to even
    return t, np.float32(1) / inv


def pack(t):
    out = t.shape[0]
    assert out % 4 == 0
    q = out // 4
    codes = (t + 1).astype(np.uint8)
    p = np.zeros((q, t.shape[1]), np.uint8)
    for i in range(4):
        p |= codes[i * q:(i + 1) * q] << (2 * i)
    return p


def emit(out_dir, tensors, cfg, args, extra_files):
    """tensors: dict name -> (float array, dtype). Applies --packed/--drop/--bad-dtype/--shards."""
    os.makedirs(out_dir, exist_ok=True)
    items = []
    for name, (x, dt) in tensors.items():
        if name == args.drop:
            continue
        if args.packed and is_linear(name):
            t, s = ternarize(stored(x, dt))  # ternarize what the master file holds
            items.append((name, pack(t), 'U8'))
            items.append((name + '_scale', np.array(s, np.float32), args.scale_dtype))
        elif name == args.bad_dtype:
            items.append((name, np.asarray(x).astype(np.int32), 'I32'))
        else:
            items.append((name, x, dt))
    if args.packed:
        cfg = dict(cfg)
        cfg['quantization_config'] = {'quant_method': 'bitnet', 'linear_class': 'autobitlinear',
                                      'quantization_mode': 'offline'}
    with open(os.path.join(out_dir, 'config.json'), 'w') as f:
        json.dump(cfg, f, indent=2)
    n = max(1, args.shards)
    if n == 1:
        write_safetensors(os.path.join(out_dir, 'model.safetensors'), items)
    else:
        per = (len(items) + n - 1) // n
        wm = {}
        for i in range(n):
            fn = 'model-%05d-of-%05d.safetensors' % (i + 1, n)
            part = items[i * per:(i + 1) * per]
            write_safetensors(os.path.join(out_dir, fn), part)
            for name, _, _ in part:
                wm[name] = fn
        with open(os.path.join(out_dir, 'model.safetensors.index.json'), 'w') as f:
            json.dump({'metadata': {}, 'weight_map': wm}, f, indent=2)
    for name, content in extra_files.items():
        p = os.path.join(out_dir, name)
        if isinstance(content, bytes):
            open(p, 'wb').write(content)
        else:
            with open(p, 'w') as f:
                json.dump(content, f, indent=2)


def bpe_tokenizer():
    """A byte-level BPE (GPT-2 byte mapping) with a few merges and two specials."""
    bs = list(range(ord('!'), ord('~') + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    chars = [chr(c) for c in cs]
    vocab = {c: i for i, c in enumerate(chars)}
    merges = [['\u0120', 't'], ['h', 'e'], ['\u0120t', 'he']]
    for a, b in merges:
        vocab[a + b] = len(vocab)
    added = [{'id': len(vocab), 'content': '<|begin_of_text|>', 'special': True},
             {'id': len(vocab) + 1, 'content': '<|end_of_text|>', 'special': True}]
    tok = {'version': '1.0', 'added_tokens': added,
           'model': {'type': 'BPE', 'vocab': vocab, 'merges': [' '.join(m) for m in merges[:2]] + [merges[2]]}}
    return tok, len(vocab) + 2, added[0]['id'], added[1]['id']


def cmd_tiny(args):
    rng = np.random.default_rng(args.seed)
    E, F, L, H, KV = args.embd, args.ffn, args.layers, args.heads, args.kv
    hd = E // H
    extra = {}
    if args.spm:
        extra['tokenizer.model'] = open(args.spm, 'rb').read()
        import re
        V = None
        # vocab size of a SentencePiece model: count the pieces (field 1, wire type 2) at top level
        data, i, V = extra['tokenizer.model'], 0, 0
        while i < len(data):
            key, i = varint(data, i)
            wt = key & 7
            if wt == 2:
                ln, i = varint(data, i)
                V += (key >> 3) == 1
                i += ln
            elif wt == 0:
                _, i = varint(data, i)
            elif wt == 5:
                i += 4
            elif wt == 1:
                i += 8
        bos, eos = 1, 2
        extra['tokenizer_config.json'] = {'add_bos_token': True, 'add_eos_token': False}
    else:
        tok, V, bos, eos = bpe_tokenizer()
        if args.vocab_size:  # the caller brings its own tokenizer files of this size
            V = args.vocab_size
        extra['tokenizer.json'] = tok
        extra['tokenizer_config.json'] = {'add_bos_token': True, 'add_eos_token': False,
                                          'chat_template': '{% for m in messages %}{{ m.content }}{% endfor %}'}
    cfg = {'architectures': ['BitNetForCausalLM'], 'model_type': 'bitnet', 'vocab_size': V, 'hidden_size': E,
           'intermediate_size': F, 'num_hidden_layers': L, 'num_attention_heads': H, 'num_key_value_heads': KV,
           'hidden_act': 'relu2', 'rms_norm_eps': 1e-5, 'rope_theta': 500000.0, 'max_position_embeddings': 128,
           'tie_word_embeddings': True, 'bos_token_id': bos, 'eos_token_id': eos, 'rope_scaling': None}
    T = {'model.embed_tokens.weight': (rng.normal(0, 0.15, (V, E)).astype(np.float32), args.dtype)}
    for l in range(L):
        p = 'model.layers.%d.' % l
        shapes = {'self_attn.q_proj': (H * hd, E), 'self_attn.k_proj': (KV * hd, E), 'self_attn.v_proj': (KV * hd, E),
                  'self_attn.o_proj': (E, H * hd), 'mlp.gate_proj': (F, E), 'mlp.up_proj': (F, E),
                  'mlp.down_proj': (E, F)}
        T[p + 'input_layernorm.weight'] = ((1 + 0.05 * rng.normal(size=E)).astype(np.float32), args.dtype)
        for k in ('self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj'):
            T[p + k + '.weight'] = (rng.normal(0, 0.02, shapes[k]).astype(np.float32), args.dtype)
        T[p + 'self_attn.attn_sub_norm.weight'] = ((1 + 0.05 * rng.normal(size=E)).astype(np.float32), args.dtype)
        T[p + 'self_attn.o_proj.weight'] = (rng.normal(0, 0.02, shapes['self_attn.o_proj']).astype(np.float32), args.dtype)
        T[p + 'post_attention_layernorm.weight'] = ((1 + 0.05 * rng.normal(size=E)).astype(np.float32), args.dtype)
        for k in ('mlp.gate_proj', 'mlp.up_proj', 'mlp.down_proj'):
            T[p + k + '.weight'] = (rng.normal(0, 0.02, shapes[k]).astype(np.float32), args.dtype)
        T[p + 'mlp.ffn_sub_norm.weight'] = ((1 + 0.05 * rng.normal(size=F)).astype(np.float32), args.dtype)
    T['model.norm.weight'] = ((1 + 0.05 * rng.normal(size=E)).astype(np.float32), args.dtype)
    if args.untied:
        T['lm_head.weight'] = (rng.normal(0, 0.05, (V, E)).astype(np.float32), args.dtype)
        cfg['tie_word_embeddings'] = False
    emit(args.out, T, cfg, args, extra)


def varint(b, i):
    x = s = 0
    while True:
        c = b[i]
        i += 1
        x |= (c & 0x7F) << s
        s += 7
        if c < 0x80:
            return x, i


def cmd_pack(args):
    src = args.src
    T = read_safetensors(os.path.join(src, 'model.safetensors'))
    cfg = json.load(open(os.path.join(src, 'config.json')))
    extra = {}
    for fn in os.listdir(src):
        if fn in ('tokenizer.model', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json',
                  'generation_config.json'):
            extra[fn] = open(os.path.join(src, fn), 'rb').read()
    args.packed = True
    emit(args.out, T, cfg, args, extra)


def cmd_bump(args):
    b = bytearray(open(args.file, 'rb').read())
    pos = [24]
    def rd(fmt):
        v = struct.unpack_from('<' + fmt, b, pos[0]); pos[0] += struct.calcsize('<' + fmt); return v
    def rs():
        n, = rd('Q'); s = bytes(b[pos[0]:pos[0] + n]); pos[0] += n; return s
    size = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
    def skip(t):
        if t == 8: rs()
        elif t == 9:
            at, = rd('I'); n, = rd('Q')
            for _ in range(n): skip(at)
        else: pos[0] += size[t]
    nt, nkv = struct.unpack_from('<QQ', b, 8)
    align = 32
    for _ in range(nkv):
        k = rs(); t, = rd('I')
        if k == b'general.alignment': align, = struct.unpack_from('<I', b, pos[0])
        skip(t)
    found = None
    for _ in range(nt):
        name = rs().decode(); nd, = rd('I'); rd('Q' * nd); t, = rd('I'); off, = rd('Q')
        if name == args.tensor: found = (t, off)
    if not found or found[0] != 35: raise SystemExit('no TQ2_0 tensor ' + args.tensor)
    base = (pos[0] + align - 1) // align * align
    p = base + found[1] + 64
    d = np.frombuffer(bytes(b[p:p + 2]), '<f2')[0]
    b[p:p + 2] = np.array([d * 2], '<f2').tobytes()
    open(args.file, 'wb').write(b)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest='cmd', required=True)
    p = sub.add_parser('bump-scale')
    p.add_argument('file')
    p.add_argument('tensor')
    for name in ('tiny', 'pack'):
        p = sub.add_parser(name)
        if name == 'pack':
            p.add_argument('src')
        p.add_argument('out')
        p.add_argument('--seed', type=int, default=1)
        p.add_argument('--layers', type=int, default=2)
        p.add_argument('--embd', type=int, default=256)
        p.add_argument('--ffn', type=int, default=768)
        p.add_argument('--heads', type=int, default=4)
        p.add_argument('--kv', type=int, default=2)
        p.add_argument('--dtype', default='BF16', choices=('BF16', 'F16', 'F32'))
        p.add_argument('--spm')
        p.add_argument('--packed', action='store_true')
        p.add_argument('--shards', type=int, default=1)
        p.add_argument('--drop')
        p.add_argument('--bad-dtype')
        p.add_argument('--scale-dtype', default='F32', choices=('F32', 'BF16'))
        p.add_argument('--untied', action='store_true')
        p.add_argument('--vocab-size', type=int, default=0)
    args = ap.parse_args()
    {'tiny': cmd_tiny, 'pack': cmd_pack, 'bump-scale': cmd_bump}[args.cmd](args)


if __name__ == '__main__':
    main()
