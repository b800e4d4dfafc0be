"""Zero-knowledge fraction sums (GKR layers): trees summing to zero verify at every depth, the
leaf claims hold, nonzero sums and zero denominators are refused, tampering is rejected."""

from __future__ import annotations

import numpy as np
import pytest
import zkutil as U

from zk import multilinear as ml
from zk.errors import ProverError, VerificationError
from zk.field import Fr
from zk.lookup import fractions as fr

P = Fr.modulus


def zero_sum_tree(n, seed=0):
    """Leaves p, q with sum p/q = 0 (the last numerator balances the others)."""
    rng = np.random.default_rng(seed)
    p, q = Fr.random(1 << n, rng), Fr.random(1 << n, rng)
    ps, qs = Fr.to_ints(p), Fr.to_ints(q)
    s = sum(a * pow(b, -1, P) for a, b in zip(ps[:-1], qs[:-1])) % P
    ps[-1] = (-s * qs[-1]) % P
    return Fr.from_ints(ps), q


def proto_for(p, q, n, out=None):
    def proto(ctx):
        leaves = fr.run(ctx, n, (lambda: np.stack([p, q])) if ctx.proving else None)
        ctx.equal(leaves.p, leaves.p, "claims are the caller's")  # consume nothing
        if out is not None:
            out.append(leaves)
    return proto


@pytest.mark.parametrize("n", [1, 2, 3, 6])
def test_honest_and_leaf_claims(n):
    p, q = zero_sum_tree(n, seed=n)
    out = []
    U.roundtrip(proto_for(p, q, n, out))
    leaves = out[0]
    assert len(leaves.point) == n
    assert ml.evaluate(p, list(leaves.point)) == leaves.p.v
    assert ml.evaluate(q, list(leaves.point)) == leaves.q.v


def test_nonzero_sum_and_zero_denominator_refused():
    p, q = zero_sum_tree(3)
    bad = Fr.to_ints(p)
    bad[0] = (bad[0] + 1) % P
    with pytest.raises(ProverError, match="do not sum to zero"):
        U.prove(proto_for(Fr.from_ints(bad), q, 3))
    qs = Fr.to_ints(q)
    qs[3] = 0
    with pytest.raises(ProverError):
        U.prove(proto_for(p, Fr.from_ints(qs), 3))


def test_tampered_rejected():
    p, q = zero_sum_tree(3, seed=4)
    proto = proto_for(p, q, 3)
    s = U.roundtrip(proto)
    for what, bad in U.tampered(s, max_points=40):
        with pytest.raises(VerificationError):
            U.verify(proto, bad)


def test_layers_are_the_fraction_tree():
    p, q = zero_sum_tree(3, seed=5)
    lay = fr.layers(np.stack([p, q]))
    ps, qs = Fr.to_ints(lay[1][0]), Fr.to_ints(lay[1][1])
    assert (ps[0] * qs[1] + ps[1] * qs[0]) % P == 0
    # the child bit is the top variable: layer 2 entry i combines leaves i and i + 4
    lp, lq = Fr.to_ints(p), Fr.to_ints(q)
    l2p, l2q = Fr.to_ints(lay[2][0]), Fr.to_ints(lay[2][1])
    for i in range(4):
        c = (lp[i] * pow(lq[i], -1, P) + lp[i + 4] * pow(lq[i + 4], -1, P)) % P
        assert l2q[i] == lq[i] * lq[i + 4] % P
        assert (l2p[i] * pow(l2q[i], -1, P)) % P == c
