"""A noise model of concrete's approximate rounding, for simulating approximate circuits.

concrete evaluates ``round_bit_pattern(a, k, APPROXIMATE)`` followed by a table lookup as one
programmable bootstrap at the reduced precision p (the k low bits of a are left in the
ciphertext as if they were noise). Before that, with its default ``symetrize_deltas``, concrete
adds just under half a unit of a (``concrete.fhe.mlir.context.round_bit_pattern``), so a
rounding boundary never falls on an integer: the tie a = m 2^k + 2^(k-1) sits half a unit of a
above it. The bootstrap's own noise then blurs the boundary. The model is

    approx(a) = floor((a + 1/2) / 2^k + 1/2 + eps),   eps ~ N(0, sigma^2)

(eps in units of the rounded value), which equals the exact rs(a, k) when eps = 0, moves by
at most one, and flips with probability Phi(-dist / sigma), dist being the distance of
(a + 1/2) / 2^k + 1/2 to the nearest integer: the residues next to the tie flip most, by
Phi(-2^-(k+1) / sigma). ``sigma`` follows from the circuit's parameters with concrete's own
noise formulas (concrete-cpu noise model: keyswitch, modulus switching to 2N, blind rotation;
torus variances):

    var = var_in + var_ks + var_ms,   sigma = sqrt(var) * 2^(p + 1)

* var_ms = (1/12 + n/24) / (2N)^2: switching the n-dimensional LWE ciphertext to Z_2N;
* var_ks = n_in (((q^2 / (12 B^(2l))) - 1/12) (1/4 + 1/4) / q^2 + 1/16 / q^2
  + l var_ksk (B^2 + 2) / 12): the keyswitch from the n_in-dimensional key (base B, l levels);
* var_in: the noise the rounded value already carries: a sum of bootstrap outputs (scores,
  attention outputs) adds each one's blind-rotation variance; fresh inputs times clear weights
  (the projections) carry a negligible variance.

How far it is validated: the rate of off-by-one outputs of real runs against the model's
prediction on the same inputs (``bench/fhe.py --approx``, and the slow test in
tests/fhe/test_approximate.py); the published tolerance never relies on it (``zk.tolerance``
assumes any approximate rounding may be off by one).

The model's parameters come from a compiled circuit (``rounding_sigmas``); ``NoisyOps`` runs
the integer reference with every approximate rounding drawn from it, so that tests and
benchmarks can run many approximate evaluations without TFHE. ``NoisyOps`` imports numpy only;
reading a circuit needs concrete.
"""

from __future__ import annotations

import math
from typing import Mapping, Optional

import numpy as np

from zk.attention_ref import NumpyOps, QuantizedHead, attention_head, round_shift
from zk.tolerance import ROUNDINGS

__all__ = ["DEFAULT_SIGMA", "CONSUMER_TAG", "NoisyOps", "run_noisy", "flip_probability",
           "rounding_sigmas",
           "variance_modulus_switch", "variance_keyswitch", "variance_blind_rotate"]

Q_LOG = 64  # concrete's ciphertext modulus 2^64
# sigma of r_o in the GPT-2-size approximate head (HeadConfig.for_fhe(768, 64, 6), r_o
# approximate): rounding_sigmas gives 0.068 (bench/fhe.py --approx); the simulated backend's
# default for approximate heads without a compiled circuit
DEFAULT_SIGMA = 0.07

# the bootstrap that evaluates each rounding (fhe.ops tags every table with its name): the
# projection tables q, k, v, the shift of the scores, the output table
CONSUMER_TAG = {"r_q": "q", "r_k": "k", "r_v": "v", "r_s": "r_s", "r_o": "out"}
# bootstraps whose outputs are summed into the value a rounding acts on (per row)
_PRODUCERS = {"r_s": (("qk_sq", "d_head"), ("ksq_el", "d_head")),
              "r_o": (("pv_sq", "L"), ("vsq", "L"), ("psq_el", "L"))}


# ---------------------------------------------------------------- concrete's noise formulas


def variance_modulus_switch(n: int, poly_size: int) -> float:
    """Torus variance of switching an n-dimensional LWE ciphertext (binary key) to Z_2N."""
    w = 2.0 * poly_size
    return (1.0 / 12.0 + n / 24.0) / (w * w)


def variance_keyswitch(n_in: int, base_log: int, level: int, var_ksk: float) -> float:
    """Torus variance a keyswitch from an n_in-dimensional binary key adds (concrete-cpu)."""
    q2 = 2.0 ** (2 * Q_LOG)
    b2l = 2.0 ** (2 * base_log * level)
    var_key, sq_exp = 0.25 / q2, 0.25 / q2  # binary key: variance 1/4, E[s]^2 = 1/4 (modular)
    res2 = (q2 / (12.0 * b2l) - 1.0 / 12.0) * (var_key + sq_exp)
    res3 = 0.25 * var_key
    res4 = level * var_ksk * (2.0 ** (2 * base_log) + 2.0) / 12.0
    return n_in * (res2 + res3 + res4)


def variance_blind_rotate(n: int, glwe_dim: int, poly_size: int, base_log: int, level: int,
                          var_bsk: float) -> float:
    """Torus variance of a bootstrap's output (n external products, FFT noise included)."""
    q2 = 2.0 ** (2 * Q_LOG)
    var_key, sq_exp = 0.25 / q2, 0.25 / q2
    k, big_n, b = float(glwe_dim), float(poly_size), 2.0 ** base_log
    b2l = 2.0 ** (2 * base_log * level)
    res1 = level * (k + 1.0) * big_n * (b * b + 2.0) / 12.0 * var_bsk
    res2 = ((q2 - b2l) / (24.0 * b2l) * (1.0 / q2 + k * big_n * (var_key + sq_exp))
            + k * big_n / 8.0 * var_key + (1.0 - k * big_n) ** 2 / 16.0 * sq_exp)
    fft = 2.0 ** -2.57722494 * float(1 << 22) * level * b * b * big_n ** 2 * (k + 1.0) / q2
    return n * (res1 + res2 + fft)


def flip_probability(a, k: int, sigma: float):
    """P(approximate rounding != exact rounding) of the integers a rounded by k bits (the
    model above: the nearest boundary's distance, the other one's ignored)."""
    a = np.asarray(a, dtype=np.int64)
    if sigma <= 0 or k == 0:
        return np.zeros(a.shape)
    v = (a + 0.5) / float(1 << k) + 0.5
    dist = np.abs(v - np.round(v))
    z = dist / (sigma * math.sqrt(2.0))
    return 0.5 * np.vectorize(math.erfc)(z)


# ---------------------------------------------------------------- the simulated circuit


class NoisyOps(NumpyOps):
    """The reference's ops with the roundings in ``sigmas`` drawn from the noise model.

    Static bounds are not checked (an approximate evaluation may leave them by the published
    deviation); table indices are clamped to the table's domain, as the circuit's tables are.
    """

    def __init__(self, sigmas: Mapping[str, float], rng: np.random.Generator,
                 record: Optional[dict] = None) -> None:
        super().__init__(check=False, record=record)
        self.sigmas = dict(sigmas)
        self.rng = rng
        self.flips: dict = {}

    def round_shift(self, a, k: int, lo: int, hi: int, name: str = ""):
        a = np.asarray(a, dtype=np.int64)
        exact = round_shift(a, k)
        sigma = self.sigmas.get(name)
        if sigma is None or k == 0:
            return exact
        eps = self.rng.normal(0.0, sigma, a.shape)
        approx = np.floor((a + 0.5) / float(1 << k) + 0.5 + eps).astype(np.int64)
        # the model never moves further than the neighbours of a / 2^k
        approx = np.clip(approx, a >> k, (a >> k) + 1)
        self.flips[name] = self.flips.get(name, 0) + int(np.count_nonzero(approx != exact))
        return approx

    def lookup(self, table, a):
        return table(np.clip(np.asarray(a, dtype=np.int64), table.lo, table.hi))


def run_noisy(x, head: QuantizedHead, sigmas: Mapping[str, float],
              rng: np.random.Generator) -> np.ndarray:
    """One simulated approximate evaluation of the head on x: y (L, d_head)."""
    unknown = set(sigmas) - set(ROUNDINGS)
    if unknown:
        raise ValueError(f"unknown roundings {sorted(unknown)}")
    return attention_head(np.asarray(x, dtype=np.int64), head, NoisyOps(sigmas, rng))


# ---------------------------------------------------------------- parameters of a circuit


def _call(obj, name):
    v = getattr(obj, name)
    return v() if callable(v) else v


def rounding_sigmas(circuit, sites=None) -> dict[str, float]:
    """sigma of every approximate rounding of a compiled head (``fhe.compile.compile_head``),
    from the parameters of the bootstrap that evaluates it (module docstring)."""
    head = circuit.head
    sites = tuple(head.approximate if sites is None else sites)
    pbs = circuit.programmable_bootstrap_count_per_tag_per_parameter
    ks = circuit.key_switch_count_per_tag_per_parameter
    big_dims = {}  # secret key id -> dimension of the big (GLWE) key
    for d in pbs.values():
        for p in d:
            big_dims[_call(p, "output_secret_key_id")] = (
                _call(p, "glwe_dimension") * _call(p, "polynomial_size"))
    precision = {}
    for node in circuit.graph.query_nodes():
        if node.properties.get("name") == "round_bit_pattern":
            precision[node.tag] = int(node.properties["resulting_bit_width"])
    out = {}
    for site in sites:
        # the bootstrap that reads the rounded value: the rounding's own (a shift that concrete
        # could not fuse, e.g. before an identity output table) or the next table's
        tag = site if site in pbs else CONSUMER_TAG[site]
        if tag not in pbs or site not in precision:
            raise ValueError(f"the circuit has no approximate rounding {site}")
        bsk = max(pbs[tag], key=lambda p: pbs[tag][p])
        ksk = max(ks[tag], key=lambda p: ks[tag][p])
        n, big_n = _call(bsk, "input_lwe_dimension"), _call(bsk, "polynomial_size")
        var = variance_modulus_switch(n, big_n)
        var += variance_keyswitch(big_dims[_call(ksk, "input_secret_key_id")],
                                  _call(ksk, "base_log"), _call(ksk, "level"),
                                  _call(ksk, "variance"))
        for ptag, count in _PRODUCERS.get(site, ()):
            if ptag in pbs:
                p = max(pbs[ptag], key=lambda p_: pbs[ptag][p_])
                n_terms = head.config.d_head if count == "d_head" else head.config.seq_len
                var += n_terms * variance_blind_rotate(
                    _call(p, "input_lwe_dimension"), _call(p, "glwe_dimension"),
                    _call(p, "polynomial_size"), _call(p, "base_log"), _call(p, "level"),
                    _call(p, "variance"))
        out[site] = math.sqrt(var) * 2.0 ** (precision[site] + 1)
    return out
