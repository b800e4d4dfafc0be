"""The published tolerance of approximate-mode heads (zk.tolerance) and its place in the model
commitment: a rigorous bound (every pattern of +-1 at the approximate roundings stays inside
it), tight where it is used, recomputed by every reader, and refused when tampered with."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest

from zk import attention_model as am
from zk.attention_ref import (
    ROUNDINGS,
    HeadConfig,
    NumpyOps,
    QuantizedHead,
    attention_head,
    random_head,
    round_shift,
    run_reference,
    sample_inputs,
)
from zk.encoding import from_bytes, to_bytes
from zk.tolerance import rounding_deviation, table_deviation, tolerance
from zk.attention_ref import Table


class FlipOps(NumpyOps):
    """The reference with every rounding named in ``sites`` replaced by an adversarial choice
    between its two neighbours floor(a / 2^k) and floor(a / 2^k) + 1, whatever the distance to
    the boundary (what a worst-case approximate rounding may do); tables clamp like the
    circuit's."""

    def __init__(self, sites, rng):
        super().__init__(check=False)
        self.sites, self.rng = set(sites), rng

    def round_shift(self, a, k, lo, hi, name=""):
        a = np.asarray(a, dtype=np.int64)
        if name not in self.sites:
            return round_shift(a, k)
        return (a >> k) + self.rng.integers(0, 2, a.shape)

    def lookup(self, table, a):
        return table(np.clip(np.asarray(a, dtype=np.int64), table.lo, table.hi))


def _heads():
    fhe_cfg = HeadConfig.for_fhe(16, 8, 4)
    plain = HeadConfig(8, 4, 3, score_bits=6, tlu_bits=6, out_tlu_bits=6, exp_bits=4,
                       prob_bits=3)
    return [random_head(fhe_cfg, seed=3, n_calib=12), random_head(plain, seed=4, n_calib=8)]


@pytest.fixture(scope="module")
def heads():
    return _heads()


def _admissible(head, calib, n, rng):
    """The calibration sequences, then fresh admissible inputs."""
    from zk.attention_ref import quantize_input

    xs = [quantize_input(c, head) for c in calib][:n]
    return xs + sample_inputs(head, n - len(xs), rng)


def test_exact_mode_has_zero_tolerance(heads):
    for head, _, _ in heads:
        assert not np.any(tolerance(head, ()))
        assert head.approximate == ()


def test_output_rounding_alone_costs_one_unit(heads):
    head = heads[0][0]  # for_fhe: y = r_o (identity output table)
    assert head.tables["out"].is_identity
    delta = tolerance(head, ("r_o",))
    assert delta.shape == (head.config.seq_len, head.config.d_head)
    assert np.all(delta == 1)
    lo, hi = head.bounds["y"]
    assert 1 / (hi - lo) <= 0.05  # the target: delta at most 5% of the output range


@pytest.mark.parametrize("sites", [s for n in range(1, 3)
                                   for s in itertools.combinations(ROUNDINGS, n)]
                         + [ROUNDINGS])
def test_every_flip_pattern_stays_within_delta(heads, sites):
    """Random adversarial +-1 at the approximate roundings never leaves the published band."""
    rng = np.random.default_rng(hash(sites) % 2**32)
    worst = 0
    for head, _, calib in heads:
        delta = tolerance(head, sites)
        for x in _admissible(head, calib, 6, rng):
            y = run_reference(x, head)[0]
            for _ in range(8):
                yf = attention_head(x, head, FlipOps(sites, rng))
                dev = np.abs(yf - y)
                assert np.all(dev <= delta), (sites, int(dev.max()), int(delta.max()))
                worst = max(worst, int(dev.max()))
    assert worst > 0  # the flips did reach the output: the check above could fail


def test_bound_is_attained_for_the_output_rounding(heads):
    head, _, calib = heads[0]
    rng = np.random.default_rng(5)
    seen = 0
    for x in _admissible(head, calib, 6, rng):
        y = run_reference(x, head)[0]
        yf = attention_head(x, head, FlipOps(("r_o",), rng))
        seen = max(seen, int(np.abs(yf - y).max()))
    assert seen == 1


def test_rounding_and_table_deviation_helpers():
    assert rounding_deviation(0, 3, False) == 0
    assert rounding_deviation(0, 3, True) == 1
    assert rounding_deviation(9, 3, False) == 2
    assert rounding_deviation(9, 0, True) == 10
    t = Table("t", -2, np.array([0, 0, 5, 5, 9]))
    assert table_deviation(t, -2, 2, 0) == 0
    assert table_deviation(t, -2, 2, 1) == 5
    assert table_deviation(t, -2, -2, 1) == 0  # the window at the lower end clamps
    assert table_deviation(t, -2, 2, 10) == 9


def test_unknown_or_malformed_roundings_are_refused(heads):
    head = heads[0][0]
    with pytest.raises(ValueError, match="unknown roundings"):
        dataclasses.replace(head, approximate=("r_x",))
    with pytest.raises(ValueError, match="not a string"):
        dataclasses.replace(head, approximate="r_o")
    assert dataclasses.replace(head, approximate=["r_o", "r_q", "r_o"]).approximate == (
        "r_o", "r_q")


# ------------------------------------------------------------------- the model commitment


def _commit(head: QuantizedHead):
    return am.commit(head, rng=np.random.default_rng(1))


def _roundtrip(mc):
    return from_bytes(am.ModelCommitment, to_bytes(mc))


def test_commitment_publishes_roundings_and_delta(heads):
    head = dataclasses.replace(heads[0][0], approximate=("r_o",))
    pm, mc = _commit(head)
    assert mc.approximate == ("r_o",)
    assert np.array_equal(mc.delta, tolerance(head, ("r_o",)))
    back = _roundtrip(mc)
    assert back.approximate == ("r_o",) and np.array_equal(back.delta, mc.delta)
    assert back.digest == mc.digest
    exact_pm, exact = _commit(heads[0][0])
    assert exact.approximate == () and not np.any(exact.delta)
    assert exact.digest != mc.digest  # the mode is part of what the digest names
    again = from_bytes(am.ProvingModel, to_bytes(pm))
    assert again.head.approximate == ("r_o",)


def test_commitment_with_wrong_delta_is_refused(heads):
    head = dataclasses.replace(heads[0][0], approximate=("r_o",))
    _, mc = _commit(head)
    blob = bytearray(to_bytes(mc))
    raw = np.asarray(mc.delta, dtype="<i8").tobytes()
    at = bytes(blob).find(raw)
    assert at > 0
    smaller = np.zeros_like(mc.delta).astype("<i8").tobytes()  # "exact" band, roundings approx
    blob[at: at + len(raw)] = smaller
    with pytest.raises(Exception, match="delta|tolerance"):
        from_bytes(am.ModelCommitment, bytes(blob))
    with pytest.raises(ValueError, match="tolerance"):
        dataclasses.replace(mc, delta=np.zeros_like(mc.delta))


def test_commitment_header_roundings_are_validated(heads):
    head = dataclasses.replace(heads[0][0], approximate=("r_o",))
    _, mc = _commit(head)
    blob = to_bytes(mc)
    for bad in (b'["r_x"]', b'["r_q", "r_o"]', b'"r_o"'):
        tampered = blob.replace(b'["r_o"]', bad, 1)
        assert tampered != blob
        with pytest.raises(Exception):
            from_bytes(am.ModelCommitment, tampered)


def test_exact_commitments_roundtrip(heads):
    _, mc = _commit(heads[1][0])
    back = _roundtrip(mc)
    assert back.digest == mc.digest and back.approximate == () and not np.any(back.delta)
