#!/bin/sh
# The frame format and the reader under it: C unit tests.
. "$(dirname "$0")/test-lib.sh"

test_expect_success 'frames and reader unit tests pass' '
	"$LP_BUILD/t/frames" >out &&
	! grep "^not ok" out &&
	grep -q "^1\.\." out
'
test_done
