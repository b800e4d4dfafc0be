"""Zero-knowledge sumcheck: honest proofs verify, every tampered element is rejected, false
claims are refused, and a prover that re-opens an earlier round after its challenge (through a
later round's commitment) is caught by the squash's per-round weights."""

from __future__ import annotations

import random

import numpy as np
import pytest
import zkutil as U

from zk import multilinear as ml
from zk.commit.generators import generators
from zk.commit.pedersen import commit_slices
from zk.errors import ProverError, VerificationError
from zk.field import Fr
from zk.protocol import sigma
from zk.protocol import sumcheck as zs
from zk.protocol.context import SUMCHECK_GENS, Context, VecCom
from zk.transcript import Transcript

P = Fr.modulus


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


def product_protocol(fs, k, m, u, total, public=(), record=None):
    """sum eq(u, x) prod_i f_i(x) = total, factors in ``public`` evaluated by the verifier."""
    ints = [Fr.to_ints(f) for f in fs]
    hidden = [i for i in range(k) if i not in public]

    def proto(ctx: Context):
        (claim,) = ctx.commit(b"claim", 1, lambda: [total])
        end = zs.run(ctx, claim, m, k, hidden, eq_point=u, num_factors=k,
                     tables=(lambda: fs) if ctx.proving else None)
        pub = 1
        for i in public:
            pub = pub * ml.evaluate_ints(ints[i], end.point) % P
        acc = None
        for i in hidden:
            acc = end.values[i] if acc is None else sigma.product(ctx, acc, end.values[i])
        end.close(ctx.public(pub) if acc is None else acc * pub)
        if record is not None:
            record.append(end)
    return proto


@pytest.mark.parametrize("m", [0, 1, 2, 4, 7])
@pytest.mark.parametrize("k", [1, 2, 3, 4])
@pytest.mark.parametrize("with_eq", [False, True])
def test_honest_proofs_verify(m, k, with_eq):
    fs, ints, u, total = statement(m, k, with_eq, seed=m * 10 + k)
    ends = []
    U.roundtrip(product_protocol(fs, k, m, u, total, record=ends))
    end = ends[0]
    assert [c.v for c in end.values] == [ml.evaluate_ints(f, end.point) for f in ints]


def test_public_factors_and_terms():
    m = 5
    fs, ints, u, _ = statement(m, 3, True, seed=3)
    terms = [(7, (0, 1)), (P - 2, (1, 2)), (3, (2,))]
    total = 0
    for x in range(1 << m):
        e = ml.eq_eval(u, [(x >> j) & 1 for j in range(m)])
        h = sum(c * np.prod([ints[i][x] for i in idx], dtype=object) for c, idx in terms)
        total = (total + e * h) % P

    def proto(ctx):
        end = zs.run(ctx, ctx.public(total), m, 2, hidden=[1, 2], eq_point=u, terms=terms,
                     tables=(lambda: fs) if ctx.proving else None, num_factors=3)
        f0 = ml.evaluate_ints(ints[0], end.point)
        b, c = end.values[1], end.values[2]
        bc = sigma.product(ctx, b, c)
        end.close(b * (7 * f0) + bc * (P - 2) + c * 3)

    U.roundtrip(proto)
    with pytest.raises(ProverError):
        U.prove(lambda ctx: proto_false(ctx, fs, m, u, terms, total + 1))


def proto_false(ctx, fs, m, u, terms, total):
    end = zs.run(ctx, ctx.public(total), m, 2, hidden=[0, 1, 2], eq_point=u, terms=terms,
                 tables=lambda: fs, num_factors=3)
    end.close(ctx.public(0))


def test_false_claim_refused_and_other_claim_rejected():
    fs, _, u, total = statement(4, 2, True)
    with pytest.raises(ProverError):
        U.prove(product_protocol(fs, 2, 4, u, total + 1))
    stream = U.prove(product_protocol(fs, 2, 4, u, total))

    def other(ctx):  # the verifier is told another claimed sum (public)
        end = zs.run(ctx, ctx.public(total + 1), 4, 2, [0, 1], eq_point=u, num_factors=2)
        end.close(sigma.product(ctx, *end.values))
    with pytest.raises(VerificationError):
        U.verify(other, stream)


def test_every_element_tampered_rejected():
    fs, _, u, total = statement(3, 3, True, seed=5)
    proto = product_protocol(fs, 3, 3, u, total)
    stream = U.roundtrip(proto)
    for what, bad in U.tampered(stream):
        with pytest.raises(VerificationError):
            U.verify(proto, bad)


def test_nothing_in_the_clear():
    """The stream's scalars are sigma responses only: none is a round value or a final value."""
    fs, ints, u, total = statement(5, 2, False, seed=8)
    ends = []
    stream = U.prove(product_protocol(fs, 2, 5, u, total, record=ends))
    finals = {c.v for c in ends[0].values}
    assert not finals & set(stream.scalars)
    assert total not in stream.scalars


def test_unclosed_sumcheck_is_a_protocol_error():
    fs, _, u, total = statement(2, 2, False)

    def proto(ctx):
        zs.run(ctx, ctx.public(total), 2, 2, [0, 1], tables=lambda: fs, num_factors=2)
    with pytest.raises(RuntimeError, match="undischarged"):
        U.prove(proto)


class _ForcedG(Transcript):
    """A transcript whose squash weight g (the second squash challenge) is forced to 1."""

    def __init__(self, protocol: bytes, force: bool) -> None:
        super().__init__(protocol)
        self.force, self.n = force, 0

    def challenge(self, label: bytes) -> int:
        c = super().challenge(label)
        if label == b"ctx/squash":
            self.n += 1
            if self.force and self.n == 2:
                return 1
        return c


def _reopen_attack(force_g: bool):
    """Prove the FALSE claim sum_x f(x) + 1 (2 variables, degree 1, no eq): round 0 is honest;
    after r_0, round 1's commitment also adds delta to round 0's two slots, with
    delta(0) + delta(1) = 1 (the false claim) and delta(r_0) = 0 (round 0's value at r_0 kept)."""
    f = Fr.to_ints(Fr.random(4, np.random.default_rng(0)))
    total = sum(f) % P
    gens = generators(Context.prover(Transcript(b"x")).label + SUMCHECK_GENS, 4)
    ctx = Context.prover(_ForcedG(U.PROTO, force_g))
    h0 = [(f[0] + f[2]) % P, (f[1] + f[3]) % P]
    ctx.commit_round(b"r", 2, lambda: h0)
    r0 = ctx.challenge(b"c")
    d1 = (1 - r0) * pow(1 - 2 * r0, -1, P) % P
    delta = [(1 - d1) % P, d1]
    f1 = [(f[0] + r0 * (f[1] - f[0])) % P, (f[2] + r0 * (f[3] - f[2])) % P]
    (b1,) = ctx.random(1)
    ctx._slots, ctx._rounds = 4, ctx._rounds + [(2, 2)]
    ctx.put_points(b"r", commit_slices(gens, ctx.key1.H, delta + f1, b1))
    r1 = ctx.challenge(b"c")
    lag0, lag1 = zs.lagrange_basis(2, r0), zs.lagrange_basis(2, r1)
    final = (f1[0] + r1 * (f1[1] - f1[0])) % P
    lam = ctx.challenge(b"ctx/squash")
    g = ctx.challenge(b"ctx/squash")
    # the verifier's public vector and target (see Context._squash)
    a = [1, 1, 0, 0]
    a = [(x - lam * y) % P for x, y in zip(a, lag0 + [0, 0])]
    a = [(x + lam * y) % P for x, y in zip(a, [0, 0, 1, 1])]
    a = [(x + lam * lam * y) % P for x, y in zip(a, [0, 0] + lag1)]
    gi = pow(g, -1, P)
    a = [a[0], a[1], a[2] * gi % P, a[3] * gi % P]
    target = (total + 1 + lam * lam * final) % P
    e = [(h0[0] + g * delta[0]) % P, (h0[1] + g * delta[1]) % P, g * f1[0] % P, g * f1[1] % P]
    blind = (ctx._round_blinds[0] + g * b1) % P
    actual = sum(x * y for x, y in zip(a, e)) % P
    sigma.dot_product_log(ctx, ctx.label + SUMCHECK_GENS, 4, VecCom(w=Fr.from_ints(e), r=blind),
                          a, ctx.public(actual))
    ctx._finished = True

    def verifier(v):
        o0 = v.commit_round(b"r", 2, None)
        v.relate([(o0, [1, 1])], v.public(total + 1))
        r0v = v.challenge(b"c")
        o1 = v.commit_round(b"r", 2, None)
        v.relate([(o1, [1, 1]), (o0, [-x % P for x in zs.lagrange_basis(2, r0v)])], 0)
        r1v = v.challenge(b"c")
        fin = ml.evaluate_ints(f, [r0v, r1v])  # f public here: the verifier evaluates it
        v.relate([(o1, zs.lagrange_basis(2, r1v))], v.public(fin))
    return ctx.stream(), verifier, actual == target


def _verify_forced(verifier, stream, force_g):
    ctx = Context.verifier(_ForcedG(U.PROTO, force_g), stream)
    verifier(ctx)
    ctx.finish()


def test_reopening_an_earlier_round_is_caught():
    stream, verifier, consistent = _reopen_attack(force_g=False)
    assert not consistent  # g^1 delta lands in round 0's slots, which are divided by g^0
    with pytest.raises(VerificationError):
        _verify_forced(verifier, stream, False)


def test_reopening_would_work_without_the_round_weights():
    """The same cheat passes when the weight g is forced to 1: the per-round weights are what
    make each round's commitment count for its own slots only."""
    stream, verifier, consistent = _reopen_attack(force_g=True)
    assert consistent
    _verify_forced(verifier, stream, True)  # accepted: a false sum "proven"


def test_lagrange_basis():
    for n in (1, 2, 3, 5):
        vals = [random.randrange(P) for _ in range(n)]
        x = random.randrange(P)
        assert sum(v * b for v, b in zip(vals, zs.lagrange_basis(n, x))) % P == \
            ml.interpolate(vals, x)


@pytest.mark.parametrize("skip1", [False, True])
def test_round_kernels_with_zero_pairs_equal_python_integers(skip1):
    """The round kernels skip pairs where every factor is 0 (a tensor's padding) and fold
    them without products: their sums and folds still equal Python integers, with zero pairs
    among nonzero ones and a public factor that is nonzero where the tensors are 0."""
    from gpu import poly as K

    rng = np.random.default_rng(3)
    m, k, deg = 5, 3, 3
    fs = [Fr.random(1 << m, rng) for _ in range(k)]
    for f in fs[:2]:
        f[8:16] = 0  # whole pairs zero in the tensors...
        f[21] = 0    # ...and a pair with one zero entry
    fs[2][8:12] = 0  # the third factor 0 on half of those pairs only
    f = np.stack(fs)
    ints = [Fr.to_ints(x) for x in fs]
    terms = [(1, (0,)), (5, (0, 1)), (7, (0, 1, 2)), (3, (2,))]
    kt, kc = zs.kernel_terms(terms)
    w = Fr.random(1 << (m - 1), rng)
    wi = Fr.to_ints(w)

    def sums(vals, ws):
        out = []
        for t in range(deg + 1):
            tot = 0
            for j in range(len(vals[0]) // 2):
                ext = [(v[2 * j] + t * (v[2 * j + 1] - v[2 * j])) % P for v in vals]
                h = sum(c * np.prod([ext[i] for i in idx], dtype=object) for c, idx in terms)
                tot += (ws[j] if ws is not None else 1) * h
            out.append(tot % P)
        return out

    got = Fr.to_ints(K.round_sums(Fr.desc, f, deg, kt, kc, w, skip1))
    want = sums(ints, wi)
    assert [g for t, g in enumerate(got) if not (skip1 and t == 1)] == \
        [x for t, x in enumerate(want) if not (skip1 and t == 1)]
    r = 123456789
    folded, s2 = K.fold_and_round_sums(Fr.desc, f, Fr.scalar(r), deg, kt, kc,
                                       w[: 1 << (m - 2)], skip1)
    fi = [[(v[2 * j] + r * (v[2 * j + 1] - v[2 * j])) % P for j in range(len(v) // 2)]
          for v in ints]
    assert [Fr.to_ints(folded[i]) for i in range(k)] == fi
    got2 = Fr.to_ints(s2)
    want2 = sums(fi, wi[: 1 << (m - 2)])
    assert [g for t, g in enumerate(got2) if not (skip1 and t == 1)] == \
        [x for t, x in enumerate(want2) if not (skip1 and t == 1)]


@pytest.mark.parametrize("skip1", [False, True])
@pytest.mark.parametrize("weighted", [False, True])
def test_fraction_layer_kernels_equal_the_generic_kernels(skip1, weighted):
    """A fraction layer's terms (p0 q1 + p1 q0 + lam q0 q1) take a kernel of their own: its
    sums and folds equal the generic kernels' (which the test above ties to Python ints)."""
    from gpu import poly as K

    rng = np.random.default_rng(4)
    m = 6
    f = np.stack([Fr.random(1 << m, rng) for _ in range(4)])
    kt, kc = zs.kernel_terms([(1, (0, 3)), (1, (1, 2)), (424242, (2, 3))])
    assert K._fraction_lambda(Fr.desc, f, 2, kt, kc) is not None
    w = Fr.random(1 << (m - 1), rng) if weighted else np.zeros((0, 4), dtype=np.uint64)
    w2 = w[: 1 << (m - 2)] if weighted else w
    keep = [t for t in range(3) if not (skip1 and t == 1)]
    got = Fr.to_ints(K.round_sums(Fr.desc, f, 2, kt, kc, w, skip1))
    want = Fr.to_ints(K._sum_parts(Fr.desc, K._round_parts(Fr.desc, f, 2, kt, kc, w, skip1, 3)))
    assert [got[t] for t in keep] == [want[t] for t in keep]
    r = Fr.scalar(987654321)
    folded, s = K.fold_and_round_sums(Fr.desc, f, r, 2, kt, kc, w2, skip1)
    out = np.empty_like(folded)
    s2 = K._sum_parts(Fr.desc, K._fold_round_parts(Fr.desc, f, r, out, 2, kt, kc, w2, skip1, 2))
    assert np.array_equal(folded, out)
    assert [Fr.to_ints(s)[t] for t in keep] == [Fr.to_ints(s2)[t] for t in keep]
