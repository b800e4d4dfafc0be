"""The numba field kernels against the Python-int reference (gpu.field_ref)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpu import field_ref as ref
from zk.field import Fq, Fr

FIELDS = [Fr, Fq]

EDGES = [0, 1, 2, 2**64 - 1, 2**64, 2**64 + 1, 2**128 - 1, 2**128, 2**192 - 1, 2**192]


def edge_values(p: int) -> list[int]:
    vals = EDGES + [p - 1, p - 2, (p - 1) // 2, (p + 1) // 2, p - 2**64, p - 2**192]
    return [v % p for v in vals]


def elements(p: int):
    return st.one_of(st.integers(0, p - 1), st.sampled_from(edge_values(p)))


def vectors(p: int):
    return st.lists(elements(p), min_size=1, max_size=40)


@pytest.mark.parametrize("F", FIELDS, ids=lambda F: F.name)
def test_edge_cases_all_pairs(F):
    vals = edge_values(F.modulus)
    xs = [x for x in vals for _ in vals]
    ys = [y for _ in vals for y in vals]
    a, b = F.from_ints(xs), F.from_ints(ys)
    p = F.modulus
    assert F.to_ints(a) == xs
    assert F.to_ints(F.mul(a, b)) == ref.mul(p, xs, ys)
    assert F.to_ints(F.add(a, b)) == ref.add(p, xs, ys)
    assert F.to_ints(F.sub(a, b)) == ref.sub(p, xs, ys)
    assert F.to_ints(F.neg(a)) == ref.neg(p, xs)
    assert F.to_ints(F.batch_inverse(F.from_ints([x or 1 for x in xs]))) == ref.batch_inverse(
        p, [x or 1 for x in xs]
    )


@pytest.mark.parametrize("F", FIELDS, ids=lambda F: F.name)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_vector_ops_match_reference(F, data):
    p = F.modulus
    xs = data.draw(vectors(p))
    ys = data.draw(st.lists(elements(p), min_size=len(xs), max_size=len(xs)))
    s = data.draw(elements(p))
    a, b = F.from_ints(xs), F.from_ints(ys)
    assert F.to_ints(F.mul(a, b)) == ref.mul(p, xs, ys)
    assert F.to_ints(F.add(a, b)) == ref.add(p, xs, ys)
    assert F.to_ints(F.sub(a, b)) == ref.sub(p, xs, ys)
    assert F.to_ints(F.scale(a, s)) == ref.scale(p, xs, s)
    assert F.to_ints(F.axpy(s, a, b)) == ref.add(p, ref.scale(p, xs, s), ys)
    assert F.sum(a) == ref.total(p, xs)
    assert F.inner(a, b) == ref.inner(p, xs, ys)


@pytest.mark.parametrize("n", [1, 3, 1000, 5000, 70001])
def test_reductions_and_inverse_across_chunk_sizes(n):
    rng = np.random.default_rng(n)
    a, b = Fr.random(n, rng), Fr.random(n, rng)
    xs, ys = Fr.to_ints(a), Fr.to_ints(b)
    p = Fr.modulus
    assert Fr.sum(a) == ref.total(p, xs)
    assert Fr.inner(a, b) == ref.inner(p, xs, ys)
    assert Fr.to_ints(Fr.batch_inverse(a)) == ref.batch_inverse(p, xs)


def test_batch_inverse_refuses_zero():
    a = Fr.from_ints([3, 0, 5])
    with pytest.raises(ZeroDivisionError):
        Fr.batch_inverse(a)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(-(2**63), 2**63 - 1), min_size=1, max_size=30))
def test_signed_embedding(xs):
    a = Fr.from_signed(np.array(xs, dtype=np.int64))
    assert Fr.to_ints(a) == ref.from_signed(Fr.modulus, xs)
    assert Fr.to_signed(a).tolist() == xs


def test_bytes_round_trip_and_rejection():
    a = Fr.from_ints(edge_values(Fr.modulus))
    b = Fr.to_bytes(a)
    assert b.shape == (a.shape[0], 32)
    assert Fr.to_ints(Fr.from_bytes(b)) == Fr.to_ints(a)
    assert int.from_bytes(b[1].tobytes(), "little") == 1
    bad = np.frombuffer(Fr.modulus.to_bytes(32, "little"), dtype=np.uint8).reshape(1, 32)
    with pytest.raises(ValueError):
        Fr.from_bytes(bad)


def test_random_is_in_range_and_varies():
    a = Fr.random(2000)  # OS randomness
    vals = Fr.to_ints(a)
    assert all(0 <= v < Fr.modulus for v in vals)
    assert len(set(vals)) == len(vals)
    top = max(v.bit_length() for v in vals)
    assert top == Fr.modulus.bit_length()  # the top bits are exercised
    r1 = Fr.to_ints(Fr.random(5, np.random.default_rng(7)))
    r2 = Fr.to_ints(Fr.random(5, np.random.default_rng(7)))
    assert r1 == r2


def test_scalar_round_trip():
    for x in edge_values(Fr.modulus):
        assert Fr.scalar_to_int(Fr.scalar(x)) == x


def test_against_galois():
    galois = pytest.importorskip("galois")
    GF = galois.GF(Fr.modulus, primitive_element=5, verify=False)
    rng = np.random.default_rng(11)
    a, b = Fr.random(50, rng), Fr.random(50, rng)
    xs, ys = Fr.to_ints(a), Fr.to_ints(b)
    ga, gb = GF(xs), GF(ys)
    assert Fr.to_ints(Fr.mul(a, b)) == [int(v) for v in ga * gb]
    assert Fr.to_ints(Fr.batch_inverse(a)) == [int(v) for v in ga ** -1]


@pytest.mark.parametrize("F", FIELDS, ids=lambda F: F.name)
def test_from_signed_both_paths_equal_python_ints(F, monkeypatch):
    """from_signed embeds large narrow-range tensors through a table of their range and every
    other input one product per entry: both equal x mod p, at the switch-over sizes and spans."""
    import zk.field as ZF

    gathers = []
    real = ZF.K.vgather_rows
    monkeypatch.setattr(ZF.K, "vgather_rows", lambda *a: (gathers.append(1), real(*a))[1])
    rng = np.random.default_rng(5)
    n = ZF._GATHER_MIN
    half = n // 8
    cases = [  # (values, whether the table path is taken)
        (rng.integers(-128, 128, size=(3, n)), True),  # an int8 tensor
        (np.concatenate([[-half], rng.integers(-half, half, n - 2), [half - 1]]),
         True),  # hi - lo = n/4 - 1
        (np.concatenate([[-half], rng.integers(-half, half, n - 2), [half]]),
         False),  # hi - lo = n/4
        (rng.integers(2**62, 2**62 + 100, size=n), True),  # far from 0, narrow
        (np.concatenate([np.full(n, -(2**63)), [2**63 - 1]]), False),  # int64 extremes
        (np.full(n, -1), True),  # one value
        (rng.integers(-5, 5, size=n - 1), False),  # just under the size threshold
    ]
    for x, table in cases:
        x = np.asarray(x, dtype=np.int64)
        gathers.clear()
        want = [int(v) % F.modulus for v in x.reshape(-1)]
        assert F.to_ints(F.from_signed(x)) == want
        assert bool(gathers) == table
