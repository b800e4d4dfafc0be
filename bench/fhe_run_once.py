"""One real encrypted run of the GPT-2-size HeadConfig.for_fhe head (approximate mode), for
before/after comparisons of FHE changes on the same machine, in turn:

    farm-bench -n 2 --warmup 0 --timeout 1800 \\
        --vs "sh -c 'exec env REPO=/path/to/old/checkout .venv/bin/python bench/fhe_run_once.py >> /tmp/old.txt 2>&1'" \\
        -- sh -c 'exec env REPO=$PWD .venv/bin/python bench/fhe_run_once.py >> /tmp/new.txt 2>&1'

``REPO`` (default: this checkout) is the tree whose zk/ and fhe/ are imported. Prints the compile
figures, keygen time, the run's wall and CPU seconds (direct circuit path, no serialization) and
the largest deviation from the reference.
"""

from __future__ import annotations

import os
import sys
import time
import warnings

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.environ.get("REPO") or HERE)
warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402

from fhe.compile import approximate_head, compile_head, make_inputset  # noqa: E402
from zk.attention_ref import HeadConfig, random_head, run_reference  # noqa: E402


def gpt2_for_fhe():
    """(approximate head, inputset) of the GPT-2-size HeadConfig.for_fhe head (seed 1)."""
    base, _, calib = random_head(HeadConfig.for_fhe(768, 64, 6), seed=1, n_calib=16)
    return approximate_head(base), make_inputset(base, calib)


def timed_run(circuit, head, x) -> tuple[float, float, float, int]:
    """One encrypted run of x: (wall s, user CPU s, system CPU s, max |FHE - reference|)."""
    enc = circuit.encrypt(x)
    t0, t = os.times(), time.perf_counter()
    out = circuit.run(enc)
    wall, t1 = time.perf_counter() - t, os.times()
    dev = int(np.abs(circuit.decrypt(out) - run_reference(x, head)[0]).max())
    return wall, t1.user - t0.user, t1.system - t0.system, dev


def main() -> None:
    head, inputs = gpt2_for_fhe()
    t = time.perf_counter()
    circuit = compile_head(head, inputs)
    print(f"compile {time.perf_counter() - t:.1f}s PBS {circuit.programmable_bootstrap_count} "
          f"complexity {circuit.complexity:.3g} keys "
          f"{(circuit.size_of_bootstrap_keys + circuit.size_of_keyswitch_keys) / 1e9:.2f} GB",
          flush=True)
    t = time.perf_counter()
    circuit.keygen()
    print(f"keygen {time.perf_counter() - t:.1f}s", flush=True)
    wall, user, system, dev = timed_run(circuit, head, inputs[0])
    print(f"run wall {wall:.1f}s user {user:.1f}s sys {system:.1f}s; "
          f"max |FHE - reference| {dev}", flush=True)


if __name__ == "__main__":
    main()
