"""Text generation with one private head: SmolLM2 with a head replaced by the integer head.

``private_head(model, tok, layer, head, n_bits, seq_len)`` quantizes one head of a Llama-style
model (static scales from real text, ``calibration_windows``); ``head_origin`` names it in its
commitment; ``canary_windows`` draws a client's canary pool for it (the same layer's activations
on other real text, windows at offsets from the OS CSPRNG); ``greedy`` decodes with the float
model or with that head replaced by the integer reference (``zk.attention_ref``: the exact
function the FHE circuit computes and the proof proves), the rest of the model in float.
Decoding recomputes the whole sequence at every step (no key/value cache), so the integer head
always sees positions 0..n-1 of a causal head (``head_prefix``).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path

import numpy as np

from pipeline.llm_text import SMOLLM2  # the model's name in a commitment's origin
from zk.attention_ref import (
    HeadConfig,
    QuantizedHead,
    dequantize_output,
    head_prefix,
    quantize_input,
    run_reference,
)

LICENSES = Path("/usr/share/common-licenses")
CALIBRATION_TEXTS = ("Apache-2.0", "MPL-2.0", "Artistic")  # real prose nobody here wrote
CANARY_TEXTS = ("GPL-2", "LGPL-2.1")
# Llama-style heads: per-channel weights with SmoothQuant smoothing, rounded by GPTQ on the
# quantized calibration inputs (bench/accuracy.py; one head of layer 0 at 4 bits: 94.7% top-1
# agreement with round-to-nearest, 95.9% with GPTQ; at 8 bits 99.3%)
LLAMA_SCHEMES = {
    "tensor": dict(weight_scheme="tensor"),
    "channel": dict(weight_scheme="channel", smooth_alpha=0.7, gptq=True),
}


def head_config(d_model: int, d_head: int, seq_len: int, n_bits: int, rope_theta: float | None,
                causal: bool = True, **kw) -> HeadConfig:
    """The table widths used for real models at n_bits (bench/accuracy.py): tlu max(8, n+4),
    score max(10, n+6), exp max(6, n+2), prob max(4, n), rope n+4."""
    cfg = dict(n_bits=n_bits, causal=causal, tlu_bits=max(8, n_bits + 4),
               out_tlu_bits=max(8, n_bits + 4), score_bits=max(10, n_bits + 6),
               exp_bits=max(6, n_bits + 2), prob_bits=max(4, n_bits), rope_theta=rope_theta,
               rope_bits=n_bits + 4)
    cfg.update(kw)
    return HeadConfig(d_model, d_head, seq_len, **cfg)


def text(names=CALIBRATION_TEXTS) -> str:
    """Real English prose: license texts of a Debian system (FileNotFoundError if absent)."""
    parts = []
    for n in names:
        p = LICENSES / n
        if not p.is_file():
            raise FileNotFoundError(f"{p} is missing (Debian's base-files ships it)")
        parts.append(p.read_text())
    return "\n".join(parts)


def token_windows(tok, prose: str, seq_len: int, n: int) -> np.ndarray:
    """Up to n consecutive windows of seq_len tokens of the prose: (n, seq_len) int64."""
    ids = np.asarray(tok(prose)["input_ids"], dtype=np.int64)
    k = min(n, len(ids) // seq_len)
    if k == 0:
        raise ValueError("the text is shorter than one window")
    return ids[: k * seq_len].reshape(k, seq_len)


def calibration_windows(model, tok, layer: int, seq_len: int, n: int = 32,
                        names=CALIBRATION_TEXTS) -> np.ndarray:
    """The activations entering `layer`'s attention on n windows of real text (n, L, d)."""
    import torch

    from fhe.hf_models import head_inputs

    ids = torch.as_tensor(token_windows(tok, text(names), seq_len, n))
    return head_inputs(model, layer, {"input_ids": ids})


def canary_windows(model, tok, layer: int, seq_len: int, n: int = 64,
                   names=CANARY_TEXTS) -> np.ndarray:
    """A client's canary pool: the activations entering ``layer``'s attention on n windows of
    seq_len tokens of real text (n, L, d), each window starting at an offset drawn by the OS
    CSPRNG (with replacement). The texts (CANARY_TEXTS) are not the calibration texts, so the
    pool is drawn like a real query is: real prose the head was not calibrated on; the random
    offsets make each client's pool its own sample rather than one fixed list of windows."""
    import torch

    from fhe.hf_models import head_inputs

    if n < 1 or seq_len < 1:
        raise ValueError("a canary pool needs n >= 1 windows of seq_len >= 1 tokens")
    ids = np.asarray(tok(text(names))["input_ids"], dtype=np.int64)
    if len(ids) < seq_len:
        raise ValueError(f"the canary text has {len(ids)} tokens, fewer than one window of "
                         f"{seq_len}")
    starts = [secrets.randbelow(len(ids) - seq_len + 1) for _ in range(n)]
    windows = np.stack([ids[s: s + seq_len] for s in starts])
    return np.concatenate([head_inputs(model, layer, {"input_ids": torch.as_tensor(chunk)})
                           for chunk in np.array_split(windows, -(-n // 16))])


def head_origin(model, layer: int, head: int, name: str = SMOLLM2) -> dict:
    """The public ``origin`` of a committed head of a Llama-style model: the model's name, the
    layer, the query head and its key/value head (grouped-query attention). A client reads it
    to build its canary pool (pipeline.canaries.pool_for)."""
    cfg = model.config
    kv = head // (cfg.num_attention_heads // cfg.num_key_value_heads)
    return {"model": name, "layer": int(layer), "head": int(head), "kv_head": int(kv)}


def private_head(model, tok, layer: int, head: int, n_bits: int, seq_len: int,
                 scheme: str = "channel", calib=None, **cfg_kw) -> QuantizedHead:
    """One head of the model quantized to the integer reference, calibrated on real text."""
    from fhe.hf_models import head_weights, quantize_model_head

    fh = head_weights(model, layer, head)
    cfg = head_config(fh.d_model, fh.d_head, seq_len, n_bits, fh.rope_theta, fh.causal, **cfg_kw)
    if calib is None:
        calib = calibration_windows(model, tok, layer, seq_len)
    q, _ = quantize_model_head(model, layer, head, calib, cfg, **LLAMA_SCHEMES[scheme])
    return q


def integer_head_fn(head: QuantizedHead) -> Callable[[np.ndarray], np.ndarray]:
    """x (n, d_model) float -> the dequantized integer head's output (n, d_head), n <= L."""

    def f(x: np.ndarray) -> np.ndarray:
        h = head if len(x) == head.config.seq_len else head_prefix(head, len(x))
        y, _ = run_reference(quantize_input(x, h), h)
        return dequantize_output(y, h)

    return f


def greedy(model, tok, prompt: str, max_new: int, heads: dict | None = None,
           progress: Callable[[int, int], None] | None = None) -> tuple[str, list[int]]:
    """Greedy decoding (no cache): (generated text, generated token ids). heads:
    {(layer, head): f} replaced while decoding (fhe.hf_models.replace_heads)."""
    import contextlib

    import torch

    from fhe.hf_models import replace_heads

    ids = tok(prompt, return_tensors="pt")["input_ids"]
    new: list[int] = []
    ctx = replace_heads(model, heads) if heads else contextlib.nullcontext()
    with torch.no_grad(), ctx:
        for i in range(max_new):
            nxt = int(model(input_ids=ids).logits[0, -1].argmax())
            new.append(nxt)
            ids = torch.cat([ids, torch.tensor([[nxt]])], dim=1)
            if progress is not None:
                progress(i + 1, max_new)
            if nxt == tok.eos_token_id:
                break
    return tok.decode(new, skip_special_tokens=True), new
