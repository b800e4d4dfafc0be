"""Multilinear extensions: kernels against direct Python-int evaluation."""

from __future__ import annotations

import random

import numpy as np
import pytest

from zk import multilinear as ml
from zk.field import Fr

P = Fr.modulus


def direct_eval(values, point):
    """sum_i v_i eq(point, bits(i)), straight from the definition."""
    m = len(point)
    return sum(
        v * ml.eq_eval(point, [(i >> j) & 1 for j in range(m)]) for i, v in enumerate(values)
    ) % P


@pytest.mark.parametrize("m", [0, 1, 2, 5, 9])
def test_evaluate_and_eq_table(m):
    rnd = random.Random(m)
    vals = [rnd.randrange(P) for _ in range(1 << m)]
    point = [rnd.randrange(P) for _ in range(m)]
    v = Fr.from_ints(vals)
    expect = direct_eval(vals, point)
    assert ml.evaluate(v, point) == expect
    assert ml.evaluate_ints(vals, point) == expect
    eq = Fr.to_ints(ml.eq_table(point))
    assert eq == [ml.eq_eval(point, [(i >> j) & 1 for j in range(m)]) for i in range(1 << m)]
    assert sum(e * x for e, x in zip(eq, vals)) % P == expect


@pytest.mark.parametrize("m", [0, 1, 2, 5, 9])
def test_evaluate_small_integers(m):
    """int64 vectors (the int64 extremes included) evaluated without a field copy."""
    rng = np.random.default_rng(m)
    v = rng.integers(-(1 << 62), 1 << 62, size=1 << m)
    v[0] = np.iinfo(np.int64).min
    v[-1] = np.iinfo(np.int64).max
    point = [int(x) for x in rng.integers(0, 1 << 62, m)]
    assert ml.evaluate_small(v, point) == direct_eval([int(x) for x in v], point)
    with pytest.raises(ValueError):
        ml.evaluate_small(v, point + [1])


def test_little_endian_convention():
    # v[0b10] is v~(0, 1): variable 0 is the lowest bit
    v = Fr.from_ints([0, 0, 7, 0])
    assert ml.evaluate(v, [0, 1]) == 7
    assert ml.evaluate(v, [1, 0]) == 0


def test_fold_rows_and_cols():
    rnd = random.Random(3)
    rows, cols = 4, 8
    mat = [rnd.randrange(P) for _ in range(rows * cols)]
    a = Fr.from_ints(mat)
    rp = [rnd.randrange(P) for _ in range(2)]
    cp = [rnd.randrange(P) for _ in range(3)]
    by_rows = Fr.to_ints(ml.fold_rows(a, rows, cols, rp))
    by_cols = Fr.to_ints(ml.fold_cols(a, rows, cols, cp))
    for x in range(cols):
        bits = [(x >> j) & 1 for j in range(3)]
        assert by_rows[x] == direct_eval(mat, bits + rp)
    for x in range(rows):
        bits = [(x >> j) & 1 for j in range(2)]
        assert by_cols[x] == direct_eval(mat, cp + bits)


def test_interpolate():
    rnd = random.Random(5)
    coeffs = [rnd.randrange(P) for _ in range(5)]

    def poly(x):
        return sum(c * pow(x, i, P) for i, c in enumerate(coeffs)) % P

    evals = [poly(t) for t in range(5)]
    for x in [0, 3, 4, 5, 17, P - 1, rnd.randrange(P)]:
        assert ml.interpolate(evals, x) == poly(x)


def test_num_vars_rejects_non_powers():
    assert ml.num_vars(1) == 0 and ml.num_vars(1024) == 10
    for n in (0, 3, 6, 1023):
        with pytest.raises(ValueError):
            ml.num_vars(n)
    assert ml.next_pow2(5) == 8 and ml.next_pow2(1) == 1
    with pytest.raises(ValueError):
        ml.evaluate(Fr.from_ints([1, 2, 3, 4]), [1])
    assert np.array_equal(ml.pad(Fr.from_ints([1]), 2)[1], np.zeros(4, dtype=np.uint64))
