"""Session-wide test settings.

One fresh-clone run of the whole suite (2026-12-02, after 521 passed and the summary line) died
with SIGSEGV during interpreter finalization, after pytest had already disabled its
faulthandler (no Python traceback): a native library's destructor (concrete's compiled
circuits, Ray's worker threads, torch) at exit, not a test. The run's result was already
decided, but the shell saw 139. So the process ends with pytest's own exit status once
everything is reported, without running native finalizers. Set ZKFHE_TEST_FINALIZE=1 to keep
the normal interpreter shutdown (to chase that crash).
"""

from __future__ import annotations

import os
import sys

import pytest

_STATUS: list[int] = []


def pytest_sessionfinish(session, exitstatus) -> None:
    _STATUS.append(int(exitstatus))


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config) -> None:
    if not _STATUS or os.environ.get("ZKFHE_TEST_FINALIZE") == "1":
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(_STATUS[-1])
