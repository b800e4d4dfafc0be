"""Hyrax polynomial commitments with a hiding, logarithmic inner-product opening.

Wahby, Tzialla, shelat, Thaler, Walfish, "Doubly-efficient zkSNARKs without trusted setup"
(S&P 2018), section 6 and appendix A; the inner-product argument is the Bulletproofs
reduction (Bunz et al., S&P 2018) with blinding, finished by a Schnorr-style proof of knowledge.

Statement. A vector v of 2^n Fr entries (a tensor flattened in C order and zero-padded) is the
2^a x 2^b row-major matrix M (b = ``log_cols``, a = n - b): entry i = row * 2^b + col, so the
low b variables index the column and the high a variables the row (little-endian, as in
:mod:`zk.multilinear`). The commitment is one hiding Pedersen commitment per row,
C_i = <M_i, G> + rho_i H. For a point z = (z_col, z_row)::

    v~(z) = sum_i eq(z_row, i) <M_i, eq(z_col)> = <w, R>,  w = L^T M,  L = eq(z_row), R = eq(z_col)

The verifier computes C' = sum_i L_i C_i = <w, G> + rho' H itself, and the prover shows
<w, R> = y for the committed w with b rounds of halving: in round j it sends
L_j = <w_lo, G_hi> + x <w_lo, R_hi> U + l_j H and R_j = <w_hi, G_lo> + x <w_hi, R_lo> U + r_j H,
gets u_j, and folds w <- u w_lo + u^-1 w_hi, G <- u^-1 G_lo + u G_hi, R <- u^-1 R_lo + u R_hi.
At the end P = C' + y x U + sum_j (u_j^2 L_j + u_j^-2 R_j) must equal a (g + x r U) + rho H for
the folded w = a, G = g, R = r; the prover shows knowledge of (a, rho) with A = d (g + x r U)
+ s H, challenge e, z1 = d + e a, z2 = s + e rho. The verifier checks it as one MSM over
G, U, H, the row commitments, the L_j, R_j and A (g is sum_t coef(t) G_t with
coef(t) = prod_j u_j^(+-1), r = prod_j (u_j^-1 (1 - z_col[b-1-j]) + u_j z_col[b-1-j])).

Hiding: the row commitments, every L_j, R_j and A are blinded by fresh H-multiples, and z1, z2
are masked by d and s (honest-verifier zero knowledge, made non-interactive by Fiat-Shamir);
an opening reveals only the claimed values.

Batching: several claims on one commitment. Claims with the same column point share one
argument (their row weights are combined with powers of a challenge gamma); each distinct
column point gets its own argument, and all arguments are checked by one MSM with random
verifier weights. Proof size: (2b + 1) points and 2 field elements per distinct column point.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import ClassVar

import numba as nb
import numpy as np

from gpu import msm as M
from zk import curve as ZC
from zk import multilinear as ML
from zk.claims import Claim
from zk.encoding import Reader, Writer
from zk.errors import MalformedProofError, ProverError, VerificationError
from zk.field import Fr
from zk.pedersen import PedersenKey, commit_rows, commit_rows_ints
from zk.transcript import Transcript

__all__ = [
    "DEFAULT_LABEL", "HyraxParams", "HyraxCommitment", "HyraxWitness", "HyraxOpening",
    "IpaProof", "layout", "commit", "commit_field", "open_claims", "verify",
]

P = Fr.modulus
DEFAULT_LABEL = b"zkfhe-attention/hyrax/bn254/v1"
MAX_VARS = 40

# transcript labels
L_COMMITMENT = b"hyrax/commitment"
L_SHAPE = b"hyrax/shape"
L_CLAIMS = b"hyrax/claims"
L_GAMMA = b"hyrax/gamma"
L_X = b"hyrax/x"
L_LR = b"hyrax/ipa/LR"
L_U = b"hyrax/ipa/u"
L_A = b"hyrax/ipa/A"
L_E = b"hyrax/ipa/e"


def layout(num_entries: int, log_cols: int | None = None) -> tuple[int, int]:
    """(n, b): 2^n >= num_entries entries as 2^(n-b) rows of 2^b columns (default b = n // 2)."""
    n = max(0, (max(1, num_entries) - 1).bit_length())
    b = n // 2 if log_cols is None else log_cols
    if not 0 <= b <= n:
        raise ValueError(f"log_cols must be in [0, {n}], got {b}")
    if n > MAX_VARS:
        raise ValueError(f"tensors of more than 2^{MAX_VARS} entries are not supported")
    return n, b


@dataclass(frozen=True)
class HyraxParams:
    """The generator set: public, derived from ``label`` by hash-to-curve (no setup)."""

    label: bytes = DEFAULT_LABEL

    def key(self, log_cols: int) -> PedersenKey:
        return PedersenKey.derive(self.label, 1 << log_cols)


DEFAULT_PARAMS = HyraxParams()


# ---------------------------------------------------------------- commitment


@dataclass(frozen=True)
class HyraxCommitment:
    """Row commitments of a 2^(num_vars - log_cols) x 2^log_cols matrix (compressed points)."""

    KIND: ClassVar[str] = "hyrax-commitment"
    VERSION: ClassVar[int] = 1

    num_vars: int
    log_cols: int
    rows: tuple[bytes, ...] = field(repr=False)

    @property
    def log_rows(self) -> int:
        return self.num_vars - self.log_cols

    @cached_property
    def row_points(self) -> np.ndarray:
        """The row commitments as affine points (decoded and validated once)."""
        return ZC.decompress(list(self.rows))

    def absorb(self, t: Transcript) -> None:
        t.absorb_scalars(L_SHAPE, [self.num_vars, self.log_cols])
        t.absorb_points(L_COMMITMENT, self.rows)

    def write(self, w: Writer) -> None:
        w.u8(self.num_vars)
        w.u8(self.log_cols)
        w.points(self.rows)

    @classmethod
    def read(cls, r: Reader, version: int) -> "HyraxCommitment":
        n = r.u8()
        b = r.u8()
        if n > MAX_VARS or b > n:
            raise r.error(f"bad Hyrax shape: {n} variables, {b} column variables")
        rows = tuple(r.points(max_len=1 << (n - b), exact_len=1 << (n - b)))
        return cls(n, b, rows)


@dataclass
class HyraxWitness:
    """The prover's side of a commitment: the padded matrix (Fr Montgomery) and the blinds."""

    num_vars: int
    log_cols: int
    matrix: np.ndarray = field(repr=False)  # (2^num_vars, 4)
    blinds: np.ndarray = field(repr=False)  # (rows, 4)

    @property
    def log_rows(self) -> int:
        return self.num_vars - self.log_cols

    def evaluate(self, point: Sequence[int]) -> int:
        """v~(point) (the value an honest claim states)."""
        return ML.evaluate(self.matrix, list(point))


def _finish(witness: HyraxWitness, rows_aff: np.ndarray) -> tuple[HyraxCommitment, HyraxWitness]:
    com = HyraxCommitment(witness.num_vars, witness.log_cols, tuple(ZC.compress_list(rows_aff)))
    com.__dict__["row_points"] = rows_aff
    return com, witness


def commit(tensor: np.ndarray, *, log_cols: int | None = None,
           params: HyraxParams = DEFAULT_PARAMS,
           rng: np.random.Generator | None = None,
           device: str = "auto") -> tuple[HyraxCommitment, HyraxWitness]:
    """Commit to a signed integer tensor (any shape; flattened in C order, zero-padded).

    Blinds come from the OS CSPRNG unless a numpy ``rng`` is given (tests and benchmarks only).
    """
    flat = np.ascontiguousarray(np.asarray(tensor).reshape(-1))
    if not np.issubdtype(flat.dtype, np.integer):
        raise ProverError(f"commit takes an integer tensor, got {flat.dtype}")
    n, b = layout(flat.size, log_cols)
    padded = np.zeros(1 << n, dtype=np.int64)
    padded[: flat.size] = flat
    rows = 1 << (n - b)
    blinds = Fr.random(rows, rng)
    rows_aff = commit_rows_ints(params.key(b), padded.reshape(rows, 1 << b), blinds, device)
    return _finish(HyraxWitness(n, b, Fr.from_signed(padded), blinds), rows_aff)


def commit_field(vec: np.ndarray, *, log_cols: int | None = None,
                 params: HyraxParams = DEFAULT_PARAMS,
                 rng: np.random.Generator | None = None,
                 blinds: np.ndarray | None = None,
                 device: str = "auto") -> tuple[HyraxCommitment, HyraxWitness]:
    """Commit to an Fr vector ((k, 4) Montgomery array), zero-padded to a power of two.

    ``blinds`` (one Fr element per row) recomputes a known commitment; by default they are
    fresh (OS CSPRNG, or ``rng`` in tests)."""
    vec = np.ascontiguousarray(vec, dtype=np.uint64).reshape(-1, 4)
    n, b = layout(vec.shape[0], log_cols)
    padded = ML.pad(vec, 1 << n)
    rows = 1 << (n - b)
    if blinds is None:
        blinds = Fr.random(rows, rng)
    elif blinds.shape != (rows, 4):
        raise ValueError(f"need {rows} blinds")
    rows_aff = commit_rows(params.key(b), padded.reshape(rows, 1 << b, 4), blinds, device)
    return _finish(HyraxWitness(n, b, padded, blinds), rows_aff)


# ---------------------------------------------------------------- opening proof


@dataclass(frozen=True)
class IpaProof:
    """One hiding inner-product argument: L_j, R_j (b each), A, z1, z2."""

    L: tuple[bytes, ...]
    R: tuple[bytes, ...]
    A: bytes
    z1: int
    z2: int

    def write(self, w: Writer) -> None:
        with w.section("ipa"):
            w.points(self.L)
            w.points(self.R)
            w.point(self.A)
            w.field(self.z1)
            w.field(self.z2)

    @classmethod
    def read(cls, r: Reader) -> "IpaProof":
        with r.section("ipa"):
            L = tuple(r.points(max_len=MAX_VARS))
            R = tuple(r.points(max_len=MAX_VARS, exact_len=len(L)))
            return cls(L, R, r.point(), r.field(), r.field())


@dataclass(frozen=True)
class HyraxOpening:
    """Openings of several claims on one commitment: one argument per distinct column point."""

    KIND: ClassVar[str] = "hyrax-opening"
    VERSION: ClassVar[int] = 1

    arguments: tuple[IpaProof, ...]

    def write(self, w: Writer) -> None:
        w.u32(len(self.arguments))
        for a in self.arguments:
            a.write(w)

    @classmethod
    def read(cls, r: Reader, version: int) -> "HyraxOpening":
        k = r.u32()
        if k > 1 << 16:
            raise r.error(f"too many arguments in an opening: {k}")
        return cls(tuple(IpaProof.read(r) for _ in range(k)))


@dataclass(frozen=True)
class _Group:
    col_point: tuple[int, ...]
    row_points: tuple[tuple[int, ...], ...]
    values: tuple[int, ...]


def _absorb_statement(t: Transcript, com: HyraxCommitment, claims: Sequence[Claim]
                      ) -> tuple[list[_Group], list[int], int]:
    """The absorb sequence both sides share: commitment, claims, gammas, x. Returns the groups
    (claims by column point, in order of first appearance), one gamma per group and x."""
    if not claims:
        raise ValueError("an opening needs at least one claim")
    com.absorb(t)
    b = com.log_cols
    groups: dict[tuple[int, ...], list[Claim]] = {}
    for c in claims:
        if len(c.point) != com.num_vars:
            raise VerificationError(f"claim point has {len(c.point)} coordinates, the "
                                    f"commitment {com.num_vars} variables")
        if not all(0 <= x < P for x in c.point) or not 0 <= c.value < P:
            raise VerificationError("claim coordinates and values must be field elements")
        t.absorb_scalars(L_CLAIMS, list(c.point) + [c.value])
        groups.setdefault(tuple(c.point[:b]), []).append(c)
    out, gammas = [], []
    for col, cs in groups.items():
        gammas.append(t.challenge(L_GAMMA) if len(cs) > 1 else 1)
        out.append(_Group(col, tuple(tuple(c.point[b:]) for c in cs),
                          tuple(c.value for c in cs)))
    return out, gammas, t.challenge(L_X)


def _row_weights(g: _Group, gamma: int) -> tuple[np.ndarray, int]:
    """sum_k gamma^k eq(row_point_k) as an Fr vector, and sum_k gamma^k value_k."""
    acc = None
    y, gk = 0, 1
    for rp, v in zip(g.row_points, g.values):
        e = ML.eq_table(list(rp))
        acc = Fr.scale(e, gk) if acc is None else Fr.axpy(gk, e, acc)
        y = (y + gk * v) % P
        gk = gk * gamma % P
    return acc, y


def _coef(us: Sequence[int], uis: Sequence[int]) -> list[int]:
    """coef(t) = prod_j (u_j if bit (b-1-j) of t else u_j^-1) for t < 2^b, b = len(us):
    the weight of G_t in the folded generator."""
    b = len(us)
    coef = [1]
    for k in range(b):  # bit k of t is the hi/lo bit of round j = b-1-k
        j = b - 1 - k
        coef = [c * uis[j] % P for c in coef] + [c * us[j] % P for c in coef]
    return coef


def _mont(xs: Sequence[int]) -> np.ndarray:
    return Fr.from_ints(xs)


@contextmanager
def _threads(n: int) -> Iterator[None]:
    """Run numba kernels on at most n threads inside the block (thread-local setting)."""
    old = nb.get_num_threads()
    nb.set_num_threads(max(1, min(n, old)))
    try:
        yield
    finally:
        nb.set_num_threads(old)


def open_claims(witness: HyraxWitness, commitment: HyraxCommitment, claims: Sequence[Claim],
                transcript: Transcript, *, params: HyraxParams = DEFAULT_PARAMS,
                rng: np.random.Generator | None = None) -> HyraxOpening:
    """Prove every claim (its value must be the committed tensor's extension at its point)."""
    b = witness.log_cols
    rows = 1 << witness.log_rows
    cols = 1 << b
    for c in claims:
        if len(c.point) != witness.num_vars:
            raise ProverError("claim point of the wrong dimension")
    groups, gammas, x = _absorb_statement(transcript, commitment, claims)
    key = params.key(b)
    ext = key.extended()
    args = []
    for g, gamma in zip(groups, gammas):
        weights, y = _row_weights(g, gamma)
        w, gk = None, 1
        for rp in g.row_points:  # w = sum_k gamma^k eq(rp_k)^T M
            f = ML.fold_rows(witness.matrix, rows, cols, list(rp))
            w = Fr.scale(f, gk) if w is None else Fr.axpy(gk, f, w)
            gk = gk * gamma % P
        with _threads(1):  # vectors of 2^b entries: parallel regions cost more than they save
            args.append(_prove_ipa(ext, w, Fr.inner(weights, witness.blinds), y, g.col_point, x,
                                   transcript, rng))
    return HyraxOpening(tuple(args))


def _prove_ipa(ext: np.ndarray, w: np.ndarray, rho: int, y: int, col_point: Sequence[int],
               x: int, transcript: Transcript, rng: np.random.Generator | None) -> IpaProof:
    """The argument for <w, eq(col_point)> = y, w committed with blind rho under ext[:-2]."""
    cols = w.shape[0]
    b = cols.bit_length() - 1
    R = ML.eq_table(list(col_point))
    if Fr.inner(w, R) != y:
        raise ProverError("a claimed value is not the committed tensor's evaluation")
    coef = [1] * cols
    Ls, Rs = [], []
    t_idx = np.arange(cols)
    for j in range(b):
        length = cols >> j
        half = length // 2
        wl, wh = w[:half], w[half:length]
        Rl, Rh = R[:half], R[half:length]
        cL, cR = Fr.inner(wl, Rh), Fr.inner(wh, Rl)
        bl = Fr.random(2, rng)
        coef_m = _mont(coef)
        idx = t_idx % length
        hi = idx >= half
        sL = np.zeros((cols, 4), dtype=np.uint64)
        sR = np.zeros((cols, 4), dtype=np.uint64)
        sL[hi] = wl[idx[hi] - half]
        sR[~hi] = wh[idx[~hi]]
        scal = np.empty((2, cols + 2, 4), dtype=np.uint64)
        scal[0, :cols] = Fr.mul(sL, coef_m)
        scal[1, :cols] = Fr.mul(sR, coef_m)
        scal[0, cols] = Fr.scalar(x * cL)
        scal[1, cols] = Fr.scalar(x * cR)
        scal[:, cols + 1] = bl
        LR = ZC.compress_list(ZC.to_affine(M.msm_mont(ext, scal)))
        transcript.absorb_points(L_LR, LR)
        u = transcript.challenge(L_U)
        if u == 0:
            raise ProverError("zero challenge")
        ui = pow(u, -1, P)
        Ls.append(LR[0])
        Rs.append(LR[1])
        w = Fr.add(Fr.scale(wl, u), Fr.scale(wh, ui))
        R = Fr.add(Fr.scale(Rl, ui), Fr.scale(Rh, u))
        l_, r_ = Fr.to_ints(bl)
        rho = (rho + u * u % P * l_ + ui * ui % P * r_) % P
        coef = [c * (u if (t >> (b - 1 - j)) & 1 else ui) % P for t, c in enumerate(coef)]
    a = Fr.to_ints(w)[0]
    r_fin = Fr.to_ints(R)[0]
    d, s = Fr.to_ints(Fr.random(2, rng))
    scal = np.empty((1, cols + 2, 4), dtype=np.uint64)
    scal[0, :cols] = Fr.scale(_mont(coef), d)
    scal[0, cols] = Fr.scalar(d * r_fin % P * x)
    scal[0, cols + 1] = Fr.scalar(s)
    A = ZC.compress_list(ZC.to_affine(M.msm_mont(ext, scal)))[0]
    transcript.absorb_point(L_A, A)
    e = transcript.challenge(L_E)
    return IpaProof(tuple(Ls), tuple(Rs), A, (d + e * a) % P, (s + e * rho) % P)


def verify(commitment: HyraxCommitment, claims: Sequence[Claim], opening: HyraxOpening,
           transcript: Transcript, *, params: HyraxParams = DEFAULT_PARAMS) -> None:
    """Check an opening of ``claims`` on ``commitment``; raise VerificationError if it fails.

    Runs single-threaded: the work is a few small kernels and one MSM of 2^a + 2^b points, for
    which a parallel region's start-up (large on a loaded machine) costs more than it saves.
    """
    with _threads(1):
        _verify(commitment, claims, opening, transcript, params)


def _verify(commitment: HyraxCommitment, claims: Sequence[Claim], opening: HyraxOpening,
            transcript: Transcript, params: HyraxParams) -> None:
    b = commitment.log_cols
    cols = 1 << b
    rows = 1 << commitment.log_rows
    if len(commitment.rows) != rows:
        raise VerificationError("commitment has the wrong number of rows")
    groups, gammas, x = _absorb_statement(transcript, commitment, claims)
    if len(opening.arguments) != len(groups):
        raise VerificationError(f"opening has {len(opening.arguments)} arguments, the claims "
                                f"need {len(groups)}")
    try:
        row_pts = commitment.row_points
    except MalformedProofError as e:
        raise VerificationError(f"commitment: {e}") from e
    g_scal = [0] * cols
    row_scal = np.zeros((rows, 4), dtype=np.uint64)
    u_scal = h_scal = 0
    extra_pts, extra_scal = [], []
    for g, gamma, arg in zip(groups, gammas, opening.arguments):
        if len(arg.L) != b or len(arg.R) != b:
            raise VerificationError(f"argument has {len(arg.L)} rounds, expected {b}")
        if not (0 <= arg.z1 < P and 0 <= arg.z2 < P):
            raise VerificationError("response not a field element")
        us = []
        for Lj, Rj in zip(arg.L, arg.R):
            transcript.absorb_points(L_LR, [Lj, Rj])
            u = transcript.challenge(L_U)
            if u == 0:
                raise VerificationError("zero challenge")
            us.append(u)
        transcript.absorb_point(L_A, arg.A)
        e = transcript.challenge(L_E)
        omega = 1 if len(groups) == 1 else secrets.randbelow(P - 1) + 1
        uis = [pow(u, -1, P) for u in us]
        coef = _coef(us, uis)
        r_fin = 1
        for j in range(b):
            zc = g.col_point[b - 1 - j]
            r_fin = r_fin * ((uis[j] * (1 - zc) + us[j] * zc) % P) % P
        weights, y = _row_weights(g, gamma)
        oz1 = omega * arg.z1 % P
        g_scal = [(gs + oz1 * c) % P for gs, c in zip(g_scal, coef)]
        u_scal = (u_scal + omega * x % P * ((arg.z1 * r_fin - e * y) % P)) % P
        h_scal = (h_scal + omega * arg.z2) % P
        row_scal = Fr.axpy((-omega * e) % P, weights, row_scal)
        for j in range(b):
            extra_pts += [arg.L[j], arg.R[j]]
            extra_scal += [(-omega * e * us[j] * us[j]) % P, (-omega * e * uis[j] * uis[j]) % P]
        extra_pts.append(arg.A)
        extra_scal.append((-omega) % P)
    try:
        extra = ZC.decompress(extra_pts)
    except MalformedProofError as exc:
        raise VerificationError(f"opening: {exc}") from exc
    key = params.key(b)
    pts = np.concatenate([key.G, key.U, key.H, row_pts, extra])
    scal = np.concatenate([_mont(g_scal + [u_scal, h_scal]), row_scal, _mont(extra_scal)])
    total = M.msm_mont(pts, scal)
    if ZC.to_affine(total).any():
        raise VerificationError("Hyrax opening check failed")
