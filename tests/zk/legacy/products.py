"""The retired, NON-zero-knowledge protocol (plain product reductions), kept only as a baseline for the leak,
extraction and benchmark comparisons (issue 10). Never used by the product: it sends sumcheck
messages and opened values in the clear, which give away the weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from legacy import sumcheck
from legacy.claims import Claim
from zk.encoding import Reader, Writer
from zk.errors import ProverError
from zk.multilinear import fold_cols, fold_rows
from zk.protocol.products import MatmulShape, _split  # noqa: F401
from zk.transcript import Transcript

LABEL_OPERANDS = b"products/operands"
LABEL_MATMUL = b"products/matmul"


@dataclass(frozen=True)
class ProductProof:
    """A sumcheck and the operand values A~(r), B~(r) at its final point r."""

    sumcheck: sumcheck.SumcheckProof
    a_value: int
    b_value: int

    def write(self, w: Writer) -> None:
        with w.section("product"):
            self.sumcheck.write(w)
            w.field(self.a_value)
            w.field(self.b_value)

    @classmethod
    def read(cls, r: Reader, num_vars: int, degree: int) -> "ProductProof":
        with r.section("product"):
            sc = sumcheck.SumcheckProof.read(r, num_vars, degree)
            a, b = r.field(), r.field()
        return cls(sc, a, b)


def _finish(transcript: Transcript, sub: sumcheck.Subclaim, a: int, b: int) -> None:
    transcript.absorb_scalars(LABEL_OPERANDS, [a, b])
    sub.check([a, b])


# ---------------------------------------------------------------- inner product


def prove_inner(transcript: Transcript, a: np.ndarray, b: np.ndarray, value: int
                ) -> tuple[ProductProof, Claim, Claim]:
    """Prove sum_x a(x) b(x) = value; return the proof and the claims on a and b."""
    proof, point, (av, bv) = sumcheck.prove(transcript, [a, b], value)
    transcript.absorb_scalars(LABEL_OPERANDS, [av, bv])
    return ProductProof(proof, av, bv), Claim(point, av), Claim(point, bv)


def verify_inner(transcript: Transcript, proof: ProductProof, value: int, m: int
                 ) -> tuple[Claim, Claim]:
    """Check a proof of sum_x a(x) b(x) = value over m variables; return the claims on a, b."""
    sub = sumcheck.verify(transcript, proof.sumcheck, value, m, 2)
    _finish(transcript, sub, proof.a_value, proof.b_value)
    return Claim(sub.point, proof.a_value), Claim(sub.point, proof.b_value)


# ---------------------------------------------------------------- Hadamard product


def prove_hadamard(transcript: Transcript, a: np.ndarray, b: np.ndarray, claim: Claim
                   ) -> tuple[ProductProof, Claim, Claim]:
    """Prove that claim holds for c = a o b, reducing it to claims on a and b."""
    proof, point, (av, bv) = sumcheck.prove(transcript, [a, b], claim.value, claim.point)
    transcript.absorb_scalars(LABEL_OPERANDS, [av, bv])
    return ProductProof(proof, av, bv), Claim(point, av), Claim(point, bv)


def verify_hadamard(transcript: Transcript, proof: ProductProof, claim: Claim
                    ) -> tuple[Claim, Claim]:
    """Check a proof that claim holds for a o b; return the claims on a and b."""
    m = len(claim.point)
    sub = sumcheck.verify(transcript, proof.sumcheck, claim.value, m, 2, claim.point)
    _finish(transcript, sub, proof.a_value, proof.b_value)
    return Claim(sub.point, proof.a_value), Claim(sub.point, proof.b_value)


# ---------------------------------------------------------------- matrix product


def prove_matmul(transcript: Transcript, a: np.ndarray, b: np.ndarray, shape: MatmulShape,
                 claim: Claim) -> tuple[ProductProof, Claim, Claim]:
    """Reduce a claim on C = A B (A, B row-major Fr vectors) to claims on A and on B."""
    if a.shape[0] != shape.rows * shape.inner or b.shape[0] != shape.inner * shape.cols:
        raise ProverError("matrix sizes do not match the shape")
    u_col, u_row = _split(shape, claim.point)
    transcript.absorb_scalars(LABEL_MATMUL, [shape.rows, shape.inner, shape.cols])
    a_vec = fold_rows(a, shape.rows, shape.inner, u_row)   # x -> A~(x, u_row)
    b_vec = fold_cols(b, shape.inner, shape.cols, u_col)   # x -> B~(u_col, x)
    proof, r, (av, bv) = sumcheck.prove(transcript, [a_vec, b_vec], claim.value)
    transcript.absorb_scalars(LABEL_OPERANDS, [av, bv])
    return ProductProof(proof, av, bv), Claim(r + u_row, av), Claim(u_col + r, bv)


def verify_matmul(transcript: Transcript, proof: ProductProof, shape: MatmulShape, claim: Claim
                  ) -> tuple[Claim, Claim]:
    """Check a proof that claim holds for C = A B; return the claims on A and on B."""
    u_col, u_row = _split(shape, claim.point)
    transcript.absorb_scalars(LABEL_MATMUL, [shape.rows, shape.inner, shape.cols])
    sub = sumcheck.verify(transcript, proof.sumcheck, claim.value, shape.vars[1], 2)
    _finish(transcript, sub, proof.a_value, proof.b_value)
    r = sub.point
    return Claim(r + u_row, proof.a_value), Claim(u_col + r, proof.b_value)
