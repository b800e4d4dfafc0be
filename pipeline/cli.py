"""The `zkfhe` command line.

Exit codes: 0 success (proof accepted), 1 proof rejected (a check failed or a file is
malformed), 2 usage error (bad arguments, missing file).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

EXIT_OK, EXIT_REJECTED, EXIT_USAGE = 0, 1, 2


def write_atomic(path: Path, data: bytes) -> None:
    """Write a file so that readers never see a partial one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


class Steps:
    """Prints one line per step with its time and the size of what it wrote."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.rows: list[tuple[str, float, int | None]] = []

    def start(self, what: str) -> None:
        if sys.stdout.isatty():  # a progress line, replaced by the result line
            print(f"  {what} ...", end="", flush=True)
        self.t0 = time.perf_counter()

    def done(self, name: str, size: int | None = None, note: str = "") -> float:
        dt = time.perf_counter() - self.t0
        self.rows.append((name, dt, size))
        extra = f"  {size:,} bytes" if size is not None else ""
        lead = "\r\033[K" if sys.stdout.isatty() else ""
        print(f"{lead}  {name:<34} {dt:8.2f} s{extra}{('  ' + note) if note else ''}", flush=True)
        return dt


# narrow tables keep the demo's TFHE keys near 100 MB and a run to seconds on 2 cores
DEMO_TABLES = dict(score_bits=5, tlu_bits=5, out_tlu_bits=5, exp_bits=3, prob_bits=3)


def _progress(label: str):
    """A progress callback (i, n) that redraws one line on a terminal and prints nothing
    elsewhere."""
    def show(i: int, n: int) -> None:
        if sys.stdout.isatty():
            bar = "#" * (20 * i // n)
            print(f"\r\033[K  {label} [{bar:<20}] {i}/{n}", end="", flush=True)
    return show


def cmd_demo(args: argparse.Namespace) -> int:
    """A whole encrypted session on a small built-in head, with real TFHE, in one process."""
    import numpy as np

    from pipeline import api
    from pipeline import session as S
    from pipeline.canaries import ActivationCanaries
    from zk.attention_ref import HeadConfig, random_head, run_reference
    from zk.encoding import from_bytes, to_bytes

    out = Path(args.out)
    cfg = HeadConfig(d_model=args.d_model, d_head=args.d_head, seq_len=args.tokens,
                     n_bits=args.bits, **DEMO_TABLES)
    print(f"built-in head: d_model {cfg.d_model} -> d_head {cfg.d_head}, {cfg.seq_len} tokens, "
          f"{cfg.n_bits}-bit, causal, GPT-2-like random weights; k = {args.k} canaries")
    print("backend: " + ("SIMULATED FHE (no encryption)" if args.simulate else
                         "real TFHE (concrete-python), fresh keys"))
    head, _, calib = random_head(cfg, seed=args.seed, n_calib=32)
    canaries = ActivationCanaries(head, calib[1:])
    x = ActivationCanaries(head, calib[:1]).inputs[0]
    st = Steps()

    st.start("owner: commit to the head")
    model, commitment = api.commit(head)
    write_atomic(out / "model.commitment", to_bytes(commitment))
    st.done("owner: commit", len(to_bytes(commitment)))

    st.start("server: compile the FHE circuit")
    if args.simulate:
        from pipeline.backend import SimulatedFhe
        backend = SimulatedFhe(head)
    else:
        from pipeline.backend import RealFhe
        backend = RealFhe(head, calib)
    st.done("server: compile circuit")
    server = S.Server(model, backend.server)
    client = S.Client(commitment, backend.client(), canaries, k=args.k)

    st.start("client: keygen, encrypt x + canaries")
    request = client.request(x)
    write_atomic(out / "session.request", to_bytes(request))
    st.done("client: keygen + encrypt", len(to_bytes(request)),
            f"(evaluation keys {len(request.evaluation_keys):,} bytes)")

    st.start(f"server: evaluate {args.k + 1} ciphertexts")
    response = server.evaluate(from_bytes(S.Request, (out / "session.request").read_bytes()))
    write_atomic(out / "session.response", to_bytes(response))
    st.done("server: evaluate, fix the receipt", len(to_bytes(response)))

    st.start("client: open the canaries")
    opening = client.open(from_bytes(S.Response, (out / "session.response").read_bytes()))
    write_atomic(out / "session.opening", to_bytes(opening))
    st.done("client: open canaries", len(to_bytes(opening)))

    st.start("server: prove the canaries")
    bundle = server.prove(request, response,
                          from_bytes(S.CanaryOpening, (out / "session.opening").read_bytes()),
                          progress=_progress("server: proving canary"))
    write_atomic(out / "session.bundle", to_bytes(bundle))
    st.done("server: prove canaries (zkAttn)", len(to_bytes(bundle)))

    st.start("auditor: verify the bundle (no keys)")
    verdict = api.verify((out / "session.bundle").read_bytes(),
                         (out / "model.commitment").read_bytes(), request, response)
    st.done("auditor: verify bundle")
    if not verdict:
        print(f"verdict: REJECTED ({verdict.reason})")
        return EXIT_REJECTED

    st.start("client: check canaries, decrypt")
    y = client.finish(response, from_bytes(S.ProofBundle, (out / "session.bundle").read_bytes()))
    st.done("client: check canaries + decrypt")
    assert np.array_equal(y, run_reference(x, head)[0])
    print(f"real output (decrypted): y[0] = {y[0].tolist()}")
    print(f"files in {out}/; total {sum(r[1] for r in st.rows):.1f} s")
    print("verdict: ACCEPTED (every canary proven and matched; the real query is covered with "
          f"probability {args.k}/{args.k + 1} against a server corrupting one output)")
    return EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    """Verify an inference proof or a session's proof bundle against a model commitment."""
    from pipeline import api
    from pipeline import session as S
    from zk.encoding import from_bytes
    from zk.errors import VerificationError

    for p in (args.commitment, args.proof, args.request, args.response):
        if p is not None and not Path(p).is_file():
            print(f"error: no such file: {p}", file=sys.stderr)
            return EXIT_USAGE
    try:
        req = from_bytes(S.Request, Path(args.request).read_bytes()) if args.request else None
        resp = from_bytes(S.Response, Path(args.response).read_bytes()) if args.response else None
        verdict = api.verify(Path(args.proof).read_bytes(), Path(args.commitment).read_bytes(),
                             req, resp)
    except VerificationError as e:  # malformed files
        print(f"verdict: REJECTED ({e})")
        return EXIT_REJECTED
    if not verdict:
        print(f"verdict: REJECTED ({verdict.reason})")
        return EXIT_REJECTED
    for pos, y in verdict.outputs.items():
        print(f"proven output at position {pos}: y[0] = {y[0].tolist()}")
    print("verdict: ACCEPTED")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="zkfhe",
        description="Verifiable and encrypted attention inference: prove, verify, demo.",
    )
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = sub.add_parser("demo", help="a whole encrypted session with proofs on a small head")
    demo.add_argument("--tokens", type=int, default=2, help="sequence length (default 2)")
    demo.add_argument("--d-model", type=int, default=4, help="model width (default 4)")
    demo.add_argument("--d-head", type=int, default=2, help="head width (default 2)")
    demo.add_argument("--bits", type=int, default=3, help="activation/weight bits (default 3)")
    demo.add_argument("--k", type=int, default=3, help="canaries per session (default 3)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--simulate", action="store_true",
                      help="simulate FHE (no encryption; for a quick look only)")
    demo.add_argument("--out", default="out", help="folder for the files (default out/)")
    demo.set_defaults(func=cmd_demo)
    ver = sub.add_parser("verify", help="verify a proof or a proof bundle (no keys needed)")
    ver.add_argument("commitment", help="model commitment file")
    ver.add_argument("proof", help="inference proof or session bundle file")
    ver.add_argument("--request", help="the session's request file (checks its ciphertexts)")
    ver.add_argument("--response", help="the session's response file (checks its ciphertexts)")
    ver.set_defaults(func=cmd_verify)
    return ap


def main(argv: list[str] | None = None) -> int:
    import warnings

    # concrete-python imports pkg_resources, which warns on every run; nothing to act on here
    warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
    args = build_parser().parse_args(argv)
    for name in ("tokens", "d_model", "d_head"):
        v = getattr(args, name, None)
        if v is not None and not 1 <= v <= 4096:
            print(f"error: --{name.replace('_', '-')} must be in 1..4096", file=sys.stderr)
            return EXIT_USAGE
    if getattr(args, "k", None) is not None and not 1 <= args.k <= 16:
        print("error: --k must be in 1..16", file=sys.stderr)
        return EXIT_USAGE
    if getattr(args, "bits", None) is not None and not 2 <= args.bits <= 8:
        print("error: --bits must be in 2..8", file=sys.stderr)
        return EXIT_USAGE
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
