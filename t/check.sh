#!/bin/sh
# check.sh [PROVE-ARG...]: the test run of `make check`, after the build:
# prove over t/ (or what the arguments name) with the reference venv's
# Python, then a summary: how many tests ran, how many of them compared
# with a reference, how many were skipped and why. Exits with prove's
# status.
#
#   LP_VENV   the reference venv (default build/venv): $PYTHON is its
#             bin/python when that is there, python3 otherwise
#   CI=true or STRICT=1   strict mode (t/prereqs.sh): a missing
#             prerequisite fails the test that needs it
#
# The summary lines start with "check:" and come after prove's closing
# lines, so "Files=..." and "Result: ..." stay prove's last lines.
ROOT=$(cd "$(dirname "$0")/.." && pwd) || exit 1
. "$ROOT/t/prereqs.sh"
: "${LP_VENV:=$ROOT/build/venv}"
: "${LP_BIN:=$ROOT/bin}"
: "${LP_BUILD:=$ROOT/build/release}"
if [ -x "$LP_VENV/bin/python" ]; then
	PYTHON=$(cd "$LP_VENV/bin" && pwd)/python
else
	PYTHON=python3
fi
LP_TEST_RESULTS=$(mktemp -d "${TMPDIR:-/tmp}/lp-check.XXXXXX") || exit 1
export LP_BIN LP_BUILD PYTHON LP_TEST_RESULTS
if [ $# = 0 ]; then
	if [ "$(pwd)" = "$ROOT" ]; then set -- -r -j2 t/; else set -- -r -j2 "$ROOT/t/"; fi
fi
prove "$@"
rc=$?

R=$LP_TEST_RESULTS
cat "$R"/* >"$R.all" 2>/dev/null
# count PATTERN: lines of the results that match
count() { grep -c "$1" "$R.all"; }
# reasons PREFIX: "REASON (N); ..." for the lines that start with PREFIX
reasons() {
	sed -n "s/^$1 //p" "$R.all" | sort | uniq -c |
		awk '{ n = $1; sub(/^ *[0-9]+ /, ""); printf "%s%s (%d)", sep, $0, n; sep = "; " }'
}
run=$(count '^run')
ref=$(count '^run ref$')
skip=$(count '^skip ')
fskip=$(count '^skip-file ')
fail=$(count '^fail')
echo "check: $run tests ran, $ref of them compared with a reference (python: $PYTHON)"
if [ "$skip" = 0 ]; then
	echo "check: 0 tests skipped"
else
	echo "check: $skip tests skipped: $(reasons skip)"
fi
[ "$fskip" = 0 ] || echo "check: $fskip files skipped whole: $(reasons skip-file)"
[ "$fail" = 0 ] ||
	echo "check: $fail failed, required when $LP_STRICT: $(reasons 'fail\(-file\)\{0,1\}')"
if [ -n "$LP_STRICT" ]; then
	echo "check: strict ($LP_STRICT): a missing prerequisite fails, except $LP_OPTIONAL_PREREQS"
else
	echo "check: not strict: a missing prerequisite skips (CI=true or STRICT=1 makes it fail)"
fi
rm -rf "$R" "$R.all"
exit $rc
