"""tlookup: lookup arguments by logarithmic derivatives, proven with layered fractional sumchecks.

Statement: for public tables T_0, T_1, ... (a range [lo, hi), or a function x -> f(x) on
[lo, hi)) and looked-up columns c = (table t_c, inputs X_c, outputs Y_c, selector sel_c), every
selected entry is a row of its table: (X_c[i], Y_c[i]) = (x, f(x)) for some x of T_{t_c}
whenever sel_c[i] = 1 (Y is absent for a range). Unselected entries (padding, causally masked
positions) are unconstrained.

All tables are laid end to end into one union table whose row j is (t, x_j, f(x_j)) (f = 0 for
ranges), zero-padded to a power of two. With challenges alpha, beta (drawn after the columns'
and the multiplicities' commitments are absorbed), compress a row to
w = t + alpha x + alpha^2 f(x) and use the logarithmic-derivative identity (Haböck 2022)

    sum_c sum_i sel_c[i] / (beta + w_c[i]) = sum_j m_j / (beta + w_T[j]),

with m_j the number of selected entries equal to union row j. Each side is a tree of fractions
proven by :mod:`zk.fractions`: columns of one size side by side in one tree (the column index
in the high variables; unused slots have p = 0, q = beta), all trees batched, so columns of one
size end at one point rho. Its leaves are p = sel, q = beta + w for every column entry, and p = m,
q = beta + w_T (padding rows included) for the table; so q~ is affine in X~, Y~ and the verifier
turns the q claims into claims on X and Y (values the prover sends), checks p~ = sel~ itself,
evaluates the union table's extension itself, and returns the claims on X, Y and m to the
caller. Soundness needs r > (number of looked-up entries + table rows); zkLLM's release also
needs |T| to divide |S|: here both sizes are free.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from zk import fractions
from zk.claims import Claim
from zk.encoding import Reader, Writer
from zk.errors import ProverError, VerificationError
from zk.field import Fr
from zk.multilinear import P, eq_eval, evaluate, next_pow2, num_vars
from zk.transcript import Transcript

LABEL_TABLE = b"lookup/table"
LABEL_COLUMNS = b"lookup/columns"
LABEL_ALPHA = b"lookup/alpha"
LABEL_BETA = b"lookup/beta"
LABEL_OPERANDS = b"lookup/operands"

MAX_TABLE = 1 << 22


# ---------------------------------------------------------------- tables and selectors


@dataclass(frozen=True, eq=False)
class LookupTable:
    """A public table: inputs offset, ..., offset + size - 1 and, for a function table, one
    output per input. ``outputs is None`` makes it the range [offset, offset + size)."""

    offset: int
    size: int
    outputs: np.ndarray | None = None
    name: str = ""

    def __post_init__(self) -> None:
        if not 1 <= self.size <= MAX_TABLE:
            raise ValueError(f"table size {self.size} outside 1..{MAX_TABLE}")
        if self.outputs is not None:
            out = np.ascontiguousarray(self.outputs, dtype=np.int64)
            if out.shape != (self.size,):
                raise ValueError("a function table needs one output per input")
            object.__setattr__(self, "outputs", out)

    @classmethod
    def range(cls, lo: int, hi: int, name: str = "") -> "LookupTable":
        """The range [lo, hi)."""
        return cls(lo, hi - lo, None, name or f"range[{lo},{hi})")

    @classmethod
    def function(cls, offset: int, outputs: Sequence[int] | np.ndarray,
                 name: str = "") -> "LookupTable":
        """f(offset + j) = outputs[j]."""
        outputs = np.asarray(outputs, dtype=np.int64)
        return cls(offset, int(outputs.shape[0]), outputs, name)

    @property
    def is_function(self) -> bool:
        return self.outputs is not None

    @property
    def padded(self) -> int:
        return max(2, next_pow2(self.size))

    def inputs(self) -> np.ndarray:
        return np.arange(self.size, dtype=np.int64) + self.offset

    def describe(self) -> list[int]:
        """Integers that pin the table down (absorbed into transcripts)."""
        out = [self.offset % P, self.size, int(self.is_function)]
        if self.outputs is not None:
            out += [int(v) % P for v in self.outputs]
        return out


@dataclass(frozen=True, eq=False)
class Selector:
    """Which entries of a padded column are looked up: the first ``prefix`` entries, or the
    entries where a public 0/1 ``mask`` is 1. ``size`` is the padded length (a power of two)."""

    size: int
    prefix: int | None = None
    mask: np.ndarray | None = None

    def __post_init__(self) -> None:
        num_vars(self.size)
        if (self.prefix is None) == (self.mask is None):
            raise ValueError("a selector is a prefix or a mask")
        if self.mask is not None:
            mask = np.ascontiguousarray(self.mask, dtype=np.int64).reshape(-1)
            if mask.shape != (self.size,) or ((mask != 0) & (mask != 1)).any():
                raise ValueError("a selector mask is a 0/1 vector of the padded size")
            object.__setattr__(self, "mask", mask)
        elif not 0 <= self.prefix <= self.size:
            raise ValueError("prefix longer than the column")

    @classmethod
    def first(cls, n: int, size: int | None = None) -> "Selector":
        """The first n entries of a column padded to ``size`` (default: max(2, next_pow2(n)))."""
        return cls(size or max(2, next_pow2(n)), prefix=n)

    def values(self) -> np.ndarray:
        if self.mask is not None:
            return self.mask
        v = np.zeros(self.size, dtype=np.int64)
        v[: self.prefix] = 1
        return v

    def mle(self, point: Sequence[int]) -> int:
        if self.mask is not None:
            fr = self.__dict__.get("_mask_fr")
            if fr is None:  # a verifier evaluates one mask at several points
                fr = Fr.from_signed(self.mask)
                object.__setattr__(self, "_mask_fr", fr)
            return evaluate(fr, point)
        return indicator_mle(self.prefix, point)

    def describe(self) -> list[int]:
        if self.mask is not None:
            return [self.size, 1, *self.mask.tolist()]
        return [self.size, 0, self.prefix]


def indicator_mle(n: int, point: Sequence[int]) -> int:
    """ind~(point) for ind(i) = [i < n] over {0,1}^len(point), little-endian, in O(len)."""
    if n >> len(point):
        return 1
    acc, eq_prefix = 0, 1  # scanning bits from the top: i < n iff at the first differing
    for k in range(len(point) - 1, -1, -1):  # bit, i has 0 and n has 1
        r = point[k]
        if (n >> k) & 1:
            acc = (acc + eq_prefix * (1 - r)) % P
            eq_prefix = eq_prefix * r % P
        else:
            eq_prefix = eq_prefix * (1 - r) % P
    return acc % P


@dataclass(frozen=True, eq=False)
class Column:
    """One looked-up column: the prover's view (values) or the verifier's (values None)."""

    table: int
    selector: Selector
    x: np.ndarray | None = None  # int64, length selector.size
    y: np.ndarray | None = None


class TableSet:
    """Tables laid end to end into one union table (see the module docstring)."""

    def __init__(self, tables: Sequence[LookupTable]) -> None:
        if not tables:
            raise ValueError("a table set needs a table")
        self.tables = list(tables)
        self.offsets = np.cumsum([0] + [t.size for t in tables])[:-1].tolist()
        self.total = sum(t.size for t in tables)
        if self.total > MAX_TABLE:
            raise ValueError(f"tables of {self.total} rows in all exceed {MAX_TABLE}")
        self.padded = max(2, next_pow2(self.total))

    def absorb(self, t: Transcript) -> None:
        for table in self.tables:
            t.absorb_bytes(LABEL_TABLE, table.name.encode())
            t.absorb_scalars(LABEL_TABLE, table.describe())

    def union(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(tag, x, f(x)) of every union row, zero-padded."""
        tag = np.zeros(self.padded, dtype=np.int64)
        xs = np.zeros(self.padded, dtype=np.int64)
        ys = np.zeros(self.padded, dtype=np.int64)
        for k, (table, off) in enumerate(zip(self.tables, self.offsets)):
            sl = slice(off, off + table.size)
            tag[sl] = k
            xs[sl] = table.inputs()
            if table.outputs is not None:
                ys[sl] = table.outputs
        return tag, xs, ys

    def compressed(self, alpha: int) -> np.ndarray:
        """w_T = tag + alpha x + alpha^2 f(x) for every union row, as an Fr vector."""
        tag, xs, ys = self.union()
        return _compress(tag, xs, ys, alpha)


def _compress(tag, xs, ys, alpha: int) -> np.ndarray:
    w = Fr.axpy(alpha, Fr.from_signed(xs), Fr.from_signed(tag))
    if ys is not None:
        w = Fr.axpy(alpha * alpha % P, Fr.from_signed(ys), w)
    return w


# ---------------------------------------------------------------- proof objects


@dataclass(frozen=True)
class LookupProof:
    """One batched fraction-sum proof over every column's tree and the table's tree (in that
    order), and the values X~(rho)[, Y~(rho)] of each column at its tree's final point."""

    trees: fractions.FractionProof
    operands: tuple[tuple[int, ...], ...]

    def write(self, w: Writer) -> None:
        with w.section("lookup"):
            self.trees.write(w)
            w.fields([x for ops in self.operands for x in ops])

    @classmethod
    def read(cls, r: Reader, tables: TableSet, columns: Sequence[Column]) -> "LookupProof":
        widths = [_width(tables, c) for c in columns]
        with r.section("lookup"):
            trees = fractions.FractionProof.read(r, _depths(tables, columns))
            flat = r.fields(max_len=sum(widths), exact_len=sum(widths))
        ops, at = [], 0
        for wd in widths:
            ops.append(tuple(flat[at:at + wd]))
            at += wd
        return cls(trees, tuple(ops))


@dataclass(frozen=True)
class LookupClaims:
    """What the caller must discharge: claims on each X (and Y), and on m."""

    inputs: tuple[Claim, ...]
    outputs: tuple[Claim | None, ...]
    multiplicities: Claim


def _width(tables: TableSet, c: Column) -> int:
    return 2 if tables.tables[c.table].is_function else 1


def _groups(columns: Sequence[Column]) -> list[list[int]]:
    """Column indices grouped by padded size, in order of first appearance: each group is one
    fraction tree (its columns side by side, the column index in the high variables), so
    columns of one size share a tree's end values instead of paying for their own."""
    groups: dict[int, list[int]] = {}
    for i, c in enumerate(columns):
        groups.setdefault(c.selector.size, []).append(i)
    return list(groups.values())


def _group_vars(group: Sequence[int]) -> int:
    return num_vars(next_pow2(len(group)))


def _depths(tables: TableSet, columns: Sequence[Column]) -> list[int]:
    return ([num_vars(columns[g[0]].selector.size) + _group_vars(g) for g in _groups(columns)]
            + [num_vars(tables.padded)])


def _begin(t: Transcript, tables: TableSet, columns: Sequence[Column]) -> tuple[int, int]:
    tables.absorb(t)
    for c in columns:
        if not 0 <= c.table < len(tables.tables):
            raise ValueError(f"column names table {c.table} of {len(tables.tables)}")
        t.absorb_scalars(LABEL_COLUMNS, [c.table, *c.selector.describe()])
    return t.challenge(LABEL_ALPHA), t.challenge(LABEL_BETA)


# ---------------------------------------------------------------- prover


def multiplicities(tables: TableSet, columns: Sequence[Column]) -> np.ndarray:
    """m (int64, length tables.padded): how often each union row is looked up.

    Raises ProverError naming the first selected entry that is not in its table.
    """
    m = np.zeros(tables.padded, dtype=np.int64)
    for s, c in enumerate(columns):
        table = tables.tables[c.table]
        sel = c.selector.values().astype(bool)
        x = np.asarray(c.x, dtype=np.int64).reshape(-1)
        if x.shape != (c.selector.size,):
            raise ProverError(f"column {s} has {x.size} entries, its selector {c.selector.size}")
        xs = x[sel]
        idx = xs - table.offset
        bad = (idx < 0) | (idx >= table.size)
        if bad.any():
            i = int(np.flatnonzero(sel)[np.argmax(bad)])
            raise ProverError(f"column {s}: entry {i} = {int(x[i])} is not in table "
                              f"{table.name!r}")
        if table.is_function:
            if c.y is None:
                raise ProverError(f"column {s}: a function table needs (X, Y) pairs")
            ys = np.asarray(c.y, dtype=np.int64).reshape(-1)[sel]
            wrong = table.outputs[idx] != ys
            if wrong.any():
                i = int(np.flatnonzero(sel)[np.argmax(wrong)])
                raise ProverError(f"column {s}: entry {i}: {table.name}({int(x[i])}) is "
                                  f"{int(table.outputs[idx[np.argmax(wrong)]])}, "
                                  f"not {int(np.asarray(c.y).reshape(-1)[i])}")
        m += np.bincount(idx + tables.offsets[c.table], minlength=tables.padded)
    return m


def prove(t: Transcript, tables: TableSet, columns: Sequence[Column], m: np.ndarray
          ) -> tuple[LookupProof, LookupClaims]:
    """Prove every column's selected entries are rows of its table.

    Call after the commitments to the columns and to m are absorbed. Returns the proof and
    the claims the caller must discharge (on each X and Y, and on m).
    """
    if not columns:
        raise ProverError("no columns to look up")
    alpha, beta = _begin(t, tables, columns)
    operands, leaves = [], []
    for c in columns:
        fx = Fr.from_signed(np.asarray(c.x, dtype=np.int64))
        fy = Fr.from_signed(np.asarray(c.y, dtype=np.int64)) if _width(tables, c) == 2 else None
        w = Fr.axpy(alpha, fx, Fr.from_signed(np.full(c.selector.size, c.table, np.int64)))
        if fy is not None:
            w = Fr.axpy(alpha * alpha % P, fy, w)
        leaves.append((Fr.from_signed(c.selector.values()), _shift(w, beta)))
        operands.append((fx, fy))
    groups = _groups(columns)
    trees = []
    for g in groups:
        if len(g) == 1:
            trees.append(leaves[g[0]])
            continue
        size = columns[g[0]].selector.size
        dummies = next_pow2(len(g)) - len(g)  # p = 0, q = beta: contribute nothing
        p = np.concatenate([leaves[i][0] for i in g] + [np.zeros((dummies * size, 4), np.uint64)])
        q = np.concatenate([leaves[i][1] for i in g]
                           + [Fr.add_scalar(np.zeros((dummies * size, 4), np.uint64), beta)])
        trees.append((p, q))
    trees.append((Fr.from_signed(m), _shift(tables.compressed(alpha), beta)))
    try:
        tree_proof, tree_claims = fractions.prove(t, trees)
    except ProverError as e:
        raise ProverError(f"lookup: {e} (beta hit a table entry; negligible)") from e
    ops: list = [None] * len(columns)
    in_claims: list = [None] * len(columns)
    out_claims: list = [None] * len(columns)
    for g, cl in zip(groups, tree_claims):
        rho = cl.q.point[: num_vars(columns[g[0]].selector.size)]
        for i in g:
            fx, fy = operands[i]
            vals = (evaluate(fx, rho),) if fy is None else (evaluate(fx, rho), evaluate(fy, rho))
            ops[i] = vals
            in_claims[i] = Claim(rho, vals[0])
            out_claims[i] = None if fy is None else Claim(rho, vals[1])
    t.absorb_scalars(LABEL_OPERANDS, [v for vals in ops for v in vals])
    proof = LookupProof(tree_proof, tuple(ops))
    return proof, LookupClaims(tuple(in_claims), tuple(out_claims), tree_claims[-1].p)


def _shift(w: np.ndarray, beta: int) -> np.ndarray:
    return Fr.add_scalar(w, beta)


# ---------------------------------------------------------------- verifier


def verify(t: Transcript, tables: TableSet, columns: Sequence[Column], proof: LookupProof
           ) -> LookupClaims:
    """Check a lookup proof for the given columns (values unused); return the claims to
    discharge. Raises VerificationError if any check fails."""
    if not columns or len(proof.operands) != len(columns):
        raise VerificationError("lookup: wrong number of columns")
    if any(len(v) != _width(tables, c) for v, c in zip(proof.operands, columns)):
        raise VerificationError("lookup: wrong number of operand values")
    try:
        alpha, beta = _begin(t, tables, columns)
    except ValueError as e:
        raise VerificationError(f"lookup: {e}") from e
    tree_claims = fractions.verify(t, proof.trees, _depths(tables, columns))
    lhs = 0
    in_claims: list = [None] * len(columns)
    out_claims: list = [None] * len(columns)
    for g, cl in zip(_groups(columns), tree_claims):
        n = num_vars(columns[g[0]].selector.size)
        rho, kappa = cl.q.point[:n], cl.q.point[n:]
        p_val = q_val = 0
        for k, i in enumerate(g):
            c, vals = columns[i], proof.operands[i]
            weight = eq_eval(kappa, [(k >> b) & 1 for b in range(len(kappa))])
            w = (c.table + alpha * vals[0] + (alpha * alpha * vals[1] if len(vals) == 2 else 0))
            p_val += weight * c.selector.mle(rho)
            q_val += weight * w
            in_claims[i] = Claim(rho, vals[0])
            out_claims[i] = Claim(rho, vals[1]) if len(vals) == 2 else None
        if cl.p.value != p_val % P:
            raise VerificationError("lookup: the numerators are not the columns' selectors")
        if cl.q.value != (q_val + beta) % P:  # the eq weights sum to 1 over all slots
            raise VerificationError("lookup: denominators do not match the operand values")
        lhs = (lhs + cl.numerator * pow(cl.denominator, -1, P)) % P
    t.absorb_scalars(LABEL_OPERANDS, [v for vals in proof.operands for v in vals])

    tcl = tree_claims[-1]
    if tcl.q.value != (evaluate(tables.compressed(alpha), tcl.q.point) + beta) % P:
        raise VerificationError("lookup: table denominators do not match the public tables")
    if lhs * tcl.denominator % P != tcl.numerator:
        raise VerificationError("lookup: the looked-up values are not all in their tables")
    return LookupClaims(tuple(in_claims), tuple(out_claims), tcl.p)
