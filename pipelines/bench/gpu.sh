#!/bin/sh
# gpu.sh: everything a GPU turn needs, in one call of under 8 minutes on an
# H100/H200, writing a dated results table.
#
#   sh pipelines/bench/gpu.sh                  on the GPU machine
#   sh pipelines/bench/gpu.sh --device cpu     the same steps on the CPU with
#                                              tiny shapes (checks the script)
#
# Steps (each with its own time limit; a failure is recorded and the rest
# still run):
#   1. gpu-ops: every op of kernels.h, forward and backward, CUDA against
#      the CPU backend (TAP in gpu-ops.tap).
#   2. A small random model (t/ref/tiny_model.py: hidden 256, 4 layers, GQA,
#      vocabulary 1000) trained 20 LoRA steps on the CPU, on CUDA in f32 and
#      in bf16; loss curves compared step by step: f32 within 1e-3 relative
#      of the CPU's (GEMMs reassociate; Adam's first steps amplify), bf16
#      within 5e-2.
#   3. gen, greedy, 4 prompts x 32 new tokens on that model: CUDA f32 must
#      give the CPU's tokens; bf16 is reported (tokens equal before the
#      first difference) and must agree on each prompt's first token.
#   4. Benchmarks on a LLaMA-7B-shaped model with random weights made on the
#      device (pipelines/bench/gpu_bench.py make, transformers' init):
#      LoRA r=8 on all seven projections, sequence 512, micro-batch 8, bf16:
#      lora-train and transformers + PEFT (bf16, sdpa): tokens/s, MFU, peak
#      memory; batch-1 greedy decode of 128 tokens after a 128-token
#      prompt: gen (also with LP_CUDA_GRAPH=1, whose tokens must be the
#      same) and transformers generate(), against the bandwidth floor.
#      Peaks measured in the same run: bf16 GEMM TFLOP/s and device copy
#      bandwidth (gpu_bench.py peak).
#
# How FLOPs are counted (MFU): per trained token, 4 P + 6 P_lora + 6 L T HD,
# where P counts the frozen Linear weights and the head (forward 2 P, the
# input gradient 2 P, no weight gradient), P_lora the LoRA weights
# (forward, input and weight gradients) and 6 L T HD the causal attention
# (forward 2 L T HD, backward twice that). Recomputation is not counted.
# Decode floor: tokens/s = copy bandwidth / bytes of the weights.
#
# Binaries. In order: $LP_BIN (tools) and $LP_BUILD (gpu-ops, train_frames)
# when set; a carried bundle (build/gpu-bundle, made by `make
# gpu-bundle` on a machine with the -dev packages: the tools, gpu-ops and
# the shared libraries they need beside them, rpath $ORIGIN/../lib); bin/
# and build/release of a checkout built here; else a build here with nvcc
# against the bundle's headers and libraries (build/gpu).
#
# Output: logs in $OUT (else build/gpu-run); the table in
# $RESULTS_DIR/gpu-DATE-GPU.md (RESULTS_DIR default pipelines/bench/results),
# also copied to $OUT. Exit status 0 when every check passed.
set -u
cd "$(dirname "$0")/../.." || exit 1
ROOT=$(pwd)
DEVICE=cuda
while [ $# -gt 0 ]; do
	case $1 in
	--device) DEVICE=${2-}; shift 2 || exit 2 ;;
	-h|--help) sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) echo "gpu.sh: unknown argument '$1'" >&2; exit 2 ;;
	esac
done
case $DEVICE in cuda|cpu) ;; *) echo "gpu.sh: --device: '$DEVICE' is not cuda or cpu" >&2; exit 2 ;; esac

LOG=${OUT:-build/gpu-run}
RESULTS_DIR=${RESULTS_DIR:-pipelines/bench/results}
mkdir -p "$LOG" "$RESULTS_DIR" || exit 1
LOG=$(cd "$LOG" && pwd)
W=$(mktemp -d "${TMPDIR:-/tmp}/gpu-sh.XXXXXX") || exit 1
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$W"' EXIT INT TERM
if [ -n "${PYTHON:-}" ]; then PY=$PYTHON
elif [ -x build/venv/bin/python ]; then PY=$ROOT/build/venv/bin/python
else PY=python3; fi
export OMP_WAIT_POLICY=passive
JOBS=$(nproc 2>/dev/null || echo 4)

failed=0
note() { printf '%s\n' "$*" | tee -a "$LOG/summary.txt"; }
fail() { note "FAILED: $*"; failed=$((failed + 1)); }
# run NAME SECONDS CMD...: CMD with a time limit, output in $LOG/NAME.log
run() {
	name=$1 secs=$2
	shift 2
	t0=$(date +%s)
	timeout "$secs" "$@" >"$LOG/$name.log" 2>&1
	rc=$?
	echo "# $name: exit $rc after $(($(date +%s) - t0)) s" >>"$LOG/summary.txt"
	[ $rc = 124 ] && echo "# $name: killed after $secs s" >>"$LOG/$name.log"
	return $rc
}
: >"$LOG/summary.txt"

# ---- binaries ----
BUNDLE=build/gpu-bundle
links() { ! ldd "$1" 2>/dev/null | grep -q "not found"; }
if [ -n "${LP_BIN:-}" ]; then
	B=$LP_BIN GPU_OPS=${LP_BUILD:-$ROOT/build/release}/t/gpu-ops
	FRAMES=${LP_BUILD:-$ROOT/build/release}/t/train_frames
elif [ -x "$BUNDLE/bin/lora-train" ] && links "$BUNDLE/bin/lora-train" && links "$BUNDLE/bin/gen"; then
	B=$ROOT/$BUNDLE/bin GPU_OPS=$B/gpu-ops FRAMES=$B/train_frames
elif [ -x bin/lora-train ] && links bin/lora-train && [ -x build/release/t/gpu-ops ]; then
	B=$ROOT/bin GPU_OPS=$ROOT/build/release/t/gpu-ops FRAMES=$ROOT/build/release/t/train_frames
else
	note "building with nvcc into build/gpu (no usable bundle or build)"
	if [ -d "$BUNDLE/include" ]; then
		CPPFLAGS="-I$ROOT/$BUNDLE/include" LDFLAGS="-L$ROOT/$BUNDLE/lib -Wl,-rpath,$ROOT/$BUNDLE/lib" \
			run build 600 make -j"$JOBS" O=build/gpu BIN=build/gpu/bin all
	else
		run build 600 make -j"$JOBS" O=build/gpu BIN=build/gpu/bin all
	fi || { tail -n 30 "$LOG/build.log"; echo "gpu.sh: no binaries: the build failed" >&2; exit 1; }
	B=$ROOT/build/gpu/bin GPU_OPS=$ROOT/build/gpu/t/gpu-ops FRAMES=$ROOT/build/gpu/t/train_frames
fi
note "binaries: $B"

{
	date -u
	if [ "$DEVICE" = cuda ]; then
		nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
	else
		echo "cpu: $(nproc) cores (--device cpu: a check of this script, not a benchmark)"
	fi
	command -v nvcc >/dev/null && nvcc --version | tail -n 1
	"$PY" -c 'import torch, transformers, peft; print("torch", torch.__version__, "transformers", transformers.__version__, "peft", peft.__version__)' 2>/dev/null |
		tail -n 1
} >"$LOG/machine.txt" 2>&1
cat "$LOG/machine.txt"
if [ "$DEVICE" = cuda ]; then
	GPU=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1)
else
	GPU=cpu
fi
[ -n "$GPU" ] || GPU=unknown

# ---- 1. gpu-ops ----
quick=
[ "$DEVICE" = cpu ] && quick=--quick
if run gpu-ops 240 "$GPU_OPS" --device "$DEVICE" $quick; then
	note "gpu-ops: $(grep -c '^ok' "$LOG/gpu-ops.log") checks passed"
else
	fail "gpu-ops: $(grep -c '^not ok' "$LOG/gpu-ops.log") of $(grep -c '^\(not \)\{0,1\}ok' "$LOG/gpu-ops.log") checks failed (gpu-ops.log)"
	grep -A3 '^not ok' "$LOG/gpu-ops.log" | head -n 40
	tail -n 2 "$LOG/gpu-ops.log"
fi
OPS_PASS=$(grep -c '^ok' "$LOG/gpu-ops.log")
OPS_FAIL=$(grep -c '^not ok' "$LOG/gpu-ops.log")

# ---- 2. a small model: 20 steps on the CPU and on CUDA in f32 and bf16 ----
dev2=$DEVICE
"$PY" t/ref/tiny_model.py model "$W/small" vocab=1000 hidden=256 layers=4 heads=8 kv=4 \
	inter=688 >/dev/null || fail "tiny_model.py"
awk 'BEGIN { srand(7); for (r = 0; r < 64; r++) { printf "{\"input_ids\":[1"
	for (i = 1; i < 128; i++) printf ",%d", 3 + int(rand() * 997); print "]}" } }' \
	>"$W/small.jsonl"
"$FRAMES" <"$W/small.jsonl" >"$W/small.frames" || fail "train_frames"
train_small() { # train_small NAME DEVICE DTYPE
	run "train-$1" 120 "$B/lora-train" -M "$W/small" -o "$W/a-$1" --device "$2" --dtype "$3" \
		--max-steps 20 -b 4 --lr 1e-3 --seed 1 --data "$W/small.frames" --log "$W/$1.jsonl"
}
train_small cpu cpu f32 || fail "lora-train on the CPU (train-cpu.log)"
train_small f32 "$dev2" f32 || fail "lora-train --device $dev2 --dtype f32 (train-f32.log)"
train_small bf16 "$dev2" bf16 || {
	[ "$dev2" = cpu ] && grep -q "computes in f32" "$LOG/train-bf16.log" &&
		cp "$W/f32.jsonl" "$W/bf16.jsonl"   # the CPU has no bf16: compare f32 again
} || fail "lora-train --device $dev2 --dtype bf16 (train-bf16.log)"
if "$PY" - "$W" >"$LOG/loss-curves.txt" 2>&1 <<-\EOF
	import json, sys
	w = sys.argv[1]
	def losses(n):
	    return [json.loads(l)["loss"] for l in open("%s/%s.jsonl" % (w, n))]
	cpu = losses("cpu")
	ok = len(cpu) == 20
	print("%-5s %-12s %-12s %-12s %-9s %-9s" % ("step", "cpu", "f32", "bf16", "rel f32", "rel bf16"))
	f32, bf16 = losses("f32"), losses("bf16")
	worst = {"f32": 0.0, "bf16": 0.0}
	for i, c in enumerate(cpu):
	    a, b = f32[i], bf16[i]
	    ra, rb = abs(a - c) / abs(c), abs(b - c) / abs(c)
	    worst["f32"], worst["bf16"] = max(worst["f32"], ra), max(worst["bf16"], rb)
	    print("%-5d %-12.6f %-12.6f %-12.6f %-9.2e %-9.2e" % (i + 1, c, a, b, ra, rb))
	ok = ok and len(f32) == len(bf16) == len(cpu) and worst["f32"] <= 1e-3 and worst["bf16"] <= 5e-2
	print("worst relative difference: f32 %.3g (allowed 1e-3), bf16 %.3g (allowed 5e-2)"
	      % (worst["f32"], worst["bf16"]))
	sys.exit(0 if ok else 1)
	EOF
then
	note "loss curves: $(tail -n 1 "$LOG/loss-curves.txt")"
else
	fail "loss curves: $(tail -n 1 "$LOG/loss-curves.txt") (loss-curves.txt)"
fi
LOSS_LINE=$(tail -n 1 "$LOG/loss-curves.txt")

# ---- 3. gen greedy tokens, CPU against CUDA ----
awk 'BEGIN { srand(11); for (r = 0; r < 4; r++) { printf "{\"input_ids\":[1"
	for (i = 1; i < 16 + 8 * r; i++) printf ",%d", 3 + int(rand() * 997); print "]}" } }' \
	>"$W/prompts.jsonl"
gen_small() { # gen_small NAME DEVICE DTYPE
	run "gen-$1" 60 sh -c '"$1/gen" -q -M "$2/small" -m testdata/demo/base.model --ids \
		--device "$3" --dtype "$4" --max-new-tokens 32 --min-new-tokens 32 \
		<"$2/prompts.jsonl" >"$2/gen-$5.jsonl"' gen "$B" "$W" "$2" "$3" "$1"
}
gen_small cpu cpu f32 || fail "gen on the CPU (gen-cpu.log)"
gen_small f32 "$dev2" f32 || fail "gen --device $dev2 --dtype f32 (gen-f32.log)"
if [ "$dev2" = cpu ]; then
	cp "$W/gen-f32.jsonl" "$W/gen-bf16.jsonl"
else
	gen_small bf16 cuda bf16 || fail "gen --device cuda --dtype bf16 (gen-bf16.log)"
fi
if "$PY" - "$W" >"$LOG/gen-tokens.txt" 2>&1 <<-\EOF
	import json, sys
	w = sys.argv[1]
	def ids(n):
	    return [json.loads(l)["ids"] for l in open("%s/gen-%s.jsonl" % (w, n))]
	cpu, f32, bf16 = ids("cpu"), ids("f32"), ids("bf16")
	def prefix(a, b):
	    n = 0
	    while n < min(len(a), len(b)) and a[n] == b[n]:
	        n += 1
	    return n
	ok = len(cpu) == 4 and all(len(x) == 32 for x in cpu) and f32 == cpu
	ok = ok and len(bf16) == 4 and all(x[0] == y[0] for x, y in zip(cpu, bf16))
	print("f32 tokens equal to the CPU's: %s; bf16 equal before the first difference: %s of 32"
	      % (f32 == cpu, ",".join(str(prefix(x, y)) for x, y in zip(cpu, bf16))))
	sys.exit(0 if ok else 1)
	EOF
then
	note "gen: $(tail -n 1 "$LOG/gen-tokens.txt")"
else
	fail "gen: $(tail -n 1 "$LOG/gen-tokens.txt") (gen-tokens.txt)"
fi
GEN_LINE=$(tail -n 1 "$LOG/gen-tokens.txt")

# ---- 4. the 7B-shaped benchmarks ----
if [ "$DEVICE" = cuda ]; then
	SHAPE="--layers 32 --hidden 4096 --inter 11008 --heads 32 --kv 32 --vocab 32000"
	SEQ=512 BATCH=8 STEPS=10 PROMPT=128 NEW=128
else
	SHAPE="--layers 2 --hidden 128 --inter 344 --heads 4 --kv 4 --vocab 1000"
	SEQ=64 BATCH=2 STEPS=2 PROMPT=16 NEW=64
fi
bench="$PY pipelines/bench/gpu_bench.py"
run peak 120 $bench peak --device "$DEVICE" || fail "gpu_bench.py peak (peak.log)"
run make-7b 240 $bench make "$W/m7b" $SHAPE --device "$DEVICE" || fail "gpu_bench.py make (make-7b.log)"
run hf-train 180 $bench train "$W/m7b" --seq $SEQ --batch $BATCH --steps $STEPS --warmup 2 \
	--device "$DEVICE" || fail "transformers + PEFT training (hf-train.log)"
run hf-decode 120 $bench decode "$W/m7b" --prompt $PROMPT --new $NEW --device "$DEVICE" ||
	fail "transformers generate (hf-decode.log)"

# our training: BATCH x SEQ random blocks, STEPS + 2 steps, peak memory sampled
awk -v n=$((BATCH * (STEPS + 2))) -v s=$SEQ -v v=1000 'BEGIN { srand(5)
	for (r = 0; r < n; r++) { printf "{\"input_ids\":[1"
	for (i = 1; i < s; i++) printf ",%d", 3 + int(rand() * (v - 3)); print "]}" } }' |
	"$FRAMES" >"$W/blocks.frames"
sampler=
if [ "$DEVICE" = cuda ]; then
	(while :; do nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits; sleep 0.2; done) \
		>"$W/mem.txt" 2>/dev/null &
	sampler=$!
fi
run our-train 240 "$B/lora-train" -M "$W/m7b" -o "$W/a7b" --device "$DEVICE" -b $BATCH \
	--max-steps $((STEPS + 2)) --lr 2e-4 --skip-nonfinite --data "$W/blocks.frames" \
	--log "$W/our-train.jsonl" || fail "lora-train on the 7B shape (our-train.log)"
[ -n "$sampler" ] && kill "$sampler" 2>/dev/null
# our decode: whole runs of gen, timed as pipelines/bench/gen-cpu.sh does
awk -v n=$PROMPT 'BEGIN { srand(2); printf "{\"input_ids\":[1"
	for (i = 1; i < n; i++) printf ",%d", 3 + int(rand() * 997); print "]}" }' >"$W/p7b.jsonl"
echo '{"input_ids":[1]}' >"$W/one.jsonl"
gen_time() { # gen_time INPUT NEW [OUTPUT]: seconds of one run of gen
	t0=$(date +%s.%N)
	timeout 120 "$B/gen" -q -M "$W/m7b" -m testdata/demo/base.model --ids --device "$DEVICE" \
		--max-new-tokens "$2" --min-new-tokens "$2" <"$1" >"$W/${3:-gen7b.out}" \
		2>>"$LOG/our-decode.log" || return 1
	t1=$(date +%s.%N)
	awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }'
}
: >"$LOG/our-decode.log"
LOAD=$(gen_time "$W/one.jsonl" 1) && FIRST=$(gen_time "$W/p7b.jsonl" 1) &&
	ALL=$(gen_time "$W/p7b.jsonl" $NEW) || { fail "gen on the 7B shape (our-decode.log)"; LOAD=0 FIRST=0 ALL=0; }
echo "load $LOAD first $FIRST all $ALL" >>"$LOG/our-decode.log"
# the same with each decoding step recorded once and replayed (CUDA graphs,
# LP_CUDA_GRAPH=1): its tokens must be the same
GFIRST=$(LP_CUDA_GRAPH=1 gen_time "$W/p7b.jsonl" 1 gen7b-graph1.out) &&
	GALL=$(LP_CUDA_GRAPH=1 gen_time "$W/p7b.jsonl" $NEW gen7b-graph.out) ||
	{ fail "gen LP_CUDA_GRAPH=1 on the 7B shape (our-decode.log)"; GFIRST=0 GALL=0; }
echo "graph: first $GFIRST all $GALL" >>"$LOG/our-decode.log"
GRAPH_SAME=no
cmp -s "$W/gen7b.out" "$W/gen7b-graph.out" && GRAPH_SAME=yes
[ "$GRAPH_SAME" = yes ] || fail "gen LP_CUDA_GRAPH=1 gave other tokens than without"

# ---- the table ----
DATE=$(date -u +%Y-%m-%d)
SLUG=$(echo "$GPU" | tr 'A-Z' 'a-z' | tr -cs 'a-z0-9' '-' | sed 's/^-//; s/-$//')
RES=$RESULTS_DIR/gpu-$DATE-$SLUG.md
"$PY" - "$W" "$LOG" "$RES" "$GPU" "$DATE" "$DEVICE" "$OPS_PASS" "$OPS_FAIL" "$LOSS_LINE" \
	"$GEN_LINE" "$SEQ" "$BATCH" "$NEW" "$LOAD" "$FIRST" "$ALL" "$GFIRST" "$GALL" "$GRAPH_SAME" \
	$SHAPE <<-\EOF || fail "the results table"
	import glob, json, os, statistics, sys
	(w, log, res, gpu, date, device, ops_pass, ops_fail, loss_line, gen_line, seq, batch, new,
	 load, first, full, gfirst, gfull, gsame) = sys.argv[1:20]
	shape = sys.argv[20:]
	sh = {shape[i][2:]: int(shape[i + 1]) for i in range(0, len(shape), 2)}
	seq, batch, new = int(seq), int(batch), int(new)
	def last_json(name):
	    try:
	        lines = [l for l in open(os.path.join(log, name + ".log")) if l.startswith("{")]
	        return json.loads(lines[-1])
	    except (OSError, IndexError, ValueError):
	        return {}
	peak, hf, hfd = last_json("peak"), last_json("hf-train"), last_json("hf-decode")
	L, C, I, H, KVH, V = sh["layers"], sh["hidden"], sh["inter"], sh["heads"], sh["kv"], sh["vocab"]
	D = C // H
	P = L * (C * H * D + 2 * C * KVH * D + H * D * C + 3 * C * I) + V * C
	r = 8
	P_lora = L * r * ((C + H * D) + 2 * (C + KVH * D) + (H * D + C) + 2 * (C + I) + (I + C))
	flops_tok = 4 * P + 6 * P_lora + 6 * L * seq * H * D
	steps = []
	try:
	    steps = [json.loads(l) for l in open(os.path.join(w, "our-train.jsonl"))]
	except OSError:
	    pass
	ours_tps = statistics.median([s["tokens_per_s"] for s in steps[2:]]) if len(steps) > 2 else 0
	mem = 0.0
	try:
	    mem = max(float(x) for x in open(os.path.join(w, "mem.txt")) if x.strip()) / 1024
	except (OSError, ValueError):
	    pass
	wbytes = sum(os.path.getsize(f) for f in glob.glob(os.path.join(w, "m7b", "*.safetensors")))
	pk, bw = peak.get("gemm_bf16_tflops", 0), peak.get("copy_gbps", 0)
	def mfu(tps):
	    return "%.1f%%" % (100 * tps * flops_tok / (pk * 1e12)) if pk and tps else "-"
	floor = bw * 1e9 / wbytes if wbytes else 0
	load, first, full = float(load), float(first), float(full)
	ours_dec = (new - 1) / (full - first) if full > first > 0 else 0
	gfirst, gfull = float(gfirst), float(gfull)
	graph_dec = (new - 1) / (gfull - gfirst) if gfull > gfirst > 0 else 0
	hf_tps, hf_dec = hf.get("tokens_per_s", 0), hfd.get("decode_tokens_per_s", 0)
	def ratio(a, b):
	    return "%.2fx" % (a / b) if a and b else "-"
	def pct(a, b):
	    return "%.0f%%" % (100 * a / b) if a and b else "-"
	out = []
	out.append("# GPU run %s: %s" % (date, gpu))
	out.append("")
	if device != "cuda":
	    out.append("(--device cpu with tiny shapes: a check of pipelines/bench/gpu.sh, not a benchmark)")
	    out.append("")
	out.append("Made by `pipelines/bench/gpu.sh`; logs in its $OUT. Machine:")
	out.append("")
	for l in open(os.path.join(log, "machine.txt")):
	    out.append("    " + l.rstrip())
	out.append("")
	out.append("| check | result |")
	out.append("| --- | --- |")
	out.append("| gpu-ops (every op forward and backward vs the CPU backend) | %s passed, %s failed |" % (ops_pass, ops_fail))
	out.append("| 20 LoRA steps, small model: loss curves vs the CPU | %s |" % loss_line)
	out.append("| gen greedy tokens vs the CPU | %s |" % gen_line)
	out.append("")
	out.append("Model: %d layers, hidden %d, intermediate %d, heads %d/%d, vocabulary %d, random bf16 weights; "
	           "LoRA r=8 alpha 32 dropout 0.05 on q,k,v,o,gate,up,down; sequence %d, micro-batch %d." %
	           (L, C, I, H, KVH, V, seq, batch))
	out.append("Peaks measured in this run: bf16 GEMM %.0f TFLOP/s, copy bandwidth %.0f GB/s." % (pk, bw))
	out.append("Model FLOPs per trained token: 4 P + 6 P_lora + 6 L T HD = %.3g (P = %.3g frozen Linear and head weights, P_lora = %.3g)." %
	           (flops_tok, P, P_lora))
	out.append("")
	out.append("| training | tokens/s | MFU | peak memory GiB |")
	out.append("| --- | --- | --- | --- |")
	act = "bf16" if device == "cuda" else "f32"
	out.append("| lora-train --device %s (%s) | %.0f | %s | %s |" % (device, act, ours_tps, mfu(ours_tps), "%.1f" % mem if mem else "-"))
	out.append("| transformers + PEFT (bf16, sdpa) | %.0f | %s | %s |" % (hf_tps, mfu(hf_tps), "%.1f" % hf.get("peak_gib", 0) if hf else "-"))
	out.append("| ratio | %s | | |" % ratio(ours_tps, hf_tps))
	out.append("")
	out.append("| batch-1 decode (%d new tokens) | tokens/s | of the bandwidth floor (%.0f tokens/s = %.0f GB/s / %.2f GB) |" %
	           (new, floor, bw, wbytes / 1e9))
	out.append("| --- | --- | --- |")
	out.append("| gen --device %s (%s) | %.1f | %s |" % (device, act, ours_dec, pct(ours_dec, floor)))
	out.append("| gen --device %s, LP_CUDA_GRAPH=1 (same tokens: %s) | %.1f | %s |" %
	           (device, gsame, graph_dec, pct(graph_dec, floor)))
	out.append("| transformers generate (bf16) | %.1f | %s |" % (hf_dec, pct(hf_dec, floor)))
	out.append("| ratio | %s | |" % ratio(ours_dec, hf_dec))
	out.append("")
	open(res, "w").write("\n".join(out))
	print("\n".join(out))
	EOF
[ -n "${OUT:-}" ] && [ -f "$RES" ] && cp "$RES" "$LOG/"
echo "gpu.sh: table in $RES; logs in $LOG"
[ "$failed" = 0 ] || { echo "gpu.sh: $failed step(s) failed" >&2; exit 1; }
exit 0
