# chinese-llama.mk: Chinese-LLaMA's workflow, stage by stage.
#
#   make -f pipelines/chinese-llama.mk BASE=llama-7b ZH_MODEL=chinese_sp.model \
#        PT_TEXT=zh.txt SFT_DATA=alpaca_zh.json OUT=work
#
# convert -> expand vocabulary -> LoRA pre-train (with embed_tokens and
# lm_head) -> SFT -> merge both adapters -> chat. Every stage writes a file,
# so `make -j` runs what can run at once and a re-run does only what changed.
#
# Inputs:
#   BASE      LLaMA base model in any layout (HF or Meta params.json + .pth)
#   ZH_MODEL  a Chinese SentencePiece model, or ZH_CORPUS to train one
#   PT_TEXT   pre-training text, one document per line
#   SFT_DATA  instruction data: Alpaca JSON/JSONL, or anything mkinstr reads
#   OUT       where everything goes (default: chinese-llama)

BASE      ?= $(error set BASE to the LLaMA model directory)
ZH_CORPUS ?=
ZH_VOCAB  ?= 20000
ZH_MODEL  ?= $(if $(ZH_CORPUS),$(OUT)/zh.model,$(error set ZH_MODEL or ZH_CORPUS))
PT_TEXT   ?= $(error set PT_TEXT to the pre-training text)
SFT_DATA  ?= $(error set SFT_DATA to the instruction data)
OUT       ?= chinese-llama
BIN       ?= bin
export PATH := $(abspath $(BIN)):$(PATH)

# hyper-parameters as Chinese-LLaMA-Alpaca's scripts
BLOCK_SIZE  ?= 512
MAX_LEN     ?= 512
RANK        ?= 8
ALPHA       ?= 32
DROPOUT     ?= 0.05
TARGETS     ?= q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj
PT_LR       ?= 2e-4
SFT_LR      ?= 1e-4
PT_EPOCHS   ?= 1
SFT_EPOCHS  ?= 1
BATCH       ?= 1
GRAD_ACCUM  ?= 1
TRAIN_FLAGS ?=
DTYPE       ?= f16

LORA = --rank $(RANK) --alpha $(ALPHA) --dropout $(DROPOUT) --targets $(TARGETS) \
	--modules-to-save embed_tokens,lm_head --tokenizer $(OUT)/tokenizer/tokenizer.model \
	--batch-size $(BATCH) --grad-accum $(GRAD_ACCUM) $(TRAIN_FLAGS)

all: $(OUT)/merged/config.json

$(OUT)/.dir:
	@mkdir -p $(OUT) && touch $@

# convert: any layout to Hugging Face
$(OUT)/hf/config.json: | $(OUT)/.dir
	lora-merge -f -M $(BASE) -o $(OUT)/hf

# a Chinese SentencePiece model, when only a corpus is given
$(OUT)/zh.model: $(ZH_CORPUS) | $(OUT)/.dir
	spm_train --input=$(ZH_CORPUS) --model_prefix=$(OUT)/zh --vocab_size=$(ZH_VOCAB) \
		--model_type=bpe --character_coverage=0.9995 --minloglevel=2

# expand the vocabulary
$(OUT)/tokenizer/tokenizer.model: $(OUT)/hf/config.json $(ZH_MODEL)
	spm-merge --hf-dir $(OUT)/tokenizer $(OUT)/hf/tokenizer.model $(ZH_MODEL)

# LoRA pre-training with embed_tokens and lm_head, vocabulary resized
$(OUT)/pt.frames: $(PT_TEXT) $(OUT)/tokenizer/tokenizer.model
	mkinstr --from text <$(PT_TEXT) | \
		tok -m $(OUT)/tokenizer/tokenizer.model --mode pt --block-size $(BLOCK_SIZE) >$@

$(OUT)/pt-lora/adapter_config.json: $(OUT)/pt.frames
	lora-train -M $(OUT)/hf -o $(OUT)/pt-lora --force --data $< $(LORA) \
		--lr $(PT_LR) --warmup-ratio 0.05 --weight-decay 0.01 --epochs $(PT_EPOCHS) \
		--log $(OUT)/pt-log.jsonl

# SFT on top of the pre-trained model (its LoRA merged in)
$(OUT)/pt-merged/config.json: $(OUT)/pt-lora/adapter_config.json
	lora-merge -f -M $(OUT)/hf -A $(OUT)/pt-lora \
		--tokenizer $(OUT)/tokenizer/tokenizer.model -o $(OUT)/pt-merged

$(OUT)/sft.frames: $(SFT_DATA) $(OUT)/tokenizer/tokenizer.model
	mkinstr <$(SFT_DATA) | \
		tok -m $(OUT)/tokenizer/tokenizer.model --mode sft --max-len $(MAX_LEN) >$@

$(OUT)/sft-lora/adapter_config.json: $(OUT)/pt-merged/config.json $(OUT)/sft.frames
	lora-train -M $(OUT)/pt-merged -o $(OUT)/sft-lora --force --data $(OUT)/sft.frames \
		$(LORA) --lr $(SFT_LR) --warmup-ratio 0.03 --weight-decay 0 --epochs $(SFT_EPOCHS) \
		--log $(OUT)/sft-log.jsonl

# merge both adapters, in order, into the converted base
$(OUT)/merged/config.json: $(OUT)/pt-lora/adapter_config.json $(OUT)/sft-lora/adapter_config.json
	lora-merge -f -M $(OUT)/hf -A $(OUT)/pt-lora -A $(OUT)/sft-lora \
		--tokenizer $(OUT)/tokenizer/tokenizer.model --dtype $(DTYPE) -o $(OUT)/merged

chat: $(OUT)/merged/config.json
	gen -M $(OUT)/merged -i

clean:
	rm -rf $(OUT)

.PHONY: all chat clean
.DELETE_ON_ERROR:
