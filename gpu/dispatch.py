"""Where a multi-scalar multiplication runs: the one place that chooses CPU or GPU.

``device`` is one of

* ``"cpu"``: the numba CPU kernels of :mod:`gpu.msm`;
* ``"gpu"``: the device Pippenger of :mod:`gpu.cuda_msm` (CuPy arrays on a CUDA device, or
  numba's CUDA simulator when ``NUMBA_ENABLE_CUDASIM=1``); raises :class:`NoDeviceError` when
  neither is there, never runs on the CPU instead;
* ``"auto"`` (the default): the GPU when CuPy sees a CUDA device and the batch has at least
  :data:`AUTO_MIN_WORK` scalar-point products (below that, launch overhead exceeds the work),
  the CPU otherwise. The simulator is never chosen automatically.

Both paths compute the same group elements, so the affine results (and every commitment made
from them) are identical bit for bit whichever runs. Results are Jacobian ``(m, 12)`` arrays
(their Z coordinates may differ between the paths; convert with :func:`gpu.curve.vjac_to_affine`).
Nothing here imports CuPy or numba.cuda until a GPU path is asked for.
"""

from __future__ import annotations

from collections.abc import Hashable

import numba
import numpy as np

from gpu import curve as C
from gpu import msm as M

__all__ = ["AUTO_MIN_WORK", "DEVICES", "NoDeviceError", "cupy_device_available",
           "gpu_available", "resolve", "msm_mont", "msm_canonical", "msm_signed",
           "msm_signed_blinded", "msm_mont_blinded"]

DEVICES = ("auto", "cpu", "gpu")
AUTO_MIN_WORK = 1 << 14
"""Smallest m * n that ``device="auto"`` sends to a GPU."""


class NoDeviceError(RuntimeError):
    """``device="gpu"`` was asked for on a machine where no CUDA device is usable."""


def cupy_device_available() -> bool:
    """True when CuPy is installed and sees at least one CUDA device."""
    try:
        import cupy  # noqa: PLC0415

        return bool(cupy.cuda.is_available())
    except Exception:  # ImportError, or a CUDA driver/runtime error
        return False


def simulator() -> bool:
    """True when numba's CUDA simulator is on (``NUMBA_ENABLE_CUDASIM=1``)."""
    return bool(numba.config.ENABLE_CUDASIM)


def gpu_available() -> bool:
    """True when the GPU path can run: CuPy sees a device, or the simulator is on."""
    return simulator() or cupy_device_available()


def resolve(device: str, work: int = AUTO_MIN_WORK) -> str:
    """``"cpu"`` or ``"gpu"`` for a requested device and a batch of ``work`` = m * n products."""
    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    if device == "auto":
        return "gpu" if work >= AUTO_MIN_WORK and cupy_device_available() else "cpu"
    if device == "gpu" and not gpu_available():
        raise NoDeviceError("device='gpu' needs a CUDA device visible to CuPy (cupy-cuda13x and "
                            "numba-cuda on a machine with an NVIDIA GPU), or NUMBA_ENABLE_CUDASIM=1"
                            " for numba's simulator; none is available here")
    return device


def _work(points: np.ndarray, scalars: np.ndarray, per: int) -> int:
    return int(np.prod(np.shape(scalars))) // per


def msm_mont(points: np.ndarray, scalars: np.ndarray, device: str = "auto", *,
             c: int | None = None, cache_key: Hashable | None = None) -> np.ndarray:
    """Jacobian (m, 12) results of m MSMs with Fr Montgomery scalars (n, 4) or (m, n, 4).

    ``cache_key`` (GPU only) names the points so that they are uploaded once (:mod:`gpu.cuda_msm`).
    """
    if resolve(device, _work(points, scalars, 4)) == "cpu":
        return M.msm_mont(points, scalars, c=c)
    from gpu import cuda_msm  # noqa: PLC0415

    return cuda_msm.msm_mont(points, scalars, c=c, cache_key=cache_key)


def msm_canonical(points: np.ndarray, scalars: np.ndarray, device: str = "auto", *,
                  c: int | None = None, cache_key: Hashable | None = None) -> np.ndarray:
    """Like :func:`msm_mont` for canonical scalar limbs (each < r)."""
    if resolve(device, _work(points, scalars, 4)) == "cpu":
        return M.msm_canonical(points, scalars, c=c)
    from gpu import cuda_msm  # noqa: PLC0415

    return cuda_msm.msm_canonical(points, scalars, c=c, cache_key=cache_key)


def msm_signed(points: np.ndarray, scalars: np.ndarray, device: str = "auto", *,
               c: int | None = None, cache_key: Hashable | None = None) -> np.ndarray:
    """Jacobian (m, 12) results for signed integer scalars (n,) or (m, n)."""
    if resolve(device, _work(points, scalars, 1)) == "cpu":
        return M.msm_signed(points, scalars, c=c)
    from gpu import cuda_msm  # noqa: PLC0415

    return cuda_msm.msm_signed(points, scalars, c=c, cache_key=cache_key)


def msm_signed_blinded(points: np.ndarray, scalars: np.ndarray, H: np.ndarray,
                       blinds: np.ndarray, device: str = "auto", *,
                       cache_key: Hashable | None = None) -> np.ndarray:
    """Jacobian (m, 12) rows sum_i k[row, i] P_i + rho_row H: signed integers k (m, n), Fr
    Montgomery blinds rho (m, 4) and one more point H (a hiding Pedersen commitment per row)."""
    m = np.asarray(blinds).reshape(-1, 4).shape[0]
    if resolve(device, _work(points, scalars, 1)) == "cpu":
        n = points.shape[0]
        vals = M.msm_signed(points, np.asarray(scalars).reshape(m, n)) if n else M._identities(m)
        rho = M.msm_mont(H, np.ascontiguousarray(blinds).reshape(m, 1, 4))
        out = np.empty_like(vals)
        C.vjac_add(vals, rho, out)
        return out
    from gpu import cuda_msm  # noqa: PLC0415

    return cuda_msm.msm_signed_blinded(points, scalars, H, blinds, cache_key=cache_key)


def msm_mont_blinded(points: np.ndarray, scalars: np.ndarray, H: np.ndarray, blinds: np.ndarray,
                     device: str = "auto", *, cache_key: Hashable | None = None) -> np.ndarray:
    """Jacobian (m, 12) rows sum_i k[row, i] P_i + rho_row H for Fr Montgomery k (m, n, 4) and
    blinds rho (m, 4) (a hiding Pedersen commitment per row)."""
    n = points.shape[0]
    m = np.asarray(blinds).reshape(-1, 4).shape[0]
    if resolve(device, m * n) == "cpu":
        scal = np.empty((m, n + 1, 4), dtype=np.uint64)
        scal[:, :n] = np.asarray(scalars).reshape(m, n, 4)
        scal[:, n] = np.asarray(blinds).reshape(m, 4)
        return M.msm_mont(np.concatenate([points, H]), scal)
    from gpu import cuda_msm  # noqa: PLC0415

    return cuda_msm.msm_mont_blinded(points, scalars, H, blinds, cache_key=cache_key)
