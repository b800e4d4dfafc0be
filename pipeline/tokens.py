"""API tokens of `zkfhe serve`: a file of hashed tokens with per-token limits.

    zkfhe token add --tokens tokens.json --name alice --max-active 2     # prints the token once
    zkfhe serve --model model --tokens tokens.json ...

A token is 32 bytes of the OS CSPRNG, written ``zkfhe_`` + URL-safe base64 (256 bits of
entropy). The file keeps only its SHA-256 (a fast hash is the right one for a high-entropy
secret: nothing to brute-force), its name and its limits, so a leaked file gives no access::

    {"format": "zkfhe-tokens/1",
     "tokens": [{"name": "alice", "sha256": "<64 hex digits>", "max_active": 2}]}

A client sends ``Authorization: Bearer <token>``; the service hashes it and compares the digest
with every entry in constant time (``hmac.compare_digest``, no early exit). ``max_active``
bounds the sessions of a token that are not finished (evaluating, evaluated or proving).
The service reads the file when it starts: restart it to apply a change (sessions survive).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

FORMAT = "zkfhe-tokens/1"
PREFIX = "zkfhe_"
MAX_FILE = 1 << 20
MAX_TOKENS = 10_000
DEFAULT_MAX_ACTIVE = 4
_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
_HEX = re.compile(r"^[0-9a-f]{64}$")


class TokenFileError(ValueError):
    """The token file cannot be used (the message says why and where)."""


@dataclass(frozen=True)
class Token:
    """One entry: who, the SHA-256 of the token (hex), the limit on unfinished sessions."""

    name: str
    sha256: str
    max_active: int = DEFAULT_MAX_ACTIVE

    def public(self) -> dict:
        return {"name": self.name, "max_active": self.max_active}


def new_token() -> str:
    """A fresh token: 256 bits from the OS CSPRNG."""
    return PREFIX + secrets.token_urlsafe(32)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def parse(data: bytes, where: str = "the token file") -> tuple[Token, ...]:
    """The entries of a token file; TokenFileError with the reason otherwise."""
    if len(data) > MAX_FILE:
        raise TokenFileError(f"{where} is larger than {MAX_FILE:,} bytes")
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise TokenFileError(f"{where} is not JSON: {e}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise TokenFileError(f"{where} is not a {FORMAT} file (its \"format\" must be "
                             f"{FORMAT!r})")
    entries = doc.get("tokens")
    if not isinstance(entries, list) or set(doc) != {"format", "tokens"}:
        raise TokenFileError(f"{where} must hold exactly \"format\" and a \"tokens\" list")
    if len(entries) > MAX_TOKENS:
        raise TokenFileError(f"{where} holds more than {MAX_TOKENS} tokens")
    out, names, hashes = [], set(), set()
    for i, e in enumerate(entries):
        at = f"{where}, token {i}"
        if not isinstance(e, dict) or not {"name", "sha256"} <= set(e) <= {
                "name", "sha256", "max_active"}:
            raise TokenFileError(f"{at}: an entry is {{\"name\", \"sha256\", \"max_active\"}}")
        name, h, limit = e["name"], e["sha256"], e.get("max_active", DEFAULT_MAX_ACTIVE)
        if not isinstance(name, str) or not _NAME.match(name):
            raise TokenFileError(f"{at}: a name is 1 to 64 letters, digits or _.@-")
        if not isinstance(h, str) or not _HEX.match(h):
            raise TokenFileError(f"{at} ({name}): sha256 must be 64 lowercase hex digits (the "
                                 "SHA-256 of the token, never the token itself)")
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 10_000:
            raise TokenFileError(f"{at} ({name}): max_active must be an integer in 1..10000")
        if name in names or h in hashes:
            raise TokenFileError(f"{at}: duplicate name or token ({name})")
        names.add(name)
        hashes.add(h)
        out.append(Token(name, h, limit))
    return tuple(out)


def load(path: str | os.PathLike) -> tuple[Token, ...]:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise TokenFileError(f"cannot read the token file {path}: {e.strerror or e}") from None
    return parse(data, str(path))


def _write(path: Path, tokens: tuple[Token, ...]) -> None:
    doc = {"format": FORMAT, "tokens": [{"name": t.name, "sha256": t.sha256,
                                         "max_active": t.max_active} for t in tokens]}
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    os.replace(tmp, path)


def add(path: str | os.PathLike, name: str, max_active: int = DEFAULT_MAX_ACTIVE) -> str:
    """Add a token named ``name`` to the file (created if missing); returns the token, which
    is not stored anywhere: hand it to its user now."""
    path = Path(path)
    tokens = load(path) if path.exists() else ()
    if any(t.name == name for t in tokens):
        raise TokenFileError(f"{path} has a token named {name} already (revoke it first)")
    token = new_token()
    entry = Token(name, digest(token), max_active)
    parse(json.dumps({"format": FORMAT, "tokens": [entry.__dict__]}).encode())  # validates
    _write(path, tokens + (entry,))
    return token


def revoke(path: str | os.PathLike, name: str) -> None:
    path = Path(path)
    tokens = load(path)
    if not any(t.name == name for t in tokens):
        raise TokenFileError(f"{path} has no token named {name}")
    _write(path, tuple(t for t in tokens if t.name != name))


class TokenTable:
    """The service's view: which entry (if any) a presented token is."""

    def __init__(self, tokens: tuple[Token, ...]) -> None:
        self.tokens = tuple(tokens)
        self._digests = [bytes.fromhex(t.sha256) for t in self.tokens]

    def match(self, presented: str) -> Token | None:
        """The entry of a presented token, comparing its digest with every entry in constant
        time (the loop does not stop at a match)."""
        d = hashlib.sha256(presented.encode("utf-8", "replace")).digest()
        found = None
        for t, ref in zip(self.tokens, self._digests):
            if hmac.compare_digest(d, ref):
                found = t
        return found
