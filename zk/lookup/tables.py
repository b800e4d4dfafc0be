"""Public lookup tables, selectors of looked-up entries, and the union of several tables.

A :class:`LookupTable` is a range [lo, hi) or a function x -> f(x) on [offset, offset + size).
Several tables are laid end to end into one union table (:class:`TableSet`) whose row j is
(t, x_j, f(x_j)) (f = 0 for ranges), zero-padded to a power of two; with a challenge alpha a row
compresses to w = t + alpha x + alpha^2 f(x). A :class:`Column` is what a lookup checks: a table
index, a :class:`Selector` (which entries of the zero-padded column are looked up: a prefix or
a public 0/1 mask) and, on the prover's side, the values X (and Y for a function table).
"""

from __future__ import annotations

import hashlib

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from zk.errors import ProverError
from zk.field import Fr
from zk.multilinear import P, eq_eval, evaluate, evaluate_small, next_pow2, num_vars
from zk.transcript import Transcript

__all__ = ["LookupTable", "Selector", "Column", "TableSet", "indicator_mle", "multiplicities",
           "MAX_TABLE"]

LABEL_TABLE = b"lookup/table"
MAX_TABLE = 1 << 22


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
            out = np.array(self.outputs, dtype=np.int64)  # a private copy, read-only: the
            if out.shape != (self.size,):                  # cached digest stays its digest
                raise ValueError("a function table needs one output per input")
            out.setflags(write=False)
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
        return [int(v) % P for v in self.describe_array()]

    def digest(self) -> bytes:
        """SHA3-256 of :meth:`describe_array` (little-endian int64), computed once per table
        object (a model's tables are built once per commitment: a verifier does not hash a
        2^21-row table on every proof)."""
        d = self.__dict__.get("_digest")
        if d is None:
            d = hashlib.sha3_256(np.asarray(self.describe_array(), dtype="<i8").tobytes()).digest()
            object.__setattr__(self, "_digest", d)
        return d

    def runs(self) -> tuple[np.ndarray, np.ndarray]:
        """(starts, values) of the outputs' constant runs (computed once)."""
        r = self.__dict__.get("_runs")
        if r is None:
            starts = np.flatnonzero(np.r_[True, self.outputs[1:] != self.outputs[:-1]])
            r = (starts, self.outputs[starts])
            object.__setattr__(self, "_runs", r)
        return r

    def outputs_mle(self, off: int, point: Sequence[int]) -> int:
        """sum_j eq(point, off + j) outputs[j]: the outputs placed at row ``off`` of a union
        of 2^len(point) rows (by constant runs when they are few, else block by block)."""
        n = len(point)
        starts, vals = self.runs()
        acc = 0
        if starts.size * n < self.size // 16:
            ends = np.r_[starts[1:], self.size]
            for a, b, v in zip(starts.tolist(), ends.tolist(), vals.tolist()):
                if v:
                    acc += v * _interval_mle(off + a, off + b, point)
            return acc % P
        for start, s in _dyadic(off, off + self.size, n):
            seg = self.outputs[start - off:start - off + (1 << s)]
            acc += _eq_high(point, start, s) * evaluate_small(seg, point[:s])
        return acc % P

    def describe_array(self) -> np.ndarray:
        """:meth:`describe` as signed int64 (the same field elements, without Python ints)."""
        head = np.array([self.offset, self.size, int(self.is_function)], dtype=np.int64)
        return head if self.outputs is None else np.concatenate([head, self.outputs])


@dataclass(frozen=True, eq=False)
class Selector:
    """Which entries of a padded column are looked up: the first ``prefix`` entries, the
    entries where a public 0/1 ``mask`` is 1, or the entries of a tensor product of 0/1
    ``factors`` (each a power-of-two vector, the lowest variables' first: a grid's real-entry
    indicator, a causal mask times it; described and evaluated factor by factor, never as a
    vector of the column's size). ``size`` is the padded length (a power of two)."""

    size: int
    prefix: int | None = None
    mask: np.ndarray | None = None
    factors: tuple[np.ndarray, ...] | None = None

    def __post_init__(self) -> None:
        num_vars(self.size)
        if sum(x is not None for x in (self.prefix, self.mask, self.factors)) != 1:
            raise ValueError("a selector is a prefix, a mask or a product of factors")
        if self.factors is not None:
            fs = tuple(np.ascontiguousarray(f, dtype=np.int64).reshape(-1)
                       for f in self.factors)
            if not fs or any(f.size & (f.size - 1) or ((f != 0) & (f != 1)).any() for f in fs) \
                    or int(np.prod([f.size for f in fs], dtype=np.int64)) != self.size:
                raise ValueError("selector factors are 0/1 vectors of power-of-two lengths "
                                 "whose product is the padded size")
            object.__setattr__(self, "factors", fs)
        elif self.mask is not None:
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
        if self.factors is not None:
            v = np.ones(1, dtype=np.int64)
            for f in self.factors:  # the lowest variables' factor innermost
                v = np.kron(f, v)
            return v
        v = np.zeros(self.size, dtype=np.int64)
        v[: self.prefix] = 1
        return v

    def mle(self, point: Sequence[int]) -> int:
        if self.mask is not None:
            fr = self.__dict__.get("_mask_fr")
            if fr is None:  # a verifier evaluates one mask at several points
                fr = Fr.from_signed(self.mask)
                object.__setattr__(self, "_mask_fr", fr)
                object.__setattr__(self, "_mle_at", {})
            key = tuple(int(x) for x in point)
            memo = self.__dict__["_mle_at"]
            if key not in memo:  # columns sharing one selector share the point too
                memo[key] = evaluate(fr, point)
            return memo[key]
        if self.factors is not None:
            acc, k = 1, 0
            for f in self.factors:
                n = f.size.bit_length() - 1
                acc = acc * evaluate(Fr.from_signed(f), list(point[k:k + n])) % P
                k += n
            return acc
        return indicator_mle(self.prefix, point)

    def describe(self) -> list[int]:
        return self.describe_array().tolist()

    def digest(self) -> bytes:
        """SHA3-256 of :meth:`describe_array` (little-endian int64), computed once: columns
        sharing a selector (one space's columns) hash its mask once."""
        d = self.__dict__.get("_digest")
        if d is None:
            d = hashlib.sha3_256(self.describe_array().astype("<i8").tobytes()).digest()
            object.__setattr__(self, "_digest", d)
        return d

    def describe_array(self) -> np.ndarray:
        """The selector as int64: size, kind, then the mask, the prefix length, or the number
        of factors, their lengths and their entries."""
        if self.mask is not None:
            return np.concatenate([np.array([self.size, 1], dtype=np.int64), self.mask])
        if self.factors is not None:
            return np.concatenate([np.array([self.size, 2, len(self.factors)]
                                            + [f.size for f in self.factors], dtype=np.int64),
                                   *self.factors])
        return np.array([self.size, 0, self.prefix], dtype=np.int64)


def _dyadic(lo: int, hi: int, n: int):
    """The aligned blocks (start, log size) that tile [lo, hi) inside [0, 2^n), fewest first."""
    while lo < hi:
        s = (lo & -lo).bit_length() - 1 if lo else n
        while lo + (1 << s) > hi:
            s -= 1
        yield lo, s
        lo += 1 << s


def _eq_high(point: Sequence[int], start: int, s: int) -> int:
    """eq(point[s:], bits(start >> s)): the indicator MLE of the aligned block at start."""
    return eq_eval(point[s:], [(start >> b) & 1 for b in range(s, len(point))])


def _interval_mle(lo: int, hi: int, point: Sequence[int], a: int = 1, slope: int = 0) -> int:
    """sum over i in [lo, hi) of eq(point, i) (a + slope i), in O(len(point)^2)."""
    acc = 0
    for start, s in _dyadic(lo, hi, len(point)):
        # over the block, i = start + j: sum_j eq(low, j) (a + slope (start + j)) =
        # a + slope start + slope sum_(b < s) 2^b low_b
        lin = sum((1 << b) * point[b] for b in range(s))
        acc += _eq_high(point, start, s) * ((a + slope * start + slope * lin) % P)
    return acc % P


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
            t.absorb_bytes(LABEL_TABLE, table.digest())

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


    def compressed_mle(self, alpha: int, point: Sequence[int]) -> int:
        """w_T~(point) = tag~ + alpha x~ + alpha^2 f~ at ``point`` (the verifier's value, never
        the union's vectors): each table's rows split into aligned power-of-two blocks, where
        the tag is a constant, x an affine function of the index (its MLE linear in the point)
        and f either constant runs (a step table like MODE: a few runs for 2^21 rows) or the
        table's own outputs (one integer MLE a block: O(rows of the table))."""
        point = [int(u) % P for u in point]
        if len(point) != num_vars(self.padded):
            raise ValueError(f"a union of {self.padded} rows has no point of {len(point)} "
                             "coordinates")
        tag = xs = ys = 0
        for k, (table, off) in enumerate(zip(self.tables, self.offsets)):
            end = off + table.size
            if k:
                tag += k * _interval_mle(off, end, point)
            xs += _interval_mle(off, end, point, table.offset - off, 1)
            if table.outputs is not None:
                ys += table.outputs_mle(off, point)
        return (tag + alpha * (xs % P) + alpha * alpha % P * (ys % P)) % P


def _compress(tag, xs, ys, alpha: int) -> np.ndarray:
    w = Fr.axpy(alpha, Fr.from_signed(xs), Fr.from_signed(tag))
    if ys is not None:
        w = Fr.axpy(alpha * alpha % P, Fr.from_signed(ys), w)
    return w


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
