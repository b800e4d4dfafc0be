"""Inner-product, Hadamard and matrix-product reductions: honest and tampered."""

from __future__ import annotations

import random
from dataclasses import replace

import numpy as np
import pytest

from zk import multilinear as ml
from zk import products as pr
from zk import sumcheck as sc
from zk.claims import Claim
from zk.errors import VerificationError
from zk.field import Fr
from zk.transcript import Transcript

P = Fr.modulus
PROTO = b"test/products"


def discharge(vec, claim):
    assert ml.evaluate(vec, claim.point) == claim.value


def test_inner_product():
    rng = np.random.default_rng(1)
    a, b = Fr.random(64, rng), Fr.random(64, rng)
    v = Fr.inner(a, b)
    proof, ca, cb = pr.prove_inner(Transcript(PROTO), a, b, v)
    va, vb = pr.verify_inner(Transcript(PROTO), proof, v, 6)
    assert (va, vb) == (ca, cb)
    discharge(a, va)
    discharge(b, vb)
    with pytest.raises(VerificationError):
        pr.verify_inner(Transcript(PROTO), proof, v + 1, 6)
    with pytest.raises(VerificationError):
        pr.verify_inner(Transcript(PROTO), replace(proof, a_value=(proof.a_value + 1) % P), v, 6)


def test_hadamard():
    rng = np.random.default_rng(2)
    a, b = Fr.random(32, rng), Fr.random(32, rng)
    c = Fr.mul(a, b)
    rnd = random.Random(2)
    u = tuple(rnd.randrange(P) for _ in range(5))
    claim = Claim(u, ml.evaluate(c, u))
    proof, _, _ = pr.prove_hadamard(Transcript(PROTO), a, b, claim)
    va, vb = pr.verify_hadamard(Transcript(PROTO), proof, claim)
    discharge(a, va)
    discharge(b, vb)
    with pytest.raises(VerificationError):
        pr.verify_hadamard(Transcript(PROTO), proof, Claim(u, (claim.value + 1) % P))
    with pytest.raises(VerificationError):
        pr.verify_hadamard(Transcript(PROTO), replace(proof, b_value=(proof.b_value + 1) % P), claim)


@pytest.mark.parametrize("rows,inner,cols", [(1, 1, 1), (2, 4, 8), (8, 2, 1), (16, 32, 4)])
def test_matmul(rows, inner, cols):
    rng = np.random.default_rng(rows * inner * cols)
    A = rng.integers(-8, 8, size=(rows, inner))
    B = rng.integers(-8, 8, size=(inner, cols))
    C = A @ B
    fa, fb, fc = Fr.from_signed(A), Fr.from_signed(B), Fr.from_signed(C)
    shape = pr.MatmulShape(rows, inner, cols)
    rnd = random.Random(rows)
    a_vars, _, b_vars = shape.vars
    u = tuple(rnd.randrange(P) for _ in range(a_vars + b_vars))
    claim = Claim(u, ml.evaluate(fc, u))
    proof, pa, pb = pr.prove_matmul(Transcript(PROTO), fa, fb, shape, claim)
    ca, cb = pr.verify_matmul(Transcript(PROTO), proof, shape, claim)
    assert (ca, cb) == (pa, pb)
    discharge(fa, ca)
    discharge(fb, cb)
    # a wrong product: the claim on C comes from C + E; either the sumcheck or a discharge fails
    C2 = C.copy()
    C2[0, 0] += 1
    bad_claim = Claim(u, ml.evaluate(Fr.from_signed(C2), u))
    with pytest.raises(VerificationError):
        pr.verify_matmul(Transcript(PROTO), proof, shape, bad_claim)


def test_matmul_with_other_weights_fails_discharge():
    rng = np.random.default_rng(5)
    A = rng.integers(-8, 8, size=(4, 8))
    B = rng.integers(-8, 8, size=(8, 4))
    B_other = B.copy()
    B_other[3, 2] += 1
    C_other = A @ B_other  # the prover computed with other weights
    shape = pr.MatmulShape(4, 8, 4)
    u = tuple(random.Random(1).randrange(P) for _ in range(4))
    claim = Claim(u, ml.evaluate(Fr.from_signed(C_other), u))
    proof, _, _ = pr.prove_matmul(Transcript(PROTO), Fr.from_signed(A), Fr.from_signed(B_other),
                                  shape, claim)
    _, cb = pr.verify_matmul(Transcript(PROTO), proof, shape, claim)
    assert ml.evaluate(Fr.from_signed(B), cb.point) != cb.value  # the opening would catch it


def test_sumcheck_degree_is_enforced():
    rng = np.random.default_rng(3)
    a, b = Fr.random(8, rng), Fr.random(8, rng)
    proof, _, _ = pr.prove_inner(Transcript(PROTO), a, b, Fr.inner(a, b))
    longer = sc.SumcheckProof(tuple(r + (0,) for r in proof.sumcheck.rounds))
    with pytest.raises(VerificationError):
        pr.verify_inner(Transcript(PROTO), replace(proof, sumcheck=longer), Fr.inner(a, b), 3)
