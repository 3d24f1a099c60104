#!/usr/bin/env python3
"""tiny_model.py: small random LLaMA models and LoRA adapters, written with
the standard library alone (json, struct, random), so that gen's tests run
where torch is not installed.

    tiny_model.py model DIR [KEY=VALUE...]
        DIR/config.json + DIR/model.safetensors, a LlamaForCausalLM as
        transformers saves it. Keys (defaults): vocab=128 hidden=32
        layers=2 heads=4 kv=2 inter=64 max_pos=4096 eos=2 bos=1 tie=0
        dtype=f32|bf16 (f32) seed=1
    tiny_model.py adapter DIR MODEL_DIR [KEY=VALUE...]
        a PEFT LoRA adapter for the model in MODEL_DIR: adapter_config.json
        + adapter_model.safetensors, pairs on q,k,v,o,gate,up,down with
        non-zero A and B. Keys: r=4 alpha=8 seed=2

Weights: embeddings N(0, 1); each Linear uniform in +-sqrt(3 / in) (unit
variance out), the head likewise times 2 so that the next-token
distribution is peaked enough for greedy decoding to be stable; norms
1 + N(0, 0.1). Deterministic for a seed.
"""
import json
import math
import os
import random
import struct
import sys


def write_safetensors(path, tensors, dtype):
    """tensors: list of (name, shape, list of floats)."""
    header, blobs, off = {}, [], 0
    for name, shape, vals in tensors:
        if dtype == "f32":
            blob = struct.pack("<%df" % len(vals), *vals)
        else:   # bf16: f32 rounded to nearest even, upper half
            words = struct.unpack("<%dI" % len(vals), struct.pack("<%df" % len(vals), *vals))
            blob = struct.pack("<%dH" % len(vals),
                               *(((w + 0x7fff + ((w >> 16) & 1)) >> 16) & 0xffff for w in words))
        header[name] = {"dtype": "F32" if dtype == "f32" else "BF16", "shape": list(shape),
                        "data_offsets": [off, off + len(blob)]}
        blobs.append(blob)
        off += len(blob)
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def uniform(r, n_out, n_in, gain=1.0):
    a = gain * math.sqrt(3.0 / n_in)
    return [r.uniform(-a, a) for _ in range(n_out * n_in)]


def parse_kv(args, defaults):
    opts = dict(defaults)
    for a in args:
        k, _, v = a.partition("=")
        if k not in opts or not _:
            sys.exit("tiny_model.py: unknown setting '%s' (known: %s)" % (a, " ".join(opts)))
        opts[k] = v if isinstance(defaults[k], str) else type(defaults[k])(v)
    return opts


def shapes(cfg):
    """(module, out, in) of each Linear in a layer."""
    c, d = cfg["hidden_size"], cfg["hidden_size"] // cfg["num_attention_heads"]
    kv, i = cfg["num_key_value_heads"] * d, cfg["intermediate_size"]
    return [("self_attn.q_proj", c, c), ("self_attn.k_proj", kv, c),
            ("self_attn.v_proj", kv, c), ("self_attn.o_proj", c, c),
            ("mlp.gate_proj", i, c), ("mlp.up_proj", i, c), ("mlp.down_proj", c, i)]


def model(d, args):
    o = parse_kv(args, dict(vocab=128, hidden=32, layers=2, heads=4, kv=2, inter=64,
                            max_pos=4096, eos=2, bos=1, tie=0, dtype="f32", seed=1))
    if o["dtype"] not in ("f32", "bf16"):
        sys.exit("tiny_model.py: dtype is f32 or bf16")
    cfg = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "hidden_size": o["hidden"], "num_hidden_layers": o["layers"],
        "num_attention_heads": o["heads"], "num_key_value_heads": o["kv"],
        "intermediate_size": o["inter"], "vocab_size": o["vocab"],
        "max_position_embeddings": o["max_pos"], "rms_norm_eps": 1e-6,
        "hidden_act": "silu", "tie_word_embeddings": bool(o["tie"]),
        "bos_token_id": o["bos"], "eos_token_id": o["eos"],
        "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0},
        "dtype": "float32" if o["dtype"] == "f32" else "bfloat16",
    }
    r = random.Random(o["seed"])
    c, v = o["hidden"], o["vocab"]
    t = [("model.embed_tokens.weight", (v, c), [r.gauss(0, 1) for _ in range(v * c)])]
    for l in range(o["layers"]):
        p = "model.layers.%d." % l
        t.append((p + "input_layernorm.weight", (c,), [1 + r.gauss(0, 0.1) for _ in range(c)]))
        t.append((p + "post_attention_layernorm.weight", (c,),
                  [1 + r.gauss(0, 0.1) for _ in range(c)]))
        for name, n_out, n_in in shapes(cfg):
            t.append((p + name + ".weight", (n_out, n_in), uniform(r, n_out, n_in)))
    t.append(("model.norm.weight", (c,), [1 + r.gauss(0, 0.1) for _ in range(c)]))
    if not o["tie"]:
        t.append(("lm_head.weight", (v, c), uniform(r, v, c, 2.0)))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    write_safetensors(os.path.join(d, "model.safetensors"), t, o["dtype"])


def adapter(d, model_dir, args):
    o = parse_kv(args, dict(r=4, alpha=8, seed=2))
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    rnd = random.Random(o["seed"])
    rank = o["r"]
    t = []
    for l in range(cfg["num_hidden_layers"]):
        for name, n_out, n_in in shapes(cfg):
            k = "base_model.model.model.layers.%d.%s" % (l, name)
            t.append((k + ".lora_A.weight", (rank, n_in), uniform(rnd, rank, n_in)))
            t.append((k + ".lora_B.weight", (n_out, rank), uniform(rnd, n_out, rank, 0.5)))
    acfg = {
        "peft_type": "LORA", "task_type": "CAUSAL_LM", "r": rank, "lora_alpha": o["alpha"],
        "lora_dropout": 0.05, "bias": "none", "fan_in_fan_out": False,
        "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                           "down_proj"],
        "modules_to_save": None, "base_model_name_or_path": model_dir,
    }
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "adapter_config.json"), "w") as f:
        json.dump(acfg, f, indent=2)
    write_safetensors(os.path.join(d, "adapter_model.safetensors"), t, "f32")


def main():
    a = sys.argv[1:]
    if len(a) >= 2 and a[0] == "model":
        model(a[1], a[2:])
    elif len(a) >= 3 and a[0] == "adapter":
        adapter(a[1], a[2], a[3:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
