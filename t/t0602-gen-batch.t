#!/bin/sh
# gen --batch-size: records generated for together give the same output,
# byte for byte and in input order, as one at a time: greedy, sampling
# with a seed (each record's sampler is seeded alone), beam search and
# several return sequences, with an adapter and with bf16 weights, prompts
# of different lengths that finish at different steps. The CPU backend
# computes every row of a step on its own (kernels/cpu/matvec.c), so the
# bytes must be equal, not close.
. "$(dirname "$0")/test-lib.sh"

TINY="$PYTHON $TEST_DIR/ref/tiny_model.py"
OMP_NUM_THREADS=1
export OMP_NUM_THREADS

test_expect_success SPM_TRAIN 'setup: tiny random models, an adapter, prompts' '
	$PYTHON - <<-\EOF &&
	import random
	r = random.Random(3)
	w = ("the cat sat on a mat and dog ran to red barn in big small house tree "
	     "river stone bird sings over under quick brown fox jumps lazy").split()
	with open("c.txt", "w") as f:
	    for i in range(2000):
	        f.write(" ".join(r.choice(w) for _ in range(r.randint(3, 10))) + "\n")
	with open("p.jsonl", "w") as f:
	    for i in range(9):
	        if i % 3 == 2:
	            ids = [1] + [r.randrange(3, 128) for _ in range(r.randint(1, 30))]
	            f.write("{\"input_ids\":%s}\n" % ids)
	        else:
	            f.write("{\"prompt\":\"%s\"}\n" % " ".join(r.choice(w) for _ in range(r.randint(1, 12))))
	EOF
	spm_train --input=c.txt --model_prefix=tok --vocab_size=128 --model_type=bpe \
		--minloglevel=2 >/dev/null 2>&1 &&
	$TINY model m &&
	cp tok.model m/tokenizer.model &&
	$TINY adapter lora m &&
	$TINY model mb dtype=bf16 tie=1 &&
	cp tok.model mb/tokenizer.model &&
	test_line_count = 9 p.jsonl
'

# same NAME ARGS...: gen with ARGS one record at a time, then in batches
# of 2, 4 and 9 (two threads), must print the same bytes
same() {
	name=$1; shift
	gen -q --ids --keep-input "$@" <p.jsonl >$name.1 &&
	test_line_count = 9 $name.1 &&
	for b in 2 4 9; do
		OMP_NUM_THREADS=2 gen -q --ids --keep-input -b $b "$@" <p.jsonl >$name.$b &&
		test_cmp $name.1 $name.$b || return 1
	done
}

test_expect_success SPM_TRAIN 'greedy: batched equals one at a time' '
	same greedy -M m --max-new-tokens 24 &&
	jq -r .finish_reason greedy.1 | sort -u >reasons &&
	test_grep eos reasons && test_grep length reasons
'

test_expect_success SPM_TRAIN 'sampling with a seed: batched equals one at a time' '
	same sample -M m --do-sample --seed 11 --top-k 20 --temperature 1.3 --max-new-tokens 16
'

test_expect_success SPM_TRAIN 'several sampled sequences per record' '
	same multi -M m --do-sample --seed 5 --num-return-sequences 3 --max-new-tokens 10 &&
	jq -e ".sequences | length == 3" multi.4 >/dev/null
'

test_expect_success SPM_TRAIN 'beam search (and group beam search): batched equals one at a time' '
	same beam -M m --num-beams 3 --max-new-tokens 12 --num-return-sequences 2 &&
	same groups -M m --num-beams 4 --num-beam-groups 2 --diversity-penalty 0.5 \
		--max-new-tokens 8
'

test_expect_success SPM_TRAIN 'with a LoRA adapter, and with bf16 weights' '
	same lora -M m -A lora --max-new-tokens 12 &&
	same bf16 -M mb --max-new-tokens 12 --num-beams 2
'

test_expect_success SPM_TRAIN 'outputs keep the input order' '
	jq -c .input p.jsonl >/dev/null &&
	jq -c .input greedy.4 >order.got &&
	jq -c . p.jsonl >order.want &&
	test_cmp order.want order.got
'

test_expect_success SPM_TRAIN 'a bad record inside a batch is skipped with --skip-bad' '
	sed "4a\\
{\"input_ids\":\"nope\"}" p.jsonl >bad.jsonl &&
	test_line_count = 10 bad.jsonl &&
	gen -q -M m --ids --skip-bad --max-new-tokens 8 <bad.jsonl >skip.1 2>/dev/null &&
	gen -M m --ids --skip-bad --max-new-tokens 8 -b 4 <bad.jsonl >skip.4 2>err &&
	test_cmp skip.1 skip.4 &&
	test_line_count = 9 skip.4 &&
	test_grep "bad.*skipped\|skipped" err
'

test_expect_success SPM_TRAIN 'the report gives the throughput' '
	gen -M m --max-new-tokens 4 -b 3 <p.jsonl >/dev/null 2>err &&
	test_grep "9 records, [0-9]* tokens generated; 0 bad records skipped; [0-9.]* s, [0-9.]* tokens/s" err
'

test_expect_success SPM_TRAIN 'bad --batch-size values and combinations' '
	test_must_fail gen -M m -b 0 <p.jsonl 2>err && test_grep "batch-size" err &&
	test_must_fail gen -M m --batch-size 257 <p.jsonl 2>err && test_grep "batch-size" err &&
	test_must_fail gen -M m --batch-size x <p.jsonl 2>err && test_grep "batch-size" err &&
	echo "{\"prompt\":\"a\",\"output\":\"b\"}" >s.jsonl &&
	test_must_fail gen -M m --score -b 2 <s.jsonl 2>err &&
	test_grep "batch-size goes with generating from records" err
'
test_done
