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
orders); conversions bit for bit; AdamW's m and v bit for bit, p within
1 ulp (plus 2^-22 of the update) a step, see adamw(). Prints TAP; exits 1 on a failure.
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
    """AdamW two ways. The whole run (5 steps from p0) with torch's own
    state: m and v bit for bit (no sqrt touches them; the lerp and addcmul
    are in torch's float32 order). Then each step on its own, torch started
    from our state after the step before: m and v bit for bit, p within
    1 ulp plus 2^-22 of the step's update. Why not bit for bit: torch's
    vectorised sqrt is not correctly rounded on every processor (on an AMD
    EPYC it is 1 ulp off for some inputs, under its AVX2 and AVX-512
    kernels alike); ours is IEEE sqrtf. One ulp of sqrt(v) moves
    denom = sqrt(v)/sqrt(1-b2^t) + eps by at most 2 roundings, so the update
    s*m/denom by at most 2^-22 of itself, and p = p + update can then land
    on the neighbouring float: |ours - torch| <= spacing(p) + 2^-22 |update|.
    For |p| >> |update| that is 1 ulp; near p = 0 it is a few. Checking
    step by step keeps the bound from adding up over steps."""
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
        d = (ulps(t["adam_m"][-1], st["exp_avg"]), ulps(t["adam_v"][-1], st["exp_avg_sq"]))
        ok(max(d) == 0, "AdamW (foreach=%s), %d steps: m and v = torch.optim.AdamW "
           "bit for bit (ulps m %d, v %d)" % (foreach, len(grads), *d))
        worst, within = [0, 0, 0], True
        for k, g in enumerate(grads):
            prev = t["adam_p0"] if k == 0 else t["adam_p"][k - 1]
            p = torch.nn.Parameter(prev.clone())
            opt = torch.optim.AdamW([p], lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd,
                                    foreach=foreach)
            if k > 0:
                opt.state[p] = {"step": torch.tensor(float(k)),
                                "exp_avg": t["adam_m"][k - 1].clone(),
                                "exp_avg_sq": t["adam_v"][k - 1].clone()}
            p.grad = g.clone()
            opt.step()
            st = opt.state[p]
            ours, theirs = t["adam_p"][k].numpy(), p.detach().numpy()
            update = np.abs(theirs.astype(np.float64) - prev.numpy() * np.float32(1 - lr * wd))
            bound = np.spacing(np.abs(theirs)).astype(np.float64) + 2.0 ** -22 * update
            within &= bool((np.abs(ours.astype(np.float64) - theirs) <= bound).all())
            d = (ulps(t["adam_p"][k], p), ulps(t["adam_m"][k], st["exp_avg"]),
                 ulps(t["adam_v"][k], st["exp_avg_sq"]))
            worst = [max(a, b) for a, b in zip(worst, d)]
        ok(within and worst[1] == 0 and worst[2] == 0,
           "AdamW (foreach=%s), each step from our state = torch.optim.AdamW: p within "
           "1 ulp + 2^-22 |update|, m and v bit for bit (ulps p %d, m %d, v %d)"
           % (foreach, *worst))


def main():
    torch.manual_seed(0)
    t = load(sys.argv[1])
    for check in (rmsnorm, rope, attention, swiglu, cross_entropy, linear, conversions, adamw):
        check(t)
    print("1..%d" % n_test)
    sys.exit(1 if n_fail else 0)


if __name__ == "__main__":
    main()
