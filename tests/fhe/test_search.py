"""The parameter search: the policy that picks the keyswitch-level cap, and searches run in a
child process so that concrete's optimizer aborting (concrete-python 2.11.0, multi_parameters/
optimize/mod.rs:1178, under the cap on the GPT-2-size exact head) never takes this process down.

The default tests trace small heads and compile with one parameter set; a stand-in child that
aborts the way concrete does plays the optimizer's panic. The slow tests compile the GPT-2-size
exact head: with the policy (a circuit, ~9,363 PBS) and with the cap forced (FheCompileError).
"""

import numpy as np
import pytest

pytest.importorskip("concrete.fhe")

from concrete import fhe  # noqa: E402

from fhe import search  # noqa: E402
from fhe.compile import (  # noqa: E402
    KS_CAP_MAX_TABLE_BITS,
    MAX_KS_LEVEL,
    compile_head,
    fhe_stats,
    key_budget_restriction,
    key_restriction_policy,
    make_configuration,
    make_inputset,
)
from fhe.errors import FheCompileError  # noqa: E402
from zk.attention_ref import HeadConfig, random_head, run_reference  # noqa: E402

TINY = dict(n_bits=3, score_bits=5, tlu_bits=5, out_tlu_bits=5, exp_bits=3, prob_bits=3)


@pytest.mark.parametrize("strategy, bits, cap", [
    ("mono", 4, None), ("mono", 12, None),
    ("multi", 4, MAX_KS_LEVEL), ("multi", KS_CAP_MAX_TABLE_BITS, MAX_KS_LEVEL),
    ("multi", KS_CAP_MAX_TABLE_BITS + 1, None), ("multi", 10, None),
    (fhe.ParameterSelectionStrategy.MULTI, 5, MAX_KS_LEVEL),
    (fhe.ParameterSelectionStrategy.MONO, 5, None),
])
def test_policy_caps_only_multi_parameter_circuits_of_narrow_tables(strategy, bits, cap):
    got, reason = key_restriction_policy(strategy, bits)
    assert got == cap
    assert reason and (str(MAX_KS_LEVEL) in reason) == (cap is not None)


def _traced(cfg, **kw):
    """compile_head without any parameter search (neither runtime requested)."""
    head, _, calib = random_head(cfg, seed=1, n_calib=8)
    return compile_head(head, make_inputset(head, calib), fhe_execution=False, **kw)


def test_compile_head_applies_the_policy_to_the_traced_tables():
    # for_fhe tables (<= 8 bits on a small head), multi-parameter: the cap, searched in a child
    # process, with concrete's own space to fall back to
    c = _traced(HeadConfig.for_fhe(8, 4, 3), parameter_selection_strategy="multi")
    assert c.key_policy.endswith(f"keyswitch levels <= {MAX_KS_LEVEL}")
    assert [p.max_ks_level for p in c.parameter_search.plans] == [MAX_KS_LEVEL, None]
    assert c.parameter_search.plans[0].configuration.range_restriction is not None
    assert c.parameter_search.plans[1].configuration.range_restriction is None
    assert c.configuration.range_restriction is not None
    # the default head's tables read 9 bits: concrete's own search, in process
    c = _traced(HeadConfig(8, 4, 3), parameter_selection_strategy="multi")
    assert "no keyswitch-level cap" in c.key_policy and c.parameter_search is None
    assert c.configuration.range_restriction is None
    # one parameter set (the small-head default): no cap
    c = _traced(HeadConfig.for_fhe(8, 4, 3))
    assert c.key_policy.startswith("one parameter set") and c.parameter_search is None
    # a caller's restriction is searched in a child process, with nothing to fall back to
    c = _traced(HeadConfig(8, 4, 3), parameter_selection_strategy="multi",
                range_restriction=key_budget_restriction(2))
    assert c.key_policy == "given by the caller"
    assert [(p.name, p.max_ks_level) for p in c.parameter_search.plans] == [
        ("the given range restriction (keyswitch levels <= 2)", 2)]


# A stand-in for fhe/_search_child.py: when the search is restricted, aborts like concrete's
# optimizer (what concrete 2.11 does on the GPT-2-size exact head under the cap) or, with
# "raise", makes concrete's Server.create raise inside the real child; runs the real child
# otherwise.
FAKE_CHILD = '''
import os, runpy, sys
from pathlib import Path
CHILD, MODE = {child!r}, {mode!r}
if (Path(sys.argv[1]) / "range_restriction.json").exists():
    if MODE == "abort":
        sys.stderr.write("thread '<unnamed>' panicked at /concrete/compilers/concrete-optimizer/"
                         "concrete-optimizer/src/optimization/dag/multi_parameters/optimize/"
                         "mod.rs:1178:18:\\ninternal error: entered unreachable code\\n")
        sys.stderr.flush()
        os.abort()
    from concrete import fhe

    def create(*args, **kwargs):
        raise RuntimeError("Unfeasible parameters\\nNoParametersFound")

    fhe.Server.create = create
sys.argv = [CHILD, sys.argv[1]]
runpy.run_path(CHILD, run_name="__main__")
'''


def _fake_child(tmp_path, monkeypatch, mode):
    path = tmp_path / f"fake_child_{mode}.py"
    path.write_text(FAKE_CHILD.format(child=str(search.CHILD), mode=mode))
    monkeypatch.setattr(search, "CHILD", path)


@pytest.fixture()
def aborting_child(tmp_path, monkeypatch):
    _fake_child(tmp_path, monkeypatch, "abort")


@pytest.fixture()
def raising_child(tmp_path, monkeypatch):
    _fake_child(tmp_path, monkeypatch, "raise")


@pytest.fixture(scope="module")
def tiny():
    head, _, calib = random_head(HeadConfig(4, 2, 2, **TINY), seed=1, n_calib=16)
    return head, make_inputset(head, calib)


def test_an_abort_in_the_child_is_an_error_here(aborting_child, tiny):
    head, inputset = tiny
    c = compile_head(head, inputset, fhe_execution=False)
    cfg = make_configuration(parameter_selection_strategy="mono",
                             range_restriction=key_budget_restriction())
    with pytest.raises(search.SearchFailure) as e:
        search.create_server(c.mlir, cfg, is_simulated=False)
    assert e.value.aborted
    assert "mod.rs:1178" in e.value.detail and "unreachable" in e.value.detail
    assert "SIGABRT" in e.value.detail
    # a caller's restriction has no fallback: the error names the head and the restriction
    with pytest.raises(FheCompileError, match=r"4x2 L2 3-bit exact.*keyswitch levels <= 3"
                                              r".*concrete aborted.*mod.rs:1178"):
        compile_head(head, inputset, parameter_selection_strategy="mono",
                     range_restriction=key_budget_restriction())


def test_the_cap_dropped_after_an_abort_is_reported(aborting_child, tiny):
    """A policy's plans (the cap, then concrete's own space) after the cap's search aborts:
    the circuit is the uncapped one for every runtime, it computes the reference, and the
    statistics say the cap was dropped. (A real encrypted run through a server compiled in the
    child: test_compile.py's slow test_real_encrypt_run_decrypt_tiny, whose MULTI compile of a
    5-bit head takes the cap.)"""
    head, inputset = tiny
    c = compile_head(head, inputset, fhe_execution=False)  # MONO: no search yet
    cfg = c.configuration
    plans = [search.Plan("keyswitch levels <= 3", 3,
                         cfg.fork(range_restriction=key_budget_restriction())),
             search.Plan("concrete's own search space", None, cfg)]
    c.parameter_search = search.IsolatedSearch(c, "4x2 L2 3-bit exact", plans)
    c.parameter_search.install(c)
    st = fhe_stats(c)
    assert st["ks_cap_dropped"] and st["max_ks_level"] is None
    log = st["parameter_search"]
    assert log[0].startswith("execution: keyswitch levels <= 3: concrete aborted (panicked at "
                             "concrete-optimizer src/optimization/dag/multi_parameters/optimize/"
                             "mod.rs:1178:18: internal error: entered unreachable code")
    x = inputset[0]
    assert np.array_equal(c.simulate(x), run_reference(x, head)[0])
    assert c.parameter_search.log[1:] == [
        "execution: concrete's own search space: parameters found",
        "simulation: concrete's own search space: parameters found"]


def test_no_parameters_in_the_child_is_an_error_naming_the_head(raising_child, tiny):
    head, inputset = tiny
    with pytest.raises(FheCompileError, match=r"4x2 L2 3-bit exact.*keyswitch levels <= 3\): "
                                              r"no parameters \(RuntimeError: NoParametersFound"):
        compile_head(head, inputset, parameter_selection_strategy="mono",
                     range_restriction=key_budget_restriction())


GPT2_EXACT = HeadConfig(768, 64, 6)


@pytest.fixture(scope="module")
def gpt2_exact():
    head, _, calib = random_head(GPT2_EXACT, seed=1, n_calib=16)
    return head, make_inputset(head, calib)


@pytest.mark.slow
def test_gpt2_size_exact_head_compiles_without_the_cap(gpt2_exact):
    """The head of bench/fhe.py and bench/session.py (tables wider than 6 bits): no cap, a
    circuit (9,363 PBS with bench/fhe.py's seed), simulate equal to the reference."""
    head, inputset = gpt2_exact
    c = compile_head(head, inputset)
    st = fhe_stats(c)
    assert st["max_ks_level"] is None and not st["ks_cap_dropped"]
    assert "no keyswitch-level cap" in st["key_policy"]
    assert 9_000 <= st["pbs"] <= 9_800
    x = inputset[0]
    assert np.array_equal(c.simulate(x), run_reference(x, head)[0])


@pytest.mark.slow
def test_gpt2_size_exact_head_under_the_cap_is_an_error_not_an_abort(gpt2_exact):
    """concrete 2.11's optimizer aborts on this head under keyswitch levels <= 3 (minutes of
    search): the test process survives and gets an error naming the head and the cap."""
    head, inputset = gpt2_exact
    with pytest.raises(FheCompileError, match=r"768x64 L6 4-bit exact.*keyswitch levels <= 3"
                                              r".*concrete aborted"):
        compile_head(head, inputset, parameter_selection_strategy="multi",
                     range_restriction=key_budget_restriction())


@pytest.mark.slow
def test_a_real_optimizer_abort_drops_the_cap_and_says_so(monkeypatch):
    """concrete 2.11's optimizer aborts on HeadConfig(8, 4, 3) under keyswitch levels <= 2
    (mod.rs:1178, about 30 s of search; <= 1 and <= 3 find parameters). With the policy's cap
    set there, the compile survives, finds parameters without the cap, and reports it."""
    import fhe.compile as C

    monkeypatch.setattr(C, "MAX_KS_LEVEL", 2)
    monkeypatch.setattr(C, "KS_CAP_MAX_TABLE_BITS", 16)
    head, _, calib = random_head(HeadConfig(8, 4, 3), seed=1, n_calib=16)
    inputset = make_inputset(head, calib)
    c = compile_head(head, inputset, parameter_selection_strategy="multi")
    st = fhe_stats(c)
    assert st["ks_cap_dropped"] and st["max_ks_level"] is None
    assert "keyswitch levels <= 2: concrete aborted" in st["parameter_search"][0]
    assert "mod.rs:1178" in st["parameter_search"][0]
    assert st["parameter_search"][1] == "execution: concrete's own search space: parameters found"
    x = inputset[0]
    assert np.array_equal(c.simulate(x), run_reference(x, head)[0])
