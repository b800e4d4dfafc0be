"""The whole-model proof engine: stacked committed tensors on named grids, batched relations.

A model's witness is a set of integer tensors, each living on a :class:`Space` (named axes,
outermost first, each zero-padded to a power of two; the innermost axis holds the low
variables). Every tensor of one space is a member of that space's *stack*: one hiding Hyrax
commitment (:mod:`zk.head.stack`), opened once at the end for every claim the protocol made on
its members (``wide and shallow``: the layer index is an axis like any other, so one relation
covers all layers at once).

The protocol proves three kinds of facts, commit-and-prove (every value a Pedersen
commitment, see :mod:`zk.protocol.context`):

* **lookups** (:meth:`Engine.column`): entries of a (virtual) tensor lie in a public table, or
  (x, f(x)) pairs do; all columns of the model go into ONE logUp
  (:func:`zk.lookup.logup.run`), whose end gives each column a point where its values are
  committed and tied to the tree;
* **linear facts**: a :class:`Lin` (a linear combination of tensors of one space plus a
  constant times the space's real-entry indicator) is evaluated at any point from claims on
  its members: no proof beyond the claims' openings;
* **contractions** (:meth:`Engine.contract`): out~(p) = sum over the summed axes of a sum of
  products of factors (tensors, public tables, or *chain* values: tensors that are never
  committed, whose claims the caller hands to the next contraction). One zero-knowledge
  sumcheck runs over the summed axes and the *batch* axes (output axes that several factors
  share, weighted by eq(p, .)); output axes that only one factor has are folded into that
  factor first (a matrix product's row and column indices). Pointwise identities are
  contractions with nothing summed and output 0 at a random point.

Padding: witnesses are zero outside the real entries, and every constant of a :class:`Lin`
is multiplied by the real-entry indicator, so every relation also holds on padding; a
contraction that sums over a padded axis takes the axis' indicator as a factor (``mask``), so
values a prover places in padding never reach a real entry.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from gpu import poly as K
from zk.claims import ComClaim
from zk.commit import hyrax
from zk.errors import ProverError
from zk.field import Fr
from zk.head import stack
from zk.lookup import logup
from zk.lookup.tables import Column, LookupTable, Selector, TableSet, indicator_mle
from zk.multilinear import P, eq_eval, eq_table, evaluate, evaluate_small, next_pow2
from zk.protocol import sigma
from zk.protocol import sumcheck as zs
from zk.protocol.context import Com, Context

__all__ = ["Axis", "Space", "Mask", "Lin", "Factor", "Engine", "MAX_LOG_COLS"]

L_VALUES = b"model/values"
L_POINT = b"model/point"
L_GAMMA = b"model/gamma"
MAX_LOG_COLS = 15  # a stack's Hyrax matrix: at most 2^15 columns (few rows: the proof carries one point a row)
MIN_SPLIT_VARS = 12  # a looked-up column of a space this large is cut into blocks (_blocks)
MAX_BLOCKS = 4  # at most this many blocks a column
MAX_TREE_VARS = 24  # a logUp's fraction tree has at most 2^24 leaves (about 2.2 GB to prove)

Coords = Mapping[str, Sequence[int]]


def _bits(n: int) -> int:
    return max(0, (max(1, n) - 1).bit_length())


@dataclass(frozen=True)
class Axis:
    """A named axis of ``size`` real entries, padded to 2^bits."""

    name: str
    size: int
    min_bits: int = 0

    @property
    def bits(self) -> int:
        return max(self.min_bits, _bits(self.size))

    @property
    def padded(self) -> int:
        return 1 << self.bits


@dataclass(frozen=True)
class StackMatrix:
    """How a stack's vector sits in its Hyrax matrix: of each part (the space's axes innermost
    first, then the member index) the low ``low[j]`` bits are column variables, the rest row
    variables. The committed vector orders its variables as every part's low bits (innermost
    part first), then every part's high bits; a claim's point is permuted the same way.
    :meth:`choose` picks the split with the fewest rows that hold a real entry (rows of
    padding only are publicly zero and not sent): e.g. (l 30, h 9, i 32, e 64) at 2^15 columns
    puts the low 5 bits of e, i and l in the columns rather than all of e, i and the 4 bits of
    h (9 of 16 real): 288 real rows of 512 instead of 480."""

    bits: tuple[int, ...]
    sizes: tuple[int, ...]
    low: tuple[int, ...]
    dense: tuple[int, ...] = ()  # members whose padding is not publicly zero: every row real

    @classmethod
    def choose(cls, space: "Space", members: int, index_vars: int, log_cols: int,
               dense: Sequence[int] = ()) -> "StackMatrix":
        bits = tuple(a.bits for a in reversed(space.axes)) + (index_vars,)
        sizes = tuple(a.size for a in reversed(space.axes)) + (members,)
        return cls(bits, sizes, _best_low(bits, sizes, log_cols), tuple(dense))

    @property
    def log_cols(self) -> int:
        return sum(self.low)

    @property
    def order(self) -> list[int]:
        """The original variable index of each committed variable (little-endian)."""
        starts = np.cumsum((0,) + self.bits).tolist()
        lo = [starts[j] + k for j, c in enumerate(self.low) for k in range(c)]
        hi = [starts[j] + k for j, (b, c) in enumerate(zip(self.bits, self.low))
              for k in range(c, b)]
        return lo + hi

    @property
    def identity(self) -> bool:
        return self.order == list(range(sum(self.bits)))

    def point(self, point: Sequence[int]) -> tuple[int, ...]:
        return tuple(point[i] for i in self.order)

    def vector(self, v: np.ndarray) -> np.ndarray:
        """The committed vector of a stack's (member-major, padded) vector."""
        if self.identity:
            return v
        k = len(self.bits)
        shape = []
        for j in reversed(range(k)):  # C order: the outermost part first, hi then lo
            shape += [1 << (self.bits[j] - self.low[j]), 1 << self.low[j]]
        his = [2 * (k - 1 - j) for j in reversed(range(k))]
        los = [2 * (k - 1 - j) + 1 for j in reversed(range(k))]
        return np.ascontiguousarray(v.reshape(shape).transpose(his + los)).reshape(-1)

    def real_rows(self) -> np.ndarray:
        """Which rows hold a real entry (the others are padding only)."""
        r = np.arange(1 << (sum(self.bits) - self.log_cols))
        out = np.ones(r.size, dtype=bool)
        off = 0
        for b, c, size in zip(self.bits, self.low, self.sizes):
            h = (r >> off) & ((1 << (b - c)) - 1)
            out &= (h << c) < size
            off += b - c
        if self.dense:  # the member index is the rows' top field (h: its high part)
            c = self.low[-1]
            out |= np.isin(h, [m >> c for m in self.dense])
        return out


def _greedy_low(bits: Sequence[int], cols: int) -> tuple[int, ...]:
    low, left = [], cols
    for b in bits:
        low.append(min(b, left))
        left -= low[-1]
    return tuple(low)


@lru_cache(maxsize=256)
def _best_low(bits: tuple[int, ...], sizes: tuple[int, ...], cols: int) -> tuple[int, ...]:
    """The column split with the fewest real rows: the member index only in the columns when
    the whole space is (claims on several members at one point then share a column point);
    the plain layout (low variables as columns) on a tie."""
    def real(low) -> int:
        n = 1
        for size, c in zip(sizes, low):
            n *= -(-size // (1 << c))
        return n

    base = _greedy_low(bits, cols)
    if base[-1] or len(bits) == 1:
        return base
    best, best_n = base, real(base)
    for low in itertools.product(*(range(b + 1) for b in bits[:-1])):
        if sum(low) == cols:
            n = real(low + (0,))
            if n < best_n:
                best, best_n = low + (0,), n
    return best


@dataclass(frozen=True)
class Space:
    """A grid of axes, outermost first; the innermost axis holds the lowest variables."""

    name: str
    axes: tuple[Axis, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.axes)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(a.size for a in self.axes)

    @property
    def padded_shape(self) -> tuple[int, ...]:
        return tuple(a.padded for a in self.axes)

    @property
    def num_vars(self) -> int:
        return sum(a.bits for a in self.axes)

    @property
    def size(self) -> int:
        return 1 << self.num_vars

    def axis(self, name: str) -> Axis:
        for a in self.axes:
            if a.name == name:
                return a
        raise KeyError(name)

    def pad(self, arr: np.ndarray) -> np.ndarray:
        """The flat zero-padded int64 vector of a tensor of this space's real shape."""
        a = np.asarray(arr)
        if a.shape != self.shape:
            raise ProverError(f"{self.name}: a tensor of shape {a.shape}, expected {self.shape}")
        out = np.zeros(self.padded_shape, dtype=np.int64)
        out[tuple(slice(0, s) for s in self.shape)] = a
        return out.reshape(-1)

    def point(self, coords: Coords) -> tuple[int, ...]:
        """The little-endian point (innermost axis first) of per-axis coordinates."""
        out: list[int] = []
        for a in reversed(self.axes):
            c = coords[a.name]
            if len(c) != a.bits:
                raise ValueError(f"axis {a.name}: {len(c)} coordinates, {a.bits} bits")
            out.extend(c)
        return tuple(out)

    def coords(self, point: Sequence[int]) -> dict[str, tuple[int, ...]]:
        out, k = {}, 0
        for a in reversed(self.axes):
            out[a.name] = tuple(point[k:k + a.bits])
            k += a.bits
        return out

    def indicator(self) -> np.ndarray:
        """The flat 0/1 vector of real entries."""
        m = np.zeros(self.padded_shape, dtype=np.int64)
        m[tuple(slice(0, s) for s in self.shape)] = 1
        return m.reshape(-1)

    def indicator_mle(self, coords: Coords) -> int:
        acc = 1
        for a in self.axes:
            acc = acc * indicator_mle(a.size, coords[a.name]) % P
        return acc


@dataclass(frozen=True, eq=False)
class Mask:
    """A public 0/1 mask on consecutive ``axes`` of a space (``values``: their padded grid, C
    order, outermost first); a column's selector is the mask times the real-entry indicator of
    the other axes, a tensor product described and evaluated factor by factor."""

    axes: tuple[str, ...]
    values: np.ndarray


def _pieces(a: Axis) -> tuple[tuple[int, int], ...]:
    """Aligned power-of-two pieces (offset, size) covering an axis' real entries: the largest
    power of two within its size and, after it, the remainder's next power of two, when the
    two are shorter than the padded axis (576 of 1024: 512 + 64; 9 of 16: 8 + 1); else the
    whole padded axis."""
    n, full = a.size, a.padded
    if n < 1:
        return ((0, full),)
    hi = 1 << (n.bit_length() - 1)
    rest = n - hi
    pieces = ((0, hi),) + (((hi, next_pow2(rest)),) if rest else ())
    return pieces if sum(s for _, s in pieces) < full else ((0, full),)


@dataclass(frozen=True)
class Block:
    """An aligned sub-grid of a space: one piece (offset, size) per axis, outermost first, its
    entries a vector in the space's order (the innermost axis holds the lowest variables).
    The block's MLE at a point is the space's MLE at the point with each axis' high bits
    fixed to its piece's index (:meth:`coords`)."""

    pieces: tuple[tuple[int, int], ...]

    @property
    def size(self) -> int:
        return int(np.prod([s for _, s in self.pieces], dtype=np.int64))

    def take(self, space: Space, flat: np.ndarray) -> np.ndarray:
        """The block's entries of a flat padded tensor of ``space``, as the block's vector."""
        arr = np.asarray(flat).reshape(space.padded_shape)
        sub = arr[tuple(slice(o, o + s) for o, s in self.pieces)]
        return np.ascontiguousarray(sub).reshape(-1)

    def coords(self, space: Space, point: Sequence[int]) -> dict[str, tuple[int, ...]]:
        """The space coordinates of a block point (its innermost axis' bits first)."""
        out, k = {}, 0
        for a, (o, s) in zip(reversed(space.axes), reversed(self.pieces)):
            b = _bits(s)
            high = o >> b
            out[a.name] = tuple(point[k:k + b]) + tuple((high >> j) & 1
                                                        for j in range(a.bits - b))
            k += b
        if k != len(point):
            raise ValueError("a block point of the wrong length")
        return out


def _blocks(space: Space) -> list[Block]:
    """The blocks that cover a space's real entries: the product of its axes' pieces, the
    axes that save the most split first while the blocks are at most MAX_BLOCKS; one block
    (the padded grid) for a space below 2^MIN_SPLIT_VARS entries, where a block's fixed cost
    outweighs the leaves it saves."""
    pieces = [((0, a.padded),) for a in space.axes]
    if space.num_vars >= MIN_SPLIT_VARS:
        gain = sorted(range(len(space.axes)), key=lambda i: (
            sum(s for _, s in _pieces(space.axes[i])) / space.axes[i].padded, i))
        count = 1
        for i in gain:
            p = _pieces(space.axes[i])
            if len(p) > 1 and count * len(p) <= MAX_BLOCKS:
                pieces[i] = p
                count *= len(p)
    out: list[Block] = [Block(())]
    for p in pieces:
        out = [Block(b.pieces + (q,)) for b in out for q in p]
    return out


def _selector(space: Space, mask: Mask | None, blk: Block | None = None) -> Selector:
    """The product selector of a space's real entries (times ``mask`` on its axes) on a
    block (default: the whole padded grid)."""
    names = list(space.names)
    if blk is None:
        blk = Block(tuple((0, a.padded) for a in space.axes))
    if mask is not None:
        idx = [names.index(a) for a in mask.axes]
        if idx != list(range(idx[0], idx[0] + len(idx))):
            raise ValueError("a mask covers consecutive axes of its space")
        shape = tuple(space.axes[i].padded for i in idx)
        vals = np.asarray(mask.values, dtype=np.int64).reshape(shape)
        for k, i in enumerate(idx):  # zero outside the real entries of its axes
            keep = np.zeros(shape[k], dtype=np.int64)
            keep[: space.axes[i].size] = 1
            vals = vals * keep.reshape([-1 if j == k else 1 for j in range(len(idx))])
        mask_vec = vals[tuple(slice(*_span(blk.pieces[i])) for i in idx)].reshape(-1)
    factors: list[np.ndarray] = []
    k = len(names) - 1
    while k >= 0:  # innermost axis (lowest variables) first
        if mask is not None and k == idx[-1]:
            factors.append(np.ascontiguousarray(mask_vec))
            k = idx[0] - 1
            continue
        a = space.axes[k]
        o, s = blk.pieces[k]
        factors.append((np.arange(o, o + s) < a.size).astype(np.int64))
        k -= 1
    return Selector(blk.size, factors=tuple(factors))


def _span(piece: tuple[int, int]) -> tuple[int, int]:
    return piece[0], piece[0] + piece[1]


@dataclass
class Lin:
    """sum_k coef_k T_k + const * ind over tensors T_k of one space (a virtual tensor)."""

    space: Space
    terms: dict[str, int] = field(default_factory=dict)
    const: int = 0

    @classmethod
    def of(cls, space: Space, name: str, coef: int = 1) -> "Lin":
        return cls(space, {name: coef})

    def __add__(self, o: "Lin | int") -> "Lin":
        if isinstance(o, int):
            return Lin(self.space, dict(self.terms), self.const + o)
        if o.space != self.space:
            raise ValueError("a sum of tensors of two spaces")
        t = dict(self.terms)
        for k, v in o.terms.items():
            t[k] = t.get(k, 0) + v
        return Lin(self.space, t, self.const + o.const)

    __radd__ = __add__

    def __neg__(self) -> "Lin":
        return Lin(self.space, {k: -v for k, v in self.terms.items()}, -self.const)

    def __sub__(self, o: "Lin | int") -> "Lin":
        return self + (-o if isinstance(o, Lin) else -o)

    def __mul__(self, c: int) -> "Lin":
        return Lin(self.space, {k: v * c for k, v in self.terms.items()}, self.const * c)

    __rmul__ = __mul__

    def values(self, w: Mapping[str, np.ndarray]) -> np.ndarray:
        """The prover's padded int64 values."""
        out = self.const * self.space.indicator()
        for k, v in self.terms.items():
            out = out + v * w[k]
        return out


@dataclass
class Factor:
    """One factor of a contraction, on ``axes`` (names, outermost first).

    kind: "tensor" (a committed tensor or a :class:`Lin` of them; its final claims go to the
    claim book), "chain" (a tensor that is never committed; its final value is returned to the
    caller, who must discharge it) or "public" (the verifier evaluates ``mle``). The prover
    passes ``values``: padded int64 or Fr values over the factor's axes (for a tensor factor
    they are taken from the witness)."""

    kind: str
    axes: tuple[str, ...]
    lin: Lin | None = None
    values: Callable[[], np.ndarray] | None = None
    mle: Callable[[Coords], int] | None = None
    fixed: Mapping[str, Sequence[int]] | None = None  # tensor: space axes held at coordinates

    def space_coords(self, coords: Coords) -> dict[str, tuple[int, ...]]:
        """A tensor factor's coordinates on its space from coordinates on its own axes."""
        fixed = dict(self.fixed or {})
        free = [a for a in self.lin.space.names if a not in fixed]
        if len(free) != len(self.axes):
            raise ValueError("a tensor factor names one axis per free axis of its space")
        out = {a: tuple(fixed[a]) for a in fixed}
        for a, fa in zip(free, self.axes):
            out[a] = tuple(coords[fa])
        return out


def _fr(v: np.ndarray) -> np.ndarray:
    return v if v.ndim == 2 and v.dtype == np.uint64 and v.shape[1] == 4 else Fr.from_signed(
        np.asarray(v, dtype=np.int64).reshape(-1))


def _fold_axis(arr: np.ndarray, shape: list[int], axis: int, coords: Sequence[int]
               ) -> np.ndarray:
    """Fold one axis of an Fr array (flattened, C order over ``shape``) at ``coords``; an int64
    array (a weight) is folded as integers."""
    if arr.ndim == 1:
        return _fold_axis_ints(arr, shape, axis, coords)
    pre = int(np.prod(shape[:axis], dtype=np.int64))
    n = shape[axis]
    post = int(np.prod(shape[axis + 1:], dtype=np.int64))
    a = arr.reshape(pre, n, post, 4)
    w = eq_table(list(coords))
    if post == 1:
        out = np.empty((pre, 4), dtype=np.uint64)
        K.cols_fold(Fr.desc, np.ascontiguousarray(a.reshape(pre * n, 4)), pre, n, w, out)
        return out
    out = np.empty((pre, post, 4), dtype=np.uint64)
    for i in range(pre):
        o = np.empty((post, 4), dtype=np.uint64)
        K.rows_fold(Fr.desc, np.ascontiguousarray(a[i].reshape(n * post, 4)), n, post, w, o)
        out[i] = o
    return out.reshape(pre * post, 4)


def _fold_axis_ints(arr: np.ndarray, shape: list[int], axis: int, coords: Sequence[int]
                    ) -> np.ndarray:
    """Fold one axis of an int64 tensor as integers (no Fr copy of it is made)."""
    pre = int(np.prod(shape[:axis], dtype=np.int64))
    n = shape[axis]
    post = int(np.prod(shape[axis + 1:], dtype=np.int64))
    out = np.empty((pre * post, 4), dtype=np.uint64)
    K.fold_small(Fr.desc, np.ascontiguousarray(arr, dtype=np.int64).reshape(-1), pre, n, post,
                 eq_table(list(coords)), out)
    return out


class Engine:
    """The state of one model proof run (either role): spaces, stacks, claims, columns."""

    def __init__(self, ctx: Context, spaces: Sequence[Space],
                 members: Mapping[str, Sequence[str]],
                 witness: Mapping[str, np.ndarray] | None = None,
                 nonzero_padding: Sequence[str] = ()) -> None:
        """``nonzero_padding``: tensors defined on their space's padded grid (their relations
        hold there too), so their padding entries are not publicly zero; every other tensor is
        zero on padding, and the stack rows of padding only are not sent."""
        self.ctx = ctx
        self.nonzero_padding = frozenset(nonzero_padding)
        self.spaces = {s.name: s for s in spaces}
        self.members = {k: tuple(v) for k, v in members.items()}
        self.where: dict[str, str] = {}
        for sp, names in self.members.items():
            for n in names:
                if n in self.where:
                    raise ValueError(f"tensor {n} in two stacks")
                self.where[n] = sp
        self.w = witness  # name -> padded int64 (prover)
        self.layouts = {sp: stack.StackLayout(names, self.spaces[sp].num_vars)
                        for sp, names in self.members.items()}
        self.tensors: dict[str, hyrax.Tensor] = {}
        self.matrices: dict[str, StackMatrix] = {}
        self.book = stack.ClaimBook()
        self.external: dict[str, tuple[hyrax.Tensor, Space]] = {}
        self.columns: list[tuple[int, Lin, Lin | None, Mask | None]] = []
        self.tables: list[LookupTable] = []
        self._table_ids: dict[str, int] = {}
        self.m_openings: list[tuple[hyrax.Tensor, object]] = []  # the logUps' multiplicities

    @property
    def proving(self) -> bool:
        return self.ctx.proving

    # ------------------------------------------------------------ commitments

    def commit_stacks(self) -> None:
        """Commit every stack (prover) or read the commitments (verifier), in order."""
        for sp, lay in self.layouts.items():
            # few rows (the proof carries one point a row), the columns within a member (claims
            # on several members at one point then share the opening's column point)
            cols = min(MAX_LOG_COLS, max(lay.member_vars, lay.num_vars // 2 + 1), lay.num_vars)
            dense = tuple(k for k, n in enumerate(lay.names) if n in self.nonzero_padding)
            mat = self.matrices[sp] = StackMatrix.choose(self.spaces[sp], len(lay.names),
                                                         lay.index_vars, cols, dense)
            zero = ~mat.real_rows()
            mk = None
            if self.proving:
                mk = (lambda lay=lay, mat=mat, zero=zero: hyrax.commit(
                    mat.vector(lay.stacked({n: self.w[n] for n in lay.names})),
                    log_cols=mat.log_cols, rng=self.ctx.rng, zero_rows=zero))
            self.tensors[sp] = hyrax.commit_in(self.ctx, lay.num_vars, cols, mk,
                                               zero_rows=zero if zero.any() else None)

    def bind_external(self, name: str, space: Space, com: hyrax.HyraxCommitment,
                      wit: hyrax.HyraxWitness | None, absorbed: bool = False) -> None:
        """A tensor committed outside the proof (a weight), laid out on ``space``.
        ``absorbed``: the transcript already holds a digest of ``com`` (its rows are not
        absorbed again)."""
        if com.num_vars != space.num_vars:
            raise ValueError(f"weight {name}: commitment of {com.num_vars} variables, space "
                             f"{space.name} has {space.num_vars}")
        self.external[name] = (hyrax.bind(self.ctx, com, wit, absorb=not absorbed), space)

    def space_of(self, name: str) -> Space:
        if name in self.external:
            return self.external[name][1]
        return self.spaces[self.where[name]]

    def values(self, name: str) -> np.ndarray:
        """Prover: a tensor's padded int64 values (weights: the witness's values)."""
        if name in self.external:
            v = self.external[name][0].witness.values
            return v if v.ndim == 2 else np.asarray(v, dtype=np.int64)  # held narrow
        return self.w[name]

    def fr(self, name: str) -> np.ndarray:
        """A tensor's padded values as a fresh Fr array (never cached: 32 bytes an entry,
        for the one sumcheck table it is written into)."""
        v = self.values(name)
        return Fr.from_signed(v) if v.ndim == 1 else v

    # ------------------------------------------------------------ claims

    def claim(self, name: str, coords: Coords) -> Com:
        """A committed value of tensor ``name`` at ``coords``, recorded for the final opening."""
        sp = self.space_of(name)
        point = sp.point(coords)
        (c,) = self.ctx.commit(L_VALUES, 1, lambda: [self._evaluate(name, point)])
        self.record(name, coords, c)
        return c

    def _evaluate(self, name: str, point: Sequence[int]) -> int:
        v = self.values(name)
        return evaluate_small(v, list(point)) if v.ndim == 1 else evaluate(v, list(point))

    def record(self, name: str, coords: Coords, com: Com) -> None:
        """Record that tensor ``name`` takes at ``coords`` the value committed in ``com``."""
        sp = self.space_of(name)
        point = sp.point(coords)
        if name in self.external:
            self.book.add_raw("w:" + name, point, com)
        else:
            s = self.where[name]
            self.book.add(s, self.layouts[s], name, point, com)

    def lin_at(self, lin: Lin, coords: Coords) -> Com:
        """A commitment to lin~(coords) from claims on its members."""
        acc = self.ctx.public(lin.const * lin.space.indicator_mle(coords) % P)
        for n, c in lin.terms.items():
            if c % P:
                acc = acc + self.claim(n, coords) * c
        return acc

    def random_coords(self, space: Space) -> dict[str, tuple[int, ...]]:
        pt = self.ctx.challenges(L_POINT, space.num_vars)
        return space.coords(pt)

    # ------------------------------------------------------------ lookups

    def table(self, key: str, make: Callable[[], LookupTable]) -> int:
        """The index of a public table (registered once under ``key``)."""
        if key not in self._table_ids:
            self._table_ids[key] = len(self.tables)
            self.tables.append(make())
        return self._table_ids[key]

    def range_table(self, lo: int, hi: int) -> int:
        return self.table(f"range[{lo},{hi})", lambda: LookupTable.range(lo, hi))

    def column(self, table: int, x: Lin, y: Lin | None = None,
               mask: Mask | None = None) -> None:
        """Entries of x (pairs (x, y) for a function table) at the real entries of their space
        (and where ``mask`` is 1) are rows of ``table``."""
        if y is not None and y.space != x.space:
            raise ValueError("a column's x and y live in one space")
        self.columns.append((table, x, y, mask))

    def run_lookup(self) -> None:
        """Every registered column in a lookup, bound to the tensors: each column is cut into
        the blocks of its space (:func:`_blocks`: aligned sub-grids that cover the real entries
        with less padding than the padded grid), the blocks packed (largest first) into as few
        logUps as keep each fraction tree at most 2^MAX_TREE_VARS leaves (its prover holds 64
        bytes a leaf, twice over with the tree's upper layers), each logUp over the tables its
        blocks use. Blocks and packing are functions of the shapes alone, so both roles derive
        them."""
        units = self.lookup_units()
        for group, tables in self.lookup_groups():
            self._run_group(units, group, tables)

    def lookup_units(self) -> list[tuple[int, "Block"]]:
        """(column index, block) of every looked-up block, columns in registration order."""
        return [(c, blk) for c, (_, x, _, _) in enumerate(self.columns)
                for blk in _blocks(x.space)]

    def lookup_groups(self) -> list[tuple[list[int], list[int]]]:
        """(unit indices into :meth:`lookup_units`, table indices) of each logUp, in the order
        they run."""
        units = self.lookup_units()
        sizes = [blk.size for _, blk in units]
        # largest first, a block counted at least as large as its table (so the blocks of a
        # large table are placed early, together)
        tsize = [self.tables[self.columns[c][0]].size for c, _ in units]
        order = sorted(range(len(sizes)), key=lambda c: (-max(sizes[c], tsize[c]), -sizes[c], c))
        groups: list[tuple[list[int], list[int]]] = []
        for c in order:
            t = self.columns[units[c][0]][0]
            # the first logUp that holds it within the cap, preferring one that already has
            # its table (a large table is then in one tree, not in several)
            fits = []
            for g, (cols, tabs) in enumerate(groups):
                table_rows = sum(self.tables[i].size for i in set(tabs) | {t})
                lay = logup.Layout.of_sizes(max(2, next_pow2(table_rows)),
                                            [sizes[i] for i in cols] + [sizes[c]])
                if lay.num_vars <= MAX_TREE_VARS:
                    fits.append((0 if t in tabs else self.tables[t].size, g))
            if fits:
                cols, tabs = groups[min(fits)[1]]
                cols.append(c)
                if t not in tabs:
                    tabs.append(t)
            else:
                groups.append(([c], [t]))
        return [(cols, sorted(tabs)) for cols, tabs in groups]

    def _run_group(self, units: Sequence[tuple[int, "Block"]], group: Sequence[int],
                   table_ids: Sequence[int]) -> None:
        ctx = self.ctx
        local = {t: k for k, t in enumerate(table_ids)}
        cols = []
        sels: dict[tuple, Selector] = {}
        padded: dict[int, tuple[np.ndarray, np.ndarray | None]] = {}
        for u in group:
            c, blk = units[u]
            table, x, y, mask = self.columns[c]
            key = (x.space.name, None if mask is None else id(mask), blk.pieces)
            if key not in sels:  # one selector object per mask and block: one MLE evaluation
                sels[key] = _selector(x.space, mask, blk)
            sel = sels[key]
            if self.proving:
                if c not in padded:
                    padded[c] = (x.values(self.w_all()),
                                 None if y is None else y.values(self.w_all()))
                xv, yv = padded[c]
                cols.append(Column(local[table], sel, blk.take(x.space, xv),
                                   None if yv is None else blk.take(x.space, yv)))
            else:
                cols.append(Column(local[table], sel))
        del padded
        end = logup.run(ctx, TableSet([self.tables[t] for t in table_ids]), cols,
                        m_cols=MAX_LOG_COLS, defer_m=True)
        self.m_openings.append(end.take_m_opening())  # opened with the stacks in open_all
        del cols
        xs, ys = [], []
        for u, pt in zip(group, end.column_points):
            c, blk = units[u]
            _, x, y, _ = self.columns[c]
            coords = blk.coords(x.space, pt)
            xs.append(self.lin_at(x, coords))
            ys.append(None if y is None else self.lin_at(y, coords))
        end.bind(xs, ys)

    def w_all(self) -> Mapping[str, np.ndarray]:
        return _Values(self)

    # ------------------------------------------------------------ contractions

    def contract(self, claim: Com, out: Coords, sum_axes: Sequence[Axis],
                 factors: Sequence[Factor], terms: Sequence[tuple[int, Sequence[int]]],
                 axis_sizes: Mapping[str, Axis]) -> list[Com | None]:
        """Prove claim = sum_{summed axes} sum_s c_s prod_{i in T_s} factor_i, the output axes
        fixed at ``out`` (see the module docstring). Returns the commitments to the chain
        factors' final values (None for other factors), for the caller to discharge; the
        tensor factors' final values are recorded as claims."""
        ctx = self.ctx
        sum_names = [a.name for a in sum_axes]
        count: dict[str, int] = {}  # the most factors of one term that carry each axis
        for _, idx in terms:
            per: dict[str, int] = {}
            for i in idx:
                for a in factors[i].axes:
                    per[a] = per.get(a, 0) + 1
            for a, c in per.items():
                count[a] = max(count.get(a, 0), c)
        batch = [a for a in out if count.get(a, 0) >= 2]
        order = [a for a in axis_sizes if a in sum_names or a in batch]  # outermost first
        var_axes = [axis_sizes[a] for a in order]
        m = sum(a.bits for a in var_axes)
        # the eq factor over the batch axes, then the caller's factors (Lins expanded)
        atoms: list[tuple[Factor, str | None]] = []  # (factor, member name or None)
        expand: list[list[tuple[int, int | None]]] = []  # per factor: (coef, atom | const)
        seen: dict[tuple, int] = {}  # one atom per tensor member on one set of axes
        for f in factors:
            if f.kind == "tensor":
                parts = []
                for n, c in f.lin.terms.items():
                    key = (n, f.axes, tuple(sorted((a, tuple(v)) for a, v in
                                                   (f.fixed or {}).items())))
                    if key not in seen:
                        atoms.append((f, n))
                        seen[key] = len(atoms) - 1
                    parts.append((c, seen[key]))
                if f.lin.const:
                    atoms.append((Factor("public", f.axes,
                                         mle=lambda co, f=f: f.lin.space.indicator_mle(
                                             f.space_coords(co)),
                                         values=lambda f=f: _held(f)), None))
                    parts.append((f.lin.const, len(atoms) - 1))
                expand.append(parts)
            else:
                atoms.append((f, None))
                expand.append([(1, len(atoms) - 1)])
        # nothing summed (a pointwise identity at a random point): eq(out, .) weights every
        # variable and goes to the sumcheck as its eq point (Gruen: one degree less, no eq
        # table folded); otherwise it is a factor over the batch axes
        gruen = bool(batch) and not sum_names
        eq_point = [int(x) for a in reversed(order) for x in out[a]] if gruen else None
        eq_idx = None
        if batch and not gruen:
            atoms.append((Factor("public", tuple(batch)), "__eq__"))
            eq_idx = len(atoms) - 1
        merged: dict[tuple[int, ...], int] = {}  # like terms (one product of atoms) summed
        for coef, idx in terms:
            combos: list[tuple[int, tuple[int, ...]]] = [(coef, ())]
            for i in idx:
                combos = [(c * pc, t + (a,)) for c, t in combos for pc, a in expand[i]]
            for c, t in combos:
                key = tuple(sorted(t)) + ((eq_idx,) if eq_idx is not None else ())
                merged[key] = (merged.get(key, 0) + c) % P
        full_terms = [(c, t) for t, c in merged.items() if c]
        if not full_terms:
            raise ValueError("a contraction with no terms")
        degree = max(len(t) for _, t in full_terms)
        hidden = [i for i, (f, _) in enumerate(atoms) if f.kind in ("tensor", "chain")]
        ctx.t.absorb_scalars(L_GAMMA, [m, len(atoms), degree])

        def tables() -> np.ndarray:
            # each factor's layout is written straight into the sumcheck's (k, n, 4) array
            dest = np.empty((len(atoms), 1 << m, 4), dtype=np.uint64)
            for k, (f, member) in enumerate(atoms):
                if member == "__eq__":
                    vals = eq_table([int(x) for a in reversed(batch) for x in out[a]])
                    fax = list(batch)
                elif f.kind == "tensor":
                    vals = _held_fr(f, self.values(member) if self._foldable(member, f, out,
                                                                             batch)
                                    else self.fr(member))
                    fax = list(f.axes)
                else:
                    vals = _fr(f.values())
                    fax = list(f.axes)
                self._layout(vals, fax, out, order, axis_sizes, dest[k])
            return dest

        end = zs.run(ctx, claim, m, degree, hidden, terms=full_terms, eq_point=eq_point,
                     tables=tables if self.proving else None, num_factors=len(atoms))
        rc = {}
        k = 0
        for a in reversed(var_axes):
            rc[a.name] = tuple(end.point[k:k + a.bits])
            k += a.bits

        def at(axes: Sequence[str]) -> dict[str, tuple[int, ...]]:
            return {a: (tuple(out[a]) if a in out and a not in batch else rc[a]) for a in axes}

        vals: list = []
        for i, (f, member) in enumerate(atoms):
            if member == "__eq__":
                vals.append(eq_eval([int(x) for a in reversed(batch) for x in out[a]],
                                    [x for a in reversed(batch) for x in rc[a]]))
            elif f.kind == "public":
                vals.append(f.mle(at(f.axes)) % P)
            else:
                vals.append(end.values[i])
                if f.kind == "tensor":
                    self.record(member, f.space_coords(at(f.axes)), end.values[i])
        end.close(self.term_sum(full_terms, vals))
        result: list[Com | None] = []
        for f, parts in zip(factors, expand):
            result.append(end.values[parts[0][1]] if f.kind == "chain" else None)
        self.last_coords = rc
        self.last_at = at
        return result

    def term_sum(self, terms: Sequence[tuple[int, Sequence[int]]], vals: Sequence) -> Com:
        """sum_s c_s prod vals: terms with one hidden factor are linear; the last product of
        every term with several goes into ONE proof of a sum of products (its prefixes, for
        three hidden factors and more, are committed with proofs of product)."""
        acc = self.ctx.public(0)
        merged: dict[tuple[int, ...], int] = {}  # hidden factors -> summed coefficient
        for coef, idx in terms:
            c = coef % P
            hid = []
            for i in idx:
                if isinstance(vals[i], Com):
                    hid.append(i)
                else:
                    c = c * vals[i] % P
            if not c:
                continue
            if not hid:
                acc = acc + c
            elif len(hid) == 1:
                acc = acc + vals[hid[0]] * c
            else:
                key = tuple(sorted(hid))
                merged[key] = (merged.get(key, 0) + c) % P
        prefixes: dict[tuple[int, ...], Com] = {}
        pairs, coefs = [], []
        for key, c in merged.items():
            if not c:
                continue
            prod = vals[key[0]]
            for j in range(1, len(key) - 1):
                sub = key[: j + 1]
                if sub not in prefixes:
                    prefixes[sub] = sigma.product(self.ctx, prod, vals[key[j]])
                prod = prefixes[sub]
            pairs.append((prod, vals[key[-1]]))
            coefs.append(c)
        if pairs:
            acc = acc + sigma.product_sum(self.ctx, pairs, coefs)
        return acc

    def _foldable(self, member: str, f: Factor, out: Coords, batch: Sequence[str]) -> bool:
        """A tensor whose factor folds an axis first (or has fixed axes): its int64 values are
        folded as integers, many times faster than its Fr copy (a weight's Fr matrix is then
        never built)."""
        return (self.values(member).ndim == 1
                and (bool(f.fixed) or any(a in out and a not in batch for a in f.axes)))

    def _layout(self, vals: np.ndarray, fax: list[str], out: Coords, order: list[str],
                axis_sizes: Mapping[str, Axis], dest: np.ndarray) -> None:
        """A factor's Fr table over the sumcheck's variables, written into ``dest`` (an (n, 4)
        array): free output axes folded at ``out``, the rest transposed and broadcast to
        ``order`` (outermost first)."""
        shape = [axis_sizes[a].padded for a in fax]
        arr = vals
        cur = list(fax)
        for a in list(cur):
            if a in out and a not in order:
                i = cur.index(a)
                arr = _fold_axis(arr, shape, i, out[a])
                shape.pop(i)
                cur.pop(i)
        arr = arr.reshape(*shape, 4) if shape else arr.reshape(4)
        # transpose to the order of the sumcheck axes, broadcasting missing ones
        perm = [cur.index(a) for a in order if a in cur]
        arr = np.transpose(arr, perm + [len(cur)]) if cur else arr
        full = [axis_sizes[a].padded if a in cur else 1 for a in order]
        arr = arr.reshape(*full, 4)
        target = [axis_sizes[a].padded for a in order]
        arr = np.broadcast_to(arr, (*target, 4))
        np.copyto(dest.reshape(*target, 4), arr)

    # ------------------------------------------------------------ the end

    def open_all(self) -> None:
        """Open every stack and every external tensor, for all claims recorded on them, in ONE
        batched opening (:func:`zk.commit.hyrax.open_batch`: one sumcheck over the columns,
        one dot-product argument for the whole proof)."""
        items = [(self.tensors[sp], [ComClaim(self.matrices[sp].point(c.point), c.com)
                                     for c in self.book.claims[sp]])
                 for sp in self.layouts if self.book.claims.get(sp)]
        items += [(t, self.book.claims["w:" + name]) for name, (t, _) in self.external.items()
                  if self.book.claims.get("w:" + name)]
        items += [(t, [claim]) for t, claim in self.m_openings]
        hyrax.open_batch(self.ctx, items)


def _held(f: Factor) -> np.ndarray:
    """The indicator of a tensor factor's space with its fixed axes held (int64 or Fr)."""
    return _held_fr(f, Fr.from_signed(f.lin.space.indicator()))


def _held_fr(f: Factor, vals: np.ndarray) -> np.ndarray:
    """A tensor factor's Fr values with its fixed axes folded at their coordinates."""
    if not f.fixed:
        return vals
    sp = f.lin.space
    shape = [a.padded for a in sp.axes]
    names = list(sp.names)
    for a, c in f.fixed.items():
        i = names.index(a)
        vals = _fold_axis(vals, shape, i, c)
        shape.pop(i)
        names.pop(i)
    return vals


class _Values(Mapping):
    """The prover's padded int64 values of tensors and weights, by name."""

    def __init__(self, eng: Engine) -> None:
        self.e = eng

    def __getitem__(self, k: str) -> np.ndarray:
        return self.e.values(k)

    def __iter__(self):
        return iter(list(self.e.where) + list(self.e.external))

    def __len__(self) -> int:
        return len(self.e.where) + len(self.e.external)
