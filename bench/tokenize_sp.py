#!/usr/bin/python3
"""Helper for bench/tokenize.sh: tokenize every line of TEXT with the python
sentencepiece module (BOS added like bn), REPS times; print JSON with the best
time and MB/s, in the same shape as `tokvec bench`."""
import json
import sys
import time

import sentencepiece as spm


def main():
    model, text, reps = sys.argv[1], sys.argv[2], int(sys.argv[3])
    t0 = time.perf_counter()
    sp = spm.SentencePieceProcessor(model_file=model)
    load = time.perf_counter() - t0
    data = open(text, "rb").read()
    lines = data.decode("utf-8").split("\n")
    if data.endswith(b"\n"):
        lines = lines[:-1]
    best, ntok = None, 0
    for _ in range(max(reps, 1)):
        t0 = time.perf_counter()
        ntok = 0
        for line in lines:
            ntok += 1 + len(sp.encode(line))
        dt = time.perf_counter() - t0
        best = dt if best is None or dt < best else best
    print(json.dumps({"model": model, "type": "python-sentencepiece", "bytes": len(data), "tokens": ntok,
                      "load_s": round(load, 4), "best_s": round(best, 5),
                      "mb_per_s": round(len(data) / 1e6 / best, 2)}))


if __name__ == "__main__":
    main()
