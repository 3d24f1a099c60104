#!/bin/sh
# Replays each fuzz target's seed corpus (t/fuzz/corpus/NAME/) and every
# prefix of each seed through the parser: no crash, no sanitizer report.
. "$(dirname "$0")/test-lib.sh"

for dir in "$TEST_DIR"/fuzz/corpus/*/; do
	name=$(basename "$dir")
	test_expect_success "fuzz target $name replays its corpus" "
		\"$LP_BUILD/t/fuzz-$name\" \"$dir\"
	"
done
test_done
