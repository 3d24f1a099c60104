#!/bin/sh
# tok: modes, defaults, output forms and bad input, on a small trained model.
# (Token-exact comparisons with the Python library are in t1201.)
. "$(dirname "$0")/test-lib.sh"

test_expect_success SPM_TRAIN 'setup: a small model and records' '
	make_spm_model m bpe 1000 &&
	test -f m.model &&
	cat >sft.jsonl <<-\EOF &&
	{"instruction":"把这句话翻译成英文","input":"你好，世界","output":"hello world"}
	{"instruct":"说一句话","query":"","answer":"的一是在不了有和人"}
	{"instruction":"the of and","output":"to in is"}
	EOF
	cat >pt.jsonl <<-\EOF
	{"text":"the of and a to in is you that it"}
	{"text":"的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面而方后多定行学法所民得经十三之进着等部度家电力里"}
	{"text":""}
	EOF
'
test -f m.model && test_set_prereq MODEL
command -v script >/dev/null 2>&1 && test_set_prereq SCRIPT

test_expect_success MODEL 'sft: instruction records become input_ids + labels frames' '
	tok -m m.model sft.jsonl >out.fr 2>err &&
	test_grep "instruction records: --mode sft" err &&
	test_grep "sft: 3 records -> 3 examples" err &&
	test_grep "characters per token" err &&
	tok --dump out.fr >dump.jsonl &&
	test_line_count = 3 dump.jsonl &&
	head -n 1 dump.jsonl | test_grep "^{\"input_ids\":\[1,.*,2\],\"labels\":\[-100,-100," &&
	! grep -v ",2\],\"labels\"" dump.jsonl
'

test_expect_success MODEL 'sft: the same ids with --mode sft, from stdin and as a JSON array' '
	tok -q -m m.model --mode sft <sft.jsonl | tok --dump >a.jsonl &&
	tok -q -m m.model sft.jsonl | tok --dump >b.jsonl &&
	test_cmp b.jsonl a.jsonl &&
	{ echo "[" && sed "\$!s/\$/,/" sft.jsonl && echo "]"; } >arr.json &&
	tok -q -m m.model arr.json | tok --dump >c.jsonl &&
	test_cmp b.jsonl c.jsonl
'

test_expect_success MODEL 'sft: --max-len cuts and counts truncations' '
	tok -m m.model -l 20 sft.jsonl 2>err | tok --dump >d.jsonl &&
	test_grep "3 truncated to --max-len 20" err &&
	n=$(sed -n "s/.*(\([0-9]*\) with no target token left, which lora-train skips).*/\1/p" err) &&
	test "$n" = "$(grep -c "\"labels\":\[\(-100,\)*-100\]" d.jsonl)" &&
	test "$n" -gt 0 &&
	! grep -v "^{\"input_ids\":\[\([0-9]*,\)\{19\}[0-9]*\]" d.jsonl
'

test_expect_success MODEL 'sft: a missing output is a bad record (file:line); --skip-bad counts it' '
	cp sft.jsonl bad.jsonl &&
	echo "{\"instruction\":\"no answer here\"}" >>bad.jsonl &&
	cat sft.jsonl >>bad.jsonl &&
	test_must_fail tok -m m.model bad.jsonl >/dev/null 2>err &&
	test_grep "tok: bad.jsonl:4: missing .output. (or .answer.)" err &&
	tok -m m.model --skip-bad bad.jsonl 2>err | tok --dump >s.jsonl &&
	test_line_count = 6 s.jsonl &&
	test_grep "skipped 1 bad record" err
'

test_expect_success MODEL 'malformed JSON names file and line' '
	printf "%s\n" "{\"text\":\"a\"}" "{\"text\": oops}" >mal.jsonl &&
	test_must_fail tok -m m.model --mode pt mal.jsonl >/dev/null 2>err &&
	test_grep "tok: mal.jsonl:2: malformed JSON" err
'

test_expect_success MODEL 'wrong field types and non-object records are bad records' '
	echo "{\"instruction\":5,\"output\":\"x\"}" >t1.jsonl &&
	test_must_fail tok -m m.model t1.jsonl >/dev/null 2>err &&
	test_grep "t1.jsonl:1: field .instruction. is not a string" err &&
	echo "{\"instruction\":\"x\",\"input\":[1],\"output\":\"y\"}" >t2.jsonl &&
	test_must_fail tok -m m.model t2.jsonl >/dev/null 2>err &&
	test_grep "t2.jsonl:1: field .input. is not a string" err &&
	echo "{\"text\":{\"a\":1}}" >t3.jsonl &&
	test_must_fail tok -m m.model --mode pt t3.jsonl >/dev/null 2>err &&
	test_grep "t3.jsonl:1: field .text. is not a string" err &&
	printf "%s\n" "{\"text\":\"a\"}" "\"a string\"" >t4.jsonl &&
	test_must_fail tok -m m.model --mode pt t4.jsonl >/dev/null 2>err &&
	test_grep "t4.jsonl:2: record is a JSON string, not an object" err &&
	echo "[{\"text\":\"a\"},7]" >t6.json &&
	test_must_fail tok -m m.model --mode pt t6.json >/dev/null 2>err &&
	test_grep "t6.json: element 2: record is a JSON number, not an object" err &&
	echo "{\"foo\":1}" >t5.jsonl &&
	test_must_fail tok -m m.model t5.jsonl >/dev/null 2>err &&
	test_grep "cannot tell the mode" err
'

test_expect_success MODEL 'pt: text records become blocks; the tail is dropped unless --keep-tail' '
	tok -m m.model --block-size 16 pt.jsonl 2>err | tok --dump >p.jsonl &&
	test_grep "text records: --mode pt" err &&
	test_grep "blocks of 16" err &&
	test_grep "dropped" err &&
	! grep -v "^{\"input_ids\":\(\[\([0-9]*,\)\{15\}[0-9]*\]\),\"labels\":\1}\$" p.jsonl &&
	head -n 1 p.jsonl | test_grep "^{\"input_ids\":\[1," &&
	tok -q -m m.model --mode pt --block-size 16 --keep-tail pt.jsonl | tok --dump >k.jsonl &&
	blocks=$(wc -l <p.jsonl) &&
	test_line_count = $((blocks + 1)) k.jsonl &&
	head -n $blocks k.jsonl >k1.jsonl &&
	test_cmp p.jsonl k1.jsonl
'

test_expect_success MODEL 'ids: --mode ids prints JSON lines; --bos/--eos add them' '
	tok -q -m m.model --mode ids pt.jsonl >i.jsonl &&
	test_line_count = 3 i.jsonl &&
	tail -n 1 i.jsonl >last &&
	echo "{\"input_ids\":[]}" >expect &&
	test_cmp expect last &&
	tok -q -m m.model --mode ids --bos --eos pt.jsonl >be.jsonl &&
	tail -n 1 be.jsonl >last &&
	echo "{\"input_ids\":[1,2]}" >expect &&
	test_cmp expect last &&
	test_must_fail tok -m m.model --mode pt --bos pt.jsonl >/dev/null 2>err &&
	test_grep "go with --mode ids only" err
'

test_expect_success MODEL,SCRIPT 'at a terminal: text records give ids, frames are refused' '
	script -qc "tok -q -m m.model pt.jsonl" /dev/null >tty.out </dev/null &&
	test_grep "^{\"input_ids\":\[" tty.out &&
	script -qec "tok -m m.model --mode sft sft.jsonl" /dev/null >tty.out </dev/null;
	test $? -ne 0 &&
	test_grep "refusing to write binary frames to a terminal" tty.out
'

test_expect_success MODEL 'decode: ids back to text, from JSONL and from frames' '
	printf "%s\n" "{\"text\":\"the of and a\"}" "{\"text\":\"的一是在不了有和人\"}" >rt.jsonl &&
	tok -q -m m.model --mode ids --bos --eos rt.jsonl | tok -q --decode -m m.model >dec.jsonl &&
	test_cmp rt.jsonl dec.jsonl &&
	tok -q -m m.model --mode pt --block-size 1000 --keep-tail rt.jsonl | tok -q --decode -m m.model >dec2.jsonl &&
	# each text was encoded with its leading "▁", so a space joins them
	echo "{\"text\":\"the of and a 的一是在不了有和人\"}" >expect &&
	test_cmp expect dec2.jsonl
'

test_expect_success MODEL 'decode: an id outside the vocabulary is an error' '
	echo "{\"input_ids\":[1,5,1000]}" >big.jsonl &&
	test_must_fail tok --decode -m m.model big.jsonl >/dev/null 2>err &&
	test_grep "big.jsonl:1: token id 1000 out of range (vocabulary 1000)" err &&
	echo "{\"input_ids\":[1,\"x\"]}" >nan.jsonl &&
	test_must_fail tok --decode -m m.model nan.jsonl >/dev/null 2>err &&
	test_grep "nan.jsonl:1: .input_ids. holds a non-integer" err &&
	echo "{\"text\":\"the of\"}" >one.jsonl &&
	cat big.jsonl one.jsonl >mixed.jsonl &&
	tok -q -m m.model --mode ids one.jsonl >>mixed.jsonl &&
	tok --decode -m m.model --skip-bad mixed.jsonl >dec.jsonl 2>err &&
	test_grep "mixed.jsonl:1: token id 1000 out of range" err &&
	test_grep "mixed.jsonl:2: no .input_ids. array" err &&
	test_cmp one.jsonl dec.jsonl
'

test_expect_success MODEL 'empty input is 0 records and success: a trailer alone' '
	tok -m m.model </dev/null >out 2>err &&
	test_grep "no records (empty input)" err &&
	test $(wc -c <out) = 40 &&
	tok -m m.model --mode sft </dev/null >out 2>err &&
	test $(wc -c <out) = 40 &&
	tok --dump <out >dump 2>err &&
	test ! -s dump &&
	test_must_fail tok --dump </dev/null >dump 2>err &&
	test_grep "stdin: stream at byte 0: ended without its trailer: did the writer fail?" err
'

test_expect_success MODEL 'templates: raw, llama2-chat and a file give other prompts' '
	tok -q -m m.model -t raw sft.jsonl | tok --dump >raw.jsonl &&
	tok -q -m m.model -t llama2-chat sft.jsonl | tok --dump >l2.jsonl &&
	tok -q -m m.model sft.jsonl | tok --dump >al.jsonl &&
	! cmp -s raw.jsonl al.jsonl && ! cmp -s l2.jsonl al.jsonl &&
	printf "{instruction}\n" >t.txt &&
	tok -q -m m.model -t t.txt sft.jsonl | tok --dump >file.jsonl &&
	test_cmp raw.jsonl file.jsonl &&
	tok -q -m m.model -t llama2-chat --system "the of" sft.jsonl | tok --dump >l2s.jsonl &&
	! cmp -s l2.jsonl l2s.jsonl
'

test_expect_success MODEL 'unknown template; a template file without {instruction}' '
	test_must_fail tok -m m.model -t nope sft.jsonl >/dev/null 2>err &&
	test_grep "unknown template .nope." err &&
	echo "no placeholder" >bad.tpl &&
	test_must_fail tok -m m.model -t bad.tpl sft.jsonl >/dev/null 2>err &&
	test_grep "bad.tpl: template file has no {instruction} placeholder" err
'

test_expect_success MODEL 'model: -M DIR and $LLAMAPIPE_MODEL; a missing default names both' '
	mkdir -p dir && cp m.model dir/tokenizer.model &&
	tok -q -m m.model sft.jsonl >a.fr &&
	tok -q -M dir sft.jsonl >b.fr &&
	cmp a.fr b.fr &&
	LLAMAPIPE_MODEL=$PWD/dir tok -q sft.jsonl >c.fr &&
	cmp a.fr c.fr &&
	test_must_fail tok sft.jsonl >/dev/null 2>err &&
	test_grep -- "-M DIR or \$LLAMAPIPE_MODEL" err &&
	test_grep -- "-m MODEL" err
'

test_expect_success MODEL 'model: a missing file, and a file that is not a model' '
	test_must_fail tok -m nosuch.model sft.jsonl >/dev/null 2>err &&
	test_grep "tok: nosuch.model: No such file or directory" err &&
	test_must_fail tok -m sft.jsonl sft.jsonl >/dev/null 2>err &&
	test_grep "tok: sft.jsonl: not a sentencepiece model" err &&
	test_must_fail tok -M sft.jsonl sft.jsonl >/dev/null 2>err &&
	test_grep "sft.jsonl/tokenizer.model: Not a directory" err
'

test_expect_success MODEL 'a missing input file fails before any output' '
	test_must_fail tok -m m.model sft.jsonl nosuch.jsonl >out 2>err &&
	test_grep "tok: nosuch.jsonl: No such file or directory" err &&
	test ! -s out
'

test_expect_success MODEL 'bad option values' '
	for v in abc 0 -3 12x; do
		test_must_fail tok -m m.model --max-len $v sft.jsonl >/dev/null 2>err &&
		test_grep -- "--max-len" err || return 1
	done &&
	test_must_fail tok -m m.model --block-size 0 pt.jsonl >/dev/null 2>err &&
	test_grep -- "--block-size: 0 is out of range" err &&
	test_must_fail tok -m m.model --mode xx sft.jsonl >/dev/null 2>err &&
	test_grep -- "--mode: .xx. is not sft, pt or ids" err &&
	test_must_fail tok -m m.model --zstd=99 sft.jsonl >/dev/null 2>err &&
	test_grep -- "--zstd" err &&
	test_must_fail tok --dump --decode </dev/null 2>err &&
	test_grep "exclude each other" err
'

test_expect_success MODEL 'dump: corrupt and truncated frames name the byte offset' '
	tok -q -m m.model sft.jsonl >good.fr &&
	size=$(wc -c <good.fr) &&
	head -c $((size - 45)) good.fr >trunc.fr &&
	test_must_fail tok --dump trunc.fr >/dev/null 2>err &&
	test_grep "trunc.fr: frame at byte [0-9]*: .* truncated payload" err &&
	head -c $((size - 5)) good.fr >trunc.fr &&
	test_must_fail tok --dump trunc.fr >/dev/null 2>err &&
	test_grep "trunc.fr: trailer at byte $((size - 40)): truncated" err &&
	head -c $((size - 40)) good.fr >trunc.fr &&
	test_must_fail tok --dump trunc.fr >/dev/null 2>err &&
	test_grep "trunc.fr: stream at byte $((size - 40)): ended without its trailer" err &&
	test_must_fail tok --decode -m m.model trunc.fr >/dev/null 2>err &&
	test_grep "trunc.fr: stream at byte $((size - 40)): ended without its trailer" err &&
	cat good.fr good.fr | tok --dump >two &&
	tok --dump good.fr >one &&
	test $(wc -l <two) = $((2 * $(wc -l <one))) &&
	cp good.fr flip.fr &&
	printf "\377" | dd of=flip.fr bs=1 seek=200 conv=notrunc 2>/dev/null &&
	test_must_fail tok --dump flip.fr >/dev/null 2>err &&
	test_grep "flip.fr: frame at byte 0: .*checksum mismatch" err &&
	test_must_fail tok --dump sft.jsonl >/dev/null 2>err &&
	test_grep "sft.jsonl: not a frame stream" err
'

test_expect_success MODEL '--zstd compresses payloads; --dump reads them back' '
	tok -q -m m.model --zstd sft.jsonl >z.fr &&
	tok -q -m m.model sft.jsonl >p.fr &&
	! cmp -s z.fr p.fr &&
	tok --dump z.fr >z.jsonl && tok --dump p.fr >p.jsonl &&
	test_cmp p.jsonl z.jsonl
'

test_expect_success MODEL,ZSTD 'zstd: .zst input and frame files made by zstd(1)' '
	zstd -q sft.jsonl -o sft.jsonl.zst &&
	tok -q -m m.model sft.jsonl.zst >a.fr &&
	tok -q -m m.model sft.jsonl >b.fr &&
	cmp a.fr b.fr &&
	zstd -q b.fr -o b.fr.zst &&
	tok --dump b.fr.zst >a.jsonl &&
	tok --dump b.fr >b.jsonl &&
	test_cmp b.jsonl a.jsonl
'

test_expect_success MODEL 'deterministic: 1 and 2 threads write the same bytes' '
	awk "BEGIN { for (i = 0; i < 5000; i++) printf \"{\\\"instruction\\\":\\\"the of %d\\\",\\\"output\\\":\\\"的一是%d\\\"}\\n\", i, i * 7 }" >many.jsonl &&
	test_line_count = 5000 many.jsonl &&
	OMP_NUM_THREADS=1 tok -q -m m.model many.jsonl >one.fr &&
	OMP_NUM_THREADS=2 tok -q -m m.model many.jsonl >two.fr &&
	tok -q -m m.model -j 2 many.jsonl >j2.fr &&
	cmp one.fr two.fr && cmp one.fr j2.fr &&
	sed "s/\"instruction\"/\"text\"/" many.jsonl >manyt.jsonl &&
	OMP_NUM_THREADS=1 tok -q -m m.model --block-size 64 manyt.jsonl >pt1.fr &&
	OMP_NUM_THREADS=2 tok -q -m m.model --block-size 64 manyt.jsonl >pt2.fr &&
	cmp pt1.fr pt2.fr
'

test_expect_success 'frame JSON and template unit tests pass' '
	"$LP_BUILD/t/framejson" >out &&
	! grep "^not ok" out &&
	grep -q "^1\.\." out
'

test_expect_success 'help, and a usage error for an unknown option' '
	tok --help >out &&
	test_grep "usage: tok" out &&
	test_must_fail tok --frobnicate 2>err &&
	test_grep "(see .tok --help.)" err
'

test_done
