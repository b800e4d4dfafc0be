"""The canonical, versioned binary format of every proof object. Never pickle.

A file is an envelope followed by a body. All integers are little-endian.

Envelope (untagged, fixed layout)::

    offset  size  content
    0       4     magic b"ZKFH"
    4       2     format version (u16, FORMAT_VERSION)
    6       2     length k of the kind (u16, 1..MAX_KIND_LEN)
    8       k     kind, utf-8 (for example "hyrax-commitment")
    8+k     2     version of the object (u16)
    10+k    ...   body: a sequence of tagged values

Body values, each one byte of tag then the payload (n, k, m are u32 lengths)::

    tag   name     payload
    0x01  u8       1 byte
    0x02  u32      4 bytes
    0x03  u64      8 bytes
    0x04  field    32 bytes, an element x of Fr (BN254 scalar field), 0 <= x < r
    0x05  fields   n, then n * 32 bytes of field elements
    0x06  bytes    n, then n bytes
    0x07  text     n, then n bytes of utf-8
    0x08  point    32 bytes, a compressed curve point (opaque here; see POINT_VALIDATOR)
    0x09  points   n, then n * 32 bytes of points
    0x0A  section  k, k bytes of utf-8 label (1..MAX_LABEL_LEN), m, then m bytes of
                   nested values
    0x0B  bool     1 byte, 0 or 1

Canonical: every value has a single encoding (fixed-width integers, field elements below r,
booleans 0/1, strict utf-8, exact section lengths, no trailing bytes), so one object has
exactly one file. A :class:`Reader` checks all of it and raises
:class:`~zk.errors.MalformedProofError` (naming what it expected, what it found and the byte
offset) on any input; it checks every length against a caller's bound and against the bytes
left before it allocates anything.

A proof type implements :class:`Serializable` (``KIND``, ``VERSION``, ``write``, ``read``) and
gets :func:`to_bytes` / :func:`from_bytes`.
"""

from __future__ import annotations

import operator
import struct
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from typing import ClassVar, Protocol, Self, TypeVar

import numpy as np
import numpy.typing as npt
from py_ecc.optimized_bn128 import curve_order

from zk.errors import MalformedProofError

__all__ = [
    "FR_MODULUS", "FORMAT_VERSION", "MAGIC", "MAX_KIND_LEN", "MAX_LABEL_LEN", "POINT_VALIDATOR",
    "Writer", "Reader", "Serializable", "encode_envelope", "decode_envelope", "to_bytes",
    "from_bytes",
]

FR_MODULUS: int = curve_order
"""r, the order of the BN254 scalar field Fr (``py_ecc.optimized_bn128.curve_order``)."""

FORMAT_VERSION = 1
"""Version of the envelope and value encoding described in the module docstring."""

MAGIC = b"ZKFH"
MAX_KIND_LEN = 64
"""Largest kind string, in utf-8 bytes."""
MAX_LABEL_LEN = 255
"""Largest section label, in utf-8 bytes."""

POINT_VALIDATOR: Callable[[bytes], None] | None = None
"""Override of the check :meth:`Reader.point` and :meth:`Reader.points` make on every point.

``None`` (the default) means :func:`zk.curve.validate_point`: the bytes must be a canonical
compressed BN254 G1 point, or the read raises :class:`~zk.errors.MalformedProofError` (with a
note giving the byte offset). Tests of the byte layout alone may install another function. Any
exception other than MalformedProofError that the check raises is turned into one (chained), so
readers keep their promise of raising nothing else.
"""

_U32_MAX = 0xFFFF_FFFF
_T_U8, _T_U32, _T_U64, _T_FIELD, _T_FIELDS = 0x01, 0x02, 0x03, 0x04, 0x05
_T_BYTES, _T_TEXT, _T_POINT, _T_POINTS, _T_SECTION, _T_BOOL = 0x06, 0x07, 0x08, 0x09, 0x0A, 0x0B
_TAG_NAMES = {
    _T_U8: "u8", _T_U32: "u32", _T_U64: "u64", _T_FIELD: "field", _T_FIELDS: "fields",
    _T_BYTES: "bytes", _T_TEXT: "text", _T_POINT: "point", _T_POINTS: "points",
    _T_SECTION: "section", _T_BOOL: "bool",
}
_R_LIMBS = [np.uint64((FR_MODULUS >> (64 * i)) & 0xFFFF_FFFF_FFFF_FFFF) for i in range(4)]


def _below_r(arr: npt.NDArray[np.uint8]) -> npt.NDArray[np.bool_]:
    """For an (n, 32) uint8 array of little-endian integers, which rows are < r."""
    limbs = np.ascontiguousarray(arr).view("<u8")  # (n, 4), least significant limb first
    lt = np.zeros(len(limbs), dtype=bool)
    eq = np.ones(len(limbs), dtype=bool)
    for i in (3, 2, 1, 0):
        lt |= eq & (limbs[:, i] < _R_LIMBS[i])
        eq &= limbs[:, i] == _R_LIMBS[i]
    return lt


def _label_bytes(label: str) -> bytes:
    b = label.encode("utf-8")
    if not 1 <= len(b) <= MAX_LABEL_LEN:
        raise ValueError(f"section label must be 1..{MAX_LABEL_LEN} utf-8 bytes, got {len(b)}")
    return b


class Writer:
    """Builds the body of a file: a sequence of tagged values (see the module docstring).

    Every method range-checks its argument and raises ValueError (or TypeError for a wrong
    type), so a Writer only ever produces canonical bytes.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._open: list[tuple[str, int]] = []  # (label, offset of the length placeholder)

    def _uint(self, tag: int, x: int, size: int, name: str) -> None:
        x = operator.index(x)
        if not 0 <= x < 1 << (8 * size):
            raise ValueError(f"{name} out of range: {x}")
        self._buf.append(tag)
        self._buf += x.to_bytes(size, "little")

    def _len(self, n: int, name: str) -> None:
        if n > _U32_MAX:
            raise ValueError(f"{name} too long: {n} > {_U32_MAX}")
        self._buf += n.to_bytes(4, "little")

    def u8(self, x: int) -> None:
        """Write an integer 0 <= x < 2^8."""
        self._uint(_T_U8, x, 1, "u8")

    def u32(self, x: int) -> None:
        """Write an integer 0 <= x < 2^32."""
        self._uint(_T_U32, x, 4, "u32")

    def u64(self, x: int) -> None:
        """Write an integer 0 <= x < 2^64."""
        self._uint(_T_U64, x, 8, "u64")

    def boolean(self, x: bool) -> None:
        """Write a bool as one byte, 0 or 1."""
        if not isinstance(x, (bool, np.bool_)):
            raise TypeError(f"boolean expects a bool, got {type(x).__name__}")
        self._buf += bytes((_T_BOOL, int(x)))

    def field(self, x: int) -> None:
        """Write one element of Fr: an integer 0 <= x < r, as 32 bytes."""
        x = operator.index(x)
        if not 0 <= x < FR_MODULUS:
            raise ValueError(f"field element out of range [0, r): {x}")
        self._buf.append(_T_FIELD)
        self._buf += x.to_bytes(32, "little")

    def fields(self, xs: Sequence[int] | npt.NDArray[np.uint8]) -> None:
        """Write a length-prefixed vector of Fr elements.

        ``xs`` is a sequence of integers in [0, r), or, for speed, a numpy uint8 array of
        shape (n, 32) whose rows are already the canonical 32-byte little-endian encodings
        (each row is still checked to be < r, vectorised).
        """
        if isinstance(xs, np.ndarray):
            if xs.dtype != np.uint8 or xs.ndim != 2 or xs.shape[1] != 32:
                raise ValueError(f"expected an (n, 32) uint8 array, got {xs.dtype} {xs.shape}")
            bad = np.flatnonzero(~_below_r(xs))
            if bad.size:
                raise ValueError(f"field element {bad[0]} of the array is not below r")
            self._buf.append(_T_FIELDS)
            self._len(len(xs), "fields")
            self._buf += np.ascontiguousarray(xs).tobytes()
            return
        vals = [operator.index(x) for x in xs]
        for i, x in enumerate(vals):
            if not 0 <= x < FR_MODULUS:
                raise ValueError(f"field element {i} out of range [0, r): {x}")
        self._buf.append(_T_FIELDS)
        self._len(len(vals), "fields")
        self._buf += b"".join(x.to_bytes(32, "little") for x in vals)

    def raw_bytes(self, b: bytes) -> None:
        """Write a length-prefixed byte string."""
        b = bytes(b)
        self._buf.append(_T_BYTES)
        self._len(len(b), "bytes")
        self._buf += b

    def text(self, s: str) -> None:
        """Write a string as length-prefixed utf-8 (lone surrogates raise ValueError)."""
        b = s.encode("utf-8")
        self._buf.append(_T_TEXT)
        self._len(len(b), "text")
        self._buf += b

    @staticmethod
    def _point_bytes(b: bytes) -> bytes:
        b = bytes(b)
        if len(b) != 32:
            raise ValueError(f"a point is 32 bytes, got {len(b)}")
        return b

    def point(self, b: bytes) -> None:
        """Write a 32-byte compressed curve point (opaque here; the reader validates it)."""
        self._buf.append(_T_POINT)
        self._buf += self._point_bytes(b)

    def points(self, pts: Sequence[bytes]) -> None:
        """Write a length-prefixed vector of 32-byte compressed points."""
        data = [self._point_bytes(p) for p in pts]
        self._buf.append(_T_POINTS)
        self._len(len(data), "points")
        self._buf += b"".join(data)

    def begin(self, label: str) -> None:
        """Open a nested section named ``label``; close it with :meth:`end`."""
        lb = _label_bytes(label)
        self._buf.append(_T_SECTION)
        self._len(len(lb), "label")
        self._buf += lb
        self._open.append((label, len(self._buf)))
        self._buf += bytes(4)  # body length, patched by end()

    def end(self) -> None:
        """Close the innermost open section, writing its length."""
        if not self._open:
            raise ValueError("end() without an open section")
        _, at = self._open.pop()
        n = len(self._buf) - at - 4
        if n > _U32_MAX:
            raise ValueError(f"section too long: {n} bytes")
        self._buf[at:at + 4] = n.to_bytes(4, "little")

    @contextmanager
    def section(self, label: str) -> Iterator[None]:
        """``with w.section(label): ...`` is ``begin(label)``, the body, ``end()``."""
        self.begin(label)
        yield
        self.end()

    def getvalue(self) -> bytes:
        """The bytes written so far; every section must be closed."""
        if self._open:
            raise ValueError(f"unclosed sections: {[lb for lb, _ in self._open]}")
        return bytes(self._buf)


class Reader:
    """Reads and validates the values a :class:`Writer` wrote, in the same order.

    Every method raises :class:`~zk.errors.MalformedProofError` (never anything else) on
    truncation, a wrong tag, a length beyond the caller's bound (``max_len``, counted in
    elements for vectors and in bytes for ``raw_bytes``/``text``), a field element >= r, a
    non-0/1 boolean or invalid utf-8. Offsets in messages are offsets into ``data``;
    ``start`` is where reading begins (``decode_envelope`` uses it to read the body in place).
    """

    def __init__(self, data: bytes | bytearray | memoryview, *, start: int = 0) -> None:
        self._data = bytes(data)
        self._pos = start
        self._ends: list[int] = []  # end offsets of the open sections
        self._labels: list[str] = []

    @property
    def offset(self) -> int:
        """The current byte offset into the data."""
        return self._pos

    def error(self, msg: str, at: int | None = None) -> MalformedProofError:
        """A MalformedProofError for ``msg`` at offset ``at`` (default: the current offset).

        For semantic checks in ``read`` methods: ``raise r.error("expected ...")``.
        """
        return MalformedProofError(f"{msg} at byte offset {self._pos if at is None else at}")

    def _need(self, n: int, what: str) -> None:
        """Check that ``n`` more bytes are left (in the innermost section) without reading."""
        left = (self._ends[-1] if self._ends else len(self._data)) - self._pos
        if n > left:
            where = f" of section {self._labels[-1]!r}" if self._ends else ""
            raise self.error(f"truncated: expected {n} bytes of {what}, found {max(left, 0)} "
                             f"before the end{where}")

    def _take(self, n: int, what: str) -> bytes:
        self._need(n, what)
        b = self._data[self._pos:self._pos + n]
        self._pos += n
        return b

    def _tag(self, tag: int) -> None:
        at = self._pos
        t = self._take(1, f"the tag of a {_TAG_NAMES[tag]}")[0]
        if t != tag:
            found = _TAG_NAMES.get(t, "unknown tag")
            raise self.error(f"expected {_TAG_NAMES[tag]} (tag 0x{tag:02x}), found {found} "
                             f"(tag 0x{t:02x})", at)

    def _len(self, what: str, max_len: int, exact_len: int | None = None) -> int:
        at = self._pos
        n = int.from_bytes(self._take(4, f"the length of {what}"), "little")
        if exact_len is not None and n != exact_len:
            raise self.error(f"expected {what} of length {exact_len}, found length {n}", at)
        if n > max_len:
            raise self.error(f"{what} length {n} exceeds the bound {max_len}", at)
        return n

    def _uint(self, tag: int, size: int) -> int:
        self._tag(tag)
        return int.from_bytes(self._take(size, _TAG_NAMES[tag]), "little")

    def u8(self) -> int:
        """Read a u8."""
        return self._uint(_T_U8, 1)

    def u32(self) -> int:
        """Read a u32."""
        return self._uint(_T_U32, 4)

    def u64(self) -> int:
        """Read a u64."""
        return self._uint(_T_U64, 8)

    def boolean(self) -> bool:
        """Read a bool (the byte must be 0 or 1)."""
        self._tag(_T_BOOL)
        at = self._pos
        b = self._take(1, "bool")[0]
        if b > 1:
            raise self.error(f"expected a bool 0 or 1, found {b}", at)
        return b == 1

    def _field_at(self, b: bytes, at: int) -> int:
        x = int.from_bytes(b, "little")
        if x >= FR_MODULUS:
            raise self.error(f"expected a field element below r, found {x} (>= r)", at)
        return x

    def field(self) -> int:
        """Read one Fr element (checked < r)."""
        self._tag(_T_FIELD)
        at = self._pos
        return self._field_at(self._take(32, "field"), at)

    def fields(self, max_len: int, exact_len: int | None = None) -> list[int]:
        """Read a vector of at most ``max_len`` (exactly ``exact_len`` if given) Fr elements."""
        self._tag(_T_FIELDS)
        n = self._len("fields", max_len, exact_len)
        at = self._pos
        b = self._take(32 * n, f"{n} field elements")
        return [self._field_at(b[32 * i:32 * i + 32], at + 32 * i) for i in range(n)]

    def fields_array(self, max_len: int, exact_len: int | None = None) -> npt.NDArray[np.uint8]:
        """Like :meth:`fields`, but return the (n, 32) uint8 array of encodings (validated < r,
        vectorised), a writable copy."""
        self._tag(_T_FIELDS)
        n = self._len("fields", max_len, exact_len)
        at = self._pos
        arr = np.frombuffer(self._take(32 * n, f"{n} field elements"), dtype=np.uint8)
        arr = arr.reshape(n, 32).copy()
        bad = np.flatnonzero(~_below_r(arr))
        if bad.size:
            i = int(bad[0])
            self._field_at(arr[i].tobytes(), at + 32 * i)
        return arr

    def raw_bytes(self, max_len: int) -> bytes:
        """Read a byte string of at most ``max_len`` bytes."""
        self._tag(_T_BYTES)
        return self._take(self._len("bytes", max_len), "bytes")

    def _utf8(self, b: bytes, at: int, what: str) -> str:
        try:
            return b.decode("utf-8")
        except UnicodeDecodeError as e:
            raise self.error(f"expected utf-8 {what}, found invalid byte(s) {b[e.start:e.end]!r}",
                             at + e.start) from None

    def text(self, max_len: int) -> str:
        """Read a utf-8 string of at most ``max_len`` encoded bytes."""
        self._tag(_T_TEXT)
        n = self._len("text", max_len)
        at = self._pos
        return self._utf8(self._take(n, "text"), at, "text")

    def _check_point(self, b: bytes, at: int) -> bytes:
        hook = POINT_VALIDATOR
        if hook is None:
            from zk.curve import validate_point as hook  # curve imports this module
        try:
            hook(b)
        except MalformedProofError as e:
            e.add_note(f"(the point at byte offset {at})")
            raise
        except Exception as e:
            raise self.error(f"invalid point ({e})", at) from e
        return b

    def point(self) -> bytes:
        """Read a 32-byte compressed point, validated (see :data:`POINT_VALIDATOR`)."""
        self._tag(_T_POINT)
        at = self._pos
        return self._check_point(self._take(32, "point"), at)

    def points(self, max_len: int, exact_len: int | None = None) -> list[bytes]:
        """Read a vector of at most ``max_len`` (exactly ``exact_len`` if given) points."""
        self._tag(_T_POINTS)
        n = self._len("points", max_len, exact_len)
        at = self._pos
        b = self._take(32 * n, f"{n} points")
        if POINT_VALIDATOR is None and n > 1:  # the default check, in one batch
            from zk.curve import decompress  # curve imports this module
            try:
                decompress(np.frombuffer(b, dtype=np.uint8).reshape(n, 32))
            except MalformedProofError as e:
                i = int(str(e).split()[2].rstrip(":"))
                e.add_note(f"(the point at byte offset {at + 32 * i})")
                raise
            return [b[32 * i:32 * i + 32] for i in range(n)]
        return [self._check_point(b[32 * i:32 * i + 32], at + 32 * i) for i in range(n)]

    @contextmanager
    def section(self, label: str) -> Iterator[None]:
        """``with r.section(label): ...`` reads a section written by ``Writer.section(label)``.

        Checks the tag and the label on entry; reads inside cannot run past the section; on a
        normal exit the section must have been consumed exactly.
        """
        expected = _label_bytes(label)
        at = self._pos
        self._tag(_T_SECTION)
        n = self._len("section label", MAX_LABEL_LEN)
        found = self._take(n, "section label")
        if found != expected:
            raise self.error(f"expected section {label!r}, found section "
                             f"{found.decode('utf-8', 'replace')!r}", at)
        size = self._len(f"section {label!r}", _U32_MAX)
        self._need(size, f"section {label!r}")
        end = self._pos + size
        self._ends.append(end)
        self._labels.append(label)
        try:
            yield
            if self._pos != end:
                raise self.error(f"section {label!r} not fully consumed: {end - self._pos} "
                                 f"bytes left")
        finally:
            self._ends.pop()
            self._labels.pop()

    def finish(self) -> None:
        """Check that every byte was read."""
        if self._ends:
            raise RuntimeError(f"finish() inside the open section {self._labels[-1]!r}")
        if self._pos != len(self._data):
            raise self.error(f"expected the end of the data, found {len(self._data) - self._pos}"
                             f" trailing bytes")


def encode_envelope(kind: str, version: int, body: bytes) -> bytes:
    """Prefix ``body`` with the envelope: magic, FORMAT_VERSION, ``kind``, ``version``."""
    kb = kind.encode("utf-8")
    if not 1 <= len(kb) <= MAX_KIND_LEN:
        raise ValueError(f"kind must be 1..{MAX_KIND_LEN} utf-8 bytes, got {len(kb)}")
    if not 0 <= version <= 0xFFFF:
        raise ValueError(f"version must fit in a u16, got {version}")
    return b"".join((MAGIC, struct.pack("<HH", FORMAT_VERSION, len(kb)), kb,
                     struct.pack("<H", version), bytes(body)))


def decode_envelope(data: bytes, kind: str, versions: Collection[int]) -> tuple[int, Reader]:
    """Check the envelope of ``data`` and return (object version, Reader over the body).

    Raises MalformedProofError if ``data`` is not a zkfhe file, has another format version, is
    a file of another kind, or has an object version not in ``versions``. The caller reads the
    body and then calls ``Reader.finish()``.
    """
    r = Reader(data)
    if r._data[:4] != MAGIC:
        raise r.error(f"not a zkfhe file: expected magic {MAGIC!r}, found {r._data[:4]!r}", 0)
    r._pos = 4
    fv = int.from_bytes(r._take(2, "the format version"), "little")
    if fv != FORMAT_VERSION:
        raise r.error(f"unsupported zkfhe format version {fv}, expected {FORMAT_VERSION}", 4)
    n = int.from_bytes(r._take(2, "the length of the kind"), "little")
    if not 1 <= n <= MAX_KIND_LEN:
        raise r.error(f"kind length {n} outside 1..{MAX_KIND_LEN}", 6)
    found = r._utf8(r._take(n, "the kind"), 8, "kind")
    if found != kind:
        raise r.error(f"this is a {found if found.isprintable() else repr(found)} file, "
                      f"expected {kind}", 8)
    at = r._pos
    version = int.from_bytes(r._take(2, "the version"), "little")
    if version not in versions:
        raise r.error(f"unsupported {kind} version {version}, expected one of "
                      f"{sorted(versions)}", at)
    return version, r


class Serializable(Protocol):
    """What a proof type provides to get :func:`to_bytes` / :func:`from_bytes`.

    ``KIND`` names the file type (for example "zkattn-proof"), ``VERSION`` is the version
    ``write`` produces. ``read(r, version)`` reads what ``write`` wrote (for any version the
    caller of :func:`from_bytes` accepts) and raises MalformedProofError (``r.error(...)``) for
    anything semantically invalid.
    """

    KIND: ClassVar[str]
    VERSION: ClassVar[int]

    def write(self, w: Writer) -> None:
        """Write the object's fields to ``w``."""
        ...

    @classmethod
    def read(cls, r: Reader, version: int) -> Self:
        """Read an object written by ``write`` in format ``version``."""
        ...


S = TypeVar("S", bound=Serializable)


def to_bytes(obj: Serializable) -> bytes:
    """The canonical file of ``obj``: the envelope (``obj.KIND``, ``obj.VERSION``), then the
    body ``obj.write`` writes."""
    w = Writer()
    obj.write(w)
    return encode_envelope(obj.KIND, obj.VERSION, w.getvalue())


def from_bytes(cls: type[S], data: bytes, versions: Collection[int] | None = None) -> S:
    """Decode a file written by :func:`to_bytes` into a ``cls``.

    Accepts the object versions in ``versions`` (default: only ``cls.VERSION``); raises
    MalformedProofError for anything else, including trailing bytes.
    """
    version, r = decode_envelope(data, cls.KIND, (cls.VERSION,) if versions is None else versions)
    obj = cls.read(r, version)
    r.finish()
    return obj
