#!/bin/sh
# tok-cpu.sh: tok --mode pt against Python sentencepiece on the same
# records, end to end (JSONL in, blocks of token ids out), side by side in
# one run. Prints wall and CPU seconds (user + system, all threads) of
# each, MB of text per second, the ratios, and whether the ids are the same.
#
#   sh pipelines/bench/tok-cpu.sh
#   MODEL=chinese-llama.model COPIES=10 THREADS=2 sh pipelines/bench/tok-cpu.sh
#
# Input: the {"text"} records of $SHARED_DATA/msra/msra_1000.txt (MSRA NER,
# one sentence each) repeated COPIES=30 times (6 MB); MODEL: the LLaMA
# tokenizer of $SHARED_DATA/llama (SHARED_DATA: ../shared/data by default).
# THREADS = the cores; best of REPEAT=5 runs, the two tools taking turns.
#
# tok: the whole process (`tok -j THREADS --mode pt -b 512`, model loading
# included), wall clock and /usr/bin/time's user + system. Python:
# tok_ref_bench.py pt, timed inside the process from opening the input to
# the last block written (interpreter start and model loading excluded):
# json.loads per line, one encode(texts, num_threads=THREADS), BOS before
# each text, concatenation, blocks of 512. The last table is the library
# alone on the same texts, one thread: the spm_encode program of the
# installed C++ sentencepiece against Python's encode(num_threads=1).
# Needs $PYTHON (else build/venv/bin/python, else python3) with
# sentencepiece, /usr/bin/time, spm_encode, and tok (LP_BIN: bin/).
# Not run by make check.
set -eu
cd "$(dirname "$0")/../.."
LP_BIN=${LP_BIN:-$PWD/bin}
if [ -n "${PYTHON:-}" ]; then PY=$PYTHON
elif [ -x build/venv/bin/python ]; then PY=build/venv/bin/python
else PY=python3; fi
SHARED_DATA=${SHARED_DATA:-$PWD/../shared/data}
MODEL=${MODEL:-$SHARED_DATA/llama/tokenizer.model}
COPIES=${COPIES:-30} REPEAT=${REPEAT:-5} THREADS=${THREADS:-$(nproc)}
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
work=$(mktemp -d "${TMPDIR:-/tmp}/tok-cpu.XXXXXX")
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$work"' EXIT INT TERM

"$PY" -c 'import sentencepiece' 2>/dev/null ||
	{ echo "tok-cpu.sh: $PY lacks sentencepiece (set PYTHON)" >&2; exit 1; }
[ -x "$LP_BIN/tok" ] || { echo "tok-cpu.sh: no $LP_BIN/tok (build it, or set LP_BIN)" >&2; exit 1; }
[ -f "$MODEL" ] || { echo "tok-cpu.sh: no tokenizer $MODEL (set MODEL or SHARED_DATA)" >&2; exit 1; }
[ -f "$SHARED_DATA/msra/msra_1000.txt" ] ||
	{ echo "tok-cpu.sh: no $SHARED_DATA/msra/msra_1000.txt (set SHARED_DATA)" >&2; exit 1; }

for _ in $(seq "$COPIES"); do cat "$SHARED_DATA/msra/msra_1000.txt"; done >"$work/in.jsonl"
"$PY" -c 'import json, sys
for line in open(sys.argv[1], encoding="utf-8"): print(json.loads(line)["text"])' \
	"$work/in.jsonl" >"$work/texts.txt"
mb=$(awk -v b="$(wc -c <"$work/in.jsonl")" 'BEGIN { printf "%.2f", b / 1e6 }')

now() { date +%s.%N; }
# run_tok: "WALL CPU" of one tok run
run_tok() {
	t0=$(now)
	/usr/bin/time -f "%U %S" -o "$work/time" "$LP_BIN/tok" -q -j "$THREADS" -m "$MODEL" \
		--mode pt -b 512 <"$work/in.jsonl" >"$work/tok.frames"
	t1=$(now)
	read -r u s <"$work/time"
	awk -v a="$t0" -v b="$t1" -v u="$u" -v s="$s" 'BEGIN { print b - a, u + s }'
}
json() { "$PY" -c 'import json, sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }
min() { awk -v a="$1" -v b="$2" 'BEGIN { print (a == "" || b < a) ? b : a }'; }

tw= tc= pw= pc=
for _ in $(seq "$REPEAT"); do
	set -- $(run_tok)
	tw=$(min "$tw" "$1") tc=$(min "$tc" "$2")
	r=$("$PY" pipelines/bench/tok_ref_bench.py pt "$MODEL" "$work/in.jsonl" --threads "$THREADS")
	pw=$(min "$pw" "$(json "$r" wall_s)") pc=$(min "$pc" "$(json "$r" cpu_s)")
done
"$PY" pipelines/bench/tok_ref_bench.py pt "$MODEL" "$work/in.jsonl" --threads "$THREADS" \
	--ids-out "$work/py.ids" >/dev/null
"$LP_BIN/tok" -q --dump "$work/tok.frames" | sed 's/,"labels".*//; s/$/}/' >"$work/tok.ids"
sed 's/}$//; s/$/}/' "$work/py.ids" >"$work/py.ids2"
same=$(cmp -s "$work/tok.ids" "$work/py.ids2" && echo yes || echo NO)
ver=$(json "$r" version)

printf "# %s MB of JSONL (%s records), tokenizer %s; %s threads; best of %s\n" "$mb" \
	"$(wc -l <"$work/in.jsonl")" "$(basename "$(dirname "$MODEL")")/$(basename "$MODEL")" \
	"$THREADS" "$REPEAT"
printf "%-44s %9s %9s %9s\n" "JSONL -> blocks of 512" "wall s" "CPU s" "MB/s"
printf "%-44s %9.3f %9.3f %9.1f\n" "tok -j $THREADS" "$tw" "$tc" "$(awk -v m="$mb" -v t="$tw" 'BEGIN { print m / t }')"
printf "%-44s %9.3f %9.3f %9.1f\n" "Python sentencepiece $ver, num_threads=$THREADS" "$pw" "$pc" \
	"$(awk -v m="$mb" -v t="$pw" 'BEGIN { print m / t }')"
awk -v tw="$tw" -v tc="$tc" -v pw="$pw" -v pc="$pc" -v s="$same" 'BEGIN {
	printf "%-44s %8.2fx %8.2fx   same ids: %s\n", "tok speed / Python; tok CPU / Python", pw / tw, tc / pc, s }'

# the library alone, one thread
t0=$(now)
/usr/bin/time -f "%U %S" -o "$work/time" spm_encode --model="$MODEL" --output_format=id \
	<"$work/texts.txt" >"$work/spm.ids"
t1=$(now)
read -r u s <"$work/time"
sw=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }') sc=$(awk -v u="$u" -v s="$s" 'BEGIN { print u + s }')
r=$("$PY" pipelines/bench/tok_ref_bench.py encode "$MODEL" "$work/texts.txt" --threads 1)
cver=$(dpkg-query -W -f '${Version}' libsentencepiece0 2>/dev/null || echo "?")
printf "%-44s %9s %9s\n" "the library alone, 1 thread, texts only" "wall s" "CPU s"
printf "%-44s %9.3f %9.3f\n" "spm_encode (C++ sentencepiece $cver)" "$sw" "$sc"
printf "%-44s %9.3f %9.3f\n" "Python sentencepiece $ver encode()" "$(json "$r" wall_s)" "$(json "$r" cpu_s)"
awk -v a="$sc" -v b="$(json "$r" cpu_s)" 'BEGIN {
	printf "%-44s %8.2fx\n", "C++ library CPU / Python library CPU", a / b }'
