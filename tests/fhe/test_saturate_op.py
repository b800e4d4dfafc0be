"""fhe.ops.ConcreteOps.saturate: clip(a, wlo, whi) of a wide encrypted value on its bits, exact
over a's whole interval (circuit.simulate against numpy), in a few small bootstraps per bit."""

import numpy as np
import pytest

pytest.importorskip("concrete.fhe")

from concrete import fhe  # noqa: E402

from fhe.ops import ConcreteOps, static_bounds  # noqa: E402
from zk.attention_ref import NumpyOps  # noqa: E402


@pytest.mark.parametrize("lo,hi,wlo,whi", [
    (-196, 588, -7, 24),    # a SmolLM2 head's saturated scores into their calibrated window
    (-66, 66, -12, 12),     # a saturated projection (window not a power of two)
    (0, 40, 3, 3),          # a one-value window
    (-5, 9, -20, 20),       # a window wider than the interval: the identity
    (-100, -10, -50, -30),  # an interval entirely negative
])
def test_saturate_is_exact_over_the_whole_interval(lo, hi, wlo, whi):
    ops = ConcreteOps()

    def f(a):
        return ops.saturate(a, lo, hi, wlo, whi)

    xs = list(range(lo, hi + 1))
    with static_bounds():
        circuit = fhe.Compiler(f, {"a": "encrypted"}).compile(
            xs[:: max(1, len(xs) // 16)] + [lo, hi], fhe.Configuration(show_progress=False))
    want = NumpyOps().saturate(np.array(xs), lo, hi, wlo, whi)
    got = np.array([circuit.simulate(x) for x in xs])
    assert np.array_equal(got, want)
    if not (wlo <= lo and hi <= whi):
        # narrow tables only (the interval itself is 10 bits wide in the first case)
        assert circuit.programmable_bootstrap_count <= 4 * (hi - lo).bit_length() + 8
