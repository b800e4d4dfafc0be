"""Plain claims of the retired protocol (value in the clear).

A :class:`Claim` says "the multilinear extension of some vector takes ``value`` at ``point``".
A verifier step that reduces one statement to smaller ones returns Claims; the caller must
discharge each one, by an opening of the vector's commitment (:mod:`zk.hyrax`,
:class:`zk.stack.ClaimBook`), by computing the extension itself (public tables and inputs), or
by feeding it to the next reduction. A Claim that nobody discharges proves nothing.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Claim:
    """v~(point) = value, with point in little-endian variable order (see zk.multilinear)."""

    point: tuple[int, ...]
    value: int
