#!/bin/sh
# spm-merge: Chinese-LLaMA's vocabulary expansion rule, checked against
# Python's sentencepiece_model_pb2 and the sentencepiece library.
. "$(dirname "$0")/test-lib.sh"

$PYTHON -c 'import transformers' 2>/dev/null && test_set_prereq TRANSFORMERS

# Models: bpe1 (bpe, 1000) and uniA (unigram, 800) on the standard corpus;
# uni (unigram, 1200) and bpe2 (bpe, 1500) on the same corpus with every
# line reversed, so they share characters and some pieces but not all.
test_expect_success SPM_TRAIN 'setup: train small models' '
	make_spm_model bpe1 bpe 1000 &&
	make_spm_model uniA unigram 800 &&
	mkdir rev && rev corpus.txt >rev/corpus.txt &&
	(cd rev && make_spm_model uni unigram 1200 && make_spm_model bpe2 bpe 1500) &&
	mv rev/uni.model rev/uni.vocab rev/bpe2.model rev/bpe2.vocab . &&
	test -s bpe1.model && test -s uniA.model && test -s uni.model && test -s bpe2.model
'
test -s "$TRASH/bpe2.model" && test_set_prereq MODELS

cat >"$TRASH/ref.py" <<'EOF'
# ref.py OUT BASE EXTRA...: the Chinese-LLaMA-Alpaca merge rule.
import sys
from sentencepiece import sentencepiece_model_pb2 as pb
out, base, extras = sys.argv[1], sys.argv[2], sys.argv[3:]
m = pb.ModelProto()
m.ParseFromString(open(base, "rb").read())
for path in extras:
    x = pb.ModelProto()
    x.ParseFromString(open(path, "rb").read())
    have = set(p.piece for p in m.pieces)
    for p in x.pieces:
        if p.piece not in have:
            new_p = pb.ModelProto().SentencePiece()
            new_p.piece = p.piece
            new_p.score = 0
            m.pieces.append(new_p)
open(out, "wb").write(m.SerializeToString())
EOF
cat >"$TRASH/table.py" <<'EOF'
# table.py MODEL: piece, score, type per line, as protobuf reads them.
import sys
from sentencepiece import sentencepiece_model_pb2 as pb
m = pb.ModelProto()
m.ParseFromString(open(sys.argv[1], "rb").read())
for p in m.pieces:
    print("%s\t%r\t%d" % (p.piece, p.score, p.type))
EOF
cat >"$TRASH/enc.py" <<'EOF'
# enc.py MODEL: ids of a few strings, as the sentencepiece library encodes them.
import sys
import sentencepiece as spm
sp = spm.SentencePieceProcessor(model_file=sys.argv[1])
print(sp.vocab_size())
for s in ["the cat is on the mat", "我们在北京的大学学习", "he was 学生 and 老师 at 1999",
          "他说：这是一个新的开始。", "Hello, 世界!"]:
    print(" ".join(map(str, sp.encode(s))))
EOF
# pieces MODEL.vocab: the piece column of a .vocab file
pieces() { cut -f1 "$1"; }
# count_new BASE.vocab EXTRA.vocab: pieces of EXTRA that BASE lacks
count_new() {
	pieces "$1" | sort -u >base.set &&
	pieces "$2" | sort -u | comm -13 base.set - | wc -l | tr -d " "
}

test_expect_success MODELS 'counts: bpe base + unigram extra' '
	spm-merge bpe1.model uni.model >out.model 2>err &&
	n=$(count_new bpe1.vocab uni.vocab) &&
	test "$n" -gt 0 && test "$n" -lt 1200 &&
	test_grep "bpe1.model: 1000 pieces (bpe)" err &&
	test_grep "uni.model: 1200 pieces (unigram): $n added, $((1200 - n)) already present" err &&
	test_grep "result: $((1000 + n)) pieces ($n added)" err
'

test_expect_success MODELS 'counts: a later extra sees the earlier additions' '
	spm-merge bpe1.model uni.model bpe2.model >out.model 2>err &&
	n1=$(count_new bpe1.vocab uni.vocab) &&
	pieces bpe1.vocab >both && pieces uni.vocab >>both &&
	n2=$(count_new both bpe2.vocab) &&
	test_grep "uni.model: 1200 pieces (unigram): $n1 added" err &&
	test_grep "bpe2.model: 1500 pieces (bpe): $n2 added" err &&
	test_grep "result: $((1000 + n1 + n2)) pieces" err
'

for combo in "bpe1 uni" "bpe1 bpe2" "bpe1 uni bpe2" "uniA uni" "bpe1 uniA"; do
	set -- $combo
	base=$1; shift
	extras=$(for e in "$@"; do printf '%s.model ' "$e"; done)
	test_expect_success MODELS,PY_SPM_PB2 "piece table and bytes equal the Python rule: $combo" "
		spm-merge -o ours.model $base.model $extras &&
		\$PYTHON ref.py ref.model $base.model $extras &&
		\$PYTHON table.py ours.model >ours.tsv &&
		\$PYTHON table.py ref.model >ref.tsv &&
		test_cmp ref.tsv ours.tsv &&
		cmp ref.model ours.model
	"
done

test_expect_success MODELS,PY_SPM_PB2 'added pieces: score 0, type normal, the extra'"'"'s order' '
	spm-merge bpe1.model uni.model >out.model &&
	$PYTHON table.py out.model | tail -n +1001 >added.tsv &&
	cut -f2,3 added.tsv | sort -u >kinds &&
	printf "0.0\t1\n" >expect && test_cmp expect kinds &&
	pieces bpe1.vocab | sort -u >base.set &&
	pieces uni.vocab | awk "NR==FNR { have[\$0] = 1; next } !(\$0 in have)" base.set - >expect &&
	cut -f1 added.tsv >actual && test_cmp expect actual
'

test_expect_success MODELS,PY_SPM,PY_SPM_PB2 'merged model tokenizes as the Python-merged one' '
	spm-merge bpe1.model uni.model bpe2.model >ours.model &&
	$PYTHON ref.py ref.model bpe1.model uni.model bpe2.model &&
	$PYTHON enc.py ours.model >ours.ids &&
	$PYTHON enc.py ref.model >ref.ids &&
	test_cmp ref.ids ours.ids &&
	$PYTHON enc.py bpe1.model >base.ids &&
	! cmp -s base.ids ours.ids
'

test_expect_success MODELS 'idempotence: merging a model into itself adds nothing' '
	spm-merge bpe1.model bpe1.model >self.model 2>err &&
	test_grep "1000 pieces (bpe): 0 added, 1000 already present" err &&
	cmp bpe1.model self.model &&
	spm-merge bpe1.model uni.model >once.model &&
	spm-merge once.model uni.model >twice.model 2>err &&
	test_grep "uni.model: 1200 pieces (unigram): 0 added" err &&
	cmp once.model twice.model
'

test_expect_success MODELS '--pieces: one per line, blanks skipped, CRLF, spaces' '
	printf "新词甲\r\n\nhello world\n the\n新词甲\n\r\nzz\n" >list.txt &&
	spm-merge --pieces list.txt bpe1.model >out.model 2>err &&
	test_grep "list.txt: 5 pieces: 3 added, 2 already present" err &&
	test_grep "result: 1003 pieces (3 added)" err
'

test_expect_success MODELS,PY_SPM_PB2 '--pieces stores spaces as U+2581, after the extras' '
	printf "新词甲\nhello world\n the\n" >list.txt &&
	spm-merge -p list.txt bpe1.model uni.model >out.model &&
	$PYTHON table.py out.model | tail -n 2 >actual &&
	printf "新词甲\t0.0\t1\nhello▁world\t0.0\t1\n" >expect &&
	test_cmp expect actual
'

test_expect_success MODELS,PY_SPM,PY_SPM_PB2 '--type user_defined: added pieces are user-defined' '
	printf "北京大学\nthe cat\n" >list.txt &&
	spm-merge --type user_defined -p list.txt bpe1.model >out.model &&
	$PYTHON table.py out.model | tail -n 2 >actual &&
	printf "北京大学\t0.0\t4\nthe▁cat\t0.0\t4\n" >expect &&
	test_cmp expect actual &&
	$PYTHON -c "
import sentencepiece as spm
sp = spm.SentencePieceProcessor(model_file=\"out.model\")
assert sp.encode(\"北京大学\", out_type=str) == [\"▁\", \"北京大学\"], sp.encode(\"北京大学\", out_type=str)
assert sp.is_unused(1000) == False and sp.id_to_piece(1000) == \"北京大学\"
" &&
	spm-merge --type user_defined bpe1.model uni.model >out2.model &&
	$PYTHON table.py out2.model | tail -n +1001 | cut -f2,3 | sort -u >kinds &&
	printf "0.0\t4\n" >expect && test_cmp expect kinds
'

test_expect_success MODELS,JQ '--hf-dir writes a LlamaTokenizer directory' '
	spm-merge -q -o out.model --hf-dir hf/llama-zh bpe1.model uni.model &&
	cmp out.model hf/llama-zh/tokenizer.model &&
	jq -e ".tokenizer_class == \"LlamaTokenizer\" and .bos_token == \"<s>\" and
		.eos_token == \"</s>\" and .unk_token == \"<unk>\" and .add_bos_token == true and
		.add_eos_token == false and .legacy == true and .pad_token == null and
		.clean_up_tokenization_spaces == false and .model_max_length == 2048" \
		hf/llama-zh/tokenizer_config.json &&
	jq -e ". == {bos_token: \"<s>\", eos_token: \"</s>\", unk_token: \"<unk>\"}" \
		hf/llama-zh/special_tokens_map.json &&
	spm-merge -q --model-max-length 4096 --hf-dir hf/llama-zh bpe1.model >stdout &&
	test ! -s stdout &&
	jq -e ".model_max_length == 4096" hf/llama-zh/tokenizer_config.json &&
	! ls -a hf/llama-zh | grep tmp
'

test_expect_success MODELS,TRANSFORMERS '--hf-dir loads in transformers LlamaTokenizer' '
	spm-merge -q --hf-dir hf bpe1.model uni.model &&
	$PYTHON -c "
from transformers import LlamaTokenizer
import sentencepiece as spm
t = LlamaTokenizer.from_pretrained(\"hf\")
sp = spm.SentencePieceProcessor(model_file=\"hf/tokenizer.model\")
s = \"我们在北京的大学 the cat\"
assert t.encode(s) == [1] + sp.encode(s), (t.encode(s), sp.encode(s))
assert len(t) == sp.vocab_size() and t.bos_token == \"<s>\" and t.eos_token == \"</s>\"
"
'

test_expect_success MODELS '-o writes atomically and leaves no temporary' '
	spm-merge -q -o dir.model bpe1.model uni.model &&
	spm-merge -q bpe1.model uni.model >stdout.model &&
	cmp dir.model stdout.model &&
	! ls -a | grep "\.tmp\."
'

# ---- bad input ----

test_expect_success 'no arguments: usage error' '
	spm-merge >out 2>err; test $? = 2 &&
	test_grep "no BASE model given" err &&
	test_grep "(see .spm-merge --help.)" err
'

test_expect_success '--help prints usage on stdout' '
	spm-merge --help >out &&
	test_grep "^usage: spm-merge" out &&
	test_grep -e "--hf-dir" out
'

test_expect_success MODELS 'bad option values are usage errors' '
	spm-merge --type control bpe1.model >out 2>err; test $? = 2 &&
	test_grep "type: .control. is not one of normal, user_defined" err &&
	spm-merge --model-max-length 0 --hf-dir x bpe1.model 2>err; test $? = 2 &&
	test_grep "model-max-length" err
'

test_expect_success 'missing file' '
	test_must_fail spm-merge nosuch.model >out 2>err &&
	test_grep "spm-merge: nosuch.model: No such file" err &&
	test ! -s out
'

test_expect_success 'empty file is not a model' '
	: >empty.model &&
	test_must_fail spm-merge empty.model >out 2>err &&
	test_grep "empty.model: not a SentencePiece model: the file is empty" err
'

test_expect_success 'random bytes are not a model' '
	LC_ALL=C awk "BEGIN { srand(3); for (i = 0; i < 4096; i++) printf \"%c\", 1 + int(rand() * 255) }" >random.bin &&
	test $(wc -c <random.bin) -ge 4096 &&
	test_must_fail spm-merge random.bin >out 2>err &&
	test_grep "random.bin: not a SentencePiece model: at byte [0-9]*: " err &&
	test ! -s out
'

test_expect_success 'a text file is not a model' '
	printf "<unk>\t0\n<s>\t0\n</s>\t0\n" >text.vocab &&
	test_must_fail spm-merge text.vocab >out 2>err &&
	test_grep "text.vocab: not a SentencePiece model: .*looks like a text file" err
'

test_expect_success MODELS 'a truncated model is refused, as base or extra' '
	head -c 100000 bpe1.model >cut.model &&
	test_must_fail spm-merge cut.model >out 2>err &&
	test_grep "cut.model: not a SentencePiece model: at byte [0-9]*: length [0-9]* runs past the end" err &&
	test_must_fail spm-merge -o res.model bpe1.model cut.model 2>err &&
	test_grep "cut.model: not a SentencePiece model" err &&
	test ! -e res.model &&
	! ls -a | grep "\.tmp\."
'

test_expect_success MODELS 'a .vocab file given as a model' '
	test_must_fail spm-merge bpe1.model bpe1.vocab >out 2>err &&
	test_grep "bpe1.vocab: not a SentencePiece model" err
'

test_expect_success MODELS 'unigram base + bpe extra needs --force' '
	test_must_fail spm-merge uni.model bpe1.model >out 2>err &&
	test_grep "bpe1.model: a bpe model, but the base uni.model is unigram" err &&
	test_grep -e "--force" err &&
	spm-merge --force uni.model bpe1.model >out 2>err &&
	n=$(count_new uni.vocab bpe1.vocab) &&
	test_grep "result: $((1200 + n)) pieces" err
'

test_expect_success MODELS,PY_SPM_PB2 'unigram + bpe with --force still follows the rule' '
	spm-merge -f uni.model bpe1.model >ours.model &&
	$PYTHON ref.py ref.model uni.model bpe1.model &&
	cmp ref.model ours.model
'

test_expect_success MODELS '--pieces: invalid UTF-8 and NUL bytes are refused with the line' '
	printf "ok\n\377bad\n" >bad.txt &&
	test_must_fail spm-merge -p bad.txt bpe1.model >out 2>err &&
	test_grep "bad.txt: line 2: not valid UTF-8" err &&
	printf "ok\nfine\nnul\000here\n" >nul.txt &&
	test_must_fail spm-merge -p nul.txt bpe1.model >out 2>err &&
	test_grep "nul.txt: line 3: contains a NUL byte" err &&
	test_must_fail spm-merge -p nosuch.txt bpe1.model >out 2>err &&
	test_grep "nosuch.txt: No such file" err
'

test_expect_success MODELS 'refuses to write a model to a terminal' '
	if ! command -v script >/dev/null; then exit 0; fi
	script -qec "spm-merge bpe1.model" /dev/null >tty.out 2>&1 </dev/null
	test_grep "refusing to write a binary model to a terminal" tty.out
'

# ---- the real thing ----

LLAMA=$SHARED_DATA/llama/tokenizer.model
ZH=$SHARED_DATA/chinese-llama/chinese_sp.model

test_expect_success SHARED_DATA 'LLaMA + chinese_sp: 49953 pieces' '
	spm-merge "$LLAMA" "$ZH" >zh.model 2>err &&
	test_grep "tokenizer.model: 32000 pieces (bpe)" err &&
	test_grep "chinese_sp.model: 20000 pieces (unigram): 17953 added, 2047 already present" err &&
	test_grep "result: 49953 pieces (17953 added)" err
'

test_expect_success SHARED_DATA,PY_SPM_PB2 'LLaMA + chinese_sp: byte for byte the Python rule' '
	spm-merge -q "$LLAMA" "$ZH" >zh.model &&
	$PYTHON ref.py ref.model "$LLAMA" "$ZH" &&
	cmp ref.model zh.model
'

test_expect_success SHARED_DATA,PY_SPM 'LLaMA + chinese_sp: loads in sentencepiece' '
	spm-merge -q "$LLAMA" "$ZH" >zh.model &&
	$PYTHON enc.py zh.model >zh.ids &&
	echo 49953 >expect && head -n 1 zh.ids >actual && test_cmp expect actual &&
	$PYTHON -c "
import sentencepiece as spm
sp = spm.SentencePieceProcessor(model_file=\"zh.model\")
base = spm.SentencePieceProcessor(model_file=\"$LLAMA\")
s = \"我们在北京的大学学习\"
assert len(sp.encode(s)) < len(base.encode(s)) / 2, (sp.encode(s), base.encode(s))
assert sp.encode(\"Hello world\") == base.encode(\"Hello world\")
"
'

test_done
