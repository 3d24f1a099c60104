#!/bin/sh
# tok against the rule written in Python with the sentencepiece library:
# sft (Chinese-LLaMA-Alpaca: [BOS] prompt + output [EOS], labels -100 over
# the prompt, concatenate then cut), pt (BOS per text, concatenate, blocks),
# ids, and decode, on generated records and on MSRA with LLaMA's tokenizer.
. "$(dirname "$0")/test-lib.sh"

test_require PY_SPM

# ref.py MODEL sft|pt|ids [--max-len N] [--block-size N] [--keep-tail]
#        [--template T] [--system S] [--bos] [--eos] < records > JSON lines
cat >ref.py <<'PYEOF'
import argparse, json, re, sys
import sentencepiece as spm

ALPACA = ("Below is an instruction that describes a task. Write a response that "
          "appropriately completes the request.\n\n### Instruction:\n{instruction}"
          "\n\n### Response: ")
LLAMA2 = "[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{instruction} [/INST]"
SYSTEM = "You are a helpful assistant. 你是一个乐于助人的助手。"

p = argparse.ArgumentParser()
p.add_argument("model")
p.add_argument("mode")
p.add_argument("--max-len", type=int, default=512)
p.add_argument("--block-size", type=int, default=512)
p.add_argument("--keep-tail", action="store_true")
p.add_argument("--template", default="alpaca")
p.add_argument("--system", default=SYSTEM)
p.add_argument("--bos", action="store_true")
p.add_argument("--eos", action="store_true")
a = p.parse_args()
sp = spm.SentencePieceProcessor(model_file=a.model)
data = sys.stdin.read()
recs = json.loads(data) if data.lstrip().startswith("[") else \
    [json.loads(l) for l in data.splitlines() if l.strip()]

tpl = {"alpaca": ALPACA, "llama2-chat": LLAMA2, "raw": "{instruction}"}.get(a.template)
if tpl is None:
    tpl = open(a.template, encoding="utf-8", newline="").read()
    if tpl.endswith("\n"):
        tpl = tpl[:-1]
    if tpl.endswith("\r"):
        tpl = tpl[:-1]

def render(instr):
    return re.sub(r"\{(instruction|system)\}",
                  lambda m: instr if m.group(1) == "instruction" else a.system, tpl)

def get(r, key, alias):
    v = r.get(key)
    return v if v is not None else r.get(alias)

def out(**kw):
    print(json.dumps(kw, separators=(",", ":")))

if a.mode == "sft":
    for r in recs:
        instr = get(r, "instruction", "instruct")
        inp = get(r, "input", "query") or ""
        if inp:
            instr = instr + "\n" + inp
        s = [sp.bos_id()] + sp.encode(render(instr))
        t = sp.encode(get(r, "output", "answer")) + [sp.eos_id()]
        out(input_ids=(s + t)[:a.max_len], labels=([-100] * len(s) + t)[:a.max_len])
elif a.mode == "pt":
    ids = []
    for r in recs:
        ids += [sp.bos_id()] + sp.encode(r["text"])
    bs = a.block_size
    end = len(ids) // bs * bs
    for i in range(0, end, bs):
        out(input_ids=ids[i:i + bs], labels=ids[i:i + bs])
    if a.keep_tail and end < len(ids):
        out(input_ids=ids[end:], labels=ids[end:])
elif a.mode == "ids":
    for r in recs:
        ids = ([sp.bos_id()] if a.bos else []) + sp.encode(r["text"]) + \
            ([sp.eos_id()] if a.eos else [])
        out(input_ids=ids)
PYEOF

# gen.py SEED N sft|text: records with Chinese, English, odd characters,
# empty/missing/null inputs, both field namings, some long outputs.
cat >gen.py <<'PYEOF'
import json, random, sys
seed, n, kind = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
r = random.Random(seed)
han = "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制机当使点从业本去把性好应开它合还因由其些然前外天政四日那社义事平形相全表间样与关各重新线内数正心反你明看原又么利比或但质气第向道命此变条只没结解问意建月公无系军很情者最立代想已通并提直题党程展五果料象员革位入常文总次品式活设及管特件长求老头基资边流路级少图山统接知较将组见计别她手角期根论运农指几九区强放决西被干做必战先回则任取据处队南给色光门即保治北造百规热领七海口东导器压志世金增争济阶油思术极交受联什认六共权收证改清己美再采转更单风切打白教速花带安场身车例真务具万每目至达走积示议声报斗完类八离华名确才科张信马节话米整空元况今集温传土许步群广石记需段研界拉林律叫且究观越织装影算低持音众书布复容儿须际商非验连断深难近矿千周委素技备半办青省列习响约支般史感劳便团往酸历市克何除消构府称太准精值号率族维划选标写存候毛亲快效斯院查江型眼王按格养易置派层片始却专状育厂京识适属圆包火住调满县局照参红细引听该铁价严龘𠀋"
words = "the of and a to in is you that it he was for on are as with his they at be this from Hello World".split()
odd = ["，", "。", "！", "（", "）", "：", "\n", "\t", "  ", "\"", "\\", "{instruction}", "😀", "é", "ﬁ", "١٢", "\u3000", "/"]

def text(lo, hi):
    parts = []
    for _ in range(r.randint(lo, hi)):
        c = r.random()
        if c < 0.5:
            parts.append("".join(r.choice(han) for _ in range(r.randint(1, 8))))
        elif c < 0.85:
            parts.append(" " + r.choice(words))
        else:
            parts.append(r.choice(odd))
    return "".join(parts)

for i in range(n):
    if kind == "text":
        rec = {"text": text(0, 40) if i % 10 else text(100, 300)}
    else:
        instr, out = text(1, 12), text(0, 30) if i % 7 else text(150, 400)
        inp = [text(1, 10), "", None, "missing"][i % 4]
        if i % 3 == 0:
            rec = {"instruct": instr, "query": inp, "answer": out}
        else:
            rec = {"instruction": instr, "input": inp, "output": out}
        if inp == "missing":
            rec.pop("input", None)
            rec.pop("query", None)
    print(json.dumps(rec, ensure_ascii=i % 2 == 0))
PYEOF

# msra.py: MSRA NER JSONL to instruction records (the DESIGN.md task).
cat >msra.py <<'PYEOF'
import json, sys
NAMES = {"PER": "人名", "LOC": "地名", "ORG": "机构名"}
INSTR = ("你现在是一个实体识别模型，你需要提取文本里面的人名、地名、机构名，"
         "如果存在结果，返回'实体_实体类型'，不同实体间用\n分隔。如果没有结果，回答'没有'。")
for line in sys.stdin:
    r = json.loads(line)
    ents = ["%s_%s" % (e["entity"], NAMES.get(e["entity_type"], e["entity_type"]))
            for e in r["entity_list"]]
    print(json.dumps({"instruction": INSTR, "input": "文本：" + r["text"],
                      "output": "\n".join(ents) or "没有"}, ensure_ascii=False))
PYEOF

# decode-check.py MODEL RECORDS DECODED: DECODED holds decode(encode(text))
cat >decode-check.py <<'PYEOF'
import json, sys
import sentencepiece as spm
sp = spm.SentencePieceProcessor(model_file=sys.argv[1])
want = [sp.decode(sp.encode(json.loads(l)["text"])) for l in open(sys.argv[2], encoding="utf-8")]
got = [json.loads(l)["text"] for l in open(sys.argv[3], encoding="utf-8")]
bad = [i for i in range(max(len(want), len(got)))
       if i >= len(want) or i >= len(got) or want[i] != got[i]]
for i in bad[:5]:
    print("record %d: want %r got %r" % (i + 1, want[i:i + 1], got[i:i + 1]))
sys.exit(1 if bad or not want else 0)
PYEOF

test_expect_success SPM_TRAIN 'setup: small bpe and unigram models, generated records' '
	make_spm_model bpe bpe 1000 &&
	make_spm_model uni unigram 1000 &&
	test -f bpe.model && test -f uni.model &&
	$PYTHON gen.py 1 600 sft >sft.jsonl &&
	$PYTHON gen.py 2 600 text >text.jsonl &&
	test_line_count = 600 sft.jsonl
'
test -f bpe.model && test -f uni.model && test_set_prereq MODELS

# check_tok NAME MODEL RECORDS 'tok args' 'ref.py args'
check_tok() {
	tok -q -m "$2" $4 "$3" >"$1.fr" &&
	tok --dump "$1.fr" >"$1.got" &&
	$PYTHON ref.py "$2" $5 <"$3" >"$1.want" &&
	test -s "$1.want" &&
	test_cmp "$1.want" "$1.got"
}

for m in bpe uni; do
	test_expect_success MODELS "sft ($m): ids and labels equal the Python rule" "
		check_tok sft-$m $m.model sft.jsonl '--mode sft' sft &&
		check_tok sft-$m-auto $m.model sft.jsonl '' sft
	"
	test_expect_success MODELS "sft ($m): --max-len 64 and 40 truncate as concatenate-then-cut" "
		check_tok sft64-$m $m.model sft.jsonl '-l 64' 'sft --max-len 64' &&
		check_tok sft40-$m $m.model sft.jsonl '--max-len=40' 'sft --max-len 40' &&
		tok -m $m.model -l 64 sft.jsonl 2>err >/dev/null &&
		test_grep \"[1-9][0-9]* truncated to --max-len 64\" err
	"
	test_expect_success MODELS "pt ($m): blocks of 1, 7, 64, 512, with and without --keep-tail" "
		for b in 1 7 64 512; do
			check_tok pt\$b-$m $m.model text.jsonl \"--mode pt --block-size \$b\" \"pt --block-size \$b\" &&
			check_tok ptk\$b-$m $m.model text.jsonl \"--mode pt --block-size \$b --keep-tail\" \"pt --block-size \$b --keep-tail\" ||
			return 1
		done
	"
	test_expect_success MODELS "ids ($m): plain, --bos, --eos" "
		tok -q -m $m.model --mode ids text.jsonl >ids-$m.got &&
		$PYTHON ref.py $m.model ids <text.jsonl >ids-$m.want &&
		test_cmp ids-$m.want ids-$m.got &&
		tok -q -m $m.model --mode ids --bos --eos text.jsonl >idsbe-$m.got &&
		$PYTHON ref.py $m.model ids --bos --eos <text.jsonl >idsbe-$m.want &&
		test_cmp idsbe-$m.want idsbe-$m.got
	"
	test_expect_success MODELS "decode ($m): JSONL ids back to text as the library decodes it" "
		tok -q -m $m.model --mode ids text.jsonl | tok -q --decode -m $m.model >dec-$m.jsonl &&
		$PYTHON decode-check.py $m.model text.jsonl dec-$m.jsonl &&
		tok -q -m $m.model --mode ids text.jsonl >ids.jsonl &&
		$PYTHON -c 'import json,sys; [print(json.dumps({\"text\": \"x\", \"input_ids\": json.loads(l)[\"input_ids\"], \"labels\": []})) for l in sys.stdin]' <ids.jsonl >wrapped.jsonl &&
		tok -q --decode -m $m.model wrapped.jsonl >dec2-$m.jsonl &&
		test_cmp dec-$m.jsonl dec2-$m.jsonl
	"
done

# decode-frames.py MODEL DUMP DECODED: line i of DECODED is the library's
# decoding of the input_ids on line i of DUMP
cat >decode-frames.py <<'PYEOF'
import json, sys
import sentencepiece as spm
sp = spm.SentencePieceProcessor(model_file=sys.argv[1])
want = [sp.decode(json.loads(l)["input_ids"]) for l in open(sys.argv[2], encoding="utf-8")]
got = [json.loads(l)["text"] for l in open(sys.argv[3], encoding="utf-8")]
sys.exit(0 if want and want == got else 1)
PYEOF

test_expect_success MODELS 'decode: sft and pt frames back to text, as the library decodes' '
	tok -q -m bpe.model sft.jsonl >dsft.fr &&
	tok --dump dsft.fr >dsft.jsonl &&
	tok -q --decode -m bpe.model dsft.fr >dsft.dec &&
	test_line_count = 600 dsft.dec &&
	$PYTHON decode-frames.py bpe.model dsft.jsonl dsft.dec &&
	tok -q -m uni.model --mode pt --block-size 64 --zstd text.jsonl >dpt.fr &&
	tok --dump dpt.fr >dpt.jsonl &&
	tok -q --decode -m uni.model dpt.fr >dpt.dec &&
	$PYTHON decode-frames.py uni.model dpt.jsonl dpt.dec
'

test_expect_success MODELS 'templates: llama2-chat (default and own --system) and a template file' '
	check_tok l2 bpe.model sft.jsonl "-t llama2-chat" "sft --template llama2-chat" &&
	check_tok l2s bpe.model sft.jsonl "-t llama2-chat --system 系统:{instruction}" \
		"sft --template llama2-chat --system 系统:{instruction}" &&
	printf "<s>{system}|用户：{instruction}\n助手：{unknown} {\n" >mine.tpl &&
	check_tok file bpe.model sft.jsonl "-t mine.tpl --system SYS" \
		"sft --template mine.tpl --system SYS" &&
	check_tok raw uni.model sft.jsonl "--template raw -l 100" "sft --template raw --max-len 100"
'

test_expect_success MODELS 'JSON array input gives the same examples' '
	$PYTHON -c "import json,sys; json.dump([json.loads(l) for l in sys.stdin], sys.stdout)" <sft.jsonl >sft.json &&
	check_tok arr bpe.model sft.json "" sft
'

test_expect_success MODELS,ZSTD '--zstd frames and .zst records give the same dump' '
	tok -q -m uni.model --zstd=19 sft.jsonl >z.fr &&
	tok --dump z.fr >z.got &&
	$PYTHON ref.py uni.model sft <sft.jsonl >z.want &&
	test_cmp z.want z.got &&
	zstd -q text.jsonl -o text.jsonl.zst &&
	tok -q -m uni.model --mode pt --block-size 32 --keep-tail text.jsonl.zst | tok --dump >zin.got &&
	$PYTHON ref.py uni.model pt --block-size 32 --keep-tail <text.jsonl >zin.want &&
	test_cmp zin.want zin.got
'

test_expect_success MODELS 'one and two threads: identical bytes on the reference run' '
	$PYTHON gen.py 3 5000 sft >big.jsonl &&
	OMP_NUM_THREADS=1 tok -q -m bpe.model big.jsonl >t1.fr &&
	OMP_NUM_THREADS=2 tok -q -m bpe.model big.jsonl >t2.fr &&
	cmp t1.fr t2.fr &&
	tok --dump t1.fr >big.got &&
	$PYTHON ref.py bpe.model sft <big.jsonl >big.want &&
	test_cmp big.want big.got
'

LLAMA=$SHARED_DATA/llama/tokenizer.model
MSRA=$SHARED_DATA/msra/msra_1000.txt

test_expect_success SHARED_DATA 'MSRA with LLaMA tokenizer: sft equals the Python rule for all 1000' '
	$PYTHON msra.py <"$MSRA" >msra.jsonl &&
	test_line_count = 1000 msra.jsonl &&
	check_tok msra "$LLAMA" msra.jsonl "" sft &&
	test_line_count = 1000 msra.got &&
	check_tok msra128 "$LLAMA" msra.jsonl "-l 128" "sft --max-len 128"
'

test_expect_success SHARED_DATA 'MSRA texts: pt blocks with LLaMA and Chinese-LLaMA tokenizers' '
	check_tok mpt "$LLAMA" "$MSRA" "--mode pt" "pt" &&
	check_tok mptc "$SHARED_DATA/chinese-llama/chinese_sp.model" "$MSRA" \
		"--mode pt -b 100 --keep-tail" "pt --block-size 100 --keep-tail"
'

# The built-in BPE encoder (libcommon/text/bpe.c) against the library in
# process (t/unit/spm_encode: random texts mixing each model's pieces,
# whitespace, NFKC-rewritten and malformed characters), and against Python
# on records, for BPE models trained here with each normalization option
# that changes encoding: nmt_nfkc (bpe.model), identity with extra
# whitespace kept (LLaMA's), nfkc_cf with user-defined symbols and no byte
# fallback (runs of unknown characters become one <unk>), no dummy prefix
# with whitespace as suffix, and split digits.
test_expect_success MODELS 'setup: BPE models for each normalization option' '
	make_spm_model ident bpe 800 --normalization_rule_name=identity \
		--remove_extra_whitespaces=false &&
	make_spm_model cf bpe 800 --normalization_rule_name=nfkc_cf --byte_fallback=false \
		--user_defined_symbols="<u>,foo,了不,▁x,x▁" &&
	make_spm_model suffix bpe 800 --add_dummy_prefix=false \
		--treat_whitespace_as_suffix=true --user_defined_symbols=ab,abc &&
	make_spm_model digits bpe 800 --split_digits=true --remove_extra_whitespaces=false &&
	$PYTHON - >edge.jsonl <<-\EOF
	import json, random
	r = random.Random(7)
	pools = ["\U00020000\U0002a6d6\U0002f800", "😀🙈🇨🇳👨‍👩‍👧", "\u0001\u001f\u007f",
	         "<0x41><0xFF><s></s><unk>", "ÿþ\u00ad", "龘𠀋鿿", "the of", "  \t\n\r",
	         "\ufffd\ue000", "ﬁＡ①㍻ｶé\u200b", " \u3000\u00a0", "<u>foo了不了 x x abc",
	         "的的的的", "aaaa", "1234567890", "\u2581"]
	for i in range(600):
	    print(json.dumps({"text": "".join(r.choice(r.choice(pools))
	                                      for _ in range(r.randint(0, 60)))},
	                     ensure_ascii=i % 2 == 0))
	print(json.dumps({"text": ""}))
	print(json.dumps({"text": "   "}))
	print(json.dumps({"text": " leading and trailing  "}))
	EOF
'

test_expect_success MODELS 'built-in BPE encoder: the library'"'"'s ids on random text, every option' '
	$PYTHON -c "import json, sys; [print(json.loads(l)[\"text\"].replace(\"\\n\", \" \")) for l in sys.stdin]" \
		<text.jsonl >texts.txt &&
	for m in bpe ident cf suffix digits; do
		"$LP_BUILD/t/spm_encode" $m.model 3000 $m texts.txt >enc-$m.out ||
		{ cat enc-$m.out; return 1; }
		test_grep "texts, [0-9]* ids: the same from both" enc-$m.out || return 1
	done
'

test_expect_success MODELS 'built-in BPE encoder: the Python rule on edge cases, every option' '
	for m in bpe ident cf suffix digits; do
		tok -q -m $m.model --mode ids edge.jsonl >edge-$m.got &&
		$PYTHON ref.py $m.model ids <edge.jsonl >edge-$m.want &&
		test_cmp edge-$m.want edge-$m.got &&
		check_tok edgept-$m $m.model edge.jsonl "--mode pt --keep-tail --block-size 64" \
			"pt --block-size 64 --keep-tail" || return 1
	done
'

test_expect_success MODELS 'the report names the encoder; LP_SPM_LIBRARY=1 gives the same bytes' '
	tok -m bpe.model --mode pt text.jsonl 2>err >ours.fr &&
	test_grep "encoder: built-in BPE" err &&
	LP_SPM_LIBRARY=1 tok -m bpe.model --mode pt text.jsonl 2>err >lib.fr &&
	test_grep "encoder: the sentencepiece library (LP_SPM_LIBRARY is set)" err &&
	cmp ours.fr lib.fr &&
	tok -m uni.model --mode pt text.jsonl 2>err >/dev/null &&
	test_grep "encoder: the sentencepiece library (not a BPE model)" err
'

test_expect_success SHARED_DATA 'built-in BPE encoder: LLaMA and LLaMA + Chinese merged, random text and MSRA' '
	$PYTHON -c "import json, sys; [print(json.loads(l)[\"text\"]) for l in sys.stdin]" \
		<"$MSRA" >msra.txt &&
	"$LP_BUILD/t/spm_encode" "$LLAMA" 3000 1 msra.txt >enc-llama.out &&
	test_grep "the same from both" enc-llama.out &&
	if test -x "$LP_BIN/spm-merge"; then
		spm-merge -q -o merged.model "$LLAMA" "$SHARED_DATA/chinese-llama/chinese_sp.model" &&
		"$LP_BUILD/t/spm_encode" merged.model 3000 2 msra.txt >enc-merged.out &&
		test_grep "the same from both" enc-merged.out &&
		check_tok mptm merged.model "$MSRA" "--mode pt" "pt"
	fi
'

# tok reads the next batch (2048 records) while the last one is encoded:
# 9000 records in three files make batches that span files; every thread
# count writes the same bytes, equal to the rule over the concatenation.
test_expect_success SHARED_DATA 'MSRA x9 in three files: pt blocks equal the rule, 1-3 threads' '
	cat "$MSRA" "$MSRA" "$MSRA" >m3.jsonl &&
	cat m3.jsonl m3.jsonl m3.jsonl >m9.jsonl &&
	for j in 1 2 3; do
		tok -q -j $j -m "$LLAMA" --mode pt m3.jsonl m3.jsonl m3.jsonl >m9.$j.fr || return 1
	done &&
	cmp m9.1.fr m9.2.fr && cmp m9.1.fr m9.3.fr &&
	tok -q -j 2 -m "$LLAMA" --mode pt <m9.jsonl >m9.stdin.fr &&
	cmp m9.1.fr m9.stdin.fr &&
	tok --dump m9.1.fr >m9.got &&
	$PYTHON ref.py "$LLAMA" pt <m9.jsonl >m9.want &&
	test_cmp m9.want m9.got
'

test_expect_success SHARED_DATA 'MSRA through mkinstr, when it is built' '
	if test -x "$LP_BIN/mkinstr"; then
		mkinstr <"$MSRA" >mk.jsonl 2>/dev/null &&
		test_line_count = 1000 mk.jsonl &&
		check_tok mk "$LLAMA" mk.jsonl "--mode sft" sft
	else
		say "mkinstr not built; skipped"
	fi
'

test_done
