"""Checkpoint and resume: extend continues the same chains; save/load; Ctrl-C keeps finished work.

Every comparison is exact (``np.array_equal``): resuming must reproduce an uninterrupted run bit
for bit on CPU. The tiny data and ``n_iter = 2`` match the bad-input battery so the compiled
sampler is shared within a pytest process.
"""

from __future__ import annotations

import numpy as np
import pandas.testing as pdt
import pytest

import mitml_jax as mj
from mitml_jax.errors import MitmlError, MitmlTypeError, MitmlWarning
from mitml_jax.results.checkpoint import impute_in_stages
from mitml_jax.results.extend import InterruptedRun
from mitml_jax.sampling import run as run_module

from test_reliability_bad_input import FORMULA, tiny

KW = {"n_burn": 5, "n_iter": 2, "seed": 3, "progress": False}


def _same(a, b):
    """Two Imputations hold identical imputations and draws (bit for bit)."""
    assert a.m == b.m
    assert np.array_equal(a.replacement, b.replacement)
    assert np.array_equal(a.index, b.index)
    assert np.array_equal(a.imputation_source, b.imputation_source)
    assert set(a.imputation) == set(b.imputation)
    for block in a.imputation:
        assert np.array_equal(a.imputation[block], b.imputation[block]), block
        assert np.array_equal(a.burnin[block], b.burnin[block]), block
    for x, y in zip(a.state, b.state):
        assert np.array_equal(np.asarray(x), np.asarray(y))


@pytest.fixture(scope="module")
def full4():
    return mj.pan_impute(tiny(), FORMULA, m=4, **KW)


@pytest.fixture(scope="module")
def first2():
    return mj.pan_impute(tiny(), FORMULA, m=2, **KW)


def test_extend_equals_uninterrupted(full4, first2):
    data = tiny()
    before = first2.replacement.copy()
    ext = first2.extend(m=2, progress=False)
    _same(ext, full4)
    assert np.array_equal(first2.replacement, before) and first2.m == 2  # original untouched
    pdt.assert_frame_equal(ext.data, data)
    assert ext.call.endswith(".extend(m=2)")
    assert all(np.array_equal(ext.failures[k], full4.failures[k]) for k in full4.failures)


def test_save_load_resume_equals_uninterrupted(full4, first2, tmp_path):
    path = first2.save(tmp_path / "run.pkl")
    loaded = mj.Imputations.load(path)
    _same(loaded, first2)
    pdt.assert_frame_equal(loaded.data, first2.data)
    assert loaded.spec == first2.spec
    _same(loaded.extend(m=2, progress=False), full4)
    # the completed data of the resumed run equal those of the uninterrupted run
    for x, y in zip(loaded.extend(m=2, progress=False).complete("all"), full4.complete("all")):
        pdt.assert_frame_equal(x, y, check_exact=True)


def test_extend_twice_and_jax_key_seed(tmp_path):
    import jax

    key = jax.random.key(11)
    whole = mj.pan_impute(tiny(), FORMULA, m=5, **{**KW, "seed": key})
    part = mj.pan_impute(tiny(), FORMULA, m=1, **{**KW, "seed": key})
    part = mj.Imputations.load(part.save(tmp_path / "k.pkl"))  # a JAX key seed survives saving
    _same(part.extend(m=1, progress=False).extend(m=3, progress=False), whole)


@pytest.mark.slow
def test_extend_with_two_chains_gives_the_same_imputations():
    """Chains continue independently: same draws per chain; imputations ordered by time."""
    kw = {**KW, "chains": 2}
    whole = mj.pan_impute(tiny(), FORMULA, m=4, **kw)
    ext = mj.pan_impute(tiny(), FORMULA, m=2, **kw).extend(m=2, progress=False)
    for block in whole.imputation:
        assert np.array_equal(whole.imputation[block], ext.imputation[block])
    order = lambda imp: np.lexsort(imp.imputation_source.T[::-1])  # noqa: E731 - by (chain, draw)
    assert np.array_equal(whole.imputation_source[order(whole)], ext.imputation_source[order(ext)])
    assert np.array_equal(whole.replacement[:, order(whole)], ext.replacement[:, order(ext)])


def test_extend_bad_arguments(first2):
    with pytest.raises(MitmlTypeError, match="'m'"):
        first2.extend(m="2")
    with pytest.raises(MitmlError, match="'m'"):
        first2.extend(m=0)
    with pytest.raises(MitmlError, match="'n_iter'"):
        first2.extend(m=1, n_iter=0)
    import dataclasses

    with pytest.raises(MitmlError, match="state"):
        dataclasses.replace(first2, state=None).extend(m=1)


def test_load_rejects_other_files(tmp_path):
    bad = tmp_path / "bad.pkl"
    bad.write_bytes(b"not a pickle")
    with pytest.raises(MitmlError, match="bad.pkl"):
        mj.Imputations.load(bad)
    bad.write_bytes(b"ID,x\n1,2\n")  # pickle reads 'I' as an integer opcode: a ValueError
    with pytest.raises(MitmlError, match="not a saved Imputations file"):
        mj.Imputations.load(bad)
    with pytest.raises(MitmlError, match="does not exist"):
        mj.Imputations.load(tmp_path / "missing.pkl")


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of 4 iterations (2 saves with n_iter = 2), so a run spans several blocks."""
    monkeypatch.setattr(run_module, "BLOCK_ITERATIONS", 4)


def test_ctrl_c_keeps_completed_imputations(small_blocks, first2):
    whole = mj.pan_impute(tiny(), FORMULA, m=8, **KW)  # blocks of 4 iterations throughout
    calls = []

    def interrupt(saves_done):
        calls.append(saves_done)
        if saves_done >= 2:
            raise KeyboardInterrupt

    with pytest.raises(InterruptedRun) as stop:
        first2.extend(m=6, progress=False, callback=interrupt)
    partial = stop.value.partial
    assert isinstance(stop.value, KeyboardInterrupt)
    assert calls == [2] and partial.m == 4  # the first block (2 saves) was kept
    # nothing is lost or corrupted: continuing the partial run gives the uninterrupted run
    _same(partial.extend(m=4, progress=False), whole)


def test_impute_in_stages_saves_and_returns_partial(small_blocks, tmp_path, monkeypatch):
    path = tmp_path / "stages.pkl"
    whole = mj.pan_impute(tiny(), FORMULA, m=8, **KW)
    staged = impute_in_stages(mj.pan_impute, tiny(), m=8, stage=3, path=path, formula=FORMULA, **KW)
    _same(staged, whole)
    _same(mj.Imputations.load(path), whole)

    import mitml_jax.results.checkpoint as checkpoint

    real = checkpoint.extend_imputations
    count = {"n": 0}

    def flaky(imp, **kw):  # Ctrl-C in the second stage, after its first block
        count["n"] += 1
        if count["n"] == 2:
            def stop(done):
                raise KeyboardInterrupt
            kw["callback"] = stop
        return real(imp, **kw)

    monkeypatch.setattr(checkpoint, "extend_imputations", flaky)
    with pytest.warns(MitmlWarning, match="Interrupted: returning the 6 imputations"):
        got = impute_in_stages(mj.pan_impute, tiny(), m=8, stage=3, path=path, formula=FORMULA, **KW)
    assert got.m == 6  # 1 (first run) + 3 (stage 1) + 2 (first block of the interrupted stage 2)
    assert np.array_equal(got.replacement, whole.replacement[:, :6])
    assert mj.Imputations.load(path).m == 6


def test_impute_in_stages_refuses_an_unwritable_folder_first(tmp_path, monkeypatch):
    """Checked by permission before the first run (tests run as root, which may write anywhere)."""
    import mitml_jax.results.checkpoint as checkpoint

    real = checkpoint.os.access
    locked = str(tmp_path)
    monkeypatch.setattr(checkpoint.os, "access", lambda p, mode: str(p) != locked and real(p, mode))
    monkeypatch.setattr(mj, "pan_impute", lambda *a, **k: pytest.fail("the sampler ran first"))
    with pytest.raises(MitmlError, match="impute_in_stages: the folder .* is not writable"):
        impute_in_stages(mj.pan_impute, tiny(), m=4, stage=2, path=tmp_path / "s.pkl",
                         formula=FORMULA, **KW)
    with pytest.raises(MitmlError, match="save: the folder .* is not writable"):
        checkpoint._check_target(tmp_path / "s.pkl", "save")  # what save() checks first


def test_impute_in_stages_keeps_its_imputations_when_a_save_fails(small_blocks, tmp_path, monkeypatch):
    import mitml_jax.results.checkpoint as checkpoint

    whole = mj.pan_impute(tiny(), FORMULA, m=5, **KW)
    real = checkpoint.save_imputations
    calls = {"n": 0}

    def disk_full(imp, path, **kw):  # the second save fails
        calls["n"] += 1
        if calls["n"] == 2:
            raise MitmlError(f"save: could not write {str(path)!r} (No space left on device).")
        return real(imp, path, **kw)

    monkeypatch.setattr(checkpoint, "save_imputations", disk_full)
    with pytest.warns(MitmlWarning, match="No space left on device.*goes on without saving"):
        got = impute_in_stages(mj.pan_impute, tiny(), m=5, stage=2, path=tmp_path / "s.pkl",
                               formula=FORMULA, **KW)
    _same(got, whole)
    assert calls["n"] == 2  # no more saves after the failure
    assert mj.Imputations.load(tmp_path / "s.pkl").m == 1  # the first save is still there


@pytest.mark.slow
def test_jomo_extend_equals_uninterrupted(tmp_path):
    """jomo with a categorical target and two groups (two sampler problems, keys fold_in(key, g))."""
    kw = {"formula": "y1 + cat ~ 1 + x + (1|id)", "group": "grp", "n_burn": 5, "n_iter": 2, "seed": 4,
          "progress": False}
    whole = mj.jomo_impute(tiny(), m=4, **kw)
    first = mj.Imputations.load(mj.jomo_impute(tiny(), m=2, **kw).save(tmp_path / "jomo.pkl"))
    ext = first.extend(m=2, progress=False)
    assert np.array_equal(ext.replacement, whole.replacement)
    assert np.array_equal(ext.imputation_source, whole.imputation_source)
    for block in whole.imputation:
        assert np.array_equal(ext.imputation[block], whole.imputation[block], equal_nan=True), block
    for old, new in zip(whole.extra["acceptance"], ext.extra["acceptance"]):
        assert all(np.array_equal(old[k], new[k]) for k in old)
    for x, y in zip(ext.complete("all"), whole.complete("all")):
        pdt.assert_frame_equal(x, y, check_exact=True)


def _toy_run(**kw):
    """A cheap toy kernel (random walk) through run_chains."""
    import jax
    import jax.numpy as jnp

    from mitml_jax.sampling.run import run_chains

    def kernel(key, state, arrays, prior):
        return {"x": state["x"] + jax.random.normal(key, state["x"].shape)}, {"n": jnp.int32(1)}

    state = kw.pop("state", {"x": jnp.zeros((3, 2))})
    return run_chains(kernel, state, None, None, jax.random.key(5), n_iter=2, transform=lambda s: {"x": s["x"]},
                      save=lambda s, a: s["x"], progress=False, **kw)


def test_run_chains_t_start_resumes_bit_for_bit(small_blocks):
    whole = _toy_run(n_burn=3, n_saves=5)
    head = _toy_run(n_burn=3, n_saves=2)
    tail = _toy_run(n_burn=0, n_saves=3, state=head.state, t_start=3 + 2 * 2)
    assert np.array_equal(np.concatenate([head.imputation["x"], tail.imputation["x"]], axis=1), whole.imputation["x"])
    assert np.array_equal(np.concatenate([head.saves, tail.saves], axis=1), whole.saves)
    assert np.array_equal(tail.state["x"], whole.state["x"])


def test_run_chains_ctrl_c_keeps_completed_blocks(small_blocks):
    from mitml_jax.sampling.run import InterruptedChains

    whole = _toy_run(n_burn=3, n_saves=5)
    seen = []

    def stop(iterations):
        seen.append(iterations)
        if iterations >= 7:
            raise KeyboardInterrupt

    with pytest.raises(InterruptedChains) as info:
        _toy_run(n_burn=3, n_saves=5, after_block=stop)
    part = info.value.run
    assert seen == [3, 7] and info.value.iterations_done == 7  # burn-in block, then 2 saves
    assert np.array_equal(part.burnin["x"], whole.burnin["x"])
    assert np.array_equal(part.saves, whole.saves[:, :2])
    assert np.array_equal(part.imputation["x"], whole.imputation["x"][:, :4])
    rest = _toy_run(n_burn=0, n_saves=3, state=part.state, t_start=7)
    assert np.array_equal(rest.saves, whole.saves[:, 2:])


def test_extend_keep_chains_diagonal():
    kw = {**KW, "keep_chains": "diagonal"}
    whole = mj.pan_impute(tiny(), FORMULA, m=3, **kw)
    ext = mj.pan_impute(tiny(), FORMULA, m=1, **kw).extend(m=2, progress=False)
    assert ext.imputation["psi"].shape[-1] == 1
    _same(ext, whole)


def _interrupt_at(module, monkeypatch, iterations_at_least: int) -> None:
    """Make ``module.run_chains`` raise Ctrl-C after the first block ending at or beyond the
    given iteration (blocks end at 4, 5 (burn-in), 9 (two saves), ...)."""
    real = module.run_chains

    def interrupted(*args, **kw):
        def stop(iterations):
            if iterations >= iterations_at_least:
                raise KeyboardInterrupt
        return real(*args, **{**kw, "after_block": stop})

    monkeypatch.setattr(module, "run_chains", interrupted)


@pytest.mark.parametrize("kind", ["pan", "jomo"])
def test_impute_ctrl_c_returns_completed_imputations(small_blocks, monkeypatch, kind):
    """Ctrl-C after the first imputation-phase block: pan_impute and jomo_impute warn and return
    the 2 imputations completed, whose continuation equals the uninterrupted run. Ctrl-C during
    burn-in propagates (nothing to keep), and so does Ctrl-C in a jomo run with several groups
    (they run one after another)."""
    import mitml_jax.api_jomo as api_jomo
    import mitml_jax.api_pan as api_pan

    module, impute = (api_pan, mj.pan_impute) if kind == "pan" else (api_jomo, mj.jomo_impute)
    real = module.run_chains
    whole = impute(tiny(), FORMULA, m=8, **KW)
    _interrupt_at(module, monkeypatch, 9)
    data = tiny()
    with pytest.warns(MitmlWarning, match="Interrupted: returning the 2 imputations"):
        part = impute(data, FORMULA, m=8, **KW)
    pdt.assert_frame_equal(data, tiny())
    assert part.m == 2
    _same(part.extend(m=6, progress=False), whole)
    if kind == "jomo":
        with pytest.raises(KeyboardInterrupt, match=r"interrupted in group \d of 2 .* no imputation "
                                                    r"covers every group"):
            impute(tiny(), FORMULA, m=8, group="grp", **KW)
    monkeypatch.setattr(module, "run_chains", real)  # (small blocks stay)
    _interrupt_at(module, monkeypatch, 0)
    with pytest.raises(KeyboardInterrupt):
        impute(tiny(), FORMULA, m=8, **KW)


def test_jomo_extend_with_groups_equals_uninterrupted():
    """Each group's chains continue from their own key (``api_jomo.group_key``, used by both
    jomo_impute and extend): the extended run equals the uninterrupted one bit for bit."""
    data = tiny()
    data["grp"] = np.where(data["id"] <= 3, "a", "b")
    kw = {**KW, "group": "grp"}
    whole = mj.jomo_impute(data, FORMULA, m=4, **kw)
    ext = mj.jomo_impute(data, FORMULA, m=2, **kw).extend(m=2, progress=False)
    assert ext.m == 4 and np.array_equal(ext.replacement, whole.replacement)
    for block in whole.imputation:
        assert np.array_equal(ext.imputation[block], whole.imputation[block]), block
    import jax  # the state is one JomoState per group

    for x, y in zip(jax.tree_util.tree_leaves(ext.state), jax.tree_util.tree_leaves(whole.state)):
        assert np.array_equal(np.asarray(x), np.asarray(y))
