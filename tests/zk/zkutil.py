"""Helpers for protocol tests: run a protocol as prover and verifier, and tamper with proofs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace

import numpy as np

from zk import curve as ZC
from zk.field import Fr
from zk.protocol import context as C
from zk.protocol.context import Context, Stream
from zk.transcript import Transcript

PROTO = b"test/protocol"
OTHER_POINT = ZC.compress_list(ZC.generator())[0]


def prove(protocol: Callable[[Context], object], rng=None, name: bytes = PROTO) -> Stream:
    ctx = Context.prover(Transcript(name), rng)
    protocol(ctx)
    ctx.finish()
    return ctx.stream()


def verify(protocol: Callable[[Context], object], stream: Stream, name: bytes = PROTO) -> None:
    ctx = Context.verifier(Transcript(name), stream)
    protocol(ctx)
    ctx.finish()


def roundtrip(protocol: Callable[[Context], object], rng=None) -> Stream:
    stream = prove(protocol, rng)
    verify(protocol, stream)
    return stream


def tampered(stream: Stream, max_points: int | None = None, seed: int = 0
             ) -> Iterator[tuple[str, Stream]]:
    """Every scalar + 1, then points (all, or a sample of max_points) replaced by another valid
    point, then the two element lists shortened and lengthened."""
    P = Fr.modulus
    for i, x in enumerate(stream.scalars):
        sc = list(stream.scalars)
        sc[i] = (x + 1) % P
        yield f"scalar {i}", replace(stream, scalars=tuple(sc))
    idx = list(range(len(stream.points)))
    if max_points is not None and len(idx) > max_points:
        idx = sorted(np.random.default_rng(seed).choice(idx, max_points, replace=False).tolist())
    for i in idx:
        pts = list(stream.points)
        pts[i] = OTHER_POINT if pts[i] != OTHER_POINT else pts[(i + 1) % len(pts)]
        if pts[i] == stream.points[i]:
            continue
        yield f"point {i}", replace(stream, points=tuple(pts))
    if stream.scalars:
        yield "scalar dropped", replace(stream, scalars=stream.scalars[:-1])
    yield "scalar added", replace(stream, scalars=stream.scalars + (1,))
    if stream.points:
        yield "point dropped", replace(stream, points=stream.points[:-1])
    yield "point added", replace(stream, points=stream.points + (OTHER_POINT,))


@contextmanager
def cheating():
    """A prover that does not refuse false statements: it computes every message by the
    protocol's rules from whatever witness it holds and emits a proof (soundness tests)."""
    orig = C.refuse
    C.refuse = lambda what: None
    try:
        yield
    finally:
        C.refuse = orig
