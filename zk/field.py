"""The BN254 scalar field Fr (and any other 254-bit prime field) over the numba kernels.

A field vector is a C-contiguous ``(n, 4)`` uint64 array in Montgomery form (see
:mod:`gpu.field` for the layout). A scalar handed to a kernel is a tuple of four uint64 limbs in
the same form; :meth:`PrimeField.scalar` makes one from an int. Python ints are the exchange
format with the verifier and with tests: ``F.from_ints`` / ``F.to_ints`` convert, and signed
integer tensors embed as x mod p with ``F.from_signed``.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence

import numpy as np
from py_ecc.optimized_bn128 import curve_order, field_modulus

from gpu import field as K

_MASK = (1 << 64) - 1
# from_signed embeds inputs of at least this many entries spanning fewer than n / 4 values
# through a table of their range (one Montgomery product per distinct value, then row copies)
_GATHER_MIN = 1 << 12


class PrimeField:
    """Arithmetic on vectors of one prime field, executed by the numba kernels."""

    def __init__(self, modulus: int, name: str) -> None:
        self.modulus = modulus
        self.name = name
        self.desc = K.descriptor(modulus)
        self.bits = modulus.bit_length()
        self._r = pow(2, 256, modulus)
        self._r_inv = pow(self._r, -1, modulus)

    def __repr__(self) -> str:
        return f"PrimeField({self.name})"

    # -------------------------------------------------------- conversions

    def scalar(self, x: int) -> tuple:
        """Kernel scalar (Montgomery limbs) of the element x mod p."""
        m = (x % self.modulus) * self._r % self.modulus
        return tuple(np.uint64((m >> (64 * k)) & _MASK) for k in range(4))

    def scalar_to_int(self, s: Sequence) -> int:
        """The int held by a kernel scalar."""
        m = sum(int(s[k]) << (64 * k) for k in range(4))
        return m * self._r_inv % self.modulus

    def from_ints(self, xs: Iterable[int]) -> np.ndarray:
        """Vector holding the given ints, each reduced mod p."""
        vals = [int(x) % self.modulus for x in xs]
        limbs = np.array(
            [[(v >> (64 * k)) & _MASK for k in range(4)] for v in vals], dtype=np.uint64
        ).reshape(len(vals), 4)
        out = np.empty_like(limbs)
        K.vto_mont(self.desc, limbs, out)
        return out

    def canonical_limbs(self, a: np.ndarray) -> np.ndarray:
        """Canonical (non-Montgomery) little-endian limbs of each element."""
        out = np.empty_like(a)
        K.vfrom_mont(self.desc, a, out)
        return out

    def to_bytes(self, a: np.ndarray) -> np.ndarray:
        """Canonical 32-byte little-endian encodings, as an (n, 32) uint8 array."""
        return self.canonical_limbs(a).astype("<u8", copy=False).view(np.uint8).reshape(-1, 32)

    def from_bytes(self, b: np.ndarray) -> np.ndarray:
        """Vector from an (n, 32) uint8 array of canonical encodings; ValueError if any >= p."""
        limbs = np.ascontiguousarray(b, dtype=np.uint8).view("<u8").astype(np.uint64)
        limbs = limbs.reshape(-1, 4)
        ok = np.empty(limbs.shape[0], dtype=np.uint64)
        K.vbelow_modulus(self.desc, limbs, ok)
        if not ok.all():
            raise ValueError(f"element {int(np.argmin(ok))} is not below the {self.name} modulus")
        out = np.empty_like(limbs)
        K.vto_mont(self.desc, limbs, out)
        return out

    def to_ints(self, a: np.ndarray) -> list[int]:
        """The ints held by a vector."""
        c = self.canonical_limbs(a)
        return [
            int(r[0]) | (int(r[1]) << 64) | (int(r[2]) << 128) | (int(r[3]) << 192) for r in c
        ]

    def from_signed(self, x: np.ndarray) -> np.ndarray:
        """Embed a signed integer array (any shape, flattened in C order) as x mod p."""
        flat = np.ascontiguousarray(np.asarray(x).reshape(-1), dtype=np.int64)
        out = np.empty((flat.shape[0], 4), dtype=np.uint64)
        n = flat.shape[0]
        if n >= _GATHER_MIN:
            lo, hi = int(flat.min()), int(flat.max())
            if hi - lo < n // 4:
                # quantized tensors span few values: embed each once, then copy rows
                table = np.empty((hi - lo + 1, 4), dtype=np.uint64)
                K.vfrom_signed(self.desc, np.arange(lo, hi + 1, dtype=np.int64), table)
                K.vgather_rows(table, flat - np.int64(lo), out)
                return out
        K.vfrom_signed(self.desc, flat, out)
        return out

    def to_signed(self, a: np.ndarray) -> np.ndarray:
        """Inverse of from_signed for elements in [-2^63, 2^63); ValueError otherwise."""
        vals = self.to_ints(a)
        half = self.modulus // 2
        out = [v if v <= half else v - self.modulus for v in vals]
        if any(not (-(2**63) <= v < 2**63) for v in out):
            raise ValueError("element does not hold a signed 64-bit integer")
        return np.array(out, dtype=np.int64)

    # -------------------------------------------------------- constructors

    def zeros(self, n: int) -> np.ndarray:
        return np.zeros((n, 4), dtype=np.uint64)

    def ones(self, n: int) -> np.ndarray:
        return np.tile(np.array(self.scalar(1), dtype=np.uint64), (n, 1))

    def random(self, n: int, rng: np.random.Generator | None = None) -> np.ndarray:
        """n uniform elements by rejection sampling of 254-bit strings.

        With rng=None the bits come from the operating system's CSPRNG (use this for blinding
        factors); a numpy Generator gives reproducible vectors for tests and benchmarks.
        Uniform canonical values are also uniform in Montgomery form, so no conversion is needed.
        """
        top = (1 << (self.bits - 192)) - 1
        out = np.empty((n, 4), dtype=np.uint64)
        filled = 0
        while filled < n:
            want = (n - filled) * 3 // 2 + 8
            if rng is None:
                cand = np.frombuffer(secrets.token_bytes(32 * want), dtype="<u8").astype(np.uint64)
            else:
                cand = rng.integers(0, 2**64, size=4 * want, dtype=np.uint64)
            cand = cand.reshape(want, 4).copy()
            cand[:, 3] &= np.uint64(top)
            ok = np.empty(want, dtype=np.uint64)
            K.vbelow_modulus(self.desc, cand, ok)
            good = cand[ok.astype(bool)][: n - filled]
            out[filled : filled + good.shape[0]] = good
            filled += good.shape[0]
        return out

    # -------------------------------------------------------- arithmetic

    def add(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        out = np.empty_like(a)
        K.vadd(self.desc, a, b, out)
        return out

    def sub(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        out = np.empty_like(a)
        K.vsub(self.desc, a, b, out)
        return out

    def mul(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        out = np.empty_like(a)
        K.vmul(self.desc, a, b, out)
        return out

    def neg(self, a: np.ndarray) -> np.ndarray:
        out = np.empty_like(a)
        K.vneg(self.desc, a, out)
        return out

    def scale(self, a: np.ndarray, s: int) -> np.ndarray:
        """s * a for an int s."""
        out = np.empty_like(a)
        K.vscale(self.desc, a, self.scalar(s), out)
        return out

    def add_scalar(self, a: np.ndarray, s: int) -> np.ndarray:
        """a + s entrywise for an int s."""
        out = np.empty_like(a)
        K.vadd_scalar(self.desc, a, self.scalar(s), out)
        return out

    def axpy(self, s: int, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """s * x + y."""
        out = np.empty_like(x)
        K.vaxpy(self.desc, self.scalar(s), x, y, out)
        return out

    def sum(self, a: np.ndarray) -> int:
        return self.scalar_to_int(K.vsum(self.desc, a))

    def inner(self, a: np.ndarray, b: np.ndarray) -> int:
        return self.scalar_to_int(K.vinner(self.desc, a, b))

    def batch_inverse(self, a: np.ndarray) -> np.ndarray:
        """Entrywise inverse; ZeroDivisionError if any entry is zero."""
        out = np.empty_like(a)
        zeros = K.vbatch_inv(self.desc, a, out)
        if zeros:
            raise ZeroDivisionError(f"{zeros} zero entries in a batch inversion")
        return out


Fr = PrimeField(curve_order, "BN254 Fr")
"""The BN254 scalar field: every witness, claim and challenge lives here."""

Fq = PrimeField(field_modulus, "BN254 Fq")
"""The BN254 base field: coordinates of G1 points."""
