"""Compile the integer reference head (zk.attention_ref) with concrete-python.

The circuit is ``zk.attention_ref.attention_head`` itself, traced with ``fhe.ops.ConcreteOps``;
there is no second hand-written version. The global error probability is at most 1e-9 and every
node's bounds are widened to the reference's static intervals.

Two modes, chosen by the head (``QuantizedHead.approximate``, published in the model
commitment):

* **exact** (no approximate roundings; the default): every rounding is concrete's exact
  rounding, so ``circuit.simulate(x) == run_reference(x, head)[0]`` for every input the
  reference accepts, and a real run decrypts to the same (up to the 1e-9 error probability).
* **approximate**: the named roundings use concrete's approximate rounding (no bootstrap, but
  off by one near a rounding boundary, at random), so the decrypted output is within the
  published tolerance ``delta`` (``zk.tolerance``) of the reference, which the proof proves.
  ``APPROXIMATE_ROUNDINGS`` is the set this project uses: only the output rounding r_o, where
  a +-1 stays +-1; approximate rounding of the projections or the scores is allowed but its
  rigorous delta is the whole output range (every +-1 of q or k can move every score).

Large heads should use ``zk.attention_ref.HeadConfig.for_fhe`` (small tables, calibrated sums:
the widths and keys that fit a small machine). Key size follows the widest table (a 7-bit
table alone brings a ~1 GB bootstrap key) and the number of parameter sets (each pair that
exchanges ciphertexts needs a keyswitch key): ``fhe.ops`` keeps every table of a ``for_fhe``
head at 6 bits or fewer and folds the tiniest tables into the 4-bit parameter set, and
multi-parameter compiles of circuits whose tables read at most 8 bits cap keyswitch levels
(``MAX_KS_LEVEL``; ``key_restriction_policy``).

A compile either gives a circuit or raises ``fhe.errors.FheCompileError`` naming the head and
the search spaces tried; it never takes the process down. A restricted parameter search runs in
a child process (``fhe.search``: concrete 2.11's optimizer can abort under the keyswitch cap);
if the policy's cap finds no parameters, the search is rerun without it, and ``fhe_stats`` says
so (``max_ks_level``, ``parameter_search``). Either way the circuit (its MLIR, its function) is
the one traced here; only its cryptographic parameters depend on the search space.
"""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Iterable, Optional

import numpy as np
from concrete import fhe

from zk.attention_ref import QuantizedHead, attention_head, check_roundings, quantize_input

from .errors import FheCompileError
from .ops import ConcreteOps, static_bounds
from .search import IsolatedSearch, Plan

DEFAULT_P_ERROR = 1e-9
# the roundings an approximate-mode head evaluates approximately (module docstring)
APPROXIMATE_ROUNDINGS = ("r_o",)
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
    """The function concrete traces: x (L, d_model) -> y (L, d_head). The roundings named in
    ``head.approximate`` use concrete's approximate rounding, every other one exact rounding."""
    ops = ConcreteOps(head.approximate)

    def f(x):
        return attention_head(x, head, ops)

    return f


def approximate_head(head: QuantizedHead, roundings=APPROXIMATE_ROUNDINGS) -> QuantizedHead:
    """The head in approximate mode: the same weights and tables, with ``roundings``
    evaluated approximately by its circuit (commit this head: the commitment publishes them
    and their tolerance)."""
    return dataclasses.replace(head, approximate=check_roundings(roundings))


# Multi-parameter compilation minimizes evaluation cost only; left alone it picks keyswitch
# keys of up to 20 levels (1 GB each at GPT-2 size) for partitions serving a few dozen
# bootstraps. Bounding the levels costs little time. GPT-2-size head (for_fhe, approximate),
# keys in memory / complexity: levels <= 3: 1.99 GB / 2.13e12; <= 4: 2.12 GB / 2.08e12; <= 2:
# 1.88 GB / 2.31e12 (before the unsigned score chain of fhe.ops: <= 4 2.34 GB / 2.22e12,
# unbounded 3.28 GB / 2.17e12).
MAX_KS_LEVEL = 3
# The cap is a key budget: it applies to multi-parameter compiles whose every table reads at
# most KS_CAP_MAX_TABLE_BITS bits, the circuits whose keys can fit a real run at all
# (HeadConfig.for_fhe heads: 6-bit tables at GPT-2 size, up to 8 bits on small heads). Keys
# follow the widest table (a 10-bit table alone brings ~9.6 GB of bootstrap key): circuits with
# wider tables (the default HeadConfig: 9 bits and more) have keys of several to tens of GB with
# or without the cap (64x16 L6, 9-bit tables: 30.5 GB capped, 36.1 GB not), so they keep
# concrete's own search space. That is also where the cap was seen to break concrete-python
# 2.11.0's optimizer: it aborts the process (concrete-optimizer multi_parameters/optimize/
# mod.rs:1178 "internal error: entered unreachable code", then "panic in ffi function
# concrete_optimizer_cpp::ffi::Dag::optimize_multi, aborting") on the GPT-2-size exact head
# HeadConfig(768, 64, 6) under levels <= 3 after minutes of search (uncapped: about 44 s, 9,363
# PBS), and on HeadConfig(8, 4, 3) under levels <= 2 (not <= 1 or <= 3). Since no width rule
# predicts that abort, every capped search runs in a child process (fhe.search) and falls back
# to concrete's own space; remove the isolation when concrete reports the failure as an error.
KS_CAP_MAX_TABLE_BITS = 8


def key_restriction_policy(strategy, max_table_bits: int) -> tuple[Optional[int], str]:
    """(keyswitch-level cap or None, the reason in words) for a compile with parameter
    selection ``strategy`` of a circuit whose widest table reads ``max_table_bits`` bits
    (``table_widths``): ``MAX_KS_LEVEL`` for multi-parameter compiles of circuits whose tables
    all read at most ``KS_CAP_MAX_TABLE_BITS`` bits, None (concrete's own search space)
    otherwise."""
    if fhe.ParameterSelectionStrategy.parse(strategy) != fhe.ParameterSelectionStrategy.MULTI:
        return None, "one parameter set: no keyswitch-level cap"
    if max_table_bits > KS_CAP_MAX_TABLE_BITS:
        return None, (f"tables read up to {max_table_bits} bits (> {KS_CAP_MAX_TABLE_BITS}: "
                      "keys beyond a real run either way): no keyswitch-level cap")
    return MAX_KS_LEVEL, (f"multi-parameter, every table <= {KS_CAP_MAX_TABLE_BITS} bits: "
                          f"keyswitch levels <= {MAX_KS_LEVEL}")


def key_budget_restriction(max_ks_level: int = MAX_KS_LEVEL):
    """concrete's parameter search space with keyswitch levels capped at ``max_ks_level`` and
    every other parameter free (the optimizer's own ranges)."""
    from concrete.compiler import RangeRestriction

    r = RangeRestriction()
    for n in range(8, 18):
        r.add_available_glwe_log_polynomial_size(n)
    for n in range(1, 7):
        r.add_available_glwe_dimension(n)
    for n in range(256, 2049):
        r.add_available_internal_lwe_dimension(n)
    for n in range(1, 65):
        r.add_available_pbs_base_log(n)
        r.add_available_ks_base_log(n)
    for n in range(1, 41):
        r.add_available_pbs_level_count(n)
    for n in range(1, max_ks_level + 1):
        r.add_available_ks_level_count(n)
    return r


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


def head_label(head: QuantizedHead) -> str:
    """The head in a few words, for messages: sizes, bits and mode."""
    cfg = head.config
    mode = f"approximate {','.join(head.approximate)}" if head.approximate else "exact"
    return f"{cfg.d_model}x{cfg.d_head} L{cfg.seq_len} {cfg.n_bits}-bit {mode}"


def _restriction_name(configuration: fhe.Configuration) -> tuple[str, Optional[int]]:
    """A caller's restriction in words, and its keyswitch-level cap if it has one."""
    if configuration.keyset_restriction is not None:
        return "the given keyset restriction", None
    levels = json.loads(configuration.range_restriction.to_json()).get("ks_level_count") or []
    cap = max(levels) if levels else None
    return f"the given range restriction (keyswitch levels <= {cap})", cap


def compile_head(
    head: QuantizedHead,
    inputset: Iterable,
    global_p_error: float = DEFAULT_P_ERROR,
    configuration: Optional[fhe.Configuration] = None,
    **config_kw,
) -> fhe.Circuit:
    """Trace and compile the head; returns a concrete ``fhe.Circuit`` (``.head`` is attached).

    Unless given, the parameter selection strategy is ``default_strategy(head)`` and the search
    space is ``key_restriction_policy``'s (``range_restriction`` in ``config_kw`` or a whole
    ``configuration`` override it). The mode follows the head: exact (``head.approximate``
    empty; ``circuit.simulate`` equals the reference bit for bit) or approximate (those
    roundings approximate; the decrypted output is within
    ``zk.tolerance.tolerance(head, head.approximate)`` of the reference).

    A search restricted by a range or keyset restriction runs in a child process
    (``fhe.search``), this compile's and the ones concrete runs later (``simulate`` after an
    execution compile, statistics after a simulation-only one); if the policy's cap finds no
    parameters it is dropped and the search rerun without it. Raises ``FheCompileError`` (the
    head and every search space tried) when no parameters are found.
    """
    inputset = [np.asarray(x, dtype=np.int64) for x in inputset]
    if not inputset:
        raise ValueError("empty inputset")
    shape = (head.config.seq_len, head.config.d_model)
    for x in inputset:
        if x.shape != shape:
            raise ValueError(f"inputset entries must have shape {shape}, got {x.shape}")
    if configuration is None:
        config_kw.setdefault("parameter_selection_strategy", default_strategy(head))
        by_policy = "range_restriction" not in config_kw
        cfg = make_configuration(global_p_error, **config_kw)
    else:
        cfg, by_policy = configuration, False
    compiler = fhe.Compiler(head_function(head), {"x": "encrypted"})
    with static_bounds():  # trace and MLIR only: no parameter search yet
        circuit = compiler.compile(inputset, configuration=cfg.fork(fhe_execution=False,
                                                                    fhe_simulation=False))
    circuit.head = head
    label = head_label(head)
    if by_policy:
        tables, _ = table_widths(circuit.graph)
        cap, circuit.key_policy = key_restriction_policy(cfg.parameter_selection_strategy,
                                                         max(tables, default=0))
        plans = [] if cap is None else [
            Plan(f"keyswitch levels <= {cap}", cap,
                 cfg.fork(range_restriction=key_budget_restriction(cap))),
            Plan("concrete's own search space", None, cfg)]
    else:
        circuit.key_policy = "given by the caller"
        plans = []
        if cfg.range_restriction is not None or cfg.keyset_restriction is not None:
            plans = [Plan(*_restriction_name(cfg), cfg)]
    final = plans[0].configuration if plans else cfg
    # the caller's flags and the first search space (the one the stats report a drop from)
    circuit._module.configuration = final  # noqa: SLF001
    circuit.parameter_search = IsolatedSearch(circuit, label, plans) if plans else None
    if circuit.parameter_search is not None:
        circuit.parameter_search.install(circuit)
    try:
        if cfg.fhe_execution:
            circuit.enable_fhe_execution()
        if cfg.fhe_simulation:
            circuit.enable_fhe_simulation()
    except FheCompileError:
        raise
    except RuntimeError as e:  # concrete's own search, in process: NoParametersFound, say
        last = (str(e).strip().splitlines() or [type(e).__name__])[-1]
        raise FheCompileError(f"no FHE parameters for head {label}, concrete-python "
                              f"{fhe.__version__}, concrete's own search space: {last}") from e
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
    tlu_widths, round_widths = table_widths(circuit.graph)
    st["max_tlu_input_bits"] = max(tlu_widths) if tlu_widths else 0
    st["max_rounding_input_bits"] = max(round_widths) if round_widths else 0
    for name in ("bootstrap_keys", "keyswitch_keys", "secret_keys", "inputs", "outputs"):
        try:
            st["size_of_" + name] = int(getattr(circuit, "size_of_" + name))
        except Exception:  # pragma: no cover
            pass
    st.update(search_stats(circuit))
    st.update(keyset_stats(circuit, output))
    return st


def search_stats(circuit: fhe.Circuit) -> dict:
    """How the parameters of a ``compile_head`` circuit were searched: ``key_policy`` (the
    policy's choice and why), ``max_ks_level`` (the keyswitch-level cap the execution
    circuit's parameters were found under; None: none), ``ks_cap_dropped`` (a cap found no
    parameters and the search was rerun without it) and ``parameter_search`` (one line per
    search; empty when concrete searched its own space in this process)."""
    st = {"key_policy": getattr(circuit, "key_policy", None)}
    search = getattr(circuit, "parameter_search", None)
    if search is None:
        st.update(max_ks_level=None, ks_cap_dropped=False, parameter_search=[])
        return st
    used = search.used.get("execution") or search.used.get("simulation")
    st["max_ks_level"] = used.max_ks_level if used else None
    st["ks_cap_dropped"] = bool(search.dropped)
    st["parameter_search"] = list(search.log)
    return st


def table_widths(graph) -> tuple[list, list]:
    """(bits each table reads, input widths of the roundings and their shifts) over the graph.

    A rounding (and the shift after it) reads the wide accumulator; exact rounding removes its
    low bits with small bootstraps, approximate rounding with none, and the shift's table reads
    only the kept high bits: they are counted apart from the tables."""
    tables, roundings = [], []
    for node in graph.query_nodes():
        if node.converted_to_table_lookup:
            if node.properties.get("name") in ("round_bit_pattern", "right_shift"):
                roundings.append(node.inputs[0].dtype.bit_width)
            else:
                tables.append(tlu_input_bits(graph, node))
    return tables, roundings


def tlu_input_bits(graph, node) -> int:
    """Bits the table of ``node`` reads: its input's own width (concrete reads tables of up to
    8 bits at the input's original width, not the wider one its additions are assigned)."""
    pred = graph.ordered_preds_of(node)[0]
    return int(pred.properties.get("original_bit_width", node.inputs[0].dtype.bit_width))


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
