"""Transparent Pedersen generators for BN254 G1 by hash-to-curve (try-and-increment).

Generator i of the set named ``label`` is the first point found for ctr = 0, 1, 2, ...::

    x = SHA3-512(DOMAIN || len(label) || label || i (u64) || ctr (u32)) mod q
    if x^3 + 3 is a square in Fq: the point (x, y) with the even canonical y

No one knows a discrete-log relation between any two generators (or to the standard generator),
which is all Pedersen binding needs; there is no trusted setup, and any verifier recomputes the
same points from the label. About half the candidates succeed, so a set of n costs about 2n
hashes and n square roots (vectorised). Sets are cached per label and grown on demand: the
first n generators of a label never depend on how many were asked for.
"""

from __future__ import annotations

import hashlib
import threading

import numpy as np

from gpu import curve as C

__all__ = ["DOMAIN", "generators", "generator"]

DOMAIN = b"zkfhe-attention/generators/bn254-g1/try-and-increment/v1"
_Q = C._Q
_cache: dict[bytes, np.ndarray] = {}
_lock = threading.Lock()


def _candidates(label: bytes, idx: np.ndarray, ctr: np.ndarray) -> np.ndarray:
    prefix = DOMAIN + len(label).to_bytes(4, "little") + label
    enc = np.zeros((len(idx), 32), dtype=np.uint8)
    for row, (i, c) in enumerate(zip(idx.tolist(), ctr.tolist())):
        h = hashlib.sha3_512(prefix + i.to_bytes(8, "little") + c.to_bytes(4, "little"))
        x = int.from_bytes(h.digest(), "little") % _Q
        enc[row] = np.frombuffer(x.to_bytes(32, "little"), dtype=np.uint8)
    return enc


def _derive(label: bytes, lo: int, hi: int) -> np.ndarray:
    out = np.empty((hi - lo, 8), dtype=np.uint64)
    todo = np.arange(lo, hi, dtype=np.int64)
    ctr = np.zeros(hi - lo, dtype=np.int64)
    while todo.size:
        enc = _candidates(label, todo, ctr)
        pts = np.empty((todo.size, 8), dtype=np.uint64)
        status = np.empty(todo.size, dtype=np.uint8)
        C.vdecompress(enc, pts, status)
        ok = status == 0
        out[todo[ok] - lo] = pts[ok]
        todo = todo[~ok]
        ctr = ctr[~ok] + 1
    return out


def generators(label: bytes, n: int) -> np.ndarray:
    """The first n generators of the set ``label`` as an (n, 8) affine array (read-only)."""
    with _lock:
        have = _cache.get(label)
        if have is None or have.shape[0] < n:
            lo = 0 if have is None else have.shape[0]
            grow = max(n, 2 * lo)
            new = _derive(label, lo, grow)
            have = new if have is None else np.concatenate([have, new])
            have.setflags(write=False)
            _cache[label] = have
    return have[:n]


def generator(label: bytes) -> np.ndarray:
    """A single generator (one affine row) of its own set ``label``."""
    return generators(label, 1)
