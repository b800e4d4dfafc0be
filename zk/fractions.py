"""Layered (GKR) sumcheck for a sum of fractions (Papini and Haböck, "Improving logarithmic
derivative lookups using GKR", 2023, section 3).

Statement: for leaf vectors p, q of length 2^n (q_i != 0), the fraction sum
sum_i p_i / q_i equals P / Q, where (P, Q) is the root of the binary tree whose layer k has

    p_k(x) = p_{k+1}(0, x) q_{k+1}(1, x) + p_{k+1}(1, x) q_{k+1}(0, x),
    q_k(x) = q_{k+1}(0, x) q_{k+1}(1, x),

the child bit being the lowest variable (entries 2i and 2i+1 are siblings). Nothing of size
2^n is committed: the prover sends the two children of the root; then, layer by layer, a claim
on (p_k~(r), q_k~(r)) is folded with a challenge lambda into one degree-3 sumcheck

    sum_x eq(r, x) [p0 q1 + p1 q0 + lambda q0 q1](x) = p_k~(r) + lambda q_k~(r),

whose end values p0(rho), p1(rho), q0(rho), q1(rho) the prover sends; a challenge mu turns
them into the claim on layer k+1 at (mu, rho). The verifier ends with claims on p~ and q~ at
one point, which the caller discharges (the lookup argument computes or opens them).
Soundness error: about 4 n^2 / r over all layers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gpu import poly as K
from zk import sumcheck
from zk.claims import Claim
from zk.encoding import Reader, Writer
from zk.errors import ProverError, VerificationError
from zk.field import Fr
from zk.multilinear import P, num_vars
from zk.transcript import Transcript

LABEL_ROOT = b"fractions/root"
LABEL_LAMBDA = b"fractions/lambda"
LABEL_ENDS = b"fractions/ends"
LABEL_MU = b"fractions/mu"

# p0 q1 + p1 q0 + lambda q0 q1, on factors (p0, p1, q0, q1)
def _terms(lam: int) -> list[tuple[int, tuple[int, ...]]]:
    return [(1, (0, 3)), (1, (1, 2)), (lam, (2, 3))]


@dataclass(frozen=True)
class LayerProof:
    sumcheck: sumcheck.SumcheckProof
    ends: tuple[int, int, int, int]  # p0(rho), p1(rho), q0(rho), q1(rho)


@dataclass(frozen=True)
class FractionProof:
    """The root's children (p(0), p(1), q(0), q(1)) and one LayerProof per lower layer."""

    root: tuple[int, int, int, int]
    layers: tuple[LayerProof, ...]

    def write(self, w: Writer) -> None:
        with w.section("fractions"):
            w.fields(self.root)
            for layer in self.layers:
                layer.sumcheck.write(w)
                w.fields(layer.ends)

    @classmethod
    def read(cls, r: Reader, n: int) -> "FractionProof":
        """Read a proof for 2^n leaves (n fixed by the statement)."""
        with r.section("fractions"):
            root = tuple(r.fields(max_len=4, exact_len=4))
            layers = []
            for k in range(1, n):
                sc = sumcheck.SumcheckProof.read(r, k, 3)
                layers.append(LayerProof(sc, tuple(r.fields(max_len=4, exact_len=4))))
        return cls(root, tuple(layers))


@dataclass(frozen=True)
class FractionClaims:
    """The verified root P/Q and the claims on the leaves that the caller must discharge."""

    numerator: int
    denominator: int
    p: Claim
    q: Claim


def _layers(p: np.ndarray, q: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """All layers from the leaves (index 0) to the layer of size 2 (last)."""
    layers = [(p, q)]
    while layers[-1][0].shape[0] > 2:
        lp, lq = layers[-1]
        half = lp.shape[0] // 2
        np_, nq = np.empty((half, 4), np.uint64), np.empty((half, 4), np.uint64)
        K.fraction_layer(Fr.desc, lp, lq, np_, nq)
        layers.append((np_, nq))
    return layers


def _root(transcript: Transcript, root: tuple[int, ...]) -> tuple[int, int, Claim, Claim]:
    """Absorb the root's children; return P, Q and the claims on layer 1 at a challenge mu."""
    transcript.absorb_scalars(LABEL_ROOT, root)
    p0, p1, q0, q1 = root
    mu = transcript.challenge(LABEL_MU)
    num = (p0 * q1 + p1 * q0) % P
    den = q0 * q1 % P
    pc = Claim((mu,), (p0 + mu * (p1 - p0)) % P)
    qc = Claim((mu,), (q0 + mu * (q1 - q0)) % P)
    return num, den, pc, qc


def _descend(transcript: Transcript, rho: tuple[int, ...], ends: tuple[int, ...]
             ) -> tuple[Claim, Claim]:
    transcript.absorb_scalars(LABEL_ENDS, ends)
    p0, p1, q0, q1 = ends
    mu = transcript.challenge(LABEL_MU)
    point = (mu, *rho)
    return (Claim(point, (p0 + mu * (p1 - p0)) % P), Claim(point, (q0 + mu * (q1 - q0)) % P))


def prove(transcript: Transcript, p: np.ndarray, q: np.ndarray
          ) -> tuple[FractionProof, FractionClaims]:
    """Prove sum_i p_i / q_i = P / Q for Fr vectors p, q of length 2^n, n >= 1."""
    n = num_vars(p.shape[0])
    if n < 1 or q.shape != p.shape:
        raise ProverError("fraction sums need p, q of one length, at least 2")
    layers = _layers(p, q)
    top_p, top_q = layers[-1]
    root = tuple(Fr.to_ints(top_p) + Fr.to_ints(top_q))
    num, den, pc, qc = _root(transcript, root)
    if den == 0:
        raise ProverError("a denominator is zero")
    proofs = []
    for lp, lq in reversed(layers[:-1]):
        lam = transcript.challenge(LABEL_LAMBDA)
        factors = [np.ascontiguousarray(v[b::2]) for v in (lp, lq) for b in (0, 1)]
        claimed = (pc.value + lam * qc.value) % P
        sc, rho, ends = sumcheck.prove(transcript, factors, claimed, pc.point, _terms(lam))
        ends = tuple(ends)
        proofs.append(LayerProof(sc, ends))
        pc, qc = _descend(transcript, rho, ends)
    return FractionProof(root, tuple(proofs)), FractionClaims(num, den, pc, qc)


def verify(transcript: Transcript, proof: FractionProof, n: int) -> FractionClaims:
    """Check the layers of a proof for 2^n leaves; return P, Q and the leaf claims.

    Raises VerificationError if a layer fails or Q = 0. The leaf claims must be discharged.
    """
    if n < 1 or len(proof.layers) != n - 1:
        raise VerificationError("fraction sum: wrong number of layers")
    num, den, pc, qc = _root(transcript, proof.root)
    if den == 0:
        raise VerificationError("fraction sum: zero denominator at the root")
    for layer in proof.layers:
        lam = transcript.challenge(LABEL_LAMBDA)
        claimed = (pc.value + lam * qc.value) % P
        sub = sumcheck.verify(transcript, layer.sumcheck, claimed, len(pc.point), 3, pc.point)
        sub.check(layer.ends, _terms(lam))
        pc, qc = _descend(transcript, sub.point, layer.ends)
    return FractionClaims(num, den, pc, qc)
