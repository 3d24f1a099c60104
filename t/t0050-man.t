#!/bin/sh
# Every man page renders without warnings.
. "$(dirname "$0")/test-lib.sh"

command -v mandoc >/dev/null 2>&1 && test_set_prereq MANDOC
test_require MANDOC
for page in "$SRC_DIR"/man/man1/*.1 "$SRC_DIR"/man/man5/*.5; do
	test_expect_success "$(basename "$page") lints clean" "
		mandoc -Tlint -W warning \"$page\" >out 2>&1 &&
		test ! -s out
	"
done
test_expect_success 'every tool has a man page' '
	for t in "$SRC_DIR"/tools/*.c; do
		test -f "$SRC_DIR/man/man1/$(basename "$t" .c).1" || { echo "no page for $t"; return 1; }
	done
'
test_done
