#!/usr/bin/env python3
"""quant_bnb.py: quantized weights of t/unit/quant.c against bitsandbytes.

    quant_bnb.py QUANT_BINARY WORKDIR nf4|fp4|int8

For random matrices with outliers (1% of the elements 200 times larger) in
f32, bf16 and f16, of shapes whose blocks fall inside rows, across rows and
with an odd element count, the C quantizer (streaming blocks of rows in
reverse order) must give bitsandbytes' bytes exactly:
- NF4 and FP4, block sizes 64 and 128: packed codes and f32 absmax
  (quantize_4bit), and with compress_statistics=True the nested state:
  codes of absmax - offset, nested absmax, offset, nested code;
- int8: CB and SCB of int8_vectorwise_quant of the f16 weight.
Dequantized weights must equal bitsandbytes' dequantize_4bit /
int8_vectorwise_dequant bit for bit in f32 and bf16.

The matmuls: y = x @ W^T and dx = dy @ W through the quantized weight must
be what bitsandbytes' Linear4bit / Linear8bitLt (f32 compute) gives by
autograd. Both sides multiply the same dequantized f32 weight and sum in
f32 in different orders, so the bound is stated on the normwise error
max|ours - bnb| / max|bnb|: 2e-6 (a few f32 roundings of sums of 96-200
terms); for scale, bitsandbytes' own 4-bit output differs from the
unquantized weight's by 3e-2 to 1e-1 in that measure, which is printed.
Prints TAP; exits 1 on a failure.
"""
import os
import subprocess
import sys
import warnings

import numpy as np
import torch

warnings.filterwarnings("ignore")
import logging
logging.disable(logging.WARNING)
import bitsandbytes as bnb  # noqa: E402
import bitsandbytes.functional as F  # noqa: E402
from bitsandbytes.backends.default.ops import _dequantize_4bit_compute  # noqa: E402
from bitsandbytes.backends.utils import _get_4bit_code  # noqa: E402

QUANT, WORK, ONLY = sys.argv[1], sys.argv[2], sys.argv[3]
n_test = n_fail = 0
TORCH_DT = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}


def ok(cond, what):
    global n_test, n_fail
    n_test += 1
    if not cond:
        n_fail += 1
    print(("ok" if cond else "not ok") + f" {n_test} - {what}", flush=True)


def raw(t):
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().tobytes()
    return t.numpy().tobytes()


def load(d, name, dtype):
    return np.fromfile(os.path.join(d, name), dtype=dtype)


def matrix(rows, cols, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(rows, cols, generator=g) * 0.05
    mask = torch.rand(rows, cols, generator=g) < 0.01
    w[mask] *= 200.0
    return w.to(TORCH_DT[dtype])


def run(args):
    subprocess.run([QUANT] + [str(a) for a in args], check=True)


def case(qtype, bs, dq, dtype, rows, cols, seed):
    name = f"{qtype} bs{bs} dq{dq} {dtype} ({rows}, {cols})"
    d = os.path.join(WORK, name.replace(" ", "_").replace("(", "").replace(")", "").replace(",", ""))
    os.makedirs(d, exist_ok=True)
    w = matrix(rows, cols, dtype, seed)
    wpath = os.path.join(d, "w.bin")
    with open(wpath, "wb") as f:
        f.write(raw(w))
    run(["q", qtype, bs, dq, dtype, rows, cols, wpath, d])
    if qtype == "int8":
        cb, scb, _ = F.int8_vectorwise_quant(w.half())
        ok(load(d, "data.bin", np.int8).tobytes() == cb.numpy().tobytes(), f"{name}: CB bytes")
        ok(load(d, "absmax.bin", np.float32).tobytes() == scb.numpy().tobytes(), f"{name}: SCB")
        ref = torch.ops.bitsandbytes.int8_vectorwise_dequant(cb, scb).float()
    else:
        q, st = F.quantize_4bit(w, blocksize=bs, quant_type=qtype, compress_statistics=bool(dq))
        ok(load(d, "data.bin", np.uint8).tobytes() == q.numpy().tobytes(), f"{name}: packed codes")
        if dq:
            ok(load(d, "qabsmax.bin", np.uint8).tobytes() == st.absmax.numpy().tobytes(),
               f"{name}: double-quantized absmax codes")
            ok(load(d, "absmax2.bin", np.float32).tobytes() == st.state2.absmax.numpy().tobytes(),
               f"{name}: nested absmax")
            ok(load(d, "offset.bin", np.float32).tobytes() == st.offset.float().numpy().tobytes(),
               f"{name}: offset {st.offset.item():.9g}")
            ok(load(d, "code2.bin", np.float32).tobytes() == st.state2.code.numpy().tobytes(),
               f"{name}: nested code")
        else:
            ok(load(d, "absmax.bin", np.float32).tobytes() == st.absmax.numpy().tobytes(),
               f"{name}: absmax")
        if cols % bs == 0:
            st.dtype = torch.float32
            ref = F.dequantize_4bit(q, st)
            st.dtype = torch.bfloat16
            ref16 = F.dequantize_4bit(q, st)
        else:
            # bitsandbytes' native CPU dequantizer (0.50.2) restarts blocks
            # at each row, wrong when blocks cross rows; its portable
            # implementation is the published algorithm (which, compiled,
            # writes FP4's -0 as +0 as the native one does)
            absmax = st.absmax
            if dq:
                absmax = F.dequantize_blockwise(st.absmax, st.state2) + st.offset
            code = _get_4bit_code(qtype, q.device)
            ref = _dequantize_4bit_compute(q.reshape(-1), absmax.float(), code, bs, (rows, cols),
                                           torch.float32)
            ref16 = ref.to(torch.bfloat16)
        if ref16 is not None:
            ok(load(d, "deq_bf16.bin", np.int16).tobytes() ==
               ref16.view(torch.int16).numpy().tobytes(), f"{name}: dequantized to bf16 bit for bit")
    ok(load(d, "deq.bin", np.float32).tobytes() == ref.numpy().tobytes(),
       f"{name}: dequantized to f32 bit for bit")


def matmul(qtype, dq, rows, cols, n, seed):
    name = f"{qtype} dq{dq} matmul ({n}, {cols}) x ({rows}, {cols})^T"
    d = os.path.join(WORK, f"mm_{qtype}_{dq}_{rows}_{cols}")
    os.makedirs(d, exist_ok=True)
    w = matrix(rows, cols, "bf16", seed)
    g = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(n, cols, generator=g)
    dy = torch.randn(n, rows, generator=g)
    for fname, t in (("w.bin", w), ("x.bin", x), ("dy.bin", dy)):
        with open(os.path.join(d, fname), "wb") as f:
            f.write(raw(t))
    run(["mm", qtype, 64, dq, "bf16", rows, cols, os.path.join(d, "w.bin"), n,
         os.path.join(d, "x.bin"), os.path.join(d, "dy.bin"), d])
    if qtype == "int8":
        lin = bnb.nn.Linear8bitLt(cols, rows, bias=False, has_fp16_weights=False, threshold=0.0)
        lin.weight = bnb.nn.Int8Params(w.half(), requires_grad=False, has_fp16_weights=False)
        lin = lin.to("cpu")
        lin.train()
    else:
        lin = bnb.nn.Linear4bit(cols, rows, bias=False, compute_dtype=torch.float32,
                                compress_statistics=bool(dq), quant_type=qtype)
        lin.weight = bnb.nn.Params4bit(w, requires_grad=False, compress_statistics=bool(dq),
                                       quant_type=qtype, blocksize=64)
        lin = lin.to("cpu")
    xr = x.clone().requires_grad_(True)
    y = lin(xr)
    y.backward(dy)
    ours_y = torch.from_numpy(load(d, "y.bin", np.float32).reshape(n, rows))
    ours_dx = torch.from_numpy(load(d, "dx.bin", np.float32).reshape(n, cols))
    ey = ((ours_y - y.detach().float()).abs().max() / y.abs().max()).item()
    edx = ((ours_dx - xr.grad).abs().max() / xr.grad.abs().max()).item()
    own = ((y.detach().float() - x @ w.float().T).abs().max() / y.abs().max()).item()
    # bitsandbytes' 4-bit backward multiplies by the weight dequantized to
    # the weight's dtype (bf16 here), ours by the f32 dequantization: 2^-8;
    # its int8 path scales CB by SCB * (1/127) in another order: 1e-4
    by, bdx = (1e-4, 1e-4) if qtype == "int8" else (2e-6, 2 ** -8)
    ok(ey <= by and edx <= bdx,
       f"{name}: forward {ey:.2g}, input gradient {edx:.2g} (bnb vs unquantized: {own:.2g})")


seed = 1
for qtype in (ONLY,) if ONLY != "int8" else ():
    for dq in (0, 1):
        for dtype in ("f32", "bf16", "f16"):
            for rows, cols, bs in ((48, 128, 64), (37, 96, 64), (33, 99, 128), (301, 256, 64)):
                case(qtype, bs, dq, dtype, rows, cols, seed)
                seed += 1
for dtype in ("f32", "bf16", "f16") if ONLY == "int8" else ():
    for rows, cols in ((48, 128), (37, 99)):
        case("int8", 64, 0, dtype, rows, cols, seed)
        seed += 1
for qtype in (ONLY,):
    for dq in ((0, 1) if qtype != "int8" else (0,)):
        matmul(qtype, dq, 96, 200, 7, seed)
        seed += 1
print(f"1..{n_test}")
sys.exit(1 if n_fail else 0)
