"""The sumcheck protocol for products of multilinear polynomials (Lund, Fortnow, Karloff, Nisan;
Thaler, "Proofs, Arguments, and Zero-Knowledge", ch. 4).

Statement: for multilinear f_1..f_k in m variables (given as tables of 2^m values), an
optional point u, and a sum of products ("terms": coefficient c_s and factor indices T_s),

    sum_{x in {0,1}^m} eq(u, x) * sum_s c_s prod_{i in T_s} f_i(x) = S.

The default is the single term f_1(x) * ... * f_k(x).

Round j binds x_j (lowest variable first). The prover sends the round polynomial
g_j(t) = sum over the remaining hypercube with x_j = t, of degree D = max |T_s| (+1 with eq), as its
values at t = 0, 2, 3, ..., D; the verifier derives g_j(1) = claim - g_j(0), absorbs the message,
draws r_j, and continues with the claim g_j(r_j). At the end the verifier holds a
:class:`Subclaim`: the product must equal ``value`` at ``point`` = (r_0, ..., r_{m-1}). It does
NOT check that itself: the caller obtains f_i(point) (openings, its own evaluation, or values the
prover sends and are then checked) and calls :meth:`Subclaim.check`. Soundness error per round
is D / r.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gpu import poly as K
from zk.encoding import Reader, Writer
from zk.errors import ProverError, VerificationError
from zk.field import Fr
from zk.multilinear import P, eq_eval, eq_table, interpolate, num_vars
from zk.transcript import Transcript

LABEL_PARAMS = b"sumcheck/params"
LABEL_SUM = b"sumcheck/sum"
LABEL_ROUND = b"sumcheck/round"
LABEL_CHALLENGE = b"sumcheck/challenge"

MAX_DEGREE = 8


Terms = Sequence[tuple[int, Sequence[int]]]
"""A sum of products: (coefficient, factor indices) pairs."""


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
    return max(len(idx) for _, idx in terms)


@dataclass(frozen=True)
class SumcheckProof:
    """Round messages: ``rounds[j]`` holds g_j(0), g_j(2), ..., g_j(D)."""

    rounds: tuple[tuple[int, ...], ...]

    def write(self, w: Writer) -> None:
        with w.section("sumcheck"):
            for msg in self.rounds:
                w.fields(msg)

    @classmethod
    def read(cls, r: Reader, num_vars: int, degree: int) -> "SumcheckProof":
        """Read a proof of ``num_vars`` rounds of degree ``degree`` (both fixed by the statement)."""
        with r.section("sumcheck"):
            rounds = tuple(tuple(r.fields(max_len=degree, exact_len=degree)) for _ in range(num_vars))
        return cls(rounds)


@dataclass(frozen=True)
class Subclaim:
    """What remains after the rounds: eq(u, point) * sum_s c_s prod_{T_s} f_i(point) must
    equal ``value``."""

    point: tuple[int, ...]
    value: int
    eq_point: tuple[int, ...] | None

    def check(self, factor_values: Sequence[int], terms: Terms | None = None) -> None:
        """Discharge the subclaim given f_i(point); raise VerificationError if it is false.

        The caller is responsible for the factor values being the true evaluations (checked
        against commitments or computed from public data).
        """
        acc = combine(terms, factor_values)
        if self.eq_point is not None:
            acc = acc * eq_eval(self.eq_point, self.point) % P
        if acc != self.value:
            raise VerificationError("sumcheck: final evaluations do not match the last round")


def _begin(transcript: Transcript, m: int, degree: int, claimed_sum: int,
           eq_point: Sequence[int] | None) -> None:
    """Absorb the statement; shared by prover and verifier so the two cannot drift apart."""
    transcript.absorb_scalars(LABEL_PARAMS, [m, degree, 0 if eq_point is None else 1])
    if eq_point is not None:
        transcript.absorb_scalars(LABEL_PARAMS, eq_point)
    transcript.absorb_scalar(LABEL_SUM, claimed_sum)


def _round(transcript: Transcript, msg: Sequence[int]) -> int:
    """Absorb one round message and draw that round's challenge."""
    transcript.absorb_scalars(LABEL_ROUND, msg)
    return transcript.challenge(LABEL_CHALLENGE)


def degree_of(num_factors: int, with_eq: bool) -> int:
    """Degree of the round polynomials for the single product of num_factors factors."""
    return num_factors + (1 if with_eq else 0)


def _kernel_terms(terms: Terms, eq_index: int | None) -> tuple[np.ndarray, np.ndarray]:
    width = degree_of_terms(terms) + (1 if eq_index is not None else 0)
    idx = np.full((len(terms), width), -1, dtype=np.int64)
    for s, (_, t) in enumerate(terms):
        row = list(t) + ([eq_index] if eq_index is not None else [])
        idx[s, : len(row)] = row
    coeffs = Fr.from_ints([c for c, _ in terms])
    return idx, coeffs


def prove(
    transcript: Transcript,
    factors: Sequence[np.ndarray],
    claimed_sum: int,
    eq_point: Sequence[int] | None = None,
    terms: Terms | None = None,
) -> tuple[SumcheckProof, tuple[int, ...], list[int]]:
    """Prove sum_x eq(eq_point, x) sum_s c_s prod_{i in T_s} factors[i](x) = claimed_sum.

    ``factors`` are Fr vectors ((2^m, 4) Montgomery arrays) of one length; ``terms`` defaults
    to the product of all factors. Returns the proof, the point (r_0, ..., r_{m-1}) and the
    values factors[i](point) (excluding eq), which the caller sends or opens. Raises
    ProverError if the claimed sum is false.
    """
    if not factors:
        raise ProverError("sumcheck needs at least one factor")
    n = factors[0].shape[0]
    m = num_vars(n)
    if any(f.shape != (n, 4) for f in factors):
        raise ProverError("sumcheck factors must be Fr vectors of one length")
    if terms is None:
        terms = [(1, tuple(range(len(factors))))]
    if any(not idx or any(not 0 <= i < len(factors) for i in idx) for _, idx in terms):
        raise ProverError("sumcheck terms must name factors by index")
    rows = list(factors)
    eq_index = None
    if eq_point is not None:
        if len(eq_point) != m:
            raise ProverError("eq point has the wrong dimension")
        eq_index = len(rows)
        rows.append(eq_table(eq_point))
    degree = degree_of_terms(terms) + (1 if eq_point is not None else 0)
    if degree > MAX_DEGREE:
        raise ProverError(f"degree {degree} above the supported {MAX_DEGREE}")
    _begin(transcript, m, degree, claimed_sum, eq_point)

    if m == 0:
        values = [Fr.scalar_to_int(tuple(row[0])) for row in rows]
        total = combine(terms, values) * (values[eq_index] if eq_index is not None else 1) % P
        if total != claimed_sum % P:
            raise ProverError("sumcheck: the claimed sum is false")
        return SumcheckProof(()), (), values[: len(factors)]

    f = np.stack(rows)
    kterms, kcoeffs = _kernel_terms(terms, eq_index)
    sums = K.round_sums(Fr.desc, f, degree, kterms, kcoeffs)
    claim = claimed_sum % P
    rounds, point = [], []
    for j in range(m):
        evals = Fr.to_ints(sums)
        if (evals[0] + evals[1]) % P != claim:
            raise ProverError("sumcheck: the claimed sum is false")
        msg = (evals[0], *evals[2:])
        r = _round(transcript, msg)
        rounds.append(msg)
        point.append(r)
        claim = interpolate(evals, r)
        if j < m - 1:
            f, sums = K.fold_and_round_sums(Fr.desc, f, Fr.scalar(r), degree, kterms, kcoeffs)
        else:
            out = np.empty((f.shape[0], 1, 4), dtype=np.uint64)
            K.fold(Fr.desc, f, Fr.scalar(r), out)
            f = out
    finals = [Fr.scalar_to_int(tuple(f[i, 0])) for i in range(len(factors))]
    return SumcheckProof(tuple(rounds)), tuple(point), finals


def verify(
    transcript: Transcript,
    proof: SumcheckProof,
    claimed_sum: int,
    m: int,
    degree: int,
    eq_point: Sequence[int] | None = None,
) -> Subclaim:
    """Check the rounds of a proof of the statement above and return the final subclaim.

    ``m`` and ``degree`` come from the statement (never from the proof). Raises
    VerificationError on a malformed proof; the returned Subclaim must still be checked.
    """
    if len(proof.rounds) != m or any(len(msg) != degree for msg in proof.rounds):
        raise VerificationError("sumcheck: wrong number or size of round messages")
    if eq_point is not None and len(eq_point) != m:
        raise VerificationError("sumcheck: eq point has the wrong dimension")
    _begin(transcript, m, degree, claimed_sum % P, eq_point)
    claim = claimed_sum % P
    point = []
    for msg in proof.rounds:
        evals = [msg[0], (claim - msg[0]) % P, *msg[1:]]
        r = _round(transcript, msg)
        point.append(r)
        claim = interpolate(evals, r)
    return Subclaim(tuple(point), claim, None if eq_point is None else tuple(eq_point))
