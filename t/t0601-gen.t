#!/bin/sh
# gen: records in and objects out, templates, controls, stops, scoring,
# adapters, the interactive mode on a pseudo-terminal, model defaults and
# bad input, on a tiny random model written without torch
# (t/ref/tiny_model.py) and a small trained tokenizer. Agreement with
# transformers is t0600's job.
. "$(dirname "$0")/test-lib.sh"

TINY="$PYTHON $TEST_DIR/ref/tiny_model.py"
# The model is tiny: one thread is the fastest, and keeps a busy machine
# from slowing every call down (OpenMP threads waiting for each other).
OMP_NUM_THREADS=1
export OMP_NUM_THREADS

test_must_be_empty_file() {
	if test -s "$1"; then echo "$1 is not empty:" >&2; cat "$1" >&2; return 1; fi
}
# check JQ-CONDITION FILE: the condition holds for every record of FILE
check() {
	jq -s -e "length > 0 and all(.[]; $1)" "$2" >/dev/null ||
		{ echo "check failed: $1, in:" >&2; cat "$2" >&2; return 1; }
}
test_expect_code() { # test_expect_code CODE COMMAND...
	want=$1; shift
	"$@"; rc=$?
	test $rc = "$want" || { echo "exit $rc, want $want: $*" >&2; return 1; }
}

# A BPE tokenizer of exactly 128 pieces (the model's vocabulary), no byte
# fallback, so generated text never holds a newline; and one of 180.
make_gen_tokenizer() {
	$PYTHON - <<-\EOF &&
	import random
	r = random.Random(3)
	w = ("the cat sat on a mat and dog ran to red barn in big small house tree "
	     "river stone bird sings over under quick brown fox jumps lazy").split()
	with open("c.txt", "w") as f:
	    for i in range(2000):
	        f.write(" ".join(r.choice(w) for _ in range(r.randint(3, 10))) + "\n")
	EOF
	spm_train --input=c.txt --model_prefix=tok --vocab_size=128 --model_type=bpe \
		--minloglevel=2 >/dev/null 2>&1 &&
	spm_train --input=c.txt --model_prefix=big --vocab_size=180 --model_type=bpe \
		--minloglevel=2 >/dev/null 2>&1
}

test_expect_success SPM_TRAIN 'setup: a tiny random model, an adapter, a tokenizer' '
	make_gen_tokenizer &&
	$TINY model m max_pos=65536 &&
	cp tok.model m/tokenizer.model &&
	$TINY adapter lora m &&
	$TINY model mb dtype=bf16 tie=1 &&
	cp tok.model mb/tokenizer.model &&
	test -f m/model.safetensors && test -f lora/adapter_model.safetensors &&
	cat >p.jsonl <<-\EOF
	{"prompt":"the cat sat"}
	{"prompt":"a red barn"}
	{"prompt":"quick brown fox"}
	EOF
'
test -f m/tokenizer.model && test_set_prereq MODEL
test_have_prereq MODEL && test_have_prereq JQ && test_set_prereq MODEL_JQ
test -x "$LP_BUILD/t/llama_logits" && test_set_prereq LOGITS
$PYTHON -c 'import torch, transformers, peft' 2>/dev/null && test_set_prereq TORCH
script -qec true /dev/null </dev/null >/dev/null 2>&1 && test_set_prereq SCRIPT

# ---- records in, objects out ----

test_expect_success MODEL_JQ 'one object per record: text, tokens, finish_reason, prompt_tokens' '
	gen -M m <p.jsonl >out 2>err &&
	test_line_count = 3 out &&
	check "keys == [\"finish_reason\",\"prompt_tokens\",\"text\",\"tokens\"]" out &&
	check "(.text | type) == \"string\" and .tokens >= 0 and .tokens <= 20 and
		(.finish_reason | IN(\"eos\",\"length\"))" out &&
	test_grep "gen: m: 2 layers, hidden 32, vocabulary 128" err &&
	test_grep "gen: 3 records, [0-9]* tokens generated" err &&
	gen -q -M m <p.jsonl >out2 2>err &&
	test_cmp out out2 &&
	test_must_be_empty_file err
'

test_expect_success MODEL_JQ '--ids gives the ids, --keep-input the record' '
	gen -q -M m --ids --keep-input <p.jsonl >out &&
	check "(.ids | length) == .tokens and all(.ids[]; . >= 0 and . < 128)" out &&
	jq -c .input out >in &&
	jq -c . p.jsonl >expect &&
	test_cmp expect in
'

test_expect_success MODEL_JQ '{"input_ids"} records are used as they are (no BOS added)' '
	echo "the cat sat" | spm_encode --model=tok.model --output_format=id >ids &&
	{ printf "{\"input_ids\":[1"; for i in $(cat ids); do printf ",%s" $i; done; echo "]}"; } >in.jsonl &&
	head -n 1 p.jsonl | gen -q -M m --ids >a &&
	gen -q -M m --ids <in.jsonl >b &&
	test_cmp a b &&
	echo "{\"input_ids\":[5,9,20]}" | gen -q -M m >c &&
	check ".prompt_tokens == 3" c
'

test_expect_success MODEL_JQ 'several files are read in order; a .zst file transparently' '
	head -n 1 p.jsonl >one.jsonl && tail -n 2 p.jsonl >two.jsonl &&
	gen -q -M m p.jsonl >a &&
	gen -q -M m one.jsonl two.jsonl >b &&
	test_cmp a b &&
	if command -v zstd >/dev/null; then
		zstd -q two.jsonl -o two.zst && gen -q -M m one.jsonl two.zst >c && test_cmp a c
	fi
'

test_expect_success MODEL 'a bf16 model with a tied head generates' '
	gen -q -M mb <p.jsonl >out &&
	test_line_count = 3 out &&
	test_grep "\"finish_reason\":\"\(eos\|length\)\"" out
'

# ---- templates: the prompt's token count shows what was rendered ----

# count TEXT: BOS + the SentencePiece encoding of TEXT (newlines kept)
count() {
	$PYTHON -c 'import sys, sentencepiece as s
print(1 + len(s.SentencePieceProcessor(model_file="tok.model").encode(sys.argv[1])))' "$1"
}
ALPACA='Below is an instruction that describes a task. Write a response that appropriately completes the request.

### Instruction:
%s

### Response: '

test_expect_success MODEL_JQ,PY_SPM 'templates: {"prompt"} raw unless --with-prompt; alpaca, llama2-chat, raw, FILE' '
	echo "{\"prompt\":\"the cat sat\"}" >pr.jsonl &&
	echo "{\"instruction\":\"the cat sat\",\"input\":\"on a mat\"}" >ins.jsonl &&
	pt() { gen -q -M m --max-new-tokens 1 "$@" | jq .prompt_tokens; } &&
	test "$(pt <pr.jsonl)" = "$(count "the cat sat")" &&
	test "$(pt -t llama2-chat <pr.jsonl)" = "$(count "the cat sat")" &&
	test "$(pt --with-prompt <pr.jsonl)" = "$(count "$(printf "$ALPACA" "the cat sat")")" &&
	test "$(pt <ins.jsonl)" = "$(count "$(printf "$ALPACA" "the cat sat
on a mat")")" &&
	test "$(pt -t raw <ins.jsonl)" = "$(count "the cat sat
on a mat")" &&
	sys="<<SYS>>
a dog
<</SYS>>

" &&
	test "$(pt -t llama2-chat --system "a dog" <ins.jsonl)" = \
		"$(count "[INST] ${sys}the cat sat
on a mat [/INST]")" &&
	printf "Q: {instruction}\nA:\n" >tpl &&
	test "$(pt -t tpl <ins.jsonl)" = "$(count "Q: the cat sat
on a mat
A:")" &&
	test "$(pt -t tpl --with-prompt <pr.jsonl)" = "$(count "Q: the cat sat
A:")"
'

# ---- controls ----

test_expect_success MODEL_JQ 'beam search: --num-return-sequences gives "sequences", best first, with scores' '
	gen -q -M m --num-beams 4 --num-return-sequences 3 --max-new-tokens 8 <p.jsonl >out &&
	check "(.sequences | length) == 3 and all(.sequences[]; has(\"score\"))" out &&
	check ".sequences[0].score >= .sequences[1].score and
		.sequences[1].score >= .sequences[2].score" out &&
	check "(del(.sequences, .prompt_tokens)) == .sequences[0]" out &&
	check ".score < 0" out &&
	gen -q -M m --num-beams 4 --max-new-tokens 8 <p.jsonl >one &&
	check "has(\"score\") and (has(\"sequences\") | not)" one &&
	gen -q -M m --max-new-tokens 8 <p.jsonl >greedy &&
	check "has(\"score\") | not" greedy
'

test_expect_success MODEL_JQ 'sampling: the same --seed gives the same text, another seed another' '
	gen -q -M m --do-sample --seed 7 <p.jsonl >a &&
	gen -q -M m --do-sample --seed 7 <p.jsonl >b &&
	gen -q -M m --do-sample --seed 8 <p.jsonl >c &&
	test_cmp a b &&
	! cmp -s a c &&
	gen -q -M m --do-sample --seed 7 --num-return-sequences 3 <p.jsonl >d &&
	check "(.sequences | length) == 3 and (.sequences | map(has(\"score\")) | any | not)" d &&
	gen -q -M m --do-sample --seed 7 --top-k 1 <p.jsonl >k1 &&
	gen -q -M m <p.jsonl >greedy &&
	test_cmp greedy k1
'

test_expect_success MODEL_JQ '--max-new-tokens, --min-new-tokens and --eos-token-id' '
	gen -q -M m --max-new-tokens 5 --suppress-tokens 2 --ids <p.jsonl >out &&
	check ".tokens == 5 and .finish_reason == \"length\"" out &&
	first=$(head -n 1 out | jq ".ids[0]") &&
	head -n 1 p.jsonl | gen -q -M m --eos-token-id $first >eos &&
	check ".tokens == 0 and .text == \"\" and .finish_reason == \"eos\"" eos &&
	head -n 1 p.jsonl | gen -q -M m --eos-token-id $first --min-new-tokens 3 --max-new-tokens 3 >min &&
	check ".tokens == 3 and .finish_reason == \"length\"" min
'

test_expect_success MODEL_JQ '--max-time stops generation with finish_reason "time"' '
	gen -q -M m --max-new-tokens 60000 --suppress-tokens 2 --max-time 0.000001 <p.jsonl >out &&
	test_line_count = 3 out &&
	check ".finish_reason == \"time\" and .tokens < 60000" out &&
	gen -q -M m --max-new-tokens 60000 --suppress-tokens 2 --max-time 0.000001 \
		--num-beams 2 <p.jsonl >beam &&
	check ".finish_reason == \"time\"" beam
'

test_expect_success MODEL_JQ '--stop-strings ends a sequence with finish_reason "stop"' '
	head -n 1 p.jsonl >one.jsonl &&
	gen -q -M m --max-new-tokens 40 --suppress-tokens 2 <one.jsonl >full &&
	check ".tokens == 40" full &&
	s=$(jq -r ".text[12:15]" full) &&
	test ${#s} = 3 &&
	gen -q -M m --max-new-tokens 40 --suppress-tokens 2 --stop-strings "$s" <one.jsonl >stop &&
	jq -e --arg s "$s" ".finish_reason == \"stop\" and (.text | contains(\$s)) and .tokens < 40" \
		stop >/dev/null &&
	t=$(jq -r .text stop) && f=$(jq -r .text full) &&
	case "$f" in "$t"*) ;; *) false ;; esac &&
	gen -q -M m --max-new-tokens 40 --suppress-tokens 2 --stop-strings "no such text" \
		--stop-strings "$s" <one.jsonl >two &&
	test_cmp stop two
'

test_expect_success MODEL_JQ 'processors change the output: --repetition-penalty, --no-repeat-ngram-size, --bad-words-ids' '
	gen -q -M m --max-new-tokens 30 --suppress-tokens 2 --ids <p.jsonl >plain &&
	gen -q -M m --max-new-tokens 30 --suppress-tokens 2 --ids --no-repeat-ngram-size 1 <p.jsonl >nr &&
	check "(.ids | length) == (.ids | unique | length)" nr &&
	first=$(head -n 1 plain | jq ".ids[0]") &&
	head -n 1 p.jsonl | gen -q -M m --max-new-tokens 30 --ids --bad-words-ids "$first" >bw &&
	jq -e --argjson t $first "all(.ids[]; . != \$t)" bw >/dev/null &&
	gen -q -M m --max-new-tokens 30 --suppress-tokens 2 --repetition-penalty 5 <p.jsonl >rp &&
	! cmp -s plain rp
'

# ---- the model's defaults: config.json, generation_config.json, flags ----

test_expect_success MODEL_JQ 'eos comes from config.json, then generation_config.json, then flags' '
	head -n 1 p.jsonl >one.jsonl &&
	gen -q -M m --ids --suppress-tokens 2 <one.jsonl >out &&
	first=$(jq ".ids[0]" out) &&
	mkdir -p m2 &&
	ln -sf ../m/model.safetensors m2/ && ln -sf ../m/tokenizer.model m2/ &&
	jq ".eos_token_id = [$first]" m/config.json >m2/config.json &&
	gen -q -M m2 <one.jsonl >eos &&
	check ".tokens == 0 and .finish_reason == \"eos\"" eos &&
	echo "{\"eos_token_id\": 2, \"max_new_tokens\": 4}" >m2/generation_config.json &&
	gen -q -M m2 --suppress-tokens 2 <one.jsonl >gc &&
	check ".tokens == 4" gc &&
	gen -q -M m2 --eos-token-id $first <one.jsonl >flag &&
	check ".tokens == 0 and .finish_reason == \"eos\"" flag &&
	rm m2/generation_config.json
'

test_expect_success MODEL_JQ 'generation_config.json is applied; flags win; --no-generation-config ignores it' '
	mkdir -p m3 &&
	ln -sf ../m/model.safetensors ../m/config.json ../m/tokenizer.model m3/ &&
	echo "{\"max_new_tokens\": 4, \"do_sample\": false, \"transformers_version\": \"5.0\"}" \
		>m3/generation_config.json &&
	gen -q -M m3 --suppress-tokens 2 <p.jsonl >gc &&
	check ".tokens == 4 and .finish_reason == \"length\"" gc &&
	gen -q -M m3 --suppress-tokens 2 --max-new-tokens 6 <p.jsonl >flag &&
	check ".tokens == 6" flag &&
	gen -q -M m3 --suppress-tokens 2 --no-generation-config <p.jsonl >none &&
	check ".tokens == 20" none &&
	echo "{\"do_sample\": true, \"top_k\": 0, \"max_new_tokens\": 20}" >m3/generation_config.json &&
	gen -q -M m3 --suppress-tokens 2 --seed 3 <p.jsonl >sampled &&
	gen -q -M m3 --suppress-tokens 2 --do-sample=false <p.jsonl >greedy &&
	! cmp -s none sampled &&
	test_cmp none greedy &&
	echo "{\"top_p\": 7}" >m3/generation_config.json &&
	test_must_fail gen -q -M m3 <p.jsonl 2>err &&
	test_grep "gen: m3/generation_config.json: top_p: must be in \[0, 1\]" err &&
	echo "[1]" >m3/generation_config.json &&
	test_must_fail gen -q -M m3 <p.jsonl 2>err &&
	test_grep "generation_config.json: not a JSON object" err
'

test_expect_success MODEL 'LLAMAPIPE_MODEL is the default model; -M wins' '
	gen -q -M m <p.jsonl >a &&
	LLAMAPIPE_MODEL=m gen -q <p.jsonl >b &&
	test_cmp a b &&
	LLAMAPIPE_MODEL=no/such/dir gen -q -M m <p.jsonl >c &&
	test_cmp a c &&
	test_must_fail gen <p.jsonl 2>err &&
	test_grep "gen: no model: give -M DIR or set LLAMAPIPE_MODEL" err
'

# ---- scoring ----

test_expect_success MODEL_JQ,LOGITS '--score: log p(output + EOS | prompt) equals the sum from the logits' '
	echo "{\"input_ids\":[1,5,9,20],\"output\":\"the red barn\"}" >s.jsonl &&
	gen -q -M m --score <s.jsonl >out &&
	check ".tokens >= 2 and .logprob < 0 and (.logprob | isinfinite | not) and
		((.mean_logprob * .tokens - .logprob) | fabs < 1e-9)" out &&
	echo "the red barn" | spm_encode --model=tok.model --output_format=id >t &&
	echo "1 5 9 20 $(cat t) 2" >seq &&
	n=$(wc -w <seq) &&
	"$LP_BUILD/t/llama_logits" m <seq >logits &&
	test_line_count = $n logits &&
	awk -v ids="$(cat seq)" -v from=4 "
		BEGIN { n = split(ids, id, \" \") }
		NR >= from && NR < n {
			mx = \$1; for (i = 2; i <= NF; i++) if (\$i > mx) mx = \$i
			s = 0; for (i = 1; i <= NF; i++) s += exp(\$i - mx)
			total += \$(id[NR + 1] + 1) - mx - log(s)
		}
		END { printf \"%.9f\\n\", total }" logits >expect &&
	got=$(jq .logprob out) &&
	awk -v a="$got" -v b="$(cat expect)" "BEGIN { d = a - b; if (d < 0) d = -d; exit !(d < 1e-4) }" &&
	check ".tokens == $n - 4" out
'

test_expect_success MODEL_JQ '--score templates the prompt like generation; --keep-input' '
	echo "{\"instruction\":\"the cat sat\",\"output\":\"on a mat\"}" >s.jsonl &&
	gen -q -M m --score --keep-input <s.jsonl >a &&
	gen -q -M m --score -t raw <s.jsonl >b &&
	check ".input.output == \"on a mat\"" a &&
	! test "$(jq .logprob a)" = "$(jq .logprob b)" &&
	echo "{\"prompt\":\"the cat sat\"}" | test_must_fail gen -q -M m --score 2>err &&
	test_grep "gen: stdin:1: --score needs an \"output\"" err
'

# ---- adapters ----

test_expect_success MODEL_JQ '-A applies a LoRA adapter: the output changes; two adapters stack' '
	gen -q -M m --ids --max-new-tokens 10 <p.jsonl >base &&
	gen -q -M m -A lora --ids --max-new-tokens 10 <p.jsonl >one &&
	! cmp -s base one &&
	$TINY adapter a2 m seed=5 &&
	gen -q -M m -A lora -A a2 --ids --max-new-tokens 10 <p.jsonl >two &&
	! cmp -s one two &&
	gen -M m -A lora <p.jsonl 2>err >/dev/null &&
	test_grep "1 adapter(s)" err &&
	test_must_fail gen -q -M m -A no/such/adapter <p.jsonl 2>err &&
	test_grep "gen: no/such/adapter" err
'

test_expect_success SPM_TRAIN,TORCH 'transformers-made model and PEFT adapter: -A changes the output' '
	$PYTHON "$TEST_DIR/ref/make_models.py" "$TRASH/hf" mha >/dev/null 2>&1 &&
	gen -q -M hf/mha/hf -m tok.model --ids <p.jsonl >base &&
	gen -q -M hf/mha/hf -m tok.model -A hf/mha/adapter --ids <p.jsonl >out.lora &&
	test_line_count = 3 out.lora &&
	! cmp -s base out.lora
'

# ---- interactive ----

test_expect_success MODEL 'interactive without a terminal: one answer a line; llama2-chat keeps turns; /reset' '
	printf "the cat\n\nthe cat\n/reset\nthe cat\n" |
		gen -q -i -M m -t llama2-chat --max-new-tokens 8 --suppress-tokens 2 >out 2>err &&
	test_line_count = 3 out &&
	test "$(sed -n 1p out)" = "$(sed -n 3p out)" &&
	! test "$(sed -n 1p out)" = "$(sed -n 2p out)" &&
	test_grep "Ctrl-C stops an answer, Ctrl-D ends, /reset forgets the conversation" err &&
	printf "the cat\n" | gen -q -i -M m -t raw --max-new-tokens 8 --suppress-tokens 2 >raw 2>err &&
	test_line_count = 1 raw &&
	test_grep "(length)" err &&
	! grep /reset err
'

test_expect_success MODEL_JQ 'byte pieces: the streamed answer is the batch text, characters whole; NUL kept' '
	make_spm_model zh bpe 800 &&
	$TINY model mz vocab=800 &&
	cp zh.model mz/tokenizer.model &&
	: >all &&
	for p in "的一是" "the of" "国我以要他时来用们生"; do
		echo "{\"prompt\":\"$p\"}" |
			gen -q -M mz -t raw --max-new-tokens 60 --suppress-tokens 2,3 | jq -j .text >batch &&
		echo >>batch &&
		echo "$p" | gen -q -i -M mz -t raw --max-new-tokens 60 --suppress-tokens 2,3 \
			>stream 2>/dev/null &&
		test_cmp batch stream &&
		cat batch >>all || return 1
	done &&
	grep -q "$(printf "\357\277\275")" all &&
	byte() { echo $(($(grep -n "^<0x$1>" zh.vocab | cut -d: -f1) - 1)); } &&
	others=$(seq 0 799 | grep -vxF "$(printf "%s\n" $(byte E4) $(byte B8) $(byte AD))" |
		paste -sd, -) &&
	for p in "的一是" "the of"; do
		echo "{\"prompt\":\"$p\"}" |
			gen -q -M mz -t raw --max-new-tokens 60 --suppress-tokens "$others" |
			jq -j .text >batch &&
		echo >>batch &&
		echo "$p" | gen -q -i -M mz -t raw --max-new-tokens 60 \
			--suppress-tokens "$others" >stream 2>/dev/null &&
		test_cmp batch stream || return 1
	done &&
	others=$(seq 0 799 | grep -vx $(byte 00) | paste -sd, -) &&
	echo "{\"input_ids\":[1]}" | gen -q -M mz --max-new-tokens 1 --suppress-tokens "$others" >out &&
	check ".text == \"\\u0000\"" out
'

# Drive gen -i on a pseudo-terminal: a question, Ctrl-C as soon as its
# answer streams (--max-time 3 would end it later), then a second question
# answered to the end, then Ctrl-D. stdout and stderr go to files, the
# terminal is stdin only.
wait_for() { # wait_for SHELL-CONDITION: up to 60 seconds
	i=0
	while ! eval "$1"; do
		i=$((i + 1)); test $i -gt 600 && return 1; sleep 0.1
	done
}
prompts() { { tr -cd '>' <err; } 2>/dev/null | wc -c; }
drive_chat() {
	wait_for 'test "$(prompts)" -ge 1' || echo "no first prompt" >>drive.log
	printf 'the cat sat\n'
	wait_for 'test -s out' || echo "no first answer" >>drive.log
	printf '\003'
	wait_for 'test "$(prompts)" -ge 2' || echo "no prompt after Ctrl-C" >>drive.log
	wc -c <out >size1
	sleep 0.5
	wc -c <out >size2
	printf 'a red barn\n'
	wait_for 'test "$(prompts)" -ge 3' || echo "no prompt after the second answer" >>drive.log
	wc -c <out >size3
	printf '\004'
}

test_expect_success MODEL,SCRIPT 'interactive on a terminal: Ctrl-C stops an answer, the next is answered, Ctrl-D ends' '
	: >out && rm -f err &&
	drive_chat | timeout 180 script -qec "exec gen -i -M m -t raw --max-new-tokens 60000 \
		--max-time 3 --suppress-tokens 2 >out 2>err" /dev/null >/dev/null &&
	test_must_be_empty_file drive.log &&
	test_grep "(interrupted)" err &&
	test_grep "(time)" err &&
	test $(grep -c "(interrupted)" err) = 1 &&
	test "$(cat size1)" = "$(cat size2)" &&
	test "$(cat size3)" -gt "$(cat size2)" &&
	test_line_count = 2 out
'

# ---- bad input: one clear line, non-zero exit, no crash ----

test_expect_success MODEL 'malformed JSON names file and line; --skip-bad counts it' '
	printf "{\"prompt\":\"a\"}\n{\"prompt\": oops}\n{\"prompt\":\"b\"}\n" >bad.jsonl &&
	test_must_fail gen -q -M m bad.jsonl >out 2>err &&
	test_grep "^gen: bad.jsonl:2: malformed JSON" err &&
	gen -M m --skip-bad bad.jsonl >out 2>err &&
	test_line_count = 2 out &&
	test_grep "2 records, .* 1 bad records skipped" err
'

test_expect_success MODEL 'a record without a prompt, bad input_ids' '
	echo "{\"text\":\"a\"}" | test_must_fail gen -q -M m 2>err &&
	test_grep "gen: stdin:1: no \"instruction\" or \"prompt\"" err &&
	echo "{\"prompt\":5}" | test_must_fail gen -q -M m 2>err &&
	test_grep "gen: stdin:1: a record is an object whose instruction, input and prompt are strings" err &&
	echo "{\"input_ids\":[1,128]}" | test_must_fail gen -q -M m 2>err &&
	test_grep "gen: stdin:1: input_ids\[1\] is not a token id below 128" err &&
	echo "{\"input_ids\":[1,-3]}" | test_must_fail gen -q -M m 2>err &&
	test_grep "input_ids\[1\] is not a token id" err &&
	echo "{\"input_ids\":[]}" | test_must_fail gen -q -M m 2>err &&
	test_grep "gen: stdin:1: input_ids is empty" err &&
	echo "{\"input_ids\":\"1 2\"}" | test_must_fail gen -q -M m 2>err &&
	test_grep "gen: stdin:1: input_ids is not an array of token ids" err &&
	echo "[1,2]" | test_must_fail gen -q -M m 2>err &&
	test_grep "a record is an object" err
'

test_expect_success MODEL 'a prompt longer than --max-length is an error naming the record' '
	echo "{\"input_ids\":[1,5,9,20,33]}" | test_must_fail gen -q -M m --max-length 4 2>err &&
	test_grep "gen: stdin:1: max_length: the prompt has 5 tokens" err
'

test_expect_success MODEL 'unknown options and bad control values are usage errors' '
	test_must_fail gen -M m --no-such-option </dev/null 2>err &&
	test_grep "unrecognized option .--no-such-option." err &&
	test_expect_code 2 gen -M m --top-p 2 </dev/null 2>err &&
	test_grep "gen: top_p: must be in \[0, 1\], got 2" err &&
	test_expect_code 2 gen -M m --num-beams 3 --num-return-sequences 4 </dev/null 2>err &&
	test_grep "gen: num_return_sequences: 4 is more than num_beams (3)" err &&
	test_expect_code 2 gen -M m --temperature 0 --do-sample </dev/null 2>err &&
	test_grep "gen: temperature: must be > 0 when sampling" err &&
	test_expect_code 2 gen -M m --num-return-sequences 2 </dev/null 2>err &&
	test_grep "num_return_sequences" err &&
	test_expect_code 2 gen -M m --max-new-tokens many </dev/null 2>err &&
	test_grep "gen: max_new_tokens: want an integer" err &&
	test_expect_code 2 gen -M m --early-stopping maybe </dev/null 2>err &&
	test_grep "early_stopping" err &&
	test_expect_code 2 gen -M m --device tpu </dev/null 2>err &&
	test_grep "gen: --device: .tpu. is not cpu or cuda" err &&
	test_expect_code 2 gen -M m -t no-such-template </dev/null 2>err &&
	test_grep "gen: --template: unknown template .no-such-template." err &&
	test_expect_code 2 gen -M m -i --score </dev/null 2>err &&
	test_grep "do not go together" err &&
	test_expect_code 1 gen -M m --bad-words-ids 500 <p.jsonl 2>err &&
	test_grep "bad_words_ids" err
'

test_expect_success MODEL 'a missing model directory, tokenizer or weights' '
	test_must_fail gen -M no/such/dir </dev/null 2>err &&
	test_grep "^gen: no/such/dir: model directory: No such file or directory" err &&
	test_must_fail gen -M p.jsonl </dev/null 2>err &&
	test_grep "gen: p.jsonl: not a directory" err &&
	test_must_fail gen -M m -m no-such.model </dev/null 2>err &&
	test_grep "gen: no-such.model: No such file or directory" err &&
	mkdir -p empty && cp tok.model empty/tokenizer.model &&
	test_must_fail gen -M empty </dev/null 2>err &&
	test_grep "gen: empty" err
'

test_expect_success MODEL 'a tokenizer with more pieces than the model has rows' '
	test_must_fail gen -M m -m big.model <p.jsonl 2>err &&
	test_grep "tokenizer has 180 pieces but the model.s vocabulary is 128" err
'

# Without a GPU (GPU and NO_GPU come from test-lib.sh) --device cuda fails
# cleanly; with one it answers, or, where the CUDA backend was not built,
# fails as cleanly.
test_expect_success MODEL '--device cuda answers on a GPU and says why not elsewhere' '
	if test_have_prereq GPU && gen -M m --device cuda <p.jsonl >out 2>err; then
		gen -M m <p.jsonl >cpu &&
		test_line_count = $(wc -l <cpu) out
	else
		test_must_fail gen -M m --device cuda <p.jsonl >out 2>err &&
		test_grep "gen: --device cuda: " err &&
		test_line_count = 1 err &&
		test_must_be_empty_file out
	fi
'

test_expect_success MODEL '--help prints the usage to stdout' '
	gen --help >out 2>err &&
	test_grep "^usage: gen -M MODEL" out &&
	test_grep -- "--max-new-tokens" out &&
	test_must_be_empty_file err
'

test_expect_success MODEL 'a prompt is checked against the context before any work, one message' '
	$TINY model m16 max_pos=16 &&
	cp tok.model m16/tokenizer.model &&
	echo "{\"input_ids\":[1,5,9,20,33,1,5,9,20,33,1,5,9,20,33,7]}" >long.jsonl &&
	test_must_fail gen -q -M m16 --max-new-tokens 2 long.jsonl >out 2>err &&
	test_grep "^gen: long.jsonl:1: the prompt has 16 tokens; the model.s context (max_position_embeddings) is 16, with no room left to generate" err &&
	echo "{\"prompt\":\"the cat\",\"output\":\"$(printf "the cat sat %.0s" $(seq 8))\"}" >sc.jsonl &&
	test_must_fail gen -q -M m16 --score sc.jsonl >out 2>err &&
	test_grep "^gen: sc.jsonl:1: the prompt and output has [0-9]* tokens; the model.s context (max_position_embeddings) is 16" err &&
	gen -q -M m16 --skip-bad --max-new-tokens 2 long.jsonl p.jsonl >out 2>err &&
	test_line_count = 3 out &&
	test_grep "long.jsonl:1: the prompt has 16 tokens.*(skipped)" err
'

test_expect_success MODEL 'a prompt of a million characters is refused before it is encoded' '
	awk "BEGIN { printf \"{\\\"prompt\\\":\\\"\"; for (i = 0; i < 200000; i++) printf \"the c\"; print \"\\\"}\" }" >huge.jsonl &&
	( ulimit -v 2000000; test_must_fail gen -q -M m16 --max-new-tokens 1 huge.jsonl >out 2>err ) &&
	test_grep "^gen: huge.jsonl:1: the prompt has 1000000 bytes, more than [0-9]* tokens; the model.s context (max_position_embeddings) is 16" err
'

test_expect_success MODEL 'gen -i refuses a FILE operand' '
	test_expect_code 2 gen -M m -i p.jsonl </dev/null >out 2>err &&
	test_grep "gen: --interactive reads the terminal, not .p.jsonl." err &&
	test_must_be_empty_file out
'

test_done
