"""The retired, NON-zero-knowledge protocol (plain fraction sums), kept only as a baseline for the leak,
extraction and benchmark comparisons (issue 10). Never used by the product: it sends sumcheck
messages and opened values in the clear, which give away the weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from legacy import sumcheck
from legacy.claims import Claim
from zk.encoding import Reader, Writer
from zk.errors import ProverError, VerificationError
from zk.field import Fr
from zk.multilinear import P, num_vars
from zk.transcript import Transcript


def _layers(p: np.ndarray, q: np.ndarray) -> list:
    """The tree with the child bit as the LOWEST variable (this retired protocol's layout):
    index k holds (p_k, q_k) of size 2^k."""
    out = [(p, q)]
    while out[-1][0].shape[0] > 2:
        lp, lq = out[-1]
        p0, p1 = np.ascontiguousarray(lp[0::2]), np.ascontiguousarray(lp[1::2])
        q0, q1 = np.ascontiguousarray(lq[0::2]), np.ascontiguousarray(lq[1::2])
        out.append((Fr.add(Fr.mul(p0, q1), Fr.mul(p1, q0)), Fr.mul(q0, q1)))
    return [None, *reversed(out)]

LABEL_SHAPE = b"fractions/depths"
LABEL_ROOT = b"fractions/root"
LABEL_LAMBDA = b"fractions/lambda"
LABEL_ENDS = b"fractions/ends"
LABEL_MU = b"fractions/mu"

MAX_DEPTH = 40


@dataclass(frozen=True)
class FractionProof:
    """Each root's children (p(0), p(1), q(0), q(1)); per layer, a sumcheck and the end
    values (p0, p1, q0, q1) of every tree deeper than that layer."""

    roots: tuple[tuple[int, ...], ...]
    layers: tuple[tuple[sumcheck.SumcheckProof, tuple[tuple[int, ...], ...]], ...]

    def write(self, w: Writer) -> None:
        with w.section("fractions"):
            w.fields([x for root in self.roots for x in root])
            for sc, ends in self.layers:
                sc.write(w)
                w.fields([x for e in ends for x in e])

    @classmethod
    def read(cls, r: Reader, depths: Sequence[int]) -> "FractionProof":
        """Read a proof for trees of the given depths (fixed by the statement)."""
        with r.section("fractions"):
            flat = r.fields(max_len=4 * len(depths), exact_len=4 * len(depths))
            roots = tuple(tuple(flat[4 * i:4 * i + 4]) for i in range(len(depths)))
            layers = []
            for k in range(1, max(depths)):
                sc = sumcheck.SumcheckProof.read(r, k, 2)
                active = sum(1 for n in depths if n > k)
                flat = r.fields(max_len=4 * active, exact_len=4 * active)
                layers.append((sc, tuple(tuple(flat[4 * i:4 * i + 4]) for i in range(active))))
        return cls(roots, tuple(layers))


@dataclass(frozen=True)
class TreeClaims:
    """A tree's verified root P/Q and the claims on its leaves that the caller must discharge."""

    numerator: int
    denominator: int
    p: Claim
    q: Claim




def _terms(lam: int, active: int) -> list[tuple[int, tuple[int, ...]]]:
    """The layer polynomial over factors (p0, p1, q0, q1) of each active tree, in order."""
    terms = []
    for a in range(active):
        cp, cq = pow(lam, 2 * a, P), pow(lam, 2 * a + 1, P)
        b = 4 * a
        terms += [(cp, (b, b + 3)), (cp, (b + 1, b + 2)), (cq, (b + 2, b + 3))]
    return terms


def _move(mu: int, rho: tuple[int, ...], ends: Sequence[int]) -> tuple[Claim, Claim]:
    p0, p1, q0, q1 = ends
    point = (mu, *rho)
    return Claim(point, (p0 + mu * (p1 - p0)) % P), Claim(point, (q0 + mu * (q1 - q0)) % P)


def _begin(t: Transcript, depths: Sequence[int], roots: Sequence[Sequence[int]]
           ) -> tuple[list[int], list[int], list[tuple[Claim, Claim]]]:
    t.absorb_scalars(LABEL_SHAPE, list(depths))
    t.absorb_scalars(LABEL_ROOT, [x for root in roots for x in root])
    mu = t.challenge(LABEL_MU)
    nums = [(p0 * q1 + p1 * q0) % P for p0, p1, q0, q1 in roots]
    dens = [q0 * q1 % P for _, _, q0, q1 in roots]
    return nums, dens, [_move(mu, (), root) for root in roots]


def prove(t: Transcript, trees: Sequence[tuple[np.ndarray, np.ndarray]]
          ) -> tuple[FractionProof, list[TreeClaims]]:
    """Prove the fraction sums of the trees (leaf vectors p, q of length 2^n, n >= 1 each)."""
    depths = [num_vars(p.shape[0]) for p, _ in trees]
    if not trees or min(depths) < 1 or max(depths) > MAX_DEPTH:
        raise ProverError("fraction sums need trees of 2 to 2^40 leaves")
    if any(q.shape != p.shape for p, q in trees):
        raise ProverError("p and q of a tree must have one length")
    layers = [_layers(p, q) for p, q in trees]
    roots = [tuple(Fr.to_ints(lay[1][0]) + Fr.to_ints(lay[1][1])) for lay in layers]
    nums, dens, claims = _begin(t, depths, roots)
    if any(d == 0 for d in dens):
        raise ProverError("a denominator is zero")
    proof_layers = []
    for k in range(1, max(depths)):
        active = [i for i, n in enumerate(depths) if n > k]
        lam = t.challenge(LABEL_LAMBDA)
        factors = []
        claimed = 0
        for a, i in enumerate(active):
            lp, lq = layers[i][k + 1]
            factors += [np.ascontiguousarray(v[b::2]) for v in (lp, lq) for b in (0, 1)]
            pc, qc = claims[i]
            claimed += pow(lam, 2 * a, P) * pc.value + pow(lam, 2 * a + 1, P) * qc.value
        point = claims[active[0]][0].point
        sc, rho, finals = sumcheck.prove(t, factors, claimed % P, point, _terms(lam, len(active)))
        ends = tuple(tuple(finals[4 * a:4 * a + 4]) for a in range(len(active)))
        t.absorb_scalars(LABEL_ENDS, finals)
        mu = t.challenge(LABEL_MU)
        for a, i in enumerate(active):
            claims[i] = _move(mu, rho, ends[a])
        proof_layers.append((sc, ends))
    result = [TreeClaims(nums[i], dens[i], *claims[i]) for i in range(len(trees))]
    return FractionProof(tuple(roots), tuple(proof_layers)), result


def verify(t: Transcript, proof: FractionProof, depths: Sequence[int]) -> list[TreeClaims]:
    """Check a proof for trees of the given depths; return each root and its leaf claims.

    Raises VerificationError if a layer fails or a root denominator is zero. The leaf claims
    must be discharged by the caller.
    """
    if not depths or min(depths) < 1 or max(depths) > MAX_DEPTH:
        raise VerificationError("fraction sum: bad tree depths")
    if len(proof.roots) != len(depths) or any(len(r) != 4 for r in proof.roots):
        raise VerificationError("fraction sum: wrong number of roots")
    if len(proof.layers) != max(depths) - 1:
        raise VerificationError("fraction sum: wrong number of layers")
    nums, dens, claims = _begin(t, depths, proof.roots)
    if any(d == 0 for d in dens):
        raise VerificationError("fraction sum: zero denominator at a root")
    for k, (sc, ends) in enumerate(proof.layers, start=1):
        active = [i for i, n in enumerate(depths) if n > k]
        if len(ends) != len(active) or any(len(e) != 4 for e in ends):
            raise VerificationError("fraction sum: wrong number of end values")
        lam = t.challenge(LABEL_LAMBDA)
        claimed = sum(pow(lam, 2 * a, P) * claims[i][0].value
                      + pow(lam, 2 * a + 1, P) * claims[i][1].value
                      for a, i in enumerate(active)) % P
        point = claims[active[0]][0].point
        sub = sumcheck.verify(t, sc, claimed, k, 2, point)
        finals = [x for e in ends for x in e]
        sub.check(finals, _terms(lam, len(active)))
        t.absorb_scalars(LABEL_ENDS, finals)
        mu = t.challenge(LABEL_MU)
        for a, i in enumerate(active):
            claims[i] = _move(mu, sub.point, ends[a])
    return [TreeClaims(nums[i], dens[i], *claims[i]) for i in range(len(depths))]
