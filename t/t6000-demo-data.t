#!/bin/sh
# The demo's bundled data (testdata/demo/, written by pipelines/demo/gen-data.py)
# and the entity-level F1 program pipelines/ner-f1.jq.
. "$(dirname "$0")/test-lib.sh"

D=$SRC_DIR/testdata/demo
F1=$SRC_DIR/pipelines/ner-f1.jq
export D F1

$PYTHON -c 'import json' 2>/dev/null && test_set_prereq PYTHON
command -v spm_encode >/dev/null 2>&1 && command -v spm_decode >/dev/null 2>&1 &&
	command -v spm_export_vocab >/dev/null 2>&1 && test_set_prereq SPM_TOOLS
command -v mkinstr >/dev/null 2>&1 && test_set_prereq MKINSTR

# f1 JSONL...: the F1 program on the given records, compact output.
f1() { printf '%s\n' "$@" | jq -c -s -f "$F1"; }

# ---- NER records ----

test_expect_success JQ 'NER files are MSRA-style JSONL' '
	for f in ner-train ner-test; do
		jq -e -s "all(.[];
			(keys == [\"entity_list\", \"text\"]) and
			(.text | type == \"string\" and length > 0) and
			(.entity_list | type == \"array\") and
			all(.entity_list[];
				(.entity | type == \"string\" and length > 0) and
				(.entity_type | IN(\"PER\", \"LOC\", \"ORG\")) and
				(.entity_index.begin | type == \"number\" and . >= 0 and . == floor) and
				(.entity_index.end | type == \"number\" and . == floor)))" \
			"$D/$f.jsonl" >/dev/null || return 1
	done
'

# offsets FILE: every entity whose text[begin:end] is not the entity.
offsets() {
	jq -r ".text as \$t | .entity_list[]
		| select(.entity_index.end > (\$t | length) or
			\$t[.entity_index.begin:.entity_index.end] != .entity)
		| \"\\(.entity) \\(.entity_index.begin) \\(.entity_index.end)\"" "$1"
}

test_expect_success JQ 'entity_index is exact (code points, end exclusive)' '
	offsets "$D/ner-train.jsonl" >bad-train &&
	offsets "$D/ner-test.jsonl" >bad-test &&
	test_line_count = 0 bad-train && test_line_count = 0 bad-test &&
	printf "%s\n" "{\"text\":\"去北京\",\"entity_list\":[{\"entity\":\"北京\",\"entity_type\":\"LOC\",\"entity_index\":{\"begin\":1,\"end\":2}}]}" \
		"{\"text\":\"去北京\",\"entity_list\":[{\"entity\":\"北京\",\"entity_type\":\"LOC\",\"entity_index\":{\"begin\":1,\"end\":3}}]}" >two.jsonl &&
	offsets two.jsonl >bad &&
	echo "北京 1 2" >expect && test_cmp expect bad
'

test_expect_success PYTHON 'entity_index is exact (checked by Python too)' '
	$PYTHON - "$D/ner-train.jsonl" "$D/ner-test.jsonl" <<-\EOF
	import json, sys
	n = 0
	for path in sys.argv[1:]:
	    for line in open(path, encoding="utf-8"):
	        rec = json.loads(line)
	        for e in rec["entity_list"]:
	            b, x = e["entity_index"]["begin"], e["entity_index"]["end"]
	            assert rec["text"][b:x] == e["entity"], (path, rec, e)
	            n += 1
	assert n > 1000, n
	EOF
'

test_expect_success 'NER record counts: 800 train, 100 test' '
	test_line_count = 800 "$D/ner-train.jsonl" &&
	test_line_count = 100 "$D/ner-test.jsonl"
'

test_expect_success JQ 'about 30% of records have no entity, the others 1 to 3' '
	for f in ner-train ner-test; do
		jq -s -e "length as \$n | (map(select(.entity_list == [])) | length / \$n) as \$none
			| \$none >= 0.25 and \$none <= 0.35 and
			  all(.[]; .entity_list | length <= 3)" "$D/$f.jsonl" >/dev/null || return 1
	done
'

test_expect_success JQ 'test entities are partly seen in training, partly new' '
	jq -r ".entity_list[].entity" "$D/ner-train.jsonl" | sort -u >train-ents &&
	jq -r ".entity_list[].entity" "$D/ner-test.jsonl" | sort -u >test-ents &&
	comm -13 train-ents test-ents >unseen &&
	comm -12 train-ents test-ents >seen &&
	test_line_count -ge 20 unseen && test_line_count -ge 20 seen &&
	for k in PER LOC ORG; do
		jq -r ".entity_list[] | select(.entity_type == \"$k\") | .entity" \
			"$D/ner-test.jsonl" | sort -u | comm -13 train-ents - >new-$k &&
		test_line_count -ge 5 new-$k || return 1
	done
'

test_expect_success JQ 'texts are distinct and no test text is a training text' '
	jq -r .text "$D/ner-train.jsonl" | sort >train-texts &&
	jq -r .text "$D/ner-test.jsonl" | sort >test-texts &&
	sort -u train-texts | test_line_count = 800 /dev/stdin &&
	sort -u test-texts | test_line_count = 100 /dev/stdin &&
	comm -12 train-texts test-texts >both &&
	test_line_count = 0 both
'

test_expect_success MKINSTR 'mkinstr reads the NER files' '
	mkinstr -q --from msra "$D/ner-train.jsonl" >train-instr.jsonl &&
	test_line_count = 800 train-instr.jsonl &&
	mkinstr -q --from msra "$D/ner-test.jsonl" >test-instr.jsonl &&
	test_line_count = 100 test-instr.jsonl
'

# ---- corpora and the base tokenizer ----

test_expect_success 'zh-corpus: 1500-3000 documents, no blank line, under 300 KB' '
	test_line_count -ge 1500 "$D/zh-corpus.txt" &&
	test_line_count -le 3000 "$D/zh-corpus.txt" &&
	test $(wc -c <"$D/zh-corpus.txt") -lt 300000 &&
	! grep -n "^ *$" "$D/zh-corpus.txt" &&
	iconv -f UTF-8 -t UTF-8 "$D/zh-corpus.txt" >/dev/null
'

test_expect_success SPM_TRAIN 'a Chinese SentencePiece model of 800 and of 1500 pieces trains on zh-corpus' '
	for v in 800 1500; do
		spm_train --input="$D/zh-corpus.txt" --model_prefix=zh$v \
			--model_type=bpe --vocab_size=$v --character_coverage=0.9995 \
			--minloglevel=2 >/dev/null 2>&1 &&
		test -s zh$v.model || return 1
	done
'

test_expect_success 'base-corpus: a few hundred ASCII lines' '
	test_line_count -ge 200 "$D/base-corpus.txt" &&
	test_line_count -le 1000 "$D/base-corpus.txt" &&
	! LC_ALL=C grep -n "[^ -~]" "$D/base-corpus.txt"
'

test_expect_success SPM_TOOLS 'base.model: small, 500 pieces, loads in spm_encode' '
	test $(wc -c <"$D/base.model") -lt 51200 &&
	spm_export_vocab --model="$D/base.model" >vocab &&
	test_line_count = 500 vocab &&
	cut -f1 vocab | grep -c "^<0x..>\$" >bytes &&
	echo 256 >expect && test_cmp expect bytes &&
	echo "The old cat watched 12 birds." | spm_encode --model="$D/base.model" >en &&
	! grep "<0x" en && test_grep " 1 2 " en
'

test_expect_success SPM_TOOLS 'base.model: Chinese falls back to bytes and decodes back' '
	echo "今天王明去了杭州。" >zh &&
	spm_encode --model="$D/base.model" <zh >pieces &&
	tr " " "\n" <pieces | grep -c "^<0x" >nbytes &&
	echo 27 >expect && test_cmp expect nbytes &&
	spm_encode --model="$D/base.model" --output_format=id <zh |
		spm_decode --model="$D/base.model" --input_format=id >back &&
	test_cmp zh back
'

test_expect_success PYTHON 'gen-data.py reproduces the committed text files' '
	$PYTHON "$SRC_DIR/pipelines/demo/gen-data.py" --out gen --no-model &&
	for f in base-corpus.txt zh-corpus.txt ner-train.jsonl ner-test.jsonl; do
		cmp "$D/$f" "gen/$f" || return 1
	done &&
	! test -e gen/base.model
'

# ---- pipelines/ner-f1.jq ----

test_expect_success JQ 'F1: perfect answers' '
	f1 "{\"gold\":\"张三_人名\\n北京_地名\",\"pred\":\"北京_地名\\n张三_人名\"}" \
		"{\"gold\":\"星河公司_机构名\",\"pred\":\"星河公司_机构名\"}" >out &&
	echo "{\"precision\":1,\"recall\":1,\"f1\":1,\"tp\":3,\"fp\":0,\"fn\":0}" >expect &&
	test_cmp expect out
'

test_expect_success JQ 'F1: empty predictions (null, absent, 没有, blank)' '
	f1 "{\"gold\":\"张三_人名\",\"pred\":null}" \
		"{\"gold\":\"北京_地名\"}" \
		"{\"gold\":\"李四_人名\",\"pred\":\"没有\"}" \
		"{\"gold\":\"王五_人名\",\"pred\":\"\"}" >out &&
	echo "{\"precision\":0,\"recall\":0,\"f1\":0,\"tp\":0,\"fp\":0,\"fn\":4}" >expect &&
	test_cmp expect out
'

test_expect_success JQ 'F1: partial answers (wrong type, missed, extra)' '
	f1 "{\"gold\":\"张三_人名\\n北京_地名\",\"pred\":\"张三_人名\\n北京_机构名\"}" \
		"{\"gold\":\"没有\",\"pred\":\"上海_地名\"}" \
		"{\"gold\":\"星河公司_机构名\\n李四_人名\",\"pred\":\"星河公司_机构名\"}" >out &&
	echo "{\"precision\":0.5,\"recall\":0.5,\"f1\":0.5,\"tp\":2,\"fp\":2,\"fn\":2}" >expect &&
	test_cmp expect out &&
	f1 "{\"gold\":\"张三_人名\\n北京_地名\",\"pred\":\"张三_人名\"}" >out &&
	echo "{\"precision\":1,\"recall\":0.5,\"f1\":0.6667,\"tp\":1,\"fp\":0,\"fn\":1}" >expect &&
	test_cmp expect out
'

test_expect_success JQ 'F1: duplicates count once, white space around lines is ignored' '
	f1 "{\"gold\":\"张三_人名\\n张三_人名\\n北京_地名\",\"pred\":\" 张三_人名\\r\\n张三_人名\\n\\n北京_地名 \\n北京_地名\"}" >out &&
	echo "{\"precision\":1,\"recall\":1,\"f1\":1,\"tp\":2,\"fp\":0,\"fn\":0}" >expect &&
	test_cmp expect out
'

test_expect_success JQ 'F1: 没有 against 没有 is perfect, with nothing counted' '
	f1 "{\"gold\":\"没有\",\"pred\":\"没有\"}" "{\"gold\":\"没有\",\"pred\":\" 没有 \"}" >out &&
	echo "{\"precision\":1,\"recall\":1,\"f1\":1,\"tp\":0,\"fp\":0,\"fn\":0}" >expect &&
	test_cmp expect out
'

test_expect_success JQ 'F1: malformed pred lines are false positives' '
	f1 "{\"gold\":\"张三_人名\",\"pred\":\"张三_人名\\n张三\\n_人名\\n李四_\\n张三人名\"}" >out &&
	echo "{\"precision\":0.2,\"recall\":1,\"f1\":0.3333,\"tp\":1,\"fp\":4,\"fn\":0}" >expect &&
	test_cmp expect out &&
	f1 "{\"gold\":\"没有\",\"pred\":\"我不知道\"}" >out &&
	echo "{\"precision\":0,\"recall\":0,\"f1\":0,\"tp\":0,\"fp\":1,\"fn\":0}" >expect &&
	test_cmp expect out
'

test_expect_success JQ 'F1: an entity with "_" in it splits at the last "_"' '
	f1 "{\"gold\":\"a_b_地名\",\"pred\":\"a_b_地名\\na_b\"}" >out &&
	echo "{\"precision\":0.5,\"recall\":1,\"f1\":0.6667,\"tp\":1,\"fp\":1,\"fn\":0}" >expect &&
	test_cmp expect out
'

test_expect_success JQ 'F1: bad input fails with a message' '
	printf "%s\n" "{\"gold\":\"x_y\",\"pred\":\"x_y\"}" "{\"gold\":\"张三\",\"pred\":\"张三\"}" >bad-gold &&
	test_must_fail jq -s -f "$F1" bad-gold 2>err &&
	test_grep "record 2: gold line \"张三\" is not ENTITY_TYPE" err &&
	echo "{\"gold\":\"x_y\",\"pred\":7}" >bad-pred &&
	test_must_fail jq -s -f "$F1" bad-pred 2>err &&
	test_grep "record 1: \"pred\" is number, not a string" err &&
	echo "{\"pred\":\"x_y\"}" >no-gold &&
	test_must_fail jq -s -f "$F1" no-gold 2>err &&
	test_grep "record 1: not an object with a \"gold\" answer" err &&
	echo "{\"gold\":\"x_y\",\"pred\":\"x_y\"}" >one &&
	test_must_fail jq -f "$F1" one 2>err &&
	test_grep "run as jq -s" err &&
	test_must_fail jq -s -f "$F1" /dev/null 2>err &&
	test_grep "no records" err
'

test_expect_success MKINSTR,JQ 'F1 on mkinstr answers for the test set' '
	mkinstr -q --from msra "$D/ner-test.jsonl" |
		jq -c "{gold: .output, pred: .output}" | jq -c -s -f "$F1" >out &&
	jq -e ".f1 == 1 and .fp == 0 and .fn == 0 and .tp > 100" out &&
	mkinstr -q --from msra "$D/ner-test.jsonl" |
		jq -c "{gold: .output, pred: \"没有\"}" | jq -c -s -f "$F1" >out &&
	jq -s "[.[].entity_list | unique_by([.entity, .entity_type]) | length] | add" \
		"$D/ner-test.jsonl" >n &&
	jq -e --slurpfile n n ".recall == 0 and .tp == 0 and .fn == \$n[0]" out
'

test_done
