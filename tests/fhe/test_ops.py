"""FHE-side implementations of the reference's ops that differ in form (not in value) from
the numpy ones: the chunked row maximum, unsigned table inputs, offset roundings."""

import itertools
import re

import numpy as np
import pytest

pytest.importorskip("concrete.fhe")

from concrete import fhe  # noqa: E402

from fhe.compile import make_configuration, table_widths  # noqa: E402
from fhe.ops import ConcreteOps, static_bounds  # noqa: E402
from zk.attention_ref import NumpyOps, Table, round_shift  # noqa: E402


def _relu(span: int) -> Table:
    return Table("relu", -span, np.maximum(np.arange(-span, span + 1), 0))


def _compile(f, inputset):
    cfg = make_configuration(parameter_selection_strategy="mono")
    with static_bounds():
        return fhe.Compiler(f, {"m": "encrypted", "r": "encrypted"}).compile(
            inputset, configuration=cfg)


def _tlu_input_bits(circuit) -> list:
    return table_widths(circuit.graph)[0]


@pytest.mark.parametrize("lo,hi", [(-8, 45), (3, 10), (-5, -1)])
def test_chunked_max_equals_relu_chain_everywhere(lo, hi):
    """max_step on tracers (chunks, comparisons, selections) equals the reference's
    m + RELU[r - m] on every pair of the interval, with no table reading the 7-bit r - m."""
    span = hi - lo
    relu = _relu(span)
    ops = ConcreteOps()

    def f(m, r):
        return ops.max_step(m, r, relu, -span, span, lo, hi)

    # the inputset does not even reach the ends: the marked static interval does
    inputset = [(lo + 1, hi - 1), (hi - 1, lo + 1)]
    circuit = _compile(f, inputset)
    ref = NumpyOps()
    vals = range(lo, hi + 1)
    for m, r in itertools.product(vals, vals):
        assert circuit.simulate(m, r) == ref.max_step(np.int64(m), np.int64(r), relu, -span,
                                                      span, lo, hi)
    assert max(_tlu_input_bits(circuit)) <= 6
    assert circuit.programmable_bootstrap_count > 1  # the chunked path, not RELU[r - m]


def test_max_step_falls_back_to_the_table_when_not_exact_relu():
    """Any table that is not max(., 0) is looked up as written (here a capped RELU)."""
    span = 10
    leaky = Table("relu", -span, np.clip(np.arange(-span, span + 1), 0, 5))
    ops = ConcreteOps()

    def f(m, r):
        return ops.max_step(m, r, leaky, -span, span, 0, span)

    circuit = _compile(f, [(0, span), (span, 0)])
    ref = NumpyOps()
    for m, r in itertools.product(range(span + 1), repeat=2):
        assert circuit.simulate(m, r) == ref.max_step(np.int64(m), np.int64(r), leaky, -span,
                                                      span, 0, span)


@pytest.mark.parametrize("lo,hi,k", [(-134, 718, 4), (-570, 586, 5), (-31, 0, 2)])
def test_offset_rounding_is_the_reference_rounding(lo, hi, k):
    """round_shift adds a multiple of 2^k to make its input unsigned and takes it off after
    the shift: exactly rs(a, k) on the whole interval."""
    ops = ConcreteOps()

    def f(a):
        return ops.round_shift(ops.bound(a, lo, hi), k, lo, hi, name="r_s")

    cfg = make_configuration(parameter_selection_strategy="mono")
    with static_bounds():
        circuit = fhe.Compiler(f, {"a": "encrypted"}).compile([0, 1], configuration=cfg)
    for a in range(lo, hi + 1, 3):
        assert circuit.simulate(a) == round_shift(np.int64(a), k)


def test_max_shift_keeps_the_score_chain_unsigned():
    """Scores r = rs(z, 4) in [-8, 44] (signed), their running maximum and d = r - m read by
    a CLIPD-like table: on tracers the chain and d run on the offset form r + 8 (no node of the
    scores' class is signed, so the class is 6 bits wide and no table pays a doubling to read
    6 of 7 bits), with the same output as the reference on random rows and on the corners."""
    n, zlo, zhi, k = 4, -128, 707, 4
    rs = (round_shift(zlo, k), round_shift(zhi, k))
    span = rs[1] - rs[0]
    relu = _relu(span)
    clipd = Table("clipd", -span, np.maximum(np.arange(-span, 1), -20))
    dbound = (-span, 0)

    def f(z, ops):
        z = ops.bound(z, zlo, zhi)
        r = ops.bound(ops.round_shift(z, k, zlo, zhi, name="r_s"), *rs)
        _, d = ops.max_shift(r, relu, (-span, span), rs, dbound)
        return ops.lookup(clipd, d)

    rng = np.random.default_rng(3)
    rows = [rng.integers(zlo, zhi + 1, size=n) for _ in range(40)]
    rows += [np.full(n, zlo), np.full(n, zhi), np.array([zlo, zhi, zlo, zhi])]
    cfg = make_configuration(parameter_selection_strategy="mono")
    with static_bounds():
        circuit = fhe.Compiler(lambda z: f(z, ConcreteOps()), {"z": "encrypted"}).compile(
            rows, configuration=cfg)
    ref = NumpyOps()
    for z in rows:
        assert np.array_equal(circuit.simulate(z), f(z, ref))
    tables = _tlu_input_bits(circuit)
    assert tables and max(tables) <= 6
    # every node between the score rounding and the table is unsigned and at most 6 bits
    mlir = circuit.mlir
    assert "esint<7>" not in mlir and "eint<7>" not in mlir
    # (the doubling concrete inserts to read fewer bits than a class is wide; z's own class
    # may have one)
    assert not re.search(r"mul_eint_int[^\n]*!FHE\.es?int<[1-7]>", mlir)
