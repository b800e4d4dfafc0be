"""zkAttn: honest proofs verify; other weights (from a prover that does not refuse), changed
outputs or inputs, modified tables, proofs for other commitments, tampered stream elements,
flipped bytes and retired formats are all rejected."""

from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np
import pytest
import zkutil as U

from zk import attention_model as am
from zk.attention_ref import (
    HeadConfig,
    Table,
    quantize_input,
    random_head,
    run_reference,
)
from zk.encoding import from_bytes, to_bytes
from zk.errors import MalformedProofError, ProverError, VerificationError
from zk.head import zkattn


def make(d_model, d_head, L, causal=True, n_bits=4, seed=1):
    cfg = HeadConfig(d_model=d_model, d_head=d_head, seq_len=L, n_bits=n_bits, causal=causal)
    head, _, calib = random_head(cfg, seed=seed)
    pm, mc = am.commit(head, rng=np.random.default_rng(seed))
    return pm, mc, [quantize_input(c, head) for c in calib]


@pytest.mark.parametrize("d_model,d_head,L,causal,n_bits", [
    (8, 4, 2, True, 4), (16, 8, 5, True, 4), (12, 6, 3, False, 4), (16, 4, 8, True, 8),
    (24, 8, 7, False, 6),
])
def test_honest_proofs_verify(d_model, d_head, L, causal, n_bits):
    pm, mc, xs = make(d_model, d_head, L, causal, n_bits)
    for x in xs[:1]:
        proof = zkattn.prove(pm, x)
        back = zkattn.verify_bytes(proof.to_bytes(), mc)
        y, _ = run_reference(x, pm.head)
        assert np.array_equal(back.y, y) and np.array_equal(back.x, x)


@pytest.fixture(scope="module")
def honest():
    pm, mc, xs = make(16, 8, 5)
    proof = zkattn.prove(pm, xs[0])
    return pm, mc, xs, proof, proof.to_bytes()


def test_changed_output_entry_rejected(honest):
    pm, mc, xs, proof, _ = honest
    for idx in [(0, 0), (4, 7), (2, 3)]:
        y = proof.y.copy()
        y[idx] += 1
        with pytest.raises(VerificationError):
            zkattn.verify(replace(proof, y=y), mc)


def test_changed_input_rejected(honest):
    pm, mc, xs, proof, _ = honest
    x = proof.x.copy()
    x[3, 5] = -x[3, 5] if x[3, 5] else 1
    with pytest.raises(VerificationError):
        zkattn.verify(replace(proof, x=x), mc)


def test_other_weights_rejected(honest):
    pm, mc, xs, proof, _ = honest
    for name in ("Wq", "Wk", "Wv", "bv"):
        head = copy.deepcopy(pm.head)
        arr = getattr(head, name)
        arr.reshape(-1)[1] += 1
        other, _ = am.commit(head)
        # computes and opens with the other weights, but names the honest commitment (the
        # prover does not recompute the commitment; the verifier catches it)
        cheat = am.ProvingModel(head, mc, other.weights, other.biases)
        with U.cheating():
            p = zkattn.prove(cheat, xs[0])
        with pytest.raises(VerificationError):
            zkattn.verify(p, mc)


def test_proof_for_another_commitment_rejected(honest):
    pm, mc, xs, proof, data = honest
    _, mc2 = am.commit(pm.head)  # same weights, fresh blinds: another commitment
    with pytest.raises(VerificationError, match="another model"):
        zkattn.verify(proof, mc2)


def _modified_table(mc, name, delta=1):
    tables = dict(mc.tables)
    t = tables[name]
    vals = t.values.copy()
    vals[len(vals) // 2] += delta
    tables[name] = Table(t.name, t.offset, vals)
    return am.ModelCommitment(mc.config, mc.shifts, tables, mc.bounds, mc.scales, mc.weights,
                              mc.biases)


@pytest.mark.parametrize("name", ["q", "exp", "log", "exp2", "out", "clipd"])
def test_modified_table_entry_rejected(honest, name):
    pm, mc, xs, proof, _ = honest
    other = _modified_table(mc, name)
    with pytest.raises(VerificationError):
        zkattn.verify(proof, other)
    # even if the digest collided, the lookup checks the table itself
    other.__dict__["digest"] = mc.digest
    with pytest.raises(VerificationError):
        zkattn.verify(proof, other)


def test_tampered_stream_elements_rejected(honest):
    pm, mc, xs, proof, _ = honest
    n = 0
    for what, bad in U.tampered(proof.stream, max_points=80, seed=1):
        if what.startswith("scalar") and what[7:].isdigit() and int(what[7:]) % 3:
            continue  # every third scalar (all kinds of responses) keeps the test short
        with pytest.raises(VerificationError):
            zkattn.verify(replace(proof, stream=bad), mc)
        n += 1
    assert n > 100


def test_retired_version_refused_with_a_message(honest):
    pm, mc, xs, proof, data = honest
    import struct
    kind = zkattn.AttentionProof.KIND.encode()
    at = 8 + len(kind)
    old = data[:at] + struct.pack("<H", 1) + data[at + 2:]
    with pytest.raises(MalformedProofError, match="not zero knowledge"):
        zkattn.AttentionProof.from_bytes(old, mc)


def test_flipped_bytes_rejected(honest):
    pm, mc, xs, proof, data = honest
    rng = np.random.default_rng(3)
    positions = sorted(set(range(0, 64)) | set(rng.integers(0, len(data), 150).tolist()))
    for pos in positions:
        bad = bytearray(data)
        bad[pos] ^= 1 << int(rng.integers(0, 8))
        with pytest.raises(VerificationError):  # MalformedProofError is a subclass
            zkattn.verify_bytes(bytes(bad), mc)


def test_truncated_trailing_and_reordered_rejected(honest):
    pm, mc, xs, proof, data = honest
    for cut in (0, 10, len(data) // 3, len(data) - 1):
        with pytest.raises(MalformedProofError):
            zkattn.AttentionProof.from_bytes(data[:cut], mc)
    with pytest.raises(MalformedProofError):
        zkattn.AttentionProof.from_bytes(data + b"\0", mc)
    # points and scalars swapped inside the stream section: wrong tags
    i = data.index(b"stream") + 6 + 4
    with pytest.raises(MalformedProofError):
        zkattn.AttentionProof.from_bytes(data[:i] + b"\x05" + data[i + 1:], mc)


def test_prover_refuses_bad_inputs(honest):
    pm, mc, xs, proof, _ = honest
    with pytest.raises(ProverError):
        zkattn.prove(pm, xs[0][:, :3])
    with pytest.raises(ProverError):
        zkattn.prove(pm, np.full_like(xs[0], 100))  # outside the input domain


def test_model_files_round_trip(honest):
    pm, mc, xs, proof, _ = honest
    mc2 = from_bytes(am.ModelCommitment, to_bytes(mc))
    assert mc2.digest == mc.digest
    pm2 = from_bytes(am.ProvingModel, to_bytes(pm))
    zkattn.verify(zkattn.prove(pm2, xs[1]), mc2)
    data = bytearray(to_bytes(pm))
    data[-40] ^= 1  # a blind changed: the stored commitment no longer opens
    with pytest.raises(MalformedProofError):
        from_bytes(am.ProvingModel, bytes(data))
    with pytest.raises(MalformedProofError):
        from_bytes(am.ModelCommitment, to_bytes(pm))  # a file of another kind



def test_context_binding(honest):
    pm, mc, xs, _, _ = honest
    proof = zkattn.prove(pm, xs[1], context=b"receipt-1")
    zkattn.verify(proof, mc, context=b"receipt-1")
    with pytest.raises(VerificationError):
        zkattn.verify(proof, mc, context=b"receipt-2")
    with pytest.raises(VerificationError):
        zkattn.verify(proof, mc)


def test_flipped_commitment_bytes_rejected(honest):
    """A damaged commitment file either fails to decode or names another model."""
    pm, mc, xs, proof, _ = honest
    data = to_bytes(mc)
    rng = np.random.default_rng(11)
    for pos in rng.integers(0, len(data), 60).tolist():
        bad = bytearray(data)
        bad[pos] ^= 1 << int(rng.integers(0, 8))
        try:
            other = from_bytes(am.ModelCommitment, bytes(bad))
        except MalformedProofError:
            continue
        with pytest.raises(VerificationError):
            zkattn.verify(proof, other)


# ---------------------------------------------------------------- Llama-style heads (RoPE)


def make_rope(d_model, d_head, L, seed=2, origin=None):
    cfg = HeadConfig(d_model=d_model, d_head=d_head, seq_len=L, rope_theta=10000.0, rope_bits=6)
    head, _, calib = random_head(cfg, seed=seed, n_calib=8)
    pm, mc = am.commit(head, origin=origin or {"model": "test", "layer": 0, "head": 0})
    return pm, mc, [quantize_input(c, head) for c in calib]


@pytest.mark.parametrize("d_model,d_head,L", [(8, 4, 3), (12, 6, 5), (16, 8, 7)])
def test_rope_heads_verify(d_model, d_head, L):
    """Sequence lengths that are not powers of two, and a d_head whose half swap is not a bit
    flip (6 of 8 padded columns)."""
    pm, mc, xs = make_rope(d_model, d_head, L)
    proof = zkattn.prove(pm, xs[0])
    back = zkattn.verify_bytes(proof.to_bytes(), mc)
    assert np.array_equal(back.y, run_reference(xs[0], pm.head)[0])


def test_rope_tampering_rejected():
    pm, mc, xs = make_rope(16, 8, 5)
    proof = zkattn.prove(pm, xs[0])
    # a RoPE table entry changed (even with the digest forced equal, the kernel differs)
    for name in ("rope_cos", "rope_sin"):
        tab = getattr(mc, name).copy()
        tab[2, 1] += 1
        other = replace(mc, **{name: tab})
        other.__dict__["digest"] = mc.digest
        with pytest.raises(VerificationError):
            zkattn.verify(proof, other)
    # the proof of another head of the same model (another origin, other weights)
    pm2, mc2, _ = make_rope(16, 8, 5, seed=3, origin={"model": "test", "layer": 0, "head": 1})
    with pytest.raises(VerificationError, match="another model"):
        zkattn.verify(proof, mc2)
    other = zkattn.prove(pm2, xs[0])
    other_proof = replace(other, model_digest=mc.digest)
    with pytest.raises(VerificationError):
        zkattn.verify(other_proof, mc)
    # a prover that skips the rotation (rounds the plain accumulator) is caught
    head = copy.deepcopy(pm.head)
    with U.cheating():
        import zk.head.zkattn as Z
        real = Z._witness

        def no_rotation(model, x, sh):
            w = real(model, x, sh)
            for t in ("q", "k"):
                w["acc_" + t] = w["rot_" + t]  # claims the rotated values are the accumulator
            return w
        try:
            Z._witness = no_rotation
            bad = zkattn.prove(am.ProvingModel(head, mc, pm.weights, pm.biases), xs[0])
        finally:
            Z._witness = real
    with pytest.raises(VerificationError):
        zkattn.verify(bad, mc)
