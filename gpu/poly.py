"""Multilinear-polynomial kernels: eq tables, folding, sumcheck round sums, matrix-vector folds.

Bit order (little-endian, as everywhere in the project): entry i of a table of 2^m values is the
polynomial at (b_0, ..., b_{m-1}) with i = sum_k b_k 2^k. Folding binds the lowest variable x_0
(pairs (2j, 2j+1)), so a sumcheck's challenges arrive in variable order.

Kernels only: no transcript, no protocol. Field elements are (n, 4) Montgomery arrays and ``d``
is a field descriptor (see :mod:`gpu.field`).
"""

from __future__ import annotations

import numba as nb
import numpy as np
from numba import prange

from gpu.field import (U64, ZERO, _chunk_bounds, _cios_round, _reduce_once, add, load, mul, one,
                       store, sub)
from gpu.jit import jit as _jit
from gpu.jit import kernel
from gpu.wide import adc, mac, sbb


@_jit
def _eq_build(d, point, lo, hi, out):
    """out[i] = eq(point[lo:hi], bits(i)) for i < 2^(hi - lo), serially (doubling)."""
    store(out, 0, one(d))
    size = 1
    for j in range(lo, hi):
        r = load(point, j)
        for i in range(size):
            x = load(out, i)
            h = mul(x, r, d)
            store(out, i + size, h)
            store(out, i, sub(x, h, d))
        size *= 2


@_jit
def _eq_halves(d, point):
    """eq tables of the low half (a = k // 2 variables) and of the high half of a point."""
    k = point.shape[0]
    a = k // 2
    lo = np.empty((1 << a, 4), dtype=np.uint64)
    hi = np.empty((1 << (k - a), 4), dtype=np.uint64)
    _eq_build(d, point, 0, a, lo)
    _eq_build(d, point, a, k, hi)
    return lo, hi, a


@kernel(size=lambda d, point, out: out.shape[0])
def eq_table(d, point, out):
    """out[i] = eq(point, bits(i)) = prod_k (b_k r_k + (1 - b_k)(1 - r_k)); len(out) = 2^k.

    Built as the outer product of the tables of the low and the high half of the variables
    (2 sqrt(n) work serially, then one parallel pass of n multiplications).
    """
    lo, hi, a = _eq_halves(d, point)
    mask = (1 << a) - 1
    for i in prange(out.shape[0]):
        store(out, i, mul(load(lo, i & mask), load(hi, i >> a), d))


@kernel(size=lambda d, v, point: v.shape[0])
def evaluate(d, v, point):
    """v~(point) = sum_i v[i] eq(point, bits(i)) = sum_h eq_hi[h] sum_l v[h 2^a + l] eq_lo[l]."""
    lo, hi, a = _eq_halves(d, point)
    parts = np.empty((hi.shape[0], 4), dtype=np.uint64)
    for h in prange(hi.shape[0]):
        acc = (ZERO, ZERO, ZERO, ZERO)
        base = h << a
        for l in range(1 << a):
            acc = add(acc, mul(load(v, base + l), load(lo, l), d), d)
        store(parts, h, mul(acc, load(hi, h), d))
    total = (ZERO, ZERO, ZERO, ZERO)
    for h in range(hi.shape[0]):
        total = add(total, load(parts, h), d)
    return total


@kernel(size=lambda d, a, out: out.shape[0])
def pair_sums(d, a, out):
    """out[i] = a[2i] + a[2i+1]: sums out the lowest variable of a table."""
    for i in prange(out.shape[0]):
        store(out, i, add(load(a, 2 * i), load(a, 2 * i + 1), d))


@kernel(size=lambda d, f, r, out: f.shape[0] * f.shape[1])
def fold(d, f, r, out):
    """Bind x_0 = r: out[j] = f[2j] + r (f[2j+1] - f[2j]), for every row of f (k, 2n, 4)."""
    for c in prange(f.shape[0] * out.shape[1]):
        k = c // out.shape[1]
        j = c - k * out.shape[1]
        a = (f[k, 2 * j, 0], f[k, 2 * j, 1], f[k, 2 * j, 2], f[k, 2 * j, 3])
        b = (f[k, 2 * j + 1, 0], f[k, 2 * j + 1, 1], f[k, 2 * j + 1, 2], f[k, 2 * j + 1, 3])
        v = add(a, mul(r, sub(b, a, d), d), d)
        out[k, j, 0] = v[0]
        out[k, j, 1] = v[1]
        out[k, j, 2] = v[2]
        out[k, j, 3] = v[3]


@_jit
def _is_unit(d, terms, coeffs):
    if terms.shape[0] != 1:
        return False
    u = one(d)
    return (coeffs[0, 0] == u[0] and coeffs[0, 1] == u[1] and coeffs[0, 2] == u[2]
            and coeffs[0, 3] == u[3])


@_jit
def _ones(d, coeffs):
    """Which coefficients are 1 (their multiplication is skipped)."""
    u = one(d)
    out = np.zeros(coeffs.shape[0], dtype=np.bool_)
    for s in range(coeffs.shape[0]):
        out[s] = (coeffs[s, 0] == u[0] and coeffs[s, 1] == u[1] and coeffs[s, 2] == u[2]
                  and coeffs[s, 3] == u[3])
    return out


@_jit
def _accumulate_pair(d, f, j, deg, terms, coeffs, unit, ones, w, skip1, cur, diff, acc):
    """acc[t] += w[j] sum_s coeffs[s] prod_{k in terms[s]} (f_k[2j] + t (f_k[2j+1] - f_k[2j])).

    terms is (n_terms, width) of factor indices, padded with -1; t runs over 0..deg. ``unit``
    says there is one term with coefficient 1 (its sum is the product itself); ``ones`` marks
    the coefficients equal to 1, whose multiplications are skipped. An empty w
    means weight 1. ``skip1``: t = 1 is left out (acc[1] untouched; the caller derives it
    from the round's claim).
    """
    nf = f.shape[0]
    nz = ZERO
    for k in range(nf):
        a = (f[k, 2 * j, 0], f[k, 2 * j, 1], f[k, 2 * j, 2], f[k, 2 * j, 3])
        b = (f[k, 2 * j + 1, 0], f[k, 2 * j + 1, 1], f[k, 2 * j + 1, 2], f[k, 2 * j + 1, 3])
        nz |= a[0] | a[1] | a[2] | a[3] | b[0] | b[1] | b[2] | b[3]
        store(cur, k, a)
        store(diff, k, sub(b, a, d))
    if nz == ZERO:
        return  # every factor 0 on the pair (a tensor's padding): every term is 0 at every t
    for t in range(deg + 1):
        if t > 0:
            for k in range(nf):
                store(cur, k, add(load(cur, k), load(diff, k), d))
        if skip1 and t == 1:
            continue
        total = (ZERO, ZERO, ZERO, ZERO)
        for s in range(terms.shape[0]):
            prod = load(cur, terms[s, 0])
            for col in range(1, terms.shape[1]):
                k = terms[s, col]
                if k < 0:
                    break
                prod = mul(prod, load(cur, k), d)
            if unit:
                total = prod
            elif ones[s]:
                total = add(total, prod, d)
            else:
                total = add(total, mul(prod, load(coeffs, s), d), d)
        if w.shape[0] > 0:
            total = mul(total, load(w, j), d)
        store(acc, t, add(load(acc, t), total, d))


@kernel(size=lambda d, f, *rest: f.shape[0] * f.shape[1])
def _round_parts(d, f, deg, terms, coeffs, w, skip1, chunks):
    half = f.shape[1] // 2
    parts = np.zeros((chunks, deg + 1, 4), dtype=np.uint64)
    unit = _is_unit(d, terms, coeffs)
    ones = _ones(d, coeffs)
    for c in prange(chunks):
        lo, hi = _chunk_bounds(half, chunks, c)
        cur = np.empty((f.shape[0], 4), dtype=np.uint64)
        diff = np.empty((f.shape[0], 4), dtype=np.uint64)
        acc = np.zeros((deg + 1, 4), dtype=np.uint64)
        for j in range(lo, hi):
            _accumulate_pair(d, f, j, deg, terms, coeffs, unit, ones, w, skip1, cur, diff, acc)
        parts[c] = acc
    return parts


@kernel(size=lambda d, f, *rest: f.shape[0] * f.shape[1])
def _fold_round_parts(d, f, r, out, deg, terms, coeffs, w, skip1, chunks):
    """Fold f at x_0 = r into out, and return the next round's partial sums over out."""
    half = out.shape[1] // 2
    nf = f.shape[0]
    parts = np.zeros((chunks, deg + 1, 4), dtype=np.uint64)
    unit = _is_unit(d, terms, coeffs)
    ones = _ones(d, coeffs)
    for c in prange(chunks):
        lo, hi = _chunk_bounds(half, chunks, c)
        cur = np.empty((nf, 4), dtype=np.uint64)
        diff = np.empty((nf, 4), dtype=np.uint64)
        acc = np.zeros((deg + 1, 4), dtype=np.uint64)
        for j in range(lo, hi):
            for q in range(2):
                m = 2 * j + q
                for k in range(nf):
                    a = (f[k, 2 * m, 0], f[k, 2 * m, 1], f[k, 2 * m, 2], f[k, 2 * m, 3])
                    b = (f[k, 2 * m + 1, 0], f[k, 2 * m + 1, 1], f[k, 2 * m + 1, 2],
                         f[k, 2 * m + 1, 3])
                    if (a[0] | a[1] | a[2] | a[3] | b[0] | b[1] | b[2] | b[3]) == ZERO:
                        v = a  # both 0: the fold is 0 (padding), no product
                    else:
                        v = add(a, mul(r, sub(b, a, d), d), d)
                    out[k, m, 0] = v[0]
                    out[k, m, 1] = v[1]
                    out[k, m, 2] = v[2]
                    out[k, m, 3] = v[3]
            _accumulate_pair(d, out, j, deg, terms, coeffs, unit, ones, w, skip1, cur, diff,
                             acc)
        parts[c] = acc
    return parts


@_jit
def _ld(f, k, i):
    return (f[k, i, 0], f[k, i, 1], f[k, i, 2], f[k, i, 3])


@_jit
def _frac_h(d, p0, p1, q0, q1, lam):
    """p0 q1 + p1 q0 + lam q0 q1 = p0 q1 + q0 (p1 + lam q1): three products."""
    return add(mul(p0, q1, d), mul(q0, add(p1, mul(lam, q1, d), d), d), d)


@_jit
def _frac_pair(d, f, j, lam, w, skip1, acc):
    """acc[t] += w[j] h(t), h the fraction layer's p0 q1 + p1 q0 + lam q0 q1 on the pair j
    of f = [p0, p1, q0, q1] (t = 0, 1, 2; t = 1 left out with skip1)."""
    a0, a1, a2, a3 = _ld(f, 0, 2 * j), _ld(f, 1, 2 * j), _ld(f, 2, 2 * j), _ld(f, 3, 2 * j)
    b0, b1 = _ld(f, 0, 2 * j + 1), _ld(f, 1, 2 * j + 1)
    b2, b3 = _ld(f, 2, 2 * j + 1), _ld(f, 3, 2 * j + 1)
    has_w = w.shape[0] > 0
    h = _frac_h(d, a0, a1, a2, a3, lam)
    if has_w:
        h = mul(h, load(w, j), d)
    store(acc, 0, add(load(acc, 0), h, d))
    if not skip1:
        h = _frac_h(d, b0, b1, b2, b3, lam)
        if has_w:
            h = mul(h, load(w, j), d)
        store(acc, 1, add(load(acc, 1), h, d))
    h = _frac_h(d, add(b0, sub(b0, a0, d), d), add(b1, sub(b1, a1, d), d),
                add(b2, sub(b2, a2, d), d), add(b3, sub(b3, a3, d), d), lam)
    if has_w:
        h = mul(h, load(w, j), d)
    store(acc, 2, add(load(acc, 2), h, d))


@kernel(size=lambda d, f, *rest: f.shape[0] * f.shape[1])
def _frac_round_parts(d, f, lam, w, skip1, chunks):
    half = f.shape[1] // 2
    parts = np.zeros((chunks, 3, 4), dtype=np.uint64)
    for c in prange(chunks):
        lo, hi = _chunk_bounds(half, chunks, c)
        acc = np.zeros((3, 4), dtype=np.uint64)
        for j in range(lo, hi):
            _frac_pair(d, f, j, lam, w, skip1, acc)
        parts[c] = acc
    return parts


@kernel(size=lambda d, f, *rest: f.shape[0] * f.shape[1])
def _frac_fold_round_parts(d, f, r, out, lam, w, skip1, chunks):
    """:func:`_frac_round_parts` over f folded at x_0 = r (written into out)."""
    half = out.shape[1] // 2
    parts = np.zeros((chunks, 3, 4), dtype=np.uint64)
    for c in prange(chunks):
        lo, hi = _chunk_bounds(half, chunks, c)
        acc = np.zeros((3, 4), dtype=np.uint64)
        for j in range(lo, hi):
            for q in range(2):
                m = 2 * j + q
                for k in range(4):
                    a = _ld(f, k, 2 * m)
                    v = add(a, mul(r, sub(_ld(f, k, 2 * m + 1), a, d), d), d)
                    out[k, m, 0] = v[0]
                    out[k, m, 1] = v[1]
                    out[k, m, 2] = v[2]
                    out[k, m, 3] = v[3]
            _frac_pair(d, out, j, lam, w, skip1, acc)
        parts[c] = acc
    return parts


_FRACTION_TERMS = np.array([[0, 3], [1, 2], [2, 3]], dtype=np.int64)


def _fraction_lambda(d, f: np.ndarray, deg: int, terms: np.ndarray, coeffs: np.ndarray):
    """lam when the terms are a fraction layer's p0 q1 + p1 q0 + lam q0 q1 over 4 factors
    (then a kernel with three products a point instead of four runs), else None."""
    if (f.shape[0] == 4 and deg == 2 and terms.shape == (3, 2)
            and np.array_equal(terms, _FRACTION_TERMS) and _ones(d, coeffs)[:2].all()):
        return (coeffs[2, 0], coeffs[2, 1], coeffs[2, 2], coeffs[2, 3])
    return None


@_jit
def _sum_parts(d, parts):
    deg1 = parts.shape[1]
    res = np.zeros((deg1, 4), dtype=np.uint64)
    for c in range(parts.shape[0]):
        for t in range(deg1):
            store(res, t, add(load(res, t), load(parts[c], t), d))
    return res


def _chunks(pairs: int) -> int:
    return max(1, min(pairs // 256, 8 * nb.get_num_threads()))


def round_sums(d, f: np.ndarray, deg: int, terms: np.ndarray, coeffs: np.ndarray,
               w: np.ndarray, skip1: bool = False) -> np.ndarray:
    """Evaluations at t = 0..deg of
    sum_j w[j] sum_s coeffs[s] prod_{k in terms[s]} f_k(t, bits(j)), x_0 being the free variable.

    f is (k, 2n, 4); terms (n_terms, width) int64 padded with -1; coeffs (n_terms, 4); w is
    (n, 4), or (0, 4) for weights 1. Returns a (deg + 1, 4) array. ``skip1``: the evaluation
    at t = 1 is not computed (left 0): a sumcheck prover derives it from the round's claim,
    a third fewer products at degree 2.
    """
    lam = _fraction_lambda(d, f, deg, terms, coeffs)
    if lam is not None:
        return _sum_parts(d, _frac_round_parts(d, f, lam, w, skip1, _chunks(f.shape[1] // 2)))
    return _sum_parts(d, _round_parts(d, f, deg, terms, coeffs, w, skip1,
                                      _chunks(f.shape[1] // 2)))


def fold_and_round_sums(d, f: np.ndarray, r: tuple, deg: int, terms: np.ndarray,
                        coeffs: np.ndarray, w: np.ndarray, skip1: bool = False
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Fold every row of f at x_0 = r and compute the next round's sums (weights w, of the
    folded half's pairs) in the same pass. Returns (folded (k, n, 4), sums (deg + 1, 4));
    needs n >= 2.
    """
    out = np.empty((f.shape[0], f.shape[1] // 2, 4), dtype=np.uint64)
    lam = _fraction_lambda(d, f, deg, terms, coeffs)
    if lam is not None:
        parts = _frac_fold_round_parts(d, f, r, out, lam, w, skip1, _chunks(out.shape[1] // 2))
        return out, _sum_parts(d, parts)
    parts = _fold_round_parts(d, f, r, out, deg, terms, coeffs, w, skip1,
                              _chunks(out.shape[1] // 2))
    return out, _sum_parts(d, parts)


@kernel(size=lambda d, a, *rest: a.shape[0])
def rows_fold(d, a, rows, cols, w, out):
    """out[x] = sum_i w[i] a[i*cols + x]: a (rows x cols, row-major) folded by row weights w."""
    for x in prange(cols):
        acc = (ZERO, ZERO, ZERO, ZERO)
        for i in range(rows):
            wi = load(w, i)
            if (wi[0] | wi[1] | wi[2] | wi[3]) != ZERO:
                acc = add(acc, mul(wi, load(a, i * cols + x), d), d)
        store(out, x, acc)


SMALL_BLOCK = 64
"""Columns one task of :func:`fold_small` accumulates at once (their sums stay in L1)."""


@_jit
def _mac_small(acc, j, o, w, m):
    """acc[j, o:o+6] += w * m: a field element's limbs (an integer below 2^256) times a
    64-bit integer, unreduced (six limbs hold 2^67 such products)."""
    t0, c = mac(acc[j, o], w[0], m, ZERO)
    t1, c = mac(acc[j, o + 1], w[1], m, c)
    t2, c = mac(acc[j, o + 2], w[2], m, c)
    t3, c = mac(acc[j, o + 3], w[3], m, c)
    t4, c = adc(acc[j, o + 4], c, ZERO)
    acc[j, o] = t0
    acc[j, o + 1] = t1
    acc[j, o + 2] = t2
    acc[j, o + 3] = t3
    acc[j, o + 4] = t4
    acc[j, o + 5] = acc[j, o + 5] + c


@_jit
def _reduce_wide(acc, j, o, d):
    """acc[j, o:o+6] (an integer below 2^384) mod p, as four limbs: the low 256 bits brought
    below p by subtractions, plus the high 128 bits times 2^256 mod p (a Montgomery product
    with R^2)."""
    x0, x1, x2, x3 = acc[j, o], acc[j, o + 1], acc[j, o + 2], acc[j, o + 3]
    for _ in range(6):  # 2^256 < 6 p
        y0, b = sbb(x0, d[0], ZERO)
        y1, b = sbb(x1, d[1], b)
        y2, b = sbb(x2, d[2], b)
        y3, b = sbb(x3, d[3], b)
        if b:
            break
        x0, x1, x2, x3 = y0, y1, y2, y3
    hi = mul((acc[j, o + 4], acc[j, o + 5], ZERO, ZERO), (d[5], d[6], d[7], d[8]), d)
    return add((x0, x1, x2, x3), hi, d)


@kernel(size=lambda d, a, *rest: a.shape[0])
def fold_small(d, a, pre, n, post, w, out):
    """out[p, x] = sum_i w[i] a[p, i, x] for a signed int64 array a (pre x n x post, C order)
    and field weights w: the fold of one axis of an integer tensor without embedding it in the
    field (four 64-bit multiplies per entry instead of two Montgomery products; the sums are
    reduced once per output). Since w is in Montgomery form and a plain integer, the reduced
    sum is the Montgomery form of the fold."""
    blk = SMALL_BLOCK
    nb_ = (post + blk - 1) // blk
    for task in prange(pre * nb_):
        p = task // nb_
        x0 = (task % nb_) * blk
        x1 = min(post, x0 + blk)
        acc = np.zeros((blk, 12), dtype=np.uint64)
        for i in range(n):
            wi = load(w, i)
            if (wi[0] | wi[1] | wi[2] | wi[3]) == ZERO:
                continue  # a zero weight (rows of other members of a stack): nothing to add
            base = (p * n + i) * post
            for x in range(x0, x1):
                v = a[base + x]
                if v > 0:
                    _mac_small(acc, x - x0, 0, wi, U64(v))
                elif v < 0:
                    _mac_small(acc, x - x0, 6, wi, U64(-(v + 1)) + U64(1))
        for x in range(x0, x1):
            pos = _reduce_wide(acc, x - x0, 0, d)
            neg = _reduce_wide(acc, x - x0, 6, d)
            store(out, p * post + x, sub(pos, neg, d))


@kernel(size=lambda d, a, *rest: a.shape[0])
def cols_fold(d, a, rows, cols, w, out):
    """out[x] = sum_j a[x*cols + j] w[j]: a (rows x cols, row-major) folded by column weights."""
    for x in prange(rows):
        acc = (ZERO, ZERO, ZERO, ZERO)
        base = x * cols
        for j in range(cols):
            acc = add(acc, mul(load(a, base + j), load(w, j), d), d)
        store(out, x, acc)


@kernel()
def fraction_layer(d, p, q, p_out, q_out):
    """One layer up a tree of fractions whose child bit is the top variable: (p, q)[i] +
    (p, q)[i + h] as p/q sums (h = len(p_out)), unreduced:
    p_out[i] = p[i] q[i+h] + p[i+h] q[i], q_out[i] = q[i] q[i+h]."""
    h = p_out.shape[0]
    for i in prange(h):
        p0, p1 = load(p, i), load(p, i + h)
        q0, q1 = load(q, i), load(q, i + h)
        store(p_out, i, add(mul(p0, q1, d), mul(p1, q0, d), d))
        store(q_out, i, mul(q0, q1, d))


@_jit
def _times_small(c_pos, c_neg, v, d):
    """c v for a signed int64 v, with c_pos = c 2^64 and c_neg = -c 2^64 (Montgomery limbs):
    one Montgomery round by the 64-bit |v| (the 2^64 cancels), eight 64-bit products."""
    if v == 0:
        return (ZERO, ZERO, ZERO, ZERO)
    if v > 0:
        t0, t1, t2, t3 = _cios_round(ZERO, ZERO, ZERO, ZERO, c_pos, U64(v), d)
    else:
        t0, t1, t2, t3 = _cios_round(ZERO, ZERO, ZERO, ZERO, c_neg, U64(-(v + 1)) + U64(1), d)
    return _reduce_once(t0, t1, t2, t3, d)


@kernel(size=lambda d, x, *rest: x.shape[0])
def leaf_block(d, x, y, sel, a_pos, a_neg, b_pos, b_neg, c0, one_, p_out, q_out):
    """One column's block of fraction-tree leaves from its int64 values:
    q_out[i] = c0 + a x[i] (+ b y[i] where y is not empty), p_out[i] = sel[i] (0 or 1), with
    a_pos = a 2^64, a_neg = -a 2^64 (and b's) as Montgomery limbs: the values are never
    embedded in the field."""
    has_y = y.shape[0] > 0
    for i in prange(x.shape[0]):
        v = add(c0, _times_small(a_pos, a_neg, x[i], d), d)
        if has_y:
            v = add(v, _times_small(b_pos, b_neg, y[i], d), d)
        store(q_out, i, v)
        store(p_out, i, one_ if sel[i] else (ZERO, ZERO, ZERO, ZERO))
