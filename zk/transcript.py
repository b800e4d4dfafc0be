"""Fiat–Shamir transcript: the prover's and the verifier's shared source of challenges.

Construction: a running SHA3-512 state. Every absorb appends ``label || kind || length || data``
(label and data length-prefixed, so no two absorb sequences collide); a challenge hashes a copy
of the state with its label, reduces the 512-bit digest mod r (statistical distance from uniform
about 2^-258), and absorbs the digest back so later challenges depend on earlier ones. The
transcript opens with the protocol name, so proofs of different protocols never share challenges.

Labels are module constants of the protocols that use them; both sides must absorb the same
values with the same labels in the same order, which is why each protocol absorbs through one
shared helper rather than spelling the sequence out twice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np

from zk.field import Fr

_KIND_BYTES = b"b"
_KIND_SCALAR = b"s"
_KIND_VECTOR = b"v"
_KIND_POINT = b"p"
_KIND_CHALLENGE = b"c"


def _lp(data: bytes) -> bytes:
    return len(data).to_bytes(8, "little") + data


class Transcript:
    """A Fiat–Shamir transcript over SHA3-512, producing challenges in Fr."""

    def __init__(self, protocol: bytes) -> None:
        self._h = hashlib.sha3_512()
        self._h.update(_lp(b"zkfhe-attention/transcript/v1"))
        self._h.update(_lp(protocol))

    def _absorb(self, label: bytes, kind: bytes, data: bytes) -> None:
        self._h.update(_lp(label) + kind + _lp(data))

    def absorb_bytes(self, label: bytes, data: bytes) -> None:
        self._absorb(label, _KIND_BYTES, bytes(data))

    def absorb_scalar(self, label: bytes, x: int) -> None:
        """Absorb one field element, given as an int in [0, r)."""
        if not 0 <= x < Fr.modulus:
            raise ValueError("transcript scalar out of range")
        self._absorb(label, _KIND_SCALAR, x.to_bytes(32, "little"))

    def absorb_scalars(self, label: bytes, xs: Iterable[int]) -> None:
        """Absorb a list of field elements given as ints."""
        xs = list(xs)
        if any(not 0 <= x < Fr.modulus for x in xs):
            raise ValueError("transcript scalar out of range")
        self._absorb(label, _KIND_VECTOR, b"".join(x.to_bytes(32, "little") for x in xs))

    def absorb_vector(self, label: bytes, a: np.ndarray) -> None:
        """Absorb a field vector ((n, 4) Montgomery array); same bytes as absorb_scalars."""
        self._absorb(label, _KIND_VECTOR, Fr.to_bytes(a).tobytes())

    def absorb_point(self, label: bytes, encoded: bytes) -> None:
        """Absorb a curve point in its canonical compressed encoding."""
        self._absorb(label, _KIND_POINT, bytes(encoded))

    def absorb_points(self, label: bytes, encoded: Iterable[bytes]) -> None:
        self._absorb(label, _KIND_POINT, b"".join(bytes(e) for e in encoded))

    def challenge(self, label: bytes) -> int:
        """A challenge in Fr bound to everything absorbed so far."""
        h = self._h.copy()
        h.update(_lp(label) + _KIND_CHALLENGE)
        digest = h.digest()
        self._absorb(label, _KIND_CHALLENGE, digest)
        return int.from_bytes(digest, "little") % Fr.modulus

    def challenges(self, label: bytes, n: int) -> list[int]:
        return [self.challenge(label) for _ in range(n)]
