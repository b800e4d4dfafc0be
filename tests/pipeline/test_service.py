"""`zkfhe serve` end to end: a real local Ray, Ray Serve's HTTP proxy on 127.0.0.1 (a free
port), real HTTP clients. One Ray/Serve instance for the module; each test deploys the
service applications it needs under their own route prefixes and stores."""

from __future__ import annotations

import os
import shutil
import signal
import socket
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
from pipeline.cli import EXIT_OK, EXIT_REJECTED, main  # noqa: E402
from zk import attention_model as am  # noqa: E402
from zk.attention_ref import HeadConfig, random_head, run_reference  # noqa: E402
from zk.encoding import from_bytes, to_bytes  # noqa: E402

# the small head of the session tests (narrow tables: ~100 MB of real TFHE keys)
SMALL = HeadConfig(d_model=4, d_head=2, seq_len=2, n_bits=3, score_bits=5, tlu_bits=5,
                   out_tlu_bits=5, exp_bits=3, prob_bits=3)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
    remote.ServiceClient.STEP_WAIT_S = 300.0  # a stuck session fails the test, never hangs it
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
    assert main(["client", "--server", url, "--commitment", com]) == EXIT_REJECTED
    assert "SIMULATES" in capsys.readouterr().err
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
    assert main(["client", "--server", url, "--commitment", com,
                 "--allow-simulated"]) == EXIT_REJECTED
    assert "REJECTED" in capsys.readouterr().out
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
        with pytest.raises(remote.ServiceError) as e:
            sc.open(sid, opening)
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
def test_twenty_concurrent_clients(honest, world):
    url, _ = honest
    results, errors = [], []

    def one(i):
        try:
            x = world["canaries"].sample(1)[0]
            res = remote.run_session(url, x, commitment=world["commitment"],
                                     allow_simulated=True, canaries=world["canaries"])
            assert np.array_equal(res.y, run_reference(x, world["head"])[0])
            assert api.verify(res.bundle, world["commitment"],
                              response=from_bytes(S.Response, res.response)).accepted
            results.append(res.session)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    assert not errors, errors[:3]
    assert len(set(results)) == 20


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
                                    "--allow-simulated"],
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
