#!/usr/bin/env python3
"""train_ref.py: the reference side of lora-train's differential tests.

    train_ref.py make DIR [--vocab V] [--tied] [--save] [--resize N] [--sft]
                 [--targets a,b] [--records N] [--len BLOCK] [--hidden C]
                 [--layers L] [--inter I] [--heads H] [--kv KVH]
        DIR/base/      a random LlamaForCausalLM (hidden 48, 3 layers, 4 heads,
                       2 kv heads, f32), save_pretrained
        DIR/init/      a PEFT adapter on it with B != 0 (init_lora_weights=False),
                       r 8, alpha 16, and with --save modules_to_save
                       embed_tokens,lm_head on a vocabulary resized to --resize
        DIR/data.jsonl examples {"input_ids", "labels"}: pt blocks of 16 (no
                       labels: they are the ids) or, with --sft, prompts of
                       varied length masked with -100 and targets
    train_ref.py train DIR OUT [--full] [Trainer settings as lora-train's flags]
        runs transformers' Trainer (sequential sampler, the data padded on the
        right) on DIR/init (or, --full, every weight of DIR/base) and writes
        OUT/ (the adapter or model), OUT/grads.safetensors (the first step's
        gradients, before clipping, under the saved names) and OUT/log.jsonl
        (loss, grad_norm, learning_rate per step), OUT/timing.json
        (the Trainer's train_runtime)
    train_ref.py logits BASE ADAPTER IDS      PEFT's logits for each line of
                       ids, as llama_logits prints them
    train_ref.py cmp A B ATOL RTOL            two safetensors files (or two
                       logits texts) agree: |a - b| <= ATOL + RTOL |b|
    train_ref.py cmplog OURS.jsonl REF.jsonl RTOL   lora-train's metrics and the
                       Trainer's log agree step by step (loss, grad_norm, lr, epoch)
    train_ref.py loadcheck BASE ADAPTER       PEFT loads the adapter, every
                       tensor of the file lands in the model unchanged
    train and logits take --quantize nf4|fp4|int8: the base loaded through
    transformers' BitsAndBytesConfig (4-bit: block 64, double quantization,
    f32 compute; int8: LLM.int8 with its default threshold 6.0), as QLoRA
    users load it; logits --dequantized instead replaces each quantized
    Linear by a plain one holding bitsandbytes' dequantized f32 weight.

Needs torch, transformers, peft, safetensors.
"""
import json
import math
import os
import random
import sys

import torch
from safetensors.torch import load_file, save_file

torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))


def argval(args, name, default, conv=str):
    if name in args:
        return conv(args[args.index(name) + 1])
    return default


def load_base(path, args):
    """The base model, quantized by bitsandbytes if args say --quantize."""
    from transformers import LlamaForCausalLM
    q = argval(args, "--quantize", None)
    if q is None:
        return LlamaForCausalLM.from_pretrained(path, dtype=torch.float32)
    import logging
    import bitsandbytes as bnb
    import bitsandbytes.functional as bF
    from transformers import BitsAndBytesConfig
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    logging.getLogger("bitsandbytes.autograd._functions").setLevel(logging.ERROR)
    if q == "int8":
        bc = BitsAndBytesConfig(load_in_8bit=True)
    else:
        bc = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=q,
                                bnb_4bit_use_double_quant=True,
                                bnb_4bit_compute_dtype=torch.float32)
    model = LlamaForCausalLM.from_pretrained(path, quantization_config=bc, dtype=torch.float32,
                                             device_map="cpu")
    for mod in model.modules():
        # the repacked AVX-512 path wants out_features % 32 == 0; the
        # portable path dequantizes and multiplies, as the algorithm says
        if isinstance(mod, bnb.nn.Linear4bit):
            mod.support_avx512bf16_for_cpu = False
    if "--dequantized" in args:
        for name, mod in list(model.named_modules()):
            for cname, child in list(mod.named_children()):
                if isinstance(child, bnb.nn.Linear4bit):
                    w = bF.dequantize_4bit(child.weight.data, child.weight.quant_state).float()
                elif isinstance(child, bnb.nn.Linear8bitLt):
                    w = torch.ops.bitsandbytes.int8_vectorwise_dequant(
                        child.weight.data, child.weight.SCB).float()
                else:
                    continue
                lin = torch.nn.Linear(w.shape[1], w.shape[0], bias=False)
                lin.weight.data = w
                setattr(mod, cname, lin)
    return model


def make(d, args):
    from transformers import LlamaConfig, LlamaForCausalLM
    from peft import LoraConfig, get_peft_model
    torch.manual_seed(1)
    rnd = random.Random(2)
    vocab = argval(args, "--vocab", 300, int)
    blen = argval(args, "--len", 16, int)
    cfg = LlamaConfig(hidden_size=argval(args, "--hidden", 48, int),
                      num_attention_heads=argval(args, "--heads", 4, int),
                      num_key_value_heads=argval(args, "--kv", 2, int),
                      intermediate_size=argval(args, "--inter", 100, int), vocab_size=vocab,
                      num_hidden_layers=argval(args, "--layers", 3, int),
                      tie_word_embeddings="--tied" in args,
                      max_position_embeddings=max(64, blen),
                      rms_norm_eps=1e-5, pad_token_id=0, bos_token_id=1, eos_token_id=2)
    model = LlamaForCausalLM(cfg).float()
    os.makedirs(d, exist_ok=True)
    model.save_pretrained(os.path.join(d, "base"))
    V = vocab
    save = None
    if "--save" in args:
        save = ["embed_tokens", "lm_head"]
        V = argval(args, "--resize", vocab, int)
        if V != vocab:
            model.resize_token_embeddings(V, mean_resizing=False)
    targets = argval(args, "--targets", "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj")
    lc = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=targets.split(","),
                    modules_to_save=save, init_lora_weights=False, task_type="CAUSAL_LM")
    pm = get_peft_model(model, lc)
    with torch.no_grad():  # B of the size a few steps of training give
        for n, p in pm.named_parameters():
            if "lora_B" in n:
                p.mul_(0.1)
    pm.save_pretrained(os.path.join(d, "init"))
    n = argval(args, "--records", 12, int)
    with open(os.path.join(d, "data.jsonl"), "w") as f:
        for i in range(n):
            if "--sft" in args:
                plen, tlen = rnd.randint(2, 9), rnd.randint(2, 10)
                ids = [1] + [rnd.randrange(3, V) for _ in range(plen + tlen - 1)] + [2]
                labels = [-100] * plen + ids[plen:]
                f.write(json.dumps({"input_ids": ids, "labels": labels}) + "\n")
            else:
                ids = [rnd.randrange(0, V) for _ in range(blen)]
                f.write(json.dumps({"input_ids": ids}) + "\n")


def read_data(path):
    out = []
    for line in open(path):
        r = json.loads(line)
        labels = r.get("labels", r["input_ids"])
        out.append({"input_ids": r["input_ids"], "labels": labels})
    return out


def collate(rows):
    T = max(len(r["input_ids"]) for r in rows)
    ids = torch.zeros(len(rows), T, dtype=torch.long)
    labels = torch.full((len(rows), T), -100, dtype=torch.long)
    mask = torch.zeros(len(rows), T, dtype=torch.long)
    for i, r in enumerate(rows):
        n = len(r["input_ids"])
        ids[i, :n] = torch.tensor(r["input_ids"])
        labels[i, :n] = torch.tensor(r["labels"])
        mask[i, :n] = 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def saved_name(n):
    """A parameter's name in PEFT's saved file."""
    n = n.replace(".lora_A.default.", ".lora_A.").replace(".lora_B.default.", ".lora_B.")
    return n.replace(".modules_to_save.default.", ".")


def train(d, out, args):
    from transformers import (LlamaForCausalLM, Trainer, TrainerCallback,
                              TrainingArguments)
    from peft import PeftModel
    full = "--full" in args
    model = load_base(os.path.join(d, "base"), args)
    if not full:
        init = os.path.join(d, "init")
        ac = json.load(open(os.path.join(init, "adapter_config.json")))
        st = load_file(os.path.join(init, "adapter_model.safetensors"))
        emb = st.get("base_model.model.model.embed_tokens.weight")
        if emb is not None and emb.shape[0] != model.config.vocab_size:
            model.resize_token_embeddings(emb.shape[0], mean_resizing=False)
        model = PeftModel.from_pretrained(model, init, is_trainable=True)
        del ac
    grads = {}

    class Grab(TrainerCallback):
        def on_pre_optimizer_step(self, a, state, control, **kw):
            if state.global_step == 0:
                for n, p in model.named_parameters():
                    if p.requires_grad and p.grad is not None:
                        grads[saved_name(n)] = p.grad.detach().clone()

    warm = argval(args, "--warmup-steps", None, int)
    if warm is None:
        warm = argval(args, "--warmup-ratio", 0.0, float)
    sched = argval(args, "--lr-schedule", "cosine")
    ta = TrainingArguments(
        output_dir=os.path.join(out, "hf"), per_device_train_batch_size=argval(args, "-b", 1, int),
        gradient_accumulation_steps=argval(args, "--grad-accum", 1, int),
        learning_rate=argval(args, "--lr", 2e-4, float),
        weight_decay=argval(args, "--weight-decay", 0.0, float),
        adam_beta1=argval(args, "--adam-beta1", 0.9, float),
        adam_beta2=argval(args, "--adam-beta2", 0.999, float),
        adam_epsilon=argval(args, "--adam-eps", 1e-8, float),
        lr_scheduler_type="constant_with_warmup" if sched == "constant" else sched,
        warmup_steps=warm, max_grad_norm=argval(args, "--max-grad-norm", 1.0, float),
        max_steps=argval(args, "--max-steps", -1, int),
        num_train_epochs=argval(args, "--epochs", 1.0, float), logging_steps=1,
        save_strategy="no", report_to="none", use_cpu=True, seed=42, optim="adamw_torch",
        train_sampling_strategy="sequential", remove_unused_columns=False, disable_tqdm=True,
        dataloader_num_workers=0)
    tr = Trainer(model=model, args=ta, train_dataset=read_data(os.path.join(d, "data.jsonl")),
                 data_collator=collate, callbacks=[Grab()])
    out_metrics = tr.train().metrics
    os.makedirs(out, exist_ok=True)
    save_file({k: v.contiguous() for k, v in grads.items()}, os.path.join(out, "grads.safetensors"),
              metadata={"format": "pt"})
    if full:
        sd = {k: v.contiguous() for k, v in model.state_dict().items()}
        if model.config.tie_word_embeddings:
            sd.pop("lm_head.weight", None)
        save_file(sd, os.path.join(out, "model.safetensors"), metadata={"format": "pt"})
    else:
        model.save_pretrained(out)
    with open(os.path.join(out, "timing.json"), "w") as f:
        json.dump({"train_runtime": out_metrics["train_runtime"]}, f)
    with open(os.path.join(out, "log.jsonl"), "w") as f:
        for h in tr.state.log_history:
            if "loss" in h:
                f.write(json.dumps(h) + "\n")


def logits(base, adapter, ids_path, args):
    from peft import PeftModel
    model = load_base(base, args)
    st = load_file(os.path.join(adapter, "adapter_model.safetensors"))
    emb = st.get("base_model.model.model.embed_tokens.weight")
    if emb is not None and emb.shape[0] != model.config.vocab_size:
        model.resize_token_embeddings(emb.shape[0], mean_resizing=False)
    model = PeftModel.from_pretrained(model, adapter).eval()
    with torch.no_grad():
        for line in open(ids_path):
            ids = [int(x) for x in line.split()]
            if not ids:
                continue
            out = model(input_ids=torch.tensor([ids])).logits[0]
            for row in out:
                print(" ".join("%.9g" % x for x in row.tolist()))


def load_any(path):
    if path.endswith(".safetensors"):
        return load_file(path)
    rows = [[float(x) for x in l.split()] for l in open(path) if l.strip()]
    return {"logits": torch.tensor(rows)}


def cmp(a, b, atol, rtol):
    A, B = load_any(a), load_any(b)
    if sorted(A) != sorted(B):
        print("names differ: only in %s: %s; only in %s: %s" % (
            a, sorted(set(A) - set(B))[:5], b, sorted(set(B) - set(A))[:5]))
        return 1
    bad = 0
    worst = 0.0
    for k in sorted(A):
        x, y = A[k].double(), B[k].double()
        if x.shape != y.shape:
            print("%s: shape %s vs %s" % (k, tuple(x.shape), tuple(y.shape)))
            bad += 1
            continue
        excess = ((x - y).abs() - (atol + rtol * y.abs())).max().item() if x.numel() else -1
        err = (x - y).abs().max().item() if x.numel() else 0
        worst = max(worst, err)
        if excess > 0:
            print("%s: max |diff| %.3g over atol %g + rtol %g (max |b| %.3g)" % (
                k, err, atol, rtol, y.abs().max().item()))
            bad += 1
    print("# %d tensors, max |diff| %.3g, %d beyond tolerance" % (len(A), worst, bad))
    return 1 if bad else 0


def cmplog(ours, ref, rtol):
    a = [json.loads(l) for l in open(ours)]
    b = [json.loads(l) for l in open(ref)]
    if len(a) != len(b):
        print("%d steps logged, the Trainer logged %d" % (len(a), len(b)))
        return 1
    bad = 0
    for x, y in zip(a, b):
        for k, kr in (("loss", "loss"), ("grad_norm", "grad_norm"), ("lr", "learning_rate"),
                      ("epoch", "epoch")):
            u, v = float(x[k]), float(y[kr])
            if abs(u - v) > rtol * abs(v) + 1e-12:
                print("step %d: %s %.9g, the Trainer's %.9g" % (x["step"], k, u, v))
                bad += 1
    print("# %d steps compared, %d differences beyond rtol %g" % (len(a), bad, rtol))
    return 1 if bad else 0


def loadcheck(base, adapter):
    from transformers import LlamaForCausalLM
    from peft import PeftModel
    model = LlamaForCausalLM.from_pretrained(base, dtype=torch.float32)
    st = load_file(os.path.join(adapter, "adapter_model.safetensors"))
    emb = st.get("base_model.model.model.embed_tokens.weight")
    if emb is not None and emb.shape[0] != model.config.vocab_size:
        model.resize_token_embeddings(emb.shape[0], mean_resizing=False)
    pm = PeftModel.from_pretrained(model, adapter)
    params = {saved_name(n): p for n, p in pm.named_parameters()}
    for k, v in st.items():
        if k not in params:
            print("not loaded: %s" % k)
            return 1
        if not torch.equal(params[k].detach(), v):
            print("loaded differently: %s" % k)
            return 1
    print("# %d tensors loaded" % len(st))
    return 0


def main():
    a = sys.argv[1:]
    if not a:
        print(__doc__)
        return 2
    if a[0] == "make":
        make(a[1], a[2:])
    elif a[0] == "train":
        train(a[1], a[2], a[3:])
    elif a[0] == "logits":
        logits(a[1], a[2], a[3], a[4:])
    elif a[0] == "cmp":
        return cmp(a[1], a[2], float(a[3]), float(a[4]))
    elif a[0] == "cmplog":
        return cmplog(a[1], a[2], float(a[3]))
    elif a[0] == "loadcheck":
        return loadcheck(a[1], a[2])
    else:
        print(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
