#!/bin/sh
# The GGUF writer, read back by the gguf package llama.cpp publishes.
. "$(dirname "$0")/test-lib.sh"

$PYTHON -c 'import gguf, numpy' 2>/dev/null && test_set_prereq PY_GGUF

test_expect_success 'write a GGUF file' '
	"$LP_BUILD/t/gguf" small.gguf &&
	test -s small.gguf
'

test_expect_success PY_GGUF 'gguf reads names, shapes, types, metadata and data' '
	"$LP_BUILD/t/gguf" small.gguf &&
	$PYTHON - small.gguf <<-\EOF
	import sys, numpy as np, gguf
	from gguf import GGUFReader, GGMLQuantizationType as Q
	r = GGUFReader(sys.argv[1])
	f = r.fields
	def s(k): return f[k].contents()
	assert s("general.architecture") == "llama"
	assert s("llama.block_count") == 2 and s("test.negative") == -5
	assert abs(s("llama.attention.layer_norm_rms_epsilon") - 1e-5) < 1e-12
	assert s("tokenizer.ggml.add_bos_token") is True
	assert s("tokenizer.ggml.tokens") == ["<unk>", "<s>", "</s>", "\u2581\u4f60"]
	assert s("tokenizer.ggml.scores") == [0, 0, 0, -1.5]
	assert s("tokenizer.ggml.token_type") == [2, 3, 3, 1]
	t = {x.name: x for x in r.tensors}
	want = {"t.f32": ((3, 5), Q.F32), "t.f16": ((4, 7), Q.F16), "t.bf16": ((4, 7), Q.BF16),
	        "t.q8_0": ((3, 64), Q.Q8_0), "t.norm": ((9,), Q.F32)}
	assert list(t) == list(want), list(t)
	for k, (shape, q) in enumerate(want.values()):
	    name = list(want)[k]
	    x = t[name]
	    assert tuple(int(d) for d in reversed(x.shape.tolist())) == shape, (name, x.shape)
	    assert x.tensor_type == q, (name, x.tensor_type)
	    i = np.arange(int(np.prod(shape)))
	    ref = (((37 * i + 11 * k) % 201 - 100) / 16).astype(np.float32).reshape(shape)
	    got = gguf.quants.dequantize(x.data, q).reshape(shape)
	    if q == Q.Q8_0:
	        assert (np.asarray(x.data).tobytes() == gguf.quants.quantize(ref, Q.Q8_0).tobytes())
	    # f32/f16/bf16 hold these sixteenths exactly; q8_0 is within half a step
	    tol = 6.25 / 127 / 2 * 1.01 if q == Q.Q8_0 else 0
	    assert np.abs(got - ref).max() <= tol, (name, np.abs(got - ref).max())
	print("ok")
	EOF
'
test_done
