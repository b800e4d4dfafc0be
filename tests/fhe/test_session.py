"""The serialized client/server path: one real TFHE run, and refusals of bad inputs and bytes."""

import hashlib

import numpy as np
import pytest

pytest.importorskip("concrete.fhe")

from fhe.client import HeadClient  # noqa: E402
from fhe.compile import compile_head, fhe_stats, make_inputset  # noqa: E402
from fhe.errors import FheInputError  # noqa: E402
from fhe.server import HeadServer  # noqa: E402
from fhe.wire import HEADER_SIZE, Kind, ciphertext_digest, pack, unpack  # noqa: E402
from zk.attention_ref import HeadConfig, random_head, run_reference  # noqa: E402

TINY = dict(n_bits=3, score_bits=5, tlu_bits=5, out_tlu_bits=5, exp_bits=3, prob_bits=3)


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    head, _, calib = random_head(HeadConfig(4, 2, 2, **TINY), seed=1, n_calib=16)
    inputset = make_inputset(head, calib)
    circuit = compile_head(head, inputset)
    folder = HeadServer.from_circuit(circuit).save(tmp_path_factory.mktemp("srv"))
    return head, inputset, folder, circuit


@pytest.fixture(scope="module")
def session(compiled):
    """A server loaded from disk and a client with fresh keys, joined only by bytes."""
    head, inputset, folder, _ = compiled
    server = HeadServer.load(folder)
    client = HeadClient(server.client_specs(), head=head)
    client.keygen()
    assert server.add_evaluation_keys(client.evaluation_keys()) == client.key_id
    return head, inputset, server, client


@pytest.fixture(scope="module")
def keyless_client(compiled):
    head, inputset, folder, _ = compiled
    return head, inputset, HeadClient(HeadServer.load(folder).client_specs(), head=head)


@pytest.fixture(scope="module")
def run_two(session):
    head, inputset, server, client = session
    cts = client.encrypt_batch(inputset[:2])
    return cts, server.run_batch(cts)


def test_serialized_encrypt_run_decrypt_equals_reference(session, run_two):
    """decrypt(server.run(encrypt(x))) == reference, for a batch of two inputs, via bytes only."""
    head, inputset, server, client = session
    cts, outs = run_two
    assert all(isinstance(c, bytes) for c in cts + outs)
    for x, y in zip(inputset[:2], client.decrypt_batch(outs)):
        assert np.array_equal(y, run_reference(x, head)[0])
    d = ciphertext_digest(cts[0])
    assert d == hashlib.sha3_256(cts[0]).digest() == ciphertext_digest(bytes(cts[0]))
    assert d != ciphertext_digest(client.encrypt(inputset[0]))  # fresh randomness


# ----------------------------------------------------------------------------- plaintext


@pytest.mark.parametrize(
    "bad, what",
    [
        (lambda x: x.astype(np.float64), "dtype"),
        (lambda x: x.astype(bool), "dtype"),
        (lambda x: x.astype(object), "dtype"),
        (lambda x: x[:1], "shape"),
        (lambda x: x.T, "shape"),
        (lambda x: x.reshape(-1), "shape"),
        (lambda x: np.where(np.arange(x.size).reshape(x.shape) == 0, 4, x), r"\[-3, 3\]"),
        (lambda x: np.full_like(x, -4), r"\[-3, 3\]"),
        (lambda x: b"\x00" * 64, "integer array"),
    ],
)
def test_bad_plaintext_refused_before_encryption(keyless_client, bad, what):
    """No keys exist: a refusal proves validation runs before any encryption."""
    _, inputset, client = keyless_client
    with pytest.raises(ValueError, match=what):
        client.encrypt(bad(inputset[0]))
    with pytest.raises(ValueError):
        client.encrypt_batch([inputset[0], bad(inputset[0])])


def _outside_calibration(head, seed=0):
    """An input inside the integer range that the reference rejects (calibrated bounds)."""
    rng = np.random.default_rng(seed)
    lo, hi = head.bounds["x"]
    for _ in range(500):
        x = rng.choice([lo, hi], size=(head.config.seq_len, head.config.d_model))
        try:
            run_reference(x, head)
        except ValueError:
            return x
    return None


def test_calibrated_bounds_checked_by_the_reference(keyless_client):
    head, inputset, client = keyless_client
    x = _outside_calibration(head)
    assert x is not None, "no corner input leaves the calibrated bounds"
    with pytest.raises(ValueError, match="calibrated bounds"):
        client.validate(x)
    with pytest.raises(ValueError, match="calibrated bounds"):
        client.encrypt_batch([inputset[0], x])
    assert np.array_equal(client.validate(inputset[0]), inputset[0])


def test_head_must_match_the_circuit(compiled):
    head, _, folder, _ = compiled
    other, _, _ = random_head(HeadConfig(5, 2, 2, **TINY), seed=1)
    with pytest.raises(ValueError, match="does not match"):
        HeadClient(HeadServer.load(folder).client_specs(), head=other)


# ----------------------------------------------------------------------------- bytes


def _flip(blob: bytes, i: int) -> bytes:
    b = bytearray(blob)
    b[i] ^= 0x01
    return bytes(b)


def test_bad_input_ciphertexts_refused(session):
    head, inputset, server, client = session
    ct = client.encrypt(inputset[0])
    env = unpack(ct, Kind.INPUT)
    bad = {
        "truncated": ct[:-1],
        "header only": ct[:40],
        "empty": b"",
        "trailing": ct + b"\x00",
        "payload flip": _flip(ct, len(ct) - 5),
        "magic": _flip(ct, 0),
        "kind": pack(Kind.OUTPUT, env.payload, env.circuit_id, env.key_id),
        "other circuit": pack(Kind.INPUT, env.payload, b"\x07" * 32, env.key_id),
        "unknown keys": pack(Kind.INPUT, env.payload, env.circuit_id, b"\x07" * 32),
        "garbage payload": pack(Kind.INPUT, b"\x00" * 100, env.circuit_id, env.key_id),
        "not bytes": "ciphertext",
    }
    for name, blob in bad.items():
        with pytest.raises(FheInputError):
            server.run(blob)
        with pytest.raises(FheInputError):  # one bad blob refuses the whole batch
            server.run_batch([ct, blob])


def test_wrong_shaped_ciphertext_refused_by_the_circuit(session, run_two):
    """A valid envelope (right circuit and key ids) around a concrete value of another shape."""
    _, _, server, client = session
    out = unpack(run_two[1][0], Kind.OUTPUT)
    with pytest.raises(FheInputError):
        server.run(pack(Kind.INPUT, out.payload, out.circuit_id, out.key_id))


def test_bad_evaluation_keys_refused(session):
    _, _, server, client = session
    keys = client.evaluation_keys()
    env = unpack(keys, Kind.EVAL_KEYS)
    for blob in (keys[:-1], keys[: len(keys) // 2], _flip(keys, len(keys) // 2), b"junk",
                 pack(Kind.EVAL_KEYS, b"\x01" * 4000, env.circuit_id),
                 pack(Kind.EVAL_KEYS, env.payload, b"\x07" * 32),
                 pack(Kind.INPUT, env.payload, env.circuit_id)):
        with pytest.raises(FheInputError):
            server.add_evaluation_keys(blob)


def test_bad_output_ciphertexts_refused(session):
    _, inputset, server, client = session
    ct = client.encrypt(inputset[0])
    env = unpack(ct, Kind.INPUT)
    fake_out = pack(Kind.OUTPUT, env.payload, env.circuit_id, env.key_id)  # wrong shape inside
    for blob in (ct, fake_out, fake_out[:-3], _flip(fake_out, 7),
                 pack(Kind.OUTPUT, env.payload, env.circuit_id, b"\x07" * 32)):
        with pytest.raises(FheInputError):
            client.decrypt(blob)


def test_fhe_stats_report_serialized_sizes_once_keys_exist(compiled, session, run_two):
    circuit = compiled[3]
    assert "evaluation_key_bytes" not in fhe_stats(circuit)
    circuit.keygen()
    st = fhe_stats(circuit)
    client = session[3]
    raw = st["size_of_bootstrap_keys"] + st["size_of_keyswitch_keys"]
    # compressed keys: the server's blob (payload + envelope header) is far below concrete's size
    assert 0 < st["evaluation_key_bytes"] < raw / 2
    assert len(client.evaluation_keys()) - st["evaluation_key_bytes"] == HEADER_SIZE
    assert len(run_two[0][0]) - st["input_ciphertext_bytes"] == HEADER_SIZE
    assert st["input_ciphertext_bytes"] < st["size_of_inputs"] * 4


def test_bad_client_specs_refused(compiled):
    head, _, folder, _ = compiled
    specs = HeadServer.load(folder).client_specs()
    env = unpack(specs, Kind.SPECS)
    for blob in (specs[:-1], _flip(specs, len(specs) - 3), b"",
                 pack(Kind.SPECS, b"{not json"), pack(Kind.SPECS, b'{"format": "other/9"}'),
                 pack(Kind.EVAL_KEYS, env.payload)):
        with pytest.raises(FheInputError):
            HeadClient(blob, head=head)
