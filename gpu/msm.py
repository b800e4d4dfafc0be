"""Multi-scalar multiplication on BN254 G1: Pippenger with signed digits and batch-affine buckets.

Computes, for each of m rows, ``sum_i k[row, i] * P_i`` over one shared base vector P (affine
``(n, 8)`` rows, see :mod:`gpu.curve`). Hyrax commits one such MSM per matrix row, so many
MSMs of one size go through one call.

Algorithm
---------
* **Signed digits.** A scalar s (made at most (r-1)/2 by replacing s with r - s and negating
  the point) is split into W windows of c bits with digits in [-2^(c-1), 2^(c-1)): with
  K = sum_w 2^(c-1) 2^(cw), digit w is ``((s + K) >> cw) mod 2^c - 2^(c-1)``. So 2^(c-1)
  buckets per window, and a negative digit adds -P (a free negation of y).
* **Batch-affine bucket accumulation.** Per (row, window) task the points are counting-sorted
  by bucket; each bucket is then reduced by pairwise affine additions in rounds (a tree), all
  pairs of a round sharing one field inversion (Montgomery's trick): about 6 Fq
  multiplications per addition instead of 11 for a mixed Jacobian addition. Doublings and
  P + (-P) inside a bucket are handled (repeated points are fine).
* **Bucket reduction** by the running-sum trick in Jacobian coordinates, then the windows are
  combined by Horner's rule (c doublings per window).
* **Parallelism.** The m * W independent (row, window) tasks are spread over numba threads
  (``prange`` over chunks; each chunk owns its scratch buffers).
* **Window size** from a cost model of these steps, by n and the scalar bit length; small
  signed integer scalars (quantized weights) need only a few windows.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np
from numba import prange
from py_ecc.optimized_bn128 import curve_order

from gpu import field as F
from gpu.curve import (
    DQ, E0, aff_load, aff_store, eq, jac_add, jac_add_affine, jac_double, jac_identity,
    jac_load, jac_store,
)
from gpu.field import ONE, U64, ZERO, add, is_zero, load, mul, neg, store, sub
from gpu.wide import adc, sbb

_jit = nb.njit(cache=True, nogil=True)
_pjit = nb.njit(cache=True, nogil=True, parallel=True)

DR = F.descriptor(curve_order)
"""Kernel descriptor of the scalar field Fr."""
_HALF_R = (curve_order - 1) // 2
_HALF_R_LIMBS = tuple(U64((_HALF_R >> (64 * k)) & 0xFFFFFFFFFFFFFFFF) for k in range(4))
_R_LIMBS = tuple(U64((curve_order >> (64 * k)) & 0xFFFFFFFFFFFFFFFF) for k in range(4))


# ---------------------------------------------------------------- scalar recoding


def _offset_limbs(c: int, windows: int) -> np.ndarray:
    k = sum(1 << (c - 1 + c * w) for w in range(windows))
    return np.array([(k >> (64 * j)) & 0xFFFFFFFFFFFFFFFF for j in range(5)], dtype=np.uint64)


@_jit
def _gt(a, b):
    """a > b for 4-limb tuples."""
    for k in range(3, -1, -1):
        if a[k] != b[k]:
            return a[k] > b[k]
    return False


@_jit
def _sub_limbs(a, b):
    t0, br = sbb(a[0], b[0], ZERO)
    t1, br = sbb(a[1], b[1], br)
    t2, br = sbb(a[2], b[2], br)
    t3, br = sbb(a[3], b[3], br)
    return (t0, t1, t2, t3)


@_jit
def _store_offset(t, negs, i, s, sign, koff):
    c0, cy = adc(s[0], koff[0], ZERO)
    c1, cy = adc(s[1], koff[1], cy)
    c2, cy = adc(s[2], koff[2], cy)
    c3, cy = adc(s[3], koff[3], cy)
    c4, cy = adc(ZERO, koff[4], cy)
    t[i, 0] = c0
    t[i, 1] = c1
    t[i, 2] = c2
    t[i, 3] = c3
    t[i, 4] = c4
    negs[i] = sign


@_pjit
def _prep_mont(a, t, negs, koff):
    """Fr Montgomery rows -> offset scalars (s > (r-1)/2 becomes r - s with the point negated)."""
    d = DR
    hr = _HALF_R_LIMBS
    rl = _R_LIMBS
    for i in prange(a.shape[0]):
        s = F.from_mont(load(a, i), d)
        sign = np.uint8(0)
        if _gt(s, hr):
            s = _sub_limbs(rl, s)
            sign = np.uint8(1)
        _store_offset(t, negs, i, s, sign, koff)


@_pjit
def _prep_canonical(a, t, negs, koff):
    """Canonical Fr limbs (< r) -> offset scalars."""
    hr = _HALF_R_LIMBS
    rl = _R_LIMBS
    for i in prange(a.shape[0]):
        s = load(a, i)
        sign = np.uint8(0)
        if _gt(s, hr):
            s = _sub_limbs(rl, s)
            sign = np.uint8(1)
        _store_offset(t, negs, i, s, sign, koff)


@_pjit
def _prep_signed(x, t, negs, koff):
    """Signed 64-bit integers -> offset scalars (|x| with the sign moved to the point)."""
    for i in prange(x.shape[0]):
        v = x[i]
        sign = np.uint8(0)
        if v < 0:
            m = U64(-(v + 1)) + ONE
            sign = np.uint8(1)
        else:
            m = U64(v)
        _store_offset(t, negs, i, (m, ZERO, ZERO, ZERO), sign, koff)


@_jit
def _digit(t, i, w, c):
    bit = w * c
    limb = bit >> 6
    off = bit & 63
    v = t[i, limb] >> U64(off)
    if off + c > 64:
        v |= t[i, limb + 1] << U64(64 - off)
    v &= (ONE << U64(c)) - ONE
    return np.int64(v) - (np.int64(1) << (c - 1))


# ---------------------------------------------------------------- one (row, window) task

_ADD, _DBL, _TAKE2, _TAKE1, _INF = 0, 1, 2, 3, 4


@_jit
def _window_sum(points, t, negs, base, w, c, buf, dig, cnt, start, lens, active,
                pden, pinv, psrc, pcase):
    """sum_b (b+1) * (sum of the points whose digit in window w is +-(b+1)), Jacobian."""
    d = DQ
    n = points.shape[0]
    nb_ = 1 << (c - 1)
    one = F.one(d)
    for b in range(nb_):
        cnt[b] = 0
    for i in range(n):
        dg = _digit(t, base + i, w, c)
        dig[i] = dg
        if dg != 0:
            cnt[abs(dg) - 1] += 1
    s = 0
    na = 0
    for b in range(nb_):
        start[b] = s
        s += cnt[b]
        lens[b] = 0
        if cnt[b] >= 2:
            active[na] = b
            na += 1
    for i in range(n):
        dg = dig[i]
        if dg == 0:
            continue
        b = abs(dg) - 1
        pos = start[b] + lens[b]
        lens[b] += 1
        x, y = aff_load(points, i)
        if (dg < 0) != (negs[base + i] != 0) and not (is_zero(x) and is_zero(y)):
            y = neg(y, d)
        aff_store(buf, pos, x, y)
    # Tree reduction of every bucket, one shared inversion per round. In round r the live
    # elements of bucket b sit at start[b] + j * 2^r; a pair's sum overwrites its first
    # element, which is where it lives in round r + 1, so nothing ever moves.
    stride = 1
    while na > 0:
        k = 0
        acc = one
        for ai in range(na):
            b = active[ai]
            s0 = start[b]
            for j in range(lens[b] // 2):
                a = s0 + 2 * j * stride
                x1, y1 = aff_load(buf, a)
                x2, y2 = aff_load(buf, a + stride)
                if is_zero(x1) and is_zero(y1):
                    case = _TAKE2
                    den = one
                elif is_zero(x2) and is_zero(y2):
                    case = _TAKE1
                    den = one
                elif eq(x1, x2):
                    if eq(y1, y2):
                        case = _DBL
                        den = add(y1, y1, d)
                    else:
                        case = _INF
                        den = one
                else:
                    case = _ADD
                    den = sub(x2, x1, d)
                psrc[k] = a
                pcase[k] = case
                store(pinv, k, acc)
                store(pden, k, den)
                acc = mul(acc, den, d)
                k += 1
        acc = F.inv(acc, d)
        for kk in range(k - 1, -1, -1):
            inv_k = mul(acc, load(pinv, kk), d)
            acc = mul(acc, load(pden, kk), d)
            a = psrc[kk]
            case = pcase[kk]
            if case == _ADD or case == _DBL:
                x1, y1 = aff_load(buf, a)
                x2, y2 = aff_load(buf, a + stride)
                if case == _ADD:
                    num = sub(y2, y1, d)
                else:
                    xx = mul(x1, x1, d)
                    num = add(add(xx, xx, d), xx, d)
                lam = mul(num, inv_k, d)
                x3 = sub(sub(mul(lam, lam, d), x1, d), x2, d)
                y3 = sub(mul(lam, sub(x1, x3, d), d), y1, d)
                aff_store(buf, a, x3, y3)
            elif case == _TAKE2:
                x2, y2 = aff_load(buf, a + stride)
                aff_store(buf, a, x2, y2)
            elif case == _INF:
                aff_store(buf, a, E0, E0)
        nn = 0
        for ai in range(na):
            b = active[ai]
            L = (lens[b] + 1) // 2
            lens[b] = L
            if L >= 2:
                active[nn] = b
                nn += 1
        na = nn
        stride *= 2
    running = jac_identity()
    total = jac_identity()
    for b in range(nb_ - 1, -1, -1):
        if lens[b] == 1:
            x, y = aff_load(buf, start[b])
            running = jac_add_affine(running, x, y, d)
        total = jac_add(total, running, d)
    return total


@_pjit
def _msm_tasks(points, t, negs, m, c, windows, chunks, out):
    """out[row * W + w] = window sum of task (row, w) for every row < m and window w < W."""
    n = points.shape[0]
    tasks = m * windows
    nb_ = 1 << (c - 1)
    half = n // 2 + 1
    for ch in prange(chunks):
        buf = np.empty((n, 8), dtype=np.uint64)
        dig = np.empty(n, dtype=np.int64)
        cnt = np.empty(nb_, dtype=np.int64)
        start = np.empty(nb_, dtype=np.int64)
        lens = np.empty(nb_, dtype=np.int64)
        active = np.empty(nb_, dtype=np.int64)
        pden = np.empty((half, 4), dtype=np.uint64)
        pinv = np.empty((half, 4), dtype=np.uint64)
        psrc = np.empty(half, dtype=np.int64)
        pcase = np.empty(half, dtype=np.uint8)
        for task in range(ch, tasks, chunks):
            row = task // windows
            w = task % windows
            total = _window_sum(points, t, negs, row * n, w, c, buf, dig, cnt, start, lens,
                                active, pden, pinv, psrc, pcase)
            jac_store(out, task, total)


@_pjit
def _combine_windows(parts, m, c, windows, out):
    """out[row] = sum_w 2^(cw) parts[row * W + w] (Horner)."""
    for row in prange(m):
        acc = jac_load(parts, row * windows + windows - 1)
        for w in range(windows - 2, -1, -1):
            for _ in range(c):
                acc = jac_double(acc, DQ)
            acc = jac_add(acc, jac_load(parts, row * windows + w), DQ)
        jac_store(out, row, acc)


# ---------------------------------------------------------------- Python entry points


def window_bits(n: int, bits: int) -> int:
    """Window size c minimising a cost model of the kernels for n points and bits-bit scalars.

    Per window: ~7 multiplications per point (sort + batch-affine addition), ~28 per bucket
    (running sum), plus an inversion (~400) per tree round; W = ceil((bits + 2) / c) windows.
    """
    best, best_cost = 1, math.inf
    for c in range(2, 17):
        windows = -(-(bits + 2) // c)
        nb_ = 1 << (c - 1)
        rounds = max(1, math.ceil(math.log2(max(2.0, 2 * n / nb_))))
        cost = windows * (7.0 * n + 28.0 * nb_ + 400.0 * rounds + 200.0 * c)
        if cost < best_cost:
            best, best_cost = c, cost
    return best


def _run(points: np.ndarray, t: np.ndarray, negs: np.ndarray, m: int, c: int,
         windows: int) -> np.ndarray:
    tasks = m * windows
    chunks = max(1, min(tasks, 4 * nb.get_num_threads())) if tasks > 1 else 1
    parts = np.empty((tasks, 12), dtype=np.uint64)
    _msm_tasks(points, t, negs, m, c, windows, chunks, parts)
    out = np.empty((m, 12), dtype=np.uint64)
    _combine_windows(parts, m, c, windows, out)
    return out


def _check_points(points: np.ndarray) -> np.ndarray:
    points = np.ascontiguousarray(points, dtype=np.uint64)
    if points.ndim != 2 or points.shape[1] != 8:
        raise ValueError(f"points must be an (n, 8) affine array, got {points.shape}")
    return points


def _msm_field(points: np.ndarray, scalars: np.ndarray, c: int | None, prep) -> np.ndarray:
    """m MSMs of full-width Fr scalars; ``prep`` turns (k, 4) scalars into signed digits."""
    points = _check_points(points)
    n = points.shape[0]
    if n == 0:
        return _identities(1)
    s = np.ascontiguousarray(scalars, dtype=np.uint64).reshape(-1, n, 4)
    m = s.shape[0]
    if m == 0:
        return _identities(0)
    c = c or window_bits(n, 253)
    windows = -(-255 // c)
    t = np.empty((m * n, 5), dtype=np.uint64)
    negs = np.empty(m * n, dtype=np.uint8)
    prep(s.reshape(-1, 4), t, negs, _offset_limbs(c, windows))
    return _run(points, t, negs, m, c, windows)


def msm_mont(points: np.ndarray, scalars: np.ndarray, c: int | None = None) -> np.ndarray:
    """Jacobian (m, 12) results of m MSMs with Fr scalars in Montgomery form.

    ``scalars`` is (n, 4) (one MSM) or (m, n, 4) (m MSMs over the same n points).
    """
    return _msm_field(points, scalars, c, _prep_mont)


def msm_canonical(points: np.ndarray, scalars: np.ndarray, c: int | None = None) -> np.ndarray:
    """Like :func:`msm_mont` for canonical little-endian limbs (each < r)."""
    return _msm_field(points, scalars, c, _prep_canonical)


def msm_signed(points: np.ndarray, scalars: np.ndarray, c: int | None = None) -> np.ndarray:
    """Jacobian (m, 12) results for signed 64-bit integer scalars, (n,) or (m, n).

    The fast path for quantized tensors: the number of windows follows the largest |scalar|.
    """
    points = _check_points(points)
    n = points.shape[0]
    if n == 0:
        return _identities(1)
    s = np.ascontiguousarray(scalars, dtype=np.int64).reshape(-1, n)
    m = s.shape[0]
    if m == 0:
        return _identities(0)
    mx = int(np.abs(s.astype(np.float64)).max()) if s.size else 0
    bits = max(1, (mx + 1).bit_length())
    c = c or window_bits(n, bits)
    windows = max(1, -(-(bits + 2) // c))
    t = np.empty((m * n, 5), dtype=np.uint64)
    negs = np.empty(m * n, dtype=np.uint8)
    _prep_signed(s.reshape(-1), t, negs, _offset_limbs(c, windows))
    return _run(points, t, negs, m, c, windows)


def _identities(m: int) -> np.ndarray:
    """m Jacobian identities (1, 1, 0) in Montgomery form."""
    q = int(DQ[0]) | int(DQ[1]) << 64 | int(DQ[2]) << 128 | int(DQ[3]) << 192
    r = pow(2, 256, q)
    one = [(r >> (64 * k)) & 0xFFFFFFFFFFFFFFFF for k in range(4)]
    out = np.zeros((m, 12), dtype=np.uint64)
    out[:, 0:4] = np.array(one, dtype=np.uint64)
    out[:, 4:8] = np.array(one, dtype=np.uint64)
    return out
