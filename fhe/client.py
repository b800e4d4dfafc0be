"""Client side of the encrypted head: holds the secret keys, validates, encrypts, decrypts.

    client = HeadClient(server.client_specs(), head=head)   # head is optional (see validate)
    client.keygen()                                         # fresh keys (CSPRNG seeds)
    keys = client.evaluation_keys()                         # bytes for the server
    cts = client.encrypt_batch([x0, x1, ...])               # one blob per input
    ys = client.decrypt_batch(server.run_batch(cts))

The client specs are checked before anything else (``fhe.security``): parameters below
128-bit security by concrete's own security model, or an input that would not be encrypted,
raise ``fhe.security.InsecureParameters``; the client never generates keys for them.

Every input is validated before encryption (``validate``): integer dtype, shape (L, d_model),
entries in the quantized input range, the optional token norm bound, and, when the client is
given the ``QuantizedHead``, the calibrated bounds, by running the integer reference itself (in
calibrated mode an input outside the calibrated intervals is rejected by the reference but has
undefined results under FHE, so it must never be encrypted). Failures are ``ValueError``.
Blobs that fail to parse or belong to another circuit or key set raise ``FheInputError``.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
from concrete import fhe

from zk.attention_ref import QuantizedHead, run_reference

from .errors import FheInputError
from .security import MIN_SECURITY_BITS, check_client_specs
from .wire import Kind, ZERO_ID, pack, sha3, unpack

__all__ = ["InputSpec", "HeadClient", "parse_client_specs"]

SPECS_FORMAT = "zkfhe-head-client/1"


class InputSpec:
    """The public constraints on one plaintext input: shape, integer range, token norm bound."""

    def __init__(self, shape, lo: int, hi: int, x_norm2_bound: Optional[int] = None):
        self.shape = tuple(int(s) for s in shape)
        self.lo, self.hi = int(lo), int(hi)
        self.x_norm2_bound = None if x_norm2_bound is None else int(x_norm2_bound)

    @classmethod
    def of_head(cls, head: QuantizedHead) -> "InputSpec":
        cfg = head.config
        return cls((cfg.seq_len, cfg.d_model), *head.bounds["x"], cfg.x_norm2_bound)

    def to_dict(self) -> dict:
        return {"shape": list(self.shape), "lo": self.lo, "hi": self.hi,
                "x_norm2_bound": self.x_norm2_bound}

    def __eq__(self, other) -> bool:
        return isinstance(other, InputSpec) and self.to_dict() == other.to_dict()

    def check(self, x) -> np.ndarray:
        """The input as int64 if it satisfies shape, dtype and range; ValueError otherwise."""
        if isinstance(x, (bytes, bytearray, str)) or x is None:
            raise ValueError(f"input must be an integer array, got {type(x).__name__}")
        a = np.asarray(x)
        if a.dtype == object or not np.issubdtype(a.dtype, np.integer):
            raise ValueError(f"input must have an integer dtype, got {a.dtype}")
        if a.shape != self.shape:
            raise ValueError(f"input must have shape {self.shape}, got {a.shape}")
        a = a.astype(np.int64)
        if a.size and (a.min() < self.lo or a.max() > self.hi):
            raise ValueError(
                f"input entries must lie in [{self.lo}, {self.hi}], got "
                f"[{int(a.min())}, {int(a.max())}]"
            )
        if self.x_norm2_bound is not None:
            n2 = int(np.max(np.sum(a * a, axis=-1)))
            if n2 > self.x_norm2_bound:
                raise ValueError(f"input token squared norm {n2} exceeds {self.x_norm2_bound}")
        return a


def make_client_specs(concrete_specs: bytes, spec: InputSpec) -> bytes:
    """The SPECS blob: concrete's client specs and the public input constraints."""
    payload = json.dumps(
        {"format": SPECS_FORMAT, "input": spec.to_dict(),
         "concrete": concrete_specs.decode("utf-8")},
        sort_keys=True, separators=(",", ":"),
    ).encode("utf-8")
    return pack(Kind.SPECS, payload)


def parse_client_specs(blob: bytes):
    """SPECS blob -> (circuit_id, fhe.ClientSpecs, InputSpec, concrete specs bytes)."""
    env = unpack(blob, Kind.SPECS)
    try:
        d = json.loads(env.payload.decode("utf-8"))
        if d.get("format") != SPECS_FORMAT:
            raise FheInputError(f"unsupported client specs format {d.get('format')!r}")
        inp = d["input"]
        spec = InputSpec(inp["shape"], inp["lo"], inp["hi"], inp.get("x_norm2_bound"))
        raw = d["concrete"].encode("utf-8")
        specs = fhe.ClientSpecs.deserialize(raw)
    except FheInputError:
        raise
    except Exception as e:  # noqa: BLE001 - anything concrete or json raises on bad bytes
        raise FheInputError(f"client specs refused: {e}") from None
    return sha3(env.payload), specs, spec, raw


class HeadClient:
    """Keys, validation, encryption and decryption for one compiled head (one key set)."""

    def __init__(
        self,
        client_specs: bytes,
        head: Optional[QuantizedHead] = None,
        keyset_cache_directory: Optional[Union[str, Path]] = None,
        min_security_bits: int = MIN_SECURITY_BITS,
    ):
        self.circuit_id, self._specs, self.input_spec, raw = parse_client_specs(client_specs)
        # before any key exists: a server's weak parameters would expose the inputs
        self.security = check_client_specs(raw, self._specs, min_security_bits)
        if head is not None and InputSpec.of_head(head) != self.input_spec:
            raise ValueError("the head does not match the circuit's input constraints")
        self.head = head
        self._client = fhe.Client(self._specs, keyset_cache_directory=keyset_cache_directory)
        self._eval_blob: Optional[bytes] = None
        self.key_id: bytes = ZERO_ID

    # -------------------------------------------------------------------------- keys

    def keygen(self, seed: Optional[int] = None) -> bytes:
        """Generate a fresh key set; returns its key id. ``seed`` is for tests only."""
        if seed is None:
            s1, s2 = secrets.randbits(128), secrets.randbits(128)
        else:
            s1, s2 = int(seed), int(seed) + 1
        self._client.keygen(force=True, secret_seed=s1, encryption_seed=s2)
        raw = self._client.evaluation_keys.serialize()
        self._eval_blob = pack(Kind.EVAL_KEYS, raw, self.circuit_id, ZERO_ID)
        self.key_id = sha3(raw)
        return self.key_id

    def export_secret(self) -> bytes:
        """The whole key set, SECRET keys included, as a SECRET_KEYS blob. It never leaves the
        client; it lets a later process decrypt this session's outputs."""
        if self._eval_blob is None:
            raise RuntimeError("call keygen() first")
        return pack(Kind.SECRET_KEYS, self._client.keys.serialize(), self.circuit_id, self.key_id)

    def load_secret(self, blob: bytes) -> bytes:
        """Restore a key set exported by :meth:`export_secret`; returns its key id."""
        env = unpack(blob, Kind.SECRET_KEYS, self.circuit_id)
        try:
            keys = fhe.Keys.deserialize(env.payload)
            self._client.keys = keys
            raw = self._client.evaluation_keys.serialize()
        except Exception as e:  # noqa: BLE001 - concrete raises RuntimeError on bad bytes
            raise FheInputError(f"secret keys refused: {e}") from None
        if sha3(raw) != env.key_id:
            raise FheInputError("secret keys do not match their key id")
        self._eval_blob = pack(Kind.EVAL_KEYS, raw, self.circuit_id, ZERO_ID)
        self.key_id = env.key_id
        return self.key_id

    def evaluation_keys(self) -> bytes:
        """The EVAL_KEYS blob (compressed evaluation keys) to send to the server."""
        if self._eval_blob is None:
            raise RuntimeError("call keygen() first")
        return self._eval_blob

    # -------------------------------------------------------------------------- data

    def validate(self, x) -> np.ndarray:
        """x as int64 after every check the circuit relies on (ValueError otherwise)."""
        a = self.input_spec.check(x)
        if self.head is not None:
            try:
                run_reference(a, self.head)
            except ValueError as e:  # BoundsViolation: outside the calibrated intervals
                raise ValueError(f"input outside the head's calibrated bounds: {e}") from None
        return a

    def encrypt(self, x) -> bytes:
        """Validate, then encrypt one input: an INPUT blob."""
        a = self.validate(x)
        if self._eval_blob is None:
            raise RuntimeError("call keygen() first")
        value = self._client.encrypt(a)
        return pack(Kind.INPUT, value.serialize(), self.circuit_id, self.key_id)

    def encrypt_batch(self, xs: Sequence) -> list:
        """Validate every input first (nothing is encrypted if one is bad), then encrypt each."""
        arrays = [self.validate(x) for x in xs]
        return [self.encrypt(a) for a in arrays]

    def decrypt(self, blob: bytes) -> np.ndarray:
        """Decrypt one OUTPUT blob made under this client's key set."""
        env = unpack(blob, Kind.OUTPUT, self.circuit_id, self.key_id)
        try:
            y = self._client.decrypt(fhe.Value.deserialize(env.payload))
        except Exception as e:  # noqa: BLE001 - concrete raises RuntimeError on bad values
            raise FheInputError(f"output ciphertext refused: {e}") from None
        return np.asarray(y, dtype=np.int64)

    def decrypt_batch(self, blobs: Sequence[bytes]) -> list:
        return [self.decrypt(b) for b in blobs]
