#!/usr/bin/env python3
"""kernels_torch.py: the CPU backend's ops against PyTorch.

    kernels_torch.py DIR

DIR holds what "kernels_cpu torch-dump DIR" wrote: a manifest of
"NAME DTYPE DIM..." lines and NAME.bin files of raw little-endian elements.
Each op is recomputed here with torch in float32 the way Hugging Face's
LLaMA code does it (LlamaRMSNorm, rotate-half rotary embedding, eager
attention with repeat_kv and a causal + padding mask), with F.silu,
F.cross_entropy, F.linear, Tensor.to(bfloat16/float16) and
torch.optim.AdamW, gradients by autograd.

Error measure: max |ours - torch| / max |torch| (normwise relative).
Bounds: forward 2e-6, backward 1e-5 (both sides round in f32, in other
orders); conversions and AdamW bit for bit. Prints TAP; exits 1 on a failure.
"""
import sys

import numpy as np
import torch
import torch.nn.functional as F

DTYPES = {"f32": np.float32, "f64": np.float64, "i32": np.int32, "u8": np.uint8,
          "f16": np.float16, "bf16": np.uint16}

n_test = 0
n_fail = 0


def ok(cond, msg):
    global n_test, n_fail
    n_test += 1
    if not cond:
        n_fail += 1
    print(("ok" if cond else "not ok") + " %d - %s" % (n_test, msg))


def load(d):
    t = {}
    for line in open(d + "/manifest"):
        name, dt, *dims = line.split()
        a = np.fromfile(d + "/" + name + ".bin", dtype=DTYPES[dt]).reshape([int(x) for x in dims])
        if dt == "bf16":   # raw bits -> float32, exact
            a = (a.astype(np.uint32) << 16).view(np.float32)
        t[name] = torch.from_numpy(np.ascontiguousarray(a))
    return t


def err(ours, ref):
    ours = ours.double()
    ref = ref.detach().double()
    den = ref.abs().max().item()
    num = (ours - ref).abs().max().item()
    return num / den if den > 0 else num


def close(name, ours, ref, bound):
    e = err(ours, ref)
    ok(e < bound, "%s (%.1e < %.0e)" % (name, e, bound))


def leaf(x):
    return x.clone().requires_grad_(True)


def rmsnorm(t):
    x, w = leaf(t["rms_x"]), leaf(t["rms_w"])
    var = x.pow(2).mean(-1, keepdim=True)
    y = w * (x * torch.rsqrt(var + 1e-6))
    (y * t["rms_dy"]).sum().backward()
    close("rmsnorm forward = LlamaRMSNorm", t["rms_y"], y, 2e-6)
    close("rmsnorm dinp = autograd", t["rms_dx"], x.grad, 1e-5)
    close("rmsnorm dw = autograd", t["rms_dw"], w.grad, 1e-5)


def rope(t):
    x, pos, inv = t["rope_x"], t["rope_pos"], t["rope_inv_freq"]
    af = t["rope_factor"].item()
    freqs = (inv[None, :, None].float() @ pos[None, None, :].float()).transpose(1, 2)[0]
    emb = torch.cat((freqs, freqs), dim=-1)                 # (N, D)
    cos, sin = emb.cos() * af, emb.sin() * af
    h = x.shape[-1] // 2
    rot = torch.cat((-x[..., h:], x[..., :h]), dim=-1)
    y = x * cos[:, None, :] + rot * sin[:, None, :]
    close("rope forward = HF rotate-half with attention factor", t["rope_y"], y, 2e-6)


def attention(t):
    q = leaf(t["att_q"].transpose(1, 2).contiguous())      # (B, H, T, D)
    k = leaf(t["att_k"].transpose(1, 2).contiguous())      # (B, KVH, T, D)
    v = leaf(t["att_v"].transpose(1, 2).contiguous())
    B, H, T, D = q.shape
    rep = H // k.shape[1]
    kk, vv = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
    allowed = torch.ones(T, T, dtype=torch.bool).tril()[None, None] \
        & t["att_mask"].bool()[:, None, None, :]
    s = (q @ kk.transpose(-1, -2)) * D ** -0.5
    bias = torch.zeros_like(s).masked_fill(~allowed, torch.finfo(torch.float32).min)
    p = torch.softmax(s + bias, dim=-1, dtype=torch.float32)
    out = p @ vv
    lse = torch.logsumexp(s.masked_fill(~allowed, float("-inf")), dim=-1)
    (out * t["att_dout"].transpose(1, 2)).sum().backward()
    close("attention forward = HF eager attention, GQA, padding", t["att_out"].transpose(1, 2), out, 2e-6)
    close("attention lse", t["att_lse"], lse, 2e-6)
    sdpa = F.scaled_dot_product_attention(q.detach(), kk.detach(), vv.detach(), attn_mask=allowed)
    close("attention forward = scaled_dot_product_attention", t["att_out"].transpose(1, 2), sdpa, 2e-6)
    close("attention dq = autograd", t["att_dq"].transpose(1, 2), q.grad, 1e-5)
    close("attention dk = autograd (summed over the group)", t["att_dk"].transpose(1, 2), k.grad, 1e-5)
    close("attention dv = autograd (summed over the group)", t["att_dv"].transpose(1, 2), v.grad, 1e-5)


def swiglu(t):
    g, u = leaf(t["sw_g"]), leaf(t["sw_u"])
    y = F.silu(g) * u
    (y * t["sw_dy"]).sum().backward()
    close("swiglu forward = silu(gate) * up", t["sw_y"], y, 2e-6)
    close("swiglu dgate = autograd", t["sw_dg"], g.grad, 1e-5)
    close("swiglu dup = autograd", t["sw_du"], u.grad, 1e-5)


def cross_entropy(t):
    x = leaf(t["ce_logits"])
    tg = t["ce_targets"].long()
    loss = F.cross_entropy(x, tg, reduction="none", ignore_index=-100)
    (loss * t["ce_scale"].item()).sum().backward()
    close("cross-entropy losses = F.cross_entropy, ignore_index -100", t["ce_loss"], loss, 2e-6)
    close("cross-entropy dlogits = autograd", t["ce_dlogits"], x.grad, 1e-5)


def linear(t):
    y = F.linear(t["mm_x"], t["mm_w"])
    close("matmul with a bf16 weight = F.linear", t["mm_y"], y, 2e-6)


def conversions(t):
    x = t["cv_f32"]
    bf = x.to(torch.bfloat16).float()
    hf = x.to(torch.float16).float()
    ours_bf = t["cv_bf16"]
    ours_hf = t["cv_f16"].float()
    ok(torch.equal(bf, ours_bf), "f32 -> bf16 = Tensor.to(bfloat16), bit for bit")
    ok(torch.equal(hf, ours_hf), "f32 -> f16 = Tensor.to(float16), bit for bit (subnormals too)")


def ulps(a, b):
    ia = a.numpy().view(np.int32).astype(np.int64)
    ib = b.detach().numpy().view(np.int32).astype(np.int64)
    return int(np.abs(ia - ib).max())


def adamw(t):
    lr, b1, b2, eps, wd = t["adam_hparams"].tolist()
    grads = t["adam_grads"]
    for foreach in (False, None):
        p = torch.nn.Parameter(t["adam_p0"].clone())
        opt = torch.optim.AdamW([p], lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd,
                                foreach=foreach)
        for g in grads:
            p.grad = g.clone()
            opt.step()
        st = opt.state[p]
        d = (ulps(t["adam_p"], p), ulps(t["adam_m"], st["exp_avg"]),
             ulps(t["adam_v"], st["exp_avg_sq"]))
        ok(max(d) == 0, "AdamW (foreach=%s), %d steps = torch.optim.AdamW bit for bit "
           "(ulps p %d, m %d, v %d)" % (foreach, len(grads), *d))


def main():
    torch.manual_seed(0)
    t = load(sys.argv[1])
    for check in (rmsnorm, rope, attention, swiglu, cross_entropy, linear, conversions, adamw):
        check(t)
    print("1..%d" % n_test)
    sys.exit(1 if n_fail else 0)


if __name__ == "__main__":
    main()
