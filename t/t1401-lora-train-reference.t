#!/bin/sh
# lora-train against transformers' Trainer + PEFT on small random models
# (hidden 48, 3 layers, 4 heads, 2 kv heads, f32), data in file order
# (--no-shuffle; the Trainer with its sequential sampler), dropout 0, from
# an adapter PEFT saved with B != 0.
#
# Tolerances (fp32 on both sides; observed differences in brackets):
#   first-step gradients of every trained tensor: |a-b| <= 1e-6 + 1e-4 |b|  [<= 3e-8]
#   loss, grad_norm, lr, epoch of each of 20 steps: relative 1e-5           [~1e-7]
#   trained tensors after 20 steps (warm-up + cosine, grad-accum 2,
#   clipping at 0.5, weight decay 0.1, lr 1e-3): |a-b| <= 1e-6 + 1e-4 |b|   [<= 2e-7]
#   logits of PEFT on our adapter vs our forward: 1e-5 + 1e-4 |b|          [~2e-7]
. "$(dirname "$0")/test-lib.sh"

REF="$TEST_DIR/ref/train_ref.py"
FRAMES="$LP_BUILD/t/train_frames"
LOGITS="$LP_BUILD/t/llama_logits"
$PYTHON -c "import torch, transformers, peft, safetensors" 2>/dev/null && test_set_prereq PY_TRAIN
# passive waiting: libgomp's spinning makes a loaded machine 20x slower
export OMP_NUM_THREADS=2 OMP_WAIT_POLICY=passive

STEPS="-b 3 --grad-accum 2 --max-steps 20 --max-grad-norm 0.5 --lr 1e-3 --warmup-ratio 0.1 --weight-decay 0.1 --lr-schedule cosine"

# case NAME MAKEARGS OURARGS REFARGS: make the model, train both ways
run_case() {
	$PYTHON "$REF" make "$1" $2 >/dev/null 2>&1 &&
	"$FRAMES" <"$1/data.jsonl" >"$1/data.frames" &&
	lora-train -M "$1/base" $3 -o "$1/out" --no-shuffle $STEPS --data "$1/data.frames" \
		--dump-grads "$1/grads" >"$1/ours.jsonl" &&
	test_line_count = 20 "$1/ours.jsonl" &&
	$PYTHON "$REF" train "$1" "$1/ref" $STEPS $4 >"$1/ref.out" 2>&1
}

# check NAME FILE: gradients, per-step log, trained tensors
check_case() {
	$PYTHON "$REF" cmp "$1/grads/$2" "$1/ref/grads.safetensors" 1e-6 1e-4 &&
	$PYTHON "$REF" cmplog "$1/ours.jsonl" "$1/ref/log.jsonl" 1e-5 &&
	$PYTHON "$REF" cmp "$1/out/$2" "$1/ref/$2" 1e-6 1e-4
}

test_expect_success PY_TRAIN 'pre-training blocks: gradients, 20 steps, adapter' '
	run_case pt "" "--init pt/init" "" &&
	check_case pt adapter_model.safetensors
'

test_expect_success PY_TRAIN 'PEFT loads the adapter, and gives our logits' '
	$PYTHON "$REF" loadcheck pt/base pt/out &&
	printf "1 5 9 200 7 3 0 12\n4 4 4\n" >ids.txt &&
	"$LOGITS" pt/base pt/out <ids.txt >ours.logits &&
	$PYTHON "$REF" logits pt/base pt/out ids.txt >ref.logits 2>/dev/null &&
	test_line_count = 11 ref.logits &&
	$PYTHON "$REF" cmp ours.logits ref.logits 1e-5 1e-4
'

test_expect_success PY_TRAIN 'instruction data (-100 labels, right padding, a short last step)' '
	run_case sft "--sft --records 14" "--init sft/init" "" &&
	check_case sft adapter_model.safetensors &&
	test_grep "\"epoch\":6.8," sft/ours.jsonl
'

test_expect_success PY_TRAIN 'modules_to_save embed_tokens,lm_head on a resized vocabulary' '
	run_case save "--sft --save --resize 310" "--init save/init" "" &&
	check_case save adapter_model.safetensors &&
	$PYTHON "$REF" loadcheck save/base save/out &&
	printf "1 305 309 20 7\n" >ids2.txt &&
	"$LOGITS" save/base save/out <ids2.txt >ours2.logits &&
	$PYTHON "$REF" logits save/base save/out ids2.txt >ref2.logits 2>/dev/null &&
	$PYTHON "$REF" cmp ours2.logits ref2.logits 1e-5 1e-4
'

test_expect_success PY_TRAIN 'a subset of targets, tied embeddings saved as two copies' '
	run_case tied "--tied --save --targets q_proj,v_proj,down_proj" "--init tied/init" "" &&
	check_case tied adapter_model.safetensors
'

test_expect_success PY_TRAIN '--full: every weight, the pad row of the embedding frozen' '
	run_case full "" "--full" "--full" &&
	grep -q "\\b0," full/data.jsonl &&
	check_case full model.safetensors
'

test_expect_success PY_TRAIN '--full on a tied model (one tensor, two gradients)' '
	run_case fulltied "--tied --sft" "--full" "--full" &&
	check_case fulltied model.safetensors
'

test_expect_success PY_TRAIN 'a fresh adapter (PEFT init, B = 0) loads in PEFT' '
	lora-train -M pt/base -o fresh --max-steps 2 -r 4 --alpha 8 \
		--targets q_proj,up_proj --data pt/data.frames >/dev/null &&
	$PYTHON "$REF" loadcheck pt/base fresh &&
	$PYTHON - <<-\EOF
	import json
	ours = json.load(open("fresh/adapter_config.json"))
	peft = json.load(open("pt/init/adapter_config.json"))
	assert sorted(ours) == sorted(peft), set(ours) ^ set(peft)
	assert ours["r"] == 4 and ours["lora_alpha"] == 8 and ours["task_type"] == "CAUSAL_LM"
	assert ours["target_modules"] == ["q_proj", "up_proj"], ours["target_modules"]
	assert ours["peft_type"] == "LORA" and ours["bias"] == "none"
	EOF
'

test_done
