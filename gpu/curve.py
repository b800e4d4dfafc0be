"""BN254 (alt_bn128) G1 arithmetic as numba CPU kernels: y^2 = x^3 + 3 over Fq.

Conventions
-----------
* Coordinates are Fq elements in Montgomery form, four little-endian uint64 limbs each
  (see :mod:`gpu.field`); ``DQ`` is the Fq kernel descriptor.
* An **affine** point is a row of an ``(n, 8)`` uint64 array: x limbs then y limbs. The
  identity is the all-zero row ((0, 0) is not on the curve, since 0 != 3).
* A **Jacobian** point is a row of an ``(n, 12)`` uint64 array: X, Y, Z with x = X/Z^2,
  y = Y/Z^3; the identity has Z = 0. Inside kernels a Jacobian point is a 3-tuple of element
  tuples and an affine point a 2-tuple.
* Formulas (a = 0 short Weierstrass, from the Explicit-Formulas Database): ``dbl-2009-l``,
  ``madd-2007-bl`` (Jacobian + affine), ``add-2007-bl``; each handles the identity and the
  P = Q / P = -Q cases explicitly. Affine additions for the batch-affine MSM take a
  precomputed inverse of the denominator (x2 - x1, or 2y for a doubling).
* The compressed encoding (32 bytes) is described in :mod:`zk.curve`; the kernels here are
  :func:`vcompress` and :func:`vdecompress`.

Only numba-compiled code calls the element functions; Python code uses :mod:`zk.curve`.
"""

from __future__ import annotations

import numba as nb
import numpy as np
from numba import prange
from py_ecc.optimized_bn128 import field_modulus

from gpu import field as F
from gpu.field import ONE, U64, ZERO, add, is_zero, load, mul, neg, store, sub
from gpu.wide import sbb

_jit = nb.njit(cache=True, nogil=True)
_pjit = nb.njit(cache=True, nogil=True, parallel=True)

DQ = F.descriptor(field_modulus)
"""Kernel descriptor of the base field Fq."""

_Q = field_modulus
_R = pow(2, 256, _Q)


def _mont_tuple(x: int) -> tuple:
    m = x % _Q * _R % _Q
    return tuple(U64((m >> (64 * k)) & 0xFFFFFFFFFFFFFFFF) for k in range(4))


B_MONT = _mont_tuple(3)
"""The curve coefficient b = 3 in Montgomery form."""
SQRT_EXP = tuple(U64(((_Q + 1) // 4 >> (64 * k)) & 0xFFFFFFFFFFFFFFFF) for k in range(4))
"""(q + 1) / 4: since q = 3 mod 4, a square s has the square root s^((q+1)/4)."""

E0 = (ZERO, ZERO, ZERO, ZERO)


# ---------------------------------------------------------------- element functions


@_jit
def eq(x, y):
    return x[0] == y[0] and x[1] == y[1] and x[2] == y[2] and x[3] == y[3]


@_jit
def jac_identity():
    o = F.one(DQ)
    return (o, o, E0)


@_jit
def jac_from_affine(x, y):
    """Jacobian form of an affine point (the all-zero affine point maps to the identity)."""
    if is_zero(x) and is_zero(y):
        return jac_identity()
    return (x, y, F.one(DQ))


@_jit
def jac_double(P, d):
    """2P (dbl-2009-l, a = 0)."""
    X, Y, Z = P
    if is_zero(Z):
        return P
    A = mul(X, X, d)
    B = mul(Y, Y, d)
    C = mul(B, B, d)
    t = add(X, B, d)
    t = sub(sub(mul(t, t, d), A, d), C, d)
    D = add(t, t, d)
    E = add(add(A, A, d), A, d)
    Fv = mul(E, E, d)
    X3 = sub(Fv, add(D, D, d), d)
    C2 = add(C, C, d)
    C4 = add(C2, C2, d)
    C8 = add(C4, C4, d)
    Y3 = sub(mul(E, sub(D, X3, d), d), C8, d)
    Z3 = mul(Y, Z, d)
    Z3 = add(Z3, Z3, d)
    return (X3, Y3, Z3)


@_jit
def jac_add_affine(P, x2, y2, d):
    """P + (x2, y2) for a Jacobian P and an affine point (madd-2007-bl); (0, 0) is the identity."""
    if is_zero(x2) and is_zero(y2):
        return P
    X1, Y1, Z1 = P
    if is_zero(Z1):
        return (x2, y2, F.one(d))
    Z1Z1 = mul(Z1, Z1, d)
    U2 = mul(x2, Z1Z1, d)
    S2 = mul(mul(y2, Z1, d), Z1Z1, d)
    H = sub(U2, X1, d)
    r = sub(S2, Y1, d)
    if is_zero(H):
        if is_zero(r):
            return jac_double(P, d)
        return (F.one(d), F.one(d), E0)
    HH = mul(H, H, d)
    I2 = add(HH, HH, d)
    I = add(I2, I2, d)
    J = mul(H, I, d)
    r = add(r, r, d)
    V = mul(X1, I, d)
    X3 = sub(sub(mul(r, r, d), J, d), add(V, V, d), d)
    YJ = mul(Y1, J, d)
    Y3 = sub(mul(r, sub(V, X3, d), d), add(YJ, YJ, d), d)
    t = add(Z1, H, d)
    Z3 = sub(sub(mul(t, t, d), Z1Z1, d), HH, d)
    return (X3, Y3, Z3)


@_jit
def jac_add(P, Q, d):
    """P + Q for Jacobian points (add-2007-bl)."""
    X1, Y1, Z1 = P
    X2, Y2, Z2 = Q
    if is_zero(Z1):
        return Q
    if is_zero(Z2):
        return P
    Z1Z1 = mul(Z1, Z1, d)
    Z2Z2 = mul(Z2, Z2, d)
    U1 = mul(X1, Z2Z2, d)
    U2 = mul(X2, Z1Z1, d)
    S1 = mul(mul(Y1, Z2, d), Z2Z2, d)
    S2 = mul(mul(Y2, Z1, d), Z1Z1, d)
    H = sub(U2, U1, d)
    r = sub(S2, S1, d)
    if is_zero(H):
        if is_zero(r):
            return jac_double(P, d)
        return (F.one(d), F.one(d), E0)
    H2 = add(H, H, d)
    I = mul(H2, H2, d)
    J = mul(H, I, d)
    r = add(r, r, d)
    V = mul(U1, I, d)
    X3 = sub(sub(mul(r, r, d), J, d), add(V, V, d), d)
    SJ = mul(S1, J, d)
    Y3 = sub(mul(r, sub(V, X3, d), d), add(SJ, SJ, d), d)
    t = add(Z1, Z2, d)
    Z3 = mul(sub(sub(mul(t, t, d), Z1Z1, d), Z2Z2, d), H, d)
    return (X3, Y3, Z3)


@_jit
def jac_neg(P, d):
    return (P[0], neg(P[1], d), P[2])


@_jit
def jac_load(a, i):
    return (
        (a[i, 0], a[i, 1], a[i, 2], a[i, 3]),
        (a[i, 4], a[i, 5], a[i, 6], a[i, 7]),
        (a[i, 8], a[i, 9], a[i, 10], a[i, 11]),
    )


@_jit
def jac_store(a, i, P):
    for k in range(4):
        a[i, k] = P[0][k]
        a[i, 4 + k] = P[1][k]
        a[i, 8 + k] = P[2][k]


@_jit
def aff_load(a, i):
    return ((a[i, 0], a[i, 1], a[i, 2], a[i, 3]), (a[i, 4], a[i, 5], a[i, 6], a[i, 7]))


@_jit
def aff_store(a, i, x, y):
    for k in range(4):
        a[i, k] = x[k]
        a[i, 4 + k] = y[k]


@_jit
def aff_is_inf(x, y):
    return is_zero(x) and is_zero(y)


@_jit
def jac_to_affine(P, d):
    """Affine (x, y) of a Jacobian point, with one inversion; the identity maps to (0, 0)."""
    if is_zero(P[2]):
        return (E0, E0)
    zi = F.inv(P[2], d)
    zi2 = mul(zi, zi, d)
    return (mul(P[0], zi2, d), mul(P[1], mul(zi2, zi, d), d))


@_jit
def scalar_mul(P, k0, k1, k2, k3, d):
    """k * P for a Jacobian P and a 256-bit scalar k given as limbs (double and add)."""
    acc = jac_identity()
    k = (k0, k1, k2, k3)
    for limb in range(3, -1, -1):
        w = k[limb]
        for bit in range(63, -1, -1):
            acc = jac_double(acc, d)
            if (w >> U64(bit)) & ONE:
                acc = jac_add(acc, P, d)
    return acc


@_jit
def on_curve_affine(x, y, d, b):
    """y^2 == x^3 + b for an affine point (the identity (0, 0) counts as on the curve)."""
    if aff_is_inf(x, y):
        return True
    lhs = mul(y, y, d)
    rhs = add(mul(mul(x, x, d), x, d), b, d)
    return eq(lhs, rhs)


# ---------------------------------------------------------------- vector kernels


@_jit
def _batch_inv_range(a, out, lo, hi, d):
    """out_i = 1/a_i for i in [lo, hi) by Montgomery's trick (zeros map to zero)."""
    acc = F.one(d)
    for i in range(lo, hi):
        store(out, i, acc)
        x = load(a, i)
        if not is_zero(x):
            acc = mul(acc, x, d)
    acc = F.inv(acc, d)
    for i in range(hi - 1, lo - 1, -1):
        x = load(a, i)
        if is_zero(x):
            store(out, i, E0)
        else:
            store(out, i, mul(acc, load(out, i), d))
            acc = mul(acc, x, d)


@_pjit
def vjac_to_affine(jac, out):
    """Jacobian rows to affine rows with one inversion per chunk (Montgomery's trick)."""
    d = DQ
    n = jac.shape[0]
    zs = np.empty((n, 4), dtype=np.uint64)
    zinv = np.empty((n, 4), dtype=np.uint64)
    for i in range(n):
        store(zs, i, (jac[i, 8], jac[i, 9], jac[i, 10], jac[i, 11]))
    chunks = max(1, min(n // 256, 64))
    size = (n + chunks - 1) // chunks
    for c in prange(chunks):
        _batch_inv_range(zs, zinv, c * size, min(n, (c + 1) * size), d)
    for i in prange(n):
        P = jac_load(jac, i)
        if is_zero(P[2]):
            aff_store(out, i, E0, E0)
        else:
            zi = load(zinv, i)
            zi2 = mul(zi, zi, d)
            aff_store(out, i, mul(P[0], zi2, d), mul(P[1], mul(zi2, zi, d), d))


@_pjit
def vaffine_to_jac(aff, out):
    for i in prange(aff.shape[0]):
        x, y = aff_load(aff, i)
        jac_store(out, i, jac_from_affine(x, y))


@_pjit
def vjac_add(a, b, out):
    for i in prange(a.shape[0]):
        jac_store(out, i, jac_add(jac_load(a, i), jac_load(b, i), DQ))


@_pjit
def vjac_double(a, out):
    for i in prange(a.shape[0]):
        jac_store(out, i, jac_double(jac_load(a, i), DQ))


@_pjit
def vjac_add_affine(a, b, out):
    for i in prange(a.shape[0]):
        x, y = aff_load(b, i)
        jac_store(out, i, jac_add_affine(jac_load(a, i), x, y, DQ))


@_pjit
def vscalar_mul(aff, scalars, out):
    """out_i = k_i * P_i for affine P_i and canonical scalar limbs k_i (reference path)."""
    for i in prange(aff.shape[0]):
        x, y = aff_load(aff, i)
        P = jac_from_affine(x, y)
        jac_store(out, i, scalar_mul(P, scalars[i, 0], scalars[i, 1], scalars[i, 2],
                                     scalars[i, 3], DQ))


@_jit
def jac_sum(jac):
    """Sum of all rows of a Jacobian array."""
    acc = jac_identity()
    for i in range(jac.shape[0]):
        acc = jac_add(acc, jac_load(jac, i), DQ)
    return acc


@_pjit
def vcompress(aff, out):
    """Compressed 32-byte encodings (layout in :mod:`zk.curve`) of affine rows into (n, 32) u8."""
    d = DQ
    for i in prange(aff.shape[0]):
        x, y = aff_load(aff, i)
        if aff_is_inf(x, y):
            for k in range(32):
                out[i, k] = 0
            out[i, 31] = 0x80
            continue
        xc = F.from_mont(x, d)
        yc = F.from_mont(y, d)
        for k in range(4):
            w = xc[k]
            for j in range(8):
                out[i, 8 * k + j] = np.uint8((w >> U64(8 * j)) & U64(0xFF))
        if yc[0] & ONE:
            out[i, 31] |= np.uint8(0x40)


@_jit
def _limb(enc, i, k):
    w = ZERO
    for j in range(8):
        w |= U64(enc[i, 8 * k + j]) << U64(8 * j)
    return w


@_pjit
def vdecompress(enc, out, status):
    """Decode (n, 32) u8 encodings into affine rows; status_i = 0 if valid, else an error code.

    Error codes: 1 non-canonical identity, 2 x >= q, 3 x^3 + 3 not a square (not on the curve).
    Invalid rows are written as the identity.
    """
    d = DQ
    b = B_MONT
    for i in prange(enc.shape[0]):
        status[i] = 0
        flags = enc[i, 31] & np.uint8(0xC0)
        xc = (_limb(enc, i, 0), _limb(enc, i, 1), _limb(enc, i, 2),
              _limb(enc, i, 3) & U64(0x3FFFFFFFFFFFFFFF))
        aff_store(out, i, E0, E0)
        if flags & np.uint8(0x80):
            if flags != np.uint8(0x80) or not is_zero(xc):
                status[i] = 1
            continue
        _, br = sbb(xc[0], d[0], ZERO)
        _, br = sbb(xc[1], d[1], br)
        _, br = sbb(xc[2], d[2], br)
        _, br = sbb(xc[3], d[3], br)
        if br == ZERO:
            status[i] = 2
            continue
        x = F.to_mont(xc, d)
        rhs = add(mul(mul(x, x, d), x, d), b, d)
        y = F.pow_limbs(rhs, SQRT_EXP[0], SQRT_EXP[1], SQRT_EXP[2], SQRT_EXP[3], d)
        if not eq(mul(y, y, d), rhs):
            status[i] = 3
            continue
        yc = F.from_mont(y, d)
        want_odd = (flags & np.uint8(0x40)) != np.uint8(0)
        if ((yc[0] & ONE) == ONE) != want_odd:
            y = neg(y, d)
        aff_store(out, i, x, y)


@_pjit
def von_curve(aff, out):
    for i in prange(aff.shape[0]):
        x, y = aff_load(aff, i)
        out[i] = on_curve_affine(x, y, DQ, B_MONT)


def _serial_twin(fn):
    import types
    twin = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + "_serial",
                              fn.__defaults__, fn.__closure__)
    twin.__qualname__ = fn.__qualname__ + "_serial"
    return twin


vdecompress_serial = nb.njit(cache=True, nogil=True)(_serial_twin(vdecompress.py_func))
"""Single-threaded :func:`vdecompress` (for a few points: no parallel-region overhead). Its own
name: numba's disk cache keys entries by qualified name and signature, so a twin under the
parallel kernel's name would load the parallel code from the cache."""
