#!/bin/sh
# pipelines/bench/gpu.sh, the one call a GPU turn makes, run here with
# --device cpu and tiny shapes: every step (gpu-ops, the loss curves of 20
# steps, gen's greedy tokens, the transformers + PEFT side through
# gpu_bench.py, our training and decoding, the results table) runs, so the
# script is known to work before a GPU runs it. The figures mean nothing.
. "$(dirname "$0")/test-lib.sh"

$PYTHON -c 'import torch, transformers, peft' 2>/dev/null ||
	test_skip_all "$PYTHON lacks torch, transformers or peft"
export OMP_NUM_THREADS=2

test_expect_success 'gpu.sh --device cpu runs every step and writes the table' '
	OUT=$PWD/out RESULTS_DIR=$PWD/res sh "$SRC_DIR/pipelines/bench/gpu.sh" --device cpu \
		>log 2>&1 &&
	res=$(ls res/gpu-*-cpu.md) &&
	test -f "out/$(basename "$res")" &&
	grep -q "^| gpu-ops .* | [1-9][0-9]* passed, 0 failed |" "$res" &&
	grep -q "worst relative difference: f32 0 (allowed 1e-3)" "$res" &&
	grep -q "f32 tokens equal to the CPU.s: True" "$res" &&
	grep -q "^| lora-train --device cpu (f32) | [1-9][0-9]* | [0-9.]*% |" "$res" &&
	grep -q "^| transformers + PEFT (bf16, sdpa) | [1-9][0-9]* |" "$res" &&
	grep -q "^| gen --device cpu (f32) | [0-9.]* |" "$res" &&
	grep -q "^| gen --device cpu, LP_CUDA_GRAPH=1 (same tokens: yes) |" "$res" &&
	grep -q "^| transformers generate (bf16) | [0-9.]* |" "$res" &&
	! grep -q FAILED out/summary.txt
'

test_expect_success 'gpu.sh rejects a bad --device' '
	{ sh "$SRC_DIR/pipelines/bench/gpu.sh" --device tpu 2>err; test $? = 2; } &&
	test_grep "tpu" err
'
test_done
