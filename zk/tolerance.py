"""The published tolerance of an approximately evaluated head: a bound on |FHE output - y|.

An FHE circuit may evaluate some of the reference's roundings (``zk.attention_ref``: r_q,
r_k, r_v, r_s, r_o) with concrete's *approximate* rounding: free of bootstraps, but off by one
near a rounding boundary, at random (it depends on the encryption noise). The zk proof always
proves the exact reference; what a client decrypts may then differ from the proven output y.
``tolerance`` bounds that difference elementwise from public data only (the configuration,
shifts, tables and static bounds of the model commitment, and the set of approximate
roundings), by interval arithmetic:

* an approximate rounding of an exact input is off by at most 1; a rounding rs(., k) of an
  input off by at most D is off by at most floor(D / 2^k) + 1 (D > 0; rs is monotone), plus 1
  if it is itself approximate;
* a table T whose input is off by at most e is off by at most
  max |T[clamp(r + t)] - T[r]| over r in the input's static interval and |t| <= e (the circuit
  clamps to the table's domain);
* products of encrypted values are exact in FHE (squares are exact table lookups), so the
  identities z = 2 q.k + |q|^2 and o2 = 2 sum_j p_j v_j hold for the FHE values too:
  |Dz| <= sum_d (2 |Dq| |k| + 2 |q| |Dk| + 2 |Dq| |Dk| + 2 |q| |Dq| + Dq^2) and
  |Do2| <= 2 (psum + n e_p) e_v + 2 n e_p |v|, with |q|, |k|, |v| the static maxima, psum the
  static bound on a row's sum of p and n the row's number of keys;
* sums add their bounds; the row maximum of values each off by at most e is off by at most e
  (plus what clamping of the RELU table can add, bounded by 2 e per step).

What it guarantees: if every rounding listed as approximate is off by at most one and every
other operation is exact (concrete's parameters make any other error a < 1e-9 event per
evaluation), then |FHE output - reference output| <= delta elementwise, for every input the
reference accepts. It does not depend on the weights or on the input.

numpy only (``zk/`` stays free of concrete).
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from zk.attention_ref import ROUNDINGS, Table, causal_cols
from zk.attention_ref import check_roundings as check_sites

__all__ = ["ROUNDINGS", "tolerance", "table_deviation", "rounding_deviation", "check_sites"]


def rounding_deviation(e_in: int, k: int, approximate: bool) -> int:
    """Bound on |rs~(a', k) - rs(a, k)| for |a' - a| <= e_in (rs~ approximate or exact)."""
    if k == 0:
        return int(e_in) + (1 if approximate else 0)
    base = 0 if e_in == 0 else (int(e_in) >> k) + 1
    return base + (1 if approximate else 0)


def table_deviation(table: Table, lo: int, hi: int, e: int) -> int:
    """max |T[clamp(r + t)] - T[r]| over r in [lo, hi] (inside the table) and |t| <= e."""
    if e <= 0:
        return 0
    vals = np.asarray(table.values, dtype=np.int64)
    n = len(vals)
    lo_i = max(0, int(lo) - table.offset)
    hi_i = min(n - 1, int(hi) - table.offset)
    if hi_i < lo_i:
        return 0
    e = min(int(e), n)
    # max / min over the clamped window [i - e, i + e] of every i
    pad = np.concatenate([np.full(e, vals[0]), vals, np.full(e, vals[-1])])
    wmax, wmin = _window(pad, 2 * e + 1, np.maximum), _window(pad, 2 * e + 1, np.minimum)
    centre = vals[lo_i: hi_i + 1]
    up = wmax[lo_i: hi_i + 1] - centre
    down = centre - wmin[lo_i: hi_i + 1]
    return int(max(up.max(), down.max()))


def _window(a: np.ndarray, w: int, op) -> np.ndarray:
    """op (max or min) over every window a[i: i + w], in O(len(a) log w)."""
    span, cur = 1, a
    while 2 * span <= w:  # cur[i] = op(a[i: i + 2 span])
        cur = op(cur[:-span], cur[span:])
        span *= 2
    # two overlapping windows of length `span` cover [i, i + w)
    return op(cur[: len(a) - w + 1], cur[w - span: w - span + len(a) - w + 1])


def _absmax(b) -> int:
    return max(abs(int(b[0])), abs(int(b[1])))


def tolerance(head, approximate: Iterable[str]) -> np.ndarray:
    """delta (L, d_head) int64: |FHE y - reference y| <= delta when the roundings named in
    ``approximate`` are evaluated approximately (module docstring). ``head`` is a
    QuantizedHead or a ModelCommitment (anything with config, shifts, tables, bounds)."""
    sites = set(check_sites(approximate))
    cfg = head.config
    B, T, K = head.bounds, head.tables, head.shifts
    L, dh = cfg.seq_len, cfg.d_head
    f = cfg.log_frac_bits

    dev = {}
    for t in ("q", "k", "v"):
        e_r = rounding_deviation(0, K[t], "r_" + t in sites)
        dev[t] = table_deviation(T[t], *B["r_" + t], e_r)
    eq, ek, ev = dev["q"], dev["k"], dev["v"]
    qm, km, vm = _absmax(B["q"]), _absmax(B["k"]), _absmax(B["v"])
    # z = 2 q.k + |q|^2 on the FHE values as well (squares are exact lookups)
    e_z = dh * (2 * eq * km + 2 * qm * ek + 2 * eq * ek + 2 * qm * eq + eq * eq)
    e_rs = rounding_deviation(e_z, K["score"], "r_s" in sites)
    p_hi = _absmax(B["p"])
    psum = int(B["psum"][1])
    rows = np.zeros(L, dtype=np.int64)
    for i in range(L):
        n = causal_cols(i, L, cfg.causal)
        # row maximum: exact max of the perturbed scores, plus RELU clamping (2 e per step)
        e_m = e_rs + (2 * e_rs * (n - 1) if e_rs else 0)
        e_d = e_rs + e_m
        e_c = table_deviation(T["clipd"], *B["d"], e_d)
        e_e = _composed_deviation(T["exp"], T["clipd"], B["d"], e_d)
        e_S = n * e_e
        e_l = table_deviation(T["log"], *B["S"], e_S)
        e_u = (e_c << f) + e_l
        e_p = table_deviation(T["exp2"], *B["u"], e_u)
        e_p = min(e_p, p_hi)
        e_o2 = 2 * (psum + n * e_p) * ev + 2 * n * e_p * vm
        e_ro = rounding_deviation(e_o2, K["out"], "r_o" in sites)
        rows[i] = table_deviation(T["out"], *B["r_o"], e_ro)
    return np.repeat(rows[:, None], dh, axis=1)


def _composed_deviation(outer: Table, inner: Table, dom, e: int) -> int:
    """table_deviation of outer o inner (inner's outputs inside outer's domain)."""
    if e <= 0:
        return 0
    lo, hi = int(dom[0]), int(dom[1])
    vals = outer(np.clip(inner.values, outer.lo, outer.hi))
    return table_deviation(Table("composed", inner.offset, vals), lo, hi, e)
