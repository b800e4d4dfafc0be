"""Text <-> token ids for whole integer models: ONE choice, shared by server, CLI and client.

The tokenizer is a function of the public commitment's ``origin`` (and its vocabulary), so the
server that generates, the owner's CLI and a client that checks a completion all turn text
into the same ids, and a client decodes the proven ids itself instead of trusting the server's
text::

    origin {"model": "random-0", "tokenizer": "bytes"}   -> ByteTokenizer (UTF-8 bytes as ids)
    origin {"model": "SmolLM2-135M-Instruct"}            -> SmolLM2's tokenizer (offline GGUF)
    origin {"tokenizer": "SmolLM2-135M-Instruct"}        -> the same
    anything else                                        -> None: token ids only

Commitments written by ``zkfhe model-commit --random`` before the ``tokenizer`` field existed
(origin ``{"model": "random-N"}``, vocabulary 256) also get the byte tokenizer.
"""

from __future__ import annotations

from typing import Protocol

SMOLLM2 = "SmolLM2-135M-Instruct"
BYTES = "bytes"


class Tokenizer(Protocol):
    """What a model's tokenizer offers here."""

    name: str

    def encode(self, text: str) -> list[int]:
        """The token ids of ``text``."""

    def decode(self, ids: list[int]) -> str:
        """The text of ``ids`` (never raises for ids inside the vocabulary)."""


class ByteTokenizer:
    """UTF-8 bytes as token ids (vocabulary 256); decoding replaces invalid UTF-8 with U+FFFD."""

    name = BYTES

    def encode(self, text: str) -> list[int]:
        """The UTF-8 bytes of ``text`` (surrogates are refused: ValueError)."""
        try:
            return list(text.encode("utf-8"))
        except UnicodeEncodeError as e:
            raise ValueError(f"the prompt is not valid Unicode text: {e}") from None

    def decode(self, ids: list[int]) -> str:
        """The bytes ``ids`` read as UTF-8, invalid sequences replaced (errors="replace")."""
        if any(not 0 <= int(i) < 256 for i in ids):
            raise ValueError("byte token ids must be in [0, 256)")
        return bytes(int(i) for i in ids).decode("utf-8", errors="replace")


class HfTokenizer:
    """A Hugging Face tokenizer (SmolLM2's, read offline from the installed GGUF file)."""

    def __init__(self, name: str, tok) -> None:
        self.name, self._tok = name, tok

    def encode(self, text: str) -> list[int]:
        """The tokenizer's ids of ``text`` (no special tokens added)."""
        return [int(i) for i in self._tok(text, add_special_tokens=False)["input_ids"]]

    def decode(self, ids: list[int]) -> str:
        """The tokenizer's text of ``ids``."""
        return self._tok.decode([int(i) for i in ids])


_CACHE: dict[str, Tokenizer] = {}


def tokenizer_name(origin: dict, vocab: int | None = None) -> str | None:
    """The name of the tokenizer a commitment's origin implies (None: token ids only)."""
    if not isinstance(origin, dict):
        return None
    named = origin.get("tokenizer")
    if named in (BYTES, SMOLLM2):
        return named
    if named is not None:
        return None  # a tokenizer this code does not know: ids only, never a guess
    model = origin.get("model")
    if model == SMOLLM2:
        return SMOLLM2
    if isinstance(model, str) and model.startswith("random-") and vocab == 256:
        return BYTES
    return None


def tokenizer_for(origin: dict, vocab: int | None = None) -> Tokenizer | None:
    """The tokenizer of a model with this commitment origin and vocabulary, or None (ids only).
    SmolLM2's needs the installed model package (``fhe.hf_models.ModelNotInstalled`` names the
    install command otherwise); only its tokenizer is loaded, not the float model."""
    name = tokenizer_name(origin, vocab)
    if name is None:
        return None
    if name not in _CACHE:
        _CACHE[name] = ByteTokenizer() if name == BYTES else _smollm2()
    return _CACHE[name]


def _smollm2() -> HfTokenizer:
    from fhe.hf_models import smollm2_tokenizer

    tok = smollm2_tokenizer()
    return HfTokenizer(SMOLLM2, tok)
