"""Zero-knowledge sumcheck, commit-and-prove (Hyrax, Wahby et al. S&P 2018, section 4;
Spartan's ``ZKSumcheckInstanceProof``), with Gruen's factoring of the eq polynomial.

Statement: for multilinear tables f_1..f_k in m variables, an optional point u, a sum of
products h = sum_s c_s prod_{i in T_s} f_i (default: the product of all factors) and a committed
claim C,

    sum_{x in {0,1}^m} eq(u, x) h(x) = the value committed in C.

Round j binds x_j (lowest variable first). The prover commits the D + 1 values H_j(0..D) of
the round polynomial with eq taken out (Gruen: g_j(t) = c_j eq(u_j, t) H_j(t); without u,
H_j = g_j), D = max |T_s|, as ONE Pedersen vector commitment on fresh generator slots, absorbs
it and draws r_j. Nothing about H_j is sent in the clear. The verifier's checks become linear
relations on committed values, with (w0, w1) = (1 - u_j, u_j) (or (1, 1) without u):

    w0 H_0(0) + w1 H_0(1)     = claim
    w0 H_j(0) + w1 H_j(1)     = H_{j-1}(r_{j-1})        (j = 1..m-1)
    H_{m-1}(r_{m-1})          = h(r),  r = (r_0, ..., r_{m-1})

(eq(u, r) cancels: it is a common factor of both sides of every round check.) The relations go
to the context, which proves all of them with one dot-product proof (see
:mod:`zk.protocol.context`). At the end the factors listed as hidden have their values f_i(r)
committed; public factors (eq tables, masks, tables, public inputs) are evaluated by both sides.
The caller computes a commitment to h(r) from them (products need proofs of product) and closes
the sumcheck with :meth:`End.close`, which records the last relation; a sumcheck left open makes
``Context.finish`` fail. Soundness error per round (D + 1) / r, as for the plain protocol.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from gpu import poly as K
from zk.errors import ProverError
from zk.field import Fr
from zk.multilinear import P, eq_table, lagrange_basis
from zk.protocol.context import Com, Context

__all__ = ["Terms", "End", "run", "combine", "degree_of_terms", "lagrange_basis",
           "eq_weights", "kernel_terms", "MAX_DEGREE"]

L_STATEMENT = b"zksumcheck/statement"
L_ROUND = b"zksumcheck/round"
L_CHALLENGE = b"zksumcheck/challenge"
L_FINAL = b"zksumcheck/final"

MAX_DEGREE = 8

Terms = Sequence[tuple[int, Sequence[int]]]
"""A sum of products: (coefficient, factor indices) pairs."""

_NO_WEIGHTS = np.zeros((0, 4), dtype=np.uint64)


def combine(terms: Terms | None, values: Sequence[int]) -> int:
    """sum_s c_s prod_{i in T_s} values[i] (the product of all values when terms is None)."""
    if terms is None:
        terms = [(1, range(len(values)))]
    total = 0
    for coeff, idx in terms:
        prod = coeff
        for i in idx:
            prod = prod * values[i] % P
        total += prod
    return total % P


def degree_of_terms(terms: Terms) -> int:
    """D = the largest number of factors in one term."""
    return max(len(idx) for _, idx in terms)


def eq_weights(eq_point: Sequence[int] | None, m: int) -> list[np.ndarray]:
    """weights[j] = eq(u_{>j}, .) over the variables still free after round j; each is the
    previous one with its lowest variable summed out (eq sums to 1 over a variable)."""
    if eq_point is None:
        return [_NO_WEIGHTS] * m
    weights = [eq_table(eq_point[1:])]
    for _ in range(1, m):
        prev = weights[-1]
        nxt = np.empty((prev.shape[0] // 2, 4), dtype=np.uint64)
        K.pair_sums(Fr.desc, prev, nxt)
        weights.append(nxt)
    return weights


def kernel_terms(terms: Terms) -> tuple[np.ndarray, np.ndarray]:
    """Terms as the round kernels take them: an index matrix padded with -1, and coefficients."""
    idx = np.full((len(terms), degree_of_terms(terms)), -1, dtype=np.int64)
    for s, (_, t) in enumerate(terms):
        idx[s, : len(t)] = list(t)
    return idx, Fr.from_ints([c for c, _ in terms])


@dataclass
class End:
    """Where a sumcheck leaves its caller: the point r, the commitments to the hidden factors'
    values f_i(r) (None for public factors) and, for the prover, every factor's value."""

    point: tuple[int, ...]
    values: list[Com | None]
    clear: list[int] | None  # prover only: all factor values at r
    _ctx: Context = field(repr=False)
    _last: tuple[int, list[int]] | None = field(repr=False)  # (offset, Lagrange weights)
    _claim: Com | None = field(repr=False)
    _ticket: int = field(repr=False)

    def close(self, h: Com) -> None:
        """Record the last relation: h (a commitment to h(r), from the factor values) is the
        last round polynomial at r_{m-1} (or the claim itself when m = 0)."""
        if self._last is None:
            self._ctx.equal(self._claim, h, "sumcheck: the claimed sum is false")
        else:
            off, lag = self._last
            self._ctx.relate([(off, lag)], h)
        self._ctx.discharge(self._ticket)

    def close_terms(self, terms: Terms | None, public: Sequence[int | None]) -> None:
        """Close with h = sum_s c_s prod T_s when every term has at most one hidden factor
        (no product proofs needed); ``public`` gives the public factors' values (None where
        hidden)."""
        vals: list = []
        for i, v in enumerate(self.values):
            vals.append(v if v is not None else public[i])
        if terms is None:
            terms = [(1, range(len(vals)))]
        acc = None
        for coeff, idx in terms:
            hidden = [vals[i] for i in idx if isinstance(vals[i], Com)]
            if len(hidden) > 1:
                raise ValueError("a term with several hidden factors needs proofs of product")
            c = coeff % P
            for i in idx:
                if not isinstance(vals[i], Com):
                    c = c * (vals[i] % P) % P
            term = hidden[0] * c if hidden else self._ctx.public(c)
            acc = term if acc is None else acc + term
        self.close(acc)


def run(ctx: Context, claim: Com, num_vars_: int, degree: int, hidden: Sequence[int], *,
        eq_point: Sequence[int] | None = None, terms: Terms | None = None,
        tables: Callable[[], Sequence[np.ndarray]] | None = None, num_factors: int) -> End:
    """Run the zero-knowledge sumcheck of the module docstring on ``ctx``.

    ``hidden`` lists the factors whose final values are committed (the rest are public and
    evaluated by the caller). The prover passes ``tables()`` returning the num_factors Fr
    vectors of length 2^num_vars_; the verifier passes None. Shapes (variables, degree,
    terms, eq point) come from the statement on both sides, never from the proof.
    """
    m = num_vars_
    if terms is None:
        terms = [(1, tuple(range(num_factors)))]
    d = degree_of_terms(terms)
    if d != degree or d > MAX_DEGREE:
        raise ValueError(f"terms of degree {d}, statement degree {degree} (max {MAX_DEGREE})")
    if eq_point is not None and len(eq_point) != m:
        raise ValueError("eq point of the wrong dimension")
    ctx.t.absorb_scalars(L_STATEMENT, [m, degree, num_factors, int(eq_point is not None)]
                         + ([] if eq_point is None else [int(u) % P for u in eq_point]))
    ticket = ctx.obligation("an open sumcheck")
    f = None
    if ctx.proving:
        f = _prover_tables(tables, m, num_factors, terms)
    if m == 0:
        clear = [Fr.scalar_to_int(tuple(t[0])) for t in f] if ctx.proving else None
        vals = _finals(ctx, hidden, num_factors, clear)
        return End((), vals, clear, ctx, None, claim, ticket)

    weights = eq_weights(eq_point, m) if ctx.proving else None
    kterms, kcoeffs = kernel_terms(terms) if ctx.proving else (None, None)
    # the prover's kernels skip t = 1: the round polynomial there follows from the round's
    # claim (w0 s(0) + w1 s(1) = claim), known in the clear (a false claim still fails, at the
    # end)
    skip = eq_point is None or all(int(u) % P for u in eq_point)
    sums = K.round_sums(Fr.desc, f, degree, kterms, kcoeffs, weights[0],
                        skip) if ctx.proving else None
    current = (claim.v if isinstance(claim, Com) else int(claim) % P) if ctx.proving else None
    point: list[int] = []
    prev: tuple[int, list[int]] | None = None
    for j in range(m):
        evals = None
        if ctx.proving:
            evals = Fr.to_ints(sums)
            if skip:
                evals[1] = _derive_one(evals[0], current, eq_point, j)
        off = ctx.commit_round(L_ROUND, degree + 1, lambda: evals)
        u = None if eq_point is None else int(eq_point[j]) % P
        w0, w1 = (1, 1) if u is None else ((1 - u) % P, u)
        rel = [(off, [w0, w1] + [0] * (degree - 1))]
        if prev is None:
            ctx.relate(rel, claim)
        else:
            ctx.relate(rel + [(prev[0], [-x % P for x in prev[1]])], 0)
        r = ctx.challenge(L_CHALLENGE)
        point.append(r)
        prev = (off, lagrange_basis(degree + 1, r))
        if ctx.proving:
            current = sum(e * c for e, c in zip(evals, prev[1])) % P
            if j < m - 1:
                f, sums = K.fold_and_round_sums(Fr.desc, f, Fr.scalar(r), degree, kterms,
                                                kcoeffs, weights[j + 1], skip)
            else:
                out = np.empty((f.shape[0], 1, 4), dtype=np.uint64)
                K.fold(Fr.desc, f, Fr.scalar(r), out)
                f = out
    clear = [Fr.scalar_to_int(tuple(f[i, 0])) for i in range(num_factors)] if ctx.proving else None
    vals = _finals(ctx, hidden, num_factors, clear)
    return End(tuple(point), vals, clear, ctx, prev, claim, ticket)


def _derive_one(s0: int, claim: int, eq_point: Sequence[int] | None, j: int) -> int:
    """s(1) from w0 s(0) + w1 s(1) = claim (w = (1, 1), or (1 - u_j, u_j), u_j != 0)."""
    if eq_point is None:
        return (claim - s0) % P
    u = int(eq_point[j]) % P  # nonzero (else the kernels compute s(1))
    return (claim - (1 - u) * s0) * pow(u, -1, P) % P


def _prover_tables(tables, m: int, k: int, terms: Terms) -> np.ndarray:
    """The (k, 2^m, 4) factor array: ``tables()`` returns it directly (no copy) or a list."""
    if tables is None:
        raise ProverError("the prover must supply the sumcheck's tables")
    fs = tables()
    if not (isinstance(fs, np.ndarray) and fs.ndim == 3):
        fs = list(fs)
        if len(fs) != k or any(t.shape != (1 << m, 4) for t in fs):
            raise ProverError(f"sumcheck expects {k} Fr vectors of length {1 << m}")
        fs = np.stack(fs)
    if fs.shape != (k, 1 << m, 4) or fs.dtype != np.uint64:
        raise ProverError(f"sumcheck expects a ({k}, {1 << m}, 4) uint64 array")
    if any(not idx or any(not 0 <= i < k for i in idx) for _, idx in terms):
        raise ProverError("sumcheck terms must name factors by index")
    return fs


def _finals(ctx: Context, hidden: Sequence[int], k: int, clear: list[int] | None
            ) -> list[Com | None]:
    hidden = sorted(set(hidden))
    if any(not 0 <= i < k for i in hidden):
        raise ValueError("hidden factor index out of range")
    coms = ctx.commit(L_FINAL, len(hidden), lambda: [clear[i] for i in hidden])
    out: list[Com | None] = [None] * k
    for i, c in zip(hidden, coms):
        out[i] = c
    return out

