"""Ablation driver for pipeline.model_quant : loads SmolLM2, the
calibration and the float references once, then quantizes and scores every setting.

    .venv/bin/python bench/model_ablate.py --windows 16 --gpl 8 --prompts 4 --calib 32 \
        '{}' '{"kind_bits": {"wd": 12}}' '{"margin": 1.5}'

Each positional argument is a JSON object of quantize_float keyword arguments (on top of
the shipped defaults). One line per setting: top-1 agreement and perplexity change per source, the mean
KL(float || int) of the next-token distributions (a less noisy measure than top-1), greedy
continuations identical, refusals.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import model_accuracy as MA  # noqa: E402
from pipeline import model_quant as mq  # noqa: E402
from zk.errors import ProverError  # noqa: E402
from zk.model.llama import greedy_tokens  # noqa: E402


def score(model, refs) -> dict:
    agree = n = refused = 0
    nll_f, nll_q, kl = [], [], []
    for w, lf in refs:
        try:
            lq = model(w)
        except ProverError:
            refused += 1
            continue
        agree += int((greedy_tokens(lq) == lf.argmax(-1)).sum())
        n += len(w)
        t = np.arange(len(w) - 1)
        pq = MA.log_softmax(mq.dequantize_logits(lq, model.info))
        pf = MA.log_softmax(lf)
        nll_q.append(-pq[t, w[1:]].mean())
        nll_f.append(-pf[t, w[1:]].mean())
        kl.append(float((np.exp(pf) * (pf - pq)).sum(-1).mean()))
    return dict(agree=agree / max(n, 1), dppl=math.exp(np.mean(nll_q) - np.mean(nll_f)) - 1,
                kl=float(np.mean(kl)), refused=refused)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("settings", nargs="*", default=["{}"])
    ap.add_argument("--windows", type=int, default=16)
    ap.add_argument("--gpl", type=int, default=8)
    ap.add_argument("--len", type=int, default=64)
    ap.add_argument("--prompts", type=int, default=4)
    ap.add_argument("--calib", type=int, default=32)
    ap.add_argument("--calib-len", type=int, default=64)
    ap.add_argument("--extreme", action="store_true", help="also count refusals of extremes")
    a = ap.parse_args(argv)

    from fhe.hf_models import smollm2_model
    from pipeline import generate as G

    t0 = time.time()
    hf, tok = smollm2_model()
    P = mq.float_llama(hf)
    cal = mq.calibrate(P, G.token_windows(tok, G.text(), a.calib_len, a.calib))
    srcs = [("docs", MA.spread_windows(tok, MA.python_docs_prose(), a.len, a.windows))]
    if a.gpl and MA.GPL3.is_file():
        srcs.append(("gpl", MA.spread_windows(tok, MA.GPL3.read_text(), a.len, a.gpl)))
    refs = {nm: [(w, lf) for w, lf in zip(win, MA.float_logits(hf, win))] for nm, win in srcs}
    prompts = MA.PROMPTS[: a.prompts]
    conts = {p: MA.float_greedy(hf, tok(p)["input_ids"], MA.N_NEW) for p in prompts}
    print(f"# calib {a.calib}x{a.calib_len}, docs {a.windows}, gpl {a.gpl}, prompts "
          f"{a.prompts}; setup {time.time() - t0:.0f} s", flush=True)
    for s in a.settings:
        kw = json.loads(s)
        t = time.time()
        try:
            cfg, w, info = mq.quantize_float(P, cal, **kw)
            mq.check_bounds(cfg, w, res_bits=info.res_bits)
        except (AssertionError, ValueError) as e:
            print(f"{s:60s} FAILED: {e}", flush=True)
            continue
        model = MA.IntModel(cfg, w, info)
        cols = []
        for nm, _ in srcs:
            r = score(model, refs[nm])
            cols.append(f"{nm} {100 * r['agree']:6.2f}% {100 * r['dppl']:+6.2f}% "
                        f"kl {r['kl']:.5f} ref {r['refused']}")
        g = MA.score_prompts(model, hf, tok, prompts, conts)
        ext = ""
        if a.extreme:
            er, en = MA.extreme_refusals(model, cfg.vocab, a.len)
            ext = f" extreme refused {er}/{en}"
        print(f"{s:60s} {' | '.join(cols)} | greedy {g['same']}/{g['n']} "
              f"pre {g['prefix']:.1f}{ext} ({time.time() - t:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
