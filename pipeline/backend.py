"""FHE backends for a session: real TFHE through concrete, or a simulation for tests.

:class:`RealFhe` compiles the integer head (``fhe.compile``), serves it with
``fhe.server.HeadServer`` and makes a ``fhe.client.HeadClient`` per client. :class:`SimulatedFhe`
has the same interface but does not encrypt: its "ciphertexts" are the plaintexts in the same
envelopes, and evaluation is ``circuit.simulate`` (bit-exact with the circuit) or the numpy
reference. It exists to run many sessions quickly in tests and benchmarks and says so in every
blob's circuit id; it is never chosen silently.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence

import numpy as np

from fhe.errors import FheInputError
from fhe.wire import ZERO_ID, Kind, pack, sha3, unpack
from zk.attention_ref import QuantizedHead, run_reference


# bytes of uncompressed bootstrap + keyswitch keys above which a real run does not fit this
# kind of machine (24 GB, 2 cores): keygen needs several times the key size in memory
REAL_KEY_LIMIT = 2.5e9


class RealFhe:
    """A compiled circuit of the head: its server and fresh clients."""

    simulated = False

    def __init__(self, head: QuantizedHead, calib_x: np.ndarray) -> None:
        from fhe.compile import compile_head, make_inputset
        from fhe.server import HeadServer

        self.head = head
        self.circuit = compile_head(head, make_inputset(head, calib_x))
        self.server = HeadServer.from_circuit(self.circuit, head)

    def client(self):
        from fhe.client import HeadClient

        return HeadClient(self.server.client_specs(), self.head)


class _SimClient:
    def __init__(self, circuit_id: bytes, head: QuantizedHead) -> None:
        self.circuit_id = circuit_id
        self.head = head
        self.key_id = ZERO_ID
        self._keys: bytes | None = None

    def keygen(self) -> bytes:
        self._keys = b"simulated evaluation keys " + secrets.token_bytes(32)
        self.key_id = sha3(self._keys)
        return self.key_id

    def evaluation_keys(self) -> bytes:
        if self._keys is None:
            raise RuntimeError("call keygen() first")
        return pack(Kind.EVAL_KEYS, self._keys, self.circuit_id, ZERO_ID)

    def export_secret(self) -> bytes:
        """Like HeadClient.export_secret (a simulation has no secret: its keys' bytes)."""
        if self._keys is None:
            raise RuntimeError("call keygen() first")
        return pack(Kind.SECRET_KEYS, self._keys, self.circuit_id, self.key_id)

    def load_secret(self, blob: bytes) -> bytes:
        env = unpack(blob, Kind.SECRET_KEYS, self.circuit_id)
        if sha3(env.payload) != env.key_id:
            raise FheInputError("secret keys do not match their key id")
        self._keys, self.key_id = env.payload, env.key_id
        return self.key_id

    def encrypt_batch(self, xs: Sequence[np.ndarray]) -> list[bytes]:
        arrays = []
        for x in xs:
            a = np.asarray(x)
            if not np.issubdtype(a.dtype, np.integer):
                raise ValueError("inputs must be integer arrays")
            try:
                if isinstance(self.head, QuantizedHead):
                    run_reference(a.astype(np.int64), self.head)
                else:  # a public commitment: the checks a client without weights can make
                    _check_public(a.astype(np.int64), self.head)
            except ValueError as e:
                raise ValueError(f"input refused: {e}") from None
            arrays.append(a.astype("<i8"))
        return [pack(Kind.INPUT, a.tobytes(), self.circuit_id, self.key_id) for a in arrays]

    def decrypt(self, blob: bytes) -> np.ndarray:
        env = unpack(blob, Kind.OUTPUT, self.circuit_id, self.key_id)
        cfg = self.head.config
        if len(env.payload) != 8 * cfg.seq_len * cfg.d_head:
            raise FheInputError("simulated output of the wrong size")
        return np.frombuffer(env.payload, dtype="<i8").astype(np.int64).reshape(
            cfg.seq_len, cfg.d_head)


def _check_public(x: np.ndarray, commitment) -> None:
    cfg = commitment.config
    if x.shape != (cfg.seq_len, cfg.d_model):
        raise ValueError(f"input must have shape {(cfg.seq_len, cfg.d_model)}, got {x.shape}")
    lo, hi = commitment.bounds["x"]
    if x.min() < lo or x.max() > hi:
        raise ValueError(f"input entries must lie in [{lo}, {hi}]")
    if cfg.x_norm2_bound is not None and np.sum(x * x, axis=-1).max() > cfg.x_norm2_bound:
        raise ValueError(f"a token's squared norm exceeds {cfg.x_norm2_bound}")


def simulated_circuit_id(config) -> bytes:
    """The circuit id every simulated blob carries: it names the head's configuration and says
    that nothing is encrypted."""
    return sha3(b"SIMULATED, NOT ENCRYPTED " + repr(config).encode())


class _SimServer:
    def __init__(self, circuit_id: bytes, head: QuantizedHead,
                 evaluate: Callable[[np.ndarray], np.ndarray]) -> None:
        self.circuit_id = circuit_id
        self.head = head
        self.evaluate = evaluate
        self._keys: set[bytes] = set()

    def add_evaluation_keys(self, blob: bytes) -> bytes:
        env = unpack(blob, Kind.EVAL_KEYS, self.circuit_id, ZERO_ID)
        key_id = sha3(env.payload)
        self._keys.add(key_id)
        return key_id

    def run_batch(self, blobs: Sequence[bytes]) -> list[bytes]:
        cfg = self.head.config
        outs = []
        for b in blobs:
            env = unpack(b, Kind.INPUT, self.circuit_id)
            if env.key_id not in self._keys or len(env.payload) != 8 * cfg.seq_len * cfg.d_model:
                raise FheInputError("simulated input refused")
            x = np.frombuffer(env.payload, dtype="<i8").astype(np.int64).reshape(
                cfg.seq_len, cfg.d_model)
            y = np.asarray(self.evaluate(x), dtype="<i8")
            outs.append(pack(Kind.OUTPUT, y.tobytes(), self.circuit_id, env.key_id))
        return outs


class SimulatedFhe:
    """The session interface without encryption (tests and benchmarks only).

    ``circuit`` (a compiled concrete circuit) makes evaluation ``circuit.simulate``; without
    it the numpy reference evaluates, which the FHE tests show is bit-exact with simulate in
    exact mode. An approximate-mode head without a circuit is evaluated by the noise model of
    approximate rounding (``fhe.noise``; ``sigmas`` per rounding, default
    ``fhe.noise.DEFAULT_SIGMA``; ``seed`` for the model's draws).
    """

    simulated = True

    def __init__(self, head: QuantizedHead, circuit=None, sigmas=None, seed=None) -> None:
        self.head = head
        self.circuit_id = simulated_circuit_id(head.config)
        if circuit is not None:
            evaluate = circuit.simulate
        elif head.approximate:
            from fhe.noise import DEFAULT_SIGMA, run_noisy

            sig = dict(sigmas) if sigmas is not None else {s: DEFAULT_SIGMA
                                                          for s in head.approximate}
            rng = np.random.default_rng(seed)

            def evaluate(x):
                return run_noisy(x, head, sig, rng)
        else:
            def evaluate(x):
                return run_reference(x, head)[0]
        self.server = _SimServer(self.circuit_id, head, evaluate)

    def client(self) -> _SimClient:
        return _SimClient(self.circuit_id, self.head)

    @staticmethod
    def public_client(commitment) -> _SimClient:
        """A simulated client built from the public model commitment alone (a remote client
        of a simulating server): it checks inputs against the public input bounds only."""
        return _SimClient(simulated_circuit_id(commitment.config), commitment)
