"""Stacks: several tensors of one padded size under one Hyrax commitment, and the book-keeping
of claims on them.

A stack of k members, each a vector of 2^n entries (a tensor flattened row-major and
zero-padded), is the vector of 2^(n + s) entries (s = ceil(log2 k)) whose member i occupies
entries [i 2^n, (i + 1) 2^n): the member index lives in the high s variables. A claim
member_i~(z) = v is the stack claim stack~(z, bits(i)) = v. Claims on different members at one
point share the opening's column point when the columns cover a member (log_cols <= n), so
one inner-product argument proves all of them.

:class:`ClaimBook` collects the committed claims a protocol produces, per stack, in order; the
protocol (run by both roles) opens each stack once at the end, in zero knowledge.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from zk.claims import ComClaim
from zk.commit import hyrax
from zk.errors import ProverError
from zk.protocol.context import Com, Context


def _bits(i: int, s: int) -> tuple[int, ...]:
    return tuple((i >> k) & 1 for k in range(s))


@dataclass(frozen=True)
class StackLayout:
    """Member names (in order) and the number of variables of one member."""

    names: tuple[str, ...]
    member_vars: int

    @property
    def index_vars(self) -> int:
        return max(0, (len(self.names) - 1).bit_length())

    @property
    def num_vars(self) -> int:
        return self.member_vars + self.index_vars

    def point(self, name: str, point: Sequence[int]) -> tuple[int, ...]:
        """The stack point equivalent to member ``name``'s extension at ``point``."""
        if len(point) != self.member_vars:
            raise ValueError(f"a claim on {name} needs {self.member_vars} coordinates")
        return tuple(point) + _bits(self.names.index(name), self.index_vars)

    def stacked(self, members: Mapping[str, np.ndarray]) -> np.ndarray:
        """The stack's int64 vector from the members' (padded, flattened) int arrays."""
        size = 1 << self.member_vars
        out = np.zeros(size << self.index_vars, dtype=np.int64)
        for i, name in enumerate(self.names):
            v = np.asarray(members[name], dtype=np.int64).reshape(-1)
            if v.size != size:
                raise ProverError(f"stack member {name} has {v.size} entries, expected {size}")
            out[i * size:(i + 1) * size] = v
        return out


def commit(layout: StackLayout, members: Mapping[str, np.ndarray], log_cols: int | None = None,
           rng: np.random.Generator | None = None
           ) -> tuple[hyrax.HyraxCommitment, hyrax.HyraxWitness]:
    """Commit to a stack (hiding Hyrax commitment of the stacked vector)."""
    return hyrax.commit(layout.stacked(members), log_cols=log_cols, rng=rng)


@dataclass
class ClaimBook:
    """Committed claims per stack, in the order the protocol makes them; each stack is opened
    once, at the end, in zero knowledge."""

    claims: dict[str, list[ComClaim]] = field(default_factory=dict)

    def add(self, stack: str, layout: StackLayout, member: str, point: Sequence[int],
            com: Com) -> None:
        """Record member~(point) = (value committed in com) on ``stack``."""
        self.claims.setdefault(stack, []).append(ComClaim(layout.point(member, point), com))

    def add_raw(self, stack: str, point: Sequence[int], com: Com) -> None:
        """Record a claim on a tensor that is not a stack (one member, no index bits)."""
        self.claims.setdefault(stack, []).append(ComClaim(tuple(point), com))

    def open(self, ctx: Context, stack: str, tensor: hyrax.Tensor) -> None:
        """Open every claim recorded on ``stack`` (both roles)."""
        claims = self.claims.get(stack, [])
        if not claims:
            raise ValueError(f"no claims on stack {stack}")
        hyrax.open(ctx, tensor, claims)
