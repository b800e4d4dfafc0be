"""The retired, NON-zero-knowledge protocol (plain tlookup), kept only as a baseline for the leak,
extraction and benchmark comparisons (issue 10). Never used by the product: it sends sumcheck
messages and opened values in the clear, which give away the weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from legacy import hyrax, lookup
from legacy.claims import Claim
from legacy.lookup import LookupClaims
from zk.commit import hyrax as zh
from zk.encoding import Reader, Writer
from zk.errors import ProverError, VerificationError
from zk.field import Fr
from zk.lookup.tables import Column, LookupTable, Selector, TableSet, indicator_mle
from zk.multilinear import P, evaluate, num_vars
from zk.transcript import Transcript

LABEL_M = b"tlookup/multiplicities"
LABEL_LIMBS = b"tlookup/limbs"
LABEL_REMAINDER = b"tlookup/remainder"
LABEL_RELATION = b"tlookup/relation"

MAX_DIRECT_SPAN = 1 << 16


def _padded(x: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros(Selector.first(n).size, dtype=np.int64)
    out[:n] = np.asarray(x, dtype=np.int64).reshape(-1)
    return out


def column(table: int, x: np.ndarray, y: np.ndarray | None = None) -> Column:
    """The column of the n entries of x (and y), zero-padded, all selected."""
    x = np.asarray(x, dtype=np.int64).reshape(-1)
    return Column(table, Selector.first(x.size), _padded(x, x.size),
                  None if y is None else _padded(y, x.size))


def shapes(table: int, sizes: Sequence[int]) -> list[Column]:
    """The verifier's view of columns of the given lengths (no values)."""
    return [Column(table, Selector.first(n)) for n in sizes]


def _as_set(tables: TableSet | LookupTable) -> TableSet:
    return tables if isinstance(tables, TableSet) else TableSet([tables])


# ---------------------------------------------------------------- committed membership


@dataclass(frozen=True)
class TLookupProof:
    """m's commitment, the lookup argument, and the opening of m at its claim."""

    m_commitment: zh.HyraxCommitment
    lookup: lookup.LookupProof
    m_opening: hyrax.HyraxOpening

    def write(self, w: Writer) -> None:
        with w.section("tlookup"):
            self.m_commitment.write(w)
            self.lookup.write(w)
            self.m_opening.write(w)

    @classmethod
    def read(cls, r: Reader, tables: TableSet | LookupTable, columns: Sequence[Column]
             ) -> "TLookupProof":
        tables = _as_set(tables)
        with r.section("tlookup"):
            com = zh.HyraxCommitment.read(r, 1)
            if com.num_vars != num_vars(tables.padded):
                raise r.error("multiplicity commitment of the wrong size")
            proof = lookup.LookupProof.read(r, tables, columns)
            opening = hyrax.HyraxOpening.read(r, 1)
        return cls(com, proof, opening)


def prove(t: Transcript, tables: TableSet | LookupTable, columns: Sequence[Column],
          rng: np.random.Generator | None = None) -> tuple[TLookupProof, LookupClaims]:
    """Prove that the selected entries of every column are rows of its table; returns the
    claims on the columns' X and Y (the caller's to discharge)."""
    tables = _as_set(tables)
    m = lookup.multiplicities(tables, columns)
    n = num_vars(tables.padded)
    # few rows: the row commitments are part of every proof, the opening grows only with log
    com, wit = zh.commit(m, log_cols=max(n // 2, n - 5), rng=rng)
    com.absorb(t)
    t.absorb_bytes(LABEL_M, b"")
    proof, claims = lookup.prove(t, tables, columns, m)
    opening = hyrax.open_claims(wit, com, [claims.multiplicities], t, rng=rng)
    return TLookupProof(com, proof, opening), claims


def verify(t: Transcript, tables: TableSet | LookupTable, columns: Sequence[Column],
           proof: TLookupProof) -> LookupClaims:
    """Check a committed lookup; return the claims on the columns (the caller's)."""
    tables = _as_set(tables)
    if proof.m_commitment.num_vars != num_vars(tables.padded):
        raise VerificationError("tlookup: multiplicity commitment of the wrong size")
    proof.m_commitment.absorb(t)
    t.absorb_bytes(LABEL_M, b"")
    claims = lookup.verify(t, tables, columns, proof.lookup)
    hyrax.verify(proof.m_commitment, [claims.multiplicities], proof.m_opening, t)
    return claims


# ---------------------------------------------------------------- ranges


def _limb_count(span: int, bits: int) -> int:
    return max(1, -(-(span - 1).bit_length() // bits))


@dataclass(frozen=True)
class RangeProof:
    """Direct (no limbs) or limbed: limb commitments, the lookup, one opening per limb."""

    limb_commitments: tuple[zh.HyraxCommitment, ...]
    lookup: TLookupProof
    limb_openings: tuple[hyrax.HyraxOpening, ...]

    def write(self, w: Writer) -> None:
        with w.section("range"):
            w.u32(len(self.limb_commitments))
            for c in self.limb_commitments:
                c.write(w)
            self.lookup.write(w)
            for o in self.limb_openings:
                o.write(w)

    @classmethod
    def read(cls, r: Reader, n: int, lo: int, hi: int, limb_bits: int = 16) -> "RangeProof":
        with r.section("range"):
            k = r.u32()
            expect = 0 if hi - lo <= 1 << limb_bits else 2 * _limb_count(hi - lo, limb_bits)
            if k != expect:
                raise r.error(f"expected {expect} limb commitments, found {k}")
            coms = tuple(zh.HyraxCommitment.read(r, 1) for _ in range(k))
            table, sizes = _range_table(n, lo, hi, limb_bits)
            tl = TLookupProof.read(r, table, shapes(0, sizes))
            openings = tuple(hyrax.HyraxOpening.read(r, 1) for _ in range(k))
        return cls(coms, tl, openings)


def _range_table(n: int, lo: int, hi: int, bits: int) -> tuple[LookupTable, list[int]]:
    if hi - lo <= 1 << bits:
        return LookupTable.range(lo, hi), [n]
    return LookupTable.range(0, 1 << bits), [n] * (2 * _limb_count(hi - lo, bits))


def prove_range(t: Transcript, x: np.ndarray, lo: int, hi: int, limb_bits: int = 16,
                rng: np.random.Generator | None = None) -> tuple[RangeProof, Claim]:
    """Prove lo <= x_i < hi for every entry; return the proof and the claim on (padded) x."""
    x = np.asarray(x, dtype=np.int64).reshape(-1)
    n = x.size
    if not lo < hi or hi - lo >= 1 << 120:
        raise ProverError("a range needs lo < hi and a span below 2^120")
    bad = (x < lo) | (x >= hi)
    if bad.any():
        i = int(np.argmax(bad))
        raise ProverError(f"entry {i} = {int(x[i])} is outside [{lo}, {hi})")
    t.absorb_scalars(LABEL_LIMBS, [n, lo % P, hi % P, limb_bits])
    table, _ = _range_table(n, lo, hi, limb_bits)
    if hi - lo <= 1 << limb_bits:
        proof, claims = prove(t, table, [column(0, x)], rng)
        return RangeProof((), proof, ()), claims.inputs[0]
    limbs = _limbs(x - lo, hi - lo, limb_bits) + _limbs(hi - 1 - x, hi - lo, limb_bits)
    commits = [zh.commit(_padded(v, n), rng=rng) for v in limbs]
    for com, _ in commits:
        com.absorb(t)
    proof, claims = prove(t, table, [column(0, v) for v in limbs], rng)
    rho = claims.inputs[0].point
    vals = [c.value for c in claims.inputs]
    openings = tuple(hyrax.open_claims(w, c, [cl], t, rng=rng)
                     for (c, w), cl in zip(commits, claims.inputs))
    x_val = _range_relation(n, lo, hi, limb_bits, rho, vals)
    return RangeProof(tuple(c for c, _ in commits), proof, openings), Claim(rho, x_val)


def _limbs(a: np.ndarray, span: int, bits: int) -> list[np.ndarray]:
    return [(a >> (bits * k)) & ((1 << bits) - 1) for k in range(_limb_count(span, bits))]


def _range_relation(n: int, lo: int, hi: int, bits: int, rho: Sequence[int],
                    vals: Sequence[int]) -> int | None:
    """X~(rho) implied by the lower limbs, or None if the upper limbs disagree."""
    ind = indicator_mle(n, rho)
    half = len(vals) // 2
    a = sum(v << (bits * k) for k, v in enumerate(vals[:half])) % P
    b = sum(v << (bits * k) for k, v in enumerate(vals[half:])) % P
    x_val = (a + lo * ind) % P
    if ((hi - 1) * ind - x_val - b) % P:
        return None
    return x_val


def verify_range(t: Transcript, n: int, lo: int, hi: int, proof: RangeProof,
                 limb_bits: int = 16) -> Claim:
    """Check a range proof for n entries; return the claim on x for the caller to discharge."""
    if not lo < hi or hi - lo >= 1 << 120:
        raise VerificationError("range: bad bounds")
    t.absorb_scalars(LABEL_LIMBS, [n, lo % P, hi % P, limb_bits])
    table, sizes = _range_table(n, lo, hi, limb_bits)
    if hi - lo <= 1 << limb_bits:
        if proof.limb_commitments or proof.limb_openings:
            raise VerificationError("range: unexpected limbs")
        return verify(t, table, shapes(0, sizes), proof.lookup).inputs[0]
    if len(proof.limb_commitments) != len(sizes) or len(proof.limb_openings) != len(sizes):
        raise VerificationError("range: wrong number of limbs")
    for com in proof.limb_commitments:
        com.absorb(t)
    claims = verify(t, table, shapes(0, sizes), proof.lookup)
    for com, opening, cl in zip(proof.limb_commitments, proof.limb_openings, claims.inputs):
        hyrax.verify(com, [cl], opening, t)
    rho = claims.inputs[0].point
    x_val = _range_relation(n, lo, hi, limb_bits, rho, [c.value for c in claims.inputs])
    if x_val is None:
        raise VerificationError("range: the two limb decompositions disagree")
    return Claim(rho, x_val)


# ---------------------------------------------------------------- rounding


def round_shift(x: np.ndarray, k: int) -> np.ndarray:
    """floor((x + 2^(k-1)) / 2^k): round to nearest, ties towards +infinity (x for k = 0)."""
    x = np.asarray(x, dtype=np.int64)
    return x if k == 0 else (x + (1 << (k - 1))) >> k


@dataclass(frozen=True)
class RoundingProof:
    """R's commitment, the lookups of R in [0, 2^k) and of Y in its range, R's opening and the
    values X~(rho), Y~(rho) at the remainder lookup's point."""

    r_commitment: zh.HyraxCommitment
    remainder: TLookupProof
    output_range: TLookupProof
    r_opening: hyrax.HyraxOpening
    x_value: int
    y_value: int

    def write(self, w: Writer) -> None:
        with w.section("rounding"):
            self.r_commitment.write(w)
            self.remainder.write(w)
            self.output_range.write(w)
            self.r_opening.write(w)
            w.fields([self.x_value, self.y_value])

    @classmethod
    def read(cls, r: Reader, n: int, k: int, y_lo: int, y_hi: int) -> "RoundingProof":
        with r.section("rounding"):
            com = zh.HyraxCommitment.read(r, 1)
            rem = TLookupProof.read(r, LookupTable.range(0, 1 << k), shapes(0, [n]))
            out = TLookupProof.read(r, LookupTable.range(y_lo, y_hi), shapes(0, [n]))
            opening = hyrax.HyraxOpening.read(r, 1)
            xv, yv = r.fields(max_len=2, exact_len=2)
        return cls(com, rem, out, opening, xv, yv)


@dataclass(frozen=True)
class RoundingClaims:
    x: Claim
    y: Claim          # at the same point as x
    y_range: Claim    # on Y, from its range lookup


def _rounding_checks(k: int, y_lo: int, y_hi: int) -> None:
    if not 1 <= k <= 22:
        raise ValueError("rounding shifts of 1 to 22 bits are supported")
    if not y_lo < y_hi or y_hi - y_lo > lookup.MAX_TABLE:
        raise ValueError(f"output range must have 1 to {lookup.MAX_TABLE} values")


def prove_rounding(t: Transcript, x: np.ndarray, k: int, y_lo: int, y_hi: int,
                   rng: np.random.Generator | None = None) -> tuple[RoundingProof, RoundingClaims]:
    """Prove Y = round_shift(X, k) with Y in [y_lo, y_hi); returns claims on X and Y."""
    _rounding_checks(k, y_lo, y_hi)
    x = np.asarray(x, dtype=np.int64).reshape(-1)
    n = x.size
    y = round_shift(x, k)
    if (y < y_lo).any() or (y >= y_hi).any():
        raise ProverError(f"rounded values leave the declared range [{y_lo}, {y_hi})")
    rem = x + (1 << (k - 1)) - (y << k)
    t.absorb_scalars(LABEL_REMAINDER, [n, k, y_lo % P, y_hi % P])
    com, wit = zh.commit(_padded(rem, n), rng=rng)
    com.absorb(t)
    rem_proof, rc = prove(t, LookupTable.range(0, 1 << k), [column(0, rem)], rng)
    out_proof, oc = prove(t, LookupTable.range(y_lo, y_hi), [column(0, y)], rng)
    rho = rc.inputs[0].point
    opening = hyrax.open_claims(wit, com, [rc.inputs[0]], t, rng=rng)
    xv = evaluate(Fr.from_signed(_padded(x, n)), rho)
    yv = evaluate(Fr.from_signed(_padded(y, n)), rho)
    t.absorb_scalars(LABEL_RELATION, [xv, yv])
    proof = RoundingProof(com, rem_proof, out_proof, opening, xv, yv)
    return proof, RoundingClaims(Claim(rho, xv), Claim(rho, yv), oc.inputs[0])


def verify_rounding(t: Transcript, n: int, k: int, y_lo: int, y_hi: int, proof: RoundingProof
                    ) -> RoundingClaims:
    """Check Y = round_shift(X, k), Y in [y_lo, y_hi); return the claims on X and Y."""
    try:
        _rounding_checks(k, y_lo, y_hi)
    except ValueError as e:
        raise VerificationError(f"rounding: {e}") from e
    t.absorb_scalars(LABEL_REMAINDER, [n, k, y_lo % P, y_hi % P])
    proof.r_commitment.absorb(t)
    rc = verify(t, LookupTable.range(0, 1 << k), shapes(0, [n]), proof.remainder)
    oc = verify(t, LookupTable.range(y_lo, y_hi), shapes(0, [n]), proof.output_range)
    hyrax.verify(proof.r_commitment, [rc.inputs[0]], proof.r_opening, t)
    rho = rc.inputs[0].point
    ind = indicator_mle(n, rho)
    if (proof.x_value + (1 << (k - 1)) * ind - (proof.y_value << k) - rc.inputs[0].value) % P:
        raise VerificationError("rounding: X + 2^(k-1) != 2^k Y + R at the check point")
    t.absorb_scalars(LABEL_RELATION, [proof.x_value, proof.y_value])
    return RoundingClaims(Claim(rho, proof.x_value), Claim(rho, proof.y_value), oc.inputs[0])


# ---------------------------------------------------------------- clipping


def clip_table(x_lo: int, x_hi: int, lo: int, hi: int) -> LookupTable:
    """The function table x -> clip(x, lo, hi) over x in [x_lo, x_hi)."""
    xs = np.arange(x_lo, x_hi, dtype=np.int64)
    return LookupTable.function(x_lo, np.clip(xs, lo, hi), name=f"clip[{lo},{hi}]")


def prove_clip(t: Transcript, x: np.ndarray, x_lo: int, x_hi: int, lo: int, hi: int,
               rng: np.random.Generator | None = None) -> tuple[TLookupProof, LookupClaims]:
    """Prove Y = clip(X, lo, hi) for X in [x_lo, x_hi); returns claims on X and Y."""
    x = np.asarray(x, dtype=np.int64).reshape(-1)
    return prove(t, clip_table(x_lo, x_hi, lo, hi), [column(0, x, np.clip(x, lo, hi))], rng)


def verify_clip(t: Transcript, n: int, x_lo: int, x_hi: int, lo: int, hi: int,
                proof: TLookupProof) -> LookupClaims:
    return verify(t, clip_table(x_lo, x_hi, lo, hi), shapes(0, [n]), proof)
