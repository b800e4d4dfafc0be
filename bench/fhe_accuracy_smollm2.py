"""Accuracy of the FHE-friendly head settings on SmolLM2: top-1 next-token agreement with the
float model when layer 0 head 0 is replaced by the 4-bit integer head, for the default 4-bit
settings and for HeadConfig.for_fhe's (as in bench/fhe.py --smollm2-approx).

Run: python bench/fhe_accuracy_smollm2.py   (about 1 min; needs the SmolLM2 wheel)
Same windows and metrics as bench/accuracy.py --smollm2 (32 windows of 64 tokens).
"""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from accuracy import SMOL_HDR, SmolEval, smol_line  # noqa: E402

from zk.attention_ref import FHE_FRIENDLY  # noqa: E402

SETTINGS = (
    ("4-bit default", {}),
    ("for_fhe", dict(FHE_FRIENDLY)),
    ("for_fhe score 6", dict(FHE_FRIENDLY, score_bits=6)),
    ("for_fhe score 6 tlu 6", dict(FHE_FRIENDLY, score_bits=6, tlu_bits=6)),
    ("stop-16 for_fhe", dict(FHE_FRIENDLY, tlu_bits=6, exp_bits=4)),
)


def main() -> None:
    ev = SmolEval(64, 32, 32)
    print(SMOL_HDR, flush=True)
    for name, kw in SETTINGS:
        t = time.time()
        r = ev.evaluate(ev.heads([(0, 0)], 4, "channel", **kw))
        r.update(setting="1 head, layer 0", scheme=name, bits=4)
        print(smol_line(r), f"({time.time() - t:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
