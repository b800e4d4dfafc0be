"""The commit-and-prove context: the prover's openings and the verifier's symbolic commitments
agree under every linear map; the stream is read exactly; blinds come from the OS CSPRNG."""

from __future__ import annotations

import random

import numpy as np
import pytest
import zkutil as U

from zk.commit.pedersen import DEFAULT_LABEL, PedersenKey, commit_scalars
from zk.errors import MalformedProofError, VerificationError
from zk.field import Fr
from zk.protocol import context as C
from zk.protocol.context import Com, Context, Stream, com_sum
from zk.transcript import Transcript

P = Fr.modulus


def test_linear_maps_agree_between_prover_and_verifier():
    rnd = random.Random(5)
    vals = [rnd.randrange(P) for _ in range(4)]
    ops = [(rnd.randrange(P), rnd.randrange(P)) for _ in range(6)]
    def build(ctx):
        a, b, c, d = ctx.commit(b"v", 4, lambda: vals)
        out = [a + b, a - c, 7 * d, d * 5 + 3, 11 - b, -c, com_sum([a, b, c], [2, 3, 4]),
               a + ctx.public(9)]
        for k1, k2 in ops:
            out.append(a * k1 + b * k2 - c)
        return out

    pc = Context.prover(Transcript(b"t"))
    res = build(pc)
    prover_results = [(c.v, c.r) for c in res]
    pc.finish()
    vc = Context.verifier(Transcript(b"t"), pc.stream())
    syms = build(vc)
    key = PedersenKey.derive(DEFAULT_LABEL, 1)
    want = commit_scalars(key, [v for v, _ in prover_results], [r for _, r in prover_results])
    for i, s in enumerate(syms):
        assert np.array_equal(vc.evaluate(s.s)[0], want[i]), i
    expected = [(vals[0] + vals[1]) % P, (vals[0] - vals[2]) % P, 7 * vals[3] % P]
    assert [v for v, _ in prover_results[:3]] == expected


def test_stream_read_exactly():
    def proto(ctx):
        ctx.commit(b"a", 2, lambda: [1, 2])
        ctx.scalars(b"s", 3, lambda: [4, 5, 6])
    s = U.roundtrip(proto)
    with pytest.raises(MalformedProofError, match="ends early"):
        U.verify(proto, Stream(s.points[:1], s.scalars))
    with pytest.raises(MalformedProofError, match="ends early"):
        U.verify(proto, Stream(s.points, s.scalars[:2]))
    with pytest.raises(MalformedProofError, match="does not use"):
        U.verify(proto, Stream(s.points, s.scalars + (7,)))
    with pytest.raises(VerificationError):  # a scalar changed: the transcript and the check
        U.verify(lambda ctx: (proto(ctx), ctx.equal(ctx.public(1), ctx.public(1), "x")),
                 Stream(s.points, (4, 5, 7)))


def test_false_equality_refused_or_rejected():
    def proto(ctx, b=2):
        x, y = ctx.commit(b"a", 2, lambda: [1, b])
        ctx.equal(x + 1, y, "x + 1 = y")
    U.roundtrip(proto)
    with pytest.raises(C.ProverError, match="x \\+ 1 = y"):
        U.prove(lambda ctx: proto(ctx, 3))
    with U.cheating():
        s = U.prove(lambda ctx: proto(ctx, 3))
    with pytest.raises(VerificationError):
        U.verify(proto, s)


def test_blinds_from_the_os_csprng(monkeypatch):
    asked = []
    real = C.secrets.token_bytes

    def spy(n):
        asked.append(n)
        return real(n)
    monkeypatch.setattr(C.secrets, "token_bytes", spy)
    xs = C.random_scalars(5)
    assert asked == [64] * 5 and len(set(xs)) == 5 and all(0 <= x < P for x in xs)
    # a seeded generator is reproducible (tests only) and the default is not
    a = C.random_scalars(3, np.random.default_rng(1))
    assert a == C.random_scalars(3, np.random.default_rng(1))
    assert C.random_scalars(3) != C.random_scalars(3)


def test_com_needs_a_proof_to_multiply():
    with pytest.raises(TypeError, match="proof"):
        Com(1, 2) * Com(3, 4)
