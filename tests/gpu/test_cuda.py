"""The device MSM (gpu.cuda_msm) and its dispatch against the CPU kernels and py_ecc.

Every check below runs twice:

* in numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``), at tiny sizes, in one subprocess
  (this file run as a script), so this pytest process keeps its normal numba configuration;
  the simulator executes the same kernels and the same orchestration, on numpy arrays;
* on a real device, at realistic sizes, when CuPy sees one (skipped otherwise).

Results are compared as affine points (the Jacobian Z differs between paths) and commitments
as bytes.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------- checks (simulator and device)


def _setup():
    from py_ecc import optimized_bn128 as bn

    from gpu import cuda_msm as CM
    from gpu import msm as M
    from zk import curve as ZC
    from zk.field import Fr
    from zk.commit.generators import generators

    return bn, CM, M, ZC, Fr, generators


def _aff(jac):
    from zk import curve as ZC

    return ZC.to_affine(jac)


def _py_ecc_msm(bn, pts, ks):
    acc = bn.Z1
    for p, k in zip(pts, ks):
        acc = bn.add(acc, bn.multiply(p, k % bn.curve_order))
    return acc


def _edge_base(n: int) -> np.ndarray:
    """n points with the identity, a repeated point and a point with its negation."""
    from zk import curve as ZC
    from zk.commit.generators import generators

    P = np.array(generators(b"test/cuda/edge", n))
    P[1] = 0  # the identity
    P[3] = P[2]  # repeated
    P[4] = ZC.from_py_ecc([bn_neg(ZC.to_py_ecc(P[2:3])[0])])[0]  # -P[2]
    return P


def bn_neg(p):
    from py_ecc import optimized_bn128 as bn

    return bn.neg(p)


def check_random_field(big: bool) -> None:
    bn, CM, M, ZC, Fr, generators = _setup()
    rng = np.random.default_rng(1)
    cases = [(1 << 12, None), (1 << 16, None), (1 << 12, 7)] if big else [(5, 2)]
    for n, c in cases:
        P = np.ascontiguousarray(generators(b"test/cuda/random", n))
        s = Fr.random(n, rng)
        got = _aff(CM.msm_mont(P, s, c=c))
        assert (got == _aff(M.msm_mont(P, s))).all(), f"n={n} c={c}"
        got2 = _aff(CM.msm_canonical(P, Fr.canonical_limbs(s), c=c))
        assert (got2 == got).all(), f"canonical n={n} c={c}"
        if not big:
            want = _py_ecc_msm(bn, ZC.to_py_ecc(P), Fr.to_ints(s))
            assert bn.eq(ZC.to_py_ecc(got)[0], want)


def check_edge_scalars(big: bool) -> None:
    bn, CM, M, ZC, Fr, generators = _setup()
    R = bn.curve_order
    n = 600 if big else 8
    P = _edge_base(n)
    ks = [random.Random(2).randrange(R) for _ in range(n)]
    ks[:8] = [R - 1, 5, 1, R - 1, R - 1, 0, (R - 1) // 2, (R + 1) // 2]
    s = Fr.from_ints(ks)
    for c in ([None, 16] if big else [3]):
        got = _aff(CM.msm_mont(P, s, c=c))
        assert (got == _aff(M.msm_mont(P, s))).all(), f"mont c={c}"
    if not big:
        assert bn.eq(ZC.to_py_ecc(got)[0], _py_ecc_msm(bn, ZC.to_py_ecc(P), ks))


def check_many_rows(big: bool) -> None:
    bn, CM, M, ZC, Fr, generators = _setup()
    rng = np.random.default_rng(3)
    m, n, c = (64, 1024, None) if big else (3, 4, 3)
    P = np.ascontiguousarray(generators(b"test/cuda/rows", n))
    s = Fr.random(m * n, rng).reshape(m, n, 4)
    s[0] = 0  # a zero row
    s[2] = Fr.from_ints(rng.integers(0, 1 << 20, size=n).tolist())  # short scalars
    got = _aff(CM.msm_mont(P, s, c=c))
    assert got.shape == (m, 8)
    assert (got == _aff(M.msm_mont(P, s))).all()
    assert not got[0].any()


def check_signed(big: bool) -> None:
    bn, CM, M, ZC, Fr, generators = _setup()
    rng = np.random.default_rng(4)
    m, n = (256, 2048) if big else (4, 8)
    P = _edge_base(n)
    ks = rng.integers(-300, 300, size=(m, n))
    ks[0] = 0
    ks[1, 0] = -(2**40)
    ks[2, :] = 127
    got = _aff(CM.msm_signed(P, ks))
    assert (got == _aff(M.msm_signed(P, ks))).all()
    if not big:
        for row in range(m):
            want = _py_ecc_msm(bn, ZC.to_py_ecc(P), [int(k) for k in ks[row]])
            assert bn.eq(ZC.to_py_ecc(got)[row], want), row
    wide = np.array([[-(2**62), 2**62 + 3] + [0] * (n - 2)])
    assert (_aff(CM.msm_signed(P, wide)) == _aff(M.msm_signed(P, wide))).all(), "int64"


def check_one_bucket(big: bool) -> None:
    """Every bucket empty but one: one long run (many chunks, several summing rounds)."""
    bn, CM, M, ZC, Fr, generators = _setup()
    n = 1 << 16 if big else 70
    P = np.ascontiguousarray(generators(b"test/cuda/bucket", n))
    for k in (3, -3):
        ones = np.full(n, k, dtype=np.int64)
        assert (_aff(CM.msm_signed(P, ones)) == _aff(M.msm_signed(P, ones))).all(), k
    assert not _aff(CM.msm_signed(P, np.zeros(n, dtype=np.int64))).any(), "all zero"
    same = Fr.from_ints([12345] * min(n, 6))  # one bucket per window, full-width scalars
    assert (_aff(CM.msm_mont(P[: len(same)], same, c=4))
            == _aff(M.msm_mont(P[: len(same)], same))).all()


def check_blinded(big: bool) -> None:
    bn, CM, M, ZC, Fr, generators = _setup()
    from gpu import dispatch as D

    rng = np.random.default_rng(5)
    m, n = (128, 1024) if big else (2, 4)
    P = np.ascontiguousarray(generators(b"test/cuda/blind", n))
    H = generators(b"test/cuda/blind/H", 1)
    ks = rng.integers(-128, 128, size=(m, n))
    rho = Fr.random(m, rng)
    rho[0] = Fr.from_ints([Fr.modulus - 1])[0]
    want = _aff(D.msm_signed_blinded(P, ks, H, rho, device="cpu"))
    for key in (None, "test-key"):
        assert (_aff(CM.msm_signed_blinded(P, ks, H, rho, cache_key=key)) == want).all(), key
    vals = Fr.random(m * 2, rng).reshape(m, 2, 4)
    want = _aff(D.msm_mont_blinded(P[:2], vals, H, rho, device="cpu"))
    assert (_aff(CM.msm_mont_blinded(P[:2], vals, H, rho, c=2 if not big else None))
            == want).all(), "mont"


def check_hyrax(big: bool) -> None:
    from zk.commit import hyrax as H
    from zk.field import Fr

    rng = np.random.default_rng(6)
    shapes = [(768, 2304), (3, 100)] if big else [(1, 2)]
    for shape in shapes:
        T = rng.integers(-128, 128, size=shape)
        seed = int(rng.integers(1 << 30))
        c_gpu, w_gpu = H.commit(T, rng=np.random.default_rng(seed), device="gpu")
        c_cpu, w_cpu = H.commit(T, rng=np.random.default_rng(seed), device="cpu")
        assert c_gpu.rows == c_cpu.rows, shape
        assert (w_gpu.matrix == w_cpu.matrix).all() and (w_gpu.blinds == w_cpu.blinds).all()
    V = Fr.random((1 << 16) if big else 1, rng)
    c_gpu, _ = H.commit_field(V, rng=np.random.default_rng(7), device="gpu")
    c_cpu, _ = H.commit_field(V, rng=np.random.default_rng(7), device="cpu")
    assert c_gpu.rows == c_cpu.rows


def check_cache(big: bool) -> None:
    """A cached base is reused, and a key reused for other points does not return stale ones."""
    bn, CM, M, ZC, Fr, generators = _setup()
    n = 256 if big else 3
    P = np.ascontiguousarray(generators(b"test/cuda/cache", n))
    Q = np.ascontiguousarray(generators(b"test/cuda/cache2", n))
    s = np.arange(1, n + 1, dtype=np.int64)
    CM.clear_cache()
    a = CM.device_points(P, "k")
    assert CM.device_points(P, "k") is a
    got = _aff(CM.msm_signed(Q, s, cache_key="k"))  # same key, other points
    assert (got == _aff(M.msm_signed(Q, s))).all()
    assert CM.device_points(Q, "k") is not a


CHECKS = {f.__name__[6:]: f for f in (check_random_field, check_edge_scalars, check_many_rows,
                                       check_signed, check_one_bucket, check_blinded,
                                       check_hyrax, check_cache)}


def _simulator_main() -> int:
    """Run every check in this (simulator) process; one PASS/FAIL line per check."""
    import warnings

    warnings.simplefilter("ignore")  # uint64 wrap-around warnings of the simulated arithmetic
    from gpu import dispatch as D

    assert D.simulator() and D.gpu_available(), "run with NUMBA_ENABLE_CUDASIM=1"
    for name, fn in CHECKS.items():
        t0 = time.perf_counter()
        try:
            fn(False)
            print(f"PASS {name} ({time.perf_counter() - t0:.1f} s)", flush=True)
        except Exception:
            print(f"FAIL {name}\n{traceback.format_exc()}", flush=True)
    return 0


# ---------------------------------------------------------------- pytest


@pytest.fixture(scope="module")
def simulator_output() -> str:
    pytest.importorskip("numba.cuda")
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1",
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    res = subprocess.run([sys.executable, __file__], env=env, capture_output=True, text=True,
                         timeout=900, cwd=ROOT)
    return res.stdout + res.stderr


@pytest.mark.parametrize("name", list(CHECKS))
def test_simulator(simulator_output: str, name: str) -> None:
    assert f"PASS {name}" in simulator_output, simulator_output


def _real_device() -> bool:
    from gpu import dispatch as D

    return D.cupy_device_available() and not D.simulator()


@pytest.mark.parametrize("name", list(CHECKS))
def test_real_gpu(name: str) -> None:
    if not _real_device():
        pytest.skip("no CUDA device visible to CuPy")
    CHECKS[name](True)


def test_field_kernels_in_simulator() -> None:
    """The per-element CUDA kernels (field product, Jacobian addition and doubling)."""
    pytest.importorskip("numba.cuda")
    script = """
import warnings; warnings.simplefilter("ignore")
import numpy as np
from numba import cuda
from gpu import cuda_kernels as CK
from zk import curve as ZC
from zk.field import Fr
from zk.commit.generators import generators
rng = np.random.default_rng(0)
a, b = Fr.random(6, rng), Fr.random(6, rng)
a[0] = 0
out = np.zeros((6, 4), np.uint64)
CK.k_vmul[2, 4](Fr.desc, a, b, out)
assert (out == Fr.mul(a, b)).all(), "vmul"
P = generators(b"test/cuda", 4).copy()
P[2] = 0
J = ZC.to_jacobian(P)
o = np.zeros((4, 12), np.uint64)
for other in (J[::-1].copy(), J):
    CK.k_jac_add[1, 4](J, other, o)
    assert (ZC.to_affine(o) == ZC.point_add(P, ZC.to_affine(other))).all(), "jac_add"
CK.k_jac_double[1, 4](J, o)
assert (ZC.to_affine(o) == ZC.point_add(P, P)).all(), "double"
print("CUDASIM-OK")
"""
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    res = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                         text=True, timeout=600, cwd=ROOT)
    assert res.returncode == 0 and "CUDASIM-OK" in res.stdout, res.stdout + res.stderr


def test_dispatch_without_gpu() -> None:
    from gpu import dispatch as D
    from zk.commit import hyrax as H

    if _real_device():
        pytest.skip("a GPU is present")
    assert D.resolve("auto", 1 << 30) == "cpu"
    assert D.resolve("cpu") == "cpu"
    with pytest.raises(ValueError):
        D.resolve("tpu")
    if not D.simulator():
        with pytest.raises(D.NoDeviceError, match="CUDA device"):
            D.resolve("gpu")
        with pytest.raises(D.NoDeviceError):
            H.commit(np.arange(4), device="gpu")
    # auto and cpu are the same commitment
    c1, _ = H.commit(np.arange(6) - 3, rng=np.random.default_rng(0))
    c2, _ = H.commit(np.arange(6) - 3, rng=np.random.default_rng(0), device="cpu")
    assert c1.rows == c2.rows


def test_auto_prefers_a_device_for_large_batches(monkeypatch) -> None:
    from gpu import dispatch as D

    monkeypatch.setattr(D, "cupy_device_available", lambda: True)
    assert D.resolve("auto", D.AUTO_MIN_WORK) == "gpu"
    assert D.resolve("auto", D.AUTO_MIN_WORK - 1) == "cpu"


def test_bench_without_gpu_says_so() -> None:
    if _real_device():
        pytest.skip("a GPU is present")
    res = subprocess.run([sys.executable, str(ROOT / "bench" / "msm.py"), "--device", "gpu"],
                         capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    assert "no GPU" in res.stdout


def test_window_choice() -> None:
    from gpu import cuda_msm as CM

    assert CM.window_bits(1 << 20, 253) in range(14, 19)
    assert CM.window_bits(1056, 9) <= 8
    for n in (1, 2**10, 2**16, 2**22):
        assert 2 <= CM.window_bits(n, 253) <= 20


if __name__ == "__main__":
    sys.exit(_simulator_main())


def test_kernels_compile_under_numpy_without_row_stack() -> None:
    """numpy 2.5 removed ``np.row_stack``; numba-cuda (0.30) still registers an overload for it
    when it loads its registries, i.e. at the first kernel compile, so every compile failed on the
    GPU machines. Importing gpu.cuda_kernels must leave numba-cuda loadable on such a numpy: the
    check removes the alias (as numpy 2.5 does) and makes numba-cuda take its numpy-2 branch,
    then loads the registry module, in a simulator subprocess."""
    script = """
import numpy as np
if hasattr(np, "row_stack"):
    del np.row_stack
import numba.cuda.np.numpy_support as support
support.numpy_version = max(support.numpy_version, (2, 5))  # the branch numpy 2.x takes
import gpu.cuda_kernels  # noqa: F401
import numba.cuda.np.arrayobj  # noqa: F401  (the module that reads np.row_stack)
print("REGISTRIES-OK")
"""
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    res = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                         text=True, timeout=300, cwd=ROOT)
    assert res.returncode == 0 and "REGISTRIES-OK" in res.stdout, res.stdout + res.stderr
