#!/bin/sh
# lora-train: outputs, checkpoints and resume, signals, bad input. A base
# model is made here with --from-scratch; no Python is needed (see t1401
# for the comparison with transformers + PEFT).
. "$(dirname "$0")/test-lib.sh"

FRAMES="$LP_BUILD/t/train_frames"
# passive waiting: libgomp's spinning makes a loaded machine 20x slower
export OMP_NUM_THREADS=2 OMP_WAIT_POLICY=passive

test_expect_success 'setup: a config, frames, a base model made from scratch' '
	cat >config.json <<-\EOF &&
	{"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 32,
	 "intermediate_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
	 "num_hidden_layers": 2, "vocab_size": 100, "max_position_embeddings": 64,
	 "rms_norm_eps": 1e-6, "tie_word_embeddings": false, "pad_token_id": 0}
	EOF
	awk "BEGIN { srand(3); for (r = 0; r < 10; r++) { printf \"{\\\"input_ids\\\":[\";
		n = 8 + r % 5; for (i = 0; i < n; i++) printf \"%s%d\", i ? \",\" : \"\", 1 + int(rand() * 99);
		printf \"]}\n\" } }" >pt.jsonl &&
	"$FRAMES" <pt.jsonl >pt.frames &&
	lora-train --from-scratch config.json -o base --max-steps 2 --lr 1e-3 <pt.frames >scratch.log &&
	test -f base/config.json && test -f base/model.safetensors &&
	test_line_count = 2 scratch.log
'

test_expect_success '--help' '
	lora-train --help >out &&
	test_grep -- "--grad-accum" out
'

test_expect_success 'an adapter directory, one JSON metrics line per step' '
	lora-train -M base -o a1 --max-steps 4 -b 2 --data pt.frames >m1 &&
	test -f a1/adapter_config.json && test -f a1/adapter_model.safetensors &&
	test_line_count = 4 m1 &&
	for k in step epoch loss lr grad_norm tokens_per_s; do test_grep -q "\"$k\":" m1 || return 1; done &&
	test_grep -q "\"r\": 8" a1/adapter_config.json &&
	test_grep -q "\"lora_alpha\": 32" a1/adapter_config.json &&
	test_grep -q "base_model.model.model.layers.1.mlp.down_proj.lora_B.weight" a1/adapter_model.safetensors
'

test_expect_success 'metrics to --log, nothing on stdout; LLAMAPIPE_MODEL as default' '
	LLAMAPIPE_MODEL=base lora-train -o a2 --max-steps 3 --log m2 <pt.frames >stdout &&
	test_line_count = 0 stdout && test_line_count = 3 m2
'

test_expect_success 'the same seed gives the same adapter; shuffling and dropout follow it' '
	lora-train -M base -o s1 --max-steps 5 --dropout 0.2 --seed 7 <pt.frames >/dev/null &&
	lora-train -M base -o s2 --max-steps 5 --dropout 0.2 --seed 7 <pt.frames >/dev/null &&
	lora-train -M base -o s3 --max-steps 5 --dropout 0.2 --seed 8 <pt.frames >/dev/null &&
	cmp s1/adapter_model.safetensors s2/adapter_model.safetensors &&
	! cmp -s s1/adapter_model.safetensors s3/adapter_model.safetensors
'

test_expect_success '--grad-checkpointing computes the same bits' '
	lora-train -M base -o g1 --max-steps 4 -b 3 --dropout 0.1 <pt.frames >l1 &&
	lora-train -M base -o g2 --max-steps 4 -b 3 --dropout 0.1 --grad-checkpointing <pt.frames >l2 &&
	cmp g1/adapter_model.safetensors g2/adapter_model.safetensors
'

test_expect_success 'eval_loss at --eval-steps and at the end' '
	head -n 3 pt.jsonl | "$FRAMES" >ev.frames &&
	lora-train -M base -o e1 --max-steps 5 --eval ev.frames --eval-steps 2 <pt.frames >me &&
	test $(grep -c eval_loss me) = 3
'

test_expect_success 'checkpoints every --save-steps, --save-total-limit keeps the newest' '
	lora-train -M base -o c1 --max-steps 9 --save-steps 2 --save-total-limit 2 <pt.frames >/dev/null &&
	ls c1 | grep checkpoint >dirs &&
	printf "checkpoint-6\ncheckpoint-8\n" >expect &&
	test_cmp expect dirs &&
	for f in adapter_config.json adapter_model.safetensors optimizer.safetensors trainer_state.json; do
		test -f c1/checkpoint-8/$f || return 1
	done &&
	test_grep -q "\"global_step\": 8" c1/checkpoint-8/trainer_state.json
'

# The metrics pipe holds at most some 600 lines: a reader that kills at line
# 100 stops a run of 2000 steps well before its end.
ARGS="-M base -b 2 --grad-accum 2 --max-steps 2000 --save-steps 50 --save-total-limit 2 --dropout 0.1 --data pt.frames"
# kill_at N SIGNAL: read lora-train's metrics from stdin, send SIGNAL to the
# process in ./pid at line N
kill_at() {
	n=0
	while read l; do
		n=$((n + 1))
		if test $n = $1; then kill -$2 $(cat pid); fi
	done
	return 0
}

test_expect_success 'kill -9 at some step, --resume: the same adapter, bit for bit' '
	lora-train $ARGS -o whole >/dev/null &&
	( lora-train $ARGS -o cut 2>/dev/null & echo $! >pid; wait ) |
		kill_at 100 KILL &&
	! test -f cut/adapter_model.safetensors &&
	ls cut | grep -q checkpoint- &&
	lora-train $ARGS -o cut --resume cut >resumed 2>err &&
	test_grep "resuming from cut/checkpoint-" err &&
	cmp whole/adapter_model.safetensors cut/adapter_model.safetensors
'

test_expect_success '--full: kill -9 and --resume give the same model too' '
	F="-M base --full -b 2 --max-steps 2000 --save-steps 40 --save-total-limit 1 --data pt.frames" &&
	lora-train $F -o fwhole >/dev/null &&
	( lora-train $F -o fcut 2>/dev/null & echo $! >pid; wait ) |
		kill_at 100 KILL &&
	! test -f fcut/model.safetensors &&
	lora-train $F -o fcut --resume fcut >/dev/null 2>&1 &&
	cmp fwhole/model.safetensors fcut/model.safetensors
'

test_expect_success 'SIGTERM writes a checkpoint and exits non-zero' '
	( lora-train $ARGS -o term 2>term.err & echo $! >pid; wait $!; echo $? >rc ) |
		kill_at 100 TERM &&
	test "$(cat rc)" = 1 &&
	test_grep "stopped by SIGTERM at step [0-9]*; checkpoint written to term/checkpoint-" term.err &&
	step=$(sed -n "s/.*at step \([0-9]*\);.*/\1/p" term.err) &&
	test -f term/checkpoint-$step/trainer_state.json &&
	lora-train $ARGS -o term --resume term/checkpoint-$step >/dev/null 2>&1 &&
	cmp whole/adapter_model.safetensors term/adapter_model.safetensors
'

test_expect_success '--init: continue from an adapter' '
	lora-train -M base -o i1 --init a1 --max-steps 2 <pt.frames >/dev/null &&
	test -f i1/adapter_model.safetensors
'

# ---- bad input ----

test_expect_success 'no base model: the error names -M and LLAMAPIPE_MODEL' '
	test_must_fail lora-train -o x <pt.frames 2>err &&
	test_grep -- "-M" err && test_grep LLAMAPIPE_MODEL err
'

test_expect_success 'no output directory is a usage error' '
	test_must_fail lora-train -M base <pt.frames 2>err &&
	test_grep -- "-o DIR" err
'

test_expect_success 'an empty dataset; no bytes at all' '
	"$FRAMES" </dev/null >empty.frames &&
	test_must_fail lora-train -M base -o x <empty.frames 2>err &&
	test_grep "no examples" err && ! test -d x &&
	test_must_fail lora-train -M base -o x </dev/null 2>err &&
	test_grep "stream at byte 0: ended without its trailer" err && ! test -d x
'

test_expect_success 'an id outside the vocabulary, named with its record' '
	echo "{\"input_ids\":[1,2,150,3]}" | "$FRAMES" >big.frames &&
	cat pt.frames big.frames >bad.frames &&
	test_must_fail lora-train -M base -o x --data bad.frames 2>err &&
	test_grep "record 11 (byte [0-9]*): input_ids\[2\] = 150 is outside the model.s vocabulary of 100" err
'

test_expect_success 'a label outside the vocabulary' '
	echo "{\"input_ids\":[1,2,3],\"labels\":[-100,2,300]}" | "$FRAMES" >lab.frames &&
	test_must_fail lora-train -M base -o x --data lab.frames 2>err &&
	test_grep "labels\[2\] = 300" err
'

test_expect_success 'an adapter that does not fit the base' '
	sed "s/\"hidden_size\": 32/\"hidden_size\": 48/" config.json >config48.json &&
	lora-train --from-scratch config48.json -o base48 --max-steps 1 <pt.frames >/dev/null &&
	test_must_fail lora-train -M base48 -o x --init a1 <pt.frames 2>err &&
	test_grep "does not fit" err
'

test_expect_success 'a non-empty output directory is refused without --force or --resume' '
	test_must_fail lora-train -M base -o a1 --max-steps 1 <pt.frames 2>err &&
	test_grep "already holds adapter_model.safetensors" err &&
	lora-train -M base -o a1 --max-steps 1 --force <pt.frames >/dev/null
'

test_expect_success '--resume where there is no checkpoint' '
	test_must_fail lora-train -M base -o x --resume a2 <pt.frames 2>err &&
	test_grep "no checkpoint here" err
'

test_expect_success '--resume with other settings or data is refused' '
	test_must_fail lora-train -M base -b 3 --grad-accum 2 --max-steps 120 --save-steps 3 \
		--data pt.frames -o whole2 --resume c1/checkpoint-8 2>err &&
	test_grep "batch-size" err &&
	test_must_fail lora-train -M base -o whole3 --resume c1/checkpoint-8 --data ev.frames 2>err &&
	test_grep "other data" err
'

test_expect_success 'bad option values' '
	test_must_fail lora-train -M base -o x --targets q_proj,foo <pt.frames 2>err &&
	test_grep "unknown module .foo." err &&
	test_must_fail lora-train -M base -o x --lr-schedule wavy <pt.frames 2>err &&
	test_grep "wavy" err &&
	test_must_fail lora-train -M base -o x --modules-to-save embed_tokens,norm <pt.frames 2>err &&
	test_grep "norm" err
'

test_expect_success 'a NaN loss stops, naming the step and the last checkpoint' '
	python3 - base nanbase <<-\EOF &&
	import json, os, shutil, struct, sys
	src, dst = sys.argv[1], sys.argv[2]
	shutil.copytree(src, dst)
	p = os.path.join(dst, "model.safetensors")
	b = bytearray(open(p, "rb").read())
	n = struct.unpack("<Q", b[:8])[0]
	h = json.loads(b[8:8 + n])
	s, e = h["model.norm.weight"]["data_offsets"]
	b[8 + n + s:8 + n + s + 4] = struct.pack("<f", float("nan"))
	open(p, "wb").write(bytes(b))
	EOF
	test_must_fail lora-train -M nanbase -o n1 --max-steps 3 <pt.frames 2>err &&
	test_grep "step 1: loss nan.*not finite; last good checkpoint: none" err &&
	lora-train -M nanbase -o n2 --max-steps 3 --skip-nonfinite <pt.frames >m 2>err &&
	test_grep "step skipped" err && test_line_count = 3 m
'

test_expect_success '--device cuda without the CUDA backend (or op) says so' '
	if lora-train -M base -o cu --device cuda --max-steps 1 <pt.frames >/dev/null 2>err; then
		: a GPU machine with every op
	else
		test_grep -e "CUDA" -e "not implemented" -e "cuda" err
	fi
'

test_done
