"""The user API: commit once, prove inferences, verify proofs.

    model, commitment = commit(head)                      # owner; publish `commitment`
    proof = prove(model, x)                               # plaintext: y = f_W(x) for public x
    bundle = prove(model, request, response, opening)     # encrypted session (pipeline.session)
    verdict = verify(proof_or_bundle, commitment)         # anyone, no keys
    result = query(server_url, x, commitment)             # client of `zkfhe serve` (HTTP)

What a plaintext proof shows: y = f_W(x) for the public x and y and the W inside the public
commitment, for the integer head of zk.attention_ref; sound under discrete log in BN254 G1 and
Fiat-Shamir in the random-oracle model. What a bundle shows: each canary's output is proven,
bound to the session's receipt; the real query is covered statistically (pipeline.session).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pipeline import session as S
from zk import attention_model as am
from zk.head import zkattn
from zk.attention_ref import QuantizedHead
from zk.encoding import from_bytes
from zk.errors import MalformedProofError, VerificationError


def commit(head: QuantizedHead, rng: np.random.Generator | None = None,
           origin: dict | None = None) -> tuple[am.ProvingModel, am.ModelCommitment]:
    """Commit to a quantized head: (private proving model, public commitment). origin: public
    names of the head's source (model, layer, head, kv_head)."""
    return am.commit(head, rng, origin)


def prove(model: am.ProvingModel, inputs, response: S.Response | None = None,
          opening: S.CanaryOpening | None = None):
    """Plaintext: ``prove(model, x)`` -> AttentionProof. Encrypted: ``prove(model, request,
    response, opening)`` -> ProofBundle with one proof per canary bound to the receipt."""
    if isinstance(inputs, S.Request):
        if response is None or opening is None:
            raise TypeError("an encrypted session needs the request, the response and the opening")
        return S.Server(model, fhe_server=None).prove(inputs, response, opening)
    return zkattn.prove(model, np.asarray(inputs))


@dataclass(frozen=True)
class Verdict:
    """The outcome of a verification. ``outputs`` holds the proven outputs (by canary position
    for a bundle, position 0 for a plaintext proof)."""

    accepted: bool
    reason: str = ""
    outputs: dict = field(default_factory=dict)

    def __bool__(self) -> bool:
        return self.accepted


def verify(proof, commitment, request: S.Request | None = None,
           response: S.Response | None = None) -> Verdict:
    """Verify a plaintext proof or a session's proof bundle (objects or file bytes) against a
    model commitment (object or file bytes). Needs no keys. Returns a Verdict; raises
    MalformedProofError only for bytes that do not decode."""
    if isinstance(commitment, (bytes, bytearray)):
        commitment = from_bytes(am.ModelCommitment, bytes(commitment))
    if isinstance(proof, (bytes, bytearray)):
        proof = _decode(bytes(proof), commitment)
    try:
        if isinstance(proof, zkattn.AttentionProof):
            zkattn.verify(proof, commitment)
            return Verdict(True, outputs={0: proof.y})
        if isinstance(proof, S.ProofBundle):
            proven = S.verify_bundle(proof, commitment, request, response)
            return Verdict(True, outputs={c.position: c.y for c in proven})
    except VerificationError as e:
        return Verdict(False, str(e))
    raise TypeError(f"cannot verify a {type(proof).__name__}")


def query(server_url: str, x=None, commitment=None, **kw):
    """A whole encrypted session against a `zkfhe serve` server (needs the serve extra):
    returns a ``pipeline.remote.SessionResult`` whose ``y`` is the verified, decrypted real
    output; raises CheatingDetected if the server deviated. See remote.run_session."""
    from pipeline import remote

    return remote.run_session(server_url, x, commitment=commitment, **kw)


def _decode(data: bytes, commitment: am.ModelCommitment):
    try:
        return zkattn.AttentionProof.from_bytes(data, commitment)
    except MalformedProofError as first:
        try:
            return from_bytes(S.ProofBundle, data)
        except MalformedProofError:
            raise first from None
