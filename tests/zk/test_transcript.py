"""Fiat-Shamir transcript: determinism and sensitivity to every input."""

from __future__ import annotations

import pytest

from zk.field import Fr
from zk.transcript import Transcript


def run(ops, protocol=b"p"):
    t = Transcript(protocol)
    for op, label, value in ops:
        getattr(t, op)(label, value)
    return t.challenge(b"c")


BASE = [("absorb_scalar", b"x", 5), ("absorb_bytes", b"y", b"abc"), ("absorb_scalars", b"z", [1, 2])]


def test_deterministic_and_in_field():
    assert run(BASE) == run(BASE)
    assert 0 <= run(BASE) < Fr.modulus


@pytest.mark.parametrize(
    "variant",
    [
        [("absorb_scalar", b"x", 6), *BASE[1:]],
        [("absorb_scalar", b"X", 5), *BASE[1:]],
        [BASE[1], BASE[0], BASE[2]],
        BASE[:2],
        [*BASE[:2], ("absorb_scalars", b"z", [1, 2, 0])],
        [*BASE[:2], ("absorb_scalars", b"z", [12])],
        [*BASE[:2], ("absorb_bytes", b"z", (1).to_bytes(32, "little") + (2).to_bytes(32, "little"))],
    ],
)
def test_every_change_changes_the_challenge(variant):
    assert run(variant) != run(BASE)


def test_protocol_separation_and_chaining():
    assert run(BASE, b"p") != run(BASE, b"q")
    t = Transcript(b"p")
    a, b = t.challenge(b"c"), t.challenge(b"c")
    assert a != b


def test_vector_and_scalar_lists_absorb_alike():
    t1, t2 = Transcript(b"p"), Transcript(b"p")
    t1.absorb_scalars(b"v", [3, Fr.modulus - 1])
    t2.absorb_vector(b"v", Fr.from_ints([3, Fr.modulus - 1]))
    assert t1.challenge(b"c") == t2.challenge(b"c")


def test_out_of_range_scalar_refused():
    with pytest.raises(ValueError):
        Transcript(b"p").absorb_scalar(b"x", Fr.modulus)
