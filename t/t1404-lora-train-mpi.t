#!/bin/sh
# lora-train on several ranks (mpirun, CPU backend): the same result as one
# process with the same global batch, from a file and from a pipe, LoRA and
# --full (sharded optimizer); resume on another number of ranks; a rank
# killed, stopped or signalled; ranks that disagree.
#
# Tolerance. Rank r computes micro-batches r, r+N, ... of each step exactly
# as one process computes them (same rows, padding and dropout seeds), so
# the only difference is the order in which the micro-batches' gradients
# are added: each summed gradient moves by a few f32 roundings (relative
# 1e-7). AdamW divides the moment by its root, so such a change moves an
# update by about as much relative to lr; over S steps a weight can drift
# by some 1e-7 * lr * S. We allow 1e-3 * lr * S (here 1e-3 * 1e-3 * 6 =
# 6e-6), far above that and far below what a wrong batch gives: a step
# that misses or repeats a micro-batch moves updates by O(lr), which the
# last test shows is caught.
. "$(dirname "$0")/test-lib.sh"

FRAMES="$LP_BUILD/t/train_frames"
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive
# mpirun refuses root without these
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# mpirun as the tests run it, first on PATH (timeout(1) finds it too):
# 3 ranks on 2 cores need --oversubscribe; under AddressSanitizer (make
# asan) the ranks do not look for leaks, since OpenMPI's plug-ins keep
# allocations until exit and are unloaded before the leak report, which
# then cannot say whose they are (one process is leak-checked by t1400
# and by the tests here that run without mpirun).
if real_mpirun=$(command -v mpirun); then
	mkdir -p "$TRASH/mpi-bin"
	cat >"$TRASH/mpi-bin/mpirun" <<-EOF
	#!/bin/sh
	ASAN_OPTIONS="\${ASAN_OPTIONS:+\$ASAN_OPTIONS:}detect_leaks=0" exec "$real_mpirun" --oversubscribe "\$@"
	EOF
	chmod +x "$TRASH/mpi-bin/mpirun"
	PATH=$TRASH/mpi-bin:$PATH
fi
# marks this file's processes, to find a rank's pid among others'
export LP_TEST_TAG="t1404-$$"

test_expect_success '--help says whether the build runs on several ranks' '
	lora-train --help >out &&
	test_grep -e "Ranks: data parallel over MPI" -e "Ranks: single-process only" out &&
	test_grep -- "--comm-timeout" out
'

# the rest needs a build with MPI, and mpirun
lora-train --help | grep -q "over MPI" && command -v mpirun >/dev/null 2>&1 &&
	test_set_prereq MPI

# same_weights A B TOL: every tensor of two safetensors files within TOL
cat >same.py <<\EOF
import array, json, struct, sys
def load(p):
    b = open(p, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    out = {}
    for k, v in h.items():
        if k == "__metadata__":
            continue
        assert v["dtype"] == "F32", k
        s, e = v["data_offsets"]
        a = array.array("f")
        a.frombytes(b[8 + n + s:8 + n + e])
        out[k] = a
    return out
a, b, tol = load(sys.argv[1]), load(sys.argv[2]), float(sys.argv[3])
assert sorted(a) == sorted(b), "other tensors"
d, name = max((max((abs(x - y) for x, y in zip(a[k], b[k])), default=0.0), k) for k in a)
print("max difference %.3g (%s), tolerance %.3g" % (d, name, tol))
sys.exit(0 if d <= tol else 1)
EOF
same_weights() { python3 same.py "$@"; }
TOL=6e-6

# rank_pid N: the pid of rank N of this file's running job
rank_pid() {
	for e in /proc/[0-9]*/environ; do
		if tr '\0' '\n' <"$e" 2>/dev/null | grep -qx "LP_TEST_TAG=$LP_TEST_TAG" &&
			tr '\0' '\n' <"$e" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$1"; then
			p=${e#/proc/}; echo "${p%/environ}"; return 0
		fi
	done
	return 1
}
# fails_in_time CMD...: CMD fails cleanly (status 1-127), and not by the
# watchdog that keeps a hung job from hanging the suite
fails_in_time() {
	timeout 120 "$@"
	rc=$?
	if [ $rc = 0 ] || [ $rc = 124 ] || [ $rc -ge 128 ]; then
		echo "fails_in_time: '$*' exited $rc" >&2; return 1
	fi
}
# gone N...: wait until ranks N... of this file's job have left
gone() {
	i=0
	while [ $i -lt 200 ]; do
		alive=
		for r in "$@"; do rank_pid $r >/dev/null && alive=1; done
		[ -z "$alive" ] && return 0
		sleep 0.1; i=$((i + 1))
	done
	echo "ranks still running" >&2; return 1
}
# kill_at N SIGNAL: read metrics from stdin, signal the process in ./pid at line N
kill_at() {
	n=0
	while read l; do
		n=$((n + 1))
		if test $n = $1; then kill -$2 $(cat pid); fi
	done
	return 0
}
# at_line N SIGNAL RANK: read metrics from stdin, signal RANK at line N
at_line() {
	n=0
	while read l; do
		n=$((n + 1))
		if test $n = $1; then kill -$2 $(rank_pid $3); fi
	done
	return 0
}

test_expect_success MPI 'setup: a base model, 30 records' '
	cat >config.json <<-\EOF &&
	{"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 32,
	 "intermediate_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
	 "num_hidden_layers": 2, "vocab_size": 100, "max_position_embeddings": 64,
	 "rms_norm_eps": 1e-6, "tie_word_embeddings": false, "pad_token_id": 0}
	EOF
	awk "BEGIN { srand(3); for (r = 0; r < 30; r++) { printf \"{\\\"input_ids\\\":[\";
		n = 8 + r % 5; for (i = 0; i < n; i++) printf \"%s%d\", i ? \",\" : \"\", 1 + int(rand() * 99);
		printf \"]}\n\" } }" >pt.jsonl &&
	"$FRAMES" <pt.jsonl >pt.frames &&
	head -n 20 pt.jsonl | "$FRAMES" >pt20.frames &&
	lora-train --from-scratch config.json -o base --max-steps 2 --lr 1e-3 <pt.frames >/dev/null
'

L="-M base -b 2 --max-steps 6 --lr 1e-3 --dropout 0.1 --warmup-steps 1"
F="-M base --full -b 2 --max-steps 6 --lr 1e-3 --warmup-steps 1"

test_expect_success MPI 'LoRA, --data: 2 and 3 ranks give one process'"'"'s adapter' '
	lora-train $L --grad-accum 6 --data pt.frames -o one >one.log &&
	mpirun -np 2 lora-train $L --grad-accum 3 --data pt.frames -o two >two.log 2>two.err &&
	mpirun -np 3 lora-train $L --grad-accum 2 --data pt.frames -o three >three.log &&
	test_grep "MPI, 2 ranks on 1 node" two.err &&
	same_weights one/adapter_model.safetensors two/adapter_model.safetensors $TOL &&
	same_weights one/adapter_model.safetensors three/adapter_model.safetensors $TOL &&
	test_line_count = 6 two.log && test_line_count = 6 three.log &&
	sed "s/.*\"loss\":\([^,]*\),.*/\1/" one.log >l1 &&
	sed "s/.*\"loss\":\([^,]*\),.*/\1/" three.log >l3 &&
	paste l1 l3 | awk "{ d = \$1 - \$2; if (d < 0) d = -d; if (d > 1e-6) exit 1 }"
'

test_expect_success MPI 'evaluation batches dealt round the ranks: the same eval_loss' '
	lora-train $L --grad-accum 6 --data pt.frames --eval pt20.frames --eval-steps 3 \
		-o ev1 >ev1.log &&
	mpirun -np 3 lora-train $L --grad-accum 2 --data pt.frames --eval pt20.frames \
		--eval-steps 3 -o ev3 >ev3.log &&
	sed -n "s/.*\"eval_loss\":\([^,}]*\).*/\1/p" ev1.log >e1 &&
	sed -n "s/.*\"eval_loss\":\([^,}]*\).*/\1/p" ev3.log >e3 &&
	test_line_count = 2 e1 && test_line_count = 2 e3 &&
	paste e1 e3 | awk "{ d = \$1 - \$2; if (d < 0) d = -d; if (d > 1e-6) exit 1 }"
'

test_expect_success MPI 'LoRA from a pipe: rank 0 reads, the ranks get their batches' '
	mpirun -np 3 lora-train $L --grad-accum 2 -o pipe3 <pt.frames >pipe3.log &&
	cmp three/adapter_model.safetensors pipe3/adapter_model.safetensors &&
	cat pt.frames | mpirun -np 2 lora-train $L --grad-accum 3 -o pipe2 >/dev/null &&
	same_weights one/adapter_model.safetensors pipe2/adapter_model.safetensors $TOL
'

test_expect_success MPI '--full shards the optimizer over 2 and 3 ranks: the same model' '
	lora-train $F --grad-accum 6 --data pt.frames -o fone >/dev/null &&
	mpirun -np 2 lora-train $F --grad-accum 3 --data pt.frames -o ftwo >/dev/null &&
	mpirun -np 3 lora-train $F --grad-accum 2 -o fthree <pt.frames >/dev/null &&
	same_weights fone/model.safetensors ftwo/model.safetensors $TOL &&
	same_weights fone/model.safetensors fthree/model.safetensors $TOL &&
	LLAMAPIPE_COMM_CHUNK=5 mpirun -np 3 lora-train $F --grad-accum 2 --data pt.frames \
		-o fchunk >/dev/null &&
	same_weights fone/model.safetensors fchunk/model.safetensors $TOL
'

test_expect_success MPI 'only rank 0 writes: metrics, --log, checkpoints, the adapter' '
	mpirun -np 3 lora-train $L --grad-accum 2 --data pt.frames -o w --log w.log \
		--save-steps 2 >stdout &&
	test_line_count = 0 stdout && test_line_count = 6 w.log &&
	ls w >dirs && printf "%s\n" adapter_config.json adapter_model.safetensors \
		checkpoint-2 checkpoint-4 >expect && test_cmp expect dirs
'

test_expect_success MPI 'resume a sharded checkpoint on other numbers of ranks' '
	mpirun -np 3 lora-train $F --grad-accum 2 --data pt.frames -o fr --save-steps 3 \
		>/dev/null &&
	mkdir fr2 fr1 && cp -r fr/checkpoint-3 fr2/ && cp -r fr/checkpoint-3 fr1/ &&
	mpirun -np 2 lora-train $F --grad-accum 3 --data pt.frames -o fr2 --resume fr2 \
		>/dev/null 2>err &&
	test_grep "resuming from fr2/checkpoint-3 at step 3" err &&
	lora-train $F --grad-accum 6 --data pt.frames -o fr1 --resume fr1 >/dev/null 2>&1 &&
	same_weights fone/model.safetensors fr2/model.safetensors $TOL &&
	same_weights fone/model.safetensors fr1/model.safetensors $TOL
'

test_expect_success MPI 'a resume whose ranks cannot make the checkpoint'"'"'s step says how' '
	fails_in_time mpirun -np 2 lora-train $F --grad-accum 2 --data pt.frames -o fr2 \
		--resume fr/checkpoint-3 >/dev/null 2>err &&
	test_grep "takes 6 micro-batches; on 2 ranks give --grad-accum 3" err &&
	fails_in_time mpirun -np 4 lora-train $F --grad-accum 2 --data pt.frames -o fr2 \
		--resume fr/checkpoint-3 >/dev/null 2>err &&
	test_grep "4 ranks cannot share evenly" err
'

test_expect_success MPI 'ranks whose data or settings differ stop at the start' '
	fails_in_time mpirun -np 2 lora-train $L --data pt.frames -o d1 : \
		-np 1 lora-train $L --data pt20.frames -o d1 >/dev/null 2>err &&
	test_grep "ranks: rank 2: data differ from rank 0.s" err && test -z "$(ls -A d1)" &&
	fails_in_time mpirun -np 1 lora-train $L --data pt.frames -o d2 : \
		-np 1 lora-train $L --lr 2e-3 --data pt.frames -o d2 >/dev/null 2>err &&
	test_grep "ranks: rank 1: settings differ from rank 0.s" err && test -z "$(ls -A d2)"
'

test_expect_success MPI 'bad data on a pipe: rank 0 says so and every rank exits' '
	fails_in_time mpirun -np 2 lora-train $L -o bad </dev/null 2>err &&
	test_grep "ended without its trailer" err && test -z "$(ls -A bad)" &&
	echo "{\"input_ids\":[1,2,150,3]}" | "$FRAMES" >big.frames &&
	cat pt.frames big.frames | fails_in_time mpirun -np 3 lora-train $L \
		-o bad 2>err &&
	test_grep "record 31 (byte [0-9]*): input_ids\[2\] = 150 is outside" err
'

K="-M base -b 2 --max-steps 600 --save-steps 50 --save-total-limit 2 --data pt.frames --comm-timeout 8"

test_expect_success MPI 'kill -9 of a rank: every rank exits, the last checkpoint resumes' '
	lora-train $K --grad-accum 3 -o kwhole >/dev/null &&
	( timeout 120 mpirun -np 3 lora-train $K -o kcut 2>kcut.err; echo $? >rc ) |
		at_line 120 KILL 1 &&
	rc=$(cat rc) && test $rc != 0 && test $rc != 124 && gone 0 2 &&
	test_grep "rank 1" kcut.err &&
	! test -f kcut/adapter_model.safetensors &&
	ck=$(ls -d kcut/checkpoint-* | sort -t- -k2 -n | tail -n 1) &&
	for f in adapter_config.json adapter_model.safetensors optimizer.safetensors \
		trainer_state.json; do test -f $ck/$f || return 1; done &&
	lora-train $K --grad-accum 3 -o kcut --resume kcut >/dev/null 2>err &&
	test_grep "resuming from $ck" err &&
	same_weights kwhole/adapter_model.safetensors kcut/adapter_model.safetensors 1.2e-4
'

test_expect_success MPI 'a stopped rank is named and every rank exits within --comm-timeout' '
	( timeout 120 mpirun -np 3 lora-train $K --max-steps 100000 -o kstop \
		2>kstop.err; echo $? >rc ) | at_line 50 STOP 2 &&
	rc=$(cat rc) && test $rc != 0 && test $rc != 124 &&
	test_grep -E "comm: ranks? ([0-9]+, )*2(, [0-9]+)* (fell silent in|did not reach) " kstop.err &&
	gone 0 1 2
'

test_expect_success MPI 'a stopped rank 0 is named by the others' '
	( timeout 120 mpirun -np 2 lora-train $K --max-steps 100000 -o kstop0 \
		2>kstop0.err; echo $? >rc ) | at_line 50 STOP 0 &&
	rc=$(cat rc) && test $rc != 0 && test $rc != 124 &&
	test_grep "comm: rank 1: rank 0 did not complete" kstop0.err &&
	gone 0 1
'

test_expect_success MPI 'SIGTERM to one rank: all stop at the same step, rank 0 checkpoints' '
	( timeout 120 mpirun -np 3 lora-train $K --grad-accum 1 --max-steps 100000 -o kterm \
		2>kterm.err; echo $? >rc ) | at_line 50 TERM 2 &&
	rc=$(cat rc) && test $rc != 0 && test $rc != 124 &&
	test_grep "stopped by a signal to another rank at step [0-9]*; checkpoint written" kterm.err &&
	step=$(sed -n "s/.*at step \([0-9]*\);.*/\1/p" kterm.err) &&
	test -f kterm/checkpoint-$step/trainer_state.json
'

test_expect_success MPI 'SIGTERM to mpirun reaches the ranks: a checkpoint, then exit 1' '
	( timeout 120 mpirun -np 2 lora-train $K --grad-accum 1 --max-steps 100000 -o kterm2 \
		2>kterm2.err & echo $! >pid; wait $!; echo $? >rc ) | kill_at 50 TERM &&
	test "$(cat rc)" = 1 &&
	# mpirun forwards the signal, then may close the output of the ranks before
	# rank 0 has said where the checkpoint went, and may return before the
	# ranks have finished: wait for them and look for it on disk.
	gone 0 1 &&
	ck=$(ls -d kterm2/checkpoint-* | sort -t- -k2 -n | tail -n 1) &&
	for f in adapter_config.json adapter_model.safetensors optimizer.safetensors \
		trainer_state.json; do test -f $ck/$f || return 1; done &&
	! test -f kterm2/adapter_model.safetensors
'

test_expect_success MPI 'the tolerance catches a wrong global batch' '
	mpirun -np 2 lora-train $L --grad-accum 2 --data pt.frames -o wrong >/dev/null &&
	! same_weights one/adapter_model.safetensors wrong/adapter_model.safetensors $TOL
'

test_done
