"""Tests of zk.encoding: round trips, canonical rejection of malformed bytes, fuzzing."""

from __future__ import annotations

import struct
import tracemalloc
from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zk import encoding
from zk.encoding import (
    FORMAT_VERSION,
    FR_MODULUS,
    MAGIC,
    Reader,
    Writer,
    decode_envelope,
    encode_envelope,
    from_bytes,
    to_bytes,
)
from zk.errors import MalformedProofError


@pytest.fixture(autouse=True)
def opaque_points(monkeypatch):
    """These tests are about the byte layout: accept any 32 bytes as a point."""
    monkeypatch.setattr(encoding, "POINT_VALIDATOR", lambda b: None)


def test_points_are_curve_checked_by_default(monkeypatch) -> None:
    monkeypatch.setattr(encoding, "POINT_VALIDATOR", None)
    with pytest.raises(MalformedProofError, match="byte offset"):
        Reader(b"\x08" + b"\xff" * 32).point()
    identity = bytes(31) + b"\x80"
    assert Reader(b"\x08" + identity).point() == identity

R = FR_MODULUS
fr = st.one_of(st.integers(0, R - 1), st.sampled_from([0, 1, R - 1, 2**253]))
pt = st.binary(min_size=32, max_size=32)
FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ----------------------------------------------------------------------------- a toy proof type

@dataclass(frozen=True)
class Toy:
    """A proof-like object using every kind of value, with nested sections."""

    KIND: ClassVar[str] = "toy-proof"
    VERSION: ClassVar[int] = 3

    n: int
    big: int
    flag: bool
    name: str
    claim: int
    xs: tuple[int, ...]
    blob: bytes
    com: bytes
    pts: tuple[bytes, ...]
    rounds: tuple[tuple[int, ...], ...]

    def write(self, w: Writer) -> None:
        w.u8(self.n)
        w.u64(self.big)
        w.boolean(self.flag)
        w.text(self.name)
        with w.section("claims"):
            w.field(self.claim)
            w.fields(self.xs)
            with w.section("rounds"):
                w.u32(len(self.rounds))
                for msg in self.rounds:
                    w.fields(msg)
        w.raw_bytes(self.blob)
        w.point(self.com)
        w.points(self.pts)

    @classmethod
    def read(cls, r: Reader, version: int) -> Toy:
        assert version == cls.VERSION
        n, big, flag, name = r.u8(), r.u64(), r.boolean(), r.text(100)
        with r.section("claims"):
            claim = r.field()
            xs = tuple(r.fields(64))
            with r.section("rounds"):
                k = r.u32()
                if k > 8:
                    raise r.error(f"too many rounds: {k}")
                rounds = tuple(tuple(r.fields(3, exact_len=3)) for _ in range(k))
        return cls(n, big, flag, name, claim, xs, r.raw_bytes(1000), r.point(), tuple(r.points(16)),
                   rounds)


toys = st.builds(
    Toy, n=st.integers(0, 255), big=st.integers(0, 2**64 - 1), flag=st.booleans(),
    name=st.text(max_size=10).filter(lambda s: len(s.encode()) <= 100),
    claim=fr, xs=st.lists(fr, max_size=5).map(tuple), blob=st.binary(max_size=20), com=pt,
    pts=st.lists(pt, max_size=3).map(tuple),
    rounds=st.lists(st.tuples(fr, fr, fr), max_size=3).map(tuple))

EXAMPLE = Toy(7, 2**64 - 1, True, "héllo", R - 1, (0, 1, R - 1), b"\x00\xff", bytes(range(32)),
              (bytes(32), b"\xff" * 32), ((1, 2, 3), (R - 1, 0, 5)))
EXAMPLE_BYTES = to_bytes(EXAMPLE)


def reject(data: bytes, match: str | None = None) -> MalformedProofError:
    with pytest.raises(MalformedProofError, match=match) as e:
        from_bytes(Toy, data)
    return e.value


# ----------------------------------------------------------------------------- round trips

def test_example_round_trip() -> None:
    assert from_bytes(Toy, EXAMPLE_BYTES) == EXAMPLE
    assert EXAMPLE_BYTES.startswith(MAGIC + struct.pack("<HH", FORMAT_VERSION, 9) + b"toy-proof")


@FAST
@given(toys)
def test_toy_round_trip(toy: Toy) -> None:
    data = to_bytes(toy)
    assert from_bytes(Toy, data) == toy
    assert to_bytes(from_bytes(Toy, data)) == data


@FAST
@given(st.integers(0, 255), st.integers(0, 2**32 - 1), st.integers(0, 2**64 - 1), fr,
       st.lists(fr, max_size=6), st.binary(max_size=40), st.text(max_size=20), pt,
       st.lists(pt, max_size=4), st.booleans())
def test_every_type_round_trips(a, b, c, x, xs, blob, s, p, ps, flag) -> None:
    w = Writer()
    for method, value in [("u8", a), ("u32", b), ("u64", c), ("field", x), ("fields", xs),
                          ("raw_bytes", blob), ("text", s), ("point", p), ("points", ps),
                          ("boolean", flag)]:
        getattr(w, method)(value)
    w.fields(np.frombuffer(b"".join(v.to_bytes(32, "little") for v in xs), np.uint8)
             .reshape(-1, 32))
    r = Reader(w.getvalue())
    assert (r.u8(), r.u32(), r.u64(), r.field(), r.fields(6), r.raw_bytes(40), r.text(80),
            r.point(), r.points(4), r.boolean()) == (a, b, c, x, xs, blob, s, p, ps, flag)
    arr = r.fields_array(6, exact_len=len(xs))
    assert arr.shape == (len(xs), 32) and arr.dtype == np.uint8
    assert [int.from_bytes(row.tobytes(), "little") for row in arr] == xs
    r.finish()


def test_numpy_fields_same_encoding_as_ints() -> None:
    xs = [0, 1, R - 1, 12345]
    arr = np.frombuffer(b"".join(v.to_bytes(32, "little") for v in xs), np.uint8).reshape(4, 32)
    w1, w2 = Writer(), Writer()
    w1.fields(xs)
    w2.fields(arr)
    assert w1.getvalue() == w2.getvalue()
    assert np.array_equal(Reader(w1.getvalue()).fields_array(4), arr)


def test_nested_sections_and_begin_end() -> None:
    w = Writer()
    w.begin("outer")
    w.u8(1)
    with w.section("inner"):
        w.u32(2)
    with w.section("empty"):
        pass
    w.end()
    w.u8(3)
    r = Reader(w.getvalue())
    with r.section("outer"):
        assert r.u8() == 1
        with r.section("inner"):
            assert r.u32() == 2
        with r.section("empty"):
            pass
    assert r.u8() == 3
    r.finish()


def test_envelope_round_trip() -> None:
    data = encode_envelope("thing", 513, b"\x01\x02")
    assert data == MAGIC + b"\x01\x00\x05\x00thing\x01\x02\x01\x02"
    version, r = decode_envelope(data, "thing", {512, 513})
    assert version == 513 and r.offset == len(data) - 2
    with pytest.raises(MalformedProofError, match="trailing"):
        r.finish()


# ----------------------------------------------------------------------------- writer checks

@pytest.mark.parametrize("method,bad", [("u8", 256), ("u8", -1), ("u32", 2**32), ("u64", 2**64),
                                        ("u64", -1), ("field", R), ("field", -1)])
def test_writer_range_checks(method: str, bad: int) -> None:
    with pytest.raises(ValueError):
        getattr(Writer(), method)(bad)


def test_writer_rejects_bad_inputs() -> None:
    w = Writer()
    with pytest.raises(ValueError):
        w.fields([1, R])
    with pytest.raises(ValueError):
        w.fields(np.full((1, 32), 0xFF, np.uint8))
    with pytest.raises(ValueError):
        w.fields(np.zeros((2, 31), np.uint8))
    with pytest.raises(ValueError):
        w.point(bytes(33))
    with pytest.raises(ValueError):
        w.points([bytes(32), bytes(31)])
    with pytest.raises(ValueError):
        w.end()
    with pytest.raises(ValueError):
        w.begin("")
    with pytest.raises(TypeError):
        w.boolean(2)
    w.begin("open")
    with pytest.raises(ValueError, match="unclosed"):
        w.getvalue()


# ----------------------------------------------------------------------------- rejections

def test_truncated_at_every_length() -> None:
    for n in range(len(EXAMPLE_BYTES)):
        reject(EXAMPLE_BYTES[:n])


def test_one_trailing_byte() -> None:
    reject(EXAMPLE_BYTES + b"\x00", "trailing")


def test_wrong_magic() -> None:
    reject(b"ZKFX" + EXAMPLE_BYTES[4:], "not a zkfhe file")
    reject(b"", "not a zkfhe file")
    reject(b"\x80\x04\x95pickle", "not a zkfhe file")


def test_wrong_format_version() -> None:
    reject(MAGIC + struct.pack("<H", FORMAT_VERSION + 1) + EXAMPLE_BYTES[6:], "format version")


def test_wrong_kind() -> None:
    data = to_bytes(EXAMPLE).replace(b"toy-proof", b"toy-proog", 1)
    reject(data, "this is a toy-proog file, expected toy-proof")
    reject(encode_envelope("other", 3, b""), "this is a other file, expected toy-proof")


def test_wrong_version() -> None:
    at = len(MAGIC) + 4 + len(b"toy-proof")
    data = EXAMPLE_BYTES[:at] + struct.pack("<H", 4) + EXAMPLE_BYTES[at + 2:]
    reject(data, r"version 4, expected one of \[3\]")
    assert from_bytes(Toy, EXAMPLE_BYTES, versions={2, 3}) == EXAMPLE
    with pytest.raises(MalformedProofError, match="version 3"):
        from_bytes(Toy, EXAMPLE_BYTES, versions={1})


def test_wrong_tag_message() -> None:
    w = Writer()
    w.u32(5)
    with pytest.raises(MalformedProofError, match=r"expected field \(tag 0x04\), found u32 "
                                                  r"\(tag 0x02\) at byte offset 0"):
        Reader(w.getvalue()).field()
    with pytest.raises(MalformedProofError, match="unknown tag"):
        Reader(b"\xee").u8()
    # every reader rejects every other type's tag
    readers = {"u8": lambda r: r.u8(), "u32": lambda r: r.u32(), "u64": lambda r: r.u64(),
               "field": lambda r: r.field(), "fields": lambda r: r.fields(9),
               "bytes": lambda r: r.raw_bytes(9), "text": lambda r: r.text(9),
               "point": lambda r: r.point(), "points": lambda r: r.points(9),
               "section": lambda r: r.section("s").__enter__(), "bool": lambda r: r.boolean()}
    w = Writer()
    writes = {"u8": lambda: w.u8(1), "u32": lambda: w.u32(1), "u64": lambda: w.u64(1),
              "field": lambda: w.field(1), "fields": lambda: w.fields([1]),
              "bytes": lambda: w.raw_bytes(b"a"), "text": lambda: w.text("a"),
              "point": lambda: w.point(bytes(32)), "points": lambda: w.points([bytes(32)]),
              "section": lambda: (w.begin("s"), w.end()), "bool": lambda: w.boolean(True)}
    for name, write in writes.items():
        w._buf.clear()
        write()
        data = w.getvalue()
        for other, read in readers.items():
            if other != name:
                with pytest.raises(MalformedProofError, match=f"expected {other} "):
                    read(Reader(data))


@pytest.mark.parametrize("value", [R, R + 1, 2**256 - 1])
def test_field_not_below_r(value: int) -> None:
    elem = value.to_bytes(32, "little")
    with pytest.raises(MalformedProofError, match=r"below r.*at byte offset 1$"):
        Reader(b"\x04" + elem).field()
    vec = b"\x05" + struct.pack("<I", 2) + (5).to_bytes(32, "little") + elem
    with pytest.raises(MalformedProofError, match="at byte offset 37"):
        Reader(vec).fields(2)
    with pytest.raises(MalformedProofError, match="at byte offset 37"):
        Reader(vec).fields_array(2)


def test_field_r_minus_one_accepted() -> None:
    assert Reader(b"\x04" + (R - 1).to_bytes(32, "little")).field() == R - 1


def test_bad_bool() -> None:
    assert Reader(b"\x0b\x01").boolean() is True
    with pytest.raises(MalformedProofError, match="0 or 1"):
        Reader(b"\x0b\x02").boolean()


@pytest.mark.parametrize("tag,read", [
    (0x05, lambda r: r.fields(2**40)), (0x05, lambda r: r.fields_array(2**40)),
    (0x06, lambda r: r.raw_bytes(2**40)), (0x07, lambda r: r.text(2**40)),
    (0x09, lambda r: r.points(2**40)), (0x05, lambda r: r.fields(10)),
    (0x06, lambda r: r.raw_bytes(10)),
])
def test_huge_length_rejected_without_allocating(tag, read) -> None:
    data = bytes([tag]) + b"\xff\xff\xff\xff" + bytes(64)
    tracemalloc.start()
    try:
        with pytest.raises(MalformedProofError, match="exceeds the bound|truncated"):
            read(Reader(data))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


def test_huge_section_length_rejected() -> None:
    data = b"\x0a" + struct.pack("<I", 1) + b"s" + b"\xff\xff\xff\xff" + bytes(8)
    with pytest.raises(MalformedProofError, match="truncated"):
        with Reader(data).section("s"):
            pass


def test_exact_len() -> None:
    w = Writer()
    w.fields([1, 2])
    with pytest.raises(MalformedProofError, match="length 3, found length 2"):
        Reader(w.getvalue()).fields(5, exact_len=3)


def test_bad_utf8() -> None:
    for bad in (b"\xff", b"\xc0\x80", b"\xed\xa0\x80", b"ab\xe2\x82"):  # overlong, surrogate
        data = b"\x07" + struct.pack("<I", len(bad)) + bad
        with pytest.raises(MalformedProofError, match="utf-8"):
            Reader(data).text(10)
    reject(MAGIC + struct.pack("<HH", FORMAT_VERSION, 2) + b"\xff\xfe" + b"\x03\x00", "utf-8")


def test_section_label_mismatch() -> None:
    w = Writer()
    with w.section("commitments"):
        w.u8(1)
    with pytest.raises(MalformedProofError, match="expected section 'openings', found section "
                                                  "'commitments' at byte offset 0"):
        with Reader(w.getvalue()).section("openings"):
            pass
    reject(EXAMPLE_BYTES.replace(b"rounds", b"rounds"[::-1]), "expected section 'rounds'")


def test_section_not_fully_consumed() -> None:
    w = Writer()
    with w.section("s"):
        w.u8(1)
        w.u8(2)
    r = Reader(w.getvalue())
    with pytest.raises(MalformedProofError, match="'s' not fully consumed: 2 bytes left"):
        with r.section("s"):
            r.u8()


def test_reads_cannot_cross_section_end() -> None:
    w = Writer()
    with w.section("s"):
        w.u8(1)
    w.u8(2)
    r = Reader(w.getvalue())
    with pytest.raises(MalformedProofError, match="before the end of section 's'"):
        with r.section("s"):
            r.u8()
            r.u8()


def test_point_validator_hook() -> None:
    seen: list[bytes] = []

    def validator(b: bytes) -> None:
        seen.append(b)
        if b[0] == 0xFF:
            raise MalformedProofError("point not on the curve")

    try:
        encoding.POINT_VALIDATOR = validator
        assert from_bytes(Toy, to_bytes(replace(EXAMPLE, pts=(bytes(32),)))).com
        assert seen == [EXAMPLE.com, bytes(32)]
        with pytest.raises(MalformedProofError, match="not on the curve") as e:
            from_bytes(Toy, EXAMPLE_BYTES)
        assert any("byte offset" in note for note in e.value.__notes__)
        with pytest.raises(MalformedProofError, match="not on the curve"):
            Reader(b"\x08" + b"\xff" * 32).point()

        def buggy(b: bytes) -> None:
            raise ValueError("boom")

        encoding.POINT_VALIDATOR = buggy
        with pytest.raises(MalformedProofError, match="invalid point.*boom"):
            Reader(b"\x08" + bytes(32)).point()
    finally:
        encoding.POINT_VALIDATOR = None


# ----------------------------------------------------------------------------- fuzzing

def read_everything(data: bytes) -> None:
    """Call every reader on fresh Readers over ``data``; only MalformedProofError may escape."""
    for read in (lambda r: r.u8(), lambda r: r.u32(), lambda r: r.u64(), lambda r: r.field(),
                 lambda r: r.fields(100), lambda r: r.fields_array(100), lambda r: r.raw_bytes(100),
                 lambda r: r.text(100), lambda r: r.point(), lambda r: r.points(100),
                 lambda r: r.boolean(), lambda r: r.finish()):
        try:
            read(Reader(data))
        except MalformedProofError:
            pass
    try:
        r = Reader(data)
        with r.section("s"):
            r.u8()
    except MalformedProofError:
        pass


@FAST
@given(st.binary(max_size=120))
def test_fuzz_random_bytes(data: bytes) -> None:
    read_everything(data)
    header = EXAMPLE_BYTES[:len(MAGIC) + 6 + len("toy-proof")]
    for blob in (data, header + data):
        try:
            obj = from_bytes(Toy, blob)
        except MalformedProofError:
            continue
        assert to_bytes(obj) == blob  # anything accepted is the canonical encoding


mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 10**6), st.integers(1, 255)),
    st.tuples(st.just("insert"), st.integers(0, 10**6), st.integers(0, 255)),
    st.tuples(st.just("delete"), st.integers(0, 10**6), st.integers(1, 40)),
)


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(toys, st.lists(mutation, min_size=1, max_size=3))
def test_fuzz_mutated_valid_encodings(toy: Toy, muts) -> None:
    data = bytearray(to_bytes(toy))
    for kind, pos, v in muts:
        i = pos % (len(data) + 1)
        if kind == "flip" and i < len(data):
            data[i] ^= v
        elif kind == "insert":
            data[i:i] = bytes([v])
        else:
            del data[i:i + v]
    data = bytes(data)
    try:
        obj = from_bytes(Toy, data)
    except MalformedProofError:
        pass
    else:
        assert to_bytes(obj) == data  # canonical: accepted bytes re-encode identically
    read_everything(data)


# ---------------------------------------------------------------- model commitment v2 (RoPE)


def _rope_head():
    from zk.attention_ref import HeadConfig, random_head

    cfg = HeadConfig(12, 4, 3, rope_theta=10000.0, rope_bits=6)
    _, W, calib = random_head(cfg, seed=3)
    from zk.attention_ref import quantize_head

    return quantize_head(W["Wq"], W["Wk"], W["Wv"], W["bq"] * 0, W["bk"] * 0, W["bv"] * 0,
                         calib, cfg, weight_scheme="channel", smooth_alpha=0.5)


def test_rope_model_commitment_round_trip_and_strict_reading():
    from zk import attention_model as am
    from zk.encoding import from_bytes, to_bytes

    head = _rope_head()
    origin = {"model": "SmolLM2-135M-Instruct", "layer": 0, "head": 4, "kv_head": 1}
    pm, mc = am.commit(head, rng=np.random.default_rng(0), origin=origin)
    data = to_bytes(mc)
    back = from_bytes(am.ModelCommitment, data)
    assert back.digest == mc.digest and back.origin == origin
    assert np.array_equal(back.rope_cos, head.rope_cos) and np.array_equal(back.rope_sin, head.rope_sin)
    assert np.array_equal(back.smooth, head.smooth)
    pm2 = from_bytes(am.ProvingModel, to_bytes(pm))
    assert np.array_equal(pm2.head.rope_sin, head.rope_sin)
    assert np.array_equal(pm2.head.smooth, head.smooth)
    # another origin, another table entry: another model
    _, mc3 = am.commit(head, rng=np.random.default_rng(0), origin=dict(origin, head=5))
    assert mc3.digest != mc.digest
    # a RoPE entry outside [-2^c, 2^c] is refused on reading
    raw = np.asarray(head.rope_cos, dtype="<i8").tobytes()
    i = data.index(raw)
    bad = bytearray(data)
    bad[i: i + 8] = np.array([1 << 20], dtype="<i8").tobytes()
    with pytest.raises(MalformedProofError, match="RoPE"):
        from_bytes(am.ModelCommitment, bytes(bad))
    # the header is strict: a smoothing vector of the wrong length, a negative factor, an
    # origin that is not a small map of names
    for kw, msg in ((dict(smooth=head.smooth[:-1]), "smooth"),
                    (dict(smooth=-head.smooth), "smooth"),
                    (dict(origin={"layer": [0]}), "origin")):
        with pytest.raises(MalformedProofError, match=msg):
            from_bytes(am.ModelCommitment, to_bytes(replace(mc, **kw)))
    # version 1 files are no longer read
    with pytest.raises(MalformedProofError):
        from_bytes(am.ModelCommitment, data, versions=(1,))
    with pytest.raises(MalformedProofError):
        from_bytes(am.ModelCommitment, data[:-1])
