"""Zero knowledge of zkAttn proofs, tested the way an attacker would try to break it.

* Leak test: the prover is instrumented to record every secret value it computes (evaluations
  of W, b and the witness tensors, round polynomials, final factor values, folded vectors);
  none of them may appear among the scalars of the proof file. The retired plain protocol
  (tests/zk/legacy) fails the same test.
* Extraction test: an attacker with N proofs of one small head, the public commitment and the
  verifier code forms every linear equation in W that the proofs' public scalars give and
  solves. It recovers W exactly from the plain protocol, and nothing from the new one (every
  scalar that depends on W carries a fresh nonce of its own).
* Witness swap: two weight sets with the same output on x (they differ in a row of W that
  multiplies an all-zero column of x) give proofs whose scalars pass the same uniformity tests
  and cannot be told apart by a two-sample test.
"""

from __future__ import annotations

import copy
from contextlib import contextmanager

import numpy as np
import pytest
from legacy import stack as legacy_stack
from legacy import zkattn as legacy

from zk import attention_model as am
from zk.attention_ref import HeadConfig, quantize_input, random_head, run_reference
from zk.field import Fr, PrimeField
from zk.head import zkattn
from zk.multilinear import eq_table
from zk.protocol.context import Context
from zk.transcript import Transcript

P = Fr.modulus
SMALL = 1 << 20  # public constants (0, 1, shapes) are not secrets


def small_head(seed=1, d_model=8, d_head=4, L=3):
    cfg = HeadConfig(d_model=d_model, d_head=d_head, seq_len=L, causal=True)
    head, _, calib = random_head(cfg, seed=seed, n_calib=8)
    pm, mc = am.commit(head)
    return pm, mc, [quantize_input(c, head) for c in calib]


# ---------------------------------------------------------------- the proof file's scalars


def file_scalars(data: bytes) -> list[int]:
    """Every field element of a proof file (the ZKFH format, any kind/version): a tag walker."""
    kind_len = int.from_bytes(data[6:8], "little")
    return _walk(data, 10 + kind_len, len(data))


def _walk(data: bytes, pos: int, end: int) -> list[int]:
    out: list[int] = []
    fixed = {0x01: 1, 0x02: 4, 0x03: 8, 0x08: 32, 0x0B: 1}
    while pos < end:
        tag = data[pos]
        pos += 1
        if tag in fixed:
            pos += fixed[tag]
        elif tag == 0x04:
            out.append(int.from_bytes(data[pos:pos + 32], "little"))
            pos += 32
        elif tag == 0x05:
            n = int.from_bytes(data[pos:pos + 4], "little")
            pos += 4
            out += [int.from_bytes(data[pos + 32 * i:pos + 32 * i + 32], "little")
                    for i in range(n)]
            pos += 32 * n
        elif tag in (0x06, 0x07):
            n = int.from_bytes(data[pos:pos + 4], "little")
            pos += 4 + n
        elif tag == 0x09:
            n = int.from_bytes(data[pos:pos + 4], "little")
            pos += 4 + 32 * n
        elif tag == 0x0A:
            k = int.from_bytes(data[pos:pos + 4], "little")
            pos += 4 + k
            m = int.from_bytes(data[pos:pos + 4], "little")
            pos += 4
            out += _walk(data, pos, pos + m)
            pos += m
        else:
            raise AssertionError(f"unknown tag {tag:#x}")
    return out


# ---------------------------------------------------------------- the leak test


@contextmanager
def recording():
    """Record every Fr value the prover turns into a Python int, and every value it commits."""
    seen: set[int] = set()
    to_ints, to_int = PrimeField.to_ints, PrimeField.scalar_to_int
    commit, commit_round = Context.commit, Context.commit_round

    def rec_ints(self, a):
        out = to_ints(self, a)
        if self is Fr:
            seen.update(out)
        return out

    def rec_int(self, s):
        v = to_int(self, s)
        if self is Fr:
            seen.add(v)
        return v

    def rec_commit(self, label, n, values):
        if self.proving:
            vals = [int(v) % P for v in values()]
            seen.update(vals)
            return commit(self, label, n, lambda: vals)
        return commit(self, label, n, values)

    def rec_round(self, label, size, values):
        if self.proving:
            vals = [int(v) % P for v in values()]
            seen.update(vals)
            return commit_round(self, label, size, lambda: vals)
        return commit_round(self, label, size, values)

    PrimeField.to_ints, PrimeField.scalar_to_int = rec_ints, rec_int
    Context.commit, Context.commit_round = rec_commit, rec_round
    try:
        yield seen
    finally:
        PrimeField.to_ints, PrimeField.scalar_to_int = to_ints, to_int
        Context.commit, Context.commit_round = commit, commit_round


def _secrets(seen: set[int]) -> set[int]:
    return {v for v in seen if SMALL < v < P - SMALL}


def test_leak_new_protocol_reveals_no_secret_value():
    pm, mc, xs = small_head()
    with recording() as seen:
        data = zkattn.prove(pm, xs[0]).to_bytes()
    secrets = _secrets(seen)
    assert len(secrets) > 500  # the instrumentation saw the witness at work
    scalars = file_scalars(data)
    assert len(scalars) > 50
    assert not secrets & set(scalars)


def test_leak_test_catches_the_plain_protocol():
    pm, mc, xs = small_head()
    with recording() as seen:
        data = legacy.prove(pm, xs[0]).to_bytes()
    leaked = _secrets(seen) & set(file_scalars(data))
    assert len(leaked) > 50  # round messages and evaluations in the clear


# ---------------------------------------------------------------- the extraction attack


def _solve_mod_p(rows: list[list[int]], rhs: list[int]) -> tuple[list[int] | None, int]:
    """A solution of rows . w = rhs mod P if it is unique (else None), and the rank."""
    n = len(rows[0])
    m = [list(r) + [b] for r, b in zip(rows, rhs)]
    rank, piv_cols = 0, []
    for c in range(n):
        piv = next((i for i in range(rank, len(m)) if m[i][c] % P), None)
        if piv is None:
            continue
        m[rank], m[piv] = m[piv], m[rank]
        inv = pow(m[rank][c], -1, P)
        m[rank] = [x * inv % P for x in m[rank]]
        for i in range(len(m)):
            if i != rank and m[i][c]:
                f = m[i][c]
                m[i] = [(x - f * y) % P for x, y in zip(m[i], m[rank])]
        piv_cols.append(c)
        rank += 1
    if rank < n:
        return None, rank
    return [m[i][n] for i in range(n)], rank


def _weight_unknowns(mc) -> tuple[list[int], np.ndarray]:
    """Indices of the real (unpadded) entries of the weight stack, and their true values."""
    d = mc.dims
    cfg = mc.config
    lay = am.weight_layout(d)
    idx = []
    for k in range(len(am.WEIGHTS)):
        for i in range(cfg.d_model):
            for j in range(cfg.d_head):
                idx.append(k * d.D * d.H + i * d.H + j)
    return idx, lay


N_PROOFS = 40  # 3 equations per plain proof: 120 > 96 unknowns


def _inputs(pm, xs, n, seed=0):
    """n admissible inputs near the calibration ones (the transcript hashes x, so the points
    of each proof differ)."""
    from zk.attention_ref import BoundsViolation
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < n:
        x = np.clip(xs[len(out) % len(xs)] + rng.integers(-1, 2, xs[0].shape),
                    *pm.head.bounds["x"])
        try:
            run_reference(x, pm.head)
        except BoundsViolation:
            continue
        out.append(x)
    return out


@pytest.fixture(scope="module")
def attack_head():
    pm, mc, xs = small_head(seed=3, L=3)
    return pm, mc, _inputs(pm, xs, N_PROOFS)  # varied inputs: the transcript hashes x


def _true_weights(pm, idx):
    padded = am._padded_weights(pm.head, pm.commitment.dims)
    flat = am.weight_layout(pm.commitment.dims).stacked(padded)
    return [int(v) % P for v in flat[idx]]


def test_extraction_recovers_the_weights_from_the_plain_protocol(attack_head, monkeypatch):
    pm, mc, inputs = attack_head
    idx, _ = _weight_unknowns(mc)
    seen = []
    real_check = legacy_stack.ClaimBook.check

    def spy(self, stack, commitment, opening, t):
        if stack == "w":
            seen.extend(self.claims["w"])
        return real_check(self, stack, commitment, opening, t)
    monkeypatch.setattr(legacy_stack.ClaimBook, "check", spy)
    rows, rhs = [], []
    for x in inputs:
        data = legacy.prove(pm, x).to_bytes()
        seen.clear()
        legacy.verify_bytes(data, mc)  # the public verifier, replayed by the attacker
        for claim in seen:
            e = Fr.to_ints(eq_table(list(claim.point)))
            rows.append([e[i] for i in idx])
            rhs.append(claim.value)
    w, rank = _solve_mod_p(rows, rhs)
    assert rank == len(idx)
    assert w == _true_weights(pm, idx)  # every weight, exactly


@pytest.mark.parametrize("n_proofs", [N_PROOFS, pytest.param(120, marks=pytest.mark.slow)])
def test_extraction_recovers_nothing_from_the_new_protocol(attack_head, monkeypatch, n_proofs):
    pm, mc, inputs = attack_head
    if n_proofs > len(inputs):
        inputs = _inputs(pm, inputs, n_proofs, seed=7)
    idx, _ = _weight_unknowns(mc)
    sh = zkattn.Shape(mc)
    b = mc.weights.log_cols
    from zk.head import stack as zstack
    w_claims = []
    real_open = zstack.ClaimBook.open

    def spy(self, ctx, name, tensor):
        if name == "w" and not ctx.proving:
            w_claims.extend(self.claims["w"])
        return real_open(self, ctx, name, tensor)
    monkeypatch.setattr(zstack.ClaimBook, "open", spy)
    scalar_equations = 0
    rows_w, rhs = [], []
    for x in inputs:
        proof = zkattn.prove(pm, x)
        ctx = Context.verifier(Transcript(zkattn.PROTOCOL), proof.stream)
        ctx.trace = []
        w_claims.clear()
        zkattn._protocol(ctx, sh, proof.x, proof.y, b"")
        ctx.finish()  # the proof is valid
        # the attack on the plain protocol: claims on W with a value in the clear
        scalar_equations += sum(isinstance(c.com, int) or c.com.s is None for c in w_claims)
        # the only scalars that involve W: the responses of W's opening argument,
        # z1 = d + e <coef, L^T M_W>, each with a fresh nonce d of its own
        row_ids = next(v for k, v in ctx.trace if k == "bind")["rows"]
        ipa = next(v for k, v in ctx.trace if k == "dot_product_log"
                   and set(v["vector"].t) <= set(row_ids))
        L = [ipa["vector"].t.get(r, 0) for r in row_ids]
        full = [0] * (1 << mc.weights.num_vars)
        for i, li in enumerate(L):
            for t, ct in enumerate(ipa["coef"]):
                full[(i << b) + t] = ipa["e"] * li % P * ct % P
        rows_w.append([full[i] for i in idx])
        rhs.append(ipa["z1"])
    assert scalar_equations == 0  # every claim on W stays committed
    # with one unknown nonce per equation, every weight vector is consistent with the proofs:
    # for any W', d'_p = z1_p - e_p f_p(W') satisfies them all. The naive attacker (nonces
    # taken as 0) has fewer equations than unknowns and no unique answer, and even a least-
    # squares-style guess on the first equations is not the weights.
    truth = _true_weights(pm, idx)
    rng = np.random.default_rng(1)
    other = [(t + int(v)) % P for t, v in zip(truth, rng.integers(1, 100, len(truth)))]
    for row, z1 in zip(rows_w, rhs):
        for w in (truth, other):
            nonce = (z1 - sum(a * v for a, v in zip(row, w))) % P
            assert (nonce + sum(a * v for a, v in zip(row, w))) % P == z1
    w_guess, rank_w = _solve_mod_p(rows_w, rhs)
    if len(inputs) < len(idx):
        assert w_guess is None and rank_w <= len(inputs)
    else:  # more equations than unknowns: the naive system has no solution at all
        assert w_guess is None or w_guess != truth
    # the naive attacker's equations are not satisfied by the true weights: they are masked
    assert all(sum(a * v for a, v in zip(row, truth)) % P != z1 for row, z1 in zip(rows_w, rhs))


# ---------------------------------------------------------------- witness swap


def _swap_pair():
    cfg = HeadConfig(d_model=8, d_head=4, seq_len=3, causal=True)
    head, _, calib = random_head(cfg, seed=5, n_calib=4)
    x = quantize_input(calib[0], head)
    c = 2
    x[:, c] = 0  # an all-zero column of x
    head2 = copy.deepcopy(head)
    for name in ("Wq", "Wk", "Wv"):
        row = getattr(head2, name)[c]
        row[:] = np.clip(-row + 1, -7, 7)  # row c differs
    y1, _ = run_reference(x, head)
    y2, _ = run_reference(x, head2)
    assert np.array_equal(y1, y2) and not np.array_equal(head.Wq, head2.Wq)
    return head, head2, x


def _ks_uniform(u: np.ndarray) -> float:
    u = np.sort(u)
    n = u.size
    i = np.arange(1, n + 1)
    return float(max((i / n - u).max(), (u - (i - 1) / n).max())) * np.sqrt(n)


def _ks_two(a: np.ndarray, b: np.ndarray) -> float:
    allv = np.sort(np.concatenate([a, b]))
    fa = np.searchsorted(np.sort(a), allv, side="right") / a.size
    fb = np.searchsorted(np.sort(b), allv, side="right") / b.size
    n = a.size * b.size / (a.size + b.size)
    return float(np.abs(fa - fb).max()) * np.sqrt(n)


def _chi2_bytes(vals: list[int]) -> float:
    """Chi-square of the top byte of each scalar's canonical form over its 2^254-bounded range
    (r is just below 2^254: the top 6 bits of 256 are 0; bytes 30 carry uniform bits)."""
    counts = np.bincount([(v >> 240) & 0xF for v in vals], minlength=16)
    exp = len(vals) / 16
    return float(((counts - exp) ** 2 / exp).sum())


KS_CRIT = 2.69  # alpha = 1e-6 per check (a leak gives statistics in the hundreds)
CHI2_CRIT = 56.5  # 15 degrees of freedom, alpha = 1e-6


def test_witness_swap_scalars_indistinguishable():
    head, head2, x = _swap_pair()
    sets = []
    for h in (head, head2):
        pm, mc = am.commit(h)
        vals: list[int] = []
        for _ in range(6):
            vals += list(zkattn.prove(pm, x).stream.scalars)
        sets.append(vals)
    a, b = (np.array([v / P for v in s]) for s in sets)
    assert a.size > 500
    for s, u in zip(sets, (a, b)):
        assert _ks_uniform(u) < KS_CRIT
        assert _chi2_bytes(s) < CHI2_CRIT
    assert _ks_two(a, b) < KS_CRIT
