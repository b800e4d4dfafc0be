"""Hyrax polynomial commitments with zero-knowledge openings.

Wahby, Tzialla, shelat, Thaler, Walfish, "Doubly-efficient zkSNARKs without trusted setup"
(S&P 2018), section 6 and appendix A.

Statement. A vector v of 2^n Fr entries (a tensor flattened in C order and zero-padded) is the
2^a x 2^b row-major matrix M (b = ``log_cols``, a = n - b): entry i = row * 2^b + col, so the
low b variables index the column and the high a variables the row (little-endian, as in
:mod:`zk.multilinear`). The commitment is one hiding Pedersen commitment per row,
C_i = <M_i, G> + rho_i H. For a point z = (z_col, z_row)::

    v~(z) = sum_i eq(z_row, i) <M_i, eq(z_col)> = <w, R>,  w = L^T M,  L = eq(z_row), R = eq(z_col)

Opening (:func:`open`), zero knowledge: the claimed value is itself committed (a
:class:`~zk.protocol.context.ComClaim`), never sent. The verifier forms C' = sum_i L_i C_i =
<w, G> + rho' H homomorphically and the prover shows that the claim's commitment holds <w, R>
with the logarithmic dot-product proof (:func:`zk.protocol.sigma.dot_product_log`; Spartan's
``PolyEvalProof``): neither w nor the folded scalars appear in the clear. Several claims with
one column point share one argument (row weights combined with powers of a challenge gamma);
claims at several column points are first reduced to one point by a zero-knowledge sumcheck of
sum_x (sum_k gamma^k eq(z_k, x)) v(x) = sum_k gamma^k v_k, so a tensor costs one argument
((2b + 1) points and 2 field elements) however many claims it discharges.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import ClassVar

import numpy as np

from zk import curve as ZC
from zk import multilinear as ML
from zk.claims import ComClaim
from zk.commit.pedersen import DEFAULT_LABEL, PedersenKey, commit_rows, commit_rows_ints
from zk.encoding import Reader, Writer
from zk.errors import ProverError, VerificationError
from zk.field import Fr
from zk.protocol import sigma
from zk.protocol import sumcheck as zs
from zk.protocol.context import Context, Sym, VecCom, com_sum
from zk.transcript import Transcript

__all__ = [
    "DEFAULT_LABEL", "HyraxParams", "HyraxCommitment", "HyraxWitness", "Tensor", "layout",
    "commit", "commit_field", "bind", "commit_in", "open",
]

P = Fr.modulus
MAX_VARS = 40

# transcript labels
L_COMMITMENT = b"hyrax/commitment"
L_SHAPE = b"hyrax/shape"
L_CLAIMS = b"hyrax/claims"
L_GAMMA = b"hyrax/gamma"


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
    """The prover's side of a commitment: the padded values and the blinds.

    ``values`` is either the Fr matrix ((2^num_vars, 4) Montgomery) or, for a committed integer
    tensor, its signed integers ((2^num_vars,), int64 or a narrower signed type for a tensor
    kept long, see :func:`narrow`), embedded in Fr on first use of ``matrix`` (an opening),
    not at commit time: 32 bytes per entry instead of 8 (or 1 for 8-bit weights)."""

    num_vars: int
    log_cols: int
    values: np.ndarray = field(repr=False)
    blinds: np.ndarray = field(repr=False)  # (rows, 4)

    def __post_init__(self) -> None:
        v = self.values
        if v.shape not in ((1 << self.num_vars, 4), (1 << self.num_vars,)):
            raise ValueError(f"witness of shape {v.shape} for {self.num_vars} variables")

    @cached_property
    def matrix(self) -> np.ndarray:
        """The padded values as an (2^num_vars, 4) Fr Montgomery array."""
        v = self.values
        return Fr.from_signed(v) if v.ndim == 1 else v

    @property
    def log_rows(self) -> int:
        return self.num_vars - self.log_cols

    def evaluate(self, point: Sequence[int]) -> int:
        """v~(point) (the value an honest claim states)."""
        return ML.evaluate(self.matrix, list(point))


def narrow(values: np.ndarray) -> np.ndarray:
    """A signed integer vector in the narrowest of int8/16/32/64 that holds it (a model's
    weight witnesses: held for the model's lifetime, 8-bit weights at 1 byte an entry)."""
    v = np.asarray(values)
    if v.size == 0:
        return v.astype(np.int8)
    lo, hi = int(v.min()), int(v.max())
    for t in (np.int8, np.int16, np.int32):
        if np.iinfo(t).min <= lo and hi <= np.iinfo(t).max:
            return v.astype(t)
    return v.astype(np.int64)


def _finish(witness: HyraxWitness, rows_aff: np.ndarray) -> tuple[HyraxCommitment, HyraxWitness]:
    com = HyraxCommitment(witness.num_vars, witness.log_cols, tuple(ZC.compress_list(rows_aff)))
    com.__dict__["row_points"] = rows_aff
    return com, witness


def commit(tensor: np.ndarray, *, log_cols: int | None = None,
           params: HyraxParams = DEFAULT_PARAMS,
           rng: np.random.Generator | None = None,
           device: str = "auto", compact: bool = False,
           zero_rows: np.ndarray | None = None) -> tuple[HyraxCommitment, HyraxWitness]:
    """Commit to a signed integer tensor (any shape; flattened in C order, zero-padded).

    Blinds come from the OS CSPRNG unless a numpy ``rng`` is given (tests and benchmarks only).
    ``device`` picks where the row MSMs run (:mod:`gpu.dispatch`); the bytes are the same.
    ``compact``: the witness keeps its values in the narrowest integer type (:func:`narrow`).
    ``zero_rows``: a boolean per row, rows that are publicly zero (padding): they must hold
    zeros, get blind 0 and commit to the identity (no MSM; see :func:`commit_in`).
    """
    flat = np.ascontiguousarray(np.asarray(tensor).reshape(-1))
    if not np.issubdtype(flat.dtype, np.integer):
        raise ProverError(f"commit takes an integer tensor, got {flat.dtype}")
    n, b = layout(flat.size, log_cols)
    padded = np.zeros(1 << n, dtype=np.int64)
    padded[: flat.size] = flat
    rows = 1 << (n - b)
    blinds = Fr.random(rows, rng)
    mat = padded.reshape(rows, 1 << b)
    keep = np.arange(rows)
    if zero_rows is not None:
        zero_rows = np.asarray(zero_rows, dtype=bool)
        if zero_rows.shape != (rows,):
            raise ValueError(f"zero_rows: one flag for each of the {rows} rows")
        if mat[zero_rows].any():
            raise ProverError("a row declared publicly zero holds a nonzero entry")
        blinds[zero_rows] = 0
        keep = np.flatnonzero(~zero_rows)
    step = max(1, COMMIT_BLOCK >> b)  # row blocks: the MSM's scratch stays bounded
    rows_aff = ZC.identity(rows)
    for k0 in range(0, keep.size, step):
        sel = keep[k0:k0 + step]
        if zero_rows is None:  # contiguous rows: views, no copy
            part, bl = mat[sel[0]:sel[-1] + 1], blinds[sel[0]:sel[-1] + 1]
        else:
            part, bl = mat[sel], blinds[sel]
        rows_aff[sel] = commit_rows_ints(params.key(b), part, bl, device)
    return _finish(HyraxWitness(n, b, narrow(padded) if compact else padded, blinds), rows_aff)


COMMIT_BLOCK = 1 << 22
"""Entries of an integer tensor committed per batch of row MSMs."""


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


# ---------------------------------------------------------------- zero-knowledge openings


@dataclass
class Tensor:
    """A committed vector as a protocol sees it: its shape, the verifier's ids of its row
    commitments, the prover's witness."""

    num_vars: int
    log_cols: int
    rows: list[int] | None = field(default=None, repr=False)
    witness: HyraxWitness | None = field(default=None, repr=False)
    params: HyraxParams = DEFAULT_PARAMS

    @property
    def log_rows(self) -> int:
        return self.num_vars - self.log_cols


def _check_params(ctx: Context, params: HyraxParams) -> None:
    if params.label != ctx.label:
        raise ValueError("the commitment and the proof must use one generator set (one H)")


def bind(ctx: Context, commitment: HyraxCommitment, witness: HyraxWitness | None = None, *,
         params: HyraxParams = DEFAULT_PARAMS, absorb: bool = True) -> Tensor:
    """A commitment made outside the proof (a model's weights): absorbed into the transcript
    (``absorb=False`` only where the transcript already holds a collision-resistant digest of
    it); the verifier registers its rows, the prover supplies the witness."""
    _check_params(ctx, params)
    if absorb:
        commitment.absorb(ctx.t)
    if ctx.proving:
        if witness is None or witness.num_vars != commitment.num_vars \
                or witness.log_cols != commitment.log_cols:
            raise ProverError("the witness does not match the commitment")
        return Tensor(commitment.num_vars, commitment.log_cols, None, witness, params)
    if len(commitment.rows) != 1 << commitment.log_rows:
        raise VerificationError("commitment has the wrong number of rows")
    ids = ctx.register(commitment.row_points)
    if ctx.trace is not None:
        ctx.trace.append(("bind", {"commitment": commitment, "rows": ids}))
    return Tensor(commitment.num_vars, commitment.log_cols, ids, None, params)


def commit_in(ctx: Context, num_vars: int, log_cols: int,
              make: Callable[[], tuple[HyraxCommitment, HyraxWitness]] | None, *,
              params: HyraxParams = DEFAULT_PARAMS,
              zero_rows: np.ndarray | None = None) -> Tensor:
    """A commitment made inside the proof: the prover's ``make()`` commits (hiding, fresh
    blinds), its rows go into the stream; the verifier reads them. Shapes come from the
    statement. ``zero_rows`` (a boolean per row, from the statement): rows that are publicly
    zero (padding). They are not sent: both sides take them as the identity, the commitment
    to zeros with blind 0 (``make`` commits them so, see :func:`commit`), so the tensor is bound
    to hold zeros there and nothing hidden is in them."""
    _check_params(ctx, params)
    ctx.t.absorb_scalars(L_SHAPE, [num_vars, log_cols])
    rows = 1 << (num_vars - log_cols)
    keep = None
    if zero_rows is not None:
        zero_rows = np.asarray(zero_rows, dtype=bool)
        if zero_rows.shape != (rows,):
            raise ValueError(f"zero_rows: one flag for each of the {rows} rows")
        keep = np.flatnonzero(~zero_rows)
    if ctx.proving:
        com, wit = make()
        if (com.num_vars, com.log_cols) != (num_vars, log_cols):
            raise AssertionError("tensor shape drifted from the statement")
        if keep is None:
            ctx.put_points(L_COMMITMENT, com.row_points)
        else:
            if wit.blinds[zero_rows].any():
                raise AssertionError("a publicly zero row was committed with a blind")
            ctx.put_points(L_COMMITMENT, com.row_points[keep])
        return Tensor(num_vars, log_cols, None, wit, params)
    if keep is None:
        return Tensor(num_vars, log_cols, ctx.take_points(L_COMMITMENT, rows), None, params)
    ids = np.full(rows, -1, dtype=np.int64)
    ids[keep] = ctx.take_points(L_COMMITMENT, int(keep.size))
    return Tensor(num_vars, log_cols, ids.tolist(), None, params)


def _row_sym(rows: Sequence[int], coefs: Sequence[int]) -> Sym:
    """sum_i coefs[i] row_i over the row commitments; id -1 is a publicly zero row (the
    identity, see :func:`commit_in`) and contributes nothing."""
    return Sym.combo([i for i in rows if i >= 0], [c for i, c in zip(rows, coefs) if i >= 0])


def open(ctx: Context, tensor: Tensor, claims: Sequence[ComClaim]) -> None:  # noqa: A001
    """Prove (prover) or check (verifier) every claim v~(point) = (value committed in com) on
    the tensor, in zero knowledge (see the module docstring)."""
    if not claims:
        raise ValueError("an opening needs at least one claim")
    n, b = tensor.num_vars, tensor.log_cols
    for c in claims:
        if len(c.point) != n:
            raise ValueError(f"claim point has {len(c.point)} coordinates, the tensor {n} "
                             f"variables")
    ctx.t.absorb_scalars(L_CLAIMS, [n, b, len(claims)]
                         + [int(x) % P for c in claims for x in c.point])
    gamma = ctx.challenge(L_GAMMA) if len(claims) > 1 else 1
    gk = [pow(gamma, k, P) for k in range(len(claims))]
    target = com_sum([c.com for c in claims], gk)
    if len({tuple(c.point[:b]) for c in claims}) == 1:
        _argument(ctx, tensor, [c.point[b:] for c in claims], gk, claims[0].point[:b], target)
        return
    points = [c.point for c in claims]

    def tables() -> list[np.ndarray]:
        # sum_k gamma^k eq(z_k, .); a claim whose high coordinates are bits (a stack member's
        # index, a layer) has its eq table inside one block: built at the block's size only
        a = np.zeros((1 << n, 4), dtype=np.uint64)
        cache: dict[tuple[int, ...], np.ndarray] = {}
        for g, z in zip(gk, points):
            s = 0
            while s < n and int(z[n - 1 - s]) % P in (0, 1):
                s += 1
            pre = tuple(int(x) for x in z[: n - s])
            off = sum((int(bit) % P) << j for j, bit in enumerate(z[n - s:])) << (n - s)
            if pre not in cache:
                cache[pre] = ML.eq_table(list(pre))
            blk = slice(off, off + (1 << (n - s)))
            a[blk] = Fr.axpy(g, cache[pre], a[blk])
        return [a, tensor.witness.matrix]

    end = zs.run(ctx, target, n, 2, hidden=[1], tables=tables if ctx.proving else None,
                 num_factors=2)
    a_val = sum(g * ML.eq_eval(z, end.point) for g, z in zip(gk, points)) % P
    value = end.values[1]
    end.close(value * a_val)
    _argument(ctx, tensor, [end.point[b:]], [1], end.point[:b], value)


def fold_witness_rows(wit: HyraxWitness, row_point: Sequence[int]) -> np.ndarray:
    """sum_i eq(row_point, i) M_i: the row fold of a committed matrix at a point."""
    return fold_witness_weighted(wit, ML.eq_table(list(row_point)))


def fold_witness_weighted(wit: HyraxWitness, weights: np.ndarray) -> np.ndarray:
    """sum_i weights[i] M_i for an Fr vector of row weights. An integer witness is folded as
    integers (:func:`gpu.poly.fold_small`): its Fr matrix (32 bytes an entry) is never built
    for an opening."""
    from gpu import poly as K

    rows, cols = 1 << wit.log_rows, 1 << wit.log_cols
    if weights.shape != (rows, 4):
        raise ValueError("one weight per row")
    w = np.ascontiguousarray(weights, dtype=np.uint64)
    out = np.empty((cols, 4), dtype=np.uint64)
    if wit.values.ndim == 2:
        K.rows_fold(Fr.desc, wit.matrix, rows, cols, w, out)
    else:
        K.fold_small(Fr.desc, np.ascontiguousarray(wit.values, dtype=np.int64), 1, rows, cols,
                     w, out)
    return out


def _argument(ctx: Context, tensor: Tensor, row_points: Sequence[Sequence[int]],
              weights: Sequence[int], col_point: Sequence[int], target) -> None:
    """One dot-product argument: target commits <sum_k weights_k eq(row_k)^T M, eq(col)>."""
    b = tensor.log_cols
    rows, cols = 1 << tensor.log_rows, 1 << b
    label = tensor.params.label + b"/G"
    if ctx.proving:
        wit = tensor.witness
        w, rho = None, 0
        for g, rp in zip(weights, row_points):
            f = fold_witness_rows(wit, list(rp))
            w = Fr.scale(f, g) if w is None else Fr.axpy(g, f, w)
            rho = (rho + g * Fr.inner(ML.eq_table(list(rp)), wit.blinds)) % P
        a = ML.eq_table(list(col_point))
        sigma.dot_product_log(ctx, label, cols, VecCom(w=w, r=rho), a, target)
        return
    acc = np.zeros((rows, 4), dtype=np.uint64)  # sum_k weights_k eq(row_k), in the field
    for g, rp in zip(weights, row_points):
        acc = Fr.axpy(int(g) % P, ML.eq_table(list(rp)), acc)
    lw = Fr.to_ints(acc)
    sigma.dot_product_log(ctx, label, cols, VecCom(s=_row_sym(tensor.rows, lw)), [], target,
                          a_final=_folded_eq(col_point))


def _folded_eq(point: Sequence[int]):
    """The verifier's folded eq(point) in closed form, for a dot-product argument of length
    2^len(point): R folds like G, prod_j (u_j^-1 (1 - z) + u_j z), z = point[b-1-j]."""
    zc = [int(x) % P for x in point]
    b = len(zc)

    def a_final(us: Sequence[int], uis: Sequence[int]) -> int:
        r = 1
        for j in range(b):
            z = zc[b - 1 - j]
            r = r * ((uis[j] * (1 - z) + us[j] * z) % P) % P
        return r

    return a_final


def open_batch(ctx: Context, items: Sequence[tuple[Tensor, Sequence[ComClaim]]]) -> None:
    """One zero-knowledge opening for every claim on several tensors (of one generator set):
    one sumcheck over the columns and ONE logarithmic dot-product argument for all of them.

    With B the most column variables of any tensor, a tensor of b <= B columns is its matrix
    zero-padded to 2^B columns (its row commitments are unchanged: the generators of a set are
    one sequence, and a shorter row uses its prefix). The claims (all tensors, one index k)
    are combined with powers of a challenge gamma. The claims of tensor t at one column point
    c share the row fold F_(t,c) = sum_k gamma^k eq(row_k)^T M_t; a sumcheck over the B column
    variables proves sum_(t,c) sum_x eq(c || 0, x) F_(t,c)(x) = sum_k gamma^k v_k, ending at a
    point r with the folds' values F_(t,c)(r) committed. Those are combined with powers of a
    second challenge delta into one claim on W = sum delta^j F_j, whose commitment the verifier
    forms from every row commitment homomorphically, and one dot-product argument of length
    2^B proves <W, eq(r)>. The proof: a sumcheck over B variables, one committed value per
    (tensor, column point), (2B + 1) points and 2 field elements. The prover folds each matrix
    (as integers where it can) once per column point and once more for W; it never builds a
    tensor's field copy or an eq table over its entries."""
    items = [(t, list(cl)) for t, cl in items if cl]
    if not items:
        raise ValueError("an opening needs at least one claim")
    labels = {t.params.label for t, _ in items}
    if len(labels) != 1:
        raise ValueError("a batched opening needs one generator set")
    B = max(t.log_cols for t, _ in items)
    head: list[int] = [len(items), B]
    for t, cl in items:
        for c in cl:
            if len(c.point) != t.num_vars:
                raise ValueError(f"claim point has {len(c.point)} coordinates, the tensor "
                                 f"{t.num_vars} variables")
        head += [t.num_vars, t.log_cols, len(cl)]
    ctx.t.absorb_scalars(L_CLAIMS, head + [int(x) % P for _, cl in items for c in cl
                                           for x in c.point])
    gamma = ctx.challenge(L_GAMMA)
    # groups: (item, padded column point, [(global claim index, row point)])
    groups: list[tuple[int, tuple[int, ...], list[tuple[int, tuple[int, ...]]]]] = []
    k = 0
    for i, (t, cl) in enumerate(items):
        b = t.log_cols
        mine: dict[tuple[int, ...], int] = {}
        for c in cl:
            cp = tuple(int(x) % P for x in c.point[:b]) + (0,) * (B - b)
            if cp not in mine:
                mine[cp] = len(groups)
                groups.append((i, cp, []))
            groups[mine[cp]][2].append((k, tuple(c.point[b:])))
            k += 1
    gk = [1]
    for _ in range(k - 1):
        gk.append(gk[-1] * gamma % P)
    target = com_sum([c.com for _, cl in items for c in cl], gk)
    eq_pts = list(dict.fromkeys(cp for _, cp, _ in groups))
    D, E = len(groups), len(eq_pts)
    terms = [(1, (eq_pts.index(cp), E + j)) for j, (_, cp, _) in enumerate(groups)]

    def row_weights(members: Sequence[tuple[int, tuple[int, ...]]], scale: int, rows: int,
                    acc: np.ndarray | None = None) -> np.ndarray:
        out = np.zeros((rows, 4), dtype=np.uint64) if acc is None else acc
        for kk, rp in members:
            out = Fr.axpy(scale * gk[kk] % P, ML.eq_table(list(rp)), out)
        return out

    def padded_fold(t: Tensor, weights: np.ndarray) -> np.ndarray:
        f = fold_witness_weighted(t.witness, weights)
        if t.log_cols == B:
            return f
        out = np.zeros((1 << B, 4), dtype=np.uint64)
        out[: f.shape[0]] = f
        return out

    def tables() -> np.ndarray:
        out = np.empty((E + D, 1 << B, 4), dtype=np.uint64)
        for j, cp in enumerate(eq_pts):
            out[j] = ML.eq_table(list(cp))
        for j, (i, _, members) in enumerate(groups):
            t = items[i][0]
            out[E + j] = padded_fold(t, row_weights(members, 1, 1 << t.log_rows))
        return out

    end = zs.run(ctx, target, B, 2, hidden=list(range(E, E + D)), terms=terms,
                 tables=tables if ctx.proving else None, num_factors=E + D)
    end.close_terms(terms, [ML.eq_eval(list(cp), list(end.point)) for cp in eq_pts]
                    + [None] * D)
    delta = ctx.challenge(L_GAMMA)
    dj = [1]
    for _ in range(D - 1):
        dj.append(dj[-1] * delta % P)
    value = com_sum([end.values[E + j] for j in range(D)], dj)
    # each tensor's row weights in the combined claim: sum over its groups of delta^j gamma^k
    # eq(row_k)
    weights: list[np.ndarray] = []
    for i, (t, _) in enumerate(items):
        acc = np.zeros((1 << t.log_rows, 4), dtype=np.uint64)
        for j, (gi, _, members) in enumerate(groups):
            if gi == i:
                acc = row_weights(members, dj[j], 1 << t.log_rows, acc)
        weights.append(acc)
    label = items[0][0].params.label + b"/G"
    if ctx.proving:
        w, rho = None, 0
        for (t, _), wt in zip(items, weights):
            f = padded_fold(t, wt)
            w = f if w is None else Fr.add(w, f)
            rho = (rho + Fr.inner(wt, t.witness.blinds)) % P
        sigma.dot_product_log(ctx, label, 1 << B, VecCom(w=w, r=rho), ML.eq_table(
            list(end.point)), value)
        return
    sym = None
    for (t, _), wt in zip(items, weights):
        s = _row_sym(t.rows, Fr.to_ints(wt))
        sym = s if sym is None else sym + s
    sigma.dot_product_log(ctx, label, 1 << B, VecCom(s=sym), [], value,
                          a_final=_folded_eq(end.point))
