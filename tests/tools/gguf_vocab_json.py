#!/usr/bin/python3
"""Test helper: tokenizer files <-> GGUF tokenizer keys.

  gguf_vocab_json.py tojson VOCAB.gguf DIR
      Write DIR/tokenizer.json (BPE: model.vocab = normal tokens, model.merges,
      added_tokens = control tokens as special) and DIR/tokenizer_config.json
      (add_bos_token, chat_template) from a GGUF vocabulary; patch DIR/config.json's
      bos/eos/pad ids and vocab_size. What a Hugging Face llama-3 style checkpoint holds.
  gguf_vocab_json.py cmp A.gguf B.gguf
      Compare every tokenizer.* key of two GGUFs; print differences, exit 1 if any.
"""
import json, os, struct, sys

SZ = {0: 'B', 1: 'b', 2: 'H', 3: 'h', 4: 'I', 5: 'i', 6: 'f', 7: '?', 10: 'Q', 11: 'q', 12: 'd'}


def read_kv(path):
    b = open(path, 'rb').read()
    pos = [24]
    def rd(fmt):
        v = struct.unpack_from('<' + fmt, b, pos[0]); pos[0] += struct.calcsize('<' + fmt); return v
    def rs():
        n, = rd('Q'); s = b[pos[0]:pos[0] + n]; pos[0] += n; return s.decode('utf-8', 'surrogateescape')
    def rv(t):
        if t == 8: return rs()
        if t == 9:
            at, = rd('I'); n, = rd('Q')
            return [rv(at) for _ in range(n)]
        return rd(SZ[t])[0]
    nt, nkv = struct.unpack_from('<QQ', b, 8)
    kv = {}
    for _ in range(nkv):
        k = rs(); t, = rd('I'); kv[k] = rv(t)
    return kv


def tojson(vocab, d):
    kv = read_kv(vocab)
    toks, types = kv['tokenizer.ggml.tokens'], kv['tokenizer.ggml.token_type']
    model = {'type': 'BPE', 'vocab': {t: i for i, (t, ty) in enumerate(zip(toks, types)) if ty == 1},
             'merges': kv['tokenizer.ggml.merges']}
    added = [{'id': i, 'content': t, 'special': True} for i, (t, ty) in enumerate(zip(toks, types)) if ty == 3]
    json.dump({'version': '1.0', 'added_tokens': added, 'model': model}, open(os.path.join(d, 'tokenizer.json'), 'w'))
    tc = {'add_bos_token': kv.get('tokenizer.ggml.add_bos_token', True)}
    if 'tokenizer.chat_template' in kv:
        tc['chat_template'] = kv['tokenizer.chat_template']
    json.dump(tc, open(os.path.join(d, 'tokenizer_config.json'), 'w'))
    cp = os.path.join(d, 'config.json')
    cfg = json.load(open(cp))
    cfg['vocab_size'] = len(toks)
    cfg['bos_token_id'] = kv['tokenizer.ggml.bos_token_id']
    cfg['eos_token_id'] = kv['tokenizer.ggml.eos_token_id']
    if 'tokenizer.ggml.padding_token_id' in kv:
        cfg['pad_token_id'] = kv['tokenizer.ggml.padding_token_id']
    json.dump(cfg, open(cp, 'w'), indent=2)


def cmp(a, b):
    ka, kb = read_kv(a), read_kv(b)
    ta = {k: v for k, v in ka.items() if k.startswith('tokenizer.')}
    tb = {k: v for k, v in kb.items() if k.startswith('tokenizer.')}
    bad = 0
    for k in sorted(set(ta) | set(tb)):
        if ta.get(k) != tb.get(k):
            va, vb = ta.get(k), tb.get(k)
            if isinstance(va, list) and isinstance(vb, list):
                i = next((i for i in range(min(len(va), len(vb))) if va[i] != vb[i]), min(len(va), len(vb)))
                print('%s: differ (lengths %d/%d, first at %d)' % (k, len(va), len(vb), i))
            else:
                print('%s: %r vs %r' % (k, str(va)[:60], str(vb)[:60]))
            bad += 1
    print('%d tokenizer keys compared, %d differ' % (len(set(ta) | set(tb)), bad))
    return 1 if bad else 0


if __name__ == '__main__':
    if sys.argv[1] == 'tojson':
        tojson(sys.argv[2], sys.argv[3])
    else:
        sys.exit(cmp(sys.argv[2], sys.argv[3]))
