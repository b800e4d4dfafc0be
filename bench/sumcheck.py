"""Sumcheck prover and verifier times, zero-knowledge and plain.

Run: python bench/sumcheck.py [--threads 1 2]
Rows: a degree-2 sumcheck (inner product of two vectors) over 2^16, 2^20, 2^22 entries, and the
matrix-product reduction for a 32x768 by 768x64 product (proof of one claim on C).
ZK: ``zk.protocol.products`` in a context: committed round polynomials, committed final values
with their proof of product, and the squashed dot-product proof of the round relations (a whole
proof). Plain: the retired protocol (tests/zk/legacy), round messages and final values in the
clear. Targets (issue 2): 2^20 entries proven in at most 1 s on 2 cores, verified in at most
10 ms.
"""

from __future__ import annotations

import argparse
import random
import time

import _legacy  # noqa: F401
import numba
import numpy as np
from legacy import products
from legacy import sumcheck as sc
from legacy.claims import Claim

from zk.claims import ComClaim
from zk.encoding import Writer
from zk.field import Fr
from zk.multilinear import evaluate, from_matrix, next_pow2
from zk.protocol import products as zkp
from zk.protocol.context import Context
from zk.transcript import Transcript

PROTO = b"bench/sumcheck"


def timed(fn, repeats=3):
    best, out = float("inf"), None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def size_of(proof) -> int:
    w = Writer()
    proof.write(w)
    return len(w.getvalue())


def zk_run(body):
    """Prove and verify one protocol body in contexts; (prove s, verify s, bytes)."""
    def prove():
        ctx = Context.prover(Transcript(PROTO))
        body(ctx)
        ctx.finish()
        return ctx.stream()
    tp, stream = timed(prove)

    def check():
        ctx = Context.verifier(Transcript(PROTO), stream)
        body(ctx)
        ctx.finish()
    tv, _ = timed(check, 5)
    return tp, tv, stream.size


def zk_inner_row(log_n: int, rng):
    n = 1 << log_n
    a, b = Fr.random(n, rng), Fr.random(n, rng)
    s = Fr.inner(a, b)

    def body(ctx):
        (c,) = ctx.commit(b"sum", 1, lambda: [s])
        ca, cb = zkp.inner(ctx, c, log_n, a, b)
        ctx.equal(ca.com, ca.com, "operand claims are the caller's")
    tp, tv, size = zk_run(body)
    return f"ZK degree-2 sumcheck, 2^{log_n} entries", tp, tv, size


def zk_matmul_row(rows: int, inner: int, cols: int, rng):
    A = rng.integers(-8, 8, size=(rows, inner))
    B = rng.integers(-8, 8, size=(inner, cols))
    shape = zkp.MatmulShape(next_pow2(rows), next_pow2(inner), next_pow2(cols))
    fa = from_matrix(A, shape.rows, shape.inner)
    fb = from_matrix(B, shape.inner, shape.cols)
    fc = from_matrix(A @ B, shape.rows, shape.cols)
    a_vars, _, b_vars = shape.vars
    u = tuple(random.randrange(Fr.modulus) for _ in range(a_vars + b_vars))
    v = evaluate(fc, u)

    def body(ctx):
        (c,) = ctx.commit(b"c", 1, lambda: [v])
        zkp.matmul(ctx, shape, ComClaim(u, c), fa, fb)
    tp, tv, size = zk_run(body)
    return f"ZK matrix product {rows}x{inner} by {inner}x{cols}", tp, tv, size


def inner_row(log_n: int, rng):
    n = 1 << log_n
    a, b = Fr.random(n, rng), Fr.random(n, rng)
    s = Fr.inner(a, b)
    tp, (proof, _, finals) = timed(lambda: sc.prove(Transcript(PROTO), [a, b], s))

    def check():
        sc.verify(Transcript(PROTO), proof, s, log_n, 2).check(finals)

    tv, _ = timed(check, 20)
    return f"plain degree-2 sumcheck, 2^{log_n} entries", tp, tv, size_of(proof)


def matmul_row(rows: int, inner: int, cols: int, rng):
    A = rng.integers(-8, 8, size=(rows, inner))
    B = rng.integers(-8, 8, size=(inner, cols))
    C = A @ B
    shape = products.MatmulShape(next_pow2(rows), next_pow2(inner), next_pow2(cols))
    fa = from_matrix(A, shape.rows, shape.inner)
    fb = from_matrix(B, shape.inner, shape.cols)
    fc = from_matrix(C, shape.rows, shape.cols)
    a_vars, _, b_vars = shape.vars
    u = tuple(random.randrange(Fr.modulus) for _ in range(a_vars + b_vars))
    claim = Claim(u, evaluate(fc, u))
    tp, (proof, _, _) = timed(lambda: products.prove_matmul(Transcript(PROTO), fa, fb, shape, claim))
    tv, _ = timed(lambda: products.verify_matmul(Transcript(PROTO), proof, shape, claim), 20)
    return f"plain matrix product {rows}x{inner} by {inner}x{cols}", tp, tv, size_of(proof)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--sizes", type=int, nargs="+", default=[16, 20, 22], help="log2 entries")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    print(f"{'statement':<44} {'threads':>7} {'prove (s)':>10} {'verify (ms)':>12} {'proof (B)':>10}")
    for threads in args.threads:
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        rows = [inner_row(k, rng) for k in args.sizes] + [matmul_row(32, 768, 64, rng)]
        rows += [zk_inner_row(k, rng) for k in args.sizes] + [zk_matmul_row(32, 768, 64, rng)]
        for name, tp, tv, size in rows:
            print(f"{name:<44} {threads:>7} {tp:>10.3f} {tv * 1e3:>12.2f} {size:>10}")


if __name__ == "__main__":
    main()
