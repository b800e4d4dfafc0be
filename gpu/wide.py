"""64-bit limb primitives for the CPU kernels: 64x64 -> 128-bit multiply-accumulate, add with
carry and subtract with borrow.

numba has no 128-bit integer type, so these are LLVM intrinsics: each zero-extends its uint64
operands to i128, computes there, and returns the low and high 64-bit words. LLVM lowers that to
one `mul`/`mulx` and an add chain, which is what a hand-written C or assembly kernel would do.
They can only be called from numba-compiled code (the CUDA backend has its own versions).
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.extending import intrinsic

_I64 = ir.IntType(64)
_I128 = ir.IntType(128)
_PAIR = types.UniTuple(types.uint64, 2)


def _split(context, builder, signature, value):
    lo = builder.trunc(value, _I64)
    hi = builder.trunc(builder.lshr(value, ir.Constant(_I128, 64)), _I64)
    return context.make_tuple(builder, signature.return_type, [lo, hi])


@intrinsic
def mac(typingctx, a, b, c, carry):
    """Return (lo, hi) of a + b*c + carry; never overflows 128 bits."""
    sig = _PAIR(types.uint64, types.uint64, types.uint64, types.uint64)

    def codegen(context, builder, signature, args):
        a_, b_, c_, k_ = (builder.zext(v, _I128) for v in args)
        total = builder.add(builder.add(builder.mul(b_, c_), a_), k_)
        return _split(context, builder, signature, total)

    return sig, codegen


@intrinsic
def adc(typingctx, a, b, carry):
    """Return (sum mod 2^64, carry out) of a + b + carry, with carry in {0, 1}."""
    sig = _PAIR(types.uint64, types.uint64, types.uint64)

    def codegen(context, builder, signature, args):
        a_, b_, k_ = (builder.zext(v, _I128) for v in args)
        return _split(context, builder, signature, builder.add(builder.add(a_, b_), k_))

    return sig, codegen


@intrinsic
def sbb(typingctx, a, b, borrow):
    """Return (difference mod 2^64, borrow out in {0, 1}) of a - b - borrow."""
    sig = _PAIR(types.uint64, types.uint64, types.uint64)

    def codegen(context, builder, signature, args):
        a_, b_, k_ = (builder.zext(v, _I128) for v in args)
        diff = builder.sub(builder.sub(a_, b_), k_)
        lo = builder.trunc(diff, _I64)
        # the i128 difference is negative exactly when a borrow occurred: take its sign bit
        out = builder.trunc(builder.lshr(diff, ir.Constant(_I128, 127)), _I64)
        return context.make_tuple(builder, signature.return_type, [lo, out])

    return sig, codegen
