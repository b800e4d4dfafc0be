"""The SmolLM2 head in calibrated and in saturate mode: static intervals, refusals on real prose
the head was not calibrated on, and (``--compile``) the approximate-mode FHE circuit of each.

    .venv/bin/python bench/head_bounds.py [L] [--compile]      # results: bench/results/head_saturate_smollm2.txt
"""
import sys, time, warnings, collections
warnings.filterwarnings("ignore")
import os
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT); sys.path.append(os.path.join(ROOT, "bench"))
import numpy as np
import torch
from pipeline import generate as G
from fhe import hf_models as hm
from fhe.hf_models import head_inputs
from zk.attention_ref import FHE_FRIENDLY, BoundsViolation, quantize_input, run_reference
from model_accuracy import python_docs_prose, spread_windows
L = int(sys.argv[1]) if len(sys.argv) > 1 else 6
compile_too = "--compile" in sys.argv
model, tok = hm.smollm2_model()
calib = G.calibration_windows(model, tok, 0, L, 32)
ids = spread_windows(tok, python_docs_prose(), L, 120)
acts = head_inputs(model, 0, {"input_ids": torch.as_tensor(ids)})
w = lambda lo, hi: np.log2(max(hi - lo, 1))
for name, kw in (("for_fhe s6", dict(FHE_FRIENDLY, score_bits=6)),):
    heads = {m: G.private_head(model, tok, 0, 0, 4, L, "channel", calib=calib, bounds_mode=m, **kw)
             for m in ("calibrated", "saturate")}
    cal, sat = heads["calibrated"], heads["saturate"]
    print(f"\n== {name} L={L}: shifts cal {cal.shifts} sat {sat.shifts}; norm2 {sat.config.x_norm2_bound}")
    for k in sorted(cal.bounds):
        a, b = cal.bounds[k], sat.bounds[k]
        if a != b:
            print(f"  {k:8s} cal {str(a):24s} sat {str(b):26s} +{w(*b) - w(*a):.1f} bits")
    for m, head in heads.items():
        why = collections.Counter()
        for seq in acts:
            try:
                run_reference(quantize_input(seq, head), head)
            except BoundsViolation as e:
                why[str(e).split(" outside")[0].split(":")[0]] += 1
        print(f"  {m}: python-docs windows {len(acts)} refused {sum(why.values())}: {dict(why)}", flush=True)
    if compile_too:
        from fhe.compile import approximate_head, compile_head, fhe_stats, make_inputset
        for m, head in heads.items():
            head = approximate_head(head)
            t = time.perf_counter()
            try:
                c = compile_head(head, make_inputset(head, calib[:8]), fhe_execution=False)
                st = fhe_stats(c)
            except RuntimeError as e:
                print(f"  {m} approx: no circuit ({str(e).splitlines()[-1][:80]})", flush=True)
                continue
            print(f"  {m} approx: compile {time.perf_counter()-t:.1f}s PBS {st['pbs']} max TLU {st['max_tlu_input_bits']} "
                  f"BSK {st['size_of_bootstrap_keys']/1e9:.2f} GB KSK {st['size_of_keyswitch_keys']/1e9:.2f} GB", flush=True)
