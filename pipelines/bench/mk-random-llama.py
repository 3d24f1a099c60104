#!/usr/bin/env python3
"""mk-random-llama.py: a LLaMA model with random bf16 weights, and a random
r=8 LoRA adapter on q, k, v, o, gate, up, down, written as Hugging Face and
PEFT write them (safetensors by hand: numpy only, no torch).

    mk-random-llama.py MODEL_DIR ADAPTER_DIR [--layers 32] [--hidden 4096]
        [--inter 11008] [--heads 32] [--vocab 32000] [--r 8] [--shard 5GB]

The weights are random bit patterns of bf16 numbers between 2^-7 and 2^-5
in magnitude: the merge does the same work whatever the values are."""
import argparse
import json
import os
import struct

import numpy as np


def st_write(path, tensors):
    """tensors: [(name, dtype, shape, array)], in the file's order."""
    header, off = {"__metadata__": {"format": "pt"}}, 0
    for name, dt, shape, a in tensors:
        n = a.nbytes
        header[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [off, off + n]}
        off += n
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for _, _, _, a in tensors:
            a.tofile(f)
    os.rename(tmp, path)


def random_bf16(rng, shape):
    x = rng.integers(0, 1 << 16, size=shape, dtype=np.uint16)
    return (x & 0x81FF) | 0x3C00     # sign, 2 exponent bits, 7 mantissa bits


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("adapter")
    ap.add_argument("--layers", type=int, default=32)
    ap.add_argument("--hidden", type=int, default=4096)
    ap.add_argument("--inter", type=int, default=11008)
    ap.add_argument("--heads", type=int, default=32)
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--r", type=int, default=8)
    ap.add_argument("--shard", type=float, default=5e9)
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    C, I, V, L = a.hidden, a.inter, a.vocab, a.layers
    shapes = [("model.embed_tokens.weight", (V, C))]
    for l in range(L):
        p = "model.layers.%d." % l
        shapes += [(p + "self_attn.q_proj.weight", (C, C)), (p + "self_attn.k_proj.weight", (C, C)),
                   (p + "self_attn.v_proj.weight", (C, C)), (p + "self_attn.o_proj.weight", (C, C)),
                   (p + "mlp.gate_proj.weight", (I, C)), (p + "mlp.up_proj.weight", (I, C)),
                   (p + "mlp.down_proj.weight", (C, I)), (p + "input_layernorm.weight", (C,)),
                   (p + "post_attention_layernorm.weight", (C,))]
    shapes += [("model.norm.weight", (C,)), ("lm_head.weight", (V, C))]

    os.makedirs(a.model, exist_ok=True)
    shards, cur, size = [[]], 0, 0
    for name, shape in shapes:
        n = int(np.prod(shape)) * 2
        if cur and cur + n > a.shard:
            shards.append([])
            cur = 0
        shards[-1].append((name, shape))
        cur += n
        size += n
    weight_map = {}
    for i, names in enumerate(shards):
        fname = "model-%05d-of-%05d.safetensors" % (i + 1, len(shards))
        st_write(os.path.join(a.model, fname),
                 [(n, "BF16", s, random_bf16(rng, s)) for n, s in sorted(names)])
        weight_map.update({n: fname for n, _ in names})
    with open(os.path.join(a.model, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": size}, "weight_map": weight_map}, f, indent=2,
                  sort_keys=True)
    config = {"architectures": ["LlamaForCausalLM"], "bos_token_id": 1, "eos_token_id": 2,
              "hidden_act": "silu", "hidden_size": C, "intermediate_size": I,
              "max_position_embeddings": 2048, "model_type": "llama",
              "num_attention_heads": a.heads, "num_hidden_layers": L,
              "num_key_value_heads": a.heads, "rms_norm_eps": 1e-06, "rope_theta": 10000.0,
              "tie_word_embeddings": False, "torch_dtype": "bfloat16", "vocab_size": V}
    with open(os.path.join(a.model, "config.json"), "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)

    os.makedirs(a.adapter, exist_ok=True)
    lora = []
    for name, shape in shapes:
        if len(shape) != 2 or "embed" in name or "lm_head" in name:
            continue
        m = "base_model.model." + name[:-len(".weight")]
        out, inp = shape
        lora.append((m + ".lora_A.weight", "F32", (a.r, inp),
                     (rng.standard_normal((a.r, inp), dtype=np.float32) * 0.01)))
        lora.append((m + ".lora_B.weight", "F32", (out, a.r),
                     (rng.standard_normal((out, a.r), dtype=np.float32) * 0.01)))
    st_write(os.path.join(a.adapter, "adapter_model.safetensors"), sorted(lora))
    with open(os.path.join(a.adapter, "adapter_config.json"), "w") as f:
        json.dump({"peft_type": "LORA", "r": a.r, "lora_alpha": 32, "lora_dropout": 0.05,
                   "bias": "none", "fan_in_fan_out": False, "task_type": "CAUSAL_LM",
                   "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                      "up_proj", "down_proj"],
                   "modules_to_save": None}, f, indent=2)
    print(size)


if __name__ == "__main__":
    main()
