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
# Tests that need something absent call test_skip_all or set a prerequisite.

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

test_count=0
test_failed=0
test_prereqs=" "
TRASH=$(mktemp -d "${TMPDIR:-/tmp}/lp-test.XXXXXX") || exit 1
cd "$TRASH" || exit 1

say() { printf '# %s\n' "$*"; }

test_set_prereq() { test_prereqs="$test_prereqs$1 "; }
test_have_prereq() {
	for p in $(echo "$1" | tr , ' '); do
		case "$test_prereqs" in *" $p "*) ;; *) return 1 ;; esac
	done
}

# test_expect_success [PREREQ] 'name' 'script'
test_expect_success() {
	if [ $# = 3 ]; then prereq=$1; shift; else prereq=; fi
	test_count=$((test_count + 1))
	if [ -n "$prereq" ] && ! test_have_prereq "$prereq"; then
		echo "ok $test_count # SKIP $1 (missing $prereq)"
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
}

test_skip_all() {
	echo "1..0 # SKIP $*"
	rm -rf "$TRASH"
	exit 0
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
command -v spm_train >/dev/null 2>&1 && test_set_prereq SPM_TRAIN
$PYTHON -c 'import sentencepiece' 2>/dev/null && test_set_prereq PY_SPM
$PYTHON -c 'from sentencepiece import sentencepiece_model_pb2' 2>/dev/null && test_set_prereq PY_SPM_PB2
command -v jq >/dev/null 2>&1 && test_set_prereq JQ
command -v zstd >/dev/null 2>&1 && test_set_prereq ZSTD

# A small SentencePiece model trained here on a generated corpus:
# make_spm_model NAME TYPE VOCAB (TYPE bpe|unigram). Prints nothing.
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
	spm_train --input=corpus.txt --model_prefix="$1" --model_type="$2" \
		--vocab_size="$3" --byte_fallback=true --character_coverage=0.9995 \
		--minloglevel=2 >/dev/null 2>&1
}
