"""The client's whole side of an encrypted session against a `zkfhe serve` server.

    result = run_session("https://host:8443", x, commitment=..., params=..., token=...,
                         ca="ca.pem", out="my-session")          # x: (L, d_model) integers
    result.y                                                       # the decrypted real output
    result = resume_session("my-session", token=...)               # after the client stopped

:func:`run_session` plays :class:`pipeline.session.Client` over HTTP: fresh keys, k canaries in
a secret order, upload the request, wait for the response and its receipt, open the canaries,
wait for the proof bundle, verify it (no trust in the server), check every decrypted canary
against its proven output, decrypt the real output. A dishonest server is reported by
:class:`pipeline.session.CheatingDetected` (or another ``VerificationError``); a refusal by
the server by :class:`ServiceError` with its message.

**Sessions a client never loses.** With ``out`` the client keeps, in a folder only its owner
can read (0700, files 0600), everything it needs to finish the session, before anything is
uploaded: the secret keys, the real position and every input (``client.secret``, never sent),
the request, the session manifest (server, commitment, client specs), then the session id, the
response (before the canaries are opened: a client never opens against another receipt), the
opening and the bundle as they come. :func:`resume_session` finishes from there. Every call
retries through connection errors, 502/503/504, 429 and a proxy that is up before its
application, with exponential back-off (jittered; ``Retry-After`` honoured) until the
client's deadline; uploads and openings are idempotent on the server, so a server restart
costs time, never the session. Past the deadline :class:`ServerUnavailable` says where the
session is kept.

**Trust.** The model commitment and the parameters file (:mod:`pipeline.params`) should come
from the model owner, not from the server being checked: pass them as ``commitment`` and
``params``. Given the parameters the client encrypts under the owner's client specs and refuses
a server whose specs differ; whatever their source, the specs must meet 128-bit security by
concrete's own model (:mod:`fhe.security`), checked before any key exists. Without them the
client takes the server's and the result says so. Plain HTTP is refused to any host but the
loopback unless ``insecure_http``; HTTPS verifies the server's certificate (``ca``: a CA file;
default: the system's).
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import ssl
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar
from urllib.parse import urlsplit

import httpx
import numpy as np

from pipeline import session as S
from zk import attention_model as am
from zk.encoding import Reader, Writer, from_bytes, to_bytes
from zk.errors import MalformedProofError, VerificationError

API = "/v1"
CHUNK = 1 << 20

_JITTER = secrets.SystemRandom()  # retry jitter (not a secret; the OS source keeps library code off `random`)


class ServiceError(Exception):
    """The server refused a call; ``status`` is the HTTP status, the message its reason."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"server answered {status}: {message}")
        self.status, self.message = status, message


class ServerUnavailable(ServiceError):
    """The server did not answer (connection errors, 5xx, busy) until the client's deadline."""

    def __init__(self, message: str) -> None:
        Exception.__init__(self, message)
        self.status, self.message = 0, message


class ParametersRefused(VerificationError):
    """The server's encryption parameters are refused: weaker than 128-bit security, or not
    the model owner's published ones."""


class ResumeError(ValueError):
    """A session folder that cannot be resumed (the message says why)."""


class Steps:
    """Receives the client's progress: one step at a time, each with an optional count.
    This one records (name, seconds, bytes); :class:`pipeline.cli` draws bars."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, float, int | None]] = []
        self._t0 = 0.0
        self._name = ""

    def begin(self, name: str, total: int | None = None, unit: str = "") -> None:
        self._name, self._t0 = name, time.perf_counter()

    def advance(self, done: int, total: int | None = None) -> None:
        pass

    def end(self, size: int | None = None, note: str = "") -> None:
        self.rows.append((self._name, time.perf_counter() - self._t0, size))

    def note(self, message: str) -> None:
        """Something the user should see (a retry, a resumed step)."""


@dataclass
class SessionResult:
    """What a finished session gives the client."""

    session: str
    y: np.ndarray
    real_position: int
    positions: tuple[int, ...]
    commitment: am.ModelCommitment
    commitment_from_server: bool
    simulated: bool
    response: bytes = field(repr=False)
    bundle: bytes = field(repr=False)
    steps: list[tuple[str, float, int | None]] = field(default_factory=list)
    specs_from_server: bool = False
    security: str = ""  # the security check's summary (real TFHE)
    out: Path | None = None


# ---------------------------------------------------------------- HTTP with retries


def is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost.", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_url(url: str, insecure_http: bool = False) -> str:
    """The base URL if the client may talk to it: https anywhere, http only to the loopback
    (or with ``insecure_http``). ValueError otherwise."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not a server URL: {url!r} (http://HOST:PORT or https://HOST:PORT)")
    if parts.scheme == "http" and not is_loopback(parts.hostname) and not insecure_http:
        raise ValueError(f"refusing plain HTTP to {parts.hostname}, which is not this machine: "
                         "the API token and the session would cross the network unprotected; "
                         "use https:// (with --ca for a private CA), or --insecure-http to go "
                         "on anyway")
    return url.rstrip("/")


def _tls_failure(e: BaseException) -> ssl.SSLError | None:
    while e is not None:
        if isinstance(e, ssl.SSLError):
            return e
        e = e.__cause__ or e.__context__
    return None


def _ours(r: httpx.Response) -> bool:
    """An answer of the application (JSON with its reason), not of a proxy in front of it."""
    try:
        body = r.json()
    except ValueError:
        return False
    return isinstance(body, dict) and ("error" in body or "detail" in body)


TRANSIENT = (429, 502, 503, 504)


class ServiceClient:
    """The HTTP calls of :mod:`pipeline.service`, with retries until a deadline.

    ``token``: the API token (sent as ``Authorization: Bearer``). ``ca``: a CA certificate
    file to verify the server's certificate with (default: the system's CAs). ``deadline_s``:
    how long this client keeps retrying through outages and waiting for the server's steps,
    from its creation (``deadline`` is the monotonic time it ends). ``on_retry(message)``
    hears of every retry.
    """

    DEADLINE_S = 7200.0  # the longest a client waits, in all, by default
    BACKOFF_BASE_S, BACKOFF_CAP_S = 0.5, 15.0

    def __init__(self, url: str, timeout: float = 120.0, poll_s: float = 0.2, *,
                 token: str | None = None, ca: str | os.PathLike | None = None,
                 insecure_http: bool = False, deadline_s: float | None = None,
                 on_retry: Callable[[str], None] | None = None) -> None:
        self.url = check_url(url, insecure_http)
        verify: ssl.SSLContext | bool = True
        if ca is not None:
            try:
                verify = ssl.create_default_context(cafile=str(ca))
            except (OSError, ssl.SSLError) as e:
                raise ValueError(f"cannot use {ca} as a CA certificate file: {e}") from None
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        self.http = httpx.Client(base_url=self.url + API, timeout=timeout, verify=verify,
                                 headers=headers)
        self.poll_s = poll_s
        self.deadline_s = self.DEADLINE_S if deadline_s is None else float(deadline_s)
        self.deadline = time.monotonic() + self.deadline_s
        self.deadline_wall = time.time() + self.deadline_s
        self.on_retry = on_retry
        self.retries = 0

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> "ServiceClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _request(self, method: str, path: str, content: Callable[[], object] | None = None,
                 before_retry: Callable[[], object] | None = None, **kw):
        """One call, retried through transient failures until the deadline; ServiceError for
        a refusal, ServerUnavailable at the deadline. ``before_retry``: asked before each
        retry; what it returns, if not None, is the answer instead."""
        attempt = 0
        while True:
            wait = None
            if attempt and before_retry is not None:
                found = before_retry()
                if found is not None:
                    return found
            try:
                r = self.http.request(method, path, content=None if content is None
                                      else content(), **kw)
            except httpx.TransportError as e:
                tls = _tls_failure(e)
                if tls is not None:
                    raise ServiceError(0, f"TLS with {self.url} failed: {tls}") from None
                reason = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
            else:
                if r.status_code < 400:
                    return r
                transient = r.status_code in TRANSIENT or (
                    r.status_code in (404, 500) and not _ours(r))
                if not transient:
                    raise ServiceError(r.status_code, _message(r))
                reason = f"{r.status_code} {_message(r)[:200]}"
                after = r.headers.get("Retry-After", "")
                if after.isdigit():
                    wait = float(after)
            backoff = min(self.BACKOFF_CAP_S, self.BACKOFF_BASE_S * 2 ** attempt)
            wait = max(wait or 0.0, backoff * _JITTER.uniform(0.5, 1.0))
            left = self.deadline - time.monotonic()
            if left <= 0.05:
                raise ServerUnavailable(
                    f"{self.url} did not answer {method} {path} before the client's deadline "
                    f"({self.deadline_s:.0f} s; last: {reason})")
            wait = min(wait, left)
            attempt += 1
            self.retries += 1
            if self.on_retry is not None:
                self.on_retry(f"{method} {path}: {reason}; retrying in {wait:.1f} s (until "
                              f"{time.strftime('%H:%M:%S', time.localtime(self.deadline_wall))}"
                              ")")
            time.sleep(wait)

    def _call(self, method: str, path: str, **kw) -> httpx.Response:
        return self._request(method, path, **kw)

    def info(self) -> dict:
        return self._call("GET", "/info").json()

    def commitment(self) -> bytes:
        return self._call("GET", "/model/commitment").content

    def client_specs(self) -> bytes:
        return self._call("GET", "/model/client-specs").content

    def status(self, sid: str) -> dict:
        return self._call("GET", f"/sessions/{sid}").json()

    def lookup(self, request_digest: bytes) -> dict | None:
        """The caller's session made from this request, or None."""
        try:
            return self._call("GET", "/sessions", params={"request": request_digest.hex()}).json()
        except ServiceError as e:
            if e.status == 404 and e.message == "no session for this request":
                return None
            raise

    def create(self, request: bytes, on_sent: Callable[[int], None] | None = None,
               on_busy: Callable[[float], None] | None = None) -> dict:
        """Upload a request file (streamed; again after a failure: the server answers an
        upload it holds already with its session)."""
        import hashlib

        digest = hashlib.sha3_256(request).digest()  # the request's digest names its session
        r = self._request("POST", "/sessions", content=lambda: _chunks(request, on_sent),
                          before_retry=lambda: self.lookup(digest),  # stored before the loss?
                          headers={"Content-Length": str(len(request)),
                                   "Content-Type": "application/octet-stream",
                                   "Zkfhe-Request-Digest": digest.hex()})
        return r if isinstance(r, dict) else r.json()

    def open(self, sid: str, opening: bytes) -> dict:
        return self._call("POST", f"/sessions/{sid}/opening", content=lambda: opening,
                          headers={"Content-Type": "application/octet-stream"}).json()

    def wait(self, sid: str, states: tuple[str, ...],
             on_progress: Callable[[int, int], None] | None = None) -> dict:
        """Poll the session until it reaches one of ``states``; ServiceError if it fails,
        TimeoutError at the deadline."""
        poll = self.poll_s
        while True:
            if time.monotonic() > self.deadline:
                raise TimeoutError(f"session {sid} did not reach {'/'.join(states)} before the "
                                   f"client's deadline ({self.deadline_s:.0f} s)")
            s = self.status(sid)
            if on_progress is not None and s["total"]:
                on_progress(s["done"], s["total"])
            if s["state"] in states:
                return s
            if s["state"] in ("failed", "expired"):
                raise ServiceError(409, s["error"] or f"the session {s['state']}")
            time.sleep(min(poll, max(0.0, self.deadline - time.monotonic())))
            poll = min(2.0, poll * 1.3)

    def response(self, sid: str) -> bytes:
        return self._call("GET", f"/sessions/{sid}/response").content

    def bundle(self, sid: str) -> bytes:
        return self._call("GET", f"/sessions/{sid}/bundle").content


def _chunks(data: bytes, on_sent: Callable[[int], None] | None) -> Iterator[bytes]:
    view = memoryview(data)
    for i in range(0, len(data), CHUNK):
        yield bytes(view[i:i + CHUNK])
        if on_sent is not None:
            on_sent(min(i + CHUNK, len(data)))


def _message(r: httpx.Response) -> str:
    try:
        body = r.json()
        if isinstance(body, dict):
            return str(body.get("error", body.get("detail", r.text)))
        return r.text[:500]
    except ValueError:
        return r.text[:500]


# ---------------------------------------------------------------- the session folder


@dataclass(frozen=True)
class ClientSession:
    """The public half of what a client keeps to finish a session (``client.session``)."""

    KIND: ClassVar[str] = "zkfhe-client-session"
    VERSION: ClassVar[int] = 1

    server: str
    request_digest: bytes
    commitment: bytes = field(repr=False)     # the model commitment file checked against
    client_specs: bytes = field(repr=False)   # the SPECS blob encrypted under; b"" simulated
    params: bytes = field(repr=False)         # the owner's parameters file, b"" if none
    simulated: bool = False
    commitment_from_server: bool = False
    specs_from_server: bool = False

    def write(self, w: Writer) -> None:
        w.text(self.server)
        w.raw_bytes(self.request_digest)
        w.raw_bytes(self.commitment)
        w.raw_bytes(self.client_specs)
        w.raw_bytes(self.params)
        for flag in (self.simulated, self.commitment_from_server, self.specs_from_server):
            w.boolean(flag)

    @classmethod
    def read(cls, r: Reader, version: int) -> "ClientSession":
        server = r.text(4096)
        digest = r.raw_bytes(32)
        if len(digest) != 32:
            raise r.error("a digest is 32 bytes")
        parts = [r.raw_bytes(1 << 28) for _ in range(3)]
        flags = [r.boolean() for _ in range(3)]
        return cls(server, digest, *parts, *flags)


MANIFEST, SECRET, REQUEST, SID = "client.session", "client.secret", "session.request", "session.id"
RESPONSE, OPENING, BUNDLE, OUTPUT = ("session.response", "session.opening", "session.bundle",
                                     "output.npy")


class SessionDir:
    """A client's session folder: owner-only (0700, files 0600), files written atomically."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    @classmethod
    def create(cls, path: str | os.PathLike) -> "SessionDir":
        path = Path(path)
        if path.exists():
            if not path.is_dir():
                raise ResumeError(f"{path} exists and is not a folder")
            if any(path.iterdir()):
                raise ResumeError(f"{path} is not empty; to finish the session kept there, "
                                  f"use --resume {path}")
            os.chmod(path, 0o700)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            os.mkdir(path, 0o700)
        return cls(path)

    @classmethod
    def existing(cls, path: str | os.PathLike) -> "SessionDir":
        """A folder to resume from, if only its owner can read it."""
        path = Path(path)
        if not path.is_dir():
            raise ResumeError(f"no session folder {path}")
        d = cls(path)
        for p in (path, path / SECRET):
            try:
                st = os.stat(p, follow_symlinks=False)
            except FileNotFoundError:
                continue
            if stat.S_ISLNK(st.st_mode):
                raise ResumeError(f"{p} is a symbolic link; a session folder holds plain files")
            if st.st_uid != os.getuid() or st.st_mode & 0o077:
                raise ResumeError(f"{p} is readable by others (mode {stat.S_IMODE(st.st_mode):o}"
                                  f", owner uid {st.st_uid}); it holds secret keys: make it "
                                  f"yours alone (chmod 700 on the folder, 600 on its files)")
        return d

    def has(self, name: str) -> bool:
        return (self.path / name).is_file()

    def read(self, name: str) -> bytes | None:
        try:
            return (self.path / name).read_bytes()
        except FileNotFoundError:
            return None

    def write(self, name: str, data: bytes) -> None:
        tmp = self.path / f".{name}.{secrets.token_hex(4)}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path / name)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        dfd = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    def remove(self, name: str) -> None:
        (self.path / name).unlink(missing_ok=True)


class _MemoryDir(SessionDir):
    """The same interface, in memory (a client without ``out``)."""

    def __init__(self) -> None:
        self.path = None
        self.files: dict[str, bytes] = {}

    def has(self, name: str) -> bool:
        return name in self.files

    def read(self, name: str) -> bytes | None:
        return self.files.get(name)

    def write(self, name: str, data: bytes) -> None:
        self.files[name] = bytes(data)

    def remove(self, name: str) -> None:
        self.files.pop(name, None)


# ---------------------------------------------------------------- parameters


def _load_params(params):
    from pipeline.params import PublishedParams

    if params is None or isinstance(params, PublishedParams):
        return params
    return from_bytes(PublishedParams, bytes(params))


def choose_specs(service: ServiceClient, info: dict, commitment: am.ModelCommitment,
                 params, allow_simulated: bool):
    """(fhe client, SPECS blob or b"", specs came from the server) for the server's backend.

    Real TFHE: the owner's published client specs if ``params`` is given (the server's must be
    the same bytes), else the server's; either way they must meet 128-bit security
    (ParametersRefused otherwise). Simulation (nothing encrypted): only if allowed."""
    from pipeline.params import check_against

    if info["backend"] == "simulated":
        if not allow_simulated:
            raise ServiceError(400, "the server SIMULATES FHE (nothing would be encrypted); "
                                    "pass allow_simulated / --allow-simulated to go on anyway")
        if params is not None:
            raise ParametersRefused("the model owner published TFHE parameters, but the server "
                                    "simulates FHE")
        from pipeline.backend import SimulatedFhe

        return SimulatedFhe.public_client(commitment), b"", False
    from fhe.client import HeadClient
    from fhe.errors import FheInputError

    served = service.client_specs()
    try:
        if params is not None:
            check_against(params, commitment.digest, served)
            specs = params.client_specs
        else:
            specs = served
        client = HeadClient(specs)
    except (ValueError, FheInputError) as e:  # InsecureParameters is an FheInputError
        raise ParametersRefused(f"encryption parameters refused: {e}") from None
    if info.get("circuit_id") != client.circuit_id.hex():
        raise ParametersRefused("encryption parameters refused: the server says it runs "
                                "another circuit than its client specs describe")
    return client, specs, params is None


# ---------------------------------------------------------------- one session


def run_session(url: str, x: np.ndarray | None = None, *, k: int = 3,
                commitment: am.ModelCommitment | bytes | None = None, params=None,
                canaries=None, allow_simulated: bool = False, steps: Steps | None = None,
                service: ServiceClient | None = None, out: str | os.PathLike | None = None,
                token: str | None = None, ca: str | os.PathLike | None = None,
                insecure_http: bool = False, deadline_s: float | None = None) -> SessionResult:
    """Run one encrypted session against the server at ``url`` and return the verified,
    decrypted real output.

    ``x`` defaults to a sample from the canary source (a demonstration). ``canaries`` defaults
    to :func:`pipeline.canaries.canaries_for` the commitment: the pool its ``origin`` names
    (fresh LayerNorm-like activations for the built-in heads; for a SmolLM2 head, that layer's
    activations on real text, which needs the model installed here), drawn before anything is
    uploaded; :class:`pipeline.canaries.CanarySourceError` when this client cannot build it.
    A deployment may pass its own pool instead. ``params``:
    the owner's :class:`pipeline.params.PublishedParams` (object or file bytes). ``out``: the
    session folder (see the module docstring); without it the state lives in memory only.
    Raises CheatingDetected / VerificationError if the server's proofs or outputs do not check,
    ParametersRefused for its encryption parameters, ServiceError if the server refuses,
    ServerUnavailable / TimeoutError at the deadline.
    """
    from pipeline.canaries import canaries_for

    steps = steps if steps is not None else Steps()
    if out is not None and Path(out).exists() and (
            not Path(out).is_dir() or any(Path(out).iterdir())):
        SessionDir.create(out)  # refuses it now, before anything is done
    own = service is None
    if service is None:
        service = ServiceClient(url, token=token, ca=ca, insecure_http=insecure_http,
                                deadline_s=deadline_s, on_retry=steps.note)
    try:
        steps.begin("fetch the model commitment")
        info = service.info()
        served_bytes = service.commitment()
        served = from_bytes(am.ModelCommitment, served_bytes)
        if isinstance(commitment, (bytes, bytearray)):
            commitment = from_bytes(am.ModelCommitment, bytes(commitment))
        if commitment is not None and commitment.digest != served.digest:
            raise S.CheatingDetected("the server serves another model commitment than the "
                                     "one given")
        from_server = commitment is None
        commitment = served if commitment is None else commitment
        params = _load_params(params)
        fhe_client, specs, specs_from_server = choose_specs(service, info, commitment, params,
                                                            allow_simulated)
        steps.end()

        if canaries is None:  # the pool the commitment's origin names, or CanarySourceError
            steps.begin("draw the canary pool")
            canaries = canaries_for(commitment)
            steps.end(note=str(commitment.origin.get("model", "built-in head")))
        if x is None:
            x = canaries.sample(1)[0]
        client = S.Client(commitment, fhe_client, canaries, k=k)
        steps.begin(f"keygen, encrypt x + {k} canaries")
        request = client.request(x)
        request_bytes = to_bytes(request)
        steps.end(len(request_bytes))
        steps.begin("keep the session state (owner only)")
        sdir = SessionDir.create(out) if out is not None else _MemoryDir()
        real, inputs = client.session_state()
        sdir.write(SECRET, to_bytes(S.ClientSecret(request.digest, fhe_client.export_secret(),
                                                   real, tuple(inputs))))
        sdir.write(REQUEST, request_bytes)
        manifest = ClientSession(service.url, request.digest, to_bytes(commitment), specs,
                                 b"" if params is None else to_bytes(params),
                                 info["backend"] == "simulated", from_server, specs_from_server)
        sdir.write(MANIFEST, to_bytes(manifest))  # last: its presence means the rest is whole
        steps.end()
        security = getattr(getattr(fhe_client, "security", None), "summary", lambda: "")()
        return _drive(service, client, request, request_bytes, manifest, sdir, steps, security)
    finally:
        if own:
            service.close()


def resume_session(out: str | os.PathLike, *, server: str | None = None,
                   token: str | None = None, ca: str | os.PathLike | None = None,
                   insecure_http: bool = False, deadline_s: float | None = None,
                   steps: Steps | None = None,
                   service: ServiceClient | None = None) -> SessionResult:
    """Finish a session kept in the folder ``out`` by a client that stopped (``server``: the
    server's URL if it moved). Same results and errors as :func:`run_session`; ResumeError for
    a folder that cannot be resumed."""
    steps = steps if steps is not None else Steps()
    sdir = SessionDir.existing(out)
    steps.begin("read the session folder")
    manifest, secret, request, request_bytes = _read_folder(sdir)
    commitment = from_bytes(am.ModelCommitment, manifest.commitment)
    if manifest.simulated:
        from pipeline.backend import SimulatedFhe

        fhe_client = SimulatedFhe.public_client(commitment)
    else:
        from fhe.client import HeadClient

        fhe_client = HeadClient(manifest.client_specs)  # checked again: 128-bit security
    from fhe.errors import FheInputError
    from fhe.wire import Kind, sha3, unpack

    try:
        key_id = fhe_client.load_secret(secret.secret_keys)
        keys = unpack(request.evaluation_keys, Kind.EVAL_KEYS, request.circuit_id)
    except FheInputError as e:
        raise ResumeError(f"{sdir.path}: the secret keys cannot be used: {e}") from None
    if sha3(keys.payload) != key_id or request.circuit_id != fhe_client.circuit_id:
        raise ResumeError(f"{sdir.path}: the secret keys are not those of the request")
    client = S.Client.resume(commitment, fhe_client, request, secret.real, secret.inputs)
    steps.end()
    own = service is None
    if service is None:
        service = ServiceClient(server or manifest.server, token=token, ca=ca,
                                insecure_http=insecure_http, deadline_s=deadline_s,
                                on_retry=steps.note)
    try:
        security = getattr(getattr(fhe_client, "security", None), "summary", lambda: "")()
        return _drive(service, client, request, request_bytes, manifest, sdir, steps, security)
    finally:
        if own:
            service.close()


def _read_folder(sdir: SessionDir):
    """The manifest, secret and request of a session folder, checked against each other."""
    where = sdir.path
    if not sdir.has(MANIFEST):
        raise ResumeError(f"{where} holds no {MANIFEST}: the session was never completely "
                          "written (nothing was uploaded); start a new session")
    if not sdir.has(SECRET):
        if sdir.has(OUTPUT):
            raise ResumeError(f"{where}: this session is finished already (its output is in "
                              f"{OUTPUT}; its secret keys were deleted)")
        raise ResumeError(f"{where} holds no {SECRET}: without the secret keys the session "
                          "cannot be finished")
    try:
        manifest = from_bytes(ClientSession, sdir.read(MANIFEST))
        secret = from_bytes(S.ClientSecret, sdir.read(SECRET))
        request_bytes = sdir.read(REQUEST)
        if request_bytes is None:
            raise ResumeError(f"{where} holds no {REQUEST}")
        request = from_bytes(S.Request, request_bytes)
    except MalformedProofError as e:
        raise ResumeError(f"{where}: a session file is damaged: {e}") from None
    if not (manifest.request_digest == secret.request_digest == request.digest):
        raise ResumeError(f"{where}: the session files belong to different sessions")
    if len(secret.inputs) != len(request.inputs):
        raise ResumeError(f"{where}: the secret does not match the request's inputs")
    return manifest, secret, request, request_bytes


def _drive(service: ServiceClient, client: S.Client, request: S.Request, request_bytes: bytes,
           manifest: ClientSession, sdir: SessionDir, steps: Steps,
           security: str) -> SessionResult:
    """From wherever the folder says the session is, to the verified output."""
    k = len(request.inputs) - 1
    sid = (sdir.read(SID) or b"").decode("ascii", "replace").strip() or None

    def upload() -> str:
        found = service.lookup(request.digest)
        if found is not None:
            steps.note(f"the server holds this session already ({found['session']})")
            new = found["session"]
        else:
            steps.begin("upload the request", len(request_bytes), "B")
            new = service.create(request_bytes,
                                 on_sent=lambda n: steps.advance(n, len(request_bytes)))["session"]
            steps.end(len(request_bytes))
        sdir.write(SID, new.encode("ascii"))
        return new

    def lost(e: ServiceError) -> bool:  # the server lost the session: upload it again
        return e.status == 404 and e.message == "unknown session"

    if sid is None:
        sid = upload()
    stored = sdir.read(RESPONSE)
    evaluated = stored is not None  # the server had answered before the client stopped
    for attempt in range(3):
        try:
            if not evaluated:
                steps.begin(f"server: evaluate {k + 1} ciphertexts", k + 1, "ct")
                service.wait(sid, ("evaluated", "proving", "proven"), steps.advance)
                steps.end()
            steps.begin("download the response")
            response_bytes = service.response(sid)
            steps.end(len(response_bytes))
            break
        except ServiceError as e:
            if not lost(e) or attempt == 2:
                raise
            steps.note(f"the server does not know session {sid}: uploading the request again")
            sid, evaluated = upload(), False
    if stored is not None and response_bytes != stored:
        raise S.CheatingDetected("the server now returns another response than the one this "
                                 "client opened its canaries for; opening again would expose "
                                 "the real input's position")
    response = from_bytes(S.Response, response_bytes)
    opening = client.open(response)  # checks it answers our request, with a binding receipt
    opening_bytes = to_bytes(opening)
    if stored is None:
        sdir.write(RESPONSE, response_bytes)  # from here on, this receipt and no other
    if not sdir.has(OPENING):
        sdir.write(OPENING, opening_bytes)

    steps.begin("open the canaries")
    service.open(sid, opening_bytes)
    steps.end(len(opening_bytes))
    steps.begin(f"server: prove {k} canaries", k, "proof")
    service.wait(sid, ("proven",), steps.advance)
    steps.end()
    steps.begin("download the bundle")
    bundle_bytes = service.bundle(sid)
    sdir.write(BUNDLE, bundle_bytes)
    steps.end(len(bundle_bytes))

    steps.begin("verify, check canaries, decrypt")
    y = client.finish(response, from_bytes(S.ProofBundle, bundle_bytes))
    steps.end()
    if sdir.path is not None:
        import io

        buf = io.BytesIO()
        np.save(buf, y, allow_pickle=False)
        sdir.write(OUTPUT, buf.getvalue())
        sdir.remove(SECRET)  # fresh keys per session: nothing is left to decrypt
    real, _ = client.session_state()
    commitment = from_bytes(am.ModelCommitment, manifest.commitment)
    return SessionResult(sid, y, real, opening.positions, commitment,
                         manifest.commitment_from_server, manifest.simulated, response_bytes,
                         bundle_bytes, list(steps.rows), manifest.specs_from_server, security,
                         sdir.path)


# ---------------------------------------------------------------- verifiable completions


@dataclass
class CompletionResult:
    """A completion checked by the client. ``generated`` and ``text`` are the proven ids and
    the client's own decoding of them (never the server's text) when ``accepted``."""

    accepted: bool
    reason: str
    prompt_ids: tuple[int, ...]
    generated: tuple[int, ...]
    text: str | None
    completion: dict = field(repr=False)
    proof: bytes = field(repr=False)

    def __bool__(self) -> bool:
        return self.accepted


def load_llm_commitment(data: bytes):
    """A whole model's commitment file (``model.zkm``); MalformedProofError if it is not one."""
    from zk.model import llama as ML

    return ML.LlamaCommitment.from_bytes(bytes(data))


def prompt_ids(prompt, commitment, tokenizer=None) -> list[int]:
    """The client's own token ids of a prompt (text, through the tokenizer the commitment's
    origin names: :mod:`pipeline.llm_text`; or a list of ids as given). ValueError if the
    model has no tokenizer for text, or an id is outside the vocabulary."""
    from pipeline import llm_text

    vocab = commitment.config.vocab
    if isinstance(prompt, str):
        tok = tokenizer or llm_text.tokenizer_for(commitment.origin, vocab)
        if tok is None:
            raise ValueError("this model has no tokenizer (its commitment's origin names none): "
                             "give the prompt as token ids")
        ids = tok.encode(prompt)
    else:
        ids = [int(i) for i in prompt]
    if not ids:
        raise ValueError("the prompt has no tokens")
    if any(not 0 <= i < vocab for i in ids):
        raise ValueError(f"token ids must be in [0, {vocab})")
    return ids


def check_completion(completion: object, proof: bytes, commitment, prompt: list[int],
                     max_tokens: int | None = None, tokenizer=None) -> CompletionResult:
    """Everything a client checks of a completion, trusting nothing from the server:

    the proof verifies against ``commitment`` (the owner's, not the server's copy); the proven
    prompt is exactly ``prompt`` (the client's own ids); the server's ``token_ids`` are the
    proven generated ids, as many as asked for; its ``text`` is the client's own decoding of
    them (``tokenizer``: default, the one the commitment's origin names; models without one
    must answer an empty text); its usage counts agree. Returns a CompletionResult (never
    raises for anything the server sent)."""
    from pipeline import llm_text
    from zk.model import llama as ML

    prompt = tuple(int(i) for i in prompt)

    def no(reason: str, generated=()) -> CompletionResult:
        c = completion if isinstance(completion, dict) else {}
        return CompletionResult(False, reason, prompt, tuple(generated), None, c, bytes(proof))

    try:
        choices = completion["choices"]
        if not isinstance(choices, list) or len(choices) != 1 or not isinstance(choices[0], dict):
            raise ValueError("one choice expected")
        claimed_ids = choices[0]["token_ids"]
        claimed_text = choices[0]["text"]
        usage = completion["usage"]
        if (not isinstance(claimed_ids, list) or not isinstance(claimed_text, str)
                or not all(isinstance(i, int) and not isinstance(i, bool) for i in claimed_ids)
                or not isinstance(usage, dict)):
            raise ValueError("choices[0] needs token_ids (integers) and text (a string)")
    except (KeyError, TypeError, ValueError) as e:
        return no(f"malformed completion from the server: {e}")
    try:
        mp = ML.ModelProof.from_bytes(bytes(proof))
        ML.verify(mp, commitment)
    except MalformedProofError as e:
        return no(f"malformed proof file: {e}")
    except VerificationError as e:
        return no(str(e))
    st = mp.statement
    generated = tuple(st.generated)
    if st.tokens[:st.prompt_len] != prompt:
        return no("the proof is of another prompt than this client's", generated)
    if tuple(claimed_ids) != generated:
        return no(f"the server's token_ids {claimed_ids} are not the proven ones "
                  f"{list(generated)}", generated)
    if max_tokens is not None and len(generated) != max_tokens:
        return no(f"{len(generated)} tokens proven, {max_tokens} asked for", generated)
    if usage.get("prompt_tokens") != len(prompt) or \
            usage.get("completion_tokens") != len(generated):
        return no("the server's usage counts are not those of the proven tokens", generated)
    tok = tokenizer or llm_text.tokenizer_for(commitment.origin, commitment.config.vocab)
    text = None if tok is None else tok.decode(list(generated))
    if (claimed_text != text) if tok is not None else claimed_text != "":
        return no(f"the server's text {claimed_text!r} is not the proven tokens' text "
                  f"{text!r}", generated)
    return CompletionResult(True, "", prompt, generated, text, completion, bytes(proof))


def _completion_call(service: ServiceClient, body: dict, key: str) -> dict:
    import json

    r = service._call("POST", "/completions", content=lambda: json.dumps(body).encode(),
                      headers={"Content-Type": "application/json", "Idempotency-Key": key})
    try:
        out = r.json()
    except ValueError:
        raise ServiceError(r.status_code, "the server's completion is not JSON") from None
    if not isinstance(out, dict) or not isinstance(out.get("proof_id"), str):
        raise ServiceError(r.status_code, "the server's completion has no proof_id")
    return out


def wait_proof(service: ServiceClient, pid: str,
               on_wait: Callable[[dict], None] | None = None) -> bytes:
    """Poll ``GET /v1/proofs/{pid}`` until the proof file comes (transient failures retried
    as every call; TimeoutError at the client's deadline; ServiceError if it failed)."""
    poll = service.poll_s
    while True:
        r = service._call("GET", f"/proofs/{pid}")
        if r.status_code == 200:
            return r.content
        try:
            state = r.json()
        except ValueError:
            state = {}
        if on_wait is not None and isinstance(state, dict):
            on_wait(state)
        left = service.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"proof {pid} was not ready before the client's deadline "
                               f"({service.deadline_s:.0f} s); fetch it later: GET "
                               f"{API}/proofs/{pid}")
        time.sleep(min(poll, left))
        poll = min(2.0, poll * 1.3)


def complete(url: str, prompt, commitment, max_tokens: int = 8, *,
             service: ServiceClient | None = None, token: str | None = None,
             ca: str | os.PathLike | None = None, insecure_http: bool = False,
             deadline_s: float | None = None, steps: Steps | None = None) -> CompletionResult:
    """A verifiable completion from a `zkfhe serve --llm` server: post the prompt (text or
    token ids), wait for the proof, check everything (:func:`check_completion`) against the
    owner's ``commitment`` (object or ``model.zkm`` bytes; never the server's copy).
    ServiceError / ServerUnavailable / TimeoutError when the server refuses or is gone;
    ValueError for a prompt this model cannot take."""
    if isinstance(commitment, (bytes, bytearray)):
        commitment = load_llm_commitment(commitment)
    steps = steps if steps is not None else Steps()
    ids = prompt_ids(prompt, commitment)
    body = {"prompt": prompt if isinstance(prompt, str) else ids, "max_tokens": int(max_tokens)}
    own = service is None
    if service is None:
        service = ServiceClient(url, token=token, ca=ca, insecure_http=insecure_http,
                                deadline_s=deadline_s, on_retry=steps.note)
    try:
        steps.begin(f"server: generate {max_tokens} tokens")
        completion = _completion_call(service, body, secrets.token_hex(16))
        steps.end()
        pid = completion["proof_id"]
        steps.begin("server: prove the generation")
        proof = wait_proof(service, pid)
        steps.end(len(proof))
    finally:
        if own:
            service.close()
    steps.begin("verify against the owner's commitment")
    result = check_completion(completion, proof, commitment, ids, max_tokens)
    steps.end()
    return result
