"""The user API: commit once, prove inferences, verify proofs.

    model, commitment = commit(llama)                     # owner: a whole integer model
    proof = prove(model, prompt_ids, max_new_tokens=16)   # server: a proven greedy generation
    verdict = verify(proof, commitment)                   # anyone: verdict.tokens are proven
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
from zk.model import llama as ML


def commit(head, rng: np.random.Generator | None = None, origin: dict | None = None):
    """Commit to a quantized head (``QuantizedHead``) or a whole integer model
    (``zk.model.llama.IntegerLlama``): (private proving model, public commitment). origin:
    public names of the source (model, layer, head, ...)."""
    if isinstance(head, ML.IntegerLlama):
        pm = ML.commit(head.config, head.weights, tables=head.tables, origin=origin, rng=rng)
        return pm, pm.commitment
    return am.commit(head, rng, origin)


def prove(model, inputs, response: S.Response | None = None,
          opening: S.CanaryOpening | None = None, *, max_new_tokens: int | None = None,
          prompt_len: int | None = None):
    """Whole model: ``prove(model, prompt_ids, max_new_tokens=N)`` generates N tokens greedily
    and proves them (a ModelProof); ``prove(model, token_ids, prompt_len=P)`` proves a given
    generation. Head, plaintext: ``prove(model, x)`` -> AttentionProof. Head, encrypted:
    ``prove(model, request, response, opening)`` -> ProofBundle bound to the receipt."""
    if isinstance(model, ML.ProvingLlama):
        ids = np.asarray(inputs, dtype=np.int64).reshape(-1)
        if (max_new_tokens is None) == (prompt_len is None):
            raise TypeError("give max_new_tokens (generate, then prove) or prompt_len (prove "
                            "the given tokens)")
        if max_new_tokens is not None:
            seq = ML.generate(model, ids, int(max_new_tokens))
            return ML.prove(model, seq, ids.size)
        return ML.prove(model, ids, int(prompt_len))
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
    tokens: tuple = ()      # a model proof: the whole proven sequence (prompt + generated)
    generated: tuple = ()   # a model proof: the proven generated tokens

    def __bool__(self) -> bool:
        return self.accepted


def verify(proof, commitment, request: S.Request | None = None,
           response: S.Response | None = None, threads: int = 1) -> Verdict:
    """Verify a plaintext proof or a session's proof bundle (objects or file bytes) against a
    model commitment (object or file bytes). Needs no keys. Returns a Verdict; raises
    MalformedProofError only for bytes that do not decode. ``threads``: numba threads of a
    whole-model proof's final MSM (the rest of a verifier runs on one thread)."""
    if isinstance(commitment, (bytes, bytearray)):
        commitment = _decode_commitment(bytes(commitment))
    if isinstance(commitment, ML.LlamaCommitment):
        if isinstance(proof, (bytes, bytearray)):
            proof = ML.ModelProof.from_bytes(bytes(proof))
        if not isinstance(proof, ML.ModelProof):
            raise TypeError(f"a whole-model commitment verifies model proofs, not a "
                            f"{type(proof).__name__}")
        try:
            ML.verify(proof, commitment, threads=threads)
        except VerificationError as e:
            return Verdict(False, str(e))
        return Verdict(True, tokens=proof.tokens, generated=proof.statement.generated)
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


def _decode_commitment(data: bytes):
    """A head's or a whole model's commitment file, by its kind."""
    kb = ML.LlamaCommitment.KIND.encode()
    if data[8:8 + len(kb)] == kb:
        return ML.LlamaCommitment.from_bytes(data)
    return from_bytes(am.ModelCommitment, data)


def _decode(data: bytes, commitment: am.ModelCommitment):
    try:
        return zkattn.AttentionProof.from_bytes(data, commitment)
    except MalformedProofError as first:
        try:
            return from_bytes(S.ProofBundle, data)
        except MalformedProofError:
            raise first from None
