"""The model owner's published FHE parameters: the circuit's client specs, bound to the model
commitment.

``zkfhe commit`` writes ``model.params`` next to ``model.commitment``; the owner publishes both.
A client that holds them does not take encryption parameters from the server it is about to
trust with its input: it encrypts under the owner's client specs, refuses a server whose specs
differ (another circuit, or the same circuit with weakened parameters), and checks the specs
against 128-bit security by concrete's own model (:mod:`fhe.security`) whatever their source.

File (``zk.encoding``: magic, kind, version; never pickle)::

    model_digest    32 bytes   SHA3-256 of the model commitment file these parameters serve
    circuit_id      32 bytes   SHA3-256 of the client specs' payload (what every blob names)
    circuit_digest  32 bytes   SHA3-256 of the compiled circuit file (circuit/circuit.zip)
    client_specs    bytes      the SPECS envelope of fhe.client (concrete's specs + input rules)

The file is as trustworthy as the channel it came from, like the commitment: it names the
commitment it belongs to, and a client refuses a pair that does not match.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from zk.encoding import Reader, Writer

PARAMS_FILE = "model.params"
MAX_SPECS = 64 << 20


def _sha3(data: bytes) -> bytes:
    return hashlib.sha3_256(data).digest()


@dataclass(frozen=True)
class PublishedParams:
    """See the module docstring."""

    KIND: ClassVar[str] = "zkfhe-published-params"
    VERSION: ClassVar[int] = 1

    model_digest: bytes
    circuit_id: bytes
    circuit_digest: bytes
    client_specs: bytes = field(repr=False)

    def write(self, w: Writer) -> None:
        w.raw_bytes(self.model_digest)
        w.raw_bytes(self.circuit_id)
        w.raw_bytes(self.circuit_digest)
        w.raw_bytes(self.client_specs)

    @classmethod
    def read(cls, r: Reader, version: int) -> "PublishedParams":
        digests = []
        for _ in range(3):
            d = r.raw_bytes(32)
            if len(d) != 32:
                raise r.error("a digest is 32 bytes")
            digests.append(d)
        specs = r.raw_bytes(MAX_SPECS)
        from fhe.errors import FheInputError
        from fhe.wire import Kind, unpack

        try:
            env = unpack(specs, Kind.SPECS)
        except FheInputError as e:
            raise r.error(f"client specs: {e}") from None
        if _sha3(env.payload) != digests[1]:
            raise r.error("the client specs are not those of the circuit id")
        return cls(digests[0], digests[1], digests[2], specs)


def make_params(commitment, circuit_dir: str | Path) -> PublishedParams:
    """The parameters file of a compiled circuit folder (``circuit.zip``, ``client.specs``)
    for a model commitment."""
    from fhe.server import CIRCUIT_FILE, SPECS_FILE
    from fhe.wire import Kind, unpack

    circuit_dir = Path(circuit_dir)
    specs = (circuit_dir / SPECS_FILE).read_bytes()
    return PublishedParams(commitment.digest, _sha3(unpack(specs, Kind.SPECS).payload),
                           _sha3((circuit_dir / CIRCUIT_FILE).read_bytes()), specs)


def check_against(params: PublishedParams, commitment_digest: bytes,
                  served_specs: bytes | None = None) -> None:
    """ValueError unless the parameters belong to this model commitment and, given the specs
    a server hands out, those are byte for byte the published ones."""
    if params.model_digest != commitment_digest:
        raise ValueError("the parameters file belongs to another model commitment")
    if served_specs is not None and bytes(served_specs) != params.client_specs:
        raise ValueError("the server's client specs differ from the model owner's published "
                         "parameters (another circuit, or changed encryption parameters)")
