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
    head_prefix,
    layer_norm_like,
    quantize_head,
    quantize_input,
    random_head,
    rnd,
    rope_bounds,
    rope_float,
    rope_rotate,
    rope_tables,
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


# ---------------------------------------------------------------- GPT-2 heads are unchanged


def _witness_digest(head, x):
    import hashlib

    _, wit = run_reference(x, head)
    h = hashlib.sha256()
    for k in sorted(wit):
        h.update(k.encode())
        h.update(np.ascontiguousarray(wit[k]).astype("<i8").tobytes())
    return h.hexdigest()


def test_gpt2_style_head_witness_is_unchanged():
    """The whole witness of a GPT-2-style head (bias, no RoPE), fingerprinted before the
    Llama-style steps were added: same keys, same values."""
    head, _, _ = random_head(HeadConfig(16, 8, 5), seed=11)
    x = quantize_input(layer_norm_like(np.random.default_rng(5), (5, 16)), head)
    assert head.rope_cos is None and head.smooth is None
    assert _witness_digest(head, x) == (
        "e69e47f1a1767576925cf26a99ecf22ad5660ea6bc7f47d82cd330488a236918")


# ---------------------------------------------------------------- Llama-style heads (RoPE)


def test_rope_tables_are_quantized_rotations():
    cos, sin = rope_tables(7, 8, 10000.0, 8)
    assert cos.shape == sin.shape == (7, 4)
    assert np.all(cos[0] == 256) and np.all(sin[0] == 0)  # position 0: identity
    assert np.abs(cos).max() <= 256 and np.abs(sin).max() <= 256
    # |(cos, sin)| = 2^c up to the rounding of each entry
    assert np.all(np.abs(np.sqrt(cos**2 + sin**2) - 256) <= 1.0)
    # the integer rotation is the float RoPE at scale 2^c (transformers' rotate_half layout)
    a = np.random.default_rng(0).integers(-1000, 1000, (7, 8))
    assert np.allclose(rope_rotate(a, cos, sin) / 256, rope_float(a, 10000.0), atol=2000 / 256)
    # the rotation is C o a + S' o swap(a), entry by entry
    rot = rope_rotate(a, cos, sin)
    for i in range(7):
        for f in range(4):
            assert rot[i, f] == cos[i, f] * a[i, f] - sin[i, f] * a[i, f + 4]
            assert rot[i, f + 4] == cos[i, f] * a[i, f + 4] + sin[i, f] * a[i, f]
    lo, hi = rope_bounds(-1000, 1000, cos, sin)
    assert lo <= rot.min() and rot.max() <= hi


@pytest.mark.parametrize("L", [3, 5, 7])  # positions that are not a power of two
def test_rope_head_witness_and_accuracy(L):
    cfg = HeadConfig(32, 8, L, n_bits=8, tlu_bits=12, out_tlu_bits=12, score_bits=12,
                     exp_bits=8, prob_bits=8, rope_theta=10000.0, rope_bits=10)
    head, W, calib = random_head(cfg, seed=5, n_calib=16)
    assert head.rope_cos.shape == (L, 4)
    rng = np.random.default_rng(L)
    errs = []
    for _ in range(4):
        xf = layer_norm_like(rng, (L, 32))
        x = quantize_input(xf, head)
        y, wit = run_reference(x, head)
        for t in ("q", "k"):
            acc = x @ getattr(head, "W" + t) + getattr(head, "b" + t)
            assert np.array_equal(wit["acc_" + t], acc)
            assert np.array_equal(wit["rot_" + t], rope_rotate(acc, head.rope_cos, head.rope_sin))
            assert np.array_equal(wit["r_" + t], round_shift(wit["rot_" + t], head.shifts[t]))
            assert np.array_equal(wit[t], head.tables[t](wit["r_" + t]))
            lo, hi = head.bounds["rot_" + t]
            assert lo <= wit["rot_" + t].min() and wit["rot_" + t].max() <= hi
        assert "rot_v" not in wit
        assert np.array_equal(wit["r_v"], round_shift(wit["acc_v"], head.shifts["v"]))
        yf = float_head(xf, W["Wq"], W["Wk"], W["Wv"], W["bq"], W["bk"], W["bv"], True, 10000.0)
        errs.append(np.linalg.norm(dequantize_output(y, head) - yf) / np.linalg.norm(yf))
    assert max(errs) < 0.12, errs
    # without the rotation the head would compute something else
    yn = float_head(xf, W["Wq"], W["Wk"], W["Wv"], W["bq"], W["bk"], W["bv"], True)
    if L > 1:
        assert not np.allclose(yn, yf)


def test_rope_head_prefix_gives_the_first_rows():
    cfg = HeadConfig(16, 8, 6, rope_theta=10000.0)
    head, _, _ = random_head(cfg, seed=6)
    x = quantize_input(layer_norm_like(np.random.default_rng(2), (6, 16)), head)
    y, _ = run_reference(x, head)
    for n in (1, 3, 5):
        yp, _ = run_reference(x[:n], head_prefix(head, n))
        assert np.array_equal(yp, y[:n])
    with pytest.raises(ValueError):
        head_prefix(head, 7)


def test_rope_head_needs_its_tables():
    from dataclasses import replace

    head, _, _ = random_head(HeadConfig(16, 8, 4, rope_theta=10000.0), seed=1)
    x = np.zeros((4, 16), dtype=np.int64)
    with pytest.raises(ValueError, match="rope_cos"):
        run_reference(x, replace(head, rope_cos=head.rope_cos[:3]))
    with pytest.raises(ValueError):
        HeadConfig(16, 7, 4, rope_theta=10000.0)  # odd d_head


def test_per_channel_weights_and_smoothing():
    """Per-channel scales are integer multipliers inside W (one table per projection); the
    smoothing vector is applied by quantize_input; both keep the head close to float."""
    cfg = HeadConfig(32, 8, 5, n_bits=6, rope_theta=10000.0)
    _, W, calib = random_head(cfg, seed=7, n_calib=16)
    Wq = W["Wq"] * np.linspace(0.05, 1.0, 8)[None, :]  # columns of very different scales
    calib = calib * np.where(np.arange(32) == 3, 20.0, 1.0)  # one outlier input channel
    args = (Wq, W["Wk"], W["Wv"], W["bq"], W["bk"], W["bv"], calib, cfg)
    tensor = quantize_head(*args)
    chan = quantize_head(*args, weight_scheme="channel", channel_bits=6, smooth_alpha=0.5)
    assert tensor.smooth is None and chan.smooth.shape == (32,)
    # every column is an integer multiple M_c of a (2^(n-1)-1)-level grid
    for c in range(8):
        col = chan.Wq[:, c]
        m = np.gcd.reduce(np.abs(col[col != 0]))
        assert np.abs(col // m).max() <= 31
    # quantize_input divides by the smoothing factors first
    xf = calib[0]
    manual = np.clip(rnd(xf / chan.smooth / chan.scales["x"]), -31, 31)
    assert np.array_equal(quantize_input(xf, chan), manual)
    errs = {}
    for name, h in (("tensor", tensor), ("channel", chan)):
        e = []
        for xs in calib[8:]:
            y, _ = run_reference(quantize_input(xs, h), h)
            yf = float_head(xs, *args[:6], True, 10000.0)
            e.append(np.linalg.norm(dequantize_output(y, h) - yf) / np.linalg.norm(yf))
        errs[name] = np.mean(e)
    assert errs["channel"] < errs["tensor"], errs


def test_gptq_rounding_lowers_the_output_error():
    """GPTQ keeps every weight on its grid and in range, and its output error on the calibration
    inputs is below round-to-nearest's; a head quantized with it runs and is provable."""
    from zk import attention_ref as R

    rng = np.random.default_rng(4)
    X = rng.normal(0, 1, (256, 32)) @ rng.normal(0, 1, (32, 32))  # correlated channels
    W = rng.normal(0, 0.1, (32, 8))
    steps = np.abs(W).max(axis=0) / 7
    Q = R._gptq_round(W, steps, 7, X)
    near = np.clip(R.rnd(W / steps), -7, 7)
    assert np.abs(Q).max() <= 7 and Q.dtype == np.int64
    err = lambda q: np.linalg.norm(X @ W - X @ (q * steps))  # noqa: E731
    assert err(Q) < 0.8 * err(near)
    cfg = R.HeadConfig(d_model=16, d_head=4, seq_len=4, rope_theta=10000.0, rope_bits=6)
    _, Wf, calib = R.random_head(cfg, seed=3, n_calib=8)
    head = R.quantize_head(Wf["Wq"], Wf["Wk"], Wf["Wv"], 0 * Wf["bq"], 0 * Wf["bk"], 0 * Wf["bv"],
                           calib, cfg, weight_scheme="channel", smooth_alpha=0.7, gptq=True)
    x = R.quantize_input(calib[0], head)
    y, _ = R.run_reference(x, head)
    from zk import attention_model as am
    from zk.head import zkattn
    pm, mc = am.commit(head)
    assert np.array_equal(zkattn.verify_bytes(zkattn.prove(pm, x).to_bytes(), mc).y, y)
