"""The exceptions a caller of the proof system can see.

Every check a verifier makes raises :class:`VerificationError` on failure; malformed bytes
(proof files, commitments) raise :class:`MalformedProofError`, a subclass, so that a caller
who only wants "accepted or not" catches one type. Provers raise :class:`ProverError` when
asked to prove a false statement (for example a lookup of a value that is not in the table).
"""

from __future__ import annotations


class ZkError(Exception):
    """Base class of every error raised on purpose by this package."""


class VerificationError(ZkError):
    """A proof was rejected: some check of the verifier failed. The message says which."""


class MalformedProofError(VerificationError, ValueError):
    """Bytes that do not decode to a well-formed object of the expected kind.

    Raised for truncated or trailing bytes, a wrong magic number, kind or version, a wrong
    type tag, a field element not below the modulus, a point off the curve, or a length
    beyond the stated bound.
    """


class ProverError(ZkError):
    """The prover was asked to prove something false, or got inputs of the wrong shape."""
