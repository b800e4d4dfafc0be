"""Compilation helpers shared by the CPU kernels.

``kernel`` compiles a function twice: with ``parallel=True`` (prange loops spread over numba's
thread pool) and as a serial twin. The call picks the twin for small inputs, because waking the
thread pool costs microseconds on an idle machine and up to milliseconds on a loaded one, which
dominates the many small calls of a sumcheck's late rounds. Both are cached on disk; the twin
gets its own name so that the two cache entries never collide.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Callable

import numba as nb

PARALLEL_MIN = 4096
"""Inputs with fewer items than this run serially."""

jit = nb.njit(cache=True, nogil=True)
"""Serial, cached compilation for element functions called from kernels."""


def _twin(fn: Callable) -> Callable:
    twin = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + "_serial",
                              fn.__defaults__, fn.__closure__)
    twin.__qualname__ = fn.__qualname__ + "_serial"
    twin.__doc__ = fn.__doc__
    return twin


def kernel(size: Callable[..., int] | None = None) -> Callable[[Callable], Callable]:
    """Decorate a kernel that uses prange; ``size(*args)`` gives its work size (default: the
    length of the second argument, the first being a field descriptor)."""

    def deco(fn: Callable) -> Callable:
        par = nb.njit(cache=True, nogil=True, parallel=True)(fn)
        ser = nb.njit(cache=True, nogil=True)(_twin(fn))
        measure = size or (lambda *args: args[1].shape[0])

        @functools.wraps(fn)
        def call(*args):
            return (par if measure(*args) >= PARALLEL_MIN else ser)(*args)

        call.parallel = par  # type: ignore[attr-defined]
        call.serial = ser  # type: ignore[attr-defined]
        return call

    return deco
