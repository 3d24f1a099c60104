#!/bin/sh
# Every man page's EXAMPLES section runs: the commands of man/man1/*.1 and
# man/man5/*.5 are taken from their pages and run against small fixtures
# built here (a tiny random model from t/ref/tiny_model.py, a tokenizer
# trained with spm_train, short JSONL, MSRA, Alpaca and text inputs).
#
# How an example is read from a page (mdoc source, EXAMPLES section only):
#   - each `.Bd -literal ... .Ed` block is one example, and so is each
#     `.Dl` line; one test per example, in page order;
#   - mdoc escapes are undone (\e -> \, \(aq -> ', \- -> -, \& -> nothing),
#     so a line ending in `\e` continues on the next, as in the shell;
#   - when some line of a block starts with `$ `, only those lines (less
#     the `$ `) and the lines that continue them (after a trailing `\` or
#     `|`) are commands; the other lines are shown output and are not run.
#     A block without `$ ` lines is commands throughout;
#   - a block runs with bash, `set -e -o pipefail` (every command of a
#     pipeline must succeed), standard input /dev/null, in the page's own
#     directory,
#     $TRASH/PAGE, which the setup fills with the files the page names;
#     the blocks of a page share it, in order, so a later example may use
#     what an earlier one wrote. Variable assignments and exports of
#     earlier blocks of the page (commands that are just `NAME=VALUE` or
#     `export NAME=VALUE`, VALUE without blanks)
#     are repeated before a block, as in one terminal session. ../shared/data
#     is $SHARED_DATA (the SHARED_DATA prerequisite guards blocks that name
#     it), pipelines/ is the checkout's. head(1) there reads its input to
#     the end after printing, so that `tok --dump | head -n 1` is not a
#     failure of tok by SIGPIPE;
#   - an example must exit 0, unless an mdoc comment line
#     `.\" exit: N` just before it says it fails on purpose with status N;
#   - an mdoc comment line `.\" not run: REASON` just before a block marks
#     it as not runnable here: it shows as "# SKIP REASON". Only examples
#     that cannot run in a test use it: gen -i (interactive, needs a
#     terminal and a person) and --device cuda (needs a GPU).
#
# Prerequisites of a block, found from its text: SHARED_DATA (shared/data),
# JQ (jq), ZSTD (zst). The test also checks that the pages hold examples at
# all, and that each page's run count is what it was when this was written,
# so that an example lost to a markup slip does not go unnoticed.
. "$(dirname "$0")/test-lib.sh"

TINY="$PYTHON $TEST_DIR/ref/tiny_model.py"
OMP_NUM_THREADS=1
export OMP_NUM_THREADS
command -v bash >/dev/null 2>&1 && test_set_prereq BASH
test_require SPM_TRAIN BASH

PAGES="man1/gen.1 man1/lora-merge.1 man1/lora-train.1 man1/mkinstr.1
	man1/spm-merge.1 man1/tok.1 man5/frames.5"

# extract PAGE OUTDIR: OUTDIR/NN.sh (the script), NN.title, and NN.skip
# (reason) or NN.exit (expected status) where the page says so.
extract() {
	$PYTHON - "$1" "$2" <<-\EOF
	import os, re, sys
	page, out = sys.argv[1], sys.argv[2]
	os.makedirs(out, exist_ok=True)
	def unescape(s):
	    return (s.replace("\\(aq", "'").replace("\\-", "-")
	             .replace("\\&", "").replace("\\e", "\\"))
	blocks, cur, note, inex = [], None, {}, False
	for line in open(page, encoding="utf-8").read().split("\n"):
	    if line.startswith(".Sh "):
	        inex = line.strip() == ".Sh EXAMPLES"
	        continue
	    if not inex:
	        continue
	    if cur is not None:
	        if line.startswith(".Ed"):
	            blocks.append((cur, note)); cur, note = None, {}
	        else:
	            cur.append(unescape(line))
	        continue
	    m = re.match(r'\.\\" (not run|exit): *(.*)', line)
	    if m:
	        note[m.group(1)] = m.group(2).strip()
	    elif line.startswith(".Bd -literal"):
	        cur = []
	    elif line.startswith(".Dl "):
	        blocks.append(([unescape(line[4:])], note)); note = {}
	    elif not line.startswith('.\\"'):
	        note = {}
	carried = []
	for i, (lines, note) in enumerate(blocks, 1):
	    if any(l.startswith("$ ") for l in lines):
	        cmds, cont = [], False
	        for l in lines:
	            if l.startswith("$ "):
	                cmds.append(l[2:]); cont = l.rstrip().endswith(("\\", "|"))
	            elif cont:
	                cmds.append(l); cont = l.rstrip().endswith(("\\", "|"))
	        lines = cmds
	    base = os.path.join(out, "%02d" % i)
	    with open(base + ".title", "w") as f:
	        f.write(re.sub(r"\s+", " ", " ".join(lines).replace("\\", "")).strip()[:70] + "\n")
	    if "not run" in note:
	        open(base + ".skip", "w").write(note["not run"] + "\n")
	        continue
	    if "exit" in note:
	        open(base + ".exit", "w").write(note["exit"] + "\n")
	    with open(base + ".sh", "w") as f:
	        f.write("".join(l + "\n" for l in carried + lines))
	    joined = "\n".join(lines).replace("\\\n", " ").split("\n")
	    carried += [l for l in joined if re.fullmatch(r"(export )?[A-Za-z_]\w*=\S*", l)]
	EOF
}

for p in $PAGES; do
	extract "$SRC_DIR/man/$p" "$TRASH/examples/$(basename "$p")" ||
		test_skip_all "cannot read the examples of $p"
done

test_expect_success 'the pages hold the examples this test expects' '
	for p in $PAGES; do
		n=$(ls examples/$(basename $p) | grep -c "\.title$") &&
		test "$n" -gt 0 || { echo "$p: no examples" >&2; return 1; }
	done &&
	(cd examples && for d in *; do
		echo "$d $(ls $d | grep -c "\.sh$") $(ls $d | grep -c "\.skip$")"
	done) >counts &&
	cat >expect <<-\EOF &&
	frames.5 1 0
	gen.1 6 2
	lora-merge.1 4 0
	lora-train.1 4 0
	mkinstr.1 4 0
	spm-merge.1 3 0
	tok.1 5 0
	EOF
	test_cmp expect counts
'

# run_example DIR NN: run one extracted block in its page directory.
run_example() {
	want=0
	test -f "examples/$1/$2.exit" && want=$(cat "examples/$1/$2.exit")
	(cd "${1%.*}" && exec bash -c '
		head() { command head "$@" && cat >/dev/null; }
		set -e -o pipefail
		. "$0"' "../examples/$1/$2.sh") \
		</dev/null >"examples/$1/$2.out" 2>"examples/$1/$2.err"
	rc=$?
	if [ "$rc" != "$want" ]; then
		echo "exit $rc, want $want; script:" >&2
		cat "examples/$1/$2.sh" >&2
		echo "stderr:" >&2
		tail -n 20 "examples/$1/$2.err" >&2
		return 1
	fi
}

# The reading rules themselves, on a page made up here: `$ ` lines and
# their continuations run, output lines do not, .Dl lines are examples,
# assignments carry over, "not run" skips, "exit: N" expects status N and
# fails when the example does anything else.
test_expect_success 'the reading rules, on a made-up page' '
	cat >self.7 <<-\EOF &&
	.Sh DESCRIPTION
	.Dl echo not an example
	.Sh EXAMPLES
	.Bd -literal -offset indent
	$ x=5
	$ echo \e
	    "$x" | tr 5 6
	6
	$ echo \(aqa\-b\(aq
	a-b
	.Ed
	.Dl echo "$x" >x.txt
	.\" not run: needs a person
	.Bd -literal
	read answer
	.Ed
	.\" exit: 3
	.Bd -literal
	sh -c "exit 3"
	.Ed
	.Sh SEE ALSO
	EOF
	extract self.7 examples/self.7 &&
	(cd examples/self.7 && ls) >files &&
	printf "%s\n" 01.sh 01.title 02.sh 02.title 03.skip 03.title \
		04.exit 04.sh 04.title >expect &&
	test_cmp expect files &&
	printf "%s\n" "x=5" "echo \\" "    \"\$x\" | tr 5 6" "echo '"'"'a-b'"'"'" >expect &&
	test_cmp expect examples/self.7/01.sh &&
	printf "%s\n" "x=5" "echo \"\$x\" >x.txt" >expect &&
	test_cmp expect examples/self.7/02.sh &&
	mkdir self &&
	run_example self.7 01 && printf "6\na-b\n" >expect &&
	test_cmp expect examples/self.7/01.out &&
	run_example self.7 02 && echo 5 >expect && test_cmp expect self/x.txt &&
	run_example self.7 04 &&
	echo 0 >examples/self.7/04.exit &&
	test_must_fail run_example self.7 04 2>err &&
	test_grep "exit 3, want 0" err
'

# ---- fixtures ----

# Small inputs, written once into fix/ and copied where a page names them.
write_inputs() {
	cat >fix/alpaca.jsonl <<-\EOF &&
	{"instruction":"用一句话介绍北京。","input":"","output":"北京是中国的首都。"}
	{"instruction":"Translate to English.","input":"你好","output":"hello"}
	{"instruction":"Name a color.","input":"","output":"red"}
	{"instruction":"把下面的句子改写得更简洁。","input":"我们今天在这里开一个会议。","output":"我们今天开会。"}
	EOF
	$PYTHON - <<-\EOF &&
	import json, random
	r = random.Random(5)
	recs = [json.loads(l) for l in open("fix/alpaca.jsonl", encoding="utf-8")]
	many = [dict(recs[i % len(recs)], output=recs[i % len(recs)]["output"] * r.randint(1, 3))
	        for i in range(40)]
	json.dump(many, open("fix/alpaca.json", "w", encoding="utf-8"), ensure_ascii=False, indent=1)
	qs = ["用一句话介绍北京。", "What is the capital of France?", "写一首关于春天的诗。"]
	with open("fix/questions.jsonl", "w", encoding="utf-8") as f:
	    for q in qs:
	        f.write(json.dumps({"instruction": q}, ensure_ascii=False) + "\n")
	with open("fix/prompts.jsonl", "w", encoding="utf-8") as f:
	    for q in qs:
	        f.write(json.dumps({"prompt": q}, ensure_ascii=False) + "\n")
	with open("fix/qa.jsonl", "w", encoding="utf-8") as f:
	    f.write('{"question":"1+1?","answer":"2"}\n{"question":"天空是什么颜色？","answer":"蓝色"}\n')
	msra = [("张三在北京工作。", [("张三", "PER", 0), ("北京", "LOC", 3)]),
	        ("新华社报道了这个消息。", [("新华社", "ORG", 0)]),
	        ("今天天气很好。", []),
	        ("李四去了上海和南京。", [("李四", "PER", 0), ("上海", "LOC", 4), ("南京", "LOC", 7)]),
	        ("北京大学在海淀区。", [("北京大学", "ORG", 0), ("海淀区", "LOC", 5)])]
	with open("fix/msra.txt", "w", encoding="utf-8") as f:
	    for i in range(4):
	        for text, ents in msra:
	            el = [{"entity": e, "entity_type": t,
	                   "entity_index": {"begin": b, "end": b + len(e)}} for e, t, b in ents]
	            f.write(json.dumps({"text": text, "entity_list": el}, ensure_ascii=False) + "\n")
	with open("fix/msra_bio.txt", "w", encoding="utf-8") as f:
	    for text, ents in msra:
	        tags = ["O"] * len(text)
	        for e, t, b in ents:
	            nt = {"PER": "NR", "LOC": "NS", "ORG": "NT"}[t]
	            tags[b] = "B-" + nt
	            for k in range(b + 1, b + len(e)):
	                tags[k] = "I-" + nt
	        f.write("".join("%s\t%s\n" % (c, g) for c, g in zip(text, tags)) + "\n")
	with open("fix/texts.jsonl", "w", encoding="utf-8") as f:
	    for line in open("corpus.txt", encoding="utf-8").read().split("\n")[:400]:
	        f.write(json.dumps({"text": line}, ensure_ascii=False) + "\n")
	EOF
	head -n 5 fix/msra.txt >fix/msra-test.jsonl &&
	cp fix/alpaca.jsonl fix/dev.jsonl &&
	head -n 200 corpus.txt | sed "10~10s/.*//" >fix/corpus.txt
}

test_expect_success 'setup: tokenizers, tiny models, adapters, inputs' '
	make_spm_model tok bpe 800 &&
	make_spm_model tok820 bpe 820 &&
	mkdir fix &&
	$TINY model fix/model vocab=800 &&
	cp tok.model fix/model/tokenizer.model &&
	$TINY adapter fix/lora fix/model &&
	$TINY adapter fix/lora2 fix/model seed=3 &&
	write_inputs &&
	mkdir shared && ln -s "$SHARED_DATA" shared/data &&
	test -s fix/model/model.safetensors && test -s fix/lora/adapter_model.safetensors &&
	test -s fix/msra.txt && test -s fix/alpaca.json
'
test -s "$TRASH/fix/lora2/adapter_model.safetensors" || test_skip_all "setup failed"

# page DIR: make the page's directory and enter it (inside a test script).
page() { mkdir "$1" && cd "$1"; }
model() { cp -R ../fix/model "$1"; }
adapter() { cp -R "../fix/${2:-lora}" "$1"; }
inputs() { for f in "$@"; do cp "../fix/$f" .; done; }

test_expect_success 'setup: gen.1 names' '
	page gen &&
	model chinese-alpaca-7b && model llama-7b-hf && model chinese-llama-7b &&
	adapter chinese-llama-lora && adapter chinese-alpaca-lora lora2 &&
	adapter ner-lora && adapter sft-lora lora2 &&
	inputs prompts.jsonl questions.jsonl msra-test.jsonl dev.jsonl &&
	ln -s "$SRC_DIR/pipelines" pipelines
'
test_expect_success 'setup: lora-merge.1 names' '
	page lora-merge &&
	mkdir LLaMA && lora-merge -q -M ../fix/model -o LLaMA/7B --to pth &&
	adapter chinese-llama-lora-7b && adapter chinese-alpaca-lora-7b lora2 &&
	adapter my-lora &&
	mkdir merged && cp ../tok.model merged/tokenizer.model
'
test_expect_success 'setup: lora-train.1 names' '
	page lora-train &&
	model llama && inputs alpaca.json &&
	mkdir merged && cp ../tok820.model merged/tokenizer.model &&
	tok -q -m merged/tokenizer.model --mode pt --block-size 64 --zstd ../fix/texts.jsonl \
		>blocks.frames.zst
'
test_expect_success ZSTD 'setup: mkinstr.1 names' '
	page mkinstr &&
	inputs msra.txt qa.jsonl corpus.txt &&
	zstd -q ../fix/msra_bio.txt -o msra_bio.txt.zst
'
test_expect_success 'setup: spm-merge.1 names' '
	page spm-merge
'
test_expect_success ZSTD 'setup: tok.1 names' '
	page tok &&
	cp ../tok.model tokenizer.model && inputs alpaca.jsonl msra.txt &&
	zstd -q ../fix/texts.jsonl -o texts.jsonl.zst &&
	mkdir models && cp -R ../fix/model models/chinese-llama-7b
'
test_expect_success 'setup: frames.5 names' '
	page frames &&
	cp ../tok.model tokenizer.model && cp ../fix/alpaca.json data.json
'

# ---- the examples ----

for p in $PAGES; do
	d=$(basename "$p")
	for t in "$TRASH/examples/$d"/*.title; do
		n=$(basename "$t" .title)
		title="$d example $n: $(cat "$t")"
		if [ -f "$TRASH/examples/$d/$n.skip" ]; then
			test_skip "$title" "$(cat "$TRASH/examples/$d/$n.skip")"
			continue
		fi
		s="$TRASH/examples/$d/$n.sh"
		prereq=
		grep -q "shared/data" "$s" && prereq="$prereq,SHARED_DATA"
		grep -q "\bjq\b" "$s" && prereq="$prereq,JQ"
		grep -q "zst" "$s" && prereq="$prereq,ZSTD"
		prereq=${prereq#,}
		if [ -n "$prereq" ]; then
			test_expect_success "$prereq" "$title" "run_example $d $n"
		else
			test_expect_success "$title" "run_example $d $n"
		fi
	done
done

test_done
