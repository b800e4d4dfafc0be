"""The exceptions of the FHE side: bad bytes (``FheInputError``), no circuit (``FheCompileError``).

``FheInputError`` is raised, and nothing deeper from concrete escapes, whenever bytes that
crossed a wire are refused: client specs, evaluation keys, input or output ciphertexts that are
truncated, corrupted (payload digest mismatch), of the wrong kind (an output sent as an input),
made for another circuit (circuit id mismatch) or under another key set (key id mismatch), or
that concrete itself cannot deserialize or evaluate.

Bad *plaintext* inputs (shape, dtype, range, calibrated bounds) raise a plain ``ValueError``
before anything is encrypted. ``FheInputError`` subclasses ``ValueError`` so that a caller can
catch both with one clause.

``FheCompileError`` is raised when a head cannot be compiled: concrete finds no parameters in
any search space tried (``fhe.compile.compile_head``; ``fhe.search`` for the searches run in a
child process because concrete can abort instead of raising). Its message names the head and
each search space with what happened in it. It subclasses ``RuntimeError``, what concrete
raises for ``NoParametersFound``.
"""

from __future__ import annotations

__all__ = ["FheInputError", "FheCompileError"]


class FheInputError(ValueError):
    """Serialized FHE material (specs, keys, ciphertexts) was refused."""


class FheCompileError(RuntimeError):
    """No FHE circuit for a head: concrete found no parameters (the message says where)."""
