"""The whole-model proof (zk.model.llama): honest generations verify; changed tokens, other
prompts, other commitments, truncated or extended token lists, cheating provers (one op of one
layer off, another layer's weights, a broken residual link between layers, a skipped clip) and
mutated bytes are rejected; nothing secret appears among the proof's scalars."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from test_zero_knowledge import (
    CHI2_CRIT,
    KS_CRIT,
    _chi2_bytes,
    _ks_two,
    _ks_uniform,
    _secrets,
    file_scalars,
    recording,
)

from zk.errors import MalformedProofError, ProverError, VerificationError
from zk.model import llama as M
from zk.protocol import context as C
from zk.protocol.context import Context, Stream
from zk.transcript import Transcript

SHIFTS = dict(e=2, q=6, k=6, v=4, s=4, a=8, o=4, g=4, u=4, m=6, d=6, n=14, lm=6)


def tiny_config(**kw) -> M.LlamaConfig:
    base = dict(n_layers=2, d_model=8, n_heads=3, n_kv_heads=1, d_head=4, d_ff=12, vocab=20,
                max_len=8, shifts=SHIFTS, emb_mult=3, norm_c2=1 << 24, norm_eps=4, act_bits=8,
                t_bits=16, score_bits=8, rope_bits=6, clip_t=100, exp_bits=6, log_frac=2,
                p_bits=6, delta=1 / 8, silu_in=1 / 16, silu_out=1 / 16)
    base.update(kw)
    return M.LlamaConfig(**base)


@pytest.fixture(scope="module")
def model():
    cfg = tiny_config()
    rng = np.random.default_rng(1)
    pm = M.commit(cfg, M.random_weights(cfg, rng), rng=rng)
    toks = M.generate(pm, np.array([1, 2, 3]), 3)
    proof = M.prove(pm, toks, 3)
    return pm, toks, proof


def test_honest_generation_verifies_and_round_trips(model):
    pm, toks, proof = model
    mc = M.LlamaCommitment.from_bytes(pm.commitment.to_bytes())
    assert mc.digest == pm.commitment.digest
    back = M.verify_bytes(proof.to_bytes(), mc)
    assert back.tokens == tuple(int(t) for t in toks)
    assert back.statement.generated == tuple(int(t) for t in toks[3:])
    M.verify_bytes(proof.to_bytes(), mc, threads=2)  # the final MSM on two threads
    bad = bytearray(proof.to_bytes())
    bad[-40] ^= 1
    with pytest.raises((MalformedProofError, VerificationError)):
        M.verify_bytes(bytes(bad), mc, threads=2)


def test_generation_is_the_integer_models_argmax(model):
    pm, toks, _ = model
    mc = pm.commitment
    logits, _, _ = M.forward(mc.config, mc.tables, pm.weights, toks[:-1])
    for i in range(2, len(toks) - 1):
        row = logits[i]
        assert toks[i + 1] == int(np.flatnonzero(row == row.max())[0])


def test_changed_tokens_rejected(model):
    pm, toks, proof = model
    mc = pm.commitment
    V = mc.config.vocab
    for i in range(len(toks)):  # every generated token and every prompt token
        t = list(proof.tokens)
        t[i] = (t[i] + 1) % V
        with pytest.raises(VerificationError):
            M.verify(replace(proof, statement=M.Statement(tuple(t), 3)), mc)


def test_other_statements_rejected(model):
    pm, toks, proof = model
    mc = pm.commitment
    t = proof.tokens
    for st in (M.Statement(t, 2), M.Statement(t, 4), M.Statement(t[:-1], 3),
               M.Statement(t + (0,), 3), M.Statement((0,) + t[1:], 3)):
        with pytest.raises(VerificationError):
            M.verify(replace(proof, statement=st), mc)
    with pytest.raises(VerificationError):  # no generated token, or a token out of range
        M.verify(replace(proof, statement=M.Statement(t, len(t))), mc)
    with pytest.raises(VerificationError):
        M.verify(replace(proof, statement=M.Statement(t[:-1] + (mc.config.vocab,), 3)), mc)
    with pytest.raises(VerificationError):
        M.verify(proof, mc, context=b"another session")


def test_other_model_commitment_rejected(model):
    pm, toks, proof = model
    cfg = pm.config
    other = M.commit(cfg, M.random_weights(cfg, np.random.default_rng(2))).commitment
    with pytest.raises(VerificationError):
        M.verify(proof, other)
    with pytest.raises(VerificationError):  # the digest field says "other", the body does not
        M.verify(replace(proof, model_digest=other.digest), other)
    # the same weights committed again (fresh blinds) are another commitment too
    again = M.commit(cfg, pm.weights).commitment
    with pytest.raises(VerificationError):
        M.verify(replace(proof, model_digest=again.digest), again)


def test_prover_refuses_a_false_generation(model):
    pm, toks, _ = model
    t = toks.copy()
    t[-1] = (t[-1] + 1) % pm.config.vocab
    with pytest.raises(ProverError, match="not the model's choice"):
        M.prove(pm, t, 3)
    with pytest.raises(ProverError):
        M.prove(pm, toks, len(toks))


# ---------------------------------------------------------------- cheating provers


def cheat(pm, toks, prompt_len, monkeypatch, *, mutate=None, weights=None, feed=None,
          rq_override=None):
    """A prover that does not refuse: its witness comes from a modified forward pass (other
    weights, another input to a layer) or is mutated after it; it proves anyway."""
    monkeypatch.setattr(C, "refuse", lambda what: None)
    mc = pm.commitment
    st = M.Statement(tuple(int(t) for t in toks), prompt_len)
    _, w, ch = M.forward(mc.config, mc.tables, weights or pm.weights, np.array(st.tokens[:-1]),
                         feed=feed)
    if mutate is not None:
        mutate(w, ch)
    sh = M.Shape(mc.config, st.L)
    sh.tables = mc.tables
    wp, chp = M._witness(sh, w, ch, st)
    ctx = Context.prover(Transcript(M.PROTOCOL))
    M._protocol(ctx, mc, st, b"", pm, wp, chp)
    ctx.finish()
    return M.ModelProof(mc.digest, st, ctx.stream())


def _rederive(w, rq: M.RQ, y_new, layer=None):
    """Replace rq's output by y_new keeping its local witness (a, b, m, R) consistent, so only
    the relation that produced its accumulator fails."""
    # t := y_new, acc := 2^k t (remainder 2^(k-1)): every lookup still passes
    sub = {}
    acc = y_new.astype(np.int64) << rq.k
    _, wit = rq.ref(acc)
    for k, v in wit.items():
        if layer is None:
            w[k] = v
        else:
            w[k][layer] = v


def n2_off_by_one(pm, toks):
    """A witness mutation: one entry of layer 1's second norm output off by one (its rounding
    witness kept consistent, so only the norm's relation fails)."""
    sh = M.Shape(pm.config, len(toks) - 1)

    def mutate(w, ch):
        y = w["n2"][1].copy()
        y[2, 5] += 1
        _rederive(w, sh.rq["n2"], y, layer=1)

    return mutate


def test_an_activation_off_by_one_in_one_layer_rejected(model, monkeypatch):
    pm, toks, _ = model
    proof = cheat(pm, toks, 3, monkeypatch, mutate=n2_off_by_one(pm, toks))
    with pytest.raises(VerificationError):
        M.verify(proof, pm.commitment)


def test_a_skipped_clip_rejected(model, monkeypatch):
    pm, toks, _ = model
    sh = M.Shape(pm.config, len(toks) - 1)

    def mutate(w, ch):  # the gate's output not clipped where its mode says it must be
        a = w["g.m"][0]
        w["g.m"][0] = np.zeros_like(a)
        w["g.a"][0][:] = 0

    proof = cheat(pm, toks, 3, monkeypatch, mutate=mutate)
    with pytest.raises(VerificationError):
        M.verify(proof, pm.commitment)


def test_another_layers_weights_rejected(model, monkeypatch):
    pm, toks, _ = model
    W = pm.weights
    wq = W.wq.copy()
    wq[1] = wq[0]  # layer 1 computed with layer 0's query weights
    W2 = replace(W, wq=wq)
    mc = pm.commitment
    toks2 = M.generate(M.ProvingLlama(mc, W2, pm.witnesses), toks[:3], len(toks) - 3)
    proof = cheat(pm, toks2, 3, monkeypatch, weights=W2)
    with pytest.raises(VerificationError):
        M.verify(proof, pm.commitment)


def test_another_embedding_rejected(model, monkeypatch):
    """The embedding matrix is read twice (token rows, tied LM head): its two claims are
    moved to one column point before the opening; a prover using another matrix fails."""
    pm, toks, _ = model
    W = pm.weights
    E = W.E.copy()
    E[toks[0]] += 1
    W2 = replace(W, E=E)
    toks2 = M.generate(M.ProvingLlama(pm.commitment, W2, pm.witnesses), toks[:3], 3)
    with pytest.raises(VerificationError):
        M.verify(cheat(pm, toks2, 3, monkeypatch, weights=W2), pm.commitment)


def test_a_layer_fed_something_else_than_the_previous_output_rejected(model, monkeypatch):
    pm, toks, _ = model

    def feed(l, h):
        if l == 1:
            h = h.copy()
            h[1, 3] += 1
        return h

    proof = cheat(pm, toks, 3, monkeypatch, feed=feed)
    with pytest.raises(VerificationError):
        M.verify(proof, pm.commitment)


def test_honest_cheat_harness_verifies(model, monkeypatch):
    """The harness itself makes valid proofs when nothing is changed (so the rejections above
    come from the cheats)."""
    pm, toks, _ = model
    M.verify(cheat(pm, toks, 3, monkeypatch), pm.commitment)


# ---------------------------------------------------------------- the file


def test_every_byte_class_of_the_file_is_checked(model):
    pm, toks, proof = model
    data = proof.to_bytes()
    mc = pm.commitment
    n = len(data)
    rng = np.random.default_rng(5)
    positions = sorted(set(list(range(0, 80, 2)) + rng.integers(80, n, 60).tolist()))
    for pos in positions:
        bad = bytearray(data)
        bad[pos] ^= 1 << int(rng.integers(0, 8))
        with pytest.raises((MalformedProofError, VerificationError)):
            M.verify_bytes(bytes(bad), mc)
    for bad in (data[:-1], data + b"\x00", data[: n // 2], b"", data[:20]):
        with pytest.raises((MalformedProofError, VerificationError)):
            M.verify_bytes(bad, mc)


def test_malformed_commitment_files_refused(model):
    pm, _, _ = model
    data = pm.commitment.to_bytes()
    rng = np.random.default_rng(6)
    for pos in sorted(set(rng.integers(0, len(data), 60).tolist())):
        bad = bytearray(data)
        bad[pos] ^= 0x10
        try:
            mc = M.LlamaCommitment.from_bytes(bytes(bad))
        except MalformedProofError:
            continue
        assert mc.digest != pm.commitment.digest  # decoded to another model: fine
    for bad in (data[:-1], data + b"\x00", b""):
        with pytest.raises(MalformedProofError):
            M.LlamaCommitment.from_bytes(bad)


def test_a_commitment_asking_too_many_generators_refused(model, monkeypatch):
    pm, _, _ = model
    data = pm.commitment.to_bytes()
    widest = max(c.log_cols for c in pm.commitment.weights.values())
    monkeypatch.setattr(M, "MAX_WEIGHT_LOG_COLS", widest - 1)
    with pytest.raises(MalformedProofError, match="columns"):
        M.LlamaCommitment.from_bytes(data)


# ---------------------------------------------------------------- zero knowledge


def test_no_secret_value_among_the_proofs_scalars(model):
    pm, toks, _ = model
    with recording() as seen:
        data = M.prove(pm, toks, 3).to_bytes()
    secrets = _secrets(seen)
    assert len(secrets) > 1500  # the instrumentation saw the witness and the weights at work
    scalars = file_scalars(data)
    assert len(scalars) > 100
    assert not secrets & set(scalars)


def test_two_weight_sets_with_one_generation_give_indistinguishable_scalars(model):
    pm, toks, _ = model
    cfg = pm.config
    W = pm.weights
    # another weight set with the same greedy tokens: the query heads and the MLP's channels
    # permuted (every sum over heads and channels is exact, so no output changes, while the
    # stacked hidden tensors all do)
    ph = np.roll(np.arange(cfg.n_heads), 1)
    pf = np.roll(np.arange(cfg.d_ff), 5)
    W2 = replace(W, wq=W.wq[:, ph], wk=W.wk[:, ph], wv=W.wv[:, ph], wo=W.wo[:, ph],
                 wg=W.wg[:, :, pf], wu=W.wu[:, :, pf], wd=W.wd[:, pf])
    pm2 = M.commit(cfg, W2)
    assert np.array_equal(M.generate(pm2, toks[:3], len(toks) - 3), toks)
    sets = []
    for p in (pm, pm2):
        vals: list[int] = []
        for _ in range(2):
            vals += list(M.prove(p, toks, 3).stream.scalars)
        sets.append(vals)
    P = C.P
    a, b = (np.array([v / P for v in s]) for s in sets)
    assert a.size > 500
    for s, u in zip(sets, (a, b)):
        assert _ks_uniform(u) < KS_CRIT
        assert _chi2_bytes(s) < CHI2_CRIT
    assert _ks_two(a, b) < KS_CRIT


# ---------------------------------------------------------------- GPT-2's architecture


@pytest.fixture(scope="module")
def gpt2():
    cfg = tiny_config(arch="gpt2", n_heads=2, n_kv_heads=2, t_bits=18)
    rng = np.random.default_rng(3)
    w = M.random_weights(cfg, rng)
    cfg = M.fit_shifts(cfg, w, rng.integers(0, cfg.vocab, 8))
    pm = M.commit(cfg, w)
    toks = M.generate(pm, np.array([4, 5, 6]), 3)
    return pm, toks, M.prove(pm, toks, 3)


def test_gpt2_generation_verifies_and_tokens_are_bound(gpt2):
    pm, toks, proof = gpt2
    mc = M.LlamaCommitment.from_bytes(pm.commitment.to_bytes())
    assert M.verify_bytes(proof.to_bytes(), mc).tokens == tuple(int(t) for t in toks)
    for i in range(3, len(toks)):
        t = list(proof.tokens)
        t[i] = (t[i] + 1) % mc.config.vocab
        with pytest.raises(VerificationError):
            M.verify(replace(proof, statement=M.Statement(tuple(t), 3)), mc)


def test_gpt2_layernorm_centring_off_by_one_rejected(gpt2, monkeypatch):
    pm, toks, _ = gpt2
    sh = M.Shape(pm.config, len(toks) - 1)

    def mutate(w, ch):
        y = w["n2.hc"][0].copy()
        y[1, 2] += 1
        _rederive(w, sh.rq["n2.hc"], y, layer=0)

    with pytest.raises(VerificationError):
        M.verify(cheat(pm, toks, 3, monkeypatch, mutate=mutate), pm.commitment)


def test_gpt2_other_biases_rejected(gpt2, monkeypatch):
    pm, toks, _ = gpt2
    W = pm.weights
    bq = W.bq.copy()
    bq[1] = bq[0] + 1
    W2 = replace(W, bq=bq)
    toks2 = M.generate(M.ProvingLlama(pm.commitment, W2, pm.witnesses), toks[:3], 3)
    with pytest.raises(VerificationError):
        M.verify(cheat(pm, toks2, 3, monkeypatch, weights=W2), pm.commitment)


def test_gpt2_no_secret_among_the_scalars(gpt2):
    pm, toks, _ = gpt2
    with recording() as seen:
        data = M.prove(pm, toks, 3).to_bytes()
    assert not _secrets(seen) & set(file_scalars(data))


# ---------------------------------------------------------------- a wide residual stream


@pytest.fixture(scope="module")
def wide():
    """A residual stream of 20 bits and a 30-bit norm factor (two limbs each), as SmolLM2's
    quantization needs (its residual channels span more than 2^16)."""
    cfg = tiny_config(res_bits=20, t_bits=24, norm_c2=(1 << 68) - 1, norm_eps=256,
                      norm_s_bits=30)
    rng = np.random.default_rng(5)
    w = M.random_weights(cfg, rng)
    cfg = M.fit_shifts(cfg, w, rng.integers(0, cfg.vocab, 8))
    pm = M.commit(cfg, w, rng=rng)
    toks = M.generate(pm, np.array([1, 2, 3]), 3)
    return pm, toks, M.prove(pm, toks, 3)


def test_wide_residual_generation_verifies(wide):
    pm, toks, proof = wide
    mc = M.LlamaCommitment.from_bytes(pm.commitment.to_bytes())
    assert mc.config.rbits == 20 and mc.config.norm_s_bits == 30
    assert M.verify_bytes(proof.to_bytes(), mc).tokens == tuple(int(t) for t in toks)
    _, w, _ = M.forward(mc.config, mc.tables, pm.weights, toks[:-1])
    for n in ("x0.b1", "hmid.b1", "hout.b1", "n1.s1", "n2.s1", "nf.s1"):  # both limbs used
        assert w[n].any(), n
    assert np.abs(w["hout"]).max() >= 1 << 8  # past act_bits: the residual is wider


def test_wide_residual_high_limb_off_rejected(wide, monkeypatch):
    pm, toks, _ = wide
    sh = M.Shape(pm.config, len(toks) - 1)

    def mutate(w, ch):  # one residual entry of layer 0 off by 2^16 (its high limb)
        y = w["hout"][0].copy()
        y[1, 4] += 1 << 16
        _rederive(w, sh.rq["hout"], y, layer=0)

    with pytest.raises(VerificationError):
        M.verify(cheat(pm, toks, 3, monkeypatch, mutate=mutate), pm.commitment)


def test_wide_norm_factor_high_limb_off_rejected(wide, monkeypatch):
    pm, toks, _ = wide

    def mutate(w, ch):
        w["n2.s1"][1][2] += 1

    with pytest.raises(VerificationError):
        M.verify(cheat(pm, toks, 3, monkeypatch, mutate=mutate), pm.commitment)
    M.verify(cheat(pm, toks, 3, monkeypatch), pm.commitment)  # the harness alone verifies


def test_configurations_the_norm_cannot_serve_refused():
    with pytest.raises(ValueError, match="slack"):  # C2 x the largest ms past 64 bits
        tiny_config(res_bits=20, t_bits=24, norm_c2=(1 << 96) - 1, norm_eps=1 << 40,
                    norm_s_bits=28)
    with pytest.raises(ValueError, match="2\\^16"):
        tiny_config(norm_c2=1 << 34, norm_eps=1)
    with pytest.raises(ValueError, match="res_bits"):
        tiny_config(res_bits=16, t_bits=16)
    with pytest.raises(ValueError, match="res_bits"):
        tiny_config(res_bits=6)


# ---------------------------------------------------------------- integer folds of weights


def test_integer_folds_equal_the_field_folds():
    """gpu.poly.fold_small (integers times field weights, reduced once) against the Fr path,
    signed values up to the int64 extremes included."""
    from zk.commit import hyrax
    from zk.field import Fr
    from zk.model import engine as E
    from zk.multilinear import fold_rows

    rng = np.random.default_rng(9)
    for shape, axis, lim in (([4, 8, 16], 1, 1 << 15), ([1, 64, 8], 1, 127),
                             ([32, 4], 0, 1 << 40), ([8, 32], 1, 1 << 62),
                             ([2, 2, 128], 2, 3), ([1, 128, 130], 1, 1 << 20)):
        a = rng.integers(-lim, lim, size=int(np.prod(shape)))
        a[0], a[-1] = -lim, lim - 1
        pt = [int(x) for x in rng.integers(0, 1 << 60, shape[axis].bit_length() - 1)]
        want = E._fold_axis(Fr.from_signed(a), list(shape), axis, pt)
        got = E._fold_axis(a, list(shape), axis, pt)
        assert np.array_equal(Fr.to_ints(want), Fr.to_ints(got)), (shape, axis)
    a = np.array([np.iinfo(np.int64).min, np.iinfo(np.int64).max] * 4, dtype=np.int64)
    got = E._fold_axis(a, [8], 0, [5, 7, 11])
    assert np.array_equal(Fr.to_ints(E._fold_axis(Fr.from_signed(a), [8], 0, [5, 7, 11])),
                          Fr.to_ints(got))
    com, wit = hyrax.commit(rng.integers(-99, 100, size=1024), log_cols=4)
    rp = [int(x) for x in rng.integers(0, 1 << 60, 6)]
    lazy = hyrax.fold_witness_rows(wit, rp)
    assert "matrix" not in wit.__dict__
    assert Fr.to_ints(lazy) == Fr.to_ints(fold_rows(wit.matrix, 64, 16, rp))
    # rows of weight 0 are skipped (a member's claim on a stack): both folds equal Python ints
    from gpu import poly as K
    from zk.multilinear import P, eq_table

    rp = rp[:3] + [0, 1, 0]
    w = Fr.to_ints(eq_table(rp))
    assert sum(x != 0 for x in w) == 8
    vals = [int(v) for v in wit.values.reshape(-1)]
    want = [sum(w[i] * vals[i * 16 + x] for i in range(64)) % P for x in range(16)]
    assert Fr.to_ints(hyrax.fold_witness_rows(wit, rp)) == want
    out = np.empty((16, 4), dtype=np.uint64)
    K.rows_fold(Fr.desc, wit.matrix, 64, 16, eq_table(rp), out)
    assert Fr.to_ints(out) == want


def test_a_proof_never_builds_a_weights_field_matrix(model):
    from zk.commit import hyrax

    pm, toks, _ = model
    # a fresh witness (the module's model may have cached its Fr matrices)
    wits = {n: hyrax.HyraxWitness(w.num_vars, w.log_cols, w.values, w.blinds)
            for n, w in pm.witnesses.items()}
    fresh = M.ProvingLlama(pm.commitment, pm.weights, wits)
    M.verify(M.prove(fresh, toks, 3), pm.commitment)
    # the matrices (every one folded first); the norm gains enter pointwise products in Fr
    assert not [n for n, w in wits.items() if "matrix" in w.__dict__ and n[0] in "Ew"]


def test_rounding_remainders_in_as_many_limbs_as_the_shift_needs():
    """A shift past 32 bits puts the remainder in three 16-bit limbs (the last one narrower);
    the witness recomposes the accumulator exactly and saturates at the site's bits."""
    from zk.model.ops import RQ

    sp = M.Shape(tiny_config(), 2).ID
    rng = np.random.default_rng(4)
    for k, bits in ((0, 8), (5, 8), (16, 12), (17, 16), (33, 16), (38, 27)):
        r = RQ("x", sp, k, bits, bits + 10)
        top = min(62, k + bits + 6)  # past the site's bits: saturated entries too
        acc = rng.integers(-(1 << top), 1 << top, size=64)
        y, w = r.ref(acc)
        assert len(r.r_names()) == -(-k // 16)
        rec = ((w["x.a"] << (bits - 1)) + w["x.b"] + (w["x.b1"] << 16 if r.wide else 0)) << k
        for j, rn in enumerate(r.r_names()):
            width = k - 16 * j if j == r.limbs - 1 else 16
            assert w[rn].min() >= 0 and w[rn].max() < 1 << width
            rec = rec + (w[rn] << (16 * j))
        assert np.array_equal(rec - ((1 << (k - 1)) if k else 0), acc)
        t = (acc + ((1 << (k - 1)) if k else 0)) >> k
        assert np.array_equal(y, np.clip(t, r.lo, r.hi))


def test_lookups_split_into_several_trees_verify_and_reject_a_cheat(model, monkeypatch):
    """With the fraction-tree cap lowered, the model's columns go into several logUps (each
    over the tables its columns use, each tree within the cap); the proof verifies, and an
    off-range remainder in one layer is still caught."""
    from zk.model import engine as E

    pm, toks, _ = model
    monkeypatch.setattr(E, "MAX_TREE_VARS", 10)
    seen = []
    orig = E.Engine.lookup_groups

    def spy(self):
        g = orig(self)
        seen.append(g)
        return g

    monkeypatch.setattr(E.Engine, "lookup_groups", spy)
    proof = M.prove(pm, toks, 3)
    groups = seen[0]
    assert len(groups) >= 3
    cols = sorted(c for g, _ in groups for c in g)
    assert cols == list(range(len(cols)))  # every column in exactly one logUp
    M.verify_bytes(proof.to_bytes(), pm.commitment)
    assert len(seen) == 2 and seen[1] == groups  # the verifier derived the same packing
    bad = cheat(pm, toks, 3, monkeypatch, mutate=n2_off_by_one(pm, toks))
    with pytest.raises(VerificationError):
        M.verify(bad, pm.commitment)
    data = bytearray(proof.to_bytes())
    data[len(data) // 2] ^= 1
    with pytest.raises((VerificationError, MalformedProofError)):
        M.verify_bytes(bytes(data), pm.commitment)


def test_leaf_block_equals_python_integers():
    """gpu.poly.leaf_block (the lookup leaves c0 + a x + b y and the selector from int64
    columns) against Python integers, the int64 extremes and the no-y case included."""
    from gpu import poly as K
    from zk.field import Fr

    P = Fr.modulus
    R64 = 1 << 64
    rng = np.random.default_rng(10)
    for n in (1, 5, 64, 1000):
        x = rng.integers(-2**40, 2**40, n)
        y = rng.integers(-2**62, 2**62, n)
        x[0], y[-1] = np.iinfo(np.int64).min, np.iinfo(np.int64).max
        if n > 2:
            x[1] = y[2] = 0
        sel = rng.random(n) < 0.5
        a, b, c = (int(v) * 2**190 % P for v in rng.integers(1, 2**62, 3))
        p, q = np.empty((n, 4), np.uint64), np.empty((n, 4), np.uint64)
        args = (Fr.scalar(a * R64), Fr.scalar(-a * R64), Fr.scalar(b * R64),
                Fr.scalar(-b * R64), Fr.scalar(c), Fr.scalar(1))
        K.leaf_block(Fr.desc, x, y, sel, *args, p, q)
        assert Fr.to_ints(q) == [(c + a * int(u) + b * int(v)) % P for u, v in zip(x, y)]
        assert Fr.to_ints(p) == [int(s) for s in sel]
        K.leaf_block(Fr.desc, x, np.zeros(0, np.int64), sel, *args, p, q)
        assert Fr.to_ints(q) == [(c + a * int(u)) % P for u in x]


def test_narrow_stacks_skip_padding_rows_and_keep_padded_grid_tensors(model, gpt2, monkeypatch):
    """With few columns the stacks have many rows, some of padding only (not sent); the
    tensors built on the padded grid (the score differences, the argmax differences) are not
    zero there and keep their rows: honest proofs of both architectures at a length with
    padding (5 positions of 8) verify."""
    from zk.model import engine as E

    monkeypatch.setattr(E, "MAX_LOG_COLS", 4)
    for pm, toks, wide_proof in (model, gpt2):
        proof = M.prove(pm, toks, 3)
        M.verify_bytes(proof.to_bytes(), pm.commitment)
        assert proof.size != wide_proof.size
