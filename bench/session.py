"""Time and bytes of every step of one encrypted session with canary-bound proofs.

Run: python bench/session.py [--k 3] [--skip-gpt2] | [--real-gpt2]
Rows: a small head with real TFHE (4x2, L = 2, narrow tables: the demo's head), and a
GPT-2-size head (768 -> 64, L = 6, 4-bit) whose FHE evaluation is SIMULATED (circuit.simulate,
bit-exact with the circuit): its real keys would not fit this machine's memory and a real run
would exceed 10 minutes. Proofs, receipts and checks are real in both. ``--real-gpt2``: a whole
real TFHE session on the GPT-2-size head in the large-head configuration
(``HeadConfig.for_fhe``, approximate mode: the canary check allows the published delta).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

# the repository root before bench/, whose fhe.py would shadow the fhe package
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
warnings.filterwarnings("ignore", message="pkg_resources is deprecated")


def run(label: str, cfg, k: int, simulate: bool, approximate: bool = False) -> None:
    from pipeline import api
    from pipeline import session as S
    from pipeline.backend import RealFhe, SimulatedFhe
    from pipeline.canaries import ActivationCanaries
    from zk.attention_ref import random_head
    from zk.encoding import to_bytes

    head, _, calib = random_head(cfg, seed=0, n_calib=16)
    if approximate:
        from fhe.compile import approximate_head

        head = approximate_head(head)
    canaries = ActivationCanaries(head, calib[1:])
    x = ActivationCanaries(head, calib[:1]).inputs[0]
    rows = []

    def step(name, fn, size=None):
        t = time.perf_counter()
        out = fn()
        rows.append((name, time.perf_counter() - t, size(out) if size else None))
        return out

    model, commitment = step("owner: commit", lambda: api.commit(head),
                             lambda o: len(to_bytes(o[1])))
    if simulate:
        from fhe.compile import compile_head, make_inputset

        circuit = step("server: compile circuit", lambda: compile_head(head, make_inputset(head, calib)))
        be = SimulatedFhe(head, circuit)
    else:
        be = step("server: compile circuit", lambda: RealFhe(head, calib))
        circuit = be.circuit
    client = S.Client(commitment, be.client(), canaries, k=k)
    server = S.Server(model, be.server)
    req = step("client: keygen + encrypt", lambda: client.request(x), lambda o: len(to_bytes(o)))
    resp = step(f"server: evaluate {k + 1} inputs", lambda: server.evaluate(req),
                lambda o: len(to_bytes(o)))
    opening = step("client: open canaries", lambda: client.open(resp), lambda o: len(to_bytes(o)))
    bundle = step(f"server: prove {k} canaries", lambda: server.prove(req, resp, opening),
                  lambda o: len(to_bytes(o)))
    step("auditor: verify bundle", lambda: api.verify(bundle, commitment, req, resp))
    step("client: check + decrypt", lambda: client.finish(resp, bundle))
    print(f"\n{label}  [{'SIMULATED FHE' if simulate else 'real TFHE'}]")
    print(f"  {'step':<32} {'time s':>8} {'bytes':>14}")
    for name, dt, size in rows:
        print(f"  {name:<32} {dt:>8.2f} {'' if size is None else f'{size:,}':>14}")
    print(f"  evaluation keys: {len(req.evaluation_keys):,} bytes"
          + (" (simulated: placeholder)" if simulate else ""))
    from fhe.compile import search_stats

    ss = search_stats(circuit)
    print(f"  parameters: {circuit.programmable_bootstrap_count:,} PBS; {ss['key_policy']}"
          + (f"; cap dropped: {' / '.join(ss['parameter_search'])}" if ss["ks_cap_dropped"]
             else ""))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--k", type=int, default=3)
    ap.add_argument("--skip-gpt2", action="store_true")
    ap.add_argument("--real-gpt2", action="store_true",
                    help="only a real TFHE session on the GPT-2-size head in the large-head "
                         "configuration (HeadConfig.for_fhe), approximate mode (~20 min)")
    args = ap.parse_args()
    from zk.attention_ref import HeadConfig

    if args.real_gpt2:
        run("GPT-2-size head 768 -> 64, L = 6, 4-bit, HeadConfig.for_fhe, approximate",
            HeadConfig.for_fhe(768, 64, 6), args.k, simulate=False, approximate=True)
        return
    small = HeadConfig(4, 2, 2, n_bits=3, score_bits=5, tlu_bits=5, out_tlu_bits=5, exp_bits=3,
                       prob_bits=3)
    run("small head 4 -> 2, L = 2, 3-bit", small, args.k, simulate=False)
    if not args.skip_gpt2:
        run("GPT-2-size head 768 -> 64, L = 6, 4-bit", HeadConfig(768, 64, 6), args.k,
            simulate=True)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
