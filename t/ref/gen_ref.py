#!/usr/bin/env python3
"""gen_ref.py: transformers (+ PEFT) as the reference for gen and the model code.

    gen_ref.py logits MODEL_DIR [ADAPTER_DIR...] < ids.txt
        for each line of ids: the logits of every position, one line per
        position, V numbers ("%.9g"), computed in float32 (weights upcast,
        as the CPU backend computes)
    gen_ref.py generate MODEL_DIR KWARGS_JSON < ids.txt
        for each line of ids: the generated ids of model.generate(input_ids,
        **kwargs), one line per returned sequence (prompt left out, padding
        after an eos dropped)
    gen_ref.py batch JOBS
        runs many of the above in one process (torch starts once): each line
        of JOBS is "logits IDS OUT MODEL_DIR [ADAPTER_DIR...]" or
        "generate IDS OUT MODEL_DIR KWARGS_JSON"
    gen_ref.py compare A B TOL
        A and B are logits files of the same shape: passes when
        max|a - b| <= TOL * max(1, max|b|) on every line
"""
import json
import sys


def load(model_dir, adapters):
    import torch
    from transformers import AutoModelForCausalLM
    torch.set_grad_enabled(False)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    # several adapters: each merged in turn, the last one left as PEFT
    # wraps it (the same function as applying them together, and PEFT
    # cannot activate several adapters that save modules)
    from peft import PeftModel
    for i, a in enumerate(adapters):
        model = PeftModel.from_pretrained(model, a)
        if i + 1 < len(adapters):
            model = model.merge_and_unload()
    return model.eval()


def read_ids(f):
    for line in f:
        ids = [int(x) for x in line.split()]
        if ids:
            yield ids


def logits(model_dir, adapters, fin=sys.stdin, out=sys.stdout):
    import torch
    model = load(model_dir, adapters)
    for ids in read_ids(fin):
        res = model(torch.tensor([ids])).logits[0].float()
        for row in res.tolist():
            print(" ".join("%.9g" % x for x in row), file=out)


def generate(model_dir, kwargs, fin=sys.stdin, out=sys.stdout):
    import torch
    model = load(model_dir, [])
    kw = json.loads(kwargs)
    eos = model.generation_config.eos_token_id
    eos = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
    for ids in read_ids(fin):
        res = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                             **kw)
        for seq in res.tolist():
            gen = seq[len(ids):]
            for i, t in enumerate(gen):  # drop what follows the first eos
                if t in eos:
                    gen = gen[:i + 1]
                    break
            print(" ".join(map(str, gen)), file=out)


def batch(jobs):
    for line in open(jobs):
        w = line.split(None, 4) if line.startswith("generate") else line.split()
        if not w:
            continue
        with open(w[1]) as fin, open(w[2], "w") as fout:
            if w[0] == "logits":
                logits(w[3], w[4:], fin, fout)
            else:
                generate(w[3], w[4], fin, fout)


def compare(a, b, tol):
    worst = 0.0
    with open(a) as fa, open(b) as fb:
        la, lb = fa.readlines(), fb.readlines()
    if len(la) != len(lb):
        sys.exit(f"compare: {len(la)} lines vs {len(lb)}")
    for i, (x, y) in enumerate(zip(la, lb)):
        x = [float(v) for v in x.split()]
        y = [float(v) for v in y.split()]
        if len(x) != len(y):
            sys.exit(f"compare: line {i + 1}: {len(x)} values vs {len(y)}")
        scale = max(1.0, max(abs(v) for v in y))
        d = max(abs(p - q) for p, q in zip(x, y)) / scale
        worst = max(worst, d)
    print(f"max relative difference {worst:.3g} (tolerance {tol})")
    if not worst <= float(tol):
        sys.exit(1)


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "logits":
        logits(sys.argv[2], sys.argv[3:])
    elif cmd == "generate":
        generate(sys.argv[2], sys.argv[3])
    elif cmd == "batch":
        batch(sys.argv[2])
    elif cmd == "compare":
        compare(*sys.argv[2:5])
    else:
        sys.exit(__doc__)
