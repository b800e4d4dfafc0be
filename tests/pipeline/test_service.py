"""`zkfhe serve` end to end: a real local Ray, Ray Serve's HTTP proxy on 127.0.0.1 (a free
port), real HTTP clients. One Ray/Serve instance for the module; each test deploys the
service applications it needs under their own route prefixes and stores."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="the serve extra is not installed")
httpx = pytest.importorskip("httpx")

from pipeline import api  # noqa: E402
from pipeline import remote  # noqa: E402
from pipeline import service  # noqa: E402
from pipeline import session as S  # noqa: E402
from pipeline import store as st  # noqa: E402
from pipeline.backend import SimulatedFhe  # noqa: E402
from pipeline.canaries import ActivationCanaries  # noqa: E402
from pipeline.cli import EXIT_OK, EXIT_REJECTED, EXIT_USAGE, main  # noqa: E402
from zk import attention_model as am  # noqa: E402
from zk.attention_ref import random_head, run_reference  # noqa: E402
from zk.encoding import from_bytes, to_bytes  # noqa: E402
from pipeutil import SMALL, free_port  # noqa: E402





class Dirs:
    """Folders that live as long as the module's service (not pytest's shared basetemp,
    which a concurrent pytest run on the machine may prune while the service still runs)."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="zkfhe-serve-tests-"))
        self.n = 0

    def mktemp(self, name: str) -> Path:
        self.n += 1
        d = self.root / f"{name}-{self.n}"
        d.mkdir()
        return d


@pytest.fixture(scope="module")
def dirs():
    dirs = Dirs()
    yield dirs
    shutil.rmtree(dirs.root, ignore_errors=True)


@pytest.fixture(scope="module")
def world(dirs):
    head, _, calib = random_head(SMALL, seed=3, n_calib=24)
    pm, mc = am.commit(head)
    model_dir = dirs.mktemp("model")
    (model_dir / "model.private").write_bytes(to_bytes(pm))
    (model_dir / "model.commitment").write_bytes(to_bytes(mc))
    return {"head": head, "model": pm, "commitment": mc, "dir": model_dir,
            "canaries": ActivationCanaries(head, calib)}


@pytest.fixture(scope="module")
def serve_url():
    """A local Ray (2 CPUs) and Serve's proxy on a free port; shut down after the module."""
    remote.ServiceClient.DEADLINE_S = 300.0  # a stuck session fails the test, never hangs it
    remote.ServiceClient.BACKOFF_CAP_S = 2.0  # outages in these tests last seconds
    port = free_port()
    service.start("127.0.0.1", port, num_cpus=2)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        service.stop()


_apps: dict[str, str] = {}


def deploy(serve_url, world, dirs, name: str, **kw) -> tuple[str, Path]:
    """Deploy (once per module) a service application at /name with its own store."""
    if name not in _apps:
        store = dirs.mktemp(f"store-{name}")
        cfg = service.ServiceConfig(str(world["dir"]), str(store), **{"simulate": True, **kw})
        service.deploy(cfg, name=name, route_prefix=f"/{name}")
        _apps[name] = str(store)
    return f"{serve_url}/{name}", Path(_apps[name])


@pytest.fixture(scope="module")
def honest(serve_url, world, dirs):
    return deploy(serve_url, world, dirs, "honest")


def snapshot(store_dir: Path) -> dict:
    store = st.SessionStore(store_dir)
    try:
        return store.snapshot()
    finally:
        store.close()


def make_request(world, service_client=None, k: int = 3):
    """A client's request for the simulating server (built from public material only)."""
    client = S.Client(world["commitment"], SimulatedFhe.public_client(world["commitment"]),
                      world["canaries"], k=k)
    x = world["canaries"].sample(1)[0]
    return client, client.request(x), x


# ---------------------------------------------------------------- sessions


def test_honest_session_over_http(honest, world, tmp_path, capsys):
    url, store_dir = honest
    x = world["canaries"].sample(1)[0]
    res = remote.run_session(url, x, commitment=to_bytes(world["commitment"]),
                             allow_simulated=True, canaries=world["canaries"])
    assert np.array_equal(res.y, run_reference(x, world["head"])[0])
    assert res.simulated and not res.commitment_from_server
    assert res.real_position not in res.positions and len(res.positions) == 3
    # files once returned are returned again, byte for byte; an auditor accepts the bundle
    with remote.ServiceClient(url) as sc:
        assert sc.response(res.session) == res.response
        assert sc.bundle(res.session) == res.bundle
        assert sc.status(res.session)["state"] == "proven"
        assert sc.info()["backend"] == "simulated"
    verdict = api.verify(res.bundle, to_bytes(world["commitment"]),
                         response=from_bytes(S.Response, res.response))
    assert verdict.accepted and set(verdict.outputs) == set(res.positions)

    # the command line: a simulating server is refused unless allowed
    com = str(world["dir"] / "model.commitment")
    assert main(["client", "--server", url, "--commitment", com, "--out",
                 str(tmp_path / "refused")]) == EXIT_REJECTED
    assert "SIMULATES" in capsys.readouterr().err
    assert not (tmp_path / "refused").exists()
    out = tmp_path / "files"
    assert main(["client", "--server", url, "--commitment", com, "--allow-simulated",
                 "--out", str(out)]) == EXIT_OK
    assert "verdict: ACCEPTED" in capsys.readouterr().out
    assert main(["verify", com, str(out / "session.bundle"), "--response",
                 str(out / "session.response")]) == EXIT_OK


def test_cheating_server_caught(serve_url, world, dirs, capsys):
    other, _, _ = random_head(SMALL, seed=99)
    url, _ = deploy(serve_url, world, dirs, "cheat", simulate_head=other)
    with pytest.raises(S.CheatingDetected):
        remote.run_session(url, allow_simulated=True, canaries=world["canaries"])
    com = str(world["dir"] / "model.commitment")
    out = dirs.mktemp("cheated") / "session"
    assert main(["client", "--server", url, "--commitment", com, "--allow-simulated",
                 "--out", str(out)]) == EXIT_REJECTED
    printed = capsys.readouterr().out
    assert "REJECTED" in printed and f"kept in {out}" in printed
    assert (out / "session.bundle").is_file()  # the evidence stays
    # a server that serves another model's commitment is caught before anything is sent
    _, mc_other = am.commit(world["head"])
    with pytest.raises(S.CheatingDetected, match="another model commitment"):
        remote.run_session(url, allow_simulated=True, commitment=mc_other,
                           canaries=world["canaries"])


def test_bad_uploads_get_4xx_and_change_nothing(serve_url, honest, world, dirs):
    url, store_dir = honest
    small_url, small_store = deploy(serve_url, world, dirs, "small",
                                    max_upload=4000, max_opening=2000)
    good_client, good, _ = make_request(world)
    good = to_bytes(good)
    assert len(good) < 4000
    _, mc_other = am.commit(world["head"])
    foreign = replace(make_request(world)[1], model_digest=mc_other.digest)
    tampered = bytearray(good)
    tampered[-20] ^= 1  # inside the last input ciphertext's payload
    cases = {
        "malformed": (url, b"hello, world", 400, "magic"),
        "truncated": (url, good[: len(good) // 2], 400, "truncated"),
        "trailing": (url, good + b"\0", 400, "trailing"),
        "foreign kind": (url, to_bytes(am.commit(world["head"])[1]), 400, "expected"),
        "another model": (url, to_bytes(foreign), 400, "another model commitment"),
        "corrupted ciphertext": (url, bytes(tampered), 400, "digest mismatch"),
        "oversized": (small_url, good + bytes(5000), 413, "limit"),
    }
    with httpx.Client(timeout=30) as http:
        before = snapshot(store_dir), snapshot(small_store)
        for name, (base, body, code, words) in cases.items():
            r = http.post(f"{base}/v1/sessions", content=body)
            assert r.status_code == code, (name, r.text)
            assert words in r.json()["error"], (name, r.json())
        # oversized without a length header (chunked): refused while streaming
        r = http.post(f"{small_url}/v1/sessions", content=iter([good, bytes(5000)]))
        assert r.status_code == 413, r.text
        assert (snapshot(store_dir), snapshot(small_store)) == before
        assert not list((store_dir / "uploads").iterdir())  # no scratch left behind

        # openings: unknown session, bad ids, malformed and foreign openings
        assert http.post(f"{url}/v1/sessions/{'0' * 32}/opening", content=b"x").status_code == 404
        assert http.get(f"{url}/v1/sessions/../../etc/passwd").status_code == 404
        sid = http.post(f"{url}/v1/sessions", content=good).json()["session"]
        with remote.ServiceClient(url) as sc:
            sc.wait(sid, ("evaluated",))
            response = from_bytes(S.Response, sc.response(sid))
        c2, req2, _ = make_request(world)
        other_sid = http.post(f"{url}/v1/sessions", content=to_bytes(req2)).json()["session"]
        with remote.ServiceClient(url) as sc:
            sc.wait(other_sid, ("evaluated",))
            foreign_opening = c2.open(from_bytes(S.Response, sc.response(other_sid)))
        opening = good_client.open(response)
        before = snapshot(store_dir)
        for body, code, words in (
                (b"\x00" * 10, 400, "opening refused"),
                (to_bytes(opening)[:-3], 400, "truncated"),
                (good, 400, "expected"),
                (to_bytes(foreign_opening), 400, "does not belong"),
                (to_bytes(replace(opening, positions=opening.positions[:-1],
                                  inputs=opening.inputs[:-1])), 400, "canaries"),
                (to_bytes(replace(opening, inputs=(opening.inputs[0] * 0 + 10**6,)
                                  + opening.inputs[1:])), 422, "canary at position")):
            r = http.post(f"{url}/v1/sessions/{sid}/opening", content=body)
            assert r.status_code == code, r.text
            assert words in r.json()["error"], r.json()
        r = http.post(f"{small_url}/v1/sessions/{'0' * 32}/opening", content=bytes(3000))
        assert r.status_code in (404, 413)
        assert snapshot(store_dir) == before
        # the server goes on serving: the honest opening is accepted and proven
        assert http.post(f"{url}/v1/sessions/{sid}/opening",
                         content=to_bytes(opening)).status_code == 202
        with remote.ServiceClient(url) as sc:
            sc.wait(sid, ("proven",))
            good_client.finish(response, from_bytes(S.ProofBundle, sc.bundle(sid)))


def test_session_states_refused_clearly(serve_url, honest, world, dirs):
    url, _ = honest
    client, request, _ = make_request(world)
    with remote.ServiceClient(url) as sc:
        created = sc.create(to_bytes(request))
        again = sc.create(to_bytes(request))  # the same request: the same session
        assert again["session"] == created["session"] and again["existing"]
        sid = created["session"]
        with pytest.raises(remote.ServiceError) as e:
            sc.bundle(sid)
        assert e.value.status == 409 and "no bundle yet" in e.value.message
        sc.wait(sid, ("evaluated",))
        response = from_bytes(S.Response, sc.response(sid))
        opening = to_bytes(client.open(response))
        sc.open(sid, opening)
        sc.wait(sid, ("proven",))
        assert sc.open(sid, opening)["existing"]  # a client retrying: the same answer again
        with pytest.raises(remote.ServiceError) as e:  # any other opening is refused
            sc.open(sid, opening[:-1] + bytes([opening[-1] ^ 1]))
        assert e.value.status == 409 and "proven already" in e.value.message
        with pytest.raises(remote.ServiceError) as e:
            sc.status("f" * 32)
        assert e.value.status == 404 and e.value.message == "unknown session"

    # a ciphertext that passes the envelope checks but that the circuit refuses: the session
    # fails with the refusal's message
    from fhe.wire import Kind, pack, unpack

    client, request, _ = make_request(world)
    env = unpack(request.inputs[1], Kind.INPUT)
    short = pack(Kind.INPUT, env.payload[:-8], env.circuit_id, env.key_id)
    bad = replace(request, inputs=request.inputs[:1] + (short,) + request.inputs[2:])
    with remote.ServiceClient(url) as sc:
        sid = sc.create(to_bytes(bad))["session"]
        with pytest.raises(remote.ServiceError, match="evaluation refused: simulated input"):
            sc.wait(sid, ("evaluated",))
        with pytest.raises(remote.ServiceError) as e:
            sc.open(sid, b"anything")
        assert e.value.status == 409 and "failed" in e.value.message

    # garbage collection: a session idle past the TTL is expired, its files deleted
    gc_url, gc_store = deploy(serve_url, world, dirs, "gc", ttl_s=1.0,
                              gc_interval_s=0.2)
    client, request, _ = make_request(world)
    with remote.ServiceClient(gc_url) as sc:
        sid = sc.create(to_bytes(request))["session"]
        sc.wait(sid, ("evaluated", "expired"))
        deadline = time.monotonic() + 30
        while sc.status(sid)["state"] != "expired" and time.monotonic() < deadline:
            time.sleep(0.2)
        with pytest.raises(remote.ServiceError) as e:
            sc.open(sid, b"anything")
        assert e.value.status == 410 and "expired" in e.value.message
        with pytest.raises(remote.ServiceError) as e:
            sc.response(sid)
        assert e.value.status == 410
    assert not (gc_store / "sessions" / sid).exists()


def test_restart_between_evaluate_and_open(serve_url, world, dirs):
    url, store_dir = deploy(serve_url, world, dirs, "restart")
    cfg = service.ServiceConfig(str(world["dir"]), str(store_dir), simulate=True)
    client, request, x = make_request(world)
    with remote.ServiceClient(url) as sc:
        sid = sc.create(to_bytes(request))["session"]
        sc.wait(sid, ("evaluated",))
        response = sc.response(sid)
    from ray import serve

    serve.delete("restart")  # the replica process is gone; a new one reads the store
    # and a session that a stopped server left in flight (evaluating) must be resumed
    client2, request2, _ = make_request(world)
    store = st.SessionStore(store_dir)
    path = store.upload_path()
    path.write_bytes(to_bytes(request2))
    left = store.create(request2.digest, len(request2.inputs), path)
    store.close()
    service.deploy(cfg, name="restart", route_prefix="/restart")
    with remote.ServiceClient(url) as sc:
        assert sc.response(sid) == response
        sc.open(sid, to_bytes(client.open(from_bytes(S.Response, response))))
        sc.wait(sid, ("proven",))
        bundle = sc.bundle(sid)
        assert sc.bundle(sid) == bundle
        sc.wait(left.id, ("evaluated",))
        response2 = from_bytes(S.Response, sc.response(left.id))
    y = client.finish(from_bytes(S.Response, response), from_bytes(S.ProofBundle, bundle))
    assert np.array_equal(y, run_reference(x, world["head"])[0])
    assert response2.request_digest == request2.digest
    client2.open(response2)  # the resumed session's receipt binds the client's ciphertexts


def test_overload_answers_503_and_clients_back_off(serve_url, world, dirs):
    url, _ = deploy(serve_url, world, dirs, "busy", max_active=1, max_queued=0)
    with httpx.Client(timeout=30) as http:
        first = http.post(f"{url}/v1/sessions", content=to_bytes(make_request(world)[1]))
        second = http.post(f"{url}/v1/sessions", content=to_bytes(make_request(world)[1]))
    assert first.status_code == 202
    assert second.status_code == 503, second.text
    assert int(second.headers["Retry-After"]) >= 1 and "busy" in second.json()["error"]
    # clients that meet a 503 wait as told and all finish
    results, errors = [], []

    def one():
        try:
            results.append(remote.run_session(url, allow_simulated=True,
                                              canaries=world["canaries"]))
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=one) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors and len(results) == 3
    with remote.ServiceClient(url) as sc:
        assert sc.http.get("/health").json()["refused_busy"] >= 2


# ---------------------------------------------------------------- access control


@pytest.fixture(scope="module")
def tokens(tmp_path_factory):
    from pipeline import tokens as T

    path = tmp_path_factory.mktemp("tokens") / "tokens.json"
    names = {"alice": 1, "bob": 3, "carol": 2, "dave": 4}
    values = {name: T.add(path, name, limit) for name, limit in names.items()}
    return path, T.load(path), values


@pytest.fixture(scope="module")
def auth(serve_url, world, dirs, tokens):
    """A service with API tokens; each simulated evaluation takes 0.3 s."""
    return deploy(serve_url, world, dirs, "auth", tokens=tokens[1], simulate_delay_s=0.3)


def _sc(url, token=None, **kw):
    return remote.ServiceClient(url, token=token, **kw)


def test_tokens_401_403_429_and_health_open(auth, world, tokens):
    url, store_dir = auth
    tok = tokens[2]
    with httpx.Client(timeout=30) as http:
        h = http.get(f"{url}/v1/health")
        assert h.status_code == 200 and h.json()["status"] == "ok"  # open, always
        for headers, words in (({}, "needs an API token"),
                               ({"Authorization": f"Basic {tok['alice']}"}, "Bearer TOKEN"),
                               ({"Authorization": "Bearer zkfhe_" + "x" * 43}, "unknown"),
                               ({"Authorization": f"Bearer {tok['alice']}x"}, "unknown")):
            for method, path in (("GET", "/v1/info"), ("GET", "/v1/model/commitment"),
                                 ("POST", "/v1/sessions"), ("GET", f"/v1/sessions/{'a' * 32}")):
                r = http.request(method, url + path, headers=headers, content=b"")
                assert r.status_code == 401, (path, r.text)
                assert words in r.json()["error"] and "Bearer" in r.headers["WWW-Authenticate"]
    with pytest.raises(remote.ServiceError) as e:  # the client reports it, never retries it
        remote.run_session(url, allow_simulated=True, canaries=world["canaries"])
    assert e.value.status == 401

    alice, bob = _sc(url, tok["alice"]), _sc(url, tok["bob"])
    assert alice.info()["token"] == {"name": "alice", "max_active": 1}
    client, request, x = make_request(world)
    sid = alice.create(to_bytes(request))["session"]
    # another token sees nothing of alice's session
    for call in (lambda: bob.status(sid), lambda: bob.response(sid), lambda: bob.bundle(sid),
                 lambda: bob.open(sid, b"x"), lambda: bob.lookup(request.digest),
                 lambda: bob.create(to_bytes(request))):
        with pytest.raises(remote.ServiceError) as e:
            call()
        assert e.value.status == 403 and "another API token" in e.value.message
    assert bob.lookup(make_request(world)[1].digest) is None
    with pytest.raises(remote.ServiceError) as e:
        bob._call("GET", "/sessions", params={"request": "../etc"})
    assert e.value.status == 400 and "64 hex digits" in e.value.message
    assert alice.lookup(request.digest)["session"] == sid
    # alice's limit is one unfinished session: a second upload is refused, nothing stored
    before = snapshot(store_dir)
    with httpx.Client(timeout=30) as http:
        r = http.post(f"{url}/v1/sessions", content=to_bytes(make_request(world)[1]),
                      headers={"Authorization": f"Bearer {tok['alice']}"})
    assert r.status_code == 429 and "'alice' has 1 unfinished sessions" in r.json()["error"]
    assert int(r.headers["Retry-After"]) >= 1
    assert snapshot(store_dir)["rows"] == before["rows"]
    # the same request again is its session, not a new one (a client retrying an upload)
    assert alice.create(to_bytes(request))["session"] == sid
    alice.wait(sid, ("evaluated",))
    response = from_bytes(S.Response, alice.response(sid))
    alice.open(sid, to_bytes(client.open(response)))
    alice.wait(sid, ("proven",))
    y = client.finish(response, from_bytes(S.ProofBundle, alice.bundle(sid)))
    assert np.array_equal(y, run_reference(x, world["head"])[0])
    # finished: alice may start another
    res = remote.run_session(url, token=tok["alice"], allow_simulated=True,
                             commitment=world["commitment"], canaries=world["canaries"])
    assert res.session != sid
    alice.close()
    bob.close()


def _concurrent_sessions(url, world, tok, names, n, tmp_path):
    """n clients at once, spread over the tokens ``names``: every verdict and output right."""
    results, errors = {}, []

    def one(i):
        try:
            x = world["canaries"].sample(1)[0]
            res = remote.run_session(url, x, token=tok[names[i % len(names)]],
                                     commitment=world["commitment"], allow_simulated=True,
                                     canaries=world["canaries"], out=tmp_path / f"c{i}")
            assert np.array_equal(res.y, run_reference(x, world["head"])[0])
            assert api.verify(res.bundle, world["commitment"],
                              response=from_bytes(S.Response, res.response)).accepted
            results[i] = res.session
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    assert not errors, errors[:3]
    assert len(set(results.values())) == n


def test_concurrent_clients_with_tokens(auth, world, tokens, tmp_path):
    """5 clients on two tokens whose limits (3, 2) make some wait (429, retried)."""
    url, _ = auth
    _concurrent_sessions(url, world, tokens[2], ["bob", "carol"], 5, tmp_path)


# ---------------------------------------------------------------- clients that stop


@pytest.fixture(scope="module")
def slow(serve_url, world, dirs, tokens):
    """Tokens, and a simulated evaluation of 3 s per ciphertext (a session: about 6 s)."""
    return deploy(serve_url, world, dirs, "slow", tokens=tokens[1], simulate_delay_s=3.0)


def test_client_killed_mid_session_and_resumed(slow, world, tokens, tmp_path, capsys):
    url, store_dir = slow
    token_file = tmp_path / "dave.token"
    token_file.write_text(tokens[2]["dave"] + "\n")
    x = world["canaries"].sample(1)[0]
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "session"
    com = str(world["dir"] / "model.commitment")
    args = ["client", "--server", url, "--commitment", com, "--allow-simulated", "--input",
            str(tmp_path / "x.npy"), "--token-file", str(token_file), "--deadline", "300"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli", *args, "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    deadline = time.monotonic() + 120
    while not (out / "session.id").is_file() and time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read()
        time.sleep(0.02)
    proc.kill()  # SIGKILL while the server evaluates
    proc.wait(30)
    sid = (out / "session.id").read_text()
    store = st.SessionStore(store_dir)
    assert store.get(sid).state == st.EVALUATING
    store.close()
    # what the stopped client kept: owner only, everything to finish
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o700
    names = sorted(p.name for p in out.iterdir())
    assert names == ["client.secret", "client.session", "session.id", "session.request"]
    assert all(stat.S_IMODE(os.stat(out / n).st_mode) == 0o600 for n in names)

    assert main(["client", "--resume", str(out), "--token-file", str(token_file)]) == EXIT_OK
    printed = capsys.readouterr().out
    assert "verdict: ACCEPTED" in printed
    y = np.load(out / "output.npy", allow_pickle=False)
    assert np.array_equal(y, run_reference(x, world["head"])[0])
    assert f"real output: {y.tolist()}" in printed
    assert not (out / "client.secret").exists()  # the keys go once the session is done
    # a finished folder is not resumed again
    assert main(["client", "--resume", str(out), "--token-file", str(token_file)]) == EXIT_USAGE
    assert "finished already" in capsys.readouterr().err


class _StopAfter(remote.Steps):
    def __init__(self, step: str) -> None:
        super().__init__()
        self.step = step

    def end(self, size=None, note=""):
        super().end(size, note)
        if self._name == self.step:
            raise KeyboardInterrupt(f"stopped after {self.step}")


def test_client_stopped_after_opening_resumes(auth, world, tokens, tmp_path):
    url, _ = auth
    tok = tokens[2]["dave"]
    out = tmp_path / "s"
    x = world["canaries"].sample(1)[0]
    with pytest.raises(KeyboardInterrupt):
        remote.run_session(url, x, token=tok, allow_simulated=True, canaries=world["canaries"],
                           commitment=world["commitment"], out=out,
                           steps=_StopAfter("open the canaries"))
    assert (out / "session.response").is_file() and (out / "session.opening").is_file()
    res = remote.resume_session(out, token=tok)
    assert np.array_equal(res.y, run_reference(x, world["head"])[0])
    assert res.session == (out / "session.id").read_text()
    # a resumed client refuses a server that changed the response its canaries were opened for
    out2 = tmp_path / "s2"
    with pytest.raises(KeyboardInterrupt):
        remote.run_session(url, x, token=tok, allow_simulated=True, canaries=world["canaries"],
                           out=out2, steps=_StopAfter("open the canaries"))
    stored = (out2 / "session.response").read_bytes()
    (out2 / "session.response").write_bytes(stored[:-1] + bytes([stored[-1] ^ 1]))
    with pytest.raises(S.CheatingDetected, match="another response"):
        remote.resume_session(out2, token=tok)


def test_resume_folders_refused_clearly(auth, world, tokens, tmp_path, capsys):
    url, _ = auth
    tok = tokens[2]["dave"]
    out = tmp_path / "s"
    with pytest.raises(KeyboardInterrupt):
        remote.run_session(url, token=tok, allow_simulated=True, canaries=world["canaries"],
                           out=out, steps=_StopAfter("upload the request"))
    token_file = tmp_path / "t"
    token_file.write_text(tok)
    resume = ["client", "--resume", str(out), "--token-file", str(token_file)]

    def refused(words, argv=resume):
        assert main(argv) == EXIT_USAGE
        err = capsys.readouterr().err
        assert words in err and "Traceback" not in err, err

    refused("no session folder", ["client", "--resume", str(tmp_path / "nothing")])
    refused("do not apply", resume + ["--out", str(tmp_path / "x")])
    os.chmod(out, 0o755)
    refused("readable by others")
    os.chmod(out, 0o700)
    os.chmod(out / "client.secret", 0o644)
    refused("readable by others")
    os.chmod(out / "client.secret", 0o600)
    manifest = (out / "client.session").read_bytes()
    (out / "client.session").write_bytes(manifest[:-5])
    refused("damaged")
    (out / "client.session").write_bytes(manifest)
    secret = (out / "client.secret").read_bytes()
    (out / "client.secret").unlink()
    refused("without the secret keys")
    (out / "client.secret").write_bytes(secret)
    os.chmod(out / "client.secret", 0o600)
    refused("not empty", ["client", "--server", url, "--out", str(out), "--token-file",
                          str(token_file), "--allow-simulated"])
    assert main(resume) == EXIT_OK  # intact again: it finishes
    capsys.readouterr()


# ---------------------------------------------------------------- encryption parameters


@pytest.fixture(scope="module")
def real_apps(serve_url, world, dirs):
    """Real-TFHE services (no session is run: the client refuses before any key exists): one
    with the owner's circuit, one handing out weakened specs, one another circuit's specs."""
    from fhe.client import make_client_specs, parse_client_specs
    from fhe.server import CIRCUIT_FILE, SPECS_FILE
    from pipeline.backend import RealFhe
    from pipeline.params import PARAMS_FILE, make_params

    head, _, calib = random_head(SMALL, seed=3, n_calib=24)
    assert am.commit(head)[1].config == world["commitment"].config
    folders = {}
    for name in ("real-ok", "real-weak", "real-foreign"):
        folders[name] = d = dirs.mktemp(name)
        shutil.copy(world["dir"] / "model.private", d / "model.private")
    RealFhe(head, calib).server.save(folders["real-ok"] / "circuit")
    other, _, other_calib = random_head(SMALL, seed=99, n_calib=24)
    RealFhe(other, other_calib).server.save(folders["real-foreign"] / "circuit")
    shutil.copytree(folders["real-ok"] / "circuit", folders["real-weak"] / "circuit")
    _, _, spec, raw = parse_client_specs((folders["real-ok"] / "circuit" / SPECS_FILE).read_bytes())
    doc = __import__("json").loads(raw)
    doc["keyset"]["lweKeyswitchKeys"][0]["params"]["variance"] *= 2.0 ** -30
    (folders["real-weak"] / "circuit" / SPECS_FILE).write_bytes(
        make_client_specs(__import__("json").dumps(doc).encode(), spec))
    params = make_params(world["commitment"], folders["real-ok"] / "circuit")
    params_file = dirs.mktemp("published") / PARAMS_FILE
    params_file.write_bytes(to_bytes(params))
    urls = {}
    for name, d in folders.items():
        cfg = service.ServiceConfig(str(d), str(dirs.mktemp(f"store-{name}")))
        service.deploy(cfg, name=name, route_prefix=f"/{name}")
        urls[name] = f"{serve_url}/{name}"
    assert (folders["real-ok"] / "circuit" / CIRCUIT_FILE).is_file()
    yield urls, params, params_file
    from ray import serve

    for name in folders:
        serve.delete(name)


def test_weakened_or_foreign_specs_refused(real_apps, world, tmp_path, capsys):
    from pipeline.params import PublishedParams

    urls, params, params_file = real_apps
    mc = world["commitment"]
    # the owner's circuit: accepted, under the owner's specs (or the server's, said so)
    with remote.ServiceClient(urls["real-ok"]) as sc:
        client, specs, from_server = remote.choose_specs(sc, sc.info(), mc, params, False)
        assert specs == params.client_specs and not from_server
        assert "128-bit" in client.security.summary()
        assert remote.choose_specs(sc, sc.info(), mc, None, False)[2]
    cases = (("real-weak", None, "below"), ("real-weak", params, "differ"),
             ("real-foreign", params, "differ"),
             ("real-ok", PublishedParams(b"\1" * 32, params.circuit_id, params.circuit_digest,
                                         params.client_specs), "another model commitment"))
    for name, p, words in cases:
        with pytest.raises(remote.ParametersRefused, match=words):
            remote.run_session(urls[name], commitment=mc, params=p, canaries=world["canaries"],
                               out=tmp_path / name)
        assert not (tmp_path / name).exists()  # refused before any key or file exists
    com = str(world["dir"] / "model.commitment")
    assert main(["client", "--server", urls["real-weak"], "--commitment", com,
                 "--out", str(tmp_path / "cli")]) == EXIT_REJECTED
    err = capsys.readouterr().err
    assert "refused:" in err and "128-bit security" in err and "Traceback" not in err
    assert main(["client", "--server", urls["real-foreign"], "--commitment", com, "--params",
                 str(params_file), "--out", str(tmp_path / "cli")]) == EXIT_REJECTED
    assert "differ from the model owner's published" in capsys.readouterr().err
    assert not (tmp_path / "cli").exists()


# ---------------------------------------------------------------- slow


@pytest.mark.slow
def test_real_tfhe_session_over_http(serve_url, dirs):
    from fhe.server import HeadServer
    from pipeline.backend import RealFhe

    # the demo's head (`zkfhe commit` defaults): ~100 MB of evaluation keys
    head, _, calib = random_head(SMALL, seed=0, n_calib=32)
    model, commitment = am.commit(head)
    model_dir = dirs.mktemp("real-model")
    (model_dir / "model.private").write_bytes(to_bytes(model))
    be = RealFhe(head, calib)
    assert isinstance(be.server, HeadServer)
    be.server.save(model_dir / "circuit")
    service.deploy(service.ServiceConfig(str(model_dir), str(dirs.mktemp("store-real"))),
                   name="real", route_prefix="/real")
    canaries = ActivationCanaries(head, calib)
    x = canaries.sample(1)[0]
    res = remote.run_session(f"{serve_url}/real", x, commitment=commitment, canaries=canaries)
    assert not res.simulated
    assert np.array_equal(res.y, run_reference(x, head)[0])
    assert len(from_bytes(S.Response, res.response).outputs[0]) > 10_000  # real ciphertexts
    with remote.ServiceClient(f"{serve_url}/real") as sc:
        assert sc.bundle(res.session) == res.bundle


def _raylet_pid() -> int:
    node = ray._private.worker._global_node
    return node.all_processes["raylet"][0].process.pid


def _kill_a_prover(stop: threading.Event, killed: list) -> None:
    """SIGKILL the first worker of this Ray seen running a prove_canary task."""
    raylet = _raylet_pid()
    while not stop.is_set() and not killed:
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
                ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if cmd.startswith(b"ray::prove_canary") and ppid == raylet:
                os.kill(int(pid), signal.SIGKILL)
                killed.append(int(pid))
                break
        time.sleep(0.002)


@pytest.mark.slow
def test_worker_killed_during_canary_proof_is_retried(serve_url, world, dirs):
    url, _ = deploy(serve_url, world, dirs, "chaos")
    client, request, x = make_request(world, k=8)
    with remote.ServiceClient(url) as sc:
        sid = sc.create(to_bytes(request))["session"]
        sc.wait(sid, ("evaluated",))
        response = from_bytes(S.Response, sc.response(sid))
        stop, killed = threading.Event(), []
        killer = threading.Thread(target=_kill_a_prover, args=(stop, killed))
        killer.start()
        try:
            sc.open(sid, to_bytes(client.open(response)))
            sc.wait(sid, ("proven",))
        finally:
            stop.set()
            killer.join()
        bundle = from_bytes(S.ProofBundle, sc.bundle(sid))
    assert killed, "no prove_canary worker was seen running"
    y = client.finish(response, bundle)
    assert np.array_equal(y, run_reference(x, world["head"])[0])


@pytest.mark.slow
def test_twenty_concurrent_clients(auth, world, tokens, tmp_path):
    """20 clients at once on three tokens (limits 3, 2, 4: most wait their turn on a 429)."""
    url, _ = auth
    _concurrent_sessions(url, world, tokens[2], ["bob", "carol", "dave"], 20, tmp_path)


@pytest.mark.slow
def test_serve_and_client_commands(world, tmp_path):
    """The two-command flow as processes: `zkfhe serve` (its own local Ray), `zkfhe client`;
    SIGINT stops the server and its Ray."""
    port = free_port()
    exe = [sys.executable, "-m", "pipeline.cli"]
    server = subprocess.Popen(exe + ["serve", "--model", str(world["dir"]), "--simulate",
                                     "--port", str(port), "--store", str(tmp_path / "store")],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v1/health").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        out = subprocess.run(exe + ["client", "--server", f"http://127.0.0.1:{port}",
                                    "--commitment", str(world["dir"] / "model.commitment"),
                                    "--allow-simulated", "--out", str(tmp_path / "client")],
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "verdict: ACCEPTED" in out.stdout
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            server.kill()
            raise
    assert server.returncode == 0
