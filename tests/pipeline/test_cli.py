"""The zkfhe command line: demo, verify, exit codes."""

from __future__ import annotations

from pipeline.cli import EXIT_OK, EXIT_REJECTED, EXIT_USAGE, main


def test_demo_then_verify_then_tamper(tmp_path, capsys):
    out = tmp_path / "demo.proof"
    assert main(["demo", "--tokens", "3", "--d-model", "10", "--d-head", "4", "--out", str(out)]) == EXIT_OK
    assert "ACCEPTED" in capsys.readouterr().out
    assert main(["verify", str(out)]) == EXIT_OK
    data = bytearray(out.read_bytes())
    data[len(data) // 2] ^= 0x40
    bad = tmp_path / "bad.proof"
    bad.write_bytes(bytes(data))
    assert main(["verify", str(bad)]) == EXIT_REJECTED
    assert "REJECTED" in capsys.readouterr().out
    (tmp_path / "junk").write_bytes(b"hello")
    assert main(["verify", str(tmp_path / "junk")]) == EXIT_REJECTED


def test_usage_errors(tmp_path, capsys):
    assert main(["verify", str(tmp_path / "missing")]) == EXIT_USAGE
    assert main(["demo", "--tokens", "0"]) == EXIT_USAGE
    try:
        main(["no-such-command"])
    except SystemExit as e:
        assert e.code == EXIT_USAGE
    else:
        raise AssertionError("argparse should exit")
