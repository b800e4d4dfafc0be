"""Sigma protocols over Pedersen commitments: completeness, rejection of every tampered element,
special soundness (two transcripts with one first message and two challenges give the witness)
and an honest-verifier simulator whose transcripts verify."""

from __future__ import annotations

import random

import numpy as np
import pytest
import zkutil as U

from zk import curve as ZC
from zk.commit.generators import generators
from zk.commit.pedersen import DEFAULT_LABEL, PedersenKey, commit_scalars, commit_slices
from zk.errors import ProverError, VerificationError
from zk.field import Fr
from zk.protocol import sigma
from zk.protocol.context import H_ID, U_ID, Com, Context, Stream, Sym, VecCom
from zk.transcript import Transcript

P = Fr.modulus
KEY = PedersenKey.derive(DEFAULT_LABEL, 1)
VEC = DEFAULT_LABEL + b"/test-vectors"


class Scripted(Transcript):
    """A transcript whose challenges for chosen labels come from a script (interactive runs)."""

    def __init__(self, protocol: bytes, script: dict[bytes, list[int]]) -> None:
        super().__init__(protocol)
        self.script = {k: list(v) for k, v in script.items()}

    def challenge(self, label: bytes) -> int:
        c = super().challenge(label)
        queue = self.script.get(label)
        return queue.pop(0) if queue else c


def _run_scripted(protocol, script, seed):
    """The prover's stream under scripted challenges and a fixed nonce tape."""
    ctx = Context.prover(Scripted(U.PROTO, script), np.random.default_rng(seed))
    protocol(ctx)
    return ctx


def _statement(values):
    """Openings (v, r) and their commitment points."""
    rs = Fr.to_ints(Fr.random(len(values), np.random.default_rng(99)))
    pts = commit_scalars(KEY, [v % P for v in values], rs)
    return list(zip(values, rs)), pts


def _sym_ctx(points: np.ndarray) -> tuple[Context, list[Sym]]:
    ctx = Context.verifier(Transcript(U.PROTO), Stream((), ()))
    return ctx, [Sym.point(i) for i in ctx.register(points)]


def _is_identity(ctx: Context, sym: Sym) -> bool:
    return not ctx.evaluate(sym).any()


# ---------------------------------------------------------------- fixtures of statements


def committed(ctx: Context, label: bytes, values):
    return ctx.commit(label, len(values), lambda: values)


def opening_proto(v):
    def proto(ctx):
        (c,) = committed(ctx, b"c", [v])
        sigma.opening(ctx, c)
    return proto


def zero_proto(v):
    def proto(ctx):
        (c,) = committed(ctx, b"c", [v])
        sigma.zero(ctx, c)
    return proto


def equality_proto(a, b):
    def proto(ctx):
        ca, cb = committed(ctx, b"c", [a, b])
        sigma.equality(ctx, ca, cb)
    return proto


def product_proto(x, y, claim=None):
    def proto(ctx):
        cx, cy = committed(ctx, b"c", [x, y])
        z = sigma.product(ctx, cx, cy)
        ctx.equal(z, ctx.public(x * y if claim is None else claim), "z = x y")
    return proto


def product_sum_proto(xs, ys, coefs, claim=None):
    def proto(ctx):
        cx = committed(ctx, b"c", xs)
        cy = committed(ctx, b"c", ys)
        z = sigma.product_sum(ctx, list(zip(cx, cy)), coefs)
        want = sum(c * x * y for c, x, y in zip(coefs, xs, ys)) if claim is None else claim
        ctx.equal(z, ctx.public(want), "z = sum c x y")
    return proto


def dot_proto(w, a, log, value=None):
    n = len(w)

    def proto(ctx):
        if ctx.proving:
            (r,) = ctx.random(1)
            ctx.put_points(b"w", commit_slices(generators(VEC, n), KEY.H, w, r))
            vec = VecCom(w=Fr.from_ints(w), r=r)
        else:
            vec = VecCom(s=Sym.point(ctx.take_points(b"w", 1)[0]))
        y = sum(x * b for x, b in zip(w, a)) % P if value is None else value
        (t,) = committed(ctx, b"t", [y])
        (sigma.dot_product_log if log else sigma.dot_product)(ctx, VEC, n, vec, a, t)
    return proto


CASES = {
    "opening": lambda: opening_proto(12345),
    "zero": lambda: zero_proto(0),
    "equality": lambda: equality_proto(77, 77),
    "product": lambda: product_proto(6, 7),
    "product-sum": lambda: product_sum_proto([6, 8, 10], [7, 9, 11], [1, 5, P - 3]),
    "dot-linear": lambda: dot_proto([random.Random(1).randrange(P) for _ in range(8)],
                                    [random.Random(2).randrange(P) for _ in range(8)], False),
    "dot-log": lambda: dot_proto([random.Random(3).randrange(P) for _ in range(16)],
                                 [random.Random(4).randrange(P) for _ in range(16)], True),
    "dot-log-1": lambda: dot_proto([5], [7], True),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_complete_and_every_element_tampered_rejected(name):
    proto = CASES[name]()
    stream = U.roundtrip(proto)
    n = 0
    for what, bad in U.tampered(stream):
        with pytest.raises(VerificationError):
            U.verify(proto, bad)
        n += 1
    assert n >= len(stream.scalars) + len(stream.points)


def test_sizes_match_the_table():
    for name, (pts, sc) in {"opening": (2, 2), "zero": (2, 1), "product": (2 + 1 + 3 + 1, 5 + 1)}.items():
        s = U.prove(CASES[name]())
        assert (len(s.points), len(s.scalars)) == (pts, sc), name
    s = U.prove(CASES["dot-log"]())  # w, t, 2 log 16 + 1
    assert (len(s.points), len(s.scalars)) == (2 + 9, 2)
    s = U.prove(CASES["dot-linear"]())
    assert (len(s.points), len(s.scalars)) == (2 + 2, 8 + 2)


def test_false_statements_refused_by_the_prover():
    with pytest.raises(ProverError):
        U.prove(zero_proto(3))
    with pytest.raises(ProverError):
        U.prove(equality_proto(3, 4))
    with pytest.raises(ProverError):
        U.prove(product_proto(6, 7, claim=43))
    with pytest.raises(ProverError):
        U.prove(dot_proto([1, 2], [3, 4], True, value=12))
    with pytest.raises(ProverError):
        U.prove(dot_proto([1, 2], [3, 4], False, value=12))


def test_verifier_statement_must_match():
    """A proof about one statement does not verify another (the commitments differ)."""
    s = U.prove(product_proto(6, 7))
    with pytest.raises(VerificationError):
        U.verify(product_proto(6, 7, claim=43), s)


def test_fresh_randomness_every_run():
    """Two proofs of one statement share no point and no scalar (OS randomness)."""
    a, b = U.prove(product_proto(6, 7)), U.prove(product_proto(6, 7))
    assert not set(a.points) & set(b.points)
    assert not set(a.scalars) & set(b.scalars)


# ---------------------------------------------------------------- special soundness


def _two_runs(proto, label, seed=5):
    c1, c2 = 1111, 2222
    r1 = _run_scripted(proto, {label: [c1]}, seed)
    r2 = _run_scripted(proto, {label: [c2]}, seed)
    return r1, r2, c1, c2


def _opening_on_tape(value, seed=5):
    """The commitment the prover makes first when its nonce tape is seeded with ``seed``."""
    ctx = Context.prover(Transcript(U.PROTO), np.random.default_rng(seed))
    return ctx.commit(b"c", 1, lambda: [value])[0]


def test_special_soundness_opening_zero_product():
    v = 424242
    a, b, c1, c2 = _two_runs(opening_proto(v), sigma.L_CHALLENGE)
    assert a._pts[:2] == b._pts[:2]  # same commitment and first message, two challenges
    com = _opening_on_tape(v)
    assert sigma.extract_opening(c1, a._sc, c2, b._sc) == (com.v, com.r)
    a, b, c1, c2 = _two_runs(zero_proto(0), sigma.L_CHALLENGE)
    assert a._pts[:2] == b._pts[:2]
    assert sigma.extract_zero(c1, a._sc, c2, b._sc) == _opening_on_tape(0).r
    x, y = 6, 7
    a, b, c1, c2 = _two_runs(product_proto(x, y), sigma.L_CHALLENGE)
    assert a._pts[:6] == b._pts[:6]
    ctx = Context.prover(Transcript(U.PROTO), np.random.default_rng(5))
    cx, cy = ctx.commit(b"c", 2, lambda: [x, y])
    (cz,) = ctx.commit(b"z", 1, lambda: [x * y])
    got = sigma.extract_product(c1, a._sc[:5], c2, b._sc[:5])
    assert got == (x, cx.r, y, cy.r, cz.r)


def test_special_soundness_linear_dot_product():
    w = [random.Random(7).randrange(P) for _ in range(4)]
    a_vec = [random.Random(8).randrange(P) for _ in range(4)]
    a, b, c1, c2 = _two_runs(dot_proto(w, a_vec, False), sigma.L_CHALLENGE)
    assert a._pts[:4] == b._pts[:4]
    got_w, _, _ = sigma.extract_dot_product(c1, a._sc, c2, b._sc)
    assert got_w == w


def test_special_soundness_log_dot_product_full_tree():
    """n = 2: three round challenges u, each with two final challenges e, give w."""
    w = [random.Random(9).randrange(P) for _ in range(2)]
    av = [random.Random(10).randrange(P) for _ in range(2)]
    proto = dot_proto(w, av, True)
    us, es = [3, 5, 11], [13, 17]
    finals = {}
    first = None
    for u in us:
        for e in es:
            ctx = _run_scripted(proto, {sigma.L_IPA_U: [u], sigma.L_IPA_E: [e]}, seed=21)
            if first is None:
                first = ctx._pts[:4]  # C_w, C_y, L, R: fixed before u
            assert ctx._pts[:4] == first
            finals[(u, e)] = ctx._sc[-2:]
    folded = []
    for u in us:
        za, zb = finals[(u, es[0])], finals[(u, es[1])]
        de = pow(es[0] - es[1], -1, P)
        folded.append(((za[0] - zb[0]) * de % P, (za[1] - zb[1]) * de % P))
    # P = sum nu_i P'_i with sum nu_i u_i^2 = 0, sum nu_i = 1, sum nu_i u_i^-2 = 0
    rows = [[u * u % P for u in us], [1, 1, 1], [pow(u, -2, P) for u in us]]
    nu = _solve(rows, [0, 1, 0])
    w0 = sum(n * f * pow(u, -1, P) for n, (f, _), u in zip(nu, folded, us)) % P
    w1 = sum(n * f * u for n, (f, _), u in zip(nu, folded, us)) % P
    assert [w0, w1] == w


def _solve(rows, rhs):
    """Gaussian elimination mod P (3x3)."""
    m = [list(r) + [b] for r, b in zip(rows, rhs)]
    n = len(m)
    for c in range(n):
        piv = next(i for i in range(c, n) if m[i][c] % P)
        m[c], m[piv] = m[piv], m[c]
        inv = pow(m[c][c], -1, P)
        m[c] = [x * inv % P for x in m[c]]
        for i in range(n):
            if i != c and m[i][c]:
                f = m[i][c]
                m[i] = [(x - f * y) % P for x, y in zip(m[i], m[c])]
    return [m[i][n] for i in range(n)]


# ---------------------------------------------------------------- simulators


def test_simulators_produce_accepting_transcripts():
    rnd = random.Random(3)
    (op_x, op_y, op_z), pts = _statement([6, 7, 42])
    ctx, (Cx, Cy, Cz) = _sym_ctx(pts)
    c = rnd.randrange(P)

    def accept(first_syms, checks):
        first_pts = np.concatenate([ctx.evaluate(s) for s in first_syms])
        ids = ctx.register(first_pts)
        return all(_is_identity(ctx, eq) for eq in checks([Sym.point(i) for i in ids]))

    z = [rnd.randrange(P) for _ in range(5)]
    assert accept(sigma.simulate_product(Cx, Cy, Cz, c, z),
                  lambda f: sigma.product_check(Cx, Cy, Cz, f, c, z))
    z2 = [rnd.randrange(P) for _ in range(2)]
    assert accept(sigma.simulate_opening(Cx, c, z2),
                  lambda f: sigma.opening_check(Cx, f[0], c, z2))
    assert accept(sigma.simulate_zero(Cx - Cy, c, z2[:1]),
                  lambda f: sigma.zero_check(Cx - Cy, f[0], c, z2[:1]))
    gens = ctx.generator_ids(VEC, 4)
    a = [rnd.randrange(P) for _ in range(4)]
    zd = [rnd.randrange(P) for _ in range(6)]
    assert accept(sigma.simulate_dot_product(Cx, Cy, gens, a, c, zd),
                  lambda f: sigma.dot_product_check(Cx, Cy, gens, a, f, c, zd))
    # a real (non-simulated) first message with wrong responses does not accept
    assert not accept(sigma.simulate_product(Cx, Cy, Cz, c, z),
                      lambda f: sigma.product_check(Cx, Cy, Cz, f, c, [x + 1 for x in z]))


def test_simulated_product_of_a_false_statement_also_accepts():
    """Zero knowledge's flip side: the simulator needs no witness (6 x 7 != 43 here), which is
    why the challenge must come after the first message (Fiat-Shamir binds it)."""
    _, pts = _statement([6, 7, 43])
    ctx, (Cx, Cy, Cz) = _sym_ctx(pts)
    c, z = 5, [1, 2, 3, 4, 5]
    first = np.concatenate([ctx.evaluate(s) for s in sigma.simulate_product(Cx, Cy, Cz, c, z)])
    ids = ctx.register(first)
    assert all(_is_identity(ctx, eq) for eq in
               sigma.product_check(Cx, Cy, Cz, [Sym.point(i) for i in ids], c, z))


def test_commitments_are_pedersen():
    (o,), pts = _statement([5])
    from py_ecc import optimized_bn128 as bn
    Ug, Hg = ZC.to_py_ecc(KEY.U)[0], ZC.to_py_ecc(KEY.H)[0]
    want = bn.add(bn.multiply(Ug, 5), bn.multiply(Hg, o[1]))
    assert bn.eq(ZC.to_py_ecc(pts)[0], want)
    assert U_ID == 0 and H_ID == 1
    assert isinstance(Com(1, 2) + 3, Com)


# ---------------------------------------------------------------- sum of products


def test_product_sum_size_refusal_and_statement_binding():
    """K pairs: C_z, 2K + 1 first messages, 4K + 1 responses; a false sum is refused by the
    prover and a proof of one sum does not verify another."""
    for k in (1, 2, 3):
        xs, ys, cs = list(range(3, 3 + k)), list(range(10, 10 + k)), [2] * k
        s = U.prove(product_sum_proto(xs, ys, cs))
        # 2k committed inputs + C_z + 2k + 1 messages + the equality's zero proof point
        assert (len(s.points), len(s.scalars)) == (2 * k + 1 + 2 * k + 1 + 1, 4 * k + 1 + 1)
    with pytest.raises(ProverError):
        U.prove(product_sum_proto([6, 8], [7, 9], [1, 1], claim=6 * 7 + 8 * 9 + 1))
    s = U.prove(product_sum_proto([6, 8], [7, 9], [1, 1]))
    with pytest.raises(VerificationError):
        U.verify(product_sum_proto([6, 8], [7, 9], [1, 2]), s)
    with pytest.raises(VerificationError):
        U.verify(product_sum_proto([6, 8], [7, 9], [1, 1], claim=6 * 7 + 8 * 9 + 1), s)


def test_special_soundness_product_sum():
    """Two transcripts with one first message give every opening and tau, hence the sum."""
    xs, ys, cs = [6, 8], [7, 9], [3, 5]
    a, b, c1, c2 = _two_runs(product_sum_proto(xs, ys, cs), sigma.L_CHALLENGE)
    assert a._pts[:4 + 1 + 5] == b._pts[:4 + 1 + 5]
    ctx = Context.prover(Transcript(U.PROTO), np.random.default_rng(5))
    cx = ctx.commit(b"c", 2, lambda: xs)
    cy = ctx.commit(b"c", 2, lambda: ys)
    (cz,) = ctx.commit(b"z", 1, lambda: [0])
    openings, tau = sigma.extract_product_sum(c1, a._sc[:9], c2, b._sc[:9])
    assert openings == [(x.v, x.r, y.v, y.r) for x, y in zip(cx, cy)]
    assert tau == (cz.r - sum(c * y.v * x.r for c, x, y in zip(cs, cx, cy))) % P


def test_product_sum_simulator_accepts_and_wrong_responses_do_not():
    rnd = random.Random(8)
    _, pts = _statement([6, 8, 7, 9, 6 * 7 * 3 + 8 * 9 * 5 + 1])  # a false sum: HVZK needs none
    ctx, (x0, x1, y0, y1, cz) = _sym_ctx(pts)
    e = rnd.randrange(P)
    z = [rnd.randrange(P) for _ in range(9)]
    cs = [3, 5]
    first = np.concatenate([ctx.evaluate(q) for q in sigma.simulate_product_sum(
        [x0, x1], [y0, y1], cz, cs, e, z)])
    ids = [Sym.point(i) for i in ctx.register(first)]
    checks = sigma.product_sum_check([x0, x1], [y0, y1], cz, cs, ids, e, z)
    assert all(_is_identity(ctx, q) for q in checks)
    bad = sigma.product_sum_check([x0, x1], [y0, y1], cz, cs, ids, e, z[:-1] + [z[-1] + 1])
    assert not all(_is_identity(ctx, q) for q in bad)
