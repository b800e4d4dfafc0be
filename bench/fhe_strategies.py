"""Real runs of the GPT-2-size HeadConfig.for_fhe head (approximate mode) compiled with
concrete's two multi-parameter strategies, PRECISION (the project's default) and
PRECISION_AND_NORM2, alternated in one process so that both see the same machine state:

    .venv/bin/python bench/fhe_strategies.py [PAIRS]      # default 2 pairs; ~30 min on 2 cores

Prints each strategy's complexity, keys in memory, compile and keygen time, then each run's
wall and user CPU seconds and its largest deviation from the reference.
"""

from __future__ import annotations

import os
import sys
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
warnings.filterwarnings("ignore")

from concrete import fhe
from fhe_run_once import gpt2_for_fhe, timed_run

from fhe.compile import compile_head

STRATEGIES = {"PRECISION": {},
              "NORM2": {"multi_parameter_strategy": fhe.MultiParameterStrategy.PRECISION_AND_NORM2}}


def main(pairs: int = 2) -> None:
    head, inputs = gpt2_for_fhe()
    circuits = {}
    for name, kw in STRATEGIES.items():
        t = time.perf_counter()
        c = compile_head(head, inputs, **kw)
        keys = (c.size_of_bootstrap_keys + c.size_of_keyswitch_keys) / 1e9
        print(f"{name:10s} compile {time.perf_counter() - t:.0f}s complexity {c.complexity:.3g} "
              f"keys {keys:.2f} GB", flush=True)
        t = time.perf_counter()
        c.keygen()
        print(f"{name:10s} keygen {time.perf_counter() - t:.0f}s", flush=True)
        circuits[name] = c
    for i in range(pairs):
        for name, c in circuits.items():
            wall, user, _, dev = timed_run(c, head, inputs[0])
            print(f"{name:10s} run {i}: wall {wall:.1f}s user {user:.1f}s "
                  f"max |FHE - reference| {dev}", flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2)
