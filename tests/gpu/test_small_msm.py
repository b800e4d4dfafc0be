"""Serial small MSMs (gpu.small_msm: fixed-base combs, Straus) against py_ecc, edge cases
included: zero, one and r - 1 scalars, the identity point, P and -P, repeated points."""

from __future__ import annotations

import random

import numpy as np
from py_ecc import optimized_bn128 as bn

from gpu import small_msm as S
from gpuutil import py_ecc_msm
from zk import curve as ZC

R = bn.curve_order
rnd = random.Random(5)

_ref = py_ecc_msm


def _points():
    a, b = (bn.multiply(bn.G1, rnd.randrange(1, R)) for _ in range(2))
    return [a, b, bn.neg(a), bn.Z1, b]


def _rows(scalar_rows):
    return np.stack([S.limbs(ks) for ks in scalar_rows])


def _check(aff, pts, scalar_rows):
    got = ZC.to_py_ecc(aff)
    for g, ks in zip(got, scalar_rows):
        assert bn.eq(g, _ref(pts, ks))


def test_straus_equals_py_ecc():
    pts = _points()
    rows = [[rnd.randrange(R) for _ in pts] for _ in range(4)]
    rows += [[0] * len(pts), [1, 1, 1, 1, R - 1], [R - 1] * len(pts), [3, 0, 3, 7, 0]]
    _check(S.straus(ZC.from_py_ecc(pts), _rows(rows)), pts, rows)
    assert S.straus(ZC.from_py_ecc(pts), np.zeros((0, len(pts), 4), np.uint64)).shape == (0, 8)


def test_fixed_base_combs_equal_py_ecc():
    pts = _points()[:2]  # combs are built for real bases (commitment generators)
    tables = np.concatenate([S.fixed_table(ZC.from_py_ecc([p])[0]) for p in pts])
    rows = [[rnd.randrange(R) for _ in pts] for _ in range(3)]
    rows += [[0, 0], [1, R - 1], [R - 1, R - 1], [2**255 % R, 255]]
    _check(S.fixed_msm(tables, _rows(rows)), pts, rows)


def test_compressed_rows_match_the_curve_encoding():
    aff = ZC.from_py_ecc(_points())
    assert S.compress_rows(aff) == ZC.compress_list(aff)
