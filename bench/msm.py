"""MSM and Hyrax benchmarks (issues 3 and 14).

    .venv/bin/python bench/msm.py                 # CPU table
    .venv/bin/python bench/msm.py --quick         # smaller sizes only
    .venv/bin/python bench/msm.py --device gpu    # device Pippenger against the CPU (if a GPU)

CPU: microseconds per point of one MSM with uniform Fr scalars at 2^10, 2^12, 2^16, 2^18
points on 1 and 2 numba threads (best of a few runs, after a warm-up), the time to commit a
768 x 2304 int8 weight matrix and a 2^20-entry int8 tensor (Hyrax, hiding), and the opening
proof size, prove and verify time of one evaluation claim at 2^16 and 2^20 entries.
Targets (one core): <= 8 us/point at 2^12, <= 5 us/point at 2^16; verify at 2^20 < 50 ms;
opening proof at 2^20 < 2 KB. Native mcl measured on this kind of machine: 6.3 and 4.8.

GPU (``--device gpu``; says so and exits 0 where CuPy sees no device): nanoseconds per point
of one MSM at 2^16, 2^18, 2^20, 2^22 points (base points resident on the device; scalars
uploaded from the host in the first column, already on the device in the second), the CPU
path on all numba threads, the speed-up, and a check that both give the same point; then the
Hyrax commitments above on the device and on the CPU. Targets on an H100: <= 40 ns/point at
2^20 and beyond; the 768 x 2304 weight commitment < 20 ms.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numba  # noqa: E402
import numpy as np  # noqa: E402

from gpu import curve as C  # noqa: E402
from gpu import dispatch as D  # noqa: E402
from zk.claims import ComClaim  # noqa: E402
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


def bench_points(n: int) -> np.ndarray:
    """n distinct affine points: 2^16 hashed generators, shifted by one more generator per
    block of 2^16 (hash-to-curve for millions of points would take minutes)."""
    block = min(n, 1 << 16)
    base = np.ascontiguousarray(generators(b"bench/msm", block))
    if n == block:
        return base
    shifts = generators(b"bench/msm/shift", n // block)
    jac = np.empty((n, 12), dtype=np.uint64)
    C.vaffine_to_jac(np.tile(base, (n // block, 1)), jac)
    out = np.empty_like(jac)
    C.vjac_add_affine(jac, np.repeat(shifts, block, axis=0), out)
    aff = np.empty((n, 8), dtype=np.uint64)
    C.vjac_to_affine(out, aff)
    return aff


def msm_table(sizes: list[int], device: str) -> None:
    rng = np.random.default_rng(0)
    G = bench_points(1 << max(sizes))
    threads = [1, 2] if device == "cpu" else [numba.get_num_threads()]
    max_threads = numba.config.NUMBA_NUM_THREADS
    print(f"MSM, uniform Fr scalars, device={device} (us per point, best of runs)")
    print(f"{'points':>8} " + " ".join(f"{f'{t} thread(s)':>12}" for t in threads))
    for lg in sizes:
        n = 1 << lg
        P, s = G[:n], Fr.random(n, rng)
        D.msm_mont(P[:256], s[:256], device=device)  # warm-up / JIT
        row = []
        for t in threads:
            numba.set_num_threads(min(t, max_threads))
            reps = 5 if n <= 1 << 12 else 2
            row.append(best(lambda: D.msm_mont(P, s, device=device), reps) * 1e6 / n)
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


def gpu_msm_table(sizes: list[int]) -> None:
    import cupy  # noqa: PLC0415

    from gpu import cuda_msm as CM  # noqa: PLC0415
    from gpu import msm as M  # noqa: PLC0415
    from zk import curve as ZC  # noqa: PLC0415

    dev = cupy.cuda.Device()
    name = cupy.cuda.runtime.getDeviceProperties(dev.id)["name"].decode()
    print(f"MSM, uniform Fr scalars, device: {name}; CPU: {numba.get_num_threads()} numba threads")
    print(f"{'points':>8} {'c':>3} {'GPU ns/pt':>10} {'dev-scal':>9} {'CPU ns/pt':>10} "
          f"{'speed-up':>9} {'same':>5}")
    rng = np.random.default_rng(0)
    G = bench_points(1 << max(sizes))
    t = time.perf_counter()
    w = min(256, 1 << min(sizes))
    CM.msm_mont(G[:w], Fr.random(w, rng))  # JIT-compiles the kernels
    print(f"(first call, kernel compilation included: {time.perf_counter() - t:.1f} s)")
    for lg in sizes:
        n = 1 << lg
        pts = CM.DevicePoints(G[:n])
        s = Fr.random(n, rng)
        s_dev = cupy.asarray(s)
        got = CM.msm_mont(pts, s)  # warm-up at this size
        tg = best(lambda: CM.msm_mont(pts, s), 3)
        td = best(lambda: CM.msm_mont(pts, s_dev), 3)
        want = M.msm_mont(G[:n], s)
        tc = best(lambda: M.msm_mont(G[:n], s), 1 if lg >= 20 else 2)
        same = "yes" if (ZC.to_affine(got) == ZC.to_affine(want)).all() else "NO"
        print(f"{'2^' + str(lg):>8} {CM.window_bits(n, 253):3d} {tg * 1e9 / n:10.1f} "
              f"{td * 1e9 / n:9.1f} {tc * 1e9 / n:10.1f} {tc / tg:8.1f}x {same:>5}")


def gpu_hyrax_table(weights: tuple[int, int] = (768, 2304), tensor: int = 1 << 20) -> None:
    from zk.commit.pedersen import commit_rows_ints  # noqa: PLC0415

    rng = np.random.default_rng(1)
    print(f"\nHyrax (hiding) commitments, GPU against CPU ({numba.get_num_threads()} threads)")
    print(f"{'what':<44} {'GPU ms':>8} {'CPU ms':>8} {'speed-up':>9} {'same':>5}")
    W = rng.integers(-128, 128, size=weights)
    T = rng.integers(-128, 128, size=tensor)
    V = Fr.random(tensor, rng)
    nw, bw = H.layout(W.size)
    nt, bt = H.layout(tensor)
    cases = [(f"{weights[0]}x{weights[1]} int8 matrix (2^{nw - bw} rows of 2^{bw})", H.commit, W),
             (f"2^{nt}-entry int8 tensor (2^{nt - bt} rows)", H.commit, T),
             (f"2^{nt}-entry Fr tensor (2^{nt - bt} rows)", H.commit_field, V)]
    for label, fn, x in cases:
        fn(x, device="gpu")  # warm-up: kernels and the cached generators
        res = {}

        def run(device: str) -> None:
            res[device] = fn(x, rng=np.random.default_rng(7), device=device)[0].rows

        tg = best(lambda: run("gpu"), 3)
        tc = best(lambda: run("cpu"), 1)
        same = res["gpu"] == res["cpu"]
        print(f"{label:<44} {tg * 1e3:8.1f} {tc * 1e3:8.1f} {tc / tg:8.1f}x "
              f"{'yes' if same else 'NO':>5}")
    # an integer tensor's witness is embedded in Fr on its first opening, not at commit time
    tw = best(lambda: H.commit(W, rng=np.random.default_rng(7), device="gpu")[1].matrix, 3)
    print(f"{'  commit + the witness in Fr (first opening)':<44} {tw * 1e3:8.1f}")
    # the MSM part of the weight commitment alone (no padding, witness or encoding)
    key = H.DEFAULT_PARAMS.key(bw)
    rows = np.zeros((1 << (nw - bw), 1 << bw), dtype=np.int64)
    rows.reshape(-1)[: W.size] = W.reshape(-1)
    blinds = Fr.random(rows.shape[0], rng)
    tm = best(lambda: commit_rows_ints(key, rows, blinds, device="gpu"), 3)
    print(f"{'  of which row commitments (MSM, to affine)':<44} {tm * 1e3:8.1f}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    ap.add_argument("--quick", action="store_true", help="sizes up to 2^12 / 2^16 only")
    args = ap.parse_args(argv)
    # numba-cuda warns on every launch of under 2 waves of blocks; the small MSMs here are meant so
    warnings.filterwarnings("ignore", message=".*Grid size .* will likely result in GPU under")
    if args.device == "gpu":
        if not D.cupy_device_available():
            print("no GPU: CuPy is not installed or sees no CUDA device; nothing to measure")
            return 0
        gpu_msm_table([12, 16] if args.quick else [16, 18, 20, 22])
        gpu_hyrax_table()
        return 0
    sizes = [10, 12] if args.quick else [10, 12, 16, 18]
    msm_table(sizes, args.device)
    hyrax_table([16] if args.quick else [16, 20])
    return 0


if __name__ == "__main__":
    sys.exit(main())
