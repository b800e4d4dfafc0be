"""The integer reference head (numpy only): conventions, shapes, bounds, accuracy."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from zk.attention_ref import (
    BoundsViolation,
    HeadConfig,
    Table,
    causal_cols,
    dequantize_output,
    float_head,
    layer_norm_like,
    quantize_head,
    quantize_input,
    random_head,
    rnd,
    round_shift,
    run_reference,
)


def test_zk_reference_imports_no_heavy_modules():
    import zk.attention_ref as ref

    src = open(ref.__file__).read()
    for mod in ("concrete", "torch", "fhe", "pipeline"):
        assert f"import {mod}" not in src and f"from {mod}" not in src


# ---------------------------------------------------------------- rounding convention


def test_round_shift_ties_go_up_also_for_negatives():
    # rs(a, 1) = floor((a + 1) / 2)
    a = np.array([-5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5])
    assert round_shift(a, 1).tolist() == [-2, -2, -1, -1, 0, 0, 1, 1, 2, 2, 3]
    # ties at k = 2: -6/4 = -1.5 -> -1, -2/4 = -0.5 -> 0, 2/4 -> 1, 6/4 -> 2
    assert round_shift(np.array([-6, -2, 2, 6]), 2).tolist() == [-1, 0, 1, 2]
    assert round_shift(np.array([-7, -5, 5, 7]), 2).tolist() == [-2, -1, 1, 2]
    assert round_shift(np.array([3, -3]), 0).tolist() == [3, -3]
    assert round_shift(-6, 2) == -1 and round_shift(6, 2) == 2


@given(st.integers(-(2**40), 2**40), st.integers(0, 20))
def test_round_shift_matches_floor_formula(a, k):
    expect = a if k == 0 else math.floor((a + 2 ** (k - 1)) / 2**k)
    assert round_shift(a, k) == expect
    assert int(round_shift(np.array([a]), k)[0]) == expect


def test_rnd_is_half_up():
    assert rnd([-1.5, -0.5, 0.5, 1.5, 2.49]).tolist() == [-1, 0, 1, 2, 2]


def test_table_domain_is_enforced():
    t = Table("t", -2, np.array([4, 1, 0, 1, 4]))
    assert t(np.array([-2, 0, 2])).tolist() == [4, 0, 4]
    with pytest.raises(BoundsViolation):
        t(np.array([3]))
    with pytest.raises(BoundsViolation):
        t(np.array([-3]))


# ---------------------------------------------------------------- the head


CONFIGS = [
    HeadConfig(16, 8, 4),
    HeadConfig(32, 8, 5, causal=False),
    HeadConfig(64, 16, 7, n_bits=6),
]


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"{c.d_model}x{c.d_head}L{c.seq_len}")
def test_shapes_witness_and_determinism(cfg):
    head, W, calib = random_head(cfg, seed=2)
    rng = np.random.default_rng(0)
    x = quantize_input(layer_norm_like(rng, (cfg.seq_len, cfg.d_model)), head)
    y, wit = run_reference(x, head)
    y2, _ = run_reference(x.copy(), head)
    assert y.shape == (cfg.seq_len, cfg.d_head) and y.dtype == np.int64
    assert np.array_equal(y, y2)
    L = cfg.seq_len
    for name in ("acc_q", "r_q", "q", "k", "v"):
        assert wit[name].shape == (L, cfg.d_head)
    for name in ("z", "r_s", "d", "c", "e", "u", "p"):
        assert wit[name].shape == (L, L)
        assert np.all(wit[name][~wit["mask"]] == 0)
    for name in ("m", "S", "l", "psq"):
        assert wit[name].shape == (L,)
    assert wit["o2"].shape == (L, cfg.d_head)
    # the witness is consistent with its defining relations
    q, k, v = wit["q"], wit["k"], wit["v"]
    zfull = 2 * q @ k.T + np.sum(q * q, axis=1)[:, None]
    assert np.array_equal(wit["z"][wit["mask"]], zfull[wit["mask"]])
    assert np.array_equal(wit["r_s"], np.where(wit["mask"], round_shift(wit["z"], head.shifts["score"]), 0))
    rs_masked = np.where(wit["mask"], wit["r_s"], np.iinfo(np.int64).min)
    assert np.array_equal(wit["m"], rs_masked.max(axis=1))
    assert np.array_equal(wit["S"], wit["e"].sum(axis=1))
    assert np.array_equal(wit["o2"], 2 * wit["p"] @ v)
    assert np.array_equal(wit["y"], head.tables["out"](round_shift(wit["o2"], head.shifts["out"])))
    assert np.array_equal(wit["q"], head.tables["q"](round_shift(x @ head.Wq + head.bq, head.shifts["q"])))
    # every static interval holds
    for name, (lo, hi) in head.bounds.items():
        if name in wit and name not in ("z", "r_s", "d", "c", "e", "u", "p"):
            assert wit[name].min() >= lo and wit[name].max() <= hi, name


def test_causal_mask_effect():
    cfg = HeadConfig(32, 8, 5, causal=True)
    head, W, calib = random_head(cfg, seed=3)
    rng = np.random.default_rng(1)
    xf = layer_norm_like(rng, (5, 32))
    x = quantize_input(xf, head)
    y, wit = run_reference(x, head)
    assert np.array_equal(wit["mask"], np.tril(np.ones((5, 5), dtype=bool)))
    assert all(causal_cols(i, 5, True) == i + 1 for i in range(5))
    # changing a later token never changes an earlier output row
    x2 = x.copy()
    x2[3:] = quantize_input(layer_norm_like(rng, (2, 32)), head)
    y2, _ = run_reference(x2, head)
    assert np.array_equal(y[:3], y2[:3])
    # row 0 attends only to itself: p = 2^P exactly (up to the table's clip)
    assert wit["p"][0, 0] == 2**cfg.prob_bits and np.all(wit["p"][0, 1:] == 0)
    # the non-causal head on the same weights differs on early rows
    enc = quantize_head(W["Wq"], W["Wk"], W["Wv"], W["bq"], W["bk"], W["bv"], calib,
                        HeadConfig(32, 8, 5, causal=False))
    _, wit_e = run_reference(x, enc)
    assert wit_e["mask"].all()


def _rel_errs(cfg, seeds=range(3), n_inputs=4):
    errs = []
    for seed in seeds:
        head, W, calib = random_head(cfg, seed=seed, n_calib=16)
        rng = np.random.default_rng(100 + seed)
        for _ in range(n_inputs):
            xf = layer_norm_like(rng, (cfg.seq_len, cfg.d_model))
            y, _ = run_reference(quantize_input(xf, head), head)
            yf = float_head(xf, W["Wq"], W["Wk"], W["Wv"], W["bq"], W["bk"], W["bv"], cfg.causal)
            errs.append(np.linalg.norm(dequantize_output(y, head) - yf) / np.linalg.norm(yf))
    return np.array(errs)


# Stated bounds on ||y_quantized - y_float|| / ||y_float|| (Frobenius, per input) for random
# GPT-2-like heads on LayerNorm-like activations: 8 bits everywhere <= 0.12 (mean <= 0.06);
# 4 bits (the FHE setting) <= 0.75 (mean <= 0.5): every tensor carries 15 levels only.
@pytest.mark.parametrize("causal", [True, False])
def test_quantized_head_close_to_float_8_bits(causal):
    cfg = HeadConfig(64, 16, 6, n_bits=8, causal=causal, tlu_bits=12, out_tlu_bits=12,
                     score_bits=12, exp_bits=8, prob_bits=8)
    e = _rel_errs(cfg)
    assert e.max() <= 0.12 and e.mean() <= 0.06, e


def test_quantized_head_close_to_float_4_bits():
    e = _rel_errs(HeadConfig(64, 16, 6))
    assert e.max() <= 0.75 and e.mean() <= 0.5, e


def test_more_bits_is_more_accurate():
    e4 = _rel_errs(HeadConfig(64, 16, 6), seeds=[0]).mean()
    e6 = _rel_errs(HeadConfig(64, 16, 6, n_bits=6, score_bits=10), seeds=[0]).mean()
    e8 = _rel_errs(HeadConfig(64, 16, 6, n_bits=8, tlu_bits=12, out_tlu_bits=12, score_bits=12,
                              exp_bits=8, prob_bits=8), seeds=[0]).mean()
    assert e8 < e6 < e4


# ---------------------------------------------------------------- input domain and bounds


def test_inputs_are_validated():
    cfg = HeadConfig(16, 8, 4)
    head, _, _ = random_head(cfg)
    with pytest.raises(ValueError):
        run_reference(np.zeros((3, 16), dtype=np.int64), head)
    with pytest.raises(TypeError):
        run_reference(np.zeros((4, 16)), head)
    x = np.zeros((4, 16), dtype=np.int64)
    x[0, 0] = 8  # outside [-7, 7]
    with pytest.raises(BoundsViolation):
        run_reference(x, head)


def test_calibrated_bounds_reject_out_of_distribution_inputs():
    cfg = HeadConfig(16, 8, 4)
    head, _, _ = random_head(cfg)
    rng = np.random.default_rng(0)
    hits = 0
    for _ in range(20):
        x = rng.integers(-7, 8, (4, 16))
        try:
            run_reference(x, head)
        except BoundsViolation:
            hits += 1
    assert hits > 0  # uniform noise is far outside the LayerNorm-like calibration range


def test_certified_bounds_hold_for_every_input():
    cfg = HeadConfig(16, 8, 3, bounds_mode="certified", score_bits=12)
    head, _, _ = random_head(cfg)
    rng = np.random.default_rng(0)
    xs = [rng.integers(-7, 8, (3, 16)) for _ in range(30)]
    xs += [np.full((3, 16), 7), np.full((3, 16), -7), np.sign(head.Wq[:, :1].T).repeat(3, 0) * 7]
    for x in xs:
        run_reference(x, head)  # never raises


def test_norm_bound_is_enforced_and_tightens_bounds():
    base = HeadConfig(64, 8, 3, bounds_mode="certified")
    normed = HeadConfig(64, 8, 3, bounds_mode="certified", x_norm2_bound=64 * 4)
    h1, _, _ = random_head(base)
    h2, _, _ = random_head(normed)
    assert h2.bounds["acc_q"][1] < h1.bounds["acc_q"][1]
    with pytest.raises(BoundsViolation):
        run_reference(np.full((3, 64), 7), h2)
