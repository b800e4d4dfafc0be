"""Encrypted inference with canary-bound proofs (DESIGN.md section 3).

One session, with the files each step produces::

    client  request  = Client.request(x)           k canaries + x, secret order, fresh keys
    server  response = Server.evaluate(request)    outputs + receipt (a hash binding the model
                                                   commitment, every input and output ciphertext)
    client  opening  = Client.open(response)       canary positions and plaintexts
    server  bundle   = Server.prove(request, response, opening)
                                                   a zkAttn proof per canary, bound to the receipt
    anyone  verify_bundle(bundle, commitment, request, response)      no keys needed
    client  y        = Client.finish(response, bundle)
                                                   decrypted canary outputs must equal the proven
                                                   ones (within the commitment's published
                                                   tolerance delta in approximate mode);
                                                   returns the real output

What it guarantees: every canary's output is proven to be the committed model's output, and
the client checks that the ciphertext it received decrypts to exactly that. The real query is
covered statistically: the server cannot tell it from the canaries (same key set, IND-CPA, data-
independent evaluation time), so a server corrupting one of the k+1 outputs escapes with
probability 1/(k+1) per session, and one corrupting the inputs of a set S escapes with
probability about (1 - p_S)^k, p_S being the chance that a canary falls in S. Canaries must
therefore come from the distribution of real queries (:mod:`pipeline.canaries`); targeted
corruption of rare inputs is not covered. Use fresh keys per session (the client does).

Approximate mode (a commitment with approximate roundings, ``fhe.compile``): an honest
evaluation decrypts to the proven output up to +-delta elementwise (``zk.tolerance``: a
rigorous bound from public data), so the canary check accepts |decrypted - proven| <= delta.
A server can then shift any output by at most delta undetected, the band an honest encrypted
evaluation has anyway; a larger deviation is caught like any other. delta = 0 in exact mode.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import ClassVar

import numpy as np

from zk.head import zkattn
from zk.attention_model import ModelCommitment, ProvingModel
from zk.encoding import Reader, Writer, to_bytes
from zk.errors import ProverError, VerificationError

RECEIPT_DOMAIN = b"zkfhe/receipt/v1"
MAX_BLOB = 1 << 36
MAX_INPUTS = 64


class CheatingDetected(VerificationError):
    """A decrypted canary output differs from its proven output: the server deviated."""


def _sha3(data: bytes) -> bytes:
    return hashlib.sha3_256(data).digest()


def _read_digest(r: Reader) -> bytes:
    d = r.raw_bytes(32)
    if len(d) != 32:
        raise r.error("a digest is 32 bytes")
    return d


# ---------------------------------------------------------------- the session's files


@dataclass(frozen=True)
class Request:
    """Client -> server: evaluation keys and k+1 input ciphertexts (order secret)."""

    KIND: ClassVar[str] = "zkfhe-request"
    VERSION: ClassVar[int] = 1

    model_digest: bytes
    circuit_id: bytes
    evaluation_keys: bytes = field(repr=False)
    inputs: tuple[bytes, ...] = field(repr=False)

    @cached_property
    def digest(self) -> bytes:
        """SHA3-256 of the request file (computed once: the keys make it large)."""
        return _sha3(to_bytes(self))

    def write(self, w: Writer) -> None:
        w.raw_bytes(self.model_digest)
        w.raw_bytes(self.circuit_id)
        w.raw_bytes(self.evaluation_keys)
        w.u32(len(self.inputs))
        for b in self.inputs:
            w.raw_bytes(b)

    @classmethod
    def read(cls, r: Reader, version: int) -> "Request":
        md, cid = _read_digest(r), _read_digest(r)
        keys = r.raw_bytes(MAX_BLOB)
        n = r.u32()
        if not 2 <= n <= MAX_INPUTS:
            raise r.error(f"a request holds 2 to {MAX_INPUTS} inputs, not {n}")
        return cls(md, cid, keys, tuple(r.raw_bytes(MAX_BLOB) for _ in range(n)))


@dataclass(frozen=True)
class Response:
    """Server -> client: output ciphertexts and the receipt that fixes them."""

    KIND: ClassVar[str] = "zkfhe-response"
    VERSION: ClassVar[int] = 1

    request_digest: bytes
    outputs: tuple[bytes, ...] = field(repr=False)
    receipt: bytes

    def write(self, w: Writer) -> None:
        w.raw_bytes(self.request_digest)
        w.u32(len(self.outputs))
        for b in self.outputs:
            w.raw_bytes(b)
        w.raw_bytes(self.receipt)

    @classmethod
    def read(cls, r: Reader, version: int) -> "Response":
        rd = _read_digest(r)
        n = r.u32()
        if not 2 <= n <= MAX_INPUTS:
            raise r.error(f"a response holds 2 to {MAX_INPUTS} outputs, not {n}")
        outs = tuple(r.raw_bytes(MAX_BLOB) for _ in range(n))
        return cls(rd, outs, _read_digest(r))


def _read_ints(r: Reader, max_len: int) -> np.ndarray:
    rows, cols = r.u32(), r.u32()
    if rows * cols > max_len or rows * cols == 0:
        raise r.error("tensor of a bad size")
    raw = r.raw_bytes(8 * rows * cols)
    if len(raw) != 8 * rows * cols:
        raise r.error("tensor bytes do not match its shape")
    return np.frombuffer(raw, dtype="<i8").astype(np.int64).reshape(rows, cols)


def _write_ints(w: Writer, a: np.ndarray) -> None:
    a = np.asarray(a, dtype=np.int64)
    w.u32(a.shape[0])
    w.u32(a.shape[1])
    w.raw_bytes(a.astype("<i8").tobytes())


@dataclass(frozen=True)
class CanaryOpening:
    """Client -> server, after the receipt: which positions are canaries, and their inputs."""

    KIND: ClassVar[str] = "zkfhe-canary-opening"
    VERSION: ClassVar[int] = 1

    receipt: bytes
    positions: tuple[int, ...]
    inputs: tuple[np.ndarray, ...] = field(repr=False)

    def write(self, w: Writer) -> None:
        w.raw_bytes(self.receipt)
        w.u32(len(self.positions))
        for pos, x in zip(self.positions, self.inputs, strict=True):
            w.u32(pos)
            _write_ints(w, x)

    @classmethod
    def read(cls, r: Reader, version: int) -> "CanaryOpening":
        receipt = _read_digest(r)
        n = r.u32()
        if not 1 <= n < MAX_INPUTS:
            raise r.error(f"bad number of canaries: {n}")
        pos, xs = [], []
        for _ in range(n):
            pos.append(r.u32())
            xs.append(_read_ints(r, 1 << 26))
        return cls(receipt, tuple(pos), tuple(xs))


@dataclass(frozen=True)
class ProofBundle:
    """Server -> anyone: one zkAttn proof per canary, each bound to the receipt, and the
    receipt's preimage (the digests it hashes) so that an auditor can recompute it."""

    KIND: ClassVar[str] = "zkfhe-proof-bundle"
    VERSION: ClassVar[int] = 1

    receipt: bytes
    circuit_id: bytes
    key_digest: bytes
    input_digests: tuple[bytes, ...]
    output_digests: tuple[bytes, ...]
    positions: tuple[int, ...]
    proofs: tuple[bytes, ...] = field(repr=False)

    def write(self, w: Writer) -> None:
        w.raw_bytes(self.receipt)
        w.raw_bytes(self.circuit_id)
        w.raw_bytes(self.key_digest)
        w.u32(len(self.input_digests))
        for d in self.input_digests + self.output_digests:
            w.raw_bytes(d)
        w.u32(len(self.positions))
        for pos, proof in zip(self.positions, self.proofs, strict=True):
            w.u32(pos)
            w.raw_bytes(proof)

    @classmethod
    def read(cls, r: Reader, version: int) -> "ProofBundle":
        receipt, circuit_id, key_digest = _read_digest(r), _read_digest(r), _read_digest(r)
        n = r.u32()
        if not 2 <= n <= MAX_INPUTS:
            raise r.error(f"bad number of ciphertexts: {n}")
        ins = tuple(_read_digest(r) for _ in range(n))
        outs = tuple(_read_digest(r) for _ in range(n))
        k = r.u32()
        if not 1 <= k < n:
            raise r.error(f"bad number of canary proofs: {k}")
        pos, proofs = [], []
        for _ in range(k):
            pos.append(r.u32())
            proofs.append(r.raw_bytes(1 << 28))
        return cls(receipt, circuit_id, key_digest, ins, outs, tuple(pos), tuple(proofs))


@dataclass(frozen=True)
class ClientSecret:
    """The client's private session state: secret keys, the real position, the canaries (every
    input in order). It never leaves the client; it lets a later process finish the session."""

    KIND: ClassVar[str] = "zkfhe-client-secret"
    VERSION: ClassVar[int] = 1

    request_digest: bytes
    secret_keys: bytes = field(repr=False)
    real: int = field(repr=False)
    inputs: tuple = field(repr=False)

    def write(self, w: Writer) -> None:
        w.raw_bytes(self.request_digest)
        w.raw_bytes(self.secret_keys)
        w.u32(self.real)
        w.u32(len(self.inputs))
        for x in self.inputs:
            _write_ints(w, x)

    @classmethod
    def read(cls, r: Reader, version: int) -> "ClientSecret":
        digest = _read_digest(r)
        keys = r.raw_bytes(MAX_BLOB)
        real, n = r.u32(), r.u32()
        if not 2 <= n <= MAX_INPUTS or real >= n:
            raise r.error("bad session state")
        return cls(digest, keys, real, tuple(_read_ints(r, 1 << 26) for _ in range(n)))


# ---------------------------------------------------------------- the receipt


def compute_receipt(model_digest: bytes, circuit_id: bytes, key_digest: bytes,
                    input_digests: Sequence[bytes], output_digests: Sequence[bytes]) -> bytes:
    """SHA3-256 over the model commitment, the circuit, the evaluation keys and every input
    and output ciphertext's digest, in order."""
    h = hashlib.sha3_256(RECEIPT_DOMAIN)
    for part in (model_digest, circuit_id, key_digest):
        h.update(part)
    h.update(len(input_digests).to_bytes(4, "little"))
    for d in list(input_digests) + list(output_digests):
        h.update(d)
    return h.digest()


def _digests(blobs: Sequence[bytes]) -> tuple[bytes, ...]:
    return tuple(_sha3(b) for b in blobs)


def receipt_of(request: Request, outputs: Sequence[bytes]) -> bytes:
    return compute_receipt(request.model_digest, request.circuit_id,
                           _sha3(request.evaluation_keys), _digests(request.inputs),
                           _digests(outputs))


# ---------------------------------------------------------------- roles


class Server:
    """The model owner's server: evaluates encrypted requests and proves the canaries."""

    def __init__(self, model: ProvingModel, fhe_server) -> None:
        self.model = model
        self.fhe = fhe_server

    def evaluate(self, request: Request) -> Response:
        """Run the circuit on every input ciphertext and fix the receipt."""
        self.check_request(request)
        self.fhe.add_evaluation_keys(request.evaluation_keys)
        return respond(request, self.fhe.run_batch(list(request.inputs)))

    def check_request(self, request: Request) -> None:
        """Refuse a request made for another model commitment (ValueError)."""
        if request.model_digest != self.model.commitment.digest:
            raise ValueError("the request names another model commitment")

    def prove(self, request: Request, response: Response, opening: CanaryOpening,
              progress=None) -> ProofBundle:
        """One zkAttn proof per opened canary, each bound to the receipt."""
        receipt = check_opening(request, response, opening)
        proofs = []
        for i, (pos, x) in enumerate(zip(opening.positions, opening.inputs)):
            proofs.append(prove_canary(self.model, pos, x, receipt))
            if progress is not None:
                progress(i + 1, len(opening.inputs))
        return assemble_bundle(request, response, opening, proofs)


def respond(request: Request, outputs: Sequence[bytes]) -> Response:
    """The response to a request: its output ciphertexts, in order, fixed by the receipt."""
    outputs = tuple(outputs)
    return Response(request.digest, outputs, receipt_of(request, outputs))


def check_opening(request: Request, response: Response, opening: CanaryOpening) -> bytes:
    """The session's receipt, if the opening belongs to this request and response and opens
    k distinct canaries inside it; ValueError / VerificationError otherwise."""
    receipt = receipt_of(request, response.outputs)
    if receipt != response.receipt or opening.receipt != receipt:
        raise ValueError("the opening does not belong to this request and response")
    _check_positions(opening.positions, len(request.inputs))
    return receipt


def within_tolerance(decrypted: np.ndarray, proven: np.ndarray, delta: np.ndarray) -> bool:
    """The canary check: |decrypted - proven| <= delta elementwise (delta = 0 in exact mode:
    equality). A server can shift an output by at most delta undetected; delta is the band an
    honest approximate evaluation has anyway (``zk.tolerance``)."""
    decrypted = np.asarray(decrypted)
    if decrypted.shape != np.shape(proven) or decrypted.shape != np.shape(delta):
        return False
    return bool(np.all(np.abs(decrypted.astype(np.int64) - np.asarray(proven, np.int64))
                       <= np.asarray(delta, np.int64)))


def prove_canary(model: ProvingModel, position: int, x: np.ndarray, receipt: bytes) -> bytes:
    """The proof file of one canary: y = f_W(x), bound to the session's receipt.
    ValueError (naming the position) if the prover refuses x."""
    try:
        return zkattn.prove(model, x, context=receipt).to_bytes()
    except ProverError as e:
        raise ValueError(f"canary at position {position}: {e}") from e


def assemble_bundle(request: Request, response: Response, opening: CanaryOpening,
                    proofs: Sequence[bytes]) -> ProofBundle:
    """The bundle of a session's canary proofs (in the opening's order) with the receipt's
    preimage."""
    return ProofBundle(response.receipt, request.circuit_id, _sha3(request.evaluation_keys),
                       _digests(request.inputs), _digests(response.outputs), opening.positions,
                       tuple(proofs))


def _check_positions(positions: Sequence[int], n: int) -> None:
    if len(set(positions)) != len(positions) or any(not 0 <= p < n for p in positions):
        raise VerificationError("canary positions must be distinct and inside the request")
    if len(positions) != n - 1:
        raise VerificationError(f"{n} ciphertexts need {n - 1} canaries, got {len(positions)}")


@dataclass(frozen=True)
class ProvenCanary:
    """A canary whose output is proven: position in the request, input x, output y."""

    position: int
    x: np.ndarray
    y: np.ndarray


def verify_bundle(bundle: ProofBundle, commitment: ModelCommitment,
                  request: Request | None = None, response: Response | None = None
                  ) -> list[ProvenCanary]:
    """Check a proof bundle with no keys; return the proven canaries.

    Checks that the receipt hashes its stated preimage (the model commitment, the circuit, the
    keys and every ciphertext digest), that every proof verifies for the commitment and is
    bound to the receipt, and that the positions are k distinct canaries. Given the request and
    response files it also checks that their ciphertexts are the ones the receipt binds.
    Raises VerificationError otherwise.
    """
    if request is not None:
        if request.model_digest != commitment.digest:
            raise VerificationError("the request names another model commitment")
        if (request.circuit_id != bundle.circuit_id
                or _digests(request.inputs) != bundle.input_digests
                or _sha3(request.evaluation_keys) != bundle.key_digest):
            raise VerificationError("the bundle's digests do not match the request")
    if response is not None:
        if _digests(response.outputs) != bundle.output_digests or response.receipt != bundle.receipt:
            raise VerificationError("the bundle's digests do not match the response")
    n = len(bundle.input_digests)
    if len(bundle.output_digests) != n:
        raise VerificationError("the receipt needs as many outputs as inputs")
    expect = compute_receipt(commitment.digest, bundle.circuit_id, bundle.key_digest,
                             bundle.input_digests, bundle.output_digests)
    if expect != bundle.receipt:
        raise VerificationError("the receipt does not hash its preimage")
    _check_positions(bundle.positions, n)
    proven = []
    for pos, data in zip(bundle.positions, bundle.proofs):
        try:
            proof = zkattn.verify_bytes(data, commitment, context=bundle.receipt)
        except VerificationError as e:
            raise VerificationError(f"canary at position {pos}: {e}") from e
        proven.append(ProvenCanary(pos, proof.x, proof.y))
    return proven


class Client:
    """The querying client: fresh keys per session, k canaries in a secret random order."""

    def __init__(self, commitment: ModelCommitment, fhe_client, canaries, k: int = 3) -> None:
        if not 1 <= k < MAX_INPUTS:
            raise ValueError(f"k must be in 1..{MAX_INPUTS - 1}")
        self.commitment = commitment
        self.fhe = fhe_client
        self.canaries = canaries
        self.k = k
        self._state: dict | None = None

    def request(self, x: np.ndarray) -> Request:
        """Encrypt x with k canaries under fresh keys; the real position stays secret."""
        xs = self.canaries.sample(self.k)
        real = secrets.randbelow(self.k + 1)
        ordered = xs[:real] + [np.asarray(x, dtype=np.int64)] + xs[real:]
        self.fhe.keygen()
        blobs = tuple(self.fhe.encrypt_batch(ordered))  # validates every input first
        req = Request(self.commitment.digest, self.fhe.circuit_id, self.fhe.evaluation_keys(),
                      blobs)
        self._state = {"request": req, "real": real, "inputs": ordered}
        return req

    @classmethod
    def resume(cls, commitment: ModelCommitment, fhe_client, request: Request, real: int,
               inputs: Sequence[np.ndarray]) -> "Client":
        """A client for a session started earlier (its keys already loaded into fhe_client),
        from the state :meth:`session_state` returned."""
        client = cls(commitment, fhe_client, canaries=None, k=len(inputs) - 1)
        client._state = {"request": request, "real": real, "inputs": list(inputs)}
        return client

    def session_state(self) -> tuple[int, list[np.ndarray]]:
        """(real position, every input in order): what the client must keep secret."""
        st = self._require()
        return st["real"], list(st["inputs"])

    @property
    def real_position(self) -> int:
        if self._state is None:
            raise RuntimeError("no request yet")
        return self._state["real"]

    def open(self, response: Response) -> CanaryOpening:
        """Check the response belongs to our request, then reveal the canaries."""
        st = self._require()
        req = st["request"]
        if response.request_digest != req.digest or len(response.outputs) != len(req.inputs):
            raise VerificationError("the response does not answer our request")
        if receipt_of(req, response.outputs) != response.receipt:
            raise VerificationError("the response's receipt does not bind its ciphertexts")
        pos = tuple(i for i in range(len(req.inputs)) if i != st["real"])
        return CanaryOpening(response.receipt, pos, tuple(st["inputs"][i] for i in pos))

    def finish(self, response: Response, bundle: ProofBundle) -> np.ndarray:
        """Verify the bundle, check each decrypted canary against its proof and its opened
        input, and return the decrypted real output. Raises CheatingDetected on a mismatch."""
        st = self._require()
        req = st["request"]
        canaries = {i for i in range(len(req.inputs)) if i != st["real"]}
        if set(bundle.positions) != canaries:
            raise CheatingDetected("the bundle does not prove exactly the opened canaries")
        for c in verify_bundle(bundle, self.commitment, req, response):
            pos = c.position
            if not np.array_equal(c.x, st["inputs"][pos]):
                raise CheatingDetected(f"the proof for position {pos} is for another input")
            got = self.fhe.decrypt(response.outputs[pos])
            if not within_tolerance(got, c.y, self.commitment.delta):
                raise CheatingDetected(
                    f"canary at position {pos}: the decrypted output differs from the proven "
                    + ("output" if not self.commitment.approximate else
                       "output by more than the model's published tolerance"))
        return self.fhe.decrypt(response.outputs[st["real"]])

    def _require(self) -> dict:
        if self._state is None:
            raise RuntimeError("call request() first")
        return self._state
