#!/bin/sh
# The CPU backend's matrix-vector kernel, bf16 and f32 weights: every
# variant this CPU can run against the conversion path and an exact
# reference (t/unit/matvec.c states the bounds),
# and the run-time choice of variant.
. "$(dirname "$0")/test-lib.sh"

for n in 1 2; do
	test_expect_success "every variant the CPU runs is within bounds ($n thread(s))" "
		OMP_NUM_THREADS=$n \"\$LP_BUILD/t/matvec\" >out.$n &&
		! grep '^not ok' out.$n &&
		grep -q '^1\.\.' out.$n &&
		grep -q '^ok .* scalar: ' out.$n
	"
done

test_expect_success 'results do not depend on the number of threads' '
	grep "worst" out.1 >w.1 && grep "worst" out.2 >w.2 &&
	test_cmp w.1 w.2
'

test_expect_success 'LP_CPU_MATVEC picks a variant; scalar runs anywhere' '
	LP_CPU_MATVEC=scalar "$LP_BUILD/t/matvec" --name >name &&
	echo scalar >expect &&
	test_cmp expect name
'

test_expect_success 'without LP_CPU_MATVEC the best supported variant is used' '
	"$LP_BUILD/t/matvec" --name >name &&
	best=$(grep -v "SKIP" out.1 | sed -n "s/^ok [0-9]* - \([a-z0-9]*\): .*/\1/p" | head -n 1) &&
	echo "$best" >expect &&
	test_cmp expect name
'

test_expect_success 'an unknown LP_CPU_MATVEC is a clean error' '
	test_must_fail env LP_CPU_MATVEC=neon "$LP_BUILD/t/matvec" 2>err &&
	test_grep "LP_CPU_MATVEC: .neon. is not" err
'
test_done
