"""Approximate compilation mode: fewer bootstraps, outputs within the published tolerance.

Exact mode stays bit-exact (simulate == reference); approximate mode's simulate and a real
encrypted run stay within ``zk.tolerance`` of the reference; the noise model (fhe.noise) is
checked against real runs in the slow test.
"""


import numpy as np
import pytest

pytest.importorskip("concrete.fhe")

from fhe import noise  # noqa: E402
from fhe.compile import approximate_head, compile_head, fhe_stats, make_inputset  # noqa: E402
from zk.attention_ref import HeadConfig, random_head, run_reference, sample_inputs  # noqa: E402
from zk.tolerance import tolerance  # noqa: E402


def _inputs(head, calib, n, seed=0):
    """The calibration sequences, then fresh admissible inputs."""
    xs = list(make_inputset(head, calib))[:n]
    return xs + sample_inputs(head, n - len(xs), np.random.default_rng(seed))


@pytest.fixture(scope="module")
def small():
    """A small head in the large-head configuration (HeadConfig.for_fhe), both modes."""
    head, _, calib = random_head(HeadConfig.for_fhe(12, 4, 3), seed=2, n_calib=12)
    inputset = make_inputset(head, calib)
    exact = compile_head(head, inputset)
    ahead = approximate_head(head)
    approx = compile_head(ahead, inputset)
    return head, ahead, calib, exact, approx


def test_for_fhe_exact_mode_is_bit_exact(small):
    head, _, calib, exact, _ = small
    for x in _inputs(head, calib, 12):
        assert np.array_equal(exact.simulate(x), run_reference(x, head)[0])


def test_approximate_mode_is_cheaper_and_within_delta(small):
    head, ahead, calib, exact, approx = small
    assert ahead.approximate == ("r_o",)
    assert fhe_stats(approx)["pbs"] < fhe_stats(exact)["pbs"]
    delta = tolerance(ahead, ahead.approximate)
    assert np.all(delta == 1)
    devs = []
    for x in _inputs(head, calib, 24, seed=1):
        d = np.abs(approx.simulate(x) - run_reference(x, head)[0])
        assert np.all(d <= delta)
        devs.append(int(d.max()))
    assert max(devs) <= 1


def test_noise_model_stays_within_delta_and_flips_only_near_ties(small):
    head, ahead, calib, _, approx = small
    sigmas = noise.rounding_sigmas(approx)
    assert set(sigmas) == {"r_o"} and 0 < sigmas["r_o"] < 0.5
    delta = tolerance(ahead, ahead.approximate)
    rng = np.random.default_rng(3)
    for x in _inputs(head, calib, 10, seed=2):
        y = run_reference(x, head)[0]
        assert np.all(np.abs(noise.run_noisy(x, ahead, sigmas, rng) - y) <= delta)
    # huge noise: the model flips about half of the roundings, never by more than one
    big = noise.run_noisy(x, ahead, {"r_o": 1e6}, rng)
    assert np.all(np.abs(big - y) <= 1) and np.any(big != y)


def test_real_approximate_run_within_delta():
    """One real encrypted run of a tiny approximate head: decrypts within delta."""
    cfg = HeadConfig.for_fhe(4, 2, 2, n_bits=3, out_tlu_bits=5)
    head, _, calib = random_head(cfg, seed=1, n_calib=16)
    head = approximate_head(head)
    inputset = make_inputset(head, calib)
    circuit = compile_head(head, inputset)
    circuit.keygen()
    delta = tolerance(head, head.approximate)
    for x in inputset[:2]:
        y = circuit.decrypt(circuit.run(circuit.encrypt(x)))
        assert np.all(np.abs(y - run_reference(x, head)[0]) <= delta)


def test_noise_model_rounds_exactly_without_noise_and_flips_next_to_ties():
    from zk.attention_ref import NumpyOps, round_shift

    a = np.arange(-64, 64)
    ops = noise.NoisyOps({"r_o": 1e-12}, np.random.default_rng(0))
    assert np.array_equal(ops.round_shift(a, 3, -64, 63, "r_o"), round_shift(a, 3))
    p = noise.flip_probability(a, 3, 0.05)
    r = a % 8
    assert np.all(p[(r == 3) | (r == 4)] > 0.1)  # a sixteenth of a unit from the boundary
    assert np.all(p[(r != 3) & (r != 4)] < 0.01)
    assert not np.any(noise.flip_probability(a, 3, 0.0))
    assert isinstance(ops, NumpyOps)


@pytest.mark.slow
def test_noise_model_matches_real_runs():
    """The number of off-by-one outputs in real runs of an approximate head against the noise
    model's expectation on the same inputs (sum of flip probabilities; a 4-sigma band)."""
    cfg = HeadConfig.for_fhe(16, 4, 6)
    head, _, calib = random_head(cfg, seed=5, n_calib=16)
    head = approximate_head(head)
    inputset = make_inputset(head, calib)
    circuit = compile_head(head, inputset)
    circuit.keygen()
    sigma = noise.rounding_sigmas(circuit)["r_o"]
    delta = tolerance(head, head.approximate)
    real = expected = var = 0.0
    for x in _inputs(head, calib, 6, seed=4):
        y, w = run_reference(x, head)
        got = circuit.decrypt(circuit.run(circuit.encrypt(x)))
        assert np.all(np.abs(got - y) <= delta)
        real += int(np.count_nonzero(got != y))
        p = noise.flip_probability(w["o2"], head.shifts["out"], sigma)
        expected += float(p.sum())
        var += float((p * (1 - p)).sum())
    assert abs(real - expected) <= 4 * np.sqrt(var) + 1, (real, expected, var)


def test_gpt2_size_for_fhe_head_keeps_tables_at_six_bits_and_keys_small():
    """Compile only: the GPT-2-size head (768 -> 64, L = 6) of HeadConfig.for_fhe has no table
    wider than 6 bits (one 7-bit table brings a ~1 GB bootstrap key) and its evaluation keys
    stay under 2 GB in memory (5.3 GB with 7-bit tables and uncapped keyswitch levels)."""
    base, _, calib = random_head(HeadConfig.for_fhe(768, 64, 6), seed=1, n_calib=16)
    st = fhe_stats(compile_head(approximate_head(base), make_inputset(base, calib)))
    assert st["max_tlu_input_bits"] <= 6
    assert st["size_of_bootstrap_keys"] + st["size_of_keyswitch_keys"] <= 2e9
