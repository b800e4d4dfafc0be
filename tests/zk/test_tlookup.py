"""tlookup: honest lookups verify; out-of-table entries, wrong multiplicities, wrong table
entries, vectors that differ from their commitments and off-by-one roundings are refused or
rejected, never accepted."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from zk import hyrax
from zk import lookup as lk
from zk import tlookup as tl
from zk.encoding import Reader, Writer
from zk.errors import ProverError, VerificationError
from zk.field import Fr
from zk.multilinear import P, evaluate
from zk.transcript import Transcript

PROTO = b"test/tlookup"
RNG = np.random.default_rng(42)


def padded_fr(x, n):
    return Fr.from_signed(tl._padded(x, n))


def discharge(x, n, claim):
    if evaluate(padded_fr(x, n), claim.point) != claim.value:
        raise VerificationError("claim on the looked-up vector is false")


def roundtrip(proof, reader):
    w = Writer()
    proof.write(w)
    r = Reader(w.getvalue())
    out = reader(r)
    r.finish()
    return out


# ---------------------------------------------------------------- membership


@pytest.mark.parametrize("n", [1, 2, 5, 64, 1000])
@pytest.mark.parametrize("table", [lk.LookupTable.range(-8, 8), lk.LookupTable.range(3, 1003),
                                   lk.LookupTable.range(0, 1 << 12)])
def test_range_membership_honest(n, table):
    x = RNG.integers(table.offset, table.offset + table.size, size=n)
    proof, claims = tl.prove(Transcript(PROTO), table, [tl.column(0, x)])
    back = roundtrip(proof, lambda r: tl.TLookupProof.read(r, table, tl.shapes(0, [n])))
    got = tl.verify(Transcript(PROTO), table, tl.shapes(0, [n]), back)
    assert got == claims
    discharge(x, n, got.inputs[0])


def test_several_vectors_longer_and_shorter_than_table():
    table = lk.LookupTable.range(0, 100)
    xs = [RNG.integers(0, 100, size=n) for n in (3, 100, 257, 1 << 11)]
    proof, claims = tl.prove(Transcript(PROTO), table, [tl.column(0, x) for x in xs])
    sizes = [x.size for x in xs]
    got = tl.verify(Transcript(PROTO), table, tl.shapes(0, sizes), proof)
    for x, c in zip(xs, got.inputs):
        discharge(x, x.size, c)


def test_function_table_pairs():
    table = lk.LookupTable.function(-50, (np.arange(-50, 50) ** 2) // 7)
    x = RNG.integers(-50, 50, size=300)
    y = (x ** 2) // 7
    proof, claims = tl.prove(Transcript(PROTO), table, [tl.column(0, x, y)])
    got = tl.verify(Transcript(PROTO), table, tl.shapes(0, [300]), proof)
    discharge(x, 300, got.inputs[0])
    discharge(y, 300, got.outputs[0])
    # a wrong output entry: the prover refuses, and a forged claim fails discharge
    y_bad = y.copy()
    y_bad[17] += 1
    with pytest.raises(ProverError, match="entry 17"):
        tl.prove(Transcript(PROTO), table, [tl.column(0, x, y_bad)])
    with pytest.raises(VerificationError):
        discharge(y_bad, 300, got.outputs[0])


def test_out_of_range_entry_refused():
    table = lk.LookupTable.range(0, 16)
    x = RNG.integers(0, 16, size=50)
    x[7] = 16
    with pytest.raises(ProverError, match="entry 7 = 16"):
        tl.prove(Transcript(PROTO), table, [tl.column(0, x)])


def _forge(table, x, m):
    """Run the lookup with an arbitrary multiplicity vector (bypassing the honest count)."""
    t = Transcript(PROTO)
    com, wit = hyrax.commit(m)
    com.absorb(t)
    t.absorb_bytes(tl.LABEL_M, b"")
    proof, claims = lk.prove(t, lk.TableSet([table]), [tl.column(0, x)], m)
    opening = hyrax.open_claims(wit, com, [claims.multiplicities], t)
    return tl.TLookupProof(com, proof, opening)


def test_out_of_range_entry_with_forged_multiplicities_rejected():
    table = lk.LookupTable.range(0, 16)
    x = RNG.integers(0, 16, size=50)
    x[3] = 16  # not in the table; pretend it is entry 15
    m = np.bincount(np.minimum(x, 15), minlength=16).astype(np.int64)
    with pytest.raises(VerificationError):
        tl.verify(Transcript(PROTO), table, tl.shapes(0, [50]), _forge(table, x, m))


def test_wrong_multiplicity_rejected():
    table = lk.LookupTable.range(0, 16)
    x = RNG.integers(0, 16, size=50)
    m = np.bincount(x, minlength=16).astype(np.int64)
    m[int(x[0])] += 1
    with pytest.raises(VerificationError):
        tl.verify(Transcript(PROTO), table, tl.shapes(0, [50]), _forge(table, x, m))


def test_modified_table_entry_rejected():
    outputs = np.arange(32) * 3
    table = lk.LookupTable.function(0, outputs)
    x = RNG.integers(0, 32, size=40)
    proof, _ = tl.prove(Transcript(PROTO), table, [tl.column(0, x, outputs[x])])
    changed = outputs.copy()
    changed[int(x[0])] += 1
    with pytest.raises(VerificationError):
        tl.verify(Transcript(PROTO), lk.LookupTable.function(0, changed), tl.shapes(0, [40]), proof)
    with pytest.raises(VerificationError):
        tl.verify(Transcript(PROTO), lk.LookupTable.range(0, 33), tl.shapes(0, [40]), proof)


def test_vector_differing_from_its_commitment_caught():
    table = lk.LookupTable.range(0, 64)
    x = RNG.integers(0, 64, size=128)
    com, wit = hyrax.commit(x)  # the caller's commitment to x
    t = Transcript(PROTO)
    com.absorb(t)
    other = x.copy()
    other[5] = (other[5] + 1) % 64  # prove a lookup of a different vector
    proof, claims = tl.prove(t, table, [tl.column(0, other)])
    tv = Transcript(PROTO)
    com.absorb(tv)
    got = tl.verify(tv, table, tl.shapes(0, [128]), proof)
    # the claim is about `other`; opening x's commitment at it must fail
    with pytest.raises((VerificationError, ProverError)):
        opening = hyrax.open_claims(wit, com, [got.inputs[0]], Transcript(b"o"))
        hyrax.verify(com, [got.inputs[0]], opening, Transcript(b"o"))


def test_tampered_proof_values_rejected():
    table = lk.LookupTable.range(0, 16)
    x = RNG.integers(0, 16, size=40)
    proof, _ = tl.prove(Transcript(PROTO), table, [tl.column(0, x)])
    lp = proof.lookup
    bad_ops = ((lp.operands[0][0] + 1) % P,),
    with pytest.raises(VerificationError):
        tl.verify(Transcript(PROTO), table, tl.shapes(0, [40]),
                  replace(proof, lookup=replace(lp, operands=bad_ops)))
    roots = list(lp.trees.roots)
    roots[-1] = (roots[-1][0] + 1, *roots[-1][1:])
    bad_trees = replace(lp.trees, roots=tuple(roots))
    with pytest.raises(VerificationError):
        tl.verify(Transcript(PROTO), table, tl.shapes(0, [40]),
                  replace(proof, lookup=replace(lp, trees=bad_trees)))
    with pytest.raises(VerificationError):
        tl.verify(Transcript(PROTO), table, tl.shapes(0, [41]), proof)


def test_every_flipped_byte_rejected():
    table = lk.LookupTable.range(0, 8)
    x = RNG.integers(0, 8, size=6)
    proof, _ = tl.prove(Transcript(PROTO), table, [tl.column(0, x)])
    w = Writer()
    proof.write(w)
    data = w.getvalue()
    for i in range(0, len(data), 3):
        bad = bytearray(data)
        bad[i] ^= 0x04
        with pytest.raises(VerificationError):
            r = Reader(bytes(bad))
            p = tl.TLookupProof.read(r, table, tl.shapes(0, [6]))
            r.finish()
            got = tl.verify(Transcript(PROTO), table, tl.shapes(0, [6]), p)
            discharge(x, 6, got.inputs[0])


def test_indicator_mle():
    import random

    from zk.multilinear import evaluate_ints

    for L in range(5):
        for n in range((1 << L) + 2):
            pt = [random.randrange(P) for _ in range(L)]
            vals = [1 if i < n else 0 for i in range(1 << L)]
            assert lk.indicator_mle(n, pt) == evaluate_ints(vals, pt)


# ---------------------------------------------------------------- ranges


@pytest.mark.parametrize("lo,hi", [(-5, 11), (0, 1 << 16), (-(1 << 20), 3 << 19), (7, (1 << 40) + 3)])
def test_range_proofs(lo, hi):
    n = 77
    x = RNG.integers(lo, hi, size=n)
    x[0], x[1] = lo, hi - 1
    proof, claim = tl.prove_range(Transcript(PROTO), x, lo, hi)
    back = roundtrip(proof, lambda r: tl.RangeProof.read(r, n, lo, hi))
    got = tl.verify_range(Transcript(PROTO), n, lo, hi, back)
    assert got == claim
    discharge(x, n, got)


def test_range_rejects_outside_values():
    lo, hi = -(1 << 20), 1 << 20
    x = RNG.integers(lo, hi, size=20)
    x[4] = hi
    with pytest.raises(ProverError, match="entry 4"):
        tl.prove_range(Transcript(PROTO), x, lo, hi)
    # a proof for in-range values, claimed for a vector with an outside value, fails discharge
    good = x.copy()
    good[4] = hi - 1
    proof, _ = tl.prove_range(Transcript(PROTO), good, lo, hi)
    got = tl.verify_range(Transcript(PROTO), 20, lo, hi, proof)
    with pytest.raises(VerificationError):
        discharge(x, 20, got)
    with pytest.raises(VerificationError):  # a proof for a narrower statement is not reusable
        tl.verify_range(Transcript(PROTO), 20, lo, hi - 1, proof)


# ---------------------------------------------------------------- rounding and clipping


def test_round_shift_convention():
    x = np.array([-6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6])
    # ties (..., -6, -2, 2, 6) go up; -3/4 rounds to -1, -5/4 to -1
    assert tl.round_shift(x, 2).tolist() == [-1, -1, -1, -1, 0, 0, 0, 0, 1, 1, 1, 1, 2]
    assert tl.round_shift(x, 0).tolist() == x.tolist()


@pytest.mark.parametrize("k", [1, 4, 9])
def test_rounding_honest(k):
    n = 100
    x = RNG.integers(-(1 << 15), 1 << 15, size=n)
    y = tl.round_shift(x, k)
    y_lo, y_hi = -(1 << (15 - k)) - 1, (1 << (15 - k)) + 1
    proof, claims = tl.prove_rounding(Transcript(PROTO), x, k, y_lo, y_hi)
    back = roundtrip(proof, lambda r: tl.RoundingProof.read(r, n, k, y_lo, y_hi))
    got = tl.verify_rounding(Transcript(PROTO), n, k, y_lo, y_hi, back)
    assert got == claims
    discharge(x, n, got.x)
    discharge(y, n, got.y)
    discharge(y, n, got.y_range)


def test_rounding_off_by_one_caught():
    k, n = 4, 64
    x = RNG.integers(-1000, 1000, size=n)
    proof, _ = tl.prove_rounding(Transcript(PROTO), x, k, -100, 100)
    got = tl.verify_rounding(Transcript(PROTO), n, k, -100, 100, proof)
    y_wrong = tl.round_shift(x, k)
    y_wrong[9] += 1
    with pytest.raises(VerificationError):
        discharge(y_wrong, n, got.y)
    # a forged relation value is rejected by the verifier itself
    with pytest.raises(VerificationError):
        tl.verify_rounding(Transcript(PROTO), n, k, -100, 100,
                           replace(proof, y_value=(proof.y_value + 1) % P))
    with pytest.raises(ProverError):  # outputs outside the declared range
        tl.prove_rounding(Transcript(PROTO), x, k, -10, 10)


def test_clip():
    n = 90
    x = RNG.integers(-40, 40, size=n)
    proof, claims = tl.prove_clip(Transcript(PROTO), x, -40, 40, -7, 7)
    got = tl.verify_clip(Transcript(PROTO), n, -40, 40, -7, 7, proof)
    discharge(x, n, got.inputs[0])
    discharge(np.clip(x, -7, 7), n, got.outputs[0])
    with pytest.raises(VerificationError):
        discharge(np.clip(x, -8, 8), n, got.outputs[0])


def test_table_set_and_mask_selectors():
    """Several tables in one argument; a masked column whose unselected entries are garbage."""
    tables = lk.TableSet([lk.LookupTable.range(0, 16), lk.LookupTable.function(-4, [7, 1, 0, 1, 7]),
                          lk.LookupTable.range(-300, 300)])
    size = 64
    mask = (RNG.random(size) < 0.5).astype(np.int64)
    x0 = RNG.integers(0, 16, size=size)
    x0[mask == 0] = 999  # not in the table, but not selected
    x1 = RNG.integers(-4, 1, size=10)
    y1 = np.array([7, 1, 0, 1, 7])[x1 + 4]
    x2 = RNG.integers(-300, 300, size=33)
    cols = [lk.Column(0, lk.Selector(size, mask=mask), x0), tl.column(1, x1, y1), tl.column(2, x2)]
    proof, claims = tl.prove(Transcript(PROTO), tables, cols)
    shapes = [lk.Column(c.table, c.selector) for c in cols]
    got = tl.verify(Transcript(PROTO), tables, shapes, proof)
    assert evaluate(Fr.from_signed(x0), got.inputs[0].point) == got.inputs[0].value
    discharge(x1, 10, got.inputs[1])
    discharge(y1, 10, got.outputs[1])
    discharge(x2, 33, got.inputs[2])
    # selecting an entry that is not in the table: refused, and a forged m is rejected
    bad = lk.Column(0, lk.Selector(size, mask=np.ones(size, dtype=np.int64)), x0)
    with pytest.raises(ProverError):
        tl.prove(Transcript(PROTO), tables, [bad, cols[1], cols[2]])
    # the same proof checked with another mask fails
    other = lk.Column(0, lk.Selector(size, mask=1 - mask))
    with pytest.raises(VerificationError):
        tl.verify(Transcript(PROTO), tables, [other, *shapes[1:]], proof)
    # swapping which table a column uses fails
    with pytest.raises(VerificationError):
        tl.verify(Transcript(PROTO), tables, [shapes[0], shapes[1], lk.Column(0, shapes[2].selector)],
                  proof)


def test_three_columns_of_one_size_share_a_tree():
    """Three same-size columns: one tree with an unused fourth slot; each column's claim and
    operand values are still checked individually."""
    table = lk.LookupTable.function(0, np.arange(50) % 7)
    xs = [RNG.integers(0, 50, size=40) for _ in range(3)]
    cols = [tl.column(0, x, x % 7) for x in xs]
    proof, _ = tl.prove(Transcript(PROTO), table, cols)
    assert len(proof.lookup.trees.roots) == 2  # one group tree + the table tree
    got = tl.verify(Transcript(PROTO), table, tl.shapes(0, [40, 40, 40]), proof)
    for x, ci, co in zip(xs, got.inputs, got.outputs):
        discharge(x, 40, ci)
        discharge(x % 7, 40, co)
    lp = proof.lookup
    for i in range(3):
        for j in range(2):
            ops = [list(v) for v in lp.operands]
            ops[i][j] = (ops[i][j] + 1) % P
            bad = replace(lp, operands=tuple(tuple(v) for v in ops))
            with pytest.raises(VerificationError):
                tl.verify(Transcript(PROTO), table, tl.shapes(0, [40, 40, 40]),
                          replace(proof, lookup=bad))
