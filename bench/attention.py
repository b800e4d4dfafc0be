"""zkAttn on a GPT-2-size head: commit, prove, verify, proof size and peak memory.

Run: python bench/attention.py [--bits 4 8] [--lengths 8 32 128] [--d-model 768 --d-head 64]
Each row runs in its own process (so its peak memory is its own). Weights are GPT-2-like
random ones (zk.attention_ref.random_head); the input is a calibration sequence.
Targets (issue 5) at L = 32 on this 2-core machine: prove <= 5 s, verify <= 0.3 s,
proof <= 100 KB. The proof file includes the public input x (L x d_model, one byte per entry
at 4 or 8 bits) and output y; the "proof w/o x,y" column leaves them out.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def one_row(d_model: int, d_head: int, L: int, bits: int) -> dict:
    import numpy as np

    from zk import attention_model as am
    from zk.head import zkattn
    from zk.attention_ref import HeadConfig, quantize_input, random_head

    cfg = HeadConfig(d_model=d_model, d_head=d_head, seq_len=L, n_bits=bits)
    head, _, calib = random_head(cfg, seed=0, n_calib=4)
    x = quantize_input(calib[0], head)
    # warm the kernels on a small head so compilation is not timed
    small = HeadConfig(d_model=8, d_head=4, seq_len=3, n_bits=bits)
    sh, _, sc = random_head(small, seed=0, n_calib=2)
    spm, smc = am.commit(sh)
    zkattn.verify_bytes(zkattn.prove(spm, quantize_input(sc[0], sh)).to_bytes(), smc)

    t0 = time.perf_counter()
    pm, mc = am.commit(head)
    t1 = time.perf_counter()
    proof = zkattn.prove(pm, x)
    t2 = time.perf_counter()
    data = proof.to_bytes()
    t3 = time.perf_counter()
    zkattn.verify_bytes(data, mc)
    t4 = time.perf_counter()
    io = x.size * np.dtype(np.int8 if bits <= 8 else np.int16).itemsize + proof.y.size
    return {"commit": t1 - t0, "prove": t2 - t1, "verify": t4 - t3, "size": len(data),
            "size_no_io": len(data) - io,
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bits", type=int, nargs="+", default=[4, 8])
    ap.add_argument("--lengths", type=int, nargs="+", default=[8, 32, 128])
    ap.add_argument("--d-model", type=int, default=768)
    ap.add_argument("--d-head", type=int, default=64)
    ap.add_argument("--row", nargs=4, type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.row:
        print(json.dumps(one_row(*args.row)))
        return
    print(f"head {args.d_model} -> {args.d_head}, GPT-2-like random weights")
    print(f"{'bits':>4} {'L':>4} {'commit s':>9} {'prove s':>8} {'verify s':>9} "
          f"{'proof KB':>9} {'w/o x,y KB':>11} {'peak MB':>8}")
    for bits in args.bits:
        for L in args.lengths:
            out = subprocess.run(
                [sys.executable, __file__, "--row", str(args.d_model), str(args.d_head), str(L),
                 str(bits)], capture_output=True, text=True, check=False)
            if out.returncode != 0:
                print(f"{bits:>4} {L:>4} failed: {out.stderr.strip().splitlines()[-1]}")
                continue
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{bits:>4} {L:>4} {r['commit']:>9.2f} {r['prove']:>8.2f} {r['verify']:>9.3f} "
                  f"{r['size'] / 1024:>9.1f} {r['size_no_io'] / 1024:>11.1f} {r['peak_mb']:>8.0f}")


if __name__ == "__main__":
    main()
