"""`zkfhe serve`: encrypted sessions over HTTP, on Ray (DESIGN.md section 6c).

A Ray Serve application with a FastAPI ingress holds the proving model and the FHE backend;
the work runs as Ray tasks, so it spreads over whatever Ray cluster the service joins (a local
one by default)::

    POST /v1/sessions                 request file (streamed, size-limited) -> 202 {session}
    GET  /v1/sessions?request=DIGEST  the caller's session of that request, if any
    GET  /v1/sessions/{id}            state and progress of the current step
    GET  /v1/sessions/{id}/response   the response file (outputs + receipt), once evaluated
    POST /v1/sessions/{id}/opening    the canary opening -> 202; proving starts
    GET  /v1/sessions/{id}/bundle     the proof bundle, once proven
    GET  /v1/model/commitment         the public model commitment file
    GET  /v1/model/client-specs       the circuit's client specs (real TFHE only)
    GET  /v1/info, /v1/health
    POST /v1/completions              {"prompt", "max_tokens", "model"} -> a greedy completion
                                      of the whole integer model (``llm_dir``) + its proof_id
    GET  /v1/proofs/{id}              202 + JSON while proving; 200 + the proof file when done
    GET  /v1/model/llm-commitment     the whole model's public commitment (model.zkm)

Access (``tokens``, from ``zkfhe serve --tokens FILE``, :mod:`pipeline.tokens`): every call but
``/v1/health`` needs ``Authorization: Bearer TOKEN`` (401 without one or with an unknown one);
a session is visible only to the token that created it (403 for any other); a token has at most
its ``max_active`` unfinished sessions (429 with Retry-After beyond). Without tokens the
service is open (loopback use; ``zkfhe serve`` refuses another host without ``--tokens``
unless told). TLS: ``start(ssl_certfile=..., ssl_keyfile=...)`` hands the certificate and key
to uvicorn through Ray Serve's HTTP options.

Idempotent for retrying clients: uploading a request again returns its session (same
token; an upload whose ``Zkfhe-Request-Digest`` header names a session of its token is not
counted against the token's limit), ``GET /v1/sessions?request=DIGEST`` finds it without an
upload, and posting the opening a session was opened with again is answered 200.

Fan-out: a session's k+1 ciphertexts are evaluated by k+1 tasks (``evaluate_ciphertext``)
that share one copy of the evaluation keys in the object store (put once per session; a worker
deserializes them once and keeps the last few key sets); each canary proof is its own task
(``prove_canary``). Tasks are retried by Ray if their worker dies (``max_retries``), never on
an exception of their own (a refused ciphertext stays refused).

Admission: at most ``max_active`` sessions have work running at once; up to ``max_queued``
more wait; beyond that a new session gets 503 with a Retry-After estimate. Openings of
admitted sessions are never refused for load.

Verifiable completions (``llm_dir``: an owner's folder of ``zkfhe model-commit``): the
replica generates greedily with the integer model (in a thread, off the event loop), answers at
once with the completion and a ``proof_id``, and proves the generation in a Ray task
(``prove_completion``); the job (JSON) and the finished proof (raw bytes) persist in the store
(:class:`pipeline.store.ProofStore`), so a restarted service finishes pending proofs and still
serves finished ones. Text prompts are tokenized by :mod:`pipeline.llm_text` (the choice follows
the commitment's origin), the same code the client uses to check the proven ids. A proof is
visible only to the token that asked for it; a token has at most ``max_active`` unfinished
proofs (429 beyond); ``Idempotency-Key`` makes a retried request return the same completion.

Files on the wire are the session's versioned formats (:mod:`pipeline.session`), never pickle.
Every upload is decoded and checked (kind, version, model, circuit, key ids, envelopes) before
anything is stored; a refusal is a 4xx whose JSON ``error`` is the decoder's message. (Between
the service and its Ray workers, Ray's own serialization carries bytes and arrays inside the
cluster, which is trusted.)
"""

# no `from __future__ import annotations`: FastAPI reads the handlers' annotations
import asyncio
import hashlib
import hmac
import io
import json
import math
import re
import secrets
import tempfile
import time
from collections import OrderedDict
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import ray
from fastapi import FastAPI
from fastapi import Request as HttpRequest
from fastapi.responses import JSONResponse, Response
from ray import serve

from fhe.errors import FheInputError
from fhe.wire import ZERO_ID, Kind, sha3, unpack
from pipeline import session as S
from pipeline import llm_text
from pipeline import store as st
from pipeline.tokens import Token, TokenTable
from zk.attention_model import ProvingModel
from zk.attention_ref import QuantizedHead, run_reference
from zk.encoding import from_bytes, to_bytes
from zk.errors import MalformedProofError, VerificationError
from zk.model import llama as ML

API = "/v1"
APP_NAME = "zkfhe"


@dataclass(frozen=True)
class ServiceConfig:
    """Everything one service instance needs; picklable, handed to the Serve replica.

    ``model_dir`` holds ``model.private`` and, for real TFHE, ``circuit/`` (``zkfhe commit``).
    ``simulate`` evaluates with :class:`pipeline.backend.SimulatedFhe` (no encryption: tests
    and benchmarks); ``simulate_head`` names the head it simulates (default: the committed
    one; another head is a dishonest server, which tests use).
    ``llm_dir`` (optional) is an owner's folder of ``zkfhe model-commit`` (``private.npz``,
    ``model.zkm``): the service then also serves verifiable completions of that whole model.
    """

    model_dir: str
    store_dir: str
    simulate: bool = False
    simulate_head: QuantizedHead | None = None
    ttl_s: float = 3600.0
    gc_interval_s: float = 60.0
    max_active: int = 4
    max_queued: int = 32
    max_upload: int = 4 << 30
    max_opening: int = 64 << 20
    task_retries: int = 3
    tokens: tuple[Token, ...] | None = None  # None: no access control (loopback use)
    simulate_delay_s: float = 0.0  # tests: each simulated evaluation takes this long
    # verifiable completions: an owner's folder of `zkfhe model-commit` (private.npz, model.zkm)
    llm_dir: str | None = None
    llm_max_tokens: int = 16  # the most tokens one completion may ask for
    llm_max_body: int = 1 << 16  # bytes of a completion request's JSON body
    llm_max_active: int = 4  # proofs running at once (Ray tasks)
    llm_max_queued: int = 64  # more proofs waiting; beyond, 503
    llm_prove_threads: int = 1  # CPUs (numba threads) of one proof task
    llm_prove_delay_s: float = 0.0  # tests: each proof task sleeps this long first


# ---------------------------------------------------------------- FHE backends (run in tasks)


class RealBackend:
    """The compiled circuit (``circuit/`` of a model folder), shipped to workers through the
    object store, so that a worker on another machine needs no shared file system."""

    kind = "tfhe"

    def __init__(self, circuit_dir: Path) -> None:
        from fhe.client import parse_client_specs
        from fhe.server import CIRCUIT_FILE, SPECS_FILE

        self.client_specs = (circuit_dir / SPECS_FILE).read_bytes()
        self.circuit_id = parse_client_specs(self.client_specs)[0]
        self.token = secrets.token_hex(8)
        zipped = (circuit_dir / CIRCUIT_FILE).read_bytes()
        self._zip = [ray.put(np.frombuffer(zipped, dtype=np.uint8))]  # boxed: not resolved

    def fhe_server(self):
        from fhe.server import CIRCUIT_FILE, SPECS_FILE, HeadServer

        with tempfile.TemporaryDirectory() as d:
            (Path(d) / CIRCUIT_FILE).write_bytes(ray.get(self._zip[0]).tobytes())
            (Path(d) / SPECS_FILE).write_bytes(self.client_specs)
            return HeadServer.load(d)


class SimulatedBackend:
    """:class:`pipeline.backend.SimulatedFhe` of a head: no encryption, same envelopes."""

    kind = "simulated"
    client_specs = None

    def __init__(self, head: QuantizedHead, delay_s: float = 0.0) -> None:
        from pipeline.backend import simulated_circuit_id

        self.head = head
        self.delay_s = float(delay_s)
        self.circuit_id = simulated_circuit_id(head.config)
        self.token = secrets.token_hex(8)

    def fhe_server(self):
        from pipeline.backend import SimulatedFhe

        head, delay = self.head, self.delay_s
        server = SimulatedFhe(head).server

        # like the encrypted circuit, the simulation refuses no input: inputs outside the
        # calibrated bounds are refused where they are visible (client, prover at the opening)
        def evaluate(x):
            if delay:
                time.sleep(delay)
            return run_reference(x, head, check=False)[0]

        server.evaluate = evaluate
        return server


# What one worker process keeps between tasks (least recently used first out): decoded models,
# loaded circuits with the last few evaluation key sets each (a session's ciphertexts mostly
# land on the same few workers).
_MODELS: OrderedDict = OrderedDict()
_SERVERS: OrderedDict = OrderedDict()
_KEEP_MODELS, _KEEP_SERVERS, _KEEP_KEYS = 2, 2, 2


def _lru(cache: OrderedDict, key, make, keep: int, drop=None):
    if key not in cache:
        cache[key] = make()
        while len(cache) > keep:
            old_key, old = cache.popitem(last=False)
            if drop is not None:
                drop(old_key, old)
    cache.move_to_end(key)
    return cache[key]


def _worker_model(box: list, digest: bytes) -> ProvingModel:
    return _lru(_MODELS, digest, lambda: from_bytes(ProvingModel, ray.get(box[0]).tobytes()),
                _KEEP_MODELS)


@ray.remote
def evaluate_ciphertext(backend, keys_box: list, blob: bytes) -> bytes:
    """Evaluate one INPUT blob under the session's evaluation keys; the OUTPUT blob."""
    server, loaded = _lru(_SERVERS, backend.token, lambda: (backend.fhe_server(), OrderedDict()),
                          _KEEP_SERVERS)
    drop = getattr(server, "drop_evaluation_keys", None)
    _lru(loaded, unpack(blob, Kind.INPUT).key_id,
         lambda: server.add_evaluation_keys(ray.get(keys_box[0]).tobytes()), _KEEP_KEYS,
         None if drop is None else (lambda key_id, _: drop(key_id)))
    return server.run_batch([blob])[0]


@ray.remote
def prove_canary(model_box: list, model_digest: bytes, position: int, x: np.ndarray,
                 receipt: bytes) -> bytes:
    """One canary's proof file, bound to the receipt (:func:`pipeline.session.prove_canary`)."""
    return S.prove_canary(_worker_model(model_box, model_digest), position, x, receipt)


_LLMS: OrderedDict = OrderedDict()


def _worker_llm(box: list, digest: bytes) -> ML.ProvingLlama:
    return _lru(_LLMS, digest, lambda: ML.load_private(io.BytesIO(ray.get(box[0]).tobytes())), 1)


@ray.remote
def prove_completion(llm_box: list, digest: bytes, tokens: list, prompt_len: int,
                     threads: int, delay_s: float = 0.0) -> bytes:
    """The proof file of one greedy generation (prompt + generated ids) of the whole model."""
    if delay_s:
        time.sleep(delay_s)
    pm = _worker_llm(llm_box, digest)
    return ML.prove(pm, np.asarray(tokens, dtype=np.int64), prompt_len, threads=threads).to_bytes()


class LlmModel:
    """The replica's whole integer model: the owner's private side, its commitment file, and
    what requests are checked against."""

    def __init__(self, folder: Path) -> None:
        private = folder / "private.npz"
        if not private.is_file():
            raise ValueError(f"no private.npz in {folder} (run zkfhe model-commit first)")
        self.pm = ML.load_private(private)
        self.commitment_file = self.pm.commitment.to_bytes()
        public = folder / "model.zkm"
        if public.is_file() and public.read_bytes() != self.commitment_file:
            raise ValueError(f"{public} is not the commitment of {private}")
        self.digest = self.pm.commitment.digest
        self.config = self.pm.config
        origin = self.pm.commitment.origin
        self.name = str(origin.get("model") or "zk-llama-" + self.digest.hex()[:12])
        self.tokenizer_name = llm_text.tokenizer_name(origin, self.config.vocab)
        self.box = [ray.put(np.frombuffer(private.read_bytes(), dtype=np.uint8))]

    def tokenizer(self):
        """The model's tokenizer, or None (ids only); HttpError 422 if it cannot be loaded."""
        if self.tokenizer_name is None:
            return None
        try:
            return llm_text.tokenizer_for(self.pm.commitment.origin, self.config.vocab)
        except (ImportError, OSError, ValueError) as e:
            raise HttpError(422, f"this server cannot load the tokenizer of {self.name} "
                            f"({e}); send the prompt as a list of token ids") from None

    def info(self, max_tokens: int) -> dict:
        """What ``/v1/info`` says of the whole model."""
        return {"model": self.name, "digest": self.digest.hex(), "vocab": self.config.vocab,
                "max_len": self.config.max_len, "tokenizer": self.tokenizer_name,
                "max_tokens": max_tokens}


_COMPLETION_FIELDS = {"model", "prompt", "max_tokens", "temperature", "n", "stream", "echo",
                      "user", "logprobs", "stop"}
_KEY = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def _int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def parse_completion(body: object, llm: LlmModel, max_tokens_limit: int):
    """Check a completion request's JSON body: (prompt text or None, prompt ids or None,
    max_tokens). HttpError 400 (not an object), 404 (another model) or 422 (a field refused),
    each with its reason."""
    if not isinstance(body, dict):
        raise HttpError(400, "the body must be a JSON object: {\"prompt\": ..., "
                        "\"max_tokens\": N}")
    unknown = sorted(set(body) - _COMPLETION_FIELDS)
    if unknown:
        raise HttpError(422, f"unsupported fields: {', '.join(map(repr, unknown))} (this server "
                        "takes model, prompt, max_tokens; it generates greedily)")
    model = body.get("model")
    if model is not None and model not in (llm.name, llm.digest.hex()):
        raise HttpError(404, f"unknown model {model!r}: this server serves {llm.name!r}")
    t = body.get("temperature")
    if t is not None and (isinstance(t, bool) or not isinstance(t, (int, float)) or t != 0):
        raise HttpError(422, "this server generates greedily: temperature must be 0 or absent")
    for name, ok in (("n", 1), ("stream", False), ("echo", False), ("logprobs", None),
                     ("stop", None)):
        v = body.get(name, ok)
        if v != ok or type(v) is not type(ok):
            raise HttpError(422, f"{name} must be {json.dumps(ok)} or absent (greedy, one choice, "
                            "no streaming, no stop sequences)")
    if "user" in body and not isinstance(body["user"], str):
        raise HttpError(422, "user must be a string")
    if "prompt" not in body:
        raise HttpError(422, "prompt is required: a string or a list of token ids")
    prompt = body["prompt"]
    text = ids = None
    if isinstance(prompt, str):
        if not prompt:
            raise HttpError(422, "prompt is empty")
        text = prompt
    elif isinstance(prompt, list) and prompt and all(_int(i) for i in prompt):
        ids = [int(i) for i in prompt]
    elif isinstance(prompt, list) and prompt and all(isinstance(p, (str, list)) for p in prompt):
        raise HttpError(422, "one prompt per request: a string or a list of token ids")
    else:
        raise HttpError(422, "prompt must be a non-empty string or a non-empty list of integer "
                        "token ids")
    n = body.get("max_tokens", min(16, max_tokens_limit))
    if not _int(n) or not 1 <= n <= max_tokens_limit:
        raise HttpError(422, f"max_tokens must be an integer in 1..{max_tokens_limit}")
    return text, ids, n


def check_prompt_ids(ids: list[int], n: int, cfg) -> None:
    """The ids are in the vocabulary and prompt + completion fit the model (HttpError 422)."""
    if not ids:
        raise HttpError(422, "the prompt has no tokens")
    bad = [i for i in ids if not 0 <= i < cfg.vocab]
    if bad:
        raise HttpError(422, f"token id {bad[0]} is outside the vocabulary [0, {cfg.vocab})")
    room = cfg.max_len + 1 - len(ids)
    if room < 1:
        raise HttpError(422, f"the prompt has {len(ids)} tokens; this model takes at most "
                        f"{cfg.max_len}")
    if n > room:
        raise HttpError(422, f"max_tokens {n} is too many for a prompt of {len(ids)} tokens: "
                        f"at most {room} (the model's context is {cfg.max_len} positions)")


# ---------------------------------------------------------------- the HTTP application


class HttpError(Exception):
    def __init__(self, status: int, message: str, headers: dict | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


def _error(e: HttpError) -> JSONResponse:
    return JSONResponse({"error": e.message}, status_code=e.status, headers=e.headers)


_ANON = Token("anonymous", "", 1 << 30)  # every caller of a service without tokens
_BEARER = {"WWW-Authenticate": "Bearer"}


_STATE_STATUS = {st.EXPIRED: 410, st.FAILED: 409}


def _cause(e: BaseException) -> str:
    """The message of what a task raised (Ray wraps it), or the failure's own."""
    cause = getattr(e, "cause", None)
    return str(cause) if cause is not None else f"{type(e).__name__}: {e}"


# Serve pickles the class below when it is decorated: what it uses must be defined above it.

app = FastAPI(title="zkfhe", description="encrypted attention inference with canary proofs")


@serve.deployment(num_replicas=1, max_ongoing_requests=512, ray_actor_options={"num_cpus": 0},
                  health_check_period_s=5, graceful_shutdown_timeout_s=5,
                  graceful_shutdown_wait_loop_s=0.5)
@serve.ingress(app)
class ZkfheService:
    """The ingress replica: checks uploads, keeps the store, schedules tasks, answers polls."""

    def __init__(self, config: ServiceConfig) -> None:
        self.config = config
        model_dir = Path(config.model_dir)
        self.model = from_bytes(ProvingModel, (model_dir / "model.private").read_bytes())
        self.model_digest = self.model.commitment.digest
        self.commitment_file = to_bytes(self.model.commitment)
        if config.simulate:
            self.backend = SimulatedBackend(config.simulate_head or self.model.head,
                                            config.simulate_delay_s)
        else:
            self.backend = RealBackend(model_dir / "circuit")
        self.model_box = [ray.put(np.frombuffer(to_bytes(self.model), dtype=np.uint8))]
        self.store = st.SessionStore(config.store_dir, config.ttl_s)
        self.store.clear_uploads()
        self.tokens = None if config.tokens is None else TokenTable(config.tokens)
        self.reserved: dict[str, int] = {}  # per owner: uploads admitted, not yet sessions
        self.slots = asyncio.Semaphore(config.max_active)
        self.waiting = 0  # jobs admitted, not yet running
        self.running = 0
        self.refused = 0  # 503 answers so far
        self.job_s = 1.0  # running mean of a job's duration, for Retry-After
        self.jobs: set[asyncio.Task] = set()
        self.started = False
        # verifiable completions
        self.llm = None if config.llm_dir is None else LlmModel(Path(config.llm_dir))
        self.proofs = st.ProofStore(config.store_dir, config.ttl_s)
        self.proof_slots = asyncio.Semaphore(config.llm_max_active)
        self.gen_slots = asyncio.Semaphore(2)  # generations in threads of this replica
        self.proof_pending = 0  # proof jobs scheduled, not finished
        self.proof_s = 5.0  # running mean of a proof's duration, for Retry-After
        self.proof_reserved: dict[str | None, int] = {}

    async def _start(self) -> None:
        """Resume the sessions a previous process left in flight; start the collector."""
        if self.started:
            return
        self.started = True
        for rec in self.store.in_flight():
            self._enqueue(self._evaluate(rec.id) if rec.state == st.EVALUATING
                          else self._prove(rec.id))
        for job in self.proofs.in_flight():
            self._enqueue_proof(job.id)
        self._spawn(self._collect())

    def _enqueue(self, job) -> None:
        """Count a job as waiting now (admission sees it at once), then schedule it."""
        self.waiting += 1
        self._spawn(job)

    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.jobs.add(task)
        task.add_done_callback(self.jobs.discard)

    async def check_health(self) -> None:
        """Serve's periodic health check; also starts the background work after a restart
        before any request arrives."""
        await self._start()

    # ------------------------------------------------------------ info

    @app.get(API + "/health")
    async def health(self) -> dict:
        await self._start()
        return {"status": "ok", "backend": self.backend.kind, "running": self.running,
                "waiting": self.waiting, "refused_busy": self.refused,
                "sessions": self.store.count(), "proofs": self.proofs.count(),
                "proofs_pending": self.proof_pending}

    @app.get(API + "/info")
    async def info(self, http: HttpRequest) -> Response:
        await self._start()
        try:
            token = self._auth(http)
        except HttpError as e:
            return _error(e)
        cfg = self.model.commitment.config
        return JSONResponse({
            "api": 1, "backend": self.backend.kind, "model_digest": self.model_digest.hex(),
            "circuit_id": self.backend.circuit_id.hex(), "seq_len": cfg.seq_len,
            "d_model": cfg.d_model, "d_head": cfg.d_head, "max_upload": self.config.max_upload,
            "ttl_s": self.config.ttl_s,
            "llm": None if self.llm is None else self.llm.info(self.config.llm_max_tokens),
            "token": None if self.tokens is None else token.public()})

    @app.get(API + "/model/commitment")
    async def commitment(self, http: HttpRequest) -> Response:
        try:
            self._auth(http)
        except HttpError as e:
            return _error(e)
        return Response(self.commitment_file, media_type="application/octet-stream")

    @app.get(API + "/model/client-specs")
    async def client_specs(self, http: HttpRequest) -> Response:
        try:
            self._auth(http)
        except HttpError as e:
            return _error(e)
        if self.backend.client_specs is None:
            return _error(HttpError(404, "this server simulates FHE: it has no client specs"))
        return Response(self.backend.client_specs, media_type="application/octet-stream")

    # ------------------------------------------------------------ sessions

    @app.post(API + "/sessions")
    async def create(self, http: HttpRequest) -> Response:
        await self._start()
        owner, reserved = None, False
        try:
            token = self._auth(http)
            owner = self._owner(token)
            self._admit()
            # a client uploading again a request it may have uploaded already (its answer was
            # lost) names it: that upload is not a new session, and no limit applies to it
            again = self._declared(http, owner)
            if not again:
                reserved = self._reserve(token, owner)
            path = await self._receive(http, self.config.max_upload, "request")
            try:
                request = await asyncio.to_thread(self._check_request, path)
                found = self.store.find(request.digest)
                if found is not None:
                    self._check_owner(found, owner)
                    return JSONResponse({"session": found.id, "state": found.state,
                                         "existing": True}, status_code=200)
                if not reserved:
                    reserved = self._reserve(token, owner)
                self._admit()
                rec = await asyncio.to_thread(self.store.create, request.digest,
                                              len(request.inputs), path, owner)
            finally:
                path.unlink(missing_ok=True)
        except HttpError as e:
            return _error(e)
        except st.StoreError as e:  # the same request uploaded twice at once
            return _error(HttpError(409, str(e)))
        finally:
            if reserved:
                self.reserved[owner] -= 1
                if not self.reserved[owner]:
                    del self.reserved[owner]
        self._enqueue(self._evaluate(rec.id))
        return JSONResponse({"session": rec.id, "state": rec.state}, status_code=202)

    @app.get(API + "/sessions")
    async def lookup(self, http: HttpRequest, request: str = "") -> Response:
        """The caller's session made from the request with this SHA3-256 digest (hex): lets a
        client whose upload's answer was lost find its session without uploading again."""
        await self._start()
        try:
            owner = self._owner(self._auth(http))
            try:
                digest = bytes.fromhex(request)
            except ValueError:
                digest = b""
            if len(digest) != 32:
                raise HttpError(400, "?request= must be a request digest: 64 hex digits")
            found = self.store.find(digest)
            if found is None:
                raise HttpError(404, "no session for this request")
            self._check_owner(found, owner)
        except HttpError as e:
            return _error(e)
        return JSONResponse({"session": found.id, "state": found.state, "existing": True})

    @app.get(API + "/sessions/{sid}")
    async def status(self, sid: str, http: HttpRequest) -> Response:
        await self._start()
        try:
            return JSONResponse(self._record(sid, http).public())
        except HttpError as e:
            return _error(e)

    @app.get(API + "/sessions/{sid}/response")
    async def response(self, sid: str, http: HttpRequest) -> Response:
        return await self._file(sid, http, "response", (st.EVALUATED, st.PROVING, st.PROVEN))

    @app.get(API + "/sessions/{sid}/bundle")
    async def bundle(self, sid: str, http: HttpRequest) -> Response:
        return await self._file(sid, http, "bundle", (st.PROVEN,))

    @app.post(API + "/sessions/{sid}/opening")
    async def opening(self, sid: str, http: HttpRequest) -> Response:
        await self._start()
        try:
            rec = self._record(sid, http)
            if rec.state in (st.PROVING, st.PROVEN):  # a client retrying: the same opening?
                path = await self._receive(http, self.config.max_opening, "opening")
                try:
                    data = path.read_bytes()
                finally:
                    path.unlink(missing_ok=True)
                try:
                    stored = await asyncio.to_thread(self.store.read, sid, "opening")
                except FileNotFoundError:  # collected meanwhile
                    stored = b""
                if stored and hmac.compare_digest(data, stored):
                    return JSONResponse({"session": sid, "state": rec.state, "existing": True})
                raise HttpError(409, st.refusal(rec, "open"))
            if rec.state != st.EVALUATED:
                raise HttpError(_STATE_STATUS.get(rec.state, 409), st.refusal(rec, "open"))
            path = await self._receive(http, self.config.max_opening, "opening")
            try:
                data = path.read_bytes()
                n = await asyncio.to_thread(self._check_opening, sid, data)
                self.store.put_opening(sid, data, n)
            finally:
                path.unlink(missing_ok=True)
        except HttpError as e:
            return _error(e)
        except st.StoreError:  # opened concurrently
            return _error(HttpError(409, st.refusal(self.store.get(sid), "open")))
        self._enqueue(self._prove(sid))
        return JSONResponse({"session": sid, "state": st.PROVING}, status_code=202)

    # ------------------------------------------------------------ verifiable completions

    def _need_llm(self) -> LlmModel:
        if self.llm is None:
            raise HttpError(404, "this server serves no whole model (zkfhe serve --llm DIR)")
        return self.llm

    @app.get(API + "/model/llm-commitment")
    async def llm_commitment(self, http: HttpRequest) -> Response:
        """The whole model's public commitment file (a client checks it against the owner's)."""
        try:
            self._auth(http)
            llm = self._need_llm()
        except HttpError as e:
            return _error(e)
        return Response(llm.commitment_file, media_type="application/octet-stream")

    @app.post(API + "/completions")
    async def completions(self, http: HttpRequest) -> Response:
        """A greedy completion of the whole integer model; its proof follows (``proof_id``)."""
        await self._start()
        owner, reserved = None, False
        try:
            token = self._auth(http)
            owner = self._owner(token)
            llm = self._need_llm()
            raw = await self._body(http, self.config.llm_max_body, "completion request")
            try:
                body = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                raise HttpError(400, f"the body is not JSON: {e}") from None
            key = http.headers.get("idempotency-key")
            if key is not None:
                if not _KEY.fullmatch(key):
                    raise HttpError(400, "Idempotency-Key must be 1-128 characters of "
                                    "[A-Za-z0-9._:-]")
                key = f"{key}|{hashlib.sha256(raw).hexdigest()[:32]}"
                found = self.proofs.find_key(owner, key.split("|")[0])
                if found is not None:
                    if found.key != key:
                        raise HttpError(422, "this Idempotency-Key was used for another request")
                    return JSONResponse(found.completion)
            text, ids, n = parse_completion(body, llm, self.config.llm_max_tokens)
            tok = llm.tokenizer() if text is not None else None
            if text is not None:
                if tok is None:
                    raise HttpError(422, f"{llm.name} has no tokenizer: send the prompt as a "
                                    "list of token ids")
                try:
                    ids = await asyncio.to_thread(tok.encode, text)
                except ValueError as e:
                    raise HttpError(422, str(e)) from None
            check_prompt_ids(ids, n, llm.config)
            self._admit_proof()
            reserved = self._reserve_proof(token, owner)
            async with self.gen_slots:
                try:
                    seq = await asyncio.to_thread(ML.generate, llm.pm,
                                                  np.asarray(ids, np.int64), n)
                except (ValueError, ArithmeticError) as e:  # never expected: the ids are checked
                    raise HttpError(500, f"generation failed: {e}") from None
            generated = [int(t) for t in seq[len(ids):]]
            if tok is None and llm.tokenizer_name is not None:
                try:
                    tok = llm.tokenizer()
                except HttpError:
                    tok = None
            out_text = "" if tok is None else tok.decode(generated)
            pid = secrets.token_hex(16)
            completion = {
                "id": f"cmpl-{pid}", "object": "text_completion", "created": int(time.time()),
                "model": llm.name,
                "choices": [{"index": 0, "text": out_text, "token_ids": generated,
                             "logprobs": None, "finish_reason": "length"}],
                "usage": {"prompt_tokens": len(ids), "completion_tokens": len(generated),
                          "total_tokens": len(ids) + len(generated)},
                "proof_id": pid, "model_digest": llm.digest.hex()}
            await asyncio.to_thread(self.proofs.create, owner, seq, len(ids), llm.digest,
                                    completion, key, pid)
        except HttpError as e:
            return _error(e)
        finally:
            if reserved:
                self.proof_reserved[owner] -= 1
                if not self.proof_reserved[owner]:
                    del self.proof_reserved[owner]
        self._enqueue_proof(pid)
        return JSONResponse(completion)

    @app.get(API + "/proofs/{pid}")
    async def proof(self, pid: str, http: HttpRequest) -> Response:
        """202 + the job's state while proving; 200 + the proof file once proven."""
        await self._start()
        try:
            owner = self._owner(self._auth(http))
            job = self.proofs.get(pid)
            if job is None:
                raise HttpError(404, "unknown proof")
            if self.tokens is not None and not hmac.compare_digest(job.owner or "",
                                                                   owner or ""):
                raise HttpError(403, "this proof belongs to another API token")
            if job.state == st.PROVING:
                wait = max(1, math.ceil(min(self.proof_s, 10.0)))
                return JSONResponse(job.public(), status_code=202,
                                    headers={"Retry-After": str(wait)})
            if job.state == st.FAILED:
                raise HttpError(409, f"the proof failed: {job.error}")
            if job.state == st.EXPIRED:
                raise HttpError(410, "the proof expired and was deleted; ask for the "
                                "completion again")
            data = await asyncio.to_thread(self.proofs.read_proof, pid)
        except FileNotFoundError:  # collected between the state check and the read
            return _error(HttpError(410, "the proof expired and was deleted"))
        except HttpError as e:
            return _error(e)
        return Response(data, media_type="application/octet-stream",
                        headers={"Zkfhe-Model-Digest": job.model_digest,
                                 "Zkfhe-Prove-Seconds": f"{job.prove_s or 0.0:.3f}"})

    def _admit_proof(self) -> None:
        cfg = self.config
        if self.proof_pending >= cfg.llm_max_active + cfg.llm_max_queued:
            self.refused += 1
            wait = math.ceil(self.proof_s * (self.proof_pending + 1) / cfg.llm_max_active)
            raise HttpError(503, f"the server is busy ({self.proof_pending} proofs pending); "
                            f"retry in {wait} s", {"Retry-After": str(max(1, wait))})

    def _reserve_proof(self, token: Token, owner: str | None) -> bool:
        """Count a completion against its token's limit on unfinished proofs (429 past it)."""
        if self.tokens is None:
            return False
        active = self.proofs.active(owner) + self.proof_reserved.get(owner, 0)
        if active >= token.max_active:
            wait = max(1, math.ceil(self.proof_s))
            raise HttpError(429, f"the token {token.name!r} has {active} unfinished proofs, "
                            "its limit; wait for one and retry", {"Retry-After": str(wait)})
        self.proof_reserved[owner] = self.proof_reserved.get(owner, 0) + 1
        return True

    def _enqueue_proof(self, pid: str) -> None:
        self.proof_pending += 1
        self._spawn(self._prove_completion(pid))

    async def _prove_completion(self, pid: str) -> None:
        try:
            async with self.proof_slots:
                job = self.proofs.get(pid)
                if job is None:
                    return
                if self.llm is None or job.model_digest != self.llm.digest.hex():
                    raise RuntimeError("the server no longer serves the model of this proof")
                t0 = time.perf_counter()
                cfg = self.config
                task = prove_completion.options(max_retries=cfg.task_retries,
                                                num_cpus=cfg.llm_prove_threads)
                data = await task.remote(self.llm.box, self.llm.digest, list(job.tokens),
                                         job.prompt_len, cfg.llm_prove_threads,
                                         cfg.llm_prove_delay_s)
                dt = time.perf_counter() - t0
                await asyncio.to_thread(self.proofs.put_proof, pid, data, dt)
                self.proof_s = 0.8 * self.proof_s + 0.2 * dt
        except asyncio.CancelledError:
            raise  # the service is stopping: the job stays proving and resumes later
        except Exception as e:  # noqa: BLE001 - recorded for the client, the service goes on
            self.proofs.fail(pid, f"proof refused: {_cause(e)}")
        finally:
            self.proof_pending -= 1

    async def _body(self, http: HttpRequest, limit: int, what: str) -> bytes:
        """A small body in memory, refused past ``limit`` bytes (413)."""
        declared = http.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise HttpError(413, f"the {what} is {int(declared):,} bytes; the limit is "
                            f"{limit:,}")
        chunks, size = [], 0
        async for chunk in http.stream():
            size += len(chunk)
            if size > limit:
                raise HttpError(413, f"the {what} exceeds the limit of {limit:,} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    # ------------------------------------------------------------ checks

    def _auth(self, http: HttpRequest) -> Token:
        """The caller's token (401 without a valid one); everyone, without tokens."""
        if self.tokens is None:
            return _ANON
        header = http.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        if not header:
            raise HttpError(401, "this server needs an API token: send the header "
                            "'Authorization: Bearer TOKEN'", _BEARER)
        if scheme.lower() != "bearer" or not value.strip():
            raise HttpError(401, "the Authorization header must be 'Bearer TOKEN'", _BEARER)
        token = self.tokens.match(value.strip())
        if token is None:
            raise HttpError(401, "unknown or revoked API token",
                            {"WWW-Authenticate": 'Bearer error="invalid_token"'})
        return token

    def _owner(self, token: Token) -> str | None:
        return None if self.tokens is None else token.sha256

    def _check_owner(self, rec: st.SessionRecord, owner: str | None) -> None:
        if self.tokens is not None and not hmac.compare_digest(rec.owner or "", owner or ""):
            raise HttpError(403, "this session belongs to another API token")

    def _declared(self, http: HttpRequest, owner: str | None) -> bool:
        """Whether the upload's Zkfhe-Request-Digest header names a session of this owner."""
        try:
            digest = bytes.fromhex(http.headers.get("zkfhe-request-digest", ""))
        except ValueError:
            return False
        found = self.store.find(digest) if len(digest) == 32 else None
        return found is not None and (self.tokens is None or found.owner == owner)

    def _reserve(self, token: Token, owner: str | None) -> bool:
        """Count an upload against its token's limit on unfinished sessions (429 past it);
        True if counted (the caller releases it once the upload is a session or refused)."""
        if self.tokens is None:
            return False
        active = self.store.active(owner) + self.reserved.get(owner, 0)
        if active >= token.max_active:
            wait = max(1, math.ceil(self.job_s))
            raise HttpError(429, f"the token {token.name!r} has {active} unfinished sessions, "
                            f"its limit; finish one (or wait for it) and retry",
                            {"Retry-After": str(wait)})
        self.reserved[owner] = self.reserved.get(owner, 0) + 1
        return True

    def _admit(self) -> None:
        cfg = self.config
        if self.running + self.waiting >= cfg.max_active + cfg.max_queued:
            self.refused += 1
            wait = math.ceil(self.job_s * (self.waiting + 1) / cfg.max_active)
            raise HttpError(503, f"the server is busy ({self.running} sessions running, "
                            f"{self.waiting} waiting); retry in {wait} s",
                            {"Retry-After": str(max(1, wait))})

    async def _receive(self, http: HttpRequest, limit: int, what: str) -> Path:
        """Stream the body into a scratch file, refusing it past ``limit`` bytes (413)."""
        declared = http.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise HttpError(413, f"the {what} is {int(declared):,} bytes; the limit is "
                            f"{limit:,}")
        path = self.store.upload_path()
        size = 0
        try:
            with open(path, "wb") as f:
                async for chunk in http.stream():
                    size += len(chunk)
                    if size > limit:
                        raise HttpError(413, f"the {what} exceeds the limit of {limit:,} bytes")
                    f.write(chunk)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return path

    def _check_request(self, path: Path) -> S.Request:
        """Decode a request file and check everything that can be checked without running the
        circuit: model, circuit, every envelope and key id (HttpError 400 otherwise)."""
        try:
            request = from_bytes(S.Request, path.read_bytes())
            S.Server(self.model, None).check_request(request)
            if request.circuit_id != self.backend.circuit_id:
                raise ValueError("the request was made for another circuit")
            keys = unpack(request.evaluation_keys, Kind.EVAL_KEYS, request.circuit_id, ZERO_ID)
            key_id = sha3(keys.payload)
            for i, blob in enumerate(request.inputs):
                try:
                    unpack(blob, Kind.INPUT, request.circuit_id, key_id)
                except FheInputError as e:
                    raise FheInputError(f"input {i}: {e}") from None
        except (MalformedProofError, ValueError) as e:
            raise HttpError(400, f"request refused: {e}") from None
        request.digest  # computed here, off the event loop
        return request

    def _check_opening(self, sid: str, data: bytes) -> int:
        """Decode an opening and check that it belongs to the session and that the prover will
        accept every canary (400 / 422 otherwise). Returns the number of canaries."""
        try:
            opening = from_bytes(S.CanaryOpening, data)
            request = from_bytes(S.Request, self.store.read(sid, "request"))
            response = from_bytes(S.Response, self.store.read(sid, "response"))
            S.check_opening(request, response, opening)
        except (MalformedProofError, ValueError, VerificationError) as e:
            raise HttpError(400, f"opening refused: {e}") from None
        cfg = self.model.commitment.config
        for pos, x in zip(opening.positions, opening.inputs):
            if x.shape != (cfg.seq_len, cfg.d_model):
                raise HttpError(400, f"opening refused: canary at position {pos} has shape "
                                f"{x.shape}, not {(cfg.seq_len, cfg.d_model)}")
            try:
                run_reference(x, self.model.head)
            except ValueError as e:
                raise HttpError(422, f"opening refused: canary at position {pos}: {e}") from None
        return len(opening.positions)

    def _record(self, sid: str, http: HttpRequest) -> st.SessionRecord:
        """The session's row, for the token that created it (401 / 404 / 403 otherwise)."""
        owner = self._owner(self._auth(http))
        try:
            rec = self.store.get(sid)
        except ValueError:
            rec = None
        if rec is None:
            raise HttpError(404, "unknown session")
        self._check_owner(rec, owner)
        return rec

    async def _file(self, sid: str, http: HttpRequest, name: str,
                    states: tuple[str, ...]) -> Response:
        await self._start()
        try:
            rec = self._record(sid, http)
            if rec.state not in states:
                if rec.state in (st.EVALUATING, st.PROVING, st.EVALUATED):
                    raise HttpError(409, f"no {name} yet: the session is {rec.state}")
                raise HttpError(_STATE_STATUS.get(rec.state, 409), st.refusal(rec, "fetch"))
            data = await asyncio.to_thread(self.store.read, sid, name)
        except FileNotFoundError:  # collected between the state check and the read
            return _error(HttpError(410, st.refusal(self.store.get(sid), "fetch")))
        except HttpError as e:
            return _error(e)
        return Response(data, media_type="application/octet-stream")

    # ------------------------------------------------------------ work

    @asynccontextmanager
    async def _slot(self):
        try:
            await self.slots.acquire()
        finally:
            self.waiting -= 1
        self.running += 1
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.running -= 1
            self.slots.release()
            self.job_s = 0.8 * self.job_s + 0.2 * (time.perf_counter() - t0)

    async def _gather(self, sid: str, refs: list) -> list:
        """Await task results in order, recording progress as each one finishes."""
        done = 0

        async def one(ref):
            nonlocal done
            out = await ref
            done += 1
            self.store.progress(sid, done, len(refs))
            return out

        try:
            return await asyncio.gather(*(one(r) for r in refs))
        except BaseException:
            for r in refs:
                ray.cancel(r)
            raise

    async def _evaluate(self, sid: str) -> None:
        try:
            async with self._slot():
                t0 = time.perf_counter()
                request = from_bytes(S.Request, await asyncio.to_thread(
                    self.store.read, sid, "request"))
                keys = [ray.put(np.frombuffer(request.evaluation_keys, dtype=np.uint8))]
                task = evaluate_ciphertext.options(max_retries=self.config.task_retries)
                refs = [task.remote(self.backend, keys, blob) for blob in request.inputs]
                outputs = await self._gather(sid, refs)
                response = to_bytes(S.respond(request, outputs))
                await asyncio.to_thread(self.store.put_response, sid, response,
                                        time.perf_counter() - t0)
        except asyncio.CancelledError:
            raise  # the service is stopping: the session stays in flight and resumes later
        except Exception as e:  # noqa: BLE001 - recorded for the client, the service goes on
            self.store.fail(sid, f"evaluation refused: {_cause(e)}")

    async def _prove(self, sid: str) -> None:
        try:
            async with self._slot():
                t0 = time.perf_counter()
                request, response, opening = await asyncio.to_thread(self._session_files, sid)
                receipt = S.check_opening(request, response, opening)
                task = prove_canary.options(max_retries=self.config.task_retries)
                refs = [task.remote(self.model_box, self.model_digest, pos, x, receipt)
                        for pos, x in zip(opening.positions, opening.inputs)]
                proofs = await self._gather(sid, refs)
                bundle = to_bytes(S.assemble_bundle(request, response, opening, proofs))
                await asyncio.to_thread(self.store.put_bundle, sid, bundle,
                                        time.perf_counter() - t0)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001
            self.store.fail(sid, f"proof refused: {_cause(e)}")

    def _session_files(self, sid: str):
        return (from_bytes(S.Request, self.store.read(sid, "request")),
                from_bytes(S.Response, self.store.read(sid, "response")),
                from_bytes(S.CanaryOpening, self.store.read(sid, "opening")))

    async def _collect(self) -> None:
        while True:
            await asyncio.to_thread(self.store.gc)
            await asyncio.to_thread(self.proofs.gc)
            await asyncio.sleep(self.config.gc_interval_s)


# ---------------------------------------------------------------- running it


def deploy(config: ServiceConfig, name: str = APP_NAME, route_prefix: str = "/"):
    """Deploy one service application on the running Serve instance; returns its handle."""
    return serve.run(ZkfheService.bind(config), name=name, route_prefix=route_prefix)


def start(host: str = "127.0.0.1", port: int = 8000, address: str | None = None,
          num_cpus: int | None = None, ssl_certfile: str | None = None,
          ssl_keyfile: str | None = None) -> None:
    """Start (or join, with ``address``) Ray and start Serve's HTTP proxy on host:port; with
    a certificate and its key, HTTPS (uvicorn's TLS, through Ray Serve's HTTP options)."""
    if (ssl_certfile is None) != (ssl_keyfile is None):
        raise ValueError("TLS needs both a certificate and its key")
    if not ray.is_initialized():
        ray.init(address=address, num_cpus=num_cpus if address is None else None,
                 include_dashboard=False, log_to_driver=False,
                 logging_level="WARNING")
    http = {"host": host, "port": port}
    if ssl_certfile is not None:
        http.update(ssl_certfile=str(ssl_certfile), ssl_keyfile=str(ssl_keyfile))
    serve.start(http_options=http, logging_config={"log_level": "WARNING"})


def stop() -> None:
    """Stop Serve and disconnect from Ray (a local Ray started here shuts down with it)."""
    try:
        serve.shutdown()
    finally:
        ray.shutdown()


def serve_forever(config: ServiceConfig, host: str, port: int, address: str | None,
                  ssl_certfile: str | None = None, ssl_keyfile: str | None = None) -> None:
    """`zkfhe serve`: start, deploy, and wait for Ctrl-C or SIGTERM."""
    import signal
    import threading

    stop_event = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop_event.set())
    start(host, port, address, ssl_certfile=ssl_certfile, ssl_keyfile=ssl_keyfile)
    try:
        deploy(config)
        scheme = "https" if ssl_certfile else "http"
        access = ("open to anyone who reaches it" if config.tokens is None else
                  f"{len(config.tokens)} API tokens")
        llm = "" if config.llm_dir is None else f" + completions of {config.llm_dir}"
        print(f"serving {config.model_dir}{llm} "
              f"({'SIMULATED FHE' if config.simulate else 'TFHE'}) "
              f"at {scheme}://{host}:{port}{API}/ ({access}); sessions in {config.store_dir}; "
              "Ctrl-C stops", flush=True)
        stop_event.wait()
    finally:
        stop()
