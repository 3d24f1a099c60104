#!/bin/sh
# The experiment recipes on tiny inputs made here: chinese-llama.mk runs
# convert -> expand vocabulary -> LoRA pre-train -> SFT -> merge, gen answers
# with the merged model, and a second run does nothing; msra-ner.mk tunes
# and scores. Few training steps: this checks the plumbing, not learning.
. "$(dirname "$0")/test-lib.sh"

command -v spm_export_vocab >/dev/null 2>&1 && test_set_prereq SPM_TOOLS
test_require SPM_TOOLS
DATA=$SRC_DIR/testdata/demo
MK="make --no-print-directory -C $SRC_DIR BIN=$LP_BIN"

test_expect_success 'tiny base model, Chinese tokenizer, texts' '
	$PYTHON "$TEST_DIR/ref/tiny_model.py" model base vocab=500 hidden=32 layers=2 \
		heads=4 kv=2 inter=64 max_pos=512 &&
	cp "$DATA/base.model" base/tokenizer.model &&
	head -n 40 "$DATA/zh-corpus.txt" >pt.txt &&
	spm_train --input="$DATA/zh-corpus.txt" --model_prefix=zh --vocab_size=1000 \
		--model_type=bpe --character_coverage=1.0 --minloglevel=2 >/dev/null 2>&1 &&
	for i in 1 2 3 4 5 6; do
		echo "{\"instruction\":\"把这句话重复一遍\",\"input\":\"第$i句\",\"output\":\"第$i句\"}"
	done >sft.jsonl
'

test_expect_success 'chinese-llama.mk: every stage, then the merged model answers' '
	$MK -f pipelines/chinese-llama.mk BASE=$TRASH/base ZH_MODEL=$TRASH/zh.model \
		PT_TEXT=$TRASH/pt.txt SFT_DATA=$TRASH/sft.jsonl OUT=$TRASH/cl BLOCK_SIZE=64 \
		MAX_LEN=256 DTYPE=f32 TRAIN_FLAGS="--max-steps 2" >log 2>&1 &&
	test -f cl/merged/config.json &&
	test "$(spm_export_vocab --model=cl/merged/tokenizer.model | wc -l)" -gt 500 &&
	echo "{\"instruction\":\"你好\"}" | gen -q -M cl/merged --max-new-tokens 4 >out &&
	jq -e ".tokens == 4" out
'

test_expect_success 'chinese-llama.mk: a second run does nothing' '
	$MK -f pipelines/chinese-llama.mk BASE=$TRASH/base ZH_MODEL=$TRASH/zh.model \
		PT_TEXT=$TRASH/pt.txt SFT_DATA=$TRASH/sft.jsonl OUT=$TRASH/cl BLOCK_SIZE=64 \
		MAX_LEN=256 DTYPE=f32 TRAIN_FLAGS="--max-steps 2" -q
'

test_expect_success 'msra-ner.mk: tune, answer the held-out split, score' '
	head -n 60 "$DATA/ner-train.jsonl" >ner.jsonl &&
	$MK -f pipelines/msra-ner.mk MODEL=$TRASH/cl/merged MSRA=$TRASH/ner.jsonl \
		OUT=$TRASH/ner DEV_RATIO=0.2 MAX_LEN=256 MAX_NEW=8 \
		TRAIN_FLAGS="--max-steps 2" >log 2>&1 &&
	jq -e "has(\"f1\") and has(\"precision\") and has(\"recall\")" ner/f1.json
'
test_done
