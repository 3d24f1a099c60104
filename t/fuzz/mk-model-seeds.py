#!/usr/bin/env python3
"""Writes the seed corpora of the pickle, zip and model_config fuzz targets
(t/fuzz/corpus/{pickle,zip,model_config}/).

Run from the repository root: python3 t/fuzz/mk-model-seeds.py
Needs only Python's standard library: the state dicts are pickled by
Python's own pickler the way torch.save pickles them, with stand-in torch
modules; the zips are laid out as torch.save lays them out (stored entries,
data aligned to 64 bytes by padding in the local extra field), one of them
in zip64 form. Every seed is tiny; the replay driver also feeds every prefix
of each, so truncations are covered."""
import collections
import io
import json
import os
import pickle
import struct
import sys
import types
import zlib

ROOT = "t/fuzz/corpus"

# ---- stand-in torch names (never called) ----

torch = types.ModuleType("torch")
utils = types.ModuleType("torch._utils")
sys.modules.update({"torch": torch, "torch._utils": utils})


def _rebuild_tensor_v2(*args):
    raise RuntimeError("stand-in")


def _rebuild_parameter(*args):
    raise RuntimeError("stand-in")


for f in (_rebuild_tensor_v2, _rebuild_parameter):
    f.__module__ = "torch._utils"
    setattr(utils, f.__name__, f)
STORAGE_TYPES = {}
for name, fmt in (("FloatStorage", "f"), ("HalfStorage", "e"), ("BFloat16Storage", "H"),
                  ("LongStorage", "q")):
    cls = type(name, (), {})
    cls.__module__ = "torch"
    setattr(torch, name, cls)
    STORAGE_TYPES[name] = (cls, fmt)


class Storage:
    def __init__(self, key, kind, values):
        self.key, self.kind, self.values = key, kind, values

    def raw(self):
        return struct.pack("<%d%s" % (len(self.values), STORAGE_TYPES[self.kind][1]), *self.values)


class Tensor:
    def __init__(self, storage, offset, size, stride):
        self.args = (storage, offset, tuple(size), tuple(stride), False,
                     collections.OrderedDict())

    def __reduce__(self):
        return (_rebuild_tensor_v2, self.args)


class Param:
    def __init__(self, t):
        self.t = t

    def __reduce__(self):
        return (_rebuild_parameter, (self.t, False, collections.OrderedDict()))


class TorchPickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            return ("storage", STORAGE_TYPES[obj.kind][0], obj.key, "cpu", len(obj.values))
        return None


def dumps(obj, protocol=2):
    b = io.BytesIO()
    TorchPickler(b, protocol=protocol).dump(obj)
    return b.getvalue()


def state_dict():
    a = Storage("0", "FloatStorage", [0.5, -1.0, 2.0, 3.0, 4.0, 5.0])
    b = Storage("1", "HalfStorage", [1.0, 2.0])
    sd = collections.OrderedDict()
    sd["w"] = Tensor(a, 0, (2, 2), (2, 1))
    sd["t"] = Param(Tensor(a, 1, (2, 2), (1, 2)))    # strided view
    sd["n"] = Tensor(a, 4, (2,), (1,))
    sd["h"] = Tensor(b, 0, (2,), (1,))
    sd._metadata = {"": {"version": 1}}             # BUILD with a dict state
    return sd, [a, b]


# ---- zips as torch.save writes them ----

def zip_bytes(entries, zip64=False):
    """entries: [(name, data)]. Stored, data aligned to 64, optional zip64."""
    out, central = bytearray(), bytearray()
    for name, data in entries:
        n = name.encode()
        crc = zlib.crc32(data)
        off = len(out)
        big = 0xFFFFFFFF if zip64 else None
        extra = struct.pack("<HHQQ", 1, 16, len(data), len(data)) if zip64 else b""
        pad = (-(off + 30 + len(n) + len(extra) + 4)) % 64
        extra += struct.pack("<HH", 0x4246, pad) + b"Z" * pad
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 45 if zip64 else 20, 0, 0, 0, 0x21,
                           crc, big or len(data), big or len(data), len(n), len(extra))
        out += n + extra + data
        cextra = struct.pack("<HHQQQ", 1, 24, len(data), len(data), off) if zip64 else b""
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 45 if zip64 else 20,
                               0, 0, 0, 0x21, crc, big or len(data), big or len(data),
                               len(n), len(cextra), 0, 0, 0, 0, big or off)
        central += n + cextra
    cd_off, cd_size, count = len(out), len(central), len(entries)
    out += central
    if zip64:
        eocd64 = len(out)
        out += struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, count, count,
                           cd_size, cd_off)
        out += struct.pack("<IIQI", 0x07064B50, 0, eocd64, 1)
        out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF,
                           0xFFFFFFFF, 0)
    else:
        out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, count, count, cd_size, cd_off, 0)
    return bytes(out)


def checkpoint(zip64=False):
    sd, storages = state_dict()
    entries = [("archive/data.pkl", dumps(sd)), ("archive/byteorder", b"little")]
    entries += [("archive/data/" + s.key, s.raw()) for s in storages]
    entries.append(("archive/version", b"3\n"))
    return zip_bytes(entries, zip64)


def write(sub, name, data):
    d = os.path.join(ROOT, sub)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def main():
    sd, _ = state_dict()
    write("pickle", "state-dict-p2", dumps(sd))
    write("pickle", "state-dict-p4", dumps(sd, protocol=4))    # FRAME, MEMOIZE, STACK_GLOBAL
    write("pickle", "hostile", b"\x80\x02cos\nsystem\nq\x00X\x05\x00\x00\x00touch\x85R.")
    write("pickle", "values", dumps(collections.OrderedDict(
        a=[1, -2, 70000, 2**40, -2**63, 1.5, True, None, "x" * 3, (1, 2, 3)])))
    write("zip", "checkpoint", checkpoint())
    write("zip", "checkpoint-zip64", checkpoint(zip64=True))
    write("model_config", "config-v5.json", json.dumps({
        "model_type": "llama", "hidden_size": 48, "num_attention_heads": 6,
        "num_key_value_heads": 2, "num_hidden_layers": 2, "intermediate_size": 100,
        "vocab_size": 300, "eos_token_id": [2, 5], "dtype": "bfloat16",
        "rope_parameters": {"rope_type": "yarn", "factor": 4.0, "rope_theta": 10000.0,
                            "original_max_position_embeddings": 64}}))
    write("model_config", "config-v4.json", json.dumps({
        "hidden_size": 64, "num_attention_heads": 8, "num_hidden_layers": 1,
        "intermediate_size": 120, "vocab_size": 300, "rope_theta": 500000.0,
        "torch_dtype": "float16", "rope_scaling": {"type": "llama3", "factor": 8.0,
        "low_freq_factor": 1.0, "high_freq_factor": 4.0,
        "original_max_position_embeddings": 8192}}))
    write("model_config", "params.json", json.dumps({
        "dim": 64, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2, "vocab_size": -1,
        "multiple_of": 32, "ffn_dim_multiplier": 1.3, "norm_eps": 1e-5,
        "use_scaled_rope": True}))
    write("model_config", "adapter_config.json", json.dumps({
        "peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"],
        "modules_to_save": ["embed_tokens"], "rank_pattern": {"q_proj": 2},
        "alpha_pattern": {r"layers\.\d\.self_attn\.q_proj": 3}, "use_rslora": True}))


if __name__ == "__main__":
    main()
