#!/bin/sh
# lora-merge writes atomically: the output is built in ".OUT.tmp.PID" next
# to OUT and renamed at the end. Killed (SIGKILL) mid-run, OUT is absent and
# the next run removes the leftover; SIGTERM and a full disk leave nothing.
#
# To stop a run at a known point the tokenizer is a FIFO: lora-merge reads
# it once to check the vocabulary and again to copy it into the output,
# after every weight shard is written; the second read blocks until the
# test kills the process.
. "$(dirname "$0")/test-lib.sh"

REF="$TEST_DIR/ref/merge_ref.py"
$PYTHON -c "import torch, transformers" 2>/dev/null && test_set_prereq TRANSFORMERS
test_require TRANSFORMERS SPM_TRAIN

mkdir mnt
unshare -rm sh -c "mount -t tmpfs -o size=64k tmpfs mnt" 2>/dev/null &&
	test_set_prereq TINY_FS

test_expect_success 'setup: a model' '
	make_spm_model tok bpe 800 &&
	$PYTHON "$REF" mkmodel base --vocab 800 --tokenizer tok.model 2>/dev/null &&
	test -s base/model.safetensors
'

# start_blocked OUT FILE [options]: run lora-merge in the background with
# the FIFO as tokenizer; returns once FILE is in its temporary directory
# (written just before the second read of the tokenizer, which blocks).
start_blocked() {
	out=$1 file=$2
	shift 2
	rm -f fifo && mkfifo fifo &&
	{ cat tok.model >fifo & } &&
	{ lora-merge -q -M base -o "$out" --tokenizer fifo "$@" 2>err & } &&
	pid=$! &&
	for i in $(seq 200); do
		test -f ".$out.tmp.$pid/$file" && break
		sleep 0.05
	done &&
	test -f ".$out.tmp.$pid/$file"
}

test_expect_success 'SIGKILL mid-run: no output; the next run removes the leftover' '
	start_blocked out config.json &&
	test -f ".out.tmp.$pid/model.safetensors" &&
	kill -9 $pid && { wait $pid; test $? = 137; } &&
	test ! -e out &&
	test -d ".out.tmp.$pid" &&
	lora-merge -M base -o out 2>err &&
	test_grep "removed ./.out.tmp.$pid, left by an interrupted run" err &&
	test ! -e ".out.tmp.$pid" &&
	test -s out/model.safetensors && test -s out/tokenizer.model
'

test_expect_success 'SIGTERM mid-run: no output and no temporary left' '
	start_blocked out2 config.json &&
	kill -TERM $pid && { wait $pid; test $? = 143; } &&
	test ! -e out2 &&
	test -z "$(ls -a | grep "^\.out2\.")"
'

test_expect_success 'SIGINT during a Meta export: the same' '
	start_blocked out3 params.json --to pth &&
	test -f ".out3.tmp.$pid/consolidated.00.pth" &&
	kill -INT $pid && { wait $pid; test $? = 130; } &&
	test ! -e out3 &&
	test -z "$(ls -a | grep "^\.out3\.")"
'

test_expect_success TINY_FS 'a full disk: "No space left on device", nothing left behind' '
	unshare -rm sh -c "
		mount -t tmpfs -o size=64k tmpfs mnt &&
		{ lora-merge -q -M base -o mnt/out 2>err; echo \$? >rc; } &&
		{ lora-merge -q -M base -o mnt/out.gguf --to gguf 2>err2; echo \$? >rc2; } &&
		ls -a mnt >left
	" &&
	echo 1 >expect && test_cmp expect rc && test_cmp expect rc2 &&
	test_grep "No space left on device" err &&
	test_grep "No space left on device" err2 &&
	test_line_count = 1 err &&
	printf ".\n..\n" >expect && test_cmp expect left
'

test_done
