"""Multilinear extensions over Fr.

Convention (fixed project-wide): a vector v of length 2^m is the table of the multilinear
polynomial v~ on the hypercube, little-endian: v[i] = v~(b_0, ..., b_{m-1}) with
i = sum_k b_k 2^k. A point is a sequence of m ints (r_0, ..., r_{m-1}). A row-major matrix of
2^a rows and 2^b columns is a vector whose low b variables index the column and whose high a
variables index the row, so M~(col_point + row_point) is its extension.

The prover-side functions take and return (n, 4) Montgomery vectors (see :mod:`zk.field`);
the verifier-side functions (``eq_eval``, ``evaluate_ints``, ``interpolate``) work on ints.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from gpu import poly as K
from zk.field import Fr

P = Fr.modulus


def num_vars(n: int) -> int:
    """m with 2^m = n; ValueError if n is not a power of two."""
    if n < 1 or n & (n - 1):
        raise ValueError(f"length {n} is not a power of two")
    return n.bit_length() - 1


def next_pow2(n: int) -> int:
    return 1 if n <= 1 else 1 << (n - 1).bit_length()


def eq_table(point: Sequence[int]) -> np.ndarray:
    """The vector (eq(point, bits(i)))_i of length 2^len(point)."""
    out = np.empty((1 << len(point), 4), dtype=np.uint64)
    K.eq_table(Fr.desc, Fr.from_ints(point).reshape(len(point), 4), out)
    return out


def fold(v: np.ndarray, r: int) -> np.ndarray:
    """Bind the lowest variable of v~ to r: a vector of half the length."""
    out = np.empty((1, v.shape[0] // 2, 4), dtype=np.uint64)
    K.fold(Fr.desc, v.reshape(1, -1, 4), Fr.scalar(r), out)
    return out[0]


def evaluate(v: np.ndarray, point: Sequence[int]) -> int:
    """v~(point) = sum_i v[i] eq(point, bits(i)), in one kernel (about 2^m multiplications)."""
    if v.shape[0] != 1 << len(point):
        raise ValueError(f"a vector of length {v.shape[0]} has no point of {len(point)} coordinates")
    pt = Fr.from_ints(point).reshape(len(point), 4)
    return Fr.scalar_to_int(K.evaluate(Fr.desc, v, pt))


def evaluate_small(v: np.ndarray, point: Sequence[int]) -> int:
    """v~(point) for a signed int64 vector v, without embedding v in the field: the eq table
    of the point times v's integers (:func:`gpu.poly.fold_small`), reduced once."""
    v = np.ascontiguousarray(np.asarray(v, dtype=np.int64).reshape(-1))
    if v.shape[0] != 1 << len(point):
        raise ValueError(f"a vector of length {v.shape[0]} has no point of {len(point)} coordinates")
    m = len(point)
    k = m // 2  # v as a (2^(m-k), 2^k) matrix: its rows folded by the low half's eq table
    # as integers, then one inner product with the high half's (about 3 sqrt(n) products)
    rows = np.empty((1 << (m - k), 4), dtype=np.uint64)
    K.fold_small(Fr.desc, v, 1 << (m - k), 1 << k, 1, eq_table(list(point[:k])), rows)
    return Fr.inner(rows, eq_table(list(point[k:])))


def pad(v: np.ndarray, n: int) -> np.ndarray:
    """v followed by zeros up to length n."""
    if v.shape[0] == n:
        return v
    out = np.zeros((n, 4), dtype=np.uint64)
    out[: v.shape[0]] = v
    return out


def from_matrix(m: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Fr vector of an integer matrix zero-padded to rows x cols, row-major."""
    if m.shape[0] > rows or m.shape[1] > cols:
        raise ValueError(f"a {m.shape} matrix does not fit in {rows}x{cols}")
    out = np.zeros((rows, cols), dtype=np.int64)
    out[: m.shape[0], : m.shape[1]] = m
    return Fr.from_signed(out)


def fold_rows(a: np.ndarray, rows: int, cols: int, row_point: Sequence[int]) -> np.ndarray:
    """The column vector (a~(bits(x), row_point))_x = sum_i eq(row_point, i) a[i, x]."""
    w = eq_table(row_point)
    out = np.empty((cols, 4), dtype=np.uint64)
    K.rows_fold(Fr.desc, a, rows, cols, w, out)
    return out


def fold_cols(a: np.ndarray, rows: int, cols: int, col_point: Sequence[int]) -> np.ndarray:
    """The row vector (a~(col_point, bits(x)))_x = sum_j a[x, j] eq(col_point, j)."""
    w = eq_table(col_point)
    out = np.empty((rows, 4), dtype=np.uint64)
    K.cols_fold(Fr.desc, a, rows, cols, w, out)
    return out


# ---------------------------------------------------------------- verifier side (ints)


def eq_eval(x: Sequence[int], y: Sequence[int]) -> int:
    """eq(x, y) = prod_k (x_k y_k + (1 - x_k)(1 - y_k))."""
    if len(x) != len(y):
        raise ValueError("eq of points of different dimension")
    acc = 1
    for a, b in zip(x, y):
        acc = acc * ((2 * a * b - a - b + 1) % P) % P
    return acc


def evaluate_ints(values: Sequence[int], point: Sequence[int]) -> int:
    """v~(point) for a short vector of ints (verifier-side; O(n) Python multiplications)."""
    if len(values) != 1 << len(point):
        raise ValueError(f"a vector of length {len(values)} has no point of {len(point)} coordinates")
    v = [x % P for x in values]
    for r in point:
        v = [(v[2 * j] + r * (v[2 * j + 1] - v[2 * j])) % P for j in range(len(v) // 2)]
    return v[0]


def lagrange_basis(n: int, x: int) -> list[int]:
    """L_t(x) for t = 0..n-1, the Lagrange basis on the nodes 0..n-1 (p(x) = sum p(t) L_t(x))."""
    x %= P
    if x < n:
        return [int(t == x) for t in range(n)]
    prefix = [1] * (n + 1)
    for s in range(n):
        prefix[s + 1] = prefix[s] * (x - s) % P
    suffix = [1] * (n + 1)
    for s in range(n - 1, -1, -1):
        suffix[s] = suffix[s + 1] * (x - s) % P
    fact = [1] * n
    for i in range(1, n):
        fact[i] = fact[i - 1] * i % P
    out = []
    for t in range(n):
        num = prefix[t] * suffix[t + 1] % P
        den = fact[t] * fact[n - 1 - t] % P
        v = num * pow(den, -1, P) % P
        out.append(-v % P if (n - 1 - t) % 2 else v)
    return out


def interpolate(evals: Sequence[int], x: int) -> int:
    """p(x) for the polynomial of degree len(evals)-1 with p(t) = evals[t], t = 0, 1, ..."""
    return sum(e * b for e, b in zip(evals, lagrange_basis(len(evals), x))) % P
