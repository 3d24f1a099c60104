# demo.mk: the whole workflow on the bundled tiny data (make demo).
#
#   1. train a Chinese SentencePiece model on the bundled corpus (spm_train)
#   2. merge it into the bundled base tokenizer (spm-merge); characters per
#      token before and after
#   3. pre-train a tiny LLaMA from scratch on the Chinese corpus (lora-train --from-scratch)
#   4. LoRA-tune it on NER instructions made by mkinstr (lora-train)
#   5. merge the adapter into the model (lora-merge)
#   6. answer the held-out NER questions (gen) and score entity-level
#      precision, recall and F1 (pipelines/ner-f1.jq)
#   7. plot both loss curves (gnuplot) to demo/loss.png
#
# Every stage is a file, so a re-run does only what changed.
# Outputs go to demo/ (DEMO=dir to change); tools come from bin/.

DEMO    ?= demo
BIN     ?= bin
DATA    := testdata/demo
THREADS ?= 2
export OMP_NUM_THREADS = $(THREADS)
export PATH := $(abspath $(BIN)):$(PATH)

# the tiny model: 4 layers, hidden 128, GQA 4/2 heads. Its prompts are
# short (raw template, a one-line instruction) so that two cores train it
# in minutes; the real workflow keeps the Alpaca template.
PT_EPOCHS  ?= 3
SFT_EPOCHS ?= 20
TEMPLATE   ?= raw
INSTRUCTION ?= 找出文本中的人名、地名、机构名。
export OMP_WAIT_POLICY = passive
# The same numbers on every x86-64 processor with AVX2: OpenBLAS picks its
# GEMM kernels by processor (Haswell, SkylakeX, Cooperlake, ...) and they
# round differently, which moves training and so the F1 in its second
# digit. Pinned to the Haswell kernels, which every AVX2 machine runs (on
# older ones OpenBLAS keeps its own choice). OPENBLAS_CORETYPE= to unpin.
OPENBLAS_CORETYPE ?= $(if $(shell grep -qw avx2 /proc/cpuinfo 2>/dev/null && echo y),Haswell)
export OPENBLAS_CORETYPE

say = @printf '\n== %s\n' $(1)

all: $(DEMO)/f1.json $(DEMO)/loss.png
	$(call say,"held-out NER F1 (demo/f1.json)")
	@jq -r '"precision \(.precision)  recall \(.recall)  F1 \(.f1)  (tp \(.tp), fp \(.fp), fn \(.fn))"' $(DEMO)/f1.json
	@echo "loss curves: $(DEMO)/loss.png"

$(DEMO)/.dir:
	@mkdir -p $(DEMO) && touch $@

# 1. Chinese SentencePiece model
$(DEMO)/zh.model: $(DATA)/zh-corpus.txt | $(DEMO)/.dir
	$(call say,"1. train a Chinese SentencePiece model on $<")
	spm_train --input=$< --model_prefix=$(DEMO)/zh --vocab_size=1500 --model_type=bpe \
		--character_coverage=1.0 --normalization_rule_name=identity --minloglevel=2 \
		>/dev/null 2>&1
	@echo "$(DEMO)/zh.model: 1500 pieces"

# 2. vocabulary expansion; characters per token on the held-out NER texts
$(DEMO)/tokenizer.model: $(DATA)/base.model $(DEMO)/zh.model
	$(call say,"2. expand the base vocabulary with spm-merge")
	spm-merge -o $@ $^
	@jq -c '{text}' $(DATA)/ner-test.jsonl >$(DEMO)/cpt.jsonl
	@for m in $(DATA)/base.model $@; do \
		tok -q -m $$m --mode ids <$(DEMO)/cpt.jsonl | jq -s --arg m $$m \
			--slurpfile t $(DEMO)/cpt.jsonl \
			'"\($$m): \(([$$t[].text | length] | add) / (map(.input_ids | length) | add) * 100 | round / 100) characters per token"' -r; \
	done

# 3. pre-train a tiny LLaMA from scratch
$(DEMO)/config.json: pipelines/demo/tiny-config.json $(DEMO)/tokenizer.model
	jq --argjson v "$$(spm_export_vocab --model=$(DEMO)/tokenizer.model | wc -l)" \
		'.vocab_size = $$v' $< >$@

$(DEMO)/pt.frames: $(DATA)/zh-corpus.txt $(DEMO)/tokenizer.model
	mkinstr -q --from text <$< | tok -q -m $(DEMO)/tokenizer.model --mode pt --block-size 128 >$@

$(DEMO)/base/config.json: $(DEMO)/config.json $(DEMO)/pt.frames
	$(call say,"3. pre-train a tiny LLaMA from scratch (4 layers, hidden 128)")
	rm -rf $(DEMO)/base
	lora-train --from-scratch $(DEMO)/config.json -o $(DEMO)/base --data $(DEMO)/pt.frames \
		--epochs $(PT_EPOCHS) --batch-size 8 --lr 2e-3 --warmup-ratio 0.05 --weight-decay 0.01 \
		--log $(DEMO)/pt-log.jsonl
	cp $(DEMO)/tokenizer.model $(DEMO)/base/
	@jq -s -r '"pre-training loss \(.[0].loss) -> \(.[-1].loss) over \(.[-1].step) steps"' $(DEMO)/pt-log.jsonl

# 4. NER instructions, tokenized, and the LoRA tuning
$(DEMO)/ner-train.frames: $(DATA)/ner-train.jsonl $(DEMO)/tokenizer.model
	mkinstr -q --from msra --instruction '$(INSTRUCTION)' <$< | \
		tok -q -m $(DEMO)/tokenizer.model --mode sft --template $(TEMPLATE) --max-len 128 >$@

$(DEMO)/ner-adapter/adapter_model.safetensors: $(DEMO)/base/config.json $(DEMO)/ner-train.frames
	$(call say,"4. LoRA-tune on NER instructions made by mkinstr")
	rm -rf $(DEMO)/ner-adapter
	lora-train -M $(DEMO)/base -o $(DEMO)/ner-adapter --data $(DEMO)/ner-train.frames \
		--rank 16 --alpha 32 --dropout 0.05 --modules-to-save embed_tokens,lm_head \
		--epochs $(SFT_EPOCHS) --batch-size 8 --lr 3e-3 \
		--warmup-ratio 0.03 --weight-decay 0 --log $(DEMO)/sft-log.jsonl
	@jq -s -r '"instruction-tuning loss \(.[0].loss) -> \(.[-1].loss) over \(.[-1].step) steps"' $(DEMO)/sft-log.jsonl

# 5. merge
$(DEMO)/merged/config.json: $(DEMO)/ner-adapter/adapter_model.safetensors
	$(call say,"5. merge the adapter with lora-merge")
	lora-merge -f -M $(DEMO)/base -A $(DEMO)/ner-adapter -o $(DEMO)/merged

# 6. answer held-out questions and score them
$(DEMO)/answers.jsonl: $(DEMO)/merged/config.json $(DATA)/ner-test.jsonl
	$(call say,"6. answer held-out NER questions with gen")
	mkinstr -q --from msra --instruction '$(INSTRUCTION)' <$(DATA)/ner-test.jsonl | \
		gen -q -M $(DEMO)/merged --template $(TEMPLATE) --keep-input --max-new-tokens 32 >$@
	@head -n 3 $@ | jq -r '"  \(.input.input)\n    gold: \(.input.output | gsub("\n"; " | "))\n    gen:  \(.text | gsub("\n"; " | "))"'

$(DEMO)/f1.json: $(DEMO)/answers.jsonl pipelines/ner-f1.jq
	jq -c '{gold: .input.output, pred: .text}' $< | jq -s -f pipelines/ner-f1.jq >$@

# 7. loss curves
$(DEMO)/loss.png: $(DEMO)/base/config.json $(DEMO)/ner-adapter/adapter_model.safetensors
	$(call say,"7. loss curves")
	jq -r '"\(.step) \(.loss)"' $(DEMO)/pt-log.jsonl >$(DEMO)/pt-loss.dat
	jq -r '"\(.step) \(.loss)"' $(DEMO)/sft-log.jsonl >$(DEMO)/sft-loss.dat
	gnuplot -e "set terminal png size 900,500; set output '$@'; \
		set xlabel 'optimizer step'; set ylabel 'training loss'; set logscale y; \
		set title 'llamapipe demo: pre-training from scratch, then LoRA NER tuning'; \
		plot '$(DEMO)/pt-loss.dat' with lines title 'pre-training', \
		     '$(DEMO)/sft-loss.dat' with lines title 'NER LoRA'"

clean:
	rm -rf $(DEMO)

.PHONY: all clean
.DELETE_ON_ERROR:
