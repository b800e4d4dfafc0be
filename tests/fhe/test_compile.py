"""The FHE circuit is the traced integer reference: simulate == reference, and one real run."""

import numpy as np
import pytest

pytest.importorskip("concrete.fhe")

from fhe.compile import compile_head, fhe_stats, make_inputset  # noqa: E402
from zk.attention_ref import (  # noqa: E402
    BoundsViolation,
    HeadConfig,
    layer_norm_like,
    quantize_input,
    random_head,
    run_reference,
)

TINY = dict(n_bits=3, score_bits=5, tlu_bits=5, out_tlu_bits=5, exp_bits=3, prob_bits=3)

SIM_CONFIGS = [
    HeadConfig(8, 4, 3, score_bits=6, tlu_bits=6, out_tlu_bits=6, exp_bits=4, prob_bits=3),
    HeadConfig(12, 4, 3, causal=False, score_bits=6, tlu_bits=6, out_tlu_bits=6, exp_bits=4,
               prob_bits=3),
    HeadConfig(16, 8, 4),
    # Llama-style: RoPE on q and k, 5 positions (not a power of two)
    HeadConfig(12, 4, 5, score_bits=6, tlu_bits=6, out_tlu_bits=6, exp_bits=4, prob_bits=3,
               rope_theta=10000.0, rope_bits=6),
]


def _inputs(head, n, seed):
    """Admissible inputs: LayerNorm-like activations and the extreme inputs the bounds accept."""
    cfg = head.config
    rng = np.random.default_rng(seed)
    xs = [quantize_input(layer_norm_like(rng, (cfg.seq_len, cfg.d_model)) * s, head)
          for s in np.linspace(0.5, 1.6, n)]
    ok = []
    for x in xs:
        try:
            run_reference(x, head)
            ok.append(x)
        except BoundsViolation:
            pass
    assert len(ok) >= n // 2
    return ok


@pytest.mark.parametrize("cfg", SIM_CONFIGS,
                         ids=lambda c: f"{c.d_model}x{c.d_head}L{c.seq_len}{'c' if c.causal else 'e'}"
                         f"{'-rope' if c.rope else ''}")
def test_simulate_equals_reference(cfg):
    head, _, calib = random_head(cfg, seed=4, n_calib=16)
    circuit = compile_head(head, make_inputset(head, calib), fhe_execution=False)
    n = 12 if cfg.d_model < 16 else 6
    for x in _inputs(head, n, seed=7):
        assert np.array_equal(circuit.simulate(x), run_reference(x, head)[0])
    st = fhe_stats(circuit)
    assert st["pbs"] > 0 and st["global_p_error"] <= 1e-9
    # a RoPE head's rounding acts on the rotated accumulator (2^rope_bits wider): the shift
    # after round_bit_pattern is nominally as wide, though only its kept bits are looked up
    assert st["max_tlu_input_bits"] <= (12 + cfg.rope_bits if cfg.rope else 12)


def test_certified_mode_simulates_uniform_inputs():
    cfg = HeadConfig(6, 2, 2, bounds_mode="certified", **TINY)
    head, _, calib = random_head(cfg, seed=1, n_calib=4)
    circuit = compile_head(head, make_inputset(head, calib), fhe_execution=False)
    rng = np.random.default_rng(0)
    xs = [rng.integers(-3, 4, (2, 6)) for _ in range(10)] + [np.full((2, 6), 3), np.full((2, 6), -3)]
    for x in xs:
        assert np.array_equal(circuit.simulate(x), run_reference(x, head)[0])


@pytest.mark.parametrize("extra", [{}, dict(rope_theta=10000.0, rope_bits=5)],
                         ids=["plain", "rope"])
def test_saturate_mode_simulates_inputs_far_outside_calibration(extra):
    """bounds_mode="saturate": the circuit's widths hold for every input a client can form, and
    the saturated values are the reference's, bit for bit."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "zk"))
    from test_saturate import wild_inputs

    cfg = HeadConfig(6, 2, 3, bounds_mode="saturate", calibrate_sums=True, out_table=False,
                     **TINY, **extra)
    head, _, calib = random_head(cfg, seed=1, n_calib=8)
    circuit = compile_head(head, make_inputset(head, calib), fhe_execution=False)
    for x in wild_inputs(head, 6, seed=3):
        assert np.array_equal(circuit.simulate(x), run_reference(x, head)[0])


def test_causal_skipping_reduces_pbs():
    kw = dict(score_bits=6, tlu_bits=6, out_tlu_bits=6, exp_bits=4, prob_bits=3)
    counts = {}
    for causal in (True, False):
        head, _, calib = random_head(HeadConfig(8, 4, 4, causal=causal, **kw), seed=2)
        c = compile_head(head, make_inputset(head, calib), fhe_execution=False)
        counts[causal] = c.programmable_bootstrap_count
    assert counts[True] < counts[False]


@pytest.mark.slow
def test_real_encrypt_run_decrypt_tiny():
    """A real TFHE evaluation on the circuit object, MULTI parameters (the default suite's real
    run is the serialized client/server one in test_session.py)."""
    cfg = HeadConfig(4, 2, 2, **TINY)
    head, _, calib = random_head(cfg, seed=1, n_calib=16)
    inputset = make_inputset(head, calib)
    circuit = compile_head(head, inputset, parameter_selection_strategy="multi")
    circuit.keygen()
    x = inputset[0]
    out = circuit.run(circuit.encrypt(x))
    assert np.array_equal(circuit.decrypt(out), run_reference(x, head)[0])
    st = fhe_stats(circuit, output=out)
    assert 0 < st["evaluation_key_bytes"] < st["size_of_bootstrap_keys"] + st["size_of_keyswitch_keys"]
    assert st["input_ciphertext_bytes"] > 0 and st["output_ciphertext_bytes"] >= st["size_of_outputs"]
