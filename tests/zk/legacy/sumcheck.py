"""The retired, NON-zero-knowledge protocol (plain sumcheck), kept only as a baseline for the leak,
extraction and benchmark comparisons (issue 10). Never used by the product: it sends sumcheck
messages and opened values in the clear, which give away the weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gpu import poly as K
from zk.encoding import Reader, Writer
from zk.errors import ProverError, VerificationError
from zk.field import Fr
from zk.multilinear import P, eq_eval, interpolate, num_vars
from zk.protocol.sumcheck import combine, degree_of_terms
from zk.protocol.sumcheck import eq_weights as _gruen_weights
from zk.protocol.sumcheck import kernel_terms as _kernel_terms
from zk.transcript import Transcript

LABEL_PARAMS = b"sumcheck/params"
LABEL_SUM = b"sumcheck/sum"
LABEL_ROUND = b"sumcheck/round"
LABEL_CHALLENGE = b"sumcheck/challenge"

MAX_DEGREE = 8

Terms = Sequence[tuple[int, Sequence[int]]]
"""A sum of products: (coefficient, factor indices) pairs."""

_NO_WEIGHTS = np.zeros((0, 4), dtype=np.uint64)






@dataclass(frozen=True)
class SumcheckProof:
    """Round messages: ``rounds[j]`` holds D values (see the module docstring)."""

    rounds: tuple[tuple[int, ...], ...]

    def write(self, w: Writer) -> None:
        w.fields([x for msg in self.rounds for x in msg])

    @classmethod
    def read(cls, r: Reader, num_vars: int, degree: int) -> "SumcheckProof":
        """Read a proof of ``num_vars`` rounds of degree ``degree`` (both fixed by the statement)."""
        n = num_vars * degree
        flat = r.fields(max_len=n, exact_len=n)
        return cls(tuple(tuple(flat[j * degree:(j + 1) * degree]) for j in range(num_vars)))


@dataclass(frozen=True)
class Subclaim:
    """What remains after the rounds: eq(u, point) * h(point) must equal ``value``."""

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


def _full_evals(msg: Sequence[int], claim: int, c: int, u: int | None) -> list[int] | None:
    """The round polynomial's values at 0..D from a message and the running claim.

    Without eq (u None) that is g itself; with eq it is H (g = c eq(u, t) H). Returns None if
    the eq coefficient makes H(1) undetermined (u = 0 or c = 0; probability about 2/r).
    """
    if u is None:
        return [msg[0], (claim - msg[0]) % P, *msg[1:]]
    if u == 0 or c == 0:
        return None
    h1 = ((claim * pow(c, -1, P) - (1 - u) * msg[0]) * pow(u, -1, P)) % P
    return [msg[0], h1, *msg[1:]]


def _next_claim(evals: Sequence[int], r: int, c: int, u: int | None) -> tuple[int, int]:
    """The next round's claim g_j(r) and eq coefficient c_{j+1}, shared by both sides."""
    h = interpolate(evals, r)
    if u is None:
        return h, c
    c = c * ((1 - u) * (1 - r) + u * r) % P
    return c * h % P, c


def degree_of(num_factors: int, with_eq: bool) -> int:
    """Message size D for the single product of num_factors factors (eq adds nothing)."""
    del with_eq  # eq is factored out of the round polynomial
    return num_factors






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
    values factors[i](point), which the caller sends or opens. Raises ProverError if the
    claimed sum is false.
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
    if eq_point is not None and len(eq_point) != m:
        raise ProverError("eq point has the wrong dimension")
    degree = degree_of_terms(terms)
    if degree > MAX_DEGREE:
        raise ProverError(f"degree {degree} above the supported {MAX_DEGREE}")
    claim = claimed_sum % P
    _begin(transcript, m, degree, claim, eq_point)

    if m == 0:
        values = [Fr.scalar_to_int(tuple(f[0])) for f in factors]
        if combine(terms, values) != claim:
            raise ProverError("sumcheck: the claimed sum is false")
        return SumcheckProof(()), (), values

    weights = _gruen_weights(eq_point, m)
    f = np.stack(factors)
    kterms, kcoeffs = _kernel_terms(terms)
    sums = K.round_sums(Fr.desc, f, degree, kterms, kcoeffs, weights[0])
    c = 1
    rounds, point = [], []
    for j in range(m):
        evals = Fr.to_ints(sums)
        u = None if eq_point is None else eq_point[j] % P
        expect = ((evals[0] + evals[1]) if u is None
                  else c * ((1 - u) * evals[0] + u * evals[1])) % P
        if expect != claim:
            raise ProverError("sumcheck: the claimed sum is false")
        msg = (evals[0], *evals[2:])
        r = _round(transcript, msg)
        rounds.append(msg)
        point.append(r)
        claim, c = _next_claim(evals, r, c, u)
        if j < m - 1:
            f, sums = K.fold_and_round_sums(Fr.desc, f, Fr.scalar(r), degree, kterms, kcoeffs,
                                            weights[j + 1])
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

    ``m`` and ``degree`` (D) come from the statement, never from the proof. Raises
    VerificationError on a malformed proof; the returned Subclaim must still be checked.
    """
    if len(proof.rounds) != m or any(len(msg) != degree for msg in proof.rounds):
        raise VerificationError("sumcheck: wrong number or size of round messages")
    if eq_point is not None and len(eq_point) != m:
        raise VerificationError("sumcheck: eq point has the wrong dimension")
    claim = claimed_sum % P
    _begin(transcript, m, degree, claim, eq_point)
    c = 1
    point = []
    for j, msg in enumerate(proof.rounds):
        u = None if eq_point is None else eq_point[j] % P
        evals = _full_evals(msg, claim, c, u)
        if evals is None:
            raise VerificationError("sumcheck: degenerate eq point (zero coordinate)")
        r = _round(transcript, msg)
        point.append(r)
        claim, c = _next_claim(evals, r, c, u)
    return Subclaim(tuple(point), claim, None if eq_point is None else tuple(eq_point))
