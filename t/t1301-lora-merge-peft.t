#!/bin/sh
# lora-merge against PEFT's merge_and_unload() on tiny random LLaMA models:
# ranks, alphas, target sets, rslora, rank/alpha patterns, f32/f16/bf16
# bases, modules_to_save with a resized vocabulary, two adapters in turn,
# tied embeddings, sharded input and output.
#
# Why "within one rounding": lora-merge computes W + scale * B @ A in f32
# and rounds once to the output type; PEFT does the same arithmetic (a bf16
# weight plus an f32 delta, rounded once) but its GEMM sums the r products
# in another order, so the f32 results may differ in their last bits and,
# where that straddles a rounding boundary, the outputs differ by one unit
# in the last place. merge_ref.py compare allows exactly that (and, for f32
# outputs, the f32 summation error itself). For several adapters the
# reference works in f32 and rounds once at the end (--fp32), as
# lora-merge does; PEFT on a bf16 model would round after each adapter.
. "$(dirname "$0")/test-lib.sh"

REF="$TEST_DIR/ref/merge_ref.py"
$PYTHON -c "import torch, transformers, peft" 2>/dev/null && test_set_prereq PY_PEFT
test_require PY_PEFT SPM_TRAIN

mkref() { $PYTHON "$REF" "$@" 2>/dev/null; }
compare() { $PYTHON "$REF" compare "$@"; }

test_expect_success 'setup: tokenizers, models and adapters' '
	make_spm_model tok bpe 800 &&
	make_spm_model tok820 bpe 820 &&
	mkref mkmodel bf16 --vocab 800 --tokenizer tok.model &&
	mkref mkmodel f16 --vocab 800 --dtype f16 --hidden 96 --heads 6 --kv-heads 6 \
		--inter 256 --layers 3 --seed 11 --tokenizer tok.model &&
	mkref mkmodel f32 --vocab 800 --dtype f32 --inter 160 --seed 12 --tokenizer tok.model &&
	mkref mkmodel tied --vocab 800 --tied --seed 13 --tokenizer tok.model &&
	mkref mkmodel sharded --vocab 800 --max-shard 30KB --seed 14 --tokenizer tok.model &&
	mkref mkadapter bf16 qv --r 4 --alpha 8 &&
	mkref mkadapter bf16 all7 --r 8 --alpha 16 --rslora --seed 5 \
		--targets q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj &&
	mkref mkadapter bf16 vocab --r 2 --alpha 32 --targets q_proj,down_proj \
		--save embed_tokens,lm_head --vocab 820 --dtype bf16 \
		--rank-pattern down_proj=6 --alpha-pattern q_proj=5 --seed 6 &&
	mkref mkadapter f16 f16ad --r 16 --alpha 16 --targets k_proj,o_proj,up_proj --seed 7 &&
	mkref mkadapter f32 pat --r 4 --alpha 4 --targets q_proj,k_proj,gate_proj \
		--rank-pattern "layers\.1\.self_attn\.q_proj=8" --alpha-pattern "k_proj=12" --seed 8 &&
	mkref mkadapter tied tiedad --r 4 --alpha 8 --targets q_proj,up_proj --seed 9 &&
	mkref mkadapter sharded shad --r 4 --alpha 8 --targets v_proj,down_proj --seed 10 &&
	test -s shad/adapter_model.safetensors
'
test -s "$TRASH/shad/adapter_model.safetensors" || test_skip_all "setup failed"

test_expect_success 'r=4 on q,v of a bf16 model: PEFT in bf16, and in f32 rounded once' '
	lora-merge -q -M bf16 -A qv -o m-qv &&
	mkref merge bf16 ref-qv.safetensors qv &&
	compare m-qv ref-qv.safetensors &&
	mkref merge bf16 ref-qv32.safetensors qv --fp32 --dtype bf16 &&
	compare m-qv ref-qv32.safetensors
'

test_expect_success 'the same adapter saved as adapter_model.bin merges the same' '
	mkdir qv-bin && cp qv/adapter_config.json qv-bin/ &&
	$PYTHON -c "import sys, torch; from safetensors.torch import load_file; \
		torch.save(load_file(sys.argv[1]), sys.argv[2])" \
		qv/adapter_model.safetensors qv-bin/adapter_model.bin &&
	lora-merge -q -M bf16 -A qv-bin -o m-qv-bin &&
	cmp m-qv/model.safetensors m-qv-bin/model.safetensors
'

test_expect_success 'r=8 on all seven modules with rslora' '
	lora-merge -q -M bf16 -A all7 -o m-all7 &&
	mkref merge bf16 ref-all7.safetensors all7 &&
	compare m-all7 ref-all7.safetensors
'

test_expect_success 'modules_to_save: embed_tokens and lm_head with 820 rows replace the base' '
	lora-merge -q -M bf16 -A vocab -o m-vocab --tokenizer tok820.model &&
	mkref merge bf16 ref-vocab.safetensors vocab &&
	compare m-vocab ref-vocab.safetensors &&
	grep "\"vocab_size\": 820" m-vocab/config.json &&
	cmp tok820.model m-vocab/tokenizer.model &&
	test_cmp bf16/tokenizer_config.json m-vocab/tokenizer_config.json
'

test_expect_success 'a later adapter sees the earlier ones: all7 then vocab, f32 and bf16 out' '
	lora-merge -q -M bf16 -A all7 -A vocab -o m-two32 --dtype f32 --tokenizer tok820.model &&
	mkref merge bf16 ref-two32.safetensors all7 vocab --fp32 --dtype f32 &&
	compare m-two32 ref-two32.safetensors &&
	grep "\"torch_dtype\": \"float32\"\\|\"dtype\": \"float32\"" m-two32/config.json &&
	lora-merge -q -M bf16 -A all7 -A vocab -o m-two16 --tokenizer tok820.model &&
	mkref merge bf16 ref-two16.safetensors all7 vocab --fp32 --dtype bf16 &&
	compare m-two16 ref-two16.safetensors
'

test_expect_success 'order: a whole weight drops earlier products; a later LoRA sees it' '
	mkref mkadapter bf16 headlora --r 4 --alpha 8 --targets lm_head --seed 16 &&
	lora-merge -q -M bf16 -A headlora -o m-head &&
	mkref merge bf16 ref-head.safetensors headlora &&
	compare m-head ref-head.safetensors &&
	lora-merge -q -M bf16 -A headlora -A vocab -o m-hv --tokenizer tok820.model &&
	$PYTHON - <<-\EOF &&
	import torch
	from safetensors.torch import load_file
	ours = load_file("m-hv/model.safetensors")["lm_head.weight"]
	theirs = load_file("vocab/adapter_model.safetensors")["base_model.model.lm_head.weight"]
	assert ours.shape == (820, 64) and torch.equal(ours, theirs)
	EOF
	test_must_fail lora-merge -q -M bf16 -A vocab -A headlora -o m-vh \
		--tokenizer tok820.model 2>err &&
	test_grep "headlora: lm_head: lora_B is (800, 4), the weight is (820, 64)" err
'

test_expect_success 'an f16 model with MHA, r=16 on k, o, up' '
	lora-merge -q -M f16 -A f16ad -o m-f16 &&
	mkref merge f16 ref-f16.safetensors f16ad &&
	compare m-f16 ref-f16.safetensors
'

test_expect_success 'rank_pattern and alpha_pattern, f32 model written as bf16' '
	lora-merge -q -M f32 -A pat -o m-pat --dtype bf16 &&
	mkref merge f32 ref-pat.safetensors pat --fp32 --dtype bf16 &&
	compare m-pat ref-pat.safetensors &&
	grep "\"dtype\": \"bfloat16\"" m-pat/config.json
'

test_expect_success 'a model with tied embeddings stays tied' '
	lora-merge -q -M tied -A tiedad -o m-tied &&
	mkref merge tied ref-tied.safetensors tiedad &&
	compare m-tied ref-tied.safetensors &&
	grep "\"tie_word_embeddings\": true" m-tied/config.json
'

test_expect_success 'sharded in, sharded out: index, names, sizes as transformers writes them' '
	lora-merge -q -M sharded -A shad -o m-sh --shard-size 40KB &&
	mkref merge sharded ref-sh.safetensors shad &&
	compare m-sh ref-sh.safetensors &&
	$PYTHON - m-sh <<-\EOF
	import json, os, sys
	from safetensors import safe_open
	d = sys.argv[1]
	ix = json.load(open(os.path.join(d, "model.safetensors.index.json")))
	files = sorted(f for f in os.listdir(d) if f.endswith(".safetensors"))
	n = len(files)
	assert n > 2 and files == ["model-%05d-of-%05d.safetensors" % (i + 1, n) for i in range(n)], files
	size = 0
	for f in files:
	    with safe_open(os.path.join(d, f), "pt") as st:
	        assert st.metadata() == {"format": "pt"}, st.metadata()
	        for k in st.keys():
	            assert ix["weight_map"][k] == f, k
	            t = st.get_tensor(k)
	            size += t.numel() * t.element_size()
	            assert os.path.getsize(os.path.join(d, f)) <= 40000 or len(list(st.keys())) == 1
	assert ix["metadata"]["total_size"] == size, (ix["metadata"], size)
	assert list(ix["weight_map"]) == sorted(ix["weight_map"])
	EOF
'

test_expect_success 'transformers loads the merged model and its tokenizer files' '
	$PYTHON - m-sh <<-\EOF 2>/dev/null
	import sys, torch
	from transformers import AutoModelForCausalLM
	m = AutoModelForCausalLM.from_pretrained(sys.argv[1])
	assert m.config.vocab_size == 800 and m.dtype == torch.bfloat16
	out = m(torch.tensor([[1, 5, 9]]))
	assert out.logits.shape == (1, 3, 800)
	EOF
'

test_expect_success 'fan_in_fan_out: the product is transposed (W += scale (B A)^T)' '
	mkref mkadapter bf16 fifo --r 4 --alpha 8 --targets q_proj,o_proj --seed 15 &&
	sed -i "s/\"fan_in_fan_out\": false/\"fan_in_fan_out\": true/" fifo/adapter_config.json &&
	grep "\"fan_in_fan_out\": true" fifo/adapter_config.json &&
	lora-merge -q -M bf16 -A fifo -o m-fifo &&
	$PYTHON - <<-\EOF
	import torch
	from safetensors.torch import load_file
	base = load_file("bf16/model.safetensors")
	ad = load_file("fifo/adapter_model.safetensors")
	ours = load_file("m-fifo/model.safetensors")
	for l in range(2):
	    for m in ("self_attn.q_proj", "self_attn.o_proj"):
	        k = "model.layers.%d.%s" % (l, m)
	        A = ad["base_model.model.%s.lora_A.weight" % k].float()
	        B = ad["base_model.model.%s.lora_B.weight" % k].float()
	        want = (base[k + ".weight"].float() + ((B @ A) * 2.0).T).to(torch.bfloat16)
	        d = (ours[k + ".weight"].float() - want.float()).abs()
	        ulp = torch.nextafter(want.abs(), torch.full_like(want, 1e9)).float() - want.abs().float()
	        assert (d <= ulp + 1e-7).all(), (k, d.max())
	EOF
'

test_done
