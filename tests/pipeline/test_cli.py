"""The zkfhe command line: demo, verify, exit codes."""

from __future__ import annotations

from pipeline.cli import EXIT_OK, EXIT_REJECTED, EXIT_USAGE, main


def test_demo_then_verify_then_tamper(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["demo", "--simulate", "--tokens", "3", "--d-model", "8", "--d-head", "4",
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
