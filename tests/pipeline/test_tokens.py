"""API token files, the serve command's refusals before it starts anything, and the client's
URL rules (no Ray, no server)."""

from __future__ import annotations

import json
import os
import stat

import pytest

from pipeline import tokens as T
from pipeline.cli import EXIT_OK, EXIT_USAGE, main


def test_add_list_revoke_and_match(tmp_path, capsys):
    path = tmp_path / "tokens.json"
    assert main(["token", "add", "--tokens", str(path), "--name", "alice",
                 "--max-active", "2"]) == EXIT_OK
    alice = capsys.readouterr().out.strip().splitlines()[-1]
    bob = T.add(path, "bob")
    assert alice.startswith("zkfhe_") and len(alice) >= 40 and alice != bob
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    text = path.read_text()
    assert alice not in text and bob not in text  # only digests are stored
    table = T.TokenTable(T.load(path))
    assert table.match(alice).name == "alice" and table.match(alice).max_active == 2
    assert table.match(bob).name == "bob" and table.match(bob).max_active == T.DEFAULT_MAX_ACTIVE
    assert table.match(alice + "x") is None and table.match("") is None
    assert main(["token", "list", "--tokens", str(path)]) == EXIT_OK
    listed = capsys.readouterr().out
    assert "alice" in listed and "bob" in listed and alice not in listed
    assert main(["token", "revoke", "--tokens", str(path), "--name", "alice"]) == EXIT_OK
    assert T.TokenTable(T.load(path)).match(alice) is None
    assert main(["token", "add", "--tokens", str(path), "--name", "bob"]) == EXIT_USAGE
    assert "already" in capsys.readouterr().err
    assert main(["token", "add", "--tokens", str(path)]) == EXIT_USAGE


H = "ab" * 32
BAD_FILES = {
    "not json": (b"{tokens: 1", "not JSON"),
    "binary": (b"\xff\xfe", "not JSON"),
    "other format": (json.dumps({"format": "x/1", "tokens": []}).encode(), "format"),
    "extra field": (json.dumps({"format": T.FORMAT, "tokens": [], "x": 1}).encode(), "exactly"),
    "a token, not its hash": (json.dumps({"format": T.FORMAT, "tokens": [
        {"name": "a", "sha256": "zkfhe_secret"}]}).encode(), "never the token itself"),
    "bad name": (json.dumps({"format": T.FORMAT, "tokens": [
        {"name": "a b", "sha256": H}]}).encode(), "name"),
    "bad limit": (json.dumps({"format": T.FORMAT, "tokens": [
        {"name": "a", "sha256": H, "max_active": 0}]}).encode(), "max_active"),
    "duplicate": (json.dumps({"format": T.FORMAT, "tokens": [
        {"name": "a", "sha256": H}, {"name": "b", "sha256": H}]}).encode(), "duplicate"),
    "too large": (b" " * (T.MAX_FILE + 1), "larger"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_token_files_get_clear_errors(tmp_path, capsys, case):
    data, words = BAD_FILES[case]
    path = tmp_path / "tokens.json"
    path.write_bytes(data)
    with pytest.raises(T.TokenFileError, match=words):
        T.load(path)
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.private").write_bytes(b"x")
    # refused before Ray or anything else starts: exit 2, the reason, no traceback
    assert main(["serve", "--model", str(model), "--simulate", "--tokens", str(path)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err


def test_serve_refuses_an_exposed_host_without_tokens_or_tls(tmp_path, capsys):
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.private").write_bytes(b"x")
    tokens = tmp_path / "tokens.json"
    T.add(tokens, "a")
    base = ["serve", "--model", str(model), "--simulate", "--host", "0.0.0.0"]
    assert main(base) == EXIT_USAGE
    assert "--tokens" in capsys.readouterr().err
    assert main(base + ["--tokens", str(tokens)]) == EXIT_USAGE
    assert "--tls-cert" in capsys.readouterr().err
    assert main(base + ["--tokens", str(tokens), "--tls-cert", str(tokens)]) == EXIT_USAGE
    assert "both" in capsys.readouterr().err
    assert main(base + ["--tokens", str(tokens), "--tls-cert", str(tokens),
                        "--tls-key", str(tokens)]) == EXIT_USAGE
    assert "cannot use" in capsys.readouterr().err


def test_client_url_rules(tmp_path, capsys):
    pytest.importorskip("httpx")
    from pipeline import remote

    for url in ("http://127.0.0.1:8000", "http://localhost:1/", "http://[::1]:8000",
                "https://example.org", "http://10.0.0.1:80"):
        insecure = url.startswith("http://10.")
        assert remote.check_url(url, insecure) == url.rstrip("/")
    for url, words in (("http://10.0.0.1:80", "refusing plain HTTP"),
                       ("http://example.org", "refusing plain HTTP"),
                       ("ftp://127.0.0.1", "not a server URL"), ("127.0.0.1:80", "not a")):
        with pytest.raises(ValueError, match=words):
            remote.check_url(url)
    assert main(["client", "--server", "http://example.org:8000"]) == EXIT_USAGE
    assert "refusing plain HTTP" in capsys.readouterr().err
    bad_ca = tmp_path / "ca.pem"
    bad_ca.write_text("not a certificate")
    with pytest.raises(ValueError, match="CA certificate"):
        remote.ServiceClient("https://127.0.0.1:1", ca=bad_ca)
    bad = tmp_path / "model.params"
    bad.write_bytes(b"ZKFH not a params file")
    for option in ("--params", "--commitment"):
        assert main(["client", "--server", "http://127.0.0.1:1", option, str(bad)]) == EXIT_USAGE
        err = capsys.readouterr().err
        assert err.startswith("error: ") and "Traceback" not in err
    token = tmp_path / "token"
    token.write_text("two words")
    assert main(["client", "--server", "http://127.0.0.1:1", "--token-file",
                 str(token)]) == EXIT_USAGE
    assert "one token" in capsys.readouterr().err
