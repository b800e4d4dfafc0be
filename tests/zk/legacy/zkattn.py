"""The retired, NON-zero-knowledge protocol (plain zkAttn, proof format version 1), kept only as a baseline for the leak,
extraction and benchmark comparisons (issue 10). Never used by the product: it sends sumcheck
messages and opened values in the clear, which give away the weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from legacy import hyrax, stack, sumcheck, tlookup
from zk.attention_model import (
    BIASES,
    WEIGHTS,
    Dims,
    ModelCommitment,
    ProvingModel,
)
from zk.commit import hyrax as zh
from zk.encoding import Writer, decode_envelope, encode_envelope
from zk.errors import ProverError, VerificationError
from zk.field import Fr
from zk.head.zkattn import Shape, _pack_ints, _unpack_ints, _witness  # noqa: F401
from zk.lookup.tables import indicator_mle
from zk.multilinear import P, eq_eval, eq_table, evaluate, fold_cols, fold_rows
from zk.transcript import Transcript

PROTOCOL = b"zkfhe/zkattn/v1"  # the retired protocol
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


@dataclass(frozen=True)
class AttentionProof:
    """A zkAttn proof with its public input x and output y."""

    KIND: ClassVar[str] = "zkattn-proof"
    VERSION: ClassVar[int] = 1

    model_digest: bytes
    x: np.ndarray
    y: np.ndarray
    commitments: tuple[zh.HyraxCommitment, ...]  # L'xH', L'xL', L' stacks
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
            coms = tuple(zh.HyraxCommitment.read(r, 1) for _ in range(3))
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
    b_vals = send([bw.evaluate(stack.claim(sh.b, n, om_c, 0).point) for n in BIASES])
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
        book.add("lh", stack.claim(sh.lh, name, ins[i].point, ins[i].value))
        book.add("lh", stack.claim(sh.lh, PROJ[i], outs[i].point, outs[i].value))
    for i, name in zip(range(3, 7), ("R_q", "R_k", "R_v", "R_o")):
        book.add("lh", stack.claim(sh.lh, name, ins[i].point, ins[i].value))
    book.add("lh", stack.claim(sh.lh, "r_o", ins[7].point, ins[7].value))
    rho_lh = ins[7].point
    y_pad = np.zeros((d.L, d.H), dtype=np.int64)
    y_pad[: sh.L, : sh.Hd] = y
    if evaluate(Fr.from_signed(y_pad), rho_lh) != outs[7].value:
        raise VerificationError("zkattn: the output lookup does not match the public output")
    rho = ins[8].point
    rho_i = rho[d.l:]
    m_val, l_val = aux
    book.add("ll", stack.claim(sh.ll, "R_s", rho, ins[8].value))
    book.add("ll", stack.claim(sh.ll, "r_s", rho, ins[9].value))
    if ins[10].value != (ins[9].value - m_val) % P:
        raise VerificationError("zkattn: d != r_s - m at the lookup point")
    if outs[10].value != ins[11].value:
        raise VerificationError("zkattn: CLIPD's output and EXP's input differ")
    book.add("ll", stack.claim(sh.ll, "c", rho, outs[10].value))
    book.add("ll", stack.claim(sh.ll, "e", rho, outs[11].value))
    f = sh.mc.config.log_frac_bits
    if ins[12].value != ((outs[10].value << f) - l_val) % P:
        raise VerificationError("zkattn: u != 2^f c - l at the lookup point")
    book.add("ll", stack.claim(sh.ll, "p", rho, outs[12].value))
    book.add("ll", stack.claim(sh.ll, "s", rho, ins[13].value))
    book.add("lv", stack.claim(sh.lv, "m", rho_i, m_val))
    book.add("lv", stack.claim(sh.lv, "l", rho_i, l_val))
    book.add("lv", stack.claim(sh.lv, "S", ins[14].point, ins[14].value))
    book.add("lv", stack.claim(sh.lv, "l", outs[14].point, outs[14].value))


def _linear_claims(sh: Shape, book: stack.ClaimBook, om_lh, om_ll, v_lh, v_ll
                   ) -> tuple[list[int], int, int]:
    """Record the values at omega; return acc_t~, o2~ (at omega_LH) and z~ (at omega_LL)."""
    for name, v in zip(("r_q", "r_k", "r_v", "r_o", "R_q", "R_k", "R_v", "R_o"), v_lh):
        book.add("lh", stack.claim(sh.lh, name, om_lh, v))
    for name, v in zip(("r_s", "R_s"), v_ll):
        book.add("ll", stack.claim(sh.ll, name, om_ll, v))
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
    book.add("lv", stack.claim(sh.lv, "S", om_l, s_val))
    book.add("ll", stack.claim(sh.ll, "s", pt, fin[0]))
    book.add("ll", stack.claim(sh.ll, "r_s", pt, fin[1]))
    book.add("lv", stack.claim(sh.lv, "m", pt[d.l:], fin[2]))
    book.add("ll", stack.claim(sh.ll, "e", pt, fin[3]))


def _score_claims(sh: Shape, book: stack.ClaimBook, rho8, rho9, fin) -> None:
    d = sh.dims
    book.add("lh", stack.claim(sh.lh, "q", rho9, fin[0]))
    book.add("lh", stack.claim(sh.lh, "k", tuple(rho9[: d.h]) + tuple(rho8[: d.l]), fin[1]))


def _pv_claims(sh: Shape, book: stack.ClaimBook, om_lh, rho10, fin) -> None:
    d = sh.dims
    book.add("ll", stack.claim(sh.ll, "p", rho10, fin[0]))
    book.add("lh", stack.claim(sh.lh, "v", tuple(om_lh[: d.h]) + tuple(rho10[: d.l]), fin[1]))


def _proj_sum(sh: Shape, gammas, acc, b_vals, om_i) -> int:
    ind = indicator_mle(sh.L, om_i)
    return sum(g * (a - ind * b) for g, a, b in zip(gammas, acc, b_vals)) % P


def _proj_claims(sh: Shape, book: stack.ClaimBook, om_c, rho11, b_vals, w_vals) -> None:
    for name, v in zip(BIASES, b_vals):
        book.add("b", stack.claim(sh.b, name, om_c, v))
    for name, v in zip(WEIGHTS, w_vals):
        book.add("w", stack.claim(sh.w, name, tuple(om_c) + tuple(rho11), v))


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
