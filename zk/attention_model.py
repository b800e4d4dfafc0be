"""The model commitment of a quantized attention head: what an owner publishes once.

``commit(head)`` returns a private :class:`ProvingModel` (the integer head and the commitments'
openings) and a public :class:`ModelCommitment`: hiding Hyrax commitments to the weights (one
stack [Wq, Wk, Wv], each d_model x d_head zero-padded to powers of two) and to the biases
([bq, bk, bv]), and, in the clear, everything else the integer reference needs (configuration,
shifts, tables, static bounds) plus the float scales a client needs to (de)quantize. For
Llama-style heads it also holds, in the clear, the integer RoPE tables COS and SIN (L x d_head/2,
scale 2^-rope_bits; ``config.rope_theta`` and ``config.rope_bits`` say how they were made, the
tables themselves are the definition) and the SmoothQuant input smoothing vector (d_model
floats, applied by the client before quantizing). Per-channel weight scales need nothing public:
they are integer multipliers inside the committed weights. ``origin`` names where the head comes
from (model, layer, query head, key/value head of grouped-query attention). The commitment's
digest (SHA3-256 of its canonical file) names the model in every proof.

The FHE tolerance (version 3): ``approximate`` names the roundings an FHE circuit of this head
evaluates with approximate rounding (empty: every rounding exact, the circuit bit-exact with
the reference), and ``delta`` (L x d_head integers) is the published bound on |decrypted FHE
output - proven output| that a client's canary check allows (``zk.tolerance``: interval
arithmetic over public data only; zero in exact mode). The reader recomputes delta from the
commitment's public data and refuses a file whose stored delta differs.

Version 3 (the FHE tolerance); versions 1 and 2 are not read.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import ClassVar

import numpy as np

from zk.attention_ref import HeadConfig, QuantizedHead, Table
from zk.commit import hyrax
from zk.encoding import Reader, Writer, to_bytes
from zk.field import Fr
from zk.head import stack
from zk.multilinear import next_pow2, num_vars
from zk.tolerance import check_sites, tolerance

WEIGHTS = ("Wq", "Wk", "Wv")
BIASES = ("bq", "bk", "bv")
TABLE_NAMES = ("q", "k", "v", "relu", "clipd", "exp", "log", "exp2", "out")
SHIFT_NAMES = ("q", "k", "v", "score", "out")
MAX_DIM = 1 << 14
MAX_TABLE = 1 << 22
MAX_ORIGIN = 16  # entries of the origin map


def _canonical_json(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)


@dataclass(frozen=True)
class Dims:
    """Padded sizes of a head: rows L, model width D, head width H, all powers of two."""

    L: int
    D: int
    H: int

    @classmethod
    def of(cls, config: HeadConfig) -> "Dims":
        return cls(next_pow2(config.seq_len), next_pow2(config.d_model), next_pow2(config.d_head))

    @property
    def l(self) -> int:
        return num_vars(self.L)

    @property
    def d(self) -> int:
        return num_vars(self.D)

    @property
    def h(self) -> int:
        return num_vars(self.H)


def weight_layout(dims: Dims) -> stack.StackLayout:
    return stack.StackLayout(WEIGHTS, dims.d + dims.h)


def bias_layout(dims: Dims) -> stack.StackLayout:
    return stack.StackLayout(BIASES, dims.h)


@dataclass(frozen=True, eq=False)
class ModelCommitment:
    """The public commitment to a head (see the module docstring)."""

    KIND: ClassVar[str] = "zkattn-model-commitment"
    VERSION: ClassVar[int] = 3

    config: HeadConfig
    shifts: dict
    tables: dict
    bounds: dict
    scales: dict
    weights: hyrax.HyraxCommitment
    biases: hyrax.HyraxCommitment
    rope_cos: np.ndarray | None = None  # (L, d_head / 2) int64, RoPE heads only
    rope_sin: np.ndarray | None = None
    smooth: np.ndarray | None = None  # (d_model,) float64 input smoothing, or None
    origin: dict = field(default_factory=dict)  # str -> str | int
    approximate: tuple = ()  # roundings an FHE circuit evaluates approximately (sorted names)
    delta: np.ndarray | None = None  # (L, d_head) int64 tolerance; None: computed (zeros if exact)

    def __post_init__(self) -> None:
        sites = check_sites(self.approximate)
        object.__setattr__(self, "approximate", sites)
        expect = tolerance(self, sites)
        if self.delta is None:
            object.__setattr__(self, "delta", expect)
        elif not np.array_equal(np.asarray(self.delta), expect):
            raise ValueError("delta is not the tolerance of this head's approximate roundings")

    @property
    def dims(self) -> Dims:
        return Dims.of(self.config)

    @cached_property
    def digest(self) -> bytes:
        """SHA3-256 of the canonical file: the model's name in every proof."""
        return hashlib.sha3_256(to_bytes(self)).digest()

    def _header(self) -> str:
        return _canonical_json({
            "config": self.config.to_dict(), "shifts": self.shifts,
            "bounds": {k: list(v) for k, v in self.bounds.items()}, "scales": self.scales,
            "smooth": None if self.smooth is None else [float(v) for v in self.smooth],
            "origin": self.origin, "approximate": list(self.approximate),
        })

    def write(self, w: Writer) -> None:
        w.text(self._header())
        with w.section("tables"):
            for name in TABLE_NAMES:
                t = self.tables[name]
                w.u64(t.offset % (1 << 64))
                w.raw_bytes(np.asarray(t.values, dtype="<i8").tobytes())
        if self.config.rope:
            with w.section("rope"):
                w.raw_bytes(np.asarray(self.rope_cos, dtype="<i8").tobytes())
                w.raw_bytes(np.asarray(self.rope_sin, dtype="<i8").tobytes())
        with w.section("tolerance"):
            w.raw_bytes(np.asarray(self.delta, dtype="<i8").tobytes())
        self.weights.write(w)
        self.biases.write(w)

    @classmethod
    def read(cls, r: Reader, version: int) -> "ModelCommitment":
        text = r.text(1 << 20)
        try:
            head = json.loads(text)
            if _canonical_json(head) != text:
                raise ValueError("not in canonical form")
            config = HeadConfig(**head["config"])
            shifts = {k: int(head["shifts"][k]) for k in SHIFT_NAMES}
            bounds = {str(k): (int(v[0]), int(v[1])) for k, v in head["bounds"].items()}
            scales = {str(k): float(v) for k, v in head["scales"].items()}
            if set(head["shifts"]) != set(SHIFT_NAMES):
                raise ValueError("unexpected shifts")
            if set(head) != {"config", "shifts", "bounds", "scales", "smooth", "origin",
                             "approximate"}:
                raise ValueError("unexpected fields")
            smooth = _read_smooth(head["smooth"], config.d_model)
            origin = _read_origin(head["origin"])
            approximate = head["approximate"]
            if (not isinstance(approximate, list)
                    or any(not isinstance(a, str) for a in approximate)
                    or list(check_sites(approximate)) != approximate):
                raise ValueError("approximate must be a sorted list of distinct rounding names")
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise r.error(f"model header: {e}") from e
        if max(config.d_model, config.d_head, config.seq_len) > MAX_DIM:
            raise r.error("model dimensions out of range")
        if any(not 0 <= k <= 40 for k in shifts.values()):
            raise r.error("shift out of range")
        tables = {}
        with r.section("tables"):
            for name in TABLE_NAMES:
                off = r.u64()
                off = off - (1 << 64) if off >= 1 << 63 else off
                raw = r.raw_bytes(8 * MAX_TABLE)
                if not raw or len(raw) % 8:
                    raise r.error(f"table {name}: bad length")
                tables[name] = Table(name, off, np.frombuffer(raw, dtype="<i8").astype(np.int64))
        rope_cos = rope_sin = None
        if config.rope:
            shape = (config.seq_len, config.d_head // 2)
            with r.section("rope"):
                rope_cos, rope_sin = (_read_rope(r, shape, config.rope_bits) for _ in range(2))
        with r.section("tolerance"):
            n = config.seq_len * config.d_head
            raw = r.raw_bytes(8 * n)
            if len(raw) != 8 * n:
                raise r.error(f"tolerance: expected {n} int64 values")
            delta = np.frombuffer(raw, dtype="<i8").astype(np.int64).reshape(
                config.seq_len, config.d_head)
        dims = Dims.of(config)
        weights = hyrax.HyraxCommitment.read(r, 1)
        biases = hyrax.HyraxCommitment.read(r, 1)
        if weights.num_vars != weight_layout(dims).num_vars:
            raise r.error("weight commitment does not match the dimensions")
        if biases.num_vars != bias_layout(dims).num_vars:
            raise r.error("bias commitment does not match the dimensions")
        try:
            return cls(config, shifts, tables, bounds, scales, weights, biases, rope_cos,
                       rope_sin, smooth, origin, tuple(approximate), delta)
        except (ValueError, KeyError, IndexError) as e:
            raise r.error(f"model commitment: {e}") from e


def _read_rope(r: Reader, shape: tuple[int, int], bits: int) -> np.ndarray:
    n = shape[0] * shape[1]
    raw = r.raw_bytes(8 * n)
    if len(raw) != 8 * n:
        raise r.error(f"RoPE table: expected {shape} int64 values")
    t = np.frombuffer(raw, dtype="<i8").astype(np.int64).reshape(shape)
    if np.abs(t).max() > (1 << bits):
        raise r.error("RoPE table entry outside [-2^rope_bits, 2^rope_bits]")
    return t


def _read_smooth(v, d_model: int) -> np.ndarray | None:
    if v is None:
        return None
    if not isinstance(v, list) or len(v) != d_model:
        raise ValueError(f"smooth must be a list of {d_model} numbers")
    if any(isinstance(a, bool) or not isinstance(a, (int, float)) for a in v):
        raise ValueError("smooth must hold numbers")
    a = np.asarray(v, dtype=np.float64)
    if not (np.all(np.isfinite(a)) and np.all(a > 0)):
        raise ValueError("smooth entries must be finite and positive")
    return a


def _read_origin(v) -> dict:
    if not isinstance(v, dict) or len(v) > MAX_ORIGIN:
        raise ValueError("origin must be a small map")
    for k, a in v.items():
        if not isinstance(k, str) or len(k) > 64:
            raise ValueError("origin keys are short strings")
        if isinstance(a, bool) or not isinstance(a, (str, int)) or (isinstance(a, str) and
                                                                      len(a) > 256):
            raise ValueError("origin values are integers or short strings")
    return dict(v)


@dataclass(eq=False)
class ProvingModel:
    """The owner's side: the integer head and the openings of its commitments. Its file holds
    the weights and the blinds: keep it private."""

    KIND: ClassVar[str] = "zkattn-proving-model"
    VERSION: ClassVar[int] = 3

    head: QuantizedHead
    commitment: ModelCommitment
    weights: hyrax.HyraxWitness
    biases: hyrax.HyraxWitness

    def write(self, w: Writer) -> None:
        with w.section("commitment"):
            self.commitment.write(w)
        for name in WEIGHTS + BIASES:
            w.raw_bytes(np.asarray(getattr(self.head, name), dtype="<i8").tobytes())
        w.fields(Fr.to_bytes(self.weights.blinds))
        w.fields(Fr.to_bytes(self.biases.blinds))

    @classmethod
    def read(cls, r: Reader, version: int) -> "ProvingModel":
        with r.section("commitment"):
            mc = ModelCommitment.read(r, version)
        cfg = mc.config
        arrays = {}
        for name in WEIGHTS + BIASES:
            shape = (cfg.d_model, cfg.d_head) if name in WEIGHTS else (cfg.d_head,)
            raw = r.raw_bytes(8 * int(np.prod(shape)))
            if len(raw) != 8 * int(np.prod(shape)):
                raise r.error(f"{name}: expected {shape} int64 values")
            arrays[name] = np.frombuffer(raw, dtype="<i8").astype(np.int64).reshape(shape)
        wl, bl = weight_layout(mc.dims), bias_layout(mc.dims)
        wb = Fr.from_bytes(r.fields_array(max_len=1 << 24, exact_len=1 << (wl.num_vars - mc.weights.log_cols)))
        bb = Fr.from_bytes(r.fields_array(max_len=1 << 24, exact_len=1 << (bl.num_vars - mc.biases.log_cols)))
        head = QuantizedHead(cfg, arrays["Wq"], arrays["Wk"], arrays["Wv"], arrays["bq"],
                             arrays["bk"], arrays["bv"], dict(mc.shifts), dict(mc.tables),
                             dict(mc.bounds), dict(mc.scales), mc.rope_cos, mc.rope_sin,
                             mc.smooth, mc.approximate)
        padded = _padded_weights(head, mc.dims)
        ww = _witness(wl, padded, mc.weights.log_cols, wb)
        bw = _witness(bl, padded, mc.biases.log_cols, bb)
        if _recommit(ww) != mc.weights.rows or _recommit(bw) != mc.biases.rows:
            raise r.error("the weights and blinds do not open the stored commitment")
        return cls(head, mc, ww, bw)


def _witness(layout: stack.StackLayout, padded: dict, log_cols: int, blinds: np.ndarray
             ) -> hyrax.HyraxWitness:
    return hyrax.HyraxWitness(layout.num_vars, log_cols, Fr.from_signed(layout.stacked(padded)),
                              blinds)


def _recommit(wit: hyrax.HyraxWitness) -> tuple[bytes, ...]:
    com, _ = hyrax.commit_field(wit.matrix, log_cols=wit.log_cols, blinds=wit.blinds)
    return com.rows


def _padded_weights(head: QuantizedHead, dims: Dims) -> dict[str, np.ndarray]:
    out = {}
    for name in WEIGHTS:
        w = np.zeros((dims.D, dims.H), dtype=np.int64)
        m = getattr(head, name)
        w[: m.shape[0], : m.shape[1]] = m
        out[name] = w
    for name in BIASES:
        b = np.zeros(dims.H, dtype=np.int64)
        v = np.asarray(getattr(head, name)).reshape(-1)
        b[: v.size] = v
        out[name] = b
    return out


def commit(head: QuantizedHead, rng: np.random.Generator | None = None,
           origin: dict | None = None) -> tuple[ProvingModel, ModelCommitment]:
    """Commit to a quantized head. Blinds come from the OS CSPRNG unless ``rng`` is given.
    origin: public names of the head's source (e.g. {"model": ..., "layer": 0, "head": 4,
    "kv_head": 1}): small str -> str | int map."""
    origin = _read_origin(dict(origin or {}))
    if head.config.rope and (head.rope_cos is None or head.rope_sin is None):
        raise ValueError("a RoPE head needs its COS and SIN tables")
    dims = Dims.of(head.config)
    padded = _padded_weights(head, dims)
    wl, bl = weight_layout(dims), bias_layout(dims)
    wcom, wwit = stack.commit(wl, padded, log_cols=(wl.num_vars + 1) // 2, rng=rng)
    bcom, bwit = stack.commit(bl, padded, rng=rng)
    public = ModelCommitment(
        head.config, {k: int(head.shifts[k]) for k in SHIFT_NAMES},
        {k: head.tables[k] for k in TABLE_NAMES},
        {k: (int(v[0]), int(v[1])) for k, v in head.bounds.items()},
        {k: float(v) for k, v in head.scales.items()}, wcom, bcom,
        None if head.rope_cos is None else np.asarray(head.rope_cos, dtype=np.int64),
        None if head.rope_sin is None else np.asarray(head.rope_sin, dtype=np.int64),
        None if head.smooth is None else np.asarray(head.smooth, dtype=np.float64), origin,
        check_sites(head.approximate))
    return ProvingModel(head, public, wwit, bwit), public
