"""The service's session store: transitions, write-once files, restarts, garbage collection."""

from __future__ import annotations

import time

import pytest

from pipeline import store as st


def _upload(store: st.SessionStore, data: bytes):
    p = store.upload_path()
    p.write_bytes(data)
    return p


def test_session_life_and_restart(tmp_path):
    store = st.SessionStore(tmp_path, ttl_s=60)
    rec = store.create(b"d" * 32, 4, _upload(store, b"request bytes"))
    assert rec.state == st.EVALUATING and rec.total == 4 and len(rec.id) == 32
    assert store.find(b"d" * 32).id == rec.id
    with pytest.raises(st.StoreError):  # one session per request
        store.create(b"d" * 32, 4, _upload(store, b"request bytes"))
    with pytest.raises(st.StoreError, match="still being evaluated"):
        store.put_opening(rec.id, b"opening", 3)
    store.progress(rec.id, 2, 4)
    assert store.get(rec.id).done == 2
    assert [r.id for r in store.in_flight()] == [rec.id]
    store.put_response(rec.id, b"response bytes", 1.5)
    with pytest.raises(st.StoreError):  # written once
        store.put_response(rec.id, b"other bytes", 1.0)
    store.close()

    store = st.SessionStore(tmp_path, ttl_s=60)  # a restarted process
    rec2 = store.get(rec.id)
    assert rec2.state == st.EVALUATED and rec2.evaluate_s == 1.5
    assert store.read(rec.id, "response") == b"response bytes"
    assert store.in_flight() == []
    store.put_opening(rec.id, b"opening", 3)
    assert store.get(rec.id).state == st.PROVING and store.get(rec.id).total == 3
    with pytest.raises(st.StoreError, match="opened already"):
        store.put_opening(rec.id, b"opening", 3)
    store.put_bundle(rec.id, b"bundle bytes", 0.5)
    assert store.read(rec.id, "bundle") == b"bundle bytes"
    with pytest.raises(FileNotFoundError):  # the keys are not kept after the bundle
        store.read(rec.id, "request")
    assert st.refusal(store.get(rec.id), "open").startswith("the session is proven already")
    assert st.refusal(None, "open") == "unknown session"
    assert store.count() == {st.PROVEN: 1}


def test_gc_expires_idle_sessions_not_in_flight(tmp_path):
    store = st.SessionStore(tmp_path, ttl_s=10)
    a = store.create(b"a" * 32, 2, _upload(store, b"ra"))
    b = store.create(b"b" * 32, 2, _upload(store, b"rb"))
    store.put_response(a.id, b"resp", 0.1)
    now = time.time()
    assert store.gc(now) == []
    assert store.gc(now + 11) == [a.id]  # b is in flight: never collected
    rec = store.get(a.id)
    assert rec.state == st.EXPIRED and "expired" in st.refusal(rec, "open")
    assert not (tmp_path / "sessions" / a.id).exists()
    assert store.get(b.id).state == st.EVALUATING
    store.fail(b.id, "evaluation refused: bad ciphertext")
    assert store.get(b.id).error == "evaluation refused: bad ciphertext"
    assert store.gc(now + 12) == [b.id]
    store.gc(now + 12 + 101)  # tombstones go after 10 TTLs
    assert store.get(a.id) is None and store.get(b.id) is None


def test_bad_ids_and_names(tmp_path):
    store = st.SessionStore(tmp_path)
    with pytest.raises(ValueError):
        store.read("../../etc", "request")
    with pytest.raises(ValueError):
        store.read("0" * 32, "sessions.db")
    with pytest.raises(ValueError):
        st.SessionStore(tmp_path, ttl_s=0)
