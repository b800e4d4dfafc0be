"""The ops of ``zk.attention_ref`` over concrete-python tracers.

Each method does on tracers exactly what ``zk.attention_ref.NumpyOps`` does on int64 arrays:

- ``round_shift(a, k)``: ``fhe.round_bit_pattern(a, lsbs_to_remove=k)`` (exact rounding, ties
  up: floor((a + 2^(k-1)) / 2^k) * 2^k) followed by ``>> k``;
- ``lookup(table, a)``: one programmable bootstrap, ``fhe.univariate`` of the table;
- ``square(a)``: ``a ** 2``, one programmable bootstrap per entry;
- ``matmul_clear``: ``a @ W + b`` with clear integer weights (no bootstrap);
- ``rope(a, cos, sin, lo, hi)``: RoPE as clear-constant products and a column swap
  (``zk.attention_ref.rope_rotate``, no bootstrap); its partial products get static bounds
  from a's interval [lo, hi];
- ``bound(a, lo, hi)``: records the static interval of the node. During compilation
  (``static_bounds``), concrete's measured bounds are widened to these intervals, so bit widths
  and signedness hold for every input inside the reference's bounds, not only the inputset.
"""

from __future__ import annotations

import contextlib
import threading

import numpy as np
from concrete import fhe
from concrete.fhe.representation.graph import Graph

from zk.attention_ref import Table, rope_rotate, round_shift

_PROP = "zkfhe_static_bounds"
_lock = threading.Lock()


def _mark(t, lo: int, hi: int):
    if isinstance(t, fhe.tracing.Tracer):
        node = t.computation if t.last_version is None else t.last_version.computation
        old = node.properties.get(_PROP)
        if old is not None:
            lo, hi = min(lo, old[0]), max(hi, old[1])
        node.properties[_PROP] = (int(lo), int(hi))
    return t


class ConcreteOps:
    """Ops acting on concrete tracers (also callable on plain numpy arrays).

    ``approximate``: names of the roundings (``r_q``, ``r_k``, ``r_v``, ``r_s``, ``r_o``) the
    circuit evaluates with concrete's approximate rounding (free, but off by one near a
    rounding boundary); every other rounding is exact.
    """

    record = None

    def __init__(self, approximate: frozenset = frozenset()):
        self.approximate = frozenset(approximate)

    def bound(self, a, lo, hi, name=""):
        return _mark(a, lo, hi)

    def round_shift(self, a, k, lo, hi, name=""):
        if k == 0:
            return a
        if not isinstance(a, fhe.tracing.Tracer):
            return round_shift(np.asarray(a, dtype=np.int64), k)
        approx = name in self.approximate
        exactness = fhe.Exactness.APPROXIMATE if approx else fhe.Exactness.EXACT
        # an approximate rounding may land one unit beyond the exact one (also at the ends of
        # the interval): the widths hold that unit, so it can never wrap around
        slack = 1 if approx else 0
        slo, shi = round_shift(lo, k) - slack, round_shift(hi, k) + slack
        wlo, whi = min(lo, slo << k), max(hi, shi << k)
        with fhe.tag(name or "round"):
            r = fhe.round_bit_pattern(a, lsbs_to_remove=k, exactness=exactness)
            _mark(r, wlo, whi)
            s = r >> k
        return _mark(s, slo, shi)

    def lookup(self, table: Table, a):
        vals = np.asarray(table.values, dtype=np.int64)
        off, n = table.offset, len(vals)

        def f(z):
            # concrete tabulates f over the whole encoding domain: clamp outside the table
            return vals[np.clip(np.asarray(z, dtype=np.int64) - off, 0, n - 1)]

        if not isinstance(a, fhe.tracing.Tracer):
            return table(a)
        if table.is_identity:
            # no bootstrap. One more unit each side: an approximate rounding may land one
            # beyond the domain (zk.tolerance counts it), and must not overflow the width
            return _mark(a, table.lo - 1, table.hi + 1)
        with fhe.tag(table.name):
            out = fhe.univariate(f)(a)
        return _mark(out, *table.out_range)

    def square(self, a, lo, hi, name=""):
        if not isinstance(a, fhe.tracing.Tracer):
            a = np.asarray(a, dtype=np.int64)
            return a * a
        with fhe.tag(name or "square"):
            s = a**2
        top = max(lo * lo, hi * hi)
        bot = 0 if lo <= 0 <= hi else min(lo * lo, hi * hi)
        return _mark(s, bot, top)

    def matmul_clear(self, x, W, b):
        return x @ W + b

    def rope(self, a, cos, sin, lo, hi):
        if not isinstance(a, fhe.tracing.Tracer):
            return rope_rotate(np.asarray(a, dtype=np.int64), cos, sin)
        h = cos.shape[1]
        C = np.concatenate([cos, cos], axis=1).astype(np.int64)
        S = np.concatenate([-sin, sin], axis=1).astype(np.int64)
        swapped = np.concatenate((a[:, h:], a[:, :h]), axis=1)
        _mark(swapped, lo, hi)
        return _mark(a * C, *_scaled(C, lo, hi)) + _mark(swapped * S, *_scaled(S, lo, hi))

    def stack(self, rows):
        rows = [r.reshape((1,) + tuple(r.shape)) for r in rows]
        return np.concatenate(tuple(rows), axis=0)

    def reshape(self, a, shape):
        return a.reshape(shape)

    def rec(self, *args, **kwargs):  # no witness on the FHE side
        return None


def _scaled(coef: np.ndarray, lo: int, hi: int) -> tuple[int, int]:
    """Interval of c * a over the entries c of coef and every a in [lo, hi]."""
    c = coef.astype(object)
    return int(np.minimum(c * lo, c * hi).min()), int(np.maximum(c * lo, c * hi).max())


@contextlib.contextmanager
def static_bounds():
    """While active, concrete's measured node bounds are widened to the recorded intervals."""
    with _lock:
        original = Graph.update_with_bounds

        def patched(self, bounds):
            for node, b in bounds.items():
                sb = node.properties.get(_PROP)
                if sb is None or not isinstance(b["min"], (int, np.integer)):
                    continue
                b["min"] = np.int64(min(int(b["min"]), sb[0]))
                b["max"] = np.int64(max(int(b["max"]), sb[1]))
            return original(self, bounds)

        Graph.update_with_bounds = patched
        try:
            yield
        finally:
            Graph.update_with_bounds = original
