"""Fr multiplications per second: numba kernels (one and two threads) against Python ints.

Run: python bench/field.py [--log-n 20]
Target (issue 2): at least 20 M/s per core with the kernels.
"""

from __future__ import annotations

import argparse
import random
import time

import numba
import numpy as np

from gpu import field as K
from zk.field import Fr


def best_of(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--log-n", type=int, default=20, help="vector length 2^n for the kernels")
    args = ap.parse_args()
    n = 1 << args.log_n
    rng = np.random.default_rng(0)
    a, b = Fr.random(n, rng), Fr.random(n, rng)
    out = np.empty_like(a)
    K.vmul(Fr.desc, a, b, out)  # compile
    rows = []
    for threads in (1, 2):
        if threads > numba.config.NUMBA_NUM_THREADS:
            continue
        numba.set_num_threads(threads)
        dt = best_of(lambda: K.vmul(Fr.desc, a, b, out), 5)
        rows.append((f"numba vmul, {threads} thread(s)", n / dt / 1e6))
        dt = best_of(lambda: Fr.inner(a, b), 5)
        rows.append((f"numba inner product (mul+add), {threads} thread(s)", n / dt / 1e6))
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)

    p = Fr.modulus
    m = 1 << 18
    xs = [random.randrange(p) for _ in range(m)]
    ys = [random.randrange(p) for _ in range(m)]
    dt = best_of(lambda: [x * y % p for x, y in zip(xs, ys)], 3)
    rows.append(("Python ints, 1 thread", m / dt / 1e6))
    try:
        import gmpy2

        gx, gy, gp = [gmpy2.mpz(x) for x in xs], [gmpy2.mpz(y) for y in ys], gmpy2.mpz(p)
        dt = best_of(lambda: [x * y % gp for x, y in zip(gx, gy)], 3)
        rows.append(("gmpy2, 1 thread", m / dt / 1e6))
    except ImportError:
        pass

    print(f"Fr ({p.bit_length()}-bit) multiplications, vectors of 2^{args.log_n}")
    print(f"{'method':<48} {'M mul/s':>9}")
    for name, rate in rows:
        print(f"{name:<48} {rate:>9.1f}")


if __name__ == "__main__":
    main()
