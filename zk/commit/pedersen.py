"""Hiding Pedersen vector commitments in BN254 G1: C = <v, G> + rho * H.

Binding under discrete log in G1 (no known relation among G_0, ..., G_{n-1}, H, U: all come
from :mod:`zk.commit.generators`); perfectly hiding for uniform rho. ``U`` is one more independent
generator, used by inner-product arguments to carry the inner product. Many vectors of one
length are committed by one batched MSM call (one commitment per row). ``device`` picks where the
MSMs run (``"auto"``, ``"cpu"`` or ``"gpu"``; see :mod:`gpu.dispatch`); the commitments are the
same bytes on either.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from gpu import curve as C
from gpu import dispatch as D
from gpu import small_msm as S
from zk.commit.generators import generator, generators

__all__ = ["DEFAULT_LABEL", "PedersenKey", "commit_rows", "commit_rows_ints", "commit_scalars",
           "commit_slices"]

DEFAULT_LABEL = b"zkfhe-attention/hyrax/bn254/v1"
"""The project's generator set: Hyrax rows use its G vector; every committed scalar is v U + r H
with its U and H, so all commitments of a proof share one blinding generator."""


@dataclass(frozen=True)
class PedersenKey:
    """Generators G_0..G_{n-1}, H (blinding) and U (inner products) of the set ``label``."""

    label: bytes
    n: int
    G: np.ndarray = field(repr=False, compare=False)
    H: np.ndarray = field(repr=False, compare=False)
    U: np.ndarray = field(repr=False, compare=False)

    @classmethod
    def derive(cls, label: bytes, n: int) -> "PedersenKey":
        return cls(label, n, generators(label + b"/G", n), generator(label + b"/H"),
                   generator(label + b"/U"))

    def extended(self) -> np.ndarray:
        """[G_0, ..., G_{n-1}, U, H] as one (n + 2, 8) affine array (for combined MSMs)."""
        return np.concatenate([self.G, self.U, self.H])


def _affine(jac: np.ndarray) -> np.ndarray:
    aff = np.empty((jac.shape[0], 8), dtype=np.uint64)
    C.vjac_to_affine(jac, aff)
    return aff


def commit_rows(key: PedersenKey, values: np.ndarray, blinds: np.ndarray,
                device: str = "auto") -> np.ndarray:
    """Affine (m, 8) commitments of the rows of an (m, n, 4) Fr Montgomery array."""
    m = values.shape[0]
    return _affine(D.msm_mont_blinded(key.G, values.reshape(m, key.n, 4), key.H, blinds, device,
                                      cache_key=(key.label, key.n)))


def commit_rows_ints(key: PedersenKey, values: np.ndarray, blinds: np.ndarray,
                     device: str = "auto") -> np.ndarray:
    """Affine (m, 8) commitments of the rows of an (m, n) signed integer array (fast path:
    the integer MSM needs only as many windows as the largest |value| has bits)."""
    m = values.shape[0]
    return _affine(D.msm_signed_blinded(key.G, values.reshape(m, key.n), key.H, blinds, device,
                                        cache_key=(key.label, key.n)))


_COMBS: dict[bytes, np.ndarray] = {}


def _combs(key: PedersenKey) -> np.ndarray:
    """Comb tables of U and H (built once per generator set; see :mod:`gpu.small_msm`)."""
    tab = _COMBS.get(key.label)
    if tab is None:
        tab = np.concatenate([S.fixed_table(key.U), S.fixed_table(key.H)])
        tab.setflags(write=False)
        _COMBS[key.label] = tab
    return tab


def commit_scalars(key: PedersenKey, values: Sequence[int], blinds: Sequence[int]) -> np.ndarray:
    """Affine (m, 8) commitments v_i U + r_i H of ints in [0, r) (fixed-base combs, serial:
    the many small batches of a proof)."""
    m = len(values)
    scal = np.empty((m, 2, 4), dtype=np.uint64)
    scal[:, 0] = S.limbs(values)
    scal[:, 1] = S.limbs(blinds)
    return S.fixed_msm(_combs(key), scal)


def commit_slices(gens: np.ndarray, H: np.ndarray, values: Sequence[int], blind: int
                  ) -> np.ndarray:
    """One affine commitment <values, gens[:k]> + blind H for ints in [0, r) (serial Straus)."""
    k = len(values)
    scal = S.limbs(list(values) + [blind]).reshape(1, k + 1, 4)
    return S.straus(np.concatenate([gens[:k], H]), scal)
