"""zkfhe model-commit / model-generate / model-verify and the API on a whole model: an owner
commits, a server proves a generation, anyone verifies it; tampered files are rejected with the
documented exit codes, unreadable ones refused without a traceback."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline import api
from pipeline.cli import main
from pipeline.model_cli import small_random_model
from zk.model import llama as ML


@pytest.fixture(scope="module")
def owner(tmp_path_factory):
    out = tmp_path_factory.mktemp("owner")
    assert main(["model-commit", "--out", str(out), "--random", "3"]) == 0
    return out


def test_commit_generate_verify(owner, tmp_path, capsys):
    proof = tmp_path / "gen.zkp"
    assert main(["model-generate", "--model", str(owner), "--ids", "5,6,7", "-n", "3",
                 "--out", str(proof)]) == 0
    gen = capsys.readouterr().out
    assert main(["model-verify", str(owner / "model.zkm"), str(proof), "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "verdict: ACCEPTED" in out
    for bad in ("0", "two"):
        with pytest.raises(SystemExit) as e:
            main(["model-verify", str(owner / "model.zkm"), str(proof), "--threads", bad])
        assert e.value.code == 2
    capsys.readouterr()
    ids = gen.split("generated ids: ")[1].splitlines()[0]
    assert f"proven generated ids: {ids}" in out
    data = bytearray(proof.read_bytes())
    data[len(data) // 2] ^= 4
    proof.write_bytes(bytes(data))
    assert main(["model-verify", str(owner / "model.zkm"), str(proof)]) == 1
    assert "REJECTED" in capsys.readouterr().out


def test_bad_inputs_are_usage_errors(owner, tmp_path, capsys):
    assert main(["model-verify", str(owner / "private.npz"), str(owner / "model.zkm")]) == 2
    assert main(["model-generate", "--model", str(tmp_path), "--ids", "1", "--out",
                 str(tmp_path / "x")]) == 2
    assert main(["model-generate", "--model", str(owner), "--ids", "1,99999", "--out",
                 str(tmp_path / "x")]) == 2
    assert main(["model-generate", "--model", str(owner), "--ids", "1", "-n", "0", "--out",
                 str(tmp_path / "x")]) == 2
    (tmp_path / "private.npz").write_bytes(b"not an npz")
    assert main(["model-generate", "--model", str(tmp_path), "--ids", "1", "--out",
                 str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err


def test_api_commit_prove_verify():
    model = small_random_model(4)
    pm, mc = api.commit(model)
    proof = api.prove(pm, [3, 4], max_new_tokens=2)
    verdict = api.verify(proof.to_bytes(), mc.to_bytes())
    assert verdict and len(verdict.generated) == 2 and verdict.tokens[:2] == (3, 4)
    assert verdict.tokens == tuple(ML.generate(pm, np.array([3, 4]), 2))
    pm2, mc2 = api.commit(small_random_model(5))
    assert not api.verify(proof, mc2)
