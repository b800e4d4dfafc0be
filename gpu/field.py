"""Montgomery arithmetic in 254-bit prime fields (BN254's Fr and Fq) as numba CPU kernels.

Conventions
-----------
* An element is four little-endian 64-bit limbs holding x*R mod p, R = 2^256 (Montgomery form).
  A vector of n elements is a C-contiguous ``(n, 4)`` uint64 array; inside kernels an element is
  a ``UniTuple(uint64, 4)``.
* Kernels take a *field descriptor* ``d`` first: the tuple ``(p0, p1, p2, p3, inv, r2_0, r2_1,
  r2_2, r2_3)`` of uint64, where ``inv = -p^-1 mod 2^64`` and ``r2 = R^2 mod p``. One compiled
  kernel serves every field; the descriptor lives in registers.
* Multiplication is CIOS Montgomery multiplication with the "no-carry" shortcut, valid because
  the top limb of p is below 2^62 (true for both BN254 fields; checked in :class:`PrimeField`).

Only numba-compiled code calls the element functions; Python code uses :class:`zk.field`'s
wrapper or the vector kernels below.
"""

from __future__ import annotations

import numba as nb
import numpy as np
from numba import prange

from gpu.jit import jit as _jit
from gpu.jit import kernel
from gpu.wide import adc, mac, sbb

U64 = np.uint64
ZERO = U64(0)
ONE = U64(1)



# ---------------------------------------------------------------- element functions


@_jit
def load(a, i):
    """Element i of an (n, 4) array as a tuple."""
    return (a[i, 0], a[i, 1], a[i, 2], a[i, 3])


@_jit
def store(a, i, x):
    """Write tuple x as element i of an (n, 4) array."""
    a[i, 0] = x[0]
    a[i, 1] = x[1]
    a[i, 2] = x[2]
    a[i, 3] = x[3]


@_jit
def _reduce_once(t0, t1, t2, t3, d):
    """Return t - p if t >= p else t, for t < 2p."""
    s0, b = sbb(t0, d[0], ZERO)
    s1, b = sbb(t1, d[1], b)
    s2, b = sbb(t2, d[2], b)
    s3, b = sbb(t3, d[3], b)
    if b:
        return (t0, t1, t2, t3)
    return (s0, s1, s2, s3)


@_jit
def add(x, y, d):
    """x + y mod p."""
    t0, c = adc(x[0], y[0], ZERO)
    t1, c = adc(x[1], y[1], c)
    t2, c = adc(x[2], y[2], c)
    t3, c = adc(x[3], y[3], c)
    return _reduce_once(t0, t1, t2, t3, d)


@_jit
def sub(x, y, d):
    """x - y mod p."""
    t0, b = sbb(x[0], y[0], ZERO)
    t1, b = sbb(x[1], y[1], b)
    t2, b = sbb(x[2], y[2], b)
    t3, b = sbb(x[3], y[3], b)
    if b:
        t0, c = adc(t0, d[0], ZERO)
        t1, c = adc(t1, d[1], c)
        t2, c = adc(t2, d[2], c)
        t3, c = adc(t3, d[3], c)
    return (t0, t1, t2, t3)


@_jit
def neg(x, d):
    """-x mod p."""
    return sub((ZERO, ZERO, ZERO, ZERO), x, d)


@_jit
def is_zero(x):
    return (x[0] | x[1] | x[2] | x[3]) == ZERO


@_jit
def _cios_round(t0, t1, t2, t3, x, yi, d):
    """One outer iteration of CIOS: t = (t + x*yi + m*p) / 2^64 with m making it exact."""
    t0, c = mac(t0, x[0], yi, ZERO)
    t1, c = mac(t1, x[1], yi, c)
    t2, c = mac(t2, x[2], yi, c)
    t3, t4 = mac(t3, x[3], yi, c)
    m = t0 * d[4]
    _, c = mac(t0, m, d[0], ZERO)
    t0, c = mac(t1, m, d[1], c)
    t1, c = mac(t2, m, d[2], c)
    t2, c = mac(t3, m, d[3], c)
    return t0, t1, t2, t4 + c


@_jit
def mul(x, y, d):
    """Montgomery product x*y/R mod p (the product of the represented elements)."""
    t0, t1, t2, t3 = _cios_round(ZERO, ZERO, ZERO, ZERO, x, y[0], d)
    t0, t1, t2, t3 = _cios_round(t0, t1, t2, t3, x, y[1], d)
    t0, t1, t2, t3 = _cios_round(t0, t1, t2, t3, x, y[2], d)
    t0, t1, t2, t3 = _cios_round(t0, t1, t2, t3, x, y[3], d)
    return _reduce_once(t0, t1, t2, t3, d)


@_jit
def one(d):
    """R mod p, the Montgomery form of 1 (R^2 * 1 / R)."""
    return mul((d[5], d[6], d[7], d[8]), (ONE, ZERO, ZERO, ZERO), d)


@_jit
def to_mont(x, d):
    """Montgomery form of canonical limbs x (x < p)."""
    return mul(x, (d[5], d[6], d[7], d[8]), d)


@_jit
def from_mont(x, d):
    """Canonical limbs of the element held by x."""
    return mul(x, (ONE, ZERO, ZERO, ZERO), d)


@_jit
def pow_limbs(x, e0, e1, e2, e3, d):
    """x^e for a 256-bit exponent e given as limbs, by left-to-right square and multiply."""
    acc = one(d)
    e = (e0, e1, e2, e3)
    for limb in range(3, -1, -1):
        w = e[limb]
        for bit in range(63, -1, -1):
            acc = mul(acc, acc, d)
            if (w >> U64(bit)) & ONE:
                acc = mul(acc, x, d)
    return acc


@_jit
def inv(x, d):
    """x^(p-2) = x^-1 for x != 0 (Fermat); 0 maps to 0."""
    return pow_limbs(x, d[0] - U64(2), d[1], d[2], d[3], d)


# ---------------------------------------------------------------- vector kernels


@kernel()
def vadd(d, a, b, out):
    for i in prange(a.shape[0]):
        store(out, i, add(load(a, i), load(b, i), d))


@kernel()
def vsub(d, a, b, out):
    for i in prange(a.shape[0]):
        store(out, i, sub(load(a, i), load(b, i), d))


@kernel()
def vmul(d, a, b, out):
    for i in prange(a.shape[0]):
        store(out, i, mul(load(a, i), load(b, i), d))


@kernel()
def vneg(d, a, out):
    for i in prange(a.shape[0]):
        store(out, i, neg(load(a, i), d))


@kernel()
def vscale(d, a, s, out):
    """out = s * a for a scalar element s (a tuple)."""
    for i in prange(a.shape[0]):
        store(out, i, mul(load(a, i), s, d))


@kernel()
def vadd_scalar(d, a, s, out):
    """out = a + s for a scalar element s."""
    for i in prange(a.shape[0]):
        store(out, i, add(load(a, i), s, d))


@kernel(size=lambda d, s, x, y, out: x.shape[0])
def vaxpy(d, s, x, y, out):
    """out = s * x + y."""
    for i in prange(x.shape[0]):
        store(out, i, add(mul(load(x, i), s, d), load(y, i), d))


def _chunks(n):
    """Number of independent chunks for a parallel reduction over n items."""
    return max(1, min(n // 1024, 4 * nb.get_num_threads()))


@_jit
def _chunk_bounds(n, chunks, c):
    size = (n + chunks - 1) // chunks
    lo = c * size
    hi = min(n, lo + size)
    return lo, hi


@kernel()
def _vsum_parts(d, a, chunks):
    parts = np.zeros((chunks, 4), dtype=np.uint64)
    n = a.shape[0]
    for c in prange(chunks):
        lo, hi = _chunk_bounds(n, chunks, c)
        acc = (ZERO, ZERO, ZERO, ZERO)
        for i in range(lo, hi):
            acc = add(acc, load(a, i), d)
        store(parts, c, acc)
    return parts


@kernel()
def _vinner_parts(d, a, b, chunks):
    parts = np.zeros((chunks, 4), dtype=np.uint64)
    n = a.shape[0]
    for c in prange(chunks):
        lo, hi = _chunk_bounds(n, chunks, c)
        acc = (ZERO, ZERO, ZERO, ZERO)
        for i in range(lo, hi):
            acc = add(acc, mul(load(a, i), load(b, i), d), d)
        store(parts, c, acc)
    return parts


@_jit
def _sum_rows(d, parts):
    acc = (ZERO, ZERO, ZERO, ZERO)
    for c in range(parts.shape[0]):
        acc = add(acc, load(parts, c), d)
    return acc


def vsum(d, a):
    """Sum of all elements, as an element tuple."""
    return _sum_rows(d, _vsum_parts(d, a, _chunks(a.shape[0])))


def vinner(d, a, b):
    """Inner product sum_i a_i b_i, as an element tuple."""
    return _sum_rows(d, _vinner_parts(d, a, b, _chunks(a.shape[0])))


@kernel()
def _vbatch_inv(d, a, out, chunks):
    """Montgomery's trick per chunk: one Fermat inversion per chunk. Zeros map to zero."""
    n = a.shape[0]
    zeros = np.zeros(chunks, dtype=np.int64)
    for c in prange(chunks):
        lo, hi = _chunk_bounds(n, chunks, c)
        acc = one(d)
        for i in range(lo, hi):  # out[i] = product of the nonzero a[lo..i)
            store(out, i, acc)
            x = load(a, i)
            if is_zero(x):
                zeros[c] += 1
            else:
                acc = mul(acc, x, d)
        acc = inv(acc, d)
        for i in range(hi - 1, lo - 1, -1):
            x = load(a, i)
            if is_zero(x):
                store(out, i, (ZERO, ZERO, ZERO, ZERO))
            else:
                store(out, i, mul(acc, load(out, i), d))
                acc = mul(acc, x, d)
    return zeros.sum()


def vbatch_inv(d, a, out):
    """out_i = 1/a_i (0 for a_i = 0); returns how many a_i were zero."""
    return int(_vbatch_inv(d, a, out, _chunks(a.shape[0])))


@kernel()
def vto_mont(d, a, out):
    """Canonical limbs (each < p) to Montgomery form."""
    for i in prange(a.shape[0]):
        store(out, i, to_mont(load(a, i), d))


@kernel()
def vfrom_mont(d, a, out):
    """Montgomery form to canonical limbs."""
    for i in prange(a.shape[0]):
        store(out, i, from_mont(load(a, i), d))


@kernel()
def vfrom_signed(d, x, out):
    """Embed signed 64-bit integers as x mod p, in Montgomery form."""
    r2 = (d[5], d[6], d[7], d[8])
    for i in prange(x.shape[0]):
        v = x[i]
        if v >= 0:
            store(out, i, mul((U64(v), ZERO, ZERO, ZERO), r2, d))
        else:
            # -(v+1) avoids overflow at the minimum int64
            m = U64(-(v + 1)) + ONE
            store(out, i, neg(mul((m, ZERO, ZERO, ZERO), r2, d), d))


@kernel(size=lambda table, idx, out: idx.shape[0])
def vgather_rows(table, idx, out):
    """out_i = table[idx_i] (rows of 4 limbs): the small-range path of embedding integers."""
    for i in prange(idx.shape[0]):
        j = idx[i]
        out[i, 0] = table[j, 0]
        out[i, 1] = table[j, 1]
        out[i, 2] = table[j, 2]
        out[i, 3] = table[j, 3]


@kernel()
def vbelow_modulus(d, a, out):
    """out_i = 1 if the canonical limbs a_i are < p (used to validate and to rejection-sample)."""
    for i in prange(a.shape[0]):
        _, b = sbb(a[i, 0], d[0], ZERO)
        _, b = sbb(a[i, 1], d[1], b)
        _, b = sbb(a[i, 2], d[2], b)
        _, b = sbb(a[i, 3], d[3], b)
        out[i] = b


# ---------------------------------------------------------------- descriptors


def descriptor(p: int) -> tuple:
    """The kernel descriptor (p limbs, -p^-1 mod 2^64, R^2 mod p limbs) of an odd prime p.

    Raises ValueError if p does not meet the kernels' preconditions (odd, top limb below 2^62).
    """
    if p % 2 == 0 or not (2**192 < p < 2**254):
        raise ValueError("the kernels need an odd modulus with 2^192 < p < 2^254")
    limbs = [(p >> (64 * k)) & (2**64 - 1) for k in range(4)]
    inv = (-pow(p, -1, 2**64)) % 2**64
    r2 = pow(2, 512, p)
    r2_limbs = [(r2 >> (64 * k)) & (2**64 - 1) for k in range(4)]
    return tuple(U64(v) for v in limbs + [inv] + r2_limbs)
