"""tlookup: lookup arguments by logarithmic derivatives, proven with layered fractional sumchecks.

Statement: every entry of each looked-up vector S_s (length n_s, any size) lies in a public
table T (length N, any size). With multiplicities m_j = #{(s, i) : S_s[i] = T_j}, this holds
(for r > n + N) exactly when, as rational functions of beta,

    sum_s sum_i 1 / (beta + S_s[i]) = sum_j m_j / (beta + T_j).

For a function table (inputs x_j, outputs f(x_j)), a looked-up pair (X_i, Y_i) is compressed to
S_i = X_i + alpha Y_i and T_j = x_j + alpha f(x_j) with a challenge alpha, so the identity says
that every (X_i, Y_i) is a row of the table.

Protocol (the caller has committed to S's operands and to m, and absorbed the commitments;
:func:`multiplicities` gives m): draw alpha, beta; prove each side's fraction sum with
:mod:`zk.fractions` (no inverse vector is committed); the verifier checks
sum_s P_s / Q_s = P_T / Q_T and discharges the leaf claims:

* the S-trees' leaves are p_i = [i < n_s], q_i = [i < n_s] (beta + S_i) + [i >= n_s]; the
  verifier evaluates the indicator itself and turns the q claim into claims on X and Y (values
  the prover sends, combined with alpha), which it returns to the caller;
* the T-tree's leaves are p_j = m_j and q_j = [j < N] (beta + T_j) + [j >= N]: the verifier
  evaluates T~ itself (closed form for a range, direct for explicit tables) and returns the
  claim on m to the caller, who checks it against m's commitment.

Vectors are zero-padded to a power of two (at least 2): callers commit to the padded vectors.
zkLLM's release needs |T| to divide |S|; here both sizes are free.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from zk import fractions
from zk.claims import Claim
from zk.encoding import Reader, Writer
from zk.errors import ProverError, VerificationError
from zk.field import Fr
from zk.multilinear import P, evaluate, next_pow2, num_vars
from zk.transcript import Transcript

LABEL_TABLE = b"lookup/table"
LABEL_SIZES = b"lookup/sizes"
LABEL_ALPHA = b"lookup/alpha"
LABEL_BETA = b"lookup/beta"
LABEL_OPERANDS = b"lookup/operands"

MAX_TABLE = 1 << 22


# ---------------------------------------------------------------- tables


@dataclass(frozen=True, eq=False)
class LookupTable:
    """A public table: inputs offset, offset+1, ..., offset+N-1 and, for a function table,
    one output per input. ``outputs is None`` makes it a range table [offset, offset + N)."""

    offset: int
    size: int
    outputs: np.ndarray | None = None
    name: str = ""

    def __post_init__(self) -> None:
        if not 1 <= self.size <= MAX_TABLE:
            raise ValueError(f"table size {self.size} outside 1..{MAX_TABLE}")
        if self.outputs is not None:
            out = np.ascontiguousarray(self.outputs, dtype=np.int64)
            if out.shape != (self.size,):
                raise ValueError("a function table needs one output per input")
            object.__setattr__(self, "outputs", out)

    @classmethod
    def range(cls, lo: int, hi: int, name: str = "") -> "LookupTable":
        """The range [lo, hi)."""
        return cls(lo, hi - lo, None, name or f"range[{lo},{hi})")

    @classmethod
    def function(cls, offset: int, outputs: Sequence[int] | np.ndarray, name: str = "") -> "LookupTable":
        """f(offset + j) = outputs[j]."""
        outputs = np.asarray(outputs, dtype=np.int64)
        return cls(offset, int(outputs.shape[0]), outputs, name)

    @property
    def is_function(self) -> bool:
        return self.outputs is not None

    @property
    def padded(self) -> int:
        return max(2, next_pow2(self.size))

    def absorb(self, t: Transcript) -> None:
        """Bind the table's full description into the transcript."""
        t.absorb_bytes(LABEL_TABLE, self.name.encode())
        t.absorb_scalars(LABEL_TABLE, [self.offset % P, self.size, int(self.is_function)])
        if self.outputs is not None:
            t.absorb_vector(LABEL_TABLE, Fr.from_signed(self.outputs))

    def index_of(self, x: np.ndarray) -> np.ndarray:
        """Row index of each input x (unchecked: callers check the range)."""
        return np.asarray(x, dtype=np.int64) - self.offset

    def inputs_mle(self, point: Sequence[int]) -> int:
        """sum_{j < N} (offset + j) eq(point, j), on the padded hypercube."""
        if self.size == 1 << len(point):
            # closed form: the index's extension is sum_k 2^k r_k, the constant's is 1
            return (self.offset + sum(r << k for k, r in enumerate(point))) % P
        col = np.arange(self.size, dtype=np.int64) + self.offset
        return evaluate(_padded_signed(col, 1 << len(point)), point)

    def outputs_mle(self, point: Sequence[int]) -> int:
        assert self.outputs is not None
        return evaluate(_padded_signed(self.outputs, 1 << len(point)), point)


def _padded_signed(values: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros(n, dtype=np.int64)
    out[: values.shape[0]] = values
    return Fr.from_signed(out)


def indicator_mle(n: int, point: Sequence[int]) -> int:
    """ind~(point) for ind(i) = [i < n] over {0,1}^len(point), little-endian, in O(len)."""
    # [i < n] scanning bits from the top: i < n iff at the first differing bit, i has 0, n has 1.
    acc = 0  # extension of [i < n] restricted to the bits seen so far (top-down)
    eq_prefix = 1  # extension of [the bits seen so far equal n's]
    for k in range(len(point) - 1, -1, -1):
        r = point[k]
        if (n >> k) & 1:
            acc = (acc + eq_prefix * (1 - r)) % P
            eq_prefix = eq_prefix * r % P
        else:
            eq_prefix = eq_prefix * (1 - r) % P
    if n >> len(point):
        return 1  # every index is below n
    return acc % P


# ---------------------------------------------------------------- proof objects


@dataclass(frozen=True)
class LookupProof:
    """One batched fraction-sum proof over every looked-up vector's tree and the table's tree
    (in that order), and the operand values X~(rho)[, Y~(rho)] of each looked-up vector."""

    trees: fractions.FractionProof
    operands: tuple[tuple[int, ...], ...]

    def write(self, w: Writer) -> None:
        with w.section("lookup"):
            self.trees.write(w)
            w.fields([x for ops in self.operands for x in ops])

    @classmethod
    def read(cls, r: Reader, table: LookupTable, sizes: Sequence[int]) -> "LookupProof":
        width = 2 if table.is_function else 1
        with r.section("lookup"):
            trees = fractions.FractionProof.read(r, _depths(table, sizes))
            n = width * len(sizes)
            flat = r.fields(max_len=n, exact_len=n)
        ops = tuple(tuple(flat[width * i:width * (i + 1)]) for i in range(len(sizes)))
        return cls(trees, ops)


def _depths(table: LookupTable, sizes: Sequence[int]) -> list[int]:
    return [num_vars(_padded_len(n)) for n in sizes] + [num_vars(table.padded)]


@dataclass(frozen=True)
class LookupClaims:
    """What the caller must discharge: claims on each X (and Y), and on m."""

    inputs: tuple[Claim, ...]
    outputs: tuple[Claim | None, ...]
    multiplicities: Claim


def _padded_len(n: int) -> int:
    return max(2, next_pow2(n))


# ---------------------------------------------------------------- prover


def multiplicities(table: LookupTable, columns: Sequence[tuple[np.ndarray, np.ndarray | None]]
                   ) -> np.ndarray:
    """m (int64, length table.padded): how often each row is looked up.

    ``columns`` holds (X, Y) per looked-up vector (Y None for a range table). Raises ProverError
    naming the first entry that is not in the table.
    """
    m = np.zeros(table.padded, dtype=np.int64)
    for s, (x, y) in enumerate(columns):
        x = np.asarray(x, dtype=np.int64).reshape(-1)
        idx = table.index_of(x)
        bad = (idx < 0) | (idx >= table.size)
        if bad.any():
            i = int(np.argmax(bad))
            raise ProverError(f"lookup {s}: entry {i} = {int(x[i])} is not in table {table.name!r}")
        if table.is_function:
            if y is None:
                raise ProverError("a function table needs (X, Y) pairs")
            y = np.asarray(y, dtype=np.int64).reshape(-1)
            wrong = table.outputs[idx] != y
            if wrong.any():
                i = int(np.argmax(wrong))
                raise ProverError(f"lookup {s}: entry {i}: f({int(x[i])}) is "
                                  f"{int(table.outputs[idx[i]])}, not {int(y[i])}")
        m += np.bincount(idx, minlength=table.padded)
    return m


def _begin(t: Transcript, table: LookupTable, sizes: Sequence[int]) -> tuple[int, int]:
    table.absorb(t)
    t.absorb_scalars(LABEL_SIZES, list(sizes))
    alpha = t.challenge(LABEL_ALPHA) if table.is_function else 0
    return alpha, t.challenge(LABEL_BETA)


def _leaves(values: np.ndarray, n: int, beta: int) -> tuple[np.ndarray, np.ndarray]:
    """p = [i < n], q = [i < n](beta + v_i) + [i >= n] for a padded Fr vector ``values``."""
    size = values.shape[0]
    ind = np.zeros(size, dtype=np.int64)
    ind[:n] = 1
    p = Fr.from_signed(ind)
    q = Fr.add(values, Fr.scale(p, beta))
    q = Fr.add(q, Fr.from_signed(1 - ind))
    return p, q


def prove(
    t: Transcript,
    table: LookupTable,
    columns: Sequence[tuple[np.ndarray, np.ndarray | None]],
    m: np.ndarray,
) -> tuple[LookupProof, LookupClaims]:
    """Prove that every (X[i], Y[i]) of each column pair is a row of the table.

    Call after m's commitment (and the operands') are absorbed. Returns the proof and the
    claims the caller must discharge (on each padded X and Y, and on the padded m).
    """
    sizes = [int(np.asarray(x).size) for x, _ in columns]
    if any(n < 1 for n in sizes):
        raise ProverError("empty lookup")
    alpha, beta = _begin(t, table, sizes)
    trees, operands = [], []
    for (x, y), n in zip(columns, sizes):
        size = _padded_len(n)
        fx = _padded_signed(np.asarray(x, dtype=np.int64).reshape(-1), size)
        fy = None
        s = fx
        if table.is_function:
            fy = _padded_signed(np.asarray(y, dtype=np.int64).reshape(-1), size)
            s = Fr.add(fx, Fr.scale(fy, alpha))
        trees.append(_leaves(s, n, beta))
        operands.append((fx, fy))

    tx = _padded_signed(np.arange(table.size, dtype=np.int64) + table.offset, table.padded)
    tcol = tx if table.outputs is None else Fr.add(
        tx, Fr.scale(_padded_signed(table.outputs, table.padded), alpha))
    _, tq = _leaves(tcol, table.size, beta)
    trees.append((Fr.from_signed(m), tq))
    try:
        tree_proof, tree_claims = fractions.prove(t, trees)
    except ProverError as e:
        raise ProverError(f"lookup: {e} (beta collided with an entry)") from e

    ops, in_claims, out_claims = [], [], []
    for (fx, fy), cl in zip(operands, tree_claims):
        rho = cl.q.point
        vals = (evaluate(fx, rho),) if fy is None else (evaluate(fx, rho), evaluate(fy, rho))
        ops.append(vals)
        in_claims.append(Claim(rho, vals[0]))
        out_claims.append(None if fy is None else Claim(rho, vals[1]))
    t.absorb_scalars(LABEL_OPERANDS, [v for vals in ops for v in vals])
    proof = LookupProof(tree_proof, tuple(ops))
    return proof, LookupClaims(tuple(in_claims), tuple(out_claims), tree_claims[-1].p)


# ---------------------------------------------------------------- verifier


def verify(t: Transcript, table: LookupTable, sizes: Sequence[int], proof: LookupProof
           ) -> LookupClaims:
    """Check a lookup proof for vectors of the given sizes; return the claims to discharge.

    Raises VerificationError if any check fails.
    """
    width = 2 if table.is_function else 1
    if len(proof.operands) != len(sizes) or any(len(v) != width for v in proof.operands):
        raise VerificationError("lookup: wrong number of operand values")
    if any(n < 1 for n in sizes):
        raise VerificationError("lookup: empty vector")
    alpha, beta = _begin(t, table, sizes)
    tree_claims = fractions.verify(t, proof.trees, _depths(table, sizes))
    lhs = 0
    in_claims, out_claims = [], []
    for vals, n, cl in zip(proof.operands, sizes, tree_claims):
        rho = cl.q.point
        ind = indicator_mle(n, rho)
        if cl.p.value != ind:
            raise VerificationError("lookup: the numerators of a looked-up vector are not 1")
        s_val = vals[0] if width == 1 else (vals[0] + alpha * vals[1]) % P
        if cl.q.value != (s_val + beta * ind + 1 - ind) % P:
            raise VerificationError("lookup: denominators do not match the operand values")
        lhs = (lhs + cl.numerator * pow(cl.denominator, -1, P)) % P
        in_claims.append(Claim(rho, vals[0]))
        out_claims.append(Claim(rho, vals[1]) if width == 2 else None)
    t.absorb_scalars(LABEL_OPERANDS, [v for vals in proof.operands for v in vals])

    tcl = tree_claims[-1]
    rho = tcl.q.point
    ind = indicator_mle(table.size, rho)
    tval = table.inputs_mle(rho)
    if table.is_function:
        tval = (tval + alpha * table.outputs_mle(rho)) % P
    if tcl.q.value != (tval + beta * ind + 1 - ind) % P:
        raise VerificationError("lookup: table denominators do not match the public table")
    if lhs * tcl.denominator % P != tcl.numerator:
        raise VerificationError("lookup: the looked-up values are not all in the table")
    return LookupClaims(tuple(in_claims), tuple(out_claims), tcl.p)
