"""The integer Llama-style model (SmolLM2's architecture) as a graph of ops, and its proof.

One integer definition of the whole network (every op total: saturating requantizations
``rq`` as in :mod:`zk.model.ops`; A = ``act_bits``)::

    x0   = rq(Me * E[tok], k_e)                                   embedding (tied with the LM head)
    (the residual stream x0, hmid, hout saturates at res_bits >= A bits: SmolLM2's residual
    channels span 2^16 and more, the massive activations of attention sinks)
    per layer l (hin_0 = x0, hin_(l+1) = hout_l):
      n1   = rmsnorm(hin, g1)                                     (see below)
      q    = rq(ROPE(n1 Wq), k_q),  k = rq(ROPE(n1 Wk), k_k),  v = rq(n1 Wv, k_v)   per query head
      rs   = rq(q k^T, k_s) on score_bits;  causal softmax of the head's reference (tables):
             m = row max (selector), dd = rs - m, c = CLIPD[dd], ex = EXP[c], S = sum_j ex,
             lg = LOG[S], u = c 2^f - lg, p = EXP2[u]
      ya   = rq(p v, k_a)
      hmid = rq(2^k_o hin + ya Wo, k_o)                           attention + residual, saturated
      n2   = rmsnorm(hmid, g2)
      g    = rq(n2 Wg, k_g),  up = rq(n2 Wu, k_u),  sg = SILU[g]
      mm   = rq(sg up, k_m)
      hout = rq(2^k_d hmid + mm Wd, k_d)                          MLP + residual, saturated
    nf     = rmsnorm(hout_(N-1), gf)
    logit  = rq(nf E^T, k_lm)
    next token at position i = argmax_v logit[i, v] (ties: the smallest v)

    rmsnorm(h, g): ms = sum_d h^2, s = floor(sqrt(C2 / (ms + EPS))) (proven by the range
    relation s^2 (ms + EPS) <= C2 < (s + 1)^2 (ms + EPS), zkGPT-style; s < 2^norm_s_bits),
    n = rq(h s g, k_n)

Grouped-query attention lives in the weights: Wk and Wv are committed per query head (a key /
value head's weights repeated over its group). Every table (SILU, the softmax's, the RoPE
integers) is in the model commitment; nothing is recomputed from floats by a verifier.

The proof (:func:`prove`) is one zero-knowledge proof of a whole greedy generation: the forward
pass over the sequence (prompt + generated tokens, the last one not fed), with, at every
generated position, the token the argmax of the logits. Stacked witness tensors carry the
layer index as variables, so every relation below is one contraction (one sumcheck) for all
layers and heads, every table one set of columns of the model's single logUp, and every stack
one opening. The residual stream is linked across layers by one small sumcheck over the layer
variables: hin_0 = x0 and hin_(l+1) = hout_l (``_shift``).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from typing import ClassVar

import numpy as np

from gpu.heap import reuse_freed
from zk.commit import hyrax
from zk.encoding import Reader, Writer, decode_envelope, encode_envelope
from zk.errors import MalformedProofError, ProverError, VerificationError
from zk.field import Fr
from zk.lookup.tables import LookupTable
from zk.model.engine import MAX_LOG_COLS, Axis, Engine, Factor, Lin, Mask, Space
from zk.model.ops import (
    RQ,
    Pointwise,
    limb_columns,
    limb_names,
    limbs_lin,
    limbs_of,
    rs,
)
from zk.multilinear import P, eq_eval, eq_table, evaluate, evaluate_small
from zk.protocol import sigma
from zk.protocol.context import Context, Stream, final_msm_threads, one_thread
from zk.transcript import Transcript

PROTOCOL = b"zkfhe/model/llama/v1"
L_STATEMENT = b"model/statement"
SL_LIMBS = 4
WEIGHTS = ("E", "wq", "wk", "wv", "wo", "wg", "wu", "wd", "g1", "g2", "gf")
SHIFTS = ("e", "q", "k", "v", "s", "a", "o", "g", "u", "m", "d", "n", "lm")
ARCHS = ("llama", "gpt2")
GPT2_WEIGHTS = ("E", "P", "wq", "wk", "wv", "bq", "bk", "bv", "wo", "bo", "wu", "bu", "wd",
                "bd", "g1", "b1", "g2", "b2", "gf", "bf")
MAX_DIM = 1 << 20
# columns of a weight's Hyrax matrix (at most): the verifier's work per weight is one MSM over
# its 2^(n - cols) row commitments, the opening's grows with cols only as its log; the stacks'
# 2^MAX_LOG_COLS generators are in the final MSM anyway (SmolLM2: 49,152 weight rows at 2^13
# columns, 12,288 at 2^15)
WEIGHT_LOG_COLS = MAX_LOG_COLS
MAX_WEIGHT_LOG_COLS = 16  # what a commitment file may ask of a verifier


def _ints(x) -> np.ndarray:
    return np.asarray(x, dtype=np.int64)


def imatmul(spec: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """An exact integer einsum: float64 BLAS while every partial sum stays below 2^53 (DESIGN
    6c), int64 otherwise."""
    a, b = _ints(a), _ints(b)
    ins, out = spec.split("->")
    sa, sb = ins.split(",")
    sizes = dict(zip(sa, a.shape)) | dict(zip(sb, b.shape))
    terms = 1
    for c in set(sa + sb) - set(out):
        terms *= sizes[c]
    bound = (int(np.abs(a).max(initial=0)) * int(np.abs(b).max(initial=0))) * terms
    if bound < 1 << 53:
        return np.rint(np.einsum(spec, a.astype(np.float64), b.astype(np.float64),
                                 optimize=True)).astype(np.int64)
    if bound >= 1 << 62:
        raise ProverError("an accumulator could overflow 64 bits")
    return np.einsum(spec, a, b)


# ---------------------------------------------------------------- configuration and tables


@dataclass(frozen=True)
class LlamaConfig:
    """Shapes and public integer parameters of the model (all in the commitment)."""

    n_layers: int
    d_model: int
    n_heads: int
    n_kv_heads: int
    d_head: int
    d_ff: int
    vocab: int
    max_len: int
    shifts: dict = field(default_factory=dict)
    emb_mult: int = 1
    norm_c2: int = 1 << 30
    norm_eps: int = 1
    act_bits: int = 16
    t_bits: int = 32
    score_bits: int = 12
    rope_theta: float = 10000.0
    rope_bits: int = 12
    clip_t: int = 400        # CLIPD: max(d, -T)
    exp_bits: int = 8        # EXP = rnd(2^E exp(c delta))
    log_frac: int = 2        # f
    p_bits: int = 8          # EXP2 = min(2^P, rnd(2^P exp(u delta')))
    delta: float = 1 / 32    # score grid (logit units per score step)
    silu_in: float = 1 / 256   # float value of one step of the MLP activation's input
    silu_out: float = 1 / 256  # ... and of its output (SiLU for llama, GELU for gpt2)
    arch: str = "llama"        # "llama" (RMSNorm, RoPE, GQA, SiLU gate) or "gpt2" (below)
    res_bits: int | None = None  # bits of the residual stream x0, hmid, hout (None: act_bits)
    norm_s_bits: int = 16        # bits of the norm factor s (two 16-bit limbs past 16)

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise ValueError(f"arch must be one of {ARCHS}")
        if set(self.shifts) != set(SHIFTS):
            raise ValueError(f"shifts must name exactly {SHIFTS}")
        if any(not 0 <= int(v) <= 40 for v in self.shifts.values()):
            raise ValueError("shifts must be in [0, 40]")
        if self.n_heads % self.n_kv_heads:
            raise ValueError("n_heads must be a multiple of n_kv_heads")
        if self.d_head % 2:
            raise ValueError("RoPE needs an even head dimension")
        if not 4 <= self.act_bits <= 16 or not self.act_bits < self.t_bits <= 40:
            raise ValueError("act_bits in [4, 16] and below t_bits <= 40")
        if not 4 <= self.score_bits <= 16:
            raise ValueError("score_bits in [4, 16]")
        dims = (self.n_layers, self.d_model, self.n_heads, self.d_head, self.d_ff, self.vocab,
                self.max_len)
        if min(dims) < 1 or max(dims) > MAX_DIM:
            raise ValueError("model dimensions out of range")
        if self.arch == "gpt2" and (self.n_kv_heads != self.n_heads
                                    or self.t_bits < self.act_bits + 2):
            raise ValueError("gpt2: one key/value head per head, t_bits >= act_bits + 2")
        R = self.rbits
        if not self.act_bits <= R <= 31 or R + (self.arch == "gpt2") >= self.t_bits:
            raise ValueError("res_bits in [act_bits, 31] and below t_bits (gpt2: t_bits - 1)")
        if not 1 <= self.norm_s_bits <= 32:
            raise ValueError("norm_s_bits in [1, 32]")
        smax = math.isqrt(self.norm_c2 // max(1, self.norm_eps))
        if self.norm_eps < 1 or smax >> self.norm_s_bits:
            raise ValueError(f"norm_eps >= 1 and sqrt(norm_c2 / norm_eps) < 2^{self.norm_s_bits}")
        # the norm is total: its sum of squares fits 63 bits and its slacks the 64 bits of
        # their limbs for every input the residual stream can hold
        vmax = self.norm_v_max
        if vmax >= 1 << 63 or 2 * math.isqrt(self.norm_c2 * vmax) + vmax + 2 >= 1 << 64:
            raise ValueError("norm_c2 too large for the residual stream's bits (the norm's "
                             "slack must fit 64 bits)")

    @property
    def gpt2(self) -> bool:
        return self.arch == "gpt2"

    @property
    def rbits(self) -> int:
        """Bits of the residual stream."""
        return self.act_bits if self.res_bits is None else int(self.res_bits)

    @property
    def norm_in_bits(self) -> int:
        """Bits of what a norm squares: the residual (llama), its centred copy (gpt2)."""
        return self.rbits + (1 if self.gpt2 else 0)

    @property
    def norm_v_max(self) -> int:
        """The largest ms + EPS of a norm: D values of norm_in_bits bits squared."""
        return self.d_model * (1 << (2 * (self.norm_in_bits - 1))) + self.norm_eps

    def to_dict(self) -> dict:
        d = asdict(self)
        d["shifts"] = {k: int(self.shifts[k]) for k in SHIFTS}
        return d

    @property
    def k(self) -> dict:
        return {k: int(v) for k, v in self.shifts.items()}


@dataclass(frozen=True, eq=False)
class Tables:
    """The model's public tables, as (offset, values) integer arrays."""

    silu: np.ndarray     # SILU[g] for g in [-2^(A-1), 2^(A-1))
    clipd: np.ndarray    # over dd in [-2^score_bits, 0]
    exp: np.ndarray      # over c in [-T, 0]
    log: np.ndarray      # over S in [2^E, max_len 2^E]
    exp2: np.ndarray     # over u in [u_lo, 0]
    rope_cos: np.ndarray  # (max_len, d_head / 2)
    rope_sin: np.ndarray

    NAMES: ClassVar[tuple[str, ...]] = ("silu", "clipd", "exp", "log", "exp2", "rope_cos",
                                        "rope_sin")


def rnd(t) -> np.ndarray:
    return np.floor(np.asarray(t, dtype=np.float64) + 0.5).astype(np.int64)


def log_range(cfg: LlamaConfig) -> tuple[int, int]:
    return 1 << cfg.exp_bits, cfg.max_len << cfg.exp_bits


def u_low(cfg: LlamaConfig, tab_log: np.ndarray) -> int:
    return -(cfg.clip_t << cfg.log_frac) - int(tab_log.max())


def build_tables(cfg: LlamaConfig) -> Tables:
    """The tables of the integer model from its configuration (the owner runs this once)."""
    A = cfg.act_bits
    g = np.arange(-(1 << (A - 1)), 1 << (A - 1), dtype=np.float64) * cfg.silu_in
    if cfg.gpt2:  # GPT-2's tanh GELU
        act = 0.5 * g * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (g + 0.044715 * g ** 3)))
    else:
        act = g / (1.0 + np.exp(-g))
    silu = rnd(act / cfg.silu_out)
    silu = np.clip(silu, -(1 << (A - 1)), (1 << (A - 1)) - 1)
    dd = np.arange(-(1 << cfg.score_bits), 1, dtype=np.int64)
    clipd = np.maximum(dd, -cfg.clip_t)
    c = np.arange(-cfg.clip_t, 1, dtype=np.float64)
    exp = rnd((1 << cfg.exp_bits) * np.exp(c * cfg.delta))
    s_lo, s_hi = log_range(cfg)
    S = np.arange(s_lo, s_hi + 1, dtype=np.float64)
    dprime = cfg.delta / (1 << cfg.log_frac)
    log = rnd(np.log(S / (1 << cfg.exp_bits)) / dprime)
    ulo = -(cfg.clip_t << cfg.log_frac) - int(log.max())
    u = np.arange(ulo, 1, dtype=np.float64)
    exp2 = np.minimum(1 << cfg.p_bits, rnd((1 << cfg.p_bits) * np.exp(u * dprime)))
    inv = float(cfg.rope_theta) ** (-np.arange(0, cfg.d_head, 2, dtype=np.float64) / cfg.d_head)
    ang = np.arange(cfg.max_len, dtype=np.float64)[:, None] * inv[None, :]
    cos = rnd((1 << cfg.rope_bits) * np.cos(ang))
    sin = rnd((1 << cfg.rope_bits) * np.sin(ang))
    return Tables(silu, clipd, exp, log, exp2, cos, sin)


# ---------------------------------------------------------------- weights


@dataclass(frozen=True, eq=False)
class LlamaWeights:
    """The owner's integer weights (the secret), in the shapes the proof lays out."""

    E: np.ndarray    # (V, D)
    wq: np.ndarray   # (N, H, D, Dh)
    wk: np.ndarray   # (N, H, D, Dh): key head of each query head's group
    wv: np.ndarray   # (N, H, D, Dh)
    wo: np.ndarray   # (N, H, Dh, D)
    wg: np.ndarray   # (N, D, F)
    wu: np.ndarray   # (N, D, F)
    wd: np.ndarray   # (N, F, D)
    g1: np.ndarray   # (N, D)
    g2: np.ndarray   # (N, D)
    gf: np.ndarray   # (D,)
    # gpt2 only: learned positions, biases (already in the unit of the accumulator they join)
    P: np.ndarray | None = None    # (max_len, D)
    bq: np.ndarray | None = None   # (N, H, Dh)
    bk: np.ndarray | None = None
    bv: np.ndarray | None = None
    bo: np.ndarray | None = None   # (N, D)
    bu: np.ndarray | None = None   # (N, F)
    bd: np.ndarray | None = None   # (N, D)
    b1: np.ndarray | None = None   # (N, D): LayerNorm biases
    b2: np.ndarray | None = None
    bf: np.ndarray | None = None   # (D,)

    def get(self, name: str) -> np.ndarray:
        return getattr(self, name)


def weight_names(cfg: LlamaConfig) -> tuple[str, ...]:
    return GPT2_WEIGHTS if cfg.gpt2 else WEIGHTS


def weight_shapes(cfg: LlamaConfig) -> dict[str, tuple[int, ...]]:
    N, D, H, Dh, F, V = (cfg.n_layers, cfg.d_model, cfg.n_heads, cfg.d_head, cfg.d_ff,
                         cfg.vocab)
    out = {"E": (V, D), "wq": (N, H, D, Dh), "wk": (N, H, D, Dh), "wv": (N, H, D, Dh),
           "wo": (N, H, Dh, D), "wg": (N, D, F), "wu": (N, D, F), "wd": (N, F, D),
           "g1": (N, D), "g2": (N, D), "gf": (D,), "P": (cfg.max_len, D), "bq": (N, H, Dh),
           "bk": (N, H, Dh), "bv": (N, H, Dh), "bo": (N, D), "bu": (N, F), "bd": (N, D),
           "b1": (N, D), "b2": (N, D), "bf": (D,)}
    return {n: out[n] for n in weight_names(cfg)}


def random_weights(cfg: LlamaConfig, rng: np.random.Generator, wbits: int = 8
                   ) -> LlamaWeights:
    """Random integer weights (tests and benchmarks): wbits-bit matrices, gains near 1."""
    q = (1 << (wbits - 1)) - 1
    sh = weight_shapes(cfg)
    w = {n: rng.integers(-q, q + 1, size=s) for n, s in sh.items() if n[0] in "EPw"}
    g = cfg.n_heads // cfg.n_kv_heads
    for n in ("wk", "wv"):  # one key / value head per group
        w[n] = np.repeat(w[n][:, ::g], g, axis=1)
    for n in ("g1", "g2", "gf"):
        w[n] = rng.integers(q // 2, q + 1, size=sh[n])
    for n in sh:
        if n[0] == "b":  # biases of a few hundred accumulator units
            w[n] = rng.integers(-4 * q, 4 * q + 1, size=sh[n])
    if cfg.gpt2:
        w["wg"] = np.zeros((0,), dtype=np.int64)
    else:
        w = {k: v for k, v in w.items() if k in WEIGHTS}
    return LlamaWeights(**{k: _ints(v) for k, v in w.items()})


# ---------------------------------------------------------------- the shapes of one proof


class Shape:
    """Axes, spaces and rounding sites of the model on a sequence of L positions."""

    def __init__(self, cfg: LlamaConfig, L: int) -> None:
        if not 1 <= L <= cfg.max_len:
            raise ValueError(f"a sequence of 1 to {cfg.max_len} positions")
        self.cfg, self.L = cfg, L
        N, D, H, Dh, F, V = (cfg.n_layers, cfg.d_model, cfg.n_heads, cfg.d_head, cfg.d_ff,
                             cfg.vocab)
        ax = self.ax = {n: Axis(n, s) for n, s in (
            ("l", N), ("lp", N), ("h", H), ("d", D), ("e", Dh), ("e2", Dh), ("f", F), ("v", V),
            ("pos", cfg.max_len))}
        # positions keep at least one variable (a one-position sequence still has a row bit)
        ax["i"], ax["j"] = Axis("i", L, 1), Axis("j", L, 1)
        ax = self.ax = {n: ax[n] for n in ("l", "lp", "h", "i", "j", "pos", "v", "d", "f", "e",
                                           "e2")}
        gpt2 = self.gpt2 = cfg.gpt2

        def sp(name: str, *names: str) -> Space:
            return Space(name, tuple(ax[n] for n in names))

        self.ID = sp("ID", "i", "d")
        self.I = sp("I", "i")
        self.IV = sp("IV", "i", "v")
        self.LD = sp("LD", "l", "i", "d")
        self.LI = sp("LI", "l", "i")
        self.LHE = sp("LHE", "l", "h", "i", "e")
        self.LHIJ = sp("LHIJ", "l", "h", "i", "j")
        self.LHI = sp("LHI", "l", "h", "i")
        self.LF = sp("LF", "l", "i", "f")
        self.W = {"E": sp("wE", "v", "d"), "wq": sp("wq", "l", "h", "d", "e"),
                  "wk": sp("wk", "l", "h", "d", "e"), "wv": sp("wv", "l", "h", "d", "e"),
                  "wo": sp("wo", "l", "h", "e", "d"), "wg": sp("wg", "l", "d", "f"),
                  "wu": sp("wu", "l", "d", "f"), "wd": sp("wd", "l", "f", "d"),
                  "g1": sp("g1", "l", "d"), "g2": sp("g2", "l", "d"), "gf": sp("gf", "d"),
                  "P": sp("wP", "pos", "d"), "bq": sp("bq", "l", "h", "e"),
                  "bk": sp("bk", "l", "h", "e"), "bv": sp("bv", "l", "h", "e"),
                  "bo": sp("bo", "l", "d"), "bu": sp("bu", "l", "f"), "bd": sp("bd", "l", "d"),
                  "b1": sp("b1", "l", "d"), "b2": sp("b2", "l", "d"), "bf": sp("bf", "d")}
        k, A, T, Rb = cfg.k, cfg.act_bits, cfg.t_bits, cfg.rbits
        self.rq = {
            "x0": RQ("x0", self.ID, k["e"], Rb, T),
            "n1": RQ("n1", self.LD, k["n"], A, T),
            "q": RQ("q", self.LHE, k["q"], A, T), "k": RQ("k", self.LHE, k["k"], A, T),
            "v": RQ("v", self.LHE, k["v"], A, T),
            "rs": RQ("rs", self.LHIJ, k["s"], cfg.score_bits, T),
            "ya": RQ("ya", self.LHE, k["a"], A, T),
            "hmid": RQ("hmid", self.LD, k["o"], Rb, T),
            "n2": RQ("n2", self.LD, k["n"], A, T),
            "g": RQ("g", self.LF, k["g"], A, T), "up": RQ("up", self.LF, k["u"], A, T),
            "mm": RQ("mm", self.LF, k["m"], A, T),
            "hout": RQ("hout", self.LD, k["d"], Rb, T),
            "nf": RQ("nf", self.ID, k["n"], A, T),
            "logit": RQ("logit", self.IV, k["lm"], A, T),
        }
        if gpt2:  # no gate: up = rq(n2 Wu + bu), act = GELU[up]; LayerNorm centres first
            del self.rq["g"], self.rq["mm"]
            kc = self.kc = (D - 1).bit_length()
            for n, space in (("n1", self.LD), ("n2", self.LD), ("nf", self.ID)):
                self.rq[n + ".hc"] = RQ(n + ".hc", space, kc, Rb + 1, T)
        self.norms = {"n1": (self.LI, "l"), "n2": (self.LI, "l"), "nf": (self.I, None)}
        mask = np.zeros((ax["i"].padded, ax["j"].padded), dtype=np.int64)
        for i in range(L):
            mask[i, : i + 1] = 1
        self.causal = mask

    def members(self) -> dict[str, list[str]]:
        cfg = self.cfg
        m: dict[str, list[str]] = {s: [] for s in ("ID", "I", "IV", "LD", "LI", "LHE", "LHIJ",
                                                    "LHI", "LF")}
        for r in self.rq.values():
            m[r.space.name].extend(r.tensors())
        m["LD"].append("hin")
        for n, (rsp, _) in self.norms.items():
            m[rsp.name].extend([n + ".ms"] + s_names(cfg, n) + limb_names(n + ".sl1", SL_LIMBS)
                               + limb_names(n + ".sl2", SL_LIMBS))
        m["LHIJ"].extend(["sel", "dd", "c", "ex", "u", "p"])
        m["LHI"].extend(["mx", "S", "lg"])
        m["LF"].append("sg")
        if self.gpt2:
            for n, (rsp, _) in self.norms.items():
                m[rsp.name].append(n + ".hsum")
        m["I"].append("lt")
        m["IV"].append("diff")
        return {k: v for k, v in m.items() if v}

    def spaces(self) -> list[Space]:
        return [self.ID, self.I, self.IV, self.LD, self.LI, self.LHE, self.LHIJ, self.LHI,
                self.LF]

    def mask_lhij(self) -> Mask:
        """The causal mask on (i, j), broadcast over the layer and head axes (real ones)."""
        return Mask(("i", "j"), self.causal)

    def rot(self) -> np.ndarray:
        """ROT[i, e, e2]: rot[i, e] = sum_e2 ROT[i, e, e2] acc[i, e2] (zero on padding)."""
        cfg, a = self.cfg, self.ax
        t = self.tables
        Dh, half = cfg.d_head, cfg.d_head // 2
        R = np.zeros((a["i"].padded, a["e"].padded, a["e2"].padded), dtype=np.int64)
        cos, sin = t.rope_cos[: self.L], t.rope_sin[: self.L]
        for e in range(Dh):
            f = e % half
            R[: self.L, e, e] = cos[:, f]
            if e < half:
                R[: self.L, e, e + half] = -sin[:, f]
            else:
                R[: self.L, e, e - half] = sin[:, f]
        return R.reshape(-1)


def s_names(cfg: LlamaConfig, norm: str) -> list[str]:
    """The committed limbs of a norm's factor s: one below 17 bits, else 16 + the rest."""
    return [norm + ".s"] + ([norm + ".s1"] if cfg.norm_s_bits > 16 else [])


def s_lin(cfg: LlamaConfig, row: Space, norm: str) -> Lin:
    lin = Lin.of(row, norm + ".s")
    if cfg.norm_s_bits > 16:
        lin = lin + Lin.of(row, norm + ".s1", 1 << 16)
    return lin


def s_columns(eng: Engine, cfg: LlamaConfig, row: Space, norm: str) -> None:
    """s in [0, 2^norm_s_bits): its limbs' range checks."""
    lo = min(cfg.norm_s_bits, 16)
    eng.column(eng.range_table(0, 1 << lo), Lin.of(row, norm + ".s"))
    if cfg.norm_s_bits > 16:
        eng.column(eng.range_table(0, 1 << (cfg.norm_s_bits - 16)), Lin.of(row, norm + ".s1"))


# ---------------------------------------------------------------- the model commitment


@dataclass(frozen=True, eq=False)
class LlamaCommitment:
    """The public commitment to an integer Llama model: configuration, tables, and one hiding
    Hyrax commitment per weight kind (every layer stacked in it)."""

    KIND: ClassVar[str] = "zkmodel-llama-commitment"
    VERSION: ClassVar[int] = 1

    config: LlamaConfig
    tables: Tables
    weights: dict  # name -> HyraxCommitment
    origin: dict = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        w = Writer()
        w.text(json.dumps({"config": self.config.to_dict(), "origin": self.origin},
                          sort_keys=True, separators=(",", ":")))
        with w.section("tables"):
            for n in Tables.NAMES:
                w.raw_bytes(np.asarray(getattr(self.tables, n), dtype="<i8").tobytes())
        with w.section("weights"):
            for n in weight_names(self.config):
                self.weights[n].write(w)
        return encode_envelope(self.KIND, self.VERSION, w.getvalue())

    @property
    def digest(self) -> bytes:
        d = self.__dict__.get("_digest")
        if d is None:
            d = hashlib.sha3_256(self.to_bytes()).digest()
            object.__setattr__(self, "_digest", d)
        return d

    @classmethod
    def from_bytes(cls, data: bytes) -> "LlamaCommitment":
        """Decode a commitment file; MalformedProofError on any bad input."""
        _, r = decode_envelope(data, cls.KIND, (cls.VERSION,))
        text = r.text(1 << 20)
        try:
            head = json.loads(text)
            if set(head) != {"config", "origin"} or not isinstance(head["origin"], dict):
                raise ValueError("unexpected fields")
            cfg = LlamaConfig(**head["config"])
            if json.dumps(head, sort_keys=True, separators=(",", ":")) != text:
                raise ValueError("not in canonical form")
        except (ValueError, KeyError, TypeError) as e:
            raise r.error(f"model header: {e}") from e
        vals = {}
        with r.section("tables"):
            for n in Tables.NAMES:
                expect = _table_lengths(cfg, vals.get("log"))
                raw = r.raw_bytes(8 * (1 << 22))
                if len(raw) != 8 * expect[n]:
                    raise r.error(f"table {n}: expected {expect[n]} entries")
                vals[n] = np.frombuffer(raw, dtype="<i8").astype(np.int64)
                if n == "log" and (vals[n].min() < 0 or vals[n].max() > 1 << 24):
                    raise r.error("LOG table value outside [0, 2^24]")
        half = cfg.d_head // 2
        vals["rope_cos"] = vals["rope_cos"].reshape(cfg.max_len, half)
        vals["rope_sin"] = vals["rope_sin"].reshape(cfg.max_len, half)
        if max(np.abs(vals["rope_cos"]).max(), np.abs(vals["rope_sin"]).max()) > 1 << cfg.rope_bits:
            raise r.error("RoPE table entry outside [-2^rope_bits, 2^rope_bits]")
        A = cfg.act_bits
        if np.abs(vals["silu"]).max() >= 1 << (A - 1) or vals["exp"].min() < 0 \
                or vals["exp2"].min() < 0 or vals["exp"].max() > 1 << 20:
            raise r.error("a table value outside its range")
        tables = Tables(**vals)
        sh = Shape(cfg, 1)
        weights = {}
        with r.section("weights"):
            for n in weight_names(cfg):
                c = hyrax.HyraxCommitment.read(r, 1)
                if c.num_vars != sh.W[n].num_vars:
                    raise r.error(f"weight {n}: commitment does not match the dimensions")
                if c.log_cols > MAX_WEIGHT_LOG_COLS:
                    raise r.error(f"weight {n}: 2^{c.log_cols} columns (at most "
                                  f"2^{MAX_WEIGHT_LOG_COLS}: a verifier derives that many "
                                  f"generators)")
                weights[n] = c
        r.finish()
        return cls(cfg, tables, weights, head["origin"])


def _table_lengths(cfg: LlamaConfig, log: np.ndarray | None = None) -> dict[str, int]:
    """Entries of each table for ``cfg`` (EXP2's length follows from the LOG table)."""
    s_lo, s_hi = log_range(cfg)
    t = {"silu": 1 << cfg.act_bits, "clipd": (1 << cfg.score_bits) + 1, "exp": cfg.clip_t + 1,
         "log": s_hi - s_lo + 1, "rope_cos": cfg.max_len * (cfg.d_head // 2),
         "rope_sin": cfg.max_len * (cfg.d_head // 2)}
    if log is not None:
        t["exp2"] = -u_low(cfg, log) + 1
    return t


@dataclass(frozen=True, eq=False)
class IntegerLlama:
    """An integer model before its commitment: configuration, weights, tables (default: built
    from the configuration)."""

    config: LlamaConfig
    weights: LlamaWeights
    tables: Tables | None = None


@dataclass
class ProvingLlama:
    """The owner's private side: the weights and the witnesses of their commitments."""

    commitment: LlamaCommitment
    weights: LlamaWeights
    witnesses: dict  # name -> HyraxWitness

    @property
    def config(self) -> LlamaConfig:
        return self.commitment.config


def commit(cfg: LlamaConfig, weights: LlamaWeights, *, tables: Tables | None = None,
           origin: dict | None = None, rng: np.random.Generator | None = None) -> ProvingLlama:
    """Commit to the model: one hiding Hyrax commitment per weight kind (blinds from the OS
    CSPRNG unless ``rng`` is given, tests only)."""
    tables = tables or build_tables(cfg)
    sh = Shape(cfg, 1)
    shapes = weight_shapes(cfg)
    coms, wits = {}, {}
    with reuse_freed():
        for n in weight_names(cfg):
            a = _ints(weights.get(n))
            if a.shape != shapes[n]:
                raise ValueError(f"weight {n} has shape {a.shape}, expected {shapes[n]}")
            space = sh.W[n]
            cols = min(WEIGHT_LOG_COLS, space.num_vars)
            coms[n], wits[n] = hyrax.commit(space.pad(a), log_cols=cols, rng=rng,
                                            compact=True)
    mc = LlamaCommitment(cfg, tables, coms, dict(origin or {}))
    return ProvingLlama(mc, weights, wits)


# ---------------------------------------------------------------- the reference


def norm_ref(h: np.ndarray, g: np.ndarray, b: np.ndarray | None, cfg: LlamaConfig,
             sh: "Shape", name: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The model's norm of h (L, D): RMSNorm for llama; LayerNorm for gpt2, which first centres
    h as hc = rs(D h - sum_d h, kc) (kc = bits of D - 1) and adds the bias b."""
    if not cfg.gpt2:
        return rmsnorm_ref(h, g, cfg, sh.rq[name])
    h = _ints(h)
    hsum = h.sum(axis=-1)
    hc, w = sh.rq[name + ".hc"].ref(cfg.d_model * h - hsum[:, None])
    y, w2 = rmsnorm_ref(hc, g, cfg, sh.rq[name], bias=b)
    w.update(w2)
    w[name + ".hsum"] = hsum
    return y, w


def rmsnorm_ref(h: np.ndarray, g: np.ndarray, cfg: LlamaConfig, r: RQ, bias=None
                ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """rmsnorm on the last axis (module docstring) and its witness (rows: all but the last)."""
    h = _ints(h)
    ms = np.sum(h * h, axis=-1)
    flat = ms.reshape(-1)
    s = np.array([math.isqrt(cfg.norm_c2 // (int(m) + cfg.norm_eps)) for m in flat],
                 dtype=np.int64)
    sl1 = [cfg.norm_c2 - int(a) * int(a) * (int(m) + cfg.norm_eps) for a, m in zip(s, flat)]
    sl2 = [(int(a) + 1) ** 2 * (int(m) + cfg.norm_eps) - cfg.norm_c2 - 1
           for a, m in zip(s, flat)]
    s = s.reshape(ms.shape)
    gmax = int(np.abs(_ints(g)).max(initial=0))
    if (math.isqrt(cfg.norm_c2) + 1) * gmax >= 1 << 62:  # |h s| <= sqrt(C2): h^2 <= ms
        raise ProverError("norm gains too large for 64-bit accumulators")
    acc = h * s[:, None] * _ints(g)[None, :]
    if bias is not None:
        acc = acc + _ints(bias)[None, :]
    y, w = r.ref(acc)
    w[r.name + ".ms"] = ms
    if cfg.norm_s_bits > 16:
        w[r.name + ".s"], w[r.name + ".s1"] = s & 0xFFFF, s >> 16
    else:
        w[r.name + ".s"] = s
    for nm, sl in (("sl1", sl1), ("sl2", sl2)):
        arr = np.array(sl, dtype=object)
        if any(v < 0 or v >> (16 * SL_LIMBS) for v in sl):
            raise ProverError("norm slack outside its range (norm_c2 too large)")
        for j in range(SL_LIMBS):
            w[f"{r.name}.{nm}.{j}"] = np.array([(int(v) >> (16 * j)) & 0xFFFF for v in arr],
                                               dtype=np.int64).reshape(ms.shape)
    return y, w


def forward(model_cfg: LlamaConfig, tables: Tables, weights: LlamaWeights,
            tokens: np.ndarray, *, feed=None) -> tuple[np.ndarray, dict[str, np.ndarray], dict]:
    """Run the integer model on ``tokens`` (L ids): (logits (L, V), witness (real shapes),
    chains (accumulators that the proof never commits, real shapes)).

    ``feed(l, h)``, if given, replaces what layer l reads (the previous layer's output h): a
    cheating prover for soundness tests; the integer model itself never uses it."""
    cfg = model_cfg
    tok = _ints(tokens).reshape(-1)
    L = tok.size
    if L < 1 or L > cfg.max_len or tok.min() < 0 or tok.max() >= cfg.vocab:
        raise ProverError(f"tokens must be 1 to {cfg.max_len} ids below {cfg.vocab}")
    sh = Shape(cfg, L)
    R = sh.rq
    W = weights
    N, H, Dh = cfg.n_layers, cfg.n_heads, cfg.d_head
    k = cfg.k
    w: dict[str, np.ndarray] = {}
    ch: dict[str, np.ndarray] = {}

    def put(y_w):
        y, wit = y_w
        w.update(wit)
        return y

    emb = _ints(W.E)[tok] + (_ints(W.P)[:L] if cfg.gpt2 else 0)
    x0 = put(R["x0"].ref(cfg.emb_mult * emb))
    if cfg.gpt2:
        ch["y_pos"] = _ints(W.P)[:L]

    def bias(name, l, shape_fn):
        return shape_fn(_ints(W.get(name)[l])) if cfg.gpt2 else 0
    cos, sin = tables.rope_cos[:L], tables.rope_sin[:L]
    half = Dh // 2
    C = np.concatenate([cos, cos], axis=1)
    S = np.concatenate([-sin, sin], axis=1)

    def rope(a):  # a: (..., L, Dh)
        return a * C + np.concatenate([a[..., half:], a[..., :half]], axis=-1) * S

    stacks: dict[str, list] = {}

    def keep(name, v):
        stacks.setdefault(name, []).append(v)

    def keep_all(y_w):
        """A layer's rounding or norm: keep its witness, return its output."""
        y, wit = y_w
        for kk, vv in wit.items():
            keep(kk, vv)
        return y

    h = x0
    causal = np.tril(np.ones((L, L), dtype=bool))
    for l in range(N):
        if feed is not None:
            h = _ints(feed(l, h))
        keep("hin", h)
        n1 = keep_all(norm_ref(h, W.g1[l], W.b1[l] if cfg.gpt2 else None, cfg, sh, "n1"))
        acc = {t: imatmul("id,hde->hie", n1, W.get("w" + t)[l])
               + bias("b" + t, l, lambda b: b[:, None, :]) for t in "qkv"}
        qkv = {}
        for t in "qkv":
            a = rope(acc[t]) if t in "qk" and not cfg.gpt2 else acc[t]
            keep("acc_" + t, acc[t])
            qkv[t] = keep_all(R[t].ref(a))
        z = imatmul("hie,hje->hij", qkv["q"], qkv["k"])
        keep("acc_s", z)
        r_s = keep_all(R["rs"].ref(z))
        mx = np.where(causal, r_s, np.iinfo(np.int64).min).max(axis=-1)
        sel = np.zeros_like(r_s)
        for hh in range(H):
            for i in range(L):
                sel[hh, i, int(np.argmax(r_s[hh, i, : i + 1]))] = 1
        dd = r_s - mx[..., None]
        c = np.maximum(dd, -cfg.clip_t)
        ex = np.where(causal, tables.exp[np.clip(c + cfg.clip_t, 0, cfg.clip_t)], 0)
        Ssum = ex.sum(axis=-1)
        s_lo, _ = log_range(cfg)
        lg = tables.log[np.clip(Ssum - s_lo, 0, len(tables.log) - 1)]
        u = (c << cfg.log_frac) - lg[..., None]
        ulo = u_low(cfg, tables.log)
        p = np.where(causal, tables.exp2[np.clip(u - ulo, 0, len(tables.exp2) - 1)], 0)
        keep("sel", sel)
        keep("mx", mx)
        keep("c", c)
        keep("ex", ex)
        keep("S", Ssum)
        keep("lg", lg)
        keep("p", p)
        o2 = imatmul("hij,hje->hie", p, qkv["v"])
        keep("acc_a", o2)
        ya = keep_all(R["ya"].ref(o2))
        acc_o = imatmul("hie,hed->id", ya, W.wo[l]) + bias("bo", l, lambda b: b[None, :])
        keep("acc_o", acc_o)
        hmid = keep_all(R["hmid"].ref((h << k["o"]) + acc_o))
        n2 = keep_all(norm_ref(hmid, W.g2[l], W.b2[l] if cfg.gpt2 else None, cfg, sh, "n2"))
        acc_u = imatmul("id,df->if", n2, W.wu[l]) + bias("bu", l, lambda b: b[None, :])
        keep("acc_u", acc_u)
        up = keep_all(R["up"].ref(acc_u))
        if cfg.gpt2:  # GELU on the up projection, no gate
            mm = sg = tables.silu[up + (1 << (cfg.act_bits - 1))]
            keep("sg", sg)
        else:
            acc_g = imatmul("id,df->if", n2, W.wg[l])
            keep("acc_g", acc_g)
            g = keep_all(R["g"].ref(acc_g))
            sg = tables.silu[g + (1 << (cfg.act_bits - 1))]
            keep("sg", sg)
            mm = keep_all(R["mm"].ref(sg * up))
        acc_d = imatmul("if,fd->id", mm, W.wd[l]) + bias("bd", l, lambda b: b[None, :])
        keep("acc_d", acc_d)
        h = keep_all(R["hout"].ref((hmid << k["d"]) + acc_d))
    for kk, vv in stacks.items():
        (ch if kk.startswith("acc_") else w)[kk] = np.stack(vv)
    # the softmax's derived tensors on padded grids are built by the prover (_padded_extras)
    nf, wn = norm_ref(h, W.gf, W.bf if cfg.gpt2 else None, cfg, sh, "nf")
    w.update(wn)
    acc_lm = imatmul("id,vd->iv", nf, W.E)
    ch["acc_lm"] = acc_lm
    logit, wt = R["logit"].ref(acc_lm)
    w.update(wt)
    return logit, w, ch


def greedy_tokens(logits: np.ndarray) -> np.ndarray:
    """argmax per row, ties to the smallest index (numpy's argmax)."""
    return np.argmax(logits, axis=-1).astype(np.int64)


def generate(model: ProvingLlama, prompt: np.ndarray, n_new: int) -> np.ndarray:
    """Greedy generation with the integer model: the prompt followed by n_new tokens."""
    mc = model.commitment
    seq = list(_ints(prompt).reshape(-1))
    for _ in range(n_new):
        logits, _, _ = forward(mc.config, mc.tables, model.weights, np.array(seq))
        seq.append(int(greedy_tokens(logits)[-1]))
    return np.array(seq, dtype=np.int64)


# ---------------------------------------------------------------- the statement


@dataclass(frozen=True)
class Statement:
    """Public: the token ids of the sequence, the prompt's length and the model's digest.
    Proven: token[i + 1] = argmax(logits[i]) for i = prompt_len - 1 .. len(tokens) - 2 (the
    model runs on tokens[:-1])."""

    tokens: tuple[int, ...]
    prompt_len: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "tokens", tuple(int(t) for t in self.tokens))
        object.__setattr__(self, "prompt_len", int(self.prompt_len))

    def check(self, cfg: LlamaConfig) -> None:
        n = len(self.tokens)
        if not 1 <= self.prompt_len < n:
            raise ValueError("a statement needs a prompt of at least one token and at least "
                             "one generated token")
        if n - 1 > cfg.max_len:
            raise ValueError(f"at most {cfg.max_len} positions")
        if min(self.tokens) < 0 or max(self.tokens) >= cfg.vocab:
            raise ValueError(f"token ids must be in [0, {cfg.vocab})")

    @property
    def L(self) -> int:
        return len(self.tokens) - 1

    @property
    def generated(self) -> tuple[int, ...]:
        return self.tokens[self.prompt_len:]


def _one_hot(sh: Shape, rows: dict[int, int]) -> np.ndarray:
    a = sh.ax
    T = np.zeros((a["i"].padded, a["v"].padded), dtype=np.int64)
    for i, t in rows.items():
        T[i, t] = 1
    return T


class Publics:
    """The public tables of one statement, as contraction factors (values and MLE)."""

    def __init__(self, sh: Shape, tables: Tables, st: Statement) -> None:
        self.sh, self.st = sh, st
        sh.tables = tables
        toks = st.tokens
        L = st.L
        a = sh.ax
        proven = range(st.prompt_len - 1, L)
        self.T0 = _one_hot(sh, {i: toks[i] for i in range(L)})
        self.T1 = _one_hot(sh, {i: toks[i + 1] for i in proven})
        LT = np.zeros_like(self.T1)
        for i in proven:
            LT[i, : toks[i + 1]] = 1
        self.LT = LT
        pm = np.zeros(a["i"].padded, dtype=np.int64)
        pm[list(proven)] = 1
        self.proven_mask = Mask(("i",), pm)  # the proven positions' rows, every real v
        N = a["l"].padded
        E0 = np.zeros((N, N), dtype=np.int64)
        E0[0, 0] = 1
        SH = np.zeros((N, N), dtype=np.int64)
        for lp in range(sh.cfg.n_layers - 1):
            SH[lp + 1, lp] = 1
        self.E0, self.SH = E0, SH
        TP = np.zeros((a["i"].padded, a["pos"].padded), dtype=np.int64)
        TP[np.arange(L), np.arange(L)] = 1
        self.TP = TP
        self._cache: dict[str, np.ndarray] = {}
        self._fr: dict[str, np.ndarray] = {}

    def factor(self, name: str, axes: tuple[str, ...], table) -> Factor:
        """A public factor from an int64 table over ``axes`` (outermost first)."""
        def ints() -> np.ndarray:
            if name not in self._cache:
                t = table() if callable(table) else table
                self._cache[name] = np.asarray(t, dtype=np.int64).reshape(-1)
            return self._cache[name]

        def fr() -> np.ndarray:  # the prover's sumcheck table (M and ROT serve twice)
            if name not in self._fr:
                self._fr[name] = Fr.from_signed(ints())
            return self._fr[name]

        def mle(co) -> int:  # the verifier's O(n) small-integer pass, no Fr copy
            return evaluate_small(ints(), [x for ax in reversed(axes) for x in co[ax]])

        return Factor("public", axes, values=fr, mle=mle)

    def ind(self, *axes: str) -> Factor:
        ax = [self.sh.ax[n] for n in axes]

        def vals() -> np.ndarray:
            m = np.zeros(tuple(x.padded for x in ax), dtype=np.int64)
            m[tuple(slice(0, x.size) for x in ax)] = 1
            return m.reshape(-1)

        def mle(co) -> int:
            acc = 1
            for x in ax:
                acc = acc * indicator_mle(x.size, co[x.name]) % P
            return acc

        return Factor("public", tuple(axes), values=vals, mle=mle)


from zk.lookup.tables import indicator_mle  # noqa: E402  (used by Publics.ind)


def tensor(space: Space, name: str, axes: tuple[str, ...] | None = None, fixed=None,
           coef: int = 1) -> Factor:
    return Factor("tensor", axes or space.names, Lin.of(space, name, coef), fixed=fixed)


def lin_factor(lin: Lin, axes: tuple[str, ...] | None = None) -> Factor:
    return Factor("tensor", axes or lin.space.names, lin)


# ---------------------------------------------------------------- witness on padded grids


PADDED_GRID = ("dd", "u", "lt", "diff")
"""Tensors that :func:`_witness` builds on the padded grids (not zero on padding)."""


def _witness(sh: Shape, w: dict, ch: dict, st: Statement) -> tuple[dict, dict]:
    """Pad the reference's tensors onto their spaces; build the derived ones (dd, u, lt,
    diff) on the padded grids, where their relations must hold too."""
    cfg = sh.cfg
    spaces = {}
    for sp, names in sh.members().items():
        for n in names:
            spaces[n] = getattr(sh, sp)
    out = {}
    for n, sp in spaces.items():
        if n in PADDED_GRID:
            continue
        out[n] = sp.pad(w[n])
    a = sh.ax
    lhij = tuple(a[n].padded for n in ("l", "h", "i", "j"))
    rs_p = out["rs"].reshape(lhij)
    mx_p = out["mx"].reshape(lhij[:3])
    out["dd"] = (rs_p - mx_p[..., None]).reshape(-1)
    c_p = out["c"].reshape(lhij)
    lg_p = out["lg"].reshape(lhij[:3])
    out["u"] = ((c_p << cfg.log_frac) - lg_p[..., None]).reshape(-1)
    iv = (a["i"].padded, a["v"].padded)
    logit = out["logit"].reshape(iv)
    pub = Publics(sh, sh.tables, st)
    lt = (pub.T1 * logit).sum(axis=1)
    out["lt"] = lt
    out["diff"] = (lt[:, None] - logit - pub.LT).reshape(-1)
    chains = {}
    for n, sp in (("acc_q", sh.LHE), ("acc_k", sh.LHE), ("acc_v", sh.LHE), ("acc_a", sh.LHE),
                  ("acc_s", sh.LHIJ), ("acc_o", sh.LD), ("acc_g", sh.LF), ("acc_u", sh.LF),
                  ("acc_d", sh.LD), ("acc_lm", sh.IV), ("y_pos", sh.ID)):
        if n in ch:
            chains[n] = sp.pad(ch[n])
    return out, chains


# ---------------------------------------------------------------- the protocol (both roles)


def _absorb(t: Transcript, mc: LlamaCommitment, st: Statement, context: bytes) -> None:
    t.absorb_bytes(L_STATEMENT, mc.digest)
    t.absorb_bytes(L_STATEMENT, context)
    t.absorb_scalars(L_STATEMENT, [len(st.tokens), st.prompt_len, *st.tokens])


def _protocol(ctx: Context, mc: LlamaCommitment, st: Statement, context: bytes,
              model: ProvingLlama | None = None, w: dict | None = None,
              ch: dict | None = None) -> None:
    cfg = mc.config
    sh = Shape(cfg, st.L)
    pub = Publics(sh, mc.tables, st)
    ax = sh.ax
    _absorb(ctx.t, mc, st, context)
    eng = Engine(ctx, sh.spaces(), sh.members(), w, nonzero_padding=PADDED_GRID)
    for n in weight_names(cfg):
        eng.bind_external(n, sh.W[n], mc.weights[n],
                          model.witnesses[n] if ctx.proving else None,
                          absorbed=True)  # mc.digest (absorbed above) hashes every row
    eng.commit_stacks()
    R = sh.rq
    A = cfg.act_bits
    T = mc.tables

    # ---- phase 1: every lookup of the model
    mask_s = sh.mask_lhij()
    for name, r in R.items():
        r.columns(eng, mask_s if name == "rs" else None)
    for name, (row, _) in sh.norms.items():
        s_columns(eng, cfg, row, name)
        limb_columns(eng, row, name + ".sl1", SL_LIMBS)
        limb_columns(eng, row, name + ".sl2", SL_LIMBS)
    L4 = sh.LHIJ

    built = mc.__dict__.setdefault("_lookup_tables", {})  # built once per commitment

    def fn(key: str, offset: int, values: np.ndarray) -> int:
        if (key, offset) not in built:
            built[(key, offset)] = LookupTable.function(offset, values, key)
        return eng.table(key, lambda: built[(key, offset)])

    eng.column(eng.range_table(0, 2), Lin.of(L4, "sel"), None, mask_s)
    eng.column(fn("clipd", -(1 << cfg.score_bits), T.clipd), Lin.of(L4, "dd"),
               Lin.of(L4, "c"), mask_s)
    eng.column(fn("exp", -cfg.clip_t, T.exp), Lin.of(L4, "c"), Lin.of(L4, "ex"), mask_s)
    ulo = u_low(cfg, T.log)
    eng.column(fn("exp2", ulo, T.exp2), Lin.of(L4, "u"), Lin.of(L4, "p"), mask_s)
    eng.column(fn("log", log_range(cfg)[0], T.log), Lin.of(sh.LHI, "S"), Lin.of(sh.LHI, "lg"))
    eng.column(fn("silu", -(1 << (A - 1)), T.silu), Lin.of(sh.LF, "up" if sh.gpt2 else "g"),
               Lin.of(sh.LF, "sg"))
    eng.column(eng.range_table(0, 1 << A), Lin.of(sh.IV, "diff"), None, pub.proven_mask)
    eng.run_lookup()

    # ---- phase 2: relations
    pw = Pointwise()  # every pointwise relation, one sumcheck per space at the end
    for r in R.values():
        pw.add(r.space, *r.clip_relation())
    k = cfg.k

    def chain(name: str, space: Space, axes=None) -> Factor:
        return Factor("chain", axes or space.names,
                      values=(lambda: ch[name]) if ctx.proving else None)

    def rename(co, **m):
        return {m.get(a, a): v for a, v in co.items()}

    def biased(claim, name: str, c, axes: tuple[str, ...]):
        """claim - b(c) [i < L]: a bias broadcast over the real positions (gpt2)."""
        if not sh.gpt2:
            return claim
        b = eng.claim(name, {a: c[a] for a in axes})
        return claim - b * (indicator_mle(st.L, c["i"]))

    # embedding: x0's accumulator = Me (sum_v T0[i, v] E[v, d] + P[i, d] (gpt2))
    c = eng.random_coords(sh.ID)
    claim = eng.lin_at(R["x0"].acc_lin(), c)
    if sh.gpt2:  # the position rows: y_pos~(c) committed, then proven from P
        y_pos = eng.ctx.commit(L_STATEMENT, 1, lambda: [evaluate(
            Fr.from_signed(ch["y_pos"]), list(sh.ID.point(c)))])[0]
        claim = claim - y_pos * cfg.emb_mult
        eng.contract(y_pos, c, [ax["pos"]],
                     [pub.factor("TP", ("i", "pos"), pub.TP), tensor(sh.W["P"], "P")],
                     [(1, [0, 1])], ax)
    eng.contract(claim, c, [ax["v"]],
                 [pub.factor("T0", ("i", "v"), pub.T0), tensor(sh.W["E"], "E")],
                 [(cfg.emb_mult, [0, 1])], ax)

    # the residual stream across layers: hin_0 = x0, hin_(l+1) = hout_l
    c = eng.random_coords(sh.LD)
    eng.contract(eng.claim("hin", c), c, [ax["lp"]],
                 [pub.factor("E0", ("l", "lp"), pub.E0), tensor(sh.ID, "x0"),
                  pub.factor("SH", ("l", "lp"), pub.SH), tensor(sh.LD, "hout", ("lp", "i", "d"))],
                 [(1, [0, 1]), (1, [2, 3])], ax)

    # the norms
    last = tuple((cfg.n_layers - 1 >> b) & 1 for b in range(ax["l"].bits))
    gb = sh.gpt2
    _norm(eng, sh, pub, pw, "n1", tensor(sh.LD, "hin"), tensor(sh.W["g1"], "g1"),
          tensor(sh.W["b1"], "b1") if gb else None)
    _norm(eng, sh, pub, pw, "n2", tensor(sh.LD, "hmid"), tensor(sh.W["g2"], "g2"),
          tensor(sh.W["b2"], "b2") if gb else None)
    _norm(eng, sh, pub, pw, "nf", tensor(sh.LD, "hout", ("i", "d"), fixed={"l": last}),
          tensor(sh.W["gf"], "gf"), tensor(sh.W["bf"], "bf") if gb else None)

    # q, k (RoPE on the accumulator, then the projection) and v
    rot = pub.factor("ROT", ("i", "e", "e2"), sh.rot)
    for t in "qkv":
        c = eng.random_coords(sh.LHE)
        claim = biased(eng.lin_at(R[t].acc_lin(), c), "b" + t, c, ("l", "h", "e"))
        if t in "qk" and not sh.gpt2:
            (_, claim) = eng.contract(claim, c, [ax["e2"]],
                                      [rot, chain("acc_" + t, sh.LHE, ("l", "h", "i", "e2"))],
                                      [(1, [0, 1])], ax)
            c = rename(eng.last_at(("l", "h", "i", "e2")), e2="e")
        eng.contract(claim, c, [ax["d"]],
                     [tensor(sh.LD, "n1"), tensor(sh.W["w" + t], "w" + t), pub.ind("d")],
                     [(1, [0, 1, 2])], ax)

    # scores: rs's accumulator = q k^T
    c = eng.random_coords(L4)
    eng.contract(eng.lin_at(R["rs"].acc_lin(), c), c, [ax["e"]],
                 [tensor(sh.LHE, "q"), tensor(sh.LHE, "k", ("l", "h", "j", "e")), pub.ind("e")],
                 [(1, [0, 1, 2])], ax)

    # softmax: pointwise dd = rs - mx and u = c 2^f - lg ...
    pw.add(L4, [tensor(L4, "dd"), tensor(L4, "rs"), tensor(sh.LHI, "mx")],
               [(1, [0]), (-1, [1]), (1, [2])])
    pw.add(L4, [tensor(L4, "u"), tensor(L4, "c"), tensor(sh.LHI, "lg")],
               [(1, [0]), (-(1 << cfg.log_frac), [1]), (1, [2])])
    # ... rows: sum_j M sel = 1, sum_j M sel dd = 0 (with dd <= 0: mx is the row maximum),
    # S = sum_j M ex, batched with powers of gamma
    c = eng.random_coords(sh.LHI)
    g1 = eng.ctx.challenge(b"model/softmax")
    g2 = g1 * g1 % P
    M = pub.factor("M", ("i", "j"), sh.causal)
    claim = eng.ctx.public(sh.LHI.indicator_mle(c)) + eng.claim("S", c) * g2
    eng.contract(claim, c, [ax["j"]],
                 [M, tensor(L4, "sel"), tensor(L4, "dd"), tensor(L4, "ex")],
                 [(1, [0, 1]), (g1, [0, 1, 2]), (g2, [0, 3])], ax)
    # attention output: ya's accumulator = (M o p) v
    c = eng.random_coords(sh.LHE)
    eng.contract(eng.lin_at(R["ya"].acc_lin(), c), c, [ax["j"]],
                 [M, tensor(L4, "p"), tensor(sh.LHE, "v", ("l", "h", "j", "e"))],
                 [(1, [0, 1, 2])], ax)
    # output projection + residual: hmid's accumulator - 2^k_o hin = ya Wo
    c = eng.random_coords(sh.LD)
    eng.contract(biased(eng.lin_at(R["hmid"].acc_lin() - Lin.of(sh.LD, "hin", 1 << k["o"]), c),
                        "bo", c, ("l", "d")), c,
                 [ax["h"], ax["e"]],
                 [tensor(sh.LHE, "ya"), tensor(sh.W["wo"], "wo"), pub.ind("h", "e")],
                 [(1, [0, 1, 2])], ax)
    # MLP: gate and up projections, SILU (a lookup), the gated product, down + residual
    for t, wn in ((("up", "wu"),) if sh.gpt2 else (("g", "wg"), ("up", "wu"))):
        c = eng.random_coords(sh.LF)
        eng.contract(biased(eng.lin_at(R[t].acc_lin(), c), "bu", c, ("l", "f")), c, [ax["d"]],
                     [tensor(sh.LD, "n2"), tensor(sh.W[wn], wn), pub.ind("d")],
                     [(1, [0, 1, 2])], ax)
    if not sh.gpt2:
        pw.add(sh.LF, [lin_factor(R["mm"].acc_lin()), tensor(sh.LF, "sg"),
                                tensor(sh.LF, "up")], [(1, [0]), (-1, [1, 2])])
    c = eng.random_coords(sh.LD)
    eng.contract(biased(eng.lin_at(R["hout"].acc_lin() - Lin.of(sh.LD, "hmid", 1 << k["d"]), c),
                        "bd", c, ("l", "d")), c,
                 [ax["f"]],
                 [tensor(sh.LF, "sg" if sh.gpt2 else "mm"), tensor(sh.W["wd"], "wd"),
                  pub.ind("f")],
                 [(1, [0, 1, 2])], ax)
    # LM head (tied embeddings) and the argmax
    c = eng.random_coords(sh.IV)
    eng.contract(eng.lin_at(R["logit"].acc_lin(), c), c, [ax["d"]],
                 [tensor(sh.ID, "nf"), tensor(sh.W["E"], "E"), pub.ind("d")],
                 [(1, [0, 1, 2])], ax)
    c = eng.random_coords(sh.I)
    eng.contract(eng.claim("lt", c), c, [ax["v"]],
                 [pub.factor("T1", ("i", "v"), pub.T1), tensor(sh.IV, "logit")],
                 [(1, [0, 1])], ax)
    pw.add(sh.IV, [tensor(sh.IV, "diff"), tensor(sh.I, "lt"),
                            tensor(sh.IV, "logit"), pub.factor("LT", ("i", "v"), pub.LT)],
               [(1, [0]), (-1, [1]), (1, [2]), (1, [3])])

    # every stack and every weight opened once
    pw.prove(eng)
    eng.open_all()


def _norm(eng: Engine, sh: Shape, pub: Publics, pw: Pointwise, name: str, h: Factor,
          g: Factor, b: Factor | None = None) -> None:
    """The norm's relations: ms = sum_d h^2, the square-root range relation, acc = h s g
    (+ b). LayerNorm (gpt2) first proves hsum = sum_d h and that its centred hc is
    rs(D h - hsum, kc), then runs the same relations on hc."""
    cfg = sh.cfg
    row, _ = sh.norms[name]
    full = sh.rq[name].space
    ax = sh.ax
    if b is not None:
        c = eng.random_coords(row)
        eng.contract(eng.claim(name + ".hsum", c), c, [ax["d"]], [h, pub.ind("d")],
                     [(1, [0, 1])], ax)
        pw.add(full, [lin_factor(sh.rq[name + ".hc"].acc_lin()), h,
                               tensor(row, name + ".hsum"), pub.ind("d")],
                   [(1, [0]), (-cfg.d_model, [1]), (1, [2, 3])])
        h = tensor(full, name + ".hc")
    c = eng.random_coords(row)
    eng.contract(eng.claim(name + ".ms", c), c, [ax["d"]], [h, h, pub.ind("d")],
                 [(1, [0, 1, 2])], ax)
    v = Lin.of(row, name + ".ms") + cfg.norm_eps
    s = s_lin(cfg, row, name)
    ind = pub.ind(*row.names)
    pw.add(row, [lin_factor(limbs_lin(row, name + ".sl1", SL_LIMBS)), lin_factor(s),
                          lin_factor(v), ind],
               [(1, [0]), (1, [1, 1, 2]), (-cfg.norm_c2, [3])])
    pw.add(row, [lin_factor(limbs_lin(row, name + ".sl2", SL_LIMBS)),
                          lin_factor(s + 1), lin_factor(v), ind],
               [(1, [0]), (-1, [1, 1, 2]), (cfg.norm_c2 + 1, [3])])
    if b is None:
        pw.add(full, [lin_factor(sh.rq[name].acc_lin()), h, lin_factor(s), g],
                   [(1, [0]), (-1, [1, 2, 3])])
    else:  # the bias joins the real positions only
        pw.add(full, [lin_factor(sh.rq[name].acc_lin()), h, lin_factor(s), g, b,
                               pub.ind("i")],
                   [(1, [0]), (-1, [1, 2, 3]), (-1, [4, 5])])


# ---------------------------------------------------------------- proof file, prove, verify


@dataclass(frozen=True)
class ModelProof:
    """A zero-knowledge proof of a whole generation: the statement and the protocol stream."""

    KIND: ClassVar[str] = "zkmodel-proof"
    VERSION: ClassVar[int] = 4  # 2: one batched opening for every tensor; 3: zero-checks with eq as the sumcheck eq point; 4: padding rows not sent, weights bound by the digest

    model_digest: bytes
    statement: Statement
    stream: Stream

    def to_bytes(self) -> bytes:
        w = Writer()
        w.raw_bytes(self.model_digest)
        w.u32(self.statement.prompt_len)
        w.raw_bytes(np.asarray(self.statement.tokens, dtype="<u4").tobytes())
        self.stream.write(w)
        return encode_envelope(self.KIND, self.VERSION, w.getvalue())

    @classmethod
    def from_bytes(cls, data: bytes) -> "ModelProof":
        """Decode a proof file; MalformedProofError on any bad input."""
        _, r = decode_envelope(data, cls.KIND, (cls.VERSION,))
        digest = r.raw_bytes(32)
        if len(digest) != 32:
            raise r.error("model digest must be 32 bytes")
        plen = r.u32()
        raw = r.raw_bytes(4 * MAX_DIM)
        if len(raw) % 4:
            raise r.error("token ids: bad length")
        toks = tuple(int(t) for t in np.frombuffer(raw, dtype="<u4"))
        stream = Stream.read(r)
        r.finish()
        return cls(digest, Statement(toks, plen), stream)

    @property
    def size(self) -> int:
        return self.stream.size

    @property
    def tokens(self) -> tuple[int, ...]:
        return self.statement.tokens


def prove(model: ProvingLlama, tokens, prompt_len: int, rng: np.random.Generator | None = None,
          context: bytes = b"", threads: int | None = None) -> ModelProof:
    """Prove, in zero knowledge, that every token after the prompt is the integer model's
    greedy choice (argmax of its logits, ties to the smallest id) given the tokens before it.
    Raises ProverError if a token is not (the statement is false). Blinds and nonces come from
    the OS CSPRNG unless ``rng`` is given (tests and benchmarks only). ``threads``: numba
    threads for the whole proof, the dot-product proofs included (default: numba's setting for
    the kernels, one thread for the dot-product proofs, the choice for a busy server)."""
    if threads is None:
        with reuse_freed():
            return _prove(model, tokens, prompt_len, rng, context)
    import numba

    old = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        with sigma.ipa_threads(threads), reuse_freed():
            return _prove(model, tokens, prompt_len, rng, context)
    finally:
        numba.set_num_threads(old)


def _prove(model: ProvingLlama, tokens, prompt_len: int, rng, context: bytes) -> ModelProof:
    mc = model.commitment
    st = Statement(tuple(int(t) for t in np.asarray(tokens).reshape(-1)), int(prompt_len))
    try:
        st.check(mc.config)
    except ValueError as e:
        raise ProverError(str(e)) from e
    logits, w, ch = forward(mc.config, mc.tables, model.weights, np.array(st.tokens[:-1]))
    pred = greedy_tokens(logits)
    for i in range(st.prompt_len - 1, st.L):
        if pred[i] != st.tokens[i + 1]:
            raise ProverError(f"false statement: token {i + 1} ({st.tokens[i + 1]}) is not the "
                              f"model's choice ({int(pred[i])})")
    sh = Shape(mc.config, st.L)
    sh.tables = mc.tables
    wp, chp = _witness(sh, w, ch, st)
    del logits, w, ch  # the unpadded forward pass: the proof reads its padded copy only
    ctx = Context.prover(Transcript(PROTOCOL), rng)
    _protocol(ctx, mc, st, context, model, wp, chp)
    ctx.finish()
    return ModelProof(mc.digest, st, ctx.stream())


def verify(proof: ModelProof, commitment: LlamaCommitment, context: bytes = b"",
           threads: int = 1) -> None:
    """Accept (return None) or raise VerificationError: the generated tokens of the proof's
    statement are the greedy choices of the integer model committed in ``commitment``.
    ``threads``: numba threads of the final MSM (the rest runs on one thread)."""
    mc = commitment
    if proof.model_digest != mc.digest:
        raise VerificationError("model proof: made for another model commitment")
    try:
        proof.statement.check(mc.config)
    except ValueError as e:
        raise VerificationError(f"model proof: {e}") from e
    try:
        with one_thread(), final_msm_threads(threads):
            ctx = Context.verifier(Transcript(PROTOCOL), proof.stream)
            _protocol(ctx, mc, proof.statement, context)
            ctx.finish()
    except (VerificationError, MalformedProofError):
        raise
    except (ValueError, ArithmeticError, KeyError, IndexError) as e:
        raise VerificationError(f"model proof: {e}") from e


def verify_bytes(data: bytes, commitment: LlamaCommitment, context: bytes = b"",
                 threads: int = 1) -> ModelProof:
    """Decode and verify a proof file; returns the proof (its statement) if accepted."""
    proof = ModelProof.from_bytes(data)
    verify(proof, commitment, context, threads)
    return proof


__all__ = ["IntegerLlama", "save_private", "load_private", "LlamaConfig", "LlamaWeights", "LlamaCommitment", "ProvingLlama", "Statement",
           "ModelProof", "Tables", "build_tables", "commit", "forward", "generate",
           "greedy_tokens", "prove", "verify", "verify_bytes", "random_weights", "PROTOCOL"]


# ---------------------------------------------------------------- the owner's private file


PRIVATE_KIND = "zkmodel-llama-private"


def save_private(model: ProvingLlama, path) -> None:
    """The owner's private side (weights and commitment blinds) as an .npz of plain arrays
    (no pickle), with the public commitment's bytes inside for a consistency check."""
    arrs = {"kind": np.frombuffer(PRIVATE_KIND.encode(), dtype=np.uint8),
            "commitment": np.frombuffer(model.commitment.to_bytes(), dtype=np.uint8)}
    for n in weight_names(model.config):
        arrs["w_" + n] = _ints(model.weights.get(n))
        arrs["b_" + n] = np.asarray(model.witnesses[n].blinds, dtype=np.uint64)
    with open(path, "wb") as f:
        np.savez(f, **arrs)


def load_private(path) -> ProvingLlama:
    """Read an owner's private file; ValueError with a reason on any bad content."""
    try:
        with np.load(path, allow_pickle=False) as z:
            files = dict(z.items())
    except (OSError, ValueError, EOFError) as e:
        raise ValueError(f"not a private model file: {e}") from None
    if bytes(files.get("kind", b"")) != PRIVATE_KIND.encode():
        raise ValueError("not a private model file")
    try:
        mc = LlamaCommitment.from_bytes(bytes(files["commitment"]))
    except (MalformedProofError, KeyError) as e:
        raise ValueError(f"private model file: bad commitment ({e})") from None
    shapes = weight_shapes(mc.config)
    sh = Shape(mc.config, 1)
    ws, wits = {}, {}
    for n in weight_names(mc.config):
        w = files.get("w_" + n)
        b = files.get("b_" + n)
        if w is None or b is None or w.shape != shapes[n] or w.dtype.kind not in "iu":
            raise ValueError(f"private model file: weight {n} missing or of the wrong shape")
        com = mc.weights[n]
        if b.shape != (1 << com.log_rows, 4) or b.dtype != np.uint64:
            raise ValueError(f"private model file: blinds of {n} of the wrong shape")
        ws[n] = _ints(w)
        wits[n] = hyrax.HyraxWitness(com.num_vars, com.log_cols,
                                     hyrax.narrow(sh.W[n].pad(ws[n])), b)
    ws.setdefault("wg", np.zeros(0, dtype=np.int64))
    return ProvingLlama(mc, LlamaWeights(**ws), wits)


# site of each shift -> the rounding outputs it scales
_SITES = {"e": ("x0",), "n": ("n1", "n2", "nf"), "q": ("q",), "k": ("k",), "v": ("v",),
          "s": ("rs",), "a": ("ya",), "o": ("hmid",), "g": ("g",), "u": ("up",), "m": ("mm",),
          "d": ("hout",), "lm": ("logit",)}


def fit_shifts(cfg: LlamaConfig, weights: LlamaWeights, tokens, rounds: int = 40
               ) -> LlamaConfig:
    """Shifts that keep every rounding's outputs inside its range without wasting it, on
    ``tokens`` (a crude calibration for random models in tests and benchmarks; real models are
    quantized from their float weights by pipeline.model_quant)."""
    from dataclasses import replace as _replace

    cur = dict(cfg.k)
    for _ in range(rounds):
        c = _replace(cfg, shifts=dict(cur))
        try:
            _, w, _ = forward(c, build_tables(c), weights, tokens)
        except ProverError:  # a bound overflowed: coarser everywhere
            cur = {k: min(40, v + 1) for k, v in cur.items()}
            continue
        changed = False
        for key, names in _SITES.items():
            bits = {"s": cfg.score_bits, "e": cfg.rbits, "o": cfg.rbits,
                    "d": cfg.rbits}.get(key, cfg.act_bits)
            hi = (1 << (bits - 1)) - 1
            if not all(n in w for n in names):
                continue  # a site this architecture does not have
            ys = np.concatenate([np.abs(w[n]).reshape(-1) for n in names])
            if (ys >= hi).mean() > 0.002 and cur[key] < 40:
                cur[key] += 1
                changed = True
            elif np.percentile(ys, 99) < hi / 8 and cur[key] > 0:
                cur[key] -= 1
                changed = True
        if not changed:
            break
    return _replace(cfg, shifts=cur)
