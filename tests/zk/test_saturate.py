"""HeadConfig(bounds_mode="saturate"): calibrated grids on certified intervals. No input the
client can form (``quantize_input`` of any float activations) is refused; inputs the calibrated
head accepts give the same outputs; an input far outside the calibration is proven and verifies,
and a changed output is rejected."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from zk import attention_model as am
from zk.attention_ref import (
    FHE_FRIENDLY,
    BoundsViolation,
    HeadConfig,
    quantize_input,
    random_head,
    run_reference,
)
from zk.errors import VerificationError
from zk.head import zkattn

CONFIGS = [
    dict(d_model=16, d_head=8, seq_len=4),
    dict(d_model=16, d_head=8, seq_len=4, rope_theta=10000.0),
    dict(d_model=24, d_head=8, seq_len=5, rope_theta=10000.0, **FHE_FRIENDLY),
]


def _pair(kw, seed=3):
    cal, _, calib = random_head(HeadConfig(**kw), seed=seed)
    sat, _, _ = random_head(HeadConfig(**kw, bounds_mode="saturate"), seed=seed)
    return cal, sat, calib


def wild_inputs(head, n: int, seed: int) -> list[np.ndarray]:
    """Float activations unlike the calibration's: huge, aligned with a weight column,
    constant, one outlier channel; quantized as a client quantizes them."""
    cfg = head.config
    rng = np.random.default_rng(seed)
    L, d = cfg.seq_len, cfg.d_model
    xs = [rng.normal(0, 50, (L, d)), np.full((L, d), 1e6), np.full((L, d), -3.0),
          np.tile(np.sign(head.Wq[:, 0]) * 1e3, (L, 1)),
          np.tile(np.sign(head.Wk[:, 1]) * -1e3, (L, 1))]
    spike = np.zeros((L, d))
    spike[:, 0] = 1e9
    xs.append(spike)
    xs += [rng.standard_cauchy((L, d)) * 10 for _ in range(n)]
    return [quantize_input(x, head) for x in xs]


@pytest.mark.parametrize("kw", CONFIGS, ids=["plain", "rope", "rope-for-fhe"])
def test_saturate_never_refuses_and_agrees_with_calibrated(kw):
    cal, sat, calib = _pair(kw)
    assert sat.shifts == cal.shifts  # the same grids
    assert sat.config.x_norm2_bound is not None
    refused = 0
    for x in wild_inputs(sat, 20, seed=1):
        y, _ = run_reference(x, sat)  # never raises
        lo, hi = sat.bounds["y"]
        assert lo <= y.min() and y.max() <= hi
        try:
            run_reference(x, cal)
        except BoundsViolation:
            refused += 1
    assert refused > 0  # the calibrated head refuses some of these: the test can fail
    # inside the calibrated intervals, saturation changes nothing
    same = 0
    for c in calib:
        x = quantize_input(c, sat)
        try:
            y_cal, _ = run_reference(x, cal)
        except BoundsViolation:
            continue
        assert np.array_equal(run_reference(x, sat)[0], y_cal)
        same += 1
    assert same > 0


def test_saturated_projection_is_clipped_not_wrapped():
    cal, sat, _ = _pair(CONFIGS[1])
    x = quantize_input(np.tile(np.sign(sat.Wq[:, 0]) * 1e3, (4, 1)), sat)
    _, w = run_reference(x, sat)
    aq = (1 << (sat.config.a_bits - 1)) - 1
    assert np.abs(w["q"]).max() == aq  # saturated at the table's clip
    assert w["r_q"].max() > cal.bounds["r_q"][1] or w["r_q"].min() < cal.bounds["r_q"][0]


def test_far_input_proven_and_verified():
    _, sat, _ = _pair(CONFIGS[1])
    pm, mc = am.commit(sat, rng=np.random.default_rng(0))
    x = wild_inputs(sat, 0, seed=2)[3]
    proof = zkattn.prove(pm, x)
    back = zkattn.verify_bytes(proof.to_bytes(), mc)
    assert np.array_equal(back.y, run_reference(x, sat)[0])
    y = proof.y.copy()
    y[0, 0] += 1
    with pytest.raises(VerificationError):
        zkattn.verify(replace(proof, y=y), mc)


def test_saturate_commitment_roundtrip_keeps_mode():
    _, sat, _ = _pair(CONFIGS[0])
    _, mc = am.commit(sat, rng=np.random.default_rng(0))
    from zk.encoding import from_bytes, to_bytes

    back = from_bytes(am.ModelCommitment, to_bytes(mc))
    assert back.config.bounds_mode == "saturate"
    assert back.config.x_norm2_bound == sat.config.x_norm2_bound


def test_saturated_scores_proof_rejects_tampering_and_an_unclipped_statement():
    import zkutil as U

    _, sat, _ = _pair(CONFIGS[2])
    assert "r_raw" in sat.bounds
    pm, mc = am.commit(sat, rng=np.random.default_rng(1))
    x = wild_inputs(sat, 6, seed=4)[11]
    _, w = run_reference(x, sat)
    assert (w["r_raw"] != w["r_s"]).any()  # this input's scores do saturate
    proof = zkattn.prove(pm, x)
    zkattn.verify(proof, mc)
    n = 0
    for what, bad in U.tampered(proof.stream, max_points=20, seed=2):
        if what.startswith("scalar") and what[7:].isdigit() and int(what[7:]) % 7:
            continue
        with pytest.raises(VerificationError):
            zkattn.verify(replace(proof, stream=bad), mc)
        n += 1
    assert n > 20
    # the same head without the clip (its scores' window widened to their whole interval) is
    # another statement: this proof does not verify against it
    wide = dict(sat.bounds, r_s=sat.bounds["r_raw"])
    from dataclasses import replace as dreplace

    other = dreplace(mc, bounds=wide)
    with pytest.raises((VerificationError, ValueError)):
        zkattn.verify(proof, other)
