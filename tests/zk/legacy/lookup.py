"""The retired, NON-zero-knowledge protocol (plain lookup), kept only as a baseline for the leak,
extraction and benchmark comparisons (issue 10). Never used by the product: it sends sumcheck
messages and opened values in the clear, which give away the weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from legacy import fractions
from legacy.claims import Claim
from zk.encoding import Reader, Writer
from zk.errors import ProverError, VerificationError
from zk.field import Fr
from zk.lookup.tables import (  # noqa: F401
    Column,
    LookupTable,
    Selector,
    TableSet,
    _compress,
    indicator_mle,
    multiplicities,
)
from zk.multilinear import P, eq_eval, evaluate, next_pow2, num_vars
from zk.transcript import Transcript

LABEL_TABLE = b"lookup/table"
LABEL_COLUMNS = b"lookup/columns"
LABEL_ALPHA = b"lookup/alpha"
LABEL_BETA = b"lookup/beta"
LABEL_OPERANDS = b"lookup/operands"

MAX_TABLE = 1 << 22


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
