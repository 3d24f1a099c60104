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
test_expect_success 'every page carries the same date' '
	sed -n "1s/^\.Dd //p" "$SRC_DIR"/man/man1/*.1 "$SRC_DIR"/man/man5/*.5 | sort -u >dates &&
	test_line_count = 1 dates
'

command -v man >/dev/null 2>&1 && command -v groff >/dev/null 2>&1 && test_set_prereq MAN
for page in "$SRC_DIR"/man/man1/*.1 "$SRC_DIR"/man/man5/*.5; do
	test_expect_success MAN "$(basename "$page") renders through man(1) without troff warnings" "
		MANWIDTH=80 man --warnings -l \"$page\" >out 2>err &&
		test ! -s err || { cat err; false; }
	"
	test_expect_success "$(basename "$page"): parentheses balance in every paragraph (an interval's [ or ] counts)" "
		mandoc -Tutf8 \"$page\" | col -b | awk -v RS= '
			{ gsub(/‘[^’]*’/, \"\"); n = gsub(/[[(]/, \"&\"); m = gsub(/[])]/, \"&\"); if (n != m) { print; bad = 1 } }
			END { exit bad }'
	"
done
test_done
