"""Verifiable completions (`zkfhe serve --llm`, `zkfhe client complete`): the proof store, the
client's checks against a tampered completion, and the service end to end on a real local Ray
with HTTP (small random whole model, 2-3 tokens per completion)."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="the serve extra is not installed")
httpx = pytest.importorskip("httpx")

from pipeline import llm_text  # noqa: E402
from pipeline import remote  # noqa: E402
from pipeline import service  # noqa: E402
from pipeline import store as st  # noqa: E402
from pipeline.cli import EXIT_OK, EXIT_REJECTED, EXIT_USAGE, main  # noqa: E402
from zk import attention_model as am  # noqa: E402
from zk.attention_ref import random_head  # noqa: E402
from zk.encoding import to_bytes  # noqa: E402
from zk.model import llama as ML  # noqa: E402
from pipeutil import SMALL, free_port  # noqa: E402





@pytest.fixture(scope="module")
def root():
    d = Path(tempfile.mkdtemp(prefix="zkfhe-completions-tests-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def owner(root):
    """An owner's folder (zkfhe model-commit --random 0) and a head model folder."""
    out = root / "owner"
    assert main(["model-commit", "--out", str(out), "--random", "0"]) == EXIT_OK
    head, _, _ = random_head(SMALL, seed=3, n_calib=8)
    pm, mc = am.commit(head)
    model_dir = root / "model"
    model_dir.mkdir()
    (model_dir / "model.private").write_bytes(to_bytes(pm))
    (model_dir / "model.commitment").write_bytes(to_bytes(mc))
    return {"llm": out, "model": model_dir, "pm": ML.load_private(out / "private.npz"),
            "commitment": ML.LlamaCommitment.from_bytes((out / "model.zkm").read_bytes())}


# ---------------------------------------------------------------- no server


def test_tokenizer_choice_follows_the_origin(owner):
    mc = owner["commitment"]
    assert mc.origin == {"model": "random-0", "tokenizer": "bytes"}
    tok = llm_text.tokenizer_for(mc.origin, mc.config.vocab)
    assert tok.encode("hé") == [104, 0xC3, 0xA9] and tok.decode([104, 0xC3]) == "h\ufffd"
    assert llm_text.tokenizer_name({"model": "random-3"}, 256) == "bytes"  # older commitments
    assert llm_text.tokenizer_name({"model": "random-3"}, 20) is None
    assert llm_text.tokenizer_name({"tokenizer": "unknown"}, 256) is None
    assert llm_text.tokenizer_name({"model": "SmolLM2-135M-Instruct"}) == "SmolLM2-135M-Instruct"


def test_smollm2_tokenizer_round_trip():
    """SmolLM2's tokenizer alone (not the float model), where the model package is installed."""
    from fhe.hf_models import ModelNotInstalled

    try:
        tok = llm_text.tokenizer_for({"model": "SmolLM2-135M-Instruct"}, 49152)
    except (ModelNotInstalled, ImportError) as e:
        pytest.skip(f"SmolLM2 is not installed: {e}")
    ids = tok.encode("Hello, world")
    assert ids and tok.decode(ids) == "Hello, world"


def test_proof_store_persists_jobs_and_proofs(tmp_path):
    s = st.ProofStore(tmp_path, ttl_s=10)
    a = s.create("alice", [1, 2, 3], 2, bytes(32), {"id": "cmpl-a"}, "k1|x")
    b = s.create(None, [4, 5], 1, bytes(32), {"id": "cmpl-b"})
    assert [j.id for j in s.in_flight()] == [a.id, b.id] and s.active("alice") == 1
    s.put_proof(a.id, b"PROOF", 1.5)
    with pytest.raises(st.StoreError):
        s.put_proof(a.id, b"OTHER", 1.0)
    s2 = st.ProofStore(tmp_path, ttl_s=10)  # a restarted service
    assert [j.id for j in s2.in_flight()] == [b.id]
    assert s2.get(a.id).state == st.PROVEN and s2.read_proof(a.id) == b"PROOF"
    assert s2.get(a.id).tokens == (1, 2, 3) and s2.find_key("alice", "k1").id == a.id
    assert s2.find_key("bob", "k1") is None and s2.get("../x") is None
    assert s2.gc(now=time.time() + 100) == [a.id]
    assert s2.get(a.id).state == st.EXPIRED and s2.get(b.id).state == st.PROVING
    with pytest.raises(FileNotFoundError):
        s2.read_proof(a.id)
    (tmp_path / "proofs" / b.id / "job.json").write_bytes(b'{"id": 1}')  # damaged
    assert b.id in st.ProofStore(tmp_path).unreadable
    assert not list(tmp_path.rglob("*.pkl")) and not list(tmp_path.rglob("*.tmp"))


@pytest.fixture(scope="module")
def proven(owner):
    """A real proof of a 2-token greedy completion of the prompt "hi"."""
    pm = owner["pm"]
    ids = [104, 105]
    seq = ML.generate(pm, np.array(ids), 2)
    proof = ML.prove(pm, seq, len(ids)).to_bytes()
    gen = [int(t) for t in seq[2:]]
    text = bytes(gen).decode("utf-8", errors="replace")
    completion = {"id": "cmpl-x", "object": "text_completion", "model": "random-0",
                  "choices": [{"index": 0, "text": text, "token_ids": gen,
                               "finish_reason": "length"}],
                  "usage": {"prompt_tokens": 2, "completion_tokens": 2, "total_tokens": 4},
                  "proof_id": "0" * 32}
    return ids, gen, completion, proof


def test_client_check_rejects_a_tampered_completion(owner, proven):
    ids, gen, completion, proof = proven
    mc = owner["commitment"]
    ok = remote.check_completion(completion, proof, mc, ids, 2)
    assert ok and ok.generated == tuple(gen) and ok.text == completion["choices"][0]["text"]

    def tampered(**choice):
        c = json.loads(json.dumps(completion))
        c["choices"][0].update(choice)
        return c

    other_text = tampered(text=completion["choices"][0]["text"] + "!")
    other_ids = tampered(token_ids=[(gen[0] + 1) % 256, gen[1]])
    cases = {
        "another prompt": (completion, proof, [104, 106], 2),  # the proof is of "hi", not "hj"
        "not the proven tokens' text": (other_text, proof, ids, 2),
        "not the proven ones": (other_ids, proof, ids, 2),
        "asked for": (completion, proof, ids, 3),
        "malformed proof": (completion, proof[:-7], ids, 2),
        "malformed completion": ({"choices": "x"}, proof, ids, 2),
    }
    for why, (c, p, prompt, n) in cases.items():
        r = remote.check_completion(c, p, mc, prompt, n)
        assert not r and why in r.reason, (why, r.reason)
    bad = bytearray(proof)
    bad[len(bad) // 2] ^= 1
    assert not remote.check_completion(completion, bytes(bad), mc, ids, 2)
    other = ML.commit(*(lambda m: (m.config, m.weights))(
        __import__("pipeline.model_cli", fromlist=["x"]).small_random_model(1)),
        origin=mc.origin).commitment
    r = remote.check_completion(completion, proof, other, ids, 2)
    assert not r and "another model commitment" in r.reason


# ---------------------------------------------------------------- the service over HTTP


@pytest.fixture(scope="module")
def serve_url():
    remote.ServiceClient.DEADLINE_S = 300.0
    remote.ServiceClient.BACKOFF_CAP_S = 2.0
    port = free_port()
    service.start("127.0.0.1", port, num_cpus=2)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        service.stop()


@pytest.fixture(scope="module")
def tokens(root):
    from pipeline import tokens as T

    path = root / "tokens.json"
    values = {name: T.add(path, name, limit) for name, limit in (("alice", 2), ("bob", 1))}
    return path, T.load(path), values


def _config(owner, store: Path, **kw) -> service.ServiceConfig:
    return service.ServiceConfig(str(owner["model"]), str(store), simulate=True,
                                 llm_dir=str(owner["llm"]), llm_max_tokens=4, **kw)


@pytest.fixture(scope="module")
def app(serve_url, owner, tokens, root):
    store = root / "store-llm"
    service.deploy(_config(owner, store, tokens=tokens[1]), name="llm", route_prefix="/llm")
    return f"{serve_url}/llm", store


def test_completion_end_to_end_accepted(app, owner, tokens, root, capsys):
    url, store = app
    alice = tokens[2]["alice"]
    out = root / "hi.zkp"
    rc = main(["client", "complete", "hi", "--server", url, "--token", alice,
               "--commitment", str(owner["llm"] / "model.zkm"), "-n", "2", "--out", str(out)])
    text = capsys.readouterr().out
    assert rc == EXIT_OK, text
    expect = ML.generate(owner["pm"], np.array([104, 105]), 2)[2:].tolist()
    assert f"proven ids: {expect}" in text and "verdict: ACCEPTED" in text
    # the downloaded proof is an ordinary model proof: anyone verifies it offline
    assert main(["model-verify", str(owner["llm"] / "model.zkm"), str(out)]) == EXIT_OK
    capsys.readouterr()
    assert not list(store.rglob("*.pkl"))
    job = json.loads(next((store / "proofs").glob("*/job.json")).read_text())
    assert job["state"] == "proven" and job["tokens"] == [104, 105, *expect]


def test_access_control_and_refusals(app, owner, tokens):
    url, _ = app
    vals = tokens[2]
    alice = {"Authorization": f"Bearer {vals['alice']}"}
    bob = {"Authorization": f"Bearer {vals['bob']}"}
    with httpx.Client(base_url=url + "/v1", timeout=60) as http:
        assert http.get("/health").status_code == 200  # open
        assert http.post("/completions", json={"prompt": [1], "max_tokens": 1}).status_code == 401
        assert http.get("/model/llm-commitment").status_code == 401
        r = http.get("/model/llm-commitment", headers=alice)
        assert r.status_code == 200 and r.content == (owner["llm"] / "model.zkm").read_bytes()
        info = http.get("/info", headers=alice).json()["llm"]
        assert info["model"] == "random-0" and info["tokenizer"] == "bytes"
        r = http.post("/completions", json={"prompt": [7, 8, 9], "max_tokens": 2,
                                            "model": "random-0"}, headers=alice)
        assert r.status_code == 200, r.text
        c = r.json()
        assert c["object"] == "text_completion" and c["choices"][0]["finish_reason"] == "length"
        assert c["usage"] == {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
        assert c["choices"][0]["token_ids"] == ML.generate(
            owner["pm"], np.array([7, 8, 9]), 2)[3:].tolist()
        pid = c["proof_id"]
        assert http.get(f"/proofs/{pid}", headers=bob).status_code == 403
        assert http.get("/proofs/" + "0" * 32, headers=alice).status_code == 404
        assert http.get("/proofs/nonsense", headers=alice).status_code == 404
        # malformed bodies: 4xx with a reason, never a traceback
        bad = [(b"not json", 400), (b"[1, 2]", 400), (b'"x"', 400),
               (json.dumps({"max_tokens": 2}).encode(), 422),
               (json.dumps({"prompt": "", "max_tokens": 2}).encode(), 422),
               (json.dumps({"prompt": [], "max_tokens": 2}).encode(), 422),
               (json.dumps({"prompt": [1, "a"], "max_tokens": 2}).encode(), 422),
               (json.dumps({"prompt": [1, 256], "max_tokens": 2}).encode(), 422),
               (json.dumps({"prompt": [1, -1], "max_tokens": 2}).encode(), 422),
               (json.dumps({"prompt": [True], "max_tokens": 2}).encode(), 422),
               (json.dumps({"prompt": ["a", "b"], "max_tokens": 2}).encode(), 422),
               (json.dumps({"prompt": [1], "max_tokens": 0}).encode(), 422),
               (json.dumps({"prompt": [1], "max_tokens": 5}).encode(), 422),  # > llm_max_tokens
               (json.dumps({"prompt": [1], "max_tokens": "2"}).encode(), 422),
               (json.dumps({"prompt": [1] * 64, "max_tokens": 2}).encode(), 422),  # > max_len
               (json.dumps({"prompt": [1] * 65, "max_tokens": 1}).encode(), 422),
               (json.dumps({"prompt": [1], "temperature": 0.7}).encode(), 422),
               (json.dumps({"prompt": [1], "stream": True}).encode(), 422),
               (json.dumps({"prompt": [1], "bogus": 1}).encode(), 422),
               (json.dumps({"prompt": [1], "model": "gpt-4"}).encode(), 404),
               (b"\xff\xfe", 400), (b"x" * 70000, 413)]
        for body, status in bad:
            r = http.post("/completions", content=body, headers=alice)
            assert r.status_code == status, (body[:40], r.status_code, r.text)
            assert r.json()["error"] and "Traceback" not in r.text
        r = http.post("/completions", json={"prompt": [1]}, headers={**alice,
                                                                     "Idempotency-Key": "a b"})
        assert r.status_code == 400
        # the per-token limit on unfinished proofs: bob may have one
        r1 = http.post("/completions", json={"prompt": [3], "max_tokens": 1}, headers=bob)
        assert r1.status_code == 200, r1.text
        r2 = http.post("/completions", json={"prompt": [4], "max_tokens": 1}, headers=bob)
        assert r2.status_code == 429 and r2.headers["Retry-After"]
        # a retried request (same Idempotency-Key) is the same completion, not a new proof
        key = {**alice, "Idempotency-Key": "retry-1"}
        a = http.post("/completions", json={"prompt": [5], "max_tokens": 1}, headers=key)
        b = http.post("/completions", json={"prompt": [5], "max_tokens": 1}, headers=key)
        assert a.status_code == b.status_code == 200 and a.json() == b.json()
        c2 = http.post("/completions", json={"prompt": [6], "max_tokens": 1}, headers=key)
        assert c2.status_code == 422
    with remote.ServiceClient(url, token=vals["alice"]) as sc:
        r = remote.wait_proof(sc, pid)
        assert remote.check_completion(c, r, owner["commitment"], [7, 8, 9], 2)
        remote.wait_proof(sc, a.json()["proof_id"])
    with remote.ServiceClient(url, token=vals["bob"]) as sc:
        remote.wait_proof(sc, r1.json()["proof_id"])


def test_client_rejects_a_server_whose_text_is_not_the_proven_one(app, owner, tokens,
                                                                   monkeypatch, capsys):
    """The server's answer altered on its way (its text): the CLI says REJECTED, exit 1."""
    url, _ = app
    real = remote._completion_call

    def altered(service, body, key):
        c = real(service, body, key)
        c["choices"][0]["text"] = "I am sure: " + c["choices"][0]["text"]
        return c

    monkeypatch.setattr(remote, "_completion_call", altered)
    rc = main(["client", "complete", "ok", "--server", url, "--token", tokens[2]["alice"],
               "--commitment", str(owner["llm"] / "model.zkm"), "-n", "2"])
    out = capsys.readouterr().out
    assert rc == EXIT_REJECTED and "verdict: REJECTED" in out and "proven tokens' text" in out


def test_client_usage_errors(app, owner, tokens, capsys):
    url, _ = app
    zkm = str(owner["llm"] / "model.zkm")
    assert main(["client", "complete", "hi", "--server", url, "--commitment", zkm,
                 "-n", "2"]) == EXIT_USAGE  # no token: 401
    assert main(["client", "complete", "hi", "--server", url, "--commitment",
                 str(owner["llm"] / "private.npz")]) == EXIT_USAGE
    assert main(["client", "complete", "1,x", "--ids", "--server", url, "--commitment",
                 zkm]) == EXIT_USAGE
    assert main(["client", "complete", "hi", "--server", "http://10.0.0.1:1",
                 "--commitment", zkm]) == EXIT_USAGE  # plain HTTP off the loopback
    assert "Traceback" not in capsys.readouterr().err


def test_restart_while_proving_still_ends_with_the_proof(serve_url, owner, root):
    """The replica goes away while a proof is pending (its task made slow); a new one on the
    same store resumes the job and serves the proof."""
    from ray import serve

    store = root / "store-restart"
    service.deploy(_config(owner, store, llm_prove_delay_s=60.0), name="rs",
                   route_prefix="/rs")
    url = f"{serve_url}/rs"
    with httpx.Client(base_url=url + "/v1", timeout=60) as http:
        c = http.post("/completions", json={"prompt": [9, 10], "max_tokens": 2}).json()
        assert http.get(f"/proofs/{c['proof_id']}").status_code == 202
    serve.delete("rs")
    assert [j.id for j in st.ProofStore(store).in_flight()] == [c["proof_id"]]
    service.deploy(_config(owner, store), name="rs", route_prefix="/rs")
    with remote.ServiceClient(url) as sc:
        proof = remote.wait_proof(sc, c["proof_id"])
    r = remote.check_completion(c, proof, owner["commitment"], [9, 10], 2)
    assert r, r.reason
    serve.delete("rs")
