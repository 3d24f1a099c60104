#!/bin/sh
# The CPU backend of kernels.h: every op against double-precision references,
# finite differences, and the same results whatever the number of threads.
. "$(dirname "$0")/test-lib.sh"

$PYTHON -c 'import torch, numpy' 2>/dev/null && test_set_prereq TORCH

for n in 1 2 3 8; do
	test_expect_success "kernel unit tests pass with $n thread(s)" "
		OMP_NUM_THREADS=$n \"\$LP_BUILD/t/kernels_cpu\" >out.$n 2>err.$n &&
		! grep '^not ok' out.$n &&
		grep -q '^1\.\.' out.$n &&
		grep -q 'cpu ($n thread' err.$n
	"
done

test_expect_success 'results are bitwise the same with 1, 2, 3 and 8 threads' '
	grep -c "^# digest" out.1 >count &&
	test "$(cat count)" -gt 50 &&
	test_cmp out.1 out.2 &&
	test_cmp out.1 out.3 &&
	test_cmp out.1 out.8
'

# t/ref/kernels_torch.py recomputes some ops with torch as Hugging Face's
# LLaMA code does (rmsnorm, rope, eager attention with GQA and padding,
# silu, cross-entropy, linear, bf16/f16 casts, AdamW) with gradients by
# autograd; the casts must agree bit for bit, AdamW to 1 ulp a step (torch's
# sqrt is not correctly rounded on every processor; see the script).
test_expect_success TORCH 'ops agree with PyTorch' '
	mkdir dump &&
	"$LP_BUILD/t/kernels_cpu" torch-dump dump &&
	$PYTHON "$SRC_DIR/t/ref/kernels_torch.py" dump
'

test_expect_success 'torch-dump into a missing directory fails cleanly' '
	test_must_fail "$LP_BUILD/t/kernels_cpu" torch-dump no/such/dir 2>err &&
	test_grep "no/such/dir" err
'
test_done
