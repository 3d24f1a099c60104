#!/usr/bin/env python3
"""merge_ref.py: the reference side of lora-merge's differential tests.

Makes tiny random LLaMA models (Hugging Face and Meta layouts) and PEFT
adapters, merges with PEFT's merge_and_unload(), and checks what lora-merge
wrote: HF safetensors, Meta .pth (read by torch.load) and GGUF (read by the
gguf package). Every check prints one line on failure and exits 1.

    merge_ref.py mkmodel DIR [--hidden 64 --inter 172 --heads 4 --kv-heads 2
                 --layers 2 --vocab V --dtype bf16 --tied --tokenizer M --seed S]
    merge_ref.py mkadapter BASE OUT [--r 4 --alpha 8 --targets q_proj,v_proj
                 --rslora --save embed_tokens,lm_head --vocab V --dtype f32
                 --rank-pattern K=R --alpha-pattern K=A --seed S]
    merge_ref.py merge BASE OUT.safetensors ADAPTER... [--fp32 --dtype D]
    merge_ref.py compare OURS_DIR REF.safetensors [--ulps 1]
    merge_ref.py mkmeta DIR [--dim 64 --layers 2 --heads 4 --kv-heads 2
                 --vocab V --shards N --dtype bf16 --multiple-of 32 --seed S]
    merge_ref.py meta2hf META_DIR OUT.safetensors
    merge_ref.py checkpth PTH_DIR HF_DIR
    merge_ref.py checkgguf FILE HF_DIR TOKENIZER DTYPE
"""
import argparse
import glob
import io
import json
import os
import sys
import zipfile

import numpy as np
import torch

DT = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16,
      "float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def die(msg):
    print("merge_ref: " + msg, file=sys.stderr)
    sys.exit(1)


def load_hf_tensors(d):
    """Every tensor of an HF directory (sharded or not), by name."""
    from safetensors.torch import load_file
    out = {}
    for f in sorted(glob.glob(os.path.join(d, "*.safetensors"))):
        for k, v in load_file(f).items():
            if k in out:
                die("%s: tensor %s twice" % (d, k))
            out[k] = v
    return out


# ---- making models and adapters ----

def mkmodel(a):
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(a.seed)
    kw = dict(hidden_size=a.hidden, intermediate_size=a.inter, num_attention_heads=a.heads,
              num_key_value_heads=a.kv_heads, num_hidden_layers=a.layers,
              vocab_size=a.vocab, max_position_embeddings=256, rms_norm_eps=1e-5,
              tie_word_embeddings=a.tied)
    if a.rope_scaling:
        kind, factor = a.rope_scaling.split(":")
        kw["rope_scaling"] = {"rope_type": kind, "factor": float(factor)}
    model = LlamaForCausalLM(LlamaConfig(**kw))
    with torch.no_grad():   # norms away from 1, so a swapped tensor shows
        for n, p in model.named_parameters():
            if "norm" in n:
                p.add_(torch.randn_like(p) * 0.1)
    model = model.to(DT[a.dtype])
    model.save_pretrained(a.dir, max_shard_size=a.max_shard)
    if a.tokenizer:
        import shutil
        shutil.copy(a.tokenizer, os.path.join(a.dir, "tokenizer.model"))
        with open(os.path.join(a.dir, "tokenizer_config.json"), "w") as f:
            json.dump({"add_bos_token": True, "add_eos_token": False,
                       "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
                       "tokenizer_class": "LlamaTokenizer", "legacy": True}, f, indent=2)


def mkadapter(a):
    from transformers import AutoModelForCausalLM
    from peft import LoraConfig, get_peft_model
    torch.manual_seed(a.seed)
    model = AutoModelForCausalLM.from_pretrained(a.base, dtype=torch.float32)
    if a.vocab:
        model.resize_token_embeddings(a.vocab, mean_resizing=False)
    pattern = lambda s, f: {k: f(v) for k, v in (x.split("=") for x in s.split(","))} if s else {}
    cfg = LoraConfig(r=a.r, lora_alpha=a.alpha, target_modules=a.targets.split(","),
                     use_rslora=a.rslora, lora_dropout=0.0,
                     modules_to_save=a.save.split(",") if a.save else None,
                     rank_pattern=pattern(a.rank_pattern, int),
                     alpha_pattern=pattern(a.alpha_pattern, float))
    peft = get_peft_model(model, cfg)
    with torch.no_grad():   # a trained adapter: B is not zero
        for n, p in peft.named_parameters():
            if "lora_" in n:
                p.copy_(torch.randn_like(p) * 0.05)
            elif "modules_to_save" in n:
                p.add_(torch.randn_like(p) * 0.05)
    peft = peft.to(DT[a.dtype])
    peft.save_pretrained(a.out)


def merge(a):
    """PEFT's merge_and_unload, adapter after adapter. With --fp32 the base
    is loaded in f32 and the result rounded once to --dtype, which is what
    lora-merge promises; without it PEFT works in the base's dtype."""
    from transformers import AutoModelForCausalLM
    from peft import PeftModel
    from safetensors.torch import save_file
    dtype = torch.float32 if a.fp32 else "auto"
    model = AutoModelForCausalLM.from_pretrained(a.base, dtype=dtype)
    for ad in a.adapters:
        from safetensors import safe_open
        with safe_open(os.path.join(ad, "adapter_model.safetensors"), "pt") as f:
            emb = [k for k in f.keys() if k.endswith("embed_tokens.weight")]
            rows = f.get_slice(emb[0]).get_shape()[0] if emb else None
        if rows and rows != model.get_input_embeddings().weight.shape[0]:
            model.resize_token_embeddings(rows, mean_resizing=False)
        model = PeftModel.from_pretrained(model, ad).merge_and_unload()
    sd = {k: v.contiguous() for k, v in model.state_dict().items()}
    if model.config.tie_word_embeddings:
        sd.pop("lm_head.weight", None)
    if a.dtype:
        sd = {k: v.to(DT[a.dtype]) for k, v in sd.items()}
    save_file(sd, a.out)


# ---- comparing ----

def spacing(t):
    """The gap to the next representable value of t's dtype, per element."""
    inf = torch.full_like(t, float("inf"))
    return (torch.nextafter(t.abs(), inf).double() - t.abs().double())


def compare(a):
    """Ours and the reference agree within --ulps roundings of the output
    type: |ours - ref| <= ulps * spacing(ref), plus the f32 computation's
    own error (the two sum the LoRA products in different orders), bounded
    by 8 f32 epsilons of the tensor's largest magnitude. That term only
    matters for f32 outputs and for results that cancel to nearly zero."""
    from safetensors.torch import load_file
    ours, ref = load_hf_tensors(a.ours), load_file(a.ref)
    if set(ours) != set(ref):
        die("tensor names differ: only ours %s, only the reference %s" %
            (sorted(set(ours) - set(ref))[:5], sorted(set(ref) - set(ours))[:5]))
    worst, where = 0.0, None
    for k in sorted(ref):
        o, r = ours[k], ref[k]
        if o.dtype != r.dtype or o.shape != r.shape:
            die("%s: ours %s %s, reference %s %s" % (k, o.dtype, tuple(o.shape), r.dtype,
                                                     tuple(r.shape)))
        if not o.numel():
            continue
        diff = (o.double() - r.double()).abs()
        floor = 8 * 2.0 ** -24 * r.double().abs().max()
        over = (diff - floor).clamp(min=0) / spacing(r)
        if a.ulps == 0 and not torch.equal(o.view(torch.uint8), r.view(torch.uint8)):
            die("%s: not bit for bit equal" % k)
        m = over.max().item()
        if m > worst:
            worst, where = m, k
    if worst > a.ulps:
        die("%s differs by %.2f ulps (at most %d allowed)" % (where, worst, a.ulps))
    print("max difference %.2f ulps%s" % (worst, " (%s)" % where if where else ""))


# ---- Meta checkpoints ----

def meta_split_axis(name):
    if name.startswith("tok_embeddings"):
        return 1
    for w in ("wq", "wk", "wv", "w1", "w3", "output"):
        if ".%s." % w in "." + name:
            return 0
    for w in ("wo", "w2"):
        if ".%s." % w in "." + name:
            return 1
    return None


def mkmeta(a):
    """A random checkpoint in Meta's layout, made without lora-merge."""
    torch.manual_seed(a.seed)
    dim, hd = a.dim, a.dim // a.heads
    kv = a.kv_heads * hd
    hidden = int(2 * 4 * dim / 3)
    inter = a.multiple_of * ((hidden + a.multiple_of - 1) // a.multiple_of)
    full = {"tok_embeddings.weight": (a.vocab, dim)}
    for l in range(a.layers):
        p = "layers.%d." % l
        full.update({p + "attention.wq.weight": (dim, dim), p + "attention.wk.weight": (kv, dim),
                     p + "attention.wv.weight": (kv, dim), p + "attention.wo.weight": (dim, dim),
                     p + "feed_forward.w1.weight": (inter, dim),
                     p + "feed_forward.w2.weight": (dim, inter),
                     p + "feed_forward.w3.weight": (inter, dim),
                     p + "attention_norm.weight": (dim,), p + "ffn_norm.weight": (dim,)})
    full["norm.weight"] = (dim,)
    full["output.weight"] = (a.vocab, dim)
    tensors = {k: (torch.randn(s) * 0.1 + (1 if len(s) == 1 else 0)).to(DT[a.dtype])
               for k, s in full.items()}
    os.makedirs(a.dir, exist_ok=True)
    for s in range(a.shards):
        sd = {}
        for k, t in tensors.items():
            ax = meta_split_axis(k)
            sd[k] = t.clone() if ax is None else t.chunk(a.shards, dim=ax)[s].clone()
        if a.rope_freqs:
            sd["rope.freqs"] = torch.ones(hd // 2, dtype=DT[a.dtype])
        torch.save(sd, os.path.join(a.dir, "consolidated.%02d.pth" % s))
    params = {"dim": dim, "multiple_of": a.multiple_of, "n_heads": a.heads,
              "n_layers": a.layers, "norm_eps": 1e-06, "vocab_size": -1}
    if a.kv_heads != a.heads:
        params["n_kv_heads"] = a.kv_heads
    with open(os.path.join(a.dir, "params.json"), "w") as f:
        json.dump(params, f)


def meta2hf(a):
    """Meta -> HF as transformers' convert_llama_weights_to_hf.py does it.

    transformers 5.23 no longer ships that script; this follows its
    documented rule: shards joined (wq wk wv w1 w3 output along dim 0, wo w2
    and tok_embeddings along dim 1, norms from shard 0), and q, k permuted
    from Meta's interleaved rotary layout with
      permute(w, n_heads, dim1, dim2) =
          w.view(n_heads, dim1 // n_heads // 2, 2, dim2).transpose(1, 2).reshape(dim1, dim2)
    (n_heads = num_key_value_heads for k)."""
    from safetensors.torch import save_file
    params = json.load(open(os.path.join(a.meta, "params.json")))
    files = sorted(glob.glob(os.path.join(a.meta, "consolidated.*.pth")))
    loaded = [torch.load(f, map_location="cpu", weights_only=True) for f in files]
    n_heads = params["n_heads"]
    n_kv = params.get("n_kv_heads", n_heads)
    dim = params["dim"]

    def permute(w, heads, dim1=None, dim2=None):
        dim1 = dim1 or w.shape[0]
        dim2 = dim2 or w.shape[1]
        return w.view(heads, dim1 // heads // 2, 2, dim2).transpose(1, 2).reshape(dim1, dim2)

    def cat(name):
        ax = meta_split_axis(name)
        if ax is None or len(loaded) == 1:
            return loaded[0][name]
        return torch.cat([sd[name] for sd in loaded], dim=ax)

    out = {"model.embed_tokens.weight": cat("tok_embeddings.weight"),
           "model.norm.weight": loaded[0]["norm.weight"],
           "lm_head.weight": cat("output.weight")}
    for l in range(params["n_layers"]):
        p, h = "layers.%d." % l, "model.layers.%d." % l
        out[h + "self_attn.q_proj.weight"] = permute(cat(p + "attention.wq.weight"), n_heads)
        kvw = cat(p + "attention.wk.weight")
        out[h + "self_attn.k_proj.weight"] = permute(kvw, n_kv, kvw.shape[0], dim)
        out[h + "self_attn.v_proj.weight"] = cat(p + "attention.wv.weight")
        out[h + "self_attn.o_proj.weight"] = cat(p + "attention.wo.weight")
        out[h + "mlp.gate_proj.weight"] = cat(p + "feed_forward.w1.weight")
        out[h + "mlp.down_proj.weight"] = cat(p + "feed_forward.w2.weight")
        out[h + "mlp.up_proj.weight"] = cat(p + "feed_forward.w3.weight")
        out[h + "input_layernorm.weight"] = loaded[0][p + "attention_norm.weight"]
        out[h + "post_attention_layernorm.weight"] = loaded[0][p + "ffn_norm.weight"]
    save_file({k: v.contiguous() for k, v in out.items()}, a.out)


def checkpth(a):
    """lora-merge's Meta output, read by torch: keys, shard shapes, the
    tensors put back together equal the HF input bit for bit, and data.pkl
    is byte for byte what torch.save writes for the same state dict."""
    params = json.load(open(os.path.join(a.pth, "params.json")))
    files = sorted(glob.glob(os.path.join(a.pth, "consolidated.*.pth")))
    if not files:
        die("no consolidated.*.pth in " + a.pth)
    for f in files:
        sd = torch.load(f, map_location="cpu", weights_only=True)
        buf = io.BytesIO()
        torch.save(sd, buf)
        theirs = zipfile.ZipFile(buf)
        ours = zipfile.ZipFile(f)
        arch = os.path.splitext(os.path.basename(f))[0]
        names = [n.split("/", 1)[1] for n in ours.namelist()]
        want = [n.split("/", 1)[1] for n in theirs.namelist()]
        if names != want:
            die("%s: entries %s, torch.save writes %s" % (f, names, want))
        if ours.read(arch + "/data.pkl") != theirs.read("archive/data.pkl"):
            die("%s: data.pkl differs from torch.save's" % f)
        if ours.testzip() is not None:
            die("%s: bad CRC in %s" % (f, ours.testzip()))
        for info in ours.infolist():
            ours.fp.seek(info.header_offset + 26)
            nlen, xlen = np.frombuffer(ours.fp.read(4), "<u2")
            off = info.header_offset + 30 + int(nlen) + int(xlen)
            if off % 64:
                die("%s: %s data at offset %d, not 64-byte aligned" % (f, info.filename, off))
    a.meta, a.out = a.pth, os.path.join(a.pth, ".check.safetensors")
    meta2hf(a)
    from safetensors.torch import load_file
    back = load_file(a.out)
    os.unlink(a.out)
    hf = load_hf_tensors(a.hf)
    if "lm_head.weight" not in hf:          # tied: Meta keeps an output copy
        hf["lm_head.weight"] = hf["model.embed_tokens.weight"]
    for k, v in hf.items():
        if k not in back:
            die("%s missing from the Meta checkpoint" % k)
        if back[k].dtype != v.dtype or not torch.equal(back[k].view(torch.uint8),
                                                       v.view(torch.uint8)):
            die("%s: not bit for bit the HF tensor after Meta -> HF" % k)
    print("%d shards, %d tensors equal, params %s" % (len(files), len(hf), json.dumps(params)))


# ---- GGUF ----

def checkgguf(a):
    """Names, shapes, types and metadata as llama.cpp's convert_hf_to_gguf.py
    writes them; data equal to the HF tensors (q, k permuted back to Meta's
    layout with llama.cpp's rule, q8_0 equal to gguf-py's quantizer)."""
    import gguf
    import sentencepiece as spm
    r = gguf.GGUFReader(a.file)
    cfg = json.load(open(os.path.join(a.hf, "config.json")))
    hf = load_hf_tensors(a.hf)
    sp = spm.SentencePieceProcessor(model_file=a.tokenizer)

    def kv(key):
        f = r.get_field(key)
        if f is None:
            die("metadata %s missing" % key)
        if f.types[0] == gguf.GGUFValueType.STRING:
            return bytes(f.parts[-1]).decode()
        if f.types[0] == gguf.GGUFValueType.ARRAY:
            if f.types[-1] == gguf.GGUFValueType.STRING:
                return [bytes(f.parts[i]).decode() for i in f.data]
            return [f.parts[i].tolist()[0] for i in f.data]
        return f.parts[-1].tolist()[0]

    def expect(key, want, tol=0):
        got = kv(key)
        if (abs(got - want) > tol) if tol else got != want:
            die("%s is %r, want %r" % (key, got, want))

    heads, kvh = cfg["num_attention_heads"], cfg.get("num_key_value_heads")
    kvh = kvh or heads
    hd = cfg.get("head_dim") or cfg["hidden_size"] // heads
    rope = cfg.get("rope_parameters") or {"rope_theta": cfg.get("rope_theta", 10000.0)}
    expect("general.architecture", "llama")
    expect("llama.block_count", cfg["num_hidden_layers"])
    expect("llama.context_length", cfg["max_position_embeddings"])
    expect("llama.embedding_length", cfg["hidden_size"])
    expect("llama.feed_forward_length", cfg["intermediate_size"])
    expect("llama.attention.head_count", heads)
    expect("llama.attention.head_count_kv", kvh)
    expect("llama.rope.dimension_count", hd)
    expect("llama.rope.freq_base", rope["rope_theta"], 1e-3)
    expect("llama.attention.layer_norm_rms_epsilon", cfg["rms_norm_eps"], 1e-9)
    expect("llama.vocab_size", cfg["vocab_size"])
    ftype = {"f32": 0, "f16": 1, "q8_0": 7, "bf16": 32}[a.dtype]
    expect("general.file_type", ftype)
    expect("general.quantization_version", 2)
    if rope.get("rope_type") == "linear":
        expect("llama.rope.scaling.type", "linear")
        expect("llama.rope.scaling.factor", rope["factor"], 1e-6)
    expect("tokenizer.ggml.model", "llama")
    toks, scores, types = kv("tokenizer.ggml.tokens"), kv("tokenizer.ggml.scores"), \
        kv("tokenizer.ggml.token_type")
    if len(toks) != cfg["vocab_size"] or len(scores) != len(toks) or len(types) != len(toks):
        die("vocabulary arrays have %d/%d/%d entries, want %d" %
            (len(toks), len(scores), len(types), cfg["vocab_size"]))
    for i in range(sp.vocab_size()):
        t = 1
        if sp.IsUnknown(i):
            t = 2
        elif sp.IsControl(i):
            t = 3
        elif sp.IsUnused(i):
            t = 5
        elif sp.IsByte(i):
            t = 6
        if toks[i] != sp.IdToPiece(i) or abs(scores[i] - sp.GetScore(i)) > 1e-6 or types[i] != t:
            die("token %d is %r %g %d, sentencepiece says %r %g %d" %
                (i, toks[i], scores[i], types[i], sp.IdToPiece(i), sp.GetScore(i), t))
    expect("tokenizer.ggml.bos_token_id", cfg.get("bos_token_id", sp.bos_id()))
    expect("tokenizer.ggml.eos_token_id", cfg.get("eos_token_id", sp.eos_id()))
    expect("tokenizer.ggml.unknown_token_id", sp.unk_id())
    expect("tokenizer.ggml.add_bos_token", True)
    expect("tokenizer.ggml.add_eos_token", False)

    def permute(w, n_head):     # llama.cpp's LlamaModel.permute
        return (w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
                .swapaxes(1, 2).reshape(w.shape))

    names = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight":
             "output_norm.weight", "lm_head.weight": "output.weight"}
    parts = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
             "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
             "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down",
             "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm"}
    for l in range(cfg["num_hidden_layers"]):
        for h, g in parts.items():
            names["model.layers.%d.%s.weight" % (l, h)] = "blk.%d.%s.weight" % (l, g)
    got = {t.name: t for t in r.tensors}
    want = {names[k]: v for k, v in hf.items()}
    if set(got) != set(want):
        die("tensors differ: only in the GGUF %s, missing %s" %
            (sorted(set(got) - set(want))[:5], sorted(set(want) - set(got))[:5]))
    G = gguf.GGMLQuantizationType
    for name, ref in want.items():
        t = got[name]
        ref = ref.to(torch.float32)
        if ".attn_q." in name:
            ref = permute(ref, heads)
        elif ".attn_k." in name:
            ref = permute(ref, kvh)
        norm = ref.dim() == 1 or name.endswith("_norm.weight")
        wtype = {"f32": G.F32, "f16": G.F16, "bf16": G.BF16, "q8_0": G.Q8_0}[a.dtype]
        if norm:
            wtype = G.F32
        elif wtype == G.Q8_0 and ref.shape[-1] % 32:
            wtype = G.F16       # llama.cpp's converter falls back to f16 too
        if t.tensor_type != wtype:
            die("%s: type %s, want %s" % (name, t.tensor_type.name, wtype.name))
        if list(reversed([int(x) for x in t.shape])) != list(ref.shape):
            die("%s: ggml shape %s, want %s reversed" % (name, list(t.shape), list(ref.shape)))
        data = np.asarray(t.data)
        if wtype == G.Q8_0:
            refq = gguf.quants.quantize(ref.numpy(), G.Q8_0)
            if data.tobytes() != refq.tobytes():
                die("%s: q8_0 bytes differ from gguf-py's quantizer" % name)
            continue
        if wtype == G.BF16:
            refb = ref.to(torch.bfloat16).view(torch.int16).numpy().tobytes()
        elif wtype == G.F16:
            refb = ref.to(torch.float16).numpy().tobytes()
        else:
            refb = ref.numpy().tobytes()
        if data.tobytes() != refb:
            die("%s: data differ from the HF tensor" % name)
    print("%d tensors, %d metadata keys checked" % (len(got), len(r.fields)))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("mkmodel")
    p.add_argument("dir")
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--inter", type=int, default=172)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--kv-heads", type=int, default=2)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--vocab", type=int, default=300)
    p.add_argument("--dtype", default="bf16")
    p.add_argument("--tied", action="store_true")
    p.add_argument("--rope-scaling", default="")
    p.add_argument("--max-shard", default="5GB")
    p.add_argument("--tokenizer", default="")
    p.add_argument("--seed", type=int, default=1)
    p = sub.add_parser("mkadapter")
    p.add_argument("base")
    p.add_argument("out")
    p.add_argument("--r", type=int, default=4)
    p.add_argument("--alpha", type=float, default=8)
    p.add_argument("--targets", default="q_proj,v_proj")
    p.add_argument("--rslora", action="store_true")
    p.add_argument("--save", default="")
    p.add_argument("--vocab", type=int, default=0)
    p.add_argument("--dtype", default="f32")
    p.add_argument("--rank-pattern", default="")
    p.add_argument("--alpha-pattern", default="")
    p.add_argument("--seed", type=int, default=2)
    p = sub.add_parser("merge")
    p.add_argument("base")
    p.add_argument("out")
    p.add_argument("adapters", nargs="*")
    p.add_argument("--fp32", action="store_true")
    p.add_argument("--dtype", default="")
    p = sub.add_parser("compare")
    p.add_argument("ours")
    p.add_argument("ref")
    p.add_argument("--ulps", type=int, default=1)
    p = sub.add_parser("mkmeta")
    p.add_argument("dir")
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--kv-heads", type=int, default=4)
    p.add_argument("--vocab", type=int, default=300)
    p.add_argument("--shards", type=int, default=1)
    p.add_argument("--dtype", default="bf16")
    p.add_argument("--multiple-of", type=int, default=32)
    p.add_argument("--rope-freqs", action="store_true")
    p.add_argument("--seed", type=int, default=3)
    p = sub.add_parser("meta2hf")
    p.add_argument("meta")
    p.add_argument("out")
    p = sub.add_parser("checkpth")
    p.add_argument("pth")
    p.add_argument("hf")
    p = sub.add_parser("checkgguf")
    p.add_argument("file")
    p.add_argument("hf")
    p.add_argument("tokenizer")
    p.add_argument("dtype")
    a = ap.parse_args()
    torch.set_num_threads(2)
    globals()[a.cmd](a)


if __name__ == "__main__":
    main()
