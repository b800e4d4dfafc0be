"""The integer reference of one quantized self-attention head (GPT-2 style or Llama style).

This module is the single definition of the computation (DESIGN.md section 2). It is

1. run in the clear on numpy int64 arrays (``run_reference``: the oracle and the zk prover's
   witness generator, returning every intermediate tensor),
2. traced by concrete-python into the FHE circuit (``fhe/compile.py`` passes an ops object whose
   methods act on concrete tracers), and
3. the statement the zk proof proves.

It imports numpy only (``zk/`` is installed by light verifiers: no concrete, torch, fhe or
pipeline imports here).

The head, step by step (all integers; ``rs(a, k) = floor((a + 2^(k-1)) / 2^k)`` for k > 0 and
``rs(a, 0) = a``: round to nearest, ties towards +infinity, also for negative a)::

    x                    (L, d_model)  in [-xq, xq], xq = 2^(n_bits-1) - 1
    acc_t = x @ W_t + b_t               t in {q, k, v}: clear integer weights, exact
    rot_t = ROPE(acc_t)                 t in {q, k}, Llama-style heads only (see below)
    r_t   = rs(rot_t, k_t)  (rope)      k_t is the smallest shift that brings the *static*
          = rs(acc_t, k_t)  (no rope)   range of rot_t (acc_t) into tlu_bits signed bits
                                        (k_t >= 1 for every t of a RoPE head)
    q,k,v = TAB_t[r_t]                  requantization table: scale + clip to [-aq, aq]
    ksq_j = sum_d k_jd^2                (L,)
    z_ij  = sum_d (q_id + k_jd)^2 - ksq_j  = 2 q_i.k_j + |q_i|^2   for j in cols(i)
    r_ij  = rs(z_ij, k_s)               scores on the grid delta (logit units)
    m_i   = max_j r_ij                  as a chain m <- m + RELU[r_ij - m] (one table per step)
    d_ij  = r_ij - m_i  (<= 0)
    c_ij  = CLIPD[d_ij] = max(d_ij, -T)
    e_ij  = EXP[c_ij]  = rnd(2^E exp(c delta))
    S_i   = sum_j e_ij                  in [2^E, L 2^E]  (the row maximum contributes 2^E)
    l_i   = LOG[S_i]   = rnd(ln(S / 2^E) / delta')          delta' = delta / 2^f
    u_ij  = c_ij 2^f - l_i
    p_ij  = EXP2[u_ij] = min(2^P, rnd(2^P exp(u delta')))    softmax, scale 2^-P
    o2_id = sum_j (p_ij + v_jd)^2 - sum_j v_jd^2 - sum_j p_ij^2   = 2 sum_j p_ij v_jd
    r_o   = rs(o2, k_o)
    y     = OUT[r_o]                    output requantization to [-yq, yq]

where ``rnd(t) = floor(t + 1/2)`` and cols(i) = {0..i} in causal mode (GPT-2, Llama), {0..L-1}
otherwise (encoder). Masked entries are never computed (no products, no tables): this is also
what keeps the FHE circuit small. The row constant |q_i|^2 in z does not change the softmax
(the row maximum is subtracted) and saves the squares of q in FHE.

**Llama-style heads** (``HeadConfig.rope_theta`` set; SmolLM2, Llama): no biases (b_t = 0,
committed as zeros), grouped-query attention (query head h of a layer uses key/value head
h // (n_heads / n_kv_heads); one reference head is one query head with its key/value head's
W_k, W_v, which the model commitment names in its ``origin``), and rotary position embeddings
(RoPE) on q and k as one public, position-dependent linear map of the *accumulator*, followed by
the head's one rounding. With c = ``rope_bits``, H = d_head / 2 and, for position i in
0..L-1 and frequency f in 0..H-1 (public integer tables, ``rope_tables``)::

    COS[i, f] = rnd(2^c cos(i theta^(-2f/d_head)))     in [-2^c, 2^c]
    SIN[i, f] = rnd(2^c sin(i theta^(-2f/d_head)))     in [-2^c, 2^c]
    rot_t[i, f]     = COS[i, f] acc_t[i, f]     - SIN[i, f] acc_t[i, f + H]
    rot_t[i, f + H] = COS[i, f] acc_t[i, f + H] + SIN[i, f] acc_t[i, f]

i.e. rot_t = C o acc_t + S' o swap(acc_t) with C = [COS, COS], S' = [-SIN, SIN] (L x d_head)
and swap(a)[i, d] = a[i, (d + H) mod d_head] (for d_head = 64 padded to 64: flip the top bit of
the column index). This is transformers' ``q * cos + rotate_half(q) * sin`` with cos and sin
quantized to c fractional bits. One unit of rot_t is 2^-c units of acc_t; the rounding
r_t = rs(rot_t, k_t) (k_t includes those c bits) and the table TAB_t follow as for any head, so
q and k are the rotated, requantized projections. Positions are 0..L-1 (the rows of x), for any
L, not only powers of two. The tables are stored in the model commitment; nothing about them
is recomputed from floats on the verifier's side.

Weight quantization (``quantize_head``), all of it folded into the committed integers: per
tensor (one scale per W_t), or per output channel with an integer multiplier: column c of W_t is
M_c clip(rnd(W_t[:, c] / (u M_c)), -wq, wq), M_c = clip(rnd(s_c / u), 1, 2^g), s_c the column's
own scale and u = max_c s_c / 2^g, so every column of acc_t has the same unit u sx and one
table TAB_t serves all columns (no per-channel tables in the proof or the circuit).
SmoothQuant-style smoothing divides input channel j by sm_j (a public vector, ``head.smooth``,
applied by the client in ``quantize_input``) and multiplies row j of every W_t by it before
quantization. Scales are static: fixed at commit time from calibration activations.

Every non-linear step is a table (``Table``: a domain [offset, offset + len) and integer
values) or an exact rounding; products of encrypted values are written as squares, which a
zk prover proves as polynomial identities (z = 2 Q K^T + rowsq(Q), o2 = 2 P V) and the FHE
circuit evaluates as one programmable bootstrap per square; products with public constants
(W, COS, SIN) are clear multiplications.

Every intermediate carries a *static* interval, computed once from the weights and the input
domain (``QuantizedHead.bounds``). The numpy ops check them on every run; the FHE ops give them
to the compiler, so the circuit's bit widths hold for every admissible input, not only for the
calibration set. ``HeadConfig.bounds_mode`` chooses them: "calibrated" (the calibration range
widened by a margin: narrow, and inputs beyond it are refused), "certified" (the worst case:
never refuses, coarse grids) or "saturate" (never refuses, the calibrated grids: every shift
k_t, k_s, k_o is fitted to the calibrated range while the intervals and the tables' domains are
the worst case; a projection beyond its calibrated range saturates in TAB_t, which clips to
[-aq, aq] on its whole domain, and the scores are clipped, r_s = clip(r_raw, r_s's calibrated
interval), one more table of the proof). The FHE circuit clips the wide r_t and r_raw from
their bits (``fhe.ops.ConcreteOps.saturate``) so that no table reads more bits than in
calibrated mode: on SmolLM2's head 0 of layer 0 the worst-case scores are 4.6 bits wider than
the calibrated ones and the projections 2-3 bits (``bench/head_bounds.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Optional

import numpy as np

__all__ = [
    "HeadConfig",
    "BOUNDS_MODES",
    "Table",
    "QuantizedHead",
    "NumpyOps",
    "BoundsViolation",
    "round_shift",
    "attention_head",
    "run_reference",
    "float_head",
    "quantize_head",
    "quantize_input",
    "dequantize_output",
    "random_head",
    "causal_cols",
    "layer_norm_like",
    "rnd",
    "rope_tables",
    "rope_rotate",
    "rope_float",
    "rope_bounds",
    "head_prefix",
]


class BoundsViolation(ValueError):
    """An intermediate left its static interval (or an input left the input domain)."""


# ----------------------------------------------------------------------------- conventions


def rnd(t):
    """Round half up: floor(t + 1/2), used to build every table and quantize floats."""
    return np.floor(np.asarray(t, dtype=np.float64) + 0.5).astype(np.int64)


def round_shift(a, k: int):
    """Exact rs(a, k) = floor((a + 2^(k-1)) / 2^k) on Python ints or int64 arrays (k >= 0)."""
    if k == 0:
        return a
    if isinstance(a, (int, np.integer)):
        return (int(a) + (1 << (k - 1))) >> k
    a = np.asarray(a, dtype=np.int64)
    return (a + np.int64(1 << (k - 1))) >> np.int64(k)


def _signed_bits(lo: int, hi: int) -> int:
    """Bits of a two's complement integer holding [lo, hi]."""
    n = 1
    while not (-(1 << (n - 1)) <= lo and hi <= (1 << (n - 1)) - 1):
        n += 1
    return n


def _shift_to_fit(lo: int, hi: int, bits: int, min_k: int = 0) -> int:
    """Smallest k >= min_k with rs([lo, hi], k) inside `bits` signed bits."""
    k = min_k
    while _signed_bits(round_shift(lo, k), round_shift(hi, k)) > bits:
        k += 1
    return k


def causal_cols(i: int, seq_len: int, causal: bool) -> int:
    """Number of key positions row i attends to (cols(i) = range(n))."""
    return i + 1 if causal else seq_len


def _rope_angles(seq_len: int, d_head: int, theta: float) -> np.ndarray:
    """(L, d_head / 2) angles i theta^(-2f / d_head) (transformers' inv_freq convention)."""
    inv = float(theta) ** (-np.arange(0, d_head, 2, dtype=np.float64) / d_head)
    return np.arange(seq_len, dtype=np.float64)[:, None] * inv[None, :]


def rope_tables(seq_len: int, d_head: int, theta: float, bits: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """The public RoPE tables COS, SIN (L, d_head / 2): rnd(2^bits cos), rnd(2^bits sin)."""
    ang = _rope_angles(seq_len, d_head, theta)
    return rnd((1 << bits) * np.cos(ang)), rnd((1 << bits) * np.sin(ang))


def rope_rotate(a, cos, sin):
    """C o a + S' o swap(a) (module docstring) on int64 arrays or concrete tracers (L, d_head):
    row i rotated by position i's integer cos and sin, scale 2^bits."""
    h = cos.shape[1]
    C = np.concatenate([cos, cos], axis=1).astype(np.int64)
    S = np.concatenate([-sin, sin], axis=1).astype(np.int64)
    return a * C + np.concatenate((a[:, h:], a[:, :h]), axis=1) * S


def rope_float(a, theta: float) -> np.ndarray:
    """Float RoPE on (L, d_head) at positions 0..L-1: a cos + rotate_half(a) sin."""
    a = np.asarray(a, dtype=np.float64)
    ang = _rope_angles(a.shape[0], a.shape[1], theta)
    cos, sin = np.cos(ang), np.sin(ang)
    h = a.shape[1] // 2
    a1, a2 = a[:, :h], a[:, h:]
    return np.concatenate([a1 * cos - a2 * sin, a2 * cos + a1 * sin], axis=1)


def rope_bounds(lo: int, hi: int, cos: np.ndarray, sin: np.ndarray) -> tuple[int, int]:
    """Static interval of rope_rotate(a) for every a with entries in [lo, hi]."""
    C = np.concatenate([cos, cos], axis=1).astype(object)
    S = np.concatenate([-sin, sin], axis=1).astype(object)
    lo_, hi_ = int(lo), int(hi)
    lows = np.minimum(C * lo_, C * hi_) + np.minimum(S * lo_, S * hi_)
    highs = np.maximum(C * lo_, C * hi_) + np.maximum(S * lo_, S * hi_)
    return int(lows.min()), int(highs.max())


# ----------------------------------------------------------------------------- data


# HeadConfig.bounds_mode: refuse outside the calibrated intervals, worst case, or calibrated grids
# on worst-case intervals (never refuses)
BOUNDS_MODES = ("calibrated", "certified", "saturate")
# HeadConfig.for_fhe's settings (its docstring says why)
FHE_FRIENDLY = dict(calibrate_sums=True, tlu_bits=5, score_bits=7, exp_bits=3, prob_bits=3,
                    log_frac_bits=2, out_table=False, out_tlu_bits=6)


@dataclass(frozen=True)
class HeadConfig:
    """Sizes and every bit-width / table parameter of the quantized head."""

    d_model: int
    d_head: int
    seq_len: int
    n_bits: int = 4  # input activations x and weights: symmetric [-(2^(n-1)-1), 2^(n-1)-1]
    qkv_bits: Optional[int] = None  # q, k, v (default n_bits)
    out_bits: Optional[int] = None  # y (default n_bits)
    causal: bool = True
    tlu_bits: int = 8  # projection requantization: rounding brings acc to this many bits
    out_tlu_bits: int = 8  # output requantization table width
    score_bits: int = 10  # signed width of the rounded scores r
    exp_bits: int = 6  # E: e = rnd(2^E exp(.))
    prob_bits: int = 4  # P: p in [0, 2^P]
    log_frac_bits: int = 0  # f: extra precision of l = LOG[S]
    x_norm2_bound: Optional[int] = None  # optional bound on |x_t|_2^2 per token (LayerNorm)
    # "calibrated": the wide accumulators (acc_q/k/v, z) get the calibration range widened by
    # calib_margin (intersected with the certified range); inputs driving them outside it are
    # rejected by run_reference (BoundsViolation). "certified": worst case over the whole input
    # domain (exact for every admissible input, but wide: costly in FHE, coarse score grid).
    # "saturate": the grids of "calibrated" (every rounding's shift from the calibration range
    # widened by calib_margin) on the static intervals of "certified": no admissible input is
    # refused; a value beyond its calibrated range saturates: the projection tables clip to
    # [-aq, aq] over the whole certified domain (an FHE circuit clips r_t into the window
    # bounds["win_t"] outside which T_t is constant, then reads T_t there), and the rounded
    # scores r_raw (certified interval bounds["r_raw"]) are clipped into their calibrated
    # interval bounds["r_s"], r_s = clip(r_raw), which the softmax reads. The input's squared norm bound
    # defaults to the calibration maximum times calib_margin^2 (``quantize_input`` shrinks a
    # token over it), which narrows the certified projection intervals (Cauchy-Schwarz).
    bounds_mode: str = "calibrated"
    calib_margin: float = 2.0
    # Llama-style heads: RoPE on q and k with base theta (None: no RoPE, GPT-2/BERT style),
    # cos and sin quantized to rope_bits fractional bits (module docstring)
    rope_theta: Optional[float] = None
    rope_bits: int = 8
    # calibrated and saturate modes: the sums of squares (ksq, zsum, vsqsum, psq, pvsum) and o2 also get
    # calibration intervals widened by calib_margin (the certified worst case otherwise). Narrower
    # FHE widths (cheaper bootstraps, smaller keys) and a finer output rounding r_o; inputs
    # outside are rejected like inputs outside the calibrated acc and z intervals.
    calibrate_sums: bool = False
    # False: no output requantization, y = r_o (OUT is the identity on r_o's interval, which an
    # FHE circuit skips); y's scale is then the unit of r_o and out_tlu_bits sets y's width
    out_table: bool = True

    @classmethod
    def for_fhe(cls, d_model: int, d_head: int, seq_len: int, **overrides) -> "HeadConfig":
        """A configuration whose FHE circuit fits a small machine at GPT-2 size (measured on a
        768 -> 64, L = 6 head, ``bench/fhe.py --approx``): no table reads more than 6 bits
        (5-bit projection tables; 7-bit scores, whose row maximum the FHE circuit takes on
        chunks and whose CLIPD table reads r - m, 6 bits while the scores span at most 64
        values; 8-level exponentials so that LOG reads S in [8, 8 L]: 6 bits up to L = 8, with
        a log-sum-exp carrying 2 fraction bits; 5-bit squares: 4-bit operands for every
        product of encrypted values), the sums of squares calibrated (11-bit accumulators instead of 14), and no
        output requantization (y = r_o, 6 bits: one fewer table per output). A single 7-bit
        table would need a 16384-coefficient bootstrap key of ~1 GB and its keyswitch keys
        (measured: 5.3 GB of keys with 7-bit LOG/RELU/CLIPD against 2.0 GB without). Coarser
        scores (score_bits 6, log_frac_bits 0) are cheaper still but turn the softmax of a
        GPT-2-like head into a hard maximum. The 5-bit projection tables trade accuracy for
        time: relative error against the float head 0.71 against 0.60 with tlu_bits 6, whose
        circuit costs 12% more (complexity 2.38e12 against 2.13e12, keys 1.98 GB;
        ``bench/fhe.py --settings-error``, ``bench/results/fhe_settings_error.txt``): pass
        tlu_bits=6 where accuracy matters more."""
        kw = dict(FHE_FRIENDLY)
        kw.update(overrides)
        return cls(d_model, d_head, seq_len, **kw)

    def __post_init__(self):
        for name in ("d_model", "d_head", "seq_len"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if not 2 <= self.n_bits <= 16:
            raise ValueError("n_bits must be in [2, 16]")
        for name in ("causal", "calibrate_sums", "out_table"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be a bool")
        if self.bounds_mode not in BOUNDS_MODES:
            raise ValueError(f"bounds_mode must be one of {BOUNDS_MODES}")
        if self.calib_margin < 1.0:
            raise ValueError("calib_margin must be >= 1")
        if self.rope_theta is not None:
            if not (isinstance(self.rope_theta, (int, float)) and math.isfinite(self.rope_theta)
                    and self.rope_theta > 1.0):
                raise ValueError("rope_theta must be a finite number > 1")
            if self.d_head % 2:
                raise ValueError("RoPE needs an even d_head")
        if not 1 <= self.rope_bits <= 16:
            raise ValueError("rope_bits must be in [1, 16]")

    @property
    def rope(self) -> bool:
        return self.rope_theta is not None

    @property
    def a_bits(self) -> int:
        return self.qkv_bits or self.n_bits

    @property
    def y_bits(self) -> int:
        return self.out_bits or self.n_bits

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class Table:
    """A univariate integer table: TABLE[a] = values[a - offset] for a in [offset, offset+len)."""

    name: str
    offset: int
    values: np.ndarray = field(repr=False)

    @property
    def lo(self) -> int:
        return self.offset

    @property
    def hi(self) -> int:
        return self.offset + len(self.values) - 1

    @property
    def out_range(self) -> tuple[int, int]:
        return int(self.values.min()), int(self.values.max())

    @property
    def is_identity(self) -> bool:
        """TABLE[a] = a on the whole domain (an FHE circuit needs no bootstrap for it)."""
        return bool(np.array_equal(self.values, np.arange(self.lo, self.hi + 1)))

    def restrict(self, lo: int, hi: int) -> "Table":
        """The same table on [lo, hi] (inside its domain)."""
        if not self.lo <= lo <= hi <= self.hi:
            raise ValueError(f"[{lo}, {hi}] is not inside table {self.name}'s domain")
        return Table(self.name, lo, self.values[lo - self.offset: hi - self.offset + 1])

    def constant_ends(self) -> tuple[int, int]:
        """The narrowest [a, b] with T[clip(r, a, b)] = T[r] on the whole domain (T is
        constant on [lo, a] and on [b, hi])."""
        v = np.asarray(self.values)
        changes = np.flatnonzero(v[1:] != v[:-1])
        if changes.size == 0:
            return self.lo, self.lo
        return self.offset + int(changes[0]), self.offset + int(changes[-1]) + 1

    def __call__(self, a):
        a = np.asarray(a, dtype=np.int64)
        idx = a - self.offset
        if idx.size and (idx.min() < 0 or idx.max() >= len(self.values)):
            raise BoundsViolation(
                f"table {self.name}: index outside [{self.lo}, {self.hi}]: "
                f"[{int(a.min())}, {int(a.max())}]"
            )
        return self.values[idx]


# the head's roundings, by the names the witness, fhe.ops and zk.tolerance use: the projections'
# r_q, r_k, r_v, the scores' r_s and the output's r_o
ROUNDINGS = ("r_q", "r_k", "r_v", "r_s", "r_o")


def check_roundings(sites) -> tuple[str, ...]:
    """Rounding names as a sorted tuple of distinct known names (ValueError otherwise)."""
    if isinstance(sites, str):
        raise ValueError("approximate roundings must be a sequence of names, not a string")
    out = tuple(sorted(set(sites)))
    bad = [s for s in out if s not in ROUNDINGS]
    if bad:
        raise ValueError(f"unknown roundings {bad}: expected names from {ROUNDINGS}")
    return out


@dataclass
class QuantizedHead:
    """Integer weights, shifts, tables, static bounds and float scales of one head."""

    config: HeadConfig
    Wq: np.ndarray
    Wk: np.ndarray
    Wv: np.ndarray
    bq: np.ndarray
    bk: np.ndarray
    bv: np.ndarray
    shifts: dict  # name -> k (q, k, v, score, out)
    tables: dict  # name -> Table (q, k, v, relu, clipd, exp, log, exp2, out)
    bounds: dict  # name -> (lo, hi) python ints
    scales: dict  # float scales: x, w_q, w_k, w_v, q, k, v, delta, y
    # RoPE heads: integer COS and SIN tables (L, d_head / 2), scale 2^-rope_bits
    rope_cos: Optional[np.ndarray] = None
    rope_sin: Optional[np.ndarray] = None
    # SmoothQuant smoothing: input channel j is divided by smooth[j] before quantization
    smooth: Optional[np.ndarray] = None
    # roundings (names from ROUNDINGS) an FHE circuit of this head evaluates with approximate
    # rounding; the reference itself always rounds to nearest (zk.tolerance bounds the
    # difference, published in the model commitment)
    approximate: tuple = ()

    def __post_init__(self):
        self.approximate = check_roundings(self.approximate)

    @property
    def x_range(self) -> tuple[int, int]:
        return self.bounds["x"]


# ----------------------------------------------------------------------------- ops


class NumpyOps:
    """The ops on int64 numpy arrays: exact, with static-bound checks and witness recording."""

    def __init__(self, check: bool = True, record: Optional[dict] = None):
        self.check = check
        self.record = record

    def bound(self, a, lo: int, hi: int, name: str = ""):
        a = np.asarray(a, dtype=np.int64)
        if self.check and a.size and (a.min() < lo or a.max() > hi):
            raise BoundsViolation(
                f"{name or 'value'} outside its static interval [{lo}, {hi}]: "
                f"[{int(a.min())}, {int(a.max())}]"
            )
        return a

    def round_shift(self, a, k: int, lo: int, hi: int, name: str = ""):
        return round_shift(np.asarray(a, dtype=np.int64), k)

    def lookup(self, table: Table, a):
        return table(a)

    def saturate(self, a, lo: int, hi: int, wlo: int, whi: int, name: str = ""):
        """clip(a, wlo, whi) for a in its static interval [lo, hi] (fhe.ops: on a's bits)."""
        return np.clip(np.asarray(a, dtype=np.int64), wlo, whi)

    def square(self, a, lo: int, hi: int, name: str = ""):
        a = np.asarray(a, dtype=np.int64)
        return a * a

    def max_step(self, m, r, relu: Table, lo: int, hi: int, vlo: int, vhi: int):
        """One step of the row-maximum chain: m + RELU[r - m] (= max(m, r)), with r - m
        checked against its static interval [lo, hi]; m and r lie in [vlo, vhi]."""
        diff = self.bound(r - m, lo, hi, name="mdiff")
        return m + self.lookup(relu, diff)

    def max_shift(self, r, relu: Table, mdiff: tuple, rs: tuple, dbound: tuple):
        """A score row's running maxima and its shift by the maximum: the chain
        m_0 = r_0, m_j = max_step(m_{j-1}, r_j) (each in ``rs``), and d = r - m_{n-1}
        (checked against ``dbound``). Returns (chain, d)."""
        m = r[0]
        chain = [m]
        for j in range(1, len(r)):
            m = self.bound(self.max_step(m, r[j], relu, *mdiff, *rs), *rs, name="m")
            chain.append(m)
        return chain, self.bound(r - m, *dbound, name="d")

    def matmul_clear(self, x, W, b):
        return np.asarray(x, dtype=np.int64) @ W + b

    def rope(self, a, cos, sin, lo: int, hi: int):
        return rope_rotate(np.asarray(a, dtype=np.int64), cos, sin)

    def stack(self, rows):
        return np.stack([np.asarray(r, dtype=np.int64) for r in rows])

    def reshape(self, a, shape):
        return np.reshape(a, shape)

    def rec(self, name: str, i: Optional[int], value):
        if self.record is not None:
            if i is None:
                self.record[name] = np.asarray(value, dtype=np.int64)
            else:
                self.record.setdefault(name, {})[i] = np.asarray(value, dtype=np.int64)


# ----------------------------------------------------------------------------- the head


def attention_head(x, head: QuantizedHead, ops) -> Any:
    """The quantized head over an ops object (numpy or concrete tracers). Returns y (L, d_head)."""
    cfg = head.config
    B, T, K = head.bounds, head.tables, head.shifts
    L = cfg.seq_len

    x = ops.bound(x, *B["x"], name="x")

    def project(W, b, t):
        acc = ops.bound(ops.matmul_clear(x, W, b), *B["acc_" + t], name="acc_" + t)
        ops.rec("acc_" + t, None, acc)
        wide = "acc_" + t
        if cfg.rope and t in ("q", "k"):
            # rot = C o acc + S' o swap(acc): public, position-dependent integer coefficients
            acc = ops.bound(ops.rope(acc, head.rope_cos, head.rope_sin, *B["acc_" + t]),
                            *B["rot_" + t], name="rot_" + t)
            ops.rec("rot_" + t, None, acc)
            wide = "rot_" + t
        r = ops.round_shift(acc, K[t], *B[wide], name="r_" + t)
        r = ops.bound(r, *B["r_" + t], name="r_" + t)
        win = B.get("win_" + t)
        if win is None:
            out = ops.lookup(T[t], r)
        else:  # saturate mode: T_t is constant beyond win, so T_t[clip(r)] = T_t[r]
            out = ops.lookup(T[t].restrict(*win),
                             ops.saturate(r, *B["r_" + t], *win, name="sat_" + t))
        ops.rec("r_" + t, None, r)
        ops.rec(t, None, out)
        return out

    q = project(head.Wq, head.bq, "q")
    k = project(head.Wk, head.bk, "k")
    v = project(head.Wv, head.bv, "v")

    ksq_el = ops.square(k, *B["k"], name="ksq_el")
    ksq = ops.bound(np.sum(ksq_el, axis=1), *B["ksq"], name="ksq")  # (L,)
    vsq = ops.square(v, *B["v"], name="vsq")  # (L, d_head)
    ops.rec("ksq", None, ksq)

    rows = []
    for i in range(L):
        n = causal_cols(i, L, cfg.causal)
        # scores: z_j = sum_d (q_i + k_j)^2 - |k_j|^2 = 2 q_i.k_j + |q_i|^2
        qk = ops.bound(q[i] + k[:n], *B["qk"], name="qk")  # (n, d_head)
        sq = ops.square(qk, *B["qk"], name="qk_sq")
        z = ops.bound(np.sum(sq, axis=1), *B["zsum"], name="zsum")
        z = ops.bound(z - ksq[:n], *B["z"], name="z")
        r = ops.round_shift(z, K["score"], *B["z"], name="r_s")
        raw = None
        if "r_raw" in B:  # saturate mode: the scores clipped into their calibrated window
            raw = ops.bound(r, *B["r_raw"], name="r_raw")
            r = ops.saturate(raw, *B["r_raw"], *B["r_s"], name="sat_s")
        r = ops.bound(r, *B["r_s"], name="r_s")
        # row maximum as a chain of RELU tables: m <- m + RELU[r_j - m]; d = r - m
        chain, d = ops.max_shift(r, T["relu"], B["mdiff"], B["r_s"], B["d"])
        m = chain[-1]
        c = ops.lookup(T["clipd"], d)
        e = ops.lookup(T["exp"], c)
        S = ops.bound(np.sum(e), *B["S"], name="S")
        lg = ops.lookup(T["log"], S)
        u = ops.bound(c * (1 << cfg.log_frac_bits) - lg, *B["u"], name="u")
        p = ops.lookup(T["exp2"], u)  # (n,)
        # o2_d = sum_j (p_j + v_jd)^2 - sum_j v_jd^2 - sum_j p_j^2 = 2 sum_j p_j v_jd
        pv = ops.bound(ops.reshape(p, (n, 1)) + v[:n], *B["pv"], name="pv")
        pv_sq = ops.square(pv, *B["pv"], name="pv_sq")
        psq = ops.bound(np.sum(ops.square(p, *B["p"], name="psq_el")), *B["psq"], name="psq")
        acc_o = ops.bound(np.sum(pv_sq, axis=0), *B["pvsum"], name="pvsum")
        vs = ops.bound(np.sum(vsq[:n], axis=0), *B["vsqsum"], name="vsqsum")
        o2 = ops.bound(acc_o - vs - psq, *B["o2"], name="o2")
        ro = ops.round_shift(o2, K["out"], *B["o2"], name="r_o")
        ro = ops.bound(ro, *B["r_o"], name="r_o")
        y = ops.lookup(T["out"], ro)
        rows.append(y)
        for name, val in (("z", z), ("r_s", r), ("m_chain", chain), ("m", m), ("d", d),
                          ("c", c), ("e", e), ("S", S), ("l", lg), ("u", u), ("p", p),
                          ("psq", psq), ("o2", o2), ("r_o", ro), ("y", y)):
            if getattr(ops, "record", None) is not None:
                ops.rec(name, i, val)
        if raw is not None and getattr(ops, "record", None) is not None:
            ops.rec("r_raw", i, raw)
    return ops.stack(rows)


def _assemble(rec: dict, L: int, causal: bool) -> dict:
    """Per-row pieces -> full tensors; masked entries are 0 and flagged by `mask`."""
    out = {}
    mask = np.zeros((L, L), dtype=bool)
    for i in range(L):
        mask[i, : causal_cols(i, L, causal)] = True
    out["mask"] = mask
    for name, val in rec.items():
        if not isinstance(val, dict):
            out[name] = val
            continue
        first = np.asarray(val[0])
        if name in ("z", "r_s", "r_raw", "m_chain", "d", "c", "e", "u", "p"):
            full = np.zeros((L, L), dtype=np.int64)
            for i, row in val.items():
                row = np.asarray(row, dtype=np.int64).reshape(-1)
                full[i, : len(row)] = row
            out[name] = full
        elif first.ndim == 0:
            out[name] = np.array([int(val[i]) for i in range(L)], dtype=np.int64)
        else:
            out[name] = np.stack([np.asarray(val[i], dtype=np.int64) for i in range(L)])
    return out


def run_reference(x, head: QuantizedHead, check: bool = True):
    """Run the head in the clear: (y, witness) with every intermediate tensor.

    Witness keys: x, acc_q/k/v, r_q/k/v, q, k, v, ksq, z, r_s, m_chain (running maxima),
    m, d, c, e, S, l, u, p, psq, o2, r_o, y, mask (L x L, True where computed), and for RoPE
    heads rot_q, rot_k (L, d_head). Square (L, L) tensors hold 0 in masked positions.
    """
    x = np.asarray(x)
    cfg = head.config
    if x.shape != (cfg.seq_len, cfg.d_model):
        raise ValueError(f"x must have shape {(cfg.seq_len, cfg.d_model)}, got {x.shape}")
    if not np.issubdtype(x.dtype, np.integer):
        raise TypeError(f"x must be an integer array, got {x.dtype}")
    x = x.astype(np.int64)
    _check_input(x, head)
    _check_rope(head)
    rec: dict = {}
    ops = NumpyOps(check=check, record=rec)
    y = attention_head(x, head, ops)
    wit = _assemble(rec, cfg.seq_len, cfg.causal)
    wit["x"] = x
    wit["y"] = y
    return y, wit


def _check_rope(head: QuantizedHead) -> None:
    cfg = head.config
    if not cfg.rope:
        return
    shape = (cfg.seq_len, cfg.d_head // 2)
    for name in ("rope_cos", "rope_sin"):
        t = getattr(head, name)
        if t is None or np.shape(t) != shape:
            raise ValueError(f"a RoPE head needs {name} of shape {shape}")
        if np.abs(t).max() > (1 << cfg.rope_bits):
            raise ValueError(f"{name} entries must lie in [-2^rope_bits, 2^rope_bits]")


def head_prefix(head: QuantizedHead, n: int) -> QuantizedHead:
    """The causal head on the first n positions (1 <= n <= L): same weights, scales, tables
    and bounds, RoPE tables cut to n rows. Row i of a causal head depends on rows 0..i only,
    so its outputs are the first n rows of the full head's on any input extending x
    (generation with a growing prompt)."""
    cfg = head.config
    if not cfg.causal:
        raise ValueError("only a causal head has prefixes")
    if not 1 <= n <= cfg.seq_len:
        raise ValueError(f"n must be in 1..{cfg.seq_len}")

    cos = None if head.rope_cos is None else head.rope_cos[:n]
    sin = None if head.rope_sin is None else head.rope_sin[:n]
    return replace(head, config=replace(cfg, seq_len=n), rope_cos=cos, rope_sin=sin)


def _check_input(x: np.ndarray, head: QuantizedHead) -> None:
    lo, hi = head.bounds["x"]
    if x.size and (x.min() < lo or x.max() > hi):
        raise BoundsViolation(f"input entries must lie in [{lo}, {hi}]")
    nb = head.config.x_norm2_bound
    if nb is not None:
        norms = np.sum(x * x, axis=-1)
        if norms.max() > nb:
            raise BoundsViolation(
                f"input token squared norm {int(norms.max())} exceeds the bound {nb}"
            )


# ----------------------------------------------------------------------------- float head


def float_head(x, Wq, Wk, Wv, bq, bk, bv, causal: bool = True,
               rope_theta: Optional[float] = None) -> np.ndarray:
    """The float head: softmax(q k^T / sqrt(d_head) + mask) v, for x (L, d_model); with
    rope_theta, q and k are rotated first (RoPE at positions 0..L-1, transformers' convention)."""
    x = np.asarray(x, dtype=np.float64)
    q = x @ Wq + bq
    k = x @ Wk + bk
    v = x @ Wv + bv
    if rope_theta is not None:
        q, k = rope_float(q, rope_theta), rope_float(k, rope_theta)
    a = q @ k.T / math.sqrt(q.shape[-1])
    if causal:
        L = a.shape[0]
        a = np.where(np.tril(np.ones((L, L), dtype=bool)), a, -np.inf)
    a = a - a.max(axis=-1, keepdims=True)
    p = np.exp(a)
    p /= p.sum(axis=-1, keepdims=True)
    return p @ v


# ----------------------------------------------------------------------------- quantization


def quantize_input(x_float, head: QuantizedHead) -> np.ndarray:
    """Float activations -> admissible integer input (smoothed, rounded half up, clipped).

    ``head`` is a QuantizedHead or anything with its public ``scales``, ``bounds``,
    ``config`` and ``smooth`` (the model commitment)."""
    lo, hi = head.bounds["x"]
    x_float = np.asarray(x_float, dtype=np.float64)
    smooth = getattr(head, "smooth", None)
    if smooth is not None:  # SmoothQuant: channel j divided by smooth[j] (public)
        x_float = x_float / np.asarray(smooth, dtype=np.float64)
    xi = np.clip(rnd(x_float / head.scales["x"]), lo, hi)
    nb = head.config.x_norm2_bound
    if nb is not None:  # shrink tokens over the norm bound (rare: a calibration margin exists)
        xi = np.array(xi)
        for idx in np.ndindex(xi.shape[:-1]):
            while int(np.sum(xi[idx] * xi[idx])) > nb:
                xi[idx] = np.trunc(xi[idx] * 0.95).astype(np.int64)
    return xi.astype(np.int64)


def dequantize_output(y, head: QuantizedHead) -> np.ndarray:
    return np.asarray(y, dtype=np.float64) * head.scales["y"]


def _proj_bounds(W: np.ndarray, b: np.ndarray, xq: int, norm2: Optional[int]) -> tuple[int, int]:
    absw = np.abs(W).sum(axis=0)  # L1 norm per column
    lim = xq * absw
    if norm2 is not None:
        l2 = np.floor(np.sqrt(float(norm2) * (W.astype(np.float64) ** 2).sum(axis=0))) + 1
        lim = np.minimum(lim, l2.astype(np.int64))
    lo = int((b - lim).min())
    hi = int((b + lim).max())
    return lo, hi


def _requant_table(name, r_lo, r_hi, unit: float, scale_out: float, qmax: int) -> Table:
    """TAB[r] = clip(rnd(r * unit / scale_out), -qmax, qmax) on [r_lo, r_hi]."""
    r = np.arange(r_lo, r_hi + 1, dtype=np.int64)
    vals = np.clip(rnd(r * (unit / scale_out)), -qmax, qmax)
    return Table(name, r_lo, vals.astype(np.int64))


def quantize_head(Wq, Wk, Wv, bq, bk, bv, calib_x, config: HeadConfig, *,
                  weight_scheme: str = "tensor", channel_bits: int = 6,
                  smooth_alpha: Optional[float] = None, x_clip: Optional[float] = None,
                  w_clip: bool = False, gptq: bool = False) -> QuantizedHead:
    """Quantize a float head (numpy arrays, W: d_model x d_head) with calibration activations.

    calib_x: float array (..., d_model) of activations the head sees (e.g. LayerNorm outputs of
    real text); for RoPE heads it is read as sequences of L = seq_len tokens at positions
    0..L-1. Every scale is static (fixed here). weight_scheme "tensor": one scale per W_t;
    "channel": a scale per output column, folded into the integer weights as an integer
    multiplier of ``channel_bits`` bits (module docstring). smooth_alpha: SmoothQuant
    smoothing strength (None: none; 0.5 is the usual choice), stored in ``head.smooth``.
    x_clip: the input scale maps this quantile of |x| (after smoothing) to xq (None: the
    maximum; larger inputs are clipped by ``quantize_input``). w_clip: each weight scale (per
    tensor or per column) minimises the squared rounding + clipping error instead of mapping
    the maximum. gptq: the weights are rounded by GPTQ on the quantized calibration inputs
    (each input row's rounding error compensated by the rows after it) instead of to nearest.
    The score grid, tables and every static bound follow from the scales and the input domain.
    """
    cfg = config
    Wq, Wk, Wv = (np.asarray(w, dtype=np.float64) for w in (Wq, Wk, Wv))
    bq, bk, bv = (np.asarray(b, dtype=np.float64).reshape(-1) for b in (bq, bk, bv))
    if Wq.shape != (cfg.d_model, cfg.d_head):
        raise ValueError(f"weights must be {(cfg.d_model, cfg.d_head)}, got {Wq.shape}")
    if weight_scheme not in ("tensor", "channel"):
        raise ValueError("weight_scheme must be 'tensor' or 'channel'")
    if not 0 <= channel_bits <= 12:
        raise ValueError("channel_bits must be in [0, 12]")
    X = np.asarray(calib_x, dtype=np.float64).reshape(-1, cfg.d_model)
    if X.shape[0] == 0:
        raise ValueError("calibration set is empty")
    smooth = None
    if smooth_alpha is not None:
        if not 0.0 < smooth_alpha < 1.0:
            raise ValueError("smooth_alpha must be in (0, 1)")
        smooth = _smoothing(X, (Wq, Wk, Wv), smooth_alpha)
        X = X / smooth
        Wq, Wk, Wv = (w * smooth[:, None] for w in (Wq, Wk, Wv))

    xq = (1 << (cfg.n_bits - 1)) - 1
    wq_max = xq
    aq = (1 << (cfg.a_bits - 1)) - 1
    yq = (1 << (cfg.y_bits - 1)) - 1
    if x_clip is None:
        sx = float(np.abs(X).max()) / xq or 1.0
    else:
        if not 0.5 < x_clip <= 1.0:
            raise ValueError("x_clip must be a quantile in (0.5, 1]")
        sx = float(np.quantile(np.abs(X), x_clip)) / xq or 1.0
    scales: dict = {"x": sx}
    B: dict = {"x": (-xq, xq)}
    tables: dict = {}
    shifts: dict = {}
    ints = {}
    Xi = np.clip(rnd(X / sx), -xq, xq)
    sat = cfg.bounds_mode == "saturate"
    if sat and cfg.x_norm2_bound is None:
        cal2 = int(np.max(np.sum(Xi * Xi, axis=-1)))
        cfg = replace(cfg, x_norm2_bound=max(1, int(math.ceil(cal2 * cfg.calib_margin ** 2))))
    norm2 = cfg.x_norm2_bound
    grid = cfg.bounds_mode != "certified"  # shifts from the (widened) calibration ranges
    rope_cos = rope_sin = None
    if cfg.rope:
        rope_cos, rope_sin = rope_tables(cfg.seq_len, cfg.d_head, cfg.rope_theta, cfg.rope_bits)
        Xseq = _sequences(Xi, cfg.seq_len)  # (n, L, d_model): positions 0..L-1
    for t, W, b in (("q", Wq, bq), ("k", Wk, bk), ("v", Wv, bv)):
        Wi, sw = _quantize_weight(W, wq_max, weight_scheme, channel_bits, w_clip,
                                  Xi * sx if gptq else None)
        bi = rnd(b / (sx * sw)).astype(np.int64)
        ints["W" + t], ints["b" + t] = Wi, bi
        scales["w_" + t] = sw
        unit = sx * sw  # float value of one accumulator unit
        # (lo, hi): the static interval; (glo, ghi): the one the rounding's grid is fitted to
        lo, hi = _proj_bounds(Wi, bi, xq, norm2)
        acc_int = Xi @ Wi + bi
        glo, ghi = lo, hi
        if grid:
            glo, ghi = _widen(int(acc_int.min()), int(acc_int.max()), cfg.calib_margin, lo, hi)
        if not sat:
            lo, hi = glo, ghi
        B["acc_" + t] = (lo, hi)
        if cfg.rope and t in ("q", "k"):
            # the rounding acts on rot = ROPE(acc), whose unit is 2^-c accumulator units
            acc_int = np.concatenate([rope_rotate(s_ @ Wi + bi, rope_cos, rope_sin)
                                      for s_ in Xseq])
            lo, hi = rope_bounds(lo, hi, rope_cos, rope_sin)
            glo, ghi = rope_bounds(glo, ghi, rope_cos, rope_sin) if sat else (lo, hi)
            if grid:
                glo, ghi = _widen(int(acc_int.min()), int(acc_int.max()), cfg.calib_margin,
                                  glo, ghi)
            if not sat:
                lo, hi = glo, ghi
            B["rot_" + t] = (lo, hi)
            unit = unit / (1 << cfg.rope_bits)
        # RoPE heads: k >= 1 on every projection, so that each table's input is separated by a
        # rounding from the (2^rope_bits wider) rotated accumulators linked to the same x
        kt = _shift_to_fit(glo, ghi, cfg.tlu_bits, min_k=1 if cfg.rope else 0)
        shifts[t] = kt
        r_lo, r_hi = round_shift(lo, kt), round_shift(hi, kt)
        B["r_" + t] = (r_lo, r_hi)
        # output scale from the calibration accumulators (as the integer pipeline sees them)
        s_out = float(np.abs(acc_int).max()) * unit / aq or 1.0
        scales[t] = s_out
        tables[t] = _requant_table(t, r_lo, r_hi, unit * (1 << kt), s_out, aq)
        B[t] = tables[t].out_range
        if sat:
            win = tables[t].constant_ends()
            if win != (r_lo, r_hi):
                B["win_" + t] = win
        ints["cal_" + t] = tables[t](np.clip(round_shift(acc_int, kt), r_lo, r_hi))

    dh = cfg.d_head
    L = cfg.seq_len
    (qlo, qhi), (klo, khi), (vlo, vhi) = B["q"], B["k"], B["v"]
    B["ksq"] = (0, dh * max(klo * klo, khi * khi))
    B["qk"] = (qlo + klo, qhi + khi)
    sq_hi = max((qlo + klo) ** 2, (qhi + khi) ** 2)
    B["zsum"] = (0, dh * sq_hi)
    qs = np.arange(qlo, qhi + 1)[:, None]
    ks = np.arange(klo, khi + 1)[None, :]
    el = qs * (qs + 2 * ks)  # per-dimension term of z = sum_d q (q + 2k)
    B["z"] = (dh * int(el.min()), dh * int(el.max()))
    zgrid = B["z"]
    if grid:
        zc = _calib_scores(ints["cal_q"], ints["cal_k"], L, cfg.causal)
        zgrid = _widen(int(zc.min()), int(zc.max()), cfg.calib_margin, *B["z"])
    if not sat:
        B["z"] = zgrid
    # k >= 1: the rounding separates the scores from the wide sums of squares (in FHE, a
    # table's input is as wide as the widest value linearly connected to it)
    ks_ = _shift_to_fit(*zgrid, cfg.score_bits, min_k=1)
    shifts["score"] = ks_
    r_lo, r_hi = round_shift(zgrid[0], ks_), round_shift(zgrid[1], ks_)
    if sat:  # the rounded scores on the worst case, saturated into the calibrated window
        B["r_raw"] = (round_shift(B["z"][0], ks_), round_shift(B["z"][1], ks_))
    B["r_s"] = (r_lo, r_hi)
    span = r_hi - r_lo
    B["mdiff"] = (-span, span)
    tables["relu"] = Table("relu", -span, np.maximum(np.arange(-span, span + 1), 0))
    B["d"] = (-span, 0)
    # one unit of z is sq*sk/(2 sqrt(dh)) logits (z = 2 q.k + row constant)
    delta = scales["q"] * scales["k"] / (2.0 * math.sqrt(dh)) * (1 << ks_)
    scales["delta"] = delta
    E, P, f = cfg.exp_bits, cfg.prob_bits, cfg.log_frac_bits
    # below -T every exponent table gives 0
    Tcut = int(math.ceil((max(E, P) + 1) * math.log(2) / delta)) + 1
    Tcut = max(1, min(Tcut, span))
    dd = np.arange(-span, 1)
    tables["clipd"] = Table("clipd", -span, np.maximum(dd, -Tcut))
    B["c"] = (-Tcut, 0)
    cc = np.arange(-Tcut, 1)
    tables["exp"] = Table("exp", -Tcut, rnd((1 << E) * np.exp(cc * delta)))
    B["e"] = tables["exp"].out_range
    e0 = int(tables["exp"].values[-1])  # EXP[0] = 2^E
    B["S"] = (e0, L * int(B["e"][1]))
    Ss = np.arange(B["S"][0], B["S"][1] + 1)
    dprime = delta / (1 << f)
    tables["log"] = Table("log", B["S"][0], rnd(np.log(Ss / e0) / dprime))
    l_lo, l_hi = tables["log"].out_range
    B["u"] = (-Tcut * (1 << f) - l_hi, -l_lo)
    uu = np.arange(B["u"][0], B["u"][1] + 1)
    tables["exp2"] = Table(
        "exp2", B["u"][0], np.minimum(1 << P, rnd((1 << P) * np.exp(uu * dprime)))
    )
    B["p"] = tables["exp2"].out_range
    p_hi = B["p"][1]
    # row sum of p: sum_j p_j <= 2^P (1 + L / 2^(E+1)) exp(delta'/2) + L/2 (see module doc)
    psum = (1 << P) * (1.0 + L / (2.0 * e0)) * math.exp(dprime / 2) + L / 2.0 + 1.0
    psum = min(int(math.floor(psum)), L * p_hi)
    B["psum"] = (0, psum)
    B["psq"] = (0, p_hi * psum)
    B["pv"] = (B["p"][0] + vlo, p_hi + vhi)
    pv_hi = max(B["pv"][0] ** 2, B["pv"][1] ** 2)
    vsq_hi = max(vlo * vlo, vhi * vhi)
    B["vsqsum"] = (0, L * vsq_hi)
    # sum_j (p+v)^2 = sum p^2 + 2 sum p v + sum v^2
    B["pvsum"] = (0, min(L * pv_hi, p_hi * psum + 2 * psum * max(-vlo, vhi) + L * vsq_hi))
    B["o2"] = (2 * psum * min(vlo, 0), 2 * psum * max(vhi, 0))
    # y = o * sp * sv, o2 unit = sv / 2^(P+1); output scale from the float head on calibration
    scales["y"] = _calib_out_scale(X, Wq, Wk, Wv, bq, bk, bv, cfg) / yq or 1.0
    _output_stage(cfg, B, shifts, tables, scales)
    B["m"] = B["r_s"]
    B["qk_sq"] = (0, sq_hi)
    B["pv_sq"] = (0, pv_hi)
    B["k_sq"] = (0, max(klo * klo, khi * khi))
    B["v_sq"] = (0, vsq_hi)
    B["p_sq"] = (0, p_hi * p_hi)
    B = {k_: (int(a), int(b_)) for k_, (a, b_) in B.items()}
    head = QuantizedHead(
        cfg, ints["Wq"], ints["Wk"], ints["Wv"], ints["bq"], ints["bk"], ints["bv"],
        shifts, tables, B, scales, rope_cos, rope_sin, smooth,
    )
    if cfg.calibrate_sums and grid:
        _calibrate_sums(head, _sequences(Xi, L), keep_bounds=sat)
    return head


def _output_stage(cfg: HeadConfig, B: dict, shifts: dict, tables: dict, scales: dict,
                  grid: Optional[tuple] = None) -> None:
    """k_o, r_o, the output table and y's interval from o2's interval (in place); ``grid``:
    the interval k_o is fitted to, when it is not o2's static one (saturate mode)."""
    yq = (1 << (cfg.y_bits - 1)) - 1
    ko = _shift_to_fit(*(grid or B["o2"]), cfg.out_tlu_bits, min_k=1)
    shifts["out"] = ko
    B["r_o"] = (round_shift(B["o2"][0], ko), round_shift(B["o2"][1], ko))
    unit_o = scales["v"] / (1 << (cfg.prob_bits + 1))
    if cfg.out_table:
        tables["out"] = _requant_table("out", *B["r_o"], unit_o * (1 << ko), scales["y"], yq)
    else:
        lo, hi = B["r_o"]
        tables["out"] = Table("out", lo, np.arange(lo, hi + 1, dtype=np.int64))
        scales["y"] = unit_o * (1 << ko)
    B["y"] = tables["out"].out_range


def _calibrate_sums(head: QuantizedHead, seqs: np.ndarray, keep_bounds: bool = False) -> None:
    """HeadConfig.calibrate_sums: the intervals of the sums of squares and of o2 from the
    calibration sequences (widened, inside the certified ones), then the output stage again.
    ``keep_bounds`` (saturate mode): the static intervals stay certified; only the output
    rounding's grid follows the calibrated o2."""
    cfg, B = head.config, head.bounds
    L = cfg.seq_len
    seen: dict = {}

    def see(name, v):
        v = np.asarray(v)
        lo, hi = int(v.min()), int(v.max())
        old = seen.get(name, (lo, hi))
        seen[name] = (min(lo, old[0]), max(hi, old[1]))

    for x in seqs:
        _, w = run_reference(np.asarray(x, dtype=np.int64), head, check=False)
        q, k, v, p = w["q"], w["k"], w["v"], w["p"]
        see("ksq", w["ksq"])
        see("o2", w["o2"])
        for i in range(L):
            n = causal_cols(i, L, cfg.causal)
            see("zsum", np.sum((q[i] + k[:n]) ** 2, axis=1))
            see("vsqsum", np.sum(v[:n] ** 2, axis=0))
            see("psq", np.sum(p[i, :n] ** 2))
            see("pvsum", np.sum((p[i, :n, None] + v[:n]) ** 2, axis=0))
    widened = {name: _widen(lo, hi, cfg.calib_margin, *B[name]) for name, (lo, hi) in seen.items()}
    if keep_bounds:
        _output_stage(cfg, B, head.shifts, head.tables, head.scales, grid=widened["o2"])
    else:
        B.update(widened)
        _output_stage(cfg, B, head.shifts, head.tables, head.scales)
    for name in ("r_o", "y"):
        B[name] = (int(B[name][0]), int(B[name][1]))


def _widen(lo: int, hi: int, margin: float, clo: int, chi: int) -> tuple[int, int]:
    """[lo, hi] widened about its centre by `margin`, inside the certified [clo, chi]."""
    c, h = (lo + hi) / 2.0, max((hi - lo) / 2.0, 1.0) * margin
    return max(clo, int(math.floor(c - h))), min(chi, int(math.ceil(c + h)))


def _calib_scores(q: np.ndarray, k: np.ndarray, L: int, causal: bool) -> np.ndarray:
    """z = 2 q_i.k_j + |q_i|^2 on calibration sequences (rows of L tokens), computed pairs only."""
    n = (q.shape[0] // L) * L
    if n == 0:
        q, k, n = np.resize(q, (L, q.shape[1])), np.resize(k, (L, k.shape[1])), L
    q = q[:n].reshape(-1, L, q.shape[1])
    k = k[:n].reshape(-1, L, k.shape[1])
    z = 2 * np.einsum("bid,bjd->bij", q, k) + np.sum(q * q, axis=-1)[:, :, None]
    if causal:
        z = z[:, np.tril(np.ones((L, L), dtype=bool))]
    return z.reshape(-1)


def _calib_out_scale(X, Wq, Wk, Wv, bq, bk, bv, cfg: HeadConfig) -> float:
    L = cfg.seq_len
    n = (X.shape[0] // L) * L
    if n == 0:  # fewer rows than one sequence: pad by repetition
        X = np.resize(X, (L, X.shape[1]))
        n = L
    ys = [float_head(X[s: s + L], Wq, Wk, Wv, bq, bk, bv, cfg.causal, cfg.rope_theta)
          for s in range(0, n, L)]
    return float(np.abs(np.stack(ys)).max())


def _sequences(X: np.ndarray, L: int) -> np.ndarray:
    """Rows (n, d) -> (n // L, L, d) whole sequences (fewer than L rows: padded by repetition)."""
    n = (X.shape[0] // L) * L
    if n == 0:
        return np.resize(X, (1, L, X.shape[1]))
    return X[:n].reshape(-1, L, X.shape[1])


def _smoothing(X: np.ndarray, Ws, alpha: float) -> np.ndarray:
    """SmoothQuant factors sm_j = max|X_j|^alpha / max|W_j.|^(1-alpha) over the three W_t
    (they share the input), 1 for channels that are zero in X or in every W."""
    ax = np.abs(X).max(axis=0)
    aw = np.max([np.abs(W).max(axis=1) for W in Ws], axis=0)
    ok = (ax > 0) & (aw > 0)
    sm = np.ones_like(ax)
    sm[ok] = ax[ok] ** alpha / aw[ok] ** (1.0 - alpha)
    return sm / float(np.exp(np.mean(np.log(sm))))  # normalised: geometric mean 1


def _mse_scale(W: np.ndarray, wq: int, axis) -> np.ndarray:
    """Scales (per column for axis=0, one for axis=None) minimising the squared error of
    clip(rnd(W / s)) s over s = r max|W| / wq, r in 0.30..1.00."""
    amax = np.abs(W).max(axis=axis) / wq
    amax = np.where(amax > 0, amax, 1.0)
    best, best_err = amax, np.full(np.shape(amax), np.inf)
    for r in np.linspace(0.3, 1.0, 36):
        s = amax * r
        err = ((np.clip(rnd(W / s), -wq, wq) * s - W) ** 2).sum(axis=axis)
        better = err < best_err
        best = np.where(better, s, best)
        best_err = np.where(better, err, best_err)
    return best


def _gptq_round(W: np.ndarray, steps: np.ndarray, wq: int, Xq: np.ndarray,
                damp: float = 0.01, act_order: bool = False) -> np.ndarray:
    """Integers Q (d_in x d_out), |Q| <= wq, with Q * steps ~ W chosen to minimise
    ||Xq W - Xq (Q * steps)|| (GPTQ, Frantar et al. 2022): the input rows are rounded one after
    another (the most active inputs first with act_order) and each row's rounding error is
    pushed onto the rows not yet rounded, weighted by the inverse Hessian of the calibration
    inputs Xq (the inputs the head really sees, already quantized). steps: the grid step of
    each output column."""
    d_in = W.shape[0]
    H = Xq.T @ Xq
    H = H + damp * float(np.mean(np.diag(H)) or 1.0) * np.eye(d_in)
    perm = np.argsort(-np.diag(H), kind="stable") if act_order else np.arange(d_in)
    H = H[np.ix_(perm, perm)]
    Hinv = np.linalg.cholesky(np.linalg.inv(H)).T  # upper triangular
    W = W.astype(np.float64)[perm].copy()
    Q = np.zeros(W.shape, dtype=np.int64)
    for j in range(d_in):
        q = np.clip(rnd(W[j] / steps), -wq, wq)
        Q[j] = q
        err = (W[j] - q * steps) / Hinv[j, j]
        W[j + 1:] -= np.outer(Hinv[j, j + 1:], err)
    out = np.empty_like(Q)
    out[perm] = Q
    return out


def _quantize_weight(W: np.ndarray, wq: int, scheme: str, g: int, mse: bool = False,
                     Xq: Optional[np.ndarray] = None) -> tuple[np.ndarray, float]:
    """(integer W, unit u): W ~ u Wi. "channel": Wi[:, c] = M_c clip(rnd(W[:, c] / (u M_c))),
    M_c = clip(rnd(s_c / u), 1, 2^g), s_c = max|W[:, c]| / wq (or the squared-error optimal
    scale with mse), u = max_c s_c / 2^g."""
    if scheme == "tensor":
        sw = float(_mse_scale(W, wq, None)) if mse else float(np.abs(W).max()) / wq or 1.0
        if Xq is not None:
            return _gptq_round(W, np.full(W.shape[1], sw), wq, Xq), sw
        return np.clip(rnd(W / sw), -wq, wq).astype(np.int64), sw
    col = _mse_scale(W, wq, 0) if mse else np.abs(W).max(axis=0) / wq
    u = float(col.max()) / (1 << g) or 1.0
    M = np.clip(rnd(col / u), 1, 1 << g)
    if Xq is not None:
        return (M[None, :] * _gptq_round(W, u * M, wq, Xq)).astype(np.int64), u
    Wi = M[None, :] * np.clip(rnd(W / (u * M[None, :])), -wq, wq)
    return Wi.astype(np.int64), u


def random_head(config: HeadConfig, seed: int = 0, n_calib: int = 8, weight_std: float = 0.02):
    """A head with GPT-2-like random weights and LayerNorm-like calibration activations.

    Returns (head, float_weights dict, calibration activations (n_calib, L, d_model)).
    """
    rng = np.random.default_rng(seed)
    d, h = config.d_model, config.d_head
    W = {n: rng.normal(0, weight_std, (d, h)) for n in ("Wq", "Wk", "Wv")}
    W.update({n: rng.normal(0, weight_std, h) for n in ("bq", "bk", "bv")})
    # scale so that q.k / sqrt(d_head) spans a few logits, as in trained heads
    g = 1.0 / (weight_std * math.sqrt(d)) * (h ** 0.25) * 1.2
    W["Wq"] *= g
    W["Wk"] *= g
    calib = layer_norm_like(rng, (n_calib, config.seq_len, d))
    head = quantize_head(W["Wq"], W["Wk"], W["Wv"], W["bq"], W["bk"], W["bv"], calib, config)
    return head, W, calib


def sample_inputs(head: QuantizedHead, n: int, rng: np.random.Generator) -> list[np.ndarray]:
    """n quantized LayerNorm-like inputs (L, d_model) that the reference accepts (inputs
    outside the calibrated bounds are drawn again; ValueError after 50 n draws)."""
    cfg = head.config
    out: list[np.ndarray] = []
    for _ in range(50 * n):
        if len(out) == n:
            break
        x = quantize_input(layer_norm_like(rng, (cfg.seq_len, cfg.d_model)), head)
        try:
            run_reference(x, head)
        except BoundsViolation:
            continue
        out.append(x)
    if len(out) < n:
        raise ValueError(f"only {len(out)} of {n} sampled inputs are inside the head's bounds")
    return out


def layer_norm_like(rng, shape) -> np.ndarray:
    """Gaussian activations normalised per token (zero mean, unit variance), like LN outputs."""
    a = rng.normal(0, 1, shape)
    a = a - a.mean(axis=-1, keepdims=True)
    return a / a.std(axis=-1, keepdims=True)
