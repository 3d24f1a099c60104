#!/bin/sh
# merge-7b.sh: lora-merge on a LLaMA-7B-shaped model with random bf16
# weights and an r=8 adapter on q, k, v, o, gate, up, down (the Chinese-
# LLaMA recipe). Prints model size, wall time, peak RSS (from
# /usr/bin/time -v) and throughput for each run.
#
#   sh pipelines/bench/merge-7b.sh              the full model (32 layers)
#   LAYERS=8 sh pipelines/bench/merge-7b.sh     fewer layers, same shapes
#
# Needs about 2.1 x the model size of free disk under $TMPDIR (13.5 GB of
# input and as much output for 7B), python3 with numpy for the generator,
# and bin/lora-merge (LP_BIN to use another build). CASES picks the runs:
# merge (HF -> HF with the adapter), convert (HF -> HF, no adapter), pth,
# gguf, peft (the same merge by transformers + PEFT, for comparison: needs
# $PYTHON with torch, transformers and peft, and RAM for the whole model);
# default "merge convert". KEEP=1 keeps the files.
set -eu
cd "$(dirname "$0")/../.."
LP_BIN=${LP_BIN:-$PWD/bin}
LAYERS=${LAYERS:-32}
CASES=${CASES:-merge convert}
PY=${PYTHON:-python3}
work=$(mktemp -d "${TMPDIR:-/tmp}/merge-7b.XXXXXX")
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$work"' EXIT INT TERM

echo "# generating a 7B-shaped model ($LAYERS layers) in $work" >&2
t0=$(date +%s)
bytes=$("$PY" pipelines/bench/mk-random-llama.py "$work/base" "$work/adapter" --layers "$LAYERS")
echo "# generated $bytes bytes in $(($(date +%s) - t0)) s" >&2
sync

# run NAME COMMAND...: one timed run, one table row
run() {
	name=$1
	shift
	rm -rf "$work/out"
	/usr/bin/time -v "$@" 2>"$work/time.txt" || {
		cat "$work/time.txt" >&2
		exit 1
	}
	awk -v name="$name" -v bytes="$bytes" -v layers="$LAYERS" '
		/Elapsed \(wall clock\)/ {
			n = split($NF, t, ":"); s = 0
			for (i = 1; i <= n; i++) s = s * 60 + t[i]
		}
		/Maximum resident set size/ { rss = $NF / 1024 }
		/User time/ { user = $NF }
		/System time/ { sys = $NF }
		END {
			printf "| %-8s | %6d | %8.2f | %8.1f | %7.1f | %7.1f | %11.0f | %7.0f |\n",
				name, layers, bytes / 1e9, s, user, sys, rss, bytes / 1e6 / s
		}' "$work/time.txt"
	rm -rf "$work/out"
}

# the resident size of the program alone (shared libraries: the CUDA and
# BLAS ones are large), to read the peaks against
base_rss=$(/usr/bin/time -v "$LP_BIN/lora-merge" --help 2>&1 >/dev/null |
	awk '/Maximum resident set size/ { printf "%.0f", $NF / 1024 }')
echo "# lora-merge --help alone: peak RSS $base_rss MB" >&2
echo "| case     | layers | model GB |   wall s |  user s |   sys s | peak RSS MB |    MB/s |"
echo "|----------|--------|----------|----------|---------|---------|-------------|---------|"
for c in $CASES; do
	case $c in
	merge) run merge "$LP_BIN/lora-merge" -q -M "$work/base" -A "$work/adapter" -o "$work/out" ;;
	convert) run convert "$LP_BIN/lora-merge" -q -M "$work/base" -o "$work/out" ;;
	pth) run pth "$LP_BIN/lora-merge" -q -M "$work/base" -A "$work/adapter" -o "$work/out" \
		--to pth ;;
	gguf) run gguf "$LP_BIN/lora-merge" -q -M "$work/base" -A "$work/adapter" \
		-o "$work/out" --to gguf \
		--tokenizer "${TOKENIZER:?gguf needs TOKENIZER=a 32000-piece tokenizer.model}" ;;
	peft) run peft "$PY" -c '
import sys, torch
from transformers import AutoModelForCausalLM
from peft import PeftModel
m = AutoModelForCausalLM.from_pretrained(sys.argv[1], dtype=torch.bfloat16)
m = PeftModel.from_pretrained(m, sys.argv[2]).merge_and_unload()
m.save_pretrained(sys.argv[3])
' "$work/base" "$work/adapter" "$work/out" ;;
	*) echo "merge-7b.sh: unknown case $c" >&2; exit 2 ;;
	esac
done
