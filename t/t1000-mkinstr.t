#!/bin/sh
# mkinstr: MSRA NER (JSONL and tag columns), Alpaca, text and jq input to
# instruction records; format guessing; dedup, shuffle, dev split; bad input.
. "$(dirname "$0")/test-lib.sh"

$PYTHON -c 'import json' 2>/dev/null && test_set_prereq PYTHON

# The default NER instruction as it appears inside a JSON string.
INS=$(cat <<'EOF'
你现在是一个实体识别模型，你需要提取文本里面的人名、地名、机构名，如果存在结果，返回'实体_实体类型'，不同实体间用\n分隔。如果没有结果，回答'没有'。
EOF
)
# ner INPUT OUTPUT: one expected NER record (OUTPUT with \n for newlines).
ner() { printf '{"instruction":"%s","input":"文本：%s","output":"%s"}\n' "$INS" "$1" "$2"; }
# instr INSTRUCTION INPUT OUTPUT
instr() { printf '{"instruction":"%s","input":"%s","output":"%s"}\n' "$1" "$2" "$3"; }

cat >bio.txt <<'EOF'
张 B-PER
三 I-PER
在 O
南 B-LOC
京 I-LOC
。 O


我 O
爱 O
南 B-LOC
京 I-LOC
张 B-PER
三 I-PER
南 B-LOC
EOF
printf "京\tI-LOC\n\n好 O\n的 O\n" >>bio.txt

cat >msra.jsonl <<'EOF'
{"text": "王小明和李华去了上海，王小明很开心。", "entity_list": [{"entity_index": {"begin": 8, "end": 10}, "entity_type": "LOC", "entity": "上海"}, {"entity_index": {"begin": 0, "end": 3}, "entity_type": "PER", "entity": "王小明"}, {"entity_index": {"begin": 4, "end": 6}, "entity_type": "PER", "entity": "李华"}, {"entity_index": {"begin": 11, "end": 14}, "entity_type": "PER", "entity": "王小明"}]}
{"text": "今天天气很好。", "entity_list": []}
{"text": "", "entity_list": []}

{"text": "清华大学位于北京。", "entity_list": [{"entity_index": {"begin": 0, "end": 4}, "entity_type": "ORG", "entity": "清华大学"}, {"entity_index": {"begin": 6, "end": 8}, "entity_type": "LOC", "entity": "北京"}]}
EOF
{ sed -n 1,2p msra.jsonl && echo '{"text": "坏", ' && sed -n 5p msra.jsonl; } >broken.jsonl

test_expect_success 'msra JSONL: list order, repeats dropped, 没有, empty text skipped' '
	ner "王小明和李华去了上海，王小明很开心。" "上海_地名\n王小明_人名\n李华_人名" >expect &&
	ner "今天天气很好。" "没有" >>expect &&
	ner "清华大学位于北京。" "清华大学_机构名\n北京_地名" >>expect &&
	mkinstr <msra.jsonl >out 2>err &&
	test_cmp expect out &&
	test_grep "^mkinstr: stdin: reading MSRA NER JSONL (use --from to choose)$" err &&
	test_grep "4 records in, 3 out (0 to dev); skipped 1 empty, 0 bad, 0 duplicates" err
'

test_expect_success JQ 'msra: the instruction has a real newline; an entity with two types keeps both' '
	mkinstr -q msra.jsonl | head -n 1 >first &&
	jq -r .instruction first | sed -n 2p >line2 &&
	echo "分隔。如果没有结果，回答'"'"'没有'"'"'。" >expect &&
	test_cmp expect line2 &&
	echo "{\"text\":\"北京很大\",\"entity_list\":[{\"entity\":\"北京\",\"entity_type\":\"LOC\"},{\"entity\":\"北京\",\"entity_type\":\"ORG\"},{\"entity\":\"北京\",\"entity_type\":\"LOC\"}]}" |
		mkinstr -q --from msra >out &&
	ner "北京很大" "北京_地名\n北京_机构名" >expect &&
	test_cmp expect out
'

test_expect_success 'msra: --label, --instruction, --input-prefix, --none' '
	mkinstr -q --label PER=人物 --label LOC=地点 --instruction "找实体" \
		--input-prefix "句子：" --none "无" msra.jsonl >out &&
	instr "找实体" "句子：王小明和李华去了上海，王小明很开心。" "上海_地点\n王小明_人物\n李华_人物" >expect &&
	instr "找实体" "句子：今天天气很好。" "无" >>expect &&
	instr "找实体" "句子：清华大学位于北京。" "清华大学_机构名\n北京_地点" >>expect &&
	test_cmp expect out
'

test_expect_success 'msra: an MSRA JSON array is read too' '
	{ echo "[" && sed -n 1p msra.jsonl && echo "," && sed -n 2p msra.jsonl && echo "]"; } >msra.json &&
	mkinstr msra.json >out 2>err &&
	ner "王小明和李华去了上海，王小明很开心。" "上海_地名\n王小明_人名\n李华_人名" >expect &&
	ner "今天天气很好。" "没有" >>expect &&
	test_cmp expect out &&
	test_grep "msra.json: reading MSRA NER JSON array" err
'

test_expect_success 'BIO columns: text order, repeats dropped, tabs, several blank lines' '
	ner "张三在南京。" "张三_人名\n南京_地名" >expect &&
	ner "我爱南京张三南京" "南京_地名\n张三_人名" >>expect &&
	ner "好的" "没有" >>expect &&
	mkinstr <bio.txt >out 2>err &&
	test_cmp expect out &&
	test_grep "stdin: reading NER tag columns (BIO/BIOES)" err &&
	test_grep "3 records in, 3 out" err &&
	mkinstr -q --from msra <bio.txt >out2 &&
	test_cmp expect out2
'

test_expect_success 'BIOES and BMES tags' '
	cat >bioes.txt <<-\EOF &&
	李 S-PER
	在 O
	北 B-ORG
	京 I-ORG
	大 I-ORG
	学 E-ORG
	读 O
	书 O

	中 B-ORG
	国 M-ORG
	银 M-ORG
	行 E-ORG
	在 O
	广 B-LOC
	州 E-LOC
	EOF
	ner "李在北京大学读书" "李_人名\n北京大学_机构名" >expect &&
	ner "中国银行在广州" "中国银行_机构名\n广州_地名" >>expect &&
	mkinstr -q --from bio bioes.txt >out &&
	test_cmp expect out
'

test_expect_success 'BIO: bad tag, I- without B-, wrong type, unknown type name the line' '
	printf "我 O\n们 X-PER\n" >bad1.txt &&
	test_must_fail mkinstr bad1.txt 2>err &&
	test_grep "bad1.txt:2: bad tag .X-PER." err &&
	printf "我 O\n\n们 O\n张 I-PER\n" >bad2.txt &&
	test_must_fail mkinstr bad2.txt 2>err &&
	test_grep "bad2.txt:4: .I-PER. without a .B-PER. before it" err &&
	printf "北 B-LOC\n京 I-ORG\n" >bad3.txt &&
	test_must_fail mkinstr bad3.txt 2>err &&
	test_grep "bad3.txt:2: .I-ORG. continues a LOC entity" err &&
	printf "北 B-GPE\n京 E-GPE\n" >bad4.txt &&
	test_must_fail mkinstr bad4.txt 2>err &&
	test_grep "bad4.txt:1: unknown entity type .GPE. (map it with --label GPE=NAME)" err &&
	mkinstr -q --label GPE=政区 bad4.txt >out &&
	ner "北京" "北京_政区" >expect &&
	test_cmp expect out
'

test_expect_success 'BIO --skip-bad drops the whole sentence and counts it' '
	printf "张 B-PER\n三 I-PER\n\n李 O\n四 I-PER\n五 O\n\n王 S-PER\n" >bad.txt &&
	mkinstr --skip-bad bad.txt >out 2>err &&
	ner "张三" "张三_人名" >expect &&
	ner "王" "王_人名" >>expect &&
	test_cmp expect out &&
	test_grep "bad.txt:5: .I-PER. without .*(skipped)" err &&
	test_grep "3 records in, 2 out (0 to dev); skipped 0 empty, 1 bad" err
'

test_expect_success 'msra: unknown entity type and a wrong entity_index are bad records' '
	echo "{\"text\":\"好\",\"entity_list\":[]}" >t.jsonl &&
	echo "{\"text\":\"在伦敦\",\"entity_list\":[{\"entity\":\"伦敦\",\"entity_type\":\"GPE\",\"entity_index\":{\"begin\":1,\"end\":3}}]}" >>t.jsonl &&
	test_must_fail mkinstr t.jsonl 2>err &&
	test_grep "^mkinstr: t.jsonl:2: unknown entity type .GPE. (map it with --label GPE=NAME)" err &&
	mkinstr -q --label GPE=地名 t.jsonl >out &&
	test_line_count = 2 out &&
	echo "{\"text\":\"在伦敦\",\"entity_list\":[{\"entity\":\"伦敦\",\"entity_type\":\"LOC\",\"entity_index\":{\"begin\":0,\"end\":2}}]}" >m.jsonl &&
	test_must_fail mkinstr m.jsonl 2>err &&
	test_grep "m.jsonl:1: entity_list\[0\]: text\[0:2\] is \"在伦\", not the entity \"伦敦\"" err &&
	mkinstr --skip-bad m.jsonl >out 2>err &&
	test_line_count = 0 out &&
	test_grep "1 bad" err
'

test_expect_success 'malformed JSON line names the line; --skip-bad counts and goes on' '
	test_must_fail mkinstr broken.jsonl >out 2>err &&
	test_grep "^mkinstr: broken.jsonl:3: malformed JSON" err &&
	mkinstr --skip-bad broken.jsonl >out 2>err &&
	test_line_count = 3 out &&
	test_grep "broken.jsonl:3: malformed JSON.*(skipped)" err &&
	test_grep "4 records in, 3 out (0 to dev); skipped 0 empty, 1 bad, 0 duplicates" err
'

test_expect_success 'alpaca: JSON array with instruct/query/answer naming, input optional' '
	cat >alpaca.json <<-\EOF &&
	[
	  {"instruction": "把句子翻译成英文。", "input": "我喜欢猫。", "output": "I like cats."},
	  {"instruct": "写一首关于春天的短诗。", "answer": "春风吹绿柳，细雨润新苗。"},
	  {"instruction": "计算", "query": "2+3", "answer": "5", "history": []},
	  {"instruction": "  ", "input": "", "output": "空"}
	]
	EOF
	instr "把句子翻译成英文。" "我喜欢猫。" "I like cats." >expect &&
	instr "写一首关于春天的短诗。" "" "春风吹绿柳，细雨润新苗。" >>expect &&
	instr "计算" "2+3" "5" >>expect &&
	mkinstr alpaca.json >out 2>err &&
	test_cmp expect out &&
	test_grep "alpaca.json: reading Alpaca JSON array" err &&
	test_grep "4 records in, 3 out (0 to dev); skipped 1 empty" err
'

test_expect_success 'alpaca JSONL; a record without output is bad' '
	echo "{\"instruction\":\"问候\",\"output\":\"你好\"}" >a.jsonl &&
	echo "{\"instruction\":\"告别\",\"input\":\"朋友\"}" >>a.jsonl &&
	test_must_fail mkinstr <a.jsonl 2>err &&
	test_grep "stdin: reading Alpaca JSONL" err &&
	test_grep "stdin:2: no \"output\" (or \"answer\")" err &&
	mkinstr -q --skip-bad <a.jsonl >out 2>/dev/null &&
	instr "问候" "" "你好" >expect &&
	test_cmp expect out &&
	echo "{\"instruction\":7,\"output\":\"x\"}" >n.jsonl &&
	test_must_fail mkinstr --from alpaca n.jsonl 2>err &&
	test_grep "n.jsonl:1: \"instruction\" is a number, not a string" err
'

test_expect_success 'text: one document per line, blank lines skipped' '
	printf "春眠不觉晓\n\n处处闻啼鸟 \n" >poem.txt &&
	printf "{\"text\":\"春眠不觉晓\"}\n{\"text\":\"处处闻啼鸟 \"}\n" >expect &&
	mkinstr <poem.txt >out 2>err &&
	test_cmp expect out &&
	test_grep "stdin: reading plain text, one document per line" err &&
	test_grep "3 records in, 2 out (0 to dev); skipped 1 empty" err
'

test_expect_success 'text --paragraphs: blank-line separated, lines joined with a newline' '
	printf "\n第一段第一行\n第一段第二行\n\n \n第二段\n" >para.txt &&
	printf "{\"text\":\"第一段第一行\\\\n第一段第二行\"}\n{\"text\":\"第二段\"}\n" >expect &&
	mkinstr --paragraphs <para.txt >out 2>err &&
	test_cmp expect out &&
	test_grep "one document per paragraph" err
'

test_expect_success 'text: {"text"} JSONL passes through; --from text takes lines literally' '
	printf "{\"text\":\"你好\"}\n{\"text\":\"世界\",\"id\":2}\n" >t.jsonl &&
	printf "{\"text\":\"你好\"}\n{\"text\":\"世界\"}\n" >expect &&
	mkinstr <t.jsonl >out 2>err &&
	test_cmp expect out &&
	test_grep "stdin: reading {\"text\"} JSONL" err &&
	mkinstr -q --from text <t.jsonl >out &&
	cat >expect <<-\EOF &&
	{"text":"{\"text\":\"你好\"}"}
	{"text":"{\"text\":\"世界\",\"id\":2}"}
	EOF
	test_cmp expect out
'

test_expect_success 'text: invalid UTF-8 is a bad record naming the line' '
	printf "好\n\377\376\n" >u.txt &&
	test_must_fail mkinstr --from text u.txt 2>err &&
	test_grep "u.txt:2: not valid UTF-8" err
'

test_expect_success 'a JSON object of no known shape: cannot tell, asks for --from' '
	echo "{\"foo\":1}" >foo.jsonl &&
	test_must_fail mkinstr foo.jsonl 2>err &&
	test_grep "foo.jsonl: cannot tell the format.*--from" err
'

test_expect_success 'jq: map any JSON to records; select drops; file program' '
	printf "{\"q\":\"1+1\",\"a\":\"2\"}\n{\"q\":\"2+2\",\"a\":\"4\",\"skip\":true}\n[3]\n" >qa.jsonl &&
	mkinstr -q --skip-bad --jq "select(.skip|not) | {instruction: \"算术\", input: .q, output: .a}" qa.jsonl >out 2>err &&
	instr "算术" "1+1" "2" >expect &&
	test_cmp expect out &&
	test_grep "qa.jsonl:3: jq: error: Cannot index array with .*skip.*(skipped)" err &&
	echo "{text: (.q + \"=\" + .a)}, {instruction: .q, output: .a}" >prog.jq &&
	sed -n 1p qa.jsonl | mkinstr -q --jq-file prog.jq >out &&
	printf "{\"text\":\"1+1=2\"}\n" >expect &&
	instr "1+1" "" "2" >>expect &&
	test_cmp expect out
'

test_expect_success 'jq: an output that is not a record is bad, naming the input line' '
	printf "{\"q\":\"x\"}\n{\"q\":\"y\"}\n" >q.jsonl &&
	test_must_fail mkinstr --jq "if .q == \"y\" then .q else {text: .q} end" q.jsonl 2>err &&
	test_grep "q.jsonl:2: jq output 1: string is not an object with instruction/output or text" err &&
	test_must_fail mkinstr --jq "{instruction: .q}" q.jsonl 2>err &&
	test_grep "q.jsonl:1: jq output 1: \"instruction\" without \"output\"" err
'

test_expect_success 'jq: a bad program is a clear error' '
	test_must_fail mkinstr --jq ".foo | {" </dev/null 2>err &&
	test_grep "^mkinstr: --jq: jq: error: syntax error" err &&
	test_must_fail mkinstr --jq "nosuchfn" </dev/null 2>err &&
	test_grep "nosuchfn/0 is not defined" err &&
	test_must_fail mkinstr --jq-file nosuch.jq </dev/null 2>err &&
	test_grep "nosuch.jq" err &&
	test_must_fail mkinstr --from bio --jq . </dev/null 2>err &&
	test_grep "jq reads JSON" err
'

test_expect_success 'dedup: whitespace-normalized repeats dropped and counted' '
	printf "你好  世界\n 你好 世界 \n你好世界\n你好\t世界\n再见\n" >d.txt &&
	mkinstr --dedup d.txt >out 2>err &&
	printf "{\"text\":\"你好  世界\"}\n{\"text\":\"你好世界\"}\n{\"text\":\"再见\"}\n" >expect &&
	test_cmp expect out &&
	test_grep "5 records in, 3 out (0 to dev); skipped 0 empty, 0 bad, 2 duplicates" err &&
	instr "a b" "" "c" >ab.jsonl &&
	instr "a" "b" "c" >>ab.jsonl &&
	instr "a  b" "" " c" >>ab.jsonl &&
	mkinstr -q --dedup ab.jsonl >out &&
	sed -n 1,2p ab.jsonl >expect &&
	test_cmp expect out
'

seq 1 60 | sed "s/.*/第&行/" >lines.txt

test_expect_success 'shuffle: same seed same order, another seed another order, nothing lost' '
	mkinstr -q --shuffle --seed 1 lines.txt >s1 &&
	mkinstr -q -s --seed 1 lines.txt >s1b &&
	mkinstr -q --shuffle --seed 2 lines.txt >s2 &&
	mkinstr -q lines.txt >plain &&
	test_cmp s1 s1b &&
	! cmp -s s1 s2 &&
	! cmp -s s1 plain &&
	sort s1 >a && sort plain >b && test_cmp a b &&
	sort s2 >a && test_cmp a b
'

test_expect_success 'dev split by ratio: deterministic, disjoint, complete, free of order and seed' '
	mkinstr -q --dev dev1 --dev-ratio 0.3 lines.txt >train1 2>err &&
	mkinstr -q --dev dev2 --dev-ratio 0.3 lines.txt >train2 &&
	test_cmp dev1 dev2 && test_cmp train1 train2 &&
	test -s dev1 && test -s train1 &&
	sort dev1 >d && sort train1 >t && comm -12 d t >both &&
	test_line_count = 0 both &&
	cat dev1 train1 | sort >all && mkinstr -q lines.txt | sort >expect &&
	test_cmp expect all &&
	mkinstr -q --shuffle --seed 9 --dev dev3 --dev-ratio 0.3 lines.txt >train3 &&
	sort dev3 >d3 && test_cmp d d3 &&
	mkinstr --dev dev4 --dev-ratio 0.3 lines.txt >/dev/null 2>err &&
	n=$(wc -l <dev1 | tr -d " ") &&
	test_grep "60 records in, 60 out ($n to dev)" err
'

test_expect_success 'dev split by count: exactly N, the same N with or without --shuffle' '
	mkinstr -q --dev dev --dev-count 7 --seed 3 lines.txt >train &&
	test_line_count = 7 dev && test_line_count = 53 train &&
	mkinstr -q --shuffle --dev sdev --dev-count 7 --seed 3 lines.txt >strain &&
	sort dev >a && sort sdev >b && test_cmp a b &&
	sort train >a && sort strain >b && test_cmp a b &&
	cat dev train | sort >all && mkinstr -q lines.txt | sort >expect && test_cmp expect all &&
	sort dev >d && sort train >t && comm -12 d t >both && test_line_count = 0 both &&
	mkinstr -q --dev dev5 --dev-count 7 --seed 4 lines.txt >/dev/null &&
	! cmp -s dev dev5 &&
	test_must_fail mkinstr -q --dev x --dev-count 61 lines.txt 2>err &&
	test_grep "only 60 records" err &&
	! test -e x
'

test_expect_success '-o writes the file atomically; a failure leaves nothing' '
	mkinstr -q -o out.jsonl msra.jsonl >stdout &&
	test_line_count = 0 stdout &&
	test_line_count = 3 out.jsonl &&
	mkdir outdir &&
	test_must_fail mkinstr -q -o outdir/o.jsonl --dev outdir/dev.jsonl --dev-ratio 0.5 broken.jsonl 2>err &&
	test_grep "broken.jsonl:3: malformed JSON" err &&
	ls -A outdir >left && test_line_count = 0 left
'

test_expect_success 'usage errors and a missing file' '
	test_must_fail mkinstr --from nosuch </dev/null 2>err &&
	test_grep "unknown format" err &&
	test_must_fail mkinstr --dev x </dev/null 2>err &&
	test_grep "dev-ratio" err &&
	test_must_fail mkinstr --label PER </dev/null 2>err &&
	test_grep "TYPE=NAME" err &&
	test_must_fail mkinstr nosuch.txt 2>err &&
	test_grep "^mkinstr: nosuch.txt: No such file" err &&
	mkinstr --help >help && test_grep "usage: mkinstr" help
'

test_expect_success ZSTD '.zst input is read transparently' '
	zstd -q msra.jsonl -o msra.jsonl.zst &&
	mkinstr -q msra.jsonl >expect &&
	mkinstr msra.jsonl.zst >out 2>err &&
	test_cmp expect out &&
	test_grep "msra.jsonl.zst: reading MSRA NER JSONL" err &&
	zstd -q -c bio.txt | mkinstr -q >out &&
	mkinstr -q bio.txt >expect && test_cmp expect out
'

MSRA=$SHARED_DATA/msra/msra_1000.txt
[ -f "$MSRA" ] && test_set_prereq MSRA_SAMPLE

test_expect_success SHARED_DATA,MSRA_SAMPLE 'shared MSRA sample: 1000 records, 656 answer 没有' '
	mkinstr --from msra <"$MSRA" >msra.out 2>err &&
	test_line_count = 1000 msra.out &&
	test_grep "1000 records in, 1000 out (0 to dev); skipped 0 empty, 0 bad, 0 duplicates" err &&
	grep -c "\"output\":\"没有\"}\$" msra.out >n &&
	echo 656 >expect && test_cmp expect n
'

test_expect_success SHARED_DATA,MSRA_SAMPLE,PYTHON 'shared MSRA sample: identical to an independent Python rule' '
	cat >ref.py <<-\EOF &&
	import json, sys
	INS = ("你现在是一个实体识别模型，你需要提取文本里面的人名、地名、机构名，"
	       "如果存在结果，返回\u0027实体_实体类型\u0027，不同实体间用\n分隔。"
	       "如果没有结果，回答\u0027没有\u0027。")
	LABEL = {"PER": "人名", "LOC": "地名", "ORG": "机构名"}
	out = sys.stdout.buffer
	for line in open(sys.argv[1], encoding="utf-8"):
	    if not line.strip():
	        continue
	    rec = json.loads(line)
	    if not rec["text"].strip():
	        continue
	    seen, answer = set(), []
	    for e in rec["entity_list"]:
	        key = (e["entity"], e["entity_type"])
	        b, end = e["entity_index"]["begin"], e["entity_index"]["end"]
	        assert rec["text"][b:end] == e["entity"]
	        if key not in seen:
	            seen.add(key)
	            answer.append(e["entity"] + "_" + LABEL[e["entity_type"]])
	    obj = {"instruction": INS, "input": "文本：" + rec["text"],
	           "output": "\n".join(answer) or "没有"}
	    out.write(json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode() + b"\n")
	EOF
	$PYTHON ref.py "$MSRA" >ref.out &&
	mkinstr -q --from msra <"$MSRA" >msra.out &&
	cmp ref.out msra.out &&
	test_line_count = 1000 ref.out
'

test_done
