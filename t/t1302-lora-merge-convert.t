#!/bin/sh
# lora-merge as a converter: Hugging Face <-> Meta .pth (params.json and
# consolidated.NN.pth, q/k permutation undone, shards split along Meta's
# axes), Meta -> HF against transformers' conversion rule, and GGUF read
# back by the gguf package (names, shapes, types, metadata, q/k permuted,
# q8_0 against gguf-py's quantizer).
. "$(dirname "$0")/test-lib.sh"

REF="$TEST_DIR/ref/merge_ref.py"
$PYTHON -c "import torch, transformers, peft, safetensors" 2>/dev/null &&
	test_set_prereq PY_PEFT
test_require PY_PEFT SPM_TRAIN
$PYTHON -c "import gguf, sentencepiece" 2>/dev/null && test_set_prereq PY_GGUF

mkref() { $PYTHON "$REF" "$@" 2>/dev/null; }

test_expect_success 'setup: models, a Meta checkpoint, an adapter' '
	make_spm_model tok bpe 800 &&
	mkref mkmodel gqa --vocab 800 --tokenizer tok.model &&
	mkref mkmodel q8 --vocab 800 --inter 192 --hidden 64 --heads 2 --kv-heads 2 \
		--seed 4 --tokenizer tok.model &&
	mkref mkmodel linear --vocab 800 --rope-scaling linear:2 --dtype f16 --seed 5 \
		--tokenizer tok.model &&
	mkref mkmodel tied --vocab 800 --tied --seed 6 --tokenizer tok.model &&
	mkref mkmodel deep --vocab 800 --hidden 16 --heads 2 --kv-heads 2 --inter 32 \
		--layers 112 --seed 7 &&
	mkref mkmeta meta --shards 2 --kv-heads 2 --vocab 800 --rope-freqs &&
	cp tok.model meta/tokenizer.model &&
	mkref mkadapter gqa ad --r 4 --alpha 8 --targets q_proj,k_proj,o_proj,down_proj \
		--save embed_tokens &&
	test -s ad/adapter_model.safetensors && test -s meta/consolidated.01.pth
'
test -s "$TRASH/ad/adapter_model.safetensors" || test_skip_all "setup failed"

test_expect_success 'HF -> pth: one shard, data.pkl as torch.save writes it' '
	lora-merge -q -M gqa -o pth1 --to pth &&
	ls pth1 >files &&
	printf "consolidated.00.pth\nparams.json\ntokenizer.model\n" >expect &&
	test_cmp expect files &&
	$PYTHON "$REF" checkpth pth1 gqa >out &&
	test_grep "1 shards, 21 tensors equal" out &&
	test_grep "\"n_kv_heads\": 2" pth1/params.json
'

test_expect_success 'HF -> pth -> HF gives the input back bit for bit' '
	lora-merge -q -M pth1 -o hf1 &&
	$PYTHON "$REF" compare hf1 gqa/model.safetensors --ulps 0 &&
	for k in hidden_size intermediate_size num_attention_heads num_key_value_heads \
		num_hidden_layers vocab_size rms_norm_eps max_position_embeddings; do
		grep "\"$k\"" gqa/config.json >a && grep "\"$k\"" hf1/config.json >b &&
		test_cmp a b || return 1
	done
'

test_expect_success 'bf16 -> f16 and f32: one rounding, as torch converts' '
	lora-merge -q -M gqa -o hf16 --dtype f16 &&
	mkref merge gqa ref16.safetensors --dtype f16 &&
	$PYTHON "$REF" compare hf16 ref16.safetensors --ulps 0 &&
	grep "\"dtype\": \"float16\"" hf16/config.json &&
	lora-merge -q -M hf16 -o hf32 --dtype f32 &&
	mkref merge hf16 ref32.safetensors --dtype f32 &&
	$PYTHON "$REF" compare hf32 ref32.safetensors --ulps 0
'

test_expect_success 'HF -> pth in two shards, split along Meta axes, and back' '
	lora-merge -q -M gqa -o pth2 --to pth --shards 2 &&
	$PYTHON "$REF" checkpth pth2 gqa >out &&
	test_grep "2 shards, 21 tensors equal" out &&
	lora-merge -q -M pth2 -o hf2 &&
	$PYTHON "$REF" compare hf2 gqa/model.safetensors --ulps 0
'

test_expect_success 'a state dict of over 1000 tensors pickles as torch does (SETITEMS batches)' '
	lora-merge -q -M deep -o pth-deep --to pth &&
	$PYTHON "$REF" checkpth pth-deep deep >out &&
	test_grep "1011 tensors equal" out
'

test_expect_success 'tied embeddings: Meta gets an output copy' '
	lora-merge -q -M tied -o pth-tied --to pth &&
	$PYTHON "$REF" checkpth pth-tied tied
'

test_expect_success 'Meta (2 shards, GQA, rope.freqs) -> HF equals transformers conversion rule' '
	lora-merge -q -M meta -o hfm &&
	mkref meta2hf meta ref-meta.safetensors &&
	$PYTHON "$REF" compare hfm ref-meta.safetensors --ulps 0 &&
	test -s hfm/tokenizer_config.json && test -s hfm/special_tokens_map.json &&
	cmp meta/tokenizer.model hfm/tokenizer.model &&
	$PYTHON - hfm <<-\EOF 2>/dev/null
	import sys, torch
	from transformers import AutoModelForCausalLM
	m = AutoModelForCausalLM.from_pretrained(sys.argv[1])
	c = m.config
	assert (c.hidden_size, c.num_key_value_heads, c.vocab_size, c.intermediate_size) == (64, 2, 800, 192), c
	m(torch.tensor([[1, 2, 3]]))
	EOF
'

test_expect_success 'merge into pth, then back: the same as merging into HF' '
	lora-merge -q -M gqa -A ad -o m-hf &&
	lora-merge -q -M gqa -A ad -o m-pth --to pth --shards 2 &&
	lora-merge -q -M m-pth -o m-back &&
	$PYTHON "$REF" compare m-back m-hf/model.safetensors --ulps 0
'

test_expect_success 'pth: what params.json cannot say is refused' '
	test_must_fail lora-merge -q -M linear -o pth-lin --to pth 2>err &&
	test_grep "rope scaling .linear. has no params.json form" err &&
	test_must_fail lora-merge -q -M gqa -o pth-3 --to pth --shards 3 2>err &&
	test_grep "3 shards cannot split 4 query and 2 key/value heads evenly" err &&
	test ! -e pth-lin && test ! -e pth-3
'

for t in bf16 f16 f32; do
	test_expect_success PY_GGUF "GGUF $t: names, shapes, types, metadata, data" "
		lora-merge -q -M gqa -o gqa.$t.gguf --to gguf --dtype $t &&
		\$PYTHON \"\$REF\" checkgguf gqa.$t.gguf gqa gqa/tokenizer.model $t
	"
done

test_expect_success PY_GGUF 'GGUF q8_0 equals gguf-py quantizer; rows of 172 fall back to f16' '
	lora-merge -q -M q8 -o q8.gguf --to gguf --dtype q8_0 &&
	$PYTHON "$REF" checkgguf q8.gguf q8 q8/tokenizer.model q8_0 &&
	lora-merge -q -M gqa -o gqa.q8.gguf --to gguf --dtype q8_0 2>err &&
	test_grep "blk.0.ffn_down.weight: 172 columns are not a multiple of 32: f16, not q8_0" err &&
	$PYTHON "$REF" checkgguf gqa.q8.gguf gqa gqa/tokenizer.model q8_0
'

test_expect_success PY_GGUF 'GGUF: the base dtype by default; linear rope scaling keys' '
	lora-merge -q -M linear -o linear.gguf --to gguf &&
	$PYTHON "$REF" checkgguf linear.gguf linear linear/tokenizer.model f16
'

test_expect_success PY_GGUF 'GGUF of a merged model equals GGUF of the merged HF model' '
	lora-merge -q -M gqa -A ad -o m.gguf --to gguf &&
	lora-merge -q -M m-hf -o m2.gguf --to gguf &&
	$PYTHON "$REF" checkgguf m.gguf m-hf m-hf/tokenizer.model bf16 &&
	$PYTHON "$REF" checkgguf m2.gguf m-hf m-hf/tokenizer.model bf16
'

test_expect_success PY_GGUF 'GGUF from a Meta checkpoint' '
	lora-merge -q -M meta -o meta.gguf --to gguf &&
	$PYTHON "$REF" checkgguf meta.gguf hfm meta/tokenizer.model bf16
'

test_expect_success 'GGUF needs a tokenizer' '
	test_must_fail lora-merge -q -M deep -o deep.gguf --to gguf 2>err &&
	test_grep "deep: no tokenizer.model for the GGUF vocabulary (give --tokenizer)" err &&
	test ! -e deep.gguf
'

test_done
