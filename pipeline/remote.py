"""The client's whole side of an encrypted session against a `zkfhe serve` server.

    result = run_session("http://127.0.0.1:8000", x)     # x: (L, d_model) integers, or None
    result.y                                            # the decrypted real output

:func:`run_session` plays :class:`pipeline.session.Client` over HTTP: fresh keys, k canaries in
a secret order, upload the request, wait for the response and its receipt, open the canaries,
wait for the proof bundle, verify it (no trust in the server), check every decrypted canary
against its proven output, decrypt the real output. A dishonest server is reported by
:class:`pipeline.session.CheatingDetected` (or another ``VerificationError``); a refusal by
the server by :class:`ServiceError` with its message.

The model commitment should come from the model owner, not from the server being checked:
pass it as ``commitment`` (``zkfhe client --commitment FILE``). Without it the client takes
the server's and the result says so (``commitment_from_server``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import httpx
import numpy as np

from pipeline import session as S
from zk import attention_model as am
from zk.encoding import from_bytes, to_bytes

API = "/v1"
CHUNK = 1 << 20


class ServiceError(Exception):
    """The server refused a call; ``status`` is the HTTP status, the message its reason."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"server answered {status}: {message}")
        self.status, self.message = status, message


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


class ServiceClient:
    """The HTTP calls of :mod:`pipeline.service`, with polling and 503 back-off."""

    STEP_WAIT_S = 7200.0  # the longest a client waits for one server step

    def __init__(self, url: str, timeout: float = 120.0, poll_s: float = 0.2,
                 busy_wait_s: float = 1800.0, step_wait_s: float | None = None) -> None:
        self.http = httpx.Client(base_url=url.rstrip("/") + API, timeout=timeout)
        self.poll_s = poll_s
        self.busy_wait_s = busy_wait_s
        self.step_wait_s = self.STEP_WAIT_S if step_wait_s is None else step_wait_s

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> "ServiceClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _call(self, method: str, path: str, **kw) -> httpx.Response:
        r = self.http.request(method, path, **kw)
        if r.status_code >= 400:
            raise ServiceError(r.status_code, _message(r))
        return r

    def info(self) -> dict:
        return self._call("GET", "/info").json()

    def commitment(self) -> bytes:
        return self._call("GET", "/model/commitment").content

    def client_specs(self) -> bytes:
        return self._call("GET", "/model/client-specs").content

    def status(self, sid: str) -> dict:
        return self._call("GET", f"/sessions/{sid}").json()

    def create(self, request: bytes, on_sent: Callable[[int], None] | None = None,
               on_busy: Callable[[float], None] | None = None) -> dict:
        """Upload a request file (streamed); waits out 503 answers as the server asks."""
        deadline = time.monotonic() + self.busy_wait_s
        while True:
            r = self.http.post("/sessions", content=_chunks(request, on_sent),
                               headers={"Content-Length": str(len(request)),
                                        "Content-Type": "application/octet-stream"})
            if r.status_code != 503:
                break
            wait = float(r.headers.get("Retry-After", "5"))
            if time.monotonic() + wait > deadline:
                raise ServiceError(503, _message(r))
            if on_busy is not None:
                on_busy(wait)
            time.sleep(wait)
        if r.status_code >= 400:
            raise ServiceError(r.status_code, _message(r))
        return r.json()

    def open(self, sid: str, opening: bytes) -> dict:
        return self._call("POST", f"/sessions/{sid}/opening", content=opening,
                          headers={"Content-Type": "application/octet-stream"}).json()

    def wait(self, sid: str, states: tuple[str, ...],
             on_progress: Callable[[int, int], None] | None = None) -> dict:
        """Poll the session until it reaches one of ``states``; ServiceError if it fails,
        TimeoutError after ``step_wait_s``."""
        deadline = time.monotonic() + self.step_wait_s
        while True:
            if time.monotonic() > deadline:
                raise TimeoutError(f"session {sid} did not reach {states} in "
                                   f"{self.step_wait_s:.0f} s")
            s = self.status(sid)
            if on_progress is not None and s["total"]:
                on_progress(s["done"], s["total"])
            if s["state"] in states:
                return s
            if s["state"] in ("failed", "expired"):
                raise ServiceError(409, s["error"] or f"the session {s['state']}")
            time.sleep(self.poll_s)

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
        return str(r.json().get("error", r.text))
    except ValueError:
        return r.text[:500]


def fhe_client_for(service: ServiceClient, info: dict, commitment: am.ModelCommitment,
                   allow_simulated: bool):
    """The FHE client matching the server's backend: real TFHE from its client specs, or,
    only if allowed, the simulation (nothing encrypted)."""
    if info["backend"] == "simulated":
        if not allow_simulated:
            raise ServiceError(400, "the server SIMULATES FHE (nothing would be encrypted); "
                                    "pass allow_simulated / --allow-simulated to go on anyway")
        from pipeline.backend import SimulatedFhe

        return SimulatedFhe.public_client(commitment)
    from fhe.client import HeadClient

    return HeadClient(service.client_specs())


def run_session(url: str, x: np.ndarray | None = None, *, k: int = 3,
                commitment: am.ModelCommitment | bytes | None = None,
                canaries=None, allow_simulated: bool = False, steps: Steps | None = None,
                service: ServiceClient | None = None) -> SessionResult:
    """Run one encrypted session against the server at ``url`` and return the verified,
    decrypted real output.

    ``x`` defaults to a sample from the canary source (a demonstration). ``canaries`` defaults
    to :class:`pipeline.canaries.ActivationCanaries` over fresh LayerNorm-like activations,
    the built-in heads' input distribution; a real deployment passes its own pool. Raises
    CheatingDetected / VerificationError if the server's proofs or outputs do not check,
    ServiceError if the server refuses.
    """
    from pipeline.canaries import ActivationCanaries, layer_norm_pool

    steps = steps if steps is not None else Steps()
    own = service is None
    service = service if service is not None else ServiceClient(url)
    try:
        steps.begin("fetch the model commitment")
        info = service.info()
        served = from_bytes(am.ModelCommitment, service.commitment())
        if isinstance(commitment, (bytes, bytearray)):
            commitment = from_bytes(am.ModelCommitment, bytes(commitment))
        if commitment is not None and commitment.digest != served.digest:
            raise S.CheatingDetected("the server serves another model commitment than the "
                                     "one given")
        from_server = commitment is None
        commitment = served if commitment is None else commitment
        fhe_client = fhe_client_for(service, info, commitment, allow_simulated)
        steps.end()

        if canaries is None:
            canaries = ActivationCanaries(commitment, layer_norm_pool(commitment, 64))
        if x is None:
            x = canaries.sample(1)[0]
        client = S.Client(commitment, fhe_client, canaries, k=k)
        steps.begin(f"keygen, encrypt x + {k} canaries")
        request = to_bytes(client.request(x))
        steps.end(len(request))

        steps.begin("upload the request", len(request), "B")
        created = service.create(request, on_sent=lambda n: steps.advance(n, len(request)))
        sid = created["session"]
        steps.end(len(request))

        steps.begin(f"server: evaluate {k + 1} ciphertexts", k + 1, "ct")
        service.wait(sid, ("evaluated", "proving", "proven"), steps.advance)
        steps.end()
        steps.begin("download the response")
        response_bytes = service.response(sid)
        response = from_bytes(S.Response, response_bytes)
        steps.end(len(response_bytes))

        steps.begin("open the canaries")
        opening = client.open(response)
        try:
            service.open(sid, to_bytes(opening))
        except ServiceError as e:
            if "proven already" not in e.message and "being proven" not in e.message:
                raise
        steps.end(len(to_bytes(opening)))

        steps.begin(f"server: prove {k} canaries", k, "proof")
        service.wait(sid, ("proven",), steps.advance)
        steps.end()
        steps.begin("download the bundle")
        bundle_bytes = service.bundle(sid)
        steps.end(len(bundle_bytes))

        steps.begin("verify, check canaries, decrypt")
        y = client.finish(response, from_bytes(S.ProofBundle, bundle_bytes))
        steps.end()
        real, _ = client.session_state()
        return SessionResult(sid, y, real, opening.positions, commitment, from_server,
                             info["backend"] == "simulated", response_bytes, bundle_bytes,
                             list(steps.rows))
    finally:
        if own:
            service.close()
