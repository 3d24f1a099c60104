#!/bin/sh
# The model code and gen against transformers + PEFT on small random LLaMA
# models that t/ref/make_models.py builds at run time: MHA and GQA, tied and
# untied heads, odd sizes, linear/dynamic/llama3/yarn rope, f32/bf16/f16
# weights, every file layout, PEFT adapters with non-zero B (rank and alpha
# patterns, rslora, modules_to_save).
#
# Tolerance for logits: max|ours - HF| <= 1e-4 * max(1, max|HF|). Both
# compute in f32 from the same weights (bf16/f16 upcast); they differ only
# in summation order, which costs a few ulps per dot product (seen: 1e-7 to
# 6e-7), so 1e-4 has a wide margin and still catches any wrong operation,
# which shows up at 1e-2 or more. Greedy and beam outputs must be identical.
. "$(dirname "$0")/test-lib.sh"

$PYTHON -c 'import torch, transformers, peft' 2>/dev/null && test_set_prereq PY_PEFT
test_require PY_PEFT
REF="$PYTHON $TEST_DIR/ref/gen_ref.py"

# A tokenizer smaller than every model's vocabulary (gen needs one; the
# prompts here are token ids).
make_small_tokenizer() {
	for i in $(seq 1 300); do echo "the cat sat on a mat and the dog ran to the red barn $i"; done >small.txt &&
	spm_train --input=small.txt --model_prefix=tok --vocab_size=60 --model_type=bpe \
		--minloglevel=2 >/dev/null 2>&1
}

test_expect_success SPM_TRAIN 'build the random models' '
	$PYTHON "$TEST_DIR/ref/make_models.py" "$TRASH/m" mha gqa dyn l3 yarn >/dev/null 2>&1 &&
	make_small_tokenizer &&
	test -f m/l3/hf/config.json &&
	test -f tok.model
'

# ids: short prompts, a repeated token, and one longer than the dyn
# model's 64 positions (dynamic rope rescales there)
printf '1 5 9 20 33\n1 7 7 7 7 7 19\n' >"$TRASH/ids"
seq 1 70 | awk '{ printf "%s%d", (NR > 1 ? " " : ""), ($1 * 37) % 190 + 3 } END { print "" }' >"$TRASH/long"

# The reference runs in one Python process for all cases (torch starts once).
LOGIT_CASES="mha/hf gqa/hf dyn/hf l3/hf yarn/hf
mha/hf:mha/adapter gqa/hf:gqa/adapter dyn/hf:dyn/adapter l3/hf:l3/adapter yarn/hf:yarn/adapter
gqa/hf:gqa/adapter-bin mha/hf:mha/adapter:mha/adapter-bin"
test_expect_success 'transformers and PEFT compute the reference logits' '
	n=0 &&
	for c in $LOGIT_CASES; do
		n=$((n + 1)) &&
		echo "logits ids ref.$n m/$(echo $c | sed "s/:/ m\//g")" >>jobs || return 1
	done &&
	echo "logits long ref.long m/dyn/hf" >>jobs &&
	$PYTHON $TEST_DIR/ref/gen_ref.py batch jobs 2>/dev/null &&
	test -s ref.long
'

n=0
for c in $LOGIT_CASES; do
	n=$((n + 1))
	args=$(echo "$c" | sed "s/:/ m\//g")
	test_expect_success "logits equal the reference: $c" "
		\"\$LP_BUILD/t/llama_logits\" m/$args <ids >ours &&
		\$REF compare ours ref.$n 1e-4
	"
done
test_expect_success 'every layout gives the same logits: sharded, .bin, Meta, 2-shard Meta' '
	for l in hf-sharded bin bin-sharded meta meta2; do
		"$LP_BUILD/t/llama_logits" m/mha/$l <ids >ours &&
		$REF compare ours ref.1 1e-4 || return 1
	done
'
test_expect_success 'logits past max_position_embeddings with dynamic rope' '
	"$LP_BUILD/t/llama_logits" m/dyn/hf <long >ours &&
	$REF compare ours ref.long 1e-4
'

# Generation cases: name, model, gen flags, generate() kwargs; token ids
# must be identical. The reference runs once for all of them.
GEN_CASES='greedy-mha|mha/hf|--max-new-tokens 12|{"max_new_tokens":12,"do_sample":false}
greedy-gqa|gqa/hf|--max-new-tokens 9|{"max_new_tokens":9,"do_sample":false}
beam-gqa|gqa/hf|--max-new-tokens 12 --num-beams 3|{"max_new_tokens":12,"num_beams":3,"do_sample":false}
beam-l3|l3/hf|--max-new-tokens 10 --num-beams 4 --num-return-sequences 2 --length-penalty 0.5|{"max_new_tokens":10,"num_beams":4,"num_return_sequences":2,"length_penalty":0.5,"do_sample":false}
beam-eos-early|mha/hf|--max-new-tokens 12 --eos-token-id 62 --num-beams 2 --early-stopping true|{"max_new_tokens":12,"num_beams":2,"eos_token_id":62,"early_stopping":true,"do_sample":false}
beam-never|yarn/hf|--max-new-tokens 8 --eos-token-id 13,40 --num-beams 3 --early-stopping never --length-penalty 2|{"max_new_tokens":8,"num_beams":3,"eos_token_id":[13,40],"early_stopping":"never","length_penalty":2.0,"do_sample":false}
processors|dyn/hf|--max-new-tokens 12 --repetition-penalty 1.3 --no-repeat-ngram-size 2|{"max_new_tokens":12,"repetition_penalty":1.3,"no_repeat_ngram_size":2,"do_sample":false}
min-new-suppress|mha/hf|--max-new-tokens 10 --min-new-tokens 6 --eos-token-id 52 --suppress-tokens 203,161|{"max_new_tokens":10,"min_new_tokens":6,"eos_token_id":52,"suppress_tokens":[203,161],"do_sample":false}
adapter-beam|mha/hf -A m/mha/adapter|--max-new-tokens 8 --num-beams 2|
dynamic-long|dyn/hf|--max-new-tokens 8|{"max_new_tokens":8,"do_sample":false}'

field() { echo "$1" | cut -d"|" -f"$2"; }

test_expect_success 'transformers generate() computes the reference outputs' '
	echo "$GEN_CASES" | while IFS= read -r c; do
		name=$(field "$c" 1) model=$(field "$c" 2) kw=$(field "$c" 4)
		test -n "$kw" || continue
		in=ids; test "$name" = dynamic-long && in=long
		echo "generate $in gref.$name m/$model $kw" >>gjobs
	done &&
	$PYTHON $TEST_DIR/ref/gen_ref.py batch gjobs 2>/dev/null &&
	test -s gref.greedy-mha
'

echo "$GEN_CASES" | while IFS= read -r c; do echo "$c"; done >"$TRASH/gen-cases"
while IFS= read -r c; do
	name=$(field "$c" 1)
	test -n "$(field "$c" 4)" || continue
	test_expect_success JQ "gen equals generate(): $name" "
		in=ids; test $name = dynamic-long && in=long
		sed 's/ /,/g; s/.*/{\"input_ids\":[&]}/' \$in >in.jsonl &&
		gen -q -M m/$(field "$c" 2) -m tok.model --ids $(field "$c" 3) <in.jsonl >out.jsonl &&
		jq -r '(.sequences // [.])[] | .ids | map(tostring) | join(\" \")' out.jsonl >ours &&
		test_cmp gref.$name ours
	"
done <"$TRASH/gen-cases"

test_done
