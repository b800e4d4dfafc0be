"""The `zkfhe` command line.

Exit codes: 0 success (proof accepted), 1 proof rejected (a check failed or the file is
malformed), 2 usage error (bad arguments, missing file).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

EXIT_OK, EXIT_REJECTED, EXIT_USAGE = 0, 1, 2


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def cmd_demo(args: argparse.Namespace) -> int:
    """Prove a quantized projection (activations x weights), write, read back, verify."""
    import numpy as np

    from zk.encoding import from_bytes, to_bytes
    from zk.matmul_proof import MatmulProof, prove_matmul, verify_matmul

    rng = np.random.default_rng(args.seed)
    x = rng.integers(-8, 8, size=(args.tokens, args.d_model))   # 4-bit activations
    w = rng.integers(-8, 8, size=(args.d_model, args.d_head))   # 4-bit weights
    print(f"statement: C = X W with X {x.shape} and W {w.shape}, 4-bit integers")
    t0 = time.perf_counter()
    proof = prove_matmul(x, w)
    t1 = time.perf_counter()
    data = to_bytes(proof)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(out, data)
    t2 = time.perf_counter()
    back = from_bytes(MatmulProof, out.read_bytes())
    verify_matmul(back)
    t3 = time.perf_counter()
    print(f"prove   {t1 - t0:8.3f} s")
    print(f"write   {t2 - t1:8.3f} s   {out} ({len(data):,} bytes, public X, W, C included)")
    print(f"verify  {t3 - t2:8.3f} s   (read back from the file)")
    print("verdict: ACCEPTED")
    return EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    """Verify a matrix-product proof file."""
    from zk.encoding import from_bytes
    from zk.errors import VerificationError
    from zk.matmul_proof import MatmulProof, verify_matmul

    path = Path(args.proof)
    if not path.is_file():
        print(f"error: no such file: {path}", file=sys.stderr)
        return EXIT_USAGE
    try:
        verify_matmul(from_bytes(MatmulProof, path.read_bytes()))
    except VerificationError as e:
        print(f"verdict: REJECTED ({e})")
        return EXIT_REJECTED
    print("verdict: ACCEPTED")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="zkfhe",
        description="Verifiable and encrypted attention inference: prove, verify, demo.",
    )
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = sub.add_parser("demo", help="prove, write, read back and verify a demo statement")
    demo.add_argument("--tokens", type=int, default=32, help="rows of X (default 32)")
    demo.add_argument("--d-model", type=int, default=768, help="columns of X (default 768)")
    demo.add_argument("--d-head", type=int, default=64, help="columns of W (default 64)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--out", default="out/demo.proof", help="proof file to write")
    demo.set_defaults(func=cmd_demo)
    ver = sub.add_parser("verify", help="verify a proof file written by demo")
    ver.add_argument("proof", help="path of the proof file")
    ver.set_defaults(func=cmd_verify)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    for name in ("tokens", "d_model", "d_head"):
        v = getattr(args, name, None)
        if v is not None and not 1 <= v <= 4096:
            print(f"error: --{name.replace('_', '-')} must be in 1..4096", file=sys.stderr)
            return EXIT_USAGE
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
