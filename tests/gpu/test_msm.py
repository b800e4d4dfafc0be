"""Pippenger MSM (gpu.msm) against py_ecc on random and edge-case inputs."""

from __future__ import annotations

import random

import numpy as np
import pytest
from py_ecc import optimized_bn128 as bn

from gpu import msm as M
from gpuutil import py_ecc_msm
from zk import curve as ZC
from zk.field import Fr

R = bn.curve_order
rnd = random.Random(11)

_ref = py_ecc_msm


@pytest.fixture(scope="module")
def base():
    distinct = [bn.multiply(bn.G1, rnd.randrange(1, R)) for _ in range(6)]
    pts = [distinct[i % 6] for i in range(40)]  # repeated points: doublings in buckets
    pts[5] = bn.Z1
    pts[7] = bn.neg(pts[1])  # P and -P in one MSM
    return pts


@pytest.mark.parametrize("c", [None, 2, 4, 7])
def test_field_scalars(base, c):
    ks = [rnd.randrange(R) for _ in base]
    ks[:4] = [0, 1, R - 1, R - 1]
    got = ZC.to_py_ecc(ZC.to_affine(M.msm_mont(ZC.from_py_ecc(base), Fr.from_ints(ks), c=c)))
    assert bn.eq(got[0], _ref(base, ks))
    limbs = Fr.canonical_limbs(Fr.from_ints(ks))
    got2 = ZC.to_affine(M.msm_canonical(ZC.from_py_ecc(base), limbs, c=c))
    assert bn.eq(ZC.to_py_ecc(got2)[0], _ref(base, ks))


def test_equal_scalars_cancel(base):
    # every point in one bucket: exercises P + P and P + (-P) inside the tree
    ks = [5] * len(base)
    got = ZC.to_py_ecc(ZC.to_affine(M.msm_mont(ZC.from_py_ecc(base), Fr.from_ints(ks), c=3)))
    assert bn.eq(got[0], _ref(base, ks))


def test_many_rows_signed(base):
    rng = np.random.default_rng(3)
    ks = rng.integers(-(2**15), 2**15, size=(3, len(base)))
    ks[0, :] = 0
    ks[1, 0] = -(2**40)
    got = ZC.to_py_ecc(ZC.to_affine(M.msm_signed(ZC.from_py_ecc(base), ks)))
    for row in range(3):
        assert bn.eq(got[row], _ref(base, [int(k) for k in ks[row]]))
    mont = M.msm_mont(ZC.from_py_ecc(base), Fr.from_signed(ks).reshape(3, -1, 4))
    assert (ZC.to_affine(mont) == ZC.to_affine(M.msm_signed(ZC.from_py_ecc(base), ks))).all()


def test_larger_random_against_naive():
    """300 points, several windows; reference: the kernel's double-and-add summed by py_ecc."""
    from gpu import curve as C

    rng = np.random.default_rng(5)
    seeds = ZC.from_py_ecc([bn.multiply(bn.G1, rnd.randrange(1, R)) for _ in range(3)])
    P = ZC.to_affine(M.msm_signed(seeds, rng.integers(1, 1000, size=(300, 3))))
    s = Fr.random(300, rng)
    got = ZC.to_py_ecc(ZC.to_affine(M.msm_mont(P, s)))[0]
    each = np.empty((300, 12), np.uint64)
    C.vscalar_mul(P, Fr.canonical_limbs(s), each)
    want = bn.Z1
    for p in ZC.to_py_ecc(ZC.to_affine(each)):
        want = bn.add(want, p)
    assert bn.eq(got, want)


def test_empty_and_window_choice():
    empty = M.msm_mont(np.zeros((0, 8), np.uint64), np.zeros((0, 4), np.uint64))
    assert not ZC.to_affine(empty).any()
    for n in (2**10, 2**12, 2**16, 2**20):
        assert 2 <= M.window_bits(n, 253) <= 16
