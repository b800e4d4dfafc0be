"""Is a set of TFHE client specs secure? Checked with concrete's own security model.

A client builds its keys and encrypts with whatever parameters the client specs name: the LWE
dimensions of the secret keys, the noise variance of every fresh input encryption and of the
bootstrap and keyswitch keys (which are encryptions under those secret keys too). A server that
hands out weak parameters (a small dimension, too little noise, an input sent in the clear) can
decrypt what the client sends. So the client checks the specs before any key exists.

The security model is the one concrete-python uses to choose parameters: its security curves
(made with the lattice estimator; ``concretelang::security::SecurityCurve`` in concrete's
runtime library). For a binary secret key of dimension n (a GLWE key of dimension k and
polynomial size N counts as n = k N) and a 64-bit ciphertext modulus, a level of lambda bits
needs n >= the curve's minimal dimension and a noise variance of at least
``getVariance(n) = max(2^(2 (slope n + bias)), 2^(-2 (64 - 2)))``. Concrete computes exactly that
variance for every key and input it compiles (``fhe.Configuration(security_level=128)``, the
default), so honest specs meet it with equality, and the check is::

    every input of every circuit is an LWE ciphertext (never a plaintext)
    every secret key is binary, 64-bit, with the native modulus 2^64
    variance(input i)       >= getVariance(dimension of the key input i is encrypted under)
    variance(bootstrap key) >= getVariance(glwe_dimension * polynomial_size of its output key)
    variance(keyswitch key) >= getVariance(dimension of its output key)

The curve is read from concrete's runtime library itself (``getSecurityCurve`` and
``SecurityCurve::getVariance`` through ctypes); where that library does not export them, a copy
of concrete-python 2.11's 128-bit curve is used and the report says so (a test checks that the
copy equals the library's). The numbers checked are concrete's own parse of the specs
(``ClientSpecs.program_info``); the JSON is read only for what the bindings do not expose (key
types, moduli), after refusing duplicate keys, so that both readers see one document.
"""

from __future__ import annotations

import ctypes
import glob
import json
import math
import os
from dataclasses import dataclass, field

from .errors import FheInputError

__all__ = ["MIN_SECURITY_BITS", "InsecureParameters", "SecurityCurve", "security_curve",
           "SecurityReport", "check_client_specs"]

MIN_SECURITY_BITS = 128
LOG_Q = 64  # concrete's CPU ciphertext modulus: 2^64 ("native")
# concrete-python 2.11.0's curve (concretelang::security::curves), for when its library does
# not export the functions: bits -> (slope, bias, minimal LWE dimension)
_COPY_2_11 = {128: (-0.025696778711484593, 2.675931372549016, 450),
              132: (-0.024891456582633045, 2.65734593837534, 450)}


class InsecureParameters(FheInputError):
    """The client specs fall below the required security level, or cannot be checked."""


class _Curve(ctypes.Structure):  # concretelang::security::SecurityCurve
    _fields_ = [("bits", ctypes.c_int), ("slope", ctypes.c_double), ("bias", ctypes.c_double),
                ("minimal_lwe_dimension", ctypes.c_int), ("key_format", ctypes.c_int)]


_GET_CURVE = "_ZN12concretelang8security16getSecurityCurveEiNS0_9KeyFormatE"
_GET_VARIANCE = "_ZN12concretelang8security13SecurityCurve11getVarianceEiii"


@dataclass(frozen=True)
class SecurityCurve:
    """One of concrete's security curves: log2(sigma) >= slope * n + bias for n >= n_min."""

    bits: int
    slope: float
    bias: float
    minimal_lwe_dimension: int
    source: str
    _pointer: object = field(default=None, repr=False, compare=False)
    _variance_fn: object = field(default=None, repr=False, compare=False)

    def minimal_variance(self, dimension: int, log_q: int = LOG_Q) -> float:
        """The smallest secure encryption variance under a binary key of this dimension (NaN
        below the curve's minimal dimension), as concrete computes it."""
        if self._variance_fn is not None:
            return float(self._variance_fn(self._pointer, 1, int(dimension), int(log_q)))
        if dimension < self.minimal_lwe_dimension:
            return math.nan
        a = 2.0 ** (2 * (self.slope * dimension + self.bias))
        b = 2.0 ** (-2 * (log_q - 2))
        return a + b if self.bits == 132 else max(a, b)


def _runtime_library():
    import concrete.fhe  # noqa: F401 - loads the runtime library into the process

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(concrete.fhe.__file__))))
    libs = sorted(glob.glob(os.path.join(root, "concrete_python.libs",
                                         "libConcretelangRuntime*.so*")))
    return ctypes.CDLL(libs[0]) if libs else None


_CURVES: dict = {}


def security_curve(bits: int = MIN_SECURITY_BITS) -> SecurityCurve:
    """Concrete's security curve for ``bits`` (binary keys), from its runtime library."""
    if bits in _CURVES:
        return _CURVES[bits]
    curve = None
    try:
        lib = _runtime_library()
        get, var = getattr(lib, _GET_CURVE), getattr(lib, _GET_VARIANCE)
    except (OSError, AttributeError, TypeError, ImportError):
        lib = None
    if lib is not None:
        get.restype, get.argtypes = ctypes.POINTER(_Curve), [ctypes.c_int, ctypes.c_int]
        var.restype = ctypes.c_double
        var.argtypes = [ctypes.POINTER(_Curve), ctypes.c_int, ctypes.c_int, ctypes.c_int]
        ptr = get(int(bits), 0)  # KeyFormat::BINARY
        if not ptr:
            raise InsecureParameters(f"concrete has no security curve for {bits} bits")
        c = ptr.contents
        curve = SecurityCurve(c.bits, c.slope, c.bias, c.minimal_lwe_dimension,
                              "concrete's runtime library", ptr, var)
    elif bits in _COPY_2_11:
        curve = SecurityCurve(bits, *_COPY_2_11[bits], "a copy of concrete-python 2.11's curve")
    else:
        raise InsecureParameters(f"no security curve for {bits} bits")
    _CURVES[bits] = curve
    return curve


@dataclass(frozen=True)
class SecurityReport:
    """What was checked: one row per key or input, (what, dimension, variance, minimal)."""

    bits: int
    curve: SecurityCurve
    rows: tuple

    def summary(self) -> str:
        c = self.curve
        return (f"TFHE parameters meet {self.bits}-bit security by concrete's security model "
                f"(log2 sigma >= {c.slope:.5f} n + {c.bias:.3f}, n >= "
                f"{c.minimal_lwe_dimension}; from {c.source}): {len(self.rows)} keys and "
                f"inputs checked")


def _strict_json(raw: bytes):
    def pairs(items):
        d = {}
        for k, v in items:
            if k in d:
                raise ValueError(f"duplicate key {k!r}")
            d[k] = v
        return d

    def constant(name):
        raise ValueError(f"non-finite number {name}")

    return json.loads(raw.decode("utf-8"), object_pairs_hook=pairs, parse_constant=constant)


def _native(mod, what: str) -> None:
    if not (isinstance(mod, dict) and mod.get("modulus") == {"native": {}}):
        raise InsecureParameters(f"{what}: only the native ciphertext modulus 2^64 is accepted, "
                                 f"not {json.dumps(mod)[:80]}")


def check_client_specs(raw: bytes, specs, bits: int = MIN_SECURITY_BITS) -> SecurityReport:
    """Check concrete client specs (``raw``: their JSON, ``specs``: ``fhe.ClientSpecs`` of the
    same bytes) against ``bits`` of security; InsecureParameters names the first failure."""
    curve = security_curve(bits)
    try:
        doc = _strict_json(raw)
        keyset = doc["keyset"]
        sk_json = {int(k["id"]): k["params"] for k in keyset["lweSecretKeys"]}
        bsk_json = [k["params"] for k in keyset["lweBootstrapKeys"]]
        ksk_json = [k["params"] for k in keyset["lweKeyswitchKeys"]]
        pks_json = keyset.get("packingKeyswitchKeys", [])
        circuits_json = {c["name"]: c for c in doc["circuits"]}
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as e:
        raise InsecureParameters(f"client specs unreadable for the security check: {e}") from None
    info = specs.program_info
    ks = info.get_keyset_info()
    dims = [int(k.dimension()) for k in ks.secret_keys()]
    if sorted(sk_json) != list(range(len(dims))):
        raise InsecureParameters("client specs: secret key ids are not 0..n-1")
    rows = []

    def need(what: str, key_id: int, variance: float) -> None:
        if not 0 <= key_id < len(dims):
            raise InsecureParameters(f"{what}: names secret key {key_id}, which does not exist")
        n = dims[key_id]
        minimal = curve.minimal_variance(n)
        if math.isnan(minimal):
            raise InsecureParameters(
                f"{what}: secret key {key_id} has dimension {n}, below {curve.minimal_lwe_dimension}"
                f", the smallest that concrete's security model accepts at {bits} bits")
        if not (variance >= minimal * (1 - 1e-9)):  # also refuses a NaN variance
            short = math.log2(minimal / variance) / 2 if variance > 0 else math.inf
            raise InsecureParameters(
                f"{what}: noise variance {variance:.3g} under a key of dimension {n} is below "
                f"{minimal:.3g}, the minimum for {bits}-bit security by concrete's security "
                f"model ({short:.1f} bits of noise standard deviation short)")
        rows.append((what, n, variance, minimal))

    for i, params in sk_json.items():
        if params.get("keyType") != "binary" or params.get("integerPrecision") != 64:
            raise InsecureParameters(f"secret key {i}: only binary 64-bit keys are accepted")
        if int(params.get("lweDimension", -1)) != dims[i]:
            raise InsecureParameters(f"secret key {i}: the specs disagree on its dimension")
    if pks_json or ks.packing_keyswitch_keys():
        raise InsecureParameters("client specs with packing keyswitch keys are not accepted "
                                 "(this project's circuits have none)")
    if len(bsk_json) != len(ks.bootstrap_keys()) or len(ksk_json) != len(ks.keyswitch_keys()):
        raise InsecureParameters("client specs disagree on their number of keys")
    for i, (bk, js) in enumerate(zip(ks.bootstrap_keys(), bsk_json)):
        out = int(bk.output_secret_key_id())
        _native(js.get("modulus"), f"bootstrap key {i}")
        if js.get("keyType") != "binary":
            raise InsecureParameters(f"bootstrap key {i}: only binary keys are accepted")
        if 0 <= out < len(dims) and int(bk.glwe_dimension()) * int(bk.polynomial_size()) != dims[out]:
            raise InsecureParameters(f"bootstrap key {i}: its GLWE dimension times polynomial "
                                     f"size is not the dimension of its output key")
        need(f"bootstrap key {i}", out, float(bk.variance()))
    for i, (kk, js) in enumerate(zip(ks.keyswitch_keys(), ksk_json)):
        _native(js.get("modulus"), f"keyswitch key {i}")
        if js.get("keyType") != "binary":
            raise InsecureParameters(f"keyswitch key {i}: only binary keys are accepted")
        need(f"keyswitch key {i}", int(kk.output_secret_key_id()), float(kk.variance()))
    names = list(info.function_list())
    if sorted(names) != sorted(circuits_json):
        raise InsecureParameters("client specs disagree on their circuits")
    for name in names:
        gates = info.get_circuit(name).get_inputs()
        gates_json = circuits_json[name]["inputs"]
        if len(gates) != len(gates_json):
            raise InsecureParameters(f"circuit {name}: the specs disagree on its inputs")
        for pos, (gate, js) in enumerate(zip(gates, gates_json)):
            what = f"input {pos} of circuit {name!r}"
            lwe = js.get("typeInfo", {}).get("lweCiphertext")
            if gate.get_type_info().is_plaintext() or not isinstance(lwe, dict):
                raise InsecureParameters(f"{what} is not encrypted: it would be sent in the "
                                         "clear")
            enc = lwe.get("encryption", {})
            _native(enc.get("modulus"), what)
            key_id = int(info.input_keyid_at(pos, name))
            if int(enc.get("keyId", -1)) != key_id or (
                    0 <= key_id < len(dims) and int(enc.get("lweDimension", -1)) != dims[key_id]):
                raise InsecureParameters(f"{what}: the specs disagree on its key")
            need(what, key_id, float(info.input_variance_at(pos, name)))
    if not rows:
        raise InsecureParameters("client specs with no key or input to check")
    return SecurityReport(bits, curve, tuple(rows))
