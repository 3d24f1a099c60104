#!/bin/sh
# Quantized frozen weights (NF4, FP4 with double quantization; int8):
# kernel unit tests, and bytes against bitsandbytes (t/ref/quant_bnb.py).
. "$(dirname "$0")/test-lib.sh"

$PYTHON -c 'import torch, bitsandbytes' 2>/dev/null && test_set_prereq BNB

for n in 1 2; do
	test_expect_success "quantized-weight unit tests pass with $n thread(s)" "
		OMP_NUM_THREADS=$n \"\$LP_BUILD/t/quant\" >out.$n &&
		! grep '^not ok' out.$n &&
		grep -q '^1\.\.' out.$n
	"
done

test_expect_success 'unit test results do not depend on the thread count' '
	test_cmp out.1 out.2
'

for t in nf4 fp4 int8; do
	test_expect_success BNB "$t: bitsandbytes' bytes, dequantization and matmuls" "
		mkdir -p work-$t &&
		\$PYTHON \"\$SRC_DIR/t/ref/quant_bnb.py\" \"\$LP_BUILD/t/quant\" work-$t $t >tap.$t &&
		! grep '^not ok' tap.$t
	"
done

test_expect_success 'a bad quantization request fails with a message' '
	printf "\0\0\0\0" >w.bin &&
	test_must_fail "$LP_BUILD/t/quant" q nf4 48 0 f32 1 1 w.bin . 2>err &&
	test_grep "block size 48" err
'
test_done
