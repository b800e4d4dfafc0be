"""Where canaries come from.

The protocol's guarantee is stated over the canary distribution: a server that corrupts the
outputs of an input set S is caught with probability about 1 - (1 - p_S)^k per session, p_S
being the chance that a canary lands in S. So canaries must look like real queries. The default
source draws them from a pool of the model's own activations on real text (the head's input
activations, recorded with :func:`fhe.hf_models.head_inputs`), quantized exactly as the client
quantizes its real input; uniform noise would let a server tell them apart, or corrupt only
inputs that noise never produces.

:func:`pool_for` picks a client's pool from the public commitment's ``origin``, never from the
server::

    origin {}                                                   built-in heads (zkfhe commit):
                                                                fresh LayerNorm-like sequences
    origin {"model": "SmolLM2-135M-Instruct", "layer": l, ...}  that layer's activations on real
                                                                text (pipeline.generate, offline)
    anything else                                               CanarySourceError

A client that cannot build the pool a commitment names (SmolLM2 not installed, an origin it does
not know) gets :class:`CanarySourceError` with the reason, never another distribution's canaries.
"""

from __future__ import annotations

import secrets

import numpy as np

from zk.attention_ref import BoundsViolation, QuantizedHead, quantize_input, run_reference


class ActivationCanaries:
    """Canaries sampled (with a CSPRNG) from a pool of float activation sequences.

    ``pool`` is (n, L, d_model): n sequences of the head's input activations, quantized with
    the head's public input scale. ``head`` is the quantized head or just the public model
    commitment (a client has no weights); with the weights, sequences that the integer head
    refuses (outside its calibrated bounds) are skipped, as a client would not send them either.
    The pool must be the client's own: a server that knows it could treat exactly those
    inputs honestly (it can evaluate any predicate of an encrypted input).
    """

    def __init__(self, head: QuantizedHead, pool: np.ndarray) -> None:
        pool = np.asarray(pool, dtype=np.float64)
        cfg = head.config
        if pool.ndim != 3 or pool.shape[1:] != (cfg.seq_len, cfg.d_model):
            raise ValueError(f"the pool must be (n, {cfg.seq_len}, {cfg.d_model})")
        self.inputs = []
        for seq in pool:
            x = quantize_input(seq, head)
            if isinstance(head, QuantizedHead):
                try:
                    run_reference(x, head)
                except BoundsViolation:
                    continue
            self.inputs.append(x)
        if not self.inputs:
            raise ValueError("no admissible sequence in the canary pool")

    def sample(self, k: int) -> list[np.ndarray]:
        """k canaries, drawn uniformly with replacement by the OS CSPRNG."""
        return [self.inputs[secrets.randbelow(len(self.inputs))].copy() for _ in range(k)]


def layer_norm_pool(commitment, n: int) -> np.ndarray:
    """n fresh LayerNorm-like activation sequences from the OS CSPRNG: the input distribution
    of the built-in demo heads (zk.attention_ref.random_head calibrates on the same)."""
    from zk.attention_ref import layer_norm_like

    cfg = commitment.config
    rng = np.random.default_rng(secrets.randbits(128))
    return layer_norm_like(rng, (n, cfg.seq_len, cfg.d_model))


class CanarySourceError(Exception):
    """No canary pool of the committed head's input distribution can be built here (the model
    its origin names is not installed, the origin is unknown or does not match the head)."""


def pool_for(commitment, n: int = 64, model=None) -> np.ndarray:
    """A fresh canary pool (n, L, d_model) for the head of a public model commitment, chosen by
    its ``origin`` (module docstring). ``model``: an already loaded (model, tokenizer) of the
    origin's model (default: load it). CanarySourceError when no such pool can be built."""
    origin = commitment.origin
    if not origin:
        return layer_norm_pool(commitment, n)
    from pipeline.generate import SMOLLM2

    name = origin.get("model")
    if name == SMOLLM2:
        return smollm2_pool(commitment, n, model)
    raise CanarySourceError(
        f"no canary source for a head of {name!r} (the commitment's origin: {origin}): canaries "
        "must come from that model's own activations on real text; pass your own pool "
        "(pipeline.canaries.ActivationCanaries)")


def smollm2_pool(commitment, n: int = 64, model=None) -> np.ndarray:
    """n canary sequences for a committed SmolLM2 head: the activations entering the origin's
    layer on windows of real text (pipeline.generate.canary_windows, CANARY_TEXTS), after the
    origin is checked against the model (layer and head in range, the head's shapes and RoPE)."""
    from fhe import hf_models as hm
    from pipeline import generate as G

    origin, cfg = commitment.origin, commitment.config
    layer, head = origin.get("layer"), origin.get("head")
    if not isinstance(layer, int) or not isinstance(head, int):
        raise CanarySourceError(f"the commitment's origin names {G.SMOLLM2} but no integer "
                                f"layer and head: {origin}")
    if model is None:
        try:
            model = hm.smollm2_model()
        except hm.ModelNotInstalled as e:
            raise CanarySourceError(
                f"this head is layer {layer}, head {head} of {G.SMOLLM2}: its canaries are "
                f"that model's activations on real text, and the model is not here ({e})"
            ) from None
    m, tok = model
    n_layers, n_heads = len(hm.attention_modules(m)), m.config.num_attention_heads
    if not 0 <= layer < n_layers or not 0 <= head < n_heads:
        raise CanarySourceError(f"the commitment's origin names layer {layer}, head {head}; "
                                f"{G.SMOLLM2} has {n_layers} layers of {n_heads} heads")
    fh = hm.head_weights(m, layer, head)
    kv = origin.get("kv_head", fh.kv_head)
    if ((cfg.d_model, cfg.d_head, cfg.causal) != (fh.d_model, fh.d_head, fh.causal)
            or cfg.rope_theta != fh.rope_theta or kv != fh.kv_head):
        raise CanarySourceError(
            f"the commitment's head ({cfg.d_model} -> {cfg.d_head}, RoPE theta "
            f"{cfg.rope_theta}, key/value head {kv}) is not layer {layer}, head {head} of "
            f"{G.SMOLLM2} ({fh.d_model} -> {fh.d_head}, theta {fh.rope_theta}, key/value head "
            f"{fh.kv_head})")
    try:
        return G.canary_windows(m, tok, layer, cfg.seq_len, n)
    except (OSError, ValueError) as e:  # the Debian license texts missing, a text too short
        raise CanarySourceError(f"cannot build the canary pool: {e}") from None


def canaries_for(commitment, n: int = 64, model=None) -> ActivationCanaries:
    """The client's canary source for a public model commitment (:func:`pool_for`)."""
    return ActivationCanaries(commitment, pool_for(commitment, n, model))
