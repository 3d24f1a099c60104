#!/bin/sh
# lora-train never loses work or data silently: the output is probed before
# step 1, SIGHUP and SIGPIPE checkpoint like SIGTERM, examples with no label
# are named, the adapter is written weights first, stale checkpoint
# temporaries are removed, nothing non-finite is accepted or written.
. "$(dirname "$0")/test-lib.sh"

FRAMES="$LP_BUILD/t/train_frames"
export OMP_NUM_THREADS=2 OMP_WAIT_POLICY=passive

test_expect_success 'setup: a base model made from scratch, frames' '
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
	lora-train --from-scratch config.json -o base --max-steps 1 <pt.frames >/dev/null
'

test_expect_success 'an output that cannot be written fails before step 1' '
	test_must_fail lora-train -M base -o /nonexistent/dir/x --max-steps 50 <pt.frames >m 2>err &&
	test_grep "lora-train: /nonexistent/dir/x: cannot make directory" err &&
	test ! -s m &&
	mkdir ro && chmod 555 ro &&
	if touch ro/probe 2>/dev/null; then
		rm -f ro/probe; say "root ignores modes here: a read-only bind is not available"
	else
		test_must_fail lora-train -M base -o ro --force --max-steps 50 <pt.frames >m 2>err &&
		test_grep "lora-train: ro: cannot write here" err && test ! -s m
	fi &&
	: >file && test_must_fail lora-train -M base -o file/x --max-steps 50 <pt.frames >m 2>err &&
	test ! -s m
'

ARGS="-M base -b 2 --max-steps 3000 --save-steps 50 --save-total-limit 1 --data pt.frames"
kill_at() {
	n=0
	while read l; do
		n=$((n + 1))
		if test $n = $1; then kill -$2 $(cat pid); fi
	done
	return 0
}

test_expect_success 'SIGHUP writes a checkpoint and exits 1, as SIGTERM does' '
	( lora-train $ARGS -o hup 2>hup.err & echo $! >pid; wait $!; echo $? >rc ) |
		kill_at 60 HUP &&
	test "$(cat rc)" = 1 &&
	test_grep "stopped by SIGHUP at step [0-9]*; checkpoint written to hup/checkpoint-" hup.err &&
	step=$(sed -n "s/.*at step \([0-9]*\);.*/\1/p" hup.err) &&
	test -f hup/checkpoint-$step/trainer_state.json
'

test_expect_success 'the metrics reader going away (SIGPIPE) writes a checkpoint' '
	( lora-train $ARGS -o pipe 2>pipe.err; echo $? >rc ) | head -n 30 >/dev/null &&
	test "$(cat rc)" = 1 &&
	test_grep "stopped by SIGPIPE" pipe.err &&
	step=$(sed -n "s/.*at step \([0-9]*\);.*/\1/p" pipe.err) &&
	test -f pipe/checkpoint-$step/trainer_state.json &&
	lora-train $ARGS -o pipe --resume pipe --max-steps $((step + 2)) >/dev/null 2>&1 &&
	test -f pipe/adapter_model.safetensors
'

test_expect_success '--resume from a checkpoint past --max-steps is an error' '
	step=$(sed -n "s/.*at step \([0-9]*\);.*/\1/p" hup.err) &&
	test_must_fail lora-train $ARGS -o hup --resume hup --max-steps $step >/dev/null 2>err &&
	test_grep "is at step $step, and this run ends at step $step: nothing left to train" err &&
	test_must_fail lora-train $ARGS -o hup --resume hup --max-steps 2 >/dev/null 2>err &&
	test_grep "nothing left to train" err &&
	! test -f hup/adapter_model.safetensors
'

test_expect_success 'examples with no label left are named and skipped; --strict refuses' '
	cat >nl.jsonl <<-\EOF &&
	{"input_ids":[1,2,3,4],"labels":[-100,-100,3,4]}
	{"input_ids":[1,2,3,4],"labels":[1,-100,-100,-100]}
	{"input_ids":[5,6,7],"labels":[5,6,7]}
	EOF
	"$FRAMES" <nl.jsonl >nl.frames &&
	lora-train -M base -o nl --max-steps 2 <nl.frames >m 2>err &&
	test_grep "stdin: record 2 (byte [0-9]*): no label left to learn from; skipped" err &&
	test_grep "skipped 1 examples with no label left" err &&
	test_grep "2 examples" err &&
	! grep -e nan -e null m &&
	test_must_fail lora-train -M base -o nl2 --strict --max-steps 2 <nl.frames 2>err &&
	test_grep "record 2 (byte [0-9]*): no label left to learn from" err &&
	! test -e nl2
'

test_expect_success '--adam-eps 0 is refused' '
	test_must_fail lora-train -M base -o e0 --adam-eps 0 <pt.frames 2>err &&
	test_grep "adam-eps: must be greater than 0" err && ! test -e e0
'

test_expect_success 'a NaN loss is null in the metrics, never nan' '
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
	lora-train -M nanbase -o n2 --max-steps 2 --skip-nonfinite <pt.frames >m 2>err &&
	test_line_count = 2 m &&
	! grep -i nan m && test_grep "\"loss\":null" m &&
	if command -v jq >/dev/null; then jq -e .step m >/dev/null; fi
'

test_expect_success 'weights holding a NaN are never written' '
	test_must_fail lora-train -M nanbase --full -o nf --max-steps 2 --save-steps 1 \
		--skip-nonfinite <pt.frames >m 2>err &&
	test_grep "checkpoint: model.norm.weight\[0\] = nan: the weights are not finite; not written" err &&
	! test -e nf/model.safetensors && ! ls nf | grep checkpoint-
'

test_expect_success 'an adapter with non-finite weights is refused at load' '
	lora-train -M base -o good --max-steps 1 <pt.frames >/dev/null &&
	python3 - good bad <<-\EOF &&
	import json, os, shutil, struct, sys
	shutil.copytree(sys.argv[1], sys.argv[2])
	p = os.path.join(sys.argv[2], "adapter_model.safetensors")
	b = bytearray(open(p, "rb").read())
	n = struct.unpack("<Q", b[:8])[0]
	h = json.loads(b[8:8 + n])
	k = sorted(x for x in h if x != "__metadata__")[0]
	s, e = h[k]["data_offsets"]
	b[8 + n + s + 4:8 + n + s + 8] = struct.pack("<f", float("inf"))
	open(p, "wb").write(bytes(b))
	EOF
	test_must_fail lora-train -M base -o again --init bad --max-steps 1 <pt.frames 2>err &&
	test_grep "bad: .*\[1\] = inf: the adapter.s weights are not finite" err &&
	test_must_fail lora-merge -M base -A bad -o merged 2>err &&
	test_grep "not finite" err && ! test -e merged
'

test_expect_success 'a full disk while writing the adapter leaves no config without weights' '
	size=$(wc -c <good/adapter_model.safetensors) &&
	test $size -gt 8192 &&
	( trap "" XFSZ; ulimit -f 8 && lora-train -M base -o full --max-steps 1 <pt.frames >/dev/null 2>err ) ;
	cat err &&
	test_grep "adapter_model.safetensors" err &&
	! test -e full/adapter_config.json && ! test -e full/adapter_model.safetensors &&
	! ls -a full | grep tmp
'

test_expect_success 'stale .checkpoint-*.tmp directories are removed' '
	mkdir -p hup/.checkpoint-7.tmp hup/.checkpoint-8.tmp.4242 &&
	: >hup/.checkpoint-7.tmp/optimizer.safetensors &&
	: >hup/.checkpoint-8.tmp.4242/optimizer.safetensors &&
	lora-train -M base -o hup --force --max-steps 1 <pt.frames >/dev/null 2>err &&
	test_grep "removed .checkpoint-7.tmp" err &&
	test_grep "removed .checkpoint-8.tmp.4242" err &&
	! test -e hup/.checkpoint-7.tmp && ! test -e hup/.checkpoint-8.tmp.4242
'
command -v script >/dev/null 2>&1 && test_set_prereq SCRIPT
test_expect_success SCRIPT 'on a terminal: one progress line, cleared before metrics and messages' '
	script -qec "lora-train -M base -o tty --max-steps 3 --data pt.frames" /dev/null >ts 2>&1 </dev/null &&
	grep -a -q "step 3/3  loss [0-9.]*  [0-9]* tok/s  00:[0-9][0-9] elapsed  ETA 00:00" ts &&
	# what the terminal shows: each line after its last carriage return
	tr -d "\033" <ts | sed "s/\[K//g; s/\r$//; s/.*\r//" >shown &&
	grep -a "^{\"step\":" shown >shown.metrics &&
	test_line_count = 3 shown.metrics &&
	! grep -a "ETA.*{\"step\"\|{\"step\".*ETA" shown &&
	grep -a "^lora-train: wrote tty after 3 steps" shown &&
	script -qec "lora-train -q -M base -o tty2 --max-steps 2 --data pt.frames" /dev/null >ts2 2>&1 </dev/null &&
	! grep -a -e ETA -e "^lora-train:" ts2
'
test_done
