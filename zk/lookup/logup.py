"""tlookup: the logarithmic-derivative lookup argument in zero knowledge, proven with one tree
of fractions.

Statement: for public tables (a :class:`~zk.lookup.tables.TableSet`) and looked-up columns
c = (table t_c, inputs X_c, outputs Y_c, selector sel_c), every selected entry is a row of its
table: (X_c[i], Y_c[i]) = (x, f(x)) for some x of T_{t_c} whenever sel_c[i] = 1.

With challenges alpha, beta, drawn after the columns (the caller's committed tensors) and the
multiplicities m (committed here, Hyrax) are fixed, a union-table row (t, x, f(x)) compresses to
w = t + alpha x + alpha^2 f(x), and the identity of Haböck (2022)

    sum_c sum_i sel_c[i] / (beta + w_c[i]) - sum_j m_j / (beta + w_T[j]) = 0

holds iff (with overwhelming probability over alpha, beta) every selected entry is a table row.
All fractions go into ONE tree (:mod:`zk.lookup.fractions`; its root numerator must be 0),
whose leaves are aligned blocks (:class:`Layout`): the table's 2^t leaves first (p = -m,
q = beta + w_T), then each column's 2^n_c leaves, longest first, at an offset o_c that is a
multiple of 2^n_c (p = sel, q = beta + t_c + alpha X + alpha^2 Y); leaves in no block have
p = 0, q = beta. A block's indicator at the leaf point z is b_c(z) = eq(z[n_c:], bits(o_c /
2^n_c)), so

    p~(z) = -b_T(z) m~(z[:t]) + sum_c b_c(z) sel_c~(z[:n_c])
    q~(z) = beta + b_T(z) w_T~(z[:t]) + sum_c b_c(z) (t_c + alpha X_c~(z[:n_c]) + alpha^2 Y_c~(z[:n_c]))

and the tree has about as many leaves as the table and the columns together (a short column
costs its own length, not the longest one's);
so the verifier evaluates the tables and selectors itself, derives the commitment to m~(z[:t])
from the tree's committed p~(z) (m is opened against its commitment here), and, once the
caller supplies commitments to X_c~ and Y_c~ at z[:n_c] (:meth:`LookupEnd.bind`), checks the q
relation as an equality of commitments. Nothing about the columns is revealed. Soundness needs
r much larger than the number of looked-up entries plus table rows; unlike zkLLM's release, the
sizes need not divide each other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from gpu import poly as K
from zk.claims import ComClaim
from zk.commit import hyrax
from zk.errors import ProverError, VerificationError
from zk.field import Fr
from zk.lookup import fractions
from zk.lookup.tables import Column, TableSet, multiplicities
from zk.multilinear import P, eq_eval, evaluate, next_pow2, num_vars
from zk.protocol.context import Com, Context

__all__ = ["Layout", "LookupEnd", "run"]

L_COLUMNS = b"lookup/columns"
L_ALPHA = b"lookup/alpha"
L_BETA = b"lookup/beta"
MAX_M_COLS = 13


@dataclass(frozen=True)
class Layout:
    """Where the table and the columns sit among the tree's leaves: aligned blocks (the table
    first, then the columns by decreasing size), each block of 2^n leaves at an offset that is
    a multiple of 2^n, so its indicator is eq(z[n:], bits(offset / 2^n))."""

    table_vars: int               # t
    column_vars: tuple[int, ...]  # n_c
    offsets: tuple[int, ...]      # leaf offset of each column's block
    num_vars: int

    @classmethod
    def of(cls, tables: TableSet, columns: Sequence[Column]) -> "Layout":
        return cls.of_sizes(tables.padded, [c.selector.size for c in columns])

    @classmethod
    def of_sizes(cls, table_padded: int, column_sizes: Sequence[int]) -> "Layout":
        """The layout of a union table of ``table_padded`` rows and columns of these sizes
        (powers of two)."""
        col_vars = tuple(num_vars(size) for size in column_sizes)
        t = num_vars(table_padded)
        offsets = [0] * len(col_vars)
        pos = 1 << t
        for c in sorted(range(len(col_vars)), key=lambda c: -col_vars[c]):
            size = 1 << col_vars[c]
            pos = -(-pos // size) * size
            offsets[c] = pos
            pos += size
        n = max(1, num_vars(next_pow2(pos)))
        return cls(t, col_vars, tuple(offsets), n)

    def block(self, z: Sequence[int], n: int, offset: int) -> int:
        """The indicator MLE of the block of 2^n leaves at ``offset``, at the leaf point z."""
        return eq_eval(z[n:], _bits(offset >> n, self.num_vars - n))


@dataclass
class LookupEnd:
    """The lookup's point and the pending relation on the columns' values (see :meth:`bind`)."""

    point: tuple[int, ...]
    column_points: tuple[tuple[int, ...], ...]
    _ctx: Context = field(repr=False)
    _tables: TableSet = field(repr=False)
    _columns: Sequence[Column] = field(repr=False)
    _layout: Layout = field(repr=False)
    _alpha: int = 0
    _beta: int = 0
    _q: Com | None = field(default=None, repr=False)
    _ticket: int = 0
    _m_opening: tuple | None = field(default=None, repr=False)
    _m_ticket: int | None = None

    def take_m_opening(self) -> tuple[hyrax.Tensor, ComClaim]:
        """The multiplicities' commitment and the claim on it (``run(..., defer_m=True)``): the
        caller must open it (e.g. in its batched opening)."""
        if self._m_opening is None:
            raise ValueError("this lookup opened its multiplicities itself (or handed them on)")
        out, self._m_opening = self._m_opening, None
        self._ctx.discharge(self._m_ticket)
        return out

    def bind(self, xs: Sequence[Com], ys: Sequence[Com | None]) -> None:
        """Tie the tree to the columns: ``xs[c]`` commits X_c~(column_points[c]) and ``ys[c]``
        Y_c~ (None for a range table). Records one equality, checked at the end."""
        lay, z = self._layout, self.point
        if len(xs) != len(self._columns) or len(ys) != len(self._columns):
            raise ValueError("one value per column")
        a, a2 = self._alpha, self._alpha * self._alpha % P
        consts = (self._beta + lay.block(z, lay.table_vars, 0)
                  * self._tables.compressed_mle(self._alpha, z[:lay.table_vars])) % P
        coms, coefs = [], []
        for c, (col, x, y) in enumerate(zip(self._columns, xs, ys)):
            e = lay.block(z, lay.column_vars[c], lay.offsets[c])
            consts = (consts + e * col.table) % P
            coms.append(x)
            coefs.append(e * a % P)
            is_fn = self._tables.tables[col.table].is_function
            if is_fn != (y is not None):
                raise ValueError(f"column {c}: a Y value is needed exactly for function tables")
            if y is not None:
                coms.append(y)
                coefs.append(e * a2 % P)
        rhs = self._ctx.public(consts)
        for com, k in zip(coms, coefs):
            rhs = rhs + com * k
        self._ctx.equal(self._q, rhs, "lookup: a looked-up value is not in its table")
        self._ctx.discharge(self._ticket)


def _bits(i: int, n: int) -> list[int]:
    return [(i >> b) & 1 for b in range(n)]


def run(ctx: Context, tables: TableSet, columns: Sequence[Column], *,
        m_cols: int | None = None, defer_m: bool = False) -> LookupEnd:
    """Run the lookup: commit m (prover), draw alpha and beta, prove the fraction tree, open
    m. The caller then supplies the columns' values at the returned points with
    :meth:`LookupEnd.bind`. On the prover side the columns carry their values (X, Y).

    ``m_cols``: m's Hyrax matrix gets min(t, m_cols) column variables (fewest rows; default:
    a few rows, at most 2^MAX_M_COLS columns), and its rows past the union table's last row
    (m is 0 there) are publicly zero, not sent. ``defer_m``: m is not opened here; the caller
    takes the opening with :meth:`LookupEnd.take_m_opening` and must open it."""
    if not columns:
        raise ValueError("no columns to look up")
    tables.absorb(ctx.t)
    for c in columns:
        if not 0 <= c.table < len(tables.tables):
            raise ValueError(f"column names table {c.table} of {len(tables.tables)}")
        # the column's table and selector, bound by the SHA3-256 of the selector's canonical
        # int64 description (a mask of 2^20 entries costs one hash per selector, not 2^20
        # field elements per column)
        ctx.t.absorb_bytes(L_COLUMNS, np.array([c.table], dtype="<i8").tobytes()
                           + c.selector.digest())
    lay = Layout.of(tables, columns)
    t = lay.table_vars
    # few rows: the row commitments are in every proof, the opening grows only with log; at
    # most 2^MAX_M_COLS columns (the opening's IPA costs the prover 2 log(n) MSMs of n points
    # and the verifier n generators: a 2^21-row table would ask 2^16 of both)
    zero = None
    if m_cols is None:
        m_cols = min(max(t // 2, t - 5), MAX_M_COLS)
    else:
        m_cols = min(t, m_cols)
        zero = (np.arange(1 << (t - m_cols)) << m_cols) >= tables.total
    m_vec = multiplicities(tables, columns) if ctx.proving else None
    m_tensor = hyrax.commit_in(
        ctx, t, m_cols,
        (lambda: hyrax.commit(m_vec, log_cols=m_cols, rng=ctx.rng, zero_rows=zero))
        if ctx.proving else None, zero_rows=zero if zero is not None and zero.any() else None)
    alpha, beta = ctx.challenge(L_ALPHA), ctx.challenge(L_BETA)
    leaves = (lambda: _leaves(tables, columns, lay, m_vec, alpha, beta)) if ctx.proving else None
    tree = fractions.run(ctx, lay.num_vars, leaves)
    z = tree.point
    sel = 0
    for c, col in enumerate(columns):
        n = lay.column_vars[c]
        sel = (sel + lay.block(z, n, lay.offsets[c]) * col.selector.mle(z[:n])) % P
    f_t = lay.block(z, t, 0)
    if f_t == 0:
        if ctx.proving:
            raise ProverError("degenerate lookup challenge (negligible): prove again")
        raise VerificationError("lookup: degenerate challenge")
    m_com = (ctx.public(sel) - tree.p) * pow(f_t, -1, P)
    m_claim = ComClaim(tuple(z[:t]), m_com)
    if not defer_m:
        hyrax.open(ctx, m_tensor, [m_claim])
    ticket = ctx.obligation("a lookup whose columns were never bound")
    end = LookupEnd(z, tuple(tuple(z[:n]) for n in lay.column_vars), ctx, tables, columns, lay,
                    alpha, beta, tree.q, ticket)
    if defer_m:
        end._m_opening = (m_tensor, m_claim)
        end._m_ticket = ctx.obligation("a lookup's multiplicities never opened")
    return end


def _leaves(tables: TableSet, columns: Sequence[Column], lay: Layout, m: np.ndarray,
            alpha: int, beta: int) -> np.ndarray:
    """The (2, 2^n, 4) leaves: p = -m, q = beta + T_alpha on the table block; p = selector,
    q = beta + table id + alpha x (+ alpha^2 y) on each column's block (one pass over the
    columns' int64 values, never embedded as field vectors); p = 0, q = beta elsewhere."""
    size = 1 << lay.num_vars
    pq = np.empty((2, size, 4), dtype=np.uint64)
    p, q = pq[0], pq[1]
    T = tables.padded
    p[:T] = Fr.neg(Fr.from_signed(m))
    q[:T] = Fr.add_scalar(tables.compressed(alpha), beta)
    a2 = alpha * alpha % P
    none = np.zeros(0, dtype=np.int64)
    R64 = 1 << 64
    one = Fr.scalar(1)
    covered = [(0, T)]
    sel_of: dict[int, np.ndarray] = {}
    for c, col in enumerate(columns):
        base = lay.offsets[c]
        n = col.selector.size
        x = np.ascontiguousarray(col.x, dtype=np.int64).reshape(-1)
        y = (np.ascontiguousarray(col.y, dtype=np.int64).reshape(-1)
             if tables.tables[col.table].is_function else none)
        if x.shape != (n,) or y.shape not in ((0,), (n,)):
            raise ProverError(f"column {c}: values of the wrong length")
        key = id(col.selector)  # columns of one space share a selector: expanded once
        if key not in sel_of:
            sel_of[key] = np.ascontiguousarray(col.selector.values() != 0)
        sel = sel_of[key]
        K.leaf_block(Fr.desc, x, y, sel, Fr.scalar(alpha * R64), Fr.scalar(-alpha * R64),
                     Fr.scalar(a2 * R64), Fr.scalar(-a2 * R64),
                     Fr.scalar((beta + col.table) % P), one, p[base:base + n],
                     q[base:base + n])
        covered.append((base, base + n))
    fill = Fr.add_scalar(np.zeros((1, 4), dtype=np.uint64), beta)
    end = 0
    for lo, hi in sorted(covered) + [(size, size)]:  # the gaps: empty leaves p/q = 0/beta
        if lo > end:
            p[end:lo] = 0
            q[end:lo] = fill
        end = max(end, hi)
    return pq
