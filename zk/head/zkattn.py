"""zkAttn: a zero-knowledge proof that y = head(x) for the head inside a public model commitment.

The statement is the integer reference of :mod:`zk.attention_ref` (its docstring lists every
step). Public: x, y, the model commitment (dimensions, shifts, tables, bounds, scales, and hiding
commitments to the weights and biases). Hidden: the weights, the biases and every intermediate
tensor; the proof reveals nothing about them beyond (x, y) (zero knowledge, see README).

Notation: L' x H' and L' x L' grids are the padded (L x d_head) and (L x L) tensors, row-major
with the column index in the low variables; M is the public L' x L' mask (causal and real
positions), I the real L x d_head block, ind_L the first L rows; h(k) = 2^(k-1) for k > 0 and
h(0) = 0.

The prover commits to three stacks of witness tensors (:mod:`zk.head.stack`, hiding Hyrax):

* L' x H': remainders R_q, R_k, R_v, R_o, rounded r_q, r_k, r_v, r_o, and q, k, v;
* L' x L': remainder R_s, rounded scores r_s, c, e, p, and a 0/1 selector s of each row's
  maximum;
* L': row maxima m, row sums S, logarithms l;

and proves, commit-and-prove (:mod:`zk.protocol.context`): every value below is a Pedersen
commitment, every sumcheck is zero knowledge, every claim is discharged by a zero-knowledge
opening or computed by the verifier from public data:

1. one lookup (:mod:`zk.lookup.logup`, one fraction tree) over masked columns: (r_t, t) in the
   requantization table T_t, R_t in [0, 2^k_t), (r_o, y) in OUT with y public, R_o in
   [0, 2^k_o); R_s in [0, 2^k_s), r_s in its range, (d, c) in CLIPD, (c, e) in EXP, (u, p) in
   EXP2, s in {0, 1} on M; (S, l) in LOG on the first L entries. It ends at one point rho; the
   prover commits every column's value there (rho_LH, rho_LL, rho_L: the prefixes of rho), with
   d = r_s - m 1^T and u = 2^f c - l 1^T derived homomorphically (never committed). The lookup
   domains bound every rounded value, so no relation below can wrap around the field;
2. linear relations at rho (a random point fixed after the witness): the roundings
   acc_t + h(k_t) I = 2^k_t r_t + R_t, o2 + h(k_o) I = 2^k_o r_o + R_o,
   z + h(k_s) M = 2^k_s r_s + R_s give commitments to acc_t~, o2~ (at rho_LH) and z~ (at rho_LL);
3. row relations (one sumcheck, rows weighted by eq(rho_L, .)): sum_j M_ij s_ij = 1 and
   sum_j M_ij s_ij d_ij = 0 for real rows (with d <= 0 from CLIPD's domain, m is the row
   maximum of r_s), and S_i = sum_j M_ij e_ij;
4. z = M o (2 Q I K^T + rowsq(Q I) 1^T) (two sumchecks), o2 = 2 (M o p) V (one sumcheck), and
   acc_t = x W_t + ind_L b_t for the committed weights and biases (one sumcheck batched over
   q, k, v); the final products of hidden values are proven with proofs of product.

Llama-style heads (RoPE, :mod:`zk.attention_ref`): q and k round the rotated accumulator
rot_t = C o acc_t + S' o acc_t(., sigma(.)) (C, S' the public integer cos/sin tables of the
model commitment on the padded grid, sigma the half swap of the columns), so step 2 gives
commitments to rot_q~, rot_k~ (and acc_v~) at rho_LH. One more sumcheck, of
sum_x K(x) (acc_q + g acc_k)(x) + g^2 eq(rho, x) acc_v(x) with the public kernel
K(i, e) = eq(rho, (i, e)) C(i, e) + eq(rho, (i, sigma e)) S'(i, sigma e) (both sides build it;
the verifier evaluates its extension), moves all three to one point, where step 4's projection
sumcheck takes them. No bias (committed as zeros); grouped-query attention is in the weights.

zkLLM's release leaves the softmax's row-sum check and several openings unchecked and sends
every evaluation in the clear; here every link is checked and nothing hidden is sent in the
clear: sumcheck rounds are commitments, their checks one dot-product proof, equalities one
Schnorr proof, and every opening keeps its value committed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from zk.attention_model import (
    BIASES,
    WEIGHTS,
    Dims,
    ModelCommitment,
    ProvingModel,
    bias_layout,
    weight_layout,
)
from zk.attention_ref import BoundsViolation, run_reference
from zk.commit import hyrax
from zk.encoding import Reader, Writer, decode_envelope, encode_envelope
from zk.errors import MalformedProofError, ProverError, VerificationError
from zk.field import Fr
from zk.head import stack
from zk.lookup import logup
from zk.lookup.tables import Column, LookupTable, Selector, TableSet, indicator_mle
from zk.multilinear import P, eq_eval, eq_table, evaluate, fold_cols, fold_rows
from zk.protocol import sigma
from zk.protocol import sumcheck as zs
from zk.protocol.context import Com, Context, Stream, one_thread
from zk.transcript import Transcript

PROTOCOL = b"zkfhe/zkattn/v2"
MAX_LOG_COLS = 10
L_STATEMENT = b"zkattn/statement"
L_VALUES = b"zkattn/values"
L_GAMMA = b"zkattn/gamma"

LH = ("R_q", "R_k", "R_v", "R_o", "r_q", "r_k", "r_v", "r_o", "q", "k", "v")
LL = ("R_s", "r_s", "c", "e", "p", "s")
# saturating heads (HeadConfig.bounds_mode "saturate"): the rounded scores before their clip
LL_SATURATE = LL + ("r_raw",)
LV = ("m", "S", "l")
PROJ = ("q", "k", "v")

# the lookup's tables, in order
(T_Q, T_K, T_V, T_RQ, T_RK, T_RV, T_RS, T_SCORE, T_CLIPD, T_EXP, T_LOG, T_EXP2, T_RO, T_OUT,
 T_BIT) = range(15)


def _half(k: int) -> int:
    return 1 << (k - 1) if k > 0 else 0


# ---------------------------------------------------------------- the public statement shape


class Shape:
    """Everything the verifier derives from the model commitment alone."""

    def __init__(self, mc: ModelCommitment) -> None:
        cfg = mc.config
        self.mc = mc
        self.L, self.D, self.Hd = cfg.seq_len, cfg.d_model, cfg.d_head
        padded = Dims.of(cfg)
        self.dims = d = Dims(max(2, padded.L), padded.D, padded.H)  # fraction trees need 2+
        self.lh = stack.StackLayout(LH, d.h + d.l)
        # saturate mode: the scores round to r_raw, and (r_raw, r_s) lie in the clip's table
        self.saturate = "r_raw" in mc.bounds
        self.ll_names = LL_SATURATE if self.saturate else LL
        self.ll = stack.StackLayout(self.ll_names, 2 * d.l)
        self.lv = stack.StackLayout(LV, d.l)
        self.w = weight_layout(padded)
        self.b = bias_layout(padded)
        mask = np.zeros((d.L, d.L), dtype=np.int64)
        for i in range(self.L):
            mask[i, : (i + 1 if cfg.causal else self.L)] = 1
        self.mask = mask.reshape(-1)
        real = np.zeros((d.L, d.H), dtype=np.int64)
        real[: self.L, : self.Hd] = 1
        self.real = real.reshape(-1)
        k = mc.shifts
        T = mc.tables
        r_lo, r_hi = mc.bounds["r_s"]

        def fn(name: str) -> LookupTable:
            return LookupTable.function(T[name].offset, T[name].values, name)

        if self.saturate:  # (r_raw, clip(r_raw, r_lo, r_hi)) on r_raw's certified interval
            a_lo, a_hi = mc.bounds["r_raw"]
            if not a_lo <= r_lo <= r_hi <= a_hi:
                raise ValueError("the scores' window is not inside their interval")
            raw = np.arange(a_lo, a_hi + 1, dtype=np.int64)
            score_table = LookupTable.function(a_lo, np.clip(raw, r_lo, r_hi), "sat_s")
        else:
            score_table = LookupTable.range(r_lo, r_hi + 1, "r_s")

        self.tables = TableSet([
            fn("q"), fn("k"), fn("v"),
            LookupTable.range(0, 1 << k["q"], "R_q"), LookupTable.range(0, 1 << k["k"], "R_k"),
            LookupTable.range(0, 1 << k["v"], "R_v"), LookupTable.range(0, 1 << k["score"], "R_s"),
            score_table, fn("clipd"), fn("exp"), fn("log"),
            fn("exp2"), LookupTable.range(0, 1 << k["out"], "R_o"), fn("out"),
            LookupTable.range(0, 2, "bit"),
        ])
        self.sel_lh = Selector(d.L * d.H, mask=self.real)
        self.sel_ll = Selector(d.L * d.L, mask=self.mask)
        self.sel_l = Selector.first(self.L, d.L)
        self.col_tables = [T_Q, T_K, T_V, T_RQ, T_RK, T_RV, T_RO, T_OUT,
                           T_RS, T_SCORE, T_CLIPD, T_EXP, T_EXP2, T_BIT, T_LOG]
        self.rope = bool(cfg.rope)
        if self.rope:
            self._rope_grids(mc)

    def _rope_grids(self, mc: ModelCommitment) -> None:
        """C, S' on the padded L' x H' grid (zero outside the real block) and the column swap
        sigma (d -> d + H mod d_head on real columns, the identity on padding): rot = C o acc +
        S' o acc(., sigma(.))."""
        d = self.dims
        cos = np.asarray(mc.rope_cos, dtype=np.int64)
        sin = np.asarray(mc.rope_sin, dtype=np.int64)
        if cos.shape != (self.L, self.Hd // 2) or sin.shape != cos.shape or self.Hd % 2:
            raise ValueError("RoPE tables do not match the head's shape")
        c = np.zeros((d.L, d.H), dtype=np.int64)
        sp = np.zeros((d.L, d.H), dtype=np.int64)
        c[: self.L, : self.Hd] = np.concatenate([cos, cos], axis=1)
        sp[: self.L, : self.Hd] = np.concatenate([-sin, sin], axis=1)
        half = self.Hd // 2
        sigma = np.arange(d.H)
        sigma[: self.Hd] = (np.arange(self.Hd) + half) % self.Hd
        self.rope_c = Fr.from_signed(c)
        self.rope_s = Fr.from_signed(sp)
        cols = np.arange(d.L * d.H) % d.H
        self.rope_perm = np.arange(d.L * d.H) - cols + sigma[cols]  # (i, e) -> (i, sigma(e))

    def rope_kernel(self, point: Sequence[int]) -> np.ndarray:
        """K with rot~(point) = sum_x K(x) acc(x): K(i, e) = eq(point, (i, e)) C(i, e) +
        eq(point, (i, sigma e)) S'(i, sigma e) (sigma is an involution). Both sides build it."""
        e = eq_table(list(point))
        return Fr.add(Fr.mul(e, self.rope_c), Fr.mul(e, self.rope_s)[self.rope_perm])

    def columns(self, w: dict | None = None) -> list[Column]:
        """The lookup's columns (with the prover's values when ``w`` is given)."""
        def col(table: int, sel: Selector, x: str, y: str | None = None) -> Column:
            if w is None:
                return Column(table, sel)
            return Column(table, sel, w[x], None if y is None else w[y])

        lh, ll = self.sel_lh, self.sel_ll
        return [
            col(T_Q, lh, "r_q", "q"), col(T_K, lh, "r_k", "k"), col(T_V, lh, "r_v", "v"),
            col(T_RQ, lh, "R_q"), col(T_RK, lh, "R_k"), col(T_RV, lh, "R_v"),
            col(T_RO, lh, "R_o"), col(T_OUT, lh, "r_o", "y"),
            col(T_RS, ll, "R_s"),
            col(T_SCORE, ll, "r_raw", "r_s") if self.saturate else col(T_SCORE, ll, "r_s"),
            col(T_CLIPD, ll, "d", "c"),
            col(T_EXP, ll, "c", "e"), col(T_EXP2, ll, "u", "p"), col(T_BIT, ll, "s"),
            col(T_LOG, self.sel_l, "S", "l"),
        ]

    def mask_mle(self, point: Sequence[int]) -> int:
        return self.sel_ll.mle(point)

    def real_mle(self, point: Sequence[int]) -> int:
        d = self.dims
        return indicator_mle(self.Hd, point[: d.h]) * indicator_mle(self.L, point[d.h:]) % P


# ---------------------------------------------------------------- the proof object


def _pack_ints(a: np.ndarray) -> tuple[int, bytes]:
    a = np.asarray(a, dtype=np.int64)
    for width, dt in ((1, "<i1"), (2, "<i2"), (4, "<i4"), (8, "<i8")):
        info = np.iinfo(dt)
        if a.size == 0 or (a.min() >= info.min and a.max() <= info.max):
            return width, a.astype(dt).tobytes()
    raise AssertionError("unreachable")


def _unpack_ints(r: Reader, shape: tuple[int, int]) -> np.ndarray:
    width = r.u8()
    if width not in (1, 2, 4, 8):
        raise r.error(f"integer width {width} is not 1, 2, 4 or 8")
    raw = r.raw_bytes(width * shape[0] * shape[1])
    if len(raw) != width * shape[0] * shape[1]:
        raise r.error("public tensor of the wrong size")
    a = np.frombuffer(raw, dtype=f"<i{width}").astype(np.int64).reshape(shape)
    if width > 1 and _pack_ints(a)[0] != width:
        raise r.error("public tensor not in its narrowest encoding")
    return a


@dataclass(frozen=True)
class AttentionProof:
    """A zkAttn proof with its public input x and output y; ``stream`` is the protocol's
    commitments and responses in order (see :mod:`zk.protocol.context`)."""

    KIND: ClassVar[str] = "zkattn-proof"
    VERSION: ClassVar[int] = 3  # 3: a fraction layer closes with one proof of a product sum
    RETIRED: ClassVar[dict[int, str]] = {
        1: "version 1 is the retired format whose proofs were not zero knowledge (they revealed "
           "linear functions of the weights); such files are refused: prove again",
        2: "version 2 (two proofs of product per lookup layer) is no longer read: prove again",
    }

    model_digest: bytes
    x: np.ndarray
    y: np.ndarray
    stream: Stream

    def to_bytes(self) -> bytes:
        w = Writer()
        w.raw_bytes(self.model_digest)
        for a in (self.x, self.y):
            width, raw = _pack_ints(a)
            w.u8(width)
            w.raw_bytes(raw)
        self.stream.write(w)
        return encode_envelope(self.KIND, self.VERSION, w.getvalue())

    @classmethod
    def from_bytes(cls, data: bytes, commitment: ModelCommitment) -> "AttentionProof":
        """Decode a proof file for ``commitment``; MalformedProofError on any bad input."""
        version = _peek_version(data, cls.KIND)
        if version in cls.RETIRED:
            raise MalformedProofError(f"{cls.KIND} {cls.RETIRED[version]}")
        _, r = decode_envelope(data, cls.KIND, (cls.VERSION,))
        sh = Shape(commitment)
        digest = r.raw_bytes(32)
        if len(digest) != 32:
            raise r.error("model digest must be 32 bytes")
        x = _unpack_ints(r, (sh.L, sh.D))
        y = _unpack_ints(r, (sh.L, sh.Hd))
        stream = Stream.read(r)
        r.finish()
        return cls(digest, x, y, stream)

    @property
    def size(self) -> int:
        """Bytes of the proof proper (points and scalars), without the public x and y."""
        return self.stream.size


def _peek_version(data: bytes, kind: str) -> int | None:
    """The object version of a file of ``kind`` (None if it is not one); decode_envelope
    reports everything else."""
    kb = kind.encode()
    head = 8 + len(kb)
    if len(data) >= head + 2 and data[:4] == b"ZKFH" and data[8:head] == kb:
        return int.from_bytes(data[head:head + 2], "little")
    return None


# ---------------------------------------------------------------- witness


def _witness(model: ProvingModel, x: np.ndarray, sh: Shape) -> dict[str, np.ndarray]:
    """The reference's witness laid out on the padded grids, plus the proof's own tensors."""
    head = model.head
    try:
        y, wit = run_reference(x, head)
    except (BoundsViolation, ValueError, TypeError) as e:
        raise ProverError(f"the reference refuses this input: {e}") from e
    d = sh.dims
    L, H = sh.L, sh.Hd
    k = model.commitment.shifts
    f = head.config.log_frac_bits

    def lh(a: np.ndarray) -> np.ndarray:
        out = np.zeros((d.L, d.H), dtype=np.int64)
        out[:L, :H] = a
        return out

    def ll(a: np.ndarray) -> np.ndarray:
        out = np.zeros((d.L, d.L), dtype=np.int64)
        out[:L, :L] = a
        return out

    def lv(a: np.ndarray) -> np.ndarray:
        out = np.zeros(d.L, dtype=np.int64)
        out[:L] = a
        return out

    mask = sh.mask.reshape(d.L, d.L).astype(bool)
    w: dict[str, np.ndarray] = {"x": x, "y": lh(y)}
    for t in PROJ:
        acc = lh(wit["acc_" + t])
        r = lh(wit["r_" + t])
        w["acc_" + t] = acc
        w["r_" + t] = r
        rounded = acc
        if sh.rope and t in ("q", "k"):  # the rounding acts on the rotated accumulator
            rounded = w["rot_" + t] = lh(wit["rot_" + t])
        w["R_" + t] = rounded + _half(k[t]) * sh.real.reshape(d.L, d.H) - (r << k[t])
        w[t] = lh(wit[t])
    o2 = lh(wit["o2"])
    r_o = lh(wit["r_o"])
    w.update(o2=o2, r_o=r_o, R_o=o2 + _half(k["out"]) * sh.real.reshape(d.L, d.H) - (r_o << k["out"]))
    z = ll(wit["z"]) * mask
    r_s = ll(wit["r_s"]) * mask
    rounded = r_s
    if sh.saturate:
        rounded = w["r_raw"] = ll(wit["r_raw"]) * mask
    w.update(z=z, r_s=r_s, R_s=z + _half(k["score"]) * mask - (rounded << k["score"]))
    m = lv(wit["m"])
    lg = lv(wit["l"])
    w.update(m=m, S=lv(wit["S"]), l=lg)
    d_ = r_s - m[:, None]
    # masked positions: any value works for the lookups (not selected); use the table values
    # where they are defined so the grids stay consistent
    c = np.where(mask, ll(wit["c"]), 0)
    e = np.where(mask, ll(wit["e"]), 0)
    u = (c << f) - lg[:, None]
    p = np.where(mask, ll(wit["p"]), 0)
    s = np.zeros_like(r_s)
    for i in range(L):
        row = np.flatnonzero(mask[i])
        s[i, row[np.argmax(r_s[i, row])]] = 1
    w.update(d=d_, c=c, e=e, u=u, p=p, s=s)
    return {name: (v.reshape(-1) if name != "x" else v) for name, v in w.items()}


# ---------------------------------------------------------------- the protocol (both roles)


def _absorb_statement(t: Transcript, mc: ModelCommitment, x: np.ndarray, y: np.ndarray,
                      context: bytes) -> None:
    t.absorb_bytes(L_STATEMENT, mc.digest)
    t.absorb_bytes(L_STATEMENT, context)
    t.absorb_vector(L_STATEMENT, Fr.from_signed(x))
    t.absorb_vector(L_STATEMENT, Fr.from_signed(y))


def _row_terms(g1: int, g2: int) -> list[tuple[int, tuple[int, ...]]]:
    # factors: E, M, s, r_s, m (broadcast), e
    return [(g1, (0, 1, 2)), (1, (0, 1, 2, 3)), (P - 1, (0, 1, 2, 4)), (g2, (0, 1, 5))]


# E_b I_c (2 Q K_b + Q Q): I_c keeps padded columns of q and k (not looked up) out
_SCORE_TERMS = [(2, (0, 1, 2, 3)), (1, (0, 1, 2, 2))]
_PV_TERMS = [(2, (0, 1, 2, 3))]  # 2 E_i M p V_b


def _proj_terms(gammas: Sequence[int]) -> list[tuple[int, tuple[int, ...]]]:
    return [(g, (0, i + 1)) for i, g in enumerate(gammas)]


def _protocol(ctx: Context, sh: Shape, x: np.ndarray, y: np.ndarray, context: bytes,
              model: ProvingModel | None = None, w: dict | None = None) -> None:
    """zkAttn, step by step; the prover passes the model and the witness, the verifier not."""
    mc, d = sh.mc, sh.dims
    proving = ctx.proving
    _absorb_statement(ctx.t, mc, x, y, context)
    W = hyrax.bind(ctx, mc.weights, model.weights if proving else None)
    B = hyrax.bind(ctx, mc.biases, model.biases if proving else None)
    tensors = {"w": W, "b": B}
    for name, lay in (("lh", sh.lh), ("ll", sh.ll), ("lv", sh.lv)):
        # columns within one member, at most 2^MAX_LOG_COLS: the opening's prover work grows
        # as log_cols * 2^log_cols
        cols = min(lay.member_vars, MAX_LOG_COLS)
        tensors[name] = hyrax.commit_in(
            ctx, lay.num_vars, cols,
            (lambda lay=lay, cols=cols: stack.commit(lay, w, log_cols=cols, rng=ctx.rng))
            if proving else None)
    LLn = sh.ll_names
    fr = {name: Fr.from_signed(w[name]) for name in LH + LLn + LV} if proving else {}
    book = stack.ClaimBook()

    def ev(name: str, point: Sequence[int]) -> int:
        return evaluate(fr[name], list(point))

    # 1. the lookup, and every column's value at its point
    end = logup.run(ctx, sh.tables, sh.columns(w if proving else None))
    rho_lh, rho_ll, rho_l = end.column_points[0], end.column_points[8], end.column_points[14]
    rho_ll_i = rho_ll[d.l:]
    C = dict(zip(LH, ctx.commit(L_VALUES, len(LH), lambda: [ev(n, rho_lh) for n in LH])))
    C.update(zip(LLn, ctx.commit(L_VALUES, len(LLn), lambda: [ev(n, rho_ll) for n in LLn])))
    m_i, l_i, S_l, l_l = ctx.commit(L_VALUES, 4, lambda: [
        ev("m", rho_ll_i), ev("l", rho_ll_i), ev("S", rho_l), ev("l", rho_l)])
    f = mc.config.log_frac_bits
    y_pad = np.zeros((d.L, d.H), dtype=np.int64)
    y_pad[: sh.L, : sh.Hd] = y
    y_val = ctx.public(evaluate(Fr.from_signed(y_pad), list(rho_lh)))
    d_com = C["r_s"] - m_i
    u_com = C["c"] * (1 << f) - l_i
    end.bind(
        [C["r_q"], C["r_k"], C["r_v"], C["R_q"], C["R_k"], C["R_v"], C["R_o"], C["r_o"],
         C["R_s"], C["r_raw"] if sh.saturate else C["r_s"], d_com, C["c"], u_com, C["s"], S_l],
        [C["q"], C["k"], C["v"], None, None, None, None, y_val,
         None, C["r_s"] if sh.saturate else None, C["c"], C["e"], C["p"], None, l_l])
    for n in LH:
        book.add("lh", sh.lh, n, rho_lh, C[n])
    for n in LLn:
        book.add("ll", sh.ll, n, rho_ll, C[n])
    book.add("lv", sh.lv, "m", rho_ll_i, m_i)
    book.add("lv", sh.lv, "l", rho_ll_i, l_i)
    book.add("lv", sh.lv, "S", rho_l, S_l)
    book.add("lv", sh.lv, "l", rho_l, l_l)

    # 2. linear relations at rho: the accumulators before rounding (rotated, for RoPE q and k)
    k = mc.shifts
    real = sh.real_mle(rho_lh)
    acc = [C["r_" + t] * (1 << k[t]) + C["R_" + t] - _half(k[t]) * real for t in PROJ]
    proj_point = rho_lh
    if sh.rope:
        acc, proj_point = _rope(ctx, sh, acc, rho_lh, w)
    o2 = C["r_o"] * (1 << k["out"]) + C["R_o"] - _half(k["out"]) * real
    z = (C["r_raw"] if sh.saturate else C["r_s"]) * (1 << k["score"]) + C["R_s"] \
        - _half(k["score"]) * sh.mask_mle(rho_ll)

    # 3. row relations
    g1, g2 = ctx.challenge(L_GAMMA), ctx.challenge(L_GAMMA)
    Mf = Fr.from_signed(sh.mask) if proving else None

    def rows_tables() -> list[np.ndarray]:
        E = np.repeat(eq_table(list(rho_l)), d.L, axis=0)
        mb = np.repeat(fr["m"], d.L, axis=0)
        return [E, Mf, fr["s"], fr["r_s"], mb, fr["e"]]

    claim = g1 * indicator_mle(sh.L, rho_l) + S_l * g2
    sc = zs.run(ctx, claim, 2 * d.l, 4, hidden=[2, 3, 4, 5], terms=_row_terms(g1, g2),
                tables=rows_tables if proving else None, num_factors=6)
    pt = sc.point
    s_v, rs_v, m_v, e_v = sc.values[2:]
    em = eq_eval(rho_l, pt[d.l:]) * sh.mask_mle(pt) % P
    prod = sigma.product(ctx, s_v, rs_v - m_v + g1)
    sc.close((prod + e_v * g2) * em)
    book.add("ll", sh.ll, "s", pt, s_v)
    book.add("ll", sh.ll, "r_s", pt, rs_v)
    book.add("lv", sh.lv, "m", pt[d.l:], m_v)
    book.add("ll", sh.ll, "e", pt, e_v)

    # 4a. scores: z = M o A, A = 2 Q K^T + rowsq(Q) 1^T
    def score_tables() -> list[np.ndarray]:
        Q = w["q"].reshape(d.L, d.H)
        K = w["k"].reshape(d.L, d.H)
        return [Mf, Fr.from_signed(Q @ (2 * K.T) + np.sum(Q * Q, axis=1)[:, None])]

    sc = zs.run(ctx, z, 2 * d.l, 2, hidden=[1], eq_point=rho_ll,
                tables=score_tables if proving else None, num_factors=2)
    rho8 = sc.point
    a_com = sc.values[1]
    sc.close(a_com * sh.mask_mle(rho8))
    rho8_j, rho8_i = rho8[: d.l], rho8[d.l:]

    def inner_tables() -> list[np.ndarray]:
        Eb = np.repeat(eq_table(list(rho8_i)), d.H, axis=0)
        Ic = Fr.from_signed(np.tile((np.arange(d.H) < sh.Hd).astype(np.int64), d.L))
        Kb = np.tile(fold_rows(fr["k"], d.L, d.H, list(rho8_j)), (d.L, 1))
        return [Eb, Ic, fr["q"], Kb]

    sc = zs.run(ctx, a_com, d.h + d.l, 4, hidden=[2, 3], terms=_SCORE_TERMS,
                tables=inner_tables if proving else None, num_factors=4)
    rho9 = sc.point
    q_v, kb_v = sc.values[2:]
    prod = sigma.product(ctx, q_v, kb_v * 2 + q_v)
    sc.close(prod * (eq_eval(rho8_i, rho9[d.h:]) * indicator_mle(sh.Hd, rho9[: d.h]) % P))
    book.add("lh", sh.lh, "q", rho9, q_v)
    book.add("lh", sh.lh, "k", tuple(rho9[: d.h]) + tuple(rho8_j), kb_v)

    # 4b. o2 = 2 (M o p) V
    o_c, o_i = rho_lh[: d.h], rho_lh[d.h:]

    def pv_tables() -> list[np.ndarray]:
        Ei = np.repeat(eq_table(list(o_i)), d.L, axis=0)
        Vb = np.tile(fold_cols(fr["v"], d.L, d.H, list(o_c)), (d.L, 1))
        return [Ei, Mf, fr["p"], Vb]

    sc = zs.run(ctx, o2, 2 * d.l, 4, hidden=[2, 3], terms=_PV_TERMS,
                tables=pv_tables if proving else None, num_factors=4)
    rho10 = sc.point
    p_v, vb_v = sc.values[2:]
    prod = sigma.product(ctx, p_v, vb_v)
    sc.close(prod * (2 * eq_eval(o_i, rho10[d.l:]) * sh.mask_mle(rho10) % P))
    book.add("ll", sh.ll, "p", rho10, p_v)
    book.add("lh", sh.lh, "v", tuple(o_c) + tuple(rho10[: d.l]), vb_v)

    # 4c. projections: acc_t = x W_t + ind_L b_t, batched over t
    om_c, om_i = proj_point[: d.h], proj_point[d.h:]
    gammas = ctx.challenges(L_GAMMA, 3)
    b_coms = ctx.commit(L_VALUES, 3, lambda: [
        model.biases.evaluate(sh.b.point(n, om_c)) for n in BIASES])
    ind = indicator_mle(sh.L, om_i)
    claim = acc[0] * gammas[0] + acc[1] * gammas[1] + acc[2] * gammas[2] \
        - (b_coms[0] * gammas[0] + b_coms[1] * gammas[1] + b_coms[2] * gammas[2]) * ind
    xs = np.zeros((d.L, d.D), dtype=np.int64)
    xs[: sh.L, : sh.D] = x
    xfr = Fr.from_signed(xs)
    Wd = Dims.of(mc.config)

    def proj_tables() -> list[np.ndarray]:
        wst = model.weights.matrix
        size = Wd.D * Wd.H
        wf = [fold_cols(np.ascontiguousarray(wst[i * size:(i + 1) * size]), Wd.D, Wd.H,
                        list(om_c)) for i in range(3)]
        return [fold_rows(xfr, d.L, d.D, list(om_i)), *wf]

    sc = zs.run(ctx, claim, d.d, 2, hidden=[1, 2, 3], terms=_proj_terms(gammas),
                tables=proj_tables if proving else None, num_factors=4)
    x_val = evaluate(xfr, list(sc.point) + list(om_i))
    sc.close_terms(_proj_terms(gammas), [x_val, None, None, None])
    for n, c in zip(BIASES, b_coms):
        book.add("b", sh.b, n, om_c, c)
    for n, c in zip(WEIGHTS, sc.values[1:]):
        book.add("w", sh.w, n, tuple(om_c) + tuple(sc.point), c)

    # 5. every committed tensor opened once
    for name in ("lh", "ll", "lv", "w", "b"):
        book.open(ctx, name, tensors[name])


def _rope(ctx: Context, sh: Shape, rot: list[Com], rho: Sequence[int], w: dict | None
          ) -> tuple[list[Com], tuple[int, ...]]:
    """RoPE heads: rot_q, rot_k at rho (and acc_v there) to acc_q, acc_k, acc_v at one new
    point, by one sumcheck of sum_x K(x) (acc_q + g acc_k)(x) + g^2 eq(rho, x) acc_v(x), K the
    public rotation kernel (:meth:`Shape.rope_kernel`). The accumulators are never committed;
    their values at the sumcheck's point are, for the projection sumcheck to discharge."""
    d = sh.dims
    g = ctx.challenge(L_GAMMA)
    g2 = g * g % P
    kern = sh.rope_kernel(rho)
    terms = [(1, (0, 2)), (g, (0, 3)), (g2, (1, 4))]

    def tables() -> list[np.ndarray]:
        return [kern, eq_table(list(rho))] + [Fr.from_signed(w["acc_" + t]) for t in PROJ]

    sc = zs.run(ctx, rot[0] + rot[1] * g + rot[2] * g2, d.h + d.l, 2, hidden=[2, 3, 4],
                terms=terms, tables=tables if ctx.proving else None, num_factors=5)
    sc.close_terms(terms, [evaluate(kern, list(sc.point)), eq_eval(rho, sc.point),
                           None, None, None])
    return list(sc.values[2:]), tuple(sc.point)


# ---------------------------------------------------------------- prover and verifier


def prove(model: ProvingModel, x: np.ndarray, rng: np.random.Generator | None = None,
          context: bytes = b"") -> AttentionProof:
    """Run the head on the public integer input x (L x d_model) and prove the output in zero
    knowledge.

    ``context`` is bound into the Fiat-Shamir transcript (an encrypted session's receipt): the
    proof verifies only with the same context. Raises ProverError if the reference refuses the
    input. Blinds and nonces come from the OS CSPRNG unless ``rng`` is given (tests and
    benchmarks only: a seeded rng makes proofs reproducible and NOT zero knowledge).
    """
    mc = model.commitment
    sh = Shape(mc)
    d = sh.dims
    x = np.asarray(x)
    if x.shape != (sh.L, sh.D) or not np.issubdtype(x.dtype, np.integer):
        raise ProverError(f"x must be an integer array of shape {(sh.L, sh.D)}")
    x = x.astype(np.int64)
    w = _witness(model, x, sh)
    y = w["y"].reshape(d.L, d.H)[: sh.L, : sh.Hd].copy()
    ctx = Context.prover(Transcript(PROTOCOL), rng)
    _protocol(ctx, sh, x, y, context, model, w)
    ctx.finish()
    return AttentionProof(mc.digest, x, y, ctx.stream())


def verify(proof: AttentionProof, commitment: ModelCommitment, context: bytes = b"") -> None:
    """Accept (return None) or raise VerificationError: proof.y = head(proof.x) for the head
    committed in ``commitment`` (and the proof was made for ``context``)."""
    mc = commitment
    if proof.model_digest != mc.digest:
        raise VerificationError("zkattn: the proof was made for another model commitment")
    sh = Shape(mc)
    x = np.asarray(proof.x, dtype=np.int64)
    y = np.asarray(proof.y, dtype=np.int64)
    if x.shape != (sh.L, sh.D) or y.shape != (sh.L, sh.Hd):
        raise VerificationError("zkattn: public input or output of the wrong shape")
    try:
        with one_thread():
            ctx = Context.verifier(Transcript(PROTOCOL), proof.stream)
            _protocol(ctx, sh, x, y, context)
            ctx.finish()
    except VerificationError:
        raise
    except (ValueError, ArithmeticError) as e:  # degenerate challenges, malformed shapes
        raise VerificationError(f"zkattn: {e}") from e


def verify_bytes(data: bytes, commitment: ModelCommitment, context: bytes = b""
                 ) -> AttentionProof:
    """Decode and verify a proof file; returns the proof (with x and y) if it is accepted."""
    proof = AttentionProof.from_bytes(data, commitment)
    verify(proof, commitment, context)
    return proof


__all__ = ["AttentionProof", "prove", "verify", "verify_bytes", "PROTOCOL"]
