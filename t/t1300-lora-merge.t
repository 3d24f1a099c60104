#!/bin/sh
# lora-merge: options, and bad input named in one clear line: a missing
# base, an unknown format, adapters that do not fit the base (the tensor
# and both shapes), a vocabulary that does not fit the tokenizer (who, and
# by how much).
. "$(dirname "$0")/test-lib.sh"

REF="$TEST_DIR/ref/merge_ref.py"
$PYTHON -c "import torch, transformers, peft" 2>/dev/null && test_set_prereq PY_PEFT

test_expect_success 'unit tests: torch.save writer, config.json edits, atomic directory' '
	"$LP_BUILD/t/merge_io" >unit.out &&
	! grep "^not ok" unit.out &&
	test_grep "^1\.\.13$" unit.out
'

test_expect_success '--help prints usage to stdout' '
	lora-merge --help >help &&
	test_grep "^usage: lora-merge" help &&
	test_grep -- "--shard-size" help
'

test_expect_success 'no -M and no LLAMAPIPE_MODEL: usage error naming both' '
	test_must_fail lora-merge -o out1 2>err &&
	test_grep "give -M/--model or set LLAMAPIPE_MODEL" err &&
	test ! -e out1
'

test_expect_success 'exit status 2 for usage errors' '
	lora-merge -o out 2>err; test $? = 2
'

test_expect_success 'unknown --to is refused' '
	test_must_fail lora-merge -M base --to safetensors -o out 2>err &&
	test_grep "lora-merge: --to: .safetensors. is not one of hf, pth, gguf" err
'

test_expect_success 'bad --dtype, q8_0 outside gguf, bad --shard-size' '
	test_must_fail lora-merge -M base -o out --dtype f64 2>err &&
	test_grep "is not one of f16, bf16, f32, q8_0" err &&
	test_must_fail lora-merge -M base -o out --dtype q8_0 2>err &&
	test_grep "q8_0 is for --to gguf only" err &&
	test_must_fail lora-merge -M base -o out --shard-size 5XB 2>err &&
	test_grep "is not a size such as 5GB" err
'

test_expect_success 'no output is a usage error' '
	test_must_fail lora-merge -M base 2>err &&
	test_grep "give -o/--output" err
'

test_expect_success 'a base that is not a model directory is named' '
	mkdir empty &&
	test_must_fail lora-merge -M empty -o out1 2>err &&
	test_grep "^lora-merge: empty: no model here" err &&
	test_must_fail env LLAMAPIPE_MODEL=nowhere lora-merge -o out1 2>err &&
	test_grep "^lora-merge: nowhere: " err &&
	test ! -e out1
'

test_expect_success SPM_TRAIN 'setup: tokenizers of 800 and 820 pieces' '
	make_spm_model tok bpe 800 &&
	make_spm_model tok820 bpe 820 &&
	test -s tok.model && test -s tok820.model
'

test_expect_success PY_PEFT,SPM_TRAIN 'setup: a tiny model, and adapters for it and for another shape' '
	$PYTHON "$REF" mkmodel base --vocab 800 --tokenizer tok.model 2>/dev/null &&
	$PYTHON "$REF" mkmodel mha --vocab 800 --kv-heads 4 2>/dev/null &&
	$PYTHON "$REF" mkadapter mha ad-mha --targets q_proj,v_proj 2>/dev/null &&
	$PYTHON "$REF" mkadapter base ad-vocab --save embed_tokens,lm_head --vocab 801 \
		2>/dev/null &&
	test -s base/model.safetensors && test -s ad-mha/adapter_model.safetensors
'
test -s "$TRASH/ad-vocab/adapter_model.safetensors" && test_set_prereq MODELS

test_expect_success MODELS 'LLAMAPIPE_MODEL is the default base' '
	LLAMAPIPE_MODEL=base lora-merge -q -o out &&
	test -s out/model.safetensors &&
	test_must_fail lora-merge -M nowhere -o out2 2>err &&
	test_grep "^lora-merge: nowhere: " err
'

test_expect_success MODELS 'an adapter for another shape: the tensor and both shapes' '
	test_must_fail lora-merge -M base -A ad-mha -o out3 2>err &&
	test_grep "ad-mha: model.layers.[01].self_attn.v_proj: lora_B is (64, 4), the weight is (32, 64)" err &&
	test_line_count = 1 err &&
	test ! -e out3
'

test_expect_success MODELS 'a resized vocabulary must fit the tokenizer' '
	test_must_fail lora-merge -M base -A ad-vocab -o out3 2>err &&
	test_grep "adapter ad-vocab: embed_tokens has 801 rows, tokenizer base/tokenizer.model has 800 pieces (1 too many)" err &&
	test_must_fail lora-merge -M base -A ad-vocab -o out3 --tokenizer tok820.model 2>err &&
	test_grep "embed_tokens has 801 rows, tokenizer tok820.model has 820 pieces (19 too few)" err &&
	test ! -e out3
'

test_expect_success MODELS 'a tokenizer that does not fit the base is refused' '
	test_must_fail lora-merge -M base -o out3 --tokenizer tok820.model 2>err &&
	test_grep "model base: embed_tokens has 800 rows, tokenizer tok820.model has 820 pieces" err
'

test_expect_success MODELS 'an added token in tokenizer_config.json counts' '
	cp -r base base-pad &&
	cat >base-pad/added_tokens.json <<-\EOF &&
	{"[PAD]": 800}
	EOF
	lora-merge -q -M base-pad -A ad-vocab -o out4 &&
	grep "\"vocab_size\": 801" out4/config.json &&
	test_cmp base-pad/added_tokens.json out4/added_tokens.json
'

test_expect_success MODELS 'a whole weight outside modules_to_save is refused' '
	cp -r ad-vocab ad-bad &&
	sed "s/\"embed_tokens\",/\"wte\",/" ad-vocab/adapter_config.json >ad-bad/adapter_config.json &&
	test_must_fail lora-merge -M base -A ad-bad -o out5 --tokenizer tok.model 2>err &&
	test_grep "is a whole weight, but .embed_tokens. is not in modules_to_save" err
'

test_expect_success MODELS 'an adapter directory without adapter_config.json' '
	mkdir ad-none &&
	test_must_fail lora-merge -M base -A ad-none -o out5 2>err &&
	test_grep "ad-none: adapter_config.json" err
'

test_expect_success MODELS 'an existing output is refused, replaced with --force' '
	mkdir out6 && echo keep >out6/file &&
	test_must_fail lora-merge -q -M base -o out6 2>err &&
	test_grep "out6: exists (remove it first, or use --force)" err &&
	test -f out6/file &&
	lora-merge -q -M base -o out6 --force &&
	test ! -e out6/file && test -s out6/model.safetensors &&
	test -z "$(ls -a | grep "^\.out6\.")"
'

test_done
