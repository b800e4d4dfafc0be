"""BN254 G1 on the Python side: conversions, the compressed encoding, and decode validation.

Point vectors are the kernels' arrays (see :mod:`gpu.curve`): affine ``(n, 8)`` uint64 rows
(x, y in Montgomery form; the identity is the all-zero row) and Jacobian ``(n, 12)`` rows.

Compressed encoding (32 bytes, one per point)
---------------------------------------------
::

    bytes 0..31  x, canonical (0 <= x < q), little-endian; q < 2^254 leaves the top 2 bits free
    bit 255      (byte 31, 0x80) infinity flag: the identity is exactly 0x00 * 31 + 0x80
    bit 254      (byte 31, 0x40) sign of y: set iff the canonical y is odd

Decoding accepts exactly the encodings :func:`compress` produces: the identity with any other
bit set, x >= q, or an x with x^3 + 3 not a square in Fq is rejected with
:class:`~zk.errors.MalformedProofError`. G1 has prime order r (cofactor 1), so every point on
the curve is in the group and no subgroup check is needed. :mod:`zk.encoding` calls
:func:`validate_point` on every point it reads.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from py_ecc import optimized_bn128 as bn

from gpu import curve as C
from zk.errors import MalformedProofError
from zk.field import Fq

__all__ = [
    "ENCODED_SIZE", "IDENTITY_BYTES", "identity", "generator", "from_py_ecc", "to_py_ecc",
    "compress", "decompress", "validate_point", "to_affine", "to_jacobian", "is_on_curve",
    "point_add", "point_neg",
]

ENCODED_SIZE = 32
IDENTITY_BYTES = bytes(31) + b"\x80"
_ERRORS = {1: "non-canonical encoding of the identity", 2: "x coordinate not below q",
           3: "point not on the curve y^2 = x^3 + 3"}


def identity(n: int = 1) -> np.ndarray:
    """n copies of the identity as affine rows."""
    return np.zeros((n, 8), dtype=np.uint64)


def from_py_ecc(points: Sequence) -> np.ndarray:
    """Affine rows of py_ecc ``optimized_bn128`` points (Jacobian-style triples or None)."""
    out = np.zeros((len(points), 8), dtype=np.uint64)
    xs, ys, idx = [], [], []
    for i, p in enumerate(points):
        if p is None or bn.is_inf(p):
            continue
        x, y = bn.normalize(p)
        xs.append(int(x))
        ys.append(int(y))
        idx.append(i)
    if idx:
        out[idx, :4] = Fq.from_ints(xs)
        out[idx, 4:] = Fq.from_ints(ys)
    return out


def to_py_ecc(aff: np.ndarray) -> list:
    """py_ecc ``optimized_bn128`` points (z = 1, or bn.Z1) of affine rows."""
    aff = np.ascontiguousarray(aff, dtype=np.uint64).reshape(-1, 8)
    xs = Fq.to_ints(np.ascontiguousarray(aff[:, :4]))
    ys = Fq.to_ints(np.ascontiguousarray(aff[:, 4:]))
    out = []
    for x, y in zip(xs, ys):
        if x == 0 and y == 0:
            out.append(bn.Z1)
        else:
            out.append((bn.FQ(x), bn.FQ(y), bn.FQ(1)))
    return out


def generator() -> np.ndarray:
    """The standard generator (1, 2) as one affine row."""
    return from_py_ecc([bn.G1])


def to_affine(jac: np.ndarray) -> np.ndarray:
    jac = np.ascontiguousarray(jac, dtype=np.uint64).reshape(-1, 12)
    out = np.empty((jac.shape[0], 8), dtype=np.uint64)
    if jac.shape[0]:
        C.vjac_to_affine(jac, out)
    return out


def to_jacobian(aff: np.ndarray) -> np.ndarray:
    aff = np.ascontiguousarray(aff, dtype=np.uint64).reshape(-1, 8)
    out = np.empty((aff.shape[0], 12), dtype=np.uint64)
    if aff.shape[0]:
        C.vaffine_to_jac(aff, out)
    return out


def is_on_curve(aff: np.ndarray) -> np.ndarray:
    aff = np.ascontiguousarray(aff, dtype=np.uint64).reshape(-1, 8)
    out = np.empty(aff.shape[0], dtype=np.bool_)
    C.von_curve(aff, out)
    return out


def point_add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Entrywise sum of two affine arrays (as affine)."""
    out = np.empty((a.shape[0], 12), dtype=np.uint64)
    C.vjac_add_affine(to_jacobian(a), np.ascontiguousarray(b, dtype=np.uint64), out)
    return to_affine(out)


def point_neg(a: np.ndarray) -> np.ndarray:
    out = np.array(a, dtype=np.uint64, copy=True).reshape(-1, 8)
    inf = ~out.any(axis=1)
    out[:, 4:] = Fq.neg(np.ascontiguousarray(out[:, 4:]))
    out[inf] = 0
    return out


def compress(aff: np.ndarray) -> np.ndarray:
    """(n, 32) uint8 array of compressed encodings of affine rows."""
    aff = np.ascontiguousarray(aff, dtype=np.uint64).reshape(-1, 8)
    out = np.zeros((aff.shape[0], 32), dtype=np.uint8)
    if aff.shape[0]:
        C.vcompress(aff, out)
    return out


def compress_list(aff: np.ndarray) -> list[bytes]:
    """Compressed encodings as a list of 32-byte strings."""
    return [row.tobytes() for row in compress(aff)]


def decompress(encoded: Sequence[bytes] | np.ndarray) -> np.ndarray:
    """Affine rows of compressed encodings; MalformedProofError on any invalid one."""
    if isinstance(encoded, np.ndarray):
        enc = np.ascontiguousarray(encoded, dtype=np.uint8).reshape(-1, 32)
    else:
        items = [bytes(e) for e in encoded]
        if any(len(e) != ENCODED_SIZE for e in items):
            raise MalformedProofError("a compressed point is 32 bytes")
        enc = np.frombuffer(b"".join(items), dtype=np.uint8).reshape(-1, 32)
    out = np.empty((enc.shape[0], 8), dtype=np.uint64)
    status = np.zeros(enc.shape[0], dtype=np.uint8)
    if enc.shape[0] > 64:
        C.vdecompress(enc, out, status)
    elif enc.shape[0]:
        C.vdecompress_serial(enc, out, status)
    bad = np.flatnonzero(status)
    if bad.size:
        i = int(bad[0])
        raise MalformedProofError(f"invalid point {i}: {_ERRORS[int(status[i])]}")
    return out


def validate_point(b: bytes) -> None:
    """Raise MalformedProofError unless ``b`` is a canonical compressed point of G1."""
    if len(b) != ENCODED_SIZE:
        raise MalformedProofError(f"a compressed point is 32 bytes, got {len(b)}")
    decompress([b])

