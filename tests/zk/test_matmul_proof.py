"""The file-backed matrix-product proof: round trip, every flipped byte rejected, fuzzed bytes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zk.encoding import from_bytes, to_bytes
from zk.errors import MalformedProofError, ProverError, VerificationError
from zk.matmul_proof import MatmulProof, matrices, prove_matmul, verify_matmul


def make(n, k, m, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(-7, 8, size=(n, k)), rng.integers(-7, 8, size=(k, m))


@pytest.mark.parametrize("n,k,m", [(1, 1, 1), (3, 5, 2), (4, 8, 4), (6, 7, 3)])
def test_round_trip_and_verify(n, k, m):
    A, B = make(n, k, m)
    proof = prove_matmul(A, B)
    data = to_bytes(proof)
    back = from_bytes(MatmulProof, data)
    verify_matmul(back)
    a, b, c = matrices(back)
    assert np.array_equal(a, A) and np.array_equal(b, B) and np.array_equal(c, A @ B)
    assert to_bytes(back) == data


@pytest.fixture(scope="module")
def small_file():
    A, B = make(3, 3, 2, seed=4)
    return to_bytes(prove_matmul(A, B))


def test_every_flipped_byte_is_rejected(small_file):
    for i in range(len(small_file)):
        bad = bytearray(small_file)
        bad[i] ^= 0x01 if i % 2 else 0x80
        with pytest.raises(VerificationError):  # MalformedProofError is a subclass
            verify_matmul(from_bytes(MatmulProof, bytes(bad)))


def test_truncated_and_trailing_rejected(small_file):
    for cut in (0, 1, 10, len(small_file) // 2, len(small_file) - 1):
        with pytest.raises(MalformedProofError):
            from_bytes(MatmulProof, small_file[:cut])
    with pytest.raises(MalformedProofError):
        from_bytes(MatmulProof, small_file + b"\x00")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_never_crash(data):
    with pytest.raises(MalformedProofError):
        from_bytes(MatmulProof, data)


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_mutated_files_rejected(small_file, data):
    buf = bytearray(small_file)
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "insert", "delete"]))
        pos = data.draw(st.integers(0, len(buf) - 1))
        if op == "flip":
            buf[pos] ^= data.draw(st.integers(1, 255))
        elif op == "insert":
            buf.insert(pos, data.draw(st.integers(0, 255)))
        else:
            del buf[pos]
    if bytes(buf) == small_file:
        return
    with pytest.raises(VerificationError):
        verify_matmul(from_bytes(MatmulProof, bytes(buf)))


def test_false_product_is_rejected():
    A, B = make(4, 4, 4, seed=9)
    proof = prove_matmul(A, B)
    c = proof.c.copy()
    c[5] = proof.a[0]  # some other element at one entry of C
    from dataclasses import replace

    with pytest.raises(VerificationError):
        verify_matmul(replace(proof, c=c))


def test_prover_input_errors():
    with pytest.raises(ProverError):
        prove_matmul(np.ones((2, 3), dtype=np.int64), np.ones((2, 3), dtype=np.int64))
    with pytest.raises(ProverError):
        prove_matmul(np.ones((2, 2)), np.ones((2, 2)))
    with pytest.raises(ProverError):
        prove_matmul(np.full((1, 2), 2**40), np.full((2, 1), 2**40))
