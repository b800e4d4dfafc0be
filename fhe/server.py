"""Server side of the encrypted head: a saved circuit, evaluation keys, no secret keys.

    server = HeadServer.from_circuit(circuit)       # or HeadServer.load(folder)
    server.save(folder)                             # circuit.zip + client.specs
    specs = server.client_specs()                   # bytes for clients
    server.add_evaluation_keys(keys_blob)           # -> key id
    out_blobs = server.run_batch(in_blobs)          # k+1 independent ciphertexts

Every blob is checked (envelope, circuit id, key id, concrete deserialization) before any
evaluation starts; refusals raise ``FheInputError``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Sequence, Union

from concrete import fhe

from .client import InputSpec, make_client_specs, parse_client_specs
from .errors import FheInputError
from .wire import Kind, ZERO_ID, pack, sha3, unpack

__all__ = ["HeadServer"]

CIRCUIT_FILE = "circuit.zip"
SPECS_FILE = "client.specs"


class HeadServer:
    """Evaluates INPUT blobs with the evaluation keys their key id names."""

    def __init__(self, server: fhe.Server, client_specs: bytes):
        self._server = server
        self._specs_blob = bytes(client_specs)
        self.circuit_id, _, self.input_spec, raw = parse_client_specs(self._specs_blob)
        if _canonical(raw) != _canonical(server.client_specs.serialize()):
            raise FheInputError("client specs do not belong to this circuit")
        self._keys: dict = {}

    @classmethod
    def from_circuit(cls, circuit: fhe.Circuit, head=None) -> "HeadServer":
        """From a freshly compiled circuit (``compile_head`` attaches ``circuit.head``)."""
        head = head if head is not None else getattr(circuit, "head", None)
        if head is None:
            raise ValueError("the head is needed for the public input constraints")
        raw = circuit.server.client_specs.serialize()
        return cls(circuit.server, make_client_specs(raw, InputSpec.of_head(head)))

    def save(self, folder: Union[str, Path]) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self._server.save(folder / CIRCUIT_FILE)
        (folder / SPECS_FILE).write_bytes(self._specs_blob)
        return folder

    @classmethod
    def load(cls, folder: Union[str, Path]) -> "HeadServer":
        folder = Path(folder)
        specs = (folder / SPECS_FILE).read_bytes()
        return cls(fhe.Server.load(folder / CIRCUIT_FILE), specs)

    def client_specs(self) -> bytes:
        """The SPECS blob a client is built from."""
        return self._specs_blob

    # -------------------------------------------------------------------------- keys

    def add_evaluation_keys(self, blob: bytes) -> bytes:
        """Load one client's EVAL_KEYS blob; returns its key id (sha3-256 of the keys)."""
        env = unpack(blob, Kind.EVAL_KEYS, self.circuit_id, ZERO_ID)
        try:
            keys = fhe.EvaluationKeys.deserialize(env.payload)
        except Exception as e:  # noqa: BLE001 - concrete raises RuntimeError on bad bytes
            raise FheInputError(f"evaluation keys refused: {e}") from None
        key_id = sha3(env.payload)
        self._keys[key_id] = keys
        return key_id

    def drop_evaluation_keys(self, key_id: bytes) -> None:
        self._keys.pop(key_id, None)

    # -------------------------------------------------------------------------- evaluation

    def _parse_input(self, blob: bytes):
        env = unpack(blob, Kind.INPUT, self.circuit_id)
        if env.key_id not in self._keys:
            raise FheInputError("INPUT blob names evaluation keys this server does not hold")
        try:
            value = fhe.Value.deserialize(env.payload)
        except Exception as e:  # noqa: BLE001
            raise FheInputError(f"input ciphertext refused: {e}") from None
        return env.key_id, value

    def run(self, blob: bytes) -> bytes:
        """Evaluate one INPUT blob; returns the OUTPUT blob."""
        return self.run_batch([blob])[0]

    def run_batch(self, blobs: Sequence[bytes]) -> list:
        """Evaluate independent INPUT blobs (all checked before the first evaluation)."""
        parsed = [self._parse_input(b) for b in blobs]
        outs = []
        for key_id, value in parsed:
            try:
                out = self._server.run(value, evaluation_keys=self._keys[key_id])
            except Exception as e:  # noqa: BLE001 - e.g. a ciphertext of the wrong shape
                raise FheInputError(f"input ciphertext refused by the circuit: {e}") from None
            outs.append(pack(Kind.OUTPUT, out.serialize(), self.circuit_id, key_id))
        return outs


def _canonical(specs: bytes) -> str:
    return hashlib.sha3_256(
        json.dumps(json.loads(specs), sort_keys=True).encode("utf-8")
    ).hexdigest()
