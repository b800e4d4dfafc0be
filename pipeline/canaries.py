"""Where canaries come from.

The protocol's guarantee is stated over the canary distribution: a server that corrupts the
outputs of an input set S is caught with probability about 1 - (1 - p_S)^k per session, p_S
being the chance that a canary lands in S. So canaries must look like real queries. The default
source draws them from a pool of the model's own activations on real text (the head's input
activations, recorded with :func:`fhe.hf_models.head_inputs`), quantized exactly as the client
quantizes its real input; uniform noise would let a server tell them apart, or corrupt only
inputs that noise never produces.
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
