#!/bin/sh
# safetensors reader and writer: C unit tests, bad files named in errors,
# and cross-checks with Python's safetensors package (the reference) when it
# is installed: files it writes read the same here, files written here read
# the same there, and sorted output is byte-identical to its save_file().
. "$(dirname "$0")/test-lib.sh"

ST="$LP_BUILD/t/safetensors"
$PYTHON -c 'import safetensors, numpy' 2>/dev/null && test_set_prereq PY_SAFETENSORS

# mkst FILE JSON NDATA: a safetensors file with that header (under 256
# bytes) followed by NDATA zero bytes.
mkst() {
	n=$(printf %s "$2" | wc -c)
	printf "\\$(printf %03o "$n")\\000\\000\\000\\000\\000\\000\\000" >"$1" &&
	printf %s "$2" >>"$1" &&
	head -c "$3" /dev/zero >>"$1"
}

# py-dump.py FILE: the same listing as "$ST dump FILE", through safe_open.
cat >py-dump.py <<'PYEOF'
import json, struct, sys
from safetensors import safe_open
path = sys.argv[1]
raw = open(path, "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
header = json.loads(raw[8:8 + n])
out = []
with safe_open(path, framework="numpy") as f:
    for k in sorted(f.keys()):
        s = f.get_slice(k)
        dtype, shape = s.get_dtype(), s.get_shape()
        if dtype == "BF16":  # numpy has no bfloat16: the bytes the header points at
            b, e = header[k]["data_offsets"]
            data = raw[8 + n + b:8 + n + e]
        else:
            data = f.get_tensor(k).tobytes()
        out.append("%s\t%s\t[%s]\t%s" % (k, dtype, ",".join(map(str, shape)), data.hex()))
    for k, v in sorted((f.metadata() or {}).items()):
        out.append("meta\t%s\t%s" % (k, v))
sys.stdout.buffer.write(("\n".join(out) + "\n").encode())
PYEOF

cat >py-write.py <<'PYEOF'
import sys
import numpy as np
from safetensors.numpy import save_file
r = np.random.default_rng(7)
t = {
    "model.embed_tokens.weight": r.standard_normal((5, 3)).astype(np.float32),
    "h": r.standard_normal((2, 2, 2)).astype(np.float16),
    "d": r.standard_normal(3),
    "ids": np.arange(-3, 3, dtype=np.int64).reshape(2, 3),
    "i32": np.array([-2**31, 2**31 - 1], np.int32),
    "u8": np.arange(250, 256, dtype=np.uint8),
    "i8": np.array([-128, 127, 0], np.int8),
    "i16": np.array([-32768, 32767], np.int16),
    "u16": np.array([65535], np.uint16),
    "u32": np.array([2**32 - 1, 1], np.uint32),
    "u64": np.array([2**64 - 1], np.uint64),
    "mask": np.array([True, False, True]),
    "scalar": np.array(3.5, np.float32),
    "empty": np.zeros((0, 4), np.float32),
    "r4": np.arange(24, dtype=np.float32).reshape(1, 2, 3, 4),
    "名前/\"q\"\\": np.ones(2, np.float32),
}
save_file(t, sys.argv[1], metadata={"format": "pt", "note": "é \"x\""})
PYEOF

cat >py-resave.py <<'PYEOF'
import sys
from safetensors import safe_open
from safetensors.numpy import load_file, save_file
with safe_open(sys.argv[1], framework="numpy") as f:
    meta = f.metadata()
save_file(load_file(sys.argv[1]), sys.argv[2], metadata=meta)
PYEOF

test_expect_success 'unit tests pass' '
	"$ST" >out &&
	! grep "^not ok" out &&
	grep -q "^1\.\." out
'

test_expect_success 'a file written here reads back through dump' '
	"$ST" write all.safetensors &&
	"$ST" dump all.safetensors >dump &&
	test_line_count = 18 dump &&
	test_grep "^model.layers.0.self_attn.q_proj.lora_A.weight	BF16	\[4,3\]	" dump &&
	test_grep "^empty	F32	\[3,0\]	$" dump &&
	test_grep "^meta	format	pt$" dump
'

test_expect_success 'an empty file is refused, naming it' '
	: >empty.safetensors &&
	test_must_fail "$ST" dump empty.safetensors 2>err &&
	test_grep "empty.safetensors: file of 0 bytes is too short" err
'

test_expect_success 'a truncated header is refused' '
	"$ST" write all.safetensors &&
	head -c 100 all.safetensors >cut.safetensors &&
	test_must_fail "$ST" dump cut.safetensors 2>err &&
	test_grep "cut.safetensors: header length [0-9]* runs past the end of the file (100 bytes)" err
'

test_expect_success 'truncated data is refused, naming the tensor' '
	"$ST" write all.safetensors &&
	size=$(wc -c <all.safetensors) &&
	head -c $((size - 1)) all.safetensors >cut.safetensors &&
	test_must_fail "$ST" dump cut.safetensors 2>err &&
	test_grep "cut.safetensors: tensor .* lie outside the data area" err
'

test_expect_success 'offsets that disagree with the shape name the tensor' '
	mkst bad.safetensors "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}" 4 &&
	test_must_fail "$ST" dump bad.safetensors 2>err &&
	test_grep "bad.safetensors: tensor .w.: data_offsets \[0, 4\] do not hold the 8 bytes" err
'

test_expect_success 'an unknown dtype names the tensor' '
	mkst bad.safetensors "{\"w\":{\"dtype\":\"Q4\",\"shape\":[2],\"data_offsets\":[0,2]}}" 2 &&
	test_must_fail "$ST" dump bad.safetensors 2>err &&
	test_grep "bad.safetensors: tensor .w.: unknown or unsupported dtype .Q4." err
'

test_expect_success 'a hole in the data area is refused' '
	mkst bad.safetensors "{\"w\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[1,3]}}" 3 &&
	test_must_fail "$ST" dump bad.safetensors 2>err &&
	test_grep "tensor .w.: bytes \[0, 1) before it belong to no tensor" err
'

test_expect_success PY_SAFETENSORS 'a file Python writes reads the same here' '
	$PYTHON py-write.py py.safetensors &&
	$PYTHON py-dump.py py.safetensors >expect &&
	"$ST" dump py.safetensors >actual &&
	test_line_count = 18 actual &&
	test_cmp expect actual
'

test_expect_success PY_SAFETENSORS 'a file written here reads the same in Python' '
	"$ST" write all.safetensors &&
	"$ST" dump all.safetensors >expect &&
	$PYTHON py-dump.py all.safetensors >actual &&
	test_cmp expect actual
'

test_expect_success PY_SAFETENSORS 'sorted output is byte-identical to save_file' '
	"$ST" write-sorted c.safetensors &&
	$PYTHON py-resave.py c.safetensors py.safetensors &&
	cmp c.safetensors py.safetensors &&
	"$ST" dump c.safetensors >dump &&
	test_line_count = 16 dump
'

test_done
