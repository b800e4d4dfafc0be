"""Whole-model proofs: commit, prove a greedy generation, verify; size, time, memory.

    .venv/bin/python bench/model.py                      # default: small random models
    .venv/bin/python bench/model.py --model medium --lengths 32
    .venv/bin/python bench/model.py --model smollm2-shape --lengths 8   # SmolLM2's shapes,
                                                         # random weights
    .venv/bin/python bench/model.py --model gpt2-shape --lengths 32     # GPT-2 124M's shapes
                                                         # (transformers' GPT2Config)

Each row runs in its own process (peak memory is that process's maximum resident set). "prove
CPU s" is the process's CPU time while proving (two cores busy: about twice the wall time);
"verify s" runs the verifier on one thread but its final MSM on --threads.
The anchors' published rows are printed beside (their hardware; none of them zero knowledge).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ANCHORS = [
    ("zkLLM (CCS 2024), A100", "OPT-125M, 2048 tokens", "commit 11.8 s, prove 73.9 s, verify 0.342 s, 141 kB"),
    ("zkLLM re-run, A100", "GPT-2 whole model", "prove 15.8 s, verify 0.54 s, 126 KB"),
    ("zkGPT, 16-core Xeon", "GPT-2, 32 tokens", "prove 21.8 s, verify 0.35 s, 101 KB"),
    ("DeepProve, 16-core Ryzen", "GPT-2, 64 tokens", "prove 34.2 s, verify 1.35 s, 21.7 MB"),
    ("Jolt Atlas, MacBook M3", "GPT-2, 16 tokens", "prove 14.9 s, verify 1.04 s"),
]


def model_for(name: str, seed: int = 0):
    """(IntegerLlama, description) of a named benchmark model (random weights, calibrated
    shifts)."""
    from zk.model import llama as ML

    rng = np.random.default_rng(seed)
    common = dict(norm_c2=1 << 30, norm_eps=1 << 4, rope_bits=12)
    if name == "tiny":
        from pipeline.model_cli import small_random_model  # noqa: F401  (same family)

        cfg = ML.LlamaConfig(n_layers=2, d_model=8, n_heads=3, n_kv_heads=1, d_head=4, d_ff=12,
                             vocab=20, max_len=64, shifts=_shifts(), emb_mult=3, act_bits=8,
                             t_bits=16, score_bits=8, norm_c2=1 << 24, norm_eps=4, rope_bits=6,
                             clip_t=100, exp_bits=6, p_bits=6, delta=1 / 8, silu_in=1 / 16,
                             silu_out=1 / 16)
    elif name == "small":
        from pipeline.model_cli import small_random_model

        m = small_random_model(seed)
        return m, "2 layers, d 32, 4 heads (2 kv), ff 64, vocab 256, 12-bit activations"
    elif name == "medium":
        cfg = ML.LlamaConfig(n_layers=4, d_model=128, n_heads=4, n_kv_heads=2, d_head=32,
                             d_ff=512, vocab=4096, max_len=128, shifts=_shifts(), emb_mult=64,
                             act_bits=16, t_bits=32, score_bits=12, **common)
    elif name.startswith("smollm2-shape"):
        layers = int(name.split(":")[1]) if ":" in name else 30
        cfg = ML.LlamaConfig(n_layers=layers, d_model=576, n_heads=9, n_kv_heads=3, d_head=64,
                             d_ff=1536, vocab=49152, max_len=256, shifts=_shifts(),
                             emb_mult=64, act_bits=16, t_bits=32, score_bits=12,
                             rope_theta=100000.0, **common)
    elif name.startswith("gpt2-shape"):
        from transformers import GPT2Config  # GPT-2 124M's shapes

        g = GPT2Config()
        layers = int(name.split(":")[1]) if ":" in name else g.n_layer
        cfg = ML.LlamaConfig(n_layers=layers, d_model=g.n_embd, n_heads=g.n_head,
                             n_kv_heads=g.n_head, d_head=g.n_embd // g.n_head,
                             d_ff=g.n_inner or 4 * g.n_embd, vocab=g.vocab_size,
                             max_len=g.n_positions, shifts=_shifts(), emb_mult=64,
                             act_bits=16, t_bits=32, score_bits=12, arch="gpt2", **common)
    else:
        raise SystemExit(f"unknown model {name!r}")
    w = ML.random_weights(cfg, rng)
    cfg = ML.fit_shifts(cfg, w, rng.integers(0, cfg.vocab, 16), rounds=12)
    c = cfg
    desc = (f"{c.n_layers} layers, d {c.d_model}, {c.n_heads} heads ({c.n_kv_heads} kv), "
            f"ff {c.d_ff}, vocab {c.vocab}, {c.act_bits}-bit activations")
    return ML.IntegerLlama(cfg, w), desc


def _shifts() -> dict:
    return dict(e=2, q=6, k=6, v=4, s=4, a=8, o=4, g=4, u=4, m=6, d=6, n=14, lm=6)


def row(name: str, L: int, threads: int, profile: bool = False) -> dict:
    """One measurement (run in a fresh process); ``profile``: the prove step's profile (the
    functions with the most cumulative time) on stderr."""
    import numba

    from zk.model import llama as ML

    numba.set_num_threads(threads)
    model, desc = model_for(name)
    t = time.perf_counter()
    pm = ML.commit(model.config, model.weights, tables=model.tables)
    commit_s = time.perf_counter() - t
    com_bytes = len(pm.commitment.to_bytes())
    rng = np.random.default_rng(7)
    prompt_len = max(1, L // 4)
    seq = ML.generate(pm, rng.integers(0, model.config.vocab, prompt_len), L + 1 - prompt_len)
    # warm the kernels (compiled once, cached on disk) on the tiny model: the same kernels
    # and types, without a second pass over a large model's weights
    warm, _ = model_for("tiny")
    wpm = ML.commit(warm.config, warm.weights, tables=warm.tables)
    ML.prove(wpm, ML.generate(wpm, np.array([1, 2]), 2), 2)
    prof = None
    if profile:
        import cProfile

        prof = cProfile.Profile()
        prof.enable()
    t, c = time.perf_counter(), time.process_time()
    proof = ML.prove(pm, seq, prompt_len, threads=threads)
    prove_s, prove_cpu = time.perf_counter() - t, time.process_time() - c
    if prof is not None:
        import pstats

        prof.disable()
        pstats.Stats(prof, stream=sys.stderr).sort_stats("cumulative").print_stats(40)
    data = proof.to_bytes()
    if prof is not None:
        prof = cProfile.Profile()
        prof.enable()
    t = time.perf_counter()
    ML.verify(ML.ModelProof.from_bytes(data), pm.commitment, threads=threads)
    verify_s = time.perf_counter() - t
    if prof is not None:
        prof.disable()
        print("verify:", file=sys.stderr)
        pstats.Stats(prof, stream=sys.stderr).sort_stats("tottime").print_stats(25)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return dict(model=name, desc=desc, L=L, commit_s=commit_s, commitment_bytes=com_bytes,
                prove_s=prove_s, prove_cpu_s=prove_cpu, verify_s=verify_s,
                proof_kb=len(data) / 1000, peak_mb=peak, threads=threads)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", action="append",
                    help="tiny, small, medium, smollm2-shape[:LAYERS] or gpt2-shape[:LAYERS] "
                    "(repeatable; default tiny, small)")
    ap.add_argument("--lengths", type=int, nargs="+", help="positions L (default 8 16)")
    ap.add_argument("--threads", type=int, default=2, help="numba threads (default 2)")
    ap.add_argument("--profile", action="store_true",
                    help="print where the prove step's time goes (cProfile, cumulative) and "
                    "the verify step's (by own time)")
    ap.add_argument("--row", nargs=2, metavar=("MODEL", "L"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.row:
        print(json.dumps(row(args.row[0], int(args.row[1]), args.threads, args.profile)))
        return
    models = args.model or ["tiny", "small"]
    lengths = args.lengths or [8, 16]
    print(f"whole-model proofs (zero knowledge), {os.cpu_count()} cores here, "
          f"{args.threads} numba threads")
    hdr = ("model", "L", "commit s", "commitment KB", "prove s", "prove CPU s", "verify s",
           "proof KB", "peak MB")
    print(" | ".join(hdr))
    for m in models:
        for L in lengths:
            out = subprocess.run([sys.executable, __file__, "--row", m, str(L), "--threads",
                                  str(args.threads)] + (["--profile"] if args.profile else []),
                                 capture_output=True, text=True)
            if out.returncode:
                print(f"{m} | {L} | failed: {out.stderr.strip().splitlines()[-1:]}")
                continue
            r = json.loads(out.stdout.strip().splitlines()[-1])
            if args.profile:
                print(out.stderr, flush=True)
            print(f"{m} ({r['desc']}) | {L} | {r['commit_s']:.2f} | "
                  f"{r['commitment_bytes'] / 1000:.1f} | {r['prove_s']:.2f} | "
                  f"{r['prove_cpu_s']:.2f} | {r['verify_s']:.2f} | {r['proof_kb']:.1f} | "
                  f"{r['peak_mb']:.0f}", flush=True)
    print("\nanchors (published; other hardware; not zero knowledge in their released code):")
    for who, what, fig in ANCHORS:
        print(f"  {who}: {what}: {fig}")


if __name__ == "__main__":
    main()
