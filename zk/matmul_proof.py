"""A stand-alone, file-backed proof that C = A B for public integer matrices.

The smallest complete statement the stack proves end to end: the verifier reads A, B, C from the
file, draws the claim point from the transcript after absorbing all three, evaluates C~ at it
itself, checks the matrix-product sumcheck, and discharges the two operand claims by evaluating
A~ and B~ itself. (With committed weights, issue 3's Hyrax openings replace the last step.)
Sizes that are not powers of two are zero-padded; the padding is part of the statement.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from zk import products
from zk.claims import Claim
from zk.encoding import Reader, Writer
from zk.errors import ProverError, VerificationError
from zk.field import Fr
from zk.multilinear import evaluate, from_matrix, next_pow2
from zk.transcript import Transcript

PROTOCOL = b"zkfhe/matmul-proof/v1"
LABEL_MATRICES = b"matmul-proof/matrices"
LABEL_POINT = b"matmul-proof/point"
MAX_SIDE = 1 << 16
MAX_ENTRIES = 1 << 24


def _absorb_and_point(t: Transcript, fa: np.ndarray, fb: np.ndarray, fc: np.ndarray,
                      shape: products.MatmulShape) -> list[int]:
    for v in (fa, fb, fc):
        t.absorb_vector(LABEL_MATRICES, v)
    a, _, b = shape.vars
    return t.challenges(LABEL_POINT, a + b)


@dataclass(frozen=True)
class MatmulProof:
    """Public A (n x k), B (k x m), C = A B (as field elements) and the reduction's proof."""

    KIND: ClassVar[str] = "matmul-proof"
    VERSION: ClassVar[int] = 1

    n: int
    k: int
    m: int
    a: np.ndarray  # Fr vectors of the padded matrices
    b: np.ndarray
    c: np.ndarray
    product: products.ProductProof

    @property
    def shape(self) -> products.MatmulShape:
        return products.MatmulShape(next_pow2(self.n), next_pow2(self.k), next_pow2(self.m))

    def write(self, w: Writer) -> None:
        for dim in (self.n, self.k, self.m):
            w.u32(dim)
        for v in (self.a, self.b, self.c):
            w.fields(Fr.to_bytes(v))
        self.product.write(w)

    @classmethod
    def read(cls, r: Reader, version: int) -> "MatmulProof":
        dims = [r.u32() for _ in range(3)]
        if any(not 1 <= d <= MAX_SIDE for d in dims):
            raise r.error(f"matrix dimensions {dims} out of range 1..{MAX_SIDE}")
        n, k, m = dims
        shape = products.MatmulShape(next_pow2(n), next_pow2(k), next_pow2(m))
        sizes = (shape.rows * shape.inner, shape.inner * shape.cols, shape.rows * shape.cols)
        if max(sizes) > MAX_ENTRIES:
            raise r.error(f"matrices of {max(sizes)} entries exceed {MAX_ENTRIES}")
        vecs = [Fr.from_bytes(r.fields_array(max_len=s, exact_len=s)) for s in sizes]
        product = products.ProductProof.read(r, shape.vars[1], 2)
        return cls(n, k, m, *vecs, product)


def prove_matmul(a: np.ndarray, b: np.ndarray) -> MatmulProof:
    """Prove C = A B for integer matrices A (n x k) and B (k x m); C is computed here."""
    a = np.asarray(a)
    b = np.asarray(b)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise ProverError(f"cannot multiply shapes {a.shape} and {b.shape}")
    if not (np.issubdtype(a.dtype, np.integer) and np.issubdtype(b.dtype, np.integer)):
        raise ProverError("matrices must hold integers")
    n, k = a.shape
    m = b.shape[1]
    bound = int(np.abs(a).max(initial=0)) * int(np.abs(b).max(initial=0)) * k
    if bound >= 2**62:
        raise ProverError("entries too large for exact int64 products")
    c = a.astype(np.int64) @ b.astype(np.int64)
    shape = products.MatmulShape(next_pow2(n), next_pow2(k), next_pow2(m))
    fa = from_matrix(a, shape.rows, shape.inner)
    fb = from_matrix(b, shape.inner, shape.cols)
    fc = from_matrix(c, shape.rows, shape.cols)
    t = Transcript(PROTOCOL)
    point = _absorb_and_point(t, fa, fb, fc, shape)
    claim = Claim(tuple(point), evaluate(fc, point))
    proof, _, _ = products.prove_matmul(t, fa, fb, shape, claim)
    return MatmulProof(n, k, m, fa, fb, fc, proof)


def verify_matmul(proof: MatmulProof) -> None:
    """Accept (return None) or raise VerificationError: C = A B for the matrices in the proof."""
    shape = proof.shape
    _check_padding(proof.a, proof.n, proof.k, shape.rows, shape.inner, "A")
    _check_padding(proof.b, proof.k, proof.m, shape.inner, shape.cols, "B")
    _check_padding(proof.c, proof.n, proof.m, shape.rows, shape.cols, "C")
    t = Transcript(PROTOCOL)
    point = _absorb_and_point(t, proof.a, proof.b, proof.c, shape)
    claim = Claim(tuple(point), evaluate(proof.c, point))
    ca, cb = products.verify_matmul(t, proof.product, shape, claim)
    if evaluate(proof.a, ca.point) != ca.value:
        raise VerificationError("matmul proof: the claim on A does not hold")
    if evaluate(proof.b, cb.point) != cb.value:
        raise VerificationError("matmul proof: the claim on B does not hold")


def _check_padding(v: np.ndarray, rows: int, cols: int, prows: int, pcols: int, name: str) -> None:
    if v.shape != (prows * pcols, 4):
        raise VerificationError(f"matmul proof: {name} has the wrong size")
    grid = v.reshape(prows, pcols, 4)
    if grid[rows:].any() or grid[:, cols:].any():
        raise VerificationError(f"matmul proof: {name} is not zero outside its {rows}x{cols} block")


def matrices(proof: MatmulProof) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The proven A, B, C as signed integer arrays (for display)."""
    def unpad(v: np.ndarray, rows: int, cols: int, pcols: int) -> np.ndarray:
        return Fr.to_signed(v).reshape(-1, pcols)[:rows, :cols]

    s = proof.shape
    return (unpad(proof.a, proof.n, proof.k, s.inner), unpad(proof.b, proof.k, proof.m, s.cols),
            unpad(proof.c, proof.n, proof.m, s.cols))


