"""Compile the integer reference head (zk.attention_ref) with concrete-python.

The circuit is ``zk.attention_ref.attention_head`` itself, traced with ``fhe.ops.ConcreteOps``;
there is no second hand-written version. Rounding is exact (``Exactness.EXACT``), the global
error probability is at most 1e-9, and every node's bounds are widened to the reference's static
intervals, so ``circuit.simulate(x) == run_reference(x, head)[0]`` for every input the reference
accepts.
"""

from __future__ import annotations

import time
from typing import Iterable, Optional

import numpy as np
from concrete import fhe

from zk.attention_ref import QuantizedHead, attention_head, quantize_input

from .ops import ConcreteOps, static_bounds

DEFAULT_P_ERROR = 1e-9
# Heads with d_model * seq_len up to this size compile with one parameter set (MONO): measured
# here, MONO gives the smallest evaluation keys (4x2 L2: 109 MB compressed against 118 MB with
# MULTI; 8x4 L3: 499 MB against 790 MB; 16x8 L4: 6.8 GB of bootstrap keys against 34 GB of
# bootstrap + keyswitch keys), 2-3x faster keygen and half the memory, at a higher evaluation
# complexity per PBS. Larger heads (no real run fits here anyway) keep MULTI, whose complexity
# is the meaningful cost figure.
SMALL_HEAD_SIZE = 64


def default_strategy(head: QuantizedHead) -> str:
    """'mono' for small heads (smallest keys), 'multi' otherwise (see SMALL_HEAD_SIZE)."""
    cfg = head.config
    return "mono" if cfg.d_model * cfg.seq_len <= SMALL_HEAD_SIZE else "multi"


def head_function(head: QuantizedHead):
    """The function concrete traces: x (L, d_model) -> y (L, d_head)."""
    ops = ConcreteOps()

    def f(x):
        return attention_head(x, head, ops)

    return f


def make_configuration(global_p_error: float = DEFAULT_P_ERROR, **kw) -> fhe.Configuration:
    if global_p_error > DEFAULT_P_ERROR:
        raise ValueError("global_p_error must be <= 1e-9")
    opts = dict(
        global_p_error=global_p_error,
        p_error=None,
        rounding_exactness=fhe.Exactness.EXACT,
        show_progress=False,
        compress_evaluation_keys=True,
        compress_input_ciphertexts=True,
    )
    opts.update(kw)
    return fhe.Configuration(**opts)


def make_inputset(head: QuantizedHead, calib_x, extra: int = 0, seed: int = 0) -> list:
    """Integer inputs from float calibration activations (..., L, d_model).

    The inputset only fixes the typical value of each node: bit widths and signs come from the
    reference's static bounds (see fhe.ops.static_bounds).
    """
    L, d = head.config.seq_len, head.config.d_model
    X = np.asarray(calib_x, dtype=np.float64).reshape(-1, d)
    n = (X.shape[0] // L) * L
    if n == 0:
        X, n = np.resize(X, (L, d)), L
    seqs = [quantize_input(X[s: s + L], head) for s in range(0, n, L)]
    return seqs


def compile_head(
    head: QuantizedHead,
    inputset: Iterable,
    global_p_error: float = DEFAULT_P_ERROR,
    configuration: Optional[fhe.Configuration] = None,
    **config_kw,
) -> fhe.Circuit:
    """Trace and compile the head; returns a concrete ``fhe.Circuit`` (``.head`` is attached).

    Unless given, the parameter selection strategy is ``default_strategy(head)``.
    """
    inputset = [np.asarray(x, dtype=np.int64) for x in inputset]
    if not inputset:
        raise ValueError("empty inputset")
    shape = (head.config.seq_len, head.config.d_model)
    for x in inputset:
        if x.shape != shape:
            raise ValueError(f"inputset entries must have shape {shape}, got {x.shape}")
    if configuration is None and "parameter_selection_strategy" not in config_kw:
        config_kw["parameter_selection_strategy"] = default_strategy(head)
    cfg = configuration or make_configuration(global_p_error, **config_kw)
    compiler = fhe.Compiler(head_function(head), {"x": "encrypted"})
    with static_bounds():
        circuit = compiler.compile(inputset, configuration=cfg)
    circuit.head = head
    return circuit


def fhe_stats(circuit: fhe.Circuit, output: Optional[fhe.Value] = None) -> dict:
    """PBS count, complexity, bit widths, key and ciphertext sizes of a compiled head.

    ``size_of_*`` are concrete's uncompressed sizes; once ``circuit.keygen()`` has run, the
    serialized sizes are added too (``keyset_stats``).
    """
    st: dict = {
        "pbs": int(circuit.programmable_bootstrap_count),
        "complexity": float(circuit.complexity),
        "max_bit_width": int(circuit.graph.maximum_integer_bit_width()),
        "global_p_error": float(circuit.global_p_error),
        "p_error": float(circuit.p_error),
        "key_switches": int(circuit.key_switch_count),
    }
    try:
        per = circuit.programmable_bootstrap_count_per_parameter
        st["pbs_per_parameter"] = {str(k): int(v) for k, v in per.items()}
    except Exception:  # pragma: no cover - depends on the concrete build
        pass
    tlu_widths = []
    for node in circuit.graph.query_nodes():
        if node.converted_to_table_lookup:
            tlu_widths.append(node.inputs[0].dtype.bit_width)
    st["max_tlu_input_bits"] = max(tlu_widths) if tlu_widths else 0
    for name in ("bootstrap_keys", "keyswitch_keys", "secret_keys", "inputs", "outputs"):
        try:
            st["size_of_" + name] = int(getattr(circuit, "size_of_" + name))
        except Exception:  # pragma: no cover
            pass
    st.update(keyset_stats(circuit, output))
    return st


def keyset_stats(circuit: fhe.Circuit, output: Optional[fhe.Value] = None) -> dict:
    """Serialized sizes once a keyset exists: compressed evaluation keys, one input ciphertext
    (compressed if the configuration says so), and one output ciphertext if a result of
    ``circuit.run`` is given (outputs are never compressed: about ``size_of_outputs``)."""
    try:
        keys = circuit.keys
    except Exception:  # noqa: BLE001 - a simulation-only circuit has no client
        return {}
    if keys is None or not keys.are_generated:
        return {}
    st = {"evaluation_key_bytes": len(keys.evaluation.serialize())}
    head = getattr(circuit, "head", None)
    if head is not None:
        shape = (head.config.seq_len, head.config.d_model)
        st["input_ciphertext_bytes"] = len(circuit.encrypt(np.zeros(shape, np.int64)).serialize())
    if output is not None:
        st["output_ciphertext_bytes"] = len(output.serialize())
    return st


def timed_compile(head: QuantizedHead, inputset, **kw):
    t = time.perf_counter()
    c = compile_head(head, inputset, **kw)
    return c, time.perf_counter() - t
