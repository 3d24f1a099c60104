#!/bin/sh
# train-cpu.sh: lora-train against transformers' Trainer + PEFT on the CPU,
# the same small random LLaMA, the same data, settings and thread count.
# Prints training tokens per second and peak RSS of each.
#
#   sh pipelines/bench/train-cpu.sh
#   HIDDEN=512 LAYERS=4 INTER=1376 LEN=256 STEPS=20 THREADS=2 sh pipelines/bench/train-cpu.sh
#
# Defaults: hidden 256, 4 layers, 8 heads (4 kv), intermediate 688,
# vocabulary 2000, blocks of 128 tokens, micro-batch 4, 10 steps, LoRA r 8
# on all seven modules, THREADS = the cores. Needs $PYTHON (python3) with
# torch, transformers, peft and safetensors, /usr/bin/time, and lora-train
# plus the test helper train_frames (LP_BIN, LP_BUILD: bin/ and
# build/release by default). Tokens per second count the real tokens of
# the optimizer steps over the training loop's wall time (the Trainer's
# train_runtime; lora-train's sum of step times, without loading). Peak RSS
# is the whole process's (Python's includes torch itself).
set -eu
cd "$(dirname "$0")/../.."
LP_BIN=${LP_BIN:-$PWD/bin}
LP_BUILD=${LP_BUILD:-$PWD/build/release}
PY=${PYTHON:-python3}
HIDDEN=${HIDDEN:-256} LAYERS=${LAYERS:-4} INTER=${INTER:-688} HEADS=${HEADS:-8} KV=${KV:-4}
VOCAB=${VOCAB:-2000} LEN=${LEN:-128} BATCH=${BATCH:-4} STEPS=${STEPS:-10}
THREADS=${THREADS:-$(nproc)}
# Passive OpenMP waiting for both (torch uses libgomp too): on a machine
# shared with other work, libgomp's default spinning makes every barrier
# wait for a descheduled thread, and both runs 5-10x slower.
export OMP_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=1 OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
work=$(mktemp -d "${TMPDIR:-/tmp}/train-cpu.XXXXXX")
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$work"' EXIT INT TERM

records=$((BATCH * STEPS))
"$PY" t/ref/train_ref.py make "$work/m" --vocab "$VOCAB" --hidden "$HIDDEN" --layers "$LAYERS" \
	--inter "$INTER" --heads "$HEADS" --kv "$KV" --len "$LEN" --records "$records" >/dev/null 2>&1
"$LP_BUILD/t/train_frames" <"$work/m/data.jsonl" >"$work/m/data.frames"
tokens=$((records * LEN))
ARGS="-b $BATCH --max-steps $STEPS --lr 1e-4 --warmup-steps 0 --max-grad-norm 1.0"

/usr/bin/time -f "%M" -o "$work/ours.rss" "$LP_BIN/lora-train" -M "$work/m/base" \
	--init "$work/m/init" -o "$work/ours" --no-shuffle $ARGS --data "$work/m/data.frames" \
	>"$work/ours.jsonl" 2>/dev/null
# every step has BATCH x LEN tokens: its time is that over its tokens_per_s
ours_s=$(awk -v t="$tokens" -v n="$STEPS" -F'"tokens_per_s":' '
	{ split($2, a, "}"); s += (t / n) / a[1] } END { printf "%.3f", s }' "$work/ours.jsonl")

/usr/bin/time -f "%M" -o "$work/hf.rss" "$PY" t/ref/train_ref.py train "$work/m" "$work/hf" \
	$ARGS >/dev/null 2>&1
hf_s=$("$PY" -c "import json,sys; print('%.3f' % json.load(open(sys.argv[1]))['train_runtime'])" \
	"$work/hf/timing.json")

printf "# model: hidden %s, %s layers, heads %s/%s, intermediate %s, vocab %s; LoRA r 8 on 7 modules\n" \
	"$HIDDEN" "$LAYERS" "$HEADS" "$KV" "$INTER" "$VOCAB"
printf "# data: %s steps of %s x %s tokens; %s threads, OMP_WAIT_POLICY=%s\n" "$STEPS" "$BATCH" \
	"$LEN" "$THREADS" "$OMP_WAIT_POLICY"
printf "%-22s %10s %12s %14s\n" "run" "seconds" "tokens/s" "peak RSS MiB"
awk -v s="$ours_s" -v t="$tokens" -v r="$(cat "$work/ours.rss")" \
	'BEGIN { printf "%-22s %10.2f %12.0f %14.0f\n", "lora-train", s, t / s, r / 1024 }'
awk -v s="$hf_s" -v t="$tokens" -v r="$(cat "$work/hf.rss")" \
	'BEGIN { printf "%-22s %10.2f %12.0f %14.0f\n", "HF Trainer + PEFT", s, t / s, r / 1024 }'
awk -v a="$ours_s" -v b="$hf_s" 'BEGIN { printf "# speed-up: %.2fx\n", b / a }'
