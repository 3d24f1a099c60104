#!/bin/sh
# gpu-ops (t/gpu/ops.c), the CUDA-against-CPU op checker: its CPU self-check
# runs everywhere (every op forward and backward, f32 and bf16 with the
# "device" outputs rounded to bf16 so the per-element ulp checks run);
# on a machine without a GPU, asking for CUDA fails with one line, in
# gpu-ops, lora-train and gen alike.
. "$(dirname "$0")/test-lib.sh"

GPU_OPS="$LP_BUILD/t/gpu-ops"
FRAMES="$LP_BUILD/t/train_frames"
export OMP_NUM_THREADS=2
test -x "$GPU_OPS" || test_skip_all "no $GPU_OPS (make builds it)"
nvidia-smi -L >/dev/null 2>&1 || test_set_prereq NOGPU

# one_line_error FILE PREFIX: FILE is exactly one line, starting with PREFIX
one_line_error() {
	test "$(wc -l <"$1")" = 1 || { echo "not one line:" >&2; cat "$1" >&2; return 1; }
	case "$(cat "$1")" in "$2"*) ;; *) echo "want '$2...', got:" >&2; cat "$1" >&2; return 1 ;; esac
}

test_expect_success 'cpu self-check: every op forward and backward, f32 and bf16' '
	"$GPU_OPS" --device cpu --quick >out.tap 2>err &&
	! grep "^not ok" out.tap &&
	n=$(grep -c "^ok" out.tap) &&
	test "$n" -gt 150 &&
	grep -q "^1\.\.$n\$" out.tap &&
	for op in embedding_backward rmsnorm_backward matmul_backward rope_backward \
		attention_backward swiglu_backward dropout_forward dropout_backward \
		sumsq_f32 scale_f32 adamw_f32 attention_cached cross_entropy; do
		grep -q "^ok [0-9]* - $op .*act=f32" out.tap || { echo "no f32 $op" >&2; return 1; }
	done &&
	grep -q "^ok [0-9]* - attention_backward .*act=bf16: .* ulps (allowed 2)" out.tap &&
	grep -q "^# op  *shape .*ulps  *median_us" out.tap
'

test_expect_success 'bf16 outputs rounded once are within half an ulp of the f32 reference' '
	grep "act=bf16: .* ulps" out.tap >bf16 &&
	test -s bf16 &&
	! awk "{ for (i = 1; i < NF; i++) if (\$(i + 1) == \"ulps\" && \$i + 0 > 0.5) bad = 1 }
		END { exit !bad }" bf16
'

test_expect_success '--op runs one op only' '
	"$GPU_OPS" --device cpu --quick --op adamw_f32 >one.tap &&
	test "$(grep -c "^ok" one.tap)" = 3 &&
	! grep "^ok .* - [a-z_]* " one.tap | grep -v " - adamw_f32 "
'

test_expect_success 'a bad --device is a usage error' '
	{ "$GPU_OPS" --device tpu 2>err; test $? = 2; } &&
	test_grep "tpu" err
'

test_expect_success NOGPU '--device cuda without a GPU fails with one line' '
	test_must_fail "$GPU_OPS" --device cuda >out 2>err &&
	one_line_error err "gpu-ops: --device cuda: " &&
	! grep "^ok\|^1\.\." out
'

test_expect_success NOGPU 'lora-train and gen --device cuda without a GPU fail with one line' '
	cat >config.json <<-\EOF &&
	{"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 32,
	 "intermediate_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
	 "num_hidden_layers": 1, "vocab_size": 50, "max_position_embeddings": 64,
	 "rms_norm_eps": 1e-6, "tie_word_embeddings": false}
	EOF
	echo "{\"input_ids\":[1,2,3,4,5,6]}" | "$FRAMES" >pt.frames &&
	lora-train --from-scratch config.json -o base --max-steps 1 <pt.frames >/dev/null &&
	for dt in bf16 f32; do
		test_must_fail lora-train -M base -o a.$dt --device cuda --dtype $dt --max-steps 1 \
			<pt.frames >out 2>err &&
		one_line_error err "lora-train: --device cuda: " &&
		test ! -e a.$dt/adapter_model.safetensors || return 1
	done &&
	echo "{\"prompt\":\"x\"}" | test_must_fail gen -M base --device cuda >out 2>err &&
	one_line_error err "gen: --device cuda: " &&
	test ! -s out
'
test_done
