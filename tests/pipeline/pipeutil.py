"""Helpers shared by the service tests (imported as ``pipeutil``, as tests/zk's zkutil)."""

from __future__ import annotations

import socket

from zk.attention_ref import HeadConfig

# the small head of the session tests (narrow tables: ~100 MB of real TFHE keys)
SMALL = HeadConfig(d_model=4, d_head=2, seq_len=2, n_bits=3, score_bits=5, tlu_bits=5,
                   out_tlu_bits=5, exp_bits=3, prob_bits=3)


def free_port() -> int:
    """A TCP port free on the loopback interface now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
