"""The ops of ``zk.attention_ref`` over concrete-python tracers.

Each method does on tracers exactly what ``zk.attention_ref.NumpyOps`` does on int64 arrays:

- ``round_shift(a, k)``: ``fhe.round_bit_pattern(a, lsbs_to_remove=k)`` (exact rounding, ties
  up: floor((a + 2^(k-1)) / 2^k) * 2^k) followed by ``>> k``; a negative interval is first
  moved up by a multiple of 2^k (taken off after the shift) when that drops the sign bit of the
  table reading the result;
- ``lookup(table, a)``: one programmable bootstrap, ``fhe.univariate`` of the table, read at
  a - lo when that drops a sign bit, and at no fewer than ``MIN_TLU_BITS`` bits (a narrower
  table would get a parameter set and keys of its own);
- ``max_step(m, r)``: the row maximum's m + RELU[r - m] as comparisons and selections of
  chunks of m and r (no table reads the one-bit-wider r - m);
- ``max_shift(r, ...)``: the chain of max_step and d = r - m, on the unsigned form of the
  scores that ``round_shift`` remembers (no signed node in the scores' class);
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

from zk.attention_ref import NumpyOps, Table, _signed_bits, rope_rotate, round_shift

_PROP = "zkfhe_static_bounds"
# narrowest table input (fhe.ops.ConcreteOps.lookup)
MIN_TLU_BITS = 4
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
        # offset forms: id(t) -> (t, u, c) where the tracer u holds t + c >= 0 (see _offset_form)
        self._offsets: dict = {}

    def _remember_offset(self, t, u, c: int):
        """Record that ``u`` holds ``t + c`` (an unsigned node where ``t`` is signed)."""
        self._offsets[id(t)] = (t, u, int(c))
        return t

    def _offset_form(self, t):
        """(u, c) with u = t + c, for a tracer whose unsigned form was recorded, else (t, 0).

        concrete gives every node joined by additions one bit width; one signed node (the
        scores r_s in [-8, 44]) makes the whole class 7 bits wide and each table reading it
        pays a clear doubling (its noise times 2) to read 6 bits. Consumers that take the
        unsigned form keep the class at 6 bits; the signed node, then unused, is dropped
        from the circuit."""
        hit = self._offsets.get(id(t))
        if hit is not None and hit[0] is t:
            return hit[1], hit[2]
        return t, 0

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
        # A negative interval costs a sign bit in the table that reads the rounded value.
        # rs(a + c 2^k) = rs(a) + c, so rounding a + c 2^k (c >= 0 chosen to make it unsigned)
        # and subtracting c after the shift (fused into the same table) gives the same
        # integer with a table one bit narrower whenever the unsigned interval is.
        c = 0
        if wlo < 0:
            c_try = (-wlo + (1 << k) - 1) >> k
            if _bits(wlo + (c_try << k), whi + (c_try << k)) < _bits(wlo, whi):
                c = c_try
        with fhe.tag(name or "round"):
            if c:
                a = _mark(a + (c << k), lo + (c << k), hi + (c << k))
            r = fhe.round_bit_pattern(a, lsbs_to_remove=k, exactness=exactness)
            _mark(r, wlo + (c << k), whi + (c << k))
            s = r >> k
            if c:
                u = _mark(s, slo + c, shi + c)
                return self._remember_offset(_mark(u - c, slo, shi), u, c)
        return _mark(s, slo, shi)

    def lookup(self, table: Table, a):
        vals = np.asarray(table.values, dtype=np.int64)
        off, n = table.offset, len(vals)

        def f(z):
            # concrete tabulates f over the whole encoding domain: clamp outside the table
            return vals[np.clip(np.asarray(z, dtype=np.int64) - off, 0, n - 1)]

        if not isinstance(a, fhe.tracing.Tracer):
            return table(a)
        a, c = self._offset_form(a)
        if c:
            # read the same table at a + c
            return self.lookup(Table(table.name, table.offset + c, table.values), a)
        if table.is_identity:
            # no bootstrap. One more unit each side: an approximate rounding may land one
            # beyond the domain (zk.tolerance counts it), and must not overflow the width
            return _mark(a, table.lo - 1, table.hi + 1)
        # the table reads a - lo from [0, hi - lo] when that drops a sign bit (d = r - m in
        # [-53, 0]: 6 bits instead of 7); a subtraction of a constant costs no bootstrap
        lo, hi = _bounds_of(a, table.lo, table.hi)
        if lo != 0 and _bits(0, hi - lo) < _bits(lo, hi):
            a = _mark(a - lo, 0, hi - lo)

            def f(z, f=f, lo=lo):  # noqa: F811 - the shifted table
                return f(np.asarray(z, dtype=np.int64) + lo)

            lo, hi = 0, hi - lo
        with fhe.tag(table.name):
            if _bits(lo, hi) < MIN_TLU_BITS:
                # a table this narrow would get a parameter set (bootstrap key and keyswitch
                # keys: ~200 MB at GPT-2 size) of its own; read at MIN_TLU_BITS it shares one
                a = fhe.hint(a, bit_width=MIN_TLU_BITS)
            out = fhe.univariate(f)(a)
        return _mark(out, *table.out_range)

    def max_step(self, m, r, relu: Table, lo, hi, vlo, vhi):
        """m + RELU[r - m] = max(m, r), evaluated on chunks of m and r.

        RELU[r - m] reads r - m, one bit wider than r and m (7 bits for 6-bit scores: a table
        that alone needs the largest bootstrap key of the circuit). Here m - lo and r - lo are
        split into high and low chunks of c bits; the chunks are compared by tables on
        a + 2^c b, the comparisons combined into g = [m >= r], and each chunk of the maximum
        selected by tables on 2^c g + chunk. No table reads more than 2c <= 6 bits, and every
        table input is a sum of at most four fresh bootstrap outputs (chunks come out of their
        tables already scaled where they are packed, so no noise is multiplied). Same integer
        as the reference whenever RELU is the exact max(., 0) on [lo, hi] (checked; any other
        table, or scores wider than 6 bits, are looked up as written).
        """
        dom = np.arange(relu.lo, relu.hi + 1)
        exact_relu = (relu.lo <= lo and hi <= relu.hi
                      and np.array_equal(np.asarray(relu.values), np.maximum(dom, 0)))
        m, r = _mark(m, vlo, vhi), _mark(r, vlo, vhi)
        alo, ahi = _bounds_of(r, *_bounds_of(m, vlo, vhi))
        nb = _bits(0, ahi - alo)
        if not (isinstance(m, fhe.tracing.Tracer) and isinstance(r, fhe.tracing.Tracer)) \
                or not exact_relu or not 2 <= nb <= 6:
            diff = _mark(r - m, lo, hi)
            return m + self.lookup(relu, diff)
        c = (nb + 1) // 2
        mask, top = (1 << c) - 1, (1 << 2 * c) - 1

        def tlu(fn, t, out_lo, out_hi):
            return _mark(fhe.univariate(lambda v: fn(np.asarray(v, dtype=np.int64)))(t),
                         out_lo, out_hi)

        def chunk(t, high, scaled):
            shift = c if scaled else 0
            t = _mark(t - alo, 0, ahi - alo)  # unsigned: no sign bit in the table
            if high:
                return tlu(lambda v: (v >> c) << shift, t, 0, mask << shift)
            return tlu(lambda v: (v & mask) << shift, t, 0, mask << shift)

        with fhe.tag(relu.name):
            # m's unscaled chunks serve both the comparison and the selection
            m_hi, m_lo = chunk(m, True, False), chunk(m, False, False)
            # w = a + 2^c b -> 3 (a > b), 0 (a == b)... coded 3 sign(a - b) + 3 for the high
            # chunks and sign(a - b) + 1 for the low ones, so g's table reads their sum
            gh = tlu(lambda w: 3 * (np.sign((w & mask) - (w >> c)) + 1),
                     _mark(m_hi + chunk(r, True, True), 0, top), 0, 6)
            gl = tlu(lambda w: np.sign((w & mask) - (w >> c)) + 1,
                     _mark(m_lo + chunk(r, False, True), 0, top), 0, 2)
            # g = [m >= r], emitted as g 2^c for the selections
            gs = tlu(lambda w: np.where((w >= 6) | (w == 4) | (w == 5), 1 << c, 0),
                     _mark(gh + gl, 0, 8), 0, 1 << c)

            def pick(high, scale):
                keep = tlu(lambda w: np.where(w >> c, (w & mask) << scale, 0),
                           _mark(gs + (m_hi if high else m_lo), 0, top), 0, mask << scale)
                take = tlu(lambda w: np.where(w >> c, 0, (w & mask) << scale),
                           _mark(gs + chunk(r, high, False), 0, top), 0, mask << scale)
                return keep + take

            out = pick(True, c) + pick(False, 0)
            out = _mark(_mark(out, 0, ahi - alo) + alo, alo, ahi)
        return out

    def max_shift(self, r, relu: Table, mdiff, rs, dbound):
        """The reference's chain of max_step and d = r - m, on the unsigned form r + c of the
        scores when it is known (``_offset_form``): the chain runs on r + c, and d comes out
        as d + K = (r + c) + (K - (m + c)) with K = max(rs) + c, two unsigned terms, so no
        node of the scores' class is signed. The tables reading d read d + K."""
        if not isinstance(r, fhe.tracing.Tracer):
            return NumpyOps(check=False).max_shift(np.asarray(r, np.int64), relu, mdiff, rs,
                                                   dbound)
        u, c = self._offset_form(r)
        if rs[0] + c < 0:  # no unsigned form: the chain runs on the signed scores
            u, c = r, 0
        vlo, vhi = rs[0] + c, rs[1] + c
        m = u[0]
        chain = [m]
        for j in range(1, len(r)):
            m = _mark(self.max_step(m, u[j], relu, *mdiff, vlo, vhi), vlo, vhi)
            chain.append(m)
        # the chain in the reference's values (unused by the circuit, so dropped from it: only
        # the proof's witness records the chain, and it comes from NumpyOps)
        chain = [t - c for t in chain] if c else chain
        if vlo < 0:
            return chain, _mark(r - m, *dbound)
        shifted = _mark(u + _mark(vhi - m, 0, vhi - vlo), dbound[0] + vhi, dbound[1] + vhi)
        return chain, self._remember_offset(_mark(shifted - vhi, *dbound), shifted, vhi)

    def saturate(self, a, lo, hi, wlo, whi, name=""):
        """clip(a, wlo, whi) for a with static interval [lo, hi], exactly, with no table reading
        more than max(4, bits(whi - wlo) + 1) bits, however wide a is.

        A table reading a would be as wide as a (the saturated scores of a head: 10 bits and
        more, beyond concrete's parameters). Instead: u = a - lo >= 0 is decomposed into its
        bits (``fhe.bits``: one small bootstrap per bit), u is compared with the window's ends
        two bits at a time, most significant first (codes 0 <, 1 =, 2 > combined by 4-bit
        tables), and the position inside the window comes from u's low m bits (window width
        <= 2^m): every table reads fresh, narrow values, none reads a itself. The bit
        extractions are one-bit bootstraps of a's wide encoding, as in an exact rounding (the
        key set follows a's width: a lone 10-bit input brought 1.95 GB of bootstrap keys in a
        micro-circuit; in a head, the accumulators before the roundings are wider already)."""
        if not isinstance(a, fhe.tracing.Tracer):
            return np.clip(np.asarray(a, dtype=np.int64), wlo, whi)
        if not (lo <= hi and wlo <= whi):
            raise ValueError("saturate needs lo <= hi and wlo <= whi")
        if wlo <= lo and hi <= whi:
            return a
        wlo, whi = max(wlo, lo), min(whi, hi)  # the window inside a's interval
        nb = max(1, int(hi - lo).bit_length())
        width = whi - wlo + 1
        m = max(1, (width - 1).bit_length())
        start, end = wlo - lo, whi - lo  # the window in u = a - lo

        def tlu(fn, t, out_lo, out_hi):
            return _mark(fhe.univariate(lambda v: fn(np.asarray(v, dtype=np.int64)))(t),
                         out_lo, out_hi)

        with fhe.tag(name or "saturate"):
            u = _mark(a - lo, 0, hi - lo)
            bits = [fhe.bits(u)[i] for i in range(nb)]

            def compare(c: int):
                """0 if u < c, 1 if u == c, 2 if u > c."""
                code = None
                i = nb - 1
                while i >= 0:
                    j = max(i - 1, 0)
                    if i > j:
                        grp, cg = _mark(bits[i] * 2 + bits[j], 0, 3), (c >> j) & 3
                    else:
                        grp, cg = bits[i], (c >> i) & 1
                    g = tlu(lambda v, cg=cg: np.where(v < cg, 0, np.where(v == cg, 1, 2)),
                            fhe.hint(grp, bit_width=MIN_TLU_BITS), 0, 2)
                    if code is None:
                        code = g
                    else:  # the earlier (more significant) code decides unless it is "="
                        code = tlu(lambda v: np.where(v // 3 == 1, v % 3, v // 3),
                                   _mark(code * 3 + g, 0, 8), 0, 2)
                    i = j - 1 if i > j else -1
                return code

            below = tlu(lambda v: (v == 0).astype(np.int64), compare(start), 0, 1)
            above = tlu(lambda v: (v == 2).astype(np.int64), compare(end), 0, 1)
            low = bits[0]
            for i in range(1, min(m, nb)):
                low = low + bits[i] * (1 << i)
            low = _mark(low, 0, (1 << min(m, nb)) - 1)
            mask = (1 << m) - 1
            sm = start & mask
            # u - start = (low - start) mod 2^m inside the window; 0 outside (set below)
            inside = tlu(lambda v: np.where(v >> m, 0, ((v & mask) - sm) & mask),
                         _mark(low + (below + above) * (1 << m), 0, (2 << m) - 1), 0, width - 1)
            out = inside + above * (width - 1)
            return _mark(_mark(out, 0, width - 1) + wlo, wlo, whi)

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


def _bits(lo: int, hi: int) -> int:
    """Bit width concrete gives an integer node holding [lo, hi] (unsigned when lo >= 0)."""
    if lo >= 0:
        return max(1, int(hi).bit_length())
    return _signed_bits(lo, hi)


def _bounds_of(t, lo: int, hi: int) -> tuple[int, int]:
    """[lo, hi] widened by the static interval recorded on the tracer's node, if any."""
    if isinstance(t, fhe.tracing.Tracer):
        node = t.computation if t.last_version is None else t.last_version.computation
        b = node.properties.get(_PROP)
        if b is not None:
            return min(lo, b[0]), max(hi, b[1])
    return lo, hi


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
