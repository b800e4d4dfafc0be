"""G1 kernels (gpu.curve) and the compressed encoding (zk.curve) against py_ecc."""

from __future__ import annotations

import random

import numpy as np
import pytest
from py_ecc import optimized_bn128 as bn

from gpu import curve as C
from zk import curve as ZC
from zk import encoding
from zk.errors import MalformedProofError

R = bn.curve_order
Q = bn.field_modulus
rnd = random.Random(7)


def _pts(k):
    return [bn.multiply(bn.G1, rnd.randrange(1, R)) for _ in range(k)]


def _same(a, b):
    return all(bn.eq(x, y) for x, y in zip(a, b, strict=True))


@pytest.fixture(scope="module")
def sample():
    p = _pts(6)
    return p + [bn.Z1, bn.G1]


def test_roundtrip_py_ecc(sample):
    assert _same(ZC.to_py_ecc(ZC.from_py_ecc(sample)), sample)
    assert ZC.is_on_curve(ZC.from_py_ecc(sample)).all()


def test_add_double_cases(sample):
    a = ZC.from_py_ecc(sample)
    b = ZC.from_py_ecc(sample[::-1])
    assert _same(ZC.to_py_ecc(ZC.point_add(a, b)), [bn.add(x, y) for x, y in zip(sample, sample[::-1])])
    assert _same(ZC.to_py_ecc(ZC.point_add(a, a)), [bn.double(x) for x in sample])
    neg = ZC.point_neg(a)
    assert _same(ZC.to_py_ecc(neg), [bn.neg(x) for x in sample])
    assert not ZC.point_add(a, neg).any()  # P + (-P) is the identity


def test_jacobian_kernels(sample):
    a = ZC.to_jacobian(ZC.from_py_ecc(sample))
    b = ZC.to_jacobian(ZC.from_py_ecc(sample[1:] + sample[:1]))
    out = np.empty_like(a)
    C.vjac_add(a, b, out)
    want = [bn.add(x, y) for x, y in zip(sample, sample[1:] + sample[:1])]
    assert _same(ZC.to_py_ecc(ZC.to_affine(out)), want)
    C.vjac_add(a, a, out)  # P + P through the full addition
    assert _same(ZC.to_py_ecc(ZC.to_affine(out)), [bn.double(x) for x in sample])
    C.vjac_double(out, out)
    assert _same(ZC.to_py_ecc(ZC.to_affine(out)), [bn.multiply(x, 4) for x in sample])


def test_scalar_mul_edge_scalars(sample):
    ks = [0, 1, R - 1, 2, rnd.randrange(R), rnd.randrange(R), R - 2, 3]
    limbs = np.array([[(k >> (64 * j)) & (2**64 - 1) for j in range(4)] for k in ks], np.uint64)
    out = np.empty((len(ks), 12), np.uint64)
    C.vscalar_mul(ZC.from_py_ecc(sample), limbs, out)
    assert _same(ZC.to_py_ecc(ZC.to_affine(out)), [bn.multiply(p, k) for p, k in zip(sample, ks)])


def test_compress_roundtrip_and_layout(sample):
    a = ZC.from_py_ecc(sample)
    enc = ZC.compress(a)
    assert (ZC.decompress(enc) == a).all()
    for p, e in zip(sample, enc):
        e = e.tobytes()
        if bn.is_inf(p):
            assert e == ZC.IDENTITY_BYTES
            continue
        x, y = (int(v) for v in bn.normalize(p))
        assert int.from_bytes(e, "little") & (2**254 - 1) == x
        assert bool(e[31] & 0x40) == bool(y & 1)
        assert not e[31] & 0x80


def _enc(x, flags=0):
    b = bytearray(x.to_bytes(32, "little"))
    b[31] |= flags
    return bytes(b)


def test_decode_rejects_invalid():
    x_off = next(x for x in range(1, 100) if pow(x**3 + 3, (Q - 1) // 2, Q) != 1)
    bad = [
        _enc(x_off),  # not on the curve
        _enc(1 + Q),  # x >= q (1 + q < 2^254; x = 1 is on the curve)
        _enc(Q),
        _enc(1, 0x80),  # identity flag with x != 0
        _enc(0, 0xC0),  # identity flag with the sign bit
    ]
    for b in bad:
        with pytest.raises(MalformedProofError):
            ZC.validate_point(b)
    with pytest.raises(MalformedProofError):
        ZC.validate_point(bytes(31))
    ZC.validate_point(ZC.IDENTITY_BYTES)
    ZC.validate_point(_enc(1))  # (1, 2) with even y
    assert encoding.POINT_VALIDATOR is None  # None means: validate with zk.curve
    r = encoding.Reader(bytes([0x08]) + _enc(x_off))
    with pytest.raises(MalformedProofError):
        r.point()
