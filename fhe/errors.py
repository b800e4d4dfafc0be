"""The one exception the FHE client and server raise on bad bytes.

``FheInputError`` is raised, and nothing deeper from concrete escapes, whenever bytes that
crossed a wire are refused: client specs, evaluation keys, input or output ciphertexts that are
truncated, corrupted (payload digest mismatch), of the wrong kind (an output sent as an input),
made for another circuit (circuit id mismatch) or under another key set (key id mismatch), or
that concrete itself cannot deserialize or evaluate.

Bad *plaintext* inputs (shape, dtype, range, calibrated bounds) raise a plain ``ValueError``
before anything is encrypted. ``FheInputError`` subclasses ``ValueError`` so that a caller can
catch both with one clause.
"""

from __future__ import annotations

__all__ = ["FheInputError"]


class FheInputError(ValueError):
    """Serialized FHE material (specs, keys, ciphertexts) was refused."""
