"""tlookup in zero knowledge: honest lookups verify and their claims hold; out-of-table entries
are refused by the prover and, when a cheating prover emits a proof anyway (forged
multiplicities, off-by-one roundings, out-of-range values), rejected by the verifier; modified
tables, other masks and tampered proofs are rejected."""

from __future__ import annotations

import numpy as np
import pytest
import zkutil as U

from zk.commit import hyrax
from zk.errors import ProverError, VerificationError
from zk.field import Fr
from zk.lookup import logup
from zk.lookup import statements as st
from zk.lookup import tables as lk
from zk.multilinear import P, evaluate

RNG = np.random.default_rng(42)


def lookup_proto(tables, cols, out=None):
    """Look up the columns; the prover commits each column's values at the lookup point and
    the test checks them against the vectors (a caller's discharge)."""
    def proto(ctx):
        view = cols if ctx.proving else [lk.Column(c.table, c.selector) for c in cols]
        end = logup.run(ctx, tables, view)
        xs, ys = [], []
        for c, pt in zip(cols, end.column_points):
            fn = tables.tables[c.table].is_function
            vals = ctx.commit(b"v", 2 if fn else 1, lambda c=c, pt=pt: [
                evaluate(Fr.from_signed(c.x), list(pt))]
                + ([evaluate(Fr.from_signed(c.y), list(pt))] if fn else []))
            xs.append(vals[0])
            ys.append(vals[1] if fn else None)
        end.bind(xs, ys)
        if out is not None:
            out.append((end, xs, ys))
    return proto


def column(table, x, y=None, size=None):
    x = np.asarray(x, dtype=np.int64)
    sel = lk.Selector.first(x.size, size)
    pad = np.zeros(sel.size, dtype=np.int64)
    pad[: x.size] = x
    ypad = None
    if y is not None:
        ypad = np.zeros(sel.size, dtype=np.int64)
        ypad[: x.size] = y
    return lk.Column(table, sel, pad, ypad)


@pytest.mark.parametrize("n", [1, 2, 5, 64, 1000])
@pytest.mark.parametrize("table", [lk.LookupTable.range(-8, 8), lk.LookupTable.range(3, 1003),
                                   lk.LookupTable.range(0, 1 << 12)])
def test_range_membership_honest(n, table):
    x = RNG.integers(table.offset, table.offset + table.size, size=n)
    tables = lk.TableSet([table])
    out = []
    U.roundtrip(lookup_proto(tables, [column(0, x)], out))
    end, xs, _ = out[0]
    assert xs[0].v == evaluate(Fr.from_signed(column(0, x).x), list(end.column_points[0]))


def test_several_tables_lengths_functions_and_masks():
    """Columns shorter and longer than the tables, a function table, and a masked column whose
    unselected entries are garbage (not in any table)."""
    tables = lk.TableSet([lk.LookupTable.range(0, 16),
                          lk.LookupTable.function(-4, [7, 1, 0, 1, 7], "sq-ish"),
                          lk.LookupTable.range(-300, 300)])
    size = 64
    mask = (RNG.random(size) < 0.5).astype(np.int64)
    x0 = RNG.integers(0, 16, size=size)
    x0[mask == 0] = 999
    x1 = RNG.integers(-4, 1, size=10)
    y1 = np.array([7, 1, 0, 1, 7])[x1 + 4]
    x2 = RNG.integers(-300, 300, size=1 << 11)
    cols = [lk.Column(0, lk.Selector(size, mask=mask), x0), column(1, x1, y1), column(2, x2)]
    s = U.roundtrip(lookup_proto(tables, cols))
    # selecting an entry that is not in the table: refused
    bad = lk.Column(0, lk.Selector(size, mask=np.ones(size, dtype=np.int64)), x0)
    with pytest.raises(ProverError, match="not in table"):
        U.prove(lookup_proto(tables, [bad, cols[1], cols[2]]))
    # the proof checked with another mask, or another table for a column, fails
    other = [lk.Column(0, lk.Selector(size, mask=1 - mask), x0), cols[1], cols[2]]
    with pytest.raises(VerificationError):
        U.verify(lookup_proto(tables, other), s)
    swapped = [cols[0], cols[1], lk.Column(0, cols[2].selector, x2)]
    with pytest.raises(VerificationError):
        U.verify(lookup_proto(tables, swapped), s)


def test_modified_table_rejected():
    x = RNG.integers(-4, 1, size=20)
    tab = lk.LookupTable.function(-4, [7, 1, 0, 1, 7])
    s = U.roundtrip(lookup_proto(lk.TableSet([tab]),
                                 [column(0, x, np.array([7, 1, 0, 1, 7])[x + 4])]))
    other = lk.LookupTable.function(-4, [7, 1, 0, 2, 7])
    with pytest.raises(VerificationError):
        U.verify(lookup_proto(lk.TableSet([other]), [column(0, x, np.zeros(20))]), s)


def test_out_of_table_entry_with_forged_multiplicities_rejected(monkeypatch):
    """A cheating prover looks up 20 (not in [0, 16)) and forges m as if it were 15."""
    table = lk.TableSet([lk.LookupTable.range(0, 16)])
    x = RNG.integers(0, 16, size=100)
    x[7] = 20
    real = lk.multiplicities

    def forged(tables, columns):
        cols = [lk.Column(c.table, c.selector, np.minimum(c.x, 15), c.y) for c in columns]
        return real(tables, cols)
    monkeypatch.setattr(logup, "multiplicities", forged)
    with U.cheating():
        s = U.prove(lookup_proto(table, [column(0, x)]))
    with pytest.raises(VerificationError):
        U.verify(lookup_proto(table, [column(0, x)]), s)


def test_wrong_claimed_column_value_rejected():
    """The values bound to the lookup must be the columns' values at its point."""
    table = lk.TableSet([lk.LookupTable.range(0, 16)])
    x = RNG.integers(0, 16, size=50)

    def proto(ctx):
        view = [column(0, x)] if ctx.proving else [lk.Column(0, lk.Selector.first(50))]
        end = logup.run(ctx, table, view)
        (c,) = ctx.commit(b"v", 1, lambda: [evaluate(Fr.from_signed(column(0, x).x),
                                                     list(end.column_points[0])) + 1])
        end.bind([c], [None])
    with pytest.raises(ProverError):
        U.prove(proto)
    with U.cheating():
        s = U.prove(proto)
    with pytest.raises(VerificationError):
        U.verify(proto, s)


def test_every_element_tampered_rejected():
    table = lk.TableSet([lk.LookupTable.range(-8, 8)])
    x = RNG.integers(-8, 8, size=30)
    proto = lookup_proto(table, [column(0, x)])
    s = U.roundtrip(proto)
    for what, bad in U.tampered(s, max_points=60):
        with pytest.raises(VerificationError):
            U.verify(proto, bad)


def test_unbound_lookup_is_a_protocol_error():
    table = lk.TableSet([lk.LookupTable.range(0, 4)])
    with pytest.raises(RuntimeError, match="undischarged"):
        U.prove(lambda ctx: logup.run(ctx, table, [column(0, [1, 2, 3])]))


def test_indicator_mle():
    import random
    for n in (0, 1, 5, 8, 13, 16):
        pt = [random.randrange(P) for _ in range(4)]
        ind = [1 if i < n else 0 for i in range(16)]
        assert lk.indicator_mle(n, pt) == evaluate(Fr.from_signed(np.array(ind)), pt)


# ---------------------------------------------------------------- statements


@pytest.mark.parametrize("lo,hi", [(-1000, 70000), (-3, 1 << 40), (0, 1 << 16)])
def test_range_proofs(lo, hi):
    x = RNG.integers(lo, min(hi, lo + (1 << 30)), size=300)
    com, wit = hyrax.commit(x)
    proof = st.prove_range(x, com, wit, lo, hi)
    back = st.StatementProof.from_bytes(proof.to_bytes())
    st.verify_range(com, 300, lo, hi, back)
    assert not {wit.evaluate((0,) * wit.num_vars)} & set(proof.stream.scalars)
    with pytest.raises(VerificationError):
        st.verify_range(com, 300, lo + 1, hi, back)
    with pytest.raises(VerificationError):
        st.verify_rounding(com, com, 300, 4, 0, 16, back)  # a proof of another statement


def test_range_rejects_outside_values():
    x = RNG.integers(0, 1 << 20, size=64)
    x[3] = 1 << 20
    com, wit = hyrax.commit(x)
    with pytest.raises(ProverError, match="outside"):
        st.prove_range(x, com, wit, 0, 1 << 20)
    # a cheating prover that lies about the one bad entry's limbs
    y = x.copy()
    y[3] = (1 << 20) - 1
    with U.cheating():
        proof = st.prove_range(y, com, wit, 0, 1 << 20)  # limbs of y, commitment of x
    with pytest.raises(VerificationError):
        st.verify_range(com, 64, 0, 1 << 20, proof)


@pytest.mark.parametrize("k", [1, 3, 8])
def test_rounding_honest_and_off_by_one(k):
    x = RNG.integers(-5000, 5000, size=200)
    y = st.round_shift(x, k)
    xc, xw = hyrax.commit(x)
    yc, yw = hyrax.commit(y)
    lo, hi = int(y.min()) - 1, int(y.max()) + 2
    proof = st.prove_rounding(x, xc, xw, y, yc, yw, k, lo, hi)
    st.verify_rounding(xc, yc, 200, k, lo, hi, proof)
    y2 = y.copy()
    y2[17] += 1
    y2c, y2w = hyrax.commit(y2)
    with pytest.raises(ProverError):
        st.prove_rounding(x, xc, xw, y2, y2c, y2w, k, lo, hi)
    with pytest.raises(VerificationError):
        st.verify_rounding(xc, y2c, 200, k, lo, hi, proof)


def test_round_shift_convention():
    x = np.array([-6, -5, -3, -2, -1, 0, 1, 2, 3, 5, 6])
    assert st.round_shift(x, 2).tolist() == [-1, -1, -1, 0, 0, 0, 0, 1, 1, 1, 2]


def test_clip():
    x = RNG.integers(-40, 40, size=100)
    y = np.clip(x, -7, 7)
    xc, xw = hyrax.commit(x)
    yc, yw = hyrax.commit(y)
    proof = st.prove_clip(x, xc, xw, y, yc, yw, -40, 40, -7, 7)
    st.verify_clip(xc, yc, 100, -40, 40, -7, 7, proof)
    y8c, _ = hyrax.commit(np.clip(x, -8, 8))
    with pytest.raises(VerificationError):
        st.verify_clip(xc, y8c, 100, -40, 40, -7, 7, proof)


def test_statement_proof_bytes_fuzzed():
    x = RNG.integers(0, 16, size=20)
    com, wit = hyrax.commit(x)
    data = st.prove_range(x, com, wit, 0, 16).to_bytes()
    rng = np.random.default_rng(3)
    for pos in rng.integers(0, len(data), 60).tolist():
        bad = bytearray(data)
        bad[pos] ^= 1 << int(rng.integers(0, 8))
        with pytest.raises(VerificationError):
            st.verify_range(com, 20, 0, 16, st.StatementProof.from_bytes(bytes(bad)))


def test_product_selector_equals_its_mask_and_binds_its_factors():
    """A selector given as a tensor product of factors: the same values, MLE and lookup as
    the explicit mask; a proof made with one factor set fails against another; garbage where
    the product is 0 is never looked up."""
    f0 = np.array([1, 1, 1, 0], dtype=np.int64)  # low variables: 3 of 4
    f1 = np.array([1, 0, 1, 1, 1, 0, 0, 0], dtype=np.int64)
    prod = lk.Selector(32, factors=(f0, f1))
    flat = np.kron(f1, f0)
    assert np.array_equal(prod.values(), flat)
    pt = [int(v) for v in RNG.integers(0, 2**62, 5)]
    assert prod.mle(pt) == lk.Selector(32, mask=flat).mle(pt) == evaluate(
        Fr.from_signed(flat), pt)
    tables = lk.TableSet([lk.LookupTable.range(0, 16)])
    x = RNG.integers(0, 16, size=32)
    x[flat == 0] = 999
    s = U.roundtrip(lookup_proto(tables, [lk.Column(0, prod, x)]))
    g1 = f1.copy()
    g1[1] = 1
    with pytest.raises(VerificationError):
        U.verify(lookup_proto(tables, [lk.Column(0, lk.Selector(32, factors=(f0, g1)), x)]), s)
    with pytest.raises(ValueError):
        lk.Selector(32, factors=(f0, f1[:4]))
    with pytest.raises(ValueError):
        lk.Selector(32, factors=(f0 * 2, f1))


def test_union_mle_by_blocks_equals_the_union_vectors():
    """TableSet.compressed_mle (aligned blocks, constant runs, per-table segments) equals the
    integer MLEs of the union's tag, x and f vectors, for ranges, dense function tables, step
    tables and unaligned offsets."""
    from zk.lookup.tables import LookupTable, TableSet
    from zk.multilinear import evaluate_small

    rng = np.random.default_rng(1)
    for trial in range(25):
        tabs = []
        for _ in range(int(rng.integers(1, 5))):
            kind, size = int(rng.integers(0, 3)), int(rng.integers(1, 3000))
            off = int(rng.integers(-5000, 5000))
            if kind == 0:
                tabs.append(LookupTable.range(off, off + size))
            elif kind == 1:
                tabs.append(LookupTable.function(off, rng.integers(-1000, 1000, size)))
            else:  # a step table: few constant runs
                steps = np.repeat(rng.integers(-3, 4, 4), -(-size // 4))[:size]
                tabs.append(LookupTable.function(off, steps))
        ts = TableSet(tabs)
        pt = [int(x) for x in rng.integers(0, 2**62, ts.padded.bit_length() - 1)]
        a = int(rng.integers(1, 2**62))
        tag, xs, ys = ts.union()
        want = (evaluate_small(tag, pt) + a * evaluate_small(xs, pt)
                + a * a % P * evaluate_small(ys, pt)) % P
        assert ts.compressed_mle(a, pt) == want, trial
