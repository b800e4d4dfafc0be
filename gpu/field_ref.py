"""Plain Python-integer reference for the field kernels: the oracle the numba and CUDA kernels
are tested against. Elements are ints in [0, p); vectors are lists. Slow and obviously right."""

from __future__ import annotations

from collections.abc import Sequence


def add(p: int, a: Sequence[int], b: Sequence[int]) -> list[int]:
    return [(x + y) % p for x, y in zip(a, b, strict=True)]


def sub(p: int, a: Sequence[int], b: Sequence[int]) -> list[int]:
    return [(x - y) % p for x, y in zip(a, b, strict=True)]


def mul(p: int, a: Sequence[int], b: Sequence[int]) -> list[int]:
    return [x * y % p for x, y in zip(a, b, strict=True)]


def scale(p: int, a: Sequence[int], s: int) -> list[int]:
    return [x * s % p for x in a]


def neg(p: int, a: Sequence[int]) -> list[int]:
    return [-x % p for x in a]


def total(p: int, a: Sequence[int]) -> int:
    return sum(a) % p


def inner(p: int, a: Sequence[int], b: Sequence[int]) -> int:
    return sum(x * y for x, y in zip(a, b, strict=True)) % p


def batch_inverse(p: int, a: Sequence[int]) -> list[int]:
    """1/x for x != 0, and 0 for x = 0 (the kernels' convention)."""
    return [pow(x, -1, p) if x else 0 for x in a]


def from_signed(p: int, a: Sequence[int]) -> list[int]:
    return [x % p for x in a]
