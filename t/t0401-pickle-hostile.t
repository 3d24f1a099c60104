#!/bin/sh
# PyTorch checkpoints are pickles, and a pickle can run anything while it is
# loaded. The reader (libcommon/formats/pickle.c) runs nothing: checkpoints whose
# pickle names os.system, eval or any global outside a state dict's few,
# calls a whitelisted name it may not call, or uses an opcode a state dict
# does not need are refused with an error naming it, and the payload never
# runs (no PWNED file appears). A state dict written by Python's own pickler
# the way torch.save writes it (stand-in torch modules, so torch is not
# needed) reads to the right values: shared storages, offsets, strided views.
. "$(dirname "$0")/test-lib.sh"

DUMP="$LP_BUILD/t/model_dump"
$PYTHON -c 'import zipfile, pickle' 2>/dev/null && test_set_prereq PYTHON
test_require PYTHON

# mk.py DIR KIND: DIR/config.json + DIR/pytorch_model.bin, a zip laid out as
# torch.save lays it out, whose data.pkl is the KIND of pickle.
cat >mk.py <<'PYEOF'
import collections, io, json, os, pickle, struct, sys, types, zipfile

out, kind = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
CMD = "touch PWNED"

# Stand-ins for the torch names a state dict pickles; never called here.
torch = types.ModuleType("torch")
utils = types.ModuleType("torch._utils")
storage_mod = types.ModuleType("torch.storage")
sys.modules.update({"torch": torch, "torch._utils": utils, "torch.storage": storage_mod})
def _rebuild_tensor_v2(*args): raise RuntimeError("stand-in")
def _rebuild_parameter(*args): raise RuntimeError("stand-in")
def _load_from_bytes(b): raise RuntimeError("stand-in")
for f, m in ((_rebuild_tensor_v2, utils), (_rebuild_parameter, utils), (_load_from_bytes, storage_mod)):
    f.__module__ = m.__name__
    setattr(m, f.__name__, f)
class FloatStorage: pass
FloatStorage.__module__ = "torch"
torch.FloatStorage = FloatStorage

class Storage:
    def __init__(self, key, values):
        self.key, self.values = key, values
class Tensor:
    def __init__(self, storage, offset, size, stride):
        self.args = (storage, offset, tuple(size), tuple(stride), False, collections.OrderedDict())
    def __reduce__(self):
        return (_rebuild_tensor_v2, self.args)
class Param:
    def __init__(self, t): self.t = t
    def __reduce__(self): return (_rebuild_parameter, (self.t, True, collections.OrderedDict()))

class TorchPickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            return ("storage", FloatStorage, obj.key, "cpu", len(obj.values))
        return None

class Evil:
    def __init__(self, fn, arg): self.fn, self.arg = fn, arg
    def __reduce__(self): return (self.fn, (self.arg,))

storages = {}
def dumps(obj, protocol=2):
    b = io.BytesIO()
    TorchPickler(b, protocol=protocol).dump(obj)
    return b.getvalue()

config = {"hidden_size": 4, "num_attention_heads": 1, "num_hidden_layers": 1,
          "intermediate_size": 4, "vocab_size": 4}
if kind == "os-system":          # written by hand: GLOBAL 'os system'
    pkl = b"\x80\x02cos\nsystem\nq\x00X\x0b\x00\x00\x00" + CMD.encode() + b"\x85R."
elif kind == "posix-system":     # Python's pickler names os.system 'posix system'
    pkl = dumps(collections.OrderedDict(w=Evil(os.system, CMD)))
elif kind == "eval2":            # protocol 2: GLOBAL '__builtin__ eval'
    pkl = dumps(Evil(eval, "__import__('os').system('%s')" % CMD))
elif kind == "eval4":            # protocol 4: STACK_GLOBAL 'builtins' 'eval'
    pkl = dumps(Evil(eval, "__import__('os').system('%s')" % CMD), protocol=4)
elif kind == "load-from-bytes":  # torch's legacy storage loader: unpickles again
    pkl = dumps(collections.OrderedDict(w=Evil(_load_from_bytes, b"\x80\x02.")))
elif kind == "reduce-storage":   # a whitelisted global that is not callable
    pkl = b"\x80\x02}q\x00X\x01\x00\x00\x00wctorch\nFloatStorage\nK\x04\x85Rs."
elif kind == "reduce-string":    # REDUCE on something that is no global at all
    pkl = b"\x80\x02X\x02\x00\x00\x00idX\x01\x00\x00\x00x\x85R."
elif kind == "inst":             # protocol 0's INST: import and call in one
    pkl = b"(ios\nsystem\nS'" + CMD.encode() + b"'\n."
elif kind == "good":
    a = Storage("0", [float(i) for i in range(24)])   # shared by three tensors
    b = Storage("1", [0.5, -1.0, 2.0])
    sd = collections.OrderedDict()
    sd["model.embed_tokens.weight"] = Tensor(a, 0, (4, 4), (4, 1))
    sd["model.layers.0.input_layernorm.weight"] = Tensor(a, 16, (4,), (1,))
    sd["model.layers.0.post_attention_layernorm.weight"] = Param(Tensor(a, 20, (4,), (1,)))
    sd["model.layers.0.self_attn.q_proj.weight"] = Tensor(a, 0, (4, 4), (1, 4))  # transposed view
    sd["extra"] = Tensor(b, 1, (2,), (1,))
    pkl = dumps(sd)
    storages = {"0": a, "1": b}
else:
    sys.exit("mk.py: unknown kind " + kind)

with open(os.path.join(out, "config.json"), "w") as f:
    json.dump(config, f)
with zipfile.ZipFile(os.path.join(out, "pytorch_model.bin"), "w", zipfile.ZIP_STORED) as z:
    z.writestr("archive/data.pkl", pkl)
    z.writestr("archive/byteorder", "little")
    for key, s in storages.items():
        z.writestr("archive/data/" + key, struct.pack("<%df" % len(s.values), *s.values))
    z.writestr("archive/version", "3\n")
PYEOF

refused() { # refused KIND MESSAGE: the checkpoint is refused, nothing ran
	$PYTHON mk.py "$1" "$1" &&
	test_must_fail "$DUMP" tensors "$1" 2>err &&
	test_grep "$2" err &&
	! test -e PWNED && ! test -e "$1/PWNED"
}

test_expect_success 'os.system, written by hand as GLOBAL os system' '
	refused os-system "os-system: pytorch_model.bin: refusing global .os system. at byte 2"
'

test_expect_success 'os.system, as Python pickles it (posix system)' '
	refused posix-system "refusing global .posix system."
'

test_expect_success 'eval through GLOBAL (protocol 2) and STACK_GLOBAL (protocol 4)' '
	refused eval2 "refusing global .__builtin__ eval." &&
	refused eval4 "refusing global .builtins eval."
'

test_expect_success 'torch.storage._load_from_bytes (it unpickles again)' '
	refused load-from-bytes "refusing global .torch.storage _load_from_bytes."
'

test_expect_success 'REDUCE on a whitelisted name that is not a callable' '
	refused reduce-storage "REDUCE at byte [0-9]*: calling .torch FloatStorage. is not allowed"
'

test_expect_success 'REDUCE on something that is not a global' '
	refused reduce-string "REDUCE at byte [0-9]*: calling a str is not allowed"
'

test_expect_success 'opcodes a state dict does not need' '
	refused inst "opcode INST (0x69) at byte 1 is not supported"
'

test_expect_success 'a state dict pickled as torch.save does reads to its values' '
	$PYTHON mk.py good good &&
	"$DUMP" file good/pytorch_model.bin >out &&
	$PYTHON - <<-\PYEOF >expect &&
	import struct, zlib
	a = [float(i) for i in range(24)]
	def line(name, shape, vals):
	    raw = struct.pack("<%df" % len(vals), *vals)
	    return "%s f32 [%s] %08x" % (name, ",".join(map(str, shape)), zlib.crc32(raw))
	rows = [
	    line("extra", [2], [-1.0, 2.0]),
	    line("model.embed_tokens.weight", [4, 4], a[:16]),
	    line("model.layers.0.input_layernorm.weight", [4], a[16:20]),
	    line("model.layers.0.post_attention_layernorm.weight", [4], a[20:24]),
	    line("model.layers.0.self_attn.q_proj.weight", [4, 4],
	         [a[c * 4 + r] for r in range(4) for c in range(4)]),
	]
	print("\n".join(rows))
	PYEOF
	test_cmp expect out
'

test_expect_success 'the same checkpoint is still checked against its config' '
	test_must_fail "$DUMP" tensors good 2>err &&
	test_grep "tensor model.layers.0.self_attn.k_proj.weight is missing" err
'

test_expect_success 'a corrupt pickle entry fails its CRC' '
	$PYTHON mk.py crc good &&
	$PYTHON -c "
import sys
p = \"crc/pytorch_model.bin\"
b = bytearray(open(p, \"rb\").read())
i = b.index(b\"model.embed_tokens\")
b[i] ^= 1
open(p, \"wb\").write(b)" &&
	test_must_fail "$DUMP" file crc/pytorch_model.bin 2>err &&
	test_grep "zip entry .archive/data.pkl.: CRC-32 is [0-9a-f]*, the directory says" err
'

test_done
