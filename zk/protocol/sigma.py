"""Sigma protocols over Pedersen commitments in BN254 G1, made non-interactive by Fiat-Shamir.

Generators: U (values), H (blinds), G_0, G_1, ... (vectors), all from hash-to-curve (no known
discrete-log relation; see :mod:`zk.commit.generators`). A scalar commitment is C = v U + r H,
a vector commitment C = <w, G> + r H. Each protocol is honest-verifier zero knowledge (its
simulator, below, outputs accepting transcripts with the same distribution) and 2-special sound
(two accepting transcripts with one first message and two challenges give the witness: the
``extract_*`` functions), so its Fiat-Shamir form is a zero-knowledge proof of knowledge in the
random-oracle model. Sizes (G: points, F: field elements), as in Spartan's ``nizk``:

==========================  ================================================  ==============
protocol                    statement                                         proof
==========================  ================================================  ==============
opening                     knows (v, r) with C = v U + r H                   1G + 2F
zero / equality             C = r H (C commits 0; C1 - C2 for equality)       1G + 1F
product                     C_z commits x y for the openings of C_x, C_y       3G + 5F
dot product (linear)        C_y commits <a, w> for C_w's w, public a           2G + (n + 2)F
dot product (logarithmic)   same, Bulletproofs folding                        (2 log n + 1)G + 2F
==========================  ================================================  ==============

Each protocol is written once for both roles against a :class:`~zk.protocol.context.Context`:
the prover's commitments are openings (v, r), the verifier's are symbolic points, and the
verifier's checks are group equations batched into the context's final MSM. The checks, the
simulators and the extractors are separate functions so that tests can exercise the interactive
protocol with chosen challenges.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numba as nb
import numpy as np

from gpu import msm as M
from zk import curve as ZC
from zk.commit.generators import generators
from zk.commit.pedersen import commit_scalars
from zk.errors import ProverError, VerificationError
from zk.field import Fr
from zk.protocol import context as C
from zk.protocol.context import H_ID, U_ID, Com, Context, P, Sym, VecCom, thread_setting

__all__ = [
    "opening", "zero", "equality", "products", "product", "product_sum", "dot_product",
    "dot_product_log", "product_sum_check", "simulate_product_sum", "extract_product_sum",
    "opening_check", "zero_check", "product_check", "dot_product_check",
    "simulate_opening", "simulate_zero", "simulate_product", "simulate_dot_product",
    "extract_opening", "extract_zero", "extract_product", "extract_dot_product",
]

L_OPEN = b"sigma/opening"
L_ZERO = b"sigma/zero"
L_PRODUCT = b"sigma/product"
L_DOT = b"sigma/dot"
L_IPA = b"sigma/ipa"
L_IPA_X = b"sigma/ipa/x"
L_IPA_U = b"sigma/ipa/u"
L_IPA_E = b"sigma/ipa/e"
L_CHALLENGE = b"sigma/challenge"

_U, _H = Sym.point(U_ID), Sym.point(H_ID)


def _inv(x: int) -> int:
    return pow(x % P, -1, P)


def _ids_sym(ids: Sequence[int]) -> list[Sym]:
    return [Sym.point(i) for i in ids]


def _uh(ctx: Context, pairs: Sequence[tuple[int, int]]) -> np.ndarray:
    """Affine points a U + b H for (a, b) pairs (prover's first messages), one MSM call."""
    return commit_scalars(ctx.key1, [a % P for a, _ in pairs], [b % P for _, b in pairs])


# ---------------------------------------------------------------- opening


def opening_check(C: Sym, A: Sym, c: int, z: Sequence[int]) -> list[Sym]:
    """A + c C = z1 U + z2 H."""
    return [A + C * c - _U * z[0] - _H * z[1]]


def opening(ctx: Context, C: Com) -> None:
    """Proof of knowledge of the opening of C."""
    if ctx.proving:
        d, s = ctx.random(2)
        ctx.commit_points(L_OPEN, lambda: _uh(ctx, [(d, s)]), 1)
        c = ctx.challenge(L_CHALLENGE)
        ctx.scalars(L_OPEN, 2, lambda: [d + c * C.v, s + c * C.r])
        return
    (a,) = ctx.commit_points(L_OPEN, None, 1)
    c = ctx.challenge(L_CHALLENGE)
    z = ctx.scalars(L_OPEN, 2, None)
    for eq in opening_check(C.s, Sym.point(a), c, z):
        ctx.check(eq)


def simulate_opening(C: Sym, c: int, z: Sequence[int]) -> list[Sym]:
    """The first message that makes (c, z) accepting: A = z1 U + z2 H - c C."""
    return [_U * z[0] + _H * z[1] - C * c]


def extract_opening(c1: int, z1: Sequence[int], c2: int, z2: Sequence[int]) -> tuple[int, int]:
    """(v, r) from two accepting transcripts with one first message."""
    dc = _inv(c1 - c2)
    return (z1[0] - z2[0]) * dc % P, (z1[1] - z2[1]) * dc % P


# ---------------------------------------------------------------- zero and equality


def zero_check(D: Sym, A: Sym, c: int, z: Sequence[int]) -> list[Sym]:
    """A + c D = z H."""
    return [A + D * c - _H * z[0]]


def zero(ctx: Context, D: Com) -> None:
    """Proof that D commits 0, i.e. D = r H (Schnorr on H). The prover refuses otherwise."""
    if ctx.proving:
        if D.v % P:
            C.refuse("a commitment that should hold 0 does not")
        (s,) = ctx.random(1)
        ctx.commit_points(L_ZERO, lambda: _uh(ctx, [(0, s)]), 1)
        c = ctx.challenge(L_CHALLENGE)
        ctx.scalars(L_ZERO, 1, lambda: [s + c * D.r])
        return
    (a,) = ctx.commit_points(L_ZERO, None, 1)
    c = ctx.challenge(L_CHALLENGE)
    z = ctx.scalars(L_ZERO, 1, None)
    for eq in zero_check(D.s, Sym.point(a), c, z):
        ctx.check(eq)


def equality(ctx: Context, C1: Com, C2: Com) -> None:
    """Proof that C1 and C2 commit the same value (a zero proof of C1 - C2)."""
    zero(ctx, C1 - C2)


def simulate_zero(D: Sym, c: int, z: Sequence[int]) -> list[Sym]:
    return [_H * z[0] - D * c]


def extract_zero(c1: int, z1: Sequence[int], c2: int, z2: Sequence[int]) -> int:
    """r with D = r H."""
    return (z1[0] - z2[0]) * _inv(c1 - c2) % P


# ---------------------------------------------------------------- product


def product_check(Cx: Sym, Cy: Sym, Cz: Sym, first: Sequence[Sym], c: int,
                  z: Sequence[int]) -> list[Sym]:
    """alpha + c C_x = z1 U + z2 H; beta + c C_y = z3 U + z4 H; delta + c C_z = z3 C_x + z5 H."""
    alpha, beta, delta = first
    return [alpha + Cx * c - _U * z[0] - _H * z[1],
            beta + Cy * c - _U * z[2] - _H * z[3],
            delta + Cz * c - Cx * z[2] - _H * z[4]]


def products(ctx: Context, pairs: Sequence[tuple[Com, Com]]) -> list[Com]:
    """Commit z_k = x_k y_k for each pair and prove every product (one shared challenge).

    Stream: the C_z (k points), the first messages (3k points), the responses (5k scalars)."""
    k = len(pairs)
    if k == 0:
        return []
    if ctx.proving:
        zs = ctx.commit(L_PRODUCT, k, lambda: [x.v * y.v for x, y in pairs])
        nonces = [ctx.random(5) for _ in range(k)]
        msgs = []
        for (x, y), (b1, b2, b3, b4, b5) in zip(pairs, nonces):
            msgs += [(b1, b2), (b3, b4), (b3 * x.v, b3 * x.r + b5)]
        ctx.commit_points(L_PRODUCT, lambda: _uh(ctx, msgs), 3 * k)
        c = ctx.challenge(L_CHALLENGE)

        def responses() -> list[int]:
            out = []
            for (x, y), z, (b1, b2, b3, b4, b5) in zip(pairs, zs, nonces):
                out += [b1 + c * x.v, b2 + c * x.r, b3 + c * y.v, b4 + c * y.r,
                        b5 + c * (z.r - x.r * y.v)]
            return out

        ctx.scalars(L_PRODUCT, 5 * k, responses)
        return zs
    zs = ctx.commit(L_PRODUCT, k, None)
    ids = ctx.commit_points(L_PRODUCT, None, 3 * k)
    c = ctx.challenge(L_CHALLENGE)
    z = ctx.scalars(L_PRODUCT, 5 * k, None)
    for i, ((x, y), zc) in enumerate(zip(pairs, zs)):
        for eq in product_check(x.s, y.s, zc.s, _ids_sym(ids[3 * i:3 * i + 3]), c,
                                z[5 * i:5 * i + 5]):
            ctx.check(eq)
    return zs


def product_sum(ctx: Context, pairs: Sequence[tuple[Com, Com]], coefs: Sequence[int]) -> Com:
    """Commit z = sum_k coefs[k] x_k y_k and prove it in one sigma protocol (K pairs: 2K + 2
    points and 4K + 1 scalars, against 4K points and 5K scalars for K proofs of product and
    their sum). The relation is C_z = sum_k c_k y_k C_(x_k) + tau H; with openings of every
    x_k and y_k proven alongside, special soundness gives z = sum_k c_k x_k y_k.

    Stream: C_z; A_k (x_k nonces), D_k (y_k nonces), B; responses (zx_k, wx_k, zy_k, wy_k) per
    pair, then z_tau."""
    k = len(pairs)
    if k == 0 or len(coefs) != k:
        raise ValueError("a product sum needs one coefficient per pair, at least one pair")
    cs = [int(c) % P for c in coefs]
    if ctx.proving:
        (z,) = ctx.commit(L_PRODUCT, 1, lambda: [sum(c * x.v * y.v for c, (x, y) in
                                                     zip(cs, pairs)) % P])
        nonces = [ctx.random(4) for _ in range(k)]
        (bz,) = ctx.random(1)
        msgs = []
        for a, al, b, be in nonces:
            msgs += [(a, al), (b, be)]
        # B = sum_k c_k b_k C_(x_k) + bz H
        msgs.append((sum(c * n[2] * x.v for c, n, (x, _) in zip(cs, nonces, pairs)),
                     sum(c * n[2] * x.r for c, n, (x, _) in zip(cs, nonces, pairs)) + bz))
        ctx.commit_points(L_PRODUCT, lambda: _uh(ctx, msgs), 2 * k + 1)
        e = ctx.challenge(L_CHALLENGE)
        tau = (z.r - sum(c * y.v * x.r for c, (x, y) in zip(cs, pairs))) % P

        def responses() -> list[int]:
            out = []
            for (x, y), (a, al, b, be) in zip(pairs, nonces):
                out += [a + e * x.v, al + e * x.r, b + e * y.v, be + e * y.r]
            return out + [bz + e * tau]

        ctx.scalars(L_PRODUCT, 4 * k + 1, responses)
        return z
    (z,) = ctx.commit(L_PRODUCT, 1, None)
    ids = ctx.commit_points(L_PRODUCT, None, 2 * k + 1)
    e = ctx.challenge(L_CHALLENGE)
    resp = ctx.scalars(L_PRODUCT, 4 * k + 1, None)
    for eq in product_sum_check([x.s for x, _ in pairs], [y.s for _, y in pairs], z.s, cs,
                                [Sym.point(i) for i in ids], e, resp):
        ctx.check(eq)
    return z


def product_sum_check(Cx: Sequence[Sym], Cy: Sequence[Sym], Cz: Sym, coefs: Sequence[int],
                      first: Sequence[Sym], e: int, z: Sequence[int]) -> list[Sym]:
    """A_k + e C_(x_k) = zx_k U + wx_k H; D_k + e C_(y_k) = zy_k U + wy_k H;
    B + e C_z = sum_k c_k zy_k C_(x_k) + z_tau H."""
    out = []
    last = first[-1] + Cz * e - _H * z[-1]
    for k, (cx, cy, c) in enumerate(zip(Cx, Cy, coefs)):
        zx, wx, zy, wy = z[4 * k:4 * k + 4]
        out.append(first[2 * k] + cx * e - _U * zx - _H * wx)
        out.append(first[2 * k + 1] + cy * e - _U * zy - _H * wy)
        last = last - cx * (c * zy % P)
    return out + [last]


def simulate_product_sum(Cx: Sequence[Sym], Cy: Sequence[Sym], Cz: Sym, coefs: Sequence[int],
                         e: int, z: Sequence[int]) -> list[Sym]:
    """First messages that make (e, z) accepting (honest-verifier zero knowledge)."""
    out = []
    last = Cz * (-e) + _H * z[-1]
    for k, (cx, cy, c) in enumerate(zip(Cx, Cy, coefs)):
        zx, wx, zy, wy = z[4 * k:4 * k + 4]
        out += [_U * zx + _H * wx - cx * e, _U * zy + _H * wy - cy * e]
        last = last + cx * (c * zy % P)
    return out + [last]


def extract_product_sum(e1: int, z1: Sequence[int], e2: int, z2: Sequence[int]
                        ) -> tuple[list[tuple[int, int, int, int]], int]:
    """From two accepting transcripts: the openings (x_k, r_k, y_k, s_k) and tau with
    C_z = sum_k c_k y_k C_(x_k) + tau H, i.e. z = sum_k c_k x_k y_k."""
    d = _inv(e1 - e2)
    w = [(a - b) * d % P for a, b in zip(z1, z2)]
    return [tuple(w[4 * k:4 * k + 4]) for k in range(len(w) // 4)], w[-1]


def product(ctx: Context, x: Com, y: Com) -> Com:
    """A commitment to x y with its proof of product."""
    return products(ctx, [(x, y)])[0]


def simulate_product(Cx: Sym, Cy: Sym, Cz: Sym, c: int, z: Sequence[int]) -> list[Sym]:
    return [_U * z[0] + _H * z[1] - Cx * c, _U * z[2] + _H * z[3] - Cy * c,
            Cx * z[2] + _H * z[4] - Cz * c]


def extract_product(c1: int, z1: Sequence[int], c2: int, z2: Sequence[int]
                    ) -> tuple[int, int, int, int, int]:
    """(x, r_x, y, r_y, r_z) with C_z = x y U + r_z H."""
    dc = _inv(c1 - c2)
    x, rx, y, ry, t = ((a - b) * dc % P for a, b in zip(z1, z2))
    return x, rx, y, ry, (t + rx * y) % P


# ---------------------------------------------------------------- dot product (linear)


def dot_product_check(Cw: Sym, Cy: Sym, gens: Sequence[int], a: Sequence[int],
                      first: Sequence[Sym], c: int, z: Sequence[int]) -> list[Sym]:
    """c C_w + delta = <z, G> + z_delta H; c C_y + beta = <a, z> U + z_beta H."""
    n = len(a)
    zv, zd, zb = z[:n], z[n], z[n + 1]
    az = sum(ai * zi for ai, zi in zip(a, zv)) % P
    return [Cw * c + first[0] - Sym.combo(gens, zv) - _H * zd,
            Cy * c + first[1] - _U * az - _H * zb]


def dot_product(ctx: Context, label: bytes, n: int, w: VecCom, a: Sequence[int],
                target: Com) -> None:
    """Proof that ``target`` commits <a, w> for the vector committed in ``w`` under the first n
    generators of the set ``label`` (linear size: n + 2 scalars)."""
    a = [int(x) % P for x in a]
    if len(a) != n:
        raise ValueError("public vector of the wrong length")
    G = generators(label, n)
    if ctx.proving:
        wv = Fr.to_ints(w.w)
        if sum(x * y for x, y in zip(a, wv)) % P != target.v:
            C.refuse("the committed dot product is wrong")
        d = ctx.random(n)
        rd, rb = ctx.random(2)
        ad = sum(x * y for x, y in zip(a, d)) % P

        def first() -> np.ndarray:
            scal = np.zeros((2, n + 2, 4), dtype=np.uint64)
            scal[0, :n] = Fr.from_ints(d)
            scal[0, n + 1] = Fr.from_ints([rd])
            scal[1, n] = Fr.from_ints([ad])
            scal[1, n + 1] = Fr.from_ints([rb])
            return ZC.to_affine(M.msm_mont(np.concatenate([G, ctx.key1.U, ctx.key1.H]), scal))

        ctx.commit_points(L_DOT, first, 2)
        c = ctx.challenge(L_CHALLENGE)
        ctx.scalars(L_DOT, n + 2, lambda: [c * x + y for x, y in zip(wv, d)]
                    + [c * w.r + rd, c * target.r + rb])
        return
    ids = ctx.commit_points(L_DOT, None, 2)
    c = ctx.challenge(L_CHALLENGE)
    z = ctx.scalars(L_DOT, n + 2, None)
    for eq in dot_product_check(w.s, target.s, ctx.generator_ids(label, n), a, _ids_sym(ids),
                                c, z):
        ctx.check(eq)


def simulate_dot_product(Cw: Sym, Cy: Sym, gens: Sequence[int], a: Sequence[int], c: int,
                         z: Sequence[int]) -> list[Sym]:
    n = len(a)
    az = sum(ai * zi for ai, zi in zip(a, z[:n])) % P
    return [Sym.combo(gens, z[:n]) + _H * z[n] - Cw * c, _U * az + _H * z[n + 1] - Cy * c]


def extract_dot_product(c1: int, z1: Sequence[int], c2: int, z2: Sequence[int]
                        ) -> tuple[list[int], int, int]:
    """(w, r_w, r_y) from two accepting transcripts; C_y then commits <a, w> with blind r_y."""
    dc = _inv(c1 - c2)
    d = [(x - y) * dc % P for x, y in zip(z1, z2)]
    return d[:-2], d[-2], d[-1]


# ---------------------------------------------------------------- dot product (logarithmic)


def fold_coefficients(us: Sequence[int], uis: Sequence[int]) -> list[int]:
    """coef(t) = prod_j (u_j if bit (b-1-j) of t else u_j^-1), t < 2^b: the weight of G_t (and
    of a_t) in the fully folded generator (and public vector)."""
    b = len(us)
    coef = [1]
    for k in range(b):  # bit k of t is the hi/lo bit of round j = b-1-k
        j = b - 1 - k
        coef = [c * uis[j] % P for c in coef] + [c * us[j] % P for c in coef]
    return coef


def dot_product_log(ctx: Context, label: bytes, n: int, w: VecCom, a: Sequence[int] | np.ndarray,
                    target: Com, *, a_final=None) -> None:
    """Proof that ``target`` commits <a, w> for the vector committed in ``w`` under the first n
    (a power of two) generators of the set ``label``: the hiding Bulletproofs inner-product
    argument of Hyrax (appendix A) with the value carried by U.

    With x a challenge, P = C_w + x C_y = <w, G> + x <w, a> U + rho H. Round j (b = log n
    rounds) sends L_j = <w_lo, G_hi> + x <w_lo, a_hi> U + l_j H and R_j = <w_hi, G_lo> +
    x <w_hi, a_lo> U + r_j H, gets u_j and folds w <- u w_lo + u^-1 w_hi, G <- u^-1 G_lo +
    u G_hi, a <- u^-1 a_lo + u a_hi. Finally A = d (g + x a' U) + s H, challenge e,
    z1 = d + e w', z2 = s + e rho'. The verifier checks, as one group equation,
    z1 (g + x a' U) + z2 H = A + e (P + sum_j u_j^2 L_j + u_j^-2 R_j), g = sum_t coef(t) G_t.

    ``a`` is public; ``a_final(us, uis)`` may compute the folded a' in closed form (the
    verifier's default is sum_t coef(t) a_t).
    """
    b = n.bit_length() - 1
    if n != 1 << b:
        raise ValueError("the logarithmic dot product needs a power-of-two length")
    ctx.t.absorb_scalars(L_IPA, [n])
    x = ctx.challenge(L_IPA_X)
    if ctx.proving:
        _prove_log(ctx, label, n, b, w, a, target, x)
        return
    us, lrs = [], []
    for _ in range(b):
        ids = ctx.commit_points(L_IPA, None, 2)
        u = ctx.challenge(L_IPA_U)
        if u == 0:
            raise VerificationError("zero challenge")
        us.append(u)
        lrs.append(ids)
    (A,) = ctx.commit_points(L_IPA, None, 1)
    e = ctx.challenge(L_IPA_E)
    z1, z2 = ctx.scalars(L_IPA, 2, None)
    uis = [_inv(u) for u in us]
    coef = fold_coefficients(us, uis)
    if a_final is not None:
        a_fin = a_final(us, uis)
    else:
        av = a if not isinstance(a, np.ndarray) else Fr.to_ints(a)
        a_fin = sum(c * int(ai) for c, ai in zip(coef, av)) % P
    if ctx.trace is not None:
        ctx.trace.append(("dot_product_log", {"label": label, "n": n, "vector": w.s, "x": x,
                                              "coef": coef, "a_final": a_fin, "e": e,
                                              "z1": z1, "z2": z2}))
    gens = ctx.generator_ids(label, n)
    eq = Sym.combo(gens, [z1 * c % P for c in coef]) + _U * (z1 * x % P * a_fin) + _H * z2
    eq = eq - Sym.point(A) - (w.s + target.s * x) * e
    t: dict[int, int] = {}
    for (li, ri), u, ui in zip(lrs, us, uis):
        t[li] = (-e * u * u) % P
        t[ri] = (-e * ui * ui) % P
    ctx.check(eq + Sym(t))


IPA_THREADS = [1]
"""Numba threads of the logarithmic dot-product proof's MSMs (see :func:`ipa_threads`)."""


@contextmanager
def ipa_threads(n: int) -> Iterator[None]:
    """Let the logarithmic dot-product proofs inside the block use n numba threads (default
    1: the right choice beside FHE work on a busy machine; an idle standalone prover gains
    25-32% from a second core)."""
    with thread_setting(IPA_THREADS, n):
        yield


def _prove_log(ctx: Context, label: bytes, n: int, b: int, w: VecCom, a, target: Com,
               x: int) -> None:
    G = generators(label, n)
    ext = np.concatenate([G, ctx.key1.U, ctx.key1.H])
    wv = np.ascontiguousarray(w.w, dtype=np.uint64).reshape(-1, 4)
    av = a if isinstance(a, np.ndarray) else Fr.from_ints(a)
    if wv.shape[0] != n or av.shape[0] != n:
        raise ValueError("vectors of the wrong length")
    if Fr.inner(wv, av) != target.v:
        C.refuse("the committed dot product is wrong")
    rho = (w.r + x * target.r) % P
    coef = [1] * n
    t_idx = np.arange(n)
    old = nb.get_num_threads()
    # short vectors: a parallel region costs more than it saves on a busy machine (measured:
    # +21-27% with the other core loaded); a standalone prover may ask for more (IPA_THREADS)
    nb.set_num_threads(min(old, IPA_THREADS[0]))
    try:
        for j in range(b):
            length = n >> j
            half = length // 2
            wl, wh = wv[:half], wv[half:length]
            al, ah = av[:half], av[half:length]
            cL, cR = Fr.inner(wl, ah), Fr.inner(wh, al)
            bl = ctx.random(2)
            coef_m = Fr.from_ints(coef)
            idx = t_idx % length
            hi = idx >= half
            sL = np.zeros((n, 4), dtype=np.uint64)
            sR = np.zeros((n, 4), dtype=np.uint64)
            sL[hi] = wl[idx[hi] - half]
            sR[~hi] = wh[idx[~hi]]
            scal = np.empty((2, n + 2, 4), dtype=np.uint64)
            scal[0, :n] = Fr.mul(sL, coef_m)
            scal[1, :n] = Fr.mul(sR, coef_m)
            scal[:, n] = Fr.from_ints([x * cL, x * cR])
            scal[:, n + 1] = Fr.from_ints(bl)
            ctx.commit_points(L_IPA, lambda: ZC.to_affine(M.msm_mont(ext, scal)), 2)
            u = ctx.challenge(L_IPA_U)
            if u == 0:
                raise ProverError("zero challenge")
            ui = _inv(u)
            wv = Fr.add(Fr.scale(wl, u), Fr.scale(wh, ui))
            av = Fr.add(Fr.scale(al, ui), Fr.scale(ah, u))
            rho = (rho + u * u % P * bl[0] + ui * ui % P * bl[1]) % P
            coef = [c * (u if (t >> (b - 1 - j)) & 1 else ui) % P for t, c in enumerate(coef)]
        w_fin = Fr.to_ints(wv)[0]
        a_fin = Fr.to_ints(av)[0]
        d, s = ctx.random(2)
        scal = np.empty((1, n + 2, 4), dtype=np.uint64)
        scal[0, :n] = Fr.scale(Fr.from_ints(coef), d)
        scal[0, n] = Fr.from_ints([d * a_fin % P * x])
        scal[0, n + 1] = Fr.from_ints([s])
        ctx.commit_points(L_IPA, lambda: ZC.to_affine(M.msm_mont(ext, scal)), 1)
    finally:
        nb.set_num_threads(old)
    e = ctx.challenge(L_IPA_E)
    ctx.scalars(L_IPA, 2, lambda: [d + e * w_fin, s + e * rho])


@dataclass(frozen=True)
class Sizes:
    """Proof sizes in (points, scalars) of each protocol, for documentation and tests."""

    opening: tuple[int, int] = (1, 2)
    zero: tuple[int, int] = (1, 1)
    product: tuple[int, int] = (3, 5)  # plus the C_z it proves

    @staticmethod
    def dot_product(n: int) -> tuple[int, int]:
        return 2, n + 2

    @staticmethod
    def dot_product_log(n: int) -> tuple[int, int]:
        return 2 * (n.bit_length() - 1) + 1, 2
