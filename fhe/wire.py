"""Byte formats of everything that crosses the wire between the FHE client and server.

Every blob is one envelope (version 1, big-endian, no pickle)::

    magic      6 bytes   b"ZKFHE\\0"
    version    1 byte    1
    kind       1 byte    Kind (SPECS, EVAL_KEYS, INPUT, OUTPUT)
    circuit_id 32 bytes  sha3-256 of the SPECS payload (zero in a SPECS envelope)
    key_id     32 bytes  sha3-256 of the EVAL_KEYS payload (zero in SPECS and EVAL_KEYS)
    length     8 bytes   payload length
    digest     32 bytes  sha3-256 of the payload
    payload    length bytes (concrete's own serialization, or JSON for SPECS)

The digest refuses accidental corruption and truncation; the ids refuse material from another
circuit or key set. None of this authenticates the sender: a malicious server can return any
well-formed output, which is what the canaries of DESIGN.md section 3 are for.

``ciphertext_digest(blob)`` (sha3-256 of the whole envelope) is the digest a receipt binds.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Optional

from .errors import FheInputError

__all__ = ["HEADER_SIZE", "Kind", "Envelope", "pack", "unpack", "ciphertext_digest", "sha3", "ZERO_ID"]

MAGIC = b"ZKFHE\x00"
VERSION = 1
ZERO_ID = bytes(32)
_HEADER = struct.Struct(">6sBB32s32sQ32s")
HEADER_SIZE = _HEADER.size  # 112 bytes before the payload


class Kind(IntEnum):
    SPECS = 1
    EVAL_KEYS = 2
    INPUT = 3
    OUTPUT = 4
    SECRET_KEYS = 5


def sha3(data: bytes) -> bytes:
    return hashlib.sha3_256(data).digest()


def ciphertext_digest(blob: bytes) -> bytes:
    """Deterministic digest of one serialized ciphertext: sha3-256 of its envelope bytes."""
    return sha3(bytes(blob))


@dataclass(frozen=True)
class Envelope:
    kind: Kind
    circuit_id: bytes
    key_id: bytes
    payload: bytes


def pack(kind: Kind, payload: bytes, circuit_id: bytes = ZERO_ID, key_id: bytes = ZERO_ID) -> bytes:
    header = _HEADER.pack(MAGIC, VERSION, int(kind), circuit_id, key_id, len(payload), sha3(payload))
    return header + payload


def unpack(
    blob,
    kind: Kind,
    circuit_id: Optional[bytes] = None,
    key_id: Optional[bytes] = None,
) -> Envelope:
    """Parse and check one envelope; every failure is an FheInputError naming what is wrong."""
    if not isinstance(blob, (bytes, bytearray, memoryview)):
        raise FheInputError(f"expected bytes for a {kind.name} blob, got {type(blob).__name__}")
    blob = bytes(blob)
    if len(blob) < _HEADER.size:
        raise FheInputError(f"{kind.name} blob truncated: {len(blob)} bytes, header is {_HEADER.size}")
    magic, version, k, cid, kid, length, digest = _HEADER.unpack_from(blob)
    if magic != MAGIC:
        raise FheInputError(f"not a zkfhe {kind.name} blob (bad magic)")
    if version != VERSION:
        raise FheInputError(f"unsupported {kind.name} format version {version}")
    if k != int(kind):
        name = Kind(k).name if k in Kind._value2member_map_ else str(k)
        raise FheInputError(f"expected a {kind.name} blob, got {name}")
    payload = blob[_HEADER.size:]
    if len(payload) != length:
        raise FheInputError(
            f"{kind.name} blob has {len(payload)} payload bytes, header says {length} "
            "(truncated or trailing bytes)"
        )
    if sha3(payload) != digest:
        raise FheInputError(f"{kind.name} blob corrupted: payload digest mismatch")
    if circuit_id is not None and cid != circuit_id:
        raise FheInputError(f"{kind.name} blob was made for another circuit")
    if key_id is not None and kid != key_id:
        raise FheInputError(f"{kind.name} blob was made under another key set")
    return Envelope(Kind(k), cid, kid, payload)
