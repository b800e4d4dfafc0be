"""The sumcheck protocol for products of multilinear polynomials (Lund, Fortnow, Karloff, Nisan;
Thaler, "Proofs, Arguments, and Zero-Knowledge", ch. 4).

Statement: for multilinear f_1..f_k in m variables (given as tables of 2^m values) and an
optional point u,

    sum_{x in {0,1}^m} eq(u, x) * f_1(x) * ... * f_k(x) = S.

Round j binds x_j (lowest variable first). The prover sends the round polynomial
g_j(t) = sum over the remaining hypercube with x_j = t, of degree D = k (+1 with eq), as its
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
    """What remains after the rounds: eq(u, point) * prod_i f_i(point) must equal ``value``."""

    point: tuple[int, ...]
    value: int
    eq_point: tuple[int, ...] | None

    def check(self, factor_values: Sequence[int]) -> None:
        """Discharge the subclaim given f_i(point); raise VerificationError if it is false.

        The caller is responsible for the factor values being the true evaluations (checked
        against commitments or computed from public data).
        """
        acc = 1 if self.eq_point is None else eq_eval(self.eq_point, self.point)
        for v in factor_values:
            acc = acc * v % P
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
    return num_factors + (1 if with_eq else 0)


def prove(
    transcript: Transcript,
    factors: Sequence[np.ndarray],
    claimed_sum: int,
    eq_point: Sequence[int] | None = None,
) -> tuple[SumcheckProof, tuple[int, ...], list[int]]:
    """Prove sum_x eq(eq_point, x) prod_i factors[i](x) = claimed_sum.

    ``factors`` are Fr vectors ((2^m, 4) Montgomery arrays) of one length. Returns the proof,
    the point (r_0, ..., r_{m-1}) and the values factors[i](point) (excluding eq), which the
    caller sends or opens. Raises ProverError if the claimed sum is false.
    """
    if not factors:
        raise ProverError("sumcheck needs at least one factor")
    n = factors[0].shape[0]
    m = num_vars(n)
    if any(f.shape != (n, 4) for f in factors):
        raise ProverError("sumcheck factors must be Fr vectors of one length")
    rows = list(factors)
    if eq_point is not None:
        if len(eq_point) != m:
            raise ProverError("eq point has the wrong dimension")
        rows.append(eq_table(eq_point))
    degree = len(rows)
    if degree > MAX_DEGREE:
        raise ProverError(f"degree {degree} above the supported {MAX_DEGREE}")
    _begin(transcript, m, degree, claimed_sum, eq_point)

    f = np.stack(rows)
    if m == 0:
        total = 1
        for row in rows:
            total = total * Fr.scalar_to_int(tuple(row[0])) % P
        if total != claimed_sum % P:
            raise ProverError("sumcheck: the claimed sum is false")
        return SumcheckProof(()), (), [Fr.scalar_to_int(tuple(x[0])) for x in factors]

    sums = K.round_sums(Fr.desc, f, degree)
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
            f, sums = K.fold_and_round_sums(Fr.desc, f, Fr.scalar(r), degree)
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
