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


def cmd_demo(args: argparse.Namespace) -> int:
    """Commit to a built-in head, prove one inference, write, read back and verify."""
    from zk import attention_model as am
    from zk import zkattn
    from zk.attention_ref import HeadConfig, quantize_input, random_head
    from zk.encoding import from_bytes, to_bytes

    out = Path(args.out)
    cfg = HeadConfig(d_model=args.d_model, d_head=args.d_head, seq_len=args.tokens,
                     n_bits=args.bits)
    head, _, calib = random_head(cfg, seed=args.seed)
    x = quantize_input(calib[0], head)
    print(f"head: d_model {cfg.d_model} -> d_head {cfg.d_head}, {cfg.seq_len} tokens, "
          f"{cfg.n_bits}-bit, causal (GPT-2-like random weights)")
    t0 = time.perf_counter()
    pm, mc = am.commit(head)
    t1 = time.perf_counter()
    write_atomic(out / "model.commitment", to_bytes(mc))
    print(f"commit  {t1 - t0:8.3f} s   {out / 'model.commitment'} "
          f"({len(to_bytes(mc)):,} bytes)")
    proof = zkattn.prove(pm, x)
    t2 = time.perf_counter()
    data = proof.to_bytes()
    write_atomic(out / "inference.proof", data)
    print(f"prove   {t2 - t1:8.3f} s   {out / 'inference.proof'} ({len(data):,} bytes, "
          f"public x and y included)")
    mc_back = from_bytes(am.ModelCommitment, (out / "model.commitment").read_bytes())
    t3 = time.perf_counter()
    back = zkattn.verify_bytes((out / "inference.proof").read_bytes(), mc_back)
    t4 = time.perf_counter()
    print(f"verify  {t4 - t3:8.3f} s   (read back from the files)")
    print(f"output  y[0] = {back.y[0].tolist()}")
    print("verdict: ACCEPTED")
    return EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    """Verify an inference proof file against a model commitment file."""
    from zk import attention_model as am
    from zk import zkattn
    from zk.encoding import from_bytes
    from zk.errors import VerificationError

    for p in (args.commitment, args.proof):
        if not Path(p).is_file():
            print(f"error: no such file: {p}", file=sys.stderr)
            return EXIT_USAGE
    try:
        mc = from_bytes(am.ModelCommitment, Path(args.commitment).read_bytes())
        zkattn.verify_bytes(Path(args.proof).read_bytes(), mc)
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
    demo = sub.add_parser("demo", help="commit, prove, write, read back and verify an inference")
    demo.add_argument("--tokens", type=int, default=8, help="sequence length (default 8)")
    demo.add_argument("--d-model", type=int, default=64, help="model width (default 64)")
    demo.add_argument("--d-head", type=int, default=16, help="head width (default 16)")
    demo.add_argument("--bits", type=int, default=4, help="activation/weight bits (default 4)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--out", default="out", help="folder for the files (default out/)")
    demo.set_defaults(func=cmd_demo)
    ver = sub.add_parser("verify", help="verify an inference proof against a model commitment")
    ver.add_argument("commitment", help="model commitment file")
    ver.add_argument("proof", help="inference proof file")
    ver.set_defaults(func=cmd_verify)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    for name in ("tokens", "d_model", "d_head"):
        v = getattr(args, name, None)
        if v is not None and not 1 <= v <= 4096:
            print(f"error: --{name.replace('_', '-')} must be in 1..4096", file=sys.stderr)
            return EXIT_USAGE
    if getattr(args, "bits", None) is not None and not 2 <= args.bits <= 8:
        print("error: --bits must be in 2..8", file=sys.stderr)
        return EXIT_USAGE
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
