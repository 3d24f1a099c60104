#!/usr/bin/env python3
"""make_models.py: tiny random LLaMA models in every layout users have.

    make_models.py OUTDIR [CASE...]      (default: every case, and rope)

For each case (a LlamaConfig; see CASES) it builds a LlamaForCausalLM with
random weights (seeded) and writes, under OUTDIR/CASE/:

  hf/            save_pretrained: config.json + model.safetensors
  hf-sharded/    save_pretrained with a small max_shard_size:
                 model.safetensors.index.json + model-0000N-of-0000M.safetensors
  hf-v4/         hf/ with config.json rewritten as transformers 4 wrote it
                 (rope_theta at top level, rope_scaling, torch_dtype)
  bin/           pytorch_model.bin (torch.save of the state dict, as
                 transformers 4 did with safe_serialization=False); one weight
                 saved as a strided (transposed) view and the two norms of
                 layer 0 as slices of one storage, so readers meet offsets
                 and non-contiguous views
  bin-sharded/   pytorch_model-0000N-of-00002.bin + pytorch_model.bin.index.json
  meta/          params.json + consolidated.00.pth: the HF conversion
                 (convert_llama_weights_to_hf.py) inverted: Meta names, q/k
                 back to the interleaved rotary layout
  meta2/         the same split in two model-parallel shards along Meta's axes
  adapter/       a PEFT LoRA adapter (init_lora_weights=False, so B != 0) on
                 q,k,v,o,gate,up,down with rank_pattern / alpha_pattern, and
                 modules_to_save; adapter_model.safetensors
  adapter-bin/   the same adapter as adapter_model.bin

and the reference values the C readers are compared with:

  ref-tensors.txt   "name dtype [d0,d1] crc32" for each tensor of hf/ as
                    safetensors reads it back (crc32 of the raw bytes), sorted
  ref-meta.txt      the same for what a Meta copy must load to (lm_head
                    included even when tied: Meta checkpoints always have it)
  ref-config.txt    the config as model_dump config prints it
  ref-rope.txt      inv_freq from the model's rotary embedding, one a line,
                    then "attention_factor F"
  ref-rope-long.txt the same for a sequence of 2 * max_position_embeddings
                    + 3 (dynamic scaling recomputes there)
  ref-adapter.txt   each LoRA pair: module r alpha scale and the crc32 of A
                    and B; each saved module: name crc32; as PEFT computes it

The pseudo-case "rope" writes OUTDIR/rope-N/ (config.json, ref-rope.txt,
ref-rope-long.txt for a sequence of 20000) for each of ROPE_CASES: rotary
settings of real models checked on their config alone.

Needs torch, transformers, peft and safetensors. Later tests (logits) use
the same models.
"""
import json
import math
import os
import shutil
import sys
import zlib
from collections import OrderedDict

import torch
from safetensors import safe_open
from transformers import LlamaConfig, LlamaForCausalLM

torch.set_grad_enabled(False)

# name: LlamaConfig arguments + extras (dtype, meta params, adapter options)
CASES = {
    # MHA, untied, default rope, f32; intermediate from Meta's formula
    # (dim 64: int(2 * 256 / 3) = 170, multiple_of 4 -> 172)
    "mha": dict(cfg=dict(hidden_size=64, num_attention_heads=4, num_key_value_heads=4,
                         intermediate_size=172, vocab_size=256, num_hidden_layers=2,
                         tie_word_embeddings=False, max_position_embeddings=128),
                dtype=torch.float32, meta=dict(multiple_of=4, vocab_size=-1),
                embed_axis=1, rope_freqs=True),
    # GQA, tied, odd sizes, linear rope
    "gqa": dict(cfg=dict(hidden_size=48, num_attention_heads=6, num_key_value_heads=2,
                         intermediate_size=100, vocab_size=300, num_hidden_layers=3,
                         tie_word_embeddings=True, max_position_embeddings=64,
                         rms_norm_eps=1e-5,
                         rope_parameters=dict(rope_type="linear", factor=2.0,
                                              rope_theta=10000.0)),
                dtype=torch.float32, meta=dict(), embed_axis=1),
    # GQA, head_dim 10, dynamic NTK rope, bf16
    "dyn": dict(cfg=dict(hidden_size=40, num_attention_heads=4, num_key_value_heads=2,
                         intermediate_size=72, vocab_size=262, num_hidden_layers=2,
                         tie_word_embeddings=False, max_position_embeddings=64,
                         rope_parameters=dict(rope_type="dynamic", factor=2.0,
                                              rope_theta=10000.0)),
                dtype=torch.bfloat16, meta=dict(), embed_axis=1, rslora=True),
    # Llama 3 style: 8 heads, 2 kv heads, llama3 rope, theta 500000, f16,
    # embedding split along the vocabulary in the Meta shards
    "l3": dict(cfg=dict(hidden_size=64, num_attention_heads=8, num_key_value_heads=2,
                        intermediate_size=120, vocab_size=300, num_hidden_layers=2,
                        tie_word_embeddings=False, max_position_embeddings=131072,
                        rope_parameters=dict(rope_type="llama3", factor=8.0,
                                             low_freq_factor=1.0, high_freq_factor=4.0,
                                             original_max_position_embeddings=8192,
                                             rope_theta=500000.0),
                        bos_token_id=1, eos_token_id=[2, 5]),
               dtype=torch.float16, meta=dict(use_scaled_rope=True), embed_axis=0),
    # MQA (one kv head), yarn rope
    "yarn": dict(cfg=dict(hidden_size=32, num_attention_heads=4, num_key_value_heads=1,
                          intermediate_size=64, vocab_size=200, num_hidden_layers=2,
                          tie_word_embeddings=False, max_position_embeddings=256,
                          rope_parameters=dict(rope_type="yarn", factor=4.0,
                                               original_max_position_embeddings=64,
                                               rope_theta=10000.0)),
                 dtype=torch.float32, meta=None, embed_axis=1),
}

# Rotary settings checked on config alone (no weights): realistic head sizes.
ROPE_CASES = [
    dict(head_dim=128, rope_parameters=dict(rope_type="default", rope_theta=10000.0)),
    dict(head_dim=128, rope_parameters=dict(rope_type="default", rope_theta=500000.0)),
    dict(head_dim=96, rope_parameters=dict(rope_type="default", rope_theta=10000.0)),
    dict(head_dim=64, rope_parameters=dict(rope_type="linear", factor=4.0, rope_theta=10000.0)),
    dict(head_dim=96, rope_parameters=dict(rope_type="dynamic", factor=2.0, rope_theta=1e6)),
    dict(head_dim=128, rope_parameters=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0,
                                            high_freq_factor=4.0, rope_theta=500000.0,
                                            original_max_position_embeddings=8192)),
    dict(head_dim=64, rope_parameters=dict(rope_type="llama3", factor=32.0, low_freq_factor=1.0,
                                           high_freq_factor=4.0, rope_theta=500000.0,
                                           original_max_position_embeddings=8192)),
    dict(head_dim=128, rope_parameters=dict(rope_type="yarn", factor=4.0, rope_theta=10000.0,
                                            original_max_position_embeddings=4096)),
    dict(head_dim=80, rope_parameters=dict(rope_type="yarn", factor=8.0, rope_theta=10000.0,
                                           beta_fast=16, beta_slow=2, mscale=1.0,
                                           mscale_all_dim=0.5, truncate=False,
                                           original_max_position_embeddings=2048)),
]

DTYPE_NAMES = {torch.float32: "f32", torch.float16: "f16", torch.bfloat16: "bf16"}


def raw(t):
    """The tensor's bytes, row-major, little-endian."""
    t = t.detach().contiguous().reshape(-1)
    return t.view(torch.uint8).numpy().tobytes() if t.numel() else b""


def tensor_line(name, t):
    shape = ",".join(str(d) for d in t.shape)
    return "%s %s [%s] %08x" % (name, DTYPE_NAMES[t.dtype], shape, zlib.crc32(raw(t)))


def write_lines(path, lines):
    with open(path, "w") as f:
        f.write("".join(l + "\n" for l in lines))


def read_safetensors(path):
    with safe_open(path, "pt") as f:
        return OrderedDict((k, f.get_tensor(k)) for k in f.keys())


# ---- the Meta layout: convert_llama_weights_to_hf.py inverted ----

LAYER_NAMES = {
    "self_attn.q_proj.weight": ("attention.wq.weight", 0),
    "self_attn.k_proj.weight": ("attention.wk.weight", 0),
    "self_attn.v_proj.weight": ("attention.wv.weight", 0),
    "self_attn.o_proj.weight": ("attention.wo.weight", 1),
    "mlp.gate_proj.weight": ("feed_forward.w1.weight", 0),
    "mlp.down_proj.weight": ("feed_forward.w2.weight", 1),
    "mlp.up_proj.weight": ("feed_forward.w3.weight", 0),
    "input_layernorm.weight": ("attention_norm.weight", None),
    "post_attention_layernorm.weight": ("ffn_norm.weight", None),
}


def unpermute(w, n_heads):
    """Inverse of the HF script's permute (rotate-half -> interleaved)."""
    dim1, dim2 = w.shape
    return w.view(n_heads, 2, dim1 // n_heads // 2, dim2).transpose(1, 2).reshape(dim1, dim2)


def to_meta(sd, cfg, embed_axis):
    """HF state dict -> [(meta name, tensor, split axis or None)]."""
    out = []
    heads, kv = cfg.num_attention_heads, cfg.num_key_value_heads
    out.append(("tok_embeddings.weight", sd["model.embed_tokens.weight"], embed_axis))
    for l in range(cfg.num_hidden_layers):
        for hf, (meta, axis) in LAYER_NAMES.items():
            w = sd["model.layers.%d.%s" % (l, hf)]
            if hf.startswith("self_attn.q_proj"):
                w = unpermute(w, heads)
            elif hf.startswith("self_attn.k_proj"):
                w = unpermute(w, kv)
            out.append(("layers.%d.%s" % (l, meta), w, axis))
    out.append(("norm.weight", sd["model.norm.weight"], None))
    head = sd.get("lm_head.weight", sd["model.embed_tokens.weight"])
    out.append(("output.weight", head, 0))
    return out


def save_meta(d, sd, case, cfg, nshards):
    os.makedirs(d)
    mp = case["meta"]
    inter = cfg.intermediate_size
    params = dict(dim=cfg.hidden_size, n_layers=cfg.num_hidden_layers,
                  n_heads=cfg.num_attention_heads, norm_eps=cfg.rms_norm_eps,
                  vocab_size=mp.get("vocab_size", cfg.vocab_size))
    if cfg.num_key_value_heads != cfg.num_attention_heads:
        params["n_kv_heads"] = cfg.num_key_value_heads
    if "multiple_of" in mp:
        params["multiple_of"] = mp["multiple_of"]
    else:   # make Meta's formula land on the intermediate size
        h = int(2 * 4 * cfg.hidden_size / 3)
        params["multiple_of"] = inter
        params["ffn_dim_multiplier"] = inter / h
    theta = cfg.rope_parameters["rope_theta"]
    if theta != 10000.0:
        params["rope_theta"] = theta
    if mp.get("use_scaled_rope"):
        params["use_scaled_rope"] = True
    with open(os.path.join(d, "params.json"), "w") as f:
        json.dump(params, f)
    tensors = to_meta(sd, cfg, case["embed_axis"])
    for k in range(nshards):
        shard = OrderedDict()
        for name, w, axis in tensors:
            if axis is None:
                part = w
            else:
                part = torch.chunk(w, nshards, dim=axis)[k]
            shard[name] = part.clone().contiguous()
        if case.get("rope_freqs"):
            hd = cfg.hidden_size // cfg.num_attention_heads
            shard["rope.freqs"] = torch.ones(hd // 2, dtype=torch.float32)
        torch.save(shard, os.path.join(d, "consolidated.%02d.pth" % k))


# ---- HF pickled layouts ----

def save_bin(d, sd, cfg_path, sharded):
    os.makedirs(d)
    shutil.copy(cfg_path, d)
    sd = OrderedDict((k, v.clone()) for k, v in sd.items())
    if not sharded:
        # a strided view, and two tensors sharing one storage at offsets
        q = "model.layers.0.self_attn.q_proj.weight"
        sd[q] = sd[q].t().contiguous().t()
        a, b = "model.layers.0.input_layernorm.weight", "model.layers.0.post_attention_layernorm.weight"
        buf = torch.cat([sd[a], sd[b]])
        sd[a], sd[b] = buf[:sd[a].numel()], buf[sd[a].numel():]
        torch.save(sd, os.path.join(d, "pytorch_model.bin"))
        return
    names = list(sd)
    half = len(names) // 2
    weight_map, total = {}, 0
    for k, part in enumerate((names[:half], names[half:])):
        fname = "pytorch_model-%05d-of-00002.bin" % (k + 1)
        torch.save(OrderedDict((n, sd[n]) for n in part), os.path.join(d, fname))
        for n in part:
            weight_map[n] = fname
            total += sd[n].numel() * sd[n].element_size()
    with open(os.path.join(d, "pytorch_model.bin.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)


def v4_config(src, dst):
    """config.json as transformers 4 wrote it."""
    os.makedirs(dst)
    c = json.load(open(os.path.join(src, "config.json")))
    rp = c.pop("rope_parameters", None) or {}
    c["rope_theta"] = rp.pop("rope_theta", 10000.0)
    rtype = rp.pop("rope_type", "default")
    c["rope_scaling"] = dict(rp, type=rtype) if rtype != "default" else None
    c["torch_dtype"] = c.pop("dtype", "float32")
    c["transformers_version"] = "4.40.0"
    with open(os.path.join(dst, "config.json"), "w") as f:
        json.dump(c, f, indent=2)
    shutil.copy(os.path.join(src, "model.safetensors"), dst)


# ---- references ----

def config_lines(cfg, dtype):
    rp = cfg.rope_parameters
    eos = cfg.eos_token_id if isinstance(cfg.eos_token_id, list) else [cfg.eos_token_id]
    lines = [
        "hidden_size %d" % cfg.hidden_size,
        "n_layers %d" % cfg.num_hidden_layers,
        "n_heads %d" % cfg.num_attention_heads,
        "n_kv_heads %d" % cfg.num_key_value_heads,
        "head_dim %d" % cfg.head_dim,
        "intermediate_size %d" % cfg.intermediate_size,
        "vocab_size %d" % cfg.vocab_size,
        "rms_norm_eps %.17g" % cfg.rms_norm_eps,
        "rope_type %s" % rp["rope_type"],
        "rope_theta %.17g" % rp["rope_theta"],
        "max_pos %d" % cfg.max_position_embeddings,
        "tie_word_embeddings %d" % int(bool(cfg.tie_word_embeddings)),
        "bos %d" % (cfg.bos_token_id if cfg.bos_token_id is not None else -1),
        "eos %s" % ",".join(str(e) for e in eos),
        "pad %d" % (cfg.pad_token_id if cfg.pad_token_id is not None else -1),
        "dtype %s" % DTYPE_NAMES[dtype],
    ]
    return lines


def rope_lines(cfg, seq_len=None):
    """inv_freq as a fresh f32 LlamaRotaryEmbedding has it (model.to(dtype)
    would round the buffer), or as the rope init function gives it for a
    sequence of seq_len (dynamic scaling recomputes there)."""
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding
    rot = LlamaRotaryEmbedding(config=cfg)
    inv, att = rot.inv_freq, rot.attention_scaling
    if seq_len is not None and rot.rope_type in ROPE_INIT_FUNCTIONS:
        inv, att = ROPE_INIT_FUNCTIONS[rot.rope_type](cfg, None, seq_len=seq_len)
    assert inv.dtype == torch.float32
    return ["%.9g" % v for v in inv.tolist()] + ["attention_factor %.17g" % att]


def adapter(d, model, case, cfg, out):
    from peft import LoraConfig, get_peft_model
    save = ["embed_tokens"] if cfg.tie_word_embeddings else ["embed_tokens", "lm_head"]
    lc = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.05, init_lora_weights=False,
                    target_modules=["q_proj", "k_proj", "v_proj", "o_proj",
                                    "gate_proj", "up_proj", "down_proj"],
                    modules_to_save=save, rank_pattern={"down_proj": 2},
                    alpha_pattern={} if case.get("rslora") else
                    {r"layers\.1\.self_attn\.q_proj": 3},
                    use_rslora=bool(case.get("rslora")), task_type="CAUSAL_LM")
    pm = get_peft_model(model, lc)
    # PEFT's random init for A and B, made reproducible and non-trivial
    g = torch.Generator().manual_seed(1)
    for n, p in pm.named_parameters():
        if p.requires_grad:
            p.copy_((torch.randn(p.shape, generator=g) * 0.1).to(p.dtype))
    pm.save_pretrained(d)
    sd = read_safetensors(os.path.join(d, "adapter_model.safetensors"))
    os.makedirs(d + "-bin")
    shutil.copy(os.path.join(d, "adapter_config.json"), d + "-bin")
    torch.save(sd, os.path.join(d + "-bin", "adapter_model.bin"))
    lines = []
    for name, mod in pm.named_modules():
        if hasattr(mod, "lora_A") and "default" in getattr(mod, "lora_A", {}):
            module = name[len("base_model.model."):]
            key = "base_model.model." + module
            A, B = sd[key + ".lora_A.weight"], sd[key + ".lora_B.weight"]
            lines.append("pair %s r=%d alpha=%.17g scale=%.17g A=%08x B=%08x" % (
                module, mod.r["default"], mod.lora_alpha["default"], mod.scaling["default"],
                zlib.crc32(raw(A)), zlib.crc32(raw(B))))
    for k, v in sd.items():
        if "lora_" not in k:
            lines.append("full %s %s" % (k[len("base_model.model."):], tensor_line(k, v)))
    write_lines(out, sorted(lines))


def make_case(root, name, case):
    d = os.path.join(root, name)
    if os.path.exists(d):
        shutil.rmtree(d)
    os.makedirs(d)
    torch.manual_seed(sum(map(ord, name)))
    cfg = LlamaConfig(**case["cfg"])
    model = LlamaForCausalLM(cfg).to(case["dtype"]).eval()
    # norms start at 1.0; make them random so permutations and joins show
    for n, p in model.named_parameters():
        if n.endswith("norm.weight"):
            p.copy_(1 + 0.1 * torch.randn(p.shape).to(p.dtype))
    hf = os.path.join(d, "hf")
    model.save_pretrained(hf)
    model.save_pretrained(os.path.join(d, "hf-sharded"), max_shard_size="40KB")
    v4_config(hf, os.path.join(d, "hf-v4"))
    sd = read_safetensors(os.path.join(hf, "model.safetensors"))
    save_bin(os.path.join(d, "bin"), sd, os.path.join(hf, "config.json"), False)
    save_bin(os.path.join(d, "bin-sharded"), sd, os.path.join(hf, "config.json"), True)
    write_lines(os.path.join(d, "ref-tensors.txt"),
                sorted(tensor_line(k, v) for k, v in sd.items()))
    write_lines(os.path.join(d, "ref-config.txt"), config_lines(cfg, case["dtype"]))
    write_lines(os.path.join(d, "ref-rope.txt"), rope_lines(cfg))
    write_lines(os.path.join(d, "ref-rope-long.txt"),
                rope_lines(cfg, 2 * cfg.max_position_embeddings + 3))
    if case["meta"] is not None:
        full = OrderedDict(sd)
        full.setdefault("lm_head.weight", sd["model.embed_tokens.weight"])
        write_lines(os.path.join(d, "ref-meta.txt"),
                    sorted(tensor_line(k, v) for k, v in full.items()))
        save_meta(os.path.join(d, "meta"), sd, case, cfg, 1)
        save_meta(os.path.join(d, "meta2"), sd, case, cfg, 2)
    adapter(os.path.join(d, "adapter"), model, case, cfg, os.path.join(d, "ref-adapter.txt"))


def make_rope_cases(root):
    """OUTDIR/rope-N/: config.json, ref-rope.txt, ref-rope-long.txt."""
    for i, rc in enumerate(ROPE_CASES):
        d = os.path.join(root, "rope-%d" % i)
        if os.path.exists(d):
            shutil.rmtree(d)
        hd = rc["head_dim"]
        cfg = LlamaConfig(hidden_size=4 * hd, num_attention_heads=4, num_key_value_heads=4,
                          intermediate_size=8, vocab_size=8, num_hidden_layers=1,
                          max_position_embeddings=8192, **rc)
        cfg.save_pretrained(d)
        write_lines(os.path.join(d, "ref-rope.txt"), rope_lines(cfg))
        write_lines(os.path.join(d, "ref-rope-long.txt"), rope_lines(cfg, 20000))


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    root = sys.argv[1]
    names = sys.argv[2:] or list(CASES) + ["rope"]
    for n in names:
        if n == "rope":
            make_rope_cases(root)
            continue
        if n not in CASES:
            sys.exit("make_models.py: no case '%s' (cases: %s)" % (n, " ".join(CASES)))
        make_case(root, n, CASES[n])


if __name__ == "__main__":
    main()
