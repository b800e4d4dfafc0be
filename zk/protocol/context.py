"""Commit-and-prove: one protocol description that the prover and the verifier both run.

A protocol is a plain Python function of a :class:`Context`. The prover runs it with a
``Context.prover(...)``, the verifier with a ``Context.verifier(...)`` over the proof's
:class:`Stream`; every step (commit, challenge, sumcheck, product, opening) is one call that does
the prover's or the verifier's half, so the two sides cannot drift apart, and the order of the
stream is the order of the protocol.

Committed scalars
-----------------
Every hidden value travels as a :class:`Com`, a Pedersen commitment ``v U + r H`` (U, H: the
project's generators, :data:`zk.commit.pedersen.DEFAULT_LABEL`). The prover's Com holds the
opening (v, r); the verifier's holds a :class:`Sym`, a sparse linear combination of points it
knows (U, H, the proof's points, commitment rows, generator vectors). Linear maps with public
coefficients are free on both sides (``a + b``, ``3 * a``, ``a - 5``); a public value enters as
a Com with zero blind that the verifier computes itself (``ctx.public(v)``).

Deferred checks (all batched, each sound by a random linear combination)
-----------------------------------------------------------------------
* Sumcheck round relations (:meth:`Context.relate`) are linear in committed round values; at
  :meth:`finish` they are combined with powers of a challenge and proven with ONE logarithmic
  dot-product proof over the committed round values (Hyrax, "proof of sumcheck").
* Equalities (:meth:`Context.equal`): a random combination of all differences must be a multiple
  of H; ONE Schnorr proof of its H-discrete log shows it.
* The verifier's group equations (proofs of product, dot products, the Schnorr proof) are
  weighted by fresh OS randomness and checked by ONE multi-scalar multiplication.

Randomness: every blind and nonce is drawn by :meth:`Context.random` (the OS CSPRNG, 64 bytes
reduced mod r) and never derived from the transcript; a seeded numpy Generator may be passed
for tests and benchmarks only.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Union

import numba as nb
import numpy as np

from gpu import msm as M
from gpu import small_msm as S
from zk import curve as ZC
from zk.commit.generators import generators
from zk.commit.pedersen import DEFAULT_LABEL, PedersenKey, commit_scalars, commit_slices
from zk.encoding import Reader, Writer
from zk.errors import MalformedProofError, ProverError, VerificationError
from zk.field import Fr
from zk.multilinear import next_pow2
from zk.transcript import Transcript

__all__ = [
    "P", "refuse", "Sym", "Com", "VecCom", "Stream", "Context", "random_scalars",
    "SUMCHECK_GENS",
]

P = Fr.modulus
U_ID, H_ID = 0, 1
SUMCHECK_GENS = b"/sumcheck"
"""Suffix of the generator set that commits sumcheck round values (disjoint slots per round)."""

MAX_STREAM = 1 << 22
"""Most points (and most scalars) one proof stream may hold."""

L_COMMIT = b"ctx/commit"
L_ROUND = b"ctx/round"
L_SQUASH = b"ctx/squash"
L_EQUAL = b"ctx/equal"
L_EQUAL_A = b"ctx/equal/A"
L_EQUAL_E = b"ctx/equal/e"

Rng = Union[np.random.Generator, None]


def refuse(what: str) -> None:
    """The prover's answer to a false statement: ProverError naming it. (Soundness tests replace
    this hook to build a cheating prover that carries on and emits a proof anyway.)"""
    raise ProverError(f"false statement: {what}")


def random_scalars(n: int, rng: Rng = None) -> list[int]:
    """n uniform elements of Fr: 64 bytes of the OS CSPRNG reduced mod r each (statistical
    distance about 2^-258), or a seeded numpy Generator's draws (tests and benchmarks only)."""
    if rng is None:
        return [int.from_bytes(secrets.token_bytes(64), "little") % P for _ in range(n)]
    return Fr.to_ints(Fr.random(n, rng)) if n else []


# ---------------------------------------------------------------- symbolic points


class Sym:
    """sum_i c_i P_i over registered point ids (the verifier's view of a group element)."""

    __slots__ = ("t",)

    def __init__(self, terms: dict[int, int] | None = None) -> None:
        self.t = terms if terms is not None else {}

    @classmethod
    def point(cls, pid: int, coef: int = 1) -> "Sym":
        return cls({pid: coef % P})

    @classmethod
    def combo(cls, ids: Sequence[int], coefs: Sequence[int]) -> "Sym":
        t: dict[int, int] = {}
        for i, c in zip(ids, coefs):
            t[i] = (t.get(i, 0) + c) % P
        return cls(t)

    def __add__(self, o: "Sym") -> "Sym":
        t = dict(self.t)
        for k, v in o.t.items():
            t[k] = (t.get(k, 0) + v) % P
        return Sym(t)

    def __sub__(self, o: "Sym") -> "Sym":
        t = dict(self.t)
        for k, v in o.t.items():
            t[k] = (t.get(k, 0) - v) % P
        return Sym(t)

    def __neg__(self) -> "Sym":
        return Sym({k: -v % P for k, v in self.t.items()})

    def __mul__(self, c: int) -> "Sym":
        c %= P
        return Sym({k: v * c % P for k, v in self.t.items()})

    __rmul__ = __mul__


# ---------------------------------------------------------------- committed scalars


class Com:
    """A commitment v U + r H to one element of Fr (see the module docstring).

    Prover: ``v`` and ``r`` are ints, ``s`` is None. Verifier: ``s`` is a :class:`Sym`, ``v`` and
    ``r`` are None. Ints in arithmetic are public values (commitments with zero blind)."""

    __slots__ = ("v", "r", "s")

    def __init__(self, v: int | None = None, r: int | None = None, s: Sym | None = None) -> None:
        self.v, self.r, self.s = v, r, s

    @property
    def proving(self) -> bool:
        return self.s is None

    def _lift(self, o: "Com | int") -> "Com":
        if isinstance(o, Com):
            return o
        o = int(o) % P
        return Com(o, 0) if self.s is None else Com(s=Sym.point(U_ID, o))

    def __add__(self, o: "Com | int") -> "Com":
        o = self._lift(o)
        if self.s is None:
            return Com((self.v + o.v) % P, (self.r + o.r) % P)
        return Com(s=self.s + o.s)

    __radd__ = __add__

    def __sub__(self, o: "Com | int") -> "Com":
        o = self._lift(o)
        if self.s is None:
            return Com((self.v - o.v) % P, (self.r - o.r) % P)
        return Com(s=self.s - o.s)

    def __rsub__(self, o: "Com | int") -> "Com":
        return self._lift(o) - self

    def __neg__(self) -> "Com":
        return Com(-self.v % P, -self.r % P) if self.s is None else Com(s=-self.s)

    def __mul__(self, c: int) -> "Com":
        if isinstance(c, Com):
            raise TypeError("a product of two commitments needs a proof: use Context.product")
        c = int(c) % P
        if self.s is None:
            return Com(self.v * c % P, self.r * c % P)
        return Com(s=self.s * c)

    __rmul__ = __mul__

    def __repr__(self) -> str:
        return "Com(prover)" if self.s is None else f"Com({len(self.s.t)} terms)"


def com_sum(coms: Sequence[Com], coefs: Sequence[int] | None = None) -> Com:
    """sum_k coefs[k] coms[k] (coefs default 1) in one pass."""
    if not coms:
        raise ValueError("an empty sum of commitments has no role")
    coefs = [1] * len(coms) if coefs is None else [int(c) % P for c in coefs]
    if coms[0].s is None:
        return Com(sum(c * k.v for c, k in zip(coefs, coms)) % P,
                   sum(c * k.r for c, k in zip(coefs, coms)) % P)
    t: dict[int, int] = {}
    for c, k in zip(coefs, coms):
        for pid, v in k.s.t.items():
            t[pid] = (t.get(pid, 0) + c * v) % P
    return Com(s=Sym(t))


@dataclass
class VecCom:
    """A committed vector <w, G> + r H: the prover's (w as an Fr vector, r), the verifier's Sym."""

    w: np.ndarray | None = None
    r: int | None = None
    s: Sym | None = None


# ---------------------------------------------------------------- the proof stream


@dataclass(frozen=True)
class Stream:
    """The body of a proof: its points and scalars, each list in the order the protocol made
    them. Canonical: compressed points (validated on read) and field elements below r."""

    points: tuple[bytes, ...]
    scalars: tuple[int, ...]

    def write(self, w: Writer) -> None:
        with w.section("stream"):
            w.points(self.points)
            w.fields(self.scalars)

    @classmethod
    def read(cls, r: Reader) -> "Stream":
        with r.section("stream"):
            pts = tuple(r.points(max_len=MAX_STREAM))
            sc = tuple(r.fields(max_len=MAX_STREAM))
        return cls(pts, sc)

    @property
    def size(self) -> int:
        """Bytes of the points and scalars (32 each), without framing."""
        return 32 * (len(self.points) + len(self.scalars))


# ---------------------------------------------------------------- the context


@dataclass
class _Relation:
    terms: list[tuple[int, list[int]]]  # (slot offset, weights)
    rhs: Com


class Context:
    """The state of one run of a protocol: transcript, stream, pending batched checks."""

    proving: bool

    def __init__(self, transcript: Transcript, *, proving: bool, stream: Stream | None,
                 rng: Rng, label: bytes) -> None:
        self.t = transcript
        self.proving = proving
        self.rng = rng
        self.label = label
        self.key1 = PedersenKey.derive(label, 1)
        self._relations: list[_Relation] = []
        self._zeros: list[tuple[Com, str]] = []
        self._slots = 0
        self._rounds: list[tuple[int, int]] = []  # (offset, size) of each round commitment
        self._open: dict[int, str] = {}
        self._next_obligation = 0
        self._finished = False
        self.trace: list | None = None  # verifier: a list records what the checks saw
        if proving:
            self._pts: list[bytes] = []
            self._sc: list[int] = []
            self._slot_vals: list[int] = []
            self._round_blinds: list[int] = []
        else:
            assert stream is not None
            self._stream = stream
            self._pi = 0
            self._si = 0
            self._blocks: list[np.ndarray] = [self.key1.U, self.key1.H]
            self._next_id = 2
            self._gen_ids: dict[bytes, list[int]] = {}
            self._acc: dict[int, int] = {}
            self._round_ids: list[int] = []
            try:
                pts = ZC.decompress(list(stream.points)) if stream.points else ZC.identity(0)
            except MalformedProofError as e:
                raise MalformedProofError(f"proof stream: {e}") from e
            self._stream_base = self._register(pts)

    # ------------------------------------------------------------ construction

    @classmethod
    def prover(cls, transcript: Transcript, rng: Rng = None,
               label: bytes = DEFAULT_LABEL) -> "Context":
        """A prover's context: blinds and nonces from the OS CSPRNG unless ``rng`` is given."""
        return cls(transcript, proving=True, stream=None, rng=rng, label=label)

    @classmethod
    def verifier(cls, transcript: Transcript, stream: Stream,
                 label: bytes = DEFAULT_LABEL) -> "Context":
        """A verifier's context reading ``stream``."""
        return cls(transcript, proving=False, stream=stream, rng=None, label=label)

    def stream(self) -> Stream:
        """The prover's finished proof body."""
        if not self.proving or not self._finished:
            raise RuntimeError("only a finished prover context has a stream")
        return Stream(tuple(self._pts), tuple(self._sc))

    # ------------------------------------------------------------ randomness and challenges

    def random(self, n: int) -> list[int]:
        """n fresh uniform blinds or nonces (prover only)."""
        if not self.proving:
            raise RuntimeError("the verifier draws no blinds")
        return random_scalars(n, self.rng)

    def challenge(self, label: bytes) -> int:
        return self.t.challenge(label)

    def challenges(self, label: bytes, n: int) -> list[int]:
        return self.t.challenges(label, n)

    # ------------------------------------------------------------ the stream

    def _register(self, points: np.ndarray) -> int:
        base = self._next_id
        self._blocks.append(np.ascontiguousarray(points, dtype=np.uint64).reshape(-1, 8))
        self._next_id += points.shape[0]
        return base

    def register(self, points: np.ndarray) -> list[int]:
        """Verifier: ids of points from outside the stream (commitment rows)."""
        base = self._register(points)
        return list(range(base, base + points.shape[0]))

    def generator_ids(self, label: bytes, n: int) -> list[int]:
        """Verifier: ids of the first n generators of the set ``label`` (registered once)."""
        have = self._gen_ids.get(label, [])
        if len(have) < n:  # a longer prefix: register only the new generators (each point
            # enters the final MSM once, whatever lengths the protocol asks for)
            base = self._register(generators(label, n)[len(have):])
            have = have + list(range(base, base + n - len(have)))
            self._gen_ids[label] = have
        return have[:n]

    def put_points(self, label: bytes, aff: np.ndarray) -> list[bytes]:
        """Prover: append affine points to the stream and absorb them."""
        enc = S.compress_rows(aff) if aff.shape[0] <= 64 else ZC.compress_list(aff)
        self._pts.extend(enc)
        self.t.absorb_points(label, enc)
        return enc

    def take_points(self, label: bytes, n: int) -> list[int]:
        """Verifier: the ids of the next n stream points (absorbed)."""
        if self._pi + n > len(self._stream.points):
            raise MalformedProofError("proof stream ends early: points missing")
        enc = self._stream.points[self._pi:self._pi + n]
        self.t.absorb_points(label, enc)
        base = self._stream_base + self._pi
        self._pi += n
        return list(range(base, base + n))

    def put_scalars(self, label: bytes, xs: Sequence[int]) -> None:
        xs = [int(x) % P for x in xs]
        self._sc.extend(xs)
        self.t.absorb_scalars(label, xs)

    def take_scalars(self, label: bytes, n: int) -> list[int]:
        if self._si + n > len(self._stream.scalars):
            raise MalformedProofError("proof stream ends early: scalars missing")
        xs = list(self._stream.scalars[self._si:self._si + n])
        self._si += n
        self.t.absorb_scalars(label, xs)
        return xs

    def scalars(self, label: bytes, n: int, values: Callable[[], Sequence[int]]) -> list[int]:
        """Scalars sent in the clear (responses of sigma protocols): the prover's ``values()``,
        or the verifier's next n."""
        if self.proving:
            xs = [int(x) % P for x in values()]
            if len(xs) != n:
                raise AssertionError("scalar count drifted from the protocol")
            self.put_scalars(label, xs)
            return xs
        return self.take_scalars(label, n)

    # ------------------------------------------------------------ committed scalars

    def public(self, v: int) -> Com:
        """A public value as a commitment with zero blind (both sides compute it)."""
        v = int(v) % P
        return Com(v, 0) if self.proving else Com(s=Sym.point(U_ID, v))

    def commit(self, label: bytes, n: int, values: Callable[[], Sequence[int]]) -> list[Com]:
        """n hidden scalars: the prover commits ``values()`` with fresh blinds; the verifier
        reads the n commitments. Both absorb them."""
        if n == 0:
            return []
        if self.proving:
            vals = [int(x) % P for x in values()]
            if len(vals) != n:
                raise AssertionError("commitment count drifted from the protocol")
            blinds = self.random(n)
            self.put_points(label, commit_scalars(self.key1, vals, blinds))
            return [Com(v, r) for v, r in zip(vals, blinds)]
        return [Com(s=Sym.point(i)) for i in self.take_points(label, n)]

    def commit_points(self, label: bytes, aff: Callable[[], np.ndarray], n: int) -> list[int] | None:
        """Points the prover computed (first messages): sent and absorbed; verifier gets ids."""
        if self.proving:
            pts = aff()
            if pts.shape[0] != n:
                raise AssertionError("point count drifted from the protocol")
            self.put_points(label, pts)
            return None
        return self.take_points(label, n)

    # ------------------------------------------------------------ deferred checks

    def equal(self, a: Com, b: Com | int, what: str) -> None:
        """Record that a and b commit to the same value (checked in :meth:`finish`). The prover
        refuses a false equality with ProverError naming ``what``."""
        d = a - b
        if self.proving and d.v != 0:
            refuse(what)
        self._zeros.append((d, what))

    def check(self, sym: Sym) -> None:
        """Verifier: a group equation sym = 0, batched into the final MSM with a random weight."""
        w = secrets.randbelow(P - 1) + 1
        acc = self._acc
        for pid, c in sym.t.items():
            acc[pid] = (acc.get(pid, 0) + w * c) % P

    def commit_round(self, label: bytes, size: int, values: Callable[[], Sequence[int]]) -> int:
        """Commit ``size`` round values in fresh sumcheck slots; returns the slot offset."""
        off = self._slots
        self._slots += size
        self._rounds.append((off, size))
        if self.proving:
            vals = [int(x) % P for x in values()]
            if len(vals) != size:
                raise AssertionError("round size drifted from the protocol")
            (blind,) = self.random(1)
            gens = generators(self.label + SUMCHECK_GENS, self._slots)[off:]
            self.put_points(label, commit_slices(gens, self.key1.H, vals, blind))
            self._slot_vals.extend(vals)
            self._round_blinds.append(blind)
        else:
            self._round_ids.extend(self.take_points(label, 1))
        return off

    def relate(self, terms: Sequence[tuple[int, Sequence[int]]], rhs: Com | int) -> None:
        """Record sum over (offset, weights) of weights . slot values = rhs (checked in finish)."""
        terms = [(off, [int(x) % P for x in ws]) for off, ws in terms]
        rhs = rhs if isinstance(rhs, Com) else self.public(rhs)
        if self.proving:
            lhs = sum(w * self._slot_vals[off + i] for off, ws in terms for i, w in enumerate(ws))
            if (lhs - rhs.v) % P:
                refuse("a sumcheck round relation fails")
        self._relations.append(_Relation(terms, rhs))

    def obligation(self, what: str) -> int:
        """A claim someone must discharge before :meth:`finish` (e.g. an unclosed sumcheck)."""
        k = self._next_obligation
        self._next_obligation += 1
        self._open[k] = what
        return k

    def discharge(self, k: int) -> None:
        self._open.pop(k)

    # ------------------------------------------------------------ the end

    def finish(self) -> None:
        """Prove (prover) or check (verifier) every deferred relation; the verifier also checks
        that the whole stream was read. Raises VerificationError on the verifier side."""
        from zk.protocol import sigma  # sigma builds on this module

        if self._open:
            raise RuntimeError(f"undischarged claims: {sorted(self._open.values())}")
        if self._relations:
            self._squash()
        if self._zeros:
            gammas = self.challenges(L_EQUAL, len(self._zeros))
            d = com_sum([z for z, _ in self._zeros], gammas)
            sigma.zero(self, d)
        self._finished = True
        if not self.proving:
            if self._pi != len(self._stream.points) or self._si != len(self._stream.scalars):
                raise MalformedProofError("proof stream has elements the protocol does not use")
            self._msm_check()

    def _squash(self) -> None:
        """All round relations as one dot product. With lambda, sum_k lambda^k (relation k)
        reads <a, e> = t over the round values e. Each round commitment C_j is weighted by
        g^j (g a challenge drawn after every round was committed) and slot group j of a divided
        by g^j: a round's commitment then counts only for its own slots (contributions to other
        rounds' slots, made after their challenges, would leave powers of g that cannot cancel:
        Hyrax's "proof of sumcheck", figure 1)."""
        from zk.protocol import sigma

        lam = self.challenge(L_SQUASH)
        g = self.challenge(L_SQUASH)
        if g == 0:
            raise (ProverError if self.proving else VerificationError)("zero challenge")
        n = next_pow2(self._slots)
        a = [0] * n
        rhs_coms, rhs_coefs = [], []
        w = 1
        for rel in self._relations:
            for off, ws in rel.terms:
                for i, x in enumerate(ws):
                    a[off + i] = (a[off + i] + w * x) % P
            rhs_coms.append(rel.rhs)
            rhs_coefs.append(w)
            w = w * lam % P
        target = com_sum(rhs_coms, rhs_coefs)
        gi = pow(g, -1, P)
        gpow, gipow = [], []
        gk, gik = 1, 1
        for off, size in self._rounds:
            gpow.append(gk)
            gipow.append(gik)
            for i in range(off, off + size):
                a[i] = a[i] * gik % P
            gk, gik = gk * g % P, gik * gi % P
        label = self.label + SUMCHECK_GENS
        if self.proving:
            e = [0] * n
            for (off, size), gk in zip(self._rounds, gpow):
                for i in range(off, off + size):
                    e[i] = self._slot_vals[i] * gk % P
            blind = sum(r * gk for r, gk in zip(self._round_blinds, gpow)) % P
            vec = VecCom(w=Fr.from_ints(e), r=blind)
        else:
            vec = VecCom(s=Sym.combo(self._round_ids, gpow))
        sigma.dot_product_log(self, label, n, vec, a, target)

    def _msm_check(self) -> None:
        acc = self._acc
        if not acc:
            return
        ids = sorted(acc)
        pts = np.concatenate(self._blocks)[ids]
        old = nb.get_num_threads()
        nb.set_num_threads(max(old, min(FINAL_MSM_THREADS[0], nb.config.NUMBA_NUM_THREADS)))
        try:
            bad = _msm_affine(pts, [acc[i] for i in ids]).any()
        finally:
            nb.set_num_threads(old)
        if bad:
            raise VerificationError("the proof's group equations do not hold (a commitment, "
                                    "opening, product or sumcheck relation is false)")

    # ------------------------------------------------------------ debugging aid for tests

    def evaluate(self, sym: Sym) -> np.ndarray:
        """Verifier: the affine point a Sym denotes (tests; one MSM)."""
        ids = sorted(sym.t)
        if not ids:
            return ZC.identity(1)
        return _msm_affine(np.concatenate(self._blocks)[ids], [sym.t[i] for i in ids])


FINAL_MSM_THREADS = [1]
"""Numba threads of a verifier's one final MSM (see :func:`final_msm_threads`)."""


@contextmanager
def final_msm_threads(n: int) -> Iterator[None]:
    """Let the verifier's final MSM (every group equation of a proof at once: tens of
    thousands of points for a whole model) use n numba threads inside the block; the rest of
    the verifier stays on :func:`one_thread`."""
    with thread_setting(FINAL_MSM_THREADS, n):
        yield


@contextmanager
def thread_setting(holder: list[int], n: int) -> Iterator[None]:
    """Set a one-element threads setting to n inside the block (restored after)."""
    if n < 1:
        raise ValueError("at least one thread")
    old = holder[0]
    holder[0] = n
    try:
        yield
    finally:
        holder[0] = old


@contextmanager
def one_thread() -> Iterator[None]:
    """Run numba kernels on the calling thread inside the block. A verifier's work is many small
    kernels and one MSM of a few thousand points: on a shared machine waiting for a second,
    busy core costs more than it saves (measured: zkAttn L = 32 verification 0.08 s on one
    thread against 0.12-0.18 s on two with the other core loaded)."""
    old = nb.get_num_threads()
    nb.set_num_threads(1)
    try:
        yield
    finally:
        nb.set_num_threads(old)


def _msm_affine(points: np.ndarray, coefs: Sequence[int]) -> np.ndarray:
    """sum_i coefs[i] points[i] as one affine row. Small MSMs run on the calling thread (a
    parallel region's start-up costs milliseconds on a loaded machine)."""
    n = points.shape[0]
    scal = S.limbs(coefs).reshape(1, n, 4)
    if n <= 64:
        return S.straus(points, scal)
    if n >= 2048:
        return ZC.to_affine(M.msm_canonical(points, scal))
    old = nb.get_num_threads()
    nb.set_num_threads(1)
    try:
        return ZC.to_affine(M.msm_canonical(points, scal))
    finally:
        nb.set_num_threads(old)

