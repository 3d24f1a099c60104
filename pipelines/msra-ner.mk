# msra-ner.mk: the MSRA NER experiment: instructions, LoRA tuning,
# answers on a held-out split, entity-level precision/recall/F1.
#
#   make -f pipelines/msra-ner.mk MODEL=chinese-llama/merged \
#        MSRA=../shared/data/msra/msra_1000.txt OUT=msra
#
#   MODEL     base model directory (with tokenizer.model)
#   MSRA      MSRA NER data: JSONL {text, entity_list} or BIO columns
#   DEV_RATIO share held out for scoring (by record hash: stable)

MODEL     ?= $(error set MODEL to the model directory)
MSRA      ?= ../shared/data/msra/msra_1000.txt
OUT       ?= msra
BIN       ?= bin
DEV_RATIO ?= 0.1
RANK      ?= 8
ALPHA     ?= 32
LR        ?= 1e-4
EPOCHS    ?= 3
BATCH     ?= 4
MAX_LEN   ?= 512
MAX_NEW   ?= 64
TRAIN_FLAGS ?=
export PATH := $(abspath $(BIN)):$(PATH)

all: $(OUT)/f1.json
	@jq -r '"MSRA NER: precision \(.precision) recall \(.recall) F1 \(.f1)"' $<

$(OUT)/train.jsonl: $(MSRA)
	@mkdir -p $(OUT)
	mkinstr --from msra --dev $(OUT)/dev.jsonl --dev-ratio $(DEV_RATIO) <$< >$@

$(OUT)/dev.jsonl: $(OUT)/train.jsonl

$(OUT)/train.frames: $(OUT)/train.jsonl
	tok -M $(MODEL) --mode sft --max-len $(MAX_LEN) <$< >$@

$(OUT)/lora/adapter_config.json: $(OUT)/train.frames
	lora-train -M $(MODEL) -o $(OUT)/lora --force --data $< --rank $(RANK) --alpha $(ALPHA) \
		--lr $(LR) --epochs $(EPOCHS) --batch-size $(BATCH) --warmup-ratio 0.03 \
		--weight-decay 0 --log $(OUT)/train-log.jsonl $(TRAIN_FLAGS)

$(OUT)/answers.jsonl: $(OUT)/lora/adapter_config.json $(OUT)/dev.jsonl
	gen -M $(MODEL) -A $(OUT)/lora --keep-input --max-new-tokens $(MAX_NEW) \
		<$(OUT)/dev.jsonl >$@

$(OUT)/f1.json: $(OUT)/answers.jsonl pipelines/ner-f1.jq
	jq -c '{gold: .input.output, pred: .text}' $< | jq -s -f pipelines/ner-f1.jq >$@

clean:
	rm -rf $(OUT)

.PHONY: all clean
.DELETE_ON_ERROR:
