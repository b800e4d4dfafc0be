"""``zkfhe model-*``: whole-model proofs from the command line.

    zkfhe model-commit --out owner/ --random 0          # owner: commit (a small random model)
    zkfhe model-commit --out owner/ --smollm2           # owner: commit the integer SmolLM2
    zkfhe model-generate --model owner/ --ids 1,2,3 -n 8 --out gen.zkp    # server
    zkfhe model-verify owner/model.zkm gen.zkp          # anyone: the proven tokens (and text)

The owner's folder holds ``model.zkm`` (the public commitment: publish it) and ``private.npz``
(the weights and the commitments' blinds: keep it). Exit codes: 0 accepted / done, 1 rejected,
2 usage or unreadable input.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

EXIT_OK, EXIT_REJECTED, EXIT_USAGE = 0, 1, 2


def _stage(what: str):
    """Print a step and, when it ends, its time (every step longer than a few seconds)."""
    class _S:
        def __enter__(self):
            print(f"  {what} ...", end="", flush=True)
            self.t = time.perf_counter()
            return self

        def __exit__(self, *exc):
            print(f" {time.perf_counter() - self.t:.2f} s" if exc[0] is None else " failed",
                  flush=True)
            return False

    return _S()


def small_random_model(seed: int):
    """A small random integer Llama (2 layers, width 32): for trying the commands quickly."""
    from zk.model import llama as ML

    cfg = ML.LlamaConfig(n_layers=2, d_model=32, n_heads=4, n_kv_heads=2, d_head=8, d_ff=64,
                         vocab=256, max_len=64,
                         shifts=dict(e=6, q=12, k=12, v=8, s=12, a=8, o=8, g=8, u=8, m=14, d=8,
                                     n=22, lm=12),
                         emb_mult=64, norm_c2=1 << 30, norm_eps=1 << 4, act_bits=12,
                         t_bits=24, score_bits=10, rope_bits=10, silu_in=1 / 512,
                         silu_out=1 / 512)
    rng = np.random.default_rng(seed)
    w = ML.random_weights(cfg, rng)
    cfg = ML.fit_shifts(cfg, w, rng.integers(0, cfg.vocab, 16))
    return ML.IntegerLlama(cfg, w)


def cmd_model_commit(args: argparse.Namespace) -> int:
    from zk.model import llama as ML

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.smollm2:
        from pipeline import model_quant  # torch, transformers: the owner's side only

        with _stage("quantize SmolLM2-135M (calibration on real text)"):
            cfg, weights = model_quant.quantize_smollm2()
        model = ML.IntegerLlama(cfg, weights)
        origin = {"model": "SmolLM2-135M-Instruct"}
    else:
        model = small_random_model(args.random)
        origin = {"model": f"random-{args.random}", "tokenizer": "bytes"}
    with _stage("commit every weight (hiding Hyrax)"):
        pm = ML.commit(model.config, model.weights, tables=model.tables, origin=origin)
    data = pm.commitment.to_bytes()
    (out / "model.zkm").write_bytes(data)
    ML.save_private(pm, out / "private.npz")
    print(f"public commitment: {out / 'model.zkm'} ({len(data):,} bytes)")
    print(f"private model (keep it): {out / 'private.npz'}")
    return EXIT_OK


def _ids(text: str) -> np.ndarray:
    try:
        ids = np.array([int(t) for t in text.split(",") if t.strip()], dtype=np.int64)
    except ValueError:
        raise SystemExit(f"error: --ids takes comma-separated token ids, got {text!r}") from None
    return ids


def _tokenizer(origin: dict, vocab: int | None = None):
    """The model's tokenizer (:func:`pipeline.llm_text.tokenizer_for`), or None: ids only."""
    from pipeline.llm_text import tokenizer_for

    return tokenizer_for(origin, vocab)


def cmd_model_generate(args: argparse.Namespace) -> int:
    from zk.model import llama as ML

    folder = Path(args.model)
    try:
        pm = ML.load_private(folder / "private.npz")
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    cfg = pm.config
    if (args.ids is None) == (args.prompt is None):
        print("error: give --ids or --prompt", file=sys.stderr)
        return EXIT_USAGE
    tok = None
    if args.prompt is not None:
        tok = _tokenizer(pm.commitment.origin, cfg.vocab)
        if tok is None:
            print("error: --prompt needs a model with a tokenizer (SmolLM2, or a random model "
                  "with the byte tokenizer); use --ids", file=sys.stderr)
            return EXIT_USAGE
        try:
            ids = np.array(tok.encode(args.prompt), dtype=np.int64)
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return EXIT_USAGE
    else:
        ids = _ids(args.ids)
    if ids.size < 1 or ids.min() < 0 or ids.max() >= cfg.vocab:
        print(f"error: token ids must be in [0, {cfg.vocab})", file=sys.stderr)
        return EXIT_USAGE
    if not 1 <= args.n <= cfg.max_len - ids.size + 1:
        print(f"error: -n must be in 1..{cfg.max_len - ids.size + 1} for this prompt",
              file=sys.stderr)
        return EXIT_USAGE
    with _stage(f"generate {args.n} tokens (integer model)"):
        seq = ML.generate(pm, ids, args.n)
    with _stage(f"prove the generation ({seq.size - 1} positions, zero knowledge)"):
        proof = ML.prove(pm, seq, ids.size)
    data = proof.to_bytes()
    Path(args.out).write_bytes(data)
    print(f"generated ids: {seq[ids.size:].tolist()}")
    if tok is not None:
        print(f"generated text: {tok.decode(seq[ids.size:].tolist())!r}")
    print(f"proof: {args.out} ({len(data):,} bytes)")
    return EXIT_OK


def cmd_model_verify(args: argparse.Namespace) -> int:
    from pipeline import api
    from zk.errors import MalformedProofError
    from zk.model import llama as ML

    try:
        mc = ML.LlamaCommitment.from_bytes(Path(args.commitment).read_bytes())
        data = Path(args.proof).read_bytes()
    except OSError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except MalformedProofError as e:
        print(f"error: the commitment file is malformed: {e}", file=sys.stderr)
        return EXIT_USAGE
    try:
        with _stage("verify"):
            verdict = api.verify(data, mc, threads=args.threads)
    except MalformedProofError as e:
        print(f"verdict: REJECTED (malformed proof file: {e})")
        return EXIT_REJECTED
    if not verdict:
        print(f"verdict: REJECTED ({verdict.reason})")
        return EXIT_REJECTED
    print(f"proven generated ids: {list(verdict.generated)}")
    if args.text:
        tok = _tokenizer(mc.origin, mc.config.vocab)
        if tok is not None:
            print(f"proven text: {tok.decode(list(verdict.generated))!r}")
    print("verdict: ACCEPTED (each generated token is the committed integer model's greedy "
          "choice)")
    return EXIT_OK


def _threads(v: str) -> int:
    try:
        n = int(v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a number of threads, not {v!r}") from None
    if not 1 <= n <= 256:
        raise argparse.ArgumentTypeError("threads must be between 1 and 256")
    return n


def add_parsers(sub) -> None:
    p = sub.add_parser("model-commit", help="owner: commit a whole integer model (publish "
                       "model.zkm, keep private.npz)")
    p.add_argument("--out", required=True, help="the owner's folder")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--smollm2", action="store_true", help="the integer SmolLM2-135M")
    g.add_argument("--random", type=int, metavar="SEED", help="a small random model")
    p.set_defaults(func=cmd_model_commit)
    p = sub.add_parser("model-generate", help="server: generate tokens and prove them")
    p.add_argument("--model", required=True, help="the owner's folder (private.npz)")
    p.add_argument("--ids", help="prompt token ids, comma-separated")
    p.add_argument("--prompt", help="prompt text (models with a tokenizer)")
    p.add_argument("-n", type=int, default=8, help="tokens to generate (default 8)")
    p.add_argument("--out", required=True, help="proof file to write")
    p.set_defaults(func=cmd_model_generate)
    p = sub.add_parser("model-verify", help="anyone: verify a generation's proof")
    p.add_argument("commitment", help="the model's public commitment (model.zkm)")
    p.add_argument("proof", help="the proof file")
    p.add_argument("--text", action="store_true", help="also print the text (models with a "
                   "tokenizer)")
    p.add_argument("--threads", type=_threads, default=min(2, os.cpu_count() or 1),
                   help="threads of the final MSM (default: 2 where there are 2 cores)")
    p.set_defaults(func=cmd_model_verify)
