"""`zkfhe serve` under load: real TFHE sessions over HTTP on a local Ray, and what a cluster gives.

Run: .venv/bin/python bench/serve.py [--levels 1,2,4] [--sessions 2] [--k 3]

1. Fan-out: one session's server side (evaluate k+1 ciphertexts + prove k canaries, as Ray
   tasks) on a local Ray with 1 CPU, then with 2 CPUs (this machine's cores); speed-up.
2. Load: c = 1, 2, 4 concurrent clients (separate processes, each doing its whole side: keygen,
   encrypt, upload, open, download, verify, decrypt), ``--sessions`` x c sessions per level, on
   the small head (the demo's: 4 -> 2, L = 2, 3-bit, narrow tables) with real TFHE:
   sessions per minute, p50 / p95 session latency (client-observed, keygen included) and the
   server's share (evaluate + prove). Clients and server share this machine's 2 cores. Each
   level runs twice: the service open over plain HTTP, then as deployed: HTTPS (a throwaway CA
   and a certificate it signs, made with the test extra's ``cryptography``; the clients verify
   it) and API tokens, one per client (``--secure-only``: that row alone).
3. A GPT-2-size head (768 -> 64, L = 6, 4-bit) on N machines: measured per-task times (a canary
   proof at that size, measured here; the evaluation-key load rate, measured here) and the
   encrypted evaluation's time per ciphertext (``--gpt2-eval-s``: by default DESIGN.md's
   measured 110 s on 2 cores for a 6,480-PBS GPT-2-size head, counted as 220 core-seconds)
   drive an event simulation of Ray's scheduling (each task on one core, a session's proofs
   after all its evaluations) for a single session and for a burst of sessions.
4. Verifiable completions (``POST /v1/completions``, small random whole model: 2 layers, d 32,
   vocab 256): per request, the client-observed latency (generate, then prove in a Ray task,
   then the client's verification) one request at a time, and proofs per hour for a burst of
   ``--completions`` concurrent requests, with 1 and then 2 Ray workers (FHE simulated; only
   the whole-model proofs are measured). ``--only-completions`` runs this section alone.
"""

from __future__ import annotations

import argparse
import heapq
import multiprocessing
import os
import socket
import statistics
import sys
import tempfile
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
warnings.filterwarnings("ignore")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_model(folder: Path):
    """The demo's head (``zkfhe commit`` defaults): commitment, proving model, circuit."""
    from pipeline import api
    from pipeline.backend import RealFhe
    from pipeline.cli import DEMO_TABLES
    from zk.attention_ref import HeadConfig, random_head
    from zk.encoding import to_bytes

    cfg = HeadConfig(d_model=4, d_head=2, seq_len=2, n_bits=3, **DEMO_TABLES)
    head, _, calib = random_head(cfg, seed=0, n_calib=32)
    model, commitment = api.commit(head)
    (folder / "model.private").write_bytes(to_bytes(model))
    (folder / "model.commitment").write_bytes(to_bytes(commitment))
    be = RealFhe(head, calib)
    be.server.save(folder / "circuit")
    return head, calib, be, model


def in_process(be, head, calib, model, k: int) -> tuple[float, float]:
    """The same session's server side in this process, no Ray (S.Server: evaluate, prove)."""
    from pipeline import session as S
    from pipeline.canaries import ActivationCanaries

    canaries = ActivationCanaries(head, calib)
    client = S.Client(model.commitment, be.client(), canaries, k=k)
    server = S.Server(model, be.server)
    request = client.request(canaries.sample(1)[0])
    t0 = time.perf_counter()
    response = server.evaluate(request)
    t1 = time.perf_counter()
    server.prove(request, response, client.open(response))
    return t1 - t0, time.perf_counter() - t1


def _client_init() -> None:
    warnings.filterwarnings("ignore")
    import fhe.client  # noqa: F401  (concrete's import, out of the timed sessions)


def _client_sessions(url: str, commitment: bytes, n: int, k: int, token: str | None = None,
                     ca: str | None = None) -> list[dict]:
    """One client process: n sessions one after the other (with its API token and the CA that
    signed the server's certificate when the service has them)."""
    from pipeline import remote

    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        with remote.ServiceClient(url, poll_s=0.1, token=token, ca=ca) as sc:
            res = remote.run_session(url, k=k, commitment=commitment, service=sc)
            st = sc.status(res.session)
        out.append({"latency": time.perf_counter() - t0, "evaluate_s": st["evaluate_s"],
                    "prove_s": st["prove_s"], "t_end": time.time(),
                    "keygen": dict((r[0], r[1]) for r in res.steps)})
    return out


def _server_times(url: str, commitment: bytes, k: int, n: int, token: str | None = None,
                  ca: str | None = None) -> list[tuple[float, float]]:
    res = _client_sessions(url, commitment, n, k, token, ca)
    return [(r["evaluate_s"], r["prove_s"]) for r in res]


def fanout(model_dir: Path, store: Path, commitment: bytes, k: int) -> dict:
    from pipeline import service

    times = {}
    for cpus in (1, 2):
        port = _port()
        service.start("127.0.0.1", port, num_cpus=cpus)
        try:
            service.deploy(service.ServiceConfig(str(model_dir), str(store / f"fan{cpus}")))
            url = f"http://127.0.0.1:{port}"
            _server_times(url, commitment, k, 1)  # warm-up: workers, circuit, numba caches
            times[cpus] = _server_times(url, commitment, k, 2)
        finally:
            service.stop()
    return times


def secure_setup(folder: Path, clients: int) -> tuple[tuple, list[str], str, str, str]:
    """A throwaway CA and a server certificate it signs (for 127.0.0.1), and one API token per
    client (each allowed 2 active sessions) in a token file: (tokens, secrets, ca, cert, key)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "pipeline"))
    from pipeline import tokens as T
    from pipeutil import make_tls  # the TLS test's certificates (cryptography: the test extra)

    folder.mkdir(parents=True, exist_ok=True)
    ca, cert, key = make_tls(folder)
    file = folder / "tokens.json"
    secrets = [T.add(file, f"client{i}", 2) for i in range(clients + 1)]
    return T.load(file), secrets, str(ca), str(cert), str(key)


def load(model_dir: Path, store: Path, commitment: bytes, k: int, levels, per: int,
         secure: bool = False) -> dict:
    """c concurrent client processes per level, ``per`` sessions each: {c: (results, wall s)}.
    ``secure``: the service over HTTPS (a certificate the clients verify against its CA) with
    API tokens, one per client; otherwise plain HTTP without tokens."""
    from pipeline import service

    port = _port()
    tokens, secrets, ca, tls = None, [None] * (max(levels) + 1), None, {}
    if secure:
        tokens, secrets, ca, cert, key = secure_setup(store / "tls", max(levels))
        tls = {"ssl_certfile": cert, "ssl_keyfile": key}
    service.start("127.0.0.1", port, num_cpus=2, **tls)
    url = f"{'https' if secure else 'http'}://127.0.0.1:{port}"
    rows = {}
    try:
        service.deploy(service.ServiceConfig(str(model_dir), str(store / f"load{int(secure)}"),
                                             max_active=4, max_queued=64, tokens=tokens))
        _server_times(url, commitment, k, 1, secrets[-1], ca)  # warm-up
        for c in levels:
            ctx = multiprocessing.get_context("spawn")  # never fork a process that runs Ray
            with ProcessPoolExecutor(c, ctx, initializer=_client_init) as pool:
                list(pool.map(int, range(c)))  # processes up before the clock starts
                t0 = time.time()
                futs = [pool.submit(_client_sessions, url, commitment, per, k, secrets[i], ca)
                        for i in range(c)]
                res = [r for f in futs for r in f.result()]
                wall = time.time() - t0
            rows[c] = (res, wall)
    finally:
        service.stop()
    return rows


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def _pct(xs, p: float) -> float:
    xs = sorted(xs)
    i = min(len(xs) - 1, max(0, int(np.ceil(p / 100 * len(xs))) - 1))
    return xs[i]


# ---------------------------------------------------------------- cluster simulation


def measure_gpt2_prove() -> tuple[float, int]:
    """One canary proof of a GPT-2-size head (768 -> 64, L = 6, 4-bit), one thread."""
    import numba

    from pipeline import session as S
    from pipeline.canaries import ActivationCanaries
    from zk import attention_model as am
    from zk.attention_ref import HeadConfig, random_head

    head, _, calib = random_head(HeadConfig(768, 64, 6), seed=0, n_calib=4)
    model, _ = am.commit(head)
    x = ActivationCanaries(head, calib).inputs[0]
    numba.set_num_threads(1)
    S.prove_canary(model, 0, x, bytes(32))  # warm-up (kernels)
    t0 = time.perf_counter()
    proof = S.prove_canary(model, 0, x, bytes(32))
    return time.perf_counter() - t0, len(proof)


def measure_key_load(be, head, calib) -> float:
    """Seconds per MB to deserialize evaluation keys in a server (small head's keys)."""
    c = be.client()
    c.keygen()
    keys = c.evaluation_keys()
    t0 = time.perf_counter()
    be.server.add_evaluation_keys(keys)
    return (time.perf_counter() - t0) / (len(keys) / 1e6)


def simulate(machines: int, cores: int, n_sessions: int, k: int, t_eval: float,
             t_prove: float, t_keys: float, max_active: int | None = None) -> list[float]:
    """Event simulation of the service on a Ray cluster: ``n_sessions`` arrive at time 0;
    at most ``max_active`` are worked on at once (the service's admission; the rest wait).
    An admitted session submits k+1 evaluation tasks (t_eval + t_keys: the key load of a
    worker that has not seen the session), then, once all are done, k proof tasks (t_prove).
    Ray runs ready tasks FIFO on the first free core. Returns each session's latency."""
    n_cores = machines * cores
    max_active = n_sessions if max_active is None else max_active
    ready: list[tuple[float, int, int, str]] = []  # FIFO by (ready time, submission order)
    running: list[tuple[float, int, str]] = []  # (end, session, kind)
    seq = 0
    left = {}
    done = [0.0] * n_sessions
    queue = list(range(n_sessions))[::-1]

    def admit(t: float) -> None:
        nonlocal seq
        s = queue.pop()
        left[s] = [k + 1, k]
        for _ in range(k + 1):
            heapq.heappush(ready, (t, seq, s, "eval"))
            seq += 1

    for _ in range(min(max_active, n_sessions)):
        admit(0.0)
    t = 0.0
    while ready or running:
        while ready and len(running) < n_cores and ready[0][0] <= t:
            _, _, s, kind = heapq.heappop(ready)
            heapq.heappush(running, (t + (t_eval + t_keys if kind == "eval" else t_prove),
                                     s, kind))
        t, s, kind = heapq.heappop(running)
        if kind == "eval":
            left[s][0] -= 1
            if left[s][0] == 0:
                for _ in range(k):
                    heapq.heappush(ready, (t, seq, s, "prove"))
                    seq += 1
        else:
            left[s][1] -= 1
            if left[s][1] == 0:
                done[s] = t
                if queue:
                    admit(t)
    return done


# ---------------------------------------------------------------- verifiable completions


def completions_bench(tmp: Path, n: int, max_tokens: int) -> None:
    """Section 4: latency and proofs per hour of verifiable completions, 1 and 2 Ray workers."""
    import httpx

    from pipeline import api, remote, service
    from pipeline.model_cli import small_random_model
    from zk.attention_ref import HeadConfig, random_head
    from zk.encoding import to_bytes
    from zk.model import llama as ML

    owner = tmp / "llm"
    owner.mkdir()
    pm = ML.commit(*(lambda m: (m.config, m.weights))(small_random_model(0)),
                   origin={"model": "random-0", "tokenizer": "bytes"})
    (owner / "model.zkm").write_bytes(pm.commitment.to_bytes())
    ML.save_private(pm, owner / "private.npz")
    head_dir = tmp / "head"
    head_dir.mkdir()
    head, _, _ = random_head(HeadConfig(d_model=4, d_head=2, seq_len=2, n_bits=3), seed=0,
                             n_calib=8)
    hm, _ = api.commit(head)
    (head_dir / "model.private").write_bytes(to_bytes(hm))
    mc = pm.commitment
    print(f"\n4. verifiable completions: small random whole model (2 layers, d 32, vocab 256), "
          f"prompt 4 tokens, max_tokens {max_tokens}; each proof a Ray task on 1 CPU")
    print(f"  {'Ray CPUs':>8} {'mode':>10} {'requests':>8} {'generate s':>10} {'prove s':>8} "
          f"{'verify s':>8} {'latency p50 s':>13} {'wall s':>7} {'proofs/hour':>11}")

    def one(sc, i):
        ids = [(7 * i + j) % 256 for j in range(4)]
        t0 = time.perf_counter()
        c = remote._completion_call(sc, {"prompt": ids, "max_tokens": max_tokens}, f"b{i}")
        t1 = time.perf_counter()
        proof = remote.wait_proof(sc, c["proof_id"])
        t2 = time.perf_counter()
        ok = remote.check_completion(c, proof, mc, ids, max_tokens)
        t3 = time.perf_counter()
        assert ok, ok.reason
        return {"gen": t1 - t0, "wait": t2 - t1, "verify": t3 - t2, "latency": t3 - t0}

    for cpus in (1, 2):
        port = _port()
        service.start("127.0.0.1", port, num_cpus=cpus)
        try:
            cfg = service.ServiceConfig(str(head_dir), str(tmp / f"store-c{cpus}"),
                                        simulate=True, llm_dir=str(owner), llm_max_tokens=16,
                                        llm_max_active=cpus)
            service.deploy(cfg)
            url = f"http://127.0.0.1:{port}"
            with remote.ServiceClient(url, poll_s=0.05) as sc:
                one(sc, 1000 + cpus)  # warm-up: the worker's model, numba caches
                t0 = time.perf_counter()
                seq = [one(sc, i) for i in range(n)]
                wall_seq = time.perf_counter() - t0
            with ThreadPoolExecutor(n) as pool:
                t0 = time.perf_counter()
                scs = [remote.ServiceClient(url, poll_s=0.2) for _ in range(n)]
                burst = list(pool.map(lambda a: one(*a), [(scs[i], 100 + i) for i in range(n)]))
                wall_burst = time.perf_counter() - t0
                for c in scs:
                    c.close()
            with httpx.Client() as http:  # the server's own proving times
                health = http.get(f"{url}/v1/health").json()
            for mode, rows, wall in (("one by one", seq, wall_seq), ("burst", burst, wall_burst)):
                print(f"  {cpus:>8} {mode:>10} {len(rows):>8} "
                      f"{statistics.median(r['gen'] for r in rows):>10.2f} "
                      f"{statistics.median(r['wait'] for r in rows):>8.2f} "
                      f"{statistics.median(r['verify'] for r in rows):>8.2f} "
                      f"{statistics.median(r['latency'] for r in rows):>13.2f} {wall:>7.1f} "
                      f"{3600 * len(rows) / wall:>11.0f}")
            assert health["proofs"].get("proven", 0) == 2 * n + 1, health
        finally:
            service.stop()
    print("  generate s: POST /v1/completions until its answer (the replica's greedy generation);"
          " prove s: from there until the proof file came (the Ray task, polled every 50-200 "
          f"ms); verify s: the client's checks. load average after: {_load()}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--levels", default="1,2,4", help="concurrent clients per row")
    ap.add_argument("--sessions", type=int, default=2, help="sessions per client per row")
    ap.add_argument("--k", type=int, default=3)
    ap.add_argument("--skip-fanout", action="store_true")
    ap.add_argument("--skip-load", action="store_true")
    ap.add_argument("--secure-only", action="store_true",
                    help="section 2 with tokens and TLS only (not also open over plain HTTP)")
    ap.add_argument("--gpt2-eval-s", type=float, default=220.0,
                    help="core-seconds of one encrypted GPT-2-size evaluation (default: "
                         "DESIGN.md's 110 s on 2 cores)")
    ap.add_argument("--gpt2-keys-gb", type=float, default=1.5)
    ap.add_argument("--cores", type=int, default=16, help="cores per simulated machine")
    ap.add_argument("--completions", type=int, default=4,
                    help="completions per row of section 4 (default 4)")
    ap.add_argument("--max-tokens", type=int, default=3, help="tokens per completion (3)")
    ap.add_argument("--skip-completions", action="store_true")
    ap.add_argument("--only-completions", action="store_true", help="section 4 alone")
    args = ap.parse_args()
    if args.only_completions:
        tmp = Path(tempfile.mkdtemp(prefix="bench-serve-"))
        print(f"{os.cpu_count()} cores; load average before: {_load()}")
        completions_bench(tmp, args.completions, args.max_tokens)
        return
    levels = [int(c) for c in args.levels.split(",")]
    tmp = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    model_dir = tmp / "model"
    model_dir.mkdir()
    t0 = time.perf_counter()
    head, calib, be, model = make_model(model_dir)
    commitment = (model_dir / "model.commitment").read_bytes()
    print(f"small head 4 -> 2, L = 2, 3-bit (the demo's), real TFHE, k = {args.k}; "
          f"model + circuit in {time.perf_counter() - t0:.1f} s; {os.cpu_count()} cores")

    if not args.skip_fanout:
        print(f"\nload average before: {_load()}")
        base = [in_process(be, head, calib, model, args.k) for _ in range(2)][1:]
        times = fanout(model_dir, tmp, commitment, args.k)
        print("\n1. one session's server side fanned out as Ray tasks (2 sessions each, "
              "after a warm-up)")
        print(f"  {'Ray CPUs':>8} {'evaluate s':>11} {'prove s':>8} {'total s':>8}")
        ev, pr = base[0]
        print(f"  {'no Ray':>8} {ev:>11.2f} {pr:>8.2f} {ev + pr:>8.2f}   (S.Server in this "
              "process, for reference)")
        tot = {}
        for cpus, rows in times.items():
            ev = statistics.mean(r[0] for r in rows)
            pr = statistics.mean(r[1] for r in rows)
            tot[cpus] = ev + pr
            print(f"  {cpus:>8} {ev:>11.2f} {pr:>8.2f} {ev + pr:>8.2f}")
        print(f"  speed-up 1 -> 2 workers: {tot[1] / tot[2]:.2f}x; load average after: "
              f"{_load()}")

    if not args.skip_load:
        print(f"\n2. concurrent clients, {args.sessions} sessions each (client processes and "
              "server on the same 2 cores)")
        print(f"  {'access':>14} {'clients':>7} {'sessions':>8} {'wall s':>7} {'sess/min':>8} "
              f"{'p50 s':>7} {'p95 s':>7} {'server p50 s':>12} {'client keygen p50 s':>19}")
        for secure in ([False, True] if not args.secure_only else [True]):
            rows = load(model_dir, tmp, commitment, args.k, levels, args.sessions, secure)
            for c, (res, wall) in rows.items():
                lat = [r["latency"] for r in res]
                srv = [r["evaluate_s"] + r["prove_s"] for r in res]
                kg = [v for r in res for n, v in r["keygen"].items() if n.startswith("keygen")]
                mode = "tokens + TLS" if secure else "open, HTTP"
                print(f"  {mode:>14} {c:>7} {len(res):>8} {wall:>7.1f} "
                      f"{60 * len(res) / wall:>8.2f} {statistics.median(lat):>7.1f} "
                      f"{_pct(lat, 95):>7.1f} {statistics.median(srv):>12.1f} "
                      f"{statistics.median(kg):>19.1f}")
            print(f"  load average after: {_load()}")
        print("  tokens + TLS: HTTPS with a certificate each client verifies against the CA "
              "that signed it, one API token per client (Authorization: Bearer, at most 2 "
              "active sessions each)")

    print("\n3. GPT-2-size head (768 -> 64, L = 6, 4-bit) on N machines: simulation")
    t_prove, size = measure_gpt2_prove()
    rate = measure_key_load(be, head, calib)
    t_keys = rate * args.gpt2_keys_gb * 1e3 + args.gpt2_keys_gb * 8 / 10  # load + 10 Gb/s
    k = args.k
    print(f"  measured here: canary proof {t_prove:.2f} s on 1 thread ({size:,} bytes); "
          f"evaluation keys load {rate * 1e3:.1f} ms/MB -> {t_keys:.1f} s per worker for "
          f"{args.gpt2_keys_gb} GB (+ transfer at 10 Gb/s)")
    print(f"  assumed: encrypted evaluation {args.gpt2_eval_s:.0f} core-s per ciphertext; "
          f"{args.cores} cores per machine; k = {k}")
    work = (k + 1) * (args.gpt2_eval_s + t_keys) + k * t_prove
    print(f"  one session = {work:.0f} core-s of tasks; {k + 1} evaluations, {k} proofs")
    print(f"  without fan-out (a session's tasks one after another on one core): "
          f"{work:.0f} s per session")
    n = 256
    print(f"  burst: {n} sessions at once; the service admits max-active = cores / (k+1) "
          "sessions at a time (all cores busy), the rest wait in its queue")
    print(f"  {'machines':>8} {'1 session s':>12} {'sessions/hour at capacity':>25} "
          f"{'burst p50 s':>11} {'p95 s':>7} {'last s':>7} {'(no admission: p50 s)':>21}")
    for m in (1, 2, 4, 8, 16, 32):
        sim = dict(machines=m, cores=args.cores, k=k, t_eval=args.gpt2_eval_s,
                   t_prove=t_prove, t_keys=t_keys)
        one = simulate(n_sessions=1, **sim)[0]
        burst = simulate(n_sessions=n, max_active=max(1, m * args.cores // (k + 1)), **sim)
        flood = simulate(n_sessions=n, **sim)
        capacity = m * args.cores * 3600 / work
        print(f"  {m:>8} {one:>12.0f} {capacity:>25.1f} {statistics.median(burst):>11.0f} "
              f"{_pct(burst, 95):>7.0f} {max(burst):>7.0f} {statistics.median(flood):>21.0f}")

    if not args.skip_completions:
        completions_bench(tmp, args.completions, args.max_tokens)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
