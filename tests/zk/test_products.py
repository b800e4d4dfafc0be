"""Inner-product, Hadamard and matrix-product reductions in zero knowledge: honest proofs give
operand claims that hold, false claims are refused, tampered proofs are rejected."""

from __future__ import annotations

import random

import numpy as np
import pytest
import zkutil as U

from zk import multilinear as ml
from zk.claims import ComClaim
from zk.errors import ProverError, VerificationError
from zk.field import Fr
from zk.protocol import products as pr

P = Fr.modulus


def _holds(vec, claim: ComClaim):
    assert ml.evaluate(vec, list(claim.point)) == claim.com.v


def test_inner_product():
    rng = np.random.default_rng(1)
    a, b = Fr.random(64, rng), Fr.random(64, rng)
    v = Fr.inner(a, b)
    out = []

    def proto(ctx, value=v):
        (c,) = ctx.commit(b"v", 1, lambda: [value])
        out.append(pr.inner(ctx, c, 6, a, b))
    s = U.roundtrip(proto)
    _holds(a, out[0][0])
    _holds(b, out[0][1])
    with pytest.raises(ProverError):
        U.prove(lambda ctx: proto(ctx, v + 1))
    for _, bad in U.tampered(s):
        with pytest.raises(VerificationError):
            U.verify(proto, bad)


def test_hadamard():
    rng = np.random.default_rng(2)
    a, b = Fr.random(32, rng), Fr.random(32, rng)
    u = tuple(random.Random(2).randrange(P) for _ in range(5))
    v = ml.evaluate(Fr.mul(a, b), list(u))
    out = []

    def proto(ctx):
        (c,) = ctx.commit(b"v", 1, lambda: [v])
        out.append(pr.hadamard(ctx, ComClaim(u, c), a, b))
    U.roundtrip(proto)
    _holds(a, out[0][0])
    _holds(b, out[0][1])
    assert out[0][0].point == out[0][1].point


@pytest.mark.parametrize("rows,inner,cols", [(4, 8, 2), (1, 16, 4), (8, 1, 8)])
def test_matmul(rows, inner, cols):
    rng = np.random.default_rng(rows * inner * cols)
    A = rng.integers(-8, 8, size=(rows, inner))
    B = rng.integers(-8, 8, size=(inner, cols))
    shape = pr.MatmulShape(rows, inner, cols)
    fa, fb, fc = ml.from_matrix(A, rows, inner), ml.from_matrix(B, inner, cols), \
        ml.from_matrix(A @ B, rows, cols)
    a_vars, _, b_vars = shape.vars
    u = tuple(random.Random(1).randrange(P) for _ in range(a_vars + b_vars))
    out = []

    def proto(ctx, value=None):
        (c,) = ctx.commit(b"v", 1, lambda: [ml.evaluate(fc, list(u)) if value is None else value])
        out.append(pr.matmul(ctx, shape, ComClaim(u, c), fa, fb))
    s = U.roundtrip(proto)
    _holds(fa, out[0][0])
    _holds(fb, out[0][1])
    with pytest.raises(ProverError):
        U.prove(lambda ctx: proto(ctx, 12345))
    bad = next(b for w, b in U.tampered(s) if w.startswith("point"))
    with pytest.raises(VerificationError):
        U.verify(proto, bad)
