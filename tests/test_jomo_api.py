"""Fast end-to-end checks of ``jomo_impute`` on small problems."""

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

import mitml_jax as mj
from mitml_jax.api_jomo import _kernel, _save, _transform
from mitml_jax.errors import MitmlError
from mitml_jax.kernels import jomo
from mitml_jax.kernels.jomo_design import build_group_problems
from mitml_jax.kernels.latent import latent_to_category
from mitml_jax.sampling.run import run_chains
from mitml_jax.spec.model_spec import build_spec

LEVEL2 = ["JOBSAT + NEGLEAD + WLOAD ~ 1 + (1|GRPID)", "COHES ~ 1"]


@pytest.fixture(scope="module")
def small_leadership():
    d = mj.load_leadership()
    return d[d.GRPID <= 20].reset_index(drop=True)


@pytest.fixture(scope="module")
def level2_run(small_leadership):
    return mj.jomo_impute(small_leadership, formula=LEVEL2, n_burn=20, n_iter=10, m=3, chains=2,
                          seed=11, progress=False)


def test_shapes_and_layout(level2_run):
    imp = level2_run
    assert imp.kind == "jomo" and imp.blocks == ("beta", "beta2", "psi", "sigma")
    assert imp.imputation["beta"].shape == (2, 20, 1, 1, 3)
    assert imp.imputation["psi"].shape == (2, 20, 1, 4, 4)
    assert imp.burnin["sigma"].shape == (2, 20, 1, 3, 3)
    # latent variance of the binary target is fixed at 1
    assert np.all(imp.imputation["sigma"][..., 2, 2] == 1.0)
    assert imp.labels["psi"][0][-1] == "COHES"
    assert imp.replacement.shape == (len(imp.index), 3)


def test_observed_cells_unchanged_and_level2_constant(level2_run, small_leadership):
    data = small_leadership
    for i in range(1, 4):
        done = level2_run.complete(print=i)
        assert not done[["JOBSAT", "NEGLEAD", "WLOAD", "COHES"]].isna().any().any()
        for col in ["JOBSAT", "NEGLEAD", "COHES"]:
            obs = data[col].notna()
            np.testing.assert_array_equal(done.loc[obs, col], data.loc[obs, col])
        obs = data["WLOAD"].notna()
        assert (done.loc[obs, "WLOAD"] == data.loc[obs, "WLOAD"]).all()
        assert set(done["WLOAD"].astype(str)) <= {"low", "high"}
        assert (done.groupby("GRPID")["COHES"].nunique() == 1).all()


def test_latent_draws_agree_with_observed_category(level2_run, small_leadership):
    spec = level2_run.spec
    prob = build_group_problems(spec, spec.design(small_leadership))[0]
    lay = prob.layout
    pos, k = prob.config.cat_blocks[0]
    codes = small_leadership["WLOAD"].cat.codes.to_numpy()
    obs = codes >= 0
    y = np.asarray(level2_run.state.y)  # (chains, J, L, r)
    for c in range(y.shape[0]):
        lat = y[c, lay.row_cluster, lay.row_slot, pos : pos + k]
        assert np.all(latent_to_category(lat)[obs] == codes[obs])
        assert np.all((lat[obs] > -3) & (lat[obs] < 4))


def test_vmapped_chains_equal_chains_run_alone():
    rng = np.random.default_rng(0)
    n = 40
    data = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    data.loc[rng.random(n) < 0.3, "a"] = np.nan
    spec = build_spec(data, formula="a + b ~ 1", kind="jomo")
    prob = build_group_problems(spec, spec.design(data))[0]
    prior = jomo.default_prior(prob.config)
    s0 = jomo.init(prob.arrays, prob.config, prior)

    def run(ids):
        state = jax.tree_util.tree_map(lambda a: jnp.broadcast_to(a, (len(ids),) + a.shape), s0)
        return run_chains(_kernel(prob.config), state, prob.arrays, prior, jax.random.key(3),
                          n_burn=5, n_iter=5, n_saves=2, transform=_transform(prob.config, "full"),
                          save=_save, chain_ids=np.asarray(ids), progress=False)

    both = run([0, 1])
    alone = run([1])
    np.testing.assert_allclose(both.imputation["sigma"][1], alone.imputation["sigma"][0],
                               rtol=1e-12)
    np.testing.assert_allclose(np.asarray(both.saves)[1], np.asarray(alone.saves)[0], rtol=1e-12)
    assert not np.allclose(both.imputation["beta"][0], both.imputation["beta"][1])


def test_bad_arguments_raise(small_leadership):
    d = small_leadership
    with pytest.raises(MitmlError, match="random_L1"):
        mj.jomo_impute(d, formula="JOBSAT + NEGLEAD ~ 1", random_L1="full", progress=False)
    with pytest.raises(MitmlError, match="random_L1"):
        mj.jomo_impute(d, formula=LEVEL2, random_L1="some", progress=False)
    with pytest.raises(MitmlError, match="Binv"):
        mj.jomo_impute(d, formula=LEVEL2, prior={"Binv": np.eye(2)}, progress=False)
    with pytest.raises(MitmlError, match="do not contain any missing"):
        mj.jomo_impute(d.dropna(), formula="JOBSAT + NEGLEAD ~ 1 + (1|GRPID)", progress=False)
    with pytest.raises(MitmlError, match="prior"):
        mj.jomo_impute(d, formula=LEVEL2, prior=[{}, {}], progress=False)


def test_exact_beta2_option_changes_level2_step_and_is_kept_by_extend(small_leadership):
    kwargs = dict(formula=LEVEL2, n_burn=20, n_iter=10, m=2, chains=2, seed=3, progress=False)
    jomo_like = mj.jomo_impute(small_leadership, **kwargs)
    exact = mj.jomo_impute(small_leadership, exact_beta2=True, **kwargs)
    assert exact.extra["exact_beta2"] is True and jomo_like.extra["exact_beta2"] is False
    assert not np.array_equal(exact.imputation["beta2"], jomo_like.imputation["beta2"])
    longer = mj.jomo_impute(small_leadership, exact_beta2=True, **{**kwargs, "m": 4, "chains": 2})
    resumed = exact.extend(m=2)
    # the same imputations (their order across chains differs between the two layouts)
    np.testing.assert_array_equal(np.sort(resumed.replacement, axis=1),
                                  np.sort(longer.replacement, axis=1))
    with pytest.raises(mj.MitmlTypeError, match="exact_beta2"):
        mj.jomo_impute(small_leadership, exact_beta2="yes", **kwargs)


def test_init_traced_equals_host_init():
    """jomo.init runs in NumPy on the host and in jax.numpy under jit (the calibration code)."""
    rng = np.random.default_rng(1)
    n = 30
    data = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "g": np.repeat(np.arange(6), 5)})
    data.loc[rng.random(n) < 0.3, "a"] = np.nan
    spec = build_spec(data, formula="a + b ~ 1 + (1|g)", kind="jomo")
    prob = build_group_problems(spec, spec.design(data), "full")[0]
    prior = jomo.default_prior(prob.config)
    host = jomo.init(prob.arrays, prob.config, prior)
    traced = jax.jit(lambda a, p: jomo.init(a, prob.config, p))(prob.arrays, prior)
    for name, x, y in zip(host._fields, host, traced):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=name)


def test_group_keys_are_fold_in_derived_on_the_host():
    """jomo_impute's per-group keys: jax.random.fold_in(key, g) bit for bit, and nothing compiled."""
    import logging

    from mitml_jax.api_jomo import group_key

    key = jax.random.key(11)
    messages = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    logger = logging.getLogger("jax")
    logger.addHandler(handler)
    try:
        with jax.log_compiles():
            keys = [group_key(key, g) for g in range(3)]
    finally:
        logger.removeHandler(handler)
    assert not [m for m in messages if m.startswith("Compiling")]
    for g, k in enumerate(keys):
        assert k.shape == () and jax.random.key_impl(k) == jax.random.key_impl(key)
        np.testing.assert_array_equal(np.asarray(jax.random.key_data(k)),
                                      np.asarray(jax.random.key_data(jax.random.fold_in(key, g))))
    rbg = jax.random.key(3, impl="rbg")  # other implementations go through jax.random
    np.testing.assert_array_equal(np.asarray(jax.random.key_data(group_key(rbg, 1))),
                                  np.asarray(jax.random.key_data(jax.random.fold_in(rbg, 1))))
