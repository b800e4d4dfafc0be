"""`zkfhe serve` as an operator runs it: its own process and local Ray, HTTPS with a
certificate made here, API tokens; SIGKILLed (the whole process group) while it evaluates a
session, and again while it proves one, then restarted: the client ends ACCEPTED with the
output of an undisturbed run."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ray", reason="the serve extra is not installed")
httpx = pytest.importorskip("httpx")
crypto = pytest.importorskip("cryptography")

from pipeline import remote  # noqa: E402
from pipeline import store as st  # noqa: E402
from pipeline import tokens as T  # noqa: E402
from pipeline.canaries import ActivationCanaries  # noqa: E402
from pipeline.cli import EXIT_OK, main  # noqa: E402
from zk import attention_model as am  # noqa: E402
from zk.attention_ref import HeadConfig, random_head, run_reference  # noqa: E402
from zk.encoding import to_bytes  # noqa: E402
from pipeutil import SMALL, free_port, make_tls  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
# `zkfhe serve` itself, its simulated evaluations made slow enough to be killed during one
DELAYED_SERVE = """
import dataclasses, sys
from pipeline import cli, service
serve_forever, delay = service.serve_forever, float(sys.argv[1])
service.serve_forever = lambda config, *a, **k: serve_forever(
    dataclasses.replace(config, simulate_delay_s=delay), *a, **k)
sys.exit(cli.main(sys.argv[2:]))
"""


def _ctx(ca: Path):
    import ssl

    return ssl.create_default_context(cafile=str(ca))




class ServerProcess:
    """`zkfhe serve` in its own process group (its Ray's processes with it)."""

    def __init__(self, argv: list[str], log: Path) -> None:
        self.argv, self.log, self.proc = argv, log, None

    def start(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        with open(self.log, "ab") as f:
            self.proc = subprocess.Popen(self.argv, stdout=f, stderr=subprocess.STDOUT, env=env,
                                         cwd=ROOT, start_new_session=True)

    def wait_healthy(self, url: str, ca: Path, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            try:
                if httpx.get(f"{url}/v1/health", verify=_ctx(ca), timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise AssertionError("the server did not come up:\n" + self.log.read_text()[-3000:])

    def kill(self, port: int) -> None:
        """SIGKILL to the whole group: the server, its Ray, the proxy, the workers."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)
        deadline = time.monotonic() + 60  # Ray's workers go with their raylet
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) != 0:
                    return
            time.sleep(0.2)
        raise AssertionError("the killed server's port still answers")

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(90)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            raise


def _model(folder: Path):
    head, _, calib = random_head(SMALL, seed=3, n_calib=24)
    model, commitment = am.commit(head)
    folder.mkdir()
    (folder / "model.private").write_bytes(to_bytes(model))
    (folder / "model.commitment").write_bytes(to_bytes(commitment))
    return head, commitment, ActivationCanaries(head, calib)


def test_server_sigkilled_during_evaluation_and_proving_over_tls_with_tokens(tmp_path, capsys):
    remote.ServiceClient.BACKOFF_CAP_S = 2.0
    head, commitment, canaries = _model(tmp_path / "model")
    ca, cert, key = make_tls(tmp_path)
    tokens = tmp_path / "tokens.json"
    token = T.add(tokens, "alice", 2)
    port = free_port()
    url = f"https://127.0.0.1:{port}"
    store = tmp_path / "store"
    server = ServerProcess(
        [sys.executable, "-c", DELAYED_SERVE, "2.0", "serve", "--model", str(tmp_path / "model"),
         "--simulate", "--port", str(port), "--store", str(store), "--tokens", str(tokens),
         "--tls-cert", str(cert), "--tls-key", str(key)], tmp_path / "server.log")
    server.start()
    try:
        server.wait_healthy(url, ca)
        with httpx.Client(verify=_ctx(ca), timeout=30) as http:  # TLS, and a token needed
            assert http.get(f"{url}/v1/info").status_code == 401
        t0 = time.monotonic()
        with pytest.raises(remote.ServiceError, match="certificate verify failed"):
            remote.ServiceClient(url, token=token).info()  # not the system's CAs: refused
        assert time.monotonic() - t0 < 10  # at once, not retried to the deadline

        x = canaries.sample(1)[0]
        out = tmp_path / "client"
        notes, result, failure = [], [], []
        sc = remote.ServiceClient(url, token=token, ca=ca, deadline_s=300, on_retry=notes.append)

        def client():
            try:
                result.append(remote.run_session(
                    url, x, commitment=commitment, allow_simulated=True, canaries=canaries,
                    out=out, service=sc))
            except BaseException as e:  # noqa: BLE001
                failure.append(e)

        thread = threading.Thread(target=client)
        thread.start()
        deadline = time.monotonic() + 120
        while not (out / "session.id").is_file() and time.monotonic() < deadline:
            assert not failure, failure
            time.sleep(0.02)
        time.sleep(0.5)
        server.kill(port)  # mid-evaluation: 4 ciphertexts of 2 s each on 2 CPUs
        sid = (out / "session.id").read_text()
        s = st.SessionStore(store)
        rec = s.get(sid)
        s.close()
        assert rec.state == st.EVALUATING and rec.done < rec.total, rec
        time.sleep(2)  # the client meets a dead server for a while
        server.start()
        thread.join(300)
        assert not failure, failure
        res = result[0]
        sc.close()
        y_ref = run_reference(x, head)[0]
        assert np.array_equal(res.y, y_ref) and res.session == sid
        assert any("onnect" in n for n in notes), notes  # it went through the outage
        # an undisturbed run of the same input on the restarted server: the same output
        again = remote.run_session(url, x, commitment=commitment, allow_simulated=True,
                                   canaries=canaries, token=token, ca=ca)
        assert np.array_equal(again.y, res.y) and again.session != sid
        # killed again, now while it proves (8 canaries, one Ray task each): the same outcome
        x8, out8, result, failure = canaries.sample(1)[0], tmp_path / "client8", [], []
        sc = remote.ServiceClient(url, token=token, ca=ca, deadline_s=300)

        def client8():
            try:
                result.append(remote.run_session(
                    url, x8, k=8, commitment=commitment, allow_simulated=True,
                    canaries=canaries, out=out8, service=sc))
            except BaseException as e:  # noqa: BLE001
                failure.append(e)

        thread = threading.Thread(target=client8)
        thread.start()
        deadline, rec = time.monotonic() + 120, None
        while time.monotonic() < deadline and not failure:
            if (out8 / "session.id").is_file():
                s = st.SessionStore(store)
                rec = s.get((out8 / "session.id").read_text())
                s.close()
                if rec.state in (st.PROVING, st.PROVEN, st.FAILED):
                    break
            time.sleep(0.02)
        server.kill(port)
        assert rec is not None and rec.state == st.PROVING and rec.done < rec.total, rec
        server.start()
        thread.join(300)
        assert not failure, failure
        sc.close()
        assert np.array_equal(result[0].y, run_reference(x8, head)[0])
        assert len(result[0].positions) == 8
        # the command line, over TLS with its --ca and --token-file
        token_file = tmp_path / "alice.token"
        token_file.write_text(token)
        assert main(["client", "--server", url, "--ca", str(ca), "--token-file",
                     str(token_file), "--commitment", str(tmp_path / "model" / "model.commitment"),
                     "--allow-simulated", "--out", str(tmp_path / "cli")]) == EXIT_OK
        assert "verdict: ACCEPTED" in capsys.readouterr().out
    finally:
        code = server.stop() if server.proc.poll() is None else None
    assert code == 0, (tmp_path / "server.log").read_text()[-3000:]


@pytest.mark.slow
def test_real_tfhe_server_sigkilled_during_evaluation(tmp_path):
    """The same with real TFHE and the two commands as an operator and a user run them:
    `zkfhe commit`, `zkfhe serve` (TLS, tokens), `zkfhe client --params` in its own process."""
    from pipeline.cli import DEMO_TABLES

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    exe = [sys.executable, "-m", "pipeline.cli"]
    model = tmp_path / "model"
    subprocess.run(exe + ["commit", "--out", str(model)], check=True, env=env, cwd=ROOT,
                   capture_output=True, timeout=300)
    head, _, calib = random_head(HeadConfig(d_model=4, d_head=2, seq_len=2, n_bits=3,
                                            **DEMO_TABLES), seed=0, n_calib=32)
    x = ActivationCanaries(head, calib).sample(1)[0]
    np.save(tmp_path / "x.npy", x)
    ca, cert, key = make_tls(tmp_path)
    tokens = tmp_path / "tokens.json"
    (tmp_path / "token").write_text(T.add(tokens, "alice", 1))
    port = free_port()
    url = f"https://127.0.0.1:{port}"
    server = ServerProcess(exe + ["serve", "--model", str(model), "--port", str(port),
                                  "--tokens", str(tokens), "--tls-cert", str(cert),
                                  "--tls-key", str(key)], tmp_path / "server.log")
    server.start()
    out = tmp_path / "client"
    try:
        server.wait_healthy(url, ca)
        client = subprocess.Popen(
            exe + ["client", "--server", url, "--ca", str(ca), "--token-file",
                   str(tmp_path / "token"), "--commitment", str(model / "model.commitment"),
                   "--params", str(model / "model.params"), "--input", str(tmp_path / "x.npy"),
                   "--out", str(out), "--deadline", "1200"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT)
        deadline = time.monotonic() + 300
        while not (out / "session.id").is_file() and time.monotonic() < deadline:
            assert client.poll() is None, client.stdout.read()
            time.sleep(0.1)
        time.sleep(3)
        server.kill(port)
        s = st.SessionStore(model / "store")
        assert s.get((out / "session.id").read_text()).state == st.EVALUATING
        s.close()
        time.sleep(2)
        server.start()
        printed, _ = client.communicate(timeout=1200)
        assert client.returncode == 0, printed
        assert "verdict: ACCEPTED" in printed and "128-bit security" in printed
        y = np.load(out / "output.npy", allow_pickle=False)
        assert np.array_equal(y, run_reference(x, head)[0])
    finally:
        code = server.stop() if server.proc.poll() is None else None
    assert code == 0
