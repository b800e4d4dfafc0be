"""Device selection and the GPU MSM path.

``device`` is ``"cpu"`` (the numba CPU kernels of :mod:`gpu.msm`), ``"gpu"`` (CUDA kernels of
:mod:`gpu.cuda_kernels`; CuPy owns the device memory when it is installed, numba device arrays
otherwise, which is what the CUDA simulator uses) or ``"auto"``: the GPU when CuPy sees a
device, else the CPU. Nothing here imports CuPy or numba.cuda until a GPU path is used.

The GPU MSM is the simple data-parallel form: one thread per point computes k_i P_i, then a
tree of pairwise Jacobian additions sums them, one kernel launch per level. It is correct on
any size and is what the simulator tests check against the CPU path; a bucketed Pippenger on
the device is future work (see the issue's closing note).
"""

from __future__ import annotations

import os

import numpy as np

from gpu import msm as M

__all__ = ["cupy_device_available", "gpu_available", "resolve", "msm_mont", "msm_canonical"]

_THREADS = 128


def cupy_device_available() -> bool:
    """True when CuPy is installed and sees at least one CUDA device."""
    try:
        import cupy  # noqa: PLC0415

        return bool(cupy.cuda.is_available())
    except Exception:  # ImportError, or a CUDA driver/runtime error
        return False


def gpu_available() -> bool:
    """True when the GPU path can run: a real device, or numba's CUDA simulator."""
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        return True
    if cupy_device_available():
        return True
    try:
        from numba import cuda  # noqa: PLC0415

        return bool(cuda.is_available())
    except Exception:
        return False


def resolve(device: str) -> str:
    """'cpu' or 'gpu' for a requested device ('auto' picks the GPU if CuPy sees one)."""
    if device == "auto":
        return "gpu" if cupy_device_available() else "cpu"
    if device not in ("cpu", "gpu"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'gpu', got {device!r}")
    if device == "gpu" and not gpu_available():
        raise RuntimeError("no CUDA device (and NUMBA_ENABLE_CUDASIM is not set)")
    return device


def _to_device(a: np.ndarray):
    try:
        import cupy  # noqa: PLC0415

        if cupy.cuda.is_available():
            return cupy.asarray(a)
    except Exception:
        pass
    from numba import cuda  # noqa: PLC0415

    return cuda.to_device(a)


def _to_host(a) -> np.ndarray:
    if hasattr(a, "copy_to_host"):
        return a.copy_to_host()
    return a.get()  # CuPy


def _empty(shape) -> object:
    return _to_device(np.zeros(shape, dtype=np.uint64))


def _gpu_msm_canonical(points: np.ndarray, limbs: np.ndarray) -> np.ndarray:
    from gpu import cuda_kernels as CK  # noqa: PLC0415

    n = points.shape[0]
    pts = _to_device(np.ascontiguousarray(points, dtype=np.uint64))
    sc = _to_device(np.ascontiguousarray(limbs, dtype=np.uint64))
    cur = _empty((n, 12))
    blocks = (n + _THREADS - 1) // _THREADS
    CK.k_scalar_mul[blocks, _THREADS](pts, sc, cur)
    while n > 1:
        half = (n + 1) // 2
        nxt = _empty((half, 12))
        CK.k_sum_pairs[(half + _THREADS - 1) // _THREADS, _THREADS](cur, n, nxt)
        cur, n = nxt, half
    return _to_host(cur)[:1]


def msm_canonical(points: np.ndarray, limbs: np.ndarray, device: str = "auto") -> np.ndarray:
    """Jacobian (m, 12) results for canonical scalar limbs (n, 4) or (m, n, 4)."""
    dev = resolve(device)
    if dev == "cpu":
        return M.msm_canonical(points, limbs)
    n = points.shape[0]
    s = np.ascontiguousarray(limbs, dtype=np.uint64).reshape(-1, n, 4)
    if n == 0:
        return M._identities(1)
    return np.concatenate([_gpu_msm_canonical(points, s[r]) for r in range(s.shape[0])])


def msm_mont(points: np.ndarray, scalars: np.ndarray, device: str = "auto") -> np.ndarray:
    """Jacobian (m, 12) results for Fr Montgomery scalars (n, 4) or (m, n, 4)."""
    dev = resolve(device)
    if dev == "cpu":
        return M.msm_mont(points, scalars)
    from gpu import field as F  # noqa: PLC0415

    s = np.ascontiguousarray(scalars, dtype=np.uint64)
    canon = np.empty((s.size // 4, 4), dtype=np.uint64)
    F.vfrom_mont(M.DR, s.reshape(-1, 4), canon)
    return msm_canonical(points, canon.reshape(s.shape), device="gpu")
