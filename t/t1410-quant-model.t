#!/bin/sh
# Quantized bases (--quantize nf4|fp4|int8) against bitsandbytes + PEFT:
# gen's forward, 10 steps of lora-train, PEFT loading our adapter on a
# bitsandbytes model, and lora-merge, on a small random model (hidden 64,
# 3 layers, 4 heads, 2 kv heads, intermediate 128, f32) whose rows are
# whole blocks of 64: bitsandbytes 0.50.2's native CPU dequantizer
# restarts blocks at each row, so its own forward is wrong otherwise.
# The reference loads the base through transformers' BitsAndBytesConfig
# (4-bit: double quantization, f32 compute; int8: LLM.int8, threshold 6).
#
# Tolerances (f32 on both sides; observed differences in brackets):
#   logits, 4-bit, vs bitsandbytes' Linear4bit model: both multiply the
#     same dequantized f32 weights, so as for unquantized models
#     1e-5 + 1e-4 |b|                                                  [2.4e-7]
#   logits, int8, vs bitsandbytes' LLM.int8 forward (activations rounded
#     to f16 and quantized row-wise, outlier columns >= 6.0 kept in 16
#     bits): 1e-5 + 1e-4 |b|                                           [2.1e-7]
#     and within 1% of bitsandbytes' own distance from a model of its
#     dequantized weights (so the activations really are quantized)   [2e-7 vs 5e-3]
#   first-step gradients and trained adapter after 10 steps (warm-up +
#     cosine, grad-accum 2, clipping 0.5, weight decay 0.1, lr 1e-3):
#     1e-6 + 1e-4 |b|; loss, grad_norm, lr of each step: relative 1e-5 [<= 7e-8]
#   lora-merge --quantize vs PEFT's dequantize_bnb_weight +
#     get_delta_weight (-d f32): 1 ulp beyond 8 f32 epsilons of the
#     tensor's largest value, as t1301 holds plain merges: the LoRA
#     product is summed in another order (BLAS by processor, or the
#     matrix-vector kernel for few rows)
. "$(dirname "$0")/test-lib.sh"

REF="$TEST_DIR/ref/train_ref.py"
QREF="$TEST_DIR/ref/quant_model_ref.py"
FRAMES="$LP_BUILD/t/train_frames"
LOGITS="$LP_BUILD/t/llama_logits"
$PYTHON -c "import torch, transformers, peft, safetensors, bitsandbytes" 2>/dev/null &&
	test_set_prereq BNB
export OMP_NUM_THREADS=2 OMP_WAIT_POLICY=passive

STEPS="-b 3 --grad-accum 2 --max-steps 10 --max-grad-norm 0.5 --lr 1e-3 --warmup-ratio 0.1 --weight-decay 0.1 --lr-schedule cosine"

test_expect_success BNB 'setup: a random model, an adapter, data' '
	$PYTHON "$REF" make m --hidden 64 --inter 128 >/dev/null 2>&1 &&
	"$FRAMES" <m/data.jsonl >m/data.frames &&
	printf "1 5 7 9 11 13\n3 4 200 17\n" >ids.txt
'

for q in nf4 fp4 int8; do
	test_expect_success BNB "$q: the forward is bitsandbytes'" "
		LLAMA_LOGITS_QUANTIZE=$q \"\$LOGITS\" m/base m/init <ids.txt >ours.$q &&
		\$PYTHON \"\$REF\" logits m/base m/init ids.txt --quantize $q >bnb.$q 2>/dev/null &&
		\$PYTHON \"\$REF\" logits m/base m/init ids.txt --quantize $q --dequantized \
			>deq.$q 2>/dev/null &&
		\$PYTHON \"\$REF\" cmp ours.$q bnb.$q 1e-5 1e-4
	"
done

test_expect_success BNB 'nf4, fp4: the dequantized weights; int8: LLM.int8, not them' '
	$PYTHON "$REF" cmp ours.nf4 deq.nf4 1e-5 1e-4 &&
	$PYTHON "$REF" cmp ours.fp4 deq.fp4 1e-5 1e-4 &&
	$PYTHON "$QREF" within ours.int8 bnb.int8 deq.int8 0.01
'

for q in nf4 fp4 int8; do
	test_expect_success BNB "$q: 10 LoRA steps equal PEFT's on a bitsandbytes base" "
		lora-train -M m/base --quantize $q --init m/init -o out.$q --no-shuffle $STEPS \
			--data m/data.frames --dump-grads grads.$q >ours.$q.jsonl 2>err.$q &&
		test_grep \"base Linear weights in $q\" err.$q &&
		test_line_count = 10 ours.$q.jsonl &&
		\$PYTHON \"\$REF\" train m ref.$q $STEPS --quantize $q >ref.$q.out 2>&1 &&
		\$PYTHON \"\$REF\" cmp grads.$q/adapter_model.safetensors ref.$q/grads.safetensors 1e-6 1e-4 &&
		\$PYTHON \"\$REF\" cmplog ours.$q.jsonl ref.$q/log.jsonl 1e-5 &&
		\$PYTHON \"\$REF\" cmp out.$q/adapter_model.safetensors ref.$q/adapter_model.safetensors 1e-6 1e-4
	"
done

test_expect_success BNB 'PEFT loads our nf4-trained adapter on a bitsandbytes base, same logits' '
	LLAMA_LOGITS_QUANTIZE=nf4 "$LOGITS" m/base out.nf4 <ids.txt >ours.trained &&
	$PYTHON "$REF" logits m/base out.nf4 ids.txt --quantize nf4 >bnb.trained 2>/dev/null &&
	$PYTHON "$REF" cmp ours.trained bnb.trained 1e-5 1e-4
'

for q in nf4 fp4 int8; do
	test_expect_success BNB "$q: lora-merge --quantize is PEFT's merge on the dequantized base" "
		lora-merge -M m/base -A out.$q --quantize $q -d f32 -o merged.$q -q &&
		\$PYTHON \"\$QREF\" merge m/base out.$q $q mref.$q.safetensors >mref.$q.log 2>&1 &&
		grep -q \"^# 21 merged weights\" mref.$q.log &&
		\$PYTHON \"\$QREF\" equal merged.$q/model.safetensors mref.$q.safetensors
	"
done

test_expect_success BNB 'unadapted tensors are copied, adapted ones are not the base' '
	$PYTHON - m/base/model.safetensors merged.nf4/model.safetensors <<-\EOF
	import sys, torch
	from safetensors.torch import load_file
	base, ours = load_file(sys.argv[1]), load_file(sys.argv[2])
	assert torch.equal(base["model.norm.weight"], ours["model.norm.weight"])
	assert torch.equal(base["model.embed_tokens.weight"], ours["model.embed_tokens.weight"])
	k = "model.layers.0.self_attn.q_proj.weight"
	assert not torch.equal(base[k], ours[k])
	EOF
'

test_expect_success BNB 'a model bitsandbytes saved quantized is refused, naming a tensor' '
	$PYTHON - "$TEST_DIR/ref" <<-\EOF &&
	import sys
	sys.path.insert(0, sys.argv[1])
	import train_ref
	train_ref.load_base("m/base", ["--quantize", "nf4"]).save_pretrained("saved-nf4")
	EOF
	test_must_fail lora-train -M saved-nf4 --quantize nf4 -o x --data m/data.frames 2>err &&
	test_grep "saved-nf4: model.layers.0.self_attn.q_proj.weight: shape" err &&
	test_line_count = 1 err
'

test_expect_success 'bad --quantize values and --full are refused' '
	test_must_fail lora-train -M m/base -o x --quantize q3 </dev/null 2>err &&
	test_grep "quantize" err &&
	test_must_fail lora-train -M m/base -o x --full --quantize nf4 </dev/null 2>err &&
	test_grep "quantize" err &&
	test_must_fail gen -M m/base --quantize nf5 </dev/null 2>err &&
	test_grep "nf5" err &&
	test_must_fail lora-merge -M m/base -o x --quantize 4bit 2>err &&
	test_grep "4bit" err
'
test_done
