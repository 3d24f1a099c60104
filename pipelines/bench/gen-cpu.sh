#!/bin/sh
# gen-cpu.sh: gen against transformers' generate() on the CPU, the same
# random LLaMA (f32 and bf16 files), the same prompt, the same threads.
# Prints prefill and decode tokens per second of each, CPU milliseconds
# (user + system, all threads) per decoded token, and their ratios; for
# the bf16 model also gen with the bf16 matrix-vector kernel off
# (LP_CPU_MATVEC=off: weights converted to f32 for every product, the
# path before that kernel), and the memory-bandwidth floor: the bytes of
# weights one decoded token reads, and the rate at which the kernel
# streams a 64 MB bf16 matrix with THREADS threads
# ($LP_BUILD/t/matvec --bench). Last, batched generation: BATCH=8
# prompts of PROMPT/4 random ids, NEW tokens each, on the bf16 model, one
# at a time and with --batch-size BATCH: tokens per second of the whole
# runs (loading, prefill and decoding), their ratio, and whether the
# outputs are the same bytes; and transformers' generate() over the same
# prompts at once, left-padded with an attention mask (inside one process,
# loading excluded), with how many of gen's ids it gives too.
#
#   sh pipelines/bench/gen-cpu.sh
#   HIDDEN=1024 LAYERS=4 THREADS=8 PROMPT=512 NEW=64 sh pipelines/bench/gen-cpu.sh
#
# Defaults: hidden 512, 8 layers, 8 heads (4 kv), intermediate 1376,
# vocabulary 32000, a prompt of 256 random ids, 128 new tokens, greedy
# (min_new_tokens = max_new_tokens so that an eos cannot end it early),
# THREADS = the cores, best of REPEAT=3 runs. Needs $PYTHON (else
# build/venv/bin/python, else python3) with torch and transformers,
# spm_train (gen wants a tokenizer, though the prompt is token ids), and gen
# (LP_BIN: bin/ by default).
#
# How it is timed. gen: whole runs of the program on {"input_ids"} with
# --ids, wall clock: LOAD = a 1-token prompt and 1 new token; FIRST = the
# prompt and 1 new token; ALL = the prompt and NEW new tokens. prefill
# tokens/s = PROMPT / (FIRST - LOAD), decode tokens/s = (NEW - 1) / (ALL -
# FIRST); CPU ms per token likewise from the user + system times of those
# runs. transformers: generate() inside one process after a warm-up
# (gen_ref_bench.py), prefill = PROMPT / FIRST, decode = (NEW - 1) / (ALL -
# FIRST). gen computes in f32 on the CPU whatever the stored type;
# transformers computes in the stored type (from_pretrained's default) and,
# for the bf16 model, also upcast to f32. Not run by make check.
set -eu
cd "$(dirname "$0")/../.."
LP_BIN=${LP_BIN:-$PWD/bin}
LP_BUILD=${LP_BUILD:-$PWD/build/release}
if [ -n "${PYTHON:-}" ]; then PY=$PYTHON
elif [ -x build/venv/bin/python ]; then PY=build/venv/bin/python
else PY=python3; fi
HIDDEN=${HIDDEN:-512} LAYERS=${LAYERS:-8} HEADS=${HEADS:-8} KV=${KV:-4} INTER=${INTER:-1376}
VOCAB=${VOCAB:-32000} PROMPT=${PROMPT:-256} NEW=${NEW:-128} REPEAT=${REPEAT:-3} BATCH=${BATCH:-8}
THREADS=${THREADS:-$(nproc)}
# Passive OpenMP waiting for both (torch uses libgomp too): on a machine
# shared with other work, spinning threads wait for descheduled ones.
export OMP_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=1 OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
work=$(mktemp -d "${TMPDIR:-/tmp}/gen-cpu.XXXXXX")
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$work"' EXIT INT TERM

"$PY" -c 'import torch, transformers' 2>/dev/null ||
	{ echo "gen-cpu.sh: $PY lacks torch or transformers (set PYTHON)" >&2; exit 1; }
[ -x "$LP_BIN/gen" ] || { echo "gen-cpu.sh: no $LP_BIN/gen (build it, or set LP_BIN)" >&2; exit 1; }
command -v /usr/bin/time >/dev/null 2>&1 || { echo "gen-cpu.sh: needs /usr/bin/time" >&2; exit 1; }

"$PY" pipelines/bench/gen_ref_bench.py make "$work/m" --hidden "$HIDDEN" --layers "$LAYERS" \
	--heads "$HEADS" --kv "$KV" --inter "$INTER" --vocab "$VOCAB" \
	--max-pos $((PROMPT + NEW + 16)) >/dev/null 2>&1
seq 1 5000 | awk '{ print "the number " $1 " is " ($1 % 2 ? "odd" : "even") " and " ($1 % 3 ? "not " : "") "a multiple of three" }' >"$work/corpus.txt"
spm_train --input="$work/corpus.txt" --model_prefix="$work/tok" --vocab_size=200 \
	--model_type=bpe --minloglevel=2 >/dev/null 2>&1
awk -v n="$PROMPT" -v v="$VOCAB" 'BEGIN { srand(1); printf "1"
	for (i = 1; i < n; i++) printf " %d", 3 + int(rand() * (v - 3)); print "" }' >"$work/ids"
sed 's/ /,/g; s/.*/{"input_ids":[&]}/' "$work/ids" >"$work/prompt.jsonl"
echo '{"input_ids":[1]}' >"$work/one.jsonl"

now() { date +%s.%N; }
# best_gen MODEL INPUT NEW: the shortest wall time of REPEAT runs of gen
# and the smallest CPU time (user + system), "WALL CPU"
best_gen() {
	best= cpu=
	for _ in $(seq "$REPEAT"); do
		t0=$(now)
		/usr/bin/time -f "%U %S" -o "$work/time" \
			"$LP_BIN/gen" -q -M "$1" -m "$work/tok.model" --ids --max-new-tokens "$3" \
			--min-new-tokens "$3" <"$2" >"$work/gen.out"
		t1=$(now)
		w=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
		read -r u s <"$work/time"
		best=$(awk -v d="$w" -v m="$best" 'BEGIN { print (m == "" || d < m) ? d : m }')
		cpu=$(awk -v d="$u" -v e="$s" -v m="$cpu" 'BEGIN { d += e; print (m == "" || d < m) ? d : m }')
	done
	grep -q "\"tokens\":$3," "$work/gen.out" ||
		{ echo "gen-cpu.sh: gen did not generate $3 tokens" >&2; exit 1; }
	echo "$best $cpu"
}
json() { "$PY" -c 'import json, sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }

printf "# model: hidden %s, %s layers, heads %s/%s, intermediate %s, vocab %s\n" \
	"$HIDDEN" "$LAYERS" "$HEADS" "$KV" "$INTER" "$VOCAB"
printf "# prompt %s tokens, %s new tokens greedy; %s threads, OMP_WAIT_POLICY=%s; best of %s\n" \
	"$PROMPT" "$NEW" "$THREADS" "$OMP_WAIT_POLICY" "$REPEAT"
# bytes of weights read per decoded token: every matrix of the layers and
# the head (the embedding is gathered, one row)
per_tok=$(awk -v h="$HIDDEN" -v l="$LAYERS" -v nh="$HEADS" -v kv="$KV" -v i="$INTER" -v v="$VOCAB" \
	'BEGIN { d = h / nh; print l * (2 * h * h + 2 * h * kv * d + 3 * h * i) + v * h }')
stream=
if [ -x "$LP_BUILD/t/matvec" ]; then
	k=$(OMP_NUM_THREADS=1 "$LP_BUILD/t/matvec" --name)
	for _ in 1 2 3; do   # the best of three: the machine may be busy
		g=$(OMP_NUM_THREADS=$THREADS "$LP_BUILD/t/matvec" --bench 32768 1024 1 20 |
			awk -v k="$k" '$1 == k { print $5 }')
		stream=$(awk -v a="$stream" -v b="$g" 'BEGIN { print (a == "" || b > a) ? b : a }')
	done
fi
printf "# bf16 weights read per decoded token: %.1f MB" "$(awk -v n="$per_tok" 'BEGIN { print n * 2e-6 }')"
[ -n "$stream" ] && printf "; the bf16 kernel streams %s GB/s with %s threads: floor %.0f tokens/s" \
	"$stream" "$THREADS" "$(awk -v g="$stream" -v n="$per_tok" 'BEGIN { print g * 1e9 / (n * 2) }')"
echo
printf "%-6s %-28s %12s %12s %12s %10s %10s\n" weights run "prefill t/s" "decode t/s" \
	"decode ms CPU" "load s" "same ids"
row() { printf "%-6s %-28s %12s %12s %12s %10s %10s\n" "$@"; }
ratio() { awk -v d="$1" -v l="$2" -v gp="$3" -v hp="$4" -v gd="$5" -v hd="$6" -v gc="$7" -v hc="$8" \
	'BEGIN { printf "%-6s %-28s %11.2fx %11.2fx %11.2fx\n", d, l, gp / hp, gd / hd, gc / hc }'; }
for dt in f32 bf16; do
	m=$work/m/$dt
	variants=default
	[ "$dt" = bf16 ] && variants="default off"
	for mv in $variants; do
		if [ "$mv" = off ]; then export LP_CPU_MATVEC=off; label="gen (conversion path)"
		else unset LP_CPU_MATVEC; label=gen; fi
		set -- $(best_gen "$m" "$work/one.jsonl" 1); load=$1
		set -- $(best_gen "$m" "$work/prompt.jsonl" 1); first=$1 first_cpu=$2
		set -- $(best_gen "$m" "$work/prompt.jsonl" "$NEW"); all=$1 all_cpu=$2
		sed 's/.*"ids":\[\([^]]*\)\].*/\1/; s/,/ /g' "$work/gen.out" >"$work/gen.ids.$mv"
		pre=$(awk -v p="$PROMPT" -v a="$load" -v b="$first" 'BEGIN { printf "%.1f", p / (b - a) }')
		dec=$(awk -v n="$NEW" -v a="$first" -v b="$all" 'BEGIN { printf "%.1f", (n - 1) / (b - a) }')
		cms=$(awk -v n="$NEW" -v a="$first_cpu" -v b="$all_cpu" 'BEGIN { printf "%.2f", 1e3 * (b - a) / (n - 1) }')
		eval "g_pre_$mv=\$pre g_dec_$mv=\$dec g_cpu_$mv=\$cms"
		same=-
		[ "$mv" = off ] && same=$(cmp -s "$work/gen.ids.off" "$work/gen.ids.default" && echo "= gen" || echo "differ")
		row "$dt" "$label" "$pre" "$dec" "$cms" "$(printf %.2f "$load")" "$same"
	done
	unset LP_CPU_MATVEC
	[ "$dt" = bf16 ] && ratio "$dt" "  ratio gen / conversion" "$g_pre_default" "$g_pre_off" \
		"$g_dec_default" "$g_dec_off" "$g_cpu_off" "$g_cpu_default"
	modes=auto
	[ "$dt" = bf16 ] && modes="auto f32"
	for mode in $modes; do
		r=$("$PY" pipelines/bench/gen_ref_bench.py run "$m" "$work/ids" --threads "$THREADS" \
			--new "$NEW" --dtype "$mode" --repeat "$REPEAT" --ids-out "$work/hf.ids" 2>/dev/null)
		h_pre=$(json "$r" prefill_tok_s) h_dec=$(json "$r" decode_tok_s) h_cpu=$(json "$r" decode_cpu_ms)
		same=$(awk 'NR == FNR { split($0, a); next }
			{ n = split($0, b); k = 0; while (k < n && a[k + 1] == b[k + 1]) k++; print k "/" n }' \
			"$work/gen.ids.default" "$work/hf.ids")
		label="transformers $(json "$r" dtype)"
		row "$dt" "$label" "$(printf %.1f "$h_pre")" "$(printf %.1f "$h_dec")" \
			"$(printf %.2f "$h_cpu")" - "$same"
		ratio "$dt" "  ratio gen / transformers" "$g_pre_default" "$h_pre" "$g_dec_default" \
			"$h_dec" "$h_cpu" "$g_cpu_default"
	done
done
echo "# ratios: speed (t/s) gen over the other; CPU column: the other's CPU ms per token over gen's"
echo "# (above 1: gen faster or cheaper)"

# batched generation
awk -v b="$BATCH" -v n="$((PROMPT / 4))" -v v="$VOCAB" 'BEGIN { srand(2)
	for (r = 0; r < b; r++) { printf "{\"input_ids\":[1"
		for (i = 1; i < n; i++) printf ",%d", 3 + int(rand() * (v - 3)); print "]}" } }' >"$work/batch.jsonl"
# best_batch B: "WALL CPU" of the best of REPEAT runs over the batch file
best_batch() {
	best= cpu=
	for _ in $(seq "$REPEAT"); do
		t0=$(now)
		/usr/bin/time -f "%U %S" -o "$work/time" "$LP_BIN/gen" -q -M "$work/m/bf16" \
			-m "$work/tok.model" --ids --max-new-tokens "$NEW" --min-new-tokens "$NEW" \
			-b "$1" <"$work/batch.jsonl" >"$work/batch.$1"
		t1=$(now)
		read -r u s <"$work/time"
		best=$(awk -v a="$t0" -v b="$t1" -v m="$best" 'BEGIN { d = b - a; print (m == "" || d < m) ? d : m }')
		cpu=$(awk -v d="$u" -v e="$s" -v m="$cpu" 'BEGIN { d += e; print (m == "" || d < m) ? d : m }')
	done
	echo "$best $cpu"
}
set -- $(best_batch 1); w1=$1 c1=$2
set -- $(best_batch "$BATCH"); wb=$1 cb=$2
same=$(cmp -s "$work/batch.1" "$work/batch.$BATCH" && echo yes || echo NO)
tot=$((BATCH * NEW))
printf "# %s prompts of %s tokens, %s new tokens each, bf16 weights, whole runs\n" "$BATCH" \
	"$((PROMPT / 4))" "$NEW"
printf "%-28s %12s %12s %12s\n" run "tokens/s" "wall s" "CPU s"
printf "%-28s %12.1f %12.2f %12.2f\n" "gen, one at a time" "$(awk -v t="$tot" -v w="$w1" 'BEGIN { print t / w }')" "$w1" "$c1"
printf "%-28s %12.1f %12.2f %12.2f\n" "gen --batch-size $BATCH" "$(awk -v t="$tot" -v w="$wb" 'BEGIN { print t / w }')" "$wb" "$cb"
awk -v a="$w1" -v b="$wb" -v c="$c1" -v d="$cb" -v s="$same" 'BEGIN {
	printf "%-28s %11.2fx %12s %11.2fx   same output: %s\n", "  ratio batched / one", a / b, "", c / d, s }'
sed 's/.*"input_ids":\[\([^]]*\)\].*/\1/; s/,/ /g' "$work/batch.jsonl" >"$work/batch.ids"
r=$("$PY" pipelines/bench/gen_ref_bench.py batch "$work/m/bf16" "$work/batch.ids" --threads "$THREADS" \
	--new "$NEW" --repeat "$REPEAT" --ids-out "$work/hf.batch" 2>/dev/null)
sed 's/.*"ids":\[\([^]]*\)\].*/\1/; s/,/ /g' "$work/batch.$BATCH" >"$work/gen.batch"
agree=$(awk 'NR == FNR { a[FNR] = $0; next } { n = split(a[FNR], x); split($0, y); k = 0
	while (k < n && x[k + 1] == y[k + 1]) k++; s += k; t += n } END { print s "/" t }' \
	"$work/gen.batch" "$work/hf.batch")
printf "%-28s %12.1f %12.2f %12.2f   same ids as gen: %s\n" "transformers $(json "$r" dtype), batch $BATCH" \
	"$(json "$r" tok_s)" "$(json "$r" wall_s)" "$(json "$r" cpu_s)" "$agree"
awk -v g="$wb" -v h="$(json "$r" wall_s)" -v c="$cb" -v d="$(json "$r" cpu_s)" 'BEGIN {
	printf "%-28s %11.2fx %12s %11.2fx\n", "  ratio gen / transformers", h / g, "", d / c }'
