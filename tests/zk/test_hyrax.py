"""Hyrax commitments and zero-knowledge openings: commitments against py_ecc, openings at one or
several points (shared column point: one argument; several: one batching sumcheck), wrong values
refused, other tensors and tampering rejected, claimed values never in the clear."""

from __future__ import annotations

import numpy as np
import pytest
import zkutil as U
from py_ecc import optimized_bn128 as bn

from zk import curve as ZC
from zk import multilinear as ml
from zk.claims import ComClaim
from zk.commit import hyrax as H
from zk.commit.pedersen import PedersenKey
from zk.encoding import from_bytes, to_bytes
from zk.errors import MalformedProofError, ProverError, VerificationError
from zk.field import Fr

P = Fr.modulus


def _pt(rng, n):
    return tuple(int(v) for v in rng.integers(0, 2**62, n))


@pytest.fixture(scope="module")
def tensor():
    rng = np.random.default_rng(42)
    T = rng.integers(-128, 128, size=(6, 9))  # 54 entries -> 2^6, 2^3 x 2^3
    com, wit = H.commit(T, rng=rng)
    return T, com, wit


def opening(com, wit, points, values=None, external=True):
    def proto(ctx):
        t = H.bind(ctx, com, wit if ctx.proving else None)
        vals = values or [wit.evaluate(p) for p in points]
        coms = ctx.commit(b"v", len(points), lambda: vals)
        H.open(ctx, t, [ComClaim(p, c) for p, c in zip(points, coms)])
    return proto


def test_commitment_shape_and_rows_match_py_ecc(tensor):
    T, com, wit = tensor
    assert (com.num_vars, com.log_cols, len(com.rows)) == (6, 3, 8)
    key = PedersenKey.derive(H.DEFAULT_LABEL, 8)
    G, Hh = ZC.to_py_ecc(key.G), ZC.to_py_ecc(key.H)[0]
    flat = list(T.reshape(-1)) + [0] * 10
    blinds = Fr.to_ints(wit.blinds)
    for i in range(8):
        want = bn.multiply(Hh, blinds[i])
        for g, v in zip(G, flat[8 * i:8 * i + 8]):
            want = bn.add(want, bn.multiply(g, int(v) % P))
        assert bn.eq(ZC.to_py_ecc(com.row_points[i:i + 1])[0], want)
    assert from_bytes(H.HyraxCommitment, to_bytes(com)) == com


def test_evaluation_matches_definition(tensor):
    T, com, wit = tensor
    p = _pt(np.random.default_rng(1), 6)
    flat = [int(v) for v in T.reshape(-1)] + [0] * (64 - T.size)
    assert wit.evaluate(p) == ml.evaluate_ints(flat, p)


def test_openings_one_and_several_points(tensor):
    _, com, wit = tensor
    rng = np.random.default_rng(7)
    p0 = _pt(rng, 6)
    for points in ([p0], [p0, p0[:3] + _pt(rng, 3)], [p0, _pt(rng, 6), _pt(rng, 6)]):
        s = U.roundtrip(opening(com, wit, points))
        assert not {wit.evaluate(p) for p in points} & set(s.scalars)  # values never sent


@pytest.mark.parametrize("shape,log_cols", [((1,), None), ((8,), 0), ((8,), 3), ((3, 50), None)])
def test_shapes_and_field_tensors(shape, log_cols):
    rng = np.random.default_rng(sum(shape))
    vec = Fr.random(int(np.prod(shape)), rng)
    com, wit = H.commit_field(vec, log_cols=log_cols, rng=rng)
    p = _pt(rng, wit.num_vars)
    U.roundtrip(opening(com, wit, [p]))


def test_wrong_value_refused_and_rejected(tensor):
    _, com, wit = tensor
    rng = np.random.default_rng(3)
    pts = [_pt(rng, 6), _pt(rng, 6)]
    good = [wit.evaluate(p) for p in pts]
    with pytest.raises(ProverError):
        U.prove(opening(com, wit, pts, [good[0], good[1] + 1]))
    s = U.prove(opening(com, wit, pts))
    with pytest.raises(VerificationError):  # the verifier expects other points
        U.verify(opening(com, wit, pts[::-1]), s)


def test_other_tensor_rejected(tensor):
    T, com, wit = tensor
    pts = [_pt(np.random.default_rng(5), 6)]
    s = U.prove(opening(com, wit, pts))
    T2 = T.copy()
    T2[0, 0] += 1
    com2, _ = H.commit(T2, rng=np.random.default_rng(0))
    with pytest.raises(VerificationError):
        U.verify(opening(com2, None, pts, [0]), s)
    com3, _ = H.commit(T, rng=np.random.default_rng(1))  # fresh blinds: another commitment
    with pytest.raises(VerificationError):
        U.verify(opening(com3, None, pts, [0]), s)


def test_every_element_tampered_rejected(tensor):
    _, com, wit = tensor
    rng = np.random.default_rng(9)
    pts = [_pt(rng, 6), _pt(rng, 6)]
    s = U.roundtrip(opening(com, wit, pts))
    for what, bad in U.tampered(s):
        with pytest.raises(VerificationError):
            U.verify(opening(com, wit, pts, [0, 0]), bad)


def test_commit_in_proof_and_malformed_rows(tensor):
    T, _, _ = tensor
    rng = np.random.default_rng(11)
    pts = [_pt(rng, 6)]
    flat = np.zeros(64, dtype=np.int64)
    flat[:54] = T.reshape(-1)

    def proto(ctx):
        t = H.commit_in(ctx, 6, 3, (lambda: H.commit(flat, log_cols=3)) if ctx.proving else None)
        (c,) = ctx.commit(b"v", 1, lambda: [t.witness.evaluate(pts[0])])
        H.open(ctx, t, [ComClaim(pts[0], c)])
    s = U.roundtrip(proto)
    q = ZC.C._Q
    x_off = next(x for x in range(1, 100) if pow(x**3 + 3, (q - 1) // 2, q) != 1)
    bad = list(s.points)
    bad[2] = x_off.to_bytes(32, "little")
    with pytest.raises(MalformedProofError, match="not on the curve"):
        U.verify(proto, type(s)(tuple(bad), s.scalars))
    cdata = to_bytes(tensor[1])
    at = cdata.index(tensor[1].rows[1])
    with pytest.raises(MalformedProofError):
        from_bytes(H.HyraxCommitment, cdata[:at] + (q + 1).to_bytes(32, "little") + cdata[at + 32:])


def test_integer_witness_embeds_on_first_use_and_owns_its_values() -> None:
    """commit keeps an integer tensor's witness as int64 (8 bytes an entry) and embeds it in Fr
    when an opening first asks: the same matrix as committing its Fr embedding, the same
    opening, and no tie to the caller's array."""
    rng = np.random.default_rng(3)
    x = rng.integers(-(2**40), 2**40, size=(4, 8))  # a power of two: no padding copy
    com, wit = H.commit(x, rng=np.random.default_rng(1))
    assert wit.values.dtype == np.int64 and wit.values.shape == (1 << wit.num_vars,)
    com_f, wit_f = H.commit_field(Fr.from_signed(x), rng=np.random.default_rng(1))
    assert com.rows == com_f.rows
    want = wit_f.matrix.copy()
    x[0, 0] += 1  # the caller's array is not the witness
    assert (wit.matrix == want).all()
    pt = [int(v) for v in rng.integers(1, 2**60, wit.num_vars)]
    assert wit.evaluate(pt) == wit_f.evaluate(pt)
    with pytest.raises(ValueError, match="witness of shape"):
        H.HyraxWitness(wit.num_vars, wit.log_cols, wit.values[:-1], wit.blinds)


# ---------------------------------------------------------------- batched openings


@pytest.fixture(scope="module")
def several():
    """Three tensors of different column counts (2^3, 2^1, 2^4 columns)."""
    rng = np.random.default_rng(21)
    out = []
    for shape, cols in (((6, 9), 3), ((5,), 1), ((16, 16), 4)):
        T = rng.integers(-1000, 1000, size=shape)
        com, wit = H.commit(T, log_cols=cols, rng=rng)
        out.append((T, com, wit))
    return out


def batch(tensors, points, values=None):
    """points[i]: the claim points on tensor i; values: the claimed values (default true)."""
    def proto(ctx):
        items = []
        for i, (_, com, wit) in enumerate(tensors):
            t = H.bind(ctx, com, wit if ctx.proving else None)
            vals = (values[i] if values else [wit.evaluate(p) for p in points[i]])
            coms = ctx.commit(b"v", len(points[i]), lambda vals=vals: vals)
            items.append((t, [ComClaim(p, c) for p, c in zip(points[i], coms)]))
        H.open_batch(ctx, items)
    return proto


def _batch_points(several, rng):
    pts = []
    for _, com, _ in several:
        n, b = com.num_vars, com.log_cols
        p0 = _pt(rng, n)
        pts.append([p0, p0[:b] + _pt(rng, n - b), _pt(rng, n)])  # shared and new column points
    return pts


def test_batch_honest_verifies_and_hides_values(several):
    rng = np.random.default_rng(22)
    pts = _batch_points(several, rng)
    s = U.roundtrip(batch(several, pts))
    secrets = {w.evaluate(p) for (_, _, w), ps in zip(several, pts) for p in ps}
    assert not secrets & set(s.scalars)
    # one dot-product argument (2 field elements) for all, not one per tensor
    separate = [U.roundtrip(opening(com, wit, p)) for (_, com, wit), p in zip(several, pts)]
    assert len(s.scalars) == 2 + 2 and sum(len(x.scalars) for x in separate) == 3 * (2 + 2)
    assert len(s.points) < sum(len(x.points) for x in separate) // 2


def test_batch_wrong_value_refused_and_swapped_claims_rejected(several):
    rng = np.random.default_rng(23)
    pts = _batch_points(several, rng)
    good = [[w.evaluate(p) for p in ps] for (_, _, w), ps in zip(several, pts)]
    bad = [list(v) for v in good]
    bad[1][2] += 1
    with pytest.raises(ProverError):
        U.prove(batch(several, pts, bad))
    s = U.prove(batch(several, pts))
    swapped = [pts[0], pts[1][::-1], pts[2]]
    with pytest.raises(VerificationError):
        U.verify(batch(several, swapped), s)
    T, com, _ = several[2]
    T2 = T.copy()
    T2[3, 5] += 1
    com2, _ = H.commit(T2, log_cols=4, rng=np.random.default_rng(0))
    other = [several[0], several[1], (T2, com2, None)]
    with pytest.raises(VerificationError):
        U.verify(batch(other, pts, good), s)


def test_batch_every_element_tampered_rejected(several):
    rng = np.random.default_rng(24)
    pts = _batch_points(several, rng)
    s = U.roundtrip(batch(several, pts))
    zeros = [[0] * len(p) for p in pts]
    for what, bad in U.tampered(s):
        with pytest.raises(VerificationError):
            U.verify(batch(several, pts, zeros), bad)


def test_compact_witness_narrow_types_and_the_same_folds():
    """commit(compact=True) keeps the witness in the narrowest integer type; its commitment,
    folds and values are those of the int64 witness."""
    assert H.narrow(np.array([-128, 127])).dtype == np.int8
    assert H.narrow(np.array([-129, 5])).dtype == np.int16
    assert H.narrow(np.array([1 << 20])).dtype == np.int32
    assert H.narrow(np.array([-(1 << 40)])).dtype == np.int64
    rng = np.random.default_rng(5)
    t = rng.integers(-128, 128, size=300)
    c1, w1 = H.commit(t, log_cols=4, rng=np.random.default_rng(1))
    c2, w2 = H.commit(t, log_cols=4, rng=np.random.default_rng(1), compact=True)
    assert w2.values.dtype == np.int8 and w1.values.dtype == np.int64
    assert c1.rows == c2.rows
    rp = [int(x) for x in rng.integers(0, 1 << 60, w1.log_rows)]
    assert Fr.to_ints(H.fold_witness_rows(w1, rp)) == Fr.to_ints(H.fold_witness_rows(w2, rp))
    pt = [int(x) for x in rng.integers(0, 1 << 60, w1.num_vars)]
    assert w1.evaluate(pt) == w2.evaluate(pt)


def test_publicly_zero_rows_are_not_sent_and_bind_zeros():
    """Rows declared publicly zero (padding) get blind 0, commit to the identity and are not in
    the stream; an honest opening verifies, a nonzero entry there is refused at commit time,
    and a prover who hides a nonzero entry in such a row (committing it anyway) is rejected."""
    rng = np.random.default_rng(5)
    flat = np.zeros(64, dtype=np.int64)
    flat[:40] = rng.integers(-100, 100, 40)  # 8 x 8: rows 5..7 are padding
    zero = np.arange(8) >= 5
    com, wit = H.commit(flat, log_cols=3, zero_rows=zero)
    assert not wit.blinds[zero].any() and not com.row_points[zero].any()
    assert wit.blinds[~zero].any(axis=1).all()
    with pytest.raises(ProverError, match="publicly zero"):
        H.commit(np.r_[flat[:-1], 1], log_cols=3, zero_rows=zero)
    pt = _pt(rng, 6)

    def proto_for(values, make):
        def proto(ctx):
            t = H.commit_in(ctx, 6, 3, make if ctx.proving else None, zero_rows=zero)
            (c,) = ctx.commit(b"v", 1, lambda: [ml.evaluate(Fr.from_signed(values), list(pt))])
            H.open(ctx, t, [ComClaim(pt, c)])
        return proto

    honest = proto_for(flat, lambda: H.commit(flat, log_cols=3, zero_rows=zero))
    s = U.roundtrip(honest)
    assert len(s.points) < 8 + 10  # 5 rows sent, not 8
    U.verify(honest, s)
    cheat = flat.copy()
    cheat[-1] = 7  # in a padding row

    def sneaky():
        c, w = H.commit(cheat, log_cols=3)
        w.blinds[zero] = 0
        return c, w

    bad = proto_for(cheat, sneaky)
    s_bad = U.prove(bad)
    with pytest.raises(VerificationError):
        U.verify(bad, s_bad)


def test_stack_matrix_rows_points_and_the_choice_of_columns():
    """engine.StackMatrix: its committed vector's MLE at the permuted point is the stack's at
    the point, its real rows are the brute-force rows with a real entry, and the choice of
    columns never has more real rows than the plain layout (strictly fewer where a padded
    axis would sit in the columns)."""
    from zk.head import stack
    from zk.model.engine import Axis, Space, StackMatrix, _greedy_low

    rng = np.random.default_rng(4)
    sp = Space("S", (Axis("l", 6), Axis("h", 3), Axis("i", 8), Axis("e", 4)))
    for members in (1, 3, 5):
        lay = stack.StackLayout(tuple(f"m{k}" for k in range(members)), sp.num_vars)
        real = np.zeros(sp.padded_shape, dtype=bool)
        real[:6, :3, :8, :4] = True
        st = np.zeros((1 << lay.index_vars, real.size), dtype=bool)
        st[:members] = real.reshape(-1)
        st = st.reshape(-1)
        vals = np.where(st, rng.integers(1, 100, st.size), 0)
        pt = [int(x) for x in rng.integers(1, 2**60, lay.num_vars)]
        want_mle = ml.evaluate(Fr.from_signed(vals), pt)
        for c in range(lay.num_vars + 1):
            mat = StackMatrix.choose(sp, members, lay.index_vars, c)
            assert mat.log_cols == c
            got = mat.vector(vals)
            assert ml.evaluate(Fr.from_signed(got), list(mat.point(pt))) == want_mle
            rows = mat.vector(st).reshape(-1, 1 << c).any(axis=1)
            assert (mat.real_rows() == rows).all(), (members, c)
            plain = StackMatrix(mat.bits, mat.sizes, _greedy_low(mat.bits, c))
            assert mat.real_rows().sum() <= plain.real_rows().sum()
    # h (5 of 8) would sit in the columns of the plain layout; l (8 of 8) goes there instead
    sp2 = Space("S2", (Axis("l", 8), Axis("h", 5), Axis("i", 8), Axis("e", 4)))
    mat = StackMatrix.choose(sp2, 2, 1, 8)
    assert not mat.identity and mat.low == (2, 3, 0, 3, 0)
    assert mat.real_rows().sum() == 10 < StackMatrix(
        mat.bits, mat.sizes, _greedy_low(mat.bits, 8)).real_rows().sum() == 16
