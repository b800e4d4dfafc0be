"""gpu.heap.reuse_freed: nests, restores glibc's defaults on leaving, and changes no result."""

from __future__ import annotations

import numpy as np

from gpu import heap


def test_reuse_freed_nests_restores_and_changes_nothing():
    rng = np.random.default_rng(0)
    a = rng.integers(-2**40, 2**40, 1 << 23)  # 64 MB: above glibc's mmap threshold
    want = int((a * 3).sum())
    with heap.reuse_freed():
        with heap.reuse_freed():
            assert heap._depth == 2
            b = a * 3
            got = int(b.sum())
            del b
        assert heap._depth == 1
        c = np.empty_like(a)
        np.multiply(a, 3, out=c)
        assert int(c.sum()) == want
    assert heap._depth == 0
    assert got == want
    try:
        with heap.reuse_freed():
            raise KeyError("inside")
    except KeyError:
        pass
    assert heap._depth == 0
