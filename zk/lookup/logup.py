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
All fractions go into ONE tree (:mod:`zk.lookup.fractions`; its root numerator must be 0): the
leaves are 2^s-entry slots (2^s = the longest column): first the table (p = -m, q = beta + w_T,
2^max(0, t - s) slots), then one slot per column (p = sel zero-padded, q = beta + t_c +
alpha X + alpha^2 Y, with X = Y = 0 beyond the column), unused slots p = 0, q = beta. At the
tree's leaf point z (s slot bits, then slot-index bits kappa), with f_n = prod_{i >= n} (1 - z_i)
the embedding factor of a 2^n prefix and sigma_c column c's slot,

    p~(z) = -f_t m~(z[:t]) + sum_c eq(kappa, sigma_c) f_{n_c}(z[:s]) sel_c~(z[:n_c])
    q~(z) = beta + f_t w_T~(z[:t]) + sum_c eq(kappa, sigma_c) (t_c + alpha f X_c~ + alpha^2 f Y_c~)

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


def _embed(point: Sequence[int], lo: int, hi: int) -> int:
    """prod_{lo <= i < hi} (1 - point[i]): the extension factor of a zero-padded prefix."""
    acc = 1
    for i in range(lo, hi):
        acc = acc * (1 - point[i]) % P
    return acc


@dataclass(frozen=True)
class Layout:
    """Where the table and the columns sit among the tree's leaves."""

    slot_vars: int      # s
    table_vars: int     # t
    table_slots: int
    slot_index_vars: int  # k
    column_vars: tuple[int, ...]

    @classmethod
    def of(cls, tables: TableSet, columns: Sequence[Column]) -> "Layout":
        col_vars = tuple(num_vars(c.selector.size) for c in columns)
        s = max(col_vars)
        t = num_vars(tables.padded)
        table_slots = 1 << max(0, t - s)
        k = num_vars(next_pow2(table_slots + len(columns)))
        if s + k < 1:
            k = 1
        return cls(s, t, table_slots, k, col_vars)

    @property
    def num_vars(self) -> int:
        return self.slot_vars + self.slot_index_vars

    def slot(self, c: int) -> int:
        return self.table_slots + c


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

    def bind(self, xs: Sequence[Com], ys: Sequence[Com | None]) -> None:
        """Tie the tree to the columns: ``xs[c]`` commits X_c~(column_points[c]) and ``ys[c]``
        Y_c~ (None for a range table). Records one equality, checked at the end."""
        lay, z = self._layout, self.point
        if len(xs) != len(self._columns) or len(ys) != len(self._columns):
            raise ValueError("one value per column")
        s, kappa = lay.slot_vars, z[lay.slot_vars:]
        a, a2 = self._alpha, self._alpha * self._alpha % P
        consts = (self._beta + _embed(z, lay.table_vars, lay.num_vars)
                  * evaluate(self._tables.compressed(self._alpha), z[:lay.table_vars])) % P
        coms, coefs = [], []
        for c, (col, x, y) in enumerate(zip(self._columns, xs, ys)):
            e = eq_eval(kappa, _bits(lay.slot(c), len(kappa)))
            f = _embed(z, lay.column_vars[c], s)
            consts = (consts + e * col.table) % P
            coms.append(x)
            coefs.append(e * f % P * a % P)
            is_fn = self._tables.tables[col.table].is_function
            if is_fn != (y is not None):
                raise ValueError(f"column {c}: a Y value is needed exactly for function tables")
            if y is not None:
                coms.append(y)
                coefs.append(e * f % P * a2 % P)
        rhs = self._ctx.public(consts)
        for com, k in zip(coms, coefs):
            rhs = rhs + com * k
        self._ctx.equal(self._q, rhs, "lookup: a looked-up value is not in its table")
        self._ctx.discharge(self._ticket)


def _bits(i: int, n: int) -> list[int]:
    return [(i >> b) & 1 for b in range(n)]


def run(ctx: Context, tables: TableSet, columns: Sequence[Column]) -> LookupEnd:
    """Run the lookup: commit m (prover), draw alpha and beta, prove the fraction tree, open
    m. The caller then supplies the columns' values at the returned points with
    :meth:`LookupEnd.bind`. On the prover side the columns carry their values (X, Y)."""
    if not columns:
        raise ValueError("no columns to look up")
    tables.absorb(ctx.t)
    for c in columns:
        if not 0 <= c.table < len(tables.tables):
            raise ValueError(f"column names table {c.table} of {len(tables.tables)}")
        ctx.t.absorb_vector(L_COLUMNS, Fr.from_signed(np.concatenate(
            [np.array([c.table], dtype=np.int64), c.selector.describe_array()])))
    lay = Layout.of(tables, columns)
    t = lay.table_vars
    # few rows: the row commitments are in every proof, the opening grows only with log
    m_cols = max(t // 2, t - 5)
    m_vec = multiplicities(tables, columns) if ctx.proving else None
    m_tensor = hyrax.commit_in(ctx, t, m_cols,
                               (lambda: hyrax.commit(m_vec, log_cols=m_cols, rng=ctx.rng))
                               if ctx.proving else None)
    alpha, beta = ctx.challenge(L_ALPHA), ctx.challenge(L_BETA)
    leaves = (lambda: _leaves(tables, columns, lay, m_vec, alpha, beta)) if ctx.proving else None
    tree = fractions.run(ctx, lay.num_vars, leaves)
    z = tree.point
    kappa = z[lay.slot_vars:]
    sel = 0
    for c, col in enumerate(columns):
        e = eq_eval(kappa, _bits(lay.slot(c), len(kappa)))
        sel = (sel + e * _embed(z, lay.column_vars[c], lay.slot_vars)
               * col.selector.mle(z[:lay.column_vars[c]])) % P
    f_t = _embed(z, t, lay.num_vars)
    if f_t == 0:
        if ctx.proving:
            raise ProverError("degenerate lookup challenge (negligible): prove again")
        raise VerificationError("lookup: degenerate challenge")
    m_com = (ctx.public(sel) - tree.p) * pow(f_t, -1, P)
    hyrax.open(ctx, m_tensor, [ComClaim(tuple(z[:t]), m_com)])
    ticket = ctx.obligation("a lookup whose columns were never bound")
    return LookupEnd(z, tuple(tuple(z[:n]) for n in lay.column_vars), ctx, tables, columns, lay,
                     alpha, beta, tree.q, ticket)


def _leaves(tables: TableSet, columns: Sequence[Column], lay: Layout, m: np.ndarray,
            alpha: int, beta: int) -> tuple[np.ndarray, np.ndarray]:
    size = 1 << lay.num_vars
    slot = 1 << lay.slot_vars
    p = np.zeros((size, 4), dtype=np.uint64)
    q = Fr.add_scalar(np.zeros((size, 4), dtype=np.uint64), beta)
    T = tables.padded
    p[:T] = Fr.neg(Fr.from_signed(m))
    q[:T] = Fr.add_scalar(tables.compressed(alpha), beta)
    a2 = alpha * alpha % P
    for c, col in enumerate(columns):
        base = lay.slot(c) * slot
        n = col.selector.size
        w = Fr.axpy(alpha, Fr.from_signed(np.asarray(col.x, dtype=np.int64)),
                    Fr.from_signed(np.full(n, col.table, dtype=np.int64)))
        if tables.tables[col.table].is_function:
            w = Fr.axpy(a2, Fr.from_signed(np.asarray(col.y, dtype=np.int64)), w)
        p[base:base + n] = Fr.from_signed(col.selector.values())
        q[base:base + n] = Fr.add_scalar(w, beta)
        if n < slot:
            q[base + n:base + slot] = Fr.add_scalar(
                np.zeros((slot - n, 4), dtype=np.uint64), (beta + col.table) % P)
    return p, q

