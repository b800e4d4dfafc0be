"""Small multi-scalar multiplications on BN254 G1, serial: the many tiny MSMs of a proof.

A zero-knowledge proof commits hundreds of scalars (v U + r H) and sumcheck rounds (a few
generators each), one small batch at a time between challenges. Pippenger's windows and numba's
thread pool (whose wake-up costs milliseconds on a loaded machine) are wasted on them, so these
kernels run on the calling thread:

* :func:`fixed_table` / :func:`fixed_msm`: fixed-base combs. For a base B the table holds
  j 2^(8w) B for every byte position w < 32 and byte value j < 256 (8192 affine points, 512 KB),
  so k B costs 32 mixed additions; a commitment v U + r H costs 64.
* :func:`straus`: for a handful of variable points, Straus's interleaved 4-bit windows: a table
  of 15 multiples per point (affine, one inversion), then 64 windows of 4 doublings and one
  mixed addition per point.

Scalars are canonical little-endian limbs (values below r), as ``(m, n, 4)`` uint64 arrays
(m MSMs of n points). Results are affine rows (the identity as the all-zero row), as in
:mod:`gpu.curve`; :data:`compress` encodes them without a parallel region.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from gpu import curve as C
from gpu import field as F
from gpu.curve import DQ, E0, aff_load, aff_store, jac_add, jac_add_affine, jac_double, jac_store
from gpu.field import U64, is_zero, load, mul, store
from gpu.jit import _twin

_jit = nb.njit(cache=True, nogil=True)

compress = nb.njit(cache=True, nogil=True)(_twin(C.vcompress.py_func))
"""Serial :func:`gpu.curve.vcompress` (its own name: numba's disk cache keys entries by name
and signature, so a twin under the parallel kernel's name would load the parallel code)."""


@_jit
def _to_affine_rows(jac, out):
    """Jacobian (n, 12) rows to affine rows with one inversion (Montgomery's trick)."""
    d = DQ
    n = jac.shape[0]
    zs = np.empty((n, 4), dtype=np.uint64)
    zinv = np.empty((n, 4), dtype=np.uint64)
    for i in range(n):
        store(zs, i, (jac[i, 8], jac[i, 9], jac[i, 10], jac[i, 11]))
    C._batch_inv_range(zs, zinv, 0, n, d)
    for i in range(n):
        z = load(zs, i)
        if is_zero(z):
            aff_store(out, i, E0, E0)
            continue
        zi = load(zinv, i)
        zi2 = mul(zi, zi, d)
        x = mul((jac[i, 0], jac[i, 1], jac[i, 2], jac[i, 3]), zi2, d)
        y = mul((jac[i, 4], jac[i, 5], jac[i, 6], jac[i, 7]), mul(zi2, zi, d), d)
        aff_store(out, i, x, y)


@_jit
def _fixed_table(base, out):
    d = DQ
    jac = np.zeros((32 * 256, 12), dtype=np.uint64)
    x, y = aff_load(base, 0)
    step = (x, y, F.one(d))
    if is_zero(x) and is_zero(y):
        step = (F.one(d), F.one(d), E0)
    for w in range(32):
        acc = (F.one(d), F.one(d), E0)
        for j in range(256):
            jac_store(jac, w * 256 + j, acc)
            acc = jac_add(acc, step, d)
        step = acc  # 256 * step = 2^(8(w+1)) B
    _to_affine_rows(jac, out)


def fixed_table(base: np.ndarray) -> np.ndarray:
    """The comb table of one affine base point: (8192, 8) affine rows j 2^(8w) B at 256 w + j."""
    out = np.empty((32 * 256, 8), dtype=np.uint64)
    _fixed_table(np.ascontiguousarray(base, dtype=np.uint64).reshape(1, 8), out)
    return out


@_jit
def _fixed_msm(tables, scalars, out):
    d = DQ
    m, n = scalars.shape[0], scalars.shape[1]
    jac = np.empty((m, 12), dtype=np.uint64)
    for row in range(m):
        acc = (F.one(d), F.one(d), E0)
        for k in range(n):
            for limb in range(4):
                word = scalars[row, k, limb]
                for byte in range(8):
                    j = np.int64((word >> U64(8 * byte)) & U64(0xFF))
                    if j:
                        x, y = aff_load(tables, k * 8192 + (8 * limb + byte) * 256 + j)
                        acc = jac_add_affine(acc, x, y, d)
        jac_store(jac, row, acc)
    _to_affine_rows(jac, out)


def fixed_msm(tables: np.ndarray, scalars: np.ndarray) -> np.ndarray:
    """Affine (m, 8) results sum_k s[row, k] B_k for bases whose comb tables are stacked in
    ``tables`` ((8192 n, 8)); ``scalars`` (m, n, 4) canonical limbs."""
    s = np.ascontiguousarray(scalars, dtype=np.uint64)
    out = np.empty((s.shape[0], 8), dtype=np.uint64)
    _fixed_msm(np.ascontiguousarray(tables, dtype=np.uint64), s, out)
    return out


@_jit
def _straus(points, scalars, out):
    d = DQ
    n = points.shape[0]
    m = scalars.shape[0]
    tj = np.empty((n * 15, 12), dtype=np.uint64)
    for k in range(n):
        x, y = aff_load(points, k)
        acc = (F.one(d), F.one(d), E0)
        for j in range(15):
            acc = jac_add_affine(acc, x, y, d)
            jac_store(tj, k * 15 + j, acc)
    table = np.empty((n * 15, 8), dtype=np.uint64)
    _to_affine_rows(tj, table)
    jac = np.empty((m, 12), dtype=np.uint64)
    for row in range(m):
        acc = (F.one(d), F.one(d), E0)
        for w in range(63, -1, -1):
            for _ in range(4):
                acc = jac_double(acc, d)
            limb = w // 16
            sh = U64(4 * (w % 16))
            for k in range(n):
                j = np.int64((scalars[row, k, limb] >> sh) & U64(15))
                if j:
                    x, y = aff_load(table, k * 15 + j - 1)
                    acc = jac_add_affine(acc, x, y, d)
        jac_store(jac, row, acc)
    _to_affine_rows(jac, out)


def straus(points: np.ndarray, scalars: np.ndarray) -> np.ndarray:
    """Affine (m, 8) results of m MSMs over a few affine points ((n, 8)); ``scalars`` (m, n, 4)
    canonical limbs."""
    p = np.ascontiguousarray(points, dtype=np.uint64).reshape(-1, 8)
    s = np.ascontiguousarray(scalars, dtype=np.uint64).reshape(-1, p.shape[0], 4)
    out = np.empty((s.shape[0], 8), dtype=np.uint64)
    if s.shape[0]:
        _straus(p, s, out)
    return out


def limbs(values) -> np.ndarray:
    """Canonical limbs (k, 4) of Python ints in [0, 2^256)."""
    raw = b"".join(int(v).to_bytes(32, "little") for v in values)
    return np.frombuffer(raw, dtype="<u8").astype(np.uint64).reshape(-1, 4)


def compress_rows(aff: np.ndarray) -> list[bytes]:
    """32-byte compressed encodings of affine rows, serially."""
    out = np.zeros((aff.shape[0], 32), dtype=np.uint8)
    if aff.shape[0]:
        compress(np.ascontiguousarray(aff, dtype=np.uint64), out)
    return [row.tobytes() for row in out]

