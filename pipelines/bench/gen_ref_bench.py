#!/usr/bin/env python3
"""gen_ref_bench.py: transformers' side of pipelines/bench/gen-cpu.sh.

    gen_ref_bench.py make DIR [--hidden 512] [--layers 8] [--heads 8] [--kv 4]
            [--inter 1376] [--vocab 32000] [--max-pos 2048] [--seed 1]
        a random LlamaForCausalLM saved twice from the same weights:
        DIR/f32 (float32) and DIR/bf16 (bfloat16), config.json +
        model.safetensors as save_pretrained writes them.
    gen_ref_bench.py run MODEL_DIR IDS_FILE --threads N --new 128
            [--dtype auto|f32] [--repeat 3] [--ids-out FILE]
        times model.generate() on the prompt in IDS_FILE (ids on one line),
        greedy, on the CPU with N threads: max_new_tokens 1 (prefill and the
        first token) and max_new_tokens NEW (min_new_tokens NEW, so that an
        eos does not end it early), after one warm-up, best of --repeat.
        Prints one JSON line: seconds of each and tokens per second of
        prefill (prompt tokens / first) and decode ((NEW - 1) / (all -
        first)), and CPU milliseconds (user + system, all threads) per
        decoded token, from time.process_time() the same way. --dtype auto computes in the stored type (what
        from_pretrained does by default in transformers 5), f32 upcasts.
        --ids-out writes the generated ids, one line.
    gen_ref_bench.py batch MODEL_DIR IDS_FILE --threads N --new 128
            [--repeat 3] [--ids-out FILE]
        one generate() over all the prompts of IDS_FILE (one line of ids
        each) at once, left-padded with an attention mask, greedy, NEW
        tokens each, after one warm-up, best of --repeat; prints wall and
        CPU seconds and generated tokens per second. --ids-out writes each
        prompt's generated ids, a line each.
"""
import argparse
import json
import os
import sys
import time


def make(a):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(a.seed)
    cfg = LlamaConfig(hidden_size=a.hidden, num_hidden_layers=a.layers,
                      num_attention_heads=a.heads, num_key_value_heads=a.kv,
                      intermediate_size=a.inter, vocab_size=a.vocab,
                      max_position_embeddings=a.max_pos, tie_word_embeddings=False,
                      bos_token_id=1, eos_token_id=2)
    model = LlamaForCausalLM(cfg).eval()
    model.save_pretrained(os.path.join(a.dir, "f32"))
    model.to(torch.bfloat16).save_pretrained(os.path.join(a.dir, "bf16"))


def run(a):
    import torch
    from transformers import AutoModelForCausalLM
    torch.set_num_threads(a.threads)
    torch.set_grad_enabled(False)
    dtype = "auto" if a.dtype == "auto" else torch.float32
    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=dtype).eval()
    ids = [int(x) for x in open(a.ids).read().split()]
    x = torch.tensor([ids])
    mask = torch.ones_like(x)

    def gen(n):
        t, c = time.perf_counter(), time.process_time()
        out = model.generate(x, attention_mask=mask, max_new_tokens=n, min_new_tokens=n,
                             do_sample=False, num_beams=1, pad_token_id=0)
        return time.perf_counter() - t, out[0, len(ids):].tolist(), time.process_time() - c

    gen(2)  # warm-up
    firsts = [gen(1) for _ in range(a.repeat)]
    first = min(r[0] for r in firsts)
    first_cpu = min(r[2] for r in firsts)
    runs = [gen(a.new) for _ in range(a.repeat)]
    full = min(r[0] for r in runs)
    full_cpu = min(r[2] for r in runs)
    if a.ids_out:
        with open(a.ids_out, "w") as f:
            f.write(" ".join(map(str, runs[0][1])) + "\n")
    print(json.dumps({"first_s": first, "all_s": full,
                      "prefill_tok_s": len(ids) / first,
                      "decode_tok_s": (a.new - 1) / (full - first),
                      "decode_cpu_ms": 1e3 * (full_cpu - first_cpu) / (a.new - 1),
                      "dtype": str(next(model.parameters()).dtype).replace("torch.", ""),
                      "threads": torch.get_num_threads()}))


def batch(a):
    import torch
    from transformers import AutoModelForCausalLM
    torch.set_num_threads(a.threads)
    torch.set_grad_enabled(False)
    model = AutoModelForCausalLM.from_pretrained(a.model, dtype="auto").eval()
    prompts = [[int(x) for x in line.split()] for line in open(a.ids) if line.strip()]
    width = max(map(len, prompts))
    x = torch.tensor([[0] * (width - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])

    def gen(n):
        t, c = time.perf_counter(), time.process_time()
        out = model.generate(x, attention_mask=mask, max_new_tokens=n, min_new_tokens=n,
                             do_sample=False, num_beams=1, pad_token_id=0)
        return time.perf_counter() - t, time.process_time() - c, out[:, width:].tolist()

    gen(2)  # warm-up
    runs = [gen(a.new) for _ in range(a.repeat)]
    wall, cpu = min(r[0] for r in runs), min(r[1] for r in runs)
    if a.ids_out:
        with open(a.ids_out, "w") as f:
            for row in runs[0][2]:
                f.write(" ".join(map(str, row)) + "\n")
    print(json.dumps({"wall_s": wall, "cpu_s": cpu, "tok_s": len(prompts) * a.new / wall,
                      "dtype": str(next(model.parameters()).dtype).replace("torch.", "")}))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make")
    m.add_argument("dir")
    for k, v in dict(hidden=512, layers=8, heads=8, kv=4, inter=1376, vocab=32000,
                     max_pos=2048, seed=1).items():
        m.add_argument("--" + k.replace("_", "-"), type=int, default=v)
    r = sub.add_parser("run")
    r.add_argument("model")
    r.add_argument("ids")
    r.add_argument("--threads", type=int, required=True)
    r.add_argument("--new", type=int, default=128)
    r.add_argument("--dtype", choices=["auto", "f32"], default="auto")
    r.add_argument("--repeat", type=int, default=3)
    r.add_argument("--ids-out")
    b = sub.add_parser("batch")
    b.add_argument("model")
    b.add_argument("ids")
    b.add_argument("--threads", type=int, required=True)
    b.add_argument("--new", type=int, default=128)
    b.add_argument("--repeat", type=int, default=3)
    b.add_argument("--ids-out")
    a = ap.parse_args()
    {"make": make, "run": run, "batch": batch}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
