#!/bin/sh
# Model and adapter directories in every layout (libcommon model_config,
# model_files, adapter_files, zipread, pickle): tiny random LLaMA models made
# at run time by transformers and PEFT (t/ref/make_models.py) load here to
# the same tensors, bit for bit, as Python reads: HF safetensors (single,
# sharded), pytorch_model.bin (single, sharded), Meta consolidated.NN.pth
# (one and two model-parallel shards, q/k permuted back), PEFT adapters
# (safetensors and bin). Configs of transformers 4 and 5, rotary
# frequencies against transformers' rope functions, and errors that name
# what mismatches.
. "$(dirname "$0")/test-lib.sh"

DUMP="$LP_BUILD/t/model_dump"
$PYTHON -c 'import torch, transformers, peft, safetensors' 2>/dev/null &&
	test_set_prereq PY_TORCH

CASES="mha gqa dyn l3 yarn"    # make_models.py's CASES; yarn has no Meta copy

# cmp-rope.py MINE REF: inv_freq within 1 ulp (torch's pow is accurate to
# 1 ulp, ours is correctly rounded), the attention factor to 1e-12.
cat >cmp-rope.py <<'PYEOF'
import sys
import numpy as np
def load(path):
    vals, att = [], None
    for line in open(path):
        if line.startswith("attention_factor"):
            att = float(line.split()[1])
        else:
            vals.append(np.float32(line))
    return np.array(vals, dtype=np.float32), att
a, aa = load(sys.argv[1])
b, ba = load(sys.argv[2])
if len(a) != len(b) or aa is None or abs(aa - ba) > 1e-12 * abs(ba):
    sys.exit("%s: %d values, attention factor %r; %s: %d, %r" % (sys.argv[1], len(a), aa,
             sys.argv[2], len(b), ba))
ulp = np.abs(a.view(np.int32).astype(np.int64) - b.view(np.int32).astype(np.int64))
if ulp.max() > 1:
    i = int(ulp.argmax())
    sys.exit("inv_freq[%d]: %r here, %r in transformers (%d ulp)" % (i, a[i], b[i], ulp[i]))
PYEOF

test_expect_success 'unit tests: zip, pickle, configs, rope, permutation, names' '
	"$LP_BUILD/t/model_files" >unit.tap &&
	! grep "^not ok" unit.tap &&
	grep -q "^1\.\.[1-9]" unit.tap || { cat unit.tap; false; }
'

test_expect_success PY_TORCH 'make_models.py builds the models' '
	"$PYTHON" "$SRC_DIR/t/ref/make_models.py" models >make.log 2>&1 ||
		{ cat make.log; false; }
'

for c in $CASES; do
	for l in hf hf-sharded hf-v4 bin bin-sharded; do
		test_expect_success PY_TORCH "$c/$l: tensors as safetensors reads hf/" "
			\"\$DUMP\" tensors models/$c/$l >out &&
			test_cmp models/$c/ref-tensors.txt out
		"
	done
	[ $c = yarn ] && continue
	for l in meta meta2; do
		test_expect_success PY_TORCH "$c/$l: Meta shards join, rename, unpermute to hf/" "
			\"\$DUMP\" tensors models/$c/$l >out &&
			test_cmp models/$c/ref-meta.txt out
		"
	done
done

test_expect_success PY_TORCH 'layouts are told apart' '
	for l in hf hf-sharded bin bin-sharded meta meta2; do
		"$DUMP" layout models/gqa/$l || return 1
	done >out &&
	cat >expect <<-\EOF &&
	safetensors 1
	safetensors (sharded) 9
	pytorch bin 1
	pytorch bin (sharded) 2
	meta 1
	meta 2
	EOF
	test_cmp expect out
'

test_expect_success PY_TORCH 'Meta tensors are made on use and given back' '
	"$DUMP" tensors models/l3/meta2 >a &&
	"$DUMP" tensors models/l3/meta2 >b &&
	test_cmp a b
'

for c in $CASES; do
	test_expect_success PY_TORCH "$c: config.json of transformers 5 and 4" "
		\"\$DUMP\" config models/$c/hf >out5 &&
		test_cmp models/$c/ref-config.txt out5 &&
		\"\$DUMP\" config models/$c/hf-v4 >out4 &&
		test_cmp models/$c/ref-config.txt out4
	"
	test_expect_success PY_TORCH "$c: rotary inv_freq as transformers computes it" "
		\"\$DUMP\" rope models/$c/hf >rope &&
		\"\$PYTHON\" cmp-rope.py rope models/$c/ref-rope.txt &&
		\"\$DUMP\" rope models/$c/hf-v4 >rope4 &&
		\"\$PYTHON\" cmp-rope.py rope4 models/$c/ref-rope.txt &&
		seq=\$(sed -n 's/^max_pos //p' models/$c/ref-config.txt) &&
		\"\$DUMP\" rope models/$c/hf \$((2 * seq + 3)) >long &&
		\"\$PYTHON\" cmp-rope.py long models/$c/ref-rope-long.txt
	"
	test_expect_success PY_TORCH "$c: PEFT adapter (safetensors and bin), checked against the base" "
		\"\$DUMP\" adapter models/$c/adapter models/$c/hf >out &&
		test_cmp models/$c/ref-adapter.txt out &&
		\"\$DUMP\" adapter models/$c/adapter-bin models/$c/bin >out &&
		test_cmp models/$c/ref-adapter.txt out
	"
done

test_expect_success PY_TORCH 'rotary settings of real models (head_dim 64 to 128)' '
	for d in models/rope-*; do
		"$DUMP" rope $d/config.json >rope &&
		"$PYTHON" cmp-rope.py rope $d/ref-rope.txt &&
		"$DUMP" rope $d/config.json 20000 >long &&
		"$PYTHON" cmp-rope.py long $d/ref-rope-long.txt || { echo "in $d"; return 1; }
	done
'

# Meta's params.json: the MLP width from Meta's formula, vocab_size -1 from
# the embedding, use_scaled_rope as llama3; the shape fields agree with hf/.
test_expect_success PY_TORCH 'params.json reads to the same shape as config.json' '
	fields="^(hidden_size|n_layers|n_heads|n_kv_heads|head_dim|intermediate_size|vocab_size|rms_norm_eps|rope_theta) " &&
	for c in mha gqa dyn l3; do
		"$DUMP" config models/$c/meta2 | grep -E "$fields" >out &&
		grep -E "$fields" models/$c/ref-config.txt >expect &&
		test_cmp expect out || return 1
	done &&
	grep "\"vocab_size\": -1" models/mha/meta/params.json &&
	grep "\"use_scaled_rope\": true" models/l3/meta/params.json &&
	"$DUMP" config models/l3/meta | grep "^rope_type llama3" &&
	"$DUMP" rope models/l3/meta >rope &&
	"$PYTHON" cmp-rope.py rope models/l3/ref-rope.txt
'

# ---- errors name what mismatches ----

# edit-json FILE PYTHON-EXPR-ON-d: rewrite a JSON file
edit_json() {
	"$PYTHON" - "$1" "$2" <<-\PYEOF
	import json, sys
	d = json.load(open(sys.argv[1]))
	exec(sys.argv[2])
	json.dump(d, open(sys.argv[1], "w"))
	PYEOF
}

test_expect_success PY_TORCH 'a config that disagrees with a tensor shape' '
	cp -r models/gqa/hf bad &&
	edit_json bad/config.json "d[\"intermediate_size\"] = 99" &&
	test_must_fail "$DUMP" tensors bad 2>err &&
	test_grep "bad: model.layers.0.mlp.gate_proj.weight: shape (100, 48), config says (99, 48)" err
'

test_expect_success PY_TORCH 'a missing tensor' '
	rm -rf bad && cp -r models/mha/hf bad &&
	edit_json bad/config.json "d[\"num_hidden_layers\"] = 3" &&
	test_must_fail "$DUMP" tensors bad 2>err &&
	test_grep "tensor model.layers.2.self_attn.q_proj.weight is missing" err
'

test_expect_success PY_TORCH 'an unexpected tensor' '
	rm -rf bad && mkdir bad && cp models/mha/hf/config.json bad &&
	"$PYTHON" -c "
from safetensors.torch import load_file, save_file
import torch
t = load_file(\"models/mha/hf/model.safetensors\")
t[\"model.layers.0.self_attn.q_proj.bias\"] = torch.zeros(64)
save_file(t, \"bad/model.safetensors\")" &&
	test_must_fail "$DUMP" tensors bad 2>err &&
	test_grep "unexpected tensor model.layers.0.self_attn.q_proj.bias" err
'

test_expect_success PY_TORCH 'integer and unknown dtypes' '
	rm -rf bad && mkdir bad && cp models/mha/hf/config.json bad &&
	"$PYTHON" -c "
import torch
from safetensors.torch import load_file
t = load_file(\"models/mha/hf/model.safetensors\")
t[\"model.norm.weight\"] = t[\"model.norm.weight\"].to(torch.int64)
torch.save(t, \"bad/pytorch_model.bin\")" &&
	test_must_fail "$DUMP" tensors bad 2>err &&
	test_grep "model.norm.weight: dtype i64 is not one of f32, f16, bf16" err &&
	rm bad/pytorch_model.bin &&
	"$PYTHON" -c "
import torch
from safetensors.torch import load_file
t = load_file(\"models/mha/hf/model.safetensors\")
t[\"model.norm.weight\"] = t[\"model.norm.weight\"].to(torch.complex64)
torch.save(t, \"bad/pytorch_model.bin\")" &&
	test_must_fail "$DUMP" tensors bad 2>err &&
	test_grep "refusing global .torch ComplexFloatStorage." err
'

test_expect_success PY_TORCH 'the vocabulary against a tokenizer piece count' '
	"$DUMP" vocab models/gqa/hf 300 &&
	"$DUMP" vocab models/gqa/hf 299 --allow-extra &&
	test_must_fail "$DUMP" vocab models/gqa/hf 299 2>err &&
	test_grep "vocabulary mismatch: the tokenizer has 299 pieces, the model.s vocabulary (embedding rows) is 300" err &&
	test_must_fail "$DUMP" vocab models/gqa/hf 301 --allow-extra 2>err &&
	test_grep "tokens past it have no embedding" err
'

test_expect_success PY_TORCH 'a shard the index names is missing' '
	rm -rf bad && cp -r models/gqa/hf-sharded bad &&
	rm bad/model-00003-of-00009.safetensors &&
	test_must_fail "$DUMP" tensors bad 2>err &&
	test_grep "model-00003-of-00009.safetensors: No such file" err
'

test_expect_success PY_TORCH 'an index entry pointing at the wrong shard' '
	rm -rf bad && cp -r models/gqa/bin-sharded bad &&
	edit_json bad/pytorch_model.bin.index.json \
		"d[\"weight_map\"][\"model.norm.weight\"] = \"pytorch_model-00001-of-00002.bin\"" &&
	test_must_fail "$DUMP" tensors bad 2>err &&
	test_grep "tensor model.norm.weight is not in pytorch_model-00001-of-00002.bin" err
'

test_expect_success PY_TORCH 'Meta shards: a gap, replicated norms that differ, a name in one shard only' '
	rm -rf bad && cp -r models/gqa/meta2 bad &&
	mv bad/consolidated.01.pth bad/consolidated.02.pth &&
	test_must_fail "$DUMP" tensors bad 2>err &&
	test_grep "some are missing" err &&
	rm -rf bad && cp -r models/gqa/meta2 bad &&
	"$PYTHON" -c "
import torch
p = \"bad/consolidated.01.pth\"
sd = torch.load(p, weights_only=True)
sd[\"norm.weight\"] = sd[\"norm.weight\"] * 2
torch.save(sd, p)" &&
	test_must_fail "$DUMP" tensors bad 2>err &&
	test_grep "tensor .norm.weight. should be the same in every shard" err &&
	rm -rf bad && cp -r models/gqa/meta2 bad &&
	"$PYTHON" -c "
import torch
p = \"bad/consolidated.01.pth\"
sd = torch.load(p, weights_only=True)
sd[\"layers.0.attention.wq.bias\"] = torch.zeros(24)
torch.save(sd, p)" &&
	test_must_fail "$DUMP" tensors bad 2>err &&
	test_grep "consolidated.01.pth: tensor .layers.0.attention.wq.bias. is not in consolidated.00.pth" err
'

test_expect_success PY_TORCH 'unsupported config features are refused by name' '
	rm -rf bad && cp -r models/gqa/hf bad &&
	edit_json bad/config.json "d[\"rope_parameters\"] = {\"rope_type\": \"longrope\", \"rope_theta\": 1e4}" &&
	test_must_fail "$DUMP" config bad 2>err &&
	test_grep "rope type .longrope. is not supported" err &&
	edit_json bad/config.json "d[\"rope_parameters\"] = None; d[\"attention_bias\"] = True" &&
	test_must_fail "$DUMP" config bad 2>err &&
	test_grep "attention_bias is true" err &&
	edit_json bad/config.json "d[\"attention_bias\"] = False; d[\"rope_parameters\"] = {\"rope_type\": \"llama3\", \"factor\": 8}" &&
	test_must_fail "$DUMP" config bad 2>err &&
	test_grep "rope_parameters: low_freq_factor is missing" err
'

test_expect_success PY_TORCH 'an adapter for another model' '
	test_must_fail "$DUMP" adapter models/gqa/adapter models/mha/hf 2>err &&
	test_grep "model.layers.0.mlp.down_proj: lora_B @ lora_A is (48, 100), the base weight model.layers.0.mlp.down_proj.weight is (64, 172)" err
'

test_expect_success PY_TORCH 'an adapter with a lora_A but no lora_B, or another rank' '
	rm -rf bad && cp -r models/mha/adapter bad &&
	"$PYTHON" -c "
from safetensors.torch import load_file, save_file
p = \"bad/adapter_model.safetensors\"
t = load_file(p)
del t[\"base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight\"]
save_file(t, p)" &&
	test_must_fail "$DUMP" adapter bad 2>err &&
	test_grep "model.layers.1.self_attn.v_proj has a lora_A but no lora_B" err &&
	rm -rf bad && cp -r models/mha/adapter bad &&
	edit_json bad/adapter_config.json "d[\"r\"] = 8" &&
	test_must_fail "$DUMP" adapter bad 2>err &&
	test_grep "model.layers.0.mlp.gate_proj: lora_A is (4, 64) and lora_B (172, 4), but adapter_config.json gives it rank 8" err
'

# ---- no Python needed ----

test_expect_success 'a directory without a model' '
	mkdir empty &&
	test_must_fail "$DUMP" tensors empty 2>err &&
	test_grep "empty: no model here: expected config.json with model.safetensors" err &&
	test_must_fail "$DUMP" tensors nowhere 2>err &&
	test_grep "nowhere: No such file or directory" err
'

test_expect_success 'a config.json that is not JSON, or lacks a field' '
	mkdir cfg &&
	echo "{\"hidden_size\": 8," >cfg/config.json &&
	: >cfg/model.safetensors &&
	test_must_fail "$DUMP" tensors cfg 2>err &&
	test_grep "cfg: config.json: config is not valid JSON" err &&
	echo "{\"hidden_size\": 8, \"num_attention_heads\": 2}" >cfg/config.json &&
	test_must_fail "$DUMP" tensors cfg 2>err &&
	test_grep "cfg: config.json: num_hidden_layers is missing" err
'

test_expect_success 'a weights file that is neither safetensors nor a zip' '
	echo "{\"hidden_size\": 8, \"num_attention_heads\": 2, \"num_hidden_layers\": 1, \"intermediate_size\": 4, \"vocab_size\": 4}" >cfg/config.json &&
	echo garbage >cfg/model.safetensors &&
	test_must_fail "$DUMP" tensors cfg 2>err &&
	test_grep "cfg: model.safetensors: " err &&
	rm cfg/model.safetensors &&
	printf "PK\\003\\004 truncated" >cfg/pytorch_model.bin &&
	test_must_fail "$DUMP" tensors cfg 2>err &&
	test_grep "cfg: pytorch_model.bin: zip end record not found" err
'

test_done
