"""Claims: the currency passed between sub-protocols.

A :class:`ComClaim` says "the multilinear extension of some vector takes, at ``point``, the
value committed in ``com``" (a Pedersen commitment, :class:`~zk.protocol.context.Com`). A step
that reduces one statement to smaller ones returns ComClaims; the caller must discharge each
one: by a zero-knowledge opening of the vector's commitment (:func:`zk.commit.hyrax.open`, or
:class:`zk.head.stack.ClaimBook` for stacked tensors), by binding it to a lookup
(:meth:`zk.lookup.logup.LookupEnd.bind`), or by feeding it to the next reduction (a sumcheck
whose claimed sum it is). A claim that nobody discharges proves nothing; an open sumcheck or an
unbound lookup makes :meth:`zk.protocol.context.Context.finish` fail.
"""

from __future__ import annotations

from dataclasses import dataclass

from zk.protocol.context import Com


@dataclass(frozen=True)
class ComClaim:
    """v~(point) = the value committed in ``com``, point in little-endian variable order
    (see :mod:`zk.multilinear`)."""

    point: tuple[int, ...]
    com: Com
