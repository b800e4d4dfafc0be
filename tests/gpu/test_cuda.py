"""CUDA kernels (gpu.cuda_kernels) against the CPU kernels.

The simulator test runs in a subprocess with NUMBA_ENABLE_CUDASIM=1, so this pytest process
keeps its normal numba configuration for every other test. Real-device tests skip without a
GPU (CuPy not installed or no device).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

SIM_SCRIPT = textwrap.dedent("""
    import warnings
    warnings.simplefilter("ignore")  # uint64 wrap-around warnings of the simulated arithmetic
    import numpy as np
    from numba import cuda
    from gpu import cuda_kernels as CK, cuda_msm as CM, msm as M
    from zk import curve as ZC
    from zk.field import Fr
    from zk.commit.generators import generators
    assert cuda.is_available() and CM.gpu_available()
    rng = np.random.default_rng(0)
    a, b = Fr.random(6, rng), Fr.random(6, rng)
    a[0] = 0
    out = cuda.to_device(np.zeros((6, 4), np.uint64))
    CK.k_vmul[2, 4](Fr.desc, cuda.to_device(a), cuda.to_device(b), out)
    assert (out.copy_to_host() == Fr.mul(a, b)).all(), "vmul"
    P = generators(b"test/cuda", 4).copy()
    P[2] = 0  # the identity
    J = ZC.to_jacobian(P)
    o = cuda.to_device(np.zeros((4, 12), np.uint64))
    for other in (J[::-1].copy(), J):  # distinct points, identity, and P + P
        CK.k_jac_add[1, 32](cuda.to_device(J), cuda.to_device(other), o)
        want = ZC.point_add(P, ZC.to_affine(other))
        assert (ZC.to_affine(o.copy_to_host()) == want).all(), "jac_add"
    CK.k_jac_double[1, 32](cuda.to_device(J), o)
    assert (ZC.to_affine(o.copy_to_host()) == ZC.point_add(P, P)).all(), "double"
    s = Fr.from_ints([0, 1, 12345, 2**40 + 7])
    got = ZC.to_affine(CM.msm_mont(P, s, device="gpu"))
    assert (got == ZC.to_affine(M.msm_mont(P, s))).all(), "msm"
    s2 = Fr.from_ints([Fr.modulus - 1, 3, 5, 7])[:2]
    got = ZC.to_affine(CM.msm_mont(P[:2].copy(), s2, device="gpu"))
    assert (got == ZC.to_affine(M.msm_mont(P[:2].copy(), s2))).all(), "msm r-1"
    print("CUDASIM-OK")
""")


def test_cuda_kernels_in_simulator():
    pytest.importorskip("numba.cuda")
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    res = subprocess.run([sys.executable, "-c", SIM_SCRIPT], env=env, capture_output=True,
                         text=True, timeout=600)
    assert res.returncode == 0 and "CUDASIM-OK" in res.stdout, res.stdout + res.stderr


def test_device_selection_without_gpu():
    from gpu import cuda_msm as CM

    if CM.cupy_device_available():
        pytest.skip("a GPU is present")
    assert CM.resolve("auto") == "cpu"
    assert CM.resolve("cpu") == "cpu"
    with pytest.raises(ValueError):
        CM.resolve("tpu")
    if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1":
        with pytest.raises(RuntimeError):
            CM.resolve("gpu")


def test_real_gpu_matches_cpu():
    from gpu import cuda_msm as CM

    if not CM.cupy_device_available():
        pytest.skip("no CUDA device visible to CuPy")
    from gpu import msm as M
    from zk import curve as ZC
    from zk.field import Fr
    from zk.commit.generators import generators

    rng = np.random.default_rng(1)
    P = np.ascontiguousarray(generators(b"test/cuda", 1024))
    s = Fr.random(1024, rng)
    assert (ZC.to_affine(CM.msm_mont(P, s, device="gpu"))
            == ZC.to_affine(M.msm_mont(P, s))).all()
