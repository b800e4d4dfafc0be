"""Hyrax commitments and openings: completeness, batching, serialisation, tampering."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from zk import curve as ZC
from zk import hyrax as H
from zk.claims import Claim
from zk.encoding import from_bytes, to_bytes
from zk.errors import MalformedProofError, VerificationError
from zk.field import Fr
from zk.transcript import Transcript

P = Fr.modulus
PROTO = b"test/hyrax"


def _pt(rng, n):
    return tuple(int(v) for v in rng.integers(0, 2**62, n))


def _check(com, claims, op):
    H.verify(com, claims, op, Transcript(PROTO))


@pytest.fixture(scope="module")
def setup():
    rng = np.random.default_rng(42)
    T = rng.integers(-128, 128, size=(6, 9))  # 54 entries -> 2^6, 2^3 x 2^3
    com, wit = H.commit(T, rng=rng)
    p0 = _pt(rng, 6)
    pts = [p0, _pt(rng, 6), p0[:3] + _pt(rng, 3)]  # claims 0 and 2 share the column point
    claims = [Claim(p, wit.evaluate(p)) for p in pts]
    op = H.open_claims(wit, com, claims, Transcript(PROTO), rng=rng)
    return T, com, wit, claims, op


def test_evaluation_matches_definition(setup):
    T, com, wit, claims, _ = setup
    flat = [int(v) for v in T.reshape(-1)] + [0] * (64 - T.size)
    from zk.multilinear import evaluate_ints

    assert wit.evaluate(claims[1].point) == evaluate_ints(flat, claims[1].point)
    assert (com.num_vars, com.log_cols, len(com.rows)) == (6, 3, 8)


def test_complete_and_roundtrip(setup):
    _, com, _, claims, op = setup
    assert len(op.arguments) == 2  # two distinct column points
    com2 = from_bytes(H.HyraxCommitment, to_bytes(com))
    op2 = from_bytes(H.HyraxOpening, to_bytes(op))
    assert com2 == com and op2 == op
    _check(com2, claims, op2)
    _check(com, claims[:1] + claims[2:], H.open_claims(
        setup[2], com, claims[:1] + claims[2:], Transcript(PROTO)))


@pytest.mark.parametrize("shape,log_cols", [((1,), None), ((8,), 0), ((8,), 3), ((3, 50), None)])
def test_shapes_and_field_tensors(shape, log_cols):
    rng = np.random.default_rng(sum(shape))
    vec = Fr.random(int(np.prod(shape)), rng)
    com, wit = H.commit_field(vec, log_cols=log_cols, rng=rng)
    p = _pt(rng, wit.num_vars)
    claims = [Claim(p, wit.evaluate(p))]
    op = H.open_claims(wit, com, claims, Transcript(PROTO), rng=rng)
    _check(com, claims, op)
    with pytest.raises(VerificationError):
        _check(com, [Claim(p, (claims[0].value + 1) % P)], op)


def test_wrong_value_rejected(setup):
    _, com, _, claims, op = setup
    for i in range(len(claims)):
        bad = list(claims)
        bad[i] = Claim(claims[i].point, (claims[i].value + 1) % P)
        with pytest.raises(VerificationError):
            _check(com, bad, op)
    with pytest.raises(VerificationError):  # a different point, same value
        _check(com, [Claim(claims[1].point, claims[0].value)] + claims[1:], op)


def test_other_tensor_rejected(setup):
    T, com, _, claims, op = setup
    T2 = T.copy()
    T2[0, 0] += 1
    com2, _ = H.commit(T2, rng=np.random.default_rng(0))
    with pytest.raises(VerificationError):
        _check(com2, claims, op)
    # the same tensor under fresh blinds is a different commitment too
    com3, _ = H.commit(T, rng=np.random.default_rng(1))
    with pytest.raises(VerificationError):
        _check(com3, claims, op)


def test_altered_messages_rejected(setup):
    _, com, _, claims, op = setup
    other = ZC.compress_list(ZC.generator())[0]
    arg = op.arguments[0]
    variants = []
    for j in range(len(arg.L)):
        variants.append(dataclasses.replace(arg, L=arg.L[:j] + (other,) + arg.L[j + 1:]))
        variants.append(dataclasses.replace(arg, R=arg.R[:j] + (other,) + arg.R[j + 1:]))
    variants.append(dataclasses.replace(arg, L=arg.R, R=arg.L))
    variants.append(dataclasses.replace(arg, A=other))
    variants.append(dataclasses.replace(arg, z1=(arg.z1 + 1) % P))
    variants.append(dataclasses.replace(arg, z2=(arg.z2 + 1) % P))
    variants.append(dataclasses.replace(arg, L=arg.L[:-1], R=arg.R[:-1]))
    for v in variants:
        with pytest.raises(VerificationError):
            _check(com, claims, H.HyraxOpening((v,) + op.arguments[1:]))
    with pytest.raises(VerificationError):  # arguments swapped
        _check(com, claims, H.HyraxOpening(op.arguments[::-1]))
    with pytest.raises(VerificationError):  # one argument missing
        _check(com, claims, H.HyraxOpening(op.arguments[:1]))
    with pytest.raises(VerificationError):  # a different transcript
        H.verify(com, claims, op, Transcript(b"another protocol"))


def test_every_byte_flip_rejected(setup):
    _, com, _, claims, op = setup
    data = bytearray(to_bytes(op))
    rng = np.random.default_rng(9)
    for pos in rng.choice(len(data), size=60, replace=False).tolist() + [len(data) - 1]:
        bad = bytearray(data)
        bad[pos] ^= 1 << int(rng.integers(8))
        with pytest.raises(VerificationError):  # MalformedProofError is a VerificationError
            _check(com, claims, from_bytes(H.HyraxOpening, bytes(bad)))


def test_point_off_curve_in_bytes(setup):
    _, com, _, claims, op = setup
    data = to_bytes(op)
    a = op.arguments[0].A
    at = data.index(a)
    q = ZC.C._Q
    x_off = next(x for x in range(1, 100) if pow(x**3 + 3, (q - 1) // 2, q) != 1)
    bad = data[:at] + x_off.to_bytes(32, "little") + data[at + 32:]
    with pytest.raises(MalformedProofError, match="not on the curve"):
        from_bytes(H.HyraxOpening, bad)
    cdata = to_bytes(com)
    at = cdata.index(com.rows[1])
    bad = cdata[:at] + (q + 1).to_bytes(32, "little") + cdata[at + 32:]
    with pytest.raises(MalformedProofError):
        from_bytes(H.HyraxCommitment, bad)
    with pytest.raises(MalformedProofError):
        from_bytes(H.HyraxOpening, data + b"\x00")
    with pytest.raises(MalformedProofError):
        from_bytes(H.HyraxOpening, data[:-5])
