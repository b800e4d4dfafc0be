"""The client's retry rules, on a scripted transport (no server): what is retried, what is not,
the deadline, and an upload whose answer was lost."""

from __future__ import annotations

import time

import pytest

httpx = pytest.importorskip("httpx")

from pipeline import remote  # noqa: E402


def client(script, deadline_s=30.0):
    """A ServiceClient whose calls are answered, in turn, by ``script``'s entries: a response
    (status, json or text, headers) or an exception to raise."""
    calls = []

    def handler(request: httpx.Request):
        calls.append((request.method, request.url.path, request.url.query.decode()))
        item = script.pop(0)
        if isinstance(item, Exception):
            raise item
        status, body, headers = (item + ({},))[:3]
        if isinstance(body, (dict, list)):
            return httpx.Response(status, json=body, headers=headers)
        return httpx.Response(status, text=body, headers=headers)

    sc = remote.ServiceClient("http://127.0.0.1:9", deadline_s=deadline_s,
                              on_retry=lambda m: calls.append(("retry", m, "")))
    sc.BACKOFF_BASE_S, sc.BACKOFF_CAP_S = 0.01, 0.05
    sc.http = httpx.Client(base_url=sc.url + remote.API, transport=httpx.MockTransport(handler))
    return sc, calls


def test_transient_failures_are_retried():
    sc, calls = client([httpx.ConnectError("refused"), (503, {"error": "busy"}, {"Retry-After": "0"}),
                        (502, "Bad Gateway"), (404, "Path '/v1/info' not found."),
                        (429, {"error": "limit"}), (500, "Internal Server Error"),
                        (200, {"api": 1})])
    assert sc.info() == {"api": 1}
    assert sc.retries == 6 and sum(c[0] == "retry" for c in calls) == 6


@pytest.mark.parametrize("status, body", [(401, {"error": "needs an API token"}),
                                          (403, {"error": "another API token"}),
                                          (404, {"error": "unknown session"}),
                                          (400, {"error": "request refused: magic"}),
                                          (404, {"detail": "Not Found"}), (410, {"error": "gone"})])
def test_refusals_are_not_retried(status, body):
    sc, calls = client([(status, body)])
    with pytest.raises(remote.ServiceError) as e:
        sc.status("a" * 32)
    assert e.value.status == status and sc.retries == 0
    assert e.value.message == next(iter(body.values()))


def test_deadline_ends_the_retries():
    sc, _ = client([(503, "down")] * 1000, deadline_s=0.3)
    t0 = time.monotonic()
    with pytest.raises(remote.ServerUnavailable, match="deadline"):
        sc.info()
    assert time.monotonic() - t0 < 2


def test_an_upload_whose_answer_was_lost_is_not_sent_again():
    sid = "b" * 32
    sc, calls = client([httpx.ReadError("connection reset"),
                        (200, {"session": sid, "state": "evaluating", "existing": True})])
    assert sc.create(b"request bytes")["session"] == sid
    methods = [c[:2] for c in calls if c[0] != "retry"]
    assert methods == [("POST", "/v1/sessions"), ("GET", "/v1/sessions")]
    assert calls[-1][2].startswith("request=")
    # never answered and never stored: uploaded again
    sc, calls = client([httpx.ReadError("reset"), (404, {"error": "no session for this request"}),
                        (202, {"session": sid, "state": "evaluating"})])
    assert sc.create(b"request bytes")["session"] == sid
    assert [c[0] for c in calls if c[0] != "retry"] == ["POST", "GET", "POST"]
