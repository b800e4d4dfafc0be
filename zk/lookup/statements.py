"""Zero-knowledge statements about committed integer tensors, built on the lookup
(:mod:`zk.lookup.logup`): membership, range, rounding, clipping.

Each statement is a protocol step over a :class:`~zk.protocol.context.Context` (so a larger
proof can include it) and a self-contained proof (:class:`StatementProof`) about Hyrax
commitments. The looked-up tensors are the caller's commitments; the proof commits the
multiplicities (and any helper tensor) itself and opens every tensor at the lookup's point in
zero knowledge, so nothing about the values is revealed. A tensor of n entries is zero-padded to
2^num_vars; only its first n entries are looked up (ind is the indicator of those n).

* :func:`range_check`: lo <= x_i < hi. Spans up to 2^limb_bits use one range table; wider spans
  commit a_i = x_i - lo and b_i = hi - 1 - x_i in limb_bits-bit limbs, all looked up in
  [0, 2^limb_bits), with X~ - lo ind~ = sum_k 2^(B k) A_k~ and (hi - 1) ind~ - X~ =
  sum_k 2^(B k) B_k~ at the lookup point (a, b >= 0 and below 2^(B l) << r/2 imply the range).
* :func:`rounding`: Y = floor((X + 2^(k-1)) / 2^k) (round to nearest, ties up, as in the
  integer reference): the remainder R = X + 2^(k-1) - 2^k Y is committed, R in [0, 2^k) and Y
  in its declared range [y_lo, y_hi) are looked up (so no field wrap-around can fake a
  quotient), and X~ + 2^(k-1) ind~ = 2^k Y~ + R~ holds at the lookup point by construction.
* :func:`clip`: Y = clip(X, lo, hi) as a function-table lookup over X's domain [x_lo, x_hi).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from zk.claims import ComClaim
from zk.commit import hyrax
from zk.encoding import Writer, decode_envelope, encode_envelope
from zk.errors import ProverError, VerificationError
from zk.field import Fr
from zk.lookup import logup
from zk.lookup.tables import (
    MAX_TABLE,
    Column,
    LookupTable,
    Selector,
    TableSet,
    indicator_mle,
)
from zk.multilinear import P, evaluate
from zk.protocol.context import Com, Context, Stream, one_thread
from zk.transcript import Transcript

__all__ = [
    "Committed", "StatementProof", "membership", "range_check", "rounding", "clip",
    "round_shift", "clip_table", "prove_range", "verify_range", "prove_rounding",
    "verify_rounding", "prove_clip", "verify_clip",
]

L_STATEMENT = b"tlookup/statement"
L_VALUES = b"tlookup/values"
MAX_DIRECT_SPAN = 1 << 16


@dataclass
class Committed:
    """A committed integer tensor inside a protocol: the tensor (shape, rows, witness), its
    number n of real entries and, for the prover, its zero-padded int64 values."""

    tensor: hyrax.Tensor
    n: int
    values: np.ndarray | None = None

    @property
    def size(self) -> int:
        return 1 << self.tensor.num_vars

    def evaluate(self, point: Sequence[int]) -> int:
        return evaluate(Fr.from_signed(self.values), list(point))


def _padded(x: np.ndarray, size: int) -> np.ndarray:
    out = np.zeros(size, dtype=np.int64)
    flat = np.asarray(x, dtype=np.int64).reshape(-1)
    out[: flat.size] = flat
    return out


def _commit_helper(ctx: Context, values: np.ndarray | None, n: int, num_vars: int) -> Committed:
    """A helper tensor committed inside the proof (limbs, remainders)."""
    b = num_vars // 2
    t = hyrax.commit_in(ctx, num_vars, b,
                        (lambda: hyrax.commit(values, log_cols=b, rng=ctx.rng))
                        if ctx.proving else None)
    return Committed(t, n, values)


def membership(ctx: Context, tables: TableSet, looked: Sequence[tuple[int, Committed,
                                                                     Committed | None]]
               ) -> list[tuple[Com, Com | None]]:
    """Every one of the first n entries of each (table, X, Y) is a row of its table; opens the
    tensors at the lookup point and returns the commitments to X~, Y~ there."""
    cols = []
    for table, x, y in looked:
        sel = Selector.first(x.n, x.size)
        cols.append(Column(table, sel, x.values if ctx.proving else None,
                           (y.values if y is not None and ctx.proving else None)))
    end = logup.run(ctx, tables, cols)
    xs, ys = [], []
    for (table, x, y), pt in zip(looked, end.column_points):
        vals = ctx.commit(L_VALUES, 1 if y is None else 2,
                          lambda x=x, y=y, pt=pt: [x.evaluate(pt)]
                          + ([] if y is None else [y.evaluate(pt)]))
        xs.append(vals[0])
        ys.append(None if y is None else vals[1])
    end.bind(xs, ys)
    for (table, x, y), pt, cx, cy in zip(looked, end.column_points, xs, ys):
        hyrax.open(ctx, x.tensor, [ComClaim(pt, cx)])
        if y is not None:
            hyrax.open(ctx, y.tensor, [ComClaim(pt, cy)])
    return list(zip(xs, ys))


def _limb_count(span: int, bits: int) -> int:
    return max(1, -(-(span - 1).bit_length() // bits))


def range_check(ctx: Context, x: Committed, lo: int, hi: int, limb_bits: int = 16) -> None:
    """lo <= x_i < hi for the first n entries of x (see the module docstring)."""
    if not lo < hi or hi - lo >= 1 << 120:
        raise ValueError("a range needs lo < hi and a span below 2^120")
    if not 1 <= limb_bits <= 22:
        raise ValueError("limbs of 1 to 22 bits")
    ctx.t.absorb_scalars(L_STATEMENT, [x.n, lo % P, hi % P, limb_bits])
    if ctx.proving:
        real = x.values[: x.n]
        bad = (real < lo) | (real >= hi)
        if bad.any():
            i = int(np.argmax(bad))
            raise ProverError(f"entry {i} = {int(real[i])} is outside [{lo}, {hi})")
    if hi - lo <= 1 << limb_bits:
        membership(ctx, TableSet([LookupTable.range(lo, hi)]), [(0, x, None)])
        return
    count = _limb_count(hi - lo, limb_bits)
    mask = (1 << limb_bits) - 1
    limbs: list[Committed] = []
    for side in range(2):
        for k in range(count):
            vals = None
            if ctx.proving:
                real = x.values[: x.n]
                a = (real - lo) if side == 0 else (hi - 1 - real)
                vals = _padded((a >> (limb_bits * k)) & mask, x.size)
            limbs.append(_commit_helper(ctx, vals, x.n, x.tensor.num_vars))
    table = TableSet([LookupTable.range(0, 1 << limb_bits)])
    cols = [Column(0, Selector.first(x.n, x.size), v.values if ctx.proving else None)
            for v in limbs]
    end = logup.run(ctx, table, cols)
    z = end.column_points[0]
    coms = ctx.commit(L_VALUES, len(limbs), lambda: [v.evaluate(z) for v in limbs])
    end.bind(coms, [None] * len(coms))
    for v, c in zip(limbs, coms):
        hyrax.open(ctx, v.tensor, [ComClaim(z, c)])
    ind = indicator_mle(x.n, z)
    lower = sum((c * (1 << (limb_bits * k)) for k, c in enumerate(coms[:count])),
                ctx.public(0))
    upper = sum((c * (1 << (limb_bits * k)) for k, c in enumerate(coms[count:])),
                ctx.public(0))
    x_com = lower + lo * ind
    ctx.equal(x_com + upper, (hi - 1) * ind % P, "range: the two limb decompositions disagree")
    hyrax.open(ctx, x.tensor, [ComClaim(z, x_com)])


def round_shift(x: np.ndarray, k: int) -> np.ndarray:
    """floor((x + 2^(k-1)) / 2^k): round to nearest, ties towards +infinity (x for k = 0)."""
    x = np.asarray(x, dtype=np.int64)
    return x if k == 0 else (x + (1 << (k - 1))) >> k


def rounding(ctx: Context, x: Committed, y: Committed, k: int, y_lo: int, y_hi: int) -> None:
    """Y = round_shift(X, k) with Y in [y_lo, y_hi) for the first n entries."""
    if not 1 <= k <= 22:
        raise ValueError("rounding shifts of 1 to 22 bits are supported")
    if not y_lo < y_hi or y_hi - y_lo > MAX_TABLE:
        raise ValueError("output range must have 1 to 2^22 values")
    if x.n != y.n or x.tensor.num_vars != y.tensor.num_vars:
        raise ValueError("X and Y must have one shape")
    ctx.t.absorb_scalars(L_STATEMENT, [x.n, k, y_lo % P, y_hi % P])
    rem = None
    if ctx.proving:
        xr, yr = x.values[: x.n], y.values[: y.n]
        if not np.array_equal(yr, round_shift(xr, k)):
            raise ProverError("Y is not round_shift(X, k)")
        if (yr < y_lo).any() or (yr >= y_hi).any():
            raise ProverError(f"rounded values leave the declared range [{y_lo}, {y_hi})")
        rem = _padded(xr + (1 << (k - 1)) - (yr << k), x.size)
    r = _commit_helper(ctx, rem, x.n, x.tensor.num_vars)
    tables = TableSet([LookupTable.range(0, 1 << k), LookupTable.range(y_lo, y_hi)])
    sel = Selector.first(x.n, x.size)
    cols = [Column(0, sel, r.values if ctx.proving else None),
            Column(1, sel, y.values if ctx.proving else None)]
    end = logup.run(ctx, tables, cols)
    z = end.column_points[0]
    cr, cy = ctx.commit(L_VALUES, 2, lambda: [r.evaluate(z), y.evaluate(z)])
    end.bind([cr, cy], [None, None])
    cx = cy * (1 << k) + cr - (1 << (k - 1)) * indicator_mle(x.n, z)
    hyrax.open(ctx, r.tensor, [ComClaim(z, cr)])
    hyrax.open(ctx, y.tensor, [ComClaim(z, cy)])
    hyrax.open(ctx, x.tensor, [ComClaim(z, cx)])


def clip_table(x_lo: int, x_hi: int, lo: int, hi: int) -> LookupTable:
    """The function table x -> clip(x, lo, hi) over x in [x_lo, x_hi)."""
    xs = np.arange(x_lo, x_hi, dtype=np.int64)
    return LookupTable.function(x_lo, np.clip(xs, lo, hi), name=f"clip[{lo},{hi}]")


def clip(ctx: Context, x: Committed, y: Committed, x_lo: int, x_hi: int, lo: int,
         hi: int) -> None:
    """Y = clip(X, lo, hi) for X in [x_lo, x_hi), first n entries."""
    ctx.t.absorb_scalars(L_STATEMENT, [x.n, x_lo % P, x_hi % P, lo % P, hi % P])
    membership(ctx, TableSet([clip_table(x_lo, x_hi, lo, hi)]), [(0, x, y)])


# ---------------------------------------------------------------- self-contained proofs


@dataclass(frozen=True)
class StatementProof:
    """A self-contained zero-knowledge proof of one statement about committed tensors."""

    KIND: ClassVar[str] = "tlookup-proof"
    VERSION: ClassVar[int] = 3  # 3: a fraction layer closes with one proof of a product sum

    statement: str
    stream: Stream

    def to_bytes(self) -> bytes:
        w = Writer()
        w.text(self.statement)
        self.stream.write(w)
        return encode_envelope(self.KIND, self.VERSION, w.getvalue())

    @classmethod
    def from_bytes(cls, data: bytes) -> "StatementProof":
        _, r = decode_envelope(data, cls.KIND, (cls.VERSION,))
        name = r.text(64)
        stream = Stream.read(r)
        r.finish()
        return cls(name, stream)

    @property
    def size(self) -> int:
        return self.stream.size


def _transcript(name: str) -> Transcript:
    return Transcript(b"zkfhe/tlookup/" + name.encode() + b"/v2")


def _run(name: str, body, rng) -> StatementProof:
    ctx = Context.prover(_transcript(name), rng)
    body(ctx)
    ctx.finish()
    return StatementProof(name, ctx.stream())


def _check(name: str, proof: StatementProof, body) -> None:
    if proof.statement != name:
        raise VerificationError(f"a proof of {proof.statement!r}, expected {name!r}")
    try:
        with one_thread():
            ctx = Context.verifier(_transcript(name), proof.stream)
            body(ctx)
            ctx.finish()
    except VerificationError:
        raise
    except (ValueError, ArithmeticError) as e:
        raise VerificationError(f"{name}: {e}") from e


def _bound(ctx: Context, com: hyrax.HyraxCommitment, wit: hyrax.HyraxWitness | None, n: int,
           values: np.ndarray | None) -> Committed:
    if not 1 <= n <= 1 << com.num_vars:
        raise ValueError(f"a tensor of {1 << com.num_vars} entries cannot hold {n}")
    t = hyrax.bind(ctx, com, wit)
    return Committed(t, n, None if values is None else _padded(values, 1 << com.num_vars))


def prove_range(x: np.ndarray, com: hyrax.HyraxCommitment, wit: hyrax.HyraxWitness, lo: int,
                hi: int, limb_bits: int = 16, rng=None) -> StatementProof:
    """Prove lo <= x_i < hi for the committed x (its n = x.size entries)."""
    x = np.asarray(x, dtype=np.int64).reshape(-1)
    return _run("range", lambda ctx: range_check(ctx, _bound(ctx, com, wit, x.size, x), lo, hi,
                                                 limb_bits), rng)


def verify_range(com: hyrax.HyraxCommitment, n: int, lo: int, hi: int, proof: StatementProof,
                 limb_bits: int = 16) -> None:
    """Check a range proof on the first n entries of the committed tensor."""
    _check("range", proof, lambda ctx: range_check(ctx, _bound(ctx, com, None, n, None), lo, hi,
                                                   limb_bits))


def prove_rounding(x: np.ndarray, xc: hyrax.HyraxCommitment, xw: hyrax.HyraxWitness,
                   y: np.ndarray, yc: hyrax.HyraxCommitment, yw: hyrax.HyraxWitness, k: int,
                   y_lo: int, y_hi: int, rng=None) -> StatementProof:
    """Prove Y = round_shift(X, k), Y in [y_lo, y_hi), for committed X and Y."""
    x = np.asarray(x, dtype=np.int64).reshape(-1)
    y = np.asarray(y, dtype=np.int64).reshape(-1)
    return _run("rounding", lambda ctx: rounding(
        ctx, _bound(ctx, xc, xw, x.size, x), _bound(ctx, yc, yw, y.size, y), k, y_lo, y_hi), rng)


def verify_rounding(xc: hyrax.HyraxCommitment, yc: hyrax.HyraxCommitment, n: int, k: int,
                    y_lo: int, y_hi: int, proof: StatementProof) -> None:
    _check("rounding", proof, lambda ctx: rounding(
        ctx, _bound(ctx, xc, None, n, None), _bound(ctx, yc, None, n, None), k, y_lo, y_hi))


def prove_clip(x: np.ndarray, xc: hyrax.HyraxCommitment, xw: hyrax.HyraxWitness,
               y: np.ndarray, yc: hyrax.HyraxCommitment, yw: hyrax.HyraxWitness,
               x_lo: int, x_hi: int, lo: int, hi: int, rng=None) -> StatementProof:
    """Prove Y = clip(X, lo, hi) for committed X in [x_lo, x_hi) and Y."""
    x = np.asarray(x, dtype=np.int64).reshape(-1)
    y = np.asarray(y, dtype=np.int64).reshape(-1)
    return _run("clip", lambda ctx: clip(
        ctx, _bound(ctx, xc, xw, x.size, x), _bound(ctx, yc, yw, y.size, y), x_lo, x_hi, lo,
        hi), rng)


def verify_clip(xc: hyrax.HyraxCommitment, yc: hyrax.HyraxCommitment, n: int, x_lo: int,
                x_hi: int, lo: int, hi: int, proof: StatementProof) -> None:
    _check("clip", proof, lambda ctx: clip(
        ctx, _bound(ctx, xc, None, n, None), _bound(ctx, yc, None, n, None), x_lo, x_hi, lo,
        hi))
