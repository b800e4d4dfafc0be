"""Layered fraction sums: several trees of different depths, honest and tampered."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from zk import fractions as fr
from zk import multilinear as ml
from zk.encoding import Reader, Writer
from zk.errors import VerificationError
from zk.field import Fr
from zk.transcript import Transcript

P = Fr.modulus


def trees_of(depths, seed=0):
    rng = np.random.default_rng(seed)
    return [(Fr.random(1 << n, rng), Fr.random(1 << n, rng)) for n in depths]


@pytest.mark.parametrize("depths", [[1], [3], [4, 2, 4, 1], [6, 3]])
def test_honest(depths):
    trees = trees_of(depths)
    proof, claims = fr.prove(Transcript(b"f"), trees)
    w = Writer()
    proof.write(w)
    r = Reader(w.getvalue())
    back = fr.FractionProof.read(r, depths)
    r.finish()
    got = fr.verify(Transcript(b"f"), back, depths)
    assert got == claims
    for (p, q), c in zip(trees, got):
        ps, qs = Fr.to_ints(p), Fr.to_ints(q)
        assert c.numerator * pow(c.denominator, -1, P) % P == sum(
            a * pow(b, -1, P) for a, b in zip(ps, qs)) % P
        assert ml.evaluate(p, c.p.point) == c.p.value
        assert ml.evaluate(q, c.q.point) == c.q.value


def test_tampering_rejected_or_changes_claims():
    depths = [4, 2]
    trees = trees_of(depths, 1)
    proof, claims = fr.prove(Transcript(b"f"), trees)
    # a changed root changes the stated sum: either rejected or the leaf claims become false
    roots = [list(x) for x in proof.roots]
    roots[0][0] = (roots[0][0] + 1) % P
    try:
        got = fr.verify(Transcript(b"f"), replace(proof, roots=tuple(map(tuple, roots))), depths)
    except VerificationError:
        got = None
    if got is not None:
        p, q = trees[0]
        assert (ml.evaluate(p, got[0].p.point) != got[0].p.value
                or ml.evaluate(q, got[0].q.point) != got[0].q.value)
    sc, ends = proof.layers[1]
    ends = [list(e) for e in ends]
    ends[0][2] = (ends[0][2] + 1) % P
    bad = list(proof.layers)
    bad[1] = (sc, tuple(map(tuple, ends)))
    with pytest.raises(VerificationError):
        fr.verify(Transcript(b"f"), replace(proof, layers=tuple(bad)), depths)
    with pytest.raises(VerificationError):
        fr.verify(Transcript(b"f"), proof, [4, 3])
