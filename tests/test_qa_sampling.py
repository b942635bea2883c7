"""QA pass on the sampling layer: interruptions, extend, keys of other implementations.

Each test failed before the fix it guards (see the commit messages). Tiny models only.
"""

from __future__ import annotations


import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mitml_jax as mj
from mitml_jax.errors import MitmlTypeError
from mitml_jax.sampling import run as run_module
from mitml_jax.sampling.run import InterruptedChains, run_chains

from test_reliability_bad_input import FORMULA, tiny

KW = {"n_burn": 5, "n_iter": 2, "seed": 3, "progress": False}


def _walk(key, state, arrays, prior):
    return {"x": state["x"] + jax.random.normal(key, state["x"].shape)}, {"n": jnp.int32(1)}


def _toy(kernel=_walk, chains=2, **kw):
    return run_chains(kernel, {"x": jnp.zeros((chains, 2))}, None, None, kw.pop("key", jax.random.key(5)),
                      n_iter=2, transform=lambda s: {"x": s["x"]}, save=lambda s, a: s["x"], progress=False,
                      **kw)


def test_ctrl_c_keeps_only_what_reached_the_host(monkeypatch):
    """Ctrl-C while block k is stored: the partial run describes blocks < k only. Its
    ``first_bad`` used to come from block k + 1 (already dispatched): reading it waited for that
    block to finish (minutes for a large model on an asynchronous device) and reported a
    non-finite draw that the partial run does not contain."""
    monkeypatch.setattr(run_module, "BLOCK_ITERATIONS", 4)

    def kernel(key, state, arrays, prior):  # non-finite from iteration 3 on (the second block)
        x = jnp.where(state["t"] >= 3, jnp.nan, state["x"] + jax.random.normal(key, state["x"].shape))
        return {"x": x, "t": state["t"] + 1}, {"n": jnp.int32(1)}

    def stop(done):
        raise KeyboardInterrupt

    with pytest.raises(InterruptedChains) as info:
        run_chains(kernel, {"x": jnp.zeros((2, 2)), "t": jnp.zeros((2,), jnp.int32)}, None, None,
                   jax.random.key(5), n_burn=1, n_iter=2, n_saves=2, transform=lambda s: {"x": s["x"]},
                   save=lambda s, a: s["x"], progress=False, after_block=stop)
    part = info.value.run
    assert info.value.iterations_done == 1 and part.burnin["x"].shape == (2, 1, 2)
    assert np.isfinite(part.burnin["x"]).all() and part.first_bad.tolist() == [-1, -1]
    assert part.state["t"].tolist() == [1, 1]


def test_key_of_another_implementation_runs_and_extends():
    """A jax.random.key(..., impl="rbg") seed (or jax_default_prng_impl="rbg"): the per-iteration
    fold_in of the chain keys raised "fold_in accepts a single key" from inside JAX."""
    key = jax.random.key(1, impl="rbg")
    whole = _toy(key=key, n_burn=3, n_saves=2)
    ref = jax.vmap(lambda c: jax.random.fold_in(key, c))(jnp.arange(2))
    step1 = jax.vmap(lambda k: jax.random.normal(jax.random.fold_in(k, 0), (2,)))(ref)
    np.testing.assert_array_equal(whole.burnin["x"][:, 0], np.asarray(step1))
    imp = mj.pan_impute(tiny(), FORMULA, m=1, **{**KW, "seed": key})
    ext = imp.extend(m=1, progress=False)
    np.testing.assert_array_equal(ext.replacement, mj.pan_impute(tiny(), FORMULA, m=2, **{**KW, "seed": key}).replacement)


@pytest.fixture(scope="module")
def two_chains():
    return mj.pan_impute(tiny(), FORMULA, m=2, chains=2, **KW)


def test_extend_by_less_than_chains_keeps_the_chains_balanced(two_chains):
    """extend(m=1) with two chains ran both and always kept chain 0's save: repeated extensions
    took every new imputation from chain 0 (and discarded chain 1's work)."""
    ext = two_chains.extend(m=1, progress=False).extend(m=1, progress=False).extend(m=1, progress=False)
    assert np.bincount(ext.imputation_source[:, 0]).tolist() == [3, 2]
    # chain 1's imputation of the second extension is the one an uninterrupted run keeps
    whole = mj.pan_impute(tiny(), FORMULA, m=8, chains=2, **KW)
    key = lambda imp: {tuple(s): imp.replacement[:, i] for i, s in enumerate(imp.imputation_source)}  # noqa: E731
    got, ref = key(ext), key(whole)
    assert set(got) <= set(ref) and all(np.array_equal(got[s], ref[s]) for s in got)
    for block in whole.imputation:
        np.testing.assert_array_equal(ext.imputation[block], whole.imputation[block])
    # m not divisible by the chains, then extended: 3 + 3 imputations, 3 per chain
    odd = mj.pan_impute(tiny(), FORMULA, m=3, chains=2, **KW).extend(m=3, progress=False)
    assert np.bincount(odd.imputation_source[:, 0]).tolist() == [3, 3]


def test_extend_checks_callback_and_progress_before_running(two_chains, monkeypatch):
    """A callback that is not callable (or takes no argument) failed with a TypeError only after
    the first block had run; progress='yes' was taken as True."""
    def never(*args, **kw):
        raise AssertionError("the sampler ran")

    import mitml_jax.results.extend as extend_module

    monkeypatch.setattr(extend_module, "continue_chains", never)
    with pytest.raises(MitmlTypeError, match="'callback'"):
        two_chains.extend(m=1, progress=False, callback=5)
    with pytest.raises(MitmlTypeError, match="'callback'.*one argument"):
        two_chains.extend(m=1, progress=False, callback=lambda: None)
    with pytest.raises(MitmlTypeError, match="'progress'"):
        two_chains.extend(m=1, progress="yes")


def test_devices_listed_twice_are_refused():
    """devices=[d, d] raised "safe_zip() argument 1 has length 2 ..." from inside JAX's Mesh."""
    from mitml_jax.errors import MitmlError
    from mitml_jax.sampling.sharding import chain_mesh

    dev = jax.devices()[0]
    with pytest.raises(MitmlError, match="'devices'.*more than once"):
        chain_mesh(2, [dev, dev])
    with pytest.raises(MitmlError, match="'devices'.*more than once"):
        mj.pan_impute(tiny(), FORMULA, m=2, chains=2, devices=(dev, dev), **KW)


def test_impute_in_stages_checks_the_path_before_sampling(tmp_path):
    """A path in a missing folder failed only when the first run (burn-in included) was done,
    losing it."""
    from mitml_jax.errors import MitmlError
    from mitml_jax.results.checkpoint import impute_in_stages

    def impute(*args, **kw):
        raise AssertionError("the sampler ran")

    with pytest.raises(MitmlError, match="impute_in_stages: the folder .* does not exist"):
        impute_in_stages(impute, tiny(), m=4, stage=2, path=tmp_path / "missing" / "run.pkl")
    with pytest.raises(MitmlError, match="is a directory"):
        impute_in_stages(impute, tiny(), m=4, stage=2, path=tmp_path)
    with pytest.raises(MitmlTypeError, match="'path'"):
        impute_in_stages(impute, tiny(), m=4, stage=2, path=3)


def test_a_key_array_as_seed_is_refused():
    """seed=jax.random.split(key, 2): with one chain a ValueError from inside vmap; with two chains
    it ran silently, chain c with fold_in(keys[c], c)."""
    keys = jax.random.split(jax.random.key(1), 2)
    for chains in (1, 2):
        with pytest.raises(MitmlTypeError, match="'seed' must be one jax.random.key"):
            mj.pan_impute(tiny(), FORMULA, m=2, chains=chains, **{**KW, "seed": keys})


def test_extend_takes_m_first_and_the_rest_by_keyword():
    """imp.extend(4) added ONE imputation 4 iterations apart (n_iter came first); now it adds
    four, and n_iter, progress and callback are keyword-only."""
    import inspect

    import mitml_jax as mj

    params = inspect.signature(mj.Imputations.extend).parameters
    assert list(params)[1] == "m"
    assert all(params[name].kind is inspect.Parameter.KEYWORD_ONLY
               for name in ("n_iter", "progress", "callback"))
    imp = mj.pan_impute(mj.load_studentratings(), "ReadDis ~ 1 + (1|ID)", n_burn=5, n_iter=2, m=1,
                        seed=1, progress=False)
    more = imp.extend(2, progress=False)
    assert more.m == 3 and more.n_iter == 2
