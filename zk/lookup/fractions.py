"""Layered (GKR) sumcheck for a sum of fractions, in zero knowledge (Papini and Haböck,
"Improving logarithmic derivative lookups using GKR", 2023, section 3; commit-and-prove as in
Hyrax, with claims carried between layers as commitments).

Statement: for leaf vectors p, q of length 2^n (n >= 1, q nonzero) committed nowhere, the
binary tree whose layer k has

    p_k(x) = p_{k+1}(x, 0) q_{k+1}(x, 1) + p_{k+1}(x, 1) q_{k+1}(x, 0),
    q_k(x) = q_{k+1}(x, 0) q_{k+1}(x, 1)

(the child bit is the highest variable: a layer's two halves are the children, so each
layer is held as one (2, 2^k, 4) array [p_k; q_k] whose (4, 2^(k-1), 4) view is the
sumcheck's factor table, never copied) has root numerator 0 and a nonzero root denominator,
i.e. sum_i p[i] / q[i] = 0. This is the form the logarithmic-derivative lookup needs (the looked-up
side and the table side in one tree, the table's numerators negated).

Protocol. The prover commits the root's children (p(0), p(1), q(0), q(1)) and the inverses of
q(0), q(1); a proof of a sum of products shows p(0) q(1) + p(1) q(0) = 0 and proofs of product
q(b) q(b)^-1 = 1 (so the root
denominator q(0) q(1) is nonzero). A challenge mu gives committed claims on layer 1 at (mu).
For k = 1, ..., n-1, with claims C_p, C_q on layer k at r and a challenge lambda, one
zero-knowledge sumcheck (:mod:`zk.protocol.sumcheck`) proves

    sum_x eq(r, x) [(p0 q1 + p1 q0) + lambda q0 q1](x) = C_p + lambda C_q

over the committed end values p0, p1, q0, q1 (the even and odd children), closed with one
proof of the sum of products p0 q1 + q0 (p1 + lambda q1) (:func:`zk.protocol.sigma.product_sum`:
one commitment and one challenge for both); a challenge mu moves the claims to layer
k+1 at (rho, mu) homomorphically. The caller receives commitments to p~ and q~ at a point of
the leaves and must discharge them. Nothing is sent in the clear. Soundness error about
3 n^2 / r.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from gpu import poly as K
from zk.errors import ProverError
from zk.field import Fr
from zk.multilinear import P, num_vars
from zk.protocol import sigma
from zk.protocol import sumcheck as zs
from zk.protocol.context import Com, Context

__all__ = ["LeafClaims", "run", "layers", "MAX_DEPTH"]

L_SHAPE = b"fractions/depth"
L_ROOT = b"fractions/root"
L_LAMBDA = b"fractions/lambda"
L_MU = b"fractions/mu"

MAX_DEPTH = 40


@dataclass(frozen=True)
class LeafClaims:
    """p~(point) and q~(point) for the leaves, committed: the caller's to discharge."""

    point: tuple[int, ...]
    p: Com
    q: Com


def layers(pq: np.ndarray) -> list:
    """Layers of the tree by depth from the leaves ``pq`` ((2, 2^n, 4): p then q): index k
    holds the (2, 2^k, 4) array [p_k; q_k], k = 1..n."""
    out = [pq]
    while out[-1].shape[1] > 2:
        low = out[-1]
        up = np.empty((2, low.shape[1] // 2, 4), np.uint64)
        K.fraction_layer(Fr.desc, low[0], low[1], up[0], up[1])
        out.append(up)
    return [None, *reversed(out)]


def _move(mu: int, a: Com, b: Com) -> Com:
    return a + (b - a) * mu


def run(ctx: Context, n: int,
        leaves: Callable[[], np.ndarray] | None = None) -> LeafClaims:
    """Prove (prover: ``leaves()`` gives the (2, 2^n, 4) array of p then q) or check that the fraction sum of
    the leaves is 0 with nonzero denominators; return the committed leaf claims."""
    if not 1 <= n <= MAX_DEPTH:
        raise ValueError(f"fraction trees have depth 1..{MAX_DEPTH}, got {n}")
    ctx.t.absorb_scalars(L_SHAPE, [n])
    lay = None
    if ctx.proving:
        pq = leaves()
        if pq.shape != (2, 1 << n, 4) or pq.dtype != np.uint64:
            raise ProverError("fraction leaves of the wrong size")
        lay = layers(pq)
        del pq  # the leaves live on in lay only (freed when the last sumcheck folds them)
        root = Fr.to_ints(lay[1][0]) + Fr.to_ints(lay[1][1])
        if any(v == 0 for v in root[2:]):
            raise ProverError("a denominator is zero (beta hit a table entry; negligible)")
        vals = root + [pow(root[2], -1, P), pow(root[3], -1, P)]
    p0, p1, q0, q1, i0, i1 = ctx.commit(L_ROOT, 6, lambda: vals)
    num = sigma.product_sum(ctx, [(p0, q1), (p1, q0)], [1, 1])
    one0, one1 = sigma.products(ctx, [(q0, i0), (q1, i1)])
    ctx.equal(num, 0, "the fractions do not sum to zero")
    ctx.equal(one0, 1, "a root denominator is zero")
    ctx.equal(one1, 1, "a root denominator is zero")
    mu = ctx.challenge(L_MU)
    cp, cq = _move(mu, p0, p1), _move(mu, q0, q1)
    point: tuple[int, ...] = (mu,)
    for k in range(1, n):
        lam = ctx.challenge(L_LAMBDA)
        terms = [(1, (0, 3)), (1, (1, 2)), (lam, (2, 3))]

        def tables(k=k) -> np.ndarray:
            pq = lay[k + 1]
            lay[k + 1] = None  # each layer is read once, top down: free it as it goes
            return pq.reshape(4, pq.shape[1] // 2, 4)  # [p(., 0), p(., 1), q(., 0), q(., 1)]

        end = zs.run(ctx, cp + cq * lam, k, 2, hidden=[0, 1, 2, 3], eq_point=point,
                     terms=terms, tables=tables if ctx.proving else None, num_factors=4)
        e0, e1, f0, f1 = end.values
        end.close(sigma.product_sum(ctx, [(e0, f1), (f0, e1 + f1 * lam)], [1, 1]))
        mu = ctx.challenge(L_MU)
        cp, cq = _move(mu, e0, e1), _move(mu, f0, f1)
        point = (*end.point, mu)
    return LeafClaims(point, cp, cq)


def depth(size: int) -> int:
    """n for a tree of ``size`` (a power of two, at least 2) leaves."""
    n = num_vars(size)
    if n < 1:
        raise ValueError("a fraction tree needs at least 2 leaves")
    return n
