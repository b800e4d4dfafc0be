"""Generic sumcheck: honest proofs verify; every altered input is rejected."""

from __future__ import annotations

import random

import numpy as np
import pytest

from zk import multilinear as ml
from zk import sumcheck as sc
from zk.encoding import Reader, Writer
from zk.errors import ProverError, VerificationError
from zk.field import Fr
from zk.transcript import Transcript

P = Fr.modulus
PROTO = b"test/sumcheck"


def statement(m, k, with_eq, seed=0):
    rng = np.random.default_rng(seed)
    fs = [Fr.random(1 << m, rng) for _ in range(k)]
    ints = [Fr.to_ints(f) for f in fs]
    rnd = random.Random(seed)
    u = [rnd.randrange(P) for _ in range(m)] if with_eq else None
    total = 0
    for x in range(1 << m):
        v = 1
        for f in ints:
            v = v * f[x] % P
        if with_eq:
            v = v * ml.eq_eval(u, [(x >> j) & 1 for j in range(m)]) % P
        total = (total + v) % P
    return fs, ints, u, total


def run_verify(proof, total, m, deg, u, finals):
    sub = sc.verify(Transcript(PROTO), proof, total, m, deg, u)
    sub.check(finals)
    return sub


@pytest.mark.parametrize("m", [0, 1, 2, 4, 7])
@pytest.mark.parametrize("k", [1, 2, 3, 4])
@pytest.mark.parametrize("with_eq", [False, True])
def test_honest_proofs_verify(m, k, with_eq):
    fs, ints, u, total = statement(m, k, with_eq, seed=m * 10 + k)
    proof, point, finals = sc.prove(Transcript(PROTO), fs, total, u)
    deg = sc.degree_of(k, with_eq)
    sub = run_verify(proof, total, m, deg, u, finals)
    assert sub.point == point
    assert finals == [ml.evaluate_ints(f, point) for f in ints]


def test_prover_refuses_false_sum():
    fs, _, _, total = statement(3, 2, False)
    with pytest.raises(ProverError):
        sc.prove(Transcript(PROTO), fs, total + 1)


@pytest.fixture(scope="module")
def honest():
    m, k = 5, 3
    fs, ints, u, total = statement(m, k, True, seed=99)
    proof, point, finals = sc.prove(Transcript(PROTO), fs, total, u)
    return m, k, u, total, proof, finals


def test_changed_round_message_rejected(honest):
    m, deg, u, total, proof, finals = honest
    for j in range(m):
        for i in range(deg):
            rounds = [list(r) for r in proof.rounds]
            rounds[j][i] = (rounds[j][i] + 1) % P
            bad = sc.SumcheckProof(tuple(tuple(r) for r in rounds))
            with pytest.raises(VerificationError):
                run_verify(bad, total, m, deg, u, finals)


def test_changed_claim_rejected(honest):
    m, deg, u, total, proof, finals = honest
    with pytest.raises(VerificationError):
        run_verify(proof, (total + 1) % P, m, deg, u, finals)


def test_changed_final_value_rejected(honest):
    m, deg, u, total, proof, finals = honest
    for i in range(len(finals)):
        bad = list(finals)
        bad[i] = (bad[i] + 1) % P
        with pytest.raises(VerificationError):
            run_verify(proof, total, m, deg, u, bad)


def test_changed_transcript_rejected(honest):
    m, deg, u, total, proof, finals = honest
    with pytest.raises(VerificationError):
        sub = sc.verify(Transcript(b"another protocol"), proof, total, m, deg, u)
        sub.check(finals)
    t = Transcript(PROTO)
    t.absorb_scalar(b"extra", 1)
    with pytest.raises(VerificationError):
        sc.verify(t, proof, total, m, deg, u).check(finals)
    u2 = list(u)
    u2[0] = (u2[0] + 1) % P
    with pytest.raises(VerificationError):
        run_verify(proof, total, m, deg, u2, finals)


def test_wrong_shape_rejected(honest):
    m, deg, u, total, proof, finals = honest
    with pytest.raises(VerificationError):
        run_verify(sc.SumcheckProof(proof.rounds[:-1]), total, m, deg, u, finals)
    with pytest.raises(VerificationError):
        run_verify(proof, total, m, deg + 1, u, finals)


def test_serialisation_round_trip(honest):
    m, deg, u, total, proof, finals = honest
    w = Writer()
    proof.write(w)
    r = Reader(w.getvalue())
    assert sc.SumcheckProof.read(r, m, deg) == proof
    r.finish()


@pytest.mark.parametrize("with_eq", [False, True])
@pytest.mark.parametrize(
    "terms",
    [
        [(5, (0,))],
        [(1, (0, 1)), (1, (1, 2)), (7, (0, 2))],
        [(3, (0, 1, 2)), (P - 1, (2,))],
    ],
)
def test_sum_of_products(terms, with_eq):
    m = 4
    rng = np.random.default_rng(17)
    fs = [Fr.random(1 << m, rng) for _ in range(3)]
    ints = [Fr.to_ints(f) for f in fs]
    rnd = random.Random(4)
    u = [rnd.randrange(P) for _ in range(m)] if with_eq else None
    total = 0
    for x in range(1 << m):
        v = sc.combine(terms, [f[x] for f in ints])
        if with_eq:
            v = v * ml.eq_eval(u, [(x >> j) & 1 for j in range(m)]) % P
        total = (total + v) % P
    proof, point, finals = sc.prove(Transcript(PROTO), fs, total, u, terms)
    deg = sc.degree_of_terms(terms)
    sub = sc.verify(Transcript(PROTO), proof, total, m, deg, u)
    sub.check(finals, terms)
    used = terms[0][1][0]
    bad = list(finals)
    bad[used] = (bad[used] + 1) % P
    with pytest.raises(VerificationError):
        sub.check(bad, terms)
    with pytest.raises(ProverError):
        sc.prove(Transcript(PROTO), fs, total + 1, u, terms)
