#!/usr/bin/env python3
"""tok_ref_bench.py: Python sentencepiece's side of pipelines/bench/tok-cpu.sh.

    tok_ref_bench.py pt MODEL RECORDS.jsonl --threads N --block 512 [--ids-out FILE]
        what `tok --mode pt` does, the way a Python user would: read the
        JSONL, json.loads each line, encode all texts with one batch
        encode(texts, num_threads=N), put BOS before each, concatenate, cut
        into blocks of --block tokens (the tail dropped) and write the
        blocks as little-endian int32 to a file. Prints one JSON line: wall
        and CPU seconds (time.perf_counter, time.process_time: all
        threads), from opening the input to the last block written, without
        starting Python or loading the model. --ids-out writes each block's
        ids as a JSON line {"input_ids": [...]}.
    tok_ref_bench.py encode MODEL TEXTS.txt --threads N
        the library alone: encode the lines of a plain text file in one
        batch; prints wall and CPU seconds of that call.
"""
import argparse
import json
import sys
import time

import sentencepiece as spm


def pt(a):
    import array
    sp = spm.SentencePieceProcessor(model_file=a.model)
    t0, c0 = time.perf_counter(), time.process_time()
    with open(a.records, encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for line in f if line.strip()]
    ids = sp.encode(texts, num_threads=a.threads)
    flat = array.array("i")
    bos = sp.bos_id()
    for x in ids:
        flat.append(bos)
        flat.extend(x)
    nblocks = len(flat) // a.block
    with open(a.out, "wb") as f:
        flat[:nblocks * a.block].tofile(f)
    t1, c1 = time.perf_counter(), time.process_time()
    if a.ids_out:
        with open(a.ids_out, "w") as f:
            for b in range(nblocks):
                f.write(json.dumps({"input_ids": flat[b * a.block:(b + 1) * a.block].tolist()},
                                   separators=(",", ":")) + "\n")
    print(json.dumps({"wall_s": t1 - t0, "cpu_s": c1 - c0, "blocks": nblocks,
                      "tokens": len(flat), "version": spm.__version__}))


def encode(a):
    sp = spm.SentencePieceProcessor(model_file=a.model)
    with open(a.texts, encoding="utf-8") as f:
        texts = f.read().splitlines()
    t0, c0 = time.perf_counter(), time.process_time()
    ids = sp.encode(texts, num_threads=a.threads)
    t1, c1 = time.perf_counter(), time.process_time()
    print(json.dumps({"wall_s": t1 - t0, "cpu_s": c1 - c0, "tokens": sum(map(len, ids)),
                      "version": spm.__version__}))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pt")
    p.add_argument("model")
    p.add_argument("records")
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--block", type=int, default=512)
    p.add_argument("--out", default="/dev/null")
    p.add_argument("--ids-out")
    e = sub.add_parser("encode")
    e.add_argument("model")
    e.add_argument("texts")
    e.add_argument("--threads", type=int, required=True)
    a = ap.parse_args()
    pt(a) if a.cmd == "pt" else encode(a)


if __name__ == "__main__":
    sys.exit(main())
