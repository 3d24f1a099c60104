# test-lib.sh: a small TAP test library in the manner of git's t/.
#
#   . "$(dirname "$0")/test-lib.sh"
#   test_expect_success 'what it shows' '
#           mkinstr --from text <in >out &&
#           test_cmp expect out
#   '
#   test_done
#
# Each test file runs in its own scratch directory (removed on success) with
# the tools from $LP_BIN (default: bin/ of the checkout) first on PATH.
#
# Prerequisites: a file finds what it needs with test_set_prereq NAME, then
# names it in front of a test (test_expect_success NAME,OTHER 'what' '...')
# or for the whole file (test_require NAME...). Absent, the test or the
# file is skipped with "# SKIP ... (missing NAME)".
#
# Strict mode (CI=true, or STRICT=1; STRICT=0 turns it off under CI): a
# missing prerequisite is a failure that names it, because a suite that
# passes by skipping its reference comparisons has shown nothing. Only the
# prerequisites in LP_OPTIONAL_PREREQS (t/prereqs.sh, each with its
# reason) may be missing; a bare test_skip_all, which names no
# prerequisite, always fails under strict mode.
#
# When $LP_TEST_RESULTS names a directory (t/check.sh sets it), each file
# writes there one line per test: "run", "run ref" (it needed one of
# LP_REFERENCE_PREREQS), "skip REASON" or "fail REASON" (strict), and for a
# whole file "skip-file REASON" or "fail-file REASON"; REASON is "missing
# PREREQ..." or the text given to test_skip_all. t/check.sh sums them up.

TEST_DIR=$(cd "$(dirname "$0")" && pwd)
SRC_DIR=$(cd "$TEST_DIR/.." && pwd)
: "${LP_BIN:=$SRC_DIR/bin}"
: "${LP_BUILD:=$SRC_DIR/build/release}"
: "${PYTHON:=python3}"
SHARED_DATA=${LP_SHARED_DATA:-$SRC_DIR/../shared/data}
PATH=$LP_BIN:$PATH
export PATH LP_BIN LP_BUILD PYTHON SRC_DIR TEST_DIR SHARED_DATA
unset LLAMAPIPE_MODEL
LC_ALL=C.UTF-8
# OpenMP threads sleep when idle instead of spinning: on a loaded machine
# spinning threads slow every kernel call many-fold.
OMP_WAIT_POLICY=passive
export LC_ALL OMP_WAIT_POLICY

. "$TEST_DIR/prereqs.sh"

test_count=0
test_failed=0
test_prereqs=" "
test_file_prereqs=
TRASH=$(mktemp -d "${TMPDIR:-/tmp}/lp-test.XXXXXX") || exit 1
cd "$TRASH" || exit 1

say() { printf '# %s\n' "$*"; }

test_set_prereq() { test_prereqs="$test_prereqs$1 "; }
test_have_prereq() {
	for p in $(echo "$1" | tr , ' '); do
		case "$test_prereqs" in *" $p "*) ;; *) return 1 ;; esac
	done
}
# test_missing_prereqs A,B,...: prints those not set, space-separated.
test_missing_prereqs() {
	for p in $(echo "$1" | tr , ' '); do
		test_have_prereq "$p" || printf '%s ' "$p"
	done
}
# test_required_missing A B ...: of these (missing) ones, those strict mode
# does not allow to be missing. Prints nothing when not strict, and nothing
# when one of them is optional: a test of GPU,GPU_MODEL skips on a machine
# without a GPU, though GPU_MODEL (set by a setup on the GPU) is missing too.
test_required_missing() {
	[ -n "$LP_STRICT" ] || return 0
	for p; do
		case " $LP_OPTIONAL_PREREQS " in *" $p "*) return 0 ;; esac
	done
	printf '%s ' "$@"
}
# test_uses_reference A,B,...: one of these is a reference prerequisite.
test_uses_reference() {
	for p in $(echo "$1" | tr , ' '); do
		case " $(echo $LP_REFERENCE_PREREQS) " in *" $p "*) return 0 ;; esac
	done
	return 1
}
test_result() {
	[ -n "${LP_TEST_RESULTS:-}" ] || return 0
	echo "$*" >>"$LP_TEST_RESULTS/$(basename "$0")"
}

# test_expect_success [PREREQ] 'name' 'script'
test_expect_success() {
	if [ $# = 3 ]; then prereq=$1; shift; else prereq=; fi
	test_count=$((test_count + 1))
	_lp_missing=$(test_missing_prereqs "$prereq")
	if [ -n "$_lp_missing" ]; then
		_lp_required=$(test_required_missing $_lp_missing)
		if [ -n "$_lp_required" ]; then
			test_failed=$((test_failed + 1))
			echo "not ok $test_count - $1 (missing ${_lp_required% }, required when $LP_STRICT)"
			echo "$(basename "$0"): missing ${_lp_required% } (required when $LP_STRICT)" >&2
			test_result "fail missing ${_lp_required% }"
		else
			echo "ok $test_count # SKIP $1 (missing ${_lp_missing% })"
			test_result "skip missing ${_lp_missing% }"
		fi
		return 0
	fi
	out=$(cd "$TRASH" && eval "$2" 2>&1)
	if [ $? = 0 ]; then
		echo "ok $test_count - $1"
	else
		test_failed=$((test_failed + 1))
		echo "not ok $test_count - $1"
		printf '%s\n' "$out" | sed 's/^/#   /' | head -n 60
	fi
	if test_uses_reference "$prereq,$test_file_prereqs"; then
		test_result "run ref"
	else
		test_result "run"
	fi
}

# test_skip 'name' 'reason': a test that cannot run anywhere the suite runs
# (it needs a terminal and a person, say); never a failure, counted apart.
test_skip() {
	test_count=$((test_count + 1))
	echo "ok $test_count # SKIP $1 (not run: $2)"
	test_result "skip not run: $2"
}

# test_require PREREQ...: the whole file needs these; without them it is
# skipped (under strict mode it fails, unless they are all optional).
test_require() {
	_lp_missing=$(test_missing_prereqs "$(echo "$*" | tr ' ' ,)")
	if [ -z "$_lp_missing" ]; then
		test_file_prereqs="$test_file_prereqs,$(echo "$*" | tr ' ' ,)"
		return 0
	fi
	_lp_required=$(test_required_missing $_lp_missing)
	[ -n "$_lp_required" ] && test_fail_all "missing ${_lp_required% }"
	test_result "skip-file missing ${_lp_missing% }"
	echo "1..0 # SKIP missing ${_lp_missing% }"
	rm -rf "$TRASH"
	exit 0
}

# test_skip_all 'reason': skip the whole file. It names no prerequisite,
# so under strict mode it is a failure; for something a correct machine
# may lack use test_set_prereq and test_require.
test_skip_all() {
	[ -n "$LP_STRICT" ] && test_fail_all "$*"
	test_result "skip-file $*"
	echo "1..0 # SKIP $*"
	rm -rf "$TRASH"
	exit 0
}
test_fail_all() {
	test_result "fail-file $*"
	test_count=$((test_count + 1))
	echo "not ok $test_count - $(basename "$0"): $* (required when $LP_STRICT)"
	echo "$(basename "$0"): $* (required when $LP_STRICT)" >&2
	echo "1..$test_count"
	rm -rf "$TRASH"
	exit 1
}

test_done() {
	echo "1..$test_count"
	if [ "$test_failed" = 0 ]; then
		rm -rf "$TRASH"
		exit 0
	fi
	say "failed $test_failed of $test_count; scratch left in $TRASH"
	exit 1
}

# Helpers used inside test scripts.
test_cmp() { diff -u "$1" "$2"; }
# A command must fail with a clean error: non-zero exit below 128 (no crash).
test_must_fail() {
	"$@"
	rc=$?
	if [ $rc = 0 ]; then echo "test_must_fail: '$*' succeeded" >&2; return 1; fi
	if [ $rc -ge 128 ]; then echo "test_must_fail: '$*' died of signal $((rc - 128))" >&2; return 1; fi
	return 0
}
# grep that shows the file on failure
test_grep() {
	if ! grep "$@"; then
		eval "last=\${$#}"
		echo "test_grep: no match for '$*' in:" >&2; cat "$last" >&2
		return 1
	fi
}
test_line_count() { # test_line_count = N file
	n=$(wc -l <"$3" | tr -d ' ')
	if ! [ "$n" "$1" "$2" ]; then echo "line count $n, want $1 $2 ($3)" >&2; return 1; fi
}

# Prerequisites found once per file.
[ -d "$SHARED_DATA/llama" ] && test_set_prereq SHARED_DATA
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q '^GPU '; then
	test_set_prereq GPU
	[ "$(nvidia-smi -L | grep -c '^GPU ')" -ge 2 ] && test_set_prereq MULTI_GPU
else
	test_set_prereq NO_GPU
fi
command -v spm_train >/dev/null 2>&1 && test_set_prereq SPM_TRAIN
$PYTHON -c 'import sentencepiece' 2>/dev/null && test_set_prereq PY_SPM
$PYTHON -c 'from sentencepiece import sentencepiece_model_pb2' 2>/dev/null && test_set_prereq PY_SPM_PB2
command -v jq >/dev/null 2>&1 && test_set_prereq JQ
command -v zstd >/dev/null 2>&1 && test_set_prereq ZSTD

# A small SentencePiece model trained here on a generated corpus:
# make_spm_model NAME TYPE VOCAB [spm_train options] (TYPE bpe|unigram):
# byte fallback unless the options say otherwise. Prints nothing.
make_spm_corpus() {
	$PYTHON - "$1" <<'PYEOF'
import random, sys
r = random.Random(7)
latin = "the of and a to in is you that it he was for on are as with his they at be this from".split()
han = "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制机当使点从业本去把性好应开它合还因由其些然前外天政四日那社义事平形相全表间样与关各重新线内数正心反你明看原又么利比或但质气第向道命此变条只没结解问意建月公无系军很情者最立代想已通并提直题党程展五果料象员革位入常文总次品式活设及管特件长求老头基资边流路级少图山统接知较将组见计别她手角期根论运农指几九区强放决西被干做必战先回则任取据处队南给色光门即保治北造百规热领七海口东导器压志世金增争济阶油思术极交受联什认六共权收证改清己美再采转更单风切打白教速花带安场身车例真务具万每目至达走积示议声报斗完类八离华名确才科张信马节话米整空元况今集温传土许步群广石记需段研界拉林律叫且究观越织装影算低持音众书布复容儿须际商非验连断深难近矿千周委素技备半办青省列习响约支般史感劳便团往酸历市克何除消构府称太准精值号率族维划选标写存候毛亲快效斯院查江型眼王按格养易置派层片始却专状育厂京识适属圆包火住调满县局照参红细引听该铁价严"
lines = []
for i in range(3000):
    if i % 3 == 0:
        lines.append(" ".join(r.choice(latin) for _ in range(r.randint(3, 12))))
    else:
        lines.append("".join(r.choice(han) for _ in range(r.randint(5, 30))))
open(sys.argv[1], "w", encoding="utf-8").write("\n".join(lines) + "\n")
PYEOF
}
make_spm_model() {
	[ -f corpus.txt ] || make_spm_corpus corpus.txt
	_name=$1 _type=$2 _vocab=$3
	shift 3
	spm_train --input=corpus.txt --model_prefix="$_name" --model_type="$_type" \
		--vocab_size="$_vocab" --byte_fallback=true --character_coverage=0.9995 \
		--minloglevel=2 "$@" >/dev/null 2>&1
}
