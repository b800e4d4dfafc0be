"""The service's session store: an SQLite table of session states beside the session files.

Layout under ``root``::

    sessions.db                 one row per session: state, progress, times, error
    sessions/<id>/request       the client's request file (deleted once the bundle exists)
    sessions/<id>/response      the response file, once evaluated
    sessions/<id>/opening       the canary opening, once opened
    sessions/<id>/bundle        the proof bundle, once proven

A session moves ``evaluating -> evaluated -> proving -> proven``; ``failed`` records why the
work was refused (a ciphertext the circuit refused, a canary the prover refused); ``expired``
is what garbage collection leaves (the row, no files), so that a late opening hears "expired"
rather than "unknown". Files are written to a temporary name, flushed and renamed before the
row that points at them is committed, so a crash at any point leaves either the old state or
the new one; a response or bundle, once stored, is never rewritten, so every later read
returns the same bytes. The store survives a restart of the process that owns it: on start,
the service resumes every session left in ``evaluating`` or ``proving``.

One process (the service's HTTP replica) owns a store; it is not meant to be shared.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

EVALUATING, EVALUATED, PROVING, PROVEN = "evaluating", "evaluated", "proving", "proven"
FAILED, EXPIRED = "failed", "expired"
IN_FLIGHT = (EVALUATING, PROVING)
FILES = ("request", "response", "opening", "bundle")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    request_digest BLOB UNIQUE NOT NULL,
    state TEXT NOT NULL,
    n_inputs INTEGER NOT NULL,
    done INTEGER NOT NULL DEFAULT 0,
    total INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    evaluate_s REAL,
    prove_s REAL,
    error TEXT,
    owner TEXT
)
"""
ACTIVE = (EVALUATING, EVALUATED, PROVING)  # what a token's limit on active sessions counts


@dataclass(frozen=True)
class SessionRecord:
    """One session's row: where it stands, how far its current step is, and its timings."""

    id: str
    request_digest: bytes
    state: str
    n_inputs: int
    done: int
    total: int
    created: float
    updated: float
    evaluate_s: float | None
    prove_s: float | None
    error: str | None
    owner: str | None = None  # the SHA-256 (hex) of the API token that created it, if any

    def public(self) -> dict:
        """What the status endpoint shows."""
        return {"session": self.id, "state": self.state, "inputs": self.n_inputs,
                "done": self.done, "total": self.total, "created": self.created,
                "updated": self.updated, "evaluate_s": self.evaluate_s,
                "prove_s": self.prove_s, "error": self.error}


class StoreError(Exception):
    """A transition the session's state does not allow (the message says why)."""


class SessionStore:
    """Sessions in SQLite plus files under ``root``; ``ttl_s`` seconds after its last change a
    session that is not being worked on is garbage-collected (:meth:`gc`)."""

    def __init__(self, root: str | os.PathLike, ttl_s: float = 3600.0) -> None:
        if ttl_s <= 0:
            raise ValueError("ttl_s must be positive")
        self.root = Path(root)
        self.ttl_s = float(ttl_s)
        (self.root / "sessions").mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.root / "sessions.db", check_same_thread=False,
                                   isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(_SCHEMA)
        columns = {r[1] for r in self._db.execute("PRAGMA table_info(sessions)")}
        if "owner" not in columns:  # a store written before API tokens: sessions of nobody
            self._db.execute("ALTER TABLE sessions ADD COLUMN owner TEXT")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # ------------------------------------------------------------------ reads

    def get(self, sid: str) -> SessionRecord | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM sessions WHERE id = ?", (sid,)).fetchone()
        return None if row is None else SessionRecord(*row)

    def find(self, request_digest: bytes) -> SessionRecord | None:
        """The session created from the request with this digest, if any."""
        with self._lock:
            row = self._db.execute("SELECT * FROM sessions WHERE request_digest = ?",
                                   (request_digest,)).fetchone()
        return None if row is None else SessionRecord(*row)

    def in_flight(self) -> list[SessionRecord]:
        """Sessions whose work a restarted service must resume, oldest first."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM sessions WHERE state IN (?, ?) "
                                    "ORDER BY created", IN_FLIGHT).fetchall()
        return [SessionRecord(*r) for r in rows]

    def active(self, owner: str | None) -> int:
        """How many sessions of this owner are not finished (evaluating, evaluated, proving)."""
        with self._lock:
            return self._db.execute(
                "SELECT COUNT(*) FROM sessions WHERE owner IS ? AND state IN (?, ?, ?)",
                (owner, *ACTIVE)).fetchone()[0]

    def count(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT state, COUNT(*) FROM sessions GROUP BY state")
            return dict(rows.fetchall())

    def read(self, sid: str, name: str) -> bytes:
        """A session file's bytes (FileNotFoundError if it does not exist)."""
        if name not in FILES:
            raise ValueError(f"no session file {name!r}")
        return (self._dir(sid) / name).read_bytes()

    def snapshot(self) -> dict[str, tuple]:
        """Every row and file (name, size, mtime): what tests compare to show nothing changed."""
        with self._lock:
            rows = {r[0]: r for r in self._db.execute("SELECT * FROM sessions ORDER BY id")}
        files = {}
        for p in sorted((self.root / "sessions").rglob("*")):
            if p.is_file():
                st = p.stat()
                files[str(p.relative_to(self.root))] = (st.st_size, st.st_mtime_ns)
        return {"rows": rows, "files": files}

    # ------------------------------------------------------------------ transitions

    def create(self, request_digest: bytes, n_inputs: int, request_path: Path,
               owner: str | None = None) -> SessionRecord:
        """A new session in ``evaluating`` whose request file is ``request_path`` (moved into
        the store), created by ``owner`` (an API token's digest, or None). A random id."""
        sid = secrets.token_hex(16)
        d = self._dir(sid)
        d.mkdir(parents=True)
        _fsync_file(request_path)
        os.replace(request_path, d / "request")
        now = time.time()
        try:
            with self._lock:
                self._db.execute(
                    "INSERT INTO sessions (id, request_digest, state, n_inputs, total, created,"
                    " updated, owner) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (sid, request_digest, EVALUATING, n_inputs, n_inputs, now, now, owner))
        except sqlite3.IntegrityError:
            shutil.rmtree(d, ignore_errors=True)
            raise StoreError("a session for this request exists already") from None
        return self.get(sid)

    def progress(self, sid: str, done: int, total: int) -> None:
        with self._lock:
            self._db.execute("UPDATE sessions SET done = ?, total = ?, updated = ? WHERE id = ?",
                             (done, total, time.time(), sid))

    def put_response(self, sid: str, data: bytes, seconds: float) -> None:
        """Store the response file: ``evaluating -> evaluated``."""
        self._write(sid, "response", data)
        self._move(sid, EVALUATING, EVALUATED, "evaluate_s = ?", (seconds,))

    def put_opening(self, sid: str, data: bytes, n_canaries: int) -> None:
        """Store the canary opening: ``evaluated -> proving``. Refuses any other state."""
        rec = self.get(sid)
        if rec is None or rec.state != EVALUATED:
            raise StoreError(refusal(rec, "open"))
        self._write(sid, "opening", data)
        self._move(sid, EVALUATED, PROVING, "done = 0, total = ?", (n_canaries,))

    def put_bundle(self, sid: str, data: bytes, seconds: float) -> None:
        """Store the proof bundle: ``proving -> proven``; the request file (the large keys)
        is no longer needed and is removed."""
        self._write(sid, "bundle", data)
        self._move(sid, PROVING, PROVEN, "prove_s = ?", (seconds,))
        (self._dir(sid) / "request").unlink(missing_ok=True)

    def fail(self, sid: str, error: str) -> None:
        """The work was refused (the message says why); the session cannot go on."""
        with self._lock:
            self._db.execute("UPDATE sessions SET state = ?, error = ?, updated = ? "
                             "WHERE id = ?", (FAILED, error, time.time(), sid))

    def gc(self, now: float | None = None) -> list[str]:
        """Expire every session not in flight whose last change is older than the TTL:
        delete its files, keep its row as ``expired``. Rows expired for 10 TTLs go too.
        Returns the ids expired now."""
        now = time.time() if now is None else now
        cutoff = now - self.ttl_s
        with self._lock:
            ids = [r[0] for r in self._db.execute(
                "SELECT id FROM sessions WHERE updated < ? AND state NOT IN (?, ?, ?)",
                (cutoff, EVALUATING, PROVING, EXPIRED))]
            for sid in ids:
                self._db.execute("UPDATE sessions SET state = ?, updated = ? WHERE id = ?",
                                 (EXPIRED, now, sid))
            self._db.execute("DELETE FROM sessions WHERE state = ? AND updated < ?",
                             (EXPIRED, now - 10 * self.ttl_s))
        for sid in ids:
            shutil.rmtree(self._dir(sid), ignore_errors=True)
        return ids

    # ------------------------------------------------------------------ helpers

    def clear_uploads(self) -> None:
        """Delete scratch files of uploads a previous owner of the store left (a crash
        mid-upload): uploads belong to the process that owns the store and never resume."""
        d = self.root / "uploads"
        if d.is_dir():
            for p in d.iterdir():
                p.unlink(missing_ok=True)

    def upload_path(self) -> Path:
        """A fresh temporary file name for an upload in progress (same file system)."""
        d = self.root / "uploads"
        d.mkdir(exist_ok=True)
        return d / secrets.token_hex(8)

    def _dir(self, sid: str) -> Path:
        if len(sid) != 32 or any(c not in "0123456789abcdef" for c in sid):
            raise ValueError("not a session id")
        return self.root / "sessions" / sid

    def _write(self, sid: str, name: str, data: bytes) -> None:
        path = self._dir(sid) / name
        if path.exists():
            raise StoreError(f"the session's {name} is stored already")
        tmp = path.with_name(name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def _move(self, sid: str, src: str, dst: str, extra: str, args: tuple) -> None:
        with self._lock:
            cur = self._db.execute(
                f"UPDATE sessions SET state = ?, updated = ?, {extra} WHERE id = ? AND state = ?",
                (dst, time.time(), *args, sid, src))
            if cur.rowcount != 1:
                raise StoreError(f"session {sid} is not {src}")


def refusal(rec: SessionRecord | None, action: str) -> str:
    """Why a session in this state cannot be opened (or have its files fetched)."""
    if rec is None:
        return "unknown session"
    return {
        EVALUATING: "the session is still being evaluated; wait for its response",
        PROVING: "the session was opened already and is being proven",
        PROVEN: "the session is proven already: fetch its bundle",
        FAILED: f"the session failed: {rec.error}",
        EXPIRED: "the session expired and was deleted; start a new session",
    }.get(rec.state, f"cannot {action} a session in state {rec.state}")


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


# ---------------------------------------------------------------- proofs of completions


PROOF_STATES = (PROVING, PROVEN, FAILED, EXPIRED)
_JOB_FIELDS = {"id": str, "owner": (str, type(None)), "state": str, "created": (int, float),
               "updated": (int, float), "model_digest": str, "prompt_len": int,
               "tokens": list, "key": (str, type(None)), "completion": dict,
               "prove_s": (int, float, type(None)), "error": (str, type(None))}


@dataclass(frozen=True)
class ProofJob:
    """One completion's proof job: the proven sequence (prompt + generated ids), who asked for
    it, the completion the service answered, and where its proof stands."""

    id: str
    owner: str | None
    state: str
    created: float
    updated: float
    model_digest: str  # hex
    prompt_len: int
    tokens: tuple[int, ...]
    key: str | None  # "KEY|REQUEST-DIGEST": the client's Idempotency-Key, if it sent one
    completion: dict
    prove_s: float | None = None
    error: str | None = None

    def to_json(self) -> bytes:
        """The job file's bytes (canonical JSON)."""
        d = {k: getattr(self, k) for k in _JOB_FIELDS}
        d["tokens"] = list(self.tokens)
        return json.dumps(d, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: bytes) -> "ProofJob":
        """Decode a job file; ValueError with a reason on anything unexpected."""
        try:
            d = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"not a proof job file: {e}") from None
        if not isinstance(d, dict) or set(d) != set(_JOB_FIELDS):
            raise ValueError("not a proof job file: unexpected fields")
        for k, t in _JOB_FIELDS.items():
            if not isinstance(d[k], t) or isinstance(d[k], bool):
                raise ValueError(f"proof job file: field {k!r} has the wrong type")
        if d["state"] not in PROOF_STATES or not all(
                isinstance(t, int) and not isinstance(t, bool) for t in d["tokens"]):
            raise ValueError("proof job file: bad state or token ids")
        d["tokens"] = tuple(d["tokens"])
        return cls(**d)

    def public(self) -> dict:
        """What ``GET /v1/proofs/{id}`` shows while the proof is not ready."""
        return {"proof_id": self.id, "state": self.state, "created": self.created,
                "updated": self.updated, "prove_s": self.prove_s, "error": self.error,
                "prompt_tokens": self.prompt_len,
                "completion_tokens": len(self.tokens) - self.prompt_len}


class ProofStore:
    """Proof jobs of completions under ``root/proofs/<id>/``: ``job.json`` (JSON, rewritten
    atomically at each change) and ``proof`` (the proof file's raw bytes, once proven; never
    rewritten). No pickle anywhere. A job moves ``proving -> proven`` (or ``failed``); ``ttl_s``
    seconds after a finished job's last change :meth:`gc` deletes its proof and marks it
    ``expired``; 10 TTLs later the job goes too. One process owns a store; it keeps an index
    in memory, read from the files when it starts (so a restarted service resumes every job
    left ``proving`` and still serves the finished ones)."""

    def __init__(self, root: str | os.PathLike, ttl_s: float = 3600.0) -> None:
        if ttl_s <= 0:
            raise ValueError("ttl_s must be positive")
        self.root = Path(root) / "proofs"
        self.ttl_s = float(ttl_s)
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._jobs: dict[str, ProofJob] = {}
        self.unreadable: list[str] = []  # job folders that could not be read (left alone)
        for d in sorted(self.root.iterdir()):
            if not d.is_dir() or not _is_id(d.name):
                continue
            try:
                job = ProofJob.from_json((d / "job.json").read_bytes())
                if job.id != d.name:
                    raise ValueError("job id differs from its folder")
            except (OSError, ValueError):
                self.unreadable.append(d.name)
                continue
            if job.state == PROVEN and not (d / "proof").is_file():
                job = _replace(job, state=FAILED, error="the proof file was lost")
            self._jobs[job.id] = job

    # ------------------------------------------------------------------ reads

    def get(self, pid: str) -> ProofJob | None:
        """The job with this id, or None (also for anything that is not a proof id)."""
        with self._lock:
            return self._jobs.get(pid) if _is_id(pid) else None

    def find_key(self, owner: str | None, key: str) -> ProofJob | None:
        """The job this owner created with this Idempotency-Key, if any (not expired). A job's
        ``key`` is ``KEY|REQUEST-DIGEST``; only the part before ``|`` is compared here."""
        with self._lock:
            for job in self._jobs.values():
                if job.key is not None and job.key.split("|")[0] == key and job.owner == owner and job.state != EXPIRED:
                    return job
        return None

    def in_flight(self) -> list[ProofJob]:
        """Jobs still proving, oldest first: what a restarted service resumes."""
        with self._lock:
            return sorted((j for j in self._jobs.values() if j.state == PROVING),
                          key=lambda j: j.created)

    def active(self, owner: str | None) -> int:
        """How many of this owner's proofs are not finished."""
        with self._lock:
            return sum(1 for j in self._jobs.values() if j.owner == owner and j.state == PROVING)

    def count(self) -> dict[str, int]:
        """Jobs per state."""
        with self._lock:
            out: dict[str, int] = {}
            for j in self._jobs.values():
                out[j.state] = out.get(j.state, 0) + 1
            return out

    def read_proof(self, pid: str) -> bytes:
        """The proof file's bytes (FileNotFoundError if there is none)."""
        if not _is_id(pid):
            raise FileNotFoundError(pid)
        return (self.root / pid / "proof").read_bytes()

    # ------------------------------------------------------------------ transitions

    def create(self, owner: str | None, tokens, prompt_len: int, model_digest: bytes,
               completion: dict, key: str | None = None, pid: str | None = None) -> ProofJob:
        """A new job in ``proving`` (its file on disk, flushed, before this returns)."""
        pid = pid or secrets.token_hex(16)
        if not _is_id(pid):
            raise ValueError("not a proof id")
        now = time.time()
        job = ProofJob(pid, owner, PROVING, now, now, model_digest.hex(), int(prompt_len),
                       tuple(int(t) for t in tokens), key, dict(completion))
        d = self.root / pid
        d.mkdir()
        return self._write_job(job, now)

    def put_proof(self, pid: str, data: bytes, seconds: float) -> ProofJob:
        """Store the proof file: ``proving -> proven``."""
        job = self._get(pid)
        if job.state != PROVING:
            raise StoreError(f"proof {pid} is {job.state}, not proving")
        _write_file(self.root / pid / "proof", data)
        return self._write_job(_replace(job, state=PROVEN, prove_s=float(seconds)))

    def fail(self, pid: str, error: str) -> None:
        """The proof was refused (the message says why)."""
        job = self._get(pid)
        self._write_job(_replace(job, state=FAILED, error=str(error)))

    def gc(self, now: float | None = None) -> list[str]:
        """Expire finished jobs older than the TTL (their proof deleted); forget jobs expired
        for 10 TTLs. Returns the ids expired now."""
        now = time.time() if now is None else now
        with self._lock:
            old = [j for j in self._jobs.values()
                   if j.state in (PROVEN, FAILED) and j.updated < now - self.ttl_s]
            gone = [j.id for j in self._jobs.values()
                    if j.state == EXPIRED and j.updated < now - 10 * self.ttl_s]
        for j in old:
            (self.root / j.id / "proof").unlink(missing_ok=True)
            self._write_job(_replace(j, state=EXPIRED), now)
        for pid in gone:
            shutil.rmtree(self.root / pid, ignore_errors=True)
            with self._lock:
                self._jobs.pop(pid, None)
        return [j.id for j in old]

    # ------------------------------------------------------------------ helpers

    def _get(self, pid: str) -> ProofJob:
        job = self.get(pid)
        if job is None:
            raise StoreError(f"unknown proof {pid}")
        return job

    def _write_job(self, job: ProofJob, now: float | None = None) -> ProofJob:
        job = _replace(job, updated=time.time() if now is None else now)
        path = self.root / job.id / "job.json"
        _write_file(path, job.to_json(), overwrite=True)
        with self._lock:
            self._jobs[job.id] = job
        return job


def _replace(job: ProofJob, **kw) -> ProofJob:
    from dataclasses import replace

    return replace(job, **kw)


def _is_id(s: str) -> bool:
    return isinstance(s, str) and len(s) == 32 and all(c in "0123456789abcdef" for c in s)


def _write_file(path: Path, data: bytes, overwrite: bool = False) -> None:
    """Write to a temporary name, flush, rename (a crash leaves the old file or the new)."""
    if path.exists() and not overwrite:
        raise StoreError(f"{path.name} is stored already")
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
