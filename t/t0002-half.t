#!/bin/sh
# f16/bf16 conversions used by loaders, converters and the CPU backend.
. "$(dirname "$0")/test-lib.sh"

test_expect_success 'half-precision conversion unit tests pass' '
	"$LP_BUILD/t/half" >out &&
	! grep "^not ok" out &&
	grep -q "^1\.\." out
'
test_done
