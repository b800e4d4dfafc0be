"""zkAttn: a proof that y = head(x) for the head inside a public model commitment.

The statement is the integer reference of :mod:`zk.attention_ref` (its docstring lists every
step). Notation: L' x H' and L' x L' grids are the padded (L x d_head) and (L x L) tensors,
row-major with the column index in the low variables; M is the public L' x L' mask (causal and
real positions), I the real L x d_head block, ind_L the first L rows; h(k) = 2^(k-1) for k > 0
and h(0) = 0.

The prover commits to three stacks of witness tensors (:mod:`zk.stack`)

* L' x H': remainders R_q, R_k, R_v, R_o, rounded r_q, r_k, r_v, r_o, and q, k, v;
* L' x L': remainder R_s, rounded scores r_s, c, e, p, and a 0/1 selector s of each row's
  maximum;
* L': row maxima m, row sums S, logarithms l;

and proves, with every claim discharged by an opening or computed by the verifier:

1. one batched lookup (:mod:`zk.tlookup`) over masked columns: (r_t, t) in the requantization
   table T_t, R_t in [0, 2^k_t), (r_o, y) in OUT with y public, R_o in [0, 2^k_o); R_s in
   [0, 2^k_s), r_s in its range, (d, c) in CLIPD, (c, e) in EXP, (u, p) in EXP2, s in {0, 1}
   on M; (S, l) in LOG on the first L entries. The lookup domains bound every rounded value, so
   no relation below can wrap around the field;
2. linear relations, checked at the lookup point and at fresh random points omega:
   d = r_s - m 1^T, u = 2^f c - l 1^T (d, u are never committed), and the roundings
   acc_t + h(k_t) I = 2^k_t r_t + R_t, o2 + h(k_o) I = 2^k_o r_o + R_o,
   z + h(k_s) M = 2^k_s r_s + R_s, which turn claims on r, R into claims on acc_t, o2, z;
3. row relations (one sumcheck): sum_j M_ij s_ij = 1 and sum_j M_ij s_ij d_ij = 0 for real
   rows (with d <= 0 from CLIPD's domain, m is the row maximum of r_s), and
   S_i = sum_j M_ij e_ij;
4. z = M o (2 Q I K^T + rowsq(Q I) 1^T), I the real columns (two sumchecks: the masked
   product, then the inner dimension), o2 = 2 (M o p) V (one sumcheck), and acc_t = x W_t + ind_L b_t for the committed
   weights and biases (one sumcheck batched over q, k, v).

zkLLM's release leaves the softmax's row-sum check and several openings unchecked; here the
row sums, the maxima and every final evaluation are checked. What is hidden: the commitments
and openings are hiding, but sumcheck messages and opened values are revealed (not zero
knowledge of W; see DESIGN.md section 6).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from zk import hyrax, stack, sumcheck, tlookup
from zk.attention_model import (
    BIASES, WEIGHTS, Dims, ModelCommitment, ProvingModel, bias_layout, weight_layout,
)
from zk.attention_ref import BoundsViolation, run_reference
from zk.encoding import Reader, Writer, decode_envelope, encode_envelope
from zk.errors import ProverError, VerificationError
from zk.field import Fr
from zk.lookup import Column, LookupTable, Selector, TableSet, indicator_mle
from zk.multilinear import P, eq_eval, eq_table, evaluate, fold_cols, fold_rows
from zk.transcript import Transcript

PROTOCOL = b"zkfhe/zkattn/v1"
MAX_LOG_COLS = 10
L_STATEMENT = b"zkattn/statement"
L_OMEGA = b"zkattn/omega"
L_VALUES = b"zkattn/values"
L_GAMMA = b"zkattn/gamma"

LH = ("R_q", "R_k", "R_v", "R_o", "r_q", "r_k", "r_v", "r_o", "q", "k", "v")
LL = ("R_s", "r_s", "c", "e", "p", "s")
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
        self.ll = stack.StackLayout(LL, 2 * d.l)
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

        self.tables = TableSet([
            fn("q"), fn("k"), fn("v"),
            LookupTable.range(0, 1 << k["q"], "R_q"), LookupTable.range(0, 1 << k["k"], "R_k"),
            LookupTable.range(0, 1 << k["v"], "R_v"), LookupTable.range(0, 1 << k["score"], "R_s"),
            LookupTable.range(r_lo, r_hi + 1, "r_s"), fn("clipd"), fn("exp"), fn("log"),
            fn("exp2"), LookupTable.range(0, 1 << k["out"], "R_o"), fn("out"),
            LookupTable.range(0, 2, "bit"),
        ])
        self.sel_lh = Selector(d.L * d.H, mask=self.real)
        self.sel_ll = Selector(d.L * d.L, mask=self.mask)
        self.sel_l = Selector.first(self.L, d.L)
        self.col_tables = [T_Q, T_K, T_V, T_RQ, T_RK, T_RV, T_RO, T_OUT,
                           T_RS, T_SCORE, T_CLIPD, T_EXP, T_EXP2, T_BIT, T_LOG]

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
            col(T_RS, ll, "R_s"), col(T_SCORE, ll, "r_s"), col(T_CLIPD, ll, "d", "c"),
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
    """A zkAttn proof with its public input x and output y."""

    KIND: ClassVar[str] = "zkattn-proof"
    VERSION: ClassVar[int] = 1

    model_digest: bytes
    x: np.ndarray
    y: np.ndarray
    commitments: tuple[hyrax.HyraxCommitment, ...]  # L'xH', L'xL', L' stacks
    lookup: tlookup.TLookupProof
    values: tuple[int, ...]  # every value the prover sends outside sumchecks, in order
    sumchecks: tuple[sumcheck.SumcheckProof, ...]
    openings: tuple[hyrax.HyraxOpening, ...]  # L'xH', L'xL', L', weights, biases

    def to_bytes(self, extra_context: bytes = b"") -> bytes:
        w = Writer()
        w.raw_bytes(self.model_digest)
        for a in (self.x, self.y):
            width, raw = _pack_ints(a)
            w.u8(width)
            w.raw_bytes(raw)
        with w.section("commitments"):
            for c in self.commitments:
                c.write(w)
        self.lookup.write(w)
        w.fields(self.values)
        with w.section("sumchecks"):
            for sc in self.sumchecks:
                sc.write(w)
        with w.section("openings"):
            for o in self.openings:
                o.write(w)
        return encode_envelope(self.KIND, self.VERSION, w.getvalue())

    @classmethod
    def from_bytes(cls, data: bytes, commitment: ModelCommitment) -> "AttentionProof":
        """Decode a proof file for ``commitment``; MalformedProofError on any bad input."""
        _, r = decode_envelope(data, cls.KIND, (cls.VERSION,))
        sh = Shape(commitment)
        digest = r.raw_bytes(32)
        if len(digest) != 32:
            raise r.error("model digest must be 32 bytes")
        x = _unpack_ints(r, (sh.L, sh.D))
        y = _unpack_ints(r, (sh.L, sh.Hd))
        with r.section("commitments"):
            coms = tuple(hyrax.HyraxCommitment.read(r, 1) for _ in range(3))
        for com, lay in zip(coms, (sh.lh, sh.ll, sh.lv)):
            if com.num_vars != lay.num_vars:
                raise r.error("witness commitment of the wrong size")
        lk = tlookup.TLookupProof.read(r, sh.tables, sh.columns())
        values = tuple(r.fields(max_len=NUM_VALUES, exact_len=NUM_VALUES))
        d = sh.dims
        with r.section("sumchecks"):
            scs = tuple(sumcheck.SumcheckProof.read(r, m, deg)
                        for m, deg in _sumcheck_shapes(d))
        with r.section("openings"):
            ops = tuple(hyrax.HyraxOpening.read(r, 1) for _ in range(5))
        r.finish()
        return cls(digest, x, y, coms, lk, values, scs, ops)


def _sumcheck_shapes(d: Dims) -> list[tuple[int, int]]:
    """(variables, degree) of the five sumchecks: rows, scores, scores-inner, pv, projection."""
    return [(2 * d.l, 4), (2 * d.l, 2), (d.h + d.l, 4), (2 * d.l, 4), (d.d, 2)]


# values: lookup-point helpers (2), omega_LH (8), omega_LL (2), S(omega_L) (1),
# rows finals (4), A (1), inner finals (2), pv finals (2), biases (3), weights (3)
NUM_VALUES = 2 + 8 + 2 + 1 + 4 + 1 + 2 + 2 + 3 + 3


class _Values:
    """Reads the prover's values in order (verifier side); absorbs each batch."""

    def __init__(self, values: Sequence[int], t: Transcript) -> None:
        self.values, self.at, self.t = list(values), 0, t

    def take(self, n: int) -> list[int]:
        out = self.values[self.at:self.at + n]
        self.at += n
        self.t.absorb_scalars(L_VALUES, out)
        return out


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
        w["R_" + t] = acc + _half(k[t]) * sh.real.reshape(d.L, d.H) - (r << k[t])
        w[t] = lh(wit[t])
    o2 = lh(wit["o2"])
    r_o = lh(wit["r_o"])
    w.update(o2=o2, r_o=r_o, R_o=o2 + _half(k["out"]) * sh.real.reshape(d.L, d.H) - (r_o << k["out"]))
    z = ll(wit["z"]) * mask
    r_s = ll(wit["r_s"]) * mask
    w.update(z=z, r_s=r_s, R_s=z + _half(k["score"]) * mask - (r_s << k["score"]))
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


# ---------------------------------------------------------------- prover


def prove(model: ProvingModel, x: np.ndarray, rng: np.random.Generator | None = None,
          context: bytes = b"") -> AttentionProof:
    """Run the head on the public integer input x (L x d_model) and prove the output.

    ``context`` is bound into the Fiat-Shamir transcript (an encrypted session's receipt): the
    proof verifies only with the same context. Raises ProverError if the reference refuses the
    input. Blinds come from the OS CSPRNG unless ``rng`` is given (tests and benchmarks only).
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
    t = Transcript(PROTOCOL)
    _absorb_statement(t, mc, x, y, context)

    coms, wits = [], []
    for lay in (sh.lh, sh.ll, sh.lv):
        # columns within one member (claims on members at one point share an argument), at
        # most 2^MAX_LOG_COLS: the opening's prover work grows as log_cols * 2^log_cols
        cols = min(lay.member_vars, MAX_LOG_COLS)
        com, wit = stack.commit(lay, w, log_cols=cols, rng=rng)
        com.absorb(t)
        coms.append(com)
        wits.append(wit)
    book = stack.ClaimBook()
    values: list[int] = []

    def send(vals: Sequence[int]) -> list[int]:
        vals = [int(v) % P for v in vals]
        values.extend(vals)
        t.absorb_scalars(L_VALUES, vals)
        return vals

    fr = {name: Fr.from_signed(w[name]) for name in LH + LL + LV}  # the committed tensors

    # 1. the lookup
    lk_proof, lk = tlookup.prove(t, sh.tables, sh.columns(w), rng)
    rho_ll = lk.inputs[8].point
    rho_ll_i = rho_ll[d.l:]
    aux = send([evaluate(fr["m"], rho_ll_i), evaluate(fr["l"], rho_ll_i)])
    _lookup_claims(sh, book, lk, aux, y)

    # 2. linear relations at random points
    om_lh = t.challenges(L_OMEGA, d.h + d.l)
    om_ll = t.challenges(L_OMEGA, 2 * d.l)
    v_lh = send([evaluate(fr[n], om_lh) for n in ("r_q", "r_k", "r_v", "r_o",
                                                     "R_q", "R_k", "R_v", "R_o")])
    v_ll = send([evaluate(fr[n], om_ll) for n in ("r_s", "R_s")])
    acc, o2, z = _linear_claims(sh, book, om_lh, om_ll, v_lh, v_ll)

    # 3. row relations
    om_l = t.challenges(L_OMEGA, d.l)
    g1, g2 = t.challenge(L_GAMMA), t.challenge(L_GAMMA)
    s_val = send([evaluate(fr["S"], om_l)])[0]
    E = np.repeat(eq_table(om_l), d.L, axis=0)
    mb = np.repeat(fr["m"], d.L, axis=0)
    M = Fr.from_signed(sh.mask)
    factors = [E, M, fr["s"], fr["r_s"], mb, fr["e"]]
    claimed = (g1 * indicator_mle(sh.L, om_l) + g2 * s_val) % P
    sc_rows, pt, fin = sumcheck.prove(t, factors, claimed, None, _row_terms(g1, g2))
    send(fin[2:])
    _row_claims(sh, book, om_l, s_val, pt, fin[2:])

    # 4a. scores: z = M o A, A = 2 Q K^T + rowsq(Q) 1^T
    Q = w["q"].reshape(d.L, d.H)
    K = w["k"].reshape(d.L, d.H)
    A = 2 * Q @ K.T + np.sum(Q * Q, axis=1)[:, None]
    sc_a, rho8, fin = sumcheck.prove(t, [M, Fr.from_signed(A)], z, om_ll)
    a_val = send([fin[1]])[0]
    rho8_j, rho8_i = rho8[: d.l], rho8[d.l:]
    Eb = np.repeat(eq_table(rho8_i), d.H, axis=0)
    Ic = Fr.from_signed(np.tile((np.arange(d.H) < sh.Hd).astype(np.int64), d.L))
    Kb = np.tile(fold_rows(fr["k"], d.L, d.H, rho8_j), (d.L, 1))
    sc_b, rho9, fin = sumcheck.prove(t, [Eb, Ic, fr["q"], Kb], a_val, None, _SCORE_TERMS)
    send(fin[2:])
    _score_claims(sh, book, rho8, rho9, fin[2:])

    # 4b. o2 = 2 (M o p) V
    om_c, om_i = om_lh[: d.h], om_lh[d.h:]
    Ei = np.repeat(eq_table(om_i), d.L, axis=0)
    Vb = np.tile(fold_cols(fr["v"], d.L, d.H, om_c), (d.L, 1))
    sc_pv, rho10, fin = sumcheck.prove(t, [Ei, M, fr["p"], Vb], o2, None, _PV_TERMS)
    send(fin[2:])
    _pv_claims(sh, book, om_lh, rho10, fin[2:])

    # 4c. projections: acc_t = x W_t + ind_L b_t, batched over t
    gammas = t.challenges(L_GAMMA, 3)
    bw = model.biases
    b_vals = send([bw.evaluate(sh.b.claim(n, om_c, 0).point) for n in BIASES])
    xs = np.zeros((d.L, d.D), dtype=np.int64)
    xs[: sh.L, : sh.D] = x
    xf = fold_rows(Fr.from_signed(xs), d.L, d.D, om_i)
    Wd = Dims.of(mc.config)
    wst = model.weights.matrix
    size = Wd.D * Wd.H
    wf = [fold_cols(np.ascontiguousarray(wst[i * size:(i + 1) * size]), Wd.D, Wd.H, om_c)
          for i in range(3)]
    claimed = _proj_sum(sh, gammas, acc, b_vals, om_i)
    sc_p, rho11, fin = sumcheck.prove(t, [xf, *wf], claimed, None, _proj_terms(gammas))
    send(fin[1:])
    _proj_claims(sh, book, om_c, rho11, b_vals, fin[1:])

    openings = tuple(book.open(name, wit, com, t, rng) for name, wit, com in
                     (("lh", wits[0], coms[0]), ("ll", wits[1], coms[1]), ("lv", wits[2], coms[2]),
                      ("w", model.weights, mc.weights), ("b", model.biases, mc.biases)))
    if len(values) != NUM_VALUES:
        raise AssertionError("value count drifted from NUM_VALUES")
    return AttentionProof(mc.digest, x, y, tuple(coms), lk_proof, tuple(values),
                          (sc_rows, sc_a, sc_b, sc_pv, sc_p), openings)


# ---------------------------------------------------------------- steps shared by both sides


def _absorb_statement(t: Transcript, mc: ModelCommitment, x: np.ndarray, y: np.ndarray,
                      context: bytes) -> None:
    t.absorb_bytes(L_STATEMENT, mc.digest)
    t.absorb_bytes(L_STATEMENT, context)
    t.absorb_vector(L_STATEMENT, Fr.from_signed(x))
    t.absorb_vector(L_STATEMENT, Fr.from_signed(y))


def _lookup_claims(sh: Shape, book: stack.ClaimBook, lk, aux: Sequence[int],
                   y: np.ndarray) -> None:
    """Discharge the lookup's claims: record them on the stacks, check the derived ones."""
    d = sh.dims
    ins, outs = lk.inputs, lk.outputs
    for i, name in enumerate(("r_q", "r_k", "r_v")):
        book.add("lh", sh.lh.claim(name, ins[i].point, ins[i].value))
        book.add("lh", sh.lh.claim(PROJ[i], outs[i].point, outs[i].value))
    for i, name in zip(range(3, 7), ("R_q", "R_k", "R_v", "R_o")):
        book.add("lh", sh.lh.claim(name, ins[i].point, ins[i].value))
    book.add("lh", sh.lh.claim("r_o", ins[7].point, ins[7].value))
    rho_lh = ins[7].point
    y_pad = np.zeros((d.L, d.H), dtype=np.int64)
    y_pad[: sh.L, : sh.Hd] = y
    if evaluate(Fr.from_signed(y_pad), rho_lh) != outs[7].value:
        raise VerificationError("zkattn: the output lookup does not match the public output")
    rho = ins[8].point
    rho_i = rho[d.l:]
    m_val, l_val = aux
    book.add("ll", sh.ll.claim("R_s", rho, ins[8].value))
    book.add("ll", sh.ll.claim("r_s", rho, ins[9].value))
    if ins[10].value != (ins[9].value - m_val) % P:
        raise VerificationError("zkattn: d != r_s - m at the lookup point")
    if outs[10].value != ins[11].value:
        raise VerificationError("zkattn: CLIPD's output and EXP's input differ")
    book.add("ll", sh.ll.claim("c", rho, outs[10].value))
    book.add("ll", sh.ll.claim("e", rho, outs[11].value))
    f = sh.mc.config.log_frac_bits
    if ins[12].value != ((outs[10].value << f) - l_val) % P:
        raise VerificationError("zkattn: u != 2^f c - l at the lookup point")
    book.add("ll", sh.ll.claim("p", rho, outs[12].value))
    book.add("ll", sh.ll.claim("s", rho, ins[13].value))
    book.add("lv", sh.lv.claim("m", rho_i, m_val))
    book.add("lv", sh.lv.claim("l", rho_i, l_val))
    book.add("lv", sh.lv.claim("S", ins[14].point, ins[14].value))
    book.add("lv", sh.lv.claim("l", outs[14].point, outs[14].value))


def _linear_claims(sh: Shape, book: stack.ClaimBook, om_lh, om_ll, v_lh, v_ll
                   ) -> tuple[list[int], int, int]:
    """Record the values at omega; return acc_t~, o2~ (at omega_LH) and z~ (at omega_LL)."""
    for name, v in zip(("r_q", "r_k", "r_v", "r_o", "R_q", "R_k", "R_v", "R_o"), v_lh):
        book.add("lh", sh.lh.claim(name, om_lh, v))
    for name, v in zip(("r_s", "R_s"), v_ll):
        book.add("ll", sh.ll.claim(name, om_ll, v))
    k = sh.mc.shifts
    real = sh.real_mle(om_lh)
    derived = [((v_lh[i] << k[t]) + v_lh[4 + i] - _half(k[t]) * real) % P
               for i, t in enumerate(("q", "k", "v", "out"))]
    z = ((v_ll[0] << k["score"]) + v_ll[1] - _half(k["score"]) * sh.mask_mle(om_ll)) % P
    return derived[:3], derived[3], z


def _row_terms(g1: int, g2: int) -> list[tuple[int, tuple[int, ...]]]:
    # factors: E, M, s, r_s, m (broadcast), e
    return [(g1, (0, 1, 2)), (1, (0, 1, 2, 3)), (P - 1, (0, 1, 2, 4)), (g2, (0, 1, 5))]


# E_b I_c (2 Q K_b + Q Q): I_c keeps padded columns of q and k (not looked up) out
_SCORE_TERMS = [(2, (0, 1, 2, 3)), (1, (0, 1, 2, 2))]
_PV_TERMS = [(2, (0, 1, 2, 3))]  # 2 E_i M p V_b


def _proj_terms(gammas: Sequence[int]) -> list[tuple[int, tuple[int, ...]]]:
    return [(g, (0, i + 1)) for i, g in enumerate(gammas)]


def _row_claims(sh: Shape, book: stack.ClaimBook, om_l, s_val, pt, fin) -> None:
    d = sh.dims
    book.add("lv", sh.lv.claim("S", om_l, s_val))
    book.add("ll", sh.ll.claim("s", pt, fin[0]))
    book.add("ll", sh.ll.claim("r_s", pt, fin[1]))
    book.add("lv", sh.lv.claim("m", pt[d.l:], fin[2]))
    book.add("ll", sh.ll.claim("e", pt, fin[3]))


def _score_claims(sh: Shape, book: stack.ClaimBook, rho8, rho9, fin) -> None:
    d = sh.dims
    book.add("lh", sh.lh.claim("q", rho9, fin[0]))
    book.add("lh", sh.lh.claim("k", tuple(rho9[: d.h]) + tuple(rho8[: d.l]), fin[1]))


def _pv_claims(sh: Shape, book: stack.ClaimBook, om_lh, rho10, fin) -> None:
    d = sh.dims
    book.add("ll", sh.ll.claim("p", rho10, fin[0]))
    book.add("lh", sh.lh.claim("v", tuple(om_lh[: d.h]) + tuple(rho10[: d.l]), fin[1]))


def _proj_sum(sh: Shape, gammas, acc, b_vals, om_i) -> int:
    ind = indicator_mle(sh.L, om_i)
    return sum(g * (a - ind * b) for g, a, b in zip(gammas, acc, b_vals)) % P


def _proj_claims(sh: Shape, book: stack.ClaimBook, om_c, rho11, b_vals, w_vals) -> None:
    for name, v in zip(BIASES, b_vals):
        book.add("b", sh.b.claim(name, om_c, v))
    for name, v in zip(WEIGHTS, w_vals):
        book.add("w", sh.w.claim(name, tuple(om_c) + tuple(rho11), v))


# ---------------------------------------------------------------- verifier


def verify(proof: AttentionProof, commitment: ModelCommitment, context: bytes = b"") -> None:
    """Accept (return None) or raise VerificationError: proof.y = head(proof.x) for the head
    committed in ``commitment`` (and the proof was made for ``context``)."""
    mc = commitment
    if proof.model_digest != mc.digest:
        raise VerificationError("zkattn: the proof was made for another model commitment")
    sh = Shape(mc)
    d = sh.dims
    x = np.asarray(proof.x, dtype=np.int64)
    y = np.asarray(proof.y, dtype=np.int64)
    if x.shape != (sh.L, sh.D) or y.shape != (sh.L, sh.Hd):
        raise VerificationError("zkattn: public input or output of the wrong shape")
    if len(proof.values) != NUM_VALUES or len(proof.sumchecks) != 5 or len(proof.openings) != 5:
        raise VerificationError("zkattn: wrong number of proof parts")
    for com, lay in zip(proof.commitments, (sh.lh, sh.ll, sh.lv)):
        if com.num_vars != lay.num_vars:
            raise VerificationError("zkattn: witness commitment of the wrong size")
    t = Transcript(PROTOCOL)
    _absorb_statement(t, mc, x, y, context)
    for com in proof.commitments:
        com.absorb(t)
    book = stack.ClaimBook()
    vals = _Values(proof.values, t)
    sc_rows, sc_a, sc_b, sc_pv, sc_p = proof.sumchecks

    lk = tlookup.verify(t, sh.tables, sh.columns(), proof.lookup)
    _lookup_claims(sh, book, lk, vals.take(2), y)

    om_lh = t.challenges(L_OMEGA, d.h + d.l)
    om_ll = t.challenges(L_OMEGA, 2 * d.l)
    acc, o2, z = _linear_claims(sh, book, om_lh, om_ll, vals.take(8), vals.take(2))

    om_l = t.challenges(L_OMEGA, d.l)
    g1, g2 = t.challenge(L_GAMMA), t.challenge(L_GAMMA)
    s_val = vals.take(1)[0]
    claimed = (g1 * indicator_mle(sh.L, om_l) + g2 * s_val) % P
    sub = sumcheck.verify(t, sc_rows, claimed, 2 * d.l, 4)
    fin = vals.take(4)
    pt = sub.point
    sub.check([eq_eval(om_l, pt[d.l:]), sh.mask_mle(pt), *fin], _row_terms(g1, g2))
    _row_claims(sh, book, om_l, s_val, pt, fin)

    sub = sumcheck.verify(t, sc_a, z, 2 * d.l, 2, om_ll)
    a_val = vals.take(1)[0]
    sub.check([sh.mask_mle(sub.point), a_val])
    rho8 = sub.point
    sub = sumcheck.verify(t, sc_b, a_val, d.h + d.l, 4)
    fin = vals.take(2)
    sub.check([eq_eval(rho8[d.l:], sub.point[d.h:]), indicator_mle(sh.Hd, sub.point[: d.h]),
               *fin], _SCORE_TERMS)
    _score_claims(sh, book, rho8, sub.point, fin)

    om_c, om_i = om_lh[: d.h], om_lh[d.h:]
    sub = sumcheck.verify(t, sc_pv, o2, 2 * d.l, 4)
    fin = vals.take(2)
    sub.check([eq_eval(om_i, sub.point[d.l:]), sh.mask_mle(sub.point), *fin], _PV_TERMS)
    _pv_claims(sh, book, om_lh, sub.point, fin)

    gammas = t.challenges(L_GAMMA, 3)
    b_vals = vals.take(3)
    sub = sumcheck.verify(t, sc_p, _proj_sum(sh, gammas, acc, b_vals, om_i), d.d, 2)
    w_vals = vals.take(3)
    xs = np.zeros((d.L, d.D), dtype=np.int64)
    xs[: sh.L, : sh.D] = x
    x_val = evaluate(Fr.from_signed(xs), tuple(sub.point) + tuple(om_i))
    sub.check([x_val, *w_vals], _proj_terms(gammas))
    _proj_claims(sh, book, om_c, sub.point, b_vals, w_vals)

    coms = {"lh": proof.commitments[0], "ll": proof.commitments[1], "lv": proof.commitments[2],
            "w": mc.weights, "b": mc.biases}
    for name, opening in zip(("lh", "ll", "lv", "w", "b"), proof.openings):
        book.check(name, coms[name], opening, t)


def verify_bytes(data: bytes, commitment: ModelCommitment, context: bytes = b""
                 ) -> AttentionProof:
    """Decode and verify a proof file; returns the proof (with x and y) if it is accepted."""
    proof = AttentionProof.from_bytes(data, commitment)
    verify(proof, commitment, context)
    return proof


__all__ = ["AttentionProof", "prove", "verify", "verify_bytes"]
