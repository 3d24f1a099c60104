#!/bin/sh
# Strict mode and the summary of `make check` (t/check.sh, t/prereqs.sh,
# t/test-lib.sh): with CI=true or STRICT=1 a missing prerequisite fails and
# is named, except those a correct machine may lack (LP_OPTIONAL_PREREQS);
# without it, it skips. The summary counts what ran, what was compared with
# a reference and what was skipped, after prove's own closing lines.
#
# The library is tried on small test files in a copy of t/; then the real
# check is run on a real reference test with the reference venv hidden.
. "$(dirname "$0")/test-lib.sh"

# run_t FILE [VAR=VALUE...]: runs a test file of the copy without the
# strictness and result directory of the run this file is part of.
run_t() {
	f=$1; shift
	env -u CI -u STRICT -u LP_TEST_RESULTS "$@" sh "tree/t/$f"
}

test_expect_success 'setup: a copy of t/ with small test files' '
	mkdir -p tree/t &&
	cp "$TEST_DIR/test-lib.sh" "$TEST_DIR/prereqs.sh" "$TEST_DIR/check.sh" tree/t/ &&
	cat >tree/t/t1-ref.t <<-\EOF &&
	#!/bin/sh
	. "$(dirname "$0")/test-lib.sh"
	[ -n "$HAVE_REF" ] && test_set_prereq TORCH
	test_expect_success "plain" "true"
	test_expect_success TORCH "against torch" "true"
	test_expect_success GPU "on a GPU" "true"
	test_have_prereq GPU && test_set_prereq ON_GPU
	test_expect_success GPU,ON_GPU "after a setup on the GPU" "true"
	test_done
	EOF
	cat >tree/t/t2-whole.t <<-\EOF &&
	#!/bin/sh
	. "$(dirname "$0")/test-lib.sh"
	[ -n "$HAVE_REF" ] && test_set_prereq PY_PEFT
	test_require PY_PEFT
	test_expect_success "one" "true"
	test_expect_success "two" "true"
	test_done
	EOF
	cat >tree/t/t3-bare.t <<-\EOF &&
	#!/bin/sh
	. "$(dirname "$0")/test-lib.sh"
	[ -n "$HAVE_TOOL" ] || test_skip_all "needs sometool"
	test_expect_success "uses sometool" "true"
	test_done
	EOF
	cat >tree/t/t4-optional.t <<-\EOF
	#!/bin/sh
	. "$(dirname "$0")/test-lib.sh"
	test_set_prereq NOT_MPI
	test_have_prereq NOT_MPI || test_set_prereq MPI
	test_require MPI
	test_expect_success "over MPI" "true"
	test_done
	EOF
'

test_expect_success 'not strict: a missing prerequisite skips' '
	run_t t1-ref.t >out &&
	test_grep "^ok 2 # SKIP against torch (missing TORCH)" out &&
	run_t t2-whole.t >out &&
	test_grep "^1\.\.0 # SKIP missing PY_PEFT" out &&
	run_t t3-bare.t >out &&
	test_grep "^1\.\.0 # SKIP needs sometool" out
'

test_expect_success 'CI=true: a missing prerequisite fails and is named' '
	test_must_fail run_t t1-ref.t CI=true >out 2>err &&
	test_grep "^not ok 2 - against torch (missing TORCH, required when CI=true)" out &&
	test_grep "^ok 1 - plain" out &&
	test_grep "t1-ref.t: missing TORCH" err &&
	test_must_fail run_t t2-whole.t CI=true >out 2>err &&
	test_grep "^not ok 1 - t2-whole.t: missing PY_PEFT (required when CI=true)" out &&
	test_grep "^1\.\.1$" out
'

test_expect_success 'STRICT=1 is strict too; STRICT=0 is not, even under CI=true' '
	test_must_fail run_t t2-whole.t STRICT=1 >out &&
	test_grep "missing PY_PEFT (required when STRICT=1)" out &&
	run_t t2-whole.t CI=true STRICT=0 >out &&
	test_grep "^1\.\.0 # SKIP missing PY_PEFT" out
'

test_expect_success 'strict: a bare test_skip_all fails' '
	test_must_fail run_t t3-bare.t CI=true >out &&
	test_grep "^not ok 1 - t3-bare.t: needs sometool (required when CI=true)" out &&
	run_t t3-bare.t CI=true HAVE_TOOL=1 >out &&
	test_grep "^ok 1 - uses sometool" out
'

test_expect_success 'strict: an optional prerequisite (GPU, MPI) may be missing' '
	run_t t4-optional.t CI=true >out &&
	test_grep "^1\.\.0 # SKIP missing MPI" out &&
	run_t t1-ref.t CI=true HAVE_REF=1 >out &&
	if test_have_prereq GPU; then
		test_grep "^ok 3 - on a GPU" out &&
		test_grep "^ok 4 - after a setup on the GPU" out
	else
		test_grep "^ok 3 # SKIP on a GPU (missing GPU)" out &&
		test_grep "^ok 4 # SKIP after a setup on the GPU (missing GPU ON_GPU)" out
	fi
'

test_expect_success 'the summary: ran, compared with a reference, skipped and why' '
	env -u CI -u STRICT HAVE_REF=1 sh tree/t/check.sh tree/t/t1-ref.t tree/t/t2-whole.t \
		tree/t/t3-bare.t tree/t/t4-optional.t >out 2>err &&
	tail -n 5 out >summary &&
	head -n 1 summary >first &&
	test_grep "^Result: PASS$" first &&
	if test_have_prereq GPU; then n=6 skip=0; else n=4 skip=2; fi &&
	test_grep "^check: $n tests ran, 3 of them compared with a reference" summary &&
	test_grep "^check: $skip tests skipped" summary &&
	test_grep "^check: 2 files skipped whole: missing MPI (1); needs sometool (1)$" summary &&
	test_grep "^check: not strict" summary
'

test_expect_success 'the summary under CI=true names what is missing' '
	test_must_fail env -u STRICT CI=true sh tree/t/check.sh tree/t/t1-ref.t \
		tree/t/t2-whole.t tree/t/t4-optional.t >out 2>err &&
	grep -n "^Result: FAIL$" out >r &&
	grep -n "^check: " out >c &&
	test "$(cut -d: -f1 r)" -lt "$(head -n 1 c | cut -d: -f1)" &&
	test_grep "^check: 2 failed, required when CI=true: missing PY_PEFT (1); missing TORCH (1)$" out &&
	test_grep "^check: strict (CI=true)" out
'

# The real thing: a reference test run by check.sh as `make check` runs it,
# with the venv hidden (LP_VENV names none, so python3 is used) and a
# python3 that sees no site packages, so that neither gguf nor numpy
# import wherever this runs.
test_expect_success 'CI=true, the reference venv hidden: check fails naming PY_GGUF' '
	mkdir -p stub &&
	printf "#!/bin/sh\nexec %s -S -s \"\$@\"\n" "$(command -v python3)" >stub/python3 &&
	chmod +x stub/python3 &&
	test_must_fail env -u STRICT -u PYTHON CI=true LP_VENV="$TRASH/no-venv" \
		PATH="$TRASH/stub:$PATH" sh "$TEST_DIR/check.sh" "$TEST_DIR/t0030-gguf.t" >out 2>err &&
	test_grep "python: python3" out &&
	test_grep "^Result: FAIL" out &&
	test_grep "t0030-gguf.t: missing PY_GGUF (required when CI=true)" err &&
	test_grep "^check: 1 failed, required when CI=true: missing PY_GGUF (1)$" out
'

test_done
