#!/bin/sh
# qlora-7b.sh: memory of lora-train --quantize on a LLaMA-7B-shaped model
# with random bf16 weights (32 layers, hidden 4096, intermediate 11008,
# vocab 32000): the base loads quantized block of rows by block of rows,
# then one LoRA step (r=8 on q, k, v, o, gate, up, down) on a 14-token
# example. Prints, for each type, the quantized base's size (as lora-train
# reports it), wall time and peak RSS (from /usr/bin/time -v).
#
#   sh pipelines/bench/qlora-7b.sh              nf4 (default TYPES)
#   TYPES="nf4 int8" LAYERS=8 sh pipelines/bench/qlora-7b.sh
#
# Needs 13.5 GB of free disk under $TMPDIR for 32 layers, python3 with
# numpy, and bin/lora-train and build/release/t/train_frames (LP_BIN and
# LP_BUILD to use another build). KEEP=1 keeps the files.
set -eu
cd "$(dirname "$0")/../.."
LP_BIN=${LP_BIN:-$PWD/bin}
LP_BUILD=${LP_BUILD:-$PWD/build/release}
LAYERS=${LAYERS:-32}
TYPES=${TYPES:-nf4}
PY=${PYTHON:-python3}
work=$(mktemp -d "${TMPDIR:-/tmp}/qlora-7b.XXXXXX")
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$work"' EXIT INT TERM

echo "# generating a 7B-shaped model ($LAYERS layers) in $work" >&2
bytes=$("$PY" pipelines/bench/mk-random-llama.py "$work/base" "$work/adapter" --layers "$LAYERS")
echo '{"input_ids": [1, 450, 4996, 17354, 1701, 29916, 432, 17204, 975, 278, 17366, 11203, 29889, 2]}' |
	"$LP_BUILD/t/train_frames" >"$work/d.frames"
sync

echo "| type | layers | model GB | quantized base MB | wall s | peak RSS MB |"
echo "| --- | ---: | ---: | ---: | ---: | ---: |"
for type in $TYPES; do
	rm -rf "$work/out"
	/usr/bin/time -v "$LP_BIN/lora-train" -M "$work/base" --quantize "$type" -o "$work/out" \
		--max-steps 1 --data "$work/d.frames" >/dev/null 2>"$work/err" || {
		cat "$work/err" >&2
		exit 1
	}
	awk -v type="$type" -v bytes="$bytes" -v layers="$LAYERS" '
		/base Linear weights in/ { q = $(NF - 1) }
		/Elapsed \(wall clock\)/ {
			n = split($NF, t, ":"); s = 0
			for (i = 1; i <= n; i++) s = s * 60 + t[i]
		}
		/Maximum resident set size/ { rss = $NF / 1024 }
		END { printf "| %s | %d | %.1f | %s | %.0f | %.0f |\n", type, layers, bytes / 1e9, q, s, rss }
	' "$work/err"
done
