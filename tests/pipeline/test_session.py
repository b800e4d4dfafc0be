"""Whole encrypted sessions (simulated FHE for speed, plus one real TFHE session)."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline import api
from pipeline import session as S
from pipeline.backend import SimulatedFhe
from pipeline.canaries import ActivationCanaries
from zk import attention_model as am
from zk.attention_ref import HeadConfig, random_head, run_reference
from zk.encoding import from_bytes, to_bytes
from zk.errors import MalformedProofError, VerificationError


@pytest.fixture(scope="module")
def world():
    # small tables (as the FHE tests' tiny head): keys of ~100 MB, a few seconds per run
    cfg = HeadConfig(d_model=4, d_head=2, seq_len=2, n_bits=3, score_bits=5, tlu_bits=5,
                     out_tlu_bits=5, exp_bits=3, prob_bits=3)
    head, _, calib = random_head(cfg, seed=3, n_calib=24)
    pm, mc = am.commit(head)
    return head, pm, mc, ActivationCanaries(head, calib)


def run_session(world, server_cls=None, k=3, files=True, backend=None):
    head, pm, mc, canaries = world
    be = backend or SimulatedFhe(head)
    if server_cls is not None:
        be.server = server_cls(be.server)
    client = S.Client(mc, be.client(), canaries, k=k)
    server = S.Server(pm, be.server)
    x = canaries.sample(1)[0]
    req = client.request(x)
    resp = server.evaluate(from_bytes(S.Request, to_bytes(req)) if files else req)
    if files:
        resp = from_bytes(S.Response, to_bytes(resp))
    opening = client.open(resp)
    if files:
        opening = from_bytes(S.CanaryOpening, to_bytes(opening))
    bundle = server.prove(req, resp, opening)
    if files:
        bundle = from_bytes(S.ProofBundle, to_bytes(bundle))
    return client, req, resp, opening, bundle, x


def test_honest_session_accepted_and_audited(world):
    head, pm, mc, _ = world
    client, req, resp, opening, bundle, x = run_session(world)
    y = client.finish(resp, bundle)
    assert np.array_equal(y, run_reference(x, head)[0])
    # an auditor: no keys, only the public files
    verdict = api.verify(to_bytes(bundle), to_bytes(mc), request=req, response=resp)
    assert verdict.accepted and set(verdict.outputs) == set(bundle.positions)
    assert client.real_position not in bundle.positions


class OtherWeights:
    """Evaluates every input with another head."""

    def __init__(self, inner):
        self.inner = inner
        other, _, _ = random_head(inner.head.config, seed=99)
        self.inner.evaluate = lambda x: run_reference(x, other, check=False)[0]

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_server_with_other_weights_caught(world):
    client, req, resp, opening, bundle, x = run_session(world, OtherWeights)
    with pytest.raises(S.CheatingDetected):
        client.finish(resp, bundle)


class AlterOne:
    """Adds 1 to the first output entry of one input, chosen without knowing the order."""

    position = 0

    def __init__(self, inner):
        self.inner = inner

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def run_batch(self, blobs):
        from fhe.wire import Kind, pack, unpack

        outs = self.inner.run_batch(blobs)
        env = unpack(outs[self.position], Kind.OUTPUT)
        y = np.frombuffer(env.payload, dtype="<i8").copy()
        y[0] += 1
        outs[self.position] = pack(Kind.OUTPUT, y.tobytes(), env.circuit_id, env.key_id)
        return outs


def test_altering_one_output_caught_at_the_predicted_rate(world):
    rng = np.random.default_rng(5)
    k, sessions, caught = 3, 40, 0
    for _ in range(sessions):
        AlterOne.position = int(rng.integers(0, k + 1))
        client, req, resp, opening, bundle, x = run_session(world, AlterOne, k=k, files=False)
        was_canary = AlterOne.position != client.real_position
        try:
            client.finish(resp, bundle)
            assert not was_canary, "a corrupted canary was accepted"
        except S.CheatingDetected:
            assert was_canary
            caught += 1
    # P(caught) = k / (k + 1) = 0.75; 40 sessions: mean 30, sd 2.7
    assert 21 <= caught <= 39, caught


def test_bundle_for_another_receipt_or_commitment_rejected(world):
    head, pm, mc, canaries = world
    client, req, resp, opening, bundle, x = run_session(world)
    c2, req2, resp2, opening2, bundle2, _ = run_session(world)
    with pytest.raises(VerificationError):
        client.finish(resp, bundle2)
    with pytest.raises(VerificationError):
        S.verify_bundle(bundle2, mc, req, resp)
    _, mc_other = am.commit(head)
    assert not api.verify(bundle, mc_other)
    # a proof lifted from another session's bundle into this one fails the receipt binding
    from dataclasses import replace

    swapped = replace(bundle, proofs=(bundle2.proofs[0],) + bundle.proofs[1:])
    assert not api.verify(swapped, mc)
    # the receipt must hash its preimage
    assert not api.verify(replace(bundle, key_digest=bytes(32)), mc)


def test_server_refuses_foreign_opening(world):
    client, req, resp, opening, bundle, x = run_session(world)
    c2, req2, resp2, opening2, _, _ = run_session(world)
    with pytest.raises(ValueError):
        S.Server(world[1], None).prove(req, resp, opening2)


def test_truncated_and_foreign_files(world):
    client, req, resp, opening, bundle, x = run_session(world)
    for obj, cls in ((req, S.Request), (resp, S.Response), (opening, S.CanaryOpening),
                     (bundle, S.ProofBundle)):
        data = to_bytes(obj)
        with pytest.raises(MalformedProofError):
            from_bytes(cls, data[: len(data) // 2])
        with pytest.raises(MalformedProofError, match="expected"):
            from_bytes(S.Request if cls is not S.Request else S.Response, data)


def test_plaintext_api(world):
    head, pm, mc, canaries = world
    x = canaries.sample(1)[0]
    proof = api.prove(pm, x)
    v = api.verify(proof.to_bytes(), to_bytes(mc))
    assert v and np.array_equal(v.outputs[0], run_reference(x, head)[0])
    bad = bytearray(proof.to_bytes())
    bad[-100] ^= 1
    try:
        assert not api.verify(bytes(bad), mc)
    except MalformedProofError:
        pass


def test_real_fhe_session(world):
    """One encrypted session with real TFHE keys, through the serialized files (k = 1)."""
    pytest.importorskip("concrete.fhe")
    from pipeline.backend import RealFhe

    head, pm, mc, canaries = world
    be = RealFhe(head, np.stack(canaries.inputs[:8]).astype(np.float64) * head.scales["x"])
    assert not be.simulated
    client = S.Client(mc, be.client(), canaries, k=1)
    server = S.Server(pm, be.server)
    x = canaries.sample(1)[0]
    req = from_bytes(S.Request, to_bytes(client.request(x)))
    resp = from_bytes(S.Response, to_bytes(server.evaluate(req)))
    opening = from_bytes(S.CanaryOpening, to_bytes(client.open(resp)))
    bundle = from_bytes(S.ProofBundle, to_bytes(server.prove(req, resp, opening)))
    assert api.verify(bundle, mc, request=req, response=resp)
    assert np.array_equal(client.finish(resp, bundle), run_reference(x, head)[0])


def test_bundle_must_cover_exactly_the_opened_canaries(world):
    from dataclasses import replace

    client, req, resp, opening, bundle, x = run_session(world)
    real = client.real_position
    moved = tuple(real if p == bundle.positions[0] else p for p in bundle.positions)
    with pytest.raises(S.CheatingDetected):
        client.finish(resp, replace(bundle, positions=moved))


def test_fuzzed_session_files_raise_only_malformed(world):
    """Random mutations of every session file decode or raise MalformedProofError, nothing else."""
    client, req, resp, opening, bundle, x = run_session(world)
    rng = np.random.default_rng(17)
    for obj, cls in ((resp, S.Response), (opening, S.CanaryOpening), (bundle, S.ProofBundle)):
        data = to_bytes(obj)
        for _ in range(150):
            buf = bytearray(data)
            for _ in range(int(rng.integers(1, 4))):
                pos = int(rng.integers(0, len(buf)))
                op = int(rng.integers(0, 3))
                if op == 0:
                    buf[pos] ^= int(rng.integers(1, 256))
                elif op == 1:
                    buf.insert(pos, int(rng.integers(0, 256)))
                else:
                    del buf[pos]
            try:
                from_bytes(cls, bytes(buf))
            except MalformedProofError:
                pass


def test_rope_head_session_proven_end_to_end():
    """A Llama-style (RoPE, GQA-shaped, no bias) head: the session runs, every canary is proven
    in zero knowledge with the rotation, the client accepts; a proof for a GPT-2-style head is
    not accepted in place of the RoPE statement."""
    cfg = HeadConfig(8, 4, 3, rope_theta=10000.0, rope_bits=6)
    head, _, calib = random_head(cfg, seed=2, n_calib=16)
    model, commitment = api.commit(head, origin={"model": "test", "layer": 0, "head": 1})
    backend = SimulatedFhe(head)
    canaries = ActivationCanaries(head, calib[1:])
    client = S.Client(commitment, backend.client(), canaries, k=2)
    server = S.Server(model, backend.server)
    x = canaries.inputs[0]
    request = client.request(x)
    response = server.evaluate(request)
    opening = client.open(response)
    bundle = server.prove(request, response, opening)
    assert api.verify(bundle, commitment, request, response)
    assert np.array_equal(client.finish(response, bundle), run_reference(x, head)[0])
    proof = api.prove(model, x)
    assert api.verify(proof, commitment)
    gpt2 = HeadConfig(8, 4, 3)
    g_head, _, _ = random_head(gpt2, seed=2, n_calib=16)
    g_model, g_com = api.commit(g_head)
    proof = api.prove(g_model, np.zeros((3, 8), dtype=np.int64))
    verdict = api.verify(proof, commitment)
    assert not verdict and "another model" in verdict.reason


# ------------------------------------------------------------------ approximate mode


@pytest.fixture(scope="module")
def approx_world():
    """An approximate-mode head (y = r_o, r_o approximate: delta = 1), simulated by the noise
    model with a large sigma so that honest outputs really are off by one now and then."""
    from fhe.compile import approximate_head

    head, _, calib = random_head(HeadConfig.for_fhe(8, 4, 3), seed=6, n_calib=24)
    head = approximate_head(head)
    pm, mc = am.commit(head)
    assert mc.approximate == ("r_o",) and np.all(mc.delta == 1)
    return head, pm, mc, ActivationCanaries(head, calib)


def _approx_session(world, server_cls=None, sigma=0.3, seed=0):
    be = SimulatedFhe(world[0], sigmas={"r_o": sigma}, seed=seed)
    client, req, resp, opening, bundle, x = run_session(world, server_cls, files=False,
                                                        backend=be)
    return client, resp, bundle, x


def test_approximate_session_accepts_honest_noisy_outputs(approx_world):
    head = approx_world[0]
    off = 0
    for seed in range(8):
        client, resp, bundle, x = _approx_session(approx_world, seed=seed)
        y = client.finish(resp, bundle)  # accepted although outputs may be off by one
        dev = np.abs(y - run_reference(x, head)[0])
        assert dev.max() <= 1
        off += int(np.count_nonzero(dev))
    assert off > 0  # the noise model did move outputs: acceptance was not by equality


class ShiftTwo(AlterOne):
    """Adds 2 (> delta = 1) to the first output entry of every input."""

    def run_batch(self, blobs):
        from fhe.wire import Kind, pack, unpack

        outs = self.inner.run_batch(blobs)
        for i, o in enumerate(outs):
            env = unpack(o, Kind.OUTPUT)
            y = np.frombuffer(env.payload, dtype="<i8").copy()
            y[0] += 2
            outs[i] = pack(Kind.OUTPUT, y.tobytes(), env.circuit_id, env.key_id)
        return outs


def test_approximate_session_rejects_deviation_beyond_delta(approx_world):
    client, resp, bundle, _ = _approx_session(approx_world, ShiftTwo, sigma=1e-9)
    with pytest.raises(S.CheatingDetected, match="tolerance"):
        client.finish(resp, bundle)


def test_approximate_session_rejects_other_weights(approx_world):
    client, resp, bundle, _ = _approx_session(approx_world, OtherWeights, sigma=1e-9)
    with pytest.raises(S.CheatingDetected):
        client.finish(resp, bundle)


def test_within_tolerance_shapes_and_bounds():
    delta = np.ones((2, 3), dtype=np.int64)
    y = np.zeros((2, 3), dtype=np.int64)
    assert S.within_tolerance(y + 1, y, delta) and S.within_tolerance(y - 1, y, delta)
    assert not S.within_tolerance(y + 2, y, delta)
    assert not S.within_tolerance(np.zeros((3, 2), np.int64), y, delta)
    assert S.within_tolerance(y, y, np.zeros_like(delta))
    assert not S.within_tolerance(y + 1, y, np.zeros_like(delta))
