#!/usr/bin/env python3
"""processors.py: libcommon/generate/sampling.c and beam.c against Hugging Face.

    processors.py procs    DRIVER   each LogitsProcessor class alone
    processors.py pipeline DRIVER   the list generate() builds for a config
    processors.py search   DRIVER   greedy and beam search on a fake model
    processors.py group    DRIVER   group beam search on the fake model

DRIVER is the unit program built from t/unit/sampling.c; it is run as
"DRIVER proc" or "DRIVER search" with a text script on stdin (see there).

Processed rows must agree with transformers' own classes: the same -inf
(and inf, NaN) positions, other values within 1e-6 * max(1, |x|). Searches
must give the same token sequences; beam scores agree within 1e-5.

The fake model: logits are a fixed function of the token prefix (a seeded
hash, exact in f32), plus EOS_BIAS * len(ids) on the eos ids, so sequences
end at different lengths. It is a tiny PreTrainedModel + GenerationMixin,
so greedy and beam search run through generate() itself. transformers 5
moved group beam search to a Hub repository (custom_generate); without the
network it is checked against group_beam_search() below, a transcription of
that algorithm (BeamSearchScorer + BeamHypotheses + Hamming diversity) run
as generate(custom_generate=...), so it sees the same processor list and
stopping criteria as the Hub code would.
"""
import math
import random
import subprocess
import sys
import warnings

import numpy as np
import torch
from transformers import GenerationMixin, PretrainedConfig, PreTrainedModel
from transformers import generation as G
from transformers.modeling_outputs import CausalLMOutputWithPast

M64 = (1 << 64) - 1
FAILS = []


def fail(msg):
    FAILS.append(msg)
    print("# " + msg)


# ---- the fake model ----

def mix(x):
    x = (x + 0x9E3779B97F4A7C15) & M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


def fake_logits(ids, vocab, seed, eos_bias, eos):
    h = seed & M64
    for t in ids:
        h = mix(h ^ (t & 0xFFFFFFFF))
    out = []
    for v in range(vocab):
        x = mix(h ^ ((v * 0xD1B54A32D192ED03) & M64))
        val = (x >> 40) * 2.0 ** -21 - 4.0
        if v in eos:
            val += eos_bias * len(ids)
        out.append(val)
    return out


class FakeConfig(PretrainedConfig):
    model_type = "lp_fake"

    def __init__(self, vocab_size=24, fake_seed=1, eos_bias=0.0, eos=(), **kw):
        self.fake_seed = fake_seed
        self.eos_bias = eos_bias
        self.eos = list(eos)
        super().__init__(vocab_size=vocab_size, **kw)


class FakeLM(PreTrainedModel, GenerationMixin):
    config_class = FakeConfig

    def __init__(self, config):
        super().__init__(config)
        self.calls = 0
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, input_ids=None, **kw):
        c = self.config
        self.calls += 1
        rows = [fake_logits(r, c.vocab_size, c.fake_seed, c.eos_bias, c.eos)
                for r in input_ids.tolist()]
        logits = torch.zeros(input_ids.shape[0], input_ids.shape[1], c.vocab_size)
        logits[:, -1] = torch.tensor(rows, dtype=torch.float64).float()
        return CausalLMOutputWithPast(logits=logits)

    def prepare_inputs_for_generation(self, input_ids, **kw):
        return {"input_ids": input_ids}


def fake_model(vocab=24, seed=1, eos_bias=0.0, eos=()):
    return FakeLM(FakeConfig(vocab_size=vocab, fake_seed=seed, eos_bias=eos_bias,
                             eos=eos)).eval()


# ---- talking to the driver ----

def run_driver(driver, mode, script):
    p = subprocess.run([driver, mode], input=script, capture_output=True, text=True)
    if p.returncode != 0:
        sys.stderr.write(p.stderr)
        raise SystemExit(f"driver {mode} failed (exit {p.returncode})")
    return p.stdout.splitlines()


def f32(x):
    return format(float(np.float32(x)), ".9g")


def setting(name, value):
    if isinstance(value, bool):
        value = "true" if value else "false"
    elif isinstance(value, list):
        value = str(value).replace(" ", "")
    return f"set {name} {value}\n"


def close(a, b, tol=1e-6):
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if math.isinf(a) or math.isinf(b):
        return a == b
    return abs(a - b) <= tol * max(1.0, abs(a), abs(b))


# ---- cases of processed rows ----

CLASS_NAME = {
    "RepetitionPenaltyLogitsProcessor": "repetition_penalty",
    "NoRepeatNGramLogitsProcessor": "no_repeat_ngram_size",
    "NoBadWordsLogitsProcessor": "bad_words_ids",
    "MinLengthLogitsProcessor": "min_length",
    "MinNewTokensLengthLogitsProcessor": "min_new_tokens",
    "SuppressTokensLogitsProcessor": "suppress_tokens",
    "SuppressTokensAtBeginLogitsProcessor": "begin_suppress_tokens",
    "TemperatureLogitsWarper": "temperature",
    "TopKLogitsWarper": "top_k",
    "TopPLogitsWarper": "top_p",
    "MinPLogitsWarper": "min_p",
    "TypicalLogitsWarper": "typical_p",
    "EpsilonLogitsWarper": "epsilon_cutoff",
    "EtaLogitsWarper": "eta_cutoff",
    "LogitNormalization": "renormalize_logits",
}


def random_rows(r, B, V, neg_inf=0.0, ties=False):
    rows = np.array([[r.gauss(0, 2) for _ in range(V)] for _ in range(B)], dtype=np.float32)
    if ties:
        rows = np.round(rows * 2) / 2
    for b in range(B):
        for v in range(V):
            if r.random() < neg_inf:
                rows[b, v] = -np.inf
        if np.all(np.isinf(rows[b])):
            rows[b, 0] = 0
    return rows


class Case:
    """B rows of one length; HF processors and our settings."""

    def __init__(self, what, sets, procs, ids, rows, prompt_len):
        self.what, self.sets, self.procs = what, sets, procs
        self.ids, self.rows, self.prompt_len = ids, rows, prompt_len

    def script(self):
        s = "config\n" + "".join(setting(k, v) for k, v in self.sets.items())
        s += f"prompt_len {self.prompt_len}\n"
        for ids, row in zip(self.ids.tolist(), self.rows):
            s += f"row {len(ids)} {' '.join(map(str, ids))} {len(row)} "
            s += " ".join(f32(x) for x in row) + "\n"
        return s + "apply\n"

    def expected(self):
        scores = torch.tensor(self.rows)
        for p in self.procs:
            scores = p(self.ids, scores)
        return scores.numpy()

    def names(self):
        return ",".join(CLASS_NAME[type(p).__name__] for p in self.procs) or "(none)"


def compare_rows(cases, driver):
    out = run_driver(driver, "proc", "".join(c.script() for c in cases))
    pos = 0
    for c in cases:
        want = c.expected()
        listed = out[pos].split(" ", 1)[1]
        pos += 1
        if listed != c.names():
            fail(f"{c.what}: processor list {listed}, HF {c.names()}")
        for b in range(len(c.rows)):
            got = [float(x) for x in out[pos].split()]
            pos += 1
            bad = [v for v in range(len(got)) if not close(float(want[b, v]), got[v])]
            if bad:
                v = bad[0]
                fail(f"{c.what}: row {b} differs at {len(bad)} tokens, first {v}: "
                     f"ours {got[v]!r} HF {float(want[b, v])!r}")
    return len(cases)


def single_cases(seed):
    r = random.Random(seed)
    cases = []

    def add(what, sets, procs, B=3, V=None, n=None, small_ids=False, neg_inf=0.0,
            ties=False, prompt_len=None):
        V = V or r.randint(20, 90)
        n = n or r.randint(1, 12)
        hi = 6 if small_ids else V + 3
        ids = torch.tensor([[r.randrange(hi) for _ in range(n)] for _ in range(B)])
        rows = random_rows(r, B, V, neg_inf, ties)
        P = prompt_len if prompt_len is not None else r.randint(1, n)
        cases.append(Case(f"seed {seed} {what}", sets, procs, ids, rows, P))

    for p in (0.7, 1.3, 2.0):
        add(f"repetition_penalty {p}", {"repetition_penalty": p},
            [G.RepetitionPenaltyLogitsProcessor(p)], small_ids=r.random() < 0.5)
    for k in (1, 2, 3, 4):
        add(f"no_repeat_ngram_size {k}", {"no_repeat_ngram_size": k},
            [G.NoRepeatNGramLogitsProcessor(k)], small_ids=True, n=r.randint(1, 14))
    for _ in range(3):
        words = [[r.randrange(6) for _ in range(r.randint(1, 3))] for _ in range(r.randint(1, 5))]
        eos = [r.randrange(6)]
        words.append(eos[:])  # a lone eos is dropped from the bad words
        add(f"bad_words_ids {words}", {"bad_words_ids": words, "eos_token_id": eos},
            [G.NoBadWordsLogitsProcessor(words, eos)], small_ids=True)
    for m in (3, 8):
        eos = [2, 5]
        add(f"min_length {m}", {"min_length": m, "eos_token_id": eos},
            [G.MinLengthLogitsProcessor(m, eos)], n=r.randint(1, 10))
    for k in (2, 5):
        eos = [1]
        P = r.randint(1, 4)
        add(f"min_new_tokens {k}", {"min_new_tokens": k, "eos_token_id": eos},
            [G.MinLengthLogitsProcessor(P + k, eos),   # generate() adds both
             G.MinNewTokensLengthLogitsProcessor(P, k, eos)], n=P + r.randint(0, 6), prompt_len=P)
    sup = [0, 3, 7, 200]
    add("suppress_tokens", {"suppress_tokens": sup}, [G.SuppressTokensLogitsProcessor(sup)])
    for at in (True, False):
        P = 4
        add(f"begin_suppress_tokens at={at}", {"begin_suppress_tokens": [1, 2]},
            [G.SuppressTokensAtBeginLogitsProcessor([1, 2], P)], n=P if at else P + 1, prompt_len=P)

    warp = {"do_sample": True, "top_k": 0}
    for t in (0.3, 0.7, 1.5):
        add(f"temperature {t}", dict(warp, temperature=t), [G.TemperatureLogitsWarper(t)])
    for k, m in ((1, 1), (5, 1), (20, 1), (3, 6)):
        add(f"top_k {k} keep {m}", dict(warp, top_k=k, min_tokens_to_keep=m),
            [G.TopKLogitsWarper(k, min_tokens_to_keep=m)], ties=r.random() < 0.5, neg_inf=0.1)
    for p, m in ((0.1, 1), (0.5, 1), (0.9, 1), (0.99, 1), (0.5, 4), (0.0, 2)):
        add(f"top_p {p} keep {m}", dict(warp, top_p=p, min_tokens_to_keep=m),
            [G.TopPLogitsWarper(p, min_tokens_to_keep=m)], neg_inf=0.1)
    for p, m in ((0.05, 1), (0.2, 1), (0.5, 3)):
        add(f"min_p {p} keep {m}", dict(warp, min_p=p, min_tokens_to_keep=m),
            [G.MinPLogitsWarper(p, min_tokens_to_keep=m)], neg_inf=0.1)
    for p, m in ((0.2, 1), (0.5, 1), (0.9, 1), (0.5, 5)):
        add(f"typical_p {p} keep {m}", dict(warp, typical_p=p, min_tokens_to_keep=m),
            [G.TypicalLogitsWarper(p, min_tokens_to_keep=m)], neg_inf=0.1)
    for e, m in ((1e-3, 1), (1e-2, 1), (5e-2, 1), (0.2, 3)):
        add(f"epsilon_cutoff {e} keep {m}", dict(warp, epsilon_cutoff=e, min_tokens_to_keep=m),
            [G.EpsilonLogitsWarper(e, min_tokens_to_keep=m)], neg_inf=0.1)
    for e, m in ((1e-3, 1), (1e-2, 1), (0.1, 1), (0.3, 4)):
        add(f"eta_cutoff {e} keep {m}", dict(warp, eta_cutoff=e, min_tokens_to_keep=m),
            [G.EtaLogitsWarper(e, min_tokens_to_keep=m)], neg_inf=0.1)
    add("renormalize_logits", {"renormalize_logits": True}, [G.LogitNormalization()], neg_inf=0.1)
    return cases


def mode_procs(driver):
    n = sum(compare_rows(single_cases(seed), driver) for seed in range(1, 7))
    return f"{n} single-processor cases"


# ---- the list generate() builds ----

PIPELINES = [
    dict(do_sample=True, temperature=0.8, top_k=20, top_p=0.9, repetition_penalty=1.2,
         no_repeat_ngram_size=2, eos_token_id=[2], min_new_tokens=3, suppress_tokens=[0],
         bad_words_ids=[[4], [5, 6], [2]]),
    dict(do_sample=True, typical_p=0.9, epsilon_cutoff=3e-3, eta_cutoff=1e-2, min_p=0.02,
         renormalize_logits=True, begin_suppress_tokens=[1, 3], eos_token_id=[2, 3],
         min_length=7, repetition_penalty=0.9),
    dict(do_sample=False, temperature=0.5, top_k=3, top_p=0.5, repetition_penalty=1.5,
         no_repeat_ngram_size=3, eos_token_id=[1], min_new_tokens=2, renormalize_logits=True),
    dict(do_sample=True, num_beams=3, top_k=2, top_p=0.1, eos_token_id=[2, 3], temperature=1.3),
    dict(do_sample=True),
    dict(do_sample=True, top_k=0, temperature=0.6, top_p=0.8, typical_p=0.7),
]


def generate_list(model, ids, kw):
    """The LogitsProcessorList generate() builds, caught by custom_generate."""
    caught = []

    def grab(model, input_ids, logits_processor, stopping_criteria, generation_config, **rest):
        caught.append(logits_processor)
        return input_ids

    model.generate(ids, custom_generate=grab, max_new_tokens=5, use_cache=False,
                   pad_token_id=0, **kw)
    return caught[0]


def mode_pipeline(driver):
    cases = []
    for seed in range(1, 6):
        r = random.Random(100 + seed)
        model = fake_model(vocab=40)
        for k, kw in enumerate(PIPELINES):
            P = r.randint(2, 6)
            n = P + r.randint(0, 5)
            B = kw.get("num_beams", 1)
            prompt = torch.tensor([[r.randrange(8) for _ in range(P)]])
            procs = list(generate_list(model, prompt, kw))
            rows_ids = torch.tensor([prompt[0].tolist() + [r.randrange(8) for _ in range(n - P)]
                                     for _ in range(B + 1)])
            rows = random_rows(r, B + 1, 40, neg_inf=0.05)
            sets = {key: v for key, v in kw.items()}
            cases.append(Case(f"seed {seed} pipeline {k} {kw}", sets, procs, rows_ids, rows, P))
    return f"{compare_rows(cases, driver)} generate() processor lists"


# ---- searches ----

def search_script(kw, vocab, seed, bias, prompt):
    s = "config\n" + "".join(setting(k, v) for k, v in kw.items())
    s += f"fake {vocab} {seed} {bias}\nprompt {' '.join(map(str, prompt))}\n"
    return s


def parse_results(lines):
    res, steps = [], None
    for line in lines:
        f = line.split()
        if f[0] == "result":
            n = int(f[2])
            res.append((list(map(int, f[5:5 + n])), float(f[3])))
        elif f[0] == "steps":
            steps = int(f[1])
    return res, steps


def hf_search(kw, vocab, seed, bias, prompt, custom=None):
    eos = kw.get("eos_token_id", [])
    model = fake_model(vocab, seed, bias, eos)
    ids = torch.tensor([prompt])
    extra = {"custom_generate": custom} if custom else {}
    out = model.generate(ids, use_cache=False, return_dict_in_generate=True,
                         output_scores=True, **kw, **extra)
    P = len(prompt)
    if custom:
        return out, None, model.calls
    if kw.get("num_beams", 1) == 1:
        row = out.sequences[0, P:].tolist()
        pad = kw.get("pad_token_id", eos[0] if eos else None)
        return [(row, None)], pad, model.calls
    res = []
    for i in range(out.sequences.shape[0]):
        n = int((out.beam_indices[i] != -1).sum())
        res.append((out.sequences[i, P:P + n].tolist(), float(out.sequences_scores[i])))
    return res, None, model.calls


def compare_search(what, ours, hf, pad):
    if len(ours) != len(hf):
        fail(f"{what}: {len(ours)} results, HF {len(hf)}")
        return
    for i, ((ot, osc), (ht, hsc)) in enumerate(zip(ours, hf)):
        if hsc is None:  # greedy: HF pads a finished row
            ok = ht[:len(ot)] == ot and all(t == pad for t in ht[len(ot):])
        else:
            ok = ot == ht and close(osc, hsc, 1e-5)
        if not ok:
            fail(f"{what}: result {i}: ours {ot} {osc}, HF {ht} {hsc}")
            return


SEARCHES = [
    dict(),
    dict(repetition_penalty=1.5, no_repeat_ngram_size=2),
    dict(min_new_tokens=5, bad_words_ids=[[4], [6, 7]], suppress_tokens=[9],
         begin_suppress_tokens=[1]),
    dict(renormalize_logits=True, no_repeat_ngram_size=1),
]


def beam_settings(r):
    out = []
    for nb in (2, 3, 4):
        for lp in (0.5, 1.0, 2.0):
            for es in (True, False, "never"):
                kw = dict(num_beams=nb, length_penalty=lp, early_stopping=es,
                          num_return_sequences=r.choice([1, nb]))
                if r.random() < 0.3:
                    kw["repetition_penalty"] = 1.3
                if r.random() < 0.3:
                    kw["no_repeat_ngram_size"] = 2
                if r.random() < 0.2:
                    kw["min_new_tokens"] = 4
                out.append(kw)
    return out


def run_searches(driver, settings, r, custom=None, label="search"):
    script, expect = "", []
    for kw in settings:
        vocab = r.randint(12, 30)
        eos = [2] if custom or r.random() < 0.6 else [2, 3]
        kw = dict(kw, eos_token_id=eos, max_new_tokens=r.randint(6, 14))
        if r.random() < 0.5:
            kw["pad_token_id"] = 0
        seed, bias = r.randrange(1 << 30), r.choice([0.125, 0.25, 0.375])
        prompt = [r.randrange(vocab) for _ in range(r.randint(1, 5))]
        script += search_script(kw, vocab, seed, bias, prompt)
        expect.append((kw,) + hf_search(kw, vocab, seed, bias, prompt, custom))
    lines = run_driver(driver, "search", script)
    chunks, cur = [], []
    for line in lines:
        cur.append(line)
        if line.startswith("steps"):
            chunks.append(cur)
            cur = []
    if len(chunks) != len(expect):
        fail(f"{label}: driver ran {len(chunks)} searches, want {len(expect)}")
        return 0
    for (kw, res, pad, calls), chunk in zip(expect, chunks):
        ours, steps = parse_results(chunk)
        compare_search(f"{label} {kw}", ours, res, pad)
        if steps != calls:
            fail(f"{label} {kw}: {steps} steps, HF ran the model {calls} times")
    return len(expect)


def mode_search(driver):
    n = 0
    for seed in range(1, 4):
        r = random.Random(seed)
        n += run_searches(driver, SEARCHES * 3, r, label="greedy")
        n += run_searches(driver, beam_settings(r), r, label="beam")
    return f"{n} greedy and beam searches"


# ---- group beam search: the Hub algorithm, transcribed ----

def group_beam_search(model, input_ids, logits_processor, stopping_criteria,
                      generation_config, synced_gpus=False, **model_kwargs):
    """Returns [(generated tokens, score)] best first."""
    gc = generation_config
    nb, ng = gc.num_beams, gc.num_beam_groups
    gs = nb // ng
    eos = gc._eos_token_tensor.tolist() if gc._eos_token_tensor is not None else []
    pad = int(gc._pad_token_tensor)
    lpen, es, P, max_len = gc.length_penalty, gc.early_stopping, input_ids.shape[1], gc.max_length
    K = max(2, 1 + len(eos)) * gs
    hyps, worst, done = [[] for _ in range(ng)], [1e9] * ng, [False] * ng
    scores = torch.full((nb,), -1e9)
    scores[::gs] = 0
    ids = input_ids.clone()

    def add(g, toks, sum_lp, gen_len, end):
        s = sum_lp / (gen_len ** lpen)
        if len(hyps[g]) < gs or s > worst[g]:
            hyps[g].append((s, toks, end))
            if len(hyps[g]) > gs:
                order = sorted((h[0], i) for i, h in enumerate(hyps[g]))
                del hyps[g][order[0][1]]
                worst[g] = order[1][0]
            else:
                worst[g] = min(s, worst[g])

    def finished(g, best, cur_len):
        if len(hyps[g]) < gs:
            return False
        if es is True:
            return True
        if es == "never" and lpen > 0:
            return worst[g] >= best / (max_len - P) ** lpen
        return worst[g] >= best / (cur_len - P) ** lpen

    while True:
        logits = model(input_ids=ids).logits[:, -1, :].float()
        V = logits.shape[-1]
        cur = torch.zeros(nb, dtype=torch.long)
        new_ids = torch.zeros((nb, ids.shape[1] + 1), dtype=torch.long)
        L = ids.shape[1]
        for g in range(ng):
            rows = list(range(g * gs, (g + 1) * gs))
            gids = ids[rows]
            if done[g]:
                for j in rows:
                    new_ids[j, :L], new_ids[j, L] = gids[0], pad
                    cur[j], scores[j] = pad, 0
                continue
            lp = torch.nn.functional.log_softmax(logits[rows], dim=-1)
            lp = logits_processor(gids, lp)
            if g > 0:
                freq = torch.bincount(cur[:g * gs], minlength=V)
                lp = lp - gc.diversity_penalty * freq
            acc = (lp + scores[rows][:, None]).view(-1)
            top_s, top_i = torch.topk(acc, K)
            j = 0
            for rank in range(K):
                b, t, sc = int(top_i[rank]) // V, int(top_i[rank]) % V, float(top_s[rank])
                if t in eos:
                    if rank < gs:
                        add(g, gids[b, P:].tolist(), sc, L + 1 - P, t)
                    continue
                row = g * gs + j
                new_ids[row, :L], new_ids[row, L] = gids[b], t
                cur[row], scores[row] = t, top_s[rank]
                j += 1
                if j == gs:
                    break
            done[g] = done[g] or finished(g, float(top_s[0]), L + 1)
        ids = new_ids
        if all(done) or bool(stopping_criteria(ids, None).all()):
            break
    L = ids.shape[1]
    for g in range(ng):
        if not done[g]:
            for j in range(g * gs, (g + 1) * gs):
                add(g, ids[j, P:].tolist(), float(scores[j]), L - P, None)
    cands = sorted([h for hl in hyps for h in hl], key=lambda h: h[0])
    res = []
    for _ in range(gc.num_return_sequences):
        s, toks, end = cands.pop()
        res.append((toks + ([end] if end is not None else []), float(np.float32(s))))
    return res


def mode_group(driver):
    n = 0
    for seed in range(1, 4):
        r = random.Random(50 + seed)
        settings = []
        for nb, ng in ((2, 2), (4, 2), (4, 4), (6, 3), (6, 2)):
            for dp in (0.5, 2.0):
                kw = dict(num_beams=nb, num_beam_groups=ng, diversity_penalty=dp,
                          length_penalty=r.choice([0.5, 1.0, 2.0]),
                          early_stopping=r.choice([True, False, "never"]),
                          num_return_sequences=r.randint(1, nb))
                if r.random() < 0.3:
                    kw["repetition_penalty"] = 1.2
                settings.append(kw)
        n += run_searches(driver, settings, r, custom=group_beam_search, label="group")
    return f"{n} group beam searches"


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("procs", "pipeline", "search", "group"):
        sys.exit(__doc__)
    mode, driver = sys.argv[1], sys.argv[2]
    warnings.filterwarnings("ignore")
    __import__("transformers").logging.set_verbosity_error()
    torch.manual_seed(0)
    said = {"procs": mode_procs, "pipeline": mode_pipeline, "search": mode_search,
            "group": mode_group}[mode](driver)
    if FAILS:
        print(f"{len(FAILS)} mismatches against transformers {G.__name__} "
              f"({__import__('transformers').__version__})")
        sys.exit(1)
    print(f"agree with transformers {__import__('transformers').__version__}: {said}")


if __name__ == "__main__":
    main()
