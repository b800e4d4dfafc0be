"""MSM and Hyrax benchmarks (issue 3).

    .venv/bin/python bench/msm.py                 # CPU table
    .venv/bin/python bench/msm.py --quick         # smaller sizes only
    .venv/bin/python bench/msm.py --device gpu    # the MSM rows on a CUDA device (if any)

Prints microseconds per point of one MSM with uniform Fr scalars at 2^10, 2^12, 2^16, 2^18
points on 1 and 2 numba threads (best of a few runs, after a warm-up), the time to commit a
768 x 2304 int8 weight matrix and a 2^20-entry int8 tensor (Hyrax, hiding), and the opening
proof size, prove and verify time of one evaluation claim at 2^16 and 2^20 entries.
Targets (one core): <= 8 us/point at 2^12, <= 5 us/point at 2^16; verify at 2^20 < 50 ms;
opening proof at 2^20 < 2 KB. Native mcl measured on this kind of machine: 6.3 and 4.8.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numba  # noqa: E402
import numpy as np  # noqa: E402

from gpu import cuda_msm as CM  # noqa: E402
from zk.claims import ComClaim
from zk.commit import hyrax as H  # noqa: E402
from zk.commit.generators import generators  # noqa: E402
from zk.field import Fr  # noqa: E402
from zk.protocol.context import Context  # noqa: E402
from zk.transcript import Transcript  # noqa: E402


def best(fn, reps: int) -> float:
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return min(out)


def msm_table(sizes: list[int], device: str) -> None:
    rng = np.random.default_rng(0)
    G = np.ascontiguousarray(generators(b"bench/msm", 1 << max(sizes)))
    threads = [1, 2] if device == "cpu" else [numba.get_num_threads()]
    max_threads = numba.config.NUMBA_NUM_THREADS
    print(f"MSM, uniform Fr scalars, device={device} (us per point, best of runs)")
    print(f"{'points':>8} " + " ".join(f"{f'{t} thread(s)':>12}" for t in threads))
    for lg in sizes:
        n = 1 << lg
        P, s = G[:n], Fr.random(n, rng)
        CM.msm_mont(P[:256], s[:256], device=device)  # warm-up / JIT
        row = []
        for t in threads:
            numba.set_num_threads(min(t, max_threads))
            reps = 5 if n <= 1 << 12 else 2
            row.append(best(lambda: CM.msm_mont(P, s, device=device), reps) * 1e6 / n)
        print(f"{'2^' + str(lg):>8} " + " ".join(f"{v:12.2f}" for v in row))
    numba.set_num_threads(max_threads)


def hyrax_table(open_sizes: list[int]) -> None:
    rng = np.random.default_rng(1)
    print(f"\nHyrax (hiding), {numba.get_num_threads()} threads")
    W = rng.integers(-128, 128, size=(768, 2304))
    H.commit(W[:8], rng=rng)  # warm-up
    t = best(lambda: H.commit(W), 2)
    print(f"commit 768x2304 int8 matrix (2^21 padded, 2^11 rows):   {t:8.3f} s")
    T = rng.integers(-128, 128, size=1 << 20)
    t = best(lambda: H.commit(T), 2)
    print(f"commit 2^20-entry int8 tensor (2^10 rows):             {t:8.3f} s")
    V = Fr.random(1 << 20, rng)
    t = best(lambda: H.commit_field(V), 1)
    print(f"commit 2^20-entry Fr tensor (uniform field elements):  {t:8.3f} s")
    print(f"\nzero-knowledge opening (value committed)\n{'entries':>8} {'proof B':>8} "
          f"{'prove s':>8} {'verify ms':>10}")
    for lg in open_sizes:
        T = rng.integers(-128, 128, size=1 << lg)
        com, wit = H.commit(T)
        pt = tuple(int(v) for v in rng.integers(0, 2**62, lg))

        def body(ctx):
            t = H.bind(ctx, com, wit if ctx.proving else None)
            (c,) = ctx.commit(b"v", 1, lambda: [wit.evaluate(pt)])
            H.open(ctx, t, [ComClaim(pt, c)])

        def prove():
            ctx = Context.prover(Transcript(b"bench"))
            body(ctx)
            ctx.finish()
            return ctx.stream()

        stream = prove()
        tp = best(prove, 2)

        def check():
            ctx = Context.verifier(Transcript(b"bench"), stream)
            body(ctx)
            ctx.finish()
        tv = best(check, 5)
        print(f"{'2^' + str(lg):>8} {stream.size:8d} {tp:8.3f} {tv * 1e3:10.1f}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    ap.add_argument("--quick", action="store_true", help="sizes up to 2^12 / 2^16 only")
    args = ap.parse_args(argv)
    if args.device == "gpu" and not CM.cupy_device_available():
        print("no GPU: CuPy is not installed or sees no CUDA device; nothing to measure")
        return 0
    sizes = [10, 12] if args.quick else [10, 12, 16, 18]
    msm_table(sizes, args.device)
    if args.device == "cpu":
        hyrax_table([16] if args.quick else [16, 20])
    return 0


if __name__ == "__main__":
    sys.exit(main())
