"""Reductions of product statements to committed claims on the operands, by zero-knowledge
sumcheck (:mod:`zk.protocol.sumcheck`), each closed with one proof of product.

* Inner product:  sum_x A(x) B(x) = v            ->  A~(r) = a, B~(r) = b.
* Hadamard:       C = A o B, claim C~(u) = v     ->  A~(r) = a, B~(r) = b,
  via sum_x eq(u, x) A(x) B(x) = v.
* Matrix product (Thaler, "Time-optimal interactive proofs for circuit evaluation", 2013):
  C = A B with A of 2^a x 2^k, B of 2^k x 2^b, claim C~(u_col, u_row) = v  ->
  A~(r, u_row) = a and B~(u_col, r) = b, via sum_{x in {0,1}^k} A~(x, u_row) B~(u_col, x) = v.

Claims in and out are :class:`~zk.protocol.context.ComClaim` (the value stays committed); the
caller discharges the operand claims. Matrices are row-major with low variables indexing
columns (see :mod:`zk.multilinear`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from zk.claims import ComClaim
from zk.errors import ProverError
from zk.multilinear import fold_cols, fold_rows, num_vars
from zk.protocol import sigma
from zk.protocol import sumcheck as zs
from zk.protocol.context import Com, Context

__all__ = ["MatmulShape", "inner", "hadamard", "matmul"]

L_MATMUL = b"products/matmul"


def _two(ctx: Context, claim: Com, m: int, eq_point, tables) -> tuple[tuple[int, ...], Com, Com]:
    end = zs.run(ctx, claim, m, 2, hidden=[0, 1], eq_point=eq_point, tables=tables,
                 num_factors=2)
    a, b = end.values
    end.close(sigma.product(ctx, a, b))
    return end.point, a, b


def inner(ctx: Context, claim: Com, m: int,
          a: np.ndarray | None = None, b: np.ndarray | None = None
          ) -> tuple[ComClaim, ComClaim]:
    """sum_x a(x) b(x) = (value of claim) over m variables; returns the claims on a and b.
    The prover passes the Fr vectors a, b."""
    point, ca, cb = _two(ctx, claim, m, None, (lambda: [a, b]) if ctx.proving else None)
    return ComClaim(point, ca), ComClaim(point, cb)


def hadamard(ctx: Context, claim: ComClaim,
             a: np.ndarray | None = None, b: np.ndarray | None = None
             ) -> tuple[ComClaim, ComClaim]:
    """claim holds for c = a o b; returns the claims on a and b (same point)."""
    point, ca, cb = _two(ctx, claim.com, len(claim.point), claim.point,
                         (lambda: [a, b]) if ctx.proving else None)
    return ComClaim(point, ca), ComClaim(point, cb)


@dataclass(frozen=True)
class MatmulShape:
    """C (rows x cols) = A (rows x inner) B (inner x cols); every dimension a power of two."""

    rows: int
    inner: int
    cols: int

    def __post_init__(self) -> None:
        for n in (self.rows, self.inner, self.cols):
            num_vars(n)

    @property
    def vars(self) -> tuple[int, int, int]:
        return num_vars(self.rows), num_vars(self.inner), num_vars(self.cols)


def _split(shape: MatmulShape, point: Sequence[int]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    a, _, b = shape.vars
    if len(point) != a + b:
        raise ValueError("claim point does not match the product's shape")
    return tuple(point[:b]), tuple(point[b:])


def matmul(ctx: Context, shape: MatmulShape, claim: ComClaim,
           a: np.ndarray | None = None, b: np.ndarray | None = None
           ) -> tuple[ComClaim, ComClaim]:
    """Reduce a claim on C = A B (the prover passes A, B as row-major Fr vectors) to claims on
    A and on B."""
    u_col, u_row = _split(shape, claim.point)
    ctx.t.absorb_scalars(L_MATMUL, [shape.rows, shape.inner, shape.cols])

    def tables() -> list[np.ndarray]:
        if a.shape[0] != shape.rows * shape.inner or b.shape[0] != shape.inner * shape.cols:
            raise ProverError("matrix sizes do not match the shape")
        return [fold_rows(a, shape.rows, shape.inner, list(u_row)),   # x -> A~(x, u_row)
                fold_cols(b, shape.inner, shape.cols, list(u_col))]   # x -> B~(u_col, x)

    r, ca, cb = _two(ctx, claim.com, shape.vars[1], None, tables if ctx.proving else None)
    return ComClaim(r + u_row, ca), ComClaim(u_col + r, cb)
