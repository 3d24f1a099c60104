#!/usr/bin/env python3
"""gpu_bench.py: the transformers + PEFT side of pipelines/bench/gpu.sh, and
the device's own peaks, measured in the same run.

    gpu_bench.py peak [--device cuda]
        bf16 GEMM peak (the best of square products of 4096 and 8192, TFLOP/s)
        and device copy bandwidth (GB/s, read + write of a 2 GiB buffer).
    gpu_bench.py make DIR [--layers 32 --hidden 4096 --inter 11008 --heads 32
            --kv 32 --vocab 32000] [--device cuda]
        a random LlamaForCausalLM (transformers' own initialisation, std
        0.02) in bf16, made on the device and saved to DIR as safetensors.
    gpu_bench.py train DIR [--seq 512 --batch 8 --steps 10 --warmup 2 --r 8]
        LoRA r=8, alpha 32, dropout 0.05 on q,k,v,o,gate,up,down with PEFT,
        bf16, attention "sdpa", AdamW lr 2e-4, random token ids; tokens per
        second over --steps steps after --warmup, peak device memory.
    gpu_bench.py decode DIR [--prompt 128 --new 128]
        model.generate(), greedy, batch 1, min_new_tokens = max_new_tokens,
        after a warm-up: decode tokens/s = (new - 1) / (all - first).

Each prints one JSON line. --device cpu runs the same code on the CPU
(for checking the script where there is no GPU; figures meaningless).
"""
import argparse
import json
import os
import sys
import time


def sync(dev):
    import torch
    if dev == "cuda":
        torch.cuda.synchronize()


def peak(a):
    import torch
    dev = a.device
    best = 0.0
    sizes = (4096, 8192) if dev == "cuda" else (256,)
    for n in sizes:
        x = torch.randn(n, n, device=dev, dtype=torch.bfloat16)
        y = torch.randn(n, n, device=dev, dtype=torch.bfloat16)
        for _ in range(3):
            x @ y
        sync(dev)
        reps = 20 if dev == "cuda" else 2
        t0 = time.perf_counter()
        for _ in range(reps):
            x @ y
        sync(dev)
        best = max(best, 2.0 * n ** 3 * reps / (time.perf_counter() - t0) / 1e12)
    nbytes = (2 << 30) if dev == "cuda" else (16 << 20)
    src = torch.empty(nbytes, dtype=torch.uint8, device=dev)
    dst = torch.empty_like(src)
    dst.copy_(src)
    sync(dev)
    reps = 10 if dev == "cuda" else 2
    t0 = time.perf_counter()
    for _ in range(reps):
        dst.copy_(src)
    sync(dev)
    bw = 2.0 * nbytes * reps / (time.perf_counter() - t0) / 1e9
    print(json.dumps({"gemm_bf16_tflops": best, "copy_gbps": bw,
                      "device": torch.cuda.get_device_name() if dev == "cuda" else "cpu"}))


def config(a):
    from transformers import LlamaConfig
    return LlamaConfig(hidden_size=a.hidden, intermediate_size=a.inter,
                       num_hidden_layers=a.layers, num_attention_heads=a.heads,
                       num_key_value_heads=a.kv, vocab_size=a.vocab,
                       max_position_embeddings=4096, rms_norm_eps=1e-5,
                       tie_word_embeddings=False, bos_token_id=1, eos_token_id=2,
                       torch_dtype="bfloat16")


def make(a):
    import torch
    from transformers import LlamaForCausalLM
    torch.manual_seed(1)
    with torch.device(a.device):
        model = LlamaForCausalLM(config(a)).to(torch.bfloat16)
    model.save_pretrained(a.dir, safe_serialization=True, max_shard_size="20GB")
    n = sum(p.numel() for p in model.parameters())
    print(json.dumps({"params": n, "dir": a.dir}))


def load(a):
    import torch
    from transformers import LlamaForCausalLM
    return LlamaForCausalLM.from_pretrained(a.dir, torch_dtype=torch.bfloat16,
                                            attn_implementation="sdpa").to(a.device)


def train(a):
    import torch
    from peft import LoraConfig, get_peft_model
    model = load(a)
    model.config.use_cache = False
    cfg = LoraConfig(r=a.r, lora_alpha=32, lora_dropout=0.05, task_type="CAUSAL_LM",
                     target_modules=["q_proj", "k_proj", "v_proj", "o_proj",
                                     "gate_proj", "up_proj", "down_proj"])
    model = get_peft_model(model, cfg)
    for p in model.parameters():     # f32 master copies of what is trained
        if p.requires_grad:
            p.data = p.data.float()
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-4,
                            weight_decay=0.01)
    g = torch.Generator().manual_seed(1)
    V = model.config.vocab_size
    if a.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    losses, t0 = [], None
    for step in range(a.warmup + a.steps):
        if step == a.warmup:
            sync(a.device)
            t0 = time.perf_counter()
        ids = torch.randint(3, V, (a.batch, a.seq), generator=g).to(a.device)
        with torch.autocast(a.device, dtype=torch.bfloat16, enabled=a.device == "cuda"):
            out = model(input_ids=ids, labels=ids)
        out.loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(out.loss.item())
    sync(a.device)
    secs = time.perf_counter() - t0
    mem = torch.cuda.max_memory_allocated() / 2 ** 30 if a.device == "cuda" else 0.0
    print(json.dumps({"tokens_per_s": a.batch * a.seq * a.steps / secs, "step_s": secs / a.steps,
                      "peak_gib": mem, "loss_last": losses[-1]}))


def decode(a):
    import torch
    model = load(a)
    model.eval()
    g = torch.Generator().manual_seed(2)
    ids = torch.randint(3, model.config.vocab_size, (1, a.prompt), generator=g).to(a.device)

    def run(n):
        sync(a.device)
        t0 = time.perf_counter()
        with torch.no_grad():
            out = model.generate(ids, max_new_tokens=n, min_new_tokens=n, do_sample=False,
                                 pad_token_id=0)
        sync(a.device)
        return time.perf_counter() - t0, out

    run(4)
    first, _ = run(1)
    full, out = run(a.new)
    print(json.dumps({"decode_tokens_per_s": (a.new - 1) / (full - first), "first_s": first,
                      "all_s": full, "ids": out[0, a.prompt:].tolist()}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["peak", "make", "train", "decode"])
    ap.add_argument("dir", nargs="?")
    ap.add_argument("--device", default="cuda")
    for k, v in (("layers", 32), ("hidden", 4096), ("inter", 11008), ("heads", 32), ("kv", 32),
                 ("vocab", 32000), ("seq", 512), ("batch", 8), ("steps", 10), ("warmup", 2),
                 ("r", 8), ("prompt", 128), ("new", 128)):
        ap.add_argument("--" + k, type=int, default=v)
    a = ap.parse_args()
    if a.cmd != "peak" and not a.dir:
        ap.error("%s needs a model directory" % a.cmd)
    {"peak": peak, "make": make, "train": train, "decode": decode}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
