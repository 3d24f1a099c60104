#!/bin/sh
# A pipeline cannot lose data silently: a tool that fails upstream makes
# every tool after it fail (frames end with a trailer, JSON lines with an
# abort line), and error messages that quote a file's bytes stay one line.
. "$(dirname "$0")/test-lib.sh"

export OMP_NUM_THREADS=2 OMP_WAIT_POLICY=passive

test_expect_success SPM_TRAIN 'setup: a tokenizer, a base model of its vocabulary, MSRA records' '
	make_spm_model m bpe 1000 &&
	cat >config.json <<-\EOF &&
	{"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 32,
	 "intermediate_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
	 "num_hidden_layers": 1, "vocab_size": 1000, "max_position_embeddings": 256,
	 "rms_norm_eps": 1e-6, "tie_word_embeddings": false, "pad_token_id": 0}
	EOF
	for i in 1 2 3 4 5 6 7 8; do
		echo "{\"text\": \"王小明和李华去了上海$i。\", \"entity_list\": [{\"entity_index\": {\"begin\": 8, \"end\": 10}, \"entity_type\": \"LOC\", \"entity\": \"上海\"}]}"
	done >msra.jsonl &&
	{ sed -n 1,4p msra.jsonl && echo "{\"text\": \"坏\", " && sed -n 5,8p msra.jsonl; } >broken.jsonl &&
	mkinstr -q --from msra msra.jsonl | tok -q -m m.model >good.frames &&
	lora-train --from-scratch config.json -o base --max-steps 1 <good.frames >/dev/null
'
test -f base/config.json && test_set_prereq BASE

test_expect_success BASE 'the whole pipeline trains on good data' '
	mkinstr -q --from msra <msra.jsonl | tok -q -m m.model |
		lora-train -M base -o ok --max-steps 2 >log &&
	test -f ok/adapter_model.safetensors
'

test_expect_success BASE 'a bad line upstream: non-zero exit and no adapter' '
	! { mkinstr -q --from msra <broken.jsonl | tok -q -m m.model |
		lora-train -M base -o ad --max-steps 2 >log 2>err; } &&
	test_grep "lora-train: stdin: stream at byte [0-9]*: ended without its trailer: did the writer fail?" err &&
	! test -e ad
'

test_expect_success BASE 'tok between the two names the tool that failed' '
	test_must_fail sh -c "mkinstr -q --from msra <broken.jsonl | tok -q -m m.model >part.frames" 2>err &&
	test_grep "^tok: stdin:[0-9]*: the tool writing this input failed: mkinstr: stdin:5: malformed JSON" err &&
	test_must_fail tok --dump part.frames >/dev/null 2>err &&
	test_grep "part.frames: stream at byte [0-9]*: ended without its trailer" err
'

test_expect_success BASE 'tok cut off mid-stream (at a record boundary or not): lora-train fails' '
	size=$(wc -c <good.frames) &&
	tok --dump good.frames >/dev/null &&
	for cut in 40 $((size / 2)) $((size - 40)) $((size - 1)); do
		head -c $cut good.frames >cut.frames &&
		test_must_fail lora-train -M base -o cut --max-steps 1 <cut.frames 2>err &&
		test_grep "stdin: [a-z]* at byte [0-9]*: " err &&
		! test -e cut || return 1
	done
'

test_expect_success 'jq downstream fails too, on the abort line' '
	printf "{\"text\":\"a\"}\n{\"text\":\n" >bad.jsonl &&
	mkinstr --from json bad.jsonl >out 2>err;
	test $? = 1 &&
	head -n 1 out | test_grep "^{\"text\":\"a\"}$" &&
	tail -n 1 out | test_grep "^!llamapipe-abort: mkinstr: bad.jsonl:2: malformed JSON" &&
	if command -v jq >/dev/null; then ! jq . out >/dev/null 2>&1; fi
'

test_expect_success 'an abort line is refused even with --skip-bad' '
	printf "{\"text\":\"a\"}\n!llamapipe-abort: x: failed\n" >ab.jsonl &&
	test_must_fail mkinstr --skip-bad --from json ab.jsonl >/dev/null 2>err &&
	test_grep "^mkinstr: ab.jsonl:2: the tool writing this input failed: x: failed$" err
'

test_expect_success 'a message quoting control bytes and bad UTF-8 stays one escaped line' '
	printf "{\"text\": \"a\033[2J\\\\\\\\ \\r\n" >ctl.jsonl &&
	test_must_fail mkinstr --from json ctl.jsonl >/dev/null 2>err &&
	test_line_count = 1 err &&
	test_grep "\\\\x1b\[2J" err &&
	! grep "$(printf "\033")" err &&
	printf "\377\376 not a model" >bad.model &&
	test_must_fail tok -m "$(printf "bad\nname.model")" </dev/null >/dev/null 2>err &&
	test_line_count = 1 err &&
	test_grep "bad\\\\nname.model" err
'

test_expect_success BASE 'invalid UTF-8 in JSON input names file and line, in every tool' '
	printf "{\"text\":\"ok\"}\n{\"text\":\"a\\303\"}\n" >u.jsonl &&
	test_must_fail mkinstr --from json u.jsonl >/dev/null 2>err &&
	test_grep "^mkinstr: u.jsonl:2: invalid UTF-8 (byte 0xc3 at column 11)" err &&
	mkinstr --from json --skip-bad u.jsonl >out 2>err &&
	test_line_count = 1 out && test_grep "1 bad" err &&
	test_must_fail tok -m m.model --mode pt u.jsonl >/dev/null 2>err &&
	test_grep "^tok: u.jsonl:2: invalid UTF-8" err &&
	test_must_fail tok -m m.model --mode ids u.jsonl >/dev/null 2>err &&
	test_grep "^tok: u.jsonl:2: invalid UTF-8" err &&
	printf "{\"prompt\":\"ok\"}\n{\"prompt\":\"\\355\\240\\200\"}\n" >g.jsonl &&
	test_must_fail gen -M base -m m.model --max-new-tokens 1 g.jsonl >/dev/null 2>err &&
	test_grep "^gen: g.jsonl:2: invalid UTF-8" err &&
	printf "[{\"text\":\"ok\"},\n{\"text\":\"\\377\"}]" >a.json &&
	test_must_fail mkinstr --from json a.json >/dev/null 2>err &&
	test_grep "^mkinstr: a.json: line 2: invalid UTF-8" err
'
test_done
