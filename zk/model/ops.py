"""The whole model's ops: each one's integer reference beside its proof step.

Every op is total: a value outside the range its consumer reads saturates, and the proof proves
the clip. Proof steps run on an :class:`~zk.model.engine.Engine` in two phases: ``columns``
(before the model's one lookup: which entries must lie in which table) and ``prove`` (after it:
the relations, as contractions; both roles run it).

Saturating requantization (:func:`rq_ref`), the op every rounding uses: with A output bits,
lo = -2^(A-1), hi = 2^(A-1) - 1 and T the bound bits of the rounded value::

    t = rs(acc, k) = floor((acc + 2^(k-1)) / 2^k)          (k = 0: t = acc)
    y = clip(t, lo, hi)

Witness: the remainder R = acc + 2^(k-1) - 2^k t in [0, 2^k) (16-bit limbs R, R1, R2 past 16
and 32 bits), t = 2^(A-1) a + b with b in [0, 2^(A-1)) (two limbs b, b1 past 16 bits: the wide
residual stream) and a in [-2^(T-A), 2^(T-A)), and the mode
m = MODE(a) in {-1, 0, 1} (a pair lookup: a's range check and its mode at once; t is in
[lo, hi] exactly when a is -1 or 0, so a is almost always -1 or 0: cheap to commit).
Relations: acc is the linear form 2^k (2^(A-1) a + b) + R - 2^(k-1) of committed tensors (the
producer of acc proves its value at a point), and pointwise
y = (1 - m^2) t + (m^2 + m)/2 hi + (m^2 - m)/2 lo.
A rounded value outside [-2^(T-1), 2^(T-1)) cannot be represented: the model's static bounds
keep every accumulator inside (:func:`rq_ref` raises if not).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from zk.errors import ProverError
from zk.lookup.tables import LookupTable
from zk.model.engine import Axis, Engine, Factor, Lin, Mask, Space
from zk.multilinear import P
from zk.protocol.context import Com

LIMB = 16


def rs(a: np.ndarray, k: int) -> np.ndarray:
    """floor((a + 2^(k-1)) / 2^k) on int64 (a for k = 0)."""
    a = np.asarray(a, dtype=np.int64)
    return a if k == 0 else (a + np.int64(1 << (k - 1))) >> np.int64(k)


# ---------------------------------------------------------------- saturating requantization


@dataclass(frozen=True)
class RQ:
    """One saturating requantization site: output tensor ``name`` on ``space``."""

    name: str
    space: Space
    k: int
    bits: int
    t_bits: int

    @property
    def lo(self) -> int:
        return -(1 << (self.bits - 1))

    @property
    def hi(self) -> int:
        return (1 << (self.bits - 1)) - 1

    @property
    def limbs(self) -> int:
        return -(-self.k // LIMB)

    @property
    def wide(self) -> bool:
        """b (the low bits - 1 bits of t) in two limbs: b (16 bits) and b1."""
        return self.bits - 1 > LIMB

    def tensors(self) -> list[str]:
        n = self.name
        out = [n, n + ".a", n + ".b", n + ".m"]
        if self.wide:
            out.append(n + ".b1")
        return out + self.r_names()

    def r_names(self) -> list[str]:
        """The remainder's limbs, low first: R, R1, R2."""
        return [self.name + ".R" + (str(j) if j else "") for j in range(self.limbs)]

    # reference

    def ref(self, acc: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """y = clip(rs(acc, k), lo, hi) and the witness of the proof."""
        acc = np.asarray(acc, dtype=np.int64)
        t = rs(acc, self.k)
        half = 1 << (self.t_bits - 1)
        if t.size and (t.min() < -half or t.max() >= half):
            raise ProverError(f"{self.name}: a rounded value outside the {self.t_bits}-bit bound "
                              f"of the model (its static bounds are wrong)")
        y = np.clip(t, self.lo, self.hi)
        b = t & ((1 << (self.bits - 1)) - 1)
        w = {self.name: y, self.name + ".a": t >> (self.bits - 1), self.name + ".b": b}
        if self.wide:
            w[self.name + ".b"] = b & ((1 << LIMB) - 1)
            w[self.name + ".b1"] = b >> LIMB
        w[self.name + ".m"] = mode(w[self.name + ".a"], self.bits, self.t_bits)
        if self.k:
            R = acc + (1 << (self.k - 1)) - (t << self.k)
            for j, rn in enumerate(self.r_names()):
                w[rn] = (R >> (LIMB * j)) & ((1 << LIMB) - 1) if j < self.limbs - 1 \
                    else R >> (LIMB * j)
        return y, w

    # proof

    def t_lin(self) -> Lin:
        s, n = self.space, self.name
        lin = Lin.of(s, n + ".a", 1 << (self.bits - 1)) + Lin.of(s, n + ".b")
        if self.wide:
            lin = lin + Lin.of(s, n + ".b1", 1 << LIMB)
        return lin

    def acc_lin(self) -> Lin:
        """acc as a linear form of the committed witness."""
        s, n = self.space, self.name
        lin = self.t_lin() * (1 << self.k)
        for j, rn in enumerate(self.r_names()):
            lin = lin + Lin.of(s, rn, 1 << (LIMB * j))
        if self.k:
            lin = lin - (1 << (self.k - 1))
        return lin

    def columns(self, eng: Engine, mask: Mask | None = None) -> None:
        s, n = self.space, self.name
        tab = eng.table(f"mode[{self.bits},{self.t_bits}]",
                        lambda: mode_table(self.bits, self.t_bits))
        eng.column(tab, Lin.of(s, n + ".a"), Lin.of(s, n + ".m"), mask)
        if self.wide:
            eng.column(eng.range_table(0, 1 << LIMB), Lin.of(s, n + ".b"), None, mask)
            eng.column(eng.range_table(0, 1 << (self.bits - 1 - LIMB)), Lin.of(s, n + ".b1"),
                       None, mask)
        else:
            eng.column(eng.range_table(0, 1 << (self.bits - 1)), Lin.of(s, n + ".b"), None,
                       mask)
        for j, rn in enumerate(self.r_names()):
            top = self.k - LIMB * j if j == self.limbs - 1 else LIMB
            eng.column(eng.range_table(0, 1 << top), Lin.of(s, rn), None, mask)

    def clip_relation(self) -> "Relation":
        """The pointwise relation y = (1 - m^2) t + (m^2 + m)/2 hi + (m^2 - m)/2 lo."""
        s, n = self.space, self.name
        inv2 = pow(2, -1, P)
        ax = s.names
        fs = [Factor("tensor", ax, Lin.of(s, n)), Factor("tensor", ax, Lin.of(s, n + ".m")),
              Factor("tensor", ax, self.t_lin())]
        terms = [(1, [0]), (-1, [2]), (1, [1, 1, 2]),
                 (-self.hi * inv2 % P, [1, 1]), (-self.hi * inv2 % P, [1]),
                 (-self.lo * inv2 % P, [1, 1]), (self.lo * inv2 % P, [1])]
        return fs, terms


def mode(a: np.ndarray, bits: int, t_bits: int) -> np.ndarray:
    """MODE(a): -1 below the in-range window {-1, 0}, 0 inside, +1 above."""
    return np.where(a < -1, -1, np.where(a > 0, 1, 0)).astype(np.int64)


@lru_cache(maxsize=16)
def mode_table(bits: int, t_bits: int) -> LookupTable:
    c = 1 << (t_bits - bits)
    a = np.arange(-c, c, dtype=np.int64)
    return LookupTable.function(-c, mode(a, bits, t_bits), f"mode[{bits},{t_bits}]")


# ---------------------------------------------------------------- helpers for relations


Relation = tuple[list[Factor], list[tuple[int, list[int]]]]
"""A pointwise relation: factors, and terms (coefficient, factor indices) summing to 0."""

L_BATCH = b"model/pointwise"


def zero_check(eng: Engine, space: Space, factors: Sequence[Factor],
               terms: Sequence[tuple[int, Sequence[int]]]) -> None:
    """sum_s c_s prod factors = 0 at every entry of ``space`` (at a random point, one
    sumcheck over the space's variables)."""
    coords = eng.random_coords(space)
    eng.contract(eng.ctx.public(0), coords, [], factors, terms, _axes(space, factors))


def zero_checks(eng: Engine, space: Space, relations: Sequence[Relation]) -> None:
    """Every relation 0 at every entry of ``space``, in ONE sumcheck: the relations combined
    with powers of a challenge (each tensor member a single factor however many relations
    read it; one claim per member at one point)."""
    if len(relations) == 1:
        zero_check(eng, space, *relations[0])
        return
    g = eng.ctx.challenge(L_BATCH)
    factors: list[Factor] = []
    terms: list[tuple[int, list[int]]] = []
    gk = 1
    for fs, ts in relations:
        off = len(factors)
        factors.extend(fs)
        terms.extend((c * gk % P, [off + i for i in idx]) for c, idx in ts)
        gk = gk * g % P
    zero_check(eng, space, factors, terms)


class Pointwise:
    """Pointwise relations gathered per space while a proof runs, proven at the end in one
    batched sumcheck per space (:func:`zero_checks`), spaces in the order first named."""

    def __init__(self) -> None:
        self.by_space: dict[str, tuple[Space, list[Relation]]] = {}

    def add(self, space: Space, factors: Sequence[Factor],
            terms: Sequence[tuple[int, Sequence[int]]]) -> None:
        self.by_space.setdefault(space.name, (space, []))[1].append(
            (list(factors), [(c, list(i)) for c, i in terms]))

    def prove(self, eng: Engine) -> None:
        for space, rels in self.by_space.values():
            zero_checks(eng, space, rels)


def _axes(space: Space, factors: Sequence[Factor], extra: Sequence[Axis] = ()
          ) -> dict[str, Axis]:
    """Every axis the relation names, outermost first (the space's order)."""
    out = {a.name: a for a in space.axes}
    for a in extra:
        out.setdefault(a.name, a)
    return out


def limbs_of(x: np.ndarray, count: int) -> list[np.ndarray]:
    """count 16-bit limbs of a non-negative int64 tensor (low limb first)."""
    x = np.asarray(x, dtype=np.int64)
    if x.size and (x.min() < 0 or (count < 4 and x.max() >> (LIMB * count))):
        raise ProverError("a range-checked value is outside its declared range")
    return [(x >> (LIMB * j)) & ((1 << LIMB) - 1) for j in range(count)]


def limbs_lin(space: Space, name: str, count: int) -> Lin:
    lin = Lin(space)
    for j in range(count):
        lin = lin + Lin.of(space, f"{name}.{j}", 1 << (LIMB * j))
    return lin


def limb_columns(eng: Engine, space: Space, name: str, count: int) -> None:
    t = eng.range_table(0, 1 << LIMB)
    for j in range(count):
        eng.column(t, Lin.of(space, f"{name}.{j}"))


def limb_names(name: str, count: int) -> list[str]:
    return [f"{name}.{j}" for j in range(count)]
