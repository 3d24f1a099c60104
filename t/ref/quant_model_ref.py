#!/usr/bin/env python3
"""quant_model_ref.py: bitsandbytes + PEFT sides of t1410-quant-model.t.

    quant_model_ref.py merge BASE ADAPTER TYPE OUT.safetensors
        PEFT's merge arithmetic on the base quantized by bitsandbytes
        (train_ref.load_base): for each LoRA layer, its dequantized weight
        (peft's dequantize_bnb_weight) plus get_delta_weight, f32, under
        the layer's Hugging Face name
    quant_model_ref.py equal OURS.safetensors REF.safetensors
        every tensor of REF is in OURS with the same bytes
    quant_model_ref.py within OURS BNB DEQ FACTOR
        three logits texts: bitsandbytes' own forward (BNB) differs from a
        model of its dequantized weights (DEQ) by some e > 0; OURS must be
        within FACTOR * e + 1e-6 of BNB. Prints both distances.
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_ref  # noqa: E402


def merge(base, adapter, qtype, out):
    from peft import PeftModel
    from peft.utils.integrations import dequantize_bnb_weight
    from safetensors.torch import save_file
    model = train_ref.load_base(base, ["--quantize", qtype])
    pm = PeftModel.from_pretrained(model, adapter)
    sd = {}
    for name, mod in pm.named_modules():
        if hasattr(mod, "get_delta_weight") and hasattr(mod, "base_layer"):
            w = mod.base_layer.weight
            st = getattr(w, "quant_state", None)
            deq = dequantize_bnb_weight(w, state=st if st is not None else mod.base_layer.state)
            merged = deq.float() + mod.get_delta_weight("default").float()
            sd[name.replace("base_model.model.", "") + ".weight"] = merged.contiguous()
    save_file(sd, out)
    print("# %d merged weights" % len(sd))
    return 0


def equal(ours, ref):
    """The merged weights agree as t1301 holds plain merges: within one
    rounding of the output type plus the f32 sum's own error (the LoRA
    product summed in another order: a BLAS kernel chosen by processor,
    or the CPU backend's matrix-vector kernel for few rows), bounded by 8
    f32 epsilons of the tensor's largest magnitude. The dequantized base
    itself is bitsandbytes' bit for bit (t0320)."""
    from safetensors.torch import load_file
    a, b = load_file(ours), load_file(ref)
    bad, worst = [], 0.0
    for k, v in b.items():
        if k not in a or a[k].dtype != v.dtype or a[k].shape != v.shape:
            bad.append(k)
            continue
        o, r = a[k].double(), v.double()
        floor = 8 * 2.0 ** -24 * r.abs().max()
        spacing = torch.nextafter(v.abs(), torch.tensor(float("inf"), dtype=v.dtype)).double() - v.abs().double()
        over = (((o - r).abs() - floor).clamp(min=0) / spacing).max().item()
        worst = max(worst, over)
        if over > 1:
            bad.append(k)
    print("# %d of %d tensors differ by more than 1 ulp%s; worst %.2f" %
          (len(bad), len(b), (": " + ", ".join(bad[:3])) if bad else "", worst))
    return 1 if bad or not b else 0


def within(ours, bnb, deq, factor):
    o = train_ref.load_any(ours)["logits"].double()
    b = train_ref.load_any(bnb)["logits"].double()
    d = train_ref.load_any(deq)["logits"].double()
    own = (b - d).abs().max().item()
    ours_err = (o - b).abs().max().item()
    print("# ours vs bitsandbytes %.3g; bitsandbytes vs its dequantized weights %.3g" % (ours_err, own))
    return 0 if own > 0 and ours_err <= factor * own + 1e-6 else 1


def main():
    a = sys.argv[1:]
    if a and a[0] == "merge" and len(a) == 5:
        return merge(*a[1:])
    if a and a[0] == "equal" and len(a) == 3:
        return equal(a[1], a[2])
    if a and a[0] == "within" and len(a) == 5:
        return within(a[1], a[2], a[3], float(a[4]))
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main())
