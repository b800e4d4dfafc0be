"""The field and curve helpers of :mod:`gpu.field` / :mod:`gpu.curve`, compiled for CUDA.

There is one source of truth for the arithmetic: this module takes the Python functions behind
the CPU kernels, rebinds their globals to this module (so ``mul`` calls the CUDA ``mul``,
``F.one`` this module's ``one``, and ``mac``/``adc``/``sbb`` the versions below) and compiles
each with ``numba.cuda.jit(device=True)``. The CPU limb primitives are LLVM i128 intrinsics
that the CUDA target lacks. Here the high word of a 64 x 64-bit product is libdevice's
``umul64hi`` (one ``mul.hi.u64``) on a real device; numba's CUDA simulator
(``NUMBA_ENABLE_CUDASIM=1``, where the CI tests run) has no libdevice, so there it is a 32-bit
split of the product, exact as well. Every constant is a uint64 so numba never widens to float.

Kernels here are the small per-element ones the tests use (``k_vmul``, ``k_jac_add``,
``k_jac_double``); the MSM kernels are in :mod:`gpu.cuda_msm`.
"""

from __future__ import annotations

import sys
import types

import numba
import numpy as np
from numba import cuda

# numba-cuda (0.30.4 seen) registers an overload for ``np.row_stack`` whenever numpy >= 2.0, the
# first time it compiles a kernel; numpy 2.5 removed that alias of ``np.vstack``, so every kernel
# compile failed with AttributeError on the GPU machines. Restoring the alias (the same function
# numpy 2.0-2.4 exported under that name) is the narrowest fix; it changes nothing where it exists.
if not hasattr(np, "row_stack"):
    np.row_stack = np.vstack

from gpu import curve as _curve
from gpu import field as _field
from gpu import msm as _msm

U64 = np.uint64
ZERO = U64(0)
ONE = U64(1)
_M32 = U64(0xFFFFFFFF)
_S32 = U64(32)

_FIELD_FUNCS = ["load", "store", "_reduce_once", "add", "sub", "neg", "is_zero", "_cios_round",
                "mul", "one", "to_mont", "from_mont", "pow_limbs", "inv"]
_CURVE_FUNCS = ["eq", "jac_identity", "jac_from_affine", "jac_double", "jac_add_affine",
                "jac_add", "jac_neg", "jac_load", "jac_store", "aff_load", "aff_store",
                "aff_is_inf", "jac_to_affine", "scalar_mul", "on_curve_affine"]

_MSM_FUNCS = ["_gt", "_sub_limbs"]

DQ = _curve.DQ
DR = _msm.DR
E0 = _curve.E0
B_MONT = _curve.B_MONT
SQRT_EXP = _curve.SQRT_EXP


SIMULATOR = bool(numba.config.ENABLE_CUDASIM)
"""True under numba's CUDA simulator (the kernels then run on the CPU, on numpy arrays)."""

if SIMULATOR:

    @cuda.jit(device=True)
    def _mulhi(b, c):
        """High word of b*c from four 32 x 32-bit products."""
        bl = b & _M32
        bh = b >> _S32
        cl = c & _M32
        ch = c >> _S32
        lh = bl * ch
        hl = bh * cl
        mid = ((bl * cl) >> _S32) + (lh & _M32) + (hl & _M32)
        return bh * ch + (lh >> _S32) + (hl >> _S32) + (mid >> _S32)

else:
    from numba.cuda import libdevice

    @cuda.jit(device=True)
    def _mulhi(b, c):
        # libdevice declares umul64hi on int64; the casts only reinterpret the bits
        return U64(libdevice.umul64hi(np.int64(b), np.int64(c)))


@cuda.jit(device=True)
def mac(a, b, c, carry):
    """(lo, hi) of a + b*c + carry."""
    lo = b * c
    hi = _mulhi(b, c)
    lo2 = lo + a
    if lo2 < lo:
        hi += ONE
    lo3 = lo2 + carry
    if lo3 < lo2:
        hi += ONE
    return lo3, hi


@cuda.jit(device=True)
def adc(a, b, carry):
    s = a + b
    c1 = ONE if s < a else ZERO
    s2 = s + carry
    c2 = ONE if s2 < s else ZERO
    return s2, c1 | c2


@cuda.jit(device=True)
def sbb(a, b, borrow):
    d = a - b
    b1 = ONE if a < b else ZERO
    d2 = d - borrow
    b2 = ONE if d < borrow else ZERO
    return d2, b1 | b2


def _rebind(fn):
    """A copy of the Python function behind a CPU kernel, with this module as its globals."""
    py = getattr(fn, "py_func", fn)
    return types.FunctionType(py.__code__, globals(), py.__name__, py.__defaults__,
                              py.__closure__)


F = sys.modules[__name__]  # curve code calls F.one(...), F.inv(...): resolve them here

for _name in _FIELD_FUNCS:
    globals()[_name] = cuda.jit(device=True)(_rebind(getattr(_field, _name)))
for _name in _CURVE_FUNCS:
    globals()[_name] = cuda.jit(device=True)(_rebind(getattr(_curve, _name)))
for _name in _MSM_FUNCS:
    globals()[_name] = cuda.jit(device=True)(_rebind(getattr(_msm, _name)))


@cuda.jit
def k_vmul(d, a, b, out):
    i = cuda.grid(1)
    if i < a.shape[0]:
        store(out, i, mul(load(a, i), load(b, i), d))  # noqa: F821 (bound above)


@cuda.jit
def k_jac_add(a, b, out):
    i = cuda.grid(1)
    if i < a.shape[0]:
        jac_store(out, i, jac_add(jac_load(a, i), jac_load(b, i), DQ))  # noqa: F821


@cuda.jit
def k_jac_double(a, out):
    i = cuda.grid(1)
    if i < a.shape[0]:
        jac_store(out, i, jac_double(jac_load(a, i), DQ))  # noqa: F821
